"""License service (issue 5): W3C ClearKey licenses and raw keys under JWT entitlement.

One server, configured with an HMAC secret, an RSA and an EC P-256 public key (generated here
with `cryptography`), an exact issuer, an audience, `required_claims = { groups = "entitled" }`,
`kid_claim` and `asset_claim`. Two token-delivered policies own two key pairs:
  polA (asset rule `movieA`, persistent licenses refused) and polB (`movieB`, persistent allowed).
Tokens are minted by PyJWT (license_util.py), by hand for hostile ones, and by `drm-origin token`.
Every refusal is checked for its status (401 no valid token / 403 valid but not entitled) and its
machine-readable reason; every grant for the exact key bytes and never a key the token does not
unlock. A second server holding only the RSA public key judges HS/RS algorithm confusion.

Static keys carry no `kid`, so the server ignores a token header's `kid` for them (it tries every
key whose algorithm matches); the tests check that a foreign header kid neither grants with a bad
signature nor breaks a good one. Published keys with ids (JWKS, `unknown_key`, rollover) are
judged in test_jwks.py.
"""
import base64
import http.client
import json
import subprocess
import time
from pathlib import Path

import pytest

import drm_util as du
import license_util as lu
from conftest import BIN, Origin
from http_util import host_port

K = {  # name: (kid, key)
    "vidA": ("5a1b2c3d4e5f40718293a4b5c6d7e8f9", "a1223344556677889900aabbccddeeff"),
    "audA": ("5b2c3d4e5f60418293a4b5c6d7e8f90a", "a2233445566778899aabbccddeeff001"),
    "vidB": ("6c3d4e5f6071429384a5b6c7d8e9fa0b", "b3445566778899aabbccddeeff001122"),
    "audB": ("6d4e5f607182439485b6c7d8e9fa0b1c", "b4556677889900aabbccddeeff112233"),
}
KID = {n: bytes.fromhex(v[0]) for n, v in K.items()}
KEY = {n: bytes.fromhex(v[1]) for n, v in K.items()}


def config_text(public_keys, hmac=True, extra_auth=""):
    auth = "[auth]\n"
    if hmac:
        auth += f'hmac_secret = "{lu.HMAC_SECRET_B64}"\n'
    auth += ("public_keys = [" + ", ".join(f'"{p}"' for p in public_keys) + "]\n"
             f'issuer = "{lu.ISSUER}"\naudience = "{lu.AUDIENCE}"\n'
             'required_claims = { groups = "entitled" }\nkid_claim = "kids"\nasset_claim = "assets"\n'
             + extra_auth)
    return (du.STORAGE + "".join(du.key_table(n, *v) for n, v in K.items()) + auth +
            '[policies.polA]\ndash = ["cenc"]\nhls = ["cbcs"]\nkey_delivery = "token"\n'
            'drm_systems = ["clearkey"]\nkeys = { video = "vidA", audio = "audA" }\n'
            '[policies.polB]\ndash = ["cenc"]\nhls = ["cbcs"]\nkey_delivery = "token"\n'
            'persistent_licenses = true\nkeys = { video = "vidB", audio = "audB" }\n'
            '[[assets]]\nmatch = "movieA"\npolicy = "polA"\n'
            '[[assets]]\nmatch = "movieB"\npolicy = "polB"\n')


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return Path(tmp_path_factory.mktemp("lic"))


@pytest.fixture(scope="module")
def pairs():
    return {"rsa": lu.rsa_pair(), "ec": lu.ec_pair(), "rsa_other": lu.rsa_pair()}


@pytest.fixture(scope="module")
def assets(work):
    root = work / "assets"
    du.asset_folder(root, "movieA", [du.SRC_VIDEO, du.SRC_AUDIO])
    du.asset_folder(root, "movieB", [du.SRC_VIDEO, du.SRC_AUDIO])
    return root


@pytest.fixture(scope="module")
def server(work, pairs, assets):
    rsa_pem = pairs["rsa"].write(work / "rsa.pem")
    ec_pem = pairs["ec"].write(work / "ec.pem")
    cfg = work / "lic.toml"
    cfg.write_text(config_text([rsa_pem, ec_pem]))
    o = Origin(assets, config=cfg)
    yield o
    o.stop()


@pytest.fixture(scope="module")
def rsa_only(work, pairs, assets):
    cfg = work / "rsa-only.toml"
    cfg.write_text(config_text([pairs["rsa"].write(work / "rsa-only.pem")], hmac=False))
    o = Origin(work / "assets", config=cfg)
    yield o
    o.stop()


def post(o, path, body, headers=None, method="POST"):
    host, port = host_port(o.base_url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def license(o, token, names, kind="temporary", extra_headers=None):
    h = {} if token is None else {"Authorization": f"Bearer {token}"}
    h.update(extra_headers or {})
    return post(o, "/.drm/clearkey", lu.license_body([KID[n] for n in names], kind), h)


def granted(body):
    """{kid bytes: key bytes} of a ClearKey license, checking its JWK form (spec-notes §5)."""
    lic = json.loads(body)
    out = {}
    for k in lic["keys"]:
        assert k["kty"] == "oct", lic
        assert "=" not in k["kid"] + k["k"], f"padding in base64url: {lic}"
        out[lu.unb64url(k["kid"])] = lu.unb64url(k["k"])
    return out


def assert_grants(o, token, names, expect, kind="temporary"):
    status, headers, body = license(o, token, names, kind)
    assert status == 200, f"{names}: {status} {body!r}"
    assert headers["Content-Type"].startswith("application/json")
    assert "no-store" in headers.get("Cache-Control", "")
    got = granted(body)
    assert got == {KID[n]: KEY[n] for n in expect}, f"asked {names}, expected only {expect}: {body!r}"
    assert json.loads(body).get("type", "temporary") == kind
    return got


def assert_denied(o, token, names, status, reasons, kind="temporary"):
    if isinstance(reasons, str):
        reasons = {reasons}
    st, headers, body = license(o, token, names, kind)
    assert st == status, f"expected {status} {reasons}, got {st} {body!r}"
    doc = json.loads(body)
    assert doc["error"] == {401: "unauthorized", 403: "forbidden"}[status], doc
    assert doc["reason"] in reasons, f"expected reason {reasons}, got {doc}"
    assert "keys" not in doc and b'"k"' not in body
    assert "no-store" in headers.get("Cache-Control", "")
    for name in K.values():
        assert lu.b64url(bytes.fromhex(name[1])).encode() not in body
    if status == 401:
        assert (headers.get("WWW-Authenticate") or "").startswith("Bearer"), dict(headers)
    return doc


def mint(config, *args):
    out = subprocess.run([str(BIN), "token", "--config", str(config), *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.count(".") == 2, out.stdout
    return token


# ------------------------------------------------------------------------------------------------
# grants


def test_valid_hs256_token_gets_exactly_the_requested_keys(server):
    assert_grants(server, lu.hs256(lu.claims()), ["vidA", "audA"], ["vidA", "audA"])


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_valid_rs256_and_es256_tokens(server, pairs, kind):
    tok = pairs[kind].sign(lu.claims())
    assert jwt_header(tok)["alg"] == {"rsa": "RS256", "ec": "ES256"}[kind]
    assert_grants(server, tok, ["vidA"], ["vidA"])


def test_ps256_token_with_the_rsa_key(server, pairs):
    assert_grants(server, pairs["rsa"].sign(lu.claims(), alg="PS256"), ["vidB"], ["vidB"])


def test_license_never_holds_a_key_the_token_does_not_unlock(server):
    # Bound to movieA: polA's keys are granted, polB's (asked in the same request) left out.
    tok = lu.hs256(lu.claims(assets=["movieA"]))
    assert_grants(server, tok, ["vidA", "vidB", "audB", "audA"], ["vidA", "audA"])
    # Bound to one KID: the other key of the same policy is left out.
    tok = lu.hs256(lu.claims(kids=[K["vidB"][0]]))
    assert_grants(server, tok, ["vidA", "vidB", "audB"], ["vidB"])
    # KIDs may be bound in UUID form too.
    tok = lu.hs256(lu.claims(kids=[du.uuid(K["audA"][0])]))
    assert_grants(server, tok, ["audA", "vidA"], ["audA"])
    # Nothing entitled at all: a 403, never an empty or partial key set.
    assert_denied(server, lu.hs256(lu.claims(assets=["movieZ"])), ["vidA", "vidB"], 403,
                  "token_bound_to_other_asset")


def test_unknown_kid_in_request_is_not_answered_with_keys(server):
    st, _, body = post(server, "/.drm/clearkey", lu.license_body([bytes(16)]),
                       {"Authorization": "Bearer " + lu.hs256(lu.claims())})
    assert st in (403, 404), (st, body)
    assert b'"k"' not in body


def test_group_claim_forms(server):
    # required_claims: string equal, array contains, space-separated string.
    assert_grants(server, lu.hs256(lu.claims(groups="entitled")), ["vidA"], ["vidA"])
    assert_grants(server, lu.hs256(lu.claims(groups="basic entitled")), ["vidA"], ["vidA"])
    assert_grants(server, lu.hs256(lu.claims(groups=["x", "entitled"])), ["vidA"], ["vidA"])


def test_leeway_accepts_a_token_expired_seconds_ago(server):
    now = int(time.time())
    assert_grants(server, lu.hs256(lu.claims(exp=now - 5)), ["vidA"], ["vidA"])
    assert_grants(server, lu.hs256(lu.claims(nbf=now + 5)), ["vidA"], ["vidA"])


# ------------------------------------------------------------------------------------------------
# attacks and refusals


def jwt_header(tok):
    return json.loads(lu.unb64url(tok.split(".")[0]))


def test_no_token(server):
    assert_denied(server, None, ["vidA"], 401, "missing_token")
    assert_denied(server, "", ["vidA"], 401, "missing_token")


def test_bearer_scheme_is_case_insensitive(server):
    # RFC 7235 §2.1 / RFC 6750: the auth-scheme is case-insensitive.
    tok = lu.hs256(lu.claims())
    for scheme in ("Bearer", "bearer", "BEARER"):
        st, _, body = post(server, "/.drm/clearkey", lu.license_body([KID["vidA"]]),
                           {"Authorization": f"{scheme} {tok}"})
        assert st == 200, (scheme, st, body)
    # another scheme is no token at all
    st, _, body = post(server, "/.drm/clearkey", lu.license_body([KID["vidA"]]), {"Authorization": f"Basic {tok}"})
    assert st == 401 and json.loads(body)["reason"] in ("missing_token", "malformed_token"), body


def test_garbage_token(server):
    assert_denied(server, "not-a-jwt", ["vidA"], 401, "malformed_token")


def test_alg_none_unsigned(server):
    for alg in ("none", "None", "NONE"):
        tok = lu.raw_token({"alg": alg, "typ": "JWT"}, lu.claims())
        assert_denied(server, tok, ["vidA"], 401, {"malformed_token", "algorithm_not_allowed"})


def test_hs256_keyed_with_the_rsa_public_key(server, rsa_only, pairs):
    pem = pairs["rsa"].public_pem
    for key in (pem, pem.strip(), pem.decode().replace("\n", "\r\n").encode()):
        tok = lu.raw_token({"alg": "HS256", "typ": "JWT"}, lu.claims(), signing_input_key=key)
        # Server with only the RSA key: HS256 is not an algorithm of any configured key.
        assert_denied(rsa_only, tok, ["vidA"], 401, "algorithm_not_allowed")
        # Server with an HMAC secret too: HS256 is tried against the secret only, and fails.
        assert_denied(server, tok, ["vidA"], 401, "bad_signature")
    # The RSA-only server still grants RS256.
    assert_grants(rsa_only, pairs["rsa"].sign(lu.claims()), ["vidA"], ["vidA"])


def test_hs384_not_in_hmac_algorithms(server):
    tok = lu.jwt.encode(lu.claims(), lu.HMAC_SECRET, algorithm="HS384")
    assert_denied(server, tok, ["vidA"], 401, "algorithm_not_allowed")


def test_expired(server):
    now = int(time.time())
    assert_denied(server, lu.hs256(lu.claims(iat=now - 7200, exp=now - 3600)), ["vidA"], 401, "expired")
    assert_denied(server, lu.hs256(lu.claims(exp=now - 31 - 30)), ["vidA"], 401, "expired")


def test_missing_exp_is_refused(server):
    assert_denied(server, lu.hs256(lu.claims(exp=None)), ["vidA"], 401, {"missing_exp", "malformed_token"})


def test_not_yet_valid(server):
    now = int(time.time())
    assert_denied(server, lu.hs256(lu.claims(nbf=now + 3600)), ["vidA"], 401, "not_yet_valid")
    assert_denied(server, lu.hs256(lu.claims(nbf=now + 120)), ["vidA"], 401, "not_yet_valid")


def test_wrong_issuer(server):
    for iss in ("https://evil.example/", "https://idp.example", "https://IDP.example/",
                "https://idp.example//", " https://idp.example/"):
        assert_denied(server, lu.hs256(lu.claims(iss=iss)), ["vidA"], 401, "wrong_issuer")


def test_missing_issuer(server):
    # An issuer is configured: a token without `iss` must not pass. (jsonwebtoken checks `iss`
    # only when present unless "iss" is among the required spec claims.)
    assert_denied(server, lu.hs256(lu.claims(iss=None)), ["vidA"], 401, {"wrong_issuer", "missing_iss"})


def test_issuer_must_be_one_string(server):
    # RFC 7519 `iss` is a single StringOrURI; an array smuggling ours next to another is refused.
    tok = lu.raw_token({"alg": "HS256", "typ": "JWT"}, lu.claims(iss=["https://evil.example/", lu.ISSUER]),
                       signing_input_key=lu.HMAC_SECRET)
    assert_denied(server, tok, ["vidA"], 401, {"wrong_issuer", "malformed_token"})


def test_wrong_audience(server):
    for aud in ("other-service", ["other-service"], "drm-origin/"):
        assert_denied(server, lu.hs256(lu.claims(aud=aud)), ["vidA"], 401, "wrong_audience")
    # one of several audiences is enough
    assert_grants(server, lu.hs256(lu.claims(aud=["x", lu.AUDIENCE])), ["vidA"], ["vidA"])


def test_missing_audience(server):
    assert_denied(server, lu.hs256(lu.claims(aud=None)), ["vidA"], 401, {"wrong_audience", "missing_aud"})


def test_tampered_payload(server, pairs):
    for good, other in ((lu.hs256(lu.claims(groups=["nobody"])), lu.claims()),
                        (pairs["rsa"].sign(lu.claims(groups=["nobody"])), lu.claims()),
                        (pairs["ec"].sign(lu.claims(groups=["nobody"])), lu.claims())):
        h, _, s = good.split(".")
        forged = f"{h}.{lu.b64url(json.dumps(other).encode())}.{s}"
        assert_denied(server, forged, ["vidA"], 401, "bad_signature")
    # RS256 signed by a key we do not hold
    assert_denied(server, pairs["rsa_other"].sign(lu.claims()), ["vidA"], 401, "bad_signature")
    # Signature stripped
    h, p, _ = lu.hs256(lu.claims()).split(".")
    assert_denied(server, f"{h}.{p}.", ["vidA"], 401, {"bad_signature", "malformed_token"})


def test_header_kid_with_static_keys(server, pairs):
    # Static keys have no kid: a header kid is not an entry ticket (bad signature stays bad) and
    # does not break a good token. `unknown_key` needs published kids (JWKS: not implemented).
    assert_denied(server, pairs["rsa_other"].sign(lu.claims(), headers={"kid": "nope"}), ["vidA"], 401,
                  "bad_signature")
    assert_grants(server, pairs["rsa"].sign(lu.claims(), headers={"kid": "nope"}), ["vidA"], ["vidA"])
    assert_grants(server, lu.hs256(lu.claims(), headers={"kid": "nope"}), ["vidA"], ["vidA"])


def test_token_bound_to_other_kid(server):
    tok = lu.hs256(lu.claims(kids=[K["vidB"][0]]))
    assert_denied(server, tok, ["vidA"], 403, "token_bound_to_other_kid")


def test_kid_binding_is_case_insensitive(server, work):
    # KIDs are hex (or UUID) text: case carries no meaning, and `drm-origin token --kid` passes
    # what the operator typed (e.g. a KID copied from a packager log in upper case).
    kid = K["vidA"][0]
    for form in (kid.upper(), du.uuid(kid).upper()):
        assert_grants(server, lu.hs256(lu.claims(kids=[form])), ["vidA"], ["vidA"])
    assert_grants(server, mint(work / "lic.toml", "--groups", "entitled", "--kid", kid.upper()), ["vidA"], ["vidA"])


def test_token_bound_to_other_asset(server):
    tok = lu.hs256(lu.claims(assets=["movieB"]))
    assert_denied(server, tok, ["vidA", "audA"], 403, "token_bound_to_other_asset")
    assert_grants(server, tok, ["vidB"], ["vidB"])


def test_asset_binding_under_pattern_rules(work):
    # `asset_claim` lists asset ids. A per-asset auto key belongs to one asset; a named key used by
    # a rule `kids/*` belongs to every asset the pattern matches: a token bound to the asset
    # `kids/x` (what an entitlement service knows) must unlock it, one bound elsewhere must not.
    import re
    root = work / "pattern-assets"
    for a in ("kids/x", "solo/x", "solo/y"):
        du.asset_folder(root, a, [du.SRC_VIDEO, du.SRC_AUDIO])
    cfg = work / "pattern.toml"
    cfg.write_text(du.STORAGE + du.key_table("vidA", *K["vidA"]) + f'[keystore]\npath = "{work}/pattern-keys.json"\n'
                   f'[auth]\nhmac_secret = "{lu.HMAC_SECRET_B64}"\nasset_claim = "assets"\n'
                   '[policies.kids]\ndash = ["cenc"]\nkey_delivery = "token"\nkeys = { video = "vidA" }\n'
                   '[policies.solo]\ndash = ["cenc"]\nkey_delivery = "token"\nkeys = { video = "auto" }\n'
                   '[[assets]]\nmatch = "kids/*"\npolicy = "kids"\n[[assets]]\nmatch = "solo/*"\npolicy = "solo"\n')
    o = Origin(root, config=cfg)

    def video_kid(asset):
        st, _, mpd = post(o, f"/{asset}/manifest.mpd", None, method="GET")
        assert st == 200, mpd
        kids = set(re.findall(r'default_KID="([0-9a-fA-F-]{36})"', mpd.decode()))
        assert len(kids) == 1, kids
        return bytes.fromhex(kids.pop().replace("-", ""))

    def ask(kid, bound):
        tok = lu.hs256({"exp": int(time.time()) + 600, "assets": bound})
        st, _, body = post(o, "/.drm/clearkey", lu.license_body([kid]), {"Authorization": f"Bearer {tok}"})
        return st, (json.loads(body).get("reason") if st != 200 else granted(body))

    try:
        solo_x, solo_y = video_kid("solo/x"), video_kid("solo/y")
        assert solo_x != solo_y
        assert ask(solo_x, ["solo/x"])[0] == 200
        assert ask(solo_x, ["solo/y"]) == (403, "token_bound_to_other_asset")
        assert video_kid("kids/x") == KID["vidA"]
        assert ask(KID["vidA"], ["elsewhere"]) == (403, "token_bound_to_other_asset")
        assert ask(KID["vidA"], ["kids/x"]) == (200, {KID["vidA"]: KEY["vidA"]}), \
            "a token bound to asset kids/x is refused the key of its own asset (rule kids/*)"
    finally:
        o.stop()


def test_valid_token_without_the_group(server, pairs):
    for c in (lu.claims(groups=None), lu.claims(groups=["basic"]), lu.claims(groups="entitledX"),
              lu.claims(groups=[["entitled"]])):
        assert_denied(server, lu.hs256(c), ["vidA"], 403, "missing_required_claim")
    assert_denied(server, pairs["ec"].sign(lu.claims(groups=None)), ["vidA"], 403, "missing_required_claim")


def test_persistent_license_only_where_the_policy_allows(server):
    tok = lu.hs256(lu.claims())
    assert_denied(server, tok, ["vidA"], 403, "persistent_license_not_allowed", kind="persistent-license")
    assert_grants(server, tok, ["vidB", "audB"], ["vidB", "audB"], kind="persistent-license")
    # Mixed: only the policy that allows persistence contributes.
    assert_grants(server, tok, ["vidA", "vidB"], ["vidB"], kind="persistent-license")
    assert_grants(server, tok, ["vidA", "vidB"], ["vidA", "vidB"], kind="temporary")


def test_malformed_license_requests(server):
    tok = {"Authorization": "Bearer " + lu.hs256(lu.claims())}
    for body in (b"nope", b'{"kids":[]}', b'{"kids":["AAAA"]}', b'{"kids":["WhssPU5fQHGCk6S1xtfo-Q"],"type":"x"}'):
        st, headers, resp = post(server, "/.drm/clearkey", body, tok)
        assert st == 400, (body, st, resp)
        assert b'"k"' not in resp
    st, _, _ = post(server, "/.drm/clearkey", b"", tok, method="PUT")
    assert st == 405
    st, _, _ = post(server, "/.drm/clearkey", None, tok, method="GET")
    assert st == 405


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_public_key_as_certificate(work, pairs, assets, kind):
    # `public_keys` accepts an X.509 certificate as well as a bare public key.
    pem = work / f"{kind}-cert.pem"
    pem.write_bytes(lu.self_signed_cert_pem(pairs[kind]))
    cfg = work / f"{kind}-cert.toml"
    cfg.write_text(config_text([pem], hmac=False))
    try:
        o = Origin(work / "assets", config=cfg)
    except RuntimeError as e:
        pytest.fail(f"server refused a {kind.upper()} certificate in auth.public_keys: {str(e)[-600:]}")
    try:
        assert_grants(o, pairs[kind].sign(lu.claims()), ["vidA"], ["vidA"])
        assert_denied(o, pairs["rsa_other"].sign(lu.claims()), ["vidA"], 401,
                      {"bad_signature", "algorithm_not_allowed"})
    finally:
        o.stop()


def test_tiers(work, pairs, assets):
    cfg = work / "tiers.toml"
    cfg.write_text(config_text([pairs["ec"].write(work / "ec-tiers.pem")], extra_auth=(
        'tier_claim = "tier"\ntiers = { premium = ["polA", "polB"], basic = ["polA"] }\n')))
    o = Origin(work / "assets", config=cfg)
    try:
        assert_grants(o, lu.hs256(lu.claims(tier="basic")), ["vidA", "vidB"], ["vidA"])
        assert_grants(o, lu.hs256(lu.claims(tier=["premium"])), ["vidA", "vidB"], ["vidA", "vidB"])
        assert_denied(o, lu.hs256(lu.claims(tier="basic")), ["vidB"], 403, "tier_not_entitled")
        assert_denied(o, lu.hs256(lu.claims()), ["vidA"], 403, "tier_not_entitled")
        assert_denied(o, lu.hs256(lu.claims(tier="gold")), ["vidA"], 403, "tier_not_entitled")
        # the tier never replaces the required group
        assert_denied(o, lu.hs256(lu.claims(tier="premium", groups=None)), ["vidA"], 403,
                      "missing_required_claim")
    finally:
        o.stop()


# ------------------------------------------------------------------------------------------------
# HTTP: CORS, caching, raw keys


def test_cors_preflight_and_response_headers(server):
    st, h, body = post(server, "/.drm/clearkey", None, {
        "Origin": "http://player.example:9000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"}, method="OPTIONS")
    assert st in (200, 204), (st, body)
    assert h.get("Access-Control-Allow-Origin") in ("*", "http://player.example:9000"), dict(h)
    assert "POST" in h.get("Access-Control-Allow-Methods", ""), dict(h)
    allowed = {x.strip().lower() for x in h.get("Access-Control-Allow-Headers", "").split(",")}
    assert {"authorization", "content-type"} <= allowed or "*" in allowed, dict(h)
    # the real answers, granted and refused, are readable cross-origin
    for tok, want in ((lu.hs256(lu.claims()), 200), (None, 401), (lu.hs256(lu.claims(groups=None)), 403)):
        st, h, _ = license(server, tok, ["vidA"], extra_headers={"Origin": "http://player.example:9000"})
        assert st == want
        assert h.get("Access-Control-Allow-Origin") in ("*", "http://player.example:9000"), (want, dict(h))


def test_license_answers_allow_credentialed_requests(server):
    """dash.js sends license requests with credentials by default; `*` cannot answer those, so
    the license endpoint names the asking origin (with Vary: Origin). Raw keys and media stay
    `*`."""
    origin = "https://app.example"
    st, h, _ = post(server, "/.drm/clearkey", None, {
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"}, method="OPTIONS")
    assert (h.get("Access-Control-Allow-Origin"), h.get("Access-Control-Allow-Credentials")) == (origin, "true"), dict(h)
    st, h, _ = license(server, lu.hs256(lu.claims()), ["vidA"], extra_headers={"Origin": origin})
    assert st == 200
    assert (h.get("Access-Control-Allow-Origin"), h.get("Access-Control-Allow-Credentials")) == (origin, "true"), dict(h)
    assert "origin" in h.get("Vary", "").lower(), dict(h)
    # Raw keys may sit behind a CDN's signed cookies (key_delivery = "open"): never credentialed.
    st, h, _ = post(server, f"/.drm/key/{K['vidA'][0]}", None, {"Origin": origin}, method="GET")
    assert st == 401 and h.get("Access-Control-Allow-Origin") == "*", dict(h)
    assert "Access-Control-Allow-Credentials" not in h
    # Without an Origin (or from an opaque "null" origin): the plain wildcard.
    st, h, _ = license(server, None, ["vidA"], extra_headers={"Origin": "null"})
    assert h.get("Access-Control-Allow-Origin") == "*" and "Access-Control-Allow-Credentials" not in h, dict(h)
    st, h, _ = server.get("/movieA/manifest.mpd", headers={"Origin": origin})
    assert st == 200 and h.get("Access-Control-Allow-Origin") == "*", dict(h)
    assert "Access-Control-Allow-Credentials" not in h


def test_raw_key_endpoint(server):
    kid = K["vidA"][0]
    tok = lu.hs256(lu.claims())
    st, h, body = post(server, f"/.drm/key/{kid}", None, {"Authorization": f"Bearer {tok}"}, method="GET")
    assert (st, body) == (200, KEY["vidA"])
    assert "no-store" in h.get("Cache-Control", "")
    st, h, body = post(server, f"/.drm/key/{kid}?token={tok}", None, method="GET")
    assert (st, body) == (200, KEY["vidA"])
    st, h, body = post(server, f"/.drm/key/{kid}", None, method="GET")
    assert st == 401 and KEY["vidA"] not in body
    assert (h.get("WWW-Authenticate") or "").startswith("Bearer")
    st, _, body = post(server, f"/.drm/key/{kid}", None,
                       {"Authorization": "Bearer " + lu.hs256(lu.claims(assets=["movieB"]))}, method="GET")
    assert st == 403 and json.loads(body)["reason"] == "token_bound_to_other_asset"
    st, _, body = post(server, f"/.drm/key/{kid}?token=" + lu.hs256(lu.claims(exp=int(time.time()) - 3600)),
                       None, method="GET")
    assert st == 401 and json.loads(body)["reason"] == "expired"


def test_playlists_carry_the_token(server):
    tok = lu.hs256(lu.claims())
    st, _, master = post(server, f"/movieA/master.m3u8?token={tok}", None, method="GET")
    assert st == 200, master
    uris = [ln for ln in master.decode().splitlines() if ln and not ln.startswith("#")]
    uris += [a.split('URI="', 1)[1].split('"', 1)[0] for a in master.decode().splitlines() if 'URI="' in a]
    uris = [u for u in uris if not u.startswith("data:")]
    assert uris and all(f"token={tok}" in u for u in uris), master.decode()
    child = next(u for u in uris if ".m3u8" in u)
    st, h, media = post(server, f"/movieA/{child}" if not child.startswith("/") else child, None, method="GET")
    assert st == 200, (child, media)
    keys = [ln for ln in media.decode().splitlines() if ln.startswith("#EXT-X-KEY")]
    assert keys, media.decode()
    assert all(f"token={tok}" in ln for ln in keys if 'URI="data:' not in ln and "/.drm/" in ln), keys
    assert any("/.drm/" in ln for ln in keys), keys
    # per-token playlists differ from each other and from the shared one (no cross-token 304)
    st0, h0, _ = post(server, "/movieA/master.m3u8", None, method="GET")
    st2, h2, _ = post(server, "/movieA/master.m3u8?token=" + lu.hs256(lu.claims(sub="bob")), None, method="GET")
    _, h1, _ = post(server, f"/movieA/master.m3u8?token={tok}", None, method="GET")
    assert len({h0.get("ETag"), h1.get("ETag"), h2.get("ETag")}) == 3


def test_carry_token_off(work, pairs, assets):
    cfg = work / "nocarry.toml"
    cfg.write_text(config_text([pairs["rsa"].write(work / "rsa-nocarry.pem")], extra_auth="carry_token = false\n"))
    o = Origin(assets, config=cfg)
    try:
        tok = lu.hs256(lu.claims())
        st, _, master = post(o, f"/movieA/master.m3u8?token={tok}", None, method="GET")
        st0, _, plain = post(o, "/movieA/master.m3u8", None, method="GET")
        assert st == st0 == 200
        assert tok.encode() not in master and b"token=" not in master
        assert master == plain
    finally:
        o.stop()


def test_token_playlists_are_not_shared_cacheable(server):
    # A playlist with a client's bearer token written into it must not be stored by shared caches
    # (a CDN configured to ignore query strings would hand one user's token to everyone).
    tok = lu.hs256(lu.claims())
    for path in ("/movieA/master.m3u8", "/movieA/video_180p_1/media.cbcs.m3u8"):
        st, h, body = post(server, f"{path}?token={tok}", None, method="GET")
        assert st == 200 and tok.encode() in body
        cc = h.get("Cache-Control", "")
        assert "private" in cc or "no-store" in cc, f"{path}?token=…: Cache-Control: {cc}"


# ------------------------------------------------------------------------------------------------
# the `token` command


def test_token_command(server, work):
    cfg = work / "lic.toml"
    kid_a = K["vidA"][0]
    assert_grants(server, mint(cfg, "--sub", "alice", "--groups", "entitled", "--ttl", "1h"), ["vidA"], ["vidA"])
    assert_denied(server, mint(cfg, "--sub", "alice", "--groups", "entitled", "--ttl", "-2h"), ["vidA"], 401,
                  "expired")
    assert_denied(server, mint(cfg, "--sub", "bob", "--ttl", "1h"), ["vidA"], 403, "missing_required_claim")
    assert_denied(server, mint(cfg, "--groups", "entitled", "--kid", K["vidB"][0]), ["vidA"], 403,
                  "token_bound_to_other_kid")
    assert_grants(server, mint(cfg, "--groups", "entitled", "--kid", kid_a), ["vidA", "audA"], ["vidA"])
    assert_denied(server, mint(cfg, "--groups", "entitled", "--asset", "movieB"), ["vidA"], 403,
                  "token_bound_to_other_asset")
    # The minted token is an ordinary HS256 JWT with our issuer and audience.
    tok = mint(cfg, "--sub", "alice", "--groups", "entitled", "--ttl", "1h")
    c = lu.jwt.decode(tok, lu.HMAC_SECRET, algorithms=["HS256"], audience=lu.AUDIENCE, issuer=lu.ISSUER)
    assert c["sub"] == "alice" and c["groups"] == ["entitled"]


# ------------------------------------------------------------------------------------------------
# logs (runs last in this module: the log then holds every grant above)


def test_zz_key_values_never_in_the_log(server):
    assert_grants(server, lu.hs256(lu.claims()), ["vidA", "audA", "vidB", "audB"], ["vidA", "audA", "vidB", "audB"])
    log = server.log()
    assert "clearkey license issued" in log or "license" in log
    for name, (_, key) in K.items():
        raw = bytes.fromhex(key)
        for form in (key, key.upper(), lu.b64url(raw), base64.b64encode(raw).decode().rstrip("=")):
            assert form not in log, f"key {name} appears in the server log as {form!r}"
    assert lu.HMAC_SECRET_B64 not in log
    # bearer tokens (query or header) are credentials too: no JWT text in the log
    assert "eyJ" not in log, [ln for ln in log.splitlines() if "eyJ" in ln][:3]
