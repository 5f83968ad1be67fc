#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in fuzz/ with libFuzzer (cargo-fuzz), seeded by the
# committed corpora (fuzz/corpus/<target>/). Each target runs SECONDS (default 60) on a scratch
# copy of its corpus, so the committed seeds stay small; a crash is saved to
# fuzz/artifacts/<target>/ and makes the script exit non-zero. Copy a reproducer into
# fuzz/corpus/<target>/ to make it a regression that `cargo test` (tests/fuzz_replay.rs) replays.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET…]
#
# FUZZ_SEED=N fixes libFuzzer's seed. CI sets it: the same source, corpus and seed replay the
# same inputs, so CI re-checks what a longer exploratory run (random seed, the default) found
# clean instead of failing a submission on a brand-new discovery; exploration happens here,
# and every crash it finds becomes a corpus file that `cargo test` replays for good.
#
# On stable Rust: no sanitizer (-s none) and RUSTC_BOOTSTRAP=1, as verified for this toolchain.
# The first build takes about 3 minutes on 2 cores (cargo-fuzz itself about 2 to install).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -O
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
    cp fuzz/corpus/"$t"/* "$scratch/$t/"
    dict=()
    seed=()
    [ -z "${FUZZ_SEED:-}" ] || seed=(-seed="$FUZZ_SEED")
    case "$t" in mp4_index|nal_subsamples) dict=(-dict=fuzz/mp4.dict) ;; esac
    echo "== $t: ${SECONDS_PER_TARGET}s"
    if ! cargo fuzz run -s none -O "$t" "$scratch/$t" -- -max_total_time="$SECONDS_PER_TARGET" \
        -max_len=262144 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "${dict[@]}" "${seed[@]}" \
        -artifact_prefix="fuzz/artifacts/$t/" 2>"$scratch/$t.log"; then
        tail -30 "$scratch/$t.log"
        failed+=("$t")
    else
        grep -E "stat::number_of_executed_units|cov:" "$scratch/$t.log" | tail -2 || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (reproducers in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${SECONDS_PER_TARGET}s each, no crash"
