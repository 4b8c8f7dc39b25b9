//! Replication: full and partial resync, the command stream, PSYNC2 after
//! a promotion, chained replicas, WAIT, read-only replicas, and interop
//! with real redis-server 7.0 in both directions; plus RDB persistence
//! (SAVE, BGSAVE, loading at start) and RDB files exchanged with Redis.
//!
//! Every test starts its own servers on loopback and bounds every wait.
//! Under `FERROCACHE_TEST_BIN=/usr/bin/redis-server` the same tests run
//! with real Redis on both sides (the ferrocache-only `--shards` flag is
//! then left out).

mod common;
use common::*;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Connection;

/// Flags for a server under test: several shards for ferrocache so keys
/// and transactions span shard locks.
fn flags(dir: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["--repl-diskless-sync-delay".into(), "0".into()];
    // A directory of its own: a Redis replica writes the RDB it receives
    // there, and any server loads a dump.rdb it finds there at start.
    v.extend(["--dir".into(), dir.to_string()]);
    if !against_real_redis() {
        v.extend(["--shards".into(), "4".into()]);
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// A server under test with its scratch directory, removed (after the
/// server is killed) when it goes.
struct Node {
    server: Option<TestServer>,
    dir: std::path::PathBuf,
}

impl std::ops::Deref for Node {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        self.server.as_ref().expect("server")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(extra: &[&str]) -> Node {
    let dir = scratch_dir();
    let f = flags(&dir, extra);
    let refs: Vec<&str> = f.iter().map(|s| s.as_str()).collect();
    Node {
        server: Some(TestServer::start_with(&refs)),
        dir: dir.into(),
    }
}

fn start_replica_of(primary: u16, extra: &[&str]) -> Node {
    let port = primary.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    start(&args)
}

fn scratch_dir() -> String {
    let d = temp_path("dir");
    std::fs::create_dir_all(&d).unwrap();
    d.display().to_string()
}

/// A real redis-server (whatever binary the suite tests) in a scratch
/// directory of its own, or `None` when it is not installed.
fn start_real_redis(extra: &[&str]) -> Option<Node> {
    let dir = scratch_dir();
    let mut args = vec!["--repl-diskless-sync-delay", "0", "--dir", &dir];
    args.extend(extra);
    let Some(server) = TestServer::start_real_redis(&args) else {
        eprintln!("skipping: {REAL_REDIS} not installed");
        let _ = std::fs::remove_dir_all(&dir);
        return None;
    };
    Some(Node {
        server: Some(server),
        dir: dir.into(),
    })
}

fn connect(port: u16) -> Connection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let con = c
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    con.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    con
}

fn info_field(con: &mut Connection, section: &str, field: &str) -> Option<String> {
    let info: String = q(con, &["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Polls `cond` every 20 ms for up to `secs`; panics with `what` after.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {secs}s waiting for {what}");
}

/// The replica's link is up and it has processed everything the primary
/// produced so far.
fn wait_in_sync(primary: &mut Connection, replica: &mut Connection) {
    let mut last = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        last = (
            info_field(replica, "replication", "master_link_status"),
            info_field(primary, "replication", "master_repl_offset"),
            info_field(replica, "replication", "master_repl_offset"),
        );
        if last.0.as_deref() == Some("up") && last.1 == last.2 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("replica not in sync after 30s: (link, primary offset, replica offset) = {last:?}");
}

fn stat(con: &mut Connection, field: &str) -> u64 {
    let v = info_field(con, "stats", field);
    v.as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO stats {field}: {v:?}"))
}

/// Every key of db 0 with its type, value (rendered) and PTTL.
fn dump_db(con: &mut Connection) -> HashMap<String, (String, String, i64)> {
    let keys: Vec<String> = q(con, &["KEYS", "*"]);
    let mut out = HashMap::new();
    // Pipelined in batches: the big datasets have hundreds of thousands
    // of keys.
    for batch in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for k in batch {
            pipe.cmd("TYPE").arg(k).cmd("PEXPIRETIME").arg(k);
        }
        let meta: Vec<redis::Value> = pipe.query(con).unwrap();
        let types: Vec<String> = (0..batch.len())
            .map(|i| match &meta[2 * i] {
                redis::Value::SimpleString(t) => t.clone(),
                other => panic!("TYPE {}: {other:?}", batch[i]),
            })
            .collect();
        let mut gets = redis::pipe();
        for (k, ty) in batch.iter().zip(&types) {
            if ty == "string" {
                gets.cmd("GET").arg(k);
            }
        }
        let mut strings = if gets.is_empty() {
            Vec::new()
        } else {
            gets.query::<Vec<Option<String>>>(con).unwrap()
        }
        .into_iter();
        for (i, (k, ty)) in batch.iter().zip(types).enumerate() {
            // Absolute, so the time between reading two servers does not
            // count.
            let ttl = match &meta[2 * i + 1] {
                redis::Value::Int(t) => *t,
                other => panic!("PEXPIRETIME {k}: {other:?}"),
            };
            let value = if ty == "string" {
                strings.next().flatten().unwrap_or_default()
            } else {
                collection_value(con, k, &ty)
            };
            out.insert(k.clone(), (ty, value, ttl));
        }
    }
    out
}

fn collection_value(con: &mut Connection, k: &str, ty: &str) -> String {
    match ty {
        "list" => q::<Vec<String>>(con, &["LRANGE", k, "0", "-1"]).join(","),
        "hash" => {
            let mut v: Vec<(String, String)> = q(con, &["HGETALL", k]);
            v.sort();
            format!("{v:?}")
        }
        "set" => {
            let mut v: Vec<String> = q(con, &["SMEMBERS", k]);
            v.sort();
            v.join(",")
        }
        "zset" => ["m1", "m2"]
            .iter()
            .map(|m| q::<Option<String>>(con, &["ZSCORE", k, m]).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

fn assert_same_data(
    a: &HashMap<String, (String, String, i64)>,
    b: &HashMap<String, (String, String, i64)>,
) {
    assert_eq!(a.len(), b.len(), "key counts differ");
    for (k, (ty, v, ttl)) in a {
        let (ty2, v2, ttl2) = b.get(k).unwrap_or_else(|| panic!("{k} missing on replica"));
        assert_eq!((ty, v), (ty2, v2), "key {k}");
        assert_eq!(*ttl < 0, *ttl2 < 0, "TTL presence of {k}");
        if *ttl >= 0 {
            assert!((ttl - ttl2).abs() <= 1000, "TTL of {k}: {ttl} vs {ttl2}");
        }
    }
}

fn fill(con: &mut Connection, n: usize, prefix: &str) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        let k = format!("{prefix}{i}");
        if i % 5 == 0 {
            pipe.cmd("SET")
                .arg(&k)
                .arg(i)
                .arg("EX")
                .arg(1000 + i)
                .ignore();
        } else {
            pipe.cmd("SET").arg(&k).arg(format!("value-{i}")).ignore();
        }
        if pipe.len() >= 1000 {
            pipe.query::<()>(con).unwrap();
            pipe = redis::pipe();
        }
    }
    if !pipe.is_empty() {
        pipe.query::<()>(con).unwrap();
    }
}

/// The writes a replica must reproduce: every collection type, relative
/// expiries, INCRBYFLOAT, a cross-shard transaction and MSET.
fn mixed_writes(con: &mut Connection) {
    q::<()>(con, &["RPUSH", "list", "a", "b", "c"]);
    q::<()>(con, &["HSET", "hash", "f1", "v1", "f2", "v2"]);
    q::<()>(con, &["SADD", "set", "x", "y", "1"]);
    q::<()>(con, &["ZADD", "zset", "1.5", "m1", "2", "m2"]);
    q::<()>(con, &["SET", "float", "10.5"]);
    q::<()>(con, &["INCRBYFLOAT", "float", "0.1"]);
    q::<()>(con, &["SETEX", "setex", "500", "v"]);
    q::<()>(con, &["SET", "px", "v", "PX", "400000"]);
    q::<()>(con, &["SET", "expire-me", "v"]);
    q::<()>(con, &["EXPIRE", "expire-me", "300"]);
    q::<()>(con, &["MSET", "{a}1", "1", "{b}2", "2", "{c}3", "3"]);
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{a}counter")
        .cmd("INCR")
        .arg("{b}counter")
        .cmd("SET")
        .arg("{c}tx")
        .arg("done")
        .query(con)
        .unwrap();
}

#[test]
fn full_sync_with_data_and_ttls_then_stream() {
    let primary = start(&[]);
    let mut p = primary.client();
    fill(&mut p, 200_000, "k");
    mixed_writes(&mut p);

    // Writes keep coming while the replica syncs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let port = primary.port;
        std::thread::spawn(move || {
            let mut c = connect(port);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 200_000 {
                let _: () = cmd(&["SET", &format!("w{}", i % 3000), &i.to_string()])
                    .query(&mut c)
                    .unwrap();
                let _: i64 = cmd(&["INCR", &format!("{{c{}}}ctr", i % 7)])
                    .query(&mut c)
                    .unwrap();
                // Non-idempotent writes spanning shards: applied twice or
                // missed by the snapshot, they would leave a difference.
                let _: redis::Value = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg("{a}tx")
                    .cmd("APPEND")
                    .arg("{b}tx")
                    .arg("x")
                    .cmd("RPUSH")
                    .arg("{c}tx-list")
                    .arg(i)
                    .query(&mut c)
                    .unwrap();
                let _: () = cmd(&["MSET", "{d}m", &i.to_string(), "{e}m", &i.to_string()])
                    .query(&mut c)
                    .unwrap();
                i += 1;
            }
        })
    };
    let replica = start_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_for(30, "link up", || {
        info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up")
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    mixed_writes(&mut p);
    wait_in_sync(&mut p, &mut r);
    assert_same_data(&dump_db(&mut p), &dump_db(&mut r));
    assert_eq!(q::<String>(&mut r, &["GET", "float"]), "10.6");
    assert_eq!(
        info_field(&mut r, "replication", "role").as_deref(),
        Some("slave")
    );
    assert_eq!(stat(&mut p, "sync_full"), 1);

    // A key expiring on the primary: hidden on the replica at once, and
    // removed there when the primary deletes it (DEL in the stream).
    q::<()>(&mut p, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    q::<()>(&mut p, &["SET", "short", "v", "PX", "100"]);
    wait_in_sync(&mut p, &mut r);
    let before: i64 = q(&mut r, &["DBSIZE"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(q::<i64>(&mut r, &["EXISTS", "short"]), 0);
    assert_eq!(
        q::<i64>(&mut r, &["DBSIZE"]),
        before,
        "replica must not delete it"
    );
    assert_eq!(q::<Option<String>>(&mut p, &["GET", "short"]), None);
    wait_in_sync(&mut p, &mut r);
    assert_eq!(q::<i64>(&mut r, &["DBSIZE"]), before - 1);
}

/// Values of `keys` via MGET in batches.
fn mget_all(con: &mut Connection, keys: &[String]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(1000) {
        let mut c = redis::cmd("MGET");
        for k in chunk {
            c.arg(k);
        }
        out.extend(c.query::<Vec<Option<String>>>(con).unwrap());
    }
    out
}

#[test]
fn snapshot_is_exact_under_non_idempotent_writes() {
    // Counters incremented (alone, in cross-shard transactions and in
    // pipelines) while the snapshot is being taken: an increment both in
    // the snapshot and in the stream, or in neither, shows up as a
    // difference.
    const N: usize = 60_000;
    let primary = start(&[]);
    let mut p = primary.client();
    let keys: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
    for chunk in keys.chunks(1000) {
        let mut c = redis::cmd("MSET");
        for k in chunk {
            c.arg(k).arg(0);
        }
        c.query::<()>(&mut p).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let stop = stop.clone();
            let port = primary.port;
            std::thread::spawn(move || {
                let mut c = connect(port);
                let mut x: u64 = 0x9E37_79B9 + w;
                while !stop.load(Ordering::Relaxed) {
                    let mut pipe = redis::pipe();
                    for _ in 0..20 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let a = format!("c{}", x % N as u64);
                        let b = format!("c{}", (x >> 20) % N as u64);
                        pipe.cmd("INCR").arg(&a).ignore();
                        pipe.cmd("MULTI").ignore();
                        pipe.cmd("INCRBY").arg(&b).arg(2).ignore();
                        pipe.cmd("INCR").arg(&a).ignore();
                        pipe.cmd("EXEC").ignore();
                    }
                    pipe.query::<()>(&mut c).unwrap();
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let replica = start_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_for(60, "link up", || {
        info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up")
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    wait_in_sync(&mut p, &mut r);
    let (a, b) = (mget_all(&mut p, &keys), mget_all(&mut r, &keys));
    let diffs: Vec<_> = (0..N).filter(|&i| a[i] != b[i]).take(5).collect();
    assert!(
        diffs.is_empty(),
        "first differences: {:?}",
        diffs
            .iter()
            .map(|&i| (&keys[i], &a[i], &b[i]))
            .collect::<Vec<_>>()
    );
    assert_eq!(stat(&mut p, "sync_full"), 1);
}

/// A replica that goes away in the middle of its full sync: the walk it
/// drove must still be completed, or the next snapshot would neither
/// start (one runs at a time) nor be exact (each walk must tag every
/// entry for the one-bit tag to tell serialized from not).
#[test]
fn snapshot_abandoned_mid_walk_leaves_the_next_one_exact() {
    // 300,000 values of 200 bytes: a 60 MB RDB, more than loopback socket
    // buffers hold, so the primary is still walking when the reader goes.
    const N: usize = 300_000;
    let primary = start(&[]);
    let mut p = primary.client();
    let keys: Vec<String> = (0..N).map(|i| format!("a{i}")).collect();
    let value = "x".repeat(200);
    for chunk in keys.chunks(1000) {
        let mut c = redis::cmd("MSET");
        for k in chunk {
            c.arg(k).arg(&value);
        }
        c.query::<()>(&mut p).unwrap();
    }
    {
        let mut raw = primary.raw();
        raw.s
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        raw.send(&resp_cmd(&[b"REPLCONF", b"capa", b"eof"]));
        assert_eq!(read_line(&mut raw), "+OK");
        raw.send(&resp_cmd(&[b"PSYNC", b"?", b"-1"]));
        let reply = read_line(&mut raw);
        assert!(reply.starts_with("+FULLRESYNC"), "{reply}");
        raw.read_exact_len(64 * 1024);
        // Dropped here, unread.
    }
    // Writes after the abandoned snapshot, to keys it may or may not have
    // reached.
    for i in (0..N).step_by(1000) {
        q::<()>(&mut p, &["SET", &keys[i], &format!("new-{i}")]);
    }
    let replica = start_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_in_sync(&mut p, &mut r);
    assert_eq!(q::<i64>(&mut r, &["DBSIZE"]), N as i64);
    let (a, b) = (mget_all(&mut p, &keys), mget_all(&mut r, &keys));
    let diffs: Vec<_> = (0..N).filter(|&i| a[i] != b[i]).take(5).collect();
    assert!(diffs.is_empty(), "first differing keys: {:?}", diffs);
}

#[test]
fn replica_is_read_only_and_reports_its_role() {
    let primary = start(&[]);
    let replica = start_replica_of(primary.port, &[]);
    let (mut p, mut r) = (primary.client(), replica.client());
    q::<()>(&mut p, &["SET", "a", "1"]);
    wait_in_sync(&mut p, &mut r);
    assert_eq!(
        q_err(&mut r, &["SET", "a", "2"]),
        "READONLY You can't write against a read only replica."
    );
    assert_eq!(q::<String>(&mut r, &["GET", "a"]), "1");
    let role: redis::Value = q(&mut r, &["ROLE"]);
    let redis::Value::Array(items) = role else {
        panic!("ROLE: {role:?}")
    };
    assert_eq!(items[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(items[2], redis::Value::Int(primary.port as i64));
    assert_eq!(items[3], redis::Value::BulkString(b"connected".to_vec()));
    let role: redis::Value = q(&mut p, &["ROLE"]);
    let redis::Value::Array(items) = role else {
        panic!("ROLE: {role:?}")
    };
    assert_eq!(items[0], redis::Value::BulkString(b"master".to_vec()));
    let info: String = q(&mut p, &["INFO", "replication"]);
    assert!(info.contains("connected_slaves:1"), "{info}");
    let line = info
        .lines()
        .find(|l| l.starts_with("slave0:"))
        .expect("slave0");
    assert!(line.contains(&format!("port={}", replica.port)), "{line}");
    assert!(line.contains("state=online"), "{line}");
    assert!(stat(&mut p, "total_net_repl_output_bytes") > 0);
    assert!(stat(&mut r, "total_net_repl_input_bytes") > 0);
    for f in [
        "master_replid:",
        "master_replid2:",
        "second_repl_offset:",
        "repl_backlog_active:1",
        "repl_backlog_first_byte_offset:",
        "repl_backlog_histlen:",
    ] {
        assert!(info.contains(f), "{f} missing from {info}");
    }
}

#[test]
fn replica_without_link_refuses_stale_reads_when_told() {
    // A primary that does not exist: the link stays down.
    let port = pick_free_port();
    let replica = start_replica_of(port, &["--replica-serve-stale-data", "no"]);
    let mut r = replica.client();
    assert_eq!(
        q_err(&mut r, &["GET", "a"]),
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    // Commands flagged stale still work.
    assert_eq!(
        info_field(&mut r, "replication", "master_link_status").as_deref(),
        Some("down")
    );
    q::<()>(
        &mut r,
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
    );
    assert_eq!(q::<Option<String>>(&mut r, &["GET", "a"]), None);
}

#[test]
fn wait_counts_acknowledging_replicas() {
    let primary = start(&[]);
    let replica = start_replica_of(primary.port, &[]);
    let (mut p, mut r) = (primary.client(), replica.client());
    wait_in_sync(&mut p, &mut r);
    q::<()>(&mut p, &["SET", "a", "1"]);
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "10000"]), 1);
    // Two are asked for, one exists: the timeout answers with 1.
    q::<()>(&mut p, &["SET", "a", "2"]);
    assert_eq!(q::<i64>(&mut p, &["WAIT", "2", "300"]), 1);
    assert!(
        q_err(&mut r, &["WAIT", "1", "10"])
            .starts_with("ERR WAIT cannot be used with replica instances")
    );
    // WAIT waits for the caller's own writes: a client that wrote nothing
    // is answered at once, even with no timeout.
    let mut idle = connect(primary.port);
    assert_eq!(q::<i64>(&mut idle, &["WAIT", "1", "0"]), 1);
}

/// The id of the primary's connection from its replica.
fn replica_client_ids(p: &mut Connection) -> Vec<String> {
    let list: String = q(p, &["CLIENT", "LIST"]);
    list.lines()
        .filter(|l| l.contains("flags=S"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| id.trim_start_matches("id=").to_string())
        .collect()
}

#[test]
fn killed_link_resumes_with_partial_resync() {
    let primary = start(&[]);
    let replica = start_replica_of(primary.port, &[]);
    let (mut p, mut r) = (primary.client(), replica.client());
    fill(&mut p, 2000, "a");
    wait_in_sync(&mut p, &mut r);
    for round in 0..2 {
        let ids = replica_client_ids(&mut p);
        assert_eq!(ids.len(), 1, "{ids:?}");
        let killed: i64 = if round == 0 {
            q(&mut p, &["CLIENT", "KILL", "ID", &ids[0]])
        } else {
            q(&mut p, &["CLIENT", "KILL", "TYPE", "replica"])
        };
        assert_eq!(killed, 1);
        // Writes continue while the link is down.
        fill(&mut p, 500, &format!("during{round}-"));
        q::<()>(&mut p, &["INCRBYFLOAT", "f", "1.25"]);
        wait_for(30, "partial resync", || {
            stat(&mut p, "sync_partial_ok") == round + 1
        });
        wait_in_sync(&mut p, &mut r);
    }
    assert_eq!(stat(&mut p, "sync_full"), 1, "no second full sync");
    assert_same_data(&dump_db(&mut p), &dump_db(&mut r));
}

#[test]
fn replica_restarted_from_its_dump_continues_partially() {
    let primary = start(&[]);
    let dir = scratch_dir();
    let port = primary.port.to_string();
    let replica_args = [
        "--replicaof",
        "127.0.0.1",
        port.as_str(),
        "--dir",
        dir.as_str(),
    ];
    let (mut p, expected_offset) = {
        let replica = start(&replica_args);
        let (mut p, mut r) = (primary.client(), replica.client());
        fill(&mut p, 2000, "k");
        wait_in_sync(&mut p, &mut r);
        // SHUTDOWN SAVE writes the data with the replication ID and
        // offset it corresponds to.
        let _ = cmd(&["SHUTDOWN", "SAVE"]).query::<()>(&mut r);
        let off = info_field(&mut p, "replication", "master_repl_offset");
        (p, off)
    };
    assert!(expected_offset.is_some());
    // Writes while it is down.
    fill(&mut p, 500, "later");
    let replica = start(&replica_args);
    let mut r = replica.client();
    wait_in_sync(&mut p, &mut r);
    assert_eq!(stat(&mut p, "sync_full"), 1);
    assert_eq!(stat(&mut p, "sync_partial_ok"), 1);
    assert_same_data(&dump_db(&mut p), &dump_db(&mut r));
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restarted_replica_with_empty_backlog_position_gets_full_sync() {
    // A replica asking for an unknown history gets a full resync and
    // sync_partial_err counts the refused attempt.
    let primary = start(&[]);
    let mut p = primary.client();
    q::<()>(&mut p, &["SET", "a", "1"]);
    let mut raw = primary.raw();
    raw.send(&resp_cmd(&[
        b"PSYNC",
        b"0123456789012345678901234567890123456789",
        b"5",
    ]));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains("\r\n") && Instant::now() < deadline {
        got.extend(raw.read_exact_len(1));
    }
    assert!(
        String::from_utf8_lossy(&got).starts_with("+FULLRESYNC "),
        "{got:?}"
    );
    assert_eq!(stat(&mut p, "sync_partial_err"), 1);
}

/// Reads one line (through \n) byte by byte, skipping the bare newlines
/// a primary may send while it prepares the payload.
fn read_line(raw: &mut RawConn) -> String {
    loop {
        let mut line = Vec::new();
        while !line.ends_with(b"\n") {
            line.extend(raw.read_exact_len(1));
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if !text.is_empty() {
            return text;
        }
    }
}

/// The `$<len>` header after SYNC and the RDB it announces.
fn read_rdb(raw: &mut RawConn) -> Vec<u8> {
    let header = read_line(raw);
    let len: usize = header
        .strip_prefix('$')
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("bad bulk header {header:?}"));
    raw.read_exact_len(len)
}

#[test]
fn sync_without_eof_capability_gets_a_length_prefixed_rdb() {
    // The old SYNC (and PSYNC without `capa eof`) gets `$<len>` and a
    // complete RDB whose checksum holds.
    let primary = start(&[]);
    let mut p = primary.client();
    q::<()>(&mut p, &["SET", "k", "v"]);
    q::<()>(&mut p, &["RPUSH", "l", "a", "b"]);
    let mut raw = primary.raw();
    raw.s
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    raw.send(&resp_cmd(&[b"SYNC"]));
    let rdb = read_rdb(&mut raw);
    let len = rdb.len();
    assert_eq!(&rdb[..9], b"REDIS0010");
    let (body, crc) = rdb.split_at(len - 8);
    assert_eq!(body[body.len() - 1], 0xFF, "EOF opcode");
    assert_eq!(
        u64::from_le_bytes(crc.try_into().unwrap()),
        ferrocache::rdb::crc64(body)
    );
    // Then the stream.
    q::<()>(&mut p, &["SET", "after", "1"]);
    let mut stream = Vec::new();
    while !String::from_utf8_lossy(&stream).contains("after") {
        stream.extend(raw.read_exact_len(1));
    }
}

/// `redis-cli --rdb` sends `REPLCONF rdb-only 1` and then SYNC: it gets
/// the snapshot and the connection is closed, with no stream after it
/// (redis-cli finds the end mark only at the end of what it reads).
#[test]
fn rdb_only_sync_gets_the_snapshot_then_the_connection_closes() {
    let primary = start(&[]);
    let mut p = primary.client();
    q::<()>(&mut p, &["SET", "k", "v"]);
    let mut raw = primary.raw();
    raw.s
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    raw.send(&resp_cmd(&[b"REPLCONF", b"rdb-only", b"2"]));
    assert_eq!(
        read_line(&mut raw),
        "-ERR value is out of range, value must between 0 and 1"
    );
    raw.send(&resp_cmd(&[b"REPLCONF", b"rdb-only", b"x"]));
    assert_eq!(
        read_line(&mut raw),
        "-ERR value is not an integer or out of range"
    );
    raw.send(&resp_cmd(&[b"REPLCONF", b"rdb-only", b"1"]));
    assert_eq!(read_line(&mut raw), "+OK");
    raw.send(&resp_cmd(&[b"SYNC"]));
    let rdb = read_rdb(&mut raw);
    assert_eq!(&rdb[..9], b"REDIS0010");
    // A write after the snapshot must not reach this connection: it is
    // closed instead.
    q::<()>(&mut p, &["SET", "after", "1"]);
    let mut rest = Vec::new();
    use std::io::Read;
    raw.s.read_to_end(&mut rest).expect("connection closed");
    assert!(
        !String::from_utf8_lossy(&rest).contains("after"),
        "stream after an rdb-only sync: {rest:?}"
    );
}

/// A transaction reaches replicas wrapped in MULTI ... EXEC, so a replica
/// applies it as one unit (issue: atomic multi-key work, replication).
/// A connection that sent SYNC and read past the RDB: what follows is
/// the command stream replicas get.
fn command_stream(primary: &TestServer) -> RawConn {
    let mut raw = primary.raw();
    raw.s
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    raw.send(&resp_cmd(&[b"SYNC"]));
    read_rdb(&mut raw);
    raw
}

#[test]
fn transactions_are_streamed_as_multi_exec() {
    let primary = start(&[]);
    let mut p = primary.client();
    let mut raw = command_stream(&primary);

    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("tx:a")
        .cmd("INCRBY")
        .arg("tx:b")
        .arg(5)
        .query(&mut p)
        .unwrap();
    assert_eq!((a, b), (1, 5));
    let mut stream = Vec::new();
    while !String::from_utf8_lossy(&stream).contains("EXEC\r\n") {
        stream.extend(raw.read_exact_len(1));
    }
    let text = String::from_utf8_lossy(&stream).to_string();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the stream {text:?}"))
    };
    let expected = [
        "*1\r\n$5\r\nMULTI\r\n",
        "*2\r\n$4\r\nINCR\r\n$4\r\ntx:a\r\n",
        "*3\r\n$6\r\nINCRBY\r\n$4\r\ntx:b\r\n$1\r\n5\r\n",
        "*1\r\n$4\r\nEXEC\r\n",
    ];
    let positions: Vec<usize> = expected.iter().map(|e| at(e)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order in {text:?}"
    );
}

#[test]
fn promoted_replica_serves_partial_resync_with_its_old_id() {
    let primary = start(&[]);
    let r1 = start_replica_of(primary.port, &[]);
    let r2 = start_replica_of(primary.port, &[]);
    let (mut p, mut c1, mut c2) = (primary.client(), r1.client(), r2.client());
    fill(&mut p, 3000, "k");
    mixed_writes(&mut p);
    wait_in_sync(&mut p, &mut c1);
    wait_in_sync(&mut p, &mut c2);
    let old_id = info_field(&mut c1, "replication", "master_replid").unwrap();

    q::<()>(&mut c1, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(
        info_field(&mut c1, "replication", "role").as_deref(),
        Some("master")
    );
    assert_eq!(
        info_field(&mut c1, "replication", "master_replid2"),
        Some(old_id)
    );
    q::<()>(&mut c2, &["REPLICAOF", "127.0.0.1", &r1.port.to_string()]);
    wait_for(30, "r2 follows r1", || {
        info_field(&mut c2, "replication", "master_link_status").as_deref() == Some("up")
            && info_field(&mut c2, "replication", "master_port") == Some(r1.port.to_string())
    });
    assert_eq!(stat(&mut c1, "sync_partial_ok"), 1);
    assert_eq!(stat(&mut c1, "sync_full"), 0);
    q::<()>(&mut c1, &["SET", "after-promotion", "yes"]);
    wait_in_sync(&mut c1, &mut c2);
    assert_eq!(q::<String>(&mut c2, &["GET", "after-promotion"]), "yes");
    assert_same_data(&dump_db(&mut c1), &dump_db(&mut c2));
}

#[test]
fn replica_authenticates_with_masterauth() {
    let primary = start(&["--requirepass", "s3cret"]);
    let replica = start_replica_of(primary.port, &["--masterauth", "s3cret"]);
    let mut p = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", primary.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut r = replica.client();
    q::<()>(&mut p, &["SET", "a", "1"]);
    wait_in_sync(&mut p, &mut r);
    assert_eq!(q::<String>(&mut r, &["GET", "a"]), "1");
}

#[test]
fn chained_replicas_receive_the_stream() {
    let primary = start(&[]);
    let r1 = start_replica_of(primary.port, &[]);
    let (mut p, mut c1) = (primary.client(), r1.client());
    fill(&mut p, 1000, "k");
    wait_in_sync(&mut p, &mut c1);
    let r2 = start_replica_of(r1.port, &[]);
    let mut c2 = r2.client();
    mixed_writes(&mut p);
    wait_in_sync(&mut p, &mut c1);
    wait_in_sync(&mut c1, &mut c2);
    assert_eq!(
        info_field(&mut p, "replication", "master_repl_offset"),
        info_field(&mut c2, "replication", "master_repl_offset")
    );
    assert_same_data(&dump_db(&mut p), &dump_db(&mut c2));
}

/// Stops the replica (SIGSTOP) and writes up to `writes` values of 100 kB
/// until the primary cuts it off; returns whether it did and how many
/// values it took, and the primary's buffered bytes then. The replica
/// then resumes and catches up.
fn stall_replica_and_write(
    primary: &TestServer,
    replica: &TestServer,
    writes: usize,
) -> (bool, usize, u64) {
    let (mut p, mut r) = (primary.client(), replica.client());
    wait_in_sync(&mut p, &mut r);
    replica.signal(libc::SIGSTOP);
    let big = "x".repeat(100_000);
    let mut done = 0;
    while done < writes {
        q::<()>(&mut p, &["SET", &format!("big{}", done % 10), &big]);
        done += 1;
        if info_field(&mut p, "replication", "connected_slaves").as_deref() == Some("0") {
            break;
        }
    }
    let cut = info_field(&mut p, "replication", "connected_slaves").as_deref() == Some("0");
    replica.signal(libc::SIGCONT);
    let histlen: u64 = info_field(&mut p, "replication", "repl_backlog_histlen")
        .unwrap()
        .parse()
        .unwrap();
    wait_in_sync(&mut p, &mut r);
    (cut, done, histlen)
}

#[test]
fn stalled_replica_is_cut_off_at_its_output_limit() {
    let primary = start(&["--client-output-buffer-limit", "replica 2mb 1mb 60"]);
    let replica = start_replica_of(primary.port, &[]);
    let (cut, _, histlen) = stall_replica_and_write(&primary, &replica, 400);
    assert!(cut, "the stalled replica was not disconnected");
    assert!(histlen <= 4 << 20, "buffer kept {histlen} bytes");
}

#[test]
fn output_limit_below_the_backlog_is_raised_to_it() {
    // As Redis 7: a replica's hard limit smaller than repl-backlog-size is
    // raised to it, since the backlog keeps those bytes anyway.
    let primary = start(&[
        "--client-output-buffer-limit",
        "replica 2mb 0 0",
        "--repl-backlog-size",
        "16mb",
    ]);
    let replica = start_replica_of(primary.port, &[]);
    let (cut, _, _) = stall_replica_and_write(&primary, &replica, 60);
    assert!(!cut, "cut off at 6 MB although the backlog holds 16 MB");
    let (cut, done, _) = stall_replica_and_write(&primary, &replica, 400);
    assert!(cut, "the stalled replica was not disconnected");
    assert!(done > 100, "cut off after {done} values of 100 kB");
}

// ------------------------------------------------------------- interop

#[test]
fn real_redis_replica_of_ferrocache() {
    let primary = start(&[]);
    let mut p = primary.client();
    fill(&mut p, 5000, "k");
    mixed_writes(&mut p);
    let port = primary.port.to_string();
    let Some(redis) = start_real_redis(&["--replicaof", "127.0.0.1", &port]) else {
        return;
    };
    let mut r = redis.client();
    wait_in_sync(&mut p, &mut r);
    mixed_writes(&mut p);
    q::<()>(&mut p, &["DEL", "k1", "k2"]);
    wait_in_sync(&mut p, &mut r);
    assert_same_data(&dump_db(&mut p), &dump_db(&mut r));
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "10000"]), 1);
}

#[test]
fn ferrocache_replica_of_real_redis() {
    let Some(redis) = start_real_redis(&[]) else {
        return;
    };
    let mut p = redis.client();
    fill(&mut p, 5000, "k");
    // Small collections: Redis sends them as listpacks and intsets.
    mixed_writes(&mut p);
    let big = "abc".repeat(1000); // LZF-compressed in Redis's RDB.
    q::<()>(&mut p, &["SET", "big", &big]);
    let replica = start_replica_of(redis.port, &[]);
    let mut r = replica.client();
    wait_in_sync(&mut p, &mut r);
    mixed_writes(&mut p);
    q::<()>(&mut p, &["SET", "later", "v", "EX", "100"]);
    wait_in_sync(&mut p, &mut r);
    assert_same_data(&dump_db(&mut p), &dump_db(&mut r));
    assert_eq!(q::<String>(&mut r, &["GET", "big"]), big);
    // Redis's WAIT counts our acknowledgements.
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "10000"]), 1);
}

#[test]
fn ferrocache_replica_waits_through_a_delayed_real_redis_snapshot() {
    // With a repl-diskless-sync-delay (Redis's default is 5 s) Redis holds
    // its +FULLRESYNC back and sends a newline a second meanwhile: the
    // replica must skip them and keep waiting, as Redis's own replica does.
    let Some(redis) = start_real_redis(&["--repl-diskless-sync-delay", "2"]) else {
        return;
    };
    let mut p = redis.client();
    q::<()>(&mut p, &["SET", "k", "v"]);
    let replica = start_replica_of(redis.port, &[]);
    let mut r = replica.client();
    wait_in_sync(&mut p, &mut r);
    assert_eq!(q::<String>(&mut r, &["GET", "k"]), "v");
}

// ---------------------------------------------------------- persistence

fn persistent_flags(dir: &std::path::Path) -> Vec<String> {
    vec!["--dir".into(), dir.display().to_string()]
}

#[test]
fn save_then_restart_loads_the_dump() {
    let dir = temp_path("save");
    std::fs::create_dir_all(&dir).unwrap();
    let f = persistent_flags(&dir);
    let refs: Vec<&str> = f.iter().map(|s| s.as_str()).collect();
    let expected = {
        let s = start(&refs);
        let mut c = s.client();
        fill(&mut c, 1000, "k");
        mixed_writes(&mut c);
        let before: i64 = q(&mut c, &["LASTSAVE"]);
        assert_eq!(q::<String>(&mut c, &["SAVE"]), "OK");
        assert!(q::<i64>(&mut c, &["LASTSAVE"]) >= before);
        dump_db(&mut c)
    };
    assert!(dir.join("dump.rdb").exists());
    let s = start(&refs);
    let mut c = s.client();
    assert_same_data(&expected, &dump_db(&mut c));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debug_reload_round_trips_every_type() {
    let s = start(&[]);
    let mut c = s.client();
    fill(&mut c, 300, "k");
    mixed_writes(&mut c);
    let before = dump_db(&mut c);
    assert_eq!(q::<String>(&mut c, &["DEBUG", "RELOAD"]), "OK");
    assert_same_data(&before, &dump_db(&mut c));
}

/// Opens a connection per key, each WATCHing its key.
fn watchers(port: u16, keys: &[&str]) -> Vec<Connection> {
    keys.iter()
        .map(|k| {
            let mut w = connect(port);
            q::<()>(&mut w, &["WATCH", k]);
            w
        })
        .collect()
}

/// Runs `MULTI; GET key; EXEC` and says whether EXEC ran (`false`: the
/// transaction was aborted, EXEC answered a null).
fn exec_runs(w: &mut Connection, key: &str) -> bool {
    q::<()>(w, &["MULTI"]);
    q::<()>(w, &["GET", key]);
    q::<redis::Value>(w, &["EXEC"]) != redis::Value::Nil
}

#[test]
fn debug_reload_aborts_transactions_watching_existing_keys() {
    // DEBUG RELOAD empties the databases and loads them again: Redis
    // signals the flush, so a watcher of a key that was there fails.
    let s = start(&[]);
    let mut c = s.client();
    q::<()>(&mut c, &["SET", "present", "v"]);
    let mut ws = watchers(s.port, &["present", "absent"]);
    assert_eq!(q::<String>(&mut c, &["DEBUG", "RELOAD"]), "OK");
    assert!(!exec_runs(&mut ws[0], "present"));
    // A key that exists neither before nor after is left alone.
    assert!(exec_runs(&mut ws[1], "absent"));
}

#[test]
fn full_sync_aborts_transactions_watching_the_keys_it_replaces() {
    let primary = start(&[]);
    let node = start(&[]);
    let (mut p, mut n) = (primary.client(), node.client());
    q::<()>(&mut p, &["SET", "replaced", "new"]);
    q::<()>(&mut p, &["SET", "created", "new"]);
    q::<()>(&mut n, &["SET", "replaced", "old"]);
    q::<()>(&mut n, &["SET", "dropped", "old"]);
    let keys = ["replaced", "dropped", "created", "absent"];
    let mut ws = watchers(node.port, &keys);
    let port = primary.port.to_string();
    q::<()>(&mut n, &["REPLICAOF", "127.0.0.1", &port]);
    wait_in_sync(&mut p, &mut n);
    assert_eq!(q::<String>(&mut n, &["GET", "replaced"]), "new");
    assert!(!exec_runs(&mut ws[0], "replaced"));
    assert!(!exec_runs(&mut ws[1], "dropped"));
    // A key the sync brings into being: ferrocache aborts its watcher
    // too (the value changed under it); Redis 7.0's disk-based load only
    // touches the keys it empties.
    if !against_real_redis() {
        assert!(!exec_runs(&mut ws[2], "created"));
    }
    assert!(exec_runs(&mut ws[3], "absent"));
}

#[test]
fn bgsave_writes_a_snapshot_while_serving() {
    let dir = temp_path("bgsave");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = persistent_flags(&dir);
    f.extend(["--dbfilename".into(), "bg.rdb".into()]);
    let refs: Vec<&str> = f.iter().map(|s| s.as_str()).collect();
    let expected = {
        let s = start(&refs);
        let mut c = s.client();
        fill(&mut c, 5000, "k");
        let expected = dump_db(&mut c);
        assert_eq!(
            q::<String>(&mut c, &["BGSAVE"]),
            "Background saving started"
        );
        // Writes after the snapshot point are not in it.
        q::<()>(&mut c, &["SET", "after", "1"]);
        wait_for(30, "bgsave done", || {
            info_field(&mut c, "persistence", "rdb_bgsave_in_progress").as_deref() == Some("0")
        });
        assert_eq!(
            info_field(&mut c, "persistence", "rdb_last_bgsave_status").as_deref(),
            Some("ok")
        );
        expected
    };
    let s = start(&refs);
    let mut c = s.client();
    assert_same_data(&expected, &dump_db(&mut c));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rdb_files_are_exchanged_with_real_redis() {
    if against_real_redis() || !std::path::Path::new(REAL_REDIS).exists() {
        return;
    }
    // Ours → Redis.
    let dir = temp_path("xchg");
    std::fs::create_dir_all(&dir).unwrap();
    let f = persistent_flags(&dir);
    let refs: Vec<&str> = f.iter().map(|s| s.as_str()).collect();
    let ours = {
        let s = start(&refs);
        let mut c = s.client();
        fill(&mut c, 500, "k");
        mixed_writes(&mut c);
        q::<()>(&mut c, &["SET", "big", &"abc".repeat(1000)]);
        q::<String>(&mut c, &["SAVE"]);
        dump_db(&mut c)
    };
    let d = dir.display().to_string();
    // Redis's own checker accepts the file.
    if let Ok(out) = Command::new("redis-check-rdb")
        .arg(dir.join("dump.rdb"))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("RDB looks OK"), "{text}");
    }
    {
        let redis = start_real_redis(&["--dir", &d]).unwrap();
        let mut c = redis.client();
        assert_same_data(&ours, &dump_db(&mut c));
        // Redis rewrites it in its own encodings (listpacks, LZF).
        q::<()>(&mut c, &["SAVE"]);
    }
    // Redis → ours.
    let s = start(&refs);
    let mut c = s.client();
    assert_same_data(&ours, &dump_db(&mut c));
    let _ = std::fs::remove_dir_all(&dir);
}

/// RESTORE with a relative TTL reaches replicas as
/// `RESTORE key <absolute ms> payload ABSTTL` (Redis's restoreCommand
/// rewrites it so), so a replica applying it later sets the same expiry:
/// the stream carries the primary's PEXPIRETIME, and a live replica's
/// PEXPIRETIME equals it.
#[test]
fn restore_with_a_ttl_is_streamed_with_an_absolute_ttl() {
    let primary = start(&[]);
    let replica = start_replica_of(primary.port, &[]);
    let (mut p, mut r) = (primary.client(), replica.client());
    let mut raw = command_stream(&primary);

    let _: () = q(&mut p, &["SET", "src", "value"]);
    let payload: Vec<u8> = redis::cmd("DUMP").arg("src").query(&mut p).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("restored")
        .arg(100_000)
        .arg(&payload)
        .query(&mut p)
        .unwrap();
    let at: i64 = q(&mut p, &["PEXPIRETIME", "restored"]);
    assert!(at > 0);
    // The primary's PINGs keep the stream alive: bounded by a deadline,
    // not the read timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = Vec::new();
    while !String::from_utf8_lossy(&stream).contains("ABSTTL\r\n") {
        assert!(
            Instant::now() < deadline,
            "no RESTORE ... ABSTTL in the stream {:?}",
            String::from_utf8_lossy(&stream)
        );
        stream.extend(raw.read_exact_len(1));
    }
    let text = String::from_utf8_lossy(&stream).to_string();
    let at_s = at.to_string();
    let expected = format!(
        "$7\r\nRESTORE\r\n$8\r\nrestored\r\n${}\r\n{at_s}\r\n",
        at_s.len()
    );
    assert!(text.contains(&expected), "{expected:?} not in {text:?}");

    wait_in_sync(&mut p, &mut r);
    assert_eq!(q::<i64>(&mut r, &["PEXPIRETIME", "restored"]), at);
    let pttl: i64 = q(&mut r, &["PTTL", "restored"]);
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
}
