#!/usr/bin/env bash
# Catalog scale (issue 12.4), against the real server:
#  1. a HOURS-hour asset made by looping assets/fragmented.mp4 with ffmpeg (stream copy), once
#     fragmented and once progressive (moov/stbl): wall time from exec until its MPD answers, the
#     indexing time the server reports (/metrics origin_index_seconds_max), the index size it
#     computes (origin_index_bytes) and its RSS minus an empty folder's, per rendition-hour;
#  2. COUNT (1000) assets (hard links of assets/fragmented.mp4, distinct names): time from exec
#     until every one's MPD answers (one keep-alive client polling them all), and how long the
#     last asset's first MPD took to answer;
#  3. LONGS (50) hard links of the long asset: how soon the last one's MPD answers (it must not
#     wait for the others' indexing) against the time until all of them answer.
#
#   bash benches/catalog_scale.sh      (from the repo root; needs target/release/drm-origin, ffmpeg)
#
# Environment: HOURS (2), COUNT (1000), LONGS (50), DRM_ORIGIN_BIN. Hold `flock /work/.heavy.lock`.
set -euo pipefail
ROOT=$(pwd)
BIN=${DRM_ORIGIN_BIN:-$ROOT/target/release/drm-origin}
HOURS=${HOURS:-2}
COUNT=${COUNT:-1000}
LONGS=${LONGS:-50}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drm-origin-scale.XXXXXX")
PID=""
cleanup() { set +e; [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
now() { date +%s.%N; }
printf '[storage]\nrescan_interval_ms = 50\nstable_after_ms = 0\n' >"$WORK/c.toml"

# start DIR -> PID, URL; T0 = just before exec
start() {
    cat /dev/null >"$WORK/out"
    # A fixed free port, so requests can start before the first scan ends (the "listening"
    # line is printed after it).
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    URL=http://127.0.0.1:$PORT
    T0=$(now)
    RUST_LOG=warn "$BIN" serve --assets "$1" --listen "127.0.0.1:$PORT" --config "$WORK/c.toml" >"$WORK/out" 2>"$WORK/log" &
    PID=$!
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
metric() { curl -fsS "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# poll T0 URL PATH... : one keep-alive connection asks for each path until it answers 200.
# Prints: seconds from T0 until the first path (the one asked first) answered, the duration of that answering request,
# seconds until all answered.
poll() {
    python3 - "$@" <<'EOF'
import http.client, sys, time, urllib.parse
t0, url, paths = float(sys.argv[1]), urllib.parse.urlparse(sys.argv[2]), sys.argv[3:]
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
def ok(path):
    global conn
    try:
        conn.request("GET", path)
        r = conn.getresponse(); r.read()
        return r.status == 200
    except (OSError, http.client.HTTPException):
        conn.close(); conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        return False
first = None
left = list(paths)
deadline = time.time() + 600
while left and time.time() < deadline:
    nxt = []
    for p in left:
        a = time.time()
        if ok(p):
            if p == paths[0]:
                first = (a - t0, time.time() - a)
        else:
            nxt.append(p)
    if nxt:
        time.sleep(0.002)
    left = nxt
if left:
    sys.exit(f"{len(left)} paths never answered")
print(f"{first[0]:.4f} {first[1]:.4f} {time.time() - t0:.4f}")
EOF
}

SRC=$ROOT/assets/fragmented.mp4
DUR=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$SRC")
LOOPS=$(awk -v d="$DUR" -v h="$HOURS" 'BEGIN { printf "%d", h * 3600 / d }')
mkdir -p "$WORK/empty" "$WORK/frag" "$WORK/prog"
ffmpeg -v error -stream_loop "$((LOOPS - 1))" -i "$SRC" -map 0 -c copy \
    -movflags +frag_keyframe+empty_moov+delay_moov+default_base_moof "$WORK/frag/long.mp4"
ffmpeg -v error -stream_loop "$((LOOPS - 1))" -i "$SRC" -map 0 -c copy "$WORK/prog/long.mp4"
start "$WORK/empty"; poll "$T0" "$URL" /healthz >/dev/null; sleep 0.3; EMPTY_RSS=$(rss_kb); stop
echo "empty folder: RSS $EMPTY_RSS kB"

# ---- 1. one long asset, fragmented and progressive
for kind in frag prog; do
    F=$WORK/$kind/long.mp4
    LEN=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$F")
    TRACKS=$(ffprobe -v error -show_entries stream=index -of csv=p=0 "$F" | wc -l)
    start "$WORK/$kind"
    read -r T_MPD _ _ < <(poll "$T0" "$URL" /long/manifest.mpd)
    sleep 0.3
    RSS=$(rss_kb)
    IX_S=$(metric origin_index_seconds_max)
    IX_B=$(metric origin_index_bytes)
    stop
    awk -v kind="$kind" -v t="$T_MPD" -v len="$LEN" -v sz="$(stat -c %s "$F")" -v tr="$TRACKS" \
        -v a="$EMPTY_RSS" -v b="$RSS" -v ixs="$IX_S" -v ixb="$IX_B" 'BEGIN {
        h = len / 3600
        printf "long asset (%s): %.2f h, %d tracks, %.0f MB: exec→MPD %.0f ms; indexing (server) %.1f ms (target < 100)\n", kind, h, tr, sz / 1e6, t * 1000, ixs * 1000
        printf "  index (server-computed) %.0f kB: %.3f MB per rendition-hour (target < 2)\n", ixb / 1024, ixb / 1048576 / tr / h
        printf "  RSS %d kB (empty folder %d kB): +%.2f MB, %.2f MB per rendition-hour\n", b, a, (b - a) / 1024, (b - a) / 1024 / tr / h }'
done

# ---- 2. many assets
mkdir -p "$WORK/many"
for i in $(seq -w 1 "$COUNT"); do ln "$SRC" "$WORK/many/a$i.mp4"; done
LAST=$(printf "a%0${#COUNT}d" "$COUNT")
PATHS=("/$LAST/manifest.mpd")
for i in $(seq 1 "$((COUNT - 1))"); do PATHS+=("$(printf "/a%0${#COUNT}d/manifest.mpd" "$i")"); done
start "$WORK/many"
read -r T_LAST T_REQ T_ALL < <(poll "$T0" "$URL" "${PATHS[@]}")
IX_N=$(metric origin_index_files_total); IX_T=$(metric origin_index_seconds_total)
stop
awk -v n="$COUNT" -v tl="$T_LAST" -v tr="$T_REQ" -v ta="$T_ALL" -v ixn="$IX_N" -v ixt="$IX_T" 'BEGIN {
    printf "%d assets: all MPDs answered %.0f ms after exec (target < 10000); the last asset'\''s first MPD answered at %.0f ms (that request took %.1f ms); server: %d files indexed in %.0f ms\n", n, ta * 1000, tl * 1000, tr * 1000, ixn, ixt * 1000 }'

# ---- 3. many long assets: the last one's first request against the whole folder
mkdir -p "$WORK/longs"
for i in $(seq -w 1 "$LONGS"); do ln "$WORK/frag/long.mp4" "$WORK/longs/l$i.mp4"; done
LAST=$(printf "l%0${#LONGS}d" "$LONGS")
PATHS=("/$LAST/manifest.mpd")
for i in $(seq 1 "$((LONGS - 1))"); do PATHS+=("$(printf "/l%0${#LONGS}d/manifest.mpd" "$i")"); done
start "$WORK/longs"
read -r T_LAST T_REQ T_ALL < <(poll "$T0" "$URL" "${PATHS[@]}")
stop
awk -v n="$LONGS" -v tl="$T_LAST" -v tr="$T_REQ" -v ta="$T_ALL" 'BEGIN {
    printf "%d long assets: the last one'\''s MPD answered %.0f ms after exec (that request took %.1f ms); all answered by %.0f ms\n", n, tl * 1000, tr * 1000, ta * 1000 }'
