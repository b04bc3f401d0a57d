//! Server side response and error serialization, and (for conformance tests and internal
//! clients) the matching client side response parsing.

use crate::{ApiError, HttpResponse, Operation, Protocol, ResponseContext, ServiceModel};
use serde_json::Value;

/// Serialize an operation's output value.
pub fn serialize_response(
    model: &ServiceModel,
    protocol: Protocol,
    op: &Operation,
    output: &Value,
    ctx: &ResponseContext,
) -> HttpResponse {
    let _ = (model, protocol, op, output, ctx);
    HttpResponse {
        status: 500,
        headers: Vec::new(),
        body: b"response serialization is not built yet".to_vec(),
    }
}

/// Serialize an error. `op` is `None` when the operation could not be determined.
pub fn serialize_error(
    model: &ServiceModel,
    protocol: Protocol,
    op: Option<&Operation>,
    err: &ApiError,
    ctx: &ResponseContext,
) -> HttpResponse {
    let _ = (model, protocol, op, ctx);
    HttpResponse {
        status: err.status,
        headers: Vec::new(),
        body: err.message.clone().into_bytes(),
    }
}
