#!/usr/bin/env bash
# Data-plane throughput: 100-byte records from one producer to one consumer
# through an in-process channel (subtasks on one TaskManager) and through a
# QUIC data stream on loopback with mutual TLS, encoding and decoding
# included (subtasks on two TaskManagers). Prints records/s and MB/s of
# payload for each, and their ratio.
#
# Usage: bench/shuffle.sh [RECORDS] [BATCH]   (defaults 5000000 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh run >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo run --quiet --release -p weir-rpc --example shuffle -- "$@"
