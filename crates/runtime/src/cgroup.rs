//! cgroups for workloads: detects what is usable (pure v2, or v1 controllers — also when a v2
//! hierarchy without controllers is mounted beside them), creates one cgroup per workload under
//! `<own cgroup>/ferrocloud/<instance>/`, applies limits, reads stats and OOM kills, and removes
//! them (killing anything left inside first).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{sys, Limits, Result, RuntimeError, Stats};

const CPU_PERIOD_US: u64 = 100_000;

/// The usable layout, with the instance base directory per hierarchy.
#[derive(Debug, Clone)]
pub enum Layout {
    V2 {
        base: PathBuf,
    },
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    None,
}

fn own_path(controller: Option<&str>) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let matches = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        if matches {
            return path.to_string();
        }
    }
    "/".to_string()
}

fn join_rel(mount: &Path, rel: &str) -> PathBuf {
    mount.join(rel.trim_start_matches('/'))
}

impl Layout {
    /// Detects the layout; `instance` names this ferrocloud instance's subtree.
    pub fn detect(instance: &str) -> Layout {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            // Pure v2: a sibling of our own cgroup (the no-internal-processes rule forbids
            // children of a cgroup that holds processes with controllers enabled).
            let own = own_path(None);
            let parent = Path::new(&own).parent().map(Path::to_path_buf);
            let parent = parent.unwrap_or_else(|| PathBuf::from("/"));
            let pdir = join_rel(root, &parent.to_string_lossy());
            let base = pdir.join("ferrocloud").join(instance);
            return Layout::V2 { base };
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let found = |ctrl: &str| -> Option<PathBuf> {
            for line in mountinfo.lines() {
                let (pre, post) = line.split_once(" - ")?;
                let mut post_f = post.split_whitespace();
                if post_f.next() != Some("cgroup") {
                    continue;
                }
                let opts = post_f.nth(1).unwrap_or("");
                if !opts.split(',').any(|o| o == ctrl) {
                    continue;
                }
                let mnt = pre.split_whitespace().nth(4)?;
                let own = own_path(Some(ctrl));
                let base = join_rel(Path::new(mnt), &own)
                    .join("ferrocloud")
                    .join(instance);
                return Some(base);
            }
            None
        };
        let memory = found("memory");
        let cpu = found("cpu");
        let cpuacct = found("cpuacct");
        let pids = found("pids");
        if memory.is_none() && cpu.is_none() && pids.is_none() {
            return Layout::None;
        }
        Layout::V1 {
            memory,
            cpu,
            cpuacct,
            pids,
        }
    }

    pub fn version(&self) -> Option<u8> {
        match self {
            Layout::V2 { .. } => Some(2),
            Layout::V1 { .. } => Some(1),
            Layout::None => None,
        }
    }

    pub fn has(&self, what: &str) -> bool {
        match self {
            Layout::V2 { .. } => true,
            Layout::V1 {
                memory, cpu, pids, ..
            } => match what {
                "memory" => memory.is_some(),
                "cpu" => cpu.is_some(),
                "pids" => pids.is_some(),
                _ => false,
            },
            Layout::None => false,
        }
    }

    /// Instance base directories (for orphan scanning).
    pub fn bases(&self) -> Vec<PathBuf> {
        match self {
            Layout::V2 { base } => vec![base.clone()],
            Layout::V1 {
                memory,
                cpu,
                cpuacct,
                pids,
            } => [memory, cpu, cpuacct, pids]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            Layout::None => Vec::new(),
        }
    }

    /// Creates the workload's cgroups and applies `limits`; returns their paths.
    pub fn create(&self, id: &str, limits: &Limits) -> Result<Vec<PathBuf>> {
        let cg =
            |e: std::io::Error, p: &Path| RuntimeError::Cgroup(format!("{}: {e}", p.display()));
        let write =
            |p: PathBuf, v: &str| -> Result<()> { std::fs::write(&p, v).map_err(|e| cg(e, &p)) };
        match self {
            Layout::None => Ok(Vec::new()),
            Layout::V2 { base } => {
                enable_v2_controllers(base)?;
                let dir = base.join(id);
                std::fs::create_dir_all(&dir).map_err(|e| cg(e, &dir))?;
                if let Some(m) = limits.memory_bytes {
                    write(dir.join("memory.max"), &m.to_string())?;
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                if let Some(c) = limits.cpu_millis {
                    let quota = (c * CPU_PERIOD_US / 1000).max(1000);
                    write(dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                if let Some(p) = limits.pids {
                    write(dir.join("pids.max"), &p.to_string())?;
                }
                Ok(vec![dir])
            }
            Layout::V1 {
                memory,
                cpu,
                cpuacct,
                pids,
            } => {
                let mut out = Vec::new();
                let mut seen = Vec::new();
                for base in [memory, cpu, cpuacct, pids].into_iter().flatten() {
                    let dir = base.join(id);
                    if seen.contains(&dir) {
                        continue;
                    }
                    seen.push(dir.clone());
                    std::fs::create_dir_all(&dir).map_err(|e| cg(e, &dir))?;
                    out.push(dir);
                }
                if let (Some(m), Some(base)) = (limits.memory_bytes, memory) {
                    let dir = base.join(id);
                    write(dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    let sw = dir.join("memory.memsw.limit_in_bytes");
                    if sw.exists() {
                        let _ = std::fs::write(sw, m.to_string());
                    }
                    let _ = std::fs::write(dir.join("memory.swappiness"), "0");
                }
                if let (Some(c), Some(base)) = (limits.cpu_millis, cpu) {
                    let dir = base.join(id);
                    write(dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    let quota = (c * CPU_PERIOD_US / 1000).max(1000);
                    write(dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                if let (Some(p), Some(base)) = (limits.pids, pids) {
                    write(base.join(id).join("pids.max"), &p.to_string())?;
                }
                Ok(out)
            }
        }
    }
}

fn enable_v2_controllers(base: &Path) -> Result<()> {
    // Enable memory, cpu and pids down to `base` (best effort above the first level we create).
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut cur = Some(base);
    while let Some(p) = cur {
        if p == Path::new("/sys/fs/cgroup") {
            break;
        }
        chain.push(p.to_path_buf());
        cur = p.parent();
    }
    chain.reverse();
    for dir in &chain {
        std::fs::create_dir_all(dir)
            .map_err(|e| RuntimeError::Cgroup(format!("{}: {e}", dir.display())))?;
        if let Some(parent) = dir.parent() {
            for c in ["+memory", "+cpu", "+pids"] {
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), c);
            }
        }
    }
    for c in ["+memory", "+cpu", "+pids"] {
        let _ = std::fs::write(base.join("cgroup.subtree_control"), c);
    }
    Ok(())
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn keyed(p: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(p).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Stats from the workload's cgroups.
pub fn stats(cgroups: &[PathBuf]) -> Stats {
    let mut s = Stats::default();
    for dir in cgroups {
        if let Some(v) = read_u64(&dir.join("memory.current")) {
            s.memory_current = v;
        }
        if let Some(v) = read_u64(&dir.join("memory.peak")) {
            s.memory_peak = v;
        }
        if let Some(v) = keyed(&dir.join("cpu.stat"), "usage_usec") {
            s.cpu_time_ns = v * 1000;
        }
        if let Some(v) = read_u64(&dir.join("memory.usage_in_bytes")) {
            s.memory_current = v;
        }
        if let Some(v) = read_u64(&dir.join("memory.max_usage_in_bytes")) {
            s.memory_peak = v;
        }
        if let Some(v) = read_u64(&dir.join("cpuacct.usage")) {
            s.cpu_time_ns = v;
        }
        if let Some(v) = read_u64(&dir.join("pids.current")) {
            s.pids = v;
        }
    }
    if s.memory_peak < s.memory_current {
        s.memory_peak = s.memory_current;
    }
    s
}

/// How many OOM kills happened in the workload's memory cgroup.
pub fn oom_kills(cgroups: &[PathBuf]) -> u64 {
    cgroups
        .iter()
        .filter_map(|d| {
            keyed(&d.join("memory.events"), "oom_kill")
                .or_else(|| keyed(&d.join("memory.oom_control"), "oom_kill"))
        })
        .sum()
}

/// Pids in the cgroups.
pub fn procs(cgroups: &[PathBuf]) -> Vec<i32> {
    let mut out = Vec::new();
    for d in cgroups {
        if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
            for p in t.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Moves the calling process into the cgroups.
pub fn join(cgroups: &[PathBuf]) -> std::io::Result<()> {
    for d in cgroups {
        std::fs::write(d.join("cgroup.procs"), sys::getpid().to_string())?;
    }
    Ok(())
}

/// SIGKILLs everything inside, then removes the directories (waits up to `timeout`).
pub fn remove(cgroups: &[PathBuf], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = procs(cgroups);
        for p in &pids {
            let _ = sys::kill(*p, libc::SIGKILL);
        }
        let mut left = Vec::new();
        for d in cgroups {
            if d.exists() {
                if let Err(e) = std::fs::remove_dir(d) {
                    left.push(format!("{}: {e}", d.display()));
                }
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::Cgroup(format!(
                "cannot remove cgroups: {}",
                left.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
