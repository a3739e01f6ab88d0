//! The allocator's one setting that matters to a projection: freed memory is kept, not
//! handed back to the kernel.
//!
//! A projection only grows: hash tables double and free the old table, duration sketches
//! and request clocks grow their arrays, and every event decoded is dropped after it is
//! applied. mimalloc (the binary's allocator) hands pages that stay free for a second back to
//! the kernel, and the next allocation that reuses them faults them in again, zeroed by the
//! kernel. During a rebuild that churn cost more than applying the events: `perf` showed
//! `clear_page_erms` as the top symbol, and `make bench-analytics` rebuilt at 53-59% of the
//! raw read with the default and at 67-71% with purging off. The price is that the process
//! keeps its peak size (the projection plus one snapshot being encoded) instead of shrinking
//! after a peak, which for a projection that only grows is what it would need again anyway.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` of `mimalloc.h`: milliseconds before free pages are purged; -1 is
/// never. (libmimalloc-sys names only some options; this one keeps its place in the enum's
/// stable part, and the test below checks it against mimalloc's own default.)
const PURGE_DELAY: mi_option_t = 15;

/// Keeps freed memory in the process for reuse (see the module docs). Call it first thing in
/// `main`, before any other thread starts, in a process whose global allocator is mimalloc.
pub fn keep_freed_memory() {
    // SAFETY: stores an integer in mimalloc's option table. mimalloc documents its option
    // functions as not thread safe, hence "before any other thread starts".
    unsafe { mi_option_set(PURGE_DELAY, -1) }
}

/// The purge delay in force, in milliseconds (-1: never).
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: reads mimalloc's option table (see keep_freed_memory on threads).
    unsafe { mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_the_purge_delay() {
        // mimalloc 3's default purge delay is 1000 ms (MIMALLOC_PURGE_DELAY overrides it);
        // no neighbouring option has that default.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay(), 1_000);
        }
        keep_freed_memory();
        assert_eq!(purge_delay(), -1);
    }
}
