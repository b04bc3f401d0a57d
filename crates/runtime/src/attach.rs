//! Live mounts into a running workload (linux driver), without restarting it: the way EBS
//! volumes appear in and disappear from a running EC2 instance.
//!
//! Attaching: the host directory is cloned as a *detached* mount tree in the server's mount
//! namespace (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`, the new mount API), then a
//! short-lived forked child enters the workload's mount namespace (`setns` on
//! `/proc/<pid>/ns/mnt`; a fresh single-threaded child may do that, a thread of the server may
//! not), creates the mount point inside the workload's root (path resolution there cannot
//! escape it: the child's root *is* the workload's root) and attaches the tree there
//! (`move_mount`). Detaching: the same child dance with a lazy unmount (`umount2(MNT_DETACH)`)
//! and removal of the (then empty) mount point.
//!
//! The child only makes raw system calls on memory prepared before the fork (no allocation, no
//! locks), so forking from the multi-threaded server is sound. It reports the failing step and
//! `errno` through a pipe.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::{Result, RuntimeError};

const OPEN_TREE_CLONE: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Checks that `target` is absolute and plain (no `..`, no `.`), returning its components.
pub(crate) fn check_target(target: &Path) -> Result<Vec<CString>> {
    if !target.is_absolute() {
        return Err(RuntimeError::InvalidSpec(format!(
            "mount target {} must be absolute",
            target.display()
        )));
    }
    let mut parts = Vec::new();
    for c in target.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => parts.push(
                CString::new(n.as_bytes())
                    .map_err(|_| RuntimeError::InvalidSpec("nul byte in mount target".into()))?,
            ),
            _ => {
                return Err(RuntimeError::InvalidSpec(format!(
                    "mount target {} must not contain . or ..",
                    target.display()
                )))
            }
        }
    }
    if parts.is_empty() {
        return Err(RuntimeError::InvalidSpec(
            "mount target must not be /".into(),
        ));
    }
    Ok(parts)
}

/// The prefixes `/a`, `/a/b`, … of a target, as C strings (built before any fork).
fn prefixes(parts: &[CString]) -> Result<Vec<CString>> {
    let mut out = Vec::with_capacity(parts.len());
    let mut p = PathBuf::from("/");
    for part in parts {
        p.push(std::ffi::OsStr::from_bytes(part.as_bytes()));
        out.push(
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| RuntimeError::InvalidSpec("nul byte in mount target".into()))?,
        );
    }
    Ok(out)
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// What the child does once inside the workload's mount namespace.
enum Action<'a> {
    /// Create the mount point and attach the detached tree `tree` on it.
    Attach { tree: &'a OwnedFd },
    /// Unmount lazily and remove the mount point.
    Detach,
}

/// Step names, by the number the child reports.
const STEPS: [&str; 5] = [
    "",
    "enter the workload's mount namespace",
    "create the mount point",
    "attach the mount",
    "unmount",
];

/// Fork a child that enters the mount namespace of `pid` and performs `action` on `target`.
fn in_namespace(pid: i32, target: &Path, action: Action<'_>) -> Result<()> {
    let parts = check_target(target)?;
    let dirs = prefixes(&parts)?;
    let full = dirs
        .last()
        .cloned()
        .ok_or_else(|| RuntimeError::InvalidSpec("empty mount target".into()))?;
    let ns_path = format!("/proc/{pid}/ns/mnt");
    let ns = std::fs::File::open(&ns_path)
        .map_err(|e| RuntimeError::io(format!("open {ns_path}"), e))?;
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(RuntimeError::io("pipe", io::Error::last_os_error()));
    }
    // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let ns_fd = ns.as_raw_fd();
    let wr_fd = wr.as_raw_fd();
    let empty = c"";
    let tree_fd = match &action {
        Action::Attach { tree } => tree.as_raw_fd(),
        Action::Detach => -1,
    };
    let attach = matches!(action, Action::Attach { .. });
    // SAFETY: the child below only makes async-signal-safe raw system calls (setns, mkdir,
    // syscall, umount2, rmdir, write, _exit) on memory allocated before the fork and never
    // returns into Rust code, so forking the multi-threaded server is sound.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(RuntimeError::io("fork", io::Error::last_os_error()));
    }
    if child == 0 {
        // SAFETY: see the fork above: raw calls on pre-built, NUL-terminated strings and open
        // descriptors owned by this process; `_exit` ends the child without unwinding.
        unsafe {
            let fail = |step: i32| -> ! {
                let report = [step, last_errno()];
                libc::write(
                    wr_fd,
                    report.as_ptr() as *const libc::c_void,
                    std::mem::size_of_val(&report),
                );
                libc::_exit(1)
            };
            if libc::setns(ns_fd, libc::CLONE_NEWNS) < 0 {
                fail(1);
            }
            if attach {
                for d in &dirs {
                    if libc::mkdir(d.as_ptr(), 0o755) < 0 && last_errno() != libc::EEXIST {
                        fail(2);
                    }
                }
                let rc = libc::syscall(
                    libc::SYS_move_mount,
                    tree_fd,
                    empty.as_ptr(),
                    libc::AT_FDCWD,
                    full.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                );
                if rc < 0 {
                    fail(3);
                }
            } else {
                if libc::umount2(full.as_ptr(), libc::MNT_DETACH) < 0
                    && last_errno() != libc::EINVAL
                {
                    fail(4);
                }
                libc::rmdir(full.as_ptr());
            }
            libc::_exit(0)
        }
    }
    drop(wr);
    let mut report = [0i32; 2];
    // SAFETY: reads at most size_of(report) bytes into `report`, a plain array of ints.
    let n = unsafe {
        libc::read(
            rd.as_raw_fd(),
            report.as_mut_ptr() as *mut libc::c_void,
            std::mem::size_of_val(&report),
        )
    };
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out pointer; `child` is our own child.
        let rc = unsafe { libc::waitpid(child, &mut status, 0) };
        if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    if n == std::mem::size_of_val(&report) as isize {
        let step = STEPS.get(report[0] as usize).copied().unwrap_or("?");
        return Err(RuntimeError::io(
            format!("{step} at {} in workload {pid}", target.display()),
            io::Error::from_raw_os_error(report[1]),
        ));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(RuntimeError::io(
            format!("mount helper for {}", target.display()),
            io::Error::other(format!("ended with status {status}")),
        ));
    }
    Ok(())
}

/// Mount host directory `source` at `target` inside the running workload whose main process
/// is host pid `pid`.
pub(crate) fn attach(pid: i32, source: &Path, target: &Path) -> Result<()> {
    let src = CString::new(source.as_os_str().as_bytes())
        .map_err(|_| RuntimeError::InvalidSpec("nul byte in mount source".into()))?;
    // SAFETY: `src` is a valid NUL-terminated path; open_tree returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(RuntimeError::io(
            format!("clone mount of {}", source.display()),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    in_namespace(pid, target, Action::Attach { tree: &tree })
}

/// Unmount `target` inside the running workload (lazily: open files keep it alive until
/// closed) and remove its mount point. Unmounting something that is not mounted is not an
/// error.
pub(crate) fn detach(pid: i32, target: &Path) -> Result<()> {
    in_namespace(pid, target, Action::Detach)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attach into and detach from a process in a mount namespace of its own (root only).
    #[test]
    fn live_mount_into_another_namespace() {
        if crate::linux_support().is_err() {
            eprintln!("skipped: needs root and namespaces");
            return;
        }
        let dir = std::env::temp_dir().join(format!("fc-attach-{}", std::process::id()));
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("hello.txt"), b"from the host").unwrap();
        let mut child = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "30"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Wait until the child is in its own namespace.
        let me = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        for _ in 0..200 {
            if std::fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|l| l != me)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let target = dir.join("inside/mnt/vol");
        let r = attach(pid, &src, &target);
        let seen =
            std::fs::read_to_string(format!("/proc/{pid}/root{}/hello.txt", target.display()));
        let host_view = target.join("hello.txt").exists();
        let d = detach(pid, &target);
        let after = std::path::Path::new(&format!("/proc/{pid}/root{}", target.display())).exists();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        r.unwrap();
        assert_eq!(seen.unwrap(), "from the host");
        assert!(!host_view, "the mount stays in the other namespace");
        d.unwrap();
        assert!(!after, "the mount point is gone after detach");
    }

    #[test]
    fn targets() {
        assert!(check_target(Path::new("relative")).is_err());
        assert!(check_target(Path::new("/")).is_err());
        assert!(check_target(Path::new("/mnt/../etc")).is_err());
        let p = check_target(Path::new("/mnt/ebs/sdf")).unwrap();
        assert_eq!(p.len(), 3);
        let d = prefixes(&p).unwrap();
        assert_eq!(d[0].to_str().unwrap(), "/mnt");
        assert_eq!(d[2].to_str().unwrap(), "/mnt/ebs/sdf");
    }
}
