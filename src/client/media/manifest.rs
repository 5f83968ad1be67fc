//! What a player reads from manifests to find a rendition's segments: DASH (`BaseURL`,
//! `SegmentTemplate` with `$RepresentationID$`/`$Number$`/`$Time$`/`$Bandwidth$` and
//! `SegmentTimeline`, at Representation or AdaptationSet level) and HLS (multivariant
//! playlist → media playlist with `EXT-X-MAP`, `EXT-X-KEY`, `EXT-X-MEDIA-SEQUENCE`). Segment
//! names are never built by hand: they come from the manifest, as a player's would.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::super::http::join;
use super::super::ClientError;
use crate::crypto::KeyId;

/// Track kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Anything else (text).
    Other,
}

impl Kind {
    /// From a DASH contentType / mimeType prefix.
    pub fn of(s: &str) -> Kind {
        match s.split('/').next().unwrap_or("") {
            "video" => Kind::Video,
            "audio" => Kind::Audio,
            _ => Kind::Other,
        }
    }
}

/// HLS `METHOD=AES-128` of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aes128 {
    /// Key id from the key URI (its last 32-hex path segment) or `KEYID`.
    pub kid: Option<KeyId>,
    /// `IV`, else the media sequence number (RFC 8216 §5.2).
    pub iv: [u8; 16],
}

/// One media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Absolute URL.
    pub url: String,
    /// Whole-segment encryption (HLS AES-128), if any.
    pub aes128: Option<Aes128>,
}

/// One rendition's init and media segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Representation id (DASH) or playlist URL (HLS).
    pub id: String,
    /// Kind.
    pub kind: Kind,
    /// Init segment URL.
    pub init: String,
    /// Media segments, in order.
    pub segments: Vec<Segment>,
}

/// Most segments a rendition may list (a hostile manifest must not exhaust memory).
pub const MAX_SEGMENTS: usize = 200_000;

fn bad(what: impl Into<String>) -> ClientError {
    ClientError::Media(what.into())
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name.as_bytes())
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

#[derive(Default, Clone)]
struct Template {
    media: Option<String>,
    init: Option<String>,
    start_number: Option<u64>,
    timeline: Vec<(Option<u64>, u64, i64)>,
}

impl Template {
    fn merged(&self, parent: &Template) -> Template {
        Template {
            media: self.media.clone().or_else(|| parent.media.clone()),
            init: self.init.clone().or_else(|| parent.init.clone()),
            start_number: self.start_number.or(parent.start_number),
            timeline: if self.timeline.is_empty() { parent.timeline.clone() } else { self.timeline.clone() },
        }
    }
}

/// `$Identifier$` substitution with `%0Nd` widths (ISO/IEC 23009-1 §5.3.9.4.4).
fn expand(tpl: &str, id: &str, bandwidth: &str, number: u64, time: u64) -> Result<String, ClientError> {
    let mut out = String::new();
    let mut rest = tpl;
    while let Some(i) = rest.find('$') {
        out.push_str(rest.get(..i).unwrap_or(""));
        let after = rest.get(i.saturating_add(1)..).unwrap_or("");
        let end = after.find('$').ok_or_else(|| bad(format!("unterminated $ in template {tpl}")))?;
        let ident = after.get(..end).unwrap_or("");
        let (name, width) = match ident.split_once('%') {
            Some((n, f)) => {
                let w = f
                    .strip_prefix('0')
                    .and_then(|f| f.strip_suffix('d'))
                    .and_then(|w| w.parse::<usize>().ok())
                    .filter(|w| *w <= 32);
                (n, Some(w.ok_or_else(|| bad(format!("bad format {ident}")))?))
            }
            None => (ident, None),
        };
        let value = match name {
            "" => "$".to_owned(),
            "RepresentationID" => id.to_owned(),
            "Bandwidth" => bandwidth.to_owned(),
            "Number" => number.to_string(),
            "Time" => time.to_string(),
            other => return Err(bad(format!("unknown template identifier ${other}$"))),
        };
        match width {
            Some(w) => out.push_str(&format!("{value:0>w$}")),
            None => out.push_str(&value),
        }
        rest = after.get(end.saturating_add(1)..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

/// Every Representation of the first Period, with its segment URLs.
pub fn parse_mpd(text: &str, url: &str) -> Result<Vec<Track>, ClientError> {
    let mut reader = Reader::from_str(text);
    // Element stack: (name, base URL in force, template in force, kind).
    let mut base: Vec<String> = vec![url.to_owned()];
    let mut tpl: Vec<Template> = vec![Template::default()];
    let mut kind: Vec<Kind> = vec![Kind::Other];
    let mut names: Vec<String> = Vec::new();
    let mut rep: Option<(String, String)> = None;
    let mut in_base_url = false;
    let mut out = Vec::new();
    let mut periods = 0usize;
    loop {
        let ev = reader.read_event().map_err(|e| bad(format!("MPD is not XML: {e}")))?;
        let (e, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(_) => {
                let name = names.pop().unwrap_or_default();
                if name == "Representation" {
                    finish_rep(&mut out, rep.take(), tpl.last(), kind.last(), base.last())?;
                }
                if name == "BaseURL" {
                    in_base_url = false;
                }
                base.pop();
                let popped = tpl.pop();
                kind.pop();
                // A template (and its timeline) belongs to the element that holds it.
                if name == "SegmentTemplate" || name == "SegmentTimeline" {
                    if let (Some(p), Some(top)) = (popped, tpl.last_mut()) {
                        *top = p;
                    }
                }
                continue;
            }
            Event::Text(t) if in_base_url => {
                let b = t.xml10_content().map_err(|e| bad(e.to_string()))?.trim().to_owned();
                // A BaseURL applies to its parent element, relative to what the parent inherited.
                let n = base.len();
                if let Some(slot) = base.get_mut(n.saturating_sub(2)).filter(|_| n >= 2) {
                    *slot = join(slot, &b);
                }
                in_base_url = false;
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(e) = e else { continue };
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        let cur_base = base.last().cloned().unwrap_or_default();
        let mut t = tpl.last().cloned().unwrap_or_default();
        let mut k = kind.last().copied().unwrap_or(Kind::Other);
        match name.as_str() {
            "Period" => {
                periods = periods.saturating_add(1);
                if periods > 1 {
                    return Err(bad("multi-period MPDs are not supported"));
                }
            }
            "AdaptationSet" => {
                k = attr(&e, "contentType").or_else(|| attr(&e, "mimeType")).map_or(Kind::Other, |s| Kind::of(&s));
            }
            "Representation" => {
                if let Some(m) = attr(&e, "mimeType") {
                    if k == Kind::Other {
                        k = Kind::of(&m);
                    }
                }
                rep = Some((attr(&e, "id").unwrap_or_default(), attr(&e, "bandwidth").unwrap_or_default()));
            }
            "SegmentTemplate" => {
                let own = Template {
                    media: attr(&e, "media"),
                    init: attr(&e, "initialization"),
                    start_number: attr(&e, "startNumber").and_then(|v| v.parse().ok()),
                    timeline: Vec::new(),
                };
                t = own.merged(&t);
                t.timeline.clear();
            }
            "S" => {
                let parse = |n: &str| attr(&e, n).and_then(|v| v.parse::<u64>().ok());
                let d = parse("d").ok_or_else(|| bad("S without @d"))?;
                let r = attr(&e, "r").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                if r < 0 {
                    return Err(bad("open-ended @r is not supported in a static MPD"));
                }
                // S lives in SegmentTimeline (the top of the stack); it travels up at its end.
                if let Some(owner) = tpl.last_mut() {
                    owner.timeline.push((parse("t"), d, r));
                }
            }
            "BaseURL" => in_base_url = true,
            _ => {}
        }
        if empty {
            if name == "Representation" {
                finish_rep(&mut out, rep.take(), Some(&t), Some(&k), Some(&cur_base))?;
            }
            if name == "SegmentTemplate" {
                // An empty SegmentTemplate (no timeline child) still gives its holder attributes.
                if let Some(owner) = tpl.last_mut() {
                    let timeline = owner.timeline.clone();
                    *owner = Template { timeline, ..t };
                }
            }
            continue;
        }
        names.push(name.clone());
        base.push(cur_base);
        tpl.push(t);
        kind.push(k);
    }
    if out.is_empty() {
        return Err(bad("no Representation with a SegmentTemplate in the MPD"));
    }
    Ok(out)
}

/// When a Representation closes: its template (its own merged with its parents') gives its URLs.
fn finish_rep(
    out: &mut Vec<Track>,
    rep: Option<(String, String)>,
    t: Option<&Template>,
    k: Option<&Kind>,
    base: Option<&String>,
) -> Result<(), ClientError> {
    let (Some((id, bw)), Some(t), Some(k), Some(base)) = (rep, t, k, base) else { return Ok(()) };
    let (Some(media), Some(init)) = (&t.media, &t.init) else { return Ok(()) };
    let mut segments = Vec::new();
    let mut number = t.start_number.unwrap_or(1);
    let mut time = 0u64;
    for (start, d, r) in &t.timeline {
        if let Some(s) = start {
            time = *s;
        }
        let room = MAX_SEGMENTS.saturating_sub(segments.len());
        if usize::try_from(*r).map_or(true, |r| r >= room) {
            return Err(bad(format!("Representation {id}: more than {MAX_SEGMENTS} segments")));
        }
        for _ in 0..=*r {
            segments.push(Segment { url: join(base, &expand(media, &id, &bw, number, time)?), aes128: None });
            number = number.saturating_add(1);
            time = time.saturating_add(*d);
        }
    }
    if segments.is_empty() {
        return Err(bad(format!("Representation {id}: no SegmentTimeline")));
    }
    out.push(Track { init: join(base, &expand(init, &id, &bw, number, 0)?), id, kind: *k, segments });
    Ok(())
}

/// `NAME=value,NAME="quoted, value"` attribute lists (RFC 8216 §4.2).
pub fn attributes(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else { break };
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (q.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.to_owned(), n),
                None => (after.to_owned(), ""),
            }
        };
        out.push((name.trim().to_owned(), value));
        rest = next.trim_start_matches(',').trim_start();
    }
    out
}

fn get<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A multivariant playlist's renditions: (kind, media playlist URL). Video from
/// `EXT-X-STREAM-INF`, audio from `EXT-X-MEDIA:TYPE=AUDIO`.
pub fn parse_master(text: &str, url: &str) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    let mut next_is_variant = false;
    for line in text.lines().map(str::trim) {
        if let Some(a) = line.strip_prefix("#EXT-X-MEDIA:") {
            let attrs = attributes(a);
            if let (Some("AUDIO"), Some(uri)) = (get(&attrs, "TYPE"), get(&attrs, "URI")) {
                out.push((Kind::Audio, join(url, uri)));
            }
        } else if line.starts_with("#EXT-X-STREAM-INF:") {
            next_is_variant = true;
        } else if !line.is_empty() && !line.starts_with('#') && next_is_variant {
            out.push((Kind::Video, join(url, line)));
            next_is_variant = false;
        }
    }
    out
}

/// A media playlist: init (`EXT-X-MAP`) and segments with their `EXT-X-KEY` in force.
pub fn parse_media(text: &str, url: &str, kind: Kind) -> Result<Track, ClientError> {
    if !text.starts_with("#EXTM3U") {
        return Err(bad("not an HLS playlist"));
    }
    let mut init = None;
    let mut seq: u64 = 0;
    let mut key: Option<(Option<KeyId>, Option<[u8; 16]>)> = None;
    let mut segments = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.parse().map_err(|_| bad("bad EXT-X-MEDIA-SEQUENCE"))?;
        } else if let Some(a) = line.strip_prefix("#EXT-X-MAP:") {
            let attrs = attributes(a);
            init = get(&attrs, "URI").map(|u| join(url, u));
        } else if let Some(a) = line.strip_prefix("#EXT-X-KEY:") {
            let attrs = attributes(a);
            match get(&attrs, "METHOD") {
                Some("AES-128") => {
                    let kid = get(&attrs, "KEYID")
                        .and_then(|k| KeyId::parse(k.trim_start_matches("0x").trim_start_matches("0X")))
                        .or_else(|| {
                            let uri = get(&attrs, "URI")?;
                            let last = uri.split('?').next()?.rsplit('/').next()?;
                            KeyId::parse(last).filter(|_| last.len() == 32)
                        });
                    let iv = match get(&attrs, "IV") {
                        Some(h) => Some(parse_iv(h)?),
                        None => None,
                    };
                    key = Some((kid, iv));
                }
                Some("NONE") => key = None,
                // SAMPLE-AES (cbcs in fMP4): the samples carry their own encryption boxes.
                _ => {}
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            if segments.len() >= MAX_SEGMENTS {
                return Err(bad(format!("more than {MAX_SEGMENTS} segments")));
            }
            let aes128 = key.as_ref().map(|(kid, iv)| Aes128 {
                kid: *kid,
                iv: iv.unwrap_or_else(|| {
                    let mut b = [0u8; 16];
                    if let Some(tail) = b.get_mut(8..) {
                        tail.copy_from_slice(&seq.to_be_bytes());
                    }
                    b
                }),
            });
            segments.push(Segment { url: join(url, line), aes128 });
            seq = seq.saturating_add(1);
        }
    }
    let init = init.ok_or_else(|| bad("media playlist without EXT-X-MAP (only fMP4 is supported)"))?;
    Ok(Track { id: url.to_owned(), kind, init, segments })
}

fn parse_iv(h: &str) -> Result<[u8; 16], ClientError> {
    let hex = h.trim_start_matches("0x").trim_start_matches("0X");
    KeyId::parse(hex).filter(|_| hex.len() == 32).map(|k| k.0).ok_or_else(|| bad("bad IV"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpd_template_and_timeline() {
        let mpd = r#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period>
          <AdaptationSet contentType="video"><Representation id="v_1" bandwidth="5">
            <SegmentTemplate timescale="10" initialization="$RepresentationID$/init.cenc.vX.mp4"
              media="$RepresentationID$/$Number$.cenc.vX.m4s" startNumber="1">
              <SegmentTimeline><S t="0" d="40" r="1"/><S d="20"/></SegmentTimeline></SegmentTemplate>
          </Representation></AdaptationSet>
          <AdaptationSet contentType="audio"><SegmentTemplate initialization="a/$RepresentationID$-$Bandwidth$.mp4"
              media="a/$Time$-$Number%03d$.m4s"><SegmentTimeline><S t="5" d="10" r="1"/></SegmentTimeline></SegmentTemplate>
            <Representation id="a_2" bandwidth="7"/></AdaptationSet></Period></MPD>"#;
        let t = parse_mpd(mpd, "http://o/x/manifest.mpd").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].kind, t[0].init.as_str()), (Kind::Video, "http://o/x/v_1/init.cenc.vX.mp4"));
        let urls: Vec<&str> = t[0].segments.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            urls,
            ["http://o/x/v_1/1.cenc.vX.m4s", "http://o/x/v_1/2.cenc.vX.m4s", "http://o/x/v_1/3.cenc.vX.m4s"]
        );
        assert_eq!(t[1].init, "http://o/x/a/a_2-7.mp4");
        assert_eq!(t[1].segments[1].url, "http://o/x/a/15-002.m4s");
    }

    #[test]
    fn hls_master_and_media_with_aes128() {
        let master = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"En, main\",URI=\"a/media.m3u8\"\n\
                      #EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1,mp4a\"\nv/media.m3u8\n";
        let r = parse_master(master, "http://o/x/master.m3u8");
        assert_eq!(
            r,
            vec![(Kind::Audio, "http://o/x/a/media.m3u8".into()), (Kind::Video, "http://o/x/v/media.m3u8".into())]
        );
        let media = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MAP:URI=\"init.v1.mp4\"\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"/.drm/key/aaaabbbbccccddddeeeeffff00001111\",IV=0x000102030405060708090a0b0c0d0e0f\n\
            #EXTINF:4,\n1.aes128.v2.m4s\n#EXT-X-KEY:METHOD=AES-128,URI=\"/.drm/key/aaaabbbbccccddddeeeeffff00001111\"\n#EXTINF:4,\n2.aes128.v2.m4s\n";
        let t = parse_media(media, "http://o/x/v/media.aes128.m3u8", Kind::Video).unwrap();
        assert_eq!(t.init, "http://o/x/v/init.v1.mp4");
        let k = t.segments[0].aes128.as_ref().unwrap();
        assert_eq!(k.kid.unwrap().hex(), "aaaabbbbccccddddeeeeffff00001111");
        assert_eq!(k.iv[15], 0x0f);
        assert_eq!(t.segments[1].aes128.as_ref().unwrap().iv[15], 2, "IV from the media sequence number");
    }
}
