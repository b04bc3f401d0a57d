//! The AWS API models and the six wire protocols (`ec2`, `query`, `json` 1.0/1.1, `rest-json`,
//! `rest-xml`, `smithy-rpc-v2-cbor`), generic over any model.
//!
//! Lives here: model loading ([`model`]), request parsing ([`input`]), response and error
//! serialization ([`output`]), service routing of raw requests ([`route`]), and the one
//! AWS-visible error type ([`ApiError`]). Operation values follow the conventions of [`value`].
//!
//! Must not live here: any service behaviour, any I/O, any knowledge of accounts or state.
//! This is the only crate that knows wire formats: no other crate writes XML, JSON bodies or
//! CBOR for an AWS API.

pub mod body;
pub mod error;
pub mod http;
pub mod input;
pub mod model;
pub mod output;
pub mod route;
pub mod value;

pub use body::{BodyIn, BodyOut};
pub use error::ApiError;
pub use http::{HttpRequest, HttpResponse};
pub use input::{detect_protocol, parse_request, resolve_operation};
pub use model::{service_model, Operation, ServiceModel, Shape, ShapeRef};
pub use output::{serialize_error, serialize_response};

/// A wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Ec2,
    Query,
    /// `application/x-amz-json-1.0` / `-1.1` with `X-Amz-Target`.
    Json,
    RestJson,
    RestXml,
    RpcV2Cbor,
}

impl Protocol {
    /// The protocol named in a model's metadata (`ec2`, `query`, `json`, `rest-json`,
    /// `rest-xml`, `smithy-rpc-v2-cbor`).
    pub fn from_name(name: &str) -> Option<Protocol> {
        Some(match name {
            "ec2" => Protocol::Ec2,
            "query" => Protocol::Query,
            "json" => Protocol::Json,
            "rest-json" => Protocol::RestJson,
            "rest-xml" => Protocol::RestXml,
            "smithy-rpc-v2-cbor" => Protocol::RpcV2Cbor,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ec2 => "ec2",
            Protocol::Query => "query",
            Protocol::Json => "json",
            Protocol::RestJson => "rest-json",
            Protocol::RestXml => "rest-xml",
            Protocol::RpcV2Cbor => "smithy-rpc-v2-cbor",
        }
    }
}

/// Whether an operation's input payload is a stream (S3 `PutObject`/`UploadPart` bodies): the
/// server then hands the body to the handler as a [`BodyIn`] instead of reading it whole.
pub fn streams_input(model: &ServiceModel, op: &Operation) -> bool {
    op.input
        .as_ref()
        .is_some_and(|r| payload_streams(model, &r.shape))
}

/// Whether an operation's output payload is a stream (S3 `GetObject`).
pub fn streams_output(model: &ServiceModel, op: &Operation) -> bool {
    op.output
        .as_ref()
        .is_some_and(|r| payload_streams(model, &r.shape))
}

fn payload_streams(model: &ServiceModel, shape: &str) -> bool {
    let Some(s) = model.shape(shape) else {
        return false;
    };
    let Some(p) = s.payload.as_deref() else {
        return false;
    };
    let Some(m) = s.members.get(p) else {
        return false;
    };
    let target = model.shape(&m.shape);
    let blob = target.is_some_and(|t| t.type_ == "blob");
    blob && (m.streaming == Some(true) || target.is_some_and(|t| t.streaming == Some(true)))
}

/// What a response or error needs besides the value: the request id to echo.
#[derive(Debug, Clone, Default)]
pub struct ResponseContext {
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_operations() {
        let s3 = service_model("s3").expect("s3");
        let op = |n: &str| s3.operation(n).expect("op");
        assert!(streams_input(s3, op("PutObject")));
        assert!(streams_input(s3, op("UploadPart")));
        assert!(!streams_input(s3, op("PutBucketTagging")));
        assert!(streams_output(s3, op("GetObject")));
        assert!(!streams_output(s3, op("HeadObject")));
        let lambda = service_model("lambda").expect("lambda");
        assert!(!streams_input(
            lambda,
            lambda.operation("Invoke").expect("op")
        ));
    }
}
