"""Device licensing: every refusal of the endpoints with its status and JSON reason (and
nothing written on refusal), revocation, tampered objects refused by the client check by
check, and independent JOSE oracles (PyPI joserfc, npm jose) on both sides: the origin
accepts requests joserfc signed, and joserfc / jose verify and open what the origin wrote."""
import base64
import hashlib
import json
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

import device_util as du
from conftest import ASSETS
from device_util import PyDevice, Stack

REG, LIC, RESET, UNREG, JOIN = ("/.drm/device/register", "/.drm/license", "/.drm/device/reset",
                                "/.drm/device/unregister", "/.drm/domain/join")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("device-refusals"), "sqlite")
    yield s
    s.close()


def snapshot(stack):
    """Everything a request could write: every registry row, every public file's bytes."""
    db = sqlite3.connect(f"file:{stack.registry.removeprefix('sqlite:')}?mode=ro", uri=True)
    rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in ("devices", "domains", "members", "seen")}
    db.close()
    files = {rel: hashlib.sha256((stack.public / rel).read_bytes()).hexdigest() for rel in du.public_files(stack.public)}
    return rows, files


def test_every_refusal_has_its_status(stack):
    base = stack.origin.base_url
    owner = stack.tok("ref-owner")
    d1, d3, d4, d5 = (PyDevice() for _ in range(4))
    for d in (d1, d3, d4, d5):
        d.register(base, owner)
    other = PyDevice()
    other.register(base, stack.tok("ref-other"))
    status, body = du.post(base, JOIN, {"request": d1.request("join", JOIN, gen=1)}, owner)
    assert status == 200, body
    dom = body["domain_id"]
    for d in (d3, d4):
        assert du.post(base, JOIN, {"request": d.request("join", JOIN, gen=1, domain=dom)}, owner)[0] == 200
    revoked = PyDevice()
    revoked.register(base, stack.tok("ref-rev"))
    assert du.post(base, UNREG, {"device_id": revoked.id}, stack.tok("ref-rev"))[0] == 200
    reset = PyDevice()
    reset.register(base, stack.tok("ref-reset"))
    assert du.post(base, RESET, {"device_id": reset.id}, stack.tok("ref-reset"))[0] == 200
    once = d1.request("license", LIC, gen=1, asset="progressive")
    status, body = du.post(base, LIC, {"request": once}, owner)
    assert status == 200 and body["license"], body

    before = snapshot(stack)
    wrong_sig = PyDevice()
    rsa_enc = {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
    stranger = PyDevice()
    expired = stack.tok("ref-owner", ttl="-1h")
    forged = owner[:-4] + ("AAAA" if not owner.endswith("AAAA") else "BBBB")
    cases = [
        ("body over 16 KiB", lambda: du.post(base, REG, None, owner, raw=b'{"request":"' + b"a" * 20000 + b'"}'),
         413, "request_too_large"),
        ("body not JSON", lambda: du.post(base, REG, None, owner, raw=b"not json"), 400, "malformed_request"),
        ("unknown body member", lambda: du.post(base, REG, {"request": wrong_sig.register_request(), "admin": True}, owner),
         400, "malformed_request"),
        ("request not a JWS", lambda: du.post(base, REG, {"request": "a.b.c"}, owner), 400, "malformed_request"),
        ("request for another endpoint", lambda: du.post(base, REG, {"request": d1.request("license", LIC, gen=1)}, owner),
         400, "malformed_request"),
        ("RSA device key", lambda: du.post(base, REG, {"request": stranger.request("register", REG, enc=rsa_enc,
                                                                                  sig=stranger.sig.as_dict(private=False))},
                                           owner), 400, "malformed_key"),
        ("request an hour old", lambda: du.post(base, LIC, {"request": d1.request("license", LIC, gen=1, asset="progressive",
                                                                                 iat=time.time() - 3600)}, owner),
         400, "stale_request"),
        ("no token", lambda: du.post(base, REG, {"request": stranger.register_request()}), 401, "missing_token"),
        ("token in the query string only", lambda: du.post(base, REG + "?token=" + owner,
                                                           {"request": stranger.register_request()}), 401, "missing_token"),
        ("expired token", lambda: du.post(base, REG, {"request": stranger.register_request()}, expired), 401, "expired"),
        ("forged token", lambda: du.post(base, REG, {"request": stranger.register_request()}, forged), 401, "bad_signature"),
        ("self-signature by another key", lambda: du.post(base, REG, {"request": wrong_sig.register_request(
            sig_key=PyDevice().sig)}, owner), 401, "bad_device_signature"),
        ("device request by another key", lambda: du.post(base, LIC, {"request": d1.request(
            "license", LIC, gen=1, asset="progressive", sig_key=PyDevice().sig)}, owner), 401, "bad_device_signature"),
        ("token without the register claim", lambda: du.post(base, REG, {"request": stranger.register_request()},
                                                             stack.tok("ref-owner", groups=())), 403,
         "missing_required_claim"),
        ("revoked device", lambda: du.post(base, LIC, {"request": revoked.request("license", LIC, gen=1, asset="progressive")},
                                           stack.tok("ref-rev")), 403, "device_revoked"),
        ("revoked device registers again", lambda: du.post(base, REG, {"request": revoked.register_request()},
                                                           stack.tok("ref-rev")), 403, "device_revoked"),
        ("fifth device of a subject", lambda: du.post(base, REG, {"request": stranger.register_request()}, owner), 403,
         "device_limit_reached"),
        ("license for a domain it is not in", lambda: du.post(base, LIC, {"request": d5.request(
            "license", LIC, gen=1, asset="progressive", domain=dom)}, owner), 403, "wrong_domain"),
        ("unknown device", lambda: du.post(base, LIC, {"request": PyDevice().request("license", LIC, gen=1,
                                                                                     asset="progressive")}, owner),
         404, "unknown_device"),
        ("another subject's device", lambda: du.post(base, LIC, {"request": other.request("license", LIC, gen=1,
                                                                                          asset="progressive")}, owner),
         404, "unknown_device"),
        ("owner resets another subject's device", lambda: du.post(base, RESET, {"device_id": other.id}, owner), 404,
         "unknown_device"),
        ("unknown domain", lambda: du.post(base, JOIN, {"request": d5.request("join", JOIN, gen=1,
                                                                              domain=str(uuid.uuid4()))}, owner),
         404, "unknown_domain"),
        ("unknown asset", lambda: du.post(base, LIC, {"request": d1.request("license", LIC, gen=1, asset="nope")}, owner),
         404, "unknown_asset"),
        ("device id taken (other keys)", lambda: du.post(base, REG, {"request": PyDevice(d1.id).register_request()}, owner),
         409, "device_id_taken"),
        ("replayed request", lambda: du.post(base, LIC, {"request": once}, owner), 409, "replayed_request"),
        ("generation ended by a reset", lambda: du.post(base, LIC, {"request": reset.request(
            "license", LIC, gen=1, asset="progressive")}, stack.tok("ref-reset")), 409, "stale_generation"),
        ("fourth member", lambda: du.post(base, JOIN, {"request": d5.request("join", JOIN, gen=1, domain=dom)}, owner),
         409, "domain_full"),
    ]
    bodies = {}
    failures = []
    for name, call, want_status, want_reason in cases:
        status, body = call()
        got = (status, body.get("reason") if isinstance(body, dict) else body)
        if got != (want_status, want_reason):
            failures.append(f"{name}: got {got}, want {(want_status, want_reason)}")
        bodies[name] = body
    assert not failures, "\n".join(failures)
    assert bodies["unknown device"] == bodies["another subject's device"], "another subject's ids look unknown"
    assert snapshot(stack) == before, "a refused request wrote to the registry or the license folder"
    refusals = du.metric(stack.origin, "origin_device_refusals_total")
    assert refusals >= len(cases)
    # Secrets never reach the log: tokens, and the content keys the licenses carry.
    log = stack.origin.log()
    for secret in (owner, expired, forged):
        assert secret not in log
    keys = du.run(["keys", "show", "progressive", "--config", stack.config, "--assets", ASSETS, "--show-keys"]).stdout
    for line in keys.splitlines():
        if " key " in line:
            assert line.rsplit(" ", 1)[1] not in log


def test_revoked_device(stack):
    """The owner revokes a device: its folder goes, it gets nothing new, for good."""
    store, _ = stack.register("revokee", "ravi")
    dev = stack.device_id(store)
    assert du.get(stack.nginx.url(f"/v1/d/{dev}/1/index.json"))[0] == 200
    status, body = du.post(stack.origin.base_url, UNREG, {"device_id": dev}, stack.tok("ravi"))
    assert (status, body["state"]) == (200, "revoked")
    assert du.get(stack.nginx.url(f"/v1/d/{dev}/1/index.json"))[0] == 404
    rc, _, err = du.client(store, "fetch-license", "--asset", "progressive", "--online-token", stack.tok("ravi"),
                           check=False)
    assert rc != 0 and du.refused(err, "device_revoked"), err
    rc, _, err = du.client(store, "fetch-license", "--asset", "progressive", check=False)
    assert rc != 0 and "404" in err, err


def tampered(text, part, index=10):
    parts = text.strip().split(".")
    raw = bytearray(du.b64d(parts[part]))
    raw[index % len(raw)] ^= 0x01
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ".".join(parts)


def test_tampering_is_refused(stack):
    """Each check of the client on its own: a license re-signed by the origin's key but changed in
    one field is refused with that field's reason; a changed byte fails the signature."""
    store, _ = stack.register("tamper", "tom")
    du.client(store, "fetch-license", "--asset", "progressive")
    good = Path(store, "licenses", "device~progressive.lic").read_text().strip()
    header, payload = du.unverified(good)
    pem = stack.tmp / "state" / "origin-signing.pem"

    def resigned(**changes):
        p = json.loads(json.dumps(payload))
        for k, v in changes.items():
            if k.startswith("bind_"):
                p["bind"][k[5:]] = v
            else:
                p[k] = v
        return du.resign(p, header, pem)

    foreign = du.PyDevice().sig
    now = int(time.time())
    du.client(store, "fetch-license", "--asset", "multi")
    multi = Path(store, "licenses", "device~multi.lic").read_text().strip()
    cases = {
        "bad_signature": [tampered(good, 1), tampered(good, 2)],
        "wrong_device": [resigned(bind_id=str(uuid.uuid4()))],
        "stale_generation": [resigned(bind_gen=payload["bind"]["gen"] + 1)],
        "wrong_device_key": [resigned(bind_thumb=du.PyDevice().enc.thumbprint())],
        "cannot_unwrap": [resigned(key=tampered(payload["key"], 3))],
        "expired": [resigned(exp=now - 3600)],
        "not_yet_valid": [resigned(nbf=now + 86400)],
        "rollback": [resigned(seq=payload["seq"] - 1)],
        "malformed": [resigned(kids=["00" * 16])],
        "unknown_signing_key": [du.jws.serialize_compact({**header, "kid": foreign.thumbprint()},
                                                         json.dumps(payload).encode(), foreign, algorithms=["ES256"])],
        "wrong_type": [du.resign(payload, {**header, "typ": "drm-origin/license-index+jws"}, pem)],
        "kid_mismatch": [multi],
    }
    url = stack.origin.url("/progressive/manifest.mpd")
    failures = []
    for reason, texts in cases.items():
        for i, text in enumerate(texts):
            f = stack.tmp / f"tampered-{reason}-{i}.lic"
            f.write_text(text)
            rc, _, err = du.client(store, "decrypt", url, "--license", f, "-o", stack.tmp / "x.mp4", check=False)
            if rc == 0 or not du.refused(err, reason):
                failures.append(f"{reason}[{i}]: rc={rc} {err.strip().splitlines()[-1:]}")
    assert not failures, "\n".join(failures)
    # The untouched license still plays.
    f = stack.tmp / "good.lic"
    f.write_text(good)
    du.client(store, "decrypt", url, "--license", f, "-o", stack.tmp / "good.mp4")

    # A file altered on the static server: the client refuses it, the next generation repairs it.
    dev = stack.device_id(store)
    index = stack.public / "v1" / "d" / dev / "1" / "index.json"
    index.write_text(tampered(index.read_text(), 1, 40))
    rc, _, err = du.client(store, "fetch-license", "--asset", "progressive", check=False)
    assert rc != 0 and du.refused(err, "bad_signature"), err
    report = json.loads(du.run(["licenses", "generate", "--config", stack.config, "--assets", ASSETS, "--json"]).stdout)
    assert report["written"] >= 1, report
    du.client(store, "fetch-license", "--asset", "progressive")


def test_independent_jose_oracles(stack):
    """joserfc and npm jose verify every object the origin wrote and open a license with the
    device's key; the origin accepts registrations and requests signed by joserfc."""
    store, _ = stack.register("oracle", "olga")
    dev = stack.device_id(store)
    du.client(store, "fetch-license", "--asset", "progressive")
    n, problems = du.check_public_tree(stack.public, stack.jwks)
    assert not problems and n > 5, problems
    ks = du.keyset(stack.jwks)
    state = json.loads(Path(store, "device.json").read_text())
    cert_header, cert = du.verify_file(state["certificate"], ks)
    assert cert_header["typ"] == "drm-origin/device-certificate+jws" and cert["dev"] == dev
    assert cert["thumb"] == du.store_key(store, "enc").thumbprint()
    lic = stack.public / "v1" / "d" / dev / "1" / "a" / "progressive.lic"
    payload, keyset = du.open_license(lic.read_text(), du.store_key(store, "enc"))
    kids = sorted(base64.urlsafe_b64decode(k["kid"] + "==").hex() for k in keyset["keys"])
    assert kids == sorted(payload["kids"]) and keyset["asset"] == "progressive"
    truth = du.run(["keys", "show", "progressive", "--config", stack.config, "--assets", ASSETS, "--show-keys"]).stdout
    for k in keyset["keys"]:
        kid = base64.urlsafe_b64decode(k["kid"] + "==").hex()
        key = base64.urlsafe_b64decode(k["k"] + "==").hex()
        assert f"kid {kid} key {key}" in truth.replace("-", ""), (kid, truth)

    jwks_file = stack.tmp / "jwks.json"
    jwks_file.write_text(stack.jwks)
    cert_file = stack.tmp / "cert.jws"
    cert_file.write_text(state["certificate"])
    out = du.jose_oracle(jwks_file, Path(store, "enc.pem"), lic, lic.parent.parent / "index.json", cert_file)
    assert out["verified"] == 3 and out["enc"] == "A256GCM", out
    assert sorted(out["kids"]) == kids == sorted(out["license_kids"])

    # The other direction: a device made entirely by joserfc.
    py = PyDevice()
    reg = py.register(stack.origin.base_url, stack.tok("olga"))
    _, cert = du.verify_file(reg["certificate"], ks)
    assert cert["thumb"] == py.enc.thumbprint()
    status, body = du.post(stack.origin.base_url, LIC, {"request": py.request("license", LIC, gen=1, asset="progressive")},
                           stack.tok("olga"))
    assert status == 200, body
    online = body["license"]
    _, keyset2 = du.open_license(online, py.enc)
    assert sorted(base64.urlsafe_b64decode(k["kid"] + "==").hex() for k in keyset2["keys"]) == kids
    # Online answer == the period's static file, byte for byte.
    static = du.get(stack.nginx.url(f"/v1/d/{py.id}/1/a/progressive.lic"))[1].decode()
    assert online == static
