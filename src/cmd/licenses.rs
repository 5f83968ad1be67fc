//! `drm-origin licenses generate | check | rotate-key`: the pre-generated license folder, next
//! to (or without) a running server. Both may write at once: writers lock each folder, and
//! identical inputs give identical files.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use drm_origin::config::{Config, Overrides};
use drm_origin::license::device::{keys, Devices};
use drm_origin::storage::{Store, StoreSettings};

use super::{config_path, print_lines};

fn settings(cfg: &Config) -> anyhow::Result<drm_origin::license::device::DeviceSettings> {
    cfg.devices
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no [devices] section in the configuration: device licensing is off"))
}

/// `licenses generate`: writes (or completes) the folder; `--device` limits it to one device
/// and its domains. Prints what it did (`--json`: one JSON object, for scripts).
pub fn generate(
    config: Option<PathBuf>,
    assets: Option<PathBuf>,
    device: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let cfg = Config::load(config_path(config).as_deref(), Overrides { listen: None, assets_dir: assets })?;
    let settings = settings(&cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let devices = Devices::open(settings).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = Arc::new(Store::new(
            cfg.assets_dir.clone(),
            StoreSettings { target_segment: cfg.target_segment, stable_after: std::time::Duration::ZERO, base_url: String::new() },
        ));
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.rescan()).await?;
        let catalog = devices.catalog(&store.library(), &cfg.drm, 0);
        let started = std::time::Instant::now();
        let report = match devices.regenerate(catalog.clone(), device.as_deref()).await {
            Ok(r) => r,
            Err(e) if e.is_disk_full() => anyhow::bail!(
                "license folder full: {e}\n  every file in {} is complete and signed; free space and run again to complete it",
                devices.writer.public_root().display()
            ),
            Err(e) => return Err(anyhow::anyhow!("license folder: {e}")),
        };
        let secs = started.elapsed().as_secs_f64();
        if json {
            print_lines(&[serde_json::json!({
                "assets": catalog.len(), "folders": report.folders, "written": report.written,
                "unchanged": report.unchanged, "removed": report.removed, "bytes": report.bytes, "seconds": secs,
            })
            .to_string()]);
        } else {
            print_lines(&[format!(
                "{} folder(s) for {} asset(s): {} file(s) written ({} bytes), {} unchanged, {} removed, in {secs:.2} s",
                report.folders, catalog.len(), report.written, report.bytes, report.unchanged, report.removed
            )]);
        }
        Ok(())
    })
}

/// `licenses check`: every reachable file complete, signed by a published key, and listed with
/// its digest; exits non-zero with one line per problem.
pub fn check(config: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = Config::load(config_path(config).as_deref(), Overrides::default())?;
    let s = settings(&cfg)?;
    let keys = keys::OriginKeys::load_or_create(&s.secret_file, &s.signing_key)?;
    let writer = drm_origin::license::device::writer::Writer::open(&s.licenses_dir, s.fsync)?;
    let problems = writer.check(&keys);
    if problems.is_empty() {
        print_lines(&[format!("{}: every file is complete, signed and listed", writer.public_root().display())]);
        return Ok(());
    }
    print_lines(&problems);
    anyhow::bail!("{} problem(s) in the license folder", problems.len())
}

/// `licenses rotate-key`: a new origin signing key, announced by the previous one.
pub fn rotate_key(config: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = Config::load(config_path(config).as_deref(), Overrides::default())?;
    let s = settings(&cfg)?;
    // Make sure a keyring exists to rotate from.
    keys::OriginKeys::load_or_create(&s.secret_file, &s.signing_key)?;
    let kid = keys::rotate(&s.signing_key).with_context(|| format!("cannot rotate {}", s.signing_key.display()))?;
    print_lines(&[format!(
        "new signing key {kid} in {}; restart the servers to sign with it, then run `licenses generate`",
        s.signing_key.display()
    )]);
    Ok(())
}
