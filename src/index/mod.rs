//! File bytes → [`FileIndex`]: every track of one MP4 file with its codec and its samples.
//!
//! The index is read with positioned reads (`ReadAt`), never through the memory mapping: a file
//! truncated by someone else then yields an I/O error here instead of a SIGBUS (see
//! `storage::mmap`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod build;
pub mod table;
pub mod time;

pub use build::{build, read_span_then_compact, FileIndex, IndexError, ReadAt, TrackIndex, TrackKind};
pub use table::SampleTable;
