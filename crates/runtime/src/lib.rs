//! The execution layer: everything ferrocloud runs (EC2 instances, ECS tasks, Lambda execution
//! environments, Batch jobs) is a *workload* started through one [`Driver`] trait, shaped like
//! Nomad's task drivers: capabilities, start → persisted [`Handle`], recover, wait, stop, destroy,
//! inspect, stats, exec.
//!
//! Lives here: the trait and its value types, the `linux` driver (namespaces, overlayfs rootfs,
//! cgroups v1/v2, a private router network namespace with bridges, veths, published ports and
//! link-local services, per-workload firewalls loaded with `iptables-restore` in the workload's
//! own namespace), the `process` driver (plain child processes), the in-workload init /
//! supervisor ([`maybe_run_init`]), and [`resolve_process`] (OCI image config semantics).
//! Must not live here: AWS semantics, the image store (layers arrive as plain directories), any
//! service state. This is the only crate allowed to use `unsafe` (each block says why it is sound).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod attach;
mod cgroup;
mod engine;
mod firewall;
mod init;
mod net;
mod resolve;
pub mod scratch;
mod sys;
mod trim;

pub use engine::{linux_support, LinuxDriver, ProcessDriver};
pub use firewall::{
    render as render_firewall, support as firewall_support, Firewall, FirewallProtocol,
    FirewallRule, RenderedFirewall,
};
pub use init::{maybe_run_init, EXEC_MARKER, INIT_MARKER};
pub use resolve::{resolve_process, resolve_user, ImageDefaults, ProcessOverrides, ResolvedUser};
pub use trim::{keep_c_heap, release_c_heap, release_code_pages};

/// Version written into every new [`Handle`]; [`Driver::recover`] accepts this one only.
pub const HANDLE_VERSION: u32 = 1;

/// Where workloads reach ferrocloud's own API from inside their network namespace (linux driver).
pub const API_LINK_LOCAL: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 10);
/// The EC2 instance metadata service address.
pub const IMDS_ADDRESS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80);

/// Errors of the execution layer.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("workload {0} not found")]
    NotFound(String),
    #[error("workload {0} already exists")]
    AlreadyExists(String),
    #[error("invalid workload spec: {0}")]
    InvalidSpec(String),
    #[error("not supported by the {driver} driver: {what}")]
    Unsupported { driver: &'static str, what: String },
    #[error("workload {id} failed to start: {reason}")]
    StartFailed { id: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network setup failed: {0}")]
    Network(String),
    #[error("cgroup setup failed: {0}")]
    Cgroup(String),
    #[error("handle version {0} is not supported (this build reads version {HANDLE_VERSION})")]
    HandleVersion(u32),
    #[error("handle of driver {found} given to the {expected} driver")]
    WrongDriver {
        expected: &'static str,
        found: String,
    },
    #[error("exec in workload {id} failed: {reason}")]
    Exec { id: String, reason: String },
    #[error("user {user} cannot be resolved: {reason}")]
    User { user: String, reason: String },
    #[error("no driver named {0} (known: linux, process)")]
    UnknownDriver(String),
}

impl RuntimeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Receives workload output as it is written (the lead adapts this to CloudWatch Logs).
pub trait LogSink: Send + Sync {
    /// `events` are (milliseconds since the epoch, message) in output order.
    fn append(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    );
}

/// A sink that drops everything.
pub struct NullLogSink;

impl LogSink for NullLogSink {
    fn append(&self, _: &str, _: &str, _: &str, _: &str, _: &[(i64, String)]) {}
}

/// Handles a TCP connection accepted on a link-local address inside the router namespace
/// (for example the instance metadata service at 169.254.169.254:80).
pub trait LinkLocalHandler: Send + Sync {
    /// `workload` is the id of the workload whose address `peer` is, when known.
    fn handle(&self, peer: SocketAddr, workload: Option<String>, stream: tokio::net::TcpStream);
}

/// Everything needed to start one workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Unique per driver state directory: `[A-Za-z0-9_.-]`, at most 64 characters.
    pub id: String,
    pub rootfs: Rootfs,
    pub process: ProcessSpec,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    #[serde(default)]
    pub logs: Option<LogTarget>,
}

/// The root filesystem: image layer directories (top-most first), overlaid with a private
/// writable upper layer that is discarded on destroy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rootfs {
    pub lowers: Vec<PathBuf>,
    /// (host path, path in the rootfs, read-only)
    #[serde(default)]
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    #[serde(default)]
    pub read_only: bool,
}

/// The process to run, already resolved (see [`resolve_process`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// "uid", "uid:gid", "name", "name:group"; resolved from the rootfs' /etc/passwd and
    /// /etc/group. None = root.
    #[serde(default)]
    pub user: Option<String>,
    /// Absolute path inside the rootfs; created when missing. None = "/".
    #[serde(default)]
    pub workdir: Option<String>,
}

/// An extra mount: a host directory or a named volume (a directory under the driver's volume
/// directory, created on first use and kept after destroy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: MountSource,
    pub target: PathBuf,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MountSource {
    Bind(PathBuf),
    Volume(String),
    /// A private, empty, disk-backed filesystem of `size_mb` MiB (mode 1777), gone on destroy:
    /// writes past the size fail with ENOSPC and its data does not count as the workload's
    /// memory. Linux driver: ext4 on a loop device (a plain unsized directory without loop
    /// devices or mkfs.ext4, see [`Capabilities::notes`]); process driver: ignored.
    Scratch {
        size_mb: u64,
    },
}

/// Resource limits (cgroups). None = unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPU in thousandths of a vCPU (2 vCPUs = 2000).
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
}

/// Attach the workload to a network: one bridge per `network` id, gateway = first host of `cidr`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub network: String,
    pub cidr: String,
    /// None = the first free address after the reserved ones (network, .1 gateway, .2, .3).
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Networks sharing a routing domain reach each other through the router namespace (the
    /// subnets of one VPC); traffic between domains, or from a network without one, is never
    /// forwarded.
    #[serde(default)]
    pub domain: Option<String>,
}

/// A TCP port published on the host's 127.0.0.1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortSpec {
    pub container_port: u16,
    /// 0 = any free port.
    #[serde(default)]
    pub host_port: u16,
}

/// Where the workload's stdout and stderr go (CloudWatch Logs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogTarget {
    pub account: String,
    pub region: String,
    pub group: String,
    pub stream: String,
}

/// A published port after start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host: SocketAddr,
}

/// Network state of a started workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    pub network: String,
    pub cidr: String,
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// The router network namespace (under /run/netns) holding the bridge.
    pub router_ns: String,
    pub bridge: String,
    pub host_veth: String,
    pub ports: Vec<PublishedPort>,
}

/// What a restarted server needs to find a workload again. Persist it as JSON; it is versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    pub version: u32,
    pub driver: String,
    pub id: String,
    /// The workload's private directory (logs, state, upper layer).
    pub dir: PathBuf,
    pub supervisor_pid: i32,
    /// Start time (clock ticks since boot) of the supervisor, to guard against pid reuse.
    pub supervisor_start: u64,
    /// Host pid of the workload's main process (PID 1 in its namespace with the linux driver).
    pub pid: i32,
    pub cgroups: Vec<PathBuf>,
    pub network: Option<NetworkState>,
    pub logs: Option<LogTarget>,
    pub started_at_ms: i64,
}

/// How a workload ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// "exited", "killed by signal N", "oom killed", "stopped", "start failed: …",
    /// "supervisor vanished: …".
    pub reason: String,
}

/// Resource usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu_time_ns: u64,
    pub memory_current: u64,
    pub memory_peak: u64,
    pub pids: u64,
}

/// What a driver can do; the callers decide which workloads a machine can take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub driver: String,
    pub pid_isolation: bool,
    pub mount_isolation: bool,
    pub network_isolation: bool,
    pub uts_isolation: bool,
    pub ipc_isolation: bool,
    /// Image layers become the root filesystem.
    pub rootfs: bool,
    /// Layers are overlaid (false = copied).
    pub overlay: bool,
    pub bind_mounts: bool,
    pub volumes: bool,
    pub users: bool,
    pub memory_limit: bool,
    pub cpu_limit: bool,
    pub pids_limit: bool,
    pub networking: bool,
    pub published_ports: bool,
    pub exec: bool,
    pub recover: bool,
    /// 1 or 2; None without cgroups.
    pub cgroup_version: Option<u8>,
    /// What it cannot do, in words.
    pub notes: Vec<String>,
}

/// The state of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub id: String,
    pub driver: String,
    pub running: bool,
    pub exit: Option<ExitStatus>,
    pub pid: i32,
    pub network: Option<NetworkState>,
    pub started_at_ms: i64,
    pub dir: PathBuf,
}

/// What [`Driver::recover`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Recovered {
    Running,
    Exited(ExitStatus),
}

/// A command to run inside a running workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// Added to (overriding) the workload's environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// None = the workload's user.
    #[serde(default)]
    pub user: Option<String>,
    /// None = the workload's working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// None = 60 s.
    #[serde(default)]
    pub timeout: Option<Duration>,
}

/// The result of [`Driver::exec`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; 128+N when killed by signal N.
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Driver configuration.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Where workload directories live (`<state_dir>/workloads/<id>`). One ferrocloud instance
    /// per state directory; router namespace and cgroup names derive from it.
    pub state_dir: PathBuf,
    /// Directory of named volumes; default `<state_dir>/volumes`.
    pub volumes_dir: Option<PathBuf>,
    /// The executable that runs the init when given [`INIT_MARKER`]; default the current exe.
    pub init_exe: Option<PathBuf>,
    /// Port of ferrocloud's API on host 127.0.0.1, proxied to [`API_LINK_LOCAL`] inside
    /// workload networks. Default 4566.
    pub api_port: u16,
}

impl DriverConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        DriverConfig {
            state_dir: state_dir.into(),
            volumes_dir: None,
            init_exe: None,
            api_port: 4566,
        }
    }
}

/// The execution interface every driver implements.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    /// Starts the workload; returns once its process runs (or start failed, leaving nothing).
    async fn start(&self, spec: WorkloadSpec) -> Result<Handle>;
    /// Re-adopts a workload from its persisted handle (after a server restart).
    async fn recover(&self, handle: &Handle) -> Result<Recovered>;
    /// Waits until the workload exits.
    async fn wait(&self, id: &str) -> Result<ExitStatus>;
    /// Sends `signal`, waits up to `grace`, then SIGKILLs. Returns how it ended.
    async fn stop(&self, id: &str, grace: Duration, signal: i32) -> Result<ExitStatus>;
    /// Kills if needed and removes everything: processes, cgroups, network, upper layer, dir.
    async fn destroy(&self, id: &str) -> Result<()>;
    async fn inspect(&self, id: &str) -> Result<WorkloadInfo>;
    async fn stats(&self, id: &str) -> Result<Stats>;
    async fn exec(&self, id: &str, exec: ExecSpec) -> Result<ExecOutput>;
    /// Removes workloads of this state directory that are not in `keep` and not known to this
    /// driver object (leftovers of a crash). Returns the removed ids.
    async fn cleanup_orphans(&self, keep: &[String]) -> Result<Vec<String>>;
    /// Where workloads reach ferrocloud's API (set AWS_ENDPOINT_URL=http://<this>).
    fn api_address(&self) -> SocketAddr;
    /// Serves a link-local TCP address (e.g. [`IMDS_ADDRESS`]) to every workload network.
    async fn serve_link_local(
        &self,
        addr: SocketAddrV4,
        handler: Arc<dyn LinkLocalHandler>,
    ) -> Result<()>;
    /// Mounts host directory `source` at `target` (absolute, inside the workload's root) in a
    /// *running* workload, live: no restart (used for EBS volumes attached to an instance).
    /// The mount is gone when the workload ends; start-time mounts go in [`WorkloadSpec::mounts`].
    async fn attach_mount(
        &self,
        id: &str,
        source: &std::path::Path,
        target: &std::path::Path,
    ) -> Result<()> {
        let _ = (id, source, target);
        Err(RuntimeError::Unsupported {
            driver: self.name(),
            what: "live mounts".into(),
        })
    }
    /// Unmounts `target` (lazily) in a running workload and removes the mount point; a target
    /// that is not mounted is not an error.
    async fn detach_mount(&self, id: &str, target: &std::path::Path) -> Result<()> {
        let _ = (id, target);
        Err(RuntimeError::Unsupported {
            driver: self.name(),
            what: "live mounts".into(),
        })
    }
    /// Stops background tasks (log forwarding, proxies, listeners); leaves workloads running
    /// for a later [`Driver::recover`]. Removes the router namespace when no workload is left.
    async fn shutdown(&self);
    /// Replaces the packet filter of a running workload (inside its own network namespace)
    /// with `rules`; see [`Firewall`]. Drivers without network namespaces answer
    /// [`RuntimeError::Unsupported`].
    async fn set_firewall(&self, id: &str, rules: &Firewall) -> Result<()> {
        let _ = (id, rules);
        Err(RuntimeError::Unsupported {
            driver: self.name(),
            what: "firewalls (no network namespaces)".into(),
        })
    }
}

/// Picks a driver: `preference` "linux" or "process" forces one (an error when linux is not
/// usable here), None or "auto" picks linux when [`linux_support`] allows it, else process.
pub fn select(
    preference: Option<&str>,
    config: DriverConfig,
    sink: Arc<dyn LogSink>,
) -> Result<Arc<dyn Driver>> {
    match preference.unwrap_or("auto") {
        "linux" => Ok(Arc::new(LinuxDriver::new(config, sink)?)),
        "process" => Ok(Arc::new(ProcessDriver::new(config, sink)?)),
        "auto" | "" => match linux_support() {
            Ok(()) => Ok(Arc::new(LinuxDriver::new(config, sink)?)),
            Err(why) => {
                tracing::info!(reason = %why, "linux driver unavailable, using the process driver");
                Ok(Arc::new(ProcessDriver::new(config, sink)?))
            }
        },
        other => Err(RuntimeError::UnknownDriver(other.to_string())),
    }
}
