//! `drm-origin package <asset> --out DIR [--variant …]`: a static export. Every manifest, init
//! and media segment of the asset's policy variants is produced by the server's own request
//! handler (in process, no socket), so the files are exactly the bytes the origin serves, laid
//! out under their URL paths: any static web server (nginx, a CDN bucket) can serve the folder.
//! Segment URLs are discovered from the manifests themselves (which use relative URLs), never
//! rebuilt by hand. Key and license URLs stay as configured: they point at the origin's
//! license endpoint (or the one the policy names).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use drm_origin::config::{Config, Overrides};
use drm_origin::drm::Variant;
use drm_origin::http::{App, HttpSettings};
use drm_origin::storage::AssetState;
use http_body_util::BodyExt;

use super::config_path;

/// `package`.
pub fn package(
    asset: &str,
    out: &Path,
    variants: &[String],
    assets: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let cfg = Config::load(config_path(config).as_deref(), Overrides { listen: None, assets_dir: assets })?;
    let wanted: Vec<Variant> = variants
        .iter()
        .map(|v| {
            Variant::parse(v).ok_or_else(|| anyhow::anyhow!("--variant {v}: expected clear, cenc, cbcs or aes128"))
        })
        .collect::<Result<_, _>>()?;
    let store = Arc::new(super::open_store(&cfg, super::offline_settings(&cfg))?);
    anyhow::ensure!(store.rescan(), "cannot list {}", store.describe());
    match store.library().assets.get(asset) {
        Some(AssetState::Ready(_)) => {}
        Some(AssetState::Broken(why)) => anyhow::bail!("asset {asset} is unavailable: {why}"),
        None => anyhow::bail!("no asset {asset} in {}", store.describe()),
    }
    let policy = cfg.drm.policy_for(asset);
    let pick = |list: &[Variant]| -> Vec<Variant> {
        list.iter().copied().filter(|v| wanted.is_empty() || wanted.contains(v)).collect()
    };
    let (dash, hls) = (pick(&policy.dash), pick(&policy.hls));
    if dash.is_empty() && hls.is_empty() {
        anyhow::bail!(
            "policy {} of {asset} offers none of the variants asked for (dash: {:?}, hls: {:?})",
            policy.name,
            policy.dash,
            policy.hls
        );
    }
    let app = Arc::new(App::new(
        store,
        HttpSettings {
            cache_control_segments: cfg.cache_control_segments.clone(),
            cache_control_manifests: cfg.cache_control_manifests.clone(),
            // Every output is fetched once: a cache would only hold memory.
            encrypted_cache_bytes: 0,
            max_concurrent_encryptions: cfg.max_concurrent_encryptions,
            player_script: None,
        },
        cfg.drm.clone(),
    ));
    app.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let (files, bytes) = runtime.block_on(export(&app, asset, &policy, &dash, &hls, out))?;
    let list = |v: &[Variant]| v.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
    super::print_lines(&[format!(
        "packaged {asset}: {files} files, {} in {:.2} s into {} (dash: {}, hls: {})",
        human(bytes),
        started.elapsed().as_secs_f64(),
        out.display(),
        if dash.is_empty() { "-".to_owned() } else { list(&dash) },
        if hls.is_empty() { "-".to_owned() } else { list(&hls) },
    )]);
    Ok(())
}

async fn export(
    app: &Arc<App>,
    asset: &str,
    policy: &drm_origin::drm::Policy,
    dash: &[Variant],
    hls: &[Variant],
    out: &Path,
) -> anyhow::Result<(usize, u64)> {
    let name = |stem: &str, ext: &str, v: Variant| match v {
        Variant::Clear => format!("/{asset}/{stem}.{ext}"),
        v => format!("/{asset}/{stem}.{}.{ext}", v.suffix()),
    };
    // Manifests first: they name everything else.
    let mut manifests: Vec<String> = Vec::new();
    if policy.dash.first().is_some_and(|v| dash.contains(v)) {
        manifests.push(format!("/{asset}/manifest.mpd"));
    }
    if policy.hls.first().is_some_and(|v| hls.contains(v)) {
        manifests.push(format!("/{asset}/master.m3u8"));
    }
    manifests.extend(dash.iter().filter(|v| **v != Variant::Clear).map(|v| name("manifest", "mpd", *v)));
    manifests.extend(hls.iter().filter(|v| **v != Variant::Clear).map(|v| name("master", "m3u8", *v)));
    let mut fetched: BTreeSet<String> = BTreeSet::new();
    let mut media: BTreeSet<String> = BTreeSet::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut queue = manifests;
    // Playlists discovered from multivariant playlists are fetched in turn.
    while let Some(path) = queue.pop() {
        if !fetched.insert(path.clone()) {
            continue;
        }
        let body = fetch(app, &path).await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let refs = if path.ends_with(".mpd") { mpd_refs(&text) } else { playlist_refs(&text) };
        for r in refs {
            let Some(target) = resolve(&path, &r) else { continue };
            if target.ends_with(".m3u8") {
                queue.push(target);
            } else {
                media.insert(target);
            }
        }
        bytes = bytes.saturating_add(write(out, &path, &body)?);
        files = files.saturating_add(1);
    }
    let bar = progress(media.len() as u64);
    for path in &media {
        let body = fetch(app, path).await?;
        bytes = bytes.saturating_add(write(out, path, &body)?);
        files = files.saturating_add(1);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((files, bytes))
}

/// A bar on a terminal (stderr), nothing otherwise.
fn progress(len: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} segments {elapsed}") {
        bar.set_style(style);
    }
    bar
}

/// One GET through the server's handler; anything but 200 is an error naming the URL.
async fn fetch(app: &Arc<App>, path: &str) -> anyhow::Result<Bytes> {
    let req =
        http::Request::get(path).header(http::header::HOST, "localhost").body(http_body_util::Empty::<Bytes>::new())?;
    let resp = match drm_origin::http::handle(app.clone(), req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status();
    let body = match resp.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    };
    anyhow::ensure!(status == http::StatusCode::OK, "{path}: the origin answers {status}");
    Ok(body)
}

fn write(out: &Path, url_path: &str, body: &[u8]) -> anyhow::Result<u64> {
    let rel = url_path.trim_start_matches('/');
    // Paths come from our own manifests, resolved without '..' (see `resolve`).
    let file = out.join(rel);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&file, body).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(body.len() as u64)
}

/// `rel` against the URL path `base`; `None` for absolute URLs, data URIs, key URIs and
/// anything climbing out of the asset (`..`).
fn resolve(base: &str, rel: &str) -> Option<String> {
    if rel.is_empty() || rel.starts_with('/') || rel.contains(':') || rel.contains("..") || rel.contains('?') {
        return None;
    }
    let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{dir}/{rel}"))
}

/// Every URI of an HLS playlist: variant and media playlists, EXT-X-MAP and segment lines.
/// Key URIs (EXT-X-KEY, EXT-X-SESSION-KEY) are left out: they stay at the origin.
fn playlist_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            out.push(line.to_owned());
        } else if line.starts_with("#EXT-X-MEDIA:") || line.starts_with("#EXT-X-MAP:") {
            if let Some(uri) = attr(line, "URI") {
                out.push(uri);
            }
        }
    }
    out
}

fn attr(line: &str, name: &str) -> Option<String> {
    let at = line.find(&format!("{name}=\""))?;
    let rest = line.get(at.saturating_add(name.len()).saturating_add(2)..)?;
    Some(rest.split('"').next()?.to_owned())
}

/// Init and media segment URLs of an MPD: each Representation's SegmentTemplate with its
/// SegmentTimeline expanded (`$RepresentationID$`, `$Number$`).
fn mpd_refs(text: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut out = Vec::new();
    // Per Representation: id, and the template being read.
    let (mut rep_id, mut init, mut media, mut start, mut count) = (String::new(), None, None, 1u64, 0u64);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let get = |n: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == n)
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                match e.local_name().as_ref() {
                    b"Representation" => {
                        rep_id = get(b"id").unwrap_or_default();
                        (init, media, start, count) = (None, None, 1, 0);
                    }
                    b"SegmentTemplate" => {
                        init = get(b"initialization");
                        media = get(b"media");
                        start = get(b"startNumber").and_then(|s| s.parse().ok()).unwrap_or(1);
                    }
                    b"S" => {
                        let r: u64 = get(b"r").and_then(|s| s.parse().ok()).unwrap_or(0);
                        count = count.saturating_add(r.saturating_add(1));
                    }
                    _ => {}
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == b"Representation" => {
                let fill = |t: &str, n: Option<u64>| {
                    let t = t.replace("$RepresentationID$", &rep_id);
                    n.map_or(t.clone(), |n| t.replace("$Number$", &n.to_string()))
                };
                if let Some(i) = &init {
                    out.push(fill(i, None));
                }
                if let Some(m) = &media {
                    for n in start..start.saturating_add(count) {
                        out.push(fill(m, Some(n)));
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_inside_the_asset_only() {
        assert_eq!(resolve("/a/master.m3u8", "v_1/media.m3u8").as_deref(), Some("/a/v_1/media.m3u8"));
        assert_eq!(resolve("/a/v_1/media.m3u8", "1.cenc.m4s").as_deref(), Some("/a/v_1/1.cenc.m4s"));
        for bad in ["/.drm/key/00", "../x", "data:text/plain;base64,AA", "skd://x", "https://h/x"] {
            assert_eq!(resolve("/a/master.m3u8", bad), None, "{bad}");
        }
    }

    #[test]
    fn mpd_templates_expand() {
        let mpd = r#"<MPD><Period><AdaptationSet><Representation id="v">
          <SegmentTemplate initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="1">
          <SegmentTimeline><S t="0" d="5" r="1"/><S d="2"/></SegmentTimeline></SegmentTemplate></Representation>
          </AdaptationSet></Period></MPD>"#;
        assert_eq!(mpd_refs(mpd), ["v/init.mp4", "v/1.m4s", "v/2.m4s", "v/3.m4s"]);
    }
}
