//! Any document as a JWKS or an OpenID discovery document: keys or a named error.
//! The property lives in `drm_origin::fuzz_api::jwks`, which CI also replays over
//! `fuzz/corpus/jwks/` (tests/fuzz_replay.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::fuzz_api::jwks(data));
