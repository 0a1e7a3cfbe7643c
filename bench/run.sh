#!/usr/bin/env bash
# Weir foundation benchmarks. Prints, for parallelism 1 and 2:
#   (a) the NAB anomaly job (365,558 rows, 58 series, keyed z-score UDF),
#       and its event-time variants (stats.yaml: two windows;
#       job-event-time.yaml: z-score with event-time timers),
#   (b) an identity Rust UDF over N generated 100-byte records (default 10M)
#       into a blackhole sink,
# and the time from `weir run` to the first processed record with a cached
# component. Numbers come from `weir run`'s own summary and from wall time.
#
# Usage: bench/run.sh [--records N] [--profile dev|release]
# (default dev: the workspace dev profile is optimised, see Cargo.toml; a
# release build compiles wasmtime and RocksDB again, ~25 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=10000000
PROFILE=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --records) RECORDS="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
source bench/common.sh
IDENTITY=$("$WEIR" udf build udfs/identity 2>/dev/null)

# field VALUE from a `weir run` summary: "  records read     42"
field() { grep -E "^  $1 " "$2" | awk '{print $NF == "records/s" ? $(NF-1) : $NF}'; }
secs() { grep -E "finished in" "$1" | sed -E 's/.*finished in ([0-9.]+) s/\1/'; }
first_ms() { grep -E "first record" "$1" | awk '{print $3}'; }
per_core() { awk -v r="$1" -v p="$2" -v c="$CORES" 'BEGIN { u = (p < c ? p : c); printf "%.2f", r / u / 1e6 }'; }

echo "machine: $CORES cores, $(free -g | awk '/Mem:/ {print $2}') GiB; profile: $PROFILE; $(date -u +%Y-%m-%dT%H:%MZ)"

for p in 1 2; do
    cat > "$TMP/identity.yaml" <<YAML
name: identity-bench
sources: [{ id: gen, type: datagen, count: $RECORDS, record_bytes: 100 }]
operators: [{ id: identity, input: gen, udf: $IDENTITY }]
sinks: [{ id: out, input: identity, type: blackhole }]
YAML
    "$WEIR" run "$TMP/identity.yaml" -p "$p" --no-progress 2> "$TMP/id.txt" || { cat "$TMP/id.txt"; exit 1; }
    rate=$(field throughput "$TMP/id.txt")
    echo "identity UDF p=$p: $(field "records read" "$TMP/id.txt") records in $(secs "$TMP/id.txt") s = $(awk -v r="$rate" 'BEGIN{printf "%.2f", r/1e6}')M records/s ($(per_core "$rate" "$p")M records/s per core)"
done

for p in 1 2; do
    sed "s#path: out/nab-anomaly/alerts#path: $TMP/alerts#" examples/nab-anomaly/job.yaml > examples/nab-anomaly/.bench-job.yaml
    "$WEIR" run examples/nab-anomaly/.bench-job.yaml -p "$p" --no-progress 2> "$TMP/nab.txt" || { cat "$TMP/nab.txt"; rm -f examples/nab-anomaly/.bench-job.yaml; exit 1; }
    rm -f examples/nab-anomaly/.bench-job.yaml
    rate=$(field throughput "$TMP/nab.txt")
    echo "NAB job p=$p: $(field "records read" "$TMP/nab.txt") rows, $(field "records written" "$TMP/nab.txt") alerts, processing $(secs "$TMP/nab.txt") s = $(awk -v r="$rate" 'BEGIN{printf "%.2f", r/1e6}')M records/s"
done

for job in stats job-event-time; do
    for p in 1 2; do
        sed -e "s#out/nab-stats#$TMP/stats#; s#out/nab-anomaly-event-time#$TMP/event-time#" \
            "examples/nab-anomaly/$job.yaml" > "examples/nab-anomaly/.bench-$job.yaml"
        "$WEIR" run "examples/nab-anomaly/.bench-$job.yaml" -p "$p" --no-progress 2> "$TMP/$job.txt" || { cat "$TMP/$job.txt"; rm -f "examples/nab-anomaly/.bench-$job.yaml"; exit 1; }
        rm -f "examples/nab-anomaly/.bench-$job.yaml"
        rate=$(field throughput "$TMP/$job.txt")
        echo "NAB $job.yaml p=$p: $(field "records read" "$TMP/$job.txt") rows, $(field "records written" "$TMP/$job.txt") out, $(secs "$TMP/$job.txt") s = $(awk -v r="$rate" 'BEGIN{printf "%.2f", r/1e6}')M records/s"
    done
done

# Time to first record: a one-record job with the component already cached.
cat > "$TMP/one.yaml" <<YAML
name: first-record
sources: [{ id: gen, type: datagen, count: 1 }]
operators: [{ id: identity, input: gen, udf: $IDENTITY }]
sinks: [{ id: out, input: identity, type: blackhole }]
YAML
"$WEIR" run "$TMP/one.yaml" --no-progress 2>/dev/null   # warm the component cache
best=""
for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    "$WEIR" run "$TMP/one.yaml" --no-progress 2> "$TMP/one.txt"
    end=$(date +%s%N)
    wall=$(( (end - start) / 1000000 ))
    inner=$(first_ms "$TMP/one.txt")
    if [ -z "$best" ] || [ "$wall" -lt "$best" ]; then best=$wall; best_inner=$inner; fi
done
echo "first record (cached component): ${best_inner} ms after the job started; whole \`weir run\` of a 1-record job ${best} ms wall (best of 5)"
