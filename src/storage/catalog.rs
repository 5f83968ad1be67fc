//! The watched asset folder, or the polled bucket.
//!
//! Layout: `<root>/<name>.mp4` is asset `<name>`; a folder below the root holding `.mp4` files is
//! one asset (its path) whose files are renditions. A file is taken into account once its size and
//! mtime were the same at the previous scan and it is older than `stable_after`, so a file still
//! being copied is not served half-written; replacing a file by `rename` is picked up the same way.
//!
//! A bucket (`[storage] backend = "s3"`) has the same layout under its prefix (keys
//! `<prefix><name>.mp4`, `<prefix><asset>/<file>.mp4`). An object is served from the first listing
//! that shows it (S3 uploads become visible whole); a new ETag or size is a new file. A listing
//! that fails keeps the catalogue as it was (the caller retries with backoff).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::mmap::MappedFile;
use super::remote::RemoteObject;
use super::s3::Bucket;
use crate::index;
use crate::packaging::plan::{self, Asset, SourceFile};

/// Knobs of the store.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Target segment duration (seconds).
    pub target_segment: f64,
    /// A file must be this old (mtime) and unchanged since the previous scan to be served.
    pub stable_after: Duration,
    /// Base URL for the log lines that announce an asset's manifests.
    pub base_url: String,
}

/// What is served for an asset id.
#[derive(Debug, Clone)]
pub enum AssetState {
    /// Packaged and servable.
    Ready(Arc<Asset>),
    /// Its files could not be used; the reason names the file.
    Broken(String),
}

/// Every known asset, swapped as a whole after each scan that changed something.
#[derive(Debug, Default)]
pub struct Library {
    /// By asset id.
    pub assets: BTreeMap<String, AssetState>,
}

/// What says a file changed: for a local file its size, mtime and inode; for an object its
/// size, Last-Modified and (in `ino`) a hash of its ETag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    path: PathBuf,
    stamp: Stamp,
    /// The object's ETag (bucket backend; empty for files).
    etag: String,
}

/// Where the files are.
enum Backend {
    Folder(PathBuf),
    Bucket(Arc<Bucket>),
}

/// The asset folder, its current [`Library`] and the index cache.
pub struct Store {
    backend: Backend,
    settings: StoreSettings,
    library: RwLock<Arc<Library>>,
    cache: moka::sync::Cache<FileKey, Arc<SourceFile>>,
    state: Mutex<ScanState>,
    /// Assets a running scan found and is about to build, by id. A request for one of them
    /// builds it right away through the same once-cell the scan uses, so it waits for its own
    /// files' indexing only, never for the rest of the folder.
    pending: Mutex<HashMap<String, Arc<Pending>>>,
    /// Indexing cost, for `/metrics`.
    pub stats: IndexStats,
}

/// An asset to build: its files, and the result once built (by the scan or by a request).
struct Pending {
    keys: Vec<FileKey>,
    built: OnceLock<(AssetState, bool)>,
}

/// Files indexed since start and the time it took (`/metrics`: issue 12.4).
#[derive(Debug, Default)]
pub struct IndexStats {
    /// Files indexed.
    pub files: AtomicU64,
    /// Time spent indexing them, in nanoseconds.
    pub nanos: AtomicU64,
    /// The longest one, in nanoseconds.
    pub max_nanos: AtomicU64,
}

#[derive(Default)]
struct ScanState {
    scans: u64,
    seen: HashMap<PathBuf, Stamp>,
    built: HashMap<String, Vec<FileKey>>,
    warned_names: std::collections::HashSet<PathBuf>,
}

const MAX_DEPTH: usize = 16;

impl Store {
    /// A store over the folder `root`; call [`Store::rescan`] to fill it.
    pub fn new(root: PathBuf, settings: StoreSettings) -> Store {
        Store::with_backend(Backend::Folder(root), settings)
    }

    /// A store over a bucket; call [`Store::rescan`] to fill it.
    pub fn bucket(bucket: Arc<Bucket>, settings: StoreSettings) -> Store {
        Store::with_backend(Backend::Bucket(bucket), settings)
    }

    fn with_backend(backend: Backend, settings: StoreSettings) -> Store {
        let cache = moka::sync::Cache::builder()
            .weigher(|_k: &FileKey, v: &Arc<SourceFile>| u32::try_from(v.index.weight()).unwrap_or(u32::MAX))
            .max_capacity(512 << 20)
            .build();
        Store {
            backend,
            settings,
            library: RwLock::new(Arc::default()),
            cache,
            state: Mutex::default(),
            pending: Mutex::default(),
            stats: IndexStats::default(),
        }
    }

    /// The bucket, for the bucket backend (its traffic counters feed `/metrics`).
    pub fn remote(&self) -> Option<&Arc<Bucket>> {
        match &self.backend {
            Backend::Bucket(b) => Some(b),
            Backend::Folder(_) => None,
        }
    }

    /// The folder or `s3://bucket/prefix`, for log lines.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Folder(root) => root.display().to_string(),
            Backend::Bucket(b) => b.describe(),
        }
    }

    /// The current library (cheap: an `Arc` clone).
    pub fn library(&self) -> Arc<Library> {
        match self.library.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Heap bytes held by the indexes of the files the current library serves.
    pub fn index_bytes(&self) -> usize {
        let lib = self.library();
        let mut seen = std::collections::HashSet::new();
        let mut total = 0usize;
        for state in lib.assets.values() {
            let AssetState::Ready(a) = state else { continue };
            for r in &a.renditions {
                if seen.insert(Arc::as_ptr(&r.source)) {
                    total = total.saturating_add(r.source.index.heap_bytes());
                }
            }
        }
        total
    }

    /// True when a running scan found asset `id` and has not published it yet.
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending_map().contains_key(id)
    }

    /// Asset `id` of a running scan, built now if the scan has not reached it yet (a concurrent
    /// build of the same asset is waited for, not repeated). `None` when no scan holds it.
    /// Blocking (indexing): call from a blocking thread.
    pub fn build_pending(&self, id: &str) -> Option<AssetState> {
        let p = self.pending_map().get(id).cloned()?;
        Some(p.built.get_or_init(|| self.build_asset(id, &p.keys)).0.clone())
    }

    fn pending_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pending>>> {
        match self.pending.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }

    /// Scans the folder (lists the bucket) once and publishes a new library if anything changed.
    /// Blocking (file system or storage reads, indexing): call from a blocking thread. `false`
    /// when the bucket could not be listed: the library stays as it was.
    pub fn rescan(&self) -> bool {
        let mut st = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let first_scan = st.scans == 0;
        st.scans = st.scans.saturating_add(1);
        let now = SystemTime::now();
        let mut found: Vec<(PathBuf, Stamp, String)> = Vec::new();
        let settled_when_seen = match &self.backend {
            Backend::Folder(root) => {
                walk(root, root, 0, &mut found, &mut st.warned_names);
                false
            }
            Backend::Bucket(b) => match b.list() {
                Ok(objects) => {
                    listed(objects, &mut found, &mut st.warned_names);
                    true
                }
                Err(e) => {
                    tracing::warn!(store = %b.describe(), reason = %e, assets = self.library().assets.len(), "bucket not listed; the catalogue stays as it was");
                    return false;
                }
            },
        };
        let previous = std::mem::take(&mut st.seen);
        // Group stable files by asset id; remember assets with files still changing.
        let mut groups: BTreeMap<String, Vec<FileKey>> = BTreeMap::new();
        let mut unsettled: std::collections::HashSet<String> = Default::default();
        for (rel, stamp, etag) in &found {
            let old_enough = settled_when_seen || mtime_age(stamp, now) >= self.settings.stable_after;
            let unchanged = settled_when_seen || previous.get(rel) == Some(stamp) || first_scan;
            let Some(id) = asset_id(rel) else { continue };
            if old_enough && unchanged {
                groups.entry(id).or_default().push(FileKey { path: rel.clone(), stamp: *stamp, etag: etag.clone() });
            } else {
                unsettled.insert(id);
            }
        }
        st.seen = found.into_iter().map(|(p, s, _)| (p, s)).collect();

        let old_lib = self.library();
        let mut assets = BTreeMap::new();
        let mut changed = false;
        // First every asset to build is announced (so requests can build theirs on demand),
        // then they are built in order.
        let mut to_build: Vec<(String, Arc<Pending>)> = Vec::new();
        for (id, mut keys) in groups {
            keys.sort_by(|a, b| a.path.cmp(&b.path));
            let unchanged = st.built.get(&id) == Some(&keys);
            if unchanged || unsettled.contains(&id) {
                if let Some(prev) = old_lib.assets.get(&id) {
                    assets.insert(id.clone(), prev.clone());
                    continue;
                }
                if unsettled.contains(&id) {
                    continue;
                }
            }
            to_build.push((id, Arc::new(Pending { keys, built: OnceLock::new() })));
        }
        self.pending_map().extend(to_build.iter().map(|(id, p)| (id.clone(), p.clone())));
        for (id, p) in &to_build {
            changed = true;
            let (state, retry) = p.built.get_or_init(|| self.build_asset(id, &p.keys)).clone();
            if !retry {
                st.built.insert(id.clone(), p.keys.clone());
            }
            assets.insert(id.clone(), state);
        }
        // Assets that disappeared.
        for id in old_lib.assets.keys() {
            if !assets.contains_key(id) && !unsettled.contains(id) {
                changed = true;
                tracing::info!(asset = %id, "asset removed");
            } else if !assets.contains_key(id) {
                if let Some(prev) = old_lib.assets.get(id) {
                    assets.insert(id.clone(), prev.clone());
                }
            }
        }
        st.built.retain(|id, _| assets.contains_key(id));
        let retrying: Vec<&String> = assets.keys().filter(|id| !st.built.contains_key(*id)).collect();
        if !retrying.is_empty() {
            tracing::debug!(assets = ?retrying, "storage errors while indexing: retried at the next scan");
        }
        // Drop cached indexes (and mappings) of files that are gone or changed.
        let live: std::collections::HashSet<FileKey> = st.built.values().flatten().cloned().collect();
        let stale: Vec<FileKey> = self.cache.iter().map(|(k, _)| (*k).clone()).filter(|k| !live.contains(k)).collect();
        for k in stale {
            self.cache.invalidate(&k);
        }
        if changed || first_scan {
            let lib = Arc::new(Library { assets });
            match self.library.write() {
                Ok(mut l) => *l = lib,
                Err(p) => *p.into_inner() = lib,
            }
        }
        // Published (or dropped): requests now find these assets in the library.
        let mut pending = self.pending_map();
        for (id, p) in &to_build {
            if pending.get(id).is_some_and(|q| Arc::ptr_eq(q, p)) {
                pending.remove(id);
            }
        }
        true
    }

    /// The asset's state, and whether to build it again at the next scan (a storage read failed:
    /// the object may be fine once the bucket answers again).
    fn build_asset(&self, id: &str, keys: &[FileKey]) -> (AssetState, bool) {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        let mut retry = false;
        for k in keys {
            match self.cache.get(k) {
                Some(f) => files.push(f),
                None => match self.load(k) {
                    Ok(f) => {
                        let f = Arc::new(f);
                        self.cache.insert(k.clone(), f.clone());
                        files.push(f);
                    }
                    Err(e) => {
                        retry |= matches!(self.backend, Backend::Bucket(_)) && matches!(e, index::IndexError::Io(_));
                        tracing::error!(asset = %id, file = %k.path.display(), reason = %e, "cannot serve file");
                        errors.push(format!("{}: {e}", k.path.display()));
                    }
                },
            }
        }
        if files.is_empty() {
            return (AssetState::Broken(errors.join("; ")), retry);
        }
        let asset = plan::plan(id, files, self.settings.target_segment);
        for w in &asset.warnings {
            tracing::warn!(asset = %id, "{w}");
        }
        for e in &errors {
            tracing::warn!(asset = %id, "served without {e}");
        }
        let base = &self.settings.base_url;
        tracing::info!(
            asset = %id,
            renditions = asset.renditions.len(),
            duration = format_args!("{:.3}s", asset.duration),
            dash = %format_args!("{base}/{id}/manifest.mpd"),
            hls = %format_args!("{base}/{id}/master.m3u8"),
            "asset ready"
        );
        (AssetState::Ready(Arc::new(asset)), retry)
    }

    fn load(&self, k: &FileKey) -> Result<SourceFile, index::IndexError> {
        let root = match &self.backend {
            Backend::Folder(root) => root,
            Backend::Bucket(b) => {
                let started = Instant::now();
                let f = load_object(b, k)?;
                self.indexed(&k.path, started.elapsed(), &f.index);
                return Ok(f);
            }
        };
        let path = root.join(&k.path);
        let mapped = MappedFile::open(&path)?;
        let started = Instant::now();
        let idx = index::build(mapped.file(), mapped.len())?;
        self.indexed(&k.path, started.elapsed(), &idx);
        let stem = k.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let st = k.stamp;
        let fingerprint = super::fnv1a(&[
            k.path.as_os_str().as_encoded_bytes(),
            &st.len.to_be_bytes(),
            &st.mtime_ns.to_be_bytes(),
            &st.ino.to_be_bytes(),
        ]);
        let modified = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_nanos(u64::try_from(st.mtime_ns.max(0)).unwrap_or(0)))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let source = super::source::Source::Local(mapped);
        Ok(SourceFile { name: k.path.display().to_string(), stem, data: source, index: idx, modified, fingerprint })
    }
}

impl Store {
    fn indexed(&self, path: &Path, took: Duration, idx: &index::FileIndex) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.stats.files.fetch_add(1, Relaxed);
        self.stats.nanos.fetch_add(ns, Relaxed);
        self.stats.max_nanos.fetch_max(ns, Relaxed);
        let samples: usize = idx.tracks.iter().map(|t| t.samples.len()).sum();
        tracing::debug!(
            file = %path.display(),
            took = format_args!("{:.3}ms", took.as_secs_f64() * 1e3),
            samples,
            index_bytes = idx.heap_bytes(),
            "file indexed"
        );
    }
}

/// Indexes one object with ranged GETs (box headers, `moov`, `moof`: see `storage::remote`).
fn load_object(bucket: &Arc<Bucket>, k: &FileKey) -> Result<SourceFile, index::IndexError> {
    let key = k.path.to_string_lossy().into_owned();
    let object = RemoteObject::new(bucket.clone(), key.clone(), k.etag.clone(), k.stamp.len);
    let idx = index::build(&object.indexer(), object.len())?;
    let stem = k.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let fingerprint = super::fnv1a(&[b"s3", key.as_bytes(), &k.stamp.len.to_be_bytes(), k.etag.as_bytes()]);
    let modified = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_nanos(u64::try_from(k.stamp.mtime_ns.max(0)).unwrap_or(0)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let data = super::source::Source::Remote(object);
    Ok(SourceFile { name: key, stem, data, index: idx, modified, fingerprint })
}

/// The servable objects of a listing, with the folder's naming rules (`.mp4`, URL-safe names,
/// no hidden components, bounded depth).
fn listed(
    objects: Vec<super::s3::Listed>,
    out: &mut Vec<(PathBuf, Stamp, String)>,
    warned: &mut std::collections::HashSet<PathBuf>,
) {
    for o in objects {
        let rel = PathBuf::from(&o.key);
        let parts: Vec<&str> = o.key.split('/').collect();
        if !o.key.ends_with(".mp4") || parts.iter().any(|p| p.starts_with('.')) {
            continue;
        }
        if parts.len() > MAX_DEPTH || !parts.iter().all(|p| valid_name(p)) {
            if warned.insert(rel.clone()) {
                tracing::warn!(key = %o.key, "object key is not URL-safe ([A-Za-z0-9._-] per part); ignored");
            }
            continue;
        }
        let stamp = Stamp { len: o.size, mtime_ns: o.modified_ns, ino: super::fnv1a(&[o.etag.as_bytes()]), dev: 0 };
        out.push((rel, stamp, o.etag));
    }
}

fn mtime_age(stamp: &Stamp, now: SystemTime) -> Duration {
    let now_ns = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let now_ns = i128::try_from(now_ns).unwrap_or(i128::MAX);
    let age = now_ns.saturating_sub(stamp.mtime_ns).max(0);
    Duration::from_nanos(u64::try_from(age).unwrap_or(u64::MAX))
}

/// Asset id of a file path relative to the root: its folder, or its stem at the root.
fn asset_id(rel: &Path) -> Option<String> {
    let parent = rel.parent()?;
    if parent.as_os_str().is_empty() {
        return rel.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    let parts: Vec<String> = parent.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    Some(parts.join("/"))
}

/// Names that are safe in URLs and on every file system: no dot files, no spaces, no `%`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<(PathBuf, Stamp, String)>,
    warned: &mut std::collections::HashSet<PathBuf>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        if depth == 0 {
            tracing::error!(dir = %dir.display(), "cannot read the asset folder");
        }
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // hidden files and temporary copies (`.x.mp4.part`) are never served
        }
        // symlink_metadata: a symlink is not followed, so nothing outside the root is served.
        let Ok(meta) = entry.metadata() else { continue };
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        if meta.is_dir() {
            if valid_name(&name) {
                walk(root, &path, depth.saturating_add(1), out, warned);
            } else if warned.insert(rel.to_path_buf()) {
                tracing::warn!(path = %rel.display(), "folder name is not URL-safe ([A-Za-z0-9._-]); ignored");
            }
        } else if meta.is_file() && name.ends_with(".mp4") {
            if !valid_name(&name) {
                if warned.insert(rel.to_path_buf()) {
                    tracing::warn!(path = %rel.display(), "file name is not URL-safe ([A-Za-z0-9._-]); ignored");
                }
                continue;
            }
            let stamp = Stamp {
                len: meta.len(),
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
                ino: meta.ino(),
                dev: meta.dev(),
            };
            out.push((rel.to_path_buf(), stamp, String::new()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_ids_follow_the_layout() {
        assert_eq!(asset_id(Path::new("movie.mp4")).as_deref(), Some("movie"));
        assert_eq!(asset_id(Path::new("kids/cartoon/v1.mp4")).as_deref(), Some("kids/cartoon"));
    }

    #[test]
    fn names_must_be_url_safe() {
        assert!(valid_name("video_720p.mp4"));
        assert!(!valid_name("..") && !valid_name(".hidden.mp4") && !valid_name("a b.mp4"));
        assert!(!valid_name("a%2f.mp4"));
    }
}
