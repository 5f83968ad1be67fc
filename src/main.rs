//! `drm-origin` command line: parses the arguments and hands each subcommand to its file in
//! `cmd/`.

mod cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the request path allocates and frees small buffers on
/// whichever worker thread runs it, and glibc's per-arena locks made those frees contend
/// (futex waits in `__lll_lock_wait_private` under load; see benches/profile.sh).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Validate a configuration and an asset folder offline (for deployment pipelines): every
    /// configuration error with its line, every asset with its tracks, variants and key ids,
    /// every problem with its file and reason. Exits 1 when anything is wrong. Creates no key.
    Check {
        /// Asset folder (default: the config's `storage.dir`, else ./assets).
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
        /// TOML configuration file. Default: ./config/drm-origin.toml when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Export an asset as static files: exactly the bytes the origin serves (manifests with
    /// relative URLs, init and media segments, for each variant of the asset's policy), laid out
    /// by URL path so nginx or a CDN bucket can serve the folder. Keys and licenses stay with
    /// the origin's license endpoint (or the policy's license URLs).
    Package {
        /// Asset id.
        asset: String,
        /// Output folder (created; files are written under `<asset>/…`).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only these variants (repeatable or comma-separated: clear, cenc, cbcs, aes128).
        #[arg(long, value_delimiter = ',')]
        variant: Vec<String>,
        /// Asset folder (default: the config's `storage.dir`, else ./assets).
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
        /// TOML configuration file. Default: ./config/drm-origin.toml when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Inspect content keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Device-bound licenses pre-generated into the static license folder ([licenses] dir).
    Licenses {
        #[command(subcommand)]
        command: LicensesCommand,
    },
    /// The reference device client: registration, licenses from the static folder, domains,
    /// factory reset, and decryption of a DASH/HLS rendition into clear fMP4.
    Client {
        /// The device's local store (keys mode 0600).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Clock skew allowed on license validity, seconds.
        #[arg(long, default_value_t = 300)]
        skew_secs: i64,
        #[command(subcommand)]
        command: ClientCommand,
    },
}

#[derive(Subcommand)]
enum LicensesCommand {
    /// Writes (or completes) the folder for every active device and domain, skipping unchanged
    /// files and removing stale ones. Safe next to a running server.
    Generate {
        /// TOML configuration file. Default: ./config/drm-origin.toml when it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Asset folder (default: the config's `storage.dir`, else ./assets).
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
        /// Only this device (and its domains).
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Checks that every file of the folder is complete, signed by a published key and listed
    /// with its digest.
    Check {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Adds a new origin signing key, announced by the previous one.
    RotateKey {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Registers this device (a new key pair; after a reset, the next generation).
    Register {
        /// The origin's base URL.
        #[arg(long)]
        origin: String,
        /// Base URL of the static license folder (what serves `{dir}/public`).
        #[arg(long)]
        licenses: String,
        /// Bearer token of the owner.
        #[arg(long)]
        token: String,
        /// Declare a chaining-capable client.
        #[arg(long)]
        chain: bool,
    },
    /// Fetches a license from the static folder (or online with --online-token) and keeps it.
    FetchLicense {
        /// Asset id.
        #[arg(long)]
        asset: Option<String>,
        /// The domain-bound license of this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Ask the origin's /.drm/license with this token instead of the static folder.
        #[arg(long)]
        online_token: Option<String>,
    },
    /// Fetches this device's root licenses (chained policies) from the static folder, or
    /// online with --online-token (which also renews them), and keeps them.
    FetchRoot {
        /// Ask the origin's /.drm/root with this token instead of the static folder.
        #[arg(long)]
        online_token: Option<String>,
    },
    /// Imports a license export (.dlx) or a license file (.lic), after verifying it.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Exports the kept domain-bound licenses to a .dlx file for another member.
    Export {
        /// Only this asset's.
        #[arg(long)]
        asset: Option<String>,
        /// Output file (mode 0600).
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Factory reset: tells the origin, then purges keys, licenses and domain keys.
    Reset {
        /// Owner's token (optional: the request is signed by the device).
        #[arg(long)]
        token: Option<String>,
        /// Purge locally without telling the origin.
        #[arg(long)]
        local_only: bool,
    },
    /// Device domains.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// Decrypts one rendition of a DASH or HLS manifest into clear fMP4 (no license server
    /// contacted: the license comes from the store, --license, or the static folder).
    Decrypt {
        /// Manifest URL (MPD, HLS multivariant or media playlist).
        url: String,
        /// Rendition id (DASH Representation id, or the HLS rendition's folder name).
        #[arg(long)]
        rendition: Option<String>,
        /// Without --rendition, the first rendition of this kind: video or audio.
        #[arg(long, default_value = "video")]
        kind: String,
        /// Use this license file (and only it).
        #[arg(long)]
        license: Option<PathBuf>,
        /// Output file.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Shows the device (id, generation, domains; no secrets).
    Status,
}

#[derive(Subcommand)]
enum DomainCommand {
    /// Joins a domain (or creates one without --domain).
    Join {
        /// Owner's token.
        #[arg(long)]
        token: String,
        /// Domain id.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Leaves a domain.
    Leave {
        /// Domain id.
        #[arg(long)]
        domain: String,
        /// Owner's token (optional).
        #[arg(long)]
        token: Option<String>,
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

/// Logs to stderr: text lines, or one JSON object per line (`log.format = "json"`);
/// `RUST_LOG` overrides `default_filter`.
pub fn init_logging(format: drm_origin::config::LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        drm_origin::config::LogFormat::Text => {
            builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
        }
        drm_origin::config::LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The server logs every request, in the format its configuration names (it sets up logging
    // once that is loaded); one-shot commands only warnings, unless RUST_LOG says.
    if !matches!(cli.command, Command::Serve { .. }) {
        init_logging(drm_origin::config::LogFormat::Text, "warn");
    }
    let result = match cli.command {
        Command::Serve { assets, config, listen } => cmd::serve::serve(assets, config, listen),
        Command::Keys { command: KeysCommand::Show { asset, assets, config, show_keys } } => {
            cmd::keys::show(&asset, assets, config, show_keys)
        }
        Command::Keys { command: KeysCommand::Export { asset, assets, config, output } } => {
            cmd::keys::export(&asset, assets, config, output)
        }
        Command::Keys { command: KeysCommand::Import { file, asset, config } } => {
            cmd::keys::import(&file, &asset, config)
        }
        Command::Licenses { command: LicensesCommand::Generate { config, assets, device, json } } => {
            cmd::licenses::generate(config, assets, device, json)
        }
        Command::Licenses { command: LicensesCommand::Check { config } } => cmd::licenses::check(config),
        Command::Licenses { command: LicensesCommand::RotateKey { config } } => cmd::licenses::rotate_key(config),
        Command::Client { store, skew_secs, command } => {
            use cmd::client::Action;
            let action = match command {
                ClientCommand::Register { origin, licenses, token, chain } => {
                    Action::Register { origin, licenses, token, chain }
                }
                ClientCommand::FetchLicense { asset, domain, online_token } => {
                    Action::FetchLicense { asset, domain, online_token }
                }
                ClientCommand::FetchRoot { online_token } => Action::FetchRoot { online_token },
                ClientCommand::Import { file } => Action::Import { file },
                ClientCommand::Export { asset, output } => Action::Export { asset, output },
                ClientCommand::Reset { token, local_only } => Action::Reset { token, local_only },
                ClientCommand::Domain { command: DomainCommand::Join { token, domain } } => {
                    Action::Join { token, domain }
                }
                ClientCommand::Domain { command: DomainCommand::Leave { domain, token } } => {
                    Action::Leave { token, domain }
                }
                ClientCommand::Decrypt { url, rendition, kind, license, output } => {
                    Action::Decrypt { url, rendition, kind, license, output }
                }
                ClientCommand::Status => Action::Status,
            };
            cmd::client::run(&store, skew_secs, action)
        }
        Command::Check { assets, config } => match cmd::check::check(assets, config) {
            Ok(true) => Ok(()),
            Ok(false) => return std::process::ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Package { asset, out, variant, assets, config } => {
            cmd::package::package(&asset, &out, &variant, assets, config)
        }
        Command::Token { sub, groups, ttl, kid, asset, tier, config } => {
            cmd::token::mint(&sub, &groups, &ttl, &kid, &asset, &tier, config)
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
