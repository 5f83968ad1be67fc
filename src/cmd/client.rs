//! `drm-origin client …`: the reference device client (library in `drm_origin::client`).
//! Results are JSON on stdout; a refusal exits non-zero with `refused: <reason>` on stderr.

use std::path::{Path, PathBuf};

use drm_origin::client::media::manifest::Kind;
use drm_origin::client::ops::Client;

use super::print_lines;

/// What to do.
pub enum Action {
    /// Register with the origin.
    Register { origin: String, licenses: String, token: String, chain: bool },
    /// Fetch (and keep) a license.
    FetchLicense { asset: Option<String>, domain: Option<String>, online_token: Option<String> },
    /// Fetch (and keep) root licenses.
    FetchRoot { online_token: Option<String> },
    /// Import a `.dlx` or `.lic`.
    Import { file: PathBuf },
    /// Export domain-bound licenses.
    Export { asset: Option<String>, output: PathBuf },
    /// Factory reset.
    Reset { token: Option<String>, local_only: bool },
    /// Join or create a domain.
    Join { token: String, domain: Option<String> },
    /// Leave a domain.
    Leave { token: Option<String>, domain: String },
    /// Decrypt a rendition to clear fMP4.
    Decrypt { url: String, rendition: Option<String>, kind: String, license: Option<PathBuf>, output: PathBuf },
    /// Show the device (no secrets).
    Status,
}

/// Runs `action` on the store in `store`.
pub fn run(store: &Path, skew_secs: i64, action: Action) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let mut c = Client::open(store)?;
        c.skew = skew_secs;
        let out = match action {
            Action::Register { origin, licenses, token, chain } => c.register(&origin, &licenses, &token, chain).await?,
            Action::FetchLicense { asset, domain, online_token } => {
                let (l, keys) = c.fetch_license(asset.as_deref(), &[], domain.as_deref(), online_token.as_deref()).await?;
                serde_json::json!({"asset": l.asset, "bound_to": l.bind.id, "exp": l.exp, "seq": l.seq, "kids": l.kids, "keys": keys.0.len()})
            }
            Action::FetchRoot { online_token } => {
                let roots = c.fetch_roots(online_token.as_deref()).await?;
                serde_json::json!({"roots": roots.iter().map(|r| serde_json::json!({
                    "rkid": r.rkid, "pol": r.pol, "exp": r.exp, "seq": r.seq, "bound_to": r.bind.id,
                })).collect::<Vec<_>>()})
            }
            Action::Import { file } => {
                let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                serde_json::json!({"imported": c.import(&text).await?})
            }
            Action::Export { asset, output } => {
                let doc = c.export(asset.as_deref())?;
                drm_origin::client::store::write_atomic(&output, doc.as_bytes(), 0o600)?;
                serde_json::json!({"exported": output.display().to_string()})
            }
            Action::Reset { token, local_only } => c.reset(token.as_deref(), local_only).await?,
            Action::Join { token, domain } => c.join(&token, domain.as_deref()).await?,
            Action::Leave { token, domain } => c.leave(token.as_deref(), &domain).await?,
            Action::Decrypt { url, rendition, kind, license, output } => {
                let kind = match kind.as_str() {
                    "video" => Kind::Video,
                    "audio" => Kind::Audio,
                    other => anyhow::bail!("--kind {other}: expected video or audio"),
                };
                let text = match &license {
                    Some(p) => Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?),
                    None => None,
                };
                c.decrypt(&url, rendition.as_deref(), kind, text.as_deref(), &output).await?.1
            }
            Action::Status => {
                let s = &c.store.state;
                serde_json::json!({
                    "device_id": s.device_id, "gen": s.gen, "origin": s.origin, "licenses": s.licenses,
                    "registered": s.certificate.is_some(), "trusted_keys": s.trusted_keys.keys().collect::<Vec<_>>(),
                    "domains": s.domains.iter().map(|(id, d)| (id.clone(), d.keys.keys().copied().collect::<Vec<_>>())).collect::<std::collections::BTreeMap<_, _>>(),
                    "licenses_kept": c.store.licenses().len(),
                })
            }
        };
        print_lines(&[out.to_string()]);
        Ok(())
    })
}
