//! The Lambda execution engine: execution environments on the runtime driver, the Runtime
//! API, runtime interface clients, logs and billing of every invocation.
//!
//! An execution environment is one workload (`lambda-<hex>`) running the function's runtime:
//! the official runtime interface client for Python/Node.js ([`runtimes`]), the function's
//! `bootstrap`, or an image's entrypoint (`workload` builds it). It pulls invocations from the
//! Runtime API (`api`) one at a time; the [`Executor`] keeps environments warm per spec revision, scales
//! them out up to the concurrency limits, reaps idle ones and destroys those that timed out
//! or died.
//!
//! Logs: the environment's output is its log stream (`YYYY/MM/DD/[version]<hex>` in the
//! function's log group) through the driver's log forwarding; `START`/`END`/`REPORT` lines
//! are appended to the same output file, so CloudWatch Logs shows them in order with what the
//! function printed, and `LogType=Tail` is read back from that file (exact, without waiting
//! for the forwarder).
//! Billing (`billing`): requests and GB-seconds accrue in memory (visible at once as live lines
//! of the cost ledger) and are written to the ledger every second.
//!
//! Linux driver: the root is the built-in `ferrocloud/host-userland` image (or the function's
//! image), `/var/task` (code), `/var/runtime` (runtime cache) and `/opt` (layers merged in
//! order, once per set) are read-only binds, the memory limit is `MemorySize` and CPU is
//! proportional to it (1,769 MB = one vCPU). `/tmp` is the writable overlay layer, not limited to
//! `EphemeralStorage`: a tmpfs would count against the function's memory, which AWS's disk-backed
//! `/tmp` does not. Environments live in their own workload network and reach the Runtime API
//! at [`RUNTIME_API`] (link-local) and ferrocloud's API at the driver's API address.
//! Process driver: a plain process in the code directory, the Runtime API on its own
//! 127.0.0.1 port.
//! Must not live here: the control plane's records, HTTP of the Invoke operation.

mod api;
mod billing;
mod env;
pub mod runtimes;
#[cfg(test)]
mod tests;
mod workload;

use crate::spec::{FunctionSpec, InvokeRequest, InvokeResult, PackageType};
use crate::{Deps, Inner};
use base64::Engine as _;
use billing::Billing;
use bytes::Bytes;
use env::{lock, Env, Invocation, Outcome};
use fc_protocol::ApiError;
use fc_runtime::{Driver, Handle};
use runtimes::Family;
use serde_json::json;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Where runtimes reach the Runtime API with the linux driver (served in every workload network).
pub const RUNTIME_API: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(169, 254, 100, 1), 9001);
/// The workload network of execution environments (linux driver).
const NETWORK: &str = "lambda";
const NETWORK_CIDR: &str = "10.254.0.0/16";
/// Workload ids of environments start with this; nothing else is ever touched.
const ID_PREFIX: &str = "lambda-";
/// On-demand init may take this long (AWS: 10 s) before the function's own timeout counts.
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// `LogType=Tail` returns this much of the end of the log.
const TAIL_BYTES: u64 = 4096;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn service_error(message: impl Into<String>) -> ApiError {
    ApiError::new(500, "ServiceException", message)
}

fn throttled(reason: &str) -> ApiError {
    ApiError::new(429, "TooManyRequestsException", "Rate Exceeded.")
        .with_field("Reason", json!(reason))
        .with_field("Type", json!("User"))
}

#[derive(Default)]
struct State {
    envs: HashMap<String, Arc<Env>>,
    /// revision → idle environment ids (most recently used last).
    idle: HashMap<String, Vec<String>>,
    /// Invocations in progress per function ARN and per account.
    inflight_fn: HashMap<String, u32>,
    inflight_acct: HashMap<String, u32>,
    /// revision → (spec, environments to keep initialised).
    provisioned: HashMap<String, (Arc<FunctionSpec>, u32)>,
}

/// Runs invocations in execution environments.
pub struct Executor {
    deps: Deps,
    me: Weak<Executor>,
    state: Mutex<State>,
    installs: tokio::sync::Mutex<()>,
    runtime_api: tokio::sync::OnceCell<Result<(), String>>,
    billing: Arc<Billing>,
    closed: AtomicBool,
    /// Destroys running in the background (shutdown waits for them).
    destroying: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Environments being created (shutdown waits for them).
    creating: std::sync::atomic::AtomicUsize,
}

/// Counts an environment creation in progress.
struct Creating<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Releases a concurrency slot.
struct Slot {
    exec: Weak<Executor>,
    function_arn: String,
    account: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(e) = self.exec.upgrade() {
            let mut st = lock(&e.state);
            if let Some(n) = st.inflight_fn.get_mut(&self.function_arn) {
                *n = n.saturating_sub(1);
            }
            if let Some(n) = st.inflight_acct.get_mut(&self.account) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl Executor {
    pub fn new(deps: &Deps) -> Result<Arc<Executor>, ApiError> {
        Ok(Arc::new_cyclic(|me| Executor {
            deps: deps.clone(),
            me: me.clone(),
            state: Mutex::new(State::default()),
            installs: tokio::sync::Mutex::new(()),
            runtime_api: tokio::sync::OnceCell::new(),
            billing: Arc::new(Billing::default()),
            closed: AtomicBool::new(false),
            destroying: Mutex::new(Vec::new()),
            creating: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    fn driver(&self) -> Result<Arc<dyn Driver>, ApiError> {
        self.deps.driver.clone().ok_or_else(|| {
            service_error(
                "Lambda functions cannot run here: no execution driver is available on this machine",
            )
        })
    }

    fn handles_dir(&self) -> PathBuf {
        self.deps.data_dir.join("exec").join("envs")
    }

    /// Runs one invocation; returns when it ended.
    pub async fn invoke(
        &self,
        spec: Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<InvokeResult, ApiError> {
        self.driver()?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(service_error("ferrocloud is shutting down"));
        }
        let _slot = self.acquire(&spec)?;
        let (env, cold) = match self.take_idle(&spec.revision) {
            Some(e) => (e, false),
            None => (self.create_env(spec.clone(), false).await?, true),
        };
        let result = self.run(&env, &spec, req, cold).await;
        self.release(&env);
        Ok(result)
    }

    fn acquire(&self, spec: &FunctionSpec) -> Result<Slot, ApiError> {
        let mut st = lock(&self.state);
        let f = st.inflight_fn.get(&spec.function_arn).copied().unwrap_or(0);
        let a = st.inflight_acct.get(&spec.account).copied().unwrap_or(0);
        match spec.reserved_concurrency {
            Some(r) if f >= r => {
                return Err(throttled(
                    "ReservedFunctionConcurrentInvocationLimitExceeded",
                ))
            }
            Some(_) => {}
            None if a >= self.deps.settings.account_concurrency => {
                return Err(throttled("ConcurrentInvocationLimitExceeded"))
            }
            None => {}
        }
        *st.inflight_fn.entry(spec.function_arn.clone()).or_default() += 1;
        *st.inflight_acct.entry(spec.account.clone()).or_default() += 1;
        Ok(Slot {
            exec: self.me.clone(),
            function_arn: spec.function_arn.clone(),
            account: spec.account.clone(),
        })
    }

    fn take_idle(&self, revision: &str) -> Option<Arc<Env>> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let ids = st.idle.get_mut(revision)?;
        let mut found = None;
        while let Some(id) = ids.pop() {
            let env = st.envs.get(&id).cloned();
            if let Some(e) = env {
                if e.failed().is_none() && !e.is_retired() {
                    found = Some(e);
                    break;
                }
            }
        }
        found
    }

    /// After an invocation: back to the idle pool, or destroyed.
    fn release(&self, env: &Arc<Env>) {
        if env.failed().is_some() || env.is_retired() || self.closed.load(Ordering::SeqCst) {
            self.destroy_env(env.clone());
            return;
        }
        *lock(&env.last_used) = Instant::now();
        let mut st = lock(&self.state);
        if st.envs.contains_key(&env.id) {
            st.idle
                .entry(env.spec.revision.clone())
                .or_default()
                .push(env.id.clone());
        }
    }

    /// Runs one invocation in `env` (cold: the environment was just created).
    async fn run(
        &self,
        env: &Arc<Env>,
        spec: &FunctionSpec,
        req: InvokeRequest,
        cold: bool,
    ) -> InvokeResult {
        let rid = req.request_id.clone();
        let mut init_ms = None;
        let mut init_failure = None;
        if cold || !env.is_ready() {
            let limit = INIT_LIMIT.max(Duration::from_secs(u64::from(spec.timeout_s)));
            match env.wait_ready(limit).await {
                Ok(ms) => init_ms = Some(ms),
                Err(f) => init_failure = Some(f),
            }
        }
        let start_off = env.log(&format!("START RequestId: {rid} Version: {}", spec.version));
        let started = Instant::now();
        let timeout = Duration::from_secs(u64::from(spec.timeout_s.max(1)));
        let outcome = match init_failure {
            Some(Some(f)) => Some(f),
            Some(None) => None,
            None => {
                let inv = Invocation {
                    request_id: rid.clone(),
                    payload: req.payload.clone(),
                    deadline_ms: now_ms() + timeout.as_millis() as i64,
                    invoked_arn: if req.invoked_arn.is_empty() {
                        spec.function_arn.clone()
                    } else {
                        req.invoked_arn.clone()
                    },
                    trace_id: trace_id(),
                    client_context: req.client_context.as_deref().map(decode_client_context),
                    cognito_identity: req.cognito_identity.clone(),
                };
                env.invocations.fetch_add(1, Ordering::SeqCst);
                let rx = env.dispatch(inv);
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(o)) => Some(o),
                    Ok(Err(_)) => Some(env.failed().unwrap_or(Outcome::Exited {
                        reason: "signal: killed".into(),
                        oom: false,
                    })),
                    Err(_) => {
                        env.abandon();
                        None
                    }
                }
            }
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut result = InvokeResult {
            executed_version: spec.version.clone(),
            duration_ms,
            billed_duration_ms: (duration_ms.ceil() as u64).max(1),
            init_duration_ms: init_ms,
            ..Default::default()
        };
        let mut status = String::new();
        match outcome {
            Some(Outcome::Response(body)) => result.payload = body,
            Some(Outcome::TooLarge) => {
                let msg = format!(
                    "Response payload size exceeded maximum allowed payload size ({} bytes).",
                    api::MAX_RESPONSE
                );
                env.log(&format!("[ERROR] Function.ResponseSizeTooLarge: {msg}"));
                result.payload = Bytes::from(
                    json!({"errorMessage": msg, "errorType": "Function.ResponseSizeTooLarge"})
                        .to_string(),
                );
                result.function_error = Some("Unhandled".into());
            }
            Some(Outcome::Error { error_type, body }) => {
                result.payload = if body.is_empty() {
                    Bytes::from(
                        json!({"errorMessage": error_type, "errorType": error_type}).to_string(),
                    )
                } else {
                    body
                };
                result.function_error = Some("Unhandled".into());
            }
            Some(Outcome::InitError { error_type, body }) => {
                result.payload = if body.is_empty() {
                    Bytes::from(
                        json!({"errorMessage": error_type, "errorType": error_type}).to_string(),
                    )
                } else {
                    body
                };
                result.function_error = Some("Unhandled".into());
                status = format!("\tStatus: error\tError Type: {error_type}");
                env.retired.store(true, Ordering::SeqCst);
            }
            Some(Outcome::Exited { reason, oom }) => {
                let msg = format!("RequestId: {rid} Error: Runtime exited with error: {reason}");
                env.log(&format!("{msg}\nRuntime.ExitError"));
                result.payload = Bytes::from(
                    json!({"errorType": "Runtime.ExitError", "errorMessage": msg}).to_string(),
                );
                result.function_error = Some("Unhandled".into());
                let ty = if oom {
                    "Runtime.OutOfMemory"
                } else {
                    "Runtime.ExitError"
                };
                status = format!("\tStatus: error\tError Type: {ty}");
                env.retired.store(true, Ordering::SeqCst);
            }
            None => {
                let msg = format!(
                    "{} {rid} Task timed out after {:.2} seconds",
                    fc_protocol::value::format_iso8601(fc_protocol::value::now_secs()),
                    timeout.as_secs_f64()
                );
                env.log(&msg);
                result.payload = Bytes::from(json!({"errorMessage": msg}).to_string());
                result.function_error = Some("Unhandled".into());
                status = "\tStatus: timeout".into();
                env.retired.store(true, Ordering::SeqCst);
            }
        }
        let mem = self.max_memory_mb(env).await;
        result.max_memory_used_mb = mem;
        let init = init_ms
            .map(|ms| format!("\tInit Duration: {ms:.2} ms"))
            .unwrap_or_default();
        env.log(&format!(
            "END RequestId: {rid}\nREPORT RequestId: {rid}\tDuration: {duration_ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {mem} MB{init}{status}\t",
            result.billed_duration_ms, spec.memory_mb
        ));
        if req.tail_logs {
            let tail = env.log_since(start_off, TAIL_BYTES);
            result.log_result = Some(base64::engine::general_purpose::STANDARD.encode(tail));
        }
        self.bill(spec, result.billed_duration_ms);
        result
    }

    /// Peak memory of the environment in MB (cgroup readings are cheap; the process driver
    /// scans /proc, so its reading is reused for a second).
    async fn max_memory_mb(&self, env: &Env) -> u64 {
        let Some(driver) = self.deps.driver.clone() else {
            return 0;
        };
        let cached = *lock(&env.mem);
        if let Some((at, mb)) = cached {
            if driver.name() != "linux" && at.elapsed() < Duration::from_secs(1) {
                return mb;
            }
        }
        let mb = match driver.stats(&env.id).await {
            Ok(s) => s.memory_peak.max(s.memory_current).div_ceil(1 << 20),
            Err(_) => cached.map(|c| c.1).unwrap_or(0),
        };
        let mb = mb.min(u64::from(env.spec.memory_mb));
        *lock(&env.mem) = Some((Instant::now(), mb));
        mb
    }

    // ---- environments ----

    /// Starts a new environment of `spec` (registered, not yet idle).
    async fn create_env(
        &self,
        spec: Arc<FunctionSpec>,
        provisioned: bool,
    ) -> Result<Arc<Env>, ApiError> {
        let driver = self.driver()?;
        let fam = runtimes::family(
            spec.package_type == PackageType::Image,
            spec.runtime.as_deref(),
        )
        .map_err(|e| ApiError::client("InvalidRuntimeException", e))?;
        if !runtimes::installed(&self.deps.settings.runtime_cache, fam) {
            self.prepare(&spec).await.map_err(service_error)?;
        }
        let id = format!("{ID_PREFIX}{}", fc_types::ids::random_hex(16));
        let date = time::OffsetDateTime::now_utc();
        let stream = format!(
            "{:04}/{:02}/{:02}/[{}]{}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            spec.version,
            fc_types::ids::random_hex(32)
        );
        let env = Arc::new(Env::new(id.clone(), spec.clone(), stream, provisioned));
        self.creating.fetch_add(1, Ordering::SeqCst);
        let _creating = Creating(&self.creating);
        if self.closed.load(Ordering::SeqCst) {
            return Err(service_error("ferrocloud is shutting down"));
        }
        lock(&self.state).envs.insert(id.clone(), env.clone());
        match self.start_workload(&driver, &env, fam).await {
            Ok(handle) if self.closed.load(Ordering::SeqCst) => {
                // Shut down meanwhile: this one goes too.
                env.set_output(handle.dir.join("stdout.log"));
                self.destroy_now(env).await;
                Err(service_error("ferrocloud is shutting down"))
            }
            Ok(handle) => {
                let _ = std::fs::create_dir_all(self.handles_dir());
                let _ = std::fs::write(
                    self.handles_dir().join(format!("{id}.json")),
                    serde_json::to_vec(&handle).unwrap_or_default(),
                );
                env.set_output(handle.dir.join("stdout.log"));
                self.watch(env.clone());
                Ok(env)
            }
            Err(e) => {
                lock(&self.state).envs.remove(&id);
                env.abort_tasks();
                Err(service_error(format!(
                    "The execution environment of {} could not start: {e}",
                    spec.function_name
                )))
            }
        }
    }

    async fn start_workload(
        &self,
        driver: &Arc<dyn Driver>,
        env: &Arc<Env>,
        fam: Family,
    ) -> Result<Handle, String> {
        let linux = driver.capabilities().rootfs;
        let api_addr = if linux {
            self.ensure_runtime_api(driver).await?;
            RUNTIME_API.to_string()
        } else {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot listen for the Runtime API: {e}"))?;
            let addr = listener
                .local_addr()
                .map_err(|e| format!("Runtime API address: {e}"))?;
            let env2 = env.clone();
            let task = tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => api::serve(env2.clone(), s),
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
            lock(&env.tasks).push(task.abort_handle());
            addr.to_string()
        };
        let endpoint = if linux {
            format!("http://{}", driver.api_address())
        } else {
            format!("http://127.0.0.1:{}", self.deps.settings.api_port)
        };
        let me = self.me.upgrade().ok_or("the executor is gone")?;
        let env2 = env.clone();
        let spec = tokio::task::spawn_blocking(move || {
            me.workload_spec(&env2, fam, linux, &api_addr, &endpoint)
        })
        .await
        .map_err(|e| format!("spec task: {e}"))??;
        driver.start(spec).await.map_err(|e| e.to_string())
    }

    async fn ensure_runtime_api(&self, driver: &Arc<dyn Driver>) -> Result<(), String> {
        let me = self.me.clone();
        self.runtime_api
            .get_or_init(|| async move {
                driver
                    .serve_link_local(RUNTIME_API, Arc::new(LinkLocal { exec: me }))
                    .await
                    .map_err(|e| format!("cannot serve the Runtime API: {e}"))
            })
            .await
            .clone()
    }

    /// Watches the workload: when it ends, the environment fails (and is destroyed if idle).
    fn watch(&self, env: Arc<Env>) {
        let Some(driver) = self.deps.driver.clone() else {
            return;
        };
        let me = self.me.clone();
        let tasks_of = env.clone();
        let task = tokio::spawn(async move {
            let status = driver.wait(&env.id).await;
            let (reason, oom) = match status {
                Ok(s) => (exit_reason(&s), s.oom_killed),
                Err(e) => (e.to_string(), false),
            };
            env.fail(Outcome::Exited { reason, oom });
            if let Some(exec) = me.upgrade() {
                let idle = {
                    let st = lock(&exec.state);
                    st.idle
                        .get(&env.spec.revision)
                        .map(|v| v.contains(&env.id))
                        .unwrap_or(false)
                };
                if idle {
                    exec.destroy_env(env);
                }
            }
        });
        lock(&tasks_of.tasks).push(task.abort_handle());
    }

    /// Removes an environment and destroys its workload in the background.
    fn destroy_env(&self, env: Arc<Env>) {
        if env.destroyed.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let mut st = lock(&self.state);
            st.envs.remove(&env.id);
            if let Some(ids) = st.idle.get_mut(&env.spec.revision) {
                ids.retain(|i| *i != env.id);
            }
        }
        let driver = self.deps.driver.clone();
        let handle_file = self.handles_dir().join(format!("{}.json", env.id));
        let task = tokio::spawn(async move {
            env.fail(Outcome::Exited {
                reason: "signal: killed".into(),
                oom: false,
            });
            if let Some(d) = driver {
                if let Err(e) = d.destroy(&env.id).await {
                    tracing::debug!(env = %env.id, error = %e, "destroy Lambda environment");
                }
            }
            env.abort_tasks();
            let _ = std::fs::remove_file(handle_file);
        });
        let mut d = lock(&self.destroying);
        d.retain(|t| !t.is_finished());
        d.push(task);
    }

    async fn destroy_now(&self, env: Arc<Env>) {
        env.destroyed.store(true, Ordering::SeqCst);
        {
            let mut st = lock(&self.state);
            st.envs.remove(&env.id);
        }
        env.fail(Outcome::Exited {
            reason: "signal: killed".into(),
            oom: false,
        });
        if let Some(d) = &self.deps.driver {
            if let Err(e) = d.destroy(&env.id).await {
                tracing::warn!(env = %env.id, error = %e, "cannot destroy a Lambda environment");
            }
        }
        env.abort_tasks();
        let _ = std::fs::remove_file(self.handles_dir().join(format!("{}.json", env.id)));
    }

    /// Makes ready what `spec` needs before its first invocation (installs its runtime interface
    /// client into the runtime cache, resolves its image). The control plane calls it after
    /// `CreateFunction`/`UpdateFunctionCode`: the function stays `Pending` until it returns and
    /// becomes `Failed` with the returned reason on error.
    pub async fn prepare(&self, spec: &FunctionSpec) -> Result<(), String> {
        let fam = runtimes::family(
            spec.package_type == PackageType::Image,
            spec.runtime.as_deref(),
        )?;
        if fam == Family::Image {
            let img = spec
                .image
                .as_ref()
                .ok_or("The function has no container image")?;
            let digest = fc_images::Digest::parse(&img.digest)
                .map_err(|e| format!("bad image digest {}: {e}", img.digest))?;
            let images = self.deps.images.clone();
            return tokio::task::spawn_blocking(move || images.rootfs(&digest).map(|_| ()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("The image {} cannot be prepared: {e}", img.uri));
        }
        let cache = self.deps.settings.runtime_cache.clone();
        if runtimes::installed(&cache, fam) {
            return Ok(());
        }
        let _one = self.installs.lock().await;
        tokio::task::spawn_blocking(move || runtimes::install(&cache, fam))
            .await
            .map_err(|e| format!("install task: {e}"))?
    }

    /// Destroys every environment of the function (deleted or updated).
    pub async fn retire(&self, function_arn: &str) {
        let envs: Vec<Arc<Env>> = {
            let mut st = lock(&self.state);
            st.provisioned
                .retain(|_, (s, _)| s.function_arn != function_arn);
            st.envs
                .values()
                .filter(|e| e.spec.function_arn == function_arn)
                .cloned()
                .collect()
        };
        for e in envs {
            e.retired.store(true, Ordering::SeqCst);
            let idle = {
                let st = lock(&self.state);
                st.idle
                    .get(&e.spec.revision)
                    .map(|v| v.contains(&e.id))
                    .unwrap_or(false)
            };
            if idle {
                self.destroy_env(e);
            }
        }
    }

    /// Keeps `count` environments of `spec` initialised (provisioned concurrency).
    pub async fn set_provisioned(&self, spec: Arc<FunctionSpec>, count: u32) {
        {
            let mut st = lock(&self.state);
            if count == 0 {
                st.provisioned.remove(&spec.revision);
            } else {
                st.provisioned
                    .insert(spec.revision.clone(), (spec.clone(), count));
            }
        }
        self.top_up().await;
    }

    /// Starts environments missing from provisioned concurrency.
    async fn top_up(&self) {
        let wanted: Vec<(Arc<FunctionSpec>, u32)> = {
            let st = lock(&self.state);
            st.provisioned
                .values()
                .map(|(s, n)| {
                    let have = st
                        .envs
                        .values()
                        .filter(|e| e.spec.revision == s.revision && e.failed().is_none())
                        .count() as u32;
                    (s.clone(), n.saturating_sub(have))
                })
                .filter(|(_, missing)| *missing > 0)
                .collect()
        };
        for (spec, missing) in wanted {
            for _ in 0..missing {
                if self.closed.load(Ordering::SeqCst) {
                    return;
                }
                match self.create_env(spec.clone(), true).await {
                    Ok(env) => {
                        if env.wait_ready(INIT_LIMIT).await.is_ok() {
                            self.release(&env);
                        } else {
                            self.destroy_env(env);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(function = %spec.function_name, error = %e, "provisioned environment failed to start");
                        break;
                    }
                }
            }
        }
    }

    /// Destroys environments idle for longer than the idle timeout (keeping provisioned ones).
    fn reap(&self) {
        let idle_timeout = self.deps.settings.idle_timeout;
        let victims: Vec<Arc<Env>> = {
            let st = lock(&self.state);
            let mut out = Vec::new();
            for (rev, ids) in &st.idle {
                let keep = st.provisioned.get(rev).map(|(_, n)| *n).unwrap_or(0) as usize;
                let total = st.envs.values().filter(|e| e.spec.revision == *rev).count();
                let mut removable = total.saturating_sub(keep);
                for id in ids {
                    if removable == 0 {
                        break;
                    }
                    if let Some(e) = st.envs.get(id) {
                        if lock(&e.last_used).elapsed() >= idle_timeout {
                            out.push(e.clone());
                            removable -= 1;
                        }
                    }
                }
            }
            out
        };
        for e in victims {
            self.destroy_env(e);
        }
    }

    /// Stops background work and destroys every environment.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Creations in progress finish (and destroy what they started) first.
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.creating.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let envs: Vec<Arc<Env>> = lock(&self.state).envs.values().cloned().collect();
        tracing::info!(environments = envs.len(), "destroying Lambda environments");
        let mut joins = Vec::new();
        for e in envs {
            if let Some(me) = self.me.upgrade() {
                joins.push(tokio::spawn(async move { me.destroy_now(e).await }));
            }
        }
        for j in joins {
            let _ = j.await;
        }
        let pending: Vec<_> = lock(&self.destroying).drain(..).collect();
        for j in pending {
            let _ = j.await;
        }
        self.flush_billing();
    }

    /// Removes environments a crashed server left behind (only `lambda-` workloads it recorded).
    async fn cleanup_leftovers(&self) {
        let Some(driver) = self.deps.driver.clone() else {
            return;
        };
        let Ok(rd) = std::fs::read_dir(self.handles_dir()) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let live = lock(&self.state).envs.contains_key(
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default(),
            );
            if live {
                continue;
            }
            let handle: Option<Handle> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(h) = handle.filter(|h| h.id.starts_with(ID_PREFIX)) {
                if driver.recover(&h).await.is_ok() {
                    let _ = driver.destroy(&h.id).await;
                }
            }
            let _ = std::fs::remove_file(&path);
        }
    }

    fn env_by_id(&self, id: &str) -> Option<Arc<Env>> {
        lock(&self.state).envs.get(id).cloned()
    }

    /// Environments alive now (tests, status).
    pub fn environment_count(&self) -> usize {
        lock(&self.state).envs.len()
    }
}

/// AWS's wording of how a runtime process ended.
fn exit_reason(s: &fc_runtime::ExitStatus) -> String {
    if s.oom_killed {
        return "signal: killed".into();
    }
    match (s.code, s.signal) {
        (_, Some(sig)) => format!("signal: {}", signal_name(sig)),
        (Some(0), _) => "exit status 0".into(),
        (Some(c), _) => format!("exit status {c}"),
        _ => "signal: killed".into(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        9 => "killed".into(),
        15 => "terminated".into(),
        6 => "aborted".into(),
        11 => "segmentation fault".into(),
        2 => "interrupt".into(),
        1 => "hangup".into(),
        n => format!("signal {n}"),
    }
}

/// `Lambda-Runtime-Trace-Id`: an X-Ray trace header.
fn trace_id() -> String {
    let secs = now_ms() / 1000;
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        fc_types::ids::random_hex(24),
        fc_types::ids::random_hex(16)
    )
}

/// `X-Amz-Client-Context` is base64 JSON; runtimes get the JSON.
fn decode_client_context(b64: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| b64.to_string())
}

/// The link-local Runtime API: the connecting workload names the environment.
struct LinkLocal {
    exec: Weak<Executor>,
}

impl fc_runtime::LinkLocalHandler for LinkLocal {
    fn handle(
        &self,
        _peer: std::net::SocketAddr,
        workload: Option<String>,
        stream: tokio::net::TcpStream,
    ) {
        let env = self
            .exec
            .upgrade()
            .zip(workload)
            .and_then(|(e, id)| e.env_by_id(&id));
        if let Some(env) = env {
            api::serve(env, stream);
        }
    }
}

/// The log sink the execution driver writes workload output to: forwards everything to
/// CloudWatch Logs. (Lambda reads an invocation's tail from its environment's output file.)
pub struct LogTap {
    inner: Arc<dyn fc_runtime::LogSink>,
}

impl LogTap {
    pub fn new(inner: Arc<dyn fc_runtime::LogSink>) -> Arc<LogTap> {
        Arc::new(LogTap { inner })
    }
}

impl fc_runtime::LogSink for LogTap {
    fn append(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    ) {
        // The driver forwards output from async tasks; a durable write (fsync) must not stall
        // the worker thread's other tasks (invocations), so it is handed off when possible.
        let multi_thread = tokio::runtime::Handle::try_current()
            .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .unwrap_or(false);
        if multi_thread {
            tokio::task::block_in_place(|| {
                self.inner.append(account, region, group, stream, events)
            });
        } else {
            self.inner.append(account, region, group, stream, events);
        }
    }
}

/// Starts background work: leftovers of a crash are removed, idle environments reaped,
/// provisioned concurrency kept up, usage written to the cost ledger.
pub fn start(inner: &Arc<Inner>) {
    let exec = inner.exec.clone();
    exec.deps.ledger.add_source(exec.billing.clone());
    let weak = Arc::downgrade(&exec);
    tokio::spawn(async move {
        if let Some(e) = weak.upgrade() {
            e.cleanup_leftovers().await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(e) = weak.upgrade() else { return };
            if e.closed.load(Ordering::SeqCst) {
                return;
            }
            e.reap();
            e.top_up().await;
            let e2 = e.clone();
            let _ = tokio::task::spawn_blocking(move || e2.flush_billing()).await;
        }
    });
}
