//! Any bytes as a manifest, playlist, init or media segment the reference client decrypts: an
//! error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drm_origin::client::media::fuzz_media(data));
