//! The in-workload side: the supervisor ("init") that a driver starts by re-executing the
//! ferrocloud binary with [`INIT_MARKER`], and the exec helper ([`EXEC_MARKER`]).
//!
//! The supervisor runs outside the workload's PID namespace (its first child is PID 1 inside),
//! in the workload's UTS/IPC/network namespaces. It waits for a "go" byte on stdin (the driver
//! wires the network meanwhile), forks the workload process, which enters a fresh mount
//! namespace, assembles the rootfs (overlayfs or a pre-copied tree), mounts /proc, /dev, /sys,
//! pivots into it, drops to the configured user and execs. The supervisor then reports
//! `ok <pid>` (or `err <message>`) on stdout, waits, and writes `status.json` into the workload
//! directory so a restarted server learns how it ended. Output goes straight to
//! `stdout.log`/`stderr.log` in the workload directory. Both processes are single-threaded.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{cgroup, resolve::resolve_user, sys, ExitStatus, ProcessSpec};

/// argv[1] that makes [`maybe_run_init`] run the supervisor: `<exe> __fc-init <workload dir>`.
pub const INIT_MARKER: &str = "__fc-init";
/// argv[1] that makes [`maybe_run_init`] run the exec helper: `<exe> __fc-exec <json>`.
pub const EXEC_MARKER: &str = "__fc-exec";

/// Overlay layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Overlay {
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// A bind mount into the rootfs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// What the supervisor reads from `<dir>/spec.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitSpec {
    /// linux driver (namespaces + rootfs) or process driver (plain child).
    pub isolated: bool,
    pub dir: PathBuf,
    /// Linux: the rootfs mount point. Process: the private working directory.
    pub root: PathBuf,
    pub overlay: Option<Overlay>,
    pub binds: Vec<Bind>,
    pub read_only: bool,
    pub hostname: Option<String>,
    pub process: ProcessSpec,
    pub cgroups: Vec<PathBuf>,
}

/// What the exec helper gets as its JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExecRequest {
    pub isolated: bool,
    /// Host pid of the workload's main process (its namespaces are joined).
    pub pid: i32,
    pub cgroups: Vec<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    /// Linux: path inside the rootfs. Process: host path.
    pub workdir: String,
}

/// If argv says so, runs the supervisor or exec helper and returns its exit code; otherwise
/// returns None at once. Call it first thing in `main()`.
pub fn maybe_run_init() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let marker = args.next()?;
    let arg = args.next();
    match marker.to_str()? {
        INIT_MARKER => Some(match arg {
            Some(dir) => supervise(Path::new(&dir)),
            None => 2,
        }),
        EXEC_MARKER => Some(match arg.and_then(|a| a.into_string().ok()) {
            Some(json) => exec_helper(&json),
            None => 2,
        }),
        _ => None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes `status.json` atomically.
pub(crate) fn write_status(dir: &Path, status: &ExitStatus) -> std::io::Result<()> {
    let tmp = dir.join("status.json.tmp");
    let body = serde_json::to_vec(&(status, now_ms())).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join("status.json"))
}

pub(crate) fn read_status(dir: &Path) -> Option<ExitStatus> {
    let body = std::fs::read(dir.join("status.json")).ok()?;
    let (s, _): (ExitStatus, i64) = serde_json::from_slice(&body).ok()?;
    Some(s)
}

fn supervise(dir: &Path) -> i32 {
    for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        sys::ignore_signal(s);
    }
    let spec: InitSpec = match std::fs::read(dir.join("spec.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            println!("err cannot read spec: {e}");
            return 1;
        }
    };
    if spec.isolated {
        // The supervisor stays in the host PID namespace; its child becomes PID 1 of a new one.
        if let Err(e) = sys::unshare(libc::CLONE_NEWPID) {
            println!("err unshare pid namespace: {e}");
            return 1;
        }
    }
    let mut go = [0u8; 1];
    if std::io::stdin().read_exact(&mut go).is_err() {
        let _ = write_status(
            dir,
            &ExitStatus {
                reason: "start failed: driver went away before the start".into(),
                ..Default::default()
            },
        );
        return 1;
    }
    let open_log = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    let (out, err) = match (open_log("stdout.log"), open_log("stderr.log")) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            println!("err cannot open log files: {e}");
            return 1;
        }
    };
    let (mut rd, wr) = match sys::pipe_cloexec() {
        Ok(p) => p,
        Err(e) => {
            println!("err pipe: {e}");
            return 1;
        }
    };
    let child = match sys::fork() {
        Err(e) => {
            println!("err fork: {e}");
            return 1;
        }
        Ok(sys::Forked::Child) => {
            drop(rd);
            let mut wr = wr;
            let msg = match workload_child(&spec, &out, &err) {
                Ok(never) => match never {},
                Err(m) => m,
            };
            let _ = wr.write_all(msg.as_bytes());
            sys::exit_now(127);
        }
        Ok(sys::Forked::Parent(pid)) => pid,
    };
    drop(wr);
    drop(out);
    drop(err);
    let mut msg = String::new();
    let _ = rd.read_to_string(&mut msg);
    if !msg.is_empty() {
        let _ = sys::waitpid(child);
        let _ = write_status(
            dir,
            &ExitStatus {
                code: Some(127),
                reason: format!("start failed: {msg}"),
                ..Default::default()
            },
        );
        println!("err {}", msg.replace('\n', " "));
        return 1;
    }
    let _ = std::fs::write(dir.join("pid"), child.to_string());
    println!("ok {child}");
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = sys::dup2(sys::raw(&null), 0);
        let _ = sys::dup2(sys::raw(&null), 1);
    }
    let status = match sys::waitpid(child) {
        Ok(s) => s,
        Err(e) => {
            let _ = write_status(
                dir,
                &ExitStatus {
                    reason: format!("supervisor lost the workload: {e}"),
                    ..Default::default()
                },
            );
            return 1;
        }
    };
    let (code, signal) = sys::decode_status(status);
    if !spec.isolated {
        // The workload's process group goes with it.
        let _ = sys::kill(-child, libc::SIGKILL);
    }
    let oom = signal == Some(libc::SIGKILL) && cgroup::oom_kills(&spec.cgroups) > 0;
    let stopped = dir.join("stop_requested").exists();
    let reason = if oom {
        "oom killed".to_string()
    } else if stopped {
        "stopped".to_string()
    } else if let Some(s) = signal {
        format!("killed by signal {s}")
    } else {
        "exited".to_string()
    };
    let _ = write_status(
        dir,
        &ExitStatus {
            code,
            signal,
            oom_killed: oom,
            reason,
        },
    );
    0
}

enum Never {}

fn mkdirs(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

fn mnt(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    sys::mount(src, target, fstype, flags, data).map_err(|e| {
        format!(
            "mount {} on {} ({}): {e}",
            src.map(|s| s.display().to_string()).unwrap_or_default(),
            target.display(),
            fstype.unwrap_or("bind")
        )
    })
}

/// `inside` is an absolute path in the rootfs; joins it under `root` without escaping.
pub(crate) fn under(root: &Path, inside: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in inside.components() {
        if let std::path::Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

fn bind_into(root: &Path, b: &Bind) -> Result<(), String> {
    let dest = under(root, &b.target);
    let is_dir = std::fs::metadata(&b.source)
        .map_err(|e| format!("bind source {}: {e}", b.source.display()))?
        .is_dir();
    if is_dir {
        mkdirs(&dest)?;
    } else if !dest.exists() {
        if let Some(p) = dest.parent() {
            mkdirs(p)?;
        }
        std::fs::write(&dest, b"").map_err(|e| format!("create {}: {e}", dest.display()))?;
    }
    mnt(
        Some(&b.source),
        &dest,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    if b.read_only {
        mnt(
            None,
            &dest,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

fn setup_rootfs(spec: &InitSpec) -> Result<(), String> {
    sys::unshare(libc::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    mnt(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let root = &spec.root;
    mkdirs(root)?;
    match &spec.overlay {
        Some(o) => {
            let lowers: Vec<String> = o.lowers.iter().map(|l| l.display().to_string()).collect();
            let data = format!(
                "lowerdir={},upperdir={},workdir={}",
                lowers.join(":"),
                o.upper.display(),
                o.work.display()
            );
            mnt(
                Some(Path::new("overlay")),
                root,
                Some("overlay"),
                0,
                Some(&data),
            )?;
        }
        None => mnt(Some(root), root, None, libc::MS_BIND | libc::MS_REC, None)?,
    }
    for b in &spec.binds {
        bind_into(root, b)?;
    }
    let proc_dir = root.join("proc");
    mkdirs(&proc_dir)?;
    mnt(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    let dev = root.join("dev");
    mkdirs(&dev)?;
    mnt(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID,
        Some("mode=755,size=65536k"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(node);
        if !host.exists() {
            continue;
        }
        let d = dev.join(node);
        std::fs::write(&d, b"").map_err(|e| format!("create {}: {e}", d.display()))?;
        mnt(Some(&host), &d, None, libc::MS_BIND, None)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(link));
    }
    let shm = dev.join("shm");
    mkdirs(&shm)?;
    mnt(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    let pts = dev.join("pts");
    mkdirs(&pts)?;
    if sys::mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .is_ok()
    {
        let _ = std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"));
    }
    let sysfs = root.join("sys");
    if mkdirs(&sysfs).is_ok() {
        let _ = sys::mount(
            Some(Path::new("sysfs")),
            &sysfs,
            Some("sysfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        );
    }
    if let Some(h) = &spec.hostname {
        let etc = root.join("etc");
        if etc.is_dir() && !spec.read_only {
            let _ = std::fs::write(etc.join("hostname"), format!("{h}\n"));
        }
    }
    // The working directory exists before the root may turn read-only (owned by the user).
    let wd = under(
        root,
        Path::new(spec.process.workdir.as_deref().unwrap_or("/")),
    );
    if !wd.exists() {
        mkdirs(&wd)?;
        if let Ok(u) = resolve_user(root, spec.process.user.as_deref()) {
            let _ = std::os::unix::fs::chown(&wd, Some(u.uid), Some(u.gid));
        }
    }
    if spec.read_only {
        mnt(
            None,
            root,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
    }
    std::env::set_current_dir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    sys::pivot_root_here().map_err(|e| format!("pivot_root: {e}"))?;
    sys::umount_detach(Path::new(".")).map_err(|e| format!("detach old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    if let Some(h) = &spec.hostname {
        sys::sethostname(h).map_err(|e| format!("sethostname {h}: {e}"))?;
    }
    Ok(())
}

/// Finds argv[0] on PATH (inside the current root).
fn lookup(cmd: &str, env: &[(String, String)], cwd: &Path) -> Result<PathBuf, String> {
    if cmd.contains('/') {
        let p = Path::new(cmd);
        return Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        });
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(crate::resolve::DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(cmd);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(format!("executable file {cmd} not found in $PATH"))
}

/// Common tail of the workload child and the exec helper's child: user, cwd, env, execve.
fn become_and_exec(
    user_root: &Path,
    user: Option<&str>,
    workdir: &Path,
    argv: &[String],
    env: &[(String, String)],
) -> Result<Never, String> {
    if argv.is_empty() {
        return Err("empty command".into());
    }
    let u = resolve_user(user_root, user).map_err(|e| e.to_string())?;
    if !workdir.exists() {
        mkdirs(workdir)?;
        let _ = std::os::unix::fs::chown(workdir, Some(u.uid), Some(u.gid));
    }
    let mut env: Vec<(String, String)> = env.to_vec();
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), u.home.clone()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), crate::resolve::DEFAULT_PATH.into()));
    }
    if is_root() {
        sys::set_ids(u.uid, u.gid, &u.groups).map_err(|e| format!("set user {}: {e}", u.uid))?;
    } else if user.is_some() {
        return Err("changing user needs root".into());
    }
    std::env::set_current_dir(workdir).map_err(|e| format!("chdir {}: {e}", workdir.display()))?;
    let exe = lookup(&argv[0], &env, workdir)?;
    let envp: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        sys::default_signal(s);
    }
    let err = sys::execve(&exe, argv, &envp);
    Err(format!("exec {}: {err}", exe.display()))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn workload_child(
    spec: &InitSpec,
    out: &std::fs::File,
    err: &std::fs::File,
) -> Result<Never, String> {
    let supervisor = sys::getppid();
    if spec.isolated {
        sys::setsid();
    } else {
        sys::setpgid_self();
    }
    cgroup::join(&spec.cgroups).map_err(|e| format!("join cgroups: {e}"))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    sys::dup2(sys::raw(&null), 0).map_err(|e| format!("dup2: {e}"))?;
    sys::dup2(sys::raw(out), 1).map_err(|e| format!("dup2: {e}"))?;
    sys::dup2(sys::raw(err), 2).map_err(|e| format!("dup2: {e}"))?;
    let (user_root, workdir) = if spec.isolated {
        setup_rootfs(spec)?;
        let wd = spec.process.workdir.clone().unwrap_or_else(|| "/".into());
        (PathBuf::from("/"), PathBuf::from(wd))
    } else {
        let wd = spec.process.workdir.clone().unwrap_or_else(|| "/".into());
        (PathBuf::from("/"), under(&spec.root, Path::new(&wd)))
    };
    sys::set_pdeathsig(libc::SIGKILL);
    if sys::getppid() != supervisor && !spec.isolated {
        return Err("supervisor went away".into());
    }
    become_and_exec(
        &user_root,
        spec.process.user.as_deref(),
        &workdir,
        &spec.process.argv,
        &spec.process.env,
    )
}

fn exec_helper(json: &str) -> i32 {
    let req: ExecRequest = match serde_json::from_str(json) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fc-exec: bad request: {e}");
            return 126;
        }
    };
    match exec_helper_inner(&req) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fc-exec: {e}");
            126
        }
    }
}

fn exec_helper_inner(req: &ExecRequest) -> Result<i32, String> {
    cgroup::join(&req.cgroups).map_err(|e| format!("join cgroups: {e}"))?;
    if req.isolated {
        let mut fds = Vec::new();
        for (ns, flag) in [
            ("ipc", libc::CLONE_NEWIPC),
            ("uts", libc::CLONE_NEWUTS),
            ("net", libc::CLONE_NEWNET),
            ("pid", libc::CLONE_NEWPID),
            ("mnt", libc::CLONE_NEWNS),
        ] {
            let p = format!("/proc/{}/ns/{ns}", req.pid);
            let f = std::fs::File::open(&p).map_err(|e| format!("open {p}: {e}"))?;
            fds.push((f, flag, ns));
        }
        for (f, flag, ns) in &fds {
            sys::setns(sys::raw(f), *flag).map_err(|e| format!("setns {ns}: {e}"))?;
        }
    }
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        sys::Forked::Child => {
            let wd = PathBuf::from(&req.workdir);
            sys::set_pdeathsig(libc::SIGKILL);
            let msg = match become_and_exec(
                Path::new("/"),
                req.user.as_deref(),
                &wd,
                &req.argv,
                &req.env,
            ) {
                Ok(never) => match never {},
                Err(m) => m,
            };
            eprintln!("fc-exec: {msg}");
            sys::exit_now(127);
        }
        sys::Forked::Parent(pid) => {
            for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                sys::ignore_signal(s);
            }
            let st = sys::waitpid(pid).map_err(|e| format!("wait: {e}"))?;
            Ok(match sys::decode_status(st) {
                (Some(c), _) => c,
                (_, Some(s)) => 128 + s,
                _ => 1,
            })
        }
    }
}
