//! Connection limits with Redis's names, defaults and errors: maxclients,
//! timeout, tcp-keepalive, client-output-buffer-limit.
//!
//! Checked against Debian's redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test limits`.

mod common;
use common::*;

use std::io::Write;
use std::time::{Duration, Instant};

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connected_clients(con: &mut redis::Connection) -> i64 {
    let info: String = q(con, &["INFO", "clients"]);
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients")
}

fn config_get1(con: &mut redis::Connection, name: &str) -> String {
    let v: Vec<String> = q(con, &["CONFIG", "GET", name]);
    v.get(1).cloned().unwrap_or_default()
}

// ------------------------------------------------------------ maxclients

#[test]
fn maxclients_refuses_with_redis_error_and_counts_it() {
    let srv = TestServer::start_with(&["--maxclients", "2"]);
    // The harness's probe connections may still count for a moment: the
    // first connection may be refused until they are gone.
    let mut first = None;
    wait_for("a first connection", || {
        first = redis::Client::open(srv.url())
            .unwrap()
            .get_connection()
            .ok();
        first.is_some()
    });
    let mut first = first.unwrap();
    wait_for("probe connections to close", || {
        connected_clients(&mut first) == 1
    });
    let mut second = srv.raw();
    second.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let mut third = srv.raw();
    let got = third.read_to_close();
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients reached\r\n"
    );
    // The refused connection does not affect the others.
    second.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let stats: String = q(&mut first, &["INFO", "stats"]);
    assert!(stats.contains("rejected_connections:1\r\n"), "{stats}");
    // Room again once a client leaves.
    drop(second);
    wait_for("second client to leave", || {
        connected_clients(&mut first) == 1
    });
    srv.raw().roundtrip(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn config_set_maxclients_beyond_descriptor_limit_is_refused() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let err = q_err(&mut con, &["CONFIG", "SET", "maxclients", "2000000000"]);
    assert!(
        err.starts_with(
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with "
        ),
        "{err}"
    );
    assert_eq!(config_get1(&mut con, "maxclients"), "10000");
    let _: () = q(&mut con, &["CONFIG", "SET", "maxclients", "500"]);
    assert_eq!(config_get1(&mut con, "maxclients"), "500");
}

// --------------------------------------------------------------- timeout

#[test]
fn idle_client_is_closed_after_timeout() {
    let srv = TestServer::start_with(&["--timeout", "1"]);
    let mut idle = srv.raw();
    idle.roundtrip(b"PING\r\n", b"+PONG\r\n");
    // Closed without a reply (read_to_close fails the test after 10 s).
    assert_eq!(idle.read_to_close(), b"");
    srv.raw().roundtrip(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn timeout_zero_never_closes_and_is_settable() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "timeout"), "0");
    assert_eq!(
        q_err(&mut con, &["CONFIG", "SET", "timeout", "-1"]),
        "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be between 0 and 2147483647 inclusive"
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "timeout", "1"]);
    let mut idle = srv.raw();
    idle.roundtrip(b"PING\r\n", b"+PONG\r\n");
    assert_eq!(idle.read_to_close(), b"");
}

// ---------------------------------------------------------- tcp-keepalive

/// The kernel's timer for the server's end of the connection whose client
/// end is `client`: (timer kind, ticks left). Kind 2 is the keepalive
/// timer, 0 none (proc(5), /proc/net/tcp).
fn server_side_timer(server_port: u16, client: &std::net::TcpStream) -> (u32, u64) {
    let client_port = client.local_addr().unwrap().port();
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap(), 16).unwrap();
        if port(f[1]) == server_port && port(f[2]) == client_port {
            let (kind, when) = f[5].split_once(':').unwrap();
            return (
                kind.parse().unwrap(),
                u64::from_str_radix(when, 16).unwrap(),
            );
        }
    }
    panic!("server side of the connection not found in /proc/net/tcp");
}

#[test]
fn tcp_keepalive_arms_the_kernel_timer() {
    let srv = TestServer::start_with(&["--tcp-keepalive", "100"]);
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "tcp-keepalive"), "100");
    let mut c = srv.raw();
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let (kind, ticks) = server_side_timer(srv.port, &c.s);
    assert_eq!(kind, 2, "keepalive timer armed");
    // USER_HZ ticks: at most the 100 s idle time.
    assert!(ticks > 0 && ticks <= 100 * 100, "{ticks}");

    let _: () = q(&mut con, &["CONFIG", "SET", "tcp-keepalive", "0"]);
    let mut c = srv.raw();
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    assert_eq!(server_side_timer(srv.port, &c.s).0, 0, "no keepalive");
}

#[test]
fn limit_defaults_as_redis() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "tcp-keepalive"), "300");
    assert_eq!(config_get1(&mut con, "tcp-backlog"), "511");
    assert_eq!(config_get1(&mut con, "maxclients"), "10000");
    assert_eq!(
        config_get1(&mut con, "client-output-buffer-limit"),
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
}

// --------------------------------------------- client-output-buffer-limit

#[test]
fn output_buffer_limit_config_format() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 1mb 2mb 3",
        ],
    );
    assert_eq!(
        config_get1(&mut con, "client-output-buffer-limit"),
        "normal 1048576 2097152 3 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    let _: () = q(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "replica 1 2 3 pubsub 4k 5 6",
        ],
    );
    assert_eq!(
        config_get1(&mut con, "client-output-buffer-limit"),
        "normal 1048576 2097152 3 slave 1 2 3 pubsub 4000 5 6"
    );
    let prefix =
        "ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - ";
    for (value, why) in [
        (
            "foo 1 2 3",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "normal 1 2",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "normal x 2 3",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "normal 1 2 -3",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
    ] {
        assert_eq!(
            q_err(
                &mut con,
                &["CONFIG", "SET", "client-output-buffer-limit", value]
            ),
            format!("{prefix}{why}"),
            "{value}"
        );
    }
}

#[test]
fn output_buffer_limit_from_command_line() {
    let srv = TestServer::start_with(&["--client-output-buffer-limit", "normal 10mb 5mb 30"]);
    let mut con = srv.client();
    assert_eq!(
        config_get1(&mut con, "client-output-buffer-limit"),
        "normal 10485760 5242880 30 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
}

#[test]
fn reply_over_hard_limit_disconnects_without_sending_it() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let big = "x".repeat(200 * 1024);
    let _: () = q(&mut con, &["SET", "big", &big]);
    let _: () = q(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 100kb 0 0",
        ],
    );
    let mut c = srv.raw();
    c.roundtrip(b"GET small\r\n", b"$-1\r\n");
    c.send(b"GET big\r\n");
    assert_eq!(c.read_to_close(), b"", "closed, reply dropped");
    // Other clients are unaffected (while their replies stay small).
    let n: i64 = q(&mut con, &["STRLEN", "big"]);
    assert_eq!(n, big.len() as i64);
}

#[test]
fn client_over_soft_limit_too_long_is_disconnected() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let big = "x".repeat(200 * 1024);
    let _: () = q(&mut con, &["SET", "big", &big]);
    let _: () = q(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 0 100kb 1",
        ],
    );
    let mut c = srv.raw();
    // 40 MB of replies the client does not read: the kernel's socket
    // buffers fill and the rest stays in the server, over the soft limit.
    let _ = c.s.write_all(&b"GET big\r\n".repeat(200));
    std::thread::sleep(Duration::from_millis(2500));
    // Redis checks the limits when it adds a reply: send one more.
    let _ = c.s.write_all(b"GET big\r\n");
    let got = c.read_to_close();
    assert!(
        got.len() < 200 * (big.len() + 16),
        "disconnected before all replies were sent ({} bytes)",
        got.len()
    );
    let n: i64 = q(&mut con, &["STRLEN", "big"]);
    assert_eq!(n, big.len() as i64);
}
