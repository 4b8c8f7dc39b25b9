//! The dispatcher: resolve, check (arity, protection, auth), lock the
//! command's shards, run the handler, account, propagate.

use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;

use super::table::{CommandSpec, LockSpec, Lookup, Resolved, flag, lookup};
use super::{Args, Ctx, KeyShards, Locked, OwnedArgs};
use crate::client::ClientState;
use crate::cluster::routing::{self, Here};
use crate::protocol::Reply;
use crate::server::Server;
use crate::stats::{WorkerStats, bump};
use crate::util::{micros_since, mono_ns, now_ms, unix_ms_at};

/// Executes one command and appends its reply to `out`.
pub fn execute(
    srv: &Server,
    state: &mut ClientState,
    args: &Args,
    out: &mut BytesMut,
    stats: &WorkerStats,
) {
    let mark = out.len();
    let mut reply = Reply::counted(out, state.resp3, &stats.error_codes);
    // One monotonic reading per command: it times the command and gives
    // its wall clock (`unix_ms_at`).
    let started = mono_ns();
    run_command(srv, state, args, &mut reply, stats, started);
    // What the command's evictions freed, unless its own write already
    // carried it into the shared dataset figure.
    crate::eviction::flush_freed();
    bump(&stats.commands, 1);
    // Every error line of this command's reply (those nested in EXEC's
    // too), as errorstats counted them.
    bump(&stats.error_replies, reply.errors as u64);
    state
        .handle
        .last_interaction_ms
        .store(unix_ms_at(started), Relaxed);

    // CLIENT REPLY OFF/SKIP drop the reply after the fact, errors included,
    // as Redis does.
    if state.reply_off || state.reply_skip {
        out.truncate(mark);
    }
    state.reply_skip = std::mem::take(&mut state.reply_skip_next);
}

/// Rejects a command: error reply, counted as a rejected call, and a
/// transaction being queued is doomed (Redis's flagTransaction).
fn reject(
    state: &mut ClientState,
    reply: &mut Reply,
    stats: &WorkerStats,
    id: Option<usize>,
    msg: impl AsRef<[u8]>,
) {
    reply.error_bytes(msg.as_ref());
    if let Some(id) = id {
        bump(&stats.cmd[id].rejected, 1);
    }
    if state.multi.is_some() {
        state.multi_error = true;
    }
}

fn run_command(
    srv: &Server,
    state: &mut ClientState,
    args: &Args,
    reply: &mut Reply,
    stats: &WorkerStats,
    started: u64,
) {
    let resolved = match lookup(args.get(0), (args.len() > 1).then(|| args.get(1))) {
        Lookup::Found(r) => r,
        Lookup::Unknown => {
            return reject(state, reply, stats, None, unknown_command_message(args));
        }
        Lookup::UnknownSub(container) => {
            let mut msg = b"ERR unknown subcommand '".to_vec();
            msg.extend_from_slice(c_str_prefix(args.get(1), 128));
            msg.extend_from_slice(
                format!("'. Try {} HELP.", container.spec.name.to_ascii_uppercase()).as_bytes(),
            );
            return reject(state, reply, stats, None, &msg);
        }
    };
    let spec = resolved.spec;
    let argc = args.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        let msg = format!(
            "ERR wrong number of arguments for '{}' command",
            resolved.full_name
        );
        return reject(state, reply, stats, Some(resolved.id), &msg);
    }
    if spec.flags & flag::PROTECTED != 0 && !protected_allowed(srv, state) {
        let msg = format!(
            "ERR {} command not allowed. If the enable-{}-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
            spec.name.to_ascii_uppercase(),
            spec.name
        );
        return reject(state, reply, stats, Some(resolved.id), &msg);
    }
    if !state.authenticated && spec.flags & flag::NO_AUTH == 0 {
        return reject(
            state,
            reply,
            stats,
            Some(resolved.id),
            "NOAUTH Authentication required.",
        );
    }
    // The default user may do anything: while nothing changed in the
    // ACLs, this comparison is its whole permission check.
    if state.acl_fast != crate::acl::epoch()
        && let Err(denied) = acl_check(state, resolved, args, "toplevel")
    {
        let msg = crate::acl::denied_message(denied, resolved);
        return reject(state, reply, stats, Some(resolved.id), &msg);
    }
    // Cluster mode off: this one branch is all routing costs. Our
    // primary's stream is applied whatever the slot table says.
    let mut here = None;
    if let Some(cluster) = &srv.cluster
        && !state.is_master
    {
        match routing::route(srv, cluster, state, spec, args) {
            Ok(h) => here = h,
            Err(msg) => {
                if spec.name == "exec" && state.multi.is_some() {
                    // Redis discards the transaction along with the error.
                    state.multi = None;
                    state.multi_error = false;
                    state.unwatch_all();
                }
                return reject(state, reply, stats, Some(resolved.id), &msg);
            }
        }
    }
    if crate::store::replica_mode()
        && !state.is_master
        && spec.flags & flag::STALE == 0
        && !crate::replication::serving_stale_ok()
    {
        return reject(
            state,
            reply,
            stats,
            Some(resolved.id),
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        );
    }
    if spec.flags & flag::WRITE != 0 && !state.is_master && crate::store::replica_mode() {
        return reject(
            state,
            reply,
            stats,
            Some(resolved.id),
            "READONLY You can't write against a read only replica.",
        );
    }
    // Commands that may grow memory make room first (Redis's
    // performEvictions); inside MULTI any queued command counts, since
    // queuing itself takes memory, and EXEC counts if it queued one.
    // Like Redis, every command evicts first when over the limit; only
    // those that may grow memory are refused when nothing can be evicted.
    if srv.config.maxmemory.load(Relaxed) != 0 && !crate::eviction::perform_evictions(srv, started)
    {
        let queuing = state.multi.is_some() && spec.flags & flag::NOT_QUEUED == 0;
        let exec_grows = state.multi.is_some()
            && spec.name == "exec"
            && state
                .multi
                .as_ref()
                .is_some_and(|q| q.iter().any(queued_denyoom));
        if spec.flags & flag::DENYOOM != 0 || queuing || exec_grows {
            return reject(
                state,
                reply,
                stats,
                Some(resolved.id),
                "OOM command not allowed when used memory > 'maxmemory'.",
            );
        }
    }
    if state.multi.is_some() && spec.flags & flag::NOT_QUEUED == 0 {
        if spec.flags & flag::NO_MULTI != 0 {
            return reject(
                state,
                reply,
                stats,
                Some(resolved.id),
                "ERR Command not allowed inside a transaction",
            );
        }
        if let Some(queue) = state.multi.as_mut() {
            queue.push(OwnedArgs::from_args(args));
        }
        reply.raw(b"+QUEUED\r\n");
        return;
    }
    if state.multi.is_some() && spec.name == "exec" {
        return exec(srv, state, resolved, args, here, reply, stats);
    }
    let (locked, key_shards) = match here {
        // Cluster mode: every key is in this one slot, hence one shard.
        Some(h) if resolved.spec.lock == LockSpec::Keys => {
            let idx = h.slot as usize % srv.store.len();
            (Locked::One(idx, srv.store.lock(idx)), KeyShards::new())
        }
        _ => lock_for(srv, resolved, args),
    };
    if let Err(msg) = confirm_route(srv, spec, args, None, here, &locked) {
        drop(locked);
        return reject(state, reply, stats, Some(resolved.id), &msg);
    }
    run_locked(
        srv, state, resolved, args, reply, stats, locked, key_shards, started,
    );
}

/// The slow path of the permission check: re-reads the user if the
/// ACLs changed, then checks the command and its keys, logging a refusal
/// as Redis does. Returns the reason for a refusal.
fn acl_check(
    state: &mut ClientState,
    resolved: &Resolved,
    args: &Args,
    context: &'static str,
) -> Result<(), crate::acl::Denied> {
    state.refresh_user();
    if state.acl_fast == crate::acl::epoch() {
        return Ok(());
    }
    let denied = match crate::acl::check(&state.user, resolved, args) {
        Ok(()) => return Ok(()),
        Err(d) => d,
    };
    let context = if state.multi.is_some() {
        "multi"
    } else {
        context
    };
    let object = match denied {
        crate::acl::Denied::Command => resolved.full_name.clone(),
        crate::acl::Denied::Key(i) => args.str(i).into_owned(),
    };
    crate::acl::log_event(
        match denied {
            crate::acl::Denied::Command => "command",
            crate::acl::Denied::Key(_) => "key",
        },
        context,
        object,
        state.user.name.clone(),
        state.handle.info_line(now_ms(), &resolved.full_name),
    );
    Err(denied)
}

fn queued_denyoom(q: &OwnedArgs) -> bool {
    let args = q.args();
    match lookup(args.get(0), (args.len() > 1).then(|| args.get(1))) {
        Lookup::Found(r) => r.spec.flags & flag::DENYOOM != 0,
        _ => false,
    }
}

/// Runs a resolved, checked command with its shards already locked, and
/// hands the locks back (EXEC runs several commands under one set).
#[allow(clippy::too_many_arguments)]
fn run_locked<'a>(
    srv: &'a Server,
    state: &mut ClientState,
    resolved: &Resolved,
    args: &Args,
    reply: &mut Reply,
    stats: &WorkerStats,
    locked: Locked<'a>,
    key_shards: KeyShards,
    started: u64,
) -> Locked<'a> {
    let spec = resolved.spec;
    let Some(handler) = spec.handler else {
        // A container with no subcommand given: arity already rejected it.
        return locked;
    };
    let mut locked = locked;
    if spec.flags & flag::WRITE != 0 {
        // A snapshot in progress takes this command's shards first.
        crate::replication::snapshot::before_write(srv, spec, args, &mut locked);
    }
    let errors_before = reply.errors;
    let mut ctx = Ctx {
        srv,
        client: state,
        reply,
        locked,
        now: unix_ms_at(started),
        dirty: 0,
        key_shards,
    };
    handler(&mut ctx, args);
    let dirty = ctx.dirty;
    if dirty > 0 && spec.flags & flag::WRITE != 0 {
        touch_written_keys(&mut ctx, spec, args);
    }
    if dirty > 0 && srv.config.maxmemory.load(Relaxed) != 0 {
        // Keep the memory figure eviction reads exact after every write.
        ctx.locked.for_each_indexed(|_, shard| shard.refresh_mem());
    }
    let db = ctx.client.db;
    let locked = ctx.locked;
    let usec = micros_since(started);

    if dirty > 0 {
        srv.dirty.fetch_add(dirty, Relaxed);
        // The primary's own stream is relayed verbatim by the link.
        if !state.is_master
            && let Some(offset) = crate::replication::propagate(srv, db, args, &locked)
        {
            state.repl_offset = offset;
        }
    }
    state.handle.last_cmd.store(resolved.id + 1, Relaxed);
    let cstat = &stats.cmd[resolved.id];
    bump(&cstat.calls, 1);
    bump(&cstat.usec, usec);
    let errs = reply.errors - errors_before;
    if errs > 0 {
        bump(&cstat.failed, 1);
    }
    locked
}

/// Cluster mode: routing's decision checked again with the command's
/// shards locked (`routing::confirm`); nothing to do otherwise.
fn confirm_route(
    srv: &Server,
    spec: &CommandSpec,
    args: &Args,
    queue: Option<&[OwnedArgs]>,
    here: Option<Here>,
    locked: &Locked,
) -> Result<(), String> {
    match (here, &srv.cluster) {
        (Some(h), Some(cl)) => routing::confirm(srv, cl, spec, args, queue, h, locked),
        _ => Ok(()),
    }
}

/// Marks WATCHers of the keys a write command changed (Redis's
/// signalModifiedKey), in the selected database. Commands that change
/// other databases (MOVE, COPY ... DB, FLUSH*, SWAPDB) touch those
/// themselves.
fn touch_written_keys(ctx: &mut Ctx, spec: &CommandSpec, args: &Args) {
    let db = ctx.client.db;
    for i in spec.key_positions(args.len()) {
        let key = args.get(i);
        ctx.shard(key).touch_watched(db, key);
    }
}

/// EXEC: lock the shards of every queued command and watched key at
/// once (ascending order, like any command), check WATCH, then run the
/// queue with no other client's command able to touch those shards.
fn exec(
    srv: &Server,
    state: &mut ClientState,
    exec_cmd: &Resolved,
    args: &Args,
    here: Option<Here>,
    reply: &mut Reply,
    stats: &WorkerStats,
) {
    let queue = state.multi.take().unwrap_or_default();
    if std::mem::take(&mut state.multi_error) {
        state.unwatch_all();
        reply.error("EXECABORT Transaction discarded because of previous errors.");
        bump(&stats.cmd[exec_cmd.id].calls, 1);
        bump(&stats.cmd[exec_cmd.id].failed, 1);
        return;
    }
    let mut all = false;
    let mut shards: Vec<usize> = state
        .watched
        .iter()
        .map(|(_, k, _)| srv.store.shard_of(k))
        .collect();
    let resolved: Vec<Option<&Resolved>> = queue
        .iter()
        .map(|q| {
            let args = q.args();
            match lookup(args.get(0), (args.len() > 1).then(|| args.get(1))) {
                Lookup::Found(r) => Some(r),
                _ => None,
            }
        })
        .collect();
    let mut per_command: Vec<KeyShards> = Vec::with_capacity(queue.len());
    for (q, r) in queue.iter().zip(&resolved) {
        let mut keys = KeyShards::new();
        if let Some(r) = r {
            match r.spec.lock {
                LockSpec::All => all = true,
                LockSpec::None => {}
                LockSpec::Keys => {
                    keys = key_shards(srv, r.spec, &q.args());
                    shards.extend(keys.iter().map(|(_, s)| *s));
                    keys.sort_unstable_by_key(|(a, _)| *a);
                }
            }
        }
        per_command.push(keys);
    }
    let mut locked = if all {
        Locked::all(srv)
    } else {
        shards.sort_unstable();
        shards.dedup();
        Locked::acquire(srv, &shards)
    };
    if let Err(msg) = confirm_route(srv, exec_cmd.spec, args, Some(&queue), here, &locked) {
        // Discarded with the error, as when routing refused the EXEC.
        drop(locked);
        state.unwatch_all();
        return reject(state, reply, stats, Some(exec_cmd.id), &msg);
    }
    let now = now_ms();
    let expired_watch = state
        .watched
        .iter()
        .any(|(_, _, exp)| *exp != 0 && *exp < now);
    if state.watch_dirty.load(Relaxed) || expired_watch {
        state.unwatch_all();
        reply.null_array();
        bump(&stats.cmd[exec_cmd.id].calls, 1);
        return;
    }
    state.unwatch_all();
    let started = mono_ns();
    reply.array(queue.len());
    if !state.is_master {
        crate::replication::propagate_multi();
    }
    // `per_command` holds addresses inside `queue`, which stays put.
    for ((q, r), keys) in queue.iter().zip(resolved).zip(per_command) {
        if let Some(r) = r {
            // Permissions may have changed since the command was queued.
            if state.acl_fast != crate::acl::epoch()
                && let Err(denied) = acl_check(state, r, &q.args(), "multi")
            {
                reply.error(&format!(
                    "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}",
                    match denied {
                        crate::acl::Denied::Command =>
                            "no permission to execute the command or subcommand",
                        crate::acl::Denied::Key(_) => "no permission to touch the specified keys",
                    }
                ));
                bump(&stats.commands, 1);
                continue;
            }
            locked = run_locked(
                srv,
                state,
                r,
                &q.args(),
                reply,
                stats,
                locked,
                keys,
                mono_ns(),
            );
        }
        bump(&stats.commands, 1);
    }
    if let Some(offset) = crate::replication::propagate_exec() {
        state.repl_offset = offset;
    }
    drop(locked);
    let cstat = &stats.cmd[exec_cmd.id];
    bump(&cstat.calls, 1);
    bump(&cstat.usec, micros_since(started));
    state.handle.last_cmd.store(exec_cmd.id + 1, Relaxed);
}

/// Shards of a keyed command's keys (unsorted, may repeat).
fn key_shards(srv: &Server, spec: &CommandSpec, args: &Args) -> KeyShards {
    spec.key_positions(args.len())
        .map(|i| {
            let key = args.get(i);
            (key.as_ptr() as usize, srv.store.shard_of(key))
        })
        .collect()
}

/// Sorted, deduplicated shard indices of `keys`, the order to lock in.
fn lock_order(keys: &KeyShards) -> Vec<usize> {
    let mut shards: Vec<usize> = keys.iter().map(|(_, s)| *s).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
}

fn protected_allowed(srv: &Server, state: &ClientState) -> bool {
    match srv.config.get("enable-debug-command").as_deref() {
        Some("yes") => true,
        Some("local") => state.is_local,
        _ => false,
    }
}

/// The shards the command needs, locked in ascending order.
pub fn lock_for<'a>(srv: &'a Server, resolved: &Resolved, args: &Args) -> (Locked<'a>, KeyShards) {
    match resolved.spec.lock {
        LockSpec::None => (Locked::None, KeyShards::new()),
        LockSpec::All => (Locked::all(srv), KeyShards::new()),
        LockSpec::Keys => {
            let (first, last, _) = resolved.spec.keys;
            let argc = args.len() as i32;
            if first < argc && (last == first || argc == first + 1) {
                // The common single-key case: no allocation.
                let idx = srv.store.shard_of(args.get(first as usize));
                return (Locked::One(idx, srv.store.lock(idx)), KeyShards::new());
            }
            let mut keys = key_shards(srv, resolved.spec, args);
            let locked = Locked::acquire(srv, &lock_order(&keys));
            keys.sort_unstable_by_key(|(a, _)| *a);
            (locked, keys)
        }
    }
}

/// An argument as Redis's `%.<max>s` prints it: up to the first NUL, at
/// most `max` bytes.
fn c_str_prefix(arg: &[u8], max: usize) -> &[u8] {
    let end = arg.iter().position(|&c| c == 0).unwrap_or(arg.len());
    &arg[..end.min(max)]
}

/// Redis's text: the name and the first arguments, quoted, up to 128
/// bytes of arguments (raw bytes, as Redis sends them).
fn unknown_command_message(args: &Args) -> Vec<u8> {
    let mut list = Vec::new();
    for i in 1..args.len() {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push(b'\'');
        list.extend_from_slice(c_str_prefix(args.get(i), room));
        list.extend_from_slice(b"' ");
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(c_str_prefix(args.get(0), 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend_from_slice(&list);
    msg
}
