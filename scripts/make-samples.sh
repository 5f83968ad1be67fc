#!/usr/bin/env bash
# Generate the committed sample assets from synthetic lavfi sources.
#
#   scripts/make-samples.sh [ASSETS_DIR]      (default: <repo>/assets)
#
# Re-runnable: every output is overwritten. Built and checked with Debian's ffmpeg 5.1
# (/usr/bin/ffmpeg, libx264 164, libx265 3.5); with that build the output is byte-for-byte
# reproducible (single-threaded encoders, bitexact muxing). Another ffmpeg/x264/x265 build gives
# different (but equally valid) bytes; the tests never hard-code hashes of these files, they
# compare the server's output against these files decoded by the same ffmpeg.
#
# Output (10-12 s each, about 3 MB in total):
#   multi/video_180p.mp4  multi/video_270p.mp4  multi/video_360p.mp4
#       fragmented H.264 video-only, 2 s closed GOPs on the same frames -> aligned fragments
#   multi/audio_en.mp4  multi/audio_fr.mp4
#       fragmented AAC-LC only, language eng / fra, different tones
#   progressive.mp4   progressive (moov before mdat) H.264 with B-frames + AAC, 12 s,
#                     2.4 s GOPs (deliberately NOT a divisor of the 4 s target segment length)
#   hevc.mp4          progressive HEVC ('hvc1') + AAC, 2 s closed GOPs
#   fragmented.mp4    fragmented H.264 + AAC in one file, 2 s closed GOPs
set -euo pipefail

FFMPEG=${FFMPEG:-/usr/bin/ffmpeg}
FFPROBE=${FFPROBE:-/usr/bin/ffprobe}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/assets}
mkdir -p "$OUT/multi"

# Write to a temp name in the same folder, then rename: a running origin watching the folder never
# sees a half-written file (the contract's "write elsewhere then rename in").
TMPS=()
cleanup() { rm -f "${TMPS[@]}"; }
trap cleanup EXIT

# Global flags (before the inputs):
#   -hide_banner -loglevel error -nostdin -y   quiet, never wait for a keypress, overwrite
COMMON=(-hide_banner -loglevel error -nostdin -y)
# Output flags (after the inputs: placed before -i they would apply to the input instead):
#   -threads 1                    multi-threaded x264 encoding is not reproducible
#   -fflags +bitexact             muxer writes no "Lavf<version>" encoder tag
OUTF=(-threads 1 -fflags +bitexact)

# H.264 video settings shared by all H.264 outputs:
#   -pix_fmt yuv420p              testsrc2 is RGB; without this x264 picks 4:4:4 (High 4:4:4
#                                 Predictive) which browsers cannot decode
#   -profile:v high               explicit profile (x264 default for yuv420p); B-frames allowed
#   -flags:v +bitexact            no build-dependent metadata from libavcodec
#   -sc_threshold 0               no scene-cut keyframes: keyframes only where -g puts them
#   -x264-params open_gop=0       closed GOPs: every keyframe is an IDR, so each segment decodes
#                                 on its own (x264's default, stated explicitly)
# B-frames stay at x264's default (3): composition offsets (ctts/trun) and the edit list that
# compensates them are part of what the origin must carry through.
H264=(-c:v libx264 -preset medium -pix_fmt yuv420p -profile:v high -flags:v +bitexact
      -sc_threshold 0 -x264-params open_gop=0)

# AAC settings shared by all audio:
#   -c:a aac -b:a 64k             FFmpeg's native AAC-LC encoder, low bitrate
#   -aac_pns 0                    no perceptual noise substitution: PNS uses a random generator
#                                 in the decoder, so a decode that starts mid-stream (or a
#                                 second decode) would not reproduce the same PCM/framemd5
#   -flags:a +bitexact            bit-exact DSP paths in libavcodec
#   -ar 48000 -ac 2               48 kHz stereo (1024-sample AAC frames = 21.333 ms)
AAC=(-c:a aac -b:a 64k -aac_pns 0 -flags:a +bitexact -ar 48000 -ac 2)

# Fragmented MP4 muxing:
#   frag_keyframe     start a new fragment at every video keyframe (one GOP = one fragment)
#   empty_moov        moov holds no samples (a proper fMP4/CMAF-style init)
#   delay_moov        write the moov only after the first fragment is known, so ffmpeg can put
#                     an edit list in it (without it, B-frame video starts at 80 ms and AAC
#                     priming is not trimmed)
#   default_base_moof tfhd default-base-is-moof, offsets relative to the moof (CMAF style)
FRAG_V=(-movflags +frag_keyframe+empty_moov+delay_moov+default_base_moof)
# Audio has no keyframes to cut at: cut every 2 s of media instead (-frag_duration in us).
FRAG_A=(-movflags +empty_moov+delay_moov+default_base_moof -frag_duration 2000000)

# Audio source: a steady tone on the left channel, a slow chirp on the right channel. The chirp
# never repeats, so no two AAC frames decode to the same PCM and a framemd5 list also catches
# reordered or duplicated frames. $1 = tone frequency (Hz), $2 = duration (s).
audio_src() {
  echo "aevalsrc=exprs=0.4*sin(2*PI*$1*t)|0.3*sin(2*PI*(200+40*t)*t):s=48000:d=$2"
}

# out FINAL -> prints a temp path next to FINAL, registered for cleanup
tmp_for() {
  local t
  t="$(dirname "$1")/.tmp-$(basename "$1")"
  TMPS+=("$t")
  echo "$t"
}
publish() { mv -f "$1" "$2"; echo "wrote $2 ($(stat -c %s "$2") bytes)"; }

# ---------------------------------------------------------------------------------------------
# multi/: three H.264 video renditions of the same picture, fragmented, aligned GOPs.
#   testsrc2 (moving pattern + running clock) at 25 fps, 10 s = 250 frames
#   -g 50 -keyint_min 50          exactly one keyframe every 50 frames = 2 s, identical in all
#                                 renditions, so fragment/segment boundaries align across them
#   bitrates: 250k / 400k / 700k with -maxrate/-bufsize to keep sizes predictable
for spec in "320x180 180 250k" "480x270 270 400k" "640x360 360 700k"; do
  read -r size height rate <<<"$spec"
  final="$OUT/multi/video_${height}p.mp4"
  tmp=$(tmp_for "$final")
  "$FFMPEG" "${COMMON[@]}" -f lavfi -i "testsrc2=size=$size:rate=25:duration=10" \
    -map 0:v "${OUTF[@]}" "${H264[@]}" -b:v "$rate" -maxrate "$rate" -bufsize "$rate" \
    -g 50 -keyint_min 50 -an \
    "${FRAG_V[@]}" -f mp4 "$tmp"
  publish "$tmp" "$final"
done

# Two audio-only languages; distinct tones (440 Hz English, 660 Hz French) so a player that picks
# the wrong track is audible and the decoded hashes differ.
#   -metadata:s:a:0 language=...  ISO 639-2/T code in the mdhd language field
for spec in "en eng 440" "fr fra 660"; do
  read -r short lang freq <<<"$spec"
  final="$OUT/multi/audio_${short}.mp4"
  tmp=$(tmp_for "$final")
  "$FFMPEG" "${COMMON[@]}" -f lavfi -i "$(audio_src "$freq" 10)" \
    -map 0:a "${OUTF[@]}" "${AAC[@]}" -metadata:s:a:0 language="$lang" \
    "${FRAG_A[@]}" -f mp4 "$tmp"
  publish "$tmp" "$final"
done

# ---------------------------------------------------------------------------------------------
# progressive.mp4: the common "one file from an editor" case.
#   12 s; -g 60 -keyint_min 60: a keyframe every 2.4 s (0, 2.4, 4.8, 7.2, 9.6 s), so the origin's
#   "cut at the first sync sample at/after k*4 s" rule gives uneven segments (4.8, 4.8, 2.4 s)
#   and the SegmentTimeline / EXTINF values are not all equal.
#   +faststart: moov moved before mdat (classic progressive layout, no moof).
#   AAC 880 Hz; the mp4 muxer writes an edit list trimming the encoder's 1024-sample priming.
final="$OUT/progressive.mp4"
tmp=$(tmp_for "$final")
"$FFMPEG" "${COMMON[@]}" -f lavfi -i "testsrc2=size=480x270:rate=25:duration=12" \
  -f lavfi -i "$(audio_src 880 12)" \
  -map 0:v -map 1:a "${OUTF[@]}" "${H264[@]}" -b:v 400k -maxrate 400k -bufsize 400k -g 60 -keyint_min 60 \
  "${AAC[@]}" -metadata:s:a:0 language=eng \
  -movflags +faststart -f mp4 "$tmp"
publish "$tmp" "$final"

# ---------------------------------------------------------------------------------------------
# hevc.mp4: progressive HEVC + AAC.
#   -tag:v hvc1                   sample entry 'hvc1' (parameter sets only in hvcC), what Apple
#                                 and browsers expect; ffmpeg's default would be 'hev1'
#   x265 params:
#     keyint=50:min-keyint=50:scenecut=0  one keyframe every 2 s exactly
#     open-gop=0                  IDR keyframes (x265 defaults to open GOP with CRA pictures whose
#                                 leading pictures reference the previous GOP)
#     pools=1:frame-threads=1     single-threaded -> reproducible output
#     log-level=error             keep the script quiet
#   testsrc2 352x192 (multiples of 16/8 avoid conformance-window cropping), 10 s, 250k
final="$OUT/hevc.mp4"
tmp=$(tmp_for "$final")
"$FFMPEG" "${COMMON[@]}" -f lavfi -i "testsrc2=size=352x192:rate=25:duration=10" \
  -f lavfi -i "$(audio_src 1000 10)" \
  -map 0:v -map 1:a "${OUTF[@]}" -c:v libx265 -preset medium -pix_fmt yuv420p -flags:v +bitexact -b:v 250k \
  -tag:v hvc1 \
  -x265-params "keyint=50:min-keyint=50:scenecut=0:open-gop=0:pools=1:frame-threads=1:log-level=error" \
  "${AAC[@]}" -metadata:s:a:0 language=eng \
  -movflags +faststart -f mp4 "$tmp"
publish "$tmp" "$final"

# ---------------------------------------------------------------------------------------------
# fragmented.mp4: one fragmented file holding both H.264 video and AAC audio (a common encoder
#   output, and the demo configuration's clear asset: browsers decode H.264, not HEVC).
#   10 s, 2 s closed GOPs, fragments at every keyframe; AAC 550 Hz.
final="$OUT/fragmented.mp4"
tmp=$(tmp_for "$final")
"$FFMPEG" "${COMMON[@]}" -f lavfi -i "testsrc2=size=480x270:rate=25:duration=10" \
  -f lavfi -i "$(audio_src 550 10)" \
  -map 0:v -map 1:a "${OUTF[@]}" "${H264[@]}" -b:v 400k -maxrate 400k -bufsize 400k -g 50 -keyint_min 50 \
  "${AAC[@]}" -metadata:s:a:0 language=eng \
  "${FRAG_V[@]}" -f mp4 "$tmp"
publish "$tmp" "$final"

# ---------------------------------------------------------------------------------------------
# Self-check: fragmented files must contain moof boxes, progressive ones must not.
# ffprobe -v trace logs every top-level box it reads ("type:'moof'").
# (grep -c, not grep -q: -q exits early and pipefail would then report ffprobe's SIGPIPE)
has_moof() { [ "$("$FFPROBE" -v trace "$1" 2>&1 | grep -c "type:'moof'")" -gt 0 ]; }
for f in "$OUT"/multi/*.mp4 "$OUT/fragmented.mp4"; do
  has_moof "$f" || { echo "ERROR: $f is not fragmented" >&2; exit 1; }
done
for f in "$OUT/progressive.mp4" "$OUT/hevc.mp4"; do
  if has_moof "$f"; then echo "ERROR: $f is fragmented" >&2; exit 1; fi
done
echo "ok: multi/*.mp4 and fragmented.mp4 fragmented, progressive.mp4 and hevc.mp4 progressive"
