#!/usr/bin/env bash
# Catalog scale (issue 12.4), against the real server:
#  1. a 2-hour fragmented asset made by looping assets/fragmented.mp4 with ffmpeg (stream copy):
#     time from start until its MPD answers, and the server's RSS with it minus an empty folder's
#     (the index held for it), per rendition-hour;
#  2. COUNT (1000) assets (hard links of assets/fragmented.mp4, distinct names): time from start
#     until every one's MPD answers, and the time the first request for the last asset took.
#
#   bash benches/catalog_scale.sh      (from the repo root; needs target/release/drm-origin, ffmpeg)
#
# Environment: HOURS (2), COUNT (1000), DRM_ORIGIN_BIN. Hold `flock /work/.heavy.lock` around it.
set -euo pipefail
ROOT=$(pwd)
BIN=${DRM_ORIGIN_BIN:-$ROOT/target/release/drm-origin}
HOURS=${HOURS:-2}
COUNT=${COUNT:-1000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drm-origin-scale.XXXXXX")
PID=""
cleanup() { set +e; [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
now() { date +%s.%N; }
printf '[storage]\nrescan_interval_ms = 50\nstable_after_ms = 0\n' >"$WORK/c.toml"

# start DIR -> PID, URL; T0 = just before exec
start() {
    T0=$(now)
    RUST_LOG=warn "$BIN" serve --assets "$1" --listen 127.0.0.1:0 --config "$WORK/c.toml" >"$WORK/out" 2>"$WORK/log" &
    PID=$!
    URL=""
    for _ in $(seq 3000); do
        URL=$(sed -n 's/^drm-origin listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$WORK/out" | head -n1)
        [ -n "$URL" ] && break
        sleep 0.01
    done
    [ -n "$URL" ] || { cat "$WORK/log" >&2; exit 1; }
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
wait_ok() { for _ in $(seq 20000); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.005; done; return 1; }

# ---- 1. one long asset
SRC=$ROOT/assets/fragmented.mp4
DUR=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$SRC")
LOOPS=$(awk -v d="$DUR" -v h="$HOURS" 'BEGIN { printf "%d", h * 3600 / d }')
mkdir -p "$WORK/long" "$WORK/empty"
ffmpeg -v error -stream_loop "$((LOOPS - 1))" -i "$SRC" -map 0 -c copy \
    -movflags +frag_keyframe+empty_moov+delay_moov+default_base_moof "$WORK/long/long.mp4"
LEN=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$WORK/long/long.mp4")
TRACKS=$(ffprobe -v error -show_entries stream=index -of csv=p=0 "$WORK/long/long.mp4" | wc -l)
start "$WORK/empty"; wait_ok "$URL/healthz"; sleep 0.3; EMPTY_RSS=$(rss_kb); stop
cat /dev/null >"$WORK/out"
start "$WORK/long"
wait_ok "$URL/long/manifest.mpd"
T1=$(now)
sleep 0.3
LONG_RSS=$(rss_kb)
stop
awk -v t0="$T0" -v t1="$T1" -v len="$LEN" -v sz="$(stat -c %s "$WORK/long/long.mp4")" -v tr="$TRACKS" \
    -v a="$EMPTY_RSS" -v b="$LONG_RSS" 'BEGIN {
    h = len / 3600
    printf "long asset: %.2f h, %d tracks, %.0f MB: start→MPD %.0f ms (includes process start and the first scan)\n", h, tr, sz / 1e6, (t1 - t0) * 1000
    printf "  RSS %d kB (empty folder %d kB): %.2f MB more, %.2f MB per rendition-hour (target < 2)\n", b, a, (b - a) / 1024, (b - a) / 1024 / tr / h }'

# ---- 2. many assets
mkdir -p "$WORK/many"
for i in $(seq -w 1 "$COUNT"); do ln "$SRC" "$WORK/many/a$i.mp4"; done
LAST=$(printf "a%0${#COUNT}d" "$COUNT")
cat /dev/null >"$WORK/out"
start "$WORK/many"
TF=$(now)
wait_ok "$URL/$LAST/manifest.mpd"
T2=$(now)
for i in $(seq -w 1 "$COUNT"); do wait_ok "$URL/a$i/manifest.mpd"; done
T3=$(now)
awk -v t0="$T0" -v tf="$TF" -v t2="$T2" -v t3="$T3" -v n="$COUNT" 'BEGIN {
    printf "%d assets: the last one'\''s MPD answered %.0f ms after start; all %d answered by %.0f ms (target < 10000)\n", n, (t2 - t0) * 1000, n, (t3 - t0) * 1000 }'
