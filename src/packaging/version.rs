//! Versions in segment names: `init.cenc.v1a2b3c4d.mp4`, `3.cenc.v1a2b3c4d.m4s`.
//!
//! Segments are cached by CDNs and players for a year (`immutable`), so a segment name must never
//! stand for other bytes than the first ones it served. The version is a short digest, per
//! rendition and variant, of every input of its segment bytes: the file's content digest and the
//! segment plan (through [`Rendition::digest`]), the variant, and for protected variants the
//! rendition's key id and key material, the clear lead, the DRM systems and license URLs
//! signalled in init segments, the envelope key, and a chained policy's leaf license. A key change for one rendition moves only
//! that rendition's names. A key or policy change moves the manifests (short TTL) to new names, while
//! the old names keep meaning the old bytes (the origin answers them 404 once it cannot make
//! them any more). The digest is one-way: it reveals nothing about the keys.

use sha2::{Digest, Sha256};

use super::plan::Rendition;
use super::Protection;

/// Bumped whenever segment bytes change for the same input (a new box layout), so every name
/// and ETag moves with it.
pub const FORMAT_VERSION: &[u8] = b"drm-origin-fmp4-4";

/// A segment-name version (printed `v` + 8 hex digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Version(pub u32);

impl Version {
    /// Parses `v1a2b3c4d` (lowercase hex, exactly 8 digits: one name per version).
    pub fn parse(s: &str) -> Option<Version> {
        let hex = s.strip_prefix('v')?;
        if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(Version)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{:08x}", self.0)
    }
}

fn finish(h: Sha256) -> Version {
    let sum = h.finalize();
    Version(sum.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(0, u32::from_be_bytes))
}

/// The version of a rendition's clear segments: its content and segment plan only.
pub fn clear(rendition_digest: u64) -> Version {
    let mut h = Sha256::new();
    h.update(FORMAT_VERSION);
    h.update(b"clear");
    h.update(rendition_digest.to_be_bytes());
    finish(h)
}

/// The version of `r`'s segments in `prot.variant` (its clear version for the clear variant,
/// and for a rendition the variant leaves clear). Everything that shapes a protected init or
/// media segment of `r` goes in.
pub fn of(r: &Rendition, prot: &Protection) -> Version {
    let key = if prot.variant.is_cenc_family() { prot.keys.get(&r.id) } else { prot.envelope.as_ref() };
    let Some(key) = key else { return r.clear_version };
    let mut h = Sha256::new();
    let field = |h: &mut Sha256, b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(&mut h, FORMAT_VERSION);
    field(&mut h, &r.digest.to_be_bytes());
    field(&mut h, prot.variant.suffix().as_bytes());
    field(&mut h, &(prot.clear_lead as u64).to_be_bytes());
    field(&mut h, &key.kid.0);
    field(&mut h, key.key.bytes());
    // The common pssh of every init segment names all the variant's KIDs.
    for k in prot.keys.values() {
        field(&mut h, &k.kid.0);
    }
    for s in &prot.systems {
        field(&mut h, format!("{s:?}").as_bytes());
    }
    for (s, url) in &prot.license_urls {
        field(&mut h, format!("{s:?}").as_bytes());
        field(&mut h, url.as_bytes());
    }
    // A chained policy's leaf is in the init segment: it changes at a root-key rollover, and
    // so must every name of the rendition (issue 11).
    if let Some(leaf) = &prot.leaf {
        field(&mut h, b"leaf");
        field(&mut h, leaf.as_bytes());
    }
    finish(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_print_and_parse_one_way() {
        let v = Version(0x1a2b_3c4d);
        assert_eq!(v.to_string(), "v1a2b3c4d");
        assert_eq!(Version::parse("v1a2b3c4d"), Some(v));
        for bad in ["1a2b3c4d", "v1A2B3C4D", "v1a2b3c4", "v1a2b3c4d0", "v+a2b3c4d", "cenc", ""] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }
}
