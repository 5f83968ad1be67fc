"""The video files whose slice headers the codec tests check against independent tools.

Shared by scripts/extract-shaka-maps.py and scripts/extract-ffmpeg-slice-headers.py; the Rust
tests in src/codec/oracle.rs list the same files.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "codec")

# (fixture name, path relative to the repo root)
ASSETS = [
    ("progressive", "assets/progressive.mp4"),
    ("hevc", "assets/hevc.mp4"),
    ("video_180p", "assets/multi/video_180p.mp4"),
    ("video_270p", "assets/multi/video_270p.mp4"),
    ("video_360p", "assets/multi/video_360p.mp4"),
] + [
    # Small clips made by scripts/make-codec-fixtures.sh for syntax the assets lack.
    (name, f"tests/fixtures/codec/media/{name}.mp4")
    for name in [
        "avc_cavlc_slices_wp",
        "avc_mbaff_inband",
        "avc_444_cqm_maxslice",
        "hevc_ctu16_slices_wp",
        "hevc_main10_inband",
        "hevc_444_nowpp",
        "hevc_pps_deblocking_disabled",
    ]
]
