//! TOML configuration: raw serde shapes (unknown keys refused) → validated [`Config`], with every
//! error reported at once and naming its field.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

mod devices;
mod drm;
mod lines;
mod ops;
mod raw;

pub use ops::{is_loopback, LogFormat, TlsSettings, DEMO_HMAC_SECRET, DEMO_KEYS};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::drm::Drm;
use raw::Raw;

/// Default target segment duration (seconds).
pub const DEFAULT_TARGET_SEGMENT: f64 = 4.0;

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
    /// Device licensing (`[devices]`, `[licenses]`), when configured.
    pub devices: Option<crate::license::device::DeviceSettings>,
    /// TLS (rustls), if configured.
    pub tls: Option<TlsSettings>,
    /// How long in-flight requests may run on after SIGTERM.
    pub drain: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// One log line per request.
    pub access_log: bool,
    /// The fields that hold the shipped demo keys or secret (`keys.demo_video`,
    /// `auth.hmac_secret`): public material, never for real content.
    pub demo_material: Vec<String>,
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
        let drm = drm::build_drm(&raw, &mut errors, previous);
        let devices = devices::build_devices(&raw, &drm, &mut errors);
        let ops = ops::build(&raw, &mut errors);
        let cache_mb = raw.cache.encrypted_segments_mb.unwrap_or(256);
        if cache_mb > 1 << 20 {
            errors.push(format!("cache.encrypted_segments_mb: {cache_mb} is above 1048576"));
        }
        let max_enc = raw.cache.max_concurrent_encryptions.unwrap_or(4);
        if max_enc == 0 {
            errors.push("cache.max_concurrent_encryptions: must be at least 1".to_owned());
        }
        if !errors.is_empty() {
            let errors = errors.into_iter().map(|e| lines::with_line(&text, e)).collect();
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
            player_script: raw
                .player
                .enabled
                .unwrap_or(true)
                .then(|| raw.player.script.clone().unwrap_or_else(crate::http::player::default_script)),
            drm: Arc::new(drm),
            devices,
            tls: ops.tls,
            drain: ops.drain,
            log_format: ops.log_format,
            access_log: ops.access_log,
            demo_material: ops.demo_material,
        })
    }
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
