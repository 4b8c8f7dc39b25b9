//! The keyspace: shards of databases of entries.
//!
//! A key lives in shard `slot % nshards`, where `slot` is its Redis Cluster
//! hash slot, so all keys of a slot share a shard. Each shard is behind its
//! own mutex (see `crate::server::Store`); nothing here is shared between
//! threads otherwise.
//!
//! Each database is an open-addressing table (`table.rs`) of 8-byte
//! tagged pointers to compact entries (`entry.rs`: one allocation holding
//! metadata, key and string value), plus a second such table holding the
//! pointers of the entries that have an expiry (for active expiry and the
//! volatile eviction policies). Every insertion and removal goes through
//! `link`, `rebuild_at` and `unlink_at`, which keep both tables and the
//! byte count right.

mod entry;
pub mod slot;
mod slots;
mod table;

use bytes::Bytes;

use crate::memory::alloc_size;
use entry::{Meta, OwnedEntry, View};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use table::Table;

pub type BuildHasher = foldhash::fast::RandomState;

/// An owned value, as commands build it and as `Db::remove` returns it.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Bytes),
    List(Box<VecDeque<Bytes>>),
    Hash(Box<HashMap<Bytes, Bytes, BuildHasher>>),
    Set(Box<HashSet<Bytes, BuildHasher>>),
    ZSet(Box<HashMap<Bytes, f64, BuildHasher>>),
}

/// A stored value, borrowed from its entry.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Str(&'a [u8]),
    List(&'a VecDeque<Bytes>),
    Hash(&'a HashMap<Bytes, Bytes, BuildHasher>),
    Set(&'a HashSet<Bytes, BuildHasher>),
    ZSet(&'a HashMap<Bytes, f64, BuildHasher>),
}

/// A stored value for modification in place: collections change in place;
/// strings are inline in their entry and change through
/// `EntryMut::set_str`, so they are only readable here.
pub enum ValueMut<'a> {
    Str(&'a [u8]),
    List(&'a mut VecDeque<Bytes>),
    Hash(&'a mut HashMap<Bytes, Bytes, BuildHasher>),
    Set(&'a mut HashSet<Bytes, BuildHasher>),
    ZSet(&'a mut HashMap<Bytes, f64, BuildHasher>),
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Str(s) => ValueRef::Str(s),
            Value::List(l) => ValueRef::List(l),
            Value::Hash(h) => ValueRef::Hash(h),
            Value::Set(s) => ValueRef::Set(s),
            Value::ZSet(z) => ValueRef::ZSet(z),
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.as_ref().type_name()
    }

    pub fn encoding(&self) -> &'static str {
        self.as_ref().encoding()
    }

    pub fn mem_size(&self) -> usize {
        self.as_ref().mem_size()
    }
}

impl ValueRef<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Str(_) => "string",
            ValueRef::List(_) => "list",
            ValueRef::Hash(_) => "hash",
            ValueRef::Set(_) => "set",
            ValueRef::ZSet(_) => "zset",
        }
    }

    /// OBJECT ENCODING as Redis would report it for this value.
    pub fn encoding(&self) -> &'static str {
        match self {
            ValueRef::Str(s) => {
                if s.len() <= 20 && crate::util::parse_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            ValueRef::List(_) => "quicklist",
            ValueRef::Hash(_) => "hashtable",
            ValueRef::Set(_) => "hashtable",
            ValueRef::ZSet(_) => "skiplist",
        }
    }

    /// Approximate bytes held by the value, for MEMORY USAGE and for the
    /// accounting of collections (which report their growth through
    /// `EntryMut::grew`).
    pub fn mem_size(&self) -> usize {
        match self {
            ValueRef::Str(s) => s.len(),
            ValueRef::List(l) => l.iter().map(|b| b.len() + 16).sum::<usize>() + 32,
            ValueRef::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>() + 32,
            ValueRef::Set(s) => s.iter().map(|b| b.len() + 24).sum::<usize>() + 32,
            ValueRef::ZSet(z) => z.keys().map(|b| b.len() + 32).sum::<usize>() + 32,
        }
    }
}

/// One key's value and metadata, owned: what commands insert and what
/// `Db::remove` gives back. Stored compactly (see entry.rs), never as is.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 when the key is persistent.
    pub expire_at: u64,
    /// Last access time: Unix ms truncated to 32 bits (the LRU clock).
    /// It wraps every ~49 days; idle times are wrapping differences, which
    /// are right for any key touched within that window.
    pub access: u32,
    /// LFU counter (Redis's logarithmic Morris counter), decayed by time
    /// since `access`; or S3-FIFO's counter and queue bit.
    pub freq: u8,
    /// The string was modified in place (APPEND, SETRANGE): Redis then
    /// reports it as `raw` whatever its length.
    pub raw: bool,
    /// Tag of the last snapshot that serialized this entry, or that was
    /// running (or last ran) when it was created: an entry whose tag is
    /// the running snapshot's is not (or no longer) part of it. 0 or 1,
    /// stored as one flag bit. See replication/snapshot.rs.
    pub snap: u8,
}

/// Tag of the running snapshot, or of the last one (see `Entry::snap`).
/// One bit: every entry carries either this tag or the previous one (a
/// snapshot's walk tags all entries, and snapshots never overlap).
static SNAP_TAG: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[inline]
pub fn snapshot_tag() -> u8 {
    SNAP_TAG.load(Ordering::Relaxed)
}

/// Starts a new snapshot's tag (with every shard locked); returns it.
pub fn next_snapshot_tag() -> u8 {
    let t = (snapshot_tag() + 1) & 1;
    SNAP_TAG.store(t, Ordering::Relaxed);
    t
}

impl Entry {
    #[inline]
    pub fn new(value: Value, expire_at: u64, now_ms: u64) -> Self {
        Entry {
            value,
            expire_at,
            access: lru_clock(now_ms),
            freq: crate::eviction::LFU_INIT_VAL,
            raw: false,
            snap: snapshot_tag(),
        }
    }

    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        expired(self.expire_at, now_ms)
    }

    fn meta(&self) -> Meta {
        Meta {
            expire_at: self.expire_at,
            access: self.access,
            freq: self.freq,
            raw: self.raw,
            snap: self.snap,
        }
    }
}

/// A stored entry, borrowed: its key, value and metadata.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    pub key: &'a [u8],
    pub value: ValueRef<'a>,
    pub expire_at: u64,
    pub access: u32,
    pub freq: u8,
    pub raw: bool,
    /// Snapshot tag (see `Entry::snap`).
    pub snap: u8,
    addr: usize,
}

impl<'a> EntryRef<'a> {
    #[inline]
    fn of(v: View<'a>) -> Self {
        let (key, value, expire_at) = v.parts();
        EntryRef {
            key,
            value,
            expire_at,
            access: v.access(),
            freq: v.freq(),
            raw: v.raw(),
            snap: v.snap(),
            addr: v.addr(),
        }
    }

    /// An owned copy (COPY): strings get their own buffer, collections are
    /// cloned.
    pub fn deep_copy(&self) -> Entry {
        let value = match self.value {
            ValueRef::Str(s) => Value::Str(Bytes::copy_from_slice(s)),
            ValueRef::List(l) => Value::List(Box::new(l.clone())),
            ValueRef::Hash(h) => Value::Hash(Box::new(h.clone())),
            ValueRef::Set(s) => Value::Set(Box::new(s.clone())),
            ValueRef::ZSet(z) => Value::ZSet(Box::new(z.clone())),
        };
        Entry {
            value,
            expire_at: self.expire_at,
            access: self.access,
            freq: self.freq,
            raw: self.raw,
            snap: self.snap,
        }
    }

    /// OBJECT ENCODING of this entry.
    pub fn encoding(&self) -> &'static str {
        match self.value {
            ValueRef::Str(_) if self.raw => "raw",
            ref v => v.encoding(),
        }
    }

    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        expired(self.expire_at, now_ms)
    }

    /// The entry's address (DEBUG OBJECT).
    pub fn addr(&self) -> usize {
        self.addr
    }
}

/// An entry seen by `Db::sample_run`: what eviction ranks it by, read
/// from its header only.
pub struct Sampled<'a> {
    view: View<'a>,
    hasher: &'a BuildHasher,
    ptr: u64,
}

impl Sampled<'_> {
    #[inline]
    pub fn access(&self) -> u32 {
        self.view.access()
    }

    #[inline]
    pub fn freq(&self) -> u8 {
        self.view.freq()
    }

    #[inline]
    pub fn expire_at(&self) -> u64 {
        self.view.expire_at()
    }

    /// The entry's address (what `SampleId::addr` will say).
    #[inline]
    pub fn id_addr(&self) -> u64 {
        self.ptr
    }

    /// What finds the entry again (`Db::evict_sampled`): its key's hash
    /// and its address. Hashes the key, so ask only for a candidate kept.
    pub fn id(&self) -> SampleId {
        SampleId {
            hash: key_hash(self.hasher, self.view.key()),
            ptr: self.ptr,
        }
    }
}

/// A sampled entry's key hash and address (see `Sampled::id`): no copy of
/// the key, and nothing that is ever dereferenced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleId {
    hash: u64,
    ptr: u64,
}

impl SampleId {
    /// The entry's address when it was sampled.
    pub fn addr(&self) -> u64 {
        self.ptr
    }

    #[cfg(test)]
    pub fn new(hash: u64, ptr: u64) -> Self {
        SampleId { hash, ptr }
    }
}

#[inline]
fn expired(expire_at: u64, now_ms: u64) -> bool {
    expire_at != 0 && expire_at < now_ms
}

#[inline]
pub fn lru_clock(now_ms: u64) -> u32 {
    now_ms as u32
}

/// Milliseconds since `access` (see `Entry::access`).
#[inline]
pub fn idle_ms(access: u32, now_ms: u64) -> u64 {
    lru_clock(now_ms).wrapping_sub(access) as u64
}

/// Bytes one entry holds: its allocation's size class, plus, for a
/// collection, its estimated heap (kept in step by `EntryMut::grew`).
#[inline]
fn entry_cost(v: View) -> usize {
    let own = alloc_size(v.size());
    if v.is_str() {
        own
    } else {
        own + v.value().mem_size()
    }
}

/// The expiry index hashes entry pointers (splitmix64's finalizer: the
/// table needs good high bits for homes and low bits for tags).
#[inline]
fn ptr_hash(p: u64) -> u64 {
    let mut z = p;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn key_hash(hasher: &BuildHasher, key: &[u8]) -> u64 {
    hasher.hash_one(key)
}

/// The hash of the stored entry `bits` (for the table's resizes).
///
/// # Safety
/// `bits` must be a live entry of the table being resized.
#[inline]
unsafe fn stored_hash(hasher: &BuildHasher, bits: u64) -> u64 {
    key_hash(hasher, unsafe { entry::view(bits) }.key())
}

/// Mutable access to a stored entry. Collections change in place and
/// report their growth with `grew`; strings are replaced with `set_str` /
/// `set_value`, which re-encode the entry (and keep the byte count and
/// both tables right). The key and expiry cannot change through it.
pub struct EntryMut<'a> {
    db: &'a mut Db,
    pos: usize,
}

impl EntryMut<'_> {
    pub fn entry(&self) -> EntryRef<'_> {
        self.db.entry_at(self.pos)
    }

    /// The value, for changes in place (collections only; see `ValueMut`).
    pub fn value_mut(&mut self) -> ValueMut<'_> {
        let bits = self.db.table.get(self.pos);
        // SAFETY: `bits` is live in this Db, which we borrow mutably for
        // the returned lifetime, so nothing else views or frees it.
        let vm = unsafe { entry::view_mut(bits) };
        if let ValueRef::Str(s) = vm.view().value() {
            // SAFETY: as above; the string lives as long as the entry.
            let s: &[u8] = unsafe { std::slice::from_raw_parts(s.as_ptr(), s.len()) };
            return ValueMut::Str(s);
        }
        match vm.coll_mut() {
            Some(v) => v,
            None => ValueMut::Str(&[]),
        }
    }

    /// Replaces the value (INCR, INCRBYFLOAT), which resets the string's
    /// in-place-modified marker.
    pub fn set_value(&mut self, v: Value) {
        match v {
            Value::Str(s) => self.set_str(&s, false),
            other => {
                self.db.rebuild_at(self.pos, |old| {
                    let meta = old.view().meta();
                    OwnedEntry::new(old.view().key(), other, &meta)
                });
            }
        }
    }

    /// Replaces a string value; `raw` records a change in place (APPEND,
    /// SETRANGE), which Redis reports as the `raw` encoding.
    pub fn set_str(&mut self, s: &[u8], raw: bool) {
        self.db.rebuild_at(self.pos, |old| old.with_str(s, raw));
    }

    /// A collection grew by about `bytes`.
    pub fn grew(&mut self, bytes: usize) {
        self.db.mem += bytes;
    }
}

/// Counters kept per database, summed for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    /// Keys evicted (INFO's evicted_keys is the sum): counted here, under
    /// the shard's lock, rather than in a counter every thread updates.
    pub evicted: u64,
}

/// One logical database's slice of a shard.
#[derive(Default)]
pub struct Db {
    /// Every entry, by key hash. Slots own their entries (entry.rs,
    /// invariant 1): only `link`, `rebuild_at`, `unlink_at` and `clear`
    /// put them in or take them out.
    table: Table,
    /// The entries with an expiry, by pointer (the same allocations as in
    /// `table`, not owned).
    volatile: Table,
    hasher: BuildHasher,
    pub stats: DbStats,
    /// Bytes of the entries (`entry_cost` summed), kept exact on every
    /// change; the tables' arrays are added by `mem_total`.
    mem: usize,
    /// WATCHed keys: key → the watching clients' dirty flags. Weak, so a
    /// client that unwatches or disconnects just drops its flag; dead
    /// entries are pruned when met.
    watched: HashMap<Bytes, Vec<Weak<AtomicBool>>, BuildHasher>,
    /// S3-FIFO queues, while that policy is in use.
    s3: Option<Box<S3State>>,
    /// (both arrays' slot counts, their bytes): see `tables_bytes`.
    tables_cache: std::cell::Cell<((usize, usize), usize)>,
    /// This database's number, so deletions by expiry can be propagated
    /// with it.
    pub id: usize,
    /// Where the next two `sample_run` calls start, chosen ahead so that
    /// their memory is requested early (see `sample_run`).
    runs_ahead: [Option<usize>; 2],
}

/// Set while this server is a replica: expired keys are then hidden from
/// reads but never deleted, since only the primary's DEL removes them (as
/// Redis 7 replicas behave).
static HIDE_EXPIRED: AtomicBool = AtomicBool::new(false);

/// Bumped whenever a database that held nothing (no table array) takes a
/// key, and by SWAPDB: until it moves, `Shard::refresh_mem` need only
/// measure the databases that held something at its last full pass.
/// Written rarely, so reading it costs a cached load.
static DBS_FILLED: AtomicU64 = AtomicU64::new(0);

pub fn set_replica_mode(on: bool) {
    HIDE_EXPIRED.store(on, Ordering::Relaxed);
}

#[inline]
pub fn replica_mode() -> bool {
    HIDE_EXPIRED.load(Ordering::Relaxed)
}

impl Drop for Db {
    fn drop(&mut self) {
        self.free_entries();
    }
}

/// S3-FIFO's small queue (exact FIFO of key copies) and ghost (key
/// fingerprints of keys recently evicted from it). See eviction.rs.
#[derive(Default)]
pub struct S3State {
    small: VecDeque<Bytes>,
    ghost: Vec<u32>,
    /// Bytes held by the queue's keys and the ghost table.
    bytes: usize,
}

impl S3State {
    fn key_cost(key: &[u8]) -> usize {
        alloc_size(key.len()) + std::mem::size_of::<Bytes>()
    }

    fn fingerprint(key: &[u8]) -> (usize, u32) {
        let h = foldhash::fast::FixedState::with_seed(0x5353_4649_464f).hash_one(key);
        (h as usize, ((h >> 32) as u32) | 1)
    }

    fn ghost_contains(&self, key: &[u8]) -> bool {
        if self.ghost.is_empty() {
            return false;
        }
        let (h, fp) = Self::fingerprint(key);
        self.ghost[h & (self.ghost.len() - 1)] == fp
    }

    /// Remembers a key evicted from the small queue. The table holds about
    /// as many fingerprints as the database holds keys (S3-FIFO sizes its
    /// ghost queue like the main queue); a newer key overwrites an older
    /// one in its slot, which approximates the ghost FIFO.
    fn ghost_insert(&mut self, key: &[u8], keys: usize) {
        let want = keys.max(1024).next_power_of_two();
        if self.ghost.len() < want / 2 || self.ghost.is_empty() {
            self.bytes -= self.ghost.len() * 4;
            self.ghost = vec![0; want];
            self.bytes += want * 4;
        }
        let (h, fp) = Self::fingerprint(key);
        let len = self.ghost.len();
        self.ghost[h & (len - 1)] = fp;
    }
}

impl Db {
    pub fn watch(&mut self, key: &[u8], flag: &Arc<AtomicBool>) {
        let list = self.watched.entry(Bytes::copy_from_slice(key)).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(flag));
    }

    /// Marks every client watching `key` dirty. Free when nothing is
    /// watched.
    #[inline]
    pub fn touch_watched(&mut self, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        if let Some(list) = self.watched.remove(key) {
            for w in list {
                if let Some(flag) = w.upgrade() {
                    flag.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.volatile.len()
    }

    /// Bytes this database holds: entries plus both tables' arrays.
    pub fn mem_total(&self) -> usize {
        let s3 = self.s3.as_ref().map_or(0, |s| s.bytes);
        s3 + self.mem + self.tables_bytes()
    }

    /// Bytes of both tables' arrays. Asked after every write, so the size
    /// is cached until an array's size changes.
    fn tables_bytes(&self) -> usize {
        let counts = self.slot_counts();
        let (cached, bytes) = self.tables_cache.get();
        if cached == counts {
            return bytes;
        }
        let bytes = self.table.bytes() + self.volatile.bytes();
        self.tables_cache.set((counts, bytes));
        bytes
    }

    /// Bytes `key` costs (MEMORY USAGE): its entry plus its slot in each
    /// table it is in.
    pub fn key_mem(&self, key: &[u8]) -> Option<usize> {
        let pos = self.find(key)?;
        // SAFETY: a live slot of this Db, viewed while `self` is borrowed.
        let v = unsafe { entry::view(self.table.get(pos)) };
        let slots = if v.expire_at() != 0 { 16 } else { 8 };
        Some(entry_cost(v) + slots)
    }

    /// The position of `key` in the main table.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        let h = key_hash(&self.hasher, key);
        // SAFETY: the table only holds live entries of this Db.
        self.table
            .find(h, |bits| unsafe { entry::view(bits) }.key() == key)
    }

    #[inline]
    fn entry_at(&self, pos: usize) -> EntryRef<'_> {
        // SAFETY: a live slot, viewed for as long as `self` is borrowed
        // (nothing frees or moves entries through a shared borrow).
        EntryRef::of(unsafe { entry::view(self.table.get(pos)) })
    }

    #[inline]
    fn expire_at_of(&self, pos: usize) -> u64 {
        // SAFETY: as in `entry_at`.
        unsafe { entry::view(self.table.get(pos)) }.expire_at()
    }

    /// The entry at `pos` if it is live; an expired one is deleted there
    /// and then (lazy expiry). Decodes the entry once.
    #[inline]
    fn live_at(&mut self, pos: usize, now_ms: u64) -> Option<EntryRef<'_>> {
        // SAFETY: a live slot. The view's lifetime is not tied to `self`
        // here, so it is only used before `expire_at_pos` frees the entry
        // or returned under `self`'s borrow (the function's signature).
        let e = EntryRef::of(unsafe { entry::view(self.table.get(pos)) });
        if e.is_expired(now_ms) {
            self.expire_at_pos(pos);
            return None;
        }
        Some(e)
    }

    /// The position of a live `key`, deleting it first if it has expired
    /// (lazy expiry).
    #[inline]
    fn find_live(&mut self, key: &[u8], now_ms: u64) -> Option<usize> {
        let pos = self.find(key)?;
        self.live_at(pos, now_ms)?;
        Some(pos)
    }

    /// Looks a key up, deleting it first if it has expired (lazy expiry).
    #[inline]
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<EntryRef<'_>> {
        let pos = self.find(key)?;
        self.live_at(pos, now_ms)
    }

    /// `get` for modification in place (see `EntryMut`).
    #[inline]
    pub fn get_mut(&mut self, key: &[u8], now_ms: u64) -> Option<EntryMut<'_>> {
        let pos = self.find_live(key, now_ms)?;
        // SAFETY: live slot, exclusively borrowed through `self`.
        unsafe { entry::view_mut(self.table.get(pos)) }.set_access(lru_clock(now_ms));
        Some(EntryMut { db: self, pos })
    }

    /// Lookup for read commands: counts keyspace hits and misses and
    /// refreshes the LRU clock, as Redis's lookupKeyRead.
    #[inline]
    pub fn get_read(&mut self, key: &[u8], now_ms: u64) -> Option<EntryRef<'_>> {
        self.lookup_read(key, now_ms, true)
    }

    /// `get_read` with the LRU refresh optional (Redis's LOOKUP_NOTOUCH,
    /// used by EXISTS, TYPE, TTL...).
    #[inline]
    pub fn lookup_read(&mut self, key: &[u8], now_ms: u64, touch: bool) -> Option<EntryRef<'_>> {
        let Some(pos) = self.find(key) else {
            self.stats.misses += 1;
            return None;
        };
        let bits = self.table.get(pos);
        // SAFETY: a live slot; the view is not tied to `self`, so it is
        // only used before `expire_at_pos` frees the entry, or returned
        // under `self`'s borrow.
        let mut e = EntryRef::of(unsafe { entry::view(bits) });
        if e.is_expired(now_ms) {
            self.expire_at_pos(pos);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        if touch {
            crate::eviction::on_access(&mut e.access, &mut e.freq, now_ms);
            // SAFETY: live slot, exclusively borrowed through `self`.
            let mut vm = unsafe { entry::view_mut(bits) };
            vm.set_access(e.access);
            vm.set_freq(e.freq);
        }
        Some(e)
    }

    /// Whether the key is present (expired or not) without modifying
    /// anything.
    pub fn has_key(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Whether the key exists (after lazy expiry), without touching stats.
    #[inline]
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.find_live(key, now_ms).is_some()
    }

    fn expire_at_pos(&mut self, pos: usize) {
        if replica_mode() {
            return;
        }
        let e = self.unlink_at(pos);
        self.stats.expired += 1;
        crate::replication::propagate_expired(self.id, e.view().key());
    }

    // ---------------------------------------------------------------
    // The only functions that put entries into the tables or take them
    // out (hooks such as per-slot key tracking attach here).

    /// Adds an entry whose key is absent (`h`: its key's hash).
    fn link(&mut self, h: u64, e: OwnedEntry) {
        self.note_array_appears();
        let v = e.view();
        self.mem += entry_cost(v);
        let has_ttl = v.expire_at() != 0;
        let bits = e.into_raw();
        let hasher = &self.hasher;
        // SAFETY: the table holds live entries of this Db only.
        self.table
            .insert(h, bits, |b| unsafe { stored_hash(hasher, b) });
        if has_ttl {
            self.volatile.insert(ptr_hash(bits), bits, ptr_hash);
        }
    }

    /// Moves `budget` slots (on to the next empty one) of each table's
    /// resize in progress: the cron's share, as Redis's activerehashing.
    pub fn continue_moves(&mut self, budget: usize) {
        let hasher = &self.hasher;
        // SAFETY: the table holds live entries of this Db only.
        self.table
            .continue_move(budget, |b| unsafe { stored_hash(hasher, b) });
        self.volatile.continue_move(budget, ptr_hash);
    }

    /// Sizes both tables to hold `keys` keys in all, `volatile` of them
    /// with an expiry, before a bulk load (a full sync, a restart from the
    /// RDB), as Redis sizes its dicts from the RDB's RESIZEDB. Tables that
    /// already have the room are left as they are.
    pub fn reserve_for(&mut self, keys: usize, volatile: usize) {
        if keys <= self.table.len() {
            return;
        }
        self.note_array_appears();
        let hasher = &self.hasher;
        // SAFETY: the table holds live entries of this Db only.
        self.table.reserve(keys - self.table.len(), |b| unsafe {
            stored_hash(hasher, b)
        });
        self.volatile
            .reserve(volatile.saturating_sub(self.volatile.len()), ptr_hash);
    }

    /// Before the key table gets its first array: from then on
    /// `Shard::refresh_mem` must measure this database. Visible to a
    /// refresh under this shard's lock (the lock orders it), and to this
    /// thread's own.
    #[inline]
    fn note_array_appears(&self) {
        if self.table.slot_count() == 0 {
            DBS_FILLED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Slots in the key table's and the expiry index's arrays.
    pub fn slot_counts(&self) -> (usize, usize) {
        (self.table.slot_count(), self.volatile.slot_count())
    }

    /// Replaces the entry at `pos` by what `f` makes of it (same key).
    fn rebuild_at(&mut self, pos: usize, f: impl FnOnce(OwnedEntry) -> OwnedEntry) {
        let old_bits = self.table.get(pos);
        // SAFETY: a live slot; ownership moves to `old` and the slot is
        // overwritten below before anything reads it.
        let old = unsafe { OwnedEntry::from_raw(old_bits) };
        let old_cost = entry_cost(old.view());
        let old_ttl = old.view().expire_at() != 0;
        let new = f(old);
        let new_cost = entry_cost(new.view());
        let new_ttl = new.view().expire_at() != 0;
        let new_bits = new.into_raw();
        self.table.set_ptr(pos, new_bits);
        self.mem = (self.mem + new_cost).saturating_sub(old_cost);
        if old_ttl {
            self.volatile_remove(old_bits);
        }
        if new_ttl {
            self.volatile.insert(ptr_hash(new_bits), new_bits, ptr_hash);
        }
    }

    /// Takes the entry at `pos` out of both tables.
    fn unlink_at(&mut self, pos: usize) -> OwnedEntry {
        let hasher = &self.hasher;
        // SAFETY: resizing rehashes the live entries left in the table.
        let bits = self
            .table
            .remove_at(pos, |b| unsafe { stored_hash(hasher, b) });
        // SAFETY: removed from the table just now: we own it.
        let e = unsafe { OwnedEntry::from_raw(bits) };
        self.mem = self.mem.saturating_sub(entry_cost(e.view()));
        if e.view().expire_at() != 0 {
            self.volatile_remove(bits);
        }
        e
    }

    fn volatile_remove(&mut self, bits: u64) {
        if let Some(vpos) = self.volatile.find(ptr_hash(bits), |b| b == bits) {
            self.volatile.remove_at(vpos, ptr_hash);
        }
    }

    fn free_entries(&mut self) {
        self.volatile = Table::default();
        for bits in self.table.drain() {
            // SAFETY: drained from the table: owned, and dropped once.
            drop(unsafe { OwnedEntry::from_raw(bits) });
        }
        self.mem = 0;
    }

    // ---------------------------------------------------------------

    /// Inserts or replaces a key. Replacing keeps nothing of the old entry
    /// (but its LFU history, see `insert_with`).
    #[inline]
    pub fn insert(&mut self, key: &[u8], entry: Entry) {
        let meta = entry.meta();
        let value = entry.value;
        self.insert_with(key, meta, None, |key, meta| {
            OwnedEntry::new(key, value, meta)
        });
    }

    /// Inserts or replaces a string, copying `value` straight into the new
    /// entry (SET's path: no intermediate buffer).
    #[inline]
    pub fn insert_str(&mut self, key: &[u8], value: &[u8], expire_at: u64, now_ms: u64) {
        let meta = Meta {
            expire_at,
            access: lru_clock(now_ms),
            freq: crate::eviction::LFU_INIT_VAL,
            raw: false,
            snap: snapshot_tag(),
        };
        self.insert_with(key, meta, Some(value), |key, meta| {
            OwnedEntry::new_str(key, value, meta)
        });
    }

    /// Inserts or replaces. An existing string entry whose layout would
    /// not change (same value length, expiry present or absent alike) is
    /// rewritten in place with `in_place`, without allocating: the common
    /// SET over an existing key.
    #[inline]
    fn insert_with(
        &mut self,
        key: &[u8],
        mut meta: Meta,
        in_place: Option<&[u8]>,
        make: impl FnOnce(&[u8], &Meta) -> OwnedEntry,
    ) {
        let h = key_hash(&self.hasher, key);
        // SAFETY: the table only holds live entries of this Db.
        let found = self
            .table
            .find(h, |bits| unsafe { entry::view(bits) }.key() == key);
        match found {
            Some(pos) => {
                // SAFETY: live slot, exclusively borrowed through `self`.
                let mut vm = unsafe { entry::view_mut(self.table.get(pos)) };
                if crate::eviction::keeps_history() {
                    // An overwrite is an access to the key, not a new key
                    // (Redis keeps the LFU counter in dbOverwrite).
                    let now = meta.access as u64;
                    meta.freq = vm.view().freq();
                    meta.access = vm.view().access();
                    crate::eviction::on_access(&mut meta.access, &mut meta.freq, now);
                }
                if in_place.is_some_and(|v| vm.overwrite_str(v, &meta)) {
                    return;
                }
                self.rebuild_at(pos, |old| {
                    drop(old);
                    make(key, &meta)
                });
            }
            None => {
                self.avoid_growth_past_maxmemory(meta.access);
                if crate::eviction::policy() == crate::eviction::Policy::AllKeysS3Fifo {
                    self.s3_admit(key, &mut meta.freq);
                } else if self.s3.is_some() {
                    self.s3 = None;
                }
                let e = make(key, &meta);
                self.link(h, e);
            }
        }
    }

    /// The table is full and about to grow. Under memory pressure that
    /// jump alone could take usage far past maxmemory (a resize costs
    /// megabytes at once), so, as Redis refuses to expand its dict then
    /// (dictExpandAllowed), evict one key of this database instead and
    /// reuse its slot.
    fn avoid_growth_past_maxmemory(&mut self, clock: u32) {
        if self.table.is_empty() || !self.table.full() {
            return;
        }
        let growth = self.table.growth_bytes();
        if crate::eviction::growth_allowed(growth) {
            return;
        }
        if let Some(victim) = crate::eviction::local_victim(self, clock as u64) {
            let id = self.id;
            self.evict(&victim, |key| {
                crate::replication::propagate_evicted(id, key)
            });
        }
    }

    /// S3-FIFO admission: a key the ghost remembers goes to the main
    /// queue, any other to the small queue.
    fn s3_admit(&mut self, key: &[u8], freq: &mut u8) {
        let s3 = self.s3.get_or_insert_default();
        if s3.ghost_contains(key) {
            *freq = crate::eviction::S3_MAIN;
        } else {
            *freq = 0;
            s3.bytes += S3State::key_cost(key);
            s3.small.push_back(Bytes::copy_from_slice(key));
        }
    }

    /// Chooses the key S3-FIFO evicts next (see eviction.rs), promoting
    /// and reinserting keys on the way. Bounded by `max_rounds` second
    /// chances.
    pub fn s3fifo_victim(
        &mut self,
        rng: &mut Rng,
        samples: usize,
        now_ms: u64,
        max_rounds: usize,
    ) -> Option<Bytes> {
        use crate::eviction::S3_MAIN;
        let keys = self.len();
        if keys == 0 {
            return None;
        }
        let small_target = (keys / 10).max(1);
        for _ in 0..max_rounds {
            let s3 = self.s3.get_or_insert_default();
            if s3.small.len() >= small_target {
                let Some(k) = s3.small.pop_front() else {
                    continue;
                };
                s3.bytes -= S3State::key_cost(&k);
                let Some(pos) = self.find(&k) else {
                    continue; // deleted since it was queued
                };
                // SAFETY: live slot, exclusively borrowed through `self`.
                let mut vm = unsafe { entry::view_mut(self.table.get(pos)) };
                let freq = vm.view().freq();
                if freq & S3_MAIN != 0 {
                    continue;
                }
                if freq & 3 >= 1 {
                    vm.set_freq(S3_MAIN);
                    vm.set_access(lru_clock(now_ms));
                    continue;
                }
                if let Some(s3) = self.s3.as_mut() {
                    s3.ghost_insert(&k, keys);
                }
                return Some(k);
            }
            // Main queue: the sampled key that entered its queue first is
            // its tail.
            let mut oldest: Option<(u64, usize)> = None;
            for _ in 0..samples {
                let pos = self.table.random_pos(rng)?;
                let idle = idle_ms(self.entry_at(pos).access, now_ms);
                if oldest.is_none_or(|(o, _)| idle > o) {
                    oldest = Some((idle, pos));
                }
            }
            let (_, pos) = oldest?;
            // SAFETY: live slot, exclusively borrowed through `self`.
            let mut vm = unsafe { entry::view_mut(self.table.get(pos)) };
            let freq = vm.view().freq();
            if freq & 3 > 0 {
                vm.set_freq((freq & S3_MAIN) | ((freq & 3) - 1));
                vm.set_access(lru_clock(now_ms));
                continue;
            }
            return Some(Bytes::copy_from_slice(self.entry_at(pos).key));
        }
        let pos = self.table.random_pos(rng)?;
        Some(Bytes::copy_from_slice(self.entry_at(pos).key))
    }

    /// Changes the expiry of an existing key; returns false if absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) -> bool {
        let Some(pos) = self.find(key) else {
            return false;
        };
        let current = self.expire_at_of(pos);
        if current == expire_at {
            return true;
        }
        // SAFETY: live slot, exclusively borrowed through `self`.
        if unsafe { entry::view_mut(self.table.get(pos)) }.replace_expire(expire_at) {
            return true;
        }
        self.rebuild_at(pos, |old| old.with_expire(expire_at));
        true
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let pos = self.find(key)?;
        let (value, meta) = self.unlink_at(pos).into_parts();
        Some(Entry {
            value,
            expire_at: meta.expire_at,
            access: meta.access,
            freq: meta.freq,
            raw: meta.raw,
            snap: meta.snap,
        })
    }

    /// Deletes a key that has not expired; returns whether it existed.
    /// On a replica (where only the primary's DEL removes expired keys)
    /// an expired key is deleted too.
    pub fn delete(&mut self, key: &[u8], now_ms: u64) -> bool {
        if replica_mode() {
            return self.remove(key).is_some();
        }
        match self.find_live(key, now_ms) {
            Some(pos) => {
                drop(self.unlink_at(pos));
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) {
        self.free_entries();
        self.s3 = None;
    }

    /// The entry, expired or not, changing nothing (not even the LRU clock).
    pub fn peek(&self, key: &[u8]) -> Option<EntryRef<'_>> {
        self.find(key).map(|pos| self.entry_at(pos))
    }

    /// A random entry, from all keys or only those with a TTL.
    pub fn sample(&self, rng: &mut Rng, volatile: bool) -> Option<EntryRef<'_>> {
        if volatile {
            let vpos = self.volatile.random_pos(rng)?;
            // SAFETY: the expiry index holds live entries of this Db.
            Some(EntryRef::of(unsafe {
                entry::view(self.volatile.get(vpos))
            }))
        } else {
            let pos = self.table.random_pos(rng)?;
            Some(self.entry_at(pos))
        }
    }

    /// Calls `visit` with up to `n` entries of the keyspace, or of the
    /// keys with a TTL, from a run of adjacent slots at a random position
    /// (`Table::sample_run_at`, as Redis's dictGetSomeKeys). Returns how many
    /// it visited (0 when there is nothing to sample).
    ///
    /// The memory a sample reads is requested ahead: all the entries'
    /// headers of a run before the first is read, and, for the next two
    /// calls on this database, their positions are chosen now: the slots
    /// of the one after next are prefetched, the entries of the next one
    /// too. By the next eviction here they are in the cache, and the
    /// misses a sample would wait for overlap with other work.
    pub fn sample_run(
        &mut self,
        rng: &mut Rng,
        volatile: bool,
        n: usize,
        mut visit: impl FnMut(Sampled<'_>),
    ) -> usize {
        let planned = self.runs_ahead[0].take();
        let table = if volatile {
            &self.volatile
        } else {
            &self.table
        };
        let mut done = 0;
        // Runs of up to 16: more samples take several runs.
        while done < n {
            let mut ptrs = [0u64; 16];
            let want = (n - done).min(ptrs.len());
            let start = match planned {
                Some(p) if done == 0 => p,
                _ => table.run_start(rng),
            };
            let got = table.sample_run_at(start, rng, &mut ptrs[..want]);
            if got == 0 {
                break;
            }
            for &p in &ptrs[..got] {
                entry::prefetch(p);
            }
            for &ptr in &ptrs[..got] {
                visit(Sampled {
                    // SAFETY: both tables hold live entries of this Db,
                    // which stay live while `self` is borrowed.
                    view: unsafe { entry::view(ptr) },
                    hasher: &self.hasher,
                    ptr,
                });
            }
            done += got;
            if got < want {
                break;
            }
        }
        if done > 0 {
            // The next run: its slots were requested by the previous
            // call; request its entries. The one after: its slots.
            let next = self.runs_ahead[1].unwrap_or_else(|| table.run_start(rng));
            let mut ptrs = [0u64; 16];
            let got = table.sample_run_at(next, rng, &mut ptrs[..n.clamp(1, 16)]);
            for &p in &ptrs[..got] {
                entry::prefetch(p);
            }
            let after = table.run_start(rng);
            table.prefetch_run(after);
            self.runs_ahead = [Some(next), Some(after)];
        }
        done
    }

    /// Evicts the entry `Sampled::id` named when it was sampled, if it is
    /// still stored (and, when `volatile`, still has a TTL); `on_key` sees
    /// its key before it is freed. Finding it compares table slots only
    /// (hash, then pointer): an entry deleted since, or rebuilt at another
    /// address, is not found, and no stale pointer is ever read. Returns
    /// the bytes `mem_total` went down by, if it evicted.
    pub fn evict_sampled(
        &mut self,
        id: SampleId,
        volatile: bool,
        on_key: impl FnOnce(&[u8]),
    ) -> Option<usize> {
        let pos = self.table.find(id.hash, |bits| bits == id.ptr)?;
        if volatile && self.expire_at_of(pos) == 0 {
            return None;
        }
        Some(self.evict_at(pos, on_key))
    }

    /// Evicts `key`, expired or not, if it is stored (see
    /// `evict_sampled`).
    pub fn evict(&mut self, key: &[u8], on_key: impl FnOnce(&[u8])) -> Option<usize> {
        let pos = self.find(key)?;
        Some(self.evict_at(pos, on_key))
    }

    /// Unlinks and frees the entry at `pos` (no decoding into a `Value`),
    /// tells its watchers and `on_key`; returns what `mem_total` lost.
    fn evict_at(&mut self, pos: usize, on_key: impl FnOnce(&[u8])) -> usize {
        let before = self.mem_total();
        let e = self.unlink_at(pos);
        self.stats.evicted += 1;
        let key = e.view().key();
        self.touch_watched(key);
        on_key(key);
        drop(e);
        before.saturating_sub(self.mem_total())
    }

    /// A copy of a random key (see `sample`).
    pub fn sample_key(&self, rng: &mut Rng, volatile: bool) -> Option<Bytes> {
        self.sample(rng, volatile)
            .map(|e| Bytes::copy_from_slice(e.key))
    }

    /// A random live key, deleting expired keys it meets (as Redis's
    /// RANDOMKEY does), bounded in tries.
    pub fn random_key(&mut self, rng: &mut Rng, now_ms: u64) -> Option<Bytes> {
        for _ in 0..100 {
            let pos = self.table.random_pos(rng)?;
            if expired(self.expire_at_of(pos), now_ms) {
                if replica_mode() {
                    continue;
                }
                self.expire_at_pos(pos);
                continue;
            }
            return Some(Bytes::copy_from_slice(self.entry_at(pos).key));
        }
        None
    }

    /// One round of active expiry sampling: looks at up to `samples`
    /// random keys with a TTL and deletes the expired ones. Returns
    /// (sampled, expired).
    pub fn expire_sample(&mut self, rng: &mut Rng, samples: usize, now_ms: u64) -> (usize, usize) {
        let mut sampled = 0;
        let mut expired_n = 0;
        for _ in 0..samples {
            let Some(vpos) = self.volatile.random_pos(rng) else {
                break;
            };
            sampled += 1;
            let bits = self.volatile.get(vpos);
            // SAFETY: the expiry index holds live entries of this Db.
            let v = unsafe { entry::view(bits) };
            if !expired(v.expire_at(), now_ms) {
                continue;
            }
            let h = key_hash(&self.hasher, v.key());
            match self.table.find(h, |b| b == bits) {
                Some(pos) => {
                    self.expire_at_pos(pos);
                    expired_n += 1;
                }
                // Cannot happen (the index ⊆ the table); heal, not loop.
                None => {
                    self.volatile.remove_at(vpos, ptr_hash);
                }
            }
        }
        (sampled, expired_n)
    }

    /// One SCAN step over this table. `cursor` is a 54-bit hash position
    /// (0 to start; see table.rs): it stays valid across resizes, and a key
    /// present for the whole scan is returned exactly once. Returns the
    /// next cursor (0 when done) and the number of slots walked, which is
    /// what COUNT bounds.
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        now_ms: u64,
        mut visit: impl FnMut(EntryRef<'_>),
    ) -> (u64, usize) {
        let hasher = &self.hasher;
        self.table.scan_step(
            cursor,
            count,
            // SAFETY: the table holds live entries of this Db.
            |b| unsafe { stored_hash(hasher, b) },
            |b| {
                // SAFETY: as above, viewed within this call.
                let e = EntryRef::of(unsafe { entry::view(b) });
                if !e.is_expired(now_ms) {
                    visit(e);
                }
            },
        )
    }

    /// Whether `key` has an entry (expired or not) that the snapshot
    /// tagged `tag` has not serialized yet.
    pub fn snapshot_pending(&self, key: &[u8], tag: u8) -> bool {
        self.peek(key).is_some_and(|e| e.snap != tag)
    }

    /// The entry of `key` (expired or not) if the snapshot tagged `tag`
    /// has not serialized it yet, tagging it as serialized now (the tag is
    /// a flag bit: no accounting).
    pub fn snapshot_take(&mut self, key: &[u8], tag: u8) -> Option<EntryRef<'_>> {
        let pos = self.find(key)?;
        // SAFETY: live slot, exclusively borrowed through `self`.
        let mut vm = unsafe { entry::view_mut(self.table.get(pos)) };
        if vm.view().snap() == tag {
            return None;
        }
        vm.set_snap(tag);
        Some(self.entry_at(pos))
    }

    /// One step of a snapshot's walk: like `scan` (the cursor is a hash
    /// position, valid across resizes, 0 to start and 0 when done, so
    /// every entry present at the snapshot's start is reached whatever
    /// the table does between steps), passing `visit` each entry, expired
    /// or not, that the snapshot tagged `tag` has not serialized yet, and
    /// tagging it. Returns the next cursor and the slots walked.
    pub fn snapshot_walk(
        &mut self,
        cursor: u64,
        budget: usize,
        tag: u8,
        mut visit: impl FnMut(EntryRef<'_>),
    ) -> (u64, usize) {
        let hasher = &self.hasher;
        self.table.scan_step(
            cursor,
            budget,
            // SAFETY: the table holds live entries of this Db.
            |b| unsafe { stored_hash(hasher, b) },
            |b| {
                // SAFETY: a live entry of this Db, which `&mut self`
                // gives us exclusive access to; the flag write does not
                // touch the key or value the view lends out.
                let mut vm = unsafe { entry::view_mut(b) };
                if vm.view().snap() != tag {
                    vm.set_snap(tag);
                    visit(EntryRef::of(unsafe { entry::view(b) }));
                }
            },
        )
    }

    /// Iterates live keys (in table order).
    pub fn iter(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], EntryRef<'_>)> {
        self.table
            .positions()
            .map(|pos| self.entry_at(pos))
            .filter(move |e| !e.is_expired(now_ms))
            .map(|e| (e.key, e))
    }

    /// Sum of remaining TTLs in ms over (up to 1024) keys with an expiry,
    /// and how many.
    pub fn ttl_sum(&self, now_ms: u64) -> (u128, usize) {
        let mut sum = 0u128;
        let mut n = 0usize;
        for vpos in self.volatile.positions().take(1024) {
            // SAFETY: the expiry index holds live entries of this Db.
            let at = unsafe { entry::view(self.volatile.get(vpos)) }.expire_at();
            sum += at.saturating_sub(now_ms) as u128;
            n += 1;
        }
        (sum, n)
    }
}

/// xorshift64*: sampling needs speed, not cryptographic quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..n (n > 0).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// One shard: a slice of every database, owned by whoever holds its lock.
pub struct Shard {
    pub dbs: Vec<Db>,
    pub rng: Rng,
    /// Position of the active expiry cycle, so each cycle continues with
    /// the database where the previous one stopped.
    pub expire_cursor_db: usize,
    /// The snapshot (full resync, BGSAVE) this shard was last serialized
    /// for; see replication/snapshot.rs.
    pub snapshot_epoch: u64,
    /// The shard's dataset bytes as last added to the server's figure
    /// (`eviction::dataset_memory`): kept here, under the shard's lock,
    /// so recording a change touches no cache line that other shards'
    /// writers share.
    mem_reported: std::cell::Cell<usize>,
    /// The databases (of the first 64) that held something at the last
    /// full pass of `refresh_mem`, and `DBS_FILLED` then.
    mem_dbs: std::cell::Cell<u64>,
    mem_epoch: std::cell::Cell<u64>,
    /// Where the running snapshot's walk of this shard is: the database,
    /// and the walk's cursor in its table (`Db::snapshot_walk`; 0: not
    /// started).
    pub snapshot_db: usize,
    pub snapshot_cursor: u64,
}

impl Shard {
    pub fn new(databases: usize, seed: u64) -> Self {
        Shard {
            dbs: (0..databases)
                .map(|id| {
                    let mut db = Db::default();
                    db.id = id;
                    db
                })
                .collect(),
            rng: Rng::new(seed),
            expire_cursor_db: 0,
            snapshot_epoch: 0,
            mem_reported: std::cell::Cell::new(0),
            mem_dbs: std::cell::Cell::new(0),
            mem_epoch: std::cell::Cell::new(u64::MAX),
            snapshot_db: 0,
            snapshot_cursor: 0,
        }
    }

    pub fn watch(&mut self, db: usize, key: &[u8], flag: &Arc<AtomicBool>) {
        self.dbs[db].watch(key, flag);
    }

    /// Re-measures the shard's dataset (`Db::mem_total` summed) and adds
    /// the change to the server's figure (call after writing). A database
    /// that held nothing at the last full pass still holds nothing unless
    /// `DBS_FILLED` moved since, so usually only the databases in use are
    /// measured (one, for most servers, not all 16).
    pub fn refresh_mem(&self) {
        let epoch = DBS_FILLED.load(Ordering::Relaxed);
        let total: usize = if epoch != self.mem_epoch.get() || self.dbs.len() > 64 {
            let mut mask = 0u64;
            let mut total = 0;
            for (i, db) in self.dbs.iter().enumerate() {
                let t = db.mem_total();
                if t != 0 && i < 64 {
                    mask |= 1 << i;
                }
                total += t;
            }
            self.mem_dbs.set(mask);
            self.mem_epoch.set(epoch);
            total
        } else {
            let mut mask = self.mem_dbs.get();
            let mut total = 0;
            while mask != 0 {
                total += self.dbs[mask.trailing_zeros() as usize].mem_total();
                mask &= mask - 1;
            }
            total
        };
        let old = self.mem_reported.replace(total);
        if old != total {
            crate::eviction::dataset_changed(old, total);
        }
    }

    /// An eviction freed `bytes` of one database (measured on it alone,
    /// as `Db::evict_sampled` does): the same as `refresh_mem` without
    /// visiting every database (see `eviction::dataset_freed`).
    pub fn mem_freed(&self, bytes: usize) {
        let old = self.mem_reported.get();
        let new = old.saturating_sub(bytes);
        self.mem_reported.set(new);
        crate::eviction::dataset_freed(old - new);
    }

    /// Marks every client watching `key` in `db` dirty (Redis's
    /// touchWatchedKey). Free when nothing is watched.
    #[inline]
    pub fn touch_watched(&mut self, db: usize, key: &[u8]) {
        self.dbs[db].touch_watched(key);
    }

    /// Touches watched keys of `db` for which `affected` says yes (FLUSHDB,
    /// FLUSHALL, SWAPDB touch the keys they emptied or replaced).
    pub fn touch_watched_in_db(
        &mut self,
        db: usize,
        mut affected: impl FnMut(&[Db], &[u8]) -> bool,
    ) {
        if self.dbs[db].watched.is_empty() {
            return;
        }
        let keys: Vec<Bytes> = self.dbs[db]
            .watched
            .keys()
            .filter(|k| affected(&self.dbs, k))
            .cloned()
            .collect();
        for k in keys {
            self.dbs[db].touch_watched(&k);
        }
    }

    /// Touches every watched key that exists, in every database: the
    /// whole dataset is being replaced (FLUSHALL, a full sync's load).
    pub fn touch_watched_existing(&mut self) {
        for db in 0..self.dbs.len() {
            self.touch_watched_in_db(db, |dbs, k| dbs[db].has_key(k));
        }
    }

    /// Drops registrations of clients that went away.
    pub fn prune_watched(&mut self) {
        for db in &mut self.dbs {
            db.watched.retain(|_, list| {
                list.retain(|w| w.strong_count() > 0);
                !list.is_empty()
            });
        }
    }

    /// SWAPDB: the data changes places, the watchers stay with their
    /// database number (as in Redis, clients remain in the same DB).
    pub fn swap_dbs(&mut self, a: usize, b: usize) {
        DBS_FILLED.fetch_add(1, Ordering::Relaxed);
        self.dbs.swap(a, b);
        self.dbs[a].id = a;
        self.dbs[b].id = b;
        let wa = std::mem::take(&mut self.dbs[a].watched);
        let wb = std::mem::replace(&mut self.dbs[b].watched, wa);
        self.dbs[a].watched = wb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Entry {
        Entry::new(
            Value::Str(Bytes::copy_from_slice(v.as_bytes())),
            0,
            1_000_000,
        )
    }

    /// The cron's share (`continue_moves`) finishes a resize that writes
    /// stopped in the middle of: one array is left, with every key (and
    /// the expiry index's move too).
    #[test]
    fn continue_moves_finishes_a_move_without_writes() {
        let mut db = Db::default();
        let now = 1_000_000;
        let mut n = 0;
        while !(db.table.moving() && db.volatile.moving()) || db.len() < 10_000 {
            db.insert_str(format!("k{n}").as_bytes(), b"v", now + 60_000, now);
            n += 1;
            assert!(n < 1_000_000, "no move under way at once in both tables");
        }
        let during = db.slot_counts();
        let mut calls = 0;
        while db.table.moving() || db.volatile.moving() {
            db.continue_moves(64);
            calls += 1;
            assert!(calls < 100_000);
        }
        let after = db.slot_counts();
        assert!(
            after.0 < during.0 && after.1 < during.1,
            "{during:?} -> {after:?}"
        );
        for i in 0..n {
            assert!(db.contains(format!("k{i}").as_bytes(), now), "lost k{i}");
        }
        assert_eq!(db.expires_len(), n);
    }

    #[test]
    fn lazy_expiry_counts_and_removes() {
        let mut db = Db::default();
        let mut e = s("v");
        e.expire_at = 1000;
        db.insert(b"k", e);
        assert_eq!(db.expires_len(), 1);
        assert!(db.get(b"k", 1000).is_some());
        assert!(db.get(b"k", 1001).is_none());
        assert_eq!(db.len(), 0);
        assert_eq!(db.expires_len(), 0);
        assert_eq!(db.stats.expired, 1);
    }

    #[test]
    fn scan_visits_every_key_despite_deletions() {
        let mut db = Db::default();
        for i in 0..1000 {
            db.insert(format!("k{i}").as_bytes(), s("v"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = db
                .scan(cursor, 10, 0, |e| {
                    seen.insert(Bytes::copy_from_slice(e.key));
                })
                .0;
            // Delete keys that were already seen while scanning.
            round += 1;
            if round % 3 == 0 {
                let victim = seen.iter().next().cloned();
                if let Some(v) = victim {
                    db.remove(&v);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            let k = Bytes::from(format!("k{i}"));
            assert!(seen.contains(&k), "missed {i}");
        }
    }

    #[test]
    fn random_sampling_is_uniformish() {
        let mut rng = Rng::new(42);
        let mut counts = [0usize; 10];
        for _ in 0..10000 {
            counts[rng.below(10)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800));
    }

    /// The byte count recomputed from scratch.
    fn recount(db: &Db) -> usize {
        db.table
            .positions()
            // SAFETY: live entries of `db`.
            .map(|p| entry_cost(unsafe { entry::view(db.table.get(p)) }))
            .sum()
    }

    /// Property test of the whole Db against a HashMap model: inserts
    /// (strings of varied sizes, with and without TTL), overwrites, value
    /// and expiry changes, removals, lookups, sampling, full scans; after
    /// every step the byte count and the expiry index must be exact.
    #[test]
    fn db_matches_a_hashmap_model() {
        let mut rng = Rng::new(99);
        let mut db = Db::default();
        let mut model: HashMap<Vec<u8>, (Vec<u8>, u64)> = HashMap::new();
        let now = 1_000_000;
        for step in 0..30_000 {
            let k = format!("key:{}", rng.below(3000)).into_bytes();
            match rng.below(8) {
                0..=2 => {
                    let len = [0, 5, 32, 200, 5000][rng.below(5)];
                    let v = vec![b'a' + (step % 26) as u8; len];
                    let ttl = if rng.below(2) == 0 {
                        0
                    } else {
                        now + 1 + rng.below(1000) as u64
                    };
                    db.insert_str(&k, &v, ttl, now);
                    model.insert(k, (v, ttl));
                }
                3 => {
                    assert_eq!(db.remove(&k).is_some(), model.remove(&k).is_some());
                }
                4 => {
                    let ttl = if rng.below(2) == 0 { 0 } else { now + 5 };
                    assert_eq!(db.set_expire(&k, ttl), model.contains_key(&k));
                    if let Some(m) = model.get_mut(&k) {
                        m.1 = ttl;
                    }
                }
                5 => {
                    if let Some(mut e) = db.get_mut(&k, now) {
                        let ValueMut::Str(old) = e.value_mut() else {
                            panic!()
                        };
                        let mut v = old.to_vec();
                        v.extend_from_slice(b"xy");
                        e.set_str(&v, true);
                        model.get_mut(&k).unwrap().0 = v;
                    } else {
                        assert!(!model.contains_key(&k));
                    }
                }
                6 => {
                    let got = db.get(&k, now).map(|e| match e.value {
                        ValueRef::Str(s) => (s.to_vec(), e.expire_at),
                        _ => panic!(),
                    });
                    assert_eq!(got.as_ref(), model.get(&k));
                }
                _ => {
                    if let Some(e) = db.sample(&mut rng, true) {
                        assert!(model[e.key].1 != 0);
                    }
                    if let Some(e) = db.sample(&mut rng, false) {
                        assert!(model.contains_key(e.key));
                    }
                }
            }
            assert_eq!(db.len(), model.len());
            assert_eq!(
                db.expires_len(),
                model.values().filter(|m| m.1 != 0).count()
            );
            if step % 3000 == 0 {
                assert_eq!(db.mem, recount(&db));
                let mut seen = HashSet::new();
                let mut c = 0;
                loop {
                    let (next, _) = db.scan(c, 20, now, |e| {
                        assert!(seen.insert(e.key.to_vec()), "returned twice");
                    });
                    if next == 0 {
                        break;
                    }
                    c = next;
                }
                assert_eq!(seen.len(), model.len());
            }
        }
        assert_eq!(db.mem, recount(&db));
        db.clear();
        assert_eq!((db.len(), db.expires_len(), db.mem), (0, 0, 0));
    }

    /// The snapshot walk reaches every entry present at its start exactly
    /// once, although the table grows and shrinks between its steps, and
    /// skips entries created with the snapshot's tag.
    #[test]
    fn snapshot_walk_survives_resizes() {
        let tagged = |snap: u8| Entry { snap, ..s("v") };
        let mut db = Db::default();
        for i in 0..2000 {
            db.insert(format!("old:{i}").as_bytes(), tagged(0));
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            let (next, _) = db.snapshot_walk(cursor, 50, 1, |e| {
                assert!(seen.insert(e.key.to_vec()), "serialized twice");
            });
            step += 1;
            if step == 3 {
                for i in 0..20_000 {
                    db.insert(format!("new:{i}").as_bytes(), tagged(1));
                }
            }
            if step == 10 {
                for i in 0..20_000 {
                    db.remove(format!("new:{i}").as_bytes());
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert!(step > 10);
        assert_eq!(seen.len(), 2000);
        assert!(seen.iter().all(|k| k.starts_with(b"old:")));
        assert!(!db.snapshot_pending(b"old:1", 1));
        assert!(db.snapshot_take(b"old:1", 1).is_none());
        assert!(db.snapshot_take(b"old:1", 0).is_some());
    }

    #[test]
    fn collections_live_behind_a_pointer() {
        let mut db = Db::default();
        db.insert(b"l", Entry::new(Value::List(Box::default()), 0, 0));
        if let Some(mut e) = db.get_mut(b"l", 0)
            && let ValueMut::List(l) = e.value_mut()
        {
            l.push_back(Bytes::from_static(b"x"));
        }
        db.set_expire(b"l", 5);
        assert!(matches!(db.peek(b"l").map(|e| e.value), Some(ValueRef::List(l)) if l.len() == 1));
        let e = db.remove(b"l").unwrap();
        assert!(matches!(e.value, Value::List(l) if l.len() == 1));
        assert_eq!(e.expire_at, 5);
    }

    #[test]
    fn sampled_entries_are_found_again_only_while_stored() {
        let mut db = Db::default();
        let mut rng = Rng::new(5);
        for i in 0..100 {
            let mut e = s("v");
            e.access = i;
            if i % 2 == 0 {
                e.expire_at = 10_000_000 + i as u64;
            }
            db.insert(format!("k{i}").as_bytes(), e);
        }
        let mut all = Vec::new();
        let mut ttl = Vec::new();
        for _ in 0..200 {
            db.sample_run(&mut rng, false, 5, |e| all.push((e.id(), e.access())));
            db.sample_run(&mut rng, true, 3, |e| ttl.push((e.id(), e.expire_at())));
        }
        assert!(ttl.iter().all(|(_, at)| *at != 0));
        // More samples than one run holds take several runs.
        let mut n = 0;
        assert_eq!(db.sample_run(&mut rng, false, 40, |_| n += 1), 40);
        assert_eq!(n, 40);
        let (id, access) = all[0];
        let key = format!("k{access}");
        // Rebuilt at another address (a longer value): not found.
        db.insert(key.as_bytes(), s(&"w".repeat(200)));
        assert!(
            db.evict_sampled(id, false, |_| panic!("evicted a rebuilt entry"))
                .is_none()
        );
        // Found while stored; gone after.
        let live = all
            .iter()
            .find(|(_, a)| format!("k{a}") != key)
            .copied()
            .unwrap();
        let mut seen = None;
        let mem_before = db.mem_total();
        let freed = db.evict_sampled(live.0, false, |k| seen = Some(k.to_vec()));
        assert_eq!(seen, Some(format!("k{}", live.1).into_bytes()));
        assert_eq!(freed, Some(mem_before - db.mem_total()));
        assert!(freed > Some(0));
        assert!(!db.has_key(format!("k{}", live.1).as_bytes()));
        assert!(
            db.evict_sampled(live.0, false, |_| panic!("evicted twice"))
                .is_none()
        );
        // Volatile: a key that lost its TTL (rebuilt without it) is not
        // evicted as one that has a TTL.
        let (vid, vkey) = ttl
            .iter()
            .find_map(|(id, _)| {
                db.iter(0)
                    .find(|(_, e)| e.addr() as u64 == id.addr())
                    .map(|(k, _)| (*id, k.to_vec()))
            })
            .unwrap();
        db.set_expire(&vkey, 0);
        assert!(
            db.evict_sampled(vid, true, |_| panic!("evicted a key without TTL"))
                .is_none()
        );
        assert!(db.has_key(&vkey));
        assert_eq!(db.peek(&vkey).map(|e| e.expire_at), Some(0));
        assert_eq!(db.len(), 99);
    }

    #[test]
    fn refresh_mem_follows_every_database() {
        let mut shard = Shard::new(16, 1);
        let exact = |sh: &Shard| sh.dbs.iter().map(|d| d.mem_total()).sum::<usize>();
        let check = |sh: &Shard| {
            sh.refresh_mem();
            assert_eq!(sh.mem_reported.get(), exact(sh));
        };
        check(&shard);
        shard.dbs[0].insert(b"a", s("v"));
        check(&shard);
        // A database that held nothing at the last pass takes keys.
        for i in 0..100 {
            shard.dbs[7].insert(format!("k{i}").as_bytes(), s("value"));
        }
        check(&shard);
        shard.dbs[7].insert(b"k1", s(&"x".repeat(300)));
        check(&shard);
        // SWAPDB moves a full database to an index that was empty.
        shard.swap_dbs(7, 12);
        check(&shard);
        assert!(shard.dbs[12].len() == 100 && shard.dbs[7].is_empty());
        // Emptied, then filled again.
        shard.dbs[12].clear();
        check(&shard);
        shard.dbs[12].insert(b"again", s("v"));
        check(&shard);
        // An eviction's own count agrees with a full measure.
        let before = exact(&shard);
        let freed = shard.dbs[0].evict(b"a", |_| {}).unwrap();
        shard.mem_freed(freed);
        assert_eq!(before - freed, exact(&shard));
        assert_eq!(shard.mem_reported.get(), exact(&shard));
        check(&shard);
    }
}
