//! Any decoder configuration and sample: a subsample map covers the sample exactly.
//! The property lives in `drm_origin::fuzz_api::nal_subsamples`, which CI also replays over
//! `fuzz/corpus/nal_subsamples/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::nal_subsamples(data));
