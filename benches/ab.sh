#!/usr/bin/env bash
# A/B of drm-origin binaries on one segment: the server's CPU time per request (utime+stime of
# /proc/PID/stat around a wrk run), each binary in turn for ROUNDS rounds, then the medians.
# On a noisy 2-core machine one run of each says little; interleaved rounds and medians do.
#
#   BINS="/tmp/old /tmp/new" ASSET=hevc VARIANTS="clear cenc" CACHE_MB=0 ROUNDS=5 bash benches/ab.sh
#
# Environment: BINS (required), ASSET (multi), VARIANTS ("clear cenc"; "mpd" is the asset's MPD), CACHE_MB (0: the
# protected-segment cache off; 256 measures cache hits), ROUNDS (3), DURATION (3 s), LOAD (1:16,
# wrk threads:connections). The segment is the asset's biggest video rendition's second, as in
# benches/load.sh. Hold `flock /work/.heavy.lock` around it on a shared machine.
set -euo pipefail
ROOT=$(pwd)
[ -f "$ROOT/benches/profile.sh" ] || { echo "run me from the repo root" >&2; exit 1; }
[ -n "${BINS:-}" ] || { echo "BINS=\"bin1 bin2\" is required" >&2; exit 1; }
ASSET=${ASSET:-multi}
LOAD=${LOAD:-1:16}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drm-origin-ab.XXXXXX")
PID=""
cleanup() { set +e; [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
# the configuration of benches/profile.sh, with the cache size asked for
sed -n '/^cat >"$WORK\/c.toml" <<CONF/,/^CONF/p' "$ROOT/benches/profile.sh" | sed '1d;$d' |
    sed "s/\${CACHE_MB:-0}/${CACHE_MB:-0}/" >"$WORK/c.toml"

one() { # BIN -> lines "variant ms_per_request"
    "$1" serve --assets "$ROOT/assets" --listen 127.0.0.1:0 --config "$WORK/c.toml" >"$WORK/out" 2>"$WORK/log" &
    PID=$!
    local url="" seg v a b n
    for _ in $(seq 100); do
        url=$(sed -n 's/^drm-origin listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$WORK/out" | head -n1)
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || { cat "$WORK/log" >&2; exit 1; }
    for _ in $(seq 300); do curl -fsS -o /dev/null "$url/$ASSET/manifest.mpd" && break; sleep 0.1; done
    for v in ${VARIANTS:-clear cenc}; do
        seg=$(python3 "$ROOT/benches/segment_path.py" "$url" "$ASSET" "$v")
        curl -fsS -o /dev/null "$url$seg"
        a=$(awk '{print $14 + $15}' "/proc/$PID/stat")
        n=$(wrk -t"${LOAD%%:*}" -c"${LOAD##*:}" -d"${DURATION:-3}s" "$url$seg" | awk '/requests in/{print $1}')
        b=$(awk '{print $14 + $15}' "/proc/$PID/stat")
        echo "$v $(python3 -c "import os,sys; print((int(sys.argv[2]) - int(sys.argv[1])) * 1000 / os.sysconf('SC_CLK_TCK') / int(sys.argv[3]))" "$a" "$b" "$n")"
    done
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

for r in $(seq "${ROUNDS:-3}"); do
    for bin in $BINS; do
        one "$bin" | sed "s|^|$bin |" >>"$WORK/results"
    done
    echo "round $r done" >&2
done
python3 - "$WORK/results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, v, ms = line.split()
    runs[(v, b)].append(float(ms))
print(f"{'variant':8} {'median ms/req':>14}  runs  binary")
for (v, b), xs in sorted(runs.items()):
    print(f"{v:8} {statistics.median(xs):14.4f}  {' '.join(f'{x:.4f}' for x in xs)}  {b}")
PY
