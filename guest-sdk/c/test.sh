#!/bin/sh
# Builds and runs the C SDK's own native tests (no Wasm): the operator
# runtime and JSON tests, then an aggregate's tests. CC picks the compiler.
set -eu
cd "$(dirname "$0")"
CC="${CC:-cc}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
flags="-std=c11 -O1 -g -Wall -Wextra -Werror -I include"

$CC $flags tests/test_sdk.c tests/test_json.c tests/test_packed.c \
    src/weir_json.c src/weir_runtime.c src/weir_packed.c src/weir_testing.c -lm -o "$out/operator_tests"
"$out/operator_tests"

$CC $flags tests/agg_mean.c tests/agg_test.c \
    src/weir_json.c src/weir_testing.c -lm -o "$out/aggregate_tests"
"$out/aggregate_tests"
