//! Protected outputs: CENC (`cenc`, `cbcs`) init and media segments, and HLS AES-128 segments.
//!
//! Sample bytes are read with `pread` (never through the mapping, see `storage::mmap`), encrypted
//! in place, and written after a `moof` carrying `saiz`/`saio`/`senc`. Everything is a pure
//! function of (file, plan, key, stream id), so a segment is byte-identical on every request
//! and every origin node.

use bytes::Bytes;

use crate::codec::{self, NalContext};
use crate::crypto::{self, cbcs, cenc, iv, Key, KeyId, Subsample};
use crate::drm::Variant;
use crate::index::{ReadAt, TrackIndex, TrackKind};
use crate::mp4::codes::*;
use crate::mp4::reader::{self, Reader};
use crate::mp4::writer::{write_box, write_full_box, PutBe};
use crate::mp4::{FourCC, Sample};
use crate::storage::buffers;

use super::fmp4::{self, FragmentOptions, SampleAux, SegmentError};

/// Why a protected output cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// The track's codec cannot be protected correctly by us under this scheme.
    #[error("cannot protect track {track} ({codec}) with {variant}: {reason}")]
    Unsupported {
        /// Track id.
        track: u32,
        /// Codec string.
        codec: String,
        /// Requested variant.
        variant: Variant,
        /// Why.
        reason: String,
    },
    /// A sample's bitstream could not be mapped (slice header unparsable).
    #[error("sample {index} of track {track}: {source}")]
    Bitstream {
        /// Track id.
        track: u32,
        /// Sample index in the track.
        index: usize,
        /// Parser error.
        source: codec::Error,
    },
    /// Reading sample bytes failed (the file changed under us).
    #[error("reading samples: {0}")]
    Io(#[from] std::io::Error),
    /// Segment assembly failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Cipher error (a map that does not fit the sample).
    #[error("encryption: {0}")]
    Crypto(#[from] crypto::Error),
    /// The source `stsd` is malformed.
    #[error("sample description: {0}")]
    Stsd(#[from] crate::mp4::Error),
}

/// Keys and identity of one protected stream (a rendition of an asset).
pub struct StreamKey<'a> {
    /// Key id.
    pub kid: KeyId,
    /// Content key.
    pub key: &'a Key,
    /// `iv::stream_id` of (asset, rendition).
    pub stream_id: [u8; 16],
}

/// 1:9 pattern for video (`cbcs`), whole-block for audio.
fn pattern(kind: TrackKind) -> (u8, u8) {
    if kind == TrackKind::Video {
        (1, 9)
    } else {
        (0, 0)
    }
}

/// Checks that we can protect this track with `variant`, and returns its bitstream context
/// (for NAL video) so the first failure is reported at manifest time, not mid-playback.
pub fn check(track: &TrackIndex, variant: Variant) -> Result<Option<NalContext>, ProtectError> {
    let unsupported = |reason: String| ProtectError::Unsupported {
        track: track.id,
        codec: track.entry.codec.clone(),
        variant,
        reason,
    };
    match track.kind {
        TrackKind::Video => {
            let f = track.entry.format;
            let ctx = if f == AVC1 || f == AVC3 {
                NalContext::from_avcc(&track.entry.decoder_config)
            } else if f == HVC1 || f == HEV1 {
                NalContext::from_hvcc(&track.entry.decoder_config)
            } else {
                return Err(unsupported(format!("no subsample mapper for '{f}'")));
            };
            ctx.map(Some).map_err(|e| unsupported(e.to_string()))
        }
        TrackKind::Audio => {
            let f = track.entry.format;
            if f == MP4A || f == AC_3 || f == EC_3 {
                Ok(None)
            } else {
                Err(unsupported(format!("no full-sample rule for '{f}'")))
            }
        }
        TrackKind::Text => Err(unsupported("text tracks are not encrypted".into())),
    }
}

/// The protected `stsd`: the original entry renamed `encv`/`enca` with a `sinf` appended; with a
/// clear lead, the original entry follows as index 2 for the clear fragments.
pub fn protected_stsd(
    track: &TrackIndex,
    variant: Variant,
    kid: &KeyId,
    constant_iv: Option<&[u8; 16]>,
    clear_lead: bool,
) -> Result<Vec<u8>, ProtectError> {
    let stsd = &track.init_boxes.stsd;
    let body = reader::require(stsd, FourCC(*b"file"), STSD)?.body;
    let mut r = Reader::new(body, STSD);
    r.full_header()?;
    r.u32()?;
    // `rest()` consumes the reader: take the entries once and slice both views from it.
    let entries = r.rest();
    let entry = reader::boxes(entries, STSD).next().ok_or(crate::mp4::Error::Missing(STSD))??;
    let original = entry.whole(entries);
    let protected_format = if track.kind == TrackKind::Video { ENCV } else { ENCA };
    let mut out = Vec::with_capacity(stsd.len().saturating_mul(2).saturating_add(128));
    write_full_box(&mut out, STSD, 0, 0, |o| {
        o.put_u32(if clear_lead { 2 } else { 1 });
        write_box(o, protected_format, |o| {
            o.extend_from_slice(entry.body);
            write_sinf(o, entry.kind, variant, track.kind, kid, constant_iv);
        });
        if clear_lead {
            o.extend_from_slice(original);
        }
    });
    Ok(out)
}

fn write_sinf(
    o: &mut Vec<u8>,
    original: FourCC,
    variant: Variant,
    kind: TrackKind,
    kid: &KeyId,
    civ: Option<&[u8; 16]>,
) {
    write_box(o, SINF, |o| {
        write_box(o, FRMA, |o| o.extend_from_slice(&original.0));
        write_full_box(o, SCHM, 0, 0, |o| {
            o.extend_from_slice(if variant == Variant::Cbcs { b"cbcs" } else { b"cenc" });
            o.put_u32(0x0001_0000);
        });
        write_box(o, SCHI, |o| {
            // tenc v0 for cenc, v1 (pattern fields) for cbcs, also with a 0:0 audio pattern.
            let cbcs = variant == Variant::Cbcs;
            write_full_box(o, TENC, u8::from(cbcs), 0, |o| {
                o.push(0);
                let (crypt, skip) = pattern(kind);
                o.push(if cbcs { (crypt << 4) | skip } else { 0 });
                o.push(1); // default_isProtected
                o.push(if cbcs { 0 } else { 8 }); // per-sample IV size
                o.extend_from_slice(&kid.0);
                if let (true, Some(iv)) = (cbcs, civ) {
                    o.push(16);
                    o.extend_from_slice(iv);
                }
            });
        });
    });
}

/// Protected init segment: protected `stsd` plus the `pssh` boxes of the signalled systems
/// (`psshs`, from `drm_signalling::init_pssh`: the W3C common one first).
pub fn init_segment(
    mvhd: &[u8],
    track: &TrackIndex,
    variant: Variant,
    sk: &StreamKey<'_>,
    clear_lead: bool,
    psshs: &[Vec<u8>],
) -> Result<Vec<u8>, ProtectError> {
    check(track, variant)?;
    let civ = (variant == Variant::Cbcs).then(|| iv::cbcs_constant_iv(sk.key, &sk.stream_id));
    let stsd = protected_stsd(track, variant, &sk.kid, civ.as_ref(), clear_lead)?;
    Ok(fmp4::init_segment_with(mvhd, track, &stsd, &psshs.concat()))
}

/// Runs of sample bytes at most this far apart are read with one positioned read of the span
/// that holds them, and the bytes between them dropped. In a progressive file every video sample
/// is a chunk of its own between audio chunks: one `pread` per sample cost ~20 % of an uncached
/// protected segment in syscall entry, `fdget`/`fput` and page-cache lookups (benches/profile.sh
/// on the HEVC sample), far more than copying the few KB of audio in between.
const MAX_GAP: u64 = 16 * 1024;

/// Reads the bytes of `samples` (in order) with positioned reads, appended to `data` (one read
/// per span of nearby runs, see [`MAX_GAP`]; never zero-filled first, see
/// `ReadAt::read_append_at`).
pub fn read_samples_into<R: ReadAt + ?Sized>(
    file: &R,
    samples: &[Sample],
    data: &mut Vec<u8>,
) -> Result<(), ProtectError> {
    ReadPlan::new(samples)?.read_into(file, data)
}

/// How the bytes of a segment's samples are read: their contiguous runs, grouped into spans of
/// one positioned read each, and the room a buffer needs for that. Made once per segment build,
/// so a caller that sizes its buffer first does not group the runs twice.
pub struct ReadPlan {
    runs: Vec<(u64, u64)>,
    spans: Vec<Span>,
    room: usize,
}

impl ReadPlan {
    /// The plan for `samples`, in order.
    pub fn new(samples: &[Sample]) -> Result<ReadPlan, ProtectError> {
        let runs = fmp4::runs(samples);
        let spans = spans(&runs);
        let total: u64 = runs.iter().map(|r| r.1).sum();
        // The widest gaps of one span are read, then dropped before the next span is read.
        let slack = spans.iter().map(|s| s.len.saturating_sub(s.run_bytes)).max().unwrap_or(0);
        let room = usize::try_from(total.saturating_add(slack)).map_err(|_| SegmentError::TooLarge)?;
        Ok(ReadPlan { runs, spans, room })
    }

    /// Spare capacity [`ReadPlan::read_into`] needs: the samples' bytes plus the widest gaps.
    pub fn room(&self) -> usize {
        self.room
    }

    /// Appends the samples' bytes to `data`.
    pub fn read_into<R: ReadAt + ?Sized>(&self, file: &R, data: &mut Vec<u8>) -> Result<(), ProtectError> {
        data.reserve(self.room);
        for span in &self.spans {
            let len = usize::try_from(span.len).map_err(|_| SegmentError::TooLarge)?;
            let runs = self.runs.get(span.runs.clone()).unwrap_or(&[]);
            file.read_runs_append_at(data, span.offset, len, runs)?;
        }
        Ok(())
    }
}

/// One positioned read: `len` bytes at `offset` holding `runs` (indices into the run list),
/// `run_bytes` of which are sample bytes.
#[derive(Debug, PartialEq)]
struct Span {
    offset: u64,
    len: u64,
    runs: std::ops::Range<usize>,
    run_bytes: u64,
}

/// Groups consecutive runs that follow each other in the file with gaps of at most [`MAX_GAP`].
fn spans(runs: &[(u64, u64)]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for (i, &(offset, len)) in runs.iter().enumerate() {
        let end = offset.saturating_add(len);
        if let Some(last) = out.last_mut() {
            let last_end = last.offset.saturating_add(last.len);
            if offset >= last_end && offset - last_end <= MAX_GAP {
                last.len = end - last.offset;
                last.runs.end = i + 1;
                last.run_bytes = last.run_bytes.saturating_add(len);
                continue;
            }
        }
        out.push(Span { offset, len, runs: i..i + 1, run_bytes: len });
    }
    out
}

/// Reads the bytes of `samples` (in order) with positioned reads, into a reused buffer
/// (`storage::buffers`; hand it on with `buffers::into_bytes`).
pub fn read_samples<R: ReadAt + ?Sized>(file: &R, samples: &[Sample]) -> Result<Vec<u8>, ProtectError> {
    let plan = ReadPlan::new(samples)?;
    let mut data = buffers::take(plan.room());
    plan.read_into(file, &mut data)?;
    Ok(data)
}

/// The subsample maps of one media segment's samples under one scheme (`cenc` or `cbcs`), in
/// sample order. They are a pure function of the source bytes and the track's codec
/// configuration, never of the key, so they are computed once per segment and scheme and shared
/// by every variant and request (`http::segment` keeps them in a bounded cache): slice-header
/// parsing was ~8 % of an uncached protected segment (benches/profile.sh).
pub type SegmentMaps = std::sync::Arc<Vec<Vec<Subsample>>>;

/// Bytes a [`SegmentMaps`] holds, for the cache's weigher.
pub fn maps_weight(maps: &SegmentMaps) -> u32 {
    let bytes = maps.iter().map(|m| 24 + m.len() * std::mem::size_of::<Subsample>()).sum::<usize>();
    u32::try_from(bytes.saturating_add(64)).unwrap_or(u32::MAX)
}

/// Maps every sample of `data` (the samples' bytes, in order) under `variant`'s scheme, with a
/// fresh codec context from the track (in-band parameter sets update it in sample order, as a
/// decoder would, so the result depends on the segment alone). Audio: whole-sample maps (empty).
fn subsample_maps(
    track: &TrackIndex,
    variant: Variant,
    data: &[u8],
    samples: &[Sample],
    first_index: usize,
) -> Result<Vec<Vec<Subsample>>, ProtectError> {
    let mut ctx = check(track, variant)?;
    let scheme = if variant == Variant::Cbcs { codec::Scheme::Cbcs } else { codec::Scheme::Cenc };
    let mut maps = Vec::with_capacity(samples.len());
    let mut at = 0usize;
    for (i, s) in samples.iter().enumerate() {
        let len = usize::try_from(s.size).map_err(|_| SegmentError::TooLarge)?;
        let end = at.saturating_add(len);
        let sample = data.get(at..end).ok_or(SegmentError::TooLarge)?;
        at = end;
        maps.push(match ctx.as_mut() {
            Some(ctx) => ctx.subsamples(sample, scheme).map_err(|source| ProtectError::Bitstream {
                track: track.id,
                index: first_index.saturating_add(i),
                source,
            })?,
            None => Vec::new(),
        });
    }
    Ok(maps)
}

/// A CENC media segment, as its header and its sample data, and the subsample maps it used.
/// `first_index` is the track index of `samples[0]` (IV derivation); `clear` writes a clear-lead
/// fragment that points at the clear sample entry (index 2). `known` are this segment's maps
/// under this variant's scheme from an earlier build ([`SegmentMaps`]); `None` computes them.
#[allow(clippy::too_many_arguments)]
pub fn cenc_segment<R: ReadAt + ?Sized>(
    file: &R,
    track: &TrackIndex,
    variant: Variant,
    sk: &StreamKey<'_>,
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
    first_index: usize,
    clear: bool,
    has_clear_entry: bool,
    known: Option<SegmentMaps>,
) -> Result<(Vec<Bytes>, Option<SegmentMaps>), ProtectError> {
    let mut data = read_samples(file, samples)?;
    if clear {
        check(track, variant)?;
        let opts = FragmentOptions { sample_description_index: Some(2), aux: None };
        let head = fmp4::segment_header(fmp4::OUTPUT_TRACK_ID, sequence, base_decode_time, samples, &opts)?;
        return Ok((vec![Bytes::from(head), buffers::into_bytes(data)], None));
    }
    // Maps made by an earlier build passed `check` for this track and variant already.
    let maps = match known {
        Some(maps) if maps.len() == samples.len() => maps,
        _ => SegmentMaps::new(subsample_maps(track, variant, &data, samples, first_index)?),
    };
    let mut ivs: Vec<[u8; 8]> = Vec::new();
    let civ = iv::cbcs_constant_iv(sk.key, &sk.stream_id);
    let iv_base = iv::cenc_base_iv(sk.key, &sk.stream_id);
    // One key schedule for the whole fragment (the per-sample API would expand it per sample).
    let cipher = <aes::Aes128Enc as aes::cipher::KeyInit>::new(sk.key.bytes().into());
    let (crypt, skip) = pattern(track.kind);
    if variant == Variant::Cbcs {
        // All the fragment's chains at once: they are independent, so they run side by side.
        let lens = samples.iter().map(|s| usize::try_from(s.size).map_err(|_| SegmentError::TooLarge));
        let lens: Vec<usize> = lens.collect::<Result<_, _>>()?;
        let items = lens.iter().copied().zip(maps.iter().map(|m| &m[..]));
        cbcs::encrypt_samples_with(&cipher, &civ, &mut data, items, crypt, skip)?;
    } else {
        let mut at = 0usize;
        for (i, (s, map)) in samples.iter().zip(maps.iter()).enumerate() {
            let len = usize::try_from(s.size).map_err(|_| SegmentError::TooLarge)?;
            let end = at.saturating_add(len);
            let sample = data.get_mut(at..end).ok_or(SegmentError::TooLarge)?;
            at = end;
            let sample_iv = iv::cenc_iv_at(iv_base, first_index.saturating_add(i) as u64);
            cenc::encrypt_sample_with(&cipher, &sample_iv, sample, map)?;
            ivs.push(sample_iv);
        }
    }
    let opts = FragmentOptions {
        sample_description_index: has_clear_entry.then_some(1),
        aux: Some(SampleAux { ivs: &ivs, subsamples: &maps }),
    };
    let head = fmp4::segment_header(fmp4::OUTPUT_TRACK_ID, sequence, base_decode_time, samples, &opts)?;
    // Header and sample data stay two buffers (the response sends both): no copy to join them.
    Ok((vec![Bytes::from(head), buffers::into_bytes(data)], Some(maps)))
}

/// An HLS AES-128 segment: the clear segment, encrypted whole with the envelope key (in a reused
/// buffer: hand it on with `storage::buffers::into_bytes`).
pub fn aes128_segment<R: ReadAt + ?Sized>(
    file: &R,
    key: &Key,
    segment_iv: &[u8; 16],
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
) -> Result<Vec<u8>, ProtectError> {
    let head =
        fmp4::segment_header(fmp4::OUTPUT_TRACK_ID, sequence, base_decode_time, samples, &FragmentOptions::default())?;
    // The samples are read straight behind the header (no second buffer, no copy), into a reused
    // buffer with room for the PKCS#7 pad, so encrypting in place never reallocates.
    let plan = ReadPlan::new(samples)?;
    let mut seg = buffers::take(head.len().saturating_add(plan.room()).saturating_add(16));
    seg.extend_from_slice(&head);
    plan.read_into(file, &mut seg)?;
    crypto::hls::encrypt_segment_in_place(key, segment_iv, &mut seg);
    Ok(seg)
}

/// The 16-byte stream identity of a rendition of an asset, input of the IV derivation.
pub fn stream_id(asset: &str, rendition: &str) -> [u8; 16] {
    let a = crate::storage::fnv1a(&[b"stream-a", asset.as_bytes(), b"/", rendition.as_bytes()]);
    let b = crate::storage::fnv1a(&[b"stream-b", asset.as_bytes(), b"/", rendition.as_bytes()]);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::reader::boxes;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn kid() -> KeyId {
        KeyId::parse("8ba94ade-6eb9-449d-b44f-a5beefaf43b0").unwrap()
    }

    const IV16: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    #[test]
    fn nearby_runs_are_read_as_one_span_and_the_gaps_dropped() {
        let file: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sample = |offset: u64, size: u32| Sample { offset, size, dts: 0, duration: 0, cts: 0, sync: false };
        // two samples 10 bytes apart, one far after them, one before (out of order), one adjacent
        let samples = [sample(100, 50), sample(160, 20), sample(60_000, 30), sample(5, 10), sample(15, 5)];
        let runs = fmp4::runs(&samples);
        assert_eq!(
            spans(&runs),
            vec![
                Span { offset: 100, len: 80, runs: 0..2, run_bytes: 70 },
                Span { offset: 60_000, len: 30, runs: 2..3, run_bytes: 30 },
                Span { offset: 5, len: 15, runs: 3..4, run_bytes: 15 },
            ]
        );
        // room: the 115 sample bytes plus the widest gaps of one span (10 bytes in the first)
        assert_eq!(ReadPlan::new(&samples).unwrap().room(), 125);
        let mut data = vec![9u8];
        read_samples_into(&file[..], &samples, &mut data).unwrap();
        let mut expect = vec![9u8];
        for s in &samples {
            expect.extend_from_slice(&file[s.offset as usize..s.offset as usize + s.size as usize]);
        }
        assert_eq!(data, expect);
        // a sample past the end of the file is an error, and nothing is appended
        let mut data = Vec::new();
        assert!(read_samples_into(&file[..], &[sample(99_990, 20)], &mut data).is_err());
        assert!(data.is_empty());
    }

    #[test]
    fn sinf_and_tenc_known_answers() {
        // spec-notes §10.6: the full cenc sinf, and the cbcs tenc for video (1:9) and audio (0:0).
        let mut cenc = Vec::new();
        write_sinf(&mut cenc, AVC1, Variant::Cenc, TrackKind::Video, &kid(), None);
        assert_eq!(
            hex(&cenc),
            "0000005073696e660000000c66726d6161766331000000147363686d0000000063656e630001000000000028736368690000002074656e6300000000000001088ba94ade6eb9449db44fa5beefaf43b0"
        );
        let tenc_cbcs_video =
            "0000003174656e6301000000001901008ba94ade6eb9449db44fa5beefaf43b010000102030405060708090a0b0c0d0e0f";
        let mut v = Vec::new();
        write_sinf(&mut v, AVC1, Variant::Cbcs, TrackKind::Video, &kid(), Some(&IV16));
        assert!(hex(&v).ends_with(tenc_cbcs_video), "{}", hex(&v));
        let mut a = Vec::new();
        write_sinf(&mut a, MP4A, Variant::Cbcs, TrackKind::Audio, &kid(), Some(&IV16));
        assert!(hex(&a).ends_with(&tenc_cbcs_video.replacen("00190100", "00000100", 1)), "{}", hex(&a));
        // Round trip: our own reader walks sinf → frma, schm, schi → tenc with the declared sizes.
        let sinf = boxes(&v, FTYP).next().unwrap().unwrap();
        let kinds: Vec<FourCC> = boxes(sinf.body, SINF).map(|b| b.unwrap().kind).collect();
        assert_eq!(kinds, vec![FRMA, SCHM, SCHI]);
    }

    #[test]
    fn senc_and_saiz_known_answers() {
        // spec-notes §10.6: two samples, 8-byte IVs, subsamples (16,16)(16,16) and (5,496).
        let samples = [
            Sample { offset: 0, dts: 0, size: 64, duration: 1, cts: 0, sync: true },
            Sample { offset: 64, dts: 1, size: 501, duration: 1, cts: 0, sync: false },
        ];
        let ivs = [[0u8, 1, 2, 3, 4, 5, 6, 7], [0u8, 1, 2, 3, 4, 5, 6, 8]];
        let maps = vec![
            vec![Subsample { clear: 16, protected: 16 }, Subsample { clear: 16, protected: 16 }],
            vec![Subsample { clear: 5, protected: 496 }],
        ];
        let opts =
            FragmentOptions { sample_description_index: None, aux: Some(SampleAux { ivs: &ivs, subsamples: &maps }) };
        let head = fmp4::segment_header(1, 1, 0, &samples, &opts).unwrap();
        let h = hex(&head);
        let senc = "0000003673656e63000000020000000200010203040506070002001000000010001000000010000102030405060800010005000001f0";
        let saiz = "000000137361697a0000000000000000021610";
        assert!(h.contains(senc), "{h}");
        assert!(h.contains(saiz), "{h}");
        // saio points (relative to moof) at senc's first record; trun's data_offset past mdat's header.
        let top: Vec<_> = boxes(&head[..head.len() - 8], FTYP).map(|b| b.unwrap()).collect();
        let moof = top.iter().find(|b| b.kind == MOOF).unwrap();
        let moof_start = moof.offset;
        let senc_at = h.find(senc).unwrap() / 2;
        let saio = h.find("7361696f").unwrap() / 2; // 'saio' fourcc
        let saio_offset = u32::from_be_bytes(head[saio + 12..saio + 16].try_into().unwrap()) as usize;
        assert_eq!(moof_start + saio_offset, senc_at + 16);
        let moof_len = moof.header_len + moof.body.len();
        let trun = h.find("7472756e").unwrap() / 2;
        let data_offset = i32::from_be_bytes(head[trun + 12..trun + 16].try_into().unwrap()) as usize;
        assert_eq!(data_offset, moof_len + 8);
    }
}
