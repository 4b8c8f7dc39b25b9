//! Replication and persistence commands: PSYNC, SYNC, REPLCONF,
//! REPLICAOF/SLAVEOF, ROLE, WAIT, SAVE, BGSAVE.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::{Args, Ctx};
use crate::replication::{self, Pending, replica};
use crate::util::{eq_ic, now_ms, parse_i64};

pub fn psync(ctx: &mut Ctx, args: &Args) {
    if ctx.client.is_master {
        return ctx.error("ERR Replica can't interact with the keyspace");
    }
    let Some(offset) = parse_i64(args.get(2)) else {
        return ctx.error("ERR value is not an integer or out of range");
    };
    if crate::store::replica_mode() && !replica::LINK_UP.load(Relaxed) {
        return ctx.error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
    ctx.client.pending = Some(Pending::Sync(Some((args.str(1).into_owned(), offset))));
}

pub fn sync(ctx: &mut Ctx, _args: &Args) {
    if crate::store::replica_mode() && !replica::LINK_UP.load(Relaxed) {
        return ctx.error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
    ctx.client.pending = Some(Pending::Sync(None));
}

pub fn replconf(ctx: &mut Ctx, args: &Args) {
    if args.len().is_multiple_of(2) {
        return ctx.syntax_error();
    }
    let mut i = 1;
    while i + 1 < args.len() {
        let (opt, val) = (args.get(i), args.get(i + 1));
        if eq_ic(opt, "listening-port") {
            match parse_i64(val) {
                Some(p) if (0..=65535).contains(&p) => ctx.client.repl_listening_port = p as u16,
                _ => return ctx.error("ERR value is not an integer or out of range"),
            }
        } else if eq_ic(opt, "capa") {
            if eq_ic(val, "eof") {
                ctx.client.repl_capa_eof = true;
            } else if eq_ic(val, "psync2") {
                ctx.client.repl_capa_psync2 = true;
            }
        } else if eq_ic(opt, "ack") || eq_ic(opt, "getack") {
            // Only meaningful on a replication link (handled there); a
            // normal client gets no reply, as in Redis.
            return;
        } else if eq_ic(opt, "rdb-only") {
            match parse_i64(val) {
                Some(v @ 0..=1) => ctx.client.repl_rdb_only = v == 1,
                Some(_) => {
                    return ctx.error("ERR value is out of range, value must between 0 and 1");
                }
                None => return ctx.error("ERR value is not an integer or out of range"),
            }
        } else if eq_ic(opt, "ip-address") {
        } else {
            return ctx.error(&format!(
                "ERR Unrecognized REPLCONF option: {}",
                args.str(i)
            ));
        }
        i += 2;
    }
    ctx.reply.ok();
}

/// REPLICAOF host port | NO ONE (and SLAVEOF).
pub fn replicaof(ctx: &mut Ctx, args: &Args) {
    if ctx.srv.cluster.is_some() {
        // Cluster nodes pick their primary with CLUSTER REPLICATE.
        return ctx.error("ERR REPLICAOF not allowed in cluster mode.");
    }
    if eq_ic(args.get(1), "no") && eq_ic(args.get(2), "one") {
        replica::unset_master();
        return ctx.reply.ok();
    }
    let port = match parse_i64(args.get(2)) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => return ctx.error("ERR Invalid master port"),
    };
    let Some(srv) = replication::server() else {
        return ctx.error("ERR server not running");
    };
    if replica::set_master(&srv, &args.str(1), port) {
        ctx.reply.ok();
    } else {
        ctx.reply.simple("OK Already connected to specified master");
    }
}

pub fn role(ctx: &mut Ctx, _args: &Args) {
    let f = replication::feed();
    match replica::master() {
        Some((host, port)) => {
            let state = if replica::LINK_UP.load(Relaxed) {
                "connected"
            } else if replica::SYNC_IN_PROGRESS.load(Relaxed) {
                "sync"
            } else {
                "connect"
            };
            ctx.reply.array(5);
            ctx.reply.bulk(b"slave");
            ctx.reply.bulk(host.as_bytes());
            ctx.reply.int(port as i64);
            ctx.reply.bulk(state.as_bytes());
            ctx.reply.int(f.offset as i64);
        }
        None => {
            ctx.reply.array(3);
            ctx.reply.bulk(b"master");
            ctx.reply.int(f.offset as i64);
            let online: Vec<_> = f
                .replicas
                .iter()
                .filter(|r| r.online.load(Relaxed))
                .collect();
            ctx.reply.array(online.len());
            for r in online {
                ctx.reply.array(3);
                ctx.reply.bulk(r.ip.as_bytes());
                ctx.reply.bulk(r.listening_port.to_string().as_bytes());
                ctx.reply.bulk(r.ack.load(Relaxed).to_string().as_bytes());
            }
        }
    }
}

pub fn wait(ctx: &mut Ctx, args: &Args) {
    if crate::store::replica_mode() {
        return ctx.error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    let Some(numreplicas) = parse_i64(args.get(1)) else {
        return ctx.not_integer();
    };
    let timeout = match parse_i64(args.get(2)) {
        Some(t) if t < 0 => return ctx.error("ERR timeout is negative"),
        Some(t) => t as u64,
        None => return ctx.error("ERR timeout is not an integer or out of range"),
    };
    if ctx.client.multi.is_some() {
        // Inside EXEC it cannot block: answer with what is acked now.
        let n = replication::replicas_acked(ctx.client.repl_offset);
        return ctx.reply.int(n as i64);
    }
    ctx.client.pending = Some(Pending::Wait {
        numreplicas: numreplicas.max(0) as usize,
        timeout_ms: timeout,
        target: ctx.client.repl_offset,
    });
}

pub fn save(ctx: &mut Ctx, _args: &Args) {
    if crate::persistence::bgsave_in_progress() {
        return ctx.error("ERR Background save already in progress");
    }
    match crate::persistence::save(ctx.srv) {
        Ok(()) => ctx.reply.ok(),
        Err(e) => {
            tracing::warn!("SAVE failed: {e}");
            ctx.error("ERR")
        }
    }
}

pub fn bgsave(ctx: &mut Ctx, args: &Args) {
    if args.len() > 2 || (args.len() == 2 && !eq_ic(args.get(1), "schedule")) {
        return ctx.syntax_error();
    }
    let Some(srv) = replication::server() else {
        return ctx.error("ERR server not running");
    };
    match crate::persistence::bgsave(&srv) {
        Ok(()) => ctx.reply.simple("Background saving started"),
        Err(e) => ctx.error(&e),
    }
}

/// INFO replication.
pub fn info_section(out: &mut String) {
    let f = replication::feed();
    let now = now_ms();
    out.push_str("# Replication\r\n");
    match replica::master() {
        Some((host, port)) => {
            let up = replica::LINK_UP.load(Relaxed);
            let last_io = (now.saturating_sub(replica::LAST_IO_MS.load(Relaxed))) / 1000;
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n",
                if up { "up" } else { "down" },
                if up { last_io as i64 } else { -1 },
                replica::SYNC_IN_PROGRESS.load(Relaxed) as u8,
                f.offset,
                f.offset,
            );
            if !up {
                let since = replica::DOWN_SINCE_MS.load(Relaxed);
                let _ = write!(
                    out,
                    "master_link_down_since_seconds:{}\r\n",
                    now.saturating_sub(since) / 1000
                );
            }
            out.push_str("slave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\n");
        }
        None => out.push_str("role:master\r\n"),
    }
    let online: Vec<_> = f
        .replicas
        .iter()
        .filter(|r| !r.dead.load(Relaxed))
        .collect();
    let _ = write!(out, "connected_slaves:{}\r\n", online.len());
    for (i, r) in online.iter().enumerate() {
        let state = if r.online.load(Relaxed) {
            "online"
        } else {
            "wait_bgsave"
        };
        let _ = write!(
            out,
            "slave{i}:ip={},port={},state={state},offset={},lag={}\r\n",
            r.ip,
            r.listening_port,
            r.ack.load(Relaxed),
            now.saturating_sub(r.last_ack_ms.load(Relaxed)) / 1000
        );
    }
    let _ = write!(
        out,
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
        f.replid,
        f.replid2,
        f.offset,
        f.second_offset,
        f.active as u8,
        replication::backlog_size(),
        f.backlog_first_byte(),
        if f.active { f.histlen() } else { 0 },
    );
}
