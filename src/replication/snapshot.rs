//! Point-in-time snapshots without fork, without stopping the world and
//! without copying the dataset (full resyncs and BGSAVE).
//!
//! A snapshot starts at a point P taken while every shard lock is held
//! (so no command is half-way), which is also where the replication
//! stream for it starts. Each shard is then serialized exactly once,
//! under its own lock, either by the background serializer (shard by
//! shard, paced by the consumer) or, first, by a write command about to
//! modify a shard that is not serialized yet (`before_write`). So every
//! shard's image is its state at P: nothing wrote to it between P and its
//! serialization. Writes after P are in the stream. Deletions by expiry
//! and eviction are not write commands and may land in an image taken
//! after them; their stream form (DEL) is idempotent, so the replica ends
//! in the same state either way. docs/replication.md has the argument in
//! full.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cmd::Locked;
use crate::server::Server;
use crate::store::Shard;

/// Epoch of the snapshot in progress; 0 when none.
static EPOCH: AtomicU64 = AtomicU64::new(0);
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);
static CURRENT: Mutex<Option<Arc<Job>>> = Mutex::new(None);

pub struct Job {
    pub epoch: u64,
    /// Clock for expiry checks while serializing (keys already expired at
    /// P are left out).
    pub now_ms: u64,
    pub shards: usize,
    images: mpsc::UnboundedSender<Vec<u8>>,
    /// Images produced and not yet consumed: the background serializer
    /// waits for 0, so at most about one shard's image is in memory.
    queued: AtomicUsize,
    /// The consumer went away: stop pacing, just finish.
    abandoned: AtomicBool,
}

impl Job {
    /// Serializes `shard` for this snapshot unless it already was. Called
    /// with the shard's lock held.
    fn serialize(&self, shard: &mut Shard) {
        if shard.snapshot_epoch == self.epoch {
            return;
        }
        let mut buf = Vec::new();
        crate::rdb::write_shard(&mut buf, shard, self.now_ms);
        shard.snapshot_epoch = self.epoch;
        self.queued.fetch_add(1, Relaxed);
        if self.images.send(buf).is_err() {
            self.abandoned.store(true, Relaxed);
        }
    }

    /// The consumer wrote out one image.
    pub fn consumed(&self) {
        self.queued.fetch_sub(1, Relaxed);
    }

    pub fn abandon(&self) {
        self.abandoned.store(true, Relaxed);
    }
}

/// Dispatcher hook, before a write command runs with `locked` held:
/// shards it may modify are serialized first. One relaxed load when no
/// snapshot is running.
#[inline]
pub fn before_write(locked: &mut Locked<'_>) {
    if EPOCH.load(Relaxed) == 0 {
        return;
    }
    before_write_slow(locked);
}

#[cold]
fn before_write_slow(locked: &mut Locked<'_>) {
    let job = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(job) = job {
        for shard in locked.shards_mut() {
            job.serialize(shard);
        }
    }
}

pub fn in_progress() -> bool {
    EPOCH.load(Relaxed) != 0
}

/// Starts a snapshot if none is running. `at_point` runs at P, with every
/// shard locked (record the stream offset there). Returns the job and the
/// receiver of its images (one per shard, in any order).
pub fn start(
    srv: &Arc<Server>,
    now_ms: u64,
    at_point: impl FnOnce(),
) -> Option<(Arc<Job>, mpsc::UnboundedReceiver<Vec<u8>>)> {
    let locked = Locked::all(srv);
    if EPOCH.load(Relaxed) != 0 {
        return None;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let job = Arc::new(Job {
        epoch: NEXT_EPOCH.fetch_add(1, Relaxed),
        now_ms,
        shards: srv.store.len(),
        images: tx,
        queued: AtomicUsize::new(0),
        abandoned: AtomicBool::new(false),
    });
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
    EPOCH.store(job.epoch, Relaxed);
    at_point();
    drop(locked);

    let bg_srv = srv.clone();
    let bg = job.clone();
    let spawned = std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            let srv = bg_srv;
            for idx in 0..srv.store.len() {
                while bg.queued.load(Relaxed) > 0 && !bg.abandoned.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let mut shard = srv.store.lock(idx);
                bg.serialize(&mut shard);
            }
            // Every shard is serialized: later writes need no hook.
            *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
            EPOCH.store(0, Relaxed);
        });
    if spawned.is_err() {
        // No thread: serialize here, shard by shard.
        for idx in 0..srv.store.len() {
            let mut shard = srv.store.lock(idx);
            job.serialize(&mut shard);
        }
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
        EPOCH.store(0, Relaxed);
    }
    Some((job, rx))
}

/// `start`, waiting (bounded by `tries` × 10 ms) for a running snapshot
/// to finish first.
pub async fn start_when_free(
    srv: &Arc<Server>,
    now_ms: u64,
    mut at_point: impl FnMut(),
) -> Option<(Arc<Job>, mpsc::UnboundedReceiver<Vec<u8>>)> {
    for _ in 0..60_000 {
        if !in_progress()
            && let Some(r) = start(srv, now_ms, &mut at_point)
        {
            return Some(r);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}
