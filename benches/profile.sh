#!/usr/bin/env bash
# perf profile of the uncached protected segment paths (cenc, cbcs, HLS AES-128): one origin with
# the protected-segment cache off, `perf record -g` on it while wrk asks for one segment.
#
#   bash benches/profile.sh [OUTDIR]      (needs perf: apt-get install -y linux-perf)
#
# Writes OUTDIR/<variant>.txt (perf report --no-children, top symbols). Environment: ASSET (multi:
# the segment is its biggest video rendition's second, as in benches/load.sh), DURATION (5),
# DRM_ORIGIN_BIN, VARIANTS ("cenc cbcs aes128"; "clear" is the unprotected segment), CACHE_MB (0:
# the protected-segment cache off; e.g. 256 profiles cache hits). Hold `flock /work/.heavy.lock` around it on a shared machine.
set -euo pipefail
ROOT=$(pwd)
BIN=${DRM_ORIGIN_BIN:-$ROOT/target/release/drm-origin}
DURATION=${DURATION:-5}
OUT=${1:-$ROOT/target/profile}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drm-origin-profile.XXXXXX")
PID=""
cleanup() { set +e; [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cat >"$WORK/c.toml" <<CONF
[cache]
encrypted_segments_mb = ${CACHE_MB:-0}
[keys.v]
kid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"
key = "2b7e151628aed2a6abf7158809cf4f3c"
[keys.e]
kid = "aaaabbbb-cccc-dddd-eeee-ffff00001111"
key = "0f0e0d0c0b0a09080706050403020100"
[policies.bench]
dash = ["clear", "cenc", "cbcs"]
hls = ["clear", "cbcs", "aes128"]
allow_clear = true
key_delivery = "open"
keys = { video = "v", envelope = "e" }
[[assets]]
match = "**"
policy = "bench"
CONF
RUST_LOG=warn "$BIN" serve --assets "$ROOT/assets" --listen 127.0.0.1:0 --config "$WORK/c.toml" >"$WORK/out" 2>"$WORK/log" &
PID=$!
URL=""
for _ in $(seq 300); do
    URL=$(sed -n 's/^drm-origin listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$WORK/out" | head -n1)
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/log" >&2; exit 1; }
ASSET=${ASSET:-multi}
for _ in $(seq 300); do curl -fsS -o /dev/null "$URL/$ASSET/manifest.mpd" && break; sleep 0.1; done
for v in ${VARIANTS:-cenc cbcs aes128}; do
    seg=$(python3 "$ROOT/benches/segment_path.py" "$URL" "$ASSET" "$v")
    perf record -q -g -p "$PID" -o "$WORK/$v.data" -- sleep "$DURATION" 2>/dev/null &
    rec=$!
    wrk -t1 -c16 -d"${DURATION}s" "$URL$seg" >"$OUT/$v.wrk.txt"
    wait "$rec" || true
    perf report -q -i "$WORK/$v.data" --no-children --sort symbol --percent-limit 0.8 2>/dev/null |
        grep -v '^$' | grep '%' | head -n 40 >"$OUT/$v.txt"
    echo "== $v ($seg)"; head -n 25 "$OUT/$v.txt"
done
