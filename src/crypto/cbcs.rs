//! `cbcs`: AES-128-CBC with a crypt:skip block pattern and a constant IV that is re-applied at
//! every subsample (ISO/IEC 23001-7 §9.6, §10.4; spec-notes §2.3).
//!
//! Within one subsample's protected range, 16-byte blocks go `crypt` encrypted, `skip` clear,
//! `crypt` encrypted, … (1:9 for video). The CBC chain runs across the encrypted blocks only: each
//! encrypted block is XORed with the previous *encrypted* block's ciphertext, skipped blocks do
//! not take part. A full block in a crypt slot at the end is encrypted; a partial (< 16 B) tail
//! always stays clear (cbcs has no padding and no ciphertext stealing).
//!
//! Patterns without a skip or without a crypt count (`0:0` for audio "whole-block full-sample"
//! encryption, and also `n:0` and `0:n`) encrypt every full block: that is what decryptors do for
//! a pattern that is not in effect (Chromium's `EncryptionPattern::IsInEffect`, shaka treats 0:0
//! as 1:0), so the output never leaves blocks clear that a player would try to decrypt.
//!
//! The CBC chain itself is written here (five lines in [`CbcWalk`]) on top of the `aes` block
//! cipher backend instead of going through `cbc::Encryptor`: that crate keeps the chain value
//! behind a reference and round-trips it through memory for every block, which cost ~20 % of
//! serial CBC throughput (1.16 vs 1.41 GB/s on the bench machine, where OpenSSL does 1.41). The
//! tests check the output against `cbc::Encryptor`/`cbc::Decryptor`.
//!
//! A segment is encrypted with [`encrypt_samples_with`]: each protected range is its own chain,
//! so [`CbcLanes`] advances many chains together, one block of each per batch of the backend
//! (8 blocks with AES-NI, 64 with VAES-512), longest chains first, and finishes the last few one
//! block at a time. A single long chain (an I-frame's slice) stays serial: that is CBC.

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit, ParBlocks,
};
use aes::Aes128Enc;

use super::cenc::{check_map, split_subsample};
use super::{Error, Key, Subsample};

/// One AES block.
type Block = Array<u8, U16>;

/// Encrypts `sample` in place. With subsamples, each protected range starts from `iv` and is
/// encrypted in the `crypt:skip` block pattern (1:9 for video); without subsamples the whole
/// sample is one range. `crypt == 0 && skip == 0` means every full block (audio). A trailing
/// partial block always stays clear.
///
/// The map is checked before any byte is touched: on [`Error::MapMismatch`] the sample is
/// unchanged.
pub fn encrypt_sample(
    key: &Key,
    iv: &[u8; 16],
    sample: &mut [u8],
    subsamples: &[Subsample],
    crypt: u8,
    skip: u8,
) -> Result<(), Error> {
    encrypt_sample_with(&Aes128Enc::new(key.bytes().into()), iv, sample, subsamples, crypt, skip)
}

/// [`encrypt_sample`] with a key schedule prepared by the caller (`Aes128Enc::new(key)`), so a
/// fragment of many samples under one key expands the key once.
pub fn encrypt_sample_with(
    cipher: &Aes128Enc,
    iv: &[u8; 16],
    sample: &mut [u8],
    subsamples: &[Subsample],
    crypt: u8,
    skip: u8,
) -> Result<(), Error> {
    check_map(sample.len(), subsamples)?;
    let pattern = Pattern::new(crypt, skip);
    if subsamples.is_empty() {
        encrypt_range(cipher, iv, sample, pattern);
        return Ok(());
    }
    // `check_map` has ruled out a subsample running past the end; mapped to the same error
    // rather than a panic.
    let size = u64::try_from(sample.len()).unwrap_or(u64::MAX);
    let unreachable = || Error::MapMismatch { covered: u64::MAX, size };
    let mut rest = sample;
    for s in subsamples {
        let (range, tail) = split_subsample(rest, s).ok_or_else(unreachable)?;
        // Each range starts a new chain from the constant IV (spec-notes §2.3).
        encrypt_range(cipher, iv, range, pattern);
        rest = tail;
    }
    Ok(())
}

/// Encrypts the samples laid out back to back in `data` (each given by its length and map,
/// in order), with the same output as [`encrypt_sample_with`] on each in turn.
///
/// CBC is serial within a chain, but every protected range starts its own chain from `iv`, so
/// the chains of a segment's ranges are independent: [`CbcLanes`] runs as many of them side by
/// side as the AES backend encrypts blocks at once (8 with AES-NI), which is what keeps `cbcs`
/// from running at one block per AES latency (`openssl speed` aes-128-cbc: ~1.4 GB/s, against
/// ~10 GB/s for the parallel CTR).
///
/// Every map is checked before any byte is touched: on error `data` is unchanged.
pub fn encrypt_samples_with<'m>(
    cipher: &Aes128Enc,
    iv: &[u8; 16],
    data: &mut [u8],
    samples: impl IntoIterator<Item = (usize, &'m [Subsample])>,
    crypt: u8,
    skip: u8,
) -> Result<(), Error> {
    let mut chains: Vec<&mut [Block]> = Vec::new();
    let mut rest = data;
    for (len, map) in samples {
        let size = u64::try_from(rest.len()).unwrap_or(u64::MAX);
        let short = || Error::MapMismatch { covered: u64::try_from(len).unwrap_or(u64::MAX), size };
        let (sample, tail) = rest.split_at_mut_checked(len).ok_or_else(short)?;
        rest = tail;
        check_map(sample.len(), map)?;
        if map.is_empty() {
            chains.push(Block::slice_as_chunks_mut(sample).0);
            continue;
        }
        let mut left = sample;
        for s in map {
            let unreachable = || Error::MapMismatch { covered: u64::MAX, size };
            let (range, t) = split_subsample(left, s).ok_or_else(unreachable)?;
            chains.push(Block::slice_as_chunks_mut(range).0);
            left = t;
        }
    }
    chains.retain(|c| !c.is_empty());
    // Longest first: the long chains start at once instead of running alone at the end.
    chains.sort_by_key(|c| std::cmp::Reverse(c.len()));
    cipher.encrypt_with_backend(CbcLanes { iv: Block::from(*iv), chains, pattern: Pattern::new(crypt, skip) });
    Ok(())
}

/// CBC-encrypts the full blocks of `range` selected by `pattern`, in one chain starting at `iv`;
/// a partial trailing block is left as it is. Also used by `hls` (whole segment, padded).
pub(super) fn encrypt_range(cipher: &Aes128Enc, iv: &[u8; 16], range: &mut [u8], pattern: Pattern) {
    // Full blocks as `&mut [Block]` without copying; the partial tail stays clear.
    let (blocks, _clear_tail) = Block::slice_as_chunks_mut(range);
    cipher.encrypt_with_backend(CbcWalk { iv: Block::from(*iv), blocks, pattern });
}

/// A crypt:skip pattern in 16-byte blocks; `None` = every full block.
#[derive(Clone, Copy)]
pub(super) struct Pattern(Option<(usize, usize)>);

impl Pattern {
    /// Every full block (plain CBC).
    pub(super) const ALL: Pattern = Pattern(None);

    fn new(crypt: u8, skip: u8) -> Pattern {
        if crypt == 0 || skip == 0 {
            Pattern::ALL
        } else {
            Pattern(Some((usize::from(crypt), usize::from(skip))))
        }
    }
}

/// The CBC chain over one range, run inside ONE backend call: the `aes` crate selects
/// AES-NI/VAES and (with VAES) broadcasts the round keys per `encrypt_with_backend` call, so
/// encrypting crypt slots one call at a time made 1:9 about three times slower.
struct CbcWalk<'a> {
    iv: Block,
    blocks: &'a mut [Block],
    pattern: Pattern,
}

impl BlockSizeUser for CbcWalk<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcWalk<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let CbcWalk { iv, blocks, pattern } = self;
        serial(backend, blocks, 0, iv, pattern);
    }
}

/// Continues one CBC chain over `blocks` from encrypted block `next`, whose chain value (the IV,
/// or the ciphertext of the chain's previous encrypted block) is `chain`: one block per AES call.
/// Skipped blocks never touch the chain. Shared by [`CbcWalk`] and the last lanes of [`CbcLanes`].
#[inline(always)]
fn serial<B: BlockCipherEncBackend<BlockSize = U16>>(
    backend: &B,
    blocks: &mut [Block],
    mut next: usize,
    mut chain: Block,
    pattern: Pattern,
) {
    // The chain value stays in a local (a register), not behind a reference.
    while let Some(block) = blocks.get_mut(next) {
        let mut t = *block;
        for (b, c) in t.iter_mut().zip(chain.iter()) {
            *b ^= *c;
        }
        backend.encrypt_block((&mut t).into());
        chain = t;
        *block = t;
        next = pattern.next(next);
    }
}

impl Pattern {
    /// The index of the next encrypted block after encrypted block `i`.
    #[inline(always)]
    fn next(self, i: usize) -> usize {
        match self.0 {
            None => i.saturating_add(1),
            Some((crypt, skip)) => {
                let group = crypt.saturating_add(skip);
                let at = i % group;
                if at + 1 < crypt {
                    i.saturating_add(1)
                } else {
                    i.saturating_add(group - at)
                }
            }
        }
    }
}

/// Independent CBC chains (one per protected range, each from `iv`), encrypted a block of each
/// of up to the backend's parallel width at a time.
struct CbcLanes<'a> {
    iv: Block,
    chains: Vec<&'a mut [Block]>,
    pattern: Pattern,
}

/// A chain in progress: its blocks, the next block to encrypt and the last ciphertext block.
struct Lane<'a> {
    blocks: &'a mut [Block],
    next: usize,
    chain: Block,
}

impl BlockSizeUser for CbcLanes<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcLanes<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let CbcLanes { iv, chains, pattern } = self;
        let mut par = ParBlocks::<B>::default();
        let width = par.len().max(1);
        let mut waiting = chains.into_iter();
        let mut lanes: Vec<Lane<'_>> = Vec::with_capacity(width);
        loop {
            while lanes.len() < width {
                match waiting.next() {
                    Some(blocks) => lanes.push(Lane { blocks, next: 0, chain: iv }),
                    None => break,
                }
            }
            if lanes.is_empty() {
                return;
            }
            // The last few chains (often one long I-frame slice) go one block at a time: a
            // batch costs about the same however few of its slots are in use (64 blocks with
            // VAES-512), so below an eighth of the width serial is cheaper.
            if lanes.len() < (width / 8).max(2) && waiting.len() == 0 {
                for Lane { blocks, next, chain } in lanes {
                    serial(backend, blocks, next, chain, pattern);
                }
                return;
            }
            // Slots without a lane (the last few chains) encrypt stale blocks, unused.
            for (slot, lane) in par.iter_mut().zip(lanes.iter()) {
                if let Some(b) = lane.blocks.get(lane.next) {
                    *slot = *b;
                    for (x, c) in slot.iter_mut().zip(lane.chain.iter()) {
                        *x ^= *c;
                    }
                }
            }
            backend.encrypt_par_blocks_inplace(&mut par);
            for (slot, lane) in par.iter().zip(lanes.iter_mut()) {
                if let Some(b) = lane.blocks.get_mut(lane.next) {
                    *b = *slot;
                    lane.chain = *slot;
                }
                lane.next = pattern.next(lane.next);
            }
            lanes.retain(|l| l.next < l.blocks.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, SetIvState};
    use aes::Aes128;

    use super::*;
    use crate::crypto::key::hex;

    const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    fn key() -> Key {
        Key::parse_hex(KEY).unwrap()
    }

    fn sub(clear: u16, protected: u32) -> Subsample {
        Subsample { clear, protected }
    }

    /// spec-notes §10.7 sample: byte i = (7·i + 3) mod 256.
    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (7 * i + 3) as u8).collect()
    }

    /// Independent decryptor built on `cbc::Decryptor<Aes128>`: IV reset per subsample, the
    /// same pattern walk written with plain indices.
    fn decrypt(sample: &mut [u8], subsamples: &[Subsample], crypt: usize, skip: usize) {
        let whole = [sub(0, sample.len() as u32)];
        let map = if subsamples.is_empty() { &whole[..] } else { subsamples };
        let (crypt, skip) = if crypt == 0 || skip == 0 { (1, 0) } else { (crypt, skip) };
        let mut dec = cbc::Decryptor::<Aes128>::new(key().bytes().into(), &IV.into());
        let mut pos = 0;
        for s in map {
            pos += s.clear as usize;
            dec.set_iv(&IV.into());
            let nblocks = s.protected as usize / 16;
            for b in 0..nblocks {
                if b % (crypt + skip) < crypt {
                    let at = pos + 16 * b;
                    let block: &mut [u8; 16] = (&mut sample[at..at + 16]).try_into().unwrap();
                    dec.decrypt_block(block.into());
                }
            }
            pos += s.protected as usize;
        }
    }

    /// spec-notes §10.7: 1:9 over 188 bytes, clear 5 / protected 183 (11 full blocks + 7).
    #[test]
    fn known_answer_1_9_over_188_bytes() {
        let plain = bytes(188);
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &[sub(5, 183)], 1, 9).unwrap();
        assert_eq!(s[..5], plain[..5]);
        assert_eq!(hex(&s[5..21]), "52bffc3cf93688118e734e8f5864e0a0");
        assert_eq!(s[21..165], plain[21..165], "blocks 1-9 are skipped");
        assert_eq!(hex(&s[165..181]), "7c78370f041a42a26620a2dde25e3d8b");
        assert_eq!(s[181..], plain[181..], "7-byte partial tail stays clear");
        decrypt(&mut s, &[sub(5, 183)], 1, 9);
        assert_eq!(s, plain);
    }

    #[test]
    fn round_trip_1_9_with_several_subsamples() {
        let map = [sub(37, 2000), sub(6, 0), sub(120, 15), sub(9, 161), sub(65535, 0), sub(4, 4096), sub(20, 0)];
        let n: usize = map.iter().map(|s| s.clear as usize + s.protected as usize).sum();
        let plain = bytes(n);
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &map, 1, 9).unwrap();
        assert_ne!(s, plain);
        // Everything outside the crypt slots is untouched.
        let mut pos = 0;
        for m in &map {
            assert_eq!(s[pos..pos + m.clear as usize], plain[pos..pos + m.clear as usize]);
            pos += m.clear as usize;
            for b in 0..m.protected as usize / 16 {
                let r = pos + 16 * b..pos + 16 * b + 16;
                assert_eq!(s[r.clone()] == plain[r], b % 10 != 0, "block {b}");
            }
            let tail = pos + m.protected as usize / 16 * 16..pos + m.protected as usize;
            assert_eq!(s[tail.clone()], plain[tail]);
            pos += m.protected as usize;
        }
        decrypt(&mut s, &map, 1, 9);
        assert_eq!(s, plain);
    }

    /// Each subsample restarts the chain from the constant IV: two subsamples with identical
    /// bytes encrypt identically, and their first block is `AES(P ⊕ IV)`, not chained from the
    /// previous subsample's last ciphertext block.
    #[test]
    fn iv_is_reset_for_each_subsample() {
        let one = [vec![0x55; 10], bytes(330)].concat(); // clear 10, protected 330
        let mut two = [one.clone(), one.clone()].concat();
        let map = [sub(10, 330), sub(10, 330)];
        encrypt_sample(&key(), &IV, &mut two, &map, 1, 9).unwrap();
        assert_eq!(two[..340], two[340..]);

        let mut first = [0u8; 16];
        for (f, (p, v)) in first.iter_mut().zip(one[10..26].iter().zip(IV)) {
            *f = p ^ v;
        }
        let mut first = first.into();
        Aes128::new(key().bytes().into()).encrypt_block(&mut first);
        assert_eq!(two[350..366], first[..]);

        let mut alone = one.clone();
        encrypt_sample(&key(), &IV, &mut alone, &[sub(10, 330)], 1, 9).unwrap();
        assert_eq!(two[340..], alone[..]);
        decrypt(&mut two, &map, 1, 9);
        assert_eq!(two, [one.clone(), one].concat());
    }

    /// Audio, pattern 0:0: every full block CBC-encrypted from the IV (plain CBC over the
    /// full blocks), the `len % 16` trailing bytes clear.
    #[test]
    fn audio_0_0_encrypts_every_full_block_and_leaves_the_tail_clear() {
        for len in [0usize, 5, 16, 100, 417, 1024] {
            let plain = bytes(len);
            let mut s = plain.clone();
            encrypt_sample(&key(), &IV, &mut s, &[], 0, 0).unwrap();
            let full = len / 16 * 16;
            assert_eq!(s[full..], plain[full..], "len {len}: tail clear");
            let mut expect = plain[..full].to_vec();
            let mut enc = cbc::Encryptor::<Aes128>::new(key().bytes().into(), &IV.into());
            for chunk in expect.chunks_exact_mut(16) {
                let block: &mut [u8; 16] = chunk.try_into().unwrap();
                enc.encrypt_block(block.into());
            }
            assert_eq!(s[..full], expect[..], "len {len}");
            decrypt(&mut s, &[], 0, 0);
            assert_eq!(s, plain);
        }
    }

    #[test]
    fn empty_map_is_one_protected_range() {
        let plain = bytes(1000);
        let mut a = plain.clone();
        let mut b = plain.clone();
        encrypt_sample(&key(), &IV, &mut a, &[], 1, 9).unwrap();
        encrypt_sample(&key(), &IV, &mut b, &[sub(0, 1000)], 1, 9).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, plain);
    }

    /// A pattern that is not in effect (one count zero) encrypts every full block, as
    /// decryptors treat it; it never leaves blocks clear.
    #[test]
    fn degenerate_patterns_encrypt_every_full_block() {
        let plain = bytes(300);
        let mut all = plain.clone();
        encrypt_sample(&key(), &IV, &mut all, &[sub(7, 293)], 0, 0).unwrap();
        for (c, k) in [(1, 0), (0, 9), (5, 0)] {
            let mut s = plain.clone();
            encrypt_sample(&key(), &IV, &mut s, &[sub(7, 293)], c, k).unwrap();
            assert_eq!(s, all, "{c}:{k}");
        }
        // 2:3 walks groups of 5 blocks: E E S S S E E S S S …
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &[sub(0, 300)], 2, 3).unwrap();
        for b in 0..18 {
            let r = 16 * b..16 * b + 16;
            assert_eq!(s[r.clone()] == plain[r], b % 5 >= 2, "block {b}");
        }
        decrypt(&mut s, &[sub(0, 300)], 2, 3);
        assert_eq!(s, plain);
    }

    #[test]
    fn short_protected_range_stays_clear() {
        let plain = bytes(40);
        let mut s = plain.clone();
        encrypt_sample(&key(), &IV, &mut s, &[sub(25, 15)], 1, 9).unwrap();
        assert_eq!(s, plain);
    }

    #[test]
    fn map_mismatch_is_an_error_and_leaves_the_sample_unchanged() {
        let plain = bytes(188);
        for (map, covered) in [(vec![sub(5, 182)], 187), (vec![sub(5, 184)], 189), (vec![sub(5, 183), sub(1, 0)], 189)]
        {
            let mut s = plain.clone();
            assert_eq!(encrypt_sample(&key(), &IV, &mut s, &map, 1, 9), Err(Error::MapMismatch { covered, size: 188 }));
            assert_eq!(s, plain);
        }
    }

    /// A deterministic pseudo-random stream for the lane tests.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn lanes_equal_one_sample_at_a_time() {
        let cipher = Aes128Enc::new(key().bytes().into());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let count = (rng(&mut seed) % 40) as usize;
            let mut samples: Vec<(usize, Vec<Subsample>)> = Vec::new();
            for _ in 0..count {
                let len = (rng(&mut seed) % 3000) as usize;
                let mut map = Vec::new();
                if !rng(&mut seed).is_multiple_of(4) {
                    let mut left = len;
                    while left > 0 {
                        let clear = ((rng(&mut seed) % 40) as usize).min(left);
                        let protected = ((rng(&mut seed) % 900) as usize).min(left - clear);
                        map.push(sub(clear as u16, protected as u32));
                        left -= clear + protected;
                    }
                }
                samples.push((len, map));
            }
            let (crypt, skip) = [(1, 9), (0, 0), (2, 3), (5, 5), (1, 0)][round % 5];
            let total: usize = samples.iter().map(|s| s.0).sum();
            let plain: Vec<u8> = (0..total).map(|_| rng(&mut seed) as u8).collect();
            let mut one = plain.clone();
            let mut at = 0;
            for (len, map) in &samples {
                encrypt_sample_with(&cipher, &IV, &mut one[at..at + len], map, crypt, skip).unwrap();
                at += len;
            }
            let mut lanes = plain.clone();
            let items = samples.iter().map(|(l, m)| (*l, m.as_slice()));
            encrypt_samples_with(&cipher, &IV, &mut lanes, items, crypt, skip).unwrap();
            assert!(one == lanes, "round {round}: lanes differ from one sample at a time");
        }
    }

    #[test]
    fn lanes_check_every_map_before_touching_a_byte() {
        let cipher = Aes128Enc::new(key().bytes().into());
        let plain = bytes(600);
        let mut data = plain.clone();
        let good = [sub(10, 190)];
        let bad = [sub(10, 150)];
        let items = [(200, &good[..]), (200, &good[..]), (200, &bad[..])];
        let e = encrypt_samples_with(&cipher, &IV, &mut data, items, 1, 9).unwrap_err();
        assert_eq!(e, Error::MapMismatch { covered: 160, size: 200 });
        assert_eq!(data, plain);
        // Samples longer than the data: an error, nothing touched.
        let items = [(400, &good[..0]), (400, &good[..0])];
        assert!(encrypt_samples_with(&cipher, &IV, &mut data, items, 1, 9).is_err());
        assert_eq!(data, plain);
    }
}
