//! Connection commands: PING, ECHO, SELECT, HELLO, AUTH, QUIT, RESET and
//! the CLIENT family.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::{Args, Ctx};
use crate::cmd::table::TABLE;
use crate::util::{eq_ic, now_ms, parse_i64};

pub fn ping(ctx: &mut Ctx, args: &Args) {
    match args.len() {
        1 => ctx.reply.raw(b"+PONG\r\n"),
        2 => ctx.reply.bulk(args.get(1)),
        _ => ctx.error("ERR wrong number of arguments for 'ping' command"),
    }
}

pub fn echo(ctx: &mut Ctx, args: &Args) {
    ctx.reply.bulk(args.get(1));
}

pub fn select(ctx: &mut Ctx, args: &Args) {
    let Some(id) = parse_i64(args.get(1)).filter(|n| i32::try_from(*n).is_ok()) else {
        return ctx.not_integer();
    };
    if ctx.srv.cluster.is_some() && id != 0 {
        return ctx.error("ERR SELECT is not allowed in cluster mode");
    }
    if id < 0 || id as usize >= ctx.srv.databases() {
        return ctx.error("ERR DB index is out of range");
    }
    ctx.client.select(id as usize);
    ctx.reply.ok();
}

/// Authenticates as `user`; on failure writes Redis's error, logs the
/// attempt in ACL LOG, and returns false.
fn authenticate(ctx: &mut Ctx, cmd: &[u8], user: &[u8], pass: &[u8], legacy: bool) -> bool {
    if legacy && crate::acl::default_user().nopass {
        ctx.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
        return false;
    }
    match crate::acl::authenticate(user, pass) {
        Some(u) => {
            ctx.client.set_user(u, true);
            true
        }
        None => {
            let context = if ctx.client.multi.is_some() {
                "multi"
            } else {
                "toplevel"
            };
            crate::acl::log_event(
                "auth",
                context,
                // Redis logs the command name as the client sent it.
                String::from_utf8_lossy(cmd).into_owned(),
                String::from_utf8_lossy(user).into_owned(),
                ctx.client.handle.info_line(now_ms(), "auth"),
            );
            ctx.error("WRONGPASS invalid username-password pair or user is disabled.");
            false
        }
    }
}

pub fn auth(ctx: &mut Ctx, args: &Args) {
    let (user, pass, legacy) = match args.len() {
        2 => (&b"default"[..], args.get(1), true),
        3 => (args.get(1), args.get(2), false),
        _ => return ctx.syntax_error(),
    };
    if authenticate(ctx, args.get(0), user, pass, legacy) {
        ctx.reply.ok();
    }
}

pub fn hello(ctx: &mut Ctx, args: &Args) {
    let mut proto = None;
    let mut j = 1;
    if args.len() >= 2 {
        match parse_i64(args.get(1)) {
            Some(v) => {
                if !(2..=3).contains(&v) {
                    return ctx.error("NOPROTO unsupported protocol version");
                }
                proto = Some(v);
            }
            None => {
                return ctx.error("ERR Protocol version is not an integer or out of range");
            }
        }
        j = 2;
    }
    let mut setname: Option<&[u8]> = None;
    while j < args.len() {
        let more = args.len() - j - 1;
        if eq_ic(args.get(j), "auth") && more >= 2 {
            if !authenticate(ctx, args.get(0), args.get(j + 1), args.get(j + 2), false) {
                return;
            }
            j += 3;
        } else if eq_ic(args.get(j), "setname") && more >= 1 {
            setname = Some(args.get(j + 1));
            j += 2;
        } else {
            return ctx.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                args.str(j)
            ));
        }
    }
    if !ctx.client.authenticated {
        return ctx.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(name) = setname {
        if !valid_client_name(name) {
            return ctx
                .error("ERR Client names cannot contain spaces, newlines or special characters.");
        }
        set_name(ctx, name);
    }
    if let Some(p) = proto {
        ctx.client.set_resp(p == 3);
        ctx.reply.resp3 = p == 3;
    }
    let r = &mut *ctx.reply;
    r.map(7);
    r.bulk_str("server");
    r.bulk_str("redis");
    r.bulk_str("version");
    r.bulk_str(crate::REDIS_VERSION);
    r.bulk_str("proto");
    r.int(if ctx.client.resp3 { 3 } else { 2 });
    r.bulk_str("id");
    r.int(ctx.client.id as i64);
    r.bulk_str("mode");
    r.bulk_str("standalone");
    r.bulk_str("role");
    r.bulk_str("master");
    r.bulk_str("modules");
    r.array(0);
}

pub fn quit(ctx: &mut Ctx, _args: &Args) {
    ctx.reply.ok();
    ctx.client.close_after_reply = true;
}

pub fn reset(ctx: &mut Ctx, _args: &Args) {
    ctx.client.discard_multi();
    ctx.client.select(0);
    ctx.client.set_resp(false);
    ctx.reply.resp3 = false;
    ctx.client.reply_off = false;
    ctx.client.reply_skip = false;
    ctx.client.reply_skip_next = false;
    *ctx.client
        .handle
        .name
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = None;
    ctx.client
        .set_user(crate::acl::default_user(), crate::acl::default_is_open());
    ctx.reply.raw(b"+RESET\r\n");
}

/// Redis allows printable ASCII without spaces in client names.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn set_name(ctx: &mut Ctx, name: &[u8]) {
    let v = if name.is_empty() {
        None
    } else {
        Some(Bytes::copy_from_slice(name))
    };
    *ctx.client
        .handle
        .name
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = v;
}

pub fn client_id(ctx: &mut Ctx, _args: &Args) {
    ctx.reply.int(ctx.client.id as i64);
}

pub fn client_setname(ctx: &mut Ctx, args: &Args) {
    let name = args.get(2);
    if !valid_client_name(name) {
        return ctx
            .error("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    set_name(ctx, name);
    ctx.reply.ok();
}

pub fn client_getname(ctx: &mut Ctx, _args: &Args) {
    match ctx.client.handle.name() {
        Some(n) => ctx.reply.bulk(&n),
        None => ctx.reply.null(),
    }
}

fn cmd_name_of(handle: &crate::client::ClientHandle) -> String {
    match handle.last_cmd.load(Relaxed) {
        0 => "NULL".to_string(),
        n => TABLE
            .entries
            .get(n - 1)
            .map(|r| r.full_name.clone())
            .unwrap_or_else(|| "NULL".into()),
    }
}

pub fn client_list(ctx: &mut Ctx, args: &Args) {
    let mut ids: Option<Vec<u64>> = None;
    let mut j = 2;
    while j < args.len() {
        if eq_ic(args.get(j), "type") && j + 1 < args.len() {
            let t = args.str(j + 1).to_ascii_lowercase();
            if !matches!(
                t.as_str(),
                "normal" | "master" | "replica" | "slave" | "pubsub"
            ) {
                return ctx.error(&format!("ERR Unknown client type '{}'", args.str(j + 1)));
            }
            if t != "normal" {
                ids = Some(Vec::new());
            }
            j += 2;
        } else if eq_ic(args.get(j), "id") && j + 1 < args.len() {
            let mut v = Vec::new();
            for k in j + 1..args.len() {
                match parse_i64(args.get(k)) {
                    Some(id) if id > 0 => v.push(id as u64),
                    _ => return ctx.error("ERR Invalid client ID"),
                }
            }
            ids = Some(v);
            j = args.len();
        } else {
            return ctx.syntax_error();
        }
    }
    let now = now_ms();
    let mut handles: Vec<_> = ctx.srv.clients.iter().map(|e| e.value().clone()).collect();
    handles.sort_by_key(|h| h.id);
    let mut out = String::new();
    for h in handles {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&h.id)) {
            continue;
        }
        // The caller's own line shows the command being run.
        let cmd = if h.id == ctx.client.id {
            "client|list".to_string()
        } else {
            cmd_name_of(&h)
        };
        out.push_str(&h.info_line(now, &cmd));
        out.push('\n');
    }
    ctx.reply.verbatim("txt", out.as_bytes());
}

pub fn client_info(ctx: &mut Ctx, _args: &Args) {
    let mut line = ctx.client.handle.info_line(now_ms(), "client|info");
    line.push('\n');
    ctx.reply.verbatim("txt", line.as_bytes());
}

pub fn client_kill(ctx: &mut Ctx, args: &Args) {
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = args.str(2).to_string();
        let target = ctx
            .srv
            .clients
            .iter()
            .find(|c| c.addr.to_string() == addr)
            .map(|c| c.value().clone());
        return match target {
            Some(h) => {
                kill_handle(ctx, &h);
                ctx.reply.ok()
            }
            None => ctx.error("ERR No such client"),
        };
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut user: Option<String> = None;
    let mut skipme = true;
    let mut replica_type: Option<bool> = None;
    let mut j = 2;
    while j + 1 < args.len() {
        let val = args.get(j + 1);
        if eq_ic(args.get(j), "id") {
            match parse_i64(val) {
                Some(v) if v > 0 => id = Some(v as u64),
                _ => return ctx.error("ERR client-id should be greater than 0"),
            }
        } else if eq_ic(args.get(j), "addr") {
            addr = Some(args.str(j + 1).into_owned());
        } else if eq_ic(args.get(j), "laddr") {
            laddr = Some(args.str(j + 1).into_owned());
        } else if eq_ic(args.get(j), "skipme") {
            skipme = if eq_ic(val, "yes") {
                true
            } else if eq_ic(val, "no") {
                false
            } else {
                return ctx.syntax_error();
            };
        } else if eq_ic(args.get(j), "user") {
            let name = args.str(j + 1).into_owned();
            if crate::acl::get_user(&name).is_none() {
                return ctx.error(&format!("ERR No such user '{name}'"));
            }
            user = Some(name);
        } else if eq_ic(args.get(j), "type") {
            if eq_ic(val, "replica") || eq_ic(val, "slave") {
                replica_type = Some(true);
            } else if eq_ic(val, "normal") {
                replica_type = Some(false);
            } else if eq_ic(val, "master") || eq_ic(val, "pubsub") {
                // No listed client is of these types: match none.
                id = Some(u64::MAX);
            } else {
                return ctx.error(&format!("ERR Unknown client type '{}'", args.str(j + 1)));
            }
        } else if eq_ic(args.get(j), "maxage") {
            // Accepted; connections are not filtered by age.
        } else {
            return ctx.syntax_error();
        }
        j += 2;
    }
    if j != args.len() {
        return ctx.syntax_error();
    }
    let targets: Vec<_> = ctx
        .srv
        .clients
        .iter()
        .filter(|c| id.is_none_or(|i| c.id == i))
        .filter(|c| addr.as_ref().is_none_or(|a| &c.addr.to_string() == a))
        .filter(|c| laddr.as_ref().is_none_or(|a| &c.laddr.to_string() == a))
        .filter(|c| user.as_ref().is_none_or(|u| &c.user_name() == u))
        .filter(|c| !(skipme && c.id == ctx.client.id))
        .filter(|c| replica_type.is_none_or(|r| c.is_replica.load(Relaxed) == r))
        .map(|c| c.value().clone())
        .collect();
    for h in &targets {
        kill_handle(ctx, h);
    }
    ctx.reply.int(targets.len() as i64);
}

fn kill_handle(ctx: &mut Ctx, h: &crate::client::ClientHandle) {
    if h.id == ctx.client.id {
        // Killing ourselves: reply first, then close, as Redis does.
        ctx.client.close_after_reply = true;
    } else {
        ctx.srv.kill_client(h.id);
    }
}

pub fn client_setinfo(ctx: &mut Ctx, args: &Args) {
    let value = args.str(3).into_owned();
    if value.bytes().any(|c| !(b'!'..=b'~').contains(&c)) {
        return ctx.error(&format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            args.str(2).to_ascii_lowercase()
        ));
    }
    let handle = &ctx.client.handle;
    if eq_ic(args.get(2), "lib-name") {
        *handle.lib_name.lock().unwrap_or_else(|e| e.into_inner()) = value;
    } else if eq_ic(args.get(2), "lib-ver") {
        *handle.lib_ver.lock().unwrap_or_else(|e| e.into_inner()) = value;
    } else {
        return ctx.error(&format!("ERR Unrecognized option '{}'", args.str(2)));
    }
    ctx.reply.ok();
}

pub fn client_reply(ctx: &mut Ctx, args: &Args) {
    let mode = args.get(2);
    if eq_ic(mode, "on") {
        ctx.client.reply_off = false;
        ctx.client.reply_skip_next = false;
        ctx.reply.ok();
    } else if eq_ic(mode, "off") {
        ctx.client.reply_off = true;
    } else if eq_ic(mode, "skip") {
        if !ctx.client.reply_off {
            ctx.client.reply_skip_next = true;
        }
    } else {
        ctx.syntax_error();
    }
}

/// Subcommands we accept for client compatibility without changing
/// behaviour (CLIENT NO-EVICT, NO-TOUCH, MAINT_NOTIFICATIONS).
pub fn client_flag_ok(ctx: &mut Ctx, args: &Args) {
    if args.len() == 3
        && !(eq_ic(args.get(2), "on") || eq_ic(args.get(2), "off"))
        && !eq_ic(args.get(1), "maint_notifications")
    {
        return ctx.syntax_error();
    }
    ctx.reply.ok();
}

pub fn client_help(ctx: &mut Ctx, _args: &Args) {
    help_reply(
        ctx,
        "CLIENT",
        &[
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are: ID, ADDR, LADDR, SKIPME.",
            "LIST [TYPE <type>] [ID <id> ...]",
            "    Return information about client connections.",
            "GETNAME",
            "    Return the name of the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attributes (LIB-NAME, LIB-VER).",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
        ],
    );
}

/// The HELP reply shape shared by container commands.
pub fn help_reply(ctx: &mut Ctx, name: &str, lines: &[&str]) {
    ctx.reply.array(lines.len() + 3);
    ctx.reply.simple(&format!(
        "{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        ctx.reply.simple(l);
    }
    ctx.reply.simple("HELP");
    ctx.reply.simple("    Print this help.");
}
