"""Keys published by an identity provider (issue 5): JWKS found by OpenID Connect discovery,
refreshed periodically, with signing-key rollover.

A small identity provider runs here (Python's http.server, over plain HTTP or over TLS with a CA
made for the test): it serves `/.well-known/openid-configuration` and the JWKS it names, and the
test changes the published keys while the real server runs. Tokens are signed by PyJWT with keys
from `cryptography`; JWKs are written by PyJWT's `to_jwk`. The server under test refreshes every
second (`jwks_refresh_secs = 1`), so each scenario waits, by polling with a generous deadline,
for the change to show: no timing is asserted.

Scenarios (the acceptance of the issue): during an overlap tokens of both keys pass; after the old
key is gone its tokens fail with `unknown_key`; when the provider is down, or serves garbage, the
last good keys still verify; a `kid` nobody publishes is refused without being tried against the
other keys. Also: an unknown `kid` makes the server refresh at once (rate-limited), discovery
issuer mismatch and TLS failures leave no keys and say why in the log, and HS/RS confusion and
`alg: none` are refused with a JWKS too.
"""
import datetime
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest

import drm_util as du
import license_util as lu
from conftest import BIN, Origin
from test_license import K, KEY, KID, license, granted

ISSUER = lu.ISSUER


class IdP:
    """A local identity provider: discovery document + JWKS, keys switchable at run time."""

    def __init__(self, issuer=ISSUER, tls=None):
        self.issuer = issuer
        self.jwks = {"keys": []}
        self.mode = "ok"  # ok | garbage | error
        self.jwks_uri = None  # None: this server's /keys
        self.hits = {"discovery": 0, "jwks": 0}
        idp = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if idp.mode == "error":
                    return self.send(503, b'{"error":"maintenance"}')
                if self.path == "/.well-known/openid-configuration":
                    idp.hits["discovery"] += 1
                    doc = {"issuer": idp.issuer, "jwks_uri": idp.jwks_uri or f"{idp.base}/keys",
                           "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                    return self.send(200, json.dumps(doc).encode())
                if self.path == "/keys":
                    idp.hits["jwks"] += 1
                    if idp.mode == "garbage":
                        return self.send(200, b"<html>not a key set</html>")
                    return self.send(200, json.dumps(idp.jwks).encode())
                self.send(404, b"{}")

            def send(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        port = self.server.server_address[1]
        host = "127.0.0.1"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert"], tls["key"])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            host = "localhost"
        self.base = f"{'https' if tls else 'http'}://{host}:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def discovery_url(self):
        return f"{self.base}/.well-known/openid-configuration"

    def publish(self, *entries):
        """Publish (kid, KeyPair) entries as the JWKS."""
        keys = []
        for kid, pair in entries:
            algo = jwt.algorithms.RSAAlgorithm if pair.alg.startswith(("RS", "PS")) else jwt.algorithms.ECAlgorithm
            jwk = json.loads(algo.to_jwk(pair.private.public_key()))
            jwk["use"] = "sig"
            if kid is not None:  # (None, pair): a key published without a kid
                jwk["kid"] = kid
            keys.append(jwk)
        self.jwks = {"keys": keys}

    def down(self):
        """Stop answering: the port is closed (connection refused)."""
        self.server.shutdown()
        self.server.server_close()


def config(idp_url, extra=""):
    return (du.STORAGE + "".join(du.key_table(n, *v) for n, v in K.items()) +
            f'[auth]\nopenid_discovery_url = "{idp_url}"\njwks_refresh_secs = 1\n'
            f'jwks_min_refresh_secs = 1\nissuer = "{ISSUER}"\naudience = "{lu.AUDIENCE}"\n'
            'required_claims = { groups = "entitled" }\n' + extra +
            '[policies.polA]\ndash = ["cenc"]\nhls = ["cbcs"]\nkey_delivery = "token"\n'
            'keys = { video = "vidA", audio = "audA" }\n'
            '[[assets]]\nmatch = "movieA"\npolicy = "polA"\n')


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return Path(tmp_path_factory.mktemp("jwks"))


@pytest.fixture(scope="module")
def assets(work):
    root = work / "assets"
    du.asset_folder(root, "movieA", [du.SRC_VIDEO, du.SRC_AUDIO])
    return root


@pytest.fixture(scope="module")
def pairs():
    return {"a": lu.rsa_pair(), "b": lu.rsa_pair(), "c": lu.ec_pair(), "x": lu.rsa_pair(), "y": lu.rsa_pair()}


def start(work, assets, idp_url, name, extra=""):
    cfg = work / f"{name}.toml"
    cfg.write_text(config(idp_url, extra))
    return Origin(assets, config=cfg)


def token(pair, kid, **over):
    return pair.sign(lu.claims(**over), headers={"kid": kid} if kid else None)


def lic(o, tok):
    """(status, reason or granted keys) of a license for movieA's video key."""
    st, _, body = license(o, tok, ["vidA"])
    return st, (granted(body) if st == 200 else json.loads(body)["reason"])


def wait_until(what, cond, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"not within {timeout} s: {what}")


def test_rollover_overlap_then_old_key_gone(work, assets, pairs):
    idp = IdP()
    idp.publish(("key-a", pairs["a"]))
    o = start(work, assets, idp.discovery_url, "rollover")
    try:
        ta, tb = token(pairs["a"], "key-a"), token(pairs["b"], "key-b")
        st, got = lic(o, ta)
        assert st == 200 and got == {KID["vidA"]: KEY["vidA"]}, got
        assert idp.hits["discovery"] >= 1 and idp.hits["jwks"] >= 1
        # Not yet published: refused as an unknown key (never tried against key-a).
        assert lic(o, tb) == (401, "unknown_key")
        # Overlap: both keys in the document, both generations of tokens pass.
        idp.publish(("key-a", pairs["a"]), ("key-b", pairs["b"]))
        wait_until("key-b tokens accepted", lambda: lic(o, tb)[0] == 200)
        assert lic(o, ta)[0] == 200
        # The old key retired: its tokens fail, the new ones keep passing.
        idp.publish(("key-b", pairs["b"]))
        wait_until("key-a tokens refused", lambda: lic(o, ta) == (401, "unknown_key"))
        assert lic(o, tb)[0] == 200
        # A token claiming key-b's id but signed with another key is a bad signature.
        assert lic(o, token(pairs["x"], "key-b")) == (401, "bad_signature")
        assert "JWKS signing keys changed" in o.log()
    finally:
        o.stop()
        idp.down()


def test_provider_down_or_broken_keeps_last_good_keys(work, assets, pairs):
    idp = IdP()
    idp.publish(("key-a", pairs["a"]), ("key-c", pairs["c"]))
    o = start(work, assets, idp.discovery_url, "down")
    try:
        ta, tc = token(pairs["a"], "key-a"), token(pairs["c"], "key-c")
        assert lic(o, ta)[0] == 200 and lic(o, tc)[0] == 200  # RS256 and ES256 from one JWKS
        # Garbage and errors are refresh failures, not an empty key set.
        for mode in ("garbage", "error"):
            idp.mode = mode
            before = failures(o)
            wait_until(f"a failed refresh ({mode})", lambda: failures(o) >= before + 2)
            assert lic(o, ta)[0] == 200 and lic(o, tc)[0] == 200, mode
        idp.mode = "ok"
        idp.down()
        before = failures(o)
        wait_until("failed refreshes with the provider down", lambda: failures(o) >= before + 2)
        assert lic(o, ta)[0] == 200 and lic(o, tc)[0] == 200
        log = o.log()
        assert "JWKS refresh failed; the last good keys stay in force" in log
        assert "not JSON" in log and "503" in log and "cannot connect" in log, log[-3000:]
        assert o.alive()
    finally:
        o.stop()


def failures(o):
    st, _, body = o.get("/metrics")
    assert st == 200
    for line in body.decode().splitlines():
        if line.startswith("origin_jwks_refresh_failures_total "):
            return int(line.split()[1])
    pytest.fail("no origin_jwks_refresh_failures_total in /metrics")


def test_unknown_kid_triggers_one_rate_limited_refresh(work, assets, pairs):
    """With an hour between periodic refreshes, a key published after start is found at once
    when a token names it; a flood of unknown kids costs at most one fetch per min interval."""
    idp = IdP()
    idp.publish(("key-a", pairs["a"]))
    cfg = work / "ondemand.toml"
    # An RSA key in the configuration file besides the JWKS: a token naming an unpublished kid
    # is tried against that key first (bad signature), and must still make the server look at
    # the provider. An HMAC secret too, which keeps working.
    pem = pairs["y"].write(work / "ondemand-y.pem")
    cfg.write_text(config(idp.discovery_url, extra=f'hmac_secret = "{lu.HMAC_SECRET_B64}"\npublic_keys = ["{pem}"]\n')
                   .replace("jwks_refresh_secs = 1", "jwks_refresh_secs = 3600")
                   .replace("jwks_min_refresh_secs = 1", "jwks_min_refresh_secs = 2"))
    o = Origin(assets, config=cfg)
    try:
        assert lic(o, token(pairs["a"], "key-a"))[0] == 200
        assert lic(o, lu.hs256(lu.claims()))[0] == 200
        time.sleep(2.2)
        idp.publish(("key-a", pairs["a"]), ("key-b", pairs["b"]))
        fetched = idp.hits["jwks"]
        assert lic(o, token(pairs["b"], "key-b"))[0] == 200
        assert idp.hits["jwks"] == fetched + 1
        # Unknown kids right after: refused, and no fetch (rate limit).
        fetched = idp.hits["jwks"]
        for i in range(20):
            # Tried against y (the file's key, which has no id) and failed: the kid names no
            # key we know, so the reason is the README's unknown_key (issue 13.5b).
            assert lic(o, token(pairs["x"], f"nobody-{i}")) == (401, "unknown_key")
        assert idp.hits["jwks"] == fetched, "unknown kids made the server fetch the JWKS in a loop"
    finally:
        o.stop()
        idp.down()


@pytest.mark.parametrize("sources", ["jwks", "jwks+public_keys", "jwks+hmac", "jwks+public_keys+hmac"])
def test_reasons_match_the_readme_with_every_key_source(work, assets, pairs, sources):
    """Issue 13.5b: a token whose kid left the JWKS is `unknown_key` whatever else is configured
    (it was `bad_signature` with public_keys beside the JWKS); a published kid with a foreign
    signature is `bad_signature`; the file's own keys keep verifying their tokens."""
    idp = IdP()
    idp.publish(("key-a", pairs["a"]), ("key-b", pairs["b"]))
    extra = ""
    if "public_keys" in sources:
        extra += f'public_keys = ["{pairs["y"].write(work / f"src-{sources}-y.pem")}"]\n'
    if "hmac" in sources:
        extra += f'hmac_secret = "{lu.HMAC_SECRET_B64}"\n'
    o = start(work, assets, idp.discovery_url, f"sources-{sources}", extra)
    try:
        ta = token(pairs["a"], "key-a")
        assert lic(o, ta)[0] == 200
        idp.publish(("key-b", pairs["b"]))
        wait_until("key-a left the JWKS", lambda: lic(o, ta)[0] == 401)
        assert lic(o, ta) == (401, "unknown_key"), sources
        assert lic(o, token(pairs["x"], "never-published")) == (401, "unknown_key"), sources
        assert lic(o, token(pairs["x"], "key-b")) == (401, "bad_signature"), sources
        assert lic(o, token(pairs["b"], "key-b"))[0] == 200
        if "public_keys" in sources:
            assert lic(o, token(pairs["y"], None))[0] == 200
        if "hmac" in sources:
            assert lic(o, lu.hs256(lu.claims()))[0] == 200
    finally:
        o.stop()
        idp.down()


def test_attacks_with_published_keys(work, assets, pairs):
    idp = IdP()
    idp.publish(("key-a", pairs["a"]))
    o = start(work, assets, idp.discovery_url, "attacks")
    try:
        c = lu.claims()
        # alg none naming the published key.
        assert lic(o, lu.raw_token({"alg": "none", "typ": "JWT", "kid": "key-a"}, c))[0] == 401
        # HS256 keyed with the published RSA key (PEM and JWK text): the key's type fixes RS/PS.
        jwk_text = jwt.algorithms.RSAAlgorithm.to_jwk(pairs["a"].private.public_key()).encode()
        for secret in (pairs["a"].public_pem, jwk_text):
            forged = lu.raw_token({"alg": "HS256", "typ": "JWT", "kid": "key-a"}, c, signing_input_key=secret)
            assert lic(o, forged) == (401, "algorithm_not_allowed")
        # Tampered payload, expired, wrong issuer (missing trailing slash), wrong audience.
        good = token(pairs["a"], "key-a")
        h, p, s = good.split(".")
        tampered = json.loads(lu.unb64url(p))
        tampered["groups"] = ["entitled", "admin"]
        assert lic(o, f"{h}.{lu.b64url(json.dumps(tampered).encode())}.{s}") == (401, "bad_signature")
        assert lic(o, token(pairs["a"], "key-a", exp=int(time.time()) - 3600)) == (401, "expired")
        assert lic(o, token(pairs["a"], "key-a", iss=ISSUER.rstrip("/"))) == (401, "wrong_issuer")
        assert lic(o, token(pairs["a"], "key-a", aud="other")) == (401, "wrong_audience")
        # A token without a kid is tried against the published keys (and fails if foreign).
        assert lic(o, token(pairs["a"], None))[0] == 200
        assert lic(o, token(pairs["x"], None)) == (401, "bad_signature")
        # Valid, but not entitled: 403.
        assert lic(o, token(pairs["a"], "key-a", groups=["other"])) == (403, "missing_required_claim")
        log = o.log()
        assert good not in log and s not in log
    finally:
        o.stop()
        idp.down()


def test_key_count_is_bounded(work, assets, pairs):
    """A document with more keys than the server takes (32): the first ones verify, the rest
    are left out with a logged reason (a token without kid is tried against every key, so the
    count bounds what one forged token costs)."""
    idp = IdP()
    idp.publish(*[(f"k{i}", pairs["a"]) for i in range(40)])
    o = start(work, assets, idp.discovery_url, "many")
    try:
        assert lic(o, token(pairs["a"], "k0"))[0] == 200
        assert lic(o, token(pairs["a"], "k31"))[0] == 200
        assert lic(o, token(pairs["a"], "k39")) == (401, "unknown_key")
        assert lic(o, token(pairs["x"], None)) == (401, "bad_signature")
        assert "more than 32 usable keys" in o.log()
    finally:
        o.stop()
        idp.down()


def test_published_key_without_kid(work, assets, pairs):
    """A published key without a kid verifies tokens without one; a token naming a kid nobody
    publishes is an unknown key, not tried against it."""
    idp = IdP()
    idp.publish((None, pairs["a"]))
    o = start(work, assets, idp.discovery_url, "nokid")
    try:
        assert lic(o, token(pairs["a"], None))[0] == 200
        assert lic(o, token(pairs["a"], "whatever")) == (401, "unknown_key")
    finally:
        o.stop()
        idp.down()


def test_discovery_issuer_mismatch_loads_no_keys(work, assets, pairs):
    idp = IdP(issuer=ISSUER.rstrip("/"))  # trailing slash missing: a different issuer
    idp.publish(("key-a", pairs["a"]))
    o = start(work, assets, idp.discovery_url, "issuer")
    try:
        assert lic(o, token(pairs["a"], "key-a")) == (401, "no_verification_keys")
        assert idp.hits["jwks"] == 0, "the JWKS of a provider with another issuer was fetched"
        assert "discovery document names issuer" in o.log()
    finally:
        o.stop()
        idp.down()


def test_jwks_url_without_discovery(work, assets, pairs):
    idp = IdP()
    idp.publish(("key-c", pairs["c"]))
    cfg = work / "direct.toml"
    cfg.write_text(config(idp.discovery_url).replace(
        f'openid_discovery_url = "{idp.discovery_url}"', f'jwks_url = "{idp.base}/keys"'))
    o = Origin(assets, config=cfg)
    try:
        assert lic(o, token(pairs["c"], "key-c"))[0] == 200
        assert idp.hits["discovery"] == 0
    finally:
        o.stop()
        idp.down()


@pytest.fixture(scope="module")
def tls_files(work):
    """A CA and a server certificate for localhost / 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drm-origin test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = {"ca": work / "ca.pem", "cert": work / "idp.pem", "key": work / "idp.key"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return out


def test_https_discovery_trusts_only_configured_roots(work, assets, pairs, tls_files):
    idp = IdP(tls=tls_files)
    idp.publish(("key-a", pairs["a"]))
    # Trusted through auth.jwks_ca_file: keys load over TLS.
    o = start(work, assets, idp.discovery_url, "tls", extra=f'jwks_ca_file = "{tls_files["ca"]}"\n')
    try:
        assert lic(o, token(pairs["a"], "key-a"))[0] == 200
    finally:
        o.stop()
    # Discovery over TLS naming a plain-HTTP jwks_uri: refused (anyone on the path could insert
    # a signing key), the JWKS is never fetched.
    idp.jwks_uri = idp.base.replace("https://", "http://") + "/keys"
    o = start(work, assets, idp.discovery_url, "tls-downgrade", extra=f'jwks_ca_file = "{tls_files["ca"]}"\n')
    try:
        assert lic(o, token(pairs["a"], "key-a")) == (401, "no_verification_keys")
        assert "jwks_uri is http:// but the discovery document came over https" in o.log()
    finally:
        o.stop()
    idp.jwks_uri = None
    # The same provider without its CA: the Mozilla roots do not vouch for it, no key is loaded.
    o = start(work, assets, idp.discovery_url, "tls-untrusted")
    try:
        assert lic(o, token(pairs["a"], "key-a")) == (401, "no_verification_keys")
        log = o.log()
        assert "TLS with localhost" in log and "certificate" in log.lower(), log[-2000:]
    finally:
        o.stop()
        idp.down()


@pytest.mark.parametrize("case", [
    ("both", 'jwks_url = "http://127.0.0.1:9/keys"\n', "auth.jwks_url: set either"),
    ("scheme", None, "scheme is not http or https"),
    ("ca", 'jwks_ca_file = "/nonexistent/ca.pem"\n', "auth.jwks_ca_file: cannot read CA file"),
    ("refresh", "jwks_refresh_secs = 0\n", None),
    ("min", None, "auth.jwks_min_refresh_secs: 0 is not between 1 and 3600"),
])
def test_bad_jwks_config_refused_at_start(work, assets, case):
    name, extra, expected = case
    text = config("http://127.0.0.1:9/.well-known/openid-configuration", extra or "")
    if name == "scheme":
        text = text.replace("http://127.0.0.1:9/", "ftp://127.0.0.1:9/")
    if name == "min":
        text = text.replace("jwks_min_refresh_secs = 1", "jwks_min_refresh_secs = 0")
    if name == "refresh":
        text = text.replace("jwks_refresh_secs = 1\n", "")
        expected = "auth.jwks_refresh_secs: 0 is not between 1 and 86400"
    cfg = work / f"bad-{name}.toml"
    cfg.write_text(text)
    p = subprocess.run([str(BIN), "serve", "--assets", str(assets), "--listen", "127.0.0.1:0", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "listening on" not in p.stdout
    assert expected in p.stderr, p.stderr
