//! A minimal list family (t_list.c): enough for non-string keys to exist,
//! so type checks (WRONGTYPE, TYPE, SCAN TYPE) are exercised. The full
//! list API is future work.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::memory::alloc_size;
use crate::store::{EntryRef, ValueMut, ValueRef};
use crate::util::parse_i64;

fn push(ctx: &mut Ctx, args: &Args, left: bool) {
    let key = args.get(1);
    let Some(mut e) = get_or_create!(ctx, key, List) else {
        return;
    };
    let ValueMut::List(list) = e.value_mut() else {
        return;
    };
    let mut added = 0;
    for v in args.iter().skip(2) {
        added += alloc_size(v.len()) + std::mem::size_of::<Bytes>();
        let v = Bytes::copy_from_slice(v);
        if left {
            list.push_front(v)
        } else {
            list.push_back(v)
        }
    }
    let len = list.len();
    e.grew(added);

    ctx.reply.int(len as i64);
    ctx.dirty += (args.len() - 2) as u64;
}

pub fn rpush(ctx: &mut Ctx, args: &Args) {
    push(ctx, args, false);
}

pub fn lpush(ctx: &mut Ctx, args: &Args) {
    push(ctx, args, true);
}

pub fn llen(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    match db.get_read(key, now) {
        None => reply.int(0),
        Some(EntryRef {
            value: ValueRef::List(l),
            ..
        }) => reply.int(l.len() as i64),
        Some(_) => ctx.wrong_type(),
    }
}

pub fn lrange(ctx: &mut Ctx, args: &Args) {
    let (Some(mut start), Some(mut end)) = (parse_i64(args.get(2)), parse_i64(args.get(3))) else {
        return ctx.not_integer();
    };
    let key = args.get(1);
    let now = ctx.now;
    let (db, reply) = ctx.db_reply(key);
    let list = match db.get_read(key, now) {
        None => return reply.array(0),
        Some(EntryRef {
            value: ValueRef::List(l),
            ..
        }) => l,
        Some(_) => return ctx.wrong_type(),
    };
    let len = list.len() as i64;
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    if start > end || start >= len {
        return reply.array(0);
    }
    end = end.min(len - 1);
    reply.array((end - start + 1) as usize);
    for v in list.range(start as usize..=end as usize) {
        reply.bulk(v);
    }
}
