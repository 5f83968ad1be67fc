"""End-to-end media tests on the shipped sample assets (made by scripts/make-samples.sh).

For each asset: the DASH MPD (parsed with `mpegdash`) and the HLS playlists (parsed with `m3u8`)
say sensible things; DASH and HLS point at the same segment URLs; every rendition, downloaded
through the manifest's own URLs and concatenated, decodes (Debian ffmpeg 5.1, framemd5) to
exactly the frames of the source track, at the same presentation times; video segments decode on
their own; ffprobe opens the manifest URLs directly. See media_util.py for the one ffmpeg quirk
(AAC priming in fragmented vs progressive MP4) the frame comparison accounts for.
"""
import math
import subprocess
import json
from pathlib import Path

import pytest

from conftest import ASSETS, tool
import media_util as mu

# What the sample files contain (kept in sync with scripts/make-samples.sh). The tests map each
# source track to the rendition the manifest describes with the same properties.
A = ASSETS
SOURCES = {
    "multi": [
        mu.SourceTrack(A / "multi/video_180p.mp4", "video", "h264", "avc1", 320, 180),
        mu.SourceTrack(A / "multi/video_270p.mp4", "video", "h264", "avc1", 480, 270),
        mu.SourceTrack(A / "multi/video_360p.mp4", "video", "h264", "avc1", 640, 360),
        mu.SourceTrack(A / "multi/audio_en.mp4", "audio", "aac", "mp4a", lang="en"),
        mu.SourceTrack(A / "multi/audio_fr.mp4", "audio", "aac", "mp4a", lang="fr"),
    ],
    "progressive": [
        mu.SourceTrack(A / "progressive.mp4", "video", "h264", "avc1", 480, 270),
        mu.SourceTrack(A / "progressive.mp4", "audio", "aac", "mp4a", lang="en"),
    ],
    "hevc": [
        mu.SourceTrack(A / "hevc.mp4", "video", "hevc", "hvc1", 352, 192),
        mu.SourceTrack(A / "hevc.mp4", "audio", "aac", "mp4a", lang="en"),
    ],
}
# Assets whose audio AdaptationSets / EXT-X-MEDIA must carry a language (several languages).
NEEDS_LANG = {"multi"}
# Assets whose video renditions must have identical segment timelines (aligned GOPs).
ALIGNED = {"multi"}

ASSET_IDS = sorted(SOURCES)
TRACKS = [(asset, t) for asset in ASSET_IDS for t in SOURCES[asset]]
TRACK_IDS = [f"{a}:{t.path.stem}:{t.kind}" for a, t in TRACKS]
DUR_TOL = 0.1   # s: manifest durations vs ffprobe's track duration (AAC priming is 21 ms)


# ------------------------------------------------------------------------------------------------
# Cached views of one asset (one server per session, read-only)

_cache = {}


def _memo(key, fn):
    if key not in _cache:
        _cache[key] = fn()
    return _cache[key]


def mpd_of(origin, asset):
    def load():
        url = origin.url(f"/{asset}/manifest.mpd")
        text = mu.fetch_manifest(url, "application/dash+xml")
        return url, text, mu.parse_mpd(text)
    return _memo((origin.base_url, asset, "mpd"), load)


def dash_of(origin, asset):
    url, _, mpd = mpd_of(origin, asset)
    return _memo((origin.base_url, asset, "dash"), lambda: mu.dash_renditions(mpd, url))


def hls_of(origin, asset):
    """(master url, master playlist, {media playlist url: media playlist})."""
    def load():
        url = origin.url(f"/{asset}/master.m3u8")
        master = mu.parse_m3u8(mu.fetch_manifest(url, "application/vnd.apple.mpegurl"), url)
        media_urls = [mu.urljoin(url, p.uri) for p in master.playlists]
        media_urls += [mu.urljoin(url, m.uri) for m in master.media if m.uri]
        media = {}
        for u in dict.fromkeys(media_urls):
            media[u] = mu.parse_m3u8(mu.fetch_manifest(u, "application/vnd.apple.mpegurl"), u)
        return url, master, media
    return _memo((origin.base_url, asset, "hls"), load)


def match(track, renditions, asset):
    """The one rendition that carries `track` (by kind, codec, size, language)."""
    cands = [r for r in renditions if r.kind == track.kind]
    cands = [r for r in cands if (r.codecs or "").split(".")[0] == track.codec_tag]
    if track.kind == "video":
        cands = [r for r in cands if (r.width, r.height) == (track.width, track.height)]
    elif sum(1 for t in SOURCES[asset] if t.kind == "audio") > 1:
        cands = [r for r in cands if r.lang == track.lang]
    assert len(cands) == 1, (
        f"{track}: expected exactly one matching Representation, got {[c.id for c in cands]} among "
        f"{[(r.id, r.kind, r.codecs, r.width, r.height, r.lang) for r in renditions]}")
    return cands[0]


def hls_rends(origin, asset):
    url, master, media = hls_of(origin, asset)
    return _memo((origin.base_url, asset, "hls-rends"), lambda: mu.hls_renditions(master, url, media))


def downloaded(origin, asset, track, tmp_root, proto="dash"):
    """Download the track's rendition through the DASH or HLS manifest's own URLs, concatenate
    init + all media segments; (rendition, file). Identical URL lists are fetched once."""
    rends = dash_of(origin, asset) if proto == "dash" else hls_rends(origin, asset)
    rend = match(track, rends, asset)
    return rend, mu.download_rendition_cached(rend.init_url, rend.segment_urls, track.kind, tmp_root)


def decoded_pair(origin, asset, track, tmp_root, proto):
    rend, path = downloaded(origin, asset, track, tmp_root, proto)
    src = mu.source_framemd5(str(track.path), track.map_spec)
    assert src.frames, f"source {track} decoded to no frames"
    label = f"origin {proto.upper()} {asset} rendition {rend.id} ({len(rend.segment_urls)} segments)"
    out = mu.output_framemd5(str(path), track.map_spec, label)
    return src, out


@pytest.fixture(scope="session")
def media_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


# ------------------------------------------------------------------------------------------------
# Manifests


@pytest.mark.parametrize("asset", ASSET_IDS)
def test_dash_manifest(origin, asset):
    url, text, mpd = mpd_of(origin, asset)
    assert mpd.type in (None, "static"), f"MPD@type={mpd.type!r}, expected static"
    assert mpd.media_presentation_duration, "MPD@mediaPresentationDuration missing"
    mpd_dur = mu.iso_duration_s(mpd.media_presentation_duration)
    longest = max(mu.source_duration_s(t) for t in SOURCES[asset])
    assert abs(mpd_dur - longest) <= DUR_TOL, \
        f"mediaPresentationDuration {mpd_dur:.3f}s vs longest source track {longest:.3f}s"

    rends = mu.dash_renditions(mpd, url)
    assert len(rends) == len(SOURCES[asset]), \
        f"{len(rends)} Representations {[r.id for r in rends]} for {len(SOURCES[asset])} source tracks"
    assert len({r.id for r in rends}) == len(rends), "duplicate Representation@id"
    for r in rends:
        assert r.codecs, f"Representation {r.id}: no @codecs"
        assert r.bandwidth and r.bandwidth > 0, f"Representation {r.id}: no/zero @bandwidth"
        assert r.kind in ("video", "audio"), f"Representation {r.id}: content type {r.kind!r}"
        if r.kind == "video":
            assert r.width and r.height, f"Representation {r.id}: video without @width/@height"
        assert r.segment_urls, f"Representation {r.id}: empty SegmentTimeline"
        assert all(d > 0 for d in r.segment_durations_s), f"Representation {r.id}: S@d <= 0"
        # The timeline is contiguous and starts near 0.
        assert abs(r.segment_starts_s[0]) <= DUR_TOL, f"{r.id}: timeline starts at {r.segment_starts_s[0]}"
        for a, d, b in zip(r.segment_starts_s, r.segment_durations_s, r.segment_starts_s[1:]):
            assert math.isclose(a + d, b, abs_tol=1e-6), f"{r.id}: gap/overlap in SegmentTimeline at {a}+{d} != {b}"

    for track in SOURCES[asset]:
        r = match(track, rends, asset)   # asserts a 1:1 mapping
        total = sum(r.segment_durations_s)
        src = mu.source_duration_s(track)
        assert abs(total - src) <= DUR_TOL, \
            f"{r.id} ({track}): SegmentTimeline sums to {total:.3f}s, source track is {src:.3f}s"
        if asset in NEEDS_LANG and track.kind == "audio":
            assert r.lang == track.lang, f"{r.id}: AdaptationSet@lang {r.lang!r}, expected {track.lang!r}"
        elif r.lang is not None and track.lang is not None:
            assert r.lang == track.lang, f"{r.id}: AdaptationSet@lang {r.lang!r}, expected {track.lang!r}"

    if asset in ALIGNED:
        video = [r for r in rends if r.kind == "video"]
        first = video[0]
        for r in video[1:]:
            assert r.segment_durations_s == first.segment_durations_s, \
                f"video renditions not aligned: {first.id} {first.segment_durations_s} vs {r.id} {r.segment_durations_s}"


@pytest.mark.parametrize("asset", ASSET_IDS)
def test_hls_playlists(origin, asset):
    url, master, media = hls_of(origin, asset)
    assert master.is_variant, "master.m3u8 has no EXT-X-STREAM-INF"
    assert str(master.version) == "7", f"master EXT-X-VERSION {master.version!r}, expected 7"
    assert master.is_independent_segments, "master: EXT-X-INDEPENDENT-SEGMENTS missing"

    audio_media = [m for m in master.media if m.type == "AUDIO"]
    groups = {m.group_id for m in audio_media}
    src_audio = [t for t in SOURCES[asset] if t.kind == "audio"]
    src_video = [t for t in SOURCES[asset] if t.kind == "video"]
    assert len(audio_media) == len(src_audio), \
        f"{len(audio_media)} EXT-X-MEDIA TYPE=AUDIO for {len(src_audio)} source audio tracks"
    for m in audio_media:
        assert m.uri, f"EXT-X-MEDIA {m.name!r}: no URI"
        if asset in NEEDS_LANG:
            assert m.language, f"EXT-X-MEDIA {m.name!r}: no LANGUAGE"
    if asset in NEEDS_LANG:
        assert sorted(mu.norm_lang(m.language) for m in audio_media) == sorted(t.lang for t in src_audio)

    sizes = set()
    assert len(master.playlists) >= len(src_video)
    for p in master.playlists:
        si = p.stream_info
        where = f"STREAM-INF {p.uri}"
        assert si.bandwidth and si.bandwidth > 0, f"{where}: BANDWIDTH"
        assert si.average_bandwidth and si.average_bandwidth > 0, f"{where}: AVERAGE-BANDWIDTH"
        assert si.average_bandwidth <= si.bandwidth, f"{where}: AVERAGE-BANDWIDTH > BANDWIDTH"
        assert si.codecs, f"{where}: CODECS"
        assert si.resolution, f"{where}: RESOLUTION"
        sizes.add(tuple(si.resolution))
        if src_audio:
            assert si.audio in groups, f"{where}: AUDIO={si.audio!r} not among EXT-X-MEDIA groups {groups}"
            # RFC 8216 4.3.4.2: CODECS lists every format of the variant, the audio group's included.
            assert "mp4a" in si.codecs, f"{where}: CODECS={si.codecs!r} lacks the audio codec"
        video_codec = src_video[0].codec_tag
        assert video_codec in si.codecs, f"{where}: CODECS={si.codecs!r} lacks {video_codec}"
    assert sizes == {(t.width, t.height) for t in src_video}, f"RESOLUTIONs {sizes}"

    # Media playlists.
    for murl, pl in media.items():
        assert not pl.is_variant
        assert str(pl.version) == "7", f"{murl}: EXT-X-VERSION {pl.version!r}, expected 7"
        assert pl.is_endlist, f"{murl}: no EXT-X-ENDLIST"
        assert (pl.playlist_type or "").upper() == "VOD", f"{murl}: PLAYLIST-TYPE {pl.playlist_type!r}"
        assert pl.segments, f"{murl}: no segments"
        init, segs, durs = mu.hls_media_segments(pl, murl)
        assert init.endswith(".mp4"), f"{murl}: EXT-X-MAP URI {init}"
        assert pl.target_duration and all(round(d) <= pl.target_duration for d in durs), \
            f"{murl}: EXTINF {durs} exceed TARGETDURATION {pl.target_duration}"

    # EXTINF sum vs the source track: map each source track to its playlist through the DASH
    # rendition (same init URL, checked again in test_dash_and_hls_share_segment_urls).
    by_init = {}
    for murl, pl in media.items():
        init, segs, durs = mu.hls_media_segments(pl, murl)
        by_init[init] = durs
    for track in SOURCES[asset]:
        r = match(track, dash_of(origin, asset), asset)
        assert r.init_url in by_init, f"{track}: no HLS playlist with EXT-X-MAP {r.init_url}"
        durs = by_init[r.init_url]
        src = mu.source_duration_s(track)
        assert abs(sum(durs) - src) <= DUR_TOL, \
            f"{track}: EXTINF sum {sum(durs):.3f}s vs source track {src:.3f}s"
        assert len(durs) == len(r.segment_durations_s), \
            f"{track}: {len(durs)} HLS segments vs {len(r.segment_durations_s)} DASH segments"
        for i, (h, d) in enumerate(zip(durs, r.segment_durations_s)):
            assert abs(h - d) <= 0.0015, f"{track}: segment {i + 1} EXTINF {h} vs DASH S@d {d:.6f}s"


@pytest.mark.parametrize("asset", ASSET_IDS)
def test_dash_and_hls_share_segment_urls(origin, asset):
    """One set of segment URLs for both protocols (one CDN cache entry per segment)."""
    dash = {(r.init_url, tuple(r.segment_urls)) for r in dash_of(origin, asset)}
    _, _, media = hls_of(origin, asset)
    hls = set()
    for murl, pl in media.items():
        init, segs, _ = mu.hls_media_segments(pl, murl)
        hls.add((init, tuple(segs)))
    assert dash == hls, (
        f"DASH and HLS segment URLs differ:\n only DASH: {sorted(dash - hls)}\n only HLS: {sorted(hls - dash)}")


# ------------------------------------------------------------------------------------------------
# Frames


@pytest.mark.parametrize("proto", ["dash", "hls"])
@pytest.mark.parametrize("asset,track", TRACKS, ids=TRACK_IDS)
def test_rendition_frames_match_source(origin, media_tmp, asset, track, proto):
    """init + all segments, concatenated, decode to the very frames of the source track."""
    src, out = decoded_pair(origin, asset, track, media_tmp, proto)
    report = mu.compare_md5(src, out)
    assert report is None, report


@pytest.mark.parametrize("proto", ["dash", "hls"])
@pytest.mark.parametrize("asset,track", TRACKS, ids=TRACK_IDS)
def test_rendition_timestamps_match_source(origin, media_tmp, asset, track, proto):
    """...and each frame is presented at the source's time (edit lists / tfdt / composition
    offsets carried through); a shift here is an A/V sync error."""
    src, out = decoded_pair(origin, asset, track, media_tmp, proto)
    if mu.compare_md5(src, out) is not None:
        pytest.fail("frames differ (see test_rendition_frames_match_source); timing not compared")
    report = mu.compare_timing(src, out)
    assert report is None, report


VIDEO_TRACKS = [(a, t) for a, t in TRACKS if t.kind == "video"]


@pytest.mark.parametrize("asset,track", VIDEO_TRACKS,
                         ids=[f"{a}:{t.path.stem}" for a, t in VIDEO_TRACKS])
def test_video_segments_decode_on_their_own(origin, media_tmp, asset, track):
    """init + segment n alone decodes to a run of consecutive source frames: every segment starts
    with a sync sample and carries whole GOPs; together the segments cover the source once."""
    rend = match(track, dash_of(origin, asset), asset)
    src = [f.md5 for f in mu.drop_preroll(mu.source_framemd5(str(track.path), track.map_spec))[0]]
    pos = 0
    for n, seg_url in enumerate(rend.segment_urls, start=1):
        path, _ = mu.download_rendition(rend.init_url, [seg_url], "video", media_tmp)
        out = mu.framemd5(path, track.map_spec, label=f"{rend.id} segment {n}")
        got = [f.md5 for f in out.frames]
        assert got, f"{seg_url}: decoded to no frames"
        expect = src[pos:pos + len(got)]
        if got != expect:
            first = next(i for i in range(len(got)) if i >= len(expect) or got[i] != expect[i])
            where = src.index(got[0]) if got[0] in src else None
            pytest.fail(f"{seg_url} decoded alone: {len(got)} frames, differs from source frames "
                        f"{pos}..{pos + len(got) - 1} at segment frame {first}; its first frame is "
                        f"source frame {where} (expected {pos})")
        pos += len(got)
    assert pos == len(src), f"segments decoded alone cover {pos} frames, source has {len(src)}"


# ------------------------------------------------------------------------------------------------
# ffprobe on the manifest URLs


def _probe(url):
    p = subprocess.run([tool("ffprobe"), "-v", "error", "-show_streams", "-of", "json", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"ffprobe {url} failed:\n{p.stderr[-2000:]}"
    return json.loads(p.stdout).get("streams", [])


@pytest.mark.parametrize("manifest", ["manifest.mpd", "master.m3u8"])
@pytest.mark.parametrize("asset", ASSET_IDS)
def test_ffprobe_opens_manifest(origin, asset, manifest):
    mpd_of(origin, asset)   # waits for the asset to be served
    streams = _probe(origin.url(f"/{asset}/{manifest}"))
    seen = [(s.get("codec_type"), s.get("codec_name"), s.get("width"), s.get("height")) for s in streams]
    for t in SOURCES[asset]:
        want = (t.kind, t.codec, t.width, t.height)
        assert want in seen, f"ffprobe {manifest}: no stream {want}; saw {seen}"
    n_audio = sum(1 for s in seen if s[0] == "audio")
    assert n_audio >= sum(1 for t in SOURCES[asset] if t.kind == "audio"), seen
