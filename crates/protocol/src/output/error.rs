//! Error responses for every protocol: the wire code the protocol wants (awsQuery codes for
//! query, ec2 and the `x-amzn-query-error` header of query-compatible JSON/CBOR services),
//! the error envelope, the modeled members from `ApiError::fields` and the request id.

use super::cbor::{self, CborWriter};
use super::json::{self, JsonWriter};
use super::rest::bound_members;
use super::xml::{XmlOut, XmlWriter};
use super::{
    error_shape, json_content_type, message_member, query_code, scalar_text, xml_namespace,
};
use crate::model::Shape;
use crate::{ApiError, HttpResponse, Protocol, ResponseContext, ServiceModel};
use ciborium::value::Value as Cbor;
use serde_json::{Map, Value};

/// The codes and shape of one error.
struct Resolved<'m> {
    /// The error shape, when the model has one for the code.
    shape: Option<&'m Shape>,
    /// The shape name (JSON `__type`, `X-Amzn-ErrorType`), or the code as given.
    name: String,
    /// The awsQuery code (`error.code` trait, else the shape name), or the code as given.
    query: String,
    /// `Sender` or `Receiver`.
    fault: &'static str,
}

fn resolve<'m>(model: &'m ServiceModel, err: &ApiError) -> Resolved<'m> {
    let fault = if err.sender_fault {
        "Sender"
    } else {
        "Receiver"
    };
    match error_shape(model, &err.code) {
        Some((name, shape)) => Resolved {
            shape: Some(shape),
            name: name.to_string(),
            query: query_code(model, name, shape),
            fault,
        },
        None => Resolved {
            shape: None,
            name: err.code.clone(),
            query: err.code.clone(),
            fault,
        },
    }
}

/// `err.fields` without the message, which every envelope writes itself.
fn extra_fields(err: &ApiError) -> Map<String, Value> {
    err.fields
        .iter()
        .filter(|(k, v)| !k.eq_ignore_ascii_case("message") && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Write error fields as XML elements, modeled ones by their shape.
fn xml_fields(
    w: &XmlWriter<'_>,
    out: &mut XmlOut,
    shape: Option<&Shape>,
    fields: &Map<String, Value>,
) {
    for (k, v) in fields {
        if matches!(k.as_str(), "Code" | "Type" | "RequestId") {
            continue;
        }
        match shape.and_then(|s| s.members.get(k)) {
            Some(mref) if super::http_bound(mref) => {}
            Some(mref) => {
                let ename = mref.location_name.as_deref().unwrap_or(k);
                w.member(out, ename, mref, v);
            }
            None => {
                if let Some(text) = scalar_text("string", v) {
                    out.leaf(k, &[], &text);
                }
            }
        }
    }
}

/// Body members of a JSON error, modeled ones by their shape.
fn json_fields(
    w: &JsonWriter<'_>,
    shape: Option<&Shape>,
    fields: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in fields {
        match shape.and_then(|s| s.members.get(k)) {
            Some(mref) if super::http_bound(mref) => {}
            Some(mref) => {
                if let Some(val) = w.value(mref, v) {
                    out.insert(mref.location_name.clone().unwrap_or_else(|| k.clone()), val);
                }
            }
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// Serialize an API error for a protocol.
pub(crate) fn serialize(
    model: &ServiceModel,
    protocol: Protocol,
    err: &ApiError,
    ctx: &ResponseContext,
) -> HttpResponse {
    let r = resolve(model, err);
    let fields = extra_fields(err);
    let status = if (100..=599).contains(&err.status) {
        err.status
    } else {
        500
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut status_override = None;
    let body = match protocol {
        Protocol::Query => {
            let w = XmlWriter { model };
            let mut out = XmlOut::default();
            out.open(
                "ErrorResponse",
                &[("xmlns".to_string(), xml_namespace(model, "https"))],
            );
            out.open("Error", &[]);
            out.leaf("Type", &[], r.fault);
            out.leaf("Code", &[], &r.query);
            out.leaf("Message", &[], &err.message);
            xml_fields(&w, &mut out, r.shape, &fields);
            out.close("Error");
            out.leaf("RequestId", &[], &ctx.request_id);
            out.close("ErrorResponse");
            headers.push(("Content-Type".into(), "text/xml".into()));
            headers.push(("x-amzn-RequestId".into(), ctx.request_id.clone()));
            out.buf.into_bytes()
        }
        Protocol::Ec2 => {
            let w = XmlWriter { model };
            let mut out = XmlOut::default();
            out.open("Response", &[]);
            out.open("Errors", &[]);
            out.open("Error", &[]);
            out.leaf("Code", &[], &r.query);
            out.leaf("Message", &[], &err.message);
            xml_fields(&w, &mut out, r.shape, &fields);
            out.close("Error");
            out.close("Errors");
            out.leaf("RequestID", &[], &ctx.request_id);
            out.close("Response");
            headers.push(("Content-Type".into(), "text/xml;charset=UTF-8".into()));
            out.buf.into_bytes()
        }
        Protocol::RestXml => {
            if let Some(shape) = r.shape {
                bound_members(model, shape, &fields, &mut headers, &mut status_override);
            }
            let w = XmlWriter { model };
            let mut out = XmlOut::default();
            out.open("Error", &[]);
            out.leaf("Code", &[], &r.query);
            out.leaf("Message", &[], &err.message);
            xml_fields(&w, &mut out, r.shape, &fields);
            out.leaf("RequestId", &[], &ctx.request_id);
            out.close("Error");
            headers.push(("Content-Type".into(), "application/xml".into()));
            headers.push(("x-amz-request-id".into(), ctx.request_id.clone()));
            out.buf.into_bytes()
        }
        Protocol::Json | Protocol::RestJson => {
            let rest = protocol == Protocol::RestJson;
            if let (true, Some(shape)) = (rest, r.shape) {
                bound_members(model, shape, &fields, &mut headers, &mut status_override);
            }
            let w = JsonWriter { model };
            let mut obj = Map::new();
            if !rest {
                obj.insert("__type".into(), Value::String(r.name.clone()));
            }
            if !err.message.is_empty() {
                let key = message_member(r.shape)
                    .map(|(n, mref)| mref.location_name.clone().unwrap_or_else(|| n.to_string()))
                    .unwrap_or_else(|| "message".to_string());
                obj.insert(key, Value::String(err.message.clone()));
            }
            obj.extend(json_fields(&w, r.shape, &fields));
            let content_type = if rest {
                "application/json".to_string()
            } else {
                json_content_type(model)
            };
            headers.push(("Content-Type".into(), content_type));
            headers.push(("x-amzn-RequestId".into(), ctx.request_id.clone()));
            headers.push(("X-Amzn-ErrorType".into(), r.name.clone()));
            if !rest && model.metadata.is_query_compatible() {
                headers.push((
                    "x-amzn-query-error".into(),
                    format!("{};{}", r.query, r.fault),
                ));
            }
            json::to_bytes(&Value::Object(obj))
        }
        Protocol::RpcV2Cbor => {
            let w = CborWriter { model };
            let mut entries = vec![(Cbor::Text("__type".into()), Cbor::Text(r.name.clone()))];
            if !err.message.is_empty() {
                let key = message_member(r.shape)
                    .map(|(n, _)| n.to_string())
                    .unwrap_or_else(|| "message".to_string());
                entries.push((Cbor::Text(key), Cbor::Text(err.message.clone())));
            }
            for (k, v) in &fields {
                let val = match r.shape.and_then(|s| s.members.get(k)) {
                    Some(mref) => w.value(mref, v),
                    None => cbor::plain(v),
                };
                if let Some(val) = val {
                    entries.push((Cbor::Text(k.clone()), val));
                }
            }
            headers.extend(cbor::cbor_headers(ctx));
            if model.metadata.is_query_compatible() {
                headers.push((
                    "x-amzn-query-error".into(),
                    format!("{};{}", r.query, r.fault),
                ));
            }
            cbor::to_bytes(&Cbor::Map(entries))
        }
    };
    for (k, v) in &err.headers {
        headers.push((k.clone(), v.clone()));
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}
