//! Any document as CPIX: import returns keys or a named error.
//! The property lives in `drm_origin::fuzz_api::cpix_import`, which CI also replays over
//! `fuzz/corpus/cpix_import/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::cpix_import(data));
