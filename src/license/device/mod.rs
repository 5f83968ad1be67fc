//! Device-bound licensing (issue 10; design in `shared/device-licensing.md`): devices register
//! a key pair, and the origin issues licenses whose content keys are wrapped to that device (or
//! to a domain of devices), signed, valid for a period, online and **pre-generated into a folder
//! any static HTTP server can host**.
//!
//! * [`jose`]: JWS ES256, JWE ECDH-ES+A256KW/A256GCM, JWKs (P-256).
//! * [`objects`]: the payloads (requests, certificate, license, domain key, index, export).
//! * [`keys`]: the origin's master secret and signing keyring (and the derived root keys).
//! * [`leaf`]: chained policies' leaf licenses, carried in the content (issue 11).
//! * [`registry`]: devices, domains, members and the replay table (SQLite or PostgreSQL).
//! * [`issue`]: which assets a device may have, and the license objects for them.
//! * [`writer`]: the static license folder (atomic, deterministic, skipping unchanged files).
//! * [`service`]: the operations behind the endpoints (register, reset, unregister, join,
//!   leave, license), independent of HTTP; `http::device` maps them to requests and
//!   `http::error` maps every [`DeviceError`] to its status.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod issue;
pub mod jose;
pub mod keys;
pub mod leaf;
pub mod objects;
pub mod registry;
pub mod service;
pub mod writer;

pub use service::{DeviceSettings, Devices};

use crate::license::Denied;

/// Why a device-licensing request is refused. Each has a stable reason word; the status is
/// decided in `http::error` alone. Details (never secrets) are for the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Body above the limit.
    #[error("request too large")]
    TooLarge,
    /// Not the JSON / JWS / fields we accept.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// A public key that is not a P-256 JWK.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// `iat` outside the allowed clock skew.
    #[error("request issued outside the allowed clock skew")]
    StaleRequest,
    /// The bearer token was refused (401) or does not entitle (403).
    #[error("token refused: {}", .0.reason())]
    Token(Denied),
    /// The device request's signature does not verify with the registered key.
    #[error("bad device signature")]
    BadSignature,
    /// The device was unregistered by its owner.
    #[error("device revoked")]
    Revoked,
    /// The subject already has its maximum of active devices.
    #[error("device limit reached")]
    LimitReached,
    /// The device is not a member of that domain.
    #[error("not a member of the domain")]
    WrongDomain,
    /// No such device, or another subject's (the same answer on purpose).
    #[error("unknown device")]
    UnknownDevice,
    /// No such domain, or another subject's.
    #[error("unknown domain")]
    UnknownDomain,
    /// No asset with device licenses by that id.
    #[error("unknown asset")]
    UnknownAsset,
    /// The device id is registered with other keys (or by another subject).
    #[error("device id taken")]
    IdTaken,
    /// The device key is already registered under another id.
    #[error("device key taken")]
    KeyTaken,
    /// The request's `jti` was seen before.
    #[error("replayed request")]
    Replayed,
    /// The request names a generation that a factory reset ended.
    #[error("stale generation")]
    StaleGeneration,
    /// The domain has its maximum of members.
    #[error("domain full")]
    DomainFull,
    /// The registry cannot be reached or used.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// Device licensing is not configured on this origin.
    #[error("device licensing is not enabled")]
    NotEnabled,
    /// Our fault (signing, key store, I/O).
    #[error("internal error: {0}")]
    Internal(String),
}

impl DeviceError {
    /// The machine-readable reason of the JSON refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            DeviceError::TooLarge => "request_too_large",
            DeviceError::Malformed(_) => "malformed_request",
            DeviceError::MalformedKey(_) => "malformed_key",
            DeviceError::StaleRequest => "stale_request",
            DeviceError::Token(d) => d.reason(),
            DeviceError::BadSignature => "bad_device_signature",
            DeviceError::Revoked => "device_revoked",
            DeviceError::LimitReached => "device_limit_reached",
            DeviceError::WrongDomain => "wrong_domain",
            DeviceError::UnknownDevice => "unknown_device",
            DeviceError::UnknownDomain => "unknown_domain",
            DeviceError::UnknownAsset => "unknown_asset",
            DeviceError::IdTaken => "device_id_taken",
            DeviceError::KeyTaken => "device_key_taken",
            DeviceError::Replayed => "replayed_request",
            DeviceError::StaleGeneration => "stale_generation",
            DeviceError::DomainFull => "domain_full",
            DeviceError::Unavailable(_) => "registry_unavailable",
            DeviceError::NotEnabled => "device_licensing_disabled",
            DeviceError::Internal(_) => "internal_error",
        }
    }
}

/// Unix time now (seconds).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Fuzz entry (and robustness tests): `data` as every object a request or a file brings.
pub fn fuzz_objects(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(j) = jose::Jws::parse(&text) {
        let _ = j.payload_as::<objects::DeviceRequest>();
        let _ = j.payload_as::<objects::License>();
        let _ = j.payload_as::<objects::Index>();
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = jose::Jwk::parse(&v);
        let _ = jose::PrivateKey::from_private_json(&v);
        let _ = keys::parse_jwks(&text);
    }
    let _ = jose::jwe_kid(&text);
    if let Ok(sk) = p256::SecretKey::from_slice(&[7u8; 32]) {
        let _ = jose::jwe_decrypt(&text, &jose::PrivateKey(sk));
    }
}

#[cfg(test)]
mod robustness {
    #[test]
    fn mutated_objects_never_panic() {
        let k = super::jose::PrivateKey(p256::SecretKey::from_slice(&[9u8; 32]).unwrap());
        let h = super::jose::JwsHeader {
            alg: "ES256".into(),
            kid: Some("d".into()),
            typ: super::objects::typ::REQUEST.into(),
        };
        let seed =
            super::jose::jws_sign(&h, br#"{"v":1,"act":"license","dev":"x","gen":1,"iat":0,"jti":"j","aud":"/"}"#, &k)
                .unwrap();
        let jwe = super::jose::jwe_encrypt(b"{}", &k.public(), None, &super::jose::Drbg::new(b"s", b"c")).unwrap();
        let mut rng = crate::test_rng::Rng(0xd1ce);
        for base in [seed.as_bytes(), jwe.as_bytes()] {
            for _ in 0..1500 {
                let mut m = base.to_vec();
                for _ in 0..=rng.below(4) {
                    if m.is_empty() {
                        break;
                    }
                    let i = rng.below(m.len());
                    match rng.below(3) {
                        0 => m[i] = b"./=-_{}\"A0"[rng.below(10)],
                        1 => {
                            m.remove(i);
                        }
                        _ => m.insert(i, b'.'),
                    }
                }
                super::fuzz_objects(&m);
            }
        }
    }
}
