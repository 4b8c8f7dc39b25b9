//! Protected mode as Redis 7: with no password for the default user, only
//! loopback clients are served, whatever the server binds to.
//!
//! The test client binds its socket to 127.0.0.2, which Redis does not
//! count as loopback (only 127.0.0.1 and ::1 are), so the server sees an
//! outside peer on any Linux machine. Checked
//! against redis-server 7.0.15 with
//! `FERROCACHE_TEST_BIN=/usr/bin/redis-server cargo test --test protected_mode`.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis counts only 127.0.0.1 and ::1 as loopback peers, so a client
/// whose socket is bound to 127.0.0.2 is an outside client to protected
/// mode, on any Linux machine (all of 127/8 is routed to `lo`).
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A TCP connection to 127.0.0.1:`port` from the source address `OUTSIDE`.
fn connect_from_outside(port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket owned here; the sockaddr_in values live on the
    // stack for the duration of each call; on success the descriptor is
    // handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let src = sockaddr(OUTSIDE, 0);
        let rc = libc::bind(fd, &src as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "bind 127.0.0.2: {}", std::io::Error::last_os_error());
        let dst = sockaddr(Ipv4Addr::LOCALHOST, port);
        let rc = libc::connect(fd, &dst as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// Connects from `OUTSIDE`, sends PING, and returns everything the server
/// sent until it closed or went quiet.
fn ping_from_outside(port: u16) -> String {
    let mut s = connect_from_outside(port);
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

#[test]
fn non_loopback_clients_are_denied_without_a_password() {
    {
        let srv = TestServer::start_with(&["--bind", "0.0.0.0"]);
        assert_eq!(ping_from_outside(srv.port), DENIED);
        // Loopback clients are served.
        let mut con = srv.client();
        let pong: String = q(&mut con, &["PING"]);
        assert_eq!(pong, "PONG");
        let stats: String = q(&mut con, &["INFO", "stats"]);
        assert!(stats.contains("rejected_connections:1\r\n"), "{stats}");
    }
}

#[test]
fn explicit_bind_addresses_are_protected_too() {
    {
        let srv = TestServer::start_with(&["--bind", "127.0.0.1"]);
        assert_eq!(ping_from_outside(srv.port), DENIED);
    }
}

#[test]
fn a_password_or_protected_mode_no_lets_them_in() {
    {
        let srv = TestServer::start_with(&["--bind", "0.0.0.0", "--requirepass", "pw"]);
        assert_eq!(
            ping_from_outside(srv.port),
            "-NOAUTH Authentication required.\r\n"
        );

        let srv = TestServer::start_with(&["--bind", "0.0.0.0", "--protected-mode", "no"]);
        assert_eq!(ping_from_outside(srv.port), "+PONG\r\n");

        let srv = TestServer::start_with(&["--bind", "0.0.0.0"]);
        assert_eq!(ping_from_outside(srv.port), DENIED);
        let mut con = srv.client();
        let _: () = q(&mut con, &["CONFIG", "SET", "protected-mode", "no"]);
        assert_eq!(ping_from_outside(srv.port), "+PONG\r\n");
        // A user password on the default user counts, as requirepass.
        let _: () = q(&mut con, &["CONFIG", "SET", "protected-mode", "yes"]);
        let _: () = q(&mut con, &["ACL", "SETUSER", "default", ">pw"]);
        assert_eq!(
            ping_from_outside(srv.port),
            "-NOAUTH Authentication required.\r\n"
        );
    }
}
