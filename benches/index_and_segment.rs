//! Criterion benches for the two CPU stages of a request:
//! * index building (file bytes → per-track samples), for progressive and fragmented input;
//! * segment building (samples → CMAF header + zero-copy data views) and manifest writing.
//!
//! Baseline in the same run: `memcpy` of the same segment's bytes, i.e. what a copying origin
//! would pay at minimum; the ratio says how far below a copy our segment assembly stays.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use drm_origin::drm::Variant;
use drm_origin::index;
use drm_origin::packaging::plan::{plan, SourceFile};
use drm_origin::packaging::{dash, fmp4, hls, protect, Protection};
use drm_origin::storage::mmap::MappedFile;

fn source(path: &str) -> Arc<SourceFile> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let mapped = MappedFile::open(&p).expect("sample asset (run scripts/make-samples.sh)");
    let idx = index::build(mapped.file(), mapped.len()).expect("index");
    Arc::new(SourceFile {
        name: path.into(),
        stem: "s".into(),
        data: drm_origin::storage::source::Source::Local(mapped),
        index: idx,
        modified: std::time::UNIX_EPOCH,
        fingerprint: 0,
    })
}

fn bench_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("index_build");
    for path in ["assets/progressive.mp4", "assets/multi/video_360p.mp4"] {
        let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("asset");
        g.bench_function(path, |b| b.iter(|| index::build(black_box(&bytes[..]), bytes.len() as u64).expect("index")));
    }
    g.finish();
}

fn bench_segment(c: &mut Criterion) {
    let src = source("assets/multi/video_360p.mp4");
    let asset = plan("bench", vec![src.clone()], 4.0);
    let r = &asset.renditions[0];
    let track = r.track().expect("track");
    let (seg, samples) = r.segment(1).expect("segment 1");
    let samples = samples.as_slice();
    let mut g = c.benchmark_group("segment_build");
    g.throughput(Throughput::Bytes(seg.bytes));
    g.bench_function("media_segment_zero_copy", |b| {
        b.iter(|| fmp4::media_segment(1, seg.dts, black_box(samples), &src.data).expect("segment"))
    });
    // Baseline: copying the segment's sample bytes once (what a non-zero-copy origin pays).
    let data = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/multi/video_360p.mp4")).expect("asset");
    let first_off = samples[0].offset as usize;
    let len = seg.bytes as usize;
    g.bench_function("baseline_memcpy_same_bytes", |b| b.iter(|| black_box(data[first_off..first_off + len].to_vec())));
    g.bench_function("init_segment", |b| b.iter(|| fmp4::init_segment(&src.index.mvhd, black_box(track))));
    // Protected segment builders end to end: pread the samples, map NAL subsamples (slice
    // headers parsed), encrypt, write moof with senc/saiz/saio. Baseline: raw AES-128-CTR over
    // the same number of bytes, in the same run.
    let key = drm_origin::crypto::Key::new([0x2b; 16]);
    let kid = drm_origin::crypto::KeyId([0x8b; 16]);
    let sk = protect::StreamKey { kid, key: &key, stream_id: protect::stream_id("bench", &r.id) };
    let first = seg.first;
    for (name, variant) in [("cenc_segment_builder", Variant::Cenc), ("cbcs_segment_builder", Variant::Cbcs)] {
        let build = |known| {
            protect::cenc_segment(
                &src.data,
                track,
                variant,
                &sk,
                1,
                seg.dts,
                black_box(samples),
                first,
                false,
                false,
                known,
            )
            .expect("segment")
        };
        // Cold: the subsample maps are computed (slice headers parsed), as on a first request.
        g.bench_function(name, |b| b.iter(|| build(None)));
        // Warm: the maps of an earlier build (the server's map cache), as on every later miss.
        let maps = build(None).1;
        g.bench_function(format!("{name}_known_maps"), |b| b.iter(|| build(maps.clone())));
    }
    g.bench_function("aes128_segment_builder", |b| {
        b.iter(|| protect::aes128_segment(&src.data, &key, &[7; 16], 1, seg.dts, black_box(samples)).expect("segment"))
    });
    let mut same_bytes = data[first_off..first_off + len].to_vec();
    g.bench_function("baseline_raw_ctr64be_same_bytes", |b| {
        use aes::cipher::{KeyIvInit, StreamCipher};
        b.iter(|| {
            let mut ctr = ctr::Ctr64BE::<aes::Aes128>::new(&[0x2b; 16].into(), &[0; 16].into());
            ctr.apply_keystream(black_box(&mut same_bytes[..]));
        })
    });
    g.bench_function("baseline_raw_cbc_same_bytes", |b| {
        use aes::cipher::{BlockModeEncrypt, KeyIvInit};
        b.iter(|| {
            let mut cbc = cbc::Encryptor::<aes::Aes128>::new(&[0x2b; 16].into(), &[0; 16].into());
            let (blocks, _) = aes::Block::slice_as_chunks_mut(black_box(&mut same_bytes[..]));
            cbc.encrypt_blocks(blocks);
        })
    });
    g.finish();

    let multi: Vec<Arc<SourceFile>> = ["video_180p", "video_270p", "video_360p", "audio_en", "audio_fr"]
        .iter()
        .map(|n| source(&format!("assets/multi/{n}.mp4")))
        .collect();
    let asset = plan("multi", multi, 4.0);
    let clear = Protection::clear();
    let mut g = c.benchmark_group("manifest");
    g.bench_function("mpd_multi", |b| b.iter(|| dash::mpd(black_box(&asset), &clear)));
    g.bench_function("hls_master_multi", |b| b.iter(|| hls::master(black_box(&asset), &clear)));
    g.bench_function("hls_media_multi", |b| b.iter(|| hls::media("multi", black_box(&asset.renditions[0]), &clear)));
    g.finish();
}

criterion_group!(benches, bench_index, bench_segment);
criterion_main!(benches);
