#!/usr/bin/env bash
# Cluster benchmarks, on loopback: a JobManager without slots of its own and
# TaskManagers (127.0.0.2, ...) of one slot each, so at parallelism 2 every
# key_by shuffle crosses between two of them over QUIC.
#
# 1. Wall time of each workload on the cluster against `weir run` (all in
#    one process), alternating cluster and embedded runs RUNS times (the VM
#    drifts; only interleaved runs compare), with the median and min of
#    each and their ratio. Cluster time is the JobManager's `duration` of
#    the job (submit to FINISHED, deployment included); embedded time is
#    the `weir run` process's wall time.
#      nab   the NAB z-score job (keyed by series: a shuffle)
#      q1    Nexmark q1 over EVENTS events (a map: no shuffle, chained)
#      q5    Nexmark q5 over EVENTS events (keyed windows: a shuffle)
#    Sinks are blackholes.
# 2. Recovery: three TaskManagers of one slot, the NAB job at parallelism
#    2 paced to ~6 s, checkpointing every 200 ms, heartbeat.timeout 1 s;
#    the first TaskManager is SIGKILLed after the second
#    checkpoint. Prints kill -> the loss detected (the exception's
#    timestamp) and kill -> the restarted attempt's first completed
#    checkpoint (so: processing again, with state restored). Target
#    (issue 20): <= 2 x heartbeat.timeout + 1 s.
#
# Usage: bench/cluster.sh [--runs N] [--events N] [--profile dev|release]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3
EVENTS=2000000
PROFILE=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --events) EVENTS="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
source bench/common.sh
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap 'stop_all; rm -rf "$TMP"' EXIT
NAB=$(cd ../shared/data/nab/data && pwd)
ZSCORE=$("$WEIR" udf build udfs/nab-zscore 2>/dev/null)
Q1=$("$WEIR" udf build udfs/nexmark-q1 2>/dev/null)
TOP=$("$WEIR" udf build udfs/window-top 2>/dev/null)

nab_job() { # $1 out-extra (source lines)
cat <<YAML
name: nab-bench
sources:
  - id: readings
    type: file
    path: $NAB
    glob: "**/*.csv"
    format: csv
$1    key: { from: path }
    timestamp: { field: timestamp, format: "%Y-%m-%d %H:%M:%S" }
operators:
  - { id: zscore, input: readings, partition: key_by, udf: UDF, config: { warmup: 30, threshold: 4.0 } }
sinks:
  - { id: alerts, input: zscore, type: blackhole }
YAML
}
nexmark_job() { # $1 query
    sed -E -e "s/events: 1000000/events: $EVENTS/" -e "s/type: file, path: [^ }]+/type: blackhole/" \
        -e "s#udf: \.\./\.\./udfs/[a-z0-9-]+#udf: UDF#" "examples/nexmark/$1.yaml"
}
nab_job "" > "$TMP/nab.yaml"
nexmark_job q1 > "$TMP/q1.yaml"
nexmark_job q5 > "$TMP/q5.yaml"
sed "s#UDF#$ZSCORE#" "$TMP/nab.yaml" > "$TMP/nab-local.yaml"
sed "s#UDF#$Q1#" "$TMP/q1.yaml" > "$TMP/q1-local.yaml"
sed "s#UDF#$TOP#" "$TMP/q5.yaml" > "$TMP/q5-local.yaml"
WORKLOADS="nab q1 q5"

start_cluster() { # number of TaskManagers, then extra -D for the JobManager
    local count=$1; shift
    "$WEIR" cert init "$TMP/certs" >/dev/null 2>&1 || true
    rm -rf "$TMP/ha"
    "$WEIR" jobmanager --certs "$TMP/certs" -Drest.port=0 -Djobmanager.rpc.port=0 \
        -Dtaskmanager.numberOfTaskSlots=0 -Dhigh-availability.storageDir="$TMP/ha" \
        -Dheartbeat.interval=200 -Dheartbeat.timeout=1000 "$@" 2> "$TMP/jm.log" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "cluster endpoint on" "$TMP/jm.log" && break; sleep 0.1; done
    RPC=$(grep -o "endpoint on [0-9.:]*" "$TMP/jm.log" | awk '{print $3}')
    URL=$(grep -o "http://[0-9.:]*" "$TMP/jm.log")
    TMS=()
    for h in $(seq 2 $((count + 1))); do
        "$WEIR" taskmanager --jobmanager "$RPC" --host 127.0.0.$h --slots 1 --certs "$TMP/certs" 2> "$TMP/tm$h.log" &
        PIDS+=($!); TMS+=($!)
    done
    for h in $(seq 2 $((count + 1))); do for _ in $(seq 100); do grep -q "registered as" "$TMP/tm$h.log" && break; sleep 0.1; done; done
}
submit() { "$WEIR" submit "$1" -p 2 --jobmanager "$URL" 2>/dev/null; }
state() { curl -s "$URL/v1/jobs/$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j.get("duration", 0))'; }
wait_done() { local until=$((SECONDS + 300)); while [ $SECONDS -lt $until ]; do read -r s d < <(state "$1"); case "$s" in FINISHED) echo "$d"; return;; FAILED|CANCELED) echo "job $1 $s" >&2; exit 1;; esac; sleep 0.05; done; echo "job $1 did not finish" >&2; exit 1; }

echo "machine: $CORES cores; profile: $PROFILE; Nexmark events: $EVENTS; runs: $RUNS; $(date -u +%Y-%m-%dT%H:%MZ)"
start_cluster 2
IDS=$("$WEIR" udf upload "$ZSCORE" --jobmanager "$URL" 2>/dev/null); sed -i "s#UDF#artifact:$IDS#" "$TMP/nab.yaml"
IDQ=$("$WEIR" udf upload "$Q1" --jobmanager "$URL" 2>/dev/null); sed -i "s#UDF#artifact:$IDQ#" "$TMP/q1.yaml"
IDT=$("$WEIR" udf upload "$TOP" --jobmanager "$URL" 2>/dev/null); sed -i "s#UDF#artifact:$IDT#" "$TMP/q5.yaml"
printf "%-5s %22s %22s %8s\n" job "cluster median/min s" "embedded median/min s" ratio
for w in $WORKLOADS; do
    : > "$TMP/c"; : > "$TMP/e"
    for _ in $(seq "$RUNS"); do
        id=$(submit "$TMP/$w.yaml"); ms=$(wait_done "$id"); echo "scale=3; $ms/1000" | bc >> "$TMP/c"
        /usr/bin/time -f "%e" -o "$TMP/t" "$WEIR" run "$TMP/$w-local.yaml" -p 2 --no-progress 2>/dev/null
        cat "$TMP/t" >> "$TMP/e"
    done
    med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    mn() { sort -n "$1" | head -1; }
    cm=$(med "$TMP/c"); em=$(med "$TMP/e")
    printf "%-5s %22s %22s %8s\n" "$w" "$cm / $(mn "$TMP/c")" "$em / $(mn "$TMP/e")" "$(echo "scale=2; $cm/$em" | bc)"
done
stop_all; PIDS=()

# Recovery.
start_cluster 3 -Dexecution.checkpointing.interval=200ms -Drestart-strategy.type=fixed-delay \
    -Drestart-strategy.fixed-delay.attempts=3 -Drestart-strategy.fixed-delay.delay=100ms
IDS=$("$WEIR" udf upload "$ZSCORE" --jobmanager "$URL" 2>/dev/null)
nab_job "    records_per_second: 60000
" | sed "s#UDF#artifact:$IDS#" > "$TMP/paced.yaml"
id=$(submit "$TMP/paced.yaml")
deadline=$((SECONDS + 60))
while [ "$(curl -s "$URL/v1/jobs/$id/checkpoints" | python3 -c 'import json,sys; print(json.load(sys.stdin)["completed"])')" -lt 2 ]; do
    [ $SECONDS -lt $deadline ] || { echo "no checkpoint within 60 s" >&2; exit 1; }; sleep 0.05
done
# A TaskManager that runs subtasks of the job (one of the three is idle).
busy=$(curl -s "$URL/v1/taskmanagers" | python3 -c 'import json,sys; print(next(t["host"] for t in json.load(sys.stdin)["taskmanagers"] if t["slots-free"] == 0))')
kill_ms=$(date +%s%3N); kill -9 "${TMS[$((${busy##*.} - 2))]}"
deadline=$((SECONDS + 60))
while [ "$(curl -s "$URL/v1/jobs/$id/exceptions" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["exceptions"]))')" -lt 1 ]; do
    [ $SECONDS -lt $deadline ] || { echo "the loss was not detected" >&2; exit 1; }; sleep 0.02
done
detected=$(curl -s "$URL/v1/jobs/$id/exceptions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["exceptions"][0]["timestamp_ms"])')
before=$(curl -s "$URL/v1/jobs/$id/checkpoints" | python3 -c 'import json,sys; print(json.load(sys.stdin)["completed"])')
while :; do
    now=$(curl -s "$URL/v1/jobs/$id/checkpoints" | python3 -c 'import json,sys; print(json.load(sys.stdin)["completed"])')
    [ "$now" -gt "$before" ] && break
    [ $SECONDS -lt $deadline ] || { echo "the job did not recover within 60 s" >&2; exit 1; }; sleep 0.02
done
again=$(date +%s%3N)
echo "recovery (heartbeat.timeout 1000 ms): loss detected $((detected - kill_ms)) ms after the kill; first checkpoint of the restarted attempt $((again - kill_ms)) ms after it (target <= 3000 ms)"
wait_done "$id" >/dev/null
