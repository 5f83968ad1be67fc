//! `drm-origin keys show | export | import`: inspect an asset's keys, exchange them as CPIX.

use std::path::PathBuf;

use anyhow::Context;
use drm_origin::config::{Config, Overrides};

use super::{config_path, load_asset, print_lines};

/// `keys show`.
pub fn show(asset: &str, assets: Option<PathBuf>, config: Option<PathBuf>, show_keys: bool) -> anyhow::Result<()> {
    use drm_origin::drm::Variant;
    let cfg = Config::load(config_path(config).as_deref(), Overrides { listen: None, assets_dir: assets })?;
    let a = load_asset(&cfg, asset)?;
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

/// `keys export`: a CPIX 2.3 document.
pub fn export(
    asset: &str,
    assets: Option<PathBuf>,
    config: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    use drm_origin::drm::cpix::{self, CpixKey, KeyClass};
    use drm_origin::drm::pssh::Scheme;
    use drm_origin::drm::Variant;
    let cfg = Config::load(config_path(config).as_deref(), Overrides { listen: None, assets_dir: assets })?;
    let a = load_asset(&cfg, asset)?;
    let policy = cfg.drm.policy_for(asset);
    // Every CENC scheme the policy serves, with the protocols it is served over: a DRM vendor
    // needs the signalling of each (FairPlay for cbcs over HLS, even when DASH lists cenc first).
    let uses: Vec<cpix::SchemeUse> = [(Variant::Cenc, Scheme::Cenc), (Variant::Cbcs, Scheme::Cbcs)]
        .into_iter()
        .map(|(v, scheme)| cpix::SchemeUse { scheme, dash: policy.dash.contains(&v), hls: policy.hls.contains(&v) })
        .filter(|u| u.dash || u.hls)
        .collect();
    anyhow::ensure!(!uses.is_empty(), "policy {} protects {asset} with no cenc/cbcs variant", policy.name);
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
    let xml = cpix::export_schemes(asset, &keys, &policy.systems, &uses, &policy.license_urls)?;
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

/// `keys import`: CPIX → the key store.
pub fn import(file: &std::path::Path, asset: &str, config: Option<PathBuf>) -> anyhow::Result<()> {
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
