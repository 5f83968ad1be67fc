"""The demo player page's HTTP side (its playback is judged in Chromium by
tests/browser/player_page.mjs): the page and its script are served by the origin, the player
library comes from the configured file, a missing library or a disabled page is a 404 whose
reason is in the log (path and the command that installs it), never a crash."""
from conftest import ROOT


def test_page_and_library_served_by_the_origin(origin):
    st, h, body = origin.get("/player/multi")
    assert st == 200 and h["Content-Type"].startswith("text/html")
    assert b'src="/.player/shaka-player.js"' in body and b'src="/.player/app.js"' in body
    assert "script-src 'self'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    st, h, js = origin.get("/.player/app.js")
    assert st == 200 and "javascript" in h["Content-Type"] and b"drmCheck" in js
    st, h, lib = origin.get("/.player/shaka-player.js")
    shipped = (ROOT / "tests/browser/node_modules/shaka-player/dist/shaka-player.compiled.js").read_bytes()
    assert st == 200 and lib == shipped
    st, h, body = origin.get("/.player/shaka-player.js", method="HEAD")
    assert st == 200 and body == b"" and int(h["Content-Length"]) == len(shipped)
    assert origin.get("/player/no-such-asset")[0] == 404
    assert origin.get("/player/kids/../multi")[0] == 400


def test_missing_library_and_disabled_page(make_origin, tmp_path):
    cfg = tmp_path / "missing.toml"
    cfg.write_text('[player]\nscript = "/nonexistent/shaka.js"\n')
    o = make_origin(config=cfg)
    assert o.get("/player/multi")[0] == 200
    st, _, body = o.get("/.player/shaka-player.js")
    assert st == 404 and b"/nonexistent" not in body
    log = o.log()
    assert "/nonexistent/shaka.js" in log and "npm ci --prefix player" in log, log[-2000:]
    assert o.get("/multi/manifest.mpd")[0] == 200

    cfg = tmp_path / "off.toml"
    cfg.write_text("[player]\nenabled = false\n")
    o = make_origin(config=cfg)
    for path in ("/player/multi", "/.player/app.js", "/.player/shaka-player.js"):
        assert o.get(path)[0] == 404, path
    assert o.get("/multi/manifest.mpd")[0] == 200
