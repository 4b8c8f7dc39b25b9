#!/usr/bin/env bash
# Instructions per command, counted by callgrind on the whole server process
# (network, decoding, dispatch, store, replies) under a fixed redis-benchmark
# load. Repeatable on a noisy machine, unlike throughput.
#
#   scripts/callgrind.sh                       # N=100000, P=16
#   FERROCACHE_BIN=/tmp/old/ferrocache N=50000 P=1 scripts/callgrind.sh
#
# Counting is zeroed after a warm-up load of N SETs over N keys, then each
# test (SET, GET: -r N, so GETs hit) runs N requests and is dumped; the
# figure is the dump's total instructions (Ir) divided by N.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

N="${N:-100000}"
P="${P:-16}"
if [[ -n "${FERROCACHE_BIN:-}" ]]; then
    BIN="$FERROCACHE_BIN"
    IS_DEFAULT=0
else
    BIN="$(default_bin "$ROOT")"
    IS_DEFAULT=1
fi
command -v valgrind >/dev/null || die "valgrind is required"
ensure_redis_tools
ensure_binary "$BIN" "$ROOT" "$IS_DEFAULT"
make_tmpdir WORK

PORT="$(free_port)"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$BIN" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --shards 1 \
    </dev/null >"$WORK/server.log" 2>&1 &
PID=$!
FC_PIDS+=("$PID")
wait_ping "$PORT" "$PID" 120 || die "server under valgrind did not answer PING"

bench() { # TEST
    redis-benchmark -h 127.0.0.1 -p "$PORT" -t "$1" -n "$N" -r "$N" -P "$P" -c 4 -q >/dev/null
}
total_ir() { # dump file
    awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

bench set
echo "| command | requests | pipeline | instructions per request |"
echo "|---|---|---|---|"
for t in set get; do
    callgrind_control -z "$PID" >/dev/null 2>&1
    bench "$t"
    rm -f "$WORK"/cg.out.*
    callgrind_control -d "$t" "$PID" >/dev/null 2>&1
    sleep 1
    dump="$(ls "$WORK"/cg.out.* | head -1)"
    ir="$(total_ir "$dump")"
    printf '| %s | %s | %s | %d |\n' "$t" "$N" "$P" "$((ir / N))"
done
