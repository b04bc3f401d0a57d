//! The one error type every AWS-visible failure goes through.

use serde_json::{Map, Value};

/// An error as the caller of an AWS API sees it.
///
/// `code` is the error *shape name* when the service model has one (`QueueDoesNotExist`,
/// `NoSuchEntity`, `ResourceNotFoundException`), otherwise the plain AWS code
/// (`InvalidInstanceID.NotFound`, `ValidationError`). Serializers map a shape name to the
/// wire code the protocol demands (its `error.code` trait for awsQuery and awsQueryCompatible).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// HTTP status.
    pub status: u16,
    /// `true` for client faults (`Sender`), `false` for server faults (`Receiver`).
    pub sender_fault: bool,
    /// Extra members of the error structure (e.g. Lambda's `Type`, `Reason`).
    pub fields: Map<String, Value>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            code: code.into(),
            message: message.into(),
            status,
            sender_fault: status < 500,
            fields: Map::new(),
            headers: Vec::new(),
        }
    }

    /// A 400 client error.
    pub fn client(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// A 500 server fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalFailure", message)
    }

    /// The operation exists in the service model but ferrocloud does not implement it yet.
    pub fn not_implemented(service: &str, operation: &str) -> Self {
        Self::new(
            501,
            "NotImplemented",
            format!("{service}:{operation} is not implemented by ferrocloud yet"),
        )
    }

    /// A request body or parameter that cannot be read at all.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }

    /// A required member is missing (`MissingParameter` on query/ec2 services,
    /// `ValidationException` on JSON services; the caller picks the code).
    pub fn missing(code: &str, member: &str) -> Self {
        Self::client(
            code,
            format!("The request must contain the parameter {member}"),
        )
    }

    /// Attach an extra member to the error body.
    pub fn with_field(mut self, name: &str, value: Value) -> Self {
        self.fields.insert(name.to_string(), value);
        self
    }

    /// Attach a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}
