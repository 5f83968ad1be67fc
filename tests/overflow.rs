//! The release profile keeps integer overflow checks on (Cargo.toml `overflow-checks = true`):
//! an arithmetic bug on a value from a file then fails one request instead of wrapping into a
//! wrong offset. This test fails if someone turns them off (it runs in release in tests/run.sh).

#[test]
#[allow(clippy::arithmetic_side_effects)]
fn overflow_checks_are_on() {
    let max = std::hint::black_box(u32::MAX);
    let r = std::panic::catch_unwind(|| max + std::hint::black_box(1));
    assert!(r.is_err(), "integer overflow wrapped: overflow-checks is off");
}
