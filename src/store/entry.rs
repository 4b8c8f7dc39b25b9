//! The compact entry: one heap allocation per key holding its metadata,
//! its key bytes and (for strings) its value bytes.
//!
//! This and slots.rs (the tables' arrays) are the store's only unsafe
//! modules. Layout of one allocation (alignment 8, size exactly what the
//! fields need, so a 16-byte key with a 32-byte value takes 56 bytes,
//! jemalloc's 64-byte class, and still 64 with an expiry):
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | LRU clock (`access`), native endian |
//! | 4 | 1 | LFU / S3-FIFO counter (`freq`) |
//! | 5 | 1 | flags: kind (bits 0-2), has-expiry (bit 3), raw (bit 4), snapshot tag (bit 5) |
//! | 6 | 1-5 | key length, LEB128 |
//! | . | 1-10 | value length, LEB128 (strings only) |
//! | . | 8 | absolute expiry in Unix ms (only with the has-expiry flag) |
//! | . | key length | key bytes |
//! | . | value length or 8 | string bytes, or a pointer to the boxed collection |
//!
//! Invariants (what makes the unsafe code sound):
//! 1. An `OwnedEntry` owns its allocation exclusively; `into_raw` hands
//!    that ownership to the caller as a `u64`, and only `from_raw` takes
//!    it back (exactly once). The store keeps such `u64`s in its tables.
//! 2. The allocation's size is recomputed from its header (`Header::size`)
//!    and equals the size it was allocated with; the header is never
//!    changed in a way that alters the size (only `access`, `freq`, the
//!    raw and snapshot flags and an existing expiry are written in place).
//! 3. A collection pointer was made by `Box::into_raw` of the type its
//!    kind names, and is freed with that type (`drop_payload`).
//! 4. Pointers fit in the low 48 bits (x86-64 and aarch64 user space with
//!    4-level paging): `OwnedEntry::alloc` checks it, since the table keeps
//!    a hash tag and a probe distance in the high 16 bits.
//! 5. A `View<'a>` or `ViewMut<'a>` is only made (`view`, `view_mut`) from
//!    the raw value of a live entry, for a lifetime during which the owner
//!    neither frees nor reallocates it (the store ties it to its borrow).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::ptr::NonNull;

use bytes::Bytes;

use super::{BuildHasher, Value, ValueMut, ValueRef};

pub const KIND_STR: u8 = 0;
pub const KIND_LIST: u8 = 1;
pub const KIND_HASH: u8 = 2;
pub const KIND_SET: u8 = 3;
pub const KIND_ZSET: u8 = 4;
const KIND_MASK: u8 = 0x07;
const FLAG_EXPIRE: u8 = 0x08;
const FLAG_RAW: u8 = 0x10;
/// The snapshot tag (see `super::snapshot_tag`): one bit suffices, since
/// every entry carries either the running snapshot's tag or the previous
/// one's.
const FLAG_SNAP: u8 = 0x20;
const FIXED: usize = 6;
const ALIGN: usize = 8;
pub const PTR_BITS: u32 = 48;

type HashColl = HashMap<Bytes, Bytes, BuildHasher>;
type SetColl = HashSet<Bytes, BuildHasher>;
type ZSetColl = HashMap<Bytes, f64, BuildHasher>;

/// The fields an entry is built from.
pub struct Meta {
    pub expire_at: u64,
    pub access: u32,
    pub freq: u8,
    pub raw: bool,
    /// Snapshot tag, 0 or 1.
    pub snap: u8,
}

impl Meta {
    fn flag_bits(&self) -> u8 {
        (if self.raw { FLAG_RAW } else { 0 }) | if self.snap & 1 != 0 { FLAG_SNAP } else { 0 }
    }
}

/// The value part of a new entry.
enum Body<'a> {
    Str(&'a [u8]),
    /// A collection already turned into a raw pointer, with its kind.
    Coll(u8, *mut u8),
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Writes `v` as LEB128 at `p`; returns the bytes written.
///
/// # Safety
/// `p` must be valid for `varint_len(v)` bytes of writes.
unsafe fn write_varint(p: *mut u8, mut v: usize) -> usize {
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            unsafe { p.add(i).write(byte) };
            return i + 1;
        }
        unsafe { p.add(i).write(byte | 0x80) };
        i += 1;
    }
}

/// # Safety
/// `p` must point at a varint written by `write_varint`.
#[inline]
unsafe fn read_varint(p: *const u8) -> (usize, usize) {
    let first = unsafe { p.read() };
    if first < 0x80 {
        return (first as usize, 1);
    }
    let mut v = (first & 0x7f) as usize;
    let mut i = 1;
    loop {
        let b = unsafe { p.add(i).read() };
        v |= ((b & 0x7f) as usize) << (7 * i);
        i += 1;
        if b < 0x80 {
            return (v, i);
        }
    }
}

/// Where the parts of one entry lie, decoded from its header.
#[derive(Clone, Copy)]
struct Header {
    flags: u8,
    /// Offset of the expiry, when present.
    expire_off: usize,
    key_off: usize,
    key_len: usize,
    val_off: usize,
    /// String length, or 8 for a collection pointer.
    val_len: usize,
}

impl Header {
    fn plan(key_len: usize, body: &Body, has_expire: bool) -> (Header, u8) {
        let (kind, val_len) = match body {
            Body::Str(s) => (KIND_STR, s.len()),
            Body::Coll(k, _) => (*k, 8),
        };
        let mut off = FIXED + varint_len(key_len);
        if kind == KIND_STR {
            off += varint_len(val_len);
        }
        let expire_off = off;
        if has_expire {
            off += 8;
        }
        let h = Header {
            flags: kind | if has_expire { FLAG_EXPIRE } else { 0 },
            expire_off,
            key_off: off,
            key_len,
            val_off: off + key_len,
            val_len,
        };
        (h, kind)
    }

    /// # Safety
    /// `p` must point at a live entry (invariant 5).
    #[inline]
    unsafe fn read(p: *const u8) -> Header {
        unsafe {
            let flags = p.add(5).read();
            let (key_len, n) = read_varint(p.add(FIXED));
            let mut off = FIXED + n;
            let val_len = if flags & KIND_MASK == KIND_STR {
                let (v, m) = read_varint(p.add(off));
                off += m;
                v
            } else {
                8
            };
            let expire_off = off;
            if flags & FLAG_EXPIRE != 0 {
                off += 8;
            }
            Header {
                flags,
                expire_off,
                key_off: off,
                key_len,
                val_off: off + key_len,
                val_len,
            }
        }
    }

    fn size(&self) -> usize {
        self.val_off + self.val_len
    }

    fn kind(&self) -> u8 {
        self.flags & KIND_MASK
    }
}

/// An entry allocation owned by this value (invariant 1).
pub struct OwnedEntry(NonNull<u8>);

// SAFETY: the allocation and the collection it points to are owned
// exclusively, like a Box of Send data.
unsafe impl Send for OwnedEntry {}

impl OwnedEntry {
    /// An entry for `key` holding `value` (strings are copied inline,
    /// collections are moved in).
    pub fn new(key: &[u8], value: Value, meta: &Meta) -> OwnedEntry {
        match value {
            Value::Str(s) => Self::alloc(key, Body::Str(&s), meta),
            Value::List(b) => {
                Self::alloc(key, Body::Coll(KIND_LIST, Box::into_raw(b).cast()), meta)
            }
            Value::Hash(b) => {
                Self::alloc(key, Body::Coll(KIND_HASH, Box::into_raw(b).cast()), meta)
            }
            Value::Set(b) => Self::alloc(key, Body::Coll(KIND_SET, Box::into_raw(b).cast()), meta),
            Value::ZSet(b) => {
                Self::alloc(key, Body::Coll(KIND_ZSET, Box::into_raw(b).cast()), meta)
            }
        }
    }

    /// A string entry, copying `value` straight from the caller's buffer.
    pub fn new_str(key: &[u8], value: &[u8], meta: &Meta) -> OwnedEntry {
        Self::alloc(key, Body::Str(value), meta)
    }

    fn alloc(key: &[u8], body: Body, meta: &Meta) -> OwnedEntry {
        let (h, _) = Header::plan(key.len(), &body, meta.expire_at != 0);
        let size = h.size();
        // Sizes come from lengths already held in memory; they cannot
        // overflow isize, so the layout is always valid.
        let Ok(layout) = Layout::from_size_align(size, ALIGN) else {
            handle_alloc_error(Layout::new::<u64>());
        };
        // SAFETY: size > 0 (the fixed header alone is 6 bytes).
        let raw = unsafe { alloc(layout) };
        let Some(p) = NonNull::new(raw) else {
            handle_alloc_error(layout);
        };
        if (p.as_ptr() as u64) >> PTR_BITS != 0 {
            // Invariant 4: the table could not hold this pointer.
            eprintln!("ferrocache: allocation above 2^48, unsupported address space");
            std::process::abort();
        }
        // SAFETY: every write below is within the `size` bytes just
        // allocated, at the offsets `plan` computed.
        unsafe {
            let b = p.as_ptr();
            b.cast::<u32>().write(meta.access);
            b.add(4).write(meta.freq);
            b.add(5).write(h.flags | meta.flag_bits());
            let mut off = FIXED + write_varint(b.add(FIXED), key.len());
            if let Body::Str(s) = body {
                write_varint(b.add(off), s.len());
            }
            if meta.expire_at != 0 {
                b.add(h.expire_off)
                    .cast::<u64>()
                    .write_unaligned(meta.expire_at);
            }
            off = h.key_off;
            std::ptr::copy_nonoverlapping(key.as_ptr(), b.add(off), key.len());
            match body {
                Body::Str(s) => {
                    std::ptr::copy_nonoverlapping(s.as_ptr(), b.add(h.val_off), s.len())
                }
                Body::Coll(_, c) => b.add(h.val_off).cast::<*mut u8>().write_unaligned(c),
            }
        }
        OwnedEntry(p)
    }

    /// Hands the allocation over as a plain integer (invariant 1).
    pub fn into_raw(self) -> u64 {
        let bits = self.0.as_ptr() as u64;
        std::mem::forget(self);
        bits
    }

    /// Takes back an allocation given away by `into_raw`.
    ///
    /// # Safety
    /// `bits` must come from `into_raw` and not have been taken back yet.
    pub unsafe fn from_raw(bits: u64) -> OwnedEntry {
        // SAFETY: `into_raw` produced it from a NonNull.
        OwnedEntry(unsafe { NonNull::new_unchecked(bits as *mut u8) })
    }

    pub fn view(&self) -> View<'_> {
        View {
            p: self.0,
            _life: PhantomData,
        }
    }

    /// The value and metadata, freeing the allocation (collections move
    /// out; strings are copied into a `Bytes` of their exact length).
    pub fn into_parts(self) -> (Value, Meta) {
        let v = self.view();
        let meta = v.meta();
        // SAFETY: header of our own live allocation.
        let h = unsafe { Header::read(self.0.as_ptr()) };
        let value = match h.kind() {
            KIND_STR => Value::Str(Bytes::copy_from_slice(v.str_bytes(&h))),
            kind => {
                let c = v.coll_ptr(&h);
                // SAFETY: invariant 3; the pointer is taken out and the
                // allocation freed below without dropping it again.
                unsafe {
                    match kind {
                        KIND_LIST => Value::List(Box::from_raw(c.cast())),
                        KIND_HASH => Value::Hash(Box::from_raw(c.cast())),
                        KIND_SET => Value::Set(Box::from_raw(c.cast())),
                        _ => Value::ZSet(Box::from_raw(c.cast())),
                    }
                }
            }
        };
        // SAFETY: the collection (if any) now belongs to `value`.
        unsafe { free_block(self.0, &h) };
        std::mem::forget(self);
        (value, meta)
    }

    /// Bytes the allocation itself takes (its size, before size classes).
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.view().size()
    }

    /// The same entry with another expiry (0: none), which changes its
    /// layout. Moves a collection instead of copying it.
    pub fn with_expire(self, expire_at: u64) -> OwnedEntry {
        let v = self.view();
        let meta = Meta {
            expire_at,
            ..v.meta()
        };
        // SAFETY: header of our own live allocation.
        let h = unsafe { Header::read(self.0.as_ptr()) };
        let body = if h.kind() == KIND_STR {
            Body::Str(v.str_bytes(&h))
        } else {
            Body::Coll(h.kind(), v.coll_ptr(&h))
        };
        let new = Self::alloc(v.key(), body, &meta);
        // SAFETY: a collection pointer now belongs to `new`; the block is
        // freed without dropping it.
        unsafe { free_block(self.0, &h) };
        std::mem::forget(self);
        new
    }

    /// The same key and metadata with a new string value (`raw`: it was
    /// modified in place, as APPEND and SETRANGE do).
    pub fn with_str(self, value: &[u8], raw: bool) -> OwnedEntry {
        let v = self.view();
        let meta = Meta { raw, ..v.meta() };
        Self::alloc(v.key(), Body::Str(value), &meta)
        // `self` drops here, freeing the old value.
    }
}

impl Drop for OwnedEntry {
    fn drop(&mut self) {
        // SAFETY: we own the allocation (invariant 1).
        unsafe {
            let h = Header::read(self.0.as_ptr());
            drop_payload(self.0, &h);
            free_block(self.0, &h);
        }
    }
}

/// # Safety
/// `p` is a live entry with header `h`; its collection is dropped here
/// and must not be used again.
unsafe fn drop_payload(p: NonNull<u8>, h: &Header) {
    if h.kind() == KIND_STR {
        return;
    }
    unsafe {
        let c = p.as_ptr().add(h.val_off).cast::<*mut u8>().read_unaligned();
        match h.kind() {
            KIND_LIST => drop(Box::from_raw(c.cast::<VecDeque<Bytes>>())),
            KIND_HASH => drop(Box::from_raw(c.cast::<HashColl>())),
            KIND_SET => drop(Box::from_raw(c.cast::<SetColl>())),
            _ => drop(Box::from_raw(c.cast::<ZSetColl>())),
        }
    }
}

/// # Safety
/// `p` is a live entry with header `h`, not used after this.
unsafe fn free_block(p: NonNull<u8>, h: &Header) {
    // SAFETY: invariant 2: the same size and alignment it was made with.
    unsafe {
        dealloc(
            p.as_ptr(),
            Layout::from_size_align_unchecked(h.size(), ALIGN),
        )
    };
}

/// A borrowed, read-only look at an entry.
#[derive(Clone, Copy)]
pub struct View<'a> {
    p: NonNull<u8>,
    _life: PhantomData<&'a u8>,
}

/// Asks the CPU to bring the start of the entry `bits` (its header and
/// usually its key) into the cache. Only a hint: it never faults, so any
/// value is allowed.
#[inline]
pub fn prefetch(bits: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(bits as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bits;
}

/// Views the entry whose raw value is `bits`.
///
/// # Safety
/// Invariant 5: `bits` is a live entry that stays live and unmoved for `'a`.
#[inline]
pub unsafe fn view<'a>(bits: u64) -> View<'a> {
    View {
        // SAFETY: a live entry's pointer is non-null.
        p: unsafe { NonNull::new_unchecked(bits as *mut u8) },
        _life: PhantomData,
    }
}

impl<'a> View<'a> {
    #[inline]
    fn header(&self) -> Header {
        // SAFETY: a View only exists for a live entry.
        unsafe { Header::read(self.p.as_ptr()) }
    }

    #[inline]
    pub fn key(&self) -> &'a [u8] {
        let h = self.header();
        // SAFETY: the key lies at key_off..+key_len of the live entry.
        unsafe { std::slice::from_raw_parts(self.p.as_ptr().add(h.key_off), h.key_len) }
    }

    fn str_bytes(&self, h: &Header) -> &'a [u8] {
        // SAFETY: a string's bytes lie at val_off..+val_len.
        unsafe { std::slice::from_raw_parts(self.p.as_ptr().add(h.val_off), h.val_len) }
    }

    fn coll_ptr(&self, h: &Header) -> *mut u8 {
        // SAFETY: a collection entry stores its pointer at val_off.
        unsafe {
            self.p
                .as_ptr()
                .add(h.val_off)
                .cast::<*mut u8>()
                .read_unaligned()
        }
    }

    /// Key, value and expiry, decoding the header once (the lookup path).
    #[inline]
    pub fn parts(&self) -> (&'a [u8], ValueRef<'a>, u64) {
        let h = self.header();
        // SAFETY: as in `key` and `expire_at`.
        unsafe {
            let key = std::slice::from_raw_parts(self.p.as_ptr().add(h.key_off), h.key_len);
            let at = if h.flags & FLAG_EXPIRE == 0 {
                0
            } else {
                self.p
                    .as_ptr()
                    .add(h.expire_off)
                    .cast::<u64>()
                    .read_unaligned()
            };
            (key, self.value_of(&h), at)
        }
    }

    #[inline]
    fn value_of(&self, h: &Header) -> ValueRef<'a> {
        if h.kind() == KIND_STR {
            return ValueRef::Str(self.str_bytes(h));
        }
        let c = self.coll_ptr(h);
        // SAFETY: invariant 3, and the collection lives as long as the
        // entry, which outlives 'a (invariant 5).
        unsafe {
            match h.kind() {
                KIND_LIST => ValueRef::List(&*c.cast::<VecDeque<Bytes>>()),
                KIND_HASH => ValueRef::Hash(&*c.cast::<HashColl>()),
                KIND_SET => ValueRef::Set(&*c.cast::<SetColl>()),
                _ => ValueRef::ZSet(&*c.cast::<ZSetColl>()),
            }
        }
    }

    #[inline]
    pub fn value(&self) -> ValueRef<'a> {
        self.value_of(&self.header())
    }

    #[inline]
    pub fn expire_at(&self) -> u64 {
        let h = self.header();
        if h.flags & FLAG_EXPIRE == 0 {
            return 0;
        }
        // SAFETY: the flag says an expiry is stored at expire_off.
        unsafe {
            self.p
                .as_ptr()
                .add(h.expire_off)
                .cast::<u64>()
                .read_unaligned()
        }
    }

    #[inline]
    pub fn access(&self) -> u32 {
        // SAFETY: offset 0 of a live, 8-aligned entry.
        unsafe { self.p.as_ptr().cast::<u32>().read() }
    }

    #[inline]
    pub fn freq(&self) -> u8 {
        // SAFETY: offset 4 of a live entry.
        unsafe { self.p.as_ptr().add(4).read() }
    }

    #[inline]
    pub fn raw(&self) -> bool {
        // SAFETY: offset 5 of a live entry.
        unsafe { self.p.as_ptr().add(5).read() & FLAG_RAW != 0 }
    }

    /// The snapshot tag, 0 or 1.
    #[inline]
    pub fn snap(&self) -> u8 {
        // SAFETY: offset 5 of a live entry.
        unsafe { (self.p.as_ptr().add(5).read() & FLAG_SNAP != 0) as u8 }
    }

    pub fn meta(&self) -> Meta {
        Meta {
            expire_at: self.expire_at(),
            access: self.access(),
            freq: self.freq(),
            raw: self.raw(),
            snap: self.snap(),
        }
    }

    /// Bytes the allocation takes before rounding to a size class.
    pub fn size(&self) -> usize {
        self.header().size()
    }

    /// Whether the value is a string (no allocation of its own).
    pub fn is_str(&self) -> bool {
        self.header().kind() == KIND_STR
    }

    pub fn addr(&self) -> usize {
        self.p.as_ptr() as usize
    }
}

/// Writes to the fields of an entry that never change its size.
pub struct ViewMut<'a> {
    p: NonNull<u8>,
    _life: PhantomData<&'a mut u8>,
}

/// # Safety
/// As `view`, and no other view of the entry is used during `'a`.
#[inline]
pub unsafe fn view_mut<'a>(bits: u64) -> ViewMut<'a> {
    ViewMut {
        // SAFETY: a live entry's pointer is non-null.
        p: unsafe { NonNull::new_unchecked(bits as *mut u8) },
        _life: PhantomData,
    }
}

impl<'a> ViewMut<'a> {
    pub fn view(&self) -> View<'_> {
        View {
            p: self.p,
            _life: PhantomData,
        }
    }

    #[inline]
    pub fn set_access(&mut self, v: u32) {
        // SAFETY: offset 0 of a live, 8-aligned entry we may write.
        unsafe { self.p.as_ptr().cast::<u32>().write(v) }
    }

    #[inline]
    pub fn set_freq(&mut self, v: u8) {
        // SAFETY: offset 4 of a live entry we may write.
        unsafe { self.p.as_ptr().add(4).write(v) }
    }

    /// Sets the snapshot tag (0 or 1); the layout does not change.
    #[inline]
    pub fn set_snap(&mut self, tag: u8) {
        // SAFETY: offset 5 of a live entry we may write.
        unsafe {
            let f = self.p.as_ptr().add(5);
            f.write(f.read() & !FLAG_SNAP | if tag & 1 != 0 { FLAG_SNAP } else { 0 });
        }
    }

    /// Overwrites an expiry the entry already has; false (and nothing
    /// written) when it has none or `at` is 0, which need a new layout.
    pub fn replace_expire(&mut self, at: u64) -> bool {
        // SAFETY: live entry.
        let h = unsafe { Header::read(self.p.as_ptr()) };
        if h.flags & FLAG_EXPIRE == 0 || at == 0 {
            return false;
        }
        // SAFETY: the flag says 8 bytes of expiry lie at expire_off.
        unsafe {
            self.p
                .as_ptr()
                .add(h.expire_off)
                .cast::<u64>()
                .write_unaligned(at)
        };
        true
    }

    /// Overwrites a string value of the same length, and the metadata, in
    /// place (a SET over a key whose value keeps its size and whose expiry
    /// stays present or absent: the layout is unchanged, invariant 2).
    /// False, and nothing written, when the layout would change.
    pub fn overwrite_str(&mut self, value: &[u8], meta: &Meta) -> bool {
        // SAFETY: live entry.
        let h = unsafe { Header::read(self.p.as_ptr()) };
        if h.kind() != KIND_STR
            || h.val_len != value.len()
            || (h.flags & FLAG_EXPIRE != 0) != (meta.expire_at != 0)
        {
            return false;
        }
        // SAFETY: same layout as planned for these lengths and flags, so
        // each write lands within the allocation at its field's offset.
        unsafe {
            let b = self.p.as_ptr();
            b.cast::<u32>().write(meta.access);
            b.add(4).write(meta.freq);
            b.add(5)
                .write(h.flags & !(FLAG_RAW | FLAG_SNAP) | meta.flag_bits());
            if meta.expire_at != 0 {
                b.add(h.expire_off)
                    .cast::<u64>()
                    .write_unaligned(meta.expire_at);
            }
            std::ptr::copy_nonoverlapping(value.as_ptr(), b.add(h.val_off), value.len());
        }
        true
    }

    /// The collection, for changes in place; `None` for strings (whose
    /// bytes are inline and change by re-encoding the entry).
    pub fn coll_mut(self) -> Option<ValueMut<'a>> {
        // SAFETY: live entry.
        let h = unsafe { Header::read(self.p.as_ptr()) };
        if h.kind() == KIND_STR {
            return None;
        }
        // SAFETY: invariant 3; exclusive access for 'a (see `view_mut`).
        unsafe {
            let c = self
                .p
                .as_ptr()
                .add(h.val_off)
                .cast::<*mut u8>()
                .read_unaligned();
            Some(match h.kind() {
                KIND_LIST => ValueMut::List(&mut *c.cast::<VecDeque<Bytes>>()),
                KIND_HASH => ValueMut::Hash(&mut *c.cast::<HashColl>()),
                KIND_SET => ValueMut::Set(&mut *c.cast::<SetColl>()),
                _ => ValueMut::ZSet(&mut *c.cast::<ZSetColl>()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(expire_at: u64) -> Meta {
        Meta {
            expire_at,
            access: 7,
            freq: 5,
            raw: false,
            snap: 0,
        }
    }

    #[test]
    fn string_layout_fits_the_64_byte_class() {
        let e = OwnedEntry::new_str(&[b'k'; 16], &[b'v'; 32], &meta(0));
        assert_eq!(e.size(), 56);
        let t = OwnedEntry::new_str(&[b'k'; 16], &[b'v'; 32], &meta(123));
        assert_eq!(t.size(), 64);
        // The snapshot tag lives in the flags byte: no size change.
        let tagged = OwnedEntry::new_str(
            &[b'k'; 16],
            &[b'v'; 32],
            &Meta {
                snap: 1,
                ..meta(123)
            },
        );
        assert_eq!((tagged.size(), tagged.view().snap()), (64, 1));
        let v = t.view();
        assert_eq!(v.key(), &[b'k'; 16]);
        assert!(matches!(v.value(), ValueRef::Str(s) if s == [b'v'; 32]));
        assert_eq!(v.expire_at(), 123);
        assert_eq!((v.access(), v.freq(), v.raw()), (7, 5, false));
    }

    #[test]
    fn long_lengths_and_empty_parts_round_trip() {
        for (klen, vlen) in [(0, 0), (127, 128), (128, 16383), (16384, 1 << 21)] {
            let key = vec![b'a'; klen];
            let val: Vec<u8> = (0..vlen).map(|i| i as u8).collect();
            let e = OwnedEntry::new_str(&key, &val, &meta(u64::MAX));
            let v = e.view();
            assert_eq!(v.key(), &key[..]);
            assert!(matches!(v.value(), ValueRef::Str(s) if s == &val[..]));
            assert_eq!(v.expire_at(), u64::MAX);
            let (value, m) = e.into_parts();
            assert!(matches!(value, Value::Str(s) if s == val));
            assert_eq!(m.expire_at, u64::MAX);
        }
    }

    #[test]
    fn collections_move_in_and_out_and_drop() {
        let mut list = VecDeque::new();
        list.push_back(Bytes::from_static(b"x"));
        let e = OwnedEntry::new(b"l", Value::List(Box::new(list)), &meta(0));
        // SAFETY: `e` is alive and not otherwise viewed in this scope.
        let bits = e.into_raw();
        unsafe {
            if let Some(ValueMut::List(l)) = view_mut(bits).coll_mut() {
                l.push_back(Bytes::from_static(b"y"));
            }
            let mut vm = view_mut(bits);
            vm.set_access(99);
            vm.set_freq(1);
            vm.set_snap(1);
            assert_eq!(vm.view().snap(), 1);
            vm.set_snap(0);
            assert!(!vm.replace_expire(5));
        }
        // SAFETY: taken back exactly once.
        let e = unsafe { OwnedEntry::from_raw(bits) };
        assert_eq!(
            (e.view().access(), e.view().freq(), e.view().raw()),
            (99, 1, false)
        );
        let (value, _) = e.into_parts();
        assert!(matches!(value, Value::List(l) if l.len() == 2));
        // Dropping an entry drops its collection (checked under miri/asan).
        let mut set = HashSet::default();
        set.insert(Bytes::from_static(b"m"));
        drop(OwnedEntry::new(b"s", Value::Set(Box::new(set)), &meta(1)));
    }

    #[test]
    fn same_size_strings_are_overwritten_in_place() {
        let bits = OwnedEntry::new_str(b"k", b"abc", &meta(10)).into_raw();
        // SAFETY: alive, sole view; freed once at the end.
        unsafe {
            let m = Meta {
                raw: true,
                ..meta(11)
            };
            assert!(view_mut(bits).overwrite_str(b"xyz", &m));
            assert!(matches!(view(bits).value(), ValueRef::Str(b"xyz")));
            assert_eq!((view(bits).expire_at(), view(bits).raw()), (11, true));
            assert!(!view_mut(bits).overwrite_str(b"xy", &m));
            assert!(!view_mut(bits).overwrite_str(b"xyz", &meta(0)));
            drop(OwnedEntry::from_raw(bits));
        }
    }

    #[test]
    fn expiry_can_be_replaced_in_place() {
        let e = OwnedEntry::new_str(b"k", b"v", &meta(10));
        let bits = e.into_raw();
        // SAFETY: alive, sole view.
        unsafe {
            assert!(view_mut(bits).replace_expire(20));
            assert_eq!(view(bits).expire_at(), 20);
            drop(OwnedEntry::from_raw(bits));
        }
    }
}
