//! Any Range header against any length: the outcome lies inside the representation.
//! The property lives in `drm_origin::fuzz_api::range`, which CI also replays over
//! `fuzz/corpus/range/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::range(data));
