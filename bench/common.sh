# Sourced by the benchmarks after they read PROFILE (dev|release): builds
# `weir` in that profile and sets WEIR (the binary), CORES and TMP (a
# temporary directory removed on exit, with the paths in CLEANUP, which
# may hold globs).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo build --quiet --profile "$PROFILE" -p weir-cli --bin weir
WEIR="$CARGO_TARGET_DIR/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/weir"
CORES=$(nproc)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP" ${CLEANUP:-}' EXIT
