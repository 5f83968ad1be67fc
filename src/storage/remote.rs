//! One object of the bucket as an asset file: its identity as listed (key, size, ETag) and
//! reads by range, through the bucket's chunk cache for sample data and through a small
//! read-ahead window for indexing (so indexing a fragmented file reads its `moof` headers and
//! never its `mdat` payloads).

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::s3::{Bucket, Purpose};
use crate::index::ReadAt;

/// Bytes fetched ahead of an index read at an offset not yet held: enough for a box header and
/// a typical `moof` in one GET, little enough not to drag in much `mdat`.
pub const INDEX_READ_AHEAD: u64 = 4 << 10;

/// An object of the bucket, as listed.
pub struct RemoteObject {
    bucket: Arc<Bucket>,
    key: String,
    etag: String,
    len: u64,
    id: u64,
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteObject").field("key", &self.key).field("len", &self.len).finish_non_exhaustive()
    }
}

impl RemoteObject {
    /// Object `key` (below the bucket's prefix) of `len` bytes, with `etag`.
    pub fn new(bucket: Arc<Bucket>, key: String, etag: String, len: u64) -> RemoteObject {
        let id = super::fnv1a(&[b"s3", key.as_bytes(), etag.as_bytes(), &len.to_be_bytes()]);
        RemoteObject { bucket, key, etag, len, id }
    }

    /// Length as listed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty object.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `len` bytes at `offset`, through the chunk cache.
    pub fn read(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        self.bucket.read_cached(self.id, &self.key, &self.etag, self.len, offset, len)
    }

    /// A reader for [`crate::index::build`].
    pub fn indexer(&self) -> IndexReader<'_> {
        IndexReader { object: self, window: RefCell::new((0, Bytes::new())) }
    }
}

impl ReadAt for RemoteObject {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let len = u64::try_from(buf.len()).map_err(|_| io::ErrorKind::OutOfMemory)?;
        let got = self.read(offset, len)?;
        if got.len() != buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&got);
        Ok(())
    }
}

/// Index-time reads: direct ranged GETs (not through the sample cache), each fetching at least
/// [`INDEX_READ_AHEAD`] bytes, the last one kept to serve the reads that follow inside it.
pub struct IndexReader<'a> {
    object: &'a RemoteObject,
    window: RefCell<(u64, Bytes)>,
}

impl ReadAt for IndexReader<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let want = u64::try_from(buf.len()).map_err(|_| io::ErrorKind::OutOfMemory)?;
        let end = offset.checked_add(want).filter(|e| *e <= self.object.len).ok_or(io::ErrorKind::UnexpectedEof)?;
        {
            let w = self.window.borrow();
            let (start, bytes) = (&w.0, &w.1);
            let w_end = start.saturating_add(u64::try_from(bytes.len()).unwrap_or(0));
            if offset >= *start && end <= w_end {
                let a = usize::try_from(offset.saturating_sub(*start)).map_err(|_| io::ErrorKind::OutOfMemory)?;
                let src = bytes.get(a..a.saturating_add(buf.len())).ok_or(io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        let stop = offset.saturating_add(want.max(INDEX_READ_AHEAD)).min(self.object.len);
        let o = self.object;
        let got = o.bucket.fetch(&o.key, &o.etag, offset..stop, Purpose::Index)?;
        let src = got.get(..buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        *self.window.borrow_mut() = (offset, got);
        Ok(())
    }
}
