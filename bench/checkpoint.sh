#!/usr/bin/env bash
# Checkpointing benchmark. Prints:
#  1. throughput of Nexmark q1 (a UDF, no state) at parallelism 1 and q7
#     (keyed tumbling window) at parallelism 1 and 2 over EVENTS events,
#     checkpoints off versus every 1 s, the overhead in %, the checkpoints'
#     mean duration and size, and the longest barrier alignment of any
#     subtask (at p2 the window subtasks align two producers);
#  2. checkpoint duration and size for a large keyed window state (KEYS
#     open session windows, one per key, held until the end of input; the
#     source is paced to last about 4 s so checkpoints see the state);
#  3. checkpoint duration and size for about 1 GB of RocksDB keyed state
#     (BLOBS keys, each holding 1000 bytes written by the keyed-blob UDF,
#     then 2000 updates/s for 30 s), incremental versus full snapshots,
#     every 2 s, 2 retained: per mode, the checkpoints taken once the state
#     had reached its size (mean duration, mean bytes written, state size),
#     and the wall time and peak RSS of resuming from the final checkpoint
#     with checkpointing off (a restore of the whole state; the input is
#     used up);
#  4. recovery time: the NAB hourly-stats job (paced to 100k records/s,
#     checkpoints every 500 ms) is killed with SIGKILL after 2 s and resumed
#     with --from-checkpoint latest; from the kill to the resumed process's
#     first processed record (its `first record processed` log line).
#
# Usage: bench/checkpoint.sh [--events N] [--keys N] [--blobs N] [--profile dev|release]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=5000000
KEYS=1000000
BLOBS=1000000
PROFILE=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --events) EVENTS="$2"; shift 2 ;;
        --keys) KEYS="$2"; shift 2 ;;
        --blobs) BLOBS="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
CLEANUP="examples/nexmark/.bench-*.yaml examples/nab-anomaly/.bench-*.yaml"
source bench/common.sh
CK="$TMP/checkpoints"

echo "machine: $CORES cores; profile: $PROFILE; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "1. throughput, checkpoints off vs every 1 s ($EVENTS events, blackhole sinks)"
printf "%-4s %2s %12s %12s %9s %12s %14s %9s\n" query p "off ev/s" "1s ev/s" overhead checkpoints "mean ms/bytes" "align ms"
for run in q1:1 q7:1 q7:2; do
    q=${run%:*}
    p=${run#*:}
    job="examples/nexmark/.bench-$q.yaml"
    sed -E -e "s/events: 1000000/events: $EVENTS/" \
        -e "s/type: file, path: [^ }]+/type: blackhole/" "examples/nexmark/$q.yaml" > "$job"
    sed -E "s/events: $EVENTS/events: 1000/" "$job" > examples/nexmark/.bench-warm.yaml
    "$WEIR" run examples/nexmark/.bench-warm.yaml --no-progress 2> "$TMP/out" || { cat "$TMP/out"; exit 1; }
    start=$(date +%s.%N)
    "$WEIR" run "$job" -p "$p" --no-progress 2> "$TMP/off" || { cat "$TMP/off"; exit 1; }
    off=$(echo "$(date +%s.%N) - $start" | bc)
    start=$(date +%s.%N)
    "$WEIR" run "$job" -p "$p" --no-progress -Dexecution.checkpointing.interval=1s \
        "-Dstate.checkpoints.dir=$CK" 2> "$TMP/on" || { cat "$TMP/on"; exit 1; }
    on=$(echo "$(date +%s.%N) - $start" | bc)
    stats=$(grep -o 'checkpoints .*' "$TMP/on" | sed -E 's/checkpoints +([0-9]+) completed \(mean ([0-9]+) ms; longest alignment ([0-9]+) ms; last: #[0-9]+ ([0-9]+) bytes written.*/\1 \2 \3 \4/')
    read -r n mean align bytes <<< "$stats"
    awk -v q="$q" -v p="$p" -v e="$EVENTS" -v off="$off" -v on="$on" -v n="$n" -v m="$mean" -v a="$align" -v b="$bytes" 'BEGIN {
        printf "%-4s %2d %11.2fM %11.2fM %8.1f%% %12d %7d / %-6d %9d\n", q, p, e / off / 1e6, e / on / 1e6, (on - off) / off * 100, n, m, b, a }'
done

echo
echo "2. a large window state: $KEYS keys, one open session window each"
cat > examples/nexmark/.bench-state.yaml <<YAML
name: bench-state
sources:
  - { id: gen, type: datagen, count: $((KEYS * 2)), keys: $KEYS, record_bytes: 20, records_per_second: $((KEYS / 2)) }
operators:
  - id: sessions
    input: gen
    partition: key_by
    window: { type: session, gap: 1day, time: processing }
    aggregate: [ { fn: count } ]
sinks:
  - { id: out, input: sessions, type: blackhole }
YAML
rm -rf "$CK"
/usr/bin/time -f "%e s wall, %M KiB peak RSS" -o "$TMP/time" \
    "$WEIR" run examples/nexmark/.bench-state.yaml --no-progress 2> "$TMP/state" || { cat "$TMP/state"; exit 1; }
echo "   checkpoints off: $(cat "$TMP/time")"
WEIR_LOG=info /usr/bin/time -f "%e s wall, %M KiB peak RSS" -o "$TMP/time" \
    "$WEIR" run examples/nexmark/.bench-state.yaml --no-progress -Dexecution.checkpointing.interval=1s \
    "-Dstate.checkpoints.dir=$CK" 2> "$TMP/state" || { cat "$TMP/state"; exit 1; }
echo "   checkpoints every 1 s: $(cat "$TMP/time")"
grep -oE "checkpoint [0-9]+ completed in [0-9]+ ms \([0-9]+ bytes" "$TMP/state" \
    | awk '{ms = $5; b = substr($7, 2); n++; if (b > maxb) { maxb = b; maxms = ms } } END {
        printf "   %d checkpoints; the largest: %.0f MB in %d ms\n", n, maxb / 1e6, maxms }'

echo
echo "3. about $((BLOBS / 1000)) MB of RocksDB keyed state ($BLOBS keys x 1000 bytes), checkpoints every 2 s"
cat > examples/nexmark/.bench-keyed.yaml <<YAML
name: bench-keyed
sources:
  - { id: load, type: datagen, count: $BLOBS, keys: $BLOBS, record_bytes: 40 }
  - { id: updates, type: datagen, count: 60000, keys: $BLOBS, record_bytes: 40, records_per_second: 2000 }
operators:
  - id: both
    input: [load, updates]
  - id: blobs
    input: both
    partition: key_by
    udf: ../../udfs/keyed-blob
    config: { value_bytes: 1000 }
sinks:
  - { id: out, input: blobs, type: blackhole }
YAML
restores=""
printf "   %-12s %7s %12s %18s %24s %9s\n" mode "wall s" checkpoints "ms mean / median" "MB written mean / median" "state MB"
for incremental in true false; do
    rm -rf "$CK"
    WEIR_LOG=info /usr/bin/time -f "%e" -o "$TMP/time" "$WEIR" run examples/nexmark/.bench-keyed.yaml \
        --no-progress -Dexecution.checkpointing.interval=2s "-Dstate.checkpoints.dir=$CK" \
        -Dstate.checkpoints.num-retained=2 "-Dexecution.checkpointing.incremental=$incremental" \
        2> "$TMP/keyed" || { cat "$TMP/keyed"; exit 1; }
    mode=$([ "$incremental" = true ] && echo incremental || echo full)
    # "ms written all" of each checkpoint
    grep -oE "checkpoint [0-9]+ completed in [0-9]+ ms \([0-9]+ bytes written, [0-9]+ bytes in all" "$TMP/keyed" \
        | awk '{ print $5, substr($7, 2), $10 }' > "$TMP/all"
    total=$(wc -l < "$TMP/all")
    # Checkpoints of the whole state: at least 90% of the largest.
    max=$(sort -k3 -n "$TMP/all" | tail -1 | cut -d' ' -f3)
    awk -v max="$max" '$3 >= 0.9 * max' "$TMP/all" > "$TMP/big"
    median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    ms_median=$(cut -d' ' -f1 "$TMP/big" | median)
    written_median=$(cut -d' ' -f2 "$TMP/big" | median)
    awk -v mode="$mode" -v wall="$(cat "$TMP/time")" -v total="$total" -v msm="$ms_median" -v wm="$written_median" '
        { k++; ms += $1; w += $2; all += $3 }
        END { printf "   %-12s %7.1f %12s %9.0f / %6.0f %13.1f / %8.1f %9.0f\n", mode, wall, k " of " total, ms / k, msm, w / k / 1e6, wm / 1e6, all / k / 1e6 }' "$TMP/big"
    # Resuming from the final checkpoint restores the whole state and ends
    # at once (the input is used up): its wall time is the restore's.
    # Checkpointing is off for it, else the final checkpoint the job takes
    # at the end of input (the whole state again) would be measured too.
    /usr/bin/time -f "%e %M" -o "$TMP/restore" "$WEIR" run examples/nexmark/.bench-keyed.yaml \
        --no-progress -Dexecution.checkpointing.interval=off "-Dstate.checkpoints.dir=$CK" \
        -Dstate.checkpoints.num-retained=2 "-Dexecution.checkpointing.incremental=$incremental" \
        --from-checkpoint latest 2> "$TMP/keyed" || { cat "$TMP/keyed"; exit 1; }
    read -r restore_s restore_kb < "$TMP/restore"
    restores="$restores$(awk -v mode="$mode" -v s="$restore_s" -v kb="$restore_kb" 'BEGIN {
        printf "   %-12s restoring the final checkpoint: %s s wall, %.0f MiB peak RSS", mode, s, kb / 1024 }')\n"
done
printf "%b" "$restores"

echo
echo "4. recovery time after SIGKILL (NAB hourly stats, checkpoints every 500 ms)"
sed -E 's/^    format: csv/    records_per_second: 100000\n    format: csv/' examples/nab-anomaly/stats.yaml \
    > examples/nab-anomaly/.bench-stats.yaml
for run in 1 2 3; do
    rm -rf "$CK"
    D=("-Dexecution.checkpointing.interval=500ms" "-Dstate.checkpoints.dir=$CK")
    "$WEIR" run examples/nab-anomaly/.bench-stats.yaml --no-progress "${D[@]}" 2> /dev/null &
    pid=$!
    sleep 2
    kill -9 "$pid"; wait "$pid" 2> /dev/null || true
    killed=$(date +%s.%N)
    WEIR_LOG=info "$WEIR" run examples/nab-anomaly/.bench-stats.yaml --no-progress "${D[@]}" \
        --from-checkpoint latest 2> "$TMP/resume" || { cat "$TMP/resume"; exit 1; }
    first=$(grep -m1 "first record processed" "$TMP/resume" | grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+' | head -1)
    first_s=$(date -d "$first" +%s.%N)
    echo "   run $run: $(echo "($first_s - $killed) * 1000" | bc | cut -d. -f1) ms from kill to first record processed"
done
