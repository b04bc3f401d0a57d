//! Server side request parsing: which protocol and operation a request uses, and the
//! operation's input as a value (see [`crate::value`]).
//!
//! One submodule per wire format: [`query`] (awsQuery and ec2Query form parameters), [`json`]
//! (JSON documents, shared by awsJson and rest-json), [`xml`] (rest-xml documents), [`cbor`]
//! (smithy-rpc-v2-cbor) and [`rest`] (URI templates and HTTP bindings of the REST protocols).
//! Every function here is total: any byte sequence yields a value or an [`ApiError`], never a
//! panic, whatever the model.

mod cbor;
mod json;
mod query;
mod rest;
mod xml;

use crate::model::Shape;
use crate::value::{epoch_value, parse_timestamp};

use crate::{ApiError, HttpRequest, Operation, Protocol, ServiceModel, ShapeRef};
use base64::Engine;
use serde_json::{Map, Value};

/// Deepest nesting any parser follows; deeper input is rejected (or ignored), never recursed.
pub(crate) const MAX_DEPTH: usize = 64;

/// Which of the model's protocols this request speaks (a service such as CloudWatch or SQS
/// accepts several: CBOR, JSON and query).
pub fn detect_protocol(model: &ServiceModel, req: &HttpRequest) -> Protocol {
    let default = Protocol::from_name(&model.metadata.protocol).unwrap_or(Protocol::Query);
    let supports = |p: Protocol| {
        default == p
            || model
                .metadata
                .protocols
                .iter()
                .any(|n| Protocol::from_name(n) == Some(p))
    };
    let content_type = req
        .header("content-type")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let cbor = req
        .header("smithy-protocol")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("rpc-v2-cbor"))
        || content_type.starts_with("application/cbor");
    if cbor && supports(Protocol::RpcV2Cbor) {
        return Protocol::RpcV2Cbor;
    }
    let json =
        req.header("x-amz-target").is_some() || content_type.starts_with("application/x-amz-json");
    if json && supports(Protocol::Json) {
        return Protocol::Json;
    }
    if matches!(default, Protocol::RestJson | Protocol::RestXml) {
        return default;
    }
    let form = content_type.starts_with("application/x-www-form-urlencoded")
        || req.body.starts_with(b"Action=")
        || req
            .query
            .split('&')
            .any(|p| p.starts_with("Action=") || p == "Action");
    if form {
        if default == Protocol::Ec2 || supports(Protocol::Ec2) {
            return Protocol::Ec2;
        }
        if supports(Protocol::Query) || model.metadata.is_query_compatible() {
            return Protocol::Query;
        }
    }
    default
}

/// The operation a request invokes: by `X-Amz-Target` (json), `Action` (query/ec2), the
/// `/service/.../operation/Name` path (rpc-v2-cbor) or method + `requestUri` (rest).
// `ApiError` is the one AWS-visible error type; boxing it here would only move the cost.
#[allow(clippy::result_large_err)]
pub fn resolve_operation<'m>(
    model: &'m ServiceModel,
    protocol: Protocol,
    req: &HttpRequest,
) -> Result<&'m Operation, ApiError> {
    match protocol {
        Protocol::Query | Protocol::Ec2 => {
            let params = query::request_params(req);
            let action = params
                .iter()
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.as_str());
            match action {
                None | Some("") => Err(ApiError::client(
                    "MissingAction",
                    "The request must contain the parameter Action",
                )),
                Some(name) => model.operation(name).ok_or_else(|| {
                    ApiError::client(
                        "InvalidAction",
                        format!("The action {name} is not valid for this web service."),
                    )
                }),
            }
        }
        Protocol::Json => {
            let target = req.header("x-amz-target").unwrap_or("").trim();
            if target.is_empty() {
                return Err(unknown_operation(400, "missing X-Amz-Target header"));
            }
            let name = target.rsplit_once('.').map_or(target, |(_, op)| op);
            model
                .operation(name)
                .ok_or_else(|| unknown_operation(400, &format!("unknown operation {target}")))
        }
        Protocol::RpcV2Cbor => {
            let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
            let n = segs.len();
            if n >= 4 && segs[n - 4] == "service" && segs[n - 2] == "operation" {
                let name = crate::http::percent_decode(segs[n - 1]);
                model
                    .operation(&name)
                    .ok_or_else(|| unknown_operation(400, &format!("unknown operation {name}")))
            } else {
                Err(unknown_operation(
                    400,
                    "expected a path /service/<ServiceName>/operation/<Operation>",
                ))
            }
        }
        Protocol::RestJson | Protocol::RestXml => rest::resolve(model, req),
    }
}

/// Parse the operation's input from the request.
#[allow(clippy::result_large_err)]
pub fn parse_request(
    model: &ServiceModel,
    protocol: Protocol,
    op: &Operation,
    req: &HttpRequest,
) -> Result<Value, ApiError> {
    let Some(input) = op.input.as_ref() else {
        return Ok(Value::Object(Map::new()));
    };
    let parsed = match protocol {
        Protocol::Query => query::parse(model, input, req, false),
        Protocol::Ec2 => query::parse(model, input, req, true),
        Protocol::Json => json::parse_body(model, input, &req.body),
        Protocol::RpcV2Cbor => cbor::parse_body(model, input, &req.body),
        Protocol::RestJson | Protocol::RestXml => rest::parse(model, protocol, op, input, req),
    };
    let value = parsed.map_err(|f| fault_error(model, protocol, f))?;
    let mut missing = Vec::new();
    let mut path = Vec::new();
    if let Some(shape) = model.shape(&input.shape) {
        check_required(model, shape, &value, &mut path, &mut missing, 0);
    }
    if missing.is_empty() {
        Ok(value)
    } else {
        Err(missing_error(model, &missing))
    }
}

/// The error code a service uses for a missing required parameter (and, except on EC2 and
/// SQS, for any other invalid parameter).
pub fn validation_code(model: &ServiceModel) -> &'static str {
    match model.name.as_str() {
        "ec2" | "sqs" => "MissingParameter",
        "logs" => "InvalidParameterException",
        "lambda" => "InvalidParameterValueException",
        "s3" => "InvalidRequest",
        // CloudWatch models these as error shapes (wire codes MissingParameter and
        // InvalidParameterValue); `ApiError::code` carries the shape name.
        "cloudwatch" => "MissingRequiredParameterException",
        _ if model.metadata.protocol == "query" => "ValidationError",
        _ => "ValidationException",
    }
}

/// The error code a service uses for a parameter of the wrong type.
pub fn invalid_value_code(model: &ServiceModel) -> &'static str {
    match model.name.as_str() {
        "ec2" | "sqs" => "InvalidParameterValue",
        "cloudwatch" => "InvalidParameterValueException",
        _ => validation_code(model),
    }
}

fn unknown_operation(status: u16, message: &str) -> ApiError {
    ApiError::new(status, "UnknownOperationException", message)
}

/// One step of the path to a value inside the input, for error messages.
#[derive(Debug, Clone)]
pub(crate) enum Seg {
    Member(String),
    Index(usize),
    Key(String),
}

/// Why a request could not be turned into a value.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The body (or a parameter) cannot be read at all.
    Malformed(String),
    /// A value of the wrong type; `path` is innermost first.
    Invalid {
        path: Vec<Seg>,
        value: String,
        expected: &'static str,
    },
}

impl Fault {
    pub(crate) fn invalid(value: impl Into<String>, expected: &'static str) -> Fault {
        let mut value: String = value.into();
        if value.len() > 256 {
            let mut cut = 256;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push_str("...");
        }
        Fault::Invalid {
            path: Vec::new(),
            value,
            expected,
        }
    }

    /// Add the step that leads to the faulty value (called while unwinding).
    pub(crate) fn at(mut self, seg: Seg) -> Fault {
        if let Fault::Invalid { path, .. } = &mut self {
            path.push(seg);
        }
        self
    }

    pub(crate) fn too_deep() -> Fault {
        Fault::Malformed(format!("input nested deeper than {MAX_DEPTH} levels"))
    }
}

pub(crate) type Parsed<T> = Result<T, Fault>;

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `roleName`, `logEvents.1.member.message`: how AWS names a value in validation messages.
fn aws_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for s in segs {
        let part = match s {
            Seg::Member(m) => lower_first(m),
            Seg::Index(i) => format!("{}.member", i + 1),
            Seg::Key(k) => k.clone(),
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&part);
    }
    out
}

/// `TagSpecification.1.Tag`: how query services name a parameter.
fn param_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for s in segs {
        let part = match s {
            Seg::Member(m) => m.clone(),
            Seg::Index(i) => (i + 1).to_string(),
            Seg::Key(k) => k.clone(),
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&part);
    }
    out
}

fn uses_parameter_messages(model: &ServiceModel) -> bool {
    matches!(model.name.as_str(), "ec2" | "sqs")
}

fn fault_error(model: &ServiceModel, protocol: Protocol, fault: Fault) -> ApiError {
    match fault {
        Fault::Malformed(message) => match protocol {
            Protocol::RestXml => ApiError::client(
                "MalformedXML",
                format!(
                    "The XML you provided was not well-formed or did not validate against our \
                     published schema: {message}"
                ),
            ),
            Protocol::Query | Protocol::Ec2 => ApiError::client(invalid_value_code(model), message),
            _ => ApiError::malformed(message),
        },
        Fault::Invalid {
            mut path,
            value,
            expected,
        } => {
            path.reverse();
            let code = invalid_value_code(model);
            if uses_parameter_messages(model) {
                ApiError::client(
                    code,
                    format!(
                        "Value ({value}) for parameter {} is invalid. Expected {expected}.",
                        param_path(&path)
                    ),
                )
            } else {
                ApiError::client(
                    code,
                    format!(
                        "1 validation error detected: Value '{value}' at '{}' failed to satisfy \
                         constraint: Member must be {expected}",
                        aws_path(&path)
                    ),
                )
            }
        }
    }
}

fn missing_error(model: &ServiceModel, missing: &[Vec<Seg>]) -> ApiError {
    let code = validation_code(model);
    if uses_parameter_messages(model) {
        return ApiError::missing(code, &param_path(&missing[0]));
    }
    let n = missing.len();
    let parts: Vec<String> = missing
        .iter()
        .map(|p| {
            format!(
                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                aws_path(p)
            )
        })
        .collect();
    let plural = if n == 1 { "error" } else { "errors" };
    ApiError::client(
        code,
        format!("{n} validation {plural} detected: {}", parts.join("; ")),
    )
}

/// Collect the paths of required members that are absent, descending into present values.
fn check_required(
    model: &ServiceModel,
    shape: &Shape,
    value: &Value,
    path: &mut Vec<Seg>,
    missing: &mut Vec<Vec<Seg>>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match (shape.type_.as_str(), value) {
        ("structure", Value::Object(obj)) => {
            if shape.document == Some(true) {
                return;
            }
            if shape.union != Some(true) {
                for r in &shape.required {
                    if !matches!(obj.get(r), Some(v) if !v.is_null()) {
                        path.push(Seg::Member(r.clone()));
                        missing.push(path.clone());
                        path.pop();
                    }
                }
            }
            // Only containers can miss anything; a request names few of a shape's members, so
            // walk the members present (in the model's order, as errors list them).
            let mut present: Vec<(usize, &String, &Value)> = obj
                .iter()
                .filter(|(_, v)| matches!(v, Value::Object(_) | Value::Array(_)))
                .filter_map(|(k, v)| shape.members.get_full(k).map(|(i, name, _)| (i, name, v)))
                .collect();
            present.sort_unstable_by_key(|(i, _, _)| *i);
            for (_, name, v) in present {
                let Some(s) = shape.members.get(name).and_then(|m| model.shape(&m.shape)) else {
                    continue;
                };
                path.push(Seg::Member(name.clone()));
                check_required(model, s, v, path, missing, depth + 1);
                path.pop();
            }
        }
        ("list", Value::Array(items)) => {
            if let Some(s) = shape.member.as_ref().and_then(|m| model.shape(&m.shape)) {
                let containers = items
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| matches!(v, Value::Object(_) | Value::Array(_)));
                for (i, v) in containers {
                    path.push(Seg::Index(i));
                    check_required(model, s, v, path, missing, depth + 1);
                    path.pop();
                }
            }
        }
        ("map", Value::Object(obj)) => {
            if let Some(s) = shape.value.as_ref().and_then(|m| model.shape(&m.shape)) {
                let containers = obj
                    .iter()
                    .filter(|(_, v)| matches!(v, Value::Object(_) | Value::Array(_)));
                for (k, v) in containers {
                    path.push(Seg::Key(k.clone()));
                    check_required(model, s, v, path, missing, depth + 1);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// The shape a reference points to; a dangling reference reads as a document (any value).
pub(crate) fn target<'m>(model: &'m ServiceModel, r: &ShapeRef) -> &'m Shape {
    static DOCUMENT: std::sync::OnceLock<Shape> = std::sync::OnceLock::new();
    model.shape(&r.shape).unwrap_or_else(|| {
        DOCUMENT.get_or_init(|| Shape {
            type_: "structure".to_string(),
            document: Some(true),
            ..Shape::default()
        })
    })
}

pub(crate) fn is_flattened(r: &ShapeRef, shape: &Shape) -> bool {
    r.flattened == Some(true) || shape.flattened == Some(true)
}

pub(crate) fn is_document(shape: &Shape) -> bool {
    shape.document == Some(true)
}

pub(crate) fn is_json_value(r: &ShapeRef, shape: &Shape) -> bool {
    r.json_value == Some(true) || shape.json_value == Some(true)
}

/// Standard base64 of raw bytes (the blob convention).
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode base64 leniently (standard or URL-safe alphabet, padding optional).
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(&s)
        .or_else(|_| STANDARD_NO_PAD.decode(&s))
        .or_else(|_| URL_SAFE.decode(&s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(&s))
        .ok()
}

/// A float as a value: a number, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
pub(crate) fn float_value(f: f64) -> Value {
    if f.is_nan() {
        Value::from("NaN")
    } else if f == f64::INFINITY {
        Value::from("Infinity")
    } else if f == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

fn int_range(type_: &str) -> (i64, i64) {
    match type_ {
        "byte" => (i8::MIN.into(), i8::MAX.into()),
        "short" => (i16::MIN.into(), i16::MAX.into()),
        "integer" => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

pub(crate) fn is_integer_type(type_: &str) -> bool {
    matches!(type_, "integer" | "long" | "short" | "byte")
}

/// An integer of the shape's type from an `i64`, range-checked.
pub(crate) fn int_value(type_: &str, n: i64) -> Parsed<Value> {
    let (lo, hi) = int_range(type_);
    if n < lo || n > hi {
        return Err(Fault::invalid(n.to_string(), expected_for(type_)));
    }
    Ok(Value::from(n))
}

/// What a type is called in validation messages.
pub(crate) fn expected_for(type_: &str) -> &'static str {
    match type_ {
        "integer" | "long" | "short" | "byte" | "biginteger" => "an integer",
        "float" | "double" | "bigdecimal" => "a number",
        "boolean" => "a boolean",
        "timestamp" => "a timestamp",
        "blob" => "base64 encoded binary data",
        "list" => "a list",
        "map" => "a map",
        "structure" => "a structure",
        _ => "a string",
    }
}

/// A scalar value from its text form (query parameters, headers, URI labels, XML text).
/// Strings keep their text exactly; everything else is read with surrounding space trimmed.
pub(crate) fn scalar_from_text(shape: &Shape, text: &str) -> Parsed<Value> {
    let t = text.trim();
    let ty = shape.type_.as_str();
    match ty {
        "string" | "" => Ok(Value::from(text)),
        "integer" | "long" | "short" | "byte" => match t.parse::<i64>() {
            Ok(n) => int_value(ty, n),
            Err(_) => Err(Fault::invalid(text, expected_for(ty))),
        },
        "float" | "double" => parse_float(t)
            .map(float_value)
            .ok_or_else(|| Fault::invalid(text, expected_for(ty))),
        "bigdecimal" | "biginteger" => match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(serde_json::from_str::<Value>(t)
                .ok()
                .filter(Value::is_number)
                .unwrap_or_else(|| float_value(f))),
            _ => Err(Fault::invalid(text, expected_for(ty))),
        },
        "boolean" => {
            if t.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if t.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err(Fault::invalid(text, expected_for(ty)))
            }
        }
        "timestamp" => parse_timestamp(t)
            .filter(|f| f.is_finite())
            .map(timestamp_value)
            .ok_or_else(|| Fault::invalid(text, expected_for(ty))),
        "blob" => b64_decode(t)
            .map(|bytes| Value::from(b64(&bytes)))
            .ok_or_else(|| Fault::invalid(text, expected_for(ty))),
        "structure" if is_document(shape) => {
            Ok(serde_json::from_str(t).unwrap_or_else(|_| Value::from(text)))
        }
        _ => Err(Fault::invalid(text, expected_for(ty))),
    }
}

/// A timestamp value from fractional epoch seconds, rounded to the microsecond so that a
/// decimal such as `.123` reads back as the same double a JSON parser would produce.
pub(crate) fn timestamp_value(secs: f64) -> Value {
    if secs.abs() < 1.0e11 {
        epoch_value((secs * 1.0e6).round() / 1.0e6)
    } else {
        epoch_value(secs)
    }
}

/// Floats as AWS writes them, including `NaN`, `Infinity` and `-Infinity`.
pub(crate) fn parse_float(t: &str) -> Option<f64> {
    match t {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust also accepts "inf"/"nan" spellings; AWS does not.
            if t.is_empty()
                || t.chars()
                    .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
            {
                return None;
            }
            t.parse::<f64>().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_from_text() {
        let s = |t: &str| Shape {
            type_: t.to_string(),
            ..Shape::default()
        };
        assert_eq!(
            scalar_from_text(&s("integer"), " 12 ").ok(),
            Some(Value::from(12))
        );
        assert!(scalar_from_text(&s("integer"), "99999999999").is_err());
        assert!(scalar_from_text(&s("integer"), "abc").is_err());
        assert_eq!(
            scalar_from_text(&s("double"), "NaN").ok(),
            Some(Value::from("NaN"))
        );
        assert!(scalar_from_text(&s("double"), "inf").is_err());
        assert_eq!(
            scalar_from_text(&s("boolean"), "true").ok(),
            Some(Value::Bool(true))
        );
        assert_eq!(
            scalar_from_text(&s("timestamp"), "2015-01-25T08:00:00Z").ok(),
            Some(Value::from(1422172800))
        );
        assert_eq!(
            scalar_from_text(&s("blob"), "dmFsdWU").ok(),
            Some(Value::from("dmFsdWU="))
        );
        assert_eq!(
            scalar_from_text(&s("string"), " a ").ok(),
            Some(Value::from(" a "))
        );
    }

    #[test]
    fn validation_paths() {
        let p = vec![
            Seg::Member("LogEvents".into()),
            Seg::Index(0),
            Seg::Member("Message".into()),
        ];
        assert_eq!(aws_path(&p), "logEvents.1.member.message");
        assert_eq!(param_path(&p), "LogEvents.1.Message");
    }
}
