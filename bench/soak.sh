#!/usr/bin/env bash
# Soak: a checkpointed keyed job run for a long time at about half of what
# this machine does unpaced, watching that nothing grows.
#
# The job is Nexmark q5 (a 10 s / 2 s sliding-window count per auction,
# re-keyed by window into the window-top UDF; RocksDB keyed state in both),
# checkpoints every 1 s, a blackhole sink. A short unpaced run measures the
# machine's rate first; the soak then paces the source at half of it
# (`records_per_second`) for MINUTES minutes. Prints:
#   - RSS of the `weir` process every SAMPLE seconds (and its anonymous
#     and file-backed parts);
#   - RSS growth: the median of the last minute's samples against the
#     median of the first minute's after the warm-up (the first 5 minutes,
#     or the first quarter of a shorter run), and the peak;
#   - checkpoint duration percentiles (p50, p90, p99, max) over the
#     checkpoints completed after the warm-up, and how many;
#   - throughput (records read per second over the whole run).
# Targets (issue: hardening): RSS growth under 10 % after the warm-up,
# checkpoint p99 under 1 s; each is reported as met or missed. The script
# fails (exit 1) only when the job fails or overruns (it is killed after
# twice its planned time plus a minute).
#
# Usage: bench/soak.sh [--minutes N] [--sample SECONDS] [--profile dev|release]
#                      [--keep-log FILE]
# WEIR_LOG (default `info`) filters the job's log; `--keep-log` copies it to
# FILE (e.g. with WEIR_LOG=info,weir_state::rocksdb=debug, RocksDB's memory
# at every checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=60
SAMPLE=10
PROFILE=dev
KEEP_LOG=
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --sample) SAMPLE="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --keep-log) KEEP_LOG="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
CLEANUP="examples/nexmark/.soak-*.yaml"
source bench/common.sh

q5() { # $1 events, $2 extra source line (or empty), $3 output file
    sed -E -e "s/events: 1000000 /events: $1 /" \
        -e "s/type: file, path: [^ }]+/type: blackhole/" \
        -e "s/^(    seed: 42)$/\1${2}/" examples/nexmark/q5.yaml > "$3"
}

echo "machine: $CORES cores; profile: $PROFILE; $(date -u +%Y-%m-%dT%H:%MZ)"
probe=examples/nexmark/.soak-probe.yaml
q5 2000000 "" "$probe"
"$WEIR" run "$probe" --no-progress 2> "$TMP/probe" || { cat "$TMP/probe"; exit 1; }
rate=$(awk '/throughput/ {print int($2)}' "$TMP/probe")
pace=$((rate / 2))
seconds=$((MINUTES * 60))
events=$((pace * seconds))
warmup=$((seconds / 4 < 300 ? seconds / 4 : 300))
echo "unpaced rate $rate records/s; soaking at $pace records/s for $MINUTES min ($events events), warm-up $warmup s"

job=examples/nexmark/.soak-job.yaml
q5 "$events" "\n    records_per_second: $pace" "$job"
WEIR_LOG="${WEIR_LOG:-info}" "$WEIR" run "$job" --no-progress \
    -Dexecution.checkpointing.interval=1s \
    -Dstate.checkpoints.dir="$TMP/checkpoints" 2> "$TMP/log" &
pid=$!
CLEANUP="$CLEANUP $TMP"
trap 'kill $pid 2>/dev/null || true; rm -rf "$TMP" $CLEANUP' EXIT
limit=$((2 * seconds + 60))
start=$(date +%s)
: > "$TMP/rss"
while kill -0 "$pid" 2>/dev/null; do
    now=$(($(date +%s) - start))
    if [ "$now" -gt "$limit" ]; then
        kill "$pid"
        echo "the soak overran its $limit s bound; killed" >&2
        exit 1
    fi
    # VmRSS, and its anonymous (heap) and file-backed parts, in kB.
    rss=$(awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$now $rss" >> "$TMP/rss"
    sleep "$SAMPLE"
done
if ! wait "$pid"; then
    echo "the soak job failed:" >&2
    tail -20 "$TMP/log" >&2
    exit 1
fi
elapsed=$(($(date +%s) - start))
[ -n "$KEEP_LOG" ] && cp "$TMP/log" "$KEEP_LOG"
python3 - "$TMP/rss" "$TMP/log" "$warmup" "$elapsed" "$SAMPLE" <<'PY'
import re, sys
rss_file, log_file, warmup, elapsed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = [list(map(int, l.split())) for l in open(rss_file) if len(l.split()) == 4]
samples = [(r[0], r[1]) for r in rows]
print("RSS over time (s: MB, anonymous + file-backed):",
      ", ".join(f"{t}: {kb / 1024:.1f} ({a / 1024:.1f} + {f / 1024:.1f})" for t, kb, a, f in rows))
after = [r for r in rows if r[0] >= warmup]
if len(after) >= 4:
    # One sample swings by a few MB (allocator and RocksDB memtables fill
    # and empty between checkpoints): compare the medians of the first and
    # the last minute (at least two samples each) after the warm-up.
    n = max(2, min(len(after) // 4, 60 // max(1, int(sys.argv[5]))))
    median = lambda xs: sorted(xs)[len(xs) // 2]
    first = [median([r[i] for r in after[:n]]) for i in (1, 2)]
    last = [median([r[i] for r in after[-n:]]) for i in (1, 2)]
    growth = (last[0] - first[0]) / first[0] * 100
    verdict = "met" if growth < 10 else "missed"
    print(f"RSS after warm-up {first[0] / 1024:.1f} MB (anonymous {first[1] / 1024:.1f}), "
          f"at the end {last[0] / 1024:.1f} MB (anonymous {last[1] / 1024:.1f}), medians of "
          f"{n} samples: growth {growth:+.1f} % (target < 10 %: {verdict}); "
          f"peak {max(r[1] for r in after) / 1024:.1f} MB")
else:
    print("RSS growth: too few samples after the warm-up")
log = open(log_file).read()
# Log lines carry an RFC 3339 time; the checkpoint's completion is enough
# to drop the warm-up ones by their order (one per second).
durations = [int(m) for m in re.findall(r"checkpoint \d+ completed in (\d+) ms", log)]
steady = durations[warmup:] if len(durations) > warmup + 10 else durations
if steady:
    s = sorted(steady)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    verdict = "met" if pick(0.99) < 1000 else "missed"
    print(f"checkpoints: {len(durations)} completed ({len(steady)} after the warm-up); "
          f"duration p50 {pick(0.5)} ms, p90 {pick(0.9)} ms, p99 {pick(0.99)} ms, max {s[-1]} ms "
          f"(target p99 < 1000 ms: {verdict})")
else:
    print("checkpoints: none completed")
m = re.search(r"records read +(\d+)", log)
if m:
    print(f"throughput: {int(m.group(1)) / max(elapsed, 1):.0f} records/s over {elapsed} s")
PY
