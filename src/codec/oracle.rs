//! Our subsample maps against two independent implementations, sample by sample and slice by
//! slice, for every video asset in `assets/` and the clips of `scripts/make-codec-fixtures.sh`
//! (listed in `scripts/codec_fixtures.py`).
//!
//! **Shaka Packager** (`tests/fixtures/codec/<name>.<scheme>.txt`, from the `senc` boxes of its
//! output, by `scripts/extract-shaka-maps.py`; packager version and file sha256 in each header):
//! * `cbcs`: our maps must equal Shaka's exactly.
//! * `cenc`: intended difference. Shaka Packager v3.8 (PR #1540) moves each NAL unit's
//!   `protected % 16` residual into a *trailing* clear count (`767:9056 12:0`); we keep the
//!   *leading* form older Shaka releases and Bento4 produce (`779:9056`), because that form is the
//!   one every player accepts and the one the AV1 binding requires (shaka-packager issue #1599;
//!   spec-notes §2.2). Both forms are fully determined by the unrounded per-slice ranges, so the
//!   test derives them from Shaka's `cbcs` map of the same sample: our `cenc` map must equal the
//!   leading form, and Shaka's `cenc` fixture must equal the trailing form (which proves Shaka
//!   found the same slice-header sizes in both runs). On top, the protected byte counts of our
//!   `cenc` map must equal those in Shaka's `cenc` map, entry by entry.
//! * Known Shaka bug (`hevc_pps_deblocking_disabled`): when the PPS disables deblocking without
//!   allowing a slice override and SAO is off, H.265 7.3.6.1 has no
//!   slice_loop_filter_across_slices_enabled_flag (slice_deblocking_filter_disabled_flag is
//!   inferred from pps_deblocking_filter_disabled_flag, 7.4.7.1). Shaka v3.8 infers 0 and reads the
//!   flag, misreads the entry points that follow and stops early: it encrypts the tail of those
//!   slice headers. There the test asserts that Shaka leaves fewer bytes clear than FFmpeg's
//!   parser and ours find.
//!
//! **FFmpeg** (`<name>.ffmpeg.txt`, libavcodec's coded bitstream reader through the
//! `trace_headers` filter, by `scripts/extract-ffmpeg-slice-headers.py`): the RBSP bit where every
//! slice header ends, which must equal the bit where our parser stops, slice by slice.

use super::{Inner, NalContext, Scheme};
use crate::crypto::Subsample;
use crate::index::{self, TrackKind};
use crate::mp4::codes::{AVC1, AVC3, AVCC, HEV1, HVC1, HVCC};
use crate::mp4::reader;
use crate::mp4::FourCC;

/// How Shaka Packager's maps for a file relate to ours.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shaka {
    /// Equal (`cbcs`) or equal after the documented `cenc` residual move.
    Agrees,
    /// Shaka reads an absent slice_loop_filter_across_slices_enabled_flag (see the module doc).
    MisreadsLoopFilterFlag,
}

/// (fixture name, file, video samples, Shaka relation)
pub(super) const ASSETS: &[(&str, &str, usize, Shaka)] = &[
    ("progressive", "assets/progressive.mp4", 300, Shaka::Agrees),
    ("hevc", "assets/hevc.mp4", 250, Shaka::Agrees),
    ("video_180p", "assets/multi/video_180p.mp4", 250, Shaka::Agrees),
    ("video_270p", "assets/multi/video_270p.mp4", 250, Shaka::Agrees),
    ("video_360p", "assets/multi/video_360p.mp4", 250, Shaka::Agrees),
    // Clips from scripts/make-codec-fixtures.sh: syntax the assets above do not use.
    ("avc_cavlc_slices_wp", "tests/fixtures/codec/media/avc_cavlc_slices_wp.mp4", 32, Shaka::Agrees),
    ("avc_mbaff_inband", "tests/fixtures/codec/media/avc_mbaff_inband.mp4", 32, Shaka::Agrees),
    ("avc_444_cqm_maxslice", "tests/fixtures/codec/media/avc_444_cqm_maxslice.mp4", 32, Shaka::Agrees),
    ("hevc_ctu16_slices_wp", "tests/fixtures/codec/media/hevc_ctu16_slices_wp.mp4", 32, Shaka::Agrees),
    ("hevc_main10_inband", "tests/fixtures/codec/media/hevc_main10_inband.mp4", 32, Shaka::Agrees),
    ("hevc_444_nowpp", "tests/fixtures/codec/media/hevc_444_nowpp.mp4", 32, Shaka::Agrees),
    (
        "hevc_pps_deblocking_disabled",
        "tests/fixtures/codec/media/hevc_pps_deblocking_disabled.mp4",
        32,
        Shaka::MisreadsLoopFilterFlag,
    ),
];

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One fixture line: sample size and Shaka's map.
struct Expected {
    size: u64,
    map: Vec<Subsample>,
}

fn read_fixture(name: &str, scheme: &str) -> Vec<Expected> {
    let path = root().join(format!("tests/fixtures/codec/{name}.{scheme}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut fields = l.split_whitespace();
            let size = fields.next().unwrap().parse().unwrap();
            let map = fields
                .map(|f| {
                    let (c, p) = f.split_once(':').unwrap();
                    Subsample { clear: c.parse().unwrap(), protected: p.parse().unwrap() }
                })
                .collect();
            Expected { size, map }
        })
        .collect()
}

/// The video track's decoder configuration record and its samples' bytes.
pub(super) fn load_video(asset: &str) -> (NalContext, Vec<Vec<u8>>) {
    let bytes = std::fs::read(root().join(asset)).unwrap();
    let idx = index::build(bytes.as_slice(), bytes.len() as u64).unwrap();
    let track = idx.tracks.iter().find(|t| t.kind == TrackKind::Video).expect("video track");
    let ctx = context_from_stsd(&track.init_boxes.stsd);
    let samples =
        track.samples.iter().map(|s| bytes[s.offset as usize..s.offset as usize + s.size as usize].to_vec()).collect();
    (ctx, samples)
}

/// `stsd` box → first sample entry → `avcC`/`hvcC` body → context.
fn context_from_stsd(stsd: &[u8]) -> NalContext {
    let (entry, record) = config_record(stsd);
    match entry {
        AVC1 | AVC3 => NalContext::from_avcc(record).unwrap(),
        HEV1 | HVC1 => NalContext::from_hvcc(record).unwrap(),
        other => panic!("not AVC/HEVC: {other}"),
    }
}

/// The sample entry type and its decoder configuration record body.
pub(super) fn config_record(stsd: &[u8]) -> (FourCC, &[u8]) {
    let stsd_box = reader::boxes(stsd, FourCC(*b"test")).next().unwrap().unwrap();
    // version/flags, entry_count, then the entries.
    let entry = reader::boxes(&stsd_box.body[8..], stsd_box.kind).next().unwrap().unwrap();
    // VisualSampleEntry fields are 78 bytes before the child boxes.
    let children = &entry.body[78..];
    let kind = if entry.kind == AVC1 || entry.kind == AVC3 { AVCC } else { HVCC };
    let record = reader::require(children, entry.kind, kind).unwrap();
    (entry.kind, record.body)
}

/// Re-applies the `cenc` 16-byte alignment to a `cbcs` map (whose protected counts are the
/// unrounded per-slice ranges), putting each residual before (`trailing == false`, our form) or
/// after (Shaka ≥ v3.8) its protected range. Clear runs merge and split at 65535 as usual.
fn realign(cbcs: &[Subsample], trailing: bool) -> Vec<Subsample> {
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    let push = |out: &mut Vec<Subsample>, mut clear: u64, protected: u32| {
        while clear > 65535 {
            out.push(Subsample { clear: 65535, protected: 0 });
            clear -= 65535;
        }
        out.push(Subsample { clear: clear as u16, protected });
    };
    for s in cbcs {
        acc += u64::from(s.clear);
        let residual = s.protected % 16;
        let aligned = s.protected - residual;
        if aligned == 0 {
            acc += u64::from(s.protected);
        } else if trailing {
            push(&mut out, acc, aligned);
            acc = u64::from(residual);
        } else {
            push(&mut out, acc + u64::from(residual), aligned);
            acc = 0;
        }
    }
    if acc > 0 {
        push(&mut out, acc, 0);
    }
    out
}

fn total(map: &[Subsample]) -> u64 {
    map.iter().map(|s| u64::from(s.clear) + u64::from(s.protected)).sum()
}

/// Compares one file's maps with Shaka's; returns the number of samples compared per scheme.
fn compare_with_shaka(name: &str, asset: &str, relation: Shaka) -> usize {
    let (ctx, samples) = load_video(asset);
    let shaka_cbcs = read_fixture(name, "cbcs");
    let shaka_cenc = read_fixture(name, "cenc");
    assert_eq!(shaka_cbcs.len(), samples.len(), "{name}: sample count");
    assert_eq!(shaka_cenc.len(), samples.len(), "{name}: sample count");
    let mut cbcs_ctx = ctx.clone();
    let mut cenc_ctx = ctx;
    let mut shaka_short = 0;
    for (i, sample) in samples.iter().enumerate() {
        let size = sample.len() as u64;
        let (sc, se) = (&shaka_cbcs[i], &shaka_cenc[i]);
        assert_eq!(sc.size, size, "{name} #{i}: Shaka's cbcs sample size");
        assert_eq!(se.size, size, "{name} #{i}: Shaka's cenc sample size");
        let ours_cbcs = cbcs_ctx.subsamples(sample, Scheme::Cbcs).unwrap();
        let ours_cenc = cenc_ctx.subsamples(sample, Scheme::Cenc).unwrap();
        assert_eq!(total(&ours_cbcs), size, "{name} #{i}: cbcs map sum");
        assert_eq!(total(&ours_cenc), size, "{name} #{i}: cenc map sum");
        assert!(ours_cenc.iter().all(|s| s.protected % 16 == 0));
        assert_eq!(ours_cenc, realign(&ours_cbcs, false), "{name} #{i}: cenc is not cbcs realigned");
        assert_eq!(se.map, realign(&sc.map, true), "{name} #{i}: Shaka's cenc is not its cbcs realigned");
        if relation == Shaka::MisreadsLoopFilterFlag {
            // Same subsample layout, but Shaka's clear parts stop inside our slice headers.
            assert_eq!(ours_cbcs.len(), sc.map.len(), "{name} #{i}");
            for (o, t) in ours_cbcs.iter().zip(&sc.map) {
                assert!(o.clear >= t.clear, "{name} #{i}: Shaka leaves more clear than we do");
                if o.clear > t.clear {
                    shaka_short += 1;
                }
            }
            continue;
        }
        assert_eq!(ours_cbcs, sc.map, "{name} #{i}: cbcs map differs from Shaka's");
        assert_eq!(
            ours_cenc,
            realign(&sc.map, false),
            "{name} #{i}: cenc map differs from the leading-clear form of Shaka's"
        );
        let prot = |m: &[Subsample]| -> Vec<u32> { m.iter().map(|s| s.protected).filter(|&p| p > 0).collect() };
        assert_eq!(prot(&ours_cenc), prot(&se.map), "{name} #{i}: cenc protected ranges differ from Shaka's");
    }
    if relation == Shaka::MisreadsLoopFilterFlag {
        assert!(shaka_short > samples.len() / 2, "{name}: Shaka bug no longer visible ({shaka_short})");
    }
    samples.len()
}

/// Compares where every slice header ends with FFmpeg's parser; returns the number of slices.
fn compare_with_ffmpeg(name: &str, asset: &str) -> usize {
    let path = root().join(format!("tests/fixtures/codec/{name}.ffmpeg.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let expected: Vec<(usize, u64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (s, b) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    let (mut ctx, samples) = load_video(asset);
    let mut ours = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let length_size = match &ctx.inner {
            Inner::Avc(c) => c.length_size,
            Inner::Hevc(c) => c.length_size,
        };
        let mut rest = &sample[..];
        while !rest.is_empty() {
            let len = rest[..length_size].iter().fold(0usize, |a, &b| a << 8 | usize::from(b));
            let nal = &rest[length_size..length_size + len];
            rest = &rest[length_size + len..];
            let clear = match &mut ctx.inner {
                Inner::Avc(c) => c.clear_len(nal).unwrap(),
                Inner::Hevc(c) => c.clear_len(nal).unwrap(),
            };
            let bits = match &ctx.inner {
                Inner::Avc(c) if matches!(nal[0] & 0x1f, 1 | 5) => c.header_bits(nal).ok(),
                Inner::Hevc(c) if matches!((nal[0] >> 1) & 0x3f, 0..=9 | 16..=21) => c.header_bits(nal).ok(),
                _ => None,
            };
            if let Some(bits) = bits {
                ours.push((i, bits));
                assert!(clear < nal.len(), "{name} #{i}: slice without slice data");
            }
        }
    }
    assert_eq!(ours.len(), expected.len(), "{name}: slice count");
    for (k, (o, e)) in ours.iter().zip(&expected).enumerate() {
        assert_eq!(o, e, "{name}: slice {k} (sample, header bits) differs from FFmpeg's");
    }
    ours.len()
}

macro_rules! oracle_test {
    ($test:ident, $index:expr) => {
        #[test]
        fn $test() {
            let (name, asset, samples, relation) = ASSETS[$index];
            assert_eq!(compare_with_shaka(name, asset, relation), samples, "{name}: samples compared");
            assert!(compare_with_ffmpeg(name, asset) >= samples, "{name}: slices compared");
        }
    };
}

oracle_test!(progressive_avc_cabac_bframes, 0);
oracle_test!(hevc, 1);
oracle_test!(multi_180p, 2);
oracle_test!(multi_270p, 3);
oracle_test!(multi_360p, 4);
oracle_test!(avc_cavlc_slices_weighted_pred_epb_in_headers, 5);
oracle_test!(avc_mbaff_inband_parameter_sets, 6);
oracle_test!(avc_444_scaling_matrices_small_slices, 7);
oracle_test!(hevc_ctu16_slices_weighted_pred_cra, 8);
oracle_test!(hevc_main10_inband_parameter_sets, 9);
oracle_test!(hevc_444_no_wpp, 10);
oracle_test!(hevc_pps_deblocking_disabled_shaka_misreads, 11);

#[test]
fn every_fixture_file_is_compared() {
    let dir = root().join("tests/fixtures/codec");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if let Some(name) = file.strip_suffix(".txt").and_then(|f| f.rsplit_once('.')).map(|(n, _)| n) {
            assert!(ASSETS.iter().any(|a| a.0 == name), "{file} is not compared by any test");
        }
    }
    assert_eq!(ASSETS.len(), 12);
}

#[test]
fn realign_forms() {
    let ss = |v: &[(u16, u32)]| -> Vec<Subsample> {
        v.iter().map(|&(clear, protected)| Subsample { clear, protected }).collect()
    };
    let cbcs = ss(&[(767, 9068)]);
    assert_eq!(realign(&cbcs, true), ss(&[(767, 9056), (12, 0)]));
    assert_eq!(realign(&cbcs, false), ss(&[(779, 9056)]));
    let cbcs = ss(&[(10, 5), (6, 40), (3, 0)]);
    assert_eq!(realign(&cbcs, false), ss(&[(29, 32), (3, 0)]));
    assert_eq!(realign(&cbcs, true), ss(&[(21, 32), (11, 0)]));
}
