//! HLS `METHOD=AES-128`: whole-segment AES-128-CBC with PKCS#7 padding (RFC 8216 §4.3.2.4,
//! §5.2; spec-notes §8). Every byte of the segment is encrypted, the chain starts from the
//! segment's IV, and the padding adds 1–16 bytes (a block-aligned segment gets a full pad block).

use aes::cipher::KeyInit;
use aes::Aes128Enc;

use super::cbcs::{encrypt_range, Pattern};
use super::Key;

/// Encrypts a whole segment; the output is 1–16 bytes longer than the input.
pub fn encrypt_segment(key: &Key, iv: &[u8; 16], segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(segment.len().saturating_add(16));
    out.extend_from_slice(segment);
    encrypt_segment_in_place(key, iv, &mut out);
    out
}

/// [`encrypt_segment`] on a buffer the caller already owns: pads and encrypts `segment` in place
/// (it grows by 1–16 bytes), saving the copy into a new vector. Reserve 16 bytes of spare
/// capacity beforehand to avoid a reallocation for the padding.
pub fn encrypt_segment_in_place(key: &Key, iv: &[u8; 16], segment: &mut Vec<u8>) {
    // PKCS#7: `pad` bytes of value `pad`, 1 ≤ pad ≤ 16. Padded by hand (the crate's
    // `encrypt_padded_vec` needs cipher's `alloc` feature and returns through an `expect`).
    let pad = 16 - segment.len() % 16;
    let pad_byte = u8::try_from(pad).unwrap_or(16); // 1..=16 always fits
    segment.extend(std::iter::repeat_n(pad_byte, pad));
    // The padded length is a multiple of 16, so every byte is in a full block.
    encrypt_range(&Aes128Enc::new(key.bytes().into()), iv, segment, Pattern::ALL);
}

#[cfg(test)]
mod tests {
    use aes::cipher::block_padding::Pkcs7;
    use aes::cipher::{BlockModeDecrypt, KeyIvInit};
    use aes::Aes128;

    use super::*;
    use crate::crypto::key::hex;

    fn key() -> Key {
        Key::parse_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap()
    }

    /// Media sequence number 7 as a 128-bit big-endian IV (RFC 8216 §5.2).
    fn msn_iv(msn: u128) -> [u8; 16] {
        msn.to_be_bytes()
    }

    /// (`decrypt_padded_vec` would need cipher's `alloc` feature, which nothing enables.)
    fn decrypt(iv: &[u8; 16], ct: &[u8]) -> Vec<u8> {
        let mut buf = ct.to_vec();
        cbc::Decryptor::<Aes128>::new(key().bytes().into(), &(*iv).into())
            .decrypt_padded::<Pkcs7>(&mut buf)
            .unwrap()
            .to_vec()
    }

    /// spec-notes §10.7: 20 bytes → PKCS#7 to 32 → known ciphertext.
    #[test]
    fn known_answer_20_bytes() {
        let ct = encrypt_segment(&key(), &msn_iv(7), b"0123456789abcdefghij");
        assert_eq!(hex(&ct), "34b44f61f1defe1e42606a1e9c19a9b38fcf5da2e49e827948cbda000f05608d");
        assert_eq!(decrypt(&msn_iv(7), &ct), b"0123456789abcdefghij");
    }

    #[test]
    fn padding_adds_one_to_sixteen_bytes_and_round_trips() {
        for len in [0usize, 1, 15, 16, 17, 31, 32, 1000, 4096] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let ct = encrypt_segment(&key(), &msn_iv(42), &plain);
            assert_eq!(ct.len(), (len / 16 + 1) * 16, "len {len}");
            assert_eq!(decrypt(&msn_iv(42), &ct), plain, "len {len}");
        }
    }

    #[test]
    fn aligned_segment_gets_a_full_pad_block() {
        let plain = [0x11u8; 32];
        let ct = encrypt_segment(&key(), &msn_iv(0), &plain);
        assert_eq!(ct.len(), 48);
        // Decrypt without unpadding: the last block is sixteen 0x10 bytes.
        let mut raw = ct.clone();
        let mut dec = cbc::Decryptor::<Aes128>::new(key().bytes().into(), &msn_iv(0).into());
        for chunk in raw.chunks_exact_mut(16) {
            let block: &mut [u8; 16] = chunk.try_into().unwrap();
            dec.decrypt_block(block.into());
        }
        assert_eq!(raw[..32], plain[..]);
        assert_eq!(raw[32..], [0x10u8; 16]);
    }

    #[test]
    fn in_place_matches_the_copying_form() {
        let plain: Vec<u8> = (0..5000).map(|i| (i * 7) as u8).collect();
        let mut buf = plain.clone();
        encrypt_segment_in_place(&key(), &msn_iv(3), &mut buf);
        assert_eq!(buf, encrypt_segment(&key(), &msn_iv(3), &plain));
        assert_eq!(decrypt(&msn_iv(3), &buf), plain);
    }
}
