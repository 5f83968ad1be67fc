"""Delivery policies, key models and key lifecycle, judged from outside.

Policy matrix (one server, one asset per policy, each a copy of assets/multi's 180p video and
English audio; the N:1 ladder also has a 720p rendition made here with ffmpeg):
  (a) clear only; (b) cenc for DASH + cbcs for HLS; (c) one cbcs CMAF set for both protocols;
  (d) HLS AES-128 + DASH cenc with distinct keys; (e) 1:N: one group key for every asset of a
  policy (`key_group`), against 1:1 per-asset auto keys; (f) N:1: SD, HD and audio keys.
Every protected rendition is fetched through the manifest's own URLs and decrypted by the static
ffmpeg 8.1 (or openssl for AES-128), then compared frame by frame with the source (enc_util.py);
where keys must differ, the other key must fail.

Key lifecycle: auto keys persisted in `[keystore] path` survive a restart (same KIDs, same bytes;
`keys show` agrees; file mode 0600, no temporary files left); `[keystore] seed` instances agree
with each other and with the PlayReady key-seed algorithm computed here (spec-notes §4.4); hot
reload by file change and by SIGHUP; an invalid config keeps the old one serving and lists every
error with its line. Bad configs at start exit non-zero naming each field, never a key value.
"""
import base64
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest

import drm_util as du
import enc_util as eu
import http_util as hu
import media_util as mu
from conftest import BIN, Origin

K = {  # name: (kid, key)
    "vid": ("0a1b2c3d4e5f40718293a4b5c6d7e8f9", "11223344556677889900aabbccddeeff"),
    "aud": ("1b2c3d4e5f60418293a4b5c6d7e8f90a", "2233445566778899aabbccddeeff0011"),
    "env": ("2c3d4e5f6071429384a5b6c7d8e9fa0b", "33445566778899aabbccddeeff001122"),
    "sd": ("3d4e5f607182439485b6c7d8e9fa0b1c", "445566778899aabbccddeeff00112233"),
    "hd": ("4e5f60718293449586c7d8e9fa0b1c2d", "5566778899aabbccddeeff0011223344"),
}
KID = {n: bytes.fromhex(v[0]) for n, v in K.items()}
KEY = {n: bytes.fromhex(v[1]) for n, v in K.items()}
ALL_KEYS = "".join(du.key_table(n, *v) for n, v in K.items())
CLIP = [du.SRC_VIDEO, du.SRC_AUDIO]
TRACK = {"video": du.V180, "audio": du.AUDIO}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("pol")


@pytest.fixture(scope="module")
def hd_track(work):
    return du.make_720p(Path(work) / "video_720p.mp4")


@pytest.fixture(scope="module")
def assets(work, hd_track):
    root = Path(work) / "assets"
    for name in ("a-clear", "b-split", "c-cmaf", "d-env", "kids/x", "kids/y", "solo/x", "solo/y",
                 "dash-only", "life", "seeded", "reload"):
        du.asset_folder(root, name, CLIP)
    du.asset_folder(root, "f-ladder", CLIP + [hd_track.path])
    return root


MATRIX = (du.STORAGE + ALL_KEYS +
          '[keystore]\npath = "{store}"\n'
          '[policies.clear_only]\ndash = ["clear"]\nhls = ["clear"]\n'
          '[policies.split]\ndash = ["cenc"]\nhls = ["cbcs"]\nkeys = { video = "vid", audio = "aud" }\n'
          '[policies.cmaf]\ndash = ["cbcs"]\nhls = ["cbcs"]\nkeys = { video = "vid", audio = "aud" }\n'
          '[policies.envelope]\ndash = ["cenc"]\nhls = ["aes128"]\nkey_delivery = "open"\n'
          'keys = { video = "vid", audio = "aud", envelope = "env" }\n'
          '[policies.group]\ndash = ["cenc"]\nhls = ["cbcs"]\nkey_group = "kids"\nkeys = { video = "auto", audio = "auto" }\n'
          '[policies.solo]\ndash = ["cenc"]\nhls = ["cbcs"]\nkeys = { video = "auto", audio = "auto" }\n'
          '[policies.ladder]\ndash = ["cenc"]\nhls = ["cbcs"]\nkeys = { sd = "sd", hd = "hd", audio = "aud" }\n'
          '[policies.dash_only]\ndash = ["cenc"]\nkeys = { video = "vid", audio = "aud" }\n'
          '[[assets]]\nmatch = "a-clear"\npolicy = "clear_only"\n'
          '[[assets]]\nmatch = "b-split"\npolicy = "split"\n'
          '[[assets]]\nmatch = "c-cmaf"\npolicy = "cmaf"\n'
          '[[assets]]\nmatch = "d-env"\npolicy = "envelope"\n'
          '[[assets]]\nmatch = "kids/*"\npolicy = "group"\n'
          '[[assets]]\nmatch = "solo/*"\npolicy = "solo"\n'
          '[[assets]]\nmatch = "f-ladder"\npolicy = "ladder"\n'
          '[[assets]]\nmatch = "dash-only"\npolicy = "dash_only"\n')


@pytest.fixture(scope="module")
def matrix(work, assets):
    store = Path(work) / "matrix-store" / "keys.json"
    o = du.start(work, "matrix", MATRIX.replace("{store}", str(store)), assets)
    o.store = store
    yield o
    o.stop()


def decrypt_all(o, work, rends, keys, tag, tracks=TRACK):
    """Problems of every rendition in `rends` ({kind: rendition}) decrypted with keys[kind]."""
    problems = []
    for kind, r in rends.items():
        dl = du.download(r, work, tag)
        rep = du.judge(dl.path, tracks[kind], keys[kind], f"{tag} {kind} {r.id}")
        if rep:
            problems.append(rep)
    return problems


def both(rends):
    return {"video": du.pick(rends, "video"), "audio": du.pick(rends, "audio")}


# ------------------------------------------------------------------------------------------------
# Policy matrix


def test_a_clear_only(matrix, work):
    o = matrix
    text, rends = du.dash(o, "a-clear")
    h = du.hls(o, "a-clear")
    problems = []
    if "ContentProtection" in text:
        problems.append("clear-only MPD has ContentProtection")
    if "EXT-X-KEY" in h.text + "".join(t for t, _ in h.media.values()) or "EXT-X-SESSION-KEY" in h.text:
        problems.append("clear-only HLS has key tags")
    for r in list(rends) + list(h.rends):
        urls = [r.init_url] + r.segment_urls
        named = [u for u in urls if re.search(r"\.(cenc|cbcs|aes128)\.(v[0-9a-f]{8}\.)?(mp4|m4s)$", u)]
        if named:
            problems.append(f"{r.id}: protected variant URLs in a clear-only manifest: {named[:2]}")
    for kind, r in both(rends).items():
        dl = du.download(r, work, "a-clear")
        scheme, kid = du.tenc_of(dl.init)
        if scheme or du.pssh_boxes(dl.init):
            problems.append(f"{kind}: clear init has schm {scheme} / pssh boxes")
        rep = du.judge(dl.path, TRACK[kind], None, f"a-clear {kind}")
        if rep:
            problems.append(rep)
    for path in ("/a-clear/manifest.cenc.mpd", "/a-clear/master.cbcs.m3u8", "/a-clear/master.aes128.m3u8",
                 hu.with_version(f"/a-clear/{du.pick(rends, 'video').id}/1.cenc.m4s")):
        status = o.get(path)[0]
        if status != 404:
            problems.append(f"{path} -> {status}, expected 404 (variant not offered)")
    du.report(problems)


def test_b_cenc_dash_and_cbcs_hls(matrix, work):
    o = matrix
    text, drends = du.dash(o, "b-split")
    h = du.hls(o, "b-split")
    problems = []
    sets = du.mpd_sets(text)
    if {a.scheme for a in sets} != {"cenc"}:
        problems.append(f"manifest.mpd schemes {[a.scheme for a in sets]}, expected cenc only")
    for r in h.rends:
        keys = du.key_lines(h.media[r.id][0])
        if not keys or {a["METHOD"] for _, a in keys} != {"SAMPLE-AES"} or not hu.unversioned(r.init_url).endswith("/init.cbcs.mp4"):
            problems.append(f"HLS {r.kind}: methods {[a.get('METHOD') for _, a in keys]}, init {r.init_url}: "
                            f"expected SAMPLE-AES over init.cbcs.mp4")
    for kind in ("video", "audio"):
        for proto, rends, scheme in (("DASH", drends, "cenc"), ("HLS", h.rends, "cbcs")):
            init = mu.fetch_ok(du.pick(rends, kind).init_url)
            got = du.tenc_of(init)
            if got != (scheme, KID["vid" if kind == "video" else "aud"]):
                problems.append(f"{proto} {kind} init: schm/tenc {got[0]} {got[1] and got[1].hex()}, expected {scheme}")
    keys = {"video": KEY["vid"], "audio": KEY["aud"]}
    problems += decrypt_all(o, work, both(drends), keys, "b-split DASH cenc")
    problems += decrypt_all(o, work, both(h.rends), keys, "b-split HLS cbcs")
    for path, want in (("/b-split/manifest.cbcs.mpd", 404), ("/b-split/master.cenc.m3u8", 404)):
        if o.get(path)[0] != want:
            problems.append(f"{path} -> {o.get(path)[0]}, expected {want}")
    du.report(problems)


def test_c_one_cbcs_cmaf_set_for_both(matrix, work):
    o = matrix
    text, drends = du.dash(o, "c-cmaf")
    h = du.hls(o, "c-cmaf")
    problems = []
    d, hh = both(drends), both(h.rends)
    for kind in ("video", "audio"):
        a, b = d[kind], hh[kind]
        if (a.init_url, a.segment_urls) != (b.init_url, b.segment_urls):
            problems.append(f"{kind}: DASH and HLS reference different URLs:\n  DASH {a.init_url} {a.segment_urls}\n"
                            f"  HLS  {b.init_url} {b.segment_urls}")
            continue
        if not hu.unversioned(a.init_url).endswith("/init.cbcs.mp4") or \
                not all(hu.unversioned(u).endswith(".cbcs.m4s") for u in a.segment_urls):
            problems.append(f"{kind}: URLs are not the cbcs variant: {a.init_url} {a.segment_urls[:1]}")
        dl = du.download(a, work, "c-cmaf")
        again = [mu.fetch_ok(u) for u in [b.init_url] + b.segment_urls]
        if [dl.init] + dl.segments != again:
            problems.append(f"{kind}: a second fetch through the HLS playlist gives other bytes")
    problems += decrypt_all(o, work, d, {"video": KEY["vid"], "audio": KEY["aud"]}, "c-cmaf cbcs")
    du.report(problems)


def test_d_aes128_hls_and_cenc_dash_with_distinct_keys(matrix, work):
    o = matrix
    text, drends = du.dash(o, "d-env")
    h = du.hls(o, "d-env")
    problems = []
    cenc_kids = {a.default_kid for a in du.mpd_sets(text)}
    if cenc_kids != {KID["vid"], KID["aud"]}:
        problems.append(f"DASH default_KIDs {[k and k.hex() for k in cenc_kids]}, expected the vid and aud keys")
    for kind, r in both(h.rends).items():
        text_pl, pl = h.media[r.id]
        keys = du.key_lines(text_pl)
        env_kids = {re.sub(r".*/", "", a.get("URI", "")) for _, a in keys}
        if {a.get("METHOD") for _, a in keys} != {"AES-128"} or env_kids != {K["env"][0]}:
            problems.append(f"HLS {kind}: keys {[(a.get('METHOD'), a.get('URI')) for _, a in keys]}, expected AES-128 "
                            f"with the envelope KID {K['env'][0]}")
            continue
        if env_kids & {k.hex() for k in cenc_kids}:
            problems.append(f"HLS {kind}: the envelope KID is also a CENC KID")
        key_url = urljoin(r.id, keys[0][1]["URI"])
        if mu.fetch_ok(key_url) != KEY["env"]:
            problems.append(f"{key_url} does not return the envelope key")
        plain, wrong = [mu.fetch_ok(r.init_url)], []
        for seg in pl.segments:
            iv = bytes.fromhex(seg.key.iv[2:])
            data = mu.fetch_ok(urljoin(r.id, seg.uri))
            rc, dec, err = eu.openssl_aes128_decrypt(data, KEY["env"], iv)
            if rc != 0:
                problems.append(f"HLS {kind} {seg.uri}: openssl cannot decrypt with the envelope key: {err}")
                break
            plain.append(dec)
            rc2, dec2, _ = eu.openssl_aes128_decrypt(data, KEY["vid" if kind == "video" else "aud"], iv)
            wrong.append(rc2 == 0 and dec2 == dec)
        else:
            path = Path(work) / f"d-env-aes-{kind}.mp4"
            path.write_bytes(b"".join(plain))
            rep = du.judge(path, TRACK[kind], None, f"d-env HLS AES-128 {kind} (openssl)")
            if rep:
                problems.append(rep)
            if any(wrong):
                problems.append(f"HLS {kind}: the CENC key also decrypts AES-128 segments")
    problems += decrypt_all(o, work, both(drends), {"video": KEY["vid"], "audio": KEY["aud"]}, "d-env DASH cenc")
    dl = du.download(du.pick(drends, "video"), work, "d-env DASH cenc")
    problems += [p for p in [du.judge_fails(dl.path, du.V180, KEY["env"], "d-env DASH video with the envelope key")] if p]
    du.report(problems)


def store_keys(path):
    """{label: (kid bytes, key bytes)} of a persistent key store file."""
    data = json.loads(Path(path).read_text())
    return {e["label"]: (bytes.fromhex(e["kid"].replace("-", "")), bytes.fromhex(e["key"])) for e in data["keys"]}


def test_e_group_key_shared_by_every_asset(matrix, work):
    """key_group = 1:N: kids/x and kids/y share one video and one audio key; without a group
    (solo/*) each asset gets its own keys (1:1)."""
    o = matrix
    problems = []
    kids, rends = {}, {}
    for asset in ("kids/x", "kids/y", "solo/x", "solo/y"):
        text, rs = du.dash(o, asset)
        kids[asset] = {a.content: a.default_kid for a in du.mpd_sets(text)}
        rends[asset] = both(rs)
    if kids["kids/x"] != kids["kids/y"]:
        problems.append(f"group policy: kids/x KIDs {kids['kids/x']} != kids/y KIDs {kids['kids/y']}")
    if kids["kids/x"]["video"] == kids["kids/x"]["audio"]:
        problems.append("group policy: video and audio share a KID")
    if kids["solo/x"]["video"] == kids["solo/y"]["video"] or kids["solo/x"]["audio"] == kids["solo/y"]["audio"]:
        problems.append(f"per-asset auto keys: solo/x and solo/y share KIDs {kids['solo/x']} / {kids['solo/y']}")
    store = store_keys(o.store)
    group = {kind: store.get(f"group:kids/{kind}") for kind in ("video", "audio")}
    if any(v is None for v in group.values()):
        du.report(problems + [f"key store labels {sorted(store)}: no group:kids/video and group:kids/audio"])
    for kind in ("video", "audio"):
        if group[kind][0] != kids["kids/x"][kind]:
            problems.append(f"store group:kids/{kind} KID {group[kind][0].hex()} is not the MPD's {kids['kids/x'][kind]}")
    keys = {k: v[1] for k, v in group.items()}
    for asset in ("kids/x", "kids/y"):
        problems += decrypt_all(o, work, rends[asset], keys, f"group {asset}")
    a = du.download(rends["kids/x"]["video"], work, "group")
    b = du.download(rends["kids/y"]["video"], work, "group")
    if a.segments[0] == b.segments[0]:
        problems.append("kids/x and kids/y (same source, same key) give identical segment 1 bytes: IVs repeat across assets")
    du.report(problems)


def test_f_per_track_keys_sd_hd_audio(matrix, work, hd_track):
    o = matrix
    text, rends = du.dash(o, "f-ladder")
    problems = []
    sets = du.mpd_sets(text)
    video_sets = [a for a in sets if a.content == "video"]
    by_height = {h: a for a in video_sets for h in a.heights}
    if len(video_sets) != 2 or by_height.get(180) is by_height.get(720):
        problems.append(f"SD and HD must be separate AdaptationSets (different default_KIDs): "
                        f"{[(a.heights, a.default_kid and a.default_kid.hex()) for a in video_sets]}")
    want = {180: KID["sd"], 720: KID["hd"]}
    for hgt, kid in want.items():
        a = by_height.get(hgt)
        if a is None or a.default_kid != kid:
            problems.append(f"{hgt}p AdaptationSet default_KID {a and a.default_kid and a.default_kid.hex()}, expected {kid.hex()}")
    audio = [a.default_kid for a in sets if a.content == "audio"]
    if audio != [KID["aud"]]:
        problems.append(f"audio default_KIDs {[k and k.hex() for k in audio]}, expected [{KID['aud'].hex()}]")
    tracks = {"sd": du.V180, "hd": hd_track, "audio": du.AUDIO}
    picked = {"sd": du.pick(rends, "video", 180), "hd": du.pick(rends, "video", 720), "audio": du.pick(rends, "audio")}
    problems += decrypt_all(o, work, picked, {"sd": KEY["sd"], "hd": KEY["hd"], "audio": KEY["aud"]}, "ladder", tracks)
    hd = du.download(picked["hd"], work, "ladder")
    problems += [p for p in [du.judge_fails(hd.path, hd_track, KEY["sd"], "ladder HD with the SD key")] if p]
    # HLS: each video variant's playlist names its own key.
    h = du.hls(o, "f-ladder")
    for r in h.rends:
        kids = {a.get("KEYID", "").lower() for _, a in du.key_lines(h.media[r.id][0]) if "KEYID" in a}
        want_kid = {180: KID["sd"], 720: KID["hd"]}.get(r.height, KID["aud"])
        if kids != {"0x" + want_kid.hex()}:
            problems.append(f"HLS {r.kind} {r.height}: KEYIDs {kids}, expected 0x{want_kid.hex()}")
    du.report(problems)


def test_protected_policy_without_hls_list_serves_nothing_clear(matrix):
    """A policy that lists only `dash = ["cenc"]` protects the asset: with allow_clear left at
    its default (false), no clear playlist or clear segment of it may be served (README: clear
    variants of protected assets are refused, 403), whatever the missing `hls` list defaults to."""
    o = matrix
    _, rends = du.dash(o, "dash-only")
    v = du.pick(rends, "video").id
    problems = []
    status, _, body = o.get("/dash-only/master.m3u8")
    if status == 200 and b"EXT-X-KEY" not in body and b"EXT-X-SESSION-KEY" not in body:
        problems.append("/dash-only/master.m3u8 -> 200 with clear playlists")
    for path in (f"/dash-only/{v}/media.m3u8", hu.with_version(f"/dash-only/{v}/1.m4s")):
        status = o.get(path)[0]
        if status not in (403, 404):
            problems.append(f"{path} -> {status}, expected 403/404 (clear variant of a protected asset)")
    du.report(problems, "a policy without an `hls` list serves the asset in the clear over HLS:")


# ------------------------------------------------------------------------------------------------
# Key lifecycle: persisted auto keys


AUTO_POLICY = ('[policies.auto]\ndash = ["cenc"]\nhls = ["cbcs", "aes128"]\nkey_delivery = "open"\n'
               'keys = { video = "auto", audio = "auto", envelope = "auto" }\n'
               '[[assets]]\nmatch = "{asset}"\npolicy = "auto"\n')


def first_bytes(o, asset, variant="cenc"):
    """(KIDs per content type, {path: bytes} of init + segment 1 of video and audio). Paths are
    keyed without their version, so servers under other keys compare name by name."""
    text, rends = du.dash(o, asset, variant)
    kids = {a.content: a.default_kid for a in du.mpd_sets(text)}
    out = {}
    for kind, r in both(rends).items():
        for u in (r.init_url, r.segment_urls[0]):
            out[hu.unversioned(u.split("/", 3)[3])] = mu.fetch_ok(u)
    return kids, out, rends


def envelope_kid(o, asset):
    h = du.hls(o, asset, "aes128")
    uris = {a["URI"] for t, _ in h.media.values() for _, a in du.key_lines(t)}
    assert len(uris) == 1, f"AES-128 key URIs {uris}"
    return uris.pop().rsplit("/", 1)[1]


def test_auto_keys_persist_across_restart(work, assets):
    store = Path(work) / "persist" / "keys.json"
    cfg = Path(work) / "persist.toml"
    cfg.write_text(du.STORAGE + f'[keystore]\npath = "{store}"\n' + AUTO_POLICY.replace("{asset}", "life"))
    a = Origin(assets, config=cfg)
    try:
        kids1, bytes1, _ = first_bytes(a, "life")
        env1 = envelope_kid(a, "life")
    finally:
        a.stop()
    log_a = a.log_path.read_text(errors="replace")
    problems = []
    mode = stat.S_IMODE(store.stat().st_mode)
    if mode != 0o600:
        problems.append(f"{store}: mode {oct(mode)}, expected 0o600 (it holds content keys)")
    # `<store>.lock` is the (empty) advisory lock file of read-merge-write; temp files must be gone.
    leftovers = [p.name for p in store.parent.iterdir() if p.name not in (store.name, store.name + ".lock")]
    if leftovers:
        problems.append(f"{store.parent}: leftover files {leftovers}")
    saved = store_keys(store)
    if {saved.get("asset:life/video", (None,))[0], saved.get("asset:life/audio", (None,))[0]} != {kids1["video"], kids1["audio"]}:
        problems.append(f"store {sorted(saved)} does not hold the MPD's KIDs {kids1}")
    b = Origin(assets, config=cfg)
    try:
        kids2, bytes2, rends = first_bytes(b, "life")
        env2 = envelope_kid(b, "life")
        if kids2 != kids1 or env2 != env1:
            problems.append(f"after restart: KIDs {kids2} / envelope {env2}, before {kids1} / {env1}")
        diff = [p for p in bytes1 if bytes1[p] != bytes2.get(p)]
        if diff:
            problems.append(f"after restart these differ: {diff}")
        shown, out = du.keys_show(cfg, assets, "life")
        by_class = {c: (kid, key) for _, (c, kid, key) in shown.items()}
        if by_class.get("video", (None,))[0] != kids1["video"] or by_class.get("audio", (None,))[0] != kids1["audio"] \
                or by_class.get("envelope", (None,))[0] != bytes.fromhex(env1):
            problems.append(f"keys show disagrees with the served KIDs {kids1}, envelope {env1}:\n{out}")
        else:
            keys = {"video": by_class["video"][1], "audio": by_class["audio"][1]}
            problems += decrypt_all(b, work, both(rends), keys, "persisted (keys show)")
        log = log_a + b.log()
    finally:
        b.stop()
    secrets = [k.hex() for _, k in saved.values()]
    leaked = [s for s in secrets if s in log]
    if leaked:
        problems.append(f"content keys appear in the server log: {len(leaked)} of {len(secrets)}")
    du.report(problems)


def test_keys_show_while_serving_agrees_with_the_server(work, assets):
    """An operator runs `keys show` on a running origin. It must never create keys behind the
    server's back (two writers of one store file would lose keys): before any request it shows
    the auto keys as not created and leaves the store untouched; after the server created them it
    prints exactly the KIDs the server serves, and the store keeps them."""
    store = Path(work) / "show-live" / "keys.json"
    cfg = Path(work) / "show-live.toml"
    cfg.write_text(du.STORAGE + f'[keystore]\npath = "{store}"\n' + AUTO_POLICY.replace("{asset}", "seeded"))
    o = Origin(assets, config=cfg)
    try:
        before, out_before = du.keys_show(cfg, assets, "seeded", show_keys=False)
        store_before = store.exists()
        text, _ = du.dash(o, "seeded")
        after, _ = du.keys_show(cfg, assets, "seeded", show_keys=False)
    finally:
        o.stop()
    served = {a.content: a.default_kid for a in du.mpd_sets(text)}
    printed = {c: kid for _, (c, kid, _) in after.items()}
    kept = {kid for kid, _ in store_keys(store).values()}
    problems = []
    if before:
        problems.append(f"before any request keys show printed KIDs {before}: it must not create keys")
    if "not created yet" not in out_before:
        problems.append(f"keys show did not say the auto keys are not created yet:\n{out_before}")
    if store_before:
        problems.append("keys show wrote the store file before the server needed a key")
    if printed.get("video") != served["video"] or printed.get("audio") != served["audio"]:
        problems.append(f"keys show printed {{{', '.join(f'{c}: {k.hex()}' for c, k in printed.items())}}}, the server "
                        f"served {{{', '.join(f'{c}: {k.hex()}' for c, k in served.items())}}}")
    lost = [c for c, k in printed.items() if k not in kept]
    if lost:
        problems.append(f"the store file does not hold the keys for {lost}")
    du.report(problems, "`keys show` against a running server:")


# ------------------------------------------------------------------------------------------------
# Key lifecycle: key seed


SEED1 = bytes(range(1, 33))
SEED2 = bytes(range(101, 133))


def seeded(work, assets, name, seed):
    cfg = (du.STORAGE + f'[keystore]\nseed = "{base64.b64encode(seed).decode()}"\n'
           f'path = "{Path(work) / name / "keys.json"}"\n' + AUTO_POLICY.replace("{asset}", "seeded"))
    return du.start(work, name, cfg, assets)


def test_key_seed_instances_agree(work, assets):
    s1, s2 = seeded(work, assets, "seed-a", SEED1), seeded(work, assets, "seed-b", SEED1)
    try:
        k1, b1, rends = first_bytes(s1, "seeded")
        k2, b2, _ = first_bytes(s2, "seeded")
        problems = []
        if k1 != k2 or b1 != b2:
            problems.append(f"two instances with one seed differ: KIDs {k1} vs {k2}, bytes differ for "
                            f"{[p for p in b1 if b1[p] != b2.get(p)]}")
        # The keys are the PlayReady key-seed derivation of the KIDs (computed here).
        keys = {kind: du.keyseed_key(SEED1, k1[kind]) for kind in ("video", "audio")}
        problems += decrypt_all(s1, work, both(rends), keys, "seed (key-seed algorithm)")
    finally:
        s1.stop()
        s2.stop()
    s3 = seeded(work, assets, "seed-c", SEED2)
    try:
        k3, b3, _ = first_bytes(s3, "seeded")
    finally:
        s3.stop()
    media = [p for p in b1 if p.endswith(".m4s")]
    same = [p for p in media if b1[p] == b3.get(p)]
    if same:
        problems.append(f"another seed gives the same media bytes for {same}")
    du.report(problems)


def test_key_seed_kids_are_unique_per_seed(work, assets):
    """A KID names one key (ISO/IEC 23001-7): deployments with different seeds (tenants, staging
    vs production) must not publish the same KID for different keys, or a license server or a
    CDM's license cache keyed by KID hands out the wrong key."""
    s1, s3 = seeded(work, assets, "seed-d", SEED1), seeded(work, assets, "seed-e", SEED2)
    try:
        k1, _, _ = first_bytes(s1, "seeded")
        k3, _, _ = first_bytes(s3, "seeded")
    finally:
        s1.stop()
        s3.stop()
    assert k1["video"] != k3["video"], f"seed 1 and seed 2 both use KID {k1['video'].hex()} for different keys"


# ------------------------------------------------------------------------------------------------
# Hot reload


R = {  # same lengths, so a rewrite can keep the file size for the SIGHUP case
    "r1": ("5f60718293a4450697d8e9fa0b1c2d3e", "66778899aabbccddeeff001122334455"),
    "r2": ("60718293a4b5460798e9fa0b1c2d3e4f", "778899aabbccddeeff00112233445566"),
    "r3": ("718293a4b5c6470899fa0b1c2d3e4f50", "8899aabbccddeeff0011223344556677"),
}


def reload_config(scheme, key):
    kid, k = R[key]
    return (du.STORAGE + du.key_table("k", kid, k) +
            f'[policies.p]\ndash = ["{scheme}"]\nhls = ["cbcs"]\nkeys = {{ video = "k" }}\n'
            '[[assets]]\nmatch = "reload"\npolicy = "p"\n')


def wait_for(fn, what, timeout=6.0):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(0.1)


def mpd_state(o):
    status, _, body = o.get("/reload/manifest.mpd")
    assert status == 200, f"/reload/manifest.mpd -> {status}"
    v = [a for a in du.mpd_sets(body.decode()) if a.content == "video"][0]
    return v.scheme, v.default_kid


def check_video(o, work, key, tag):
    _, rends = du.dash(o, "reload")
    r = du.pick(rends, "video")
    dl = eu.download(r.init_url, r.segment_urls, "video", Path(work) / f"{tag}.mp4")
    return [p for p in [du.judge(dl.path, du.V180, key, tag)] if p], dl


def test_hot_reload_file_change_sighup_and_invalid_config(work, assets):
    cfg = Path(work) / "reload.toml"
    cfg.write_text(reload_config("cenc", "r1"))
    o = Origin(assets, config=cfg)
    problems = []
    try:
        assert mpd_state(o) == ("cenc", bytes.fromhex(R["r1"][0])), f"initial state {mpd_state(o)}"
        # 1. File change (written elsewhere, renamed in): cenc/r1 -> cbcs/r2.
        du.write_atomic(cfg, reload_config("cbcs", "r2"))
        want = ("cbcs", bytes.fromhex(R["r2"][0]))
        t0 = time.time()
        if not wait_for(lambda: mpd_state(o) == want, "reload"):
            du.report([f"file change not applied within 6 s: MPD says {mpd_state(o)}, expected {want}"])
        elapsed = time.time() - t0
        p, dl2 = check_video(o, work, bytes.fromhex(R["r2"][1]), "reload-file-r2")
        problems += p
        if "configuration reloaded" not in o.log():
            problems.append("no 'configuration reloaded' log line after the file change")
        # 2. SIGHUP: same size and mtime (the poller cannot see it), key r2 -> r3 under the same
        # URLs (init.cbcs.mp4, N.cbcs.m4s): the new key must be used, not cached bytes.
        st = cfg.stat()
        text3 = reload_config("cbcs", "r3")
        assert len(text3) == st.st_size
        tmp = cfg.with_name(".reload.toml.tmp")
        tmp.write_text(text3)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, cfg)
        time.sleep(1.0)
        if mpd_state(o) != want:
            problems.append(f"config applied without SIGHUP although size and mtime were unchanged: {mpd_state(o)}")
        o.proc.send_signal(signal.SIGHUP)
        want3 = ("cbcs", bytes.fromhex(R["r3"][0]))
        if not wait_for(lambda: mpd_state(o) == want3, "sighup"):
            du.report(problems + [f"SIGHUP did not reload within 6 s: MPD says {mpd_state(o)}, expected {want3}"])
        p, dl3 = check_video(o, work, bytes.fromhex(R["r3"][1]), "reload-sighup-r3")
        problems += p
        if dl3.segments[0] == dl2.segments[0]:
            problems.append("after the key change, segment 1 (same URL) still has the old key's bytes")
        if "SIGHUP" not in o.log():
            problems.append("the reload log line does not name SIGHUP as its trigger")
        # 3. An invalid file (several errors): every error listed with its line; r3 stays.
        bad = (du.STORAGE +
               '[keys.k]\nkid = "718293a4-b5c6-4708-99fa-0b1c2d3e4f50"\nkey = "8899aabbccddeeff0011223344556677"\n'
               '[keys.broken]\nkid = "not-a-kid"\nkey = "00112233445566778899aabbccddeeff"\n'
               '[keys.short]\nkid = "00000000000040008000000000000001"\nkey = "c0ffee"\n'
               '[policies.p]\ndash = ["cbcs", "cenx"]\nhls = ["cbcs"]\nkeys = { video = "missing" }\n'
               '[[assets]]\nmatch = "reload"\npolicy = "p"\n'
               '[[assets]]\nmatch = "other"\npolicy = "nope"\n')
        lines = bad.splitlines()

        def line_of(prefix, start_at=None):
            start = lines.index(start_at) if start_at else 0
            return next(i + 1 for i in range(start, len(lines)) if lines[i].startswith(prefix))
        expected = {
            "keys.broken.kid": line_of("kid", "[keys.broken]"),
            "policies.p.dash": line_of("dash", "[policies.p]"),
            "policies.p.keys.video": line_of("keys", "[policies.p]"),
            "assets[1].policy": None,   # the second [[assets]] rule: its header or its policy line
        }
        before = len(o.log())
        du.write_atomic(cfg, bad)
        if not wait_for(lambda: "invalid configuration" in o.log()[before:], "invalid"):
            du.report(problems + ["no 'invalid configuration' log line within 6 s of writing a bad file"])
        time.sleep(0.3)
        log = o.log()[before:]
        header = [i for i, l in enumerate(lines) if l == "[[assets]]"][1]
        for field, n in expected.items():
            ok_lines = [n] if n else [header + 1, header + 3]
            if not any(re.search(rf"line {m}: {re.escape(field)}:", log) for m in ok_lines):
                problems.append(f"log does not list `line {ok_lines}: {field}: …`")
        if "keys.short.key" not in log:
            problems.append("log does not list keys.short.key (not 32 hex digits)")
        if "previous configuration stays in force" not in log:
            problems.append("log does not say the previous configuration stays in force")
        for secret in ("8899aabbccddeeff0011223344556677", "00112233445566778899aabbccddeeff", "c0ffee"):
            if secret in o.log():
                problems.append(f"a key value from the config file appears in the log: {secret}")
        if mpd_state(o) != want3:
            problems.append(f"after the invalid file the MPD changed: {mpd_state(o)}")
        p, _ = check_video(o, work, bytes.fromhex(R["r3"][1]), "reload-after-invalid")
        problems += p
        # 4. A valid file again is picked up.
        du.write_atomic(cfg, reload_config("cenc", "r1"))
        if not wait_for(lambda: mpd_state(o) == ("cenc", bytes.fromhex(R["r1"][0])), "recover"):
            problems.append(f"a valid file after an invalid one was not applied: {mpd_state(o)}")
        if elapsed > 3:
            problems.append(f"file change took {elapsed:.1f} s (rescan_interval_ms = 200)")
        if not o.alive():
            problems.append("the server died during reloads")
    finally:
        o.stop()
    du.report(problems, o.log_path.read_text(errors="replace")[-3000:] if problems else "")


# ------------------------------------------------------------------------------------------------
# Bad configurations at start


BAD = {
    "unknown_policy": ('[[assets]]\nmatch = "multi"\npolicy = "premium"\n', ["assets[0].policy"]),
    "unknown_key_name": ('[policies.p]\ndash = ["cenc"]\nkeys = { video = "nokey" }\n',
                         ["policies.p.keys.video"]),
    "malformed_kid": ('[keys.k]\nkid = "8ba94ade-6eb9-449d-b44f-a5beefaf43"\nkey = "2b7e151628aed2a6abf7158809cf4f3c"\n',
                      ["keys.k.kid"]),
    "malformed_key": ('[keys.k]\nkid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"\nkey = "2b7e151628aed2a6abf7158809cf4f3"\n',
                      ["keys.k.key"]),
    "duplicate_kid": ('[keys.a]\nkid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"\nkey = "2b7e151628aed2a6abf7158809cf4f3c"\n'
                      '[keys.b]\nkid = "8ba94ade6eb9449db44fa5beefaf43b0"\nkey = "00112233445566778899aabbccddeeff"\n',
                      ["keys.b.kid"]),
    "envelope_is_a_cenc_key": (
        '[keys.a]\nkid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"\nkey = "2b7e151628aed2a6abf7158809cf4f3c"\n'
        '[policies.p]\ndash = ["cenc"]\nhls = ["aes128"]\nkeys = { video = "a", envelope = "a" }\n',
        ["policies.p.keys.envelope"]),
    "short_seed": ('[keystore]\nseed = "c2VjcmV0LXNlZWQ="\n[policies.p]\ndash = ["cenc"]\nkeys = { video = "auto" }\n',
                   ["keystore.seed"]),
}
BAD["all_at_once"] = (BAD["unknown_policy"][0] + BAD["unknown_key_name"][0] + BAD["duplicate_kid"][0] +
                      '[keys.m]\nkid = "zz"\nkey = "xyz"\n',
                      ["assets[0].policy", "policies.p.keys.video", "keys.b.kid", "keys.m.kid", "keys.m.key"])


def expected_line(text, field):
    """1-based line of what an error about `field` names: `keys.k.kid` -> the `kid =` line of
    [keys.k]; `policies.p.keys.video` -> the `keys =` line of [policies.p]; `assets[i].policy`
    -> the i-th [[assets]] header."""
    lines = text.splitlines()
    m = re.fullmatch(r"assets\[(\d+)\]\.\w+", field)
    if m:
        return [i for i, l in enumerate(lines) if l == "[[assets]]"][int(m.group(1))] + 1
    parts = field.split(".")
    n = max(k for k in range(1, len(parts)) if "[" + ".".join(parts[:k]) + "]" in lines)
    start = lines.index("[" + ".".join(parts[:n]) + "]")
    return next(i for i in range(start + 1, len(lines)) if lines[i].startswith(parts[n] + " =")) + 1


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_refused_at_start(work, assets, case):
    text, fields = BAD[case]
    cfg = Path(work) / f"bad-{case}.toml"
    cfg.write_text(text)
    p = subprocess.Popen([str(BIN), "serve", "--assets", str(assets), "--config", str(cfg), "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"{case}: the server started with an invalid config:\n{text}\n{err[-1500:]}", pytrace=False)
    problems = []
    if p.returncode == 0 or "listening on" in out:
        problems.append(f"exit status {p.returncode}, stdout {out[:200]!r}")
    for f in fields:
        n = expected_line(text, f)
        if not re.search(rf"line {n}: {re.escape(f)}:", err):
            problems.append(f"stderr does not name `line {n}: {f}:`")
    secrets = set(re.findall(r'^(?:key|seed) = "([^"]*)"', text, re.M))
    leaked = [s for s in secrets if s and s in out + err]
    if leaked:
        problems.append(f"key values printed: {leaked}")
    if "Traceback" in err or "panicked" in err:
        problems.append("a panic/backtrace instead of an error message")
    du.report(problems, f"{case}: config\n{text}\nstderr:\n{err[-2000:]}" if problems else "")
