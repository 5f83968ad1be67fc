//! Deterministic IVs: the same (key, stream, sample) gives the same IV on every request and every
//! origin node, so segments are byte-identical and CDN-cacheable, while IVs never repeat for a key.
//!
//! A *stream* is one rendition of one asset; its 16-byte `stream_id` is a hash of the asset and
//! rendition ids. Under one key:
//! * `cenc` (8-byte IVs): the stream's base IV is `AES_k(tag ‖ stream_id)` truncated to 64 bits and
//!   sample `i` uses `base + i` (mod 2^64), i.e. shaka-packager's "random start, +1 per sample"
//!   with a keyed PRF instead of a random number generator. Counter blocks of two samples overlap
//!   only if their IVs are equal, which needs two streams' ranges of 64-bit IVs to overlap.
//! * `cbcs`: a constant IV per stream, `AES_k(tag ‖ stream_id)` (cbcs reuses it by design).
//! * HLS AES-128: per segment, `AES_k(tag ‖ stream_id ‖ segment)`, written in the playlist.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;

use super::Key;

const TAG_CENC: u8 = 1;
const TAG_CBCS: u8 = 2;
const TAG_HLS: u8 = 3;

fn prf(key: &Key, tag: u8, stream_id: &[u8; 16], n: u64) -> [u8; 16] {
    // Mix the stream id and the counter into one block: tag ‖ stream_id[0..7] ‖ n, then a second
    // block keyed by the first so every input bit of stream_id matters.
    let cipher = Aes128::new(key.bytes().into());
    let mut block = [0u8; 16];
    block[0] = tag;
    block[1..8].copy_from_slice(&stream_id[..7]);
    block[8..].copy_from_slice(&n.to_be_bytes());
    let mut b = block.into();
    cipher.encrypt_block(&mut b);
    let mut second: [u8; 16] = b.into();
    for (x, y) in second.iter_mut().zip(stream_id.iter().skip(7).chain(std::iter::repeat(&tag))) {
        *x ^= *y;
    }
    let mut b = second.into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// 8-byte `cenc` IV of sample `index` of a stream.
pub fn cenc_sample_iv(key: &Key, stream_id: &[u8; 16], index: u64) -> [u8; 8] {
    cenc_iv_at(cenc_base_iv(key, stream_id), index)
}

/// The stream's base for [`cenc_iv_at`]: derive it once per segment, not once per sample.
pub fn cenc_base_iv(key: &Key, stream_id: &[u8; 16]) -> u64 {
    let base = prf(key, TAG_CENC, stream_id, 0);
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&base[..8]);
    u64::from_be_bytes(b8)
}

/// IV of sample `index` from a stream base: `base + index` (mod 2^64).
pub fn cenc_iv_at(base: u64, index: u64) -> [u8; 8] {
    base.wrapping_add(index).to_be_bytes()
}

/// Constant 16-byte `cbcs` IV of a stream.
pub fn cbcs_constant_iv(key: &Key, stream_id: &[u8; 16]) -> [u8; 16] {
    prf(key, TAG_CBCS, stream_id, 0)
}

/// 16-byte HLS AES-128 IV of a segment.
pub fn hls_segment_iv(key: &Key, stream_id: &[u8; 16], segment: u64) -> [u8; 16] {
    prf(key, TAG_HLS, stream_id, segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let k = Key::new([7; 16]);
        let a = [1u8; 16];
        let mut b = [1u8; 16];
        b[15] = 2;
        assert_eq!(cenc_sample_iv(&k, &a, 5), cenc_sample_iv(&k, &a, 5));
        assert_ne!(cenc_sample_iv(&k, &a, 5), cenc_sample_iv(&k, &a, 6));
        assert_ne!(cenc_sample_iv(&k, &a, 0), cenc_sample_iv(&k, &b, 0));
        assert_ne!(cbcs_constant_iv(&k, &a), cbcs_constant_iv(&k, &b));
        assert_ne!(hls_segment_iv(&k, &a, 1), hls_segment_iv(&k, &a, 2));
        assert_ne!(cbcs_constant_iv(&k, &a), cbcs_constant_iv(&Key::new([8; 16]), &a));
    }
}
