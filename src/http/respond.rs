//! A resource → its HTTP response: validators (ETag, `If-None-Match` → 304, `If-Range`), single
//! byte ranges, `Content-Length`, HEAD, and CORS. Every successful answer goes through here.

use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use super::body::Chunks;
use super::range::{self, RangeOutcome};

/// A resource ready to send.
pub(super) struct Resource {
    /// The whole representation.
    pub body: Chunks,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Strong validator, quoted.
    pub etag: String,
    /// `Last-Modified`.
    pub modified: SystemTime,
    /// `Cache-Control`.
    pub cache_control: String,
}

/// A small body with no validators (JSON answers, health, metrics): `Content-Type`,
/// `Cache-Control: no-store`, `Content-Length`.
pub(super) fn plain(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Chunks> {
    let len = body.len();
    let mut r = Response::new(Chunks::new(vec![body]));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// 200, 206, 304 or 416 for `res` under the request's validators and Range.
pub(super) fn send(req: &http::request::Parts, res: Resource) -> Response<Chunks> {
    let len = res.body.len();
    let etag = HeaderValue::from_str(&res.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(res.modified)).ok();
    let cache_control = HeaderValue::from_str(&res.cache_control).unwrap_or(HeaderValue::from_static("no-cache"));
    // Several If-None-Match field lines are one comma-separated list (RFC 9110 §5.3).
    let not_modified = req
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == res.etag || t.strip_prefix("W/") == Some(&res.etag));
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
        return finish(base(StatusCode::NOT_MODIFIED, Chunks::empty()), &req.method);
    }
    let range_header = req.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // If-Range with a validator that no longer matches: send everything.
    let if_range_ok = req.headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v == res.etag);
    let outcome = if if_range_ok { range::resolve(range_header, len) } else { RangeOutcome::Full };
    let mut r = match outcome {
        RangeOutcome::Full => base(StatusCode::OK, res.body),
        RangeOutcome::Partial { start, end } => {
            let mut r = base(StatusCode::PARTIAL_CONTENT, res.body.slice(start, end.saturating_add(1)));
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
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(res.content_type));
    finish(r, &req.method)
}

/// Sets Content-Length from the body and empties the body for HEAD (headers stay those of GET).
pub(super) fn finish(mut r: Response<Chunks>, method: &Method) -> Response<Chunks> {
    let len = r.body().len();
    if r.status() != StatusCode::NOT_MODIFIED && r.status() != StatusCode::NO_CONTENT {
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if method == Method::HEAD {
        *r.body_mut() = Chunks::empty();
    }
    r
}

/// CORS headers: `*`, or the asking origin with credentials allowed (license answers); answers
/// whose CORS headers depend on the Origin say so (`Vary`).
pub(super) fn with_cors(
    mut r: Response<Chunks>,
    credentialed_origin: Option<HeaderValue>,
    vary_origin: bool,
) -> Response<Chunks> {
    let h = r.headers_mut();
    match credentialed_origin {
        Some(origin) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        None => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
    if vary_origin {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, ETag, Last-Modified, Accept-Ranges"),
    );
    h.insert("timing-allow-origin", HeaderValue::from_static("*"));
    r
}

/// The value of `name` in a query string (no percent-decoding: our values are plain words).
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.to_owned())
    })
}
