#!/usr/bin/env bash
# Checks what Weir's build and tests need and installs what is missing,
# saying in one line per item what it installs and why. The README's two
# commands and .ci/run call it; it is quiet when everything is present.
#
#   scripts/bootstrap.sh run       Rust, the wasm32-wasip2 target, libclang
#   scripts/bootstrap.sh test      the same, plus rustfmt, clippy, the Python
#                                  test packages (pip), Azurite (npm, which
#                                  it installs from apt when missing), the JS
#                                  and C UDF toolchains and Java 17 (apt)
#   scripts/bootstrap.sh [run|test] --check
#                                  install nothing; one line per item,
#                                  `ok NAME` or `missing NAME: ...`; exits 1
#                                  when something is missing
#
# What it installs with apt-get (libclang-dev; npm, for Azurite) needs root;
# where it cannot install something (not root, no apt-get, no pip) it prints
# the command to run and exits non-zero. Sourced
# (`source scripts/bootstrap.sh test`), it also puts Azurite's bin directory
# on PATH. For tests of the detection: WEIR_BOOTSTRAP_LDCONFIG names a
# command to use instead of `ldconfig`, and WEIR_BOOTSTRAP_LLVM_GLOB_ROOT is
# prepended to the /usr/lib paths searched for libclang.

_weir_bootstrap() {
    local profile=run check=0 failed=0 apt_updated=0 arg
    for arg in "$@"; do
        case "$arg" in
            run | test) profile=$arg ;;
            --check) check=1 ;;
            -h | --help)
                sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
                return 0
                ;;
            *)
                echo "bootstrap: unknown argument '$arg' (usage: scripts/bootstrap.sh [run|test] [--check])" >&2
                return 2
                ;;
        esac
    done
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local is_root=0
    [[ "$(id -u)" == 0 ]] && is_root=1

    # --- Rust toolchain ---------------------------------------------------
    if command -v cargo >/dev/null 2>&1 && command -v rustc >/dev/null 2>&1; then
        _wb_ok rust
    elif [[ -x "${HOME:-}/.cargo/bin/cargo" ]]; then
        _wb_cannot rust 'Rust is installed but not on PATH; run: source "$HOME/.cargo/env"'
    else
        _wb_cannot rust "Weir is written in Rust; install rustup from your distribution (e.g. apt-get install rustup) or https://rustup.rs (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), then open a new shell"
    fi

    # --- wasm32-wasip2 target -------------------------------------------
    local have_rustup=0 installed
    command -v rustup >/dev/null 2>&1 && have_rustup=1
    if ((have_rustup)); then
        # From the repository root, so rust-toolchain.toml picks the toolchain.
        installed=$(cd "$root" && rustup target list --installed 2>/dev/null) || installed=
        if grep -qx wasm32-wasip2 <<<"$installed"; then
            _wb_ok wasm32-wasip2
        else
            _wb_install wasm32-wasip2 "the wasm32-wasip2 target (rustup)" \
                "the UDFs compile to Wasm components for it" \
                "cd $(printf %q "$root") && rustup target add wasm32-wasip2" || true
        fi
    elif _wb_sysroot_has wasm32-wasip2; then
        _wb_ok wasm32-wasip2
    else
        _wb_cannot wasm32-wasip2 "the UDFs compile for it and only rustup can add it; install rustup (https://rustup.rs), then run: rustup target add wasm32-wasip2"
    fi

    # --- libclang -----------------------------------------------------------
    if _wb_has_libclang; then
        _wb_ok libclang
    elif ((is_root)) && command -v apt-get >/dev/null 2>&1; then
        if _wb_install libclang "libclang-dev (apt)" "RocksDB's Rust bindings need libclang" \
            "_wb_apt_install libclang-dev >/dev/null" "apt-get install libclang-dev"; then
            if ((!check)) && ! _wb_has_libclang; then
                _wb_cannot libclang "libclang-dev is installed but no libclang*.so was found; set LIBCLANG_PATH to the directory holding libclang.so"
            fi
        fi
    elif command -v apt-get >/dev/null 2>&1; then
        _wb_cannot libclang "RocksDB's Rust bindings need libclang; run: sudo apt-get install libclang-dev"
    else
        _wb_cannot libclang "RocksDB's Rust bindings need libclang; install it with your package manager (e.g. sudo dnf install clang-devel), or set LIBCLANG_PATH to the directory holding libclang.so"
    fi

    if [[ "$profile" == test ]]; then
        # --- rustfmt and clippy -------------------------------------------
        local components=
        if ((have_rustup)); then
            components=$(cd "$root" && rustup component list --installed 2>/dev/null) || components=
        fi
        local comp
        for comp in rustfmt clippy; do
            if grep -Eq "^$comp(-|\$)" <<<"$components" ||
                { ((!have_rustup)) && command -v "$([[ $comp == clippy ]] && echo cargo-clippy || echo rustfmt)" >/dev/null 2>&1; }; then
                _wb_ok "$comp"
            elif ((have_rustup)); then
                _wb_install "$comp" "$comp (rustup component)" "the lint step runs it" \
                    "cd $(printf %q "$root") && rustup component add $comp" || true
            else
                _wb_cannot "$comp" "the lint step runs it; install rustup (https://rustup.rs), then run: rustup component add $comp"
            fi
        done

        # --- Python packages (pip) ----------------------------------------
        _wb_python_packages

        # --- Azurite (npm) --------------------------------------------------
        local npm_prefix="${HOME:-}/.cache/weir/npm"
        local azurite_why="the az:// checkpoint tests run against Azure Blob Storage's emulator"
        if [[ ! -x "$npm_prefix/node_modules/.bin/azurite-blob" ]] &&
            ! command -v npm >/dev/null 2>&1 && ((is_root)) && command -v apt-get >/dev/null 2>&1; then
            _wb_install npm "npm (apt)" "Azurite, Azure Blob Storage's emulator, installs with it" \
                "_wb_apt_install npm >/dev/null" "apt-get install npm" || true
        fi
        if [[ -x "$npm_prefix/node_modules/.bin/azurite-blob" ]]; then
            _wb_ok azurite
        elif command -v npm >/dev/null 2>&1; then
            if _wb_install azurite "azurite@3.35.0 (npm, into $npm_prefix)" "$azurite_why" \
                "npm install --silent --no-audit --no-fund --prefix $(printf %q "$npm_prefix") azurite@3.35.0"; then
                if ((!check)) && [[ ! -x "$npm_prefix/node_modules/.bin/azurite-blob" ]]; then
                    _wb_cannot azurite "npm installed azurite but $npm_prefix/node_modules/.bin/azurite-blob is missing"
                fi
            fi
        elif ((check)) && ((is_root)) && command -v apt-get >/dev/null 2>&1; then
            _wb_install azurite "azurite@3.35.0 (npm, after npm itself from apt)" "$azurite_why" :
        else
            _wb_cannot azurite "$azurite_why, which installs with npm; run: sudo apt-get install npm"
        fi
        if ((!check)) && [[ ":$PATH:" != *":$npm_prefix/node_modules/.bin:"* ]]; then
            # Takes effect in the caller when this script is sourced.
            export PATH="$npm_prefix/node_modules/.bin:$PATH"
        fi

        # --- The JavaScript UDF toolchain (npm) -----------------------------
        # Where `weir udf build` looks for it: ~/.cache/weir/js.
        local js_prefix="${HOME:-}/.cache/weir/js"
        local js_why="the JavaScript and TypeScript UDF tests bundle with rolldown and build with componentize-js"
        if [[ -x "$js_prefix/node_modules/.bin/componentize-js" && -x "$js_prefix/node_modules/.bin/rolldown" ]]; then
            _wb_ok componentize-js
        elif command -v npm >/dev/null 2>&1; then
            _wb_install componentize-js "@bytecodealliance/componentize-js@0.23.0 and rolldown@1.3.4 (npm, into $js_prefix)" "$js_why" \
                "npm install --silent --no-audit --no-fund --prefix $(printf %q "$js_prefix") @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4" || true
        else
            _wb_cannot componentize-js "$js_why, which install with npm; run: sudo apt-get install npm"
        fi

        # --- The C UDF toolchain (apt) --------------------------------------
        # clang with the wasm32 target, wasi-libc and compiler-rt for wasm32:
        # what `weir udf build` compiles C UDFs with.
        local c_why="the C UDF tests compile with clang for wasm32-wasi against wasi-libc"
        if _wb_has_wasi_clang; then
            _wb_ok clang-wasi
        elif ((is_root)) && command -v apt-get >/dev/null 2>&1; then
            _wb_install clang-wasi "clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 (apt)" "$c_why" \
                "_wb_apt_install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 >/dev/null" \
                "apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32" || true
        else
            _wb_cannot clang-wasi "$c_why; run: sudo apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32"
        fi

        # --- Java 17 (apt), for bench/flink-compare's Flink side -----------
        # Flink itself comes from PyPI inside bench/flink-compare.
        local java_why="bench/flink-compare (run by .ci/run) runs Apache Flink, which needs Java 17 (java and javac)"
        if command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; then
            _wb_ok java
        elif ((is_root)) && command -v apt-get >/dev/null 2>&1; then
            _wb_install java "openjdk-17-jdk-headless (apt)" "$java_why" \
                "_wb_apt_install openjdk-17-jdk-headless >/dev/null" \
                "apt-get install openjdk-17-jdk-headless" || true
        else
            _wb_cannot java "$java_why; run: sudo apt-get install openjdk-17-jdk-headless"
        fi
    fi

    if ((failed)); then
        ((check)) || echo "bootstrap: some prerequisites are missing (see above)" >&2
        return 1
    fi
    if ((!check)) && [[ ! -d "${CARGO_TARGET_DIR:-${HOME:-}/.cache/weir/target}/debug" ]]; then
        echo "bootstrap: first build: compiling wasmtime and RocksDB takes about 20–25 minutes on 2 cores; later builds take seconds." >&2
    fi
    return 0
}

# _wb_ok NAME: the item is present (said only under --check).
_wb_ok() {
    if ((check)); then echo "ok $1"; fi
    return 0
}

# _wb_cannot NAME TEXT: the item is missing and this script cannot install
# it; TEXT says why it is needed and what to run.
_wb_cannot() {
    if ((check)); then
        echo "missing $1: $2"
    else
        echo "bootstrap: missing $1: $2" >&2
    fi
    failed=1
}

# _wb_install NAME WHAT WHY COMMAND [SHOWN]: the item is missing; installs
# it with COMMAND (a shell string), showing its output only when it fails,
# and then SHOWN (default COMMAND) as the command to run.
_wb_install() {
    local name=$1 what=$2 why=$3 cmd=$4 shown=${5:-$4} out
    if ((check)); then
        echo "missing $name: would install $what — $why"
        failed=1
        return 0
    fi
    echo "bootstrap: installing $what — $why" >&2
    if ! out=$(eval "$cmd" 2>&1 </dev/null); then
        [[ -n "$out" ]] && printf '%s\n' "$out" >&2
        echo "bootstrap: installing $name failed; run: $shown" >&2
        failed=1
        return 1
    fi
    return 0
}

_wb_apt_install() {
    if ((!apt_updated)); then
        apt-get update -qq || return
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# _wb_sysroot_has TARGET: rustc's sysroot holds TARGET's standard library
# (toolchains not managed by rustup).
_wb_sysroot_has() {
    local sysroot
    command -v rustc >/dev/null 2>&1 || return 1
    sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
    [[ -n "$sysroot" && -d "$sysroot/lib/rustlib/$1" ]]
}

# _wb_has_wasi_clang: a clang that preprocesses wasi-libc's headers for
# wasm32-wasi (what `weir udf build` looks for).
_wb_has_wasi_clang() {
    local c
    for c in ${WEIR_CLANG:-clang-19 clang-20 clang-18 clang}; do
        if command -v "$c" >/dev/null 2>&1 &&
            printf '#include <stdlib.h>\n' | "$c" --target=wasm32-wasi -E -x c - -o /dev/null 2>/dev/null; then
            return 0
        fi
    done
    return 1
}

# _wb_has_libclang: a libclang shared library (libclang.so*, libclang-N.so*;
# not libclang-cpp) that clang-sys can find.
_wb_has_libclang() {
    local re='^libclang(-[0-9.]+)?\.so' ldconfig out f
    ldconfig=${WEIR_BOOTSTRAP_LDCONFIG:-}
    if [[ -z "$ldconfig" ]]; then
        ldconfig=$(command -v ldconfig 2>/dev/null) || ldconfig=
        for f in /sbin/ldconfig /usr/sbin/ldconfig; do
            [[ -z "$ldconfig" && -x "$f" ]] && ldconfig=$f
        done
    fi
    if [[ -n "$ldconfig" ]]; then
        # Captured rather than piped into `grep -q`, which under pipefail
        # can fail a match by closing the pipe early.
        out=$("$ldconfig" -p 2>/dev/null) || out=
        while read -r f _; do
            [[ "$f" =~ $re ]] && return 0
        done <<<"$out"
    fi
    local groot=${WEIR_BOOTSTRAP_LLVM_GLOB_ROOT:-}
    for f in "$groot"/usr/lib/llvm-*/lib/libclang*.so* \
        "$groot"/usr/lib/*-linux-gnu/libclang*.so* \
        "$groot"/usr/lib64/libclang*.so*; do
        [[ -e "$f" && "${f##*/}" =~ $re ]] && return 0
    done
    local lp=${LIBCLANG_PATH:-}
    if [[ -n "$lp" && -f "$lp" && "${lp##*/}" =~ $re ]]; then
        return 0
    fi
    if [[ -n "$lp" && -d "$lp" ]]; then
        for f in "$lp"/libclang*.so*; do
            [[ -e "$f" && "${f##*/}" =~ $re ]] && return 0
        done
    fi
    return 1
}

# The test profile's PyPI packages, at the versions the tests were written
# against: one line per package to install, then one `pip install`.
_wb_python_packages() {
    local specs=(componentize-py==0.25.1 pytest==9.2.0 'moto[server]==5.2.1' azure-storage-blob==12.31.1 openapi-spec-validator==0.9.0)
    local whys=(
        "the Python UDF tests build their components with it"
        "the Python SDK's and Python UDFs' unit tests run with it"
        "its S3 server (moto_server) backs the s3:// checkpoint tests"
        "the az:// checkpoint tests prepare Azurite's containers with it"
        "the JobManager tests validate its OpenAPI document with it"
    )
    local pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
    local spec name want i
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        local hint="run: sudo apt-get install python3-pip"
        command -v python3 >/dev/null 2>&1 || hint="run: sudo apt-get install python3 python3-pip"
        for spec in "${specs[@]}"; do
            _wb_cannot "${spec%%[[=]*}" "the tests need it from PyPI and pip is missing; $hint"
        done
        return 0
    fi
    # `pip show` lists the installed ones among them (and warns about the rest).
    local shown version
    shown=$(python3 -m pip show componentize-py pytest moto azure-storage-blob openapi-spec-validator 2>/dev/null) || shown=
    local writable
    writable=$(python3 -c 'import os, sysconfig; print(int(os.access(sysconfig.get_paths()["purelib"], os.W_OK)))' 2>/dev/null) || writable=0
    local todo=()
    for i in "${!specs[@]}"; do
        spec=${specs[$i]}
        name=${spec%%[[=]*}
        want=${spec##*==}
        version=$(awk -v n="$name" 'tolower($0) == "name: " n { f = 1; next } f && /^Version: / { print $2; exit }' <<<"$shown")
        if [[ "$version" == "$want" ]] ||
            { [[ -z "$version" && "$name" == componentize-py ]] && command -v componentize-py >/dev/null 2>&1; }; then
            _wb_ok "$name"
        elif [[ "$writable" != 1 ]]; then
            _wb_cannot "$name" "${whys[$i]}; run: python3 -m pip install --user '$spec' (and put ~/.local/bin on PATH), or use a virtualenv"
        elif ((check)); then
            _wb_install "$name" "$spec (pip${version:+, replacing $version})" "${whys[$i]}" :
        else
            echo "bootstrap: installing $spec (pip${version:+, replacing $version}) — ${whys[$i]}" >&2
            todo+=("$spec")
        fi
    done
    if ((${#todo[@]})); then
        local out
        if ! out=$("${pip[@]}" "${todo[@]}" 2>&1 </dev/null); then
            [[ -n "$out" ]] && printf '%s\n' "$out" >&2
            local quoted
            printf -v quoted " '%s'" "${todo[@]}"
            echo "bootstrap: pip failed; run: ${pip[*]}$quoted" >&2
            failed=1
        fi
    fi
    return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # Executed.
    set -euo pipefail
    _weir_bootstrap "$@"
else
    # Sourced: the caller keeps its shell options and gets the PATH; a
    # failure returns non-zero (which stops a `set -e` caller).
    # ($- and `shopt -po`, not `$(set +o)`: a command substitution does not
    # see the caller's errexit.)
    _weir_bootstrap_flags=$-
    _weir_bootstrap_pipefail=$(shopt -po pipefail) || true
    set -uo pipefail
    _weir_bootstrap_status=0
    _weir_bootstrap "$@" || _weir_bootstrap_status=$?
    [[ "$_weir_bootstrap_flags" == *u* ]] || set +u
    eval "$_weir_bootstrap_pipefail"
    unset -f _weir_bootstrap _wb_ok _wb_cannot _wb_install _wb_apt_install \
        _wb_sysroot_has _wb_has_libclang _wb_has_wasi_clang _wb_python_packages
    unset _weir_bootstrap_flags _weir_bootstrap_pipefail
    return "$_weir_bootstrap_status"
fi
