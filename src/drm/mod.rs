//! Keys and delivery policies: which protection variants an asset is served in, with which keys.
//! Built from the validated configuration; looked up per request by asset id.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod b64;
pub mod cpix;
pub mod keyseed;
pub mod pattern;
pub mod playready;
pub mod pssh;
pub mod store;
pub mod store_pg;
pub mod widevine;

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
        f.debug_struct("ContentKey").field("name", &self.name).field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Whether the origin hands out raw keys at `/.drm/key/{kid}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyDelivery {
    /// Never.
    None,
    /// To anyone (development, or behind an authenticating proxy).
    Open,
    /// To holders of a valid token that entitles to the key's policy (`[auth]`).
    Token,
}

/// Where a policy's key for one class comes from.
#[derive(Debug, Clone)]
pub enum KeySpec {
    /// A key named in the configuration (or imported).
    Named(Arc<ContentKey>),
    /// A key from the key store, created (or derived from the seed) on first use, labelled by
    /// the policy's scope and the class.
    Auto,
}

/// Which assets share auto keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// One set of keys per asset (1:1).
    Asset,
    /// One set of keys for every asset of the named group (1:N).
    Group(String),
}

/// Key classes of a policy (N:1: several keys per asset).
#[derive(Debug, Clone, Default)]
pub struct PolicyKeys {
    /// Video (any resolution without a more specific class).
    pub video: Option<KeySpec>,
    /// Video up to 576 lines.
    pub sd: Option<KeySpec>,
    /// Video up to 1080 lines.
    pub hd: Option<KeySpec>,
    /// Video above 1080 lines.
    pub uhd: Option<KeySpec>,
    /// Audio (defaults to the video key).
    pub audio: Option<KeySpec>,
    /// HLS AES-128.
    pub envelope: Option<KeySpec>,
}

/// Whether a policy issues device-bound licenses (`device_licenses`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceLicenses {
    /// No device licenses (the default).
    #[default]
    None,
    /// Direct licenses: the asset's content keys wrapped to a device or domain key.
    Direct,
    /// License chaining (issue 11): a leaf with the content keys travels in the content, wrapped
    /// under the policy's root key(s); devices get only root licenses (clients that cannot chain
    /// get direct licenses).
    Chained,
}

/// One version of a policy's root key (chained policies). The key itself is derived from the
/// device master secret (`root` ∥ policy ∥ version), never stored; the version is live from
/// `not_before` to `not_after` (Unix seconds). Two live versions are an overlap: leaves made
/// then carry a recipient for each, so clients holding either root play them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootKeyVersion {
    /// Version number (the `rkid` is `{policy}.{version}`).
    pub version: u32,
    /// Live from (inclusive).
    pub not_before: i64,
    /// Live until (exclusive).
    pub not_after: i64,
}

impl RootKeyVersion {
    /// Whether the version is live at `now`.
    pub fn live(&self, now: i64) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// DRM systems a policy signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    /// W3C ClearKey (`org.w3.clearkey`).
    ClearKey,
    /// Google Widevine.
    Widevine,
    /// Microsoft PlayReady.
    PlayReady,
    /// Apple FairPlay (HLS only).
    FairPlay,
}

impl System {
    /// Config name.
    pub fn parse(s: &str) -> Option<System> {
        match s {
            "clearkey" => Some(System::ClearKey),
            "widevine" => Some(System::Widevine),
            "playready" => Some(System::PlayReady),
            "fairplay" => Some(System::FairPlay),
            _ => None,
        }
    }
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
    /// Leading segments left clear in protected variants.
    pub clear_lead_segments: usize,
    /// Whether clear variants may be served although the asset is protected.
    pub allow_clear: bool,
    /// Raw key delivery.
    pub key_delivery: KeyDelivery,
    /// Keys per class.
    pub keys: PolicyKeys,
    /// Which assets share auto keys.
    pub key_scope: KeyScope,
    /// DRM systems signalled in manifests and init segments.
    pub systems: Vec<System>,
    /// License / key acquisition URL per system (absent: our own endpoint, where we have one).
    pub license_urls: BTreeMap<System, String>,
    /// Whether `persistent-license` ClearKey sessions are honoured.
    pub persistent_licenses: bool,
    /// Device-bound licenses for this policy's assets.
    pub device_licenses: DeviceLicenses,
    /// Root-key versions of a chained policy, by version (empty otherwise).
    pub root_keys: Vec<RootKeyVersion>,
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
            keys: PolicyKeys::default(),
            key_scope: KeyScope::Asset,
            systems: Vec::new(),
            license_urls: BTreeMap::new(),
            persistent_licenses: false,
            device_licenses: DeviceLicenses::None,
            root_keys: Vec::new(),
        }
    }

    /// The root-key versions live at `now` (what a leaf made now is wrapped under).
    pub fn live_roots(&self, now: i64) -> Vec<RootKeyVersion> {
        if self.device_licenses != DeviceLicenses::Chained {
            return Vec::new();
        }
        self.root_keys.iter().copied().filter(|r| r.live(now)).collect()
    }

    /// Whether `v` may be served for DASH or HLS under this policy.
    pub fn offers(&self, v: Variant) -> bool {
        if v == Variant::Clear && self.allow_clear {
            return true;
        }
        self.dash.contains(&v) || self.hls.contains(&v)
    }

    /// Whether `v` may be served as a DASH manifest.
    pub fn offers_dash(&self, v: Variant) -> bool {
        self.dash.contains(&v) || (v == Variant::Clear && self.allow_clear)
    }

    /// Whether `v` may be served as HLS playlists.
    pub fn offers_hls(&self, v: Variant) -> bool {
        self.hls.contains(&v) || (v == Variant::Clear && self.allow_clear)
    }

    /// Whether the policy protects anything.
    pub fn is_protected(&self) -> bool {
        self.dash.iter().chain(&self.hls).any(|v| *v != Variant::Clear)
    }

    /// The key class and spec of a track: video by resolution (sd ≤ 576 lines, hd ≤ 1080, uhd
    /// above, each falling back to `video`), audio (falling back to video); text stays clear.
    pub fn class_of(&self, kind: crate::index::TrackKind, height: u16) -> Option<(&'static str, &KeySpec)> {
        use crate::index::TrackKind;
        let k = &self.keys;
        match kind {
            TrackKind::Video => {
                let (class, spec) = match height {
                    0..=576 => ("sd", &k.sd),
                    577..=1080 => ("hd", &k.hd),
                    _ => ("uhd", &k.uhd),
                };
                spec.as_ref().map(|s| (class, s)).or(k.video.as_ref().map(|s| ("video", s)))
            }
            TrackKind::Audio => k.audio.as_ref().map(|s| ("audio", s)).or_else(|| self.class_of(TrackKind::Video, 0)),
            TrackKind::Text => None,
        }
    }
}

/// All keys, policies and asset rules of one configuration.
#[derive(Debug)]
pub struct Drm {
    /// Named keys by id.
    pub keys: BTreeMap<KeyId, Arc<ContentKey>>,
    /// Auto keys (created or derived on first use).
    pub store: Option<Arc<dyn store::KeyStore>>,
    /// Rules in order: the first whose pattern matches an asset id gives its policy.
    pub rules: Vec<(pattern::Pattern, Arc<Policy>)>,
    /// Applied when no rule matches.
    pub default_policy: Arc<Policy>,
    /// Token verification for `key_delivery = "token"` policies.
    pub verifier: Option<Arc<crate::license::Verifier>>,
    /// Carry a playlist request's `?token=` into the key and child playlist URIs it writes.
    pub carry_token: bool,
    /// HMAC secret for the development token command (never logged).
    pub hmac_secret: Option<Secret>,
}

/// Secret bytes with a redacted Debug.
#[derive(Clone)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A policy (and the asset or group it protects) that uses a key.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The policy.
    pub policy: Arc<Policy>,
    /// Asset id, or `group:{name}`, or the rule's pattern for named keys.
    pub scope: String,
    /// The rule's pattern, for named keys.
    pub pattern: Option<pattern::Pattern>,
}

impl Drm {
    /// Whether asset id `asset` is protected by this owner's key: it matches the rule's pattern
    /// (named keys), is the asset (per-asset auto keys), or is an asset of the group.
    pub fn owner_covers(&self, owner: &Owner, asset: &str) -> bool {
        if let Some(p) = &owner.pattern {
            return p.matches(asset) && Arc::ptr_eq(&self.policy_for(asset), &owner.policy);
        }
        if let Some(g) = owner.scope.strip_prefix("group:") {
            return self.policy_for(asset).key_scope == KeyScope::Group(g.to_owned());
        }
        owner.scope == asset
    }
}

impl Default for Drm {
    fn default() -> Self {
        Drm {
            keys: BTreeMap::new(),
            store: None,
            verifier: None,
            carry_token: true,
            hmac_secret: None,
            rules: Vec::new(),
            default_policy: Arc::new(Policy::clear()),
        }
    }
}

impl Drm {
    /// A counter that moves whenever a chained policy's set of live root-key versions may change
    /// (a version's `not_before` or `not_after` passed): mixed into the cache generation, so
    /// plans and manifests made with the previous leaves stop matching at a rollover. Always 0
    /// without chained policies.
    pub fn root_epoch(&self, now: i64) -> u64 {
        let policies = self.rules.iter().map(|(_, p)| p).chain(std::iter::once(&self.default_policy));
        let mut n = 0u64;
        for p in policies.filter(|p| p.device_licenses == DeviceLicenses::Chained) {
            for r in &p.root_keys {
                n = n.saturating_add(u64::from(r.not_before <= now)).saturating_add(u64::from(r.not_after <= now));
            }
        }
        n
    }

    /// The policy of an asset.
    pub fn policy_for(&self, asset: &str) -> Arc<Policy> {
        self.rules
            .iter()
            .find(|(p, _)| p.matches(asset))
            .map_or_else(|| self.default_policy.clone(), |(_, pol)| pol.clone())
    }

    /// Resolves a key spec for `asset` and `class` under `policy`.
    pub fn resolve(
        &self,
        policy: &Policy,
        asset: &str,
        class: &str,
        spec: &KeySpec,
    ) -> Result<Arc<ContentKey>, store::StoreError> {
        match spec {
            KeySpec::Named(k) => Ok(k.clone()),
            KeySpec::Auto => {
                let store = self.store.as_ref().ok_or_else(|| store::StoreError::Io {
                    path: "<none>".into(),
                    reason: "no key store configured".into(),
                })?;
                store.get_or_create(&label(policy, asset, class))
            }
        }
    }

    /// Like [`Drm::resolve`], but never creates an auto key (inspection tools).
    pub fn peek(&self, policy: &Policy, asset: &str, class: &str, spec: &KeySpec) -> Option<Arc<ContentKey>> {
        match spec {
            KeySpec::Named(k) => Some(k.clone()),
            KeySpec::Auto => self.store.as_ref()?.peek(&label(policy, asset, class)),
        }
    }

    /// The key with id `kid` and every policy that uses it, with its scope.
    pub fn key_owners(&self, kid: &KeyId) -> Option<(Arc<ContentKey>, Vec<Owner>)> {
        let uses = |p: &Policy, k: &ContentKey| {
            let ks = &p.keys;
            [&ks.video, &ks.sd, &ks.hd, &ks.uhd, &ks.audio, &ks.envelope]
                .iter()
                .any(|s| matches!(s, Some(KeySpec::Named(n)) if n.kid == k.kid))
        };
        if let Some(k) = self.keys.get(kid) {
            let owners = self
                .rules
                .iter()
                .filter(|(_, p)| uses(p, k))
                .map(|(pat, p)| Owner { policy: p.clone(), scope: pat.to_string(), pattern: Some(pat.clone()) })
                .collect();
            return Some((k.clone(), owners));
        }
        let (label, key) = self.store.as_ref()?.find_kid(kid)?;
        let scope = label.rsplit_once('/').map_or(label.as_str(), |(s, _)| s);
        let owners = if let Some(asset) = scope.strip_prefix("asset:") {
            vec![Owner { policy: self.policy_for(asset), scope: asset.to_owned(), pattern: None }]
        } else if let Some(group) = scope.strip_prefix("group:") {
            let mut v: Vec<Owner> = Vec::new();
            for (_, p) in &self.rules {
                if p.key_scope == KeyScope::Group(group.to_owned()) && !v.iter().any(|o| Arc::ptr_eq(&o.policy, p)) {
                    v.push(Owner { policy: p.clone(), scope: format!("group:{group}"), pattern: None });
                }
            }
            v
        } else {
            Vec::new()
        };
        Some((key, owners))
    }
}

/// Store label of a policy's key class for an asset.
pub fn label(policy: &Policy, asset: &str, class: &str) -> String {
    match &policy.key_scope {
        KeyScope::Asset => format!("asset:{asset}/{class}"),
        KeyScope::Group(g) => format!("group:{g}/{class}"),
    }
}
