#!/usr/bin/env python3
"""Compatibility checks with redis-py for string, keyspace and connection commands.

Runs against a server on 127.0.0.1:PORT that it may wipe (FLUSHALL):

    .venv/bin/python scripts/compat.py --port 6400 --protocol 2
    .venv/bin/python scripts/compat.py --port 6400 --protocol 3

Each assertion counts as one check; the first failure exits non-zero with the
check's name, what was expected and what came back. Expected values and error
strings are Redis 7's; the script passes against Debian's redis-server 7.0.

Transactions are checked the way redis-py applications use them:
transaction=True pipelines (MULTI/EXEC) and optimistic locking with WATCH,
both through Redis.transaction() and through pipe.watch/multi/execute.
"""

import argparse
import sys
import time
import traceback
import warnings

import redis

# redis-py marks SETEX/PSETEX/GETSET as deprecated; they are still Redis
# commands that clients send, so they are checked here on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning)

CHECKS = 0
LAST = None  # name of the last check that passed, for error reports


class CheckFailed(Exception):
    pass


def fail(name, msg):
    raise CheckFailed(f"check '{name}' failed: {msg}")


def check(name, got, expected):
    global CHECKS, LAST
    if got != expected or (type(got) is not type(expected) and not _same_kind(got, expected)):
        fail(name, f"expected {expected!r}, got {got!r}")
    CHECKS += 1
    LAST = name


def _same_kind(a, b):
    # bool is an int subclass: redis-py returns True for "OK" and 1 for
    # integer replies depending on the command; both compare equal here,
    # but a str "1" must never pass for an int 1.
    num = (int, float)
    return isinstance(a, num) and isinstance(b, num)


def check_true(name, cond, detail=""):
    global CHECKS, LAST
    if not cond:
        fail(name, detail or "condition is false")
    CHECKS += 1
    LAST = name


def check_range(name, got, lo, hi):
    global CHECKS, LAST
    if not isinstance(got, int) or not (lo <= got <= hi):
        fail(name, f"expected an integer in [{lo}, {hi}], got {got!r}")
    CHECKS += 1
    LAST = name


# redis-py strips these leading error codes from the message it raises with.
_STRIPPED_CODES = {"ERR", "OOM", "WRONGPASS", "EXECABORT", "LOADING", "NOSCRIPT",
                   "READONLY", "NOAUTH", "NOPERM"}


def _full_error(exc):
    code = getattr(exc, "status_code", None)
    msg = str(exc)
    if code:
        return f"{code} {msg}"
    return msg


def expect_error(name, fn, message):
    """fn() must raise redis.ResponseError whose full Redis text is `message`."""
    global CHECKS, LAST
    try:
        got = fn()
    except redis.ResponseError as exc:
        full = _full_error(exc)
        code, _, rest = message.partition(" ")
        stripped_ok = code in _STRIPPED_CODES and str(exc) == rest and not getattr(exc, "status_code", None)
        if full != message and not stripped_ok:
            fail(name, f"expected error {message!r}, got {full!r}")
        CHECKS += 1
        LAST = name
        return
    fail(name, f"expected error {message!r}, got reply {got!r}")


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INT = "ERR value is not an integer or out of range"
SYNTAX = "ERR syntax error"


def poll_until(name, cond, timeout=20.0):
    """Waits for something asynchronous; fails the check at the deadline."""
    global CHECKS, LAST
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            CHECKS += 1
            LAST = name
            return
        time.sleep(0.02)
    fail(name, f"condition not reached within {timeout}s")


def strings(r, rb):
    # --- SET / GET --------------------------------------------------------
    check("SET", r.set("s:k", "v"), True)
    check("GET", r.get("s:k"), "v")
    check("GET missing", r.get("s:missing"), None)
    check("SET overwrite", r.set("s:k", "v2"), True)
    check("GET after overwrite", r.get("s:k"), "v2")
    check("SET binary-safe", rb.set(b"s:bin\x00key", b"\x00\xff\x01\r\n"), True)
    check("GET binary-safe", rb.get(b"s:bin\x00key"), b"\x00\xff\x01\r\n")
    big = "x" * (1 << 20)
    check("SET 1 MiB value", r.set("s:big", big), True)
    check("GET 1 MiB value", r.get("s:big"), big)
    check("SET empty value", r.set("s:empty", ""), True)
    check("GET empty value", r.get("s:empty"), "")
    check("EXISTS empty value", r.exists("s:empty"), 1)

    check("SET EX", r.set("s:ex", "v", ex=100), True)
    check_range("TTL after SET EX 100", r.ttl("s:ex"), 90, 100)
    check("SET PX", r.set("s:px", "v", px=100000), True)
    check_range("PTTL after SET PX 100000", r.pttl("s:px"), 90000, 100000)
    now = int(time.time())
    check("SET EXAT", r.set("s:exat", "v", exat=now + 100), True)
    check_range("TTL after SET EXAT now+100", r.ttl("s:exat"), 90, 101)
    check("EXPIRETIME after SET EXAT", r.expiretime("s:exat"), now + 100)
    check("SET PXAT", r.set("s:pxat", "v", pxat=(now + 100) * 1000), True)
    check("PEXPIRETIME after SET PXAT", r.pexpiretime("s:pxat"), (now + 100) * 1000)
    expect_error("SET EX 0", lambda: r.set("s:bad", "v", ex=0),
                 "ERR invalid expire time in 'set' command")
    expect_error("SET EX -1", lambda: r.execute_command("SET", "s:bad", "v", "EX", "-1"),
                 "ERR invalid expire time in 'set' command")
    expect_error("SET PX not a number", lambda: r.execute_command("SET", "s:bad", "v", "PX", "abc"),
                 NOT_INT)
    check("SET with bad expire leaves no key", r.exists("s:bad"), 0)
    expect_error("SET NX XX", lambda: r.execute_command("SET", "s:k", "v", "NX", "XX"), SYNTAX)
    expect_error("SET EX PX", lambda: r.execute_command("SET", "s:k", "v", "EX", "10", "PX", "100"),
                 SYNTAX)
    expect_error("SET unknown option", lambda: r.execute_command("SET", "s:k", "v", "BOGUS"), SYNTAX)
    expect_error("SET arity", lambda: r.execute_command("SET", "s:k"),
                 "ERR wrong number of arguments for 'set' command")

    check("SET NX on missing", r.set("s:nx", "first", nx=True), True)
    check("SET NX on existing", r.set("s:nx", "second", nx=True), None)
    check("SET NX did not overwrite", r.get("s:nx"), "first")
    check("SET XX on missing", r.set("s:xx", "v", xx=True), None)
    check("SET XX on missing created nothing", r.exists("s:xx"), 0)
    r.set("s:xx", "old")
    check("SET XX on existing", r.set("s:xx", "new", xx=True), True)
    check("SET XX overwrote", r.get("s:xx"), "new")

    r.set("s:keep", "v", ex=100)
    check("SET KEEPTTL", r.set("s:keep", "v2", keepttl=True), True)
    check_range("TTL kept by KEEPTTL", r.ttl("s:keep"), 90, 100)
    check("SET without KEEPTTL", r.set("s:keep", "v3"), True)
    check("TTL cleared by plain SET", r.ttl("s:keep"), -1)

    check("SET GET on missing", r.set("s:get", "a", get=True), None)
    check("SET GET stored value", r.get("s:get"), "a")
    check("SET GET returns old", r.set("s:get", "b", get=True), "a")
    check("SET GET stored new", r.get("s:get"), "b")

    # --- SETNX / SETEX / PSETEX / GETSET / GETDEL / GETEX -----------------
    check("SETNX new", r.setnx("s:setnx", "1"), True)
    check("SETNX existing", r.setnx("s:setnx", "2"), False)
    check("SETNX kept first", r.get("s:setnx"), "1")
    check("SETEX", r.setex("s:setex", 100, "v"), True)
    check("SETEX value", r.get("s:setex"), "v")
    check_range("SETEX TTL", r.ttl("s:setex"), 90, 100)
    expect_error("SETEX 0", lambda: r.setex("s:setex", 0, "v"),
                 "ERR invalid expire time in 'setex' command")
    check("PSETEX", r.psetex("s:psetex", 100000, "v"), True)
    check_range("PSETEX PTTL", r.pttl("s:psetex"), 90000, 100000)
    expect_error("PSETEX -5", lambda: r.psetex("s:psetex", -5, "v"),
                 "ERR invalid expire time in 'psetex' command")

    check("GETSET missing", r.getset("s:getset", "a"), None)
    check("GETSET old", r.getset("s:getset", "b"), "a")
    check("GETSET stored", r.get("s:getset"), "b")
    r.set("s:getset_ttl", "v", ex=100)
    r.getset("s:getset_ttl", "w")
    check("GETSET clears TTL", r.ttl("s:getset_ttl"), -1)

    r.set("s:getdel", "v")
    check("GETDEL", r.getdel("s:getdel"), "v")
    check("GETDEL removed key", r.exists("s:getdel"), 0)
    check("GETDEL missing", r.getdel("s:getdel"), None)

    r.set("s:getex", "v")
    check("GETEX no options", r.getex("s:getex"), "v")
    check("GETEX no options keeps no TTL", r.ttl("s:getex"), -1)
    check("GETEX EX", r.getex("s:getex", ex=100), "v")
    check_range("GETEX EX TTL", r.ttl("s:getex"), 90, 100)
    check("GETEX PX", r.getex("s:getex", px=200000), "v")
    check_range("GETEX PX PTTL", r.pttl("s:getex"), 190000, 200000)
    check("GETEX EXAT", r.getex("s:getex", exat=now + 300), "v")
    check("GETEX EXAT expiretime", r.expiretime("s:getex"), now + 300)
    check("GETEX PXAT", r.getex("s:getex", pxat=(now + 400) * 1000), "v")
    check("GETEX PXAT pexpiretime", r.pexpiretime("s:getex"), (now + 400) * 1000)
    check("GETEX PERSIST", r.getex("s:getex", persist=True), "v")
    check("GETEX PERSIST TTL", r.ttl("s:getex"), -1)
    check("GETEX missing", r.getex("s:missing", ex=10), None)
    expect_error("GETEX EX 0", lambda: r.getex("s:getex", ex=0),
                 "ERR invalid expire time in 'getex' command")

    # --- MGET / MSET / MSETNX ---------------------------------------------
    check("MSET", r.mset({"s:m1": "1", "s:m2": "2"}), True)
    check("MGET", r.mget("s:m1", "s:missing", "s:m2"), ["1", None, "2"])
    expect_error("MSET odd args", lambda: r.execute_command("MSET", "s:m1", "1", "s:m2"),
                 "ERR wrong number of arguments for 'mset' command")
    check("MSETNX all new", r.msetnx({"s:nx1": "a", "s:nx2": "b"}), True)
    check("MSETNX one exists", r.msetnx({"s:nx2": "x", "s:nx3": "c"}), False)
    check("MSETNX is all-or-nothing", r.mget("s:nx1", "s:nx2", "s:nx3"), ["a", "b", None])

    # --- APPEND / STRLEN / GETRANGE / SUBSTR / SETRANGE -------------------
    check("APPEND missing", r.append("s:app", "Hello"), 5)
    check("APPEND existing", r.append("s:app", " World"), 11)
    check("APPEND result", r.get("s:app"), "Hello World")
    check("STRLEN", r.strlen("s:app"), 11)
    check("STRLEN missing", r.strlen("s:missing"), 0)
    check("GETRANGE 0 4", r.getrange("s:app", 0, 4), "Hello")
    check("GETRANGE -5 -1", r.getrange("s:app", -5, -1), "World")
    check("GETRANGE 0 -1", r.getrange("s:app", 0, -1), "Hello World")
    check("GETRANGE end past length", r.getrange("s:app", 6, 100), "World")
    check("GETRANGE start > end", r.getrange("s:app", 5, 3), "")
    check("GETRANGE missing", r.getrange("s:missing", 0, 10), "")
    check("SUBSTR", r.execute_command("SUBSTR", "s:app", 0, 4), "Hello")
    check("SETRANGE", r.setrange("s:app", 6, "Redis"), 11)
    check("SETRANGE result", r.get("s:app"), "Hello Redis")
    check("SETRANGE pads with zero bytes", r.setrange("s:sr", 3, "x"), 4)
    check("SETRANGE padded value", rb.get("s:sr"), b"\x00\x00\x00x")
    check("SETRANGE empty on missing creates nothing", r.setrange("s:sr_none", 5, ""), 0)
    check("SETRANGE empty on missing exists", r.exists("s:sr_none"), 0)
    expect_error("SETRANGE negative offset", lambda: r.setrange("s:sr", -1, "x"),
                 "ERR offset is out of range")

    # --- INCR family ------------------------------------------------------
    check("INCR missing", r.incr("s:n"), 1)
    check("INCR", r.incr("s:n"), 2)
    check("INCRBY", r.incrby("s:n", 10), 12)
    check("INCRBY negative", r.incrby("s:n", -20), -8)
    check("DECR", r.decr("s:n"), -9)
    check("DECRBY", r.decrby("s:n", 11), -20)
    check("INCR result is a string", r.get("s:n"), "-20")
    r.set("s:n2", " 1")
    expect_error("INCR on leading space", lambda: r.incr("s:n2"), NOT_INT)
    r.set("s:nan", "abc")
    expect_error("INCR non-integer", lambda: r.incr("s:nan"), NOT_INT)
    expect_error("DECRBY non-integer arg", lambda: r.execute_command("DECRBY", "s:n", "x"), NOT_INT)
    r.set("s:max", "9223372036854775807")
    expect_error("INCR overflow", lambda: r.incr("s:max"),
                 "ERR increment or decrement would overflow")
    check("INCR overflow leaves value", r.get("s:max"), "9223372036854775807")
    r.set("s:f", "10.50")
    check("INCRBYFLOAT", r.incrbyfloat("s:f", 0.1), 10.6)
    check("INCRBYFLOAT stored", r.get("s:f"), "10.6")
    check("INCRBYFLOAT negative", r.incrbyfloat("s:f", -5), 5.6)
    r.set("s:f2", "5.0e3")
    check("INCRBYFLOAT exponent", r.incrbyfloat("s:f2", "2.0e2"), 5200.0)
    check("INCRBYFLOAT exponent stored", r.get("s:f2"), "5200")
    check("INCRBYFLOAT missing", r.incrbyfloat("s:f3", 3), 3.0)
    expect_error("INCRBYFLOAT non-float", lambda: r.incrbyfloat("s:nan", 1.0),
                 "ERR value is not a valid float")

    # --- wrong type -------------------------------------------------------
    r.rpush("s:list", "a")
    expect_error("GET on list", lambda: r.get("s:list"), WRONGTYPE)
    expect_error("INCR on list", lambda: r.incr("s:list"), WRONGTYPE)
    expect_error("APPEND on list", lambda: r.append("s:list", "x"), WRONGTYPE)
    expect_error("SET GET on list", lambda: r.set("s:list", "x", get=True), WRONGTYPE)
    check("MGET on list gives nil", r.mget("s:list", "s:m1"), [None, "1"])
    check("SET overwrites list", r.set("s:list", "now a string"), True)
    check("TYPE after overwrite", r.type("s:list"), "string")


def keyspace(r, r1, port, protocol):
    # --- DEL / UNLINK / EXISTS / TOUCH / TYPE -----------------------------
    r.mset({"k:a": "1", "k:b": "2", "k:c": "3"})
    check("EXISTS counts duplicates", r.exists("k:a", "k:a", "k:b", "k:missing"), 3)
    check("TOUCH", r.touch("k:a", "k:b", "k:missing"), 2)
    check("DEL", r.delete("k:a", "k:missing"), 1)
    check("UNLINK", r.unlink("k:b", "k:c", "k:missing"), 2)
    check("EXISTS after DEL/UNLINK", r.exists("k:a", "k:b", "k:c"), 0)
    r.set("k:str", "v")
    r.rpush("k:list", "x")
    check("TYPE string", r.type("k:str"), "string")
    check("TYPE list", r.type("k:list"), "list")
    check("TYPE none", r.type("k:missing"), "none")

    # --- KEYS / SCAN / RANDOMKEY ------------------------------------------
    r.mset({"kp:one": 1, "kp:two": 2, "kp:three": 3, "kp:a1": 1, "kp:b1": 1, "kp:c1": 1})
    check("KEYS *", sorted(r.keys("kp:*")),
          ["kp:a1", "kp:b1", "kp:c1", "kp:one", "kp:three", "kp:two"])
    check("KEYS ?", sorted(r.keys("kp:t??")), ["kp:two"])
    check("KEYS [ab]", sorted(r.keys("kp:[ab]1")), ["kp:a1", "kp:b1"])
    check("KEYS [^a]", sorted(r.keys("kp:[^a]1")), ["kp:b1", "kp:c1"])
    check("KEYS no match", r.keys("kp:zzz*"), [])
    expected = {f"sc:{i}" for i in range(300)}
    r.mset({k: "v" for k in expected})
    found = list(r.scan_iter(match="sc:*", count=10))
    check("SCAN MATCH COUNT finds every key", set(found), expected)
    check("SCAN returns no duplicates without rehash", len(found), len(expected))
    cursor, batch = r.scan(0, match="sc:*", count=1000)
    check_true("SCAN cursor is an int", isinstance(cursor, int), f"got {cursor!r}")
    check_true("SCAN batch is a list", isinstance(batch, list), f"got {batch!r}")
    all_found = set(r.scan_iter(count=50))
    check_true("SCAN without MATCH covers keyspace",
               expected | {"k:str", "k:list"} <= all_found, "missing keys")
    check("SCAN TYPE list", set(r.scan_iter(match="k:*", _type="list")), {"k:list"})
    expect_error("SCAN bad cursor", lambda: r.execute_command("SCAN", "notanumber"),
                 "ERR invalid cursor")

    check("FLUSHDB", r.flushdb(), True)
    check("RANDOMKEY empty db", r.randomkey(), None)
    r.set("k:only", "v")
    check("RANDOMKEY single key", r.randomkey(), "k:only")

    # --- RENAME / RENAMENX / COPY -----------------------------------------
    r.set("k:src", "v", ex=100)
    check("RENAME", r.rename("k:src", "k:dst"), True)
    check("RENAME moved value", r.get("k:dst"), "v")
    check("RENAME source gone", r.exists("k:src"), 0)
    check_range("RENAME keeps TTL", r.ttl("k:dst"), 90, 100)
    r.set("k:other", "o")
    check("RENAME overwrites", r.rename("k:other", "k:dst"), True)
    check("RENAME overwrite drops old TTL", r.ttl("k:dst"), -1)
    check("RENAME same key", r.rename("k:dst", "k:dst"), True)
    expect_error("RENAME missing", lambda: r.rename("k:missing", "k:x"), "ERR no such key")
    r.set("k:rn1", "1")
    r.set("k:rn2", "2")
    check("RENAMENX existing dest", r.renamenx("k:rn1", "k:rn2"), False)
    check("RENAMENX kept dest", r.get("k:rn2"), "2")
    check("RENAMENX new dest", r.renamenx("k:rn1", "k:rn3"), True)
    check("RENAMENX moved", r.mget("k:rn1", "k:rn3"), [None, "1"])
    expect_error("RENAMENX missing", lambda: r.renamenx("k:missing", "k:x"), "ERR no such key")

    r.set("k:cp", "orig", ex=100)
    check("COPY", r.copy("k:cp", "k:cp2"), True)
    check("COPY value", r.get("k:cp2"), "orig")
    check_range("COPY keeps TTL", r.ttl("k:cp2"), 90, 100)
    r.set("k:cp", "changed")
    check("COPY is independent", r.get("k:cp2"), "orig")
    check("COPY existing dest", r.copy("k:cp", "k:cp2"), False)
    check("COPY REPLACE", r.copy("k:cp", "k:cp2", replace=True), True)
    check("COPY REPLACE value", r.get("k:cp2"), "changed")
    check("COPY missing source", r.copy("k:missing", "k:cp3"), False)
    check("COPY DB 1", r.copy("k:cp", "k:cpdb", destination_db=1), True)
    check("COPY DB 1 value in db 1", r1.get("k:cpdb"), "changed")
    check("COPY DB 1 not in db 0", r.exists("k:cpdb"), 0)
    expect_error("COPY same key", lambda: r.copy("k:cp", "k:cp"),
                 "ERR source and destination objects are the same")

    # --- EXPIRE family ----------------------------------------------------
    r.set("k:e", "v")
    check("EXPIRE XX without TTL", r.expire("k:e", 100, xx=True), False)
    check("EXPIRE GT without TTL", r.expire("k:e", 100, gt=True), False)
    check("EXPIRE NX without TTL", r.expire("k:e", 100, nx=True), True)
    check("EXPIRE NX with TTL", r.expire("k:e", 200, nx=True), False)
    check("EXPIRE XX with TTL", r.expire("k:e", 200, xx=True), True)
    check_range("TTL after EXPIRE XX", r.ttl("k:e"), 190, 200)
    check("EXPIRE GT smaller", r.expire("k:e", 100, gt=True), False)
    check("EXPIRE GT larger", r.expire("k:e", 300, gt=True), True)
    check("EXPIRE LT larger", r.expire("k:e", 400, lt=True), False)
    check("EXPIRE LT smaller", r.expire("k:e", 150, lt=True), True)
    check_range("TTL after EXPIRE LT", r.ttl("k:e"), 140, 150)
    r.set("k:e2", "v")
    check("EXPIRE LT without TTL", r.expire("k:e2", 100, lt=True), True)
    check("EXPIRE missing", r.expire("k:missing", 100), False)
    expect_error("EXPIRE NX XX", lambda: r.execute_command("EXPIRE", "k:e", 10, "NX", "XX"),
                 "ERR NX and XX, GT or LT options at the same time are not compatible")
    expect_error("EXPIRE GT LT", lambda: r.execute_command("EXPIRE", "k:e", 10, "GT", "LT"),
                 "ERR GT and LT options at the same time are not compatible")
    expect_error("EXPIRE bad option", lambda: r.execute_command("EXPIRE", "k:e", 10, "BOGUS"),
                 "ERR Unsupported option BOGUS")
    expect_error("EXPIRE non-integer", lambda: r.execute_command("EXPIRE", "k:e", "ten"), NOT_INT)

    r.set("k:pe", "v")
    check("PEXPIRE", r.pexpire("k:pe", 100000), True)
    check_range("PTTL after PEXPIRE", r.pttl("k:pe"), 90000, 100000)
    check_range("TTL after PEXPIRE", r.ttl("k:pe"), 90, 100)
    check("PEXPIRE NX with TTL", r.pexpire("k:pe", 5000, nx=True), False)
    check("PEXPIRE LT", r.pexpire("k:pe", 50000, lt=True), True)
    check_range("PTTL after PEXPIRE LT", r.pttl("k:pe"), 40000, 50000)

    now = int(time.time())
    r.set("k:ea", "v")
    check("EXPIREAT", r.expireat("k:ea", now + 1000), True)
    check("EXPIRETIME", r.expiretime("k:ea"), now + 1000)
    check("PEXPIRETIME after EXPIREAT", r.pexpiretime("k:ea"), (now + 1000) * 1000)
    check("EXPIREAT GT smaller", r.expireat("k:ea", now + 500, gt=True), False)
    check("EXPIREAT XX", r.expireat("k:ea", now + 2000, xx=True), True)
    check("EXPIRETIME after XX", r.expiretime("k:ea"), now + 2000)
    check("PEXPIREAT", r.pexpireat("k:ea", (now + 3000) * 1000 + 123), True)
    check("PEXPIRETIME", r.pexpiretime("k:ea"), (now + 3000) * 1000 + 123)
    check("EXPIRETIME rounds down", r.expiretime("k:ea"), now + 3000)
    check("PEXPIREAT NX with TTL", r.pexpireat("k:ea", (now + 10) * 1000, nx=True), False)
    r.set("k:str", "v")
    check("EXPIRETIME no TTL", r.expiretime("k:str"), -1)
    check("EXPIRETIME missing", r.expiretime("k:missing"), -2)
    check("PEXPIRETIME no TTL", r.pexpiretime("k:str"), -1)
    check("PEXPIRETIME missing", r.pexpiretime("k:missing"), -2)
    check("TTL no TTL", r.ttl("k:str"), -1)
    check("TTL missing", r.ttl("k:missing"), -2)
    check("PTTL no TTL", r.pttl("k:str"), -1)
    check("PTTL missing", r.pttl("k:missing"), -2)

    check("PERSIST volatile", r.persist("k:ea"), True)
    check("PERSIST cleared TTL", r.ttl("k:ea"), -1)
    check("PERSIST non-volatile", r.persist("k:ea"), False)
    check("PERSIST missing", r.persist("k:missing"), False)

    # A TTL in the past deletes the key right away.
    r.set("k:past", "v")
    check("EXPIRE negative", r.expire("k:past", -1), True)
    check("EXPIRE negative deletes", r.exists("k:past"), 0)
    r.set("k:past2", "v")
    check("EXPIREAT in the past", r.expireat("k:past2", now - 100), True)
    check("EXPIREAT in the past deletes", r.get("k:past2"), None)

    # Keys really expire (lazily on access, or actively).
    r.set("k:short", "v", px=50)
    poll_until("key with PX 50 expires", lambda: r.get("k:short") is None)
    check("expired key not counted by EXISTS", r.exists("k:short"), 0)
    r.set("k:short2", "v", px=50)
    poll_until("expired key leaves DBSIZE", lambda: r.exists("k:short2") == 0)

    # --- DBSIZE / FLUSHDB / FLUSHALL / SELECT / SWAPDB / MOVE -------------
    check("FLUSHALL", r.flushall(), True)
    check("DBSIZE empty", r.dbsize(), 0)
    r.mset({"d:1": 1, "d:2": 2, "d:3": 3})
    check("DBSIZE", r.dbsize(), 3)
    check("SELECT 1 client: set", r1.set("d:1", "db1"), True)
    check("db 1 is separate", r1.get("d:1"), "db1")
    check("db 0 unaffected", r.get("d:1"), "1")
    check("DBSIZE db 1", r1.dbsize(), 1)
    expect_error("SELECT out of range", lambda: r.execute_command("SELECT", 100000),
                 "ERR DB index is out of range")
    expect_error("SELECT non-integer", lambda: r.execute_command("SELECT", "x"), NOT_INT)

    check("SWAPDB", r.swapdb(0, 1), True)
    check("SWAPDB db 0 now has db 1 data", r.get("d:1"), "db1")
    check("SWAPDB db 0 size", r.dbsize(), 1)
    check("SWAPDB db 1 now has db 0 data", r1.get("d:2"), "2")
    check("SWAPDB back", r.swapdb(1, 0), True)
    check("SWAPDB back db 0", r.get("d:1"), "1")
    expect_error("SWAPDB out of range", lambda: r.swapdb(0, 100000),
                 "ERR DB index is out of range")

    check("MOVE", r.move("d:2", 1), True)
    check("MOVE removed from db 0", r.exists("d:2"), 0)
    check("MOVE arrived in db 1", r1.get("d:2"), "2")
    check("MOVE existing in dest", r.move("d:1", 1), False)
    check("MOVE existing keeps source", r.get("d:1"), "1")
    check("MOVE missing", r.move("d:missing", 1), False)
    expect_error("MOVE same db", lambda: r.move("d:1", 0),
                 "ERR source and destination objects are the same")

    check("FLUSHDB only current db", r.flushdb(), True)
    check("FLUSHDB emptied db 0", r.dbsize(), 0)
    check("FLUSHDB kept db 1", r1.dbsize(), 2)
    check("FLUSHALL empties every db", r.flushall(), True)
    check("FLUSHALL emptied db 1", r1.dbsize(), 0)


def connection(r, port, protocol):
    check("PING", r.ping(), True)
    # redis-py turns every PING reply into a bool; read the raw reply instead.
    r.connection.send_command("PING", "hi")
    check("PING message", r.connection.read_response(), "hi")
    check("ECHO", r.echo("hello"), "hello")
    cid = r.client_id()
    check_true("CLIENT ID is a positive int", isinstance(cid, int) and cid > 0, f"got {cid!r}")
    check("CLIENT ID stable on one connection", r.client_id(), cid)
    check("CLIENT GETNAME unset", r.client_getname(), None)
    check("CLIENT SETNAME", r.client_setname("compat-py"), True)
    check("CLIENT GETNAME", r.client_getname(), "compat-py")
    expect_error("CLIENT SETNAME with space", lambda: r.client_setname("has space"),
                 "ERR Client names cannot contain spaces, newlines or special characters.")
    clients = r.client_list()
    mine = [c for c in clients if c.get("id") == str(cid)]
    check("CLIENT LIST has this connection", len(mine), 1)
    check("CLIENT LIST name", mine[0].get("name"), "compat-py")
    check_true("CLIENT LIST addr", mine[0].get("addr", "").startswith("127.0.0.1:"),
               f"got {mine[0]!r}")
    check("CLIENT LIST db", mine[0].get("db"), "0")
    if protocol == 3:
        check("CLIENT LIST resp", mine[0].get("resp"), "3")

    info = r.info()
    check_true("INFO has redis_version", "redis_version" in info, f"keys: {sorted(info)[:20]}")
    server = r.info("server")
    check("INFO server tcp_port", server.get("tcp_port"), port)
    check_true("INFO server has no clients section", "connected_clients" not in server,
               "INFO server returned other sections")
    r.set("i:k", "v")
    ks = r.info("keyspace")
    check("INFO keyspace db0 keys", ks.get("db0", {}).get("keys"), 1)

    check("CONFIG SET maxmemory", r.config_set("maxmemory", "100mb"), True)
    check("CONFIG GET maxmemory", r.config_get("maxmemory"), {"maxmemory": "104857600"})
    check("CONFIG SET maxmemory back", r.config_set("maxmemory", "0"), True)
    check("CONFIG GET maxmemory reset", r.config_get("maxmemory"), {"maxmemory": "0"})
    check("CONFIG GET unknown", r.config_get("no-such-parameter"), {})
    expect_error("CONFIG SET unknown",
                 lambda: r.config_set("no-such-parameter", "1"),
                 "ERR Unknown option or number of arguments for CONFIG SET - 'no-such-parameter'")

    secs, usecs = r.time()
    check_true("TIME types", isinstance(secs, int) and isinstance(usecs, int),
               f"got {(secs, usecs)!r}")
    check_true("TIME microseconds in range", 0 <= usecs < 1_000_000, f"got {usecs}")
    # A sanity bound on the server clock, not a timing threshold.
    check_true("TIME near local clock", abs(secs - time.time()) < 300, f"got {secs}")

    expect_error("unknown command",
                 lambda: r.execute_command("NOSUCHCMD", "a", "b"),
                 "ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' ")
    expect_error("wrong arity",
                 lambda: r.execute_command("GET"),
                 "ERR wrong number of arguments for 'get' command")
    if protocol == 3:
        hello = r.execute_command("HELLO", 3)
        check("HELLO 3 proto", hello.get("proto"), 3)


def pipeline(r):
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"p:{i}", i)
    for i in range(500):
        pipe.incr(f"p:{i}")
    results = pipe.execute()
    check("pipeline of 1000 commands: reply count", len(results), 1000)
    check("pipeline SET replies", results[:500], [True] * 500)
    check("pipeline INCR replies", results[500:], list(range(1, 501)))
    check("pipeline effects", r.mget([f"p:{i}" for i in (0, 250, 499)]), ["1", "251", "500"])

    # An error in the middle does not stop the commands after it.
    pipe = r.pipeline(transaction=False)
    pipe.set("p:str", "abc")
    pipe.incr("p:str")
    pipe.get("p:str")
    res = pipe.execute(raise_on_error=False)
    check("pipeline error: SET", res[0], True)
    check_true("pipeline error: INCR raised", isinstance(res[1], redis.ResponseError),
               f"got {res[1]!r}")
    check("pipeline error: GET after error", res[2], "abc")


def transactions(r, r2):
    """r2 is a second connection, used to write keys that r watches."""
    # pipeline() is a MULTI/EXEC transaction unless told otherwise.
    pipe = r.pipeline()
    pipe.set("t:a", "1")
    pipe.incr("t:a")
    pipe.get("t:a")
    pipe.get("t:missing")
    pipe.mset({"t:m1": "x", "t:m2": "y"})
    pipe.mget(["t:m1", "t:m2", "t:missing"])
    check("transaction pipeline results", pipe.execute(),
          [True, 2, "2", None, True, ["x", "y", None]])
    check("empty transaction pipeline", r.pipeline().execute(), [])

    # A runtime error is returned in place; the other commands still run.
    r.set("t:str", "abc")
    pipe = r.pipeline()
    pipe.incr("t:str")
    pipe.set("t:after", "ran")
    pipe.get("t:str")
    res = pipe.execute(raise_on_error=False)
    check_true("transaction runtime error in place",
               isinstance(res[0], redis.ResponseError) and _full_error(res[0]) == NOT_INT,
               f"got {res[0]!r}")
    check("transaction commands after a runtime error", res[1:], [True, "abc"])
    check("transaction runtime error: later command applied", r.get("t:after"), "ran")

    # A queuing error (unknown command) aborts the whole transaction;
    # redis-py re-raises the queuing error it saw.
    pipe = r.pipeline()
    pipe.set("t:aborted", "1")
    pipe.execute_command("NOSUCHCMD", "x")
    try:
        got = pipe.execute()
        fail("transaction with an unknown command", f"expected an error, got {got!r}")
    except redis.ResponseError as exc:
        check_true("transaction with an unknown command raises it",
                   "unknown command 'NOSUCHCMD'" in str(exc), f"got {exc!r}")
    check("EXECABORT ran nothing", r.exists("t:aborted"), 0)

    # Redis.transaction(): WATCH, read, MULTI, write, EXEC, retried on
    # conflict. Sequential increments give an exact count.
    def incr_counter(p):
        cur = int(p.get("t:counter") or 0)
        p.multi()
        p.set("t:counter", cur + 1)

    for _ in range(20):
        check("transaction() result", r.transaction(incr_counter, "t:counter"), [True])
    check("transaction() counter", r.get("t:counter"), "20")

    # A write by another client after WATCH forces exactly one retry, and
    # the retry sees that write.
    attempts = []

    def incr_with_conflict(p):
        cur = int(p.get("t:counter") or 0)
        attempts.append(cur)
        if len(attempts) == 1:
            r2.incrby("t:counter", 100)
        p.multi()
        p.set("t:counter", cur + 1)

    check("transaction() after a conflict", r.transaction(incr_with_conflict, "t:counter"),
          [True])
    check("transaction() retried once", attempts, [20, 120])
    check("transaction() counter after retry", r.get("t:counter"), "121")

    # pipe.watch/multi/execute by hand: a conflicting write makes EXEC
    # return nil, which redis-py raises as WatchError.
    r.set("t:w", "start")
    with r.pipeline() as pipe:
        pipe.watch("t:w")
        check("watching pipeline reads immediately", pipe.get("t:w"), "start")
        r2.set("t:w", "theirs")
        pipe.multi()
        pipe.set("t:w", "mine")
        try:
            got = pipe.execute()
            fail("WATCH conflict", f"expected WatchError, got {got!r}")
        except redis.WatchError:
            check_true("WATCH conflict raises WatchError", True)
    check("WATCH conflict: queued write not applied", r.get("t:w"), "theirs")

    # Watching several keys: a write to any of them conflicts.
    with r.pipeline() as pipe:
        pipe.watch("t:w", "t:w2", "t:w3")
        r2.set("t:w3", "x")
        pipe.multi()
        pipe.set("t:w", "mine")
        try:
            got = pipe.execute()
            fail("WATCH of several keys", f"expected WatchError, got {got!r}")
        except redis.WatchError:
            check_true("WATCH of several keys raises WatchError", True)

    # No conflict: the transaction runs. A key that does not exist and
    # stays absent is no conflict either.
    with r.pipeline() as pipe:
        pipe.watch("t:w", "t:never")
        r2.get("t:w")
        pipe.multi()
        pipe.set("t:w", "mine")
        pipe.get("t:w")
        check("WATCH without conflict", pipe.execute(), [True, "mine"])

    # UNWATCH cancels the watch.
    with r.pipeline() as pipe:
        pipe.watch("t:w")
        r2.set("t:w", "theirs again")
        pipe.unwatch()
        pipe.multi()
        pipe.set("t:w", "mine again")
        check("UNWATCH avoids the conflict", pipe.execute(), [True])
    check("UNWATCH: write applied", r.get("t:w"), "mine again")

    # The same client writing its watched key before MULTI also conflicts.
    with r.pipeline() as pipe:
        pipe.watch("t:w")
        pipe.set("t:w", "early")
        pipe.multi()
        pipe.set("t:w", "late")
        try:
            got = pipe.execute()
            fail("WATCH own write", f"expected WatchError, got {got!r}")
        except redis.WatchError:
            check_true("own write after WATCH raises WatchError", True)
    check("own write after WATCH: queued write not applied", r.get("t:w"), "early")

    # Raw commands on one connection: the exact error strings.
    check("MULTI", r.execute_command("MULTI"), "OK")
    expect_error("nested MULTI", lambda: r.execute_command("MULTI"),
                 "ERR MULTI calls can not be nested")
    expect_error("WATCH inside MULTI", lambda: r.execute_command("WATCH", "t:w"),
                 "ERR WATCH inside MULTI is not allowed")
    check("DISCARD", r.execute_command("DISCARD"), "OK")
    expect_error("EXEC without MULTI", lambda: r.execute_command("EXEC"),
                 "ERR EXEC without MULTI")
    expect_error("DISCARD without MULTI", lambda: r.execute_command("DISCARD"),
                 "ERR DISCARD without MULTI")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--protocol", type=int, choices=(2, 3), default=2)
    args = ap.parse_args()

    def client(db=0, decode=True):
        return redis.Redis(host=args.host, port=args.port, db=db, protocol=args.protocol,
                           decode_responses=decode, socket_timeout=30,
                           single_connection_client=True)

    r = client()
    rb = client(decode=False)
    r1 = client(db=1)
    try:
        r.flushall()
        strings(r, rb)
        r.flushall()
        keyspace(r, r1, args.port, args.protocol)
        r.flushall()
        connection(r, args.port, args.protocol)
        r.flushall()
        pipeline(r)
        r.flushall()
        transactions(r, client())
        r.flushall()
    except CheckFailed as exc:
        print(f"compat.py (protocol {args.protocol}): {exc}", file=sys.stderr)
        print(f"compat.py: {CHECKS} checks passed before the failure", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - any surprise is a failed check
        traceback.print_exc()
        print(f"compat.py (protocol {args.protocol}): unexpected {type(exc).__name__}: {exc} "
              f"(after {CHECKS} checks; last passed: {LAST!r})", file=sys.stderr)
        sys.exit(1)
    print(f"compat.py: {CHECKS} checks passed (protocol {args.protocol})")


if __name__ == "__main__":
    main()
