//! Message attributes: validation as SQS does it, and the MD5 digests SQS returns
//! (`MD5OfMessageBody`, `MD5OfMessageAttributes`, `MD5OfMessageSystemAttributes`).
//!
//! The attribute digest follows the documented encoding: attributes sorted by name; for each,
//! the name, then the data type, each as a 4-byte big-endian length and its UTF-8 bytes; then
//! one transport byte (1 for string and number values, 2 for binary values); then the value as
//! a 4-byte big-endian length and its bytes (UTF-8 for strings, raw bytes for binary). The MD5
//! is taken over the concatenation and written in lowercase hex.

use base64::Engine as _;
use fc_protocol::ApiError;
use md5::{Digest, Md5};
use serde_json::Value;
use std::collections::BTreeMap;

/// Most message attributes one message may carry.
pub(crate) const MAX_ATTRIBUTES: usize = 10;

/// One attribute's value, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttrValue {
    Text(String),
    Bytes(Vec<u8>),
}

/// Lowercase hex MD5 of bytes.
pub(crate) fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn push_len_prefixed(buf: &mut Vec<u8>, data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(data);
}

/// The MD5 of attributes `(name, data type, value)` in SQS's encoding; `None` when empty.
pub(crate) fn md5_of_attributes<'a>(
    attrs: impl IntoIterator<Item = (&'a str, &'a str, &'a AttrValue)>,
) -> Option<String> {
    let mut sorted: Vec<_> = attrs.into_iter().collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut buf = Vec::new();
    for (name, data_type, value) in sorted {
        push_len_prefixed(&mut buf, name.as_bytes());
        push_len_prefixed(&mut buf, data_type.as_bytes());
        match value {
            AttrValue::Text(s) => {
                buf.push(1);
                push_len_prefixed(&mut buf, s.as_bytes());
            }
            AttrValue::Bytes(b) => {
                buf.push(2);
                push_len_prefixed(&mut buf, b);
            }
        }
    }
    Some(md5_hex(&buf))
}

/// The data type and decoded value of a model-shaped attribute value (already validated).
pub(crate) fn decode_value(v: &Value) -> Option<(String, AttrValue)> {
    let data_type = v.get("DataType")?.as_str()?.to_string();
    if data_type.starts_with("Binary") {
        let b64 = v.get("BinaryValue")?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        Some((data_type, AttrValue::Bytes(bytes)))
    } else {
        let s = v.get("StringValue")?.as_str()?.to_string();
        Some((data_type, AttrValue::Text(s)))
    }
}

/// The MD5 of model-shaped message attributes.
pub(crate) fn md5_of_value_map(map: &BTreeMap<String, Value>) -> Option<String> {
    let decoded: Vec<(String, String, AttrValue)> = map
        .iter()
        .filter_map(|(k, v)| decode_value(v).map(|(t, val)| (k.clone(), t, val)))
        .collect();
    md5_of_attributes(decoded.iter().map(|(n, t, v)| (n.as_str(), t.as_str(), v)))
}

/// Whether every character is one SQS accepts in a message:
/// `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`.
pub(crate) fn valid_chars(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    })
}

pub(crate) fn invalid_contents() -> ApiError {
    ApiError::client(
        "InvalidMessageContents",
        "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
    )
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterValue", msg)
}

fn valid_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// Validate user message attributes; returns them normalized (model shape, only the members
/// that count) and their size in bytes (names, types and values), as SQS counts it.
pub(crate) fn validate_user_attributes(
    attrs: Option<&Value>,
) -> Result<(BTreeMap<String, Value>, usize), ApiError> {
    let mut out = BTreeMap::new();
    let mut size = 0;
    let Some(map) = attrs.and_then(Value::as_object) else {
        return Ok((out, 0));
    };
    if map.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            map.len()
        )));
    }
    for (name, v) in map {
        if !valid_name(name) {
            return Err(invalid(format!(
                "Message (user) attribute name '{name}' is invalid. The attribute name can contain A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters; must not start or end with a period, contain consecutive periods, or start with 'AWS.' or 'Amazon.'; and must be at most 256 characters long."
            )));
        }
        let (value, n) = validate_one(name, v, "user")?;
        size += name.len() + n;
        out.insert(name.clone(), value);
    }
    Ok((out, size))
}

/// Validate one attribute value; returns the normalized value and the bytes of its type and
/// value.
fn validate_one(name: &str, v: &Value, kind: &str) -> Result<(Value, usize), ApiError> {
    let data_type = v
        .get("DataType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if data_type.is_empty() {
        return Err(invalid(format!(
            "The message ({kind}) attribute '{name}' must contain a non-empty attribute type."
        )));
    }
    let primary = data_type.split('.').next().unwrap_or_default();
    let custom_ok = data_type
        .split_once('.')
        .is_none_or(|(_, c)| !c.is_empty() && c.len() <= 256 && valid_chars(c));
    if !matches!(primary, "String" | "Number" | "Binary") || !custom_ok || data_type.len() > 256 {
        return Err(invalid(format!(
            "The type of message ({kind}) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
        )));
    }
    if v.get("StringListValues")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
        || v.get("BinaryListValues")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    {
        return Err(invalid(format!(
            "Message ({kind}) attribute '{name}' uses list values, which are not supported."
        )));
    }
    if primary == "Binary" {
        let b64 = v.get("BinaryValue").and_then(Value::as_str).unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| {
                invalid(format!(
                    "Message ({kind}) attribute '{name}' has an invalid binary value."
                ))
            })?;
        if bytes.is_empty() {
            return Err(invalid(format!(
                "Message ({kind}) attribute '{name}' must contain a non-empty value of type 'Binary'."
            )));
        }
        let n = data_type.len() + bytes.len();
        return Ok((
            serde_json::json!({"DataType": data_type, "BinaryValue": b64}),
            n,
        ));
    }
    let s = v.get("StringValue").and_then(Value::as_str).unwrap_or("");
    if s.is_empty() {
        return Err(invalid(format!(
            "Message ({kind}) attribute '{name}' must contain a non-empty value of type '{primary}'."
        )));
    }
    if !valid_chars(s) {
        return Err(invalid_contents());
    }
    if primary == "Number" && !is_number(s) {
        return Err(invalid(format!(
            "Can't cast the value of message ({kind}) attribute '{name}' to a number."
        )));
    }
    let n = data_type.len() + s.len();
    Ok((
        serde_json::json!({"DataType": data_type, "StringValue": s}),
        n,
    ))
}

/// SQS numbers: up to 38 digits of precision, from -10^128 to 10^126.
fn is_number(s: &str) -> bool {
    let t = s.trim();
    if t.is_empty() || t.parse::<f64>().map_or(true, |f| !f.is_finite()) {
        return false;
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    digits <= 38 || t.contains(['e', 'E'])
}

/// Validate message system attributes (only `AWSTraceHeader`, a string); returns the trace
/// header and the bytes it counts.
pub(crate) fn validate_system_attributes(
    attrs: Option<&Value>,
) -> Result<(Option<String>, usize), ApiError> {
    let Some(map) = attrs.and_then(Value::as_object) else {
        return Ok((None, 0));
    };
    let mut trace = None;
    let mut size = 0;
    for (name, v) in map {
        if name != "AWSTraceHeader" {
            return Err(invalid(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        let (value, n) = validate_one(name, v, "system")?;
        if value.get("DataType").and_then(Value::as_str) != Some("String") {
            return Err(invalid(format!(
                "The message system attribute '{name}' must be of type 'String'."
            )));
        }
        size += name.len() + n;
        trace = value
            .get("StringValue")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok((trace, size))
}

/// The MD5 of the `AWSTraceHeader` system attribute.
pub(crate) fn md5_of_trace(trace: &str) -> Option<String> {
    let v = AttrValue::Text(trace.to_string());
    md5_of_attributes([("AWSTraceHeader", "String", &v)])
}
