//! URL → typed [`Route`]. The path is decoded once, here, and checked segment by segment; asset
//! ids are looked up in the in-memory library, never joined to a file-system path, so no URL can
//! name a file outside the asset folder.

use crate::crypto::KeyId;
use crate::drm::Variant;
use crate::packaging::naming;
use crate::packaging::version::Version;

/// Longest request path accepted.
pub const MAX_PATH: usize = 2048;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/{asset}/manifest[.variant].mpd`
    Mpd {
        /// Asset id.
        asset: String,
        /// Requested variant; `None`: the policy's default.
        variant: Option<Variant>,
    },
    /// `/{asset}/master[.variant].m3u8`
    Master {
        /// Asset id.
        asset: String,
        /// Requested variant; `None`: the policy's default.
        variant: Option<Variant>,
    },
    /// `/{asset}/{rendition}/media[.variant].m3u8`
    MediaPlaylist {
        /// Asset id.
        asset: String,
        /// Rendition id.
        rendition: String,
        /// Variant.
        variant: Variant,
    },
    /// `/{asset}/{rendition}/init[.variant].{version}.mp4`
    Init {
        /// Asset id.
        asset: String,
        /// Rendition id.
        rendition: String,
        /// Variant.
        variant: Variant,
        /// Version of the bytes the name stands for.
        version: Version,
    },
    /// `/{asset}/{rendition}/{n}[.variant].{version}.m4s`
    Segment {
        /// Asset id.
        asset: String,
        /// Rendition id.
        rendition: String,
        /// 1-based number.
        number: usize,
        /// Variant.
        variant: Variant,
        /// Version of the bytes the name stands for.
        version: Version,
    },
    /// `POST /.drm/clearkey`: W3C ClearKey license.
    ClearKeyLicense,
    /// `/.drm/key/{kid}`: raw key for HLS AES-128 / `identity` key formats.
    Key {
        /// Key id.
        kid: KeyId,
    },
    /// `GET /.drm/keys.json`: the origin's device-licensing signing keys.
    DeviceKeys,
    /// `POST /.drm/device/…`, `/.drm/domain/…`, `/.drm/license`: device licensing.
    Device(DeviceEndpoint),
    /// `/healthz`
    Health,
    /// `/metrics` (Prometheus)
    Metrics,
    /// `/readyz`: 200 once the catalog is indexed, 503 before and while draining
    Ready,
    /// `/player/{asset}`: the demo player page.
    Player {
        /// Asset id.
        asset: String,
    },
    /// `/.player/{file}`: the demo page's own script, or the player library.
    PlayerFile(PlayerFile),
}

/// The device-licensing endpoints (all POST, JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEndpoint {
    /// `/.drm/device/register`
    Register,
    /// `/.drm/device/reset`
    Reset,
    /// `/.drm/device/unregister`
    Unregister,
    /// `/.drm/domain/join`
    Join,
    /// `/.drm/domain/leave`
    Leave,
    /// `/.drm/license`
    License,
    /// `/.drm/root` (license chaining)
    Root,
}

/// Files the demo player page loads from the origin (no CDN at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerFile {
    /// The page's script (embedded in the binary).
    App,
    /// shaka-player's compiled library (read from `player.script`).
    Shaka,
    /// The browser device client (license chaining, issue 11; embedded).
    Device,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The path is malformed or hostile (400).
    #[error("bad path: {0}")]
    BadPath(&'static str),
    /// The path is well-formed but names nothing we serve (404).
    #[error("no such resource")]
    NotFound,
}

/// Parses a request path (without the query).
pub fn parse(path: &str) -> Result<Route, RouteError> {
    if path.len() > MAX_PATH {
        return Err(RouteError::BadPath("path too long"));
    }
    let rest = path.strip_prefix('/').ok_or(RouteError::BadPath("path must start with '/'"))?;
    if rest == "healthz" {
        return Ok(Route::Health);
    }
    if rest == "readyz" {
        return Ok(Route::Ready);
    }
    // Single-segment paths are never assets (an asset URL has at least two segments).
    if rest == "metrics" {
        return Ok(Route::Metrics);
    }
    // Reserved namespace: asset ids never start with '.', so `/.drm/…` cannot shadow an asset.
    if rest == ".drm/clearkey" {
        return Ok(Route::ClearKeyLicense);
    }
    match rest {
        ".drm/keys.json" => return Ok(Route::DeviceKeys),
        ".drm/device/register" => return Ok(Route::Device(DeviceEndpoint::Register)),
        ".drm/device/reset" => return Ok(Route::Device(DeviceEndpoint::Reset)),
        ".drm/device/unregister" => return Ok(Route::Device(DeviceEndpoint::Unregister)),
        ".drm/domain/join" => return Ok(Route::Device(DeviceEndpoint::Join)),
        ".drm/domain/leave" => return Ok(Route::Device(DeviceEndpoint::Leave)),
        ".drm/license" => return Ok(Route::Device(DeviceEndpoint::License)),
        ".drm/root" => return Ok(Route::Device(DeviceEndpoint::Root)),
        _ => {}
    }
    if let Some(kid) = rest.strip_prefix(".drm/key/") {
        return KeyId::parse(kid).filter(|_| kid.len() == 32).map(|kid| Route::Key { kid }).ok_or(RouteError::NotFound);
    }
    match rest {
        ".player/app.js" => return Ok(Route::PlayerFile(PlayerFile::App)),
        ".player/device.js" => return Ok(Route::PlayerFile(PlayerFile::Device)),
        ".player/shaka-player.js" => return Ok(Route::PlayerFile(PlayerFile::Shaka)),
        _ => {}
    }
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        let seg = decode(raw)?;
        if seg.is_empty() {
            return Err(RouteError::BadPath("empty path segment"));
        }
        if seg == "." || seg == ".." {
            return Err(RouteError::BadPath("dot segment"));
        }
        if !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            return Err(RouteError::BadPath("characters outside [A-Za-z0-9._-]"));
        }
        segments.push(seg);
    }
    let media = media_route(&segments);
    // `/player/{asset}` is the demo page, unless the path names media of an asset that happens
    // to be called `player` (media URLs end in a manifest, playlist or segment file name).
    if let (Err(RouteError::NotFound), Some((first, asset))) = (&media, segments.split_first()) {
        if first == "player" && !asset.is_empty() {
            return Ok(Route::Player { asset: asset.join("/") });
        }
    }
    media
}

/// Manifest, playlist and segment URLs: `/{asset…}/{file}` and `/{asset…}/{rendition}/{file}`.
fn media_route(segments: &[String]) -> Result<Route, RouteError> {
    let (file, dirs) = segments.split_last().ok_or(RouteError::NotFound)?;
    let join = |parts: &[String]| -> Result<String, RouteError> {
        if parts.is_empty() {
            return Err(RouteError::NotFound);
        }
        Ok(parts.join("/"))
    };
    let (stem, variant, version, ext) = split_name(file)?;
    match (stem, ext, version) {
        (naming::MPD_STEM, naming::MPD_EXT, None) => return Ok(Route::Mpd { asset: join(dirs)?, variant }),
        (naming::MASTER_STEM, naming::PLAYLIST_EXT, None) => return Ok(Route::Master { asset: join(dirs)?, variant }),
        _ => {}
    }
    let (rendition, asset_parts) = dirs.split_last().ok_or(RouteError::NotFound)?;
    let asset = join(asset_parts)?;
    let rendition = rendition.clone();
    let variant = variant.unwrap_or(Variant::Clear);
    match (stem, ext, version) {
        (naming::MEDIA_STEM, naming::PLAYLIST_EXT, None) => Ok(Route::MediaPlaylist { asset, rendition, variant }),
        (naming::INIT_STEM, naming::INIT_EXT, Some(version)) => Ok(Route::Init { asset, rendition, variant, version }),
        (digits, naming::SEGMENT_EXT, Some(version)) => {
            // Canonical numbers only ("01.m4s" would be a second URL for one segment).
            if digits.is_empty()
                || digits.len() > 9
                || digits.starts_with('0')
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(RouteError::NotFound);
            }
            let number = digits.parse().map_err(|_| RouteError::NotFound)?;
            Ok(Route::Segment { asset, rendition, number, variant, version })
        }
        _ => Err(RouteError::NotFound),
    }
}

/// A file name's parts: stem, variant, version, extension.
type Name<'a> = (&'a str, Option<Variant>, Option<Version>, &'a str);

/// `stem[.variant][.version].ext` → (stem, variant, version, ext). An explicit `.clear` is not
/// canonical (the clear name has no variant), so it is not found; nor is a version in a name
/// that takes none (manifests, playlists), or a segment name without one.
fn split_name(file: &str) -> Result<Name<'_>, RouteError> {
    let (mut rest, ext) = file.rsplit_once('.').ok_or(RouteError::NotFound)?;
    let mut version = None;
    if let Some((before, v)) = rest.rsplit_once('.') {
        if let Some(parsed) = Version::parse(v) {
            version = Some(parsed);
            rest = before;
        }
    }
    match rest.rsplit_once('.') {
        None => Ok((rest, None, version, ext)),
        Some((stem, v)) => match Variant::parse(v) {
            Some(var) if var != Variant::Clear && v == var.suffix() => Ok((stem, Some(var), version, ext)),
            _ => Err(RouteError::NotFound),
        },
    }
}

/// Percent-decoding of one path segment. Encoded `/`, `\` and NUL are refused outright: they
/// only ever appear in attempts to smuggle separators past a proxy's checks.
fn decode(seg: &str) -> Result<String, RouteError> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i.saturating_add(1)..i.saturating_add(3))
                .ok_or(RouteError::BadPath("bad percent-encoding"))?;
            let hex = std::str::from_utf8(hex).map_err(|_| RouteError::BadPath("bad percent-encoding"))?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| RouteError::BadPath("bad percent-encoding"))?;
            if v == b'/' || v == b'\\' || v == 0 {
                return Err(RouteError::BadPath("encoded separator or NUL"));
            }
            out.push(v);
            i = i.saturating_add(3);
        } else {
            if b == 0 || b == b'\\' {
                return Err(RouteError::BadPath("NUL or backslash"));
            }
            out.push(b);
            i = i.saturating_add(1);
        }
    }
    String::from_utf8(out).map_err(|_| RouteError::BadPath("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use Variant::*;
        let v = Version(0x1a2b_3c4d);
        let seg = |asset: &str, r: &str, number, variant| Route::Segment {
            asset: asset.into(),
            rendition: r.into(),
            number,
            variant,
            version: v,
        };
        assert_eq!(parse("/a/manifest.mpd"), Ok(Route::Mpd { asset: "a".into(), variant: None }));
        assert_eq!(parse("/a/manifest.cbcs.mpd"), Ok(Route::Mpd { asset: "a".into(), variant: Some(Cbcs) }));
        assert_eq!(
            parse("/kids/cartoon/master.m3u8"),
            Ok(Route::Master { asset: "kids/cartoon".into(), variant: None })
        );
        assert_eq!(parse("/kids/cartoon/v_1/12.v1a2b3c4d.m4s"), Ok(seg("kids/cartoon", "v_1", 12, Clear)));
        assert_eq!(parse("/a/v_1/12.aes128.v1a2b3c4d.m4s"), Ok(seg("a", "v_1", 12, Aes128)));
        assert_eq!(
            parse("/a/v_1/init.v1a2b3c4d.mp4"),
            Ok(Route::Init { asset: "a".into(), rendition: "v_1".into(), variant: Clear, version: v })
        );
        assert_eq!(
            parse("/a/v_1/init.cenc.v1a2b3c4d.mp4"),
            Ok(Route::Init { asset: "a".into(), rendition: "v_1".into(), variant: Cenc, version: v })
        );
        assert_eq!(
            parse("/a/v_1/media.m3u8"),
            Ok(Route::MediaPlaylist { asset: "a".into(), rendition: "v_1".into(), variant: Clear })
        );
        assert_eq!(
            parse("/.drm/key/8ba94ade6eb9449db44fa5beefaf43b0"),
            Ok(Route::Key { kid: KeyId::parse("8ba94ade6eb9449db44fa5beefaf43b0").unwrap() })
        );
        for p in [
            "/a/v/init.clear.v1a2b3c4d.mp4",
            "/a/v/1.xyz.v1a2b3c4d.m4s",
            "/a/v/init.cenc.cbcs.v1a2b3c4d.mp4",
            // Segment names without their version, and versions where none belongs.
            "/a/v/init.mp4",
            "/a/v/init.cenc.mp4",
            "/a/v/3.cbcs.m4s",
            "/a/v/3.cbcs.v1A2B3C4D.m4s",
            "/a/v/3.v1a2b3c4d.cbcs.m4s",
            "/a/manifest.v1a2b3c4d.mpd",
            "/a/v/media.cbcs.v1a2b3c4d.m3u8",
            "/.drm/key/8ba94ade-6eb9-449d-b44f-a5beefaf43b0",
        ] {
            assert_eq!(parse(p), Err(RouteError::NotFound), "{p}");
        }
    }

    #[test]
    fn player_page_never_shadows_media() {
        assert_eq!(parse("/player/multi"), Ok(Route::Player { asset: "multi".into() }));
        assert_eq!(parse("/player/kids/cartoon"), Ok(Route::Player { asset: "kids/cartoon".into() }));
        assert_eq!(parse("/player/my.movie"), Ok(Route::Player { asset: "my.movie".into() }));
        // An asset called `player` keeps its media URLs.
        assert_eq!(parse("/player/manifest.mpd"), Ok(Route::Mpd { asset: "player".into(), variant: None }));
        assert!(matches!(parse("/player/v1/3.v00000000.m4s"), Ok(Route::Segment { .. })));
        assert_eq!(parse("/player"), Err(RouteError::NotFound));
        assert_eq!(parse("/player/../etc"), Err(RouteError::BadPath("dot segment")));
        assert_eq!(parse("/.player/app.js"), Ok(Route::PlayerFile(PlayerFile::App)));
        assert_eq!(parse("/.player/shaka-player.js"), Ok(Route::PlayerFile(PlayerFile::Shaka)));
        assert!(matches!(parse("/.player/other.js"), Err(RouteError::BadPath(_)) | Err(RouteError::NotFound)));
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "/../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/a%2f..%2f..%2fetc/manifest.mpd",
            "//etc/passwd",
            "/a/%00/init.mp4",
            "/a\\..\\b/manifest.mpd",
            "etc/passwd",
            "/a/b/%zz.m4s",
        ] {
            assert!(matches!(parse(p), Err(RouteError::BadPath(_))), "{p}");
        }
        assert!(parse(&format!("/{}", "a".repeat(5000))).is_err());
    }

    #[test]
    fn odd_segment_names_are_not_found() {
        for p in [
            "/a/v/0.v00000000.m4s",
            "/a/v/01.v00000000.m4s",
            "/a/v/x.v00000000.m4s",
            "/a/v/.v00000000.m4s",
            "/a/v/99999999999.v00000000.m4s",
            "/manifest.mpd",
            "/a/init.mp4",
        ] {
            assert_eq!(parse(p), Err(RouteError::NotFound), "{p}");
        }
    }
}
