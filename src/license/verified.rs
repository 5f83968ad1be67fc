//! Verified tokens, remembered: a player asks again and again with the same token (each key
//! request, each HLS key URI, each license renewal), and a second look at a token already found
//! valid should cost a hash, not another RSA or ECDSA verification.
//!
//! The cache may only ever say yes to a token the full path would accept now; every refusal
//! comes from the full path. It holds that by construction:
//! * it belongs to one [`super::Verifier`], which is built from one configuration: a reload
//!   builds a new verifier with an empty cache, so a changed secret, key file, issuer,
//!   audience, leeway or algorithm list is never judged by an old entry;
//! * an entry records the JWKS generation it was verified under; a fetched document that
//!   differs in any way (a key removed, added or replaced) is a new generation, and an entry of
//!   another generation is dropped and the token verified again;
//! * `exp` and `nbf` are compared on every hit with the current clock and the leeway, as
//!   jsonwebtoken compares them; a token outside its lifetime falls through to the full path,
//!   which gives the same reason (`expired`) as for a token never seen;
//! * only successes are stored; a forged token costs the full verification every time.
//!
//! Entries live at most until `exp` (plus the leeway) or [`TTL`], whichever comes first, and the
//! cache is bounded in bytes. Its key is the SHA-256 of the whole compact token: the token itself
//! is never stored, logged or printed (brief rule 5).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::token::Claims;

/// Longest an entry is kept, whatever its token's `exp`.
pub const TTL: Duration = Duration::from_secs(600);
/// What one entry is counted as besides its token's length (digest, claims map, bookkeeping):
/// the claims take about as many bytes as the token's payload.
const ENTRY_OVERHEAD: usize = 512;

/// The SHA-256 of a whole compact token (header.payload.signature).
pub type TokenDigest = [u8; 32];

/// One verified token.
struct Entry {
    claims: Claims,
    /// `exp`, seconds since the epoch (required by the verifier, so always present).
    exp: u64,
    /// `nbf`, when the token has one.
    nbf: Option<u64>,
    /// JWKS generation the token was verified under (0 without a JWKS).
    generation: u64,
    /// How long the entry may live from its insertion: min(exp + leeway − now, TTL).
    lifetime: Duration,
    /// What the entry counts against the capacity.
    weight: u32,
}

/// Per-entry expiry: the entry's own lifetime.
struct Lifetime;

impl moka::Expiry<TokenDigest, Arc<Entry>> for Lifetime {
    fn expire_after_create(&self, _: &TokenDigest, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(entry.lifetime)
    }
}

/// Bounded cache of verified tokens, keyed by their digest.
pub struct VerifiedTokens {
    cache: moka::sync::Cache<TokenDigest, Arc<Entry>>,
    hits: AtomicU64,
}

impl std::fmt::Debug for VerifiedTokens {
    // Neither digests nor claims: how many, no more.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").field("entries", &self.cache.entry_count()).finish_non_exhaustive()
    }
}

/// A claim read as jsonwebtoken reads `exp`/`nbf`: an unsigned integer, or a finite
/// non-negative float rounded to one.
fn numeric(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f.round() as u64)
        }),
        _ => None,
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity_bytes` (tokens' lengths plus a fixed overhead each).
    pub fn new(capacity_bytes: u64) -> VerifiedTokens {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_: &TokenDigest, e: &Arc<Entry>| -> u32 { e.weight })
            .expire_after(Lifetime)
            .build();
        VerifiedTokens { cache, hits: AtomicU64::new(0) }
    }

    /// The key of a token.
    pub fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of a token verified under JWKS `generation`, when it is remembered and still
    /// within its lifetime at `now` (seconds since the epoch) with `leeway`; `None` sends the
    /// caller down the full path.
    pub fn get(&self, digest: &TokenDigest, generation: u64, leeway: u64, now: u64) -> Option<Claims> {
        let e = self.cache.get(digest)?;
        // jsonwebtoken: expired when exp < now − leeway; not yet valid when nbf > now + leeway.
        let expired = e.exp < now.saturating_sub(leeway);
        let early = e.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway));
        if e.generation != generation || expired || early {
            self.cache.invalidate(digest);
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(e.claims.clone())
    }

    /// Tokens answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Remembers a token the full path just accepted under JWKS `generation` at `now`. A token
    /// whose `exp` cannot be read as jsonwebtoken read it is not remembered.
    pub fn insert(
        &self,
        digest: TokenDigest,
        token_len: usize,
        claims: &Claims,
        generation: u64,
        leeway: u64,
        now: u64,
    ) {
        let Some(exp) = claims.0.get("exp").and_then(numeric) else { return };
        let nbf = match claims.0.get("nbf") {
            None => None,
            Some(v) => match numeric(v) {
                Some(n) => Some(n),
                None => return,
            },
        };
        let left = exp.saturating_add(leeway).saturating_sub(now);
        if left == 0 {
            return;
        }
        let lifetime = Duration::from_secs(left).min(TTL);
        let weight = u32::try_from(token_len.saturating_add(ENTRY_OVERHEAD)).unwrap_or(u32::MAX);
        let entry = Entry { claims: claims.clone(), exp, nbf, generation, lifetime, weight };
        self.cache.insert(digest, Arc::new(entry));
    }

    /// Entries held (after pending evictions are applied).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(m) => Claims(m),
            _ => unreachable!(),
        }
    }

    fn lifetime_of(c: &VerifiedTokens, d: &TokenDigest) -> Option<Duration> {
        c.cache.get(d).map(|e| e.lifetime)
    }

    #[test]
    fn a_hit_needs_the_same_generation() {
        let c = VerifiedTokens::new(1 << 20);
        let d = VerifiedTokens::digest("a.b.c");
        c.insert(d, 5, &claims(json!({"exp": NOW + 100, "sub": "alice"})), 3, 30, NOW);
        let got = c.get(&d, 3, 30, NOW).expect("remembered");
        assert_eq!(got.0.get("sub"), Some(&json!("alice")));
        assert_eq!(c.hits(), 1);
        // The JWKS changed: not answered, and dropped.
        assert!(c.get(&d, 4, 30, NOW).is_none());
        assert!(c.get(&d, 3, 30, NOW).is_none(), "an entry of an old generation must be gone");
        assert!(c.get(&VerifiedTokens::digest("a.b.d"), 3, 30, NOW).is_none());
    }

    #[test]
    fn lifetime_is_checked_on_every_hit_as_jsonwebtoken_checks_it() {
        let c = VerifiedTokens::new(1 << 20);
        let d = VerifiedTokens::digest("t");
        let exp = NOW + 100;
        c.insert(d, 1, &claims(json!({"exp": exp})), 0, 30, NOW);
        // exp < now − leeway is expired; exp = now − leeway is not yet.
        assert!(c.get(&d, 0, 30, exp + 30).is_some());
        assert!(c.get(&d, 0, 30, exp + 31).is_none());
        assert!(c.get(&d, 0, 30, NOW).is_none(), "an expired hit drops the entry");
        // nbf > now + leeway is not yet valid (a clock stepped back since the verification).
        let d = VerifiedTokens::digest("n");
        c.insert(d, 1, &claims(json!({"exp": exp, "nbf": NOW})), 0, 0, NOW);
        assert!(c.get(&d, 0, 0, NOW).is_some());
        assert!(c.get(&d, 0, 0, NOW - 1).is_none());
    }

    #[test]
    fn entries_live_until_exp_or_the_ttl() {
        let c = VerifiedTokens::new(1 << 20);
        let soon = VerifiedTokens::digest("soon");
        c.insert(soon, 1, &claims(json!({"exp": NOW + 2})), 0, 0, NOW);
        assert_eq!(lifetime_of(&c, &soon), Some(Duration::from_secs(2)));
        let late = VerifiedTokens::digest("late");
        c.insert(late, 1, &claims(json!({"exp": NOW + 86_400})), 0, 30, NOW);
        assert_eq!(lifetime_of(&c, &late), Some(TTL));
        let gone = VerifiedTokens::digest("gone");
        c.insert(gone, 1, &claims(json!({"exp": NOW - 31})), 0, 30, NOW);
        assert!(lifetime_of(&c, &gone).is_none(), "an expired token is not remembered");
        // exp and nbf as floats are read as jsonwebtoken reads them; an unreadable one is not kept.
        let float = VerifiedTokens::digest("float");
        c.insert(float, 1, &claims(json!({"exp": (NOW + 10) as f64 + 0.4})), 0, 0, NOW);
        assert_eq!(lifetime_of(&c, &float), Some(Duration::from_secs(10)));
        let odd = VerifiedTokens::digest("odd");
        c.insert(odd, 1, &claims(json!({"exp": NOW + 10, "nbf": "yesterday"})), 0, 0, NOW);
        assert!(lifetime_of(&c, &odd).is_none());
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        // Room for about ten entries of 100-byte tokens.
        let c = VerifiedTokens::new(10 * (100 + ENTRY_OVERHEAD as u64));
        for i in 0..1000 {
            let d = VerifiedTokens::digest(&format!("token-{i}"));
            c.insert(d, 100, &claims(json!({"exp": NOW + 100})), 0, 0, NOW);
        }
        let n = c.len();
        assert!((1..=10).contains(&n), "{n} entries");
    }

    #[test]
    fn debug_shows_no_digest_and_no_claim() {
        let c = VerifiedTokens::new(1 << 20);
        let d = VerifiedTokens::digest("secret.token.here");
        c.insert(d, 17, &claims(json!({"exp": NOW + 100, "sub": "alice-the-subscriber"})), 0, 0, NOW);
        let shown = format!("{c:?}");
        assert!(!shown.contains("alice"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.starts_with("VerifiedTokens { entries:"), "{shown}");
    }
}
