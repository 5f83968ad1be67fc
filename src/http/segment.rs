//! Init and media segments: clear ones as a generated header plus views of the source file,
//! protected ones built on the request's worker through the byte-bounded, single-flight cache.

use std::sync::Arc;

use bytes::Bytes;

use super::app::App;
use super::body::Chunks;
use super::error::ServeError;
use super::protection::{allowed, plan};
use super::respond::Resource;
use super::routes;
use crate::drm::Variant;
use crate::index::TrackKind;
use crate::packaging::plan::{Asset, Rendition};
use crate::packaging::protect::{self, StreamKey};
use crate::packaging::version::{Version, FORMAT_VERSION};
use crate::packaging::{fmp4, mime};
use crate::storage::{buffers, fnv1a};

/// Identity of a protected segment in the cache: the segment's name, whose version covers every
/// input of its bytes, and this node's identity of the source file (a guard against a file
/// rewritten in place with the same layout).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct SegmentKey {
    file: u64,
    asset: String,
    rendition: String,
    number: usize,
    variant: Variant,
    version: Version,
}

/// Identity of a media segment's subsample maps under one scheme: the source file (this node's
/// fingerprint and the content version of the clear rendition, which covers its bytes), the
/// rendition, the segment, and `cenc` or `cbcs`. No key: the maps do not depend on it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct MapKey {
    file: u64,
    content: Version,
    asset: String,
    rendition: String,
    number: usize,
    variant: Variant,
}

/// The version segment names of `variant` must carry now: the clear one from the asset, a
/// protected one from the plan. A name with another version is for bytes we no longer make.
fn check_version(asking: Version, current: Version) -> Result<(), ServeError> {
    if asking == current {
        Ok(())
    } else {
        Err(ServeError::StaleVersion)
    }
}

/// `/{asset}/{rendition}/init[.v].mp4`
pub(super) async fn init(
    app: &App,
    a: &Arc<Asset>,
    rid: &str,
    variant: Variant,
    version: Version,
) -> Result<Resource, ServeError> {
    let (drm, _) = app.drm();
    let policy = drm.policy_for(&a.id);
    allowed(&policy, variant, true)?;
    let r = a.rendition(rid).ok_or(ServeError::UnknownRendition)?;
    let track = r.track().ok_or(ServeError::UnknownRendition)?;
    if variant == Variant::Aes128 {
        return Err(ServeError::Route(routes::RouteError::NotFound)); // AES-128 uses init.mp4
    }
    if variant == Variant::Clear {
        check_version(version, r.clear_version)?;
        let init = fmp4::init_segment(&r.source.index.mvhd, track);
        return Ok(segment_resource(app, r, track.kind, 0, variant, version, vec![Bytes::from(init)]));
    }
    let prot = plan(app, a, variant)?;
    check_version(version, prot.version_of(rid, variant))?;
    let key = prot.key(rid).ok_or(ServeError::VariantNotOffered)?.clone();
    let lead = prot.clear_lead;
    let cache_key = segment_key(a, r, 0, variant, version);
    let (asset_id, r_id, source, t_index) = (a.id.clone(), r.id.clone(), r.source.clone(), r.track);
    let extra = crate::packaging::drm_signalling::init_pssh(&prot, &key);
    let bytes = cached(app, cache_key, move || {
        let track = source.index.tracks.get(t_index).ok_or(ServeError::UnknownRendition)?;
        let sk = StreamKey { kid: key.kid, key: &key.key, stream_id: protect::stream_id(&asset_id, &r_id) };
        Ok(vec![Bytes::from(protect::init_segment(&source.index.mvhd, track, variant, &sk, lead > 0, &extra)?)])
    })
    .await?;
    Ok(segment_resource(app, r, track.kind, 0, variant, version, bytes))
}

/// `/{asset}/{rendition}/{n}[.v].m4s`
pub(super) async fn media(
    app: &App,
    a: &Arc<Asset>,
    rid: &str,
    number: usize,
    variant: Variant,
    version: Version,
) -> Result<Resource, ServeError> {
    let (drm, _) = app.drm();
    let policy = drm.policy_for(&a.id);
    let in_lead = number <= policy.clear_lead_segments;
    allowed(&policy, variant, in_lead)?;
    let r = a.rendition(rid).ok_or(ServeError::UnknownRendition)?;
    let track = r.track().ok_or(ServeError::UnknownRendition)?;
    let seg = r.segment_entry(number).ok_or(ServeError::UnknownSegment)?;
    let seq = u32::try_from(number).map_err(|_| ServeError::UnknownSegment)?;
    // A file truncated in place since indexing: answer 503 now rather than start a 200
    // whose body the kernel cannot finish (see storage::mmap).
    if !r.source.data.unchanged() {
        return Err(ServeError::FileChanged);
    }
    if variant == Variant::Clear {
        check_version(version, r.clear_version)?;
        let samples = track.samples.range(seg.first, seg.end).ok_or(ServeError::UnknownSegment)?;
        let chunks = fmp4::media_segment(seq, seg.dts, &samples, &r.source.data)?;
        return Ok(segment_resource(app, r, track.kind, number, variant, version, chunks));
    }
    let prot = plan(app, a, variant)?;
    check_version(version, prot.version_of(rid, variant))?;
    let key = match variant {
        Variant::Aes128 => prot.envelope.clone(),
        _ => prot.key(rid).cloned(),
    }
    .ok_or(ServeError::VariantNotOffered)?;
    let lead = prot.clear_lead;
    let cache_key = segment_key(a, r, number, variant, version);
    let (asset_id, r_id, source, t_index) = (a.id.clone(), r.id.clone(), r.source.clone(), r.track);
    let (first, end, dts, has_clear_entry) = (seg.first, seg.end, seg.dts, lead > 0);
    let map_key = MapKey {
        file: r.source.fingerprint,
        content: r.clear_version,
        asset: a.id.clone(),
        rendition: r.id.clone(),
        number,
        variant,
    };
    let maps_cache = app.subsample_maps.clone();
    let bytes = cached(app, cache_key, move || {
        let track = source.index.tracks.get(t_index).ok_or(ServeError::UnknownRendition)?;
        let samples = track.samples.range(first, end).ok_or(ServeError::UnknownSegment)?;
        let samples = samples.as_slice();
        let stream = protect::stream_id(&asset_id, &r_id);
        let file = &source.data;
        if variant == Variant::Aes128 {
            let seg_iv = crate::crypto::iv::hls_segment_iv(&key.key, &stream, number as u64);
            Ok(vec![buffers::into_bytes(protect::aes128_segment(file, &key.key, &seg_iv, seq, dts, samples)?)])
        } else {
            let sk = StreamKey { kid: key.kid, key: &key.key, stream_id: stream };
            let known = maps_cache.get(&map_key);
            let fresh = known.is_none();
            let (chunks, maps) = protect::cenc_segment(
                file,
                track,
                variant,
                &sk,
                seq,
                dts,
                samples,
                first,
                number <= lead,
                has_clear_entry,
                known,
            )?;
            if let (true, Some(maps)) = (fresh, maps) {
                maps_cache.insert(map_key, maps);
            }
            Ok(chunks)
        }
    })
    .await?;
    Ok(segment_resource(app, r, track.kind, number, variant, version, bytes))
}

fn segment_key(a: &Asset, r: &Rendition, number: usize, variant: Variant, version: Version) -> SegmentKey {
    SegmentKey { file: r.source.fingerprint, asset: a.id.clone(), rendition: r.id.clone(), number, variant, version }
}

/// Builds a protected output (bounded by the encryption permits), through
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
        // Built on this worker thread: the build is a few hundred microseconds of pread (page
        // cache) and AES, and handing it to the blocking pool cost more in thread wake-ups
        // than it saved (benches/profile.sh: futex wake/wait ≈ 7 % of the uncached paths).
        // The permits above bound how many workers can be busy encrypting at once.
        let out = build();
        if let Ok(b) = &out {
            counters.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let len: usize = b.iter().map(Bytes::len).sum();
            counters.1.fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
        }
        out
    };
    match &app.segments {
        None => work.await,
        Some(cache) => {
            let m = &app.metrics.requests;
            let counter = if cache.contains_key(&key) { &m.cache_hits } else { &m.cache_misses };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            cache.try_get_with(key, work).await.map_err(|e: Arc<ServeError>| clone_error(&e))
        }
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
    version: Version,
    chunks: Vec<Bytes>,
) -> Resource {
    // Segment bytes are a pure function of the name (its version covers the files' content, the
    // plan, the keys and the signalling): hash the name, not the bytes (a mapping we must not
    // read). Content-derived, so every node gives the same ETag.
    let tag = fnv1a(&[
        FORMAT_VERSION,
        &version.0.to_be_bytes(),
        r.id.as_bytes(),
        &(number as u64).to_be_bytes(),
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
