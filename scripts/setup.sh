#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root or with sudo):
# ffmpeg/ffprobe (decoding judge), Chromium (playback judge), nginx + wrk (load baseline),
# xmllint, the Python judges (tests/requirements.txt) and the JS players (tests/browser).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in ffmpeg chromium nginx-light wrk libxml2-utils curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "setup: done"
