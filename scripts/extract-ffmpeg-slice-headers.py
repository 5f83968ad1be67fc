#!/usr/bin/env python3
"""Extract the size of every slice header as FFmpeg's bitstream parser sees it (second independent
oracle for src/codec, bit-exact and independent of Shaka Packager).

For every video file of scripts/codec_fixtures.py this runs FFmpeg's `trace_headers` bitstream
filter (libavcodec's coded bitstream reader, which prints every syntax element with its RBSP bit
position) and writes one line per slice NAL unit, in decode order, to
tests/fixtures/codec/<name>.ffmpeg.txt:

    <sample index> <slice header size in RBSP bits, NAL unit header excluded>

For H.264 the size runs to the end of the last slice_header() element (FFmpeg also prints the
cabac_alignment_one_bit of slice_data(), which is left out); for H.265 it includes byte_alignment(). The Rust test `codec::oracle` compares it with the bit where our parser stops.

Usage: scripts/extract-ffmpeg-slice-headers.py [--ffmpeg PATH]   (default /usr/bin/ffmpeg)
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from codec_fixtures import ASSETS, OUT_DIR, ROOT  # noqa: E402  pylint: disable=wrong-import-position

PREFIX = re.compile(r"^\[trace_headers @ 0x[0-9a-f]+\] ")
FIELD = re.compile(r"^(\d+)\s+(\S+)\s+([01]+) = ")
# Part of H.264 slice_data() (7.3.4), which FFmpeg traces right after the header.
NOT_HEADER = {"cabac_alignment_one_bit"}
# Slice header blocks and the size of the NAL unit header in front of them.
SLICE_BLOCKS = {"Slice Header": 8, "Slice Segment Header": 16}


def slice_headers(ffmpeg, path):
    """[(sample index, header bits)] in decode order."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-v", "trace", "-i", path, "-map", "0:v:0"]
    cmd += ["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"]
    log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    out = []
    sample = -1
    block = None  # (NAL header bits, furthest bit seen) of the slice header being read
    for line in log.splitlines():
        m = PREFIX.match(line)
        if not m:
            continue
        text = line[m.end():]
        field = FIELD.match(text)
        if field:
            if block is not None and field.group(2) not in NOT_HEADER:
                end = int(field.group(1)) + len(field.group(3))
                block = (block[0], max(block[1], end))
            continue
        if block is not None:
            out.append((sample, block[1] - block[0]))
            block = None
        if text.startswith("Packet:"):
            sample += 1
        elif text in SLICE_BLOCKS and sample >= 0:
            block = (SLICE_BLOCKS[text], 0)
    if block is not None:
        out.append((sample, block[1] - block[0]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ffmpeg", default="/usr/bin/ffmpeg")
    args = ap.parse_args()
    version = subprocess.run(
        [args.ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0].split(" Copyright")[0]
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, rel in ASSETS:
        headers = slice_headers(args.ffmpeg, os.path.join(ROOT, rel))
        path = os.path.join(OUT_DIR, f"{name}.ffmpeg.txt")
        with open(path, "w", encoding="ascii") as f:
            f.write(f"# {rel}: slice headers per FFmpeg trace_headers ({version})\n")
            f.write("# per slice NAL unit in decode order: sample_index header_rbsp_bits\n")
            for sample, bits in headers:
                f.write(f"{sample} {bits}\n")
        print(f"{path}: {len(headers)} slices", file=sys.stderr)


if __name__ == "__main__":
    main()
