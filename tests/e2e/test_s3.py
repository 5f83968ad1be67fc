"""Assets in S3-compatible object storage (`[storage] backend = "s3"`): two origin nodes over one
bucket and one PostgreSQL key store, an nginx proxy_cache tier in front. Every service is the real
server, started here on loopback and stopped at the end (services.py): moto's standalone S3
server, a byte-counting TCP proxy between the nodes and S3 (it can also delay answers),
PostgreSQL, nginx, headless Chromium.

Asserted, with nothing lost:
* indexing reads box headers and moov/moof, not whole objects (bytes through the proxy);
* byte identity for every variant: node A = node B = a node on the local-folder backend;
* a new object is served by both nodes within the polling interval; a replaced object is
  re-indexed, a deleted one disappears; a bad object is a per-asset 503 with a logged reason;
* S3 stopped: cached ranges keep serving, misses fail fast with 503, the catalogue is kept,
  and everything recovers when S3 returns (no restart);
* S3 slow (the proxy delays answers past the read deadline): misses 503 before the answer
  would have come, cached ranges serve, recovery once it is fast again;
* playback in Chromium through nginx; node A killed during a wrk run through nginx.
"""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ASSETS, BIN, ROOT, Origin
from http_util import parse_mpd, wait_for
from services import Nginx, Postgres, S3Server, TcpProxy
from test_scale import all_paths, get, wait_ready
from test_scale import test_kill_node_a_during_wrk_through_nginx as _kill_node_a_during_wrk

BUCKET, PREFIX = "media", "vod/"
ASSET_IDS = ["multi", "progressive", "hevc"]
TIMEOUT_MS = 1000
POLL_MS = 300

POLICY = ('[policies.shared]\ndash = ["cenc", "cbcs"]\nhls = ["cbcs", "aes128"]\nallow_clear = true\n'
          'key_delivery = "open"\nkeys = { video = "auto", audio = "auto", envelope = "auto" }\n'
          '[[assets]]\nmatch = "**"\npolicy = "shared"\n')
KEYSTORE = '[keystore]\nbackend = "postgres"\nurl_env = "DRM_ORIGIN_TEST_PG"\ntimeout_ms = 1500\n'


def s3_config(work, name, endpoint):
    cfg = Path(work) / f"{name}.toml"
    cfg.write_text(
        f'[storage]\nbackend = "s3"\nbucket = "{BUCKET}"\nprefix = "{PREFIX}"\nendpoint = "{endpoint}"\n'
        f'region = "us-east-1"\nrescan_interval_ms = {POLL_MS}\ntimeout_ms = {TIMEOUT_MS}\n'
        'cache_bytes = 67108864\nchunk_bytes = 65536\n' + KEYSTORE + POLICY)
    return cfg


def local_config(work):
    cfg = Path(work) / "local.toml"
    cfg.write_text("[storage]\nrescan_interval_ms = 200\nstable_after_ms = 0\n" + KEYSTORE + POLICY)
    return cfg


def asset_files():
    """(key below the prefix, local path) of the shipped sample assets."""
    out = []
    for p in sorted(ASSETS.rglob("*.mp4")):
        out.append((str(p.relative_to(ASSETS)), p))
    return out


def upload_all(s3):
    c = s3.client()
    c.create_bucket(Bucket=BUCKET)
    for key, path in asset_files():
        c.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=path.read_bytes())
    # Objects that nothing reads before the outage tests (one each): their segments are misses.
    for name in ("cold", "slow"):
        c.put_object(Bucket=BUCKET, Key=PREFIX + f"{name}.mp4", Body=(ASSETS / "fragmented.mp4").read_bytes())


def metric(node, name):
    status, _, body = node_get(node, "/metrics")
    m = re.search(rf"^{name} (\d+)$", body.decode(), re.M)
    return int(m.group(1)) if m else None


def node_get(node, path):
    r = get(node.base_url, path)
    return r.status, r.headers, r.body


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("s3")
    local_assets = work / "assets"
    shutil.copytree(ASSETS, local_assets, ignore=shutil.ignore_patterns("*.md"))
    s3 = S3Server()
    proxy = TcpProxy(s3.port)
    pg = Postgres()
    nodes, nginx, local = [], None, None
    try:
        upload_all(s3)
        before = proxy.bytes_down()
        env = {"DRM_ORIGIN_TEST_PG": pg.url, **s3.env()}
        for name in ("a", "b"):
            # --assets points at an empty folder: with backend = "s3" nothing is read from it.
            empty = work / f"empty-{name}"
            empty.mkdir()
            nodes.append(Origin(empty, config=s3_config(work, name, proxy.endpoint), env=env))
        for asset in ASSET_IDS + ["fragmented", "cold", "slow"]:
            wait_ready(nodes[0], nodes[1], asset)
        indexing_bytes = proxy.bytes_down() - before
        local = Origin(local_assets, config=local_config(work), env={"DRM_ORIGIN_TEST_PG": pg.url})
        nginx = Nginx.cache([n.base_url.removeprefix("http://") for n in nodes])
        yield {"s3": s3, "proxy": proxy, "pg": pg, "a": nodes[0], "b": nodes[1], "local": local,
               "nginx": nginx, "work": work, "indexing_bytes": indexing_bytes, "env": env}
    finally:
        if nginx:
            nginx.close()
        for n in nodes + ([local] if local else []):
            n.stop()
        pg.close()
        proxy.close()
        s3.close()


def test_indexing_reads_boxes_not_whole_objects(stack):
    a, b = stack["a"], stack["b"]
    total = sum(p.stat().st_size for _, p in asset_files()) + 2 * (ASSETS / "fragmented.mp4").stat().st_size
    # Both nodes indexed every object through the proxy; all of it together is a small part of
    # one copy of the objects (box headers, moov, moof and the listings).
    assert stack["indexing_bytes"] < total / 4, (stack["indexing_bytes"], total)
    for n in (a, b):
        idx = metric(n, "origin_storage_index_bytes_total")
        assert idx is not None and 0 < idx < total / 8, (idx, total)
        assert metric(n, "origin_storage_data_bytes_total") == 0
    # The credentials never reach the log.
    for n in (a, b):
        assert S3Server.SECRET not in n.log()


def test_check_command_lists_the_bucket(stack):
    """`drm-origin check` with the nodes' configuration indexes the bucket, not a folder."""
    cfg = stack["work"] / "a.toml"
    r = subprocess.run([str(BIN), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **stack["env"]})
    assert r.returncode == 0, r.stdout + r.stderr
    for asset in ASSET_IDS + ["cold"]:
        assert f"asset {asset}:" in r.stdout, r.stdout
    assert S3Server.SECRET not in r.stdout + r.stderr


def test_nodes_over_the_bucket_are_byte_identical_to_each_other_and_to_local_files(stack):
    a, b, local = stack["a"], stack["b"], stack["local"]
    checked = 0
    for asset in ASSET_IDS:
        paths = all_paths(a.base_url, asset)
        assert paths == all_paths(local.base_url, asset), f"{asset}: other URLs than the local-folder node"
        for path in paths:
            ra, rb, rl = get(a.base_url, path), get(b.base_url, path), get(local.base_url, path)
            assert ra.status == rb.status == rl.status == 200, (path, ra.status, rb.status, rl.status)
            assert ra.body == rb.body, f"{path}: node A and node B differ"
            assert ra.body == rl.body, f"{path}: the bucket node and the local-folder node differ"
            assert ra.header("ETag") == rb.header("ETag"), path
            checked += 1
    assert checked > 100, checked
    # Served segments cost storage bytes about their own size (chunks of 64 KiB), not more
    # than the objects they come from.
    data = metric(a, "origin_storage_data_bytes_total")
    total = sum(p.stat().st_size for k, p in asset_files() if k.split("/")[0].removesuffix(".mp4") in ASSET_IDS)
    assert 0 < data <= total + 64 * 1024 * len(asset_files()), (data, total)


def test_new_replaced_and_deleted_objects_are_picked_up(stack):
    a, b, s3 = stack["a"], stack["b"], stack["s3"]
    c = s3.client()
    c.put_object(Bucket=BUCKET, Key=PREFIX + "late.mp4", Body=(ASSETS / "progressive.mp4").read_bytes())
    for n in (a, b):
        assert wait_for(lambda n=n: get(n.base_url, "/late/manifest.mpd").status == 200, timeout=10), n.log()[-2000:]
    first = get(a.base_url, "/late/manifest.mpd").body
    assert first == get(b.base_url, "/late/manifest.mpd").body
    # Replaced by other content under the same key: both nodes re-index it.
    c.put_object(Bucket=BUCKET, Key=PREFIX + "late.mp4", Body=(ASSETS / "hevc.mp4").read_bytes())
    for n in (a, b):
        assert wait_for(lambda n=n: get(n.base_url, "/late/manifest.mpd").body not in (first, b""), timeout=10)
    mpd = get(a.base_url, "/late/manifest.mpd")
    assert b"hvc1" in mpd.body or b"hev1" in mpd.body, mpd.body[:400]
    assert mpd.body == get(b.base_url, "/late/manifest.mpd").body
    reps = parse_mpd(mpd.body, "/late/manifest.mpd")
    for rep in reps:
        for p in [rep.init] + rep.media[:2]:
            assert get(a.base_url, p).body == get(b.base_url, p).body
            assert get(a.base_url, p).status == 200
    # Deleted: gone on both nodes.
    c.delete_object(Bucket=BUCKET, Key=PREFIX + "late.mp4")
    for n in (a, b):
        assert wait_for(lambda n=n: get(n.base_url, "/late/manifest.mpd").status == 404, timeout=10)


def test_bad_object_is_a_503_with_its_reason_and_others_keep_serving(stack):
    a, b, s3 = stack["a"], stack["b"], stack["s3"]
    c = s3.client()
    junk = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 8 + b"\x00\x10\x00\x00moov" + b"x" * 64
    c.put_object(Bucket=BUCKET, Key=PREFIX + "broken.mp4", Body=junk)
    for n in (a, b):
        assert wait_for(lambda n=n: get(n.base_url, "/broken/manifest.mpd").status == 503, timeout=10)
        assert wait_for(lambda n=n: re.search(r"broken\.mp4.*(truncated|moov)", n.log())), n.log()[-2000:]
        assert get(n.base_url, "/multi/manifest.mpd").status == 200
    c.delete_object(Bucket=BUCKET, Key=PREFIX + "broken.mp4")


def cold_paths(node, variant="clear", asset="cold"):
    mpd = f"/{asset}/manifest.mpd" if variant == "clear" else f"/{asset}/manifest.{variant}.mpd"
    r = get(node.base_url, mpd)
    assert r.status == 200, (mpd, r.status)
    return [p for rep in parse_mpd(r.body, mpd) for p in [rep.init] + rep.media]


def test_s3_stopped_cached_ranges_serve_misses_fail_fast_and_recovery(stack):
    a, b, s3 = stack["a"], stack["b"], stack["s3"]
    warm = [p for p in all_paths(a.base_url, "multi") if p.endswith(".m4s")][:6]
    for p in warm:
        assert get(a.base_url, p).status == 200
    cold = [p for p in cold_paths(a) if p.endswith(".m4s")]
    s3.stop()
    try:
        for p in warm:
            r = get(a.base_url, p)
            assert r.status == 200, f"{p}: cached range not served with S3 down ({r.status})"
        t0 = time.monotonic()
        r = get(a.base_url, cold[-1])
        took = time.monotonic() - t0
        assert r.status == 503, (r.status, r.body[:200])
        assert took < 10 * TIMEOUT_MS / 1000, took
        # The listing fails: the catalogue is kept, manifests still answer.
        assert wait_for(lambda: "bucket not listed" in a.log(), timeout=10), a.log()[-2000:]
        assert get(a.base_url, "/multi/manifest.mpd").status == 200
        assert get(b.base_url, "/cold/manifest.mpd").status == 200
    finally:
        s3.start()
        upload_all(s3)  # moto keeps nothing over a restart: the same bytes again (same ETags)
    for n in (a, b):
        assert wait_for(lambda n=n: get(n.base_url, cold[-1]).status == 200, timeout=40), n.log()[-2000:]
    assert get(a.base_url, cold[-1]).body == get(b.base_url, cold[-1]).body


def test_slow_s3_misses_fail_fast_and_recover(stack):
    a, proxy = stack["a"], stack["proxy"]
    warm = [p for p in all_paths(a.base_url, "multi") if p.endswith(".m4s")][:4]
    for p in warm:
        assert get(a.base_url, p).status == 200
    cold = [p for p in cold_paths(a, "cbcs", asset="slow") if p.endswith(".m4s")]
    miss = cold[len(cold) // 2]
    delay = 6.0
    proxy.delay = delay
    try:
        errors = metric(a, "origin_storage_errors_total")
        t0 = time.monotonic()
        r = get(a.base_url, miss)
        took = time.monotonic() - t0
        assert r.status == 503, (r.status, r.body[:200])
        assert metric(a, "origin_storage_errors_total") > errors
        # The answer came from the read deadline, well before the slow store would have answered.
        assert took < delay - 1, took
        for p in warm:
            assert get(a.base_url, p).status == 200, p
    finally:
        proxy.delay = 0.0
    assert wait_for(lambda: get(a.base_url, miss).status == 200, timeout=30), a.log()[-2000:]


def test_concurrent_misses_share_one_fetch(stack):
    """Twelve requests at once for a segment node B never read: the chunks are fetched once
    (single flight), not once per request."""
    import concurrent.futures
    b = stack["b"]
    seg = [p for p in cold_paths(b, asset="slow") if p.endswith(".m4s")][0]
    d0 = metric(b, "origin_storage_data_bytes_total")
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as ex:
        rs = list(ex.map(lambda _: get(b.base_url, seg), range(12)))
    assert all(r.status == 200 for r in rs) and len({r.body for r in rs}) == 1, [r.status for r in rs]
    fetched = metric(b, "origin_storage_data_bytes_total") - d0
    assert 0 < fetched <= len(rs[0].body) + 2 * 65536, (fetched, len(rs[0].body))


def test_plays_through_nginx_in_chromium(stack):
    nginx = stack["nginx"]
    page = f"{nginx.base_url}/player/multi?protocol=dash&variant=cenc&autoplay=1"
    r = subprocess.run(["node", str(ROOT / "tests/browser/play_page.mjs"), page],
                       capture_output=True, text=True, timeout=120)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result.get("played"), f"no playback through nginx over S3: {r.stdout[-2000:]} {r.stderr[-1000:]}"
    segs = [w for w in result["wire"] if re.search(r"/multi/.*\.(m4s|mp4)$", w["url"])]
    assert segs and all(w["status"] == 200 for w in segs), [w for w in segs if w["status"] != 200][:5] or segs[:3]


def test_zz_kill_node_a_during_wrk_through_nginx(stack, tmp_path):
    """Last: node A dies here. The scale test's scenario over the bucket-backed nodes."""
    _kill_node_a_during_wrk(stack, tmp_path)
