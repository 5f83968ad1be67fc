//! The demo player page (`/player/{asset}`) and the files it loads from the origin: its own
//! script, embedded in the binary, and shaka-player's compiled library, read from the file the
//! configuration names (`player.script`; npm's `shaka-player` package, installed by
//! `scripts/setup.sh`). Nothing is fetched from a CDN at run time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;

use crate::storage::fnv1a;

/// The page. Static: the script reads the asset id, protocol, variant and token from its URL.
pub const PAGE: &str = include_str!("player/index.html");
/// The page's script.
pub const APP_JS: &str = include_str!("player/app.js");
/// The browser device client (`/.player/device.js`).
pub const DEVICE_JS: &str = include_str!("player/device.js");
/// Where `scripts/demo.sh` (and `scripts/setup.sh`) install shaka-player, relative to the working
/// directory: `npm ci --prefix player`.
pub const DEFAULT_SCRIPT: &str = "player/node_modules/shaka-player/dist/shaka-player.compiled.js";
/// The test suite's copy (`npm ci --prefix tests/browser`), used when the first is absent.
pub const TEST_SUITE_SCRIPT: &str = "tests/browser/node_modules/shaka-player/dist/shaka-player.compiled.js";

/// `player.script` when the configuration names none: `$DRM_ORIGIN_PLAYER_SCRIPT`, else [`DEFAULT_SCRIPT`], else the test suite's
/// copy if only that one is installed.
pub fn default_script() -> PathBuf {
    // Packaged installs (the container image) put the library elsewhere.
    if let Some(p) = std::env::var_os("DRM_ORIGIN_PLAYER_SCRIPT") {
        return PathBuf::from(p);
    }
    let own = PathBuf::from(DEFAULT_SCRIPT);
    if !own.exists() && Path::new(TEST_SUITE_SCRIPT).exists() {
        return PathBuf::from(TEST_SUITE_SCRIPT);
    }
    own
}

/// The page's Content-Security-Policy: scripts from the origin only, media through MSE (`blob:`);
/// manifests, segments and licenses may come from elsewhere when the operator configured
/// external license URLs.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     media-src 'self' blob: data:; connect-src *; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'self'";

/// An embedded file: body, strong ETag, and the time the process started (its Last-Modified).
/// The ETag is computed once per file, not per request.
pub fn embedded(text: &'static str) -> (Bytes, String, SystemTime) {
    static STARTED: OnceLock<SystemTime> = OnceLock::new();
    static PAGE_TAG: OnceLock<String> = OnceLock::new();
    static APP_TAG: OnceLock<String> = OnceLock::new();
    let started = *STARTED.get_or_init(SystemTime::now);
    let tag = |t: &'static str| format!("\"p{:016x}\"", fnv1a(&[t.as_bytes()]));
    let etag = if std::ptr::eq(text, PAGE) {
        PAGE_TAG.get_or_init(|| tag(PAGE)).clone()
    } else if std::ptr::eq(text, APP_JS) {
        APP_TAG.get_or_init(|| tag(APP_JS)).clone()
    } else {
        tag(text)
    };
    (Bytes::from_static(text.as_bytes()), etag, started)
}

/// Why the player library cannot be served (logged with the path; the client sees 404).
#[derive(Debug, thiserror::Error)]
#[error("player library {path}: {error} (run `npm ci --prefix player`, as scripts/demo.sh does, or set player.script)")]
pub struct MissingLibrary {
    path: PathBuf,
    error: std::io::Error,
}

/// The player library: body, ETag from size and mtime, mtime. Kept in memory while the file's
/// size and mtime stay the same, so a page load costs one `stat`, not an 830 KB read.
pub fn library(path: &Path) -> Result<(Bytes, String, SystemTime), MissingLibrary> {
    type Cached = Option<(PathBuf, u64, SystemTime, Bytes)>;
    static CACHE: Mutex<Cached> = Mutex::new(None);
    let fail = |error| MissingLibrary { path: path.to_owned(), error };
    let meta = std::fs::metadata(path).map_err(fail)?;
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let secs = modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let etag = format!("\"l{:x}-{:x}\"", meta.len(), secs);
    let mut cache = match CACHE.lock() {
        Ok(c) => c,
        Err(p) => p.into_inner(),
    };
    if let Some((p, len, m, body)) = cache.as_ref() {
        if p == path && *len == meta.len() && *m == modified {
            return Ok((body.clone(), etag, modified));
        }
    }
    let body = Bytes::from(std::fs::read(path).map_err(fail)?);
    // The ETag names the size we stat'ed; a file replaced in between is read again next time.
    let etag = format!("\"l{:x}-{:x}\"", body.len(), secs);
    *cache = Some((path.to_owned(), body.len() as u64, modified, body.clone()));
    Ok((body, etag, modified))
}

/// Logs a missing library once per process at warning level: any client can ask for it, so a
/// warning per request would let anyone flood the log.
pub fn warn_once(e: &MissingLibrary) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("demo player page unavailable: {e}");
    }
}

/// The page, as a resource (`no-cache`: the page changes with the binary).
pub(super) fn page() -> super::respond::Resource {
    let (body, etag, modified) = embedded(PAGE);
    super::respond::Resource {
        body: super::body::Chunks::new(vec![body]),
        content_type: "text/html; charset=utf-8",
        etag,
        modified,
        cache_control: "no-cache".into(),
    }
}

/// `/.player/{file}`: the page's script, or the player library read from `script`.
pub(super) async fn file(
    file: super::routes::PlayerFile,
    script: PathBuf,
) -> Result<super::respond::Resource, super::error::ServeError> {
    use super::error::ServeError;
    let (body, etag, modified) = match file {
        super::routes::PlayerFile::App => embedded(APP_JS),
        super::routes::PlayerFile::Device => embedded(DEVICE_JS),
        super::routes::PlayerFile::Shaka => tokio::task::spawn_blocking(move || library(&script))
            .await
            .map_err(|e| ServeError::Player(e.to_string()))?
            .map_err(|e| {
                warn_once(&e);
                ServeError::Player(e.to_string())
            })?,
    };
    Ok(super::respond::Resource {
        body: super::body::Chunks::new(vec![body]),
        content_type: "text/javascript; charset=utf-8",
        etag,
        modified,
        cache_control: "no-cache".into(),
    })
}
