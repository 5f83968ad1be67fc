//! `[keys]`, `[policies]`, `[[assets]]`, `[keystore]` and `[auth]` → [`Drm`]: every problem goes
//! to the caller's error list, naming its field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::raw::{Raw, RawAuth};
use super::DEFAULT_KEYSTORE;
use crate::crypto::{Key, KeyId};
use crate::drm::pattern::Pattern;
use crate::drm::store::{Key30, Mode};
use crate::drm::store_pg::PgSettings;
use crate::drm::{
    ContentKey, DeviceLicenses, Drm, KeyDelivery, KeyScope, KeySpec, Policy, PolicyKeys, System, Variant,
};

/// Keys, policies and rules; every problem goes to `errors` (nothing is half-applied: the
/// caller discards the result when `errors` is not empty).
pub(super) fn build_drm(raw: &Raw, errors: &mut Vec<String>, previous: Option<&Drm>) -> Drm {
    let mut drm = Drm::default();
    let mut store_needed = false;
    let wants_store = &mut store_needed;
    let mut auth_needed = false;
    let wants_auth = &mut auth_needed;
    let mut by_name: BTreeMap<&str, Arc<ContentKey>> = BTreeMap::new();
    for (name, k) in &raw.keys {
        let kid = KeyId::parse(&k.kid);
        // Never echo the key value in an error: it is a secret.
        let key = Key::parse_hex(&k.key);
        if kid.is_none() {
            errors.push(format!("keys.{name}.kid: '{}' is not 32 hex digits (UUID dashes allowed)", k.kid));
        }
        if key.is_none() {
            errors.push(format!("keys.{name}.key: not 32 hex digits (value not shown)"));
        }
        if let (Some(kid), Some(key)) = (kid, key) {
            if drm.keys.contains_key(&kid) {
                errors.push(format!("keys.{name}.kid: {kid} is used by another key"));
                continue;
            }
            let ck = Arc::new(ContentKey { name: name.clone(), kid, key });
            drm.keys.insert(kid, ck.clone());
            by_name.insert(name, ck);
        }
    }
    let mut policies: BTreeMap<&str, Arc<Policy>> = BTreeMap::new();
    for (name, p) in &raw.policies {
        let field = |f: &str| format!("policies.{name}.{f}");
        let mut variants = |f: &str, list: &Option<Vec<String>>| -> Vec<Variant> {
            // An absent list offers nothing over that protocol: a protected asset must never
            // fall back to clear because one protocol was left unconfigured.
            let Some(list) = list.clone() else { return Vec::new() };
            if list.is_empty() {
                errors.push(format!("{}: must list at least one variant (or leave the key out)", field(f)));
            }
            let mut out: Vec<Variant> = Vec::new();
            for v in &list {
                match Variant::parse(v) {
                    Some(Variant::Aes128) if f == "dash" => {
                        errors.push(format!("{}: aes128 is an HLS-only protection", field(f)))
                    }
                    Some(var) if !out.contains(&var) => out.push(var),
                    Some(_) => errors.push(format!("{}: '{v}' listed twice", field(f))),
                    None => errors.push(format!("{}: unknown variant '{v}' (clear, cenc, cbcs, aes128)", field(f))),
                }
            }
            out
        };
        let mut dash = variants("dash", &p.dash);
        let mut hls = variants("hls", &p.hls);
        if p.dash.is_none() && p.hls.is_none() {
            // A policy that names no variant at all is a clear policy.
            dash = vec![Variant::Clear];
            hls = vec![Variant::Clear];
        }
        let mut key = |f: &str, n: &Option<String>| -> Option<KeySpec> {
            let n = n.as_ref()?;
            if n == "auto" {
                return Some(KeySpec::Auto);
            }
            let k = by_name.get(n.as_str()).cloned();
            if k.is_none() {
                errors.push(format!("policies.{name}.keys.{f}: no key named '{n}' in [keys] (or \"auto\")"));
            }
            k.map(KeySpec::Named)
        };
        let keys = PolicyKeys {
            video: key("video", &p.keys.video),
            sd: key("sd", &p.keys.sd),
            hd: key("hd", &p.keys.hd),
            uhd: key("uhd", &p.keys.uhd),
            audio: key("audio", &p.keys.audio),
            envelope: key("envelope", &p.keys.envelope),
        };
        let video_given = [&p.keys.video, &p.keys.sd, &p.keys.hd, &p.keys.uhd].iter().any(|k| k.is_some());
        let needs_cenc = dash.iter().chain(&hls).any(|v| v.is_cenc_family());
        if needs_cenc && !video_given {
            errors.push(format!("{}: cenc/cbcs variants need keys.video (or sd/hd/uhd)", field("keys")));
        }
        if hls.contains(&Variant::Aes128) && p.keys.envelope.is_none() {
            errors.push(format!("{}: the aes128 variant needs keys.envelope", field("keys")));
        }
        if let Some(KeySpec::Named(e)) = &keys.envelope {
            let cenc_named = [&keys.video, &keys.sd, &keys.hd, &keys.uhd, &keys.audio];
            if cenc_named.iter().any(|k| matches!(k, Some(KeySpec::Named(c)) if c.kid == e.kid)) {
                errors.push(format!("{}: the envelope key must differ from the CENC keys", field("keys.envelope")));
            }
        }
        let uses_auto = [&keys.video, &keys.sd, &keys.hd, &keys.uhd, &keys.audio, &keys.envelope]
            .iter()
            .any(|k| matches!(k, Some(KeySpec::Auto)));
        if uses_auto {
            *wants_store = true;
        }
        let key_scope = match &p.key_group {
            None => KeyScope::Asset,
            Some(g) if crate::storage::catalog::valid_name(g) => KeyScope::Group(g.clone()),
            Some(g) => {
                errors.push(format!("{}: '{g}' must be a name of [A-Za-z0-9._-]", field("key_group")));
                KeyScope::Asset
            }
        };
        let mut systems = Vec::new();
        for s in p.drm_systems.clone().unwrap_or_else(|| vec!["clearkey".to_owned()]) {
            match System::parse(&s) {
                Some(sys) if !systems.contains(&sys) => systems.push(sys),
                Some(_) => errors.push(format!("{}: '{s}' listed twice", field("drm_systems"))),
                None => errors.push(format!(
                    "{}: unknown system '{s}' (clearkey, widevine, playready, fairplay)",
                    field("drm_systems")
                )),
            }
        }
        let mut license_urls = BTreeMap::new();
        for (sys, url) in &p.license_urls {
            match System::parse(sys) {
                Some(s) => {
                    let ok = (url.starts_with("https://")
                        || url.starts_with("http://")
                        || url.starts_with("skd://")
                        || url.starts_with('/'))
                        && !url.contains('"')
                        && !url.chars().any(char::is_whitespace);
                    if ok {
                        license_urls.insert(s, url.clone());
                    } else {
                        errors.push(format!(
                            "{}: '{url}' is not an http(s)/skd URL or absolute path",
                            field(&format!("license_urls.{sys}"))
                        ));
                    }
                }
                None => errors.push(format!("{}: unknown system '{sys}'", field("license_urls"))),
            }
        }
        let key_delivery = match p.key_delivery.as_deref() {
            None | Some("none") => KeyDelivery::None,
            Some("open") => KeyDelivery::Open,
            Some("token") => KeyDelivery::Token,
            Some(other) => {
                errors.push(format!("{}: '{other}' is not one of none, open, token", field("key_delivery")));
                KeyDelivery::None
            }
        };
        let device_licenses = match p.device_licenses.as_deref() {
            None | Some("none") => DeviceLicenses::None,
            Some("direct") => DeviceLicenses::Direct,
            Some("chained") => DeviceLicenses::Chained,
            Some(other) => {
                errors.push(format!("{}: '{other}' is not one of none, direct, chained", field("device_licenses")));
                DeviceLicenses::None
            }
        };
        // Device licenses carry the envelope key themselves: aes128 needs no raw key endpoint then.
        if hls.contains(&Variant::Aes128)
            && key_delivery == KeyDelivery::None
            && device_licenses == DeviceLicenses::None
        {
            errors.push(format!(
                "{}: aes128 needs key_delivery = \"open\" or \"token\" (players fetch the key from /.drm/key/{{kid}})",
                field("key_delivery")
            ));
        }
        let root_keys = root_keys(p, device_licenses, &field, errors);
        let policy = Policy {
            name: name.clone(),
            allow_clear: p.allow_clear.unwrap_or(false) || !dash.iter().chain(&hls).any(|v| *v != Variant::Clear),
            dash,
            hls,
            clear_lead_segments: p.clear_lead_segments.unwrap_or(0),
            key_delivery,
            keys,
            key_scope,
            systems,
            license_urls,
            persistent_licenses: p.persistent_licenses.unwrap_or(false),
            device_licenses,
            root_keys,
        };
        if policy.key_delivery == KeyDelivery::Token || policy.device_licenses != DeviceLicenses::None {
            *wants_auth = true;
        }
        policies.insert(name, Arc::new(policy));
    }
    for (i, rule) in raw.assets.iter().enumerate() {
        let pattern = Pattern::parse(&rule.pattern);
        if pattern.is_none() {
            errors.push(format!(
                "assets[{i}].match: '{}' is not an asset id or glob (a/b, kids/*, kids/**)",
                rule.pattern
            ));
        }
        let policy = policies.get(rule.policy.as_str()).cloned();
        if policy.is_none() {
            errors.push(format!("assets[{i}].policy: no policy named '{}' in [policies]", rule.policy));
        }
        if let (Some(pat), Some(pol)) = (pattern, policy) {
            drm.rules.push((pat, pol));
        }
    }
    build_auth(&raw.auth, auth_needed, &policies, &mut drm, previous, errors);
    let ks = &raw.keystore;
    if store_needed || ks.seed.is_some() || ks.path.is_some() || ks.backend.is_some() {
        let mode = match ks.backend.as_deref().unwrap_or("file") {
            "postgres" => postgres_mode(ks, errors),
            "file" => match &ks.seed {
                Some(b64) => match crate::drm::b64::decode(b64.trim()) {
                    Some(seed) if seed.len() >= 30 => Some(Mode::Seed(Key30(seed))),
                    _ => {
                        errors.push("keystore.seed: must be base64 of at least 30 bytes (value not shown)".to_owned());
                        None
                    }
                },
                None => Some(Mode::Persistent(ks.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_KEYSTORE)))),
            },
            other => {
                errors.push(format!("keystore.backend: '{other}' is not \"file\" or \"postgres\""));
                None
            }
        };
        if let Some(mode) = mode {
            let reuse = previous.and_then(|p| p.store.clone()).filter(|s| s.same_source(&mode));
            match reuse {
                Some(s) => drm.store = Some(s),
                None => match crate::drm::store::open(mode) {
                    Ok(s) => drm.store = Some(s),
                    Err(e) => errors.push(format!("keystore: {e}")),
                },
            }
        }
    }
    drm
}

/// `[keystore] backend = "postgres"`: the URL from `url` or from the environment variable
/// `url_env` names (so a password need not sit in the file). Never quoted in an error.
fn postgres_mode(ks: &super::raw::RawKeyStore, errors: &mut Vec<String>) -> Option<Mode> {
    if ks.seed.is_some() || ks.path.is_some() {
        errors.push("keystore: seed and path belong to the file backend, not \"postgres\"".to_owned());
    }
    let url = match (&ks.url, &ks.url_env) {
        (Some(u), None) => Some(u.clone()),
        (None, Some(var)) => match std::env::var(var) {
            Ok(u) if !u.trim().is_empty() => Some(u),
            _ => {
                errors.push(format!("keystore.url_env: environment variable {var} is not set"));
                None
            }
        },
        _ => {
            errors.push("keystore: backend \"postgres\" needs exactly one of url, url_env".to_owned());
            None
        }
    }?;
    let timeout = ks.timeout_ms.unwrap_or(2000);
    if !(100..=60_000).contains(&timeout) {
        errors.push(format!("keystore.timeout_ms: {timeout} is outside 100..=60000"));
        return None;
    }
    Some(Mode::Postgres(PgSettings { url, timeout: std::time::Duration::from_millis(timeout) }))
}

/// Default `auth.token_cache_mb`: room for some ten thousand verified tokens.
const DEFAULT_TOKEN_CACHE_MB: u64 = 8;
/// Largest `auth.token_cache_mb`.
const MAX_TOKEN_CACHE_MB: u64 = 4096;

/// `[auth]`: verification keys and token rules. Required when a policy delivers keys by token.
fn build_auth(
    a: &RawAuth,
    needed: bool,
    policies: &BTreeMap<&str, Arc<Policy>>,
    drm: &mut Drm,
    previous: Option<&Drm>,
    errors: &mut Vec<String>,
) {
    use crate::license::token::{hmac_key, keys_from_pem};
    use crate::license::{TokenConfig, Verifier};
    use jsonwebtoken::Algorithm;
    drm.carry_token = a.carry_token.unwrap_or(true);
    let mut keys = Vec::new();
    if let Some(secret) = &a.hmac_secret {
        match crate::drm::b64::decode(secret.trim()).filter(|s| s.len() >= 32) {
            Some(bytes) => {
                let mut algs = Vec::new();
                for name in a.hmac_algorithms.clone().unwrap_or_else(|| vec!["HS256".to_owned()]) {
                    match name.as_str() {
                        "HS256" => algs.push(Algorithm::HS256),
                        "HS384" => algs.push(Algorithm::HS384),
                        "HS512" => algs.push(Algorithm::HS512),
                        other => errors.push(format!("auth.hmac_algorithms: '{other}' is not HS256, HS384 or HS512")),
                    }
                }
                keys.push(hmac_key(&bytes, algs));
                drm.hmac_secret = Some(crate::drm::Secret(bytes));
            }
            None => errors.push("auth.hmac_secret: must be base64 of at least 32 bytes (value not shown)".to_owned()),
        }
    }
    for (i, path) in a.public_keys.iter().enumerate() {
        match std::fs::read(path) {
            Ok(pem) => match keys_from_pem(&pem, None) {
                Ok(k) => keys.push(k),
                Err(e) => errors.push(format!("auth.public_keys[{i}]: {}: {e}", path.display())),
            },
            Err(e) => errors.push(format!("auth.public_keys[{i}]: cannot read {}: {e}", path.display())),
        }
    }
    for (tier, list) in &a.tiers {
        for p in list {
            if !policies.contains_key(p.as_str()) {
                errors.push(format!("auth.tiers.{tier}: no policy named '{p}'"));
            }
        }
    }
    if a.tier_claim.is_some() && a.tiers.is_empty() {
        errors.push("auth.tiers: tier_claim is set but no tier unlocks any policy".to_owned());
    }
    let jwks = build_jwks(a, previous, errors);
    if needed && keys.is_empty() && jwks.is_none() {
        errors.push(
            "auth: a policy has key_delivery = \"token\" or device_licenses but no hmac_secret, public_keys, jwks_url or \
             openid_discovery_url is configured"
                .to_owned(),
        );
    }
    if keys.is_empty() && jwks.is_none() {
        return;
    }
    let config = TokenConfig {
        issuer: a.issuer.clone(),
        audience: a.audience.clone(),
        leeway_secs: a.leeway_secs.unwrap_or(30).min(600),
        required_claims: a.required_claims.clone(),
        kid_claim: a.kid_claim.clone(),
        asset_claim: a.asset_claim.clone(),
        tier_claim: a.tier_claim.clone(),
        tiers: a.tiers.clone(),
    };
    // A fresh cache with every configuration: nothing verified under the old one is reused.
    let cache_mb = a.token_cache_mb.unwrap_or(DEFAULT_TOKEN_CACHE_MB);
    if cache_mb > MAX_TOKEN_CACHE_MB {
        errors.push(format!("auth.token_cache_mb: {cache_mb} is over {MAX_TOKEN_CACHE_MB}"));
    }
    let cache = (cache_mb > 0).then(|| {
        crate::license::verified::VerifiedTokens::new(cache_mb.min(MAX_TOKEN_CACHE_MB).saturating_mul(1 << 20))
    });
    drm.verifier = Some(Arc::new(Verifier { keys, jwks, config, cache }));
}

/// `auth.jwks_url` / `auth.openid_discovery_url`: keys published by an identity provider. The
/// previous configuration's key set is kept when the source is unchanged, so a reload neither
/// refetches nor forgets the last good keys.
fn build_jwks(a: &RawAuth, previous: Option<&Drm>, errors: &mut Vec<String>) -> Option<Arc<crate::license::Jwks>> {
    use crate::license::{Jwks, JwksSource};
    let (url, discovery, field) = match (&a.jwks_url, &a.openid_discovery_url) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            errors.push("auth.jwks_url: set either jwks_url or openid_discovery_url, not both".to_owned());
            return None;
        }
        (Some(u), None) => (u.clone(), false, "auth.jwks_url"),
        (None, Some(u)) => (u.clone(), true, "auth.openid_discovery_url"),
    };
    let refresh = a.jwks_refresh_secs.unwrap_or(300);
    if !(1..=86_400).contains(&refresh) {
        errors.push(format!("auth.jwks_refresh_secs: {refresh} is not between 1 and 86400"));
    }
    let timeout = a.jwks_timeout_secs.unwrap_or(5);
    if !(1..=60).contains(&timeout) {
        errors.push(format!("auth.jwks_timeout_secs: {timeout} is not between 1 and 60"));
    }
    let min_refresh = a.jwks_min_refresh_secs.unwrap_or(crate::license::jwks::ON_DEMAND_MIN_INTERVAL.as_secs());
    if !(1..=3600).contains(&min_refresh) {
        errors.push(format!("auth.jwks_min_refresh_secs: {min_refresh} is not between 1 and 3600"));
    }
    let source = JwksSource {
        url,
        discovery,
        refresh: Duration::from_secs(refresh.clamp(1, 86_400)),
        timeout: Duration::from_secs(timeout.clamp(1, 60)),
        on_demand_min_interval: Duration::from_secs(min_refresh.clamp(1, 3600)),
        issuer: a.issuer.clone(),
        ca_file: a.jwks_ca_file.clone(),
    };
    let reuse =
        previous.and_then(|p| p.verifier.as_ref()).and_then(|v| v.jwks.clone()).filter(|j| j.source() == &source);
    if reuse.is_some() {
        return reuse;
    }
    match Jwks::new(source) {
        Ok(j) => Some(Arc::new(j)),
        Err(e) => {
            let field =
                if e.starts_with("cannot read CA") || e.contains("certificate") { "auth.jwks_ca_file" } else { field };
            errors.push(format!("{field}: {e}"));
            None
        }
    }
}

/// A chained policy's root-key versions: the configured ones (unique versions ≥ 1, each with
/// `not_before < not_after`), or one version live for ever. Other policies may not list any.
fn root_keys(
    p: &super::raw::RawPolicy,
    mode: DeviceLicenses,
    field: &dyn Fn(&str) -> String,
    errors: &mut Vec<String>,
) -> Vec<crate::drm::RootKeyVersion> {
    use crate::drm::RootKeyVersion;
    let Some(list) = &p.root_keys else {
        return if mode == DeviceLicenses::Chained {
            vec![RootKeyVersion { version: 1, not_before: 0, not_after: i64::MAX }]
        } else {
            Vec::new()
        };
    };
    if mode != DeviceLicenses::Chained {
        errors.push(format!(
            "{}: only a chained policy (device_licenses = \"chained\") has root keys",
            field("root_keys")
        ));
        return Vec::new();
    }
    let mut out: Vec<RootKeyVersion> = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let v = RootKeyVersion {
            version: r.version,
            not_before: r.not_before.unwrap_or(0),
            not_after: r.not_after.unwrap_or(i64::MAX),
        };
        if v.version == 0 {
            errors.push(format!("{}: version 0; versions start at 1", field(&format!("root_keys[{i}]"))));
        } else if out.iter().any(|o| o.version == v.version) {
            errors.push(format!("{}: version {} listed twice", field(&format!("root_keys[{i}]")), v.version));
        } else if v.not_before >= v.not_after {
            errors.push(format!("{}: not_before is not before not_after", field(&format!("root_keys[{i}]"))));
        } else {
            out.push(v);
        }
    }
    if list.is_empty() {
        errors.push(format!("{}: a chained policy needs at least one root-key version", field("root_keys")));
    }
    out.sort_by_key(|v| v.version);
    out
}
