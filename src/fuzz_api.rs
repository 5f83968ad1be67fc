//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`), one function per parser that a
//! request or a file reaches. Each takes raw bytes and checks the target's property: it returns
//! normally for any input, or panics when the property breaks (a bug). The same functions
//! replay the committed corpora (`fuzz/corpus/<target>/`) plus deterministic mutations in
//! `tests/fuzz_replay.rs`, so CI runs every target without a fuzzer build.

#![allow(clippy::panic, clippy::expect_used, clippy::indexing_slicing)]

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Targets by name, as in `fuzz/Cargo.toml`.
pub const TARGETS: &[(&str, Target)] = &[
    ("mp4_index", mp4_index),
    ("route", route),
    ("range", range),
    ("cpix_import", cpix_import),
    ("nal_subsamples", nal_subsamples),
    ("jwks", jwks),
    ("device_objects", device_objects),
    ("client_media", client_media),
];

/// Any bytes as an MP4 file: indexing returns a value or an error, never panics or hangs.
pub fn mp4_index(data: &[u8]) {
    let _ = crate::index::build(data, data.len() as u64);
}

/// Any request path: routing classifies it without panicking.
pub fn route(data: &[u8]) {
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = crate::http::routes::parse(path);
    }
}

/// Any Range header against any length (the first 8 bytes, big-endian; the rest is the
/// header): the outcome lies inside the representation.
pub fn range(data: &[u8]) {
    use crate::http::range::{resolve, RangeOutcome};
    let (len, header) = data.split_at(data.len().min(8));
    let mut be = [0u8; 8];
    be[8 - len.len()..].copy_from_slice(len);
    let len = u64::from_be_bytes(be);
    if let Ok(header) = std::str::from_utf8(header) {
        if let RangeOutcome::Partial { start, end } = resolve(Some(header), len) {
            assert!(start <= end && end < len, "{header:?} {len} -> {start}-{end}");
        }
    }
}

/// Any document as CPIX: import returns keys or a named error.
pub fn cpix_import(data: &[u8]) {
    if let Ok(xml) = std::str::from_utf8(data) {
        let _ = crate::drm::cpix::import(xml);
    }
}

/// Any decoder configuration and sample: a subsample map, when returned, covers the sample
/// exactly. Layout: byte 0 bit 0 = HEVC, bytes 1..3 = configuration length (big-endian), then
/// the configuration, then the sample.
pub fn nal_subsamples(data: &[u8]) {
    use crate::codec::{NalContext, Scheme};
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some(n) = rest.get(..2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else { return };
    let rest = &rest[2..];
    let (config, sample) = rest.split_at(n.min(rest.len()));
    let ctx = if flags & 1 == 1 { NalContext::from_hvcc(config) } else { NalContext::from_avcc(config) };
    if let Ok(mut ctx) = ctx {
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            if let Ok(map) = ctx.subsamples(sample, scheme) {
                let covered: u64 = map.iter().map(|s| u64::from(s.clear) + u64::from(s.protected)).sum();
                assert_eq!(covered, sample.len() as u64, "a subsample map that does not cover its sample");
            }
        }
    }
}

/// Any document as a JWKS or an OpenID discovery document: keys or a named error.
pub fn jwks(data: &[u8]) {
    let _ = crate::license::jwks::parse_jwks(data);
    let _ = crate::license::jwks::parse_discovery(data, Some("https://idp.example/"));
}

/// Any bytes as what a device request, a registration or a license file brings (a JWS and its
/// payloads, a JWK, a JWKS, a JWE opened with a fixed test key): a value or a refusal.
pub fn device_objects(data: &[u8]) {
    crate::license::device::fuzz_objects(data);
}

/// Any bytes as what the reference client downloads (an MPD, an HLS playlist, an init or media
/// segment, cenc/cbcs/AES-128): clear output or an error.
pub fn client_media(data: &[u8]) {
    crate::client::media::fuzz_media(data);
}
