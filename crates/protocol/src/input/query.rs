//! awsQuery and ec2Query: form parameters (`A.B.member.1.C=v`) read into values.
//!
//! Parameters are first folded into a tree on their `.`-separated names, then read by the
//! shape. Reading is lenient where clients differ: lists are accepted with or without the
//! `member` wrapper, maps with or without `entry`, and flattened collections of JSON-era
//! models (SQS) under their historical singular names (`MessageAttribute.1.Name`). An SQS
//! request posted to a queue's URL without `QueueUrl` gets the URL from its host and path.

use super::{
    expected_for, is_document, is_flattened, scalar_from_text, target, Fault, Parsed, Seg,
    MAX_DEPTH,
};
use crate::http::decode_form;
use crate::model::Shape;
use crate::{HttpRequest, Protocol, ServiceModel, ShapeRef};
use indexmap::IndexMap;
use serde_json::{Map, Value};

/// All form parameters of a request: the query string, then a form body (a POST with
/// `application/x-www-form-urlencoded`, or with no content type at all).
pub(crate) fn request_params(req: &HttpRequest) -> Vec<(String, String)> {
    let mut params = req.query_pairs();
    let form = match req.header("content-type") {
        Some(ct) => ct
            .trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded"),
        None => !req.body.is_empty(),
    };
    if form {
        params.extend(decode_form(&req.body));
    }
    params
}

/// A node of the parameter tree.
#[derive(Debug, Default)]
struct Node {
    value: Option<String>,
    children: IndexMap<String, Node>,
}

impl Node {
    fn insert(&mut self, key: &str, value: String) {
        if key.split('.').count() > MAX_DEPTH {
            return;
        }
        let mut node = self;
        for part in key.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        // The first occurrence of a parameter wins.
        if node.value.is_none() {
            node.value = Some(value);
        }
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.get(name)
    }

    /// Children whose names are positive integers, in index order.
    fn numbered(&self) -> Vec<&Node> {
        let mut items: Vec<(u64, &Node)> = self
            .children
            .iter()
            .filter_map(|(k, n)| k.parse::<u64>().ok().map(|i| (i, n)))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, n)| n).collect()
    }

    fn is_empty_marker(&self) -> bool {
        self.children.is_empty() && matches!(self.value.as_deref(), None | Some(""))
    }
}

/// Parse the input of a query (or, with `ec2`, an EC2 query) request.
pub(crate) fn parse(
    model: &ServiceModel,
    input: &ShapeRef,
    req: &HttpRequest,
    ec2: bool,
) -> Parsed<Value> {
    let mut root = Node::default();
    for (k, v) in request_params(req) {
        root.insert(&k, v);
    }
    let shape = target(model, input);
    let reader = Reader { model, ec2 };
    let mut value = reader.structure(shape, &root, 0)?;
    if !ec2 {
        fill_queue_url(model, shape, req, &mut value);
    }
    Ok(value)
}

/// Older SQS clients post query requests to the queue's own URL
/// (`POST /000000000000/my-queue` with `Action=SendMessage&...`) and leave `QueueUrl` out:
/// the queue is then the one the request was sent to.
fn fill_queue_url(model: &ServiceModel, shape: &Shape, req: &HttpRequest, value: &mut Value) {
    if crate::output::sqs_query::names(model, Protocol::Query).is_none()
        || !shape.members.contains_key("QueueUrl")
    {
        return;
    }
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    if obj.contains_key("QueueUrl") {
        return;
    }
    let host = req.header("host").unwrap_or_default().trim();
    if let Some(url) = crate::output::sqs_query::queue_url_from_path(host, &req.path) {
        obj.insert("QueueUrl".to_string(), Value::String(url));
    }
}

struct Reader<'m> {
    model: &'m ServiceModel,
    ec2: bool,
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !s.is_empty() && !v.contains(&s) {
        v.push(s);
    }
}

impl Reader<'_> {
    /// The parameter names a member may be sent under, the canonical one first.
    fn names(&self, name: &str, r: &ShapeRef) -> Vec<String> {
        let mut out = Vec::new();
        if self.ec2 {
            if let Some(q) = &r.query_name {
                push_unique(&mut out, q.clone());
            }
            if let Some(l) = &r.location_name {
                push_unique(&mut out, capitalize(l));
                push_unique(&mut out, l.clone());
            }
            push_unique(&mut out, capitalize(name));
            push_unique(&mut out, name.to_string());
            return out;
        }
        let shape = target(self.model, r);
        let list_member = shape.member.as_deref().filter(|_| shape.type_ == "list");
        if shape.type_ == "list" && is_flattened(r, shape) {
            if let Some(l) = list_member.and_then(|m| m.location_name.clone()) {
                push_unique(&mut out, l);
            }
        }
        if let Some(l) = &r.location_name {
            push_unique(&mut out, l.clone());
        }
        push_unique(&mut out, name.to_string());
        if matches!(shape.type_.as_str(), "list" | "map") {
            // Names of JSON-era models sent by query clients: `Attributes` as `Attribute.N`,
            // `Entries` as `<EntryShape>.N`.
            push_unique(&mut out, capitalize(name));
            if let Some(singular) = name.strip_suffix('s') {
                push_unique(&mut out, singular.to_string());
                push_unique(&mut out, capitalize(singular));
                if list_member.is_some() {
                    // SQS `Actions` as `ActionName.N`.
                    push_unique(&mut out, format!("{}Name", capitalize(singular)));
                }
            }
            if let Some(m) = list_member {
                if let Some(l) = &m.location_name {
                    push_unique(&mut out, l.clone());
                }
                push_unique(&mut out, m.shape.clone());
            }
        }
        out
    }

    fn structure(&self, shape: &Shape, node: &Node, depth: usize) -> Parsed<Value> {
        if depth > MAX_DEPTH {
            return Err(Fault::too_deep());
        }
        let mut out = Map::new();
        for (name, mref) in &shape.members {
            let names = self.names(name, mref);
            let collection = matches!(
                target(self.model, mref).type_.as_str(),
                "list" | "map" | "structure"
            );
            // A collection prefers a name that carries children: `Actions` must not read the
            // request's own `Action` parameter.
            let found = names
                .iter()
                .filter_map(|n| node.child(n))
                .find(|c| !collection || !c.children.is_empty())
                .or_else(|| names.iter().find_map(|n| node.child(n)));
            let Some(child) = found else { continue };
            if let Some(v) = self
                .member(mref, child, depth + 1)
                .map_err(|f| f.at(Seg::Member(name.clone())))?
            {
                out.insert(name.clone(), v);
            }
        }
        Ok(Value::Object(out))
    }

    /// The value of one node read as the referenced shape (`None` when it carries nothing).
    fn member(&self, r: &ShapeRef, node: &Node, depth: usize) -> Parsed<Option<Value>> {
        if depth > MAX_DEPTH {
            return Err(Fault::too_deep());
        }
        let shape = target(self.model, r);
        match shape.type_.as_str() {
            "structure" if !is_document(shape) => {
                if node.children.is_empty() && node.value.is_some() {
                    if node.is_empty_marker() {
                        return Ok(Some(Value::Object(Map::new())));
                    }
                    return Err(Fault::invalid(
                        node.value.clone().unwrap_or_default(),
                        expected_for("structure"),
                    ));
                }
                self.structure(shape, node, depth).map(Some)
            }
            "list" => {
                let Some(member) = shape.member.as_deref() else {
                    return Ok(None);
                };
                if node.is_empty_marker() {
                    return Ok(Some(Value::Array(Vec::new())));
                }
                let wrapper = member.location_name.as_deref().unwrap_or("member");
                let container = [wrapper, "member"]
                    .iter()
                    .find_map(|w| node.child(w).filter(|c| !c.numbered().is_empty()))
                    .unwrap_or(node);
                let mut out = Vec::new();
                for (i, item) in container.numbered().into_iter().enumerate() {
                    if let Some(v) = self
                        .member(member, item, depth + 1)
                        .map_err(|f| f.at(Seg::Index(i)))?
                    {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            "map" => {
                let (Some(key), Some(value)) = (shape.key.as_deref(), shape.value.as_deref())
                else {
                    return Ok(None);
                };
                if node.is_empty_marker() {
                    return Ok(Some(Value::Object(Map::new())));
                }
                let container = node
                    .child("entry")
                    .filter(|c| !c.numbered().is_empty())
                    .unwrap_or(node);
                let mut key_names = Vec::new();
                if let Some(l) = &key.location_name {
                    push_unique(&mut key_names, l.clone());
                }
                for n in ["key", "Key", "Name", "name"] {
                    push_unique(&mut key_names, n.to_string());
                }
                let mut value_names = Vec::new();
                if let Some(l) = &value.location_name {
                    push_unique(&mut value_names, l.clone());
                }
                for n in ["value", "Value"] {
                    push_unique(&mut value_names, n.to_string());
                }
                let mut out = Map::new();
                for entry in container.numbered() {
                    let Some(k) = key_names
                        .iter()
                        .find_map(|n| entry.child(n))
                        .and_then(|k| k.value.clone())
                    else {
                        continue;
                    };
                    let Some(vnode) = value_names.iter().find_map(|n| entry.child(n)) else {
                        continue;
                    };
                    if let Some(v) = self
                        .member(value, vnode, depth + 1)
                        .map_err(|f| f.at(Seg::Key(k.clone())))?
                    {
                        out.insert(k, v);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            _ => match &node.value {
                Some(text) => scalar_from_text(shape, text).map(Some),
                None => Ok(None),
            },
        }
    }
}
