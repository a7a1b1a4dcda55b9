//! The process's dealings with the C allocator (glibc's malloc): a fixed threshold above which
//! allocations are mapped on their own, set once at start, and handing freed memory back after
//! a cycle. These are the crate's only `unsafe` calls; each takes no pointer. This module must
//! never allocate on the allocator's behalf or hold memory itself; on other C libraries both
//! functions do nothing.
//!
//! Why the threshold is fixed: glibc maps a block of 128 KiB or more on its own and unmaps it
//! on free, but after the first such free it raises that threshold to the block's size (up to
//! 32 MiB) and keeps up to twice as much free memory at the top of each heap before handing it
//! back ("dynamic mmap threshold"). Under Okta's rate limits the daemon's first full read at
//! 100,000 users then peaked at 155–164 MB resident for 91 MB of live heap (heaptrack). With
//! the threshold fixed it peaks at 120–125 MB. Fixed at 128 KiB, every buffer from 128 KiB up
//! is mapped and unmapped on its own, which cost a fast `reconcile` about 0.2 s of CPU in page
//! faults; fixed at 1 MiB (the 1.2 MB page bodies are still above it) that cost is within the
//! noise and the daemon's peak 3 MB higher (README "Performance").

/// The threshold: a page of 500 users with `expand=user` (about 1.2 MB) is above it.
pub const MMAP_THRESHOLD: usize = 1024 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`], unless the environment already sets it
/// (`MALLOC_MMAP_THRESHOLD_`, or `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`): an
/// admin's own allocator tuning wins. Call it first thing in `main`. Returns whether it set
/// the threshold.
pub fn fix_mmap_threshold() -> bool {
    let tuned_by_env = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES")
            .map(|t| t.contains("glibc.malloc.mmap_threshold"))
            .unwrap_or(false);
    if tuned_by_env {
        return false;
    }
    set_mmap_threshold(MMAP_THRESHOLD)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_mmap_threshold(bytes: usize) -> bool {
    let Ok(value) = libc::c_int::try_from(bytes) else {
        return false;
    };
    // SAFETY: `mallopt` sets one of the allocator's parameters; it takes no pointer, and
    // glibc serializes it with allocation.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, value) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_mmap_threshold(_bytes: usize) -> bool {
    false
}

/// Hands the memory a cycle or an events batch freed back to the system. glibc keeps freed
/// memory in per-thread arenas; a cycle at 100,000 users frees some 100 MB across the runtime's
/// threads, and without this each later batch (which loads the state file and the Spot list
/// again) grew the daemon's resident size on top of what the last one left.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator's own arenas; it takes
    // no pointer and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
