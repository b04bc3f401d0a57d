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
