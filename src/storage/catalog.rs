//! The watched asset folder.
//!
//! Layout: `<root>/<name>.mp4` is asset `<name>`; a folder below the root holding `.mp4` files is
//! one asset (its path) whose files are renditions. A file is taken into account once its size and
//! mtime were the same at the previous scan and it is older than `stable_after`, so a file still
//! being copied is not served half-written; replacing a file by `rename` is picked up the same way.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use super::mmap::MappedFile;
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
}

/// The asset folder, its current [`Library`] and the index cache.
pub struct Store {
    root: PathBuf,
    settings: StoreSettings,
    library: RwLock<Arc<Library>>,
    cache: moka::sync::Cache<FileKey, Arc<SourceFile>>,
    state: Mutex<ScanState>,
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
    /// A store over `root`; call [`Store::rescan`] to fill it.
    pub fn new(root: PathBuf, settings: StoreSettings) -> Store {
        let cache = moka::sync::Cache::builder()
            .weigher(|_k: &FileKey, v: &Arc<SourceFile>| u32::try_from(v.index.weight()).unwrap_or(u32::MAX))
            .max_capacity(512 << 20)
            .build();
        Store { root, settings, library: RwLock::new(Arc::default()), cache, state: Mutex::default() }
    }

    /// The current library (cheap: an `Arc` clone).
    pub fn library(&self) -> Arc<Library> {
        match self.library.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Scans the folder once and publishes a new library if anything changed.
    /// Blocking (file system and indexing): call from a blocking thread.
    pub fn rescan(&self) {
        let mut st = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let first_scan = st.scans == 0;
        st.scans = st.scans.saturating_add(1);
        let now = SystemTime::now();
        let mut found: Vec<(PathBuf, Stamp)> = Vec::new();
        walk(&self.root, &self.root, 0, &mut found, &mut st.warned_names);
        let previous = std::mem::take(&mut st.seen);
        // Group stable files by asset id; remember assets with files still changing.
        let mut groups: BTreeMap<String, Vec<FileKey>> = BTreeMap::new();
        let mut unsettled: std::collections::HashSet<String> = Default::default();
        for (rel, stamp) in &found {
            let old_enough = mtime_age(stamp, now) >= self.settings.stable_after;
            let unchanged = previous.get(rel) == Some(stamp) || first_scan;
            let Some(id) = asset_id(rel) else { continue };
            if old_enough && unchanged {
                groups.entry(id).or_default().push(FileKey { path: rel.clone(), stamp: *stamp });
            } else {
                unsettled.insert(id);
            }
        }
        st.seen = found.into_iter().collect();

        let old_lib = self.library();
        let mut assets = BTreeMap::new();
        let mut changed = false;
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
            changed = true;
            let state = self.build_asset(&id, &keys);
            st.built.insert(id.clone(), keys);
            assets.insert(id, state);
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
    }

    fn build_asset(&self, id: &str, keys: &[FileKey]) -> AssetState {
        let mut files = Vec::new();
        let mut errors = Vec::new();
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
                        tracing::error!(asset = %id, file = %k.path.display(), reason = %e, "cannot serve file");
                        errors.push(format!("{}: {e}", k.path.display()));
                    }
                },
            }
        }
        if files.is_empty() {
            return AssetState::Broken(errors.join("; "));
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
        AssetState::Ready(Arc::new(asset))
    }

    fn load(&self, k: &FileKey) -> Result<SourceFile, index::IndexError> {
        let path = self.root.join(&k.path);
        let mapped = MappedFile::open(&path)?;
        let idx = index::build(mapped.file(), mapped.len())?;
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
    out: &mut Vec<(PathBuf, Stamp)>,
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
            out.push((rel.to_path_buf(), stamp));
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
