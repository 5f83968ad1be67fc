"""The asset folder is watched: add, replace (rename over), remove, and files still growing.

Every server here runs with rescan_interval_ms = 200 and stable_after_ms = 500. Changes are polled
with a generous deadline; nothing asserts on speed.
"""
import os
import time

import pytest

from http_util import (
    assert_healthy,
    copy_sample,
    discover,
    fetch,
    first_of,
    get_ok,
    sample,
    wait_for,
    write_config,
)

DEADLINE = 15.0


def status(o, path):
    return fetch(o.base_url, path)[0]


def etag(o, path):
    s, h, _ = fetch(o.base_url, path, method="HEAD")
    return s, h.get("ETag")


@pytest.fixture
def watched(make_origin, tmp_path):
    """(origin, assets dir, staging dir on the same filesystem) with one asset `base` served."""
    assets = tmp_path / "assets"
    staging = tmp_path / "staging"
    assets.mkdir()
    staging.mkdir()
    copy_sample("progressive.mp4", assets / "base.mp4")
    cfg = write_config(tmp_path / "origin.toml", rescan_interval_ms=200, stable_after_ms=500)
    o = make_origin(assets, config=cfg)
    assert wait_for(lambda: status(o, "/base/manifest.mpd") == 200, timeout=DEADLINE), o.log()[-2000:]
    return o, assets, staging


def _serves(o, asset):
    """The asset's manifests and first/last segment of every rendition answer 200."""
    get_ok(o.base_url, f"/{asset}/master.m3u8")
    reps = discover(o.base_url, asset)
    for r in reps:
        get_ok(o.base_url, r.init)
        get_ok(o.base_url, r.media[0])
        get_ok(o.base_url, r.media[-1])
    return reps


def test_hot_add_file(watched):
    o, assets, _ = watched
    assert status(o, "/x/manifest.mpd") == 404
    part = assets / "x.mp4.part"
    copy_sample("progressive.mp4", part)
    time.sleep(1.5)  # several rescans: a file not ending in .mp4 is not an asset
    for p in ["/x/manifest.mpd", "/x.mp4/manifest.mpd", "/x.mp4.part/manifest.mpd"]:
        assert status(o, p) == 404, p
    os.rename(part, assets / "x.mp4")
    assert wait_for(lambda: status(o, "/x/manifest.mpd") == 200, timeout=DEADLINE), \
        "renamed-in file never served:\n" + o.log()[-2000:]
    reps = _serves(o, "x")
    base_reps = discover(o.base_url, "base")
    assert len(reps) == len(base_reps)
    _, seg = get_ok(o.base_url, first_of(reps, "video").media[0])
    assert seg[4:8] in (b"styp", b"moof", b"sidx"), seg[:16]
    assert_healthy(o)


def test_hot_add_folder(watched):
    o, assets, staging = watched
    copy_sample("multi", staging / "m2")
    assert status(o, "/m2/manifest.mpd") == 404
    os.rename(staging / "m2", assets / "m2")
    assert wait_for(lambda: status(o, "/m2/manifest.mpd") == 200, timeout=DEADLINE), \
        "renamed-in folder never served:\n" + o.log()[-2000:]
    reps = _serves(o, "m2")
    kinds = {r.kind for r in reps}
    assert {"video", "audio"} <= kinds, kinds
    assert_healthy(o)


def test_replace_by_rename(watched):
    o, assets, staging = watched
    copy_sample("progressive.mp4", assets / "x.mp4")
    assert wait_for(lambda: status(o, "/x/manifest.mpd") == 200, timeout=DEADLINE)
    old_reps = _serves(o, "x")
    old_video = first_of(old_reps, "video")
    _, old_mpd_tag = etag(o, "/x/manifest.mpd")
    _, old_init_tag = etag(o, old_video.init)
    _, old_init = get_ok(o.base_url, old_video.init)
    _, old_seg = get_ok(o.base_url, old_video.media[0])
    assert old_mpd_tag and old_init_tag

    copy_sample("hevc.mp4", staging / "x.mp4")
    os.rename(staging / "x.mp4", assets / "x.mp4")

    def replaced():
        s, _, body = fetch(o.base_url, "/x/manifest.mpd")
        return s == 200 and (b"hvc1" in body or b"hev1" in body)

    assert wait_for(replaced, timeout=DEADLINE), "replacement (HEVC) never showed in the MPD:\n" + o.log()[-2000:]
    new_reps = _serves(o, "x")
    new_video = first_of(new_reps, "video")
    assert new_video.codecs.startswith(("hvc1", "hev1")), new_video.codecs
    _, new_mpd_tag = etag(o, "/x/manifest.mpd")
    assert new_mpd_tag != old_mpd_tag, "MPD ETag unchanged after the file was replaced"
    _, new_init_tag = etag(o, new_video.init)
    _, new_init = get_ok(o.base_url, new_video.init)
    _, new_seg = get_ok(o.base_url, new_video.media[0])
    assert new_init != old_init and new_seg != old_seg, "old segment bytes still served"
    assert new_init_tag != old_init_tag, "init ETag unchanged although its bytes changed"
    assert b"hvcC" in new_init
    # a conditional request with the old validator must now get the new bytes
    s, _, body = fetch(o.base_url, new_video.init, headers={"If-None-Match": old_init_tag})
    assert s == 200 and body == new_init
    assert_healthy(o)


def test_remove(watched):
    o, assets, _ = watched
    copy_sample("progressive.mp4", assets / "x.mp4")
    assert wait_for(lambda: status(o, "/x/manifest.mpd") == 200, timeout=DEADLINE)
    reps = _serves(o, "x")
    paths = ["/x/manifest.mpd", "/x/master.m3u8"] + [p for r in reps for p in (r.init, r.media[0])]
    os.remove(assets / "x.mp4")
    assert wait_for(lambda: status(o, "/x/manifest.mpd") == 404, timeout=DEADLINE), \
        "removed file still served:\n" + o.log()[-2000:]
    gone = wait_for(lambda: all(status(o, p) == 404 for p in paths), timeout=DEADLINE)
    assert gone, {p: status(o, p) for p in paths}
    get_ok(o.base_url, "/base/manifest.mpd")
    assert_healthy(o)


def test_growing_file_not_served_until_stable(watched):
    o, assets, _ = watched
    data = sample("progressive.mp4").read_bytes()
    n = 30
    step = -(-len(data) // n)
    seen = []
    with open(assets / "grow.mp4", "wb") as f:
        for i in range(n):
            t0 = time.monotonic()
            f.write(data[i * step:(i + 1) * step])
            f.flush()
            seen.append(status(o, "/grow/manifest.mpd"))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
    assert 200 not in seen, f"a file still being written was served: {seen}"
    assert set(seen) <= {404, 503}, seen
    assert (assets / "grow.mp4").stat().st_size == len(data)
    assert wait_for(lambda: status(o, "/grow/manifest.mpd") == 200, timeout=DEADLINE), \
        "file never served once it stopped growing:\n" + o.log()[-2000:]
    _serves(o, "grow")
    assert_healthy(o)


def test_growing_replacement_keeps_old_until_stable(watched):
    """Rewriting an existing asset in place (not by rename) must never serve a half-written
    file; afterwards the complete new content is served."""
    o, assets, _ = watched
    path = assets / "base.mp4"
    data = sample("hevc.mp4").read_bytes()
    n = 20
    step = -(-len(data) // n)
    seen = []
    with open(path, "wb") as f:
        for i in range(n):
            t0 = time.monotonic()
            f.write(data[i * step:(i + 1) * step])
            f.flush()
            s, _, body = fetch(o.base_url, "/base/manifest.mpd")
            seen.append(s)
            # the old (H.264) index may still be served, or the asset refused; the new HEVC
            # content may not appear before the file has been stable for stable_after_ms
            assert s in (200, 404, 503), s
            assert not (s == 200 and (b"hvc1" in body or b"hev1" in body)), \
                f"half-written file indexed after chunk {i + 1}/{n}"
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))

    def hevc_now():
        s, _, body = fetch(o.base_url, "/base/manifest.mpd")
        return s == 200 and (b"hvc1" in body or b"hev1" in body)

    assert wait_for(hevc_now, timeout=DEADLINE), "rewritten file never served:\n" + o.log()[-2000:]
    _serves(o, "base")
    assert_healthy(o)
