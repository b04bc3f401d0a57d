//! Smithy RPC v2 CBOR bodies: maps keyed by member names, timestamps as tag 1 epoch
//! seconds, blobs as byte strings.

use super::{epoch_of, is_float_type, is_integer_type, scalar_text, special_float};
use crate::model::{Shape, ShapeRef};
use crate::{HttpResponse, Operation, ResponseContext, ServiceModel};
use base64::Engine;
use ciborium::value::Value as Cbor;
use serde_json::Value;

/// Model driven CBOR writer.
pub(crate) struct CborWriter<'m> {
    pub(crate) model: &'m ServiceModel,
}

/// A JSON value without model information as CBOR (documents, unmodeled error fields).
pub(crate) fn plain(v: &Value) -> Option<Cbor> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cbor::Integer(i.into())
            } else if let Some(u) = n.as_u64() {
                Cbor::Integer(u.into())
            } else {
                Cbor::Float(n.as_f64()?)
            }
        }
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(a) => Cbor::Array(a.iter().filter_map(plain).collect()),
        Value::Object(o) => Cbor::Map(
            o.iter()
                .filter_map(|(k, v)| Some((Cbor::Text(k.clone()), plain(v)?)))
                .collect(),
        ),
    })
}

impl<'m> CborWriter<'m> {
    pub(crate) fn value(&self, r: &ShapeRef, v: &Value) -> Option<Cbor> {
        if v.is_null() {
            return None;
        }
        match self.model.shape(&r.shape) {
            Some(shape) => self.shaped(shape, v),
            None => plain(v),
        }
    }

    pub(crate) fn shaped(&self, shape: &Shape, v: &Value) -> Option<Cbor> {
        if shape.document == Some(true) {
            return plain(v);
        }
        match shape.type_.as_str() {
            "structure" => Some(self.structure(shape, v.as_object()?)),
            "list" => {
                let mref = shape.member.as_deref()?;
                Some(Cbor::Array(
                    v.as_array()?
                        .iter()
                        .filter_map(|i| self.value(mref, i))
                        .collect(),
                ))
            }
            "map" => {
                let vref = shape.value.as_deref()?;
                Some(Cbor::Map(
                    v.as_object()?
                        .iter()
                        .filter_map(|(k, val)| {
                            Some((Cbor::Text(k.clone()), self.value(vref, val)?))
                        })
                        .collect(),
                ))
            }
            "timestamp" => {
                let secs = epoch_of(v)?;
                let inner = if secs.fract() == 0.0 && secs.abs() < 9.0e15 {
                    Cbor::Integer((secs as i64).into())
                } else {
                    Cbor::Float(secs)
                };
                Some(Cbor::Tag(1, Box::new(inner)))
            }
            "blob" => {
                let s = v.as_str()?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .unwrap_or_else(|_| s.as_bytes().to_vec());
                Some(Cbor::Bytes(bytes))
            }
            "boolean" => match v {
                Value::Bool(b) => Some(Cbor::Bool(*b)),
                Value::String(s) if s == "true" => Some(Cbor::Bool(true)),
                Value::String(s) if s == "false" => Some(Cbor::Bool(false)),
                _ => None,
            },
            t if is_integer_type(t) => {
                let text = scalar_text(t, v)?;
                if let Ok(i) = text.parse::<i64>() {
                    Some(Cbor::Integer(i.into()))
                } else {
                    text.parse::<u64>().ok().map(|u| Cbor::Integer(u.into()))
                }
            }
            t if is_float_type(t) => match v {
                Value::Number(n) => n.as_f64().map(Cbor::Float),
                Value::String(s) => special_float(s)
                    .or_else(|| s.trim().parse::<f64>().ok())
                    .map(Cbor::Float),
                _ => None,
            },
            t => scalar_text(t, v).map(Cbor::Text),
        }
    }

    pub(crate) fn structure(&self, shape: &Shape, obj: &serde_json::Map<String, Value>) -> Cbor {
        Cbor::Map(
            shape
                .members
                .iter()
                .filter_map(|(mname, mref)| {
                    let val = self.value(mref, obj.get(mname)?)?;
                    Some((Cbor::Text(mname.clone()), val))
                })
                .collect(),
        )
    }
}

/// Encode a CBOR value (writing to a `Vec` cannot fail; an empty map is the fallback).
pub(crate) fn to_bytes(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    if ciborium::ser::into_writer(v, &mut out).is_err() {
        return vec![0xa0];
    }
    out
}

/// The headers every rpc-v2-cbor response carries.
pub(crate) fn cbor_headers(ctx: &ResponseContext) -> Vec<(String, String)> {
    vec![
        ("smithy-protocol".to_string(), "rpc-v2-cbor".to_string()),
        ("Content-Type".to_string(), "application/cbor".to_string()),
        ("x-amzn-RequestId".to_string(), ctx.request_id.clone()),
    ]
}

/// An rpc-v2-cbor response.
pub(crate) fn cbor_response(
    model: &ServiceModel,
    op: &Operation,
    output: &Value,
    ctx: &ResponseContext,
) -> HttpResponse {
    let w = CborWriter { model };
    let body = match (
        op.output.as_ref().and_then(|r| model.shape(&r.shape)),
        output.as_object(),
    ) {
        (Some(shape), Some(obj)) => w.structure(shape, obj),
        _ => Cbor::Map(Vec::new()),
    };
    HttpResponse {
        status: 200,
        headers: cbor_headers(ctx),
        body: to_bytes(&body),
    }
}
