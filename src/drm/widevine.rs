//! Widevine `pssh` Data: a hand-written `WidevinePsshData` protobuf (spec-notes §3).
//!
//! Fields written, in field-number order: `key_id` (2, repeated bytes, one per KID in canonical
//! UUID byte order), `provider` (3, string), `content_id` (4, bytes), `protection_scheme`
//! (9, uint32 = the scheme's four-character code, set even for `cenc` as shaka-packager does).
//! The legacy `algorithm` field (1) is not written.

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

use super::pssh::{pssh_v0, Scheme, WIDEVINE_SYSTEM_ID};
use crate::crypto::KeyId;

const TAG_KEY_ID: u8 = 0x12; // field 2, length-delimited
const TAG_PROVIDER: u8 = 0x1a; // field 3, length-delimited
const TAG_CONTENT_ID: u8 = 0x22; // field 4, length-delimited
const TAG_PROTECTION_SCHEME: u8 = 0x48; // field 9, varint

/// The serialized `WidevinePsshData` for `kids` under `scheme`, with the optional `provider` and
/// `content_id` that Widevine's own key service identifies content by.
pub fn pssh_data(kids: &[KeyId], scheme: Scheme, provider: Option<&str>, content_id: Option<&[u8]>) -> Vec<u8> {
    encode(kids, Some(scheme), provider, content_id)
}

/// The whole version-0 Widevine `pssh` box (system id `edef8ba9-…`) around [`pssh_data`]: what
/// goes into the init segment, the MPD's `cenc:pssh` and the HLS `data:` URI.
pub fn pssh_box(kids: &[KeyId], scheme: Scheme, provider: Option<&str>, content_id: Option<&[u8]>) -> Vec<u8> {
    pssh_v0(&WIDEVINE_SYSTEM_ID, &pssh_data(kids, scheme, provider, content_id))
}

/// `scheme: None` leaves `protection_scheme` out (only the tests use that, to reproduce
/// shaka-packager's vectors that predate the field).
fn encode(kids: &[KeyId], scheme: Option<Scheme>, provider: Option<&str>, content_id: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(kids.len().saturating_mul(18).saturating_add(32));
    for kid in kids {
        bytes_field(&mut out, TAG_KEY_ID, &kid.0);
    }
    if let Some(p) = provider {
        bytes_field(&mut out, TAG_PROVIDER, p.as_bytes());
    }
    if let Some(c) = content_id {
        bytes_field(&mut out, TAG_CONTENT_ID, c);
    }
    if let Some(s) = scheme {
        out.push(TAG_PROTECTION_SCHEME);
        varint(&mut out, u64::from(s.fourcc()));
    }
    out
}

fn bytes_field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    varint(out, u64::try_from(value.len()).unwrap_or(u64::MAX));
    out.extend_from_slice(value);
}

/// Protobuf base-128 varint, least significant group first.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key::hex;
    use crate::drm::b64;

    fn kid() -> KeyId {
        KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap()
    }

    fn shaka_kids() -> [KeyId; 2] {
        [KeyId(*b"keyid1~~~~~~~~~~"), KeyId(*b"keyid2~~~~~~~~~~")]
    }

    #[test]
    fn varints() {
        let enc = |v| {
            let mut o = Vec::new();
            varint(&mut o, v);
            hex(&o)
        };
        assert_eq!(enc(0), "00");
        assert_eq!(enc(127), "7f");
        assert_eq!(enc(128), "8001");
        assert_eq!(enc(300), "ac02");
        assert_eq!(enc(u64::from(Scheme::Cenc.fourcc())), "e3dc959b06");
        assert_eq!(enc(u64::from(Scheme::Cbcs.fourcc())), "f3c6899b06");
        assert_eq!(enc(u64::MAX), "ffffffffffffffffff01");
    }

    #[test]
    fn cenc_known_answer() {
        // spec-notes §10.2
        let b = pssh_box(&[kid()], Scheme::Cenc, None, None);
        assert_eq!(
            hex(&b),
            "000000387073736800000000edef8ba979d64acea3c827dcd51d21ed0000001812108ba94ade6eb9449db44fa5beefaf43b048e3dc959b06"
        );
        assert_eq!(b64::encode(&b), "AAAAOHBzc2gAAAAA7e+LqXnWSs6jyCfc1R0h7QAAABgSEIupSt5uuUSdtE+lvu+vQ7BI49yVmwY=");
    }

    #[test]
    fn cbcs_known_answer() {
        // spec-notes §10.2, and the data: URI of the §7 example playlist.
        let b = pssh_box(&[kid()], Scheme::Cbcs, None, None);
        assert_eq!(
            hex(&b),
            "000000387073736800000000edef8ba979d64acea3c827dcd51d21ed0000001812108ba94ade6eb9449db44fa5beefaf43b048f3c6899b06"
        );
        assert_eq!(b64::encode(&b), "AAAAOHBzc2gAAAAA7e+LqXnWSs6jyCfc1R0h7QAAABgSEIupSt5uuUSdtE+lvu+vQ7BI88aJmwY=");
    }

    #[test]
    fn shaka_two_kids() {
        // shaka kExpectedWidevinePssh (no protection_scheme) ...
        let plain = pssh_v0(&WIDEVINE_SYSTEM_ID, &encode(&shaka_kids(), None, None, None));
        assert_eq!(
            hex(&plain),
            "000000447073736800000000edef8ba979d64acea3c827dcd51d21ed0000002412106b65796964317e7e7e7e7e7e7e7e7e7e12106b65796964327e7e7e7e7e7e7e7e7e7e"
        );
        // ... and kExpectedWidevinePsshCbcs: size 0x4a, data 0x2a, the same + 48f3c6899b06.
        let cbcs = pssh_box(&shaka_kids(), Scheme::Cbcs, None, None);
        assert_eq!(
            hex(&cbcs),
            "0000004a7073736800000000edef8ba979d64acea3c827dcd51d21ed0000002a12106b65796964317e7e7e7e7e7e7e7e7e7e12106b65796964327e7e7e7e7e7e7e7e7e7e48f3c6899b06"
        );
        // The public function always writes the scheme, also for cenc.
        let cenc = pssh_data(&shaka_kids(), Scheme::Cenc, None, None);
        assert_eq!(hex(&cenc[cenc.len() - 6..]), "48e3dc959b06");
    }

    #[test]
    fn provider_and_content_id() {
        // spec-notes §10.2, Unified Streaming example: provider + content_id, no KIDs.
        let b = pssh_v0(&WIDEVINE_SYSTEM_ID, &encode(&[], None, Some("widevine_test"), Some(b"test content")));
        assert_eq!(
            b64::encode(&b),
            "AAAAPXBzc2gAAAAA7e+LqXnWSs6jyCfc1R0h7QAAAB0aDXdpZGV2aW5lX3Rlc3QiDHRlc3QgY29udGVudA=="
        );
        // Fields in number order: key_id, provider, content_id, protection_scheme.
        let d = pssh_data(&[kid()], Scheme::Cenc, Some("widevine_test"), Some(b"test content"));
        assert_eq!(
            hex(&d),
            format!("1210{}1a0d{}220c{}48e3dc959b06", kid().hex(), hex(b"widevine_test"), hex(b"test content"))
        );
    }

    #[test]
    fn long_content_id_gets_two_byte_length() {
        let id = vec![b'x'; 200];
        let d = pssh_data(&[], Scheme::Cenc, None, Some(&id));
        assert_eq!(hex(&d[..3]), "22c801");
        assert_eq!(d.len(), 3 + 200 + 6);
    }

    #[test]
    fn box_parses_back() {
        let b = pssh_box(&[kid()], Scheme::Cbcs, Some("p"), None);
        let p = crate::drm::pssh::Pssh::parse_box(&b).unwrap();
        assert_eq!((p.version, p.system_id), (0, WIDEVINE_SYSTEM_ID));
        assert_eq!(p.data, &pssh_data(&[kid()], Scheme::Cbcs, Some("p"), None)[..]);
    }
}
