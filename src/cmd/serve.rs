//! `drm-origin serve`: the server, its asset watcher and its configuration watcher.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use drm_origin::config::{Config, Overrides};
use drm_origin::http::tls::Certificates;
use drm_origin::http::{server, App, HttpSettings};
use drm_origin::storage::{Store, StoreSettings};

use super::config_path;

/// `serve`.
pub fn serve(assets: Option<PathBuf>, config: Option<PathBuf>, listen: Option<String>) -> anyhow::Result<()> {
    let config_path = config_path(config);
    let overrides = Overrides { listen, assets_dir: assets };
    let cfg = Config::load(config_path.as_deref(), overrides.clone())?;
    crate::init_logging(cfg.log_format, if cfg.access_log { "info" } else { "info,access=off" });
    anyhow::ensure!(cfg.assets_dir.is_dir(), "asset folder {} does not exist", cfg.assets_dir.display());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (listeners, urls, addrs) = bind(&cfg).await?;
        let base_url = urls.first().cloned().unwrap_or_default();
        let store = Arc::new(Store::new(
            cfg.assets_dir.clone(),
            StoreSettings {
                target_segment: cfg.target_segment,
                stable_after: cfg.stable_after,
                base_url: base_url.clone(),
            },
        ));
        let app = Arc::new(App::new(
            store.clone(),
            HttpSettings {
                cache_control_segments: cfg.cache_control_segments.clone(),
                cache_control_manifests: cfg.cache_control_manifests.clone(),
                encrypted_cache_bytes: cfg.encrypted_cache_bytes,
                max_concurrent_encryptions: cfg.max_concurrent_encryptions,
                player_script: cfg.player_script.clone(),
            },
            cfg.drm.clone(),
        ));
        let limits = server::Limits {
            header_read_timeout: cfg.header_read_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections: cfg.max_connections,
            drain: cfg.drain,
        };
        // Accepting starts now, so a load balancer sees `/readyz` 503 while the folder is
        // indexed; asset requests meanwhile answer 503 "starting".
        let serving = tokio::spawn(server::serve(listeners, app.clone(), limits, shutdown_signal()));
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
        // The first tokens should find keys, but an unreachable identity provider must not hold
        // up the start (clear and open assets are served meanwhile): the refresher keeps trying.
        if tokio::time::timeout(std::time::Duration::from_secs(3), app.prime_jwks()).await.is_err() {
            tracing::warn!("JWKS not loaded within 3 s of start: token requests are refused until a refresh succeeds");
        }
        if let Some(settings) = cfg.devices.clone() {
            let devices = drm_origin::license::device::Devices::open(settings)
                .await
                .map_err(|e| anyhow::anyhow!("device licensing: {e}"))?;
            tracing::info!(
                registry = devices.registry.kind(),
                folder = %devices.writer.public_root().display(),
                signing_kid = %devices.keys.current().kid,
                "device licensing on"
            );
            app.set_devices(devices.clone());
            tokio::spawn(regenerate_licenses(app.clone(), devices, cfg.rescan_interval));
        }
        if let Some(path) = config_path.clone() {
            tokio::spawn(watch_config(app.clone(), path, overrides.clone(), cfg.rescan_interval));
        }
        app.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = super::banner::exposure_warning(&cfg, &addrs) {
            tracing::warn!("{w}");
        }
        tracing::info!(assets = %cfg.assets_dir.display(), "listening on {}", urls.join(" and "));
        // Machine-readable lines for scripts and tests (logs go to stderr), then the banner.
        let mut out: Vec<String> = urls.iter().map(|u| format!("drm-origin listening on {u}")).collect();
        out.extend(super::banner::lines(&cfg, config_path.as_deref(), &base_url, &store));
        super::print_lines(&out);
        serving.await?;
        tracing::info!("shut down");
        Ok(())
    })
}

/// Keeps the license folder current: at start, whenever the asset library or the configuration
/// changed (new assets, key changes), and every `regenerate_every` (renewals at period
/// boundaries, lapsed entitlements). Unchanged files are skipped, so a pass over an unchanged
/// registry writes nothing.
async fn regenerate_licenses(
    app: Arc<App>,
    devices: Arc<drm_origin::license::device::Devices>,
    poll: std::time::Duration,
) {
    let mut last: Option<(usize, u64)> = None;
    let mut last_full = tokio::time::Instant::now();
    loop {
        let library = app.store.library();
        let (drm, drm_gen) = app.drm();
        let stamp = (Arc::as_ptr(&library) as usize, drm_gen);
        let due = last_full.elapsed() >= devices.settings.regenerate_every;
        if last != Some(stamp) || due {
            let catalog = devices.catalog(&library, &drm, drm_gen);
            let started = std::time::Instant::now();
            match devices.regenerate(catalog, None).await {
                Ok(r) => {
                    let level_info = r.written > 0 || r.removed > 0;
                    if level_info {
                        tracing::info!(
                            written = r.written,
                            unchanged = r.unchanged,
                            removed = r.removed,
                            bytes = r.bytes,
                            millis = started.elapsed().as_millis() as u64,
                            "license folder regenerated"
                        );
                    }
                    last = Some(stamp);
                    last_full = tokio::time::Instant::now();
                }
                Err(e) => tracing::error!(error = %e, "license folder regeneration failed (retrying)"),
            }
        }
        tokio::time::sleep(poll.max(std::time::Duration::from_millis(500))).await;
    }
}

/// Binds `server.listen` (cleartext, or TLS when `[server.tls]` has no listener of its own) and
/// the TLS listener; starts the certificate reloader. Returns the listeners, their base URLs
/// and their addresses.
async fn bind(cfg: &Config) -> anyhow::Result<(Vec<server::Listener>, Vec<String>, Vec<String>)> {
    let acceptor = match &cfg.tls {
        None => None,
        Some(t) => {
            let certs = Arc::new(Certificates::open(&t.cert, &t.key)?);
            tokio::spawn(watch_certificates(certs.clone(), cfg.rescan_interval));
            Some(tokio_rustls::TlsAcceptor::from(certs.server_config()))
        }
    };
    let mut plan = Vec::new();
    match (&cfg.tls, acceptor) {
        (Some(t), Some(a)) if t.listen.is_some() => {
            plan.push((cfg.listen.clone(), None));
            plan.push((t.listen.clone().unwrap_or_default(), Some(a)));
        }
        (_, a) => plan.push((cfg.listen.clone(), a)),
    }
    let (mut listeners, mut urls, mut addrs) = (Vec::new(), Vec::new(), Vec::new());
    for (addr, tls) in plan {
        let socket = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = socket.local_addr()?;
        urls.push(format!("{}://{local}", if tls.is_some() { "https" } else { "http" }));
        addrs.push(local.to_string());
        listeners.push(server::Listener { socket, tls });
    }
    Ok((listeners, urls, addrs))
}

/// Certificate rotation: the PEM files are looked at every `every`; a changed pair that loads
/// replaces the one in force for new handshakes (connections already open keep theirs).
async fn watch_certificates(certs: Arc<Certificates>, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        let c = certs.clone();
        match tokio::task::spawn_blocking(move || c.reload_if_changed()).await {
            Ok(Ok(true)) => tracing::info!("TLS certificate reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!("TLS certificate not reloaded, the previous one stays in force: {e}"),
            Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
        }
    }
}

/// Applies configuration changes without a restart: on SIGHUP and whenever the file's mtime or
/// size changes. An invalid file is rejected with every error listed, and the configuration in
/// force stays; a valid one replaces keys, policies and rules atomically and drops cached
/// outputs made under the old ones.
async fn watch_config(app: Arc<App>, path: PathBuf, overrides: Overrides, every: std::time::Duration) {
    let stamp = |p: &PathBuf| std::fs::metadata(p).ok().map(|m| (m.modified().ok(), m.len()));
    let mut last = stamp(&path);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let by_signal = match hup.as_mut() {
            Some(h) => tokio::select! {
                _ = h.recv() => true,
                () = tokio::time::sleep(every) => false,
            },
            None => {
                tokio::time::sleep(every).await;
                false
            }
        };
        #[cfg(not(unix))]
        let by_signal = {
            tokio::time::sleep(every).await;
            false
        };
        let now = stamp(&path);
        if !by_signal && now == last {
            continue;
        }
        last = now;
        let (previous, _) = app.drm();
        let (p, o) = (path.clone(), overrides.clone());
        let loaded = tokio::task::spawn_blocking(move || Config::reload(Some(&p), o, Some(&previous))).await;
        match loaded {
            Ok(Ok(cfg)) => {
                app.set_drm(cfg.drm.clone());
                tracing::info!(file = %path.display(), trigger = if by_signal { "SIGHUP" } else { "file change" }, "configuration reloaded");
            }
            Ok(Err(e)) => tracing::error!("{e}\n  (the previous configuration stays in force)"),
            Err(e) => tracing::error!(error = %e, "configuration reload task failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
