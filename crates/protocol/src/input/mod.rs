//! Server side request parsing: which protocol and operation a request uses, and the
//! operation's input as a value (see [`crate::value`]).

use crate::{ApiError, HttpRequest, Operation, Protocol, ServiceModel};
use serde_json::Value;

/// Which of the model's protocols this request speaks (a service such as CloudWatch or SQS
/// accepts several: CBOR, JSON and query).
pub fn detect_protocol(model: &ServiceModel, req: &HttpRequest) -> Protocol {
    let _ = req;
    Protocol::from_name(&model.metadata.protocol).unwrap_or(Protocol::Query)
}

/// The operation a request invokes: by `X-Amz-Target` (json), `Action` (query/ec2), the
/// `/service/.../operation/Name` path (rpc-v2-cbor) or method + `requestUri` (rest).
pub fn resolve_operation<'m>(
    model: &'m ServiceModel,
    protocol: Protocol,
    req: &HttpRequest,
) -> Result<&'m Operation, ApiError> {
    let _ = (model, protocol, req);
    Err(ApiError::internal("request parsing is not built yet"))
}

/// Parse the operation's input from the request.
pub fn parse_request(
    model: &ServiceModel,
    protocol: Protocol,
    op: &Operation,
    req: &HttpRequest,
) -> Result<Value, ApiError> {
    let _ = (model, protocol, op, req);
    Err(ApiError::internal("request parsing is not built yet"))
}
