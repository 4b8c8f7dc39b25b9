#!/usr/bin/env bash
# Failover time under a write load: starts 3 primaries + 3 replicas
# (node-timeout 1000 ms) on 127.0.0.1, runs redis-benchmark --cluster SETs,
# kill -9s one primary and reports the time until its replica answers ROLE
# as a master and every survivor reports cluster_state:ok. Repeats RUNS
# times; kills only the processes it started.
#
#   RUNS=5 scripts/bench_failover.sh   # FERROCACHE_BIN may be relative
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERROCACHE_BIN:-$ROOT/target/release/ferrocache}
# Absolute: every node starts in its own directory.
BIN="$(realpath "$BIN")"
BASE=${BASE_PORT:-26400}
RUNS=${RUNS:-5}
DIR=$(mktemp -d /tmp/ferrocache-failover.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

for run in $(seq 1 "$RUNS"); do
    declare -A PID=()
    addrs=()
    for i in 0 1 2 3 4 5; do
        p=$((BASE + i))
        mkdir -p "$DIR/$run/$p"
        (cd "$DIR/$run/$p" && exec "$BIN" --port $p --bind 127.0.0.1 --save '' \
            --cluster-enabled yes --cluster-node-timeout 1000 >log 2>&1) &
        PID[$p]=$!
        addrs+=("127.0.0.1:$p")
    done
    sleep 0.5
    timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >/dev/null 2>&1
    for i in 0 1 2 3 4 5; do
        until redis-cli -p $((BASE + i)) cluster info | grep -q cluster_state:ok; do sleep 0.1; done
    done
    # cluster_state:ok can come before every node has heard which replica
    # follows which primary: wait until the victim's replica is known.
    rport=""
    for _ in $(seq 1 200); do
        vline=$(redis-cli -p "$BASE" cluster nodes | grep master | grep -v myself | head -1)
        victim=$(echo "$vline" | awk '{print $2}' | cut -d: -f2 | cut -d@ -f1)
        vid=$(echo "$vline" | awk '{print $1}')
        rport=$(redis-cli -p "$BASE" cluster nodes | grep "slave $vid" | awk '{print $2}' | cut -d: -f2 | cut -d@ -f1)
        [ -n "$rport" ] && break
        sleep 0.05
    done
    timeout 30 redis-benchmark --cluster -p "$BASE" -t set -n 100000000 -c 20 -r 100000 -q >/dev/null 2>&1 &
    bench=$!
    sleep 2
    t0=$(date +%s%N)
    kill -9 "${PID[$victim]}"
    ok=0
    for _ in $(seq 1 1000); do
        ok=1
        [ "$(redis-cli -p "$rport" role 2>/dev/null | head -1)" = master ] || ok=0
        for i in 0 1 2 3 4 5; do
            p=$((BASE + i))
            [ "$ok" = 1 ] && [ "$p" != "$victim" ] || continue
            redis-cli -p $p cluster info 2>/dev/null | grep -q cluster_state:ok || ok=0
        done
        if [ "$ok" = 1 ]; then
            echo "run $run: replica $rport of $victim promoted, all survivors ok after $((($(date +%s%N) - t0) / 1000000)) ms"
            break
        fi
        sleep 0.02
    done
    # A run that never converged is reported, not skipped.
    [ "$ok" = 1 ] || echo "run $run: NOT converged (victim port '${victim}', its replica '${rport}')"
    kill "$bench" 2>/dev/null
    wait "$bench" 2>/dev/null
    for p in "${!PID[@]}"; do kill "${PID[$p]}" 2>/dev/null; done
    wait 2>/dev/null
    unset PID
done
