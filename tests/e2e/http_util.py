"""HTTP and manifest helpers for the end-to-end tests (no third-party HTTP client).

* `raw_http` speaks HTTP/1.1 over a plain socket, so request targets reach the server byte for
  byte (urllib/http.client would normalise `..`, `//`, backslashes or refuse NUL).
* `fetch` is a thin http.client wrapper that never raises on 4xx/5xx.
* `discover` reads an asset's MPD and HLS playlists and returns every init/media segment path, so
  tests never hard-code rendition ids.
"""
import http.client
import math
import re
import shutil
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"


# --------------------------------------------------------------------------------------------
# plumbing


def host_port(base_url):
    u = urlsplit(base_url)
    return u.hostname, u.port


def sample(rel):
    """Path of a committed sample asset (fails, not skips, when missing)."""
    p = ASSETS / rel
    assert p.exists(), f"sample asset {p} is missing (scripts/make-samples.sh makes it)"
    return p


def copy_sample(rel, dst):
    """Copy assets/<rel> (file or folder) to dst; returns dst."""
    src = sample(rel)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def write_config(path, rescan_interval_ms=200, stable_after_ms=500, extra=""):
    path = Path(path)
    path.write_text(
        "[storage]\n"
        f"rescan_interval_ms = {rescan_interval_ms}\n"
        f"stable_after_ms = {stable_after_ms}\n" + extra
    )
    return path


def wait_for(fn, timeout=15.0, interval=0.2):
    """Call fn() until it returns a truthy value or the deadline passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_lines(origin):
    return [ANSI.sub("", line) for line in origin.log().splitlines()]


def assert_healthy(origin):
    """The process is alive and never panicked."""
    log = origin.log()
    assert origin.alive(), f"server died (exit {origin.proc.poll()}); log tail:\n{log[-3000:]}"
    assert "panicked" not in log, f"server panicked:\n{log[-3000:]}"


# --------------------------------------------------------------------------------------------
# raw HTTP over a socket


class RawResponse:
    def __init__(self, status, reason, headers, body, head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value), original order
        self.body = body
        self.head = head

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self):
        return f"<RawResponse {self.status} {self.headers} body={self.body[:200]!r}>"


def _parse_head(head):
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
    assert m, f"bad status line {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(b":")
        headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
    return int(m.group(1)), (m.group(2) or b"").decode("latin-1"), headers


def _dechunk(data):
    out = bytearray()
    pos = 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            return bytes(out)
        out += data[pos:pos + size]
        pos += size + 2


def raw_request(base_url, request: bytes, timeout=10.0):
    """Send `request` byte for byte (duplicate or missing headers included) and return
    (status, head bytes, rest) of the answer, read to EOF (send `Connection: close`)."""
    host, port = host_port(base_url)
    data = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(request)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    return status, head, rest


def raw_http(base_url, target, method="GET", headers=None, timeout=10.0):
    """Send one request with `Connection: close` and read the whole answer to EOF.

    `target` (str or bytes) goes on the request line untouched. For HEAD/304/204 the body must
    be empty: whatever follows the header block is returned as `body` so a test can assert that.
    """
    host, port = host_port(base_url)
    if isinstance(target, str):
        target = target.encode("latin-1")
    hdrs = {"Host": f"{host}:{port}", "Connection": "close"}
    hdrs.update(headers or {})
    req = method.encode() + b" " + target + b" HTTP/1.1\r\n"
    req += b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in hdrs.items()) + b"\r\n"
    data = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(req)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (e.g. 414) before reading everything
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                if b"\r\n\r\n" in data:
                    break
                raise
            if not chunk:
                break
            data += chunk
    data = bytes(data)
    assert b"\r\n\r\n" in data, f"no complete response to {method} {target[:200]!r}: {data[:300]!r}"
    head, rest = data.split(b"\r\n\r\n", 1)
    status, reason, hdr_list = _parse_head(head)
    resp = RawResponse(status, reason, hdr_list, rest, head)
    if method != "HEAD" and status not in (204, 304) and rest:
        te = (resp.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            resp.body = _dechunk(rest)
    return resp


# --------------------------------------------------------------------------------------------
# http.client


def fetch(base_url, path, method="GET", headers=None, timeout=30.0):
    """(status, headers as HTTPMessage, body) over a fresh connection; never raises on 4xx/5xx."""
    host, port = host_port(base_url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def get_ok(base_url, path, **kw):
    status, headers, body = fetch(base_url, path, **kw)
    assert status == 200, f"GET {path} -> {status}: {body[:300]!r}"
    return headers, body


# --------------------------------------------------------------------------------------------
# segment names carry the version of their bytes: `init.cenc.v1a2b3c4d.mp4`, `3.v1a2b3c4d.m4s`

VERSION_RE = re.compile(r"^v[0-9a-f]{8}$")
ANY_VERSION = "v00000000"


def with_version(path, version=ANY_VERSION):
    """`/a/r/2.cenc.m4s` → `/a/r/2.cenc.<version>.m4s` (init and media segment names only).
    Any version suits a request the origin must refuse before it looks at the version
    (unknown asset, variant not offered, clear refused, unprotectable track)."""
    head, _, name = path.rpartition("/")
    stem, _, ext = name.rpartition(".")
    if ext not in ("mp4", "m4s") or VERSION_RE.match(stem.rpartition(".")[2] or ""):
        return path
    return f"{head}/{stem}.{version}.{ext}"


def unversioned(path):
    """A segment URL without its version token (`…/3.cbcs.v1a2b3c4d.m4s` → `…/3.cbcs.m4s`), to
    compare names by what they are."""
    return re.sub(r"\.v[0-9a-f]{8}(\.(?:mp4|m4s))$", r"\1", path)


def current_version(base_url, asset, rendition, variant="clear"):
    """The version the origin's manifests give `variant`'s segment names of `rendition` now,
    read from its HLS media playlist or the DASH MPD (whichever the policy offers); None if
    no manifest names one."""
    sfx = "" if variant == "clear" else f".{variant}"
    v = re.escape(sfx)
    pats = [rf"init{v}\.(v[0-9a-f]{{8}})\.mp4", rf"(?:\d+|\$Number\$){v}\.(v[0-9a-f]{{8}})\.m4s"]
    candidates = [f"/{asset}/{rendition}/media{sfx}.m3u8", f"/{asset}/manifest{sfx}.mpd"]
    if variant == "clear":
        # The clear init and clear lead of HLS AES-128 carry the clear version too.
        candidates += [f"/{asset}/{rendition}/media.aes128.m3u8", f"/{asset}/manifest.mpd"]
    for path in candidates:
        status, _, body = fetch(base_url, path)
        if status != 200:
            continue
        text = body.decode(errors="replace")
        if path.endswith(".mpd"):
            # The MPD's templates are per Representation: look inside this rendition's.
            m = re.search(rf'<Representation id="{re.escape(rendition)}".*?</Representation>', text, re.S)
            if not m:
                continue
            text = m.group(0)
        for pat in pats:
            m = re.search(pat, text)
            if m:
                return m.group(1)
    return None


def versioned(base_url, path):
    """A hand-written segment path (`/a/r/2.cenc.m4s`) with the version its manifests give it now
    (assets ids with `/` included: the rendition is the path's second-to-last segment)."""
    if not path.endswith((".mp4", ".m4s")):
        return path
    parts = path.strip("/").split("/")
    asset, rendition, name = "/".join(parts[:-2]), parts[-2], parts[-1]
    bits = name.split(".")
    variant = bits[1] if len(bits) == 3 else "clear"
    version = current_version(base_url, asset, rendition, variant)
    assert version, f"no manifest of {asset} names a {variant} version for {rendition}"
    return with_version(path, version)


# --------------------------------------------------------------------------------------------
# manifests


@dataclass
class Rendition:
    id: str
    kind: str  # "video" | "audio" | other
    codecs: str
    init: str  # absolute URL path
    media: list = field(default_factory=list)  # absolute URL paths, segment 1..n
    bandwidth: int = 0


_TEMPLATE = re.compile(r"\$(RepresentationID|Number|Bandwidth|Time|)(%0(\d+)d)?\$")


def _fill(template, rep_id, number=None, bandwidth=None, time_=None):
    def sub(m):
        name, width = m.group(1), m.group(3)
        if name == "":
            return "$"
        value = {"RepresentationID": rep_id, "Number": number, "Bandwidth": bandwidth,
                 "Time": time_}[name]
        assert value is not None, f"template {template!r} needs ${name}$"
        if width and name != "RepresentationID":
            return str(value).zfill(int(width))
        return str(value)

    return _TEMPLATE.sub(sub, template)


def _iso_duration_secs(text):
    m = re.fullmatch(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", text or "")
    assert m, f"cannot parse duration {text!r}"
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def parse_mpd(xml_bytes, mpd_path):
    """Renditions of a static MPD with SegmentTemplate (+ SegmentTimeline or @duration)."""
    root = ET.fromstring(xml_bytes)
    assert root.tag.endswith("MPD"), root.tag
    base = mpd_path
    mpd_base = root.find("{*}BaseURL")
    if mpd_base is not None and mpd_base.text:
        base = urljoin(base, mpd_base.text.strip())
    total = root.get("mediaPresentationDuration")
    out = []
    for period in root.iterfind(".//{*}Period"):
        for aset in period.iterfind(".//{*}AdaptationSet"):
            for rep in aset.iterfind("{*}Representation"):
                rid = rep.get("id")
                mime = rep.get("mimeType") or aset.get("mimeType") or ""
                ctype = rep.get("contentType") or aset.get("contentType") or mime.split("/")[0]
                codecs = rep.get("codecs") or aset.get("codecs") or ""
                st = rep.find("{*}SegmentTemplate")
                if st is None:
                    st = aset.find("{*}SegmentTemplate")
                if st is None:
                    st = period.find("{*}SegmentTemplate")
                assert st is not None, f"representation {rid} has no SegmentTemplate"
                rbase = base
                for holder in (aset, rep):
                    b = holder.find("{*}BaseURL")
                    if b is not None and b.text:
                        rbase = urljoin(rbase, b.text.strip())
                start = int(st.get("startNumber", "1"))
                bw = rep.get("bandwidth")
                times = []
                tl = st.find("{*}SegmentTimeline")
                if tl is not None:
                    t = 0
                    for s in tl.findall("{*}S"):
                        if s.get("t") is not None:
                            t = int(s.get("t"))
                        d = int(s.get("d"))
                        r = int(s.get("r", "0"))
                        assert r >= 0, "open-ended S@r=-1 not expected in a static MPD"
                        for _ in range(r + 1):
                            times.append(t)
                            t += d
                else:
                    dur = int(st.get("duration"))
                    ts = int(st.get("timescale", "1"))
                    n = math.ceil(_iso_duration_secs(total) * ts / dur - 1e-9)
                    times = [i * dur for i in range(n)]
                init = urljoin(rbase, _fill(st.get("initialization"), rid, bandwidth=bw))
                media = [urljoin(rbase, _fill(st.get("media"), rid, number=start + i,
                                              bandwidth=bw, time_=t))
                         for i, t in enumerate(times)]
                out.append(Rendition(rid, ctype, codecs, _path(init), [_path(m) for m in media],
                                     int(bw or 0)))
    return out


def _path(url):
    u = urlsplit(url)
    return u.path + (("?" + u.query) if u.query else "")


def parse_master(text, master_path):
    """[(kind, media playlist path)] of an HLS multivariant playlist."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    assert lines and lines[0] == "#EXTM3U", f"not a playlist: {text[:200]!r}"
    out = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-MEDIA:"):
            m = re.search(r'URI="([^"]+)"', line)
            t = re.search(r"TYPE=([A-Z-]+)", line)
            if m:
                out.append(((t.group(1) if t else "").lower(), _path(urljoin(master_path, m.group(1)))))
        elif line.startswith("#EXT-X-STREAM-INF"):
            uri = lines[i + 1]
            assert not uri.startswith("#"), f"STREAM-INF without URI: {line}"
            out.append(("video", _path(urljoin(master_path, uri))))
    return out


def parse_media_playlist(text, playlist_path):
    """(init path, [segment paths], [EXTINF durations]) of an HLS media playlist."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    assert lines and lines[0] == "#EXTM3U", f"not a playlist: {text[:200]!r}"
    init = None
    segs, durs = [], []
    pending = None
    for line in lines:
        if line.startswith("#EXT-X-MAP:"):
            init = _path(urljoin(playlist_path, re.search(r'URI="([^"]+)"', line).group(1)))
        elif line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:"):].split(",")[0])
        elif not line.startswith("#"):
            segs.append(_path(urljoin(playlist_path, line)))
            durs.append(pending)
            pending = None
    return init, segs, durs


def discover(base_url, asset):
    """Renditions of `asset` from its MPD (asset id may contain '/')."""
    mpd_path = f"/{asset}/manifest.mpd"
    _, body = get_ok(base_url, mpd_path)
    reps = parse_mpd(body, mpd_path)
    assert reps, f"{mpd_path} lists no representation"
    return reps


def first_of(reps, kind):
    for r in reps:
        if r.kind == kind:
            return r
    raise AssertionError(f"no {kind} rendition among {[(r.id, r.kind) for r in reps]}")
