#!/usr/bin/env bash
# Cluster client check: starts a 3-primary + 3-replica cluster of the
# release binary on free loopback ports in a temporary directory, then runs
# scripts/cluster_clients.py against it (redis-py's RedisCluster: 100,000
# keys over all 16,384 slots, READONLY replica reads, ASK/ASKING during a
# hand-made slot migration, and a 1,000-slot `redis-cli --cluster reshard`
# under redis-benchmark --cluster and a redis-py writer). Exits non-zero on
# the first mismatch; stops exactly the processes it started.
#
#   scripts/cluster_clients.sh                                   # ferrocache (built if missing)
#   FERROCACHE_BIN=/usr/bin/redis-server scripts/cluster_clients.sh   # the same checks against real Redis
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

NODES=6
START=$SECONDS

resolve_binaries "$ROOT"
ensure_venv "$ROOT"
make_tmpdir WORK

step "cluster_clients: starting $NODES cluster nodes of $BIN"
ADDRS=()
for i in $(seq 1 "$NODES"); do
    # Bus ports are picked too: port + 10000 may be taken or past 65535.
    cport="$(free_port)"
    # (start_server has locals named port and pid: other names here.)
    node_port="" node_pid=""
    start_server node_port node_pid "$WORK/node-$i.log" "$BIN" \
        --cluster-enabled yes --cluster-port "$cport" \
        --cluster-config-file "$WORK/nodes-$i.conf" \
        --cluster-node-timeout 5000 --dir "$WORK"
    ADDRS+=("127.0.0.1:$node_port")
    log "node $i: pid $node_pid, 127.0.0.1:$node_port, bus port $cport"
done

create_out="$(timeout 120 redis-cli --cluster create "${ADDRS[@]}" --cluster-replicas 1 --cluster-yes 2>&1)" \
    || die "redis-cli --cluster create failed: $create_out"
grep -q '\[OK\] All 16384 slots covered' <<<"$create_out" \
    || die "redis-cli --cluster create did not cover all slots: $create_out"
log "redis-cli --cluster create: ok"

step "cluster_clients: redis-py checks (scripts/cluster_clients.py)"
timeout 900 "$ROOT/.venv/bin/python" "$ROOT/scripts/cluster_clients.py" "${ADDRS[@]}" \
    || die "scripts/cluster_clients.py failed"

echo
echo "cluster_clients.sh: all checks passed against $BIN in $((SECONDS - START))s"
