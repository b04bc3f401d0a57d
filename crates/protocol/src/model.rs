//! The AWS API model (botocore `service-2.json`) as typed data.
//!
//! The vendored models under `models/` are embedded in the binary and parsed lazily, once per
//! service, on first use ([`service_model`]). Test vectors build their own small models with
//! [`ServiceModel::from_value`].

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The services whose models are vendored, with their embedded `service-2.json`.
pub const SERVICES: &[(&str, &str)] = &[
    (
        "autoscaling",
        include_str!("../../../models/autoscaling/service-2.json"),
    ),
    (
        "batch",
        include_str!("../../../models/batch/service-2.json"),
    ),
    (
        "cloudwatch",
        include_str!("../../../models/cloudwatch/service-2.json"),
    ),
    ("ec2", include_str!("../../../models/ec2/service-2.json")),
    ("ecr", include_str!("../../../models/ecr/service-2.json")),
    ("ecs", include_str!("../../../models/ecs/service-2.json")),
    ("eks", include_str!("../../../models/eks/service-2.json")),
    (
        "elasticbeanstalk",
        include_str!("../../../models/elasticbeanstalk/service-2.json"),
    ),
    ("elb", include_str!("../../../models/elb/service-2.json")),
    (
        "elbv2",
        include_str!("../../../models/elbv2/service-2.json"),
    ),
    ("iam", include_str!("../../../models/iam/service-2.json")),
    (
        "lambda",
        include_str!("../../../models/lambda/service-2.json"),
    ),
    (
        "lightsail",
        include_str!("../../../models/lightsail/service-2.json"),
    ),
    ("logs", include_str!("../../../models/logs/service-2.json")),
    ("s3", include_str!("../../../models/s3/service-2.json")),
    ("sqs", include_str!("../../../models/sqs/service-2.json")),
    ("sts", include_str!("../../../models/sts/service-2.json")),
];

/// The model of one vendored service, parsed on first use and kept for the process lifetime.
pub fn service_model(service: &str) -> Option<&'static ServiceModel> {
    static CELLS: OnceLock<HashMap<&'static str, OnceLock<ServiceModel>>> = OnceLock::new();
    let cells = CELLS.get_or_init(|| {
        SERVICES
            .iter()
            .map(|(n, _)| (*n, OnceLock::new()))
            .collect()
    });
    let (name, text) = SERVICES.iter().find(|(n, _)| *n == service)?;
    let cell = cells.get(name)?;
    Some(cell.get_or_init(|| {
        // The vendored models are checked by unit tests; a broken one is a build defect.
        ServiceModel::from_json(name, text).expect("vendored model parses (checked by unit tests)")
    }))
}

/// Error loading a model.
#[derive(Debug, thiserror::Error)]
#[error("invalid model for {service}: {source}")]
pub struct ModelError {
    service: String,
    source: serde_json::Error,
}

/// A whole service model.
#[derive(Debug, Clone)]
pub struct ServiceModel {
    /// ferrocloud's name for the service (`ec2`, `sqs`, ...): the models/ directory name.
    pub name: String,
    pub metadata: Metadata,
    pub operations: IndexMap<String, Operation>,
    /// Looked up for every value the protocol layer reads or writes: a fast hasher.
    pub shapes: rustc_hash::FxHashMap<String, Shape>,
}

#[derive(Debug, Deserialize)]
struct RawModel {
    metadata: Metadata,
    #[serde(default)]
    operations: IndexMap<String, Operation>,
    #[serde(default)]
    shapes: rustc_hash::FxHashMap<String, Shape>,
}

impl ServiceModel {
    /// Parse a `service-2.json` text.
    pub fn from_json(name: &str, text: &str) -> Result<Self, ModelError> {
        let raw: RawModel = serde_json::from_str(text).map_err(|source| ModelError {
            service: name.to_string(),
            source,
        })?;
        Ok(Self::from_raw(name, raw))
    }

    /// Build from an already parsed JSON value with `metadata`, `operations`, `shapes`.
    pub fn from_value(name: &str, value: Value) -> Result<Self, ModelError> {
        let raw: RawModel = serde_json::from_value(value).map_err(|source| ModelError {
            service: name.to_string(),
            source,
        })?;
        Ok(Self::from_raw(name, raw))
    }

    fn from_raw(name: &str, raw: RawModel) -> Self {
        let mut operations = raw.operations;
        for (k, op) in operations.iter_mut() {
            if op.name.is_empty() {
                op.name = k.clone();
            }
        }
        ServiceModel {
            name: name.to_string(),
            metadata: raw.metadata,
            operations,
            shapes: raw.shapes,
        }
    }

    /// Look up a shape by name.
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// Look up an operation by its exact name.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// The error shape whose wire code (its `error.code` trait, else its name) is `code`, or
    /// whose name is `code`.
    pub fn error_shape_by_code(&self, code: &str) -> Option<(&str, &Shape)> {
        self.shapes
            .iter()
            .find(|(n, s)| {
                s.exception
                    && (n.as_str() == code
                        || s.error.as_ref().and_then(|e| e.code.as_deref()) == Some(code))
            })
            .map(|(n, s)| (n.as_str(), s))
    }
}

/// `metadata` of a model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub protocols: Vec<String>,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub json_version: Option<String>,
    #[serde(default)]
    pub target_prefix: Option<String>,
    #[serde(default)]
    pub signing_name: Option<String>,
    #[serde(default)]
    pub endpoint_prefix: Option<String>,
    #[serde(default)]
    pub service_id: Option<String>,
    #[serde(default)]
    pub service_full_name: Option<String>,
    /// Present (as `{}`) on services that keep awsQuery error codes over JSON/CBOR.
    #[serde(default)]
    pub aws_query_compatible: Option<Value>,
    #[serde(default)]
    pub xml_namespace: Option<Value>,
    #[serde(default)]
    pub global_endpoint: Option<String>,
    #[serde(default)]
    pub target_prefix_cbor: Option<String>,
}

impl Metadata {
    pub fn is_query_compatible(&self) -> bool {
        self.aws_query_compatible.is_some()
    }

    /// The XML namespace URI, whether given as a string or `{"uri": ...}`.
    pub fn xml_namespace_uri(&self) -> Option<&str> {
        match self.xml_namespace.as_ref()? {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("uri")?.as_str(),
            _ => None,
        }
    }
}

/// One operation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub http: Http,
    #[serde(default)]
    pub input: Option<ShapeRef>,
    #[serde(default)]
    pub output: Option<ShapeRef>,
    #[serde(default)]
    pub errors: Vec<ShapeRef>,
    #[serde(default)]
    pub endpoint: Option<Value>,
    #[serde(default)]
    pub http_checksum: Option<Value>,
}

/// `http` trait of an operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_uri")]
    pub request_uri: String,
    #[serde(default)]
    pub response_code: Option<u16>,
}

fn default_method() -> String {
    "POST".to_string()
}
fn default_uri() -> String {
    "/".to_string()
}

impl Default for Http {
    fn default() -> Self {
        Http {
            method: default_method(),
            request_uri: default_uri(),
            response_code: None,
        }
    }
}

/// A reference to a shape, with the traits that may sit on the reference (members, list
/// members, map keys/values, operation input/output).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeRef {
    pub shape: String,
    /// `header`, `headers`, `querystring`, `uri`, `statusCode` (REST protocols).
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub location_name: Option<String>,
    #[serde(default)]
    pub query_name: Option<String>,
    #[serde(default)]
    pub flattened: Option<bool>,
    #[serde(default)]
    pub xml_attribute: Option<bool>,
    #[serde(default)]
    pub xml_namespace: Option<Value>,
    #[serde(default)]
    pub timestamp_format: Option<String>,
    #[serde(default, alias = "jsonvalue")]
    pub json_value: Option<bool>,
    #[serde(default)]
    pub idempotency_token: Option<bool>,
    #[serde(default)]
    pub host_label: Option<bool>,
    #[serde(default)]
    pub streaming: Option<bool>,
    #[serde(default)]
    pub event_payload: Option<bool>,
    #[serde(default)]
    pub result_wrapper: Option<String>,
    #[serde(default)]
    pub deprecated: Option<bool>,
    #[serde(default)]
    pub box_: Option<bool>,
}

/// The `error` trait of an exception shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorTrait {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub http_status_code: Option<u16>,
    #[serde(default)]
    pub sender_fault: Option<bool>,
}

/// A shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    /// `structure`, `list`, `map`, `string`, `integer`, `long`, `float`, `double`, `boolean`,
    /// `timestamp`, `blob`, `byte`, `short`, `bigdecimal`, `biginteger`, `document`.
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub members: IndexMap<String, ShapeRef>,
    #[serde(default)]
    pub required: Vec<String>,
    /// List member.
    #[serde(default)]
    pub member: Option<Box<ShapeRef>>,
    /// Map key and value.
    #[serde(default)]
    pub key: Option<Box<ShapeRef>>,
    #[serde(default)]
    pub value: Option<Box<ShapeRef>>,
    #[serde(default)]
    pub flattened: Option<bool>,
    #[serde(default)]
    pub location_name: Option<String>,
    #[serde(default)]
    pub timestamp_format: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub streaming: Option<bool>,
    #[serde(default, alias = "eventstream")]
    pub event_stream: Option<bool>,
    #[serde(default)]
    pub exception: bool,
    #[serde(default)]
    pub fault: Option<bool>,
    #[serde(default)]
    pub error: Option<ErrorTrait>,
    #[serde(default, rename = "enum")]
    pub enum_: Option<Vec<String>>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub xml_namespace: Option<Value>,
    #[serde(default)]
    pub union: Option<bool>,
    #[serde(default)]
    pub document: Option<bool>,
    #[serde(default)]
    pub sensitive: Option<bool>,
    #[serde(default, alias = "jsonvalue")]
    pub json_value: Option<bool>,
    #[serde(default)]
    pub event: Option<bool>,
}

impl Shape {
    pub fn is_structure(&self) -> bool {
        self.type_ == "structure"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_model_parses() {
        for (name, _) in SERVICES {
            let m = service_model(name).expect("known service");
            assert!(!m.operations.is_empty(), "{name} has operations");
            for op in m.operations.values() {
                for r in op
                    .input
                    .iter()
                    .chain(op.output.iter())
                    .chain(op.errors.iter())
                {
                    assert!(
                        m.shape(&r.shape).is_some(),
                        "{name}:{} refers to {}",
                        op.name,
                        r.shape
                    );
                }
            }
        }
    }
}
