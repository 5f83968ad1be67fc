//! HLS `METHOD=AES-128`: whole-segment AES-128-CBC with PKCS#7 padding. (Stub.)

use super::Key;

/// Encrypts a whole segment; the output is 1–16 bytes longer than the input.
pub fn encrypt_segment(key: &Key, iv: &[u8; 16], segment: &[u8]) -> Vec<u8> {
    let _ = (key, iv);
    segment.to_vec()
}
