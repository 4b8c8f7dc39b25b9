//! The keyspace: shards of databases of entries.
//!
//! A key lives in shard `slot % nshards`, where `slot` is its Redis Cluster
//! hash slot, so all keys of a slot share a shard. Each shard is behind its
//! own mutex (see `crate::server::Store`); nothing here is shared between
//! threads otherwise.
//!
//! Tables are `IndexMap`s: besides hashed lookup they give dense indices,
//! which make random sampling O(1) (eviction and active expiry sample) and
//! let SCAN walk a table by position (see `Db::scan`).

pub mod slot;

use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};

use crate::memory::{alloc_size, array_size, swiss_table_size};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

pub type BuildHasher = foldhash::fast::RandomState;

/// A stored value. Only strings have commands yet; the other variants
/// exist so type checks (WRONGTYPE, TYPE) are right from the start.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Bytes),
    List(Box<VecDeque<Bytes>>),
    Hash(Box<HashMap<Bytes, Bytes, BuildHasher>>),
    Set(Box<HashSet<Bytes, BuildHasher>>),
    ZSet(Box<HashMap<Bytes, f64, BuildHasher>>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// OBJECT ENCODING as Redis would report it for this value.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => {
                if s.len() <= 20 && crate::util::parse_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::List(_) => "quicklist",
            Value::Hash(_) => "hashtable",
            Value::Set(_) => "hashtable",
            Value::ZSet(_) => "skiplist",
        }
    }

    /// Heap bytes the value holds, as the allocator counts them. Exact
    /// for strings (their bytes are one allocation of exactly their
    /// length); an estimate for collections, which track their growth
    /// through `EntryMut::grew`.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => alloc_size(s.len()),
            other => other.mem_size(),
        }
    }

    /// Approximate bytes held by the value, for MEMORY USAGE.
    pub fn mem_size(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::List(l) => l.iter().map(|b| b.len() + 16).sum::<usize>() + 32,
            Value::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>() + 32,
            Value::Set(s) => s.iter().map(|b| b.len() + 24).sum::<usize>() + 32,
            Value::ZSet(z) => z.keys().map(|b| b.len() + 32).sum::<usize>() + 32,
        }
    }
}

/// One key's value and metadata.
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
    /// since `access`.
    pub freq: u8,
    /// The string was modified in place (APPEND, SETRANGE): Redis then
    /// reports it as `raw` whatever its length. Fits in padding.
    pub raw: bool,
    /// Tag of the last snapshot that serialized this entry, or that was
    /// running (or last ran) when it was created: an entry whose tag is
    /// the running snapshot's is not (or no longer) part of it. Fits in
    /// padding. See replication/snapshot.rs.
    pub snap: u8,
}

/// Tag of the running snapshot, or of the last one (see `Entry::snap`).
static SNAP_TAG: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[inline]
pub fn snapshot_tag() -> u8 {
    SNAP_TAG.load(Ordering::Relaxed)
}

/// Starts a new snapshot's tag (with every shard locked); returns it.
pub fn next_snapshot_tag() -> u8 {
    let t = snapshot_tag().wrapping_add(1);
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

    /// A copy that shares no buffer with the original (a `Bytes` clone
    /// would make both entries point at one shared buffer, which the
    /// memory accounting does not model).
    pub fn deep_copy(&self) -> Entry {
        let value = match &self.value {
            Value::Str(s) => Value::Str(Bytes::copy_from_slice(s)),
            other => other.clone(),
        };
        Entry { value, ..*self }
    }

    /// OBJECT ENCODING of this entry.
    pub fn encoding(&self) -> &'static str {
        match self.value {
            Value::Str(_) if self.raw => "raw",
            ref v => v.encoding(),
        }
    }

    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at < now_ms
    }
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

/// Bytes an entry's key and value hold outside the table: the key's
/// allocation, the value's, and the key's copy in the expiry index when
/// it has a TTL.
#[inline]
fn entry_heap(key_len: usize, e: &Entry) -> usize {
    let key = alloc_size(key_len);
    key + e.value.heap_size() + if e.expire_at != 0 { key } else { 0 }
}

/// Mutable access to an entry that keeps the database's byte count
/// right: string values are re-measured when the guard drops; collections
/// report their growth with `grew`/`shrank`. The key and expiry cannot
/// change through it (they live in indexes too).
pub struct EntryMut<'a> {
    entry: &'a mut Entry,
    mem: &'a mut usize,
    before: usize,
}

impl EntryMut<'_> {
    #[inline]
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.entry.value
    }

    /// Replaces a string value (INCR, INCRBYFLOAT), which resets its
    /// in-place-modified marker.
    pub fn set_value(&mut self, v: Value) {
        self.entry.value = v;
        self.entry.raw = false;
    }

    pub fn set_raw(&mut self) {
        self.entry.raw = true;
    }

    /// A collection grew by about `bytes`.
    pub fn grew(&mut self, bytes: usize) {
        *self.mem += bytes;
    }
}

impl std::ops::Deref for EntryMut<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl Drop for EntryMut<'_> {
    fn drop(&mut self) {
        if let Value::Str(s) = &self.entry.value {
            let after = alloc_size(s.len());
            *self.mem = (*self.mem + after).saturating_sub(self.before);
        }
    }
}

/// Counters kept per database, summed for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
}

/// One logical database's slice of a shard.
#[derive(Default)]
pub struct Db {
    map: IndexMap<Bytes, Entry, BuildHasher>,
    /// Keys that have an expiry, for the active expiry cycle's sampling.
    expires: IndexSet<Bytes, BuildHasher>,
    pub stats: DbStats,
    /// Heap bytes of keys and values (`entry_heap` summed), kept exact on
    /// every change; table slots are added by `mem_total`.
    mem: usize,
    /// WATCHed keys: key → the watching clients' dirty flags. Weak, so a
    /// client that unwatches or disconnects just drops its flag; dead
    /// entries are pruned when met.
    watched: HashMap<Bytes, Vec<Weak<AtomicBool>>, BuildHasher>,
    /// S3-FIFO queues, while that policy is in use.
    s3: Option<Box<S3State>>,
    /// (table capacities, their bytes): see `tables_bytes`.
    tables_cache: std::cell::Cell<((usize, usize), usize)>,
    /// This database's number, so deletions by expiry can be propagated
    /// with it.
    pub id: usize,
}

/// Set while this server is a replica: expired keys are then hidden from
/// reads but never deleted, since only the primary's DEL removes them (as
/// Redis 7 replicas behave).
static HIDE_EXPIRED: AtomicBool = AtomicBool::new(false);

pub fn set_replica_mode(on: bool) {
    HIDE_EXPIRED.store(on, Ordering::Relaxed);
}

#[inline]
pub fn replica_mode() -> bool {
    HIDE_EXPIRED.load(Ordering::Relaxed)
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
        use std::hash::BuildHasher as _;
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
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// Bytes this database holds: entries plus both tables' slots.
    pub fn mem_total(&self) -> usize {
        let s3 = self.s3.as_ref().map_or(0, |s| s.bytes);
        s3 + self.mem + self.tables_bytes()
    }

    /// Bytes of both tables' slots. Asked after every write, so the size
    /// is cached until a table's capacity changes.
    fn tables_bytes(&self) -> usize {
        const SLOT: usize = 8 + std::mem::size_of::<Bytes>() + std::mem::size_of::<Entry>();
        const EXPIRE_SLOT: usize = 8 + std::mem::size_of::<Bytes>();
        let caps = (self.map.capacity(), self.expires.capacity());
        let (cached_caps, bytes) = self.tables_cache.get();
        if cached_caps == caps {
            return bytes;
        }
        let (cap, ecap) = caps;
        let bytes = array_size(cap, SLOT)
            + swiss_table_size(cap, 8)
            + array_size(ecap, EXPIRE_SLOT)
            + swiss_table_size(ecap, 8);
        self.tables_cache.set((caps, bytes));
        bytes
    }

    /// Bytes `key` costs (MEMORY USAGE): its heap plus one slot in each
    /// table it is in.
    pub fn key_mem(&self, key: &[u8]) -> Option<usize> {
        const SLOT: usize = 8 + std::mem::size_of::<Bytes>() + std::mem::size_of::<Entry>();
        let e = self.map.get(key)?;
        let slots = SLOT
            + 9
            + if e.expire_at != 0 {
                8 + std::mem::size_of::<Bytes>() + 9
            } else {
                0
            };
        Some(entry_heap(key.len(), e) + slots)
    }

    /// Looks a key up, deleting it first if it has expired (lazy expiry).
    #[inline]
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let idx = self.map.get_index_of(key)?;
        if self.map[idx].is_expired(now_ms) {
            self.expire_at_index(idx);
            return None;
        }
        Some(&self.map[idx])
    }

    /// `get` for modification in place (see `EntryMut`).
    #[inline]
    pub fn get_mut(&mut self, key: &[u8], now_ms: u64) -> Option<EntryMut<'_>> {
        let idx = self.map.get_index_of(key)?;
        if self.map[idx].is_expired(now_ms) {
            self.expire_at_index(idx);
            return None;
        }
        let entry = &mut self.map[idx];
        entry.access = lru_clock(now_ms);
        let before = entry.value.heap_size();
        Some(EntryMut {
            entry,
            mem: &mut self.mem,
            before,
        })
    }

    /// Lookup for read commands: counts keyspace hits and misses and
    /// refreshes the LRU clock, as Redis's lookupKeyRead.
    #[inline]
    pub fn get_read(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.lookup_read(key, now_ms, true)
    }

    /// `get_read` with the LRU refresh optional (Redis's LOOKUP_NOTOUCH,
    /// used by EXISTS, TYPE, TTL...).
    #[inline]
    pub fn lookup_read(&mut self, key: &[u8], now_ms: u64, touch: bool) -> Option<&Entry> {
        let Some(idx) = self.map.get_index_of(key) else {
            self.stats.misses += 1;
            return None;
        };
        if self.map[idx].is_expired(now_ms) {
            self.expire_at_index(idx);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        let e = &mut self.map[idx];
        if touch {
            crate::eviction::on_access(e, now_ms);
        }
        Some(e)
    }

    /// Whether the key is present (expired or not) without modifying
    /// anything.
    pub fn has_key(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// Whether the key exists (after lazy expiry), without touching stats.
    #[inline]
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.get(key, now_ms).is_some()
    }

    fn expire_at_index(&mut self, idx: usize) {
        if replica_mode() {
            return;
        }
        if let Some((k, e)) = self.map.swap_remove_index(idx) {
            self.mem = self.mem.saturating_sub(entry_heap(k.len(), &e));
            self.expires.swap_remove(&k);
            self.stats.expired += 1;
            crate::replication::propagate_expired(self.id, &k);
        }
    }

    /// Inserts or replaces a key. Replacing keeps nothing of the old entry.
    #[inline]
    pub fn insert(&mut self, key: &[u8], mut entry: Entry) {
        let has_ttl = entry.expire_at != 0;
        self.mem += entry_heap(key.len(), &entry);
        match self.map.get_full_mut(key) {
            Some((_, k, e)) => {
                let had_ttl = e.expire_at != 0;
                self.mem = self.mem.saturating_sub(entry_heap(k.len(), e));
                if crate::eviction::keeps_history() {
                    // An overwrite is an access to the key, not a new key
                    // (Redis keeps the LFU counter in dbOverwrite).
                    let now = entry.access as u64;
                    entry.freq = e.freq;
                    entry.access = e.access;
                    crate::eviction::on_access(&mut entry, now);
                }
                *e = entry;
                if had_ttl != has_ttl {
                    if has_ttl {
                        self.expires.insert(Bytes::copy_from_slice(key));
                    } else {
                        self.expires.swap_remove(key);
                    }
                }
            }
            None => {
                self.avoid_growth_past_maxmemory(entry.access);
                if crate::eviction::policy() == crate::eviction::Policy::AllKeysS3Fifo {
                    self.s3_admit(key, &mut entry);
                } else if self.s3.is_some() {
                    self.s3 = None;
                }
                let k = Bytes::copy_from_slice(key);
                if has_ttl {
                    self.expires.insert(Bytes::copy_from_slice(key));
                }
                self.map.insert(k, entry);
            }
        }
    }

    /// The table is full and about to double. Under memory pressure that
    /// jump alone could take usage far past maxmemory (a doubling costs
    /// megabytes at once), so, as Redis refuses to expand its dict then
    /// (dictExpandAllowed), evict one key of this database instead and
    /// reuse its slot.
    fn avoid_growth_past_maxmemory(&mut self, clock: u32) {
        let cap = self.map.capacity();
        if cap == 0 || self.map.len() < cap {
            return;
        }
        let growth = self.table_bytes(cap * 2) - self.table_bytes(cap);
        if crate::eviction::growth_allowed(growth) {
            return;
        }
        if let Some(victim) = crate::eviction::local_victim(self, clock as u64) {
            self.remove(&victim);
            self.touch_watched(&victim);
            crate::eviction::count_local_eviction(&victim);
        }
    }

    /// S3-FIFO admission: a key the ghost remembers goes to the main
    /// queue, any other to the small queue.
    fn s3_admit(&mut self, key: &[u8], entry: &mut Entry) {
        let s3 = self.s3.get_or_insert_default();
        if s3.ghost_contains(key) {
            entry.freq = crate::eviction::S3_MAIN;
        } else {
            entry.freq = 0;
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
        let keys = self.map.len();
        if keys == 0 {
            return None;
        }
        let s3 = self.s3.get_or_insert_default();
        let small_target = (keys / 10).max(1);
        for _ in 0..max_rounds {
            if s3.small.len() >= small_target {
                let Some(k) = s3.small.pop_front() else {
                    continue;
                };
                s3.bytes -= S3State::key_cost(&k);
                let Some(e) = self.map.get_mut(k.as_ref()) else {
                    continue; // deleted since it was queued
                };
                if e.freq & S3_MAIN != 0 {
                    continue;
                }
                if e.freq & 3 >= 1 {
                    e.freq = S3_MAIN;
                    e.access = lru_clock(now_ms);
                    continue;
                }
                s3.ghost_insert(&k, keys);
                return Some(k);
            }
            // Main queue: the sampled key that entered its queue first is
            // its tail.
            let mut oldest: Option<(u64, usize)> = None;
            for _ in 0..samples {
                let i = rng.below(self.map.len());
                let idle = idle_ms(self.map[i].access, now_ms);
                if oldest.is_none_or(|(o, _)| idle > o) {
                    oldest = Some((idle, i));
                }
            }
            let (_, i) = oldest?;
            let e = &mut self.map[i];
            if e.freq & 3 > 0 {
                e.freq = (e.freq & S3_MAIN) | ((e.freq & 3) - 1);
                e.access = lru_clock(now_ms);
                continue;
            }
            return self
                .map
                .get_index(i)
                .map(|(k, _)| Bytes::copy_from_slice(k));
        }
        let i = rng.below(self.map.len());
        self.map
            .get_index(i)
            .map(|(k, _)| Bytes::copy_from_slice(k))
    }

    fn table_bytes(&self, cap: usize) -> usize {
        const SLOT: usize = 8 + std::mem::size_of::<Bytes>() + std::mem::size_of::<Entry>();
        array_size(cap, SLOT) + swiss_table_size(cap, 8)
    }

    /// Changes the expiry of an existing key; returns false if absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) -> bool {
        let Some((_, k, e)) = self.map.get_full_mut(key) else {
            return false;
        };
        let had = e.expire_at != 0;
        e.expire_at = expire_at;
        let key_copy = alloc_size(k.len());
        if expire_at != 0 && !had {
            self.mem += key_copy;
            self.expires.insert(Bytes::copy_from_slice(key));
        } else if expire_at == 0 && had {
            self.mem = self.mem.saturating_sub(key_copy);
            self.expires.swap_remove(key);
        }
        true
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.map.swap_remove(key)?;
        self.mem = self.mem.saturating_sub(entry_heap(key.len(), &e));
        if e.expire_at != 0 {
            self.expires.swap_remove(key);
        }
        Some(e)
    }

    /// Deletes a key that has not expired; returns whether it existed.
    /// On a replica (where only the primary's DEL removes expired keys)
    /// an expired key is deleted too.
    pub fn delete(&mut self, key: &[u8], now_ms: u64) -> bool {
        if replica_mode() {
            return self.remove(key).is_some();
        }
        if self.get(key, now_ms).is_none() {
            return false;
        }
        self.remove(key).is_some()
    }

    pub fn clear(&mut self) {
        self.map = IndexMap::default();
        self.expires = IndexSet::default();
        self.mem = 0;
        self.s3 = None;
    }

    /// The entry of `key`, expired or not, for a snapshot to serialize
    /// and tag (the tag is not part of the value: no accounting).
    pub fn snapshot_entry(&mut self, key: &[u8]) -> Option<(&Bytes, &mut Entry)> {
        self.map.get_full_mut(key).map(|(_, k, e)| (k, e))
    }

    /// Key and entry at a position, for a snapshot's walk.
    pub fn snapshot_entry_at(&mut self, idx: usize) -> Option<(&Bytes, &mut Entry)> {
        self.map.get_index_mut(idx)
    }

    /// Key and entry at a dense index (for sampling and SCAN).
    #[inline]
    pub fn get_index(&self, idx: usize) -> Option<(&Bytes, &Entry)> {
        self.map.get_index(idx)
    }

    /// The entry, expired or not, changing nothing (not even the LRU clock).
    pub fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// A random entry, from all keys or only those with a TTL.
    pub fn sample(&self, rng: &mut Rng, volatile: bool) -> Option<(&Bytes, &Entry)> {
        if volatile {
            if self.expires.is_empty() {
                return None;
            }
            let k = self.expires.get_index(rng.below(self.expires.len()))?;
            self.map.get_key_value(k.as_ref())
        } else {
            if self.map.is_empty() {
                return None;
            }
            self.map.get_index(rng.below(self.map.len()))
        }
    }

    /// A copy of a random key (see `sample`).
    pub fn sample_key(&self, rng: &mut Rng, volatile: bool) -> Option<Bytes> {
        self.sample(rng, volatile)
            .map(|(k, _)| Bytes::copy_from_slice(k))
    }

    /// A random live key, deleting expired keys it meets (as Redis's
    /// RANDOMKEY does), bounded in tries.
    pub fn random_key(&mut self, rng: &mut Rng, now_ms: u64) -> Option<Bytes> {
        for _ in 0..100 {
            if self.map.is_empty() {
                return None;
            }
            let idx = rng.below(self.map.len());
            if self.map[idx].is_expired(now_ms) {
                if replica_mode() {
                    continue;
                }
                self.expire_at_index(idx);
                continue;
            }
            // A copy: cloning would turn the stored key into a shared one.
            return self
                .map
                .get_index(idx)
                .map(|(k, _)| Bytes::copy_from_slice(k));
        }
        None
    }

    /// One round of active expiry sampling: looks at up to `samples`
    /// random keys with a TTL and deletes the expired ones. Returns
    /// (sampled, expired).
    pub fn expire_sample(&mut self, rng: &mut Rng, samples: usize, now_ms: u64) -> (usize, usize) {
        let mut sampled = 0;
        let mut expired = 0;
        for _ in 0..samples {
            if self.expires.is_empty() {
                break;
            }
            let i = rng.below(self.expires.len());
            sampled += 1;
            let Some(key) = self.expires.get_index(i) else {
                break;
            };
            let Some(idx) = self.map.get_index_of(key) else {
                // Cannot happen (expires ⊆ map); heal rather than loop.
                self.expires.swap_remove_index(i);
                continue;
            };
            if self.map[idx].is_expired(now_ms) {
                self.expire_at_index(idx);
                expired += 1;
            }
        }
        (sampled, expired)
    }

    /// SCAN step over this table. `cursor` is the number of positions not
    /// yet visited (positions are visited from the end down), 0 meaning
    /// "start". Walking downward keeps Redis's guarantee under deletions:
    /// `swap_remove` only moves the last element, which was already
    /// visited, into a lower position; elements not yet visited never move
    /// above the cursor. Returns the new cursor (0 when done).
    pub fn scan(
        &mut self,
        cursor: usize,
        count: usize,
        now_ms: u64,
        mut visit: impl FnMut(&Bytes, &Entry),
    ) -> usize {
        let mut pos = if cursor == 0 {
            self.map.len()
        } else {
            cursor.min(self.map.len())
        };
        let mut done = 0;
        while pos > 0 && done < count {
            pos -= 1;
            done += 1;
            if let Some((k, e)) = self.map.get_index(pos)
                && !e.is_expired(now_ms)
            {
                visit(k, e);
            }
        }
        pos
    }

    /// Iterates live keys.
    pub fn iter(&self, now_ms: u64) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map.iter().filter(move |(_, e)| !e.is_expired(now_ms))
    }

    /// Sum of remaining TTLs in ms over keys with an expiry, and how many.
    pub fn ttl_sum(&self, now_ms: u64) -> (u128, usize) {
        let mut sum = 0u128;
        let mut n = 0usize;
        for k in self.expires.iter().take(1024) {
            if let Some(e) = self.map.get(k) {
                sum += e.expire_at.saturating_sub(now_ms) as u128;
                n += 1;
            }
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
    /// Where the running snapshot's walk of this shard is: the database,
    /// and the positions of its table not yet visited (walked downward,
    /// like SCAN; `usize::MAX`: not started).
    pub snapshot_db: usize,
    pub snapshot_cursor: usize,
}

impl Shard {
    pub fn new(databases: usize, seed: u64) -> Self {
        Shard {
            dbs: (0..databases)
                .map(|id| Db {
                    id,
                    ..Db::default()
                })
                .collect(),
            rng: Rng::new(seed),
            expire_cursor_db: 0,
            snapshot_epoch: 0,
            snapshot_db: 0,
            snapshot_cursor: usize::MAX,
        }
    }

    pub fn watch(&mut self, db: usize, key: &[u8], flag: &Arc<AtomicBool>) {
        self.dbs[db].watch(key, flag);
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

    #[test]
    fn entry_stays_within_its_size() {
        // The snapshot tag must live in padding: memory per key is
        // measured and documented.
        assert!(std::mem::size_of::<Entry>() <= 56);
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
            cursor = db.scan(cursor, 10, 0, |k, _| {
                seen.insert(k.clone());
            });
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
}
