#!/usr/bin/env bash
# Nexmark benchmark: q0, q1, q2, q5, q7 and q8 of examples/nexmark/ over
# EVENTS generated events (default 10M; persons:auctions:bids 1:3:46) at
# parallelism 1 and 2, every sink replaced by a blackhole. Prints per run:
#   wall time, events/s, events/s per core (events/s divided by
#   min(parallelism, cores)), events per CPU-second (user + sys time of
#   the whole process), and peak RSS.
# Events count every generated event number; a source limited to some
# kinds (q0-q7 read bids only, q8 persons and auctions) skips the others
# without generating them, as a projection would.
#
# Usage: bench/nexmark.sh [--events N] [--queries "q0 q1 ..."] [--profile dev|release]
#                         [--batch-size N]   (the jobs' batch_size; default: the job default)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=10000000
QUERIES="q0 q1 q2 q5 q7 q8"
PROFILE=dev
BATCH=""
while [ $# -gt 0 ]; do
    case "$1" in
        --events) EVENTS="$2"; shift 2 ;;
        --queries) QUERIES="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --batch-size) BATCH="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
CLEANUP="examples/nexmark/.bench-*.yaml"
source bench/common.sh

echo "machine: $CORES cores, $(free -g | awk '/Mem:/ {print $2}') GiB; profile: $PROFILE; events: $EVENTS; batch size: ${BATCH:-default}; $(date -u +%Y-%m-%dT%H:%MZ)"
printf "%-4s %2s %9s %12s %14s %14s %10s\n" query p "wall s" "events/s" "per core" "per CPU-s" "peak RSS"
for q in $QUERIES; do
    job="examples/nexmark/.bench-$q.yaml"
    # Same job, EVENTS events, blackhole sinks (the UDF paths stay relative).
    sed -E -e "s/events: 1000000/events: $EVENTS/" \
        -e "s/type: file, path: [^ }]+/type: blackhole/" "examples/nexmark/$q.yaml" > "$job"
    if [ -n "$BATCH" ]; then
        sed -i -E "s/^name: (.*)/name: \1\nbatch_size: $BATCH/" "$job"
    fi
    # Build and cache the UDFs before timing, with a tiny run.
    sed -E "s/events: $EVENTS/events: 1000/" "$job" > "$TMP/warm.yaml"
    cp "$TMP/warm.yaml" "examples/nexmark/.bench-warm.yaml"
    "$WEIR" run examples/nexmark/.bench-warm.yaml --no-progress 2> "$TMP/out" || { cat "$TMP/out"; exit 1; }
    for p in 1 2; do
        /usr/bin/time -f "%e %U %S %M" -o "$TMP/time" \
            "$WEIR" run "$job" -p "$p" --no-progress 2> "$TMP/out" || { cat "$TMP/out"; exit 1; }
        read -r wall user sys rss < "$TMP/time"
        awk -v q="$q" -v p="$p" -v n="$EVENTS" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v c="$CORES" 'BEGIN {
            used = (p < c ? p : c); rate = n / w
            printf "%-4s %2d %9.2f %11.2fM %13.2fM %13.2fM %7.0f MiB\n", q, p, w, rate / 1e6, rate / used / 1e6, n / (u + s) / 1e6, r / 1024 }'
    done
done
