//! One request → one response: routing to the room that owns the resource (manifests,
//! segments, licenses, the demo page), OPTIONS preflight, CORS, the error page from
//! [`ServeError::status`], counters and the access log line.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::app::App;
use super::body::Chunks;
use super::error::ServeError;
use super::manifest::{self, PlaylistQuery};
use super::metrics::{Decision, Kind};
use super::respond::{finish, plain, send, with_cors};
use super::routes::{self, Route};
use super::{device, license, player, segment};
use crate::drm::Variant;
use crate::packaging::plan::Asset;
use crate::storage::AssetState;

/// What the access log says about a request.
#[derive(Default)]
struct LogFields {
    asset: String,
    rendition: String,
    segment: String,
    /// Metrics labels: what was asked for, in which variant.
    kind: Kind,
    variant: Option<Variant>,
}

/// Handles one request; never fails (errors become responses).
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Result<Response<Chunks>, std::convert::Infallible>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut fields = LogFields::default();
    // License and key answers may be read by credentialed requests (dash.js sends license
    // requests with credentials by default): those endpoints name the asking origin instead of
    // `*`. They read no cookie (only the Authorization header, which any origin can set), so
    // credentials grant nothing more than the token does.
    // Only the license endpoint: raw keys under `key_delivery = "open"` may sit behind a CDN's
    // signed cookies, which credentialed CORS from any site would let that site use.
    let credentialed_origin = if path == "/.drm/clearkey" {
        req.headers().get(header::ORIGIN).filter(|o| o.as_bytes() != b"null").cloned()
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let response = match respond(&app, &parts, body, &mut fields).await {
        Ok(r) => r,
        Err(e) => {
            let (status, body) = e.status();
            if e.is_operator_problem() {
                tracing::warn!(path = %path, error = %e, "request failed");
            } else {
                tracing::debug!(path = %path, error = %e, "request refused");
            }
            let mut r = plain(status, "text/plain; charset=utf-8", Bytes::from_static(body.as_bytes()));
            if matches!(e, ServeError::Method) {
                r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, OPTIONS"));
            }
            finish(r, &method)
        }
    };
    let vary_origin = path == "/.drm/clearkey";
    let response = with_cors(response, credentialed_origin, vary_origin);
    let bytes = response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned();
    {
        use std::sync::atomic::Ordering::Relaxed;
        let class = usize::from(response.status().as_u16() / 100).min(5);
        if let Some(c) = app.metrics.responses.get(class) {
            c.fetch_add(1, Relaxed);
        }
        let body_bytes = if method == Method::HEAD { 0 } else { bytes.parse().unwrap_or(0) };
        app.metrics.body_bytes.fetch_add(body_bytes, Relaxed);
        let m = &app.metrics.requests;
        m.observe(fields.kind, fields.variant, started.elapsed(), body_bytes);
        if matches!(fields.kind, Kind::License | Kind::Key) && method != Method::OPTIONS {
            let d = match (response.status(), response.extensions().get::<Decision>()) {
                (StatusCode::OK, _) => Decision { outcome: "granted", reason: "ok" },
                (_, Some(d)) => *d,
                (StatusCode::NOT_FOUND, None) => Decision { outcome: "denied", reason: "not_deliverable" },
                (_, None) => Decision { outcome: "denied", reason: "other" },
            };
            m.decision(d);
        }
    }
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        asset = %fields.asset,
        rendition = %fields.rendition,
        segment = %fields.segment,
        status = response.status().as_u16(),
        bytes = %bytes,
        micros = started.elapsed().as_micros() as u64,
    );
    Ok(response)
}

async fn respond<B>(
    app: &App,
    req: &http::request::Parts,
    body: B,
    fields: &mut LogFields,
) -> Result<Response<Chunks>, ServeError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let method = &req.method;
    host_is_valid(req)?;
    if method == Method::OPTIONS {
        return Ok(preflight(req));
    }
    let route = routes::parse(req.uri.path())?;
    if route == Route::ClearKeyLicense {
        fields.kind = Kind::License;
        fields.segment = "license".into();
        return license::clearkey_post(app, req, body).await;
    }
    if let Route::Device(endpoint) = route {
        fields.kind = Kind::Device;
        fields.segment = "device".into();
        return device::post(app, req, body, endpoint).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(ServeError::Method);
    }
    let query = req.uri.query();
    let resource = match route {
        Route::Health => return Ok(finish(plain(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")), method)),
        Route::Ready => {
            use std::sync::atomic::Ordering::Relaxed;
            let (status, body): (_, &'static [u8]) = if app.draining.load(Relaxed) {
                (StatusCode::SERVICE_UNAVAILABLE, b"draining\n")
            } else if !app.ready.load(Relaxed) {
                (StatusCode::SERVICE_UNAVAILABLE, b"indexing\n")
            } else {
                (StatusCode::OK, b"ready\n")
            };
            return Ok(finish(plain(status, "text/plain", Bytes::from_static(body)), method));
        }
        Route::Metrics => {
            let text = Bytes::from(app.metrics_text().await);
            return Ok(finish(plain(StatusCode::OK, "text/plain; version=0.0.4", text), method));
        }
        Route::Key { kid } => {
            fields.kind = Kind::Key;
            fields.segment = "key".into();
            return license::raw_key(app, req, &kid).await;
        }
        Route::ClearKeyLicense | Route::Device(_) => return Err(ServeError::Method),
        Route::DeviceKeys => {
            fields.kind = Kind::Device;
            return device::keys(app, req);
        }
        Route::Player { asset: id } => {
            fields.kind = Kind::Player;
            fields.asset = id.clone();
            if app.settings.player_script.is_none() {
                return Err(ServeError::Route(routes::RouteError::NotFound));
            }
            asset(app, &id).await?;
            let mut r = send(req, player::page());
            let h = r.headers_mut();
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(player::CSP));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            return Ok(r);
        }
        Route::PlayerFile(file) => {
            fields.kind = Kind::Player;
            let Some(script) = app.settings.player_script.clone() else {
                return Err(ServeError::Route(routes::RouteError::NotFound));
            };
            player::file(file, script).await?
        }
        Route::Mpd { asset: id, variant } => {
            fields.asset = id.clone();
            fields.kind = Kind::Manifest;
            fields.variant = variant.or_else(|| app.drm().0.policy_for(&id).dash.first().copied());
            manifest::mpd(app, &*asset(app, &id).await?, variant)?
        }
        Route::Master { asset: id, variant } => {
            fields.asset = id.clone();
            fields.kind = Kind::Manifest;
            fields.variant = variant.or_else(|| app.drm().0.policy_for(&id).hls.first().copied());
            let (drm, _) = app.drm();
            let q = PlaylistQuery::parse(query, drm.carry_token)?;
            manifest::master(app, &*asset(app, &id).await?, variant, q)?
        }
        Route::MediaPlaylist { asset: id, rendition, variant } => {
            fields.asset = id.clone();
            fields.kind = Kind::Manifest;
            fields.variant = Some(variant);
            fields.rendition = rendition.clone();
            let (drm, _) = app.drm();
            let q = PlaylistQuery::parse(query, drm.carry_token)?;
            manifest::media(app, &*asset(app, &id).await?, &rendition, variant, q)?
        }
        Route::Init { asset: id, rendition, variant, version } => {
            fields.asset = id.clone();
            fields.kind = Kind::Init;
            fields.variant = Some(variant);
            fields.rendition = rendition.clone();
            fields.segment = "init".into();
            segment::init(app, &asset(app, &id).await?, &rendition, variant, version).await?
        }
        Route::Segment { asset: id, rendition, number, variant, version } => {
            fields.asset = id.clone();
            fields.kind = Kind::Segment;
            fields.variant = Some(variant);
            fields.rendition = rendition.clone();
            fields.segment = number.to_string();
            segment::media(app, &asset(app, &id).await?, &rendition, number, variant, version).await?
        }
    };
    Ok(send(req, resource))
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or any request with several `Host` lines
/// or one that is not a valid authority, is a 400. (HTTP/2 carries `:authority` instead.)
fn host_is_valid(req: &http::request::Parts) -> Result<(), ServeError> {
    let mut hosts = req.headers.get_all(header::HOST).iter();
    let bad = |why| Err(ServeError::Route(routes::RouteError::BadPath(why)));
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => bad("more than one Host header"),
        (None, _) if req.version == http::Version::HTTP_11 => bad("no Host header"),
        (Some(h), None) if !is_authority(h.as_bytes()) => bad("invalid Host header"),
        _ => Ok(()),
    }
}

/// `uri-host [":" port]`: no userinfo, path or spaces.
fn is_authority(b: &[u8]) -> bool {
    !b.is_empty() && !b.contains(&b'@') && http::uri::Authority::try_from(b).is_ok()
}

/// CORS preflight: every method and the headers the browser asks for, cached for a day.
fn preflight(req: &http::request::Parts) -> Response<Chunks> {
    let mut r = Response::new(Chunks::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, POST, OPTIONS"));
    let asked = req.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        asked.unwrap_or(HeaderValue::from_static("Range, If-None-Match, If-Modified-Since, Authorization")),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    r
}

/// The asset `id`, ready; 503 when its files are unusable (or the first scan has not found it
/// yet), 404 when unknown. An asset a running scan found but has not built yet is built now, on
/// a blocking thread: its first request waits for its own indexing, not the folder's.
async fn asset(app: &App, id: &str) -> Result<Arc<Asset>, ServeError> {
    let state = match app.store.library().assets.get(id) {
        Some(s) => Some(s.clone()),
        None if app.store.is_pending(id) => {
            let (store, id) = (app.store.clone(), id.to_owned());
            tokio::task::spawn_blocking(move || store.build_pending(&id)).await.ok().flatten()
        }
        None => None,
    };
    match state {
        Some(AssetState::Ready(a)) => Ok(a),
        Some(AssetState::Broken(why)) => Err(ServeError::AssetBroken(why)),
        None if !app.ready.load(std::sync::atomic::Ordering::Relaxed) => Err(ServeError::Starting),
        None => Err(ServeError::UnknownAsset),
    }
}
