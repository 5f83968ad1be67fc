//! Key ids and content keys. A [`Key`] never prints its bytes (Debug shows a fixed marker), is
//! not `Serialize`, and is zeroised on drop.

use std::fmt;

use zeroize::Zeroize;

/// A 16-byte key id, in the canonical UUID byte order (spec-notes §0).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Parses 32 hex digits, with or without UUID dashes.
    pub fn parse(s: &str) -> Option<KeyId> {
        parse_hex16(s).map(KeyId)
    }

    /// Lower-case 8-4-4-4-12 form (`cenc:default_KID`).
    pub fn uuid(&self) -> String {
        let h = hex(&self.0);
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }

    /// 32 lower-case hex digits.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uuid())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.uuid())
    }
}

/// A 128-bit AES content key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 16]);

impl Key {
    /// From raw bytes.
    pub fn new(bytes: [u8; 16]) -> Key {
        Key(bytes)
    }

    /// Parses 32 hex digits.
    pub fn parse_hex(s: &str) -> Option<Key> {
        parse_hex16(s).map(Key)
    }

    /// The raw bytes, for the cipher (and the license service, later). Do not log.
    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = Key::parse_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let shown = format!("{k:?} {:?}", Some(&k));
        assert!(!shown.contains("2b7e") && !shown.to_lowercase().contains("43, 126"), "{shown}");
    }

    #[test]
    fn kid_forms() {
        let kid = KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap();
        assert_eq!(kid.hex(), "8ba94ade6eb9449db44fa5beefaf43b0");
        assert_eq!(kid.uuid(), "8ba94ade-6eb9-449d-b44f-a5beefaf43b0");
        assert!(KeyId::parse("xyz").is_none() && KeyId::parse("8ba94ade6eb9449db44fa5beefaf43b").is_none());
    }
}
