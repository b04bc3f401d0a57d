//! Thin, checked wrappers over the kernel calls the runtime needs (mount, namespaces, signals,
//! process identity). Every `unsafe` block of the crate that is not a `pre_exec` hook lives here.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte"))
}

pub fn cpath(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str())
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(cpath).transpose()?;
    let tgt = cpath(target)?;
    let fs = fstype.map(|f| cstr(OsStr::new(f))).transpose()?;
    let dat = data.map(|d| cstr(OsStr::new(d))).transpose()?;
    // SAFETY: every pointer is either null or a valid NUL-terminated string that outlives the
    // call; mount(2) does not keep them.
    let rc = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            tgt.as_ptr(),
            fs.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            dat.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    };
    check(rc).map(|_| ())
}

pub fn umount_detach(target: &Path) -> io::Result<()> {
    let tgt = cpath(target)?;
    // SAFETY: valid NUL-terminated path for the duration of the call.
    check(unsafe { libc::umount2(tgt.as_ptr(), libc::MNT_DETACH) }).map(|_| ())
}

pub fn pivot_root_here() -> io::Result<()> {
    let dot = cpath(Path::new("."))?;
    // SAFETY: pivot_root has no libc wrapper; the syscall takes two valid path pointers.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare only changes this process's namespace membership.
    check(unsafe { libc::unshare(flags) }).map(|_| ())
}

pub fn setns(fd: RawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is an open namespace file descriptor owned by the caller.
    check(unsafe { libc::setns(fd, nstype) }).map(|_| ())
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe the bytes of `name`.
    check(unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) })
        .map(|_| ())
}

pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory effects.
    check(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

pub enum Forked {
    Child,
    Parent(i32),
}

/// fork(2). Only call from a single-threaded process (the init), never from the server.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: callers are single-threaded (the init and exec helpers), so the child inherits a
    // consistent address space and may allocate.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// waitpid(2) retried on EINTR; returns the raw status.
pub fn waitpid(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

pub fn decode_status(status: i32) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    }
}

pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: both are plain fd numbers; dup2 replaces `to` atomically.
    check(unsafe { libc::dup2(from, to) }).map(|_| ())
}

pub fn pipe_cloexec() -> io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}

pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: groups points at groups.len() valid gid_t values.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    // SAFETY: plain id syscalls.
    check(unsafe { libc::setgid(gid) })?;
    // SAFETY: plain id syscall.
    check(unsafe { libc::setuid(uid) })?;
    Ok(())
}

pub fn setsid() {
    // SAFETY: no memory effects; failure (already a leader) is harmless.
    unsafe {
        libc::setsid();
    }
}

pub fn setpgid_self() {
    // SAFETY: no memory effects; failure is harmless (we are then a session leader already).
    unsafe {
        libc::setpgid(0, 0);
    }
}

pub fn set_pdeathsig(sig: i32) {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
    }
}

pub fn getppid() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::getppid() }
}

pub fn getpid() -> i32 {
    // SAFETY: always succeeds.
    unsafe { libc::getpid() }
}

pub fn ignore_signal(sig: i32) {
    // SAFETY: installs SIG_IGN, no handler code runs.
    unsafe {
        libc::signal(sig, libc::SIG_IGN);
    }
}

pub fn default_signal(sig: i32) {
    // SAFETY: installs SIG_DFL, no handler code runs.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process without running atexit handlers of the forked parent.
    unsafe { libc::_exit(code) }
}

/// execve(2) with explicit environment; returns only on failure.
pub fn execve(path: &Path, argv: &[String], env: &[String]) -> io::Error {
    let p = match cpath(path) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut cargs = Vec::with_capacity(argv.len());
    for a in argv {
        match CString::new(a.as_bytes()) {
            Ok(c) => cargs.push(c),
            Err(_) => return io::Error::new(io::ErrorKind::InvalidInput, "nul byte in argv"),
        }
    }
    let mut cenv = Vec::with_capacity(env.len());
    for e in env {
        match CString::new(e.as_bytes()) {
            Ok(c) => cenv.push(c),
            Err(_) => return io::Error::new(io::ErrorKind::InvalidInput, "nul byte in env"),
        }
    }
    let mut argp: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: path, argv and envp are NUL-terminated arrays of valid C strings kept alive here.
    unsafe {
        libc::execve(p.as_ptr(), argp.as_ptr(), envp.as_ptr());
    }
    io::Error::last_os_error()
}

/// Is `pid` a live (non-zombie) process started at `start` (clock ticks since boot)?
pub fn process_alive(pid: i32, start: u64) -> bool {
    match proc_stat(pid) {
        Some((state, st)) => state != 'Z' && state != 'X' && (start == 0 || st == start),
        None => false,
    }
}

/// (state, start time) from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat is starttime; after the comm field, index 19 of the rest.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

pub fn raw(f: &impl AsRawFd) -> RawFd {
    f.as_raw_fd()
}
