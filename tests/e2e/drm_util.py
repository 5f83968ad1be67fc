"""Helpers for the policy and signalling end-to-end tests (test_policies.py, test_signalling.py).

Everything is judged from outside, as a player or a packager's QA would: manifests parsed with
`mpegdash`/`m3u8`/ElementTree, init segments with the independent box walker of enc_util.py,
pssh boxes and PlayReady Objects with pywidevine/pyplayready (through scripts/check-pssh.py in
the venv it documents), decryption by the static ffmpeg 8.1 (`-decryption_key`) or openssl,
frames compared by framemd5 with the same ffmpeg build on both sides (enc_util.py).

Byte layouts and identifiers: /work/shared/spec-notes.md §0 (system ids, GUID byte order), §3
(Widevine pssh), §4 (PlayReady Object, WRMHEADER, key seed), §5-§7 (DASH / HLS signalling).
"""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import pytest

import enc_util as eu
import media_util as mu
from conftest import ROOT, Origin, tool

# ------------------------------------------------------------------------------------------------
# Identifiers (spec-notes §0)

WIDEVINE = bytes.fromhex("edef8ba979d64acea3c827dcd51d21ed")
PLAYREADY = bytes.fromhex("9a04f07998404286ab92e65be0885f95")
COMMON = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")
SCHEME_URI = {
    "mp4protection": "urn:mpeg:dash:mp4protection:2011",
    "clearkey": "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e",
    "widevine": "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
    "playready": "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95",
    "common": "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b",
}
KEYFORMAT = {
    "fairplay": "com.apple.streamingkeydelivery",
    "widevine": "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
    "playready": "com.microsoft.playready",
    "identity": "identity",
    "clearkey": "org.w3.clearkey",
}
NS = {"d": "urn:mpeg:dash:schema:mpd:2011", "cenc": "urn:mpeg:cenc:2013",
      "mspr": "urn:microsoft:playready", "dashif": "https://dashif.org/CPS"}
D = "{urn:mpeg:dash:schema:mpd:2011}"
CENC = "{urn:mpeg:cenc:2013}"

# The sample files the tests use (scripts/make-samples.sh).
SRC_VIDEO = ROOT / "assets" / "multi" / "video_180p.mp4"
SRC_AUDIO = ROOT / "assets" / "multi" / "audio_en.mp4"
V180 = mu.SourceTrack(SRC_VIDEO, "video", "h264", "avc1", 320, 180)
AUDIO = mu.SourceTrack(SRC_AUDIO, "audio", "aac", "mp4a", lang="en")
PROG_VIDEO = mu.SourceTrack(ROOT / "assets" / "progressive.mp4", "video", "h264", "avc1", 480, 270)
PROG_AUDIO = mu.SourceTrack(ROOT / "assets" / "progressive.mp4", "audio", "aac", "mp4a", lang="en")

WRONG_KEY = bytes.fromhex("deadbeefdeadbeefdeadbeefdeadbeef")

# Fast rescans so assets and config changes are picked up within a fraction of a second.
STORAGE = "[storage]\nrescan_interval_ms = 200\nstable_after_ms = 200\n"


def uuid(hex32):
    h = hex32.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def key_table(name, kid, key):
    return f'[keys.{name}]\nkid = "{uuid(kid)}"\nkey = "{key}"\n'


def write_atomic(path, text):
    """Publish a config file the way an operator should: write elsewhere, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def report(problems, header=""):
    """Fail with every problem listed (one per line)."""
    if problems:
        pytest.fail((header + "\n" if header else "") + "\n".join(str(p) for p in problems), pytrace=False)


def start(work, name, text, assets):
    cfg = Path(work) / f"{name}.toml"
    cfg.write_text(text)
    return Origin(assets, config=cfg)


def asset_folder(root, name, files):
    """A folder asset `name` under `root` holding copies of `files` (mtime kept, so the watcher
    finds them stable at once)."""
    d = Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, d / Path(f).name)
    return d


def make_720p(dest):
    """A 1280x720 H.264 fragmented rendition with the GOP structure of assets/multi (2 s closed
    GOPs at 25 fps, 10 s) so it aligns with video_180p.mp4; made with Debian's ffmpeg."""
    cmd = [tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10", "-map", "0:v",
           "-threads", "1", "-fflags", "+bitexact", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", "-flags:v", "+bitexact", "-sc_threshold", "0",
           "-x264-params", "open_gop=0", "-b:v", "300k", "-maxrate", "300k", "-bufsize", "300k",
           "-g", "50", "-keyint_min", "50", "-an",
           "-movflags", "+frag_keyframe+empty_moov+delay_moov+default_base_moof", "-f", "mp4", str(dest)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"ffmpeg could not make the 720p rendition: {p.stderr[-1000:]}"
    return mu.SourceTrack(Path(dest), "video", "h264", "avc1", 1280, 720)


# ------------------------------------------------------------------------------------------------
# Manifests


@dataclass
class ASet:
    """One DASH AdaptationSet's protection, read with ElementTree."""
    content: str
    rep_ids: list
    heights: list
    element: ET.Element = field(repr=False)
    cps: list = field(default_factory=list, repr=False)

    def cp(self, system):
        uri = SCHEME_URI[system]
        found = [c for c in self.cps if (c.get("schemeIdUri") or "").lower() == uri]
        return found

    @property
    def scheme(self):
        m = self.cp("mp4protection")
        return m[0].get("value") if m else None

    @property
    def default_kid(self):
        m = self.cp("mp4protection")
        v = m[0].get(CENC + "default_KID") if m else None
        return bytes.fromhex(v.replace("-", "")) if v else None


def mpd_sets(text):
    root = ET.fromstring(text)
    out = []
    for a in root.iter(D + "AdaptationSet"):
        reps = a.findall(D + "Representation")
        content = a.get("contentType") or (a.get("mimeType") or "").split("/")[0]
        cps = a.findall(D + "ContentProtection") + [c for r in reps for c in r.findall(D + "ContentProtection")]
        out.append(ASet(content, [r.get("id") for r in reps],
                        [int(r.get("height")) for r in reps if r.get("height")], a, cps))
    return out


def dash(o, asset, variant=None):
    """(MPD text, renditions) of manifest.mpd or manifest.<variant>.mpd."""
    name = "manifest.mpd" if variant is None else f"manifest.{variant}.mpd"
    url = o.url(f"/{asset}/{name}")
    text = mu.fetch_manifest(url, "application/dash+xml")
    return text, mu.dash_renditions(mu.parse_mpd(text), url)


@dataclass
class Hls:
    url: str
    text: str
    master: object
    rends: list
    media: dict         # media playlist url -> (text, parsed)


def hls(o, asset, variant=None):
    name = "master.m3u8" if variant is None else f"master.{variant}.m3u8"
    url = o.url(f"/{asset}/{name}")
    text = mu.fetch_manifest(url, "application/vnd.apple.mpegurl")
    master = mu.parse_m3u8(text, url)
    urls = [urljoin(url, p.uri) for p in master.playlists] + [urljoin(url, m.uri) for m in master.media if m.uri]
    media = {}
    for u in dict.fromkeys(urls):
        t = mu.fetch_manifest(u, "application/vnd.apple.mpegurl")
        media[u] = (t, mu.parse_m3u8(t, u))
    parsed = {u: p for u, (_, p) in media.items()}
    return Hls(url, text, master, mu.hls_renditions(master, url, parsed), media)


def pick(rends, kind, height=None):
    c = [r for r in rends if r.kind == kind and (height is None or r.height == height)]
    assert len(c) == 1, f"expected one {kind} rendition (height {height}), got {[(r.id, r.height) for r in c]}"
    return c[0]


def hls_attrs(line):
    """Attributes of one HLS tag line (RFC 8216 §4.2 attribute list), quotes removed."""
    body = line.split(":", 1)[1]
    out = {}
    for m in re.finditer(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', body):
        out[m.group(1)] = m.group(2).strip('"')
    return out


def key_lines(text, tag="EXT-X-KEY"):
    return [(i, hls_attrs(l)) for i, l in enumerate(text.splitlines()) if l.startswith(f"#{tag}:")]


def data_uri_bytes(uri):
    """Payload of a `data:...;base64,` URI."""
    head, _, payload = uri.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), f"not a base64 data URI: {uri[:60]}"
    return base64.b64decode(payload, validate=True)


# ------------------------------------------------------------------------------------------------
# Downloads and decryption


_downloads = {}


def download(r, work, tag):
    """A rendition (init + segments, concatenated) fetched through its manifest's URLs; one
    download per distinct URL list and tag (a tag names one server's output: ports get reused)."""
    k = (r.init_url, tuple(r.segment_urls), tag)
    if k not in _downloads:
        dest = Path(work) / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', tag)}-{len(_downloads)}.mp4"
        _downloads[k] = eu.download(r.init_url, r.segment_urls, r.kind, dest)
    return _downloads[k]


def judge(path, track, key, label):
    """None if `path` decrypted by ffmpeg 8.1 with `key` (None: no decryption) decodes to exactly
    the source track's frames at the same times, else a report."""
    out, rc, err = eu.framemd5_8(path, track.map_spec, label, key=key)
    if rc != 0 or not out.frames:
        return f"{label}: ffmpeg8 {'-decryption_key ' + key.hex() if key else '(no key)'} failed (rc {rc}): {err}"
    src = eu.source_framemd5_8(track.path, track.map_spec)
    rep = mu.compare_md5(src, out) or mu.compare_timing(src, out)
    return f"{label}: {rep}" if rep else None


def judge_fails(path, track, key, label):
    """A problem if decrypting with `key` (a key that must NOT work) still gives the source."""
    return None if judge(path, track, key, label) else f"{label}: decrypts to the source frames with key {key.hex()}"


def tenc_of(init_bytes):
    """(scheme 4cc, default KID) of a protected init segment, or (None, None) when clear."""
    info = eu.parse_init(init_bytes)
    e = info.entries[0] if info.entries else None
    if e is None or e.sinf is None:
        return None, None
    scheme = e.sinf["schm"]["scheme_type"].decode() if e.sinf.get("schm") else None
    return scheme, info.kid


def pssh_boxes(init_bytes):
    """{system id bytes: [whole pssh box bytes]} of an init segment's moov."""
    out = {}
    for top in eu.parse_boxes(init_bytes):
        if top.type != b"moov":
            continue
        for b in top.all("pssh"):
            sid = bytes(init_bytes[b.body_start + 4:b.body_start + 20])
            out.setdefault(sid, []).append(bytes(init_bytes[b.start:b.end]))
    return out


def pssh_data(box):
    return eu.parse_pssh(eu.parse_boxes(box)[0])["data"]


# ------------------------------------------------------------------------------------------------
# PlayReady (spec-notes §4)


def pro_records(pro):
    """[(type, value bytes)] of a PlayReady Object (little-endian length, count, records)."""
    length = int.from_bytes(pro[0:4], "little")
    assert length == len(pro), f"PRO length field {length}, object has {len(pro)} bytes"
    count = int.from_bytes(pro[4:6], "little")
    pos, out = 6, []
    for _ in range(count):
        rtype = int.from_bytes(pro[pos:pos + 2], "little")
        rlen = int.from_bytes(pro[pos + 2:pos + 4], "little")
        out.append((rtype, pro[pos + 4:pos + 4 + rlen]))
        pos += 4 + rlen
    assert pos == len(pro), f"PRO records end at {pos}, object has {len(pro)} bytes"
    return out


def wrmheader_xml(pro):
    recs = [v for t, v in pro_records(pro) if t == 1]
    assert len(recs) == 1, f"PRO has {len(recs)} WRMHEADER records"
    return recs[0].decode("utf-16-le")


def guid_le_kids(xml):
    """KIDs named by a WRMHEADER (4.0 <KID>b64</KID>, 4.1+ VALUE="b64"), decoded from the
    GUID little-endian byte order to canonical UUID bytes."""
    vals = re.findall(r"<KID>([^<]+)</KID>", xml) + re.findall(r'<KID [^>]*VALUE="([^"]+)"', xml)
    return [uuidlib.UUID(bytes_le=base64.b64decode(v)).bytes for v in vals]


def playready_checksum(kid, key):
    """CHECKSUM of an AESCTR key: first 8 bytes of AES-ECB(key, KID in GUID-LE order)."""
    le = uuidlib.UUID(bytes=kid).bytes_le
    p = subprocess.run(["openssl", "enc", "-aes-128-ecb", "-nopad", "-K", key.hex()], input=le,
                       capture_output=True, check=True)
    return base64.b64encode(p.stdout[:8]).decode()


def keyseed_key(seed, kid):
    """PlayReady key-seed derivation (spec-notes §4.4), computed here independently."""
    s = seed[:30]
    k = uuidlib.UUID(bytes=kid).bytes_le
    a = hashlib.sha256(s + k).digest()
    b = hashlib.sha256(s + k + s).digest()
    c = hashlib.sha256(s + k + s + k).digest()
    return bytes(a[i] ^ a[i + 16] ^ b[i] ^ b[i + 16] ^ c[i] ^ c[i + 16] for i in range(16))


# ------------------------------------------------------------------------------------------------
# External judges that need their own installs


def pssh_python():
    """The Python that has pywidevine + pyplayready (pyplayready pins an older `cryptography`
    than the test environment, hence a venv): $DRM_PSSH_PYTHON, else the venv named in
    scripts/check-pssh.py's header."""
    for cand in (os.environ.get("DRM_PSSH_PYTHON"), "/work/venv-drm/bin/python", str(ROOT / ".venv-drm/bin/python")):
        if cand and Path(cand).exists():
            return cand
    pytest.fail("pywidevine/pyplayready venv missing: python3 -m venv /work/venv-drm && "
                "/work/venv-drm/bin/pip install pywidevine pyplayready (or set DRM_PSSH_PYTHON)", pytrace=False)


def check_pssh(tokens, keys=()):
    """scripts/check-pssh.py --json over {label: bytes}: {label: entry} (one entry per box)."""
    args = [pssh_python(), str(ROOT / "scripts" / "check-pssh.py"), "--json"]
    for k in keys:
        args += ["--key", k.hex()]
    args += [f"{label}={data.hex()}" for label, data in tokens.items()]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    try:
        entries = json.loads(p.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"check-pssh.py produced no JSON (rc {p.returncode}): {p.stdout[-500:]} {p.stderr[-1500:]}",
                    pytrace=False)
    return {e["label"]: e for e in entries}


def cps_xsd():
    """DASH-IF-CPS.xsd (the schema of `dashif:Laurl`, namespace https://dashif.org/CPS) as the
    crates.io package dash-mpd 0.21.0 ships it in tests/fixtures/. Looked up in the cargo
    registry (sources, then the .crate cache); if absent, cargo (the ordinary client) fetches the
    crate into a scratch project first."""
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    rel = "tests/fixtures/DASH-IF-CPS.xsd"

    def look():
        for p in sorted(cargo_home.glob(f"registry/src/*/dash-mpd-*/{rel}")):
            return p
        for crate in sorted(cargo_home.glob("registry/cache/*/dash-mpd-*.crate")):
            with tarfile.open(crate) as t:
                m = next((m for m in t.getmembers() if m.name.endswith(rel)), None)
                if m is not None:
                    out = Path(tempfile.gettempdir()) / "drm-origin-DASH-IF-CPS.xsd"
                    out.write_bytes(t.extractfile(m).read())
                    return out
        return None
    found = look()
    if found is None:
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "src").mkdir()
            (Path(d) / "src/lib.rs").write_text("")
            (Path(d) / "Cargo.toml").write_text(
                '[package]\nname = "cps-xsd"\nversion = "0.0.0"\nedition = "2021"\n'
                '[dependencies]\ndash-mpd = { version = "=0.21.0", default-features = false }\n')
            p = subprocess.run(["cargo", "fetch", "--quiet"], cwd=d, capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, f"cargo fetch dash-mpd failed: {p.stderr[-1000:]}"
        found = look()
    assert found is not None, "DASH-IF-CPS.xsd not found in the dash-mpd crate"
    return found


def xmllint(path, schema=None):
    """(rc, stderr) of xmllint --noout [--schema]. xmllint exits 0 on namespace errors (an
    undeclared prefix), so callers must also require an empty stderr."""
    cmd = [tool("xmllint"), "--noout"]
    if schema is not None:
        cmd += ["--schema", str(schema)]
    p = subprocess.run(cmd + [str(path)], capture_output=True, text=True, timeout=60)
    err = "\n".join(l for l in p.stderr.splitlines() if not l.endswith(" validates"))
    return p.returncode, err.strip()


def keys_show(config, assets, asset, show_keys=True):
    """`drm-origin keys show`: {rendition id: (class, kid bytes, key bytes or None)}."""
    from conftest import BIN
    args = [str(BIN), "keys", "show", asset, "--config", str(config), "--assets", str(assets)]
    if show_keys:
        args.append("--show-keys")
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, "RUST_LOG": "warn"})
    assert p.returncode == 0, f"keys show failed (rc {p.returncode}): {p.stderr[-1500:]}"
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s+(\S+(?: AES-128\))?)\s+.*?\b(video|audio|sd|hd|uhd|envelope)\s+kid ([0-9a-f-]{36})"
                     r"(?: key ([0-9a-f]{32}))?", line)
        if m:
            out[m.group(1)] = (m.group(2), bytes.fromhex(m.group(3).replace("-", "")),
                               bytes.fromhex(m.group(4)) if m.group(4) else None)
    return out, p.stdout
