#!/usr/bin/env bash
# The README's first command: serves the sample assets in assets/ with the shipped DEMO
# configuration (config/demo.toml: one asset protected with open ClearKey, one token-gated, one
# clear) and prints the demo page URLs, the manifest URLs and the command that mints a token.
#
#   bash scripts/demo.sh [serve options, e.g. --listen 127.0.0.1:9000]
#
# The demo page's player library (shaka-player) comes from the npm registry: it is installed
# into player/node_modules on the first run (npm ci, pinned by player/package-lock.json); Node.js
# and npm are installed with apt-get when missing. Nothing is fetched by the page at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB=player/node_modules/shaka-player/dist/shaka-player.compiled.js
if [ ! -f "$LIB" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO=sudo
        echo "demo: installing Node.js and npm (apt-get) for the demo page's player library" >&2
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
    fi
    echo "demo: installing the demo page's player library (npm ci --prefix player)" >&2
    npm ci --prefix player --no-audit --no-fund --loglevel=error >&2
fi
exec cargo run --release -- serve --config config/demo.toml "$@"
