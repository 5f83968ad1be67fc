//! The static license folder (`[licenses] dir`), laid out for any HTTP server:
//!
//! ```text
//! {dir}/public/            ← the only folder a static server exposes
//!   v1/keys.json                                   origin JWKS + key announcements
//!   v1/d/{device}/{gen}/index.json                 signed listing, written last
//!   v1/d/{device}/{gen}/a/{asset}.lic              direct licenses bound to the device
//!   v1/d/{device}/{gen}/root/{policy}.{ver}.rlic   root licenses of chained policies (issue 11)
//!   v1/m/{domain}/{kv}/index.json
//!   v1/m/{domain}/{kv}/a/{asset}.lic               licenses bound to the domain key
//!   v1/m/{domain}/{kv}/k/{device}.dkey             the domain key wrapped to each member
//! {dir}/staging/           ← temporary files (mode 0700, never served), and the writers' lock
//! ```
//!
//! * **Atomic**: a file is written to `staging/`, flushed to disk, made readable (0644) and
//!   renamed into `public/`, so a static server only ever sees complete, signed files; a
//!   folder's `index.json` is written after its files (and their directories) are durable. A
//!   crash or a full disk leaves the previous files or the new ones, never a torn one, and the
//!   next run completes the folder.
//! * **Deterministic and skipping**: every object carries the digest of its inputs in its
//!   payload (`ih`); a file whose digest is unchanged is not rewritten, so a rerun over an
//!   unchanged registry writes nothing. The folder itself is the writer's state: no table can
//!   disagree with it, and a wiped folder is simply rewritten.
//! * **Generations in paths**: a reset device's folder is deleted and its next registration
//!   writes under `gen + 1`, so no CDN serves a dead generation's files under a current path.
//!
//! Writers serialise per folder: in one process with a mutex, across processes (the server's
//! task and `licenses generate`) with an advisory lock on `staging/.lock`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::issue::{self, AssetEntry, Planned};
use super::jose;
use super::keys::OriginKeys;
use super::objects::{Binding, Index, IndexDomain, IndexEntry, V};
use super::registry::{DeviceRecord, DomainRecord};
use super::DeviceError;

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Files written (new or changed).
    pub written: u64,
    /// Files already up to date.
    pub unchanged: u64,
    /// Files removed (stale generations, revoked devices, lapsed entitlements).
    pub removed: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Folders visited.
    pub folders: u64,
}

impl Report {
    /// Adds `other` to this report.
    pub fn add(&mut self, other: Report) {
        self.written = self.written.saturating_add(other.written);
        self.unchanged = self.unchanged.saturating_add(other.unchanged);
        self.removed = self.removed.saturating_add(other.removed);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.folders = self.folders.saturating_add(other.folders);
    }
}

/// Why the folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file-system operation failed (a full disk among them).
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// An object could not be built.
    #[error(transparent)]
    Build(#[from] DeviceError),
}

impl WriteError {
    /// True when the disk (or its quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, WriteError::Io { error, .. } if error.raw_os_error() == Some(28) || error.kind() == std::io::ErrorKind::StorageFull)
    }
}

fn io(path: &Path, error: std::io::Error) -> WriteError {
    WriteError::Io { path: path.display().to_string(), error }
}

/// The folder writer.
pub struct Writer {
    public: PathBuf,
    staging: PathBuf,
    fsync: bool,
    lock: Mutex<()>,
    counter: AtomicU64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("public", &self.public).finish_non_exhaustive()
    }
}

/// `v1/d/{id}/{gen}`.
pub fn device_folder(id: &str, gen: u64) -> String {
    format!("v1/d/{id}/{gen}")
}

/// `v1/m/{id}/{kv}`.
pub fn domain_folder(id: &str, kv: u64) -> String {
    format!("v1/m/{id}/{kv}")
}

/// The payload's `ih` of a file we wrote, if it is one.
fn payload_ih(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let p = text.split('.').nth(1)?;
    let payload: serde_json::Value = serde_json::from_slice(&jose::b64d(p)?).ok()?;
    payload.get("ih")?.as_str().map(str::to_owned)
}

impl Writer {
    /// Opens (creating) `dir/public` and `dir/staging`, and removes temporary files that a
    /// killed writer left behind.
    pub fn open(dir: &Path, fsync: bool) -> Result<Writer, WriteError> {
        let public = dir.join("public");
        let staging = dir.join("staging");
        std::fs::create_dir_all(&public).map_err(|e| io(&public, e))?;
        std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(&staging, e))?;
        let w = Writer { public, staging, fsync, lock: Mutex::new(()), counter: AtomicU64::new(0) };
        w.clean_staging();
        Ok(w)
    }

    /// The folder a static server exposes.
    pub fn public_root(&self) -> &Path {
        &self.public
    }

    /// Removes temporary files of writers that are gone (their pid no longer runs) or that are
    /// older than an hour (no writer takes that long over one small file).
    fn clean_staging(&self) {
        let Ok(entries) = std::fs::read_dir(&self.staging) else { return };
        let me = std::process::id().to_string();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".tmp") else { continue };
            let pid = stem.split('-').next().unwrap_or("");
            let alive = pid == me || Path::new("/proc").join(pid).exists();
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if !alive || old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Exclusive advisory lock shared with other processes writing this folder.
    fn flock(&self) -> Result<File, WriteError> {
        let p = self.staging.join(".lock");
        let f =
            OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&p).map_err(|e| io(&p, e))?;
        f.lock().map_err(|e| io(&p, e))?;
        Ok(f)
    }

    /// Writes `bytes` at `rel` (under `public/`) atomically.
    fn put(&self, rel: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let target = self.public.join(rel);
        let mut r = [0u8; 4];
        let _ = getrandom::fill(&mut r);
        let tmp = self.staging.join(format!(
            "{}-{}-{}.tmp",
            std::process::id(),
            self.counter.fetch_add(1, Relaxed),
            crate::crypto::key::hex(&r)
        ));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(bytes)?;
            if self.fsync {
                f.sync_data()?;
            }
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            drop(f);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&tmp, &target)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&target, e));
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), WriteError> {
        if self.fsync && dir.is_dir() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
        }
        Ok(())
    }

    /// `v1/keys.json`.
    pub fn write_keys(&self, keys: &OriginKeys) -> Result<Report, WriteError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _f = self.flock()?;
        let rel = "v1/keys.json";
        let mut report = Report::default();
        if std::fs::read(self.public.join(rel)).ok().as_deref() == Some(keys.jwks_json().as_bytes()) {
            report.unchanged = 1;
        } else {
            self.put(rel, keys.jwks_json().as_bytes())?;
            report.written = 1;
            report.bytes = keys.jwks_json().len() as u64;
        }
        Ok(report)
    }

    /// Writes one folder: its planned files (skipping unchanged ones), then its index, then
    /// removes files the plan no longer has.
    fn write_folder(
        &self,
        keys: &OriginKeys,
        folder: &str,
        bind: &Binding,
        planned: Vec<(String, Planned)>,
        domains: Vec<IndexDomain>,
    ) -> Result<Report, WriteError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _f = self.flock()?;
        let mut report = Report { folders: 1, ..Report::default() };
        let mut entries = Vec::with_capacity(planned.len());
        let mut keep: BTreeSet<PathBuf> = BTreeSet::new();
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        // A file is kept only if its input digest is current AND the folder's (verified) index
        // lists its exact bytes: a file altered in place, or a folder whose index is missing or
        // forged, is rewritten.
        let listed = self.listed(keys, folder);
        for (rel, p) in planned {
            let path = self.public.join(&rel);
            let current = std::fs::read(&path).ok();
            let intact = |b: &[u8]| {
                listed.as_ref().and_then(|l| l.get(&rel)).is_some_and(|d| *d == jose::b64e(&jose::sha256(b)))
            };
            let bytes = match current {
                Some(b) if payload_ih(&b).as_deref() == Some(p.ih.as_str()) && intact(&b) => {
                    report.unchanged = report.unchanged.saturating_add(1);
                    b
                }
                _ => {
                    let jws = p.build(keys)?;
                    self.put(&rel, jws.as_bytes())?;
                    report.written = report.written.saturating_add(1);
                    report.bytes = report.bytes.saturating_add(jws.len() as u64);
                    if let Some(d) = path.parent() {
                        dirs.insert(d.to_path_buf());
                    }
                    jws.into_bytes()
                }
            };
            entries.push(IndexEntry {
                path: rel,
                sha256: jose::b64e(&jose::sha256(&bytes)),
                exp: p.exp,
                asset: p.asset,
                kids: p.kids,
            });
            keep.insert(path);
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        // The files must be durable before the index that lists them.
        for d in &dirs {
            self.sync_dir(d)?;
        }
        let index_rel = format!("{folder}/index.json");
        let index_path = self.public.join(&index_rel);
        keep.insert(index_path.clone());
        let (ih, jws) = index_digest(keys, bind, entries, domains)?;
        let current = std::fs::read(&index_path).ok();
        if listed.is_some() && current.as_deref().and_then(payload_ih).as_deref() == Some(ih.as_str()) {
            report.unchanged = report.unchanged.saturating_add(1);
        } else {
            let jws = jws.sign(keys)?;
            self.put(&index_rel, jws.as_bytes())?;
            self.sync_dir(&self.public.join(folder))?;
            report.written = report.written.saturating_add(1);
            report.bytes = report.bytes.saturating_add(jws.len() as u64);
        }
        report.removed = self.remove_except(&self.public.join(folder), &keep)?;
        Ok(report)
    }

    /// The digests a folder's index lists, if the index verifies with a published key.
    fn listed(&self, keys: &OriginKeys, folder: &str) -> Option<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(self.public.join(folder).join("index.json")).ok()?;
        let jws = jose::Jws::parse(text.trim()).ok()?;
        let signer = keys.ring().iter().find(|k| jws.header.kid.as_deref() == Some(k.kid.as_str()))?;
        jws.verify(&signer.key.public()).ok()?;
        jws.payload_as::<Index>().ok().map(|i| i.files.into_iter().map(|f| (f.path, f.sha256)).collect())
    }

    /// Removes every file under `dir` that is not in `keep` (and emptied folders).
    fn remove_except(&self, dir: &Path, keep: &BTreeSet<PathBuf>) -> Result<u64, WriteError> {
        let mut removed = 0u64;
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                removed = removed.saturating_add(self.remove_except(&p, keep)?);
                let _ = std::fs::remove_dir(&p);
            } else if !keep.contains(&p) {
                std::fs::remove_file(&p).map_err(|err| io(&p, err))?;
                removed = removed.saturating_add(1);
            }
        }
        Ok(removed)
    }

    /// Deletes a folder tree: its `index.json` first (so nobody lists what is going), then the rest.
    fn remove_tree(&self, dir: &Path) -> Result<u64, WriteError> {
        if !dir.exists() {
            return Ok(0);
        }
        let mut removed = 0u64;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let idx = d.join("index.json");
            if idx.exists() {
                std::fs::remove_file(&idx).map_err(|e| io(&idx, e))?;
                removed = removed.saturating_add(1);
            }
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        stack.push(e.path());
                    }
                }
            }
        }
        removed = removed.saturating_add(self.remove_except(dir, &BTreeSet::new())?);
        let _ = std::fs::remove_dir(dir);
        Ok(removed)
    }

    /// Writes a device's folder for its current generation (licenses for every entitled asset,
    /// the domains it belongs to) and removes its other generations.
    pub fn write_device(
        &self,
        keys: &OriginKeys,
        dev: &DeviceRecord,
        domains: &[DomainRecord],
        catalog: &[AssetEntry],
        now: i64,
        ttl_secs: i64,
    ) -> Result<Report, WriteError> {
        let folder = device_folder(&dev.id, dev.gen);
        let bind = issue::device_binding(dev);
        let mut planned = Vec::new();
        if let Some(p) = issue::period(now, ttl_secs, dev.entitlement.until) {
            // A chaining device gets the roots of chained policies instead of their assets'
            // licenses; a device that cannot chain gets direct licenses for them (legacy fallback).
            for entry in catalog.iter().filter(|e| issue::entitled(&dev.entitlement, e, now)) {
                if entry.chained && dev.chain {
                    continue;
                }
                planned.push((
                    format!("{folder}/a/{}.lic", entry.id),
                    issue::plan_license(keys, entry, &bind, &dev.enc, p),
                ));
            }
            if dev.chain {
                for (rkid, plan) in issue::plan_roots(keys, catalog, &dev.entitlement, &bind, &dev.enc, p, now) {
                    planned.push((format!("{folder}/root/{rkid}.rlic"), plan));
                }
            }
        }
        let listed = domains
            .iter()
            .filter(|d| d.members.contains(&dev.id))
            .map(|d| {
                let f = domain_folder(&d.id, d.kv);
                IndexDomain {
                    id: d.id.clone(),
                    kv: d.kv,
                    dkey: format!("{f}/k/{}.dkey", dev.id),
                    index: format!("{f}/index.json"),
                }
            })
            .collect();
        let mut report = self.write_folder(keys, &folder, &bind, planned, listed)?;
        report.removed =
            report.removed.saturating_add(self.remove_other_versions(&format!("v1/d/{}", dev.id), dev.gen)?);
        Ok(report)
    }

    /// Writes a domain's folder for its current key version (a key per member, licenses for
    /// what its members are entitled to) and removes older key versions.
    pub fn write_domain(
        &self,
        keys: &OriginKeys,
        dom: &DomainRecord,
        members: &[DeviceRecord],
        catalog: &[AssetEntry],
        now: i64,
        ttl_secs: i64,
    ) -> Result<Report, WriteError> {
        let folder = domain_folder(&dom.id, dom.kv);
        let (bind, public) = issue::domain_binding(keys, dom)?;
        let members: Vec<&DeviceRecord> = members.iter().filter(|m| dom.members.contains(&m.id)).collect();
        let mut planned = Vec::new();
        for m in &members {
            planned.push((format!("{folder}/k/{}.dkey", m.id), issue::plan_domain_key(keys, dom, m)));
        }
        let ents: Vec<&super::registry::Entitlement> = members.iter().map(|m| &m.entitlement).collect();
        let ent = issue::union(&ents);
        if let Some(p) = issue::period(now, ttl_secs, ent.until) {
            for entry in catalog.iter().filter(|e| issue::entitled(&ent, e, now)) {
                planned.push((
                    format!("{folder}/a/{}.lic", entry.id),
                    issue::plan_license(keys, entry, &bind, &public, p),
                ));
            }
        }
        let mut report = self.write_folder(keys, &folder, &bind, planned, Vec::new())?;
        report.removed =
            report.removed.saturating_add(self.remove_other_versions(&format!("v1/m/{}", dom.id), dom.kv)?);
        Ok(report)
    }

    /// Removes `{base}/{n}` for every `n` other than `keep`.
    fn remove_other_versions(&self, base: &str, keep: u64) -> Result<u64, WriteError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _f = self.flock()?;
        let dir = self.public.join(base);
        let mut removed = 0u64;
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(0) };
        for e in entries.flatten() {
            if e.file_name().to_str() != Some(keep.to_string().as_str()) {
                removed = removed.saturating_add(self.remove_tree(&e.path())?);
            }
        }
        Ok(removed)
    }

    /// Removes everything of device `id` (every generation).
    pub fn remove_device(&self, id: &str) -> Result<u64, WriteError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _f = self.flock()?;
        self.remove_tree(&self.public.join(format!("v1/d/{id}")))
    }

    /// Removes everything of domain `id`.
    pub fn remove_domain(&self, id: &str) -> Result<u64, WriteError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _f = self.flock()?;
        self.remove_tree(&self.public.join(format!("v1/m/{id}")))
    }

    /// Removes folders of devices that are not active and of domains that no longer exist.
    pub fn sweep(&self, active: &[DeviceRecord], domains: &[DomainRecord]) -> Result<u64, WriteError> {
        let devices: BTreeSet<&str> = active.iter().map(|d| d.id.as_str()).collect();
        let doms: BTreeSet<&str> = domains.iter().map(|d| d.id.as_str()).collect();
        let mut removed = 0u64;
        for (base, live) in [("v1/d", &devices), ("v1/m", &doms)] {
            let Ok(entries) = std::fs::read_dir(self.public.join(base)) else { continue };
            let stale: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| !live.contains(n.as_str()))
                .collect();
            for id in stale {
                let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
                let _f = self.flock()?;
                removed = removed.saturating_add(self.remove_tree(&self.public.join(format!("{base}/{id}")))?);
            }
        }
        Ok(removed)
    }

    /// Checks the public tree: every file parses as one of our signed objects and verifies with
    /// a published key, and every index lists files that exist with its digests. Returns one
    /// line per problem.
    pub fn check(&self, keys: &OriginKeys) -> Vec<String> {
        let mut problems = Vec::new();
        let mut stack = vec![self.public.join("v1")];
        let published: BTreeMap<&str, jose::Jwk> =
            keys.ring().iter().map(|k| (k.kid.as_str(), k.key.public())).collect();
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p.strip_prefix(&self.public).unwrap_or(&p).display().to_string();
                if rel == "v1/keys.json" {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&p) else {
                    problems.push(format!("{rel}: unreadable"));
                    continue;
                };
                let verified = jose::Jws::parse(text.trim()).ok().filter(|j| {
                    j.header.kid.as_deref().and_then(|k| published.get(k)).is_some_and(|k| j.verify(k).is_ok())
                });
                let Some(jws) = verified else {
                    problems.push(format!("{rel}: not a complete object signed by a published key"));
                    continue;
                };
                if rel.ends_with("/index.json") {
                    let Ok(idx) = jws.payload_as::<Index>() else {
                        problems.push(format!("{rel}: unreadable index"));
                        continue;
                    };
                    for f in idx.files {
                        match std::fs::read(self.public.join(&f.path)) {
                            Ok(b) if jose::b64e(&jose::sha256(&b)) == f.sha256 => {}
                            Ok(_) => problems.push(format!("{rel}: {} differs from its listed digest", f.path)),
                            Err(_) => problems.push(format!("{rel}: lists {}, which is missing", f.path)),
                        }
                    }
                }
            }
        }
        problems
    }
}

/// An index ready to sign once we know it changed.
struct IndexToSign {
    bind: Binding,
    files: Vec<IndexEntry>,
    domains: Vec<IndexDomain>,
}

impl IndexToSign {
    fn sign(self, keys: &OriginKeys) -> Result<String, WriteError> {
        Ok(issue::index(keys, &self.bind, self.files, self.domains)?.1)
    }
}

/// The digest an index would have, without signing it (signing is the costly part).
fn index_digest(
    keys: &OriginKeys,
    bind: &Binding,
    files: Vec<IndexEntry>,
    domains: Vec<IndexDomain>,
) -> Result<(String, IndexToSign), WriteError> {
    let idx = Index { v: V, bind: bind.clone(), files, domains, ih: None };
    let ih = issue::index_input_digest(keys, &idx)?;
    Ok((ih, IndexToSign { bind: idx.bind, files: idx.files, domains: idx.domains }))
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
