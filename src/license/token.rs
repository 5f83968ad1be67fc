//! JWT verification and entitlement (RFC 7519). Strict by construction:
//! * the accepted algorithms are those of the configured key (HMAC secret → HS256/384/512 as
//!   configured; RSA → RS256/PS256; EC P-256 → ES256); a token's `alg` only selects among them, so
//!   `none` and HS/RS confusion (an HS256 token "signed" with our RSA public key) never verify;
//! * `exp` is required, `nbf` honoured, both with a small leeway; issuer compared exactly (a
//!   trailing slash matters), audience required when configured;
//! * a token naming a `kid` nobody publishes is refused (unknown key), never tried against the
//!   published keys of other ids; keys from the configuration file carry no id and verify any.

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Why a request gets no key: `Unauthorized` (401: no valid token) or `Forbidden` (403: a valid
/// token that does not entitle to this key). The reason is a stable machine-readable word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401 with a reason.
    Unauthorized(&'static str),
    /// 403 with a reason.
    Forbidden(&'static str),
}

impl Denied {
    /// The machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Unauthorized(r) | Denied::Forbidden(r) => r,
        }
    }
}

/// One verification key.
pub struct VerifyKey {
    /// `kid` it is published under (JWKS), if any.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// Algorithms this key verifies.
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Token rules from the configuration.
#[derive(Debug, Default, Clone)]
pub struct TokenConfig {
    /// Required `iss` (exact).
    pub issuer: Option<String>,
    /// Required `aud` (one of).
    pub audience: Option<String>,
    /// Clock leeway for `exp`/`nbf`, seconds.
    pub leeway_secs: u64,
    /// Claims that must equal (or, for arrays, contain) the value.
    pub required_claims: BTreeMap<String, String>,
    /// Claim listing the KIDs a token may unlock (absent claim: any KID).
    pub kid_claim: Option<String>,
    /// Claim listing the asset ids a token may unlock (absent claim: any asset).
    pub asset_claim: Option<String>,
    /// Claim whose value(s) name tiers; each tier unlocks the listed policies.
    pub tier_claim: Option<String>,
    /// Tier → policy names.
    pub tiers: BTreeMap<String, Vec<String>>,
}

/// Verifies tokens against a set of keys.
#[derive(Debug)]
pub struct Verifier {
    /// Keys from the configuration file (HMAC secret, PEM keys and certificates).
    pub keys: Vec<VerifyKey>,
    /// Keys published by an identity provider (the last good JWKS).
    pub jwks: Option<std::sync::Arc<super::jwks::Jwks>>,
    /// Rules.
    pub config: TokenConfig,
    /// Tokens this verifier already accepted (`None`: every token is verified in full). It lives
    /// and dies with this verifier, i.e. with one configuration.
    pub cache: Option<super::verified::VerifiedTokens>,
}

/// The claims of a verified token.
#[derive(Debug, Clone)]
pub struct Claims(pub serde_json::Map<String, Value>);

impl Verifier {
    /// Verifies signature, algorithm, time, issuer and audience; a token accepted before under
    /// the same keys is answered from the cache after its lifetime is checked again.
    pub fn verify(&self, token: &str) -> Result<Claims, Denied> {
        use super::verified::VerifiedTokens;
        if token.is_empty() {
            return Err(Denied::Unauthorized("missing_token"));
        }
        if token.len() > 16 * 1024 {
            return Err(Denied::Unauthorized("malformed_token"));
        }
        // Keys and their generation are read together, before verifying: an entry is never
        // filed under a generation newer than the keys that verified it.
        let (published, generation) = self.jwks.as_ref().map(|j| j.snapshot()).unwrap_or_default();
        let Some(cache) = &self.cache else { return self.verify_with(token, &published) };
        let digest = VerifiedTokens::digest(token);
        let leeway = self.config.leeway_secs;
        if let Some(claims) = cache.get(&digest, generation, leeway, jsonwebtoken::get_current_timestamp()) {
            return Ok(claims);
        }
        let claims = self.verify_with(token, &published)?;
        cache.insert(digest, token.len(), &claims, generation, leeway, jsonwebtoken::get_current_timestamp());
        Ok(claims)
    }

    /// The full verification against the configuration's keys and `published` ones.
    fn verify_with(&self, token: &str, published: &[VerifyKey]) -> Result<Claims, Denied> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Denied::Unauthorized("malformed_token"))?;
        let all: Vec<&VerifyKey> = self.keys.iter().chain(published.iter()).collect();
        if all.is_empty() {
            return Err(Denied::Unauthorized("no_verification_keys"));
        }
        let usable = |k: &&VerifyKey| k.algorithms.contains(&header.alg);
        // Set when, with a JWKS configured, the token's kid names no key we know: if the
        // configuration file's keys (which carry no id) do not verify it either, the answer is
        // `unknown_key` (README), not `bad_signature`. Without a JWKS no key has an id, so a
        // kid means nothing and a failed signature stays `bad_signature`.
        let mut kid_unknown = false;
        let candidates: Vec<&VerifyKey> = match &header.kid {
            Some(kid) => {
                let named: Vec<&VerifyKey> = all.iter().copied().filter(|k| k.kid.as_deref() == Some(kid)).collect();
                if named.is_empty() {
                    // A kid nobody publishes: only keys from the configuration file (which carry
                    // no id) may still verify it; without one of its algorithm it is an unknown
                    // key, never tried against the published keys.
                    let unkeyed: Vec<&VerifyKey> = self.keys.iter().filter(usable).collect();
                    if unkeyed.is_empty() {
                        return Err(Denied::Unauthorized("unknown_key"));
                    }
                    kid_unknown = self.jwks.is_some();
                    unkeyed
                } else {
                    named.into_iter().filter(usable).collect()
                }
            }
            None => all.into_iter().filter(usable).collect(),
        };
        if candidates.is_empty() {
            return Err(Denied::Unauthorized("algorithm_not_allowed"));
        }
        let mut last = Denied::Unauthorized("bad_signature");
        for k in candidates {
            let mut v = Validation::new(header.alg);
            v.algorithms = vec![header.alg];
            v.leeway = self.config.leeway_secs;
            v.validate_nbf = true;
            v.validate_exp = true;
            // A configured issuer/audience must be present, not merely "right when present".
            let mut required = vec!["exp"];
            if self.config.issuer.is_some() {
                required.push("iss");
            }
            if self.config.audience.is_some() {
                required.push("aud");
            }
            v.set_required_spec_claims(&required);
            match &self.config.issuer {
                Some(iss) => v.set_issuer(&[iss]),
                None => v.iss = None,
            }
            match &self.config.audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &k.key, &v) {
                Ok(data) => {
                    // RFC 7519 §4.1.1: `iss` is one string; a list that merely contains ours
                    // (which the library's check lets through) is refused.
                    if self.config.issuer.is_some() && !matches!(data.claims.get("iss"), Some(Value::String(_))) {
                        return Err(Denied::Unauthorized("wrong_issuer"));
                    }
                    return Ok(Claims(data.claims));
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = Denied::Unauthorized(match e.kind() {
                        K::ExpiredSignature => "expired",
                        K::ImmatureSignature => "not_yet_valid",
                        K::InvalidIssuer => "wrong_issuer",
                        K::InvalidAudience => "wrong_audience",
                        K::MissingRequiredClaim(c) if c == "iss" => "missing_iss",
                        K::MissingRequiredClaim(c) if c == "aud" => "missing_aud",
                        K::MissingRequiredClaim(_) => "missing_exp",
                        K::InvalidSignature => "bad_signature",
                        K::InvalidAlgorithm => "algorithm_not_allowed",
                        _ => "malformed_token",
                    });
                    // A time or claim failure is the same with every key: stop at the first.
                    if last.reason() != "bad_signature" {
                        return Err(last);
                    }
                }
            }
        }
        if kid_unknown && last.reason() == "bad_signature" {
            return Err(Denied::Unauthorized("unknown_key"));
        }
        Err(last)
    }

    /// Whether the token names a `kid` the identity provider does not publish (yet): worth one
    /// early JWKS refresh when its verification failed.
    pub fn names_unpublished_kid(&self, token: &str) -> bool {
        let Some(jwks) = &self.jwks else { return false };
        match jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid) {
            Some(kid) => !jwks.publishes(&kid),
            None => false,
        }
    }

    /// Whether verified `claims` meet the required claims and unlock `policy` through its tier
    /// (device licensing: a policy as a whole, before any key id or asset is known). Asset and
    /// key-id scopes are kept by the caller as a snapshot.
    pub fn entitles_policy(&self, claims: &Claims, policy: &str) -> Result<(), Denied> {
        let c = &self.config;
        for (name, want) in &c.required_claims {
            if !claim_has(claims.0.get(name), want) {
                return Err(Denied::Forbidden("missing_required_claim"));
            }
        }
        if let Some(name) = &c.tier_claim {
            let tiers = claims.0.get(name).map(strings).unwrap_or_default();
            if !tiers.iter().filter_map(|t| c.tiers.get(t)).flatten().any(|p| p == policy) {
                return Err(Denied::Forbidden("tier_not_entitled"));
            }
        }
        Ok(())
    }

    /// The string values of claim `name` (a string or an array of strings), if present.
    pub fn claim_strings(claims: &Claims, name: &str) -> Option<Vec<String>> {
        claims.0.get(name).map(strings)
    }

    /// Whether `claims` has claim `name` equal to (or, for arrays, containing) `want`.
    pub fn has_claim(claims: &Claims, name: &str, want: &str) -> bool {
        claim_has(claims.0.get(name), want)
    }

    /// Whether verified `claims` entitle to a key of `policy` protecting `scope`.
    /// `asset_in_scope` says whether a claimed asset id is one this key protects (the caller
    /// knows rules, patterns and groups).
    pub fn entitles(
        &self,
        claims: &Claims,
        policy: &str,
        scope: &str,
        kid: &crate::crypto::KeyId,
        asset_in_scope: &dyn Fn(&str) -> bool,
    ) -> Result<(), Denied> {
        let c = &self.config;
        for (name, want) in &c.required_claims {
            if !claim_has(claims.0.get(name), want) {
                return Err(Denied::Forbidden("missing_required_claim"));
            }
        }
        if let Some(name) = &c.kid_claim {
            if let Some(v) = claims.0.get(name) {
                // KIDs compare as hex, whatever the case and dashes.
                let want = kid.hex();
                let bound = strings(v).iter().any(|s| s.replace('-', "").eq_ignore_ascii_case(&want));
                if !bound {
                    return Err(Denied::Forbidden("token_bound_to_other_kid"));
                }
            }
        }
        if let Some(name) = &c.asset_claim {
            if let Some(v) = claims.0.get(name) {
                if !strings(v).iter().any(|a| asset_in_scope(a)) {
                    return Err(Denied::Forbidden("token_bound_to_other_asset"));
                }
            }
        }
        let _ = scope;
        if let Some(name) = &c.tier_claim {
            let tiers: Vec<String> = match claims.0.get(name) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
            let unlocked = tiers.iter().filter_map(|t| c.tiers.get(t)).flatten().any(|p| p == policy);
            if !unlocked {
                return Err(Denied::Forbidden("tier_not_entitled"));
            }
        }
        Ok(())
    }
}

/// A claim's string values (a string, or the strings of an array).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Claim equals `want`, or is an array containing it (or a space-separated string, as OAuth
/// `scope` is).
fn claim_has(v: Option<&Value>, want: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == want || s.split(' ').any(|p| p == want),
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want)),
        Some(Value::Number(n)) => n.to_string() == want,
        Some(Value::Bool(b)) => b.to_string() == want,
        _ => false,
    }
}

/// Verification keys from configuration material: an HMAC secret (`hs` algorithms), or a PEM
/// public key / X.509 certificate (RSA or EC P-256).
pub fn keys_from_pem(pem: &[u8], kid: Option<String>) -> Result<VerifyKey, String> {
    std::str::from_utf8(pem).map_err(|_| "PEM is not UTF-8".to_owned())?;
    // Public keys and certificates alike: the key type decides the algorithms, so try RSA, then
    // EC P-256.
    match DecodingKey::from_rsa_pem(pem) {
        Ok(key) => Ok(VerifyKey { kid, key, algorithms: vec![Algorithm::RS256, Algorithm::PS256] }),
        Err(rsa) => match DecodingKey::from_ec_pem(pem) {
            Ok(key) => Ok(VerifyKey { kid, key, algorithms: vec![Algorithm::ES256] }),
            Err(ec) => Err(format!("neither an RSA ({rsa}) nor an EC P-256 ({ec}) public key or certificate")),
        },
    }
}

/// An HMAC verification key for `algorithms` (HS256/384/512).
pub fn hmac_key(secret: &[u8], algorithms: Vec<Algorithm>) -> VerifyKey {
    VerifyKey { kid: None, key: DecodingKey::from_secret(secret), algorithms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::verified::VerifiedTokens;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn verifier(audience: &str) -> Verifier {
        let config = TokenConfig { audience: Some(audience.to_owned()), leeway_secs: 30, ..TokenConfig::default() };
        Verifier {
            keys: vec![hmac_key(SECRET, vec![Algorithm::HS256])],
            jwks: None,
            config,
            cache: Some(VerifiedTokens::new(1 << 20)),
        }
    }

    fn token(exp: u64) -> String {
        let claims = serde_json::json!({"aud": "one", "exp": exp, "sub": "alice"});
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    /// A remembered token answers like a fresh one; a verifier of another configuration (what
    /// a reload builds) does not know it; failures are never remembered.
    #[test]
    fn cached_answers_are_those_of_the_full_path() {
        let now = jsonwebtoken::get_current_timestamp();
        let v = verifier("one");
        let t = token(now + 3600);
        let first = v.verify(&t).unwrap();
        let cache = v.cache.as_ref().unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(v.verify(&t).unwrap().0, first.0);
        assert_eq!(verifier("two").verify(&t).unwrap_err(), Denied::Unauthorized("wrong_audience"));
        let other = jsonwebtoken::EncodingKey::from_secret(b"another secret of thirty-two bytes");
        let claims = serde_json::json!({"aud": "one", "exp": now + 3600, "sub": "alice"});
        let forged = jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &other).unwrap();
        assert_eq!(v.verify(&forged).unwrap_err(), Denied::Unauthorized("bad_signature"));
        assert_eq!(v.verify(&token(now - 3600)).unwrap_err(), Denied::Unauthorized("expired"));
        assert_eq!(cache.len(), 1, "refusals are not remembered");
    }
}
