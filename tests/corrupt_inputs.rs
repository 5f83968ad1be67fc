//! Mutation smoke test: thousands of corrupted variants of the sample assets go through the
//! index and segment builders. Nothing may panic; errors are fine. Deterministic (fixed seed),
//! so a failure reproduces; the full coverage-guided fuzzers live in fuzz/.

use std::sync::Arc;

use drm_origin::index;
use drm_origin::packaging::fmp4;
use drm_origin::packaging::plan::{plan, SourceFile};
use drm_origin::storage::mmap::MappedFile;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(src: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = src.to_vec();
    match rng.below(4) {
        0 => {
            // flip bytes inside the first 64 KiB (where moov and the first moofs live)
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(v.len().min(65536));
                v[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            // write an extreme 32-bit value somewhere in the header area
            let i = rng.below(v.len().min(65536).saturating_sub(4));
            let val = [0u32, 1, 7, 8, 0x7fff_ffff, 0xffff_ffff][rng.below(6)];
            v[i..i + 4].copy_from_slice(&val.to_be_bytes());
        }
        2 => v.truncate(rng.below(v.len())),
        _ => {
            let i = rng.below(v.len());
            let n = rng.below(64);
            v.drain(i..(i + n).min(v.len()));
        }
    }
    v
}

#[test]
fn corrupted_assets_never_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let files = ["progressive.mp4", "hevc.mp4", "multi/video_180p.mp4", "multi/audio_en.mp4"];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut indexed = 0;
    for f in files {
        let good = std::fs::read(root.join(f)).expect("sample asset");
        for _ in 0..400 {
            let bad = mutate(&good, &mut rng);
            if let Ok(idx) = index::build(&bad[..], bad.len() as u64) {
                indexed += 1;
                // Also package what was accepted, through a real (temporary) mapped file.
                let path = std::env::temp_dir().join(format!("drm-origin-mut-{}.mp4", std::process::id()));
                std::fs::write(&path, &bad).unwrap();
                let mapped = MappedFile::open(&path).unwrap();
                let src = Arc::new(SourceFile {
                    name: f.into(),
                    stem: "m".into(),
                    data: drm_origin::storage::source::Source::Local(mapped),
                    index: idx,
                    modified: std::time::UNIX_EPOCH,
                    fingerprint: 0,
                });
                let asset = plan("m", vec![src.clone()], 4.0);
                for r in &asset.renditions {
                    let t = r.track().unwrap();
                    let _ = fmp4::init_segment(&src.index.mvhd, t);
                    for n in 1..=r.segments.len() {
                        let (seg, samples) = r.segment(n).unwrap();
                        let _ = fmp4::media_segment(n as u32, seg.dts, &samples, &src.data);
                    }
                }
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    // Some mutations (e.g. in mdat payload or a trailing cut) still index: the test exercised
    // the packaging path too.
    assert!(indexed > 0);
}
