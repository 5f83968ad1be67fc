//! Segment and playlist names, shared by the manifests and `http::routes` so they cannot drift.

/// DASH manifest file name.
pub const MPD: &str = "manifest.mpd";
/// HLS multivariant playlist file name.
pub const MASTER: &str = "master.m3u8";
/// HLS media playlist file name (under the rendition).
pub const MEDIA_PLAYLIST: &str = "media.m3u8";
/// Init segment file name (under the rendition).
pub const INIT: &str = "init.mp4";
/// Media segment extension.
pub const SEGMENT_EXT: &str = ".m4s";
/// First segment number.
pub const START_NUMBER: usize = 1;

/// `{n}.m4s`
pub fn segment(n: usize) -> String {
    format!("{n}{SEGMENT_EXT}")
}
