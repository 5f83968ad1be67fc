//! Any decoder configuration and sample: a subsample map, when returned, covers the sample exactly.
#![no_main]
use drm_origin::codec::{NalContext, Scheme};
libfuzzer_sys::fuzz_target!(|input: (bool, &[u8], &[u8])| {
    let (hevc, config, sample) = input;
    let ctx = if hevc { NalContext::from_hvcc(config) } else { NalContext::from_avcc(config) };
    if let Ok(mut ctx) = ctx {
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            if let Ok(map) = ctx.subsamples(sample, scheme) {
                let covered: u64 = map.iter().map(|s| u64::from(s.clear) + u64::from(s.protected)).sum();
                assert_eq!(covered, sample.len() as u64);
            }
        }
    }
});
