#!/usr/bin/env bash
# Licenses per second: wrk POSTs a W3C ClearKey license request (two KIDs) with one fixed valid
# token to POST /.drm/clearkey, against a server verifying HS256 (HMAC secret), one verifying
# RS256 and PS256 (RSA-2048 public key from the config), one verifying ES256 (EC P-256 public key
# from the config) and one verifying RS256 and ES256 with the same keys published in a JWKS
# (served here by python3's http.server: the token names its kid), and, as the baseline of the
# same run, GET /healthz; the asymmetric rows also with the cache of verified tokens off
# (auth.token_cache_mb = 0). Each row reports req/s, its ratio to /healthz and the server's CPU time
# per request (utime+stime of /proc/PID/stat around the wrk run, all threads); the targets of
# issue 12.5 (RS256/PS256 >= 0.3x, ES256 >= 0.25x of /healthz) get a verdict.
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
# Writes rsa.pem and ec.pem (public), one token per row, body.json, the JWKS and the configs
# into $WORK.
PYTHONPATH="$ROOT/tests/e2e" python3 - "$WORK" <<'PY'
import sys, time
from pathlib import Path
import license_util as lu
w = Path(sys.argv[1])
rsa = lu.rsa_pair()
rsa.write(w / "rsa.pem")
ec = lu.ec_pair()
ec.write(w / "ec.pem")
c = lu.claims(exp=int(time.time()) + 24 * 3600)
(w / "hs.token").write_text(lu.hs256(c))
(w / "rs.token").write_text(rsa.sign(c))
(w / "ps.token").write_text(rsa.sign(c, alg="PS256"))
(w / "es.token").write_text(ec.sign(c))
(w / "jwks-rs.token").write_text(rsa.sign(c, headers={"kid": "bench-rsa"}))
(w / "jwks-es.token").write_text(ec.sign(c, headers={"kid": "bench-ec"}))
import json, jwt
rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa.private.public_key()))
rsa_jwk.update({"kid": "bench-rsa", "use": "sig"})
ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.private.public_key()))
ec_jwk.update({"kid": "bench-ec", "use": "sig"})
(w / "www").mkdir()
(w / "www" / "jwks.json").write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
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
(w / "es.toml").write_text(common + f'[auth]\npublic_keys = ["{w / "ec.pem"}"]\n' + rules)
(w / "jwks.toml.in").write_text(common + '[auth]\njwks_url = "@JWKS_URL@"\n' + rules)
# The same without the cache of verified tokens: every request verifies its signature.
for name in ("rs", "es", "jwks"):
    src = w / (name + (".toml.in" if name == "jwks" else ".toml"))
    dst = w / (name + "-nocache" + (".toml.in" if name == "jwks" else ".toml"))
    dst.write_text(src.read_text() + "token_cache_mb = 0\n")
PY

# start_origin CONFIG NAME -> sets STARTED_URL and STARTED_PID
start_origin() {
    RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --assets "$ROOT/assets" --listen 127.0.0.1:0 --config "$1" \
        >"$WORK/$2.out" 2>"$WORK/$2.log" &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    STARTED_URL=""
    for _ in $(seq 300); do
        STARTED_URL=$(sed -n 's/^drm-origin listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$WORK/$2.out" | head -n1)
        [ -n "$STARTED_URL" ] && return 0
        kill -0 "$STARTED_PID" 2>/dev/null || { cat "$WORK/$2.log" >&2; die "origin $2 exited"; }
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

# CPU time of a process in clock ticks: utime + stime (fields 14, 15 of /proc/PID/stat, all its
# threads), read as benches/load.sh reads it.
TCK=$(getconf CLK_TCK)
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# run_wrk TAG LABEL PID URL [LUA] -> appends "LABEL req/s cpu-ms-per-request p50 p99" (tab
# separated) to rows.tsv; fails on any non-2xx answer
run_wrk() {
    local tag=$1 name=$2 pid=$3 url=$4 lua=${5:-}
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency)
    [ -n "$lua" ] && args+=(-s "$lua")
    local before after
    before=$(ticks "$pid")
    wrk "${args[@]}" "$url" >"$WORK/$tag.wrk" 2>&1 || { cat "$WORK/$tag.wrk" >&2; die "wrk failed ($name)"; }
    after=$(ticks "$pid")
    if grep -q "Non-2xx" "$WORK/$tag.wrk"; then cat "$WORK/$tag.wrk" >&2; die "$name: non-2xx answers"; fi
    if grep -q "Socket errors" "$WORK/$tag.wrk"; then
        echo "warning ($name): $(grep 'Socket errors' "$WORK/$tag.wrk")" >&2
    fi
    awk -v dt="$(( after - before ))" -v tck="$TCK" -v name="$name" '
        /^Requests\/sec:/ { rps = $2 }
        /requests in/ { reqs = $1 }
        $1 == "50%" { p50 = $2 }
        $1 == "99%" { p99 = $2 }
        END { printf "%s\t%s\t%.4f\t%s\t%s\n", name, rps, (reqs > 0 ? dt * 1000 / tck / reqs : 0), p50, p99 }' \
        "$WORK/$tag.wrk" >>"$WORK/rows.tsv"
}

check_license() {  # URL TOKENFILE: one request by curl must be a 200 JWK set with two keys
    local code
    code=$(curl -s -o "$WORK/check.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $(cat "$2")" --data-binary @"$WORK/body.json" "$1/.drm/clearkey")
    [ "$code" = 200 ] || { cat "$WORK/check.json" >&2; die "license check: HTTP $code"; }
    python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["keys"]) == 2' "$WORK/check.json" \
        || die "license check: not two keys"
}

# license_row TAG LABEL URL PID: one license checked by curl, then the server loaded with that token
license_row() {
    check_license "$3" "$WORK/$1.token"
    license_lua "$WORK/$1.token" >"$WORK/$1.lua"
    run_wrk "$1" "$2" "$4" "$3/.drm/clearkey" "$WORK/$1.lua"
}

echo "license load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores, 2 KIDs per request, one fixed token per row"

start_origin "$WORK/hs.toml" hs
run_wrk health "GET /healthz (baseline)" "$STARTED_PID" "$STARTED_URL/healthz"
license_row hs "HS256 licenses" "$STARTED_URL" "$STARTED_PID"

start_origin "$WORK/rs.toml" rs
license_row rs "RS256 licenses" "$STARTED_URL" "$STARTED_PID"
license_row ps "PS256 licenses" "$STARTED_URL" "$STARTED_PID"
start_origin "$WORK/rs-nocache.toml" rs-nocache
license_row rs "RS256 licenses, no cache" "$STARTED_URL" "$STARTED_PID"
license_row ps "PS256 licenses, no cache" "$STARTED_URL" "$STARTED_PID"

start_origin "$WORK/es.toml" es
license_row es "ES256 licenses" "$STARTED_URL" "$STARTED_PID"
start_origin "$WORK/es-nocache.toml" es-nocache
license_row es "ES256 licenses, no cache" "$STARTED_URL" "$STARTED_PID"

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
for c in jwks jwks-nocache; do
    sed "s|@JWKS_URL@|http://127.0.0.1:$(cat "$WORK/idp.port")/jwks.json|" "$WORK/$c.toml.in" >"$WORK/$c.toml"
done
start_origin "$WORK/jwks.toml" jwks
license_row jwks-rs "RS256 licenses (JWKS)" "$STARTED_URL" "$STARTED_PID"
license_row jwks-es "ES256 licenses (JWKS)" "$STARTED_URL" "$STARTED_PID"
start_origin "$WORK/jwks-nocache.toml" jwks-nocache
license_row jwks-rs "RS256 (JWKS), no cache" "$STARTED_URL" "$STARTED_PID"
license_row jwks-es "ES256 (JWKS), no cache" "$STARTED_URL" "$STARTED_PID"

for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || die "a server died during the run"; done
echo
python3 - "$WORK/rows.tsv" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
health = float(rows[0][1])
# issue 12.5: asymmetric licenses against /healthz of the same run
targets = {"RS256": 0.30, "PS256": 0.30, "ES256": 0.25}
print(f"{'row':<26} {'req/s':>10} {'x healthz':>9} {'ms CPU/req':>10}  {'p50':<9} {'p99':<9} {'target':<8} verdict")
missed = {"cache on": 0, "no cache": 0}
for name, rps, cpu, p50, p99 in rows:
    ratio = float(rps) / health
    alg = name.split()[0]
    goal, verdict = "", ""
    if alg in targets:
        goal = f">={targets[alg]:.2f}x"
        verdict = "ok" if ratio >= targets[alg] else "MISSED"
        missed["no cache" if "no cache" in name else "cache on"] += verdict == "MISSED"
    print(f"{name:<26} {float(rps):>10,.0f} {ratio:>8.3f}x {float(cpu):>10.4f}  {p50:<9} {p99:<9} {goal:<8} {verdict}")
print("\nx healthz = the row's req/s / GET /healthz req/s of this run; ms CPU/req = the server's")
print("utime+stime (/proc/PID/stat, all threads) over the wrk run / requests answered.")
print("Rows without 'no cache' run with the cache of verified tokens on (the default): one fixed")
print("token per row, so after the first request they measure cache hits; 'no cache' rows")
print("(token_cache_mb = 0) verify the signature on every request.")
print(f"targets (issue 12.5): RS256/PS256 >= 0.30x, ES256 >= 0.25x of /healthz; missed: "
      f"{missed['cache on']} with the cache, {missed['no cache']} without")
PY
