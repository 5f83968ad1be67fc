//! Base64 (RFC 4648): the standard alphabet with `=` padding (§4; MPD `cenc:pssh`, `mspr:pro`,
//! PlayReady `KID`/`CHECKSUM`, CPIX, HLS `data:` URIs) and the URL-safe alphabet without padding
//! (§5; ClearKey JSON and EME `keyids`, spec-notes §0 and §5).
//!
//! Decoding is strict about the alphabet and canonical: a character from the other alphabet,
//! whitespace, misplaced or excess `=`, a length of 4n+1, or non-zero bits after the last byte
//! return `None`, so every byte string has exactly one accepted spelling per alphabet (padding
//! aside: [`decode_url`] also takes a padded string, since some clients pad).

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

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard alphabet, padded with `=` to a multiple of 4 characters.
pub fn encode(data: &[u8]) -> String {
    encode_with(data, STANDARD, true)
}

/// URL-safe alphabet (`-`, `_`), no padding.
pub fn encode_url(data: &[u8]) -> String {
    encode_with(data, URL_SAFE, false)
}

/// Decodes the standard alphabet. Padding is optional, but if present it must be exactly what
/// [`encode`] writes.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    decode_with(text, STANDARD)
}

/// Decodes the URL-safe alphabet, with or without `=` padding.
pub fn decode_url(text: &str) -> Option<Vec<u8>> {
    decode_with(text, URL_SAFE)
}

fn encode_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3).saturating_mul(4));
    let sextet = |n: u32, shift: u32| {
        let i = usize::try_from((n >> shift) & 63).unwrap_or(0);
        char::from(alphabet.get(i).copied().unwrap_or(b'A'))
    };
    for chunk in data.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        // A chunk of k bytes gives k + 1 characters.
        let chars = match chunk.len() {
            1 => 2,
            2 => 3,
            _ => 4,
        };
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i < chars {
                out.push(sextet(n, shift));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn value(alphabet: &[u8; 64], c: u8) -> Option<u32> {
    let i = alphabet.iter().position(|&a| a == c)?;
    u32::try_from(i).ok()
}

fn decode_with(text: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let body = bytes.strip_suffix(b"==").or_else(|| bytes.strip_suffix(b"="));
    let body = match body {
        // Padding must complete the last quantum: body + padding is a multiple of 4.
        Some(b) if bytes.len().is_multiple_of(4) && !b.len().is_multiple_of(4) => b,
        Some(_) => return None,
        None => bytes,
    };
    // A trailing group of one character cannot encode a whole byte.
    let tail = body.len() % 4;
    if tail == 1 {
        return None;
    }
    let mut out = Vec::with_capacity((body.len() / 4).saturating_mul(3).saturating_add(2));
    for group in body.chunks(4) {
        let mut n = 0u32;
        for &c in group {
            n = (n << 6) | value(alphabet, c)?;
        }
        match group.len() {
            4 => out.extend_from_slice(&n.to_be_bytes()[1..]),
            3 => {
                // 18 bits: 16 data + 2 that must be zero.
                if n & 0b11 != 0 {
                    return None;
                }
                out.extend_from_slice(&(n >> 2).to_be_bytes()[2..]);
            }
            2 => {
                // 12 bits: 8 data + 4 that must be zero.
                if n & 0b1111 != 0 {
                    return None;
                }
                out.extend_from_slice(&(n >> 4).to_be_bytes()[3..]);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10.
    const RFC: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors() {
        for (plain, coded) in RFC {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
            let unpadded = coded.trim_end_matches('=');
            assert_eq!(encode_url(plain.as_bytes()), unpadded);
            assert_eq!(decode_url(unpadded).unwrap(), plain.as_bytes());
            assert_eq!(decode_url(coded).unwrap(), plain.as_bytes());
            assert_eq!(decode(unpadded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn alphabets_differ_on_62_and_63() {
        let data = [0xfb, 0xff, 0xbf];
        assert_eq!(encode(&data), "+/+/");
        assert_eq!(encode_url(&data), "-_-_");
        assert_eq!(decode("+/+/").unwrap(), data);
        assert_eq!(decode_url("-_-_").unwrap(), data);
        assert!(decode("-_-_").is_none() && decode_url("+/+/").is_none());
    }

    #[test]
    fn spec_notes_kid_and_key() {
        // §10.5: KID 8ba94ade… and key dbfd6922… in ClearKey JSON; §10.4: GUID-LE KID base64.
        let kid = crate::crypto::KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap();
        assert_eq!(encode_url(&kid.0), "i6lK3m65RJ20T6W-769DsA");
        assert_eq!(decode_url("i6lK3m65RJ20T6W-769DsA").unwrap(), kid.0);
        let key = crate::crypto::Key::parse_hex("dbfd6922c321c4bb486f4a1c44097ed6").unwrap();
        assert_eq!(encode_url(key.bytes()), "2_1pIsMhxLtIb0ocRAl-1g");
        let le = [0xde, 0x4a, 0xa9, 0x8b, 0xb9, 0x6e, 0x9d, 0x44, 0xb4, 0x4f, 0xa5, 0xbe, 0xef, 0xaf, 0x43, 0xb0];
        assert_eq!(encode(&le), "3kqpi7lunUS0T6W+769DsA==");
        assert_eq!(decode("3kqpi7lunUS0T6W+769DsA==").unwrap(), le);
    }

    #[test]
    fn rejects_malformed() {
        for bad in
            ["Z", "Zg=", "Zg===", "=", "==", "Zm9v=", "Zm9vY", "Z g=", "Zm9\n", "Zh==", "Zm9=", "Zg==Zg==", "Zm=v", "é"]
        {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
        assert!(decode_url("Zh").is_none() && decode_url("Zm9").is_none());
    }

    #[test]
    fn round_trips_every_length_and_byte() {
        let data: Vec<u8> = (0..=255u8).rev().collect();
        for n in 0..data.len() {
            let d = &data[..n];
            assert_eq!(decode(&encode(d)).unwrap(), d);
            assert_eq!(decode_url(&encode_url(d)).unwrap(), d);
        }
    }
}
