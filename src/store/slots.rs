//! Zeroed `u64` arrays for the tables' slots, large ones mapped straight
//! from the kernel on 4 KiB pages.
//!
//! Why not jemalloc for the large ones: jemalloc's heap is advised for
//! transparent huge pages (`thp:always`), and where the host's THP defrag
//! setting is `madvise` (Debian's default) the first touch of each huge
//! page of a fresh array may compact memory first. A table's move touches
//! its new array's pages one after another, and each such fault held the
//! worker 5-10 ms: 182 `move_some` calls over 200 us while 6M SETs grew a
//! table to 2.6M keys a shard, the longest 9.7 ms, 413 ms in all for the
//! last move. With this array on 4 KiB pages: 53 calls over 200 us, the
//! longest 2.2 ms, 176 ms for the last move (builds that log it; see
//! docs/benchmarks.md). GET at P=16 over 3.2M keys measured the same
//! within noise (the entries the slots point to stay on huge pages).
//!
//! Unsafe: the memory is owned by one `Slots` and lives as long as it.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Arrays from this many bytes on are mapped; smaller ones come from the
/// global allocator (a mapping per small table would waste its page).
const MAP_FROM_BYTES: usize = 256 << 10;

pub struct Slots {
    ptr: NonNull<u64>,
    len: usize,
}

// SAFETY: `Slots` owns its memory exclusively, like a `Box<[u64]>`.
unsafe impl Send for Slots {}
// SAFETY: shared access only reads, as for `Box<[u64]>`.
unsafe impl Sync for Slots {}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }
}

fn layout(len: usize) -> std::alloc::Layout {
    std::alloc::Layout::array::<u64>(len).expect("slot array size overflows")
}

fn mapped(len: usize) -> bool {
    len * 8 >= MAP_FROM_BYTES
}

/// Bytes an array of `len` slots takes: whole pages when mapped.
pub fn bytes_for(len: usize) -> usize {
    if len == 0 {
        0
    } else if mapped(len) {
        (len * 8).next_multiple_of(4096)
    } else {
        crate::memory::alloc_size(len * 8)
    }
}

impl Slots {
    /// `len` zero slots.
    pub fn zeroed(len: usize) -> Slots {
        if len == 0 {
            return Slots::default();
        }
        let raw = if mapped(len) {
            // SAFETY: an anonymous private mapping, no address hint; the
            // result is checked against MAP_FAILED.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len * 8,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                std::alloc::handle_alloc_error(layout(len));
            }
            p as *mut u64
        } else {
            // SAFETY: a non-zero size.
            unsafe { std::alloc::alloc_zeroed(layout(len)) as *mut u64 }
        };
        match NonNull::new(raw) {
            Some(ptr) => Slots { ptr, len },
            None => std::alloc::handle_alloc_error(layout(len)),
        }
    }
}

impl Deref for Slots {
    type Target = [u64];

    #[inline]
    fn deref(&self) -> &[u64] {
        // SAFETY: `len` initialized u64s at `ptr` (dangling and 0 when
        // empty, which a slice allows).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Slots {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        let p = self.ptr.as_ptr();
        if mapped(self.len) {
            // SAFETY: the mapping made in `zeroed`, of this length.
            unsafe { libc::munmap(p as *mut libc::c_void, self.len * 8) };
        } else {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { std::alloc::dealloc(p as *mut u8, layout(self.len)) };
        }
    }
}

/// The slots of an array, by value (a table's `drain`).
pub struct IntoIter {
    slots: Slots,
    pos: usize,
}

impl Iterator for IntoIter {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let s = *self.slots.get(self.pos)?;
        self.pos += 1;
        Some(s)
    }
}

impl IntoIterator for Slots {
    type Item = u64;
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter {
            slots: self,
            pos: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_mapped_arrays_are_zero_and_writable() {
        for len in [0, 1, 100, MAP_FROM_BYTES / 8, MAP_FROM_BYTES / 8 * 3 + 5] {
            let mut s = Slots::zeroed(len);
            assert_eq!(s.len(), len);
            assert!(s.iter().all(|&x| x == 0));
            for (i, x) in s.iter_mut().enumerate() {
                *x = i as u64;
            }
            assert_eq!(
                s.into_iter().sum::<u64>(),
                (len as u64 * len as u64 - len as u64) / 2
            );
        }
    }
}
