#!/usr/bin/env bash
# Throughput of a SET flood with eviction running continuously, against the
# same flood without maxmemory, in one run (the eviction issue's check:
# within 15%). Prints both medians and the ratio.
#   N=2000000 RUNS=3 MAXMEMORY=64mb POLICY=allkeys-lru scripts/bench_eviction.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

BIN="${FERROCACHE_BIN:-$ROOT/target/release/ferrocache}"
N="${N:-2000000}"
RUNS="${RUNS:-3}"
MAXMEMORY="${MAXMEMORY:-64mb}"
POLICY="${POLICY:-allkeys-lru}"
if [[ "$BIN" == "$ROOT/target/release/ferrocache" && ! -x "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release)
fi

LOGDIR="$(mktemp -d)"
start_server PLAIN_PORT PLAIN_PID "$LOGDIR/plain.log" "$BIN"
start_server EVICT_PORT EVICT_PID "$LOGDIR/evict.log" "$BIN" --maxmemory "$MAXMEMORY" --maxmemory-policy "$POLICY"
log "servers: no maxmemory pid $PLAIN_PID port $PLAIN_PORT, evicting pid $EVICT_PID port $EVICT_PORT"

flood() {
    redis-cli -p "$1" flushall >/dev/null
    redis-benchmark -p "$1" -t set -n "$N" -r 10000000 -d 100 -c 50 -P 16 -q --csv |
        awk -F'","' '/"SET"/ {print $2}' | tr -d '"'
}

plain=()
evict=()
for ((i = 1; i <= RUNS; i++)); do
    if ((i % 2)); then
        plain+=("$(flood "$PLAIN_PORT")")
        evict+=("$(flood "$EVICT_PORT")")
    else
        evict+=("$(flood "$EVICT_PORT")")
        plain+=("$(flood "$PLAIN_PORT")")
    fi
    log "run $i: no maxmemory ${plain[-1]} rps, maxmemory $MAXMEMORY $POLICY ${evict[-1]} rps"
done
evicted=$(redis-cli -p "$EVICT_PORT" info stats | awk -F: '/^evicted_keys/ {print $2}' | tr -d '\r')
p=$(printf '%s\n' "${plain[@]}" | median)
e=$(printf '%s\n' "${evict[@]}" | median)
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), nproc=$(nproc), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "command: redis-benchmark -t set -n $N -r 10000000 -d 100 -c 50 -P 16 (median of $RUNS)"
echo "| server | SET rps (median) |"
echo "|---|--:|"
echo "| ferrocache, no maxmemory | $p |"
echo "| ferrocache, maxmemory $MAXMEMORY $POLICY (evicted_keys=$evicted) | $e |"
awk -v a="$e" -v b="$p" 'BEGIN {printf "ratio evicting / not evicting: %.2f\n", a / b}'
