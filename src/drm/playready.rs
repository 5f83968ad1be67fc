//! PlayReady signalling (spec-notes §4): the WRMHEADER XML, the PlayReady Object (PRO) around it,
//! and the version-0 `pssh` box around that.
//!
//! * KIDs appear in the "GUID little-endian" byte order ([`guid_le`]), base64 encoded.
//! * `CHECKSUM` (AESCTR only) = base64 of the first 8 bytes of AES-128-ECB(content key, GUID-LE KID).
//! * The XML follows the header specification's syntax rules: no whitespace between nodes,
//!   attributes in alphabetical order (`ALGID`, `CHECKSUM`, `VALUE`), explicit end tags, the
//!   `xmlns` attribute present; `LA_URL` is XML-escaped.
//! * [`header_for`] picks what shaka-packager and pycpix emit: 4.0.0.0 for one `cenc` key (widest
//!   client support), 4.2.0.0 with `<KIDS>` for several `cenc` keys (pycpix; PlayReady 3.0+), and
//!   4.3.0.0 with `ALGID="AESCBC"` and no checksum for `cbcs` (PlayReady 4.0+).
//!
//! Content keys are only ever fed to the cipher for the checksum; nothing here formats them.

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

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;

use super::b64;
use super::pssh::{pssh_v0, Scheme, PLAYREADY_SYSTEM_ID};
use crate::crypto::{Key, KeyId};

const XMLNS: &str = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader";

/// PRO record type of a PlayReady Header (WRMHEADER).
const RECORD_WRMHEADER: u16 = 1;

/// Why a PlayReady header could not be built. Never carries key material.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// No key id given.
    #[error("a PlayReady header needs at least one key id")]
    NoKeys,
    /// Version 4.0.0.0 holds exactly one key id.
    #[error("WRMHEADER 4.0.0.0 holds exactly one key id, got {0}")]
    OneKeyOnly(usize),
    /// `ALGID="AESCBC"` exists from version 4.3.0.0 on.
    #[error("ALGID AESCBC needs WRMHEADER 4.3.0.0")]
    CbcNeeds43,
    /// The license URL holds characters XML 1.0 cannot represent (control characters).
    #[error("LA_URL contains characters XML cannot carry")]
    BadLaUrl,
    /// The header does not fit a PRO record (64 KiB).
    #[error("PlayReady header too large ({0} bytes)")]
    TooLarge(usize),
}

/// WRMHEADER `version` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderVersion {
    /// `4.0.0.0`: one AESCTR key, `<KID>`/`<CHECKSUM>` elements (all PlayReady clients).
    V4_0,
    /// `4.2.0.0`: `<KIDS>` with one or more AESCTR keys (PlayReady 3.0+).
    V4_2,
    /// `4.3.0.0`: as 4.2, AESCBC allowed (PlayReady 4.0+).
    V4_3,
}

impl HeaderVersion {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderVersion::V4_0 => "4.0.0.0",
            HeaderVersion::V4_2 => "4.2.0.0",
            HeaderVersion::V4_3 => "4.3.0.0",
        }
    }
}

/// `ALGID` of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgId {
    /// `AESCTR` (`cenc`).
    AesCtr,
    /// `AESCBC` (`cbcs`).
    AesCbc,
}

impl AlgId {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlgId::AesCtr => "AESCTR",
            AlgId::AesCbc => "AESCBC",
        }
    }

    /// The ALGID of a scheme.
    pub fn of(scheme: Scheme) -> AlgId {
        match scheme {
            Scheme::Cenc => AlgId::AesCtr,
            Scheme::Cbcs => AlgId::AesCbc,
        }
    }
}

/// The KID bytes in PlayReady's "GUID little-endian" order: bytes 0..4, 4..6 and 6..8 reversed,
/// 8..16 kept (`8ba94ade-6eb9-449d-…` → `de4aa98b b96e 9d44 …`).
pub fn guid_le(kid: &KeyId) -> [u8; 16] {
    let [a0, a1, a2, a3, b0, b1, c0, c1, d0, d1, d2, d3, d4, d5, d6, d7] = kid.0;
    [a3, a2, a1, a0, b1, b0, c1, c0, d0, d1, d2, d3, d4, d5, d6, d7]
}

/// The KID as a WRMHEADER writes it: standard base64 of [`guid_le`].
pub fn kid_value(kid: &KeyId) -> String {
    b64::encode(&guid_le(kid))
}

/// The AESCTR key checksum: base64 of the first 8 bytes of AES-128-ECB(`key`, GUID-LE `kid`).
pub fn checksum(kid: &KeyId, key: &Key) -> String {
    let cipher = Aes128::new(key.bytes().into());
    let mut block = guid_le(kid).into();
    cipher.encrypt_block(&mut block);
    let block: [u8; 16] = block.into();
    let (head, _) = block.split_at(8);
    b64::encode(head)
}

/// A WRMHEADER of `version` naming `keys` with `alg`. A key given as `Some` adds its CHECKSUM
/// (AESCTR only; no checksum is written for AESCBC, whose rule is not pinned down).
pub fn wrm_header(
    version: HeaderVersion,
    alg: AlgId,
    keys: &[(KeyId, Option<&Key>)],
    la_url: Option<&str>,
) -> Result<String, Error> {
    if keys.is_empty() {
        return Err(Error::NoKeys);
    }
    if alg == AlgId::AesCbc && version != HeaderVersion::V4_3 {
        return Err(Error::CbcNeeds43);
    }
    let sum = |key: Option<&Key>, kid: &KeyId| match (alg, key) {
        (AlgId::AesCtr, Some(k)) => Some(checksum(kid, k)),
        _ => None,
    };
    let mut x = String::with_capacity(keys.len().saturating_mul(100).saturating_add(300));
    x.push_str("<WRMHEADER xmlns=\"");
    x.push_str(XMLNS);
    x.push_str("\" version=\"");
    x.push_str(version.as_str());
    x.push_str("\"><DATA>");
    if version == HeaderVersion::V4_0 {
        let [(kid, key)] = keys else {
            return Err(Error::OneKeyOnly(keys.len()));
        };
        x.push_str("<PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>");
        x.push_str(alg.as_str());
        x.push_str("</ALGID></PROTECTINFO><KID>");
        x.push_str(&kid_value(kid));
        x.push_str("</KID>");
        if let Some(s) = sum(*key, kid) {
            x.push_str("<CHECKSUM>");
            x.push_str(&s);
            x.push_str("</CHECKSUM>");
        }
    } else {
        x.push_str("<PROTECTINFO><KIDS>");
        for (kid, key) in keys {
            x.push_str("<KID ALGID=\"");
            x.push_str(alg.as_str());
            if let Some(s) = sum(*key, kid) {
                x.push_str("\" CHECKSUM=\"");
                x.push_str(&s);
            }
            x.push_str("\" VALUE=\"");
            x.push_str(&kid_value(kid));
            x.push_str("\"></KID>");
        }
        x.push_str("</KIDS></PROTECTINFO>");
    }
    if let Some(url) = la_url {
        x.push_str("<LA_URL>");
        escape_into(&mut x, url)?;
        x.push_str("</LA_URL>");
    }
    x.push_str("</DATA></WRMHEADER>");
    Ok(x)
}

/// The header our variants use for `scheme` (see the module docs), with checksums for `cenc`.
pub fn header_for(scheme: Scheme, keys: &[(KeyId, &Key)], la_url: Option<&str>) -> Result<String, Error> {
    let (version, alg) = match (scheme, keys.len()) {
        (Scheme::Cenc, 1) => (HeaderVersion::V4_0, AlgId::AesCtr),
        (Scheme::Cenc, _) => (HeaderVersion::V4_2, AlgId::AesCtr),
        (Scheme::Cbcs, _) => (HeaderVersion::V4_3, AlgId::AesCbc),
    };
    let keys: Vec<(KeyId, Option<&Key>)> = keys.iter().map(|(i, k)| (*i, Some(*k))).collect();
    wrm_header(version, alg, &keys, la_url)
}

/// A PlayReady Object holding one WRMHEADER record (UTF-16LE, no BOM; integers little-endian).
pub fn pro(wrm_header: &str) -> Result<Vec<u8>, Error> {
    let xml: Vec<u8> = wrm_header.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let record_len = u16::try_from(xml.len()).map_err(|_| Error::TooLarge(xml.len()))?;
    let total = xml.len().saturating_add(10);
    let total32 = u32::try_from(total).map_err(|_| Error::TooLarge(total))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&total32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&RECORD_WRMHEADER.to_le_bytes());
    out.extend_from_slice(&record_len.to_le_bytes());
    out.extend_from_slice(&xml);
    Ok(out)
}

/// The base64 PRO for `scheme` and `keys` ([`header_for`]): the DASH `mspr:pro` text and the
/// payload of the HLS `data:text/plain;charset=UTF-16;base64,` URI.
pub fn pro_base64(scheme: Scheme, keys: &[(KeyId, &Key)], la_url: Option<&str>) -> Result<String, Error> {
    Ok(b64::encode(&pro(&header_for(scheme, keys, la_url)?)?))
}

/// The whole version-0 PlayReady `pssh` box (system id `9a04f079-…`) for `scheme` and `keys`.
pub fn pssh_box(scheme: Scheme, keys: &[(KeyId, &Key)], la_url: Option<&str>) -> Result<Vec<u8>, Error> {
    Ok(pssh_v0(&PLAYREADY_SYSTEM_ID, &pro(&header_for(scheme, keys, la_url)?)?))
}

/// The WRMHEADER XML of the first header record of a PRO (`None` if the PRO is malformed or
/// has no header record). For tests and diagnostics.
pub fn parse_pro(pro: &[u8]) -> Option<String> {
    let u16_at = |at: usize| -> Option<u16> {
        let b = pro.get(at..at.checked_add(2)?)?;
        Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
    };
    let len = u32::from_le_bytes(pro.get(..4)?.try_into().ok()?);
    if usize::try_from(len).ok()? != pro.len() {
        return None;
    }
    let count = u16_at(4)?;
    let mut at = 6usize;
    for _ in 0..count {
        let kind = u16_at(at)?;
        let size = usize::from(u16_at(at.checked_add(2)?)?);
        let start = at.checked_add(4)?;
        let end = start.checked_add(size)?;
        let value = pro.get(start..end)?;
        if kind == RECORD_WRMHEADER {
            if size % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]))
                .collect();
            return String::from_utf16(&units).ok();
        }
        at = end;
    }
    None
}

fn escape_into(out: &mut String, text: &str) -> Result<(), Error> {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => return Err(Error::BadLaUrl),
            c => out.push(c),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key::hex;

    const LA: &str = "https://test.playready.microsoft.com/service/rightsmanager.asmx";

    fn kid() -> KeyId {
        KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap()
    }

    fn key() -> Key {
        // spec-notes §10.4: derived from the Microsoft test-server key seed.
        Key::parse_hex("dbfd6922c321c4bb486f4a1c44097ed6").unwrap()
    }

    fn shaka() -> (KeyId, Key) {
        (KeyId(*b"keyid1~~~~~~~~~~"), Key::new(*b"contentkey1~~~~~"))
    }

    #[test]
    fn guid_le_order() {
        // spec-notes §0 and §10.4.
        assert_eq!(hex(&guid_le(&kid())), "de4aa98bb96e9d44b44fa5beefaf43b0");
        assert_eq!(kid_value(&kid()), "3kqpi7lunUS0T6W+769DsA==");
        assert_eq!(kid_value(&shaka().0), "aXllazFkfn5+fn5+fn5+fg==");
    }

    #[test]
    fn checksums() {
        // §10.4 and §10.3.
        assert_eq!(checksum(&kid(), &key()), "Me48z71nuqY=");
        let (k, c) = shaka();
        assert_eq!(checksum(&k, &c), "uFY/OirQj/U=");
        // §10.4's "wrong" checksum is the big-endian-KID mistake in the checksum itself: the
        // right key encrypting the canonical KID bytes. Passing the swapped KeyId makes
        // `checksum` encrypt exactly those bytes.
        let swapped = KeyId(guid_le(&kid()));
        assert_eq!(checksum(&swapped, &key()), "nW+SROTQ9UQ=");
    }

    #[test]
    fn shaka_v4_0_ctr_known_answer() {
        // spec-notes §10.3, shaka kExpectedPlayReadyPsshWithCtrKey.
        let (k, c) = shaka();
        let xml = header_for(Scheme::Cenc, &[(k, &c)], None).unwrap();
        assert_eq!(
            xml,
            "<WRMHEADER xmlns=\"http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader\" version=\"4.0.0.0\"><DATA><PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO><KID>aXllazFkfn5+fn5+fn5+fg==</KID><CHECKSUM>uFY/OirQj/U=</CHECKSUM></DATA></WRMHEADER>"
        );
        let b = pssh_box(Scheme::Cenc, &[(k, &c)], None).unwrap();
        assert_eq!(b.len(), 0x226);
        assert!(hex(&b).starts_with(
            "0000022670737368000000009a04f079984042 86ab92e65be0885f9500000206060200000100010 0fc013c005700"
                .replace(' ', "")
                .as_str()
        ));
        let p = pro(&xml).unwrap();
        assert_eq!(p.len(), 0x206);
        assert_eq!(&b[32..], &p[..]);
    }

    #[test]
    fn shaka_v4_3_cbc_known_answer() {
        // spec-notes §10.3: cbcs variant, one AESCBC KID, no checksum: box 0x1de, PRO 0x1be.
        let (k, c) = shaka();
        let xml = header_for(Scheme::Cbcs, &[(k, &c)], None).unwrap();
        assert_eq!(
            xml,
            "<WRMHEADER xmlns=\"http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader\" version=\"4.3.0.0\"><DATA><PROTECTINFO><KIDS><KID ALGID=\"AESCBC\" VALUE=\"aXllazFkfn5+fn5+fn5+fg==\"></KID></KIDS></PROTECTINFO></DATA></WRMHEADER>"
        );
        assert_eq!(pro(&xml).unwrap().len(), 0x1be);
        assert_eq!(pssh_box(Scheme::Cbcs, &[(k, &c)], None).unwrap().len(), 0x1de);
    }

    #[test]
    fn pycpix_v4_2_known_answer() {
        // spec-notes §10.4: 4.2 header with the derived key and the test server's LA_URL.
        let xml = wrm_header(HeaderVersion::V4_2, AlgId::AesCtr, &[(kid(), Some(&key()))], Some(LA)).unwrap();
        assert_eq!(
            xml,
            format!("<WRMHEADER xmlns=\"http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader\" version=\"4.2.0.0\"><DATA><PROTECTINFO><KIDS><KID ALGID=\"AESCTR\" CHECKSUM=\"Me48z71nuqY=\" VALUE=\"3kqpi7lunUS0T6W+769DsA==\"></KID></KIDS></PROTECTINFO><LA_URL>{LA}</LA_URL></DATA></WRMHEADER>")
        );
        let p = pro(&xml).unwrap();
        assert_eq!(p.len(), 0x28e);
        assert_eq!(hex(&p[..10]), "8e0200000100010084 02".replace(' ', ""));
    }

    #[test]
    fn pycpix_v4_0_and_v4_3_sizes() {
        // spec-notes §10.4: 4.0 with LA_URL → PRO 678 (a6020000 0100 0100 9c02), box 710;
        // 4.3/AESCBC without checksum → PRO 606 (5e020000 … 5402), box 638.
        let k = key();
        let p = pro(&header_for(Scheme::Cenc, &[(kid(), &k)], Some(LA)).unwrap()).unwrap();
        assert_eq!(p.len(), 678);
        assert_eq!(hex(&p[..10]), "a602000001000100 9c02".replace(' ', ""));
        let b = pssh_box(Scheme::Cenc, &[(kid(), &k)], Some(LA)).unwrap();
        assert_eq!(b.len(), 710);
        let p = pro(&header_for(Scheme::Cbcs, &[(kid(), &k)], Some(LA)).unwrap()).unwrap();
        assert_eq!(p.len(), 606);
        assert_eq!(hex(&p[..10]), "5e02000001000100 5402".replace(' ', ""));
        assert_eq!(pssh_box(Scheme::Cbcs, &[(kid(), &k)], Some(LA)).unwrap().len(), 638);
        // The header's CHECKSUM appears as an element in 4.0, in that order after KID.
        let xml = header_for(Scheme::Cenc, &[(kid(), &k)], Some(LA)).unwrap();
        assert!(xml.contains("<KID>3kqpi7lunUS0T6W+769DsA==</KID><CHECKSUM>Me48z71nuqY=</CHECKSUM><LA_URL>"));
    }

    #[test]
    fn multi_key_cenc_uses_4_2_with_checksums() {
        let (k2, c2) = shaka();
        let k1 = key();
        let xml = header_for(Scheme::Cenc, &[(kid(), &k1), (k2, &c2)], None).unwrap();
        assert!(xml.contains("version=\"4.2.0.0\""));
        assert!(xml.contains("<KIDS><KID ALGID=\"AESCTR\" CHECKSUM=\"Me48z71nuqY=\" VALUE=\"3kqpi7lunUS0T6W+769DsA==\"></KID><KID ALGID=\"AESCTR\" CHECKSUM=\"uFY/OirQj/U=\" VALUE=\"aXllazFkfn5+fn5+fn5+fg==\"></KID></KIDS>"));
        // 4.3 with AESCTR and several keys is allowed too.
        let xml = wrm_header(HeaderVersion::V4_3, AlgId::AesCtr, &[(kid(), Some(&k1)), (k2, None)], None).unwrap();
        assert!(xml.contains("version=\"4.3.0.0\""));
        assert!(xml.contains("<KID ALGID=\"AESCTR\" VALUE=\"aXllazFkfn5+fn5+fn5+fg==\"></KID>"));
    }

    #[test]
    fn invalid_combinations() {
        let k = key();
        let one = [(kid(), Some(&k))];
        let two = [(kid(), Some(&k)), (kid(), None)];
        assert_eq!(wrm_header(HeaderVersion::V4_0, AlgId::AesCtr, &two, None), Err(Error::OneKeyOnly(2)));
        assert_eq!(wrm_header(HeaderVersion::V4_2, AlgId::AesCtr, &[], None), Err(Error::NoKeys));
        assert_eq!(header_for(Scheme::Cbcs, &[], None), Err(Error::NoKeys));
        for v in [HeaderVersion::V4_0, HeaderVersion::V4_2] {
            assert_eq!(wrm_header(v, AlgId::AesCbc, &one, None), Err(Error::CbcNeeds43));
        }
        assert_eq!(header_for(Scheme::Cenc, &[(kid(), &k)], Some("http://a/\u{1}")), Err(Error::BadLaUrl));
        // Far too many keys for one PRO record.
        let many: Vec<(KeyId, &Key)> = (0..1000u16)
            .map(|i| {
                let mut b = [0u8; 16];
                b[..2].copy_from_slice(&i.to_be_bytes());
                (KeyId(b), &k)
            })
            .collect();
        assert!(matches!(pro_base64(Scheme::Cenc, &many, None), Err(Error::TooLarge(_))));
    }

    #[test]
    fn la_url_is_escaped() {
        let k = key();
        let xml = header_for(Scheme::Cbcs, &[(kid(), &k)], Some("https://lic.example/pr?a=1&b=<2>\"x\"")).unwrap();
        assert!(xml.contains("<LA_URL>https://lic.example/pr?a=1&amp;b=&lt;2&gt;&quot;x&quot;</LA_URL></DATA>"));
    }

    #[test]
    fn pro_round_trips_and_base64() {
        let k = key();
        let xml = header_for(Scheme::Cbcs, &[(kid(), &k)], Some(LA)).unwrap();
        let p = pro(&xml).unwrap();
        assert_eq!(parse_pro(&p).unwrap(), xml);
        assert_eq!(pro_base64(Scheme::Cbcs, &[(kid(), &k)], Some(LA)).unwrap(), b64::encode(&p));
        let b = pssh_box(Scheme::Cbcs, &[(kid(), &k)], Some(LA)).unwrap();
        let parsed = crate::drm::pssh::Pssh::parse_box(&b).unwrap();
        assert_eq!((parsed.version, parsed.system_id, parsed.data), (0, PLAYREADY_SYSTEM_ID, &p[..]));
        // Corrupt PROs.
        for n in 0..12 {
            assert!(parse_pro(&p[..n]).is_none());
        }
        let mut bad = p.clone();
        bad[8] = 0xff; // record length past the end
        assert!(parse_pro(&bad).is_none());
    }

    #[test]
    fn nothing_formats_the_key() {
        let k = key();
        let err = header_for(Scheme::Cenc, &[(kid(), &k)], Some("\u{2}")).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("dbfd") && !shown.contains("2_1p"), "{shown}");
    }
}
