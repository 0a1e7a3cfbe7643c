#!/usr/bin/env bash
# Runs every test of the host workspace: unit tests, integration tests and
# end-to-end tests (which build the example UDFs for wasm32-wasip2 on demand),
# then the Rust guest SDK's unit tests.
# Needs the wasm32-wasip2 target; componentize-py (Python UDF tests);
# moto_server, boto3 and azure-storage-blob (PyPI) and azurite-blob (npm) on
# PATH for the object-store checkpoint tests. .ci/run installs them all.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# The Rust guest SDK is its own workspace (it builds for wasm32-wasip2);
# its unit tests run natively.
(cd guest-sdk/rust && CARGO_TARGET_DIR="$HOME/.cache/weir/sdk-native" cargo test --no-fail-fast) || status=$?
exit $status
