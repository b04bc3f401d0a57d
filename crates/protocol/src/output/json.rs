//! JSON bodies: the awsJson 1.0/1.1 response and the model driven conversion of values to
//! their JSON wire form, shared with rest-json and the JSON error bodies.

use super::{
    epoch_of, format_timestamp_text, json_content_type, scalar_text, special_float,
    timestamp_format, TsPlace,
};
use crate::model::{Shape, ShapeRef};
use crate::value::epoch_value;
use crate::{HttpResponse, Operation, ResponseContext, ServiceModel};
use serde_json::{Map, Value};

/// Model driven JSON writer.
pub(crate) struct JsonWriter<'m> {
    pub(crate) model: &'m ServiceModel,
}

impl<'m> JsonWriter<'m> {
    /// The wire form of `v` for reference `r`; `None` when it cannot stand for the shape.
    pub(crate) fn value(&self, r: &ShapeRef, v: &Value) -> Option<Value> {
        if v.is_null() {
            return None;
        }
        let Some(shape) = self.model.shape(&r.shape) else {
            return Some(v.clone());
        };
        self.shaped(Some(r), shape, v)
    }

    /// The wire form of `v` for `shape` (reached through `r`, if any).
    pub(crate) fn shaped(&self, r: Option<&ShapeRef>, shape: &Shape, v: &Value) -> Option<Value> {
        if shape.document == Some(true) {
            return Some(v.clone());
        }
        match shape.type_.as_str() {
            "structure" => Some(Value::Object(self.structure(shape, v.as_object()?))),
            "list" => {
                let mref = shape.member.as_deref()?;
                let items = v.as_array()?;
                Some(Value::Array(
                    items.iter().filter_map(|i| self.value(mref, i)).collect(),
                ))
            }
            "map" => {
                let vref = shape.value.as_deref()?;
                let entries = v.as_object()?;
                Some(Value::Object(
                    entries
                        .iter()
                        .filter_map(|(k, val)| Some((k.clone(), self.value(vref, val)?)))
                        .collect(),
                ))
            }
            "timestamp" => {
                let secs = epoch_of(v)?;
                let fmt = timestamp_format(r, shape, TsPlace::Json);
                if fmt == "unixTimestamp" {
                    Some(epoch_value(secs))
                } else {
                    Some(Value::String(format_timestamp_text(secs, &fmt)))
                }
            }
            "blob" => v.as_str().map(|s| Value::String(s.to_string())),
            "document" => Some(v.clone()),
            "boolean" => match v {
                Value::Bool(_) => Some(v.clone()),
                Value::String(s) if s == "true" => Some(Value::Bool(true)),
                Value::String(s) if s == "false" => Some(Value::Bool(false)),
                _ => None,
            },
            t if super::is_integer_type(t) => {
                let text = scalar_text(t, v)?;
                text.parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| text.parse::<u64>().map(Value::from))
                    .ok()
            }
            t if super::is_float_type(t) => match v {
                Value::Number(_) => Some(v.clone()),
                Value::String(s) if special_float(s).is_some() => Some(v.clone()),
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number),
                _ => None,
            },
            t => scalar_text(t, v).map(Value::String),
        }
    }

    /// A structure's body members (HTTP-bound members are left to the REST layer).
    pub(crate) fn structure(&self, shape: &Shape, obj: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (mname, mref) in &shape.members {
            if super::http_bound(mref) {
                continue;
            }
            if let Some(val) = obj.get(mname).and_then(|v| self.value(mref, v)) {
                let key = mref.location_name.as_deref().unwrap_or(mname);
                out.insert(key.to_string(), val);
            }
        }
        out
    }
}

/// JSON bytes of a value (serializing a `Value` cannot fail; an empty object is the
/// fallback all the same).
pub(crate) fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// An awsJson 1.0/1.1 response.
pub(crate) fn json_response(
    model: &ServiceModel,
    op: &Operation,
    output: &Value,
    ctx: &ResponseContext,
) -> HttpResponse {
    let w = JsonWriter { model };
    let body = match (
        op.output.as_ref().and_then(|r| model.shape(&r.shape)),
        output.as_object(),
    ) {
        (Some(shape), Some(obj)) => Value::Object(w.structure(shape, obj)),
        _ => Value::Object(Map::new()),
    };
    HttpResponse {
        status: 200,
        headers: vec![
            ("Content-Type".to_string(), json_content_type(model)),
            ("x-amzn-RequestId".to_string(), ctx.request_id.clone()),
        ],
        body: to_bytes(&body),
    }
}
