//! Segment and playlist names, shared by the manifests and `http::routes` so they cannot drift.
//! A protection variant goes before the extension: `media.aes128.m3u8`, `manifest.cbcs.mpd`;
//! clear names have no variant. Init and media segments also carry the version of their bytes
//! (`init.cenc.v1a2b3c4d.mp4`, `3.v1a2b3c4d.m4s`, see [`super::version`]).

use super::version::Version;
use crate::drm::Variant;

/// DASH manifest stem (`manifest.mpd`).
pub const MPD_STEM: &str = "manifest";
/// DASH manifest extension.
pub const MPD_EXT: &str = "mpd";
/// HLS multivariant playlist stem (`master.m3u8`).
pub const MASTER_STEM: &str = "master";
/// HLS media playlist stem (`media.m3u8`, under the rendition).
pub const MEDIA_STEM: &str = "media";
/// Playlist extension.
pub const PLAYLIST_EXT: &str = "m3u8";
/// Init segment stem (`init.mp4`).
pub const INIT_STEM: &str = "init";
/// Init segment extension.
pub const INIT_EXT: &str = "mp4";
/// Media segment extension (`3.m4s`).
pub const SEGMENT_EXT: &str = "m4s";
/// First segment number.
pub const START_NUMBER: usize = 1;

/// `stem[.variant].ext`
pub fn file(stem: &str, variant: Variant, ext: &str) -> String {
    match variant {
        Variant::Clear => format!("{stem}.{ext}"),
        v => format!("{stem}.{}.{ext}", v.suffix()),
    }
}

/// `stem[.variant].version.ext`
fn versioned(stem: &str, variant: Variant, version: Version, ext: &str) -> String {
    match variant {
        Variant::Clear => format!("{stem}.{version}.{ext}"),
        v => format!("{stem}.{}.{version}.{ext}", v.suffix()),
    }
}

/// Media segment `n` of a variant.
pub fn segment(n: usize, variant: Variant, version: Version) -> String {
    versioned(&n.to_string(), variant, version, SEGMENT_EXT)
}

/// Init segment of a variant.
pub fn init(variant: Variant, version: Version) -> String {
    versioned(INIT_STEM, variant, version, INIT_EXT)
}

/// Media playlist of a variant.
pub fn media_playlist(variant: Variant) -> String {
    file(MEDIA_STEM, variant, PLAYLIST_EXT)
}

/// DASH `SegmentTemplate@media` file part of a variant (`$Number$.cenc.v1a2b3c4d.m4s`).
pub fn segment_template(variant: Variant, version: Version) -> String {
    versioned("$Number$", variant, version, SEGMENT_EXT)
}
