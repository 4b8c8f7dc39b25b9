//! Connection and server commands: PING/ECHO/QUIT/RESET, HELLO, AUTH,
//! RESP3 reply types, CLIENT, INFO, CONFIG, COMMAND, TIME, DEBUG, OBJECT,
//! MEMORY and SHUTDOWN.
//!
//! Every expectation was checked against Debian's redis-server 7.0.15
//! (`FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test server`).
//! Where 7.0 differs from the 7.2+ documentation the test follows 7.0.15 and
//! says so. Exact bytes are checked over raw sockets where the wire format
//! itself is the point.

mod common;
use common::*;

use redis::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Con = redis::Connection;

// ------------------------------------------------------------- helpers

/// Reads exactly one complete RESP2/RESP3 reply and returns its raw bytes.
fn read_reply(c: &mut RawConn) -> Vec<u8> {
    let mut out = Vec::new();
    read_reply_into(c, &mut out);
    out
}

fn read_line_into(c: &mut RawConn, out: &mut Vec<u8>) -> Vec<u8> {
    let start = out.len();
    loop {
        out.extend_from_slice(&c.read_exact_len(1));
        if out.len() - start >= 2 && out.ends_with(b"\r\n") {
            return out[start..out.len() - 2].to_vec();
        }
    }
}

fn read_reply_into(c: &mut RawConn, out: &mut Vec<u8>) {
    let line = read_line_into(c, out);
    let n = || -> i64 { std::str::from_utf8(&line[1..]).unwrap().parse().unwrap() };
    match line[0] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
        b'$' | b'=' | b'!' => {
            if n() >= 0 {
                out.extend_from_slice(&c.read_exact_len(n() as usize + 2));
            }
        }
        b'*' | b'~' | b'>' => {
            for _ in 0..n().max(0) {
                read_reply_into(c, out);
            }
        }
        b'%' | b'|' => {
            for _ in 0..2 * n().max(0) {
                read_reply_into(c, out);
            }
        }
        other => panic!("unexpected RESP type byte {:?}", other as char),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn array(v: &Value) -> &Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        other => panic!("not an array: {other:?}"),
    }
}

/// Key/value pairs from a RESP3 map or a RESP2 flat array.
fn pairs(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Value::Array(a) => {
            assert!(a.len() % 2 == 0, "odd-length map array: {a:?}");
            a.chunks(2).map(|p| (text(&p[0]), p[1].clone())).collect()
        }
        other => panic!("not a map: {other:?}"),
    }
}

fn info(con: &mut Con, section: &str) -> String {
    if section.is_empty() {
        q(con, &["INFO"])
    } else {
        q(con, &["INFO", section])
    }
}

/// The value of `field:` in INFO output.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::to_string)
}

fn info_int(con: &mut Con, section: &str, field: &str) -> i64 {
    let i = info(con, section);
    info_field(&i, field)
        .unwrap_or_else(|| panic!("no {field} in INFO {section}: {i}"))
        .parse()
        .unwrap()
}

fn config_get(con: &mut Con, patterns: &[&str]) -> HashMap<String, String> {
    let mut args = vec!["CONFIG", "GET"];
    args.extend_from_slice(patterns);
    let v: Value = q(con, &args);
    pairs(&v).into_iter().map(|(k, v)| (k, text(&v))).collect()
}

fn config_get1(con: &mut Con, name: &str) -> String {
    config_get(con, &[name])
        .remove(name)
        .unwrap_or_else(|| panic!("CONFIG GET {name} returned nothing"))
}

/// Parses one CLIENT LIST / CLIENT INFO line into its fields.
fn client_fields(line: &str) -> HashMap<String, String> {
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn client_id(con: &mut Con) -> i64 {
    q(con, &["CLIENT", "ID"])
}

fn raw_client_id(c: &mut RawConn) -> i64 {
    c.send(b"CLIENT ID\r\n");
    let r = read_reply(c);
    std::str::from_utf8(&r[1..r.len() - 2])
        .unwrap()
        .parse()
        .unwrap()
}

fn raw_hello(c: &mut RawConn, req: &[u8]) -> Vec<u8> {
    c.send(req);
    read_reply(c)
}

/// Polls `f` until it returns true; fails the test after a generous
/// deadline.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const HELLO_SUFFIX: &[u8] = b"$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";
const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";

// ------------------------------------------------------ PING ECHO QUIT

#[test]
fn ping() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
    assert_eq!(q::<String>(&mut con, &["PING", "hello"]), "hello");
    assert_eq!(
        q_err(&mut con, &["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );

    // PONG is a simple string; with an argument it is a bulk string.
    let mut c = srv.raw();
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    c.roundtrip(b"PING hello\r\n", b"$5\r\nhello\r\n");
    c.roundtrip(b"PING \"\"\r\n", b"$0\r\n\r\n");
}

#[test]
fn echo() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(
        q::<String>(&mut con, &["ECHO", "hello world"]),
        "hello world"
    );
    let bin: Vec<u8> = redis::cmd("ECHO")
        .arg(&b"\x00\xff\r\n"[..])
        .query(&mut con)
        .unwrap();
    assert_eq!(bin, b"\x00\xff\r\n");
    assert_eq!(
        q_err(&mut con, &["ECHO"]),
        "ERR wrong number of arguments for 'echo' command"
    );
    srv.raw().roundtrip(b"ECHO \"\"\r\n", b"$0\r\n\r\n");
}

#[test]
fn quit_replies_ok_then_closes() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.send(b"QUIT\r\n");
    assert_eq!(c.read_to_close(), b"+OK\r\n");
    // Redis 7.0 ignores extra arguments to QUIT.
    let mut c = srv.raw();
    c.send(b"QUIT now\r\n");
    assert_eq!(c.read_to_close(), b"+OK\r\n");
}

// --------------------------------------------------------------- RESET

#[test]
fn reset_clears_db_name_and_protocol() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"SELECT 3\r\n", b"+OK\r\n");
    c.roundtrip(b"SET reset:k in-db-3\r\n", b"+OK\r\n");
    c.roundtrip(b"CLIENT SETNAME resetme\r\n", b"+OK\r\n");
    c.roundtrip(b"RESET\r\n", b"+RESET\r\n");
    c.roundtrip(b"CLIENT GETNAME\r\n", b"$-1\r\n");
    // Back in db 0, where the key does not exist.
    c.roundtrip(b"GET reset:k\r\n", b"$-1\r\n");
    c.send(b"CLIENT INFO\r\n");
    let reply = String::from_utf8(read_reply(&mut c)).unwrap();
    let f = client_fields(reply.split("\r\n").nth(1).unwrap());
    assert_eq!(f["db"], "0");
    assert_eq!(f["name"], "");
    c.roundtrip(b"SELECT 3\r\n", b"+OK\r\n");
    c.roundtrip(b"GET reset:k\r\n", b"$7\r\nin-db-3\r\n");

    // RESET also returns a RESP3 connection to RESP2.
    raw_hello(&mut c, b"HELLO 3\r\n");
    c.roundtrip(b"GET missing\r\n", b"_\r\n");
    c.roundtrip(b"RESET\r\n", b"+RESET\r\n");
    c.roundtrip(b"GET missing\r\n", b"$-1\r\n");

    c.roundtrip(
        b"RESET x\r\n",
        b"-ERR wrong number of arguments for 'reset' command\r\n",
    );
}

#[test]
fn reset_discards_multi() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    c.roundtrip(b"RESET\r\n", b"+RESET\r\n");
    c.roundtrip(b"EXEC\r\n", b"-ERR EXEC without MULTI\r\n");
}

// --------------------------------------------------------------- HELLO

#[test]
fn hello_without_arguments_describes_server() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let id = client_id(&mut con);
    let v: Value = q(&mut con, &["HELLO"]);
    // RESP2: a flat array of 7 key/value pairs, in this order.
    assert_eq!(array(&v).len(), 14);
    let p = pairs(&v);
    let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server", "version", "proto", "id", "mode", "role", "modules"
        ]
    );
    let m: HashMap<_, _> = p.into_iter().collect();
    assert_eq!(text(&m["server"]), "redis");
    // Clients use the version for feature detection: it must look like a
    // Redis 7 version.
    let version = text(&m["version"]);
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 7, "version {version}");
    assert_eq!(version.split('.').count(), 3, "version {version}");
    assert_eq!(int(&m["proto"]), 2);
    assert_eq!(int(&m["id"]), id);
    assert_eq!(text(&m["mode"]), "standalone");
    assert_eq!(text(&m["role"]), "master");
    assert_eq!(m["modules"], Value::Array(vec![]));

    // INFO reports the same version.
    assert_eq!(
        info_field(&info(&mut con, "server"), "redis_version").unwrap(),
        version
    );

    // Through a RESP3 connection HELLO is a real map.
    let mut con3 = srv.client_resp3();
    let v: Value = q(&mut con3, &["HELLO"]);
    assert!(matches!(v, Value::Map(_)), "{v:?}");
    let m: HashMap<_, _> = pairs(&v).into_iter().collect();
    assert_eq!(int(&m["proto"]), 3);
}

#[test]
fn hello_switches_protocol_raw() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let id = raw_client_id(&mut c);

    let r = raw_hello(&mut c, b"HELLO 3\r\n");
    let shown = String::from_utf8_lossy(&r).to_string();
    assert!(
        r.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$"),
        "{shown}"
    );
    let middle =
        format!("$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n");
    assert!(shown.contains(&middle), "{shown}");
    assert!(r.ends_with(HELLO_SUFFIX), "{shown}");
    // RESP3 null.
    c.roundtrip(b"GET missing\r\n", b"_\r\n");

    let r = raw_hello(&mut c, b"HELLO 2\r\n");
    assert!(r.starts_with(b"*14\r\n$6\r\nserver\r\n"));
    assert!(String::from_utf8_lossy(&r).contains("$5\r\nproto\r\n:2\r\n"));
    assert!(r.ends_with(HELLO_SUFFIX));
    c.roundtrip(b"GET missing\r\n", b"$-1\r\n");

    // HELLO with no version keeps the current protocol.
    raw_hello(&mut c, b"HELLO 3\r\n");
    let r = raw_hello(&mut c, b"HELLO\r\n");
    assert!(r.starts_with(b"%7\r\n"));
    c.roundtrip(b"GET missing\r\n", b"_\r\n");
}

#[test]
fn hello_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"HELLO 4\r\n", b"-NOPROTO unsupported protocol version\r\n");
    c.roundtrip(b"HELLO 1\r\n", b"-NOPROTO unsupported protocol version\r\n");
    c.roundtrip(b"HELLO 0\r\n", b"-NOPROTO unsupported protocol version\r\n");
    c.roundtrip(
        b"HELLO abc\r\n",
        b"-ERR Protocol version is not an integer or out of range\r\n",
    );
    c.roundtrip(
        b"HELLO 3 FOO\r\n",
        b"-ERR Syntax error in HELLO option 'FOO'\r\n",
    );
    // Options with missing values are reported the same way.
    c.roundtrip(
        b"HELLO 3 AUTH default\r\n",
        b"-ERR Syntax error in HELLO option 'AUTH'\r\n",
    );
    c.roundtrip(
        b"HELLO 3 SETNAME\r\n",
        b"-ERR Syntax error in HELLO option 'SETNAME'\r\n",
    );
    c.roundtrip(
        b"HELLO 3 SETNAME \"a b\"\r\n",
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    // None of the failed HELLOs changed the protocol.
    c.roundtrip(b"GET missing\r\n", b"$-1\r\n");
}

#[test]
fn hello_setname() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let r = raw_hello(&mut c, b"HELLO 3 SETNAME hello-name\r\n");
    assert!(r.starts_with(b"%7\r\n"));
    c.roundtrip(b"CLIENT GETNAME\r\n", b"$10\r\nhello-name\r\n");
    // Option names are case-insensitive.
    let r = raw_hello(&mut c, b"HELLO 2 setname other\r\n");
    assert!(r.starts_with(b"*14\r\n"));
    c.roundtrip(b"CLIENT GETNAME\r\n", b"$5\r\nother\r\n");
}

#[test]
fn hello_auth_without_password_configured() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // With no password set, the default user is "nopass": any password is
    // accepted for it, so HELLO AUTH succeeds rather than erroring.
    let r = raw_hello(&mut c, b"HELLO 2 AUTH default anything SETNAME n1\r\n");
    assert!(r.starts_with(b"*14\r\n"), "{}", String::from_utf8_lossy(&r));
    c.roundtrip(b"CLIENT GETNAME\r\n", b"$2\r\nn1\r\n");
    // A user that does not exist is refused.
    c.roundtrip(b"HELLO 3 AUTH bob x\r\n", WRONGPASS);
    c.roundtrip(b"GET missing\r\n", b"$-1\r\n");
}

// ---------------------------------------------------------------- AUTH

#[test]
fn auth_without_password_configured() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(
        q_err(&mut con, &["AUTH", "x"]),
        "ERR AUTH <password> called without any password configured for the \
         default user. Are you sure your configuration is correct?"
    );
    let mut c = srv.raw();
    c.roundtrip(
        b"AUTH x\r\n",
        b"-ERR AUTH <password> called without any password configured for the default user. \
          Are you sure your configuration is correct?\r\n",
    );
    // The two-argument form succeeds for the nopass default user.
    c.roundtrip(b"AUTH default whatever\r\n", b"+OK\r\n");
    c.roundtrip(b"AUTH bob x\r\n", WRONGPASS);
    c.roundtrip(b"AUTH a b c\r\n", b"-ERR syntax error\r\n");
    c.roundtrip(
        b"AUTH\r\n",
        b"-ERR wrong number of arguments for 'auth' command\r\n",
    );
}

#[test]
fn auth_with_requirepass_raw() {
    let srv = TestServer::start_with(&["--requirepass", "secret"]);
    let mut c = srv.raw();
    c.roundtrip(b"PING\r\n", NOAUTH);
    c.roundtrip(b"GET a\r\n", NOAUTH);
    c.roundtrip(b"CLIENT ID\r\n", NOAUTH);
    // Unknown commands and arity errors are reported before the auth check.
    c.roundtrip(
        b"FOO\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: \r\n",
    );
    c.roundtrip(
        b"GET\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.roundtrip(
        b"HELLO 3\r\n",
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
          HELLO AUTH <user> <pass> option can be used to authenticate the client and select \
          the RESP protocol version at the same time\r\n",
    );
    c.roundtrip(b"AUTH wrong\r\n", WRONGPASS);
    c.roundtrip(b"AUTH default wrong\r\n", WRONGPASS);
    c.roundtrip(b"AUTH bob secret\r\n", WRONGPASS);
    c.roundtrip(b"GET a\r\n", NOAUTH);
    c.roundtrip(b"AUTH secret\r\n", b"+OK\r\n");
    c.roundtrip(b"GET a\r\n", b"$-1\r\n");
    // RESET logs the connection out again.
    c.roundtrip(b"RESET\r\n", b"+RESET\r\n");
    c.roundtrip(b"GET a\r\n", NOAUTH);

    let mut c = srv.raw();
    c.roundtrip(b"AUTH default secret\r\n", b"+OK\r\n");
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");

    // HELLO can authenticate an unauthenticated connection.
    let mut c = srv.raw();
    c.roundtrip(b"HELLO 3 AUTH default wrong\r\n", WRONGPASS);
    let r = raw_hello(&mut c, b"HELLO 3 AUTH default secret\r\n");
    assert!(r.starts_with(b"%7\r\n"));
    c.roundtrip(b"GET a\r\n", b"_\r\n");

    // QUIT needs no authentication.
    let mut c = srv.raw();
    c.send(b"QUIT\r\n");
    assert_eq!(c.read_to_close(), b"+OK\r\n");
}

#[test]
fn auth_with_requirepass_redis_crate() {
    let srv = TestServer::start_with(&["--requirepass", "secret"]);
    let mut con = srv.client();
    assert_eq!(
        q_err(&mut con, &["GET", "a"]),
        "NOAUTH Authentication required."
    );
    let wrong = redis::Client::open(format!("redis://:nope@127.0.0.1:{}/", srv.port)).unwrap();
    assert!(wrong.get_connection().is_err());
    let good = redis::Client::open(format!("redis://:secret@127.0.0.1:{}/", srv.port)).unwrap();
    let mut con = good.get_connection().unwrap();
    let _: () = q(&mut con, &["SET", "a", "1"]);
    assert_eq!(q::<String>(&mut con, &["GET", "a"]), "1");
}

// -------------------------------------------------------- RESP3 types

#[test]
fn resp3_map_null_and_verbatim_raw() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    raw_hello(&mut c, b"HELLO 3\r\n");

    c.roundtrip(
        b"CONFIG GET maxmemory\r\n",
        b"%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
    );
    c.roundtrip(b"GET missing\r\n", b"_\r\n");
    c.roundtrip(b"CLIENT GETNAME\r\n", b"_\r\n");
    c.roundtrip(b"MGET missing missing\r\n", b"*2\r\n_\r\n_\r\n");
    // INFO is a verbatim string of format "txt" in RESP3.
    c.roundtrip(b"SET r3:k v\r\n", b"+OK\r\n");
    let body = "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
    let expected = format!("={}\r\ntxt:{body}\r\n", body.len() + 4);
    c.roundtrip(b"INFO keyspace\r\n", expected.as_bytes());
    // So is CLIENT INFO.
    c.send(b"CLIENT INFO\r\n");
    let r = String::from_utf8(read_reply(&mut c)).unwrap();
    assert!(r.starts_with('='), "{r}");
    assert!(r.contains("\r\ntxt:id="), "{r}");
    assert!(r.contains(" resp=3"), "{r}");
}

#[test]
fn resp3_incrbyfloat_is_bulk_not_double() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    raw_hello(&mut c, b"HELLO 3\r\n");
    // Redis 7 still sends INCRBYFLOAT's result as a bulk string in RESP3.
    c.roundtrip(b"INCRBYFLOAT r3:f 1.5\r\n", b"$3\r\n1.5\r\n");
    c.roundtrip(b"INCRBYFLOAT r3:f 1\r\n", b"$3\r\n2.5\r\n");
}

#[test]
fn resp3_set_map_and_double_raw() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    raw_hello(&mut c, b"HELLO 3\r\n");
    c.roundtrip(b"SADD r3:s a\r\n", b":1\r\n");
    c.roundtrip(b"SMEMBERS r3:s\r\n", b"~1\r\n$1\r\na\r\n");
    c.roundtrip(b"SMEMBERS r3:nosuch\r\n", b"~0\r\n");
    c.roundtrip(b"HSET r3:h f v\r\n", b":1\r\n");
    c.roundtrip(b"HGETALL r3:h\r\n", b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    c.roundtrip(b"HGETALL r3:nosuch\r\n", b"%0\r\n");
    c.roundtrip(b"ZADD r3:z 1.5 a\r\n", b":1\r\n");
    c.roundtrip(b"ZSCORE r3:z a\r\n", b",1.5\r\n");
}

#[test]
fn resp3_through_redis_crate() {
    let srv = TestServer::start();
    let mut con = srv.client_resp3();
    let v: Value = q(&mut con, &["CONFIG", "GET", "maxmemory"]);
    assert_eq!(
        v,
        Value::Map(vec![(
            Value::BulkString(b"maxmemory".to_vec()),
            Value::BulkString(b"0".to_vec())
        )])
    );
    assert_eq!(q::<Value>(&mut con, &["GET", "missing"]), Value::Nil);
    match q::<Value>(&mut con, &["INFO", "server"]) {
        Value::VerbatimString { format, text } => {
            assert_eq!(format, redis::VerbatimFormat::Text);
            assert!(text.starts_with("# Server\r\n"));
        }
        other => panic!("INFO is not verbatim in RESP3: {other:?}"),
    }
}

// -------------------------------------------------------------- CLIENT

#[test]
fn client_id_is_unique_and_increasing() {
    let srv = TestServer::start();
    let mut a = srv.client();
    let mut b = srv.client();
    let ia = client_id(&mut a);
    let ib = client_id(&mut b);
    assert!(ia > 0);
    assert!(ib > ia, "{ib} should be greater than {ia}");
    // Stable for the life of the connection.
    assert_eq!(client_id(&mut a), ia);
    let mut c = srv.raw();
    assert!(raw_client_id(&mut c) > ib);
}

#[test]
fn client_setname_getname() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(q::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]), None);
    let _: () = q(&mut con, &["CLIENT", "SETNAME", "worker-1"]);
    assert_eq!(
        q::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]).as_deref(),
        Some("worker-1")
    );

    for bad in ["a b", "a\nb"] {
        assert_eq!(
            q_err(&mut con, &["CLIENT", "SETNAME", bad]),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
    }
    // A failed SETNAME keeps the old name.
    assert_eq!(
        q::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]).as_deref(),
        Some("worker-1")
    );

    // The empty name clears it.
    let _: () = q(&mut con, &["CLIENT", "SETNAME", ""]);
    assert_eq!(q::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]), None);

    let mut c = srv.raw();
    c.roundtrip(b"CLIENT GETNAME\r\n", b"$-1\r\n");
    c.roundtrip(b"CLIENT SETNAME x\r\n", b"+OK\r\n");
    c.roundtrip(b"CLIENT GETNAME\r\n", b"$1\r\nx\r\n");
    // Subcommand arity errors name the container|subcommand pair.
    c.roundtrip(
        b"CLIENT SETNAME\r\n",
        b"-ERR wrong number of arguments for 'client|setname' command\r\n",
    );
    c.roundtrip(
        b"CLIENT SETNAME a b\r\n",
        b"-ERR wrong number of arguments for 'client|setname' command\r\n",
    );
}

#[test]
fn client_list_and_info() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let id = client_id(&mut con);
    let _: () = q(&mut con, &["CLIENT", "SETNAME", "lister"]);
    let _: () = q(&mut con, &["SELECT", "5"]);

    let mut other = srv.raw();
    other.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let other_addr = other.s.local_addr().unwrap().to_string();

    let list: String = q(&mut con, &["CLIENT", "LIST"]);
    assert!(list.ends_with('\n'), "{list:?}");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");

    let me = lines
        .iter()
        .map(|l| client_fields(l))
        .find(|f| f["name"] == "lister")
        .unwrap_or_else(|| panic!("own line missing: {list}"));
    assert_eq!(me["id"], id.to_string());
    assert!(me["addr"].starts_with("127.0.0.1:"), "{me:?}");
    assert_eq!(me["db"], "5");
    assert_eq!(me["cmd"], "client|list");

    let them = lines
        .iter()
        .map(|l| client_fields(l))
        .find(|f| f["addr"] == other_addr)
        .unwrap_or_else(|| panic!("raw client {other_addr} missing: {list}"));
    assert_eq!(them["name"], "");
    assert_eq!(them["db"], "0");
    assert_eq!(them["cmd"], "ping");
    // Field order as Redis prints it (tools parse these lines).
    let first_line = lines[0];
    assert!(first_line.starts_with("id="), "{first_line}");
    let pos = |k: &str| first_line.find(&format!(" {k}=")).unwrap();
    assert!(pos("addr") < pos("name"));
    assert!(pos("name") < pos("db"));
    assert!(pos("db") < pos("cmd"));

    // Filter by id.
    let one: String = q(&mut con, &["CLIENT", "LIST", "ID", &id.to_string()]);
    assert_eq!(one.lines().count(), 1);
    assert_eq!(client_fields(one.trim_end())["name"], "lister");

    // CLIENT INFO: the same format, just this connection.
    let info: String = q(&mut con, &["CLIENT", "INFO"]);
    assert!(info.ends_with('\n'));
    assert_eq!(info.lines().count(), 1);
    let f = client_fields(info.trim_end());
    assert_eq!(f["id"], id.to_string());
    assert_eq!(f["name"], "lister");
    assert_eq!(f["db"], "5");
    assert_eq!(f["cmd"], "client|info");
    assert_eq!(f["resp"], "2");
}

#[test]
fn client_kill_by_id_and_addr() {
    let srv = TestServer::start();
    let mut con = srv.client();

    // CLIENT KILL ID <id>: integer count, and the victim is disconnected.
    let mut victim = srv.raw();
    let vid = raw_client_id(&mut victim).to_string();
    assert_eq!(q::<i64>(&mut con, &["CLIENT", "KILL", "ID", &vid]), 1);
    assert_eq!(victim.read_to_close(), b"");
    assert_eq!(q::<i64>(&mut con, &["CLIENT", "KILL", "ID", &vid]), 0);

    // CLIENT KILL ADDR ip:port.
    let mut victim = srv.raw();
    victim.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let addr = victim.s.local_addr().unwrap().to_string();
    assert_eq!(q::<i64>(&mut con, &["CLIENT", "KILL", "ADDR", &addr]), 1);
    assert_eq!(victim.read_to_close(), b"");
    assert_eq!(q::<i64>(&mut con, &["CLIENT", "KILL", "ADDR", &addr]), 0);

    // The old form CLIENT KILL ip:port answers +OK or an error.
    let mut victim = srv.raw();
    victim.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let addr = victim.s.local_addr().unwrap().to_string();
    let mut c = srv.raw();
    c.roundtrip(format!("CLIENT KILL {addr}\r\n").as_bytes(), b"+OK\r\n");
    assert_eq!(victim.read_to_close(), b"");
    c.roundtrip(
        format!("CLIENT KILL {addr}\r\n").as_bytes(),
        b"-ERR No such client\r\n",
    );

    c.roundtrip(
        b"CLIENT KILL ID abc\r\n",
        b"-ERR client-id should be greater than 0\r\n",
    );
    c.roundtrip(b"CLIENT KILL FOO bar\r\n", b"-ERR syntax error\r\n");
    c.roundtrip(
        b"CLIENT KILL\r\n",
        b"-ERR wrong number of arguments for 'client|kill' command\r\n",
    );
}

#[test]
fn client_kill_self() {
    let srv = TestServer::start();
    // The filter forms skip the caller unless SKIPME no.
    let mut c = srv.raw();
    let id = raw_client_id(&mut c);
    c.roundtrip(format!("CLIENT KILL ID {id}\r\n").as_bytes(), b":0\r\n");
    let addr = c.s.local_addr().unwrap().to_string();
    c.roundtrip(format!("CLIENT KILL ADDR {addr}\r\n").as_bytes(), b":0\r\n");
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    c.send(format!("CLIENT KILL ID {id} SKIPME no\r\nPING\r\n").as_bytes());
    assert_eq!(c.read_to_close(), b":1\r\n");

    // The old form kills the caller too, after replying.
    let mut c = srv.raw();
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let addr = c.s.local_addr().unwrap().to_string();
    c.send(format!("CLIENT KILL {addr}\r\nPING\r\n").as_bytes());
    assert_eq!(c.read_to_close(), b"+OK\r\n");
}

#[test]
fn client_setinfo() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    if against_real_redis() {
        // CLIENT SETINFO arrived in Redis 7.2; 7.0.15 does not know it.
        c.roundtrip(
            b"CLIENT SETINFO lib-name mylib\r\n",
            b"-ERR unknown subcommand 'SETINFO'. Try CLIENT HELP.\r\n",
        );
    } else {
        // Redis 7.2 behaviour, which client libraries (the redis crate
        // included) send on every connect.
        c.roundtrip(b"CLIENT SETINFO lib-name mylib\r\n", b"+OK\r\n");
        c.roundtrip(b"CLIENT SETINFO lib-ver 1.2.3\r\n", b"+OK\r\n");
        c.roundtrip(b"CLIENT SETINFO LIB-NAME other\r\n", b"+OK\r\n");
    }
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn client_reply_on_off_skip() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // OFF silences everything, including its own reply, until ON, whose +OK
    // is sent.
    c.roundtrip(
        b"CLIENT REPLY OFF\r\nPING\r\nPING\r\nCLIENT REPLY ON\r\nPING\r\n",
        b"+OK\r\n+PONG\r\n",
    );
    // Commands still run while replies are off; errors are silenced too.
    c.roundtrip(
        b"CLIENT REPLY OFF\r\nSET reply:k v\r\nFOO\r\nCLIENT REPLY ON\r\nGET reply:k\r\n",
        b"+OK\r\n$1\r\nv\r\n",
    );
    // SKIP drops its own reply and the reply of the next command only.
    c.roundtrip(b"CLIENT REPLY SKIP\r\nPING\r\nECHO b\r\n", b"$1\r\nb\r\n");
    c.roundtrip(b"CLIENT REPLY ON\r\n", b"+OK\r\n");
    c.roundtrip(b"CLIENT REPLY FOO\r\n", b"-ERR syntax error\r\n");
}

#[test]
fn client_unknown_subcommand_and_no_evict() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // The subcommand is echoed as sent.
    c.roundtrip(
        b"CLIENT FOO\r\n",
        b"-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n",
    );
    c.roundtrip(
        b"CLIENT foo bar\r\n",
        b"-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n",
    );
    c.roundtrip(
        b"CLIENT\r\n",
        b"-ERR wrong number of arguments for 'client' command\r\n",
    );
    c.roundtrip(b"CLIENT NO-EVICT on\r\n", b"+OK\r\n");
    c.roundtrip(b"CLIENT NO-EVICT off\r\n", b"+OK\r\n");
    c.roundtrip(b"CLIENT NO-EVICT ON\r\n", b"+OK\r\n");
    c.roundtrip(b"CLIENT NO-EVICT maybe\r\n", b"-ERR syntax error\r\n");
}

// ---------------------------------------------------------------- INFO

#[test]
fn info_default_sections() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let i = info(&mut con, "");
    for field in [
        "redis_version",
        "redis_mode",
        "tcp_port",
        "uptime_in_seconds",
        "connected_clients",
        "used_memory",
        "maxmemory",
        "keyspace_hits",
        "keyspace_misses",
        "expired_keys",
        "evicted_keys",
        "total_commands_processed",
        "total_connections_received",
        "instantaneous_ops_per_sec",
        "role",
        "loading",
    ] {
        assert!(info_field(&i, field).is_some(), "INFO lacks {field}: {i}");
    }
    assert_eq!(info_field(&i, "redis_mode").unwrap(), "standalone");
    assert_eq!(info_field(&i, "tcp_port").unwrap(), srv.port.to_string());
    assert_eq!(info_field(&i, "role").unwrap(), "master");
    assert_eq!(info_field(&i, "loading").unwrap(), "0");
    let used: u64 = info_field(&i, "used_memory").unwrap().parse().unwrap();
    assert!(used > 0);
    // Lines end in CRLF; sections are separated by a blank line.
    assert!(i.starts_with("# Server\r\n"));
    assert!(i.contains("\r\n\r\n# Clients\r\n"));
    for header in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Keyspace",
    ] {
        assert!(i.lines().any(|l| l == header), "missing {header}");
    }
    // commandstats is not a default section.
    assert!(!i.contains("# Commandstats"));
    // INFO default lists the same sections (values may tick in between).
    let headers = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("# "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(headers(&info(&mut con, "default")), headers(&i));

    for all in ["all", "everything"] {
        let i = info(&mut con, all);
        assert!(i.contains("# Server\r\n"));
        assert!(i.contains("# Keyspace\r\n"));
        assert!(i.contains("# Commandstats\r\n"), "INFO {all}");
        assert!(i.contains("cmdstat_info:calls="), "INFO {all}");
    }
    // An unknown section yields an empty string, not an error.
    assert_eq!(info(&mut con, "nosuchsection"), "");
    srv.raw()
        .roundtrip(b"INFO nosuchsection\r\n", b"$0\r\n\r\n");
}

#[test]
fn info_connected_clients_counts_connections() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(info_int(&mut con, "clients", "connected_clients"), 1);
    let mut a = srv.raw();
    let mut b = srv.raw();
    a.roundtrip(b"PING\r\n", b"+PONG\r\n");
    b.roundtrip(b"PING\r\n", b"+PONG\r\n");
    assert_eq!(info_int(&mut con, "clients", "connected_clients"), 3);
    drop(a);
    // The server notices the close asynchronously.
    wait_for("connected_clients to drop to 2", || {
        info_int(&mut con, "clients", "connected_clients") == 2
    });
}

#[test]
fn info_single_section() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let i = info(&mut con, "server");
    assert!(i.starts_with("# Server\r\n"), "{i}");
    assert_eq!(i.lines().filter(|l| l.starts_with("# ")).count(), 1, "{i}");
    assert!(info_field(&i, "redis_version").is_some());
    assert!(info_field(&i, "connected_clients").is_none());
    // Section names are case-insensitive; several may be given.
    assert!(info(&mut con, "SERVER").starts_with("# Server\r\n"));
    let i: String = q(&mut con, &["INFO", "server", "clients"]);
    let headers: Vec<&str> = i.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(headers, ["# Server", "# Clients"]);
}

#[test]
fn info_keyspace() {
    let srv = TestServer::start();
    let mut con = srv.client();
    // An empty keyspace is just the header.
    assert_eq!(info(&mut con, "keyspace"), "# Keyspace\r\n");

    let _: () = q(&mut con, &["SET", "ks:a", "1"]);
    let _: () = q(&mut con, &["SET", "ks:b", "2", "EX", "1000"]);
    let i = info(&mut con, "keyspace");
    let line = i
        .lines()
        .find(|l| l.starts_with("db0:"))
        .unwrap_or_else(|| panic!("{i}"));
    assert!(line.starts_with("db0:keys=2,expires=1,avg_ttl="), "{line}");
    let _avg: u64 = line.rsplit('=').next().unwrap().parse().unwrap();

    // Other databases get their own line, in db order.
    let _: () = q(&mut con, &["SELECT", "2"]);
    let _: () = q(&mut con, &["SET", "ks:c", "3"]);
    let i = info(&mut con, "keyspace");
    let dbs: Vec<&str> = i.lines().skip(1).collect();
    assert_eq!(dbs.len(), 2, "{i}");
    assert!(dbs[0].starts_with("db0:keys=2,expires=1,avg_ttl="));
    assert_eq!(dbs[1], "db2:keys=1,expires=0,avg_ttl=0");
}

#[test]
fn info_keyspace_hits_and_misses() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "hm:a", "1"]);
    let hits0 = info_int(&mut con, "stats", "keyspace_hits");
    let misses0 = info_int(&mut con, "stats", "keyspace_misses");
    for _ in 0..3 {
        let _: Option<String> = q(&mut con, &["GET", "hm:a"]);
    }
    for _ in 0..2 {
        let _: Option<String> = q(&mut con, &["GET", "hm:missing"]);
    }
    // MGET counts one lookup per key.
    let _: Vec<Option<String>> = q(&mut con, &["MGET", "hm:a", "hm:missing"]);
    assert_eq!(info_int(&mut con, "stats", "keyspace_hits"), hits0 + 4);
    assert_eq!(info_int(&mut con, "stats", "keyspace_misses"), misses0 + 3);
}

/// Checks a `cmdstat_<name>:calls=..,usec=..,usec_per_call=..,
/// rejected_calls=..,failed_calls=..` line and returns (calls, rejected,
/// failed).
fn cmdstat(i: &str, name: &str) -> Option<(u64, u64, u64)> {
    let line = i
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:")))?;
    let fields: Vec<(&str, &str)> = line
        .split(',')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "calls",
            "usec",
            "usec_per_call",
            "rejected_calls",
            "failed_calls"
        ],
        "{line}"
    );
    let _usec: u64 = fields[1].1.parse().unwrap();
    // usec_per_call always has two decimals.
    let (whole, frac) = fields[2].1.split_once('.').expect("usec_per_call decimals");
    let _: u64 = whole.parse().unwrap();
    assert_eq!(frac.len(), 2, "{line}");
    Some((
        fields[0].1.parse().unwrap(),
        fields[3].1.parse().unwrap(),
        fields[4].1.parse().unwrap(),
    ))
}

#[test]
fn info_commandstats() {
    let srv = TestServer::start();
    let mut con = srv.client();
    for _ in 0..3 {
        let _: Option<String> = q(&mut con, &["GET", "cs:k"]);
    }
    let i = info(&mut con, "commandstats");
    assert!(i.starts_with("# Commandstats\r\n"), "{i}");
    assert_eq!(cmdstat(&i, "get"), Some((3, 0, 0)));
    // A command never called has no line.
    assert_eq!(cmdstat(&i, "incr"), None);

    // Arity errors are rejected calls (not counted in calls); runtime
    // errors such as WRONGTYPE are failed calls (counted in calls).
    assert_eq!(
        q_err(&mut con, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    let _: i64 = q(&mut con, &["RPUSH", "cs:list", "x"]);
    assert_eq!(
        q_err(&mut con, &["GET", "cs:list"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    let i = info(&mut con, "commandstats");
    assert_eq!(cmdstat(&i, "get"), Some((4, 1, 1)));
    // Subcommands are reported as container|subcommand.
    assert!(cmdstat(&i, "client|id").is_none());
    client_id(&mut con);
    let i = info(&mut con, "commandstats");
    assert_eq!(cmdstat(&i, "client|id"), Some((1, 0, 0)));
}

/// INFO errorstats counts error replies by code (the message's first
/// word), as Redis does; total_error_replies is their sum.
#[test]
fn info_errorstats_counts_errors_by_code() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["CONFIG", "RESETSTAT"]);
    assert_eq!(info(&mut con, "errorstats"), "# Errorstats\r\n");

    assert_eq!(
        q_err(&mut con, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    let _: i64 = q(&mut con, &["RPUSH", "es:list", "x"]);
    for _ in 0..2 {
        assert_eq!(
            q_err(&mut con, &["GET", "es:list"]),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
    }
    let mut c = srv.raw();
    c.roundtrip(
        b"FOO\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: \r\n",
    );
    // A command refused while queuing dooms the transaction: ERR, then
    // EXECABORT.
    c.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    c.roundtrip(
        b"GET\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.roundtrip(
        b"EXEC\r\n",
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    // Errors inside EXEC's reply count too.
    c.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    c.roundtrip(b"INCR es:list\r\n", b"+QUEUED\r\n");
    c.roundtrip(
        b"EXEC\r\n",
        b"*1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );

    assert_eq!(
        info(&mut con, "errorstats"),
        "# Errorstats\r\nerrorstat_ERR:count=3\r\nerrorstat_EXECABORT:count=1\r\nerrorstat_WRONGTYPE:count=3\r\n"
    );
    assert_eq!(info_int(&mut con, "stats", "total_error_replies"), 7);
    let _: () = q(&mut con, &["CONFIG", "RESETSTAT"]);
    assert_eq!(info(&mut con, "errorstats"), "# Errorstats\r\n");
}

// -------------------------------------------------------------- CONFIG

#[test]
fn config_get_patterns() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let m = config_get(&mut con, &["maxmemory"]);
    assert_eq!(m.len(), 1);
    assert_eq!(m["maxmemory"], "0");

    let m = config_get(&mut con, &["maxmemory*"]);
    for k in ["maxmemory", "maxmemory-policy", "maxmemory-samples"] {
        assert!(m.contains_key(k), "{k} missing from {m:?}");
    }
    assert!(m.keys().all(|k| k.starts_with("maxmemory")), "{m:?}");
    assert_eq!(m["maxmemory-policy"], "noeviction");

    let m = config_get(&mut con, &["*max*-policy"]);
    assert_eq!(m.keys().collect::<Vec<_>>(), ["maxmemory-policy"]);

    assert!(config_get(&mut con, &["nosuchparam"]).is_empty());

    // Several patterns at once. Redis 7.0 returns them in hash order, not
    // request order (here: port first), so compare as a map.
    let m = config_get(&mut con, &["maxmemory", "port"]);
    assert_eq!(m.len(), 2);
    assert_eq!(m["maxmemory"], "0");
    assert_eq!(m["port"], srv.port.to_string());

    // A parameter matched by two patterns is listed once.
    let v: Value = q(&mut con, &["CONFIG", "GET", "maxmemory*", "maxmemory"]);
    let names: Vec<String> = pairs(&v).into_iter().map(|(k, _)| k).collect();
    assert_eq!(names.iter().filter(|n| *n == "maxmemory").count(), 1);

    // Names match case-insensitively. (7.0 echoes the name as typed; do not
    // rely on the casing of the returned name.)
    let v: Value = q(&mut con, &["CONFIG", "GET", "MAXMEMORY"]);
    let p = pairs(&v);
    assert_eq!(p.len(), 1);
    assert!(p[0].0.eq_ignore_ascii_case("maxmemory"));
    assert_eq!(text(&p[0].1), "0");

    assert_eq!(
        q_err(&mut con, &["CONFIG", "GET"]),
        "ERR wrong number of arguments for 'config|get' command"
    );
}

#[test]
fn config_set_maxmemory_units() {
    let srv = TestServer::start();
    let mut con = srv.client();
    for (input, bytes) in [
        ("100mb", "104857600"),
        ("100MB", "104857600"),
        ("1gb", "1073741824"),
        ("10kb", "10240"),
        // Without the "b" the unit is decimal.
        ("10k", "10000"),
        ("2m", "2000000"),
        ("123456", "123456"),
        ("0", "0"),
    ] {
        let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", input]);
        assert_eq!(config_get1(&mut con, "maxmemory"), bytes, "{input}");
    }
    assert_eq!(info_int(&mut con, "memory", "maxmemory"), 0);
    let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", "1mb"]);
    assert_eq!(info_int(&mut con, "memory", "maxmemory"), 1048576);

    for bad in ["abc", "-1", "1.5mb", "100xb"] {
        assert_eq!(
            q_err(&mut con, &["CONFIG", "SET", "maxmemory", bad]),
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - \
             argument must be a memory value",
            "{bad}"
        );
    }
    // A failed SET leaves the old value.
    assert_eq!(config_get1(&mut con, "maxmemory"), "1048576");
}

#[test]
fn config_set_hz() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["CONFIG", "SET", "hz", "50"]);
    assert_eq!(config_get1(&mut con, "hz"), "50");
    assert_eq!(info_int(&mut con, "server", "hz"), 50);
    // Out-of-range values are accepted and clamped to 1..=500.
    let _: () = q(&mut con, &["CONFIG", "SET", "hz", "1000"]);
    assert_eq!(config_get1(&mut con, "hz"), "500");
    let _: () = q(&mut con, &["CONFIG", "SET", "hz", "0"]);
    assert_eq!(config_get1(&mut con, "hz"), "1");
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "hz", "abc"]),
        "ERR CONFIG SET failed (possibly related to argument 'hz') - \
         argument couldn't be parsed into an integer"
    );
}

#[test]
fn config_set_maxmemory_policy() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    assert_eq!(config_get1(&mut con, "maxmemory-policy"), "allkeys-lru");
    assert_eq!(
        info_field(&info(&mut con, "memory"), "maxmemory_policy").unwrap(),
        "allkeys-lru"
    );
    // Enum values are case-insensitive and read back in lower case.
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "ALLKEYS-LFU"],
    );
    assert_eq!(config_get1(&mut con, "maxmemory-policy"), "allkeys-lfu");
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "maxmemory-policy", "bogus"]),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - \
         argument(s) must be one of the following: volatile-lru, volatile-lfu, \
         volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
    );
    assert_eq!(config_get1(&mut con, "maxmemory-policy"), "allkeys-lfu");
}

#[test]
fn config_set_several_params_atomically() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["CONFIG", "SET", "hz", "20", "maxmemory", "2mb"]);
    assert_eq!(config_get1(&mut con, "hz"), "20");
    assert_eq!(config_get1(&mut con, "maxmemory"), "2097152");

    // One bad value fails the whole command: hz stays 20.
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "hz", "30", "maxmemory", "bad"]),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - \
         argument must be a memory value"
    );
    assert_eq!(config_get1(&mut con, "hz"), "20");

    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "hz", "20", "hz", "30"]),
        "ERR CONFIG SET failed (possibly related to argument 'hz') - duplicate parameter"
    );
    // A dangling name after complete pairs.
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "hz", "1", "maxmemory"]),
        "ERR syntax error"
    );
}

#[test]
fn config_set_errors() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "nosuch", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "daemonize", "yes"]),
        "ERR CONFIG SET failed (possibly related to argument 'daemonize') - \
         can't set immutable config"
    );
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "hz"]),
        "ERR wrong number of arguments for 'config|set' command"
    );
    assert_eq!(
        q_err(&mut con, &["CONFIG", "FOO"]),
        "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
    );
    assert_eq!(
        q_err(&mut con, &["CONFIG"]),
        "ERR wrong number of arguments for 'config' command"
    );
}

#[test]
fn config_resetstat() {
    let srv = TestServer::start();
    // Connect before the reset so the redis crate's own connection setup
    // does not show up in the counters afterwards.
    let mut con = srv.client();
    let mut c = srv.raw();
    c.roundtrip(b"SET rs:k 1\r\n", b"+OK\r\n");
    c.roundtrip(b"GET rs:k\r\n", b"$1\r\n1\r\n");
    c.roundtrip(b"GET rs:nope\r\n", b"$-1\r\n");
    c.roundtrip(
        b"FOO\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: \r\n",
    );
    assert!(info_int(&mut con, "stats", "keyspace_hits") > 0);
    assert!(info_int(&mut con, "stats", "total_error_replies") > 0);
    c.roundtrip(b"CONFIG RESETSTAT\r\n", b"+OK\r\n");

    let stats = info(&mut con, "stats");
    assert_eq!(info_field(&stats, "keyspace_hits").unwrap(), "0");
    assert_eq!(info_field(&stats, "keyspace_misses").unwrap(), "0");
    assert_eq!(info_field(&stats, "total_error_replies").unwrap(), "0");
    assert_eq!(info_field(&stats, "expired_keys").unwrap(), "0");
    let cs = info(&mut con, "commandstats");
    assert_eq!(cmdstat(&cs, "get"), None, "{cs}");
    assert_eq!(cmdstat(&cs, "set"), None, "{cs}");
    // Keys are not statistics.
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 1);

    // The counter restarts from the reset: RESETSTAT itself is the first
    // command counted, and a command is counted once it has finished, so
    // an INFO right after sees 1.
    c.roundtrip(b"CONFIG RESETSTAT\r\n", b"+OK\r\n");
    c.send(b"INFO stats\r\n");
    let r = String::from_utf8(read_reply(&mut c)).unwrap();
    assert_eq!(info_field(&r, "total_commands_processed").unwrap(), "1");

    assert_eq!(
        q_err(&mut con, &["CONFIG", "RESETSTAT", "x"]),
        "ERR wrong number of arguments for 'config|resetstat' command"
    );
}

// ------------------------------------------------------------- COMMAND

/// One COMMAND INFO entry: (name, arity, flags, first key, last key, step).
fn command_entry(v: &Value) -> (String, i64, Vec<String>, i64, i64, i64) {
    let a = array(v);
    assert!(a.len() >= 7, "short COMMAND INFO entry {a:?}");
    (
        text(&a[0]),
        int(&a[1]),
        array(&a[2]).iter().map(text).collect(),
        int(&a[3]),
        int(&a[4]),
        int(&a[5]),
    )
}

#[test]
fn command_count_and_list() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let count: i64 = q(&mut con, &["COMMAND", "COUNT"]);
    assert!(count > 50, "COMMAND COUNT {count}");
    // Plain COMMAND describes every command.
    let all: Vec<Value> = q(&mut con, &["COMMAND"]);
    assert_eq!(all.len() as i64, count);

    let list: Vec<String> = q(&mut con, &["COMMAND", "LIST"]);
    for name in ["get", "set", "ping", "config", "client"] {
        assert!(list.iter().any(|n| n == name), "{name} not in COMMAND LIST");
    }
    // Names are lower case.
    assert!(list.iter().all(|n| *n == n.to_lowercase()));
}

#[test]
fn command_info() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let v: Vec<Value> = q(
        &mut con,
        &[
            "COMMAND",
            "INFO",
            "get",
            "set",
            "mget",
            "MSET",
            "nosuchcommand",
        ],
    );
    assert_eq!(v.len(), 5);

    let (name, arity, flags, first, last, step) = command_entry(&v[0]);
    assert_eq!(name, "get");
    assert_eq!(arity, 2);
    assert!(flags.contains(&"readonly".to_string()), "{flags:?}");
    assert!(flags.contains(&"fast".to_string()), "{flags:?}");
    assert_eq!((first, last, step), (1, 1, 1));

    let (name, arity, flags, first, last, step) = command_entry(&v[1]);
    assert_eq!(name, "set");
    assert_eq!(arity, -3);
    assert!(flags.contains(&"write".to_string()), "{flags:?}");
    assert!(flags.contains(&"denyoom".to_string()), "{flags:?}");
    assert_eq!((first, last, step), (1, 1, 1));

    let (name, arity, _, first, last, step) = command_entry(&v[2]);
    assert_eq!(name, "mget");
    assert_eq!(arity, -2);
    assert_eq!((first, last, step), (1, -1, 1));

    // The name comes back in lower case whatever was asked.
    let (name, arity, flags, first, last, step) = command_entry(&v[3]);
    assert_eq!(name, "mset");
    assert_eq!(arity, -3);
    assert!(flags.contains(&"write".to_string()), "{flags:?}");
    assert_eq!((first, last, step), (1, -1, 2));

    assert_eq!(v[4], Value::Nil);

    // Wire format: flags are status strings, an unknown command is a nil
    // bulk inside the array.
    let mut c = srv.raw();
    c.send(b"COMMAND INFO get\r\n");
    let r = read_reply(&mut c);
    assert!(
        r.starts_with(
            b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"
        ),
        "{}",
        String::from_utf8_lossy(&r)
    );
    c.roundtrip(b"COMMAND INFO nosuchcommand\r\n", b"*1\r\n$-1\r\n");
    c.roundtrip(
        b"COMMAND FOO\r\n",
        b"-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n",
    );
}

#[test]
fn command_docs() {
    let srv = TestServer::start();
    let mut con = srv.client_resp3();
    let v: Value = q(&mut con, &["COMMAND", "DOCS", "get"]);
    let outer = pairs(&v);
    assert_eq!(outer.len(), 1);
    assert_eq!(outer[0].0, "get");
    assert!(matches!(outer[0].1, Value::Map(_)), "{:?}", outer[0].1);
    let docs: HashMap<_, _> = pairs(&outer[0].1).into_iter().collect();
    // The summary text changed between 7.0 ("Get the value of a key") and
    // 7.2; only require that there is one.
    assert!(!text(&docs["summary"]).is_empty());
    assert_eq!(text(&docs["group"]), "string");
    assert!(docs.contains_key("since"));
    assert!(docs.contains_key("complexity"));

    // RESP2: the same as flat arrays.
    let mut con2 = srv.client();
    let v: Value = q(&mut con2, &["COMMAND", "DOCS", "get"]);
    let outer = pairs(&v);
    assert_eq!(outer[0].0, "get");
    assert!(pairs(&outer[0].1).iter().any(|(k, _)| k == "summary"));

    // Unknown commands are left out rather than returned as nil.
    let v: Value = q(&mut con2, &["COMMAND", "DOCS", "nosuchcommand"]);
    assert_eq!(v, Value::Array(vec![]));
}

// ---------------------------------------------------------------- TIME

#[test]
fn time() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let (secs, micros): (u64, u64) = q(&mut con, &["TIME"]);
    assert!(micros < 1_000_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Same host, same clock: a sanity bound, not a latency check.
    assert!(secs.abs_diff(now) < 600, "server {secs}, local {now}");

    // Both numbers are bulk strings, not integers.
    let mut c = srv.raw();
    c.send(b"TIME\r\n");
    let r = String::from_utf8(read_reply(&mut c)).unwrap();
    let parts: Vec<&str> = r.split("\r\n").collect();
    assert_eq!(parts[0], "*2");
    assert_eq!(parts[1], format!("${}", parts[2].len()));
    assert_eq!(parts[3], format!("${}", parts[4].len()));
    parts[2].parse::<u64>().unwrap();
    parts[4].parse::<u64>().unwrap();
    c.roundtrip(
        b"TIME x\r\n",
        b"-ERR wrong number of arguments for 'time' command\r\n",
    );
}

// --------------------------------------------------------------- DEBUG

#[test]
fn debug_sleep_and_unknown_subcommand() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"DEBUG SLEEP 0\r\n", b"+OK\r\n");
    c.roundtrip(b"DEBUG SLEEP 0.01\r\n", b"+OK\r\n");
    c.roundtrip(
        b"DEBUG FOO\r\n",
        b"-ERR unknown subcommand or wrong number of arguments for 'FOO'. Try DEBUG HELP.\r\n",
    );
    // A known subcommand with the wrong arity gets the same message.
    c.roundtrip(
        b"DEBUG SLEEP\r\n",
        b"-ERR unknown subcommand or wrong number of arguments for 'SLEEP'. Try DEBUG HELP.\r\n",
    );
}

#[test]
fn debug_set_active_expire() {
    let srv = TestServer::start_with(&["--hz", "100"]);
    let mut con = srv.client();
    let _: () = q(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let _: () = q(&mut con, &["SET", "ae:k", "v", "PX", "10"]);
    // Let the TTL pass; with active expiry off nothing removes the key
    // until it is touched, so DBSIZE still counts it.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 1);
    assert_eq!(info_int(&mut con, "stats", "expired_keys"), 0);
    // A read expires it lazily.
    assert_eq!(q::<Option<String>>(&mut con, &["GET", "ae:k"]), None);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(info_int(&mut con, "stats", "expired_keys"), 1);

    // Back on, the server removes expired keys by itself.
    let _: () = q(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    let _: () = q(&mut con, &["SET", "ae:k2", "v", "PX", "10"]);
    wait_for("active expiry of ae:k2", || {
        q::<i64>(&mut con, &["DBSIZE"]) == 0
    });
    assert_eq!(info_int(&mut con, "stats", "expired_keys"), 2);
}

#[test]
fn debug_object() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "do:k", "hello"]);
    let line: String = q(&mut con, &["DEBUG", "OBJECT", "do:k"]);
    // e.g. "Value at:0x7f3f453aa560 refcount:1 encoding:embstr
    // serializedlength:6 lru:297431 lru_seconds_idle:0"
    let rest = line
        .strip_prefix("Value at:")
        .unwrap_or_else(|| panic!("{line}"));
    let fields: Vec<(&str, &str)> = rest
        .split(' ')
        .skip(1)
        .map(|kv| kv.split_once(':').unwrap_or_else(|| panic!("{line}")))
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "refcount",
            "encoding",
            "serializedlength",
            "lru",
            "lru_seconds_idle"
        ],
        "{line}"
    );
    let f: HashMap<_, _> = fields.into_iter().collect();
    assert_eq!(f["refcount"], "1");
    assert_eq!(f["encoding"], "embstr");
    f["serializedlength"].parse::<u64>().unwrap();
    f["lru"].parse::<u64>().unwrap();
    f["lru_seconds_idle"].parse::<u64>().unwrap();

    let _: () = q(&mut con, &["SET", "do:n", "12345678"]);
    let line: String = q(&mut con, &["DEBUG", "OBJECT", "do:n"]);
    assert!(line.contains(" encoding:int "), "{line}");

    // It is a status reply on the wire.
    let mut c = srv.raw();
    c.send(b"DEBUG OBJECT do:k\r\n");
    assert!(read_reply(&mut c).starts_with(b"+Value at:"));
    c.roundtrip(b"DEBUG OBJECT nosuch\r\n", b"-ERR no such key\r\n");
}

// -------------------------------------------------------------- OBJECT

fn encoding(con: &mut Con, key: &str) -> String {
    q(con, &["OBJECT", "ENCODING", key])
}

#[test]
fn object_encoding_of_strings() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let long44 = "x".repeat(44);
    let long45 = "x".repeat(45);
    for (key, value, enc) in [
        ("oe:int", "123", "int"),
        ("oe:neg", "-5", "int"),
        ("oe:max", "9223372036854775807", "int"),
        ("oe:min", "-9223372036854775808", "int"),
        // Strings that are not canonical 64-bit integers stay strings.
        ("oe:over", "9223372036854775808", "embstr"),
        ("oe:lead0", "01", "embstr"),
        ("oe:space", " 1", "embstr"),
        ("oe:short", "hello", "embstr"),
        // 44 bytes is the largest embedded string.
        ("oe:44", long44.as_str(), "embstr"),
        ("oe:45", long45.as_str(), "raw"),
    ] {
        let _: () = q(&mut con, &["SET", key, value]);
        assert_eq!(
            encoding(&mut con, key),
            enc,
            "OBJECT ENCODING for {value:?}"
        );
    }
    // APPEND to an existing string makes it raw (APPEND creating a new key
    // gives an ordinary embstr); INCR yields an int.
    let _: i64 = q(&mut con, &["APPEND", "oe:new", "x"]);
    assert_eq!(encoding(&mut con, "oe:new"), "embstr");
    let _: i64 = q(&mut con, &["APPEND", "oe:new", "y"]);
    assert_eq!(encoding(&mut con, "oe:new"), "raw");
    let _: i64 = q(&mut con, &["INCR", "oe:incr"]);
    assert_eq!(encoding(&mut con, "oe:incr"), "int");

    assert_eq!(
        q::<Option<String>>(&mut con, &["OBJECT", "ENCODING", "oe:missing"]),
        None
    );

    let mut c = srv.raw();
    c.roundtrip(b"OBJECT ENCODING oe:int\r\n", b"$3\r\nint\r\n");
    c.roundtrip(b"OBJECT ENCODING oe:missing\r\n", b"$-1\r\n");
    c.roundtrip(
        b"OBJECT FOO x\r\n",
        b"-ERR unknown subcommand 'FOO'. Try OBJECT HELP.\r\n",
    );
    c.roundtrip(
        b"OBJECT ENCODING\r\n",
        b"-ERR wrong number of arguments for 'object|encoding' command\r\n",
    );
}

#[test]
fn object_idletime() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "oi:k", "v"]);
    let idle: i64 = q(&mut con, &["OBJECT", "IDLETIME", "oi:k"]);
    assert!(idle >= 0);
    // OBJECT itself does not touch the key, so idle time grows.
    std::thread::sleep(Duration::from_millis(2500));
    let idle: i64 = q(&mut con, &["OBJECT", "IDLETIME", "oi:k"]);
    assert!(idle >= 1, "idle {idle} after 2.5 s");
    assert_eq!(
        q::<Option<i64>>(&mut con, &["OBJECT", "IDLETIME", "oi:missing"]),
        None
    );

    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    assert_eq!(
        q_err(&mut con, &["OBJECT", "IDLETIME", "oi:k"]),
        "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that \
         when switching between policies at runtime LRU and LFU data will take some time \
         to adjust."
    );
}

#[test]
fn object_freq() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "of:k", "v"]);
    let not_lfu = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                   Please note that when switching between policies at runtime LRU and LFU \
                   data will take some time to adjust.";
    // The default policy (noeviction) is not LFU either.
    assert_eq!(q_err(&mut con, &["OBJECT", "FREQ", "of:k"]), not_lfu);
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    assert_eq!(q_err(&mut con, &["OBJECT", "FREQ", "of:k"]), not_lfu);
    // A missing key is nil before the policy is even checked.
    assert_eq!(
        q::<Option<i64>>(&mut con, &["OBJECT", "FREQ", "of:missing"]),
        None
    );

    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    let _: () = q(&mut con, &["SET", "of:k2", "v"]);
    let freq: i64 = q(&mut con, &["OBJECT", "FREQ", "of:k2"]);
    assert!((0..=255).contains(&freq), "freq {freq}");
}

#[test]
fn object_refcount() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "or:s", "hello"]);
    assert_eq!(q::<i64>(&mut con, &["OBJECT", "REFCOUNT", "or:s"]), 1);
    // Small integers (0..=9999) share one preallocated object whose
    // refcount Redis reports as INT_MAX while maxmemory is off.
    let _: () = q(&mut con, &["SET", "or:i", "123"]);
    assert_eq!(
        q::<i64>(&mut con, &["OBJECT", "REFCOUNT", "or:i"]),
        2147483647
    );
    let _: () = q(&mut con, &["SET", "or:big", "10000"]);
    assert_eq!(q::<i64>(&mut con, &["OBJECT", "REFCOUNT", "or:big"]), 1);
    assert_eq!(
        q::<Option<i64>>(&mut con, &["OBJECT", "REFCOUNT", "or:missing"]),
        None
    );
}

// -------------------------------------------------------------- MEMORY

#[test]
fn memory_usage() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "mu:k", "hello"]);
    let n: i64 = q(&mut con, &["MEMORY", "USAGE", "mu:k"]);
    assert!(n > 0);
    // A bigger value needs at least its own size.
    let big = "x".repeat(10_000);
    let _: () = q(&mut con, &["SET", "mu:big", &big]);
    let n: i64 = q(&mut con, &["MEMORY", "USAGE", "mu:big"]);
    assert!(n >= 10_000, "{n}");
    let n: i64 = q(&mut con, &["MEMORY", "USAGE", "mu:k", "SAMPLES", "5"]);
    assert!(n > 0);
    assert_eq!(
        q::<Option<i64>>(&mut con, &["MEMORY", "USAGE", "mu:missing"]),
        None
    );

    let mut c = srv.raw();
    c.roundtrip(b"MEMORY USAGE mu:missing\r\n", b"$-1\r\n");
    c.roundtrip(b"MEMORY USAGE mu:k FOO\r\n", b"-ERR syntax error\r\n");
    c.roundtrip(
        b"MEMORY USAGE\r\n",
        b"-ERR wrong number of arguments for 'memory|usage' command\r\n",
    );
    c.roundtrip(
        b"MEMORY FOO\r\n",
        b"-ERR unknown subcommand 'FOO'. Try MEMORY HELP.\r\n",
    );
    // MEMORY PURGE hands the allocator's dirty pages back (scripts/memory.sh
    // uses it before reading RSS, on both servers).
    c.roundtrip(b"MEMORY PURGE\r\n", b"+OK\r\n");
    c.roundtrip(
        b"MEMORY PURGE now\r\n",
        b"-ERR wrong number of arguments for 'memory|purge' command\r\n",
    );
}

// ------------------------------------------------------------ SHUTDOWN

fn process_exited(pid: u32) -> bool {
    // TestServer has not reaped the child yet, so an exited server is a
    // zombie ('Z') rather than gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap().trim_start().chars().next();
            matches!(state, Some('Z') | Some('X'))
        }
    }
}

#[test]
fn shutdown_nosave() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"SHUTDOWN FOO\r\n", b"-ERR syntax error\r\n");
    c.roundtrip(b"SHUTDOWN NOSAVE SAVE\r\n", b"-ERR syntax error\r\n");
    assert!(!process_exited(srv.pid()));
    // On success there is no reply: the connection just closes.
    c.send(b"SHUTDOWN NOSAVE\r\n");
    assert_eq!(c.read_to_close(), b"");
    wait_for("server process to exit", || process_exited(srv.pid()));
}
