//! PlayReady key-seed derivation (spec-notes §4.4): a content key computed from a shared secret
//! "key seed" and the KID, as PlayReady license servers (and Microsoft's test server) do.
//!
//! ```text
//! s = first 30 bytes of the seed,  k = KID in GUID-LE order
//! A = SHA-256(s‖k)   B = SHA-256(s‖k‖s)   C = SHA-256(s‖k‖s‖k)
//! key[i] = A[i] ^ A[i+16] ^ B[i] ^ B[i+16] ^ C[i] ^ C[i+16]
//! ```

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::playready::guid_le;
use crate::crypto::{Key, KeyId};

/// Bytes of the seed the algorithm uses.
pub const SEED_LEN: usize = 30;

/// The content key of `kid` under `seed` (raw bytes, usually decoded from base64), or `None` if
/// the seed is shorter than 30 bytes. Bytes past the 30th are ignored.
pub fn derive(seed: &[u8], kid: &KeyId) -> Option<Key> {
    let seed = seed.get(..SEED_LEN)?;
    let k = guid_le(kid);
    let mut a: [u8; 32] = Sha256::new().chain_update(seed).chain_update(k).finalize().into();
    let mut b: [u8; 32] = Sha256::new().chain_update(seed).chain_update(k).chain_update(seed).finalize().into();
    let mut c: [u8; 32] =
        Sha256::new().chain_update(seed).chain_update(k).chain_update(seed).chain_update(k).finalize().into();
    let mut key = [0u8; 16];
    for (i, out) in key.iter_mut().enumerate() {
        let at = |h: &[u8; 32], j: usize| h.get(j).copied().unwrap_or(0);
        let hi = i.saturating_add(16);
        *out = at(&a, i) ^ at(&a, hi) ^ at(&b, i) ^ at(&b, hi) ^ at(&c, i) ^ at(&c, hi);
    }
    let derived = Key::new(key);
    key.zeroize();
    a.zeroize();
    b.zeroize();
    c.zeroize();
    Some(derived)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key::hex;
    use crate::drm::b64;

    /// Microsoft's public PlayReady test-server seed (spec-notes §10.4).
    const SEED_B64: &str = "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I";

    fn kid() -> KeyId {
        KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap()
    }

    #[test]
    fn microsoft_test_seed_known_answer() {
        let seed = b64::decode(SEED_B64).unwrap();
        assert_eq!(hex(&seed), "5d5068bec9b384ff6044867159f16d6b755544fcd5116989b1acc4278e88");
        let key = derive(&seed, &kid()).unwrap();
        assert_eq!(hex(key.bytes()), "dbfd6922c321c4bb486f4a1c44097ed6");
        assert_eq!(crate::drm::playready::checksum(&kid(), &key), "Me48z71nuqY=");
    }

    #[test]
    fn big_endian_kid_mistake_gives_another_key() {
        // Feeding the canonical (big-endian) bytes is the classic bug: its KID, read as GUID-LE,
        // is the byte-swapped UUID. §10.4 lists the wrong key to catch it.
        let seed = b64::decode(SEED_B64).unwrap();
        let right = derive(&seed, &kid()).unwrap();
        let swapped = KeyId(guid_le(&kid()));
        let wrong = derive(&seed, &swapped).unwrap();
        assert_eq!(hex(wrong.bytes()), "eeee7fef08e738645c6faf58534f1bb0");
        assert_ne!(right, wrong);
    }

    #[test]
    fn seed_length() {
        let seed = b64::decode(SEED_B64).unwrap();
        assert!(derive(&seed[..29], &kid()).is_none());
        assert!(derive(&[], &kid()).is_none());
        // Bytes past the 30th do not matter.
        let mut longer = seed.clone();
        longer.extend_from_slice(b"ignored");
        assert_eq!(derive(&longer, &kid()), derive(&seed, &kid()));
    }
}
