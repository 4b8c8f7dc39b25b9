#!/usr/bin/env bash
# Latency while the keyspace grows: SETs of new keys into an empty server
# until it holds about KEYS keys, ferrocache beside Debian's redis-server,
# alternating which goes first. Every table resize happens on the way, so
# the maximum latency shows how long a resize holds the clients (Redis
# rehashes incrementally; ferrocache moves a resize's elements a few slots
# per write since the incremental table moves).
#
#   scripts/bench_growth.sh
#   KEYS=6000000 RUNS=3 P=16 scripts/bench_growth.sh
#   FERROCACHE_BIN=/tmp/old-ferrocache scripts/bench_growth.sh
#
# Env: FERROCACHE_BIN, REDIS_BIN, SHARDS, KEYS (requests; default 6000000,
# which leaves ~5.8M distinct keys of a 100M range), P (pipeline, 16),
# RUNS (3). Prints each run's redis-benchmark CSV line (rps, avg, min,
# p50, p95, p99, max ms) and the medians per server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

KEYS="${KEYS:-6000000}"
P="${P:-16}"
RUNS="${RUNS:-3}"
for v in KEYS P RUNS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
resolve_binaries "$ROOT"
shard_flags
make_tmpdir WORK

# run NAME: one server started fresh, one growth run; appends the CSV line.
run() {
    local name="$1" srv_port srv_pid line
    if [[ "$name" == ferrocache ]]; then
        start_server srv_port srv_pid "$WORK/$name.log" "$BIN" "${FERRO_ARGS[@]}"
    else
        start_server srv_port srv_pid "$WORK/$name.log" "$REDIS_BIN"
    fi
    line="$(redis-benchmark -h 127.0.0.1 -p "$srv_port" -t set -n "$KEYS" -r 100000000 \
        -c 50 -P "$P" -q --csv | tail -n 1)"
    kill "$srv_pid"
    wait "$srv_pid" 2>/dev/null || true
    echo "$line" >>"$WORK/$name.csv"
    log "$name: $line"
}

print_run_facts "$ROOT"
echo "- command: KEYS=$KEYS P=$P RUNS=$RUNS scripts/bench_growth.sh"
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then order=(ferrocache redis); else order=(redis ferrocache); fi
    for name in "${order[@]}"; do
        run "$name"
    done
done

# field FILE N: the Nth CSV field of every line, unquoted.
field() { cut -d, -f"$2" "$1" | tr -d '"'; }
echo
echo "| server | rps | p50 ms | p95 ms | p99 ms | max ms |"
echo "|---|--:|--:|--:|--:|--:|"
for name in ferrocache redis; do
    f="$WORK/$name.csv"
    printf '| %s | %.0f | %s | %s | %s | %s |\n' "$name" \
        "$(field "$f" 2 | median)" "$(field "$f" 5 | median)" "$(field "$f" 6 | median)" \
        "$(field "$f" 7 | median)" "$(field "$f" 8 | median)"
done
