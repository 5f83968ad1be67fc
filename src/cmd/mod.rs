//! The subcommands of the `drm-origin` binary, one file each; helpers they share live here.

pub mod banner;
pub mod check;
pub mod client;
pub mod keys;
pub mod licenses;
pub mod package;
pub mod serve;
pub mod token;

use std::path::PathBuf;

use drm_origin::config::{Config, Storage};
use drm_origin::packaging::plan::Asset;
use drm_origin::storage::s3::Bucket;
use drm_origin::storage::{AssetState, Store, StoreSettings};

/// The store `cfg` names: the asset folder, or the bucket of `[storage] backend = "s3"`.
pub fn open_store(cfg: &Config, settings: StoreSettings) -> anyhow::Result<Store> {
    Ok(match &cfg.storage {
        Storage::Folder => Store::new(cfg.assets_dir.clone(), settings),
        Storage::S3(s3) => Store::bucket(std::sync::Arc::new(Bucket::open(s3).map_err(anyhow::Error::msg)?), settings),
    })
}

/// Settings for offline tools: no stability delay, no base URL.
pub fn offline_settings(cfg: &Config) -> StoreSettings {
    StoreSettings {
        target_segment: cfg.target_segment,
        stable_after: std::time::Duration::ZERO,
        base_url: String::new(),
    }
}

/// `--config`, else `./config/drm-origin.toml` when it exists.
pub fn config_path(config: Option<PathBuf>) -> Option<PathBuf> {
    let default_config = PathBuf::from("config/drm-origin.toml");
    config.or_else(|| default_config.exists().then_some(default_config))
}

/// Indexes the asset folder (bucket) once (no stability delay: offline tools), returns `asset`.
pub fn load_asset(cfg: &Config, asset: &str) -> anyhow::Result<std::sync::Arc<Asset>> {
    let store = open_store(cfg, offline_settings(cfg))?;
    anyhow::ensure!(store.rescan(), "cannot list {}", store.describe());
    match store.library().assets.get(asset) {
        Some(AssetState::Ready(a)) => Ok(a.clone()),
        Some(AssetState::Broken(why)) => anyhow::bail!("asset {asset} is unavailable: {why}"),
        None => anyhow::bail!("no asset {asset} in {}", store.describe()),
    }
}

/// Prints to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
pub fn print_lines(lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}
