//! The device-licensing endpoints: `GET /.drm/keys.json` and the POST endpoints of
//! [`DeviceEndpoint`]. Bodies are JSON of at most 16 KiB (`{"request": JWS}` and/or
//! `{"device_id", "domain"}`); the token comes from the `Authorization: Bearer` header only
//! (never a query string, which CDNs and logs keep). Answers are `no-store` JSON; every refusal
//! is `{"error", "reason"}` with the status from [`super::error::device_status`].

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde::Deserialize;

use super::app::App;
use super::body::Chunks;
use super::error::{device_status, ServeError};
use super::license::claims_of;
use super::respond::{finish, plain};
use super::routes::DeviceEndpoint;
use crate::license::device::service::Answer;
use crate::license::device::DeviceError;

/// Largest request body.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    domain: Option<String>,
}

/// `GET /.drm/keys.json`.
pub(super) fn keys(app: &App, req: &http::request::Parts) -> Result<Response<Chunks>, ServeError> {
    let Some(devices) = app.devices() else { return Err(ServeError::Route(super::routes::RouteError::NotFound)) };
    let mut r = plain(StatusCode::OK, "application/json", Bytes::from(devices.keys.jwks_json().to_owned()));
    // Keys change only at rotation (and a restart): a short public cache is safe.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    Ok(finish(r, &req.method))
}

/// A POST to a device endpoint.
pub(super) async fn post<B>(
    app: &App,
    req: &http::request::Parts,
    body: B,
    endpoint: DeviceEndpoint,
) -> Result<Response<Chunks>, ServeError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if req.method != Method::POST {
        return Err(ServeError::Method);
    }
    let Some(devices) = app.devices() else { return Ok(refusal(app, &DeviceError::NotEnabled)) };
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Ok(refusal(app, &DeviceError::TooLarge)),
    };
    let parsed: Body = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(_) => return Ok(refusal(app, &DeviceError::Malformed("body is not the expected JSON"))),
    };
    let (drm, drm_gen) = app.drm();
    // Header only: a token in a query string would end up in CDN and proxy logs.
    let claims = if req.headers.contains_key(header::AUTHORIZATION) { claims_of(&drm, req).await } else { None };
    let catalog = devices.catalog(&app.store.library(), &drm, drm_gen);
    let (request, device_id, domain) =
        (parsed.request.as_deref(), parsed.device_id.as_deref(), parsed.domain.as_deref());
    let outcome = match endpoint {
        DeviceEndpoint::Register => match request {
            Some(r) => devices.register(claims, r, &drm, catalog).await,
            None => Err(DeviceError::Malformed("request")),
        },
        DeviceEndpoint::License => match request {
            Some(r) => devices.license(claims, r, &drm, catalog).await,
            None => Err(DeviceError::Malformed("request")),
        },
        DeviceEndpoint::Root => match request {
            Some(r) => devices.root(claims, r, &drm, catalog).await,
            None => Err(DeviceError::Malformed("request")),
        },
        DeviceEndpoint::Reset => devices.reset(claims, request, device_id, catalog).await,
        DeviceEndpoint::Unregister => devices.unregister(claims, device_id, catalog).await,
        DeviceEndpoint::Join => match request {
            Some(r) => devices.join(claims, r, catalog).await,
            None => Err(DeviceError::Malformed("request")),
        },
        DeviceEndpoint::Leave => devices.leave(claims, request, device_id, domain, catalog).await,
    };
    Ok(match outcome {
        Ok(Answer { created, body }) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            let mut text = body.to_string();
            text.push('\n');
            plain(status, "application/json", Bytes::from(text))
        }
        Err(e) => refusal(app, &e),
    })
}

/// The JSON refusal for `e`; details go to the log, never to the client.
fn refusal(app: &App, e: &DeviceError) -> Response<Chunks> {
    let status = device_status(e);
    if let Some(d) = app.devices() {
        d.refused(e);
    }
    if status.is_server_error() {
        tracing::warn!(reason = e.reason(), error = %e, "device request failed");
    } else {
        tracing::info!(reason = e.reason(), status = status.as_u16(), detail = %e, "device request refused");
    }
    let error = match status {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        _ => "unavailable",
    };
    let body = format!("{{\"error\":\"{error}\",\"reason\":\"{}\"}}\n", e.reason());
    let mut r = plain(status, "application/json", Bytes::from(body));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}
