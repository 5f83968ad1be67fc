"""Device-bound licensing (issue 10), end to end: the real origin, its registry (SQLite, and the
same flows once on a real PostgreSQL with two origins), the license folder served by a real
nginx, the reference client (`drm-origin client`) decrypting DASH and HLS renditions, and ffmpeg
judging the result against the source frame by frame.

Refusals, tampering and the independent JOSE oracles live in test_device_refusals.py; crashes
and full disks in test_device_faults.py.
"""
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

import device_util as du
from conftest import ASSETS
from device_util import Stack
from media_util import compare_md5, framemd5, source_framemd5

SOURCE = ASSETS / "progressive.mp4"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request, tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp(f"device-{request.param}"), request.param)
    yield s
    s.close()


def judge(out, kind, label):
    """Frame-exact equality with the source track (pre-roll rule of media_util)."""
    spec = "0:v:0" if kind == "video" else "0:a:0"
    problem = compare_md5(source_framemd5(str(SOURCE), spec), framemd5(out, spec, label=label))
    assert problem is None, problem


CASES_SQLITE = [
    ("progressive/manifest.mpd", "video"),         # DASH cenc
    ("progressive/manifest.mpd", "audio"),
    ("progressive/manifest.cbcs.mpd", "video"),    # DASH cbcs
    ("progressive/master.m3u8", "video"),          # HLS cbcs (the policy's first HLS variant)
    ("progressive/master.cenc.m3u8", "video"),     # HLS cenc
    ("progressive/master.aes128.m3u8", "video"),   # HLS AES-128
    ("progressive/master.aes128.m3u8", "audio"),
]
CASES_POSTGRES = [("progressive/manifest.mpd", "video"), ("progressive/master.aes128.m3u8", "audio")]


def test_register_generate_static_decrypt(stack):
    """Register → `licenses generate` → nginx serves the folder → `client decrypt` of DASH and HLS
    renditions equals the source frame by frame, with no request to the origin's license, key or
    device endpoints while playing."""
    store, reg = stack.register("player", "alice")
    dev = stack.device_id(store)
    assert reg["gen"] == 1
    report = json.loads(du.run(["licenses", "generate", "--config", stack.config, "--assets", ASSETS, "--json"]).stdout)
    # Registration already wrote the device's folder; the command finds it current.
    assert report["written"] == 0 and report["unchanged"] >= 4, report
    n, problems = du.check_public_tree(stack.public, stack.jwks)
    assert not problems and n >= 5, problems

    mark = len(stack.origin.log())
    before = du.license_metrics(stack.origin)
    cases = CASES_SQLITE if stack.backend == "sqlite" else CASES_POSTGRES
    for manifest, kind in cases:
        out = stack.tmp / f"clear-{manifest.replace('/', '_')}-{kind}.mp4"
        _, summary, _ = du.client(store, "decrypt", stack.origin.url("/" + manifest), "--kind", kind, "-o", out)
        assert summary["asset"] == "progressive" and summary["bound_to"] == "device", summary
        judge(out, kind, f"{manifest} {kind}")
    during = stack.origin.log()[mark:]
    hits = du.license_requests_in(during)
    assert hits == [], "license endpoints were asked during playback:\n" + "\n".join(hits)
    assert du.license_metrics(stack.origin) == before, "the origin's license side answered during playback"
    played = [l for l in du.access_lines(during) if " path=/progressive/" in l]
    assert len(played) > 2 * len(cases), "the access log must show the playback itself (or this check proves nothing)"
    served = stack.nginx.access_log()
    assert f"/v1/d/{dev}/1/index.json" in served and f"/v1/d/{dev}/1/a/progressive.lic" in served, served
    # The two checks above do see a license request: one online fetch shows up in both.
    du.client(store, "fetch-license", "--asset", "progressive", "--online-token", stack.tok("alice"))
    after = du.license_metrics(stack.origin)
    assert len(du.license_requests_in(stack.origin.log()[mark:])) == 1
    assert after[du.LICENSE_SERIES[0]] == before[du.LICENSE_SERIES[0]] + 1, (before, after)
    assert after["origin_device_licenses_total"] == before["origin_device_licenses_total"] + 1

    # The protected bytes really were encrypted: same size (the client renames boxes, cuts
    # nothing), different bytes.
    from media_util import dash_renditions, fetch_manifest, fetch_ok, parse_mpd
    url = stack.origin.url("/progressive/manifest.mpd")
    video = [r for r in dash_renditions(parse_mpd(fetch_manifest(url, "application/dash+xml")), url)
             if r.kind == "video"][0]
    raw = b"".join(fetch_ok(u) for u in [video.init_url, *video.segment_urls])
    clear = (stack.tmp / "clear-progressive_manifest.mpd-video.mp4").read_bytes()
    assert len(raw) == len(clear) and raw != clear

    if stack.backend == "postgres":
        # One database holds both shared stores, each with its migrations in one history.
        names = stack.pg.psql("SELECT string_agg(name, ',' ORDER BY name) FROM drm_origin_migrations").strip()
        assert names == "0001_content_keys,0001_devices", names
        assert int(stack.pg.psql("SELECT COUNT(*) FROM drm_content_keys WHERE label LIKE 'asset:progressive/%'")) >= 2
        # Two nodes, one registry: the second node's folder holds the same bytes, file for file.
        du.run(["licenses", "generate", "--config", stack.config_b, "--assets", ASSETS])
        a, b = stack.public, stack.tmp / "licenses-b" / "public"
        assert du.public_files(a) == du.public_files(b)
        for rel in du.public_files(a):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_domain_export_import(stack):
    """A creates a domain, B joins; B plays with A's exported license; C, registered to the same
    owner but not a member, is refused; when B leaves, the key version moves on."""
    a, _ = stack.register("dom-a", "dora")
    b, _ = stack.register("dom-b", "dora")
    c, _ = stack.register("dom-c", "dora")
    tok = stack.tok("dora")
    _, joined, _ = du.client(a, "domain", "join", "--token", tok)
    dom = joined["domain_id"]
    assert joined["key_version"] == 1
    du.client(b, "domain", "join", "--token", tok, "--domain", dom)
    _, got, _ = du.client(a, "fetch-license", "--asset", "progressive", "--domain", dom)
    assert got["bound_to"] == dom
    dlx = stack.tmp / "progressive.dlx"
    du.client(a, "export", "--asset", "progressive", "-o", dlx)

    # B: import the file, play without any other license.
    _, imported, _ = du.client(b, "import", dlx)
    assert imported == {"imported": 1}
    out = stack.tmp / "domain-b.mp4"
    _, summary, _ = du.client(b, "decrypt", stack.origin.url("/progressive/manifest.mpd"), "-o", out)
    assert summary["bound_to"] == "domain", summary
    judge(out, "video", "domain member B")

    # C: not a member, cannot use it, nor get one online.
    rc, _, err = du.client(c, "import", dlx, check=False)
    assert rc != 0 and du.refused(err, "wrong_domain"), err
    rc, _, err = du.client(c, "fetch-license", "--asset", "progressive", "--domain", dom, "--online-token", tok,
                           check=False)
    assert rc != 0 and du.refused(err, "wrong_domain"), err

    # B leaves: version 2 for the remaining member, version 1's folder is gone from the server.
    _, left, _ = du.client(b, "domain", "leave", "--domain", dom)
    assert left["key_version"] == 2
    assert du.get(stack.nginx.url(f"/v1/m/{dom}/1/index.json"))[0] == 404
    status, body = du.get(stack.nginx.url(f"/v1/m/{dom}/2/index.json"))
    assert status == 200
    _, idx = du.verify_file(body.decode(), du.keyset(stack.jwks))
    members = sorted(f["path"].rsplit("/", 1)[1] for f in idx["files"] if f["path"].endswith(".dkey"))
    assert members == [f"{stack.device_id(a)}.dkey"]
    # A still plays after the rotation (it picks up key version 2 from its index).
    _, got, _ = du.client(a, "fetch-license", "--asset", "progressive", "--domain", dom)
    assert got["bound_to"] == dom


def test_factory_reset(stack):
    """After a factory reset the old license is refused (dead generation, and it cannot be
    unwrapped with the new key), the old folder is gone from the server, and the device
    registers again and plays."""
    store, _ = stack.register("resetter", "rosa")
    dev = stack.device_id(store)
    du.client(store, "fetch-license", "--asset", "progressive")
    old = stack.tmp / "old-gen1.lic"
    shutil.copy(Path(store, "licenses", "device~progressive.lic"), old)
    old_path = f"/v1/d/{dev}/1/a/progressive.lic"
    assert du.get(stack.nginx.url(old_path))[0] == 200

    _, answer, _ = du.client(store, "reset")
    assert answer["state"] == "reset"
    assert not Path(store, "enc.pem").exists() and not Path(store, "licenses").exists()
    for p in (old_path, f"/v1/d/{dev}/1/index.json"):
        assert du.get(stack.nginx.url(p))[0] == 404, p

    _, reg, _ = du.client(store, "register", "--origin", stack.origin.base_url, "--licenses",
                          stack.nginx.base_url, "--token", stack.tok("rosa"))
    assert reg["device_id"] == dev and reg["gen"] == 2
    assert du.get(stack.nginx.url(f"/v1/d/{dev}/2/index.json"))[0] == 200
    rc, _, err = du.client(store, "decrypt", stack.origin.url("/progressive/manifest.mpd"), "--license", old,
                           "-o", stack.tmp / "never.mp4", check=False)
    assert rc != 0 and du.refused(err, "stale_generation"), err
    with pytest.raises(Exception):
        du.open_license(old.read_text(), du.store_key(store, "enc"))
    # A request signed for the dead generation is refused by the origin too.
    py = du.PyDevice(dev)
    py.sig = du.store_key(store, "sig")
    status, body = du.post(stack.origin.base_url, "/.drm/license",
                           {"request": py.request("license", "/.drm/license", gen=1, asset="progressive")},
                           stack.tok("rosa"))
    assert (status, body["reason"]) == (409, "stale_generation")

    out = stack.tmp / "after-reset.mp4"
    du.client(store, "decrypt", stack.origin.url("/progressive/master.m3u8"), "-o", out)
    judge(out, "video", "after factory reset")


def test_registry_down_is_503(stack):
    """The registry out of reach: 503 registry_unavailable, nothing else breaks, and service
    resumes by itself."""
    dev = du.PyDevice()
    tok = stack.tok("outage")
    if stack.backend == "sqlite":
        db = sqlite3.connect(stack.registry.removeprefix("sqlite:"), timeout=1)
        db.execute("BEGIN EXCLUSIVE")
        try:
            status, body = du.post(stack.origin.base_url, "/.drm/device/register", {"request": dev.register_request()}, tok)
        finally:
            db.rollback()
            db.close()
    else:
        stack.pg.stop()
        try:
            status, body = du.post(stack.origin.base_url, "/.drm/device/register", {"request": dev.register_request()}, tok)
        finally:
            stack.pg.start()
    assert (status, body["reason"]) == (503, "registry_unavailable")
    assert stack.origin.get("/progressive/manifest.mpd")[0] == 200, "media keeps flowing"
    dev.register(stack.origin.base_url, tok)


VID_KID_1, VID_KEY_1 = "3a1b2c3d4e5f60718293a4b5c6d7e8f9", "00112233445566778899aabbccddeeff"
VID_KID_2, VID_KEY_2 = "4a1b2c3d4e5f60718293a4b5c6d7e8f9", "ffeeddccbbaa99887766554433221100"


def named_video_key(kid, key):
    return dict(keys='{ video = "vid", audio = "auto", envelope = "auto" }',
                key_defs=f'[keys.vid]\nkid = "{kid}"\nkey = "{key}"')


def wait_until(what, check, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_keeps_the_folder_current(tmp_path):
    """No `licenses generate`: the running origin writes a new asset's licenses when the file
    lands in the asset folder, and rewrites them on a key change (a new KID in the configuration,
    picked up without a restart); the device plays with what nginx then serves."""
    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(SOURCE, assets / "progressive.mp4")
    s = Stack(tmp_path / "stack", "sqlite", assets=assets, **named_video_key(VID_KID_1, VID_KEY_1))
    try:
        store, _ = s.register("watcher", "wanda")
        dev = s.device_id(store)
        ks = du.keyset(s.jwks)

        def listed():
            status, body = du.get(s.nginx.url(f"/v1/d/{dev}/1/index.json"))
            assert status == 200
            return {f["path"].rsplit("/", 1)[1] for f in du.verify_file(body.decode(), ks)[1]["files"]}

        assert "progressive.lic" in listed() and "second.lic" not in listed()
        shutil.copy(SOURCE, assets / "second.mp4")
        wait_until("the new asset's license in the index", lambda: "second.lic" in listed())
        status, body = du.get(s.nginx.url(f"/v1/d/{dev}/1/a/second.lic"))
        assert status == 200
        _, payload = du.verify_file(body.decode(), ks)
        assert payload["asset"] == "second"
        _, got, _ = du.client(store, "fetch-license", "--asset", "second")
        assert got["asset"] == "second", got

        def video_kids():
            status, body = du.get(s.nginx.url(f"/v1/d/{dev}/1/a/progressive.lic"))
            return status == 200 and du.verify_file(body.decode(), ks)[1]["kids"]

        assert VID_KID_1 in video_kids()
        s.config.write_text(du.config_text(s.tmp, s.registry, s.licenses, **named_video_key(VID_KID_2, VID_KEY_2)))
        wait_until("the license rewritten with the new KID", lambda: VID_KID_2 in (video_kids() or []))
        out = tmp_path / "rekeyed.mp4"
        _, summary, _ = du.client(s.store("watcher"), "decrypt", s.origin.url("/progressive/manifest.mpd"), "-o", out)
        assert VID_KID_2 in summary["kids"], summary
        judge(out, "video", "after a key change picked up by serve")
        assert "license folder regenerated" in s.origin.log()
        n, problems = du.check_public_tree(s.public, s.jwks)
        assert not problems, problems
    finally:
        s.close()


def test_signing_key_rotation(tmp_path):
    """`licenses rotate-key`: after a restart the origin signs with the new key; a device that
    pinned the old one follows the rotation through the announcement the old key signed (read
    from the static folder's keys.json), and keeps playing."""
    s = Stack(tmp_path, "sqlite")
    try:
        store, _ = s.register("rotating", "rita")
        old_kid = json.loads(s.jwks)["keys"][0]["kid"]
        # Rotation as the README tells it: rotate, regenerate, (re)start the servers. The origin
        # is stopped first so that its own start-up pass cannot do the command's work.
        s.origin.stop()
        out = du.run(["licenses", "rotate-key", "--config", s.config]).stdout
        new_kid = out.split()[3]
        assert new_kid != old_kid
        report = json.loads(du.run(["licenses", "generate", "--config", s.config, "--assets", ASSETS, "--json"]).stdout)
        assert report["written"] >= 5, f"every object is re-signed with the new key: {report}"
        s.origin = du.Origin(ASSETS, config=s.config)
        newcomer = du.PyDevice().register(s.origin.base_url, s.tok("rita"))
        assert du.unverified(newcomer["certificate"])[0]["kid"] == new_kid, "the restarted origin signs with the new key"
        jwks = json.loads((s.public / "v1" / "keys.json").read_text())
        assert [k["kid"] for k in jwks["keys"]] == [old_kid, new_kid] and len(jwks["announcements"]) == 1
        dev = s.device_id(store)
        header, _ = du.verify_file(s.public / "v1" / "d" / dev / "1" / "index.json", du.keyset(json.dumps(jwks)))
        assert header["kid"] == new_kid
        out_file = tmp_path / "rotated.mp4"
        du.client(store, "decrypt", s.origin.url("/progressive/manifest.mpd"), "-o", out_file)
        judge(out_file, "video", "after a signing-key rotation")
        state = json.loads(Path(store, "device.json").read_text())
        assert sorted(state["trusted_keys"]) == sorted([old_kid, new_kid])
    finally:
        s.close()
