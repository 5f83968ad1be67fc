//! Reading a CPIX document: a streaming, namespace-aware pass with quick-xml that keeps only
//! what it needs (see the parent module's docs for the rules).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use zeroize::{Zeroize, Zeroizing};

use super::{
    invalid, CpixError, CpixKey, KeyClass, ENVELOPE_LABEL, HD_MAX_PIXELS, MAX_DOCUMENT_BYTES, MAX_KEYS, NS_CPIX,
    NS_PSKC,
};
use crate::crypto::{Key, KeyId};
use crate::drm::b64;
use crate::drm::pssh::Scheme;

/// Deepest element nesting [`import`] follows.
const MAX_DEPTH: usize = 64;

/// What import still reads as SD / HD when a key server draws the lines a little wider than
/// export does (1024 × 576 for 16:9 SD, 2048 × 1080 for DCI 2K).
const SD_MAX_PIXELS_LENIENT: u64 = 1024 * 576;
const HD_MAX_PIXELS_LENIENT: u64 = 2048 * 1080;

/// Where the parser is: the known elements of the CPIX tree, and `Other` for subtrees it skips
/// (extensions, signatures, DRM signalling payloads, periods, update history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Root,
    KeyList,
    Key,
    Data,
    Secret,
    PlainValue,
    DrmList,
    DrmSystem,
    RuleList,
    Rule,
    Other,
}

impl Node {
    /// For error messages.
    fn name(self) -> &'static str {
        match self {
            Node::Root => "CPIX",
            Node::KeyList => "ContentKeyList",
            Node::Key => "ContentKey",
            Node::Data => "ContentKey/Data",
            Node::Secret => "ContentKey/Data/Secret",
            Node::PlainValue => "ContentKey/Data/Secret/PlainValue",
            Node::DrmList => "DRMSystemList",
            Node::DrmSystem => "DRMSystem",
            Node::RuleList => "ContentKeyUsageRuleList",
            Node::Rule => "ContentKeyUsageRule",
            Node::Other => "an element",
        }
    }
}

/// A `ContentKey` as read.
struct RawKey {
    kid: KeyId,
    scheme: Option<Scheme>,
    explicit_iv: Option<[u8; 16]>,
    key: Option<Key>,
}

/// A `ContentKeyUsageRule` as read.
#[derive(Default)]
pub(super) struct RawRule {
    pub(super) kid: Option<KeyId>,
    pub(super) track_type: Option<String>,
    /// `(minPixels, maxPixels)` of each `VideoFilter`.
    pub(super) video: Vec<(Option<u64>, Option<u64>)>,
    pub(super) audio: bool,
    pub(super) envelope: bool,
}

struct Parser<'a> {
    reader: NsReader<&'a [u8]>,
    stack: Vec<Node>,
    seen_root: bool,
    keys: Vec<RawKey>,
    /// KIDs of `DRMSystem` elements, checked against the keys at the end.
    drm_kids: Vec<KeyId>,
    rules: Vec<RawRule>,
    rule: RawRule,
    /// Text of the current `PlainValue`.
    value: Zeroizing<String>,
}

/// Reads the content keys of a CPIX document (see the module docs), in document order, each
/// with its class.
pub fn import(xml: &str) -> Result<Vec<CpixKey>, CpixError> {
    if xml.len() > MAX_DOCUMENT_BYTES {
        return Err(CpixError::TooLarge(xml.len()));
    }
    let mut p = Parser {
        reader: NsReader::from_str(xml),
        stack: Vec::new(),
        seen_root: false,
        keys: Vec::new(),
        drm_kids: Vec::new(),
        rules: Vec::new(),
        rule: RawRule::default(),
        value: Zeroizing::new(String::new()),
    };
    p.run()?;
    p.finish()
}

/// The keys of one asset by class, for storing them under `asset:{id}/{class}`: fails if two
/// keys share a class (a key server's HD1/HD2 split, or several keys without usage rules).
pub fn by_class(keys: &[CpixKey]) -> Result<BTreeMap<KeyClass, &CpixKey>, CpixError> {
    let mut out: BTreeMap<KeyClass, &CpixKey> = BTreeMap::new();
    for k in keys {
        if let Some(other) = out.insert(k.class, k) {
            return Err(invalid(
                format!("ContentKey {}", k.kid),
                format!("key {} has class {} too; an asset has one key per class", other.kid, k.class),
            ));
        }
    }
    Ok(out)
}

impl Parser<'_> {
    fn xml_error(&self, reason: impl fmt::Display) -> CpixError {
        let mut reason = reason.to_string();
        truncate(&mut reason, 200);
        CpixError::Xml { offset: self.reader.buffer_position(), reason }
    }

    fn run(&mut self) -> Result<(), CpixError> {
        loop {
            let (ns, event) = match self.reader.read_resolved_event() {
                Ok((ns, ev)) => (namespace_of(&ns), ev),
                Err(e) => {
                    let offset = self.reader.error_position();
                    let mut reason = e.to_string();
                    truncate(&mut reason, 200);
                    return Err(CpixError::Xml { offset, reason });
                }
            };
            match event {
                Event::Start(e) => {
                    let node = self.open(ns?, &e)?;
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(self.xml_error(format!("elements nested deeper than {MAX_DEPTH}")));
                    }
                    self.stack.push(node);
                }
                Event::Empty(e) => {
                    let node = self.open(ns?, &e)?;
                    self.close(node)?;
                }
                Event::End(_) => {
                    let node = self.stack.pop().ok_or_else(|| self.xml_error("end tag without a start tag"))?;
                    self.close(node)?;
                }
                Event::Text(t) => {
                    let text = t.xml10_content().map_err(|e| self.xml_error(e))?;
                    self.text(&text)?;
                }
                Event::CData(t) => {
                    let text = t.decode().map_err(|e| self.xml_error(e))?;
                    self.text(&text)?;
                }
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref().map_err(|e| self.xml_error(e))? {
                        Some(c) => c.to_string(),
                        None => {
                            let name = r.decode().map_err(|e| self.xml_error(e))?;
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| self.xml_error("unknown entity reference"))?
                                .to_owned()
                        }
                    };
                    self.text(&c)?;
                }
                Event::DocType(_) => return Err(self.xml_error("a DOCTYPE is not allowed in a CPIX document")),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(self.xml_error(format!("document ends inside {}", open.name())));
        }
        if !self.seen_root {
            return Err(self.xml_error("no root element"));
        }
        Ok(())
    }

    /// Character data: kept inside `PlainValue`, ignored in skipped subtrees, refused outside
    /// the root element.
    fn text(&mut self, text: &str) -> Result<(), CpixError> {
        match self.stack.last() {
            Some(Node::PlainValue) => {
                self.value.push_str(text);
                Ok(())
            }
            Some(_) => Ok(()),
            None if text.trim().is_empty() => Ok(()),
            None => Err(self.xml_error("text outside the root element")),
        }
    }

    /// The node a start tag opens, after reading the attributes the parser needs.
    fn open(&mut self, ns: Ns, e: &BytesStart<'_>) -> Result<Node, CpixError> {
        let local = e.local_name();
        let name = String::from_utf8_lossy(local.as_ref()).into_owned();
        let parent = self.stack.last().copied();
        let node = match (parent, ns, name.as_str()) {
            (None, _, _) if self.seen_root => return Err(self.xml_error("more than one root element")),
            (None, Ns::Cpix, "CPIX") => {
                self.seen_root = true;
                Node::Root
            }
            (None, _, _) => {
                return Err(invalid(
                    format!("root element <{name}>"),
                    format!("a CPIX document's root is CPIX in namespace {NS_CPIX}"),
                ))
            }
            (Some(Node::Root), Ns::Cpix, "ContentKeyList") => Node::KeyList,
            (Some(Node::KeyList), Ns::Cpix, "ContentKey") => {
                self.content_key(e)?;
                Node::Key
            }
            (Some(Node::Key), Ns::Cpix, "Data") => Node::Data,
            (Some(Node::Data), Ns::Pskc, "Secret") => Node::Secret,
            (Some(Node::Secret), Ns::Pskc, "PlainValue") => {
                if self.keys.last().is_some_and(|k| k.key.is_some()) || !self.value.is_empty() {
                    return Err(invalid(self.key_at("Data/Secret/PlainValue"), "appears twice"));
                }
                Node::PlainValue
            }
            (Some(Node::Secret), Ns::Pskc, "EncryptedValue") => {
                return Err(CpixError::Encrypted { at: self.key_at("Data/Secret/EncryptedValue") })
            }
            (Some(Node::Root), Ns::Cpix, "DRMSystemList") => Node::DrmList,
            (Some(Node::DrmList), Ns::Cpix, "DRMSystem") => {
                let kid = required(e, "kid", "DRMSystem@kid")?;
                let kid = parse_uuid(&kid, "DRMSystem@kid")?;
                let system = required(e, "systemId", "DRMSystem@systemId")?;
                parse_uuid(&system, "DRMSystem@systemId")?;
                self.drm_kids.push(kid);
                Node::DrmSystem
            }
            (Some(Node::Root), Ns::Cpix, "ContentKeyUsageRuleList") => Node::RuleList,
            (Some(Node::RuleList), Ns::Cpix, "ContentKeyUsageRule") => {
                let kid = required(e, "kid", "ContentKeyUsageRule@kid")?;
                self.rule = RawRule {
                    kid: Some(parse_uuid(&kid, "ContentKeyUsageRule@kid")?),
                    track_type: attribute(e, "intendedTrackType")?,
                    ..RawRule::default()
                };
                Node::Rule
            }
            (Some(Node::Rule), Ns::Cpix, filter) => {
                self.filter(filter, e)?;
                Node::Other
            }
            _ => Node::Other,
        };
        Ok(node)
    }

    /// `at` prefixed with the current content key (`ContentKey 8ba9…/Data`).
    fn key_at(&self, at: &str) -> String {
        match self.keys.last() {
            Some(k) => format!("ContentKey {}/{at}", k.kid),
            None => format!("ContentKey/{at}"),
        }
    }

    fn content_key(&mut self, e: &BytesStart<'_>) -> Result<(), CpixError> {
        if self.keys.len() >= MAX_KEYS {
            return Err(CpixError::TooManyKeys);
        }
        let kid_text = required(e, "kid", "ContentKey@kid")?;
        let kid = parse_uuid(&kid_text, "ContentKey@kid")?;
        let at = |what: &str| format!("ContentKey {kid}@{what}");
        if self.keys.iter().any(|k| k.kid == kid) {
            return Err(invalid(at("kid"), "duplicate KID"));
        }
        if attribute(e, "dependsOnKey")?.is_some() {
            return Err(CpixError::Unsupported { at: at("dependsOnKey"), what: "a key hierarchy" });
        }
        let scheme = match attribute(e, "commonEncryptionScheme")?.as_deref() {
            None => None,
            Some("cenc") => Some(Scheme::Cenc),
            Some("cbcs") => Some(Scheme::Cbcs),
            Some(other) => {
                let mut shown = other.to_owned();
                truncate(&mut shown, 16);
                return Err(invalid(at("commonEncryptionScheme"), format!("{shown:?} is not cenc or cbcs")));
            }
        };
        let explicit_iv = match attribute(e, "explicitIV")? {
            None => None,
            Some(v) => {
                let bytes = decode_base64(&v).ok_or_else(|| invalid(at("explicitIV"), "not base64"))?;
                Some(
                    <[u8; 16]>::try_from(bytes.as_slice())
                        .map_err(|_| invalid(at("explicitIV"), format!("{} bytes, not 16", bytes.len())))?,
                )
            }
        };
        self.keys.push(RawKey { kid, scheme, explicit_iv, key: None });
        Ok(())
    }

    fn filter(&mut self, name: &str, e: &BytesStart<'_>) -> Result<(), CpixError> {
        let rule_kid = self.rule.kid;
        let at = |what: &str| match rule_kid {
            Some(k) => format!("ContentKeyUsageRule {k}/{what}"),
            None => format!("ContentKeyUsageRule/{what}"),
        };
        match name {
            "VideoFilter" => {
                let pixels = |attr: &str| -> Result<Option<u64>, CpixError> {
                    attribute(e, attr)?
                        .map(|v| {
                            v.trim()
                                .parse::<u64>()
                                .map_err(|_| invalid(at(&format!("VideoFilter@{attr}")), "not a non-negative integer"))
                        })
                        .transpose()
                };
                let range = (pixels("minPixels")?, pixels("maxPixels")?);
                self.rule.video.push(range);
            }
            "AudioFilter" => self.rule.audio = true,
            "LabelFilter" => {
                if attribute(e, "label")?.as_deref() == Some(ENVELOPE_LABEL) {
                    self.rule.envelope = true;
                }
            }
            "BitrateFilter" => {}
            "KeyPeriodFilter" => {
                return Err(CpixError::Unsupported { at: at("KeyPeriodFilter"), what: "key rotation" });
            }
            other => {
                let mut shown = other.to_owned();
                truncate(&mut shown, 40);
                return Err(invalid(at(&shown), "unknown filter (CPIX: the rule is unusable)"));
            }
        }
        Ok(())
    }

    fn close(&mut self, node: Node) -> Result<(), CpixError> {
        match node {
            Node::PlainValue => {
                let at = self.key_at("Data/Secret/PlainValue");
                let bytes = decode_base64(&self.value).ok_or_else(|| invalid(at.as_str(), "not base64"))?;
                let mut key: [u8; 16] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| invalid(at.as_str(), format!("{} bytes, not a 16-byte AES-128 key", bytes.len())))?;
                let raw = self.keys.last_mut().ok_or_else(|| invalid(at.as_str(), "outside a ContentKey"))?;
                raw.key = Some(Key::new(key));
                key.zeroize();
                self.value = Zeroizing::new(String::new());
            }
            Node::Key if self.keys.last().is_none_or(|k| k.key.is_none()) => {
                let at = self.keys.last().map_or_else(|| "ContentKey".to_owned(), |k| format!("ContentKey {}", k.kid));
                return Err(invalid(at, "no Data/Secret/PlainValue (a CPIX request without key values?)"));
            }
            Node::Rule => self.rules.push(std::mem::take(&mut self.rule)),
            _ => {}
        }
        Ok(())
    }

    /// Checks the references and picks each key's class.
    fn finish(self) -> Result<Vec<CpixKey>, CpixError> {
        let known: BTreeSet<KeyId> = self.keys.iter().map(|k| k.kid).collect();
        for kid in &self.drm_kids {
            if !known.contains(kid) {
                return Err(invalid(format!("DRMSystem@kid {kid}"), "no ContentKey has this KID"));
            }
        }
        let mut rule_classes: BTreeMap<KeyId, Vec<KeyClass>> = BTreeMap::new();
        for r in &self.rules {
            let Some(kid) = r.kid else { continue };
            if !known.contains(&kid) {
                return Err(invalid(format!("ContentKeyUsageRule@kid {kid}"), "no ContentKey has this KID"));
            }
            rule_classes.entry(kid).or_default().push(rule_class(r));
        }
        let mut out = Vec::with_capacity(self.keys.len());
        for raw in self.keys {
            let class = match rule_classes.get(&raw.kid).map(Vec::as_slice) {
                None | Some([]) => KeyClass::Video,
                Some([first, rest @ ..]) if rest.iter().all(|c| c == first) => *first,
                // One key under rules of different classes (SPEKE's audio and video rules for
                // one key, say): it serves every track, which is the video class.
                Some(_) => KeyClass::Video,
            };
            let key = raw.key.ok_or_else(|| invalid(format!("ContentKey {}/Data", raw.kid), "no key value"))?;
            out.push(CpixKey { kid: raw.kid, key, class, scheme: raw.scheme, explicit_iv: raw.explicit_iv });
        }
        Ok(out)
    }
}

/// The class one rule gives its key: filters first (a `LabelFilter` with [`ENVELOPE_LABEL`],
/// `AudioFilter`, `VideoFilter` pixel ranges), else `intendedTrackType`. A rule with both an
/// audio and a video filter (SPEKE's "ALL") means every track: video.
pub(super) fn rule_class(r: &RawRule) -> KeyClass {
    if r.envelope {
        return KeyClass::Envelope;
    }
    match (r.audio, r.video.is_empty()) {
        (true, true) => KeyClass::Audio,
        (true, false) => KeyClass::Video,
        (false, false) => {
            // Same-type filters OR: the union of the ranges.
            let min = r.video.iter().map(|(lo, _)| lo.unwrap_or(0)).min().unwrap_or(0);
            let max = r.video.iter().map(|(_, hi)| *hi).try_fold(0u64, |m, hi| hi.map(|h| m.max(h)));
            pixels_class(min, max)
        }
        (false, true) => match r.track_type.as_deref().map(|t| t.trim().to_ascii_uppercase()).as_deref() {
            Some("AUDIO") => KeyClass::Audio,
            Some("SD") => KeyClass::Sd,
            Some("HD" | "HD1" | "HD2") => KeyClass::Hd,
            Some("UHD" | "UHD1" | "UHD2") => KeyClass::Uhd,
            Some("ENVELOPE") => KeyClass::Envelope,
            _ => KeyClass::Video,
        },
    }
}

/// The class of a `VideoFilter` pixel range (`max: None` = unbounded).
fn pixels_class(min: u64, max: Option<u64>) -> KeyClass {
    match max {
        Some(m) if m <= SD_MAX_PIXELS_LENIENT => KeyClass::Sd,
        Some(m) if m <= HD_MAX_PIXELS_LENIENT => KeyClass::Hd,
        _ if min > HD_MAX_PIXELS => KeyClass::Uhd,
        _ => KeyClass::Video,
    }
}

/// Namespace of an element, as far as the parser cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ns {
    Cpix,
    Pskc,
    Other,
}

fn namespace_of(r: &ResolveResult<'_>) -> Result<Ns, CpixError> {
    Ok(match r {
        ResolveResult::Bound(Namespace(n)) if *n == NS_CPIX.as_bytes() => Ns::Cpix,
        ResolveResult::Bound(Namespace(n)) if *n == NS_PSKC.as_bytes() => Ns::Pskc,
        ResolveResult::Bound(_) | ResolveResult::Unbound => Ns::Other,
        ResolveResult::Unknown(prefix) => {
            let mut p = String::from_utf8_lossy(prefix).into_owned();
            truncate(&mut p, 40);
            return Err(invalid(format!("prefix {p:?}"), "namespace prefix is not declared"));
        }
    })
}

/// An unprefixed attribute's value (entities resolved, whitespace normalised).
/// Every attribute is checked (a duplicate or malformed one is an error), not just `name`.
fn attribute(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, CpixError> {
    let mut found = None;
    for a in e.attributes() {
        let a = a.map_err(|err| invalid(format!("attribute of <{}>", element_name(e)), err.to_string()))?;
        if a.key.as_ref() == name.as_bytes() {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| invalid(format!("{}@{name}", element_name(e)), err.to_string()))?;
            found = Some(v.into_owned());
        }
    }
    Ok(found)
}

fn required(e: &BytesStart<'_>, name: &str, at: &str) -> Result<String, CpixError> {
    attribute(e, name)?.ok_or_else(|| invalid(at, "missing"))
}

fn element_name(e: &BytesStart<'_>) -> String {
    let mut n = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    truncate(&mut n, 40);
    n
}

/// A UUID in the 8-4-4-4-12 form (either case), as CPIX 2.3's `KeyIdType` requires.
fn parse_uuid(s: &str, at: &str) -> Result<KeyId, CpixError> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() });
    match shape_ok.then(|| KeyId::parse(s)).flatten() {
        Some(kid) => Ok(kid),
        None => {
            let mut shown = s.to_owned();
            truncate(&mut shown, 48);
            Err(invalid(at, format!("{shown:?} is not a UUID (8-4-4-4-12 hex digits)")))
        }
    }
}

/// `xs:base64Binary`: standard alphabet; XML whitespace between characters is allowed.
fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n')).collect());
    b64::decode(&compact).map(Zeroizing::new)
}

/// Cuts `s` to at most `max` bytes at a character boundary, marking the cut.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        s.truncate(end);
        s.push('…');
    }
}
