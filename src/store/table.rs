//! An open-addressing table of 8-byte slots, used for the keyspace and for
//! the index of keys with an expiry.
//!
//! A slot is 0 (empty) or `ptr | tag << 48 | dist << 56`: a 48-bit entry
//! pointer (see entry.rs, invariant 4), 8 bits of the key's hash (so a
//! probe rarely dereferences a pointer whose key differs) and the slot's
//! distance from its home position (so deletion and Robin Hood probing
//! never need to rehash a key). The table never dereferences pointers: it
//! asks its caller for hashes (`rehash`) and equality (`find`).
//!
//! - **Home position**: `(h54 * cap) >> 54` where `h54` is the top 54
//!   bits of the 64-bit hash. It is monotonic in `h54`, which is what makes
//!   the SCAN cursor work (below); `cap` need not be a power of two, so the
//!   table grows by 1.3x and its load stays between 69% and 90%.
//! - **Probing**: linear, Robin Hood (an insert takes the slot of an
//!   element nearer its home), no wrap-around: the array has `pad` extra
//!   slots after `cap` for elements displaced past the end. An insert that
//!   would need more than 255 steps or run off the array grows the table.
//! - **Deletion**: backward shift (following elements move one slot back
//!   while they are not at home), so there are no tombstones.
//! - **SCAN** (`scan_step`): the cursor is a 54-bit hash value, not a
//!   position, so it stays valid when the table is resized. A step from
//!   cursor `c` walks from `home(c)` to an empty slot `E` past at least
//!   `count` slots and returns the elements with `c <= h54 < c'`, where
//!   `c'` is the smallest hash whose home is `E`. Every element with home
//!   below an empty slot lies before it (nothing is displaced across an
//!   empty slot), so that range is complete: a key present for the whole
//!   scan is returned exactly once, whatever resizes happen in between.

use super::slots::{Slots, bytes_for};

use super::Rng;

const PTR_MASK: u64 = (1 << super::entry::PTR_BITS) - 1;
const TAG_SHIFT: u32 = 48;
const DIST_SHIFT: u32 = 56;
const MAX_DIST: usize = 255;
/// Scan cursors and homes use the hash's top 54 bits (the low bits give
/// the tag), which leaves SCAN 10 bits for the shard index.
pub const HASH_BITS: u32 = 54;
const MIN_CAP: usize = 4;
/// How many slots ahead walks over the array prefetch entries
/// (`prefetch_entry_ahead`).
const PREFETCH_AHEAD: usize = 24;

#[inline]
fn h54(h: u64) -> u64 {
    h >> (64 - HASH_BITS)
}

#[inline]
fn tag(h: u64) -> u64 {
    h & 0xff
}

#[inline]
fn dist(slot: u64) -> usize {
    (slot >> DIST_SHIFT) as usize
}

#[inline]
pub fn ptr_of(slot: u64) -> u64 {
    slot & PTR_MASK
}

/// Asks for the first `lines` cache lines of the entry `PREFETCH_AHEAD`
/// slots past `pos`. Entries live at random heap addresses, so a walk that
/// reads each one in turn (a full resync's scan, a resize's rehash) waits
/// on a cache and TLB miss per entry; asking ahead overlaps those misses.
#[inline]
fn prefetch_entry_ahead(slots: &[u64], pos: usize, lines: u64) {
    if let Some(&s) = slots.get(pos + PREFETCH_AHEAD)
        && s != 0
    {
        for line in 0..lines {
            super::entry::prefetch(ptr_of(s) + 64 * line);
        }
    }
}

/// A table that grows or shrinks moves its elements to the new array a
/// little at a time (`STEP_SLOTS` old slots per insert or removal), as
/// Redis rehashes its dicts incrementally: moving them all at once
/// stalled every client of the worker, 117-231 ms at 3M keys a shard.
///
/// Homes are monotonic in the hash, so the old array holds its elements
/// in hash order, and a move that has emptied the old array up to an
/// empty slot has moved exactly the elements whose hash is below a
/// bound (`Moving::bound`). Every element is then in one array, found by
/// comparing its hash with the bound: a lookup probes one array, as
/// before.
#[derive(Default)]
pub struct Table {
    /// Where new elements go: the only array, or the new one of a move.
    cur: Array,
    /// The array being emptied into `cur`.
    old: Option<Box<Moving>>,
}

/// Old slots a move walks per insert or removal (to the next empty slot
/// past them). Inserts during a move raise the old array's load by at
/// most 1/STEP_SLOTS before it is empty: 90% at the start, under 94%.
const STEP_SLOTS: usize = 32;

/// Tables with fewer elements than this resize at once (a few
/// microseconds), without a move. Small in unit tests, so that their
/// tables move often.
const MOVE_MIN: usize = if cfg!(test) { 8 } else { 4096 };

struct Moving {
    arr: Array,
    /// The old array's slots before `next` are empty (moved).
    next: usize,
    /// Elements with `h54(hash) < bound` are in the new array, the others
    /// in the old one: the smallest hash whose home in the old array is
    /// `next` (nothing is displaced across the empty slot there).
    bound: u64,
}

/// One slot array and its home range.
#[derive(Default)]
struct Array {
    slots: Slots,
    /// Home positions are 0..cap; `slots.len() - cap` is the padding.
    cap: usize,
    len: usize,
}

/// Why an insert could not place an element: the one it carries now
/// (perhaps another element it displaced), to place after growing.
struct Overflow(u64);

/// Whether a home range of `cap` takes `n` elements: up to 90% of it
/// (Robin Hood keeps probes short at that load).
#[inline]
fn holds(cap: usize, n: usize) -> bool {
    n * 10 <= cap * 9
}

/// Growth by 1.3x keeps the load between 69% and 90% (8.9 to 11.6
/// bytes of slot per key).
fn grown(cap: usize) -> usize {
    (cap * 13 / 10).max(cap + 1).max(MIN_CAP)
}

fn pad(cap: usize) -> usize {
    cap.clamp(MIN_CAP, MAX_DIST + 1)
}

fn array_bytes(cap: usize) -> usize {
    bytes_for(cap + pad(cap))
}

/// Calls `f` with each pointer in `slots`, prefetching the entries ahead
/// (a rehash reads the key, at the start of the entry; the expiry index
/// hashes the address and gains nothing from it).
fn for_each_ptr(
    slots: &[u64],
    mut f: impl FnMut(u64) -> Result<(), Overflow>,
) -> Result<(), Overflow> {
    for (i, &s) in slots.iter().enumerate() {
        prefetch_entry_ahead(slots, i, 1);
        if s != 0 {
            f(ptr_of(s))?;
        }
    }
    Ok(())
}

impl Array {
    fn with_cap(cap: usize) -> Array {
        let cap = cap.max(MIN_CAP);
        Array {
            slots: Slots::zeroed(cap + pad(cap)),
            cap,
            len: 0,
        }
    }

    fn bytes(&self) -> usize {
        bytes_for(self.slots.len())
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        self.home_of(h54(h))
    }

    /// The home of a 54-bit hash value (a SCAN cursor is one).
    #[inline]
    fn home_of(&self, h54: u64) -> usize {
        ((h54 as u128 * self.cap as u128) >> HASH_BITS) as usize
    }

    /// The smallest 54-bit hash whose home is `pos` or later:
    /// ceil(pos * 2^54 / cap).
    fn first_hash_at(&self, pos: usize) -> u64 {
        ((pos as u128) << HASH_BITS).div_ceil(self.cap as u128) as u64
    }

    #[inline]
    fn find(&self, h: u64, mut eq: impl FnMut(u64) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let t = tag(h) << TAG_SHIFT;
        let mut pos = self.home(h);
        let mut d = 0;
        while let Some(&s) = self.slots.get(pos) {
            if s == 0 || dist(s) < d {
                return None;
            }
            if s & (0xff << TAG_SHIFT) == t && eq(ptr_of(s)) {
                return Some(pos);
            }
            pos += 1;
            d += 1;
        }
        None
    }

    fn place(&mut self, h: u64, ptr: u64) -> Result<(), Overflow> {
        let mut cur = ptr | tag(h) << TAG_SHIFT;
        let mut pos = self.home(h);
        let mut d = 0usize;
        loop {
            if d > MAX_DIST || pos >= self.slots.len() {
                return Err(Overflow(cur));
            }
            let s = self.slots[pos];
            if s == 0 {
                self.slots[pos] = cur | (d as u64) << DIST_SHIFT;
                self.len += 1;
                return Ok(());
            }
            if dist(s) < d {
                self.slots[pos] = cur | (d as u64) << DIST_SHIFT;
                cur = s & !(0xff << DIST_SHIFT);
                d = dist(s);
            }
            pos += 1;
            d += 1;
        }
    }

    /// Removes the element at `pos` by backward shift; returns its pointer.
    fn remove_at(&mut self, pos: usize) -> u64 {
        let removed = ptr_of(self.slots[pos]);
        let mut pos = pos;
        loop {
            let next = pos + 1;
            match self.slots.get(next) {
                Some(&s) if s != 0 && dist(s) > 0 => {
                    self.slots[pos] = s - (1 << DIST_SHIFT);
                    pos = next;
                }
                _ => {
                    self.slots[pos] = 0;
                    break;
                }
            }
        }
        self.len -= 1;
        removed
    }

    /// One SCAN step over this array (see `Table::scan_step`).
    fn scan_step(
        &self,
        cursor: u64,
        count: usize,
        hash: impl Fn(u64) -> u64,
        mut visit: impl FnMut(u64),
    ) -> (u64, usize) {
        if self.len == 0 {
            return (0, 1);
        }
        let start = self.home_of(cursor);
        let n = self.slots.len();
        let mut pos = start;
        let mut walked = 0;
        while pos < n && (walked < count.max(1) || self.slots[pos] != 0) {
            // A snapshot serializes key and value: two lines.
            prefetch_entry_ahead(&self.slots, pos, 2);
            let s = self.slots[pos];
            if s != 0 {
                let home = pos - dist(s);
                if home > start || (home == start && h54(hash(ptr_of(s))) >= cursor) {
                    visit(ptr_of(s));
                }
            }
            pos += 1;
            walked += 1;
        }
        if pos >= self.cap {
            return (0, walked);
        }
        (self.first_hash_at(pos), walked)
    }
}

impl Table {
    pub fn len(&self) -> usize {
        self.cur.len + self.old.as_ref().map_or(0, |m| m.arr.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the arrays (home ranges plus padding; both arrays during a
    /// move). Positions run over the current array, then the old one.
    pub fn slot_count(&self) -> usize {
        self.cur.slots.len() + self.old.as_ref().map_or(0, |m| m.arr.slots.len())
    }

    /// Bytes the slot arrays take.
    pub fn bytes(&self) -> usize {
        self.cur.bytes() + self.old.as_ref().map_or(0, |m| m.arr.bytes())
    }

    /// Bytes the next growth adds: the new array, less the old array of a
    /// move in progress (which that growth finishes and frees).
    pub fn growth_bytes(&self) -> usize {
        let old = self.old.as_ref().map_or(0, |m| m.arr.bytes());
        array_bytes(grown(self.cur.cap)).saturating_sub(old)
    }

    /// Whether inserting one more element grows the table.
    pub fn full(&self) -> bool {
        !holds(self.cur.cap, self.len() + 1)
    }

    /// Whether a resize is moving elements to a new array.
    #[cfg(test)]
    pub fn moving(&self) -> bool {
        self.old.is_some()
    }

    #[inline]
    fn slot(&self, pos: usize) -> u64 {
        let (slots, at) = self.locate(pos);
        slots[at]
    }

    /// The array a position is in, and the position in it: positions run
    /// over the current array, then the old one.
    #[inline]
    fn locate(&self, pos: usize) -> (&[u64], usize) {
        let n = self.cur.slots.len();
        match &self.old {
            Some(m) if pos >= n => (&m.arr.slots, pos - n),
            _ => (&self.cur.slots, pos),
        }
    }

    fn locate_mut(&mut self, pos: usize) -> (&mut Array, usize) {
        let n = self.cur.slots.len();
        match &mut self.old {
            Some(m) if pos >= n => (&mut m.arr, pos - n),
            _ => (&mut self.cur, pos),
        }
    }

    /// The array that holds (or takes) an element of hash `h`, and where
    /// its positions start.
    #[inline]
    fn owner(&self, h: u64) -> (&Array, usize) {
        match &self.old {
            Some(m) if h54(h) >= m.bound => (&m.arr, self.cur.slots.len()),
            _ => (&self.cur, 0),
        }
    }

    fn owner_mut(&mut self, h: u64) -> &mut Array {
        match &mut self.old {
            Some(m) if h54(h) >= m.bound => &mut m.arr,
            _ => &mut self.cur,
        }
    }

    /// The pointer in slot `pos` (0 if empty).
    #[inline]
    pub fn get(&self, pos: usize) -> u64 {
        ptr_of(self.slot(pos))
    }

    /// Position of the element with hash `h` for which `eq` holds.
    #[inline]
    pub fn find(&self, h: u64, eq: impl FnMut(u64) -> bool) -> Option<usize> {
        let (arr, base) = self.owner(h);
        arr.find(h, eq).map(|pos| base + pos)
    }

    /// Replaces the pointer at `pos`, keeping its hash tag and distance
    /// (the new pointer's element must have the same hash).
    pub fn set_ptr(&mut self, pos: usize, ptr: u64) {
        let (arr, at) = self.locate_mut(pos);
        let s = &mut arr.slots[at];
        *s = (*s & !PTR_MASK) | ptr;
    }

    /// Inserts an element known to be absent. `rehash` gives any stored
    /// element's hash (needed when the table grows).
    pub fn insert(&mut self, h: u64, ptr: u64, rehash: impl Fn(u64) -> u64) {
        if self.old.is_some() {
            self.move_some(STEP_SLOTS, &rehash);
        }
        if self.full() {
            self.resize(grown(self.cur.cap), &rehash);
        }
        let mut carry = (h, ptr);
        loop {
            match self.owner_mut(carry.0).place(carry.0, carry.1) {
                Ok(()) => return,
                Err(Overflow(slot)) => {
                    // Robin Hood may have displaced another element: that
                    // one is what is left to place, after a rebuild.
                    let p = ptr_of(slot);
                    self.rebuild(grown(self.cur.cap), &rehash, None);
                    carry = (rehash(p), p);
                }
            }
        }
    }

    /// Makes room for `additional` more elements, so that inserting them
    /// never grows the table on the way: a bulk load that knows its size
    /// rehashes nothing (each growth on the way reads every key so far).
    /// Done at once: a load blocks its clients anyway.
    pub fn reserve(&mut self, additional: usize, rehash: impl Fn(u64) -> u64) {
        let want = self.len() + additional;
        if !holds(self.cur.cap, want) {
            // The smallest range that `holds` `want`.
            self.rebuild((want * 10).div_ceil(9), &rehash, None);
        } else if self.old.is_some() {
            self.rebuild(self.cur.cap, &rehash, None);
        }
    }

    /// Starts moving the elements to an array of `cap` home positions
    /// (finishing a move in progress first); a small table is rebuilt at
    /// once.
    fn resize(&mut self, cap: usize, rehash: &impl Fn(u64) -> u64) {
        if self.old.is_some() {
            self.move_some(usize::MAX, rehash);
        }
        if self.cur.len < MOVE_MIN {
            self.rebuild(cap, rehash, None);
            return;
        }
        let arr = std::mem::replace(&mut self.cur, Array::with_cap(cap));
        self.old = Some(Box::new(Moving {
            arr,
            next: 0,
            bound: 0,
        }));
        self.move_some(STEP_SLOTS, rehash);
    }

    /// Moves `budget` slots of a move in progress, if any (see
    /// `move_some`).
    pub fn continue_move(&mut self, budget: usize, rehash: impl Fn(u64) -> u64) {
        self.move_some(budget, &rehash);
    }

    /// Moves the old array's elements from where the move stands, over at
    /// least `budget` slots and on to the next empty one.
    fn move_some(&mut self, budget: usize, rehash: &impl Fn(u64) -> u64) {
        let Some(m) = self.old.as_deref_mut() else {
            return;
        };
        let n = m.arr.slots.len();
        let mut pos = m.next;
        let mut walked = 0;
        let mut unplaced = None;
        while pos < n && (walked < budget || m.arr.slots[pos] != 0) {
            prefetch_entry_ahead(&m.arr.slots, pos, 1);
            let s = m.arr.slots[pos];
            pos += 1;
            walked += 1;
            if s != 0 {
                m.arr.slots[pos - 1] = 0;
                m.arr.len -= 1;
                let p = ptr_of(s);
                if let Err(Overflow(slot)) = self.cur.place(rehash(p), p) {
                    unplaced = Some(ptr_of(slot));
                    break;
                }
            }
        }
        m.next = pos;
        if unplaced.is_some() {
            // The new array is crowded around this home: rebuild
            // everything at once, larger (rare).
            self.rebuild(grown(self.cur.cap), rehash, unplaced);
            return;
        }
        if m.arr.len == 0 {
            self.old = None;
        } else {
            // Past the home range only an empty array is left (nothing is
            // displaced across an empty slot), so `pos < cap` here.
            m.bound = m.arr.first_hash_at(pos);
        }
    }

    /// Rebuilds the table at once as one array of `cap` home positions
    /// (growing further if an element cannot be placed), with `extra`, an
    /// element that is in neither array, added.
    fn rebuild(&mut self, mut cap: usize, rehash: &impl Fn(u64) -> u64, extra: Option<u64>) {
        let cur = std::mem::take(&mut self.cur);
        let old = self.old.take();
        let old_slots: &[u64] = old.as_ref().map_or(&[], |m| &m.arr.slots);
        loop {
            let mut arr = Array::with_cap(cap);
            let mut put = |p: u64| arr.place(rehash(p), p);
            let placed = for_each_ptr(&cur.slots, &mut put)
                .and_then(|()| for_each_ptr(old_slots, &mut put))
                .and_then(|()| extra.map_or(Ok(()), &mut put));
            if placed.is_ok() {
                self.cur = arr;
                return;
            }
            cap = grown(cap);
        }
    }

    /// Removes the element at `pos` and returns its pointer. Shrinks the
    /// table when it is mostly empty.
    pub fn remove_at(&mut self, pos: usize, rehash: impl Fn(u64) -> u64) -> u64 {
        let (arr, at) = self.locate_mut(pos);
        let removed = arr.remove_at(at);
        let len = self.len();
        if len == 0 {
            *self = Table::default();
        } else if self.old.is_some() {
            self.move_some(STEP_SLOTS, &rehash);
        } else if self.cur.cap > 64 && len * 8 < self.cur.cap {
            self.resize(len * 8 / 5, &rehash);
        }
        removed
    }

    /// Empties the table, returning its pointers.
    pub fn drain(&mut self) -> impl Iterator<Item = u64> + use<> {
        let Table { cur, old } = std::mem::take(self);
        let old = old.map(|m| m.arr.slots).unwrap_or_default();
        cur.slots
            .into_iter()
            .chain(old)
            .filter(|&s| s != 0)
            .map(ptr_of)
    }

    /// A uniformly random occupied position.
    pub fn random_pos(&self, rng: &mut Rng) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let n = self.slot_count();
        // Load is at least ~2/3 of the home range (over 1/3 of both
        // arrays during a move), so few tries suffice.
        for _ in 0..64 {
            let pos = rng.below(n);
            if self.slot(pos) != 0 {
                return Some(pos);
            }
        }
        let start = rng.below(n);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&pos| self.slot(pos) != 0)
    }

    /// A random position to start a run at (see `sample_run_at`).
    pub fn run_start(&self, rng: &mut Rng) -> usize {
        match self.slot_count() {
            0 => 0,
            n => rng.below(n),
        }
    }

    /// Asks the CPU to bring the slots a run from `start` reads into the
    /// cache (a hint; see `sample_run_at`).
    pub fn prefetch_run(&self, start: usize) {
        let (slots, at) = self.locate(start);
        if let Some(p) = slots.get(at) {
            super::entry::prefetch(p as *const u64 as u64);
            if let Some(q) = slots.get(at + 8) {
                super::entry::prefetch(q as *const u64 as u64);
            }
        }
    }

    /// Fills `out` with the pointers of up to `out.len()` elements from a
    /// run of adjacent slots from `start` (a `run_start`, taken modulo the
    /// arrays' length so that it stays valid if the table was resized
    /// since; chosen beforehand so that its slots can be prefetched),
    /// wrapping at the end, as Redis's dictGetSomeKeys samples: one or
    /// two cache lines of slots rather than one random read per element.
    /// Elements sit by hash, so neighbours are as random as any others.
    /// Returns how many it wrote: 0 only for an empty table, fewer than
    /// asked when the table holds fewer or the run meets a long empty
    /// stretch.
    pub fn sample_run_at(&self, start: usize, rng: &mut Rng, out: &mut [u64]) -> usize {
        let len = self.len();
        if len == 0 || out.is_empty() {
            return 0;
        }
        let n = self.slot_count();
        let want = out.len().min(len);
        let mut pos = start % n;
        let mut got = 0;
        // The load is at least 1/8 (a table shrinks below it), so a run of
        // 1024 slots holds ~128 elements on average.
        for _ in 0..n.min(1024) {
            let s = self.slot(pos);
            if s != 0 {
                out[got] = ptr_of(s);
                got += 1;
                if got == want {
                    break;
                }
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
        if got == 0 {
            // A sparse stretch: one uniformly random element instead.
            if let Some(p) = self.random_pos(rng) {
                out[0] = self.get(p);
                got = 1;
            }
        }
        got
    }

    /// Occupied positions in order.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slot_count()).filter(|&pos| self.slot(pos) != 0)
    }

    /// One SCAN step (see the module comment). `cursor` is a 54-bit hash
    /// value (0 to start). Calls `visit` with each pointer in the cursor's
    /// range; `hash` gives an element's hash, asked only for elements that
    /// share the cursor's home slot. Returns the next cursor (0 when the
    /// table is done) and how many slots were walked. During a move the
    /// range below the bound is walked in the new array and the rest in
    /// the old one, so a step still returns every element of its range.
    pub fn scan_step(
        &self,
        cursor: u64,
        count: usize,
        hash: impl Fn(u64) -> u64,
        visit: impl FnMut(u64),
    ) -> (u64, usize) {
        if self.is_empty() || cursor >> HASH_BITS != 0 {
            return (0, 1);
        }
        match &self.old {
            Some(m) if cursor >= m.bound => m.arr.scan_step(cursor, count, hash, visit),
            Some(m) => {
                // The new array holds only elements below the bound; the
                // old one takes over from there.
                let (next, walked) = self.cur.scan_step(cursor, count, hash, visit);
                let next = if next == 0 {
                    m.bound
                } else {
                    next.min(m.bound)
                };
                (next, walked)
            }
            None => self.cur.scan_step(cursor, count, hash, visit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn mix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fake pointers: values 8, 16, 24... (non-zero, under 2^48); the
    /// hash is a function of the pointer, as for the expiry index.
    fn p(i: u64) -> u64 {
        (i + 1) * 8
    }

    /// A reserved table takes that many elements without growing (the
    /// array is the same one), keeps the ones it had, and a reservation
    /// it already has room for changes nothing.
    #[test]
    fn reserve_makes_room_without_growth_on_the_way() {
        for (had, more) in [(0u64, 1u64), (0, 100_000), (37, 5000), (1000, 10)] {
            let mut t = Table::default();
            for i in 0..had {
                t.insert(mix(p(i)), p(i), mix);
            }
            t.reserve(more as usize, mix);
            let slots = t.slot_count();
            let array = t.cur.slots.as_ptr();
            for i in had..had + more {
                t.insert(mix(p(i)), p(i), mix);
            }
            assert_eq!(
                t.slot_count(),
                slots,
                "grew after reserve({more}) over {had}"
            );
            assert_eq!(t.cur.slots.as_ptr(), array);
            assert_eq!(t.len(), (had + more) as usize);
            for i in 0..had + more {
                assert!(t.find(mix(p(i)), |x| x == p(i)).is_some());
            }
            // Load right after: at most 90% (the growth threshold) and, for
            // a large reservation, not far under it.
            assert!(t.len() * 10 <= t.cur.cap * 9);
            if more >= 5000 {
                assert!(
                    t.len() * 100 >= t.cur.cap * 85,
                    "{} in {}",
                    t.len(),
                    t.cur.cap
                );
            }
            t.reserve(0, mix);
            assert_eq!(t.cur.slots.as_ptr(), array);
        }
    }

    /// Property test against a HashMap model: random inserts, removes,
    /// lookups (through growth and shrinking), sampling and full scans.
    #[test]
    fn matches_a_hashmap_model() {
        let mut rng = Rng::new(7);
        let mut steps_in_moves = 0;
        for round in 0..20 {
            let mut t = Table::default();
            let mut model: HashMap<u64, ()> = HashMap::new();
            let universe = [50u64, 2000, 20000][round % 3];
            // Some rounds use a weak hash that collides a lot, to exercise
            // long probe runs, overflow growth and same-home scans.
            let weak = round % 4 == 3;
            let hash = move |ptr: u64| if weak { mix(ptr % 97) } else { mix(ptr) };
            for step in 0..20000 {
                let i = rng.below(universe as usize) as u64;
                let ptr = p(i);
                let h = hash(ptr);
                match rng.below(10) {
                    0..=4 => {
                        if t.find(h, |x| x == ptr).is_none() {
                            t.insert(h, ptr, hash);
                            model.insert(ptr, ());
                        }
                    }
                    5..=7 => {
                        if let Some(pos) = t.find(h, |x| x == ptr) {
                            assert_eq!(t.remove_at(pos, hash), ptr);
                            model.remove(&ptr);
                        } else {
                            assert!(!model.contains_key(&ptr));
                        }
                    }
                    8 => {
                        assert_eq!(t.find(h, |x| x == ptr).is_some(), model.contains_key(&ptr));
                    }
                    _ => {
                        if let Some(pos) = t.random_pos(&mut rng) {
                            assert!(model.contains_key(&t.get(pos)));
                        } else {
                            assert!(model.is_empty());
                        }
                        // A run: distinct stored elements, as many as asked
                        // (or as stored) unless it met a long empty stretch.
                        let mut out = [0u64; 7];
                        let start = t.run_start(&mut rng);
                        t.prefetch_run(start);
                        let got = t.sample_run_at(start, &mut rng, &mut out);
                        assert!(got <= model.len().min(out.len()));
                        assert_eq!(got == 0, model.is_empty());
                        let run: std::collections::HashSet<u64> =
                            out[..got].iter().copied().collect();
                        assert_eq!(run.len(), got);
                        assert!(run.iter().all(|p| model.contains_key(p)));
                    }
                }
                assert_eq!(t.len(), model.len());
                steps_in_moves += t.moving() as usize;
                if step % 500 == 0 {
                    let seen = full_scan(&t, 7, hash);
                    assert_eq!(seen.len(), model.len());
                    assert!(seen.values().all(|&n| n == 1));
                }
            }
            for ptr in model.keys() {
                assert!(t.find(hash(*ptr), |x| x == *ptr).is_some());
            }
            let drained: Vec<u64> = t.drain().collect();
            assert_eq!(drained.len(), model.len());
        }
        assert!(steps_in_moves > 1000, "{steps_in_moves} steps during moves");
    }

    /// Keys present for a whole scan are returned once even when the
    /// table grows and shrinks between steps (moves in progress included).
    #[test]
    fn scan_survives_resizes() {
        let hash = mix;
        let mut t = Table::default();
        for i in 0..1000 {
            t.insert(hash(p(i)), p(i), hash);
        }
        let mut seen: HashMap<u64, u32> = HashMap::new();
        let mut c = 0;
        let mut extra = 1000;
        let mut steps = 0;
        let mut steps_in_moves = 0;
        loop {
            steps_in_moves += t.moving() as usize;
            let (next, _) = t.scan_step(c, 10, hash, |x| *seen.entry(x).or_default() += 1);
            steps += 1;
            // Grow a lot, then shrink below the original size.
            if steps < 20 {
                for _ in 0..500 {
                    t.insert(hash(p(extra)), p(extra), hash);
                    extra += 1;
                }
            } else if steps == 20 {
                for i in 1000..extra {
                    let pos = t.find(hash(p(i)), |x| x == p(i)).unwrap();
                    t.remove_at(pos, hash);
                }
            }
            if next == 0 {
                break;
            }
            c = next;
        }
        for i in 0..1000 {
            assert_eq!(seen.get(&p(i)), Some(&1), "{i} not seen once");
        }
        assert!(steps_in_moves > 0);
    }

    /// How many times a whole SCAN (steps of `count`) returns each element.
    fn full_scan(t: &Table, count: usize, hash: impl Fn(u64) -> u64 + Copy) -> HashMap<u64, u32> {
        let mut seen = HashMap::new();
        let mut c = 0;
        loop {
            let (next, _) = t.scan_step(c, count, hash, |x| *seen.entry(x).or_default() += 1);
            if next == 0 {
                return seen;
            }
            assert!(next > c);
            c = next;
        }
    }

    /// A table with elements `p(0..i)`, filled until a move starts past
    /// `min` elements; returns it and `i`.
    fn filled_until_a_move(min: usize) -> (Table, u64) {
        let mut t = Table::default();
        let mut i = 0;
        while (!t.moving() || t.len() < min) && i < 10 * min as u64 {
            t.insert(mix(p(i)), p(i), mix);
            i += 1;
        }
        assert!(t.moving(), "no move in {i} inserts");
        (t, i)
    }

    /// A growth moves the elements a few slots per insert: right after
    /// the insert that starts it most elements are still in the old
    /// array, every element stays findable through the move, and the
    /// move ends after a small fraction of the table's size in inserts.
    #[test]
    fn growth_moves_a_little_per_insert() {
        let (mut t, mut i) = filled_until_a_move(100_000);
        let old = t.old.as_ref().expect("a move");
        assert!(
            old.arr.len * 100 > t.len() * 99,
            "{} of {} left",
            old.arr.len,
            t.len()
        );
        let started = i;
        while t.moving() {
            t.insert(mix(p(i)), p(i), mix);
            i += 1;
            if i % 97 == 0 {
                for j in (0..i).step_by(101) {
                    assert!(t.find(mix(p(j)), |x| x == p(j)).is_some(), "lost {j}");
                }
            }
        }
        // STEP_SLOTS old slots per insert: about cap / 32 inserts.
        assert!(i - started < t.len() as u64 / 20, "{} inserts", i - started);
        for j in 0..i {
            assert!(t.find(mix(p(j)), |x| x == p(j)).is_some(), "lost {j}");
        }
        assert_eq!(t.len(), i as usize);
    }

    /// During a move elements sit in both arrays: full scans made while
    /// the table moves, between inserts and removals, return each element
    /// once, and every element stays findable.
    #[test]
    fn scans_during_a_move_return_both_arrays_once() {
        let (mut t, mut i) = filled_until_a_move(20_000);
        let mut rounds = 0;
        let mut scans = 0;
        while t.moving() {
            for _ in 0..3 {
                t.insert(mix(p(i)), p(i), mix);
                i += 1;
            }
            let gone = i / 3;
            if let Some(pos) = t.find(mix(p(gone)), |x| x == p(gone)) {
                assert_eq!(t.remove_at(pos, mix), p(gone));
            }
            rounds += 1;
            if rounds % 5 != 0 {
                continue;
            }
            let seen = full_scan(&t, 5, mix);
            assert_eq!(seen.len(), t.len());
            assert!(seen.values().all(|&n| n == 1));
            assert!(seen.keys().all(|&x| t.find(mix(x), |y| y == x).is_some()));
            scans += 1;
        }
        assert!(scans >= 3, "{scans} scans during the move");
    }

    /// Removals move the elements too, and a table emptied during a move
    /// is a fresh one.
    #[test]
    fn removals_finish_a_move() {
        let (mut t, i) = filled_until_a_move(10_000);
        let mut j = 0;
        while t.moving() {
            let pos = t.find(mix(p(j)), |x| x == p(j)).unwrap();
            assert_eq!(t.remove_at(pos, mix), p(j));
            j += 1;
        }
        for k in j..i {
            assert!(t.find(mix(p(k)), |x| x == p(k)).is_some(), "lost {k}");
        }
        for k in j..i {
            let pos = t.find(mix(p(k)), |x| x == p(k)).unwrap();
            t.remove_at(pos, mix);
        }
        assert!(t.is_empty() && !t.moving() && t.slot_count() == 0);
    }

    #[test]
    fn load_stays_high() {
        let mut t = Table::default();
        for i in 0..100_000 {
            t.insert(mix(p(i)), p(i), mix);
            let load = t.len() as f64 / t.slot_count() as f64;
            // The padding (256 slots) weighs on small tables only; during
            // a move both arrays are counted.
            if i > 10_000 && !t.moving() {
                assert!(load > 0.66, "{i}: {load}");
            }
        }
    }
}
