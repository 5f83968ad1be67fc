//! License and key answers: the request's token, the decision per key id (open, token-gated, or
//! not deliverable), the ClearKey license, the raw key, and the JSON refusals.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use super::app::App;
use super::body::Chunks;
use super::error::ServeError;
use super::respond::{finish, plain, query_param};
use crate::crypto::KeyId;
use crate::drm::Drm;
use crate::license::{clearkey, Claims, Denied};
use std::sync::Arc;

/// `GET /.drm/key/{kid}`: the raw 16-byte key, to a caller the key's policy delivers it to.
pub(super) async fn raw_key(
    app: &App,
    req: &http::request::Parts,
    kid: &KeyId,
) -> Result<Response<Chunks>, ServeError> {
    let (drm, _) = app.drm();
    let claims = claims_of(&drm, req).await;
    let key = match decide(&drm, kid, claims.as_ref(), false) {
        Decision::Deliver(k) => k,
        Decision::Denied(d) => return Ok(denied(&d, StatusCode::OK)),
        Decision::NotDeliverable => return Err(ServeError::NoKey),
    };
    tracing::info!(kid = %kid, "key delivered");
    let r = plain(StatusCode::OK, "application/octet-stream", Bytes::copy_from_slice(key.key.bytes()));
    Ok(finish(r, &req.method))
}

/// `POST /.drm/clearkey` with its body read (at most 64 KiB).
pub(super) async fn clearkey_post<B>(
    app: &App,
    req: &http::request::Parts,
    body: B,
) -> Result<Response<Chunks>, ServeError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if req.method != Method::POST {
        return Err(ServeError::Method);
    }
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Ok(denied(&Denied::Forbidden("request_too_large"), StatusCode::PAYLOAD_TOO_LARGE)),
    };
    Ok(clearkey_license(app, req, &bytes).await)
}

/// The bearer token of a request: `Authorization: Bearer …`, else the `token` query parameter
/// (HLS key URIs cannot carry headers).
pub(super) fn bearer(req: &http::request::Parts) -> Option<String> {
    let header = req.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(h) = header {
        // The auth scheme is case-insensitive (RFC 7235 §2.1).
        let t = match h.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => "",
        };
        return Some(t.to_owned());
    }
    query_param(req.uri.query(), "token")
}

/// Verifies a request's token; `None` when it brought none. A token naming a key id the
/// identity provider has not published (yet) triggers one rate-limited JWKS refresh and a
/// second look, so a provider that starts signing with a new key is followed at once.
pub(super) async fn claims_of(drm: &Drm, req: &http::request::Parts) -> Option<Result<Claims, Denied>> {
    let token = bearer(req)?;
    let Some(v) = &drm.verifier else { return Some(Err(Denied::Unauthorized("no_token_verification_configured"))) };
    let first = v.verify(&token);
    if let (Err(Denied::Unauthorized(reason)), Some(jwks)) = (&first, &v.jwks) {
        // Whatever the failure (a configuration-file key may have been tried instead), a kid
        // the provider does not publish yet is worth one early refresh.
        let worth = *reason == "no_verification_keys" || v.names_unpublished_kid(&token);
        if worth && jwks.refresh_on_demand().await {
            return Some(v.verify(&token));
        }
    }
    Some(first)
}

/// What to do with a request for one key.
pub(super) enum Decision {
    Deliver(Arc<crate::drm::ContentKey>),
    Denied(Denied),
    NotDeliverable,
}

/// Open delivery wins; token delivery needs a valid token that entitles to some owning policy
/// (and asset); keys no policy delivers are indistinguishable from unknown ones.
pub(super) fn decide(drm: &Drm, kid: &KeyId, claims: Option<&Result<Claims, Denied>>, persistent: bool) -> Decision {
    use crate::drm::KeyDelivery;
    let Some((key, owners)) = drm.key_owners(kid) else { return Decision::NotDeliverable };
    let mut denial: Option<Denied> = None;
    for o in &owners {
        match o.policy.key_delivery {
            KeyDelivery::None => {}
            KeyDelivery::Open if !persistent || o.policy.persistent_licenses => return Decision::Deliver(key),
            KeyDelivery::Open => denial = denial.or(Some(Denied::Forbidden("persistent_license_not_allowed"))),
            KeyDelivery::Token => {
                let verdict = match (claims, &drm.verifier) {
                    (None, _) => Err(Denied::Unauthorized("missing_token")),
                    (Some(Err(d)), _) => Err(d.clone()),
                    (Some(Ok(_)), None) => Err(Denied::Unauthorized("no_token_verification_configured")),
                    (Some(Ok(c)), Some(v)) => {
                        v.entitles(c, &o.policy.name, &o.scope, kid, &|asset| drm.owner_covers(o, asset))
                    }
                };
                match verdict {
                    Ok(()) if persistent && !o.policy.persistent_licenses => {
                        denial = Some(Denied::Forbidden("persistent_license_not_allowed"));
                    }
                    Ok(()) => return Decision::Deliver(key),
                    // A 403 (valid token, not entitled) says more than a 401: keep it.
                    Err(d) => {
                        if !matches!(denial, Some(Denied::Forbidden(_))) {
                            denial = Some(d);
                        }
                    }
                }
            }
        }
    }
    denial.map_or(Decision::NotDeliverable, Decision::Denied)
}

/// 401/403 (or `status` when it is an error status) with a machine-readable JSON body.
pub(super) fn denied(d: &Denied, status: StatusCode) -> Response<Chunks> {
    let (status, error) = match d {
        Denied::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        Denied::Forbidden(_) if status.is_client_error() => (status, "forbidden"),
        Denied::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
    };
    tracing::info!(reason = d.reason(), status = status.as_u16(), "key request denied");
    let body = format!("{{\"error\":\"{error}\",\"reason\":\"{}\"}}\n", d.reason());
    let mut r = plain(status, "application/json", Bytes::from(body));
    r.extensions_mut().insert(super::metrics::Decision { outcome: "denied", reason: d.reason() });
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// 400 with a JSON reason, for a malformed license request.
fn bad_request(reason: &'static str) -> Response<Chunks> {
    let body = format!("{{\"error\":\"bad_request\",\"reason\":\"{reason}\"}}\n");
    let mut r = plain(StatusCode::BAD_REQUEST, "application/json", Bytes::from(body));
    r.extensions_mut().insert(super::metrics::Decision { outcome: "denied", reason });
    r
}

/// `POST /.drm/clearkey`: the keys of the request that the caller is entitled to; 401/403 when
/// none is (never more key material than the token unlocks).
async fn clearkey_license(app: &App, req: &http::request::Parts, body: &[u8]) -> Response<Chunks> {
    let request = match clearkey::parse_request(body) {
        Ok(r) => r,
        Err(reason) => return bad_request(reason),
    };
    let (drm, _) = app.drm();
    let claims = claims_of(&drm, req).await;
    let mut granted = Vec::new();
    let mut denial: Option<Denied> = None;
    for kid in &request.kids {
        match decide(&drm, kid, claims.as_ref(), request.persistent) {
            Decision::Deliver(k) => granted.push(k),
            Decision::Denied(d) => {
                if !matches!(denial, Some(Denied::Forbidden(_))) {
                    denial = Some(d);
                }
            }
            Decision::NotDeliverable => {}
        }
    }
    if granted.is_empty() {
        return denied(&denial.unwrap_or(Denied::Forbidden("unknown_kid")), StatusCode::OK);
    }
    let pairs: Vec<(KeyId, &crate::crypto::Key)> = granted.iter().map(|k| (k.kid, &k.key)).collect();
    tracing::info!(kids = granted.len(), "clearkey license issued");
    plain(StatusCode::OK, "application/json", Bytes::from(clearkey::license(&pairs, request.persistent)))
}
