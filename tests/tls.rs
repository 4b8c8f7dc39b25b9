//! TLS as Redis's --tls-port: redis-cli --tls and the `redis` crate over
//! rustls, client certificates as tls-auth-clients asks, the plain port
//! alongside; replication over TLS (tls-replication) to a TLS-only
//! primary, with real redis-server 7.0 on either side. Certificates are
//! made per test with the openssl CLI (tests/common/tls.rs).
//!
//! Checked against redis-server 7.0.15 (built with TLS) with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test tls`.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::{Certs, make_certs, start_tls_only, start_tls_only_binary};

fn start_tls(certs: &Certs, auth_clients: &str) -> (TestServer, u16) {
    let tls_port = pick_free_port();
    let port_s = tls_port.to_string();
    let srv = TestServer::start_with(&[
        "--tls-port",
        &port_s,
        "--tls-cert-file",
        &certs.path("server.crt"),
        "--tls-key-file",
        &certs.path("server.key"),
        "--tls-ca-cert-file",
        &certs.path("ca.crt"),
        "--tls-auth-clients",
        auth_clients,
    ]);
    (srv, tls_port)
}

fn redis_cli(
    tls_port: u16,
    certs: &Certs,
    with_client_cert: bool,
    args: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &tls_port.to_string(), "--tls"])
        .args(["--cacert", &certs.path("ca.crt")]);
    if with_client_cert {
        cmd.args([
            "--cert",
            &certs.path("client.crt"),
            "--key",
            &certs.path("client.key"),
        ]);
    }
    let out = cmd.args(args).output().expect("run redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn redis_cli_over_tls_with_client_certificate() {
    let certs = make_certs();
    let (srv, tls_port) = start_tls(&certs, "yes");
    let (ok, out) = redis_cli(tls_port, &certs, true, &["SET", "k", "over tls"]);
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = redis_cli(tls_port, &certs, true, &["GET", "k"]);
    assert!(ok && out.trim() == "over tls", "{out}");
    // Same data on the plain port.
    let mut con = srv.client();
    let v: String = q(&mut con, &["GET", "k"]);
    assert_eq!(v, "over tls");
    // tls-auth-clients yes: no certificate, no session.
    let (_, out) = redis_cli(tls_port, &certs, false, &["PING"]);
    assert!(!out.contains("PONG"), "{out}");
}

#[test]
fn redis_crate_over_tls() {
    let certs = make_certs();
    let (_srv, tls_port) = start_tls(&certs, "yes");
    let mut con = certs.connect(tls_port);
    let _: () = q(&mut con, &["SET", "big", &"x".repeat(300_000)]);
    let v: String = q(&mut con, &["GET", "big"]);
    assert_eq!(v.len(), 300_000);
    let pong: String = q(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    // Pipelined replies come back in order through TLS records.
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("INCR").arg("n").ignore();
        if i == 999 {
            pipe.cmd("GET").arg("n");
        }
    }
    let (n,): (i64,) = pipe.query(&mut con).unwrap();
    assert_eq!(n, 1000);
}

#[test]
fn tls_auth_clients_no_and_optional() {
    let certs = make_certs();
    for auth in ["no", "optional"] {
        let (_srv, tls_port) = start_tls(&certs, auth);
        let (ok, out) = redis_cli(tls_port, &certs, false, &["PING"]);
        assert!(ok && out.trim() == "PONG", "tls-auth-clients {auth}: {out}");
        let (ok, out) = redis_cli(tls_port, &certs, true, &["PING"]);
        assert!(ok && out.trim() == "PONG", "tls-auth-clients {auth}: {out}");
    }
}

#[test]
fn tls_settings_shown_by_config_get() {
    let certs = make_certs();
    let (srv, tls_port) = start_tls(&certs, "optional");
    let mut con = srv.client();
    let v: Vec<String> = q(&mut con, &["CONFIG", "GET", "tls-port"]);
    assert_eq!(v, ["tls-port".to_string(), tls_port.to_string()]);
    let v: Vec<String> = q(&mut con, &["CONFIG", "GET", "tls-auth-clients"]);
    assert_eq!(v, ["tls-auth-clients", "optional"]);
}

#[test]
fn missing_certificate_file_refuses_to_start() {
    if against_real_redis() {
        return;
    }
    let port = pick_free_port().to_string();
    let tls_port = pick_free_port().to_string();
    let (status, _out, err) = run_expecting_exit(&[
        "--port",
        &port,
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        "/nonexistent.crt",
        "--tls-key-file",
        "/nonexistent.key",
        "--tls-auth-clients",
        "no",
    ]);
    assert!(!status.success());
    assert!(err.contains("Failed to load certificate"), "{err}");
}

// ------------------------------------------------------- replication

/// Flags for a replica that reaches its primary on the TLS port
/// `primary` (tls-replication, presenting the server certificate), in a
/// directory of its own.
fn tls_replica_flags(certs: &Certs, primary: u16) -> Vec<String> {
    let mut v = vec!["--tls-replication".to_string(), "yes".into()];
    v.extend(certs.server_flags());
    v.extend([
        "--replicaof".into(),
        "127.0.0.1".into(),
        primary.to_string(),
        "--dir".into(),
        certs.dir(&format!("replica-of-{primary}")),
    ]);
    v
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

fn link_status(con: &mut redis::Connection) -> String {
    info_field(
        &q::<String>(con, &["INFO", "replication"]),
        "master_link_status",
    )
}

/// Waits until `replica` is linked and holds key `k` with value `v`.
fn wait_replicated(replica: &mut redis::Connection, k: &str, v: &str) {
    wait_until(
        &format!("{k}={v} on the replica"),
        Duration::from_secs(20),
        || {
            link_status(replica) == "up"
                && q::<Option<String>>(replica, &["GET", k]).as_deref() == Some(v)
        },
    );
}

#[test]
fn tls_replication_links_to_a_tls_only_primary() {
    let certs = make_certs();
    let primary = start_tls_only(&certs, &["--repl-diskless-sync-delay", "0"]);
    let mut p = certs.connect(primary.port);
    let big = "x".repeat(300_000);
    q::<()>(&mut p, &["SET", "before", &big]);
    let port = primary.port.to_string();

    // Without tls-replication a replica talks plain RESP to the TLS
    // port: the link never comes up.
    let started = Instant::now();
    let plain = TestServer::start_with(&["--replicaof", "127.0.0.1", &port]);

    // With it, the snapshot and the stream come over TLS. The replica
    // has a TLS port of its own, which it announces to the primary.
    let replica_tls_port = pick_free_port();
    let mut flags = tls_replica_flags(&certs, primary.port);
    flags.extend(["--tls-port".into(), replica_tls_port.to_string()]);
    let replica = TestServer::start_with(&refs(&flags));
    let mut r = replica.client();
    wait_replicated(&mut r, "before", &big);
    q::<()>(&mut p, &["SET", "after", "streamed"]);
    wait_replicated(&mut r, "after", "streamed");
    let mut r_tls = certs.connect(replica_tls_port);
    let v: String = q(&mut r_tls, &["GET", "after"]);
    assert_eq!(v, "streamed");
    // The primary sees one replica, at its TLS port; its WAIT counts the
    // acknowledgements that come back over TLS.
    let info: String = q(&mut p, &["INFO", "replication"]);
    assert_eq!(info_field(&info, "connected_slaves"), "1", "{info}");
    let slave0 = info_field(&info, "slave0");
    assert!(
        slave0.contains(&format!("port={replica_tls_port},")),
        "{slave0}"
    );
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "10000"]), 1);

    // The plain replica had seconds of retries and got nothing.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    let mut c = plain.client();
    assert_eq!(link_status(&mut c), "down");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "after"]), None);
}

#[test]
fn real_redis_replica_of_ferrocache_over_tls() {
    let certs = make_certs();
    let primary = start_tls_only(&certs, &["--repl-diskless-sync-delay", "0"]);
    let mut p = certs.connect(primary.port);
    q::<()>(&mut p, &["SET", "before", &"y".repeat(100_000)]);
    let Some(redis) = TestServer::start_real_redis(&refs(&tls_replica_flags(&certs, primary.port)))
    else {
        eprintln!("skipping: {REAL_REDIS} not installed");
        return;
    };
    let mut r = redis.client();
    wait_replicated(&mut r, "before", &"y".repeat(100_000));
    q::<()>(&mut p, &["RPUSH", "list", "a", "b"]);
    q::<()>(&mut p, &["SET", "after", "streamed"]);
    wait_replicated(&mut r, "after", "streamed");
    assert_eq!(
        q::<Vec<String>>(&mut r, &["LRANGE", "list", "0", "-1"]),
        ["a", "b"]
    );
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "10000"]), 1);
}

#[test]
fn ferrocache_replica_of_real_redis_over_tls() {
    if !std::path::Path::new(REAL_REDIS).exists() {
        eprintln!("skipping: {REAL_REDIS} not installed");
        return;
    }
    let certs = make_certs();
    let primary = start_tls_only_binary(REAL_REDIS, &certs, &["--repl-diskless-sync-delay", "0"]);
    let mut p = certs.connect(primary.port);
    q::<()>(&mut p, &["SET", "before", &"z".repeat(100_000)]);
    let replica = TestServer::start_with(&refs(&tls_replica_flags(&certs, primary.port)));
    let mut r = replica.client();
    wait_replicated(&mut r, "before", &"z".repeat(100_000));
    q::<()>(&mut p, &["HSET", "h", "f", "v"]);
    q::<()>(&mut p, &["SET", "after", "streamed"]);
    wait_replicated(&mut r, "after", "streamed");
    assert_eq!(q::<String>(&mut r, &["HGET", "h", "f"]), "v");
    // Redis's WAIT counts our acknowledgements, sent over TLS.
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "10000"]), 1);
}

#[test]
fn port_zero_without_tls_port_refuses_to_start() {
    // `--port 0` turns the plain listener off, as in Redis; with no TLS
    // port either there is nothing to listen on.
    let (status, out, err) = run_expecting_exit(&["--port", "0", "--save", ""]);
    assert!(!status.success());
    let text = format!("{out}{err}");
    assert!(
        text.contains("Configured to not listen anywhere, exiting."),
        "{text}"
    );
}
