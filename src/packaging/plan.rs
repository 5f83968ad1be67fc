//! Indexed files → an [`Asset`]: its renditions and where each one's segments start and end.
//!
//! Cutting rule: the reference track (the first video track, else the first track) is cut at the
//! first *candidate* sample at or after each multiple of the target duration. Candidates are sync
//! samples; for fragmented input, sync samples that begin an input fragment. Every other track is
//! cut at its first candidate at or after the reference's cut instants, so renditions encoded with
//! the same GOP structure get identical boundaries and audio segments line up with video ones.

use std::sync::Arc;

use crate::index::time;
use crate::index::{FileIndex, TrackIndex, TrackKind};
use crate::mp4::Sample;
use crate::storage::source::Source;

/// One source file of an asset, mapped and indexed.
#[derive(Debug)]
pub struct SourceFile {
    /// Path relative to the asset folder, for logs.
    pub name: String,
    /// Rendition id prefix (the file stem).
    pub stem: String,
    /// Its bytes (a mapped local file, …).
    pub data: Source,
    /// Its index.
    pub index: FileIndex,
    /// Modification time (Last-Modified).
    pub modified: std::time::SystemTime,
    /// A value that changes whenever the file does (ETags).
    pub fingerprint: u64,
}

/// One segment of a rendition: samples `first..end` of its track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First sample index.
    pub first: usize,
    /// One past the last sample index.
    pub end: usize,
    /// Decode time of the first sample (`tfdt`).
    pub dts: u64,
    /// Earliest presentation time, in the track timescale, before the edit list.
    pub pts: u64,
    /// Media duration up to the next segment's earliest presentation time.
    pub duration: u64,
    /// Start on the presentation timeline: `pts` minus the edit list's media time (clamped at 0).
    /// Players apply the init segment's edit list, so this (not `pts`) is `S@t`.
    pub start: u64,
    /// The part of `duration` at or after the presentation start: `S@d`, `#EXTINF` and the
    /// total duration. Encoder priming before the presentation start is never shown.
    pub presented: u64,
    /// Bytes of sample data.
    pub bytes: u64,
}

/// A track served as one DASH Representation / HLS rendition.
#[derive(Debug)]
pub struct Rendition {
    /// URL id: `{file stem}_{track id}`.
    pub id: String,
    /// The file it comes from.
    pub source: Arc<SourceFile>,
    /// Index of the track in `source.index.tracks`.
    pub track: usize,
    /// Its segments.
    pub segments: Vec<Segment>,
    /// Peak segment bitrate (bits/s).
    pub peak_bandwidth: u64,
    /// Average bitrate (bits/s).
    pub avg_bandwidth: u64,
    /// Content-derived digest of what this rendition's segments are made of: the asset and
    /// rendition ids, the file's digest ([`crate::index::FileIndex::digest`]), the track and
    /// the segment boundaries. The same files and settings give the same digest on every node.
    pub digest: u64,
    /// Version of its clear segment names ([`super::version::clear`] of the digest).
    pub clear_version: super::version::Version,
}

impl Rendition {
    /// The track.
    pub fn track(&self) -> Option<&TrackIndex> {
        self.source.index.tracks.get(self.track)
    }

    /// Samples of segment `n` (1-based), decoded from the compact table.
    pub fn segment(&self, n: usize) -> Option<(&Segment, Vec<Sample>)> {
        let seg = self.segment_entry(n)?;
        let samples = self.track()?.samples.range(seg.first, seg.end)?;
        Some((seg, samples))
    }

    /// Media segment `n` (1-based) without its samples: what a cached protected segment needs.
    pub fn segment_entry(&self, n: usize) -> Option<&Segment> {
        self.segments.get(n.checked_sub(1)?)
    }
}

/// Everything served for one asset id.
#[derive(Debug)]
pub struct Asset {
    /// Asset id (URL path).
    pub id: String,
    /// Renditions: video first, then audio, then text; file order within a kind.
    pub renditions: Vec<Rendition>,
    /// Presentation duration in seconds.
    pub duration: f64,
    /// Problems worth a warning (misaligned renditions, skipped tracks).
    pub warnings: Vec<String>,
    /// Latest modification time among its files.
    pub modified: std::time::SystemTime,
    /// Unique per built asset (process-wide counter): keys the manifest cache, so a rebuilt
    /// asset never reuses a manifest of its previous files.
    pub generation: u64,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Asset {
    /// Rendition by URL id.
    pub fn rendition(&self, id: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.id == id)
    }
}

/// Builds the asset `id` from its files. `target` is the segment duration in seconds.
pub fn plan(id: &str, files: Vec<Arc<SourceFile>>, target: f64) -> Asset {
    let id_of_asset = id;
    let mut warnings = Vec::new();
    let mut tracks: Vec<(Arc<SourceFile>, usize)> = Vec::new();
    for f in &files {
        for s in &f.index.skipped {
            warnings.push(format!("{}: {s}", f.name));
        }
        for i in 0..f.index.tracks.len() {
            tracks.push((f.clone(), i));
        }
    }
    tracks.sort_by_key(|(f, i)| f.index.tracks.get(*i).map(|t| t.kind));
    let modified = files.iter().map(|f| f.modified).max().unwrap_or(std::time::UNIX_EPOCH);

    // Reference cut instants, in seconds, from the first track (video sorts first).
    let mut cuts: Vec<f64> = Vec::new();
    if let Some(t) = tracks.first().and_then(|(f, i)| f.index.tracks.get(*i)) {
        let mut k = 1.0f64;
        for (idx, s) in t.samples.iter().enumerate() {
            let at = time::seconds(s.dts, t.timescale);
            if idx > 0 && is_candidate(t, idx, &s) && at + 1e-9 >= k * target {
                cuts.push(at);
                while k * target <= at + 1e-9 {
                    k += 1.0;
                }
            }
        }
    }

    let mut renditions = Vec::new();
    let mut reference_video: Option<(String, Vec<f64>)> = None;
    for (f, i) in tracks {
        let Some(t) = f.index.tracks.get(i) else {
            continue;
        };
        let segments = cut(t, &cuts);
        let starts: Vec<f64> = segments.iter().map(|s| time::seconds(s.dts, t.timescale)).collect();
        let id = format!("{}_{}", f.stem, t.id);
        if t.kind == TrackKind::Video {
            match &reference_video {
                None => reference_video = Some((id.clone(), starts)),
                Some((ref_id, ref_starts)) => {
                    let aligned = ref_starts.len() == starts.len()
                        && ref_starts.iter().zip(&starts).all(|(a, b)| (a - b).abs() < 1e-3);
                    if !aligned {
                        warnings.push(format!(
                            "segment boundaries of {id} do not align with {ref_id} ({} vs {} segments): \
                             players may stall when switching between them",
                            starts.len(),
                            ref_starts.len()
                        ));
                    }
                }
            }
        }
        let total_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
        let total_secs: f64 = segments.iter().map(|s| time::seconds(s.presented, t.timescale)).sum();
        let peak = segments.iter().map(|s| bitrate(s.bytes, time::seconds(s.duration, t.timescale))).max().unwrap_or(0);
        let digest = digest(id_of_asset, &id, f.index.digest, i, &segments);
        renditions.push(Rendition {
            id,
            track: i,
            segments,
            peak_bandwidth: peak,
            avg_bandwidth: bitrate(total_bytes, total_secs),
            source: f.clone(),
            digest,
            clear_version: super::version::clear(digest),
        });
    }
    let duration = renditions
        .iter()
        .filter_map(|r| {
            let t = r.track()?;
            Some(r.segments.iter().map(|s| time::seconds(s.presented, t.timescale)).sum::<f64>())
        })
        .fold(0.0, f64::max);
    let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Asset { id: id.to_owned(), renditions, duration, warnings, modified, generation }
}

/// See [`Rendition::digest`].
fn digest(asset: &str, rendition: &str, file: u64, track: usize, segments: &[Segment]) -> u64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for id in [asset, rendition] {
        h.update((id.len() as u64).to_be_bytes());
        h.update(id.as_bytes());
    }
    h.update(file.to_be_bytes());
    h.update((track as u64).to_be_bytes());
    h.update((segments.len() as u64).to_be_bytes());
    for s in segments {
        h.update((s.first as u64).to_be_bytes());
        h.update((s.end as u64).to_be_bytes());
    }
    let sum = h.finalize();
    sum.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes)
}

fn bitrate(bytes: u64, secs: f64) -> u64 {
    if secs <= 0.0 {
        return 0;
    }
    (bytes as f64 * 8.0 / secs).ceil() as u64
}

fn is_candidate(t: &TrackIndex, idx: usize, s: &Sample) -> bool {
    s.sync && (t.fragment_starts.is_empty() || t.fragment_starts.binary_search(&idx).is_ok())
}

/// Cuts a track at its first candidate at or after each reference instant.
fn cut(t: &TrackIndex, cuts: &[f64]) -> Vec<Segment> {
    let mut starts = vec![0usize];
    let mut owed = false;
    let mut pending = cuts.iter().peekable();
    for (idx, s) in t.samples.iter().enumerate().skip(1) {
        let at = time::seconds(s.dts, t.timescale);
        // Reference instants passed since the last cut are owed until a candidate comes.
        while pending.next_if(|&&c| at + 1e-9 >= c).is_some() {
            owed = true;
        }
        if owed && is_candidate(t, idx, &s) {
            starts.push(idx);
            owed = false;
        }
    }
    let pts_of = |s: &Sample| s.dts.saturating_add_signed(i64::from(s.cts));
    let mut segs: Vec<Segment> = Vec::with_capacity(starts.len());
    for (k, &first) in starts.iter().enumerate() {
        let end = starts.get(k.saturating_add(1)).copied().unwrap_or(t.samples.len());
        let (mut pts, mut dts, mut bytes) = (None::<u64>, None, 0u64);
        for s in t.samples.iter_from(first).take(end.saturating_sub(first)) {
            pts = Some(pts.map_or(pts_of(&s), |p| p.min(pts_of(&s))));
            dts.get_or_insert(s.dts);
            bytes = bytes.saturating_add(u64::from(s.size));
        }
        // (An empty range cannot occur: cut instants are strictly increasing sample indices.)
        let dts = dts.unwrap_or(0);
        let pts = pts.unwrap_or(0);
        segs.push(Segment { first, end, dts, pts, duration: 0, start: 0, presented: 0, bytes });
    }
    // Durations: from one segment's earliest presentation to the next's; the last runs to the
    // end of the last sample's presentation.
    let end_pts = t.samples.iter().map(|s| pts_of(&s).saturating_add(u64::from(s.duration))).max().unwrap_or(0);
    let next_pts: Vec<u64> = segs.iter().skip(1).map(|s| s.pts).chain(std::iter::once(end_pts)).collect();
    let start = u64::try_from(t.edit_media_time).unwrap_or(0);
    for (s, np) in segs.iter_mut().zip(next_pts) {
        s.duration = np.saturating_sub(s.pts);
        s.presented = np.saturating_sub(s.pts.max(start)).min(s.duration);
        s.start = s.pts.saturating_sub(start);
    }
    segs
}
