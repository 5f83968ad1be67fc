//! Manifests and playlists: the DASH MPD, the HLS multivariant and media playlists, built from
//! the asset and its protection and kept in the manifest cache until the asset or the
//! configuration changes.

use bytes::Bytes;

use super::app::App;
use super::body::Chunks;
use super::error::ServeError;
use super::protection::{allowed, plan};
use super::respond::Resource;
use super::routes;
use crate::drm::Variant;
use crate::packaging::plan::Asset;
use crate::packaging::{dash, hls, HlsKeyFormat};
use crate::storage::fnv1a;

/// What a playlist request brought besides its path.
pub(super) struct PlaylistQuery {
    /// `?keyformat=`: emit one HLS key format only.
    pub keyformat: Option<HlsKeyFormat>,
    /// `?token=`: carried into key and child playlist URIs.
    pub token: Option<String>,
}

impl PlaylistQuery {
    /// Reads `keyformat` and `token` from a query string; an unknown key format is a 400.
    pub fn parse(query: Option<&str>, carry_token: bool) -> Result<PlaylistQuery, ServeError> {
        let keyformat = match super::respond::query_param(query, "keyformat") {
            None => None,
            Some(v) => Some(
                HlsKeyFormat::parse(&v).ok_or(ServeError::Route(routes::RouteError::BadPath("unknown keyformat")))?,
            ),
        };
        // A token that came with a playlist request is written into the key and child playlist
        // URIs (HLS clients cannot add headers there). Only URL-safe JWT text.
        let token = super::respond::query_param(query, "token")
            .filter(|t| carry_token && !t.is_empty() && t.len() <= 4096)
            .filter(|t| t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
        Ok(PlaylistQuery { keyformat, token })
    }
}

/// A manifest from the cache, or built and cached. Playlists carrying a client's token are per
/// client: never cached, and `private, no-store` so no shared cache keeps them either.
fn cached_manifest(
    app: &App,
    drm_generation: u64,
    a: &Asset,
    name: String,
    content_type: &'static str,
    token: bool,
    build: &dyn Fn() -> String,
) -> Resource {
    let key = (a.generation, name, drm_generation);
    let build_one = || {
        let text = build();
        let etag = format!("\"m{:016x}\"", fnv1a(&[text.as_bytes()]));
        (Bytes::from(text), etag)
    };
    let (body, etag) = if token {
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
        cache_control: if token {
            "private, no-store".to_owned()
        } else {
            app.settings.cache_control_manifests.clone()
        },
    }
}

/// `/{asset}/manifest[.v].mpd`
pub(super) fn mpd(app: &App, a: &Asset, variant: Option<Variant>) -> Result<Resource, ServeError> {
    let (drm, generation) = app.drm();
    let policy = drm.policy_for(&a.id);
    let variant = variant.or(policy.dash.first().copied()).unwrap_or(Variant::Clear);
    if variant == Variant::Aes128 {
        return Err(ServeError::VariantNotOffered);
    }
    allowed(&policy, variant, false)?;
    // Variant lists are per protocol; segments stay shared (one cbcs set for both).
    if !policy.offers_dash(variant) {
        return Err(ServeError::VariantNotOffered);
    }
    let prot = plan(app, a, variant)?;
    Ok(cached_manifest(app, generation, a, format!("mpd/{variant}"), "application/dash+xml", false, &|| {
        dash::mpd(a, &prot)
    }))
}

/// `/{asset}/master[.v].m3u8`
pub(super) fn master(app: &App, a: &Asset, variant: Option<Variant>, q: PlaylistQuery) -> Result<Resource, ServeError> {
    let (drm, generation) = app.drm();
    let policy = drm.policy_for(&a.id);
    let variant = variant.or(policy.hls.first().copied()).unwrap_or(Variant::Clear);
    allowed(&policy, variant, false)?;
    if !policy.offers_hls(variant) {
        return Err(ServeError::VariantNotOffered);
    }
    let mut prot = (*plan(app, a, variant)?).clone();
    prot.hls_keyformat = q.keyformat;
    prot.token = q.token;
    let kf = q.keyformat.map_or("", HlsKeyFormat::name);
    let name = format!("master/{variant}/{kf}");
    Ok(cached_manifest(app, generation, a, name, "application/vnd.apple.mpegurl", prot.token.is_some(), &|| {
        hls::master(a, &prot)
    }))
}

/// `/{asset}/{rendition}/media[.v].m3u8`
pub(super) fn media(
    app: &App,
    a: &Asset,
    rendition: &str,
    variant: Variant,
    q: PlaylistQuery,
) -> Result<Resource, ServeError> {
    let (drm, generation) = app.drm();
    let policy = drm.policy_for(&a.id);
    allowed(&policy, variant, false)?;
    if !policy.offers_hls(variant) {
        return Err(ServeError::VariantNotOffered);
    }
    let r = a.rendition(rendition).ok_or(ServeError::UnknownRendition)?;
    let mut prot = (*plan(app, a, variant)?).clone();
    prot.hls_keyformat = q.keyformat;
    prot.token = q.token;
    let kf = q.keyformat.map_or("", HlsKeyFormat::name);
    let name = format!("media/{rendition}/{variant}/{kf}");
    Ok(cached_manifest(app, generation, a, name, "application/vnd.apple.mpegurl", prot.token.is_some(), &|| {
        hls::media(&a.id, r, &prot)
    }))
}
