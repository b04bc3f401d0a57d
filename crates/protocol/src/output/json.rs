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

impl JsonWriter<'_> {
    /// Write the wire form of `v` straight into `buf` (no intermediate tree); `false`, with
    /// `buf` untouched, when `v` cannot stand for the shape.
    pub(crate) fn write(
        &self,
        buf: &mut Vec<u8>,
        r: Option<&ShapeRef>,
        shape: &Shape,
        v: &Value,
    ) -> bool {
        let mark = buf.len();
        let ok = self.write_inner(buf, r, shape, v);
        if !ok {
            buf.truncate(mark);
        }
        ok
    }

    fn write_ref(&self, buf: &mut Vec<u8>, r: &ShapeRef, v: &Value) -> bool {
        if v.is_null() {
            return false;
        }
        match self.model.shape(&r.shape) {
            Some(shape) => self.write(buf, Some(r), shape, v),
            None => write_plain(buf, v),
        }
    }

    fn write_inner(
        &self,
        buf: &mut Vec<u8>,
        r: Option<&ShapeRef>,
        shape: &Shape,
        v: &Value,
    ) -> bool {
        if shape.document == Some(true) {
            return write_plain(buf, v);
        }
        match shape.type_.as_str() {
            "structure" => match v.as_object() {
                Some(obj) => {
                    self.write_structure(buf, shape, obj);
                    true
                }
                None => false,
            },
            "list" => {
                let (Some(mref), Some(items)) = (shape.member.as_deref(), v.as_array()) else {
                    return false;
                };
                buf.push(b'[');
                let mut first = true;
                for item in items {
                    let mark = buf.len();
                    if !first {
                        buf.push(b',');
                    }
                    if self.write_ref(buf, mref, item) {
                        first = false;
                    } else {
                        buf.truncate(mark);
                    }
                }
                buf.push(b']');
                true
            }
            "map" => {
                let (Some(vref), Some(entries)) = (shape.value.as_deref(), v.as_object()) else {
                    return false;
                };
                buf.push(b'{');
                let mut first = true;
                for (k, val) in entries {
                    let mark = buf.len();
                    if !first {
                        buf.push(b',');
                    }
                    write_str(buf, k);
                    buf.push(b':');
                    if self.write_ref(buf, vref, val) {
                        first = false;
                    } else {
                        buf.truncate(mark);
                    }
                }
                buf.push(b'}');
                true
            }
            "string" | "" => match v {
                Value::String(s) => {
                    write_str(buf, s);
                    true
                }
                _ => self.write_converted(buf, r, shape, v),
            },
            _ => self.write_converted(buf, r, shape, v),
        }
    }

    /// Scalars other than plain strings go through [`JsonWriter::shaped`].
    fn write_converted(
        &self,
        buf: &mut Vec<u8>,
        r: Option<&ShapeRef>,
        shape: &Shape,
        v: &Value,
    ) -> bool {
        match self.shaped(r, shape, v) {
            Some(out) => write_plain(buf, &out),
            None => false,
        }
    }

    /// A structure's body members (HTTP-bound members are left to the REST layer).
    pub(crate) fn write_structure(
        &self,
        buf: &mut Vec<u8>,
        shape: &Shape,
        obj: &Map<String, Value>,
    ) {
        buf.push(b'{');
        let mut first = true;
        for (mname, mref) in &shape.members {
            if super::http_bound(mref) {
                continue;
            }
            let Some(val) = obj.get(mname) else { continue };
            let mark = buf.len();
            if !first {
                buf.push(b',');
            }
            write_str(buf, mref.location_name.as_deref().unwrap_or(mname));
            buf.push(b':');
            if self.write_ref(buf, mref, val) {
                first = false;
            } else {
                buf.truncate(mark);
            }
        }
        buf.push(b'}');
    }
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

fn write_plain(buf: &mut Vec<u8>, v: &Value) -> bool {
    serde_json::to_writer(&mut *buf, v).is_ok()
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
    let mut body = Vec::with_capacity(256);
    match (
        op.output.as_ref().and_then(|r| model.shape(&r.shape)),
        output.as_object(),
    ) {
        (Some(shape), Some(obj)) => w.write_structure(&mut body, shape, obj),
        _ => body.extend_from_slice(b"{}"),
    }
    HttpResponse {
        status: 200,
        headers: vec![
            ("Content-Type".to_string(), json_content_type(model)),
            ("x-amzn-RequestId".to_string(), ctx.request_id.clone()),
        ],
        body,
    }
}
