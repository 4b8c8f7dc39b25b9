//! Cluster mode over TLS (tls-cluster): nodes that listen on TLS only
//! (`--port 0`) form a cluster with `redis-cli --tls --cluster create`,
//! announce their TLS ports (CLUSTER SLOTS / NODES / SHARDS, MOVED),
//! migrate keys over TLS, and fail over with the bus on TLS. Every wait
//! is bounded; every process is killed by its own handle.
//!
//! Checked against redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test tls_cluster`.

mod common;
use common::*;

use std::time::Duration;

use common::tls::{Certs, make_certs, start_tls_only};

struct Node {
    srv: TestServer,
    /// Its plain port, for the node that has one (0 otherwise).
    plain: u16,
}

impl Node {
    fn tls(&self, certs: &Certs) -> redis::Connection {
        certs.connect(self.srv.port)
    }
}

/// A cluster node on TLS only, or with a plain port too when `plain`;
/// tls-cluster and tls-replication on, its nodes.conf in the certificates'
/// directory (removed with it).
fn start_node(certs: &Certs, plain: bool, extra: &[&str]) -> Node {
    let cport = pick_free_port().to_string();
    let conf = certs.path(&format!("nodes-{cport}.conf"));
    let plain = if plain { pick_free_port() } else { 0 };
    let plain_s = plain.to_string();
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--tls-cluster",
        "yes",
        "--tls-replication",
        "yes",
        "--cluster-port",
        &cport,
        "--cluster-config-file",
        &conf,
        "--cluster-node-timeout",
        "2000",
        "--repl-diskless-sync-delay",
        "0",
    ];
    if plain != 0 {
        args.extend(["--port", &plain_s]);
    }
    args.extend(extra);
    Node {
        srv: start_tls_only(certs, &args),
        plain,
    }
}

/// `redis-cli --tls ... <args>` (bounded in time): (success, output).
fn cli(certs: &Certs, args: &[String]) -> (bool, String) {
    let mut all = certs.cli_flags();
    all.extend(args.iter().cloned());
    run_tool("redis-cli", &all, Duration::from_secs(60))
}

fn cluster_state(con: &mut redis::Connection) -> String {
    info_field(&q::<String>(con, &["CLUSTER", "INFO"]), "cluster_state")
}

/// Starts nodes (the last with a plain port too when `last_plain`) and
/// joins them with `redis-cli --tls --cluster create`, then waits for
/// cluster_state:ok everywhere.
fn create_cluster(certs: &Certs, n: usize, last_plain: bool) -> Vec<Node> {
    let nodes: Vec<Node> = (0..n)
        .map(|i| start_node(certs, last_plain && i == n - 1, &[]))
        .collect();
    let mut args = vec!["--cluster".to_string(), "create".into()];
    args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.srv.port)));
    args.push("--cluster-yes".into());
    let (ok, out) = cli(certs, &args);
    if !(ok && out.contains("[OK] All 16384 slots covered.")) {
        let views: Vec<String> = nodes
            .iter()
            .map(|n| q::<String>(&mut n.tls(certs), &["CLUSTER", "NODES"]))
            .collect();
        panic!("cluster create failed:\n{out}\nnodes: {views:?}");
    }
    for node in &nodes {
        let mut c = node.tls(certs);
        wait_until("cluster_state:ok", Duration::from_secs(30), || {
            cluster_state(&mut c) == "ok"
        });
    }
    nodes
}

/// CLUSTER SLOTS as (first slot, last slot, port of each node serving
/// the range, primary first).
fn slot_ranges(con: &mut redis::Connection) -> Vec<(i64, i64, Vec<u16>)> {
    let v: Vec<Vec<redis::Value>> = q(con, &["CLUSTER", "SLOTS"]);
    let int = |v: &redis::Value| redis::from_redis_value_ref::<i64>(v).unwrap();
    v.iter()
        .map(|r| {
            let ports = r[2..]
                .iter()
                .map(|n| {
                    int(&redis::from_redis_value_ref::<Vec<redis::Value>>(n).unwrap()[1]) as u16
                })
                .collect();
            (int(&r[0]), int(&r[1]), ports)
        })
        .collect()
}

/// The primaries' ports in CLUSTER SLOTS, sorted.
fn primary_ports(con: &mut redis::Connection) -> Vec<u16> {
    let mut v: Vec<u16> = slot_ranges(con).iter().map(|r| r.2[0]).collect();
    v.sort_unstable();
    v
}

/// The index in `nodes` of the node serving `slot`, as CLUSTER SLOTS
/// tells a TLS client.
fn owner_of(nodes: &[Node], con: &mut redis::Connection, slot: i64) -> usize {
    let ranges = slot_ranges(con);
    let (_, _, ports) = ranges
        .iter()
        .find(|(a, b, _)| (*a..=*b).contains(&slot))
        .expect("slot covered");
    nodes
        .iter()
        .position(|n| n.srv.port == ports[0])
        .expect("a node's TLS port")
}

fn moved(slot: i64, port: u16) -> String {
    format!("MOVED {slot} 127.0.0.1:{port}")
}

#[test]
fn tls_cluster_announces_tls_ports_and_migrates_over_tls() {
    let certs = make_certs();
    // Two nodes on TLS only, the third with a plain port as well.
    let nodes = create_cluster(&certs, 3, true);
    let tls_ports: Vec<u16> = nodes.iter().map(|n| n.srv.port).collect();
    let mut c0 = nodes[0].tls(&certs);

    // TLS clients are told TLS ports.
    let mut want = tls_ports.clone();
    want.sort_unstable();
    assert_eq!(primary_ports(&mut c0), want);
    let text: String = q(&mut c0, &["CLUSTER", "NODES"]);
    for p in &tls_ports {
        assert!(text.contains(&format!("127.0.0.1:{p}@")), "{text}");
    }
    // CLUSTER SHARDS: "tls-port" for all, "port" only where there is one.
    let shards: redis::Value = q(&mut c0, &["CLUSTER", "SHARDS"]);
    let shards = format!("{shards:?}");
    assert_eq!(shards.matches("tls-port").count(), 3, "{shards}");
    let plain = nodes[2].plain;
    assert!(shards.contains(&format!("int({plain})")), "{shards}");

    // A client on the third node's plain port is shown its plain port
    // for that node (the others have none), as Redis does.
    let mut plain_con = redis::Client::open(format!("redis://127.0.0.1:{plain}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut want = vec![tls_ports[0], tls_ports[1], plain];
    want.sort_unstable();
    assert_eq!(primary_ports(&mut plain_con), want);

    // A key written over TLS on the node that owns it; the others
    // redirect to its TLS port.
    let slot: i64 = q(&mut c0, &["CLUSTER", "KEYSLOT", "{t}a"]);
    let owner = owner_of(&nodes, &mut c0, slot);
    let other = (owner + 1) % 3;
    let target = (owner + 2) % 3;
    let mut co = nodes[owner].tls(&certs);
    q::<()>(&mut co, &["SET", "{t}a", "over tls"]);
    assert_eq!(q::<String>(&mut co, &["GET", "{t}a"]), "over tls");
    let mut cx = nodes[other].tls(&certs);
    assert_eq!(
        q_err(&mut cx, &["GET", "{t}a"]),
        moved(slot, tls_ports[owner])
    );

    // Move the slot by hand: MIGRATE reaches the target's TLS port.
    let mut ct = nodes[target].tls(&certs);
    let owner_id: String = q(&mut co, &["CLUSTER", "MYID"]);
    let target_id: String = q(&mut ct, &["CLUSTER", "MYID"]);
    let s = slot.to_string();
    q::<()>(&mut ct, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &owner_id]);
    q::<()>(
        &mut co,
        &["CLUSTER", "SETSLOT", &s, "MIGRATING", &target_id],
    );
    let target_port = tls_ports[target].to_string();
    let r: String = q(
        &mut co,
        &["MIGRATE", "127.0.0.1", &target_port, "{t}a", "0", "5000"],
    );
    assert_eq!(r, "OK");
    for c in [&mut ct, &mut co] {
        q::<()>(c, &["CLUSTER", "SETSLOT", &s, "NODE", &target_id]);
    }
    assert_eq!(q::<String>(&mut ct, &["GET", "{t}a"]), "over tls");
    assert_eq!(
        q_err(&mut co, &["GET", "{t}a"]),
        moved(slot, tls_ports[target])
    );
    // The bus carries the change to the third node.
    wait_until(
        "the new owner known everywhere",
        Duration::from_secs(20),
        || q_err(&mut cx, &["GET", "{t}a"]) == moved(slot, tls_ports[target]),
    );
}

#[test]
fn replica_takes_over_through_the_tls_bus() {
    let certs = make_certs();
    let nodes = create_cluster(&certs, 3, false);
    let mut c0 = nodes[0].tls(&certs);
    let primary_id: String = q(&mut c0, &["CLUSTER", "MYID"]);
    // Slot 3443: redis-cli gives the first node slots 0-5460.
    let key = "{user1000}.x";
    let slot: i64 = q(&mut c0, &["CLUSTER", "KEYSLOT", key]);
    assert_eq!(owner_of(&nodes, &mut c0, slot), 0);
    q::<()>(&mut c0, &["SET", key, "v"]);
    // A fourth node joins as node 0's replica, replicating over TLS.
    let replica = start_node(&certs, false, &[]);
    let (ok, out) = cli(
        &certs,
        &[
            "--cluster".into(),
            "add-node".into(),
            format!("127.0.0.1:{}", replica.srv.port),
            format!("127.0.0.1:{}", nodes[0].srv.port),
            "--cluster-slave".into(),
            "--cluster-master-id".into(),
            primary_id.clone(),
        ],
    );
    assert!(ok, "{out}");
    let mut cr = replica.tls(&certs);
    wait_until("the replica's link", Duration::from_secs(30), || {
        let info: String = q(&mut cr, &["INFO", "replication"]);
        info_field(&info, "master_link_status") == "up"
    });
    q::<()>(&mut cr, &["READONLY"]);
    wait_until("the key on the replica", Duration::from_secs(20), || {
        q::<Option<String>>(&mut cr, &["GET", key]).as_deref() == Some("v")
    });

    // The primary dies: the others see it fail over the TLS bus and the
    // replica is elected.
    drop(c0);
    let mut nodes = nodes;
    drop(nodes.remove(0));
    wait_until("the replica's promotion", Duration::from_secs(30), || {
        let role: Vec<redis::Value> = q(&mut cr, &["ROLE"]);
        redis::from_redis_value_ref::<String>(&role[0]).is_ok_and(|r| r == "master")
    });
    for n in [&nodes[0], &nodes[1], &replica] {
        let mut c = n.tls(&certs);
        wait_until(
            "cluster_state:ok after the failover",
            Duration::from_secs(30),
            || cluster_state(&mut c) == "ok",
        );
    }
    let mut c1 = nodes[0].tls(&certs);
    wait_until(
        "a redirect to the new primary",
        Duration::from_secs(20),
        || q_err(&mut c1, &["GET", key]) == moved(slot, replica.srv.port),
    );
    let mut cr = replica.tls(&certs);
    assert_eq!(q::<String>(&mut cr, &["GET", key]), "v");
}
