#!/usr/bin/env bash
# Load test: drm-origin against nginx serving the very same bytes as static files.
#
#   bash benches/load.sh            (from the repo root; needs target/release/drm-origin)
#
# Environment: DURATION (s, default 10), CONNECTIONS (64), THREADS (2), ASSET (multi),
# RUST_LOG for the origin (default warn: no per-request log line, as nginx runs with
# access_log off), DRM_ORIGIN_BIN to test another binary. Builds nothing; touches nothing outside
# a private temp dir (nginx gets its own prefix, pid, logs and temp paths).
set -euo pipefail

ROOT=$(pwd)
BIN=${DRM_ORIGIN_BIN:-$ROOT/target/release/drm-origin}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ASSET=${ASSET:-multi}

die() { echo "load.sh: $*" >&2; exit 1; }
[ -f "$ROOT/benches/nginx.conf.tmpl" ] || die "run me from the repo root (bash benches/load.sh)"
[ -x "$BIN" ] || die "$BIN missing: run cargo build --release first"
[ -d "$ROOT/assets" ] || die "no assets/ folder"
for t in nginx wrk curl python3 cmp; do
    command -v "$t" >/dev/null || die "$t is not installed (apt-get install -y nginx-light wrk curl)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/drm-origin-bench.XXXXXX")
ORIGIN_PID=""
NGINX_PID=""
ORIGIN2_PID=""
cleanup() {
    set +e
    if [ -n "$ORIGIN_PID" ]; then kill "$ORIGIN_PID" 2>/dev/null; wait "$ORIGIN_PID" 2>/dev/null; fi
    if [ -n "$ORIGIN2_PID" ]; then kill "$ORIGIN2_PID" 2>/dev/null; wait "$ORIGIN2_PID" 2>/dev/null; fi
    if [ -n "$NGINX_PID" ]; then kill -QUIT "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- origins
# Both serve every asset clear and protected (cenc and cbcs for DASH, cbcs and AES-128 for HLS)
# with fixed test keys; the second has the protected-segment cache off, so its encrypted rows
# measure encryption on every request.
drm_config() {
    cat <<CONF
[cache]
encrypted_segments_mb = $1
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
}
drm_config 256 >"$WORK/cache-on.toml"
drm_config 0 >"$WORK/cache-off.toml"

# start_origin CONFIG NAME -> sets STARTED_PID and STARTED_URL
start_origin() {
    RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --assets "$ROOT/assets" --listen 127.0.0.1:0 --config "$1" \
        >"$WORK/$2.out" 2>"$WORK/$2.log" &
    STARTED_PID=$!
    STARTED_URL=""
    for _ in $(seq 300); do
        STARTED_URL=$(sed -n 's/^drm-origin listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$WORK/$2.out" | head -n1)
        [ -n "$STARTED_URL" ] && break
        kill -0 "$STARTED_PID" 2>/dev/null || { cat "$WORK/$2.log" >&2; die "origin $2 exited"; }
        sleep 0.1
    done
    [ -n "$STARTED_URL" ] || { cat "$WORK/$2.log" >&2; die "origin $2 did not print its address"; }
}
start_origin "$WORK/cache-on.toml" origin
ORIGIN_PID=$STARTED_PID
ORIGIN=$STARTED_URL
start_origin "$WORK/cache-off.toml" origin2
ORIGIN2_PID=$STARTED_PID
ORIGIN2=$STARTED_URL

# wait until the asset is indexed (stable_after may delay the first scan)
for _ in $(seq 300); do
    curl -fsS -o /dev/null "$ORIGIN/$ASSET/manifest.mpd" 2>/dev/null && break
    sleep 0.1
done

# the biggest video rendition's second media segment (first if there is only one)
SEGMENT=$(curl -fsS "$ORIGIN/$ASSET/manifest.mpd" | PYTHONPATH="$ROOT/tests/e2e" python3 -c '
import sys
from http_util import parse_mpd
asset = sys.argv[1]
reps = [r for r in parse_mpd(sys.stdin.buffer.read(), f"/{asset}/manifest.mpd") if r.kind == "video"]
assert reps, "no video representation in the MPD"
best = max(reps, key=lambda r: r.bandwidth)
print(best.media[min(1, len(best.media) - 1)])
' "$ASSET") || die "could not pick a segment from $ORIGIN/$ASSET/manifest.mpd"
MPD="/$ASSET/manifest.mpd"
MASTER="/$ASSET/master.m3u8"
# the same segment in each protected variant, under the version its manifests give it
variant_of() {
    PYTHONPATH="$ROOT/tests/e2e" python3 -c '
import sys
from http_util import unversioned, versioned
base, seg, v = sys.argv[1:]
print(versioned(base, unversioned(seg)[:-len(".m4s")] + f".{v}.m4s"))
' "$ORIGIN" "$SEGMENT" "$1" || die "no $1 name for $SEGMENT"
}
SEG_CENC=$(variant_of cenc)
SEG_CBCS=$(variant_of cbcs)
SEG_AES=$(variant_of aes128)

# ---------------------------------------------------------------- nginx on the same bytes
WWW="$WORK/www"
for p in "$SEGMENT" "$MPD" "$MASTER" "$SEG_CENC" "$SEG_CBCS" "$SEG_AES"; do
    mkdir -p "$WWW$(dirname "$p")"
    curl -fsS -o "$WWW$p" "$ORIGIN$p" || die "GET $ORIGIN$p failed"
done
mkdir -p "$WORK/nginx"
chmod 755 "$WORK"                 # nginx workers run as nobody when we are root
chmod -R a+rX "$WWW"
NGINX_PORT=$(free_port)
sed -e "s#@PREFIX@#$WORK/nginx#g" -e "s#@ROOT@#$WWW#g" -e "s#@PORT@#$NGINX_PORT#g" \
    "$ROOT/benches/nginx.conf.tmpl" >"$WORK/nginx/nginx.conf"
nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
NGINX="http://127.0.0.1:$NGINX_PORT"
for _ in $(seq 100); do
    curl -fsS -o /dev/null "$NGINX$MPD" 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx/error.log" >&2; die "nginx exited"; }
    sleep 0.1
done

for p in "$SEGMENT" "$MPD" "$MASTER" "$SEG_CENC" "$SEG_CBCS" "$SEG_AES"; do
    curl -fsS -o "$WORK/a" "$ORIGIN$p"
    curl -fsS -o "$WORK/b" "$NGINX$p" || die "nginx does not serve $p"
    cmp -s "$WORK/a" "$WORK/b" || die "nginx and origin bytes differ for $p"
    # deterministic encryption: the cache-off origin produces the very same bytes
    curl -fsS -o "$WORK/c" "$ORIGIN2$p"
    cmp -s "$WORK/a" "$WORK/c" || die "cache-on and cache-off origins differ for $p"
done

# ---------------------------------------------------------------- wrk
# prints "req/s MiB/s non2xx errors"
run_wrk() {
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$1")
    echo "$out" >>"$WORK/wrk.txt"
    echo "$out" | awk '
        /^Requests\/sec:/ { rps = $2 }
        /^Transfer\/sec:/ {
            v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[A-Za-z]+$/, "", v)
            f = (unit == "GB") ? 1024 : (unit == "MB") ? 1 : (unit == "KB") ? 1/1024 : (unit == "TB") ? 1048576 : 1/1048576
            mbs = v * f
        }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { errs = $0; sub(/.*Socket errors: */, "", errs); gsub(/ /, "", errs) }
        END { printf "%s %.1f %s %s\n", rps, mbs, (non2xx == "" ? 0 : non2xx), (errs == "" ? "-" : errs) }'
}

size_of() { wc -c <"$WWW$1" | tr -d ' '; }

echo "drm-origin $ORIGIN vs nginx $NGINX: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores"
echo "segment: $SEGMENT ($(size_of "$SEGMENT") bytes; cenc $(size_of "$SEG_CENC"), cbcs $(size_of "$SEG_CBCS"), aes128 $(size_of "$SEG_AES")); mpd: $(size_of "$MPD") bytes; master: $(size_of "$MASTER") bytes"
echo
printf "%-16s %12s %12s %7s %12s %12s\n" target "origin req/s" "nginx req/s" ratio "origin MB/s" "nginx MB/s"
WARN=""
declare -A NGINX_RPS NGINX_MBS
for target in segment mpd master cenc cenc-nocache cbcs cbcs-nocache aes128 aes128-nocache; do
    base=$ORIGIN
    case $target in
        segment) p=$SEGMENT ;;
        mpd) p=$MPD ;;
        master) p=$MASTER ;;
        cenc*) p=$SEG_CENC ;;
        cbcs*) p=$SEG_CBCS ;;
        aes128*) p=$SEG_AES ;;
    esac
    case $target in *-nocache) base=$ORIGIN2 ;; esac
    read -r o_rps o_mbs o_bad o_err < <(run_wrk "$base$p")
    # nginx serves identical bytes for the cached and uncached rows: measure it once per path
    if [ -z "${NGINX_RPS[$p]:-}" ]; then
        read -r n_rps n_mbs n_bad n_err < <(run_wrk "$NGINX$p")
        NGINX_RPS[$p]=$n_rps
        NGINX_MBS[$p]=$n_mbs
        [ "$n_bad" = 0 ] || WARN="$WARN\n  nginx $target: $n_bad non-2xx responses"
        [ "$n_err" = - ] || WARN="$WARN\n  nginx $target: socket errors $n_err"
    fi
    n_rps=${NGINX_RPS[$p]}
    n_mbs=${NGINX_MBS[$p]}
    ratio=$(awk -v a="$o_rps" -v b="$n_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf "%-16s %12s %12s %7s %12s %12s\n" "$target" "$o_rps" "$n_rps" "$ratio" "$o_mbs" "$n_mbs"
    [ "$o_bad" = 0 ] || WARN="$WARN\n  origin $target: $o_bad non-2xx responses"
    [ "$o_err" = - ] || WARN="$WARN\n  origin $target: socket errors $o_err"
done
echo "(MB/s = 2^20 bytes/s of response incl. headers, from wrk's Transfer/sec)"
if [ -n "$WARN" ]; then
    echo -e "warnings:$WARN"
fi
kill -0 "$ORIGIN_PID" 2>/dev/null || { tail -n 50 "$WORK/origin.log" >&2; die "origin died during the run"; }
kill -0 "$ORIGIN2_PID" 2>/dev/null || { tail -n 50 "$WORK/origin2.log" >&2; die "origin (cache off) died during the run"; }
