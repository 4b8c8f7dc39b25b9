#!/usr/bin/env bash
# GET latency and RSS of a primary during full resyncs (issue 4's
# acceptance: p99 GET during the sync within 2x of p99 without it, RSS
# growth under 10%), ferrocache and Debian's redis-server side by side in
# one run. Needs a quiet machine to mean anything.
#
#   scripts/bench_repl_sync.sh                     # KEYS=1000000
#   KEYS=200000 SHARDS=2 SERVERS=ferrocache scripts/bench_repl_sync.sh
#   REPLICA_NICE=19 scripts/bench_repl_sync.sh     # replicas at low CPU priority
#   REPLICA=cli scripts/bench_repl_sync.sh         # syncs by redis-cli --rdb /dev/null
#   REPLICA=cli CONTROL=pump scripts/bench_repl_sync.sh   # and the bytes alone
#
# Per server: load KEYS keys (100-byte values) into a primary; then, ROUNDS
# times, measure GET p99 with redis-benchmark (baseline) and measure it
# again while replicas (same server kind) full-sync back to back (each
# replica is stopped once its link is up and a new one started, so every
# request overlaps a sync), sampling the primary's VmRSS every 20 ms.
#
# On a 2-core machine the replica, the primary and redis-benchmark share
# the cores, so a replica loading 1M keys takes CPU from the primary that
# it would not take on its own host. REPLICA_NICE runs the replicas under
# `nice -n N` to approximate that: they then get CPU only when the
# primary and the client leave some. REPLICA=cli takes the replica's
# work out altogether: the full syncs are `redis-cli --rdb /dev/null`
# (SYNC with `REPLCONF rdb-only 1`), which reads the RDB and discards it,
# so what remains is the primary's own cost of a sync.
#
# CONTROL=pump (with REPLICA=cli) adds a third measurement to each round:
# GET p99 while scripts/loopback_pump.py moves the same snapshot's bytes
# between two processes of its own at the pace the syncs of that round
# kept, with nothing asked of the server. The difference between it and
# the sync measurement is the primary's own cost; the difference between
# it and the baseline is what moving those bytes through this machine's
# loopback costs any server sharing its cores.
#
# Env: FERROCACHE_BIN (default target/release/ferrocache, built if
# missing), REDIS_BIN, SERVERS (default "ferrocache redis"), KEYS, SHARDS
# (ferrocache's --shards; default: its default), ROUNDS (default 3: each
# a measurement without syncs, then one during syncs; medians reported),
# REQUESTS (GETs per measurement, default 500000), CLIENTS (default 50), REPLICA_NICE,
# REPLICA (server, the default, or cli), CONTROL (pump, or empty).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap
resolve_binaries "$ROOT"

KEYS="${KEYS:-1000000}"
REQUESTS="${REQUESTS:-500000}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-50}"
SERVERS="${SERVERS:-ferrocache redis}"
REPLICA_NICE="${REPLICA_NICE:-}"
REPLICA="${REPLICA:-server}"
[[ "$REPLICA" == server || "$REPLICA" == cli ]] || die "REPLICA must be server or cli, got '$REPLICA'"
CONTROL="${CONTROL:-}"
[[ -z "$CONTROL" || "$CONTROL" == pump ]] || die "CONTROL must be pump or empty, got '$CONTROL'"
[[ -z "$CONTROL" || "$REPLICA" == cli ]] || die "CONTROL=pump needs REPLICA=cli"
SHARD_ARGS=()
[[ -n "${SHARDS:-}" ]] && SHARD_ARGS=(--shards "$SHARDS")

make_tmpdir WORK
REPLICA_PREFIX=()
[[ -n "$REPLICA_NICE" ]] && REPLICA_PREFIX=(nice -n "$REPLICA_NICE")

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# p99 PORT: GET p99 in ms over REQUESTS random existing keys
# (redis-benchmark 7's CSV: avg min p50 p95 p99 max from column 4).
p99() {
    redis-benchmark -p "$1" -t get -r "$KEYS" -n "$REQUESTS" -c "$CLIENTS" \
        --csv 2>/dev/null | awk -F'","' 'NR==2 {gsub(/"/,"",$7); print $7}'
}

# cpu_ms PID: CPU time of the process and its reaped children (Redis's
# fork child) so far, in ms.
CLK_TCK=$(getconf CLK_TCK)
cpu_ms() {
    local f
    read -r -a f <"/proc/$1/stat"
    # Fields 14-17 (utime stime cutime cstime); comm has no spaces here.
    echo $(((f[13] + f[14] + f[15] + f[16]) * 1000 / CLK_TCK))
}

# timed_p99 PORT PID: "p99 cpu_share wall_us" where cpu_share is the
# primary's CPU during the measurement in % of one core and wall_us how
# long the measurement took.
timed_p99() {
    local t0 c0 p t1 c1
    t0=${EPOCHREALTIME/./}
    c0=$(cpu_ms "$2")
    p=$(p99 "$1")
    c1=$(cpu_ms "$2")
    t1=${EPOCHREALTIME/./}
    # ms of CPU per µs of wall, as a percentage.
    echo "$p $(((c1 - c0) * 100000 / (t1 - t0 + 1))) $((t1 - t0 + 1))"
}

# measure NAME BIN ARGS...: appends "NAME base_p99 sync_p99 base_rss peak_rss
# full_syncs base_cpu sync_cpu" to RESULTS (runs in this shell so the exit trap knows its PIDs).
measure() {
    local name="$1" bin="$2"
    shift 2
    local dir="$WORK/$name" pport ppid
    mkdir -p "$dir"
    start_server pport ppid "$dir/primary.log" "$bin" "$@" --dir "$dir"
    log "$name: loading $KEYS keys into the primary (port $pport)"
    python3 - "$KEYS" <<'PY' | redis-cli -p "$pport" --pipe >/dev/null
import sys
n = int(sys.argv[1])
val = b"v" * 100
out = sys.stdout.buffer
for i in range(n):
    k = b"key:%012d" % i  # redis-benchmark -r names keys key:<12 digits>
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, val))
PY
    local base_rss
    base_rss=$(rss "$ppid")
    log "$name: RSS ${base_rss} kB after loading"

    local snapshot_bytes=0
    if [[ -n "$CONTROL" ]]; then
        redis-cli -p "$pport" --rdb "$dir/snapshot.rdb" >/dev/null 2>&1 || die "$name: redis-cli --rdb failed"
        snapshot_bytes=$(stat -c %s "$dir/snapshot.rdb")
    fi

    local wrapper="$dir/replica-bin"
    printf '#!/bin/sh\nexec %s %q "$@"\n' "${REPLICA_PREFIX[*]:-}" "$bin" >"$wrapper"
    chmod +x "$wrapper"
    # Rounds alternate a measurement without syncs and one during syncs,
    # so a change in the machine's load affects both sides alike.
    local bases=() syncs=() pumps=() base_cpus=() sync_cpus=() round
    for ((round = 1; round <= ROUNDS; round++)); do
        local stop="$dir/stop.$round" done_syncs="$dir/syncs.$round" b s bc sc wall
        read -r b bc _ <<<"$(timed_p99 "$pport" "$ppid")"
        bases+=("$b")
        base_cpus+=("$bc")
        (
            while [[ ! -e "$stop" ]]; do
                if [[ "$REPLICA" == cli ]]; then
                    # Exits 1 even after a whole transfer: /dev/null
                    # cannot be fsynced.
                    out=$(${REPLICA_PREFIX[@]+"${REPLICA_PREFIX[@]}"} redis-cli -p "$pport" --rdb /dev/null 2>&1 || true)
                    if [[ "$out" == *"Transfer finished with success"* ]]; then
                        echo >>"$done_syncs"
                    else
                        sleep 0.05
                    fi
                    continue
                fi
                # A fresh directory each time: a Redis replica saves the
                # synced dataset with its replication ID, and a restart
                # from it would resync partially, not fully.
                rdir="$(mktemp -d "$dir/replica.XXXXXX")"
                start_server rport rpid "$dir/replica.log" "$wrapper" "$@" \
                    --dir "$rdir" --replicaof 127.0.0.1 "$pport"
                for _ in $(seq 1 1200); do
                    [[ -e "$stop" ]] && break
                    redis-cli -p "$rport" info replication 2>/dev/null | grep -q master_link_status:up && break
                    sleep 0.05
                done
                kill "$rpid" 2>/dev/null || true
                wait "$rpid" 2>/dev/null || true
                rm -rf "$rdir"
            done
        ) &
        local syncer=$!
        (
            # Shell builtins only: forking awk and sleep 50 times a second
            # took enough CPU from the primary and the client to triple
            # the p99 of the phase it ran in.
            local peak=0 r k v pause
            [[ -e "$dir/peak" ]] && read -r peak <"$dir/peak"
            exec {pause}<> <(:)
            while [[ ! -e "$stop" ]]; do
                r=0
                while read -r k v _; do
                    [[ "$k" == VmRSS: ]] && r=$v && break
                done <"/proc/$ppid/status"
                ((r > peak)) && peak=$r && echo "$peak" >"$dir/peak"
                read -r -t 0.02 -u "$pause" _ || true
            done
        ) &
        local sampler=$!
        read -r s sc wall <<<"$(timed_p99 "$pport" "$ppid")"
        syncs+=("$s")
        sync_cpus+=("$sc")
        touch "$stop"
        wait "$syncer" "$sampler" 2>/dev/null || true
        log "$name: round $round: GET p99 ${b} ms without syncs, ${s} ms during syncs; primary CPU ${bc}% and ${sc}% of a core"
        if [[ -n "$CONTROL" ]]; then
            local n p rate pump
            n=$(wc -l <"$done_syncs" 2>/dev/null || echo 0)
            ((n > 0)) || n=1
            # Bytes per second the syncs of this round kept.
            rate=$((snapshot_bytes * n * 1000000 / wall))
            python3 "$ROOT/scripts/loopback_pump.py" "$dir/snapshot.rdb" "$rate" &
            pump=$!
            FC_PIDS+=("$pump")
            sleep 0.3
            p=$(p99 "$pport")
            kill "$pump" 2>/dev/null || true
            wait "$pump" 2>/dev/null || true
            pumps+=("$p")
            log "$name: round $round: GET p99 ${p} ms with the bytes of $n syncs pumped between two other processes at $((rate / 1000000)) MB/s"
        fi
    done
    local peak full base_p99 sync_p99 pump_p99=- base_cpu sync_cpu
    peak=$(cat "$dir/peak" 2>/dev/null || echo "$base_rss")
    full=$(redis-cli -p "$pport" info stats | awk -F: '/^sync_full/ {print $2}' | tr -d '\r')
    base_p99=$(printf '%s\n' "${bases[@]}" | median)
    sync_p99=$(printf '%s\n' "${syncs[@]}" | median)
    ((${#pumps[@]})) && pump_p99=$(printf '%s\n' "${pumps[@]}" | median)
    base_cpu=$(printf '%s\n' "${base_cpus[@]}" | median)
    sync_cpu=$(printf '%s\n' "${sync_cpus[@]}" | median)
    log "$name: median GET p99 ${base_p99} ms without, ${sync_p99} ms during syncs; peak RSS ${peak} kB, full syncs served: ${full}"
    kill "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    RESULTS+=("$name $base_p99 $sync_p99 $base_rss $peak $full $base_cpu $sync_cpu $pump_p99")
}

RESULTS=()
for server in $SERVERS; do
    case "$server" in
    ferrocache) measure ferrocache "$BIN" "${SHARD_ARGS[@]}" ;;
    redis) measure redis "$REDIS_BIN" --repl-diskless-sync-delay 0 ;;
    *) die "unknown server '$server' in SERVERS" ;;
    esac
done

step "summary"
print_run_facts "$ROOT"
echo "- command: KEYS=$KEYS ROUNDS=$ROUNDS REQUESTS=$REQUESTS CLIENTS=$CLIENTS SHARDS=${SHARDS:-default} REPLICA_NICE=${REPLICA_NICE:-none} REPLICA=$REPLICA CONTROL=${CONTROL:-none} scripts/bench_repl_sync.sh"
echo
echo "| server | full syncs | GET p99 no sync (ms, median) | GET p99 during syncs (ms, median) | ratio | RSS before (kB) | peak RSS (kB) | RSS growth | primary CPU no sync / during syncs (% of a core, median) |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
CONTROL_ROWS=()
for row in "${RESULTS[@]}"; do
    read -r name b s r0 r1 full bc sc p <<<"$row"
    awk -v n="$name" -v b="$b" -v s="$s" -v r0="$r0" -v r1="$r1" -v f="$full" -v bc="$bc" -v sc="$sc" 'BEGIN {
        printf "| %s | %s | %.3f | %.3f | %.2fx | %d | %d | %+.1f%% | %d / %d |\n", n, f, b, s, s / b, r0, r1, 100 * (r1 - r0) / r0, bc, sc }'
    if [[ -n "$CONTROL" ]]; then
        CONTROL_ROWS+=("$(awk -v n="$name" -v b="$b" -v s="$s" -v p="$p" 'BEGIN {
            printf "| %s | %.3f | %.3f | %.2fx | %.3f | %.2fx |", n, b, s, s / b, p, p / b }')")
    fi
done
if [[ -n "$CONTROL" ]]; then
    echo
    echo "Control: the same bytes moved between two other processes at each round's pace, the server only serving GETs."
    echo
    echo "| server | GET p99 no sync (ms, median) | during syncs | ratio | bytes alone (pump) | ratio |"
    echo "|---|--:|--:|--:|--:|--:|"
    printf '%s\n' "${CONTROL_ROWS[@]}"
fi
