//! Cluster mode: single-node command and error texts, and multi-node
//! clusters of real server processes on loopback, driven by the stock
//! tools (redis-cli --cluster, redis-benchmark --cluster) and the `redis`
//! crate's cluster client. Every wait is bounded; every process started
//! is killed by its own handle.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use ferrocache::store::slot::key_slot;

/// A fresh directory for one test's nodes.conf files, removed when the
/// test ends. Paths derive from the PID, which the OS reuses: a leftover
/// directory from an earlier run would hand its nodes.conf to a new node.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir(tag: &str) -> Scratch {
    let d = temp_path(tag);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    Scratch(d)
}

fn node_args(port: u16, cport: u16, conf: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut v = harness_flags(port);
    v.extend([
        "--cluster-enabled".into(),
        "yes".into(),
        "--cluster-port".into(),
        cport.to_string(),
        "--cluster-config-file".into(),
        conf.display().to_string(),
    ]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

struct Node {
    srv: TestServer,
    conf: PathBuf,
    cport: u16,
}

/// Starts a node whose working directory is `dir`: a real redis-server
/// would load a dump.rdb from its working directory and claim the slots
/// of its keys.
fn start_node(dir: &std::path::Path, extra: &[&str]) -> Node {
    for _ in 0..10 {
        let port = pick_free_port();
        let cport = pick_free_port();
        if cport == port {
            continue;
        }
        let conf = dir.join(format!("nodes-{port}.conf"));
        if let Ok(srv) =
            TestServer::try_start_exact(&node_args(port, cport, &conf, extra), port, Some(dir))
        {
            return Node { srv, conf, cport };
        }
    }
    panic!("could not start a cluster node");
}

fn restart_node(old: Node, extra: &[&str]) -> Node {
    let Node { srv, conf, cport } = old;
    let port = srv.port;
    drop(srv);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TestServer::try_start_exact(
            &node_args(port, cport, &conf, extra),
            port,
            conf.parent(),
        ) {
            Ok(srv) => return Node { srv, conf, cport },
            Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn cluster_info(con: &mut redis::Connection) -> String {
    q(con, &["CLUSTER", "INFO"])
}

/// Whether the command succeeded (a redirection means "not served here").
fn q_ok(con: &mut redis::Connection, args: &[&str]) -> bool {
    cmd(args).query::<redis::Value>(con).is_ok()
}

fn myid(con: &mut redis::Connection) -> String {
    q(con, &["CLUSTER", "MYID"])
}

/// Starts `n` nodes and joins them with `redis-cli --cluster create`.
fn create_cluster(dir: &std::path::Path, n: usize, extra: &[&str]) -> Vec<Node> {
    create_cluster_with_replicas(dir, n, 0, extra)
}

/// `redis-cli --cluster create ... --cluster-replicas <replicas>`.
fn create_cluster_with_replicas(
    dir: &std::path::Path,
    n: usize,
    replicas: usize,
    extra: &[&str],
) -> Vec<Node> {
    let nodes: Vec<Node> = (0..n).map(|_| start_node(dir, extra)).collect();
    let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
    args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.srv.port)));
    args.extend([
        "--cluster-replicas".to_string(),
        replicas.to_string(),
        "--cluster-yes".to_string(),
    ]);
    let (ok, out) = run_tool("redis-cli", &args, Duration::from_secs(60));
    if !ok {
        let views: Vec<String> = nodes
            .iter()
            .map(|n| q::<String>(&mut n.srv.client(), &["CLUSTER", "NODES"]))
            .collect();
        panic!("cluster create failed:\n{out}\nnodes: {views:?}");
    }
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    for node in &nodes {
        let mut c = node.srv.client();
        wait_until("cluster_state:ok", Duration::from_secs(20), || {
            info_field(&cluster_info(&mut c), "cluster_state") == "ok"
        });
    }
    nodes
}

const SLOTS: usize = 16384;

/// One hash tag per slot: `tags[s]` is a string whose slot is `s`.
fn slot_tags() -> Vec<String> {
    let mut tags = vec![String::new(); SLOTS];
    let mut missing = SLOTS;
    for n in 0.. {
        let t = n.to_string();
        let s = key_slot(t.as_bytes()) as usize;
        if tags[s].is_empty() {
            tags[s] = t;
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    tags
}

/// The node's own line of CLUSTER NODES.
fn my_line(con: &mut redis::Connection) -> String {
    let txt: String = q(con, &["CLUSTER", "NODES"]);
    txt.lines()
        .find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself")))
        .expect("myself line")
        .to_string()
}

/// The slots a node serves, from its own line of CLUSTER NODES (no slot
/// open).
fn my_slots(con: &mut redis::Connection) -> Vec<usize> {
    my_line(con)
        .split(' ')
        .skip(8)
        .flat_map(|r| {
            let (lo, hi) = r.split_once('-').unwrap_or((r, r));
            lo.parse::<usize>().expect("slot")..=hi.parse::<usize>().expect("slot")
        })
        .collect()
}

/// `redis-cli --cluster check` against the node on `port`: (exit ok, output).
fn cluster_check_output(port: u16) -> (bool, String) {
    run_tool(
        "redis-cli",
        &[
            "--cluster".into(),
            "check".into(),
            format!("127.0.0.1:{port}"),
        ],
        Duration::from_secs(30),
    )
}

/// Waits until the check passes with every node agreeing and no warning.
fn wait_clean_check(port: u16) {
    wait_until("a clean cluster check", Duration::from_secs(30), || {
        let (ok, out) = cluster_check_output(port);
        ok && out.contains("[OK] All nodes agree about slots configuration.")
            && !out.contains("[WARNING]")
    });
}

/// Waits until every node reports `cluster_state:ok`.
fn wait_all_ok(nodes: &[Node]) {
    for n in nodes {
        let mut c = n.srv.client();
        wait_until("cluster_state:ok", Duration::from_secs(30), || {
            info_field(&cluster_info(&mut c), "cluster_state") == "ok"
        });
    }
}

fn check_cluster(port: u16) -> String {
    let (ok, out) = cluster_check_output(port);
    assert!(ok, "cluster check failed:\n{out}");
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(!out.contains("[WARNING]"), "{out}");
    out
}

// ------------------------------------------------------------ one node

#[test]
fn single_node_commands_and_errors_match_redis() {
    let dir = scratch_dir("single");
    let node = start_node(&dir, &[]);
    let mut c = node.srv.client();

    let info: String = q(&mut c, &["INFO", "cluster"]);
    assert!(info.contains("cluster_enabled:1"), "{info}");
    let ci = cluster_info(&mut c);
    assert_eq!(info_field(&ci, "cluster_state"), "fail");
    assert_eq!(info_field(&ci, "cluster_known_nodes"), "1");
    assert_eq!(info_field(&ci, "cluster_slots_assigned"), "0");
    assert_eq!(
        info_field(&ci, "total_cluster_links_buffer_limit_exceeded"),
        "0"
    );
    let id = myid(&mut c);
    assert_eq!(id.len(), 40);
    let nodes: String = q(&mut c, &["CLUSTER", "NODES"]);
    assert_eq!(
        nodes,
        format!(
            "{id} :{}@{} myself,master - 0 0 0 connected\n",
            node.srv.port, node.cport
        )
    );
    assert_eq!(q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "foo"]), 12182);
    assert_eq!(
        q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "{user1000}.x"]),
        3443
    );

    assert_eq!(
        q_err(&mut c, &["SET", "foo", "bar"]),
        "CLUSTERDOWN Hash slot not served"
    );
    assert_eq!(
        q_err(&mut c, &["SELECT", "1"]),
        "ERR SELECT is not allowed in cluster mode"
    );
    let _: () = q(&mut c, &["SELECT", "0"]);
    let _: () = q(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "0", "100"]);
    let _: () = q(&mut c, &["CLUSTER", "ADDSLOTS", "200"]);
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "ADDSLOTS", "0"]),
        "ERR Slot 0 is already busy"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "ADDSLOTS", "20000"]),
        "ERR Invalid or out of range slot"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "ADDSLOTS", "300", "300"]),
        "ERR Slot 300 specified multiple times"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "DELSLOTS", "150"]),
        "ERR Slot 150 is already unassigned"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "5", "1"]),
        "ERR start slot number 5 is greater than end slot number 1"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "5"]),
        "ERR wrong number of arguments for 'cluster|addslotsrange' command"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "SETSLOT", "5", "MIGRATING", "abc"]),
        "ERR I don't know about node abc"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "SETSLOT", "5", "NODE", "abc"]),
        "ERR Unknown node abc"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "SETSLOT", "5", "bogus"]),
        "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "COUNTKEYSINSLOT", "99999"]),
        "ERR Invalid slot"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "GETKEYSINSLOT", "1", "-1"]),
        "ERR Invalid slot or number of keys"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "MEET", "127.0.0.1", "notaport"]),
        "ERR Invalid TCP base port specified: notaport"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "MEET", "1.2.3.x", "5"]),
        "ERR Invalid node address specified: 1.2.3.x:5"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "FORGET", &id]),
        "ERR I tried hard but I can't forget myself..."
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "FORGET", "abc"]),
        "ERR Unknown node abc"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "COUNT-FAILURE-REPORTS", "abc"]),
        "ERR Unknown node abc"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "FAILOVER"]),
        "ERR You should send CLUSTER FAILOVER to a replica"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "FAILOVER", "TAKEOVER"]),
        "ERR You should send CLUSTER FAILOVER to a replica"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "FAILOVER", "SOON"]),
        "ERR syntax error"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "REPLICATE", &id]),
        "ERR Can't replicate myself"
    );
    assert_eq!(
        q_err(&mut c, &["REPLICAOF", "127.0.0.1", "6379"]),
        "ERR REPLICAOF not allowed in cluster mode."
    );
    assert_eq!(
        q_err(&mut c, &["SLAVEOF", "NO", "ONE"]),
        "ERR REPLICAOF not allowed in cluster mode."
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "REPLICATE", "abc"]),
        "ERR Unknown node abc"
    );
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "REPLICAS", "abc"]),
        "ERR Unknown node abc"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CLUSTER", "SLAVES", &id]),
        Vec::<String>::new()
    );
    assert_eq!(q::<String>(&mut c, &["CLUSTER", "BUMPEPOCH"]), "BUMPED 1");
    assert_eq!(q::<String>(&mut c, &["CLUSTER", "BUMPEPOCH"]), "STILL 1");
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "SET-CONFIG-EPOCH", "5"]),
        "ERR Node config epoch is already non-zero"
    );
    let nodes: String = q(&mut c, &["CLUSTER", "NODES"]);
    assert!(nodes.ends_with(" 1 connected 0-100 200\n"), "{nodes}");

    // Slot 0 for "foo"? No: 12182 is not served; "a" hashes to 15495.
    let _: () = q(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "101", "199"]);
    let _: () = q(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "201", "16383"]);
    wait_until("cluster_state:ok", Duration::from_secs(10), || {
        info_field(&cluster_info(&mut c), "cluster_state") == "ok"
    });
    let _: () = q(&mut c, &["SET", "foo", "bar"]);
    assert_eq!(
        q_err(&mut c, &["MSET", "a", "1", "b", "2"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let _: () = q(&mut c, &["MSET", "{t}a", "1", "{t}b", "2"]);
    assert_eq!(
        q::<i64>(&mut c, &["CLUSTER", "COUNTKEYSINSLOT", "12182"]),
        1
    );
    let keys: Vec<String> = q(&mut c, &["CLUSTER", "GETKEYSINSLOT", "12182", "10"]);
    assert_eq!(keys, vec!["foo".to_string()]);

    // A transaction whose keys span slots fails at EXEC and is discarded.
    let mut raw = node.srv.raw();
    raw.roundtrip(
        &[
            resp_cmd(&[b"MULTI"]),
            resp_cmd(&[b"SET", b"a", b"1"]),
            resp_cmd(&[b"SET", b"b", b"1"]),
            resp_cmd(&[b"EXEC"]),
            resp_cmd(&[b"GET", b"a"]),
        ]
        .concat(),
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n$-1\r\n",
    );
    // A queued command that is itself cross-slot dooms the transaction.
    raw.roundtrip(
        &[
            resp_cmd(&[b"MULTI"]),
            resp_cmd(&[b"MSET", b"a", b"1", b"b", b"2"]),
            resp_cmd(&[b"EXEC"]),
        ]
        .concat(),
        b"+OK\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n-EXECABORT Transaction discarded because of previous errors.\r\n",
    );

    // DUMP payloads are Redis's: a DUMP of "12345" from Redis 7.0.
    let _: () = q(&mut c, &["SET", "n", "12345"]);
    let dumped: Vec<u8> = q(&mut c, &["DUMP", "n"]);
    assert_eq!(
        dumped,
        b"\x00\xc1\x39\x30\x0a\x00\x9d\x94\xea\x27\x93\xfc\x08\xb9"
    );
    assert_eq!(
        err_text(
            redis::cmd("RESTORE")
                .arg("n")
                .arg(0)
                .arg(&dumped)
                .query::<()>(&mut c)
        ),
        "BUSYKEY Target key name already exists."
    );
    let _: () = redis::cmd("RESTORE")
        .arg("n2")
        .arg(0)
        .arg(&dumped)
        .query(&mut c)
        .unwrap();
    assert_eq!(q::<String>(&mut c, &["GET", "n2"]), "12345");
    let mut bad = dumped.clone();
    bad[3] ^= 1;
    assert_eq!(
        err_text(
            redis::cmd("RESTORE")
                .arg("n3")
                .arg(0)
                .arg(&bad)
                .query::<()>(&mut c)
        ),
        "ERR DUMP payload version or checksum are wrong"
    );
    let long = "x".repeat(1000);
    let _: () = q(&mut c, &["SET", "long", &long]);
    let _: () = q(&mut c, &["RPUSH", "list", "a", "bb", "123"]);
    for key in ["long", "list"] {
        let p: Vec<u8> = q(&mut c, &["DUMP", key]);
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(5000)
            .arg(&p)
            .arg("REPLACE")
            .query(&mut c)
            .unwrap();
        assert!(q::<i64>(&mut c, &["PTTL", key]) > 0);
    }
    assert_eq!(q::<String>(&mut c, &["GET", "long"]), long);
    let l: Vec<String> = q(&mut c, &["LRANGE", "list", "0", "-1"]);
    assert_eq!(l, vec!["a", "bb", "123"]);
    assert_eq!(
        q_err(&mut c, &["CLUSTER", "RESET"]),
        "ERR CLUSTER RESET can't be called with master nodes containing keys"
    );
}

#[test]
fn nodes_conf_is_reloaded_on_restart() {
    let dir = scratch_dir("reload");
    let node = start_node(&dir, &[]);
    let mut c = node.srv.client();
    let id = myid(&mut c);
    let _: () = q(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "0", "999"]);
    let _: () = q(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "2000", "2000"]);
    let _: () = q(&mut c, &["CLUSTER", "SET-CONFIG-EPOCH", "7"]);
    drop(c);
    let node = restart_node(node, &[]);
    let mut c = node.srv.client();
    assert_eq!(myid(&mut c), id);
    let nodes: String = q(&mut c, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(&format!("{id} ")), "{nodes}");
    assert!(nodes.ends_with(" 7 connected 0-999 2000\n"), "{nodes}");
    let ci = cluster_info(&mut c);
    assert_eq!(info_field(&ci, "cluster_current_epoch"), "7");
    assert_eq!(info_field(&ci, "cluster_slots_assigned"), "1001");
}

// ----------------------------------------------------------- multi-node

#[test]
fn redis_cli_cluster_create_check_redirects_clients_and_failure_detection() {
    let dir = scratch_dir("create");
    let mut nodes = create_cluster(&dir, 3, &["--cluster-node-timeout", "1000"]);
    check_cluster(nodes[0].srv.port);
    let ports: Vec<u16> = nodes.iter().map(|n| n.srv.port).collect();

    // redis-cli -c follows MOVED.
    for (i, port) in ports.iter().enumerate() {
        let (ok, out) = run_tool(
            "redis-cli",
            &[
                "-c".into(),
                "-p".into(),
                port.to_string(),
                "SET".into(),
                format!("cli-key-{i}"),
                "v".into(),
            ],
            Duration::from_secs(10),
        );
        assert!(ok && out.trim() == "OK", "{out}");
    }
    // A plain client gets MOVED to the owner.
    let owner = nodes
        .iter()
        .position(|n| {
            let nodes_txt: String = q(&mut n.srv.client(), &["CLUSTER", "NODES"]);
            nodes_txt
                .lines()
                .find(|l| l.contains("myself"))
                .is_some_and(|l| l.contains("10923-16383"))
        })
        .expect("owner of slot 12182");
    let other = (owner + 1) % 3;
    let mut c = nodes[other].srv.client();
    assert_eq!(
        q_err(&mut c, &["GET", "foo"]),
        format!("MOVED 12182 127.0.0.1:{}", ports[owner])
    );

    // The redis crate's cluster client writes 100,000 keys, six or seven
    // in every one of the 16,384 slots, through cluster pipelines (which
    // group the commands by node), and reads every one back.
    const KEYS: usize = 100_000;
    let tags = slot_tags();
    let key = |i: usize| format!("k{{{}}}{i}", tags[i % SLOTS]);
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let client = redis::cluster::ClusterClient::new(urls).expect("cluster client");
    let mut cc = client.get_connection().expect("cluster connection");
    let batches: Vec<Vec<usize>> = (0..KEYS)
        .collect::<Vec<_>>()
        .chunks(5000)
        .map(<[usize]>::to_vec)
        .collect();
    for batch in &batches {
        let mut p = redis::cluster::cluster_pipe();
        for &i in batch {
            p.cmd("SET").arg(key(i)).arg(i).ignore();
        }
        p.query::<()>(&mut cc).expect("cluster pipeline of SETs");
    }
    for batch in &batches {
        let mut p = redis::cluster::cluster_pipe();
        for &i in batch {
            p.cmd("GET").arg(key(i));
        }
        let got: Vec<usize> = p.query(&mut cc).expect("cluster pipeline of GETs");
        assert_eq!(&got, batch);
    }
    // Server side, each node holds exactly the keys of its slots' tags
    // (CLUSTER COUNTKEYSINSLOT per slot would scan a shard per call:
    // minutes in a debug build at this size).
    let cli_slots: Vec<usize> = (0..3)
        .map(|i| key_slot(format!("cli-key-{i}").as_bytes()) as usize)
        .collect();
    let mut total = 0;
    for n in &nodes {
        let mut c = n.srv.client();
        let expected: usize = my_slots(&mut c)
            .into_iter()
            .map(|s| {
                KEYS / SLOTS
                    + usize::from(s < KEYS % SLOTS)
                    + cli_slots.iter().filter(|&&c| c == s).count()
            })
            .sum();
        assert_eq!(q::<usize>(&mut c, &["DBSIZE"]), expected);
        total += expected;
    }
    assert_eq!(total, KEYS + 3);

    // redis-benchmark in cluster mode runs without errors.
    let (ok, out) = run_tool(
        "redis-benchmark",
        &[
            "--cluster".into(),
            "-p".into(),
            ports[0].to_string(),
            "-t".into(),
            "set,get".into(),
            "-n".into(),
            "5000".into(),
            "-P".into(),
            "16".into(),
            "-q".into(),
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "{out}");
    assert!(out.contains("SET:") && out.contains("GET:"), "{out}");
    assert!(!out.to_lowercase().contains("error"), "{out}");

    // Kill one primary: the others mark it PFAIL, then FAIL by majority.
    let victim = nodes.pop().expect("third node");
    let mut c0 = nodes[0].srv.client();
    let victim_id = myid(&mut victim.srv.client());
    drop(victim);
    for n in &nodes {
        let mut c = n.srv.client();
        wait_until("FAIL flag", Duration::from_secs(20), || {
            let txt: String = q(&mut c, &["CLUSTER", "NODES"]);
            txt.lines().any(|l| {
                l.starts_with(&victim_id)
                    && l.split(' ')
                        .nth(2)
                        .is_some_and(|f| f.split(',').any(|x| x == "fail"))
            })
        });
        wait_until("cluster_state:fail", Duration::from_secs(10), || {
            info_field(&cluster_info(&mut c), "cluster_state") == "fail"
        });
    }
    assert_eq!(
        q_err(&mut c0, &["GET", "foo"]),
        "CLUSTERDOWN The cluster is down"
    );
    // The other primary's gossip counts as a failure report.
    wait_until("a failure report", Duration::from_secs(10), || {
        q::<i64>(&mut c0, &["CLUSTER", "COUNT-FAILURE-REPORTS", &victim_id]) >= 1
    });
    let shards: redis::Value = q(&mut c0, &["CLUSTER", "SHARDS"]);
    let shards = format!("{shards:?}");
    assert!(
        shards.contains("\"fail\"") && shards.contains("\"online\""),
        "{shards}"
    );
    // Reads may be allowed while down; writes are still refused.
    let _: () = q(
        &mut c0,
        &["CONFIG", "SET", "cluster-allow-reads-when-down", "yes"],
    );
    let k = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| q_ok(&mut c0, &["GET", k]))
        .expect("a key served by node 0");
    assert_eq!(
        q_err(&mut c0, &["SET", &k, "v"]),
        "CLUSTERDOWN The cluster is down and only accepts read commands"
    );
}

#[test]
fn reshard_moves_slots_with_keys_and_keys_stay_readable() {
    let dir = scratch_dir("reshard");
    let nodes = create_cluster(&dir, 3, &[]);
    let ports: Vec<u16> = nodes.iter().map(|n| n.srv.port).collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let client = redis::cluster::ClusterClient::new(urls).expect("cluster client");
    let mut cc = client.get_connection().expect("cluster connection");
    for i in 0..3000 {
        let _: () = redis::cmd("SET")
            .arg(format!("r{i}"))
            .arg(i)
            .query(&mut cc)
            .expect("SET");
    }
    let from = myid(&mut nodes[0].srv.client());
    let to = myid(&mut nodes[1].srv.client());
    let before_to: i64 = q(&mut nodes[1].srv.client(), &["DBSIZE"]);
    // A reader and a writer run through the reshard; the cluster client
    // follows MOVED / ASK / TRYAGAIN, so no error may reach them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let client = redis::cluster::ClusterClient::new(urls).expect("cluster client");
            let mut cc = client.get_connection().expect("cluster connection");
            let (mut ops, mut i) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = format!("r{}", i % 3000);
                let v: Option<i64> = redis::cmd("GET")
                    .arg(&k)
                    .query(&mut cc)
                    .unwrap_or_else(|e| panic!("GET {k} during reshard: {e}"));
                assert_eq!(v, Some((i % 3000) as i64), "key {k} during reshard");
                let _: () = redis::cmd("SET")
                    .arg(format!("w{i}"))
                    .arg(i)
                    .query(&mut cc)
                    .unwrap_or_else(|e| panic!("SET during reshard: {e}"));
                i += 1;
                ops += 2;
            }
            (ops, i)
        })
    };
    let (ok, out) = run_tool(
        "redis-cli",
        &[
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", ports[0]),
            "--cluster-from",
            &from,
            "--cluster-to",
            &to,
            "--cluster-slots",
            "300",
            "--cluster-yes",
        ]
        .map(String::from),
        Duration::from_secs(120),
    );
    assert!(ok, "reshard failed:\n{out}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ops, written) = load.join().expect("load thread");
    assert!(ops > 0);
    let after_to: i64 = q(&mut nodes[1].srv.client(), &["DBSIZE"]);
    assert!(
        after_to > before_to,
        "no keys moved: {before_to} -> {after_to}"
    );
    check_cluster(ports[2]);
    // Every key is still there, through the redirects.
    let client = redis::cluster::ClusterClient::new(
        ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>(),
    )
    .expect("cluster client");
    let mut cc = client.get_connection().expect("cluster connection");
    for i in 0..3000 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("r{i}"))
            .query(&mut cc)
            .expect("GET");
        assert_eq!(v, Some(i), "key r{i}");
    }
    for i in (0..written).step_by(37) {
        let v: Option<u64> = redis::cmd("GET")
            .arg(format!("w{i}"))
            .query(&mut cc)
            .expect("GET");
        assert_eq!(v, Some(i), "written key w{i}");
    }
    let total: i64 = nodes
        .iter()
        .map(|n| q::<i64>(&mut n.srv.client(), &["DBSIZE"]))
        .sum();
    assert_eq!(total, 3000 + written as i64);

    // add-node joins an empty primary; del-node removes it again.
    let extra = start_node(&dir, &[]);
    let (ok, out) = run_tool(
        "redis-cli",
        &[
            "--cluster".into(),
            "add-node".into(),
            format!("127.0.0.1:{}", extra.srv.port),
            format!("127.0.0.1:{}", ports[0]),
        ],
        Duration::from_secs(60),
    );
    assert!(
        ok && out.contains("[OK] New node added correctly."),
        "{out}"
    );
    let extra_id = myid(&mut extra.srv.client());
    for n in &nodes {
        let mut c = n.srv.client();
        wait_until("new node known", Duration::from_secs(20), || {
            q::<String>(&mut c, &["CLUSTER", "NODES"]).contains(&extra_id)
        });
    }
    // The new node learns the others' slots by gossip after they learn of
    // it: until then `--cluster check` reports that nodes disagree (seen
    // once in a full `cargo test`).
    wait_clean_check(ports[1]);
    check_cluster(ports[1]);
    let (ok, out) = run_tool(
        "redis-cli",
        &[
            "--cluster".into(),
            "del-node".into(),
            format!("127.0.0.1:{}", ports[0]),
            extra_id.clone(),
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "{out}");
    for n in &nodes {
        let txt: String = q(&mut n.srv.client(), &["CLUSTER", "NODES"]);
        assert!(!txt.contains(&extra_id), "{txt}");
    }
    check_cluster(ports[0]);
}

/// `CLUSTER MEET` from `a` to `b`.
fn meet(a: &Node, b: &Node) {
    let _: () = q(
        &mut a.srv.client(),
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &b.srv.port.to_string(),
            &b.cport.to_string(),
        ],
    );
}

/// Two nodes that met, the first serving all 16,384 slots, the second
/// none, both `cluster_state:ok`.
fn a_serves_every_slot_b_none(dir: &std::path::Path) -> (Node, Node) {
    let a = start_node(dir, &[]);
    let b = start_node(dir, &[]);
    let mut ca = a.srv.client();
    let mut cb = b.srv.client();
    let _: () = q(&mut ca, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    meet(&a, &b);
    wait_until("b learns a's slots", Duration::from_secs(20), || {
        info_field(&cluster_info(&mut cb), "cluster_state") == "ok"
            && info_field(&cluster_info(&mut ca), "cluster_state") == "ok"
    });
    (a, b)
}

/// Two nodes meet; then one slot is migrated by hand, exercising ASK,
/// ASKING, TRYAGAIN, RESTORE-ASKING and MIGRATE as a client sees them.
#[test]
fn ask_asking_tryagain_and_migrate_flow() {
    let dir = scratch_dir("ask");
    let (a, b) = a_serves_every_slot_b_none(&dir);
    let mut ca = a.srv.client();
    let mut cb = b.srv.client();
    let a_id = myid(&mut ca);
    let b_id = myid(&mut cb);
    let slot: i64 = q(&mut ca, &["CLUSTER", "KEYSLOT", "{t}"]);
    let s = slot.to_string();
    let _: () = q(&mut ca, &["SET", "{t}a", "1"]);
    let _: () = q(&mut ca, &["SET", "{t}c", "3"]);
    let _: () = q(&mut cb, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &a_id]);
    let _: () = q(&mut ca, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &b_id]);
    let nodes: String = q(&mut ca, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(&format!("[{slot}->-{b_id}]")), "{nodes}");
    let nodes: String = q(&mut cb, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(&format!("[{slot}-<-{a_id}]")), "{nodes}");

    let b_addr = format!("127.0.0.1:{}", b.srv.port);
    let a_addr = format!("127.0.0.1:{}", a.srv.port);
    // Present keys are served by the source; absent ones are ASKed away.
    assert_eq!(q::<String>(&mut ca, &["GET", "{t}a"]), "1");
    assert_eq!(
        q_err(&mut ca, &["GET", "{t}b"]),
        format!("ASK {slot} {b_addr}")
    );
    assert_eq!(
        q_err(&mut ca, &["MGET", "{t}a", "{t}b"]),
        "TRYAGAIN Multiple keys request during rehashing of slot"
    );
    // The target redirects unless the client says ASKING, once.
    assert_eq!(
        q_err(&mut cb, &["GET", "{t}b"]),
        format!("MOVED {slot} {a_addr}")
    );
    let _: () = q(&mut cb, &["ASKING"]);
    assert_eq!(q::<Option<String>>(&mut cb, &["GET", "{t}b"]), None);
    assert_eq!(
        q_err(&mut cb, &["GET", "{t}b"]),
        format!("MOVED {slot} {a_addr}")
    );

    // Move one key: the source then ASKs for it, the target has it.
    let port_b = b.srv.port.to_string();
    let r: String = q(
        &mut ca,
        &["MIGRATE", "127.0.0.1", &port_b, "{t}a", "0", "5000"],
    );
    assert_eq!(r, "OK");
    assert_eq!(
        q_err(&mut ca, &["GET", "{t}a"]),
        format!("ASK {slot} {b_addr}")
    );
    let _: () = q(&mut cb, &["ASKING"]);
    assert_eq!(q::<String>(&mut cb, &["GET", "{t}a"]), "1");
    // Half the keys moved: a multi-key request must wait.
    let _: () = q(&mut cb, &["ASKING"]);
    assert_eq!(
        q_err(&mut cb, &["MGET", "{t}a", "{t}c"]),
        "TRYAGAIN Multiple keys request during rehashing of slot"
    );
    let r: String = q(
        &mut ca,
        &[
            "MIGRATE",
            "127.0.0.1",
            &port_b,
            "",
            "0",
            "5000",
            "KEYS",
            "{t}c",
            "{t}zz",
        ],
    );
    assert_eq!(r, "OK");
    let r: String = q(
        &mut ca,
        &["MIGRATE", "127.0.0.1", &port_b, "{t}c", "0", "5000"],
    );
    assert_eq!(r, "NOKEY");
    assert_eq!(q::<i64>(&mut ca, &["CLUSTER", "COUNTKEYSINSLOT", &s]), 0);

    // Close the migration: the slot now belongs to b everywhere.
    let _: () = q(&mut cb, &["CLUSTER", "SETSLOT", &s, "NODE", &b_id]);
    let _: () = q(&mut ca, &["CLUSTER", "SETSLOT", &s, "NODE", &b_id]);
    assert_eq!(
        q_err(&mut ca, &["GET", "{t}a"]),
        format!("MOVED {slot} {b_addr}")
    );
    assert_eq!(q::<String>(&mut cb, &["GET", "{t}c"]), "3");
    // b took a new config epoch, so a's claim cannot win it back.
    let ci = cluster_info(&mut cb);
    assert_eq!(
        info_field(&ci, "cluster_my_epoch"),
        info_field(&ci, "cluster_current_epoch")
    );

    // INFO errorstats counts each redirection under its own code, not as
    // ERR, so a client's redirections can be told apart from errors.
    let counts =
        |c: &mut redis::Connection| ["ASK", "MOVED", "TRYAGAIN"].map(|code| errorstat(c, code));
    assert_eq!(counts(&mut ca), [2, 1, 1]);
    assert_eq!(counts(&mut cb), [0, 2, 1]);
}

/// Runs `churn` on its own connection in a thread, over and over until it
/// returns false, while `probe` runs on another connection: `rounds`
/// times if given, else until the churn is over. Fails with what the
/// probe reported wrong, if anything.
fn probe_while_churning(
    port: u16,
    rounds: Option<usize>,
    mut churn: impl FnMut(&mut redis::Connection) -> bool + Send + 'static,
    mut probe: impl FnMut(&mut redis::Connection) -> Option<String>,
) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let url = format!("redis://127.0.0.1:{port}/");
    let connect = |url: &str| {
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect")
    };
    let mut churn_con = connect(&url);
    let churner = {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) && churn(&mut churn_con) {}
            done.store(true, Relaxed);
        })
    };
    let mut con = connect(&url);
    let mut bad = Vec::new();
    let mut n = 0;
    while rounds.map_or(!done.load(Relaxed), |r| n < r) {
        bad.extend(probe(&mut con));
        n += 1;
    }
    stop.store(true, Relaxed);
    churner.join().expect("churn thread");
    assert!(
        bad.is_empty(),
        "{} bad replies of {n}, first {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

/// A reply as the probes compare it: Ok(bulk string or nil) or the error text.
fn reply_of(r: redis::RedisResult<Option<String>>) -> Result<Option<String>, String> {
    r.map_err(|e| err_text::<()>(Err(e)))
}

/// A slot whose migration is opened and closed over and over: a key
/// missing here is always ASKed to the target while the migration is
/// open, never to an address read after it closed (":0", which a
/// client cannot follow: redis-py failed on it with an AttributeError
/// during a reshard). Once closed, the key is served here again.
#[test]
fn ask_never_names_a_migration_that_just_closed() {
    let dir = scratch_dir("ask-race");
    let (a, b) = a_serves_every_slot_b_none(&dir);
    let b_id = myid(&mut b.srv.client());
    let s = q::<i64>(&mut a.srv.client(), &["CLUSTER", "KEYSLOT", "{race}"]).to_string();
    let ask = format!("ASK {s} 127.0.0.1:{}", b.srv.port);
    let churn = move |con: &mut redis::Connection| {
        let mut p = redis::pipe();
        for _ in 0..50 {
            p.add_command(cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &b_id]));
            p.add_command(cmd(&["CLUSTER", "SETSLOT", &s, "STABLE"]));
        }
        let _: () = p.query(con).expect("SETSLOT churn");
        true
    };
    probe_while_churning(a.srv.port, Some(20_000), churn, |con| {
        match reply_of(cmd(&["GET", "{race}missing"]).query(con)) {
            Ok(None) => None,
            Err(e) if e == ask => None,
            other => Some(format!("{other:?}")),
        }
    });
}

/// Keys MIGRATEd one by one while a client reads the next one to go:
/// each read finds the key here or is ASKed to the target, never finds
/// it missing. MIGRATE (which holds every shard) cannot slip in between
/// the check that the key is here and the read.
#[test]
fn a_key_being_migrated_is_never_read_as_missing() {
    const KEYS: usize = 3000;
    let dir = scratch_dir("migrate-race");
    let (a, b) = a_serves_every_slot_b_none(&dir);
    let mut ca = a.srv.client();
    let mut cb = b.srv.client();
    let a_id = myid(&mut ca);
    let b_id = myid(&mut cb);
    let s = q::<i64>(&mut ca, &["CLUSTER", "KEYSLOT", "{mv}"]).to_string();
    let mut p = redis::pipe();
    for i in 0..KEYS {
        p.add_command(cmd(&["SET", &format!("{{mv}}{i}"), "v"]));
    }
    let _: () = p.query(&mut ca).expect("SETs");
    let _: () = q(&mut cb, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &a_id]);
    let _: () = q(&mut ca, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &b_id]);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pb = b.srv.port.to_string();
    let churn = {
        let next = next.clone();
        move |con: &mut redis::Connection| {
            let i = next.load(std::sync::atomic::Ordering::Relaxed);
            let k = format!("{{mv}}{i}");
            assert_eq!(
                q::<String>(con, &["MIGRATE", "127.0.0.1", &pb, &k, "0", "5000"]),
                "OK"
            );
            next.store(i + 1, std::sync::atomic::Ordering::Relaxed);
            i + 1 < KEYS
        }
    };
    let ask = format!("ASK {s} 127.0.0.1:{}", b.srv.port);
    probe_while_churning(a.srv.port, None, churn, |con| {
        let i = next
            .load(std::sync::atomic::Ordering::Relaxed)
            .min(KEYS - 1);
        match reply_of(cmd(&["GET", &format!("{{mv}}{i}")]).query(con)) {
            Ok(Some(v)) if v == "v" => None,
            Err(e) if e == ask => None,
            other => Some(format!("key {i}: {other:?}")),
        }
    });
    assert_eq!(q::<i64>(&mut cb, &["DBSIZE"]), KEYS as i64);
}

/// A MIGRATE on a primary reaches its replica as a DEL of the keys that
/// moved (as in Redis), not as a MIGRATE the replica would run against
/// the target itself: that one failed with BUSYKEY, left the replica
/// holding keys its primary no longer had, and with REPLACE would
/// overwrite the target's newer values with the replica's copies.
#[test]
fn migrate_reaches_replicas_as_del() {
    let dir = scratch_dir("migrate-repl");
    let (a, b) = a_serves_every_slot_b_none(&dir);
    let r = start_node(&dir, &[]);
    meet(&a, &r);
    let mut ca = a.srv.client();
    let mut cb = b.srv.client();
    let mut cr = r.srv.client();
    let a_id = myid(&mut ca);
    let b_id = myid(&mut cb);
    wait_until("r knows a", Duration::from_secs(20), || {
        q::<String>(&mut cr, &["CLUSTER", "NODES"]).contains(&a_id)
    });
    let _: () = q(&mut cr, &["CLUSTER", "REPLICATE", &a_id]);
    for k in ["{m}1", "{m}2", "{m}3"] {
        let _: () = q(&mut ca, &["SET", k, "v"]);
    }
    assert_eq!(q::<i64>(&mut ca, &["WAIT", "1", "10000"]), 1);
    assert_eq!(q::<i64>(&mut cr, &["DBSIZE"]), 3);

    let s = q::<i64>(&mut ca, &["CLUSTER", "KEYSLOT", "{m}"]).to_string();
    let _: () = q(&mut cb, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &a_id]);
    let _: () = q(&mut ca, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &b_id]);
    let port_b = b.srv.port.to_string();
    let migrate = |con: &mut redis::Connection, extra: &[&str]| {
        let mut args = vec!["MIGRATE", "127.0.0.1", &port_b, "", "0", "5000"];
        args.extend(extra);
        assert_eq!(q::<String>(con, &args), "OK");
    };
    // COPY changes nothing here, so nothing reaches the replica.
    migrate(&mut ca, &["COPY", "KEYS", "{m}3"]);
    migrate(&mut ca, &["KEYS", "{m}1", "{m}2"]);
    assert_eq!(q::<i64>(&mut ca, &["WAIT", "1", "10000"]), 1);
    assert_eq!(q::<i64>(&mut ca, &["DBSIZE"]), 1);
    assert_eq!(q::<i64>(&mut cr, &["DBSIZE"]), 1);
    assert_eq!(q::<i64>(&mut cb, &["DBSIZE"]), 3);
    assert_eq!(errorstat(&mut cb, "BUSYKEY"), 0);
    let restores: String = q(&mut cb, &["INFO", "commandstats"]);
    assert!(
        restores.contains("cmdstat_restore-asking:calls=3,"),
        "{restores}"
    );
}

/// `errorstat_<code>:count=N` from INFO errorstats (0 when absent).
fn errorstat(con: &mut redis::Connection, code: &str) -> u64 {
    let info: String = q(con, &["INFO", "errorstats"]);
    info_field(&info, &format!("errorstat_{code}"))
        .strip_prefix("count=")
        .map_or(0, |n| n.parse().expect("errorstat count"))
}

#[test]
fn bus_peers_must_share_the_secret() {
    if against_real_redis() {
        return; // cluster-bus-secret is ferrocache's
    }
    let dir = scratch_dir("secret");
    let a = start_node(
        &dir,
        &[
            "--cluster-bus-secret",
            "s3cret",
            "--cluster-node-timeout",
            "500",
        ],
    );
    let b = start_node(
        &dir,
        &[
            "--cluster-bus-secret",
            "other",
            "--cluster-node-timeout",
            "500",
        ],
    );
    let c = start_node(
        &dir,
        &[
            "--cluster-bus-secret",
            "s3cret",
            "--cluster-node-timeout",
            "500",
        ],
    );
    let mut ca = a.srv.client();
    let mut cb = b.srv.client();
    let mut cc = c.srv.client();
    let _: () = q(
        &mut ca,
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &b.srv.port.to_string(),
            &b.cport.to_string(),
        ],
    );
    let _: () = q(
        &mut ca,
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &c.srv.port.to_string(),
            &c.cport.to_string(),
        ],
    );
    // c knows the secret and joins; b does not, and its handshake times out.
    wait_until("c joins", Duration::from_secs(20), || {
        info_field(&cluster_info(&mut cc), "cluster_known_nodes") == "2"
    });
    wait_until("b's handshake dropped", Duration::from_secs(20), || {
        info_field(&cluster_info(&mut ca), "cluster_known_nodes") == "2"
    });
    let nodes: String = q(&mut ca, &["CLUSTER", "NODES"]);
    assert!(!nodes.contains(&format!(":{}@", b.srv.port)), "{nodes}");
    assert_eq!(
        info_field(&cluster_info(&mut cb), "cluster_known_nodes"),
        "1"
    );
}

/// Two nodes claim the same slot: the higher config epoch wins when they
/// meet, and the loser drops the keys it held there (Redis's "dirty
/// slots").
#[test]
fn higher_config_epoch_wins_a_slot_and_the_loser_drops_its_keys() {
    let dir = scratch_dir("epoch");
    let a = start_node(&dir, &["--cluster-node-timeout", "1000"]);
    let b = start_node(&dir, &["--cluster-node-timeout", "1000"]);
    let mut ca = a.srv.client();
    let mut cb = b.srv.client();
    let _: () = q(&mut ca, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    let _: () = q(&mut ca, &["CLUSTER", "SET-CONFIG-EPOCH", "1"]);
    let _: () = q(&mut cb, &["CLUSTER", "ADDSLOTS", "0"]);
    let _: () = q(&mut cb, &["CLUSTER", "SET-CONFIG-EPOCH", "2"]);
    // A key of slot 0 on a, and one of another slot.
    let key0 = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| key_slot(k.as_bytes()) == 0)
        .expect("a key of slot 0");
    wait_until("a serves", Duration::from_secs(10), || {
        info_field(&cluster_info(&mut ca), "cluster_state") == "ok"
    });
    let _: () = q(&mut ca, &["SET", &key0, "x"]);
    let _: () = q(&mut ca, &["SET", "foo", "y"]);
    let _: () = q(
        &mut ca,
        &[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &b.srv.port.to_string(),
            &b.cport.to_string(),
        ],
    );
    let b_id = myid(&mut cb);
    wait_until("a hands slot 0 to b", Duration::from_secs(20), || {
        let nodes: String = q(&mut ca, &["CLUSTER", "NODES"]);
        nodes
            .lines()
            .any(|l| l.starts_with(&b_id) && l.ends_with(" connected 0"))
    });
    wait_until("a drops slot 0's keys", Duration::from_secs(10), || {
        q::<i64>(&mut ca, &["CLUSTER", "COUNTKEYSINSLOT", "0"]) == 0
    });
    assert_eq!(
        q_err(&mut ca, &["GET", &key0]),
        format!("MOVED 0 127.0.0.1:{}", b.srv.port)
    );
    assert_eq!(q::<String>(&mut ca, &["GET", "foo"]), "y");
}

#[test]
fn announced_address_is_what_other_nodes_see() {
    let dir = scratch_dir("announce");
    let a = start_node(&dir, &[]);
    let mut ca = a.srv.client();
    let _: () = q(
        &mut ca,
        &["CONFIG", "SET", "cluster-announce-ip", "127.0.0.1"],
    );
    let _: () = q(&mut ca, &["CONFIG", "SET", "cluster-announce-port", "7777"]);
    let id = myid(&mut ca);
    wait_until("announced address", Duration::from_secs(10), || {
        let nodes: String = q(&mut ca, &["CLUSTER", "NODES"]);
        nodes.starts_with(&format!("{id} 127.0.0.1:7777@{} myself", a.cport))
    });
}

/// The minority side of a partition stops serving: with two of three
/// primaries frozen (SIGSTOP), the third sees no majority after
/// node-timeout and refuses keyed commands; once they resume it serves
/// again.
#[test]
fn a_primary_without_a_majority_stops_serving_until_it_heals() {
    let dir = scratch_dir("minority");
    let nodes = create_cluster(&dir, 3, &["--cluster-node-timeout", "1000"]);
    let mut c0 = nodes[0].srv.client();
    let k = (0..)
        .map(|i| format!("m{i}"))
        .find(|k| q_ok(&mut c0, &["SET", k, "1"]))
        .expect("a key served by node 0");
    nodes[1].srv.signal(libc::SIGSTOP);
    nodes[2].srv.signal(libc::SIGSTOP);
    let minority = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("cluster_state:fail", Duration::from_secs(20), || {
            info_field(&cluster_info(&mut c0), "cluster_state") == "fail"
        });
        q_err(&mut c0, &["SET", &k, "2"])
    }));
    nodes[1].srv.signal(libc::SIGCONT);
    nodes[2].srv.signal(libc::SIGCONT);
    assert_eq!(
        minority.expect("minority side"),
        "CLUSTERDOWN The cluster is down"
    );
    wait_until("healed", Duration::from_secs(20), || {
        info_field(&cluster_info(&mut c0), "cluster_state") == "ok"
    });
    let _: () = q(&mut c0, &["SET", &k, "3"]);
    assert_eq!(q::<String>(&mut c0, &["GET", &k]), "3");
}

// ------------------------------------------------- replicas and failover

/// (my id, my primary's id if I am a replica), from CLUSTER NODES.
fn my_role(con: &mut redis::Connection) -> (String, Option<String>) {
    let line = my_line(con);
    let f: Vec<&str> = line.split(' ').collect();
    let primary = f[2].contains("slave").then(|| f[3].to_string());
    (f[0].to_string(), primary)
}

/// Like `my_role`, None while the node does not answer.
fn try_role(port: u16) -> Option<(String, Option<String>)> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    con.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let txt: String = cmd(&["CLUSTER", "NODES"]).query(&mut con).ok()?;
    let line = txt
        .lines()
        .find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself")))?;
    let f: Vec<&str> = line.split(' ').collect();
    Some((
        f[0].to_string(),
        f[2].contains("slave").then(|| f[3].to_string()),
    ))
}

/// Index of the node with the given id.
fn by_id(nodes: &[Node], id: &str) -> usize {
    nodes
        .iter()
        .position(|n| my_role(&mut n.srv.client()).0 == id)
        .expect("node by id")
}

/// Writes `count` keys served by the node on `con` (skipping those that
/// are MOVED), then waits for one replica to acknowledge them.
fn write_acked(con: &mut redis::Connection, prefix: &str, count: usize) -> Vec<String> {
    let keys: Vec<String> = (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| q_ok(con, &["SET", k, &format!("v-{k}")]))
        .take(count)
        .collect();
    let acked: i64 = q(con, &["WAIT", "1", "10000"]);
    assert_eq!(acked, 1, "WAIT 1 after writing {prefix}*");
    keys
}

#[test]
fn replicas_serve_reads_and_take_over_when_their_primary_dies() {
    let dir = scratch_dir("failover");
    let extra = ["--cluster-node-timeout", "1000"];
    let mut nodes = create_cluster_with_replicas(&dir, 6, 1, &extra);
    check_cluster(nodes[0].srv.port);
    let roles: Vec<(String, Option<String>)> =
        nodes.iter().map(|n| my_role(&mut n.srv.client())).collect();
    let primaries: Vec<usize> = (0..6).filter(|&i| roles[i].1.is_none()).collect();
    assert_eq!(primaries.len(), 3, "{roles:?}");
    for (i, (_, p)) in roles.iter().enumerate() {
        if let Some(p) = p {
            assert!(
                primaries.iter().any(|&j| roles[j].0 == *p),
                "node {i} replicates an unknown primary"
            );
        }
    }
    let victim = primaries[0];
    let victim_id = roles[victim].0.clone();
    let replica = (0..6)
        .find(|&i| roles[i].1.as_deref() == Some(victim_id.as_str()))
        .expect("the victim's replica");
    let replica_id = roles[replica].0.clone();
    let mut pc = nodes[victim].srv.client();
    let mut rc = nodes[replica].srv.client();

    // The relation as every view shows it.
    let reps: Vec<String> = q(&mut pc, &["CLUSTER", "REPLICAS", &victim_id]);
    assert_eq!(reps.len(), 1);
    assert!(reps[0].starts_with(&format!("{replica_id} ")), "{reps:?}");
    assert!(
        reps[0].contains(&format!(" slave {victim_id} ")),
        "{reps:?}"
    );
    let slaves: Vec<String> = q(&mut rc, &["CLUSTER", "SLAVES", &victim_id]);
    assert_eq!(slaves.len(), 1);
    // Every range lists its primary and its replica (once gossip has
    // told this node who replicates whom).
    wait_until(
        "CLUSTER SLOTS with replicas",
        Duration::from_secs(20),
        || {
            let slots: Vec<redis::Value> = q(&mut rc, &["CLUSTER", "SLOTS"]);
            slots.len() == 3
                && slots
                    .iter()
                    .all(|r| matches!(r, redis::Value::Array(items) if items.len() == 4))
        },
    );
    let info: String = q(&mut rc, &["INFO", "replication"]);
    assert_eq!(info_field(&info, "role"), "slave");
    assert_eq!(
        info_field(&info, "master_port"),
        nodes[victim].srv.port.to_string()
    );
    // Redis's checks on REPLICATE and REPLICAS.
    let other_primary = roles[primaries[1]].0.clone();
    assert_eq!(
        q_err(&mut pc, &["CLUSTER", "REPLICATE", &other_primary]),
        "ERR To set a master the node must be empty and without assigned slots."
    );
    assert_eq!(
        q_err(&mut pc, &["CLUSTER", "REPLICATE", &replica_id]),
        "ERR I can only replicate a master, not a replica."
    );
    assert_eq!(
        q_err(&mut pc, &["CLUSTER", "REPLICAS", &replica_id]),
        "ERR The specified node is not a master"
    );
    assert_eq!(
        q_err(&mut rc, &["CLUSTER", "FAILOVER", "NOW"]),
        "ERR syntax error"
    );

    // Writes on the primary reach its replica, which serves them to
    // READONLY clients and redirects the others.
    let keys = write_acked(&mut pc, "fo", 200);
    let k0 = keys[0].clone();
    let moved = q_err(&mut rc, &["GET", &k0]);
    assert!(
        moved.starts_with("MOVED ") && moved.ends_with(&format!(":{}", nodes[victim].srv.port)),
        "{moved}"
    );
    let _: () = q(&mut rc, &["READONLY"]);
    assert_eq!(q::<String>(&mut rc, &["GET", &k0]), format!("v-{k0}"));
    assert!(q_err(&mut rc, &["SET", &k0, "x"]).starts_with("MOVED "));
    let _: () = q(&mut rc, &["READWRITE"]);
    assert!(q_err(&mut rc, &["GET", &k0]).starts_with("MOVED "));

    // The cluster client writes across all slots.
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}/", n.srv.port))
        .collect();
    let client = redis::cluster::ClusterClient::new(urls).expect("cluster client");
    let mut cc = client.get_connection().expect("cluster connection");
    for i in 0..500 {
        let _: () = redis::cmd("SET")
            .arg(format!("cc{i}"))
            .arg(i)
            .query(&mut cc)
            .expect("cluster SET");
    }

    // kill -9 the primary: its replica is elected and the cluster is ok
    // again on every survivor.
    let killed = nodes.remove(victim);
    let killed_at = Instant::now();
    killed.srv.signal(libc::SIGKILL);
    let replica = if replica > victim {
        replica - 1
    } else {
        replica
    };
    wait_until("the replica's promotion", Duration::from_secs(30), || {
        try_role(nodes[replica].srv.port).is_some_and(|r| r.1.is_none())
    });
    let promoted_ms = killed_at.elapsed().as_millis();
    wait_all_ok(&nodes);
    eprintln!(
        "failover: replica promoted {promoted_ms} ms after kill -9, cluster_state:ok on all survivors after {} ms",
        killed_at.elapsed().as_millis()
    );
    let mut nc = nodes[replica].srv.client();
    for k in &keys {
        assert_eq!(q::<String>(&mut nc, &["GET", k]), format!("v-{k}"));
    }
    let role: redis::Value = q(&mut nc, &["ROLE"]);
    assert!(format!("{role:?}").contains("master"), "{role:?}");

    // The cluster client follows the new primary: the acknowledged keys
    // of the dead shard and everything written before the kill are
    // readable, and new writes work. The crate's sync connection keeps
    // its broken socket to the dead node (it only re-reads the slots on
    // MOVED), so a new connection is taken from the same client (same
    // seed list, the dead node included).
    drop(cc);
    let mut cc = client.get_connection().expect("cluster connection");
    let mut pipe = redis::cluster::cluster_pipe();
    for k in &keys {
        pipe.get(k);
    }
    let got: Vec<String> = pipe.query(&mut cc).expect("GET the acknowledged keys");
    assert_eq!(
        got,
        keys.iter().map(|k| format!("v-{k}")).collect::<Vec<_>>()
    );
    for i in 0..500 {
        let _: () = redis::cmd("SET")
            .arg(format!("after{i}"))
            .arg(i)
            .query(&mut cc)
            .expect("SET after failover");
    }
    for i in (0..500).step_by(7) {
        let v: i64 = redis::cmd("GET")
            .arg(format!("after{i}"))
            .query(&mut cc)
            .expect("GET after failover");
        assert_eq!(v, i);
    }

    // The old primary comes back as a replica of the new one and resyncs.
    let back = restart_node(killed, &extra);
    let mut bc = back.srv.client();
    wait_until(
        "the old primary to rejoin as a replica",
        Duration::from_secs(30),
        || my_role(&mut bc).1.as_deref() == Some(replica_id.as_str()),
    );
    let _: () = q(&mut bc, &["READONLY"]);
    // One GET per poll: while the rejoined node takes in the new
    // configuration, a reply may be an error, and the next poll retries.
    wait_until("the old primary to resync", Duration::from_secs(30), || {
        cmd(&["GET", &k0])
            .query::<Option<String>>(&mut bc)
            .ok()
            .flatten()
            .as_deref()
            == Some(&format!("v-{k0}"))
    });
    nodes.push(back);
    wait_all_ok(&nodes);
    wait_clean_check(nodes[0].srv.port);
}

#[test]
fn manual_failover_default_and_takeover_swap_roles_without_losing_writes() {
    let dir = scratch_dir("manual-failover");
    // No failure detection needed here: a long node-timeout keeps a
    // loaded host from failing a node over behind the test's back.
    let extra = ["--cluster-node-timeout", "5000"];
    let nodes = create_cluster_with_replicas(&dir, 6, 1, &extra);
    let roles: Vec<(String, Option<String>)> =
        nodes.iter().map(|n| my_role(&mut n.srv.client())).collect();
    let replica = (0..6).find(|&i| roles[i].1.is_some()).expect("a replica");
    let primary = by_id(&nodes, roles[replica].1.as_deref().expect("its primary"));
    let (p_id, r_id) = (roles[primary].0.clone(), roles[replica].0.clone());
    let mut pc = nodes[primary].srv.client();
    let mut rc = nodes[replica].srv.client();
    let keys = write_acked(&mut pc, "mf", 100);
    assert_eq!(
        q_err(&mut pc, &["CLUSTER", "FAILOVER"]),
        "ERR You should send CLUSTER FAILOVER to a replica"
    );

    // cluster-replica-no-failover is gossiped as the nofailover flag
    // (it does not stop a manual failover).
    let _: () = q(
        &mut rc,
        &["CONFIG", "SET", "cluster-replica-no-failover", "yes"],
    );
    let replica_flags = |c: &mut redis::Connection| {
        let txt: String = q(c, &["CLUSTER", "NODES"]);
        txt.lines()
            .find(|l| l.starts_with(&r_id))
            .and_then(|l| l.split(' ').nth(2).map(str::to_string))
            .unwrap_or_default()
    };
    wait_until("the nofailover flag", Duration::from_secs(10), || {
        replica_flags(&mut pc) == "slave,nofailover"
    });
    assert_eq!(replica_flags(&mut rc), "myself,slave,nofailover");
    let _: () = q(
        &mut rc,
        &["CONFIG", "SET", "cluster-replica-no-failover", "no"],
    );
    wait_until(
        "the nofailover flag to clear",
        Duration::from_secs(10),
        || replica_flags(&mut pc) == "slave",
    );

    // Default: coordinated with the primary, which pauses its clients
    // until the replica has its whole stream.
    let _: () = q(&mut rc, &["CLUSTER", "FAILOVER"]);
    wait_until("the manual failover", Duration::from_secs(20), || {
        my_role(&mut rc).1.is_none() && my_role(&mut pc).1.as_deref() == Some(r_id.as_str())
    });
    for k in &keys {
        assert_eq!(q::<String>(&mut rc, &["GET", k]), format!("v-{k}"));
    }
    let more = write_acked(&mut rc, "mf2-", 100);
    assert!(q_err(&mut pc, &["SET", &more[0], "x"]).starts_with("MOVED "));

    // TAKEOVER: no vote, a new epoch of its own.
    let epoch_before: u64 = info_field(&cluster_info(&mut pc), "cluster_current_epoch")
        .parse()
        .expect("epoch");
    let _: () = q(&mut pc, &["CLUSTER", "FAILOVER", "TAKEOVER"]);
    wait_until("the takeover", Duration::from_secs(20), || {
        my_role(&mut pc).1.is_none() && my_role(&mut rc).1.as_deref() == Some(p_id.as_str())
    });
    let epoch_after: u64 = info_field(&cluster_info(&mut pc), "cluster_my_epoch")
        .parse()
        .expect("epoch");
    assert!(epoch_after > epoch_before, "{epoch_after} > {epoch_before}");
    for k in keys.iter().chain(&more) {
        assert_eq!(q::<String>(&mut pc, &["GET", k]), format!("v-{k}"));
    }
    wait_all_ok(&nodes);
    check_cluster(nodes[0].srv.port);

    // A replica restarted from its nodes.conf replicates its primary
    // again (it lost its data: no dump).
    let mut nodes = nodes;
    let restarted = restart_node(nodes.remove(replica), &extra);
    let mut rc = restarted.srv.client();
    assert_eq!(my_role(&mut rc).1.as_deref(), Some(p_id.as_str()));
    let _: () = q(&mut rc, &["READONLY"]);
    let last = more.last().expect("a key").clone();
    wait_until(
        "the restarted replica to resync",
        Duration::from_secs(30),
        || q::<Option<String>>(&mut rc, &["GET", &last]).as_deref() == Some(&format!("v-{last}")),
    );

    // CLUSTER RESET on a replica: it stops replicating, empties itself and
    // stands alone as a primary.
    let _: () = q(&mut rc, &["CLUSTER", "RESET"]);
    assert_eq!(my_role(&mut rc).1, None);
    assert_eq!(q::<i64>(&mut rc, &["DBSIZE"]), 0);
    let role: redis::Value = q(&mut rc, &["ROLE"]);
    assert!(format!("{role:?}").contains("master"), "{role:?}");
    assert_eq!(
        info_field(&cluster_info(&mut rc), "cluster_known_nodes"),
        "1"
    );
}

#[test]
fn a_paused_primary_is_replaced_and_rejoins_as_a_replica_after_healing() {
    let dir = scratch_dir("pause-failover");
    let extra = ["--cluster-node-timeout", "1000"];
    let nodes = create_cluster_with_replicas(&dir, 6, 1, &extra);
    let roles: Vec<(String, Option<String>)> =
        nodes.iter().map(|n| my_role(&mut n.srv.client())).collect();
    let replica = (0..6).find(|&i| roles[i].1.is_some()).expect("a replica");
    let primary = by_id(&nodes, roles[replica].1.as_deref().expect("its primary"));
    let r_id = roles[replica].0.clone();
    let keys = write_acked(&mut nodes[primary].srv.client(), "pz", 50);

    // Cut the primary off (SIGSTOP): the majority elects its replica.
    nodes[primary].srv.signal(libc::SIGSTOP);
    let promoted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the replica's promotion", Duration::from_secs(30), || {
            try_role(nodes[replica].srv.port).is_some_and(|r| r.1.is_none())
        });
    }));
    nodes[primary].srv.signal(libc::SIGCONT);
    promoted.expect("promotion while the primary was paused");

    // Healed: the old primary hears the higher epoch, gives up its slots
    // and follows the new primary; every node agrees on one owner per
    // slot.
    let mut pc = nodes[primary].srv.client();
    wait_until("the old primary to follow", Duration::from_secs(30), || {
        my_role(&mut pc).1.as_deref() == Some(r_id.as_str())
    });
    wait_all_ok(&nodes);
    wait_clean_check(nodes[0].srv.port);
    let mut rc = nodes[replica].srv.client();
    for k in &keys {
        assert_eq!(q::<String>(&mut rc, &["GET", k]), format!("v-{k}"));
    }
    assert!(q_err(&mut pc, &["SET", &keys[0], "x"]).starts_with("MOVED "));
}

#[test]
fn redis_cli_adds_a_replica_and_deletes_it() {
    let dir = scratch_dir("add-replica");
    // No failure detection needed here: a long node-timeout keeps a
    // loaded host from failing a node over behind the test's back.
    let extra = ["--cluster-node-timeout", "5000"];
    let mut nodes = create_cluster(&dir, 3, &extra);
    let primary_id = myid(&mut nodes[0].srv.client());
    let mut pc = nodes[0].srv.client();
    let keys = write_served(&mut pc, "an", 20);
    let new = start_node(&dir, &extra);
    let (ok, out) = run_tool(
        "redis-cli",
        &[
            "--cluster".into(),
            "add-node".into(),
            format!("127.0.0.1:{}", new.srv.port),
            format!("127.0.0.1:{}", nodes[0].srv.port),
            "--cluster-slave".into(),
            "--cluster-master-id".into(),
            primary_id.clone(),
        ],
        Duration::from_secs(60),
    );
    assert!(
        ok && out.contains("[OK] New node added correctly."),
        "{out}"
    );
    let mut nc = new.srv.client();
    wait_until("the new replica", Duration::from_secs(20), || {
        my_role(&mut nc).1.as_deref() == Some(primary_id.as_str())
    });
    let _: () = q(&mut nc, &["READONLY"]);
    wait_until("the new replica to sync", Duration::from_secs(20), || {
        keys.iter().all(|k| {
            q::<Option<String>>(&mut nc, &["GET", k]).as_deref() == Some(&format!("v-{k}"))
        })
    });
    nodes.push(new);
    wait_clean_check(nodes[0].srv.port);

    let replica_id = myid(&mut nc);
    let (ok, out) = run_tool(
        "redis-cli",
        &[
            "--cluster".into(),
            "del-node".into(),
            format!("127.0.0.1:{}", nodes[0].srv.port),
            replica_id.clone(),
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "{out}");
    let txt: String = q(&mut pc, &["CLUSTER", "NODES"]);
    assert!(!txt.contains(&replica_id), "{txt}");
    let reps: Vec<String> = q(&mut pc, &["CLUSTER", "REPLICAS", &primary_id]);
    assert!(reps.is_empty(), "{reps:?}");
}

/// Writes `count` keys served by the node on `con` (no replica to wait
/// for).
fn write_served(con: &mut redis::Connection, prefix: &str, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| q_ok(con, &["SET", k, &format!("v-{k}")]))
        .take(count)
        .collect()
}
