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
    /// Mint a development token signed with the configured [auth] hmac_secret (HS256), with the
    /// configured issuer and audience. For demos and tests only: production tokens come from
    /// your identity provider.
    Token {
        /// Subject (`sub`).
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Values of the `groups` claim (repeatable or comma-separated).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime: seconds, or with a unit (90s, 15m, 1h, 2d). Negative values mint expired tokens.
        #[arg(long, default_value = "1h", allow_hyphen_values = true)]
        ttl: String,
        /// Bind the token to these key ids (the [auth] kid_claim, default claim name `kids`).
        #[arg(long, value_delimiter = ',')]
        kid: Vec<String>,
        /// Bind the token to these asset ids (the [auth] asset_claim, default `assets`).
        #[arg(long, value_delimiter = ',')]
        asset: Vec<String>,
        /// Tier value(s) (the [auth] tier_claim, default `tier`).
        #[arg(long, value_delimiter = ',')]
        tier: Vec<String>,
        /// TOML configuration file. Default: ./config/drm-origin.toml when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Inspect content keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the key ids protecting each track of an asset under its policy (content keys only
    /// with --show-keys). Never creates keys: auto keys no request has needed yet are shown as
    /// not created (a running server owns the store file).
    Show {
        /// Asset id (e.g. `multi`, `kids/cartoon`).
        asset: String,
        /// Asset folder (default: the config's `storage.dir`, else ./assets).
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
        /// TOML configuration file. Default: ./config/drm-origin.toml when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Also print the content keys (secret: for debugging only).
        #[arg(long)]
        show_keys: bool,
    },
    /// Write a CPIX 2.3 document with an asset's keys, DRM signalling and usage rules, for a DRM
    /// vendor's license service. Contains the content keys in clear: handle it as a secret.
    Export {
        /// Asset id.
        asset: String,
        /// Asset folder (default: the config's `storage.dir`, else ./assets).
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
        /// TOML configuration file. Default: ./config/drm-origin.toml when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Output file (created with mode 0600); default: standard output.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read a CPIX document (e.g. from a key server) and store its keys as the asset's auto keys
    /// (class from each key's usage rule: video/sd/hd/uhd/audio/envelope).
    Import {
        /// CPIX document.
        file: PathBuf,
        /// Asset id whose auto keys these become (with a policy `key_group`: the group's).
        #[arg(long)]
        asset: String,
        /// TOML configuration file (its [keystore] receives the keys).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The server logs every request; one-shot commands only warnings, unless RUST_LOG says.
    let default_level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve { assets, config, listen } => serve(assets, config, listen),
        Command::Keys { command: KeysCommand::Show { asset, assets, config, show_keys } } => {
            keys_show(&asset, assets, config, show_keys)
        }
        Command::Keys { command: KeysCommand::Export { asset, assets, config, output } } => {
            keys_export(&asset, assets, config, output)
        }
        Command::Keys { command: KeysCommand::Import { file, asset, config } } => keys_import(&file, &asset, config),
        Command::Token { sub, groups, ttl, kid, asset, tier, config } => {
            mint_token(&sub, &groups, &ttl, &kid, &asset, &tier, config)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable message (with its causes), not a backtrace.
            eprintln!("drm-origin: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn config_path(config: Option<PathBuf>) -> Option<PathBuf> {
    let default_config = PathBuf::from("config/drm-origin.toml");
    config.or_else(|| default_config.exists().then_some(default_config))
}

fn keys_show(asset: &str, assets: Option<PathBuf>, config: Option<PathBuf>, show_keys: bool) -> anyhow::Result<()> {
    use drm_origin::drm::Variant;
    use drm_origin::storage::AssetState;
    let cfg = Config::load(config_path(config).as_deref(), Overrides { listen: None, assets_dir: assets })?;
    let store = Store::new(
        cfg.assets_dir.clone(),
        StoreSettings {
            target_segment: cfg.target_segment,
            stable_after: std::time::Duration::ZERO,
            base_url: String::new(),
        },
    );
    store.rescan();
    let lib = store.library();
    let a = match lib.assets.get(asset) {
        Some(AssetState::Ready(a)) => a.clone(),
        Some(AssetState::Broken(why)) => anyhow::bail!("asset {asset} is unavailable: {why}"),
        None => anyhow::bail!("no asset {asset} in {}", cfg.assets_dir.display()),
    };
    let policy = cfg.drm.policy_for(asset);
    let mut lines =
        vec![format!("asset {asset}: policy {} (dash: {:?}, hls: {:?})", policy.name, policy.dash, policy.hls)];
    let show = |k: &drm_origin::drm::ContentKey| {
        if show_keys {
            format!("kid {} key {}", k.kid, drm_origin::crypto::key::hex(k.key.bytes()))
        } else {
            format!("kid {}", k.kid)
        }
    };
    for r in &a.renditions {
        let Some(t) = r.track() else { continue };
        match policy.class_of(t.kind, t.entry.height) {
            Some((class, spec)) => {
                let k = cfg.drm.peek(&policy, asset, class, spec);
                let shown = k.as_deref().map_or_else(|| "(auto key not created yet)".to_owned(), show);
                lines.push(format!("  {:<24} {:<18} {class:<8} {shown}", r.id, t.entry.codec));
            }
            None => lines.push(format!("  {:<24} {:<18} clear", r.id, t.entry.codec)),
        }
    }
    if policy.hls.contains(&Variant::Aes128) {
        if let Some(spec) = &policy.keys.envelope {
            let k = cfg.drm.peek(&policy, asset, "envelope", spec);
            let shown = k.as_deref().map_or_else(|| "(auto key not created yet)".to_owned(), show);
            lines.push(format!("  {:<24} {:<18} {:<8} {shown}", "(HLS AES-128)", "", "envelope"));
        }
    }
    print_lines(&lines);
    Ok(())
}

fn keys_export(
    asset: &str,
    assets: Option<PathBuf>,
    config: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    use drm_origin::drm::cpix::{self, CpixKey, KeyClass};
    use drm_origin::drm::pssh::Scheme;
    use drm_origin::drm::Variant;
    use drm_origin::storage::AssetState;
    let cfg = Config::load(config_path(config).as_deref(), Overrides { listen: None, assets_dir: assets })?;
    let store = Store::new(
        cfg.assets_dir.clone(),
        StoreSettings {
            target_segment: cfg.target_segment,
            stable_after: std::time::Duration::ZERO,
            base_url: String::new(),
        },
    );
    store.rescan();
    let a = match store.library().assets.get(asset) {
        Some(AssetState::Ready(a)) => a.clone(),
        Some(AssetState::Broken(why)) => anyhow::bail!("asset {asset} is unavailable: {why}"),
        None => anyhow::bail!("no asset {asset} in {}", cfg.assets_dir.display()),
    };
    let policy = cfg.drm.policy_for(asset);
    let scheme = policy
        .dash
        .iter()
        .chain(&policy.hls)
        .find_map(|v| Scheme::of_variant(*v))
        .ok_or_else(|| anyhow::anyhow!("policy {} protects {asset} with no cenc/cbcs variant", policy.name))?;
    let mut classes: Vec<(&'static str, drm_origin::drm::KeySpec)> = Vec::new();
    for r in &a.renditions {
        let Some(t) = r.track() else { continue };
        if let Some((class, spec)) = policy.class_of(t.kind, t.entry.height) {
            if !classes.iter().any(|(c, _)| *c == class) {
                classes.push((class, spec.clone()));
            }
        }
    }
    if let (true, Some(spec)) = (policy.hls.contains(&Variant::Aes128), &policy.keys.envelope) {
        classes.push(("envelope", spec.clone()));
    }
    let mut keys = Vec::new();
    for (class, spec) in &classes {
        let k = cfg.drm.peek(&policy, asset, class, spec).ok_or_else(|| {
            anyhow::anyhow!(
                "the {class} key of {asset} is an auto key not created yet: request the asset once, or use a key seed"
            )
        })?;
        let class = KeyClass::parse(class).ok_or_else(|| anyhow::anyhow!("unknown key class {class}"))?;
        keys.push(CpixKey::new(k.kid, k.key.clone(), class));
    }
    let xml = cpix::export(asset, &keys, &policy.systems, scheme, &policy.license_urls)?;
    match output {
        None => {
            use std::io::Write;
            // Exactly the document, as with -o; a closed pipe just ends the output.
            let _ = std::io::stdout().lock().write_all(xml.as_bytes());
        }
        Some(path) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
            f.write_all(xml.as_bytes())?;
            eprintln!("wrote {} key(s) of {asset} to {}", keys.len(), path.display());
        }
    }
    Ok(())
}

fn keys_import(file: &std::path::Path, asset: &str, config: Option<PathBuf>) -> anyhow::Result<()> {
    use drm_origin::drm::cpix;
    let cfg = Config::load(config_path(config).as_deref(), Overrides::default())?;
    let xml = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let keys = cpix::import(&xml).with_context(|| format!("{} is not a usable CPIX document", file.display()))?;
    let by_class = cpix::by_class(&keys)?;
    let store =
        cfg.drm.store.clone().ok_or_else(|| anyhow::anyhow!("no [keystore] in the configuration to import into"))?;
    let policy = cfg.drm.policy_for(asset);
    let mut lines = Vec::new();
    for (class, k) in by_class {
        let label = drm_origin::drm::label(&policy, asset, class.as_str());
        store.import(&label, k.kid, k.key.clone())?;
        lines.push(format!("imported {label}: kid {}", k.kid));
    }
    print_lines(&lines);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mint_token(
    sub: &str,
    groups: &[String],
    ttl: &str,
    kids: &[String],
    assets: &[String],
    tiers: &[String],
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let cfg = Config::load(config_path(config).as_deref(), Overrides::default())?;
    let secret =
        cfg.drm.hmac_secret.clone().ok_or_else(|| anyhow::anyhow!("no [auth] hmac_secret in the configuration"))?;
    let ttl_secs = parse_ttl(ttl).ok_or_else(|| anyhow::anyhow!("--ttl {ttl}: expected seconds or 90s/15m/1h/2d"))?;
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())?;
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), sub.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl_secs).into());
    let verifier = cfg.drm.verifier.clone();
    let rules = verifier.as_ref().map(|v| v.config.clone()).unwrap_or_default();
    if let Some(iss) = &rules.issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = &rules.audience {
        claims.insert("aud".into(), aud.clone().into());
    }
    if !groups.is_empty() {
        claims.insert("groups".into(), groups.to_vec().into());
    }
    if !kids.is_empty() {
        claims.insert(rules.kid_claim.clone().unwrap_or_else(|| "kids".into()), kids.to_vec().into());
    }
    if !assets.is_empty() {
        claims.insert(rules.asset_claim.clone().unwrap_or_else(|| "assets".into()), assets.to_vec().into());
    }
    if !tiers.is_empty() {
        claims.insert(rules.tier_claim.clone().unwrap_or_else(|| "tier".into()), tiers.to_vec().into());
    }
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret.0),
    )?;
    print_lines(&[token]);
    Ok(())
}

/// `3600`, `90s`, `15m`, `1h`, `2d` (and negatives, for expired test tokens) → seconds.
fn parse_ttl(s: &str) -> Option<i64> {
    let units = [('s', 1), ('m', 60), ('h', 3600), ('d', 86400)];
    let (num, mult) = units.iter().find_map(|&(u, m)| s.strip_suffix(u).map(|n| (n, m))).unwrap_or((s, 1));
    num.parse::<i64>().ok()?.checked_mul(mult)
}

/// Prints to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
fn print_lines(lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}

fn serve(assets: Option<PathBuf>, config: Option<PathBuf>, listen: Option<String>) -> anyhow::Result<()> {
    let config_path = config_path(config);
    let overrides = Overrides { listen, assets_dir: assets };
    let cfg = Config::load(config_path.as_deref(), overrides.clone())?;
    anyhow::ensure!(cfg.assets_dir.is_dir(), "asset folder {} does not exist", cfg.assets_dir.display());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
                player_script: cfg.player_script.clone(),
            },
            cfg.drm.clone(),
        ));
        // The first tokens should find keys, but an unreachable identity provider must not hold
        // up the start (clear and open assets are served meanwhile): the refresher keeps trying.
        if tokio::time::timeout(std::time::Duration::from_secs(3), app.prime_jwks()).await.is_err() {
            tracing::warn!("JWKS not loaded within 3 s of start: token requests are refused until a refresh succeeds");
        }
        if let Some(path) = config_path.clone() {
            tokio::spawn(watch_config(app.clone(), path, overrides.clone(), cfg.rescan_interval));
        }
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
