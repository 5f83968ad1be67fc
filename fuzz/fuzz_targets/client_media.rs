//! Any bytes as a manifest, playlist, init or media segment the reference client decrypts: an
//! error, never a panic. The property lives in `drm_origin::fuzz_api::client_media`, which CI
//! also replays over `fuzz/corpus/client_media/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::client_media(data));
