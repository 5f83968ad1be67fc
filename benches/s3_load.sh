#!/usr/bin/env bash
# Object storage costs: drm-origin over an S3 bucket (moto_server on loopback) next to
# drm-origin over the same files in a local folder, measured in the same run.
#
#   bash benches/s3_load.sh           (from the repo root; needs target/release/drm-origin,
#                                       moto_server, wrk; see tests/requirements.txt)
#
# Rows (wrk -t$THREADS -c$CONNECTIONS -d$DURATION on one segment, the biggest video rendition's
# second; req/s, the origin's CPU ms per request from /proc/PID/stat):
#   clear / cenc               local folder vs bucket with a warm chunk cache
#   clear-nochunks / cenc-...  bucket with storage.cache_bytes = 0: every request is ranged GETs
# then a cold sweep: every media segment of every rendition fetched once from a fresh node
# (chunk cache empty): median and p90 latency local vs bucket, and storage bytes fetched per
# byte of sample data served (origin_storage_data_bytes_total / media bytes).
# The protected-segment cache is off on every node, so cenc rows read and encrypt every time.
# Environment: DURATION (s, default 8), CONNECTIONS (16), THREADS (2), ASSET (multi).
set -euo pipefail
[ -f benches/s3_load.sh ] || { echo "run me from the repo root" >&2; exit 1; }
exec python3 - "$@" <<'PY'
import os, re, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT / "tests/e2e"))
from services import S3Server  # noqa: E402
from http_util import parse_mpd, unversioned, versioned  # noqa: E402

BIN = os.environ.get("DRM_ORIGIN_BIN", str(ROOT / "target/release/drm-origin"))
DURATION = int(os.environ.get("DURATION", "8"))
CONNS = int(os.environ.get("CONNECTIONS", "16"))
THREADS = int(os.environ.get("THREADS", "2"))
ASSET = os.environ.get("ASSET", "multi")
TICK = os.sysconf("SC_CLK_TCK")
work = Path(tempfile.mkdtemp(prefix="drm-s3-bench-"))
procs = []

POLICY = """[cache]
encrypted_segments_mb = 0
[keys.v]
kid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"
key = "2b7e151628aed2a6abf7158809cf4f3c"
[policies.bench]
dash = ["clear", "cenc"]
hls = ["clear"]
allow_clear = true
key_delivery = "open"
keys = { video = "v", audio = "v" }
[[assets]]
match = "**"
policy = "bench"
"""


def start(name, storage, env=None):
    cfg = work / f"{name}.toml"
    cfg.write_text(storage + POLICY)
    out = open(work / f"{name}.out", "w+")
    p = subprocess.Popen([BIN, "serve", "--assets", str(ROOT / "assets"), "--listen", "127.0.0.1:0",
                          "--config", str(cfg)], stdout=out, stderr=open(work / f"{name}.log", "w"),
                         env={**os.environ, "RUST_LOG": "warn", **(env or {})})
    procs.append(p)
    for _ in range(300):
        m = re.search(r"drm-origin listening on (http://[0-9.:]+)", (work / f"{name}.out").read_text())
        if m:
            url = m.group(1)
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/{ASSET}/manifest.mpd", timeout=5).read()
                    return p, url
                except Exception:
                    time.sleep(0.1)
        time.sleep(0.1)
    sys.exit(f"{name} did not start: {(work / f'{name}.log').read_text()[-2000:]}")


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def cpu(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def metric(url, name):
    m = re.search(rf"^{name} (\d+)$", get(f"{url}/metrics").decode(), re.M)
    return int(m.group(1)) if m else 0


def wrk(pid, url):
    c0 = cpu(pid)
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{DURATION}s", url],
                         capture_output=True, text=True, check=True).stdout
    c1 = cpu(pid)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, 1000 * (c1 - c0) / max(n, 1), int(bad.group(1)) if bad else 0


s3 = S3Server()
try:
    c = s3.client()
    c.create_bucket(Bucket="media")
    for p in sorted((ROOT / "assets").rglob("*.mp4")):
        c.put_object(Bucket="media", Key=str(p.relative_to(ROOT / "assets")), Body=p.read_bytes())
    bucket = (f'[storage]\nbackend = "s3"\nbucket = "media"\nendpoint = "{s3.endpoint}"\n'
              'rescan_interval_ms = 5000\ntimeout_ms = 2000\n')
    local_p, local = start("local", "[storage]\nstable_after_ms = 0\n")
    warm_p, warm = start("s3", bucket + "cache_bytes = 268435456\n", s3.env())
    none_p, none = start("s3-nochunks", bucket + "cache_bytes = 0\n", s3.env())

    mpd = f"/{ASSET}/manifest.mpd"
    reps = parse_mpd(get(local + mpd), mpd)
    video = max((r for r in reps if r.kind == "video"), key=lambda r: r.bandwidth)
    seg = video.media[min(1, len(video.media) - 1)]
    cenc = versioned(local, unversioned(seg)[:-len(".m4s")] + ".cenc.m4s")
    for p in (seg, cenc):
        a, b, n = get(local + p), get(warm + p), get(none + p)
        assert a == b == n, f"{p}: bucket and folder bytes differ"
    print(f"drm-origin over S3 (moto_server) vs local folder: wrk -t{THREADS} -c{CONNS} -d{DURATION}s, "
          f"{os.cpu_count()} cores; segment {seg} ({len(get(local + seg))} bytes)")
    print(f"{'row':<22}{'local req/s':>12}{'s3 req/s':>10}{'ratio':>7}{'local ms CPU/req':>18}{'s3 ms CPU/req':>15}")
    for row, path, (pid, base) in [("clear (warm chunks)", seg, (warm_p.pid, warm)),
                                   ("cenc (warm chunks)", cenc, (warm_p.pid, warm)),
                                   ("clear (no chunk cache)", seg, (none_p.pid, none)),
                                   ("cenc (no chunk cache)", cenc, (none_p.pid, none))]:
        lr, lc, lbad = wrk(local_p.pid, local + path)
        sr, sc, sbad = wrk(pid, base + path)
        flag = f"  non-2xx local {lbad} s3 {sbad}" if lbad or sbad else ""
        print(f"{row:<22}{lr:>12.0f}{sr:>10.0f}{sr / lr:>7.2f}{lc:>18.3f}{sc:>15.3f}{flag}")

    # Cold sweep: a fresh bucket node, every media segment once.
    cold_p, cold = start("s3-cold", bucket + "cache_bytes = 268435456\n", s3.env())
    paths = [p for r in reps for p in r.media]
    lat = {"local": [], "s3": []}
    media = 0
    d0 = metric(cold, "origin_storage_data_bytes_total")
    g0 = metric(cold, "origin_storage_gets_total")
    for p in paths:
        for name, base in (("local", local), ("s3", cold)):
            t = time.perf_counter()
            body = get(base + p)
            lat[name].append(1000 * (time.perf_counter() - t))
        media += len(body)
    fetched = metric(cold, "origin_storage_data_bytes_total") - d0
    gets = metric(cold, "origin_storage_gets_total") - g0
    q = lambda xs, f: sorted(xs)[min(len(xs) - 1, int(f * len(xs)))]
    print(f"\ncold sweep, {len(paths)} media segments once each (chunks of 256 KiB, empty cache):")
    for name in ("local", "s3"):
        print(f"  {name:<6} median {statistics.median(lat[name]):7.2f} ms   p90 {q(lat[name], 0.9):7.2f} ms")
    print(f"  storage: {gets} GETs, {fetched} bytes fetched for {media} bytes of segments served "
          f"(ratio {fetched / media:.2f}; {fetched / len(paths):.0f} bytes per segment)")
    print(f"  index: {metric(cold, 'origin_storage_index_bytes_total')} bytes read to index "
          f"{sum(p.stat().st_size for p in (ROOT / 'assets').rglob('*.mp4'))} bytes of objects")
finally:
    for p in procs:
        p.terminate()
        p.wait(timeout=10)
    s3.close()
PY
