#!/usr/bin/env bash
# Generate the small H.264/H.265 clips in tests/fixtures/codec/media/ that exercise slice-header
# syntax the sample assets in assets/ do not: CAVLC, several slices per picture, explicit weighted
# prediction tables with many reference indices (long runs of zero bits, hence emulation
# prevention bytes inside slice headers), MBAFF (field_pic_flag), pic_order_cnt_type 2, 4:4:4
# (ChromaArrayType 3), scaling matrices, in-band parameter sets (avc3/hev1, a new HEVC PPS per
# picture), CTB 16/32, wavefront entry points, CRA/RASL pictures, temporal sub-layers, Main10,
# deblocking disabled in the PPS.
#
#   scripts/make-codec-fixtures.sh [OUT_DIR]      (default: <repo>/tests/fixtures/codec/media)
#
# Then run scripts/extract-shaka-maps.py and scripts/extract-ffmpeg-slice-headers.py to refresh the
# expected subsample maps and slice header sizes. Built with
# Debian's ffmpeg 5.1 (libx264 164, libx265 3.5), single-threaded and bitexact, so the output is
# reproducible with that build; the maps are re-extracted from whatever bytes are committed.
set -euo pipefail

FFMPEG=${FFMPEG:-/usr/bin/ffmpeg}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/tests/fixtures/codec/media}
mkdir -p "$OUT"

# 32 frames of a moving test pattern; fades make the encoders emit non-trivial weights.
SRC=(-f lavfi -i testsrc2=size=160x96:rate=25:duration=1.28)
FADE=(-vf "fade=in:0:10,fade=out:22:10")
COMMON=(-hide_banner -loglevel error -nostdin -y)
OUTF=(-threads 1 -fflags +bitexact -flags:v +bitexact -an -movflags +faststart)
X265=pools=1:frame-threads=1:log-level=error

enc() { # name, ffmpeg args...
  local name=$1
  shift
  "$FFMPEG" "${COMMON[@]}" "${SRC[@]}" "$@" "${OUTF[@]}" "$OUT/$name.mp4"
}

# CAVLC, 4 slices per picture, explicit weighted P prediction (weightp=2 adds duplicate
# references, so ref_pic_list_modification too) over up to 16 references, B-pyramid (MMCO).
enc avc_cavlc_slices_wp "${FADE[@]}" -c:v libx264 -pix_fmt yuv420p \
  -x264-params "cabac=0:slices=4:weightp=2:ref=16:bframes=3:b-pyramid=normal:keyint=32:scenecut=0"

# MBAFF (frame_mbs_only_flag 0), SPS/PPS repeated in band ('avc3'), weighted P.
enc avc_mbaff_inband "${FADE[@]}" -c:v libx264 -pix_fmt yuv420p \
  -x264-params "interlaced=1:tff=1:ref=4:bframes=2:weightp=1:keyint=16:scenecut=0:repeat-headers=1" \
  -tag:v avc3

# High 4:4:4 with JVT scaling matrices, no B-frames (pic_order_cnt_type 2), slices of ≤ 300 B.
enc avc_444_cqm_maxslice -c:v libx264 -pix_fmt yuv444p -profile:v high444 \
  -x264-params "cqm=jvt:slice-max-size=300:ref=3:bframes=0:keyint=16:scenecut=0"

# CTB 16, 3 slices, weighted P and B over 5 references, B-pyramid, open GOP (CRA + RASL).
enc hevc_ctu16_slices_wp "${FADE[@]}" -c:v libx265 -pix_fmt yuv420p \
  -x265-params "ctu=16:slices=3:weightp=1:weightb=1:ref=5:bframes=3:b-pyramid=1:keyint=16:scenecut=0:$X265"

# Main10, VPS/SPS/PPS repeated in band at every IDR ('hev1'), no SAO, deblocking offsets,
# temporal sub-layers, default scaling lists.
enc hevc_main10_inband -c:v libx265 -pix_fmt yuv420p10le \
  -x265-params "repeat-headers=1:opt-qp-pps=1:opt-ref-list-length-pps=1:no-sao=1:deblock=-1,1:temporal-layers=1:scaling-list=default:keyint=16:scenecut=0:open-gop=0:$X265" \
  -tag:v hev1

# Main 4:4:4, CTB 32, no wavefront, chroma QP offsets, sign hiding off.
enc hevc_444_nowpp -c:v libx265 -pix_fmt yuv444p \
  -x265-params "ctu=32:no-wpp=1:cbqpoffs=2:crqpoffs=-2:signhide=0:keyint=16:scenecut=0:$X265"

# Deblocking disabled in the PPS without slice override, no SAO: the slice's
# slice_loop_filter_across_slices_enabled_flag is absent (its deblocking flag is inferred from the
# PPS). Shaka Packager v3.8 reads the flag anyway and under-counts these slice headers.
enc hevc_pps_deblocking_disabled -c:v libx265 -pix_fmt yuv420p \
  -x265-params "no-deblock=1:no-sao=1:keyint=16:scenecut=0:$X265"

ls -l "$OUT"
