#!/usr/bin/env bash
# Fuzz the protocol parsers (fuzz/fuzz_targets/) with cargo-fuzz and libFuzzer, on stable Rust.
#
#   tools/fuzz/run.sh [SECONDS_PER_TARGET]   every target for that long (default 60) on the
#                                            committed corpus (fuzz/corpus/<target>/)
#   tools/fuzz/run.sh --ci                   a short pass for CI (FUZZ_CI_SECONDS, default 5 each)
#   tools/fuzz/run.sh --cmin                 minimize the committed corpus (as `cargo fuzz cmin`,
#                                            keeping the named seeds; libFuzzer's merge flags in
#                                            FUZZ_CMIN_ARGS, default -merge=1)
#   FUZZ_TARGETS="macaroon verify" tools/fuzz/run.sh 300   only some targets
#   FUZZ_GROW=1 tools/fuzz/run.sh 300 && tools/fuzz/run.sh --cmin
#                                            grow the committed corpus, then minimize it
#
# Fails (exit 1) if any target crashes, panics, takes over 10 s on one input or runs out of memory;
# the input is left in fuzz/artifacts/<target>/, the log in fuzz/artifacts/<target>.log, and
# `RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none <target> <file>` (in fuzz/) replays it.
# New inputs found during a run go to a scratch directory, unless FUZZ_GROW=1.
#
# On stable: cargo-fuzz passes nightly-only flags (-Z...), which stable rustc takes with
# RUSTC_BOOTSTRAP=1. The code under test has no `unsafe`, so we build without AddressSanitizer
# (`--sanitizer none`): faster builds and runs. FUZZ_SANITIZER=address uses it anyway.
#
# Builds go to FUZZ_TARGET_DIR (default fuzz/target, ignored by git). The fuzz crate depends only
# on the pure protocol crate crates/l402-proto (see fuzz/src/lib.rs), not the whole l402-mcp crate: a cold build takes about 80 s on two cores, so CI's fresh clone can
# afford it (plus about 45 s to install cargo-fuzz when it is missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

CARGO_FUZZ_VERSION=0.13.2
mode=run
seconds=60
case "${1:-}" in
    --ci) mode=ci; seconds=${FUZZ_CI_SECONDS:-5} ;;
    --cmin) mode=cmin ;;
    -h|--help) sed -n '2,/^set -e/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    '') ;;
    *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET | --ci | --cmin]" >&2; exit 2 ;;
    *) seconds=$1 ;;
esac

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION (once; kept in ~/.cargo/bin)"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-none}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$root/fuzz/target}
build_flags=(--sanitizer "$sanitizer" --target-dir "$FUZZ_TARGET_DIR")

cd fuzz
read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
((${#targets[@]})) || { echo "no fuzz targets" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
scratch_log=$scratch/log

start=$(date +%s)
echo "== cargo fuzz build (${targets[*]}; sanitizer $sanitizer; $FUZZ_TARGET_DIR)"
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    for t in "${targets[@]}"; do cargo fuzz build "${build_flags[@]}" "$t"; done
else
    cargo fuzz build "${build_flags[@]}"
fi
echo "== built in $(($(date +%s) - start)) s"

if [[ $mode == cmin ]]; then
    # `cargo fuzz cmin`, but keeping the named seeds (real inputs, from examples/seeds.rs, and
    # regressions): they stay, and of the rest (named by their SHA-1) only what adds coverage.
    size() { echo "$(find "$1" -type f | wc -l) inputs, $(find "$1" -type f -exec cat {} + | wc -c) bytes"; }
    for t in "${targets[@]}"; do
        before=$(size "corpus/$t")
        old=$scratch/old-$t
        mv "corpus/$t" "$old"
        mkdir "corpus/$t"
        for f in "$old"/*; do
            [[ ${f##*/} =~ ^[0-9a-f]{40}$ ]] || mv "$f" "corpus/$t/"
        done
        # shellcheck disable=SC2086 # FUZZ_CMIN_ARGS is a list of flags
        if ! cargo fuzz run "${build_flags[@]}" "$t" "corpus/$t" "$old" -- \
            ${FUZZ_CMIN_ARGS:--merge=1} -timeout=10 \
            >"$scratch_log" 2>&1; then
            tail -40 "$scratch_log" >&2
            cp -n "$old"/* "corpus/$t/"
            echo "$t: merge failed; corpus left as it was" >&2
            exit 1
        fi
        echo "$t: $before -> $(size "corpus/$t")"
    done
    exit 0
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    log="artifacts/$t.log" # not inside artifacts/$t/, where cargo fuzz looks for the crash input
    # The first corpus directory receives new inputs.
    if [[ -n "${FUZZ_GROW:-}" ]]; then dirs=("corpus/$t"); else dirs=("$scratch/$t" "corpus/$t"); fi
    # -timeout: one input running longer than 10 s is a hang.
    if cargo fuzz run "${build_flags[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        statval() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
        printf '%-18s ok  %10s runs %8s exec/s  %s\n' "$t" "$(statval number_of_executed_units)" \
            "$(statval average_exec_per_sec)" "$cov"
    else
        failed+=("$t")
        printf '%-18s FAILED: see fuzz/%s; the input is in fuzz/artifacts/%s/\n' "$t" "$log" "$t" >&2
        # The panic and its stack, libFuzzer's verdict, and where the input went.
        { grep -E -A24 "panicked at" "$log" | head -26
          grep -E "ERROR: libFuzzer|ALARM|SUMMARY|Test unit written|^Base64:" "$log"
        } >&2 || tail -30 "$log" >&2
    fi
done
echo "== done in $(($(date +%s) - start)) s"
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
