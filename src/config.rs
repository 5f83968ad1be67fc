//! TOML configuration: raw serde shapes (unknown keys refused) → validated [`Config`], with every
//! error reported at once and naming its field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default target segment duration (seconds).
pub const DEFAULT_TARGET_SEGMENT: f64 = 4.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    assets: RawAssets,
    #[serde(default)]
    packaging: RawPackaging,
    #[serde(default)]
    http: RawHttp,
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
        let file = path.map_or("<defaults>".to_owned(), |p| p.display().to_string());
        let raw: Raw = match path {
            None => Raw::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    file: file.clone(),
                    errors: vec![format!("cannot read: {e}")],
                })?;
                toml::from_str(&text).map_err(|e| ConfigError {
                    file: file.clone(),
                    errors: vec![e.to_string().trim().replace('\n', "\n  ")],
                })?
            }
        };
        let mut errors = Vec::new();
        let target = raw
            .packaging
            .target_segment_duration_secs
            .unwrap_or(DEFAULT_TARGET_SEGMENT);
        if !(0.5..=60.0).contains(&target) {
            errors.push(format!(
                "packaging.target_segment_duration_secs: {target} is outside 0.5..=60"
            ));
        }
        let rescan = raw.assets.rescan_interval_ms.unwrap_or(1000);
        if !(50..=60_000).contains(&rescan) {
            errors.push(format!(
                "assets.rescan_interval_ms: {rescan} is outside 50..=60000"
            ));
        }
        let stable = raw.assets.stable_after_ms.unwrap_or(1000);
        if stable > 600_000 {
            errors.push(format!("assets.stable_after_ms: {stable} is above 600000"));
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
            (
                "http.cache_control_segments",
                &raw.http.cache_control_segments,
            ),
            (
                "http.cache_control_manifests",
                &raw.http.cache_control_manifests,
            ),
        ] {
            if let Some(v) = v {
                if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    errors.push(format!("{field}: must be printable ASCII"));
                }
            }
        }
        let listen = overrides
            .listen
            .or(raw.server.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!(
                "server.listen: '{listen}' is not an address like 127.0.0.1:8080"
            ));
        }
        if !errors.is_empty() {
            return Err(ConfigError { file, errors });
        }
        Ok(Config {
            listen,
            assets_dir: overrides
                .assets_dir
                .or(raw.assets.dir)
                .unwrap_or_else(|| PathBuf::from("assets")),
            rescan_interval: Duration::from_millis(rescan),
            stable_after: Duration::from_millis(stable),
            target_segment: target,
            cache_control_segments: raw
                .http
                .cache_control_segments
                .unwrap_or_else(|| "public, max-age=31536000, immutable".to_owned()),
            cache_control_manifests: raw
                .http
                .cache_control_manifests
                .unwrap_or_else(|| "public, max-age=2".to_owned()),
            header_read_timeout: Duration::from_secs(header_timeout),
            idle_timeout: Duration::from_secs(idle),
            max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_reported() {
        let dir = std::env::temp_dir().join(format!("drm-origin-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.toml");
        std::fs::write(
            &p,
            "[packaging]\ntarget_segment_duration_secs = 0.0\n[http]\nidle_timeout_secs = 0\n",
        )
        .unwrap();
        let e = Config::load(Some(&p), Overrides::default()).unwrap_err();
        assert_eq!(e.errors.len(), 2, "{e}");
        std::fs::write(&p, "[nope]\nx = 1\n").unwrap();
        let e = Config::load(Some(&p), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
