//! Bytes ⇄ boxes, synchronous and pure: nothing here does I/O, async or touches the rest of the
//! crate, so it can be fuzzed and benchmarked alone. Every read is bounded (see [`reader`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod error;
pub mod fourcc;
pub mod moof;
pub mod moov;
pub mod reader;
pub mod sample_entry;
pub mod stbl;
pub mod writer;

pub use error::{Error, Result};
pub use fourcc::{codes, FourCC};

/// One access unit of a track, wherever it came from (sample tables or a fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Absolute file offset of its bytes.
    pub offset: u64,
    /// Decode time in the track's timescale.
    pub dts: u64,
    /// Size in bytes.
    pub size: u32,
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Composition offset (pts − dts).
    pub cts: i32,
    /// Random access point.
    pub sync: bool,
}
