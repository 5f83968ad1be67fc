//! `drm-origin check`: validates a configuration and an asset folder offline, for deployment
//! pipelines. Every configuration error with its line; every asset with its tracks, variants
//! and key ids; every problem with its file and reason. Exit status 1 when anything is wrong.
//! Never creates keys (auto keys that no request needed yet are reported as not created).

use std::path::{Path, PathBuf};

use drm_origin::config::{Config, Overrides};
use drm_origin::drm::{Drm, Policy, Variant};
use drm_origin::packaging::plan::Asset;
use drm_origin::storage::{AssetState, Store, StoreSettings};

use super::{config_path, print_lines};

/// `check`: `Ok(true)` when nothing is wrong.
pub fn check(assets: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<bool> {
    let path = config_path(config);
    let shown = path.as_ref().map_or("<defaults>".to_owned(), |p| p.display().to_string());
    let mut out = Vec::new();
    let mut errors = 0usize;
    let cfg = match Config::load(path.as_deref(), Overrides { listen: None, assets_dir: assets.clone() }) {
        Ok(c) => {
            out.push(format!("config {shown}: ok"));
            c
        }
        Err(e) => {
            for line in &e.errors {
                out.push(format!("error: {}: {line}", e.file));
            }
            errors = errors.saturating_add(e.errors.len());
            out.push(format!(
                "config {shown}: {} error(s); assets checked without its keys and policies",
                e.errors.len()
            ));
            // The folder is still worth checking (with the defaults), so one run lists everything.
            Config::load(None, Overrides { listen: None, assets_dir: assets })?
        }
    };
    if !cfg.demo_material.is_empty() {
        out.push(format!("warning: {} hold the shipped DEMO keys/secret (public)", cfg.demo_material.join(", ")));
    }
    if matches!(cfg.storage, drm_origin::config::Storage::S3(_)) {
        return check_bucket(&cfg, out, errors);
    }
    let dir = &cfg.assets_dir;
    if !dir.is_dir() {
        out.push(format!("error: {}: the asset folder does not exist", dir.display()));
        print_lines(&out);
        return Ok(false);
    }
    // Files the catalog would skip: each is reported with its reason.
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    for (rel, full) in &files {
        let reason = match drm_origin::storage::mmap::MappedFile::open(full) {
            Err(e) => Some(e.to_string()),
            Ok(m) => drm_origin::index::build(m.file(), m.len()).err().map(|e| e.to_string()),
        };
        if let Some(r) = reason {
            out.push(format!("error: {}: {r}", dir.join(rel).display()));
            errors = errors.saturating_add(1);
        }
    }
    let store = Store::new(
        dir.clone(),
        StoreSettings {
            target_segment: cfg.target_segment,
            stable_after: std::time::Duration::ZERO,
            base_url: String::new(),
        },
    );
    store.rescan();
    Ok(finish(&cfg, &store, &dir.display().to_string(), out, errors))
}

/// `[storage] backend = "s3"`: the bucket is listed and every object indexed, as `serve` would.
fn check_bucket(cfg: &Config, mut out: Vec<String>, mut errors: usize) -> anyhow::Result<bool> {
    let store = super::open_store(cfg, super::offline_settings(cfg))?;
    let place = store.describe();
    if !store.rescan() {
        out.push(format!("error: {place}: cannot list the bucket (unreachable, access denied or no such bucket)"));
        errors = errors.saturating_add(1);
    }
    Ok(finish(cfg, &store, &place, out, errors))
}

/// Every asset's lines and the verdict; `true` when nothing is wrong.
fn finish(cfg: &Config, store: &Store, place: &str, mut out: Vec<String>, mut errors: usize) -> bool {
    let lib = store.library();
    if lib.assets.is_empty() {
        out.push(format!("warning: {place}: no assets"));
    }
    for (id, state) in &lib.assets {
        match state {
            AssetState::Broken(why) => {
                out.push(format!("error: asset {id}: unavailable: {why}"));
                errors = errors.saturating_add(1);
            }
            AssetState::Ready(a) => errors = errors.saturating_add(describe(&cfg.drm, a, &mut out)),
        }
    }
    out.push(if errors == 0 { "check: ok".to_owned() } else { format!("check: {errors} error(s)") });
    print_lines(&out);
    errors == 0
}

/// An asset's lines; returns its error count.
fn describe(drm: &Drm, a: &Asset, out: &mut Vec<String>) -> usize {
    let policy = drm.policy_for(&a.id);
    let list = |v: &[Variant]| v.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
    out.push(format!(
        "asset {}: {:.3} s, policy {} (dash {}, hls {}, key delivery {:?})",
        a.id,
        a.duration,
        policy.name,
        list(&policy.dash),
        list(&policy.hls),
        policy.key_delivery
    ));
    for w in &a.warnings {
        out.push(format!("  warning: {w}"));
    }
    let mut errors = 0usize;
    for r in &a.renditions {
        let Some(t) = r.track() else { continue };
        let e = &t.entry;
        let what = if e.width > 0 {
            format!("{}x{}", e.width, e.height)
        } else {
            format!("{} Hz {} ch {}", e.sample_rate, e.channels, t.language)
        };
        let key = match policy.class_of(t.kind, e.height) {
            Some((class, spec)) if policy.is_protected() => match drm.peek(&policy, &a.id, class, spec) {
                Some(k) => format!("{class} kid {}", k.kid),
                None => format!("{class} (auto key not created yet)"),
            },
            _ => "clear".to_owned(),
        };
        out.push(format!(
            "  {:<24} {:<12} {what:<22} {} segments  {key}  ({})",
            r.id,
            e.codec,
            r.segments.len(),
            r.source.name
        ));
        errors = errors.saturating_add(protectable(&policy, t, &r.source.name, out));
    }
    if policy.hls.contains(&Variant::Aes128) {
        match &policy.keys.envelope {
            Some(spec) => {
                let k = drm.peek(&policy, &a.id, "envelope", spec);
                out.push(format!(
                    "  {:<24} envelope {}",
                    "(HLS AES-128)",
                    k.map_or("(auto key not created yet)".to_owned(), |k| format!("kid {}", k.kid))
                ));
            }
            None => {
                out.push(format!("  error: policy {} offers aes128 without an envelope key", policy.name));
                errors = errors.saturating_add(1);
            }
        }
    }
    errors
}

/// Whether each protected variant can be produced for the track (bitstream parsable, codec
/// supported): the same check the server makes before listing a protected manifest.
fn protectable(policy: &Policy, t: &drm_origin::index::TrackIndex, file: &str, out: &mut Vec<String>) -> usize {
    if policy.class_of(t.kind, t.entry.height).is_none() {
        return 0;
    }
    let mut errors = 0usize;
    let mut seen = Vec::new();
    for v in policy.dash.iter().chain(&policy.hls).filter(|v| v.is_cenc_family()) {
        if seen.contains(v) {
            continue;
        }
        seen.push(*v);
        if let Err(e) = drm_origin::packaging::protect::check(t, *v) {
            out.push(format!("  error: {file}: track {} cannot be served as {v}: {e}", t.id));
            errors = errors.saturating_add(1);
        }
    }
    errors
}

/// `.mp4` files under `dir` (dot files and dot folders skipped, as the catalog does).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        if ft.is_dir() {
            walk(root, &path, out);
        } else if ft.is_file() && path.extension().is_some_and(|x| x == "mp4") {
            if let Ok(rel) = path.strip_prefix(root) {
                out.push((rel.to_owned(), path.clone()));
            }
        }
    }
}
