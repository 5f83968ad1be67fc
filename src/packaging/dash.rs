//! Static DASH MPD (ISO/IEC 23009-1) with SegmentTemplate + SegmentTimeline per Representation.

use std::fmt::Write;

use super::plan::{Asset, Rendition};
use super::Protection;
use super::{frame_rate, language_tag, mime, naming};
use crate::drm::Variant;
use crate::index::{time, TrackKind};

/// DASH-IF ClearKey descriptor (`org.w3.clearkey`).
const CLEARKEY_SCHEME: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";

/// Writes the MPD of `asset` in `variant` (clear, cenc or cbcs) under `policy`.
pub fn mpd(asset: &Asset, prot: &Protection) -> String {
    let variant = prot.variant;
    // One AdaptationSet per kind, language, codec family and key: players refuse two default
    // KIDs in one set, so SD/HD classes with their own keys become separate sets.
    type Set<'a> = (TrackKind, String, String, Option<std::sync::Arc<crate::drm::ContentKey>>, Vec<&'a Rendition>);
    let mut sets: Vec<Set<'_>> = Vec::new();
    for r in &asset.renditions {
        let Some(t) = r.track() else { continue };
        // Text tracks are not encrypted; protected manifests leave them out.
        if t.kind == TrackKind::Text && variant != Variant::Clear {
            continue;
        }
        let lang = if t.kind == TrackKind::Video { String::new() } else { t.language.clone() };
        let family: String = t.entry.codec.chars().take(4).collect();
        let kid = prot.key(&r.id).cloned();
        match sets.iter_mut().find(|(k, l, f, id, _)| {
            *k == t.kind && *l == lang && *f == family && id.as_ref().map(|x| x.kid) == kid.as_ref().map(|x| x.kid)
        }) {
            Some(set) => set.4.push(r),
            None => sets.push((t.kind, lang, family, kid, vec![r])),
        }
    }
    let max_seg = asset
        .renditions
        .iter()
        .filter_map(|r| {
            let t = r.track()?;
            r.segments.iter().map(|s| time::seconds(s.presented, t.timescale)).reduce(f64::max)
        })
        .fold(0.0, f64::max);
    let mut x = String::with_capacity(4096);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:cenc=\"urn:mpeg:cenc:2013\" \
         xmlns:dashif=\"https://dashif.org/CPS\" xmlns:mspr=\"urn:microsoft:playready\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" \
         type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">",
        duration(asset.duration),
        duration(max_seg.max(1.0))
    );
    x.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    let mut first_audio = true;
    for (i, (kind, lang, _, kid, reps)) in sets.iter().enumerate() {
        let content = match kind {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Text => "text",
        };
        let _ = write!(
            x,
            "    <AdaptationSet id=\"{i}\" contentType=\"{content}\" mimeType=\"{}\" segmentAlignment=\"true\" startWithSAP=\"1\"",
            mime(*kind)
        );
        if let Some(tag) = language_tag(lang) {
            let _ = write!(x, " lang=\"{}\"", escape(&tag));
        }
        if *kind == TrackKind::Video {
            let w = reps.iter().filter_map(|r| r.track()).map(|t| t.entry.width).max().unwrap_or(0);
            let h = reps.iter().filter_map(|r| r.track()).map(|t| t.entry.height).max().unwrap_or(0);
            let _ = write!(x, " maxWidth=\"{w}\" maxHeight=\"{h}\"");
        }
        x.push_str(">\n");
        if let Some(kid) = kid {
            content_protection(&mut x, prot, kid);
        }
        if *kind == TrackKind::Audio {
            let role = if first_audio { "main" } else { "alternate" };
            first_audio = false;
            let _ = writeln!(x, "      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"{role}\"/>");
        }
        for r in reps {
            representation(&mut x, r, variant, prot.version_of(&r.id, variant));
        }
        x.push_str("    </AdaptationSet>\n");
    }
    x.push_str("  </Period>\n</MPD>\n");
    x
}

/// mp4protection first (scheme + default KID), then one descriptor per signalled DRM system
/// (spec-notes §6): Widevine and PlayReady with their `cenc:pssh`; ClearKey with the license URL
/// in the element forms shaka-player (`dashif:Laurl`, ns https://dashif.org/CPS) and dash.js
/// (prefix `dashif`/`clearkey`) read, and no `cenc:pssh`: dash.js hands a ClearKey descriptor's
/// pssh to the CDM as `keyids` init data, which Chromium rejects before any license request;
/// without it dash.js builds `keyids` from `cenc:default_KID`. The W3C common pssh stays in the
/// init segment, where players that read init data find it.
fn content_protection(x: &mut String, prot: &Protection, key: &crate::drm::ContentKey) {
    use crate::drm::System;
    let kid = &key.kid;
    let uuid = kid.uuid();
    let _ = writeln!(
        x,
        "      <ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"{}\" cenc:default_KID=\"{uuid}\"/>",
        prot.variant.suffix()
    );
    for system in &prot.systems {
        match system {
            System::ClearKey => {
                let _ = writeln!(x, "      <ContentProtection schemeIdUri=\"{CLEARKEY_SCHEME}\" value=\"ClearKey1.0\" cenc:default_KID=\"{uuid}\">");
                if let Some(url) = prot.license_urls.get(&System::ClearKey) {
                    let url = escape(url);
                    let _ = writeln!(x, "        <dashif:Laurl>{url}</dashif:Laurl>");
                    let _ = writeln!(
                        x,
                        "        <clearkey:Laurl xmlns:clearkey=\"http://dashif.org/guidelines/clearKey\" Lic_type=\"EME-1.0\">{url}</clearkey:Laurl>"
                    );
                }
                let _ = writeln!(x, "      </ContentProtection>");
            }
            System::Widevine | System::PlayReady => super::drm_signalling::dash_descriptor(x, prot, *system, key),
            System::FairPlay => {} // not signalled in DASH (spec-notes §6)
        }
    }
    super::drm_signalling::dash_chain(x, prot, key);
    // No separate `1077efec` (W3C common) descriptor either: dash.js picks it for ClearKey, with
    // a warning, and would use its pssh the same way.
}

fn representation(x: &mut String, r: &Rendition, variant: Variant, version: super::version::Version) {
    let Some(t) = r.track() else { return };
    let _ = write!(
        x,
        "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\"",
        escape(&r.id),
        r.peak_bandwidth.max(1),
        escape(&t.entry.codec)
    );
    match t.kind {
        TrackKind::Video => {
            let _ = write!(x, " width=\"{}\" height=\"{}\" sar=\"1:1\"", t.entry.width, t.entry.height);
            if let Some((n, d)) = frame_rate(t) {
                if d == 1 {
                    let _ = write!(x, " frameRate=\"{n}\"");
                } else {
                    let _ = write!(x, " frameRate=\"{n}/{d}\"");
                }
            }
            x.push_str(">\n");
        }
        TrackKind::Audio => {
            let _ = writeln!(x, " audioSamplingRate=\"{}\">", t.entry.sample_rate);
            let _ = writeln!(
                x,
                "        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>",
                t.entry.channels
            );
        }
        TrackKind::Text => x.push_str(">\n"),
    }
    // No presentationTimeOffset: the timeline is already on the presentation axis (after the
    // init segment's edit list, which players apply), see `plan::Segment::start`.
    let _ = writeln!(
        x,
        "        <SegmentTemplate timescale=\"{}\" initialization=\"$RepresentationID$/{}\" media=\"$RepresentationID$/{}\" startNumber=\"{}\">",
        t.timescale,
        naming::init(variant, version),
        naming::segment_template(variant, version),
        naming::START_NUMBER
    );
    x.push_str("          <SegmentTimeline>\n");
    // Run-length encode equal durations; write `t` on the first S and after any gap.
    let mut expected_t: Option<u64> = None;
    let mut i = 0;
    while let Some(seg) = r.segments.get(i) {
        let mut repeat = 0usize;
        let mut end = seg.start.saturating_add(seg.presented);
        while let Some(next) = r.segments.get(i.saturating_add(repeat).saturating_add(1)) {
            if next.presented != seg.presented || next.start != end {
                break;
            }
            end = end.saturating_add(next.presented);
            repeat = repeat.saturating_add(1);
        }
        x.push_str("            <S");
        if expected_t != Some(seg.start) {
            let _ = write!(x, " t=\"{}\"", seg.start);
        }
        let _ = write!(x, " d=\"{}\"", seg.presented);
        if repeat > 0 {
            let _ = write!(x, " r=\"{repeat}\"");
        }
        x.push_str("/>\n");
        expected_t = Some(end);
        i = i.saturating_add(repeat).saturating_add(1);
    }
    x.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n");
}

/// `PT12.345S`
fn duration(secs: f64) -> String {
    format!("PT{:.3}S", secs.max(0.0))
}

/// XML attribute escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
