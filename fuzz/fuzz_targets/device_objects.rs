//! Any bytes as a device request, a JWK, a JWE or an origin object the client reads: a refusal,
//! never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::license::device::fuzz_objects(data));
