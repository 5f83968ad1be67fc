//! Response bodies made of [`Bytes`] chunks: a segment header plus views of the source file.
//! Chunks are passed to hyper as they are, so file data is never copied by us.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

/// A body of known length made of chunks.
#[derive(Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl Chunks {
    /// From chunks in order.
    pub fn new(mut chunks: Vec<Bytes>) -> Chunks {
        chunks.retain(|c| !c.is_empty()); // so that `ChunkBuf::chunk` is empty only at the end
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks { chunks: chunks.into(), remaining }
    }

    /// An empty body.
    pub fn empty() -> Chunks {
        Chunks::default()
    }

    /// Total length.
    pub fn len(&self) -> u64 {
        self.remaining
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// Bytes `start..end` of the body, as views of the same chunks.
    pub fn slice(self, start: u64, end: u64) -> Chunks {
        let mut out = Vec::new();
        let mut pos = 0u64;
        for c in self.chunks {
            let len = c.len() as u64;
            let (c_start, c_end) = (pos, pos.saturating_add(len));
            pos = c_end;
            if c_end <= start || c_start >= end {
                continue;
            }
            let from = usize::try_from(start.saturating_sub(c_start)).unwrap_or(0);
            let to = usize::try_from(end.min(c_end).saturating_sub(c_start)).unwrap_or(c.len());
            if from < to && to <= c.len() {
                out.push(c.slice(from..to));
            }
        }
        Chunks::new(out)
    }
}

impl Body for Chunks {
    type Data = ChunkBuf;
    type Error = Infallible;

    /// The whole body as one frame. hyper's HTTP/1 writer queues at most 16 frames before it
    /// flushes, but takes up to 64 iovecs of one frame per `writev`: a progressive file's segment
    /// (one chunk per sample, interleaved with the other tracks) as one frame per chunk cost
    /// 7 writev calls and as many wake-ups of the reader per 130 KB segment.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<ChunkBuf>, Infallible>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        let chunks = std::mem::take(&mut self.chunks);
        let remaining = usize::try_from(std::mem::take(&mut self.remaining)).unwrap_or(usize::MAX);
        Poll::Ready(Some(Ok(Frame::data(ChunkBuf { chunks, remaining }))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The chunks of a body as one [`Buf`], never empty ones (so `chunk` is empty only at the end).
/// Nothing here reads the bytes: `chunks_vectored` hands their addresses to `writev`, and
/// `copy_to_bytes` within one chunk is a view, not a copy.
pub struct ChunkBuf {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl Buf for ChunkBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c.as_ref())
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else { break };
            let take = cnt.min(front.len());
            front.advance(take);
            self.remaining = self.remaining.saturating_sub(take);
            cnt -= take;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, c) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(c);
            n += 1;
        }
        n
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match self.chunks.front_mut() {
            Some(front) if len <= front.len() => {
                let out = front.split_to(len);
                self.remaining = self.remaining.saturating_sub(len);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                out
            }
            // Across chunks (only HTTP/2 and TLS ask, and both read the bytes anyway).
            _ => {
                use bytes::BufMut;
                let mut out = bytes::BytesMut::with_capacity(len);
                out.put(self.take(len));
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_across_chunks() {
        let body = Chunks::new(vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg"), Bytes::from_static(b"h")]);
        let s = body.slice(2, 6);
        let joined: Vec<u8> = s.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(joined, b"cdef");
        assert_eq!(s.len(), 4);
    }

    fn frame(body: Chunks) -> ChunkBuf {
        let mut body = std::pin::pin!(body);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => {
                let data = f.into_data().ok().expect("a data frame");
                assert!(matches!(body.as_mut().poll_frame(&mut cx), Poll::Ready(None)), "one frame only");
                data
            }
            _ => panic!("no frame"),
        }
    }

    #[test]
    fn one_frame_reads_as_the_chunks_in_order() {
        let parts: Vec<Bytes> =
            ["ab", "", "cde", "f", "ghij"].iter().map(|s| Bytes::from_static(s.as_bytes())).collect();
        let mut buf = frame(Chunks::new(parts));
        assert_eq!(buf.remaining(), 10);
        let mut iov = [IoSlice::new(&[]); 8];
        let n = buf.chunks_vectored(&mut iov);
        assert_eq!(n, 4, "empty chunks are dropped");
        let joined: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"abcdefghij");
        // a partial write ends inside a chunk, then across two
        buf.advance(3);
        assert_eq!(buf.chunk(), b"de");
        assert_eq!(buf.copy_to_bytes(1), Bytes::from_static(b"d"));
        assert_eq!(buf.copy_to_bytes(3), Bytes::from_static(b"efg"));
        assert_eq!(buf.remaining(), 3);
        let mut small = [IoSlice::new(&[]); 1];
        assert_eq!(buf.chunks_vectored(&mut small), 1);
        assert_eq!(&*small[0], b"hij");
        buf.advance(3);
        assert_eq!(buf.remaining(), 0);
        assert!(buf.chunk().is_empty());
    }
}
