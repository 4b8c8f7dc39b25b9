//! Memory accounting.
//!
//! The process allocates through jemalloc (set as the global allocator in
//! main.rs, as Redis does), which gives two things:
//! - `alloc_size(n)`: the bytes an allocation of `n` really takes (its
//!   size class), so the store can keep an exact, incremental count of
//!   what its entries hold without asking the allocator per command;
//! - `allocator_stats()`: the allocator's own totals, for INFO and for the
//!   periodic correction of everything that is not the dataset (buffers,
//!   runtime, code).

/// Bytes jemalloc reserves for an allocation of `n` bytes.
#[inline]
pub fn alloc_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // SAFETY: nallocx only computes the size class; it allocates nothing.
    unsafe { tikv_jemalloc_sys::nallocx(n, 0) }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct AllocatorStats {
    pub allocated: usize,
    pub active: usize,
    pub resident: usize,
    pub mapped: usize,
    pub retained: usize,
}

/// The allocator's current totals (refreshes jemalloc's stats epoch,
/// ~10 µs: call it from INFO and the cron, not per command).
pub fn allocator_stats() -> AllocatorStats {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    AllocatorStats {
        allocated: stats::allocated::read().unwrap_or(0),
        active: stats::active::read().unwrap_or(0),
        resident: stats::resident::read().unwrap_or(0),
        mapped: stats::mapped::read().unwrap_or(0),
        retained: stats::retained::read().unwrap_or(0),
    }
}

/// Returns every arena's unused dirty pages to the system now (Redis's
/// jemalloc_purge: mallctl `arena.<MALLCTL_ARENAS_ALL>.purge`).
pub fn purge() {
    const NAME: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated mallctl name that takes no input and
    // returns nothing; null pointers are what such a call expects.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            NAME.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// Resident set size from /proc (Linux), for used_memory_rss.
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<usize>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// jemalloc's version number (e.g. `5.3.1`), without its git suffix and
/// the NUL the C string carries.
pub fn jemalloc_version() -> &'static str {
    let v = tikv_jemalloc_ctl::version::read().unwrap_or("unknown");
    let v = v.trim_end_matches('\0');
    v.split('-').next().unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(alloc_size(0), 0);
        assert_eq!(alloc_size(1), 8);
        assert_eq!(alloc_size(100), 112);
        assert_eq!(alloc_size(4096), 4096);
    }
}
