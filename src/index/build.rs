//! Top-level scan of a file (§4.2: a sequence of boxes) and the per-track sample lists.

use crate::mp4::codes::*;
use crate::mp4::moov::{parse_moov, Trex};
use crate::mp4::reader::parse_header;
use crate::mp4::sample_entry::SampleEntry;
use crate::mp4::{self, FourCC};

use super::table::SampleTable;

/// Largest `moov` we read (progressive files with hours of samples stay far below).
const MAX_MOOV: u64 = 256 << 20;
/// Largest `moof` we read.
const MAX_MOOF: u64 = 32 << 20;

/// Positioned reads from a file (or anything that holds bytes).
pub trait ReadAt {
    /// Fills `buf` from `offset`; a short file is an error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;

    /// Appends `len` bytes from `offset` to `buf`; on error `buf` is as it was. Sources that can
    /// read into uninitialised capacity override it (the segment path reads whole segments this
    /// way, so zero-filling first would cost a pass over every byte).
    fn read_append_at(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> std::io::Result<()> {
        let start = buf.len();
        let end = start.checked_add(len).ok_or(std::io::ErrorKind::OutOfMemory)?;
        buf.resize(end, 0);
        let filled = match buf.get_mut(start..end) {
            Some(dst) => self.read_exact_at(dst, offset),
            None => Err(std::io::ErrorKind::OutOfMemory.into()),
        };
        if filled.is_err() {
            buf.truncate(start);
        }
        filled
    }

    /// Appends the bytes of `runs` (`(offset, len)` in file order, all inside the `span_len`
    /// bytes at `span_offset`) to `buf`, reading the span once and dropping what lies between
    /// the runs (one `preadv` with the gaps into scratch memory measured no better than the
    /// move, benches/profile.sh, so nothing overrides this). On error `buf` is as it was.
    fn read_runs_append_at(
        &self,
        buf: &mut Vec<u8>,
        span_offset: u64,
        span_len: usize,
        runs: &[(u64, u64)],
    ) -> std::io::Result<()> {
        read_span_then_compact(self, buf, span_offset, span_len, runs)
    }
}

/// [`ReadAt::read_runs_append_at`] by one read of the whole span, then each run moved down over
/// the gap before it.
pub fn read_span_then_compact<R: ReadAt + ?Sized>(
    file: &R,
    buf: &mut Vec<u8>,
    span_offset: u64,
    span_len: usize,
    runs: &[(u64, u64)],
) -> std::io::Result<()> {
    let base = buf.len();
    file.read_append_at(buf, span_len, span_offset)?;
    let bad = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let mut write = base;
    for &(offset, len) in runs {
        let at = offset.checked_sub(span_offset).and_then(|d| usize::try_from(d).ok()).ok_or_else(bad)?;
        let len = usize::try_from(len).map_err(|_| bad())?;
        let from = base.checked_add(at).ok_or_else(bad)?;
        let to = from.checked_add(len).filter(|&t| t <= buf.len() && from >= write);
        let Some(to) = to else {
            buf.truncate(base);
            return Err(bad());
        };
        if from != write {
            buf.copy_within(from..to, write);
        }
        write += len;
    }
    buf.truncate(write);
    Ok(())
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(buf.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Why a file could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading failed (including a file that shrank while we read it).
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not valid MP4 (the error names the box).
    #[error("{0}")]
    Mp4(#[from] mp4::Error),
    /// A top-level box extends past the end of the file.
    #[error("'{kind}' at offset {offset} needs {size} bytes but the file has {file_len}: truncated file")]
    TruncatedFile {
        /// Box type.
        kind: FourCC,
        /// Its offset.
        offset: u64,
        /// Its declared size.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// A box is larger than we are willing to hold in memory.
    #[error("'{0}' of {1} bytes is too large")]
    TooLarge(FourCC, u64),
    /// No `moov` box: not an MP4 movie (or not finished being written).
    #[error("no 'moov' box (not an MP4 file, or still being written)")]
    NoMoov,
    /// No track we can serve.
    #[error("no playable track ({0})")]
    NoTracks(String),
    /// A track with more samples than the index counts.
    #[error("track {0} has more than {max} samples", max = u32::MAX - 1)]
    TooManySamples(u32),
}

/// What kind of media a track carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrackKind {
    /// `vide`
    Video,
    /// `soun`
    Audio,
    /// `text`, `subt`, `sbtl`
    Text,
}

/// One servable track of a file.
#[derive(Debug)]
pub struct TrackIndex {
    /// `track_ID`.
    pub id: u32,
    /// Media kind.
    pub kind: TrackKind,
    /// Media timescale.
    pub timescale: u32,
    /// ISO 639-2/T language (`und` if unset).
    pub language: String,
    /// Codec facts.
    pub entry: SampleEntry,
    /// Media time where presentation starts (edit list).
    pub edit_media_time: i64,
    /// Samples in decode order, with absolute file offsets (held compactly: see `table`).
    pub samples: SampleTable,
    /// Indices into `samples` where an input fragment starts (empty for progressive input).
    pub fragment_starts: Vec<usize>,
    /// Boxes an init segment copies: `tkhd`, `edts`, `mdhd`, `hdlr`, media header, `stsd`.
    pub init_boxes: InitBoxes,
}

/// Owned copies of the boxes an init segment reuses (see `mp4::moov::TrackBoxes`).
#[derive(Debug, Clone)]
pub struct InitBoxes {
    /// `tkhd`
    pub tkhd: Vec<u8>,
    /// `edts`
    pub edts: Option<Vec<u8>>,
    /// `mdhd`
    pub mdhd: Vec<u8>,
    /// `hdlr`
    pub hdlr: Vec<u8>,
    /// `vmhd`/`smhd`/`sthd`/`nmhd`
    pub media_header: Option<Vec<u8>>,
    /// `stsd`
    pub stsd: Vec<u8>,
}

/// Every servable track of one file.
#[derive(Debug)]
pub struct FileIndex {
    /// The file's `mvhd` (its timescale governs the edit lists).
    pub mvhd: Vec<u8>,
    /// True for fragmented input.
    pub fragmented: bool,
    /// Tracks in file order.
    pub tracks: Vec<TrackIndex>,
    /// Tracks left out and why.
    pub skipped: Vec<String>,
    /// Content-derived identity of the file: SHA-256 (first 8 bytes) of its length, its
    /// top-level box layout and the `moov` and `moof` boxes, which hold every sample's place,
    /// size and timing. Two identical files get the same value on any node, whatever their path,
    /// inode or mtime, so ETags and segment URL versions built on it agree across nodes.
    /// (Sample payloads are not hashed: a file rewritten with the very same layout and sample
    /// sizes but other payload bytes keeps its digest; replace files with new names or layouts.)
    pub digest: u64,
}

impl TrackIndex {
    /// Heap bytes held by this track's index (sample table, fragment starts, init boxes).
    pub fn heap_bytes(&self) -> usize {
        let b = &self.init_boxes;
        let boxes =
            [Some(&b.tkhd), b.edts.as_ref(), Some(&b.mdhd), Some(&b.hdlr), b.media_header.as_ref(), Some(&b.stsd)]
                .into_iter()
                .flatten()
                .map(Vec::capacity)
                .sum::<usize>();
        self.samples
            .heap_bytes()
            .saturating_add(self.fragment_starts.capacity().saturating_mul(std::mem::size_of::<usize>()))
            .saturating_add(boxes)
            .saturating_add(self.language.capacity())
    }
}

impl FileIndex {
    /// Heap bytes held by the index (what a file costs in memory while it is served, apart from
    /// the codec facts in each sample entry, which are a few hundred bytes).
    pub fn heap_bytes(&self) -> usize {
        let tracks: usize = self.tracks.iter().map(TrackIndex::heap_bytes).sum();
        tracks
            .saturating_add(self.tracks.capacity().saturating_mul(std::mem::size_of::<TrackIndex>()))
            .saturating_add(self.mvhd.capacity())
            .saturating_add(self.skipped.iter().map(String::capacity).sum::<usize>())
    }

    /// Approximate heap size, for the cache's weigher.
    pub fn weight(&self) -> usize {
        self.heap_bytes().saturating_add(self.tracks.len().saturating_mul(4096))
    }
}

/// Indexes the file behind `src`, `len` bytes long.
pub fn build<R: ReadAt + ?Sized>(src: &R, len: u64) -> Result<FileIndex, IndexError> {
    use sha2::Digest;
    let mut moov: Option<Vec<u8>> = None;
    let mut moofs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut hash = sha2::Sha256::new();
    hash.update(b"drm-origin-index-1");
    hash.update(len.to_be_bytes());
    let mut pos = 0u64;
    while pos < len {
        let avail = len.saturating_sub(pos).min(16);
        let mut head = vec![0u8; usize::try_from(avail).unwrap_or(16)];
        src.read_exact_at(&mut head, pos)?;
        let h = parse_header(&head, FourCC(*b"file"))?;
        let size = h.size.unwrap_or(len.saturating_sub(pos));
        let end = pos.checked_add(size).ok_or(IndexError::TooLarge(h.kind, size))?;
        if end > len {
            return Err(IndexError::TruncatedFile { kind: h.kind, offset: pos, size, file_len: len });
        }
        let body_at = pos.saturating_add(h.header_len);
        let body_len = size.saturating_sub(h.header_len);
        hash.update(h.kind.0);
        hash.update(pos.to_be_bytes());
        hash.update(size.to_be_bytes());
        if h.kind == MOOV || h.kind == MOOF {
            let limit = if h.kind == MOOV { MAX_MOOV } else { MAX_MOOF };
            if body_len > limit {
                return Err(IndexError::TooLarge(h.kind, size));
            }
            let mut body = vec![0u8; usize::try_from(body_len).map_err(|_| IndexError::TooLarge(h.kind, size))?];
            src.read_exact_at(&mut body, body_at)?;
            hash.update(&body);
            if h.kind == MOOV {
                moov = Some(body);
            } else {
                moofs.push((pos, body));
            }
        }
        if size == 0 {
            break;
        }
        pos = end;
    }
    let moov = moov.ok_or(IndexError::NoMoov)?;
    let movie = parse_moov(&moov, len)?;
    let trexes: Vec<(u32, Trex)> = movie.tracks.iter().map(|t| (t.id, t.trex)).collect();
    let mut tracks: Vec<TrackIndex> = Vec::new();
    let mut skipped = movie.skipped.clone();
    for t in movie.tracks {
        let kind = match t.handler {
            h if h == FourCC(*b"vide") => TrackKind::Video,
            h if h == FourCC(*b"soun") => TrackKind::Audio,
            h if h == FourCC(*b"text") || h == FourCC(*b"subt") || h == FourCC(*b"sbtl") => TrackKind::Text,
            other => {
                skipped.push(format!("track {} has handler '{other}'", t.id));
                continue;
            }
        };
        let samples = SampleTable::from_samples(&t.samples).map_err(|_| IndexError::TooManySamples(t.id))?;
        tracks.push(TrackIndex {
            id: t.id,
            kind,
            timescale: t.timescale,
            language: t.language,
            entry: t.entry,
            edit_media_time: t.edit_media_time,
            samples,
            fragment_starts: Vec::new(),
            init_boxes: InitBoxes {
                tkhd: t.raw.tkhd.to_vec(),
                edts: t.raw.edts.map(<[u8]>::to_vec),
                mdhd: t.raw.mdhd.to_vec(),
                hdlr: t.raw.hdlr.to_vec(),
                media_header: t.raw.media_header.map(<[u8]>::to_vec),
                stsd: t.raw.stsd.to_vec(),
            },
        });
    }
    if movie.fragmented {
        let trex = |id: u32| trexes.iter().find(|(t, _)| *t == id).map(|(_, x)| *x);
        for (offset, body) in &moofs {
            for run in mp4::moof::parse_moof(body, *offset, len, trex)? {
                let Some(track) = tracks.iter_mut().find(|t| t.id == run.track_id) else {
                    continue;
                };
                if run.samples.is_empty() {
                    continue;
                }
                let next = track.samples.last().map_or(0, |s| s.dts.saturating_add(u64::from(s.duration)));
                let base = run.base_decode_time.unwrap_or(next);
                track.fragment_starts.push(track.samples.len());
                for s in &run.samples {
                    let s = mp4::Sample { dts: s.dts.saturating_add(base), ..*s };
                    track.samples.push(s).map_err(|_| IndexError::TooManySamples(track.id))?;
                }
            }
        }
        for t in &mut tracks {
            t.samples.finish();
            t.fragment_starts.shrink_to_fit();
        }
    }
    let before = tracks.len();
    tracks.retain(|t| !t.samples.is_empty());
    if tracks.len() < before {
        skipped.push(format!("{} track(s) without samples", before.saturating_sub(tracks.len())));
    }
    if tracks.is_empty() {
        return Err(IndexError::NoTracks(if skipped.is_empty() { "no samples".into() } else { skipped.join("; ") }));
    }
    let sum = hash.finalize();
    let digest = sum.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
    Ok(FileIndex { mvhd: movie.mvhd.to_vec(), fragmented: movie.fragmented, tracks, skipped, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_inputs_are_errors() {
        assert!(matches!(build(&[][..], 0), Err(IndexError::NoMoov)));
        let junk = [0xffu8; 64];
        assert!(build(&junk[..], 64).is_err());
        let zero_box = [0u8, 0, 0, 0, b'm', b'o', b'o', b'v'];
        assert!(build(&zero_box[..], 8).is_err());
        let huge = [0u8, 0, 0, 1, b'm', b'd', b'a', b't', 0xff, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(build(&huge[..], 16), Err(IndexError::TruncatedFile { .. })));
    }

    /// Top-level boxes of `bytes`: (offset, type, size).
    fn top_level(bytes: &[u8]) -> Vec<(usize, FourCC, usize)> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let h = parse_header(&bytes[pos..], FourCC(*b"file")).expect("box header");
            let size = h.size.map_or(bytes.len() - pos, |s| s as usize);
            out.push((pos, h.kind, size));
            pos += size;
        }
        out
    }

    /// The samples of each track as the plain `Vec<Sample>` the index held before it was
    /// compacted: `stbl` samples, then every `trun` in file order, decode times from `tfdt`.
    fn naive(bytes: &[u8]) -> Vec<(u32, Vec<mp4::Sample>)> {
        let len = bytes.len() as u64;
        let boxes = top_level(bytes);
        let body = |&(at, _, size): &(usize, FourCC, usize)| {
            let h = parse_header(&bytes[at..], FourCC(*b"file")).expect("header").header_len as usize;
            &bytes[at + h..at + size]
        };
        let moov = boxes.iter().find(|b| b.1 == MOOV).map(body).expect("moov");
        let movie = parse_moov(moov, len).expect("moov parses");
        let trexes: Vec<(u32, Trex)> = movie.tracks.iter().map(|t| (t.id, t.trex)).collect();
        let mut tracks: Vec<(u32, Vec<mp4::Sample>)> = movie.tracks.into_iter().map(|t| (t.id, t.samples)).collect();
        for b in boxes.iter().filter(|b| b.1 == MOOF) {
            let trex = |id: u32| trexes.iter().find(|(t, _)| *t == id).map(|(_, x)| *x);
            for run in mp4::moof::parse_moof(body(b), b.0 as u64, len, trex).expect("moof parses") {
                let Some((_, v)) = tracks.iter_mut().find(|(id, _)| *id == run.track_id) else { continue };
                let next = v.last().map_or(0, |s| s.dts + u64::from(s.duration));
                let base = run.base_decode_time.unwrap_or(next);
                v.extend(run.samples.iter().map(|s| mp4::Sample { dts: s.dts + base, ..*s }));
            }
        }
        tracks
    }

    /// The compact table of every track gives back exactly the naive samples.
    fn assert_matches_naive(bytes: &[u8]) -> FileIndex {
        let idx = build(bytes, bytes.len() as u64).expect("indexes");
        let naive = naive(bytes);
        for t in &idx.tracks {
            let (_, want) = naive.iter().find(|(id, _)| *id == t.id).expect("track in naive");
            assert!(!want.is_empty());
            assert_eq!(t.samples.len(), want.len(), "track {}", t.id);
            assert_eq!(&t.samples.iter().collect::<Vec<_>>(), want, "track {}", t.id);
            for i in (0..want.len()).step_by(7) {
                assert_eq!(t.samples.get(i).as_ref(), want.get(i));
                let end = (i + 60).min(want.len());
                assert_eq!(t.samples.range(i, end).as_deref(), want.get(i..end));
            }
            // Well under the 32 bytes a sample of the naive table, also for a progressive file
            // interleaved sample by sample (a run a sample: 8 bytes + its size, plus composition
            // offsets where B-frames change them); short files pay a few fixed entries (the 256).
            let per_sample = 16;
            assert!(
                t.samples.heap_bytes() <= want.len() * per_sample + 256,
                "{} bytes for {}: {:?}",
                t.samples.heap_bytes(),
                want.len(),
                t.samples.shape()
            );
        }
        idx
    }

    fn asset(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn sample_files_round_trip_through_the_compact_table() {
        for name in ["fragmented.mp4", "progressive.mp4", "hevc.mp4", "multi/video_360p.mp4", "multi/audio_en.mp4"] {
            let idx = assert_matches_naive(&asset(name));
            assert!(!idx.tracks.is_empty(), "{name}");
        }
    }

    #[test]
    fn many_fragment_file_round_trips() {
        // fragmented.mp4's moof+mdat pairs repeated 300 times (their data offsets are relative
        // to each moof, so the copies stay valid): thousands of runs, decode times that jump
        // back at every repetition.
        let src = asset("fragmented.mp4");
        let boxes = top_level(&src);
        let first_moof = boxes.iter().position(|b| b.1 == MOOF).expect("a moof");
        let mut out = Vec::new();
        for &(at, _, size) in &boxes[..first_moof] {
            out.extend_from_slice(&src[at..at + size]);
        }
        let frags: Vec<&[u8]> = boxes[first_moof..]
            .iter()
            .filter(|b| b.1 == MOOF || b.1 == FourCC(*b"mdat"))
            .map(|&(at, _, size)| &src[at..at + size])
            .collect();
        for _ in 0..300 {
            for f in &frags {
                out.extend_from_slice(f);
            }
        }
        let idx = assert_matches_naive(&out);
        let one = build(&src[..], src.len() as u64).expect("indexes");
        for (t, t1) in idx.tracks.iter().zip(&one.tracks) {
            assert_eq!(t.samples.len(), 300 * t1.samples.len());
            assert_eq!(t.fragment_starts.len(), 300 * t1.fragment_starts.len());
        }
    }
}
