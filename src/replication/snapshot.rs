//! Point-in-time snapshots without fork, without stopping the world and
//! without copying the dataset (full resyncs and BGSAVE).
//!
//! A snapshot starts at a point P taken while every shard lock is held
//! (so no command is half-way), which is also where the replication
//! stream for it starts. From then on every entry is serialized at most
//! once, as it was at P, by whoever reaches it first:
//!
//! - the walker, which visits each shard's tables in short slices under
//!   the shard's lock: for a full resync the replica's own connection
//!   task drives it (`Pieces`), a few hundred entries at a time between
//!   other connections' commands on the same worker; for BGSAVE a
//!   `snapshot` thread walks a few thousand at a time, paced by the file
//!   writer so about one slice is in memory at a time;
//! - a write command, before its handler runs (`before_write`): the
//!   entries of its keys (in every database of their shard) that are not
//!   serialized yet are serialized first; a whole-keyspace write (FLUSHALL,
//!   FLUSHDB, SWAPDB) first finishes the walk of its shards.
//!
//! An entry carries the tag of the snapshot that serialized it; entries
//! created after P get the running snapshot's tag, so they are never part
//! of it. Deletions by expiry and eviction are not write commands and may
//! happen before an entry is reached; their stream form (DEL) is
//! idempotent, so the replica ends in the same state. docs/replication.md
//! has the argument in full.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::cmd::table::{CommandSpec, LockSpec};
use crate::cmd::{Args, Locked};
use crate::server::Server;
use crate::store::Shard;

/// Epoch of the snapshot in progress; 0 when none.
static EPOCH: AtomicU64 = AtomicU64::new(0);
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);
static CURRENT: Mutex<Option<Arc<Job>>> = Mutex::new(None);

/// Entries serialized per slice of the walk (one lock hold) by the
/// BGSAVE thread.
const SLICE_ENTRIES: usize = 2000;

/// Entries per slice when a connection task drives the walk. The slice
/// runs on a worker thread between other connections' commands and holds
/// one shard's lock meanwhile, so it is kept to tens of microseconds.
const DRIVEN_SLICE_ENTRIES: usize = 256;

/// The most of the wall time since a consumer-driven walk started that
/// its slices may take, in percent: a bound on how much of its worker a
/// full resync takes from the other connections there. An idle primary
/// sends 1M keys in about a second instead of 0.3 s. GET p99 during
/// back-to-back syncs of 1M keys, against p99 without (REPLICA=cli): 25%
/// gave 1.27x-1.81x, unbounded 1.74x-1.88x; after replies were deferred
/// to the end of the round, 15% gave 1.89x-2.16x and 25% 2.11x-2.21x on a
/// quieter machine (docs/benchmarks.md, "Full resync under load").
const WALK_SHARE_PERCENT: u32 = 15;

/// Who walks the shards.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Walker {
    /// A `snapshot` thread, paced by the consumer (BGSAVE: a thread
    /// writes the file).
    Thread,
    /// The consumer, through `Pieces` (full resync). A thread of its own
    /// would compete with the workers for cores and could be preempted
    /// while it holds a shard lock, stalling every command on that shard
    /// for a scheduling quantum; on a worker the walk interleaves with
    /// the commands instead.
    Consumer,
}

pub struct Job {
    pub epoch: u64,
    /// Entry tag of this snapshot (`store::Entry::snap`).
    tag: u8,
    /// Clock for expiry checks while serializing (keys already expired
    /// are left out).
    pub now_ms: u64,
    /// Closed (dropped) when every shard is walked: the consumer's
    /// `recv` then returns `None`.
    images: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    /// Pieces produced and not yet consumed: the walker waits for 0.
    queued: AtomicUsize,
    /// The consumer went away: stop pacing, just finish.
    abandoned: AtomicBool,
    /// First shard whose walk is not over (consumer-driven walks).
    next_shard: AtomicUsize,
    /// The walk is over and the job released (`finish` ran).
    finished: AtomicBool,
    /// Keys and keys with an expiry per database at the point, for the
    /// image's header (`rdb::HeaderInfo::db_sizes`).
    pub db_sizes: Vec<(u64, u64)>,
}

impl Job {
    fn send(&self, buf: Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        self.queued.fetch_add(1, Relaxed);
        let sent = self
            .images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(buf).is_ok());
        if !sent {
            self.abandoned.store(true, Relaxed);
        }
    }

    /// Serializes the not-yet-serialized entries of `key` in every
    /// database of `shard` (MOVE and COPY write across databases).
    fn serialize_key(&self, shard: &mut Shard, key: &[u8], out: &mut Vec<u8>) {
        for (i, db) in shard.dbs.iter_mut().enumerate() {
            if let Some(e) = db.snapshot_take(key, self.tag)
                && !e.is_expired(self.now_ms)
            {
                crate::rdb::write_select(out, i);
                crate::rdb::write_entry(out, e.key, &e);
            }
        }
    }

    /// Walks up to `budget` positions of the shard: the serialized
    /// entries, and true when the walk of the whole shard is over.
    fn walk(&self, shard: &mut Shard, mut budget: usize) -> (Vec<u8>, bool) {
        if shard.snapshot_epoch != self.epoch {
            shard.snapshot_epoch = self.epoch;
            shard.snapshot_db = 0;
            shard.snapshot_cursor = 0;
        }
        let mut out = Vec::new();
        while shard.snapshot_db < shard.dbs.len() && budget > 0 {
            let dbi = shard.snapshot_db;
            let db = &mut shard.dbs[dbi];
            // The walk's cursor is a hash position that stays valid when
            // the table is resized between slices (`Db::snapshot_walk`):
            // every entry present at P is reached; entries added since P
            // carry this snapshot's tag and are skipped.
            let mut selected = false;
            let (next, walked) = db.snapshot_walk(shard.snapshot_cursor, budget, self.tag, |e| {
                if !e.is_expired(self.now_ms) {
                    if !selected {
                        crate::rdb::write_select(&mut out, dbi);
                        selected = true;
                    }
                    crate::rdb::write_entry(&mut out, e.key, &e);
                }
            });
            budget = budget.saturating_sub(walked);
            if next == 0 {
                shard.snapshot_db += 1;
            }
            shard.snapshot_cursor = next;
        }
        let done = shard.snapshot_db >= shard.dbs.len();
        (out, done)
    }

    /// One slice of the walk, from the first shard not walked yet; None
    /// once every shard is walked (the job is then finished).
    fn step(&self, srv: &Server, budget: usize) -> Option<Vec<u8>> {
        loop {
            let idx = self.next_shard.load(Relaxed);
            if idx >= srv.store.len() {
                self.finish();
                return None;
            }
            let (piece, done) = self.walk(&mut srv.store.lock(idx), budget);
            if done {
                self.next_shard.store(idx + 1, Relaxed);
            }
            if !piece.is_empty() || !done {
                return Some(piece);
            }
        }
    }

    /// Walks what is left on the calling thread, paced by the consumer
    /// unless it has gone away, then finishes.
    fn walk_rest(&self, srv: &Server) {
        while !self.finished.load(Relaxed) {
            while self.queued.load(Relaxed) > 0 && !self.abandoned.load(Relaxed) {
                std::thread::sleep(Duration::from_micros(200));
            }
            if let Some(piece) = self.step(srv, SLICE_ENTRIES) {
                self.send(piece);
            }
        }
    }

    /// Every entry is serialized: later writes need no hook, and the
    /// consumer's receiver ends once it has taken what is queued.
    fn finish(&self) {
        if self.finished.swap(true, Relaxed) {
            return;
        }
        EPOCH.store(0, Relaxed);
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.images.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// The consumer wrote out one piece.
    pub fn consumed(&self) {
        self.queued.fetch_sub(1, Relaxed);
    }

    pub fn abandon(&self) {
        self.abandoned.store(true, Relaxed);
    }
}

/// Dispatcher hook, before a write command runs with `locked` held: what
/// it may modify is serialized first. One relaxed load when no snapshot
/// is running.
#[inline]
pub fn before_write(srv: &Server, spec: &CommandSpec, args: &Args, locked: &mut Locked<'_>) {
    if EPOCH.load(Relaxed) == 0 {
        return;
    }
    before_write_slow(srv, spec, args, locked);
}

#[cold]
fn before_write_slow(srv: &Server, spec: &CommandSpec, args: &Args, locked: &mut Locked<'_>) {
    if spec.lock == LockSpec::Keys {
        // Most writes during a snapshot touch entries already serialized
        // (or new keys): check under the locks held, without the shared
        // job, first.
        let tag = crate::store::snapshot_tag();
        let pending = spec.key_positions(args.len()).any(|i| {
            let key = args.get(i);
            locked
                .shard_mut(srv.store.shard_of(key))
                .dbs
                .iter_mut()
                .any(|db| db.snapshot_pending(key, tag))
        });
        if !pending {
            return;
        }
    }
    let job = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(job) = job else {
        return;
    };
    if spec.lock != LockSpec::Keys {
        // Whole-keyspace writes: finish the walk of every locked shard.
        for shard in locked.shards_mut() {
            let (piece, _) = job.walk(shard, usize::MAX);
            job.send(piece);
        }
        return;
    }
    let mut out = Vec::new();
    for i in spec.key_positions(args.len()) {
        let key = args.get(i);
        let shard = locked.shard_mut(srv.store.shard_of(key));
        job.serialize_key(shard, key, &mut out);
    }
    job.send(out);
}

pub fn in_progress() -> bool {
    EPOCH.load(Relaxed) != 0
}

/// Starts a snapshot if none is running. `at_point` runs at P, with every
/// shard locked (record the stream offset there). Returns the job and the
/// receiver of its pieces (RDB bytes after the header, in any order),
/// which ends when the snapshot is complete. With `Walker::Consumer` the
/// receiver alone never ends: read the pieces through `Pieces`, which
/// drives the walk.
pub fn start(
    srv: &Arc<Server>,
    now_ms: u64,
    walker: Walker,
    at_point: impl FnOnce(),
) -> Option<(Arc<Job>, mpsc::UnboundedReceiver<Vec<u8>>)> {
    let applying = super::apply_guard();
    let locked = Locked::all(srv);
    if EPOCH.load(Relaxed) != 0 {
        return None;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut db_sizes = Vec::new();
    locked.for_each_indexed(|_, shard| crate::rdb::add_db_sizes(&mut db_sizes, shard));
    let job = Arc::new(Job {
        epoch: NEXT_EPOCH.fetch_add(1, Relaxed),
        // Every existing entry carries the previous snapshot's tag (that
        // walk tagged all of them, later ones were created with it).
        tag: crate::store::next_snapshot_tag(),
        now_ms,
        images: Mutex::new(Some(tx)),
        queued: AtomicUsize::new(0),
        abandoned: AtomicBool::new(false),
        next_shard: AtomicUsize::new(0),
        finished: AtomicBool::new(false),
        db_sizes,
    });
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
    EPOCH.store(job.epoch, Relaxed);
    at_point();
    drop(locked);
    drop(applying);

    if walker == Walker::Thread && !spawn_walker(srv, &job) {
        // Entries tagged so far keep this tag; the next snapshot draws a
        // new one, so nothing is mistaken for already serialized.
        job.finish();
        return None;
    }
    Some((job, rx))
}

/// Walks the rest of `job` on a `snapshot` thread; false if no thread
/// could be started.
fn spawn_walker(srv: &Arc<Server>, job: &Arc<Job>) -> bool {
    let srv = srv.clone();
    let job = job.clone();
    match std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || job.walk_rest(&srv))
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("cannot start the snapshot thread: {e}");
            false
        }
    }
}

/// The pieces of a consumer-driven snapshot (`Walker::Consumer`): pieces
/// that write commands serialized come first, then one slice of the walk
/// per call. Dropped before the end (the replica went away, the task was
/// cancelled), it hands the rest of the walk to a thread: the one-bit
/// entry tags are only sound if every walk tags every entry.
pub struct Pieces {
    srv: Arc<Server>,
    job: Arc<Job>,
    images: mpsc::UnboundedReceiver<Vec<u8>>,
    started: Instant,
    /// Time spent in slices of the walk so far.
    walking: Duration,
}

impl Pieces {
    pub fn new(srv: &Arc<Server>, job: Arc<Job>, images: mpsc::UnboundedReceiver<Vec<u8>>) -> Self {
        Pieces {
            srv: srv.clone(),
            job,
            images,
            started: Instant::now(),
            walking: Duration::ZERO,
        }
    }

    pub fn db_sizes(&self) -> &[(u64, u64)] {
        &self.job.db_sizes
    }

    /// The next piece (RDB bytes after the header); None when the
    /// snapshot is complete.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.images.try_recv() {
                Ok(piece) => {
                    self.job.consumed();
                    return Some(piece);
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if self.job.finished.load(Relaxed) {
                // Finished, but a write's piece may still be on its way
                // (sent before `finish` dropped the sender).
                let piece = self.images.recv().await?;
                self.job.consumed();
                return Some(piece);
            }
            if self.walking * 100 > self.started.elapsed() * WALK_SHARE_PERCENT {
                // Over its share of the worker: the commands of the other
                // connections go first for a while.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let t = Instant::now();
            let piece = self.job.step(&self.srv, DRIVEN_SLICE_ENTRIES);
            self.walking += t.elapsed();
            if piece.is_none() {
                tracing::info!(
                    "Snapshot walk done: {} ms in slices over {} ms",
                    self.walking.as_millis(),
                    self.started.elapsed().as_millis()
                );
            }
            // Let the worker's other connections run between slices.
            crate::flush::pass_turn().await;
            match piece {
                Some(p) if !p.is_empty() => return Some(p),
                _ => {}
            }
        }
    }
}

impl Drop for Pieces {
    fn drop(&mut self) {
        if self.job.finished.load(Relaxed) {
            return;
        }
        self.job.abandon();
        if !spawn_walker(&self.srv, &self.job) {
            // No thread: finish the walk here rather than leave entries
            // with a stale tag.
            self.job.walk_rest(&self.srv);
        }
    }
}

/// `start`, waiting (bounded, 10 minutes) for a running snapshot to
/// finish first.
pub async fn start_when_free(
    srv: &Arc<Server>,
    now_ms: u64,
    walker: Walker,
    mut at_point: impl FnMut(),
) -> Option<(Arc<Job>, mpsc::UnboundedReceiver<Vec<u8>>)> {
    for _ in 0..60_000 {
        if !in_progress()
            && let Some(r) = start(srv, now_ms, walker, &mut at_point)
        {
            return Some(r);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}
