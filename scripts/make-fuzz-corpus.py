#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (small files, committed).

  python3 scripts/make-fuzz-corpus.py [TARGET…]   # needs ffmpeg (Debian's) with libx264/libx265,
                                                 # a release build, and joserfc (tests/requirements.txt)

Seeds are valid inputs of each parser, so mutations start deep inside it: tiny MP4 files made by
ffmpeg (progressive, fragmented, HEVC), request paths of every route kind, Range headers, a CPIX
document of test keys, NAL decoder configurations with a real sample, a JWKS and a discovery
document, the device-licensing objects of a real origin (a device request signed by joserfc, the
origin's license, index, certificate and keys.json, JWEs) and the manifests and protected
segments the reference client decrypts (taken from a real origin over the tiny MP4). The byte
layouts of structured targets are those of src/fuzz_api.rs. With TARGET names, only those
folders are rewritten.
"""
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fuzz" / "corpus"
BIN = ROOT / "target" / "release" / "drm-origin"
ONLY = set(sys.argv[1:])


def write(target, name, data):
    if ONLY and target not in ONLY:
        return
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def boxes(data, start=0, end=None):
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8:
            return
        yield kind, pos, size
        pos += size


def find(data, path, start=0, end=None):
    """First box at `path` (list of fourccs) → (pos, size)."""
    for kind, pos, size in boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return pos, size
            hdr = 8
            if kind == b"stsd":
                hdr = 16
            elif kind in (b"avc1", b"hvc1", b"hev1"):
                hdr = 8 + 78
            return find(data, path[1:], pos + hdr, pos + size)
    return None


def ffmpeg(args, out):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(out)], check=True)


def main():
    tmp = Path(tempfile.mkdtemp())
    src = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
           "-t", "0.5", "-c:v", "libx264", "-threads", "1", "-g", "5", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-b:a", "16k", "-ac", "1", "-fflags", "+bitexact", "-map_metadata", "-1"]
    ffmpeg(src, tmp / "prog.mp4")
    ffmpeg(["-i", str(tmp / "prog.mp4"), "-c", "copy", "-fflags", "+bitexact",
            "-movflags", "+frag_keyframe+empty_moov+default_base_moof"], tmp / "frag.mp4")
    ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "0.3", "-c:v", "libx265",
            "-x265-params", "log-level=none:frame-threads=1:pools=none", "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
            "-fflags", "+bitexact", "-map_metadata", "-1"], tmp / "hevc.mp4")
    for name in ("prog.mp4", "frag.mp4", "hevc.mp4"):
        write("mp4_index", name, (tmp / name).read_bytes())

    # nal_subsamples: [flags][u16 config length][config][sample] (src/fuzz_api.rs)
    for name, hevc in (("frag.mp4", False), ("hevc.mp4", True)):
        data = (tmp / name).read_bytes()
        cfg_box = b"hvcC" if hevc else b"avcC"
        at = data.find(cfg_box) - 4
        size = struct.unpack_from(">I", data, at)[0]
        config = data[at + 8:at + size]
        # the first sample: stco/stsz of the progressive file, trun of the fragmented one
        if hevc:
            stsz = data.find(b"stsz") - 4
            first = struct.unpack_from(">I", data, stsz + 20)[0]
            stco = data.find(b"stco") - 4
            off = struct.unpack_from(">I", data, stco + 16)[0]
        else:
            trun = data.find(b"trun") - 4
            flags = struct.unpack_from(">I", data, trun + 8)[0] & 0xFFFFFF
            pos = trun + 16 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
            pos += 4 if flags & 0x100 else 0
            first = struct.unpack_from(">I", data, pos)[0]
            moof = data.find(b"moof") - 4
            moof_size = struct.unpack_from(">I", data, moof)[0]
            off = moof + moof_size + 8
        sample = data[off:off + first]
        write("nal_subsamples", f"{'hevc' if hevc else 'avc'}-first-sample",
              bytes([1 if hevc else 0]) + struct.pack(">H", len(config)) + config + sample)

    for i, p in enumerate(["/multi/manifest.mpd", "/multi/master.cbcs.m3u8", "/multi/video_180p_1/media.aes128.m3u8",
                           "/kids/cartoon/v_1/init.cenc.v1a2b3c4d.mp4", "/a/v_1/12.cbcs.v00000000.m4s",
                           "/a/v_1/3.v1a2b3c4d.m4s", "/.drm/key/8ba94ade6eb9449db44fa5beefaf43b0", "/.drm/clearkey",
                           "/player/kids/cartoon", "/.player/app.js", "/healthz", "/metrics",
                           "/a%2f..%2f..%2fetc/manifest.mpd", "/a/v/01.v00000000.m4s"]):
        write("route", f"path-{i:02}", p)
    for i, (length, header) in enumerate([(1000, "bytes=0-99"), (1000, "bytes=500-"), (1000, "bytes=-200"),
                                          (10, "bytes=0-0,5-9"), (0, "bytes=0-"), (2**40, "bytes=1099511627775-"),
                                          (100, "bytes = 1-2"), (100, "items=0-1")]):
        write("range", f"range-{i:02}", struct.pack(">Q", length) + header.encode())

    cfg = tmp / "c.toml"
    cfg.write_text("""
[keys.v]
kid = "0d6b0d2c-5f3c-4a39-9f4e-3c1a2b3c4d01"
key = "00112233445566778899aabbccddee01"
[keys.a]
kid = "0d6b0d2c-5f3c-4a39-9f4e-3c1a2b3c4d03"
key = "00112233445566778899aabbccddee03"
[keys.e]
kid = "0d6b0d2c-5f3c-4a39-9f4e-3c1a2b3c4d04"
key = "00112233445566778899aabbccddee04"
[policies.p]
dash = ["cenc", "cbcs"]
hls = ["cbcs", "aes128"]
key_delivery = "open"
drm_systems = ["clearkey", "widevine", "playready", "fairplay"]
license_urls = { playready = "https://pr.example/rightsmanager.asmx" }
keys = { video = "v", audio = "a", envelope = "e" }
[[assets]]
match = "**"
policy = "p"
""")
    doc = subprocess.run([str(ROOT / "target/release/drm-origin"), "keys", "export", "multi", "--config", str(cfg),
                          "--assets", str(ROOT / "assets")], check=True, capture_output=True).stdout
    write("cpix_import", "export-multi.xml", doc)

    jwk_rsa = {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "e": "AQAB",
               "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU"
                    "1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7"
                    "-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-Vt"
                    "eh2EpYg2ozWn6tRqKEYu5YOh3lPA0a8bVQh-N1kKrhkAjUPdw"}
    jwk_ec = {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    write("jwks", "jwks.json", json.dumps({"keys": [jwk_rsa, jwk_ec, {"kty": "oct", "k": "AAAA"}]}))
    write("jwks", "discovery.json", json.dumps({"issuer": "https://idp.example/",
                                                "jwks_uri": "https://idp.example/.well-known/jwks.json"}))
    if not ONLY or ONLY & {"device_objects", "client_media"}:
        device_seeds(tmp, tmp / "prog.mp4")
    print("seed corpora written to", OUT)


def device_seeds(tmp, mp4):
    """A real origin with device licensing over the tiny MP4: a joserfc device registers, and the
    objects it gets (and the media the client would decrypt) become seeds."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from joserfc import jwe, jws
    from joserfc.jwk import ECKey

    assets = tmp / "device-assets"
    assets.mkdir()
    (assets / "tiny.mp4").write_bytes(mp4.read_bytes())
    cfg = tmp / "device.toml"
    cfg.write_text(f"""
[storage]
stable_after_ms = 0
[keystore]
path = "{tmp}/state/keys.json"
[auth]
hmac_secret = "ZHJtLW9yaWdpbiBmdXp6IGNvcnB1cyBzZWNyZXQgKHB1YmxpYyEpISE="
[policies.dev]
dash = ["cenc"]
hls = ["cbcs", "aes128"]
device_licenses = "direct"
keys = {{ video = "auto", audio = "auto", envelope = "auto" }}
[[assets]]
match = "**"
policy = "dev"
[devices]
registry = "sqlite:{tmp}/state/devices.sqlite3"
secret_file = "{tmp}/state/device-master.key"
signing_key = "{tmp}/state/origin-signing.pem"
[licenses]
dir = "{tmp}/licenses"
""")
    proc = subprocess.Popen([str(BIN), "serve", "--assets", str(assets), "--config", str(cfg), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = None
        for line in proc.stdout:
            m = re.match(r"drm-origin listening on (\S+)", line)
            if m:
                base = m.group(1)
                break
        assert base, "the origin did not start"
        for _ in range(100):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        token = subprocess.run([str(BIN), "token", "--config", str(cfg), "--sub", "fuzz", "--ttl", "1h"],
                               check=True, capture_output=True, text=True).stdout.strip()
        enc, sig, dev = ECKey.generate_key("P-256"), ECKey.generate_key("P-256"), str(uuid.uuid4())
        payload = {"v": 1, "act": "register", "dev": dev, "iat": int(time.time()), "jti": uuid.uuid4().hex,
                   "aud": "/.drm/device/register", "enc": enc.as_dict(private=False), "sig": sig.as_dict(private=False)}
        request = jws.serialize_compact({"alg": "ES256", "kid": dev, "typ": "drm-origin/device-request+jws"},
                                        json.dumps(payload).encode(), sig, algorithms=["ES256"])
        req = urllib.request.Request(base + "/.drm/device/register", data=json.dumps({"request": request}).encode(),
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
        folder = tmp / "licenses" / "public" / "v1"
        lic = (folder / "d" / dev / "1" / "a" / "tiny.lic").read_text().strip()
        write("device_objects", "request.jws", request)
        write("device_objects", "certificate.jws", answer["certificate"])
        write("device_objects", "license.jws", lic)
        write("device_objects", "index.jws", (folder / "d" / dev / "1" / "index.json").read_text().strip())
        write("device_objects", "keys.json", (folder / "keys.json").read_text().strip())
        write("device_objects", "device-enc.jwk", json.dumps(enc.as_dict(private=True)))
        # A JWE to the fixed key that src/license/device::fuzz_objects opens (scalar 07…07), so
        # mutations reach AES key unwrapping and GCM.
        fixed = ECKey.import_key(ec.derive_private_key(int.from_bytes(b"\x07" * 32, "big"), ec.SECP256R1()))
        write("device_objects", "jwe-to-fuzz-key",
              jwe.encrypt_compact({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"},
                                  b'{"keys":[{"kid":"AAAAAAAAAAAAAAAAAAAAAA","k":"AAAAAAAAAAAAAAAAAAAAAA"}]}', fixed,
                                  algorithms=["ECDH-ES+A256KW", "A256GCM"]))

        def get(path):
            with urllib.request.urlopen(base + path, timeout=30) as r:
                return r.read()

        mpd = get("/tiny/manifest.mpd")
        write("client_media", "manifest.mpd", mpd)
        master = get("/tiny/master.m3u8")
        write("client_media", "master.m3u8", master)
        # The first video rendition's media playlists (cbcs, aes128) and their segments.
        rendition = re.search(rb"^([^#\s][^/\s]*)/media[^\s]*\.m3u8", master, re.M).group(1).decode()
        for variant in ("cbcs", "aes128"):
            playlist = get(f"/tiny/{rendition}/media.{variant}.m3u8")
            write("client_media", f"media.{variant}.m3u8", playlist)
            names = re.findall(rb'(?:URI="|^)([^"#\s]+\.(?:mp4|m4s|ts))', playlist, re.M)
            for name in names[:2]:
                n = name.decode()
                write("client_media", f"{variant}-{'init' if 'init' in n else 'segment'}", get(f"/tiny/{rendition}/{n}"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
