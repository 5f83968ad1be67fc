#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root or with sudo):
# ffmpeg/ffprobe (decoding judge), Chromium (playback judge), nginx + wrk (load baseline),
# xmllint, PostgreSQL (the tests start their own throwaway cluster), the Python judges (tests/requirements.txt) and the JS players (tests/browser).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in ffmpeg chromium nginx-light wrk libxml2-utils curl postgresql libnss3-tools systemd openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt
# pywidevine/pyplayready judge our PSSH boxes; pyplayready pins an older `cryptography`, so they
# live in their own venv (tests look for .venv-drm).
if [ ! -x .venv-drm/bin/python ] || ! .venv-drm/bin/python -c "import pywidevine, pyplayready" 2>/dev/null; then
    python3 -m venv .venv-drm
    .venv-drm/bin/pip install -q --disable-pip-version-check pywidevine==1.9.0 pyplayready==0.8.5
fi
# DASH-IF-CPS.xsd (ContentProtection license-URL schema) ships in the dash-mpd crate's sources.
if ! ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/dash-mpd-0.21.0/tests/fixtures/DASH-IF-CPS.xsd >/dev/null 2>&1; then
    d=$(mktemp -d)
    cargo init -q --vcs none --name cps-xsd "$d"
    echo 'dash-mpd = { version = "=0.21.0", default-features = false }' >> "$d/Cargo.toml"
    (cd "$d" && cargo fetch -q) || echo "setup: could not prefetch dash-mpd (the tests will try again)"
    rm -rf "$d"
fi
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
# The demo page's own copy of shaka-player (what scripts/demo.sh installs on a first run).
npm ci --prefix player --no-audit --no-fund --loglevel=error
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "setup: done"
