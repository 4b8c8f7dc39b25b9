//! The dispatcher: resolve, check (arity, protection, auth), lock the
//! command's shards, run the handler, account, propagate.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::BytesMut;

use super::table::{LockSpec, Lookup, Resolved, flag, lookup};
use super::{Args, Ctx, Locked};
use crate::client::ClientState;
use crate::protocol::Reply;
use crate::server::Server;
use crate::stats::{WorkerStats, bump};
use crate::util::now_ms;

/// Executes one command and appends its reply to `out`.
pub fn execute(
    srv: &Server,
    state: &mut ClientState,
    args: &Args,
    out: &mut BytesMut,
    stats: &WorkerStats,
) {
    let mark = out.len();
    let mut reply = Reply::new(out, state.resp3);
    run_command(srv, state, args, &mut reply, stats);
    bump(&stats.commands, 1);
    state
        .handle
        .last_interaction_ms
        .store(now_ms_cheap(), Relaxed);

    // CLIENT REPLY OFF/SKIP drop the reply after the fact, errors included,
    // as Redis does.
    if state.reply_off || state.reply_skip {
        out.truncate(mark);
    }
    state.reply_skip = std::mem::take(&mut state.reply_skip_next);
}

/// The last-interaction clock only needs seconds; reading the system
/// clock per command is cheap enough (vDSO), kept in one place.
#[inline]
fn now_ms_cheap() -> u64 {
    now_ms()
}

fn run_command(
    srv: &Server,
    state: &mut ClientState,
    args: &Args,
    reply: &mut Reply,
    stats: &WorkerStats,
) {
    let resolved = match lookup(args.get(0), (args.len() > 1).then(|| args.get(1))) {
        Lookup::Found(r) => r,
        Lookup::Unknown => {
            reply.error(&unknown_command_message(args));
            bump(&stats.error_replies, 1);
            return;
        }
        Lookup::UnknownSub(container) => {
            reply.error(&format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                truncate_chars(&args.str(1), 128),
                container.spec.name.to_ascii_uppercase()
            ));
            bump(&stats.error_replies, 1);
            return;
        }
    };
    let spec = resolved.spec;
    let cstat = &stats.cmd[resolved.id];
    let argc = args.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        reply.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            resolved.full_name
        ));
        bump(&cstat.rejected, 1);
        bump(&stats.error_replies, 1);
        return;
    }
    if spec.flags & flag::PROTECTED != 0 && !protected_allowed(srv, state) {
        reply.error(&format!(
            "ERR {} command not allowed. If the enable-{}-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
            spec.name.to_ascii_uppercase(),
            spec.name
        ));
        bump(&cstat.rejected, 1);
        bump(&stats.error_replies, 1);
        return;
    }
    if !state.authenticated && spec.flags & flag::NO_AUTH == 0 {
        reply.error("NOAUTH Authentication required.");
        bump(&cstat.rejected, 1);
        bump(&stats.error_replies, 1);
        return;
    }
    let Some(handler) = spec.handler else {
        // A container with no subcommand given: arity already rejected it.
        return;
    };

    let locked = lock_for(srv, resolved, args);
    let started = Instant::now();
    let errors_before = reply.errors;
    let mut ctx = Ctx {
        srv,
        client: state,
        reply,
        locked,
        now: now_ms(),
        dirty: 0,
    };
    handler(&mut ctx, args);
    let dirty = ctx.dirty;
    let db = ctx.client.db;
    drop(ctx);
    let usec = started.elapsed().as_micros() as u64;

    if dirty > 0 {
        srv.dirty.fetch_add(dirty, Relaxed);
        crate::replication::propagate(db, args);
    }
    bump(&cstat.calls, 1);
    bump(&cstat.usec, usec);
    let errs = reply.errors - errors_before;
    if errs > 0 {
        bump(&cstat.failed, 1);
        bump(&stats.error_replies, errs as u64);
    }
}

fn protected_allowed(srv: &Server, state: &ClientState) -> bool {
    match srv.config.get("enable-debug-command").as_deref() {
        Some("yes") => true,
        Some("local") => state.is_local,
        _ => false,
    }
}

/// The shards the command needs, locked in ascending order.
pub fn lock_for<'a>(srv: &'a Server, resolved: &Resolved, args: &Args) -> Locked<'a> {
    match resolved.spec.lock {
        LockSpec::None => Locked::None,
        LockSpec::All => Locked::all(srv),
        LockSpec::Keys => {
            let (first, last, step) = resolved.spec.keys;
            let argc = args.len() as i32;
            let last = if last < 0 {
                argc + last
            } else {
                last.min(argc - 1)
            };
            if first >= argc {
                return Locked::None;
            }
            if last <= first {
                let idx = srv.store.shard_of(args.get(first as usize));
                return Locked::One(idx, srv.store.lock(idx));
            }
            let mut shards: Vec<usize> = (first..=last)
                .step_by(step.max(1) as usize)
                .map(|i| srv.store.shard_of(args.get(i as usize)))
                .collect();
            shards.sort_unstable();
            shards.dedup();
            Locked::acquire(srv, &shards)
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Redis's text: the name and the first arguments, quoted, up to 128
/// characters of arguments.
fn unknown_command_message(args: &Args) -> String {
    let mut list = String::new();
    for i in 1..args.len() {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push('\'');
        list.push_str(truncate_chars(&args.str(i), room));
        list.push_str("' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        truncate_chars(&args.str(0), 128),
        list
    )
}
