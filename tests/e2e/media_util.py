"""Helpers for the media end-to-end tests (test_media.py): manifest parsing with independent
parsers (mpegdash, m3u8), segment URL resolution, and frame-exact comparison with ffmpeg framemd5.

Nothing here knows how drm-origin names its renditions: everything is discovered from the
manifests, as a player would.

Frame comparison, and the one ffmpeg quirk it has to handle
------------------------------------------------------------
Both sides are decoded by the same ffmpeg (Debian 5.1) with `-copyts -f framemd5`, which prints
one line per decoded frame: stream, dts, pts, duration, size, md5 of the raw frame, plus a `#tb`
header giving the time base of pts/duration.

ffmpeg 5.1's mov demuxer applies an edit list differently for progressive and fragmented files:
  * progressive (samples in stbl): mov_fix_index marks the AAC priming packet (elst media_time =
    1024 samples) as discarded + "skip_samples=1024", so the decoder never outputs it;
  * fragmented (samples in moof/trun): the elst only shifts timestamps (first packet pts = -1024)
    and the priming frame is decoded and output with pts -1024.
The origin's output is always fragmented, so a perfect repackaging of progressive.mp4 decodes to
one extra leading audio frame, at pts -1024/48000 s. With -copyts that frame keeps its negative
timestamp, so both sides drop frames that end at or before t = 0 (they are never presented):
`drop_preroll()`. That rule is symmetric and timestamp-based: an output without the edit list
(priming frame at pts 0) or with the priming packet removed still fails the comparison.
"""
import hashlib
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from urllib.parse import urljoin

import m3u8
from mpegdash.parser import MPEGDASHParser

from conftest import tool

# ------------------------------------------------------------------------------------------------
# HTTP


def http_get(url, timeout=30):
    """(status, headers, body) without raising on 4xx/5xx."""
    req = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def fetch_ok(url, expect_types=None):
    """GET url, assert 200 (and a Content-Type among expect_types, parameters ignored)."""
    status, headers, body = http_get(url)
    assert status == 200, f"GET {url} -> {status}: {body[:200]!r}"
    if expect_types is not None:
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        assert ctype in expect_types, f"GET {url}: Content-Type {ctype!r}, expected one of {expect_types}"
    return body


def fetch_manifest(url, expect_type, wait_s=10.0):
    """A manifest, waiting a little for the asset to appear: the origin only serves files that
    have been stable for `stable_after_ms`, so right after start-up an asset may still be 404."""
    deadline = time.time() + wait_s
    while True:
        status, headers, body = http_get(url)
        if status == 200 or time.time() > deadline:
            break
        time.sleep(0.25)
    assert status == 200, f"GET {url} -> {status}: {body[:200]!r}"
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    assert ctype == expect_type, f"GET {url}: Content-Type {ctype!r}, expected {expect_type!r}"
    return body.decode("utf-8")


# ------------------------------------------------------------------------------------------------
# Small parsers

_ISO_DUR = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def iso_duration_s(text):
    """xs:duration such as PT10.5S / PT1M2.003S / P0DT0H0M10S -> seconds (float)."""
    m = _ISO_DUR.match(text.strip())
    assert m, f"not an xs:duration: {text!r}"
    g = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return g["d"] * 86400 + g["h"] * 3600 + g["m"] * 60 + g["s"]


_LANG = {"eng": "en", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de", "spa": "es"}


def norm_lang(code):
    """'eng' / 'en' / 'en-US' -> 'en' (ISO 639-2 or BCP 47 to a comparable primary tag)."""
    if not code:
        return None
    primary = code.lower().split("-")[0]
    return _LANG.get(primary, primary)


# ------------------------------------------------------------------------------------------------
# Source tracks


@dataclass(frozen=True)
class SourceTrack:
    """One track of a sample file, as the tests expect it."""
    path: Path          # the .mp4
    kind: str           # "video" | "audio"
    codec: str          # ffprobe codec_name: h264 / hevc / aac
    codec_tag: str      # sample entry: avc1 / hvc1 / mp4a (the RFC 6381 codecs prefix)
    width: int = None
    height: int = None
    lang: str = None    # normalised ('en'), only checked when set

    @property
    def map_spec(self):
        return "0:v:0" if self.kind == "video" else "0:a:0"

    def __str__(self):
        return f"{self.path.name}:{self.kind}"


@lru_cache(maxsize=None)
def ffprobe_streams(path):
    import json
    out = subprocess.run([tool("ffprobe"), "-v", "error", "-show_streams", "-show_format", "-of", "json",
                          str(path)], check=True, capture_output=True, text=True, timeout=120).stdout
    return json.loads(out)


def source_duration_s(track):
    """Duration of the track as ffprobe reports it (seconds)."""
    info = ffprobe_streams(str(track.path))
    streams = [s for s in info["streams"] if s["codec_type"] == track.kind]
    assert streams, f"{track}: no {track.kind} stream in source"
    return float(streams[0]["duration"])


# ------------------------------------------------------------------------------------------------
# framemd5


@dataclass
class Frame:
    pts: int
    duration: int
    size: int
    md5: str


@dataclass
class Decoded:
    """The framemd5 of one stream: frames in output order, with their time base."""
    label: str
    tb: Fraction
    frames: list = field(default_factory=list)

    def start_s(self, f):
        return float(f.pts * self.tb)

    def end_s(self, f):
        return float((f.pts + f.duration) * self.tb)


def framemd5(path, map_spec, label=None):
    """Decode one stream of `path` with Debian's ffmpeg and return its framemd5 (with -copyts,
    so timestamps are the container's presentation times, not rebased to 0)."""
    cmd = [tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error", "-copyts", "-i", str(path),
           "-map", map_spec, "-f", "framemd5", "-"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"ffmpeg failed on {label or path}: {' '.join(cmd)}\n{p.stderr[-2000:]}"
    dec = Decoded(label or str(path), Fraction(1, 1))
    for line in p.stdout.splitlines():
        if line.startswith("#tb 0:"):
            dec.tb = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            cols = [c.strip() for c in line.split(",")]
            # stream, dts, pts, duration, size, hash
            dec.frames.append(Frame(int(cols[2]), int(cols[3]), int(cols[4]), cols[5]))
    return dec


@lru_cache(maxsize=None)
def source_framemd5(path, map_spec):
    return framemd5(path, map_spec, label=f"source {Path(path).name} [{map_spec}]")


def drop_preroll(dec):
    """Frames that end at or before presentation time 0 are never shown (edit-list pre-roll such
    as AAC priming; see the module doc). Returns (kept frames, dropped frames)."""
    kept = [f for f in dec.frames if (f.pts + f.duration) > 0]
    dropped = [f for f in dec.frames if (f.pts + f.duration) <= 0]
    return kept, dropped


def _fmt(dec, frames, i):
    if 0 <= i < len(frames):
        f = frames[i]
        return f"#{i} pts={f.pts} ({dec.start_s(f):.4f}s) dur={f.duration} size={f.size} md5={f.md5}"
    return f"#{i} <none>"


def compare_md5(src, out):
    """None if the presented frames of `out` have exactly the md5s of `src`, else a report."""
    s_frames, s_drop = drop_preroll(src)
    o_frames, o_drop = drop_preroll(out)
    s = [f.md5 for f in s_frames]
    o = [f.md5 for f in o_frames]
    if s == o:
        return None
    lines = [f"framemd5 mismatch: {src.label} vs {out.label}",
             f"  presented frames: source {len(s)}, output {len(o)} "
             f"(pre-roll frames ending at t<=0 dropped: source {len(s_drop)}, output {len(o_drop)}; "
             f"decoded in total: source {len(src.frames)}, output {len(out.frames)})"]
    first = next((i for i in range(min(len(s), len(o))) if s[i] != o[i]), min(len(s), len(o)))
    lines.append(f"  first differing index: {first}")
    for i in range(max(0, first - 2), first + 3):
        lines.append(f"    source {_fmt(src, s_frames, i)}")
        lines.append(f"    output {_fmt(out, o_frames, i)}")
    # Common shapes of a bug, spelled out.
    for k in range(1, 4):
        if o[k:] == s or o[k:] == s[:len(o) - k]:
            lines.append(f"  output == source shifted: output has {k} extra frame(s) at the start")
        if s[k:] == o or s[k:] == o[:len(s) - k]:
            lines.append(f"  output == source shifted: output lacks the first {k} source frame(s)")
    if len(o) < len(s) and o == s[:len(o)]:
        lines.append(f"  output is a prefix of the source: last {len(s) - len(o)} frame(s) missing")
    if len(o) > len(s) and o[:len(s)] == s:
        lines.append(f"  source is a prefix of the output: {len(o) - len(s)} extra frame(s) at the end")
    s_set, o_set = set(s), set(o)
    lines.append(f"  md5s only in source: {len(s_set - o_set)}, only in output: {len(o_set - s_set)}; "
                 f"same multiset but different order: {sorted(s) == sorted(o)}")
    # Which differing indices (first 20), to see whether it is per segment.
    diffs = [i for i in range(min(len(s), len(o))) if s[i] != o[i]]
    lines.append(f"  differing indices ({len(diffs)}): {diffs[:20]}{' ...' if len(diffs) > 20 else ''}")
    return "\n".join(lines)


def compare_timing(src, out, tol_s=0.001):
    """None if every presented frame has the same presentation time (within tol_s), else a report.
    Only meaningful once the md5 lists match."""
    s_frames, _ = drop_preroll(src)
    o_frames, _ = drop_preroll(out)
    bad = []
    for i, (a, b) in enumerate(zip(s_frames, o_frames)):
        if abs(src.start_s(a) - out.start_s(b)) > tol_s:
            bad.append(i)
    if not bad and len(s_frames) == len(o_frames):
        return None
    lines = [f"presentation time mismatch: {src.label} (tb {src.tb}) vs {out.label} (tb {out.tb}); "
             f"{len(bad)} frame(s) off by more than {tol_s * 1000:.1f} ms"]
    for i in bad[:8]:
        lines.append(f"    source {_fmt(src, s_frames, i)}")
        lines.append(f"    output {_fmt(out, o_frames, i)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# DASH


@dataclass
class Rendition:
    """One rendition as a manifest describes it: where its init and media segments are."""
    id: str
    kind: str                       # video | audio
    codecs: str
    bandwidth: int
    width: int = None
    height: int = None
    lang: str = None
    init_url: str = None
    segment_urls: list = field(default_factory=list)
    segment_durations_s: list = field(default_factory=list)
    segment_starts_s: list = field(default_factory=list)


def _first(*vals):
    for v in vals:
        if v is not None:
            return v
    return None


def _base(url, nodes):
    """Apply the first BaseURL of each level (MPD, Period, AdaptationSet, Representation)."""
    for n in nodes:
        bus = getattr(n, "base_urls", None)
        if bus:
            url = urljoin(url, bus[0].base_url_value.strip())
    return url


_TPL = re.compile(r"\$(RepresentationID|Number|Time|Bandwidth)(%0(\d+)d)?\$|\$\$")


def expand_template(tpl, rep_id, bandwidth, number=None, time_=None):
    """DASH SegmentTemplate identifier substitution (ISO 23009-1 5.3.9.4.4), with %0Nd widths."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name, width = m.group(1), m.group(3)
        val = {"RepresentationID": rep_id, "Number": number, "Time": time_, "Bandwidth": bandwidth}[name]
        assert val is not None, f"template {tpl!r} uses ${name}$ which is not available"
        if width and name != "RepresentationID":
            return f"{int(val):0{int(width)}d}"
        return str(val)
    return _TPL.sub(sub, tpl)


def parse_mpd(text):
    return MPEGDASHParser.parse(text)


def dash_kind(aset, rep):
    ctype = _first(aset.content_type)
    if ctype:
        return ctype
    mime = _first(rep.mime_type, aset.mime_type) or ""
    return mime.split("/")[0]


def dash_renditions(mpd, mpd_url):
    """Every Representation of the (single) Period, with its segment URLs resolved from
    SegmentTemplate + SegmentTimeline, exactly as a DASH client would."""
    assert mpd.periods and len(mpd.periods) == 1, "expected exactly one Period"
    period = mpd.periods[0]
    out = []
    for aset in period.adaptation_sets or []:
        for rep in aset.representations or []:
            base = _base(mpd_url, [mpd, period, aset, rep])
            tpl_r = (rep.segment_templates or [None])[0]
            tpl_a = (aset.segment_templates or [None])[0]
            tpl_p = (period.segment_templates or [None])[0] if hasattr(period, "segment_templates") else None
            tpls = [t for t in (tpl_r, tpl_a, tpl_p) if t is not None]
            assert tpls, f"Representation {rep.id}: no SegmentTemplate"

            def attr(name):
                return _first(*[getattr(t, name) for t in tpls])
            media, init = attr("media"), attr("initialization")
            timescale = attr("timescale") or 1
            start_number = attr("start_number")
            start_number = 1 if start_number is None else start_number
            timelines = _first(*[t.segment_timelines for t in tpls])
            assert media and init, f"Representation {rep.id}: SegmentTemplate without media/initialization"
            assert timelines, f"Representation {rep.id}: SegmentTemplate without SegmentTimeline"
            r = Rendition(id=rep.id, kind=dash_kind(aset, rep), codecs=_first(rep.codecs, aset.codecs),
                          bandwidth=rep.bandwidth, width=_first(rep.width, aset.width),
                          height=_first(rep.height, aset.height), lang=norm_lang(aset.lang))
            r.init_url = urljoin(base, expand_template(init, rep.id, rep.bandwidth))
            pto = attr("presentation_time_offset") or 0
            t = 0
            number = start_number
            for s in timelines[0].Ss or []:
                if s.t is not None:
                    t = s.t
                repeat = s.r or 0
                assert repeat >= 0, "negative @r (open-ended repeat) is not expected in a static MPD"
                for _ in range(repeat + 1):
                    r.segment_urls.append(urljoin(base, expand_template(media, rep.id, rep.bandwidth,
                                                                        number=number, time_=t)))
                    r.segment_starts_s.append((t - pto) / timescale)
                    r.segment_durations_s.append(s.d / timescale)
                    t += s.d
                    number += 1
            out.append(r)
    return out


# ------------------------------------------------------------------------------------------------
# HLS


def parse_m3u8(text, url):
    return m3u8.loads(text, uri=url)


def hls_renditions(master, master_url, media):
    """Renditions as HLS describes them: one per EXT-X-STREAM-INF (video; codec = the video entry
    of CODECS, size = RESOLUTION) and one per EXT-X-MEDIA TYPE=AUDIO (codec = the audio entry of
    the CODECS of a variant using its group, lang = LANGUAGE). `media` maps playlist URL to the
    parsed media playlist."""
    out = []
    audio_codec_of_group = {}
    for p in master.playlists:
        si = p.stream_info
        codecs = [c.strip() for c in (si.codecs or "").split(",") if c.strip()]
        vcodec = next((c for c in codecs if not c.startswith(("mp4a", "ac-3", "ec-3"))), None)
        acodec = next((c for c in codecs if c.startswith(("mp4a", "ac-3", "ec-3"))), None)
        if si.audio and acodec:
            audio_codec_of_group.setdefault(si.audio, acodec)
        url = urljoin(master_url, p.uri)
        w, h = tuple(si.resolution) if si.resolution else (None, None)
        r = Rendition(id=url, kind="video", codecs=vcodec, bandwidth=si.bandwidth, width=w, height=h)
        r.init_url, r.segment_urls, r.segment_durations_s = hls_media_segments(media[url], url)
        out.append(r)
    for m in master.media:
        if m.type != "AUDIO" or not m.uri:
            continue
        url = urljoin(master_url, m.uri)
        r = Rendition(id=url, kind="audio", codecs=audio_codec_of_group.get(m.group_id), bandwidth=None,
                      lang=norm_lang(m.language))
        r.init_url, r.segment_urls, r.segment_durations_s = hls_media_segments(media[url], url)
        out.append(r)
    # The same playlist may be listed by several STREAM-INFs (one per audio group): keep one.
    uniq = {}
    for r in out:
        uniq.setdefault((r.kind, r.id), r)
    return list(uniq.values())


def hls_media_segments(pl, playlist_url):
    """(init url, [segment urls], [durations]) of a media playlist."""
    inits = {urljoin(playlist_url, s.init_section.uri) for s in pl.segments if s.init_section is not None}
    if not inits and pl.segment_map:
        inits = {urljoin(playlist_url, m.uri) for m in pl.segment_map}
    assert len(inits) == 1, f"{playlist_url}: expected one EXT-X-MAP, got {sorted(inits)}"
    urls = [urljoin(playlist_url, s.uri) for s in pl.segments]
    durs = [float(s.duration) for s in pl.segments]
    return inits.pop(), urls, durs


# ------------------------------------------------------------------------------------------------
# Downloading a rendition


_downloads = {}


def download_rendition_cached(init_url, segment_urls, kind, dest_dir):
    """download_rendition, once per distinct URL list (DASH and HLS normally share them)."""
    key = (init_url, tuple(segment_urls), kind)
    if key not in _downloads:
        _downloads[key] = download_rendition(init_url, segment_urls, kind, dest_dir)[0]
    return _downloads[key]


@lru_cache(maxsize=None)
def _output_framemd5(path, map_spec):
    return framemd5(path, map_spec)


def output_framemd5(path, map_spec, label):
    """framemd5 of a downloaded rendition, decoded once per file (DASH and HLS share files)."""
    dec = _output_framemd5(str(path), map_spec)
    return Decoded(label, dec.tb, dec.frames)


def download_rendition(init_url, segment_urls, kind, dest_dir):
    """Fetch init + every media segment, concatenate to a file, return its path and a digest
    of the concatenation."""
    ctypes = ("audio/mp4",) if kind == "audio" else ("video/mp4",)
    h = hashlib.sha256()
    fd, path = tempfile.mkstemp(suffix=".mp4", dir=dest_dir)
    with os.fdopen(fd, "wb") as f:
        for url in [init_url] + list(segment_urls):
            body = fetch_ok(url, ctypes)
            assert body, f"GET {url}: empty body"
            f.write(body)
            h.update(body)
    return Path(path), h.hexdigest()
