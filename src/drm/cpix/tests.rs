//! Round trips, signalling against the encoders, malformed documents, no panics.

use std::collections::BTreeMap;

use super::import::{rule_class, RawRule};
use super::*;
use crate::drm::{b64, playready, pssh, widevine};

fn kid(n: u8) -> KeyId {
    KeyId([0x8b, 0xa9, 0x4a, 0xde, 0x6e, 0xb9, 0x44, 0x9d, 0xb4, 0x4f, 0xa5, 0xbe, 0xef, 0xaf, 0x43, n])
}

fn key(n: u8) -> Key {
    Key::new([0xdb, 0xfd, 0x69, 0x22, 0xc3, 0x21, 0xc4, 0xbb, 0x48, 0x6f, 0x4a, 0x1c, 0x44, 0x09, 0x7e, n])
}

fn all_classes() -> Vec<CpixKey> {
    KeyClass::ALL.iter().zip(1u8..).map(|(c, n)| CpixKey::new(kid(n), key(n), *c)).collect()
}

fn urls() -> BTreeMap<System, String> {
    BTreeMap::from([
        (System::PlayReady, "https://pr.example/rightsmanager.asmx?a=1&b=2".to_owned()),
        (System::Widevine, "https://wv.example/license".to_owned()),
        (System::ClearKey, "https://ck.example/ck".to_owned()),
        (System::FairPlay, "skd://fps.example/{kid}".to_owned()),
    ])
}

const SYSTEMS: [System; 4] = [System::ClearKey, System::Widevine, System::PlayReady, System::FairPlay];

fn doc(body: &str) -> String {
    format!("<cpix:CPIX xmlns:cpix=\"{NS_CPIX}\" xmlns:pskc=\"{NS_PSKC}\" version=\"2.3\">{body}</cpix:CPIX>")
}

fn content_key(kid: &str, value: &str) -> String {
    format!(
        "<cpix:ContentKey kid=\"{kid}\"><cpix:Data><pskc:Secret><pskc:PlainValue>{value}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey>"
    )
}

const KID: &str = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0";
const KEY_B64: &str = "2/1pIsMhxLtIb0ocRAl+1g==";

fn err(xml: &str) -> String {
    import(xml).unwrap_err().to_string()
}

#[test]
fn round_trip_every_class_both_schemes() {
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let keys = all_classes();
        let xml = export("asset-42", &keys, &SYSTEMS, scheme, &urls()).unwrap();
        let back = import(&xml).unwrap();
        assert_eq!(back.len(), keys.len());
        for (a, b) in keys.iter().zip(&back) {
            assert_eq!((a.kid, a.key.bytes(), a.class), (b.kid, b.key.bytes(), b.class), "{xml}");
            let want = (a.class != KeyClass::Envelope).then_some(scheme);
            assert_eq!(b.scheme, want);
        }
    }
}

#[test]
fn round_trip_keeps_scheme_and_iv_per_key() {
    let mut k = CpixKey::new(kid(1), key(1), KeyClass::Hd);
    k.scheme = Some(Scheme::Cbcs);
    k.explicit_iv = Some(*b"0123456789abcdef");
    let xml = export("a", &[k.clone()], &[], Scheme::Cenc, &BTreeMap::new()).unwrap();
    assert!(xml.contains("commonEncryptionScheme=\"cbcs\""), "{xml}");
    assert_eq!(import(&xml).unwrap(), vec![k]);
}

#[test]
fn export_shape() {
    let keys = [CpixKey::new(KeyId::parse(KID).unwrap(), key(0xd6), KeyClass::Sd)];
    let xml = export("asset & <42>", &keys, &SYSTEMS, Scheme::Cbcs, &urls()).unwrap();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\"")
    );
    assert!(xml.contains(" contentId=\"asset &amp; &lt;42&gt;\" version=\"2.3\">"));
    assert!(xml.contains(&format!("<cpix:ContentKey kid=\"{KID}\" commonEncryptionScheme=\"cbcs\">")));
    // spec-notes §9 example key.
    assert!(xml.contains(&format!("<pskc:PlainValue>{KEY_B64}</pskc:PlainValue>")));
    assert!(xml.contains(&format!(
        "<cpix:ContentKeyUsageRule kid=\"{KID}\" intendedTrackType=\"SD\">\n      <cpix:VideoFilter maxPixels=\"442368\"/>"
    )));
    for id in [CLEARKEY_ID, WIDEVINE_ID, PLAYREADY_ID, FAIRPLAY_ID] {
        assert!(xml.contains(&format!("<cpix:DRMSystem kid=\"{KID}\" systemId=\"{id}\">")), "{id}");
    }
    // Lists in schema order.
    let at = |s: &str| xml.find(s).unwrap();
    assert!(at("<cpix:ContentKeyList>") < at("<cpix:DRMSystemList>"));
    assert!(at("<cpix:DRMSystemList>") < at("<cpix:ContentKeyUsageRuleList>"));
}

/// The base64 payloads of `element` under the DRMSystem of `system_id`.
fn payloads(xml: &str, system_id: &str, element: &str) -> Vec<String> {
    let start = xml.find(&format!("systemId=\"{system_id}\"")).unwrap();
    let end = start + xml[start..].find("</cpix:DRMSystem>").unwrap();
    let part = &xml[start..end];
    let open = format!("<cpix:{element}");
    part.match_indices(&open)
        .map(|(i, _)| {
            let body = &part[i..];
            let gt = body.find('>').unwrap() + 1;
            let close = body.find("</").unwrap();
            String::from_utf8(b64::decode(&body[gt..close]).unwrap())
                .unwrap_or_else(|e| format!("{:?}", e.into_bytes()))
        })
        .collect()
}

#[test]
fn widevine_signalling_matches_encoders() {
    let k = KeyId::parse(KID).unwrap();
    let xml =
        export("a", &[CpixKey::new(k, key(1), KeyClass::Video)], &[System::Widevine], Scheme::Cbcs, &urls()).unwrap();
    let pssh_b64 = b64::encode(&widevine::pssh_box(&[k], Scheme::Cbcs, None, None));
    // spec-notes §7: the cbcs variant of vector 10.2.
    assert_eq!(pssh_b64, "AAAAOHBzc2gAAAAA7e+LqXnWSs6jyCfc1R0h7QAAABgSEIupSt5uuUSdtE+lvu+vQ7BI88aJmwY=");
    assert!(xml.contains(&format!("<cpix:PSSH>{pssh_b64}</cpix:PSSH>")));
    assert_eq!(
        payloads(&xml, WIDEVINE_ID, "ContentProtectionData"),
        [format!("<pssh xmlns=\"urn:mpeg:cenc:2013\">{pssh_b64}</pssh><dashif:Laurl xmlns:dashif=\"https://dashif.org/CPS\">https://wv.example/license</dashif:Laurl>")]
    );
    let attrs = format!("METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,{pssh_b64}\",KEYID=0x8ba94ade6eb9449db44fa5beefaf43b0,KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\",KEYFORMATVERSIONS=\"1\"");
    assert_eq!(
        payloads(&xml, WIDEVINE_ID, "HLSSignalingData"),
        [format!("#EXT-X-KEY:{attrs}"), format!("#EXT-X-SESSION-KEY:{attrs}")]
    );
    assert!(xml.contains("<cpix:HLSSignalingData playlist=\"media\">") && xml.contains("playlist=\"master\""));
}

#[test]
fn playready_signalling_matches_encoders() {
    let k = KeyId::parse(KID).unwrap();
    let ck = key(1);
    let la = "https://pr.example/rightsmanager.asmx?a=1&b=2";
    let xml = export("a", &[CpixKey::new(k, ck.clone(), KeyClass::Video)], &[System::PlayReady], Scheme::Cenc, &urls())
        .unwrap();
    let want_box = playready::pssh_box(Scheme::Cenc, &[(k, &ck)], Some(la)).unwrap();
    let want_pro = playready::pro_base64(Scheme::Cenc, &[(k, &ck)], Some(la)).unwrap();
    assert!(xml.contains(&format!("<cpix:PSSH>{}</cpix:PSSH>", b64::encode(&want_box))));
    assert_eq!(
        payloads(&xml, PLAYREADY_ID, "ContentProtectionData"),
        [format!(
            "<pssh xmlns=\"urn:mpeg:cenc:2013\">{}</pssh><pro xmlns=\"urn:microsoft:playready\">{want_pro}</pro>",
            b64::encode(&want_box)
        )]
    );
    let hls = payloads(&xml, PLAYREADY_ID, "HLSSignalingData");
    assert_eq!(hls[0], format!("#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"data:text/plain;charset=UTF-16;base64,{want_pro}\",KEYFORMAT=\"com.microsoft.playready\",KEYFORMATVERSIONS=\"1\""));
    // The LA_URL's ampersand is escaped once, inside the UTF-16 header.
    let header = playready::parse_pro(&b64::decode(&want_pro).unwrap()).unwrap();
    assert!(header.contains("<LA_URL>https://pr.example/rightsmanager.asmx?a=1&amp;b=2</LA_URL>"));
}

#[test]
fn clearkey_and_fairplay_signalling() {
    let k = KeyId::parse(KID).unwrap();
    let keys = [CpixKey::new(k, key(1), KeyClass::Video)];
    let xml = export("a", &keys, &[System::ClearKey, System::FairPlay], Scheme::Cbcs, &urls()).unwrap();
    let common = b64::encode(&pssh::common(&[k]));
    assert!(xml.contains(&format!("<cpix:PSSH>{common}</cpix:PSSH>")));
    let cpd = payloads(&xml, CLEARKEY_ID, "ContentProtectionData");
    assert!(
        cpd[0].starts_with(
            "<dashif:Laurl xmlns:dashif=\"https://dashif.org/CPS\">https://ck.example/ck</dashif:Laurl><clearkey:Laurl"
        ),
        "{cpd:?}"
    );
    assert!(cpd[0].ends_with(&format!("<pssh xmlns=\"urn:mpeg:cenc:2013\">{common}</pssh>")));
    assert_eq!(
        payloads(&xml, FAIRPLAY_ID, "HLSSignalingData")[0],
        "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://fps.example/8ba94ade6eb9449db44fa5beefaf43b0\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\""
    );
    assert!(payloads(&xml, FAIRPLAY_ID, "PSSH").is_empty());
    // FairPlay is cbcs only: nothing for cenc.
    let xml = export("a", &keys, &[System::FairPlay], Scheme::Cenc, &urls()).unwrap();
    assert!(!xml.contains("DRMSystem"), "{xml}");
    // Without a URL: skd://<kid>.
    let xml = export("a", &keys, &[System::FairPlay], Scheme::Cbcs, &BTreeMap::new()).unwrap();
    assert!(
        payloads(&xml, FAIRPLAY_ID, "HLSSignalingData")[0].contains("URI=\"skd://8ba94ade6eb9449db44fa5beefaf43b0\"")
    );
}

#[test]
fn envelope_key_has_no_scheme_or_drm_system() {
    let keys = [CpixKey::new(kid(1), key(1), KeyClass::Envelope)];
    let xml = export("a", &keys, &SYSTEMS, Scheme::Cbcs, &urls()).unwrap();
    assert!(!xml.contains("commonEncryptionScheme") && !xml.contains("DRMSystem"), "{xml}");
    assert!(xml.contains("intendedTrackType=\"ENVELOPE\">\n      <cpix:LabelFilter label=\"hls-aes-128\"/>"));
}

#[test]
fn export_refuses_what_import_would() {
    let none = BTreeMap::new();
    let dup = [CpixKey::new(kid(1), key(1), KeyClass::Sd), CpixKey::new(kid(1), key(2), KeyClass::Hd)];
    assert!(export("a", &dup, &[], Scheme::Cenc, &none).unwrap_err().to_string().contains("duplicate KID"));
    // Two keys of one class are fine for CPIX; by_class is where an asset refuses them.
    let same = [CpixKey::new(kid(1), key(1), KeyClass::Sd), CpixKey::new(kid(2), key(2), KeyClass::Sd)];
    let back = import(&export("a", &same, &[], Scheme::Cenc, &none).unwrap()).unwrap();
    assert_eq!(
        back.iter().map(|k| (k.kid, k.class)).collect::<Vec<_>>(),
        [(kid(1), KeyClass::Sd), (kid(2), KeyClass::Sd)]
    );
    let e = by_class(&back).unwrap_err().to_string();
    assert!(e.contains("has class sd too"), "{e}");
    let all = all_classes();
    let m = by_class(&all).unwrap();
    assert_eq!(m.len(), 6);
    assert_eq!(m[&KeyClass::Audio].kid, kid(5));
    assert!(export("a\u{1}", &[], &[], Scheme::Cenc, &none).is_err());
    let bad_url = BTreeMap::from([(System::PlayReady, "https://x/\u{2}".to_owned())]);
    let one = [CpixKey::new(kid(1), key(1), KeyClass::Video)];
    let e = export("a", &one, &[System::PlayReady], Scheme::Cenc, &bad_url).unwrap_err();
    assert!(matches!(e, CpixError::PlayReady { .. }), "{e}");
    let fp = BTreeMap::from([(System::FairPlay, "skd://x\"y".to_owned())]);
    assert!(export("a", &one, &[System::FairPlay], Scheme::Cbcs, &fp).is_err());
    let many: Vec<CpixKey> = (0..=MAX_KEYS).map(|_| CpixKey::new(kid(1), key(1), KeyClass::Video)).collect();
    assert_eq!(export("a", &many, &[], Scheme::Cenc, &none), Err(CpixError::TooManyKeys));
}

#[test]
fn debug_and_errors_never_show_the_key() {
    let k = CpixKey::new(KeyId::parse(KID).unwrap(), key(0xd6), KeyClass::Video);
    let shown = format!("{k:?}");
    assert!(shown.contains(KID) && !shown.contains("dbfd") && !shown.contains("2/1p"), "{shown}");
    for bad in [
        doc(&format!("<cpix:ContentKeyList>{}</cpix:ContentKeyList>", content_key(KID, "2/1pIsMhxLtIb0ocRAl+"))),
        doc(&format!("<cpix:ContentKeyList>{}</cpix:ContentKeyList>", content_key(KID, "2/1pIsMhxLtIb0ocRAl+1g=!"))),
        doc(&format!(
            "<cpix:ContentKeyList>{}</cpix:ContentKeyList>",
            content_key(KID, "2/1pIsMhxLtIb0ocRAl+1g==&bogus;")
        )),
    ] {
        let e = import(&bad).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("2/1p") && !shown.contains("dbfd"), "{shown}");
    }
}

#[test]
fn imports_typical_key_server_output() {
    // Default namespace, other prefixes, pretty-printed base64, SPEKE-style extras.
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- from a key server -->
<CPIX xmlns="urn:dashif:org:cpix" xmlns:p="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:speke="urn:aws:amazon:com:speke" contentId="c1" version="2.3">
  <ContentKeyList>
<ContentKey kid="{}" commonEncryptionScheme="cenc" explicitIV="AAECAwQFBgcICQoLDA0ODw==">
  <Data><p:Secret><p:PlainValue>
    2/1pIsMhxLtI
    b0ocRAl+1g==
  </p:PlainValue></p:Secret></Data>
</ContentKey>
<ContentKey kid="{}"><Data><p:Secret><p:PlainValue><![CDATA[AAAAAAAAAAAAAAAAAAAAAA==]]></p:PlainValue></p:Secret></Data></ContentKey>
<ContentKey kid="{}"><Data><p:Secret><p:PlainValue>&#65;AAAAAAAAAAAAAAAAAAAAA==</p:PlainValue></p:Secret></Data></ContentKey>
  </ContentKeyList>
  <DRMSystemList>
<DRMSystem kid="{}" systemId="{WIDEVINE_ID}"><PSSH>AAAA</PSSH><speke:ProtectionHeader/></DRMSystem>
  </DRMSystemList>
  <ContentKeyPeriodList/>
  <ContentKeyUsageRuleList>
<ContentKeyUsageRule kid="{}" intendedTrackType="AUDIO"><AudioFilter maxChannels="2"/></ContentKeyUsageRule>
<ContentKeyUsageRule kid="{}" intendedTrackType="UHD"><VideoFilter minPixels="2073601" hdr="true"/><BitrateFilter minBitrate="1"/></ContentKeyUsageRule>
  </ContentKeyUsageRuleList>
  <UpdateHistoryItemList/>
</CPIX>"#,
        KID.to_uppercase(),
        "00000000-0000-0000-0000-000000000002",
        "00000000-0000-0000-0000-000000000003",
        KID,
        "00000000-0000-0000-0000-000000000002",
        "00000000-0000-0000-0000-000000000003",
    );
    let keys = import(&xml).unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0].kid, KeyId::parse(KID).unwrap());
    assert_eq!(keys[0].key.bytes(), key(0xd6).bytes());
    assert_eq!((keys[0].class, keys[0].scheme), (KeyClass::Video, Some(Scheme::Cenc)));
    assert_eq!(keys[0].explicit_iv, Some([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]));
    assert_eq!((keys[1].class, keys[1].key.bytes()), (KeyClass::Audio, &[0u8; 16]));
    assert_eq!((keys[2].class, keys[2].key.bytes()[0]), (KeyClass::Uhd, 0));
}

#[test]
fn classes_from_rules() {
    let rule = |tt: Option<&str>, video: &[(Option<u64>, Option<u64>)], audio, envelope| {
        rule_class(&RawRule { kid: None, track_type: tt.map(str::to_owned), video: video.to_vec(), audio, envelope })
    };
    assert_eq!(rule(None, &[(None, Some(SD_MAX_PIXELS))], false, false), KeyClass::Sd);
    assert_eq!(rule(None, &[(None, Some(1024 * 576))], false, false), KeyClass::Sd);
    assert_eq!(rule(None, &[(Some(SD_MAX_PIXELS + 1), Some(HD_MAX_PIXELS))], false, false), KeyClass::Hd);
    assert_eq!(rule(None, &[(None, Some(1280 * 720))], false, false), KeyClass::Hd);
    assert_eq!(rule(None, &[(Some(HD_MAX_PIXELS + 1), None)], false, false), KeyClass::Uhd);
    // HD and UHD in one key: every resolution above SD is the video class's fallback.
    assert_eq!(rule(None, &[(Some(SD_MAX_PIXELS + 1), None)], false, false), KeyClass::Video);
    // OR of two video filters: SD ∪ HD → up to 1080.
    assert_eq!(
        rule(None, &[(None, Some(SD_MAX_PIXELS)), (Some(SD_MAX_PIXELS + 1), Some(HD_MAX_PIXELS))], false, false),
        KeyClass::Hd
    );
    assert_eq!(rule(Some("UHD"), &[(None, None)], false, false), KeyClass::Video);
    assert_eq!(rule(Some("ALL"), &[(None, None)], true, false), KeyClass::Video);
    assert_eq!(rule(Some("VIDEO"), &[], true, false), KeyClass::Audio);
    for (tt, c) in [
        ("audio", KeyClass::Audio),
        ("SD", KeyClass::Sd),
        ("HD1", KeyClass::Hd),
        ("UHD2", KeyClass::Uhd),
        ("ENVELOPE", KeyClass::Envelope),
        ("ANY", KeyClass::Video),
    ] {
        assert_eq!(rule(Some(tt), &[], false, false), c, "{tt}");
    }
    assert_eq!(rule(Some("AUDIO"), &[], false, true), KeyClass::Envelope);
}

#[test]
fn one_key_under_audio_and_video_rules_is_video() {
    let xml = doc(&format!(
        "<cpix:ContentKeyList>{}</cpix:ContentKeyList><cpix:ContentKeyUsageRuleList>\
         <cpix:ContentKeyUsageRule kid=\"{KID}\" intendedTrackType=\"AUDIO\"><cpix:AudioFilter/></cpix:ContentKeyUsageRule>\
         <cpix:ContentKeyUsageRule kid=\"{KID}\" intendedTrackType=\"VIDEO\"><cpix:VideoFilter/></cpix:ContentKeyUsageRule>\
         </cpix:ContentKeyUsageRuleList>",
        content_key(KID, KEY_B64)
    ));
    assert_eq!(import(&xml).unwrap()[0].class, KeyClass::Video);
}

#[test]
fn malformed_documents() {
    let list = |inner: &str| doc(&format!("<cpix:ContentKeyList>{inner}</cpix:ContentKeyList>"));
    let good = content_key(KID, KEY_B64);
    let rules = |inner: &str| {
        doc(&format!(
            "<cpix:ContentKeyList>{good}</cpix:ContentKeyList><cpix:ContentKeyUsageRuleList>{inner}</cpix:ContentKeyUsageRuleList>"
        ))
    };
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "no root element"),
        ("<cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\">".into(), "document ends inside"),
        (doc("<cpix:ContentKeyList></cpix:ContentKey>"), "malformed CPIX XML"),
        (doc("") + "<x/>", "more than one root"),
        (doc("") + "junk", "text outside the root"),
        ("<CPIX/>".into(), "root element <CPIX>"),
        ("<cpix:CPIX xmlns:cpix=\"urn:other\"/>".into(), "root element <CPIX>"),
        ("<q:CPIX/>".into(), "not declared"),
        (format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{}", doc("")), "DOCTYPE"),
        (list("<cpix:ContentKey/>"), "ContentKey@kid: missing"),
        (list(&content_key("8ba94ade6eb9449db44fa5beefaf43b0", KEY_B64)), "ContentKey@kid: \"8ba94ade6eb9449db44fa5beefaf43b0\" is not a UUID"),
        (list(&content_key("8ba94ade-6eb9-449d-b44f-a5beefaf43bx", KEY_B64)), "is not a UUID"),
        (list(&content_key(KID, "AAAA")), "3 bytes, not a 16-byte AES-128 key"),
        (list(&content_key(KID, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")), "20 bytes"),
        (list(&content_key(KID, "!!!!")), "PlainValue: not base64"),
        (list(&content_key(KID, "")), "not a 16-byte"),
        (list(&format!("{good}{good}")), "duplicate KID"),
        (list(&format!("<cpix:ContentKey kid=\"{KID}\"/>")), "no Data/Secret/PlainValue"),
        (list(&format!("<cpix:ContentKey kid=\"{KID}\"><cpix:Data><pskc:Secret><pskc:EncryptedValue/></pskc:Secret></cpix:Data></cpix:ContentKey>")), "encrypted CPIX keys are not supported"),
        (list(&format!("<cpix:ContentKey kid=\"{KID}\"><cpix:Data><pskc:Secret><pskc:PlainValue>{KEY_B64}</pskc:PlainValue><pskc:PlainValue>{KEY_B64}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey>")), "appears twice"),
        (list(&format!("<cpix:ContentKey kid=\"{KID}\" dependsOnKey=\"{KID}\"/>")), "key hierarchy is not supported"),
        (list(&format!("<cpix:ContentKey kid=\"{KID}\" commonEncryptionScheme=\"cens\"/>")), "commonEncryptionScheme: \"cens\" is not cenc or cbcs"),
        (list(&format!("<cpix:ContentKey kid=\"{KID}\" explicitIV=\"AAAA\"/>")), "explicitIV: 3 bytes, not 16"),
        (list(&format!("<cpix:ContentKey kid=\"{KID}\" kid=\"{KID}\"/>")), "attribute of <ContentKey>"),
        (rules("<cpix:ContentKeyUsageRule kid=\"00000000-0000-0000-0000-000000000001\"/>"), "ContentKeyUsageRule@kid 00000000-0000-0000-0000-000000000001: no ContentKey has this KID"),
        (rules("<cpix:ContentKeyUsageRule/>"), "ContentKeyUsageRule@kid: missing"),
        (rules(&format!("<cpix:ContentKeyUsageRule kid=\"{KID}\"><cpix:KeyPeriodFilter periodId=\"p\"/></cpix:ContentKeyUsageRule>")), "key rotation is not supported"),
        (rules(&format!("<cpix:ContentKeyUsageRule kid=\"{KID}\"><cpix:SpatialFilter/></cpix:ContentKeyUsageRule>")), "SpatialFilter: unknown filter"),
        (rules(&format!("<cpix:ContentKeyUsageRule kid=\"{KID}\"><cpix:VideoFilter maxPixels=\"-1\"/></cpix:ContentKeyUsageRule>")), "VideoFilter@maxPixels: not a non-negative integer"),
        (doc(&format!("<cpix:ContentKeyList>{good}</cpix:ContentKeyList><cpix:DRMSystemList><cpix:DRMSystem kid=\"00000000-0000-0000-0000-000000000009\" systemId=\"{WIDEVINE_ID}\"/></cpix:DRMSystemList>")), "DRMSystem@kid 00000000-0000-0000-0000-000000000009: no ContentKey"),
        (doc(&format!("<cpix:ContentKeyList>{good}</cpix:ContentKeyList><cpix:DRMSystemList><cpix:DRMSystem kid=\"{KID}\" systemId=\"widevine\"/></cpix:DRMSystemList>")), "DRMSystem@systemId"),
        (list(&"<a>".repeat(70)), "nested deeper"),
    ];
    for (xml, want) in cases {
        let got = err(&xml);
        assert!(got.contains(want), "{xml}\n  → {got}\n  wanted {want:?}");
    }
}

#[test]
fn bounds() {
    let big = " ".repeat(MAX_DOCUMENT_BYTES + 1);
    assert_eq!(import(&big), Err(CpixError::TooLarge(MAX_DOCUMENT_BYTES + 1)));
    let keys: String =
        (0..=MAX_KEYS).map(|i| content_key(&format!("00000000-0000-0000-0000-{i:012x}"), KEY_B64)).collect();
    let xml = doc(&format!("<cpix:ContentKeyList>{keys}</cpix:ContentKeyList>"));
    assert_eq!(import(&xml), Err(CpixError::TooManyKeys));
    // Exactly MAX_KEYS keys: accepted, and export writes them back.
    let at_limit: Vec<CpixKey> =
        import(&xml.replacen(&content_key("00000000-0000-0000-0000-000000000000", KEY_B64), "", 1)).unwrap();
    assert_eq!(at_limit.len(), MAX_KEYS);
    let again = export("a", &at_limit, &[System::Widevine], Scheme::Cenc, &BTreeMap::new()).unwrap();
    assert_eq!(import(&again).unwrap().len(), MAX_KEYS);
}

use crate::test_rng::Rng;

#[test]
fn no_panic_on_mutated_documents() {
    let seed = export("asset", &all_classes(), &SYSTEMS, Scheme::Cbcs, &urls()).unwrap().into_bytes();
    let tokens: [&[u8]; 12] =
        [b"<", b">", b"/>", b"\"", b"&", b"&#0;", b"]]>", b"<![CDATA[", b"xmlns:x=\"y\" ", b"cpix:", b"=", b"\xff"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut doc = seed.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(doc.len());
            match rng.below(5) {
                0 => doc[at] = rng.next() as u8,
                1 => {
                    let end = (at + rng.below(64)).min(doc.len());
                    doc.drain(at..end);
                }
                2 => {
                    let t = tokens[rng.below(tokens.len())];
                    doc.splice(at..at, t.iter().copied());
                }
                3 => doc.truncate(at),
                _ => {
                    let from = rng.below(doc.len());
                    let len = rng.below(200).min(doc.len() - from);
                    let chunk = doc[from..from + len].to_vec();
                    doc.splice(at..at, chunk);
                }
            }
            if doc.is_empty() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&doc);
        if let Ok(keys) = import(&text) {
            accepted += 1;
            assert!(keys.len() <= KeyClass::ALL.len() + 2);
        }
    }
    // Some mutations hit only whitespace or base64 payloads of DRM signalling.
    assert!(accepted > 0);
}

#[test]
fn no_panic_on_random_bytes() {
    let mut rng = Rng(42);
    for n in 0..2000 {
        let bytes: Vec<u8> = (0..rng.below(n % 300 + 1)).map(|_| rng.next() as u8).collect();
        let _ = import(&String::from_utf8_lossy(&bytes));
        let ascii: String =
            bytes.iter().map(|b| char::from(b"<>/=\"' cpix:CPIXabc&;#x"[usize::from(*b) % 23])).collect();
        let _ = import(&ascii);
    }
}

#[test]
fn class_names() {
    for c in KeyClass::ALL {
        assert_eq!(KeyClass::parse(c.as_str()), Some(c));
        assert_eq!(c.to_string(), c.as_str());
    }
    assert_eq!(KeyClass::parse("HD"), None);
}
