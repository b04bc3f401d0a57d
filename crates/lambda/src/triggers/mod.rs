//! What makes functions run besides `Invoke`: resource policies (`AddPermission`), event
//! source mappings (SQS pollers), async invocations (durable queue, retries, destinations,
//! dead-letter queues), function URLs, and S3 notifications through the bus.

use crate::{Deps, Inner};
use fc_protocol::ApiError;
use fc_services::{RawHandler, RawReply, RequestContext};
use serde_json::Value;
use std::sync::Arc;

/// The triggers' own state.
pub struct State {}

impl State {
    pub fn new(_deps: &Deps) -> Result<State, ApiError> {
        Ok(State {})
    }
}

/// Operations handled here (the rest go to the control plane).
pub fn handles(_operation: &str) -> bool {
    false
}

pub async fn call(
    _inner: &Arc<Inner>,
    ctx: &RequestContext,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(ApiError::not_implemented("lambda", &ctx.operation))
}

/// Queues an asynchronous (`InvocationType=Event`) invocation durably; it runs in the
/// background with retries, destinations and the dead-letter queue. Returns once queued.
pub async fn enqueue_async(
    _inner: &Arc<Inner>,
    _spec: Arc<crate::spec::FunctionSpec>,
    _req: crate::spec::InvokeRequest,
) -> Result<(), ApiError> {
    Err(ApiError::not_implemented("lambda", "Invoke (Event)"))
}

/// Forgets everything of a deleted function (permissions, mappings, URL, async config).
/// `qualifier` None = the whole function.
pub async fn function_deleted(
    _inner: &Arc<Inner>,
    _account: &str,
    _region: &str,
    _function_name: &str,
    _qualifier: Option<&str>,
) {
}

/// Starts pollers and workers; registers the bus function sink.
pub fn start(_inner: &Arc<Inner>) {}

struct Urls;

#[async_trait::async_trait]
impl RawHandler for Urls {
    async fn handle(&self, _req: fc_services::HttpRequest, _body: fc_services::BodyIn) -> RawReply {
        RawReply {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: fc_services::BodyOut::Bytes(bytes::Bytes::from_static(b"{\"Message\":null}")),
        }
    }
}

/// The function URL data plane.
pub fn url_handler(_inner: &Arc<Inner>) -> Arc<dyn RawHandler> {
    Arc::new(Urls)
}
