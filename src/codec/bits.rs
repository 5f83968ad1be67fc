//! RBSP bit reader over an *escaped* NAL unit payload.
//!
//! Reads the descriptors `u(n)`, `ue(v)`, `se(v)` (H.264 §7.2 / §9.1, H.265 §7.2 / §9.2) and
//! drops every `emulation_prevention_three_byte` (the `0x03` of `0x00 0x00 0x03`, H.264 §7.4.1,
//! H.265 §7.4.2) while loading bytes, so the RBSP bit position can always be mapped back to the
//! escaped byte offset: [`BitReader::byte_pos`] counts the source bytes loaded so far, emulation
//! prevention bytes included. A slice header that ends in the middle of a byte therefore reports
//! that byte as consumed (round up), and an emulation prevention byte that follows the last header
//! byte is not counted (it has not been loaded yet), which is what Shaka Packager's
//! `H26xBitReader` does too.

use super::Parse;

/// Bit reader over escaped NAL payload bytes.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    /// Index of the next source byte to load.
    next: usize,
    /// The byte being read.
    cur: u8,
    /// Unread bits of `cur` (0..=8).
    left: u8,
    /// Consecutive zero bytes just loaded (two of them arm the emulation prevention check).
    zeros: u8,
    /// Emulation prevention bytes skipped so far.
    epb: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`, the NAL unit payload after its header.
    pub(super) fn new(data: &'a [u8]) -> Self {
        BitReader { data, next: 0, cur: 0, left: 0, zeros: 0, epb: 0 }
    }

    /// Source (escaped) bytes consumed so far, counting a partly read byte as consumed.
    pub(super) fn byte_pos(&self) -> usize {
        self.next
    }

    /// RBSP bits read so far (emulation prevention bytes excluded): what a test's bit writer
    /// wrote for the same syntax.
    #[cfg(test)]
    pub(super) fn rbsp_bit_pos(&self) -> u64 {
        ((self.next - self.epb) * 8 - usize::from(self.left)) as u64
    }

    /// Whether the next bit starts a byte (H.264/H.265 `byte_aligned()`).
    pub(super) fn byte_aligned(&self) -> bool {
        self.left == 0
    }

    fn load(&mut self) -> Parse<()> {
        let mut byte = *self.data.get(self.next).ok_or("truncated")?;
        if self.zeros >= 2 && byte == 0x03 {
            // emulation_prevention_three_byte: not part of the RBSP.
            self.next = self.next.checked_add(1).ok_or("truncated")?;
            self.zeros = 0;
            self.epb = self.epb.saturating_add(1);
            byte = *self.data.get(self.next).ok_or("truncated")?;
        }
        self.next = self.next.checked_add(1).ok_or("truncated")?;
        self.zeros = if byte == 0 { self.zeros.saturating_add(1) } else { 0 };
        self.cur = byte;
        self.left = 8;
        Ok(())
    }

    /// One bit.
    pub(super) fn bit(&mut self) -> Parse<u32> {
        if self.left == 0 {
            self.load()?;
        }
        self.left = self.left.saturating_sub(1);
        Ok(u32::from(self.cur.checked_shr(u32::from(self.left)).unwrap_or(0) & 1))
    }

    /// `u(1)` as a flag.
    pub(super) fn flag(&mut self) -> Parse<bool> {
        Ok(self.bit()? == 1)
    }

    /// `u(n)`, `n` ≤ 32.
    pub(super) fn u(&mut self, n: u32) -> Parse<u32> {
        if n > 32 {
            return Err("field wider than 32 bits");
        }
        let mut v = 0u32;
        for _ in 0..n {
            v = v.wrapping_shl(1) | self.bit()?;
        }
        Ok(v)
    }

    /// Skips `n` bits.
    pub(super) fn skip(&mut self, n: u32) -> Parse<()> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    /// `ue(v)` (§9.1): up to 31 leading zero bits, so values up to 2^32 − 2.
    pub(super) fn ue(&mut self) -> Parse<u32> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros = zeros.saturating_add(1);
            if zeros > 31 {
                return Err("exp-Golomb code longer than 32 bits");
            }
        }
        let rest = self.u(zeros)?;
        // 2^zeros − 1 + rest ≤ 2^32 − 2 for zeros ≤ 31.
        let base = 1u32.checked_shl(zeros).ok_or("ue overflow")?.wrapping_sub(1);
        base.checked_add(rest).ok_or("ue overflow")
    }

    /// `ue(v)` that must not exceed `max` (the semantic range of the syntax element).
    pub(super) fn ue_max(&mut self, max: u32, what: &'static str) -> Parse<u32> {
        let v = self.ue()?;
        if v > max {
            return Err(what);
        }
        Ok(v)
    }

    /// `se(v)` (§9.1.1): k ↦ (−1)^(k+1) · Ceil(k ÷ 2).
    pub(super) fn se(&mut self) -> Parse<i32> {
        let k = i64::from(self.ue()?);
        let magnitude = k.saturating_add(1) / 2;
        let v = if k % 2 == 1 { magnitude } else { magnitude.saturating_neg() };
        i32::try_from(v).map_err(|_| "se overflow")
    }
}

/// Ceil(Log2(n)) for n ≥ 1 (0 for n ≤ 1): the width of a `u(v)` index into `n` items.
pub(super) fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        return 0;
    }
    64u32.saturating_sub(n.saturating_sub(1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::BitWriter;
    use super::*;

    #[test]
    fn fixed_width_fields() {
        let mut r = BitReader::new(&[0b1010_0000, 0xff, 0x12, 0x34, 0x56, 0x78]);
        assert_eq!(r.u(3).unwrap(), 0b101);
        assert_eq!(r.byte_pos(), 1);
        assert!(!r.byte_aligned());
        assert_eq!(r.u(5).unwrap(), 0);
        assert!(r.byte_aligned());
        assert_eq!(r.u(8).unwrap(), 0xff);
        assert_eq!(r.u(32).unwrap(), 0x1234_5678);
        assert!(r.u(1).is_err());
        assert!(r.u(33).is_err());
    }

    #[test]
    fn exp_golomb_table_9_2() {
        // H.264 Table 9-2: 1 → 0, 010 → 1, 011 → 2, 00100 → 3 … 0001000 → 7.
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0010, 0b1000_1000]);
        let vals: Vec<u32> = (0..6).map(|_| r.ue().unwrap()).collect();
        assert_eq!(vals, vec![0, 1, 2, 3, 4, 7]);
    }

    #[test]
    fn exp_golomb_round_trip_and_signed_mapping() {
        let mut w = BitWriter::new();
        let unsigned = [0u64, 1, 2, 3, 254, 255, 65535, (1 << 31) - 1, u32::MAX as u64 - 1];
        let signed = [0i64, 1, -1, 2, -2, 127, -128, i32::MAX as i64, -(i32::MAX as i64)];
        for &v in &unsigned {
            w.ue(v);
        }
        for &v in &signed {
            w.se(v);
        }
        w.u(1, 1);
        let mut r = BitReader::new(&w.bytes);
        for &v in &unsigned {
            assert_eq!(u64::from(r.ue().unwrap()), v);
        }
        for &v in &signed {
            assert_eq!(i64::from(r.se().unwrap()), v);
        }
    }

    #[test]
    fn exp_golomb_longer_than_32_bits_is_an_error() {
        // 32 leading zeros.
        let mut r = BitReader::new(&[0, 0, 0, 0, 0x80, 0, 0, 0, 0]);
        assert!(r.ue().is_err());
        // Truncated suffix.
        let mut r = BitReader::new(&[0b0000_0010]);
        assert!(r.ue().is_err());
        // Above the element's range: "010" = 1 > 0.
        assert_eq!(BitReader::new(&[0x40]).ue_max(0, "x"), Err("x"));
        assert_eq!(BitReader::new(&[0x40]).ue_max(1, "x"), Ok(1));
    }

    #[test]
    fn emulation_prevention_bytes_are_skipped_and_counted() {
        // RBSP 00 00 00 01 is escaped as 00 00 03 00 01.
        let escaped = [0x00, 0x00, 0x03, 0x00, 0x01];
        let mut r = BitReader::new(&escaped);
        assert_eq!(r.u(16).unwrap(), 0);
        // Two RBSP bytes read, the EPB not yet loaded.
        assert_eq!(r.byte_pos(), 2);
        assert_eq!(r.u(8).unwrap(), 0);
        // The third RBSP byte is escaped byte 3: the EPB counts.
        assert_eq!(r.byte_pos(), 4);
        assert_eq!(r.u(8).unwrap(), 1);
        assert_eq!(r.byte_pos(), 5);
    }

    #[test]
    fn epb_rearms_after_two_new_zero_bytes() {
        // 00 00 03 03: the second 03 is data (zero count reset by the EPB).
        let mut r = BitReader::new(&[0x00, 0x00, 0x03, 0x03]);
        assert_eq!(r.u(24).unwrap(), 0x000003);
        assert_eq!(r.byte_pos(), 4);
        // 00 00 03 00 00 03 01: two EPBs.
        let mut r = BitReader::new(&[0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x01]);
        assert_eq!(r.u(32).unwrap(), 0);
        assert_eq!(r.u(8).unwrap(), 1);
        assert_eq!(r.byte_pos(), 7);
        // 03 without two preceding zeros is data.
        let mut r = BitReader::new(&[0x00, 0x03, 0x00]);
        assert_eq!(r.u(24).unwrap(), 0x000300);
    }

    #[test]
    fn epb_inside_an_exp_golomb_code() {
        // ue with 17 leading zeros spans 00 00 [03] 00 40 ...: value 2^17 - 1 + suffix.
        // Bits: 17 zeros, a one, 17-bit suffix 0 → RBSP 00 00 40 00 00 (then padding).
        let escaped = [0x00, 0x00, 0x03, 0x40, 0x00, 0x00];
        let mut r = BitReader::new(&escaped);
        assert_eq!(r.ue().unwrap(), (1 << 17) - 1);
        assert_eq!(r.byte_pos(), 6);
    }

    #[test]
    fn trailing_epb_at_end_of_data_is_truncation() {
        let mut r = BitReader::new(&[0x00, 0x00, 0x03]);
        assert_eq!(r.u(16).unwrap(), 0);
        assert!(r.u(1).is_err());
    }

    #[test]
    fn ceil_log2_values() {
        let cases = [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4)];
        for (n, v) in cases {
            assert_eq!(ceil_log2(n), v, "n = {n}");
        }
        assert_eq!(ceil_log2(1 << 40), 40);
        assert_eq!(ceil_log2((1 << 40) + 1), 41);
    }
}
