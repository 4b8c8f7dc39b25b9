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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

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
    let connect = || -> Option<Box<dyn ReadWrite>> {
        let addr = format!("{host}:{port}").to_socket_addrs().ok()?.next()?;
        let s = TcpStream::connect_timeout(&addr, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.set_write_timeout(Some(timeout)).ok()?;
        Some(match tls {
            Some(tls) => Box::new(tls.connect_blocking(s, &host).ok()?),
            None => Box::new(s),
        })
    };
    let Some(mut stream) = connect() else {
        return ctx.error("IOERR error or timeout connecting to the client");
    };
    let mut req = Vec::new();
    if let Some(pw) = password {
        match user {
            Some(u) => encode_command(&mut req, &[b"AUTH", u, pw]),
            None => encode_command(&mut req, &[b"AUTH", pw]),
        }
    }
    encode_command(&mut req, &[b"SELECT", dbid.to_string().as_bytes()]);
    let restore: &[u8] = if ctx.srv.cluster.is_some() {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    for (k, ttl, payload) in &found {
        let ttl = ttl.to_string();
        let mut parts: Vec<&[u8]> = vec![restore, k, ttl.as_bytes(), payload];
        if replace {
            parts.push(b"REPLACE");
        }
        encode_command(&mut req, &parts);
    }
    if stream.write_all(&req).and_then(|_| stream.flush()).is_err() {
        return ctx.error("IOERR error or timeout writing to target instance");
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut read_line = |line: &mut String| -> bool {
        line.clear();
        matches!(reader.read_line(line), Ok(n) if n > 0)
    };
    let preamble = password.is_some() as usize + 1;
    for _ in 0..preamble {
        if !read_line(&mut line) {
            return ctx.error("IOERR error or timeout reading to target instance");
        }
        if let Some(err) = line.strip_prefix('-') {
            return ctx.error(&format!(
                "ERR Target instance replied with error: {}",
                err.trim_end()
            ));
        }
    }
    let mut error: Option<String> = None;
    for (k, _, _) in &found {
        if !read_line(&mut line) {
            return ctx.error("IOERR error or timeout reading to target instance");
        }
        if let Some(err) = line.strip_prefix('-') {
            error = Some(format!(
                "ERR Target instance replied with error: {}",
                err.trim_end()
            ));
        } else if !copy && ctx.db(k).delete(k, now) {
            ctx.dirty += 1;
        }
    }
    match error {
        Some(e) => ctx.error(&e),
        None => ctx.reply.ok(),
    }
}

/// The connection to the target: TCP or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
