//! XML bodies: the awsQuery and ec2 response envelopes and the model driven writing of
//! structures, lists, maps and scalars shared by query, ec2 and rest-xml.

use super::sqs_query::QueryNames;
use super::{
    epoch_of, format_timestamp_text, scalar_text, timestamp_format, xml_namespace, TsPlace,
};
use crate::model::{Shape, ShapeRef};
use crate::{HttpResponse, Operation, Protocol, ResponseContext, ServiceModel};
use serde_json::Value;

/// A small XML text builder.
#[derive(Default)]
pub(crate) struct XmlOut {
    pub(crate) buf: String,
}

impl XmlOut {
    pub(crate) fn open(&mut self, name: &str, attrs: &[(String, String)]) {
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            escape_into(&mut self.buf, v, true);
            self.buf.push('"');
        }
        self.buf.push('>');
    }

    pub(crate) fn close(&mut self, name: &str) {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    pub(crate) fn text(&mut self, text: &str) {
        escape_into(&mut self.buf, text, false);
    }

    /// `<name attrs>text</name>`.
    pub(crate) fn leaf(&mut self, name: &str, attrs: &[(String, String)], text: &str) {
        self.open(name, attrs);
        self.text(text);
        self.close(name);
    }
}

/// Escape text or attribute content. `\r` is written as a character reference so that it
/// survives XML line-end normalization.
fn escape_into(buf: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => buf.push_str("&amp;"),
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '"' if attr => buf.push_str("&quot;"),
            '\r' => buf.push_str("&#xD;"),
            '\n' if attr => buf.push_str("&#xA;"),
            '\t' if attr => buf.push_str("&#x9;"),
            c => buf.push(c),
        }
    }
}

/// The `xmlns` attribute for an `xmlNamespace` trait (a URI string or `{prefix, uri}`).
pub(crate) fn ns_attr(ns: Option<&Value>) -> Option<(String, String)> {
    match ns? {
        Value::String(uri) => Some(("xmlns".to_string(), uri.clone())),
        Value::Object(o) => {
            let uri = o.get("uri")?.as_str()?.to_string();
            match o.get("prefix").and_then(Value::as_str) {
                Some(p) if !p.is_empty() => Some((format!("xmlns:{p}"), uri)),
                _ => Some(("xmlns".to_string(), uri)),
            }
        }
        _ => None,
    }
}

/// Model driven XML writer.
pub(crate) struct XmlWriter<'m> {
    pub(crate) model: &'m ServiceModel,
}

/// Whether a list or map reference is flattened (the trait may sit on the reference or on
/// the shape).
pub(crate) fn is_flattened(r: Option<&ShapeRef>, shape: &Shape) -> bool {
    r.and_then(|r| r.flattened)
        .or(shape.flattened)
        .unwrap_or(false)
}

impl<'m> XmlWriter<'m> {
    /// The query serialization names of models that lost them (SQS). The writer only writes
    /// XML bodies and SQS's only XML protocol is query, so they apply whenever present.
    fn query_names(&self) -> Option<&'static QueryNames> {
        super::sqs_query::names(self.model, Protocol::Query)
    }

    /// Write a value as the element `name`, shaped by the reference `r`.
    pub(crate) fn member(&self, out: &mut XmlOut, name: &str, r: &ShapeRef, v: &Value) {
        if v.is_null() {
            return;
        }
        let Some(shape) = self.model.shape(&r.shape) else {
            if let Some(t) = scalar_text("string", v) {
                out.leaf(name, &[], &t);
            }
            return;
        };
        let ns: Vec<(String, String)> =
            ns_attr(r.xml_namespace.as_ref().or(if shape.is_structure() {
                shape.xml_namespace.as_ref()
            } else {
                None
            }))
            .into_iter()
            .collect();
        match shape.type_.as_str() {
            "structure" => self.structure(out, name, ns, shape, v),
            "list" => {
                let Some(items) = v.as_array() else { return };
                let Some(mref) = shape.member.as_deref() else {
                    return;
                };
                if is_flattened(Some(r), shape)
                    || self.query_names().is_some_and(|n| n.is_flattened(&r.shape))
                {
                    for item in items {
                        let mut item_ref = mref.clone();
                        if item_ref.xml_namespace.is_none() {
                            item_ref.xml_namespace = r.xml_namespace.clone();
                        }
                        self.member(out, name, &item_ref, item);
                    }
                } else {
                    let item_name = mref.location_name.as_deref().unwrap_or("member");
                    out.open(name, &ns);
                    for item in items {
                        self.member(out, item_name, mref, item);
                    }
                    out.close(name);
                }
            }
            "map" => {
                let Some(entries) = v.as_object() else { return };
                let (Some(kref), Some(vref)) = (shape.key.as_deref(), shape.value.as_deref())
                else {
                    return;
                };
                let names = self.query_names();
                let entry = names.and_then(|n| n.entry_names(&r.shape));
                let kname = entry
                    .map(|(k, _)| k)
                    .or(kref.location_name.as_deref())
                    .unwrap_or("key");
                let vname = entry
                    .map(|(_, v)| v)
                    .or(vref.location_name.as_deref())
                    .unwrap_or("value");
                let flat =
                    is_flattened(Some(r), shape) || names.is_some_and(|n| n.is_flattened(&r.shape));
                if !flat {
                    out.open(name, &ns);
                }
                for (k, val) in entries {
                    if val.is_null() {
                        continue;
                    }
                    if flat {
                        out.open(name, &ns);
                    } else {
                        out.open("entry", &[]);
                    }
                    self.member(out, kname, kref, &Value::String(k.clone()));
                    self.member(out, vname, vref, val);
                    if flat {
                        out.close(name);
                    } else {
                        out.close("entry");
                    }
                }
                if !flat {
                    out.close(name);
                }
            }
            _ => {
                if let Some(text) = self.scalar(Some(r), shape, v) {
                    out.leaf(name, &ns, &text);
                }
            }
        }
    }

    /// The text of a scalar member in an XML body.
    pub(crate) fn scalar(&self, r: Option<&ShapeRef>, shape: &Shape, v: &Value) -> Option<String> {
        match shape.type_.as_str() {
            "timestamp" => {
                let secs = epoch_of(v)?;
                Some(format_timestamp_text(
                    secs,
                    &timestamp_format(r, shape, TsPlace::Xml),
                ))
            }
            "blob" => v.as_str().map(str::to_string),
            "document" => Some(v.to_string()),
            t => scalar_text(t, v),
        }
    }

    /// Write a structure as element `name` with extra attributes `attrs`.
    pub(crate) fn structure(
        &self,
        out: &mut XmlOut,
        name: &str,
        mut attrs: Vec<(String, String)>,
        shape: &Shape,
        v: &Value,
    ) {
        let Some(obj) = v.as_object() else { return };
        attrs.extend(self.attributes(shape, obj));
        out.open(name, &attrs);
        self.members(out, shape, obj);
        out.close(name);
    }

    /// The `xmlAttribute` members of a structure as attributes.
    pub(crate) fn attributes(
        &self,
        shape: &Shape,
        obj: &serde_json::Map<String, Value>,
    ) -> Vec<(String, String)> {
        let mut attrs = Vec::new();
        for (mname, mref) in &shape.members {
            if mref.xml_attribute != Some(true) {
                continue;
            }
            let (Some(val), Some(mshape)) = (obj.get(mname), self.model.shape(&mref.shape)) else {
                continue;
            };
            if let Some(text) = self.scalar(Some(mref), mshape, val) {
                let aname = mref.location_name.as_deref().unwrap_or(mname);
                attrs.push((aname.to_string(), text));
            }
        }
        attrs
    }

    /// The element members of a structure (not attributes, not HTTP-bound members).
    pub(crate) fn members(
        &self,
        out: &mut XmlOut,
        shape: &Shape,
        obj: &serde_json::Map<String, Value>,
    ) {
        for (mname, mref) in &shape.members {
            if mref.xml_attribute == Some(true) || super::http_bound(mref) {
                continue;
            }
            if let Some(val) = obj.get(mname) {
                let ename = self
                    .query_names()
                    .and_then(|n| n.member_name(mname, &mref.shape))
                    .or(mref.location_name.as_deref())
                    .unwrap_or(mname);
                self.member(out, ename, mref, val);
            }
        }
    }
}

/// The output shape of an operation, if it has one in the model.
pub(crate) fn output_shape<'m>(model: &'m ServiceModel, op: &Operation) -> Option<&'m Shape> {
    model.shape(&op.output.as_ref()?.shape)
}

/// An awsQuery response:
/// `<OpResponse xmlns=..><OpResult>..</OpResult><ResponseMetadata>..</ResponseMetadata></OpResponse>`.
pub(crate) fn query_response(
    model: &ServiceModel,
    op: &Operation,
    output: &Value,
    ctx: &ResponseContext,
) -> HttpResponse {
    let w = XmlWriter { model };
    let mut out = XmlOut::default();
    let root = format!("{}Response", op.name);
    out.open(
        &root,
        &[("xmlns".to_string(), xml_namespace(model, "https"))],
    );
    if let Some(oref) = op.output.as_ref() {
        let wrapper = oref
            .result_wrapper
            .clone()
            .unwrap_or_else(|| format!("{}Result", op.name));
        out.open(&wrapper, &[]);
        if let (Some(shape), Some(obj)) = (model.shape(&oref.shape), output.as_object()) {
            w.members(&mut out, shape, obj);
        }
        out.close(&wrapper);
    }
    out.open("ResponseMetadata", &[]);
    out.leaf("RequestId", &[], &ctx.request_id);
    out.close("ResponseMetadata");
    out.close(&root);
    HttpResponse {
        status: 200,
        headers: vec![
            ("Content-Type".to_string(), "text/xml".to_string()),
            ("x-amzn-RequestId".to_string(), ctx.request_id.clone()),
        ],
        body: out.buf.into_bytes(),
    }
}

/// An ec2 response: `<OpResponse xmlns=..><requestId>..</requestId>..members..</OpResponse>`.
pub(crate) fn ec2_response(
    model: &ServiceModel,
    op: &Operation,
    output: &Value,
    ctx: &ResponseContext,
) -> HttpResponse {
    let w = XmlWriter { model };
    let mut out = XmlOut::default();
    let root = format!("{}Response", op.name);
    out.open(
        &root,
        &[("xmlns".to_string(), xml_namespace(model, "http"))],
    );
    out.leaf("requestId", &[], &ctx.request_id);
    if let (Some(shape), Some(obj)) = (output_shape(model, op), output.as_object()) {
        w.members(&mut out, shape, obj);
    }
    out.close(&root);
    HttpResponse {
        status: 200,
        headers: vec![
            (
                "Content-Type".to_string(),
                "text/xml;charset=UTF-8".to_string(),
            ),
            ("x-amzn-RequestId".to_string(), ctx.request_id.clone()),
        ],
        body: out.buf.into_bytes(),
    }
}

/// The root element name of a rest-xml document for a structure reached through member
/// `member_name` by reference `r` (a payload) or the whole output (`r` is `None`).
pub(crate) fn root_name(shape_name: &str, shape: &Shape, r: Option<(&str, &ShapeRef)>) -> String {
    if let Some((member_name, r)) = r {
        if let Some(ln) = r.location_name.as_deref() {
            if ln != member_name {
                return ln.to_string();
            }
        }
    }
    shape
        .location_name
        .clone()
        .unwrap_or_else(|| shape_name.to_string())
}
