//! drm-origin: a streaming origin that serves clear MP4 files as DASH and HLS (CMAF), packaged
//! on the fly.
//!
//! A request travels through the modules in this order:
//! **request** ([`http`]) → **asset** ([`storage`]) → **boxes** ([`mp4`]) → **index** ([`index`])
//! → **segment or manifest** ([`packaging`]) → **encrypt** ([`crypto`], with subsample maps from
//! [`codec`]) → **response** ([`http`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod db;
pub mod drm;
#[doc(hidden)]
pub mod fuzz_api;
pub mod http;
pub mod index;
pub mod license;
pub mod mp4;
pub mod packaging;
pub mod storage;

#[cfg(test)]
mod test_rng;
