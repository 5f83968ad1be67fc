//! `pssh` boxes (ISO/IEC 23001-7 §8.1) for the DRM systems we signal.

use crate::crypto::KeyId;
use crate::mp4::codes::PSSH;
use crate::mp4::writer::{write_full_box, PutBe};

/// W3C "common" system id (`1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`), used by ClearKey.
pub const COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];

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
}
