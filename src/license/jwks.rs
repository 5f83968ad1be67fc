//! Verification keys published by an identity provider: a JWKS document, found directly or
//! through OpenID Connect discovery (`jwks_uri`), refreshed periodically.
//!
//! Rollover works the way providers do it: a new key appears in the document before tokens are
//! signed with it, the old one stays until its tokens have expired. Every key of the current
//! document verifies, so both generations pass during the overlap; once a key is gone from the
//! document its tokens fail. A failed refresh (provider down, garbage, a document without one
//! usable key) changes nothing: the last good keys stay. A token naming a `kid` we do not know
//! triggers an early refresh, at most once per `on_demand_min_interval` (default
//! [`ON_DEMAND_MIN_INTERVAL`]), so a provider that
//! starts signing with a new key before our next periodic refresh is followed at once without
//! letting anyone make us fetch in a loop.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use sha2::Digest;

use super::fetch::{self, Target, Trust};
use super::token::VerifyKey;

/// Default least time between a refresh and one caused by an unknown `kid`.
pub const ON_DEMAND_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Retry delay after a failed periodic refresh (capped by the refresh interval).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Smallest RSA modulus accepted from a JWKS, in bytes (2048 bits).
const MIN_RSA_MODULUS: usize = 256;
/// Most keys taken from one document. A token without a `kid` is tried against every key of its
/// algorithm, so this bounds what one forged token costs (an RSA verification is ~0.1 ms);
/// providers publish a handful (current, next, previous).
pub const MAX_KEYS: usize = 32;
/// Longest a token request waits for a refresh another request or the refresher started: a slow
/// or unreachable provider must not hold token requests for the length of its fetch deadline.
const WAIT_FOR_REFRESH: Duration = Duration::from_secs(1);

/// Where the keys come from, as configured. Two configurations with equal sources share one
/// [`Jwks`] across a reload, so the last good keys survive it.
#[derive(Clone, PartialEq, Eq)]
pub struct JwksSource {
    /// The JWKS URL, or the OpenID discovery document's URL when `discovery` is set.
    pub url: String,
    /// `url` is a discovery document whose `jwks_uri` names the JWKS.
    pub discovery: bool,
    /// Periodic refresh interval.
    pub refresh: Duration,
    /// Deadline of one fetch.
    pub timeout: Duration,
    /// Least time between any refresh and one caused by an unknown `kid`.
    pub on_demand_min_interval: Duration,
    /// When set, a discovery document must name exactly this issuer.
    pub issuer: Option<String>,
    /// Extra trust anchors (PEM) for HTTPS.
    pub ca_file: Option<PathBuf>,
}

impl JwksSource {
    /// The URL for logs and Debug: without its query, which could carry a credential.
    pub fn shown_url(&self) -> String {
        match self.url.split_once('?') {
            Some((base, _)) => format!("{base}?…"),
            None => self.url.clone(),
        }
    }
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("url", &self.shown_url())
            .field("discovery", &self.discovery)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// Refresh bookkeeping.
#[derive(Debug, Default)]
struct Status {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    last_ok: bool,
}

/// The last good keys and their generation: a number that changes whenever a fetched document
/// differs from the one the keys came from (a key removed, added or replaced), so that a
/// verification remembered under one generation is never reused under another
/// ([`super::verified`]). Kept under one lock so a reader sees keys and generation together.
struct KeySet {
    keys: Arc<Vec<VerifyKey>>,
    generation: u64,
    /// SHA-256 of the document the keys were parsed from.
    digest: [u8; 32],
}

/// The keys of one source and their refresher.
pub struct Jwks {
    source: JwksSource,
    target: Target,
    trust: Trust,
    keys: RwLock<KeySet>,
    status: Mutex<Status>,
    single: tokio::sync::Mutex<()>,
    started: AtomicBool,
    failures: AtomicU64,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("source", &self.source).field("keys", &self.keys().len()).finish_non_exhaustive()
    }
}

impl Jwks {
    /// Validates the source (URL, CA file); fetches nothing yet.
    pub fn new(source: JwksSource) -> Result<Jwks, String> {
        let target = Target::parse(&source.url).map_err(|e| e.to_string())?;
        let ca = match &source.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| format!("cannot read CA file {}: {e}", p.display()))?),
            None => None,
        };
        let trust = Trust::new(ca.as_deref())?;
        Ok(Jwks {
            source,
            target,
            trust,
            keys: RwLock::new(KeySet { keys: Arc::new(Vec::new()), generation: 0, digest: [0; 32] }),
            status: Mutex::new(Status::default()),
            single: tokio::sync::Mutex::new(()),
            started: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        })
    }

    /// The source this was built from.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// Whether the last good document publishes a key under `kid`.
    pub fn publishes(&self, kid: &str) -> bool {
        self.keys().iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The last good keys (empty until the first successful fetch).
    pub fn keys(&self) -> Arc<Vec<VerifyKey>> {
        self.snapshot().0
    }

    /// The last good keys with their generation, read together.
    pub fn snapshot(&self) -> (Arc<Vec<VerifyKey>>, u64) {
        let read = |k: &KeySet| (k.keys.clone(), k.generation);
        match self.keys.read() {
            Ok(k) => read(&k),
            Err(p) => read(&p.into_inner()),
        }
    }

    /// Failed refreshes so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        match self.status.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// Fetches the document now and installs its keys; on failure the last good keys stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one = self.single.lock().await;
        self.refresh_locked().await
    }

    /// Refresh because a token named a `kid` we do not have (or we have no key at all). Returns
    /// whether the keys may have changed since the caller looked, so that verifying again is
    /// worth it.
    pub async fn refresh_on_demand(&self) -> bool {
        let asked = Instant::now();
        let Ok(_one) = tokio::time::timeout(WAIT_FOR_REFRESH, self.single.lock()).await else {
            return false;
        };
        let last = self.status().last_attempt;
        match last {
            // Someone refreshed while we waited for the lock.
            Some(t) if t >= asked => true,
            Some(t) if t.elapsed() < self.source.on_demand_min_interval => false,
            _ => self.refresh_locked().await.is_ok(),
        }
    }

    async fn refresh_locked(&self) -> Result<usize, String> {
        self.status().last_attempt = Some(Instant::now());
        let result = self.fetch_keys().await;
        let mut status = self.status();
        match result {
            Ok((keys, skipped, digest)) => {
                status.last_success = Some(Instant::now());
                status.last_ok = true;
                drop(status);
                let n = keys.len();
                self.install(keys, &skipped, digest);
                Ok(n)
            }
            Err(e) => {
                status.last_ok = false;
                drop(status);
                self.failures.fetch_add(1, Ordering::Relaxed);
                let kept = self.keys().len();
                tracing::warn!(url = %self.source.shown_url(), error = %e, kept_keys = kept, "JWKS refresh failed; the last good keys stay in force");
                Err(e)
            }
        }
    }

    /// The usable keys of the document, the reasons others were skipped, the document's digest.
    async fn fetch_keys(&self) -> Result<(Vec<VerifyKey>, Vec<String>, [u8; 32]), String> {
        let deadline = self.source.timeout;
        let jwks_target = if self.source.discovery {
            let body = fetch::get(&self.target, &self.trust, deadline).await.map_err(|e| format!("discovery: {e}"))?;
            let uri = parse_discovery(&body, self.source.issuer.as_deref())?;
            self.target.join(&uri).map_err(|e| format!("discovery: {e}"))?
        } else {
            self.target.clone()
        };
        let body = fetch::get(&jwks_target, &self.trust, deadline).await.map_err(|e| format!("JWKS: {e}"))?;
        let (keys, skipped) = parse_jwks(&body)?;
        Ok((keys, skipped, sha2::Sha256::digest(&body).into()))
    }

    fn install(&self, keys: Vec<VerifyKey>, skipped: &[String], digest: [u8; 32]) {
        let kids = |v: &[VerifyKey]| -> BTreeSet<String> {
            v.iter().map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".to_owned())).collect()
        };
        let before = kids(&self.keys());
        let after = kids(&keys);
        if before != after {
            // Key ids are public (they are in every token header): safe to log.
            let added: Vec<&String> = after.difference(&before).collect();
            let removed: Vec<&String> = before.difference(&after).collect();
            tracing::info!(url = %self.source.shown_url(), keys = after.len(), ?added, ?removed, "JWKS signing keys changed");
            for s in skipped {
                tracing::warn!(url = %self.source.shown_url(), "JWKS key ignored: {s}");
            }
        }
        let replace = |set: &mut KeySet| {
            // Any change of the document, even one the key ids do not show (a key replaced
            // under its old id), is a new generation; the same document again is not.
            if set.digest != digest {
                set.generation = set.generation.wrapping_add(1);
                set.digest = digest;
            }
            set.keys = Arc::new(keys);
        };
        match self.keys.write() {
            Ok(mut k) => replace(&mut k),
            Err(p) => replace(&mut p.into_inner()),
        }
    }

    /// When the next periodic refresh is due.
    fn next_due(&self) -> Instant {
        let s = self.status();
        match s.last_attempt {
            None => Instant::now(),
            Some(t) if s.last_ok => t + self.source.refresh,
            Some(t) => t + self.source.refresh.min(RETRY_AFTER_FAILURE),
        }
    }

    /// Starts the periodic refresher on the current tokio runtime (once; no runtime, no-op).
    /// The task holds only a weak reference: it ends when the configuration using this source
    /// is replaced by one that does not.
    pub fn start(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                let due = match weak.upgrade() {
                    Some(j) => j.next_due(),
                    None => return,
                };
                tokio::time::sleep_until(due.into()).await;
                let Some(j) = weak.upgrade() else { return };
                if j.next_due() <= Instant::now() {
                    let _ = j.refresh().await;
                }
            }
        });
    }

    /// Fetches once if no fetch succeeded yet (at start, so the first tokens find keys).
    pub async fn prime(&self) {
        let _one = self.single.lock().await;
        // The refresher may have loaded them while we waited for the lock.
        if self.status().last_success.is_none() {
            match self.refresh_locked().await {
                Ok(n) => tracing::info!(url = %self.source.shown_url(), keys = n, "JWKS loaded"),
                Err(_) => {
                    tracing::warn!(url = %self.source.shown_url(), "no JWKS keys yet: token requests are refused until a refresh succeeds")
                }
            }
        }
    }
}

/// The `jwks_uri` of an OpenID Connect discovery document, after checking its issuer.
pub fn parse_discovery(body: &[u8], issuer: Option<&str>) -> Result<String, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("discovery document is not JSON: {e}"))?;
    if let Some(want) = issuer {
        match doc.get("issuer").and_then(Value::as_str) {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(format!("discovery document names issuer '{got}', auth.issuer is '{want}' (exact match)"))
            }
            None => return Err("discovery document has no issuer".to_owned()),
        }
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "discovery document has no jwks_uri".to_owned())
}

/// The usable signature keys of a JWKS document, and why the others were left out. RSA keys
/// (2048 bits or more) verify RS256/PS256 and EC P-256 keys ES256, or only their `alg` when
/// they name one; encryption keys and symmetric keys are never taken from a published document.
pub fn parse_jwks(body: &[u8]) -> Result<(Vec<VerifyKey>, Vec<String>), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let list = doc.get("keys").and_then(Value::as_array).ok_or("JWKS has no \"keys\" array")?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, jwk) in list.iter().enumerate() {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let name = kid.clone().map_or_else(|| format!("keys[{i}]"), |k| format!("kid '{k}'"));
        match one_key(jwk) {
            Ok(_) if keys.len() >= MAX_KEYS => skipped.push(format!("{name}: more than {MAX_KEYS} usable keys")),
            Ok((key, algorithms)) => keys.push(VerifyKey { kid, key, algorithms }),
            Err(why) => skipped.push(format!("{name}: {why}")),
        }
    }
    if keys.is_empty() {
        return Err(format!("JWKS has no usable signature key ({})", skipped.join("; ")));
    }
    Ok((keys, skipped))
}

fn one_key(jwk: &Value) -> Result<(DecodingKey, Vec<Algorithm>), String> {
    let s = |name: &str| jwk.get(name).and_then(Value::as_str);
    if let Some(u) = s("use") {
        if u != "sig" {
            return Err(format!("use is '{u}', not 'sig'"));
        }
    }
    let alg = s("alg");
    let restrict = |family: &[Algorithm]| -> Result<Vec<Algorithm>, String> {
        match alg {
            None => Ok(family.to_vec()),
            Some(a) => {
                let parsed: Algorithm = a.parse().map_err(|_| format!("unknown alg '{a}'"))?;
                if family.contains(&parsed) {
                    Ok(vec![parsed])
                } else {
                    Err(format!("alg '{a}' does not fit the key type"))
                }
            }
        }
    };
    match s("kty") {
        Some("RSA") => {
            let (n, e) = s("n").zip(s("e")).ok_or("RSA key without n or e")?;
            let modulus = crate::drm::b64::decode_url(n).ok_or("n is not base64url")?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS {
                return Err(format!("RSA modulus of {} bits, under 2048", significant.saturating_mul(8)));
            }
            let algorithms = restrict(&[Algorithm::RS256, Algorithm::PS256])?;
            let key = DecodingKey::from_rsa_components(n, e).map_err(|e| format!("bad RSA key: {e}"))?;
            Ok((key, algorithms))
        }
        Some("EC") => {
            if s("crv") != Some("P-256") {
                return Err(format!("curve {:?} is not P-256", s("crv").unwrap_or("(none)")));
            }
            let (x, y) = s("x").zip(s("y")).ok_or("EC key without x or y")?;
            let coordinate_ok = |c: &str| crate::drm::b64::decode_url(c).is_some_and(|b| b.len() == 32);
            if !coordinate_ok(x) || !coordinate_ok(y) {
                return Err("P-256 coordinates are not 32 bytes of base64url".to_owned());
            }
            let algorithms = restrict(&[Algorithm::ES256])?;
            let key = DecodingKey::from_ec_components(x, y).map_err(|e| format!("bad EC key: {e}"))?;
            Ok((key, algorithms))
        }
        Some("oct") => Err("symmetric keys are not taken from a published JWKS".to_owned()),
        Some(other) => Err(format!("key type '{other}' is not supported (RSA, EC P-256)")),
        None => Err("no kty".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_logs_hide_the_url_query() {
        let source = JwksSource {
            url: "https://idp.test/keys?api_key=SECRET".to_owned(),
            discovery: false,
            refresh: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            on_demand_min_interval: Duration::from_secs(1),
            issuer: None,
            ca_file: None,
        };
        assert_eq!(source.shown_url(), "https://idp.test/keys?…");
        let j = Jwks::new(source).unwrap();
        assert!(!format!("{j:?}").contains("SECRET"), "{j:?}");
    }

    /// A hostile or broken provider's documents: byte mutations of valid ones and random bytes
    /// give keys or a reason, never a panic.
    #[test]
    fn mutated_documents_never_panic() {
        let n = crate::drm::b64::encode_url(&[0xC5; 256]);
        let xy = crate::drm::b64::encode_url(&[7; 32]);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"r","n":"{n}","e":"AQAB"}},{{"kty":"EC","crv":"P-256","x":"{xy}","y":"{xy}"}}]}}"#
        );
        let discovery = br#"{"issuer":"https://idp.test/","jwks_uri":"https://idp.test/keys"}"#.to_vec();
        let mut rng = crate::test_rng::Rng(0x6a77_6b73);
        for round in 0..3000 {
            let mut doc = if round % 2 == 0 { jwks.clone().into_bytes() } else { discovery.clone() };
            for _ in 0..=rng.below(4) {
                let at = rng.below(doc.len());
                match rng.below(3) {
                    0 => doc[at] = rng.next() as u8,
                    1 => doc.truncate(at),
                    _ => {
                        let len = rng.below(8);
                        let bytes = rng.bytes(len);
                        doc.splice(at..at, bytes).for_each(drop);
                    }
                }
                if doc.is_empty() {
                    break;
                }
            }
            let _ = parse_jwks(&doc);
            let _ = parse_discovery(&doc, Some("https://idp.test/"));
        }
        for _ in 0..500 {
            let len = rng.below(64);
            let doc = rng.bytes(len);
            let _ = parse_jwks(&doc);
        }
    }

    /// The generation moves with the document, not with each refresh: the cache of verified
    /// tokens survives refreshes that change nothing and forgets everything when a key changes.
    #[test]
    fn generation_changes_with_the_document() {
        let source = JwksSource {
            url: "https://idp.test/keys".to_owned(),
            discovery: false,
            refresh: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            on_demand_min_interval: Duration::from_secs(1),
            issuer: None,
            ca_file: None,
        };
        let j = Jwks::new(source).unwrap();
        assert_eq!(j.snapshot().1, 0);
        j.install(Vec::new(), &[], [1; 32]);
        let first = j.snapshot().1;
        assert_ne!(first, 0);
        j.install(Vec::new(), &[], [1; 32]);
        assert_eq!(j.snapshot().1, first, "the same document again is the same generation");
        j.install(Vec::new(), &[], [2; 32]);
        assert_ne!(j.snapshot().1, first);
    }

    #[test]
    fn discovery_issuer_must_match_exactly() {
        let doc = br#"{"issuer":"https://idp.test/","jwks_uri":"https://idp.test/keys"}"#;
        assert_eq!(parse_discovery(doc, Some("https://idp.test/")).unwrap(), "https://idp.test/keys");
        assert!(parse_discovery(doc, Some("https://idp.test")).unwrap_err().contains("exact"));
        assert_eq!(parse_discovery(doc, None).unwrap(), "https://idp.test/keys");
        assert!(parse_discovery(b"{\"issuer\":\"x\"}", None).is_err());
        assert!(parse_discovery(b"<html>", None).is_err());
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let doc = br#"{"keys":[
            {"kty":"oct","kid":"s","k":"AAAA"},
            {"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"},
            {"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"AA"}
        ]}"#;
        let e = parse_jwks(doc).unwrap_err();
        for kid in ["'s'", "'small'", "'p384'", "'enc'", "'ed'"] {
            assert!(e.contains(kid), "{e}");
        }
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"not json").is_err());
    }

    #[test]
    fn rsa_and_ec_keys_are_taken() {
        // A 2048-bit modulus (any odd value will do for parsing) and a P-256 point's coordinates.
        let n = crate::drm::b64::encode_url(&[0xC5; 256]);
        let xy = crate::drm::b64::encode_url(&[7; 32]);
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"r","use":"sig","n":"{n}","e":"AQAB"}},
                {{"kty":"RSA","kid":"p","alg":"PS256","n":"{n}","e":"AQAB"}},
                {{"kty":"RSA","kid":"bad","alg":"ES256","n":"{n}","e":"AQAB"}},
                {{"kty":"EC","kid":"e","crv":"P-256","x":"{xy}","y":"{xy}"}}]}}"#
        );
        let (keys, skipped) = parse_jwks(doc.as_bytes()).unwrap();
        let got: Vec<(Option<&str>, &[Algorithm])> =
            keys.iter().map(|k| (k.kid.as_deref(), k.algorithms.as_slice())).collect();
        assert_eq!(
            got,
            vec![
                (Some("r"), &[Algorithm::RS256, Algorithm::PS256][..]),
                (Some("p"), &[Algorithm::PS256][..]),
                (Some("e"), &[Algorithm::ES256][..]),
            ]
        );
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("'bad'"), "{skipped:?}");
    }
}
