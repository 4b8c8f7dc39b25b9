//! MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
//! [AUTH2 user pw] [KEYS key ...]: DUMP the keys, RESTORE them on the
//! target (RESTORE-ASKING in cluster mode, so an importing target takes
//! them), delete them here unless COPY. Replicas are sent a DEL of the
//! deleted keys, not the MIGRATE (`replication::effect_of`).
//!
//! Like Redis, the call blocks: it runs with every shard locked (the
//! table's LockSpec::All), so no write can slip in between the DUMP and
//! the delete, and it is bounded by the timeout argument. With
//! tls-cluster the connection to the target is TLS, as in Redis.
//!
//! Connections to targets are kept for the next MIGRATE (`SocketCache`,
//! Redis's migrateGetSocket), which sends SELECT only when the database
//! changes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cmd::{Args, Ctx};
use crate::protocol::encode_command;
use crate::util::parse_i64;

/// MIGRATE's options, parsed once for the command and once more for
/// what replicas are sent (`replication::effect_of`).
pub struct Options<'a> {
    pub keys: Vec<&'a [u8]>,
    pub copy: bool,
    pub replace: bool,
    pub user: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
}

/// Parses `MIGRATE host port key|"" db timeout [options]`; the error is the
/// reply.
pub fn parse<'a>(args: &'a Args) -> Result<Options<'a>, &'static str> {
    let mut o = Options {
        keys: vec![args.get(3)],
        copy: false,
        replace: false,
        user: None,
        password: None,
    };
    let mut j = 6;
    while j < args.len() {
        let a = args.get(j);
        let more = args.len() - 1 - j;
        if a.eq_ignore_ascii_case(b"copy") {
            o.copy = true;
        } else if a.eq_ignore_ascii_case(b"replace") {
            o.replace = true;
        } else if a.eq_ignore_ascii_case(b"auth") {
            if more == 0 {
                return Err("ERR syntax error");
            }
            j += 1;
            o.password = Some(args.get(j));
        } else if a.eq_ignore_ascii_case(b"auth2") {
            if more < 2 {
                return Err("ERR syntax error");
            }
            o.user = Some(args.get(j + 1));
            o.password = Some(args.get(j + 2));
            j += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if !args.get(3).is_empty() {
                return Err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                );
            }
            o.keys = (j + 1..args.len()).map(|i| args.get(i)).collect();
            break;
        } else {
            return Err("ERR syntax error");
        }
        j += 1;
    }
    Ok(o)
}

pub fn migrate(ctx: &mut Ctx, args: &Args) {
    let Options {
        keys,
        copy,
        replace,
        user,
        password,
    } = match parse(args) {
        Ok(o) => o,
        Err(e) => return ctx.error(e),
    };
    let (Some(timeout), Some(dbid)) = (parse_i64(args.get(5)), parse_i64(args.get(4))) else {
        return ctx.not_integer();
    };
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    let now = ctx.now;
    // (key, ttl ms, payload) of the keys that exist.
    let mut found: Vec<(&[u8], u64, Vec<u8>)> = Vec::new();
    for k in keys {
        if let Some(e) = ctx.db(k).get(k, now) {
            let ttl = match e.expire_at {
                0 => 0,
                at => at.saturating_sub(now).max(1),
            };
            found.push((k, ttl, super::dump::dump(&e.value)));
        }
    }
    if found.is_empty() {
        return ctx.reply.simple("NOKEY");
    }
    let host = args.str(1).into_owned();
    let port = args.str(2).into_owned();
    let tls = ctx.srv.tls.as_deref().filter(|t| t.cluster);
    let name = (format!("{host}:{port}"), tls.is_some());
    let restore: &[u8] = if ctx.srv.cluster.is_some() {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    let cache = &ctx.srv.migrate_sockets;
    // As Redis's migrateCommand: a socket error before the first key's
    // reply was read (a cached connection the target has closed, say)
    // closes the connection and tries once more, on a new one, unless it
    // was a timeout.
    let mut may_retry = true;
    loop {
        let mut cs = match cache.take(&name) {
            Some(cs) => cs,
            None => match Cached::connect(&host, &port, tls, timeout) {
                Some(cs) => cs,
                None => return ctx.error("IOERR error or timeout connecting to the client"),
            },
        };
        let select = cs.last_dbid != Some(dbid);
        let mut req = Vec::new();
        if let Some(pw) = password {
            match user {
                Some(u) => encode_command(&mut req, &[b"AUTH", u, pw]),
                None => encode_command(&mut req, &[b"AUTH", pw]),
            }
        }
        if select {
            encode_command(&mut req, &[b"SELECT", dbid.to_string().as_bytes()]);
        }
        for (k, ttl, payload) in &found {
            let ttl = ttl.to_string();
            let mut parts: Vec<&[u8]> = vec![restore, k, ttl.as_bytes(), payload];
            if replace {
                parts.push(b"REPLACE");
            }
            encode_command(&mut req, &parts);
        }
        let sent = cs.set_timeout(timeout).and_then(|_| {
            let s = cs.conn.get_mut();
            s.write_all(&req).and_then(|_| s.flush())
        });
        if let Err(e) = sent {
            if may_retry && !is_timeout(&e) {
                may_retry = false;
                continue;
            }
            return ctx.error("IOERR error or timeout writing to target instance");
        }
        // The AUTH and SELECT replies, then one per key.
        let mut preamble_error: Option<String> = None;
        let mut failed: Option<std::io::Error> = None;
        for _ in 0..(password.is_some() as usize + select as usize) {
            match cs.read_line() {
                Ok(line) => {
                    if preamble_error.is_none() && line.starts_with('-') {
                        preamble_error = Some(line);
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            if may_retry && !is_timeout(&e) {
                may_retry = false;
                continue;
            }
            return ctx.error("IOERR error or timeout reading to target instance");
        }
        let mut error = preamble_error;
        let from_target = error.is_some();
        let mut socket_error = false;
        let mut retry = false;
        for (j, (k, _, _)) in found.iter().enumerate() {
            let line = match cs.read_line() {
                Ok(line) => line,
                Err(e) => {
                    socket_error = true;
                    retry = j == 0 && !from_target && may_retry && !is_timeout(&e);
                    break;
                }
            };
            if from_target || line.starts_with('-') {
                if error.is_none() {
                    error = Some(line);
                }
            } else if !copy && ctx.db(k).delete(k, now) {
                ctx.dirty += 1;
            }
        }
        if retry {
            may_retry = false;
            continue;
        }
        match error {
            // The target's error is the reply; the next MIGRATE sends
            // SELECT again.
            Some(e) => {
                if !socket_error {
                    cs.last_dbid = None;
                    cache.put(name, cs);
                }
                let e = e[1..].trim_end();
                return ctx.error(&format!("ERR Target instance replied with error: {e}"));
            }
            None if socket_error => {
                return ctx.error("IOERR error or timeout reading to target instance");
            }
            None => {
                cs.last_dbid = Some(dbid);
                cache.put(name, cs);
                return ctx.reply.ok();
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Most connections kept (Redis's MIGRATE_SOCKET_CACHE_ITEMS).
const CACHE_ITEMS: usize = 64;
/// A kept connection unused for longer is closed by the cron (Redis's
/// MIGRATE_SOCKET_CACHE_TTL).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// MIGRATE's connections to its targets, kept for the next MIGRATE to
/// the same host:port (Redis's migrateGetSocket): one per host:port
/// (and TLS or not), 64 at most, closed after 10 s unused
/// (`close_idle`, from the cron) or at the first I/O error. A MIGRATE
/// takes its connection out while it talks to the target, so the lock is
/// only held to look it up and to put it back.
#[derive(Default)]
pub struct SocketCache {
    map: Mutex<HashMap<(String, bool), Cached>>,
}

impl SocketCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, bool), Cached>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, name: &(String, bool)) -> Option<Cached> {
        self.lock().remove(name)
    }

    fn put(&self, name: (String, bool), mut cs: Cached) {
        cs.last_use = Instant::now();
        let mut map = self.lock();
        if map.len() >= CACHE_ITEMS && !map.contains_key(&name) {
            // Full: drop one, as Redis drops a random one.
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(name, cs);
    }

    /// Closes the connections unused for more than 10 s (Redis's
    /// migrateCloseTimedoutSockets); the cron calls it.
    pub fn close_idle(&self) {
        let mut map = self.lock();
        if !map.is_empty() {
            map.retain(|_, cs| cs.last_use.elapsed() <= CACHE_TTL);
        }
    }
}

/// A connection to a MIGRATE target, and the database it last selected.
struct Cached {
    conn: BufReader<Box<dyn ReadWrite>>,
    /// The TCP socket under `conn` (a clone of it), to set the timeouts
    /// of each MIGRATE.
    tcp: TcpStream,
    last_dbid: Option<i64>,
    last_use: Instant,
}

impl Cached {
    fn connect(
        host: &str,
        port: &str,
        tls: Option<&crate::tls::Tls>,
        timeout: Duration,
    ) -> Option<Cached> {
        let addr = format!("{host}:{port}").to_socket_addrs().ok()?.next()?;
        let s = TcpStream::connect_timeout(&addr, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.set_write_timeout(Some(timeout)).ok()?;
        let _ = s.set_nodelay(true);
        let tcp = s.try_clone().ok()?;
        let conn: Box<dyn ReadWrite> = match tls {
            Some(tls) => Box::new(tls.connect_blocking(s, host).ok()?),
            None => Box::new(s),
        };
        Some(Cached {
            conn: BufReader::new(conn),
            tcp,
            last_dbid: None,
            last_use: Instant::now(),
        })
    }

    fn set_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.tcp.set_read_timeout(Some(timeout))?;
        self.tcp.set_write_timeout(Some(timeout))
    }

    /// One reply line; the end of the stream is an error.
    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        match self.conn.read_line(&mut line)? {
            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(line),
        }
    }
}

/// The connection to the target: TCP or TLS.
trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}
