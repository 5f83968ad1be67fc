//! URL → typed [`Route`]. The path is decoded once, here, and checked segment by segment; asset
//! ids are looked up in the in-memory library, never joined to a file-system path, so no URL can
//! name a file outside the asset folder.

use crate::packaging::naming;

/// Longest request path accepted.
pub const MAX_PATH: usize = 2048;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/{asset}/manifest.mpd`
    Mpd {
        /// Asset id.
        asset: String,
    },
    /// `/{asset}/master.m3u8`
    Master {
        /// Asset id.
        asset: String,
    },
    /// `/{asset}/{rendition}/media.m3u8`
    MediaPlaylist {
        /// Asset id.
        asset: String,
        /// Rendition id.
        rendition: String,
    },
    /// `/{asset}/{rendition}/init.mp4`
    Init {
        /// Asset id.
        asset: String,
        /// Rendition id.
        rendition: String,
    },
    /// `/{asset}/{rendition}/{n}.m4s`
    Segment {
        /// Asset id.
        asset: String,
        /// Rendition id.
        rendition: String,
        /// 1-based number.
        number: usize,
    },
    /// `/healthz`
    Health,
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
    let rest = path
        .strip_prefix('/')
        .ok_or(RouteError::BadPath("path must start with '/'"))?;
    if rest == "healthz" {
        return Ok(Route::Health);
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
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(RouteError::BadPath("characters outside [A-Za-z0-9._-]"));
        }
        segments.push(seg);
    }
    let (file, dirs) = segments.split_last().ok_or(RouteError::NotFound)?;
    let join = |parts: &[String]| -> Result<String, RouteError> {
        if parts.is_empty() {
            return Err(RouteError::NotFound);
        }
        Ok(parts.join("/"))
    };
    match file.as_str() {
        naming::MPD => return Ok(Route::Mpd { asset: join(dirs)? }),
        naming::MASTER => return Ok(Route::Master { asset: join(dirs)? }),
        _ => {}
    }
    let (rendition, asset_parts) = dirs.split_last().ok_or(RouteError::NotFound)?;
    let asset = join(asset_parts)?;
    let rendition = rendition.clone();
    match file.as_str() {
        naming::MEDIA_PLAYLIST => Ok(Route::MediaPlaylist { asset, rendition }),
        naming::INIT => Ok(Route::Init { asset, rendition }),
        f => {
            let digits = f
                .strip_suffix(naming::SEGMENT_EXT)
                .ok_or(RouteError::NotFound)?;
            // Canonical numbers only ("01.m4s" would be a second URL for one segment).
            if digits.is_empty()
                || digits.len() > 9
                || digits.starts_with('0')
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(RouteError::NotFound);
            }
            let number = digits.parse().map_err(|_| RouteError::NotFound)?;
            Ok(Route::Segment {
                asset,
                rendition,
                number,
            })
        }
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
            let hex = std::str::from_utf8(hex)
                .map_err(|_| RouteError::BadPath("bad percent-encoding"))?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| RouteError::BadPath("bad percent-encoding"))?;
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
        assert_eq!(
            parse("/a/manifest.mpd"),
            Ok(Route::Mpd { asset: "a".into() })
        );
        assert_eq!(
            parse("/kids/cartoon/master.m3u8"),
            Ok(Route::Master {
                asset: "kids/cartoon".into()
            })
        );
        assert_eq!(
            parse("/kids/cartoon/v_1/12.m4s"),
            Ok(Route::Segment {
                asset: "kids/cartoon".into(),
                rendition: "v_1".into(),
                number: 12
            })
        );
        assert_eq!(
            parse("/a/v_1/init.mp4"),
            Ok(Route::Init {
                asset: "a".into(),
                rendition: "v_1".into()
            })
        );
        assert_eq!(
            parse("/a/v_1/media.m3u8"),
            Ok(Route::MediaPlaylist {
                asset: "a".into(),
                rendition: "v_1".into()
            })
        );
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
            "/a/v/0.m4s",
            "/a/v/01.m4s",
            "/a/v/x.m4s",
            "/a/v/.m4s",
            "/a/v/99999999999.m4s",
            "/manifest.mpd",
            "/a/init.mp4",
        ] {
            assert_eq!(parse(p), Err(RouteError::NotFound), "{p}");
        }
    }
}
