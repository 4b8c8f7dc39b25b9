//! Active expiry and the rest of the periodic work (Redis's serverCron).
//!
//! Lazy expiry happens on every key access (`store::Db::get`). This cycle
//! finds expired keys nobody touches: at `hz` times per second it samples
//! keys that have a TTL, 20 at a time per database, deletes the expired
//! ones, and repeats while more than a quarter of a sample was expired,
//! within a time budget of 25% of the cycle period (Redis's
//! ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC). A shard's lock is held for at most
//! one short slice at a time, so workers touching that shard wait little.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::server::Server;
use crate::util::now_ms;

const KEYS_PER_LOOP: usize = 20;
const ACCEPTABLE_STALE_PERCENT: usize = 10;
/// Slots of a table resize each database moves every 100 ms, writes or
/// not, so that a table without writes does not keep two arrays (a
/// fraction of a millisecond under the shard's lock).
const MOVE_SLOTS_PER_CRON: usize = 8192;
/// Longest a cycle holds one shard's lock in one go.
const SLICE: Duration = Duration::from_micros(500);

pub async fn cron(srv: Arc<Server>) {
    let mut last_rate_sample = Instant::now();
    loop {
        let hz = srv.config.hz.load(Relaxed).max(1);
        let period = Duration::from_micros(1_000_000 / hz as u64);
        tokio::time::sleep(period).await;
        // Replicas never expire keys themselves: the primary sends DELs.
        if srv.active_expire_enabled.load(Relaxed) && !crate::store::replica_mode() {
            let budget = period / 4;
            active_expire_cycle(&srv, budget);
        }
        if last_rate_sample.elapsed() >= Duration::from_millis(100) {
            last_rate_sample = Instant::now();
            sample_rates(&srv);
            srv.measure_memory();
            srv.migrate_sockets.close_idle();
            for idx in 0..srv.store.len() {
                let mut shard = srv.store.lock(idx);
                shard.prune_watched();
                for db in shard.dbs.iter_mut() {
                    db.continue_moves(MOVE_SLOTS_PER_CRON);
                }
            }
        }
        // Background eviction, for memory that grew without a write
        // command to trigger it (or a maxmemory lowered meanwhile).
        crate::eviction::evict_until_within(&srv, Duration::from_millis(1));
    }
}

fn sample_rates(srv: &Server) {
    let now = now_ms();
    let ops = srv.sum_workers(|w| w.commands.load(Relaxed));
    let input = srv.sum_workers(|w| w.net_input.load(Relaxed));
    let output = srv.sum_workers(|w| w.net_output.load(Relaxed));
    let mut rates = srv.rates.lock().unwrap_or_else(|e| e.into_inner());
    rates.ops.sample(ops, now);
    rates.input.sample(input, now);
    rates.output.sample(output, now);
}

/// One active expiry cycle over all shards and databases.
pub fn active_expire_cycle(srv: &Server, budget: Duration) {
    let start = Instant::now();
    let mut sampled_total = 0usize;
    let mut expired_total = 0usize;
    let mut pending: Vec<usize> = (0..srv.store.len()).collect();
    while !pending.is_empty() && start.elapsed() < budget {
        pending.retain(|&idx| {
            let mut shard = srv.store.lock(idx);
            let slice_start = Instant::now();
            let now = now_ms();
            let ndbs = shard.dbs.len();
            let mut busy = false;
            for _ in 0..ndbs {
                let dbi = shard.expire_cursor_db % ndbs;
                let shard = &mut *shard;
                let db = &mut shard.dbs[dbi];
                loop {
                    let (sampled, expired) = db.expire_sample(&mut shard.rng, KEYS_PER_LOOP, now);
                    sampled_total += sampled;
                    expired_total += expired;
                    if sampled == 0 || expired * 100 <= sampled * ACCEPTABLE_STALE_PERCENT {
                        break;
                    }
                    if slice_start.elapsed() >= SLICE {
                        // Still many stale keys here: come back to this db.
                        busy = true;
                        break;
                    }
                }
                if busy {
                    break;
                }
                shard.expire_cursor_db = (dbi + 1) % ndbs;
            }
            busy
        });
    }
    if let Some(perc) = (expired_total * 100).checked_div(sampled_total) {
        srv.expired_stale_perc.store(perc as u64, Relaxed);
    }
    srv.expire_cycle_ms
        .fetch_add(start.elapsed().as_millis() as u64, Relaxed);
}
