//! Writing a CPIX 2.3 document (see the parent module's docs for what goes where).

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

use zeroize::Zeroizing;

use super::WIDEVINE_ID;
use super::{
    invalid, system_id, CpixError, CpixKey, KeyClass, ENVELOPE_LABEL, HD_MAX_PIXELS, MAX_KEYS, NS_CPIX, NS_DS, NS_ENC,
    NS_PSKC, SD_MAX_PIXELS,
};
use crate::drm::pssh::{self, Scheme};
use crate::drm::{b64, playready, widevine, System};

/// How a policy serves one CENC scheme: over DASH, over HLS, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemeUse {
    /// The scheme.
    pub scheme: Scheme,
    /// Offered in DASH manifests (ContentProtectionData is written).
    pub dash: bool,
    /// Offered in HLS playlists (HLSSignalingData is written; FairPlay applies).
    pub hls: bool,
}

/// [`export_schemes`] for one scheme used over both protocols.
pub fn export(
    content_id: &str,
    keys: &[CpixKey],
    systems: &[System],
    scheme: Scheme,
    license_urls: &BTreeMap<System, String>,
) -> Result<String, CpixError> {
    export_schemes(content_id, keys, systems, &[SchemeUse { scheme, dash: true, hls: true }], license_urls)
}

/// A CPIX 2.3 document for `content_id` holding `keys`, with DRM signalling for `systems` under
/// every scheme of `uses` (see the module docs). One `DRMSystem` per key, system and scheme the
/// system applies to (FairPlay: cbcs over HLS only), named `"{system} {scheme}"` when there are
/// several schemes, since a `DRMSystem` carries no scheme of its own. A key's
/// `commonEncryptionScheme` is its own, else the one scheme of `uses`, else left out (CPIX: any
/// scheme), since the same key protects both the cenc and the cbcs variant;
/// `license_urls` go where each system carries one (PlayReady `LA_URL`, `dashif:Laurl` for
/// Widevine and ClearKey, the FairPlay `skd://` URI as in our playlists).
///
/// Fails on more than [`MAX_KEYS`] keys or duplicate KIDs (so that [`import()`](super::import())
/// reads every export back), text XML cannot carry, and PlayReady headers that cannot be built.
pub fn export_schemes(
    content_id: &str,
    keys: &[CpixKey],
    systems: &[System],
    uses: &[SchemeUse],
    license_urls: &BTreeMap<System, String>,
) -> Result<String, CpixError> {
    let single = match uses {
        [only] => Some(only.scheme),
        _ => None,
    };
    if keys.len() > MAX_KEYS {
        return Err(CpixError::TooManyKeys);
    }
    let mut kids = BTreeSet::new();
    for k in keys {
        if !kids.insert(k.kid) {
            return Err(invalid(format!("ContentKey@kid {}", k.kid), "duplicate KID"));
        }
    }
    let mut systems_once: Vec<System> = Vec::with_capacity(systems.len());
    for s in systems {
        if !systems_once.contains(s) {
            systems_once.push(*s);
        }
    }

    let mut x = String::with_capacity(keys.len().saturating_mul(2048).saturating_add(1024));
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<cpix:CPIX xmlns:cpix=\"");
    x.push_str(NS_CPIX);
    x.push_str("\" xmlns:pskc=\"");
    x.push_str(NS_PSKC);
    x.push_str("\" xmlns:enc=\"");
    x.push_str(NS_ENC);
    x.push_str("\" xmlns:ds=\"");
    x.push_str(NS_DS);
    x.push('"');
    if !content_id.is_empty() {
        x.push_str(" contentId=\"");
        escape_into(&mut x, content_id, "CPIX@contentId")?;
        x.push('"');
    }
    x.push_str(" version=\"2.3\">\n");

    x.push_str("  <cpix:ContentKeyList>\n");
    for k in keys {
        x.push_str("    <cpix:ContentKey kid=\"");
        x.push_str(&k.kid.uuid());
        x.push('"');
        if let (true, Some(scheme)) = (k.class != KeyClass::Envelope, k.scheme.or(single)) {
            x.push_str(" commonEncryptionScheme=\"");
            x.push_str(scheme_name(scheme));
            x.push('"');
        }
        if let Some(iv) = &k.explicit_iv {
            x.push_str(" explicitIV=\"");
            x.push_str(&b64::encode(iv));
            x.push('"');
        }
        x.push_str(">\n      <cpix:Data><pskc:Secret><pskc:PlainValue>");
        let value = Zeroizing::new(b64::encode(k.key.bytes()));
        x.push_str(&value);
        x.push_str("</pskc:PlainValue></pskc:Secret></cpix:Data>\n    </cpix:ContentKey>\n");
    }
    x.push_str("  </cpix:ContentKeyList>\n");

    let mut drm = String::new();
    for k in keys.iter().filter(|k| k.class != KeyClass::Envelope) {
        // A key that names its scheme is signalled under that one only.
        let own;
        let uses_of_key: &[SchemeUse] = match k.scheme {
            Some(scheme) => {
                own = [uses.iter().find(|u| u.scheme == scheme).copied().unwrap_or(SchemeUse {
                    scheme,
                    dash: true,
                    hls: true,
                })];
                &own
            }
            None => uses,
        };
        for u in uses_of_key {
            for system in &systems_once {
                let name = (uses.len() > 1).then(|| format!("{} {}", system_name(*system), scheme_name(u.scheme)));
                drm_system(&mut drm, k, *system, *u, name.as_deref(), license_urls)?;
            }
        }
    }
    if !drm.is_empty() {
        x.push_str("  <cpix:DRMSystemList>\n");
        x.push_str(&drm);
        x.push_str("  </cpix:DRMSystemList>\n");
    }

    x.push_str("  <cpix:ContentKeyUsageRuleList>\n");
    for k in keys {
        x.push_str("    <cpix:ContentKeyUsageRule kid=\"");
        x.push_str(&k.kid.uuid());
        x.push_str("\" intendedTrackType=\"");
        x.push_str(k.class.track_type());
        x.push_str("\">\n      ");
        x.push_str(&filter_for(k.class));
        x.push_str("\n    </cpix:ContentKeyUsageRule>\n");
    }
    x.push_str("  </cpix:ContentKeyUsageRuleList>\n");
    x.push_str("</cpix:CPIX>\n");
    Ok(x)
}

fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::Cenc => "cenc",
        Scheme::Cbcs => "cbcs",
    }
}

/// The usage-rule filter of a class.
fn filter_for(class: KeyClass) -> String {
    let sd_plus_one = SD_MAX_PIXELS.saturating_add(1);
    let hd_plus_one = HD_MAX_PIXELS.saturating_add(1);
    match class {
        KeyClass::Video => "<cpix:VideoFilter/>".to_owned(),
        KeyClass::Sd => format!("<cpix:VideoFilter maxPixels=\"{SD_MAX_PIXELS}\"/>"),
        KeyClass::Hd => format!("<cpix:VideoFilter minPixels=\"{sd_plus_one}\" maxPixels=\"{HD_MAX_PIXELS}\"/>"),
        KeyClass::Uhd => format!("<cpix:VideoFilter minPixels=\"{hd_plus_one}\"/>"),
        KeyClass::Audio => "<cpix:AudioFilter/>".to_owned(),
        KeyClass::Envelope => format!("<cpix:LabelFilter label=\"{ENVELOPE_LABEL}\"/>"),
    }
}

/// The signalling one system carries for one key.
#[derive(Default)]
struct Signalling {
    pssh: Option<Vec<u8>>,
    content_protection: Option<String>,
    hls_media: Option<String>,
    hls_master: Option<String>,
}

/// `#EXT-X-KEY` and `#EXT-X-SESSION-KEY` lines from the attribute list after the colon.
fn hls_pair(attributes: &str) -> (Option<String>, Option<String>) {
    (Some(format!("#EXT-X-KEY:{attributes}")), Some(format!("#EXT-X-SESSION-KEY:{attributes}")))
}

fn system_name(s: System) -> &'static str {
    match s {
        System::ClearKey => "ClearKey",
        System::Widevine => "Widevine",
        System::PlayReady => "PlayReady",
        System::FairPlay => "FairPlay",
    }
}

fn drm_system(
    x: &mut String,
    k: &CpixKey,
    system: System,
    using: SchemeUse,
    name: Option<&str>,
    license_urls: &BTreeMap<System, String>,
) -> Result<(), CpixError> {
    let scheme = using.scheme;
    let url = license_urls.get(&system).map(String::as_str);
    let method = match scheme {
        Scheme::Cenc => "SAMPLE-AES-CTR",
        Scheme::Cbcs => "SAMPLE-AES",
    };
    let kid_hex = k.kid.hex();
    let mut s = Signalling::default();
    match system {
        System::Widevine => {
            let b = widevine::pssh_box(&[k.kid], scheme, None, None);
            let b64_box = b64::encode(&b);
            let mut cpd = format!("<pssh xmlns=\"urn:mpeg:cenc:2013\">{b64_box}</pssh>");
            if let Some(u) = url {
                laurl_into(&mut cpd, u, "license URL (widevine)")?;
            }
            (s.hls_media, s.hls_master) = hls_pair(&format!(
                "METHOD={method},URI=\"data:text/plain;base64,{b64_box}\",KEYID=0x{kid_hex},KEYFORMAT=\"urn:uuid:{WIDEVINE_ID}\",KEYFORMATVERSIONS=\"1\""
            ));
            s.pssh = Some(b);
            s.content_protection = Some(cpd);
        }
        System::PlayReady => {
            let keys = [(k.kid, &k.key)];
            let pr = |e| CpixError::PlayReady { kid: k.kid, source: e };
            let header = playready::header_for(scheme, &keys, url).map_err(pr)?;
            let pro = playready::pro(&header).map_err(pr)?;
            let b = pssh::pssh_v0(&pssh::PLAYREADY_SYSTEM_ID, &pro);
            let pro_b64 = b64::encode(&pro);
            s.content_protection = Some(format!(
                "<pssh xmlns=\"urn:mpeg:cenc:2013\">{}</pssh><pro xmlns=\"urn:microsoft:playready\">{pro_b64}</pro>",
                b64::encode(&b)
            ));
            (s.hls_media, s.hls_master) = hls_pair(&format!(
                "METHOD={method},URI=\"data:text/plain;charset=UTF-16;base64,{pro_b64}\",KEYFORMAT=\"com.microsoft.playready\",KEYFORMATVERSIONS=\"1\""
            ));
            s.pssh = Some(b);
        }
        System::ClearKey => {
            let b = pssh::common(&[k.kid]);
            let b64_box = b64::encode(&b);
            let mut cpd = String::new();
            if let Some(u) = url {
                laurl_into(&mut cpd, u, "license URL (clearkey)")?;
                cpd.push_str(
                    "<clearkey:Laurl xmlns:clearkey=\"http://dashif.org/guidelines/clearKey\" Lic_type=\"EME-1.0\">",
                );
                escape_into(&mut cpd, u, "license URL (clearkey)")?;
                cpd.push_str("</clearkey:Laurl>");
            }
            cpd.push_str("<pssh xmlns=\"urn:mpeg:cenc:2013\">");
            cpd.push_str(&b64_box);
            cpd.push_str("</pssh>");
            (s.hls_media, s.hls_master) = hls_pair(&format!(
                "METHOD={method},URI=\"data:text/plain;base64,{b64_box}\",KEYID=0x{kid_hex},KEYFORMAT=\"org.w3.clearkey\",KEYFORMATVERSIONS=\"1\""
            ));
            s.pssh = Some(b);
            s.content_protection = Some(cpd);
        }
        // FairPlay: cbcs only, HLS only; the skd:// URI names the key (as in our playlists).
        System::FairPlay if scheme == Scheme::Cbcs && using.hls => {
            let uri = match url {
                Some(u) if u.contains("{kid}") => u.replace("{kid}", &kid_hex),
                Some(u) => format!("{}/{kid_hex}", u.trim_end_matches('/')),
                None => format!("skd://{kid_hex}"),
            };
            if uri.chars().any(|c| c == '"' || c.is_control()) {
                return Err(invalid("license URL (fairplay)", "contains a quote or control character"));
            }
            (s.hls_media, s.hls_master) = hls_pair(&format!(
                "METHOD=SAMPLE-AES,URI=\"{uri}\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\""
            ));
        }
        System::FairPlay => return Ok(()),
    }
    x.push_str("    <cpix:DRMSystem kid=\"");
    x.push_str(&k.kid.uuid());
    x.push_str("\" systemId=\"");
    x.push_str(system_id(system));
    x.push('"');
    if let Some(n) = name {
        x.push_str(" name=\"");
        escape_into(x, n, "DRMSystem@name")?;
        x.push('"');
    }
    x.push_str(">\n");
    if let Some(b) = &s.pssh {
        element(x, "PSSH", "", &b64::encode(b));
    }
    // DASH signalling where the scheme is offered over DASH, HLS lines where over HLS.
    if let (true, Some(c)) = (using.dash, &s.content_protection) {
        element(x, "ContentProtectionData", "", &b64::encode(c.as_bytes()));
    }
    if let (true, Some(l)) = (using.hls, &s.hls_media) {
        element(x, "HLSSignalingData", " playlist=\"media\"", &b64::encode(l.as_bytes()));
    }
    if let (true, Some(l)) = (using.hls, &s.hls_master) {
        element(x, "HLSSignalingData", " playlist=\"master\"", &b64::encode(l.as_bytes()));
    }
    x.push_str("    </cpix:DRMSystem>\n");
    Ok(())
}

/// `<dashif:Laurl>` in the namespace our MPDs use (shaka-player's `https://dashif.org/CPS`),
/// declared on the element so the fragment stands alone.
fn laurl_into(x: &mut String, url: &str, at: &str) -> Result<(), CpixError> {
    x.push_str("<dashif:Laurl xmlns:dashif=\"https://dashif.org/CPS\">");
    escape_into(x, url, at)?;
    x.push_str("</dashif:Laurl>");
    Ok(())
}

fn element(x: &mut String, name: &str, attrs: &str, base64: &str) {
    x.push_str("      <cpix:");
    x.push_str(name);
    x.push_str(attrs);
    x.push('>');
    x.push_str(base64);
    x.push_str("</cpix:");
    x.push_str(name);
    x.push_str(">\n");
}

/// Escapes `s` for XML text or a double-quoted attribute; tab, CR and LF become character
/// references so attribute normalisation keeps them. Characters XML 1.0 cannot carry fail.
fn escape_into(x: &mut String, s: &str, at: &str) -> Result<(), CpixError> {
    for c in s.chars() {
        match c {
            '&' => x.push_str("&amp;"),
            '<' => x.push_str("&lt;"),
            '>' => x.push_str("&gt;"),
            '"' => x.push_str("&quot;"),
            '\'' => x.push_str("&apos;"),
            '\t' => x.push_str("&#9;"),
            '\n' => x.push_str("&#10;"),
            '\r' => x.push_str("&#13;"),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => {
                return Err(invalid(at, "contains a character XML cannot carry"));
            }
            c => x.push(c),
        }
    }
    Ok(())
}
