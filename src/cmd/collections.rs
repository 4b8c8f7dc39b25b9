//! Minimal hash, set and sorted-set commands (t_hash.c, t_set.c,
//! t_zset.c): enough for those types to exist, with their RESP3 reply
//! types (maps, sets, doubles). The full APIs are future work.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::memory::alloc_size;
use crate::store::{EntryRef, ValueMut, ValueRef};
use crate::util::parse_f64;

/// Approximate bytes an element adds to a collection.
fn elem_bytes(parts: &[&[u8]]) -> usize {
    parts.iter().map(|p| alloc_size(p.len()) + 32).sum()
}

pub fn sadd(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let Some(mut e) = get_or_create!(ctx, key, Set) else {
        return;
    };
    let ValueMut::Set(set) = e.value_mut() else {
        return;
    };
    let mut bytes = 0;
    let mut added = 0;
    for m in args.iter().skip(2) {
        if set.insert(Bytes::copy_from_slice(m)) {
            added += 1;
            bytes += elem_bytes(&[m]);
        }
    }
    e.grew(bytes);

    ctx.dirty += added as u64;
    ctx.reply.int(added as i64);
}

pub fn smembers(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.set(0),
        Some(EntryRef {
            value: ValueRef::Set(s),
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
        Some(EntryRef {
            value: ValueRef::Set(s),
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
    let Some(mut e) = get_or_create!(ctx, key, Hash) else {
        return;
    };
    let ValueMut::Hash(hash) = e.value_mut() else {
        return;
    };
    let mut created = 0;
    let mut bytes = 0;
    for i in (2..args.len()).step_by(2) {
        let (f, v) = (args.get(i), args.get(i + 1));
        if hash
            .insert(Bytes::copy_from_slice(f), Bytes::copy_from_slice(v))
            .is_none()
        {
            created += 1;
            bytes += elem_bytes(&[f, v]);
        }
    }
    e.grew(bytes);

    ctx.dirty += 1;
    ctx.reply.int(created);
}

pub fn hget(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.null(),
        Some(EntryRef {
            value: ValueRef::Hash(h),
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
        Some(EntryRef {
            value: ValueRef::Hash(h),
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
    let Some(mut e) = get_or_create!(ctx, key, ZSet) else {
        return;
    };
    let ValueMut::ZSet(zset) = e.value_mut() else {
        return;
    };
    let mut added = 0;
    let mut bytes = 0;
    for (score, member) in pairs {
        if zset.insert(Bytes::copy_from_slice(member), score).is_none() {
            added += 1;
            bytes += elem_bytes(&[member]);
        }
    }
    e.grew(bytes);

    ctx.dirty += 1;
    ctx.reply.int(added);
}

pub fn zscore(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.null(),
        Some(EntryRef {
            value: ValueRef::ZSet(z),
            ..
        }) => match z.get(args.get(2)) {
            Some(s) => reply.double(*s),
            None => reply.null(),
        },
        Some(_) => ctx.wrong_type(),
    }
}
