//! Transactions (Redis's multi.c): MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Queuing happens in the dispatcher; EXEC runs there too (it must lock
//! the union of the queued commands' shards before running any of them,
//! see `dispatch::exec`). These handlers cover the rest.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::{Args, Ctx};

pub fn multi(ctx: &mut Ctx, _args: &Args) {
    if ctx.client.multi.is_some() {
        return ctx.error("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(Vec::new());
    ctx.reply.ok();
}

pub fn discard(ctx: &mut Ctx, _args: &Args) {
    if ctx.client.multi.is_none() {
        return ctx.error("ERR DISCARD without MULTI");
    }
    ctx.client.discard_multi();
    ctx.reply.ok();
}

/// Only reached outside MULTI (the dispatcher runs EXEC itself).
pub fn exec(ctx: &mut Ctx, _args: &Args) {
    ctx.error("ERR EXEC without MULTI");
}

pub fn watch(ctx: &mut Ctx, args: &Args) {
    if ctx.client.multi.is_some() {
        return ctx.error("ERR WATCH inside MULTI is not allowed");
    }
    // Already dirty: nothing more can change the outcome.
    if ctx.client.watch_dirty.load(Relaxed) {
        return ctx.reply.ok();
    }
    let db = ctx.client.db;
    let now = ctx.now;
    for key in args.iter().skip(1) {
        if ctx
            .client
            .watched
            .iter()
            .any(|(d, k, _)| *d == db && k == key)
        {
            continue;
        }
        let flag = ctx.client.watch_dirty.clone();
        let shard = ctx.shard(key);
        shard.watch(db, key, &flag);
        // A key that expires between WATCH and EXEC counts as modified.
        let expire_at = shard.dbs[db]
            .peek(key)
            .filter(|e| !e.is_expired(now))
            .map(|e| e.expire_at)
            .unwrap_or(0);
        ctx.client
            .watched
            .push((db, Bytes::copy_from_slice(key), expire_at));
    }
    ctx.reply.ok();
}

pub fn unwatch(ctx: &mut Ctx, _args: &Args) {
    ctx.client.unwatch_all();
    ctx.reply.ok();
}
