#!/usr/bin/env bash
# GET latency and RSS of a primary during a full resync (issue 4's
# acceptance: p99 GET during the sync within 2x of p99 without it, RSS
# growth under 10%). Needs a quiet machine to mean anything.
#
#   scripts/bench_repl_sync.sh                 # KEYS=1000000 SHARDS=cores
#   KEYS=200000 SHARDS=4 scripts/bench_repl_sync.sh
#
# Steps: load KEYS keys (100-byte values) into a primary; measure GET p99
# with redis-benchmark (baseline); start a replica and measure again while
# it syncs (the replica is restarted until the run ends so every request
# overlaps a sync), sampling the primary's VmRSS every 20 ms.
#
# Env: FERROCACHE_BIN (default target/release/ferrocache, built if missing),
# KEYS, SHARDS (default: the binary's default), REQUESTS (GETs per run,
# default 2000000), CLIENTS (default 50).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap
ensure_redis_tools

KEYS="${KEYS:-1000000}"
REQUESTS="${REQUESTS:-2000000}"
CLIENTS="${CLIENTS:-50}"
BIN="${FERROCACHE_BIN:-$(default_bin "$ROOT")}"
ensure_binary "$BIN" "$ROOT" "$([[ -z "${FERROCACHE_BIN:-}" ]] && echo 1 || echo 0)"
SHARD_ARGS=()
[[ -n "${SHARDS:-}" ]] && SHARD_ARGS=(--shards "$SHARDS")

make_tmpdir WORK
start_server PPORT PPID_ "$WORK/primary.log" "$BIN" "${SHARD_ARGS[@]}" --dir "$WORK"
step "loading $KEYS keys into the primary (port $PPORT)"
python3 - "$KEYS" <<'PY' | redis-cli -p "$PPORT" --pipe >/dev/null
import sys
n = int(sys.argv[1])
val = b"v" * 100
out = sys.stdout.buffer
for i in range(n):
    k = b"key:%d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, val))
PY
redis-cli -p "$PPORT" dbsize

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

p99() {
    # redis-benchmark 7 prints "latency summary" with avg min p50 p95 p99 max.
    redis-benchmark -p "$PPORT" -t get -r "$KEYS" -n "$REQUESTS" -c "$CLIENTS" \
        --csv 2>/dev/null | awk -F'","' 'NR==2 {gsub(/"/,"",$7); print $7}'
}

step "baseline: GET without sync"
BASE_RSS=$(rss "$PPID_")
BASE_P99=$(p99)
log "p99 ${BASE_P99} ms, RSS ${BASE_RSS} kB"

step "GET while replicas full-sync repeatedly"
STOP="$WORK/stop"
(
    while [[ ! -e "$STOP" ]]; do
        start_server RPORT RPID "$WORK/replica.log" "$BIN" "${SHARD_ARGS[@]}" \
            --replicaof 127.0.0.1 "$PPORT"
        for _ in $(seq 1 600); do
            [[ -e "$STOP" ]] && break
            redis-cli -p "$RPORT" info replication 2>/dev/null | grep -q master_link_status:up && break
            sleep 0.05
        done
        kill "$RPID" 2>/dev/null || true
        wait "$RPID" 2>/dev/null || true
    done
) &
SYNCER=$!
PEAK=0
(
    while [[ ! -e "$STOP" ]]; do
        r=$(rss "$PPID_")
        ((r > PEAK)) && PEAK=$r && echo "$PEAK" >"$WORK/peak"
        sleep 0.02
    done
) &
SAMPLER=$!
SYNC_P99=$(p99)
touch "$STOP"
wait "$SYNCER" "$SAMPLER" 2>/dev/null || true
PEAK=$(cat "$WORK/peak" 2>/dev/null || echo "$BASE_RSS")
FULL=$(redis-cli -p "$PPORT" info stats | awk -F: '/^sync_full/ {print $2}' | tr -d '\r')
log "p99 ${SYNC_P99} ms, peak RSS ${PEAK} kB, full syncs served: ${FULL}"

step "summary"
python3 - "$BASE_P99" "$SYNC_P99" "$BASE_RSS" "$PEAK" "$KEYS" "$FULL" <<'PY'
import sys
b, s, r0, r1, keys, full = sys.argv[1:]
b, s, r0, r1 = float(b), float(s), int(r0), int(r1)
print(f"keys={keys} full_syncs={full}")
print(f"GET p99: {b:.3f} ms without sync, {s:.3f} ms during syncs ({s / b:.2f}x)")
print(f"RSS: {r0} kB before, {r1} kB peak during syncs (+{100 * (r1 - r0) / r0:.1f}%)")
PY
