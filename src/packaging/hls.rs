//! HLS (RFC 8216bis) multivariant and media playlists over the same CMAF segments as DASH.

use std::fmt::Write;

use super::plan::{Asset, Rendition};
use super::Protection;
use super::{frame_rate, language_tag, naming};
use crate::crypto::{iv, key::hex};
use crate::drm::Variant;
use crate::index::{time, TrackKind};

/// The multivariant playlist of `asset` in `variant`.
pub fn master(asset: &Asset, prot: &Protection) -> String {
    let variant = prot.variant;
    // A key-format choice travels into the media playlist URIs.
    let playlist = format!("{}{}", naming::media_playlist(variant), prot.child_query());
    let mut x = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    // Session keys let players (FairPlay, Widevine) start license acquisition before the first
    // media playlist: one set of lines per distinct key.
    let mut seen = Vec::new();
    for k in prot.keys.values() {
        if prot.variant.is_cenc_family() && !seen.contains(&k.kid) {
            seen.push(k.kid);
            super::drm_signalling::hls_keys(&mut x, "EXT-X-SESSION-KEY", prot, k);
        }
    }
    // AES-128 too (RFC 8216bis §4.4.6.5): METHOD and (absent, i.e. identity) KEYFORMAT match the
    // media playlists' EXT-X-KEY of the same URI. No IV: each segment's explicit IV is in its
    // media playlist, and a session key only lets the player fetch the key early.
    if let (Variant::Aes128, Some(k)) = (variant, &prot.envelope) {
        let _ = writeln!(x, "#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"{}\"", prot.key_uri(&k.kid));
    }
    // A chained policy's leaf (issue 11), for clients that chain.
    super::drm_signalling::hls_chain(&mut x, prot);
    let videos: Vec<&Rendition> = by_kind(asset, TrackKind::Video);
    let audios: Vec<&Rendition> = by_kind(asset, TrackKind::Audio);
    // One audio group per codec: a variant lists the codecs its group may play.
    let mut groups: Vec<(String, Vec<&Rendition>)> = Vec::new();
    for a in &audios {
        let Some(t) = a.track() else { continue };
        let gid = format!("audio-{}", t.entry.codec);
        match groups.iter_mut().find(|(g, _)| *g == gid) {
            Some(g) => g.1.push(a),
            None => groups.push((gid, vec![a])),
        }
    }
    for (gid, members) in &groups {
        for (i, a) in members.iter().enumerate() {
            let Some(t) = a.track() else { continue };
            let tag = language_tag(&t.language);
            let name = match &tag {
                Some(tag) => format!("{} ({})", language_name(tag), a.id),
                None => a.id.clone(),
            };
            let _ = write!(x, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\"", quoted(gid), quoted(&name));
            if let Some(tag) = &tag {
                let _ = write!(x, ",LANGUAGE=\"{}\"", quoted(tag));
            }
            let default = if i == 0 { "YES" } else { "NO" };
            let _ = writeln!(
                x,
                ",DEFAULT={default},AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}/{playlist}\"",
                t.entry.channels,
                quoted(&a.id),
            );
        }
    }
    if videos.is_empty() {
        // Audio-only asset: each audio rendition is a variant of its own.
        for a in &audios {
            let Some(t) = a.track() else { continue };
            let _ = writeln!(
                x,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\n{}/{playlist}",
                a.peak_bandwidth.max(1),
                a.avg_bandwidth.max(1),
                quoted(&t.entry.codec),
                a.id,
            );
        }
        return x;
    }
    let audio_choices: Vec<Option<&(String, Vec<&Rendition>)>> =
        if groups.is_empty() { vec![None] } else { groups.iter().map(Some).collect() };
    for group in audio_choices {
        for v in &videos {
            let Some(t) = v.track() else { continue };
            let (mut peak, mut avg, mut codecs) = (v.peak_bandwidth, v.avg_bandwidth, t.entry.codec.clone());
            if let Some((_, members)) = group {
                peak = peak.saturating_add(members.iter().map(|a| a.peak_bandwidth).max().unwrap_or(0));
                avg = avg.saturating_add(members.iter().map(|a| a.avg_bandwidth).max().unwrap_or(0));
                if let Some(codec) = members.first().and_then(|a| a.track()).map(|t| t.entry.codec.clone()) {
                    codecs = format!("{codecs},{codec}");
                }
            }
            let _ = write!(
                x,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\",RESOLUTION={}x{}",
                peak.max(1),
                avg.max(1),
                quoted(&codecs),
                t.entry.width,
                t.entry.height
            );
            if let Some((n, d)) = frame_rate(t) {
                let _ = write!(x, ",FRAME-RATE={:.3}", n as f64 / d as f64);
            }
            if let Some((gid, _)) = group {
                let _ = write!(x, ",AUDIO=\"{}\"", quoted(gid));
            }
            let _ = writeln!(x, "\n{}/{playlist}", v.id);
        }
    }
    x
}

/// The media playlist of one rendition of asset `asset_id` under `prot`.
pub fn media(asset_id: &str, r: &Rendition, prot: &Protection) -> String {
    let variant = prot.variant;
    let Some(t) = r.track() else {
        return String::from("#EXTM3U\n#EXT-X-ENDLIST\n");
    };
    let secs: Vec<f64> = r.segments.iter().map(|s| time::seconds(s.presented, t.timescale)).collect();
    // EXT-X-TARGETDURATION must be ≥ every EXTINF rounded to the nearest integer.
    let target = secs.iter().map(|s| s.round() as u64).max().unwrap_or(1).max(1);
    let mut x = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        naming::START_NUMBER
    );
    // EXT-X-MAP comes before any EXT-X-KEY so the init segment is never under AES-128
    // (spec-notes §8); under SAMPLE-AES the init segment is the protected one.
    let _ = writeln!(
        x,
        "#EXT-X-MAP:URI=\"{}\"",
        naming::init(variant.init_variant(), prot.version_of(&r.id, variant.init_variant()))
    );
    let lead = prot.clear_lead;
    let stream = super::protect::stream_id(asset_id, &r.id);
    let cenc_key = prot.key(&r.id);
    for (i, s) in secs.iter().enumerate() {
        let number = i.saturating_add(naming::START_NUMBER);
        let mut seg_variant = variant;
        match variant {
            Variant::Cenc | Variant::Cbcs => {
                if let Some(k) = cenc_key.filter(|_| i == lead) {
                    super::drm_signalling::hls_keys(&mut x, "EXT-X-KEY", prot, k);
                }
            }
            Variant::Aes128 => match &prot.envelope {
                Some(k) if i >= lead => {
                    let seg_iv = iv::hls_segment_iv(&k.key, &stream, number as u64);
                    let _ =
                        writeln!(x, "#EXT-X-KEY:METHOD=AES-128,URI=\"{}\",IV=0x{}", prot.key_uri(&k.kid), hex(&seg_iv));
                }
                // Clear lead under AES-128: the clear segments themselves (shared with the clear
                // variant's cache entries).
                _ => seg_variant = Variant::Clear,
            },
            Variant::Clear => {}
        }
        let _ = writeln!(
            x,
            "#EXTINF:{s:.6},\n{}",
            naming::segment(number, seg_variant, prot.version_of(&r.id, seg_variant))
        );
    }
    x.push_str("#EXT-X-ENDLIST\n");
    x
}

fn by_kind(asset: &Asset, kind: TrackKind) -> Vec<&Rendition> {
    asset.renditions.iter().filter(|r| r.track().map(|t| t.kind) == Some(kind)).collect()
}

/// Quoted-string values may not hold `"` or line breaks (RFC 8216 §4.2).
fn quoted(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\n' && *c != '\r').collect()
}

fn language_name(tag: &str) -> &str {
    match tag {
        "en" => "English",
        "fr" => "Français",
        "de" => "Deutsch",
        "es" => "Español",
        "it" => "Italiano",
        "pt" => "Português",
        "nl" => "Nederlands",
        "ja" => "日本語",
        other => other,
    }
}
