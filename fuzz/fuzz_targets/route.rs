//! Any request path: routing classifies it without panicking.
//! The property lives in `drm_origin::fuzz_api::route`, which CI also replays over
//! `fuzz/corpus/route/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::route(data));
