//! Transactions: MULTI/EXEC/DISCARD, WATCH/UNWATCH, how they show up in
//! INFO commandstats, and the atomicity of multi-key commands and EXEC
//! when the keyspace is split across shards.
//!
//! Every expectation here was confirmed against redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server`. Against ferrocache the
//! server runs with `--shards 4` so that keys routinely live in different
//! shards (and different locks); real Redis has no such flag.

mod common;
use common::*;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, Value};

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
const NESTED: &str = "ERR MULTI calls can not be nested";
const EXEC_WITHOUT: &str = "ERR EXEC without MULTI";
const DISCARD_WITHOUT: &str = "ERR DISCARD without MULTI";
const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

const SHARDS: u16 = 4;

/// Starts the server under test; ferrocache gets four shards so that
/// the multi-key paths (locking several shards, WATCH flags in several
/// shards) are exercised.
fn start() -> TestServer {
    if against_real_redis() {
        TestServer::start()
    } else {
        TestServer::start_with(&["--shards", &SHARDS.to_string()])
    }
}

// ---------------------------------------------------------------------------
// Key slots: ferrocache puts a key in shard `slot % shards`, where `slot` is
// the Redis Cluster hash slot (CRC16/XMODEM of the key or its {tag}).

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn key_slot(key: &str) -> u16 {
    let k = key.as_bytes();
    let tagged = k.iter().position(|&c| c == b'{').and_then(|open| {
        let len = k[open + 1..].iter().position(|&c| c == b'}')?;
        (len > 0).then(|| &k[open + 1..open + 1 + len])
    });
    crc16(tagged.unwrap_or(k)) & 16383
}

fn shard_of(key: &str) -> u16 {
    key_slot(key) % SHARDS
}

/// `n` keys named `prefix:i` that all fall in different shards, so a
/// command over them must take several shard locks.
fn keys_in_distinct_shards(prefix: &str, n: usize) -> Vec<String> {
    assert!(n <= SHARDS as usize);
    let mut keys: Vec<String> = Vec::new();
    for i in 0.. {
        let k = format!("{prefix}:{i}");
        if keys.iter().all(|o| shard_of(o) != shard_of(&k)) {
            keys.push(k);
            if keys.len() == n {
                break;
            }
        }
    }
    let shards: HashSet<u16> = keys.iter().map(|k| shard_of(k)).collect();
    assert_eq!(shards.len(), n, "keys {keys:?} must span {n} shards");
    keys
}

#[test]
fn slot_function_matches_redis_cluster() {
    // Reference values from the Redis Cluster specification.
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(key_slot("foo"), 12182);
    assert_eq!(key_slot("{user1000}.following"), 3443);
    assert_eq!(key_slot("{user1000}.followers"), 3443);
    let ks = keys_in_distinct_shards("t", 4);
    assert_eq!(
        ks.iter().map(|k| shard_of(k)).collect::<HashSet<_>>().len(),
        4
    );
}

/// Against ferrocache, checks the server really runs with the shard
/// count the key choice assumes.
fn assert_sharded(con: &mut Connection) {
    if against_real_redis() {
        return;
    }
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("shards")
        .query(con)
        .unwrap();
    assert_eq!(v, vec!["shards".to_string(), SHARDS.to_string()]);
}

// ---------------------------------------------------------------------------
// A raw RESP connection that reads exactly one reply per command, so an
// unexpected reply shows up as a readable assertion failure rather than a
// read timeout.

struct Resp {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Resp {
    fn new(srv: &TestServer) -> Resp {
        let raw = srv.raw();
        let w = raw.s.try_clone().unwrap();
        Resp {
            w,
            r: BufReader::new(raw.s),
        }
    }

    fn send(&mut self, args: &[&str]) {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.w.write_all(&resp_cmd(&bytes)).unwrap();
    }

    /// Sends a command and returns its reply exactly as sent on the wire.
    fn call(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read_reply()
    }

    /// Sends a command and asserts its exact reply bytes.
    fn expect(&mut self, args: &[&str], reply: &str) {
        assert_eq!(self.call(args), reply, "reply to {args:?}");
    }

    fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        self.r
            .read_until(b'\n', &mut line)
            .expect("read reply line");
        assert!(
            line.ends_with(b"\r\n"),
            "connection closed or bad line: {:?}",
            String::from_utf8_lossy(&line)
        );
        String::from_utf8_lossy(&line).into_owned()
    }

    fn read_reply(&mut self) -> String {
        let line = self.read_line();
        let n = || line[1..line.len() - 2].parse::<i64>().expect("length");
        let mut out = line.clone();
        match line.as_bytes()[0] {
            b'$' | b'=' | b'!' if n() >= 0 => {
                let mut body = vec![0u8; n() as usize + 2];
                self.r.read_exact(&mut body).unwrap();
                out.push_str(&String::from_utf8_lossy(&body));
            }
            b'*' | b'~' | b'>' => {
                for _ in 0..n().max(0) {
                    out.push_str(&self.read_reply());
                }
            }
            b'%' | b'|' => {
                for _ in 0..2 * n().max(0) {
                    out.push_str(&self.read_reply());
                }
            }
            _ => {}
        }
        out
    }
}

// ---------------------------------------------------------------------------
// redis-crate helpers.

fn q(con: &mut Connection, args: &[&str]) -> Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Ok(Value::ServerError(e)) => panic!("{args:?} failed: {e:?}"),
        Ok(v) => v,
        Err(e) => panic!("{args:?} failed: {e}"),
    }
}

/// The full text of a server error (code and message, exactly as Redis
/// sends it after the `-`). The redis crate splits the line at the first
/// space into code and detail; joining them back gives the original.
fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => panic!("not a server error: {e}"),
    }
}

fn err(con: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Ok(Value::ServerError(e)) => match e.details() {
            Some(d) => format!("{} {d}", e.code()),
            None => e.code().to_string(),
        },
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
        Err(e) => error_text(&e),
    }
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn queued() -> Value {
    Value::SimpleString("QUEUED".into())
}

/// `(calls, rejected_calls, failed_calls)` of one command from INFO
/// commandstats; a command never seen has no line and counts as zeros.
fn cmdstat(con: &mut Connection, name: &str) -> (u64, u64, u64) {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let prefix = format!("cmdstat_{name}:");
    let Some(line) = info.lines().find(|l| l.starts_with(&prefix)) else {
        return (0, 0, 0);
    };
    let field = |f: &str| -> u64 {
        line[prefix.len()..]
            .split(',')
            .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {f} in {line}"))
            .parse()
            .unwrap()
    };
    (
        field("calls"),
        field("rejected_calls"),
        field("failed_calls"),
    )
}

fn client_id(con: &mut Connection) -> i64 {
    redis::cmd("CLIENT").arg("ID").query(con).unwrap()
}

/// Polls until CLIENT LIST no longer shows connection `id`: the server
/// has processed that client's disconnect.
fn wait_client_gone(con: &mut Connection, id: i64) {
    let needle = format!("id={id} ");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(con).unwrap();
        if !list.lines().any(|l| l.starts_with(&needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "client {id} still listed after 20s"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// MULTI / EXEC basics.

#[test]
fn multi_queues_and_exec_replies_in_order() {
    let srv = start();
    let mut c = Resp::new(&srv);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "mq:a", "1"], "+QUEUED\r\n");
    c.expect(&["INCR", "mq:a"], "+QUEUED\r\n");
    c.expect(&["GET", "mq:a"], "+QUEUED\r\n");
    c.expect(&["GET", "mq:missing"], "+QUEUED\r\n");
    c.expect(&["RPUSH", "mq:list", "x", "y"], "+QUEUED\r\n");
    c.expect(&["LRANGE", "mq:list", "0", "-1"], "+QUEUED\r\n");
    // Nothing ran yet: another client still sees no key.
    let mut other = srv.client();
    assert_eq!(q(&mut other, &["EXISTS", "mq:a"]), Value::Int(0));
    c.expect(
        &["EXEC"],
        "*6\r\n+OK\r\n:2\r\n$1\r\n2\r\n$-1\r\n:2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n",
    );
    assert_eq!(q(&mut other, &["GET", "mq:a"]), bulk("2"));

    // An empty transaction is an empty array, not a null.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["EXEC"], "*0\r\n");

    // SELECT inside MULTI applies to the commands queued after it, and
    // the connection stays on that database after EXEC.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SELECT", "1"], "+QUEUED\r\n");
    c.expect(&["SET", "mq:db", "one"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*2\r\n+OK\r\n+OK\r\n");
    c.expect(&["GET", "mq:db"], "$3\r\none\r\n");
    assert_eq!(q(&mut other, &["EXISTS", "mq:db"]), Value::Int(0));

    // The same through the redis crate: MULTI/EXEC around a pipeline.
    let mut con = srv.client();
    let (a, b, got): (i64, i64, Vec<Option<String>>) = redis::pipe()
        .atomic()
        .set("mq:p1", "5")
        .ignore()
        .incr("mq:p1", 10)
        .incr("mq:p2", 1)
        .cmd("MGET")
        .arg("mq:p1")
        .arg("mq:p2")
        .arg("mq:nope")
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b), (15, 1));
    assert_eq!(got, vec![Some("15".into()), Some("1".into()), None]);
}

#[test]
fn exec_spans_keys_in_different_shards() {
    let srv = start();
    let mut con = srv.client();
    assert_sharded(&mut con);
    let k = keys_in_distinct_shards("xs", 4);
    let res: Value = redis::pipe()
        .atomic()
        .cmd("MSET")
        .arg(&k[0])
        .arg("a")
        .arg(&k[1])
        .arg("b")
        .cmd("RENAME")
        .arg(&k[1])
        .arg(&k[2])
        .cmd("COPY")
        .arg(&k[0])
        .arg(&k[3])
        .cmd("MGET")
        .arg(&k[0])
        .arg(&k[1])
        .arg(&k[2])
        .arg(&k[3])
        .query(&mut con)
        .unwrap();
    assert_eq!(
        res,
        Value::Array(vec![
            Value::Okay,
            Value::Okay,
            Value::Int(1),
            Value::Array(vec![bulk("a"), Value::Nil, bulk("b"), bulk("a")]),
        ])
    );
}

#[test]
fn exec_in_resp3() {
    let srv = start();
    let mut c = Resp::new(&srv);
    assert!(c.call(&["HELLO", "3"]).starts_with('%'));
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "r3:k", "v"], "+QUEUED\r\n");
    c.expect(&["GET", "r3:missing"], "+QUEUED\r\n");
    c.expect(&["EXISTS", "r3:k"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*3\r\n+OK\r\n_\r\n:1\r\n");
}

#[test]
fn queuing_errors_make_exec_abort() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();

    // Unknown command: rejected at once, later commands still queue, and
    // EXEC runs nothing.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "qe:a", "1"], "+QUEUED\r\n");
    c.expect(
        &["NOSUCHCMD", "x"],
        "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' \r\n",
    );
    c.expect(&["SET", "qe:b", "1"], "+QUEUED\r\n");
    c.expect(&["EXEC"], &format!("-{EXECABORT}\r\n"));
    assert_eq!(q(&mut other, &["EXISTS", "qe:a", "qe:b"]), Value::Int(0));
    // The transaction is over.
    c.expect(&["EXEC"], &format!("-{EXEC_WITHOUT}\r\n"));

    // Wrong arity.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "qe:c", "1"], "+QUEUED\r\n");
    c.expect(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.expect(&["EXEC"], &format!("-{EXECABORT}\r\n"));
    assert_eq!(q(&mut other, &["EXISTS", "qe:c"]), Value::Int(0));

    // Too few arguments, even when the command name is right.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(
        &["SET", "qe:d"],
        "-ERR wrong number of arguments for 'set' command\r\n",
    );
    c.expect(&["EXEC"], &format!("-{EXECABORT}\r\n"));

    // Through the redis crate the whole atomic pipeline fails.
    let mut con = srv.client();
    let e = redis::pipe()
        .atomic()
        .set("qe:e", "1")
        .cmd("NOSUCHCMD")
        .query::<Value>(&mut con)
        .unwrap_err();
    // The crate reports EXECABORT together with the queuing error that
    // caused it.
    assert_eq!(e.code(), Some("EXECABORT"), "got {e:?}");
    assert!(
        format!("{e:?}").contains("unknown command 'NOSUCHCMD'"),
        "got {e:?}"
    );
    assert_eq!(q(&mut other, &["EXISTS", "qe:e"]), Value::Int(0));
    // The connection is usable and out of MULTI afterwards.
    assert_eq!(err(&mut con, &["EXEC"]), EXEC_WITHOUT);
}

#[test]
fn runtime_errors_are_returned_in_place() {
    let srv = start();
    let mut c = Resp::new(&srv);
    c.expect(&["SET", "rt:str", "abc"], "+OK\r\n");
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["INCR", "rt:str"], "+QUEUED\r\n");
    c.expect(&["LPUSH", "rt:str", "x"], "+QUEUED\r\n");
    c.expect(&["SET", "rt:ok", "fine"], "+QUEUED\r\n");
    c.expect(&["GET", "rt:ok"], "+QUEUED\r\n");
    c.expect(&["INCR", "rt:n"], "+QUEUED\r\n");
    c.expect(
        &["EXEC"],
        &format!("*5\r\n-{NOT_INT}\r\n-{WRONGTYPE}\r\n+OK\r\n$4\r\nfine\r\n:1\r\n"),
    );
    // No rollback: the failing commands changed nothing, the others ran.
    c.expect(&["GET", "rt:str"], "$3\r\nabc\r\n");
    c.expect(&["GET", "rt:n"], "$1\r\n1\r\n");

    // The redis crate reports each reply separately with ignore_errors.
    let mut con = srv.client();
    let res: Vec<redis::RedisResult<Value>> = redis::pipe()
        .atomic()
        .ignore_errors()
        .set("rt:a", "x")
        .incr("rt:a", 1)
        .get("rt:a")
        .query(&mut con)
        .unwrap();
    assert_eq!(res.len(), 3);
    assert_eq!(res[0].as_ref().unwrap(), &Value::Okay);
    assert_eq!(error_text(res[1].as_ref().unwrap_err()), NOT_INT);
    assert_eq!(res[2].as_ref().unwrap(), &bulk("x"));
}

#[test]
fn multi_state_errors() {
    let srv = start();
    let mut c = Resp::new(&srv);
    c.expect(&["EXEC"], &format!("-{EXEC_WITHOUT}\r\n"));
    c.expect(&["DISCARD"], &format!("-{DISCARD_WITHOUT}\r\n"));

    // A nested MULTI is refused but does not doom the transaction.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "ms:a", "1"], "+QUEUED\r\n");
    c.expect(&["MULTI"], &format!("-{NESTED}\r\n"));
    c.expect(&["GET", "ms:a"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*2\r\n+OK\r\n$1\r\n1\r\n");

    // Neither does WATCH inside MULTI.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "ms:b", "2"], "+QUEUED\r\n");
    c.expect(&["WATCH", "ms:b"], &format!("-{WATCH_IN_MULTI}\r\n"));
    c.expect(&["GET", "ms:b"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*2\r\n+OK\r\n$1\r\n2\r\n");

    // UNWATCH inside MULTI is queued like any command.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["UNWATCH"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n+OK\r\n");
}

#[test]
fn discard_drops_the_queue_and_the_watches() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();
    c.expect(&["SET", "dq:w", "a"], "+OK\r\n");
    c.expect(&["WATCH", "dq:w"], "+OK\r\n");
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "dq:k", "v"], "+QUEUED\r\n");
    c.expect(&["INCR", "dq:n"], "+QUEUED\r\n");
    c.expect(&["DISCARD"], "+OK\r\n");
    assert_eq!(q(&mut other, &["EXISTS", "dq:k", "dq:n"]), Value::Int(0));
    c.expect(&["EXEC"], &format!("-{EXEC_WITHOUT}\r\n"));
    c.expect(&["DISCARD"], &format!("-{DISCARD_WITHOUT}\r\n"));

    // DISCARD also unwatched: a later change to the key does not abort
    // the next transaction.
    assert_eq!(q(&mut other, &["SET", "dq:w", "b"]), Value::Okay);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["GET", "dq:w"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n$1\r\nb\r\n");
}

#[test]
fn reset_clears_multi_and_watch() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();
    c.expect(&["SET", "rs:w", "a"], "+OK\r\n");
    c.expect(&["WATCH", "rs:w"], "+OK\r\n");
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "rs:w", "queued"], "+QUEUED\r\n");
    // RESET is not queued.
    c.expect(&["RESET"], "+RESET\r\n");
    c.expect(&["EXEC"], &format!("-{EXEC_WITHOUT}\r\n"));
    c.expect(&["GET", "rs:w"], "$1\r\na\r\n");
    // The watch went too.
    assert_eq!(q(&mut other, &["SET", "rs:w", "b"]), Value::Okay);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["GET", "rs:w"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n$1\r\nb\r\n");

    // RESET after a queuing error clears the doomed flag as well.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(
        &["NOSUCHCMD"],
        "-ERR unknown command 'NOSUCHCMD', with args beginning with: \r\n",
    );
    c.expect(&["RESET"], "+RESET\r\n");
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "rs:x", "1"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n+OK\r\n");
}

#[test]
fn disconnect_clears_multi_and_watch() {
    let srv = start();
    let mut admin = srv.client();
    assert_eq!(q(&mut admin, &["SET", "dc:w", "a"]), Value::Okay);
    let gone_id = {
        let mut a = srv.client();
        let id = client_id(&mut a);
        assert_eq!(q(&mut a, &["WATCH", "dc:w"]), Value::Okay);
        assert_eq!(q(&mut a, &["MULTI"]), Value::Okay);
        assert_eq!(q(&mut a, &["SET", "dc:w", "queued"]), queued());
        assert_eq!(q(&mut a, &["SET", "dc:new", "queued"]), queued());
        id
    };
    wait_client_gone(&mut admin, gone_id);
    // The queue of the closed connection never ran.
    assert_eq!(q(&mut admin, &["GET", "dc:w"]), bulk("a"));
    assert_eq!(q(&mut admin, &["EXISTS", "dc:new"]), Value::Int(0));
    // Writing the key the dead client watched is harmless.
    assert_eq!(q(&mut admin, &["SET", "dc:w", "b"]), Value::Okay);

    // A fresh connection starts with no transaction and no watch.
    let mut fresh = srv.client();
    assert_eq!(err(&mut fresh, &["EXEC"]), EXEC_WITHOUT);
    assert_eq!(q(&mut fresh, &["MULTI"]), Value::Okay);
    assert_eq!(q(&mut fresh, &["GET", "dc:w"]), queued());
    assert_eq!(q(&mut fresh, &["EXEC"]), Value::Array(vec![bulk("b")]));
}

// ---------------------------------------------------------------------------
// WATCH.

/// Runs `MULTI; GET key; EXEC` on `c` and returns EXEC's raw reply.
fn try_exec(c: &mut Resp, key: &str) -> String {
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["GET", key], "+QUEUED\r\n");
    c.call(&["EXEC"])
}

fn exec_ok(value: &str) -> String {
    format!("*1\r\n${}\r\n{value}\r\n", value.len())
}

const ABORTED: &str = "*-1\r\n";

#[test]
fn watch_detects_another_clients_write() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();

    c.expect(&["SET", "wo:k", "1"], "+OK\r\n");
    c.expect(&["WATCH", "wo:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wo:k", "2"]), Value::Okay);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "wo:k", "mine"], "+QUEUED\r\n");
    c.expect(&["EXEC"], ABORTED);
    assert_eq!(q(&mut other, &["GET", "wo:k"]), bulk("2"));

    // Writing the same value is still a modification.
    c.expect(&["WATCH", "wo:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wo:k", "2"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wo:k"), ABORTED);

    // Reads by others do not abort.
    c.expect(&["WATCH", "wo:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["GET", "wo:k"]), bulk("2"));
    assert_eq!(q(&mut other, &["EXISTS", "wo:k"]), Value::Int(1));
    assert_eq!(try_exec(&mut c, "wo:k"), exec_ok("2"));

    // A write between MULTI and EXEC counts too.
    c.expect(&["WATCH", "wo:k"], "+OK\r\n");
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["GET", "wo:k"], "+QUEUED\r\n");
    assert_eq!(q(&mut other, &["DEL", "wo:k"]), Value::Int(1));
    c.expect(&["EXEC"], ABORTED);

    // Writes to other keys, including keys of the same name in another
    // database, do not abort.
    c.expect(&["SET", "wo:k", "3"], "+OK\r\n");
    c.expect(&["WATCH", "wo:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wo:other", "x"]), Value::Okay);
    assert_eq!(q(&mut other, &["SELECT", "1"]), Value::Okay);
    assert_eq!(q(&mut other, &["SET", "wo:k", "db1"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wo:k"), exec_ok("3"));

    // The watch belongs to the database that was selected at WATCH time,
    // whatever the client selects afterwards.
    c.expect(&["WATCH", "wo:k"], "+OK\r\n");
    c.expect(&["SELECT", "1"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SELECT", "0"]), Value::Okay);
    assert_eq!(q(&mut other, &["SET", "wo:k", "4"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wo:k"), ABORTED);
}

#[test]
fn watch_abort_is_a_null_array_in_both_protocols() {
    let srv = start();
    let mut other = srv.client();

    let mut c2 = Resp::new(&srv);
    c2.expect(&["WATCH", "wn:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wn:k", "x"]), Value::Okay);
    assert_eq!(try_exec(&mut c2, "wn:k"), "*-1\r\n");

    let mut c3 = Resp::new(&srv);
    assert!(c3.call(&["HELLO", "3"]).starts_with('%'));
    c3.expect(&["WATCH", "wn:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wn:k", "y"]), Value::Okay);
    assert_eq!(try_exec(&mut c3, "wn:k"), "_\r\n");

    // Through the redis crate an aborted atomic pipeline is None.
    for mut con in [srv.client(), srv.client_resp3()] {
        assert_eq!(q(&mut con, &["WATCH", "wn:k"]), Value::Okay);
        assert_eq!(q(&mut other, &["SET", "wn:k", "z"]), Value::Okay);
        let got: Option<(String,)> = redis::pipe().atomic().get("wn:k").query(&mut con).unwrap();
        assert_eq!(got, None);
    }
}

#[test]
fn watch_detects_the_same_clients_write_before_multi() {
    let srv = start();
    let mut c = Resp::new(&srv);
    c.expect(&["SET", "ws:k", "1"], "+OK\r\n");
    c.expect(&["WATCH", "ws:k"], "+OK\r\n");
    c.expect(&["INCR", "ws:k"], ":2\r\n");
    assert_eq!(try_exec(&mut c, "ws:k"), ABORTED);

    // Its own queued writes, which run inside EXEC, do not abort it.
    c.expect(&["WATCH", "ws:k"], "+OK\r\n");
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["INCR", "ws:k"], "+QUEUED\r\n");
    c.expect(&["INCR", "ws:k"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*2\r\n:3\r\n:4\r\n");
}

#[test]
fn unwatch_cancels_all_watches() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();
    c.expect(&["WATCH", "uw:a", "uw:b"], "+OK\r\n");
    c.expect(&["UNWATCH"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "uw:a", "1"]), Value::Okay);
    assert_eq!(q(&mut other, &["SET", "uw:b", "2"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "uw:a"), exec_ok("1"));
    // UNWATCH with nothing watched is fine.
    c.expect(&["UNWATCH"], "+OK\r\n");
    // Even after its key was already modified, UNWATCH saves the
    // transaction.
    c.expect(&["WATCH", "uw:a"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "uw:a", "3"]), Value::Okay);
    c.expect(&["UNWATCH"], "+OK\r\n");
    assert_eq!(try_exec(&mut c, "uw:a"), exec_ok("3"));
}

#[test]
fn watch_several_keys() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();
    assert_sharded(&mut other);
    let k = keys_in_distinct_shards("wm", 4);
    let (k0, k1, k2, k3) = (&k[0], &k[1], &k[2], &k[3]);

    // One WATCH with several keys: a write to any of them aborts.
    for victim in [k0, k1, k2] {
        c.expect(&["WATCH", k0, k1, k2], "+OK\r\n");
        assert_eq!(q(&mut other, &["SET", victim, "x"]), Value::Okay);
        assert_eq!(try_exec(&mut c, victim), ABORTED, "write to {victim}");
    }
    // None written: it runs.
    c.expect(&["WATCH", k0, k1, k2], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", k3, "unwatched"]), Value::Okay);
    assert_eq!(try_exec(&mut c, k3), exec_ok("unwatched"));

    // Successive WATCH calls add up (and repeating a key is harmless).
    c.expect(&["WATCH", k0], "+OK\r\n");
    c.expect(&["WATCH", k1, k0], "+OK\r\n");
    c.expect(&["WATCH", k2], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", k1, "y"]), Value::Okay);
    assert_eq!(try_exec(&mut c, k1), ABORTED);

    // A multi-key write touching one watched key aborts.
    c.expect(&["WATCH", k0, k2], "+OK\r\n");
    assert_eq!(q(&mut other, &["MSET", k3, "1", k2, "2"]), Value::Okay);
    assert_eq!(try_exec(&mut c, k2), ABORTED);

    // So does a RENAME onto a watched key, or away from one.
    c.expect(&["WATCH", k0], "+OK\r\n");
    assert_eq!(q(&mut other, &["RENAME", k3, k0]), Value::Okay);
    assert_eq!(try_exec(&mut c, k0), ABORTED);
    c.expect(&["WATCH", k0], "+OK\r\n");
    assert_eq!(q(&mut other, &["RENAME", k0, k3]), Value::Okay);
    assert_eq!(try_exec(&mut c, k3), ABORTED);
}

#[test]
fn watch_missing_key() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();

    // Absent at WATCH and still absent: not a modification, even if
    // other keys change or someone deletes the (missing) key.
    c.expect(&["WATCH", "wk:none"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wk:else", "x"]), Value::Okay);
    assert_eq!(q(&mut other, &["DEL", "wk:none"]), Value::Int(0));
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["EXISTS", "wk:none"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n:0\r\n");

    // Created by another client: aborts.
    c.expect(&["WATCH", "wk:none"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wk:none", "now"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wk:none"), ABORTED);

    // Created and deleted again: the key looks the same, but it was
    // modified, so it aborts.
    c.expect(&["WATCH", "wk:gone"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wk:gone", "1"]), Value::Okay);
    assert_eq!(q(&mut other, &["DEL", "wk:gone"]), Value::Int(1));
    assert_eq!(try_exec(&mut c, "wk:gone"), ABORTED);
}

#[test]
fn exec_after_an_abort_clears_the_watch() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();
    c.expect(&["WATCH", "ea:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "ea:k", "1"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "ea:k"), ABORTED);
    // No longer watched: further writes do not abort the next one.
    assert_eq!(q(&mut other, &["SET", "ea:k", "2"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "ea:k"), exec_ok("2"));

    // Same after EXECABORT: the failed EXEC unwatches.
    c.expect(&["WATCH", "ea:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "ea:k", "3"]), Value::Okay);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.expect(&["EXEC"], &format!("-{EXECABORT}\r\n"));
    assert_eq!(try_exec(&mut c, "ea:k"), exec_ok("3"));

    // And after a successful EXEC.
    c.expect(&["WATCH", "ea:k"], "+OK\r\n");
    assert_eq!(try_exec(&mut c, "ea:k"), exec_ok("3"));
    assert_eq!(q(&mut other, &["SET", "ea:k", "4"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "ea:k"), exec_ok("4"));
}

/// WATCHes `key` right after giving it a TTL of `px` ms, and returns
/// once the key was certainly live when WATCH ran (PTTL after WATCH is
/// still positive). Retries with a fresh key on a very slow machine.
fn watch_key_with_ttl(c: &mut Resp, prefix: &str, px: u64) -> String {
    for attempt in 0..10 {
        let key = format!("{prefix}:{attempt}");
        c.expect(&["SET", &key, "v", "PX", &px.to_string()], "+OK\r\n");
        c.expect(&["WATCH", &key], "+OK\r\n");
        let pttl = c.call(&["PTTL", &key]);
        if pttl.starts_with(':') && !pttl.starts_with(":-") {
            return key;
        }
        c.expect(&["UNWATCH"], "+OK\r\n");
    }
    panic!("could not WATCH a key before its {px} ms TTL ran out");
}

#[test]
fn watched_key_that_expires_aborts() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();

    // Expires untouched between WATCH and EXEC: Redis 7 treats the
    // expiry as a modification.
    let key = watch_key_with_ttl(&mut c, "we:a", 200);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(try_exec(&mut c, &key), ABORTED);

    // Same when another client's read deletes it lazily first.
    let key = watch_key_with_ttl(&mut c, "we:b", 200);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(q(&mut other, &["GET", &key]), Value::Nil);
    assert_eq!(try_exec(&mut c, &key), ABORTED);

    // A key with a TTL that does not run out before EXEC is fine.
    let key = watch_key_with_ttl(&mut c, "we:c", 100_000);
    assert_eq!(try_exec(&mut c, &key), exec_ok("v"));
}

#[test]
fn watched_key_already_expired_at_watch_time_does_not_abort() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();
    // Redis 7 remembers that the key was already logically expired at
    // WATCH time; its deletion later (lazily, by another client's read,
    // or actively) changes nothing visible, so EXEC runs.
    c.expect(&["SET", "wx:k", "v", "PX", "10"], "+OK\r\n");
    thread::sleep(Duration::from_millis(200));
    c.expect(&["WATCH", "wx:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["GET", "wx:k"]), Value::Nil);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["EXISTS", "wx:k"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n:0\r\n");

    // Recreating it is a modification, though.
    c.expect(&["SET", "wx:j", "v", "PX", "10"], "+OK\r\n");
    thread::sleep(Duration::from_millis(200));
    c.expect(&["WATCH", "wx:j"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SET", "wx:j", "new"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wx:j"), ABORTED);
}

#[test]
fn flushes_and_swapdb_abort_watchers_of_existing_keys() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut other = srv.client();
    let mut other_db9 = srv.client();
    assert_eq!(q(&mut other_db9, &["SELECT", "9"]), Value::Okay);

    // FLUSHALL of a db holding the watched key.
    c.expect(&["SET", "wf:k", "v"], "+OK\r\n");
    c.expect(&["WATCH", "wf:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["FLUSHALL"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wf:k"), ABORTED);

    // FLUSHDB.
    c.expect(&["SET", "wf:k", "v"], "+OK\r\n");
    c.expect(&["WATCH", "wf:k"], "+OK\r\n");
    assert_eq!(q(&mut other, &["FLUSHDB"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wf:k"), ABORTED);

    // FLUSHDB of another database leaves db 0's watchers alone.
    c.expect(&["SET", "wf:k", "v"], "+OK\r\n");
    assert_eq!(q(&mut other_db9, &["SET", "wf:k", "db9"]), Value::Okay);
    c.expect(&["WATCH", "wf:k"], "+OK\r\n");
    assert_eq!(q(&mut other_db9, &["FLUSHDB"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wf:k"), exec_ok("v"));

    // Flushing when the watched key does not exist changes nothing for
    // it: no abort.
    c.expect(&["WATCH", "wf:absent"], "+OK\r\n");
    assert_eq!(q(&mut other, &["FLUSHDB"]), Value::Okay);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["EXISTS", "wf:absent"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n:0\r\n");
    c.expect(&["WATCH", "wf:absent"], "+OK\r\n");
    assert_eq!(q(&mut other, &["FLUSHALL"]), Value::Okay);
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["EXISTS", "wf:absent"], "+QUEUED\r\n");
    c.expect(&["EXEC"], "*1\r\n:0\r\n");

    // SWAPDB of the watched key's db (db 9 empty): the key vanishes.
    c.expect(&["SET", "wf:s", "v"], "+OK\r\n");
    c.expect(&["WATCH", "wf:s"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SWAPDB", "0", "9"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wf:s"), ABORTED);
    assert_eq!(q(&mut other, &["FLUSHALL"]), Value::Okay);

    // SWAPDB that brings the (absent) watched key into existence.
    assert_eq!(q(&mut other_db9, &["SET", "wf:t", "from9"]), Value::Okay);
    c.expect(&["WATCH", "wf:t"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SWAPDB", "0", "9"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wf:t"), ABORTED);
    assert_eq!(q(&mut other, &["FLUSHALL"]), Value::Okay);

    // SWAPDB of two other databases: no abort.
    c.expect(&["SET", "wf:u", "v"], "+OK\r\n");
    c.expect(&["WATCH", "wf:u"], "+OK\r\n");
    assert_eq!(q(&mut other, &["SWAPDB", "3", "4"]), Value::Okay);
    assert_eq!(try_exec(&mut c, "wf:u"), exec_ok("v"));
}

// ---------------------------------------------------------------------------
// INFO commandstats.

#[test]
fn commandstats_count_queued_commands_only_when_executed() {
    let srv = start();
    let mut c = Resp::new(&srv);
    let mut stats = srv.client();
    assert_eq!(q(&mut stats, &["CONFIG", "RESETSTAT"]), Value::Okay);

    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "cs:a", "1"], "+QUEUED\r\n");
    c.expect(&["INCR", "cs:b"], "+QUEUED\r\n");
    // Queued is not called.
    assert_eq!(cmdstat(&mut stats, "set"), (0, 0, 0));
    assert_eq!(cmdstat(&mut stats, "incr"), (0, 0, 0));
    assert_eq!(cmdstat(&mut stats, "multi"), (1, 0, 0));
    c.expect(&["EXEC"], "*2\r\n+OK\r\n:1\r\n");
    assert_eq!(cmdstat(&mut stats, "set"), (1, 0, 0));
    assert_eq!(cmdstat(&mut stats, "incr"), (1, 0, 0));
    assert_eq!(cmdstat(&mut stats, "exec"), (1, 0, 0));

    // Discarded: never counted.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "cs:a", "2"], "+QUEUED\r\n");
    c.expect(&["DISCARD"], "+OK\r\n");
    assert_eq!(cmdstat(&mut stats, "set"), (1, 0, 0));
    assert_eq!(cmdstat(&mut stats, "discard"), (1, 0, 0));

    // EXECABORT: the queued SET is not counted, the arity error is a
    // rejected GET, and EXEC is a call that failed.
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["SET", "cs:a", "3"], "+QUEUED\r\n");
    c.expect(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.expect(&["EXEC"], &format!("-{EXECABORT}\r\n"));
    assert_eq!(cmdstat(&mut stats, "set"), (1, 0, 0));
    assert_eq!(cmdstat(&mut stats, "get"), (0, 1, 0));
    assert_eq!(cmdstat(&mut stats, "exec"), (2, 0, 1));

    // A runtime error inside EXEC is a failed call of that command, not
    // of EXEC.
    c.expect(&["SET", "cs:str", "abc"], "+OK\r\n");
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["INCR", "cs:str"], "+QUEUED\r\n");
    c.expect(&["EXEC"], &format!("*1\r\n-{NOT_INT}\r\n"));
    assert_eq!(cmdstat(&mut stats, "set"), (2, 0, 0));
    assert_eq!(cmdstat(&mut stats, "incr"), (2, 0, 1));
    assert_eq!(cmdstat(&mut stats, "exec"), (3, 0, 1));

    // Aborted by WATCH: EXEC is called (not failed), the queue is not.
    c.expect(&["WATCH", "cs:a"], "+OK\r\n");
    assert_eq!(q(&mut stats, &["APPEND", "cs:a", "x"]), Value::Int(2));
    c.expect(&["MULTI"], "+OK\r\n");
    c.expect(&["INCR", "cs:b"], "+QUEUED\r\n");
    c.expect(&["EXEC"], ABORTED);
    assert_eq!(cmdstat(&mut stats, "incr"), (2, 0, 1));
    assert_eq!(cmdstat(&mut stats, "exec"), (4, 0, 1));
    assert_eq!(cmdstat(&mut stats, "watch"), (1, 0, 0));
    assert_eq!(cmdstat(&mut stats, "multi"), (5, 0, 0));
}

// ---------------------------------------------------------------------------
// The redis crate's optimistic-locking helper.

#[test]
fn redis_crate_transaction_helper_retries_on_conflict() {
    let srv = start();
    let mut con = srv.client();
    let mut intruder = srv.client();
    let key = "th:counter";

    // Ten increments through WATCH/GET/MULTI/SET/EXEC.
    for _ in 0..10 {
        let _: () = redis::transaction(&mut con, &[key], |con, pipe| {
            let cur: Option<i64> = redis::cmd("GET").arg(key).query(con)?;
            pipe.set(key, cur.unwrap_or(0) + 1).ignore().query(con)
        })
        .unwrap();
    }
    assert_eq!(q(&mut con, &["GET", key]), bulk("10"));

    // A write by another client between GET and EXEC forces one retry,
    // and the retry sees that write.
    let mut attempts = 0;
    let (v,): (i64,) = redis::transaction(&mut con, &[key], |con, pipe| {
        attempts += 1;
        let cur: i64 = redis::cmd("GET").arg(key).query(con)?;
        if attempts == 1 {
            redis::cmd("INCRBY").arg(key).arg(100).exec(&mut intruder)?;
        }
        pipe.set(key, cur + 1).ignore().get(key).query(con)
    })
    .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(v, 111);
}

// ---------------------------------------------------------------------------
// Atomicity under concurrency. The checks are on values only: a reader must
// never observe a half-applied multi-key write. Counts are bounded so the
// file stays well under a minute in a debug build on two cores.

const WRITERS: usize = 4;
const READERS: usize = 4;
const TOTAL_READS: usize = 200_000;
/// Reads are pipelined in batches to spend the budget on the server, not
/// on round trips.
const BATCH: usize = 100;

/// Runs `READERS` threads doing `TOTAL_READS` pipelined MGETs of `k1 k2`
/// in total while `WRITERS` threads run `write` in a loop; every MGET must
/// see equal values. Returns the distinct values readers saw and the
/// number of writes done.
fn readers_vs_writers(
    srv: &TestServer,
    k1: &str,
    k2: &str,
    write: impl Fn(&mut Connection, u64) + Send + Sync + 'static,
) -> (HashSet<String>, u64) {
    let write = Arc::new(write);
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(1));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let mut con = srv.client();
        let (stop, counter, write) = (stop.clone(), counter.clone(), write.clone());
        writers.push(thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                write(&mut con, counter.fetch_add(1, Ordering::Relaxed));
                n += 1;
            }
            n
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut con = srv.client();
        let (k1, k2) = (k1.to_string(), k2.to_string());
        readers.push(thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut pipe = redis::pipe();
            for _ in 0..BATCH {
                pipe.cmd("MGET").arg(&k1).arg(&k2);
            }
            for _ in 0..TOTAL_READS / READERS / BATCH {
                let got: Vec<(Option<String>, Option<String>)> = pipe.query(&mut con).unwrap();
                for (a, b) in got {
                    assert_eq!(a, b, "MGET {k1} {k2} saw a half-applied write");
                    if let Some(a) = a {
                        seen.insert(a);
                    }
                }
            }
            seen
        }));
    }
    let mut seen = HashSet::new();
    let mut reader_panic = None;
    for r in readers {
        match r.join() {
            Ok(s) => seen.extend(s),
            Err(e) => reader_panic = Some(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    if let Some(e) = reader_panic {
        std::panic::resume_unwind(e);
    }
    (seen, writes)
}

#[test]
fn mset_is_atomic_across_shards() {
    let srv = start();
    let mut con = srv.client();
    assert_sharded(&mut con);
    let k = keys_in_distinct_shards("cm", 2);
    let (k1, k2) = (k[0].clone(), k[1].clone());
    assert_eq!(q(&mut con, &["MSET", &k1, "0", &k2, "0"]), Value::Okay);
    let (w1, w2) = (k1.clone(), k2.clone());
    let (seen, writes) = readers_vs_writers(&srv, &k1, &k2, move |con, v| {
        redis::cmd("MSET")
            .arg(&w1)
            .arg(v)
            .arg(&w2)
            .arg(v)
            .exec(con)
            .unwrap();
    });
    assert!(writes > 0);
    // The readers really ran alongside the writers (otherwise the test
    // would prove nothing).
    assert!(seen.len() > 1, "readers saw only {seen:?}");
    let end: Vec<String> = redis::cmd("MGET")
        .arg(&k1)
        .arg(&k2)
        .query(&mut con)
        .unwrap();
    assert_eq!(end[0], end[1]);
}

#[test]
fn exec_is_atomic_across_shards() {
    let srv = start();
    let mut con = srv.client();
    assert_sharded(&mut con);
    let k = keys_in_distinct_shards("ce", 2);
    let (k1, k2) = (k[0].clone(), k[1].clone());
    assert_eq!(q(&mut con, &["MSET", &k1, "0", &k2, "0"]), Value::Okay);
    let (w1, w2) = (k1.clone(), k2.clone());
    let (seen, writes) = readers_vs_writers(&srv, &k1, &k2, move |con, _| {
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .incr(&w1, 1)
            .incr(&w2, 1)
            .query(con)
            .unwrap();
        // Nobody else can run between the two INCRs.
        assert_eq!(a, b);
    });
    assert!(seen.len() > 1, "readers saw only {seen:?}");
    // No increment was lost or applied twice.
    let end: Vec<i64> = redis::cmd("MGET")
        .arg(&k1)
        .arg(&k2)
        .query(&mut con)
        .unwrap();
    assert_eq!(end, vec![writes as i64, writes as i64]);
}

/// RENAME across shards: one thread moves a value back and forth
/// between two keys in different shards while readers check that exactly
/// one of them exists at any time (50,000 EXISTS checks in total).
#[test]
fn rename_is_atomic_across_shards() {
    const CHECKS: usize = 50_000;
    const CHECKERS: usize = 2;
    let srv = start();
    let mut con = srv.client();
    assert_sharded(&mut con);
    let k = keys_in_distinct_shards("cr", 2);
    let (a, b) = (k[0].clone(), k[1].clone());
    assert_eq!(q(&mut con, &["SET", &a, "payload"]), Value::Okay);

    let stop = Arc::new(AtomicBool::new(false));
    let renamer = {
        let mut con = srv.client();
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                redis::cmd("RENAME").arg(&a).arg(&b).exec(&mut con).unwrap();
                redis::cmd("RENAME").arg(&b).arg(&a).exec(&mut con).unwrap();
                n += 2;
            }
            n
        })
    };
    let checkers: Vec<_> = (0..CHECKERS)
        .map(|_| {
            let mut con = srv.client();
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || {
                let mut pipe = redis::pipe();
                for _ in 0..BATCH {
                    pipe.cmd("EXISTS").arg(&a).arg(&b);
                    pipe.cmd("MGET").arg(&a).arg(&b);
                }
                let mut saw_b = false;
                for _ in 0..CHECKS / CHECKERS / BATCH {
                    let got: Vec<Value> = pipe.query(&mut con).unwrap();
                    for pair in got.chunks(2) {
                        assert_eq!(pair[0], Value::Int(1), "EXISTS {a} {b}");
                        // Exactly one holds the value; the other is nil.
                        let Value::Array(vals) = &pair[1] else {
                            panic!("MGET gave {:?}", pair[1]);
                        };
                        let present: Vec<&Value> =
                            vals.iter().filter(|v| **v != Value::Nil).collect();
                        assert_eq!(present, vec![&bulk("payload")], "MGET {a} {b}");
                        saw_b |= vals[1] != Value::Nil;
                    }
                }
                saw_b
            })
        })
        .collect();
    let mut saw_b = false;
    let mut panicked = None;
    for c in checkers {
        match c.join() {
            Ok(s) => saw_b |= s,
            Err(e) => panicked = Some(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let renames = renamer.join().unwrap();
    if let Some(e) = panicked {
        std::panic::resume_unwind(e);
    }
    assert!(renames > 0);
    // The value was observed under the second name too, so the checks
    // overlapped with the renames.
    assert!(saw_b, "checkers never saw the value under {b}");
    assert_eq!(q(&mut con, &["EXISTS", &a, &b]), Value::Int(1));
}
