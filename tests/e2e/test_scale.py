"""Scale-out: two stateless origin nodes sharing one asset source and one PostgreSQL key store
(`[keystore] backend = "postgres"`), nginx as the proxy_cache tier in front. Every service is the
real server, started here on loopback and stopped at the end (services.py).

Asserted, with nothing lost:
* nodes never disagree on a key: concurrent first requests for an auto-keyed asset on both nodes
  leave exactly one row per label in the database, and both nodes' init segments carry it;
* byte identity: every manifest, init and media segment of every variant is the same on A and B;
* PostgreSQL stopped during a run: already-keyed assets keep serving, a new key is refused with
  a 503 whose logged reason names the key store, and everything recovers when it returns;
* node A killed during a wrk run through nginx: no client error beyond in-flight requests,
  node B keeps serving.
"""
import concurrent.futures
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ASSETS, Origin
from http_util import fetch, parse_master, parse_media_playlist, parse_mpd, wait_for
from services import Nginx, Postgres

VARIANTS_DASH = ["clear", "cenc", "cbcs"]
VARIANTS_HLS = ["clear", "cbcs", "aes128"]
ASSET_IDS = ["multi", "progressive", "hevc"]


def node_config(work, name, pg):
    cfg = Path(work) / f"{name}.toml"
    cfg.write_text(
        "[storage]\nrescan_interval_ms = 200\nstable_after_ms = 0\n"
        f'[keystore]\nbackend = "postgres"\nurl_env = "DRM_ORIGIN_TEST_PG"\ntimeout_ms = 1500\n'
        '[policies.shared]\ndash = ["cenc", "cbcs"]\nhls = ["cbcs", "aes128"]\nallow_clear = true\n'
        'key_delivery = "open"\nkeys = { video = "auto", audio = "auto", envelope = "auto" }\n'
        '[[assets]]\nmatch = "**"\npolicy = "shared"\n'
    )
    return cfg


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("scale")
    assets = work / "assets"
    shutil.copytree(ASSETS, assets, ignore=shutil.ignore_patterns("*.md"))
    pg = Postgres()
    env = {"DRM_ORIGIN_TEST_PG": pg.url}
    nodes = []
    nginx = None
    try:
        for name in ("a", "b"):
            nodes.append(Origin(assets, config=node_config(work, name, pg), env=env))
        nginx = Nginx.cache([n.base_url.removeprefix("http://") for n in nodes])
        yield {"pg": pg, "a": nodes[0], "b": nodes[1], "nginx": nginx, "assets": assets, "work": work}
    finally:
        if nginx:
            nginx.close()
        for n in nodes:
            n.stop()
        pg.close()


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name)


def get(base, path, **kw):
    try:
        return Resp(*fetch(base, path, **kw))
    except OSError as e:
        return Resp(0, {}, str(e).encode())


def all_paths(base, asset):
    """Every manifest, playlist, init and media segment URL path of `asset`, all variants,
    discovered through the manifests (never built by hand)."""
    out = []
    for v in VARIANTS_DASH:
        mpd = f"/{asset}/manifest.mpd" if v == "clear" else f"/{asset}/manifest.{v}.mpd"
        r = get(base, mpd)
        assert r.status == 200, (mpd, r.status, r.body[:200])
        out.append(mpd)
        for rep in parse_mpd(r.body, mpd):
            out.append(rep.init)
            out.extend(rep.media)
    for v in VARIANTS_HLS:
        master = f"/{asset}/master.m3u8" if v == "clear" else f"/{asset}/master.{v}.m3u8"
        r = get(base, master)
        assert r.status == 200, (master, r.status, r.body[:200])
        out.append(master)
        for _, pl in parse_master(r.body.decode(), master):
            out.append(pl)
            t = get(base, pl)
            assert t.status == 200, (pl, t.status)
            init, segs, _ = parse_media_playlist(t.body.decode(), pl)
            if init:
                out.append(init)
            out.extend(segs)
    return list(dict.fromkeys(out))


def wait_ready(a, b, asset):
    """Both nodes indexed `asset` (its log line), without asking for anything keyed."""
    for n in (a, b):
        assert wait_for(lambda n=n: re.search(rf"asset=\W*{asset}\W.*asset ready|asset ready.*asset=\W*{asset}\W",
                                              re.sub(r"\x1b\[[0-9;]*m", "", n.log()))), n.log()[-2000:]


def key_rows(pg, like):
    if pg.psql("SELECT to_regclass('drm_content_keys') IS NOT NULL").strip() != "t":
        return []  # no node has connected yet: the migration creates the table
    text = pg.psql(f"SELECT label, encode(kid, 'hex') FROM drm_content_keys WHERE label LIKE '{like}' ORDER BY 1")
    return [tuple(line.split("|")) for line in text.splitlines() if line]


def test_concurrent_first_requests_make_one_key(stack):
    """Both nodes asked at once for a never-keyed asset's protected outputs: one key per label in
    the database, and both nodes encrypt with it (byte-identical init segments)."""
    a, b, pg = stack["a"], stack["b"], stack["pg"]
    shutil.copyfile(ASSETS / "progressive.mp4", stack["assets"] / "race.mp4")
    wait_ready(a, b, "race")
    assert key_rows(pg, "asset:race/%") == []
    paths = ["/race/manifest.cenc.mpd", "/race/master.cbcs.m3u8", "/race/master.aes128.m3u8"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as ex:
        futs = [ex.submit(get, n.base_url, p) for _ in range(4) for n in (a, b) for p in paths]
        statuses = [f.result().status for f in futs]
    assert statuses == [200] * len(statuses), statuses
    rows = key_rows(pg, "asset:race/%")
    labels = [r[0] for r in rows]
    assert labels == sorted(set(labels)) and {"asset:race/envelope"} <= set(labels), rows
    assert len(rows) >= 2, rows
    # Each node's protected init segment carries the one KID of its label.
    mpd = "/race/manifest.cenc.mpd"
    reps = parse_mpd(get(a.base_url, mpd).body, mpd)
    for rep in reps:
        ia, ib = get(a.base_url, rep.init), get(b.base_url, rep.init)
        assert ia.status == ib.status == 200
        assert ia.body == ib.body, f"{rep.init} differs between nodes"
        assert any(kid.lower() in ia.body.hex() for _, kid in rows), f"{rep.init} carries no stored KID"


def test_nodes_are_byte_identical_for_every_variant(stack):
    a, b = stack["a"], stack["b"]
    checked = 0
    for asset in ASSET_IDS:
        for path in all_paths(a.base_url, asset):
            ra, rb = get(a.base_url, path), get(b.base_url, path)
            assert ra.status == rb.status == 200, (path, ra.status, rb.status)
            assert ra.body == rb.body, f"{path}: node A and node B differ"
            assert ra.header("ETag") == rb.header("ETag"), path
            checked += 1
    assert checked > 100, checked


def test_postgres_outage_keeps_keyed_assets_and_refuses_new_keys(stack):
    a, b, pg = stack["a"], stack["b"], stack["pg"]
    keyed = "/multi/manifest.cenc.mpd"
    assert get(a.base_url, keyed).status == 200 and get(b.base_url, keyed).status == 200
    segs = [p for p in all_paths(a.base_url, "multi") if ".cenc." in p or ".cbcs." in p][:12]
    shutil.copyfile(ASSETS / "hevc.mp4", stack["assets"] / "fresh.mp4")
    wait_ready(a, b, "fresh")
    assert key_rows(pg, "asset:fresh/%") == []
    pg.stop()
    try:
        for n in (a, b):
            for p in [keyed] + segs:
                r = get(n.base_url, p)
                assert r.status == 200, f"{p} on a node with the database down: {r.status}"
            t0 = time.monotonic()
            r = get(n.base_url, "/fresh/manifest.cenc.mpd")
            took = time.monotonic() - t0
            assert r.status == 503, (r.status, r.body[:200])
            assert took < 10, f"new-key refusal took {took:.1f}s"
            assert wait_for(lambda n=n: re.search(r"key store unavailable: postgres .*@127\.0\.0\.1", n.log())), \
                n.log()[-3000:]
            assert "DRM_ORIGIN_TEST_PG" not in n.log()
    finally:
        pg.start()
    for n in (a, b):
        assert wait_for(lambda n=n: get(n.base_url, "/fresh/manifest.cenc.mpd").status == 200, timeout=20), \
            n.log()[-3000:]
    ia = get(a.base_url, "/fresh/manifest.cenc.mpd").body
    assert ia == get(b.base_url, "/fresh/manifest.cenc.mpd").body
    assert len({kid for _, kid in key_rows(pg, "asset:fresh/%")}) == len(key_rows(pg, "asset:fresh/%")) >= 1


WRK_SCRIPT = r"""
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
local i = 0
local bad = 0
request = function()
  i = i + 1
  -- a unique query per request: the cache tier forwards every request to an origin node
  return wrk.format("GET", paths[(i % #paths) + 1] .. "?n=" .. i)
end
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("WRK-ERRORS status=%d connect=%d read=%d write=%d timeout=%d total=%d\n",
    bad, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.requests))
end
"""


def test_kill_node_a_during_wrk_through_nginx(stack, tmp_path):
    """nginx fails over (proxy_next_upstream error timeout): the only losses allowed are
    requests in flight on A when it died (at most the connection count)."""
    a, b, nginx = stack["a"], stack["b"], stack["nginx"]
    paths = [p for p in all_paths(b.base_url, "multi") if p.endswith(".m4s") or p.endswith(".mp4")]
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    (tmp_path / "run.lua").write_text(WRK_SCRIPT)
    conns = 8
    wrk = subprocess.Popen(["wrk", "-t", "2", "-c", str(conns), "-d", "6s", "-s", str(tmp_path / "run.lua"),
                            nginx.base_url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={"PATHS_FILE": str(tmp_path / "paths.txt"), "PATH": "/usr/bin:/bin"})
    time.sleep(2.0)
    a.proc.kill()
    a.proc.wait(timeout=10)
    out, _ = wrk.communicate(timeout=60)
    m = re.search(r"WRK-ERRORS status=(\d+) connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+) total=(\d+)", out)
    assert m, out
    status, connect, read, write, timeout, total = map(int, m.groups())
    assert total > 100, out
    assert status + connect + read + write + timeout <= conns, out
    # B keeps serving through the tier after A is gone.
    for p in paths[:10]:
        r = get(nginx.base_url, p + "?after=1")
        assert r.status == 200, (p, r.status)
