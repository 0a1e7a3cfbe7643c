#!/usr/bin/env bash
# JobManager benchmarks. Prints
#   - its idle RSS (after start, and after the jobs below finished);
#   - submit-to-first-record over REST with a cached component: the time
#     from sending `POST /v1/jobs` to the first record an operator
#     processed (the JobManager's `first-record-ms`, counted from when it
#     accepted the job, plus the POST's round trip as curl times it),
#     median/min/max of
#     RUNS submissions of a small job (an identity UDF over 1,000
#     generated records).
# Targets (issue: JobManager/REST): submit-to-first-record <= 100 ms,
# idle RSS <= 50 MB.
#
# Usage: bench/jobmanager.sh [--runs N] [--profile dev|release]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=20
PROFILE=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
source bench/common.sh
IDENTITY=$("$WEIR" udf build udfs/identity 2>/dev/null)

"$WEIR" jobmanager -Drest.port=0 -Dhigh-availability.storageDir="$TMP/ha" \
    -Dtaskmanager.numberOfTaskSlots=2 2>"$TMP/jm.log" &
JM=$!
CLEANUP="$TMP"
trap 'kill $JM 2>/dev/null; wait $JM 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$TMP/jm.log" 2>/dev/null && break
    sleep 0.1
done
URL=$(grep -o 'http://[0-9.:]*' "$TMP/jm.log" | head -1)
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$JM/status"; }
echo "JobManager idle RSS after start: $(rss)"

ID=$(curl -sS --data-binary @"$IDENTITY" -H 'Content-Type: application/wasm' "$URL/v1/artifacts" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cat >"$TMP/job.yaml" <<YAML
name: first-record
sources:
  - { id: gen, type: datagen, count: 1000, record_bytes: 100, keys: 10 }
operators:
  - { id: id, input: gen, udf: "artifact:$ID" }
sinks:
  - { id: out, input: id, type: blackhole }
YAML
for i in $(seq "$RUNS"); do
    # curl times its own round trip, so no process start-up is counted.
    resp=$(curl -sS -w '\n%{time_total}' --data-binary @"$TMP/job.yaml" \
        -H 'Content-Type: application/yaml' "$URL/v1/jobs")
    post_s=$(tail -1 <<<"$resp")
    job=$(head -1 <<<"$resp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobid"])')
    while :; do
        details=$(curl -sS "$URL/v1/jobs/$job")
        state=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["state"])' "$details")
        [ "$state" = FINISHED ] && break
        [ "$state" = FAILED ] && { echo "job failed: $details" >&2; exit 1; }
        sleep 0.02
    done
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["metrics"]["first-record-ms"] + float(sys.argv[2]) * 1000)' \
        "$details" "$post_s"
done >"$TMP/latencies"
python3 - "$TMP/latencies" <<'PY'
import statistics, sys
v = sorted(float(x) for x in open(sys.argv[1]))
print(f"submit-to-first-record over REST (cached component), {len(v)} runs: "
      f"median {statistics.median(v):.1f} ms, min {v[0]:.1f} ms, max {v[-1]:.1f} ms")
PY
sleep 1
echo "JobManager idle RSS after $RUNS jobs: $(rss)"
