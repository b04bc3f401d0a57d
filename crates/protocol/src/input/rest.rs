//! The REST protocols (rest-json, rest-xml): operations found by method + `requestUri`
//! template, inputs read from URI labels, query parameters, headers and the body.
//!
//! Templates are compiled into a [`Matcher`] once per vendored model (cached for the process)
//! or per call for other models. When several templates match a request the most specific
//! wins: more literal path segments, then more literal query parameters (`?tagging`,
//! `?list-type=2`), then the one whose required query/header members are all present (S3's
//! `UploadPart` over `PutObject`), then non-deprecated, then model order.

use super::{
    b64, b64_decode, expected_for, json, scalar_from_text, target, xml, Fault, Parsed, Seg,
};
use crate::http::percent_decode;
use crate::model::Shape;
use crate::{ApiError, HttpRequest, Operation, Protocol, ServiceModel, ShapeRef};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone)]
enum TSeg {
    Literal(String),
    Label(String),
    Greedy(String),
}

/// One compiled `requestUri` template.
#[derive(Debug, Clone)]
struct Template {
    segs: Vec<TSeg>,
    /// Literal query parameters (`?tagging` -> ("tagging", None), `?list-type=2`).
    query: Vec<(String, Option<String>)>,
}

impl Template {
    fn compile(uri: &str) -> Template {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let segs = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(label) => match label.strip_suffix('+') {
                        Some(greedy) => TSeg::Greedy(greedy.to_string()),
                        None => TSeg::Label(label.to_string()),
                    },
                    None => TSeg::Literal(s.to_string()),
                },
            )
            .collect();
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (percent_decode(k), Some(percent_decode(v))),
                None => (percent_decode(p), None),
            })
            .collect();
        Template { segs, query }
    }

    fn literal_count(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| matches!(s, TSeg::Literal(_)))
            .count()
    }

    /// Match the raw request path segments; the decoded labels on success.
    fn match_path(&self, raw: &[&str]) -> Option<Vec<(String, String)>> {
        let mut labels = Vec::new();
        self.walk(raw, Some(&mut labels)).then_some(labels)
    }

    /// Whether the raw path segments match, without decoding labels (no allocation unless a
    /// literal segment arrives percent-encoded): every request tries every route of its method.
    fn matches_path(&self, raw: &[&str]) -> bool {
        self.walk(raw, None)
    }

    fn walk(&self, raw: &[&str], mut labels: Option<&mut Vec<(String, String)>>) -> bool {
        let mut i = 0;
        for (t, seg) in self.segs.iter().enumerate() {
            match seg {
                TSeg::Literal(lit) => {
                    let Some(got) = raw.get(i) else {
                        return false;
                    };
                    if *got != lit && (!got.contains('%') || percent_decode(got) != *lit) {
                        return false;
                    }
                    i += 1;
                }
                TSeg::Label(name) => {
                    let Some(got) = raw.get(i) else {
                        return false;
                    };
                    if got.is_empty() {
                        return false;
                    }
                    if let Some(l) = labels.as_deref_mut() {
                        l.push((name.clone(), percent_decode(got)));
                    }
                    i += 1;
                }
                TSeg::Greedy(name) => {
                    let tail = self.segs.len() - t - 1;
                    let Some(end) = raw.len().checked_sub(tail) else {
                        return false;
                    };
                    // The joined segments are empty only when they are one empty segment.
                    if end <= i || (end - i == 1 && raw[i].is_empty()) {
                        return false;
                    }
                    if let Some(l) = labels.as_deref_mut() {
                        l.push((name.clone(), percent_decode(&raw[i..end].join("/"))));
                    }
                    i = end;
                }
            }
        }
        // Allow one trailing slash.
        matches!(&raw[i.min(raw.len())..], [] | [""])
    }

    fn match_query(&self, pairs: &[(String, String)]) -> bool {
        self.query.iter().all(|(k, v)| {
            pairs
                .iter()
                .any(|(pk, pv)| pk == k && v.as_ref().is_none_or(|v| v == pv))
        })
    }
}

/// Where a required member of an operation must appear for it to be the one meant.
#[derive(Debug, Clone)]
enum Needed {
    Query(String),
    Header(String),
}

#[derive(Debug, Clone)]
struct Route {
    /// Index into `model.operations`.
    op: usize,
    template: Template,
    needed: Vec<Needed>,
    deprecated: bool,
}

/// How well a route fits a request (higher is better, compared in order): literal path
/// segments, literal query parameters, all required query/header members present, number of
/// those members, not deprecated.
type Score = (usize, usize, bool, usize, bool);

/// All operations of a model by HTTP method.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    by_method: HashMap<String, Vec<Route>>,
}

fn split_path(path: &str) -> Vec<&str> {
    let p = path.strip_prefix('/').unwrap_or(path);
    p.split('/').collect()
}

fn needed_params(model: &ServiceModel, op: &Operation) -> Vec<Needed> {
    let Some(shape) = op.input.as_ref().and_then(|r| model.shape(&r.shape)) else {
        return Vec::new();
    };
    shape
        .required
        .iter()
        .filter_map(|name| {
            let m = shape.members.get(name)?;
            let wire = m.location_name.clone().unwrap_or_else(|| name.clone());
            match m.location.as_deref() {
                Some("querystring") if target(model, m).type_ != "map" => Some(Needed::Query(wire)),
                Some("header") => Some(Needed::Header(wire)),
                _ => None,
            }
        })
        .collect()
}

impl Matcher {
    fn build(model: &ServiceModel, deprecated: &dyn Fn(&str) -> bool) -> Matcher {
        let mut by_method: HashMap<String, Vec<Route>> = HashMap::new();
        for (i, (name, op)) in model.operations.iter().enumerate() {
            by_method
                .entry(op.http.method.to_ascii_uppercase())
                .or_default()
                .push(Route {
                    op: i,
                    template: Template::compile(&op.http.request_uri),
                    needed: needed_params(model, op),
                    deprecated: deprecated(name),
                });
        }
        Matcher { by_method }
    }

    fn find(&self, req: &HttpRequest) -> Option<usize> {
        let routes = self.by_method.get(&req.method.to_ascii_uppercase())?;
        let raw = split_path(&req.path);
        let pairs = req.query_pairs();
        let mut best: Option<(Score, usize)> = None;
        for route in routes {
            if !route.template.matches_path(&raw) || !route.template.match_query(&pairs) {
                continue;
            }
            let all_present = route.needed.iter().all(|n| match n {
                Needed::Query(k) => pairs.iter().any(|(pk, _)| pk == k),
                Needed::Header(h) => req.header(h).is_some(),
            });
            let score = (
                route.template.literal_count(),
                route.template.query.len(),
                all_present,
                route.needed.len(),
                !route.deprecated,
            );
            // Strictly greater: on a tie the earlier operation in model order stays.
            let better = match &best {
                None => true,
                Some((b, _)) => score > *b,
            };
            if better {
                best = Some((score, route.op));
            }
        }
        best.map(|(_, op)| op)
    }
}

/// The names of deprecated operations in a vendored model's text.
fn deprecated_ops(text: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    v.get("operations")
        .and_then(Value::as_object)
        .map(|ops| {
            ops.iter()
                .filter(|(_, o)| o.get("deprecated").and_then(Value::as_bool) == Some(true))
                .map(|(n, _)| n.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The matcher of a model: cached when the model is a vendored one, else built now.
fn matcher_for(model: &ServiceModel) -> Cow<'static, Matcher> {
    static CACHE: OnceLock<HashMap<&'static str, OnceLock<Matcher>>> = OnceLock::new();
    let vendored = crate::model::service_model(&model.name)
        .filter(|m| std::ptr::eq(*m, model))
        .and_then(|m| {
            let (name, text) = crate::model::SERVICES
                .iter()
                .find(|(n, _)| *n == model.name)?;
            Some((m, *name, *text))
        });
    match vendored {
        Some((m, name, text)) => {
            let cache = CACHE.get_or_init(|| {
                crate::model::SERVICES
                    .iter()
                    .map(|(n, _)| (*n, OnceLock::new()))
                    .collect()
            });
            match cache.get(name) {
                Some(cell) => Cow::Borrowed(cell.get_or_init(|| {
                    let deprecated = deprecated_ops(text);
                    Matcher::build(m, &|op| deprecated.iter().any(|d| d == op))
                })),
                None => Cow::Owned(Matcher::build(model, &|_| false)),
            }
        }
        None => Cow::Owned(Matcher::build(model, &|_| false)),
    }
}

/// The operation of a REST request.
// The error type is the crate's one API error (see `resolve_operation`).
#[allow(clippy::result_large_err)]
pub(crate) fn resolve<'m>(
    model: &'m ServiceModel,
    req: &HttpRequest,
) -> Result<&'m Operation, ApiError> {
    let matcher = matcher_for(model);
    matcher
        .find(req)
        .and_then(|i| model.operations.get_index(i))
        .map(|(_, op)| op)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "UnknownOperationException",
                format!("no operation matches {} {}", req.method, req.path),
            )
        })
}

/// Split a header list value on commas outside double quotes, unquoting quoted items.
fn split_header_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => quoted = false,
            '"' if cur.trim().is_empty() => {
                quoted = true;
                was_quoted = true;
                cur.clear();
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !quoted => {
                items.push(finish_item(&cur, was_quoted));
                cur.clear();
                was_quoted = false;
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() || !items.is_empty() || was_quoted {
        items.push(finish_item(&cur, was_quoted));
    }
    items
}

fn finish_item(s: &str, quoted: bool) -> String {
    if quoted {
        s.to_string()
    } else {
        s.trim().to_string()
    }
}

/// HTTP dates contain a comma: put `Mon` and `16 Dec 2019 ...` back together.
fn rejoin_http_dates(items: Vec<String>) -> Vec<String> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut out: Vec<String> = Vec::new();
    let mut iter = items.into_iter().peekable();
    while let Some(item) = iter.next() {
        if DAYS.contains(&item.as_str()) {
            if let Some(next) = iter.next() {
                out.push(format!("{item}, {next}"));
                continue;
            }
        }
        out.push(item);
    }
    out
}

/// All values of a header, joined as one comma-separated value.
fn header_value(req: &HttpRequest, name: &str) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(", "))
    }
}

fn header_member(model: &ServiceModel, r: &ShapeRef, text: &str) -> Parsed<Option<Value>> {
    let shape = target(model, r);
    match shape.type_.as_str() {
        "list" => {
            let Some(item) = shape.member.as_deref() else {
                return Ok(None);
            };
            let item_shape = target(model, item);
            if text.trim().is_empty() {
                return Ok(Some(Value::Array(Vec::new())));
            }
            let mut items = split_header_list(text);
            if item_shape.type_ == "timestamp" {
                items = rejoin_http_dates(items);
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                out.push(scalar_from_text(item_shape, it).map_err(|f| f.at(Seg::Index(i)))?);
            }
            Ok(Some(Value::Array(out)))
        }
        "string" if r.json_value == Some(true) || shape.json_value == Some(true) => {
            let bytes = b64_decode(text.trim())
                .ok_or_else(|| Fault::invalid(text, expected_for("blob")))?;
            Ok(Some(Value::from(
                String::from_utf8_lossy(&bytes).into_owned(),
            )))
        }
        "string" => Ok(Some(Value::from(text.trim()))),
        _ => scalar_from_text(shape, text).map(Some),
    }
}

fn query_member(
    model: &ServiceModel,
    r: &ShapeRef,
    key: &str,
    pairs: &[(String, String)],
) -> Parsed<Option<Value>> {
    let shape = target(model, r);
    let mut values = pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
    if shape.type_ == "list" {
        let Some(item) = shape.member.as_deref() else {
            return Ok(None);
        };
        let item_shape = target(model, item);
        let mut out = Vec::new();
        for (i, v) in values.enumerate() {
            out.push(scalar_from_text(item_shape, v).map_err(|f| f.at(Seg::Index(i)))?);
        }
        return Ok(if out.is_empty() {
            None
        } else {
            Some(Value::Array(out))
        });
    }
    match values.next() {
        Some(v) => scalar_from_text(shape, v).map(Some),
        None => Ok(None),
    }
}

/// A `location: querystring` map: every parameter not bound to another member or to the
/// template.
fn query_map(
    model: &ServiceModel,
    shape: &Shape,
    bound: &[&str],
    pairs: &[(String, String)],
) -> Parsed<Option<Value>> {
    let Some(value_ref) = shape.value.as_deref() else {
        return Ok(None);
    };
    let vshape = target(model, value_ref);
    let mut out = Map::new();
    for (k, v) in pairs {
        if bound.contains(&k.as_str()) {
            continue;
        }
        if vshape.type_ == "list" {
            let item = vshape
                .member
                .as_deref()
                .map(|m| target(model, m))
                .unwrap_or(vshape);
            let parsed = scalar_from_text(item, v).map_err(|f| f.at(Seg::Key(k.clone())))?;
            match out
                .entry(k.clone())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(a) => a.push(parsed),
                other => *other = Value::Array(vec![parsed]),
            }
        } else if !out.contains_key(k) {
            let parsed = scalar_from_text(vshape, v).map_err(|f| f.at(Seg::Key(k.clone())))?;
            out.insert(k.clone(), parsed);
        }
    }
    Ok(if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    })
}

/// A `location: headers` map: every header starting with the prefix, keyed by the rest.
fn header_map(
    model: &ServiceModel,
    shape: &Shape,
    prefix: &str,
    req: &HttpRequest,
) -> Parsed<Option<Value>> {
    let vshape = shape
        .value
        .as_deref()
        .map(|v| target(model, v))
        .unwrap_or(shape);
    let mut out = Map::new();
    for (name, value) in &req.headers {
        if name.len() < prefix.len() || !name.is_char_boundary(prefix.len()) {
            continue;
        }
        let (head, rest) = name.split_at(prefix.len());
        if !head.eq_ignore_ascii_case(prefix) {
            continue;
        }
        let parsed = if vshape.type_ == "string" {
            Value::from(value.trim())
        } else {
            scalar_from_text(vshape, value).map_err(|f| f.at(Seg::Key(rest.to_string())))?
        };
        match out.get_mut(rest) {
            Some(Value::String(existing)) if vshape.type_ == "string" => {
                existing.push_str(", ");
                existing.push_str(value.trim());
            }
            Some(_) => {}
            None => {
                out.insert(rest.to_string(), parsed);
            }
        }
    }
    Ok(if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    })
}

/// Parse the input of a REST request.
pub(crate) fn parse(
    model: &ServiceModel,
    protocol: Protocol,
    op: &Operation,
    input: &ShapeRef,
    req: &HttpRequest,
) -> Parsed<Value> {
    let shape = target(model, input);
    let template = Template::compile(&op.http.request_uri);
    let labels = template
        .match_path(&split_path(&req.path))
        .unwrap_or_default();
    let pairs = req.query_pairs();
    let mut bound: Vec<&str> = template.query.iter().map(|(k, _)| k.as_str()).collect();
    for (name, m) in &shape.members {
        if m.location.as_deref() == Some("querystring") && target(model, m).type_ != "map" {
            bound.push(m.location_name.as_deref().unwrap_or(name));
        }
    }

    let mut out = Map::new();
    let mut has_body_members = false;
    for (name, m) in &shape.members {
        let wire = m.location_name.as_deref().unwrap_or(name);
        let at = |f: Fault| f.at(Seg::Member(name.clone()));
        let value = match m.location.as_deref() {
            Some("uri") => match labels.iter().find(|(l, _)| l == wire) {
                Some((_, text)) => Some(scalar_from_text(target(model, m), text).map_err(at)?),
                None => None,
            },
            Some("querystring") => {
                let mshape = target(model, m);
                if mshape.type_ == "map" {
                    query_map(model, mshape, &bound, &pairs).map_err(at)?
                } else {
                    query_member(model, m, wire, &pairs).map_err(at)?
                }
            }
            Some("header") => match header_value(req, wire) {
                Some(text) => header_member(model, m, &text).map_err(at)?,
                None => None,
            },
            Some("headers") => header_map(model, target(model, m), wire, req).map_err(at)?,
            Some(_) => None,
            None => {
                has_body_members = true;
                None
            }
        };
        if let Some(v) = value {
            out.insert(name.clone(), v);
        }
    }

    if let Some(payload) = shape.payload.as_deref() {
        if let Some(pref) = shape.members.get(payload) {
            let at = |f: Fault| f.at(Seg::Member(payload.to_string()));
            if let Some(v) = payload_value(model, protocol, pref, &req.body).map_err(at)? {
                out.insert(payload.to_string(), v);
            }
        }
    } else if has_body_members {
        let body_members = match protocol {
            Protocol::RestXml => match xml::read_document(&req.body)? {
                Some(root) => xml::structure_members(model, shape, &root, 0)?,
                None => Map::new(),
            },
            _ => match json::read_document(&req.body)? {
                Some(Value::Object(obj)) => json::structure_members(model, shape, &obj, true, 0)?,
                Some(_) => {
                    return Err(Fault::Malformed(
                        "the request body must be a JSON object".to_string(),
                    ))
                }
                None => Map::new(),
            },
        };
        out.extend(body_members);
    }
    Ok(Value::Object(out))
}

/// The `payload` member: the raw body for blobs and strings, else a document.
fn payload_value(
    model: &ServiceModel,
    protocol: Protocol,
    r: &ShapeRef,
    body: &[u8],
) -> Parsed<Option<Value>> {
    let shape = target(model, r);
    match shape.type_.as_str() {
        "blob" => Ok((!body.is_empty()).then(|| Value::from(b64(body)))),
        "string" => {
            Ok((!body.is_empty()).then(|| Value::from(String::from_utf8_lossy(body).into_owned())))
        }
        _ => match protocol {
            Protocol::RestXml => match xml::read_document(body)? {
                Some(root) => xml::element(model, r, &root, 0),
                None => Ok(None),
            },
            _ => match json::read_document(body)? {
                Some(doc) => json::convert(model, r, &doc, 0),
                None => Ok(None),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match() {
        let t = Template::compile("/{Bucket}/{Key+}?tagging");
        assert_eq!(t.query, vec![("tagging".to_string(), None)]);
        let labels = t.match_path(&split_path("/b/a/b%20c/")).expect("matches");
        assert_eq!(labels[1].1, "a/b c/");
        assert!(t.match_path(&split_path("/b")).is_none());
        assert!(t.match_path(&split_path("/b/")).is_none());
        let t = Template::compile("/{Bucket}");
        assert!(t.match_path(&split_path("/b/")).is_some());
        assert!(t.match_path(&split_path("/b/c")).is_none());
        let t = Template::compile("/");
        assert!(t.match_path(&split_path("/")).is_some());
        assert!(t.match_path(&split_path("/x")).is_none());
    }

    #[test]
    fn header_lists() {
        assert_eq!(split_header_list("a, b,c"), vec!["a", "b", "c"]);
        assert_eq!(
            split_header_list(r#""b,c", "\"def\"", a"#),
            vec!["b,c", "\"def\"", "a"]
        );
        assert_eq!(
            rejoin_http_dates(split_header_list(
                "Mon, 16 Dec 2019 23:48:18 GMT, Mon, 16 Dec 2019 23:48:18 GMT"
            )),
            vec![
                "Mon, 16 Dec 2019 23:48:18 GMT",
                "Mon, 16 Dec 2019 23:48:18 GMT"
            ]
        );
    }
}
