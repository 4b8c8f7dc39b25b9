#!/usr/bin/env bash
# Starts or stops a local ferrocache cluster of 3 primaries (replicas are
# not supported yet) on 127.0.0.1, for trying cluster mode by hand.
#
#   scripts/cluster.sh start   # ports 30001-30003 (BASE_PORT=30000)
#   scripts/cluster.sh stop
#
# FERROCACHE_BIN picks the binary (default: target/release/ferrocache,
# built if missing); CLUSTER_DIR holds nodes.conf files, logs and PIDs.
set -euo pipefail

BASE_PORT=${BASE_PORT:-30000}
NODES=3
DIR=${CLUSTER_DIR:-/tmp/ferrocache-cluster-$BASE_PORT}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERROCACHE_BIN:-$ROOT/target/release/ferrocache}

start() {
    if [[ ! -x "$BIN" ]]; then
        (cd "$ROOT" && cargo build --release)
    fi
    mkdir -p "$DIR"
    local addrs=()
    for i in $(seq 1 $NODES); do
        local port=$((BASE_PORT + i))
        if [[ -f "$DIR/$port.pid" ]] && kill -0 "$(cat "$DIR/$port.pid")" 2>/dev/null; then
            echo "node $port already running (pid $(cat "$DIR/$port.pid"))"
        else
            "$BIN" --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
                --cluster-config-file "$DIR/nodes-$port.conf" \
                --cluster-node-timeout 5000 --save '' \
                --logfile "$DIR/$port.log" </dev/null >/dev/null 2>&1 &
            echo $! > "$DIR/$port.pid"
        fi
        addrs+=("127.0.0.1:$port")
    done
    for i in $(seq 1 $NODES); do
        local port=$((BASE_PORT + i))
        for _ in $(seq 1 100); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    if redis-cli -p $((BASE_PORT + 1)) cluster info | grep -q 'cluster_known_nodes:1'; then
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes
    else
        redis-cli --cluster check "127.0.0.1:$((BASE_PORT + 1))"
    fi
    echo "cluster up: redis-cli -c -p $((BASE_PORT + 1))"
}

stop() {
    for i in $(seq 1 $NODES); do
        local port=$((BASE_PORT + i))
        local pidfile="$DIR/$port.pid"
        [[ -f "$pidfile" ]] || continue
        local pid
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        rm -f "$pidfile"
        echo "stopped node $port (pid $pid)"
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
