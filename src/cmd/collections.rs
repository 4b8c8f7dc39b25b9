//! Minimal hash, set and sorted-set commands (t_hash.c, t_set.c,
//! t_zset.c): enough for those types to exist, with their RESP3 reply
//! types (maps, sets, doubles). The full APIs are future work.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::store::{Entry, Value};
use crate::util::parse_f64;

/// Gets the value at `key` for modification, creating it with `make` if
/// absent; None (after replying WRONGTYPE) if it has another type.
macro_rules! get_or_create {
    ($ctx:expr, $key:expr, $variant:ident, $make:expr) => {{
        let now = $ctx.now;
        let db = $ctx.db($key);
        if db.get($key, now).is_none() {
            db.insert($key, Entry::new(Value::$variant(Box::new($make)), 0, now));
        }
        match $ctx.db($key).get($key, now) {
            Some(Entry {
                value: Value::$variant(v),
                ..
            }) => Some(v),
            _ => {
                $ctx.wrong_type();
                None
            }
        }
    }};
}

pub fn sadd(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let Some(set) = get_or_create!(ctx, key, Set, Default::default()) else {
        return;
    };
    let added = args
        .iter()
        .skip(2)
        .filter(|m| set.insert(Bytes::copy_from_slice(m)))
        .count();
    ctx.dirty += added as u64;
    ctx.reply.int(added as i64);
}

pub fn smembers(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.set(0),
        Some(Entry {
            value: Value::Set(s),
            ..
        }) => {
            reply.set(s.len());
            for m in s.iter() {
                reply.bulk(m);
            }
        }
        Some(_) => ctx.wrong_type(),
    }
}

pub fn scard(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.int(0),
        Some(Entry {
            value: Value::Set(s),
            ..
        }) => reply.int(s.len() as i64),
        Some(_) => ctx.wrong_type(),
    }
}

pub fn hset(ctx: &mut Ctx, args: &Args) {
    if !args.len().is_multiple_of(2) {
        return ctx.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            args.str(0).to_ascii_lowercase()
        ));
    }
    let key = args.get(1);
    let Some(hash) = get_or_create!(ctx, key, Hash, Default::default()) else {
        return;
    };
    let mut created = 0;
    for i in (2..args.len()).step_by(2) {
        if hash
            .insert(
                Bytes::copy_from_slice(args.get(i)),
                Bytes::copy_from_slice(args.get(i + 1)),
            )
            .is_none()
        {
            created += 1;
        }
    }
    ctx.dirty += 1;
    ctx.reply.int(created);
}

pub fn hget(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.null(),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => match h.get(args.get(2)) {
            Some(v) => reply.bulk(v),
            None => reply.null(),
        },
        Some(_) => ctx.wrong_type(),
    }
}

pub fn hgetall(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.map(0),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => {
            reply.map(h.len());
            for (f, v) in h.iter() {
                reply.bulk(f);
                reply.bulk(v);
            }
        }
        Some(_) => ctx.wrong_type(),
    }
}

pub fn zadd(ctx: &mut Ctx, args: &Args) {
    if !args.len().is_multiple_of(2) {
        return ctx.syntax_error();
    }
    let mut pairs = Vec::with_capacity((args.len() - 2) / 2);
    for i in (2..args.len()).step_by(2) {
        match parse_f64(args.get(i)) {
            Some(score) => pairs.push((score, args.get(i + 1))),
            None => return ctx.error("ERR value is not a valid float"),
        }
    }
    let key = args.get(1);
    let Some(zset) = get_or_create!(ctx, key, ZSet, Default::default()) else {
        return;
    };
    let mut added = 0;
    for (score, member) in pairs {
        if zset.insert(Bytes::copy_from_slice(member), score).is_none() {
            added += 1;
        }
    }
    ctx.dirty += 1;
    ctx.reply.int(added);
}

pub fn zscore(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.null(),
        Some(Entry {
            value: Value::ZSet(z),
            ..
        }) => match z.get(args.get(2)) {
            Some(s) => reply.double(*s),
            None => reply.null(),
        },
        Some(_) => ctx.wrong_type(),
    }
}
