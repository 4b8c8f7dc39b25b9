//! Hostile and broken clients: malformed frames, absurd lengths, binary
//! garbage, a 100 MB inline line, a 600 MB bulk header, millions of
//! pipelined commands whose replies are never read.
//!
//! Each case checks the reply bytes (Redis 7.0.15's, byte for byte),
//! whether the connection is closed or left waiting as Redis leaves it,
//! that another client is served meanwhile, and that the server's
//! resident memory (VmRSS) stays under `RSS_BOUND`. Run against real
//! Redis with `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test
//! --test bad_input`; the one bound Redis does not keep (it buffers
//! unread replies without limit by default) is checked for ferrocache
//! only.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Resident memory the server may reach in any of these tests: its
/// baseline is about 12 MB; everything a hostile client sends or
/// provokes must fit in the rest.
const RSS_BOUND_KB: u64 = 128 * 1024;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn assert_rss_bounded(srv: &TestServer, what: &str) {
    let rss = rss_kb(srv.pid());
    assert!(
        rss < RSS_BOUND_KB,
        "{what}: server RSS {rss} kB over the {RSS_BOUND_KB} kB bound"
    );
}

/// Another client's commands still work.
fn assert_served(srv: &TestServer) {
    let mut c = srv.raw();
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    c.roundtrip(&resp_cmd(&[b"SET", b"other", b"v"]), b"+OK\r\n");
    c.roundtrip(b"GET other\r\n", b"$1\r\nv\r\n");
}

/// What the server sends after `req`, and whether it then closed the
/// connection (true) or left it open, waiting for more (false, decided
/// after a quiet second).
fn exchange(srv: &TestServer, req: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let _ = s.write_all(req);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false);
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

const CLOSED: bool = true;
const OPEN: bool = false;

#[test]
fn binary_garbage_is_answered_as_redis() {
    let srv = TestServer::start();
    let cases: &[(&[u8], &[u8], bool)] = &[
        // Redis finds the end of an inline line with strchr: a NUL hides
        // it, so the command waits (it can only grow to the 64 KB limit).
        (b"\x00\x01\x02\xff\xfe\r\n", b"", OPEN),
        (b"GET \"a\x00b\" c\r\nPING\r\n", b"", OPEN),
        (
            b"\xc3\x28 abc\r\n",
            b"-ERR unknown command '\xc3\x28', with args beginning with: 'abc' \r\n",
            OPEN,
        ),
        (
            b"\x1b[A\x7f\r\n",
            b"-ERR unknown command '\x1b[A\x7f', with args beginning with: \r\n",
            OPEN,
        ),
        (
            b"GET \"abc\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
            CLOSED,
        ),
        (
            b"SET a 'b\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
            CLOSED,
        ),
        // Multibulk arguments are binary-safe, but Redis prints names up
        // to their first NUL in errors.
        (
            b"*1\r\n$4\r\n\x00\x00\x00\x00\r\n",
            b"-ERR unknown command '', with args beginning with: \r\n",
            OPEN,
        ),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\n\x00\r\n$2\r\n\xff\xfe\r\n*2\r\n$3\r\nGET\r\n$1\r\n\x00\r\n",
            b"+OK\r\n$2\r\n\xff\xfe\r\n",
            OPEN,
        ),
        // Redis skips the two bytes after a bulk payload unchecked.
        (
            b"*1\r\n$4\r\nPINGXX*1\r\n$4\r\nPING\r\n",
            b"+PONG\r\n+PONG\r\n",
            OPEN,
        ),
        (b"  \t \r\n\r\n\nPING\r\n", b"+PONG\r\n", OPEN),
        (
            b"*1\r\nfoo\r\n",
            b"-ERR Protocol error: expected '$', got 'f'\r\n",
            CLOSED,
        ),
    ];
    let mut nul_then_lines = b"PING\x00\r\n".to_vec();
    nul_then_lines.extend(b"PING\r\n".repeat(12_000));
    let too_big: &[u8] = b"-ERR Protocol error: too big inline request\r\n";
    let cases = [cases, &[(&nul_then_lines[..], too_big, CLOSED)][..]].concat();
    for (req, expected, closed) in &cases {
        let (got, was_closed) = exchange(&srv, req);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "reply to {:?}",
            String::from_utf8_lossy(req)
        );
        assert_eq!(
            was_closed,
            *closed,
            "closed after {:?}",
            String::from_utf8_lossy(req)
        );
        assert_served(&srv);
    }
    assert_rss_bounded(&srv, "after garbage");
}

#[test]
fn negative_huge_and_non_numeric_lengths() {
    let srv = TestServer::start();
    let mbulk = b"-ERR Protocol error: invalid multibulk length\r\n";
    let bulk = b"-ERR Protocol error: invalid bulk length\r\n";
    let cases: &[(&[u8], &[u8], bool)] = &[
        (b"*abc\r\n", mbulk, CLOSED),
        (b"*2147483648\r\n", mbulk, CLOSED),
        (b"*99999999999999999999999\r\n", mbulk, CLOSED),
        (b"*-9223372036854775809\r\nPING\r\n", mbulk, CLOSED),
        // Non-positive counts are ignored.
        (b"*-5\r\nPING\r\n", b"+PONG\r\n", OPEN),
        (b"*1\r\n$-5\r\n", bulk, CLOSED),
        (b"*1\r\n$-9223372036854775808\r\n", bulk, CLOSED),
        (b"*1\r\n$9223372036854775808\r\n", bulk, CLOSED),
        (b"*1\r\n$x1\r\n", bulk, CLOSED),
        // A 600 MB bulk header: over proto-max-bulk-len (512 MB), refused
        // before a byte of it is stored.
        (b"*2\r\n$3\r\nSET\r\n$600000000\r\n", bulk, CLOSED),
        // A huge argument count is only a promise: nothing is reserved
        // for it, and the connection waits for the arguments.
        (b"*1048576\r\n", b"", OPEN),
    ];
    for (req, expected, closed) in cases {
        let (got, was_closed) = exchange(&srv, req);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "reply to {:?}",
            String::from_utf8_lossy(req)
        );
        assert_eq!(
            was_closed,
            *closed,
            "closed after {:?}",
            String::from_utf8_lossy(req)
        );
        assert_served(&srv);
    }
    assert_rss_bounded(&srv, "after bad lengths");
}

#[test]
fn unterminated_frames_wait_without_blocking_others() {
    let srv = TestServer::start();
    let partial: &[&[u8]] = &[
        b"*2\r\n$4\r\nECHO\r\n$3\r\nab",
        b"*2\r\n$4\r\nECHO\r\n$300000000\r\n",
        b"*3\r\n$3\r\nSET\r\n",
        b"*12",
        b"PING",
        b"$",
    ];
    let mut open = Vec::new();
    for req in partial {
        let mut c = srv.raw();
        c.send(req);
        open.push(c);
        assert_served(&srv);
    }
    // Completing a frame gets it answered.
    open[0].roundtrip(b"c\r\n", b"$3\r\nabc\r\n");
    // Clients vanishing mid-frame leave the server unharmed.
    drop(open);
    assert_served(&srv);
    assert_rss_bounded(&srv, "after partial frames");
}

/// Writes `req` repeatedly (or until `total` bytes) from a thread, with a
/// write timeout so a server that stops reading ends the writer rather
/// than hanging the test. Returns the bytes written and whether the
/// server refused more (timeout, reset or broken pipe).
fn flood(
    port: u16,
    chunk: Vec<u8>,
    total: usize,
) -> std::thread::JoinHandle<(TcpStream, usize, bool)> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut sent = 0;
        while sent < total {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => return (s, sent, true),
            }
        }
        (s, sent, false)
    })
}

#[test]
fn hundred_megabyte_inline_line_is_refused() {
    let srv = TestServer::start();
    let writer = flood(srv.port, vec![b'A'; 1 << 20], 100 << 20);
    // Others are served while the line streams in.
    assert_served(&srv);
    let (mut s, sent, refused) = writer.join().unwrap();
    assert!(
        refused,
        "server kept reading a 100 MB inline line ({sent} bytes)"
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR Protocol error: too big inline request\r\n"
    );
    assert_served(&srv);
    assert_rss_bounded(&srv, "after a 100 MB inline line");
}

#[test]
fn big_announced_bulk_takes_memory_only_as_it_arrives() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // 500 MB announced (allowed), 8 MB sent.
    c.send(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$500000000\r\n");
    c.send(&vec![b'x'; 8 << 20]);
    assert_served(&srv);
    assert_rss_bounded(&srv, "with 500 MB announced and 8 MB sent");
    drop(c);
    assert_served(&srv);
}

#[test]
fn millions_of_pipelined_pings_without_reading() {
    let srv = TestServer::start();
    // 3 million PINGs (18 MB in, 21 MB of replies never read).
    let writer = flood(srv.port, b"PING\r\n".repeat(100_000), 3_000_000 * 6);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !writer.is_finished() {
        assert!(Instant::now() < deadline, "flood did not end");
        assert_served(&srv);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, _sent, _refused) = writer.join().unwrap();
    assert_served(&srv);
    assert_rss_bounded(&srv, "with 3 million unread PONGs");
    drop(s);
    assert_served(&srv);
}

#[test]
fn unread_large_replies_do_not_grow_server_memory() {
    if against_real_redis() {
        // Redis's normal class has no output limit by default: it buffers
        // every unread reply.
        return;
    }
    let srv = TestServer::start();
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "big", &"x".repeat(64 * 1024)]);
    // Up to 2 million GETs of 64 KB: 128 GB of replies if nothing pushed
    // back. The server must stop reading once the client stops reading.
    let writer = flood(srv.port, b"GET big\r\n".repeat(10_000), 2_000_000 * 9);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !writer.is_finished() {
        assert!(Instant::now() < deadline, "flood did not end");
        assert_served(&srv);
        assert_rss_bounded(&srv, "while replies pile up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, sent, refused) = writer.join().unwrap();
    assert!(refused, "the server read all {sent} bytes of requests");
    assert_rss_bounded(&srv, "with a client that never reads");
    drop(s);
    assert_served(&srv);
}
