//! Response bodies made of [`Bytes`] chunks: a segment header plus views of the source file.
//! Chunks are passed to hyper as they are, so file data is never copied by us.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A body of known length made of chunks.
#[derive(Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl Chunks {
    /// From chunks in order.
    pub fn new(chunks: Vec<Bytes>) -> Chunks {
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
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(c) => {
                self.remaining = self.remaining.saturating_sub(c.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
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
}
