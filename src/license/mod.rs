//! The license service: who may have which key. [`token`] verifies JWTs against the configured
//! keys (the algorithm comes from our key, never from the token), [`entitle`] decides whether a
//! verified token unlocks a key's policy and asset, [`clearkey`] speaks the W3C ClearKey license
//! format. Only `http` turns the outcomes into 401/403 responses.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod clearkey;
pub mod device;
pub mod fetch;
pub mod jwks;
pub mod token;
pub mod verified;

pub use jwks::{Jwks, JwksSource};
pub use token::{Claims, Denied, TokenConfig, Verifier};
