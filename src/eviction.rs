//! Eviction under `maxmemory` (Redis's evict.c) and the per-access
//! bookkeeping that eviction reads (LRU clock, LFU counter).
//!
//! Before a command that may grow memory (`denyoom`) runs, the dispatcher
//! calls `perform_evictions`. While the memory in use exceeds maxmemory it
//! evicts one key at a time:
//! - random policies pick a random key (of a random non-empty shard);
//! - LRU, LFU and TTL policies sample `maxmemory-samples` keys of one
//!   shard's non-empty databases (the shards take turns) into a pool of
//!   the 16 best candidates kept across calls (Redis's EvictionPoolLRU),
//!   then evict the best one still present. Each eviction thus samples as
//!   many keys as Redis's, however many shards there are, while the pool
//!   compares the candidates of all shards: the coldest keys anywhere pay
//!   for the memory, not the shard that happened to take the write. A
//!   sample is a run of adjacent table slots whose entries are fetched
//!   together (a few overlapping cache misses, not one per key); the pool
//!   remembers an entry by key hash and address, copying no key. Each
//!   thread that evicts keeps its own pool: with one shared pool, workers
//!   either queued on its lock (a third of server time in futex
//!   wake-ups) or, skipping it, wrote past maxmemory while a preempted
//!   holder evicted for them.
//!
//! Eviction never holds a lock together with the command's own locks
//! (it runs before the command locks). It waits for one shard lock at a
//! time; a second shard is only ever tried (`Store::try_lock`), never
//! waited for, so holding two cannot deadlock.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::server::Server;
use crate::store::Shard;
use crate::store::{Db, EntryRef, SampleId, idle_ms, lru_clock};
use std::sync::MutexGuard;

/// New keys start with this LFU counter so they are not evicted before
/// they had a chance to be read (Redis's LFU_INIT_VAL).
pub const LFU_INIT_VAL: u8 = 5;
const POOL_SIZE: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    NoEviction = 0,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
    /// S3-FIFO (Yang et al., SOSP 2023), see `s3fifo_evict_one`.
    AllKeysS3Fifo,
}

impl Policy {
    pub fn from_name(name: &str) -> Option<Policy> {
        Some(match name {
            "noeviction" => Policy::NoEviction,
            "allkeys-lru" => Policy::AllKeysLru,
            "volatile-lru" => Policy::VolatileLru,
            "allkeys-lfu" => Policy::AllKeysLfu,
            "volatile-lfu" => Policy::VolatileLfu,
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            "allkeys-s3fifo" => Policy::AllKeysS3Fifo,
            _ => return None,
        })
    }

    fn from_u8(v: u8) -> Policy {
        match v {
            1 => Policy::AllKeysLru,
            2 => Policy::VolatileLru,
            3 => Policy::AllKeysLfu,
            4 => Policy::VolatileLfu,
            5 => Policy::AllKeysRandom,
            6 => Policy::VolatileRandom,
            7 => Policy::VolatileTtl,
            8 => Policy::AllKeysS3Fifo,
            _ => Policy::NoEviction,
        }
    }

    /// Only keys with a TTL may be evicted.
    pub fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    pub fn lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }
}

// Read on every key access and every write; set by CONFIG.
static POLICY: AtomicU8 = AtomicU8::new(0);
static MAXMEMORY: AtomicUsize = AtomicUsize::new(0);
/// Dataset bytes across all shards (each shard adds its changes).
static DATASET: AtomicUsize = AtomicUsize::new(0);
/// Bytes the process held before any data or client (measured once).
static BASELINE: AtomicUsize = AtomicUsize::new(0);
/// Capacity of every client's read and write buffers.
static CLIENT_BUFFERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes this thread's evictions freed that DATASET does not count
    /// yet (see `dataset_freed`); 0 outside of a command or a cron pass.
    static FREED: Cell<usize> = const { Cell::new(0) };
}

pub fn set_maxmemory(v: usize) {
    MAXMEMORY.store(v, Relaxed);
}

/// A shard's dataset size changed from `old` to `new` bytes. What this
/// thread's evictions freed meanwhile goes in with it: one update of the
/// counter all threads share.
pub fn dataset_changed(old: usize, new: usize) {
    let old = old + FREED.replace(0);
    if new > old {
        DATASET.fetch_add(new - old, Relaxed);
    } else if old > new {
        DATASET.fetch_sub(old - new, Relaxed);
    }
}

/// An eviction freed `bytes` of a shard's dataset. This thread counts
/// them at once (`used_memory` subtracts them here); DATASET gets them
/// with the command's own change, or from `flush_freed` when the command
/// ends: a SET that evicts updates the shared counter once, not twice.
/// Meanwhile other threads see up to this command's evictions as still
/// used, so they may evict a little more, never less.
pub fn dataset_freed(bytes: usize) {
    FREED.set(FREED.get() + bytes);
}

/// Adds what this thread's evictions freed to DATASET (at the end of
/// every command and of every eviction pass outside commands).
#[inline]
pub fn flush_freed() {
    let freed = FREED.replace(0);
    if freed != 0 {
        DATASET.fetch_sub(freed, Relaxed);
    }
}

pub fn dataset_memory() -> usize {
    DATASET.load(Relaxed).saturating_sub(FREED.get())
}

pub fn set_baseline(v: usize) {
    BASELINE.store(v, Relaxed);
}

/// A client's buffers changed capacity from `old` to `new` bytes.
pub fn client_buffers_changed(old: usize, new: usize) {
    if new >= old {
        CLIENT_BUFFERS.fetch_add(new - old, Relaxed);
    } else {
        CLIENT_BUFFERS.fetch_sub(old - new, Relaxed);
    }
}

pub fn client_buffers() -> usize {
    CLIENT_BUFFERS.load(Relaxed)
}

/// `used_memory`: what the process held at startup, plus the dataset
/// (exact after every write), plus client buffers. Like Redis's own
/// counter it moves only with real allocations, not with allocator
/// caches; the allocator's figure is reported beside it in INFO.
pub fn used_memory() -> usize {
    BASELINE.load(Relaxed) + dataset_memory() + CLIENT_BUFFERS.load(Relaxed)
}

/// Whether memory may grow by `extra` bytes without passing maxmemory
/// (always, without a limit or when the policy never evicts).
pub fn growth_allowed(extra: usize) -> bool {
    let max = MAXMEMORY.load(Relaxed);
    max == 0 || policy() == Policy::NoEviction || used_memory() + extra <= max
}

/// The key of `db` the policy would evict, from a sample of it (for an
/// eviction that must stay within the shard already locked).
pub fn local_victim(db: &mut Db, now_ms: u64) -> Option<Bytes> {
    let policy = policy();
    if policy == Policy::AllKeysS3Fifo {
        let mut rng = crate::store::Rng::new(random_u64());
        return db.s3fifo_victim(&mut rng, 5, now_ms, S3_MAX_ROUNDS);
    }
    let volatile = policy.volatile();
    let mut rng = crate::store::Rng::new(random_u64());
    let mut best: Option<(u64, &[u8])> = None;
    for _ in 0..5 {
        let e = db.sample(&mut rng, volatile)?;
        let s = match policy {
            Policy::AllKeysRandom | Policy::VolatileRandom => 0,
            p => score(p, &e, now_ms),
        };
        if best.is_none_or(|(b, _)| s > b) {
            best = Some((s, e.key));
        }
    }
    best.map(|(_, k)| Bytes::copy_from_slice(k))
}

static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);
static TENACITY: AtomicU32 = AtomicU32::new(10);

pub fn set_tenacity(v: u32) {
    TENACITY.store(v, Relaxed);
}

/// Longest one call keeps evicting before letting the command run; the
/// cron and later commands continue. Redis's evictionTimeLimitUs: 500 µs
/// at the default tenacity 10, unlimited at 100.
fn time_limit() -> Duration {
    let t = TENACITY.load(Relaxed);
    match t {
        0..=10 => Duration::from_micros(50 * t as u64),
        11..=99 => Duration::from_micros((500.0 * 1.15f64.powi(t as i32 - 10)) as u64),
        _ => Duration::MAX,
    }
}

pub fn policy() -> Policy {
    Policy::from_u8(POLICY.load(Relaxed))
}

pub fn set_policy(p: Policy) {
    POLICY.store(p as u8, Relaxed);
}

pub fn set_lfu_log_factor(v: u32) {
    LFU_LOG_FACTOR.store(v, Relaxed);
}

pub fn set_lfu_decay_time(v: u32) {
    LFU_DECAY_TIME.store(v, Relaxed);
}

/// A key was read or written: refresh what the policy ranks by (the
/// entry's LRU clock `access` and counter `freq`).
#[inline]
pub fn on_access(access: &mut u32, freq: &mut u8, now_ms: u64) {
    match policy() {
        Policy::AllKeysLfu | Policy::VolatileLfu => {
            *freq = lfu_log_incr(lfu_decayed_counter(*freq, *access, now_ms));
            *access = lru_clock(now_ms);
        }
        // FIFO queues: a hit only counts (two bits, up to 3); `access`
        // keeps the time the key entered its queue.
        Policy::AllKeysS3Fifo => *freq = (*freq & S3_MAIN) | ((*freq & 3) + 1).min(3),
        _ => *access = lru_clock(now_ms),
    }
}

/// S3-FIFO: set in `Entry::freq` for keys in the main queue.
pub const S3_MAIN: u8 = 0x80;

/// Whether policies that keep per-key counters across overwrites (LFU,
/// S3-FIFO) are active: an overwrite is then an access, not a new key.
pub fn keeps_history() -> bool {
    matches!(
        policy(),
        Policy::AllKeysLfu | Policy::VolatileLfu | Policy::AllKeysS3Fifo
    )
}

/// The LFU counter after decay: one step down per `lfu-decay-time`
/// minutes since the key was last accessed (Redis's LFUDecrAndReturn).
pub fn lfu_decayed(e: &EntryRef, now_ms: u64) -> u8 {
    lfu_decayed_counter(e.freq, e.access, now_ms)
}

fn lfu_decayed_counter(freq: u8, access: u32, now_ms: u64) -> u8 {
    let decay = LFU_DECAY_TIME.load(Relaxed) as u64;
    if decay == 0 {
        return freq;
    }
    let periods = idle_ms(access, now_ms) / 60_000 / decay;
    freq.saturating_sub(periods.min(255) as u8)
}

/// Redis's LFULogIncr: increment with probability 1/((c-5)*factor+1), so
/// the counter grows logarithmically with accesses.
fn lfu_log_incr(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * LFU_LOG_FACTOR.load(Relaxed) as f64 + 1.0);
    if random_unit() < p {
        counter + 1
    } else {
        counter
    }
}

/// A fresh 64-bit random value (seeds the samplers' generators).
fn random_u64() -> u64 {
    (random_unit() * (1u64 << 53) as f64) as u64 ^ 0x9E37_79B9_7F4A_7C15
}

fn random_unit() -> f64 {
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    thread_local! {
        static STATE: Cell<u64> =
            Cell::new((SEED.fetch_add(0x9E37_79B9, Relaxed) ^ crate::util::now_us()) | 1);
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// How much a key deserves eviction under `policy`: higher goes first.
fn score(policy: Policy, e: &EntryRef, now_ms: u64) -> u64 {
    rank(
        policy,
        e.access,
        e.freq,
        || e.expire_at,
        e.addr() as u64,
        now_ms,
    )
}

/// `score` from an entry's fields (`expire_at` is read only for
/// volatile-ttl; `addr` is the entry's address). Under LFU, keys with
/// the same counter, which are common (a flood of keys written once all
/// have 5), are ordered by a hash of their address, i.e. at random, as
/// the order they happen to be sampled in orders them in Redis. Left to
/// the pool's order, the tie went to the first key of a sampled run, a
/// key right after an empty slot, whose deletion shifts its whole
/// cluster back; ordered by idle time instead, the tie kept the keys of
/// a scan longer than older keys read as rarely (hit ratio 55.28% for
/// 55.84% on the zipf+scan trace).
fn rank(
    policy: Policy,
    access: u32,
    freq: u8,
    expire_at: impl FnOnce() -> u64,
    addr: u64,
    now_ms: u64,
) -> u64 {
    match policy {
        Policy::AllKeysLfu | Policy::VolatileLfu => {
            let counter = lfu_decayed_counter(freq, access, now_ms) as u64;
            ((255 - counter) << 32) | (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32)
        }
        Policy::VolatileTtl => u64::MAX - expire_at(),
        _ => idle_ms(access, now_ms),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Candidate {
    score: u64,
    /// The entry, found again by key hash and address: the pool copies
    /// no key (no allocation, no comparison of key bytes).
    id: SampleId,
    shard: u32,
    db: u32,
}

/// The best eviction candidates seen so far, ascending by score: a fixed
/// array, so keeping it up to date allocates nothing.
#[derive(Default)]
pub struct Pool {
    cands: [Candidate; POOL_SIZE],
    len: usize,
}

impl Pool {
    /// Whether a candidate with this score would enter the pool (checked
    /// before its key is hashed).
    fn wants(&self, score: u64) -> bool {
        self.len < POOL_SIZE || score > self.cands[0].score
    }

    fn offer(&mut self, c: Candidate) {
        if !self.wants(c.score) {
            return;
        }
        // An entry sampled again replaces itself. The address alone
        // decides: a stale candidate whose address was reused is
        // replaced by the live entry, which is right.
        let len = self.len;
        if let Some(i) = self.cands[..len]
            .iter()
            .position(|x| x.id.addr() == c.id.addr())
        {
            self.cands.copy_within(i + 1..len, i);
            self.len -= 1;
        }
        let len = self.len;
        let pos = self.cands[..len].partition_point(|x| x.score < c.score);
        if len < POOL_SIZE {
            self.cands.copy_within(pos..len, pos + 1);
            self.cands[pos] = c;
            self.len += 1;
        } else {
            // Full: the worst (first) leaves, the ones below `c` move
            // down. `pos >= 1`, since `c` beats the first.
            self.cands.copy_within(1..pos, 0);
            self.cands[pos - 1] = c;
        }
    }

    /// The best candidate, left in.
    fn best(&self) -> Option<Candidate> {
        self.len.checked_sub(1).map(|i| self.cands[i])
    }

    /// Takes the best candidate out.
    fn pop(&mut self) -> Option<Candidate> {
        self.len = self.len.checked_sub(1)?;
        Some(self.cands[self.len])
    }

    /// Takes out the best candidate of `shard`, if any.
    fn take_best_of(&mut self, shard: usize) -> Option<Candidate> {
        let i = self.cands[..self.len]
            .iter()
            .rposition(|c| c.shard as usize == shard)?;
        let c = self.cands[i];
        self.cands.copy_within(i + 1..self.len, i);
        self.len -= 1;
        Some(c)
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
    /// The shard this thread evicts from next (see `next_shard`).
    static NEXT_SHARD: Cell<usize> = Cell::new(random_u64() as usize);
}

/// The shards take turns to be sampled (pool policies) or to evict
/// (S3-FIFO). Each thread keeps its own turn, starting at a random shard:
/// a cursor shared by all threads would be one more cache line that
/// moves between cores on every eviction.
fn next_shard(nshards: usize) -> usize {
    NEXT_SHARD.with(|c| {
        let i = c.get() % nshards;
        c.set(i + 1);
        i
    })
}

/// Frees memory until usage is within maxmemory. Returns false when it
/// cannot (noeviction, or nothing left that the policy may evict): the
/// caller refuses the command with OOM. `started` is the command's
/// `util::mono_ns` reading: its clock ranks keys, and the time limit is
/// checked against it every 16 evictions (as Redis does), so the usual
/// call, which evicts one key, reads no clock.
pub fn perform_evictions(srv: &Server, started: u64) -> bool {
    let max = srv.config.maxmemory.load(Relaxed) as usize;
    // A replica's dataset is its primary's (replica-ignore-maxmemory).
    if max == 0 || used_memory() <= max || crate::store::replica_mode() {
        return true;
    }
    let policy = policy();
    if policy == Policy::NoEviction {
        return false;
    }
    let now = crate::util::unix_ms_at(started);
    let mut evicted = 0u32;
    loop {
        match evict_one(srv, policy, now) {
            Evicted::One => evicted += 1,
            Evicted::Nothing => return used_memory() <= max,
        }
        if used_memory() <= max {
            return true;
        }
        if evicted.is_multiple_of(16)
            && Duration::from_nanos(crate::util::mono_ns().saturating_sub(started)) >= time_limit()
        {
            // Progress was made; let the command run and continue on the
            // next one, as Redis does (EVICT_RUNNING).
            return true;
        }
    }
}

/// Evicts until within maxmemory or `limit` passes (CONFIG SET maxmemory
/// shrinking, and the cron).
pub fn evict_until_within(srv: &Server, limit: Duration) {
    let max = srv.config.maxmemory.load(Relaxed) as usize;
    let policy = policy();
    if max == 0 || policy == Policy::NoEviction || crate::store::replica_mode() {
        return;
    }
    let start = Instant::now();
    while used_memory() > max && start.elapsed() < limit {
        if evict_one(srv, policy, crate::util::now_ms()) == Evicted::Nothing {
            break;
        }
    }
    flush_freed();
}

fn evictable(db: &Db, volatile: bool) -> usize {
    if volatile { db.expires_len() } else { db.len() }
}

/// What one eviction attempt did.
#[derive(PartialEq, Eq)]
enum Evicted {
    One,
    /// Nothing the policy may evict.
    Nothing,
}

/// Evicts one key; `now` (Unix ms) ranks the keys.
fn evict_one(srv: &Server, policy: Policy, now: u64) -> Evicted {
    let volatile = policy.volatile();
    let nshards = srv.store.len();
    if policy == Policy::AllKeysS3Fifo {
        return if s3fifo_evict_one(srv, now) {
            Evicted::One
        } else {
            Evicted::Nothing
        };
    }
    if matches!(policy, Policy::AllKeysRandom | Policy::VolatileRandom) {
        let first = (crate::util::now_us() as usize) % nshards;
        for i in 0..nshards {
            let idx = (first + i) % nshards;
            let mut guard = srv.store.lock(idx);
            let shard = &mut *guard;
            let ndbs = shard.dbs.len();
            let start_db = shard.rng.below(ndbs);
            for d in 0..ndbs {
                let dbi = (start_db + d) % ndbs;
                let db = &mut shard.dbs[dbi];
                if evictable(db, volatile) == 0 {
                    continue;
                }
                if let Some(key) = db.sample_key(&mut shard.rng, volatile) {
                    evict_key(shard, dbi, &key);
                    return Evicted::One;
                }
            }
        }
        return Evicted::Nothing;
    }
    let samples = srv.config.maxmemory_samples.load(Relaxed).max(1) as usize;
    POOL.with_borrow_mut(|pool| evict_from_pool(srv, pool, policy, samples, now))
}

/// One eviction by pool: sample `samples` keys of each database of one
/// shard into the pool, then evict the best candidate still present.
///
/// The shards take turns, so each eviction samples as many keys as
/// Redis's does (maxmemory-samples per database), whatever the number of
/// shards, while the pool still compares candidates of every shard. The
/// sampled shard stays locked until its candidate is evicted. A
/// candidate of another shard is evicted if that shard's lock is free at
/// once; if another thread holds it, the best candidate of the shard
/// held goes instead, so an eviction never queues for a second lock.
fn evict_from_pool(
    srv: &Server,
    pool: &mut Pool,
    policy: Policy,
    samples: usize,
    now: u64,
) -> Evicted {
    let volatile = policy.volatile();
    let nshards = srv.store.len();
    // Shards in a row that had nothing the policy may evict.
    let mut barren = 0;
    for _round in 0..nshards + 3 {
        let mut held = sampling_shard(srv, nshards);
        if populate(pool, &mut held.1, held.0, policy, samples, now) {
            barren = 0;
        } else {
            barren += 1;
        }
        while let Some(c) = pool.best() {
            let shard = c.shard as usize;
            if shard == held.0 {
                pool.pop();
                if evict_candidate(&mut held.1, &c, volatile) {
                    return Evicted::One;
                }
                continue;
            }
            // Another shard's candidate: taken if that shard is free now.
            // Holding two shards cannot deadlock, since the second is
            // only tried, never waited for.
            if let Some(mut other) = srv.store.try_lock(shard) {
                pool.pop();
                if evict_candidate(&mut other, &c, volatile) {
                    return Evicted::One;
                }
                continue;
            }
            // That shard is busy: the best candidate of the shard held
            // goes instead; with none, wait for the busy one.
            if let Some(c) = pool.take_best_of(held.0) {
                if evict_candidate(&mut held.1, &c, volatile) {
                    return Evicted::One;
                }
                continue;
            }
            drop(held);
            held = (shard, srv.store.lock(shard));
        }
        // The pool is empty now: every shard barren means nothing left.
        if barren >= nshards {
            return Evicted::Nothing;
        }
    }
    Evicted::Nothing
}

/// The shard to sample: the next in this thread's turn or, if another
/// thread holds it, the first after it that is free; when all are held,
/// the one in turn, waited for. With two workers, one's eviction thus
/// rarely queues behind the other's command on the same shard.
fn sampling_shard(srv: &Server, nshards: usize) -> (usize, MutexGuard<'_, Shard>) {
    let first = next_shard(nshards);
    for k in 0..nshards {
        let idx = (first + k) % nshards;
        if let Some(guard) = srv.store.try_lock(idx) {
            return (idx, guard);
        }
    }
    (first, srv.store.lock(first))
}

/// Samples `samples` keys of each of `shard`'s databases that has keys
/// the policy may evict into `pool`. Returns whether it sampled any.
fn populate(
    pool: &mut Pool,
    shard: &mut crate::store::Shard,
    idx: usize,
    policy: Policy,
    samples: usize,
    now: u64,
) -> bool {
    let volatile = policy.volatile();
    let mut sampled = false;
    let crate::store::Shard { dbs, rng, .. } = shard;
    for (dbi, db) in dbs.iter_mut().enumerate() {
        if evictable(db, volatile) == 0 {
            continue;
        }
        let n = db.sample_run(rng, volatile, samples, |e| {
            let score = rank(
                policy,
                e.access(),
                e.freq(),
                || e.expire_at(),
                e.id_addr(),
                now,
            );
            if pool.wants(score) {
                pool.offer(Candidate {
                    score,
                    id: e.id(),
                    shard: idx as u32,
                    db: dbi as u32,
                });
            }
        });
        sampled |= n > 0;
    }
    sampled
}

/// Evicts a pool candidate if it is still there (see `Db::evict_sampled`).
fn evict_candidate(shard: &mut crate::store::Shard, c: &Candidate, volatile: bool) -> bool {
    let db = c.db as usize;
    let freed = shard.dbs[db].evict_sampled(c.id, volatile, |key| {
        crate::replication::propagate_evicted(db, key);
    });
    let Some(freed) = freed else {
        return false;
    };
    shard.mem_freed(freed);
    true
}

fn evict_key(shard: &mut crate::store::Shard, db: usize, key: &[u8]) {
    let freed = shard.dbs[db].evict(key, |key| {
        crate::replication::propagate_evicted(db, key);
    });
    if let Some(freed) = freed {
        shard.mem_freed(freed);
    }
}

// ------------------------------------------------------------- S3-FIFO
//
// S3-FIFO keeps a small FIFO queue S (10% of the keys), a main FIFO queue
// M and a ghost queue G of keys recently evicted from S. New keys enter S
// (or M if G remembers them). Hits only bump a 2-bit counter. Evicting
// from S: a key hit at least once moves to M, otherwise it is evicted and
// remembered in G. Evicting from M: a key with hits is reinserted with its
// counter decremented, otherwise evicted. One-hit wonders (scans) thus
// leave through the small queue without disturbing M.
//
// Here S is an exact FIFO per database (`store::S3State::small`), G a
// table of key fingerprints, and M is approximated by sampling like
// Redis's LRU: among sampled main keys, the one that entered its queue
// longest ago is treated as the queue's tail.

/// Rounds of second chances one eviction may give before it evicts the
/// last candidate anyway (keeps each eviction bounded).
const S3_MAX_ROUNDS: usize = 64;

/// Evicts one key under S3-FIFO, from the shards in turn.
fn s3fifo_evict_one(srv: &Server, now: u64) -> bool {
    let nshards = srv.store.len();
    let samples = srv.config.maxmemory_samples.load(Relaxed).max(1) as usize;
    for _ in 0..nshards {
        let idx = next_shard(nshards);
        let mut guard = srv.store.lock(idx);
        let shard = &mut *guard;
        let ndbs = shard.dbs.len();
        let start = shard.rng.below(ndbs);
        for d in 0..ndbs {
            let dbi = (start + d) % ndbs;
            if shard.dbs[dbi].is_empty() {
                continue;
            }
            if let Some(key) =
                shard.dbs[dbi].s3fifo_victim(&mut shard.rng, samples, now, S3_MAX_ROUNDS)
            {
                evict_key(shard, dbi, &key);
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfu_counter_is_logarithmic() {
        set_lfu_log_factor(10);
        let mut c = LFU_INIT_VAL;
        for _ in 0..1000 {
            c = lfu_log_incr(c);
        }
        // Redis's table: ~1k hits with factor 10 give a counter near 18.
        assert!((10..40).contains(&c), "{c}");
        set_lfu_log_factor(0);
        let mut c = LFU_INIT_VAL;
        for _ in 0..100 {
            c = lfu_log_incr(c);
        }
        assert_eq!(c, 105);
        set_lfu_log_factor(10);
    }

    #[test]
    fn pool_keeps_the_best() {
        let cand = |score: u64, i: u64| Candidate {
            score,
            id: SampleId::new(i, 8 * (i + 1)),
            shard: 0,
            db: 0,
        };
        let mut p = Pool::default();
        // Scores out of order.
        for i in 0..40u64 {
            let score = (i * 17) % 40;
            p.offer(cand(score, score));
        }
        assert_eq!(p.best().map(|c| c.score), Some(39));
        assert_eq!(p.len, POOL_SIZE);
        let scores: Vec<u64> = p.cands[..p.len].iter().map(|c| c.score).collect();
        assert_eq!(scores, (24..40).collect::<Vec<_>>());
        // Worse than the worst: ignored.
        p.offer(cand(3, 1000));
        assert_eq!(p.cands[0].score, 24);
        // The same entry offered again replaces itself, with its new score.
        p.offer(cand(100, 30));
        assert_eq!(p.len, POOL_SIZE);
        assert_eq!(
            p.cands[..p.len]
                .iter()
                .filter(|c| c.id == SampleId::new(30, 8 * 31))
                .count(),
            1
        );
        assert_eq!(p.cands[0].score, 24);
        // Best first, then in descending order.
        let mut last = u64::MAX;
        let mut n = 0;
        while let Some(c) = p.pop() {
            assert!(c.score <= last);
            last = c.score;
            n += 1;
        }
        assert_eq!(n, POOL_SIZE);
        assert_eq!(last, 24);
        // Not full: entries go in order too.
        p.offer(cand(5, 1));
        p.offer(cand(2, 2));
        p.offer(cand(9, 3));
        let scores: Vec<u64> = p.cands[..p.len].iter().map(|c| c.score).collect();
        assert_eq!(scores, [2, 5, 9]);
        // The best of one shard comes out, the rest stays in order.
        p.offer(Candidate {
            shard: 1,
            ..cand(4, 4)
        });
        p.offer(Candidate {
            shard: 1,
            ..cand(3, 5)
        });
        assert_eq!(p.take_best_of(1).map(|c| c.score), Some(4));
        assert_eq!(p.take_best_of(2).map(|c| c.score), None);
        let scores: Vec<u64> = p.cands[..p.len].iter().map(|c| c.score).collect();
        assert_eq!(scores, [2, 3, 5, 9]);
        assert_eq!(p.best().map(|c| c.score), Some(9));
    }
}
