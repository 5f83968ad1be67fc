//! TOML configuration: raw serde shapes (unknown keys refused) → validated [`Config`], with every
//! error reported at once and naming its field.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::crypto::{Key, KeyId};
use crate::drm::pattern::Pattern;
use crate::drm::store::{Key30, KeyStore, Mode};
use crate::drm::{ContentKey, Drm, KeyDelivery, KeyScope, KeySpec, Policy, PolicyKeys, System, Variant};

/// Default target segment duration (seconds).
pub const DEFAULT_TARGET_SEGMENT: f64 = 4.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    storage: RawAssets,
    #[serde(default)]
    packaging: RawPackaging,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    keys: BTreeMap<String, RawKey>,
    #[serde(default)]
    policies: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    assets: Vec<RawAssetRule>,
    #[serde(default)]
    keystore: RawKeyStore,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    player: RawPlayer,
}

/// `[player]`: the demo page `/player/{asset}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlayer {
    enabled: Option<bool>,
    script: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    hmac_secret: Option<String>,
    hmac_algorithms: Option<Vec<String>>,
    #[serde(default)]
    public_keys: Vec<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: Option<u64>,
    #[serde(default)]
    required_claims: BTreeMap<String, String>,
    kid_claim: Option<String>,
    asset_claim: Option<String>,
    tier_claim: Option<String>,
    #[serde(default)]
    tiers: BTreeMap<String, Vec<String>>,
    carry_token: Option<bool>,
    jwks_url: Option<String>,
    openid_discovery_url: Option<String>,
    jwks_refresh_secs: Option<u64>,
    jwks_timeout_secs: Option<u64>,
    jwks_min_refresh_secs: Option<u64>,
    jwks_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAuth")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url.as_deref().map(without_query))
            .field("openid_discovery_url", &self.openid_discovery_url.as_deref().map(without_query))
            .finish_non_exhaustive()
    }
}

/// A URL for Debug output: its query could carry a credential.
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyStore {
    path: Option<PathBuf>,
    seed: Option<String>,
}

impl std::fmt::Debug for RawKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawKeyStore").field("path", &self.path).finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    encrypted_segments_mb: Option<u64>,
    max_concurrent_encryptions: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    key: String,
}

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    dash: Option<Vec<String>>,
    hls: Option<Vec<String>>,
    clear_lead_segments: Option<usize>,
    allow_clear: Option<bool>,
    key_delivery: Option<String>,
    key_group: Option<String>,
    persistent_licenses: Option<bool>,
    drm_systems: Option<Vec<String>>,
    #[serde(default)]
    license_urls: BTreeMap<String, String>,
    #[serde(default)]
    keys: RawPolicyKeys,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyKeys {
    video: Option<String>,
    sd: Option<String>,
    hd: Option<String>,
    uhd: Option<String>,
    audio: Option<String>,
    envelope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "assets")]
struct RawAssetRule {
    #[serde(rename = "match")]
    pattern: String,
    policy: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssets {
    dir: Option<PathBuf>,
    rescan_interval_ms: Option<u64>,
    stable_after_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackaging {
    target_segment_duration_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    cache_control_segments: Option<String>,
    cache_control_manifests: Option<String>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: String,
    /// Asset folder.
    pub assets_dir: PathBuf,
    /// Folder poll interval.
    pub rescan_interval: Duration,
    /// Stability delay before a new or changed file is served.
    pub stable_after: Duration,
    /// Target segment duration in seconds.
    pub target_segment: f64,
    /// Cache-Control for segments.
    pub cache_control_segments: String,
    /// Cache-Control for manifests.
    pub cache_control_manifests: String,
    /// Request-head timeout.
    pub header_read_timeout: Duration,
    /// Inactivity timeout.
    pub idle_timeout: Duration,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Byte budget of the encrypted-segment cache (0 disables it).
    pub encrypted_cache_bytes: u64,
    /// Encryptions running at once (further requests wait).
    pub max_concurrent_encryptions: usize,
    /// shaka-player's library for the demo page (`None`: the page is off).
    pub player_script: Option<PathBuf>,
    /// Keys, policies and asset rules.
    pub drm: Arc<Drm>,
}

/// Overrides from the command line (they win over the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--assets`
    pub assets_dir: Option<PathBuf>,
}

/// All problems found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration {file}:\n  {}", .errors.join("\n  "))]
pub struct ConfigError {
    /// The file (or "<defaults>").
    pub file: String,
    /// One line per problem: `field: reason`.
    pub errors: Vec<String>,
}

impl Config {
    /// Loads `path` (if any), applies `overrides`, validates.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        Config::reload(path, overrides, None)
    }

    /// Like [`Config::load`], reusing the key store of the configuration in force when the new
    /// one names the same store: two stores over one file could each create a key for one label.
    pub fn reload(path: Option<&Path>, overrides: Overrides, previous: Option<&Drm>) -> Result<Config, ConfigError> {
        let file = path.map_or("<defaults>".to_owned(), |p| p.display().to_string());
        let mut text = String::new();
        let raw: Raw = match path {
            None => Raw::default(),
            Some(p) => {
                text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError { file: file.clone(), errors: vec![format!("cannot read: {e}")] })?;
                toml::from_str(&text).map_err(|e| ConfigError {
                    file: file.clone(),
                    errors: vec![e.to_string().trim().replace('\n', "\n  ")],
                })?
            }
        };
        let mut errors = Vec::new();
        let target = raw.packaging.target_segment_duration_secs.unwrap_or(DEFAULT_TARGET_SEGMENT);
        if !(0.5..=60.0).contains(&target) {
            errors.push(format!("packaging.target_segment_duration_secs: {target} is outside 0.5..=60"));
        }
        let rescan = raw.storage.rescan_interval_ms.unwrap_or(1000);
        if !(50..=60_000).contains(&rescan) {
            errors.push(format!("storage.rescan_interval_ms: {rescan} is outside 50..=60000"));
        }
        let stable = raw.storage.stable_after_ms.unwrap_or(1000);
        if stable > 600_000 {
            errors.push(format!("storage.stable_after_ms: {stable} is above 600000"));
        }
        let header_timeout = raw.http.header_read_timeout_secs.unwrap_or(10);
        if header_timeout == 0 {
            errors.push("http.header_read_timeout_secs: must be at least 1".to_owned());
        }
        let idle = raw.http.idle_timeout_secs.unwrap_or(30);
        if idle == 0 {
            errors.push("http.idle_timeout_secs: must be at least 1".to_owned());
        }
        let max_connections = raw.server.max_connections.unwrap_or(4096);
        if max_connections == 0 {
            errors.push("server.max_connections: must be at least 1".to_owned());
        }
        for (field, v) in [
            ("http.cache_control_segments", &raw.http.cache_control_segments),
            ("http.cache_control_manifests", &raw.http.cache_control_manifests),
        ] {
            if let Some(v) = v {
                if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    errors.push(format!("{field}: must be printable ASCII"));
                }
            }
        }
        let listen = overrides.listen.or(raw.server.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!("server.listen: '{listen}' is not an address like 127.0.0.1:8080"));
        }
        let drm = build_drm(&raw, &mut errors, previous);
        let cache_mb = raw.cache.encrypted_segments_mb.unwrap_or(256);
        if cache_mb > 1 << 20 {
            errors.push(format!("cache.encrypted_segments_mb: {cache_mb} is above 1048576"));
        }
        let max_enc = raw.cache.max_concurrent_encryptions.unwrap_or(4);
        if max_enc == 0 {
            errors.push("cache.max_concurrent_encryptions: must be at least 1".to_owned());
        }
        if !errors.is_empty() {
            let errors = errors.into_iter().map(|e| with_line(&text, e)).collect();
            return Err(ConfigError { file, errors });
        }
        Ok(Config {
            listen,
            assets_dir: overrides.assets_dir.or(raw.storage.dir).unwrap_or_else(|| PathBuf::from("assets")),
            rescan_interval: Duration::from_millis(rescan),
            stable_after: Duration::from_millis(stable),
            target_segment: target,
            cache_control_segments: raw
                .http
                .cache_control_segments
                .unwrap_or_else(|| "public, max-age=31536000, immutable".to_owned()),
            cache_control_manifests: raw.http.cache_control_manifests.unwrap_or_else(|| "public, max-age=2".to_owned()),
            header_read_timeout: Duration::from_secs(header_timeout),
            idle_timeout: Duration::from_secs(idle),
            max_connections,
            encrypted_cache_bytes: cache_mb.saturating_mul(1 << 20),
            max_concurrent_encryptions: max_enc,
            player_script: raw.player.enabled.unwrap_or(true).then(|| {
                raw.player.script.clone().unwrap_or_else(|| PathBuf::from(crate::http::player::DEFAULT_SCRIPT))
            }),
            drm: Arc::new(drm),
        })
    }
}

/// Keys, policies and rules; every problem goes to `errors` (nothing is half-applied: the
/// caller discards the result when `errors` is not empty).
fn build_drm(raw: &Raw, errors: &mut Vec<String>, previous: Option<&Drm>) -> Drm {
    let mut drm = Drm::default();
    let mut store_needed = false;
    let wants_store = &mut store_needed;
    let mut auth_needed = false;
    let wants_auth = &mut auth_needed;
    let mut by_name: BTreeMap<&str, Arc<ContentKey>> = BTreeMap::new();
    for (name, k) in &raw.keys {
        let kid = KeyId::parse(&k.kid);
        // Never echo the key value in an error: it is a secret.
        let key = Key::parse_hex(&k.key);
        if kid.is_none() {
            errors.push(format!("keys.{name}.kid: '{}' is not 32 hex digits (UUID dashes allowed)", k.kid));
        }
        if key.is_none() {
            errors.push(format!("keys.{name}.key: not 32 hex digits (value not shown)"));
        }
        if let (Some(kid), Some(key)) = (kid, key) {
            if drm.keys.contains_key(&kid) {
                errors.push(format!("keys.{name}.kid: {kid} is used by another key"));
                continue;
            }
            let ck = Arc::new(ContentKey { name: name.clone(), kid, key });
            drm.keys.insert(kid, ck.clone());
            by_name.insert(name, ck);
        }
    }
    let mut policies: BTreeMap<&str, Arc<Policy>> = BTreeMap::new();
    for (name, p) in &raw.policies {
        let field = |f: &str| format!("policies.{name}.{f}");
        let mut variants = |f: &str, list: &Option<Vec<String>>| -> Vec<Variant> {
            // An absent list offers nothing over that protocol: a protected asset must never
            // fall back to clear because one protocol was left unconfigured.
            let Some(list) = list.clone() else { return Vec::new() };
            if list.is_empty() {
                errors.push(format!("{}: must list at least one variant (or leave the key out)", field(f)));
            }
            let mut out: Vec<Variant> = Vec::new();
            for v in &list {
                match Variant::parse(v) {
                    Some(Variant::Aes128) if f == "dash" => {
                        errors.push(format!("{}: aes128 is an HLS-only protection", field(f)))
                    }
                    Some(var) if !out.contains(&var) => out.push(var),
                    Some(_) => errors.push(format!("{}: '{v}' listed twice", field(f))),
                    None => errors.push(format!("{}: unknown variant '{v}' (clear, cenc, cbcs, aes128)", field(f))),
                }
            }
            out
        };
        let mut dash = variants("dash", &p.dash);
        let mut hls = variants("hls", &p.hls);
        if p.dash.is_none() && p.hls.is_none() {
            // A policy that names no variant at all is a clear policy.
            dash = vec![Variant::Clear];
            hls = vec![Variant::Clear];
        }
        let mut key = |f: &str, n: &Option<String>| -> Option<KeySpec> {
            let n = n.as_ref()?;
            if n == "auto" {
                return Some(KeySpec::Auto);
            }
            let k = by_name.get(n.as_str()).cloned();
            if k.is_none() {
                errors.push(format!("policies.{name}.keys.{f}: no key named '{n}' in [keys] (or \"auto\")"));
            }
            k.map(KeySpec::Named)
        };
        let keys = PolicyKeys {
            video: key("video", &p.keys.video),
            sd: key("sd", &p.keys.sd),
            hd: key("hd", &p.keys.hd),
            uhd: key("uhd", &p.keys.uhd),
            audio: key("audio", &p.keys.audio),
            envelope: key("envelope", &p.keys.envelope),
        };
        let video_given = [&p.keys.video, &p.keys.sd, &p.keys.hd, &p.keys.uhd].iter().any(|k| k.is_some());
        let needs_cenc = dash.iter().chain(&hls).any(|v| v.is_cenc_family());
        if needs_cenc && !video_given {
            errors.push(format!("{}: cenc/cbcs variants need keys.video (or sd/hd/uhd)", field("keys")));
        }
        if hls.contains(&Variant::Aes128) && p.keys.envelope.is_none() {
            errors.push(format!("{}: the aes128 variant needs keys.envelope", field("keys")));
        }
        if let Some(KeySpec::Named(e)) = &keys.envelope {
            let cenc_named = [&keys.video, &keys.sd, &keys.hd, &keys.uhd, &keys.audio];
            if cenc_named.iter().any(|k| matches!(k, Some(KeySpec::Named(c)) if c.kid == e.kid)) {
                errors.push(format!("{}: the envelope key must differ from the CENC keys", field("keys.envelope")));
            }
        }
        let uses_auto = [&keys.video, &keys.sd, &keys.hd, &keys.uhd, &keys.audio, &keys.envelope]
            .iter()
            .any(|k| matches!(k, Some(KeySpec::Auto)));
        if uses_auto {
            *wants_store = true;
        }
        let key_scope = match &p.key_group {
            None => KeyScope::Asset,
            Some(g) if crate::storage::catalog::valid_name(g) => KeyScope::Group(g.clone()),
            Some(g) => {
                errors.push(format!("{}: '{g}' must be a name of [A-Za-z0-9._-]", field("key_group")));
                KeyScope::Asset
            }
        };
        let mut systems = Vec::new();
        for s in p.drm_systems.clone().unwrap_or_else(|| vec!["clearkey".to_owned()]) {
            match System::parse(&s) {
                Some(sys) if !systems.contains(&sys) => systems.push(sys),
                Some(_) => errors.push(format!("{}: '{s}' listed twice", field("drm_systems"))),
                None => errors.push(format!(
                    "{}: unknown system '{s}' (clearkey, widevine, playready, fairplay)",
                    field("drm_systems")
                )),
            }
        }
        let mut license_urls = BTreeMap::new();
        for (sys, url) in &p.license_urls {
            match System::parse(sys) {
                Some(s) => {
                    let ok = (url.starts_with("https://")
                        || url.starts_with("http://")
                        || url.starts_with("skd://")
                        || url.starts_with('/'))
                        && !url.contains('"')
                        && !url.chars().any(char::is_whitespace);
                    if ok {
                        license_urls.insert(s, url.clone());
                    } else {
                        errors.push(format!(
                            "{}: '{url}' is not an http(s)/skd URL or absolute path",
                            field(&format!("license_urls.{sys}"))
                        ));
                    }
                }
                None => errors.push(format!("{}: unknown system '{sys}'", field("license_urls"))),
            }
        }
        let key_delivery = match p.key_delivery.as_deref() {
            None | Some("none") => KeyDelivery::None,
            Some("open") => KeyDelivery::Open,
            Some("token") => KeyDelivery::Token,
            Some(other) => {
                errors.push(format!("{}: '{other}' is not one of none, open, token", field("key_delivery")));
                KeyDelivery::None
            }
        };
        if hls.contains(&Variant::Aes128) && key_delivery == KeyDelivery::None {
            errors.push(format!(
                "{}: aes128 needs key_delivery = \"open\" or \"token\" (players fetch the key from /.drm/key/{{kid}})",
                field("key_delivery")
            ));
        }
        let policy = Policy {
            name: name.clone(),
            allow_clear: p.allow_clear.unwrap_or(false) || !dash.iter().chain(&hls).any(|v| *v != Variant::Clear),
            dash,
            hls,
            clear_lead_segments: p.clear_lead_segments.unwrap_or(0),
            key_delivery,
            keys,
            key_scope,
            systems,
            license_urls,
            persistent_licenses: p.persistent_licenses.unwrap_or(false),
        };
        if policy.key_delivery == KeyDelivery::Token {
            *wants_auth = true;
        }
        policies.insert(name, Arc::new(policy));
    }
    for (i, rule) in raw.assets.iter().enumerate() {
        let pattern = Pattern::parse(&rule.pattern);
        if pattern.is_none() {
            errors.push(format!(
                "assets[{i}].match: '{}' is not an asset id or glob (a/b, kids/*, kids/**)",
                rule.pattern
            ));
        }
        let policy = policies.get(rule.policy.as_str()).cloned();
        if policy.is_none() {
            errors.push(format!("assets[{i}].policy: no policy named '{}' in [policies]", rule.policy));
        }
        if let (Some(pat), Some(pol)) = (pattern, policy) {
            drm.rules.push((pat, pol));
        }
    }
    build_auth(&raw.auth, auth_needed, &policies, &mut drm, previous, errors);
    if store_needed || raw.keystore.seed.is_some() || raw.keystore.path.is_some() {
        let mode = match &raw.keystore.seed {
            Some(b64) => match crate::drm::b64::decode(b64.trim()) {
                Some(seed) if seed.len() >= 30 => Some(Mode::Seed(Key30(seed))),
                _ => {
                    errors.push("keystore.seed: must be base64 of at least 30 bytes (value not shown)".to_owned());
                    None
                }
            },
            None => {
                Some(Mode::Persistent(raw.keystore.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_KEYSTORE))))
            }
        };
        if let Some(mode) = mode {
            let reuse = previous.and_then(|p| p.store.clone()).filter(|s| s.same_source(&mode));
            match reuse {
                Some(s) => drm.store = Some(s),
                None => match KeyStore::open(mode) {
                    Ok(s) => drm.store = Some(Arc::new(s)),
                    Err(e) => errors.push(format!("keystore: {e}")),
                },
            }
        }
    }
    drm
}

/// `[auth]`: verification keys and token rules. Required when a policy delivers keys by token.
fn build_auth(
    a: &RawAuth,
    needed: bool,
    policies: &BTreeMap<&str, Arc<Policy>>,
    drm: &mut Drm,
    previous: Option<&Drm>,
    errors: &mut Vec<String>,
) {
    use crate::license::token::{hmac_key, keys_from_pem};
    use crate::license::{TokenConfig, Verifier};
    use jsonwebtoken::Algorithm;
    drm.carry_token = a.carry_token.unwrap_or(true);
    let mut keys = Vec::new();
    if let Some(secret) = &a.hmac_secret {
        match crate::drm::b64::decode(secret.trim()).filter(|s| s.len() >= 32) {
            Some(bytes) => {
                let mut algs = Vec::new();
                for name in a.hmac_algorithms.clone().unwrap_or_else(|| vec!["HS256".to_owned()]) {
                    match name.as_str() {
                        "HS256" => algs.push(Algorithm::HS256),
                        "HS384" => algs.push(Algorithm::HS384),
                        "HS512" => algs.push(Algorithm::HS512),
                        other => errors.push(format!("auth.hmac_algorithms: '{other}' is not HS256, HS384 or HS512")),
                    }
                }
                keys.push(hmac_key(&bytes, algs));
                drm.hmac_secret = Some(crate::drm::Secret(bytes));
            }
            None => errors.push("auth.hmac_secret: must be base64 of at least 32 bytes (value not shown)".to_owned()),
        }
    }
    for (i, path) in a.public_keys.iter().enumerate() {
        match std::fs::read(path) {
            Ok(pem) => match keys_from_pem(&pem, None) {
                Ok(k) => keys.push(k),
                Err(e) => errors.push(format!("auth.public_keys[{i}]: {}: {e}", path.display())),
            },
            Err(e) => errors.push(format!("auth.public_keys[{i}]: cannot read {}: {e}", path.display())),
        }
    }
    for (tier, list) in &a.tiers {
        for p in list {
            if !policies.contains_key(p.as_str()) {
                errors.push(format!("auth.tiers.{tier}: no policy named '{p}'"));
            }
        }
    }
    if a.tier_claim.is_some() && a.tiers.is_empty() {
        errors.push("auth.tiers: tier_claim is set but no tier unlocks any policy".to_owned());
    }
    let jwks = build_jwks(a, previous, errors);
    if needed && keys.is_empty() && jwks.is_none() {
        errors.push(
            "auth: a policy has key_delivery = \"token\" but no hmac_secret, public_keys, jwks_url or \
             openid_discovery_url is configured"
                .to_owned(),
        );
    }
    if keys.is_empty() && jwks.is_none() {
        return;
    }
    let config = TokenConfig {
        issuer: a.issuer.clone(),
        audience: a.audience.clone(),
        leeway_secs: a.leeway_secs.unwrap_or(30).min(600),
        required_claims: a.required_claims.clone(),
        kid_claim: a.kid_claim.clone(),
        asset_claim: a.asset_claim.clone(),
        tier_claim: a.tier_claim.clone(),
        tiers: a.tiers.clone(),
    };
    drm.verifier = Some(Arc::new(Verifier { keys, jwks, config }));
}

/// `auth.jwks_url` / `auth.openid_discovery_url`: keys published by an identity provider. The
/// previous configuration's key set is kept when the source is unchanged, so a reload neither
/// refetches nor forgets the last good keys.
fn build_jwks(a: &RawAuth, previous: Option<&Drm>, errors: &mut Vec<String>) -> Option<Arc<crate::license::Jwks>> {
    use crate::license::{Jwks, JwksSource};
    let (url, discovery, field) = match (&a.jwks_url, &a.openid_discovery_url) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            errors.push("auth.jwks_url: set either jwks_url or openid_discovery_url, not both".to_owned());
            return None;
        }
        (Some(u), None) => (u.clone(), false, "auth.jwks_url"),
        (None, Some(u)) => (u.clone(), true, "auth.openid_discovery_url"),
    };
    let refresh = a.jwks_refresh_secs.unwrap_or(300);
    if !(1..=86_400).contains(&refresh) {
        errors.push(format!("auth.jwks_refresh_secs: {refresh} is not between 1 and 86400"));
    }
    let timeout = a.jwks_timeout_secs.unwrap_or(5);
    if !(1..=60).contains(&timeout) {
        errors.push(format!("auth.jwks_timeout_secs: {timeout} is not between 1 and 60"));
    }
    let min_refresh = a.jwks_min_refresh_secs.unwrap_or(crate::license::jwks::ON_DEMAND_MIN_INTERVAL.as_secs());
    if !(1..=3600).contains(&min_refresh) {
        errors.push(format!("auth.jwks_min_refresh_secs: {min_refresh} is not between 1 and 3600"));
    }
    let source = JwksSource {
        url,
        discovery,
        refresh: Duration::from_secs(refresh.clamp(1, 86_400)),
        timeout: Duration::from_secs(timeout.clamp(1, 60)),
        on_demand_min_interval: Duration::from_secs(min_refresh.clamp(1, 3600)),
        issuer: a.issuer.clone(),
        ca_file: a.jwks_ca_file.clone(),
    };
    let reuse =
        previous.and_then(|p| p.verifier.as_ref()).and_then(|v| v.jwks.clone()).filter(|j| j.source() == &source);
    if reuse.is_some() {
        return reuse;
    }
    match Jwks::new(source) {
        Ok(j) => Some(Arc::new(j)),
        Err(e) => {
            let field =
                if e.starts_with("cannot read CA") || e.contains("certificate") { "auth.jwks_ca_file" } else { field };
            errors.push(format!("{field}: {e}"));
            None
        }
    }
}

/// Prefixes an error (`field.path: reason`) with the line of the table or key it names.
fn with_line(text: &str, error: String) -> String {
    let field = error.split(':').next().unwrap_or("");
    match line_of(text, field) {
        Some(n) => format!("line {n}: {error}"),
        None => error,
    }
}

fn line_of(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let find_from = |start: usize, pred: &dyn Fn(&str) -> bool| {
        lines.iter().enumerate().skip(start).find(|(_, l)| pred(l.trim())).map(|(i, _)| i)
    };
    // [[assets]] rules are numbered.
    if let Some(rest) = field.strip_prefix("assets[") {
        let idx: usize = rest.split(']').next()?.parse().ok()?;
        let at = lines.iter().enumerate().filter(|(_, l)| l.trim() == "[[assets]]").nth(idx)?.0;
        return Some(at.saturating_add(1));
    }
    let parts: Vec<&str> = field.split('.').collect();
    // Longest table header that prefixes the field, then the key inside it.
    for n in (1..=parts.len()).rev() {
        let table = parts.get(..n)?.join(".");
        if let Some(at) = find_from(0, &|l: &str| l == format!("[{table}]")) {
            let key = parts.get(n).copied();
            let key_at = key.and_then(|k| {
                let end = find_from(at.saturating_add(1), &|l: &str| l.starts_with('[')).unwrap_or(lines.len());
                find_from(at.saturating_add(1), &|l: &str| {
                    l.starts_with(k) && l.get(k.len()..).is_some_and(|r| r.trim_start().starts_with('='))
                })
                .filter(|&i| i < end)
            });
            return Some(key_at.unwrap_or(at).saturating_add(1));
        }
    }
    None
}

/// Where auto keys are persisted unless `keystore.path` says otherwise.
pub const DEFAULT_KEYSTORE: &str = "state/keys.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_reported() {
        let dir = std::env::temp_dir().join(format!("drm-origin-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.toml");
        std::fs::write(&p, "[packaging]\ntarget_segment_duration_secs = 0.0\n[http]\nidle_timeout_secs = 0\n").unwrap();
        let e = Config::load(Some(&p), Overrides::default()).unwrap_err();
        assert_eq!(e.errors.len(), 2, "{e}");
        std::fs::write(&p, "[nope]\nx = 1\n").unwrap();
        let e = Config::load(Some(&p), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
