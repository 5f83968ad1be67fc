//! Where an asset file's bytes come from, for the index, the segment builders and response
//! bodies: a local file ([`MappedFile`]) or an object of an S3-compatible bucket
//! ([`RemoteObject`]). Everything above `storage` reads through this type, so a backend changes
//! no packager.

use std::io;

use bytes::Bytes;

use super::mmap::MappedFile;
use super::remote::RemoteObject;
use crate::index::ReadAt;

/// The bytes of one asset file.
#[derive(Debug)]
pub enum Source {
    /// A file of the asset folder: `pread` for our reads, zero-copy mapped views for bodies.
    Local(MappedFile),
    /// An object of the bucket: ranged GETs through the chunk cache. Reads block (with the
    /// storage deadline), so a slow bucket fails a miss rather than holding it.
    Remote(RemoteObject),
}

impl Source {
    /// Length when it was indexed.
    pub fn len(&self) -> u64 {
        match self {
            Source::Local(m) => m.len(),
            Source::Remote(o) => o.len(),
        }
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes at `offset` for a response body, unread by us (a local file's are views of
    /// the mapping, see `storage::mmap`). `None` when the range lies outside the file, or, for
    /// a remote object, when it cannot be read in time (the reason is logged here).
    pub fn body(&self, offset: u64, len: u64) -> Option<Bytes> {
        match self {
            Source::Local(m) => m.slice(offset, len),
            Source::Remote(o) => match o.read(offset, len) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(reason = %e, "sample data unavailable");
                    None
                }
            },
        }
    }

    /// Whether the bytes can still be served as indexed: a local file truncated in place since
    /// indexing answers `false` (its mapped pages would fail mid-response).
    pub fn unchanged(&self) -> bool {
        match self {
            Source::Local(m) => m.file().metadata().map(|md| md.len()).unwrap_or(0) >= m.len(),
            // Reads carry the listed ETag (If-Match): a replaced object fails them instead.
            Source::Remote(_) => true,
        }
    }

    /// The local file, for fast paths that hand a descriptor to the kernel.
    pub fn local(&self) -> Option<&MappedFile> {
        match self {
            Source::Local(m) => Some(m),
            Source::Remote(_) => None,
        }
    }
}

impl ReadAt for Source {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Source::Local(m) => m.file().read_exact_at(buf, offset),
            Source::Remote(o) => o.read_exact_at(buf, offset),
        }
    }

    fn read_append_at(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        match self {
            Source::Local(m) => m.read_append_at(buf, len, offset),
            // Remote bytes arrive in owned chunks anyway: the trait's copying default is right.
            Source::Remote(o) => o.read_append_at(buf, len, offset),
        }
    }
}
