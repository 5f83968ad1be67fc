"""What we cannot encrypt correctly, we refuse (issue 3 §10): a track whose bitstream the
subsample mapper cannot handle gets a clear 503 on the asset's protected outputs, with the reason
logged, while its clear outputs keep working."""
import shutil

from conftest import ASSETS
from http_util import versioned, wait_for, with_version

CONFIG = """
[storage]
rescan_interval_ms = 200
stable_after_ms = 0
[keys.vid]
kid = "8ba94ade-6eb9-449d-b44f-a5beefaf43b0"
key = "2b7e151628aed2a6abf7158809cf4f3c"
[policies.p]
dash = ["clear", "cenc", "cbcs"]
hls = ["clear", "cbcs"]
allow_clear = true
keys = { video = "vid" }
[[assets]]
match = "**"
policy = "p"
"""


def test_unprotectable_track_is_refused_only_for_protected_outputs(make_origin, tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    data = bytearray((ASSETS / "progressive.mp4").read_bytes())
    at = data.find(b"avcC")
    assert at > 0
    # avcC: version, profile, compat, level, then 0b111111xx with lengthSizeMinusOne. 3-byte NAL
    # lengths are legal H.264-in-MP4 but our mapper refuses them: the encryption path must refuse.
    assert data[at + 8] & 0xFC == 0xFC
    data[at + 8] = 0xFC | 2
    (assets / "odd.mp4").write_bytes(bytes(data))
    shutil.copy(ASSETS / "hevc.mp4", assets / "fine.mp4")
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    o = make_origin(assets_dir=assets, config=cfg)
    assert wait_for(lambda: o.get("/odd/manifest.mpd")[0] == 200 and o.get("/fine/manifest.cenc.mpd")[0] == 200)
    # Protected outputs of the odd asset: refused with 503 and a generic body.
    for path in ("/odd/manifest.cenc.mpd", "/odd/manifest.cbcs.mpd", "/odd/master.cbcs.m3u8",
                 with_version("/odd/odd_1/init.cenc.mp4"), with_version("/odd/odd_1/1.cbcs.m4s")):
        status, _, body = o.get(path)
        assert status == 503, f"{path} -> {status}: {body[:200]!r}"
        assert b"cannot" not in body and b"avc" not in body, "details stay in the log"
    # Its clear outputs, and the other asset's protected ones, still work.
    assert o.get("/odd/manifest.mpd")[0] == 200
    assert o.get(versioned(o.base_url, "/odd/odd_1/1.m4s"))[0] == 200
    assert o.get(versioned(o.base_url, "/fine/fine_1/1.cenc.m4s"))[0] == 200
    log = o.log()
    assert "cannot protect track 1 (avc1." in log and "odd" in log, log[-2000:]
    assert o.alive()
