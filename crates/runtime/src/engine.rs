//! The shared machinery behind both drivers: workload directories, the supervisor hand-shake,
//! exit detection (status file + supervisor liveness), log forwarding to the [`LogSink`],
//! stop/destroy, exec, recovery and orphan clean-up. [`LinuxDriver`] adds namespaces, rootfs,
//! cgroups and networking; [`ProcessDriver`] runs plain child processes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use crate::init::{read_status, write_status, Bind, ExecRequest, InitSpec, Overlay};
use crate::net::{domain_key, short_hash, Cidr, Router};
use crate::{
    cgroup, sys, Capabilities, Driver, DriverConfig, ExecOutput, ExecSpec, ExitStatus, Handle,
    LinkLocalHandler, LogSink, LogTarget, MountSource, NetworkState, PublishedPort, Recovered,
    Result, RuntimeError, Stats, WorkloadInfo, WorkloadSpec, API_LINK_LOCAL, HANDLE_VERSION,
    INIT_MARKER,
};

const POLL: Duration = Duration::from_millis(20);
/// Output is read this often while a workload is young or has just written something...
const LOG_POLL_FAST: Duration = Duration::from_millis(5);
/// ...for this long after either...
const LOG_FAST_FOR: Duration = Duration::from_secs(2);
/// ...and then ever less often, down to this.
const LOG_POLL: Duration = Duration::from_millis(100);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why the linux driver cannot run here, if it cannot.
pub fn linux_support() -> std::result::Result<(), String> {
    if std::env::consts::OS != "linux" {
        return Err("not linux".into());
    }
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid_root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .map(|l| l.split_whitespace().nth(2) == Some("0"))
        .unwrap_or(false);
    if !euid_root {
        return Err("the linux driver needs root".into());
    }
    let cap_eff = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .unwrap_or(0);
    if cap_eff & (1 << 21) == 0 {
        return Err("CAP_SYS_ADMIN missing".into());
    }
    for ns in ["mnt", "pid", "net", "uts", "ipc"] {
        if !Path::new("/proc/self/ns").join(ns).exists() {
            return Err(format!("kernel lacks {ns} namespaces"));
        }
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("iproute2 (ip) is not installed".into());
    }
    Ok(())
}

fn overlay_supported() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|t| t.lines().any(|l| l.trim_end().ends_with("\toverlay")))
        .unwrap_or(false)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Linux,
    Process,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Linux => "linux",
            Kind::Process => "process",
        }
    }
}

struct Workload {
    handle: Mutex<Handle>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// true once the log forwarder drained the final output.
    logs_done: tokio::sync::watch::Receiver<bool>,
}

struct Inner {
    kind: Kind,
    state_dir: PathBuf,
    volumes_dir: PathBuf,
    init_exe: PathBuf,
    api_port: u16,
    instance: String,
    sink: Arc<dyn LogSink>,
    cgroups: cgroup::Layout,
    overlay: bool,
    root_user: bool,
    router: tokio::sync::Mutex<Option<Arc<Router>>>,
    workloads: Mutex<HashMap<String, Arc<Workload>>>,
    link_local: Mutex<Vec<(SocketAddrV4, Arc<dyn LinkLocalHandler>)>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        for w in lock(&self.workloads).values() {
            for t in lock(&w.tasks).drain(..) {
                t.abort();
            }
        }
    }
}

/// The shared implementation; the two public drivers wrap it.
#[derive(Clone)]
struct Engine(Arc<Inner>);

/// Namespaces, overlayfs rootfs, cgroups and bridged networking (needs root on Linux).
pub struct LinuxDriver(Engine);
/// Plain child processes in a private working directory; no isolation, no limits.
pub struct ProcessDriver(Engine);

impl LinuxDriver {
    pub fn new(config: DriverConfig, sink: Arc<dyn LogSink>) -> Result<Self> {
        linux_support().map_err(|what| RuntimeError::Unsupported {
            driver: "linux",
            what,
        })?;
        Ok(LinuxDriver(Engine::new(Kind::Linux, config, sink)?))
    }
}

impl ProcessDriver {
    pub fn new(config: DriverConfig, sink: Arc<dyn LogSink>) -> Result<Self> {
        Ok(ProcessDriver(Engine::new(Kind::Process, config, sink)?))
    }
}

macro_rules! delegate_driver {
    ($t:ty) => {
        #[async_trait::async_trait]
        impl Driver for $t {
            fn name(&self) -> &'static str {
                self.0 .0.kind.name()
            }
            fn capabilities(&self) -> Capabilities {
                self.0.capabilities()
            }
            async fn start(&self, spec: WorkloadSpec) -> Result<Handle> {
                self.0.start(spec).await
            }
            async fn recover(&self, handle: &Handle) -> Result<Recovered> {
                self.0.recover(handle).await
            }
            async fn wait(&self, id: &str) -> Result<ExitStatus> {
                self.0.wait(id).await
            }
            async fn stop(&self, id: &str, grace: Duration, signal: i32) -> Result<ExitStatus> {
                self.0.stop(id, grace, signal).await
            }
            async fn destroy(&self, id: &str) -> Result<()> {
                self.0.destroy(id).await
            }
            async fn inspect(&self, id: &str) -> Result<WorkloadInfo> {
                self.0.inspect(id)
            }
            async fn stats(&self, id: &str) -> Result<Stats> {
                self.0.stats(id)
            }
            async fn exec(&self, id: &str, exec: ExecSpec) -> Result<ExecOutput> {
                self.0.exec(id, exec).await
            }
            async fn cleanup_orphans(&self, keep: &[String]) -> Result<Vec<String>> {
                self.0.cleanup_orphans(keep).await
            }
            fn api_address(&self) -> SocketAddr {
                self.0.api_address()
            }
            async fn serve_link_local(
                &self,
                addr: SocketAddrV4,
                handler: Arc<dyn LinkLocalHandler>,
            ) -> Result<()> {
                self.0.serve_link_local(addr, handler).await
            }
            async fn shutdown(&self) {
                self.0.shutdown().await
            }
            async fn set_firewall(&self, id: &str, rules: &crate::Firewall) -> Result<()> {
                self.0.set_firewall(id, rules).await
            }
            async fn attach_mount(&self, id: &str, source: &Path, target: &Path) -> Result<()> {
                self.0.attach_mount(id, source, target).await
            }
            async fn detach_mount(&self, id: &str, target: &Path) -> Result<()> {
                self.0.detach_mount(id, target).await
            }
        }
    };
}

delegate_driver!(LinuxDriver);
delegate_driver!(ProcessDriver);

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !id.starts_with('.')
}

fn io_err(ctx: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let ctx = ctx.into();
    move |e| RuntimeError::io(ctx, e)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .map_err(io_err("run cp"))?;
    if !out.status.success() {
        return Err(RuntimeError::InvalidSpec(format!(
            "copy layer {}: {}",
            from.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Workload exit, if any: status file first, then supervisor liveness.
fn exit_of(h: &Handle) -> Option<ExitStatus> {
    if let Some(s) = read_status(&h.dir) {
        return Some(s);
    }
    if sys::process_alive(h.supervisor_pid, h.supervisor_start) {
        return None;
    }
    if let Some(s) = read_status(&h.dir) {
        return Some(s);
    }
    let s = ExitStatus {
        reason: "supervisor vanished: the workload was lost (host restart or kill)".into(),
        ..Default::default()
    };
    if h.dir.exists() {
        let _ = write_status(&h.dir, &s);
    }
    Some(s)
}

struct Spawned {
    handle: Handle,
}

impl Engine {
    fn new(kind: Kind, config: DriverConfig, sink: Arc<dyn LogSink>) -> Result<Engine> {
        std::fs::create_dir_all(config.state_dir.join("workloads"))
            .map_err(io_err(format!("create {}", config.state_dir.display())))?;
        let state_dir = config
            .state_dir
            .canonicalize()
            .map_err(io_err(format!("resolve {}", config.state_dir.display())))?;
        let volumes_dir = config
            .volumes_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("volumes"));
        let init_exe = match config.init_exe.clone() {
            Some(p) => p,
            None => std::env::current_exe().map_err(io_err("find the current executable"))?,
        };
        let instance = short_hash(&[&state_dir.to_string_lossy()]);
        let cgroups = if kind == Kind::Linux {
            cgroup::Layout::detect(&instance)
        } else {
            cgroup::Layout::None
        };
        Ok(Engine(Arc::new(Inner {
            kind,
            state_dir,
            volumes_dir,
            init_exe,
            api_port: config.api_port,
            instance,
            sink,
            cgroups,
            overlay: overlay_supported(),
            root_user: is_root(),
            router: tokio::sync::Mutex::new(None),
            workloads: Mutex::new(HashMap::new()),
            link_local: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        })))
    }

    fn router_name(&self) -> String {
        format!("fc-{}", self.0.instance)
    }

    fn capabilities(&self) -> Capabilities {
        let i = &self.0;
        match i.kind {
            Kind::Linux => Capabilities {
                driver: "linux".into(),
                pid_isolation: true,
                mount_isolation: true,
                network_isolation: true,
                uts_isolation: true,
                ipc_isolation: true,
                rootfs: true,
                overlay: i.overlay,
                bind_mounts: true,
                volumes: true,
                users: true,
                memory_limit: i.cgroups.has("memory"),
                cpu_limit: i.cgroups.has("cpu"),
                pids_limit: i.cgroups.has("pids"),
                networking: true,
                published_ports: true,
                exec: true,
                recover: true,
                cgroup_version: i.cgroups.version(),
                notes: vec![
                    "no user namespace, seccomp filter or capability dropping: root in a \
                     workload is root on the host"
                        .into(),
                    "workload networks have no route outside ferrocloud".into(),
                    match crate::firewall::support() {
                        Ok(()) => "firewalls: iptables rules inside each workload's network \
                                   namespace"
                            .into(),
                        Err(why) => format!("firewalls are not enforced: {why}"),
                    },
                    crate::scratch::note(),
                ],
            },
            Kind::Process => Capabilities {
                driver: "process".into(),
                users: i.root_user,
                exec: true,
                recover: true,
                notes: vec![
                    "no isolation: workloads share the host's filesystem, processes and \
                     network"
                        .into(),
                    "bind mounts, volumes, resource limits and networks are refused; image \
                     layers, read-only root and hostname are ignored"
                        .into(),
                    "firewalls (security groups) cannot be enforced: workloads use the \
                     host's network directly"
                        .into(),
                    "scratch mounts are ignored (no private root to mount them in)".into(),
                ],
                ..Default::default()
            },
        }
    }

    /// Loads `rules` into the workload's own network namespace (linux driver only).
    async fn set_firewall(&self, id: &str, rules: &crate::Firewall) -> Result<()> {
        if self.0.kind != Kind::Linux {
            return Err(self.unsupported("firewalls (no network namespaces)"));
        }
        let rendered = crate::firewall::render(rules)?;
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        if h.supervisor_pid <= 0 || exit_of(&h).is_some() {
            return Err(RuntimeError::NotFound(format!("{id} (not running)")));
        }
        tokio::task::spawn_blocking(move || {
            // The supervisor was born in the workload's network namespace; check it is still
            // that process (pid reuse) before entering its namespace.
            if !sys::process_alive(h.supervisor_pid, h.supervisor_start) {
                return Err(RuntimeError::NotFound(format!("{} (not running)", h.id)));
            }
            let ns = PathBuf::from(format!("/proc/{}/ns/net", h.supervisor_pid));
            crate::firewall::apply(&ns, &rendered)
        })
        .await
        .map_err(|e| RuntimeError::Network(format!("firewall task: {e}")))?
    }

    fn workload(&self, id: &str) -> Result<Arc<Workload>> {
        lock(&self.0.workloads)
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))
    }

    fn unsupported(&self, what: &str) -> RuntimeError {
        RuntimeError::Unsupported {
            driver: self.0.kind.name(),
            what: what.to_string(),
        }
    }

    async fn router(&self) -> Result<Arc<Router>> {
        let mut guard = self.0.router.lock().await;
        if let Some(r) = guard.as_ref() {
            return Ok(r.clone());
        }
        let name = self.router_name();
        let mut addrs = vec![API_LINK_LOCAL];
        addrs.extend(lock(&self.0.link_local).iter().map(|(a, _)| *a.ip()));
        let r = tokio::task::spawn_blocking(move || Router::ensure(&name, &addrs))
            .await
            .map_err(|e| RuntimeError::Network(format!("router task: {e}")))??;
        let r = Arc::new(r);
        // ferrocloud's own API, proxied from the router namespace to host 127.0.0.1.
        let api = SocketAddr::from((API_LINK_LOCAL, self.0.api_port));
        let listener = r.listen(api)?;
        let port = self.0.api_port;
        let task = spawn_accept(listener, move |stream, _peer| {
            tokio::spawn(async move {
                if let Ok(mut up) =
                    tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await
                {
                    let mut stream = stream;
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut up).await;
                }
            });
        })?;
        lock(&self.0.tasks).push(task);
        let handlers: Vec<_> = lock(&self.0.link_local).clone();
        for (addr, h) in handlers {
            self.spawn_link_local(&r, addr, h)?;
        }
        *guard = Some(r.clone());
        Ok(r)
    }

    fn spawn_link_local(
        &self,
        r: &Arc<Router>,
        addr: SocketAddrV4,
        handler: Arc<dyn LinkLocalHandler>,
    ) -> Result<()> {
        let listener = r.listen(SocketAddr::V4(addr))?;
        let weak: Weak<Inner> = Arc::downgrade(&self.0);
        let router = Arc::downgrade(r);
        let task = spawn_accept(listener, move |stream, peer| {
            // The peer is the workload with that address in the routing domain the
            // connection came from (its mark): domains' address ranges may overlap.
            let mark = crate::net::socket_mark(&stream);
            let id = weak.upgrade().and_then(|inner| {
                let ip = match peer {
                    SocketAddr::V4(a) => *a.ip(),
                    SocketAddr::V6(_) => return None,
                };
                let router = router.upgrade()?;
                lock(&inner.workloads).iter().find_map(|(id, w)| {
                    let h = lock(&w.handle);
                    let n = h.network.as_ref()?;
                    (n.ip == ip && router.peer_on(&n.bridge, mark)).then(|| id.clone())
                })
            });
            handler.handle(peer, id, stream);
        })?;
        lock(&self.0.tasks).push(task);
        Ok(())
    }

    async fn serve_link_local(
        &self,
        addr: SocketAddrV4,
        handler: Arc<dyn LinkLocalHandler>,
    ) -> Result<()> {
        if self.0.kind != Kind::Linux {
            return Err(self.unsupported("link-local services (no network namespaces)"));
        }
        if !addr.ip().is_link_local() {
            return Err(RuntimeError::InvalidSpec(format!(
                "{addr} is not a link-local address"
            )));
        }
        lock(&self.0.link_local).push((addr, handler.clone()));
        let existing = self.0.router.lock().await.clone();
        match existing {
            Some(r) => {
                let ip = *addr.ip();
                let r2 = r.clone();
                tokio::task::spawn_blocking(move || r2.add_link_local(ip))
                    .await
                    .map_err(|e| RuntimeError::Network(format!("router task: {e}")))??;
                self.spawn_link_local(&r, addr, handler)
            }
            None => self.router().await.map(|_| ()),
        }
    }

    fn api_address(&self) -> SocketAddr {
        match self.0.kind {
            Kind::Linux => SocketAddr::from((API_LINK_LOCAL, self.0.api_port)),
            Kind::Process => SocketAddr::from(([127, 0, 0, 1], self.0.api_port)),
        }
    }

    fn validate(&self, spec: &WorkloadSpec) -> Result<()> {
        if !valid_id(&spec.id) {
            return Err(RuntimeError::InvalidSpec(format!(
                "workload id {:?} must be 1-64 of [A-Za-z0-9_.-]",
                spec.id
            )));
        }
        if spec.process.argv.is_empty() {
            return Err(RuntimeError::InvalidSpec("empty argv".into()));
        }
        if let Some(w) = &spec.process.workdir {
            if !w.starts_with('/') {
                return Err(RuntimeError::InvalidSpec(format!(
                    "workdir {w} must be absolute"
                )));
            }
        }
        for m in &spec.mounts {
            if let MountSource::Scratch { size_mb } = m.source {
                crate::scratch::validate(size_mb)?;
            }
        }
        if self.0.kind == Kind::Process {
            let real_mounts = spec
                .mounts
                .iter()
                .any(|m| !matches!(m.source, MountSource::Scratch { .. }));
            if !spec.rootfs.binds.is_empty() || real_mounts {
                return Err(self.unsupported("bind mounts and volumes"));
            }
            if spec.network.is_some() {
                return Err(self.unsupported("networks"));
            }
            let l = &spec.limits;
            if l.memory_bytes.is_some() || l.cpu_millis.is_some() || l.pids.is_some() {
                return Err(self.unsupported("resource limits"));
            }
            if spec.process.user.is_some() && !self.0.root_user {
                return Err(self.unsupported("running as another user without root"));
            }
        } else {
            let l = &spec.limits;
            for (set, what) in [
                (l.memory_bytes.is_some(), "memory"),
                (l.cpu_millis.is_some(), "cpu"),
                (l.pids.is_some(), "pids"),
            ] {
                if set && !self.0.cgroups.has(what) {
                    return Err(self.unsupported(&format!("{what} limit (no cgroup controller)")));
                }
            }
        }
        if let Some(h) = &spec.hostname {
            if h.is_empty() || h.len() > 64 {
                return Err(RuntimeError::InvalidSpec(format!("bad hostname {h:?}")));
            }
        }
        Ok(())
    }

    async fn start(&self, spec: WorkloadSpec) -> Result<Handle> {
        self.validate(&spec)?;
        let id = spec.id.clone();
        let dir = self.0.state_dir.join("workloads").join(&id);
        {
            let map = lock(&self.0.workloads);
            if map.contains_key(&id) || dir.exists() {
                return Err(RuntimeError::AlreadyExists(id));
            }
        }
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        // Network plan (address allocation happens under the table lock, reserved by a
        // placeholder so concurrent starts do not collide).
        let mut net_plan = None;
        // Held until this start returns: by then the workload is in the table (or gone).
        let mut _reservation: Option<IpReservation> = None;
        if let Some(n) = &spec.network {
            let cidr = Cidr::parse(&n.cidr)?;
            let key = format!("{}/{}", self.0.instance, n.network);
            let ip = {
                let mut pending = lock(&PENDING_IPS);
                let mut used: Vec<Ipv4Addr> = lock(&self.0.workloads)
                    .values()
                    .filter_map(|w| {
                        let h = lock(&w.handle);
                        h.network
                            .as_ref()
                            .filter(|s| s.network == n.network)
                            .map(|s| s.ip)
                    })
                    .collect();
                used.extend(pending.iter().filter(|(k, _)| *k == key).map(|(_, ip)| *ip));
                let ip = match n.ip {
                    Some(ip) => {
                        if !cidr.is_assignable(ip) {
                            let _ = std::fs::remove_dir_all(&dir);
                            return Err(RuntimeError::InvalidSpec(format!(
                                "address {ip} is not assignable in {}",
                                n.cidr
                            )));
                        }
                        if used.contains(&ip) {
                            let _ = std::fs::remove_dir_all(&dir);
                            return Err(RuntimeError::InvalidSpec(format!(
                                "address {ip} is in use in network {}",
                                n.network
                            )));
                        }
                        ip
                    }
                    None => match cidr.first_free(&used) {
                        Some(ip) => ip,
                        None => {
                            let _ = std::fs::remove_dir_all(&dir);
                            return Err(RuntimeError::InvalidSpec(format!(
                                "network {} has no free address",
                                n.network
                            )));
                        }
                    },
                };
                pending.push((key.clone(), ip));
                ip
            };
            _reservation = Some(IpReservation { key, ip });
            let router = match self.router().await {
                Ok(r) => r,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            };
            let state = NetworkState {
                network: n.network.clone(),
                cidr: format!("{}/{}", cidr.network, cidr.prefix),
                ip,
                gateway: cidr.gateway(),
                router_ns: self.router_name(),
                bridge: format!("fcb{}", short_hash(&[&self.0.instance, &n.network])),
                host_veth: format!("fcv{}", short_hash(&[&self.0.instance, &id])),
                ports: Vec::new(),
            };
            let key = domain_key(&n.network, n.domain.as_deref());
            net_plan = Some((router, cidr, state, key));
        }
        // Placeholder entry reserves the id and address.
        let (logs_tx, logs_rx) = tokio::sync::watch::channel(false);
        let placeholder = Arc::new(Workload {
            handle: Mutex::new(Handle {
                version: HANDLE_VERSION,
                driver: self.0.kind.name().into(),
                id: id.clone(),
                dir: dir.clone(),
                supervisor_pid: 0,
                supervisor_start: 0,
                pid: 0,
                cgroups: Vec::new(),
                network: net_plan.as_ref().map(|(_, _, s, _)| s.clone()),
                logs: spec.logs.clone(),
                started_at_ms: now_ms(),
            }),
            tasks: Mutex::new(Vec::new()),
            logs_done: logs_rx,
        });
        {
            let mut map = lock(&self.0.workloads);
            if map.contains_key(&id) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(RuntimeError::AlreadyExists(id));
            }
            map.insert(id.clone(), placeholder.clone());
        }
        let engine = self.clone();
        let spec2 = spec.clone();
        let plan2 = net_plan
            .as_ref()
            .map(|(r, c, s, k)| (r.clone(), *c, s.clone(), k.clone()));
        let res = tokio::task::spawn_blocking(move || engine.start_blocking(&spec2, plan2))
            .await
            .map_err(|e| RuntimeError::StartFailed {
                id: id.clone(),
                reason: format!("start task: {e}"),
            })
            .and_then(|r| r);
        let spawned = match res {
            Ok(s) => s,
            Err(e) => {
                lock(&self.0.workloads).remove(&id);
                crate::scratch::release_all(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut handle = spawned.handle;
        // Published ports.
        if let (Some((router, _, _, _)), Some(n)) = (&net_plan, &spec.network) {
            let mut ports = Vec::new();
            for p in &n.ports {
                let Some(state) = handle.network.as_ref() else {
                    continue;
                };
                let (bridge, ip) = (state.bridge.clone(), state.ip);
                match publish(router, &bridge, ip, p.container_port, p.host_port).await {
                    Ok((addr, task)) => {
                        lock(&placeholder.tasks).push(task);
                        ports.push(PublishedPort {
                            container_port: p.container_port,
                            host: addr,
                        });
                    }
                    Err(e) => {
                        *lock(&placeholder.handle) = handle.clone();
                        let _ = self.destroy(&id).await;
                        return Err(e);
                    }
                }
            }
            if let Some(s) = handle.network.as_mut() {
                s.ports = ports;
            }
        }
        let _ = std::fs::write(
            dir.join("handle.json"),
            serde_json::to_vec(&handle).unwrap_or_default(),
        );
        *lock(&placeholder.handle) = handle.clone();
        self.start_log_forwarder(&placeholder, logs_tx);
        Ok(handle)
    }

    fn start_blocking(
        &self,
        spec: &WorkloadSpec,
        net: Option<(Arc<Router>, Cidr, NetworkState, String)>,
    ) -> Result<Spawned> {
        let i = &self.0;
        let id = &spec.id;
        let dir = i.state_dir.join("workloads").join(id);
        let isolated = i.kind == Kind::Linux;
        let (root, overlay) = if isolated {
            let root = dir.join("rootfs");
            std::fs::create_dir_all(&root).map_err(io_err("create rootfs dir"))?;
            let mut lowers = spec.rootfs.lowers.clone();
            for l in &lowers {
                if !l.is_dir() {
                    return Err(RuntimeError::InvalidSpec(format!(
                        "layer {} is not a directory",
                        l.display()
                    )));
                }
            }
            if i.overlay {
                if lowers.is_empty() {
                    let empty = dir.join("empty");
                    std::fs::create_dir_all(&empty).map_err(io_err("create empty layer"))?;
                    lowers.push(empty);
                }
                let upper = dir.join("upper");
                let work = dir.join("ovwork");
                std::fs::create_dir_all(&upper).map_err(io_err("create upper dir"))?;
                std::fs::create_dir_all(&work).map_err(io_err("create overlay work dir"))?;
                (
                    root,
                    Some(Overlay {
                        lowers,
                        upper,
                        work,
                    }),
                )
            } else {
                for l in lowers.iter().rev() {
                    copy_tree(l, &root)?;
                }
                (root, None)
            }
        } else {
            let root = dir.join("root");
            std::fs::create_dir_all(&root).map_err(io_err("create private dir"))?;
            (root, None)
        };
        let mut binds: Vec<Bind> = spec
            .rootfs
            .binds
            .iter()
            .map(|(s, t, ro)| Bind {
                source: s.clone(),
                target: t.clone(),
                read_only: *ro,
            })
            .collect();
        for (n, m) in spec.mounts.iter().enumerate() {
            let source = match &m.source {
                MountSource::Bind(p) => p.clone(),
                // Ignored by the process driver (see its capabilities).
                MountSource::Scratch { .. } if !isolated => continue,
                MountSource::Scratch { size_mb } => {
                    let templates = i.state_dir.join("scratch-templates");
                    crate::scratch::create(&dir, &templates, n, *size_mb)?
                }
                MountSource::Volume(name) => {
                    if !valid_id(name) {
                        return Err(RuntimeError::InvalidSpec(format!("bad volume name {name}")));
                    }
                    let p = i.volumes_dir.join(name);
                    std::fs::create_dir_all(&p)
                        .map_err(io_err(format!("create volume {}", p.display())))?;
                    p
                }
            };
            binds.push(Bind {
                source,
                target: m.target.clone(),
                read_only: m.read_only,
            });
        }
        let cgroups = if isolated {
            i.cgroups.create(id, &spec.limits)?
        } else {
            Vec::new()
        };
        let cleanup_cg = |cg: &[PathBuf]| {
            let _ = cgroup::remove(cg, Duration::from_secs(10));
        };
        let init = InitSpec {
            isolated,
            dir: dir.clone(),
            root,
            overlay,
            binds,
            read_only: spec.rootfs.read_only,
            hostname: spec.hostname.clone(),
            process: spec.process.clone(),
            cgroups: cgroups.clone(),
        };
        let body = serde_json::to_vec_pretty(&init).map_err(|e| RuntimeError::StartFailed {
            id: id.clone(),
            reason: format!("encode spec: {e}"),
        })?;
        if let Err(e) = std::fs::write(dir.join("spec.json"), body) {
            cleanup_cg(&cgroups);
            return Err(RuntimeError::io("write spec.json", e));
        }
        let init_log = std::fs::File::create(dir.join("init.log"));
        let exe = i.init_exe.clone();
        let dir2 = dir.clone();
        // The spawning thread unshares its own namespaces first so the supervisor is born in
        // them (the supervisor itself creates the PID namespace for its child); the thread then ends.
        let spawn = std::thread::spawn(move || -> std::io::Result<std::process::Child> {
            if isolated {
                sys::unshare(libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET)?;
            }
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(&exe);
            cmd.arg(INIT_MARKER)
                .arg(&dir2)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .process_group(0)
                .env_clear();
            match init_log {
                Ok(f) => cmd.stderr(f),
                Err(_) => cmd.stderr(Stdio::null()),
            };
            cmd.spawn()
        })
        .join();
        let mut child = match spawn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                cleanup_cg(&cgroups);
                return Err(RuntimeError::StartFailed {
                    id: id.clone(),
                    reason: format!("spawn supervisor {}: {e}", i.init_exe.display()),
                });
            }
            Err(_) => {
                cleanup_cg(&cgroups);
                return Err(RuntimeError::StartFailed {
                    id: id.clone(),
                    reason: "spawn thread panicked".into(),
                });
            }
        };
        let sup_pid = child.id() as i32;
        let fail = |child: &mut std::process::Child, reason: String| {
            let _ = child.kill();
            let _ = child.wait();
            cleanup_cg(&cgroups);
            RuntimeError::StartFailed {
                id: id.clone(),
                reason,
            }
        };
        let mut net_state = None;
        if let Some((router, cidr, state, key)) = net {
            if let Err(e) = router
                .ensure_bridge(&state.bridge, &cidr, &key)
                .and_then(|_| {
                    router.attach(sup_pid, &state.bridge, &state.host_veth, state.ip, &cidr)
                })
            {
                router.detach(&state.host_veth);
                return Err(fail(&mut child, e.to_string()));
            }
            net_state = Some(state);
        }
        let mut stdin = child.stdin.take();
        if let Some(s) = stdin.as_mut() {
            if let Err(e) = s.write_all(b"g") {
                return Err(fail(&mut child, format!("hand-shake: {e}")));
            }
        }
        drop(stdin);
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let line = line.trim().to_string();
        let pid = match line.strip_prefix("ok ").and_then(|p| p.parse::<i32>().ok()) {
            Some(p) => p,
            None => {
                let msg = line
                    .strip_prefix("err ")
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        let log = std::fs::read_to_string(dir.join("init.log")).unwrap_or_default();
                        format!("supervisor failed: {} {}", line, log.trim())
                    });
                let _ = child.wait();
                cleanup_cg(&cgroups);
                return Err(RuntimeError::StartFailed {
                    id: id.clone(),
                    reason: msg,
                });
            }
        };
        let supervisor_start = sys::proc_stat(sup_pid).map(|(_, s)| s).unwrap_or(0);
        // Reap the supervisor whenever it ends (the thread outlives this driver object).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(Spawned {
            handle: Handle {
                version: HANDLE_VERSION,
                driver: i.kind.name().into(),
                id: id.clone(),
                dir,
                supervisor_pid: sup_pid,
                supervisor_start,
                pid,
                cgroups,
                network: net_state,
                logs: spec.logs.clone(),
                started_at_ms: now_ms(),
            },
        })
    }

    fn start_log_forwarder(&self, w: &Arc<Workload>, done: tokio::sync::watch::Sender<bool>) {
        let handle = lock(&w.handle).clone();
        let sink = self.0.sink.clone();
        let task = tokio::spawn(async move {
            let mut fwd = LogForwarder::load(&handle.dir);
            let mut last_output = std::time::Instant::now();
            let mut delay = LOG_POLL_FAST;
            loop {
                let finished = exit_of(&handle).is_some();
                let before = fwd.offsets;
                let events = fwd.drain(finished);
                if let (Some(t), false) = (&handle.logs, events.is_empty()) {
                    deliver(&*sink, t, &events);
                }
                if fwd.offsets != before || finished {
                    fwd.save();
                    last_output = std::time::Instant::now();
                }
                if finished {
                    break;
                }
                // Boot output and bursts reach the sink within milliseconds; a quiet workload
                // costs ten reads a second.
                delay = if last_output.elapsed() < LOG_FAST_FOR {
                    LOG_POLL_FAST
                } else {
                    (delay * 2).min(LOG_POLL)
                };
                tokio::time::sleep(delay).await;
            }
            let _ = done.send(true);
        });
        lock(&w.tasks).push(task.abort_handle());
    }

    async fn wait(&self, id: &str) -> Result<ExitStatus> {
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        let status = loop {
            if let Some(s) = exit_of(&h) {
                break s;
            }
            tokio::time::sleep(POLL).await;
        };
        // Let the log forwarder deliver the last lines (bounded).
        let mut rx = w.logs_done.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|d| *d)).await;
        Ok(status)
    }

    fn signal(&self, h: &Handle, sig: i32) {
        if h.pid <= 0 {
            return;
        }
        match self.0.kind {
            Kind::Linux => {
                let _ = sys::kill(h.pid, sig);
            }
            Kind::Process => {
                if sys::kill(-h.pid, sig).is_err() {
                    let _ = sys::kill(h.pid, sig);
                }
            }
        }
    }

    async fn stop(&self, id: &str, grace: Duration, signal: i32) -> Result<ExitStatus> {
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        if let Some(s) = exit_of(&h) {
            return Ok(s);
        }
        let _ = std::fs::write(h.dir.join("stop_requested"), b"");
        self.signal(&h, signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if exit_of(&h).is_some() {
                return self.wait(id).await;
            }
            tokio::time::sleep(POLL).await;
        }
        self.signal(&h, libc::SIGKILL);
        for p in cgroup::procs(&h.cgroups) {
            let _ = sys::kill(p, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if exit_of(&h).is_some() {
                return self.wait(id).await;
            }
            tokio::time::sleep(POLL).await;
        }
        Err(RuntimeError::StartFailed {
            id: id.to_string(),
            reason: "workload did not die within 30 s of SIGKILL".into(),
        })
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        if h.supervisor_pid > 0 && exit_of(&h).is_none() {
            self.stop(id, Duration::ZERO, libc::SIGKILL).await?;
        } else {
            let mut rx = w.logs_done.clone();
            let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|d| *d)).await;
        }
        for t in lock(&w.tasks).drain(..) {
            t.abort();
        }
        lock(&self.0.workloads).remove(id);
        let router = self.0.router.lock().await.clone();
        let h2 = h.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            // The supervisor records the exit then ends; give it a moment to be gone.
            let deadline = Instant::now() + Duration::from_secs(10);
            while sys::process_alive(h2.supervisor_pid, h2.supervisor_start)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            cgroup::remove(&h2.cgroups, Duration::from_secs(10))?;
            if let (Some(r), Some(n)) = (router, &h2.network) {
                r.detach(&n.host_veth);
            }
            crate::scratch::release_all(&h2.dir);
            remove_dir(&h2.dir)
        })
        .await
        .map_err(|e| RuntimeError::Cgroup(format!("destroy task: {e}")))?
    }

    fn inspect(&self, id: &str) -> Result<WorkloadInfo> {
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        let exit = exit_of(&h);
        Ok(WorkloadInfo {
            id: h.id.clone(),
            driver: h.driver.clone(),
            running: exit.is_none(),
            exit,
            pid: h.pid,
            network: h.network.clone(),
            started_at_ms: h.started_at_ms,
            dir: h.dir.clone(),
        })
    }

    fn stats(&self, id: &str) -> Result<Stats> {
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        if !h.cgroups.is_empty() {
            return Ok(cgroup::stats(&h.cgroups));
        }
        Ok(process_group_stats(h.pid))
    }

    async fn exec(&self, id: &str, exec: ExecSpec) -> Result<ExecOutput> {
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        if exit_of(&h).is_some() {
            return Err(RuntimeError::Exec {
                id: id.into(),
                reason: "workload is not running".into(),
            });
        }
        if exec.argv.is_empty() {
            return Err(RuntimeError::InvalidSpec("empty exec argv".into()));
        }
        let spec: InitSpec = std::fs::read(h.dir.join("spec.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| RuntimeError::Exec {
                id: id.into(),
                reason: "workload spec.json unreadable".into(),
            })?;
        let mut env = spec.process.env.clone();
        for (k, v) in exec.env {
            match env.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => env.push((k, v)),
            }
        }
        let wd = exec
            .workdir
            .or(spec.process.workdir.clone())
            .unwrap_or_else(|| "/".into());
        let workdir = if spec.isolated {
            wd
        } else {
            crate::init::under(&spec.root, Path::new(&wd))
                .to_string_lossy()
                .into_owned()
        };
        let req = ExecRequest {
            isolated: spec.isolated,
            pid: h.pid,
            cgroups: h.cgroups.clone(),
            argv: exec.argv,
            env,
            user: exec.user.or(spec.process.user),
            workdir,
        };
        let json = serde_json::to_string(&req).map_err(|e| RuntimeError::Exec {
            id: id.into(),
            reason: format!("encode request: {e}"),
        })?;
        let child = tokio::process::Command::new(&self.0.init_exe)
            .arg(crate::EXEC_MARKER)
            .arg(json)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RuntimeError::Exec {
                id: id.into(),
                reason: format!("spawn exec helper: {e}"),
            })?;
        let timeout = exec.timeout.unwrap_or(Duration::from_secs(60));
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| RuntimeError::Exec {
                id: id.into(),
                reason: format!("timed out after {timeout:?}"),
            })?
            .map_err(|e| RuntimeError::Exec {
                id: id.into(),
                reason: format!("wait for exec helper: {e}"),
            })?;
        use std::os::unix::process::ExitStatusExt;
        let code = out
            .status
            .code()
            .or_else(|| out.status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        Ok(ExecOutput {
            code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn recover(&self, handle: &Handle) -> Result<Recovered> {
        if handle.version != HANDLE_VERSION {
            return Err(RuntimeError::HandleVersion(handle.version));
        }
        if handle.driver != self.0.kind.name() {
            return Err(RuntimeError::WrongDriver {
                expected: self.0.kind.name(),
                found: handle.driver.clone(),
            });
        }
        if let Ok(w) = self.workload(&handle.id) {
            let h = lock(&w.handle).clone();
            return Ok(match exit_of(&h) {
                Some(s) => Recovered::Exited(s),
                None => Recovered::Running,
            });
        }
        let mut handle = handle.clone();
        if !handle.dir.exists() {
            return Ok(Recovered::Exited(ExitStatus {
                reason: "workload directory is gone".into(),
                ..Default::default()
            }));
        }
        let exit = exit_of(&handle);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let w = Arc::new(Workload {
            handle: Mutex::new(handle.clone()),
            tasks: Mutex::new(Vec::new()),
            logs_done: rx,
        });
        lock(&self.0.workloads).insert(handle.id.clone(), w.clone());
        if exit.is_none() {
            if let Some(n) = handle.network.as_mut() {
                let router = self.router().await?;
                let mut ports = Vec::new();
                for p in &n.ports {
                    let res =
                        match publish(&router, &n.bridge, n.ip, p.container_port, p.host.port())
                            .await
                        {
                            Ok(r) => Ok(r),
                            Err(_) => publish(&router, &n.bridge, n.ip, p.container_port, 0).await,
                        };
                    let (addr, task) = res?;
                    lock(&w.tasks).push(task);
                    ports.push(PublishedPort {
                        container_port: p.container_port,
                        host: addr,
                    });
                }
                n.ports = ports;
                *lock(&w.handle) = handle.clone();
            }
        }
        self.start_log_forwarder(&w, tx);
        Ok(match exit {
            Some(s) => Recovered::Exited(s),
            None => Recovered::Running,
        })
    }

    async fn cleanup_orphans(&self, keep: &[String]) -> Result<Vec<String>> {
        let known: Vec<String> = lock(&self.0.workloads).keys().cloned().collect();
        let is_kept = |id: &str| keep.iter().any(|k| k == id) || known.iter().any(|k| k == id);
        let mut removed = Vec::new();
        let root = self.0.state_dir.join("workloads");
        let entries =
            std::fs::read_dir(&root).map_err(io_err(format!("list {}", root.display())))?;
        let mut orphans = Vec::new();
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !is_kept(&id) {
                orphans.push((id, e.path()));
            }
        }
        let bases = self.0.cgroups.bases();
        let keep_all: Vec<String> = keep.iter().cloned().chain(known.iter().cloned()).collect();
        let router = if self.0.kind == Kind::Linux && Router::exists(&self.router_name()) {
            Some(self.router().await?)
        } else {
            None
        };
        let instance = self.0.instance.clone();
        let out = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            for (id, dir) in orphans {
                let handle: Option<Handle> = std::fs::read(dir.join("handle.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let mut cgroups: Vec<PathBuf> = bases.iter().map(|b| b.join(&id)).collect();
                if let Some(h) = &handle {
                    if sys::process_alive(h.supervisor_pid, h.supervisor_start) {
                        if sys::proc_stat(h.pid).is_some() {
                            let _ = sys::kill(h.pid, libc::SIGKILL);
                            let _ = sys::kill(-h.pid, libc::SIGKILL);
                        }
                        let _ = sys::kill(h.supervisor_pid, libc::SIGKILL);
                    }
                    cgroups.extend(h.cgroups.iter().cloned());
                }
                let cgroups: Vec<PathBuf> = cgroups.into_iter().filter(|c| c.exists()).collect();
                cgroup::remove(&cgroups, Duration::from_secs(10))?;
                crate::scratch::release_all(&dir);
                remove_dir(&dir)?;
                removed.push(id);
            }
            // cgroups without a directory
            for b in &bases {
                if let Ok(rd) = std::fs::read_dir(b) {
                    for e in rd.flatten() {
                        let id = e.file_name().to_string_lossy().into_owned();
                        if e.path().is_dir() && !keep_all.contains(&id) {
                            cgroup::remove(&[e.path()], Duration::from_secs(10))?;
                        }
                    }
                }
            }
            if let Some(r) = router {
                let wanted: Vec<String> = keep_all
                    .iter()
                    .map(|id| format!("fcv{}", short_hash(&[&instance, id])))
                    .collect();
                for v in r.veths() {
                    if v.starts_with("fcv") && !wanted.contains(&v) {
                        r.detach(&v);
                    }
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| RuntimeError::Cgroup(format!("cleanup task: {e}")))??;
        Ok(out)
    }

    /// The main pid of a running linux workload, for live mounts.
    fn running_pid(&self, id: &str) -> Result<i32> {
        if self.0.kind != Kind::Linux {
            return Err(self.unsupported("live mounts (no mount namespaces)"));
        }
        let w = self.workload(id)?;
        let h = lock(&w.handle).clone();
        if h.pid <= 0 || exit_of(&h).is_some() {
            return Err(RuntimeError::InvalidSpec(format!(
                "workload {id} is not running"
            )));
        }
        Ok(h.pid)
    }

    async fn attach_mount(&self, id: &str, source: &Path, target: &Path) -> Result<()> {
        let pid = self.running_pid(id)?;
        crate::attach::check_target(target)?;
        if !source.is_dir() {
            return Err(RuntimeError::InvalidSpec(format!(
                "mount source {} is not a directory",
                source.display()
            )));
        }
        let (s, t) = (source.to_path_buf(), target.to_path_buf());
        tokio::task::spawn_blocking(move || crate::attach::attach(pid, &s, &t))
            .await
            .map_err(|e| RuntimeError::StartFailed {
                id: id.to_string(),
                reason: format!("attach task: {e}"),
            })?
    }

    async fn detach_mount(&self, id: &str, target: &Path) -> Result<()> {
        let pid = self.running_pid(id)?;
        let t = target.to_path_buf();
        tokio::task::spawn_blocking(move || crate::attach::detach(pid, &t))
            .await
            .map_err(|e| RuntimeError::StartFailed {
                id: id.to_string(),
                reason: format!("detach task: {e}"),
            })?
    }

    async fn shutdown(&self) {
        for t in lock(&self.0.tasks).drain(..) {
            t.abort();
        }
        let ws: Vec<Arc<Workload>> = lock(&self.0.workloads).values().cloned().collect();
        for w in ws {
            for t in lock(&w.tasks).drain(..) {
                t.abort();
            }
        }
        let live = lock(&self.0.workloads).len();
        let dirs = std::fs::read_dir(self.0.state_dir.join("workloads"))
            .map(|rd| rd.count())
            .unwrap_or(0);
        let router = self.0.router.lock().await.take();
        if live == 0 && dirs == 0 {
            let name = self.router_name();
            let _ = tokio::task::spawn_blocking(move || match router {
                Some(r) => r.destroy(),
                None if Router::exists(&name) => Router::named(&name).destroy(),
                None => {}
            })
            .await;
            for b in self.0.cgroups.bases() {
                let _ = std::fs::remove_dir(&b);
                // The shared `ferrocloud` parent goes too once no instance uses it.
                if let Some(parent) = b.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(format!("remove {}", dir.display()), e)),
    }
}

fn deliver(sink: &dyn LogSink, t: &LogTarget, events: &[(i64, String)]) {
    for chunk in events.chunks(1000) {
        sink.append(&t.account, &t.region, &t.group, &t.stream, chunk);
    }
}

/// Reads new lines of stdout.log/stderr.log, remembering offsets in `log.offsets`.
struct LogForwarder {
    dir: PathBuf,
    offsets: [u64; 2],
    partial: [Vec<u8>; 2],
}

impl LogForwarder {
    fn load(dir: &Path) -> LogForwarder {
        let offsets = std::fs::read(dir.join("log.offsets"))
            .ok()
            .and_then(|b| serde_json::from_slice::<[u64; 2]>(&b).ok())
            .unwrap_or([0, 0]);
        LogForwarder {
            dir: dir.to_path_buf(),
            offsets,
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn save(&self) {
        // Offsets count only complete lines handed out.
        let done = [
            self.offsets[0] - self.partial[0].len() as u64,
            self.offsets[1] - self.partial[1].len() as u64,
        ];
        let tmp = self.dir.join("log.offsets.tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&done).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join("log.offsets"));
        }
    }

    fn drain(&mut self, finished: bool) -> Vec<(i64, String)> {
        let mut events = Vec::new();
        let ts = now_ms();
        for (n, name) in ["stdout.log", "stderr.log"].iter().enumerate() {
            let Ok(mut f) = std::fs::File::open(self.dir.join(name)) else {
                continue;
            };
            if f.seek(SeekFrom::Start(self.offsets[n])).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.take(8 << 20).read_to_end(&mut buf).is_err() {
                continue;
            }
            self.offsets[n] += buf.len() as u64;
            let mut data = std::mem::take(&mut self.partial[n]);
            data.extend_from_slice(&buf);
            let mut start = 0;
            while let Some(pos) = data[start..].iter().position(|b| *b == b'\n') {
                let line = &data[start..start + pos];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                events.push((ts, String::from_utf8_lossy(line).into_owned()));
                start += pos + 1;
            }
            let rest = data[start..].to_vec();
            if finished && !rest.is_empty() {
                events.push((ts, String::from_utf8_lossy(&rest).into_owned()));
            } else {
                self.partial[n] = rest;
            }
        }
        events
    }
}

fn spawn_accept(
    listener: std::net::TcpListener,
    mut on_conn: impl FnMut(tokio::net::TcpStream, SocketAddr) + Send + 'static,
) -> Result<AbortHandle> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| RuntimeError::Network(format!("register listener: {e}")))?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((s, peer)) => on_conn(s, peer),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    Ok(task.abort_handle())
}

/// Publishes `ip:container_port` (inside the router namespace, on `bridge`) on host
/// 127.0.0.1:host_port.
async fn publish(
    router: &Arc<Router>,
    bridge: &str,
    ip: Ipv4Addr,
    container_port: u16,
    host_port: u16,
) -> Result<(SocketAddr, AbortHandle)> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], host_port)))
        .await
        .map_err(|e| RuntimeError::Network(format!("publish port 127.0.0.1:{host_port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RuntimeError::Network(format!("published port address: {e}")))?;
    let ns = router.ns_path.clone();
    let bridge = bridge.to_string();
    let target = SocketAddr::from((ip, container_port));
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (ns, bridge) = (ns.clone(), bridge.clone());
            tokio::spawn(async move {
                // Bound to the workload's bridge: the address alone may exist in several
                // routing domains.
                let socket = tokio::task::spawn_blocking(move || Router::socket(ns, bridge)).await;
                let Ok(Ok(socket)) = socket else { return };
                let up = tokio::time::timeout(Duration::from_secs(5), socket.connect(target)).await;
                if let Ok(Ok(mut up)) = up {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                }
            });
        }
    });
    Ok((addr, task.abort_handle()))
}

fn process_group_stats(pgid: i32) -> Stats {
    let mut s = Stats::default();
    // SAFETY: sysconf only reads configuration values.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return s;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // fields after comm: 0 state, 1 ppid, 2 pgrp, 11 utime, 12 stime, 21 rss (pages)
        if f.get(2).and_then(|x| x.parse::<i32>().ok()) != Some(pgid) || f.first() == Some(&"Z") {
            continue;
        }
        let ut: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
        let st: u64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
        let rss: u64 = f.get(21).and_then(|x| x.parse().ok()).unwrap_or(0);
        s.cpu_time_ns += (ut + st) * 1_000_000_000 / tick;
        s.memory_current += rss * page;
        s.pids += 1;
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kb) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            {
                s.memory_peak += kb * 1024;
            }
        }
    }
    if s.memory_peak < s.memory_current {
        s.memory_peak = s.memory_current;
    }
    s
}

/// Addresses chosen by starts still in progress (the workload is not in its driver's table
/// yet), by `<instance>/<network>`: concurrent starts never pick the same address.
static PENDING_IPS: Mutex<Vec<(String, Ipv4Addr)>> = Mutex::new(Vec::new());

/// Releases a pending address when its start returns.
struct IpReservation {
    key: String,
    ip: Ipv4Addr,
}

impl Drop for IpReservation {
    fn drop(&mut self) {
        lock(&PENDING_IPS).retain(|(k, ip)| !(*k == self.key && *ip == self.ip));
    }
}
