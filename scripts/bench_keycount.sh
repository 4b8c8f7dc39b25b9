#!/usr/bin/env bash
# GET throughput as the keyspace grows (performance issue: GET with 10M
# keys within 15% of GET with 1,000 keys). For each key count K, a fresh
# server is loaded with exactly K keys (key:%012d, 32-byte values, through
# redis-cli --pipe) and redis-benchmark GETs random existing keys
# (-r K, the same key names) at P=1 and P=16. Redis runs beside it for
# reference. Prints rps medians and each count's ratio to the smallest.
#
#   scripts/bench_keycount.sh                        # KEYS="1000 10000000"
#   KEYS="1000 1000000 10000000" N=2000000 RUNS=3 scripts/bench_keycount.sh
#
# Env: KEYS (key counts, smallest first), N (GETs per run, default
# 2000000), RUNS (default 3), CLIENTS (50), SHARDS, SKIP_REDIS=1,
# FERROCACHE_BIN, REDIS_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

COUNTS="${KEYS:-1000 10000000}"
N="${N:-2000000}"
RUNS="${RUNS:-3}"
CLIENTS="${CLIENTS:-50}"
for v in $COUNTS "$N" "$RUNS" "$CLIENTS"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "KEYS, N, RUNS and CLIENTS must be positive integers, got '$v'"
done
resolve_binaries "$ROOT"
shard_flags
SERVERS=(ferrocache)
[[ -n "${SKIP_REDIS:-}" ]] || SERVERS+=(redis)
make_tmpdir WORK

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for k in $COUNTS; do
    gen_sets "$k" 0 "$WORK/load.resp"
    for name in "${SERVERS[@]}"; do
        srv_port="" srv_pid=""
        if [[ "$name" == ferrocache ]]; then
            start_server srv_port srv_pid "$WORK/$name-$k.log" "$BIN" "${FERRO_ARGS[@]}"
        else
            start_server srv_port srv_pid "$WORK/$name-$k.log" "$REDIS_BIN"
        fi
        redis-cli -h 127.0.0.1 -p "$srv_port" --pipe <"$WORK/load.resp" >/dev/null
        loaded="$(redis-cli -h 127.0.0.1 -p "$srv_port" dbsize)"
        [[ "$loaded" == "$k" ]] || die "$name holds $loaded keys after loading $k"
        for p in 1 16; do
            for run in $(seq 1 "$RUNS"); do
                rps="$(redis-benchmark -h 127.0.0.1 -p "$srv_port" -t get -r "$k" -n "$N" -c "$CLIENTS" -P "$p" -q --csv |
                    awk -F'"' '$2 == "GET" { print $4 }')"
                [[ "$rps" =~ ^[0-9.]+$ ]] || die "no GET figure from $name with $k keys"
                printf '%s\t%s\t%s\t%s\n' "$name" "$k" "$p" "$rps" >>"$RESULTS"
                log "$name keys=$k P=$p run $run: GET $rps rps" >&2
            done
        done
        kill "$srv_pid"
        wait "$srv_pid" 2>/dev/null || true
    done
done

echo "## GET throughput by keyspace size"
echo
print_run_facts "$ROOT"
echo "- command: KEYS=\"$COUNTS\" N=$N RUNS=$RUNS CLIENTS=$CLIENTS SHARDS=${SHARDS:-default} scripts/bench_keycount.sh"
echo
python3 - "$RESULTS" <<'PY'
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    name, k, p, rps = line.split()
    rows.setdefault((name, int(p)), {}).setdefault(int(k), []).append(float(rps))
print("| server | P | keys | GET rps (median) | ratio to the smallest keyspace |")
print("|---|--:|--:|--:|--:|")
for (name, p), by_k in sorted(rows.items()):
    base = statistics.median(by_k[min(by_k)])
    for k in sorted(by_k):
        m = statistics.median(by_k[k])
        print(f"| {name} | {p} | {k:,} | {m:,.0f} | {m / base:.2f} |")
PY
