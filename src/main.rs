//! `drm-origin` command line: wires config → store → HTTP server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use drm_origin::config::{Config, Overrides};
use drm_origin::http::{server, App, HttpSettings};
use drm_origin::storage::{Store, StoreSettings};

/// A streaming origin: clear MP4 files in, DASH and HLS (CMAF) out, packaged on the fly.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the asset folder over HTTP (DASH: /{asset}/manifest.mpd, HLS: /{asset}/master.m3u8).
    Serve {
        /// Asset folder: `<name>.mp4` is asset `<name>`; a folder of .mp4 files is one asset.
        /// Default: the config's `assets.dir`, else ./assets.
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
        /// TOML configuration file. Default: ./config/drm-origin.toml when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on (port 0 picks a free port). Default: 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve {
            assets,
            config,
            listen,
        } => serve(assets, config, listen),
    }
}

fn serve(
    assets: Option<PathBuf>,
    config: Option<PathBuf>,
    listen: Option<String>,
) -> anyhow::Result<()> {
    let default_config = PathBuf::from("config/drm-origin.toml");
    let config_path = config.or_else(|| default_config.exists().then_some(default_config));
    let cfg = Config::load(
        config_path.as_deref(),
        Overrides {
            listen,
            assets_dir: assets,
        },
    )?;
    anyhow::ensure!(
        cfg.assets_dir.is_dir(),
        "asset folder {} does not exist",
        cfg.assets_dir.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let store = Arc::new(Store::new(
            cfg.assets_dir.clone(),
            StoreSettings {
                target_segment: cfg.target_segment,
                stable_after: cfg.stable_after,
                base_url: base_url.clone(),
            },
        ));
        let first = store.clone();
        tokio::task::spawn_blocking(move || first.rescan()).await?;
        let watcher = store.clone();
        let interval = cfg.rescan_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let s = watcher.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || s.rescan()).await {
                    tracing::error!(error = %e, "asset scan failed");
                }
            }
        });
        let app = Arc::new(App::new(
            store,
            HttpSettings {
                cache_control_segments: cfg.cache_control_segments.clone(),
                cache_control_manifests: cfg.cache_control_manifests.clone(),
                encrypted_cache_bytes: cfg.encrypted_cache_bytes,
                max_concurrent_encryptions: cfg.max_concurrent_encryptions,
            },
            cfg.drm.clone(),
        ));
        tracing::info!(assets = %cfg.assets_dir.display(), "listening on {base_url}");
        // Machine-readable line for scripts and tests (logs go to stderr).
        println!("drm-origin listening on {base_url}");
        let limits = server::Limits {
            header_read_timeout: cfg.header_read_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections: cfg.max_connections,
        };
        server::serve(listener, app, limits, shutdown_signal()).await;
        tracing::info!("shut down");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
