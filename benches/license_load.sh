#!/usr/bin/env bash
# Licenses per second: wrk POSTs a W3C ClearKey license request (two KIDs) with one fixed valid
# token to POST /.drm/clearkey, against a server verifying HS256 (HMAC secret), one verifying
# RS256 (RSA-2048 public key from the config) and one verifying RS256 with the same key published
# in a JWKS (served here by python3's http.server: the token names its kid), and, as the baseline
# of the same run, GET /healthz.
#
#   bash benches/license_load.sh        (from the repo root; needs target/release/drm-origin and
#                                        python3 with PyJWT + cryptography: tests/requirements.txt)
#
# Environment: DURATION (s, default 5), CONNECTIONS (64), THREADS (2), RUST_LOG for the origin
# (default warn: no per-request log line), DRM_ORIGIN_BIN. Builds nothing; works in a private
# temp dir. Every license answer must be 200: a run with non-2xx answers fails.
set -euo pipefail

ROOT=$(pwd)
BIN=${DRM_ORIGIN_BIN:-$ROOT/target/release/drm-origin}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}

die() { echo "license_load.sh: $*" >&2; exit 1; }
[ -f "$ROOT/tests/e2e/license_util.py" ] || die "run me from the repo root (bash benches/license_load.sh)"
[ -x "$BIN" ] || die "$BIN missing: run cargo build --release first"
for t in wrk curl python3; do command -v "$t" >/dev/null || die "$t is not installed"; done
python3 -c 'import jwt, cryptography' 2>/dev/null || die "python3 needs PyJWT and cryptography (pip install -r tests/requirements.txt)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/drm-origin-licbench.XXXXXX")
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- keys, tokens, configs
# Writes rsa.pem (public), hs.token, rs.token, body.json and the two configs into $WORK.
PYTHONPATH="$ROOT/tests/e2e" python3 - "$WORK" <<'PY'
import sys, time
from pathlib import Path
import license_util as lu
w = Path(sys.argv[1])
pair = lu.rsa_pair()
pair.write(w / "rsa.pem")
c = lu.claims(exp=int(time.time()) + 24 * 3600)
(w / "hs.token").write_text(lu.hs256(c))
(w / "rs.token").write_text(pair.sign(c))
(w / "jwks.token").write_text(pair.sign(c, headers={"kid": "bench-key"}))
import json, jwt
jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pair.private.public_key()))
jwk.update({"kid": "bench-key", "use": "sig"})
(w / "www").mkdir()
(w / "www" / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
kids = [bytes.fromhex("8ba94ade6eb9449db44fa5beefaf43b0"), bytes.fromhex("11112222333344445555666677778888")]
(w / "body.json").write_bytes(lu.license_body(kids))
common = f'''[keys.v]
kid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"
key = "2b7e151628aed2a6abf7158809cf4f3c"
[keys.a]
kid = "11112222-3333-4444-5555-666677778888"
key = "00112233445566778899aabbccddeeff"
[policies.lic]
dash = ["cenc"]
hls = ["cbcs"]
key_delivery = "token"
keys = {{ video = "v", audio = "a" }}
[[assets]]
match = "**"
policy = "lic"
'''
rules = (f'issuer = "{lu.ISSUER}"\naudience = "{lu.AUDIENCE}"\n'
         'required_claims = { groups = "entitled" }\n')
(w / "hs.toml").write_text(common + f'[auth]\nhmac_secret = "{lu.HMAC_SECRET_B64}"\n' + rules)
(w / "rs.toml").write_text(common + f'[auth]\npublic_keys = ["{w / "rsa.pem"}"]\n' + rules)
(w / "jwks.toml.in").write_text(common + '[auth]\njwks_url = "@JWKS_URL@"\n' + rules)
PY

# start_origin CONFIG NAME -> sets STARTED_URL
start_origin() {
    RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --assets "$ROOT/assets" --listen 127.0.0.1:0 --config "$1" \
        >"$WORK/$2.out" 2>"$WORK/$2.log" &
    PIDS+=($!)
    STARTED_URL=""
    for _ in $(seq 300); do
        STARTED_URL=$(sed -n 's/^drm-origin listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$WORK/$2.out" | head -n1)
        [ -n "$STARTED_URL" ] && return 0
        sleep 0.1
    done
    cat "$WORK/$2.log" >&2
    die "origin $2 did not start"
}

# license_lua TOKENFILE -> a wrk script POSTing body.json with that bearer token
license_lua() {
    python3 - "$WORK/body.json" "$1" <<'PY'
import json, sys
body = open(sys.argv[1]).read()
token = open(sys.argv[2]).read().strip()
print(f'''wrk.method = "POST"
wrk.body = {json.dumps(body)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
''')
PY
}

# run_wrk TAG LABEL URL [LUA] -> prints req/s; fails on any non-2xx answer
run_wrk() {
    local tag=$1 name=$2 url=$3 lua=${4:-}
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency)
    [ -n "$lua" ] && args+=(-s "$lua")
    wrk "${args[@]}" "$url" >"$WORK/$tag.wrk" 2>&1 || { cat "$WORK/$tag.wrk" >&2; die "wrk failed ($name)"; }
    if grep -q "Non-2xx" "$WORK/$tag.wrk"; then cat "$WORK/$tag.wrk" >&2; die "$name: non-2xx answers"; fi
    if grep -q "Socket errors" "$WORK/$tag.wrk"; then
        echo "warning ($name): $(grep 'Socket errors' "$WORK/$tag.wrk")" >&2
    fi
    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/$tag.wrk")
    p50=$(awk '$1=="50%" {print $2}' "$WORK/$tag.wrk")
    p99=$(awk '$1=="99%" {print $2}' "$WORK/$tag.wrk")
    printf '%-24s %12s req/s   p50 %-9s p99 %s\n' "$name" "$rps" "$p50" "$p99" >>"$WORK/results.txt"
    echo "$rps"
}

check_license() {  # URL TOKENFILE: one request by curl must be a 200 JWK set with two keys
    local code
    code=$(curl -s -o "$WORK/check.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $(cat "$2")" --data-binary @"$WORK/body.json" "$1/.drm/clearkey")
    [ "$code" = 200 ] || { cat "$WORK/check.json" >&2; die "license check: HTTP $code"; }
    python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["keys"]) == 2' "$WORK/check.json" \
        || die "license check: not two keys"
}

echo "license load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores, 2 KIDs per request"

start_origin "$WORK/hs.toml" hs
HS_URL=$STARTED_URL
check_license "$HS_URL" "$WORK/hs.token"
license_lua "$WORK/hs.token" >"$WORK/hs.lua"
HEALTH=$(run_wrk health "GET /healthz (baseline)" "$HS_URL/healthz")
HS=$(run_wrk hs "HS256 licenses" "$HS_URL/.drm/clearkey" "$WORK/hs.lua")

start_origin "$WORK/rs.toml" rs
RS_URL=$STARTED_URL
check_license "$RS_URL" "$WORK/rs.token"
license_lua "$WORK/rs.token" >"$WORK/rs.lua"
RS=$(run_wrk rs "RS256 licenses" "$RS_URL/.drm/clearkey" "$WORK/rs.lua")

# The identity provider: a static JWKS on an ephemeral port (its port written to idp.port).
python3 - "$WORK/www" "$WORK/idp.port" <<'PY' &
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
handler = functools.partial(Quiet, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
open(sys.argv[2], "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/idp.port" ] && break; sleep 0.1; done
[ -s "$WORK/idp.port" ] || die "JWKS server did not start"
sed "s|@JWKS_URL@|http://127.0.0.1:$(cat "$WORK/idp.port")/jwks.json|" "$WORK/jwks.toml.in" >"$WORK/jwks.toml"
start_origin "$WORK/jwks.toml" jwks
JW_URL=$STARTED_URL
check_license "$JW_URL" "$WORK/jwks.token"
license_lua "$WORK/jwks.token" >"$WORK/jwks.lua"
JW=$(run_wrk jwks "RS256 licenses (JWKS)" "$JW_URL/.drm/clearkey" "$WORK/jwks.lua")

echo
cat "$WORK/results.txt"
python3 - "$HEALTH" "$HS" "$RS" "$JW" <<'PY'
import sys
h, hs, rs, jw = map(float, sys.argv[1:])
print(f"\nlicenses/s: HS256 {hs:,.0f} ({hs / h:.0%} of /healthz), RS256 {rs:,.0f} ({rs / h:.0%} of /healthz), "
      f"RS256 from a JWKS {jw:,.0f} ({jw / h:.0%} of /healthz, {jw / rs:.2f}x the configured RSA key)")
PY
