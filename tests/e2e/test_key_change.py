"""Issue 13.1: a key or policy change must never leave a name serving other bytes.

Before the fix, `GET /multi/<video>/2.cenc.m4s` kept its ETag across a key change while its bytes
changed, `If-None-Match` got 304, and with `immutable` a CDN kept the old-key bytes for a year.
Now segment names carry a version of every input of their bytes (`2.cenc.v1a2b3c4d.m4s`):
* a key change (same KID, new key), a new KID, a clear-lead or DRM-system change moves the
  affected renditions' names in the manifests; renditions whose inputs did not change keep theirs;
* the old names are never answered with new bytes (404, and no 304 for their ETags);
* the new names' bytes and ETags are exactly those of a server started with the new config
  (content-derived: no inode, path or start time in them);
* through a real nginx proxy_cache tier, a player (Chromium, the demo page) plays with the new
  key after the change and never fetches an old name from the new manifest.
"""
import json
import re
import subprocess
import time

import drm_util as du
from conftest import ASSETS, ROOT, Origin
from http_util import fetch, wait_for
from services import Nginx

VID_KID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
AUD_KID = "1a1b2c3d4e5f60718293a4b5c6d7e8f9"
K1 = "00112233445566778899aabbccddeeff"
K2 = "ffeeddccbbaa99887766554433221100"
AUD = "0f0e0d0c0b0a09080706050403020100"
NEW_KID = "2a1b2c3d4e5f60718293a4b5c6d7e8f9"


def config(vid_key=K1, vid_kid=VID_KID, lead=0, systems=("clearkey",)):
    return du.STORAGE + f"""
[keys.vid]
kid = "{vid_kid}"
key = "{vid_key}"
[keys.aud]
kid = "{AUD_KID}"
key = "{AUD}"
[policies.p]
dash = ["cenc", "cbcs"]
hls = ["cbcs"]
key_delivery = "open"
clear_lead_segments = {lead}
drm_systems = [{", ".join(f'"{s}"' for s in systems)}]
keys = {{ video = "vid", audio = "aud" }}
[[assets]]
match = "multi"
policy = "p"
"""


def names(o, variant="cenc", base=None):
    """{rendition id: [init path, media path 1, 2, …]} from the MPD (through `base` if given)."""
    status, _, body = fetch(base or o.base_url, f"/multi/manifest.{variant}.mpd")
    assert status == 200, body[:200]
    out = {}
    for rep in re.finditer(r'<Representation id="([^"]+)".*?</Representation>', body.decode(), re.S):
        rid, text = rep.group(1), rep.group(0)
        init = re.search(r'initialization="\$RepresentationID\$/([^"]+)"', text).group(1)
        media = re.search(r'media="\$RepresentationID\$/([^"]+)"', text).group(1)
        n = sum(1 + int(r or 0) for r in re.findall(r'<S (?:t="\d+" )?d="\d+"(?: r="(\d+)")?/>', text))
        out[rid] = [f"/multi/{rid}/{init}"] + [f"/multi/{rid}/{media.replace('$Number$', str(i))}"
                                              for i in range(1, n + 1)]
    return out


def get(base, path, headers=None):
    status, h, body = fetch(base, path, headers=headers)
    return status, h.get("ETag"), body


def change(o, cfg, text, variant="cenc"):
    """Publish `text` atomically; wait until the MPD reflects it; return the new names."""
    before = names(o, variant)
    du.write_atomic(cfg, text)
    assert wait_for(lambda: names(o, variant) != before, timeout=15), "the new config was not applied"
    return before, names(o, variant)


def video_id(n):
    return next(r for r in n if r.startswith("video_360p"))


def test_key_change_moves_names_and_never_reuses_them(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(config())
    o = Origin(ASSETS, config=cfg)
    fresh = None
    try:
        for variant in ("cenc", "cbcs"):
            n1 = names(o, variant)
            v = video_id(n1)
            old = {p: get(o.base_url, p) for p in n1[v][:3]}
            assert all(s == 200 for s, _, _ in old.values())
            audio_before = {r: ps for r, ps in n1.items() if r.startswith("audio")}
            # cenc: K1 → K2; cbcs runs next and switches back K2 → K1 (same KID each time).
            du.write_atomic(cfg, config(vid_key=K2 if variant == "cenc" else K1))
            assert wait_for(lambda: names(o, variant) != n1, timeout=15), "key change not applied"
            n2 = names(o, variant)
            for r in n1:
                if r.startswith("video"):
                    moved = [p for p in n1[r] if p in n2[r]]
                    assert not moved, f"{r}: names kept across a key change: {moved[:2]}"
            assert {r: ps for r, ps in n2.items() if r.startswith("audio")} == audio_before, \
                "the audio key did not change: its names must stay (and stay cached)"
            for p, (_, etag, body) in old.items():
                s, _, b = get(o.base_url, p)
                assert s == 404, f"old name {p} -> {s} after the key change (bytes changed: {b != body})"
                s, _, _ = get(o.base_url, p, {"If-None-Match": etag})
                assert s != 304, f"old name {p}: If-None-Match {etag} -> 304 after the key change"
            # The new names' bytes and ETags are those of a server started with the new config.
            fresh_cfg = tmp_path / f"fresh-{variant}.toml"
            fresh_cfg.write_text(cfg.read_text())
            fresh = Origin(ASSETS, config=fresh_cfg)
            assert names(fresh, variant) == n2, "a second node names the segments differently"
            for p in n2[v][:3] + n2[next(iter(audio_before))][:2]:
                a, b = get(o.base_url, p), get(fresh.base_url, p)
                assert a[0] == b[0] == 200 and a[2] == b[2], f"{p}: the two nodes serve other bytes"
                assert a[1] == b[1], f"{p}: ETag {a[1]} on the reloaded node, {b[1]} on a fresh one"
            new_media = get(o.base_url, n2[v][2])[2]
            assert new_media != old[n1[v][2]][2], "the new key gives the same media bytes"
            fresh.stop()
            fresh = None
    finally:
        if fresh:
            fresh.stop()
        o.stop()


def test_policy_changes_move_the_names_they_affect(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(config())
    o = Origin(ASSETS, config=cfg)
    try:
        steps = [
            ("a new KID", config(vid_kid=NEW_KID)),
            ("a clear lead", config(vid_kid=NEW_KID, lead=1)),
            ("another DRM system", config(vid_kid=NEW_KID, lead=1, systems=("clearkey", "widevine"))),
        ]
        for what, text in steps:
            before, after = change(o, cfg, text)
            for r in before:
                kept = [p for p in before[r] if p in after[r]]
                # Every rendition moves, audio too: each init segment's common pssh names all
                # the variant's KIDs.
                assert not kept, f"{what}: {r} kept names {kept[:2]}"
                s, _, _ = get(o.base_url, before[r][0])
                assert s == 404, f"{what}: old init {before[r][0]} -> {s}"
    finally:
        o.stop()


def test_cdn_in_front_serves_new_key_bytes_under_new_names(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(config())
    o = Origin(ASSETS, config=cfg)
    cdn = Nginx.cache([o.base_url.split("//", 1)[1]])
    try:
        n1 = names(o, "cenc", base=cdn.base_url)
        for ps in n1.values():
            for p in ps[:3]:
                assert get(cdn.base_url, p)[0] == 200
        # Cached by the CDN now (immutable, a year): a second fetch is a HIT.
        st, h, _ = fetch(cdn.base_url, n1[video_id(n1)][1])
        assert st == 200 and h.get("X-Cache-Status") == "HIT", h.get("X-Cache-Status")
        du.write_atomic(cfg, config(vid_key=K2))
        assert wait_for(lambda: names(o, "cenc") != n1, timeout=15)
        # The CDN keeps the manifest for its max-age (2 s), then follows.
        assert wait_for(lambda: names(o, "cenc", base=cdn.base_url) != n1, timeout=15)
        n2 = names(o, "cenc", base=cdn.base_url)
        old = {p for ps in n1.values() for p in ps}
        new = {p for ps in n2.values() for p in ps}
        v = video_id(n2)
        for p in n2[v][:3]:
            through, direct = get(cdn.base_url, p), get(o.base_url, p)
            assert through[0] == 200 and through[2] == direct[2], f"{p}: the CDN serves other bytes than the origin"
        page = f"{cdn.base_url}/player/multi?protocol=dash&variant=cenc&autoplay=1"
        r = subprocess.run(["node", str(ROOT / "tests/browser/play_page.mjs"), page],
                           capture_output=True, text=True, timeout=120)
        result = json.loads(r.stdout.strip().splitlines()[-1])
        assert result.get("played"), f"no playback through the CDN after the key change: {r.stdout[-2000:]}"
        fetched = {re.sub(r"^https?://[^/]+", "", w["url"]) for w in result["wire"]}
        segs = {p for p in fetched if p.endswith((".mp4", ".m4s")) and p.startswith("/multi/")}
        assert segs, "the player fetched no segment"
        assert not segs & old - new, f"the player fetched old-key names: {sorted(segs & old - new)[:3]}"
        assert segs <= new, f"the player fetched names the new manifest does not list: {sorted(segs - new)[:3]}"
    finally:
        cdn.close()
        o.stop()
