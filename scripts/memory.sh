#!/usr/bin/env bash
# Memory per key, ferrocache beside Debian's redis-server: loads N keys of
# 16 bytes with 32-byte values (as SETs through redis-cli --pipe) into both
# servers, without and with a TTL on every key, and reports used_memory and
# RSS growth per key. The output is a markdown table for docs/benchmarks.md.
#
#   scripts/memory.sh                      # N=1000000
#   N="1000000 5000000 10000000" scripts/memory.sh
#   FERROCACHE_BIN=/tmp/old-ferrocache N=1000000 scripts/memory.sh
#
# Env: FERROCACHE_BIN (default target/release/ferrocache, built if missing),
# N (one or more key counts), SHARDS (passed as --shards to ferrocache),
# REDIS_BIN (default: redis-server on PATH), SKIP_REDIS=1 (ferrocache only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

NS="${N:-1000000}"
for n in $NS; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be positive integers, got '$n'"
done
resolve_binaries "$ROOT"
shard_flags
make_tmpdir WORK

info_field() { # PORT FIELD
    redis-cli -h 127.0.0.1 -p "$1" info memory | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

# measure NAME BIN N TTL [ARGS...]: prints one table row.
measure() {
    local name="$1" bin="$2" n="$3" ttl="$4"
    shift 4
    local sport spid used0 rss0 used1 rss1 keys
    start_server sport spid "$WORK/$name.log" "$bin" "$@"
    redis-cli -h 127.0.0.1 -p "$sport" memory purge >/dev/null
    sleep 1
    used0="$(info_field "$sport" used_memory)"
    rss0="$(info_field "$sport" used_memory_rss)"
    redis-cli -h 127.0.0.1 -p "$sport" --pipe <"$WORK/load-$n-$ttl.resp" >/dev/null
    # Freed memory (the tables' old arrays after growing) goes back to the
    # system after jemalloc's decay time; MEMORY PURGE does it now, on both.
    redis-cli -h 127.0.0.1 -p "$sport" memory purge >/dev/null
    sleep 1
    keys="$(redis-cli -h 127.0.0.1 -p "$sport" dbsize)"
    used1="$(info_field "$sport" used_memory)"
    rss1="$(info_field "$sport" used_memory_rss)"
    [[ "$keys" == "$n" ]] || die "$name loaded $keys keys, expected $n"
    kill "$spid"
    wait "$spid" 2>/dev/null || true
    printf '| %s | %s | %s | %.1f | %.1f |\n' "$name" "$n" "$([[ $ttl == 1 ]] && echo yes || echo no)" \
        "$(echo "($used1 - $used0) / $n" | bc -l)" "$(echo "($rss1 - $rss0) / $n" | bc -l)"
}

echo "## Memory per key: $NS keys, 16-byte keys, 32-byte values"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- host: nproc=$(nproc), $(uname -sm)"
echo "- ferrocache: $BIN ${FERRO_ARGS[*]:-}"
echo "- redis: $("$REDIS_BIN" --version | head -1)"
echo "- command: N=\"$NS\" scripts/memory.sh"
echo
echo "| server | keys | TTL | used_memory B/key | RSS B/key |"
echo "|---|---|---|---|---|"
for n in $NS; do
    for ttl in 0 1; do
        gen_sets "$n" "$ttl" "$WORK/load-$n-$ttl.resp"
        measure ferrocache "$BIN" "$n" "$ttl" "${FERRO_ARGS[@]}"
        if [[ "${SKIP_REDIS:-0}" != 1 ]]; then
            measure redis "$REDIS_BIN" "$n" "$ttl"
        fi
        rm -f "$WORK/load-$n-$ttl.resp"
    done
done
