//! The Lambda execution engine: execution environments on the runtime driver, the Runtime
//! API, runtime interface clients, logs and billing of every invocation.

use crate::spec::{FunctionSpec, InvokeRequest, InvokeResult};
use crate::{Deps, Inner};
use fc_protocol::ApiError;
use std::sync::Arc;

/// Runs invocations in execution environments.
pub struct Executor {}

impl Executor {
    pub fn new(_deps: &Deps) -> Result<Arc<Executor>, ApiError> {
        Ok(Arc::new(Executor {}))
    }

    /// Runs one invocation; returns when it ended.
    pub async fn invoke(
        &self,
        _spec: Arc<FunctionSpec>,
        _req: InvokeRequest,
    ) -> Result<InvokeResult, ApiError> {
        Err(ApiError::not_implemented("lambda", "Invoke"))
    }

    /// Makes ready what `spec` needs before its first invocation (installs its runtime interface
    /// client into the runtime cache, resolves its image). The control plane calls it after
    /// `CreateFunction`/`UpdateFunctionCode`: the function stays `Pending` until it returns and
    /// becomes `Failed` with the returned reason on error.
    pub async fn prepare(&self, _spec: &FunctionSpec) -> Result<(), String> {
        Ok(())
    }

    /// Destroys every environment of the function (deleted or updated).
    pub async fn retire(&self, _function_arn: &str) {}

    /// Keeps `count` environments of `spec` initialised (provisioned concurrency).
    pub async fn set_provisioned(&self, _spec: Arc<FunctionSpec>, _count: u32) {}

    /// Stops background work and destroys every environment.
    pub async fn shutdown(&self) {}
}

/// The log sink the execution driver writes workload output to: forwards everything to
/// CloudWatch Logs and keeps what Lambda environments print for `LogType=Tail`.
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
        self.inner.append(account, region, group, stream, events);
    }
}

/// Starts background work (idle reaper).
pub fn start(_inner: &Arc<Inner>) {}
