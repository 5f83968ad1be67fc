//! Bytes → encrypted bytes. Knows AES and byte ranges only: which ranges to protect arrives as
//! data ([`Subsample`] lists computed by `codec`), keys arrive as [`Key`].
//!
//! * [`cenc`]: AES-128-CTR, 64-bit big-endian block counter (`Ctr64BE`), one keystream per sample
//!   running across its protected ranges (ISO/IEC 23001-7 §9.x; spec-notes §2.2).
//! * [`cbcs`]: AES-128-CBC with a crypt:skip pattern (1:9 video, 0:0 = every full block for
//!   audio), IV reset at every subsample, partial trailing block clear (spec-notes §2.3).
//! * [`hls`]: whole-segment AES-128-CBC with PKCS#7 (RFC 8216 §4.3.2.4).
//! * [`iv`]: deterministic IV derivation.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod cbcs;
pub mod cenc;
pub mod hls;
pub mod iv;
pub mod key;

pub use key::{Key, KeyId};

/// One subsample: `clear` bytes left as they are, then `protected` bytes encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subsample {
    /// Leading clear bytes (`BytesOfClearData`).
    pub clear: u16,
    /// Following protected bytes (`BytesOfProtectedData`).
    pub protected: u32,
}

/// Why a sample could not be encrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The subsample map does not add up to the sample size.
    #[error("subsample map covers {covered} bytes but the sample has {size}")]
    MapMismatch {
        /// Bytes described by the map.
        covered: u64,
        /// Sample size.
        size: u64,
    },
}
