//! Any request path: routing must classify it without panicking.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = drm_origin::http::routes::parse(path);
    }
});
