//! IAM helpers: input accessors, AWS error shapes, name/path validation, `Marker` pagination,
//! policy-document encoding, tags.

use crate::common::store_error;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

// ---- errors ---------------------------------------------------------------------------------

pub fn no_such_entity(message: impl Into<String>) -> ApiError {
    ApiError::new(404, "NoSuchEntity", message)
}

pub fn already_exists(message: impl Into<String>) -> ApiError {
    ApiError::new(409, "EntityAlreadyExists", message)
}

pub fn delete_conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(409, "DeleteConflict", message)
}

pub fn limit_exceeded(message: impl Into<String>) -> ApiError {
    ApiError::new(409, "LimitExceeded", message)
}

pub fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidInput", message)
}

pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "ValidationError", message)
}

pub fn malformed_policy(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "MalformedPolicyDocument", message)
}

/// `roleName` for `RoleName`: how AWS names members in validation messages.
fn camel(member: &str) -> String {
    let mut c = member.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

// ---- input ----------------------------------------------------------------------------------

/// A required string member.
pub fn req_str<'a>(input: &'a Value, member: &str) -> Result<&'a str, ApiError> {
    match input.get(member) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            camel(member)
        ))),
        Some(_) => Err(validation(format!("Invalid type for parameter {member}"))),
    }
}

/// An optional string member.
pub fn opt_str<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

/// An optional integer member (numbers, or digits in a string).
pub fn opt_i64(input: &Value, member: &str) -> Result<Option<i64>, ApiError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| validation(format!("Invalid value for parameter {member}"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| validation(format!("Invalid value for parameter {member}: {s}"))),
        Some(_) => Err(validation(format!("Invalid type for parameter {member}"))),
    }
}

/// An optional boolean member.
pub fn opt_bool(input: &Value, member: &str) -> Option<bool> {
    match input.get(member) {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => Some(s.eq_ignore_ascii_case("true")),
        _ => None,
    }
}

/// A list of strings member.
pub fn str_list(input: &Value, member: &str) -> Vec<String> {
    match input.get(member) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

// ---- validation -----------------------------------------------------------------------------

/// IAM entity names: `[\w+=,.@-]+`, 1..=`max` characters.
pub fn check_name(value: &str, member: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n == 0 {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must have length greater than or equal to 1",
            camel(member)
        )));
    }
    if n > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
            camel(member)
        )));
    }
    if !value
        .chars()
        .all(|c| c.is_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+",
            camel(member)
        )));
    }
    Ok(())
}

/// A `Path` member (default `/`): begins and ends with `/`, printable ASCII, at most 512.
pub fn path_of(input: &Value, member: &str) -> Result<String, ApiError> {
    let Some(p) = opt_str(input, member) else {
        return Ok("/".to_string());
    };
    check_path(p, member)?;
    Ok(p.to_string())
}

pub fn check_path(p: &str, member: &str) -> Result<(), ApiError> {
    let ok = p.len() <= 512
        && p.starts_with('/')
        && p.ends_with('/')
        && p.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !p.contains("//");
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "The specified value for {} is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.",
            camel(member)
        )))
    }
}

/// `PathPrefix` filter (default `/`).
pub fn path_prefix(input: &Value) -> Result<String, ApiError> {
    match opt_str(input, "PathPrefix") {
        None => Ok("/".to_string()),
        Some(p) if p.starts_with('/') && p.len() <= 512 => Ok(p.to_string()),
        Some(_) => Err(validation(
            "The specified value for pathPrefix is invalid. It must begin with / and contain only alphanumeric characters and/or / characters.",
        )),
    }
}

// ---- time, ids ------------------------------------------------------------------------------

pub fn now() -> f64 {
    fc_protocol::value::now_secs().floor()
}

pub fn ts(secs: f64) -> Value {
    fc_protocol::value::epoch_value(secs)
}

/// ARN of an IAM entity: `arn:aws:iam::<acct>:<kind><path><name>`.
pub fn entity_arn(account: &str, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:{kind}{path}{name}")
}

// ---- policy documents -----------------------------------------------------------------------

const URL_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Policy documents as IAM returns them: percent-encoded (clients decode them).
pub fn encode_doc(doc: &str) -> String {
    utf8_percent_encode(doc, URL_UNRESERVED).to_string()
}

// ---- tags -----------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// Read and validate a `Tags` member.
pub fn tags_of(input: &Value) -> Result<Vec<Tag>, ApiError> {
    let list = fc_types::tags::from_list(input.get("Tags"));
    check_tags(&list)?;
    let mut out: Vec<Tag> = Vec::new();
    for (k, v) in list {
        if out.iter().any(|t| t.key == k) {
            return Err(invalid_input(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
        out.push(Tag { key: k, value: v });
    }
    Ok(out)
}

fn check_tags(list: &[(String, String)]) -> Result<(), ApiError> {
    if list.len() > 50 {
        return Err(limit_exceeded(
            "The number of tags has reached the maximum limit.",
        ));
    }
    fc_types::tags::validate_all(list).map_err(|e| invalid_input(e.to_string()))
}

/// Merge `new` into `tags` (TagRole/TagUser...).
pub fn merge_tags(tags: &mut Vec<Tag>, new: Vec<Tag>) -> Result<(), ApiError> {
    for t in new {
        match tags.iter_mut().find(|x| x.key == t.key) {
            Some(x) => x.value = t.value,
            None => tags.push(t),
        }
    }
    if tags.len() > 50 {
        return Err(limit_exceeded(
            "The number of tags has reached the maximum limit.",
        ));
    }
    Ok(())
}

pub fn remove_tags(tags: &mut Vec<Tag>, input: &Value) {
    let keys = str_list(input, "TagKeys");
    tags.retain(|t| !keys.contains(&t.key));
}

pub fn tags_value(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

/// `List*Tags` output.
pub fn list_tags_output(op: &str, tags: &[Tag], input: &Value) -> Result<Value, ApiError> {
    let items = tags
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("{i:05}"), json!({"Key": t.key, "Value": t.value})))
        .collect();
    let (page, marker) = paginate(op, items, input)?;
    Ok(list_output("Tags", page, marker))
}

// ---- store ----------------------------------------------------------------------------------

/// Every record of `table`, in key order.
pub fn scan_all<T: DeserializeOwned>(
    store: &dyn Store,
    scope: &Scope,
    table: &str,
) -> Result<Vec<(String, T)>, ApiError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (items, more) = store
            .scan_json::<T>(scope, table, "", after.as_deref(), 500)
            .map_err(store_error)?;
        after = items.last().map(|(k, _)| k.clone());
        out.extend(items);
        if !more || after.is_none() {
            return Ok(out);
        }
    }
}

pub fn get<T: DeserializeOwned>(
    store: &dyn Store,
    scope: &Scope,
    table: &str,
    key: &str,
) -> Result<Option<T>, ApiError> {
    store.get_json(scope, table, key).map_err(store_error)
}

pub fn put<T: Serialize>(
    store: &dyn Store,
    scope: &Scope,
    table: &str,
    key: &str,
    value: &T,
) -> Result<(), ApiError> {
    store
        .put_json(scope, table, key, value)
        .map_err(store_error)
}

pub fn delete(store: &dyn Store, scope: &Scope, table: &str, key: &str) -> Result<(), ApiError> {
    store
        .delete(scope, table, key)
        .map(|_| ())
        .map_err(store_error)
}

// ---- pagination -----------------------------------------------------------------------------

/// `MaxItems` (default 100, 1..=1000).
pub fn max_items(input: &Value) -> Result<usize, ApiError> {
    match opt_i64(input, "MaxItems")? {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        Some(n) => Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value {}",
            if n < 1 { "greater than or equal to 1" } else { "less than or equal to 1000" }
        ))),
    }
}

/// One page of `items` (sorted by their key) after the input's `Marker`; the marker of the
/// next page if there is one.
pub fn paginate(
    op: &str,
    items: Vec<(String, Value)>,
    input: &Value,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let scope = format!("iam:{op}");
    let max = max_items(input)?;
    let after = match opt_str(input, "Marker") {
        Some(m) => {
            Some(fc_types::page::decode(&scope, m).map_err(|_| validation("Invalid Marker."))?)
        }
        None => None,
    };
    let mut rest: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(k, _)| after.as_deref().is_none_or(|a| k.as_str() > a))
        .collect();
    let more = rest.len() > max;
    rest.truncate(max);
    let marker = if more {
        rest.last().map(|(k, _)| fc_types::page::encode(&scope, k))
    } else {
        None
    };
    Ok((rest.into_iter().map(|(_, v)| v).collect(), marker))
}

/// `{<field>: [...], IsTruncated, Marker?}`.
pub fn list_output(field: &str, items: Vec<Value>, marker: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert(field.to_string(), Value::Array(items));
    m.insert("IsTruncated".into(), Value::Bool(marker.is_some()));
    if let Some(mk) = marker {
        m.insert("Marker".into(), Value::String(mk));
    }
    Value::Object(m)
}

/// The number of characters that count toward IAM's policy size quotas (whitespace excluded).
pub fn policy_size(doc: &str) -> usize {
    doc.chars().filter(|c| !c.is_whitespace()).count()
}
