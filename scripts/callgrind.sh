#!/usr/bin/env bash
# User-space instructions per command of ferrocache and Debian's
# redis-server, counted by valgrind's callgrind under the same
# redis-benchmark load. Instruction counts do not depend on what else the
# machine runs, so this is the figure to quote before and after an
# optimisation on a noisy machine (wall-clock throughput is not).
#
#   scripts/callgrind.sh                  # N=100000 per command, SET then GET
#   N=50000 TESTS="get set incr" scripts/callgrind.sh
#   SERVERS=ferrocache scripts/callgrind.sh   # skip redis-server
#   # SET while evicting (docs/benchmarks.md, Eviction): 64mb allkeys-lru,
#   # ferrocache with its default shard count, 100-byte values:
#   TESTS=set N=200000 PIPELINE=16 KEYSPACE=10000000 PRELOAD=600000 \
#     DATASIZE=100 FERRO_SHARDS= \
#     SERVER_ARGS="--maxmemory 64mb --maxmemory-policy allkeys-lru" scripts/callgrind.sh
#
# Each server runs under callgrind with one shard/thread serving (ferrocache
# --shards 1). Counters are zeroed just before each redis-benchmark run and
# dumped just after, so start-up and preloading are not counted; the kernel's
# share (system calls, TCP) is not user space and is not counted by anyone.
# Env: N, TESTS, CLIENTS (default 50), PIPELINE (default 1), SERVERS
# ("ferrocache redis"), FERROCACHE_BIN, REDIS_BIN, KEYSPACE (keys preloaded
# and asked for, default 100000), CACHE_SIM=1 (also simulate the caches:
# first-level and last-level data read misses per command, which is where
# a large keyspace costs; valgrind's simulated caches, sized like the
# host's unless VALGRIND_ARGS says otherwise, e.g. "--LL=33554432,16,64"),
# PRELOAD (SETs before counting, default 2 x KEYSPACE), DATASIZE (value
# bytes, -d; default redis-benchmark's 3), SERVER_ARGS (more arguments for
# both servers), FERRO_SHARDS (default 1; empty: ferrocache's default).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

N="${N:-100000}"
TESTS="${TESTS:-set get}"
CLIENTS="${CLIENTS:-50}"
PIPELINE="${PIPELINE:-1}"
KEYSPACE="${KEYSPACE:-100000}"
PRELOAD="${PRELOAD:-$((KEYSPACE * 2))}"
DATASIZE="${DATASIZE:-3}"
FERRO_SHARDS="${FERRO_SHARDS-1}"
# shellcheck disable=SC2206 # extra server flags, split on spaces on purpose
SERVER_ARGS=(${SERVER_ARGS:-})
CACHE_SIM="${CACHE_SIM:-}"
SIM_ARGS=()
[[ -n "$CACHE_SIM" ]] && SIM_ARGS=(--cache-sim=yes)
# shellcheck disable=SC2206 # extra valgrind flags, split on spaces on purpose
SIM_ARGS+=(${VALGRIND_ARGS:-})
SERVERS="${SERVERS:-ferrocache redis}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
command -v valgrind >/dev/null || die "valgrind is required (apt-get install valgrind)"
command -v callgrind_control >/dev/null || die "callgrind_control is required (part of valgrind)"
resolve_binaries "$ROOT"
make_tmpdir WORK

# Ask callgrind (which only looks at its command file while the program runs
# code) to act, and poke the server until it has.
callgrind_do() { # PID PORT ARGS...
    local pid="$1" port="$2"
    shift 2
    callgrind_control "$@" "$pid" >/dev/null 2>&1 &
    local ctl=$! i
    for i in $(seq 1 200); do
        kill -0 "$ctl" 2>/dev/null || break
        redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 || true
        sleep 0.05
    done
    wait "$ctl" || die "callgrind_control $* failed"
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for name in $SERVERS; do
    case "$name" in
        ferrocache) bin="$BIN" extra=(${FERRO_SHARDS:+--shards "$FERRO_SHARDS"}) ;;
        redis) bin="$REDIS_BIN" extra=() ;;
        *) die "unknown server '$name' in SERVERS" ;;
    esac
    port="$(free_port)"
    (cd "$WORK" && exec valgrind --tool=callgrind "${SIM_ARGS[@]}" --callgrind-out-file="$WORK/$name.%p.out" \
        "$bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no "${extra[@]}" "${SERVER_ARGS[@]}" \
        >"$WORK/$name.log" 2>&1) &
    pid=$!
    FC_PIDS+=("$pid")
    wait_ping "$port" "$pid" 120 || die "$name did not start under valgrind (log: $(tail -5 "$WORK/$name.log"))"
    # Every key the GETs ask for exists (with the default PRELOAD).
    redis-benchmark -h 127.0.0.1 -p "$port" -t set -r "$KEYSPACE" -n "$PRELOAD" -d "$DATASIZE" -P 16 -q >/dev/null
    for test in $TESTS; do
        callgrind_do "$pid" "$port" --zero
        redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -r "$KEYSPACE" -n "$N" -d "$DATASIZE" -c "$CLIENTS" -P "$PIPELINE" -q >/dev/null
        callgrind_do "$pid" "$port" --dump="$test"
        out="$(ls -t "$WORK"/"$name".*.out.* 2>/dev/null | head -1)"
        [[ -n "$out" ]] || die "no callgrind dump for $name $test"
        # Totals in the order of the "Events shown" line: Ir, and with the
        # cache simulation also Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
        totals="$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", ""); gsub(/\([^)]*\)/, ""); print $1, $5, $8; exit }')"
        read -r total d1mr dlmr <<<"$totals"
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$test" "$total" "${d1mr:--}" "${dlmr:--}" >>"$RESULTS"
        log "$name $test: $total instructions for $N requests" >&2
        [[ -n "${KEEP_DUMPS:-}" ]] && cp "$out" "$KEEP_DUMPS/$name.$test.callgrind"
        rm -f "$out"
    done
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
done

echo "## Instructions per command (callgrind, user space)"
echo
print_run_facts "$ROOT"
echo "- command: N=$N TESTS=\"$TESTS\" CLIENTS=$CLIENTS PIPELINE=$PIPELINE KEYSPACE=$KEYSPACE PRELOAD=$PRELOAD DATASIZE=$DATASIZE FERRO_SHARDS=$FERRO_SHARDS SERVER_ARGS=\"${SERVER_ARGS[*]}\" CACHE_SIM=${CACHE_SIM:-} VALGRIND_ARGS=\"${VALGRIND_ARGS:-}\" scripts/callgrind.sh"
echo
python3 - "$RESULTS" "$N" "$CACHE_SIM" <<'PY'
import sys
rows = {}
misses = {}
n = int(sys.argv[2])
for line in open(sys.argv[1]):
    name, test, total, d1mr, dlmr = line.split()
    rows[(name, test)] = int(total) / n
    if d1mr != "-":
        misses[(name, test)] = (int(d1mr) / n, int(dlmr) / n)
tests = sorted({t for _, t in rows}, key=lambda t: ["set", "get"].index(t) if t in ("set", "get") else 9)
print("| command | ferrocache instr/op | redis instr/op | ratio ours/redis |")
print("|---|--:|--:|--:|")
for t in tests:
    ours, theirs = rows.get(("ferrocache", t)), rows.get(("redis", t))
    fmt = lambda v: f"{v:,.0f}" if v is not None else "-"
    ratio = f"{ours / theirs:.2f}" if ours and theirs else "-"
    print(f"| {t.upper()} | {fmt(ours)} | {fmt(theirs)} | {ratio} |")
if sys.argv[3]:
    print()
    print("| server | command | D1 read misses/op | LL read misses/op |")
    print("|---|---|--:|--:|")
    for (name, t), (d1, ll) in sorted(misses.items()):
        print(f"| {name} | {t.upper()} | {d1:.2f} | {ll:.2f} |")
PY
