#!/usr/bin/env bash
# The whole test suite: lint, unit tests, then the real server judged by independent tools
# (ffmpeg/ffprobe, mpegdash/m3u8 parsers, headless Chromium with shaka-player, dash.js, hls.js).
# Needs the tools installed by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n=== %s\n' "$*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings

step "unit tests (and every fuzz target over its corpus plus deterministic mutations)"
cargo test --release

# Coverage-guided fuzzing (libFuzzer via cargo-fuzz), FUZZ_SECONDS per target; 0 skips it.
if [ "${FUZZ_SECONDS:-0}" -gt 0 ]; then
    step "fuzzing (${FUZZ_SECONDS}s per target)"
    bash scripts/fuzz.sh "$FUZZ_SECONDS"
fi

step "release build"
cargo build --release

step "end-to-end tests (real server on loopback)"
python3 -m pytest -q tests/e2e

step "browser playback (headless Chromium)"
node tests/browser/run.mjs

step "browser playback over chained policies (issue 11: an unknown leaf pssh, ContentProtection and session key in the content)"
CHAINED=1 node tests/browser/run.mjs multi

step "the demo page's browser device client (issue 11: WebCrypto device, root + leaf, factory reset)"
node tests/browser/device_page.mjs

step "demo player page (headless Chromium)"
node tests/browser/player_page.mjs

step "operations in Chromium: the demo from the README's first command, https/h2 with a trusted test CA, an export on nginx"
node tests/browser/ops.mjs
