//! Request → response: routing ([`routes`]), the handler ([`handler`]), CDN semantics ([`range`],
//! conditional requests, caching, CORS), the one error→status mapping ([`error`]) and the hyper
//! server with its connection limits ([`server`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod body;
pub mod error;
pub mod handler;
pub mod idle;
pub mod player;
pub mod range;
pub mod routes;
pub mod server;

pub use handler::{App, HttpSettings};
