"""HTTP semantics of the origin, checked against the real binary over real sockets.

HEAD, Range, conditional requests, caching and CORS headers, keep-alive, 404s and hostile
request targets. Segment URLs are discovered from the manifests (only the asset ids `multi`,
`progressive`, `hevc` come from the contract).
"""
import email.utils
import http.client
import re
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from http_util import (
    raw_request,
    with_version,
    copy_sample,
    discover,
    fetch,
    first_of,
    get_ok,
    host_port,
    parse_master,
    parse_media_playlist,
    raw_http,
    assert_healthy,
    wait_for,
)


@pytest.fixture(scope="module")
def cat(origin):
    """Paths of one of each kind of resource on the shared server."""
    reps = discover(origin.base_url, "multi")
    video = first_of(reps, "video")
    audio = first_of(reps, "audio")
    _, master = get_ok(origin.base_url, "/multi/master.m3u8")
    playlists = parse_master(master.decode(), "/multi/master.m3u8")
    assert playlists, "master playlist lists no media playlist"
    assert len(video.media) >= 2, f"video rendition {video.id} has {len(video.media)} segments"
    return {
        "reps": reps,
        "video": video,
        "audio": audio,
        "mpd": "/multi/manifest.mpd",
        "master": "/multi/master.m3u8",
        "media_playlist": playlists[0][1],
        "init": video.init,
        "segment": video.media[0],
        "segment2": video.media[1],
        "audio_segment": audio.media[0],
    }


KINDS = ["mpd", "master", "media_playlist", "init", "segment", "audio_segment"]
SEGMENT_KINDS = ["init", "segment", "audio_segment"]
MANIFEST_KINDS = ["mpd", "master", "media_playlist"]


def _max_age(cache_control):
    m = re.search(r"max-age=(\d+)", cache_control or "")
    assert m, f"no max-age in Cache-Control {cache_control!r}"
    return int(m.group(1))


# ------------------------------------------------------------------------------ HEAD


@pytest.mark.parametrize("kind", KINDS)
def test_head_has_get_headers_and_no_body(origin, cat, kind):
    path = cat[kind]
    g = raw_http(origin.base_url, path)
    h = raw_http(origin.base_url, path, method="HEAD")
    assert g.status == 200, g
    assert h.status == 200, h
    assert h.body == b"", f"HEAD {path} sent {len(h.body)} body bytes"
    assert len(g.body) > 0
    assert int(g.header("Content-Length")) == len(g.body)
    assert int(h.header("Content-Length")) == len(g.body), "HEAD Content-Length != GET body length"
    for name in ("Content-Type", "ETag", "Last-Modified", "Cache-Control",
                 "Access-Control-Allow-Origin", "Accept-Ranges"):
        assert h.header(name) == g.header(name), f"{name}: HEAD {h.header(name)!r} GET {g.header(name)!r}"
    assert g.header("ETag"), f"no ETag on {path}"


# ------------------------------------------------------------------------------ Range


@pytest.fixture(scope="module")
def full_segment(origin, cat):
    status, headers, body = fetch(origin.base_url, cat["segment"])
    assert status == 200
    assert len(body) > 300, f"segment suspiciously small: {len(body)} bytes"
    return cat["segment"], body


def _range(origin, path, spec, method="GET"):
    return raw_http(origin.base_url, path, method=method, headers={"Range": spec})


def test_accept_ranges_advertised(origin, full_segment):
    path, _ = full_segment
    r = raw_http(origin.base_url, path)
    assert (r.header("Accept-Ranges") or "").lower() == "bytes", r.headers


@pytest.mark.parametrize("spec,sl", [
    ("bytes=10-99", slice(10, 100)),
    ("bytes=0-0", slice(0, 1)),
    ("bytes=-100", slice(-100, None)),
    ("bytes=100-", slice(100, None)),
])
def test_single_range(origin, full_segment, spec, sl):
    path, full = full_segment
    n = len(full)
    r = _range(origin, path, spec)
    assert r.status == 206, r
    want = full[sl]
    first = range(n)[sl][0]
    last = range(n)[sl][-1]
    assert r.header("Content-Range") == f"bytes {first}-{last}/{n}"
    assert int(r.header("Content-Length")) == len(want)
    assert r.body == want
    assert r.header("ETag") == raw_http(origin.base_url, path).header("ETag")


def test_range_end_past_length_is_clamped(origin, full_segment):
    path, full = full_segment
    n = len(full)
    r = _range(origin, path, f"bytes={n - 50}-{n + 100000}")
    assert r.status == 206, r
    assert r.header("Content-Range") == f"bytes {n - 50}-{n - 1}/{n}"
    assert r.body == full[-50:]


def test_range_on_manifest(origin, cat):
    _, _, full = fetch(origin.base_url, cat["mpd"])
    r = _range(origin, cat["mpd"], "bytes=0-9")
    assert r.status == 206, r
    assert r.body == full[:10]
    assert r.header("Content-Range") == f"bytes 0-9/{len(full)}"


def test_head_with_range(origin, full_segment):
    path, full = full_segment
    r = _range(origin, path, "bytes=10-19", method="HEAD")
    assert r.status in (200, 206), r
    assert r.body == b""
    if r.status == 206:
        assert r.header("Content-Range") == f"bytes 10-19/{len(full)}"
        assert int(r.header("Content-Length")) == 10
    else:
        assert int(r.header("Content-Length")) == len(full)


def test_multi_range_is_full_or_correct_multipart(origin, full_segment):
    path, full = full_segment
    r = _range(origin, path, "bytes=0-1,5-9")
    assert r.status in (200, 206), r
    if r.status == 200:
        assert r.body == full
        assert int(r.header("Content-Length")) == len(full)
        assert r.header("Content-Range") is None
        return
    ctype = r.header("Content-Type") or ""
    m = re.match(r'multipart/byteranges;\s*boundary="?([^";]+)"?', ctype)
    assert m, f"206 for a multi-range must be multipart/byteranges, got {ctype!r}"
    boundary = m.group(1).encode()
    parts = r.body.split(b"--" + boundary)
    got = []
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        cr = re.search(rb"Content-Range:\s*bytes (\d+)-(\d+)/(\d+)", head, re.I)
        assert cr, head
        a, b, total = map(int, cr.groups())
        assert total == len(full)
        data = data[:-2] if data.endswith(b"\r\n") else data
        assert data == full[a:b + 1]
        got.append((a, b))
    assert got == [(0, 1), (5, 9)]


@pytest.mark.parametrize("spec", ["bytes={n}-", "bytes={n}-{m}", "bytes=-0"])
def test_unsatisfiable_range(origin, full_segment, spec):
    path, full = full_segment
    n = len(full)
    r = _range(origin, path, spec.format(n=n, m=n + 10))
    assert r.status == 416, r
    assert r.header("Content-Range") == f"bytes */{n}"
    assert r.header("Access-Control-Allow-Origin") == "*"


@pytest.mark.parametrize("spec", ["bytes=abc", "bytes=9-5", "items=0-5", "bytes=--5", "bytes=0-5x"])
def test_malformed_range_is_ignored_or_refused(origin, full_segment, spec):
    """RFC 9110: an invalid Range is ignored (200 full); 416 is tolerated; never a wrong slice."""
    path, full = full_segment
    r = _range(origin, path, spec)
    assert r.status in (200, 416), r
    if r.status == 200:
        assert r.body == full


# ------------------------------------------------------------------------------ conditional


@pytest.mark.parametrize("kind", ["mpd", "init", "segment"])
def test_strong_etag_and_304(origin, cat, kind):
    path = cat[kind]
    r1 = raw_http(origin.base_url, path)
    r2 = raw_http(origin.base_url, path)
    etag = r1.header("ETag")
    assert etag, f"no ETag on {path}"
    assert not etag.startswith("W/"), f"weak ETag {etag}"
    assert re.fullmatch(r'"[^"]+"', etag), f"ETag not a quoted string: {etag!r}"
    assert r2.header("ETag") == etag, "ETag not stable between two GETs"

    nm = raw_http(origin.base_url, path, headers={"If-None-Match": etag})
    assert nm.status == 304, nm
    assert nm.body == b"", f"304 carried {len(nm.body)} bytes"
    assert nm.header("ETag") == etag
    assert nm.header("Access-Control-Allow-Origin") == "*"

    lst = raw_http(origin.base_url, path, headers={"If-None-Match": f'"nope", {etag}'})
    assert lst.status == 304, lst

    other = raw_http(origin.base_url, path, headers={"If-None-Match": '"not-the-etag"'})
    assert other.status == 200 and other.body == r1.body

    hn = raw_http(origin.base_url, path, method="HEAD", headers={"If-None-Match": etag})
    assert hn.status == 304 and hn.body == b""


def test_etags_differ_between_resources(origin, cat):
    tags = {k: raw_http(origin.base_url, cat[k], method="HEAD").header("ETag")
            for k in ["mpd", "master", "init", "segment", "segment2", "audio_segment"]}
    assert len(set(tags.values())) == len(tags), tags


@pytest.mark.parametrize("kind", KINDS)
def test_last_modified(origin, cat, kind):
    r = raw_http(origin.base_url, cat[kind], method="HEAD")
    lm = r.header("Last-Modified")
    assert lm, f"no Last-Modified on {cat[kind]}"
    when = email.utils.parsedate_to_datetime(lm)
    assert lm.endswith("GMT"), lm
    assert when <= datetime.now(timezone.utc) + timedelta(minutes=1)
    assert when.year >= 2000


# ------------------------------------------------------------------------------ headers


@pytest.mark.parametrize("kind", SEGMENT_KINDS)
def test_cache_control_segments_long(origin, cat, kind):
    cc = raw_http(origin.base_url, cat[kind], method="HEAD").header("Cache-Control")
    assert _max_age(cc) >= 86400, cc


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_cache_control_manifests_short(origin, cat, kind):
    cc = raw_http(origin.base_url, cat[kind], method="HEAD").header("Cache-Control")
    assert 0 <= _max_age(cc) <= 60, cc
    assert "immutable" not in cc


@pytest.mark.parametrize("kind,ctype", [
    ("mpd", "application/dash+xml"),
    ("master", "application/vnd.apple.mpegurl"),
    ("media_playlist", "application/vnd.apple.mpegurl"),
    ("init", "video/mp4"),
    ("segment", "video/mp4"),
    ("audio_segment", "audio/mp4"),
])
def test_content_type(origin, cat, kind, ctype):
    got = raw_http(origin.base_url, cat[kind], method="HEAD").header("Content-Type") or ""
    assert got.split(";")[0].strip().lower() == ctype, f"{cat[kind]}: {got!r}"


def test_audio_init_content_type(origin, cat):
    got = raw_http(origin.base_url, cat["audio"].init, method="HEAD").header("Content-Type") or ""
    assert got.split(";")[0].strip().lower() == "audio/mp4", got


# ------------------------------------------------------------------------------ CORS


def _expose(r):
    return {h.strip().lower() for h in (r.header("Access-Control-Expose-Headers") or "").split(",")}


@pytest.mark.parametrize("kind", ["mpd", "segment", "master"])
def test_cors_on_get(origin, cat, kind):
    for hdrs in ({}, {"Origin": "http://player.example"}):
        r = raw_http(origin.base_url, cat[kind], headers=hdrs)
        assert r.status == 200
        assert r.header("Access-Control-Allow-Origin") == "*", r.headers
    assert {"content-length", "content-range", "etag"} <= _expose(r) or "*" in _expose(r), r.headers


def test_cors_on_range_and_404(origin, cat):
    r = raw_http(origin.base_url, cat["segment"], headers={"Origin": "http://p.example", "Range": "bytes=0-9"})
    assert r.status == 206 and r.header("Access-Control-Allow-Origin") == "*"
    r = raw_http(origin.base_url, "/no-such-asset/manifest.mpd", headers={"Origin": "http://p.example"})
    assert r.status == 404
    assert r.header("Access-Control-Allow-Origin") == "*", r.headers


@pytest.mark.parametrize("kind", ["mpd", "segment"])
def test_cors_preflight(origin, cat, kind):
    r = raw_http(origin.base_url, cat[kind], method="OPTIONS", headers={
        "Origin": "http://player.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
    })
    assert 200 <= r.status < 300, r
    assert r.header("Access-Control-Allow-Origin") == "*"
    methods = {m.strip().upper() for m in (r.header("Access-Control-Allow-Methods") or "").split(",")}
    assert {"GET", "HEAD"} <= methods or "*" in methods, r.headers
    allowed = {h.strip().lower() for h in (r.header("Access-Control-Allow-Headers") or "").split(",")}
    assert "range" in allowed or "*" in allowed, r.headers
    assert r.body == b""


# ------------------------------------------------------------------------------ keep-alive


def test_keep_alive_many_requests_one_connection(origin, cat):
    host, port = host_port(origin.base_url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        sock = None
        plan = [("GET", cat["mpd"], {}, 200), ("GET", cat["segment"], {}, 200),
                ("HEAD", cat["init"], {}, 200), ("GET", "/nope/manifest.mpd", {}, 404),
                ("GET", cat["segment"], {"Range": "bytes=0-99"}, 206),
                ("GET", cat["master"], {}, 200), ("GET", cat["audio_segment"], {}, 200),
                ("GET", cat["mpd"], {}, 200)]
        for method, path, hdrs, want in plan:
            conn.request(method, path, headers=hdrs)
            r = conn.getresponse()
            body = r.read()
            assert r.status == want, (method, path, r.status, body[:200])
            if method == "HEAD":
                assert body == b""
            if r.getheader("Content-Length") is not None:
                assert int(r.getheader("Content-Length")) == len(body) or method == "HEAD"
            assert not r.will_close, f"server closed the connection after {method} {path}"
            if sock is None:
                sock = conn.sock
            assert conn.sock is sock, "a new connection was opened"
    finally:
        conn.close()


def test_pipelined_requests(origin, cat):
    """Two requests written at once get two complete responses, in order, on one socket."""
    host, port = host_port(origin.base_url)
    _, _, mpd = fetch(origin.base_url, cat["mpd"])
    _, _, seg = fetch(origin.base_url, cat["segment"])
    req = (f"GET {cat['mpd']} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
           f"GET {cat['segment']} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n").encode()
    data = bytearray()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(req)
        while chunk := s.recv(65536):
            data += chunk
    bodies = []
    rest = bytes(data)
    for _ in range(2):
        head, _, rest = rest.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        assert m, f"no Content-Length in {head!r}"
        n = int(m.group(1))
        bodies.append(rest[:n])
        rest = rest[n:]
    assert bodies == [mpd, seg]
    assert rest == b""


# ------------------------------------------------------------------------------ 404


def _not_found(origin, path, allow_400=False):
    r = raw_http(origin.base_url, path)
    ok = (400, 404) if allow_400 else (404,)
    assert r.status in ok, f"{path} -> {r.status}, want {ok}"
    assert len(r.body) < 4096, "404 body should be short"
    assert str(origin.assets_dir) not in r.body.decode(errors="replace"), "404 leaks the asset path"
    assert r.header("Access-Control-Allow-Origin") == "*"
    return r


def test_unknown_asset_404(origin):
    for p in ["/nope/manifest.mpd", "/nope/master.m3u8", "/nope/x_1/init.mp4", "/nope/x_1/1.m4s",
              "/nope/x_1/media.m3u8", "/multi/sub/manifest.mpd", "/multi/video_360p/manifest.mpd",
              "/multi/index.html", "/multi.mp4/manifest.mpd"]:
        _not_found(origin, with_version(p))
    for p in ["/multi", "/multi/", "/multi//manifest.mpd"]:  # not resource URLs at all
        _not_found(origin, p, allow_400=True)
    # "/" may host a demo page; it must not be a directory listing of the assets
    r = raw_http(origin.base_url, "/")
    assert r.status in (200, 400, 404), r
    assert b"progressive.mp4" not in r.body and b"video_360p.mp4" not in r.body


def test_unknown_rendition_404(origin, cat):
    rid = cat["video"].id
    prog_ids = {r.id for r in discover(origin.base_url, "progressive")}
    paths = [f"/multi/{rid}x/init.mp4", f"/multi/{rid}x/1.m4s", "/multi/nope_1/media.m3u8",
             f"/multi/{rid}_99/init.mp4", f"/multi/{rid}0/1.m4s"]
    if rid not in prog_ids:
        paths += [f"/progressive/{rid}/init.mp4", f"/progressive/{rid}/1.m4s"]
    for p in paths:
        _not_found(origin, with_version(p))


def test_segment_numbers_out_of_range_404(origin, cat):
    v = cat["video"]
    base = v.init.rsplit("/", 1)[0]
    n = len(v.media)
    assert raw_http(origin.base_url, v.media[-1]).status == 200
    ver = v.media[-1].rsplit(".", 2)[-2]
    assert v.media[-1] == f"{base}/{n}.{ver}.m4s"
    for num in ["0", str(n + 1), str(n + 2), "9999"]:
        _not_found(origin, f"{base}/{num}.{ver}.m4s")
    for num in ["4294967296", "4294967297", "18446744073709551616", "99999999999999999999999999", "-1"]:
        _not_found(origin, f"{base}/{num}.{ver}.m4s", allow_400=True)
    # A segment name without its version, or with another one, names no bytes we make now.
    for name in [f"{n}.m4s", f"{n}.v00000000.m4s", f"{n}.{ver.upper()}.m4s"]:
        _not_found(origin, f"{base}/{name}", allow_400=True)


def test_bad_segment_names_404(origin, cat):
    v = cat["video"]
    base = v.init.rsplit("/", 1)[0]
    for name in ["abc.m4s", "1.mp4", "1.m4s.bak", "1.M4S", "1", ".m4s", "1x.m4s", "0x1.m4s",
                 "1.5.m4s", "%201.m4s", "1%20.m4s", "init.m4s", "init.mp4x", "Init.mp4",
                 "media.m3u8x", "manifest.mpd", "1.m4s/", "init.mp4/"]:
        _not_found(origin, f"{base}/{name}", allow_400=True)


def test_non_canonical_segment_numbers_404(origin, cat):
    """Only the canonical `$Number$` spelling is a segment URL (no duplicate cache keys)."""
    v = cat["video"]
    base = v.init.rsplit("/", 1)[0]
    ver = v.media[0].rsplit(".", 2)[-2]
    for name in ["01.m4s", "+1.m4s", "001.m4s"]:
        _not_found(origin, f"{base}/{name}", allow_400=True)
        _not_found(origin, with_version(f"{base}/{name}", ver), allow_400=True)


def test_unsupported_methods(origin, cat):
    for method in ["POST", "PUT", "DELETE", "PATCH"]:
        r = raw_http(origin.base_url, cat["mpd"], method=method, headers={"Content-Length": "0"})
        assert 400 <= r.status < 500, f"{method} -> {r.status}"
    assert raw_http(origin.base_url, cat["mpd"]).status == 200


# ------------------------------------------------------------------------------ hostile paths


HOSTILE = [
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/.%2e/.%2e/.%2e/etc/passwd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/multi%2f..%2f..%2fetc/manifest.mpd",
    "/multi/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/multi/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd",
    "//etc/passwd/manifest.mpd",
    "/%2fetc%2fpasswd",
    "/%2fetc/passwd/manifest.mpd",
    "/etc/passwd",
    "/multi%00/manifest.mpd",
    "/multi/manifest.mpd%00",
    "/%00",
    "/..%00/etc/passwd",
    "/..\\..\\..\\etc\\passwd",
    "/multi\\..\\..\\etc/manifest.mpd",
    "/%5c..%5c..%5c..%5cetc%5cpasswd",
    "/..%5c..%5c..%5cetc/passwd",
    "/proc/self/environ",
    "/./././etc/passwd",
    "/..;/etc/passwd",
]


def _assert_no_leak(r):
    body = r.body
    assert b"root:" not in body and b"/bin/" not in body, f"leaked a system file: {body[:200]!r}"
    assert b"[package]" not in body


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_paths(origin, target):
    r = raw_http(origin.base_url, target)
    assert 400 <= r.status < 500, f"{target!r} -> {r.status} {r.body[:200]!r}"
    _assert_no_leak(r)


def test_hostile_long_url(origin):
    for target in ["/" + "a" * 10240 + "/manifest.mpd", "/multi/" + "1" * 10240 + ".m4s",
                   "/" + "../" * 3000 + "etc/passwd"]:
        r = raw_http(origin.base_url, target)
        assert 400 <= r.status < 500, f"{len(target)}-byte URL -> {r.status}"
        _assert_no_leak(r)


def test_hostile_raw_bytes(origin):
    """A literal NUL / non-ASCII byte / relative target: refused with 4xx (or the connection
    dropped without an answer), never served."""
    for target in [b"/multi\x00/manifest.mpd", b"/\xff\xfe/manifest.mpd", b"../etc/passwd",
                   b"/../\x00etc/passwd"]:
        try:
            r = raw_http(origin.base_url, target)
        except ConnectionResetError:
            continue
        except AssertionError as e:
            assert "no complete response" in str(e), e
            continue
        assert 400 <= r.status < 500, f"{target!r} -> {r.status}"
        _assert_no_leak(r)
    assert_healthy(origin)


def test_still_healthy_after_hostile_requests(origin, cat):
    for t in HOSTILE:
        raw_http(origin.base_url, t)
    assert raw_http(origin.base_url, cat["mpd"]).status == 200
    assert raw_http(origin.base_url, cat["segment"]).status == 200
    assert_healthy(origin)


def test_traversal_cannot_reach_mp4_outside_assets(make_origin, tmp_path):
    """A real MP4 next to (outside) the asset folder must be unreachable by any spelling."""
    assets = tmp_path / "assets"
    copy_sample("progressive.mp4", assets / "inside.mp4")
    copy_sample("progressive.mp4", tmp_path / "secret.mp4")
    o = make_origin(assets)
    # freshly copied files are served once stable_after_ms has passed
    assert wait_for(lambda: fetch(o.base_url, "/inside/manifest.mpd")[0] == 200, timeout=15)
    abs_ = str(tmp_path).lstrip("/")
    enc = abs_.replace("/", "%2f")
    targets = []
    for prefix in ["/..", "/%2e%2e", "/%2E%2E", "/.%2e", "/%2e.", "/inside/..%2f..", "/x/..%2f..",
                   "/inside/../..", "/inside/%2e%2e/%2e%2e", "/%2e%2e%2f", "/..%2f",
                   "//" + abs_, "/%2f" + enc, "/" + abs_ + "/"]:
        for tail in ["/secret/manifest.mpd", "/secret/master.m3u8", "/secret/secret_1/init.mp4",
                     "/secret/secret_1/1.m4s"]:
            t = prefix + tail
            targets.append(t.replace("%2f/", "%2f").replace("//secret", "/secret"))
    for t in targets:
        r = raw_http(o.base_url, t)
        assert 400 <= r.status < 500, f"{t!r} -> {r.status}: reached a file outside the asset folder"
        assert b"ftyp" not in r.body and b"<MPD" not in r.body and b"#EXTM3U" not in r.body
    assert_healthy(o)


# ------------------------------------------------------------------------------ nested ids


def test_nested_asset_ids(make_origin, tmp_path):
    assets = tmp_path / "assets"
    copy_sample("multi", assets / "kids" / "cartoon")
    copy_sample("progressive.mp4", assets / "a" / "b" / "c" / "x.mp4")
    o = make_origin(assets)
    for asset in ["kids/cartoon", "a/b/c"]:
        assert wait_for(lambda: fetch(o.base_url, f"/{asset}/manifest.mpd")[0] == 200, timeout=15), asset
        reps = discover(o.base_url, asset)
        for rep in reps:
            assert rep.init.startswith(f"/{asset}/"), rep.init
            get_ok(o.base_url, rep.init)
            get_ok(o.base_url, rep.media[0])
        _, master = get_ok(o.base_url, f"/{asset}/master.m3u8")
        for _, pl in parse_master(master.decode(), f"/{asset}/master.m3u8"):
            _, text = get_ok(o.base_url, pl)
            init, segs, _ = parse_media_playlist(text.decode(), pl)
            assert init and segs
            get_ok(o.base_url, segs[-1])
    for p in ["/kids/manifest.mpd", "/cartoon/manifest.mpd", "/a/b/manifest.mpd", "/b/c/manifest.mpd",
              "/a/b/c/x/manifest.mpd"]:
        assert raw_http(o.base_url, p).status == 404, p


def test_host_header_rules(origin, cat):
    """Issue 13.3 (RFC 9112 §3.2): an HTTP/1.1 request without Host, or any request with two Host
    lines or an invalid one, is a 400; one Host (and HTTP/1.0 without one) is served."""
    target = cat["mpd"].encode()
    host = origin.base_url.split("//", 1)[1].encode()
    cases = {
        b"GET %s HTTP/1.1\r\nConnection: close\r\n\r\n": 400,
        b"GET %s HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n": 400,
        b"GET %s HTTP/1.1\r\nHost: " + host + b"\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n": 400,
        b"GET %s HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n": 400,
        b"GET %s HTTP/1.1\r\nHost: user@evil\r\nConnection: close\r\n\r\n": 400,
        b"GET %s HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n": 400,
        b"GET %s HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n": 200,
        b"GET %s HTTP/1.0\r\n\r\n": 200,
    }
    for template, want in cases.items():
        req = template.replace(b"%s", target, 1)
        status, head, _ = raw_request(origin.base_url, req)
        assert status == want, f"{req!r} -> {status}, want {want}: {head[:200]!r}"
    assert origin.alive()


def test_if_none_match_over_several_lines_is_one_list(origin, cat):
    """Issue 13.3: two If-None-Match lines, one of which matches, are one list: 304."""
    path = cat["video"].media[0]
    status, headers, _ = fetch(origin.base_url, path)
    etag = headers["ETag"]
    assert status == 200 and etag
    host = origin.base_url.split("//", 1)[1]
    for lines in ([f'"nope"', etag], [etag, '"nope"'], ['"a", "b"', f'W/{etag}']):
        req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"If-None-Match: {v}\r\n" for v in lines) \
            + "Connection: close\r\n\r\n"
        status, head, body = raw_request(origin.base_url, req.encode())
        assert status == 304 and body == b"", f"If-None-Match lines {lines} -> {status}"
    req = f'GET {path} HTTP/1.1\r\nHost: {host}\r\nIf-None-Match: "x"\r\nIf-None-Match: "y"\r\nConnection: close\r\n\r\n'
    assert raw_request(origin.base_url, req.encode())[0] == 200
