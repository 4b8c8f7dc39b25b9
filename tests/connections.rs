//! Connection load: 10,000 concurrent clients (the default maxclients)
//! each doing a few commands while redis-benchmark runs against the same
//! server: no errors, no refusal below maxclients.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLIENTS: usize = 10_000;

/// Raises this process's descriptor limit to its hard limit (the test
/// holds 10,000 sockets); returns the new soft limit.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on structs we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("reply");
    buf
}

#[test]
fn ten_thousand_clients_with_redis_benchmark_alongside() {
    let limit = raise_fd_limit();
    if limit < (CLIENTS + 200) as u64 {
        eprintln!("descriptor limit {limit} too low for {CLIENTS} clients: not exercised");
        return;
    }
    // Room for the 10,000, redis-benchmark's 20 and the inspecting
    // client: none of them may be refused.
    let srv = TestServer::start_with(&["--maxclients", "10100"]);
    let mut con = srv.client();
    let bench = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &srv.port.to_string()])
        .args(["-c", "20", "-n", "20000", "-t", "set,get", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(240);

    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        assert!(Instant::now() < deadline, "too slow at client {i}");
        let s = TcpStream::connect(("127.0.0.1", srv.port))
            .unwrap_or_else(|e| panic!("client {i} refused below maxclients: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        clients.push(s);
    }
    // Every client, all connected at once, does a few commands.
    for (i, s) in clients.iter_mut().enumerate() {
        let key = format!("k{i}");
        s.write_all(&resp_cmd(&[b"PING"])).unwrap();
        s.write_all(&resp_cmd(&[b"SET", key.as_bytes(), b"v"]))
            .unwrap();
        s.write_all(&resp_cmd(&[b"INCR", b"counter"])).unwrap();
    }
    for (i, s) in clients.iter_mut().enumerate() {
        assert_eq!(read_exactly(s, 7 + 5), b"+PONG\r\n+OK\r\n", "client {i}");
        // An integer reply: ':' digits CRLF.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            s.read_exact(&mut byte).expect("INCR reply");
            line.push(byte[0]);
        }
        assert_eq!(
            line[0],
            b':',
            "client {i}: {:?}",
            String::from_utf8_lossy(&line)
        );
    }
    let info: String = q(&mut con, &["INFO", "clients"]);
    let connected: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(connected > CLIENTS, "{connected} connected");
    let n: i64 = q(&mut con, &["GET", "counter"]);
    assert_eq!(n, CLIENTS as i64);
    let stats: String = q(&mut con, &["INFO", "stats"]);
    assert!(stats.contains("rejected_connections:0\r\n"), "{stats}");

    if let Ok(child) = bench {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "redis-benchmark failed: {text}");
        assert!(!text.to_lowercase().contains("error"), "{text}");
        assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
    }
    drop(clients);
}
