#!/usr/bin/env bash
# scripts/lib.sh — shared helpers for strata's test scripts.
# Source it from bash scripts that run with `set -euo pipefail`
# (`. "$here/lib.sh"`); it defines:
#   ensure_packages PKG...   install missing Debian packages (apt-get update once)
#   start_dockerd            start (or reuse) a private Docker daemon, export
#                            STRATA_TEST_DOCKER_HOST and STRATA_DOCKER_BIN
#   stop_dockerd             stop the daemon that start_dockerd started
#   dk ARGS...               run the docker client against that daemon
# and the fixture cache location STRATA_FIXTURES.

# Test images live outside the checkout so they survive between runs.
export STRATA_FIXTURES="${STRATA_FIXTURES:-/var/cache/strata-fixtures}"

# The private daemon's socket and state (all under /tmp, none shared with a
# system dockerd).
STRATA_DOCKERD_NAME="${STRATA_DOCKERD_NAME:-strata-dockerd}"
STRATA_DOCKERD_SOCK="/tmp/$STRATA_DOCKERD_NAME.sock"
STRATA_DOCKERD_DIR="/tmp/$STRATA_DOCKERD_NAME"
STRATA_DOCKERD_PIDFILE="$STRATA_DOCKERD_DIR/dockerd.pid"
STRATA_DOCKERD_LOG="$STRATA_DOCKERD_DIR/dockerd.log"

# The docker client to use: Debian's docker.io one (same 20.10 line as the
# daemon and as the seed); another `docker` may come first in PATH.
export STRATA_DOCKER_BIN="${STRATA_DOCKER_BIN:-/usr/bin/docker}"

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_packages PKG... — apt-get install whatever is not installed yet.
_strata_apt_updated=
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$_strata_apt_updated" ]; then
        apt-get update -qq
        _strata_apt_updated=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# dk ARGS... — the docker client talking to the private daemon.
dk() { DOCKER_HOST="unix://$STRATA_DOCKERD_SOCK" "$STRATA_DOCKER_BIN" "$@"; }

_dockerd_answers() { dk info >/dev/null 2>&1; }

# start_dockerd — start a private dockerd (no network, no iptables), or reuse
# the one already running on our socket; wait until it answers.
start_dockerd() {
    ensure_packages docker.io
    export STRATA_TEST_DOCKER_HOST="unix://$STRATA_DOCKERD_SOCK"
    if _dockerd_answers; then
        return 0
    fi
    mkdir -p "$STRATA_DOCKERD_DIR"
    # A stale pid file from a killed daemon would make dockerd refuse to start.
    if [ -f "$STRATA_DOCKERD_PIDFILE" ] && ! kill -0 "$(cat "$STRATA_DOCKERD_PIDFILE")" 2>/dev/null; then
        rm -f "$STRATA_DOCKERD_PIDFILE"
    fi
    log "starting dockerd on $STRATA_DOCKERD_SOCK (log: $STRATA_DOCKERD_LOG)"
    # setsid: the daemon must not get the test run's terminal signals.
    setsid dockerd \
        -H "unix://$STRATA_DOCKERD_SOCK" \
        --data-root "$STRATA_DOCKERD_DIR/data" \
        --exec-root "$STRATA_DOCKERD_DIR/exec" \
        --pidfile "$STRATA_DOCKERD_PIDFILE" \
        --bridge=none --iptables=false --ip6tables=false \
        >>"$STRATA_DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 1 60); do
        _dockerd_answers && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    log "dockerd did not answer (it exited, or 60 s passed); last lines of $STRATA_DOCKERD_LOG:"
    tail -n 30 "$STRATA_DOCKERD_LOG" >&2 || true
    return 1
}

# stop_dockerd — stop the private daemon by its pid file and wait for it.
stop_dockerd() {
    [ -f "$STRATA_DOCKERD_PIDFILE" ] || return 0
    local pid
    pid="$(cat "$STRATA_DOCKERD_PIDFILE")"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 1
    done
    log "dockerd ($pid) still running after 30 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}
