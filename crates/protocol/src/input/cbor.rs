//! smithy-rpc-v2-cbor bodies read into values: CBOR maps keyed by member names, timestamps
//! as tag 1 epoch seconds, blobs as byte strings, NaN/Infinity as CBOR floats.

use super::{
    b64, b64_decode, expected_for, float_value, int_value, is_document, is_integer_type, target,
    timestamp_value, Fault, Parsed, Seg, MAX_DEPTH,
};
use crate::value::parse_timestamp;
use crate::{ServiceModel, ShapeRef};
use ciborium::Value as Cbor;
use serde_json::{Map, Value};

/// Parse a CBOR body as the input structure; an empty body is an empty input.
pub(crate) fn parse_body(model: &ServiceModel, input: &ShapeRef, body: &[u8]) -> Parsed<Value> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let doc: Cbor = ciborium::de::from_reader_with_recursion_limit(body, MAX_DEPTH * 2)
        .map_err(|e| Fault::Malformed(format!("the request body is not valid CBOR: {e}")))?;
    if !matches!(untag(&doc), Cbor::Map(_)) {
        return Err(Fault::Malformed(
            "the request body must be a CBOR map".to_string(),
        ));
    }
    Ok(convert(model, input, &doc, 0)?.unwrap_or_else(|| Value::Object(Map::new())))
}

/// Strip tags other than the ones a conversion looks at.
fn untag(v: &Cbor) -> &Cbor {
    let mut v = v;
    while let Cbor::Tag(_, inner) = v {
        v = inner;
    }
    v
}

fn describe(v: &Cbor) -> String {
    match v {
        Cbor::Text(s) => s.clone(),
        Cbor::Integer(i) => i128::from(*i).to_string(),
        Cbor::Float(f) => f.to_string(),
        Cbor::Bool(b) => b.to_string(),
        Cbor::Null => "null".to_string(),
        Cbor::Bytes(_) => "<bytes>".to_string(),
        Cbor::Array(_) => "[...]".to_string(),
        Cbor::Map(_) => "{...}".to_string(),
        Cbor::Tag(_, inner) => describe(inner),
        _ => "?".to_string(),
    }
}

/// Any CBOR value as plain JSON (documents).
fn to_json(v: &Cbor, depth: usize) -> Parsed<Value> {
    if depth > MAX_DEPTH {
        return Err(Fault::too_deep());
    }
    Ok(match v {
        Cbor::Text(s) => Value::from(s.clone()),
        Cbor::Integer(i) => {
            let n = i128::from(*i);
            i64::try_from(n)
                .map(Value::from)
                .or_else(|_| u64::try_from(n).map(Value::from))
                .unwrap_or_else(|_| float_value(n as f64))
        }
        Cbor::Float(f) => float_value(*f),
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Bytes(b) => Value::from(b64(b)),
        Cbor::Array(items) => Value::Array(
            items
                .iter()
                .map(|x| to_json(x, depth + 1))
                .collect::<Parsed<_>>()?,
        ),
        Cbor::Map(entries) => {
            let mut out = Map::new();
            for (k, x) in entries {
                if let Cbor::Text(k) = untag(k) {
                    out.insert(k.clone(), to_json(x, depth + 1)?);
                }
            }
            Value::Object(out)
        }
        Cbor::Tag(_, inner) => to_json(inner, depth + 1)?,
        _ => Value::Null,
    })
}

fn convert(model: &ServiceModel, r: &ShapeRef, v: &Cbor, depth: usize) -> Parsed<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(Fault::too_deep());
    }
    let shape = target(model, r);
    let ty = shape.type_.as_str();
    let raw = untag(v);
    if matches!(raw, Cbor::Null) {
        return Ok(None);
    }
    let bad = || Fault::invalid(describe(v), expected_for(ty));
    let out = match ty {
        "structure" if is_document(shape) => to_json(v, depth)?,
        "structure" => {
            let Cbor::Map(entries) = raw else {
                return Err(bad());
            };
            let mut out = Map::new();
            for (k, x) in entries {
                let Cbor::Text(key) = untag(k) else { continue };
                let Some((name, mref)) = shape.members.get_key_value(key.as_str()) else {
                    continue;
                };
                if let Some(val) = convert(model, mref, x, depth + 1)
                    .map_err(|f| f.at(Seg::Member(name.clone())))?
                {
                    out.insert(name.clone(), val);
                }
            }
            Value::Object(out)
        }
        "list" => {
            let Cbor::Array(items) = raw else {
                return Err(bad());
            };
            let Some(member) = shape.member.as_deref() else {
                return to_json(v, depth).map(Some);
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                if let Some(val) =
                    convert(model, member, x, depth + 1).map_err(|f| f.at(Seg::Index(i)))?
                {
                    out.push(val);
                }
            }
            Value::Array(out)
        }
        "map" => {
            let Cbor::Map(entries) = raw else {
                return Err(bad());
            };
            let Some(value_ref) = shape.value.as_deref() else {
                return to_json(v, depth).map(Some);
            };
            let mut out = Map::new();
            for (k, x) in entries {
                let Cbor::Text(key) = untag(k) else { continue };
                if let Some(val) = convert(model, value_ref, x, depth + 1)
                    .map_err(|f| f.at(Seg::Key(key.clone())))?
                {
                    out.insert(key.clone(), val);
                }
            }
            Value::Object(out)
        }
        "string" | "" => match raw {
            Cbor::Text(s) => Value::from(s.clone()),
            _ => return Err(bad()),
        },
        "boolean" => match raw {
            Cbor::Bool(b) => Value::Bool(*b),
            _ => return Err(bad()),
        },
        t if is_integer_type(t) => match raw {
            Cbor::Integer(i) => {
                let n = i64::try_from(i128::from(*i)).map_err(|_| bad())?;
                int_value(t, n)?
            }
            Cbor::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => int_value(t, *f as i64)?,
            _ => return Err(bad()),
        },
        "float" | "double" | "bigdecimal" => match raw {
            Cbor::Float(f) => float_value(*f),
            Cbor::Integer(i) => float_value(i128::from(*i) as f64),
            _ => return Err(bad()),
        },
        "biginteger" => to_json(raw, depth)?,
        "timestamp" => match raw {
            Cbor::Float(f) if f.is_finite() => timestamp_value(*f),
            Cbor::Integer(i) => timestamp_value(i128::from(*i) as f64),
            Cbor::Text(s) => parse_timestamp(s)
                .filter(|f| f.is_finite())
                .map(timestamp_value)
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        },
        "blob" => match raw {
            Cbor::Bytes(b) => Value::from(b64(b)),
            Cbor::Text(s) => Value::from(b64(&b64_decode(s).ok_or_else(bad)?)),
            _ => return Err(bad()),
        },
        _ => to_json(raw, depth)?,
    };
    Ok(Some(out))
}
