//! The configuration file's serde shapes: unknown keys are refused, every field is optional
//! (defaults live in [`super`]), and secrets are left out of Debug output.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawAssets,
    #[serde(default)]
    pub packaging: RawPackaging,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub keys: BTreeMap<String, RawKey>,
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    pub assets: Vec<RawAssetRule>,
    #[serde(default)]
    pub keystore: RawKeyStore,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub player: RawPlayer,
    #[serde(default)]
    pub log: RawLog,
    pub devices: Option<RawDevices>,
    pub licenses: Option<RawLicenses>,
}

/// `[log]`: the log line format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<String>,
    pub access: Option<bool>,
}

/// `[server.tls]`: certificate chain and key (PEM), and where TLS is served.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub listen: Option<String>,
}

/// `[devices]`: device registration and its registry.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevices {
    pub registry: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub signing_key: Option<PathBuf>,
    pub max_devices_per_subject: Option<usize>,
    pub max_domain_members: Option<usize>,
    pub request_skew_secs: Option<u64>,
    #[serde(default)]
    pub register_claims: BTreeMap<String, String>,
    pub entitlement_grace_secs: Option<u64>,
}

impl std::fmt::Debug for RawDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The registry URL may carry a database password.
        f.debug_struct("RawDevices")
            .field("registry", &self.registry.as_deref().map(without_credentials))
            .field("max_devices_per_subject", &self.max_devices_per_subject)
            .finish_non_exhaustive()
    }
}

/// A URL for Debug output and messages: no `user:password@`, no query.
pub(crate) fn without_credentials(url: &str) -> String {
    let url = without_query(url);
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `[licenses]`: the pre-generated license folder.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLicenses {
    pub dir: Option<PathBuf>,
    pub direct_ttl_days: Option<u64>,
    pub direct_ttl_secs: Option<u64>,
    pub regenerate_every_secs: Option<u64>,
    pub public_url: Option<String>,
    pub fsync: Option<bool>,
}

/// `[player]`: the demo page `/player/{asset}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlayer {
    pub enabled: Option<bool>,
    pub script: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub hmac_secret: Option<String>,
    pub hmac_algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub public_keys: Vec<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: Option<u64>,
    #[serde(default)]
    pub required_claims: BTreeMap<String, String>,
    pub kid_claim: Option<String>,
    pub asset_claim: Option<String>,
    pub tier_claim: Option<String>,
    #[serde(default)]
    pub tiers: BTreeMap<String, Vec<String>>,
    pub carry_token: Option<bool>,
    pub jwks_url: Option<String>,
    pub openid_discovery_url: Option<String>,
    pub jwks_refresh_secs: Option<u64>,
    pub jwks_timeout_secs: Option<u64>,
    pub jwks_min_refresh_secs: Option<u64>,
    pub jwks_ca_file: Option<PathBuf>,
    pub token_cache_mb: Option<u64>,
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
pub(super) fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyStore {
    pub backend: Option<String>,
    pub path: Option<PathBuf>,
    pub seed: Option<String>,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub timeout_ms: Option<u64>,
}

impl std::fmt::Debug for RawKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawKeyStore")
            .field("backend", &self.backend)
            .field("path", &self.path)
            .field("url_env", &self.url_env)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub encrypted_segments_mb: Option<u64>,
    pub max_concurrent_encryptions: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub kid: String,
    pub key: String,
}

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub dash: Option<Vec<String>>,
    pub hls: Option<Vec<String>>,
    pub clear_lead_segments: Option<usize>,
    pub allow_clear: Option<bool>,
    pub key_delivery: Option<String>,
    pub key_group: Option<String>,
    pub persistent_licenses: Option<bool>,
    pub device_licenses: Option<String>,
    pub root_keys: Option<Vec<RawRootKey>>,
    pub drm_systems: Option<Vec<String>>,
    #[serde(default)]
    pub license_urls: BTreeMap<String, String>,
    #[serde(default)]
    pub keys: RawPolicyKeys,
}

/// `root_keys = [{ version = 1, not_before = 0, not_after = 1798761600 }, …]` (Unix seconds).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRootKey {
    pub version: u32,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicyKeys {
    pub video: Option<String>,
    pub sd: Option<String>,
    pub hd: Option<String>,
    pub uhd: Option<String>,
    pub audio: Option<String>,
    pub envelope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "assets")]
pub(super) struct RawAssetRule {
    #[serde(rename = "match")]
    pub pattern: String,
    pub policy: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub max_connections: Option<usize>,
    pub drain_secs: Option<u64>,
    pub tls: Option<RawTls>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssets {
    pub dir: Option<PathBuf>,
    pub rescan_interval_ms: Option<u64>,
    pub stable_after_ms: Option<u64>,
    /// "folder" (default) or "s3"; the rest is for "s3".
    pub backend: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub cache_bytes: Option<u64>,
    pub chunk_bytes: Option<u64>,
    pub timeout_ms: Option<u64>,
}

impl std::fmt::Debug for RawAssets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAssets")
            .field("dir", &self.dir)
            .field("backend", &self.backend)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint.as_deref().map(without_query))
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPackaging {
    pub target_segment_duration_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub cache_control_segments: Option<String>,
    pub cache_control_manifests: Option<String>,
    pub header_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
}
