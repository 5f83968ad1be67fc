//! Length-prefixed NAL units → subsample map (ISO/IEC 23001-7 §9.5 / §10.4, spec-notes §2.1–§2.3).
//!
//! The codec modules say how many leading bytes of each NAL unit stay clear (all of a non-VCL
//! NAL unit; header + slice header of a VCL NAL unit); this module walks the sample's
//! `length ‖ NAL unit` records (ISO/IEC 14496-15 §5.3.2 / §8.3.2) and turns those counts into
//! `(clear, protected)` pairs the way Shaka Packager's `SubsampleOrganizer` does:
//! * every length field is clear;
//! * clear bytes accumulate until the next protected range, so runs of clear NAL units share one
//!   subsample;
//! * `cenc`: each protected range is cut down to a multiple of 16 bytes and the residual joins the
//!   *leading* clear count (CMAF §8.2.2.1 / 23001-7 §9.5: protected ranges of whole blocks);
//! * clear counts above 65535 (`BytesOfClearData` is 16 bits) become `{65535, 0}` entries;
//! * clear bytes after the last protected range become a final `{n, 0}` entry.

use super::{Parse, Scheme};
use crate::crypto::Subsample;

/// AES block size: the `cenc` protected-range granule.
const BLOCK: u64 = 16;

/// Builds the map of one sample. `clear_len(nal)` returns how many leading bytes of the NAL unit
/// (header included, length field excluded) stay clear; it is called on every NAL unit in order,
/// so it can also take in-band parameter sets.
pub(super) fn build(
    sample: &[u8],
    length_size: usize,
    scheme: Scheme,
    mut clear_len: impl FnMut(&[u8]) -> Parse<usize>,
) -> Parse<Vec<Subsample>> {
    let mut org = Organizer { align: scheme == Scheme::Cenc, clear: 0, out: Vec::new() };
    let mut rest = sample;
    while !rest.is_empty() {
        let (len_field, tail) = rest.split_at_checked(length_size).ok_or("NAL length field truncated")?;
        let len = len_field.iter().fold(0u64, |acc, &b| acc.wrapping_shl(8) | u64::from(b));
        let len = usize::try_from(len).map_err(|_| "NAL unit longer than the sample")?;
        let (nal, tail) = tail.split_at_checked(len).ok_or("NAL unit longer than the sample")?;
        rest = tail;
        let clear = if nal.is_empty() { 0 } else { clear_len(nal)? };
        if clear > nal.len() {
            return Err("slice header longer than its NAL unit");
        }
        let protected = nal.len().wrapping_sub(clear);
        org.add(to_u64(length_size).saturating_add(to_u64(clear)), to_u64(protected))?;
    }
    org.finish()
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Accumulates clear bytes and emits subsamples.
struct Organizer {
    align: bool,
    /// Clear bytes not yet emitted.
    clear: u64,
    out: Vec<Subsample>,
}

impl Organizer {
    fn add(&mut self, clear: u64, protected: u64) -> Parse<()> {
        let residual = if self.align { protected % BLOCK } else { 0 };
        let protected = protected.wrapping_sub(residual);
        self.clear = self.clear.saturating_add(clear).saturating_add(residual);
        if protected == 0 {
            return Ok(());
        }
        self.push(protected)
    }

    /// Emits the accumulated clear bytes followed by `protected` bytes.
    fn push(&mut self, protected: u64) -> Parse<()> {
        let max = u64::from(u16::MAX);
        while self.clear > max {
            self.out.push(Subsample { clear: u16::MAX, protected: 0 });
            self.clear = self.clear.wrapping_sub(max);
        }
        self.out.push(Subsample {
            clear: u16::try_from(self.clear).map_err(|_| "clear run too long")?,
            protected: u32::try_from(protected).map_err(|_| "protected range too long")?,
        });
        self.clear = 0;
        Ok(())
    }

    fn finish(mut self) -> Parse<Vec<Subsample>> {
        if self.clear > 0 {
            self.push(0)?;
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ss(pairs: &[(u16, u32)]) -> Vec<Subsample> {
        pairs.iter().map(|&(clear, protected)| Subsample { clear, protected }).collect()
    }

    /// A sample of NAL units given as (size, clear bytes) with 4-byte lengths; the returned
    /// closure answers the clear count per NAL unit by its first byte (= its index).
    fn sample(nals: &[(usize, usize)]) -> (Vec<u8>, Vec<usize>) {
        let mut s = Vec::new();
        for (i, &(size, _)) in nals.iter().enumerate() {
            s.extend_from_slice(&(size as u32).to_be_bytes());
            let mut nal = vec![0xAA; size];
            if size > 0 {
                nal[0] = i as u8;
            }
            s.extend_from_slice(&nal);
        }
        (s, nals.iter().map(|&(_, c)| c).collect())
    }

    fn run(nals: &[(usize, usize)], scheme: Scheme) -> Parse<Vec<Subsample>> {
        let (s, clears) = sample(nals);
        build(&s, 4, scheme, |nal| Ok(clears[nal[0] as usize]))
    }

    #[test]
    fn cbcs_protects_from_the_slice_header_on() {
        // SEI (all clear), then a slice of 100 bytes with a 7-byte header.
        let m = run(&[(20, 20), (100, 7)], Scheme::Cbcs).unwrap();
        assert_eq!(m, ss(&[(4 + 20 + 4 + 7, 93)]));
    }

    #[test]
    fn cenc_moves_the_residual_into_the_leading_clear() {
        // 93 protected → 80, residual 13 joins the clear.
        let m = run(&[(20, 20), (100, 7)], Scheme::Cenc).unwrap();
        assert_eq!(m, ss(&[(4 + 20 + 4 + 7 + 13, 80)]));
    }

    #[test]
    fn small_slices_and_trailing_clear_nal_units() {
        // A slice whose rest is < 16 bytes is all clear in cenc and merges forward.
        let m = run(&[(10, 3), (50, 2), (5, 5)], Scheme::Cenc).unwrap();
        // NAL 0: 7 protected → 0, all clear (4+10). NAL 1: 48 protected, clear 4+2.
        assert_eq!(m, ss(&[(14 + 6, 48), (9, 0)]));
        let m = run(&[(10, 3), (50, 2), (5, 5)], Scheme::Cbcs).unwrap();
        assert_eq!(m, ss(&[(7, 7), (6, 48), (9, 0)]));
    }

    #[test]
    fn long_clear_runs_are_split() {
        let m = run(&[(70000, 70000), (100, 4)], Scheme::Cbcs).unwrap();
        assert_eq!(m, ss(&[(65535, 0), ((70004 + 8 - 65535) as u16, 96)]));
        let m = run(&[(140000, 140000)], Scheme::Cbcs).unwrap();
        assert_eq!(m, ss(&[(65535, 0), (65535, 0), ((140004u32 - 131070) as u16, 0)]));
        let total: u64 = m.iter().map(|s| u64::from(s.clear) + u64::from(s.protected)).sum();
        assert_eq!(total, 140004);
    }

    #[test]
    fn malformed_length_fields() {
        // Truncated length field, NAL past the end, clear count past the NAL.
        assert!(build(&[0, 0, 1], 4, Scheme::Cbcs, |_| Ok(0)).is_err());
        assert!(build(&[0, 0, 0, 9, 1, 2], 4, Scheme::Cbcs, |_| Ok(0)).is_err());
        assert!(build(&[0, 0, 0, 2, 1, 2], 4, Scheme::Cbcs, |_| Ok(3)).is_err());
        // Zero-length NAL units are just clear length fields.
        let m = build(&[0, 0, 0, 0], 4, Scheme::Cbcs, |_| Ok(0)).unwrap();
        assert_eq!(m, ss(&[(4, 0)]));
        assert_eq!(build(&[], 4, Scheme::Cbcs, |_| Ok(0)).unwrap(), vec![]);
        // 1- and 2-byte length fields.
        let m = build(&[3, 9, 9, 9], 1, Scheme::Cbcs, |_| Ok(1)).unwrap();
        assert_eq!(m, ss(&[(2, 2)]));
        let m = build(&[0, 3, 9, 9, 9], 2, Scheme::Cbcs, |_| Ok(1)).unwrap();
        assert_eq!(m, ss(&[(3, 2)]));
    }
}
