//! Shared by every fuzz target: how a fuzz input becomes an [`HttpRequest`] and a model, and
//! the parse pipeline each target drives (`detect_protocol` -> `resolve_operation` ->
//! `parse_request`, then the serializers on whatever came out). Nothing here may panic on
//! its own: a panic must come from the code under test.
//!
//! Input layout (what `scripts/fuzz` writes as seeds):
//!
//! ```text
//! byte 0      model selector: index into the target's model list (modulo its length)
//! bytes 1..3  operation selector: u16 little-endian (modulo the model's operation count)
//! byte 3      flags: bit 0 = raw (use the request exactly as given); otherwise the target
//!             stamps the chosen operation's identity (Action, X-Amz-Target, path...) on it
//! bytes 4..   "METHOD URI\n", then "Name: value\n" header lines, a blank line, the body
//! ```
//!
//! The model list of a target is its real vendored models followed by one model per suite of
//! its botocore protocol test-vector files (each suite has its own shapes), so the seeds built
//! from the vectors parse against exactly the model they were written for.

#![allow(dead_code)]

use fc_protocol::{
    detect_protocol, parse_request, resolve_operation, serialize_error, serialize_response,
    service_model, HttpRequest, Operation, Protocol, ResponseContext, ServiceModel,
};
use serde_json::{Map, Value};

pub const QUERY_VECTORS: &str = include_str!("../../../models/protocol-tests/input/query.json");
pub const EC2_VECTORS: &str = include_str!("../../../models/protocol-tests/input/ec2.json");
pub const JSON_VECTORS: &str = include_str!("../../../models/protocol-tests/input/json.json");
pub const JSON10_VECTORS: &str = include_str!("../../../models/protocol-tests/input/json_1_0.json");
pub const JSON10_QC_VECTORS: &str =
    include_str!("../../../models/protocol-tests/input/json_1_0-query-compatible.json");
pub const REST_JSON_VECTORS: &str =
    include_str!("../../../models/protocol-tests/input/rest-json.json");
pub const REST_XML_VECTORS: &str =
    include_str!("../../../models/protocol-tests/input/rest-xml.json");
pub const CBOR_VECTORS: &str =
    include_str!("../../../models/protocol-tests/input/smithy-rpc-v2-cbor.json");
pub const CBOR_QC_VECTORS: &str =
    include_str!("../../../models/protocol-tests/input/smithy-rpc-v2-cbor-query-compatible.json");
pub const CBOR_NQC_VECTORS: &str = include_str!(
    "../../../models/protocol-tests/input/smithy-rpc-v2-cbor-non-query-compatible.json"
);

/// The four selector bytes at the start of an input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selector {
    pub model: u8,
    pub op: u16,
    pub flags: u8,
}

impl Selector {
    pub fn raw(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Split an input into its selector and the request text (short inputs read as zeros).
pub fn split(data: &[u8]) -> (Selector, &[u8]) {
    let mut sel = [0u8; 4];
    let n = data.len().min(4);
    sel[..n].copy_from_slice(&data[..n]);
    (
        Selector {
            model: sel[0],
            op: u16::from_le_bytes([sel[1], sel[2]]),
            flags: sel[3],
        },
        &data[n..],
    )
}

/// A request as read from the input text, before it becomes an [`HttpRequest`].
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Parse `METHOD URI\nName: value\n...\n\nbody`. Anything goes: a missing part is empty.
    pub fn parse(text: &[u8]) -> RawRequest {
        let (head, body) = match text.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => (text, &b""[..]),
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("");
        let (method, uri) = first.split_once(' ').unwrap_or((first, "/"));
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| match l.split_once(':') {
                Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                None => (l.trim().to_string(), String::new()),
            })
            .collect();
        RawRequest {
            method: method.to_string(),
            uri: uri.trim().to_string(),
            headers,
            body: body.to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Set a header, replacing every value it had.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    /// Add a header unless the request already has one of that name.
    pub fn default_header(&mut self, name: &str, value: &str) {
        if self.header(name).is_none() {
            self.headers.push((name.to_string(), value.to_string()));
        }
    }

    pub fn path(&self) -> &str {
        self.uri
            .split_once('?')
            .map_or(self.uri.as_str(), |(p, _)| p)
    }

    pub fn query(&self) -> &str {
        self.uri.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn to_http(&self) -> HttpRequest {
        HttpRequest::from_uri(
            &self.method,
            &self.uri,
            self.headers.clone(),
            self.body.clone().into(),
        )
    }
}

/// The real vendored models named, then one model per suite of each vector file.
pub fn load_models(real: &[&str], vector_files: &[&str]) -> Vec<&'static ServiceModel> {
    let mut out: Vec<&'static ServiceModel> = real
        .iter()
        .map(|name| service_model(name).expect("a vendored service the fuzz target names"))
        .collect();
    for text in vector_files {
        let suites: Vec<Value> =
            serde_json::from_str(text).expect("the vendored protocol test vectors are JSON");
        for (i, suite) in suites.iter().enumerate() {
            out.push(Box::leak(Box::new(suite_model(i, suite))));
        }
    }
    out
}

/// A model for one test-vector suite: its metadata and shapes, and every operation its cases
/// use (`given`), in order of first use (the seed writer numbers them the same way).
fn suite_model(index: usize, suite: &Value) -> ServiceModel {
    let mut operations = Map::new();
    if let Some(cases) = suite.get("cases").and_then(Value::as_array) {
        for case in cases {
            if let Some(given) = case.get("given") {
                let name = given.get("name").and_then(Value::as_str).unwrap_or("");
                if !operations.contains_key(name) {
                    operations.insert(name.to_string(), given.clone());
                }
            }
        }
    }
    let value = serde_json::json!({
        "metadata": suite.get("metadata").cloned().unwrap_or(Value::Null),
        "shapes": suite.get("shapes").cloned().unwrap_or_else(|| Value::Object(Map::new())),
        "operations": operations,
    });
    ServiceModel::from_value(&format!("protocol-test-{index}"), value)
        .expect("a protocol test-vector suite is a valid model")
}

pub fn pick_model<'a>(models: &[&'a ServiceModel], sel: &Selector) -> &'a ServiceModel {
    models[usize::from(sel.model) % models.len()]
}

pub fn pick_operation<'a>(model: &'a ServiceModel, sel: &Selector) -> Option<&'a Operation> {
    if model.operations.is_empty() {
        return None;
    }
    model
        .operations
        .get_index(usize::from(sel.op) % model.operations.len())
        .map(|(_, op)| op)
}

/// Fill a REST `requestUri` template (`/2015-03-31/functions/{FunctionName}/invocations`,
/// `/{Bucket}/{Key+}?uploads`) with the segments of `path`, then append `query`.
pub fn fill_template(template: &str, path: &str, query: &str) -> String {
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(len) => {
                let label = &rest[start..start + len];
                let greedy = label.ends_with('+');
                let fill: String = if greedy {
                    segs.by_ref().collect::<Vec<_>>().join("/")
                } else {
                    segs.next().unwrap_or("x").to_string()
                };
                out.push_str(if fill.is_empty() { "x" } else { &fill });
                rest = &rest[start + len + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    if !query.is_empty() {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(query);
    }
    out
}

/// The pipeline the server runs on a request: detect, resolve, parse, and serialize whatever
/// came out (the parsed input through the output serializer too: serializers must accept any
/// value). With `also`, the same again with that protocol forced, whatever detection said.
pub fn exercise(model: &ServiceModel, req: &HttpRequest, also: Option<Protocol>) {
    let detected = detect_protocol(model, req);
    run(model, detected, req);
    if let Some(p) = also {
        if p != detected {
            run(model, p, req);
        }
    }
}

fn run(model: &ServiceModel, protocol: Protocol, req: &HttpRequest) {
    let ctx = ResponseContext {
        request_id: "fuzz".to_string(),
    };
    match resolve_operation(model, protocol, req) {
        Ok(op) => match parse_request(model, protocol, op, req) {
            Ok(value) => {
                let _ = serialize_response(model, protocol, op, &value, &ctx);
            }
            Err(err) => {
                let _ = serialize_error(model, protocol, Some(op), &err, &ctx);
            }
        },
        Err(err) => {
            let _ = serialize_error(model, protocol, None, &err, &ctx);
        }
    }
}
