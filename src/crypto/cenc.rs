//! `cenc`: AES-128-CTR with a 64-bit block counter (ISO/IEC 23001-7 §9.5; spec-notes §2.2).
//!
//! * Counter block for an 8-byte IV: `IV ‖ 0^64`; the low 64 bits are a big-endian block counter
//!   that wraps within those 64 bits and never carries into the IV half (`ctr::Ctr64BE`, the rule
//!   shaka-packager and Bento4 follow; `Ctr128BE` would carry).
//! * One keystream per sample: the protected ranges of all subsamples are encrypted as one
//!   continuous CTR stream; clear bytes consume no keystream, and the counter does not restart at
//!   a subsample boundary.
//!
//! The cipher only needs the forward AES direction, so it is keyed as [`Aes128Enc`] (no inverse
//! key schedule). [`encrypt_sample_with`] takes a key schedule prepared once per key for callers
//! that encrypt many small samples (audio), where key expansion is a visible share of the work.
//!
//! The keystream is generated here ([`CtrWalk`]) rather than through `ctr::Ctr64BE`: that type
//! asks the backend for a few blocks at a time through a buffering wrapper, and a `perf record`
//! of uncached cenc segments showed as much time in its block assembly and keystream copies
//! (`hybrid_array::from_fn`, `memmove`) as in AES itself. Here the whole sample is one backend
//! call (round keys loaded once) and the keystream comes in batches of the backend's parallel
//! width (64 blocks with VAES-512). The tests check the output against `ctr::Ctr64BE`.

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit, ParBlocks,
};
use aes::Aes128Enc;

use super::{Error, Key, Subsample};

/// Encrypts `sample` in place: the protected ranges of `subsamples` (or the whole sample when the
/// list is empty) as one continuous CTR keystream starting at counter block `iv ‖ 0^64`.
///
/// The map is checked before any byte is touched: on [`Error::MapMismatch`] the sample is
/// unchanged.
pub fn encrypt_sample(key: &Key, iv: &[u8; 8], sample: &mut [u8], subsamples: &[Subsample]) -> Result<(), Error> {
    encrypt_sample_with(&Aes128Enc::new(key.bytes().into()), iv, sample, subsamples)
}

/// [`encrypt_sample`] with a key schedule prepared by the caller (`Aes128Enc::new(key)`), so a
/// fragment of many samples under one key expands the key once.
pub fn encrypt_sample_with(
    cipher: &Aes128Enc,
    iv: &[u8; 8],
    sample: &mut [u8],
    subsamples: &[Subsample],
) -> Result<(), Error> {
    check_map(sample.len(), subsamples)?;
    cipher.encrypt_with_backend(CtrWalk { iv: u64::from_be_bytes(*iv), sample, subsamples });
    Ok(())
}

/// One sample's CTR pass inside ONE backend call. The counter block is `iv ‖ n` with `n` a
/// big-endian 64-bit block number from 0 that wraps within its 64 bits (`Ctr64BE`); a sample is
/// far shorter than 2^64 blocks, so the wrap is never reached, and `wrapping_add` keeps even that
/// case panic-free and equal to `Ctr64BE`.
struct CtrWalk<'a> {
    iv: u64,
    sample: &'a mut [u8],
    /// Checked by [`check_map`] to cover `sample` exactly (or empty: the whole sample).
    subsamples: &'a [Subsample],
}

impl BlockSizeUser for CtrWalk<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CtrWalk<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let CtrWalk { iv, sample, subsamples } = self;
        let mut stream = Keystream { backend, iv, next: 0, blocks: ParBlocks::<B>::default(), used: usize::MAX };
        if subsamples.is_empty() {
            stream.apply(sample);
            return;
        }
        let mut rest = sample;
        for s in subsamples {
            // `check_map` ruled out a subsample running past the end; stop rather than panic.
            let Some((range, tail)) = split_subsample(rest, s) else { return };
            stream.apply(range);
            rest = tail;
        }
    }
}

/// The keystream of one sample, generated one batch of the backend's parallel width at a time;
/// `used` bytes of the current batch are spent (`usize::MAX`: no batch yet).
struct Keystream<'b, B: BlockCipherEncBackend<BlockSize = U16>> {
    backend: &'b B,
    iv: u64,
    next: u64,
    blocks: ParBlocks<B>,
    used: usize,
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Keystream<'_, B> {
    /// XORs the next `data.len()` keystream bytes into `data`.
    #[inline(always)]
    fn apply(&mut self, mut data: &mut [u8]) {
        while !data.is_empty() {
            let batch = Array::slice_as_flattened(&self.blocks).len();
            if self.used >= batch {
                self.refill();
            }
            let ks = Array::slice_as_flattened(&self.blocks).get(self.used..).unwrap_or_default();
            let n = ks.len().min(data.len());
            let (now, later) = data.split_at_mut(n);
            for (d, k) in now.iter_mut().zip(ks) {
                *d ^= *k;
            }
            self.used += n;
            data = later;
        }
    }

    fn refill(&mut self) {
        let hi = u128::from(self.iv) << 64;
        for block in self.blocks.iter_mut() {
            *block = Array::from((hi | u128::from(self.next)).to_be_bytes());
            self.next = self.next.wrapping_add(1);
        }
        self.backend.encrypt_par_blocks_inplace(&mut self.blocks);
        self.used = 0;
    }
}

/// Splits `clear ‖ protected ‖ tail` off `buf`, returning the protected range and the tail, or
/// `None` when the subsample runs past the end (ruled out by [`check_map`] beforehand).
pub(super) fn split_subsample<'a>(buf: &'a mut [u8], s: &Subsample) -> Option<(&'a mut [u8], &'a mut [u8])> {
    let (_clear, rest) = buf.split_at_mut_checked(usize::from(s.clear))?;
    rest.split_at_mut_checked(usize::try_from(s.protected).ok()?)
}

/// Checks that `subsamples` covers exactly `len` bytes (an empty map means "the whole sample",
/// which always fits). Shared with `cbcs`.
pub(super) fn check_map(len: usize, subsamples: &[Subsample]) -> Result<(), Error> {
    if subsamples.is_empty() {
        return Ok(());
    }
    let covered = subsamples
        .iter()
        .try_fold(0u64, |sum, s| sum.checked_add(u64::from(s.clear))?.checked_add(u64::from(s.protected)));
    let size = len_u64(len);
    match covered {
        Some(covered) if covered == size => Ok(()),
        Some(covered) => Err(Error::MapMismatch { covered, size }),
        None => Err(Error::MapMismatch { covered: u64::MAX, size }),
    }
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use aes::cipher::{BlockCipherEncrypt, KeyIvInit, StreamCipher};
    use aes::Aes128;
    use ctr::Ctr64BE;

    use super::*;
    use crate::crypto::key::hex;

    const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const IV: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

    fn key() -> Key {
        Key::parse_hex(KEY).unwrap()
    }

    fn sub(clear: u16, protected: u32) -> Subsample {
        Subsample { clear, protected }
    }

    /// Deterministic non-trivial bytes.
    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + 7) as u8 ^ (i >> 8) as u8).collect()
    }

    /// Independent decryptor: gathers the protected ranges, runs one `Ctr64BE<Aes128>` stream
    /// over their concatenation (the crate's own KeyIvInit path), scatters them back.
    fn decrypt(key: &Key, iv: &[u8; 8], sample: &mut [u8], subsamples: &[Subsample]) {
        let mut counter = [0u8; 16];
        counter[..8].copy_from_slice(iv);
        let mut ctr = Ctr64BE::<Aes128>::new(key.bytes().into(), &counter.into());
        if subsamples.is_empty() {
            ctr.apply_keystream(sample);
            return;
        }
        let mut ranges = Vec::new();
        let mut pos = 0;
        for s in subsamples {
            pos += s.clear as usize;
            ranges.push(pos..pos + s.protected as usize);
            pos += s.protected as usize;
        }
        let mut joined: Vec<u8> = ranges.iter().flat_map(|r| sample[r.clone()].to_vec()).collect();
        ctr.apply_keystream(&mut joined);
        let mut at = 0;
        for r in ranges {
            sample[r.clone()].copy_from_slice(&joined[at..at + r.len()]);
            at += r.len();
        }
    }

    /// spec-notes §10.7: two subsamples (16 clear, 16 protected) × 2 over bytes 00..3f; the
    /// second protected range continues the counter at block 1.
    #[test]
    fn known_answer_two_ranges_continue_the_counter() {
        let plain: Vec<u8> = (0u8..0x40).collect();
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &[sub(16, 16), sub(16, 16)]).unwrap();
        assert_eq!(s[..16], plain[..16]);
        assert_eq!(hex(&s[16..32]), "621e8cf06f06b1dfa1978f464aaded0c");
        assert_eq!(s[32..48], plain[32..48]);
        assert_eq!(hex(&s[48..64]), "94002110373bf612c10eb66b8fa318e3");
    }

    #[test]
    fn empty_map_encrypts_the_whole_sample_including_a_partial_tail() {
        let plain = bytes(1000 + 7);
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &[]).unwrap();
        let mut expect = plain.clone();
        decrypt(&key(), &IV, &mut expect, &[]); // CTR: the same operation encrypts
        assert_eq!(s, expect);
        decrypt(&key(), &IV, &mut s, &[]);
        assert_eq!(s, plain);
    }

    #[test]
    fn round_trip_with_a_video_map() {
        // Leading clear runs of various sizes, protected ranges multiple of 16 and one that is
        // not (the keystream must still continue byte-exactly), an empty protected range and a
        // trailing clear-only subsample.
        let map = [sub(40, 4096), sub(5, 0), sub(103, 1600), sub(65535, 0), sub(7, 33), sub(12, 0)];
        let n: usize = map.iter().map(|s| s.clear as usize + s.protected as usize).sum();
        let plain = bytes(n);
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &map).unwrap();
        // Clear bytes untouched, protected bytes changed.
        let mut pos = 0;
        for m in &map {
            assert_eq!(s[pos..pos + m.clear as usize], plain[pos..pos + m.clear as usize]);
            pos += m.clear as usize;
            let p = pos..pos + m.protected as usize;
            if m.protected >= 16 {
                assert_ne!(s[p.clone()], plain[p.clone()]);
            }
            pos = p.end;
        }
        decrypt(&key(), &IV, &mut s, &map);
        assert_eq!(s, plain);
    }

    #[test]
    fn prepared_key_schedule_gives_the_same_output() {
        let map = [sub(40, 4096), sub(3, 160)];
        let mut a = bytes(40 + 4096 + 3 + 160);
        let mut b = a.clone();
        encrypt_sample(&key(), &IV, &mut a, &map).unwrap();
        let schedule = Aes128Enc::new(key().bytes().into());
        encrypt_sample_with(&schedule, &IV, &mut b, &map).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn map_mismatch_is_an_error_and_leaves_the_sample_unchanged() {
        let plain = bytes(100);
        for (map, covered) in [
            (vec![sub(10, 80)], 90),
            (vec![sub(10, 80), sub(11, 0)], 101),
            (vec![sub(0, 0)], 0),
            (vec![sub(100, 0), sub(0, 16)], 116),
        ] {
            let mut s = plain.clone();
            assert_eq!(
                encrypt_sample(&key(), &IV, &mut s, &map),
                Err(Error::MapMismatch { covered, size: 100 }),
                "{map:?}"
            );
            assert_eq!(s, plain);
        }
        // A clear-only map is valid (nothing to encrypt).
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &[sub(100, 0)]).unwrap();
        assert_eq!(s, plain);
    }

    #[test]
    fn map_sum_overflow_is_a_mismatch_not_a_panic() {
        let map = vec![sub(u16::MAX, u32::MAX); 3];
        let mut s = bytes(10);
        assert!(matches!(encrypt_sample(&key(), &IV, &mut s, &map), Err(Error::MapMismatch { size: 10, .. })));
    }

    /// `Ctr64BE` wraps the low 64 bits without carrying into the IV half: from counter block
    /// `iv ‖ ff…ff` the next block is `iv ‖ 00…00` (not `iv+1 ‖ 00…00`), checked against AES of
    /// hand-built counter blocks. `iv ‖ 0^64` is also the first block of `encrypt_sample`.
    #[test]
    fn counter_wraps_in_the_low_64_bits_only() {
        let aes = Aes128::new(key().bytes().into());
        let block = |hi: [u8; 8], lo: [u8; 8]| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&hi);
            b[8..].copy_from_slice(&lo);
            let mut b = b.into();
            aes.encrypt_block(&mut b);
            b
        };
        let ks_ff = block(IV, [0xff; 8]);
        let ks_00 = block(IV, [0; 8]);
        let ks_carry = block([0, 1, 2, 3, 4, 5, 6, 8], [0; 8]);

        let mut start = [0u8; 16];
        start[..8].copy_from_slice(&IV);
        start[8..].copy_from_slice(&[0xff; 8]);
        let mut ctr = Ctr64BE::<Aes128>::new(key().bytes().into(), &start.into());
        let mut ks = [0u8; 48];
        ctr.apply_keystream(&mut ks);
        assert_eq!(ks[..16], ks_ff[..]);
        assert_eq!(ks[16..32], ks_00[..]);
        assert_ne!(ks[16..32], ks_carry[..]);
        assert_eq!(ks[32..48], block(IV, [0, 0, 0, 0, 0, 0, 0, 1])[..]);

        // encrypt_sample starts at iv ‖ 0^64.
        let mut zeros = [0u8; 16];
        encrypt_sample(&key(), &IV, &mut zeros, &[]).unwrap();
        assert_eq!(zeros[..], ks_00[..]);
    }

    #[test]
    fn clear_bytes_consume_no_keystream() {
        // Same protected bytes, different clear prefixes: identical ciphertext.
        let payload = bytes(64);
        let mut a = [vec![0xaa; 3], payload.clone()].concat();
        let mut b = [vec![0xbb; 200], payload.clone()].concat();
        encrypt_sample(&key(), &IV, &mut a, &[sub(3, 64)]).unwrap();
        encrypt_sample(&key(), &IV, &mut b, &[sub(200, 64)]).unwrap();
        assert_eq!(a[3..], b[200..]);
        let mut whole = payload;
        encrypt_sample(&key(), &IV, &mut whole, &[]).unwrap();
        assert_eq!(a[3..], whole[..]);
    }

    /// Against `ctr::Ctr64BE` over lengths and maps that start, end and split ranges on either
    /// side of the keystream batch boundary (64 blocks = 1 KiB with VAES-512, 8 with AES-NI):
    /// spent keystream bytes carry over from one protected range to the next.
    #[test]
    fn batches_carry_over_between_ranges() {
        for len in [0usize, 1, 15, 16, 17, 127, 128, 129, 1023, 1024, 1025, 2047, 4096 + 3, 70_001] {
            let plain = bytes(len);
            let mut s = plain.clone();
            encrypt_sample(&key(), &IV, &mut s, &[]).unwrap();
            let mut expect = plain.clone();
            decrypt(&key(), &IV, &mut expect, &[]);
            assert_eq!(s, expect, "whole sample of {len}");
        }
        let maps: [&[Subsample]; 4] = [
            &[sub(3, 1021), sub(9, 4), sub(0, 1), sub(2, 2048)],
            &[sub(0, 1024), sub(1, 1024), sub(7, 0), sub(100, 129)],
            &[sub(5, 127), sub(5, 1), sub(5, 1025), sub(0, 0), sub(33, 17)],
            &[sub(65535, 999), sub(1, 65536 + 5)],
        ];
        for map in maps {
            let n: usize = map.iter().map(|s| s.clear as usize + s.protected as usize).sum();
            let plain = bytes(n);
            let mut s = plain.clone();
            encrypt_sample(&key(), &IV, &mut s, map).unwrap();
            decrypt(&key(), &IV, &mut s, map);
            assert_eq!(s, plain, "{map:?}");
        }
    }
}
