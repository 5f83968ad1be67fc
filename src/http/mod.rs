//! Request → response. Rooms follow what a request asks for: [`routes`] (URL → typed route),
//! [`dispatch`] (route → room, errors, CORS, access log), [`manifest`] (MPD and playlists),
//! [`segment`] (init and media segments, the protected-segment cache), [`license`] (ClearKey
//! licenses and raw keys), [`player`] (the demo page); [`respond`] applies the CDN semantics
//! (validators, Range, HEAD) to every resource, [`error`] is the one error→status mapping and
//! [`server`] the hyper server with its connection limits.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod app;
pub mod body;
mod device;
pub mod dispatch;
pub mod error;
pub mod idle;
mod license;
mod manifest;
pub mod metrics;
pub mod player;
mod protection;
pub mod range;
mod respond;
pub mod routes;
mod segment;
pub mod server;
pub mod tls;

pub use app::{App, HttpSettings, Metrics};
pub use dispatch::handle;
