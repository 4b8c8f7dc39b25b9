//! String commands, checked against Redis 7 behaviour: reply types, exact
//! error strings, TTL side effects and binary safety.
//!
//! Every expectation here was confirmed against redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server`.

mod common;
use common::*;

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Connection, Value};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const SYNTAX: &str = "ERR syntax error";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const OVERFLOW: &str = "ERR increment or decrement would overflow";
const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
const OFFSET_RANGE: &str = "ERR offset is out of range";

fn arity(cmd: &str) -> String {
    format!("ERR wrong number of arguments for '{cmd}' command")
}

fn invalid_expire(cmd: &str) -> String {
    format!("ERR invalid expire time in '{cmd}' command")
}

fn run_bin(con: &mut Connection, args: &[&[u8]]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).expect("command name is UTF-8"));
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query::<Value>(con)
}

/// Runs a command with binary arguments and returns its reply; a server
/// error fails the test.
fn qb(con: &mut Connection, args: &[&[u8]]) -> Value {
    match run_bin(con, args) {
        Ok(Value::ServerError(e)) => panic!("{} failed: {e}", show(args)),
        Ok(v) => v,
        Err(e) => panic!("{} failed: {e}", show(args)),
    }
}

fn q(con: &mut Connection, args: &[&str]) -> Value {
    qb(con, &as_bytes(args))
}

/// Runs a command that must fail and returns the server's full error line
/// (code and message, exactly as Redis sends it after the `-`).
///
/// The redis crate splits an error line at the first space into a code and
/// a detail; joining them back gives the original text, which lets tests
/// compare against the literal Redis message.
fn err(con: &mut Connection, args: &[&str]) -> String {
    let args = as_bytes(args);
    match run_bin(con, &args) {
        Ok(Value::ServerError(e)) => match e.details() {
            Some(d) => format!("{} {d}", e.code()),
            None => e.code().to_string(),
        },
        Ok(v) => panic!("{} should fail, got {v:?}", show(&args)),
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_string(),
            _ => panic!("{} failed without a server error: {e}", show(&args)),
        },
    }
}

fn as_bytes<'a>(args: &[&'a str]) -> Vec<&'a [u8]> {
    args.iter().map(|a| a.as_bytes()).collect()
}

fn show(args: &[&[u8]]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    format!("{parts:?}")
}

fn bulk(s: impl AsRef<[u8]>) -> Value {
    Value::BulkString(s.as_ref().to_vec())
}

fn int(n: i64) -> Value {
    Value::Int(n)
}

fn ttl(con: &mut Connection, key: &str) -> i64 {
    match q(con, &["TTL", key]) {
        Value::Int(n) => n,
        v => panic!("TTL {key} gave {v:?}"),
    }
}

fn pttl(con: &mut Connection, key: &str) -> i64 {
    match q(con, &["PTTL", key]) {
        Value::Int(n) => n,
        v => panic!("PTTL {key} gave {v:?}"),
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Creates a non-string key. Uses RPUSH because lists are the simplest
/// non-string type.
fn make_list(con: &mut Connection, key: &str) {
    assert_eq!(q(con, &["RPUSH", key, "item"]), int(1));
}

/// Polls GET until the key is gone; fails after a generous deadline so a
/// slow machine never causes a false failure.
fn wait_until_gone(con: &mut Connection, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if q(con, &["GET", key]) == Value::Nil {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} still readable 20 s after it should have expired"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------- GET / SET

#[test]
fn get_missing_key_is_nil_and_set_overwrites() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["GET", "gs:k"]), Value::Nil);
    assert_eq!(q(&mut c, &["SET", "gs:k", "v1"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "gs:k"]), bulk("v1"));
    assert_eq!(q(&mut c, &["SET", "gs:k", "v2"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "gs:k"]), bulk("v2"));
    // Numbers are stored as strings and read back verbatim.
    assert_eq!(q(&mut c, &["SET", "gs:n", "0042"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "gs:n"]), bulk("0042"));
}

#[test]
fn set_ex_and_px_set_relative_expiry() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "ex:k", "v", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "ex:k"]), bulk("v"));
    let t = ttl(&mut c, "ex:k");
    assert!((900..=1000).contains(&t), "TTL after EX 1000 was {t}");
    // EX is in seconds: the millisecond TTL must be about a thousand times larger.
    let pt = pttl(&mut c, "ex:k");
    assert!(
        (900_000..=1_000_000).contains(&pt),
        "PTTL after EX 1000 was {pt}"
    );

    assert_eq!(
        q(&mut c, &["SET", "px:k", "v", "PX", "1000000"]),
        Value::Okay
    );
    let pt = pttl(&mut c, "px:k");
    assert!(
        (900_000..=1_000_000).contains(&pt),
        "PTTL after PX 1000000 was {pt}"
    );
    let t = ttl(&mut c, "px:k");
    assert!((900..=1000).contains(&t), "TTL after PX 1000000 was {t}");
}

#[test]
fn set_exat_and_pxat_set_absolute_expiry() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let at = (unix_secs() + 1000).to_string();
    assert_eq!(q(&mut c, &["SET", "exat:k", "v", "EXAT", &at]), Value::Okay);
    let t = ttl(&mut c, "exat:k");
    assert!((900..=1000).contains(&t), "TTL after EXAT now+1000 was {t}");

    let at_ms = ((unix_secs() + 1000) * 1000).to_string();
    assert_eq!(
        q(&mut c, &["SET", "pxat:k", "v", "PXAT", &at_ms]),
        Value::Okay
    );
    let t = ttl(&mut c, "pxat:k");
    assert!(
        (900..=1000).contains(&t),
        "TTL after PXAT now+1000s was {t}"
    );
    assert_eq!(q(&mut c, &["GET", "pxat:k"]), bulk("v"));
}

#[test]
fn set_with_absolute_expiry_in_the_past_deletes_the_key() {
    let srv = TestServer::start();
    let mut c = srv.client();
    // The command succeeds, but the key is already expired.
    assert_eq!(
        q(&mut c, &["SET", "past:new", "v", "EXAT", "1"]),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["GET", "past:new"]), Value::Nil);

    assert_eq!(q(&mut c, &["SET", "past:old", "old"]), Value::Okay);
    assert_eq!(
        q(&mut c, &["SET", "past:old", "v", "PXAT", "1"]),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["GET", "past:old"]), Value::Nil);

    // With GET, the old value is still returned before the key vanishes.
    assert_eq!(q(&mut c, &["SET", "past:get", "old"]), Value::Okay);
    assert_eq!(
        q(&mut c, &["SET", "past:get", "v", "EXAT", "1", "GET"]),
        bulk("old")
    );
    assert_eq!(q(&mut c, &["GET", "past:get"]), Value::Nil);
}

#[test]
fn set_nx_only_sets_missing_keys() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "nx:k", "first", "NX"]), Value::Okay);
    assert_eq!(q(&mut c, &["SET", "nx:k", "second", "NX"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "nx:k"]), bulk("first"));
    // A failed NX must not touch the TTL either.
    assert_eq!(
        q(&mut c, &["SET", "nx:k", "third", "NX", "EX", "1000"]),
        Value::Nil
    );
    assert_eq!(ttl(&mut c, "nx:k"), -1);
}

#[test]
fn set_xx_only_sets_existing_keys() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "xx:k", "v", "XX"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "xx:k"]), Value::Nil);
    assert_eq!(q(&mut c, &["SET", "xx:k", "v1"]), Value::Okay);
    assert_eq!(q(&mut c, &["SET", "xx:k", "v2", "XX"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "xx:k"]), bulk("v2"));
}

#[test]
fn set_get_returns_the_previous_value() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "sg:k", "v1", "GET"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "sg:k"]), bulk("v1"));
    assert_eq!(q(&mut c, &["SET", "sg:k", "v2", "GET"]), bulk("v1"));
    assert_eq!(q(&mut c, &["GET", "sg:k"]), bulk("v2"));
    // GET combines with an expiry.
    assert_eq!(
        q(&mut c, &["SET", "sg:k", "v3", "EX", "1000", "GET"]),
        bulk("v2")
    );
    assert!(ttl(&mut c, "sg:k") > 0);
}

#[test]
fn set_nx_get_is_allowed_since_redis_7() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "nxg:k", "1", "NX", "GET"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "nxg:k"]), bulk("1"));
    // The key exists: NX blocks the write, but GET still reports the value.
    assert_eq!(q(&mut c, &["SET", "nxg:k", "2", "NX", "GET"]), bulk("1"));
    assert_eq!(q(&mut c, &["GET", "nxg:k"]), bulk("1"));
}

#[test]
fn set_xx_get_reports_old_value_and_skips_missing_keys() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "xxg:k", "1", "XX", "GET"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "xxg:k"]), Value::Nil);
    assert_eq!(q(&mut c, &["SET", "xxg:k", "1"]), Value::Okay);
    assert_eq!(q(&mut c, &["SET", "xxg:k", "2", "XX", "GET"]), bulk("1"));
    assert_eq!(q(&mut c, &["GET", "xxg:k"]), bulk("2"));
}

#[test]
fn set_clears_ttl_unless_keepttl() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "kt:k", "v", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["SET", "kt:k", "v2", "KEEPTTL"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "kt:k"]), bulk("v2"));
    let t = ttl(&mut c, "kt:k");
    assert!((900..=1000).contains(&t), "KEEPTTL lost the TTL: {t}");

    assert_eq!(
        q(&mut c, &["SET", "kt:k", "v3", "KEEPTTL", "GET"]),
        bulk("v2")
    );
    assert!(ttl(&mut c, "kt:k") > 0);

    assert_eq!(q(&mut c, &["SET", "kt:k", "v4"]), Value::Okay);
    assert_eq!(ttl(&mut c, "kt:k"), -1);

    assert_eq!(q(&mut c, &["SET", "kt:k", "v5", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["SET", "kt:k", "v6", "GET"]), bulk("v5"));
    assert_eq!(ttl(&mut c, "kt:k"), -1);

    // KEEPTTL on a key without a TTL (or a new key) leaves it persistent.
    assert_eq!(q(&mut c, &["SET", "kt:new", "v", "KEEPTTL"]), Value::Okay);
    assert_eq!(ttl(&mut c, "kt:new"), -1);
}

#[test]
fn set_options_are_case_insensitive_and_may_repeat() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(
        q(&mut c, &["set", "opt:k", "v", "Ex", "1000", "nX"]),
        Value::Okay
    );
    assert!(ttl(&mut c, "opt:k") > 0);
    // A repeated option of the same kind is not a conflict; the last wins.
    assert_eq!(
        q(&mut c, &["SET", "opt:k", "v", "EX", "10", "EX", "500"]),
        Value::Okay
    );
    let t = ttl(&mut c, "opt:k");
    assert!(t > 10 && t <= 500, "last EX should win, TTL is {t}");
    assert_eq!(
        q(&mut c, &["SET", "opt:k", "v2", "keepttl", "KEEPTTL"]),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["SET", "opt:k", "v3", "get", "GET"]), bulk("v2"));
    assert_eq!(q(&mut c, &["SET", "opt:k", "v4", "NX", "NX"]), Value::Nil);
}

#[test]
fn set_conflicting_or_unknown_options_are_syntax_errors() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "syn:k", "orig"]), Value::Okay);
    let bad: &[&[&str]] = &[
        &["EX", "10", "PX", "100"],
        &["PX", "100", "EX", "10"],
        &["EX", "10", "EXAT", "9999999999"],
        &["PX", "10", "PXAT", "9999999999999"],
        &["EXAT", "9999999999", "PXAT", "9999999999999"],
        &["NX", "XX"],
        &["XX", "NX"],
        &["KEEPTTL", "EX", "10"],
        &["EX", "10", "KEEPTTL"],
        &["KEEPTTL", "PX", "10"],
        &["KEEPTTL", "EXAT", "9999999999"],
        &["PXAT", "9999999999999", "KEEPTTL"],
        &["FOO"],
        &["EX"],
        &["PX"],
        &["NX", "GET", "XX"],
        &["10"],
    ];
    for opts in bad {
        let mut args = vec!["SET", "syn:k", "new"];
        args.extend_from_slice(opts);
        assert_eq!(err(&mut c, &args), SYNTAX, "SET with {opts:?}");
    }
    assert_eq!(q(&mut c, &["GET", "syn:k"]), bulk("orig"));
    assert_eq!(ttl(&mut c, "syn:k"), -1);
}

#[test]
fn set_rejects_invalid_expire_times() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let bad: &[&[&str]] = &[
        &["EX", "0"],
        &["EX", "-1"],
        &["PX", "0"],
        &["PX", "-5"],
        &["EXAT", "0"],
        &["EXAT", "-1"],
        &["PXAT", "0"],
        // Seconds * 1000 + now would overflow a signed 64-bit millisecond time.
        &["EX", "9223372036854775"],
        &["EX", "9223372036854775807"],
        &["PX", "9223372036854775807"],
        &["EXAT", "9223372036854775807"],
    ];
    for opts in bad {
        let mut args = vec!["SET", "inv:k", "v"];
        args.extend_from_slice(opts);
        assert_eq!(
            err(&mut c, &args),
            invalid_expire("set"),
            "SET with {opts:?}"
        );
    }
    assert_eq!(q(&mut c, &["GET", "inv:k"]), Value::Nil);

    // Large values that do not overflow are accepted.
    assert_eq!(
        q(&mut c, &["SET", "inv:big", "v", "EX", "4611686018427387"]),
        Value::Okay
    );
    assert_eq!(
        q(
            &mut c,
            &["SET", "inv:pxat", "v", "PXAT", "9223372036854775807"]
        ),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["GET", "inv:pxat"]), bulk("v"));
}

#[test]
fn set_rejects_non_integer_expire_times() {
    let srv = TestServer::start();
    let mut c = srv.client();
    for (opt, v) in [
        ("EX", "abc"),
        ("EX", "1.5"),
        ("EX", ""),
        ("EX", "+5"),
        ("EX", " 5"),
        ("EX", "5 "),
        ("EX", "05"),
        ("EX", "-0"),
        ("EX", "1e3"),
        ("EX", "0x10"),
        // One past i64::MAX is out of range rather than an invalid time.
        ("EX", "9223372036854775808"),
        ("PX", "100ms"),
        ("EXAT", "soon"),
        ("PXAT", "1.0"),
    ] {
        assert_eq!(
            err(&mut c, &["SET", "nint:k", "v", opt, v]),
            NOT_INT,
            "SET {opt} {v:?}"
        );
    }
    assert_eq!(q(&mut c, &["GET", "nint:k"]), Value::Nil);
}

#[test]
fn set_on_a_non_string_key() {
    let srv = TestServer::start();
    let mut c = srv.client();
    make_list(&mut c, "swt:l");
    // With GET the old value must be a string, so the write is refused.
    assert_eq!(err(&mut c, &["SET", "swt:l", "v", "GET"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["SET", "swt:l", "v", "NX", "GET"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["SET", "swt:l", "v", "XX", "GET"]), WRONGTYPE);
    // The list survived the refused writes.
    assert_eq!(err(&mut c, &["GET", "swt:l"]), WRONGTYPE);
    assert_eq!(q(&mut c, &["RPUSH", "swt:l", "more"]), int(2));
    // NX sees the list as an existing key.
    assert_eq!(q(&mut c, &["SET", "swt:l", "v", "NX"]), Value::Nil);
    // Plain SET replaces a value of any type.
    assert_eq!(q(&mut c, &["SET", "swt:l", "v"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "swt:l"]), bulk("v"));
}

// ------------------------------------------------------ SETNX / SETEX / PSETEX

#[test]
fn setnx_sets_only_missing_keys() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SETNX", "snx:k", "1"]), int(1));
    assert_eq!(q(&mut c, &["SETNX", "snx:k", "2"]), int(0));
    assert_eq!(q(&mut c, &["GET", "snx:k"]), bulk("1"));
    // Any existing key counts, whatever its type.
    make_list(&mut c, "snx:l");
    assert_eq!(q(&mut c, &["SETNX", "snx:l", "v"]), int(0));
    assert_eq!(err(&mut c, &["GET", "snx:l"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["SETNX", "snx:k"]), arity("setnx"));
    assert_eq!(err(&mut c, &["SETNX", "snx:k", "a", "b"]), arity("setnx"));
}

#[test]
fn setex_sets_value_and_ttl_in_seconds() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SETEX", "sex:k", "1000", "v"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "sex:k"]), bulk("v"));
    let t = ttl(&mut c, "sex:k");
    assert!((900..=1000).contains(&t), "TTL after SETEX 1000 was {t}");
    // SETEX overwrites like SET, whatever the old type.
    make_list(&mut c, "sex:l");
    assert_eq!(q(&mut c, &["SETEX", "sex:l", "1000", "s"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "sex:l"]), bulk("s"));

    for bad in ["0", "-1", "9223372036854775"] {
        assert_eq!(
            err(&mut c, &["SETEX", "sex:bad", bad, "v"]),
            invalid_expire("setex"),
            "SETEX {bad}"
        );
    }
    for bad in ["abc", "1.5", "", "9223372036854775808"] {
        assert_eq!(
            err(&mut c, &["SETEX", "sex:bad", bad, "v"]),
            NOT_INT,
            "SETEX {bad:?}"
        );
    }
    assert_eq!(q(&mut c, &["GET", "sex:bad"]), Value::Nil);
    assert_eq!(err(&mut c, &["SETEX", "sex:k", "10"]), arity("setex"));
    assert_eq!(
        err(&mut c, &["SETEX", "sex:k", "10", "v", "x"]),
        arity("setex")
    );
}

#[test]
fn psetex_sets_value_and_ttl_in_milliseconds() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["PSETEX", "psx:k", "1000000", "v"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "psx:k"]), bulk("v"));
    let pt = pttl(&mut c, "psx:k");
    assert!((900_000..=1_000_000).contains(&pt), "PTTL was {pt}");
    for bad in ["0", "-5", "9223372036854775807"] {
        assert_eq!(
            err(&mut c, &["PSETEX", "psx:bad", bad, "v"]),
            invalid_expire("psetex"),
            "PSETEX {bad}"
        );
    }
    assert_eq!(err(&mut c, &["PSETEX", "psx:bad", "1s", "v"]), NOT_INT);
    assert_eq!(q(&mut c, &["GET", "psx:bad"]), Value::Nil);
    assert_eq!(err(&mut c, &["PSETEX", "psx:k", "10"]), arity("psetex"));
}

// ---------------------------------------------------- GETSET / GETDEL / GETEX

#[test]
fn getset_swaps_value_and_clears_ttl() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["GETSET", "gst:k", "v1"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "gst:k"]), bulk("v1"));
    assert_eq!(
        q(&mut c, &["SET", "gst:k", "v2", "EX", "1000"]),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["GETSET", "gst:k", "v3"]), bulk("v2"));
    assert_eq!(q(&mut c, &["GET", "gst:k"]), bulk("v3"));
    assert_eq!(ttl(&mut c, "gst:k"), -1);

    make_list(&mut c, "gst:l");
    assert_eq!(err(&mut c, &["GETSET", "gst:l", "v"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["GET", "gst:l"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["GETSET", "gst:k"]), arity("getset"));
}

#[test]
fn getdel_returns_value_and_deletes() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "gd:k", "v", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["GETDEL", "gd:k"]), bulk("v"));
    assert_eq!(q(&mut c, &["GET", "gd:k"]), Value::Nil);
    assert_eq!(q(&mut c, &["GETDEL", "gd:k"]), Value::Nil);

    make_list(&mut c, "gd:l");
    assert_eq!(err(&mut c, &["GETDEL", "gd:l"]), WRONGTYPE);
    // The list was not deleted.
    assert_eq!(q(&mut c, &["RPUSH", "gd:l", "x"]), int(2));
    assert_eq!(err(&mut c, &["GETDEL"]), arity("getdel"));
    assert_eq!(err(&mut c, &["GETDEL", "gd:a", "gd:b"]), arity("getdel"));
}

#[test]
fn getex_without_options_is_a_plain_get() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["GETEX", "gex0:k"]), Value::Nil);
    assert_eq!(
        q(&mut c, &["SET", "gex0:k", "v", "EX", "1000"]),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["GETEX", "gex0:k"]), bulk("v"));
    assert!(ttl(&mut c, "gex0:k") > 0, "GETEX alone must keep the TTL");
    assert_eq!(q(&mut c, &["SET", "gex0:p", "v"]), Value::Okay);
    assert_eq!(q(&mut c, &["GETEX", "gex0:p"]), bulk("v"));
    assert_eq!(ttl(&mut c, "gex0:p"), -1);
}

#[test]
fn getex_sets_and_removes_expiry() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "gex:k", "v"]), Value::Okay);

    assert_eq!(q(&mut c, &["GETEX", "gex:k", "EX", "1000"]), bulk("v"));
    let t = ttl(&mut c, "gex:k");
    assert!((900..=1000).contains(&t), "TTL after GETEX EX was {t}");

    assert_eq!(q(&mut c, &["GETEX", "gex:k", "PERSIST"]), bulk("v"));
    assert_eq!(ttl(&mut c, "gex:k"), -1);

    assert_eq!(q(&mut c, &["GETEX", "gex:k", "PX", "1000000"]), bulk("v"));
    let pt = pttl(&mut c, "gex:k");
    assert!(
        (900_000..=1_000_000).contains(&pt),
        "PTTL after GETEX PX was {pt}"
    );

    let at = (unix_secs() + 1000).to_string();
    assert_eq!(q(&mut c, &["GETEX", "gex:k", "EXAT", &at]), bulk("v"));
    let t = ttl(&mut c, "gex:k");
    assert!((900..=1000).contains(&t), "TTL after GETEX EXAT was {t}");

    let at_ms = ((unix_secs() + 2000) * 1000).to_string();
    assert_eq!(q(&mut c, &["GETEX", "gex:k", "PXAT", &at_ms]), bulk("v"));
    let t = ttl(&mut c, "gex:k");
    assert!((1900..=2000).contains(&t), "TTL after GETEX PXAT was {t}");

    // Repeating the same option is allowed; the last one wins.
    assert_eq!(
        q(&mut c, &["getex", "gex:k", "ex", "10", "Ex", "500"]),
        bulk("v")
    );
    let t = ttl(&mut c, "gex:k");
    assert!(t > 10 && t <= 500, "TTL after repeated EX was {t}");

    // An absolute time in the past returns the value and deletes the key.
    assert_eq!(q(&mut c, &["GETEX", "gex:k", "EXAT", "1"]), bulk("v"));
    assert_eq!(q(&mut c, &["GET", "gex:k"]), Value::Nil);

    // A missing key stays missing.
    assert_eq!(q(&mut c, &["GETEX", "gex:none", "EX", "10"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "gex:none"]), Value::Nil);
}

#[test]
fn getex_errors() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "gexe:k", "v"]), Value::Okay);
    for opts in [
        &["EX", "10", "PX", "100"][..],
        &["PERSIST", "EX", "10"],
        &["EX", "10", "PERSIST"],
        &["EXAT", "9999999999", "PXAT", "9999999999999"],
        &["KEEPTTL"],
        &["FOO"],
        &["EX"],
        &["NX"],
    ] {
        let mut args = vec!["GETEX", "gexe:k"];
        args.extend_from_slice(opts);
        assert_eq!(err(&mut c, &args), SYNTAX, "GETEX with {opts:?}");
    }
    for opts in [
        &["EX", "0"][..],
        &["EX", "-1"],
        &["PX", "0"],
        &["EXAT", "0"],
        &["PXAT", "-1"],
        &["EX", "9223372036854775"],
    ] {
        let mut args = vec!["GETEX", "gexe:k"];
        args.extend_from_slice(opts);
        assert_eq!(
            err(&mut c, &args),
            invalid_expire("getex"),
            "GETEX with {opts:?}"
        );
    }
    assert_eq!(err(&mut c, &["GETEX", "gexe:k", "EX", "abc"]), NOT_INT);
    assert_eq!(err(&mut c, &["GETEX", "gexe:k", "PX", "1.5"]), NOT_INT);
    // None of the failures touched the key.
    assert_eq!(ttl(&mut c, "gexe:k"), -1);
    assert_eq!(q(&mut c, &["GET", "gexe:k"]), bulk("v"));

    // Only the option syntax is checked before the key lookup; the expire
    // value itself is validated after it, so a missing key just gives nil.
    assert_eq!(err(&mut c, &["GETEX", "gexe:none", "FOO"]), SYNTAX);
    assert_eq!(q(&mut c, &["GETEX", "gexe:none", "EX", "0"]), Value::Nil);
    assert_eq!(q(&mut c, &["GETEX", "gexe:none", "EX", "abc"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "gexe:none"]), Value::Nil);

    make_list(&mut c, "gexe:l");
    assert_eq!(err(&mut c, &["GETEX", "gexe:l"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["GETEX", "gexe:l", "EX", "10"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["GETEX", "gexe:l", "PERSIST"]), WRONGTYPE);
    // ...and a wrong type is reported ahead of a bad expire value.
    assert_eq!(err(&mut c, &["GETEX", "gexe:l", "EX", "0"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["GETEX", "gexe:l", "EX", "abc"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["GETEX", "gexe:l", "FOO"]), SYNTAX);
    assert_eq!(err(&mut c, &["GETEX"]), arity("getex"));
}

// ------------------------------------------------------- MGET / MSET / MSETNX

#[test]
fn mget_returns_nil_for_missing_and_non_string_keys() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "mg:a", "1"]), Value::Okay);
    assert_eq!(q(&mut c, &["SET", "mg:b", ""]), Value::Okay);
    make_list(&mut c, "mg:l");
    assert_eq!(
        q(
            &mut c,
            &["MGET", "mg:a", "mg:missing", "mg:l", "mg:b", "mg:a"]
        ),
        Value::Array(vec![bulk("1"), Value::Nil, Value::Nil, bulk(""), bulk("1")])
    );
    assert_eq!(
        q(&mut c, &["MGET", "mg:missing"]),
        Value::Array(vec![Value::Nil])
    );
    assert_eq!(err(&mut c, &["MGET"]), arity("mget"));
}

#[test]
fn mset_sets_all_pairs_and_clears_ttls() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(
        q(&mut c, &["SET", "ms:t", "old", "EX", "1000"]),
        Value::Okay
    );
    assert_eq!(
        q(&mut c, &["MSET", "ms:a", "1", "ms:b", "2", "ms:t", "new"]),
        Value::Okay
    );
    assert_eq!(
        q(&mut c, &["MGET", "ms:a", "ms:b", "ms:t"]),
        Value::Array(vec![bulk("1"), bulk("2"), bulk("new")])
    );
    assert_eq!(ttl(&mut c, "ms:t"), -1);
    // A key given twice takes its last value.
    assert_eq!(q(&mut c, &["MSET", "ms:d", "x", "ms:d", "y"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "ms:d"]), bulk("y"));
    // MSET overwrites keys of any type.
    make_list(&mut c, "ms:l");
    assert_eq!(q(&mut c, &["MSET", "ms:l", "s"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "ms:l"]), bulk("s"));

    assert_eq!(err(&mut c, &["MSET"]), arity("mset"));
    assert_eq!(err(&mut c, &["MSET", "ms:x"]), arity("mset"));
    assert_eq!(err(&mut c, &["MSET", "ms:x", "1", "ms:y"]), arity("mset"));
    assert_eq!(q(&mut c, &["GET", "ms:x"]), Value::Nil);
}

#[test]
fn msetnx_is_all_or_nothing() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["MSETNX", "mnx:a", "1", "mnx:b", "2"]), int(1));
    assert_eq!(
        q(&mut c, &["MGET", "mnx:a", "mnx:b"]),
        Value::Array(vec![bulk("1"), bulk("2")])
    );
    // One existing key blocks every write in the call.
    assert_eq!(q(&mut c, &["MSETNX", "mnx:c", "3", "mnx:a", "9"]), int(0));
    assert_eq!(q(&mut c, &["GET", "mnx:c"]), Value::Nil);
    assert_eq!(q(&mut c, &["GET", "mnx:a"]), bulk("1"));
    // A non-string key counts as existing; no WRONGTYPE.
    make_list(&mut c, "mnx:l");
    assert_eq!(q(&mut c, &["MSETNX", "mnx:d", "4", "mnx:l", "x"]), int(0));
    assert_eq!(q(&mut c, &["GET", "mnx:d"]), Value::Nil);
    // The same new key twice in one call is fine; the last value wins.
    assert_eq!(q(&mut c, &["MSETNX", "mnx:e", "1", "mnx:e", "2"]), int(1));
    assert_eq!(q(&mut c, &["GET", "mnx:e"]), bulk("2"));

    assert_eq!(err(&mut c, &["MSETNX"]), arity("msetnx"));
    assert_eq!(err(&mut c, &["MSETNX", "mnx:z"]), arity("msetnx"));
    assert_eq!(
        err(&mut c, &["MSETNX", "mnx:z", "1", "mnx:y"]),
        arity("msetnx")
    );
    assert_eq!(q(&mut c, &["GET", "mnx:z"]), Value::Nil);
}

// ------------------------------------------------------------ APPEND / STRLEN

#[test]
fn append_creates_extends_and_returns_length() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["APPEND", "ap:k", "hello"]), int(5));
    assert_eq!(q(&mut c, &["APPEND", "ap:k", " world"]), int(11));
    assert_eq!(q(&mut c, &["GET", "ap:k"]), bulk("hello world"));
    assert_eq!(q(&mut c, &["APPEND", "ap:k", ""]), int(11));
    // Appending to a number works on its decimal text.
    assert_eq!(q(&mut c, &["SET", "ap:n", "12"]), Value::Okay);
    assert_eq!(q(&mut c, &["APPEND", "ap:n", "3"]), int(3));
    assert_eq!(q(&mut c, &["INCR", "ap:n"]), int(124));
    // An empty append still creates the key, as an empty string.
    assert_eq!(q(&mut c, &["APPEND", "ap:empty", ""]), int(0));
    assert_eq!(q(&mut c, &["GET", "ap:empty"]), bulk(""));
    // APPEND keeps the TTL.
    assert_eq!(q(&mut c, &["SET", "ap:t", "a", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["APPEND", "ap:t", "b"]), int(2));
    assert!(ttl(&mut c, "ap:t") > 0);
    assert_eq!(err(&mut c, &["APPEND", "ap:k"]), arity("append"));
}

#[test]
fn strlen_counts_bytes() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["STRLEN", "sl:missing"]), int(0));
    assert_eq!(q(&mut c, &["SET", "sl:k", "hello"]), Value::Okay);
    assert_eq!(q(&mut c, &["STRLEN", "sl:k"]), int(5));
    assert_eq!(q(&mut c, &["SET", "sl:e", ""]), Value::Okay);
    assert_eq!(q(&mut c, &["STRLEN", "sl:e"]), int(0));
    // Integers report the length of their decimal text.
    assert_eq!(q(&mut c, &["SET", "sl:n", "-12345"]), Value::Okay);
    assert_eq!(q(&mut c, &["STRLEN", "sl:n"]), int(6));
    // Bytes, not characters: "é" is two bytes in UTF-8.
    assert_eq!(q(&mut c, &["SET", "sl:u", "héllo"]), Value::Okay);
    assert_eq!(q(&mut c, &["STRLEN", "sl:u"]), int(6));
    assert_eq!(err(&mut c, &["STRLEN"]), arity("strlen"));
    assert_eq!(err(&mut c, &["STRLEN", "sl:k", "x"]), arity("strlen"));
}

// -------------------------------------------------------- GETRANGE / SUBSTR

#[test]
fn getrange_with_positive_and_negative_indexes() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "gr:k", "Hello World"]), Value::Okay);
    for (start, end, want) in [
        ("0", "4", "Hello"),
        ("-5", "-1", "World"),
        ("0", "-1", "Hello World"),
        ("-3", "-1", "rld"),
        ("6", "6", "W"),
        ("0", "0", "H"),
        ("-1", "-1", "d"),
        ("10", "10", "d"),
        // Indexes past either end are clamped.
        ("-100", "-1", "Hello World"),
        ("0", "100", "Hello World"),
        ("-100", "0", "H"),
        ("0", "9223372036854775807", "Hello World"),
        ("-9223372036854775808", "2", "Hel"),
    ] {
        assert_eq!(
            q(&mut c, &["GETRANGE", "gr:k", start, end]),
            bulk(want),
            "GETRANGE {start} {end}"
        );
    }
}

#[test]
fn getrange_empty_results() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "gre:k", "Hello World"]), Value::Okay);
    for (start, end) in [
        ("5", "3"),
        ("-1", "-5"),
        ("100", "200"),
        ("11", "11"),
        ("11", "-1"),
    ] {
        assert_eq!(
            q(&mut c, &["GETRANGE", "gre:k", start, end]),
            bulk(""),
            "GETRANGE {start} {end}"
        );
    }
    // A missing key and an empty string both give an empty string, not nil.
    assert_eq!(q(&mut c, &["GETRANGE", "gre:none", "0", "-1"]), bulk(""));
    assert_eq!(q(&mut c, &["SET", "gre:e", ""]), Value::Okay);
    assert_eq!(q(&mut c, &["GETRANGE", "gre:e", "0", "-1"]), bulk(""));
    assert_eq!(q(&mut c, &["GETRANGE", "gre:e", "0", "0"]), bulk(""));
    assert_eq!(q(&mut c, &["GETRANGE", "gre:e", "-1", "-1"]), bulk(""));
}

#[test]
fn getrange_both_negative_out_of_range_clamps_to_first_byte() {
    // Redis 7.0 clamps a negative start and end independently to 0, so a
    // range entirely before the string still yields its first byte.
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "grn:k", "Hello World"]), Value::Okay);
    assert_eq!(q(&mut c, &["GETRANGE", "grn:k", "-100", "-100"]), bulk("H"));
    assert_eq!(q(&mut c, &["GETRANGE", "grn:k", "-100", "-50"]), bulk("H"));
}

#[test]
fn getrange_and_substr_errors() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "grx:k", "Hello"]), Value::Okay);
    assert_eq!(err(&mut c, &["GETRANGE", "grx:k", "a", "1"]), NOT_INT);
    assert_eq!(err(&mut c, &["GETRANGE", "grx:k", "0", "1.5"]), NOT_INT);
    assert_eq!(err(&mut c, &["GETRANGE", "grx:k", "0"]), arity("getrange"));
    assert_eq!(
        err(&mut c, &["GETRANGE", "grx:k", "0", "1", "2"]),
        arity("getrange")
    );
    assert_eq!(err(&mut c, &["SUBSTR", "grx:k", "0"]), arity("substr"));
    assert_eq!(err(&mut c, &["SUBSTR", "grx:k", "x", "1"]), NOT_INT);
}

#[test]
fn substr_is_an_alias_of_getrange() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "sub:k", "Hello World"]), Value::Okay);
    assert_eq!(q(&mut c, &["SUBSTR", "sub:k", "0", "4"]), bulk("Hello"));
    assert_eq!(q(&mut c, &["SUBSTR", "sub:k", "-5", "-1"]), bulk("World"));
    assert_eq!(q(&mut c, &["SUBSTR", "sub:k", "5", "3"]), bulk(""));
    assert_eq!(q(&mut c, &["SUBSTR", "sub:none", "0", "-1"]), bulk(""));
}

// ---------------------------------------------------------------- SETRANGE

#[test]
fn setrange_overwrites_part_of_a_string() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "sr:k", "Hello World"]), Value::Okay);
    assert_eq!(q(&mut c, &["SETRANGE", "sr:k", "6", "Redis"]), int(11));
    assert_eq!(q(&mut c, &["GET", "sr:k"]), bulk("Hello Redis"));
    // Writing past the end grows the string.
    assert_eq!(q(&mut c, &["SETRANGE", "sr:k", "9", "XYZW"]), int(13));
    assert_eq!(q(&mut c, &["GET", "sr:k"]), bulk("Hello RedXYZW"));
    // An integer value is edited as its decimal text, and the TTL is kept.
    assert_eq!(q(&mut c, &["SET", "sr:n", "12", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["SETRANGE", "sr:n", "0", "9"]), int(2));
    assert_eq!(q(&mut c, &["GET", "sr:n"]), bulk("92"));
    assert!(ttl(&mut c, "sr:n") > 0);
}

#[test]
fn setrange_pads_with_zero_bytes() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SETRANGE", "srp:new", "5", "hi"]), int(7));
    assert_eq!(q(&mut c, &["GET", "srp:new"]), bulk(b"\0\0\0\0\0hi"));
    assert_eq!(q(&mut c, &["SET", "srp:k", "ab"]), Value::Okay);
    assert_eq!(q(&mut c, &["SETRANGE", "srp:k", "4", "z"]), int(5));
    assert_eq!(q(&mut c, &["GET", "srp:k"]), bulk(b"ab\0\0z"));
}

#[test]
fn setrange_with_empty_value_changes_nothing() {
    let srv = TestServer::start();
    let mut c = srv.client();
    // No key is created, and the offset is not checked against the size limit.
    assert_eq!(q(&mut c, &["SETRANGE", "sre:none", "0", ""]), int(0));
    assert_eq!(q(&mut c, &["GET", "sre:none"]), Value::Nil);
    assert_eq!(
        q(&mut c, &["SETRANGE", "sre:none", "536870911", ""]),
        int(0)
    );
    assert_eq!(q(&mut c, &["GET", "sre:none"]), Value::Nil);
    // On an existing key it reports the current length without padding.
    assert_eq!(q(&mut c, &["SET", "sre:k", "abc"]), Value::Okay);
    assert_eq!(q(&mut c, &["SETRANGE", "sre:k", "1000", ""]), int(3));
    assert_eq!(q(&mut c, &["GET", "sre:k"]), bulk("abc"));
    assert_eq!(q(&mut c, &["SET", "sre:e", ""]), Value::Okay);
    assert_eq!(q(&mut c, &["SETRANGE", "sre:e", "0", ""]), int(0));
    assert_eq!(q(&mut c, &["GET", "sre:e"]), bulk(""));
}

#[test]
fn setrange_errors() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "srx:k", "abc"]), Value::Okay);
    assert_eq!(err(&mut c, &["SETRANGE", "srx:k", "-1", "x"]), OFFSET_RANGE);
    assert_eq!(
        err(&mut c, &["SETRANGE", "srx:none", "-1", ""]),
        OFFSET_RANGE
    );
    assert_eq!(err(&mut c, &["SETRANGE", "srx:k", "a", "x"]), NOT_INT);
    assert_eq!(err(&mut c, &["SETRANGE", "srx:k", "1.5", "x"]), NOT_INT);
    // 512 MiB is the largest string; one byte past it is refused.
    assert_eq!(
        err(&mut c, &["SETRANGE", "srx:k", "536870912", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    assert_eq!(q(&mut c, &["GET", "srx:k"]), bulk("abc"));
    assert_eq!(q(&mut c, &["GET", "srx:none"]), Value::Nil);

    make_list(&mut c, "srx:l");
    assert_eq!(err(&mut c, &["SETRANGE", "srx:l", "0", "x"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["SETRANGE", "srx:l", "0", ""]), WRONGTYPE);
    // The offset is parsed and range-checked before the key's type.
    assert_eq!(err(&mut c, &["SETRANGE", "srx:l", "-1", "x"]), OFFSET_RANGE);
    assert_eq!(err(&mut c, &["SETRANGE", "srx:k", "1"]), arity("setrange"));
}

// ------------------------------------------------- INCR / DECR / INCRBY / DECRBY

#[test]
fn incr_and_decr_start_from_zero() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["INCR", "id:a"]), int(1));
    assert_eq!(q(&mut c, &["INCR", "id:a"]), int(2));
    assert_eq!(q(&mut c, &["GET", "id:a"]), bulk("2"));
    assert_eq!(q(&mut c, &["DECR", "id:b"]), int(-1));
    assert_eq!(q(&mut c, &["DECR", "id:b"]), int(-2));
    assert_eq!(q(&mut c, &["GET", "id:b"]), bulk("-2"));
    assert_eq!(q(&mut c, &["SET", "id:c", "-1"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCR", "id:c"]), int(0));
    assert_eq!(q(&mut c, &["GET", "id:c"]), bulk("0"));
    // Values beyond 32 bits.
    assert_eq!(q(&mut c, &["SET", "id:d", "17179869184"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCR", "id:d"]), int(17179869185));
}

#[test]
fn incrby_and_decrby() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["INCRBY", "ib:k", "10"]), int(10));
    assert_eq!(q(&mut c, &["INCRBY", "ib:k", "-25"]), int(-15));
    assert_eq!(q(&mut c, &["DECRBY", "ib:k", "5"]), int(-20));
    assert_eq!(q(&mut c, &["DECRBY", "ib:k", "-30"]), int(10));
    assert_eq!(q(&mut c, &["INCRBY", "ib:k", "0"]), int(10));
    assert_eq!(q(&mut c, &["GET", "ib:k"]), bulk("10"));
    assert_eq!(q(&mut c, &["DECRBY", "ib:new", "7"]), int(-7));
}

#[test]
fn incr_family_overflow() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(
        q(&mut c, &["SET", "ov:max", "9223372036854775806"]),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["INCR", "ov:max"]), int(i64::MAX));
    assert_eq!(err(&mut c, &["INCR", "ov:max"]), OVERFLOW);
    assert_eq!(err(&mut c, &["INCRBY", "ov:max", "1"]), OVERFLOW);
    assert_eq!(err(&mut c, &["DECRBY", "ov:max", "-1"]), OVERFLOW);
    assert_eq!(q(&mut c, &["GET", "ov:max"]), bulk("9223372036854775807"));

    assert_eq!(
        q(&mut c, &["SET", "ov:min", "-9223372036854775808"]),
        Value::Okay
    );
    assert_eq!(err(&mut c, &["DECR", "ov:min"]), OVERFLOW);
    assert_eq!(err(&mut c, &["INCRBY", "ov:min", "-1"]), OVERFLOW);
    assert_eq!(q(&mut c, &["GET", "ov:min"]), bulk("-9223372036854775808"));

    assert_eq!(q(&mut c, &["SET", "ov:one", "1"]), Value::Okay);
    assert_eq!(
        err(&mut c, &["INCRBY", "ov:one", "9223372036854775807"]),
        OVERFLOW
    );
    assert_eq!(q(&mut c, &["GET", "ov:one"]), bulk("1"));
}

#[test]
fn decrby_of_i64_min_has_its_own_error() {
    // Negating i64::MIN is impossible, so DECRBY refuses it before looking
    // at the key, with a message different from the usual overflow one.
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "dmin:k", "0"]), Value::Okay);
    assert_eq!(
        err(&mut c, &["DECRBY", "dmin:k", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    assert_eq!(
        err(&mut c, &["DECRBY", "dmin:none", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    assert_eq!(q(&mut c, &["GET", "dmin:k"]), bulk("0"));
    assert_eq!(q(&mut c, &["GET", "dmin:none"]), Value::Nil);
    assert_eq!(
        q(&mut c, &["INCRBY", "dmin:k", "-9223372036854775808"]),
        int(i64::MIN)
    );
}

#[test]
fn incr_rejects_values_that_are_not_canonical_integers() {
    let srv = TestServer::start();
    let mut c = srv.client();
    for v in [
        " 1",
        "1 ",
        "01",
        "00",
        "+1",
        "-0",
        "1.0",
        "abc",
        "",
        "0x1",
        "1e3",
        "9223372036854775808",
        "-9223372036854775809",
    ] {
        assert_eq!(q(&mut c, &["SET", "nc:k", v]), Value::Okay);
        assert_eq!(err(&mut c, &["INCR", "nc:k"]), NOT_INT, "INCR on {v:?}");
        assert_eq!(err(&mut c, &["DECRBY", "nc:k", "1"]), NOT_INT);
        assert_eq!(
            q(&mut c, &["GET", "nc:k"]),
            bulk(v),
            "value must be unchanged"
        );
    }
}

#[test]
fn incrby_rejects_non_integer_increments() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "ni:k", "5"]), Value::Okay);
    for inc in ["abc", "1.5", "", " 1", "+1", "01", "9223372036854775808"] {
        assert_eq!(
            err(&mut c, &["INCRBY", "ni:k", inc]),
            NOT_INT,
            "INCRBY {inc:?}"
        );
        assert_eq!(
            err(&mut c, &["DECRBY", "ni:k", inc]),
            NOT_INT,
            "DECRBY {inc:?}"
        );
    }
    assert_eq!(q(&mut c, &["GET", "ni:k"]), bulk("5"));
}

#[test]
fn incr_family_keeps_ttl() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "it:k", "5", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCR", "it:k"]), int(6));
    assert_eq!(q(&mut c, &["DECRBY", "it:k", "2"]), int(4));
    let t = ttl(&mut c, "it:k");
    assert!((900..=1000).contains(&t), "TTL after INCR was {t}");
}

// ------------------------------------------------------------- INCRBYFLOAT

#[test]
fn incrbyfloat_documented_examples() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "ibf:k", "10.50"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "ibf:k", "0.1"]), bulk("10.6"));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "ibf:k", "-5"]), bulk("5.6"));
    assert_eq!(q(&mut c, &["GET", "ibf:k"]), bulk("5.6"));
    assert_eq!(q(&mut c, &["SET", "ibf:e", "5.0e3"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "ibf:e", "2.0e2"]), bulk("5200"));
    assert_eq!(q(&mut c, &["GET", "ibf:e"]), bulk("5200"));
}

#[test]
fn incrbyfloat_output_formatting() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:a", "10.5"]), bulk("10.5"));
    // Whole results print without a decimal point.
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:a", "-0.5"]), bulk("10"));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:b", "1.0"]), bulk("1"));
    assert_eq!(q(&mut c, &["SET", "fmt:c", "5.0e3"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:c", "0"]), bulk("5000"));
    assert_eq!(q(&mut c, &["GET", "fmt:c"]), bulk("5000"));
    // Never exponent notation, in either direction.
    assert_eq!(
        q(&mut c, &["INCRBYFLOAT", "fmt:d", "1e20"]),
        bulk("100000000000000000000")
    );
    assert_eq!(
        q(&mut c, &["INCRBYFLOAT", "fmt:e", "-1e-7"]),
        bulk("-0.0000001")
    );
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:f", "1E3"]), bulk("1000"));
    // Tiny results round to zero and never print as "-0".
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:g", "-1e-20"]), bulk("0"));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:h", "-0.0"]), bulk("0"));
    // Loose but valid number syntax is accepted.
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:i", "+1.5"]), bulk("1.5"));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:j", ".5"]), bulk("0.5"));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:k", "5."]), bulk("5"));
    assert_eq!(q(&mut c, &["SET", "fmt:l", "010"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fmt:l", "1"]), bulk("11"));
    // Values above 32 bits keep their fraction.
    assert_eq!(q(&mut c, &["SET", "fmt:m", "17179869184"]), Value::Okay);
    assert_eq!(
        q(&mut c, &["INCRBYFLOAT", "fmt:m", "1.5"]),
        bulk("17179869185.5")
    );
}

#[test]
fn incrbyfloat_precision_hides_binary_rounding() {
    // Redis computes in long double and prints 17 decimals with trailing
    // zeros trimmed, so the classic 0.1 + 0.2 comes out as 0.3.
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "prec:k", "0.1"]), bulk("0.1"));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "prec:k", "0.2"]), bulk("0.3"));
    assert_eq!(q(&mut c, &["SET", "prec:j", "1"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "prec:j", "0.1"]), bulk("1.1"));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "prec:j", "0.2"]), bulk("1.3"));
}

#[test]
fn incrbyfloat_invalid_floats() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "ivf:k", "1"]), Value::Okay);
    for inc in ["abc", "", "nan", " 1", "1 ", "1.5e", "1e5000", "1,5"] {
        assert_eq!(
            err(&mut c, &["INCRBYFLOAT", "ivf:k", inc]),
            NOT_FLOAT,
            "INCRBYFLOAT {inc:?}"
        );
    }
    assert_eq!(q(&mut c, &["GET", "ivf:k"]), bulk("1"));
    // The stored value must parse as a float too.
    for v in ["abc", " 1", "1.5 ", ""] {
        assert_eq!(q(&mut c, &["SET", "ivf:s", v]), Value::Okay);
        assert_eq!(
            err(&mut c, &["INCRBYFLOAT", "ivf:s", "1"]),
            NOT_FLOAT,
            "stored {v:?}"
        );
        assert_eq!(q(&mut c, &["GET", "ivf:s"]), bulk(v));
    }
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "ivf:k"]), arity("incrbyfloat"));
}

#[test]
fn incrbyfloat_refuses_nan_and_infinity() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "inf:k", "1"]), Value::Okay);
    // "inf" parses as a float; it is the result that is refused.
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "inf:k", "inf"]), NAN_OR_INF);
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "inf:k", "-inf"]), NAN_OR_INF);
    assert_eq!(q(&mut c, &["GET", "inf:k"]), bulk("1"));
    assert_eq!(q(&mut c, &["SET", "inf:s", "inf"]), Value::Okay);
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "inf:s", "1"]), NAN_OR_INF);
    assert_eq!(q(&mut c, &["GET", "inf:s"]), bulk("inf"));
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "inf:none", "inf"]), NAN_OR_INF);
    assert_eq!(q(&mut c, &["GET", "inf:none"]), Value::Nil);
}

#[test]
fn incrbyfloat_keeps_ttl() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "ift:k", "5", "EX", "1000"]), Value::Okay);
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "ift:k", "1"]), bulk("6"));
    let t = ttl(&mut c, "ift:k");
    assert!((900..=1000).contains(&t), "TTL after INCRBYFLOAT was {t}");
}

// ------------------------------------------------------------ arity, types

#[test]
fn wrong_number_of_arguments() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let cases: &[(&[&str], &str)] = &[
        (&["GET"], "get"),
        (&["GET", "a", "b"], "get"),
        // The name in the message is lowercase whatever the client sent.
        (&["GeT"], "get"),
        (&["SET"], "set"),
        (&["SET", "a"], "set"),
        (&["GETSET", "a"], "getset"),
        (&["GETDEL"], "getdel"),
        (&["GETEX"], "getex"),
        (&["SETNX", "a"], "setnx"),
        (&["SETEX", "a", "10"], "setex"),
        (&["PSETEX", "a", "10"], "psetex"),
        (&["MGET"], "mget"),
        (&["MSET", "a"], "mset"),
        (&["MSETNX", "a"], "msetnx"),
        (&["APPEND", "a"], "append"),
        (&["STRLEN"], "strlen"),
        (&["GETRANGE", "a", "0"], "getrange"),
        (&["SUBSTR", "a", "0"], "substr"),
        (&["SETRANGE", "a", "0"], "setrange"),
        (&["INCR"], "incr"),
        (&["INCR", "a", "b"], "incr"),
        (&["DECR"], "decr"),
        (&["INCRBY", "a"], "incrby"),
        (&["DECRBY", "a"], "decrby"),
        (&["INCRBYFLOAT", "a"], "incrbyfloat"),
    ];
    for (args, name) in cases {
        assert_eq!(err(&mut c, args), arity(name), "{args:?}");
    }
    // Nothing was created by the refused commands.
    assert_eq!(q(&mut c, &["GET", "a"]), Value::Nil);
}

#[test]
fn string_commands_on_a_list_are_wrongtype() {
    let srv = TestServer::start();
    let mut c = srv.client();
    make_list(&mut c, "wt:l");
    let cases: &[&[&str]] = &[
        &["GET", "wt:l"],
        &["GETSET", "wt:l", "v"],
        &["GETDEL", "wt:l"],
        &["GETEX", "wt:l"],
        &["GETEX", "wt:l", "PERSIST"],
        &["SET", "wt:l", "v", "GET"],
        &["APPEND", "wt:l", "x"],
        &["STRLEN", "wt:l"],
        &["GETRANGE", "wt:l", "0", "-1"],
        &["SUBSTR", "wt:l", "0", "-1"],
        &["SETRANGE", "wt:l", "0", "x"],
        &["INCR", "wt:l"],
        &["DECR", "wt:l"],
        &["INCRBY", "wt:l", "1"],
        &["DECRBY", "wt:l", "1"],
        &["INCRBYFLOAT", "wt:l", "1.5"],
    ];
    for args in cases {
        assert_eq!(err(&mut c, args), WRONGTYPE, "{args:?}");
    }
    // None of them damaged the list.
    assert_eq!(q(&mut c, &["RPUSH", "wt:l", "second"]), int(2));
    assert_eq!(
        q(&mut c, &["LRANGE", "wt:l", "0", "-1"]),
        Value::Array(vec![bulk("item"), bulk("second")])
    );
}

// ----------------------------------------------------------- binary safety

#[test]
fn binary_keys_and_values_round_trip() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let samples: &[(&[u8], &[u8])] = &[
        (b"bin:nul\0key", b"val\0ue\0"),
        (b"bin:crlf\r\nkey", b"line1\r\nline2\r\n"),
        (b"bin:\xff\xfe\x80", b"\x00\xff\xc3\x28\x80\r\n$5\r\n"),
        (b"\0", b"*1\r\n$3\r\nGET\r\n"),
    ];
    for (k, v) in samples {
        assert_eq!(qb(&mut c, &[b"SET", k, v]), Value::Okay);
        assert_eq!(qb(&mut c, &[b"GET", k]), bulk(v));
        assert_eq!(qb(&mut c, &[b"STRLEN", k]), int(v.len() as i64));
    }
    // Keys that differ only after a NUL byte are distinct.
    assert_eq!(qb(&mut c, &[b"GET", b"bin:nul"]), Value::Nil);
    assert_eq!(
        qb(&mut c, &[b"MGET", samples[0].0, samples[2].0]),
        Value::Array(vec![bulk(samples[0].1), bulk(samples[2].1)])
    );
    assert_eq!(qb(&mut c, &[b"APPEND", b"bin:nul\0key", b"\xff"]), int(8));
    assert_eq!(
        qb(&mut c, &[b"GETRANGE", b"bin:nul\0key", b"3", b"-1"]),
        bulk(b"\0ue\0\xff")
    );
}

#[test]
fn empty_value_is_distinct_from_missing() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "ev:k", ""]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "ev:k"]), bulk(""));
    assert_eq!(q(&mut c, &["STRLEN", "ev:k"]), int(0));
    assert_eq!(q(&mut c, &["SETNX", "ev:k", "x"]), int(0));
    assert_eq!(q(&mut c, &["GETSET", "ev:k", "y"]), bulk(""));
    assert_eq!(q(&mut c, &["SET", "", "empty key"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", ""]), bulk("empty key"));
}

#[test]
fn one_megabyte_value_round_trips() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(qb(&mut c, &[b"SET", b"big:k", &big]), Value::Okay);
    assert_eq!(
        qb(&mut c, &[b"GET", b"big:k"]),
        Value::BulkString(big.clone())
    );
    assert_eq!(q(&mut c, &["STRLEN", "big:k"]), int(1024 * 1024));
    assert_eq!(
        q(&mut c, &["GETRANGE", "big:k", "-3", "-1"]),
        bulk(&big[big.len() - 3..])
    );
    assert_eq!(
        q(&mut c, &["APPEND", "big:k", "tail"]),
        int(1024 * 1024 + 4)
    );
    assert_eq!(q(&mut c, &["GETRANGE", "big:k", "-4", "-1"]), bulk("tail"));
}

// ------------------------------------------------------------------ expiry

#[test]
fn set_px_value_disappears_after_expiry() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["SET", "exp:k", "v", "PX", "100"]), Value::Okay);
    let pt = pttl(&mut c, "exp:k");
    assert!(
        pt == -2 || (0..=100).contains(&pt),
        "PTTL after PX 100 was {pt}"
    );
    wait_until_gone(&mut c, "exp:k");
    // Once expired, the key behaves as missing for every string command.
    assert_eq!(q(&mut c, &["STRLEN", "exp:k"]), int(0));
    assert_eq!(q(&mut c, &["SETNX", "exp:k", "again"]), int(1));
    assert_eq!(q(&mut c, &["GET", "exp:k"]), bulk("again"));
    assert_eq!(ttl(&mut c, "exp:k"), -1);
}

#[test]
fn psetex_and_getex_px_values_expire() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(q(&mut c, &["PSETEX", "exp2:a", "100", "v"]), Value::Okay);
    assert_eq!(q(&mut c, &["SET", "exp2:b", "v"]), Value::Okay);
    assert_eq!(q(&mut c, &["GETEX", "exp2:b", "PX", "100"]), bulk("v"));
    wait_until_gone(&mut c, "exp2:a");
    wait_until_gone(&mut c, "exp2:b");
    // An expired counter restarts from zero.
    assert_eq!(
        q(&mut c, &["SET", "exp2:n", "41", "PX", "100"]),
        Value::Okay
    );
    wait_until_gone(&mut c, "exp2:n");
    assert_eq!(q(&mut c, &["INCR", "exp2:n"]), int(1));
}

// --------------------------------------------------------- protocol shapes

/// Reads from a raw connection until the buffer ends with `suffix`.
fn read_until_suffix(conn: &mut RawConn, suffix: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(suffix) {
        let n = conn.s.read(&mut buf).expect("raw read");
        assert!(n > 0, "connection closed; read so far {out:?}");
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn resp2_wire_encoding_of_string_replies() {
    let srv = TestServer::start();
    let mut r = srv.raw();
    r.roundtrip(&resp_cmd(&[b"GET", b"w2:none"]), b"$-1\r\n");
    r.roundtrip(&resp_cmd(&[b"SET", b"w2:k", b"v"]), b"+OK\r\n");
    r.roundtrip(&resp_cmd(&[b"SET", b"w2:k", b"x", b"NX"]), b"$-1\r\n");
    r.roundtrip(&resp_cmd(&[b"GET", b"w2:k"]), b"$1\r\nv\r\n");
    r.roundtrip(
        &resp_cmd(&[b"MGET", b"w2:k", b"w2:none"]),
        b"*2\r\n$1\r\nv\r\n$-1\r\n",
    );
    r.roundtrip(&resp_cmd(&[b"SET", b"w2:e", b""]), b"+OK\r\n");
    r.roundtrip(&resp_cmd(&[b"GET", b"w2:e"]), b"$0\r\n\r\n");
    r.roundtrip(&resp_cmd(&[b"INCR", b"w2:n"]), b":1\r\n");
    r.roundtrip(
        &resp_cmd(&[b"INCRBYFLOAT", b"w2:f", b"1.5"]),
        b"$3\r\n1.5\r\n",
    );
    r.roundtrip(
        &resp_cmd(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    r.roundtrip(
        &resp_cmd(&[b"INCR", b"w2:k"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
}

#[test]
fn resp3_wire_encoding_of_string_replies() {
    let srv = TestServer::start();
    let mut r = srv.raw();
    // The HELLO reply is a map whose contents vary by server; skip past it
    // by pipelining a PING and reading up to its reply.
    r.send(&resp_cmd(&[b"HELLO", b"3"]));
    r.send(&resp_cmd(&[b"PING"]));
    read_until_suffix(&mut r, b"+PONG\r\n");

    // A missing value is the RESP3 null, not the RESP2 null bulk string.
    r.roundtrip(&resp_cmd(&[b"GET", b"w3:none"]), b"_\r\n");
    r.roundtrip(&resp_cmd(&[b"SET", b"w3:k", b"v"]), b"+OK\r\n");
    r.roundtrip(&resp_cmd(&[b"SET", b"w3:k", b"x", b"NX"]), b"_\r\n");
    r.roundtrip(&resp_cmd(&[b"SET", b"w3:new", b"x", b"GET"]), b"_\r\n");
    r.roundtrip(
        &resp_cmd(&[b"MGET", b"w3:k", b"w3:none"]),
        b"*2\r\n$1\r\nv\r\n_\r\n",
    );
    // INCRBYFLOAT stays a bulk string; it is not a RESP3 double.
    r.roundtrip(
        &resp_cmd(&[b"INCRBYFLOAT", b"w3:f", b"1.5"]),
        b"$3\r\n1.5\r\n",
    );
    r.roundtrip(&resp_cmd(&[b"INCR", b"w3:n"]), b":1\r\n");
}

#[test]
fn resp3_client_sees_same_value_types() {
    let srv = TestServer::start();
    let mut c = srv.client_resp3();
    assert_eq!(q(&mut c, &["GET", "r3:none"]), Value::Nil);
    assert_eq!(q(&mut c, &["SET", "r3:k", "v"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "r3:k"]), bulk("v"));
    assert_eq!(q(&mut c, &["SET", "r3:k", "x", "NX"]), Value::Nil);
    assert_eq!(
        q(&mut c, &["MGET", "r3:k", "r3:none"]),
        Value::Array(vec![bulk("v"), Value::Nil])
    );
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "r3:f", "10.5"]), bulk("10.5"));
    assert_eq!(q(&mut c, &["INCR", "r3:n"]), int(1));
    assert_eq!(q(&mut c, &["SETNX", "r3:n", "1"]), int(0));
    assert_eq!(q(&mut c, &["GETDEL", "r3:k"]), bulk("v"));
    assert_eq!(err(&mut c, &["INCR", "r3:f"]), NOT_INT);
}
