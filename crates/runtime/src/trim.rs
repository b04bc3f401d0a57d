//! Giving back memory while the server is idle: the resident pages of ferrocloud's own
//! executable (code and read-only data). Most of the binary's code runs once at start-up or only
//! for some operations, yet stays mapped and counted in the process's RSS. After a quiet
//! moment the server asks the kernel to page those mappings out (`MADV_PAGEOUT`); they are
//! read-only views of the executable file, so nothing changes for the program: a page used
//! again faults back in from the page cache (a minor fault, microseconds).
//!
//! Also the C heap (SQLite's page caches live there): [`keep_c_heap`] stops glibc from
//! returning freed heap memory to the kernel after every large free, which under load made each
//! store read fault its page buffers in afresh; [`release_c_heap`] gives the free memory back
//! once the server is idle.

use std::io;

/// Pages out the read-only file mappings of the running executable. Returns how many bytes of
/// mappings were advised. Linux 5.4+; older kernels answer `EINVAL`, returned as an error.
pub fn release_code_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let exe = exe.to_string_lossy().into_owned();
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut advised = 0usize;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // offset, device, inode, then the path (which may contain spaces).
        let path: Vec<&str> = fields.skip(3).collect();
        let path = path.join(" ");
        if path != exe || perms.contains('w') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if end <= start {
            continue;
        }
        // SAFETY: `start..end` is a whole mapping of this process read from /proc/self/maps: a
        // read-only (no 'w') private mapping of the executable file. MADV_PAGEOUT only drops
        // its resident pages; their contents are re-read from the unchanged file on the next
        // access, so no memory the program can observe changes.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        advised += end - start;
    }
    Ok(advised)
}

/// Freed C-heap memory up to this much stays with the process while it is busy.
const KEEP_FREE_HEAP: libc::c_int = 64 << 20;
/// C allocations from this size on get their own mapping (fixed: glibc otherwise raises it
/// as large blocks are freed, and with it how much freed memory it trims at once).
const MMAP_FROM: libc::c_int = 4 << 20;

/// Keep freed C-heap memory (up to 64 MiB) instead of handing it back to the kernel after
/// each large free: SQLite drops a read connection's page cache whenever another connection
/// commits, and with glibc's defaults every such drop trimmed the heap, so the next read
/// page-faulted and zeroed its buffers again (5.6 faults and ~13% of the CPU time of a small
/// S3 PUT under load). Call once at start-up; returns whether glibc took both settings.
pub fn keep_c_heap() -> bool {
    // SAFETY: mallopt only changes glibc allocator parameters (integers); it is thread-safe
    // and every value here is one the glibc manual allows for these parameters.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREE_HEAP) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM) == 1
    }
}

/// Give free C-heap memory back to the kernel (for an idle server; see [`keep_c_heap`]).
pub fn release_c_heap() {
    // SAFETY: malloc_trim only returns free memory at the top of glibc's heaps (and free
    // pages inside them) to the kernel; allocated blocks are untouched. Thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn c_heap_settings_are_accepted_and_trim_is_harmless() {
        assert!(super::keep_c_heap());
        let v: Vec<Box<[u8; 16384]>> = (0..64).map(|_| Box::new([7u8; 16384])).collect();
        drop(v);
        super::release_c_heap();
        let again = vec![1u8; 1 << 20];
        assert_eq!(again.iter().map(|b| *b as usize).sum::<usize>(), 1 << 20);
    }

    #[test]
    fn pages_out_the_test_binary_and_keeps_running() {
        match super::release_code_pages() {
            Ok(n) => assert!(n > 0),
            // Kernels before 5.4 do not know MADV_PAGEOUT.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
        }
        // Code still runs after its pages were released.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
