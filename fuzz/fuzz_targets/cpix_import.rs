//! Any document as CPIX: import must return keys or a named error.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(xml) = std::str::from_utf8(data) {
        let _ = drm_origin::drm::cpix::import(xml);
    }
});
