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

    /// Destroys every environment of the function (deleted or updated).
    pub async fn retire(&self, _function_arn: &str) {}

    /// Keeps `count` environments of `spec` initialised (provisioned concurrency).
    pub async fn set_provisioned(&self, _spec: Arc<FunctionSpec>, _count: u32) {}

    /// Stops background work and destroys every environment.
    pub async fn shutdown(&self) {}
}

/// Starts background work (idle reaper).
pub fn start(_inner: &Arc<Inner>) {}
