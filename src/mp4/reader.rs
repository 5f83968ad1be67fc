//! A bounded, panic-free reader over box bytes (ISO/IEC 14496-12 §4.2 box headers).
//!
//! Every read is checked against the end of the slice; a short read is `Error::Truncated(kind)`
//! naming the box being read, so a log line says which box of which file was cut.

use super::error::{Error, Result};
use super::FourCC;

/// Cursor over one box's payload.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    kind: FourCC,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, attributing errors to box `kind`.
    pub fn new(buf: &'a [u8], kind: FourCC) -> Self {
        Reader { buf, pos: 0, kind }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, consumed.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated(self.kind))?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Truncated(self.kind))?;
        self.pos = end;
        Ok(out)
    }

    /// Everything left, consumed.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    /// Big-endian u16.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    /// Big-endian 24-bit value.
    pub fn u24(&mut self) -> Result<u32> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }
    /// Big-endian u32.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    /// Big-endian i32.
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    /// Big-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// Big-endian i64.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// A four-character code.
    pub fn fourcc(&mut self) -> Result<FourCC> {
        Ok(FourCC(self.array()?))
    }
    /// Full-box header: (version, flags).
    pub fn full_header(&mut self) -> Result<(u8, u32)> {
        Ok((self.u8()?, self.u24()?))
    }
    /// u32 for version 0, u64 for version 1 (mdhd, tkhd, mvhd, tfdt, elst …).
    pub fn uint_v(&mut self, version: u8) -> Result<u64> {
        if version == 1 {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    /// Fails with `Invalid` when `count` entries of `entry_size` bytes cannot fit in what is left,
    /// so callers may allocate `count` entries without trusting the file.
    pub fn check_count(&self, count: u32, entry_size: usize) -> Result<usize> {
        let count = usize::try_from(count).map_err(|_| self.invalid("entry count too large"))?;
        let need = count.checked_mul(entry_size).ok_or(self.invalid("entry count too large"))?;
        if need > self.remaining() {
            return Err(Error::Truncated(self.kind));
        }
        Ok(count)
    }

    /// An `Invalid` error for this box.
    pub fn invalid(&self, reason: &'static str) -> Error {
        Error::Invalid { kind: self.kind, reason }
    }
}

/// One box found in a byte range: its type, the offset of its header in the range, and its body.
#[derive(Clone, Copy, Debug)]
pub struct RawBox<'a> {
    /// Box type.
    pub kind: FourCC,
    /// Offset of the header within the parent range.
    pub offset: usize,
    /// Header length (8 or 16 bytes; 24/32 with `uuid`).
    pub header_len: usize,
    /// The box payload (after the header).
    pub body: &'a [u8],
}

impl<'a> RawBox<'a> {
    /// The whole box, header included, from its parent's bytes.
    pub fn whole(&self, parent: &'a [u8]) -> &'a [u8] {
        let end = self.offset.saturating_add(self.header_len).saturating_add(self.body.len());
        parent.get(self.offset..end).unwrap_or(&[])
    }
}

/// A parsed box header from a fixed prefix of bytes (used by the top-level file scan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Box type.
    pub kind: FourCC,
    /// Header length in bytes.
    pub header_len: u64,
    /// Total box size, header included; `None` means "to the end of the file".
    pub size: Option<u64>,
}

/// Parses a box header from at most the first 16 bytes of `buf`.
pub fn parse_header(buf: &[u8], parent: FourCC) -> Result<Header> {
    let mut r = Reader::new(buf, parent);
    let size32 = r.u32()?;
    let kind = r.fourcc()?;
    let (size, header_len) = match size32 {
        0 => (None, 8),
        1 => (Some(r.u64()?), 16),
        n => (Some(u64::from(n)), 8),
    };
    if let Some(size) = size {
        if size < header_len {
            return Err(Error::BadSize { kind, size, available: buf.len() as u64 });
        }
    }
    Ok(Header { kind, header_len, size })
}

/// Iterates over the child boxes of `buf`, which must hold whole boxes and nothing else.
pub fn boxes(buf: &[u8], parent: FourCC) -> Boxes<'_> {
    Boxes { buf, pos: 0, parent, failed: false }
}

/// Iterator returned by [`boxes`]; stops after the first error.
pub struct Boxes<'a> {
    buf: &'a [u8],
    pos: usize,
    parent: FourCC,
    failed: bool,
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<RawBox<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let item = (|| {
            if rest.len() < 8 {
                return Err(Error::Truncated(self.parent));
            }
            let h = parse_header(rest, self.parent)?;
            let available = rest.len() as u64;
            let size = h.size.unwrap_or(available);
            if size > available {
                return Err(Error::BadSize { kind: h.kind, size, available });
            }
            // Both fit in usize: they are bounded by rest.len().
            let size = usize::try_from(size).map_err(|_| Error::Truncated(h.kind))?;
            let header_len = usize::try_from(h.header_len).map_err(|_| Error::Truncated(h.kind))?;
            let body = rest.get(header_len..size).ok_or(Error::Truncated(h.kind))?;
            let found = RawBox { kind: h.kind, offset: self.pos, header_len, body };
            self.pos = self.pos.saturating_add(size);
            Ok(found)
        })();
        if item.is_err() {
            self.failed = true;
        }
        Some(item)
    }
}

/// The first child of type `kind`, if any (errors in the listing propagate).
pub fn find<'a>(buf: &'a [u8], parent: FourCC, kind: FourCC) -> Result<Option<RawBox<'a>>> {
    for b in boxes(buf, parent) {
        let b = b?;
        if b.kind == kind {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// Like [`find`], but a missing box is an error.
pub fn require<'a>(buf: &'a [u8], parent: FourCC, kind: FourCC) -> Result<RawBox<'a>> {
    find(buf, parent, kind)?.ok_or(Error::Missing(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::codes::*;

    #[test]
    fn zero_size_child_is_to_end_and_terminates() {
        let buf = [0, 0, 0, 0, b'f', b'r', b'e', b'e', 1, 2, 3];
        let v: Vec<_> = boxes(&buf, MOOV).collect();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].as_ref().unwrap().body, &[1, 2, 3]);
    }

    #[test]
    fn size_below_header_is_rejected() {
        let buf = [0, 0, 0, 4, b'f', b'r', b'e', b'e'];
        let v: Vec<_> = boxes(&buf, MOOV).collect();
        assert!(matches!(v[0], Err(Error::BadSize { .. })));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn size_past_parent_is_rejected() {
        let buf = [0, 0, 0, 200, b'f', b'r', b'e', b'e', 0];
        assert!(matches!(boxes(&buf, MOOV).next(), Some(Err(Error::BadSize { .. }))));
    }

    #[test]
    fn huge_count_does_not_allocate() {
        let buf = [0u8; 8];
        let r = Reader::new(&buf, STSZ);
        assert!(r.check_count(u32::MAX, 4).is_err());
        assert_eq!(r.check_count(2, 4).unwrap(), 2);
    }

    #[test]
    fn fourcc_display_escapes_binary() {
        assert_eq!(FourCC([b'a', 0, 0xff, b'z']).to_string(), "a??z");
    }
}
