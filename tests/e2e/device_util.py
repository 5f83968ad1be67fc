"""Helpers for the device-licensing tests (test_device*.py).

The tests drive the origin three ways, so no single implementation judges itself:
* `drm-origin client …` (the reference client, Rust) for the flows a device runs;
* raw HTTP with device requests signed by **joserfc** (PyPI, independent JOSE) for every
  refusal, so the origin is shown to accept and refuse objects it did not make;
* joserfc (and npm `jose`, tests/browser/jose_oracle.mjs) to verify and open the origin's files.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from joserfc import jwe, jws
from joserfc.jwk import ECKey, KeySet

from conftest import ASSETS, BIN, ROOT, Origin
from services import Nginx, Postgres

JWE_ALGS = ["ECDH-ES+A256KW", "A256GCM"]
REQUEST_TYP = "drm-origin/device-request+jws"


AUTO_KEYS = '{ video = "auto", audio = "auto", envelope = "auto" }'


def config_text(tmp, registry, licenses_dir, extra_devices="", extra="", keystore=None, keys=AUTO_KEYS, key_defs=""):
    """An origin configuration with device licensing on: auto keys per asset (so each asset has
    its own KIDs), every variant, no raw key endpoint (key_delivery none: device licenses are
    the only way to a key). `keystore`: the [keystore] body (default: a file in `tmp`); `keys`
    and `key_defs`: the policy's keys and named [keys.*] tables."""
    keystore = keystore or f'path = "{tmp}/state/keys.json"'
    return f"""
[storage]
rescan_interval_ms = 200
stable_after_ms = 0
[keystore]
{keystore}
{key_defs}
[auth]
hmac_secret = "ZHJtLW9yaWdpbiBkZXZpY2UgdGVzdCBzZWNyZXQgKHB1YmxpYyEpISE="
issuer = "https://idp.test/"
audience = "drm-origin"
[policies.dev]
dash = ["cenc", "cbcs"]
hls = ["cbcs", "aes128", "cenc"]
drm_systems = ["clearkey"]
device_licenses = "direct"
keys = {keys}
[[assets]]
match = "**"
policy = "dev"
[devices]
registry = "{registry}"
secret_file = "{tmp}/state/device-master.key"
signing_key = "{tmp}/state/origin-signing.pem"
max_devices_per_subject = 4
max_domain_members = 3
register_claims = {{ groups = "entitled" }}
entitlement_grace_secs = 3600
{extra_devices}
[licenses]
dir = "{licenses_dir}"
regenerate_every_secs = 3600
{extra}
"""


def run(args, check=True, timeout=300, env=None):
    p = subprocess.run([str(BIN)] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check:
        assert p.returncode == 0, f"drm-origin {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr[-3000:]}"
    return p


def token(config, sub, groups=("entitled",), ttl="1h"):
    args = ["token", "--config", config, "--sub", sub, "--ttl", ttl]
    if groups:
        args += ["--groups", ",".join(groups)]
    return run(args).stdout.strip()


def client(store, *args, check=True):
    """`drm-origin client --store STORE …`; returns (returncode, parsed stdout or None, stderr)."""
    p = run(["client", "--store", store, *args], check=False)
    if check:
        assert p.returncode == 0, f"client {' '.join(map(str, args))} failed:\n{p.stderr[-3000:]}"
    out = None
    if p.stdout.strip():
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except ValueError:
            out = p.stdout
    return p.returncode, out, p.stderr


def refused(stderr, reason):
    """The client refused with `reason`: its own check (`refused: reason`) or the origin's JSON
    refusal (`… answered 403 reason`)."""
    return f"refused: {reason}" in stderr or f"answered " in stderr and stderr.rstrip().endswith(reason)


def get(url, timeout=30):
    req = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(base, path, body, tok=None, raw=None, timeout=30):
    """POST JSON; returns (status, parsed JSON or raw bytes)."""
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class PyDevice:
    """A device made with joserfc: its own ids and keys, and requests signed by joserfc."""

    def __init__(self, dev_id=None):
        self.id = dev_id or str(uuid.uuid4())
        self.enc = ECKey.generate_key("P-256")
        self.sig = ECKey.generate_key("P-256")
        self.gen = None

    def request(self, act, aud, gen=None, iat=None, jti=None, sig_key=None, **extra):
        payload = {"v": 1, "act": act, "dev": self.id, "iat": int(iat if iat is not None else time.time()),
                   "jti": jti or uuid.uuid4().hex, "aud": aud}
        if gen is not None:
            payload["gen"] = gen
        payload.update(extra)
        header = {"alg": "ES256", "kid": self.id, "typ": REQUEST_TYP}
        return jws.serialize_compact(header, json.dumps(payload).encode(), sig_key or self.sig, algorithms=["ES256"])

    def register_request(self, **kw):
        return self.request("register", "/.drm/device/register",
                            enc=self.enc.as_dict(private=False), sig=self.sig.as_dict(private=False), **kw)

    def register(self, base, tok):
        status, body = post(base, "/.drm/device/register", {"request": self.register_request()}, tok)
        assert status in (200, 201), (status, body)
        self.gen = body["gen"]
        return body


def keyset(jwks_text):
    return KeySet.import_key_set(json.loads(jwks_text))


def verify_file(path_or_text, ks):
    """joserfc's verdict on one of our JWS files: (header, payload dict)."""
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    obj = jws.deserialize_compact(text.strip(), ks, algorithms=["ES256"])
    return obj.protected, json.loads(obj.payload)


def b64d(s):
    import base64
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def unverified(text):
    """(header, payload) of a compact JWS, unverified (for tampering tests)."""
    h, p, _ = text.strip().split(".")
    return json.loads(b64d(h)), json.loads(b64d(p))


def open_license(text, enc_key):
    """joserfc opens a license's JWE with a device (or domain) key: (payload, ClearKey key set)."""
    _, payload = unverified(text)
    return payload, json.loads(jwe.decrypt_compact(payload["key"], enc_key, algorithms=JWE_ALGS).plaintext)


def resign(payload, header, pem_path):
    """Re-signs a tampered payload with the origin's own signing key (the last PEM block), so a
    test can show that the client's other checks hold on their own."""
    text = Path(pem_path).read_text()
    last = "-----BEGIN PRIVATE KEY-----" + text.split("-----BEGIN PRIVATE KEY-----")[-1]
    key = ECKey.import_key(last)
    return jws.serialize_compact(header, json.dumps(payload).encode(), key, algorithms=["ES256"])


def store_key(store, name):
    return ECKey.import_key(Path(store, f"{name}.pem").read_text())


def public_files(public):
    """Every file a static server can reach under `public`, relative paths."""
    public = Path(public)
    return sorted(str(p.relative_to(public)) for p in public.rglob("*") if p.is_file())


def check_public_tree(public, jwks_text):
    """Every reachable file is complete and signed (joserfc), and every index lists existing
    files with their digests. Returns (number of files, problems)."""
    import base64
    import hashlib
    ks = keyset(jwks_text)
    public = Path(public)
    problems = []
    files = public_files(public)
    for rel in files:
        if rel == "v1/keys.json":
            json.loads((public / rel).read_text())
            continue
        try:
            header, payload = verify_file(public / rel, ks)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            problems.append(f"{rel}: {type(e).__name__}: {e}")
            continue
        if rel.endswith("index.json"):
            for f in payload["files"]:
                p = public / f["path"]
                if not p.exists():
                    problems.append(f"{rel} lists missing {f['path']}")
                    continue
                digest = base64.urlsafe_b64encode(hashlib.sha256(p.read_bytes()).digest()).rstrip(b"=").decode()
                if digest != f["sha256"]:
                    problems.append(f"{rel}: digest of {f['path']} differs")
    return len(files), problems


def metric(origin, name):
    status, _, body = origin.get("/metrics")
    assert status == 200
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def access_lines(log_text):
    """The origin's access-log lines (target `access`, one per request)."""
    return [l for l in log_text.splitlines() if " access: " in l and " path=" in l]


def license_requests_in(log_text):
    """Access-log lines of requests to any of the origin's license, key, device or key-set
    endpoints (everything under /.drm/)."""
    return [l for l in access_lines(log_text) if " path=/.drm/" in l]


# /metrics series that move when the origin's license side answers anything: device endpoints,
# ClearKey licenses, raw keys, device licenses issued.
LICENSE_SERIES = ('origin_request_duration_seconds_count{kind="device"',
                  'origin_request_duration_seconds_count{kind="license"',
                  'origin_request_duration_seconds_count{kind="key"',
                  "origin_license_decisions_total", "origin_device_licenses_total")


def license_metrics(origin):
    return {name: metric(origin, name) for name in LICENSE_SERIES}


def copy_tree(src, dst):
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def node():
    p = shutil.which("node")
    assert p, "node is not installed (.ci/run installs it)"
    return p


def jose_oracle(*args):
    """tests/browser/jose_oracle.mjs with npm `jose` (next to its node_modules)."""
    p = subprocess.run([node(), str(ROOT / "tests" / "browser" / "jose_oracle.mjs"), *map(str, args)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"npm jose oracle failed:\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


class Stack:
    """One origin (two on PostgreSQL, sharing registry and keys), its license folder served by
    nginx, and helpers to run clients."""

    def __init__(self, tmp, backend, assets=ASSETS, **config_kw):
        self.tmp = Path(tmp)
        self.backend = backend
        self.assets = Path(assets)
        (self.tmp / "state").mkdir(parents=True)
        self.pg = None
        if backend == "postgres":
            # Scale-out as the README sets it up: one PostgreSQL database holds the registry and
            # the content keys of both nodes.
            self.pg = Postgres()
            registry = self.pg.url
            config_kw.setdefault("keystore", f'backend = "postgres"\nurl = "{self.pg.url}"')
        else:
            registry = f"sqlite:{self.tmp}/state/devices.sqlite3"
        self.registry = registry
        self.config_kw = config_kw
        self.licenses = self.tmp / "licenses"
        self.config = self.tmp / "origin.toml"
        self.config.write_text(config_text(self.tmp, registry, self.licenses, **config_kw))
        self.origin = Origin(self.assets, config=self.config)
        self.others = []
        if backend == "postgres":
            # A second node: same registry, key store, secret and signing key; its own folder.
            self.config_b = self.tmp / "origin-b.toml"
            self.config_b.write_text(config_text(self.tmp, registry, self.tmp / "licenses-b", **config_kw))
            self.others.append(Origin(self.assets, config=self.config_b))
        self.public = self.licenses / "public"
        self.nginx = Nginx.static(self.public)
        self.jwks = (self.public / "v1" / "keys.json").read_text()

    def tok(self, sub, **kw):
        return token(self.config, sub, **kw)

    def store(self, name):
        return self.tmp / "stores" / name

    def register(self, name, sub, origin=None):
        store = self.store(name)
        o = origin or self.origin
        _, out, _ = client(store, "register", "--origin", o.base_url, "--licenses", self.nginx.base_url,
                              "--token", self.tok(sub))
        return store, out

    def device_id(self, store):
        return json.loads(Path(store, "device.json").read_text())["device_id"]

    def close(self):
        for o in [self.origin, *self.others]:
            o.stop()
        self.nginx.close()
        if self.pg:
            self.pg.close()
