//! What `serve` prints on stdout once the catalog is indexed: for every asset its demo page and
//! manifest URLs and how it is delivered, and the exact command that mints a development token
//! when the configuration has an HMAC secret. The demo material is named as such, and exposing
//! it beyond loopback draws a loud warning.

use std::path::Path;

use drm_origin::config::{is_loopback, Config};
use drm_origin::drm::{KeyDelivery, Policy, Variant};
use drm_origin::storage::{AssetState, Store};

/// The lines of the start banner.
pub fn lines(cfg: &Config, config_path: Option<&Path>, base: &str, store: &Store) -> Vec<String> {
    let (drm, lib) = (&cfg.drm, store.library());
    let mut out = vec![String::new()];
    if !cfg.demo_material.is_empty() {
        out.push(format!(
            "!! DEMO configuration: {} hold the shipped DEMO keys/secret, published in the repository. \
             Content protected with them is not protected. Never use them for real content.",
            cfg.demo_material.join(", ")
        ));
    }
    let mut needs_token = false;
    for (id, state) in &lib.assets {
        let policy = drm.policy_for(id);
        let how = match state {
            AssetState::Broken(_) => "UNAVAILABLE (see the log)".to_owned(),
            AssetState::Ready(_) => describe(&policy),
        };
        needs_token |= policy.is_protected() && policy.key_delivery == KeyDelivery::Token;
        out.push(format!("asset {id}: {how}"));
        let token =
            if policy.is_protected() && policy.key_delivery == KeyDelivery::Token { "&token=TOKEN" } else { "" };
        let protocols =
            [("DASH", "dash", &policy.dash, "manifest", "mpd"), ("HLS ", "hls", &policy.hls, "master", "m3u8")];
        for (label, protocol, variants, stem, ext) in protocols {
            for v in variants.iter() {
                out.push(format!("  {label} {:<7}{base}/{id}/{}", v.to_string(), manifest(stem, *v, ext, variants)));
                if cfg.player_script.is_some() {
                    let variant = if *v == Variant::Clear { String::new() } else { format!("&variant={}", v.suffix()) };
                    out.push(format!(
                        "    demo page  {base}/player/{id}?protocol={protocol}{variant}&autoplay=1{token}"
                    ));
                }
            }
        }
    }
    if let Some(cmd) = token_command(cfg, config_path) {
        out.push(format!(
            "development token for the token-gated assets (put it in place of TOKEN, or in the demo page's Token box):\n  {cmd}"
        ));
    } else if needs_token {
        out.push("token-gated assets need a token from your identity provider (no [auth] hmac_secret here)".to_owned());
    }
    out
}

/// The loud warning when demo material is served beyond loopback, or `None`.
pub fn exposure_warning(cfg: &Config, listens: &[String]) -> Option<String> {
    let exposed: Vec<&String> = listens.iter().filter(|l| !is_loopback(l)).collect();
    if cfg.demo_material.is_empty() || exposed.is_empty() {
        return None;
    }
    let bar = "!".repeat(78);
    Some(format!(
        "\n{bar}\n!! WARNING: serving the shipped DEMO keys/secret ({}) on {}.\n!! They are public: \
         anyone can decrypt this content and mint tokens. Replace them before exposing this server.\n{bar}",
        cfg.demo_material.join(", "),
        exposed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    ))
}

fn describe(p: &Policy) -> String {
    if !p.is_protected() {
        return "clear".to_owned();
    }
    let schemes: Vec<String> = p.dash.iter().chain(p.hls.iter()).map(|v| v.to_string()).collect();
    let mut uniq: Vec<String> = Vec::new();
    for s in schemes {
        if !uniq.contains(&s) {
            uniq.push(s);
        }
    }
    let delivery = match p.key_delivery {
        KeyDelivery::Open => "keys delivered to anyone (open ClearKey)",
        KeyDelivery::Token => "keys only with a valid token",
        KeyDelivery::None => "keys from an external license service",
    };
    format!("protected ({}), {delivery}", uniq.join(", "))
}

/// `manifest.mpd` for the policy's first variant, `manifest.cenc.mpd` for the others.
fn manifest(stem: &str, v: Variant, ext: &str, all: &[Variant]) -> String {
    if all.first() == Some(&v) || v == Variant::Clear {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}.{}.{ext}", v.suffix())
    }
}

/// `<this binary> token --config FILE --sub demo --groups G --ttl 1h`, with the claims the
/// configuration requires.
fn token_command(cfg: &Config, config_path: Option<&Path>) -> Option<String> {
    cfg.drm.hmac_secret.as_ref()?;
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    let bin = match (&exe, &cwd) {
        (Some(e), Some(c)) => {
            e.strip_prefix(c).map(|r| format!("./{}", r.display())).unwrap_or(e.display().to_string())
        }
        (Some(e), None) => e.display().to_string(),
        _ => "drm-origin".to_owned(),
    };
    let mut cmd = format!("{bin} token");
    if let Some(p) = config_path {
        cmd.push_str(&format!(" --config {}", p.display()));
    }
    cmd.push_str(" --sub demo");
    if let Some(rules) = cfg.drm.verifier.as_ref().map(|v| &v.config) {
        if let Some(g) = rules.required_claims.get("groups") {
            cmd.push_str(&format!(" --groups {g}"));
        }
    }
    cmd.push_str(" --ttl 1h");
    Some(cmd)
}
