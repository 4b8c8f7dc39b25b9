//! Keyspace commands (Redis's db.c and expire.c).

use bytes::Bytes;

use super::{Args, Ctx};
use crate::util::{eq_ic, glob_match, parse_i64};

pub fn del(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    let mut n = 0;
    for key in args.iter().skip(1) {
        if ctx.db(key).delete(key, now) {
            n += 1;
        }
    }
    ctx.dirty += n;
    ctx.reply.int(n as i64);
}

pub fn exists(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    let mut n = 0;
    for key in args.iter().skip(1) {
        if ctx.db(key).lookup_read(key, now, false).is_some() {
            n += 1;
        }
    }
    ctx.reply.int(n);
}

pub fn touch(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    let mut n = 0;
    for key in args.iter().skip(1) {
        if ctx.db(key).get_read(key, now).is_some() {
            n += 1;
        }
    }
    ctx.reply.int(n);
}

pub fn type_(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.lookup_read(key, now, false) {
        Some(e) => reply.simple(e.value.type_name()),
        None => reply.simple("none"),
    }
}

pub fn keys(ctx: &mut Ctx, args: &Args) {
    let pattern = args.get(1);
    let all = pattern == b"*";
    let now = ctx.now;
    let db = ctx.client.db;
    let mut found: Vec<Bytes> = Vec::new();
    for shard in ctx.locked.shards_mut() {
        for (k, _) in shard.dbs[db].iter(now) {
            if all || glob_match(pattern, k, false) {
                found.push(Bytes::copy_from_slice(k));
            }
        }
    }
    ctx.reply.array(found.len());
    for k in &found {
        ctx.reply.bulk(k);
    }
}

/// SCAN cursors pack the shard index in the low bits and the 54-bit hash
/// position within that shard's table (see `Db::scan`) above them.
const SHARD_BITS: u32 = 10;

pub fn scan(ctx: &mut Ctx, args: &Args) {
    let cursor_arg = args.get(1);
    let cursor: u64 = match std::str::from_utf8(cursor_arg)
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(c) if !cursor_arg.starts_with(b"+") => c,
        _ => return ctx.error("ERR invalid cursor"),
    };
    let mut count: usize = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut type_filter: Option<String> = None;
    let mut j = 2;
    while j < args.len() {
        let has_next = j + 1 < args.len();
        if eq_ic(args.get(j), "count") && has_next {
            match parse_i64(args.get(j + 1)) {
                None => return ctx.not_integer(),
                Some(n) if n < 1 => return ctx.syntax_error(),
                Some(n) => count = n as usize,
            }
        } else if eq_ic(args.get(j), "match") && has_next {
            let p = args.get(j + 1);
            pattern = if p == b"*" { None } else { Some(p) };
        } else if eq_ic(args.get(j), "type") && has_next {
            type_filter = Some(args.str(j + 1).to_ascii_lowercase());
        } else {
            return ctx.syntax_error();
        }
        j += 2;
    }
    let nshards = ctx.srv.store.len() as u64;
    let mut shard = cursor & ((1 << SHARD_BITS) - 1);
    let mut pos = cursor >> SHARD_BITS;
    let now = ctx.now;
    let db = ctx.client.db;
    let mut found: Vec<Bytes> = Vec::new();
    let mut budget = count;
    let mut shards: Vec<_> = ctx.locked.shards_mut().collect();
    let next_cursor = loop {
        if shard >= nshards {
            break 0;
        }
        let table = &mut shards[shard as usize].dbs[db];
        let walked;
        (pos, walked) = table.scan(pos, budget, now, |e| {
            if pattern.is_some_and(|p| !glob_match(p, e.key, false)) {
                return;
            }
            if type_filter
                .as_deref()
                .is_some_and(|t| t != e.value.type_name())
            {
                return;
            }
            found.push(Bytes::copy_from_slice(e.key));
        });
        budget = budget.saturating_sub(walked);
        if pos == 0 {
            shard += 1;
            if shard >= nshards {
                break 0;
            }
        }
        if budget == 0 {
            break (pos << SHARD_BITS) | shard;
        }
    };
    ctx.reply.array(2);
    ctx.reply.bulk_str(&next_cursor.to_string());
    ctx.reply.array(found.len());
    for k in &found {
        ctx.reply.bulk(k);
    }
}

pub fn randomkey(ctx: &mut Ctx, _args: &Args) {
    let now = ctx.now;
    let db = ctx.client.db;
    let mut shards: Vec<_> = ctx.locked.shards_mut().collect();
    for _ in 0..100 {
        let total: usize = shards.iter().map(|s| s.dbs[db].len()).sum();
        if total == 0 {
            break;
        }
        // Pick a shard in proportion to its size, so every key is equally
        // likely.
        let mut r = shards[0].rng.below(total);
        let Some(idx) = shards.iter().position(|s| {
            let len = s.dbs[db].len();
            if r < len {
                true
            } else {
                r -= len;
                false
            }
        }) else {
            break;
        };
        let shard = &mut *shards[idx];
        if let Some(k) = shard.dbs[db].random_key(&mut shard.rng, now) {
            return ctx.reply.bulk(&k);
        }
    }
    ctx.reply.null();
}

fn rename_generic(ctx: &mut Ctx, args: &Args, nx: bool) {
    let (src, dst) = (args.get(1), args.get(2));
    let now = ctx.now;
    if !ctx.db(src).contains(src, now) {
        return ctx.error("ERR no such key");
    }
    if src == dst {
        return if nx { ctx.reply.int(0) } else { ctx.reply.ok() };
    }
    if ctx.db(dst).contains(dst, now) {
        if nx {
            return ctx.reply.int(0);
        }
        ctx.db(dst).remove(dst);
    }
    if let Some(entry) = ctx.db(src).remove(src) {
        ctx.db(dst).insert(dst, entry);
    }
    ctx.dirty += 1;
    if nx { ctx.reply.int(1) } else { ctx.reply.ok() }
}

pub fn rename(ctx: &mut Ctx, args: &Args) {
    rename_generic(ctx, args, false);
}

pub fn renamenx(ctx: &mut Ctx, args: &Args) {
    rename_generic(ctx, args, true);
}

/// Parses a database index argument as Redis's getIntFromObjectOrReply
/// followed by a range check.
fn parse_db_index(ctx: &mut Ctx, arg: &[u8], not_int_msg: &str) -> Option<usize> {
    let Some(n) = parse_i64(arg).filter(|n| *n >= i32::MIN as i64 && *n <= i32::MAX as i64) else {
        ctx.error(not_int_msg);
        return None;
    };
    if n < 0 || n as usize >= ctx.srv.databases() {
        ctx.error("ERR DB index is out of range");
        return None;
    }
    Some(n as usize)
}

const NOT_INT: &str = "ERR value is not an integer or out of range";

pub fn copy(ctx: &mut Ctx, args: &Args) {
    let (src, dst) = (args.get(1), args.get(2));
    let mut replace = false;
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut j = 3;
    while j < args.len() {
        if eq_ic(args.get(j), "replace") {
            replace = true;
        } else if eq_ic(args.get(j), "db") && j + 1 < args.len() {
            match parse_db_index(ctx, args.get(j + 1), NOT_INT) {
                Some(d) => dst_db = d,
                None => return,
            }
            j += 1;
        } else {
            return ctx.syntax_error();
        }
        j += 1;
    }
    if src_db == dst_db && src == dst {
        return ctx.error("ERR source and destination objects are the same");
    }
    let now = ctx.now;
    let Some(entry) = ctx.db(src).get_read(src, now).map(|e| e.deep_copy()) else {
        return ctx.reply.int(0);
    };
    let target = ctx.db_at(dst, dst_db);
    if target.contains(dst, now) {
        if !replace {
            return ctx.reply.int(0);
        }
        target.remove(dst);
    }
    target.insert(dst, entry);
    ctx.shard(dst).touch_watched(dst_db, dst);
    ctx.dirty += 1;
    ctx.reply.int(1);
}

pub fn move_(ctx: &mut Ctx, args: &Args) {
    if ctx.srv.cluster.is_some() {
        return ctx.error("ERR MOVE is not allowed in cluster mode");
    }
    let key = args.get(1);
    let Some(dst_db) = parse_db_index(ctx, args.get(2), NOT_INT) else {
        return;
    };
    let src_db = ctx.client.db;
    if dst_db == src_db {
        return ctx.error("ERR source and destination objects are the same");
    }
    let now = ctx.now;
    if !ctx.db(key).contains(key, now) || ctx.db_at(key, dst_db).contains(key, now) {
        return ctx.reply.int(0);
    }
    if let Some(entry) = ctx.db(key).remove(key) {
        ctx.db_at(key, dst_db).insert(key, entry);
    }
    ctx.shard(key).touch_watched(dst_db, key);
    ctx.dirty += 1;
    ctx.reply.int(1);
}

const EXPIRE_NX: u8 = 1;
const EXPIRE_XX: u8 = 2;
const EXPIRE_GT: u8 = 4;
const EXPIRE_LT: u8 = 8;

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT as Redis's expireGenericCommand.
fn expire_generic(ctx: &mut Ctx, args: &Args, base_ms: u64, seconds: bool, name: &str) {
    let mut flags = 0u8;
    for opt in args.iter().skip(3) {
        flags |= if eq_ic(opt, "nx") {
            EXPIRE_NX
        } else if eq_ic(opt, "xx") {
            EXPIRE_XX
        } else if eq_ic(opt, "gt") {
            EXPIRE_GT
        } else if eq_ic(opt, "lt") {
            EXPIRE_LT
        } else {
            return ctx.error(&format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ));
        };
    }
    if flags & EXPIRE_NX != 0 && flags & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT) != 0 {
        return ctx.error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if flags & EXPIRE_GT != 0 && flags & EXPIRE_LT != 0 {
        return ctx.error("ERR GT and LT options at the same time are not compatible");
    }
    let Some(mut when) = parse_i64(args.get(2)) else {
        return ctx.not_integer();
    };
    let invalid = format!("ERR invalid expire time in '{name}' command");
    if seconds {
        match when.checked_mul(1000) {
            Some(w) => when = w,
            None => return ctx.error(&invalid),
        }
    }
    let Some(when) = when.checked_add(base_ms as i64) else {
        return ctx.error(&invalid);
    };
    let key = args.get(1);
    let now = ctx.now;
    let Some(current) = ctx.db(key).get(key, now).map(|e| e.expire_at) else {
        return ctx.reply.int(0);
    };
    let current: i64 = if current == 0 { -1 } else { current as i64 };
    if (flags & EXPIRE_NX != 0 && current != -1)
        || (flags & EXPIRE_XX != 0 && current == -1)
        || (flags & EXPIRE_GT != 0 && (when <= current || current == -1))
        || (flags & EXPIRE_LT != 0 && current != -1 && when >= current)
    {
        return ctx.reply.int(0);
    }
    let db = ctx.db(key);
    if when <= now as i64 {
        db.remove(key);
    } else {
        db.set_expire(key, when as u64);
    }
    ctx.dirty += 1;
    ctx.reply.int(1);
}

pub fn expire(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    expire_generic(ctx, args, now, true, "expire");
}

pub fn pexpire(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now;
    expire_generic(ctx, args, now, false, "pexpire");
}

pub fn expireat(ctx: &mut Ctx, args: &Args) {
    expire_generic(ctx, args, 0, true, "expireat");
}

pub fn pexpireat(ctx: &mut Ctx, args: &Args) {
    expire_generic(ctx, args, 0, false, "pexpireat");
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME as Redis's ttlGenericCommand.
fn ttl_generic(ctx: &mut Ctx, args: &Args, ms: bool, absolute: bool) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    let Some(e) = db.lookup_read(key, now, false) else {
        return reply.int(-2);
    };
    if e.expire_at == 0 {
        return reply.int(-1);
    }
    let t = if absolute {
        e.expire_at as i64
    } else {
        (e.expire_at as i64 - now as i64).max(0)
    };
    reply.int(if ms { t } else { (t + 500) / 1000 });
}

pub fn ttl(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, false, false);
}

pub fn pttl(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, true, false);
}

pub fn expiretime(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, false, true);
}

pub fn pexpiretime(ctx: &mut Ctx, args: &Args) {
    ttl_generic(ctx, args, true, true);
}

pub fn persist(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let db = ctx.db(key);
    let had_ttl = db.get(key, now).is_some_and(|e| e.expire_at != 0);
    if had_ttl {
        db.set_expire(key, 0);
        ctx.dirty += 1;
    }
    ctx.reply.int(had_ttl as i64);
}

pub fn dbsize(ctx: &mut Ctx, _args: &Args) {
    let db = ctx.client.db;
    let n: usize = ctx.locked.shards_mut().map(|s| s.dbs[db].len()).sum();
    ctx.reply.int(n as i64);
}

/// FLUSHDB/FLUSHALL accept one optional SYNC or ASYNC argument. Both run
/// synchronously here: dropping the tables is the whole cost.
fn flush_args_ok(ctx: &mut Ctx, args: &Args) -> bool {
    match args.len() {
        1 => true,
        2 if eq_ic(args.get(1), "sync") || eq_ic(args.get(1), "async") => true,
        _ => {
            ctx.syntax_error();
            false
        }
    }
}

pub fn flushdb(ctx: &mut Ctx, args: &Args) {
    if !flush_args_ok(ctx, args) {
        return;
    }
    let db = ctx.client.db;
    let mut removed = 0;
    for shard in ctx.locked.shards_mut() {
        shard.touch_watched_in_db(db, |dbs, k| dbs[db].has_key(k));
        removed += shard.dbs[db].len();
        shard.dbs[db].clear();
    }
    ctx.dirty += removed.max(1) as u64;
    ctx.reply.ok();
}

pub fn flushall(ctx: &mut Ctx, args: &Args) {
    if !flush_args_ok(ctx, args) {
        return;
    }
    let mut removed = 0;
    for shard in ctx.locked.shards_mut() {
        shard.touch_watched_existing();
        for db in shard.dbs.iter_mut() {
            removed += db.len();
            db.clear();
        }
    }
    ctx.dirty += removed.max(1) as u64;
    ctx.reply.ok();
}

pub fn swapdb(ctx: &mut Ctx, args: &Args) {
    if ctx.srv.cluster.is_some() {
        return ctx.error("ERR SWAPDB is not allowed in cluster mode");
    }
    let Some(a) = parse_db_index(ctx, args.get(1), "ERR invalid first DB index") else {
        return;
    };
    let Some(b) = parse_db_index(ctx, args.get(2), "ERR invalid second DB index") else {
        return;
    };
    if a != b {
        for shard in ctx.locked.shards_mut() {
            // Watchers of a key present in either database see a change.
            let either =
                |dbs: &[crate::store::Db], k: &[u8]| dbs[a].has_key(k) || dbs[b].has_key(k);
            shard.touch_watched_in_db(a, either);
            shard.touch_watched_in_db(b, either);
            shard.swap_dbs(a, b);
        }
    }
    ctx.dirty += 1;
    ctx.reply.ok();
}
