//! Giving back memory while the server is idle: the resident pages of ferrocloud's own
//! executable (code and read-only data). Most of the binary's code runs once at start-up or only
//! for some operations, yet stays mapped and counted in the process's RSS. After a quiet
//! moment the server asks the kernel to page those mappings out (`MADV_PAGEOUT`); they are
//! read-only views of the executable file, so nothing changes for the program: a page used
//! again faults back in from the page cache (a minor fault, microseconds).

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

#[cfg(test)]
mod tests {
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
