//! Route → resource (manifest, segment or key) → response with caching, validators, Range and
//! CORS. Protected segments go through a byte-bounded, single-flight cache.

use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use super::body::Chunks;
use super::error::ServeError;
use super::player;
use super::range::{self, RangeOutcome};
use super::routes::{self, PlayerFile, Route};
use crate::crypto::KeyId;
use crate::drm::{Drm, Policy, Variant};
use crate::index::TrackKind;
use crate::license::{clearkey, Claims, Denied};
use crate::packaging::plan::{Asset, Rendition};
use crate::packaging::protect::{self, StreamKey};
use crate::packaging::{dash, fmp4, hls, mime, HlsKeyFormat, Protection};
use crate::storage::{fnv1a, AssetState, Store};

/// Bumped whenever segment bytes change for the same input, so old ETags stop matching.
const FORMAT_VERSION: &[u8] = b"drm-origin-fmp4-3";

/// HTTP behaviour settings.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Cache-Control of init and media segments.
    pub cache_control_segments: String,
    /// Cache-Control of manifests and playlists.
    pub cache_control_manifests: String,
    /// Byte budget of the protected-segment cache (0: no cache).
    pub encrypted_cache_bytes: u64,
    /// Encryptions running at once.
    pub max_concurrent_encryptions: usize,
    /// shaka-player's library for the demo page; `None`: the demo page is off.
    pub player_script: Option<std::path::PathBuf>,
}

/// Identity of a protected segment in the cache: the source file version, the stream, the
/// segment, the variant and the key (a new key id means new bytes).
#[derive(Clone, PartialEq, Eq, Hash)]
struct SegmentKey {
    file: u64,
    asset: String,
    rendition: String,
    number: usize,
    variant: Variant,
    kid: KeyId,
    clear_lead: usize,
    drm_generation: u64,
}

/// Shared state of the request handler.
pub struct App {
    /// The asset store.
    pub store: Arc<Store>,
    /// Settings.
    pub settings: HttpSettings,
    drm: RwLock<(Arc<Drm>, u64)>,
    segments: Option<moka::future::Cache<SegmentKey, Vec<Bytes>>>,
    manifests: moka::sync::Cache<(u64, String, u64), (Bytes, String)>,
    encrypt_permits: Arc<Semaphore>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}

/// Counters exposed at `/metrics` (Prometheus text format), named by stage.
#[derive(Default)]
pub struct Metrics {
    /// Protected outputs built (cache misses that ran an encryption).
    pub encryptions: std::sync::atomic::AtomicU64,
    /// Bytes of protected output built.
    pub encrypted_bytes: std::sync::atomic::AtomicU64,
    /// Requests answered, by status class.
    pub responses: [std::sync::atomic::AtomicU64; 6],
    /// Bytes of response bodies sent (Content-Length).
    pub body_bytes: std::sync::atomic::AtomicU64,
}

impl App {
    /// A handler over `store` with keys and policies from `drm`.
    pub fn new(store: Arc<Store>, settings: HttpSettings, drm: Arc<Drm>) -> App {
        let segments = (settings.encrypted_cache_bytes > 0).then(|| {
            moka::future::Cache::builder()
                .weigher(|_k: &SegmentKey, v: &Vec<Bytes>| {
                    u32::try_from(v.iter().map(Bytes::len).sum::<usize>()).unwrap_or(u32::MAX)
                })
                .max_capacity(settings.encrypted_cache_bytes)
                .build()
        });
        let manifests = moka::sync::Cache::builder()
            .weigher(|_k: &(u64, String, u64), v: &(Bytes, String)| u32::try_from(v.0.len()).unwrap_or(u32::MAX))
            .max_capacity(64 << 20)
            .build();
        let encrypt_permits = Arc::new(Semaphore::new(settings.max_concurrent_encryptions.max(1)));
        start_jwks(&drm);
        App {
            store,
            settings,
            drm: RwLock::new((drm, 1)),
            segments,
            manifests,
            encrypt_permits,
            metrics: Metrics::default(),
        }
    }

    /// Loads the identity provider's keys once before the first request, if a JWKS is configured
    /// and none was loaded yet.
    pub async fn prime_jwks(&self) {
        let (drm, _) = self.drm();
        if let Some(j) = drm.verifier.as_ref().and_then(|v| v.jwks.clone()) {
            j.prime().await;
        }
    }

    /// The `/metrics` text (Prometheus exposition format 0.0.4).
    pub async fn metrics_text(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        let (cache_bytes, cache_entries) = match &self.segments {
            Some(c) => {
                // moka applies evictions lazily: settle them so the figure is the real footprint.
                c.run_pending_tasks().await;
                (c.weighted_size(), c.entry_count())
            }
            None => (0, 0),
        };
        let lib = self.store.library();
        let ready = lib.assets.values().filter(|a| matches!(a, AssetState::Ready(_))).count();
        let mut x = String::new();
        let mut line = |name: &str, help: &str, kind: &str, v: String| {
            x.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
        };
        line("origin_assets_ready", "Assets being served.", "gauge", ready.to_string());
        line(
            "origin_assets_broken",
            "Assets whose files are unusable.",
            "gauge",
            (lib.assets.len().saturating_sub(ready)).to_string(),
        );
        line(
            "origin_encrypted_cache_bytes",
            "Bytes held by the protected-segment cache.",
            "gauge",
            cache_bytes.to_string(),
        );
        line(
            "origin_encrypted_cache_capacity_bytes",
            "Byte budget of the protected-segment cache.",
            "gauge",
            self.settings.encrypted_cache_bytes.to_string(),
        );
        line(
            "origin_encrypted_cache_entries",
            "Entries in the protected-segment cache.",
            "gauge",
            cache_entries.to_string(),
        );
        line(
            "origin_encryptions_total",
            "Protected outputs built.",
            "counter",
            m.encryptions.load(Relaxed).to_string(),
        );
        line(
            "origin_encrypted_bytes_total",
            "Bytes of protected output built.",
            "counter",
            m.encrypted_bytes.load(Relaxed).to_string(),
        );
        line(
            "origin_response_body_bytes_total",
            "Bytes of response bodies sent.",
            "counter",
            m.body_bytes.load(Relaxed).to_string(),
        );
        let (drm, _) = self.drm();
        if let Some(j) = drm.verifier.as_ref().and_then(|v| v.jwks.as_ref()) {
            line("origin_jwks_keys", "Signing keys of the last good JWKS.", "gauge", j.keys().len().to_string());
            line("origin_jwks_refresh_failures_total", "Failed JWKS refreshes.", "counter", j.failures().to_string());
        }
        x.push_str("# HELP origin_responses_total Responses by status class.\n# TYPE origin_responses_total counter\n");
        for (i, c) in m.responses.iter().enumerate().skip(1) {
            x.push_str(&format!("origin_responses_total{{class=\"{i}xx\"}} {}\n", c.load(Relaxed)));
        }
        x
    }

    /// Current keys and policies, with their generation.
    pub fn drm(&self) -> (Arc<Drm>, u64) {
        match self.drm.read() {
            Ok(d) => d.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Installs new keys and policies (a validated configuration). Cached outputs made with the
    /// previous ones stop matching (their cache keys carry the generation).
    pub fn set_drm(&self, drm: Arc<Drm>) {
        let mut g = match self.drm.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let next = g.1.saturating_add(1);
        start_jwks(&drm);
        *g = (drm, next);
        self.manifests.invalidate_all();
        if let Some(c) = &self.segments {
            c.invalidate_all();
        }
    }
}

/// Starts the JWKS refresher of a configuration (idempotent; a source kept across a reload keeps
/// its one refresher).
fn start_jwks(drm: &Drm) {
    if let Some(j) = drm.verifier.as_ref().and_then(|v| v.jwks.as_ref()) {
        j.start();
    }
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
            let mut r = Response::new(Chunks::new(vec![Bytes::from_static(body.as_bytes())]));
            *r.status_mut() = status;
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if matches!(e, ServeError::Method) {
                h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, OPTIONS"));
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
        if method != Method::HEAD {
            app.metrics.body_bytes.fetch_add(bytes.parse().unwrap_or(0), Relaxed);
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
    if method == Method::OPTIONS {
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
        return Ok(r);
    }
    let route = routes::parse(req.uri.path())?;
    if route == Route::ClearKeyLicense {
        if method != Method::POST {
            return Err(ServeError::Method);
        }
        fields.segment = "license".into();
        let limited = http_body_util::Limited::new(body, 64 * 1024);
        let bytes = match http_body_util::BodyExt::collect(limited).await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Ok(denied(&Denied::Forbidden("request_too_large"), StatusCode::PAYLOAD_TOO_LARGE)),
        };
        return Ok(clearkey_license(app, req, &bytes).await);
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(ServeError::Method);
    }
    match &route {
        Route::Health => {
            let mut r = Response::new(Chunks::new(vec![Bytes::from_static(b"ok\n")]));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(finish(r, method))
        }
        Route::Metrics => {
            let mut r = Response::new(Chunks::new(vec![Bytes::from(app.metrics_text().await)]));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(finish(r, method))
        }
        Route::Key { kid } => {
            fields.segment = "key".into();
            let (drm, _) = app.drm();
            let claims = claims_of(&drm, req).await;
            let key = match decide(&drm, kid, claims.as_ref(), false) {
                Decision::Deliver(k) => k,
                Decision::Denied(d) => return Ok(denied(&d, StatusCode::OK)),
                Decision::NotDeliverable => return Err(ServeError::NoKey),
            };
            tracing::info!(kid = %kid, "key delivered");
            let mut r = Response::new(Chunks::new(vec![Bytes::copy_from_slice(key.key.bytes())]));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(finish(r, method))
        }
        _ => {
            let keyformat = match query_param(req.uri.query(), "keyformat") {
                None => None,
                Some(v) => Some(
                    HlsKeyFormat::parse(&v)
                        .ok_or(ServeError::Route(routes::RouteError::BadPath("unknown keyformat")))?,
                ),
            };
            let (drm, _) = app.drm();
            // A token that came with a playlist request is written into the key and child
            // playlist URIs (HLS clients cannot add headers there). Only URL-safe JWT text.
            let token = query_param(req.uri.query(), "token")
                .filter(|t| drm.carry_token && !t.is_empty() && t.len() <= 4096)
                .filter(|t| t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
            let page = matches!(route, Route::Player { .. });
            let resource = resource(app, &route, keyformat, token, fields).await?;
            let mut r = send(req, resource);
            if page {
                let h = r.headers_mut();
                h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(player::CSP));
                h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            }
            Ok(r)
        }
    }
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

/// Whether `variant` may be served for this request under `policy`. Clear init segments (and
/// clear-lead segments) stay available when HLS AES-128 needs them: they carry no more than the
/// clear lead the policy itself grants.
fn allowed(policy: &Policy, variant: Variant, clear_init_or_lead: bool) -> Result<(), ServeError> {
    if policy.offers(variant) {
        return Ok(());
    }
    if variant == Variant::Clear {
        if clear_init_or_lead && policy.hls.contains(&Variant::Aes128) {
            return Ok(());
        }
        return Err(ServeError::ClearRefused);
    }
    Err(ServeError::VariantNotOffered)
}

/// Resolves the keys of every rendition of `a` for `variant` under `policy` (creating auto keys
/// on first use), and checks that each protected track can be protected correctly, so a protected
/// manifest never lists a segment we would fail to produce.
///
/// `only`: a segment or init request needs just its rendition's key, and its builder checks the
/// bitstream itself on a cache miss, so the per-rendition work is not repeated on every request.
fn protection(
    drm: &Drm,
    policy: &Policy,
    a: &Asset,
    variant: Variant,
    only: Option<&str>,
) -> Result<Protection, ServeError> {
    let mut prot = Protection {
        variant,
        keys: Default::default(),
        envelope: None,
        clear_lead: policy.clear_lead_segments,
        systems: policy.systems.clone(),
        license_urls: policy.license_urls.clone(),
        raw_key_delivery: policy.key_delivery != crate::drm::KeyDelivery::None,
        hls_keyformat: None,
        token: None,
    };
    let key_error = |e: crate::drm::store::StoreError| ServeError::Protect(format!("key: {e}"));
    match variant {
        Variant::Clear => {}
        Variant::Aes128 => {
            let spec = policy.keys.envelope.as_ref().ok_or(ServeError::VariantNotOffered)?;
            prot.envelope = Some(drm.resolve(policy, &a.id, "envelope", spec).map_err(key_error)?);
        }
        Variant::Cenc | Variant::Cbcs => {
            for r in a.renditions.iter().filter(|r| only.is_none_or(|id| id == r.id)) {
                let Some(t) = r.track() else { continue };
                if let Some((class, spec)) = policy.class_of(t.kind, t.entry.height) {
                    if only.is_none() {
                        protect::check(t, variant)?;
                    }
                    prot.keys.insert(r.id.clone(), drm.resolve(policy, &a.id, class, spec).map_err(key_error)?);
                }
            }
        }
    }
    Ok(prot)
}

async fn resource(
    app: &App,
    route: &Route,
    keyformat: Option<HlsKeyFormat>,
    token: Option<String>,
    fields: &mut LogFields,
) -> Result<Resource, ServeError> {
    let (drm, generation) = app.drm();
    let manifest = |a: &Asset, name: String, content_type: &'static str, build: &dyn Fn() -> String| {
        let key = (a.generation, name, generation);
        let build_one = || {
            let text = build();
            let etag = format!("\"m{:016x}\"", fnv1a(&[text.as_bytes()]));
            (Bytes::from(text), etag)
        };
        // Playlists carrying a client's token are per client: never cached.
        let (body, etag) = if token.is_some() {
            build_one()
        } else {
            app.manifests.get(&key).unwrap_or_else(|| {
                let v = build_one();
                app.manifests.insert(key, v.clone());
                v
            })
        };
        Resource {
            etag,
            body: Chunks::new(vec![body]),
            content_type,
            modified: a.modified,
            // A playlist carrying one client's token must never be served to another by a cache.
            cache_control: if token.is_some() {
                "private, no-store".to_owned()
            } else {
                app.settings.cache_control_manifests.clone()
            },
        }
    };
    match route {
        Route::Health | Route::Metrics | Route::Key { .. } | Route::ClearKeyLicense => Err(ServeError::UnknownAsset),
        Route::Player { asset: id } => {
            fields.asset = id.clone();
            if app.settings.player_script.is_none() {
                return Err(ServeError::Route(routes::RouteError::NotFound));
            }
            asset(app, id)?;
            let (body, etag, modified) = player::embedded(player::PAGE);
            let body = Chunks::new(vec![body]);
            Ok(Resource {
                body,
                content_type: "text/html; charset=utf-8",
                etag,
                modified,
                cache_control: "no-cache".into(),
            })
        }
        Route::PlayerFile(file) => {
            let Some(script) = app.settings.player_script.clone() else {
                return Err(ServeError::Route(routes::RouteError::NotFound));
            };
            let (body, etag, modified) = match file {
                PlayerFile::App => player::embedded(player::APP_JS),
                PlayerFile::Shaka => tokio::task::spawn_blocking(move || player::library(&script))
                    .await
                    .map_err(|e| ServeError::Player(e.to_string()))?
                    .map_err(|e| {
                        player::warn_once(&e);
                        ServeError::Player(e.to_string())
                    })?,
            };
            let body = Chunks::new(vec![body]);
            let content_type = "text/javascript; charset=utf-8";
            Ok(Resource { body, content_type, etag, modified, cache_control: "no-cache".into() })
        }
        Route::Mpd { asset: id, variant } => {
            fields.asset = id.clone();
            let a = asset(app, id)?;
            let policy = drm.policy_for(id);
            let variant = variant.or(policy.dash.first().copied()).unwrap_or(Variant::Clear);
            if variant == Variant::Aes128 {
                return Err(ServeError::VariantNotOffered);
            }
            allowed(&policy, variant, false)?;
            // Variant lists are per protocol; segments stay shared (one cbcs set for both).
            if !policy.offers_dash(variant) {
                return Err(ServeError::VariantNotOffered);
            }
            let prot = protection(&drm, &policy, &a, variant, None)?;
            Ok(manifest(&a, format!("mpd/{variant}"), "application/dash+xml", &|| dash::mpd(&a, &prot)))
        }
        Route::Master { asset: id, variant } => {
            fields.asset = id.clone();
            let a = asset(app, id)?;
            let policy = drm.policy_for(id);
            let variant = variant.or(policy.hls.first().copied()).unwrap_or(Variant::Clear);
            allowed(&policy, variant, false)?;
            if !policy.offers_hls(variant) {
                return Err(ServeError::VariantNotOffered);
            }
            let mut prot = protection(&drm, &policy, &a, variant, None)?;
            prot.hls_keyformat = keyformat;
            prot.token = token.clone();
            let kf = keyformat.map_or("", HlsKeyFormat::name);
            Ok(manifest(&a, format!("master/{variant}/{kf}"), "application/vnd.apple.mpegurl", &|| {
                hls::master(&a, &prot)
            }))
        }
        Route::MediaPlaylist { asset: id, rendition: rid, variant } => {
            fields.asset = id.clone();
            fields.rendition = rid.clone();
            let a = asset(app, id)?;
            let policy = drm.policy_for(id);
            allowed(&policy, *variant, false)?;
            if !policy.offers_hls(*variant) {
                return Err(ServeError::VariantNotOffered);
            }
            let r = rendition(&a, rid)?;
            let mut prot = protection(&drm, &policy, &a, *variant, None)?;
            prot.hls_keyformat = keyformat;
            prot.token = token.clone();
            let kf = keyformat.map_or("", HlsKeyFormat::name);
            Ok(manifest(&a, format!("media/{rid}/{variant}/{kf}"), "application/vnd.apple.mpegurl", &|| {
                hls::media(id, r, &prot)
            }))
        }
        Route::Init { asset: id, rendition: rid, variant } => {
            fields.asset = id.clone();
            fields.rendition = rid.clone();
            fields.segment = "init".into();
            let a = asset(app, id)?;
            let policy = drm.policy_for(id);
            allowed(&policy, *variant, true)?;
            let r = rendition(&a, rid)?;
            let track = r.track().ok_or(ServeError::UnknownRendition)?;
            if *variant == Variant::Aes128 {
                return Err(ServeError::Route(routes::RouteError::NotFound)); // AES-128 uses init.mp4
            }
            if *variant == Variant::Clear {
                let init = fmp4::init_segment(&r.source.index.mvhd, track);
                return Ok(segment_resource(app, r, track.kind, 0, *variant, vec![Bytes::from(init)]));
            }
            let prot = protection(&drm, &policy, &a, *variant, Some(rid))?;
            let key = prot.key(rid).ok_or(ServeError::VariantNotOffered)?.clone();
            let lead = prot.clear_lead;
            let cache_key = segment_key(&a, r, 0, *variant, key.kid, lead, generation);
            let (asset_id, r_id, source, t_index) = (a.id.clone(), r.id.clone(), r.source.clone(), r.track);
            let v = *variant;
            let extra = crate::packaging::drm_signalling::init_pssh(&prot, &key);
            let bytes = cached(app, cache_key, move || {
                let track = source.index.tracks.get(t_index).ok_or(ServeError::UnknownRendition)?;
                let sk = StreamKey { kid: key.kid, key: &key.key, stream_id: protect::stream_id(&asset_id, &r_id) };
                Ok(vec![Bytes::from(protect::init_segment(&source.index.mvhd, track, v, &sk, lead > 0, &extra)?)])
            })
            .await?;
            Ok(segment_resource(app, r, track.kind, 0, *variant, bytes))
        }
        Route::Segment { asset: id, rendition: rid, number, variant } => {
            fields.asset = id.clone();
            fields.rendition = rid.clone();
            fields.segment = number.to_string();
            let a = asset(app, id)?;
            let policy = drm.policy_for(id);
            let in_lead = *number <= policy.clear_lead_segments;
            allowed(&policy, *variant, in_lead)?;
            let r = rendition(&a, rid)?;
            let track = r.track().ok_or(ServeError::UnknownRendition)?;
            let (seg, samples) = r.segment(*number).ok_or(ServeError::UnknownSegment)?;
            let seq = u32::try_from(*number).map_err(|_| ServeError::UnknownSegment)?;
            // A file truncated in place since indexing: answer 503 now rather than start a 200
            // whose body the kernel cannot finish (see storage::mmap).
            let on_disk = r.source.mapped.file().metadata().map(|m| m.len()).unwrap_or(0);
            if on_disk < r.source.mapped.len() {
                return Err(ServeError::FileChanged);
            }
            if *variant == Variant::Clear {
                let chunks = fmp4::media_segment(seq, seg.dts, samples, &r.source.mapped)?;
                return Ok(segment_resource(app, r, track.kind, *number, *variant, chunks));
            }
            let prot = protection(&drm, &policy, &a, *variant, Some(rid))?;
            let key = match variant {
                Variant::Aes128 => prot.envelope.clone(),
                _ => prot.key(rid).cloned(),
            }
            .ok_or(ServeError::VariantNotOffered)?;
            let lead = prot.clear_lead;
            let cache_key = segment_key(&a, r, *number, *variant, key.kid, lead, generation);
            let (asset_id, r_id, source, t_index, n, v) =
                (a.id.clone(), r.id.clone(), r.source.clone(), r.track, *number, *variant);
            let (first, end, dts, has_clear_entry) = (seg.first, seg.end, seg.dts, lead > 0);
            let bytes = cached(app, cache_key, move || {
                let track = source.index.tracks.get(t_index).ok_or(ServeError::UnknownRendition)?;
                let samples = track.samples.get(first..end).ok_or(ServeError::UnknownSegment)?;
                let stream = protect::stream_id(&asset_id, &r_id);
                let file = source.mapped.file();
                if v == Variant::Aes128 {
                    let seg_iv = crate::crypto::iv::hls_segment_iv(&key.key, &stream, n as u64);
                    Ok(vec![Bytes::from(protect::aes128_segment(file, &key.key, &seg_iv, seq, dts, samples)?)])
                } else {
                    let sk = StreamKey { kid: key.kid, key: &key.key, stream_id: stream };
                    Ok(protect::cenc_segment(
                        file,
                        track,
                        v,
                        &sk,
                        seq,
                        dts,
                        samples,
                        first,
                        n <= lead,
                        has_clear_entry,
                    )?)
                }
            })
            .await?;
            Ok(segment_resource(app, r, track.kind, *number, *variant, bytes))
        }
    }
}

fn segment_key(
    a: &Asset,
    r: &Rendition,
    number: usize,
    variant: Variant,
    kid: KeyId,
    clear_lead: usize,
    generation: u64,
) -> SegmentKey {
    SegmentKey {
        file: r.source.fingerprint,
        asset: a.id.clone(),
        rendition: r.id.clone(),
        number,
        variant,
        kid,
        clear_lead,
        drm_generation: generation,
    }
}

/// Builds a protected output on a blocking thread (bounded by the encryption permits), through
/// the single-flight cache when it is enabled: concurrent requests for one segment wait for one
/// encryption.
async fn cached<F>(app: &App, key: SegmentKey, build: F) -> Result<Vec<Bytes>, ServeError>
where
    F: FnOnce() -> Result<Vec<Bytes>, ServeError> + Send + 'static,
{
    let permits = app.encrypt_permits.clone();
    let counters = (&app.metrics.encryptions, &app.metrics.encrypted_bytes);
    let work = async move {
        let _permit = permits.acquire_owned().await.map_err(|_| ServeError::Protect("shutting down".into()))?;
        let out = tokio::task::spawn_blocking(build)
            .await
            .map_err(|e| ServeError::Protect(format!("encryption task: {e}")))?;
        if let Ok(b) = &out {
            counters.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let len: usize = b.iter().map(Bytes::len).sum();
            counters.1.fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
        }
        out
    };
    match &app.segments {
        None => work.await,
        Some(cache) => cache.try_get_with(key, work).await.map_err(|e: Arc<ServeError>| clone_error(&e)),
    }
}

fn clone_error(e: &ServeError) -> ServeError {
    match e {
        ServeError::UnknownRendition => ServeError::UnknownRendition,
        ServeError::VariantNotOffered => ServeError::VariantNotOffered,
        ServeError::UnknownSegment => ServeError::UnknownSegment,
        ServeError::Protect(why) => ServeError::Protect(why.clone()),
        other => ServeError::Protect(other.to_string()),
    }
}

fn segment_resource(
    app: &App,
    r: &Rendition,
    kind: TrackKind,
    number: usize,
    variant: Variant,
    chunks: Vec<Bytes>,
) -> Resource {
    // Segment bytes are a pure function of the file, the plan and the variant: hash those, not
    // the bytes (a mapping we must not read).
    let tag = fnv1a(&[
        FORMAT_VERSION,
        &r.source.fingerprint.to_be_bytes(),
        r.id.as_bytes(),
        &(number as u64).to_be_bytes(),
        &r.segments.len().to_be_bytes(),
        variant.suffix().as_bytes(),
    ]);
    Resource {
        body: Chunks::new(chunks),
        content_type: mime(kind),
        etag: format!("\"s{tag:016x}\""),
        modified: r.source.modified,
        cache_control: app.settings.cache_control_segments.clone(),
    }
}

fn send(req: &http::request::Parts, res: Resource) -> Response<Chunks> {
    let len = res.body.len();
    let etag = HeaderValue::from_str(&res.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(res.modified)).ok();
    let cache_control = HeaderValue::from_str(&res.cache_control).unwrap_or(HeaderValue::from_static("no-cache"));
    let if_none_match = req.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let not_modified = if_none_match.is_some_and(|v| {
        v.split(',').map(str::trim).any(|t| t == "*" || t == res.etag || t.strip_prefix("W/") == Some(&res.etag))
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
fn finish(mut r: Response<Chunks>, method: &Method) -> Response<Chunks> {
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
fn with_cors(mut r: Response<Chunks>, credentialed_origin: Option<HeaderValue>, vary_origin: bool) -> Response<Chunks> {
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
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.to_owned())
    })
}

/// The bearer token of a request: `Authorization: Bearer …`, else the `token` query parameter
/// (HLS key URIs cannot carry headers).
fn bearer(req: &http::request::Parts) -> Option<String> {
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
async fn claims_of(drm: &Drm, req: &http::request::Parts) -> Option<Result<Claims, Denied>> {
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
enum Decision {
    Deliver(Arc<crate::drm::ContentKey>),
    Denied(Denied),
    NotDeliverable,
}

/// Open delivery wins; token delivery needs a valid token that entitles to some owning policy
/// (and asset); keys no policy delivers are indistinguishable from unknown ones.
fn decide(drm: &Drm, kid: &KeyId, claims: Option<&Result<Claims, Denied>>, persistent: bool) -> Decision {
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
fn denied(d: &Denied, status: StatusCode) -> Response<Chunks> {
    let (status, error) = match d {
        Denied::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        Denied::Forbidden(_) if status.is_client_error() => (status, "forbidden"),
        Denied::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
    };
    tracing::info!(reason = d.reason(), status = status.as_u16(), "key request denied");
    let body = format!("{{\"error\":\"{error}\",\"reason\":\"{}\"}}\n", d.reason());
    let mut r = Response::new(Chunks::new(vec![Bytes::from(body)]));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    let len = r.body().len();
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// 400 with a JSON reason, for a malformed license request.
fn bad_request(reason: &str) -> Response<Chunks> {
    let body = format!("{{\"error\":\"bad_request\",\"reason\":\"{reason}\"}}\n");
    let mut r = Response::new(Chunks::new(vec![Bytes::from(body)]));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let len = r.body().len();
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
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
    let mut r = Response::new(Chunks::new(vec![Bytes::from(clearkey::license(&pairs, request.persistent))]));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let len = r.body().len();
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}
