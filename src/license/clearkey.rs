//! W3C ClearKey license messages (EME §9.1.3–9.1.4, spec-notes §5): a request lists base64url
//! KIDs and a session type; a license is a JSON Web Key set.

use serde::{Deserialize, Serialize};

use crate::crypto::{Key, KeyId};
use crate::drm::b64;

/// A parsed license request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Requested key ids.
    pub kids: Vec<KeyId>,
    /// `temporary` or `persistent-license`.
    pub persistent: bool,
}

#[derive(Deserialize)]
struct RawRequest {
    kids: Vec<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// Parses a request body; the error is a stable reason word.
pub fn parse_request(body: &[u8]) -> Result<Request, &'static str> {
    if body.len() > 64 * 1024 {
        return Err("request_too_large");
    }
    let raw: RawRequest = serde_json::from_slice(body).map_err(|_| "malformed_request")?;
    if raw.kids.is_empty() || raw.kids.len() > 64 {
        return Err("malformed_request");
    }
    let mut kids = Vec::with_capacity(raw.kids.len());
    for k in &raw.kids {
        let bytes = b64::decode_url(k).or_else(|| b64::decode(k)).ok_or("malformed_kid")?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| "malformed_kid")?;
        kids.push(KeyId(arr));
    }
    let persistent = match raw.kind.as_deref() {
        None | Some("temporary") => false,
        Some("persistent-license") => true,
        Some(_) => return Err("unknown_session_type"),
    };
    Ok(Request { kids, persistent })
}

#[derive(Serialize)]
struct Jwk {
    kty: &'static str,
    kid: String,
    k: String,
}

#[derive(Serialize)]
struct License {
    keys: Vec<Jwk>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The license body for `keys`.
pub fn license(keys: &[(KeyId, &Key)], persistent: bool) -> String {
    let l = License {
        keys: keys
            .iter()
            .map(|(kid, key)| Jwk { kty: "oct", kid: b64::encode_url(&kid.0), k: b64::encode_url(key.bytes()) })
            .collect(),
        kind: if persistent { "persistent-license" } else { "temporary" },
    };
    serde_json::to_string(&l).unwrap_or_else(|_| "{\"keys\":[]}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_notes_10_5_vector() {
        let req = parse_request(br#"{"kids":["i6lK3m65RJ20T6W-769DsA"],"type":"temporary"}"#).unwrap();
        let kid = KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap();
        assert_eq!(req, Request { kids: vec![kid], persistent: false });
        let key = Key::parse_hex("dbfd6922c321c4bb486f4a1c44097ed6").unwrap();
        assert_eq!(
            license(&[(kid, &key)], false),
            r#"{"keys":[{"kty":"oct","kid":"i6lK3m65RJ20T6W-769DsA","k":"2_1pIsMhxLtIb0ocRAl-1g"}],"type":"temporary"}"#
        );
    }

    #[test]
    fn bad_requests_have_reasons() {
        assert_eq!(parse_request(b"nope"), Err("malformed_request"));
        assert_eq!(parse_request(br#"{"kids":[]}"#), Err("malformed_request"));
        assert_eq!(parse_request(br#"{"kids":["AAAA"]}"#), Err("malformed_kid"));
        assert_eq!(parse_request(br#"{"kids":["i6lK3m65RJ20T6W-769DsA"],"type":"x"}"#), Err("unknown_session_type"));
        assert!(
            parse_request(br#"{"kids":["i6lK3m65RJ20T6W-769DsA"],"type":"persistent-license"}"#).unwrap().persistent
        );
    }
}
