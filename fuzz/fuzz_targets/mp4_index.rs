//! Any bytes as an MP4 file: indexing must return a value or an error, never panic or hang.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = drm_origin::index::build(data, data.len() as u64);
});
