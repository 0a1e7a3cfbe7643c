#!/usr/bin/env bash
# Runs every test of the host workspace: unit tests, integration tests and
# end-to-end tests (which build the example UDFs for wasm32-wasip2 on demand).
# Needs the wasm32-wasip2 target and, for the Python UDF test, componentize-py
# on PATH; .ci/run installs both.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo test --workspace --no-fail-fast "$@"
