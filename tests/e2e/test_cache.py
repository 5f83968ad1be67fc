"""The protected-segment cache: bounded in bytes, single-flight, optional (issue 3 §9).

Judged through the server's own /metrics counters (origin_encryptions_total counts builds,
origin_encrypted_cache_bytes is the cache's weighted size after moka's pending evictions).
"""
import re
import threading
import urllib.request

from http_util import versioned, wait_for

KEYS = """
[keys.vid]
kid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"
key = "2b7e151628aed2a6abf7158809cf4f3c"
[keys.aud]
kid = "11112222-3333-4444-5555-666677778888"
key = "00112233445566778899aabbccddeeff"
[policies.p]
dash = ["cenc", "cbcs"]
hls = ["cbcs"]
keys = { video = "vid", audio = "aud" }
[[assets]]
match = "**"
policy = "p"
"""


def config(tmp_path, cache_mb, permits=2):
    p = tmp_path / "cache.toml"
    p.write_text(f"[cache]\nencrypted_segments_mb = {cache_mb}\nmax_concurrent_encryptions = {permits}\n" + KEYS)
    return p


def metrics(o):
    status, _, body = o.get("/metrics")
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r"^(origin_[a-z_]+)(\{[^}]*\})? (\d+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = int(m.group(3))
    return out


def segment_urls(o, asset, scheme):
    status, _, mpd = o.get(f"/{asset}/manifest.{scheme}.mpd")
    assert status == 200, mpd
    text = mpd.decode()
    urls = []
    for rep in re.finditer(r'<Representation id="([^"]+)".*?</Representation>', text, re.S):
        rid = rep.group(1)
        n = sum(1 + int(r or 0) for r in re.findall(r'<S (?:t="\d+" )?d="\d+"(?: r="(\d+)")?/>', rep.group(0)))
        assert n > 0
        version = re.search(rf'\$Number\$\.{scheme}\.(v[0-9a-f]{{8}})\.m4s', rep.group(0)).group(1)
        urls += [f"/{asset}/{rid}/{i}.{scheme}.{version}.m4s" for i in range(1, n + 1)]
    return urls


def test_concurrent_requests_for_one_segment_encrypt_it_once(make_origin, tmp_path):
    o = make_origin(config=config(tmp_path, 64))
    before = metrics(o)["origin_encryptions_total"]
    url = o.url(versioned(o.base_url, "/multi/video_360p_1/2.cenc.m4s"))
    bodies, errors = [], []
    start = threading.Barrier(16)

    def fetch():
        try:
            start.wait()
            with urllib.request.urlopen(url, timeout=30) as r:
                bodies.append(r.read())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=fetch) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(bodies) == 16 and len(set(bodies)) == 1
    assert metrics(o)["origin_encryptions_total"] - before == 1, "single flight: one build for 16 requests"


def test_cache_stays_within_its_byte_bound(make_origin, tmp_path):
    o = make_origin(config=config(tmp_path, 1))  # 1 MiB budget
    urls = []
    for asset in ("multi", "progressive", "hevc"):
        for scheme in ("cenc", "cbcs"):
            urls += segment_urls(o, asset, scheme)
    sizes = []
    for u in urls:
        status, _, body = o.get(u)
        assert status == 200, u
        sizes.append(len(body))
    m = metrics(o)
    assert sum(sizes) > 4 * (1 << 20), "the load must exceed the budget several times to prove the bound"
    assert m["origin_encrypted_cache_capacity_bytes"] == 1 << 20
    assert m["origin_encrypted_bytes_total"] >= sum(sizes)
    # moka evicts lazily; /metrics settles pending evictions before reading the size.
    assert wait_for(lambda: metrics(o)["origin_encrypted_cache_bytes"] <= (1 << 20), timeout=10), metrics(o)
    assert o.alive()


def test_cache_off_builds_every_time_with_identical_bytes(make_origin, tmp_path):
    o = make_origin(config=config(tmp_path, 0))
    before = metrics(o)["origin_encryptions_total"]
    path = versioned(o.base_url, "/multi/audio_en_1/1.cbcs.m4s")
    a = o.get(path)
    b = o.get(path)
    assert a[0] == b[0] == 200 and a[2] == b[2]
    assert metrics(o)["origin_encryptions_total"] - before == 2
    assert metrics(o)["origin_encrypted_cache_bytes"] == 0
