//! Protected mode as Redis 7: with no password for the default user, only
//! loopback clients are served, whatever the server binds to.
//!
//! The server binds 0.0.0.0 and the test connects through this machine's
//! own non-loopback IPv4 address, so the server sees a non-loopback peer.
//! Without such an address the tests say so and pass vacuously. Checked
//! against redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test protected_mode`.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// The first up, non-loopback IPv4 address of this machine.
fn external_ipv4() -> Option<Ipv4Addr> {
    let mut found = None;
    // SAFETY: getifaddrs/freeifaddrs on a list we own; every pointer is
    // checked before use.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET
                && ifa.ifa_flags & libc::IFF_UP as u32 != 0
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found = Some(ip);
                    break;
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

/// Connects from the non-loopback address, sends PING, and returns
/// everything the server sent until it closed or went quiet.
fn ping_from_outside(ip: Ipv4Addr, port: u16) -> String {
    let mut s = TcpStream::connect((ip, port)).expect("connect via external address");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"PING\r\n");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // A served client gets one short reply and stays connected.
                if !out.starts_with(b"-DENIED") && out.ends_with(b"\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}; got {:?}", String::from_utf8_lossy(&out)),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_external_ip(test: impl FnOnce(Ipv4Addr)) {
    match external_ipv4() {
        Some(ip) => test(ip),
        None => eprintln!("no non-loopback IPv4 address here: protected mode not exercised"),
    }
}

#[test]
fn non_loopback_clients_are_denied_without_a_password() {
    with_external_ip(|ip| {
        let srv = TestServer::start_with(&["--bind", "0.0.0.0"]);
        assert_eq!(ping_from_outside(ip, srv.port), DENIED);
        // Loopback clients are served.
        let mut con = srv.client();
        let pong: String = q(&mut con, &["PING"]);
        assert_eq!(pong, "PONG");
        let stats: String = q(&mut con, &["INFO", "stats"]);
        assert!(stats.contains("rejected_connections:1\r\n"), "{stats}");
    });
}

#[test]
fn explicit_bind_addresses_are_protected_too() {
    with_external_ip(|ip| {
        let ip_s = ip.to_string();
        let srv = TestServer::start_with(&["--bind", "127.0.0.1", &ip_s]);
        assert_eq!(ping_from_outside(ip, srv.port), DENIED);
    });
}

#[test]
fn a_password_or_protected_mode_no_lets_them_in() {
    with_external_ip(|ip| {
        let srv = TestServer::start_with(&["--bind", "0.0.0.0", "--requirepass", "pw"]);
        assert_eq!(
            ping_from_outside(ip, srv.port),
            "-NOAUTH Authentication required.\r\n"
        );

        let srv = TestServer::start_with(&["--bind", "0.0.0.0", "--protected-mode", "no"]);
        assert_eq!(ping_from_outside(ip, srv.port), "+PONG\r\n");

        let srv = TestServer::start_with(&["--bind", "0.0.0.0"]);
        assert_eq!(ping_from_outside(ip, srv.port), DENIED);
        let mut con = srv.client();
        let _: () = q(&mut con, &["CONFIG", "SET", "protected-mode", "no"]);
        assert_eq!(ping_from_outside(ip, srv.port), "+PONG\r\n");
        // A user password on the default user counts, as requirepass.
        let _: () = q(&mut con, &["CONFIG", "SET", "protected-mode", "yes"]);
        let _: () = q(&mut con, &["ACL", "SETUSER", "default", ">pw"]);
        assert_eq!(
            ping_from_outside(ip, srv.port),
            "-NOAUTH Authentication required.\r\n"
        );
    });
}
