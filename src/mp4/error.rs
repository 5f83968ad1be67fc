//! Errors of the box layer: each names the box and what was wrong with it.

use super::FourCC;

/// Why a byte range could not be read as the boxes we expected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The box (or the file) ends before a field we must read.
    #[error("'{0}' is truncated")]
    Truncated(FourCC),
    /// A box header declares a size that is below the header or past its parent.
    #[error("'{kind}' declares size {size}, which does not fit in {available} bytes")]
    BadSize {
        /// The box.
        kind: FourCC,
        /// Declared size.
        size: u64,
        /// Bytes left in the parent.
        available: u64,
    },
    /// A field holds a value the format forbids.
    #[error("'{kind}': {reason}")]
    Invalid {
        /// The box.
        kind: FourCC,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// A box we need is absent.
    #[error("missing '{0}' box")]
    Missing(FourCC),
    /// The file is valid MP4 but uses something we do not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Result of the box layer.
pub type Result<T> = std::result::Result<T, Error>;
