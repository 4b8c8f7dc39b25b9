#!/usr/bin/env bash
# Latency percentiles of ferrocache and Debian's redis-server at the same
# offered load, side by side (performance issue: p50/p99/p99.9 at 50% of
# peak throughput).
#
# 1. Preload KEYS keys in both servers (redis-benchmark SET, so GETs hit).
# 2. Peak: closed-loop redis-benchmark GET, -c CONNS, P=1, on each server.
# 3. Offered load: LOAD_PCT% of Redis's peak (the same rate for both), then
#    the open-loop generator benches/loadgen.rs sends GET and SET at that
#    rate for SECONDS and reports latency from each request's due time
#    (no coordinated omission).
#
#   scripts/latency.sh
#   SECONDS_PER_RUN=20 LOAD_PCT=50 CONNS=50 SHARDS=2 scripts/latency.sh
#   SERVER_CPUS=0-7 CLIENT_CPUS=8-15 SHARDS=8 scripts/latency.sh   # pinned, many cores
#
# Env: FERROCACHE_BIN, REDIS_BIN, SHARDS, KEYS (default 100000), CONNS (50),
# SECONDS_PER_RUN (10), LOAD_PCT (50), RUNS (3; medians reported),
# SERVER_CPUS / CLIENT_CPUS (taskset cpu lists; default: unpinned).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

KEYS="${KEYS:-100000}"
CONNS="${CONNS:-50}"
RUN_SECONDS="${SECONDS_PER_RUN:-10}"
LOAD_PCT="${LOAD_PCT:-50}"
RUNS="${RUNS:-3}"
for v in KEYS CONNS RUN_SECONDS LOAD_PCT RUNS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done

resolve_binaries "$ROOT"

CLIENT_PIN=()
[[ -n "${CLIENT_CPUS:-}" ]] && CLIENT_PIN=(taskset -c "$CLIENT_CPUS")

shard_flags

# The generator is built once, in release mode, by cargo itself.
log "building benches/loadgen.rs"
(cd "$ROOT" && cargo bench --bench loadgen --no-run -q 2>/dev/null) || die "cannot build the loadgen bench"
loadgen() {
    (cd "$ROOT" && "${CLIENT_PIN[@]}" cargo bench -q --bench loadgen -- "$@" 2>/dev/null)
}

make_tmpdir WORK
FERRO_PORT="" FERRO_PID="" REDIS_PORT="" REDIS_PID=""
start_server FERRO_PORT FERRO_PID "$WORK/ferrocache.log" "$(pinned_binary "$WORK" "${SERVER_CPUS:-}" "$BIN")" "${FERRO_ARGS[@]}"
start_server REDIS_PORT REDIS_PID "$WORK/redis.log" "$(pinned_binary "$WORK" "${SERVER_CPUS:-}" "$REDIS_BIN")"

for port in "$FERRO_PORT" "$REDIS_PORT"; do
    "${CLIENT_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -t set -r "$KEYS" -n $((KEYS * 3)) \
        -P 16 -c 20 -q >/dev/null
done

peak() { # PORT -> closed-loop GET requests per second at P=1
    "${CLIENT_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$1" -t get -r "$KEYS" -n $((CONNS * 4000)) \
        -c "$CONNS" -P 1 -q --csv | awk -F'"' '$2 == "GET" { print $4 }'
}
FERRO_PEAK="$(peak "$FERRO_PORT")"
REDIS_PEAK="$(peak "$REDIS_PORT")"
RATE="$(python3 -c "print(int(float('$REDIS_PEAK') * $LOAD_PCT / 100))")"
log "peak GET (closed loop, P=1): ferrocache $FERRO_PEAK, redis $REDIS_PEAK; offered load $RATE/s" >&2

RESULTS="$WORK/results.txt"
: >"$RESULTS"
for run in $(seq 1 "$RUNS"); do
    for command in get set; do
        for name in ferrocache redis; do
            port="$FERRO_PORT"
            [[ "$name" == redis ]] && port="$REDIS_PORT"
            line="$(loadgen --port "$port" --rate "$RATE" --seconds "$RUN_SECONDS" --conns "$CONNS" \
                --command "$command" --keyspace "$KEYS")" || die "loadgen against $name failed"
            echo "$name $command $line" >>"$RESULTS"
            log "run $run $name $command: $line" >&2
        done
    done
done
kill -0 "$FERRO_PID" 2>/dev/null || die "ferrocache exited during the benchmark"
kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited during the benchmark"

echo "## Latency at the same offered load: ferrocache vs redis-server"
echo
print_run_facts "$ROOT"
echo "- command: KEYS=$KEYS CONNS=$CONNS SECONDS_PER_RUN=$RUN_SECONDS LOAD_PCT=$LOAD_PCT RUNS=$RUNS SHARDS=${SHARDS:-default} SERVER_CPUS=${SERVER_CPUS:-all} CLIENT_CPUS=${CLIENT_CPUS:-all} scripts/latency.sh"
echo "- peak GET, closed loop P=1 -c $CONNS: ferrocache $FERRO_PEAK rps, redis $REDIS_PEAK rps; offered load ${LOAD_PCT}% of Redis's peak = $RATE requests/s, open loop over $CONNS connections"
echo
python3 - "$RESULTS" <<'PY'
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    name, command, *fields = line.split()
    kv = dict(f.split("=", 1) for f in fields)
    rows.setdefault((command, name), []).append(kv)

print("| command | server | achieved rps | p50 µs | p99 µs | p99.9 µs | max µs | errors |")
print("|---|---|--:|--:|--:|--:|--:|--:|")
for command in ("get", "set"):
    for name in ("ferrocache", "redis"):
        runs = rows.get((command, name), [])
        if not runs:
            continue
        med = lambda k: statistics.median(float(r[k]) for r in runs)
        print(f"| {command.upper()} | {name} | {med('achieved'):,.0f} | {med('p50_us'):.0f} | "
              f"{med('p99_us'):.0f} | {med('p999_us'):.0f} | {med('max_us'):.0f} | "
              f"{sum(int(r['errors']) for r in runs)} |")
PY
echo
echo "Medians over $RUNS runs of ${RUN_SECONDS}s each; latency is measured from each request's scheduled send time."
