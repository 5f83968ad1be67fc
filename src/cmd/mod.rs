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

use drm_origin::config::Config;
use drm_origin::packaging::plan::Asset;
use drm_origin::storage::{AssetState, Store, StoreSettings};

/// `--config`, else `./config/drm-origin.toml` when it exists.
pub fn config_path(config: Option<PathBuf>) -> Option<PathBuf> {
    let default_config = PathBuf::from("config/drm-origin.toml");
    config.or_else(|| default_config.exists().then_some(default_config))
}

/// Indexes the asset folder once (no stability delay: offline tools) and returns `asset`.
pub fn load_asset(cfg: &Config, asset: &str) -> anyhow::Result<std::sync::Arc<Asset>> {
    let store = Store::new(
        cfg.assets_dir.clone(),
        StoreSettings {
            target_segment: cfg.target_segment,
            stable_after: std::time::Duration::ZERO,
            base_url: String::new(),
        },
    );
    store.rescan();
    match store.library().assets.get(asset) {
        Some(AssetState::Ready(a)) => Ok(a.clone()),
        Some(AssetState::Broken(why)) => anyhow::bail!("asset {asset} is unavailable: {why}"),
        None => anyhow::bail!("no asset {asset} in {}", cfg.assets_dir.display()),
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
