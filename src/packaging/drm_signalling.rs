//! Widevine and PlayReady signalling in manifests and init segments (filled in with the DRM
//! system encoders).

use super::Protection;
use crate::crypto::KeyId;
use crate::drm::System;

/// Writes the DASH ContentProtection descriptor of `system` for `kid`.
pub fn dash_descriptor(x: &mut String, prot: &Protection, system: System, kid: &KeyId) {
    let _ = (x, prot, system, kid);
}

/// Extra `pssh` boxes (beyond the W3C common one) for the init segment.
pub fn init_pssh(prot: &Protection, kid: &KeyId) -> Vec<Vec<u8>> {
    let _ = (prot, kid);
    Vec::new()
}
