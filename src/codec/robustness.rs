//! Fuzz-style robustness: random, truncated and bit-flipped configuration records and samples
//! must give `Ok` or `Err`, never a panic (which the release profile's overflow checks would also
//! raise on any unchecked arithmetic), and every `Ok` map must cover the sample exactly.

use super::oracle::{config_record, load_video, ASSETS};
use super::{NalContext, Scheme};
use crate::crypto::Subsample;
use crate::index;

use crate::test_rng::Rng;

fn check(ctx: &mut NalContext, sample: &[u8]) {
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        if let Ok(map) = ctx.subsamples(sample, scheme) {
            let total: u64 = map.iter().map(|s: &Subsample| u64::from(s.clear) + u64::from(s.protected)).sum();
            assert_eq!(total, sample.len() as u64);
            if scheme == Scheme::Cenc {
                assert!(map.iter().all(|s| s.protected % 16 == 0));
            }
        }
    }
}

/// Mutations of a byte string: truncations, bit flips, byte overwrites, random tails.
fn mutants(rng: &mut Rng, base: &[u8], count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..count {
        let mut m = base.to_vec();
        match rng.below(4) {
            0 => m.truncate(rng.below(base.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    if !m.is_empty() {
                        let i = rng.below(m.len());
                        m[i] ^= 1 << rng.below(8);
                    }
                }
            }
            2 => {
                if !m.is_empty() {
                    let i = rng.below(m.len());
                    m[i] = [0x00, 0x03, 0xff, 0x80][rng.below(4)];
                }
            }
            _ => {
                let keep = rng.below(base.len() + 1);
                m.truncate(keep);
                let n = rng.below(64);
                m.extend(rng.bytes(n));
            }
        }
        out.push(m);
    }
    out
}

#[test]
fn random_records_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for len in 0..200 {
        for _ in 0..20 {
            let body = rng.bytes(len);
            let _ = NalContext::from_avcc(&body);
            let _ = NalContext::from_hvcc(&body);
        }
    }
}

#[test]
fn mutated_real_records_and_samples_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let assets = ["assets/progressive.mp4", "assets/hevc.mp4"].into_iter().chain(ASSETS.iter().skip(5).map(|a| a.1));
    for asset in assets {
        let bytes = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(asset)).unwrap();
        let idx = index::build(bytes.as_slice(), bytes.len() as u64).unwrap();
        let track = idx.tracks.iter().find(|t| t.kind == index::TrackKind::Video).unwrap();
        let (entry, record) = config_record(&track.init_boxes.stsd);
        let is_avc = entry.0 == *b"avc1" || entry.0 == *b"avc3";
        let build = |r: &[u8]| {
            if is_avc {
                NalContext::from_avcc(r)
            } else {
                NalContext::from_hvcc(r)
            }
        };
        let (ctx, samples) = load_video(asset);
        for r in mutants(&mut rng, record, 1500) {
            if let Ok(mut ctx) = build(&r) {
                // A context from a damaged record must still survive real samples.
                for s in samples.iter().take(3) {
                    check(&mut ctx, s);
                }
            }
        }
        for (i, s) in samples.iter().enumerate().step_by(5) {
            let mut c = ctx.clone();
            for m in mutants(&mut rng, s, 40) {
                check(&mut c, &m);
            }
            if i % 50 == 0 {
                // Every prefix of a sample (most cut a NAL unit short).
                for n in 0..s.len().min(400) {
                    check(&mut c, &s[..n]);
                }
            }
        }
        // Random bytes as samples, with the real context.
        let mut c = ctx.clone();
        for _ in 0..2000 {
            let n = rng.below(300);
            check(&mut c, &rng.bytes(n));
        }
        // Random NAL payloads behind valid length fields and slice NAL headers.
        let headers: &[&[u8]] = if is_avc {
            &[&[0x65], &[0x41], &[0x01], &[0x67], &[0x68], &[0x06]]
        } else {
            &[&[0x26, 0x01], &[0x02, 0x01], &[0x00, 0x01], &[0x42, 0x01], &[0x44, 0x01]]
        };
        for _ in 0..3000 {
            let h = headers[rng.below(headers.len())];
            let mut nal = h.to_vec();
            let n = rng.below(120);
            nal.extend(rng.bytes(n));
            let mut sample = (nal.len() as u32).to_be_bytes().to_vec();
            sample.extend(&nal);
            let mut c = ctx.clone();
            check(&mut c, &sample);
        }
    }
}

#[test]
fn hostile_length_fields() {
    let (mut ctx, _) = load_video("assets/progressive.mp4");
    for sample in [
        vec![0xff, 0xff, 0xff, 0xff, 0x65],
        vec![0x00, 0x00, 0x00],
        vec![0x00, 0x00, 0x00, 0x00],
        vec![0x00, 0x00, 0x00, 0x01, 0x65, 0x00],
    ] {
        check(&mut ctx, &sample);
    }
    assert!(ctx.subsamples(&[0xff, 0xff, 0xff, 0xff, 0x65], Scheme::Cbcs).is_err());
}

#[test]
fn large_hostile_samples_finish() {
    // One 4 MiB NAL unit of zeros behind an IDR header, and a million empty NAL units: errors or
    // maps, in linear time.
    let (mut avc, _) = load_video("assets/progressive.mp4");
    let mut big = ((4u32 << 20) + 1).to_be_bytes().to_vec();
    big.push(0x65);
    big.resize(big.len() + (4 << 20), 0);
    let start = std::time::Instant::now();
    check(&mut avc, &big);
    let empties = vec![0u8; 4 << 20];
    check(&mut avc, &empties);
    let (mut hevc, _) = load_video("assets/hevc.mp4");
    let mut big = ((4u32 << 20) + 2).to_be_bytes().to_vec();
    big.extend([0x26, 0x01]);
    big.resize(big.len() + (4 << 20), 0);
    check(&mut hevc, &big);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}
