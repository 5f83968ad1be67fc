//! The device's local store, a folder:
//!
//! ```text
//! device.json          id, generation, origin and license URLs, certificate, pinned origin
//!                      keys, domain keys, last trusted time, rollback counters (mode 0600)
//! enc.pem, sig.pem     the device's private keys, PKCS#8 (mode 0600)
//! licenses/*.lic       licenses fetched or imported (verified before they are kept)
//! ```
//!
//! Every file is written to a temporary name and renamed, so a crash never leaves a torn one.
//! A factory reset deletes the keys, the licenses, the domain keys and the certificate, and
//! keeps only the device id (its next registration bumps the generation).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClientError;
use crate::license::device::jose::{Drbg, PrivateKey};

/// A domain key this device holds (the origin's signed object, and which version).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldDomain {
    /// Key versions held: kv → the signed domain-key object.
    pub keys: BTreeMap<u64, String>,
}

/// `device.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version.
    pub v: u32,
    /// Device id (kept across a factory reset).
    pub device_id: String,
    /// Generation; 0 before registration and after a reset.
    pub gen: u64,
    /// The origin's base URL.
    pub origin: String,
    /// Base URL of the static license folder (its `public/`).
    pub licenses: String,
    /// The device certificate.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Pinned origin signing keys: kid → JWK.
    #[serde(default)]
    pub trusted_keys: BTreeMap<String, serde_json::Value>,
    /// Latest time seen in a trusted object (the clock never goes back past it).
    #[serde(default)]
    pub last_time: i64,
    /// Highest license `seq` accepted, per binding and asset (`device:{asset}` /
    /// `domain:{id}:{asset}`).
    #[serde(default)]
    pub seqs: BTreeMap<String, i64>,
    /// Domain keys by domain id.
    #[serde(default)]
    pub domains: BTreeMap<String, HeldDomain>,
}

/// An open store.
pub struct Store {
    dir: PathBuf,
    /// The state.
    pub state: State,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("device_id", &self.state.device_id)
            .finish_non_exhaustive()
    }
}

fn err(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Store(format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let mut r = [0u8; 6];
    let _ = getrandom::fill(&mut r);
    let tmp = dir.join(format!(".tmp-{}", crate::crypto::key::hex(&r)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(path, e));
    }
    Ok(())
}

impl Store {
    /// Opens the store in `dir` (an absent one is empty, with a fresh device id).
    pub fn open(dir: &Path) -> Result<Store, ClientError> {
        let p = dir.join("device.json");
        let state = match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| err(&p, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                v: 1,
                device_id: crate::license::device::objects::new_uuid().map_err(|e| err(&p, e))?,
                ..State::default()
            },
            Err(e) => return Err(err(&p, e)),
        };
        Ok(Store { dir: dir.to_path_buf(), state })
    }

    /// Saves `device.json`.
    pub fn save(&self) -> Result<(), ClientError> {
        let text = serde_json::to_vec_pretty(&self.state).map_err(|e| ClientError::Store(e.to_string()))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| err(&self.dir, e))?;
        std::fs::set_permissions(&self.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| err(&self.dir, e))?;
        write_atomic(&self.dir.join("device.json"), &text, 0o600)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes new `enc` and `sig` keys (mode 0600), replacing any.
    pub fn new_keys(&self) -> Result<(PrivateKey, PrivateKey), ClientError> {
        let d = Drbg::random().map_err(|e| ClientError::Store(e.to_string()))?;
        let enc = PrivateKey(d.secret_key(b"enc").map_err(|e| ClientError::Store(e.to_string()))?);
        let sig = PrivateKey(d.secret_key(b"sig").map_err(|e| ClientError::Store(e.to_string()))?);
        for (name, k) in [("enc.pem", &enc), ("sig.pem", &sig)] {
            let pem = k.to_pem().map_err(|e| ClientError::Store(e.to_string()))?;
            write_atomic(&self.dir.join(name), pem.as_bytes(), 0o600)?;
        }
        Ok((enc, sig))
    }

    /// The private key `name` (`enc` or `sig`).
    pub fn key(&self, name: &str) -> Result<PrivateKey, ClientError> {
        let p = self.dir.join(format!("{name}.pem"));
        let pem = zeroize::Zeroizing::new(std::fs::read_to_string(&p).map_err(|_| {
            ClientError::refused("not_registered", format!("no {name} key in {}: register first", self.dir.display()))
        })?);
        PrivateKey::from_pem(&pem).map_err(|e| err(&p, e))
    }

    fn license_path(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' { c } else { '~' })
            .collect();
        self.dir.join("licenses").join(format!("{safe}.lic"))
    }

    /// Keeps a verified license under `key` (`device:{asset}` or `domain:{id}:{asset}`).
    pub fn keep_license(&self, key: &str, compact: &str) -> Result<(), ClientError> {
        write_atomic(&self.license_path(key), compact.as_bytes(), 0o600)
    }

    /// Every kept license.
    pub fn licenses(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("licenses")) else { return Vec::new() };
        let mut out: Vec<(PathBuf, String)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "lic"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok().map(|t| (e.path(), t.trim().to_owned())))
            .collect();
        out.sort();
        out.into_iter().map(|(_, t)| t).collect()
    }

    /// Factory reset: keys, licenses, domain keys, certificate and counters go; the id stays.
    pub fn purge(&mut self) -> Result<(), ClientError> {
        for name in ["enc.pem", "sig.pem"] {
            let p = self.dir.join(name);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| err(&p, e))?;
            }
        }
        let lic = self.dir.join("licenses");
        if lic.exists() {
            std::fs::remove_dir_all(&lic).map_err(|e| err(&lic, e))?;
        }
        let id = std::mem::take(&mut self.state.device_id);
        let (origin, licenses, keys) =
            (self.state.origin.clone(), self.state.licenses.clone(), self.state.trusted_keys.clone());
        self.state = State { v: 1, device_id: id, origin, licenses, trusted_keys: keys, ..State::default() };
        self.save()
    }
}
