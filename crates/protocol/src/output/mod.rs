//! Server side response and error serialization, and (for conformance tests and internal
//! clients) the matching client side response parsing.
//!
//! Every serializer reads values shaped as described in [`crate::value`] and never panics: a
//! value of the wrong type for its shape is coerced where the intent is clear (a number where
//! a string is expected) and otherwise left out of the response.
//!
//! Submodules: `xml` (query, ec2, rest-xml bodies), `json` (json and rest-json bodies), `cbor`
//! (rpc-v2-cbor bodies), `rest` (headers, status code and payload of the REST protocols),
//! `error` (error bodies for every protocol), `sqs_query` (SQS's query names) and [`client`] (reading responses back the way
//! botocore does).

mod cbor;
pub mod client;
mod error;
mod json;
mod rest;
pub(crate) mod sqs_query;
mod xml;

pub use client::{parse_response, ClientError};

use crate::model::{Shape, ShapeRef};
use crate::value::{format_iso8601, format_rfc822, parse_timestamp, value_to_epoch};
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
    match protocol {
        Protocol::Query => xml::query_response(model, op, output, ctx),
        Protocol::Ec2 => xml::ec2_response(model, op, output, ctx),
        Protocol::Json => json::json_response(model, op, output, ctx),
        Protocol::RestJson | Protocol::RestXml => {
            rest::rest_response(model, protocol, op, output, ctx)
        }
        Protocol::RpcV2Cbor => cbor::cbor_response(model, op, output, ctx),
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
    let _ = op;
    error::serialize(model, protocol, err, ctx)
}

/// The `Content-Type` of JSON 1.0/1.1 responses, from `metadata.jsonVersion`.
pub(crate) fn json_content_type(model: &ServiceModel) -> String {
    let version = model.metadata.json_version.as_deref().unwrap_or("1.0");
    format!("application/x-amz-json-{version}")
}

/// The XML namespace of query and ec2 responses: `metadata.xmlNamespace`, else the AWS
/// convention `https://<endpointPrefix>.amazonaws.com/doc/<apiVersion>/` (`http://` for ec2).
pub(crate) fn xml_namespace(model: &ServiceModel, scheme: &str) -> String {
    // SQS's only XML protocol is query, whose namespace its JSON-native model lost.
    if let Some(names) = sqs_query::names(model, Protocol::Query) {
        return names.namespace.to_string();
    }
    if let Some(uri) = model.metadata.xml_namespace_uri() {
        // AWS writes these namespaces with a trailing slash even where a model omits it
        // (ec2: `http://ec2.amazonaws.com/doc/2016-11-15/`).
        if uri.ends_with('/') || !uri.contains(".amazonaws.com/doc/") {
            return uri.to_string();
        }
        return format!("{uri}/");
    }
    let prefix = model
        .metadata
        .endpoint_prefix
        .as_deref()
        .unwrap_or(model.name.as_str());
    format!(
        "{scheme}://{prefix}.amazonaws.com/doc/{}/",
        model.metadata.api_version
    )
}

/// Whether a member is carried by the HTTP response itself (a header, the prefixed headers or
/// the status code) rather than by the body. `uri` and `querystring` members mean nothing in
/// a response and stay in the body.
pub(crate) fn http_bound(r: &ShapeRef) -> bool {
    matches!(
        r.location.as_deref(),
        Some("header") | Some("headers") | Some("statusCode")
    )
}

/// Where a timestamp goes, which decides its default format.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsPlace {
    /// XML bodies: ISO 8601.
    Xml,
    /// JSON bodies: epoch seconds.
    Json,
    /// HTTP headers: RFC 822.
    Header,
}

/// The timestamp format that applies to a member: the reference's trait, else the shape's,
/// else the default of the place it is written to.
pub(crate) fn timestamp_format(r: Option<&ShapeRef>, shape: &Shape, place: TsPlace) -> String {
    if let Some(f) = r.and_then(|r| r.timestamp_format.as_deref()) {
        return f.to_string();
    }
    if let Some(f) = shape.timestamp_format.as_deref() {
        return f.to_string();
    }
    match place {
        TsPlace::Xml => "iso8601",
        TsPlace::Json => "unixTimestamp",
        TsPlace::Header => "rfc822",
    }
    .to_string()
}

/// A timestamp value as epoch seconds: a number, or a string in any form clients send.
pub(crate) fn epoch_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(_) => value_to_epoch(v),
        Value::String(s) => parse_timestamp(s),
        _ => None,
    }
}

/// Format epoch seconds as text in a named timestamp format.
pub(crate) fn format_timestamp_text(secs: f64, format: &str) -> String {
    match format {
        "rfc822" => format_rfc822(secs),
        "unixTimestamp" => epoch_text(secs),
        _ => format_iso8601(secs),
    }
}

/// Epoch seconds as text: an integer when whole, else with up to millisecond precision.
pub(crate) fn epoch_text(secs: f64) -> String {
    if secs.fract() == 0.0 && secs.abs() < 9.0e15 {
        format!("{}", secs as i64)
    } else {
        let rounded = (secs * 1000.0).round() / 1000.0;
        format!("{rounded}")
    }
}

/// Whether a shape type is one of the integer types.
pub(crate) fn is_integer_type(t: &str) -> bool {
    matches!(t, "integer" | "long" | "short" | "byte" | "biginteger")
}

/// Whether a shape type is one of the floating point types.
pub(crate) fn is_float_type(t: &str) -> bool {
    matches!(t, "float" | "double" | "bigdecimal")
}

/// The special float values that travel as strings.
pub(crate) fn special_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The text of a scalar (non timestamp, non blob) value for a shape, coercing where the
/// intent is clear; `None` when the value cannot stand for the shape.
pub(crate) fn scalar_text(shape_type: &str, v: &Value) -> Option<String> {
    match shape_type {
        "boolean" => match v {
            Value::Bool(b) => Some(b.to_string()),
            Value::String(s) if s == "true" || s == "false" => Some(s.clone()),
            _ => None,
        },
        t if is_integer_type(t) => match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(i.to_string())
                } else if let Some(u) = n.as_u64() {
                    Some(u.to_string())
                } else {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| format!("{}", f.trunc() as i64))
                }
            }
            Value::String(s) => s.trim().parse::<i64>().ok().map(|i| i.to_string()),
            _ => None,
        },
        t if is_float_type(t) => match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if special_float(s).is_some() => Some(s.clone()),
            Value::String(s) => s.trim().parse::<f64>().ok().map(|_| s.trim().to_string()),
            _ => None,
        },
        _ => match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        },
    }
}

/// awsQuery error codes of query-compatible services whose vendored model lost the
/// `error.code` trait (SQS's JSON model carries none): `(endpointPrefix, shape, code)`, as
/// documented in the service's API reference and sent in `x-amzn-query-error`.
const QUERY_CODES: &[(&str, &str, &str)] = &[
    (
        "sqs",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    ),
    (
        "sqs",
        "QueueDeletedRecently",
        "AWS.SimpleQueueService.QueueDeletedRecently",
    ),
    ("sqs", "QueueNameExists", "QueueAlreadyExists"),
    (
        "sqs",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    ),
    (
        "sqs",
        "PurgeQueueInProgress",
        "AWS.SimpleQueueService.PurgeQueueInProgress",
    ),
    (
        "sqs",
        "BatchEntryIdsNotDistinct",
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    ),
    (
        "sqs",
        "BatchRequestTooLong",
        "AWS.SimpleQueueService.BatchRequestTooLong",
    ),
    (
        "sqs",
        "EmptyBatchRequest",
        "AWS.SimpleQueueService.EmptyBatchRequest",
    ),
    (
        "sqs",
        "InvalidBatchEntryId",
        "AWS.SimpleQueueService.InvalidBatchEntryId",
    ),
    (
        "sqs",
        "TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    ),
    (
        "sqs",
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
    ),
];

fn table_code(model: &ServiceModel, shape_name: &str) -> Option<&'static str> {
    let prefix = model.metadata.endpoint_prefix.as_deref()?;
    QUERY_CODES
        .iter()
        .find(|(p, s, _)| *p == prefix && *s == shape_name)
        .map(|(_, _, c)| *c)
}

/// An error shape for an API error code: the exception shape named `code`, or whose awsQuery
/// code (`error.code` trait) is `code`, with its name.
pub(crate) fn error_shape<'m>(model: &'m ServiceModel, code: &str) -> Option<(&'m str, &'m Shape)> {
    if let Some((name, shape)) = model.shapes.get_key_value(code) {
        if shape.exception {
            return Some((name.as_str(), shape));
        }
    }
    if let Some(found) = model.error_shape_by_code(code) {
        return Some(found);
    }
    let prefix = model.metadata.endpoint_prefix.as_deref()?;
    let (_, name, _) = QUERY_CODES
        .iter()
        .find(|(p, _, c)| *p == prefix && *c == code)?;
    model
        .shapes
        .get_key_value(*name)
        .filter(|(_, s)| s.exception)
        .map(|(n, s)| (n.as_str(), s))
}

/// The awsQuery wire code of an error shape: its `error.code` trait, else the documented code
/// for models that lost the trait, else its name.
pub(crate) fn query_code(model: &ServiceModel, name: &str, shape: &Shape) -> String {
    shape
        .error
        .as_ref()
        .and_then(|e| e.code.clone())
        .or_else(|| table_code(model, name).map(str::to_string))
        .unwrap_or_else(|| name.to_string())
}

/// The member of an error shape that carries the message (`message`, `Message`, ...).
pub(crate) fn message_member(shape: Option<&Shape>) -> Option<(&str, &ShapeRef)> {
    shape?
        .members
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("message") || n.as_str() == "errorMessage")
        .map(|(n, r)| (n.as_str(), r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_coercion() {
        assert_eq!(scalar_text("integer", &Value::from(3.0)), Some("3".into()));
        assert_eq!(
            scalar_text("integer", &Value::from("12")),
            Some("12".into())
        );
        assert_eq!(scalar_text("integer", &Value::from("x")), None);
        assert_eq!(scalar_text("boolean", &Value::from(1)), None);
        assert_eq!(
            scalar_text("double", &Value::from("NaN")),
            Some("NaN".into())
        );
        assert_eq!(scalar_text("string", &Value::from(5)), Some("5".into()));
        assert_eq!(scalar_text("string", &Value::Null), None);
        assert_eq!(epoch_text(1.5), "1.5");
        assert_eq!(epoch_text(2.0), "2");
    }
}
