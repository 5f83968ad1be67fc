"""License chaining (issue 11), end to end: a chained policy's leaf travels in the content (a
`pssh` of our SystemID in init segments, a ContentProtection in the MPD, an EXT-X-SESSION-KEY in
HLS); only the root is bound to the device. The real origin, its license folder on a real nginx,
the reference client, and ffmpeg judging the output against the source frame by frame.
"""
import base64
import json
import re
import shutil
import time
from pathlib import Path

import pytest

import device_util as du
from conftest import ASSETS, Origin
from media_util import compare_md5, dash_renditions, fetch_manifest, fetch_ok, framemd5, parse_mpd, source_framemd5
from services import Nginx

SOURCE = ASSETS / "progressive.mp4"
CHAIN_ID = bytes.fromhex("b6e81ed0de1c4031a1b6cd77cd80fa2a")
CHAIN_SCHEME = "urn:uuid:b6e81ed0-de1c-4031-a1b6-cd77cd80fa2a"
NAMES = ("one", "two", "three")


def chained_config(tmp, roots="", grace=0):
    text = du.config_text(tmp, f"sqlite:{tmp}/state/devices.sqlite3", tmp / "licenses")
    text = text.replace('device_licenses = "direct"', f'device_licenses = "chained"\n{roots}')
    text = text.replace("[policies.dev]", "[policies.chain]").replace('policy = "dev"', 'policy = "chain"')
    return text.replace("entitlement_grace_secs = 3600", f"entitlement_grace_secs = {grace}")


class ChainStack:
    """One origin over three copies of the sample (three chained assets), its folder on nginx."""

    def __init__(self, tmp, roots=""):
        self.tmp = Path(tmp)
        (self.tmp / "state").mkdir(parents=True)
        self.assets = self.tmp / "assets"
        self.assets.mkdir()
        for n in NAMES:
            shutil.copy(SOURCE, self.assets / f"{n}.mp4")
        self.config = self.tmp / "origin.toml"
        self.config.write_text(chained_config(self.tmp, roots))
        self.origin = Origin(self.assets, config=self.config)
        self.public = self.tmp / "licenses" / "public"
        self.nginx = Nginx.static(self.public)

    def tok(self, sub, **kw):
        return du.token(self.config, sub, **kw)

    def register(self, name, sub, ttl="1h"):
        store = self.tmp / "stores" / name
        _, out, _ = du.client(store, "register", "--chain", "--origin", self.origin.base_url,
                              "--licenses", self.nginx.base_url, "--token", self.tok(sub, ttl=ttl))
        return store, out

    def close(self):
        self.origin.stop()
        self.nginx.close()


def judge(out, label):
    problem = compare_md5(source_framemd5(str(SOURCE), "0:v:0"), framemd5(out, "0:v:0", label=label))
    assert problem is None, problem


def leaf_of_init(init):
    """The leaf JSON in an init segment's pssh of our SystemID (a plain byte search, then the
    pssh v1 layout: SystemID, KID count, KIDs, data size, data)."""
    at = init.find(CHAIN_ID)
    assert at > 0, "no pssh of the chaining SystemID in the init segment"
    n = int.from_bytes(init[at + 16:at + 20], "big")
    p = at + 20 + 16 * n
    size = int.from_bytes(init[p:p + 4], "big")
    return json.loads(init[p + 4:p + 4 + size])


def snapshot(stack, name):
    """Every manifest of an asset and the init segments they name, as served."""
    got = {}
    for m in ("manifest.mpd", "manifest.cbcs.mpd", "master.m3u8", "master.cenc.m3u8", "master.aes128.m3u8"):
        got[m] = fetch_ok(stack.origin.url(f"/{name}/{m}"))
    url = stack.origin.url(f"/{name}/manifest.mpd")
    for r in dash_renditions(parse_mpd(fetch_manifest(url, "application/dash+xml")), url):
        got[r.init_url.rsplit("/", 2)[-2] + "/" + r.init_url.rsplit("/", 1)[-1]] = fetch_ok(r.init_url)
    return got


CASES = [("one", "manifest.mpd"), ("two", "master.m3u8"), ("three", "manifest.cbcs.mpd")]


def test_leaf_is_signalled_everywhere_and_players_ignore_it(tmp_path):
    """The leaf is in the init pssh, the MPD and the HLS session key, the same everywhere and on
    every request; joserfc opens it with the root key from a root license (an independent
    JOSE implementation reads our JWE JSON)."""
    s = ChainStack(tmp_path)
    try:
        store, _ = s.register("signal", "sam")
        snap = snapshot(s, "one")
        again = snapshot(s, "one")
        assert snap == again, "leaf signalling must be deterministic"
        inits = [v for k, v in snap.items() if k.endswith(".mp4")]
        leaves = [leaf_of_init(i) for i in inits]
        assert all(l == leaves[0] for l in leaves), "one leaf per asset, in every rendition"
        leaf = leaves[0]
        assert [r["header"]["kid"] for r in leaf["recipients"]] == ["chain.1"]
        mpd = snap["manifest.mpd"].decode()
        assert mpd.count(CHAIN_SCHEME) >= 2, "a ContentProtection per adaptation set"
        for m in ("master.m3u8", "master.cenc.m3u8", "master.aes128.m3u8"):
            line = [l for l in snap[m].decode().splitlines() if CHAIN_SCHEME in l]
            assert len(line) == 1 and line[0].startswith("#EXT-X-SESSION-KEY:"), (m, line)
            data = re.search(r'URI="data:application/jose\+json;base64,([^"]+)"', line[0]).group(1)
            assert json.loads(base64.b64decode(data)) == leaf, f"{m}: the same leaf as the init segments"

        # joserfc: open the root license with the device key, then the leaf with the root key.
        _, roots, _ = du.client(store, "fetch-root")
        assert [r["rkid"] for r in roots["roots"]] == ["chain.1"]
        dev = json.loads(Path(store, "device.json").read_text())["device_id"]
        rlic = (s.public / "v1" / "d" / dev / "1" / "root" / "chain.1.rlic").read_text()
        _, payload = du.verify_file(rlic, du.keyset((s.public / "v1" / "keys.json").read_text()))
        from joserfc import jwe
        from joserfc.jwk import OctKey
        enc = du.store_key(store, "enc")
        root_jwk = json.loads(jwe.decrypt_compact(payload["key"], enc).plaintext)
        assert root_jwk["ext"] is False and root_jwk["alg"] == "A256KW"
        # Our private header members (asset, pol, kids, ra) are legal JOSE; joserfc checks
        # headers strictly unless told otherwise.
        registry = jwe.JWERegistry(algorithms=["A256KW", "A256GCM"], strict_check_header=False)
        opened = jwe.decrypt_json(leaf, OctKey.import_key(root_jwk), registry=registry)
        keys = json.loads(opened.plaintext)
        assert keys["asset"] == "one" and {k["class"] for k in keys["keys"]} >= {"video", "envelope"}
    finally:
        s.close()


def test_expired_root_then_one_renewal_unlocks_every_leaf(tmp_path):
    """Three chained assets. With the root expired (its exp is the entitlement's: a short token
    and no grace) `client decrypt` refuses all three with `root_expired`; after ONE renewal at
    POST /.drm/root all three decrypt frame-identical, and their manifests and init segments are
    byte-identical to before the renewal (the leaves did not change)."""
    s = ChainStack(tmp_path)
    try:
        store, _ = s.register("renewer", "rene", ttl="12s")
        before = {n: snapshot(s, n) for n in NAMES}
        # Playable while the root lasts.
        out = tmp_path / "first.mp4"
        _, summary, _ = du.client(store, "--skew-secs", "0", "decrypt", s.origin.url("/one/manifest.mpd"), "-o", out)
        assert summary["path"] == "chained" and summary["rkid"] == "chain.1", summary
        judge(out, "before expiry")
        exp = summary["root_exp"]
        time.sleep(max(0, exp - time.time()) + 1.5)

        for name, manifest in CASES:
            rc, _, err = du.client(store, "--skew-secs", "0", "decrypt", s.origin.url(f"/{name}/{manifest}"),
                                   "-o", tmp_path / f"never-{name}.mp4", check=False)
            assert rc != 0 and du.refused(err, "root_expired"), (name, err)

        mark = len(s.origin.log())
        _, renewed, _ = du.client(store, "fetch-root", "--online-token", s.tok("rene", ttl="1h"))
        assert [r["rkid"] for r in renewed["roots"]] == ["chain.1"] and renewed["roots"][0]["exp"] > exp + 60
        roots_asked = [l for l in du.access_lines(s.origin.log()[mark:]) if "path=/.drm/root" in l]
        assert len(roots_asked) == 1, roots_asked

        for name, manifest in CASES:
            out = tmp_path / f"renewed-{name}.mp4"
            _, summary, _ = du.client(store, "--skew-secs", "0", "decrypt", s.origin.url(f"/{name}/{manifest}"),
                                      "-o", out)
            assert summary["path"] == "chained" and summary["asset"] == name, summary
            judge(out, f"{name} after one renewal")
        after = {n: snapshot(s, n) for n in NAMES}
        assert after == before, "the renewal must not touch the content"
        assert len(du.license_requests_in(s.origin.log()[mark:])) == 1, "only the one renewal asked the origin"
    finally:
        s.close()


def test_root_key_rollover_with_overlap(tmp_path):
    """Version 1 live; then version 2 added with an overlap: leaves carry both recipients (new
    segment names), and the device that holds only root 1 keeps playing; then version 1 retired:
    leaves carry only version 2, names move again, and the device plays with root 2 (from the
    regenerated static folder)."""
    now = int(time.time())
    s = ChainStack(tmp_path, roots="root_keys = [{ version = 1 }]")
    try:
        store, _ = s.register("roller", "rolf")
        init1 = snapshot(s, "one")
        # What a CDN still holds of the content packaged under version 1 alone.
        cached = tmp_path / "cdn"
        mirror(s, "one", "manifest.mpd", cached, lambda leaf: leaf)
        rk = lambda snap: [r["header"]["kid"] for r in leaf_of_init(next(v for k, v in snap.items() if k.endswith(".mp4")))["recipients"]]
        assert rk(init1) == ["chain.1"]

        def reload(roots):
            s.config.write_text(chained_config(s.tmp, roots))
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    snap = snapshot(s, "one")
                except AssertionError as e:
                    # The reload can land between the manifest and its init segments: the old
                    # names then answer 404 "reload the manifest", as designed; read again.
                    assert "no segment of this version" in str(e), e
                    time.sleep(0.3)
                    continue
                if snap != init1 and rk(snap) != rk(init1):
                    return snap
                time.sleep(0.3)
            raise AssertionError("the configuration change did not reach the manifests")

        overlap = reload(f"root_keys = [{{ version = 1, not_after = {now + 3600} }}, {{ version = 2, not_before = {now - 60} }}]")
        assert rk(overlap) == ["chain.1", "chain.2"]
        names = lambda snap: sorted(k for k in snap if k.endswith(".mp4"))
        assert names(overlap) != names(init1), "segment names move with the leaf"
        out = tmp_path / "overlap.mp4"
        _, summary, _ = du.client(store, "decrypt", s.origin.url("/one/manifest.mpd"), "-o", out)
        assert summary["rkid"] == "chain.1", summary
        judge(out, "overlap, old root")

        # During the overlap both packagings play: a device registered now holds a root of each
        # live version; root 1 alone opens the content packaged before the overlap (leaf chain.1
        # only, from the CDN's copy), root 2 alone opens the content packaged now.
        late, _ = s.register("late", "lara")
        folder = s.public / "v1" / "d" / json.loads(Path(late, "device.json").read_text())["device_id"] / "1" / "root"
        deadline = time.time() + 20
        while not all((folder / f"chain.{v}.rlic").exists() for v in (1, 2)):
            assert time.time() < deadline, f"no root of each live version in {folder}"
            time.sleep(0.3)
        cdn = Nginx.static(cached)
        try:
            for version, url in ((1, cdn.url("/one/manifest.mpd")), (2, s.origin.url("/one/manifest.mpd"))):
                out = tmp_path / f"overlap-root{version}.mp4"
                _, summary, _ = du.client(late, "decrypt", url, "-o", out, "--license", folder / f"chain.{version}.rlic")
                assert (summary["path"], summary["rkid"]) == ("chained", f"chain.{version}"), summary
                judge(out, f"overlap, content of root {version}, that root alone")
            rc, _, err = du.client(late, "decrypt", cdn.url("/one/manifest.mpd"), "-o", tmp_path / "x.mp4",
                                   "--license", folder / "chain.2.rlic", check=False)
            assert rc != 0, "root 2 must not open a leaf made for version 1 alone"
        finally:
            cdn.close()

        init1 = overlap
        retired = reload(f"root_keys = [{{ version = 1, not_after = {now - 10} }}, {{ version = 2, not_before = {now - 60} }}]")
        assert rk(retired) == ["chain.2"]
        dev = json.loads(Path(store, "device.json").read_text())["device_id"]
        deadline = time.time() + 20
        while not (s.public / "v1" / "d" / dev / "1" / "root" / "chain.2.rlic").exists():
            assert time.time() < deadline, "the serve task did not write root 2"
            time.sleep(0.3)
        out = tmp_path / "retired.mp4"
        _, summary, _ = du.client(store, "decrypt", s.origin.url("/one/master.m3u8"), "-o", out)
        assert summary["rkid"] == "chain.2", summary
        judge(out, "after rollover, new root")
    finally:
        s.close()


def test_non_chaining_device_gets_direct_licenses(tmp_path):
    """Legacy fallback: a device registered without --chain gets direct licenses for the chained
    assets in its folder (no roots), and plays the same content bytes through them."""
    s = ChainStack(tmp_path)
    try:
        store = tmp_path / "stores" / "legacy"
        du.client(store, "register", "--origin", s.origin.base_url, "--licenses", s.nginx.base_url,
                  "--token", s.tok("leo"))
        dev = json.loads(Path(store, "device.json").read_text())["device_id"]
        folder = s.public / "v1" / "d" / dev / "1"
        assert not (folder / "root").exists()
        assert sorted(p.name for p in (folder / "a").iterdir()) == [f"{n}.lic" for n in sorted(NAMES)]
        out = tmp_path / "legacy.mp4"
        _, summary, _ = du.client(store, "decrypt", s.origin.url("/two/manifest.mpd"), "-o", out)
        assert summary["path"] == "direct", summary
        judge(out, "legacy direct license on chained content")
    finally:
        s.close()


def flip(text, part, index=10):
    """One bit flipped in part `part` of a compact JWS."""
    parts = text.strip().split(".")
    raw = bytearray(du.b64d(parts[part]))
    raw[index % len(raw)] ^= 0x01
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ".".join(parts)


def with_leaf(init, leaf):
    """The init segment with its chain pssh carrying `leaf` (a dict) instead: the pssh box is
    rebuilt and its moov's size fixed, so only the leaf differs."""
    new = json.dumps(leaf, separators=(",", ":")).encode()
    at = init.find(CHAIN_ID)
    start = at - 12
    size = int.from_bytes(init[start:start + 4], "big")
    n = int.from_bytes(init[at + 16:at + 20], "big")
    body = init[start + 8:start + 12] + CHAIN_ID + init[at + 16:at + 20 + 16 * n] + len(new).to_bytes(4, "big") + new
    box = (8 + len(body)).to_bytes(4, "big") + b"pssh" + body
    out = init[:start] + box + init[start + size:]
    moov = out.find(b"moov") - 4
    msize = int.from_bytes(out[moov:moov + 4], "big") + len(box) - size
    return out[:moov] + msize.to_bytes(4, "big") + out[moov + 4:]


def mirror(s, name, manifest, root, change_leaf):
    """A copy of one asset's DASH presentation under `root`/`name` (as a CDN would hold it), with
    `change_leaf(leaf)` applied to the leaf of every init segment."""
    url = s.origin.url(f"/{name}/{manifest}")
    dst = root / name
    dst.mkdir(parents=True)
    (dst / manifest).write_bytes(fetch_ok(url))
    for r in dash_renditions(parse_mpd(fetch_manifest(url, "application/dash+xml")), url):
        for u in [r.init_url, *r.segment_urls]:
            rel = u.split(f"/{name}/", 1)[1].split("?")[0]
            body = fetch_ok(u)
            if u == r.init_url:
                body = with_leaf(body, change_leaf(leaf_of_init(body)))
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(body)


def test_chaining_refusals(tmp_path):
    """Each refusal with its reason: a tampered leaf (ciphertext, header), a leaf naming another
    policy, a root with a flipped signature bit, a root for another device, a root of another
    key; the untouched leaf and root still play (so each case fails for its own reason)."""
    s = ChainStack(tmp_path)
    try:
        a, _ = s.register("victim", "vic")
        b, _ = s.register("other", "oscar")
        du.client(a, "fetch-root")
        du.client(b, "fetch-root")
        dev = lambda st: json.loads(Path(st, "device.json").read_text())["device_id"]
        root_of = lambda st: (s.public / "v1" / "d" / dev(st) / "1" / "root" / "chain.1.rlic").read_text().strip()
        good_root = root_of(a)
        header, payload = du.unverified(good_root)
        pem = s.tmp / "state" / "origin-signing.pem"

        def header_changed(leaf, **changes):
            h = json.loads(du.b64d(leaf["protected"]))
            h.update(changes)
            leaf = dict(leaf)
            leaf["protected"] = base64.urlsafe_b64encode(json.dumps(h).encode()).rstrip(b"=").decode()
            return leaf

        def ct_flipped(leaf):
            leaf = dict(leaf)
            c = leaf["ciphertext"]
            leaf["ciphertext"] = ("B" if c[5] == "A" else "A").join([c[:5], c[6:]])
            return leaf

        mirrors = tmp_path / "mirror"
        for label, change in [("intact", lambda l: l), ("ciphertext", ct_flipped),
                              ("asset", lambda l: header_changed(l, asset="two")),
                              ("policy", lambda l: header_changed(l, pol="other"))]:
            mirror(s, "one", "manifest.mpd", mirrors / label, change)
        cdn = Nginx.static(mirrors)
        try:
            url = lambda label: cdn.url(f"/{label}/one/manifest.mpd")
            out = tmp_path / "x.mp4"
            roots = {
                "flipped signature": flip(good_root, 2),
                "another device's root": root_of(b),
                "another root key": du.resign({**payload, "rkid": "other.1"}, header, pem),
                "resigned for another generation": du.resign({**payload, "bind": {**payload["bind"], "gen": 2}},
                                                             header, pem),
            }
            cases = [
                ("ciphertext", None, "cannot_unwrap_leaf"),
                ("asset", None, "cannot_unwrap_leaf"),
                ("policy", None, "wrong_policy"),
                ("intact", "flipped signature", "bad_signature"),
                ("intact", "another device's root", "wrong_device"),
                ("intact", "another root key", "wrong_root"),
                ("intact", "resigned for another generation", "stale_generation"),
            ]
            failures = []
            for label, root, reason in cases:
                args = ["decrypt", url(label), "-o", out]
                if root:
                    f = tmp_path / "given.rlic"
                    f.write_text(roots[root])
                    args += ["--license", f]
                rc, _, err = du.client(a, *args, check=False)
                if rc == 0 or not du.refused(err, reason):
                    failures.append(f"{label}/{root}: want {reason}, rc={rc} {err.strip().splitlines()[-1:]}")
            assert not failures, "\n".join(failures)
            # The untouched mirror plays, with the held root and with the good root given.
            for extra in ([], ["--license", tmp_path / "good.rlic"]):
                (tmp_path / "good.rlic").write_text(good_root)
                _, summary, _ = du.client(a, "decrypt", url("intact"), "-o", out, *extra)
                assert summary["path"] == "chained", summary
            judge(out, "mirrored chained content")
        finally:
            cdn.close()
    finally:
        s.close()
