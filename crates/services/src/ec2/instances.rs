//! EC2 instances that really run: `RunInstances`, `DescribeInstances`, `DescribeInstanceStatus`,
//! `Start/Stop/Reboot/TerminateInstances`, `Modify/DescribeInstanceAttribute`,
//! `GetConsoleOutput`, plus the bridge to the execution layer ([`Exec`]).
//!
//! Every instance is one workload on the driver (workload id = instance id). Its root filesystem
//! is the AMI's source image (via the image store) with, on top, the instance's *root volume*:
//! `<data_dir>/instances/<id>/root`, an ordinary directory used as the top-most lower layer.
//! The driver's writable upper layer is discarded on destroy, so stopping (and rebooting) an
//! instance copies the upper layer into the root volume (`cp -a`, which keeps overlay
//! whiteouts and xattrs) before destroying the workload; starting it again boots from the
//! image plus the root volume. Terminating removes the root volume.
//!
//! The process started is a boot script (`/bin/sh -c`): it counts boots, runs the user data
//! (shell script, or the `text/x-shellscript` parts of a MIME multipart document) on the first
//! boot only (a marker file under `/var/lib/cloud/ferrocloud`), and then sleeps forever. Its
//! output is the console output: CloudWatch Logs group [`CONSOLE_GROUP`], stream = instance id.
//!
//! State changes that need the driver run as background tasks; the record is the truth and is
//! persisted with the workload's handle so a restarted server re-adopts running instances.
//! Every write of a record goes through [`save`], which keeps the [`InstanceIndex`] (the
//! per-scope aggregates launches and boots consult instead of scanning records) in step.

use super::{
    check_dry_run_v, check_id, filters, images, instance_types, invalid_value, key_pairs, matches,
    now, one, opt_bool, opt_i64, opt_str, paginate, req_list, security_groups, spec_tags, str_list,
    tags, tags_value, vpcs, Ctx, INSTANCES,
};
use base64::Engine as _;
use fc_protocol::ApiError;
use fc_runtime::{
    Driver, Handle, Limits, LogTarget, NetworkSpec, ProcessSpec, Recovered, Rootfs, WorkloadSpec,
};
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The log group holding console output (one stream per instance).
pub const CONSOLE_GROUP: &str = "/ferrocloud/ec2/console";
/// Global table: instance id → (account, region), for the metadata service.
pub(crate) const INDEX: &str = "ec2_instance_index";
const INDEX_SCOPE: &str = "ec2";
/// How long terminated instances stay visible.
const TERMINATED_VISIBLE_SECS: f64 = 3600.0;

/// One instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub instance_id: String,
    pub reservation_id: String,
    pub owner_id: String,
    pub region: String,
    pub image_id: String,
    pub instance_type: String,
    #[serde(default)]
    pub key_name: Option<String>,
    pub launch_time: f64,
    pub availability_zone: String,
    pub private_ip: String,
    pub subnet_id: String,
    pub vpc_id: String,
    /// (group id, group name)
    pub groups: Vec<(String, String)>,
    pub state: String,
    #[serde(default)]
    pub transition_reason: String,
    /// (code, message)
    #[serde(default)]
    pub state_reason: Option<(String, String)>,
    pub architecture: String,
    pub root_device_name: String,
    pub root_volume_id: String,
    /// Base64, as given.
    #[serde(default)]
    pub user_data: Option<String>,
    pub http_tokens: String,
    pub http_endpoint: String,
    pub hop_limit: i64,
    /// (arn, id)
    #[serde(default)]
    pub iam_profile: Option<(String, String)>,
    #[serde(default)]
    pub disable_api_termination: bool,
    #[serde(default)]
    pub client_token: Option<String>,
    #[serde(default)]
    pub terminated_at: Option<f64>,
    #[serde(default)]
    pub handle: Option<Handle>,
    pub launch_index: i64,
    pub source_image: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Incremented at every boot; a watcher only reacts to the boot it watches.
    #[serde(default)]
    pub generation: u64,
}

fn state_code(name: &str) -> i64 {
    match name {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        "stopped" => 80,
        _ => 0,
    }
}

fn state_value(name: &str) -> Value {
    json!({"Code": state_code(name), "Name": name})
}

fn hostname(ip: &str) -> String {
    format!("ip-{}", ip.replace('.', "-"))
}

fn private_dns(ip: &str, region: &str) -> String {
    if region == "us-east-1" {
        format!("{}.ec2.internal", hostname(ip))
    } else {
        format!("{}.{region}.compute.internal", hostname(ip))
    }
}

fn iso(t: f64) -> String {
    // "2026-01-02T03:04:05.000Z" → "2026-01-02 03:04:05 GMT"
    let s = fc_protocol::value::format_iso8601(t.floor());
    format!("{} GMT", s.get(..19).unwrap_or(&s).replace('T', " "))
}

// ---- the execution bridge ----

/// What EC2 needs to run instances: the driver, the image store, console output.
pub struct Exec {
    pub(crate) driver: Arc<dyn Driver>,
    pub(crate) images: Arc<fc_images::ImageStore>,
    pub(crate) logs: Arc<crate::logs::Logs>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) lock: Arc<Mutex<()>>,
    pub(crate) data_dir: PathBuf,
    pub(crate) rt: tokio::runtime::Handle,
    /// IMDSv2 tokens: token → (instance id, expiry).
    pub(crate) tokens: Mutex<HashMap<String, (String, f64)>>,
    /// Serializes `Driver::start`.
    pub(crate) start_lock: tokio::sync::Mutex<()>,
    /// One lock per instance, held by a boot from start to its outcome and by a halt or
    /// termination while it stops the workload: workloads are named by instance id, so a boot
    /// overtaken by a stop must clean up its workload before the next boot starts one.
    pub(crate) instance_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The metadata service starts with the first instance (it creates the router network
    /// namespace): a server that never runs an instance leaves nothing behind.
    pub(crate) imds: tokio::sync::OnceCell<()>,
    /// The instance index, shared with the handlers.
    pub(crate) index: Arc<InstanceIndex>,
}

pub(crate) fn instance_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("instances").join(id)
}

impl Exec {
    /// Serve IMDS to workload networks, once.
    pub(crate) async fn ensure_imds(self: &Arc<Self>) {
        let me = self.clone();
        self.imds
            .get_or_init(|| async move {
                let handler = Arc::new(super::imds::Imds::new(me.clone()));
                if let Err(e) = me
                    .driver
                    .serve_link_local(fc_runtime::IMDS_ADDRESS, handler)
                    .await
                {
                    tracing::warn!(error = %e, "the instance metadata service is not available");
                }
            })
            .await;
    }

    /// Load, change and save a record under the service lock (blocking).
    fn update_blocking(
        &self,
        account: &str,
        region: &str,
        id: &str,
        f: impl FnOnce(&mut InstanceRecord) -> bool,
    ) -> Option<InstanceRecord> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let scope = Scope::new(account, region);
        let mut rec: InstanceRecord = self.store.get_json(&scope, INSTANCES, id).ok()??;
        let prev = rec.state.clone();
        if f(&mut rec) {
            if let Err(e) = save(self.store.as_ref(), &self.index, &rec) {
                tracing::warn!(error = %e, instance = id, "cannot save instance");
            }
            super::purchasing::transition(self.store.as_ref(), &prev, &rec);
        }
        Some(rec)
    }

    async fn update(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        id: &str,
        f: impl FnOnce(&mut InstanceRecord) -> bool + Send + 'static,
    ) -> Option<InstanceRecord> {
        let me = self.clone();
        let (a, r, i) = (account.to_string(), region.to_string(), id.to_string());
        tokio::task::spawn_blocking(move || me.update_blocking(&a, &r, &i, f))
            .await
            .ok()
            .flatten()
    }

    /// The workload spec of an instance (blocking: may unpack image layers).
    fn spec(&self, rec: &InstanceRecord) -> Result<WorkloadSpec, String> {
        let scope = Scope::new(&rec.owner_id, &rec.region);
        let digest = super::ami::resolve_source(self, &scope, &rec.source_image)?;
        let (mut lowers, mut binds, _cfg) = self
            .images
            .rootfs(&digest)
            .map_err(|e| format!("cannot prepare image {}: {e}", rec.source_image))?;
        let dir = instance_dir(&self.data_dir, &rec.instance_id);
        let root = dir.join("root");
        let boot = dir.join("boot");
        let state = dir.join("state");
        for d in [&root, &boot, &state] {
            std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        let caps = self.driver.capabilities();
        self.prepare_boot(rec, &boot, caps.rootfs);
        let (fc_boot, fc_state) = if caps.rootfs {
            lowers.insert(0, root);
            binds.push((boot.clone(), PathBuf::from("/.ferrocloud"), true));
            (
                "/.ferrocloud".to_string(),
                "/var/lib/cloud/ferrocloud".to_string(),
            )
        } else {
            (boot.display().to_string(), state.display().to_string())
        };
        let api = self.driver.api_address();
        let env = vec![
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
            ("HOME".into(), "/root".into()),
            ("AWS_ENDPOINT_URL".into(), format!("http://{api}")),
            ("AWS_DEFAULT_REGION".into(), rec.region.clone()),
            ("AWS_REGION".into(), rec.region.clone()),
            ("FC_INSTANCE_ID".into(), rec.instance_id.clone()),
            ("FC_BOOT".into(), fc_boot),
            ("FC_STATE".into(), fc_state),
        ];
        let network = if caps.networking {
            let subnet = self
                .store
                .get_json::<vpcs::SubnetRecord>(&scope, super::SUBNETS, &rec.subnet_id)
                .ok()
                .flatten()
                .ok_or_else(|| format!("subnet {} not found", rec.subnet_id))?;
            Some(NetworkSpec {
                network: rec.subnet_id.clone(),
                cidr: subnet.cidr_block,
                ip: rec.private_ip.parse::<Ipv4Addr>().ok(),
                ports: super::security_groups::instance_ports(),
                // The subnets of a VPC route to each other (its local route).
                domain: Some(subnet.vpc_id),
            })
        } else {
            None
        };
        let mut spec = WorkloadSpec {
            id: rec.instance_id.clone(),
            rootfs: Rootfs {
                lowers,
                binds,
                read_only: false,
            },
            process: ProcessSpec {
                argv: vec!["/bin/sh".into(), "-c".into(), BOOT_SCRIPT.into()],
                env,
                user: None,
                workdir: Some("/".into()),
            },
            hostname: Some(hostname(&rec.private_ip)),
            mounts: Vec::new(),
            limits: Limits {
                memory_bytes: Some(rec.memory_mib.saturating_mul(1 << 20)),
                cpu_millis: Some(u64::from(rec.vcpus) * 1000),
                pids: None,
            },
            network,
            logs: Some(LogTarget {
                account: rec.owner_id.clone(),
                region: rec.region.clone(),
                group: CONSOLE_GROUP.into(),
                stream: rec.instance_id.clone(),
            }),
        };
        super::storage::boot_mounts(self, rec, &mut spec)?;
        Ok(spec)
    }

    /// Boot an instance in state `pending`; running once the workload runs.
    pub(crate) fn spawn_boot(self: &Arc<Self>, account: String, region: String, id: String) {
        let me = self.clone();
        self.rt
            .spawn(async move { me.boot(&account, &region, &id).await });
    }

    fn instance_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        super::security_groups::lock(&self.instance_locks)
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    async fn boot(self: &Arc<Self>, account: &str, region: &str, id: &str) {
        let mine = self.instance_lock(id);
        let _mine = mine.lock().await;
        let Some(rec) = self
            .update(account, region, id, |r| {
                r.generation += 1;
                true
            })
            .await
        else {
            return;
        };
        if rec.state != "pending" {
            return;
        }
        let generation = rec.generation;
        let me = self.clone();
        let rec2 = rec.clone();
        let spec = tokio::task::spawn_blocking(move || me.spec(&rec2))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let started = match spec {
            Ok(spec) => {
                // A leftover of an earlier boot (crash between start and save) must go first.
                let _ = self.driver.destroy(id).await;
                // The linux driver races when two workloads create the same network at once
                // ("RTNETLINK answers: File exists"): starts go one at a time.
                let _one = self.start_lock.lock().await;
                self.ensure_imds().await;
                self.driver.start(spec).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(handle) => {
                let saved = self
                    .update(account, region, id, move |r| {
                        if r.state == "pending" && r.generation == generation {
                            r.state = "running".into();
                            r.handle = Some(handle);
                            r.state_reason = None;
                            r.transition_reason = String::new();
                            true
                        } else {
                            false
                        }
                    })
                    .await;
                match saved {
                    Some(r) if r.state == "running" && r.generation == generation => {
                        self.spawn_watch(account, region, id, generation);
                        self.after_boot(account, region, id).await;
                    }
                    _ => {
                        // Stopped or terminated while booting: the stop path found no handle.
                        let _ = self.driver.destroy(id).await;
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(instance = id, %reason, "instance failed to start");
                self.update(account, region, id, move |r| {
                    r.state = "terminated".into();
                    r.terminated_at = Some(now());
                    r.handle = None;
                    r.state_reason = Some((
                        "Server.InternalError".into(),
                        format!("Server.InternalError: {reason}"),
                    ));
                    r.transition_reason = format!("Server.InternalError ({})", iso(now()));
                    true
                })
                .await;
                // Its volumes are released as at any termination.
                let (me, a, r, i) = (
                    self.clone(),
                    account.to_string(),
                    region.to_string(),
                    id.to_string(),
                );
                let _ = tokio::task::spawn_blocking(move || {
                    super::storage::after_terminate(&me, &a, &r, &i)
                })
                .await;
            }
        }
    }

    /// Watch a running instance: when its workload ends by itself, the instance is stopped.
    fn spawn_watch(self: &Arc<Self>, account: &str, region: &str, id: &str, generation: u64) {
        let me = self.clone();
        let (a, r, i) = (account.to_string(), region.to_string(), id.to_string());
        self.rt.spawn(async move {
            let status = me.driver.wait(&i).await;
            let mine = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = mine.clone();
            let Some(rec) = me
                .update(&a, &r, &i, move |rec| {
                    let ours = rec.state == "running" && rec.generation == generation;
                    if ours {
                        rec.state = "stopping".into();
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    ours
                })
                .await
            else {
                return;
            };
            if mine.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::info!(instance = %i, ?status, "instance workload ended by itself");
                me.halt(&a, &r, &i, rec.handle.clone()).await;
                super::storage::after_stop(&me.data_dir, &i);
                me.update(&a, &r, &i, |rec| {
                    rec.handle = None;
                    // Terminated meanwhile: that wins.
                    if rec.state != "stopping" {
                        return true;
                    }
                    rec.state = "stopped".into();
                    rec.state_reason = Some((
                        "Client.InstanceInitiatedShutdown".into(),
                        "Client.InstanceInitiatedShutdown: Instance initiated shutdown".into(),
                    ));
                    rec.transition_reason = format!("User initiated ({})", iso(now()));
                    true
                })
                .await;
                me.after_halt(&a, &r, &i).await;
            }
        });
    }

    /// Stop the workload, keep its writable layer in the root volume, destroy it.
    async fn halt(&self, _account: &str, _region: &str, id: &str, handle: Option<Handle>) {
        let mine = self.instance_lock(id);
        let _mine = mine.lock().await;
        let _ = self.driver.stop(id, Duration::from_secs(3), 15).await;
        if let Some(h) = handle {
            let upper = h.dir.join("upper");
            let root = instance_dir(&self.data_dir, id).join("root");
            if upper.is_dir() {
                let _ = std::fs::create_dir_all(&root);
                let out = tokio::process::Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", upper.display()))
                    .arg(&root)
                    .output()
                    .await;
                match out {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => tracing::warn!(
                        instance = id,
                        stderr = %String::from_utf8_lossy(&o.stderr),
                        "cannot keep the instance's root volume"
                    ),
                    Err(e) => tracing::warn!(instance = id, error = %e, "cannot run cp"),
                }
            }
        }
        if let Err(e) = self.driver.destroy(id).await {
            tracing::warn!(instance = id, error = %e, "cannot destroy workload");
        }
        super::storage::after_halt(self, _account, _region, id);
    }

    /// Stopping → stopped (or reboot: back to pending → running).
    pub(crate) fn spawn_stop(
        self: &Arc<Self>,
        account: String,
        region: String,
        id: String,
        then_boot: bool,
    ) {
        let me = self.clone();
        self.rt.spawn(async move {
            let handle = me
                .update(&account, &region, &id, |_| false)
                .await
                .and_then(|r| r.handle);
            me.halt(&account, &region, &id, handle).await;
            let rec = me
                .update(&account, &region, &id, move |r| {
                    r.handle = None;
                    if then_boot {
                        r.state = "pending".into();
                    } else if r.state == "stopping" {
                        r.state = "stopped".into();
                    }
                    true
                })
                .await;
            if !then_boot {
                super::storage::after_stop(&me.data_dir, &id);
            }
            me.after_halt(&account, &region, &id).await;
            if then_boot && rec.is_some() {
                me.boot(&account, &region, &id).await;
            }
        });
    }

    /// Shutting-down → terminated.
    pub(crate) fn spawn_terminate(self: &Arc<Self>, account: String, region: String, id: String) {
        let me = self.clone();
        self.rt.spawn(async move {
            let mine = me.instance_lock(&id);
            let guard = mine.lock().await;
            let _ = me.driver.stop(&id, Duration::from_secs(3), 15).await;
            let _ = me.driver.destroy(&id).await;
            drop(guard);
            super::security_groups::lock(&me.instance_locks).remove(&id);
            let (m2, a2, r2, i2) = (me.clone(), account.clone(), region.clone(), id.clone());
            let _ = tokio::task::spawn_blocking(move || {
                super::storage::after_terminate(&m2, &a2, &r2, &i2)
            })
            .await;
            let _ = std::fs::remove_dir_all(instance_dir(&me.data_dir, &id));
            me.update(&account, &region, &id, |r| {
                r.state = "terminated".into();
                r.handle = None;
                true
            })
            .await;
            me.after_halt(&account, &region, &id).await;
        });
    }

    /// Re-adopt instances after a restart; forget workloads no instance owns.
    pub(crate) async fn recover_all(self: &Arc<Self>) {
        let me = self.clone();
        let all = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for scope in me.store.scopes(INSTANCES).unwrap_or_default() {
                if let Ok(list) =
                    super::scan_all::<InstanceRecord>(me.store.as_ref(), &scope, INSTANCES)
                {
                    out.extend(list.into_iter().map(|(_, r)| r));
                }
            }
            out
        })
        .await
        .unwrap_or_default();
        let mut keep = Vec::new();
        for rec in all {
            let (a, r, id) = (
                rec.owner_id.clone(),
                rec.region.clone(),
                rec.instance_id.clone(),
            );
            match rec.state.as_str() {
                "running" | "stopping" | "shutting-down" | "pending" => {}
                _ => continue,
            }
            self.ensure_imds().await;
            let recovered = match &rec.handle {
                Some(h) => self.driver.recover(h).await.ok(),
                None => None,
            };
            match (rec.state.as_str(), recovered) {
                ("running", Some(Recovered::Running)) => {
                    keep.push(id.clone());
                    self.spawn_watch(&a, &r, &id, rec.generation);
                }
                ("pending", _) => {
                    keep.push(id.clone());
                    self.spawn_boot(a, r, id);
                }
                ("shutting-down", _) => {
                    keep.push(id.clone());
                    self.spawn_terminate(a, r, id);
                }
                (_, _) => {
                    // Keep what the workload wrote (its upper layer) in the root volume.
                    self.halt(&a, &r, &id, rec.handle.clone()).await;
                    self.update(&a, &r, &id, |rec| {
                        rec.state = "stopped".into();
                        rec.handle = None;
                        rec.state_reason = Some((
                            "Server.InternalError".into(),
                            "Server.InternalError: the instance's workload did not survive a server restart".into(),
                        ));
                        rec.transition_reason =
                            format!("Server.InternalError ({})", iso(now()));
                        true
                    })
                    .await;
                }
            }
        }
        match self.driver.cleanup_orphans(&keep).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, "removed orphaned workloads")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot clean up orphaned workloads"),
        }
        self.after_recover().await;
    }
}

/// The boot script: the instance's "init".
const BOOT_SCRIPT: &str = r#"S="${FC_STATE:-/var/lib/cloud/ferrocloud}"
mkdir -p "$S"
n=0
[ -f "$S/boots" ] && read -r n < "$S/boots"
n=$((${n:-0} + 1))
echo "$n" > "$S/boots"
echo "ferrocloud: boot $n of $FC_INSTANCE_ID"
# Security groups are enforced (and ssh set up) before anything else runs.
# Polled every 2 ms for 0.2 s, then every 50 ms (up to 15 s): many instances booting at once
# must not spend the machine on forking `sleep`.
i=0
while [ ! -e "$FC_BOOT/net-ready" ] && [ "$i" -lt 100 ]; do sleep 0.002; i=$((i + 1)); done
while [ ! -e "$FC_BOOT/net-ready" ] && [ "$i" -lt 396 ]; do sleep 0.05; i=$((i + 1)); done
[ -f "$FC_BOOT/ssh/setup.sh" ] && /bin/sh "$FC_BOOT/ssh/setup.sh" 2>&1
if [ ! -e "$S/user-data-done" ]; then
  : > "$S/user-data-done"
  for f in "$FC_BOOT"/scripts/*; do
    [ -f "$f" ] || continue
    install -m 700 "$f" "$S/part"
    IFS= read -r first < "$S/part"
    case "$first" in
      '#!'*) "$S/part" 2>&1 ;;
      *) /bin/sh "$S/part" 2>&1 ;;
    esac
    echo "ferrocloud: user data part $(basename "$f") exited with $?"
  done
fi
echo "ferrocloud: instance $FC_INSTANCE_ID ready"
trap 'echo "ferrocloud: instance $FC_INSTANCE_ID shutting down"; kill "$pid" 2>/dev/null; exit 0' TERM INT
sleep infinity &
pid=$!
wait "$pid"
"#;

// ---- user data ----

/// Decoded user data, else `InvalidParameterValue`.
fn decode_user_data(b64: &str) -> Result<Vec<u8>, ApiError> {
    let cleaned: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| invalid_value("Invalid BASE64 encoding of user data."))?;
    if raw.len() > 16 * 1024 {
        return Err(invalid_value("User data is limited to 16384 bytes"));
    }
    Ok(raw)
}

/// The scripts to run from user data: a `#!` script, or the `text/x-shellscript` parts of a
/// MIME multipart document (other content, like `#cloud-config`, is not run).
pub(crate) fn user_data_scripts(raw: &[u8]) -> Vec<Vec<u8>> {
    if raw.starts_with(b"#!") {
        return vec![raw.to_vec()];
    }
    let text = String::from_utf8_lossy(raw);
    let lower = text.to_ascii_lowercase();
    if !lower.contains("content-type: multipart/") {
        return Vec::new();
    }
    let Some(b) = boundary(&text) else {
        return Vec::new();
    };
    let delim = format!("--{b}");
    let mut out = Vec::new();
    for part in text.split(delim.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.trim_start_matches(['\r', '\n']);
        let (head, body) = match part.find("\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match part.find("\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => continue,
            },
        };
        let head_l = head.to_ascii_lowercase();
        if !head_l.contains("text/x-shellscript") {
            continue;
        }
        let body = body.trim_end_matches(['\r', '\n']);
        if head_l.contains("content-transfer-encoding: base64") {
            let cleaned: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(cleaned) {
                out.push(b);
            }
        } else {
            let mut b = body.as_bytes().to_vec();
            b.push(b'\n');
            out.push(b);
        }
    }
    out
}

fn boundary(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let i = lower.find("boundary=")?;
    let rest = &text[i + "boundary=".len()..];
    let v = if let Some(r) = rest.strip_prefix('"') {
        r.split('"').next()?
    } else {
        rest.split(|c: char| c == ';' || c.is_whitespace()).next()?
    };
    (!v.is_empty()).then(|| v.to_string())
}

fn write_boot_dir(data_dir: &Path, id: &str, user_data: Option<&[u8]>) -> Result<(), ApiError> {
    let boot = instance_dir(data_dir, id).join("boot");
    let scripts = boot.join("scripts");
    let _ = std::fs::remove_dir_all(&scripts);
    std::fs::create_dir_all(&scripts)
        .map_err(|e| ApiError::internal(format!("create {}: {e}", scripts.display())))?;
    if let Some(raw) = user_data {
        std::fs::write(boot.join("user-data"), raw)
            .map_err(|e| ApiError::internal(format!("write user data: {e}")))?;
        for (i, s) in user_data_scripts(raw).iter().enumerate() {
            std::fs::write(scripts.join(format!("part-{:03}", i + 1)), s)
                .map_err(|e| ApiError::internal(format!("write user data: {e}")))?;
        }
    }
    Ok(())
}

// ---- lookups ----

fn not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidInstanceID.NotFound",
        format!("The instance ID '{id}' does not exist"),
    )
}

fn visible(r: &InstanceRecord) -> bool {
    r.terminated_at
        .is_none_or(|t| now() - t < TERMINATED_VISIBLE_SECS)
}

fn find(c: &Ctx<'_>, id: &str) -> Result<InstanceRecord, ApiError> {
    check_id(id, "i", "InvalidInstanceID.Malformed")?;
    c.get::<InstanceRecord>(INSTANCES, id)?
        .filter(visible)
        .ok_or_else(|| not_found(id))
}

/// The instances named by `InstanceIds` (all must exist).
fn find_all(c: &Ctx<'_>, ids: &[String]) -> Result<Vec<InstanceRecord>, ApiError> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        check_id(id, "i", "InvalidInstanceID.Malformed")?;
        match c.get::<InstanceRecord>(INSTANCES, id)?.filter(visible) {
            Some(r) => out.push(r),
            None => missing.push(id.clone()),
        }
    }
    if !missing.is_empty() {
        let list = missing.join(", ");
        return Err(ApiError::client(
            "InvalidInstanceID.NotFound",
            if missing.len() == 1 {
                format!("The instance ID '{list}' does not exist")
            } else {
                format!("The instance IDs '{list}' do not exist")
            },
        ));
    }
    Ok(out)
}

/// (account, region) of an instance, from the global index.
pub(crate) fn locate(store: &dyn Store, id: &str) -> Option<(String, String)> {
    store
        .get_json::<(String, String)>(&Scope::global(INDEX_SCOPE), INDEX, id)
        .ok()
        .flatten()
}

/// Load an instance by id, wherever it lives.
pub(crate) fn load(store: &dyn Store, id: &str) -> Option<InstanceRecord> {
    let (a, r) = locate(store, id)?;
    store
        .get_json::<InstanceRecord>(&Scope::new(&a, &r), INSTANCES, id)
        .ok()
        .flatten()
}

// ---- RunInstances ----

fn resolve_profile(c: &Ctx<'_>, spec: &Value) -> Result<Option<(String, String)>, ApiError> {
    let name = match (opt_str(spec, "Arn"), opt_str(spec, "Name")) {
        (Some(arn), _) => arn.rsplit('/').next().unwrap_or_default().to_string(),
        (None, Some(n)) => n.to_string(),
        (None, None) => return Ok(None),
    };
    let rec: Option<Value> = c
        .store
        .get_json(
            &Scope::global(c.account()),
            "iam_instance_profiles",
            &name.to_lowercase(),
        )
        .map_err(crate::common::store_error)?;
    let rec = rec.ok_or_else(|| {
        invalid_value(format!(
            "Value ({name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
        ))
    })?;
    Ok(Some((
        rec["arn"].as_str().unwrap_or_default().to_string(),
        rec["id"].as_str().unwrap_or_default().to_string(),
    )))
}

/// The lowest free address of a subnet (the index knows the ones in use).
fn allocate_ip(c: &Ctx<'_>, subnet: &vpcs::SubnetRecord) -> Result<String, ApiError> {
    let cidr = vpcs::Cidr::parse(&subnet.cidr_block)
        .ok_or_else(|| ApiError::internal("subnet with a malformed CIDR"))?;
    let free = c.ix(|ix| {
        ix.cidrs.entry(subnet.subnet_id.clone()).or_insert(cidr);
        ix.subnets
            .entry(subnet.subnet_id.clone())
            .or_insert_with(|| SubnetIps::new(&cidr))
            .lowest_free()
    })?;
    match free {
        Some(ip) => Ok(Ipv4Addr::from(ip).to_string()),
        None => Err(ApiError::client(
            "InsufficientFreeAddressesInSubnet",
            format!(
                "There are not enough free addresses in subnet '{}' to satisfy the requested number of instances.",
                subnet.subnet_id
            ),
        )),
    }
}

/// A requested private address: inside the subnet's usable range and not in use.
fn check_requested_ip(c: &Ctx<'_>, subnet: &vpcs::SubnetRecord, ip: &str) -> Result<(), ApiError> {
    let addr: Ipv4Addr = ip.parse().map_err(|_| {
        invalid_value(format!(
            "Value ({ip}) for parameter privateIpAddress is invalid. Invalid IPv4 address."
        ))
    })?;
    let cidr = vpcs::Cidr::parse(&subnet.cidr_block)
        .ok_or_else(|| ApiError::internal("subnet with a malformed CIDR"))?;
    let a = u32::from(addr);
    let size = u32::try_from(cidr.size()).unwrap_or(u32::MAX);
    if a < cidr.addr || a - cidr.addr >= size {
        return Err(invalid_value(format!(
            "Address {ip} does not fall within the subnet's address range"
        )));
    }
    // The first four addresses and the last one are AWS's.
    let reserved = a - cidr.addr < 4 || a - cidr.addr == size.saturating_sub(1);
    if reserved || c.ix(|ix| ix.ip_in_use(&subnet.subnet_id, a))? {
        return Err(ApiError::client(
            "InvalidIPAddress.InUse",
            format!("Address {ip} is in use."),
        ));
    }
    Ok(())
}

pub(crate) fn run_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let input = &super::launch_templates::apply(c, input)?;
    let image_id = opt_str(input, "ImageId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("MissingParameter", "ImageId"))?;
    let min = opt_i64(input, "MinCount").unwrap_or(1);
    let max = opt_i64(input, "MaxCount").unwrap_or(min);
    if min < 1 || max < min {
        return Err(invalid_value(format!(
            "Value ({min}) for parameter minCount is invalid. Expected a value between 1 and maxCount ({max})."
        )));
    }
    if min > 20 {
        return Err(ApiError::client(
            "InstanceLimitExceeded",
            "You have requested more instances than your current instance limit allows.",
        ));
    }
    let count = max.min(20);
    if let Some(token) = opt_str(input, "ClientToken").filter(|t| !t.is_empty()) {
        let mut existing = Vec::new();
        for id in c.ix(|ix| ix.with_token(token))? {
            if let Some(r) = c.get::<InstanceRecord>(INSTANCES, &id)? {
                if r.client_token.as_deref() == Some(token) {
                    existing.push(r);
                }
            }
        }
        existing.sort_by_key(|r| r.launch_index);
        if !existing.is_empty() {
            check_dry_run_v(input)?;
            return reservation_value(c, &existing);
        }
    }
    check_id(image_id, "ami", "InvalidAMIID.Malformed")?;
    let img = images::visible(c, image_id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidAMIID.NotFound",
            format!("The image id '[{image_id}]' does not exist"),
        )
    })?;
    if img.state != "available" {
        return Err(ApiError::client(
            "InvalidAMIID.Unavailable",
            format!("AMI '{image_id}' is {}, and cannot be run", img.state),
        ));
    }
    // EC2's default is m1.small, a previous-generation type the catalog does not carry.
    let type_name = opt_str(input, "InstanceType").unwrap_or("t2.micro");
    let itype = instance_types::instance_type(type_name)
        .ok_or_else(|| invalid_value(format!("Invalid value '{type_name}' for InstanceType.")))?;
    if !itype.architectures.contains(&img.architecture) {
        return Err(invalid_value(format!(
            "The architecture '{}' of the specified instance type does not match the architecture '{}' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again.",
            itype.architectures.join(","),
            img.architecture
        )));
    }
    let key_name = opt_str(input, "KeyName").filter(|s| !s.is_empty());
    if let Some(k) = key_name {
        if key_pairs::public_key(c.store, c.account(), c.region(), k).is_none() {
            return Err(ApiError::client(
                "InvalidKeyPair.NotFound",
                format!("The key pair '{k}' does not exist"),
            ));
        }
    }
    let user_data = match opt_str(input, "UserData").filter(|s| !s.is_empty()) {
        Some(u) => Some((u.to_string(), decode_user_data(u)?)),
        None => None,
    };
    // Subnet and zone.
    let zone_req = input
        .get("Placement")
        .and_then(|p| opt_str(p, "AvailabilityZone"))
        .filter(|s| !s.is_empty());
    if let Some(z) = zone_req {
        if vpcs::zone(c.region(), z).is_none() {
            return Err(invalid_value(format!("Invalid availability zone: [{z}]")));
        }
    }
    let subnet = match opt_str(input, "SubnetId").filter(|s| !s.is_empty()) {
        Some(id) => {
            let s = vpcs::find_subnet(c, id)?;
            if let Some(z) = zone_req {
                if z != s.availability_zone {
                    return Err(invalid_value(format!(
                        "The specified subnet '{id}' is not in availability zone '{z}'"
                    )));
                }
            }
            s
        }
        None => {
            let vpc = vpcs::default_vpc_id(c)?.ok_or_else(|| {
                ApiError::client(
                    "VPCIdNotSpecified",
                    "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
                )
            })?;
            let mut subs: Vec<vpcs::SubnetRecord> = c
                .all::<vpcs::SubnetRecord>(super::SUBNETS)?
                .into_iter()
                .map(|(_, s)| s)
                .filter(|s| s.vpc_id == vpc && s.default_for_az)
                .collect();
            subs.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone));
            match zone_req {
                Some(z) => subs.into_iter().find(|s| s.availability_zone == z),
                None => subs.into_iter().next(),
            }
            .ok_or_else(|| {
                ApiError::client("MissingInput", "No subnets found for the default VPC")
            })?
        }
    };
    // Security groups.
    let mut group_ids = str_list(input, "SecurityGroupIds");
    let names = str_list(input, "SecurityGroups");
    let all_groups = security_groups::groups_of_vpc(c, &subnet.vpc_id)?;
    for n in &names {
        let g = all_groups
            .iter()
            .find(|g| &g.group_name == n)
            .ok_or_else(|| {
                ApiError::client(
                    "InvalidGroup.NotFound",
                    format!(
                        "The security group '{n}' does not exist in VPC '{}'",
                        subnet.vpc_id
                    ),
                )
            })?;
        group_ids.push(g.group_id.clone());
    }
    let mut groups = Vec::new();
    for id in &group_ids {
        let g = security_groups::find(c, id)?.ok_or_else(|| {
            ApiError::client(
                "InvalidGroup.NotFound",
                format!("The security group '{id}' does not exist"),
            )
        })?;
        if g.vpc_id != subnet.vpc_id {
            return Err(invalid_value(format!(
                "Security group {id} and subnet {} belong to different networks.",
                subnet.subnet_id
            )));
        }
        if !groups.iter().any(|(i, _): &(String, String)| i == id) {
            groups.push((g.group_id.clone(), g.group_name.clone()));
        }
    }
    if groups.is_empty() {
        if let Some(g) = all_groups.iter().find(|g| g.group_name == "default") {
            groups.push((g.group_id.clone(), g.group_name.clone()));
        }
    }
    let meta = input.get("MetadataOptions").cloned().unwrap_or(Value::Null);
    let http_tokens = opt_str(&meta, "HttpTokens")
        .unwrap_or(if img.imds_support.as_deref() == Some("v2.0") {
            "required"
        } else {
            "optional"
        })
        .to_string();
    if http_tokens != "optional" && http_tokens != "required" {
        return Err(invalid_value(format!(
            "Value ({http_tokens}) for parameter HttpTokens is invalid."
        )));
    }
    let http_endpoint = opt_str(&meta, "HttpEndpoint")
        .unwrap_or("enabled")
        .to_string();
    let hop_limit = opt_i64(&meta, "HttpPutResponseHopLimit").unwrap_or(2);
    let profile = match input.get("IamInstanceProfile") {
        Some(p) => resolve_profile(c, p)?,
        None => None,
    };
    let instance_tags = spec_tags(input, "instance")?;
    let volume_tags = spec_tags(input, "volume")?;
    let private_ip_req = opt_str(input, "PrivateIpAddress").filter(|s| !s.is_empty());
    if let Some(ip) = private_ip_req {
        check_requested_ip(c, &subnet, ip)?;
    }
    let storage_plan = super::storage::plan_launch(c, input, &img, type_name)?;
    let purchase_plan =
        super::purchasing::plan_launch(c, input, itype, &subnet.availability_zone, count)?;
    check_dry_run_v(input)?;

    let reservation_id = fc_types::ids::ec2_id("r");
    let launch = now().floor();
    let mut recs = Vec::new();
    for i in 0..count {
        // Each record is saved (and indexed) before the next address is chosen.
        let ip = match (private_ip_req, i) {
            (Some(ip), 0) => ip.to_string(),
            _ => allocate_ip(c, &subnet)?,
        };
        let id = fc_types::ids::ec2_id("i");
        let rec = InstanceRecord {
            instance_id: id.clone(),
            reservation_id: reservation_id.clone(),
            owner_id: c.account().to_string(),
            region: c.region().to_string(),
            image_id: image_id.to_string(),
            instance_type: type_name.to_string(),
            key_name: key_name.map(str::to_string),
            launch_time: launch,
            availability_zone: subnet.availability_zone.clone(),
            private_ip: ip,
            subnet_id: subnet.subnet_id.clone(),
            vpc_id: subnet.vpc_id.clone(),
            groups: groups.clone(),
            state: "pending".into(),
            transition_reason: String::new(),
            state_reason: Some(("pending".into(), "pending".into())),
            architecture: img.architecture.clone(),
            root_device_name: img.root_device_name.clone(),
            root_volume_id: fc_types::ids::ec2_id("vol"),
            user_data: user_data.as_ref().map(|(b, _)| b.clone()),
            http_tokens: http_tokens.clone(),
            http_endpoint: http_endpoint.clone(),
            hop_limit,
            iam_profile: profile.clone(),
            disable_api_termination: opt_bool(input, "DisableApiTermination").unwrap_or(false),
            client_token: opt_str(input, "ClientToken")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            terminated_at: None,
            handle: None,
            launch_index: i,
            source_image: img
                .source_image
                .clone()
                .unwrap_or_else(|| images::HOST_USERLAND.to_string()),
            vcpus: itype.vcpus,
            memory_mib: itype.memory_mib,
            generation: 0,
        };
        write_boot_dir(
            c.data_dir,
            &id,
            user_data.as_ref().map(|(_, r)| r.as_slice()),
        )?;
        c.save_instance(&rec)?;
        c.store
            .put_json(
                &Scope::global(INDEX_SCOPE),
                INDEX,
                &id,
                &(c.account().to_string(), c.region().to_string()),
            )
            .map_err(crate::common::store_error)?;
        tags::add(c, &id, &instance_tags)?;
        super::launch_templates::tag_instance(c, input, &id)?;
        tags::add(c, &rec.root_volume_id, &volume_tags)?;
        super::storage::on_launch(c, &rec, &storage_plan)?;
        super::purchasing::launched(c, &rec, &purchase_plan, i as usize)?;
        recs.push(rec);
    }
    let out = reservation_value(c, &recs)?;
    for r in &mut recs {
        start_or_mark(c, r)?;
    }
    Ok(out)
}

/// Boot a pending instance on the driver, or (without one) mark it running right away.
fn start_or_mark(c: &Ctx<'_>, r: &mut InstanceRecord) -> Result<(), ApiError> {
    match c.exec {
        Some(exec) => {
            exec.spawn_boot(r.owner_id.clone(), r.region.clone(), r.instance_id.clone());
        }
        None => {
            r.state = "running".into();
            r.state_reason = None;
            c.save_instance(r)?;
        }
    }
    Ok(())
}

// ---- output ----

fn instance_value(c: &Ctx<'_>, r: &InstanceRecord) -> Result<Value, ApiError> {
    let t = tags::get(c, &r.instance_id)?;
    let launch = fc_protocol::value::epoch_value(r.launch_time);
    let running_like = !matches!(r.state.as_str(), "terminated");
    let mut v = json!({
        "InstanceId": r.instance_id,
        "ImageId": r.image_id,
        "InstanceType": r.instance_type,
        "LaunchTime": launch,
        "AmiLaunchIndex": r.launch_index,
        "Placement": {"AvailabilityZone": r.availability_zone, "GroupName": "", "Tenancy": "default"},
        "Monitoring": {"State": "disabled"},
        "State": state_value(&r.state),
        "StateTransitionReason": r.transition_reason,
        "Architecture": r.architecture,
        "RootDeviceName": r.root_device_name,
        "RootDeviceType": "ebs",
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "EbsOptimized": false,
        "EnaSupport": true,
        "SourceDestCheck": true,
        "ClientToken": r.client_token.clone().unwrap_or_default(),
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "CpuOptions": {"CoreCount": r.vcpus.div_ceil(2).max(1), "ThreadsPerCore": if r.vcpus > 1 { 2 } else { 1 }},
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": r.http_tokens,
            "HttpPutResponseHopLimit": r.hop_limit,
            "HttpEndpoint": r.http_endpoint,
            "HttpProtocolIpv6": "disabled",
            "InstanceMetadataTags": "disabled",
        },
        "HibernationOptions": {"Configured": false},
        "EnclaveOptions": {"Enabled": false},
        "ProductCodes": [],
        "Tags": tags_value(&t),
    });
    if running_like {
        v["PrivateIpAddress"] = json!(r.private_ip);
        v["PrivateDnsName"] = json!(private_dns(&r.private_ip, &r.region));
        v["SubnetId"] = json!(r.subnet_id);
        v["VpcId"] = json!(r.vpc_id);
        v["SecurityGroups"] = Value::Array(
            r.groups
                .iter()
                .map(|(id, n)| json!({"GroupId": id, "GroupName": n}))
                .collect(),
        );
        v["BlockDeviceMappings"] = super::storage::instance_block_devices(c, r)?;
        v["NetworkInterfaces"] = json!([{
            "Attachment": {"AttachTime": launch, "DeleteOnTermination": true, "DeviceIndex": 0, "Status": "attached", "NetworkCardIndex": 0},
            "Description": "",
            "Groups": r.groups.iter().map(|(id, n)| json!({"GroupId": id, "GroupName": n})).collect::<Vec<_>>(),
            "InterfaceType": "interface",
            "OwnerId": r.owner_id,
            "PrivateDnsName": private_dns(&r.private_ip, &r.region),
            "PrivateIpAddress": r.private_ip,
            "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": r.private_ip, "PrivateDnsName": private_dns(&r.private_ip, &r.region)}],
            "SourceDestCheck": true,
            "Status": "in-use",
            "SubnetId": r.subnet_id,
            "VpcId": r.vpc_id,
        }]);
    } else {
        v["PrivateDnsName"] = json!("");
        v["SecurityGroups"] = json!([]);
        v["BlockDeviceMappings"] = json!([]);
        v["NetworkInterfaces"] = json!([]);
    }
    if r.state == "running" {
        v["PublicDnsName"] = json!("");
    }
    if let Some(k) = &r.key_name {
        v["KeyName"] = json!(k);
    }
    if let Some((code, msg)) = &r.state_reason {
        v["StateReason"] = json!({"Code": code, "Message": msg});
    }
    if let Some((arn, id)) = &r.iam_profile {
        v["IamInstanceProfile"] = json!({"Arn": arn, "Id": id});
    }
    super::purchasing::decorate(c, r, &mut v)?;
    Ok(v)
}

fn reservation_value(c: &Ctx<'_>, recs: &[InstanceRecord]) -> Result<Value, ApiError> {
    let first = recs
        .first()
        .ok_or_else(|| ApiError::internal("empty reservation"))?;
    let mut insts = Vec::new();
    for r in recs {
        insts.push(instance_value(c, r)?);
    }
    Ok(json!({
        "ReservationId": first.reservation_id,
        "OwnerId": first.owner_id,
        "Groups": [],
        "Instances": insts,
    }))
}

// ---- DescribeInstances ----

const INSTANCE_FILTERS: &[&str] = &[
    "instance-state-name",
    "instance-state-code",
    "instance-id",
    "image-id",
    "instance-type",
    "vpc-id",
    "subnet-id",
    "private-ip-address",
    "private-dns-name",
    "key-name",
    "availability-zone",
    "architecture",
    "reservation-id",
    "owner-id",
    "launch-index",
    "instance.group-id",
    "instance.group-name",
    "group-id",
    "group-name",
    "iam-instance-profile.arn",
    "root-device-name",
    "root-device-type",
    "client-token",
    // purchasing and placement (`purchasing::field`)
    "instance-lifecycle",
    "spot-instance-request-id",
    "tenancy",
    "placement.tenancy",
    "host-id",
    "placement.host-id",
    "affinity",
    "capacity-reservation-id",
];

fn field(r: &InstanceRecord, name: &str) -> Option<Vec<String>> {
    match name {
        "instance-state-name" => one(&r.state),
        "instance-state-code" => one(state_code(&r.state).to_string()),
        "instance-id" => one(&r.instance_id),
        "image-id" => one(&r.image_id),
        "instance-type" => one(&r.instance_type),
        "vpc-id" => one(&r.vpc_id),
        "subnet-id" => one(&r.subnet_id),
        "private-ip-address" => one(&r.private_ip),
        "private-dns-name" => one(private_dns(&r.private_ip, &r.region)),
        "key-name" => Some(r.key_name.clone().into_iter().collect()),
        "availability-zone" => one(&r.availability_zone),
        "architecture" => one(&r.architecture),
        "reservation-id" => one(&r.reservation_id),
        "owner-id" => one(&r.owner_id),
        "launch-index" => one(r.launch_index.to_string()),
        "instance.group-id" | "group-id" => Some(r.groups.iter().map(|g| g.0.clone()).collect()),
        "instance.group-name" | "group-name" => {
            Some(r.groups.iter().map(|g| g.1.clone()).collect())
        }
        "iam-instance-profile.arn" => Some(r.iam_profile.iter().map(|p| p.0.clone()).collect()),
        "root-device-name" => one(&r.root_device_name),
        "root-device-type" => one("ebs"),
        "client-token" => Some(r.client_token.clone().into_iter().collect()),
        _ => None,
    }
}

fn selected(c: &Ctx<'_>, input: &Value) -> Result<Vec<InstanceRecord>, ApiError> {
    let fs = filters(input, INSTANCE_FILTERS, true)?;
    let ids = str_list(input, "InstanceIds");
    let recs = if ids.is_empty() {
        let mut all: Vec<InstanceRecord> = c
            .all::<InstanceRecord>(INSTANCES)?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        // Forget instances terminated long ago.
        for r in all.iter().filter(|r| !visible(r)) {
            c.delete(INSTANCES, &r.instance_id)?;
            c.index.deleted(c.store, &c.scope, &r.instance_id);
            tags::drop_all(c, &r.instance_id)?;
        }
        all.retain(visible);
        all
    } else {
        find_all(c, &ids)?
    };
    let mut out = Vec::new();
    for r in recs {
        let t = tags::get(c, &r.instance_id)?;
        if matches(&fs, &t, |n| {
            field(&r, n).or_else(|| super::purchasing::field(c, &r, n))
        }) {
            out.push(r);
        }
    }
    Ok(out)
}

pub(crate) fn describe_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    if input.get("MaxResults").is_some() && !str_list(input, "InstanceIds").is_empty() {
        return Err(invalid_value(
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    let recs = selected(c, input)?;
    check_dry_run_v(input)?;
    let mut items = Vec::new();
    for r in recs {
        let key = format!("{:020.3}/{}", r.launch_time, r.instance_id);
        items.push((
            key,
            serde_json::to_value(&r).map_err(|e| ApiError::internal(e.to_string()))?,
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    // Group by reservation, in order.
    let mut reservations: Vec<(String, Vec<InstanceRecord>)> = Vec::new();
    for v in page {
        let r: InstanceRecord =
            serde_json::from_value(v).map_err(|e| ApiError::internal(e.to_string()))?;
        match reservations
            .iter_mut()
            .find(|(id, _)| *id == r.reservation_id)
        {
            Some((_, l)) => l.push(r),
            None => reservations.push((r.reservation_id.clone(), vec![r])),
        }
    }
    let mut out = Vec::new();
    for (_, l) in &reservations {
        out.push(reservation_value(c, l)?);
    }
    Ok(super::page_output("Reservations", out, next))
}

pub(crate) fn describe_instance_status(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let all = opt_bool(input, "IncludeAllInstances").unwrap_or(false);
    let fs = filters(
        input,
        &[
            "availability-zone",
            "instance-state-name",
            "instance-state-code",
            "instance-status.status",
            "system-status.status",
        ],
        false,
    )?;
    let ids = str_list(input, "InstanceIds");
    let recs = if ids.is_empty() {
        c.all::<InstanceRecord>(INSTANCES)?
            .into_iter()
            .map(|(_, r)| r)
            .filter(visible)
            .collect()
    } else {
        find_all(c, &ids)?
    };
    check_dry_run_v(input)?;
    let mut items = Vec::new();
    for r in recs {
        if !all && r.state != "running" {
            continue;
        }
        let status = if r.state == "running" {
            "ok"
        } else {
            "not-applicable"
        };
        if !fc_types::filter::matches(&fs, |n| match n {
            "availability-zone" => one(&r.availability_zone),
            "instance-state-name" => one(&r.state),
            "instance-state-code" => one(state_code(&r.state).to_string()),
            "instance-status.status" | "system-status.status" => one(status),
            _ => None,
        }) {
            continue;
        }
        let detail = if r.state == "running" {
            json!([{"Name": "reachability", "Status": "passed"}])
        } else {
            json!([])
        };
        items.push((
            r.instance_id.clone(),
            json!({
                "InstanceId": r.instance_id,
                "AvailabilityZone": r.availability_zone,
                "InstanceState": state_value(&r.state),
                "InstanceStatus": {"Status": status, "Details": detail},
                "SystemStatus": {"Status": status, "Details": detail},
            }),
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(super::page_output("InstanceStatuses", page, next))
}

// ---- state changes ----

fn change(r: &InstanceRecord, previous: &str) -> Value {
    json!({
        "InstanceId": r.instance_id,
        "CurrentState": state_value(&r.state),
        "PreviousState": state_value(previous),
    })
}

fn incorrect(id: &str, _state: &str, what: &str) -> ApiError {
    ApiError::client(
        "IncorrectInstanceState",
        format!("The instance '{id}' is not in a state from which it can be {what}."),
    )
}

pub(crate) fn stop_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let recs = find_all(c, &req_list(input, "InstanceIds")?)?;
    for r in &recs {
        if matches!(r.state.as_str(), "terminated" | "shutting-down") {
            return Err(incorrect(&r.instance_id, &r.state, "stopped"));
        }
    }
    super::purchasing::check_stop(c, &recs)?;
    check_dry_run_v(input)?;
    let mut out = Vec::new();
    for mut r in recs {
        let prev = r.state.clone();
        if matches!(prev.as_str(), "running" | "pending") {
            r.state = "stopping".into();
            r.transition_reason = format!("User initiated ({})", iso(now()));
            r.state_reason = Some((
                "Client.UserInitiatedShutdown".into(),
                "Client.UserInitiatedShutdown: User initiated shutdown".into(),
            ));
            c.save_instance(&r)?;
            super::purchasing::transition(c.store, &prev, &r);
            match c.exec {
                Some(exec) => exec.spawn_stop(
                    r.owner_id.clone(),
                    r.region.clone(),
                    r.instance_id.clone(),
                    false,
                ),
                None => {
                    let mut s = r.clone();
                    s.state = "stopped".into();
                    c.save_instance(&s)?;
                    super::purchasing::transition(c.store, &r.state, &s);
                }
            }
        }
        out.push(change(&r, &prev));
    }
    Ok(json!({"StoppingInstances": out}))
}

pub(crate) fn start_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let recs = find_all(c, &req_list(input, "InstanceIds")?)?;
    for r in &recs {
        if matches!(
            r.state.as_str(),
            "terminated" | "shutting-down" | "stopping"
        ) {
            return Err(incorrect(&r.instance_id, &r.state, "started"));
        }
    }
    check_dry_run_v(input)?;
    super::purchasing::check_start(c, &recs)?;
    let mut out = Vec::new();
    for mut r in recs {
        let prev = r.state.clone();
        if prev == "stopped" {
            r.state = "pending".into();
            r.transition_reason = String::new();
            r.state_reason = None;
            c.save_instance(&r)?;
            super::purchasing::transition(c.store, &prev, &r);
            let shown = r.clone();
            start_or_mark(c, &mut r)?;
            out.push(change(&shown, &prev));
        } else {
            out.push(change(&r, &prev));
        }
    }
    Ok(json!({"StartingInstances": out}))
}

pub(crate) fn reboot_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let recs = find_all(c, &req_list(input, "InstanceIds")?)?;
    for r in &recs {
        if r.state == "terminated" {
            return Err(incorrect(&r.instance_id, &r.state, "rebooted"));
        }
    }
    check_dry_run_v(input)?;
    for r in recs {
        if r.state != "running" {
            continue;
        }
        if let Some(exec) = c.exec {
            // Still reported running while it reboots, as EC2 does.
            let mut r = r;
            r.generation += 1;
            c.save_instance(&r)?;
            exec.spawn_stop(
                r.owner_id.clone(),
                r.region.clone(),
                r.instance_id.clone(),
                true,
            );
        }
    }
    Ok(json!({}))
}

pub(crate) fn terminate_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let recs = find_all(c, &req_list(input, "InstanceIds")?)?;
    for r in &recs {
        if r.disable_api_termination && r.state != "terminated" {
            return Err(ApiError::client(
                "OperationNotPermitted",
                format!(
                    "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                    r.instance_id
                ),
            ));
        }
    }
    check_dry_run_v(input)?;
    let mut out = Vec::new();
    for mut r in recs {
        let prev = r.state.clone();
        if prev != "terminated" && prev != "shutting-down" {
            r.state = if c.exec.is_some() {
                "shutting-down".into()
            } else {
                "terminated".into()
            };
            r.terminated_at = Some(now());
            r.transition_reason = format!("User initiated ({})", iso(now()));
            r.state_reason = Some((
                "Client.UserInitiatedShutdown".into(),
                "Client.UserInitiatedShutdown: User initiated shutdown".into(),
            ));
            c.save_instance(&r)?;
            super::purchasing::transition(c.store, &prev, &r);
            if let Some(exec) = c.exec {
                exec.spawn_terminate(r.owner_id.clone(), r.region.clone(), r.instance_id.clone());
            } else {
                super::storage::release_without_driver(c, &r);
            }
        }
        out.push(change(&r, &prev));
    }
    Ok(json!({"TerminatingInstances": out}))
}

// ---- attributes ----

fn attr_value<'v>(input: &'v Value, name: &str) -> Option<&'v Value> {
    input.get(name).and_then(|v| v.get("Value").or(Some(v)))
}

pub(crate) fn modify_instance_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = opt_str(input, "InstanceId")
        .ok_or_else(|| ApiError::missing("MissingParameter", "InstanceId"))?;
    let mut r = find(c, id)?;
    if input.get("BlockDeviceMappings").is_some() {
        return super::storage::modify_block_devices(c, &r, input);
    }
    let attr = opt_str(input, "Attribute");
    let plain = opt_str(input, "Value");
    let itype = attr_value(input, "InstanceType")
        .and_then(Value::as_str)
        .or(if attr == Some("instanceType") {
            plain
        } else {
            None
        });
    let udata =
        attr_value(input, "UserData")
            .and_then(Value::as_str)
            .or(if attr == Some("userData") {
                plain
            } else {
                None
            });
    let dat = attr_value(input, "DisableApiTermination")
        .and_then(Value::as_bool)
        .or(if attr == Some("disableApiTermination") {
            plain.map(|v| v == "true")
        } else {
            None
        });
    if itype.is_none() && udata.is_none() && dat.is_none() && input.get("Groups").is_none() {
        return Err(ApiError::missing("MissingParameter", "Attribute"));
    }
    if let Some(t) = itype {
        let info = instance_types::instance_type(t)
            .ok_or_else(|| invalid_value(format!("Invalid value '{t}' for InstanceType.")))?;
        if r.state != "stopped" {
            return Err(ApiError::client(
                "IncorrectInstanceState",
                format!("The instance '{id}' is not in the 'stopped' state."),
            ));
        }
        if !info.architectures.contains(&r.architecture) {
            return Err(invalid_value(format!(
                "The instance type '{t}' does not support the architecture '{}'",
                r.architecture
            )));
        }
        r.instance_type = t.to_string();
        r.vcpus = info.vcpus;
        r.memory_mib = info.memory_mib;
    }
    let mut new_ud = None;
    if let Some(u) = udata {
        if r.state != "stopped" {
            return Err(ApiError::client(
                "IncorrectInstanceState",
                format!("The instance '{id}' is not in the 'stopped' state."),
            ));
        }
        // The wire value is the base64 of the bytes; accept base64 of base64 too, like the
        // console (the CLI encodes once more).
        let raw = decode_user_data(u)?;
        new_ud = Some((u.to_string(), raw));
    }
    let groups = str_list(input, "Groups");
    let mut new_groups = Vec::new();
    for g in &groups {
        let rec = security_groups::find(c, g)?.ok_or_else(|| {
            ApiError::client(
                "InvalidGroup.NotFound",
                format!("The security group '{g}' does not exist"),
            )
        })?;
        new_groups.push((rec.group_id, rec.group_name));
    }
    check_dry_run_v(input)?;
    if let Some(d) = dat {
        r.disable_api_termination = d;
    }
    if let Some((b64, raw)) = new_ud {
        write_boot_dir(c.data_dir, id, Some(&raw))?;
        r.user_data = Some(b64);
    }
    let groups_changed = !new_groups.is_empty();
    if groups_changed {
        r.groups = new_groups;
    }
    c.save_instance(&r)?;
    if groups_changed {
        security_groups::enforce(c);
    }
    Ok(json!({}))
}

pub(crate) fn describe_instance_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = opt_str(input, "InstanceId")
        .ok_or_else(|| ApiError::missing("MissingParameter", "InstanceId"))?;
    let attr = opt_str(input, "Attribute")
        .ok_or_else(|| ApiError::missing("MissingParameter", "Attribute"))?;
    let r = find(c, id)?;
    check_dry_run_v(input)?;
    let mut out = json!({"InstanceId": id});
    match attr {
        "instanceType" => out["InstanceType"] = json!({"Value": r.instance_type}),
        "userData" => {
            out["UserData"] = match &r.user_data {
                Some(u) => json!({"Value": u}),
                None => json!({}),
            }
        }
        "disableApiTermination" => {
            out["DisableApiTermination"] = json!({"Value": r.disable_api_termination})
        }
        "rootDeviceName" => out["RootDeviceName"] = json!({"Value": r.root_device_name}),
        "groupSet" => {
            out["Groups"] = Value::Array(
                r.groups
                    .iter()
                    .map(|(id, n)| json!({"GroupId": id, "GroupName": n}))
                    .collect(),
            )
        }
        "instanceInitiatedShutdownBehavior" => {
            out["InstanceInitiatedShutdownBehavior"] = json!({"Value": "stop"})
        }
        "sourceDestCheck" => out["SourceDestCheck"] = json!({"Value": true}),
        "ebsOptimized" => out["EbsOptimized"] = json!({"Value": false}),
        "blockDeviceMapping" => {
            out["BlockDeviceMappings"] = super::storage::instance_block_devices(c, &r)?
        }
        other => {
            return Err(invalid_value(format!(
                "Value ({other}) for parameter attribute is invalid. Unknown attribute."
            )))
        }
    }
    Ok(out)
}

// ---- console ----

pub(crate) fn get_console_output(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = opt_str(input, "InstanceId")
        .ok_or_else(|| ApiError::missing("MissingParameter", "InstanceId"))?;
    find(c, id)?;
    check_dry_run_v(input)?;
    let text = match c.exec {
        Some(exec) => {
            let lines = exec
                .logs
                .tail(c.account(), c.region(), CONSOLE_GROUP, id, 10_000);
            let mut s = String::new();
            for (_, m) in lines {
                s.push_str(m.trim_end_matches('\n'));
                s.push('\n');
            }
            // The API returns the most recent 64 KiB.
            if s.len() > 64 * 1024 {
                let mut cut = s.len() - 64 * 1024;
                while !s.is_char_boundary(cut) {
                    cut += 1;
                }
                s = s[cut..].to_string();
            }
            s
        }
        None => String::new(),
    };
    let mut out = json!({
        "InstanceId": id,
        "Timestamp": fc_protocol::value::epoch_value(now()),
    });
    if !text.is_empty() {
        out["Output"] = json!(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
    }
    Ok(out)
}

// ---- the in-memory index ----

/// What the control plane asks of the instances of a scope at every launch and boot, kept in
/// memory so that it costs O(what changed) instead of a scan of every record: per subnet the
/// addresses in use (and the free ones below the high-water mark, so the lowest free address
/// is found at once), per vCPU bucket and market the vCPUs of active instances, client tokens,
/// capacity-reservation and dedicated-host use, security-group membership and the running
/// workloads.
///
/// The store stays the only source of truth: a scope's index is built from its records the
/// first time it is used (after a restart, or when the store's generation changed because the
/// whole state was replaced), and every write of an instance record ([`save`]) or of a
/// purchase record ([`super::purchasing::save_purchase`]) updates it after the write
/// succeeded. Writes happen under the service lock, so concurrent launches see each other's
/// addresses.
#[derive(Default)]
pub(crate) struct InstanceIndex {
    state: Mutex<IndexState>,
}

#[derive(Default)]
struct IndexState {
    generation: u64,
    scopes: HashMap<Scope, ScopeIndex>,
}

/// (supervisor pid, start time, gateway) of a running workload.
pub(crate) type Workload = (i32, i64, Option<Ipv4Addr>);

/// The parts of an instance (and of its purchase record) the index aggregates.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Entry {
    pub state: String,
    pub subnet: String,
    pub ip: Option<Ipv4Addr>,
    pub vcpus: u32,
    pub bucket: &'static str,
    pub groups: Vec<String>,
    pub client_token: Option<String>,
    /// (supervisor pid, start time, gateway) of the workload while the instance runs.
    pub workload: Option<Workload>,
    pub spot: bool,
    pub host: Option<String>,
    pub cr: Option<String>,
}

impl Entry {
    fn of(rec: &InstanceRecord, purchase: Option<&super::purchasing::Purchase>) -> Entry {
        let mut e = Entry {
            state: rec.state.clone(),
            subnet: rec.subnet_id.clone(),
            ip: rec.private_ip.parse().ok(),
            vcpus: rec.vcpus,
            bucket: super::purchasing::vcpu_bucket(&rec.instance_type),
            groups: rec.groups.iter().map(|(g, _)| g.clone()).collect(),
            client_token: rec.client_token.clone(),
            workload: rec
                .handle
                .as_ref()
                .filter(|_| rec.state == "running")
                .map(|h| {
                    (
                        h.supervisor_pid,
                        h.started_at_ms,
                        h.network.as_ref().map(|n| n.gateway),
                    )
                }),
            ..Default::default()
        };
        if let Some(p) = purchase {
            e.set_purchase(p);
        }
        e
    }

    fn set_purchase(&mut self, p: &super::purchasing::Purchase) {
        self.spot = p.lifecycle.as_deref() == Some("spot");
        self.host = p.host_id.clone();
        self.cr = p.cr_id.clone();
    }
}

/// The addresses of one subnet: `used` counts holders per address (non-terminated
/// instances); every address in `[lo, hwm)` not in `used` is in `free`; none at or above
/// `hwm` is used.
#[derive(Debug, Default)]
struct SubnetIps {
    lo: u32,
    hi: u32,
    hwm: u32,
    used: HashMap<u32, u32>,
    free: std::collections::BTreeSet<u32>,
}

impl SubnetIps {
    fn new(cidr: &vpcs::Cidr) -> SubnetIps {
        let base = cidr.addr;
        let size = u32::try_from(cidr.size()).unwrap_or(u32::MAX);
        // AWS reserves the first four addresses and the last one.
        let lo = base.saturating_add(4);
        SubnetIps {
            lo,
            hi: base.saturating_add(size.saturating_sub(1)),
            hwm: lo,
            ..Default::default()
        }
    }

    fn add(&mut self, ip: u32) {
        *self.used.entry(ip).or_default() += 1;
        if ip < self.lo || ip >= self.hi {
            return;
        }
        if ip >= self.hwm {
            self.free.extend(self.hwm..ip);
            self.hwm = ip + 1;
        } else {
            self.free.remove(&ip);
        }
    }

    fn remove(&mut self, ip: u32) {
        let Some(n) = self.used.get_mut(&ip) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.used.remove(&ip);
            if ip >= self.lo && ip < self.hwm {
                self.free.insert(ip);
            }
        }
    }

    /// The lowest free address.
    fn lowest_free(&self) -> Option<u32> {
        self.free
            .first()
            .copied()
            .or((self.hwm < self.hi).then_some(self.hwm))
    }
}

/// The index of one scope.
#[derive(Default)]
pub(crate) struct ScopeIndex {
    entries: HashMap<String, Entry>,
    /// (spot, bucket) → vCPUs of active instances.
    vcpus: HashMap<(bool, &'static str), u64>,
    subnets: HashMap<String, SubnetIps>,
    /// Subnet id → CIDR, for subnets whose addresses are tracked.
    cidrs: HashMap<String, vpcs::Cidr>,
    tokens: HashMap<String, std::collections::BTreeSet<String>>,
    /// Capacity reservation → active instances naming it.
    cr_used: HashMap<String, i64>,
    /// Dedicated host → (instance → vCPUs) of the instances occupying it.
    hosts: HashMap<String, HashMap<String, u32>>,
    /// Security group → (instance → address) of its members (pending or running).
    members: HashMap<String, std::collections::BTreeMap<String, Ipv4Addr>>,
    /// Instances running with a workload.
    running: std::collections::BTreeSet<String>,
}

impl ScopeIndex {
    fn account(&mut self, id: &str, e: &Entry, add: bool) {
        let active = super::purchasing::active(&e.state);
        if active {
            let v = self.vcpus.entry((e.spot, e.bucket)).or_default();
            if add {
                *v += u64::from(e.vcpus);
            } else {
                *v = v.saturating_sub(u64::from(e.vcpus));
            }
        }
        if e.state != "terminated" {
            if let (Some(ip), Some(cidr)) = (e.ip, self.cidrs.get(&e.subnet)) {
                let s = self
                    .subnets
                    .entry(e.subnet.clone())
                    .or_insert_with(|| SubnetIps::new(cidr));
                if add {
                    s.add(u32::from(ip));
                } else {
                    s.remove(u32::from(ip));
                }
            }
        }
        if let Some(t) = &e.client_token {
            if add {
                self.tokens
                    .entry(t.clone())
                    .or_default()
                    .insert(id.to_string());
            } else if let Some(s) = self.tokens.get_mut(t) {
                s.remove(id);
                if s.is_empty() {
                    self.tokens.remove(t);
                }
            }
        }
        if let (true, Some(cr)) = (active, &e.cr) {
            let n = self.cr_used.entry(cr.clone()).or_default();
            *n += if add { 1 } else { -1 };
        }
        if let Some(h) = &e.host {
            if matches!(
                e.state.as_str(),
                "pending" | "running" | "stopping" | "shutting-down"
            ) {
                let on = self.hosts.entry(h.clone()).or_default();
                if add {
                    on.insert(id.to_string(), e.vcpus);
                } else {
                    on.remove(id);
                }
            }
        }
        if active {
            if let Some(ip) = e.ip {
                for g in &e.groups {
                    let m = self.members.entry(g.clone()).or_default();
                    if add {
                        m.insert(id.to_string(), ip);
                    } else {
                        m.remove(id);
                    }
                }
            }
        }
        if e.workload.is_some() {
            if add {
                self.running.insert(id.to_string());
            } else {
                self.running.remove(id);
            }
        }
    }

    /// Replace the entry of `id` (None: forget it).
    fn set(&mut self, id: &str, new: Option<Entry>) {
        let old = self.entries.remove(id);
        if old == new {
            if let Some(e) = new {
                self.entries.insert(id.to_string(), e);
            }
            return;
        }
        if let Some(o) = &old {
            self.account(id, o, false);
        }
        if let Some(n) = new {
            self.account(id, &n, true);
            self.entries.insert(id.to_string(), n);
        }
    }

    fn build(store: &dyn Store, scope: &Scope) -> Result<ScopeIndex, ApiError> {
        let mut ix = ScopeIndex::default();
        for (id, s) in super::scan_all::<vpcs::SubnetRecord>(store, scope, super::SUBNETS)? {
            if let Some(c) = vpcs::Cidr::parse(&s.cidr_block) {
                ix.cidrs.insert(id, c);
            }
        }
        let purchases: HashMap<String, super::purchasing::Purchase> =
            super::scan_all(store, scope, super::purchasing::PURCHASES)?
                .into_iter()
                .collect();
        for (id, rec) in super::scan_all::<InstanceRecord>(store, scope, INSTANCES)? {
            let e = Entry::of(&rec, purchases.get(&id));
            ix.set(&id, Some(e));
        }
        Ok(ix)
    }

    /// The entry of an instance.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// vCPUs of the active instances in a bucket of a market.
    pub fn active_vcpus(&self, spot: bool, bucket: &str) -> u64 {
        self.vcpus
            .iter()
            .filter(|((s, b), _)| *s == spot && *b == bucket)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Instances launched with a client token.
    pub fn with_token(&self, token: &str) -> Vec<String> {
        self.tokens
            .get(token)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Active instances per capacity reservation.
    pub fn cr_usage(&self) -> HashMap<String, i64> {
        self.cr_used
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// The instances occupying each dedicated host.
    pub fn host_occupants(&self) -> Vec<(String, Vec<String>)> {
        self.hosts
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(h, m)| (h.clone(), m.keys().cloned().collect()))
            .collect()
    }

    /// vCPUs occupied on a dedicated host, but by `except`.
    pub fn host_vcpus(&self, host: &str, except: &[String]) -> u32 {
        self.hosts
            .get(host)
            .map(|m| {
                m.iter()
                    .filter(|(id, _)| !except.contains(id))
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The addresses of a security group's members.
    pub fn members(&self, group: &str) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .members
            .get(group)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    }

    /// Every group with members.
    pub fn groups(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// The instances running with a workload.
    pub fn running(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.running
            .iter()
            .filter_map(|id| self.entries.get(id).map(|e| (id, e)))
    }

    /// Whether an address of a subnet is held by a non-terminated instance.
    fn ip_in_use(&self, subnet: &str, ip: u32) -> bool {
        self.subnets
            .get(subnet)
            .is_some_and(|s| s.used.contains_key(&ip))
    }
}

impl InstanceIndex {
    /// Run `f` on the index of `scope`, built first if needed.
    pub fn with<R>(
        &self,
        store: &dyn Store,
        scope: &Scope,
        f: impl FnOnce(&mut ScopeIndex) -> R,
    ) -> Result<R, ApiError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let generation = store.generation();
        if st.generation != generation {
            st.scopes.clear();
            st.generation = generation;
        }
        if !st.scopes.contains_key(scope) {
            let built = ScopeIndex::build(store, scope)?;
            st.scopes.insert(scope.clone(), built);
        }
        let ix = st
            .scopes
            .get_mut(scope)
            .ok_or_else(|| ApiError::internal("instance index vanished"))?;
        Ok(f(ix))
    }

    /// An instance record was written.
    pub fn saved(&self, store: &dyn Store, rec: &InstanceRecord) {
        let scope = Scope::new(&rec.owner_id, &rec.region);
        let res = self.with(store, &scope, |ix| {
            let purchase = ix
                .entries
                .get(&rec.instance_id)
                .map(|e| (e.spot, e.host.clone(), e.cr.clone()));
            let mut e = Entry::of(rec, None);
            if let Some((spot, host, cr)) = purchase {
                e.spot = spot;
                e.host = host;
                e.cr = cr;
            }
            if !e.subnet.is_empty() && !ix.cidrs.contains_key(&e.subnet) {
                if let Ok(Some(s)) =
                    store.get_json::<vpcs::SubnetRecord>(&scope, super::SUBNETS, &e.subnet)
                {
                    if let Some(c) = vpcs::Cidr::parse(&s.cidr_block) {
                        ix.cidrs.insert(e.subnet.clone(), c);
                    }
                }
            }
            ix.set(&rec.instance_id, Some(e));
        });
        if let Err(e) = res {
            self.forget(&scope, &e);
        }
    }

    /// An instance record was deleted.
    pub fn deleted(&self, store: &dyn Store, scope: &Scope, id: &str) {
        if let Err(e) = self.with(store, scope, |ix| ix.set(id, None)) {
            self.forget(scope, &e);
        }
    }

    /// A purchase record was written.
    pub fn purchase_saved(
        &self,
        store: &dyn Store,
        scope: &Scope,
        id: &str,
        p: &super::purchasing::Purchase,
    ) {
        let res = self.with(store, scope, |ix| {
            if let Some(mut e) = ix.entries.get(id).cloned() {
                e.set_purchase(p);
                ix.set(id, Some(e));
            }
        });
        if let Err(e) = res {
            self.forget(scope, &e);
        }
    }

    /// The index of a scope could not be kept in step: drop it (rebuilt on next use).
    fn forget(&self, scope: &Scope, e: &ApiError) {
        tracing::warn!(error = %e.message, "instance index rebuilt");
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scopes
            .remove(scope);
    }
}

/// Write an instance record and keep the index in step.
pub(crate) fn save(
    store: &dyn Store,
    index: &InstanceIndex,
    rec: &InstanceRecord,
) -> Result<(), ApiError> {
    let scope = Scope::new(&rec.owner_id, &rec.region);
    store
        .put_json(&scope, INSTANCES, &rec.instance_id, rec)
        .map_err(crate::common::store_error)?;
    index.saved(store, rec);
    Ok(())
}
