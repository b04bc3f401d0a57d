//! The Lambda control plane: functions and their code, versions, aliases, layers,
//! concurrency settings, tags, account settings, and the `Invoke` operation.

use crate::spec::FunctionSpec;
use crate::{Deps, Inner};
use fc_protocol::ApiError;
use fc_services::RequestContext;
use serde_json::Value;
use std::sync::Arc;

/// The control plane's own state.
pub struct State {}

impl State {
    pub fn new(_deps: &Deps) -> Result<State, ApiError> {
        Ok(State {})
    }
}

/// Runs a control-plane operation.
pub async fn call(
    _inner: &Arc<Inner>,
    ctx: &RequestContext,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(ApiError::not_implemented("lambda", &ctx.operation))
}

/// See [`Inner::resolve`].
pub async fn resolve(
    _inner: &Arc<Inner>,
    _account: &str,
    _region: &str,
    function: &str,
    _qualifier: Option<&str>,
) -> Result<Arc<FunctionSpec>, ApiError> {
    Err(ApiError::new(
        404,
        "ResourceNotFoundException",
        format!("Function not found: {function}"),
    ))
}

struct Internal;

#[async_trait::async_trait]
impl fc_services::RawHandler for Internal {
    async fn handle(
        &self,
        req: fc_services::HttpRequest,
        _body: fc_services::BodyIn,
    ) -> fc_services::RawReply {
        fc_services::RawReply {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: fc_services::BodyOut::Bytes(bytes::Bytes::from(
                serde_json::json!({"error": format!("no ferrocloud endpoint {} {}", req.method, req.path)})
                    .to_string(),
            )),
        }
    }
}

/// The handler of `/_ferrocloud/lambda/...` (code downloads).
pub fn internal_handler(_inner: &Arc<Inner>) -> Arc<dyn fc_services::RawHandler> {
    Arc::new(Internal)
}
