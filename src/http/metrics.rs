//! Request metrics that operators chart and alert on: response-time histograms per route kind
//! and variant, bytes out per kind, protected-segment cache hits and misses, and license
//! decisions by reason. Everything a request touches is a fixed array of atomics (no allocation,
//! no lock on the segment path); only license decisions, whose reasons are a small set of
//! static strings, take a short lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use crate::drm::Variant;

/// What a request asked for, as the histograms label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// MPD or HLS playlist.
    Manifest,
    /// Init segment.
    Init,
    /// Media segment.
    Segment,
    /// `POST /.drm/clearkey`.
    License,
    /// `/.drm/key/{kid}`.
    Key,
    /// The demo page and its scripts.
    Player,
    /// Device licensing: `/.drm/device/*`, `/.drm/domain/*`, `/.drm/license`, `/.drm/keys.json`.
    Device,
    /// Health, readiness, metrics, preflights, unroutable paths.
    #[default]
    Other,
}

const KINDS: [(Kind, &str); 8] = [
    (Kind::Manifest, "manifest"),
    (Kind::Init, "init"),
    (Kind::Segment, "segment"),
    (Kind::License, "license"),
    (Kind::Key, "key"),
    (Kind::Player, "player"),
    (Kind::Device, "device"),
    (Kind::Other, "other"),
];
const VARIANTS: [&str; 5] = ["clear", "cenc", "cbcs", "aes128", "none"];

fn variant_index(v: Option<Variant>) -> usize {
    match v {
        Some(Variant::Clear) => 0,
        Some(Variant::Cenc) => 1,
        Some(Variant::Cbcs) => 2,
        Some(Variant::Aes128) => 3,
        None => 4,
    }
}

/// Upper bounds of the response-time buckets, in microseconds (0.5 ms … 10 s).
const BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last one is +Inf.
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, us: u64) {
        let i = BOUNDS_US.iter().position(|b| us <= *b).unwrap_or(BOUNDS_US.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).fold(0, u64::saturating_add)
    }
}

/// The request metrics.
#[derive(Default)]
pub struct RequestMetrics {
    latency: [[Histogram; VARIANTS.len()]; KINDS.len()],
    bytes: [AtomicU64; KINDS.len()],
    /// Protected-segment cache lookups answered from the cache.
    pub cache_hits: AtomicU64,
    /// Protected-segment cache lookups that had to build (or wait for) the output.
    pub cache_misses: AtomicU64,
    decisions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

/// A license or key decision, attached to the response by the license room so the dispatcher
/// can count it (`granted`, or the refusal's reason).
#[derive(Clone, Copy, Debug)]
pub struct Decision {
    /// `granted` or `denied`.
    pub outcome: &'static str,
    /// Machine-readable reason (`ok`, `missing_token`, `expired`, …).
    pub reason: &'static str,
}

impl RequestMetrics {
    /// Records one answered request.
    pub fn observe(&self, kind: Kind, variant: Option<Variant>, elapsed: Duration, body_bytes: u64) {
        let k = KINDS.iter().position(|(x, _)| *x == kind).unwrap_or(KINDS.len().saturating_sub(1));
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(h) = self.latency.get(k).and_then(|row| row.get(variant_index(variant))) {
            h.observe(us);
        }
        if let Some(b) = self.bytes.get(k) {
            b.fetch_add(body_bytes, Relaxed);
        }
    }

    /// Records a license or key decision.
    pub fn decision(&self, d: Decision) {
        let mut m = match self.decisions.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let c = m.entry((d.outcome, d.reason)).or_insert(0);
        *c = c.saturating_add(1);
    }

    /// Appends the Prometheus text of these metrics.
    pub fn render(&self, x: &mut String) {
        let _ = writeln!(x, "# HELP origin_request_duration_seconds Time to answer a request (until the response head), by route kind and variant.");
        let _ = writeln!(x, "# TYPE origin_request_duration_seconds histogram");
        for (row, (_, kind)) in self.latency.iter().zip(KINDS.iter()) {
            for (h, variant) in row.iter().zip(VARIANTS.iter()) {
                let count = h.count();
                if count == 0 {
                    continue;
                }
                let mut cumulative = 0u64;
                for (b, bound) in h.buckets.iter().zip(BOUNDS_US.iter()) {
                    cumulative = cumulative.saturating_add(b.load(Relaxed));
                    let le = *bound as f64 / 1e6;
                    let _ = writeln!(
                        x,
                        "origin_request_duration_seconds_bucket{{kind=\"{kind}\",variant=\"{variant}\",le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    x,
                    "origin_request_duration_seconds_bucket{{kind=\"{kind}\",variant=\"{variant}\",le=\"+Inf\"}} {count}"
                );
                let sum = h.sum_us.load(Relaxed) as f64 / 1e6;
                let _ =
                    writeln!(x, "origin_request_duration_seconds_sum{{kind=\"{kind}\",variant=\"{variant}\"}} {sum}");
                let _ = writeln!(
                    x,
                    "origin_request_duration_seconds_count{{kind=\"{kind}\",variant=\"{variant}\"}} {count}"
                );
            }
        }
        let _ = writeln!(x, "# HELP origin_response_bytes_total Bytes of response bodies sent, by route kind.");
        let _ = writeln!(x, "# TYPE origin_response_bytes_total counter");
        for (b, (_, kind)) in self.bytes.iter().zip(KINDS.iter()) {
            let _ = writeln!(x, "origin_response_bytes_total{{kind=\"{kind}\"}} {}", b.load(Relaxed));
        }
        let (hits, misses) = (self.cache_hits.load(Relaxed), self.cache_misses.load(Relaxed));
        let _ = writeln!(x, "# HELP origin_cache_requests_total Protected-segment cache lookups, by result (hit ratio = hit / (hit + miss)).");
        let _ = writeln!(x, "# TYPE origin_cache_requests_total counter");
        let _ = writeln!(x, "origin_cache_requests_total{{result=\"hit\"}} {hits}");
        let _ = writeln!(x, "origin_cache_requests_total{{result=\"miss\"}} {misses}");
        let total = hits.saturating_add(misses);
        let ratio = if total == 0 { 0.0 } else { hits as f64 / total as f64 };
        let _ = writeln!(x, "# HELP origin_cache_hit_ratio Share of protected-segment cache lookups answered from the cache since start.");
        let _ = writeln!(x, "# TYPE origin_cache_hit_ratio gauge");
        let _ = writeln!(x, "origin_cache_hit_ratio {ratio}");
        let _ = writeln!(x, "# HELP origin_license_decisions_total License and key requests, by outcome and reason.");
        let _ = writeln!(x, "# TYPE origin_license_decisions_total counter");
        let m = match self.decisions.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for ((outcome, reason), n) in m {
            let _ = writeln!(x, "origin_license_decisions_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} {n}");
        }
    }
}
