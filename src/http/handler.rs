//! Route → resource (manifest or segment) → response with caching, validators, Range and CORS.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::body::Chunks;
use super::error::ServeError;
use super::range::{self, RangeOutcome};
use super::routes::{self, Route};
use crate::packaging::plan::{Asset, Rendition};
use crate::packaging::{dash, fmp4, hls, mime};
use crate::storage::{fnv1a, AssetState, Store};

/// Bumped whenever segment bytes change for the same input, so old ETags stop matching.
const FORMAT_VERSION: &[u8] = b"drm-origin-fmp4-1";

/// HTTP behaviour settings.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Cache-Control of init and media segments.
    pub cache_control_segments: String,
    /// Cache-Control of manifests and playlists.
    pub cache_control_manifests: String,
}

/// Shared state of the request handler.
pub struct App {
    /// The asset store.
    pub store: Arc<Store>,
    /// Settings.
    pub settings: HttpSettings,
}

/// A resource ready to send.
struct Resource {
    body: Chunks,
    content_type: &'static str,
    etag: String,
    modified: SystemTime,
    cache_control: String,
}

/// What the access log says about a request.
#[derive(Default)]
struct LogFields {
    asset: String,
    rendition: String,
    segment: String,
}

/// Handles one request; never fails (errors become responses).
pub async fn handle<B>(
    app: Arc<App>,
    req: Request<B>,
) -> Result<Response<Chunks>, std::convert::Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut fields = LogFields::default();
    let response = match respond(&app, &req, &mut fields) {
        Ok(r) => r,
        Err(e) => {
            let (status, body) = e.status();
            if status.is_server_error() {
                tracing::warn!(path = %path, error = %e, "request failed");
            } else {
                tracing::debug!(path = %path, error = %e, "request refused");
            }
            let mut r = Response::new(Chunks::new(vec![Bytes::from_static(body.as_bytes())]));
            *r.status_mut() = status;
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if matches!(e, ServeError::Method) {
                h.insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
            }
            finish(r, &method)
        }
    };
    let response = with_cors(response);
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_owned();
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

fn respond<B>(
    app: &App,
    req: &Request<B>,
    fields: &mut LogFields,
) -> Result<Response<Chunks>, ServeError> {
    let method = req.method();
    if method == Method::OPTIONS {
        let mut r = Response::new(Chunks::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            asked.unwrap_or(HeaderValue::from_static(
                "Range, If-None-Match, If-Modified-Since, Authorization",
            )),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return Ok(r);
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(ServeError::Method);
    }
    let route = routes::parse(req.uri().path())?;
    if route == Route::Health {
        let mut r = Response::new(Chunks::new(vec![Bytes::from_static(b"ok\n")]));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(finish(r, method));
    }
    let resource = resource(app, &route, fields)?;
    Ok(send(req, resource))
}

fn asset(app: &App, id: &str) -> Result<Arc<Asset>, ServeError> {
    match app.store.library().assets.get(id) {
        Some(AssetState::Ready(a)) => Ok(a.clone()),
        Some(AssetState::Broken(why)) => Err(ServeError::AssetBroken(why.clone())),
        None => Err(ServeError::UnknownAsset),
    }
}

fn rendition<'a>(a: &'a Asset, id: &str) -> Result<&'a Rendition, ServeError> {
    a.rendition(id).ok_or(ServeError::UnknownRendition)
}

fn resource(app: &App, route: &Route, fields: &mut LogFields) -> Result<Resource, ServeError> {
    let manifest = |text: String, content_type: &'static str, modified: SystemTime| Resource {
        etag: format!("\"m{:016x}\"", fnv1a(&[text.as_bytes()])),
        body: Chunks::new(vec![Bytes::from(text)]),
        content_type,
        modified,
        cache_control: app.settings.cache_control_manifests.clone(),
    };
    match route {
        Route::Health => Err(ServeError::UnknownAsset),
        Route::Mpd { asset: id } => {
            fields.asset = id.clone();
            let a = asset(app, id)?;
            Ok(manifest(dash::mpd(&a), "application/dash+xml", a.modified))
        }
        Route::Master { asset: id } => {
            fields.asset = id.clone();
            let a = asset(app, id)?;
            Ok(manifest(
                hls::master(&a),
                "application/vnd.apple.mpegurl",
                a.modified,
            ))
        }
        Route::MediaPlaylist {
            asset: id,
            rendition: rid,
        } => {
            fields.asset = id.clone();
            fields.rendition = rid.clone();
            let a = asset(app, id)?;
            let r = rendition(&a, rid)?;
            Ok(manifest(
                hls::media(r),
                "application/vnd.apple.mpegurl",
                r.source.modified,
            ))
        }
        Route::Init {
            asset: id,
            rendition: rid,
        } => {
            fields.asset = id.clone();
            fields.rendition = rid.clone();
            fields.segment = "init".into();
            let a = asset(app, id)?;
            let r = rendition(&a, rid)?;
            let track = r.track().ok_or(ServeError::UnknownRendition)?;
            let init = fmp4::init_segment(&r.source.index.mvhd, track);
            Ok(segment_resource(
                app,
                r,
                track.kind,
                0,
                vec![Bytes::from(init)],
            ))
        }
        Route::Segment {
            asset: id,
            rendition: rid,
            number,
        } => {
            fields.asset = id.clone();
            fields.rendition = rid.clone();
            fields.segment = number.to_string();
            let a = asset(app, id)?;
            let r = rendition(&a, rid)?;
            let track = r.track().ok_or(ServeError::UnknownRendition)?;
            let (seg, samples) = r.segment(*number).ok_or(ServeError::UnknownSegment)?;
            let seq = u32::try_from(*number).map_err(|_| ServeError::UnknownSegment)?;
            let chunks = fmp4::media_segment(track, seq, seg.dts, samples, &r.source.mapped)?;
            Ok(segment_resource(app, r, track.kind, *number, chunks))
        }
    }
}

fn segment_resource(
    app: &App,
    r: &Rendition,
    kind: crate::index::TrackKind,
    number: usize,
    chunks: Vec<Bytes>,
) -> Resource {
    // Segment bytes are a pure function of the file and the segment plan: hash those, not the
    // bytes (which are a mapping we must not read).
    let tag = fnv1a(&[
        FORMAT_VERSION,
        &r.source.fingerprint.to_be_bytes(),
        r.id.as_bytes(),
        &(number as u64).to_be_bytes(),
        &r.segments.len().to_be_bytes(),
    ]);
    Resource {
        body: Chunks::new(chunks),
        content_type: mime(kind),
        etag: format!("\"s{tag:016x}\""),
        modified: r.source.modified,
        cache_control: app.settings.cache_control_segments.clone(),
    }
}

fn send<B>(req: &Request<B>, res: Resource) -> Response<Chunks> {
    let len = res.body.len();
    let etag = HeaderValue::from_str(&res.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(res.modified)).ok();
    let cache_control =
        HeaderValue::from_str(&res.cache_control).unwrap_or(HeaderValue::from_static("no-cache"));
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let not_modified = if_none_match.is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == res.etag || t.strip_prefix("W/") == Some(&res.etag))
    });
    let base = |status: StatusCode, body: Chunks| {
        let mut r = Response::new(body);
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::ETAG, etag.clone());
        if let Some(lm) = &last_modified {
            h.insert(header::LAST_MODIFIED, lm.clone());
        }
        h.insert(header::CACHE_CONTROL, cache_control.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        r
    };
    if not_modified {
        return finish(
            base(StatusCode::NOT_MODIFIED, Chunks::empty()),
            req.method(),
        );
    }
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    // If-Range with a validator that no longer matches: send everything.
    let if_range_ok = req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == res.etag);
    let outcome = if if_range_ok {
        range::resolve(range_header, len)
    } else {
        RangeOutcome::Full
    };
    let mut r = match outcome {
        RangeOutcome::Full => base(StatusCode::OK, res.body),
        RangeOutcome::Partial { start, end } => {
            let mut r = base(
                StatusCode::PARTIAL_CONTENT,
                res.body.slice(start, end.saturating_add(1)),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        RangeOutcome::Unsatisfiable => {
            let mut r = base(StatusCode::RANGE_NOT_SATISFIABLE, Chunks::empty());
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
    };
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(res.content_type),
    );
    finish(r, req.method())
}

/// Sets Content-Length from the body and empties the body for HEAD (headers stay those of GET).
fn finish(mut r: Response<Chunks>, method: &Method) -> Response<Chunks> {
    let len = r.body().len();
    if r.status() != StatusCode::NOT_MODIFIED && r.status() != StatusCode::NO_CONTENT {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if method == Method::HEAD {
        *r.body_mut() = Chunks::empty();
    }
    r
}

fn with_cors(mut r: Response<Chunks>) -> Response<Chunks> {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "Content-Length, Content-Range, ETag, Last-Modified, Accept-Ranges",
        ),
    );
    h.insert("timing-allow-origin", HeaderValue::from_static("*"));
    r
}
