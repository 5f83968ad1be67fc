//! `drm-origin token`: development tokens signed with the configured HMAC secret.

use std::path::PathBuf;

use drm_origin::config::{Config, Overrides};

use super::{config_path, print_lines};

#[allow(clippy::too_many_arguments)]
/// `token`: a development token.
pub fn mint(
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
