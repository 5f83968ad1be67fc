//! Any document as a JWKS or an OpenID discovery document: keys or a named error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = drm_origin::license::jwks::parse_jwks(data);
    let _ = drm_origin::license::jwks::parse_discovery(data, Some("https://idp.example/"));
});
