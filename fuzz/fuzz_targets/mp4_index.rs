//! Any bytes as an MP4 file: indexing returns a value or an error, never panics or hangs.
//! The property lives in `drm_origin::fuzz_api::mp4_index`, which CI also replays over
//! `fuzz/corpus/mp4_index/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::mp4_index(data));
