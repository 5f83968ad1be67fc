"""The cache of verified tokens (issue 12.5) never accepts a token the full path would refuse.

A token once verified is answered from the cache (`origin_token_cache_hits_total` counts it);
then the world changes under it and the very same token must be refused, with the reason a
server without the cache (`token_cache_mb = 0`) gives:
  * the identity provider rotates its JWKS so the token's `kid` is gone -> `unknown_key`;
  * the provider replaces the key under the same `kid` (the key ids do not change, the
    document does) -> `bad_signature`;
  * a configuration reload (SIGHUP) changes the audience -> `wrong_audience`, then the HMAC
    secret -> `bad_signature`.
Without the invalidation the cached entry would live for its 10-minute TTL and every wait below
would run out. The provider (test_jwks.IdP) refreshes every second; waits poll with a deadline,
no timing is asserted.
"""
import base64
import signal
import time

import pytest

import license_util as lu
from conftest import Origin
from test_jwks import IdP, config, lic, start, token, wait_until
from test_jwks import assets, pairs, work  # noqa: F401 (fixtures)


def hits(o):
    st, _, body = o.get("/metrics")
    assert st == 200
    for line in body.decode().splitlines():
        if line.startswith("origin_token_cache_hits_total "):
            return int(line.split()[1])
    pytest.fail("no origin_token_cache_hits_total in /metrics")


def assert_cached(o, tok):
    """`tok` is granted, and the second grant comes from the cache."""
    assert lic(o, tok)[0] == 200
    before = hits(o)
    assert lic(o, tok)[0] == 200
    assert hits(o) > before, "the second request with the same token was not answered from the cache"


def test_jwks_rotation_refuses_a_cached_token(work, assets, pairs):
    idp = IdP()
    idp.publish(("key-a", pairs["a"]), ("key-c", pairs["c"]))
    cached = start(work, assets, idp.discovery_url, "cache-on")
    plain = start(work, assets, idp.discovery_url, "cache-off", "token_cache_mb = 0\n")
    try:
        ta, tc = token(pairs["a"], "key-a"), token(pairs["c"], "key-c")
        for tok in (ta, tc):  # RS256 and ES256
            assert_cached(cached, tok)
            assert lic(plain, tok)[0] == 200
        st, _, body = plain.get("/metrics")
        assert b"origin_token_cache_hits_total" not in body, "token_cache_mb = 0 must turn the cache off"

        # key-a leaves the JWKS: its cached token is refused as the uncached server refuses it.
        idp.publish(("key-c", pairs["c"]))
        wait_until("key-a gone from the uncached server", lambda: lic(plain, ta)[0] == 401)
        wait_until("key-a gone from the cached server", lambda: lic(cached, ta)[0] == 401)
        assert lic(cached, ta) == lic(plain, ta) == (401, "unknown_key")
        assert lic(cached, tc)[0] == 200

        # key-c replaced under its own id: the ids are unchanged, the document is not.
        assert_cached(cached, tc)
        c2 = lu.ec_pair()
        idp.publish(("key-c", c2))
        wait_until("key-c replaced on the uncached server", lambda: lic(plain, tc)[0] == 401)
        wait_until("key-c replaced on the cached server", lambda: lic(cached, tc)[0] == 401)
        assert lic(cached, tc) == lic(plain, tc) == (401, "bad_signature")
        assert lic(cached, token(c2, "key-c"))[0] == 200
        assert cached.alive() and plain.alive()
    finally:
        cached.stop()
        plain.stop()
        idp.down()


def reloads(o):
    return o.log().count("configuration reloaded")


def test_config_reload_refuses_a_cached_token(work, assets, pairs):
    idp = IdP()
    idp.publish(("key-a", pairs["a"]))
    cfg = work / "cache-reload.toml"
    text = config(idp.discovery_url, extra=f'hmac_secret = "{lu.HMAC_SECRET_B64}"\n')
    cfg.write_text(text)
    o = Origin(assets, config=cfg)
    try:
        th = lu.hs256(lu.claims())
        assert_cached(o, th)

        def reload(new_text, what):
            before = reloads(o)
            cfg.write_text(new_text)
            o.proc.send_signal(signal.SIGHUP)
            wait_until(f"reload ({what})", lambda: reloads(o) > before)

        # Another audience: the cached token is judged by the new rules.
        reload(text.replace(f'audience = "{lu.AUDIENCE}"', 'audience = "someone-else"'), "audience")
        assert lic(o, th) == (401, "wrong_audience")
        assert lic(o, lu.hs256(lu.claims(aud="someone-else")))[0] == 200

        # Back to the audience, but another secret: the old token's signature no longer holds.
        reload(text, "audience back")
        assert_cached(o, th)
        other = base64.b64encode(bytes(range(100, 148))).decode()
        reload(text.replace(lu.HMAC_SECRET_B64, other), "secret")
        assert lic(o, th) == (401, "bad_signature")
        assert lic(o, lu.hs256(lu.claims(), secret=bytes(range(100, 148))))[0] == 200
        assert o.alive()
        # Tokens never reach the log, cached or not.
        assert th not in o.log()
    finally:
        o.stop()
        idp.down()


def test_an_expired_cached_token_is_refused_as_expired(work, assets, pairs):
    """exp is checked on every hit: a token cached seconds before its exp (leeway 0) is refused
    `expired` afterwards, as a token never seen would be."""
    idp = IdP()
    idp.publish(("key-a", pairs["a"]))
    o = start(work, assets, idp.discovery_url, "cache-exp", "leeway_secs = 0\n")
    try:
        t = token(pairs["a"], "key-a", exp=int(time.time()) + 3)
        assert_cached(o, t)
        wait_until("the token expired", lambda: lic(o, t)[0] == 401, timeout=15)
        assert lic(o, t) == (401, "expired")
    finally:
        o.stop()
        idp.down()
