#!/usr/bin/env bash
# Keyed state and timers of a UDF (issue 24's benchmark, Weir's side): NAB
# copied N times (default 20: 7,311,160 rows, 1,160 series) into one CSV
# sorted by time (`series,timestamp,value`), keyed by series, through
# `udfs/nab-zscore`
#   - in event time (readings buffered in map state until the watermark,
#     1 h behind, passes them; an event-time timer per reading), and
#   - in arrival order (Welford statistics in value state per reading),
# each with the RocksDB and the memory state backend, and with RocksDB and
# a guest state cache of 256 KiB (`state_cache_bytes`, far smaller than the
# state: it spills, issue 24's "state larger than the cache"), at
# parallelism 1, into a blackhole. Runs alternate (RocksDB, memory, small
# cache, RocksDB, ...) so the machine's drift hits all; prints each run's
# CPU seconds (user + system of the whole process), the medians, rows per
# CPU-second and the ratios. Flink's side of the comparison is
# `bench/flink-compare --workloads nab-event-time`.
#
# Usage: bench/state.sh [--copies N] [--runs R] [--profile dev|release]
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES=20
RUNS=3
PROFILE=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --copies) COPIES="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
NAB="${NAB_DATA:-$(cd .. && pwd)/shared/data/nab/data}"
[ -d "$NAB" ] || { echo "NAB data not found at $NAB (set NAB_DATA)" >&2; exit 1; }
source bench/common.sh
UDF=$("$WEIR" udf build udfs/nab-zscore 2>/dev/null)

echo "machine: $CORES cores; profile: $PROFILE; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "writing NAB x$COPIES sorted by time ..."
input="$TMP/nab-sorted.csv"
{
    echo "series,timestamp,value"
    for f in $(cd "$NAB" && find . -name '*.csv' | sort); do
        series=${f#./}
        for c in $(seq 1 "$COPIES"); do
            tail -n +2 "$NAB/$f" | awk -F, -v s="copy$c/$series" '{ print s "," $1 "," $2 }'
        done
    done | LC_ALL=C sort -t, -k2,2 -s
} > "$input"
rows=$(($(wc -l < "$input") - 1))
echo "$rows rows"

job() { # $1 backend, $2 event_time (true|false), $3 more config
    local extra="${3:-}"
    cat > "$TMP/job-$1-$2$extra.yaml" <<YAML
name: state-bench
state_backend: $1
sources:
  - id: readings
    type: file
    path: $input
    format: csv
    key: { field: series }
    timestamp: { field: timestamp, format: "%Y-%m-%d %H:%M:%S" }
    watermarks: { max_out_of_orderness: 1h }
operators:
  - id: zscore
    input: readings
    partition: key_by
    udf: $UDF
    config: { warmup: 30, threshold: 4.0, event_time: $2$extra }
sinks:
  - { id: alerts, input: zscore, type: blackhole }
  - { id: late, input: { from: zscore, output: late }, type: blackhole }
YAML
    echo "$TMP/job-$1-$2$extra.yaml"
}

cpu_of() { # runs `weir run $1`, prints user + system seconds
    /usr/bin/time -f "%U %S" -o "$TMP/time" "$WEIR" run "$1" -p 1 --no-progress 2> "$TMP/run.txt" \
        || { cat "$TMP/run.txt"; exit 1; }
    awk '{ printf "%.2f", $1 + $2 }' "$TMP/time"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for event_time in true false; do
    name=$([ "$event_time" = true ] && echo "event time" || echo "arrival order")
    rocks=""; memory=""; small=""
    for r in $(seq 1 "$RUNS"); do
        rocks="$rocks $(cpu_of "$(job rocksdb "$event_time")")"
        memory="$memory $(cpu_of "$(job memory "$event_time")")"
        small="$small $(cpu_of "$(job rocksdb "$event_time" ", state_cache_bytes: 262144")")"
    done
    mr=$(echo "$rocks" | median); mm=$(echo "$memory" | median); ms=$(echo "$small" | median)
    per_cpu() { awk -v r="$rows" -v s="$1" 'BEGIN { printf "%.0f", r / s }'; }
    echo "$name: RocksDB             CPU-s [$rocks ] median $mr = $(per_cpu "$mr") rows per CPU-s"
    echo "$name: memory              CPU-s [$memory ] median $mm = $(per_cpu "$mm") rows per CPU-s"
    echo "$name: RocksDB, 256 KiB cache CPU-s [$small ] median $ms = $(per_cpu "$ms") rows per CPU-s"
    echo "$name: RocksDB / memory = $(awk -v a="$mr" -v b="$mm" 'BEGIN { printf "%.2f", a / b }');" \
        "small cache / RocksDB = $(awk -v a="$ms" -v b="$mr" 'BEGIN { printf "%.2f", a / b }')"
done
