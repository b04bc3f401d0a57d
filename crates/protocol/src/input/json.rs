//! JSON documents (awsJson 1.0/1.1 bodies, rest-json bodies and payloads) read into values.
//!
//! Keys are member `locationName`s (the member name when absent); unknown keys are ignored
//! and `null`s dropped, as AWS does. Scalars are coerced leniently (a numeric string for a
//! number), otherwise a wrong type is an [`Fault::Invalid`].

use super::{
    b64, b64_decode, expected_for, float_value, int_value, is_document, is_integer_type,
    is_json_value, parse_float, scalar_from_text, target, timestamp_value, Fault, Parsed, Seg,
    MAX_DEPTH,
};
use crate::model::Shape;
use crate::value::parse_timestamp;
use crate::{ServiceModel, ShapeRef};
use serde_json::{Map, Value};

/// Parse a JSON body as the input structure; an empty body is an empty input.
pub(crate) fn parse_body(model: &ServiceModel, input: &ShapeRef, body: &[u8]) -> Parsed<Value> {
    let doc = match read_document(body)? {
        None => return Ok(Value::Object(Map::new())),
        Some(doc) => doc,
    };
    if !doc.is_object() {
        return Err(Fault::Malformed(
            "the request body must be a JSON object".to_string(),
        ));
    }
    Ok(convert(model, input, &doc, 0)?.unwrap_or_else(|| Value::Object(Map::new())))
}

/// Read a JSON document; `None` for an empty (or all-whitespace) body.
pub(crate) fn read_document(body: &[u8]) -> Parsed<Option<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| Fault::Malformed(format!("the request body is not valid JSON: {e}")))
}

/// The members of a structure read from a JSON object, skipping HTTP-bound members
/// (`location` set) when `body_only`.
pub(crate) fn structure_members(
    model: &ServiceModel,
    shape: &Shape,
    obj: &Map<String, Value>,
    body_only: bool,
    depth: usize,
) -> Parsed<Map<String, Value>> {
    let mut out = Map::new();
    for (name, mref) in &shape.members {
        if body_only && mref.location.is_some() {
            continue;
        }
        let key = mref.location_name.as_deref().unwrap_or(name);
        let Some(raw) = obj.get(key).or_else(|| obj.get(name.as_str())) else {
            continue;
        };
        if let Some(v) =
            convert(model, mref, raw, depth + 1).map_err(|f| f.at(Seg::Member(name.clone())))?
        {
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

/// Convert one JSON value to the value convention of the referenced shape; `None` for null.
pub(crate) fn convert(
    model: &ServiceModel,
    r: &ShapeRef,
    v: &Value,
    depth: usize,
) -> Parsed<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(Fault::too_deep());
    }
    if v.is_null() {
        return Ok(None);
    }
    let shape = target(model, r);
    let ty = shape.type_.as_str();
    let out = match ty {
        "structure" if is_document(shape) => v.clone(),
        "structure" => match v {
            Value::Object(obj) => {
                Value::Object(structure_members(model, shape, obj, false, depth)?)
            }
            _ => return Err(Fault::invalid(short(v), expected_for(ty))),
        },
        "list" => {
            let Value::Array(items) = v else {
                return Err(Fault::invalid(short(v), expected_for(ty)));
            };
            let Some(member) = shape.member.as_deref() else {
                return Ok(Some(v.clone()));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if let Some(x) =
                    convert(model, member, item, depth + 1).map_err(|f| f.at(Seg::Index(i)))?
                {
                    out.push(x);
                }
            }
            Value::Array(out)
        }
        "map" => {
            let Value::Object(obj) = v else {
                return Err(Fault::invalid(short(v), expected_for(ty)));
            };
            let Some(value_ref) = shape.value.as_deref() else {
                return Ok(Some(v.clone()));
            };
            let mut out = Map::new();
            for (k, item) in obj {
                if let Some(x) = convert(model, value_ref, item, depth + 1)
                    .map_err(|f| f.at(Seg::Key(k.clone())))?
                {
                    out.insert(k.clone(), x);
                }
            }
            Value::Object(out)
        }
        _ => scalar(r, shape, v)?,
    };
    Ok(Some(out))
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(_) => "[...]".to_string(),
        Value::Object(_) => "{...}".to_string(),
        other => other.to_string(),
    }
}

fn scalar(r: &ShapeRef, shape: &Shape, v: &Value) -> Parsed<Value> {
    let ty = shape.type_.as_str();
    let bad = || Fault::invalid(short(v), expected_for(ty));
    match (ty, v) {
        ("string" | "", Value::String(_)) => Ok(v.clone()),
        ("string" | "", _) if is_json_value(r, shape) => Ok(Value::from(v.to_string())),
        (t, Value::Number(n)) if is_integer_type(t) => {
            if let Some(i) = n.as_i64() {
                int_value(t, i)
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => int_value(t, f as i64),
                    _ => Err(bad()),
                }
            }
        }
        ("float" | "double" | "bigdecimal", Value::Number(n)) => {
            Ok(n.as_f64().map_or_else(|| v.clone(), float_value))
        }
        ("biginteger", Value::Number(_)) => Ok(v.clone()),
        ("float" | "double", Value::String(s)) => {
            parse_float(s.trim()).map(float_value).ok_or_else(bad)
        }
        ("boolean", Value::Bool(_)) => Ok(v.clone()),
        ("timestamp", Value::Number(n)) => n.as_f64().map(timestamp_value).ok_or_else(bad),
        ("timestamp", Value::String(s)) => parse_timestamp(s)
            .filter(|f| f.is_finite())
            .map(timestamp_value)
            .ok_or_else(bad),
        ("blob", Value::String(s)) => b64_decode(s).map(|b| Value::from(b64(&b))).ok_or_else(bad),
        (_, Value::String(s)) => scalar_from_text(shape, s),
        _ => Err(bad()),
    }
}
