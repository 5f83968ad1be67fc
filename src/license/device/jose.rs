//! The JOSE subset device licensing speaks, on P-256 only (RFC 7515–7518, RFC 7638):
//! * JWS compact `ES256` (origin objects and device requests);
//! * JWE compact `ECDH-ES+A256KW` + `A256GCM` (content keys and domain keys wrapped to a device
//!   or domain key), with the Concat KDF of RFC 7518 §4.6.2;
//! * public JWKs (`kty: EC`, `crv: P-256`) and their RFC 7638 thumbprints.
//!
//! Everything the origin produces is deterministic: ECDSA nonces are RFC 6979 and the JWE's
//! ephemeral key, CEK and IV come from a [`Drbg`] seeded by the caller with a secret and a digest
//! of the inputs, so every node regenerates the same bytes (like segments). A client (device
//! requests) seeds its [`Drbg`] from the OS instead.
//!
//! Parsing is bounded and strict: compact objects have a length cap and exactly their number of
//! parts; base64url has no padding; headers must name exactly our algorithms (the algorithm never
//! comes from an attacker's choice among several). Errors are short words, never key material.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::drm::b64;

/// Longest compact JWS/JWE accepted (our objects are a few KiB).
pub const MAX_COMPACT: usize = 64 * 1024;

/// Why a JOSE object was refused. The word is stable; nothing secret is ever in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// Not the shape we accept (parts, base64url, JSON, header fields, sizes).
    #[error("malformed object: {0}")]
    Malformed(&'static str),
    /// A JWK that is not a P-256 public key.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The JWE does not open with this key (AES-KW integrity or GCM tag failed).
    #[error("cannot decrypt")]
    Decrypt,
}

/// Base64url without padding (JOSE never pads).
pub fn b64e(data: &[u8]) -> String {
    b64::encode_url(data)
}

/// Strict base64url decoding: padding and other alphabets are refused.
pub fn b64d(text: &str) -> Option<Vec<u8>> {
    if text.contains('=') {
        return None;
    }
    b64::decode_url(text)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

// ------------------------------------------------------------------------------------------------
// Deterministic bytes

/// An HKDF-SHA256 stream: `label`led outputs derived from a seed. The origin seeds it with its
/// master secret and a digest of an object's inputs; clients with OS randomness.
pub struct Drbg {
    hk: hkdf::Hkdf<Sha256>,
}

impl Drbg {
    /// HKDF-Extract(salt = `context`, ikm = `secret`).
    pub fn new(secret: &[u8], context: &[u8]) -> Drbg {
        Drbg { hk: hkdf::Hkdf::<Sha256>::new(Some(context), secret) }
    }

    /// Fresh OS randomness (devices).
    pub fn random() -> Result<Drbg, JoseError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| JoseError::Malformed("no randomness"))?;
        Ok(Drbg::new(seed.as_ref(), b"drm-origin/random"))
    }

    /// `N` bytes for `label`.
    pub fn bytes<const N: usize>(&self, label: &[u8]) -> Zeroizing<[u8; N]> {
        let mut out = Zeroizing::new([0u8; N]);
        // Only fails for outputs above 255 × 32 bytes.
        let _ = self.hk.expand(label, out.as_mut());
        out
    }

    /// A P-256 secret scalar for `label` (retrying on the ~2^-32 chance of an invalid one).
    pub fn secret_key(&self, label: &[u8]) -> Result<SecretKey, JoseError> {
        for counter in 0u8..=16 {
            let mut info = label.to_vec();
            info.push(counter);
            let b = self.bytes::<32>(&info);
            if let Ok(k) = SecretKey::from_slice(b.as_ref()) {
                return Ok(k);
            }
        }
        Err(JoseError::BadKey("no valid scalar"))
    }
}

// ------------------------------------------------------------------------------------------------
// JWK

/// A P-256 public key as a JWK.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwk(pub PublicKey);

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jwk({})", self.thumbprint())
    }
}

impl Jwk {
    /// Parses a public JWK: `kty: EC`, `crv: P-256`, 32-byte `x`/`y` on the curve, no `d`.
    /// Other members (`ext`, `key_ops`, `alg`, `use`, `kid`, which WebCrypto exports) are ignored.
    pub fn parse(v: &Value) -> Result<Jwk, JoseError> {
        let o = v.as_object().ok_or(JoseError::BadKey("not an object"))?;
        if o.get("kty").and_then(Value::as_str) != Some("EC") {
            return Err(JoseError::BadKey("kty is not EC"));
        }
        if o.get("crv").and_then(Value::as_str) != Some("P-256") {
            return Err(JoseError::BadKey("crv is not P-256"));
        }
        if o.contains_key("d") {
            return Err(JoseError::BadKey("private key material"));
        }
        let coord = |name: &str| -> Result<Vec<u8>, JoseError> {
            let s = o.get(name).and_then(Value::as_str).ok_or(JoseError::BadKey("missing coordinate"))?;
            let b = b64d(s).ok_or(JoseError::BadKey("coordinate is not base64url"))?;
            if b.len() != 32 {
                return Err(JoseError::BadKey("coordinate is not 32 bytes"));
            }
            Ok(b)
        };
        let (x, y) = (coord("x")?, coord("y")?);
        let mut sec1 = Vec::with_capacity(65);
        sec1.push(4);
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        PublicKey::from_sec1_bytes(&sec1).map(Jwk).map_err(|_| JoseError::BadKey("not on the curve"))
    }

    fn coords(&self) -> (String, String) {
        let p = self.0.to_encoded_point(false);
        let x = p.x().map(|x| b64e(x)).unwrap_or_default();
        let y = p.y().map(|y| b64e(y)).unwrap_or_default();
        (x, y)
    }

    /// The JWK as JSON (`kty`, `crv`, `x`, `y`: the RFC 7638 member order).
    pub fn to_json(&self) -> Value {
        let (x, y) = self.coords();
        serde_json::json!({"crv": "P-256", "kty": "EC", "x": x, "y": y})
    }

    /// RFC 7638 thumbprint (SHA-256, base64url).
    pub fn thumbprint(&self) -> String {
        let (x, y) = self.coords();
        let canonical = format!("{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{x}\",\"y\":\"{y}\"}}");
        b64e(&sha256(canonical.as_bytes()))
    }
}

/// A P-256 private key (device `enc`/`sig`, origin signing key, domain key); redacted in Debug.
#[derive(Clone)]
pub struct PrivateKey(pub SecretKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.public().thumbprint())
    }
}

impl PrivateKey {
    /// The public half.
    pub fn public(&self) -> Jwk {
        Jwk(self.0.public_key())
    }

    /// PKCS#8 PEM (secret: write it with mode 0600).
    pub fn to_pem(&self) -> Result<Zeroizing<String>, JoseError> {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        self.0.to_pkcs8_pem(LineEnding::LF).map_err(|_| JoseError::BadKey("cannot encode"))
    }

    /// From PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, JoseError> {
        use p256::pkcs8::DecodePrivateKey;
        SecretKey::from_pkcs8_pem(pem).map(PrivateKey).map_err(|_| JoseError::BadKey("not a P-256 PKCS#8 key"))
    }

    /// The private JWK (`d` included): the payload of a wrapped domain key. Secret.
    pub fn to_private_json(&self) -> Zeroizing<String> {
        let (x, y) = self.public().coords();
        let d = Zeroizing::new(b64e(&self.0.to_bytes()));
        Zeroizing::new(format!(
            "{{\"crv\":\"P-256\",\"d\":\"{}\",\"kty\":\"EC\",\"x\":\"{x}\",\"y\":\"{y}\"}}",
            d.as_str()
        ))
    }

    /// Parses a private JWK and checks that `d` matches `x`/`y`.
    pub fn from_private_json(v: &Value) -> Result<PrivateKey, JoseError> {
        let d = v.get("d").and_then(Value::as_str).ok_or(JoseError::BadKey("no d"))?;
        let d = Zeroizing::new(b64d(d).ok_or(JoseError::BadKey("d is not base64url"))?);
        let key = SecretKey::from_slice(&d).map_err(|_| JoseError::BadKey("d is not a P-256 scalar"))?;
        let mut public = v.clone();
        if let Some(o) = public.as_object_mut() {
            o.remove("d");
        }
        if Jwk::parse(&public)?.0 != key.public_key() {
            return Err(JoseError::BadKey("d does not match x/y"));
        }
        Ok(PrivateKey(key))
    }
}

// ------------------------------------------------------------------------------------------------
// JWS ES256

/// A JWS protected header as we write and read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JwsHeader {
    /// Always `ES256`.
    pub alg: String,
    /// Signing key id (origin: JWK thumbprint; device requests: the device id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Object type (`drm-origin/license+jws`, …).
    pub typ: String,
}

/// Signs `payload` (JSON bytes) with `key` under `header`; compact serialization.
pub fn jws_sign(header: &JwsHeader, payload: &[u8], key: &PrivateKey) -> Result<String, JoseError> {
    let h = serde_json::to_vec(header).map_err(|_| JoseError::Malformed("header"))?;
    let signing_input = format!("{}.{}", b64e(&h), b64e(payload));
    let sig: Signature = SigningKey::from(&key.0).sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64e(&sig.to_bytes())))
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    /// The protected header.
    pub header: JwsHeader,
    /// Payload bytes.
    pub payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jws {
    /// Splits and decodes a compact JWS (`alg` must be ES256).
    pub fn parse(compact: &str) -> Result<Jws, JoseError> {
        if compact.len() > MAX_COMPACT {
            return Err(JoseError::Malformed("too large"));
        }
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JoseError::Malformed("not three parts"));
        };
        let hb = b64d(h).ok_or(JoseError::Malformed("header is not base64url"))?;
        let header: JwsHeader = serde_json::from_slice(&hb).map_err(|_| JoseError::Malformed("header is not JSON"))?;
        if header.alg != "ES256" {
            return Err(JoseError::Malformed("alg is not ES256"));
        }
        let payload = b64d(p).ok_or(JoseError::Malformed("payload is not base64url"))?;
        let signature = b64d(s).ok_or(JoseError::Malformed("signature is not base64url"))?;
        if signature.len() != 64 {
            return Err(JoseError::Malformed("signature is not 64 bytes"));
        }
        Ok(Jws { header, payload, signing_input: format!("{h}.{p}"), signature })
    }

    /// Verifies the signature with `key`.
    pub fn verify(&self, key: &Jwk) -> Result<(), JoseError> {
        let sig = Signature::from_slice(&self.signature).map_err(|_| JoseError::BadSignature)?;
        VerifyingKey::from(&key.0).verify(self.signing_input.as_bytes(), &sig).map_err(|_| JoseError::BadSignature)
    }

    /// The payload as JSON of type `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, JoseError> {
        serde_json::from_slice(&self.payload).map_err(|_| JoseError::Malformed("payload is not the expected JSON"))
    }
}

// ------------------------------------------------------------------------------------------------
// JWE ECDH-ES+A256KW / A256GCM

/// The algorithm identifier that goes into the Concat KDF (RFC 7518 §4.6.2: the `alg` value when
/// the agreed key wraps a CEK).
const ALG: &str = "ECDH-ES+A256KW";

/// Concat KDF (NIST SP 800-56A §5.8.1, single-step, SHA-256) for a 256-bit key, with the
/// OtherInfo of RFC 7518 §4.6.2 (`apu`/`apv` empty unless given).
pub fn concat_kdf(z: &[u8], alg: &str, apu: &[u8], apv: &[u8], keydatalen_bits: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    for field in [alg.as_bytes(), apu, apv] {
        h.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(field);
    }
    h.update(keydatalen_bits.to_be_bytes());
    h.finalize().into()
}

#[derive(Serialize, Deserialize)]
struct JweHeader {
    alg: String,
    enc: String,
    epk: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cty: Option<String>,
}

fn kek(secret: &SecretKey, public: &PublicKey) -> Zeroizing<[u8; 32]> {
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
    Zeroizing::new(concat_kdf(shared.raw_secret_bytes(), ALG, b"", b"", 256))
}

/// Encrypts `plaintext` to `recipient` (compact JWE, `kid` = the recipient's thumbprint). The
/// ephemeral key, CEK and IV come from `drbg`.
pub fn jwe_encrypt(plaintext: &[u8], recipient: &Jwk, cty: Option<&str>, drbg: &Drbg) -> Result<String, JoseError> {
    let eph = drbg.secret_key(b"jwe/epk")?;
    let cek = drbg.bytes::<32>(b"jwe/cek");
    let iv = drbg.bytes::<12>(b"jwe/iv");
    let header = JweHeader {
        alg: ALG.into(),
        enc: "A256GCM".into(),
        epk: Jwk(eph.public_key()).to_json(),
        kid: Some(recipient.thumbprint()),
        cty: cty.map(str::to_owned),
    };
    let hb = b64e(&serde_json::to_vec(&header).map_err(|_| JoseError::Malformed("header"))?);
    let kek = kek(&eph, &recipient.0);
    let mut wrapped = [0u8; 40];
    aes_kw::KwAes256::new((&*kek).into())
        .wrap_key(cek.as_ref(), &mut wrapped)
        .map_err(|_| JoseError::Malformed("key wrap"))?;
    let gcm = Aes256Gcm::new((&*cek).into());
    let sealed = gcm
        .encrypt((&*iv).into(), Payload { msg: plaintext, aad: hb.as_bytes() })
        .map_err(|_| JoseError::Malformed("encryption"))?;
    let tag_at = sealed.len().saturating_sub(16);
    let (ct, tag) = sealed.split_at(tag_at);
    Ok(format!("{hb}.{}.{}.{}.{}", b64e(&wrapped), b64e(iv.as_ref()), b64e(ct), b64e(tag)))
}

/// The `kid` of a compact JWE's header (which key it is for), without decrypting.
pub fn jwe_kid(compact: &str) -> Result<Option<String>, JoseError> {
    let h = compact.split('.').next().ok_or(JoseError::Malformed("empty"))?;
    let hb = b64d(h).ok_or(JoseError::Malformed("header is not base64url"))?;
    let header: JweHeader = serde_json::from_slice(&hb).map_err(|_| JoseError::Malformed("header is not JSON"))?;
    Ok(header.kid)
}

/// Decrypts a compact JWE made by [`jwe_encrypt`] (or any ECDH-ES+A256KW/A256GCM JWE on P-256).
pub fn jwe_decrypt(compact: &str, key: &PrivateKey) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    if compact.len() > MAX_COMPACT {
        return Err(JoseError::Malformed("too large"));
    }
    let parts: Vec<&str> = compact.split('.').collect();
    let [h, ek, iv, ct, tag] = parts.as_slice() else { return Err(JoseError::Malformed("not five parts")) };
    let hb = b64d(h).ok_or(JoseError::Malformed("header is not base64url"))?;
    let header: JweHeader = serde_json::from_slice(&hb).map_err(|_| JoseError::Malformed("header is not JSON"))?;
    if header.alg != ALG || header.enc != "A256GCM" {
        return Err(JoseError::Malformed("not ECDH-ES+A256KW / A256GCM"));
    }
    let epk = Jwk::parse(&header.epk)?;
    let wrapped = b64d(ek).ok_or(JoseError::Malformed("encrypted key is not base64url"))?;
    let iv = b64d(iv).ok_or(JoseError::Malformed("iv is not base64url"))?;
    let mut sealed = b64d(ct).ok_or(JoseError::Malformed("ciphertext is not base64url"))?;
    let tag = b64d(tag).ok_or(JoseError::Malformed("tag is not base64url"))?;
    if wrapped.len() != 40 || iv.len() != 12 || tag.len() != 16 {
        return Err(JoseError::Malformed("wrong part sizes"));
    }
    let iv: [u8; 12] = iv.try_into().map_err(|_| JoseError::Malformed("iv"))?;
    let kek = kek(&key.0, &epk.0);
    let mut cek = Zeroizing::new([0u8; 32]);
    aes_kw::KwAes256::new((&*kek).into()).unwrap_key(&wrapped, cek.as_mut()).map_err(|_| JoseError::Decrypt)?;
    sealed.extend_from_slice(&tag);
    let gcm = Aes256Gcm::new((&*cek).into());
    gcm.decrypt((&iv).into(), Payload { msg: &sealed, aad: h.as_bytes() })
        .map(Zeroizing::new)
        .map_err(|_| JoseError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn key(label: &[u8]) -> PrivateKey {
        PrivateKey(Drbg::new(b"test secret", b"tests").secret_key(label).unwrap())
    }

    #[test]
    fn concat_kdf_rfc7518_appendix_c() {
        // RFC 7518 Appendix C: ECDH-ES (direct) for A128GCM, apu "Alice", apv "Bob".
        let z: [u8; 32] = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128,
            106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let k = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 128);
        assert_eq!(b64e(&k[..16]), "VqqN6vgjbSBcIijNcacQGg");
    }

    #[test]
    fn aes_kw_rfc3394_4_6() {
        // RFC 3394 §4.6: 256 bits of key data with a 256-bit KEK.
        let kek: [u8; 32] = core::array::from_fn(|i| i as u8);
        let data = unhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
        let mut out = [0u8; 40];
        aes_kw::KwAes256::new((&kek).into()).wrap_key(&data, &mut out).unwrap();
        assert_eq!(
            crate::crypto::key::hex(&out).to_uppercase(),
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
        );
    }

    #[test]
    fn thumbprint_rfc7638_style() {
        // RFC 7638 §3.1 uses RSA; check the EC member order and hashing on RFC 7517 A.1's EC key.
        let v = serde_json::json!({"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
                                    "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"});
        let jwk = Jwk::parse(&v).unwrap();
        let canonical = r#"{"crv":"P-256","kty":"EC","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#;
        assert_eq!(jwk.thumbprint(), b64e(&sha256(canonical.as_bytes())));
    }

    #[test]
    fn jwk_parsing_is_strict() {
        let good = key(b"a").public().to_json();
        assert!(Jwk::parse(&good).is_ok());
        let mut webcrypto = good.clone();
        webcrypto["ext"] = true.into();
        webcrypto["key_ops"] = serde_json::json!([]);
        assert!(Jwk::parse(&webcrypto).is_ok(), "WebCrypto's extra members are accepted");
        for (field, val) in [("kty", "RSA"), ("crv", "P-384"), ("x", "AAAA"), ("y", "not base64!")] {
            let mut bad = good.clone();
            bad[field] = val.into();
            assert!(Jwk::parse(&bad).is_err(), "{field}={val}");
        }
        let mut private = good.clone();
        private["d"] = "AAAA".into();
        assert_eq!(Jwk::parse(&private), Err(JoseError::BadKey("private key material")));
        let mut off_curve = good.clone();
        off_curve["y"] = b64e(&[7u8; 32]).into();
        assert!(Jwk::parse(&off_curve).is_err());
        assert!(Jwk::parse(&serde_json::json!("x")).is_err());
    }

    #[test]
    fn jws_round_trip_is_deterministic_and_tamper_evident() {
        let k = key(b"sig");
        let h = JwsHeader { alg: "ES256".into(), kid: Some("k1".into()), typ: "t".into() };
        let a = jws_sign(&h, br#"{"v":1}"#, &k).unwrap();
        let b = jws_sign(&h, br#"{"v":1}"#, &k).unwrap();
        assert_eq!(a, b, "RFC 6979: same input, same bytes");
        let jws = Jws::parse(&a).unwrap();
        jws.verify(&k.public()).unwrap();
        assert_eq!(jws.verify(&key(b"other").public()), Err(JoseError::BadSignature));
        let mut tampered = a.clone().into_bytes();
        let mid = a.find('.').unwrap() + 3;
        tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(tampered).unwrap();
        assert!(Jws::parse(&t).map(|j| j.verify(&k.public())).map_or(true, |r| r.is_err()));
        assert!(Jws::parse("a.b").is_err());
        assert!(Jws::parse(&format!("{a}.x")).is_err());
        let none = format!("{}.{}.", b64e(br#"{"alg":"none","typ":"t"}"#), b64e(b"{}"));
        assert!(Jws::parse(&none).is_err());
    }

    #[test]
    fn jwe_round_trip_determinism_and_wrong_key() {
        let device = key(b"enc");
        let drbg = Drbg::new(b"master", b"input digest");
        let a = jwe_encrypt(b"secret payload", &device.public(), None, &drbg).unwrap();
        let b = jwe_encrypt(b"secret payload", &device.public(), None, &Drbg::new(b"master", b"input digest")).unwrap();
        assert_eq!(a, b, "same inputs, same bytes");
        let c = jwe_encrypt(b"secret payload", &device.public(), None, &Drbg::new(b"master", b"other")).unwrap();
        assert_ne!(a, c);
        assert_eq!(jwe_decrypt(&a, &device).unwrap().as_slice(), b"secret payload");
        assert_eq!(jwe_kid(&a).unwrap(), Some(device.public().thumbprint()));
        assert_eq!(jwe_decrypt(&a, &key(b"other")).unwrap_err(), JoseError::Decrypt);
        // Flip one ciphertext character: GCM refuses.
        let parts: Vec<&str> = a.split('.').collect();
        let mut ct = b64d(parts[3]).unwrap();
        ct[0] ^= 1;
        let forged = format!("{}.{}.{}.{}.{}", parts[0], parts[1], parts[2], b64e(&ct), parts[4]);
        assert_eq!(jwe_decrypt(&forged, &device).unwrap_err(), JoseError::Decrypt);
        assert!(jwe_decrypt("a.b.c", &device).is_err());
    }

    #[test]
    fn pem_and_private_jwk_round_trip_and_debug_is_redacted() {
        let k = key(b"pem");
        let pem = k.to_pem().unwrap();
        assert_eq!(PrivateKey::from_pem(&pem).unwrap().0.to_bytes(), k.0.to_bytes());
        let j: Value = serde_json::from_str(&k.to_private_json()).unwrap();
        assert_eq!(PrivateKey::from_private_json(&j).unwrap().0.to_bytes(), k.0.to_bytes());
        let mut wrong = j.clone();
        wrong["x"] = key(b"x").public().to_json()["x"].clone();
        assert!(PrivateKey::from_private_json(&wrong).is_err());
        let dbg = format!("{k:?}");
        let d = b64e(&k.0.to_bytes());
        assert!(!dbg.contains(&d) && dbg.contains("redacted"), "{dbg}");
    }
}
