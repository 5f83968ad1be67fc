//! Reused buffers for protected segment bodies: a segment's sample data is read into one, handed
//! to the response (or the segment cache) as [`Bytes`], and given back here when the last view of
//! it is dropped, so the next segment neither asks the allocator for ~0.3–3 MB nor has the kernel
//! fault in and zero fresh pages. Buffers are never zero-filled (see `MappedFile::read_append_at`).
//!
//! Bounded: at most [`MAX_BUFFERS`] buffers and [`MAX_POOLED_BYTES`] of capacity wait here; a
//! buffer is reused only for a length close to its capacity, so a cached segment never pins much
//! more memory than the cache's weigher counts.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for reuse at most.
pub const MAX_BUFFERS: usize = 16;
/// Capacity kept for reuse at most, over all buffers.
pub const MAX_POOLED_BYTES: usize = 32 << 20;

struct Pool {
    free: Vec<Vec<u8>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { free: Vec::new(), bytes: 0 });

/// Slack allowed between a reused buffer's capacity and the length asked for.
fn fits(capacity: usize, len: usize) -> bool {
    capacity >= len && capacity <= len.saturating_add(len / 4).saturating_add(64 << 10)
}

/// An empty buffer with room for at least `len` bytes: a returned one if one fits, else new.
pub fn take(len: usize) -> Vec<u8> {
    if let Ok(mut pool) = POOL.lock() {
        if let Some(i) = pool.free.iter().position(|b| fits(b.capacity(), len)) {
            let mut buf = pool.free.swap_remove(i);
            pool.bytes = pool.bytes.saturating_sub(buf.capacity());
            buf.clear();
            return buf;
        }
    }
    Vec::with_capacity(len)
}

fn give_back(buf: Vec<u8>) {
    let cap = buf.capacity();
    if cap == 0 {
        return;
    }
    if let Ok(mut pool) = POOL.lock() {
        if pool.free.len() < MAX_BUFFERS && pool.bytes.saturating_add(cap) <= MAX_POOLED_BYTES {
            pool.bytes += cap;
            pool.free.push(buf);
        }
    }
}

/// Owner of a buffer behind [`Bytes`]: returns it to the pool on drop.
struct Returning(Vec<u8>);

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

/// `buf` as [`Bytes`] (no copy) that gives the buffer back for reuse once every view is gone.
pub fn into_bytes(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Returning(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_body_is_reused_for_a_similar_length() {
        let mut v = take(300_000);
        v.extend_from_slice(&[7u8; 300_000]);
        let ptr = v.as_ptr();
        let b = into_bytes(v);
        let view = b.slice(10..20);
        drop(b);
        assert_eq!(&view[..], &[7u8; 10]); // a live view keeps the buffer
        drop(view);
        // Other tests may take buffers concurrently: look for ours among a few takes.
        let taken: Vec<Vec<u8>> = (0..MAX_BUFFERS).map(|_| take(290_000)).collect();
        assert!(taken.iter().any(|t| t.as_ptr() == ptr && t.is_empty()));
        // far smaller lengths do not pin a big buffer
        assert!(!fits(300_000, 1_000));
    }
}
