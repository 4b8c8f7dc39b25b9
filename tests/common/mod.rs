//! Shared harness for integration tests: starts a real server process on an
//! ephemeral loopback port and hands out clients.
//!
//! Set `FERROCACHE_TEST_BIN=/usr/bin/redis-server` to run the same tests
//! against real Redis; that is how we check that a test encodes Redis's
//! behaviour and not our own.
#![allow(dead_code)]

pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    child: Child,
    pub port: u16,
}

/// True when the suite runs against a real redis-server rather than ours.
pub fn against_real_redis() -> bool {
    std::env::var_os("FERROCACHE_TEST_BIN").is_some()
}

/// Debian's redis-server 7.0, the reference implementation.
pub const REAL_REDIS: &str = "/usr/bin/redis-server";

fn server_binary() -> String {
    std::env::var("FERROCACHE_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferrocache").to_string())
}

/// A port that is free now, chosen below Linux's ephemeral range
/// (32768+) so it cannot collide with client sockets or `bind(0)`; the
/// start point is spread by PID so parallel test processes rarely try the
/// same one.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + (base.wrapping_add(n.wrapping_mul(104_729)) % 12000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Asks the server on `port` for its `process_id` (INFO server), so the
/// harness knows it reached the server it started and not another test's
/// server that won a race for the same port.
fn listening_pid(port: u16, password: Option<&str>) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    if let Some(p) = password {
        s.write_all(&resp_cmd(&[b"AUTH", p.as_bytes()])).ok()?;
    }
    s.write_all(&resp_cmd(&[b"INFO", b"server"])).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("run_id:") {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let line = text.lines().find(|l| l.starts_with("process_id:"))?;
    line["process_id:".len()..].trim().parse().ok()
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the server with extra redis-server-style flags
    /// (e.g. `&["--hz", "100"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_binary(&server_binary(), extra)
    }

    /// A real redis-server next to the server under test (to exchange
    /// data with it), or `None` when it is not installed.
    pub fn start_real_redis(extra: &[&str]) -> Option<Self> {
        std::path::Path::new(REAL_REDIS)
            .exists()
            .then(|| Self::start_binary(REAL_REDIS, extra))
    }

    fn start_binary(binary: &str, extra: &[&str]) -> Self {
        Self::start_binary_raw(binary, |port| {
            let mut args = harness_flags(port);
            // Redis 7 refuses DEBUG unless enabled; tests use it, as
            // Redis's own test suite does.
            args.extend(["--enable-debug-command".into(), "yes".into()]);
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A RESP2 connection through the `redis` crate.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .expect("connect")
    }

    /// A RESP3 connection through the `redis` crate (it sends HELLO 3).
    pub fn client_resp3(&self) -> redis::Connection {
        redis::Client::open(format!("{}?protocol=resp3", self.url()))
            .unwrap()
            .get_connection()
            .expect("connect resp3")
    }

    /// A raw TCP connection for byte-level protocol tests.
    pub fn raw(&self) -> RawConn {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect raw");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        RawConn { s }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct RawConn {
    pub s: TcpStream,
}

impl RawConn {
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("raw write");
    }

    /// Reads until exactly `expected.len()` bytes arrived and returns them.
    pub fn read_exact_len(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.s.read_exact(&mut buf).expect("raw read");
        buf
    }

    /// Sends `req` and asserts the reply bytes equal `expected` exactly.
    pub fn roundtrip(&mut self, req: &[u8], expected: &[u8]) {
        self.send(req);
        let got = self.read_exact_len(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "reply to {:?}",
            String::from_utf8_lossy(req)
        );
    }

    /// Reads until the peer closes; returns everything read. Panics if the
    /// connection is still open after the read timeout.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
                Err(e) => panic!(
                    "connection not closed by server: {e}; read so far {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
    }
}

/// Encodes a command as a RESP multibulk request.
pub fn resp_cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

// ------------------------------------------------------------------
// Process-level helpers for command-line and lifecycle tests.

/// A port that is free now (see `free_port`), for tests that build the
/// server's command line themselves.
pub fn pick_free_port() -> u16 {
    free_port()
}

/// A path under the system temp directory that no other test (in this or
/// a parallel test process) uses; the file is not created.
pub fn temp_path(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "ferrocache-test-{}-{}-{tag}",
        std::process::id(),
        n
    ))
}

/// Runs the server binary with exactly `args`, expecting it to exit by
/// itself (a refused command line or config file). Returns its exit
/// status, stdout and stderr. A server that starts instead is killed after
/// 20 s and the test fails.
pub fn run_expecting_exit(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(server_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    // Drain both pipes on threads so a chatty server can't block on a full
    // pipe while we poll for its exit.
    fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    }
    let out = drain(child.stdout.take().expect("stdout pipe"));
    let err = drain(child.stderr.take().expect("stderr pipe"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server started with {args:?} did not exit within 20s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

impl TestServer {
    /// Spawns the server binary with exactly `args` (no flags added; the
    /// args must make it listen on 127.0.0.1:`port`), with working
    /// directory `dir` if given, and waits until it serves. Fails with the
    /// reason if it exits first or another process answers on the port.
    pub fn try_start_exact(
        args: &[String],
        port: u16,
        dir: Option<&std::path::Path>,
    ) -> Result<TestServer, String> {
        Self::try_start_binary(&server_binary(), args, port, dir)
    }

    fn try_start_binary(
        binary: &str,
        args: &[String],
        port: u16,
        dir: Option<&std::path::Path>,
    ) -> Result<TestServer, String> {
        let password = args
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].clone());
        Self::try_start_probed(binary, args, port, dir, &|p| {
            listening_pid(p, password.as_deref())
        })
    }

    /// `try_start_binary` where `probe(port)` asks the server on the port
    /// for its process id (over TLS for a TLS-only server).
    fn try_start_probed(
        binary: &str,
        args: &[String],
        port: u16,
        dir: Option<&std::path::Path>,
        probe: &dyn Fn(u16) -> Option<u32>,
    ) -> Result<TestServer, String> {
        let mut cmd = Command::new(binary);
        cmd.args(without_ferrocache_only_flags(binary, args))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // FERROCACHE_TEST_STDERR=1 shows the server's log when
            // debugging a test.
            .stderr(if std::env::var_os("FERROCACHE_TEST_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::piped()
            });
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("spawn server");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                return Err(format!("server exited with {status}: {err}"));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                if probe(port) != Some(child.id()) {
                    // Someone else's server holds the port: ours will
                    // fail to bind.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("port {port} was taken by another server"));
                }
                // Nothing reads stderr from here on: drop the pipe so a
                // chatty server can never block on a full pipe.
                child.stderr.take();
                return Ok(TestServer { child, port });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start listening on port {port} within 10s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like `start_with`, but the whole command line comes from
    /// `make_args(port)` (for a config file as first argument); retried on
    /// fresh ports if the port is stolen.
    pub fn start_raw(make_args: impl Fn(u16) -> Vec<String>) -> TestServer {
        Self::start_binary_raw(&server_binary(), make_args)
    }

    fn start_binary_raw(binary: &str, make_args: impl Fn(u16) -> Vec<String>) -> TestServer {
        // A port picked this way can be taken by someone else before the
        // server binds it; retry a few times rather than flake.
        let mut last_err = String::new();
        for _ in 0..10 {
            let port = free_port();
            match Self::try_start_binary(binary, &make_args(port), port, None) {
                Ok(srv) => return srv,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start server: {last_err}");
    }

    /// Starts the server (with `start_with`'s flags) on the given port,
    /// e.g. the port of one just stopped, to restart it there.
    pub fn start_on_port(port: u16, extra: &[&str]) -> TestServer {
        let mut args = harness_flags(port);
        args.extend(["--enable-debug-command".into(), "yes".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut last_err = String::new();
        for _ in 0..50 {
            match Self::try_start_binary(&server_binary(), &args, port, None) {
                Ok(srv) => return srv,
                Err(e) => last_err = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not start server on port {port}: {last_err}");
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the server process.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child, which is not yet reaped (we
        // hold its `Child`), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.child.id());
    }

    /// Waits for the server to exit by itself; fails the test after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "server (pid {}) did not exit within {timeout:?}",
                    self.pid()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits (20 s at most) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }
}

// ------------------------------------------------- command helpers

/// A `redis::Cmd` from string arguments.
pub fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Runs a command that must succeed.
pub fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    cmd(args)
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// Runs a command that must fail and returns the full error text.
pub fn q_err(con: &mut redis::Connection, args: &[&str]) -> String {
    err_text(cmd(args).query::<redis::Value>(con))
}

/// The full error line as Redis sent it, minus the leading '-': code and
/// detail joined by one space, e.g. "ERR syntax error". The redis crate
/// splits the line into code and detail; joining them back is the most
/// robust way to compare whole messages.
pub fn err_text<T: std::fmt::Debug>(r: redis::RedisResult<T>) -> String {
    let e = r.expect_err("expected an error reply");
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => panic!("not a server error reply: {e}"),
    }
}

/// The flags every test server gets (port, loopback, no persistence), for
/// tests that build the whole command line themselves.
/// `args` as `binary` takes them: a real redis-server (in a test that
/// runs one beside ferrocache) refuses the harness's `--threads`.
fn without_ferrocache_only_flags(binary: &str, args: &[String]) -> Vec<String> {
    let is_redis = std::path::Path::new(binary)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("redis-server"));
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if is_redis && args[i] == "--threads" {
            i += 2;
            continue;
        }
        out.push(args[i].clone());
        i += 1;
    }
    out
}

pub fn harness_flags(port: u16) -> Vec<String> {
    let mut v: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !against_real_redis() {
        // Two workers whatever the machine (the default is one per core
        // but one, a single worker on a 2-core machine), so the races
        // between commands on different workers that the tests look for
        // can happen everywhere.
        v.extend(["--threads".into(), "2".into()]);
    }
    v
}

// ------------------------------------------------------ waits and tools

/// Polls `f` every 50 ms until it holds; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a tool to completion within `timeout`; returns (success, output).
pub fn run_tool(bin: &str, args: &[String], timeout: Duration) -> (bool, String) {
    let out_path = temp_path("tool-out");
    let out = std::fs::File::create(&out_path).expect("out file");
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn tool");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            panic!("{bin} {args:?} did not finish within {timeout:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    (status.success(), text)
}

/// A field of an INFO-style text ("name:value" lines), "" if absent.
pub fn info_field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}
