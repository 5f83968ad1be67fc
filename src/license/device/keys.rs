//! The origin's own device-licensing secrets, shared by every node (like `keystore.seed`):
//! * the **master secret** (`secret_file`, 32 random bytes, mode 0600): seeds the deterministic
//!   JWE randomness, the input digests of pre-generated files, and domain keys (domain scalar =
//!   HKDF(master, `domain` ∥ id ∥ version)), so the database holds no key at all;
//! * the **signing keyring** (`signing_key`, ES256 PKCS#8 PEM blocks, oldest first, mode 0600):
//!   the last key signs; every key is published in `/.drm/keys.json` with an announcement of
//!   each key signed by the one before it, so a client that pinned an old key can follow a
//!   rotation without trusting the transport.
//!
//! Both are created at first start (`create_new`, so two processes starting at once agree on one
//! file). Nothing here is ever logged or printed: Debug shows key ids only.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use zeroize::Zeroizing;

use super::jose::{self, Drbg, Jwk, JwsHeader, PrivateKey};
use super::objects::{typ, KeyAnnouncement, V};

/// Why the origin's keys could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Reading or writing a key file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The file is not what we write.
    #[error("{path} is not a usable key file: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong (never key material).
        reason: String,
    },
}

/// One signing key.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// Its id: the RFC 7638 thumbprint of the public key (the same on every node).
    pub kid: String,
    /// The key.
    pub key: PrivateKey,
}

/// The master secret and the signing keyring.
pub struct OriginKeys {
    master: Zeroizing<[u8; 32]>,
    /// Oldest first; the last one signs.
    ring: Vec<SigningKey>,
    /// The last of `ring`.
    current: SigningKey,
    /// `/.drm/keys.json`.
    jwks: String,
}

impl std::fmt::Debug for OriginKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.ring.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("OriginKeys").field("signing_kids", &kids).finish_non_exhaustive()
    }
}

impl OriginKeys {
    /// Loads both files, creating them when absent.
    pub fn load_or_create(secret_file: &Path, signing_file: &Path) -> Result<OriginKeys, KeysError> {
        let master = load_or_create_secret(secret_file)?;
        let ring = load_or_create_ring(signing_file)?;
        OriginKeys::from_parts(master, ring)
    }

    /// From a master secret and a keyring (tests, benches).
    pub fn from_parts(master: Zeroizing<[u8; 32]>, ring: Vec<PrivateKey>) -> Result<OriginKeys, KeysError> {
        let ring: Vec<SigningKey> =
            ring.into_iter().map(|key| SigningKey { kid: key.public().thumbprint(), key }).collect();
        let current = ring
            .last()
            .cloned()
            .ok_or_else(|| KeysError::Corrupt { path: "<keyring>".into(), reason: "no signing key".into() })?;
        let jwks = jwks_document(&ring)?;
        Ok(OriginKeys { master, ring, current, jwks })
    }

    /// The key that signs.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Every published key (retired ones stay until their files have expired).
    pub fn ring(&self) -> &[SigningKey] {
        &self.ring
    }

    /// The JWKS document, with key announcements.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// Signs `payload` as an origin object of type `typ`.
    pub fn sign(&self, typ: &str, payload: &[u8]) -> Result<String, jose::JoseError> {
        let k = self.current();
        let header = JwsHeader { alg: "ES256".into(), kid: Some(k.kid.clone()), typ: typ.into() };
        jose::jws_sign(&header, payload, &k.key)
    }

    /// Deterministic randomness for an object whose inputs are `input` (canonical bytes).
    pub fn drbg(&self, input: &[u8]) -> Drbg {
        Drbg::new(self.master.as_ref(), &jose::sha256(input))
    }

    /// The input digest of a pre-generated file (HMAC-like: keyed by the master secret, so it
    /// reveals nothing but equality).
    pub fn input_digest(&self, input: &[u8]) -> String {
        jose::b64e(self.drbg(input).bytes::<16>(b"input-digest").as_ref())
    }

    /// The root key of a chained `policy` at `version` (an AES-256 key wrap key): derived,
    /// never stored, the same on every node sharing the master secret.
    pub fn root_key(&self, policy: &str, version: u32) -> Zeroizing<[u8; 32]> {
        let d = Drbg::new(self.master.as_ref(), b"drm-origin/root");
        d.bytes::<32>(format!("{policy}/{version}").as_bytes())
    }

    /// The private key of domain `id` at key version `kv`.
    pub fn domain_key(&self, id: &str, kv: u64) -> Result<PrivateKey, jose::JoseError> {
        let d = Drbg::new(self.master.as_ref(), b"drm-origin/domain");
        d.secret_key(format!("{id}/{kv}").as_bytes()).map(PrivateKey)
    }
}

/// `{"keys": [JWK + kid/alg/use], "announcements": [JWS…]}`.
fn jwks_document(ring: &[SigningKey]) -> Result<String, KeysError> {
    let mut keys = Vec::new();
    for k in ring {
        let mut j = k.key.public().to_json();
        if let Some(o) = j.as_object_mut() {
            o.insert("kid".into(), Value::String(k.kid.clone()));
            o.insert("alg".into(), "ES256".into());
            o.insert("use".into(), "sig".into());
        }
        keys.push(j);
    }
    let mut announcements = Vec::new();
    for pair in ring.windows(2) {
        let [old, new] = pair else { continue };
        let a = KeyAnnouncement { v: V, kid: new.kid.clone(), jwk: new.key.public().to_json() };
        let payload = serde_json::to_vec(&a).map_err(|e| corrupt("<keyring>", &e.to_string()))?;
        let header = JwsHeader { alg: "ES256".into(), kid: Some(old.kid.clone()), typ: typ::KEY_ANNOUNCEMENT.into() };
        announcements
            .push(jose::jws_sign(&header, &payload, &old.key).map_err(|e| corrupt("<keyring>", &e.to_string()))?);
    }
    serde_json::to_string(&serde_json::json!({"keys": keys, "announcements": announcements}))
        .map_err(|e| corrupt("<keyring>", &e.to_string()))
}

fn io(path: &Path, e: &std::io::Error) -> KeysError {
    KeysError::Io { path: path.display().to_string(), reason: e.to_string() }
}

fn corrupt(path: &str, reason: &str) -> KeysError {
    KeysError::Corrupt { path: path.to_owned(), reason: reason.to_owned() }
}

/// Writes `bytes` to a new file `path` with mode 0600; `Ok(false)` when it already exists.
fn create_secret_file(path: &Path, bytes: &[u8]) -> Result<bool, KeysError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    }
    // Written under a temporary name and linked into place, so a concurrent reader never sees
    // a half-written secret, and two processes racing agree on whichever file landed first.
    let tmp = tmp_name(path);
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| io(&tmp, &e))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp, &e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path, &e)),
    }
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", crate::crypto::key::hex(&r)))
}

fn load_or_create_secret(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeysError> {
    if !path.exists() {
        let mut fresh = Zeroizing::new([0u8; 32]);
        getrandom::fill(fresh.as_mut())
            .map_err(|e| corrupt(&path.display().to_string(), &format!("no randomness: {e}")))?;
        if create_secret_file(path, fresh.as_ref())? {
            tracing::info!(file = %path.display(), "created the device-licensing master secret");
        }
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| io(path, &e))?);
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| corrupt(&path.display().to_string(), &format!("{} bytes, expected 32", bytes.len())))?;
    Ok(Zeroizing::new(arr))
}

fn load_or_create_ring(path: &Path) -> Result<Vec<PrivateKey>, KeysError> {
    if !path.exists() {
        let key = new_signing_key(path)?;
        let pem = key.to_pem().map_err(|e| corrupt(&path.display().to_string(), &e.to_string()))?;
        if create_secret_file(path, pem.as_bytes())? {
            tracing::info!(file = %path.display(), kid = %key.public().thumbprint(), "created the origin signing key");
        }
    }
    read_ring(path)
}

fn new_signing_key(path: &Path) -> Result<PrivateKey, KeysError> {
    Drbg::random()
        .and_then(|d| d.secret_key(b"signing"))
        .map(PrivateKey)
        .map_err(|e| corrupt(&path.display().to_string(), &e.to_string()))
}

/// The PEM blocks of a keyring file, oldest first.
pub fn read_ring(path: &Path) -> Result<Vec<PrivateKey>, KeysError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io(path, &e))?);
    let name = path.display().to_string();
    let mut ring = Vec::new();
    const END: &str = "-----END PRIVATE KEY-----";
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN PRIVATE KEY-----") {
        let tail = rest.get(start..).unwrap_or("");
        let end = tail.find(END).ok_or_else(|| corrupt(&name, "unterminated PEM block"))?;
        let block_end = end.saturating_add(END.len());
        let block = tail.get(..block_end).unwrap_or("");
        ring.push(PrivateKey::from_pem(block).map_err(|e| corrupt(&name, &e.to_string()))?);
        rest = tail.get(block_end..).unwrap_or("");
    }
    if ring.is_empty() {
        return Err(corrupt(&name, "no PKCS#8 PEM block"));
    }
    Ok(ring)
}

/// Appends a new signing key to the keyring file (atomically: temp file, fsync, rename) and
/// returns its id. Running servers pick it up at their next start.
pub fn rotate(path: &Path) -> Result<String, KeysError> {
    use std::os::unix::fs::OpenOptionsExt;
    let ring = read_ring(path)?;
    let key = new_signing_key(path)?;
    let mut text = Zeroizing::new(String::new());
    for k in ring.iter().chain(std::iter::once(&key)) {
        let pem = k.to_pem().map_err(|e| corrupt(&path.display().to_string(), &e.to_string()))?;
        text.push_str(&pem);
    }
    let tmp = tmp_name(path);
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| io(&tmp, &e))?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, &e));
    }
    Ok(key.public().thumbprint())
}

/// Published keys `(kid, key)` and key announcements.
pub type ParsedJwks = (Vec<(String, Jwk)>, Vec<String>);

/// Parses a JWKS document as [`OriginKeys::jwks_json`] writes it: `(kid, key)` pairs and the
/// announcements. Clients use it to pin and to follow rotations.
pub fn parse_jwks(doc: &str) -> Result<ParsedJwks, jose::JoseError> {
    let v: Value = serde_json::from_str(doc).map_err(|_| jose::JoseError::Malformed("JWKS is not JSON"))?;
    let mut keys = Vec::new();
    for k in v.get("keys").and_then(Value::as_array).ok_or(jose::JoseError::Malformed("JWKS has no keys"))? {
        let jwk = Jwk::parse(k)?;
        let kid = jwk.thumbprint();
        if k.get("kid").and_then(Value::as_str) != Some(kid.as_str()) {
            return Err(jose::JoseError::Malformed("JWKS kid is not the key's thumbprint"));
        }
        keys.push((kid, jwk));
    }
    let announcements = v
        .get("announcements")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok((keys, announcements))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "drm-origin-keys-{}-{}",
            std::process::id(),
            jose::b64e(&{
                let mut r = [0u8; 6];
                getrandom::fill(&mut r).unwrap();
                r
            })
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn created_once_mode_0600_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp();
        let (s, k) = (d.join("state/master.key"), d.join("state/signing.pem"));
        let a = OriginKeys::load_or_create(&s, &k).unwrap();
        let b = OriginKeys::load_or_create(&s, &k).unwrap();
        assert_eq!(a.current().kid, b.current().kid);
        assert_eq!(a.domain_key("d", 1).unwrap().0.to_bytes(), b.domain_key("d", 1).unwrap().0.to_bytes());
        assert_ne!(a.domain_key("d", 1).unwrap().0.to_bytes(), a.domain_key("d", 2).unwrap().0.to_bytes());
        for f in [&s, &k] {
            assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let dbg = format!("{a:?}");
        assert!(dbg.contains(&a.current().kid) && !dbg.contains("PRIVATE"));
        std::fs::write(&s, b"short").unwrap();
        assert!(matches!(OriginKeys::load_or_create(&s, &k), Err(KeysError::Corrupt { .. })));
    }

    #[test]
    fn rotation_is_announced_by_the_previous_key() {
        let d = tmp();
        let (s, k) = (d.join("master.key"), d.join("signing.pem"));
        let before = OriginKeys::load_or_create(&s, &k).unwrap();
        let new_kid = rotate(&k).unwrap();
        let after = OriginKeys::load_or_create(&s, &k).unwrap();
        assert_eq!(after.current().kid, new_kid);
        assert_eq!(after.ring().len(), 2);
        let (keys, ann) = parse_jwks(after.jwks_json()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(ann.len(), 1);
        let a = jose::Jws::parse(&ann[0]).unwrap();
        assert_eq!(a.header.kid.as_deref(), Some(before.current().kid.as_str()));
        a.verify(&before.current().key.public()).unwrap();
        let p: KeyAnnouncement = a.payload_as().unwrap();
        assert_eq!(p.kid, new_kid);
    }
}
