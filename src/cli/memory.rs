//! How the process's memory allocator behaves for a run of the CLI.

/// glibc raises its mmap threshold each time a large block is freed, so
/// after the first list answer or file text (a megabyte or more) the later
/// ones are carved out of the heap between long-lived objects and stay
/// resident after they are freed. A fixed threshold keeps every large
/// temporary block in its own mapping, returned to the system when freed:
/// a no-op re-check of 5,000 objects peaks about 6 MiB lower (see
/// docs/performance.md). Other C libraries keep their own defaults.
pub fn keep_large_blocks_apart() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called once,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
