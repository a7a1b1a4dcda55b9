//! The allocator's threshold (`src/memory.rs`, README "Performance"): once it is fixed, a
//! large block freed does not raise it, so the next large block is still mapped on its own
//! (and handed back when freed) instead of being carved out of the heap. With the threshold
//! free to rise, the daemon's first full read at 100,000 users peaked some 70 MB above its
//! live heap. One test in its own binary: the threshold is the process's.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_large_block_does_not_raise_the_threshold() {
    use std::hint::black_box;
    assert!(
        okta_spot_sync::memory::fix_mmap_threshold(),
        "the threshold was not set (is MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES set?)"
    );
    // SAFETY: `mallinfo2` only reads the allocator's statistics.
    let mapped = || unsafe { libc::mallinfo2() }.hblkhd;
    // Freed, an 8 MiB block would raise a dynamic threshold to 8 MiB.
    drop(black_box(vec![1u8; 8 << 20]));
    let before = mapped();
    let block = black_box(vec![1u8; 2 << 20]);
    let after = mapped();
    assert!(
        after >= before + (2 << 20),
        "a 2 MiB block after a freed 8 MiB one came from the heap (mapped bytes {before} → {after})"
    );
    drop(block);
    assert!(
        mapped() < after,
        "the 2 MiB block was not handed back when freed"
    );
}
