"""Issue 14, operations: the demo configuration from the README's first command, TLS + HTTP/2
(curl against a certificate from a CA made here), certificate rotation, graceful drain and
readiness, Prometheus metrics read by the official parser, JSON access logs, `drm-origin check`,
`drm-origin package` (byte identity with the live origin, served by real nginx), and the systemd
unit checked by `systemd-analyze`. Browser playback of the same is in tests/browser/ops.mjs."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ASSETS, BIN, ROOT, Origin
from services import Nginx, free_port

DEMO = ROOT / "config" / "demo.toml"
DRM = ROOT / "tests" / "browser" / "drm.toml"
CURL = shutil.which("curl")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


# ------------------------------------------------------------------ demo (first README command)

def test_first_readme_command_serves_the_demo_and_prints_what_to_open():
    """`bash scripts/demo.sh` (the README's first command, here on a free port): protected,
    token-gated and clear assets, the printed URLs answer, and the printed token command mints
    a token the token-gated asset accepts."""
    proc = subprocess.Popen(["bash", "scripts/demo.sh", "--listen", "127.0.0.1:0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, deadline = [], time.time() + 300  # cargo run may have to build
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line.rstrip("\n"))
            if line.startswith("  ./") and " token " in line:
                break
        text = "\n".join(out)
        assert "drm-origin listening on http://127.0.0.1:" in text, text + proc.stderr.read(3000)
        base = re.search(r"listening on (http://\S+)", text).group(1)
        assert "DEMO" in text and "keys.demo_video" in text and "auth.hmac_secret" in text, text
        assert re.search(r"asset multi: protected \(cenc, cbcs, aes128\), keys delivered to anyone", text), text
        assert re.search(r"asset progressive: protected \(cenc, cbcs\), keys only with a valid token", text), text
        assert "asset fragmented: clear" in text, text
        urls = re.findall(r"(http://127\.0\.0\.1:\d+/\S+)", text)
        for u in urls:
            with urllib.request.urlopen(u.replace("&token=TOKEN", ""), timeout=10) as r:
                assert r.status == 200, u
        mpd = urllib.request.urlopen(base + "/multi/manifest.mpd").read().decode()
        assert 'value="cenc"' in mpd and "e2719d58-a985-b3c9-781a-b030af78d30e" in mpd
        assert "METHOD=SAMPLE-AES" in urllib.request.urlopen(base + "/multi/video_180p_1/media.cbcs.m3u8").read().decode()
        assert "METHOD=AES-128" in urllib.request.urlopen(base + "/multi/video_180p_1/media.aes128.m3u8").read().decode()
        assert "ContentProtection" not in urllib.request.urlopen(base + "/fragmented/manifest.mpd").read().decode()
        # The exact printed command, run by a shell from the repository root.
        cmd = next(l.strip() for l in out if l.startswith("  ./") and " token " in l)
        token = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        assert token.count(".") == 2

        def license(kid_hex, tok=None):
            kid = __import__("base64").urlsafe_b64encode(bytes.fromhex(kid_hex)).rstrip(b"=").decode()
            req = urllib.request.Request(base + "/.drm/clearkey", method="POST",
                                         data=json.dumps({"kids": [kid], "type": "temporary"}).encode(),
                                         headers={"Authorization": f"Bearer {tok}"} if tok else {})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        assert license("de30c0de000040008000000000000001") == 200          # open: anyone
        assert license("de30c0de000040008000000000000004") == 401          # token-gated, no token
        assert license("de30c0de000040008000000000000004", token) == 200   # with the printed command's token
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_demo_material_beyond_loopback_draws_a_loud_warning(tmp_path):
    """Binding all interfaces with the demo keys warns (nothing is sent off the machine: the
    test only reads the log); on loopback it does not."""
    for listen, warned in (("0.0.0.0:0", True), ("127.0.0.1:0", False)):
        log = tmp_path / f"log{warned}"
        with open(log, "wb") as err:
            p = subprocess.Popen([str(BIN), "serve", "--config", str(DEMO), "--assets", str(ASSETS), "--listen", listen],
                                 stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
            try:
                assert p.stdout.readline().startswith(b"drm-origin listening on http://")
                time.sleep(0.3)
            finally:
                p.terminate()
                p.wait(timeout=20)
        text = log.read_text()
        assert ("WARNING: serving the shipped DEMO keys/secret" in text) == warned, text[-2000:]


# ------------------------------------------------------------------ TLS and HTTP/2

def make_ca(d: Path, name="ca"):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", d / f"{name}.key", "-out", d / f"{name}.pem", "-subj", f"/CN=drm-origin test {name}",
                    "-days", "2"], check=True, capture_output=True)


def make_leaf(d: Path, ca="ca", out="srv"):
    """A server certificate for 127.0.0.1/localhost signed by `ca`; returns (cert, key)."""
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", d / f"{out}.key", "-out", d / f"{out}.csr", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    (d / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                           "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", d / f"{out}.csr", "-CA", d / f"{ca}.pem", "-CAkey",
                    d / f"{ca}.key", "-CAcreateserial", "-out", d / f"{out}.pem", "-days", "2", "-extfile", d / "ext"],
                   check=True, capture_output=True)
    return d / f"{out}.pem", d / f"{out}.key"


def tls_origin(tmp_path, extra=""):
    make_ca(tmp_path)
    cert, key = make_leaf(tmp_path)
    tls_port = free_port()
    cfg = tmp_path / "tls.toml"
    cfg.write_text(DRM.read_text().replace("[keys.vid]", f"""[storage]
rescan_interval_ms = 200
[server.tls]
cert = "{cert}"
key = "{key}"
listen = "127.0.0.1:{tls_port}"
{extra}
[keys.vid]""", 1))
    o = Origin(ASSETS, config=cfg)
    return o, f"https://127.0.0.1:{tls_port}", tmp_path / "ca.pem"


def curl(*args):
    r = run([CURL, "-sS", "--max-time", "20", *map(str, args)])
    return r


def test_https_h2_every_http_semantic(tmp_path):
    o, tls, ca = tls_origin(tmp_path)
    try:
        def head_of(*a):
            r = curl("--http2", "--cacert", ca, "-D", "-", "-o", tmp_path / "body", *a)
            assert r.returncode == 0, r.stderr
            return r.stdout, (tmp_path / "body").read_bytes()
        h, body = head_of(f"{tls}/multi/manifest.mpd")
        assert h.startswith("HTTP/2 200"), h
        mpd = body.decode()
        suffix = re.search(r'media="\$RepresentationID\$/\$Number\$(\.cenc\.v[0-9a-f]+\.m4s)"', mpd).group(1)
        seg = f"multi/video_180p_1/1{suffix}"
        full = urllib.request.urlopen(f"{o.base_url}/{seg}").read()
        h, body = head_of("-r", "100-199", f"{tls}/{seg}")
        assert h.startswith("HTTP/2 206") and re.search(rf"content-range: bytes 100-199/{len(full)}", h, re.I), h
        assert body == full[100:200]
        h, _ = head_of("-r", f"{len(full) + 10}-", f"{tls}/{seg}")
        assert h.startswith("HTTP/2 416") and f"bytes */{len(full)}" in h.lower(), h
        h, body = head_of("-I", f"{tls}/{seg}")
        assert h.startswith("HTTP/2 200") and re.search(rf"content-length: {len(full)}", h, re.I)
        etag = re.search(r"etag: (\S+)", h, re.I).group(1)
        h, _ = head_of("-H", f"If-None-Match: {etag}", f"{tls}/{seg}")
        assert h.startswith("HTTP/2 304"), h
        h, _ = head_of("-X", "OPTIONS", "-H", "Origin: https://player.example", "-H",
                       "Access-Control-Request-Method: POST", "-H", "Access-Control-Request-Headers: authorization",
                       f"{tls}/.drm/clearkey")
        assert h.startswith("HTTP/2 204") and re.search(r"access-control-allow-methods: .*POST", h, re.I), h
        kid = "i6lK3m65RJ20T6W-769DsA"
        h, body = head_of("-X", "POST", "-H", "Origin: https://player.example", "--data",
                          json.dumps({"kids": [kid], "type": "temporary"}), f"{tls}/.drm/clearkey")
        assert h.startswith("HTTP/2 200") and re.search(r"access-control-allow-origin: https://player.example", h, re.I), h
        assert json.loads(body)["keys"][0]["kid"] == kid
        # The cleartext listener stays HTTP/1.1 (CDNs pull over plain HTTP).
        r = curl("-o", "/dev/null", "-w", "%{http_version}", f"{o.base_url}/multi/manifest.mpd")
        assert r.stdout == "1.1", r.stdout
        # Without the test CA the handshake fails: the certificate is really checked.
        assert curl("--http2", f"{tls}/healthz").returncode != 0
    finally:
        o.stop()


def test_certificate_rotation_without_restart(tmp_path):
    o, tls, _ = tls_origin(tmp_path)
    port = int(tls.rsplit(":", 1)[1])

    def served_cert():
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca2.pem" if (tmp_path / "ca2.pem").exists() else tmp_path / "ca.pem"))
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s, ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)
    try:
        first = served_cert()
        make_ca(tmp_path, "ca2")
        new_cert, new_key = make_leaf(tmp_path, ca="ca2", out="new")
        # Rotate as a certificate manager does: write beside, rename into place.
        shutil.copy(new_key, tmp_path / "srv.key.tmp")
        shutil.copy(new_cert, tmp_path / "srv.pem.tmp")
        os.replace(tmp_path / "srv.key.tmp", tmp_path / "srv.key")
        os.replace(tmp_path / "srv.pem.tmp", tmp_path / "srv.pem")
        want = ssl.PEM_cert_to_DER_cert(new_cert.read_text())
        deadline = time.time() + 10
        while served_cert() != want and time.time() < deadline:
            time.sleep(0.2)
        assert served_cert() == want != first
        assert "TLS certificate reloaded" in o.log()
        r = curl("--http2", "--cacert", tmp_path / "ca2.pem", "-o", "/dev/null", "-w", "%{http_code}", f"{tls}/healthz")
        assert r.stdout == "200", r.stderr
        # A broken replacement is refused; the certificate in force stays.
        (tmp_path / "srv.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        wait_log(o, "TLS certificate not reloaded")
        assert served_cert() == want and o.alive()
        assert "BEGIN PRIVATE KEY" not in o.log()
    finally:
        o.stop()


def wait_log(o, text, timeout=10):
    deadline = time.time() + timeout
    while text not in o.log():
        assert time.time() < deadline, f"{text!r} not logged:\n{o.log()[-2000:]}"
        time.sleep(0.1)


# ------------------------------------------------------------------ drain and readiness

def slow_get(base_url, path):
    """A GET whose body is read slowly through a tiny receive window; returns the socket."""
    host, port = base_url.split("//")[1].split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return s


def big_body_config(tmp_path, drain):
    """A config whose demo-page library is a 48 MiB file: a response far larger than the
    kernel's socket buffers, so it stays in flight while the client does not read."""
    big = tmp_path / "big.js"
    with open(big, "wb") as f:
        f.write(os.urandom(1 << 20) * 48)
    cfg = tmp_path / "drain.toml"
    cfg.write_text(f'[server]\ndrain_secs = {drain}\n[player]\nscript = "{big}"\n')
    return cfg


def test_sigterm_drains_a_slow_download_and_refuses_new_connections(tmp_path):
    o = Origin(ASSETS, config=big_body_config(tmp_path, 20))
    try:
        big = "/.player/shaka-player.js"
        assert o.get("/readyz")[0] == 200
        s = slow_get(o.base_url, big)
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        o.proc.send_signal(signal.SIGTERM)
        wait_log(o, "draining")
        assert "connections=1" in o.log(), o.log()[-1000:]
        port = int(o.base_url.rsplit(":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        time.sleep(0.5)
        assert o.alive(), "exited while a download was in flight"
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        got = len(body)
        while got < length:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += len(chunk)
        assert got == length, (got, length)
        assert o.proc.wait(timeout=20) == 0
    finally:
        o.stop()


def test_drain_cuts_a_stalled_download_after_drain_secs(tmp_path):
    o = Origin(ASSETS, config=big_body_config(tmp_path, 1))
    try:
        s = slow_get(o.base_url, "/.player/shaka-player.js")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        started = time.time()
        o.proc.send_signal(signal.SIGTERM)
        assert o.proc.wait(timeout=15) == 0
        assert time.time() - started < 10
        assert "drain time over" in o.log()
    finally:
        o.stop()


def test_readyz_is_503_while_the_catalog_is_indexed(tmp_path):
    """The listener accepts before the first scan ends: /readyz says 503 until it is done,
    /healthz is 200 throughout. The scan must last long enough to be seen: since the compact
    index, 150 files took ~10 ms (a poll every 10 ms missed it); 4,000 take ~0.3 s here, and the
    first 503 comes ~13 ms after exec."""
    assets = tmp_path / "assets"
    assets.mkdir()
    for i in range(4000):
        os.link(ASSETS / "progressive.mp4", assets / f"p{i:04}.mp4")
    port = free_port()
    # stdout to /dev/null: the banner lists every asset, and an unread pipe would fill up.
    proc = subprocess.Popen([str(BIN), "serve", "--assets", str(assets), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = []
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    seen.append(r.status)
                    break
            except urllib.error.HTTPError as e:
                seen.append(e.code)
                if e.code == 503 and len([x for x in seen if x == 503]) == 1:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as h:
                        assert h.status == 200
                    code = urllib.request.urlopen  # an asset during indexing: 503, not 404
                    try:
                        code(f"http://127.0.0.1:{port}/p399/manifest.mpd", timeout=5)
                    except urllib.error.HTTPError as e2:
                        assert e2.code in (503,), e2.code
            except (ConnectionError, urllib.error.URLError):
                pass
            time.sleep(0.01)
        assert 503 in seen and seen[-1] == 200, seen[:5]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# ------------------------------------------------------------------ metrics and logs

def test_metrics_parse_with_prometheus_client(make_origin):
    from prometheus_client.parser import text_string_to_metric_families
    o = make_origin(config=ROOT / "tests" / "browser" / "license.toml")
    mpd = o.get("/multi/manifest.mpd")[2].decode()
    media = re.search(r'media="\$RepresentationID\$/\$Number\$(\.cenc\.v[0-9a-f]+\.m4s)"', mpd).group(1)
    for _ in range(3):
        assert o.get(f"/multi/video_180p_1/1{media}")[0] == 200
    assert o.get("/.drm/clearkey", method="POST")[0] in (400, 401)
    assert o.get("/.drm/key/8ba94ade6eb9449db44fa5beefaf43b0")[0] == 401
    token = run([str(BIN), "token", "--config", str(ROOT / "tests/browser/license.toml"), "--groups", "entitled"]).stdout.strip()
    assert o.get("/.drm/key/8ba94ade6eb9449db44fa5beefaf43b0", headers={"Authorization": f"Bearer {token}"})[0] == 200
    fams = {f.name: f for f in text_string_to_metric_families(o.get("/metrics")[2].decode())}
    h = fams["origin_request_duration_seconds"]
    assert h.type == "histogram"
    count = {(s.labels["kind"], s.labels["variant"]): s.value for s in h.samples if s.name.endswith("_count")}
    assert count[("segment", "cenc")] == 3 and count[("manifest", "cenc")] >= 1, count
    buckets = [s for s in h.samples if s.name.endswith("_bucket") and s.labels["kind"] == "segment"]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 3
    assert all(a.value <= b.value for a, b in zip(buckets, buckets[1:]))
    cache = {s.labels["result"]: s.value for s in fams["origin_cache_requests"].samples}
    assert cache["hit"] >= 2 and cache["miss"] >= 1, cache
    assert 0 < fams["origin_cache_hit_ratio"].samples[0].value < 1
    decisions = {(s.labels["outcome"], s.labels["reason"]): s.value for s in fams["origin_license_decisions"].samples}
    assert decisions[("denied", "missing_token")] >= 1 and decisions[("granted", "ok")] == 1, decisions
    states = {s.labels["state"]: s.value for s in fams["origin_assets"].samples}
    assert states["ready"] >= 4 and states["broken"] == 0, states
    sent = {s.labels["kind"]: s.value for s in fams["origin_response_bytes"].samples}
    assert sent["segment"] > 0 and sent["key"] >= 16


def test_json_access_logs(tmp_path, make_origin):
    cfg = tmp_path / "json.toml"
    cfg.write_text('[log]\nformat = "json"\n')
    o = make_origin(config=cfg)
    assert o.get("/multi/manifest.mpd?token=SECRET-TOKEN-VALUE")[0] == 200
    time.sleep(0.3)
    lines = [json.loads(l) for l in o.log().splitlines() if l.strip()]
    access = [l for l in lines if l.get("target") == "access" and l.get("path") == "/multi/manifest.mpd"]
    assert access and access[0]["status"] == 200 and access[0]["asset"] == "multi" and access[0]["level"] == "INFO"
    assert "SECRET-TOKEN-VALUE" not in o.log()
    bad = tmp_path / "bad.toml"
    bad.write_text('[log]\nformat = "xml"\n')
    r = run([str(BIN), "check", "--config", str(bad)])
    assert r.returncode == 1 and "line 2: log.format: 'xml' is not one of text, json" in r.stdout, r.stdout


# ------------------------------------------------------------------ drm-origin check

def test_check_reports_config_lines_assets_and_file_problems(tmp_path):
    r = run([str(BIN), "check", "--config", str(DEMO)], cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check: ok" in r.stdout
    assert re.search(r"video_180p_1 +avc1\.64000c +320x180 +3 segments +video kid de30c0de-0000-4000-8000-000000000001", r.stdout), r.stdout
    assert "policy demo_token (dash cenc, hls cbcs" in r.stdout and "DEMO" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nlisten = "nowhere"\ndrain_secs = 99999\n\n[policies.p]\ndash = ["cenc"]\nkeys = { video = "missing" }\n')
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS, assets)
    (assets / "broken.mp4").write_bytes((ASSETS / "progressive.mp4").read_bytes()[:5000])
    r = run([str(BIN), "check", "--config", str(bad), "--assets", str(assets)])
    assert r.returncode == 1, r.stdout
    assert re.search(r"line 2: server.listen: 'nowhere'", r.stdout), r.stdout
    assert re.search(r"line 3: server.drain_secs: 99999 is above 3600", r.stdout), r.stdout
    assert re.search(r"line \d+: policies.p.*missing", r.stdout), r.stdout
    assert re.search(rf"error: {re.escape(str(assets / 'broken.mp4'))}: .+", r.stdout), r.stdout
    assert "asset multi:" in r.stdout  # the rest of the folder is still checked


# ------------------------------------------------------------------ drm-origin package

def test_package_is_byte_identical_to_the_live_origin_and_nginx_serves_it(tmp_path, make_origin):
    out = tmp_path / "export"
    r = run([str(BIN), "package", "multi", "--out", str(out), "--config", str(DRM)], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    m = re.search(r"packaged multi: (\d+) files, .* into", r.stdout)
    assert m, r.stdout
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) == int(m.group(1)) > 50
    names = {p.name for p in files}
    for v in ("cenc", "cbcs"):
        assert f"manifest.{v}.mpd" in names and any(n.startswith(f"1.{v}.v") for n in names)
    assert "master.aes128.m3u8" in names and "init.mp4" in " ".join(names) or any(n.startswith("init.v") for n in names)
    o = make_origin(config=DRM)
    ngx = Nginx.static(out)
    try:
        for p in files:
            rel = "/" + str(p.relative_to(out))
            status, _, live = o.get(rel)
            assert status == 200 and live == p.read_bytes(), rel
            with urllib.request.urlopen(ngx.url(rel)) as resp:
                assert resp.read() == live, rel
        # Manifests refer to segments by relative URL only.
        for p in files:
            if p.suffix in (".mpd", ".m3u8"):
                text = p.read_text()
                assert "http://" + o.base_url.split("//")[1] not in text, p
    finally:
        ngx.close()
    only = tmp_path / "cbcs"
    r = run([str(BIN), "package", "multi", "--out", str(only), "--variant", "cbcs", "--config", str(DRM)], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    got = {p.name for p in only.rglob("*") if p.is_file()}
    assert "master.cbcs.m3u8" in got and not any(".cenc." in n or "aes128" in n for n in got), got
    r = run([str(BIN), "package", "nope", "--out", str(tmp_path / "x"), "--config", str(DRM)], cwd=ROOT)
    assert r.returncode == 1 and "no asset nope" in r.stderr


# ------------------------------------------------------------------ service and container files

def test_systemd_unit_verifies_and_is_hardened(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing (scripts/setup.sh installs systemd)"
    unit = (ROOT / "deploy" / "drm-origin.service").read_text()
    for directive in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                      "ReadWritePaths=/var/lib/drm-origin", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert directive in unit, directive
    # verify checks that ExecStart's binary exists: point it at the one we built.
    test_unit = tmp_path / "drm-origin.service"
    test_unit.write_text(unit.replace("/usr/local/bin/drm-origin", str(BIN)))
    r = run([analyze, "verify", str(test_unit)])
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(test_unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    assert "strictly" in run([analyze, "verify", str(broken)]).stderr
    r = run([analyze, "security", "--offline=yes", str(test_unit)])
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout).group(1))
    assert score < 2.0, r.stdout[-2000:]
    # The command line the unit runs is one the binary accepts.
    args = re.search(r"^ExecStart=\S+ (.*)$", unit, re.M).group(1).split()
    assert run([str(BIN), *args, "--help"]).returncode == 0


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+(?: AS (\S+))?", text, re.M)
    assert len(stages) >= 2
    final = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER (?!root)\S+", final, re.M)
    assert re.search(r"^HEALTHCHECK .*CMD .*http://127\.0\.0\.1:8080/healthz", final, re.M | re.S)
    assert re.search(r'^VOLUME \["/var/lib/drm-origin"\]', final, re.M)
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / src).exists(), src
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", final, re.M).group(1))
    assert run([str(BIN), *cmd, "--help"]).returncode == 0
