//! The redis-server-shaped command line (`[config-file] [--option value
//! ...]`), CONFIG GET/SET of every option, and the process lifecycle:
//! refusal of bad options with a non-zero exit, SIGTERM / SIGINT /
//! SHUTDOWN exiting 0, and replies already computed surviving a SIGTERM.
//!
//! Checked against Debian's redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test cli`;
//! tests of ferrocache-only options return early there.

mod common;
use common::*;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Con = redis::Connection;

// ------------------------------------------------------------- helpers

/// CONFIG GET of one parameter; fails the test unless exactly that
/// parameter comes back.
fn config_get1(con: &mut Con, name: &str) -> String {
    let pairs: Vec<String> = q(con, &["CONFIG", "GET", name]);
    assert_eq!(pairs.len(), 2, "CONFIG GET {name} returned {pairs:?}");
    assert_eq!(pairs[0], name, "CONFIG GET {name} returned {pairs:?}");
    pairs[1].clone()
}

fn info_field(con: &mut Con, section: &str, field: &str) -> Option<String> {
    let info: String = q(con, &["INFO", section]);
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

/// A temp file removed when the test ends (pass or fail).
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        TempFile(temp_path(tag))
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).expect("write temp file");
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Polls for a condition with a generous deadline; failing it fails the
/// test.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts a refused start: non-zero exit and a message on stderr that
/// mentions each of `needles`.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let (status, _stdout, stderr) = run_expecting_exit(args);
    assert!(
        !status.success(),
        "{args:?} exited with {status}, expected failure; stderr: {stderr}"
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "stderr for {args:?} does not mention {n:?}: {stderr}"
        );
    }
}

// ----------------------------------------------------- refused command lines

#[test]
fn unknown_option_is_refused() {
    let port = pick_free_port().to_string();
    // A free port so that a server wrongly accepting the option cannot
    // disturb anything else before the harness kills it.
    assert_refused(
        &["--port", &port, "--no-such-option", "1"],
        &["no-such-option"],
    );
}

#[test]
fn invalid_option_values_are_refused() {
    assert_refused(&["--port", "abc"], &["port", "abc"]);
    let port = pick_free_port().to_string();
    assert_refused(
        &["--port", &port, "--maxmemory-policy", "bogus"],
        &["maxmemory-policy", "bogus"],
    );
    assert_refused(
        &["--port", &port, "--maxmemory", "lots"],
        &["maxmemory", "lots"],
    );
    assert_refused(&["--port", &port, "--databases", "0"], &["databases"]);
}

#[test]
fn missing_config_file_is_refused() {
    let missing = temp_path("missing.conf");
    let missing = missing.to_str().unwrap();
    let (status, stdout, stderr) = run_expecting_exit(&[missing]);
    assert!(!status.success(), "exited with {status}");
    // Redis logs "Fatal error, can't open config file '<path>': No such
    // file or directory" to its log, which is stdout by default; stderr
    // is as good a place.
    assert!(
        stdout.contains(missing) || stderr.contains(missing),
        "no message naming {missing}: stdout {stdout:?}, stderr {stderr:?}"
    );
}

// -------------------------------------------------------------- config file

#[test]
fn config_file_as_first_argument_is_applied() {
    let conf = TempFile::new("applied.conf");
    let srv = TestServer::start_raw(|port| {
        conf.write(&format!(
            "# a redis.conf-style file\n\
             \n\
             port {port}\n\
             bind 127.0.0.1\n\
             \n\
             # quoted and indented values\n\
             save \"\"\n\
             \x20\x20maxmemory 10mb\n\
             maxmemory-policy \"allkeys-lru\"\n\
             appendonly no\n"
        ));
        vec![conf.path().to_string()]
    });
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "maxmemory"), "10485760");
    assert_eq!(config_get1(&mut con, "maxmemory-policy"), "allkeys-lru");
    assert_eq!(config_get1(&mut con, "port"), srv.port.to_string());
    assert_eq!(config_get1(&mut con, "save"), "");
    // Options the file leaves alone keep their defaults.
    assert_eq!(config_get1(&mut con, "hz"), "10");
    assert_eq!(
        info_field(&mut con, "server", "config_file").as_deref(),
        Some(conf.path())
    );
}

#[test]
fn command_line_overrides_config_file() {
    let conf = TempFile::new("override.conf");
    let srv = TestServer::start_raw(|port| {
        conf.write(&format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nmaxmemory 10mb\nhz 15\n"
        ));
        vec![conf.path().to_string(), "--maxmemory".into(), "20mb".into()]
    });
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "maxmemory"), "20971520");
    // The rest of the file still applies.
    assert_eq!(config_get1(&mut con, "hz"), "15");
}

#[test]
fn bad_directive_in_config_file_is_refused() {
    let conf = TempFile::new("bad.conf");
    let port = pick_free_port();
    conf.write(&format!(
        "port {port}\nbind 127.0.0.1\nno-such-directive yes\n"
    ));
    // Redis: "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***", the line
    // number, ">>> 'no-such-directive yes'" and the reason.
    assert_refused(
        &[conf.path()],
        &[
            "no-such-directive",
            "Bad directive or wrong number of arguments",
        ],
    );
}

#[test]
fn bad_value_in_config_file_is_refused() {
    let conf = TempFile::new("badvalue.conf");
    let port = pick_free_port();
    conf.write(&format!(
        "port {port}\nbind 127.0.0.1\nmaxmemory-policy bogus\n"
    ));
    assert_refused(&[conf.path()], &["maxmemory-policy", "bogus"]);
}

// ------------------------------------------------------------------ options

#[test]
fn persistence_and_daemonize_options_are_accepted() {
    // The harness already passes --save '' --appendonly no; repeat them
    // with --daemonize no to check the words are accepted in any order.
    let srv = TestServer::start_with(&["--daemonize", "no", "--save", "", "--appendonly", "no"]);
    let mut con = srv.client();
    assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
    assert_eq!(config_get1(&mut con, "daemonize"), "no");
    assert_eq!(config_get1(&mut con, "appendonly"), "no");
    assert_eq!(config_get1(&mut con, "save"), "");
}

#[test]
fn databases_option_limits_select() {
    let srv = TestServer::start_with(&["--databases", "4"]);
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "databases"), "4");
    assert_eq!(
        q_err(&mut con, &["SELECT", "4"]),
        "ERR DB index is out of range"
    );
    assert_eq!(q::<String>(&mut con, &["SELECT", "3"]), "OK");
}

#[test]
fn hz_option_shows_in_config_and_info() {
    let srv = TestServer::start_with(&["--hz", "50"]);
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "hz"), "50");
    assert_eq!(info_field(&mut con, "server", "hz").as_deref(), Some("50"));
    assert_eq!(
        info_field(&mut con, "server", "configured_hz").as_deref(),
        Some("50")
    );
}

#[test]
fn requirepass_option_requires_auth() {
    let srv = TestServer::start_with(&["--requirepass", "x"]);
    let mut c = srv.raw();
    c.roundtrip(
        &resp_cmd(&[b"PING"]),
        b"-NOAUTH Authentication required.\r\n",
    );
    c.roundtrip(
        &resp_cmd(&[b"AUTH", b"y"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    c.roundtrip(&resp_cmd(&[b"AUTH", b"x"]), b"+OK\r\n");
    c.roundtrip(&resp_cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn maxmemory_options_read_back() {
    let srv = TestServer::start_with(&[
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "allkeys-lru",
        "--maxmemory-samples",
        "7",
    ]);
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "maxmemory"), "104857600");
    assert_eq!(config_get1(&mut con, "maxmemory-policy"), "allkeys-lru");
    assert_eq!(config_get1(&mut con, "maxmemory-samples"), "7");
}

fn read_log(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn logfile_receives_the_log() {
    let log = TempFile::new("notice.log");
    let srv = TestServer::start_with(&["--loglevel", "notice", "--logfile", log.path()]);
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "logfile"), log.path());
    assert_eq!(config_get1(&mut con, "loglevel"), "notice");
    // The line is logged before the server accepts connections, but a
    // poll keeps this independent of how the log is buffered.
    wait_for("'Ready to accept connections' in the log file", || {
        read_log(log.path()).is_some_and(|t| t.contains("Ready to accept connections"))
    });
}

#[test]
fn loglevel_warning_omits_notices() {
    let log = TempFile::new("warning.log");
    let mut srv = TestServer::start_with(&["--loglevel", "warning", "--logfile", log.path()]);
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "loglevel"), "warning");
    // Stop the server so that everything it would log about startup and
    // shutdown is in the file before we read it.
    drop(con);
    assert!(srv.terminate().success());
    let text = read_log(log.path()).expect("log file exists");
    assert!(
        !text.contains("Ready to accept connections"),
        "notice-level line logged at loglevel warning: {text}"
    );
}

#[test]
fn shards_option_shows_in_info() {
    if against_real_redis() {
        // --shards is ferrocache's own option; Redis refuses it.
        return;
    }
    let srv = TestServer::start_with(&["--shards", "3"]);
    let mut con = srv.client();
    assert_eq!(
        info_field(&mut con, "server", "shards").as_deref(),
        Some("3")
    );
    assert_eq!(config_get1(&mut con, "shards"), "3");
}

#[test]
fn threads_option_sets_the_worker_count_apart_from_shards() {
    if against_real_redis() {
        return;
    }
    let srv = TestServer::start_with(&["--shards", "4", "--threads", "2"]);
    let mut con = srv.client();
    assert_eq!(
        info_field(&mut con, "server", "shards").as_deref(),
        Some("4")
    );
    assert_eq!(
        info_field(&mut con, "server", "threads").as_deref(),
        Some("2")
    );
    assert_eq!(config_get1(&mut con, "threads"), "2");
    // Connections, handed to the workers in turn, reach every shard.
    let mut cons: Vec<_> = (0..4).map(|_| srv.client()).collect();
    for (i, c) in cons.iter_mut().enumerate() {
        for k in 0..20 {
            q::<()>(c, &["SET", &format!("k{i}:{k}"), "v"]);
        }
    }
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), 80);
    // The harness asks for two workers; this one keeps the default.
    let default = TestServer::start_raw(|port| {
        let mut args = harness_flags(port);
        let at = args
            .iter()
            .position(|a| a == "--threads")
            .expect("--threads");
        args.drain(at..at + 2);
        args
    });
    let mut d = default.client();
    let threads: usize = info_field(&mut d, "server", "threads")
        .and_then(|t| t.parse().ok())
        .expect("threads in INFO server");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(threads, cores.saturating_sub(1).max(1));
}

#[test]
fn bind_accepts_optional_address_starting_with_dash() {
    // Redis's own default is "127.0.0.1 -::1": a leading '-' makes an
    // address optional (no failure if IPv6 is unavailable). The word
    // starts with '-' but is a value, not an option.
    let srv = TestServer::start_raw(|port| {
        let mut args = harness_flags(port);
        args.extend(["--bind".into(), "127.0.0.1".into(), "-::1".into()]);
        args
    });
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "bind"), "127.0.0.1 -::1");
}

// -------------------------------------------------------- CONFIG GET / SET

#[test]
fn every_option_is_readable_with_config_get() {
    let srv = TestServer::start();
    let mut con = srv.client();
    let port = srv.port.to_string();
    // Values under the harness's flags (--port N --bind 127.0.0.1 --save ''
    // --appendonly no --enable-debug-command yes); otherwise defaults.
    let expected: &[(&str, &str)] = &[
        ("port", &port),
        ("bind", "127.0.0.1"),
        ("requirepass", ""),
        ("databases", "16"),
        ("hz", "10"),
        ("maxmemory", "0"),
        ("maxmemory-policy", "noeviction"),
        ("maxmemory-samples", "5"),
        ("loglevel", "notice"),
        ("logfile", ""),
        ("daemonize", "no"),
        ("save", ""),
        ("appendonly", "no"),
        ("timeout", "0"),
        ("tcp-keepalive", "300"),
        ("tcp-backlog", "511"),
        ("maxclients", "10000"),
        ("proto-max-bulk-len", "536870912"),
        ("client-query-buffer-limit", "1073741824"),
        ("protected-mode", "yes"),
        ("enable-debug-command", "yes"),
        ("lfu-log-factor", "10"),
        ("lfu-decay-time", "1"),
        ("active-expire-effort", "1"),
        ("dbfilename", "dump.rdb"),
        ("appendfsync", "everysec"),
        ("io-threads", "1"),
        ("lazyfree-lazy-user-flush", "no"),
        ("cluster-enabled", "no"),
    ];
    for (name, value) in expected {
        assert_eq!(config_get1(&mut con, name), *value, "CONFIG GET {name}");
    }
    // `dir` exists too (its value is checked separately).
    config_get1(&mut con, "dir");
    if !against_real_redis() {
        // 0 means "choose from the number of CPUs".
        let shards = config_get1(&mut con, "shards");
        assert!(shards.parse::<u32>().is_ok(), "shards = {shards:?}");
    }
}

#[test]
fn config_get_dir_is_the_absolute_working_directory() {
    // Redis answers getcwd(), never the "." it starts from.
    let srv = TestServer::start();
    let mut con = srv.client();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        Path::new(&config_get1(&mut con, "dir")),
        cwd.as_path(),
        "CONFIG GET dir"
    );
}

#[test]
fn config_set_mutable_and_immutable_options() {
    let srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(q::<String>(&mut con, &["CONFIG", "SET", "hz", "20"]), "OK");
    assert_eq!(config_get1(&mut con, "hz"), "20");
    assert_eq!(info_field(&mut con, "server", "hz").as_deref(), Some("20"));
    assert_eq!(
        q::<String>(&mut con, &["CONFIG", "SET", "maxmemory", "1mb"]),
        "OK"
    );
    assert_eq!(config_get1(&mut con, "maxmemory"), "1048576");
    assert_eq!(
        q::<String>(
            &mut con,
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]
        ),
        "OK"
    );
    assert_eq!(config_get1(&mut con, "maxmemory-policy"), "allkeys-lfu");

    // Immutable in Redis 7.0 as well as in ferrocache.
    for (name, value) in [
        ("databases", "4"),
        ("logfile", "/tmp/x.log"),
        ("daemonize", "no"),
        ("tcp-backlog", "100"),
        ("enable-debug-command", "yes"),
        ("io-threads", "2"),
        ("cluster-enabled", "no"),
    ] {
        assert_eq!(
            q_err(&mut con, &["CONFIG", "SET", name, value]),
            format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
            )
        );
    }
    assert_eq!(config_get1(&mut con, "databases"), "16");

    if !against_real_redis() {
        // Redis 7 can re-listen on a new port at runtime; ferrocache
        // refuses it, with Redis's wording for immutable options.
        let other = pick_free_port().to_string();
        assert_eq!(
            q_err(&mut con, &["CONFIG", "SET", "port", &other]),
            "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
        );
        assert_eq!(config_get1(&mut con, "port"), srv.port.to_string());
    }
}

// ---------------------------------------------------------------- lifecycle

#[test]
fn sigterm_exits_zero() {
    let mut srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
    let status = srv.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn sigint_exits_zero() {
    let mut srv = TestServer::start();
    let mut con = srv.client();
    assert_eq!(q::<String>(&mut con, &["PING"]), "PONG");
    srv.signal(libc::SIGINT);
    let status = srv.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status after SIGINT: {status}");
}

#[test]
fn shutdown_command_exits_zero() {
    let mut srv = TestServer::start();
    let mut c = srv.raw();
    c.send(&resp_cmd(&[b"SHUTDOWN"]));
    // No reply: the connection just closes.
    assert_eq!(c.read_to_close(), b"");
    let status = srv.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status after SHUTDOWN: {status}");
}

#[test]
fn sigterm_keeps_replies_already_computed() {
    const N: usize = 10_000;
    let mut srv = TestServer::start();
    let mut c = srv.raw();
    // One round trip first, so the server has certainly accepted and
    // registered the connection: a connection still in the accept queue
    // when the signal lands has nothing computed to deliver.
    c.roundtrip(&resp_cmd(&[b"PING"]), b"+PONG\r\n");
    // Read concurrently so the server never blocks on a full socket and
    // everything it sends before exiting is collected.
    let mut reader = c.s.try_clone().expect("clone socket");
    reader
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let collector = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(out),
                Err(e) => return Err(format!("{e} after {} bytes", out.len())),
            }
        }
    });
    c.send(&resp_cmd(&[b"PING"]).repeat(N));
    srv.signal(libc::SIGTERM);
    let status = srv.wait_exit(Duration::from_secs(20));
    let got = collector
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("connection not closed after shutdown: {e}"));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        !got.is_empty(),
        "not even the first pipelined reply was delivered"
    );
    let pong = b"+PONG\r\n";
    assert_eq!(
        got.len() % pong.len(),
        0,
        "a reply was cut short: {} bytes, tail {:?}",
        got.len(),
        String::from_utf8_lossy(&got[got.len().saturating_sub(20)..])
    );
    eprintln!("{} of {N} replies delivered", got.len() / pong.len());
    assert!(got.len() / pong.len() <= N, "more replies than requests");
    for (i, reply) in got.chunks(pong.len()).enumerate() {
        assert_eq!(reply, pong, "reply {i}");
    }
}

#[test]
fn default_start_listens_on_127_0_0_1_6379() {
    if std::net::TcpListener::bind(("127.0.0.1", 6379)).is_err() {
        // Something else (a system Redis?) owns the default port; nothing
        // can be checked without disturbing it.
        eprintln!("skipped: 127.0.0.1:6379 is in use");
        return;
    }
    // A private working directory: with no arguments Redis saves
    // dump.rdb there on shutdown.
    let dir = temp_path("default-start");
    std::fs::create_dir(&dir).unwrap();
    let result = TestServer::try_start_exact(&[], 6379, Some(&dir));
    let mut srv = match result {
        Ok(srv) => srv,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("default start failed: {e}");
        }
    };
    let mut c = srv.raw();
    c.roundtrip(&resp_cmd(&[b"PING"]), b"+PONG\r\n");
    drop(c);
    let mut con = srv.client();
    assert_eq!(config_get1(&mut con, "port"), "6379");
    drop(con);
    let status = srv.terminate();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
