#!/usr/bin/env bash
# Runs the NAB anomaly job end to end and scores its alerts against NAB's
# labelled anomaly windows. Run from anywhere; works from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Rust, the wasm32-wasip2 target and libclang: checked, and installed if missing.
scripts/bootstrap.sh run
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo run --quiet -p weir-cli --bin weir -- run examples/nab-anomaly/job.yaml "$@"
python3 examples/nab-anomaly/report.py out/nab-anomaly/alerts ../shared/data/nab/labels/combined_windows.json
