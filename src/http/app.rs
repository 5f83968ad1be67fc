//! The handler's shared state: settings, the current keys and policies, the caches and the
//! counters behind `/metrics`.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::segment::SegmentKey;
use crate::drm::{Drm, Variant};
use crate::packaging::Protection;
use crate::storage::{AssetState, Store};

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

/// Byte budget of the subsample-map cache: at ~2 KiB per 2-second video segment, ~9 hours of one
/// rendition, or the hot part of a large catalog; a miss only costs the slice-header parse.
pub const SUBSAMPLE_MAP_BYTES: u64 = 32 << 20;

/// Shared state of the request handler.
pub struct App {
    /// The asset store.
    pub store: Arc<Store>,
    /// Settings.
    pub settings: HttpSettings,
    drm: RwLock<(Arc<Drm>, u64)>,
    /// Protected outputs (byte-bounded, single flight); `None` when the budget is 0.
    pub(super) segments: Option<moka::future::Cache<SegmentKey, Vec<Bytes>>>,
    /// Built manifests by (asset generation, name, drm generation).
    pub(super) manifests: moka::sync::Cache<(u64, String, u64), (Bytes, String)>,
    /// Encryptions running at once.
    pub(super) encrypt_permits: Arc<Semaphore>,
    /// Subsample maps of media segments (`protect::SegmentMaps`), byte-bounded
    /// ([`SUBSAMPLE_MAP_BYTES`]); kept even when the protected-segment cache is off, since they
    /// do not depend on keys and are ~1 % of the segment's size.
    pub(super) subsample_maps: moka::sync::Cache<super::segment::MapKey, crate::packaging::protect::SegmentMaps>,
    /// Protection plans by (asset generation, drm generation, variant): keys, checks, version.
    pub(super) plans: moka::sync::Cache<(u64, u64, Variant), Arc<Protection>>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Set once the first scan of the asset folder is done (`/readyz`).
    pub ready: std::sync::atomic::AtomicBool,
    /// Set when the shutdown drain starts (`/readyz` answers 503 again).
    pub draining: std::sync::atomic::AtomicBool,
    /// Device licensing, when configured (set once at start).
    devices: std::sync::OnceLock<Arc<crate::license::device::Devices>>,
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
    /// Response-time histograms, bytes per route kind, cache hits, license decisions.
    pub requests: super::metrics::RequestMetrics,
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
        let subsample_maps = moka::sync::Cache::builder()
            .weigher(|_k: &super::segment::MapKey, v: &crate::packaging::protect::SegmentMaps| {
                crate::packaging::protect::maps_weight(v)
            })
            .max_capacity(SUBSAMPLE_MAP_BYTES)
            .build();
        let encrypt_permits = Arc::new(Semaphore::new(settings.max_concurrent_encryptions.max(1)));
        start_jwks(&drm);
        App {
            store,
            settings,
            drm: RwLock::new((drm, 1)),
            segments,
            manifests,
            subsample_maps,
            encrypt_permits,
            plans: moka::sync::Cache::new(16_384),
            metrics: Metrics::default(),
            ready: std::sync::atomic::AtomicBool::new(false),
            draining: std::sync::atomic::AtomicBool::new(false),
            devices: std::sync::OnceLock::new(),
        }
    }

    /// Turns device licensing on (once; a second call is ignored).
    pub fn set_devices(&self, devices: Arc<crate::license::device::Devices>) {
        let _ = self.devices.set(devices);
    }

    /// Device licensing, if configured.
    pub fn devices(&self) -> Option<&Arc<crate::license::device::Devices>> {
        self.devices.get()
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
        let ix = &self.store.stats;
        line(
            "origin_index_bytes",
            "Heap bytes held by the indexes of the files being served.",
            "gauge",
            self.store.index_bytes().to_string(),
        );
        line("origin_index_files_total", "Files indexed since start.", "counter", ix.files.load(Relaxed).to_string());
        line(
            "origin_index_seconds_total",
            "Time spent indexing files since start.",
            "counter",
            (ix.nanos.load(Relaxed) as f64 / 1e9).to_string(),
        );
        line(
            "origin_index_seconds_max",
            "Longest time one file took to index since start.",
            "gauge",
            (ix.max_nanos.load(Relaxed) as f64 / 1e9).to_string(),
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
        if let Some(b) = self.store.remote() {
            let t = &b.traffic;
            for (name, help, v) in [
                ("origin_storage_gets_total", "Ranged GETs sent to object storage.", &t.gets),
                ("origin_storage_data_bytes_total", "Sample-data bytes fetched from object storage.", &t.data_bytes),
                (
                    "origin_storage_index_bytes_total",
                    "Bytes fetched from object storage to index objects.",
                    &t.index_bytes,
                ),
                ("origin_storage_errors_total", "Object-storage reads that failed or timed out.", &t.errors),
                ("origin_storage_chunk_hits_total", "Chunk-cache hits.", &t.chunk_hits),
                ("origin_storage_chunk_misses_total", "Chunks fetched into the chunk cache.", &t.chunk_misses),
            ] {
                line(name, help, "counter", v.load(Relaxed).to_string());
            }
        }
        let (drm, _) = self.drm();
        if let Some(j) = drm.verifier.as_ref().and_then(|v| v.jwks.as_ref()) {
            line("origin_jwks_keys", "Signing keys of the last good JWKS.", "gauge", j.keys().len().to_string());
            line("origin_jwks_refresh_failures_total", "Failed JWKS refreshes.", "counter", j.failures().to_string());
        }
        if let Some(c) = drm.verifier.as_ref().and_then(|v| v.cache.as_ref()) {
            let hits = "License and key requests whose token was found verified in the cache (since the configuration was loaded).";
            line("origin_token_cache_hits_total", hits, "counter", c.hits().to_string());
            line("origin_token_cache_entries", "Verified tokens remembered.", "gauge", c.len().to_string());
        }
        if let Some(d) = self.devices() {
            x.push_str(&d.metrics_text());
        }
        x.push_str("# HELP origin_responses_total Responses by status class.\n# TYPE origin_responses_total counter\n");
        for (i, c) in m.responses.iter().enumerate().skip(1) {
            x.push_str(&format!("origin_responses_total{{class=\"{i}xx\"}} {}\n", c.load(Relaxed)));
        }
        x.push_str("# HELP origin_assets Assets in the catalog, by state.\n# TYPE origin_assets gauge\n");
        x.push_str(&format!("origin_assets{{state=\"ready\"}} {ready}\n"));
        x.push_str(&format!("origin_assets{{state=\"broken\"}} {}\n", lib.assets.len().saturating_sub(ready)));
        m.requests.render(&mut x);
        x
    }

    /// Current keys and policies, with their generation. The generation also moves when a
    /// chained policy's set of live root-key versions changes (a rollover), so plans and
    /// manifests holding the previous leaf stop matching.
    pub fn drm(&self) -> (Arc<Drm>, u64) {
        let (d, g) = match self.drm.read() {
            Ok(d) => d.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let epoch = d.root_epoch(crate::license::device::unix_now());
        (d, g.wrapping_add(epoch << 32))
    }

    /// Installs new keys and policies (a validated configuration). Manifests and protection
    /// plans made with the previous ones stop matching (their cache keys carry the generation);
    /// cached segments are keyed by their name's version, which covers every input of their
    /// bytes, so a reload that changes nothing for an asset keeps its segments warm.
    pub fn set_drm(&self, drm: Arc<Drm>) {
        let mut g = match self.drm.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let next = g.1.saturating_add(1);
        start_jwks(&drm);
        *g = (drm, next);
        self.manifests.invalidate_all();
        self.plans.invalidate_all();
    }
}

/// Starts the JWKS refresher of a configuration (idempotent; a source kept across a reload keeps
/// its one refresher).
fn start_jwks(drm: &Drm) {
    if let Some(j) = drm.verifier.as_ref().and_then(|v| v.jwks.as_ref()) {
        j.start();
    }
}
