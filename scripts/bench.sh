#!/usr/bin/env bash
# Side-by-side throughput of ferrocache and Debian's redis-server, measured
# with redis-benchmark on this machine. The output (environment, exact
# commands, table of medians) is meant to be pasted into docs/benchmarks.md.
#
#   scripts/bench.sh                         # N=1000000 RUNS=3
#   N=200000 RUNS=5 SHARDS=4 scripts/bench.sh
#   FERROCACHE_BIN=/usr/bin/redis-server N=50000 RUNS=1 scripts/bench.sh   # self-check, ratio ~1
#
# Env: FERROCACHE_BIN (default target/release/ferrocache, built if missing),
# SHARDS (passed as --shards N to ferrocache only), N (requests per test),
# RUNS (repetitions; the table shows medians), CLIENTS (default 50),
# REDIS_BIN (default: redis-server on PATH).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

N="${N:-1000000}"
RUNS="${RUNS:-3}"
CLIENTS="${CLIENTS:-50}"
PIPELINES=(1 16)
TESTS=set,get

[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"

resolve_binaries "$ROOT"

shard_flags

make_tmpdir WORK
FERRO_PORT="" FERRO_PID="" REDIS_PORT="" REDIS_PID=""
start_server FERRO_PORT FERRO_PID "$WORK/ferrocache.log" "$BIN" "${FERRO_ARGS[@]}"
start_server REDIS_PORT REDIS_PID "$WORK/redis.log" "$REDIS_BIN"

SERVER_FLAGS="--port PORT --bind 127.0.0.1 --save '' --appendonly no --enable-debug-command yes"
bench_args() { # P -> the redis-benchmark arguments after the port
    printf '%s\n' -t "$TESTS" -c "$CLIENTS" -n "$N" -r 1000000 -P "$1" -q --csv
}

echo "## ferrocache vs redis-server: redis-benchmark throughput"
echo
print_run_facts "$ROOT"
echo "- redis-benchmark: $(redis-benchmark --version 2>/dev/null || echo unknown)"
echo "- client and both servers share this machine's cores; servers run one at a time under load"
echo
echo "Commands:"
echo
echo '```'
echo "$BIN $SERVER_FLAGS${FERRO_ARGS[*]:+ ${FERRO_ARGS[*]}}"
echo "$REDIS_BIN $SERVER_FLAGS"
for p in "${PIPELINES[@]}"; do
    echo "redis-benchmark -h 127.0.0.1 -p PORT $(bench_args "$p" | paste -sd' ')"
done
echo '```'
echo
echo "Each command ran $RUNS time(s) per server, alternating which server went first; FLUSHALL before each run; the table shows the median requests per second."
echo

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# run_one NAME PORT P RUN: one redis-benchmark run, results appended to RESULTS.
run_one() {
    local name="$1" port="$2" p="$3" run="$4" out="$WORK/$1.P$3.run$4.csv" rc=0
    [[ "$(redis-cli -h 127.0.0.1 -p "$port" flushall)" == "OK" ]] || die "FLUSHALL failed on $name"
    mapfile -t args < <(bench_args "$p")
    timeout 1800 redis-benchmark -h 127.0.0.1 -p "$port" "${args[@]}" >"$out" 2>"$out.err" || rc=$?
    ((rc == 0)) || die "redis-benchmark against $name (P=$p, run $run) exited $rc: $(head -c 500 "$out.err")"
    if grep -qi 'error' "$out" "$out.err"; then
        die "redis-benchmark against $name (P=$p, run $run) reported an error: $(grep -hi -m1 'error' "$out" "$out.err")"
    fi
    local test
    for test in SET GET; do
        local rps
        rps="$(awk -F'"' -v t="$test" '$2 == t { print $4 }' "$out")"
        [[ "$rps" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "no requests-per-second figure for $test from $name (P=$p, run $run): $(cat "$out")"
        printf '%s\t%s\t%s\t%s\n' "$name" "$p" "$test" "$rps" >>"$RESULTS"
    done
    log "$name P=$p run $run/$RUNS: $(awk -F'"' 'NR > 1 { printf "%s=%s ", $2, $4 }' "$out")" >&2
}

i=0
for p in "${PIPELINES[@]}"; do
    for run in $(seq 1 "$RUNS"); do
        if ((i % 2 == 0)); then
            run_one ferrocache "$FERRO_PORT" "$p" "$run"
            run_one redis "$REDIS_PORT" "$p" "$run"
        else
            run_one redis "$REDIS_PORT" "$p" "$run"
            run_one ferrocache "$FERRO_PORT" "$p" "$run"
        fi
        i=$((i + 1))
    done
done

kill -0 "$FERRO_PID" 2>/dev/null || die "ferrocache exited during the benchmark"
kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited during the benchmark"

python3 - "$RESULTS" <<'PY'
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    name, p, test, rps = line.rstrip("\n").split("\t")
    rows.setdefault((test, int(p)), {}).setdefault(name, []).append(float(rps))

print("| test | P | ferrocache rps | redis rps | ratio ours/redis |")
print("|------|--:|---------------:|----------:|-----------------:|")
order = {"SET": 0, "GET": 1}
for test, p in sorted(rows, key=lambda k: (k[1], order.get(k[0], 9))):
    ours = statistics.median(rows[(test, p)]["ferrocache"])
    theirs = statistics.median(rows[(test, p)]["redis"])
    print(f"| {test} | {p} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
PY
