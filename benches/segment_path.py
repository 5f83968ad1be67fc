"""The segment the benchmarks ask for, as a path under the origin's URL:

    python3 benches/segment_path.py URL ASSET VARIANT

prints the versioned path of the second media segment (the first if there is only one) of the
asset's biggest video rendition, in VARIANT (clear, cenc, cbcs, aes128), under the version the
origin's manifests give it now; `mpd` prints the asset's MPD path. Used by benches/profile.sh
and benches/ab.sh, so that both measure the same segment.
"""
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from http_util import parse_mpd, unversioned, versioned  # noqa: E402


def main():
    url, asset, variant = sys.argv[1:]
    mpd = f"/{asset}/manifest.mpd"
    if variant == "mpd":
        print(mpd)
        return
    with urllib.request.urlopen(url + mpd) as r:
        reps = [rep for rep in parse_mpd(r.read(), mpd) if rep.kind == "video"]
    if not reps:
        sys.exit(f"no video representation in {url}{mpd}")
    best = max(reps, key=lambda rep: rep.bandwidth)
    base = unversioned(best.media[min(1, len(best.media) - 1)])[: -len(".m4s")]
    print(versioned(url, base + ("" if variant == "clear" else "." + variant) + ".m4s"))


if __name__ == "__main__":
    main()
