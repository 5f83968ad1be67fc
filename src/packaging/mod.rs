//! Asset → segments and manifests: [`plan`] cuts tracks into segments, [`fmp4`] writes CMAF
//! init/media segments, [`dash`] and [`hls`] describe them. Both manifests point at the same
//! segment URLs ([`naming`]), so a CDN caches one copy for both protocols.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod dash;
pub mod drm_signalling;
pub mod fmp4;
pub mod hls;
pub mod naming;
pub mod plan;
pub mod protect;
pub mod version;

use crate::index::{TrackIndex, TrackKind};

/// `(numerator, denominator)` frame rate from the most common sample duration.
pub fn frame_rate(track: &TrackIndex) -> Option<(u64, u64)> {
    if track.kind != TrackKind::Video {
        return None;
    }
    let mut counts: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for s in track.samples.iter().take(1000) {
        *counts.entry(s.duration).or_default() += 1;
    }
    let (&d, _) = counts.iter().filter(|(&d, _)| d > 0).max_by_key(|(&d, &n)| (n, d))?;
    let (mut a, mut b) = (u64::from(track.timescale), u64::from(d));
    let g = gcd(a, b);
    if g > 1 {
        a /= g;
        b /= g;
    }
    Some((a, b))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// RFC 5646 tag for an ISO 639-2/T code (`eng` → `en`); `None` for `und`.
pub fn language_tag(iso639_2: &str) -> Option<String> {
    const TWO: &[(&str, &str)] = &[
        ("eng", "en"),
        ("fra", "fr"),
        ("fre", "fr"),
        ("deu", "de"),
        ("ger", "de"),
        ("spa", "es"),
        ("ita", "it"),
        ("por", "pt"),
        ("nld", "nl"),
        ("dut", "nl"),
        ("jpn", "ja"),
        ("zho", "zh"),
        ("chi", "zh"),
        ("kor", "ko"),
        ("rus", "ru"),
        ("ara", "ar"),
        ("swe", "sv"),
        ("nor", "no"),
        ("dan", "da"),
        ("fin", "fi"),
        ("pol", "pl"),
        ("tur", "tr"),
        ("hin", "hi"),
        ("ell", "el"),
        ("gre", "el"),
        ("heb", "he"),
        ("ces", "cs"),
        ("cze", "cs"),
        ("hun", "hu"),
        ("ron", "ro"),
    ];
    if iso639_2 == "und" || iso639_2.is_empty() {
        return None;
    }
    Some(TWO.iter().find(|(k, _)| *k == iso639_2).map_or(iso639_2, |(_, v)| v).to_owned())
}

/// Content type of a track for DASH `contentType` and HTTP `Content-Type`.
pub fn mime(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Video => "video/mp4",
        TrackKind::Audio => "audio/mp4",
        TrackKind::Text => "application/mp4",
    }
}

/// Everything a protected output needs, resolved once per request: the variant, the CENC key of
/// each rendition, the envelope key, the clear lead and what to signal.
#[derive(Debug, Clone)]
pub struct Protection {
    /// Variant served.
    pub variant: crate::drm::Variant,
    /// CENC key per rendition id (cenc/cbcs variants); renditions absent here stay clear.
    pub keys: std::collections::BTreeMap<String, std::sync::Arc<crate::drm::ContentKey>>,
    /// HLS AES-128 key.
    pub envelope: Option<std::sync::Arc<crate::drm::ContentKey>>,
    /// Leading clear segments.
    pub clear_lead: usize,
    /// DRM systems to signal.
    pub systems: Vec<crate::drm::System>,
    /// License / key URL per system.
    pub license_urls: std::collections::BTreeMap<crate::drm::System, String>,
    /// Whether `/.drm/key/{kid}` hands out keys for this policy (else no `identity` key lines).
    pub raw_key_delivery: bool,
    /// A client token to carry into key URIs and child playlist URIs (`?token=`).
    pub token: Option<String>,
    /// HLS only: emit just this key format (players disagree: for SAMPLE-AES hls.js takes an
    /// `identity` key before any other, while shaka-player needs it; `?keyformat=` chooses).
    pub hls_keyformat: Option<HlsKeyFormat>,
    /// Version of this variant's segment names, per rendition id (see [`version`]).
    pub versions: std::collections::BTreeMap<String, version::Version>,
    /// Version of each rendition's clear segment names (the clear init and clear lead of
    /// AES-128).
    pub clear_versions: std::collections::BTreeMap<String, version::Version>,
    /// Chained policies (issue 11): the asset's leaf license (JWE JSON), signalled in init
    /// segments, the MPD and HLS playlists; it goes into every segment-name version.
    pub leaf: Option<std::sync::Arc<str>>,
}

/// HLS `KEYFORMAT` families a client can ask for with `?keyformat=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsKeyFormat {
    /// `identity`: raw key at our key URI.
    Identity,
    /// `org.w3.clearkey`.
    ClearKey,
    /// Widevine `urn:uuid:edef8ba9-…`.
    Widevine,
    /// `com.microsoft.playready`.
    PlayReady,
    /// `com.apple.streamingkeydelivery`.
    FairPlay,
}

impl HlsKeyFormat {
    /// Parses the query value.
    pub fn parse(s: &str) -> Option<HlsKeyFormat> {
        match s {
            "identity" => Some(HlsKeyFormat::Identity),
            "clearkey" => Some(HlsKeyFormat::ClearKey),
            "widevine" => Some(HlsKeyFormat::Widevine),
            "playready" => Some(HlsKeyFormat::PlayReady),
            "fairplay" => Some(HlsKeyFormat::FairPlay),
            _ => None,
        }
    }

    /// The query value.
    pub fn name(self) -> &'static str {
        match self {
            HlsKeyFormat::Identity => "identity",
            HlsKeyFormat::ClearKey => "clearkey",
            HlsKeyFormat::Widevine => "widevine",
            HlsKeyFormat::PlayReady => "playready",
            HlsKeyFormat::FairPlay => "fairplay",
        }
    }
}

impl Protection {
    /// Nothing protected.
    pub fn clear() -> Protection {
        Protection {
            variant: crate::drm::Variant::Clear,
            keys: Default::default(),
            envelope: None,
            clear_lead: 0,
            systems: Vec::new(),
            license_urls: Default::default(),
            raw_key_delivery: false,
            token: None,
            hls_keyformat: None,
            versions: Default::default(),
            clear_versions: Default::default(),
            leaf: None,
        }
    }

    /// The version of `rendition`'s segment names in `variant`: this protection's own, or the
    /// clear one.
    pub fn version_of(&self, rendition: &str, variant: crate::drm::Variant) -> version::Version {
        let map = if variant == self.variant { &self.versions } else { &self.clear_versions };
        map.get(rendition).copied().unwrap_or_default()
    }

    /// `?a=b&…` for child playlist URIs: the key format choice and the carried token.
    pub fn child_query(&self) -> String {
        let mut q: Vec<String> = Vec::new();
        if let Some(f) = self.hls_keyformat {
            q.push(format!("keyformat={}", f.name()));
        }
        if let Some(t) = &self.token {
            q.push(format!("token={t}"));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }

    /// Our raw-key URI for `kid`, with the carried token.
    pub fn key_uri(&self, kid: &crate::crypto::KeyId) -> String {
        match &self.token {
            Some(t) => format!("/.drm/key/{}?token={t}", kid.hex()),
            None => format!("/.drm/key/{}", kid.hex()),
        }
    }

    /// Whether HLS key lines of `f` are wanted.
    pub fn wants(&self, f: HlsKeyFormat) -> bool {
        self.hls_keyformat.is_none_or(|w| w == f)
    }

    /// CENC key of a rendition, when this is a cenc/cbcs variant.
    pub fn key(&self, rendition: &str) -> Option<&std::sync::Arc<crate::drm::ContentKey>> {
        if self.variant.is_cenc_family() {
            self.keys.get(rendition)
        } else {
            None
        }
    }
}
