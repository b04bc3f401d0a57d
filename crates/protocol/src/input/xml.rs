//! rest-xml documents read into values.
//!
//! The body is first read into a small element tree (local names only: namespaces and
//! prefixes are ignored, as AWS does), then read by the shape: `xmlAttribute` members,
//! wrapped and flattened lists and maps, renamed members, keys and values.

use super::MAX_DEPTH;
use super::{
    expected_for, is_document, is_flattened, scalar_from_text, target, Fault, Parsed, Seg,
};
use crate::model::Shape;
use crate::{ServiceModel, ShapeRef};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Value};

/// One XML element.
#[derive(Debug, Default)]
pub(crate) struct Element {
    /// Local name (without prefix).
    pub name: String,
    /// Attributes as (qualified name, local name, value); `xmlns` declarations left out.
    pub attrs: Vec<(String, String, String)>,
    pub children: Vec<Element>,
    /// Concatenated text and CDATA directly inside the element.
    pub text: String,
}

impl Element {
    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        let local = name.rsplit(':').next().unwrap_or(name);
        self.attrs
            .iter()
            .find(|(q, _, _)| q == name)
            .or_else(|| self.attrs.iter().find(|(_, l, _)| l == local))
            .map(|(_, _, v)| v.as_str())
    }
}

fn bad_xml(e: impl std::fmt::Display) -> Fault {
    Fault::Malformed(e.to_string())
}

fn local(name: &[u8]) -> String {
    let local = name.rsplit(|b| *b == b':').next().unwrap_or(name);
    String::from_utf8_lossy(local).into_owned()
}

fn start_element(e: &BytesStart<'_>) -> Parsed<Element> {
    let mut el = Element {
        name: local(e.name().as_ref()),
        ..Element::default()
    };
    for attr in e.attributes() {
        let attr = attr.map_err(bad_xml)?;
        let qname = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        if qname == "xmlns" || qname.starts_with("xmlns:") {
            continue;
        }
        let value = attr.unescape_value().map_err(bad_xml)?.into_owned();
        el.attrs.push((qname, local(attr.key.as_ref()), value));
    }
    Ok(el)
}

/// Read a whole document; `None` for an empty body.
pub(crate) fn read_document(body: &[u8]) -> Parsed<Option<Element>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(bad_xml)?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(bad_xml("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH * 2 {
                    return Err(Fault::too_deep());
                }
                stack.push(start_element(&e)?);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(bad_xml("content after the root element"));
                }
                let el = start_element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(bad_xml("unexpected end tag"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(bad_xml)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(bad_xml("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                let text = std::str::from_utf8(&raw).map_err(bad_xml)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(text),
                    None => return Err(bad_xml("CDATA outside the root element")),
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad_xml("unexpected end of document"));
    }
    root.map(Some)
        .ok_or_else(|| bad_xml("the document has no root element"))
}

/// The members of a structure read from an element's attributes and children, skipping
/// HTTP-bound members (`location` set).
pub(crate) fn structure_members(
    model: &ServiceModel,
    shape: &Shape,
    el: &Element,
    depth: usize,
) -> Parsed<Map<String, Value>> {
    if depth > MAX_DEPTH {
        return Err(Fault::too_deep());
    }
    let mut out = Map::new();
    for (name, mref) in &shape.members {
        if mref.location.is_some() {
            continue;
        }
        let wire = mref.location_name.as_deref().unwrap_or(name);
        let value = if mref.xml_attribute == Some(true) {
            match el.attr(wire) {
                Some(text) => Some(
                    scalar_from_text(target(model, mref), text)
                        .map_err(|f| f.at(Seg::Member(name.clone())))?,
                ),
                None => None,
            }
        } else {
            member(model, name, mref, el, depth).map_err(|f| f.at(Seg::Member(name.clone())))?
        };
        if let Some(v) = value {
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

/// A member found among the children of `parent`.
fn member(
    model: &ServiceModel,
    name: &str,
    r: &ShapeRef,
    parent: &Element,
    depth: usize,
) -> Parsed<Option<Value>> {
    let shape = target(model, r);
    let wire = r.location_name.as_deref().unwrap_or(name);
    if is_flattened(r, shape) {
        match shape.type_.as_str() {
            "list" => {
                let Some(item_ref) = shape.member.as_deref() else {
                    return Ok(None);
                };
                let mut names = vec![wire];
                if let Some(l) = item_ref.location_name.as_deref() {
                    names.push(l);
                }
                for n in names {
                    let items: Vec<&Element> = parent.children_named(n).collect();
                    if !items.is_empty() {
                        let mut out = Vec::with_capacity(items.len());
                        for (i, item) in items.into_iter().enumerate() {
                            if let Some(v) = element(model, item_ref, item, depth + 1)
                                .map_err(|f| f.at(Seg::Index(i)))?
                            {
                                out.push(v);
                            }
                        }
                        return Ok(Some(Value::Array(out)));
                    }
                }
                return Ok(None);
            }
            "map" => {
                let entries: Vec<&Element> = parent.children_named(wire).collect();
                if entries.is_empty() {
                    return Ok(None);
                }
                return map_entries(model, shape, &entries, depth).map(Some);
            }
            _ => {}
        }
    }
    match parent.child(wire).or_else(|| parent.child(name)) {
        Some(el) => element(model, r, el, depth + 1),
        None => Ok(None),
    }
}

fn map_entries(
    model: &ServiceModel,
    shape: &Shape,
    entries: &[&Element],
    depth: usize,
) -> Parsed<Value> {
    let (Some(key_ref), Some(value_ref)) = (shape.key.as_deref(), shape.value.as_deref()) else {
        return Ok(Value::Object(Map::new()));
    };
    let key_name = key_ref.location_name.as_deref().unwrap_or("key");
    let value_name = value_ref.location_name.as_deref().unwrap_or("value");
    let mut out = Map::new();
    for entry in entries {
        let Some(k) = entry.child(key_name) else {
            continue;
        };
        let key = k.text.clone();
        if let Some(vel) = entry.child(value_name) {
            if let Some(v) = element(model, value_ref, vel, depth + 1)
                .map_err(|f| f.at(Seg::Key(key.clone())))?
            {
                out.insert(key, v);
            }
        }
    }
    Ok(Value::Object(out))
}

/// An element read as the referenced shape.
pub(crate) fn element(
    model: &ServiceModel,
    r: &ShapeRef,
    el: &Element,
    depth: usize,
) -> Parsed<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(Fault::too_deep());
    }
    let shape = target(model, r);
    let ty = shape.type_.as_str();
    let out = match ty {
        "structure" if is_document(shape) => Value::from(el.text.clone()),
        "structure" => Value::Object(structure_members(model, shape, el, depth)?),
        "list" => {
            let Some(item_ref) = shape.member.as_deref() else {
                return Ok(None);
            };
            let mut out = Vec::with_capacity(el.children.len());
            for (i, item) in el.children.iter().enumerate() {
                if let Some(v) =
                    element(model, item_ref, item, depth + 1).map_err(|f| f.at(Seg::Index(i)))?
                {
                    out.push(v);
                }
            }
            Value::Array(out)
        }
        "map" => {
            let entries: Vec<&Element> = el.children.iter().collect();
            map_entries(model, shape, &entries, depth)?
        }
        _ => {
            if !el.children.is_empty() {
                return Err(Fault::invalid(format!("<{}>", el.name), expected_for(ty)));
            }
            scalar_from_text(shape, &el.text)?
        }
    };
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tree() {
        let doc = read_document(
            b"<?xml version=\"1.0\"?><a xmlns=\"x\" b:c=\"1\"><d>x&lt;y</d><e/><![CDATA[z]]></a>",
        )
        .ok()
        .flatten()
        .expect("parses");
        assert_eq!(doc.name, "a");
        assert_eq!(doc.attr("b:c"), Some("1"));
        assert_eq!(doc.children[0].text, "x<y");
        assert_eq!(doc.children[1].name, "e");
        assert_eq!(doc.text, "z");
    }

    #[test]
    fn rejects_broken_documents() {
        for bad in [
            &b"<a>"[..],
            b"<a></b>",
            b"text",
            b"<a/><b/>",
            b"</a>",
            b"<a>&bogus;</a>",
        ] {
            assert!(
                read_document(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "<a>".repeat(10_000);
        assert!(read_document(deep.as_bytes()).is_err());
    }
}
