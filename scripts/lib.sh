#!/usr/bin/env bash
# Shared helpers for scripts/*.sh and .ci/run. Source it; do not execute it.
#
# Every server a script starts goes through start_server, which records its
# PID so that the EXIT trap installed by install_cleanup_trap kills exactly
# those processes and nothing else on the machine.
set -euo pipefail

FC_PIDS=()
FC_TMPDIRS=()

log() { printf '%s %s\n' "[$(date +%H:%M:%S)]" "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# median: the median of the numbers on stdin, one per line (the lower
# middle one for an even count).
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

fc_cleanup() {
    local pid dir
    for pid in "${FC_PIDS[@]:-}"; do
        [[ -n "$pid" ]] || continue
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            # Give it a moment to exit cleanly, then insist.
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    for dir in "${FC_TMPDIRS[@]:-}"; do
        [[ -n "$dir" && -d "$dir" ]] && rm -rf "$dir"
    done
    return 0
}

install_cleanup_trap() {
    trap fc_cleanup EXIT
    # Turn signals into a normal exit so the EXIT trap runs once.
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# make_tmpdir VAR: creates a temp dir removed on exit and stores its path in VAR.
make_tmpdir() {
    local d
    d="$(mktemp -d "${TMPDIR:-/tmp}/ferrocache.XXXXXX")"
    FC_TMPDIRS+=("$d")
    printf -v "$1" '%s' "$d"
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# Installs Debian's redis-server/redis-tools when any of the binaries is missing.
ensure_redis_tools() {
    if command -v redis-cli >/dev/null && command -v redis-server >/dev/null \
        && command -v redis-benchmark >/dev/null; then
        return 0
    fi
    log "redis-cli/redis-server/redis-benchmark missing: installing redis-server redis-tools via apt"
    local sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q redis-server redis-tools
    command -v redis-cli >/dev/null || die "redis-cli still missing after apt-get install"
    command -v redis-benchmark >/dev/null || die "redis-benchmark still missing after apt-get install"
    command -v redis-server >/dev/null || die "redis-server still missing after apt-get install"
}

# Creates .venv with redis-py unless it is already there and importable.
ensure_venv() {
    local root="$1"
    local py="$root/.venv/bin/python"
    if [[ -x "$py" ]] && "$py" -c 'import redis' 2>/dev/null; then
        return 0
    fi
    log "creating Python venv at $root/.venv with redis-py"
    python3 -m venv "$root/.venv"
    "$py" -m pip install -q --disable-pip-version-check 'redis>=5'
    "$py" -c 'import redis; print("redis-py", redis.__version__)'
}

# ensure_binary BIN ROOT IS_DEFAULT: when IS_DEFAULT=1 and BIN is missing,
# builds it with cargo build --release; a user-supplied BIN must exist.
ensure_binary() {
    local bin="$1" root="$2" is_default="$3"
    if [[ -x "$bin" ]]; then
        return 0
    fi
    if [[ "$is_default" == 1 ]]; then
        log "$bin missing: running cargo build --release"
        (cd "$root" && cargo build --release)
        [[ -x "$bin" ]] || die "cargo build --release did not produce $bin"
    else
        die "server binary $bin not found or not executable"
    fi
}

# Default binary path, honouring CARGO_TARGET_DIR so a shared target dir works.
default_bin() {
    local root="$1"
    if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        printf '%s/release/ferrocache' "$CARGO_TARGET_DIR"
    else
        printf '%s/target/release/ferrocache' "$root"
    fi
}

# wait_ping PORT PID TIMEOUT_S: waits until the server answers PING.
wait_ping() {
    local port="$1" pid="$2" timeout_s="$3"
    local deadline=$((SECONDS + timeout_s))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" == "PONG" ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_server OUTVAR_PORT OUTVAR_PID LOGFILE BIN [ARGS...]: starts BIN on a
# free port with the standard flags plus ARGS and waits for PONG. Retries on a
# new port if the process dies early (another process may have taken the port
# between free_port and bind).
start_server() {
    local __port_var="$1" __pid_var="$2" logfile="$3" bin="$4"
    shift 4
    local attempt port pid rc
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        "$bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --enable-debug-command yes "$@" </dev/null >"$logfile" 2>&1 &
        pid=$!
        FC_PIDS+=("$pid")
        rc=0
        wait_ping "$port" "$pid" 20 || rc=$?
        if ((rc == 0)); then
            printf -v "$__port_var" '%s' "$port"
            printf -v "$__pid_var" '%s' "$pid"
            return 0
        fi
        if ((rc == 1)); then
            echo "--- server log ($logfile) ---" >&2
            tail -n 30 "$logfile" >&2 || true
            die "$bin did not answer PING on 127.0.0.1:$port within 20s"
        fi
        log "server exited before answering PING on port $port (attempt $attempt); log:"
        tail -n 10 "$logfile" >&2 || true
        wait "$pid" 2>/dev/null || true
    done
    die "could not start $bin after 5 attempts"
}

# resolve_binaries ROOT: sets BIN (FERROCACHE_BIN, or the release build,
# built when missing) and REDIS_BIN (REDIS_BIN, or redis-server on PATH),
# installing Debian's Redis tools when they are missing.
resolve_binaries() {
    local root="$1" is_default=0
    if [[ -n "${FERROCACHE_BIN:-}" ]]; then
        BIN="$FERROCACHE_BIN"
    else
        BIN="$(default_bin "$root")"
        is_default=1
    fi
    ensure_redis_tools
    REDIS_BIN="${REDIS_BIN:-$(command -v redis-server)}"
    ensure_binary "$BIN" "$root" "$is_default"
}

# shard_flags: sets FERRO_ARGS to `--shards $SHARDS` when SHARDS is set (a
# positive integer), else to nothing.
shard_flags() {
    FERRO_ARGS=()
    if [[ -n "${SHARDS:-}" ]]; then
        [[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive integer, got '$SHARDS'"
        FERRO_ARGS=(--shards "$SHARDS")
    fi
}

# pinned_binary DIR CPUS BIN: prints the path of a script (written in DIR)
# that runs BIN under `taskset -c CPUS`, or BIN itself when CPUS is empty.
# start_server hands its flags straight to the binary it is given, so
# pinning needs a wrapper.
pinned_binary() {
    local dir="$1" cpus="$2" bin="$3"
    if [[ -z "$cpus" ]]; then
        printf '%s' "$bin"
        return
    fi
    local wrapper="$dir/pin-${cpus//[^0-9]/_}-$(basename "$bin")"
    printf '#!/bin/sh\nexec taskset -c %q %q "$@"\n' "$cpus" "$bin" >"$wrapper"
    chmod +x "$wrapper"
    printf '%s' "$wrapper"
}

# print_run_facts ROOT: date, host, server versions and commit, as list
# items for a results header in docs/benchmarks.md.
print_run_facts() {
    local root="$1"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- host: nproc=$(nproc), $(uname -sm), cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
    echo "- redis-server: $("$REDIS_BIN" --version)"
    if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
        echo "- ferrocache commit: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
    fi
}

# gen_sets N TTL FILE: writes RESP for N SETs of key:%012d (16 bytes) to a 32-byte value.
gen_sets() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
n, ttl, path = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
with open(path, "wb", buffering=1 << 20) as f:
    for i in range(n):
        k = b"key:%012d" % i
        v = (b"%032d" % (i * 7919))
        if ttl:
            f.write(b"*5\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n$2\r\nEX\r\n$6\r\n100000\r\n" % (k, v))
        else:
            f.write(b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n" % (k, v))
PY
}
