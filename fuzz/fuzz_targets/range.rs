//! Any Range header against any length: the outcome must lie inside the representation.
#![no_main]
use drm_origin::http::range::{resolve, RangeOutcome};
libfuzzer_sys::fuzz_target!(|input: (&str, u64)| {
    let (header, len) = input;
    if let RangeOutcome::Partial { start, end } = resolve(Some(header), len) {
        assert!(start <= end && end < len, "{header:?} {len} -> {start}-{end}");
    }
});
