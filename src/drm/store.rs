//! The key store: content keys created when first needed and kept across restarts.
//!
//! Two modes:
//! * **persistent** (default): a random KID and key per label, written to a JSON file before
//!   first use. Writes go to a temporary file in the same directory, are fsynced, renamed over
//!   the store and the directory is fsynced: a crash leaves either the old or the new file,
//!   never a torn one, and a key is never used before it is durable. Every change is a
//!   read-merge-write under an exclusive lock on `<store>.lock`, so a second process (the
//!   `keys import` command next to a running server) never loses the other's keys, and a label
//!   another process created is picked up instead of being created twice.
//! * **key seed**: KID = a hash of the label, key = PlayReady key-seed derivation of the KID, so
//!   every origin node sharing the seed computes the same keys without shared state.
//!
//! Labels name what a key protects: `asset:{id}/{class}` (a key per asset: 1:1) or
//! `group:{name}/{class}` (one key for every asset of a group: 1:N), where the class is `video`,
//! `audio`, `sd`, `hd`, `uhd` or `envelope` (N:1: several keys per asset).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ContentKey;
use crate::crypto::{key::hex, Key, KeyId};

/// Why a key could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store file could not be read or written.
    #[error("key store {path}: {reason}")]
    Io {
        /// Store path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The store file is not what we wrote.
    #[error("key store {path} is corrupt: {reason}")]
    Corrupt {
        /// Store path.
        path: String,
        /// What is wrong (never key material).
        reason: String,
    },
    /// The system random generator failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// A label that was imported with another KID already exists.
    #[error("label {0} already holds a different key")]
    Conflict(String),
    /// The shared store cannot be reached: keys it already gave are still served, new ones are
    /// refused until it answers again.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    keys: Vec<Entry>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    label: String,
    kid: String,
    key: String,
    origin: String,
}

/// Where keys come from.
pub enum Mode {
    /// Random keys persisted in a JSON file.
    Persistent(PathBuf),
    /// Derived from a key seed (bytes; at least 30).
    Seed(Key30),
    /// Random keys in a PostgreSQL table shared by every origin node (see [`super::store_pg`]).
    Postgres(super::store_pg::PgSettings),
}

/// Auto keys by label: the embedded file store ([`FileKeyStore`], also the key-seed mode) or the
/// shared PostgreSQL store. Whatever the backend, a label once answered keeps its key: every
/// node and every restart serve the same key for it.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// The key for `label`, created (and persisted) or derived on first use.
    fn get_or_create(&self, label: &str) -> Result<Arc<ContentKey>, StoreError>;
    /// The key for `label` if it exists (or, with a seed, would be derived); never creates.
    fn peek(&self, label: &str) -> Option<Arc<ContentKey>>;
    /// Stores an externally supplied key (CPIX import) under `label`, persisting it.
    fn import(&self, label: &str, kid: KeyId, key: Key) -> Result<(), StoreError>;
    /// Every key the store holds, by label.
    fn all(&self) -> Vec<(String, Arc<ContentKey>)>;
    /// The key with id `kid` and its label (license requests name a KID, not a label).
    fn find_kid(&self, kid: &KeyId) -> Option<(String, Arc<ContentKey>)> {
        self.all().into_iter().find(|(_, k)| k.kid == *kid)
    }
    /// Whether this store reads the same file, seed or database as `mode` would.
    fn same_source(&self, mode: &Mode) -> bool;
}

/// Opens the store `mode` names.
pub fn open(mode: Mode) -> Result<Arc<dyn KeyStore>, StoreError> {
    match mode {
        Mode::Postgres(settings) => Ok(Arc::new(super::store_pg::PgKeyStore::open(settings)?)),
        other => Ok(Arc::new(FileKeyStore::open(other)?)),
    }
}

/// A key seed (30 bytes are used), redacted in Debug.
pub struct Key30(pub Vec<u8>);

impl std::fmt::Debug for Key30 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySeed(<redacted>)")
    }
}

/// The embedded store (a JSON file, or a key seed); cheap to share.
pub struct FileKeyStore {
    mode: Mode,
    keys: Mutex<BTreeMap<String, Arc<ContentKey>>>,
}

impl std::fmt::Debug for FileKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Persistent(p) => format!("persistent {}", p.display()),
            Mode::Seed(_) => "key seed".to_owned(),
            Mode::Postgres(p) => format!("{p:?}"),
        };
        f.debug_struct("FileKeyStore").field("mode", &mode).finish_non_exhaustive()
    }
}

impl FileKeyStore {
    /// Opens a store; a persistent store's existing keys are loaded (a missing file is empty).
    pub fn open(mode: Mode) -> Result<FileKeyStore, StoreError> {
        if let Mode::Postgres(_) = &mode {
            return Err(StoreError::Io { path: "<postgres>".into(), reason: "not a file store".into() });
        }
        let mut keys = BTreeMap::new();
        if let Mode::Persistent(path) = &mode {
            for e in load(path)? {
                let ck = entry_to_key(&e, path)?;
                keys.insert(e.label.clone(), Arc::new(ck));
            }
        }
        Ok(FileKeyStore { mode, keys: Mutex::new(keys) })
    }
}

impl KeyStore for FileKeyStore {
    /// The key for `label`, created (and persisted) or derived on first use.
    fn get_or_create(&self, label: &str) -> Result<Arc<ContentKey>, StoreError> {
        let mut keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        if let Some(k) = keys.get(label) {
            return Ok(k.clone());
        }
        let ck = match &self.mode {
            Mode::Seed(seed) => derive(seed, label),
            Mode::Postgres(_) => return Err(StoreError::Unavailable("not a file store".into())),
            Mode::Persistent(path) => {
                let _lock = lock(path)?;
                merge_from_file(path, &mut keys)?;
                if let Some(k) = keys.get(label) {
                    return Ok(k.clone());
                }
                let mut kid = [0u8; 16];
                let mut key = [0u8; 16];
                getrandom::fill(&mut kid).map_err(|e| StoreError::Random(e.to_string()))?;
                getrandom::fill(&mut key).map_err(|e| StoreError::Random(e.to_string()))?;
                // RFC 4122 version 4 bits, so the KID is a well-formed random UUID.
                kid[6] = (kid[6] & 0x0f) | 0x40;
                kid[8] = (kid[8] & 0x3f) | 0x80;
                let ck = Arc::new(ContentKey { name: label.to_owned(), kid: KeyId(kid), key: Key::new(key) });
                let mut next = keys.clone();
                next.insert(label.to_owned(), ck.clone());
                // Durable before first use: a key never encrypts anything that a restart forgets.
                save(path, &next, "created")?;
                *keys = next;
                tracing::info!(label, kid = %ck.kid, "content key created");
                return Ok(ck);
            }
        };
        let ck = Arc::new(ck);
        keys.insert(label.to_owned(), ck.clone());
        Ok(ck)
    }

    /// The key for `label` if it exists (or, with a seed, would be derived); never creates.
    fn peek(&self, label: &str) -> Option<Arc<ContentKey>> {
        let mut keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        if let (Mode::Persistent(path), false) = (&self.mode, keys.contains_key(label)) {
            // Another process may have created it since we loaded the file.
            let _ = merge_from_file(path, &mut keys);
        }
        match (&self.mode, keys.get(label)) {
            (_, Some(k)) => Some(k.clone()),
            (Mode::Seed(seed), None) => Some(Arc::new(derive(seed, label))),
            (_, None) => None,
        }
    }

    /// Stores an externally supplied key (CPIX import) under `label`, persisting it.
    fn import(&self, label: &str, kid: KeyId, key: Key) -> Result<(), StoreError> {
        let mut keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        if let Some(existing) = keys.get(label) {
            if existing.kid == kid && existing.key == key {
                return Ok(());
            }
            return Err(StoreError::Conflict(label.to_owned()));
        }
        let Mode::Persistent(path) = &self.mode else {
            return Err(StoreError::Io {
                path: "<key seed>".into(),
                reason: "a key-seed store derives its keys; it cannot import".into(),
            });
        };
        let _lock = lock(path)?;
        merge_from_file(path, &mut keys)?;
        if let Some(existing) = keys.get(label) {
            if existing.kid == kid && existing.key == key {
                return Ok(());
            }
            return Err(StoreError::Conflict(label.to_owned()));
        }
        let mut next = keys.clone();
        next.insert(label.to_owned(), Arc::new(ContentKey { name: label.to_owned(), kid, key }));
        save(path, &next, "imported")?;
        *keys = next;
        Ok(())
    }

    /// Whether this store reads the same file (or the same seed) as `mode` would.
    fn same_source(&self, mode: &Mode) -> bool {
        match (&self.mode, mode) {
            (Mode::Persistent(a), Mode::Persistent(b)) => a == b,
            (Mode::Seed(a), Mode::Seed(b)) => a.0 == b.0,
            _ => false,
        }
    }

    /// Every key the store holds, by label.
    fn all(&self) -> Vec<(String, Arc<ContentKey>)> {
        let keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        keys.iter().map(|(l, k)| (l.clone(), k.clone())).collect()
    }
}

/// Seed mode: KID from the seed and the label (stable across nodes sharing the seed, different
/// for another seed, so a license cache keyed by KID never mixes two seeds' keys), key by the
/// PlayReady key-seed algorithm.
fn derive(seed: &Key30, label: &str) -> ContentKey {
    let digest =
        Sha256::new().chain_update(b"drm-origin/kid/").chain_update(&seed.0).chain_update(label.as_bytes()).finalize();
    let mut kid = [0u8; 16];
    kid.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    kid[6] = (kid[6] & 0x0f) | 0x40;
    kid[8] = (kid[8] & 0x3f) | 0x80;
    let kid = KeyId(kid);
    let key = super::keyseed::derive(&seed.0, &kid).unwrap_or_else(|| Key::new([0; 16]));
    ContentKey { name: label.to_owned(), kid, key }
}

/// Exclusive advisory lock on `<store>.lock`, held for a read-merge-write.
fn lock(path: &Path) -> Result<std::fs::File, StoreError> {
    let io = |e: std::io::Error| StoreError::Io { path: path.display().to_string(), reason: format!("lock: {e}") };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(name)).map_err(io)?;
    f.lock().map_err(io)?;
    Ok(f)
}

/// Adds the file's labels we do not hold yet (another process wrote them). A label held with a
/// different KID is a conflict the file wins for reads: ours was never persisted.
fn merge_from_file(path: &Path, keys: &mut BTreeMap<String, Arc<ContentKey>>) -> Result<(), StoreError> {
    for e in load(path)? {
        if !keys.contains_key(&e.label) {
            let ck = entry_to_key(&e, path)?;
            keys.insert(e.label.clone(), Arc::new(ck));
        }
    }
    Ok(())
}

fn load(path: &Path) -> Result<Vec<Entry>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::Io { path: path.display().to_string(), reason: e.to_string() }),
    };
    let f: FileFormat = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        path: path.display().to_string(),
        // serde_json's message names line and column, not the content.
        reason: e.to_string(),
    })?;
    if f.version != 1 {
        return Err(StoreError::Corrupt {
            path: path.display().to_string(),
            reason: format!("unknown version {}", f.version),
        });
    }
    Ok(f.keys)
}

fn entry_to_key(e: &Entry, path: &Path) -> Result<ContentKey, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { path: path.display().to_string(), reason };
    let kid = KeyId::parse(&e.kid).ok_or_else(|| corrupt(format!("label {}: bad kid", e.label)))?;
    let key = Key::parse_hex(&e.key).ok_or_else(|| corrupt(format!("label {}: bad key", e.label)))?;
    Ok(ContentKey { name: e.label.clone(), kid, key })
}

fn save(path: &Path, keys: &BTreeMap<String, Arc<ContentKey>>, _why: &str) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io { path: path.display().to_string(), reason: e.to_string() };
    let file = FileFormat {
        version: 1,
        keys: keys
            .iter()
            .map(|(label, k)| Entry {
                label: label.clone(),
                kid: k.kid.uuid(),
                key: hex(k.key.bytes()),
                origin: String::new(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file)
        .map_err(|e| StoreError::Io { path: path.display().to_string(), reason: e.to_string() })?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("drm-origin-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.join("keys.json")
    }

    #[test]
    fn keys_survive_reopen() {
        let p = tmp("reopen");
        let s = FileKeyStore::open(Mode::Persistent(p.clone())).unwrap();
        let a = s.get_or_create("asset:x/video").unwrap();
        let b = s.get_or_create("asset:x/audio").unwrap();
        assert_ne!(a.kid, b.kid);
        assert_eq!(s.get_or_create("asset:x/video").unwrap().kid, a.kid);
        let s2 = FileKeyStore::open(Mode::Persistent(p.clone())).unwrap();
        let a2 = s2.peek("asset:x/video").unwrap();
        assert_eq!((a2.kid, a2.key.bytes()), (a.kid, a.key.bytes()));
        assert!(s2.peek("asset:y/video").is_none());
        // no temporary file left behind
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn corrupt_store_is_an_error_not_a_fresh_start() {
        let p = tmp("corrupt");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            "{\"version\":1,\"keys\":[{\"label\":\"a\",\"kid\":\"zz\",\"key\":\"00\",\"origin\":\"\"}]}",
        )
        .unwrap();
        let e = FileKeyStore::open(Mode::Persistent(p)).unwrap_err().to_string();
        assert!(e.contains("bad kid"), "{e}");
    }

    #[test]
    fn two_processes_sharing_a_file_keep_each_others_keys() {
        let p = tmp("shared");
        let a = FileKeyStore::open(Mode::Persistent(p.clone())).unwrap();
        let b = FileKeyStore::open(Mode::Persistent(p.clone())).unwrap();
        let ka = a.get_or_create("asset:x/video").unwrap();
        // b never saw x/video in memory: it must pick up a's key, not mint another.
        assert_eq!(b.get_or_create("asset:x/video").unwrap().kid, ka.kid);
        b.import("asset:y/video", KeyId([9; 16]), Key::new([3; 16])).unwrap();
        let kc = a.get_or_create("asset:z/audio").unwrap();
        let reopened = FileKeyStore::open(Mode::Persistent(p)).unwrap();
        for (label, kid) in [("asset:x/video", ka.kid), ("asset:y/video", KeyId([9; 16])), ("asset:z/audio", kc.kid)] {
            assert_eq!(reopened.peek(label).unwrap().kid, kid, "{label} lost");
        }
    }

    #[test]
    fn seed_mode_agrees_across_instances() {
        let seed = || Mode::Seed(Key30(vec![7u8; 30]));
        let a = FileKeyStore::open(seed()).unwrap().get_or_create("group:kids/video").unwrap();
        let b = FileKeyStore::open(seed()).unwrap().get_or_create("group:kids/video").unwrap();
        assert_eq!((a.kid, a.key.bytes()), (b.kid, b.key.bytes()));
        let c = FileKeyStore::open(seed()).unwrap().get_or_create("group:kids/audio").unwrap();
        assert_ne!(a.kid, c.kid);
    }

    #[test]
    fn debug_hides_seed() {
        assert!(!format!("{:?}", Key30(vec![0x41; 30])).contains("65"));
    }
}
