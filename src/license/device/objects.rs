//! The objects device licensing exchanges, as typed payloads (design §2). Origin objects are
//! JWS `ES256` with a `typ` and `v: 1`; an unknown `typ` or `v` is refused by whoever reads it.
//! Payload structs refuse unknown members, so a field added by mistake never passes silently.
//!
//! Room for chaining (issue 11): a root license reuses [`Binding`], [`Validity`] and the JWE
//! envelope with its own `typ`; leaves travel in the content, not here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Payload version of every object.
pub const V: u32 = 1;

/// `typ` of each object (JWS protected header).
pub mod typ {
    /// A device's signed request to the origin.
    pub const REQUEST: &str = "drm-origin/device-request+jws";
    /// The origin's device certificate.
    pub const CERTIFICATE: &str = "drm-origin/device-certificate+jws";
    /// A direct license: an asset's content keys wrapped to a device or domain key.
    pub const LICENSE: &str = "drm-origin/license+jws";
    /// A domain's private key wrapped to one member.
    pub const DOMAIN_KEY: &str = "drm-origin/domain-key+jws";
    /// A root license (issue 11): a chained policy's root key wrapped to a device.
    pub const ROOT: &str = "drm-origin/root-license+jws";
    /// The signed listing of a device's (or domain's) license folder.
    pub const INDEX: &str = "drm-origin/license-index+jws";
    /// A new origin signing key, vouched for by the previous one.
    pub const KEY_ANNOUNCEMENT: &str = "drm-origin/key-announcement+jws";
    /// An export file of domain-bound licenses (`.dlx`, plain JSON).
    pub const EXPORT: &str = "drm-origin/license-export";
}

/// Endpoint paths; a device request names its endpoint in `aud`, so a request signed for one
/// cannot be replayed at another.
pub mod path {
    /// Origin JWKS (and key announcements).
    pub const KEYS: &str = "/.drm/keys.json";
    /// Registration.
    pub const REGISTER: &str = "/.drm/device/register";
    /// Factory reset.
    pub const RESET: &str = "/.drm/device/reset";
    /// Revocation by the owner.
    pub const UNREGISTER: &str = "/.drm/device/unregister";
    /// Join (or create) a domain.
    pub const JOIN: &str = "/.drm/domain/join";
    /// Leave a domain.
    pub const LEAVE: &str = "/.drm/domain/leave";
    /// Online direct license.
    pub const LICENSE: &str = "/.drm/license";
    /// Root licenses of chained policies (acquire and renew).
    pub const ROOT: &str = "/.drm/root";
}

/// What a device request asks for (`act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// Register a new device (or re-register a reset one).
    Register,
    /// A direct license for one asset.
    License,
    /// Factory reset.
    Reset,
    /// Join or create a domain.
    Join,
    /// Leave a domain.
    Leave,
    /// Root licenses (acquire or renew).
    Root,
}

impl Act {
    /// The endpoint this act is sent to (its `aud`).
    pub fn path(self) -> &'static str {
        match self {
            Act::Register => path::REGISTER,
            Act::License => path::LICENSE,
            Act::Reset => path::RESET,
            Act::Join => path::JOIN,
            Act::Leave => path::LEAVE,
            Act::Root => path::ROOT,
        }
    }
}

/// A device request (JWS under the device's `sig` key; header `kid` = device id).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// [`V`].
    pub v: u32,
    /// What is asked.
    pub act: Act,
    /// Device id (a client-made UUID v4).
    pub dev: String,
    /// The device's generation (absent in a registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<u64>,
    /// Issued at (Unix seconds); must be within the origin's skew.
    pub iat: i64,
    /// Unique id, refused when seen before (replay).
    pub jti: String,
    /// The endpoint path.
    pub aud: String,
    /// Registration: the device's ECDH public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc: Option<Value>,
    /// Registration: the device's ECDSA public key (verifies this very request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<Value>,
    /// Registration: whether the client can chain licenses (issue 11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<bool>,
    /// License: the asset id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// License/join/leave: the domain id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// What a license or domain key is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// `device` or `domain`.
    pub kind: BindKind,
    /// Device or domain id.
    pub id: String,
    /// Device generation, or domain key version.
    pub gen: u64,
    /// RFC 7638 thumbprint of the key the content is wrapped to.
    pub thumb: String,
}

/// The two kinds of binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindKind {
    /// One device's `enc` key.
    Device,
    /// A domain key shared by its members.
    Domain,
}

/// A direct license (JWS payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// [`V`].
    pub v: u32,
    /// Asset id.
    pub asset: String,
    /// Policy name.
    pub pol: String,
    /// Who may open it.
    pub bind: Binding,
    /// Not before (Unix seconds, aligned to the validity period).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Validity period index: monotonic, so a client refuses a rollback to an older license.
    pub seq: i64,
    /// Key ids inside (hex), so a client finds the license for a track without opening it.
    pub kids: Vec<String>,
    /// JWE (ECDH-ES+A256KW, A256GCM) to the bound key; payload: [`KeySet`].
    pub key: String,
    /// Input digest: a keyed hash (master secret) of everything the file is made from; the
    /// writer skips a file whose digest is unchanged. Reveals nothing but equality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ih: Option<String>,
}

/// A root license (JWS payload): the root key of one version of a chained policy, wrapped to
/// the bound key. A renewal is the same key with a later `exp` (and `seq`), so every leaf under
/// that version plays again untouched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootLicense {
    /// [`V`].
    pub v: u32,
    /// Policy name.
    pub pol: String,
    /// Root-key id (`{policy}.{version}`), the `kid` of a leaf's recipient.
    pub rkid: String,
    /// Who may open it.
    pub bind: Binding,
    /// Not before.
    pub nbf: i64,
    /// Expiry: the leaves it opens stop playing after it.
    pub exp: i64,
    /// Validity period index (rollback check).
    pub seq: i64,
    /// JWE (ECDH-ES+A256KW, A256GCM) to the bound key; payload: [`RootKey`].
    pub key: String,
    /// Input digest (as in [`License`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ih: Option<String>,
}

/// The root key inside a root license: an `A256KW` JWK (WebCrypto imports it non-extractable).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKey {
    /// `oct`.
    pub kty: String,
    /// The root-key id.
    pub kid: String,
    /// `A256KW`.
    pub alg: String,
    /// The key, base64url of 32 bytes.
    pub k: String,
    /// `false`: not to be exported by a browser.
    pub ext: bool,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The content keys inside a license: a ClearKey JSON Web Key set (EME §9.1.4) plus each key's
/// class, and the asset again (authenticated by GCM).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    /// Asset id.
    pub asset: String,
    /// The keys.
    pub keys: Vec<OctKey>,
}

/// One content key (`kty: oct`), redacted in Debug.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OctKey {
    /// `oct`.
    pub kty: String,
    /// Key id, base64url of 16 bytes (ClearKey form).
    pub kid: String,
    /// The key, base64url of 16 bytes.
    pub k: String,
    /// Key class: video, sd, hd, uhd, audio, envelope.
    pub class: String,
}

impl std::fmt::Debug for OctKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OctKey").field("kid", &self.kid).field("class", &self.class).finish_non_exhaustive()
    }
}

/// A domain key for one member (JWS payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainKey {
    /// [`V`].
    pub v: u32,
    /// Domain id.
    pub domain: String,
    /// Key version (bumped when a member leaves).
    pub kv: u64,
    /// The member it is wrapped to.
    pub member: Binding,
    /// The domain's public key (licenses bound to the domain are wrapped to it).
    #[serde(rename = "pub")]
    pub public: Value,
    /// JWE to the member's `enc` key; payload: the domain's private JWK.
    pub key: String,
    /// Input digest (see [`License::ih`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ih: Option<String>,
}

/// One file of a license folder, as its index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// Path under the public root (`v1/d/{id}/{gen}/a/{asset}.lic`).
    pub path: String,
    /// SHA-256 of the file, base64url.
    pub sha256: String,
    /// Expiry of the object in it (domain keys have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Asset id, for licenses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Key ids (hex), for licenses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kids: Vec<String>,
}

/// A domain a device belongs to, as its index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDomain {
    /// Domain id.
    pub id: String,
    /// Current key version.
    pub kv: u64,
    /// This member's domain key file.
    pub dkey: String,
    /// The domain folder's index.
    pub index: String,
}

/// The signed listing of a license folder (written last).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// [`V`].
    pub v: u32,
    /// Whose folder.
    pub bind: Binding,
    /// The files.
    pub files: Vec<IndexEntry>,
    /// Domains the device belongs to (device folders only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<IndexDomain>,
    /// Input digest (see [`License::ih`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ih: Option<String>,
}

/// The origin's device certificate (JWS payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// [`V`].
    pub v: u32,
    /// The origin (its signing key id at registration).
    pub iss: String,
    /// Device id.
    pub dev: String,
    /// Generation.
    pub gen: u64,
    /// Owner (token subject).
    pub sub: String,
    /// ECDH public key.
    pub enc: Value,
    /// ECDSA public key.
    pub sig: Value,
    /// Thumbprint of `enc`.
    pub thumb: String,
    /// Whether the device chains licenses.
    pub chain: bool,
    /// Issued at.
    pub iat: i64,
}

/// A new origin signing key, vouched for by the key before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAnnouncement {
    /// [`V`].
    pub v: u32,
    /// The new key's id (its thumbprint).
    pub kid: String,
    /// The new public key.
    pub jwk: Value,
}

/// `.dlx` export file: domain-bound licenses a member hands to another member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// [`V`].
    pub v: u32,
    /// [`typ::EXPORT`].
    pub typ: String,
    /// Compact JWS licenses.
    pub items: Vec<String>,
}

/// Whether `id` is a device or domain id we accept: a UUID in its canonical lowercase form
/// (it becomes a path component of the license folder).
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// Whether `jti` is acceptable: 16 to 64 characters of base64url/hex.
pub fn valid_jti(jti: &str) -> bool {
    (16..=64).contains(&jti.len()) && jti.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// A new random UUID v4 (lowercase, hyphenated).
pub fn new_uuid() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    if let Some(x) = b.get_mut(6) {
        *x = (*x & 0x0f) | 0x40;
    }
    if let Some(x) = b.get_mut(8) {
        *x = (*x & 0x3f) | 0x80;
    }
    let h = crate::crypto::key::hex(&b);
    let part = |a: usize, z: usize| h.get(a..z).unwrap_or("");
    Ok(format!("{}-{}-{}-{}-{}", part(0, 8), part(8, 12), part(12, 16), part(16, 20), part(20, 32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let u = new_uuid().unwrap();
        assert!(valid_id(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id(&u.to_uppercase()));
        assert!(!valid_id(&u[..35]));
        assert!(valid_jti("abcdefghijklmnop") && !valid_jti("short") && !valid_jti("has space in it!"));
    }

    #[test]
    fn unknown_members_are_refused() {
        let ok = r#"{"v":1,"act":"reset","dev":"x","gen":1,"iat":0,"jti":"j","aud":"/"}"#;
        assert!(serde_json::from_str::<DeviceRequest>(ok).is_ok());
        let extra = r#"{"v":1,"act":"reset","dev":"x","gen":1,"iat":0,"jti":"j","aud":"/","admin":true}"#;
        assert!(serde_json::from_str::<DeviceRequest>(extra).is_err());
        let bad_act = r#"{"v":1,"act":"renew","dev":"x","iat":0,"jti":"j","aud":"/"}"#;
        assert!(serde_json::from_str::<DeviceRequest>(bad_act).is_err());
    }

    #[test]
    fn oct_key_debug_hides_the_key() {
        let k = OctKey { kty: "oct".into(), kid: "kid".into(), k: "SECRETSECRET".into(), class: "video".into() };
        assert!(!format!("{k:?}").contains("SECRET"));
    }
}
