//! Client side response parsing: reads an HTTP response the way botocore does and returns the
//! operation's output as a value (see [`crate::value`]) or the error it carries.
//!
//! Used by the conformance tests (every serialized response must read back to the value that
//! was serialized) and by ferrocloud's internal clients of its own APIs.

use super::{error_shape, is_float_type, is_integer_type, special_float};
use crate::model::{Shape, ShapeRef};
use crate::value::{epoch_value, parse_timestamp};
use crate::{HttpResponse, Operation, Protocol, ServiceModel};
use base64::Engine;
use ciborium::value::Value as Cbor;
use serde_json::{Map, Value};

/// An error response as a client sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} (http {status}): {message}")]
pub struct ClientError {
    pub status: u16,
    /// The error code (namespace and URI suffixes removed; the awsQuery code for
    /// query-compatible services).
    pub code: String,
    pub message: String,
    /// The modeled members of the error shape found in the response (including the message
    /// member when the shape has one). Boxed to keep the error small.
    pub fields: Box<Map<String, Value>>,
}

impl ClientError {
    fn unreadable(status: u16, what: &str) -> Self {
        ClientError {
            status,
            code: "ClientParseError".to_string(),
            message: format!("unreadable response body: {what}"),
            fields: Box::default(),
        }
    }
}

/// Parse a response to an operation: `Ok(output)` for a 2xx/1xx status, else the error.
pub fn parse_response(
    model: &ServiceModel,
    protocol: Protocol,
    op: &Operation,
    resp: &HttpResponse,
) -> Result<Value, ClientError> {
    let p = Parser { model, resp };
    if resp.status >= 300 {
        return Err(p.error(protocol));
    }
    let out_ref = op.output.as_ref();
    let Some((oref, shape)) = out_ref.and_then(|r| Some((r, model.shape(&r.shape)?))) else {
        return Ok(Value::Object(Map::new()));
    };
    match protocol {
        Protocol::Query | Protocol::Ec2 => {
            let Some(root) = p.xml_root()? else {
                return Ok(Value::Object(Map::new()));
            };
            let node = if protocol == Protocol::Query {
                let wrapper = oref
                    .result_wrapper
                    .clone()
                    .unwrap_or_else(|| format!("{}Result", op.name));
                root.child(&wrapper).unwrap_or(&root)
            } else {
                &root
            };
            Ok(p.xml_value(node, None, shape)
                .unwrap_or_else(|| Value::Object(Map::new())))
        }
        Protocol::Json => {
            let body = p.json_body()?;
            Ok(p.json_value(&body, None, shape)
                .unwrap_or_else(|| Value::Object(Map::new())))
        }
        Protocol::RpcV2Cbor => {
            let body = p.cbor_body()?;
            Ok(p.cbor_value(&body, shape)
                .unwrap_or_else(|| Value::Object(Map::new())))
        }
        Protocol::RestJson | Protocol::RestXml => p.rest(protocol == Protocol::RestXml, shape),
    }
}

/// A parsed XML element.
#[derive(Debug, Default)]
struct Node {
    /// Local name (namespace prefix removed).
    name: String,
    /// Attributes by qualified name.
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name || local(k) == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first element named `name` here or below (depth first).
    fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Deepest element nesting the client accepts (AWS documents are far shallower).
const MAX_XML_DEPTH: usize = 256;

/// Parse an XML document into its root element; `Ok(None)` for a body without elements.
fn parse_xml(body: &[u8]) -> Result<Option<Node>, String> {
    use quick_xml::events::Event;
    let text = String::from_utf8_lossy(body);
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    fn element(e: &quick_xml::events::BytesStart<'_>) -> Node {
        let qname = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let attrs = e
            .attributes()
            .flatten()
            .map(|a| {
                let k = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                let v = a
                    .unescape_value()
                    .map(|v| v.into_owned())
                    .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned());
                (k, v)
            })
            .collect();
        Node {
            name: local(&qname).to_string(),
            attrs,
            children: Vec::new(),
            text: String::new(),
        }
    }
    loop {
        let ev = reader.read_event().map_err(|e| e.to_string())?;
        match ev {
            Event::Start(e) => {
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_XML_DEPTH}"));
                }
                stack.push(element(&e));
            }
            Event::Empty(e) => {
                let node = element(&e);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = root.or(Some(node)),
                }
            }
            Event::End(_) => {
                let Some(node) = stack.pop() else {
                    return Err("unbalanced end tag".to_string());
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = root.or(Some(node)),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| e.to_string())?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c.into_inner()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".to_string());
    }
    Ok(root)
}

/// A timestamp as a value, rounded to microseconds.
fn ts_value(secs: f64) -> Value {
    epoch_value((secs * 1e6).round() / 1e6)
}

/// A finite or special float as a value.
fn float_value(f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f == f64::INFINITY {
        Value::String("Infinity".into())
    } else if f == f64::NEG_INFINITY {
        Value::String("-Infinity".into())
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Parse the text of a scalar (XML text, header values).
fn text_scalar(shape: &Shape, text: &str, json_value: bool) -> Option<Value> {
    let t = shape.type_.as_str();
    Some(match t {
        "boolean" => match text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return None,
        },
        _ if is_integer_type(t) => {
            let s = text.trim();
            s.parse::<i64>()
                .map(Value::from)
                .or_else(|_| s.parse::<u64>().map(Value::from))
                .ok()?
        }
        _ if is_float_type(t) => {
            let s = text.trim();
            match special_float(s) {
                Some(f) => float_value(f),
                None => float_value(s.parse::<f64>().ok()?),
            }
        }
        "timestamp" => ts_value(parse_timestamp(text)?),
        "blob" => Value::String(text.trim().to_string()),
        "string" if json_value => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?;
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => Value::String(text.to_string()),
    })
}

/// Split a comma separated header into items, honouring double quoted items; HTTP dates
/// (which contain a comma) are rejoined when `dates` is set.
fn split_header_list(raw: &str, dates: bool) -> Vec<String> {
    if dates {
        let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
        if parts.chunks_exact(2).remainder().is_empty()
            && parts.iter().step_by(2).all(|p| p.len() == 3)
        {
            return parts
                .chunks(2)
                .map(|c| format!("{}, {}", c[0], c[1]))
                .collect();
        }
        return parts.into_iter().map(str::to_string).collect();
    }
    let mut items = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            item.push(n);
                        }
                    }
                    '"' => break,
                    c => item.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
            }
            items.push(item);
        } else {
            let mut ended = true;
            for c in chars.by_ref() {
                if c == ',' {
                    ended = false;
                    break;
                }
                item.push(c);
            }
            items.push(item.trim().to_string());
            if ended {
                break;
            }
            continue;
        }
        if chars.peek().is_none() {
            break;
        }
    }
    items
}

/// Take the code out of `ns#Code:uri` forms.
fn sanitize_code(raw: &str) -> String {
    let before_uri = raw.split(':').next().unwrap_or(raw);
    before_uri
        .rsplit('#')
        .next()
        .unwrap_or(before_uri)
        .trim()
        .to_string()
}

/// Headers every response carries; never members of an empty-prefix header map.
const PROTOCOL_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "x-amzn-requestid",
    "x-amz-request-id",
    "x-amz-id-2",
    "date",
    "smithy-protocol",
];

struct Parser<'a> {
    model: &'a ServiceModel,
    resp: &'a HttpResponse,
}

impl<'a> Parser<'a> {
    fn shape_of(&self, r: &ShapeRef) -> Option<&'a Shape> {
        self.model.shape(&r.shape)
    }

    fn xml_root(&self) -> Result<Option<Node>, ClientError> {
        if self.resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse_xml(&self.resp.body).map_err(|e| ClientError::unreadable(self.resp.status, &e))
    }

    fn json_body(&self) -> Result<Value, ClientError> {
        if self.resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_slice(&self.resp.body)
            .map_err(|e| ClientError::unreadable(self.resp.status, &e.to_string()))
    }

    fn cbor_body(&self) -> Result<Cbor, ClientError> {
        if self.resp.body.is_empty() {
            return Ok(Cbor::Map(Vec::new()));
        }
        ciborium::de::from_reader(self.resp.body.as_slice())
            .map_err(|e| ClientError::unreadable(self.resp.status, &e.to_string()))
    }

    // ---------- XML ----------

    fn xml_value(&self, node: &Node, r: Option<&ShapeRef>, shape: &Shape) -> Option<Value> {
        match shape.type_.as_str() {
            "structure" => {
                let mut obj = Map::new();
                for (mname, mref) in &shape.members {
                    if super::http_bound(mref) {
                        continue;
                    }
                    let Some(mshape) = self.shape_of(mref) else {
                        continue;
                    };
                    let wire = mref.location_name.as_deref().unwrap_or(mname);
                    let val = if mref.xml_attribute == Some(true) {
                        node.attr(wire).and_then(|t| text_scalar(mshape, t, false))
                    } else if super::xml::is_flattened(Some(mref), mshape)
                        && mshape.type_ != "structure"
                    {
                        self.xml_flattened(node, wire, mshape)
                    } else {
                        node.child(wire)
                            .and_then(|c| self.xml_value(c, Some(mref), mshape))
                    };
                    if let Some(val) = val {
                        obj.insert(mname.clone(), val);
                    }
                }
                Some(Value::Object(obj))
            }
            "list" => {
                let mref = shape.member.as_deref()?;
                let mshape = self.shape_of(mref)?;
                Some(Value::Array(
                    node.children
                        .iter()
                        .filter_map(|c| self.xml_value(c, Some(mref), mshape))
                        .collect(),
                ))
            }
            "map" => {
                let mut obj = Map::new();
                for entry in &node.children {
                    self.xml_map_entry(entry, shape, &mut obj);
                }
                Some(Value::Object(obj))
            }
            _ => text_scalar(
                shape,
                &node.text,
                r.and_then(|r| r.json_value) == Some(true),
            ),
        }
    }

    fn xml_map_entry(
        &self,
        entry: &Node,
        shape: &Shape,
        obj: &mut Map<String, Value>,
    ) -> Option<()> {
        let (kref, vref) = (shape.key.as_deref()?, shape.value.as_deref()?);
        let kname = kref.location_name.as_deref().unwrap_or("key");
        let vname = vref.location_name.as_deref().unwrap_or("value");
        let key = entry.child(kname)?.text.clone();
        let vshape = self.shape_of(vref)?;
        let val = self.xml_value(entry.child(vname)?, Some(vref), vshape)?;
        obj.insert(key, val);
        Some(())
    }

    fn xml_flattened(&self, node: &Node, wire: &str, shape: &Shape) -> Option<Value> {
        if shape.type_ == "map" {
            let mut obj = Map::new();
            let mut any = false;
            for entry in node.children_named(wire) {
                any = true;
                self.xml_map_entry(entry, shape, &mut obj);
            }
            return any.then_some(Value::Object(obj));
        }
        let item_ref = shape.member.as_deref()?;
        let item_shape = self.shape_of(item_ref)?;
        let mut nodes: Vec<&Node> = node.children_named(wire).collect();
        if nodes.is_empty() {
            if let Some(alt) = item_ref.location_name.as_deref() {
                nodes = node.children_named(alt).collect();
            }
        }
        if nodes.is_empty() {
            return None;
        }
        Some(Value::Array(
            nodes
                .into_iter()
                .filter_map(|c| self.xml_value(c, Some(item_ref), item_shape))
                .collect(),
        ))
    }

    // ---------- JSON ----------

    fn json_value(&self, v: &Value, _r: Option<&ShapeRef>, shape: &Shape) -> Option<Value> {
        if v.is_null() {
            return None;
        }
        if shape.document == Some(true) {
            return Some(v.clone());
        }
        let t = shape.type_.as_str();
        Some(match t {
            "structure" => {
                let src = v.as_object()?;
                let mut obj = Map::new();
                for (mname, mref) in &shape.members {
                    if super::http_bound(mref) {
                        continue;
                    }
                    let wire = mref.location_name.as_deref().unwrap_or(mname);
                    let (Some(val), Some(mshape)) = (src.get(wire), self.shape_of(mref)) else {
                        continue;
                    };
                    if let Some(val) = self.json_value(val, Some(mref), mshape) {
                        obj.insert(mname.clone(), val);
                    }
                }
                Value::Object(obj)
            }
            "list" => {
                let mref = shape.member.as_deref()?;
                let mshape = self.shape_of(mref)?;
                Value::Array(
                    v.as_array()?
                        .iter()
                        .filter_map(|i| self.json_value(i, Some(mref), mshape))
                        .collect(),
                )
            }
            "map" => {
                let vref = shape.value.as_deref()?;
                let vshape = self.shape_of(vref)?;
                Value::Object(
                    v.as_object()?
                        .iter()
                        .filter_map(|(k, val)| {
                            Some((k.clone(), self.json_value(val, Some(vref), vshape)?))
                        })
                        .collect(),
                )
            }
            "timestamp" => match v {
                Value::Number(n) => ts_value(n.as_f64()?),
                Value::String(s) => ts_value(parse_timestamp(s)?),
                _ => return None,
            },
            "document" => v.clone(),
            _ if is_float_type(t) => match v {
                Value::Number(n) => float_value(n.as_f64()?),
                Value::String(s) => float_value(special_float(s).or_else(|| s.parse().ok())?),
                _ => return None,
            },
            _ if is_integer_type(t) => match v {
                Value::Number(_) => v.clone(),
                Value::String(s) => text_scalar(shape, s, false)?,
                _ => return None,
            },
            "boolean" => match v {
                Value::Bool(_) => v.clone(),
                _ => return None,
            },
            _ => match v {
                Value::String(_) => v.clone(),
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                _ => return None,
            },
        })
    }

    // ---------- CBOR ----------

    fn cbor_value(&self, v: &Cbor, shape: &Shape) -> Option<Value> {
        if matches!(v, Cbor::Null) {
            return None;
        }
        if shape.document == Some(true) {
            return cbor_plain(v);
        }
        let t = shape.type_.as_str();
        Some(match t {
            "structure" => {
                let Cbor::Map(entries) = v else { return None };
                let mut obj = Map::new();
                for (mname, mref) in &shape.members {
                    let found = entries
                        .iter()
                        .find(|(k, _)| matches!(k, Cbor::Text(s) if s == mname));
                    let (Some((_, val)), Some(mshape)) = (found, self.shape_of(mref)) else {
                        continue;
                    };
                    if let Some(val) = self.cbor_value(val, mshape) {
                        obj.insert(mname.clone(), val);
                    }
                }
                Value::Object(obj)
            }
            "list" => {
                let mref = shape.member.as_deref()?;
                let mshape = self.shape_of(mref)?;
                let Cbor::Array(items) = v else { return None };
                Value::Array(
                    items
                        .iter()
                        .filter_map(|i| self.cbor_value(i, mshape))
                        .collect(),
                )
            }
            "map" => {
                let vref = shape.value.as_deref()?;
                let vshape = self.shape_of(vref)?;
                let Cbor::Map(entries) = v else { return None };
                Value::Object(
                    entries
                        .iter()
                        .filter_map(|(k, val)| {
                            let Cbor::Text(k) = k else { return None };
                            Some((k.clone(), self.cbor_value(val, vshape)?))
                        })
                        .collect(),
                )
            }
            "timestamp" => {
                let inner = match v {
                    Cbor::Tag(_, inner) => inner.as_ref(),
                    other => other,
                };
                ts_value(cbor_number(inner)?)
            }
            "blob" => match v {
                Cbor::Bytes(b) => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
                }
                Cbor::Text(s) => Value::String(s.clone()),
                _ => return None,
            },
            _ if is_float_type(t) => float_value(cbor_number(v)?),
            _ if is_integer_type(t) => match v {
                Cbor::Integer(i) => int_value(i128::from(*i))?,
                Cbor::Float(f) if f.fract() == 0.0 => Value::from(*f as i64),
                _ => return None,
            },
            "boolean" => match v {
                Cbor::Bool(b) => Value::Bool(*b),
                _ => return None,
            },
            _ => match v {
                Cbor::Text(s) => Value::String(s.clone()),
                _ => return None,
            },
        })
    }

    // ---------- REST ----------

    fn header(&self, name: &str) -> Option<&'a str> {
        self.resp.header(name)
    }

    fn header_member(&self, name: &str, r: &ShapeRef, shape: &Shape) -> Option<Value> {
        let raw = self.header(name)?;
        let json_value = r.json_value == Some(true) || shape.json_value == Some(true);
        if shape.type_ == "list" {
            let mref = shape.member.as_deref()?;
            let mshape = self.shape_of(mref)?;
            let dates = mshape.type_ == "timestamp";
            return Some(Value::Array(
                split_header_list(raw, dates)
                    .iter()
                    .filter_map(|i| text_scalar(mshape, i, false))
                    .collect(),
            ));
        }
        text_scalar(shape, raw, json_value)
    }

    /// Members bound to headers and the status code.
    fn bound(&self, shape: &Shape, obj: &mut Map<String, Value>) {
        for (mname, mref) in &shape.members {
            let Some(mshape) = self.shape_of(mref) else {
                continue;
            };
            let val = match mref.location.as_deref() {
                Some("header") => {
                    let name = mref.location_name.as_deref().unwrap_or(mname);
                    self.header_member(name, mref, mshape)
                }
                Some("headers") => self.prefix_headers(mref, mshape),
                Some("statusCode") => Some(Value::from(self.resp.status)),
                _ => None,
            };
            if let Some(val) = val {
                obj.insert(mname.clone(), val);
            }
        }
    }

    fn prefix_headers(&self, r: &ShapeRef, shape: &Shape) -> Option<Value> {
        let prefix = r
            .location_name
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let vshape = self.shape_of(shape.value.as_deref()?)?;
        let mut obj = Map::new();
        for (k, v) in &self.resp.headers {
            let lower = k.to_ascii_lowercase();
            if prefix.is_empty() && PROTOCOL_HEADERS.contains(&lower.as_str()) {
                continue;
            }
            if !lower.starts_with(&prefix) {
                continue;
            }
            if let (Some(key), Some(val)) = (k.get(prefix.len()..), text_scalar(vshape, v, false)) {
                obj.insert(key.to_string(), val);
            }
        }
        Some(Value::Object(obj))
    }

    fn rest(&self, xml: bool, shape: &Shape) -> Result<Value, ClientError> {
        let mut obj = Map::new();
        self.bound(shape, &mut obj);
        let body = &self.resp.body;
        if let Some(pname) = shape.payload.as_deref() {
            let pref = shape.members.get(pname);
            let pshape = pref.and_then(|r| self.shape_of(r));
            if let (Some(pref), Some(pshape)) = (pref, pshape) {
                let val = if body.is_empty() {
                    None
                } else if pshape.document == Some(true) && !xml {
                    Some(self.json_body()?)
                } else {
                    match pshape.type_.as_str() {
                        "blob" => Some(Value::String(
                            base64::engine::general_purpose::STANDARD.encode(body),
                        )),
                        "string" => Some(Value::String(String::from_utf8_lossy(body).into_owned())),
                        _ if xml => match self.xml_root()? {
                            Some(root) => self.xml_value(&root, Some(pref), pshape),
                            None => None,
                        },
                        _ => {
                            let v = self.json_body()?;
                            self.json_value(&v, Some(pref), pshape)
                        }
                    }
                };
                if let Some(val) = val {
                    obj.insert(pname.to_string(), val);
                }
            }
        } else if xml {
            if let Some(root) = self.xml_root()? {
                if let Some((mname, val)) = self.root_is_member(&root, shape) {
                    // S3 GetBucketLocation: the document is the one member itself.
                    obj.insert(mname, val);
                } else if let Some(Value::Object(m)) = self.xml_value(&root, None, shape) {
                    obj.extend(m);
                }
            }
        } else {
            let v = self.json_body()?;
            if let Some(Value::Object(m)) = self.json_value(&v, None, shape) {
                obj.extend(m);
            }
        }
        Ok(Value::Object(obj))
    }

    /// A rest-xml document whose root element is the output's single scalar body member
    /// (`<LocationConstraint>EU</LocationConstraint>`).
    fn root_is_member(&self, root: &Node, shape: &Shape) -> Option<(String, Value)> {
        if !root.children.is_empty() {
            return None;
        }
        let mut body = shape.members.iter().filter(|(_, r)| !super::http_bound(r));
        let (mname, mref) = body.next()?;
        if body.next().is_some() {
            return None;
        }
        let wire = mref.location_name.as_deref().unwrap_or(mname);
        let mshape = self.shape_of(mref)?;
        if wire != root.name || matches!(mshape.type_.as_str(), "structure" | "list" | "map") {
            return None;
        }
        if root.text.is_empty() {
            return None;
        }
        Some((mname.clone(), text_scalar(mshape, &root.text, false)?))
    }

    // ---------- errors ----------

    fn error(&self, protocol: Protocol) -> ClientError {
        let status = self.resp.status;
        let mut err = ClientError {
            status,
            code: String::new(),
            message: String::new(),
            fields: Box::default(),
        };
        match protocol {
            Protocol::Query | Protocol::Ec2 | Protocol::RestXml => {
                let root = match self.xml_root() {
                    Ok(r) => r,
                    Err(e) => return e,
                };
                let enode = root.as_ref().and_then(|r| r.find("Error"));
                if let Some(enode) = enode {
                    err.code = enode
                        .child("Code")
                        .map(|c| c.text.trim().to_string())
                        .unwrap_or_default();
                    err.message = enode
                        .child("Message")
                        .map(|c| c.text.clone())
                        .unwrap_or_default();
                }
                if err.code.is_empty() {
                    err.code = status.to_string();
                }
                if let Some((_, shape)) = error_shape(self.model, &err.code) {
                    if let Some(Value::Object(m)) =
                        enode.and_then(|n| self.xml_value(n, None, shape))
                    {
                        err.fields = Box::new(m);
                    }
                    if protocol == Protocol::RestXml {
                        self.bound_error(shape, &mut err.fields);
                    }
                }
            }
            Protocol::Json | Protocol::RestJson => {
                let body = match self.json_body() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let body_code = body
                    .get("__type")
                    .or_else(|| body.get("code"))
                    .and_then(Value::as_str);
                err.code = self
                    .query_error_code()
                    .or_else(|| self.header("x-amzn-errortype").map(sanitize_code))
                    .or_else(|| body_code.map(sanitize_code))
                    .unwrap_or_else(|| status.to_string());
                err.message = ["message", "Message", "errorMessage"]
                    .iter()
                    .find_map(|k| body.get(*k).and_then(Value::as_str))
                    .unwrap_or_default()
                    .to_string();
                if let Some((_, shape)) = error_shape(self.model, &err.code) {
                    if let Some(Value::Object(m)) = self.json_value(&body, None, shape) {
                        err.fields = Box::new(m);
                    }
                    if protocol == Protocol::RestJson {
                        self.bound_error(shape, &mut err.fields);
                    }
                }
            }
            Protocol::RpcV2Cbor => {
                let body = match self.cbor_body() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let text_of = |key: &str| -> Option<String> {
                    let Cbor::Map(entries) = &body else {
                        return None;
                    };
                    entries.iter().find_map(|(k, v)| match (k, v) {
                        (Cbor::Text(k), Cbor::Text(v)) if k == key => Some(v.clone()),
                        _ => None,
                    })
                };
                err.code = self
                    .query_error_code()
                    .or_else(|| text_of("__type").map(|c| sanitize_code(&c)))
                    .unwrap_or_else(|| status.to_string());
                err.message = text_of("message")
                    .or_else(|| text_of("Message"))
                    .unwrap_or_default();
                if let Some((_, shape)) = error_shape(self.model, &err.code) {
                    if let Some(Value::Object(m)) = self.cbor_value(&body, shape) {
                        err.fields = Box::new(m);
                    }
                }
            }
        }
        err
    }

    /// The awsQuery code from `x-amzn-query-error` on query-compatible services.
    fn query_error_code(&self) -> Option<String> {
        if !self.model.metadata.is_query_compatible() {
            return None;
        }
        let raw = self.header("x-amzn-query-error")?;
        let code = raw.split(';').next()?.trim();
        (!code.is_empty()).then(|| code.to_string())
    }

    /// Header-bound members of an error shape.
    fn bound_error(&self, shape: &Shape, fields: &mut Map<String, Value>) {
        for (mname, mref) in &shape.members {
            if mref.location.as_deref() != Some("header") {
                continue;
            }
            let Some(mshape) = self.shape_of(mref) else {
                continue;
            };
            let name = mref.location_name.as_deref().unwrap_or(mname);
            if let Some(v) = self.header_member(name, mref, mshape) {
                fields.insert(mname.clone(), v);
            }
        }
    }
}

fn int_value(i: i128) -> Option<Value> {
    if let Ok(v) = i64::try_from(i) {
        Some(Value::from(v))
    } else {
        u64::try_from(i).ok().map(Value::from)
    }
}

fn cbor_number(v: &Cbor) -> Option<f64> {
    match v {
        Cbor::Integer(i) => Some(i128::from(*i) as f64),
        Cbor::Float(f) => Some(*f),
        _ => None,
    }
}

/// A CBOR value without model information as JSON (documents).
fn cbor_plain(v: &Cbor) -> Option<Value> {
    Some(match v {
        Cbor::Null => return None,
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Integer(i) => int_value(i128::from(*i))?,
        Cbor::Float(f) => float_value(*f),
        Cbor::Text(s) => Value::String(s.clone()),
        Cbor::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Array(a) => Value::Array(a.iter().filter_map(cbor_plain).collect()),
        Cbor::Map(m) => Value::Object(
            m.iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k.clone(), cbor_plain(v)?)),
                    _ => None,
                })
                .collect(),
        ),
        Cbor::Tag(_, inner) => return cbor_plain(inner),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists() {
        assert_eq!(split_header_list("a, b, c", false), vec!["a", "b", "c"]);
        assert_eq!(
            split_header_list(r#""b,c", "\"def\"", a"#, false),
            vec!["b,c", "\"def\"", "a"]
        );
        assert_eq!(
            split_header_list(
                "Mon, 16 Dec 2019 23:48:18 GMT, Mon, 16 Dec 2019 23:48:18 GMT",
                true
            ),
            vec![
                "Mon, 16 Dec 2019 23:48:18 GMT",
                "Mon, 16 Dec 2019 23:48:18 GMT"
            ]
        );
        assert_eq!(split_header_list("", false), vec![""]);
    }

    #[test]
    fn codes() {
        assert_eq!(
            sanitize_code("aws.protocoltests.restjson#FooError:http://x/y"),
            "FooError"
        );
        assert_eq!(sanitize_code("FooError"), "FooError");
    }

    #[test]
    fn xml_dom() {
        let root =
            parse_xml(b"<?xml version=\"1.0\"?><a x=\"1\"><b>t&amp;<![CDATA[<c>]]></b><d/></a>")
                .unwrap()
                .unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("x"), Some("1"));
        assert_eq!(root.child("b").unwrap().text, "t&<c>");
        assert!(root.child("d").is_some());
        assert!(parse_xml(b"<a><b></a>").is_err());
    }
}
