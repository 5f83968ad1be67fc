//! `pssh` boxes (ISO/IEC 23001-7 §8.1; spec-notes §1.3) for the DRM systems we signal: the
//! version-0 and version-1 writers, the system ids, and a bounded parser for tests and tools.
//! The system-specific Data comes from [`super::widevine`] and [`super::playready`].

use crate::crypto::KeyId;
use crate::mp4::codes::PSSH;
use crate::mp4::reader::Reader;
use crate::mp4::writer::{write_full_box, PutBe};

/// W3C "common" system id (`1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`), used by ClearKey.
pub const COMMON_SYSTEM_ID: [u8; 16] =
    [0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b];

/// Widevine system id (`edef8ba9-79d6-4ace-a3c8-27dcd51d21ed`).
pub const WIDEVINE_SYSTEM_ID: [u8; 16] =
    [0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed];

/// PlayReady system id (`9a04f079-9840-4286-ab92-e65be0885f95`).
pub const PLAYREADY_SYSTEM_ID: [u8; 16] =
    [0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95];

/// drm-origin's license-chaining SystemID (`b6e81ed0-de1c-4031-a1b6-cd77cd80fa2a`, a random UUID v4, not registered with
/// DASH-IF): players that do not know it skip it and use their own systems.
pub const CHAIN_SYSTEM_ID: [u8; 16] =
    [0xb6, 0xe8, 0x1e, 0xd0, 0xde, 0x1c, 0x40, 0x31, 0xa1, 0xb6, 0xcd, 0x77, 0xcd, 0x80, 0xfa, 0x2a];

/// The SystemID as a DASH scheme / HLS KEYFORMAT.
pub const CHAIN_SCHEME: &str = "urn:uuid:b6e81ed0-de1c-4031-a1b6-cd77cd80fa2a";

/// The CENC protection scheme a `pssh` is signalled for (Widevine `protection_scheme`,
/// PlayReady `ALGID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `cenc`: AES-CTR.
    Cenc,
    /// `cbcs`: AES-CBC with a pattern.
    Cbcs,
}

impl Scheme {
    /// The scheme's four-character code as a big-endian integer (`'cenc'` = 0x63656e63).
    pub fn fourcc(self) -> u32 {
        u32::from_be_bytes(match self {
            Scheme::Cenc => *b"cenc",
            Scheme::Cbcs => *b"cbcs",
        })
    }

    /// The scheme of a CENC variant (`None` for clear and HLS AES-128).
    pub fn of_variant(v: super::Variant) -> Option<Scheme> {
        match v {
            super::Variant::Cenc => Some(Scheme::Cenc),
            super::Variant::Cbcs => Some(Scheme::Cbcs),
            super::Variant::Clear | super::Variant::Aes128 => None,
        }
    }
}

/// A version-0 `pssh` (no KID list) carrying `data`: what shaka-packager writes for Widevine and
/// PlayReady, the form older clients understand.
pub fn pssh_v0(system_id: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_full_box(&mut out, PSSH, 0, 0, |o| {
        o.extend_from_slice(system_id);
        o.put_u32(u32::try_from(data.len()).unwrap_or(0));
        o.extend_from_slice(data);
    });
    out
}

/// A version-1 `pssh` listing `kids` with `data` (empty for the common system).
pub fn pssh_v1(system_id: &[u8; 16], kids: &[KeyId], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_full_box(&mut out, PSSH, 1, 0, |o| {
        o.extend_from_slice(system_id);
        o.put_u32(u32::try_from(kids.len()).unwrap_or(0));
        for k in kids {
            o.extend_from_slice(&k.0);
        }
        o.put_u32(u32::try_from(data.len()).unwrap_or(0));
        o.extend_from_slice(data);
    });
    out
}

/// The W3C common `pssh` for `kids` (EME `cenc` init data for ClearKey).
pub fn common(kids: &[KeyId]) -> Vec<u8> {
    pssh_v1(&COMMON_SYSTEM_ID, kids, &[])
}

/// A parsed `pssh` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pssh<'a> {
    /// Box version (0 or 1).
    pub version: u8,
    /// DRM system id.
    pub system_id: [u8; 16],
    /// KIDs of the version-1 header (empty for version 0).
    pub kids: Vec<KeyId>,
    /// System-specific data.
    pub data: &'a [u8],
}

impl<'a> Pssh<'a> {
    /// Parses a `pssh` body (the bytes after the 8-byte box header), rejecting versions above 1
    /// and leftover bytes.
    pub fn parse(body: &'a [u8]) -> crate::mp4::Result<Pssh<'a>> {
        let mut r = Reader::new(body, PSSH);
        let (version, _flags) = r.full_header()?;
        if version > 1 {
            return Err(r.invalid("unknown pssh version"));
        }
        let mut system_id = [0u8; 16];
        system_id.copy_from_slice(r.bytes(16)?);
        let mut kids = Vec::new();
        if version == 1 {
            let count = r.u32()?;
            let n = r.check_count(count, 16)?;
            for _ in 0..n {
                let mut kid = [0u8; 16];
                kid.copy_from_slice(r.bytes(16)?);
                kids.push(KeyId(kid));
            }
        }
        let size = r.u32()?;
        let data = r.bytes(usize::try_from(size).map_err(|_| r.invalid("pssh data size"))?)?;
        if r.remaining() != 0 {
            return Err(r.invalid("bytes after pssh data"));
        }
        Ok(Pssh { version, system_id, kids, data })
    }

    /// Parses a whole `pssh` box, header included.
    pub fn parse_box(whole: &'a [u8]) -> crate::mp4::Result<Pssh<'a>> {
        use crate::mp4::reader::boxes;
        let mut it = boxes(whole, PSSH);
        let first = it.next().ok_or(crate::mp4::Error::Missing(PSSH))??;
        if first.kind != PSSH || it.next().is_some() {
            return Err(Reader::new(whole, PSSH).invalid("not exactly one pssh box"));
        }
        Pssh::parse(first.body)
    }
}

/// The Data of the first `pssh` of `system_id` in an init segment (its `moov`'s children), or
/// in a lone `pssh` box; `None` when there is none (or the boxes do not parse).
pub fn find_data(init: &[u8], system_id: &[u8; 16]) -> Option<Vec<u8>> {
    use crate::mp4::codes::MOOV;
    use crate::mp4::reader::boxes;
    let mine = |body: &[u8]| Pssh::parse(body).ok().filter(|p| p.system_id == *system_id).map(|p| p.data.to_vec());
    for b in boxes(init, MOOV) {
        let b = b.ok()?;
        if b.kind == PSSH {
            if let Some(d) = mine(b.body) {
                return Some(d);
            }
        } else if b.kind == MOOV {
            for c in boxes(b.body, MOOV) {
                let c = c.ok()?;
                if c.kind == PSSH {
                    if let Some(d) = mine(c.body) {
                        return Some(d);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_pssh_known_answer() {
        // spec-notes §10.1
        let kid = KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap();
        let hex: String = common(&[kid]).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0000003470737368010000001077efecc0b24d02ace33c1e52e2fb4b000000018ba94ade6eb9449db44fa5beefaf43b000000000"
        );
    }

    #[test]
    fn shaka_common_pssh_two_kids() {
        // spec-notes §10.1, shaka kExpectedCommonPssh.
        let kids = [KeyId(*b"keyid1~~~~~~~~~~"), KeyId(*b"keyid2~~~~~~~~~~")];
        let hex: String = common(&kids).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0000004470737368010000001077efecc0b24d02ace33c1e52e2fb4b000000026b65796964317e7e7e7e7e7e7e7e7e7e6b65796964327e7e7e7e7e7e7e7e7e7e00000000"
        );
    }

    #[test]
    fn v0_and_v1_round_trip() {
        let kid = KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap();
        let v0 = pssh_v0(&WIDEVINE_SYSTEM_ID, b"abc");
        assert_eq!(v0.len(), 32 + 3);
        let p = Pssh::parse_box(&v0).unwrap();
        assert_eq!((p.version, p.system_id, p.kids.len(), p.data), (0, WIDEVINE_SYSTEM_ID, 0, &b"abc"[..]));
        let v1 = pssh_v1(&PLAYREADY_SYSTEM_ID, &[kid, kid], b"xy");
        assert_eq!(v1.len(), 36 + 32 + 2);
        let p = Pssh::parse_box(&v1).unwrap();
        assert_eq!((p.version, p.kids, p.data), (1, vec![kid, kid], &b"xy"[..]));
    }

    #[test]
    fn parse_rejects_corrupt_boxes() {
        let good = pssh_v1(&COMMON_SYSTEM_ID, &[KeyId([7; 16])], b"");
        // Truncated anywhere.
        for n in 0..good.len() {
            assert!(Pssh::parse_box(&good[..n]).is_err(), "len {n}");
        }
        // KID count past the end.
        let mut bad = good.clone();
        bad[31] = 2;
        assert!(Pssh::parse_box(&bad).is_err());
        // Data size past the end, and leftover bytes.
        let mut bad = good.clone();
        bad[51] = 1;
        assert!(Pssh::parse_box(&bad).is_err());
        let mut long = good.clone();
        long.push(0);
        long[3] += 1;
        assert!(Pssh::parse_box(&long).is_err());
        // Unknown version.
        let mut bad = good;
        bad[8] = 2;
        assert!(Pssh::parse_box(&bad).is_err());
    }

    #[test]
    fn scheme_fourccs() {
        assert_eq!(Scheme::Cenc.fourcc(), 0x6365_6e63);
        assert_eq!(Scheme::Cbcs.fourcc(), 0x6362_6373);
    }

    /// Prints sample boxes as `name hex` lines for `scripts/check-pssh.py`:
    /// `cargo test --lib drm::pssh::tests::print_sample_boxes -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_sample_boxes() {
        use crate::crypto::key::hex;
        use crate::crypto::Key;
        use crate::drm::{playready, widevine};
        let kid = KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap();
        let kid2 = KeyId::parse("01b32ff0-6d5b-44e9-8e55-31af5ea42deb").unwrap();
        let key = Key::parse_hex("dbfd6922c321c4bb486f4a1c44097ed6").unwrap();
        let key2 = Key::parse_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let la = Some("https://test.playready.microsoft.com/service/rightsmanager.asmx?cfg=(ck:1)&x=<y>");
        let boxes = [
            ("common", common(&[kid, kid2])),
            ("widevine-cenc", widevine::pssh_box(&[kid], Scheme::Cenc, None, None)),
            ("widevine-cbcs", widevine::pssh_box(&[kid, kid2], Scheme::Cbcs, Some("widevine_test"), Some(b"asset 7"))),
            ("playready-cenc", playready::pssh_box(Scheme::Cenc, &[(kid, &key)], la).unwrap()),
            ("playready-cenc-2keys", playready::pssh_box(Scheme::Cenc, &[(kid, &key), (kid2, &key2)], None).unwrap()),
            ("playready-cbcs", playready::pssh_box(Scheme::Cbcs, &[(kid, &key)], la).unwrap()),
        ];
        for (name, b) in boxes {
            println!("{name} {}", hex(&b));
        }
    }
}
