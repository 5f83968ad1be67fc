#!/usr/bin/env bash
# Pre-generation benchmark (issue 10): DEVICES registered devices × ASSETS assets of device
# licenses written into a fresh license folder by `drm-origin licenses generate`, then a rerun
# that must write nothing. Reports wall time, CPU time (user+sys of the command), files, bytes
# (reported, apparent and allocated on disk), and the same figures for a baseline measured in the
# same run: plain atomic writes (temp file, fsync, rename) of as many files of the same size,
# without crypto, so the ratio shows what the licensing work costs on top of the file system.
#
#   bash benches/licenses.sh                  # 1000 devices × 20 assets
#   DEVICES=100 ASSETS=5 bash benches/licenses.sh
#   FSYNC=false bash benches/licenses.sh      # without fsync (throwaway disks only)
#
# Needs: a release build, python3 with joserfc (tests/requirements.txt). Not a timed test.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${DEVICES:-1000}
ASSETS=${ASSETS:-20}
FSYNC=${FSYNC:-true}
BIN=${DRM_ORIGIN_BIN:-target/release/drm-origin}
[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d /tmp/drm-licenses-bench.XXXXXX)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/assets" "$WORK/state"
for i in $(seq -w 1 "$ASSETS"); do
    ln "assets/progressive.mp4" "$WORK/assets/a$i.mp4" 2>/dev/null || cp "assets/progressive.mp4" "$WORK/assets/a$i.mp4"
done
config() {  # $1 = license folder
cat <<EOF
[storage]
dir = "$WORK/assets"
stable_after_ms = 0
[keystore]
path = "$WORK/state/keys.json"
[auth]
hmac_secret = "ZHJtLW9yaWdpbiBiZW5jaCBzZWNyZXQgKHB1YmxpYyEpISEhISEhISE="
[policies.dev]
dash = ["cenc"]
hls = ["cbcs", "aes128"]
device_licenses = "direct"
keys = { video = "auto", audio = "auto", envelope = "auto" }
[[assets]]
match = "**"
policy = "dev"
[devices]
registry = "sqlite:$WORK/state/devices.sqlite3"
secret_file = "$WORK/state/device-master.key"
signing_key = "$WORK/state/origin-signing.pem"
max_devices_per_subject = 10000
[licenses]
dir = "$1"
regenerate_every_secs = 86400
fsync = $FSYNC
EOF
}
config "$WORK/registration-licenses" > "$WORK/origin.toml"
config "$WORK/bench-licenses" > "$WORK/bench.toml"

echo "== registering $DEVICES devices (joserfc-signed requests, 4 clients) on $ASSETS assets"
"$BIN" serve --assets "$WORK/assets" --config "$WORK/origin.toml" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/log" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/out" && break; sleep 0.1; done
BASE=$(sed -n 's/^drm-origin listening on //p' "$WORK/out")
TOKEN=$("$BIN" token --config "$WORK/origin.toml" --sub bench --ttl 2d)
python3 - "$BASE" "$TOKEN" "$DEVICES" <<'EOF'
import json, sys, time, urllib.request, uuid
from concurrent.futures import ThreadPoolExecutor
from joserfc import jws
from joserfc.jwk import ECKey
base, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def reg(_):
    enc, sig, dev = ECKey.generate_key("P-256"), ECKey.generate_key("P-256"), str(uuid.uuid4())
    p = {"v": 1, "act": "register", "dev": dev, "iat": int(time.time()), "jti": uuid.uuid4().hex,
         "aud": "/.drm/device/register", "enc": enc.as_dict(private=False), "sig": sig.as_dict(private=False)}
    r = jws.serialize_compact({"alg": "ES256", "kid": dev, "typ": "drm-origin/device-request+jws"},
                              json.dumps(p).encode(), sig, algorithms=["ES256"])
    req = urllib.request.Request(base + "/.drm/device/register", data=json.dumps({"request": r}).encode(),
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as a:
        assert a.status == 201
t = time.time()
with ThreadPoolExecutor(4) as pool:
    list(pool.map(reg, range(n)))
print(f"registered {n} devices in {time.time() - t:.1f} s (each registration writes its folder)")
EOF
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

run_generate() {  # prints the command's JSON report plus its wall and CPU (user+sys) seconds
    python3 - "$BIN" "$WORK/bench.toml" <<'EOF'
import json, resource, subprocess, sys, time
t = time.time()
p = subprocess.run([sys.argv[1], "licenses", "generate", "--config", sys.argv[2], "--json"], capture_output=True, text=True)
wall = time.time() - t
if p.returncode != 0:
    sys.exit(p.stderr)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
d = json.loads(p.stdout.strip().splitlines()[-1])
d.update(wall=round(wall, 2), cpu=round(r.ru_utime + r.ru_stime, 2))
print(json.dumps(d))
EOF
}

echo "== licenses generate into an empty folder (fsync=$FSYNC)"
FIRST=$(run_generate first); echo "$FIRST"
echo "== rerun (nothing changed)"
SECOND=$(run_generate rerun); echo "$SECOND"
PUBLIC="$WORK/bench-licenses/public"
FILES=$(find "$PUBLIC" -type f | wc -l)
APPARENT=$(find "$PUBLIC" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
ALLOCATED=$(( $(du -sk "$PUBLIC" | cut -f1) * 1024 ))
"$BIN" licenses check --config "$WORK/bench.toml" >/dev/null

echo "== baseline: the same number of files of the same mean size, atomic writes, no crypto"
BASE_JSON=$(python3 - "$WORK/baseline" "$FILES" "$APPARENT" "$FSYNC" <<'EOF'
import json, os, resource, sys, time
root, n, total, fsync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "true"
size = max(1, total // max(n, 1))
data = os.urandom(size)
os.makedirs(root + "/staging"); t = time.time(); r0 = resource.getrusage(resource.RUSAGE_SELF)
for i in range(n):
    d = f"{root}/public/v1/d/{i // 21:06d}"
    os.makedirs(d, exist_ok=True)
    tmp = f"{root}/staging/{i}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            os.fdatasync(f.fileno())
    os.rename(tmp, f"{d}/{i}.lic")
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"files": n, "wall": round(time.time() - t, 2),
                  "cpu": round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, 2)}))
EOF
)
echo "$BASE_JSON"

python3 - "$FIRST" "$SECOND" "$BASE_JSON" "$FILES" "$APPARENT" "$ALLOCATED" "$DEVICES" "$ASSETS" <<'EOF'
import json, sys
first, second, base = (json.loads(x) for x in sys.argv[1:4])
files, apparent, allocated, devices, assets = map(int, sys.argv[4:9])
print()
print(f"pre-generation, {devices} devices x {assets} assets on {open('/proc/cpuinfo').read().count('processor')} cores:")
print(f"  first run : {first['wall']} s wall, {first['cpu']} s CPU, {first['written']} files written, "
      f"{first['bytes']} bytes reported")
print(f"  folder    : {files} files, {apparent} bytes apparent, {allocated} bytes allocated")
print(f"  per file  : {1000 * first['cpu'] / max(first['written'], 1):.2f} ms CPU, {apparent / max(files, 1):.0f} bytes")
print(f"  rerun     : {second['wall']} s wall, {second['cpu']} s CPU, {second['written']} files written, "
      f"{second['unchanged']} unchanged")
print(f"  baseline  : {base['wall']} s wall, {base['cpu']} s CPU for {base['files']} plain atomic writes "
      f"-> generate/baseline wall ratio {first['wall'] / max(base['wall'], 0.01):.1f}x")
assert first["assets"] == assets and first["folders"] == devices, first
assert second["written"] == 0, "a rerun over an unchanged registry must write nothing"
EOF
