//! What each DRM system needs to find its key: `pssh` boxes for init segments, DASH
//! ContentProtection descriptors, HLS `EXT-X-KEY` / `EXT-X-SESSION-KEY` lines
//! (spec-notes §3–§7). One place, so DASH, HLS and the init segment always agree.

use std::fmt::Write;

use super::{HlsKeyFormat, Protection};
use crate::crypto::KeyId;
use crate::drm::pssh::Scheme;
use crate::drm::{b64, playready, widevine, ContentKey, System, Variant};

/// Widevine DASH scheme.
pub const WIDEVINE_SCHEME: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
/// PlayReady DASH scheme.
pub const PLAYREADY_SCHEME: &str = "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95";

fn scheme(prot: &Protection) -> Scheme {
    Scheme::of_variant(prot.variant).unwrap_or(Scheme::Cenc)
}

fn widevine_box(prot: &Protection, kid: &KeyId) -> Vec<u8> {
    widevine::pssh_box(&[*kid], scheme(prot), None, None)
}

/// PlayReady PRO and box; `None` if the header cannot be built (logged: a PlayReady LA_URL
/// too long for a PRO record, say).
fn playready_parts(prot: &Protection, key: &ContentKey) -> Option<(Vec<u8>, String)> {
    let la_url = prot.license_urls.get(&System::PlayReady).map(String::as_str);
    let keys = [(key.kid, &key.key)];
    match (playready::pssh_box(scheme(prot), &keys, la_url), playready::pro_base64(scheme(prot), &keys, la_url)) {
        (Ok(b), Ok(p)) => Some((b, p)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(kid = %key.kid, error = %e, "PlayReady header not signalled");
            None
        }
    }
}

/// `pssh` boxes for an init segment whose track is under `key`: the W3C common one, then one per
/// signalled system.
///
/// The common box names `key`'s KID first, then every other KID of the variant. A player that
/// cannot tell which playlist key an `encrypted` event belongs to (hls.js with ClearKey sends
/// every event to its first key) still asks for all of them in its first license request, so an
/// audio track with its own KID plays too; a license answers only the KIDs the token entitles to.
pub fn init_pssh(prot: &Protection, key: &ContentKey) -> Vec<Vec<u8>> {
    let mut kids = vec![key.kid];
    for k in prot.keys.values() {
        if !kids.contains(&k.kid) {
            kids.push(k.kid);
        }
    }
    let mut out = vec![crate::drm::pssh::common(&kids)];
    for s in &prot.systems {
        match s {
            System::Widevine => out.push(widevine_box(prot, &key.kid)),
            System::PlayReady => out.extend(playready_parts(prot, key).map(|(b, _)| b)),
            System::ClearKey | System::FairPlay => {}
        }
    }
    out.extend(chain_box(prot, &kids));
    out
}

/// A chained policy's leaf as a version-1 `pssh` of our SystemID (issue 11), listing `kids`.
/// Players that do not know the SystemID skip the box.
pub fn chain_box(prot: &Protection, kids: &[KeyId]) -> Option<Vec<u8>> {
    let leaf = prot.leaf.as_ref()?;
    Some(crate::drm::pssh::pssh_v1(&crate::drm::pssh::CHAIN_SYSTEM_ID, kids, leaf.as_bytes()))
}

/// The DASH descriptor of the leaf: our scheme with the `pssh` box, as for Widevine.
pub fn dash_chain(x: &mut String, prot: &Protection, key: &ContentKey) {
    if let Some(b) = chain_box(prot, &[key.kid]) {
        let _ = writeln!(
            x,
            "      <ContentProtection schemeIdUri=\"{}\" value=\"drm-origin-chain\" cenc:default_KID=\"{}\">\n        <cenc:pssh>{}</cenc:pssh>\n      </ContentProtection>",
            crate::drm::pssh::CHAIN_SCHEME,
            key.kid.uuid(),
            b64::encode(&b)
        );
    }
}

/// The HLS session key carrying the leaf (the JWE JSON in a data URI, KEYFORMAT = our scheme).
/// METHOD is the variant's SAMPLE-AES family, and SAMPLE-AES for an AES-128 variant: a player that
/// does not know the KEYFORMAT must skip the line, and hls.js and shaka-player would fetch the URI
/// of an unknown-format AES-128 session key as a key.
pub fn hls_chain(x: &mut String, prot: &Protection) {
    let Some(leaf) = prot.leaf.as_ref() else { return };
    let method = if prot.variant == Variant::Cenc { "SAMPLE-AES-CTR" } else { "SAMPLE-AES" };
    let _ = writeln!(
        x,
        "#EXT-X-SESSION-KEY:METHOD={method},URI=\"data:application/jose+json;base64,{}\",KEYFORMAT=\"{}\",KEYFORMATVERSIONS=\"1\"",
        b64::encode(leaf.as_bytes()),
        crate::drm::pssh::CHAIN_SCHEME
    );
}

/// The DASH ContentProtection descriptor of Widevine or PlayReady for `key`.
pub fn dash_descriptor(x: &mut String, prot: &Protection, system: System, key: &ContentKey) {
    let uuid = key.kid.uuid();
    match system {
        System::Widevine => {
            let _ = writeln!(x, "      <ContentProtection schemeIdUri=\"{WIDEVINE_SCHEME}\" value=\"Widevine\" cenc:default_KID=\"{uuid}\">");
            if let Some(url) = prot.license_urls.get(&System::Widevine) {
                let _ = writeln!(x, "        <dashif:Laurl>{}</dashif:Laurl>", super::dash::escape(url));
            }
            let _ = writeln!(
                x,
                "        <cenc:pssh>{}</cenc:pssh>\n      </ContentProtection>",
                b64::encode(&widevine_box(prot, &key.kid))
            );
        }
        System::PlayReady => {
            if let Some((pssh_box, pro)) = playready_parts(prot, key) {
                let _ = writeln!(
                    x,
                    "      <ContentProtection schemeIdUri=\"{PLAYREADY_SCHEME}\" value=\"MSPR 2.0\" cenc:default_KID=\"{uuid}\">\n        <cenc:pssh>{}</cenc:pssh>\n        <mspr:pro>{pro}</mspr:pro>\n      </ContentProtection>",
                    b64::encode(&pssh_box)
                );
            }
        }
        System::ClearKey | System::FairPlay => {}
    }
}

/// HLS key lines (`tag` = `EXT-X-KEY` or `EXT-X-SESSION-KEY`) for a SAMPLE-AES variant, one per
/// system (several KEYFORMATs may cover the same segments: RFC 8216 §4.3.2.4).
pub fn hls_keys(x: &mut String, tag: &str, prot: &Protection, key: &ContentKey) {
    let method = if prot.variant == Variant::Cbcs { "SAMPLE-AES" } else { "SAMPLE-AES-CTR" };
    let kid_hex = key.kid.hex();
    for s in &prot.systems {
        match s {
            System::ClearKey => {
                // shaka-player: `identity` with the raw key at our key URI. hls.js: the
                // `org.w3.clearkey` line, whose data URI must hold just the 16 KID bytes (hls.js
                // takes the first 16 bytes of it as the key id, over KEYID); the license URL
                // comes from the player's configuration. For SAMPLE-AES hls.js picks `identity`
                // first when both are present, so `?keyformat=clearkey` selects one.
                if prot.raw_key_delivery && prot.wants(HlsKeyFormat::Identity) {
                    let _ = writeln!(
                        x,
                        "#{tag}:METHOD={method},URI=\"{}\",KEYFORMAT=\"identity\",KEYFORMATVERSIONS=\"1\"",
                        prot.key_uri(&key.kid)
                    );
                }
                if prot.wants(HlsKeyFormat::ClearKey) {
                    let _ = writeln!(
                        x,
                        "#{tag}:METHOD={method},URI=\"data:text/plain;base64,{}\",KEYID=0x{kid_hex},KEYFORMAT=\"org.w3.clearkey\",KEYFORMATVERSIONS=\"1\"",
                        b64::encode(&key.kid.0)
                    );
                }
            }
            System::Widevine if !prot.wants(HlsKeyFormat::Widevine) => {}
            System::PlayReady if !prot.wants(HlsKeyFormat::PlayReady) => {}
            System::FairPlay if !prot.wants(HlsKeyFormat::FairPlay) => {}
            System::Widevine => {
                let _ = writeln!(
                    x,
                    "#{tag}:METHOD={method},URI=\"data:text/plain;base64,{}\",KEYID=0x{kid_hex},KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\",KEYFORMATVERSIONS=\"1\"",
                    b64::encode(&widevine_box(prot, &key.kid))
                );
            }
            System::PlayReady => {
                if let Some((_, pro)) = playready_parts(prot, key) {
                    let _ = writeln!(
                        x,
                        "#{tag}:METHOD={method},URI=\"data:text/plain;charset=UTF-16;base64,{pro}\",KEYFORMAT=\"com.microsoft.playready\",KEYFORMATVERSIONS=\"1\""
                    );
                }
            }
            // FairPlay is cbcs only; the skd:// URI names the key for the FairPlay key server.
            System::FairPlay if prot.variant == Variant::Cbcs => {
                let uri = match prot.license_urls.get(&System::FairPlay) {
                    Some(u) if u.contains("{kid}") => u.replace("{kid}", &kid_hex),
                    Some(u) => format!("{}{kid_hex}", u.trim_end_matches('/').to_owned() + "/"),
                    None => format!("skd://{kid_hex}"),
                };
                let _ = writeln!(
                    x,
                    "#{tag}:METHOD=SAMPLE-AES,URI=\"{uri}\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\""
                );
            }
            System::FairPlay => {}
        }
    }
}
