#!/usr/bin/env bash
# Hit ratio of maxmemory eviction: ferrocache and Debian's redis-server get
# the same maxmemory (calibrated on Redis to hold CAPACITY keys) and replay
# the same Zipf traces as a cache-aside client (benches/hitratio.rs). The
# output (environment, exact command, markdown table) is meant to be pasted
# into docs/benchmarks.md.
#
#   scripts/hitratio.sh                                    # 3,000,000 requests per trace
#   REQUESTS=1000000 scripts/hitratio.sh
#   FERROCACHE_BIN=/usr/bin/redis-server scripts/hitratio.sh   # self-check: both servers are Redis
#
# Env: FERROCACHE_BIN (default target/release/ferrocache, built if missing),
# POLICIES (ferrocache's policies, default "allkeys-lru allkeys-lfu
# allkeys-random allkeys-s3fifo"; one the server rejects is reported as
# "skipped: <policy> not supported"), REDIS_POLICIES (default "allkeys-lru
# allkeys-lfu"), REQUESTS, CAPACITY, VALUE_SIZE (passed as --requests,
# --capacity, --value-size), HITRATIO_ARGS (more options for the tool, see
# `cargo bench --bench hitratio -- --help`), REDIS_BIN (default: redis-server
# on PATH).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

POLICIES="${POLICIES:-allkeys-lru allkeys-lfu allkeys-random allkeys-s3fifo}"
REDIS_POLICIES="${REDIS_POLICIES:-allkeys-lru allkeys-lfu}"

resolve_binaries "$ROOT"

# "a b c" -> "a,b,c"
comma_list() { local -a words; read -r -a words <<<"$1"; local IFS=,; printf '%s' "${words[*]}"; }
FERRO_POLICY_LIST="$(comma_list "$POLICIES")"
REDIS_POLICY_LIST="$(comma_list "$REDIS_POLICIES")"
[[ -n "$FERRO_POLICY_LIST" || -n "$REDIS_POLICY_LIST" ]] || die "POLICIES and REDIS_POLICIES are both empty"

# Prints its arguments as one shell-ready line, quoting only where needed
# (printf %q would also escape the commas of the policy lists).
quote_cmd() {
    local out=() a
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_,.:/+=@%-]+$ ]]; then
            out+=("$a")
        else
            out+=("'${a//\'/\'\\\'\'}'")
        fi
    done
    printf '%s\n' "${out[*]}"
}

# A stand-in binary (the self-check) is labelled as what it is.
FERRO_LABEL=ferrocache
[[ "$(basename "$BIN")" == ferrocache ]] || FERRO_LABEL="$(basename "$BIN")-as-ferrocache"

TOOL_ARGS=()
[[ -z "${REQUESTS:-}" ]] || TOOL_ARGS+=(--requests "$REQUESTS")
[[ -z "${CAPACITY:-}" ]] || TOOL_ARGS+=(--capacity "$CAPACITY")
[[ -z "${VALUE_SIZE:-}" ]] || TOOL_ARGS+=(--value-size "$VALUE_SIZE")
if [[ -n "${HITRATIO_ARGS:-}" ]]; then
    read -r -a extra <<<"$HITRATIO_ARGS"
    TOOL_ARGS+=("${extra[@]}")
fi

# Compile first, so the build neither shows in the report nor competes
# with the servers for the two cores during the replay.
log "building benches/hitratio.rs" >&2
(cd "$ROOT" && cargo bench -q --bench hitratio --no-run) >&2

make_tmpdir WORK
REDIS_PORT="" REDIS_PID="" FERRO_PORT="" FERRO_PID=""
start_server REDIS_PORT REDIS_PID "$WORK/redis.log" "$REDIS_BIN"
start_server FERRO_PORT FERRO_PID "$WORK/ferrocache.log" "$BIN"

SERVERS=()
[[ -z "$REDIS_POLICY_LIST" ]] || SERVERS+=(--server "redis:$REDIS_PORT:$REDIS_POLICY_LIST")
[[ -z "$FERRO_POLICY_LIST" ]] || SERVERS+=(--server "$FERRO_LABEL:$FERRO_PORT:$FERRO_POLICY_LIST")
CMD=(cargo bench -q --bench hitratio -- --calibrate-port "$REDIS_PORT" "${SERVERS[@]}" "${TOOL_ARGS[@]}")

SERVER_FLAGS="--port PORT --bind 127.0.0.1 --save '' --appendonly no --enable-debug-command yes"
echo "## Hit ratio under maxmemory: ferrocache vs redis-server"
echo
print_run_facts "$ROOT"
echo "- $FERRO_LABEL: $BIN"
echo "- both servers run side by side on free loopback ports; runs are sequential, one server under load at a time"
echo
echo "Commands (ports are picked at run time):"
echo
echo '```'
echo "$REDIS_BIN $SERVER_FLAGS"
echo "$BIN $SERVER_FLAGS"
quote_cmd "${CMD[@]}"
echo '```'

started=$SECONDS
rc=0
(cd "$ROOT" && "${CMD[@]}") || rc=$?
((rc == 0)) || die "the hit-ratio tool exited $rc"
kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited during the benchmark"
kill -0 "$FERRO_PID" 2>/dev/null || die "$FERRO_LABEL exited during the benchmark"
echo
echo "Wall time of the tool (all runs, calibration and LRU simulation): $((SECONDS - started)) s."
