//! Box writer: closures write the body and the size is patched in afterwards, so the nesting
//! of calls is the box tree and a size can never disagree with its content.

use super::FourCC;

/// Writes a box of type `kind` whose body is produced by `body`.
pub fn write_box(out: &mut Vec<u8>, kind: FourCC, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&kind.0);
    body(out);
    patch_size(out, start);
}

/// Writes a full box (version + flags) of type `kind`.
pub fn write_full_box(out: &mut Vec<u8>, kind: FourCC, version: u8, flags: u32, body: impl FnOnce(&mut Vec<u8>)) {
    write_box(out, kind, |o| {
        o.push(version);
        o.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(o);
    });
}

fn patch_size(out: &mut [u8], start: usize) {
    // Boxes we build are segments and init data, far below 4 GiB; saturate rather than wrap.
    let size = u32::try_from(out.len().saturating_sub(start)).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(start..start.saturating_add(4)) {
        slot.copy_from_slice(&size.to_be_bytes());
    }
}

/// Appends big-endian integers.
pub trait PutBe {
    /// u16
    fn put_u16(&mut self, v: u16);
    /// u32
    fn put_u32(&mut self, v: u32);
    /// u64
    fn put_u64(&mut self, v: u64);
    /// i32
    fn put_i32(&mut self, v: i32);
}

impl PutBe for Vec<u8> {
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::codes::*;
    use crate::mp4::reader::boxes;

    #[test]
    fn nested_sizes_round_trip() {
        let mut out = Vec::new();
        write_box(&mut out, MOOF, |o| {
            write_full_box(o, MFHD, 0, 0, |o| o.put_u32(7));
            write_box(o, TRAF, |o| o.put_u64(1));
        });
        let top: Vec<_> = boxes(&out, FTYP).map(|b| b.unwrap()).collect();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].kind, MOOF);
        let kids: Vec<_> = boxes(top[0].body, MOOF).map(|b| b.unwrap()).collect();
        assert_eq!(kids[0].kind, MFHD);
        assert_eq!(kids[0].body, &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(kids[1].body.len(), 8);
    }
}
