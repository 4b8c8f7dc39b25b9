//! Byte-exact RESP protocol tests: what goes over the socket, in and out.
//!
//! Every expected reply here was checked against Debian's redis-server
//! 7.0.15 (`FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test
//! protocol`). Commands that produce no reply are followed by a PING so that
//! a stray reply would show up as a mismatch.

mod common;
use common::*;

use std::io::Write;
use std::time::Duration;

/// Sends bytes without failing on a write error: for requests the server is
/// expected to reject half-way, it may close the socket before we finish
/// writing, and that must not mask the reply we want to check.
fn send_lenient(c: &mut RawConn, bytes: &[u8]) {
    let _ = c.s.write_all(bytes);
}

/// Asserts the server sends exactly `expected` and then closes the
/// connection, which is what Redis does after any protocol error.
fn assert_reply_then_close(c: &mut RawConn, expected: &[u8]) {
    let got = c.read_to_close();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Sends one protocol-breaking request on a fresh connection and asserts the
/// exact error and the close.
fn assert_protocol_error(srv: &TestServer, req: &[u8], expected: &[u8]) {
    let mut c = srv.raw();
    send_lenient(&mut c, req);
    assert_reply_then_close(&mut c, expected);
    // The server itself must survive a misbehaving client.
    srv.raw().roundtrip(b"PING\r\n", b"+PONG\r\n");
}

// ---------------------------------------------------------------- inline

#[test]
fn inline_ping_with_crlf_and_bare_lf() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    // redis-cli and telnet users may send a bare \n; commands are
    // case-insensitive.
    c.roundtrip(b"ping\n", b"+PONG\r\n");
    c.roundtrip(b"PiNg hello\r\n", b"$5\r\nhello\r\n");
}

#[test]
fn inline_quoted_arguments() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"SET \"a b\" 'c d'\r\n", b"+OK\r\n");
    c.roundtrip(b"GET \"a b\"\r\n", b"$3\r\nc d\r\n");
    // Multibulk sees the same key that the inline form created.
    c.roundtrip(&resp_cmd(&[b"GET", b"a b"]), b"$3\r\nc d\r\n");
    // Empty quoted strings are real (empty) arguments.
    c.roundtrip(b"ECHO ''\r\n", b"$0\r\n\r\n");
    c.roundtrip(b"ECHO \"\"\r\n", b"$0\r\n\r\n");
    // The other quote kind is literal inside a quoted string.
    c.roundtrip(b"ECHO 'a\"b'\r\n", b"$3\r\na\"b\r\n");
    c.roundtrip(b"ECHO \"a'b\"\r\n", b"$3\r\na'b\r\n");
    // Runs of spaces and tabs separate arguments; leading and trailing
    // blanks are ignored.
    c.roundtrip(b"  ECHO \t  x  \r\n", b"$1\r\nx\r\n");
    c.roundtrip(
        b"ECHO a   b\r\n",
        b"-ERR wrong number of arguments for 'echo' command\r\n",
    );
    // Redis's sdssplitargs starts a quoted section even in the middle of a
    // bare word: `a"b"` is the single argument `ab`.
    c.roundtrip(b"ECHO a\"b\"\r\n", b"$2\r\nab\r\n");
}

#[test]
fn inline_escapes_in_double_quotes() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // \xHH is a hex byte, \n a newline, \t a tab; the key is "eA\n".
    c.roundtrip(b"SET \"e\\x41\\n\" \"v\\x41\\tz\"\r\n", b"+OK\r\n");
    c.roundtrip(b"GET \"e\\x41\\n\"\r\n", b"$4\r\nvA\tz\r\n");
    c.roundtrip(&resp_cmd(&[b"GET", b"eA\n"]), b"$4\r\nvA\tz\r\n");
    c.roundtrip(b"ECHO \"\\x41\\x4a\\x6b\"\r\n", b"$3\r\nAJk\r\n");
    c.roundtrip(
        b"ECHO \"\\a\\b\\t\\r\\\\\\\"\"\r\n",
        b"$6\r\n\x07\x08\t\r\\\"\r\n",
    );
    // Single quotes only understand \' ; every other backslash is literal.
    c.roundtrip(b"ECHO 'a\\'b'\r\n", b"$3\r\na'b\r\n");
    c.roundtrip(b"ECHO 'a\\nb'\r\n", b"$4\r\na\\nb\r\n");
}

#[test]
fn inline_unbalanced_quotes_close_connection() {
    let srv = TestServer::start();
    for req in [
        &b"SET \"a\r\n"[..],
        b"SET 'a\r\n",
        // A closing quote must be followed by a blank or the end of line.
        b"\"a\"b\r\n",
    ] {
        let mut c = srv.raw();
        c.send(req);
        assert_reply_then_close(
            &mut c,
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        );
    }
}

#[test]
fn empty_inline_lines_are_ignored() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"\r\n\r\n\n   \r\nPING\r\n", b"+PONG\r\n");
    c.roundtrip(b"\r\n", b"");
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
}

// ----------------------------------------------------------- pipelining

#[test]
fn pipelined_commands_reply_in_order() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let mut req = Vec::new();
    req.extend_from_slice(&resp_cmd(&[b"SET", b"pipe:k", b"1"]));
    req.extend_from_slice(b"INCR pipe:k\r\n");
    req.extend_from_slice(&resp_cmd(&[b"GET", b"pipe:k"]));
    req.extend_from_slice(b"GET pipe:missing\r\n");
    req.extend_from_slice(&resp_cmd(&[b"ECHO", b"last"]));
    c.roundtrip(&req, b"+OK\r\n:2\r\n$1\r\n2\r\n$-1\r\n$4\r\nlast\r\n");
}

#[test]
fn ten_thousand_pipelined_pings() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let n = 10_000;
    let mut req = Vec::with_capacity(n * 14);
    for i in 0..n {
        // Mix both encodings so neither path is skipped.
        if i % 2 == 0 {
            req.extend_from_slice(b"PING\r\n");
        } else {
            req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        }
    }
    // Write from another thread: a server that answers while we are still
    // writing must not deadlock the test on full socket buffers.
    let mut writer = c.s.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&req).unwrap());
    let got = c.read_exact_len(n * 7);
    t.join().unwrap();
    assert_eq!(got, b"+PONG\r\n".repeat(n));
    c.roundtrip(b"ECHO done\r\n", b"$4\r\ndone\r\n");
}

// ------------------------------------------------------ fragmented input

#[test]
fn command_split_one_byte_per_write() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    for b in resp_cmd(&[b"SET", b"frag:key", b"value"]) {
        c.send(&[b]);
        // Give each byte a chance to arrive on its own.
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(c.read_exact_len(5), b"+OK\r\n");
    for b in b"GET frag:key\r\n" {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(c.read_exact_len(11), b"$5\r\nvalue\r\n");
}

#[test]
fn command_split_at_every_boundary() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let req = resp_cmd(&[b"ECHO", b"hello world"]);
    // Every split point, including inside "\r\n" and inside the length.
    for split in 1..req.len() {
        c.send(&req[..split]);
        std::thread::sleep(Duration::from_millis(1));
        c.send(&req[split..]);
        assert_eq!(
            c.read_exact_len(18),
            b"$11\r\nhello world\r\n",
            "split at {split}"
        );
    }
}

#[test]
fn large_mset_sent_in_small_chunks() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let n = 10_000;
    let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
    for i in 0..n {
        args.push(format!("mset:key:{i}").into_bytes());
        args.push(format!("value-{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    let req = resp_cmd(&refs);
    for chunk in req.chunks(100) {
        c.send(chunk);
    }
    assert_eq!(c.read_exact_len(5), b"+OK\r\n");
    c.roundtrip(b"DBSIZE\r\n", b":10000\r\n");
    c.roundtrip(b"GET mset:key:0\r\n", b"$7\r\nvalue-0\r\n");
    c.roundtrip(b"GET mset:key:9999\r\n", b"$10\r\nvalue-9999\r\n");

    let mut con = srv.client();
    let v: String = redis::cmd("GET")
        .arg("mset:key:4321")
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "value-4321");
}

#[test]
fn large_bulk_value_in_chunks() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let value = vec![b'z'; 1 << 20];
    let req = resp_cmd(&[b"SET", b"bigval", &value]);
    for chunk in req.chunks(7_777) {
        c.send(chunk);
    }
    assert_eq!(c.read_exact_len(5), b"+OK\r\n");
    c.roundtrip(b"STRLEN bigval\r\n", b":1048576\r\n");
    c.send(b"GET bigval\r\n");
    let got = c.read_exact_len(b"$1048576\r\n".len() + value.len() + 2);
    assert!(got.starts_with(b"$1048576\r\n"));
    assert!(got[10..10 + value.len()].iter().all(|&b| b == b'z'));
    assert!(got.ends_with(b"\r\n"));
}

// --------------------------------------------------- empty multibulk

#[test]
fn empty_and_null_multibulk_produce_no_reply() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.roundtrip(b"*0\r\nPING\r\n", b"+PONG\r\n");
    c.roundtrip(b"*-1\r\nPING\r\n", b"+PONG\r\n");
    // Redis 7.0 ignores every non-positive count, not only -1.
    c.roundtrip(b"*-5\r\n*0\r\n*-1\r\nPING\r\n", b"+PONG\r\n");
}

// ------------------------------------------------------ protocol errors

#[test]
fn protocol_error_invalid_multibulk_length() {
    let srv = TestServer::start();
    let expected = b"-ERR Protocol error: invalid multibulk length\r\n";
    assert_protocol_error(&srv, b"*abc\r\n", expected);
    assert_protocol_error(&srv, b"*\r\n", expected);
    // Redis parses counts strictly: no sign, no leading zero, no spaces.
    assert_protocol_error(&srv, b"*+1\r\n$4\r\nPING\r\n", expected);
    assert_protocol_error(&srv, b"*01\r\n$4\r\nPING\r\n", expected);
    assert_protocol_error(&srv, b"*1 \r\n", expected);
}

#[test]
fn protocol_error_expected_dollar() {
    let srv = TestServer::start();
    assert_protocol_error(
        &srv,
        b"*1\r\nx\r\n",
        b"-ERR Protocol error: expected '$', got 'x'\r\n",
    );
    assert_protocol_error(
        &srv,
        b"*2\r\n$4\r\nECHO\r\n:1\r\n",
        b"-ERR Protocol error: expected '$', got ':'\r\n",
    );
}

#[test]
fn protocol_error_invalid_bulk_length() {
    let srv = TestServer::start();
    let expected = b"-ERR Protocol error: invalid bulk length\r\n";
    assert_protocol_error(&srv, b"*1\r\n$-5\r\n", expected);
    assert_protocol_error(&srv, b"*1\r\n$-1\r\n", expected);
    assert_protocol_error(&srv, b"*1\r\n$abc\r\n", expected);
    assert_protocol_error(&srv, b"*1\r\n$\r\n", expected);
    assert_protocol_error(&srv, b"*1\r\n$04\r\nPING\r\n", expected);
    assert_protocol_error(&srv, b"*1\r\n$+4\r\nPING\r\n", expected);
    // proto-max-bulk-len defaults to 512 MB; one byte more is refused
    // before any payload is sent.
    assert_protocol_error(&srv, b"*1\r\n$600000000\r\n", expected);
    assert_protocol_error(&srv, b"*1\r\n$536870913\r\n", expected);
}

#[test]
fn protocol_error_too_big_mbulk_count_string() {
    let srv = TestServer::start();
    let mut req = b"*".to_vec();
    req.extend(std::iter::repeat_n(b'1', 70_000));
    assert_protocol_error(
        &srv,
        &req,
        b"-ERR Protocol error: too big mbulk count string\r\n",
    );
}

#[test]
fn protocol_error_too_big_inline_request() {
    let srv = TestServer::start();
    let req = vec![b'P'; 70_000];
    assert_protocol_error(
        &srv,
        &req,
        b"-ERR Protocol error: too big inline request\r\n",
    );
}

#[test]
fn protocol_error_too_big_bulk_count_string() {
    let srv = TestServer::start();
    let mut req = b"*1\r\n$".to_vec();
    req.extend(std::iter::repeat_n(b'1', 70_000));
    assert_protocol_error(
        &srv,
        &req,
        b"-ERR Protocol error: too big bulk count string\r\n",
    );
}

#[test]
fn commands_before_bad_frame_are_answered_first() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let mut req = Vec::new();
    req.extend_from_slice(b"PING\r\n");
    req.extend_from_slice(&resp_cmd(&[b"SET", b"before:bad", b"1"]));
    req.extend_from_slice(b"*abc\r\n");
    req.extend_from_slice(b"PING\r\n");
    c.send(&req);
    assert_reply_then_close(
        &mut c,
        b"+PONG\r\n+OK\r\n-ERR Protocol error: invalid multibulk length\r\n",
    );
    // The command ahead of the bad frame really ran.
    srv.raw().roundtrip(b"GET before:bad\r\n", b"$1\r\n1\r\n");
}

// ------------------------------------------------ command-level errors

#[test]
fn unknown_command_keeps_connection_open() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // Note the quoting of each argument and the trailing space before CRLF.
    c.roundtrip(
        b"foo a b\r\n",
        b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
    );
    c.roundtrip(
        &resp_cmd(&[b"foo", b"a", b"b"]),
        b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
    );
    // No arguments: the message still ends in ": " (colon, space).
    c.roundtrip(
        b"foo\r\n",
        b"-ERR unknown command 'foo', with args beginning with: \r\n",
    );
    // The name is echoed as sent, not lowercased.
    c.roundtrip(
        b"FOO A\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: 'A' \r\n",
    );
    c.roundtrip(
        &resp_cmd(&[b""]),
        b"-ERR unknown command '', with args beginning with: \r\n",
    );
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn unknown_command_message_is_sanitized_and_truncated() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // CR and LF inside names and arguments become spaces so the error
    // stays one line.
    c.roundtrip(
        &resp_cmd(&[b"fo\ro", b"a\nb"]),
        b"-ERR unknown command 'fo o', with args beginning with: 'a b' \r\n",
    );
    // Arguments are appended while the list is shorter than 128 bytes; the
    // argument that crosses 128 is still shown whole (if it fits).
    let args: Vec<String> = ('a'..='z')
        .map(|c| c.to_string())
        .chain(["aa", "bb", "cc", "dd", "ee", "ff", "gg"].map(String::from))
        .collect();
    let mut req = b"foo".to_vec();
    for a in &args {
        req.push(b' ');
        req.extend_from_slice(a.as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let shown: String = args[..31].iter().map(|a| format!("'{a}' ")).collect();
    let expected = format!("-ERR unknown command 'foo', with args beginning with: {shown}\r\n");
    c.roundtrip(&req, expected.as_bytes());
    // A long argument is cut to 128 bytes.
    let long = "x".repeat(200);
    let expected = format!(
        "-ERR unknown command 'foo', with args beginning with: '{}' \r\n",
        "x".repeat(128)
    );
    c.roundtrip(format!("foo {long} b\r\n").as_bytes(), expected.as_bytes());
    // So is a long command name.
    let expected = format!(
        "-ERR unknown command '{}', with args beginning with: \r\n",
        "f".repeat(128)
    );
    c.roundtrip(
        format!("{}\r\n", "f".repeat(200)).as_bytes(),
        expected.as_bytes(),
    );
}

#[test]
fn wrong_arity_error() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // The command name is reported in lower case whatever the client sent.
    c.roundtrip(
        b"GET\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.roundtrip(
        b"GeT a b\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.roundtrip(
        &resp_cmd(&[b"SET", b"k"]),
        b"-ERR wrong number of arguments for 'set' command\r\n",
    );
    c.roundtrip(
        b"PING a b\r\n",
        b"-ERR wrong number of arguments for 'ping' command\r\n",
    );
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
}

// ---------------------------------------------------------- concurrency

#[test]
fn partial_frame_does_not_block_other_clients() {
    let srv = TestServer::start();
    let mut slow = srv.raw();
    slow.send(b"*3\r\n$3\r\nSET\r\n$7\r\npartial\r\n$5\r\nva");

    let mut fast = srv.raw();
    fast.roundtrip(b"PING\r\n", b"+PONG\r\n");
    fast.roundtrip(&resp_cmd(&[b"SET", b"other", b"x"]), b"+OK\r\n");
    fast.roundtrip(b"GET other\r\n", b"$1\r\nx\r\n");
    // The half-sent SET has not been executed.
    fast.roundtrip(b"EXISTS partial\r\n", b":0\r\n");

    let mut con = srv.client();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");

    slow.roundtrip(b"lue\r\n", b"+OK\r\n");
    fast.roundtrip(b"GET partial\r\n", b"$5\r\nvalue\r\n");
}

#[test]
fn quit_closes_after_reply_and_drops_later_commands() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.send(b"PING\r\nQUIT\r\nPING\r\n");
    let got = c.read_to_close();
    // The PING after QUIT is never answered.
    assert_eq!(got, b"+PONG\r\n+OK\r\n");
}
