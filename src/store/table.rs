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

use crate::memory::alloc_size;

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

#[derive(Default)]
pub struct Table {
    slots: Box<[u64]>,
    /// Home positions are 0..cap; `slots.len() - cap` is the padding.
    cap: usize,
    len: usize,
}

/// Why an insert could not place an element: the one it carries now
/// (perhaps another element it displaced), to place after growing.
struct Overflow(u64);

impl Table {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots in the array (home range plus padding).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Bytes the slot array takes.
    pub fn bytes(&self) -> usize {
        alloc_size(self.slots.len() * 8)
    }

    /// Bytes the slot array would take after the next growth.
    pub fn bytes_after_growth(&self) -> usize {
        let cap = Self::grown(self.cap);
        alloc_size((cap + Self::pad(cap)) * 8)
    }

    /// Whether inserting one more element grows the table.
    pub fn full(&self) -> bool {
        !Self::holds(self.cap, self.len + 1)
    }

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

    #[inline]
    fn home(&self, h: u64) -> usize {
        ((h54(h) as u128 * self.cap as u128) >> HASH_BITS) as usize
    }

    /// The pointer in slot `pos` (0 if empty).
    #[inline]
    pub fn get(&self, pos: usize) -> u64 {
        ptr_of(self.slots[pos])
    }

    /// Position of the element with hash `h` for which `eq` holds.
    #[inline]
    pub fn find(&self, h: u64, mut eq: impl FnMut(u64) -> bool) -> Option<usize> {
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

    /// Replaces the pointer at `pos`, keeping its hash tag and distance
    /// (the new pointer's element must have the same hash).
    pub fn set_ptr(&mut self, pos: usize, ptr: u64) {
        let s = &mut self.slots[pos];
        *s = (*s & !PTR_MASK) | ptr;
    }

    /// Inserts an element known to be absent. `rehash` gives any stored
    /// element's hash (needed when the table grows).
    pub fn insert(&mut self, h: u64, ptr: u64, rehash: impl Fn(u64) -> u64) {
        if self.full() {
            self.resize(Self::grown(self.cap), &rehash);
        }
        let mut carry = (h, ptr);
        while let Err(Overflow(slot)) = self.place(carry.0, carry.1) {
            // Robin Hood may have displaced another element: that one is
            // what is left to place.
            let p = ptr_of(slot);
            self.resize(Self::grown(self.cap), &rehash);
            carry = (rehash(p), p);
        }
    }

    /// Makes room for `additional` more elements, so that inserting them
    /// never grows the table on the way: a bulk load that knows its size
    /// rehashes nothing (each growth on the way reads every key so far).
    pub fn reserve(&mut self, additional: usize, rehash: impl Fn(u64) -> u64) {
        let want = self.len + additional;
        if !Self::holds(self.cap, want) {
            // The smallest range that `holds` `want`.
            self.resize((want * 10).div_ceil(9), &rehash);
        }
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

    /// Rebuilds the table with `cap` home positions (growing further if an
    /// element cannot be placed).
    fn resize(&mut self, mut cap: usize, rehash: &impl Fn(u64) -> u64) {
        let old = std::mem::take(&mut self.slots);
        'retry: loop {
            cap = cap.max(MIN_CAP);
            self.cap = cap;
            self.len = 0;
            self.slots = vec![0u64; cap + Self::pad(cap)].into_boxed_slice();
            for (i, &s) in old.iter().enumerate() {
                // The keyspace's rehash reads the key, at the start of the
                // entry. (The expiry index hashes the address and gains
                // nothing from it.)
                prefetch_entry_ahead(&old, i, 1);
                if s == 0 {
                    continue;
                }
                let p = ptr_of(s);
                if self.place(rehash(p), p).is_err() {
                    cap = Self::grown(cap);
                    continue 'retry;
                }
            }
            return;
        }
    }

    /// Removes the element at `pos` and returns its pointer. Shrinks the
    /// table when it is mostly empty.
    pub fn remove_at(&mut self, pos: usize, rehash: impl Fn(u64) -> u64) -> u64 {
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
        if self.len == 0 {
            *self = Table::default();
        } else if self.cap > 64 && self.len * 8 < self.cap {
            self.resize(self.len * 8 / 5, &rehash);
        }
        removed
    }

    /// Empties the table, returning its pointers.
    pub fn drain(&mut self) -> impl Iterator<Item = u64> + use<> {
        let old = std::mem::take(self);
        old.slots.into_iter().filter(|&s| s != 0).map(ptr_of)
    }

    /// A uniformly random occupied position.
    pub fn random_pos(&self, rng: &mut Rng) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let n = self.slots.len();
        // Load is at least ~2/3 of the home range, so few tries suffice.
        for _ in 0..64 {
            let pos = rng.below(n);
            if self.slots[pos] != 0 {
                return Some(pos);
            }
        }
        let start = rng.below(n);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&pos| self.slots[pos] != 0)
    }

    /// A random position to start a run at (see `sample_run_at`).
    pub fn run_start(&self, rng: &mut Rng) -> usize {
        if self.slots.is_empty() {
            0
        } else {
            rng.below(self.slots.len())
        }
    }

    /// Asks the CPU to bring the slots a run from `start` reads into the
    /// cache (a hint; see `sample_run_at`).
    pub fn prefetch_run(&self, start: usize) {
        if let Some(p) = self.slots.get(start) {
            super::entry::prefetch(p as *const u64 as u64);
            if let Some(q) = self.slots.get(start + 8) {
                super::entry::prefetch(q as *const u64 as u64);
            }
        }
    }

    /// Fills `out` with the pointers of up to `out.len()` elements from a
    /// run of adjacent slots from `start` (a `run_start`, taken modulo the
    /// array's length so that it stays valid if the table was resized
    /// since; chosen beforehand so that its slots can be prefetched),
    /// wrapping at the end, as Redis's dictGetSomeKeys samples: one or
    /// two cache lines of slots rather than one random read per element.
    /// Elements sit by hash, so neighbours are as random as any others.
    /// Returns how many it wrote: 0 only for an empty table, fewer than
    /// asked when the table holds fewer or the run meets a long empty
    /// stretch.
    pub fn sample_run_at(&self, start: usize, rng: &mut Rng, out: &mut [u64]) -> usize {
        if self.len == 0 || out.is_empty() {
            return 0;
        }
        let n = self.slots.len();
        let want = out.len().min(self.len);
        let mut pos = start % n;
        let mut got = 0;
        // The load is at least 1/8 (a table shrinks below it), so a run of
        // 1024 slots holds ~128 elements on average.
        for _ in 0..n.min(1024) {
            let s = self.slots[pos];
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
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != 0)
            .map(|(i, _)| i)
    }

    /// One SCAN step (see the module comment). `cursor` is a 54-bit hash
    /// value (0 to start). Calls `visit` with each pointer in the cursor's
    /// range; `hash` gives an element's hash, asked only for elements that
    /// share the cursor's home slot. Returns the next cursor (0 when the
    /// table is done) and how many slots were walked.
    pub fn scan_step(
        &self,
        cursor: u64,
        count: usize,
        hash: impl Fn(u64) -> u64,
        mut visit: impl FnMut(u64),
    ) -> (u64, usize) {
        if self.len == 0 || cursor >> HASH_BITS != 0 {
            return (0, 1);
        }
        let start = ((cursor as u128 * self.cap as u128) >> HASH_BITS) as usize;
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
        // The smallest c' with home(c') >= pos: ceil(pos * 2^54 / cap).
        let next = ((pos as u128) << HASH_BITS).div_ceil(self.cap as u128) as u64;
        (next, walked)
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
            let array = t.slots.as_ptr();
            for i in had..had + more {
                t.insert(mix(p(i)), p(i), mix);
            }
            assert_eq!(
                t.slot_count(),
                slots,
                "grew after reserve({more}) over {had}"
            );
            assert_eq!(t.slots.as_ptr(), array);
            assert_eq!(t.len(), (had + more) as usize);
            for i in 0..had + more {
                assert!(t.find(mix(p(i)), |x| x == p(i)).is_some());
            }
            // Load right after: at most 90% (the growth threshold) and, for
            // a large reservation, not far under it.
            assert!(t.len() * 10 <= t.cap * 9);
            if more >= 5000 {
                assert!(t.len() * 100 >= t.cap * 85, "{} in {}", t.len(), t.cap);
            }
            t.reserve(0, mix);
            assert_eq!(t.slots.as_ptr(), array);
        }
    }

    /// Property test against a HashMap model: random inserts, removes,
    /// lookups (through growth and shrinking), sampling and full scans.
    #[test]
    fn matches_a_hashmap_model() {
        let mut rng = Rng::new(7);
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
                if step % 5000 == 0 {
                    let mut seen = HashMap::new();
                    let mut c = 0;
                    loop {
                        let (next, _) =
                            t.scan_step(c, 7, hash, |x| *seen.entry(x).or_insert(0) += 1);
                        if next == 0 {
                            break;
                        }
                        assert!(next > c);
                        c = next;
                    }
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
    }

    /// Keys present for a whole scan are returned even when the table
    /// grows and shrinks between steps.
    #[test]
    fn scan_survives_resizes() {
        let hash = mix;
        let mut t = Table::default();
        for i in 0..1000 {
            t.insert(hash(p(i)), p(i), hash);
        }
        let mut seen = std::collections::HashSet::new();
        let mut c = 0;
        let mut extra = 1000;
        let mut steps = 0;
        loop {
            let (next, _) = t.scan_step(c, 10, hash, |x| {
                seen.insert(x);
            });
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
            assert!(seen.contains(&p(i)), "missed {i}");
        }
    }

    #[test]
    fn load_stays_high() {
        let mut t = Table::default();
        for i in 0..100_000 {
            t.insert(mix(p(i)), p(i), mix);
            let load = t.len() as f64 / t.slot_count() as f64;
            // The padding (256 slots) weighs on small tables only.
            if i > 10_000 {
                assert!(load > 0.66, "{i}: {load}");
            }
        }
    }
}
