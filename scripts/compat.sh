#!/usr/bin/env bash
# Compatibility check against the stock Redis tools: starts the server, then
# drives it with redis-cli (one-shot and --pipe), redis-benchmark and
# redis-py (scripts/compat.py, RESP2 and RESP3). Exits non-zero naming the
# first check that failed.
#
#   scripts/compat.sh                                   # ferrocache (built if missing)
#   FERROCACHE_BIN=/usr/bin/redis-server scripts/compat.sh   # validate against real Redis
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
install_cleanup_trap

resolve_binaries "$ROOT"
ensure_venv "$ROOT"

make_tmpdir WORK
step "compat: starting $BIN"
PORT="" SERVER_PID=""
start_server PORT SERVER_PID "$WORK/server.log" "$BIN"
log "server pid $SERVER_PID listening on 127.0.0.1:$PORT"

CHECKS=0

# cli ARGS...: one redis-cli call; stores its stdout+stderr in CLI_OUT exactly,
# trailing newlines included (which $(...) alone would strip).
CLI_OUT=""
cli() {
    CLI_OUT="$(timeout 30 redis-cli -h 127.0.0.1 -p "$PORT" "$@" 2>&1; printf x)"
    CLI_OUT="${CLI_OUT%x}"
}

# expect NAME EXPECTED ARGS...: redis-cli ARGS must print EXPECTED followed by
# exactly one newline (redis-cli prints one line per reply element when its
# output is not a terminal, with no type prefixes).
expect() {
    local name="$1" expected="$2"
    shift 2
    cli "$@"
    if [[ "$CLI_OUT" != "$expected"$'\n' ]]; then
        die "redis-cli check '$name' (redis-cli $*): expected $(printf '%q' "$expected"$'\n'), got $(printf '%q' "$CLI_OUT")"
    fi
    CHECKS=$((CHECKS + 1))
}

# expect_err NAME MESSAGE ARGS...: redis-cli ARGS must print the error MESSAGE.
# redis-cli adds a blank line after an error (and, in some versions, an
# "(error) " prefix), so only the message itself is compared.
expect_err() {
    local name="$1" expected="$2" got
    shift 2
    cli "$@"
    got="${CLI_OUT%%$'\n'}"
    while [[ "$got" == *$'\n' ]]; do got="${got%$'\n'}"; done
    got="${got#(error) }"
    if [[ "$got" != "$expected" ]]; then
        die "redis-cli check '$name' (redis-cli $*): expected error $(printf '%q' "$expected"), got $(printf '%q' "$CLI_OUT")"
    fi
    CHECKS=$((CHECKS + 1))
}

step "compat a) redis-cli one-shot commands"
expect "FLUSHALL" "OK" flushall
expect "PING" "PONG" ping
expect "PING msg" "hi there" ping "hi there"
expect "ECHO" "hello" echo hello
expect "SET" "OK" set k v
expect "GET" "v" get k
expect "GET missing (nil prints as empty line)" "" get nosuchkey
expect "SET overwrite" "OK" set k v2
expect "GET after overwrite" "v2" get k
expect "INCR new key" "1" incr counter
expect "INCR again" "2" incr counter
expect_err "INCR non-integer" "ERR value is not an integer or out of range" incr k
expect_err "GET arity error" "ERR wrong number of arguments for 'get' command" get k extra
expect "EXISTS counts each key" "3" exists k counter nosuchkey k
expect "DEL" "1" del k nosuchkey
expect "EXISTS after DEL" "0" exists k
expect "EXPIRE" "1" expire counter 100
expect "EXPIRE missing" "0" expire nosuchkey 100
cli ttl counter
ttl="$CLI_OUT"
if ! [[ "$ttl" =~ ^[0-9]+$'\n'$ ]] || ((${ttl%$'\n'} < 90 || ${ttl%$'\n'} > 100)); then
    die "redis-cli check 'TTL after EXPIRE 100': expected 90..100, got $(printf '%q' "$ttl")"
fi
CHECKS=$((CHECKS + 1))
expect "TTL missing key" "-2" ttl nosuchkey
expect "SET persistent" "OK" set plain x
expect "TTL no expiry" "-1" ttl plain
expect "MSET" "OK" mset a 1 b 2 c 3
expect "MGET (missing key prints as empty line)" $'1\n2\n\n3' mget a b nosuchkey c
expect "DBSIZE" "5" dbsize
cli info server
info="$(tr -d '\r' <<<"$CLI_OUT")"
grep -q '^# Server' <<<"$info" || die "redis-cli check 'INFO server': no '# Server' section header in: $(head -c 300 <<<"$info")"
grep -q '^redis_version:[0-9]' <<<"$info" || die "redis-cli check 'INFO server': no redis_version field"
grep -qx "tcp_port:$PORT" <<<"$info" || die "redis-cli check 'INFO server': tcp_port is not $PORT"
CHECKS=$((CHECKS + 3))
log "redis-cli one-shot: $CHECKS checks passed"

step "compat b) redis-cli --pipe with 100000 SETs"
expect "FLUSHALL before --pipe" "OK" flushall
awk 'BEGIN {
    for (i = 0; i < 100000; i++) {
        k = "pipe:" i; v = "value:" i;
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
    }
}' >"$WORK/pipe.resp"
pipe_out="$(timeout 300 redis-cli -h 127.0.0.1 -p "$PORT" --pipe <"$WORK/pipe.resp" 2>&1)" \
    || die "redis-cli --pipe exited non-zero: $pipe_out"
printf '%s\n' "$pipe_out"
grep -q 'errors: 0, replies: 100000' <<<"$pipe_out" \
    || die "redis-cli --pipe check: expected 'errors: 0, replies: 100000'"
expect "DBSIZE after --pipe" "100000" dbsize
expect "GET a piped key" "value:99999" get pipe:99999
log "redis-cli --pipe: ok"

step "compat c) redis-benchmark"
expect "FLUSHALL before redis-benchmark" "OK" flushall
bench_cmd=(redis-benchmark -h 127.0.0.1 -p "$PORT" -t "set,get,incr,mset,ping" -n 100000 -P 16 -q)
echo "\$ ${bench_cmd[*]}"
bench_rc=0
timeout 600 "${bench_cmd[@]}" >"$WORK/bench.out" 2>&1 || bench_rc=$?
# In -q mode progress lines end in \r and the final line of each test in \n.
tr '\r' '\n' <"$WORK/bench.out" | grep -v '^[[:space:]]*$' | grep -v ': rps=' >"$WORK/bench.final" || true
cat "$WORK/bench.final"
((bench_rc == 0)) || die "redis-benchmark exited with status $bench_rc"
if grep -qi 'error' "$WORK/bench.out"; then
    die "redis-benchmark output contains an error: $(grep -i -m1 'error' "$WORK/bench.out" | tr '\r' ' ')"
fi
while IFS= read -r line; do
    [[ "$line" =~ ^[A-Z_]+( \([0-9]+ keys\))?:\ [0-9]+(\.[0-9]+)?\ requests\ per\ second ]] \
        || die "redis-benchmark line does not report requests per second: $line"
done <"$WORK/bench.final"
for t in PING_INLINE PING_MBULK SET GET INCR 'MSET (10 keys)'; do
    grep -q "^$t: [0-9.]* requests per second" "$WORK/bench.final" \
        || die "redis-benchmark: no result line for test '$t'"
done
# All 100000 INCRs hit one key, so a dropped or duplicated pipelined command
# shows up here.
expect "counter after redis-benchmark INCR" "100000" get counter:__rand_int__
expect "value size after redis-benchmark SET" "3" strlen key:__rand_int__
CHECKS=$((CHECKS + 8))
log "redis-benchmark: ok"

step "compat d) redis-py (scripts/compat.py)"
for proto in 2 3; do
    timeout 300 "$ROOT/.venv/bin/python" "$ROOT/scripts/compat.py" --port "$PORT" --protocol "$proto" \
        || die "scripts/compat.py --protocol $proto failed"
done

kill -0 "$SERVER_PID" 2>/dev/null || die "server process exited during the checks"
echo
echo "compat.sh: all checks passed against $BIN ($CHECKS redis-cli/benchmark checks + redis-py RESP2 and RESP3)"
