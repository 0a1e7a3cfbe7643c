#!/usr/bin/env bash
# Runs every test of the host workspace: unit tests, integration tests and
# end-to-end tests (which build the example UDFs for wasm32-wasip2 on demand),
# then the Rust guest SDK's unit tests, the Python SDK's and Python UDFs'
# unit tests (pytest), the JavaScript SDK's and JavaScript UDFs' (node), the
# C SDK's and C UDFs' (cc, natively) and the fuzz targets' seed corpora.
# What it needs (the wasm32-wasip2 target, libclang, componentize-py for the
# Python UDF tests, clang-19 with wasi-libc for the C UDF tests, moto_server
# and azure-storage-blob from PyPI and azurite-blob from npm for the
# object-store checkpoint tests)
# scripts/bootstrap.sh checks and installs first, putting Azurite on PATH.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh test
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# The Rust guest SDK is its own workspace (it builds for wasm32-wasip2);
# its unit tests run natively.
(cd guest-sdk/rust && CARGO_TARGET_DIR="$HOME/.cache/weir/sdk-native" cargo test --no-fail-fast) || status=$?
# The Python SDK's unit tests and the Python UDFs' own, on the host (no
# Wasm; the Rust tests above build and run the same code as components).
(cd guest-sdk/python && PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -q -p no:cacheprovider tests) || status=$?
for udf in udfs/*/test_app.py; do
    (cd "$(dirname "$udf")" && PYTHONPATH="$OLDPWD/guest-sdk/python" PYTHONDONTWRITEBYTECODE=1 \
        python3 -m pytest -q -p no:cacheprovider test_app.py) || status=$?
done
# The JavaScript SDK's unit tests (node's test runner), and the JavaScript
# UDFs' own through `weir udf test` (which bundles them with the SDK).
(cd guest-sdk/js && node --test test/) || status=$?
for udf in udfs/*/app.test.js; do
    "$CARGO_TARGET_DIR/debug/weir" udf test "$(dirname "$udf")" || status=$?
done
# The C SDK's unit tests (natively, over its in-memory host), and the C
# UDFs' own through `weir udf test` (the same native build).
bash guest-sdk/c/test.sh || status=$?
for udf in udfs/*/app.c; do
    if compgen -G "$(dirname "$udf")/test_*.c" >/dev/null; then
        "$CARGO_TARGET_DIR/debug/weir" udf test "$(dirname "$udf")" || status=$?
    fi
done
# The fuzz targets' seed corpora (regression inputs included) replayed
# through the targets, built plainly (scripts/fuzz.sh fuzzes them).
(cd fuzz && CARGO_TARGET_DIR="$HOME/.cache/weir/fuzz-native" cargo test --no-fail-fast) || status=$?
exit $status
