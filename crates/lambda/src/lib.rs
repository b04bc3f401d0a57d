//! AWS Lambda: the control plane (`control`: functions, code, versions, aliases, layers,
//! concurrency, tags, `Invoke`), the execution engine (`exec`: execution environments on the
//! runtime, the Runtime API, runtimes, logs and billing of every invocation) and the triggers
//! (`triggers`: resource policies, event source mappings, async invocations with retries and
//! destinations, function URLs, S3 notifications through the bus).
//!
//! The three parts meet only here and in [`spec`]: the control plane resolves a function into a
//! [`spec::FunctionSpec`] and the engine runs [`spec::InvokeRequest`]s against it.
//! Must not live here: wire formats (fc-protocol), HTTP routing of the main endpoint (the
//! binary), other services' state (reached through their public APIs or `Service::call`).

// ApiError is a plain value carried once per request; boxing it buys nothing measurable.
#![allow(clippy::result_large_err)]

pub mod control;
pub mod exec;
pub mod spec;
pub mod triggers;

use async_trait::async_trait;
use fc_protocol::ApiError;
use fc_runtime::Driver;
use fc_services::{RawHandler, RequestContext, Service};
use fc_store::Store;
use serde_json::Value;
use spec::{FunctionSpec, InvokeRequest, InvokeResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Tunables (command line / config file of the binary).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Account-wide concurrent executions (AWS default 1000).
    pub account_concurrency: u32,
    /// Idle execution environments are reaped after this long.
    pub idle_timeout: Duration,
    /// Where runtime interface clients are installed once (`<dir>/python`, `<dir>/nodejs`).
    pub runtime_cache: PathBuf,
    /// Port of ferrocloud's API on the host's 127.0.0.1.
    pub api_port: u16,
    /// First retry delay of a failed async invocation (AWS: about a minute; the second retry
    /// waits twice as long).
    pub async_retry_base: Duration,
    /// Strict authentication: the root credentials (access key id, secret) beside IAM/STS keys.
    /// Function URLs with `AuthType=AWS_IAM` then verify signatures; None = lenient.
    pub strict_auth: Option<(String, String)>,
}

/// What Lambda is built on.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    /// Lambda's own files: `<data>/lambda` (code, layers, environments).
    pub data_dir: PathBuf,
    pub logs: Arc<fc_services::logs::Logs>,
    /// For `S3Bucket`/`S3Key` code and S3 event sources (through `Service::call_stream`).
    pub s3: Arc<dyn Service>,
    /// For SQS event source mappings and destinations (through `Service::call`).
    pub sqs: Arc<dyn Service>,
    pub bus: Arc<fc_services::bus::Bus>,
    pub images: Arc<fc_images::ImageStore>,
    /// None when no execution driver works here: invocations then fail with a service error.
    pub driver: Option<Arc<dyn Driver>>,
    pub ledger: Arc<fc_services::costs::Ledger>,
    /// The driver's log sink: Lambda reads back what its environments print (`LogType=Tail`).
    pub log_tap: Arc<exec::LogTap>,
    pub settings: Settings,
}

/// Shared state of the three parts.
pub struct Inner {
    pub deps: Deps,
    pub control: control::State,
    pub exec: Arc<exec::Executor>,
    pub triggers: triggers::State,
}

impl Inner {
    /// Resolves a function (name, partial or full ARN) and qualifier (version or alias; an alias
    /// with a routing configuration picks a version by weight) to the spec of what runs.
    pub async fn resolve(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionSpec>, ApiError> {
        control::resolve(self, account, region, function, qualifier).await
    }

    /// Runs one invocation of a resolved function (synchronously: returns when it ended).
    pub async fn invoke(
        self: &Arc<Self>,
        spec: Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<InvokeResult, ApiError> {
        self.exec.invoke(spec, req).await
    }
}

/// The Lambda service.
pub struct Lambda {
    inner: Arc<Inner>,
}

impl Lambda {
    pub fn new(deps: Deps) -> Result<Arc<Lambda>, ApiError> {
        let exec = exec::Executor::new(&deps)?;
        let control = control::State::new(&deps)?;
        let triggers = triggers::State::new(&deps)?;
        let inner = Arc::new(Inner {
            deps,
            control,
            exec,
            triggers,
        });
        Ok(Arc::new(Lambda { inner }))
    }

    /// Starts the background work (environment reaper, async invocation workers, event source
    /// pollers) and registers with the bus. Call once, inside the tokio runtime.
    pub fn start(&self) {
        exec::start(&self.inner);
        triggers::start(&self.inner);
    }

    /// The function URL data plane (`<url-id>.lambda-url.<region>.localhost`).
    pub fn url_handler(&self) -> Arc<dyn RawHandler> {
        triggers::url_handler(&self.inner)
    }

    /// `/_ferrocloud/lambda/...`: code downloads (`GetFunction`'s `Code.Location`).
    pub fn internal_handler(&self) -> Arc<dyn RawHandler> {
        control::internal_handler(&self.inner)
    }

    /// Stops background work; environments are destroyed (they hold no durable state).
    pub async fn shutdown(&self) {
        self.inner.exec.shutdown().await;
    }

    pub fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

#[async_trait]
impl Service for Lambda {
    fn name(&self) -> &'static str {
        "lambda"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        if triggers::handles(&ctx.operation) {
            triggers::call(&self.inner, ctx, input).await
        } else {
            control::call(&self.inner, ctx, input).await
        }
    }
}
