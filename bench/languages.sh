#!/usr/bin/env bash
# Python, JavaScript and C UDFs against Rust ones (issue 21's benchmark):
# for the identity function (`udfs/identity-<lang>` / `udfs/identity`) and
# the NAB z-score detector (`udfs/nab-zscore-<lang>` / `udfs/nab-zscore`,
# arrival order and event time), the NAB corpus (365,558 rows, 58 series;
# `--copies N` reads it N times) through `weir run` at parallelism 1 into a
# blackhole, the language and Rust alternating. Prints each run's CPU
# seconds (user + system of the whole process), rows per CPU-second and the
# ratio to Rust; the components' sizes and build times; and for each
# language the first compile of its component (an empty component cache)
# against a cached start.
#
# Usage: bench/languages.sh [--runs R] [--copies N] [--langs python,js,c] [--profile dev|release]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3
COPIES=1
LANGS=python,js,c
PROFILE=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --copies) COPIES="$2"; shift 2 ;;
        --langs) LANGS="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
NAB="${NAB_DATA:-$(cd .. && pwd)/shared/data/nab/data}"
[ -d "$NAB" ] || { echo "NAB data not found at $NAB (set NAB_DATA)" >&2; exit 1; }
source bench/common.sh
# The components' cache of its own, so the compile figures start cold.
export WEIR_CACHE_DIR="$TMP/cache"
mkdir -p "$WEIR_CACHE_DIR"
ln -s "$HOME/.cache/weir/udf-target" "$WEIR_CACHE_DIR/udf-target" 2>/dev/null || true
ln -s "$HOME/.cache/weir/js" "$WEIR_CACHE_DIR/js" 2>/dev/null || true
IFS=, read -r -a langs <<<"$LANGS"

echo "machine: $CORES cores; profile: $PROFILE; $(date -u +%Y-%m-%dT%H:%MZ)"
declare -A WASM
udfs=(identity nab-zscore)
for lang in "${langs[@]}"; do udfs+=("identity-$lang" "nab-zscore-$lang"); done
for udf in "${udfs[@]}"; do
    start=$(date +%s.%N)
    WASM[$udf]=$("$WEIR" udf build "udfs/$udf" 2>/dev/null)
    took=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%-18s %9d bytes  built in %.1f s\n' "$udf" "$(stat -c %s "${WASM[$udf]}")" "$took"
done

# NAB ×COPIES as one directory of CSVs (symlinks: no copying).
data="$TMP/data"
for c in $(seq 1 "$COPIES"); do
    mkdir -p "$data/copy$c"
    (cd "$NAB" && find . -name '*.csv') | while read -r f; do
        mkdir -p "$data/copy$c/$(dirname "$f")"
        ln -s "$NAB/$f" "$data/copy$c/$f"
    done
done
rows=$(awk 'FNR > 1 { n++ } END { print n }' "$NAB"/*/*.csv)
rows=$((rows * COPIES))
echo "$rows rows"

job() { # $1 udf, $2 config, $3 partition
    cat > "$TMP/job-$1.yaml" <<YAML
name: python-bench
parallelism: 1
sources:
  - id: readings
    type: file
    path: $data
    glob: "**/*.csv"
    format: csv
    key: { from: path }
    timestamp: { field: timestamp, format: "%Y-%m-%d %H:%M:%S" }
    watermarks: { max_out_of_orderness: 1h }
operators:
  - id: f
    input: readings
    partition: $3
    udf: ${WASM[$1]}
    memory_mib: 256
    config: $2
sinks:
  - id: out
    input: f
    type: blackhole
YAML
    echo "$TMP/job-$1.yaml"
}

cpu() { # runs a job file, prints user+system CPU seconds
    /usr/bin/time -f '%U %S' -o "$TMP/time" "$WEIR" run --no-progress "$1" >/dev/null 2>"$TMP/err" ||
        { cat "$TMP/err" >&2; exit 1; }
    awk '{ printf "%.2f", $1 + $2 }' "$TMP/time"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

compare() { # $1 label, $2 the language's job, $3 rust job
    local py=() rs=()
    # One run each first: compiles the components into the cache.
    cpu "$2" >/dev/null
    cpu "$3" >/dev/null
    for _ in $(seq 1 "$RUNS"); do
        py+=("$(cpu "$2")")
        rs+=("$(cpu "$3")")
    done
    local mp mr
    mp=$(echo "${py[*]}" | median)
    mr=$(echo "${rs[*]}" | median)
    printf '%-34s %6.2f CPU-s (%s)  %8.0f rows/CPU-s | rust %6.2f CPU-s (%s)  %8.0f rows/CPU-s | ratio %.2f\n' \
        "$1" "$mp" "${py[*]}" "$(echo "$rows / $mp" | bc -l)" "$mr" "${rs[*]}" "$(echo "$rows / $mr" | bc -l)" \
        "$(echo "$mp / $mr" | bc -l)"
}

for lang in "${langs[@]}"; do
    compare "$lang identity" "$(job "identity-$lang" '{}' forward)" "$(job identity '{}' forward)"
    compare "$lang z-score, arrival order" "$(job "nab-zscore-$lang" '{}' key_by)" "$(job nab-zscore '{}' key_by)"
    cp "$(job "nab-zscore-$lang" '{ event_time: true }' key_by)" "$TMP/et-$lang.yaml"
    compare "$lang z-score, event time" "$TMP/et-$lang.yaml" "$(job nab-zscore '{ event_time: true }' key_by)"
done

# First compile against a cached start, on a tiny input.
tiny="$TMP/tiny"
mkdir -p "$tiny/s"
head -3 "$NAB/realKnownCause/nyc_taxi.csv" > "$tiny/s/a.csv"
for lang in "${langs[@]}"; do
    sed "s|path: $data|path: $tiny|" "$(job "nab-zscore-$lang" '{}' key_by)" > "$TMP/tiny.yaml"
    for attempt in "first compile (no cache)" "cached component"; do
        [ "$attempt" = "cached component" ] || rm -rf "$WEIR_CACHE_DIR/components"
        start=$(date +%s.%N)
        "$WEIR" run --no-progress "$TMP/tiny.yaml" >/dev/null 2>&1
        printf '%-6s component, %-24s %.2f s wall for a 2-row job\n' "$lang" "$attempt:" "$(echo "$(date +%s.%N) - $start" | bc)"
    done
done
