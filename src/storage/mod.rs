//! Asset folder or bucket → [`Library`]: which asset ids exist, backed by which indexed files.
//! The folder (or the bucket's listing) is polled ([`catalog::Store::rescan`]); a file is served
//! once it has been stable for a while (an object as soon as it is listed: uploads are atomic),
//! and each file's index is built once and cached until the file (its ETag) changes.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod buffers;
pub mod catalog;
pub mod mmap;
pub mod remote;
pub mod s3;
pub mod source;

pub use catalog::{AssetState, Library, Store, StoreSettings};

/// FNV-1a, 64-bit: a stable, dependency-free hash for ETags (same value on every node and run).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
