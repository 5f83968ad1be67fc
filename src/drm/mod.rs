//! Keys and delivery policies: which protection variants an asset is served in, with which keys.
//! Built from the validated configuration; looked up per request by asset id.

pub mod pattern;
pub mod pssh;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::crypto::{Key, KeyId};

/// How a representation's media is protected; part of every segment and playlist URL
/// (`init.cenc.mp4`, `3.cbcs.m4s`, `media.aes128.m3u8`), so a CDN caches each variant apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// No encryption.
    Clear,
    /// CENC `cenc` (AES-CTR).
    Cenc,
    /// CENC `cbcs` (AES-CBC 1:9 pattern).
    Cbcs,
    /// HLS `METHOD=AES-128` (whole segment; init segment clear).
    Aes128,
}

impl Variant {
    /// URL suffix (`""` for clear).
    pub fn suffix(self) -> &'static str {
        match self {
            Variant::Clear => "",
            Variant::Cenc => "cenc",
            Variant::Cbcs => "cbcs",
            Variant::Aes128 => "aes128",
        }
    }

    /// Parses a URL suffix or config name (`clear`, `cenc`, `cbcs`, `aes128`/`aes-128`).
    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "" | "clear" => Some(Variant::Clear),
            "cenc" => Some(Variant::Cenc),
            "cbcs" => Some(Variant::Cbcs),
            "aes128" | "aes-128" => Some(Variant::Aes128),
            _ => None,
        }
    }

    /// True for the CENC schemes (sample encryption signalled in the init segment).
    pub fn is_cenc_family(self) -> bool {
        matches!(self, Variant::Cenc | Variant::Cbcs)
    }

    /// Variant whose init segment this variant's playlists reference.
    pub fn init_variant(self) -> Variant {
        if self == Variant::Aes128 {
            Variant::Clear
        } else {
            self
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Clear => "clear",
            v => v.suffix(),
        })
    }
}

/// A named content key.
pub struct ContentKey {
    /// Config name.
    pub name: String,
    /// Key id.
    pub kid: KeyId,
    /// The key (redacted in Debug).
    pub key: Key,
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentKey")
            .field("name", &self.name)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Whether the origin hands out raw keys at `/.drm/key/{kid}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyDelivery {
    /// Never.
    None,
    /// To anyone (development, or behind an authenticating proxy).
    Open,
}

/// A delivery policy.
#[derive(Debug)]
pub struct Policy {
    /// Config name.
    pub name: String,
    /// Variants offered for DASH; the first is `manifest.mpd`'s.
    pub dash: Vec<Variant>,
    /// Variants offered for HLS; the first is `master.m3u8`'s.
    pub hls: Vec<Variant>,
    /// Leading segments left clear in CENC variants.
    pub clear_lead_segments: usize,
    /// Whether clear variants may be served although the asset is protected.
    pub allow_clear: bool,
    /// Raw key delivery.
    pub key_delivery: KeyDelivery,
    /// CENC key of video tracks.
    pub video_key: Option<Arc<ContentKey>>,
    /// CENC key of audio tracks.
    pub audio_key: Option<Arc<ContentKey>>,
    /// HLS AES-128 key.
    pub envelope_key: Option<Arc<ContentKey>>,
}

impl Policy {
    /// The unprotected policy (assets no rule matches).
    pub fn clear() -> Policy {
        Policy {
            name: "clear".into(),
            dash: vec![Variant::Clear],
            hls: vec![Variant::Clear],
            clear_lead_segments: 0,
            allow_clear: true,
            key_delivery: KeyDelivery::None,
            video_key: None,
            audio_key: None,
            envelope_key: None,
        }
    }

    /// Whether `v` may be served for DASH or HLS under this policy.
    pub fn offers(&self, v: Variant) -> bool {
        if v == Variant::Clear && self.allow_clear {
            return true;
        }
        self.dash.contains(&v) || self.hls.contains(&v)
    }

    /// Whether the policy protects anything.
    pub fn is_protected(&self) -> bool {
        self.dash
            .iter()
            .chain(&self.hls)
            .any(|v| *v != Variant::Clear)
    }

    /// The CENC key for a track kind (text tracks stay clear).
    pub fn cenc_key(&self, kind: crate::index::TrackKind) -> Option<&Arc<ContentKey>> {
        match kind {
            crate::index::TrackKind::Video => self.video_key.as_ref(),
            crate::index::TrackKind::Audio => self.audio_key.as_ref().or(self.video_key.as_ref()),
            crate::index::TrackKind::Text => None,
        }
    }
}

/// All keys, policies and asset rules of one configuration.
#[derive(Debug)]
pub struct Drm {
    /// Keys by id.
    pub keys: BTreeMap<KeyId, Arc<ContentKey>>,
    /// Rules in order: the first whose pattern matches an asset id gives its policy.
    pub rules: Vec<(pattern::Pattern, Arc<Policy>)>,
    /// Applied when no rule matches.
    pub default_policy: Arc<Policy>,
}

impl Default for Drm {
    fn default() -> Self {
        Drm {
            keys: BTreeMap::new(),
            rules: Vec::new(),
            default_policy: Arc::new(Policy::clear()),
        }
    }
}

impl Drm {
    /// The policy of an asset.
    pub fn policy_for(&self, asset: &str) -> Arc<Policy> {
        self.rules
            .iter()
            .find(|(p, _)| p.matches(asset))
            .map_or_else(|| self.default_policy.clone(), |(_, pol)| pol.clone())
    }

    /// A key that some policy with open key delivery uses.
    pub fn deliverable_key(&self, kid: &KeyId) -> Option<Arc<ContentKey>> {
        let key = self.keys.get(kid)?;
        let open = self
            .rules
            .iter()
            .map(|(_, p)| p)
            .chain(std::iter::once(&self.default_policy))
            .any(|p| {
                p.key_delivery == KeyDelivery::Open
                    && [&p.video_key, &p.audio_key, &p.envelope_key]
                        .iter()
                        .any(|k| k.as_ref().is_some_and(|k| k.kid == *kid))
            });
        open.then(|| key.clone())
    }
}
