//! A rendition from its manifest to a clear fMP4 file: discover the init and media segment URLs
//! ([`manifest`]), learn what protects them (the init segment's `tenc`, the playlist's
//! `EXT-X-KEY`), then decrypt every segment ([`mp4`]) with keys from a verified license.

pub mod manifest;
pub mod mp4;

use std::io::Write;
use std::path::Path;

use super::http::Http;
use super::ClientError;
use crate::crypto::{Key, KeyId};
use manifest::{Kind, Track};

/// Every rendition a manifest (DASH MPD, HLS multivariant or media playlist) describes.
pub async fn discover(http: &Http, url: &str) -> Result<Vec<Track>, ClientError> {
    let text = String::from_utf8(http.get_ok(url).await?.to_vec())
        .map_err(|_| ClientError::Media("manifest is not UTF-8".into()))?;
    let path = url.split('?').next().unwrap_or(url);
    if path.ends_with(".mpd") || text.trim_start().starts_with("<?xml") || text.contains("<MPD") {
        return manifest::parse_mpd(&text, url);
    }
    if text.contains("#EXT-X-STREAM-INF") || text.contains("#EXT-X-MEDIA:") {
        let mut out = Vec::new();
        for (kind, media_url) in manifest::parse_master(&text, url) {
            let body = http.get_ok(&media_url).await?;
            let media = String::from_utf8_lossy(&body);
            out.push(manifest::parse_media(&media, &media_url, kind)?);
        }
        return Ok(out);
    }
    Ok(vec![manifest::parse_media(&text, url, Kind::Video)?])
}

/// The rendition asked for: by id (DASH Representation id, or a path component of the HLS media
/// playlist URL), else the first of `kind`.
pub fn pick(tracks: Vec<Track>, rendition: Option<&str>, kind: Kind) -> Result<Track, ClientError> {
    let listed: Vec<String> = tracks.iter().map(|t| t.id.clone()).collect();
    let found = match rendition {
        Some(id) => tracks.into_iter().find(|t| t.id == id || t.id.contains(&format!("/{id}/"))),
        None => tracks.into_iter().find(|t| t.kind == kind),
    };
    found.ok_or_else(|| ClientError::Media(format!("no such rendition; the manifest has {}", listed.join(", "))))
}

/// What a rendition needs: the init segment, how each track is protected, and the AES-128
/// envelope key ids of its segments.
pub struct Protection {
    /// The init segment as served.
    pub init: bytes::Bytes,
    /// Protected tracks (cenc/cbcs).
    pub tracks: Vec<mp4::TrackCrypto>,
    /// HLS AES-128 key ids.
    pub envelope_kids: Vec<Option<KeyId>>,
}

impl Protection {
    /// The key ids to find in a license (`None` entries: an AES-128 key whose id the playlist
    /// does not say; the license's envelope key is used).
    pub fn kids(&self) -> Vec<KeyId> {
        let mut v: Vec<KeyId> =
            self.tracks.iter().map(|t| t.kid).chain(self.envelope_kids.iter().flatten().copied()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Fetches the init segment and reads the rendition's protection.
pub async fn protection(http: &Http, track: &Track) -> Result<Protection, ClientError> {
    let init = http.get_ok(&track.init).await?;
    let (_, tracks) = mp4::clear_init(&init)?;
    let mut envelope_kids: Vec<Option<KeyId>> =
        track.segments.iter().filter_map(|s| s.aes128.as_ref().map(|a| a.kid)).collect();
    envelope_kids.dedup();
    Ok(Protection { init, tracks, envelope_kids })
}

/// What a decryption did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Media segments.
    pub segments: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the clear rendition (init + every segment) to `out`. `key` maps a KID to its key;
/// `envelope` is the AES-128 key for segments whose key id the playlist does not give.
pub async fn decrypt(
    http: &Http,
    track: &Track,
    prot: &Protection,
    key: &dyn Fn(&KeyId) -> Option<Key>,
    envelope: Option<&Key>,
    out: &Path,
) -> Result<Stats, ClientError> {
    let (init, tracks) = mp4::clear_init(&prot.init)?;
    let tmp = out.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).map_err(|e| ClientError::Store(format!("{}: {e}", tmp.display())))?;
    let io = |e: std::io::Error| ClientError::Store(format!("{}: {e}", tmp.display()));
    f.write_all(&init).map_err(io)?;
    let mut stats = Stats { segments: 0, bytes: init.len() as u64 };
    for s in &track.segments {
        let mut data = http.get_ok(&s.url).await?.to_vec();
        if let Some(a) = &s.aes128 {
            let k = match a.kid {
                Some(kid) => key(&kid),
                None => envelope.cloned(),
            }
            .ok_or_else(|| ClientError::refused("no_key", "no AES-128 key in the license"))?;
            data = mp4::aes128_segment(&k, &a.iv, &data)?;
        }
        let clear = if tracks.is_empty() { data } else { mp4::clear_segment(&data, &tracks, key)? };
        f.write_all(&clear).map_err(io)?;
        stats.segments = stats.segments.saturating_add(1);
        stats.bytes = stats.bytes.saturating_add(clear.len() as u64);
    }
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, out).map_err(io)?;
    Ok(stats)
}

/// Fuzz entry (and robustness tests): `data` as every media input the client parses.
pub fn fuzz_media(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = manifest::parse_mpd(&text, "http://o/a/manifest.mpd");
    let _ = manifest::parse_media(&text, "http://o/a/r/media.m3u8", Kind::Video);
    let _ = manifest::parse_master(&text, "http://o/a/master.m3u8");
    let _ = mp4::clear_init(data);
    let t = mp4::TrackCrypto {
        track_id: 1,
        scheme: *b"cbcs",
        kid: KeyId([0; 16]),
        iv_size: 0,
        constant_iv: vec![0; 16],
        crypt: 1,
        skip: 9,
        default_size: 0,
    };
    let _ = mp4::clear_segment(data, &[t], &|_| Some(Key::new([1; 16])));
    let _ = mp4::aes128_segment(&Key::new([1; 16]), &[0; 16], data);
}

#[cfg(test)]
mod robustness {
    #[test]
    fn mutated_manifests_never_panic() {
        let mpd = r#"<MPD><Period><AdaptationSet contentType="video"><SegmentTemplate media="$Number%05d$.m4s" initialization="i.mp4"><SegmentTimeline><S t="0" d="4" r="2"/></SegmentTimeline></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>"#;
        let m3u8 =
            "#EXTM3U\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x00\n#EXTINF:4,\n1.m4s\n";
        let mut rng = crate::test_rng::Rng(0x5eed);
        for base in [mpd.as_bytes(), m3u8.as_bytes()] {
            for _ in 0..2000 {
                let mut m = base.to_vec();
                for _ in 0..=rng.below(4) {
                    if m.is_empty() {
                        break;
                    }
                    let i = rng.below(m.len());
                    m[i] = b"<>/$%\"=#:,0d"[rng.below(12)];
                }
                super::fuzz_media(&m);
            }
        }
        for n in 0..400 {
            super::fuzz_media(&rng.bytes(n % 200));
        }
    }
}
