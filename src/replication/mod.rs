//! Replication: the stream of effects a primary sends its replicas, the
//! backlog it keeps for partial resyncs, and the replica side.
//!
//! Every effective write reaches `propagate` (from the dispatcher, with
//! the command's shard locks still held), every key deleted by expiry
//! reaches `propagate_expired` and every evicted key `propagate_evicted`.
//! They append to the one `Feed` (a mutex taken only while the backlog
//! exists, i.e. once a replica has connected, as Redis creates its
//! backlog then): with no replica ever attached a write pays one relaxed
//! atomic load here.
//!
//! Because a command appends while holding its shards' locks, the feed's
//! order agrees with the order in which writes hit each shard; the
//! snapshot for a full resync (snapshot.rs) relies on that. See
//! docs/replication.md.
//!
//! The feed is Redis 7's shared replication buffer: one byte queue holding
//! at least the last `repl-backlog-size` bytes and everything a connected
//! replica has yet to be sent. A replica further behind than the replica
//! class's `client-output-buffer-limit` is disconnected.

pub mod primary;
pub mod replica;
pub mod snapshot;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, Weak};

use crate::cmd::{Args, Locked, OwnedArgs};
use crate::protocol::encode_command;
use crate::server::Server;
use crate::util::{eq_ic, now_ms};

/// The backlog exists: writes must be recorded.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static FEED: LazyLock<Mutex<Feed>> = LazyLock::new(|| Mutex::new(Feed::new()));
/// The running server, for tasks started from a command handler (which
/// only sees `&Server`).
static SERVER: OnceLock<Weak<Server>> = OnceLock::new();

/// Held by a replica's link while it applies one command of its primary's
/// stream and appends it to the feed, and by whatever reads the dataset
/// and the feed's offset as one consistent pair (a snapshot's point, SAVE):
/// in between the two steps the dataset is ahead of the offset.
pub static APPLY: Mutex<()> = Mutex::new(());

pub fn apply_guard() -> MutexGuard<'static, ()> {
    APPLY.lock().unwrap_or_else(|e| e.into_inner())
}

pub const DEFAULT_BACKLOG: usize = 1 << 20;
static BACKLOG_SIZE: AtomicU64 = AtomicU64::new(DEFAULT_BACKLOG as u64);
/// The replica class of client-output-buffer-limit: hard, soft bytes and
/// soft seconds.
static OBUF_HARD: AtomicU64 = AtomicU64::new(256 << 20);
static OBUF_SOFT: AtomicU64 = AtomicU64::new(64 << 20);
static OBUF_SOFT_SECS: AtomicU64 = AtomicU64::new(60);

pub static SYNC_FULL: AtomicU64 = AtomicU64::new(0);
/// Bytes received from a primary and sent to replicas
/// (total_net_repl_input_bytes / total_net_repl_output_bytes).
pub static NET_REPL_IN: AtomicU64 = AtomicU64::new(0);
pub static NET_REPL_OUT: AtomicU64 = AtomicU64::new(0);
pub static SYNC_PARTIAL_OK: AtomicU64 = AtomicU64::new(0);
pub static SYNC_PARTIAL_ERR: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// A transaction's propagated commands, collected by the thread
    /// running EXEC and appended as one MULTI ... EXEC block, so no other
    /// command lands inside it in the stream.
    static TX: RefCell<Option<Vec<(usize, OwnedArgs)>>> = const { RefCell::new(None) };
}

pub fn init(srv: &Arc<Server>) {
    let _ = SERVER.set(Arc::downgrade(srv));
    set_backlog_size(srv.config.get_int("repl-backlog-size").max(16384) as u64);
    if let Some(v) = srv.config.get("client-output-buffer-limit") {
        set_obuf_limits(&v);
    }
}

pub fn server() -> Option<Arc<Server>> {
    SERVER.get().and_then(|w| w.upgrade())
}

static SERVE_STALE: AtomicBool = AtomicBool::new(true);

pub fn set_serve_stale_data(on: bool) {
    SERVE_STALE.store(on, Relaxed);
}

/// A replica may answer: its link is up, or replica-serve-stale-data
/// allows serving a possibly stale dataset.
pub fn serving_stale_ok() -> bool {
    SERVE_STALE.load(Relaxed) || replica::LINK_UP.load(Relaxed)
}

pub fn set_backlog_size(n: u64) {
    BACKLOG_SIZE.store(n.max(16384), Relaxed);
}

/// Picks the replica class out of a client-output-buffer-limit value
/// (`normal 0 0 0 replica 256mb 64mb 60 pubsub ...`).
pub fn set_obuf_limits(v: &str) {
    let words: Vec<&str> = v.split_whitespace().collect();
    for w in words.chunks(4) {
        if w.len() == 4 && matches!(w[0], "replica" | "slave") {
            let mem = |s: &str| crate::util::parse_memory(s).unwrap_or(0);
            OBUF_HARD.store(mem(w[1]), Relaxed);
            OBUF_SOFT.store(mem(w[2]), Relaxed);
            OBUF_SOFT_SECS.store(w[3].parse().unwrap_or(0), Relaxed);
        }
    }
}

pub fn feed() -> MutexGuard<'static, Feed> {
    FEED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connected replica, as the primary sees it.
pub struct ReplicaLink {
    pub client_id: u64,
    pub ip: String,
    pub listening_port: u16,
    /// Stream position (bytes since the replication ID began) of the next
    /// byte to send it.
    pub cursor: AtomicU64,
    /// Offset it last acknowledged, and when (Unix ms).
    pub ack: AtomicU64,
    pub last_ack_ms: AtomicU64,
    /// The snapshot was sent; it now receives the stream.
    pub online: AtomicBool,
    /// Over its output limit or gone: its task drops the connection.
    pub dead: AtomicBool,
    /// Since when (Unix ms) it has been over the soft limit; 0: it is not.
    soft_since: AtomicU64,
    pub wake: tokio::sync::Notify,
}

impl ReplicaLink {
    pub fn new(client_id: u64, ip: String, listening_port: u16, cursor: u64) -> Self {
        ReplicaLink {
            client_id,
            ip,
            listening_port,
            cursor: AtomicU64::new(cursor),
            ack: AtomicU64::new(0),
            last_ack_ms: AtomicU64::new(now_ms()),
            online: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            soft_since: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn kill(&self) {
        self.dead.store(true, Relaxed);
        self.wake.notify_one();
    }
}

pub struct Feed {
    pub replid: String,
    pub replid2: String,
    /// First offset (1-based, as Redis) not valid under `replid2`; -1.
    pub second_offset: i64,
    /// Bytes of stream produced under this history (master_repl_offset).
    pub offset: u64,
    /// Bytes `buf_start..offset` of the stream.
    buf: VecDeque<u8>,
    buf_start: u64,
    /// The backlog exists (Redis creates it with the first replica).
    pub active: bool,
    /// The database the stream last SELECTed.
    stream_db: Option<usize>,
    pub replicas: Vec<Arc<ReplicaLink>>,
}

pub const NULL_REPLID: &str = "0000000000000000000000000000000000000000";

impl Feed {
    fn new() -> Self {
        Feed {
            replid: crate::server::random_hex(40),
            replid2: NULL_REPLID.to_string(),
            second_offset: -1,
            offset: 0,
            buf: VecDeque::new(),
            buf_start: 0,
            active: false,
            stream_db: None,
            replicas: Vec::new(),
        }
    }

    /// Creates the backlog if needed (the first replica arrives).
    pub fn activate(&mut self) {
        if !self.active {
            self.active = true;
            self.buf_start = self.offset;
            self.buf.clear();
            ACTIVE.store(true, Relaxed);
        }
    }

    pub fn backlog_first_byte(&self) -> u64 {
        if self.active { self.buf_start + 1 } else { 0 }
    }

    /// Bytes held: at least the backlog size once that much was
    /// written, more while a replica still needs them (Redis 7 shares one
    /// buffer between the backlog and the replicas the same way).
    pub fn histlen(&self) -> u64 {
        self.offset - self.buf_start
    }

    /// Whether a replica asking to continue `replid` from 1-based offset
    /// `from` can be served from the backlog (Redis's
    /// masterTryPartialResynchronization).
    pub fn can_continue(&self, replid: &str, from: i64) -> bool {
        if !self.active {
            return false;
        }
        if replid != self.replid && (replid != self.replid2 || from > self.second_offset) {
            return false;
        }
        from >= 1 && (from as u64 - 1) >= self.buf_start && (from as u64 - 1) <= self.offset
    }

    /// Appends stream bytes (already encoded) and wakes the replicas.
    pub fn append_raw(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        if !self.active {
            return;
        }
        self.buf.extend(bytes);
        self.trim();
        for r in &self.replicas {
            r.wake.notify_one();
        }
    }

    /// A command, preceded by SELECT when the stream is in another db.
    pub fn append_command(&mut self, db: Option<usize>, parts: &[&[u8]]) {
        let mut enc = Vec::with_capacity(64);
        if let Some(db) = db
            && self.stream_db != Some(db)
        {
            let mut n = itoa::Buffer::new();
            encode_command(&mut enc, &[b"SELECT", n.format(db).as_bytes()]);
            self.stream_db = Some(db);
        }
        encode_command(&mut enc, parts);
        self.append_raw(&enc);
    }

    /// Drops bytes no one needs: older than the backlog size and already
    /// sent to every replica. A replica too far behind is cut off.
    fn trim(&mut self) {
        let backlog = BACKLOG_SIZE.load(Relaxed);
        let hard = OBUF_HARD.load(Relaxed);
        let soft = OBUF_SOFT.load(Relaxed);
        // As Redis 7: a hard limit below the backlog size is raised to it
        // (those bytes are kept for the backlog anyway).
        let hard = if hard != 0 { hard.max(backlog) } else { 0 };
        let mut keep = self.offset.saturating_sub(backlog);
        for r in &self.replicas {
            if r.dead.load(Relaxed) {
                continue;
            }
            let cursor = r.cursor.load(Relaxed);
            let behind = self.offset.saturating_sub(cursor);
            if hard != 0 && behind > hard {
                tracing::warn!(
                    "Client id={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                    r.client_id
                );
                r.kill();
                continue;
            }
            if soft != 0 && behind > soft {
                let since = r.soft_since.load(Relaxed);
                let now = now_ms();
                if since == 0 {
                    r.soft_since.store(now, Relaxed);
                } else if now - since > OBUF_SOFT_SECS.load(Relaxed) * 1000 {
                    r.kill();
                    continue;
                }
            } else {
                r.soft_since.store(0, Relaxed);
            }
            keep = keep.min(cursor);
        }
        if keep > self.buf_start {
            let n = ((keep - self.buf_start) as usize).min(self.buf.len());
            self.buf.drain(..n);
            self.buf_start += n as u64;
        }
    }

    /// Up to `max` stream bytes from `from`; `None` if they were trimmed.
    pub fn read_from(&self, from: u64, max: usize, out: &mut Vec<u8>) -> Option<()> {
        if from < self.buf_start || from > self.offset {
            return None;
        }
        let start = (from - self.buf_start) as usize;
        let end = (start + max).min(self.buf.len());
        let (a, b) = self.buf.as_slices();
        if start < a.len() {
            out.extend_from_slice(&a[start..end.min(a.len())]);
        }
        if end > a.len() {
            out.extend_from_slice(&b[start.saturating_sub(a.len())..end - a.len()]);
        }
        Some(())
    }

    /// A new history (this server became a primary, or a replica of
    /// another one): the old ID stays valid up to the current offset, so
    /// replicas that followed it can continue (PSYNC2).
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, crate::server::random_hex(40));
        self.second_offset = self.offset as i64 + 1;
        self.stream_db = None;
    }

    /// Disconnects every replica (they reconnect and resync).
    pub fn disconnect_replicas(&mut self) {
        for r in self.replicas.drain(..) {
            r.kill();
        }
    }

    /// Starts over at `replid`/`offset`, as after loading a primary's
    /// snapshot.
    pub fn reset_to(&mut self, replid: &str, offset: u64) {
        // A replica keeps a backlog too, so that once promoted its own
        // replicas can continue (Redis creates it at sync time).
        self.activate();
        self.replid = replid.to_string();
        self.replid2 = NULL_REPLID.to_string();
        self.second_offset = -1;
        self.offset = offset;
        self.buf.clear();
        self.buf_start = offset;
        self.stream_db = None;
    }

    pub fn remove_replica(&mut self, link: &Arc<ReplicaLink>) {
        self.replicas.retain(|r| !Arc::ptr_eq(r, link));
    }
}

#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Relaxed)
}

/// A write command that changed the dataset of database `db`; `locked`
/// still holds its shards, so the stored result can be read to propagate
/// the effect rather than the request. Returns the stream offset after
/// it (for WAIT), if it was recorded.
#[inline]
pub fn propagate(srv: &Server, db: usize, args: &Args<'_>, locked: &Locked<'_>) -> Option<u64> {
    if !active() {
        return None;
    }
    propagate_slow(srv, db, args, locked)
}

#[cold]
fn propagate_slow(srv: &Server, db: usize, args: &Args<'_>, locked: &Locked<'_>) -> Option<u64> {
    let effect = effect_of(srv, db, args, locked);
    let in_tx = TX.with(|tx| {
        let mut tx = tx.borrow_mut();
        match tx.as_mut() {
            Some(list) => {
                list.push((
                    db,
                    match &effect {
                        Some(parts) => {
                            let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
                            OwnedArgs::from_slices(&refs)
                        }
                        None => OwnedArgs::from_args(args),
                    },
                ));
                true
            }
            None => false,
        }
    });
    if in_tx {
        return None;
    }
    let mut f = feed();
    match &effect {
        Some(parts) => {
            let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
            f.append_command(Some(db), &refs);
        }
        None => {
            let refs: Vec<&[u8]> = args.iter().collect();
            f.append_command(Some(db), &refs);
        }
    }
    Some(f.offset)
}

fn is_expiry_option(a: &[u8]) -> bool {
    eq_ic(a, "ex") || eq_ic(a, "px") || eq_ic(a, "exat") || eq_ic(a, "pxat")
}

/// The command to send instead of `args`, when the request itself would
/// not reproduce its effect on a replica (relative times, floats).
fn effect_of(
    srv: &Server,
    db: usize,
    args: &Args<'_>,
    locked: &Locked<'_>,
) -> Option<Vec<Vec<u8>>> {
    let name = args.get(0);
    let entry = |key: &[u8]| {
        locked
            .get(srv.store.shard_of(key))
            .and_then(|s| s.dbs.get(db))
            .and_then(|d| d.peek(key))
    };
    let at = |t: u64| t.to_string().into_bytes();
    let set_with_expiry = |key: &[u8], value: &[u8]| -> Vec<Vec<u8>> {
        match entry(key) {
            Some(e) if e.expire_at != 0 => vec![
                b"SET".to_vec(),
                key.to_vec(),
                value.to_vec(),
                b"PXAT".to_vec(),
                at(e.expire_at),
            ],
            Some(_) => vec![b"SET".to_vec(), key.to_vec(), value.to_vec()],
            None => vec![b"DEL".to_vec(), key.to_vec()],
        }
    };
    let expire_effect = |key: &[u8]| -> Vec<Vec<u8>> {
        match entry(key) {
            Some(e) if e.expire_at != 0 => {
                vec![b"PEXPIREAT".to_vec(), key.to_vec(), at(e.expire_at)]
            }
            Some(_) => vec![b"PERSIST".to_vec(), key.to_vec()],
            None => vec![b"DEL".to_vec(), key.to_vec()],
        }
    };
    if eq_ic(name, "set") && args.len() > 3 {
        if args.iter().skip(3).any(is_expiry_option) {
            return Some(set_with_expiry(args.get(1), args.get(2)));
        }
        return None;
    }
    if (eq_ic(name, "setex") || eq_ic(name, "psetex")) && args.len() == 4 {
        return Some(set_with_expiry(args.get(1), args.get(3)));
    }
    if (eq_ic(name, "expire")
        || eq_ic(name, "pexpire")
        || eq_ic(name, "expireat")
        || eq_ic(name, "pexpireat"))
        && args.len() >= 3
    {
        return Some(expire_effect(args.get(1)));
    }
    if eq_ic(name, "getex") && args.len() >= 3 {
        return Some(expire_effect(args.get(1)));
    }
    if eq_ic(name, "migrate") {
        // The keys the target acknowledged were deleted here: replicas
        // delete them too (Redis propagates MIGRATE as DEL). Sent as is, a
        // replica would run the MIGRATE itself, against the target.
        let opts = crate::cluster::migrate::parse(args).ok()?;
        let mut del = vec![b"DEL".to_vec()];
        del.extend(
            opts.keys
                .into_iter()
                .filter(|k| entry(k).is_none())
                .map(<[u8]>::to_vec),
        );
        return Some(del);
    }
    if (eq_ic(name, "restore") || eq_ic(name, "restore-asking")) && args.len() >= 4 {
        // As Redis's restoreCommand: a relative TTL goes out as the
        // absolute time it set, so a replica (or a later replay) that
        // applies it later sets the same expiry.
        let absttl = args.iter().skip(4).any(|a| eq_ic(a, "absttl"));
        return match entry(args.get(1)) {
            Some(e) if e.expire_at != 0 && !absttl => {
                let mut parts: Vec<Vec<u8>> = args.iter().map(<[u8]>::to_vec).collect();
                parts[2] = at(e.expire_at);
                parts.push(b"ABSTTL".to_vec());
                Some(parts)
            }
            Some(_) => None,
            None => Some(vec![b"DEL".to_vec(), args.get(1).to_vec()]),
        };
    }
    if eq_ic(name, "getdel") && args.len() == 2 {
        return Some(vec![b"DEL".to_vec(), args.get(1).to_vec()]);
    }
    if eq_ic(name, "incrbyfloat") && args.len() == 3 {
        let key = args.get(1);
        if let Some(crate::store::EntryRef {
            value: crate::store::ValueRef::Str(v),
            ..
        }) = entry(key)
        {
            return Some(vec![
                b"SET".to_vec(),
                key.to_vec(),
                v.to_vec(),
                b"KEEPTTL".to_vec(),
            ]);
        }
    }
    None
}

/// A key deleted because it expired (lazily or by the active cycle); a
/// primary sends replicas `DEL key` for it.
#[inline]
pub fn propagate_expired(db: usize, key: &[u8]) {
    if active() {
        propagate_del(db, key);
    }
}

/// A key evicted under maxmemory; a primary sends replicas `DEL key`.
#[inline]
pub fn propagate_evicted(db: usize, key: &[u8]) {
    if active() {
        propagate_del(db, key);
    }
}

#[cold]
fn propagate_del(db: usize, key: &[u8]) {
    feed().append_command(Some(db), &[b"DEL", key]);
}

/// A transaction starts: its writes are collected and sent as one
/// MULTI ... EXEC block (only if it wrote anything, as Redis).
#[inline]
pub fn propagate_multi() {
    if active() {
        TX.with(|tx| *tx.borrow_mut() = Some(Vec::new()));
    }
}

/// The transaction ends (its shard locks are still held). Returns the
/// stream offset after it, if it wrote anything.
#[inline]
pub fn propagate_exec() -> Option<u64> {
    let list = TX.with(|tx| tx.borrow_mut().take())?;
    if list.is_empty() {
        return None;
    }
    let mut f = feed();
    f.append_command(Some(list[0].0), &[b"MULTI"]);
    for (db, cmd) in &list {
        let args = cmd.args();
        let refs: Vec<&[u8]> = args.iter().collect();
        f.append_command(Some(*db), &refs);
    }
    f.append_command(None, &[b"EXEC"]);
    Some(f.offset)
}

/// Sent periodically to replicas so they notice a dead primary, and by
/// WAIT to collect acknowledgements.
pub fn feed_ping() {
    if active() {
        let mut f = feed();
        if !f.replicas.is_empty() {
            f.append_command(None, &[b"PING"]);
        }
    }
}

/// Asks every replica for its offset (WAIT).
pub fn request_acks() {
    if active() {
        feed().append_command(None, &[b"REPLCONF", b"GETACK", b"*"]);
    }
}

/// Replicas whose acknowledged offset reached `offset`.
pub fn replicas_acked(offset: u64) -> usize {
    if !active() {
        return 0;
    }
    feed()
        .replicas
        .iter()
        .filter(|r| r.online.load(Relaxed) && r.ack.load(Relaxed) >= offset)
        .count()
}

/// What a connection asked for that the connection loop must carry out
/// after the command (it needs to await, or to take over the socket).
#[derive(Debug)]
pub enum Pending {
    /// PSYNC replid offset, or SYNC (`None`).
    Sync(Option<(String, i64)>),
    /// WAIT numreplicas timeout.
    Wait {
        numreplicas: usize,
        timeout_ms: u64,
        target: u64,
    },
}

/// WAIT: asks replicas for their offsets and waits until `numreplicas`
/// acknowledged `target` or `timeout_ms` passed (0: no limit). Returns
/// how many did.
pub async fn wait_for_acks(numreplicas: usize, timeout_ms: u64, target: u64) -> usize {
    let acked = replicas_acked(target);
    if acked >= numreplicas {
        return acked;
    }
    request_acks();
    let deadline = (timeout_ms > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms));
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let acked = replicas_acked(target);
        if acked >= numreplicas || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return acked;
        }
    }
}

pub fn backlog_size() -> u64 {
    BACKLOG_SIZE.load(Relaxed)
}

/// Once a second: PING replicas every repl-ping-replica-period so they
/// can tell a quiet primary from a dead one.
pub async fn cron(srv: Arc<Server>) {
    let mut ticks = 0u64;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        ticks += 1;
        let period = srv.config.get_int("repl-ping-replica-period").max(1) as u64;
        if ticks.is_multiple_of(period) && !crate::store::replica_mode() {
            feed_ping();
        }
    }
}
