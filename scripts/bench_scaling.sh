#!/usr/bin/env bash
# Multi-core scaling: ferrocache pinned to 1, 2, 4, ... cores (with as
# many shards/workers) against Debian's redis-server, with redis-benchmark
# pinned to separate cores so the client does not steal the server's.
# Prints a markdown table: rps per core count and the ratio to Redis.
#
#   CORES="1" SERVER_CPU_BASE=0 CLIENT_CPUS=1 scripts/bench_scaling.sh               # this 2-core machine
#   CORES="1 2 4 8" CLIENT_CPUS=8-15 THREADS=8 CLIENTS=200 scripts/bench_scaling.sh # 16-core machine
#
# Env: CORES (server core counts to try), SERVER_CPU_BASE (first server
# cpu, default 0; k cores = BASE..BASE+k-1), CLIENT_CPUS (taskset list for
# redis-benchmark; must not overlap the server's), THREADS (redis-benchmark
# --threads, default 1), CLIENTS (default 50), N (requests per test,
# default 1000000), RUNS (default 3, medians), FERROCACHE_BIN, REDIS_BIN.
# Redis runs single-threaded (its default, io-threads 1) pinned to one core.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

CORES="${CORES:-1}"
BASE="${SERVER_CPU_BASE:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-}"
THREADS="${THREADS:-1}"
CLIENTS="${CLIENTS:-50}"
N="${N:-1000000}"
RUNS="${RUNS:-3}"
[[ -n "$CLIENT_CPUS" ]] || die "set CLIENT_CPUS to the cpus redis-benchmark may use (not the server's)"
for v in BASE THREADS CLIENTS N RUNS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done

resolve_binaries "$ROOT"
make_tmpdir WORK

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# measure NAME CORES PORT: RUNS x (P=1, P=16) redis-benchmark runs.
measure() {
    local name="$1" cores="$2" port="$3" p run out
    for p in 1 16; do
        for run in $(seq 1 "$RUNS"); do
            redis-cli -h 127.0.0.1 -p "$port" flushall >/dev/null
            out="$(taskset -c "$CLIENT_CPUS" redis-benchmark -h 127.0.0.1 -p "$port" -t set,get \
                -c "$CLIENTS" -n "$N" -r 1000000 -P "$p" --threads "$THREADS" -q --csv)"
            for test in SET GET; do
                printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$cores" "$p" "$test" \
                    "$(awk -F'"' -v t="$test" '$2 == t { print $4 }' <<<"$out")" >>"$RESULTS"
            done
            log "$name cores=$cores P=$p run $run: $(awk -F'"' 'NR > 1 { printf "%s=%s ", $2, $4 }' <<<"$out")" >&2
        done
    done
}

REDIS_PORT="" REDIS_PID=""
start_server REDIS_PORT REDIS_PID "$WORK/redis.log" "$(pinned_binary "$WORK" "$BASE" "$REDIS_BIN")"
measure redis 1 "$REDIS_PORT"
kill "$REDIS_PID"

for k in $CORES; do
    [[ "$k" =~ ^[1-9][0-9]*$ ]] || die "CORES entries must be positive integers, got '$k'"
    cpus="$BASE-$((BASE + k - 1))"
    FERRO_PORT="" FERRO_PID=""
    start_server FERRO_PORT FERRO_PID "$WORK/ferrocache-$k.log" "$(pinned_binary "$WORK" "$cpus" "$BIN")" --shards "$k" --threads "$k"
    measure ferrocache "$k" "$FERRO_PORT"
    kill -0 "$FERRO_PID" 2>/dev/null || die "ferrocache ($k cores) exited during the benchmark"
    kill "$FERRO_PID"
    wait "$FERRO_PID" 2>/dev/null || true
done

echo "## Scaling: ferrocache on k cores vs redis-server on 1 core"
echo
print_run_facts "$ROOT"
echo "- command: CORES=\"$CORES\" SERVER_CPU_BASE=$BASE CLIENT_CPUS=$CLIENT_CPUS THREADS=$THREADS CLIENTS=$CLIENTS N=$N RUNS=$RUNS scripts/bench_scaling.sh"
echo "- redis-benchmark -t set,get -c $CLIENTS -n $N -r 1000000 -P {1,16} --threads $THREADS, pinned to cpus $CLIENT_CPUS; servers pinned with taskset"
echo
python3 - "$RESULTS" <<'PY'
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    name, cores, p, test, rps = line.rstrip("\n").split("\t")
    rows.setdefault((name, int(cores), int(p), test), []).append(float(rps))

med = {k: statistics.median(v) for k, v in rows.items()}
print("| server | cores | SET P=1 | GET P=1 | SET P=16 | GET P=16 | ratio to Redis (SET/GET P=1, SET/GET P=16) |")
print("|---|--:|--:|--:|--:|--:|---|")
keys = sorted({(n, c) for n, c, _, _ in med}, key=lambda k: (k[0] != "redis", k[1]))
for name, cores in keys:
    cells = [med[(name, cores, p, t)] for p in (1, 16) for t in ("SET", "GET")]
    base = [med[("redis", 1, p, t)] for p in (1, 16) for t in ("SET", "GET")]
    ratios = " / ".join(f"{c / b:.2f}" for c, b in zip(cells, base))
    print(f"| {name} | {cores} | " + " | ".join(f"{c:,.0f}" for c in cells) + f" | {ratios} |")
PY
echo
echo "Medians of $RUNS runs."
