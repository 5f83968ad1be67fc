//! Any bytes as a device request, a JWK, a JWKS, a JWE or an origin object the client reads: a
//! refusal, never a panic. The property lives in `drm_origin::fuzz_api::device_objects`, which CI
//! also replays over `fuzz/corpus/device_objects/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::device_objects(data));
