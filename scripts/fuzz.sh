#!/usr/bin/env bash
# Coverage-guided fuzzing of what Weir reads from outside (fuzz/, AFL++ via
# `cargo afl`, which runs on the stable toolchain). Builds the targets with
# AFL's instrumentation (its own target directory), then runs each target
# for SECONDS (default 30) from its seed corpus (fuzz/seeds/<target>),
# non-interactively, and prints per target the executions, paths found and
# crashes. Exits non-zero when any target crashed or hung; the inputs are
# under $OUT/<target>/default/{crashes,hangs} (kept), to be added to the
# target's seeds as regression inputs once fixed.
#
# Usage: scripts/fuzz.sh [--seconds N] [--out DIR] [TARGET...]
#   (default: every target; one hour each is `--seconds 3600`)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=30
OUT="${TMPDIR:-/tmp}/weir-fuzz"
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_EACH="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(job_file packed_batch data_frames control_frames checkpoint_metadata csv_records jsonl_records state_files keyed_state operator_snapshots)
fi
# cargo-afl matches the `afl` crate of fuzz/Cargo.toml (0.18).
if ! cargo afl --version 2>/dev/null | grep -q "^cargo-afl 0\.18\."; then
    echo "fuzz: installing cargo-afl 0.18 (AFL++ for Rust on stable; builds AFL++ with make, about 3 minutes, once)"
    cargo install cargo-afl --version "~0.18" --locked --quiet
fi
export CARGO_TARGET_DIR="$HOME/.cache/weir/fuzz-target"
(cd fuzz && cargo afl build --release --quiet --bins)
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    AFL_NO_AFFINITY=1 AFL_NO_CRASH_README=1
status=0
printf "%-20s %12s %8s %8s %8s\n" target executions paths crashes hangs
for t in "${TARGETS[@]}"; do
    rm -rf "$OUT/$t"; mkdir -p "$OUT/$t"
    (cd fuzz && cargo afl fuzz -i "seeds/$t" -o "$OUT/$t" -V "$SECONDS_EACH" \
        "$CARGO_TARGET_DIR/release/$t" </dev/null >"$OUT/$t.log" 2>&1) || {
        echo "fuzz: afl-fuzz failed for $t; see $OUT/$t.log" >&2; tail -5 "$OUT/$t.log" >&2; status=1; continue; }
    stats="$OUT/$t/default/fuzzer_stats"
    if [ ! -f "$stats" ]; then
        echo "fuzz: $t wrote no fuzzer_stats; see $OUT/$t.log" >&2; status=1; continue
    fi
    get() { awk -F': *' -v k="$1" '$1 ~ "^"k" *$" {print $2}' "$stats"; }
    crashes=$(get saved_crashes); hangs=$(get saved_hangs)
    printf "%-20s %12s %8s %8s %8s\n" "$t" "$(get execs_done)" "$(get corpus_count)" "$crashes" "$hangs"
    if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
        echo "fuzz: $t: inputs under $OUT/$t/default/crashes and hangs" >&2
        status=1
    fi
done
exit $status
