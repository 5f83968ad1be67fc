//! Operational settings: TLS, the shutdown drain, the log format, and recognising the shipped
//! demo keys and secret (so a server that exposes them beyond loopback says so, loudly).

use std::path::PathBuf;
use std::time::Duration;

use super::raw::Raw;

/// `[server.tls]`, validated: the files parsed once at load (a broken certificate or key is a
/// configuration error), and they are read again by the server whenever they change.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Where TLS is served. `None`: on `server.listen` (which then serves TLS only); otherwise a
    /// second listener, and `server.listen` stays cleartext HTTP/1.1.
    pub listen: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// The shipped demo material: `config/demo.toml`'s content keys and HMAC secret. Anyone can read
/// them in the repository, so content protected with them is not protected at all.
pub const DEMO_KEYS: [&str; 5] = [
    "de30c0de5ec7e7000000000000000001",
    "de30c0de5ec7e7000000000000000002",
    "de30c0de5ec7e7000000000000000003",
    "de30c0de5ec7e7000000000000000004",
    "de30c0de5ec7e7000000000000000005",
];
/// The demo HMAC secret (base64 of "drm-origin DEMO secret - public, never use in production").
pub const DEMO_HMAC_SECRET: &str = "ZHJtLW9yaWdpbiBERU1PIHNlY3JldCAtIHB1YmxpYywgbmV2ZXIgdXNlIGluIHByb2R1Y3Rpb24=";

/// The operational part of a configuration, or errors pushed to `errors`.
pub(super) struct Ops {
    pub tls: Option<TlsSettings>,
    pub drain: Duration,
    pub log_format: LogFormat,
    pub access_log: bool,
    pub demo_material: Vec<String>,
}

pub(super) fn build(raw: &Raw, errors: &mut Vec<String>) -> Ops {
    let drain = raw.server.drain_secs.unwrap_or(30);
    if drain > 3600 {
        errors.push(format!("server.drain_secs: {drain} is above 3600"));
    }
    let tls = raw.server.tls.as_ref().map(|t| {
        if let Some(l) = &t.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                errors.push(format!("server.tls.listen: '{l}' is not an address like 127.0.0.1:8443"));
            }
        }
        if let Err(e) = crate::http::tls::load(&t.cert, &t.key) {
            errors.push(format!("server.tls: {e}"));
        }
        TlsSettings { cert: t.cert.clone(), key: t.key.clone(), listen: t.listen.clone() }
    });
    let log_format = match raw.log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            errors.push(format!("log.format: '{other}' is not one of text, json"));
            LogFormat::Text
        }
    };
    let mut demo_material: Vec<String> = raw
        .keys
        .iter()
        .filter(|(_, k)| DEMO_KEYS.contains(&k.key.trim().to_ascii_lowercase().as_str()))
        .map(|(name, _)| format!("keys.{name}"))
        .collect();
    if raw.auth.hmac_secret.as_deref().is_some_and(|s| s.trim() == DEMO_HMAC_SECRET) {
        demo_material.push("auth.hmac_secret".to_owned());
    }
    Ops {
        tls,
        drain: Duration::from_secs(drain),
        log_format,
        access_log: raw.log.access.unwrap_or(true),
        demo_material,
    }
}

/// Whether every address `listen` can be reached from is on this machine.
pub fn is_loopback(listen: &str) -> bool {
    listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
}
