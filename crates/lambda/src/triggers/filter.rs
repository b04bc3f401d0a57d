//! Event filtering of event source mappings (`FilterCriteria`): the EventBridge-style pattern
//! language Lambda applies to each record before a batch is built. A record matches when any
//! filter's pattern matches; records that match no filter are dropped (deleted from the queue),
//! as AWS does. For SQS, `body` is matched as JSON when the message body is JSON.
//!
//! Supported: exact values, `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (values or
//! a prefix), `numeric` ranges, `exists`, and nesting.

use serde_json::{Map, Value};

/// A compiled `FilterCriteria`: the patterns of its filters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters {
    patterns: Vec<Map<String, Value>>,
}

/// A pattern that is not valid JSON or not an object of arrays/objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter pattern definition.")]
pub(crate) struct InvalidPattern;

impl Filters {
    /// Compiles `FilterCriteria` (`{"Filters": [{"Pattern": "<json>"}]}`).
    pub fn parse(criteria: Option<&Value>) -> Result<Filters, InvalidPattern> {
        let mut patterns = Vec::new();
        let list = criteria
            .and_then(|c| c.get("Filters"))
            .and_then(Value::as_array);
        for f in list.into_iter().flatten() {
            let Some(text) = f.get("Pattern").and_then(Value::as_str) else {
                continue;
            };
            let v: Value = serde_json::from_str(text).map_err(|_| InvalidPattern)?;
            let Value::Object(m) = v else {
                return Err(InvalidPattern);
            };
            check(&m)?;
            patterns.push(m);
        }
        Ok(Filters { patterns })
    }

    /// Whether there are no filters (everything passes).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the record passes (no filters, or any filter matches).
    pub fn matches(&self, record: &Value) -> bool {
        self.is_empty() || self.patterns.iter().any(|p| object_matches(p, record))
    }
}

fn check(p: &Map<String, Value>) -> Result<(), InvalidPattern> {
    for v in p.values() {
        match v {
            Value::Object(m) => check(m)?,
            Value::Array(_) => {}
            _ => return Err(InvalidPattern),
        }
    }
    Ok(())
}

/// The record as patterns see it: an SQS `body` that is JSON becomes that JSON.
pub(crate) fn sqs_view(record: &Value) -> Value {
    let mut r = record.clone();
    if let Some(body) = record.get("body").and_then(Value::as_str) {
        if let Ok(parsed @ (Value::Object(_) | Value::Array(_))) =
            serde_json::from_str::<Value>(body)
        {
            r["body"] = parsed;
        }
    }
    r
}

fn object_matches(pattern: &Map<String, Value>, event: &Value) -> bool {
    pattern.iter().all(|(k, rule)| {
        let field = event.get(k);
        match rule {
            Value::Object(sub) => field.is_some_and(|f| object_matches(sub, f)),
            Value::Array(alternatives) => field_matches(alternatives, field),
            _ => false,
        }
    })
}

/// Whether a field (absent, a value, or an array of values) matches any alternative.
fn field_matches(alternatives: &[Value], field: Option<&Value>) -> bool {
    alternatives.iter().any(|alt| {
        if let Some(exists) = alt
            .as_object()
            .and_then(|o| o.get("exists"))
            .and_then(Value::as_bool)
        {
            return field.is_some_and(|f| !f.is_null()) == exists;
        }
        let Some(field) = field else {
            return false;
        };
        match field {
            Value::Array(items) => items.iter().any(|i| value_matches(alt, i)),
            other => value_matches(alt, other),
        }
    })
}

fn value_matches(alt: &Value, v: &Value) -> bool {
    let Value::Object(op) = alt else {
        return literal_eq(alt, v);
    };
    let s = v.as_str();
    if let Some(p) = op.get("prefix") {
        return match (p, s) {
            (Value::String(p), Some(s)) => s.starts_with(p.as_str()),
            (Value::Object(o), Some(s)) => o
                .get("equals-ignore-case")
                .and_then(Value::as_str)
                .is_some_and(|p| s.to_lowercase().starts_with(&p.to_lowercase())),
            _ => false,
        };
    }
    if let Some(Value::String(suffix)) = op.get("suffix") {
        return s.is_some_and(|s| s.ends_with(suffix.as_str()));
    }
    if let Some(Value::String(e)) = op.get("equals-ignore-case") {
        return s.is_some_and(|s| s.eq_ignore_ascii_case(e));
    }
    if let Some(but) = op.get("anything-but") {
        return match but {
            Value::Array(list) => !list.iter().any(|b| literal_eq(b, v)),
            Value::Object(o) => match (o.get("prefix").and_then(Value::as_str), s) {
                (Some(p), Some(s)) => !s.starts_with(p),
                _ => true,
            },
            single => !literal_eq(single, v),
        };
    }
    if let Some(Value::Array(conds)) = op.get("numeric") {
        let Some(n) = number_of(v) else {
            return false;
        };
        return conds.chunks(2).all(|c| {
            match (
                c.first().and_then(Value::as_str),
                c.get(1).and_then(Value::as_f64),
            ) {
                (Some("="), Some(x)) => n == x,
                (Some("<"), Some(x)) => n < x,
                (Some("<="), Some(x)) => n <= x,
                (Some(">"), Some(x)) => n > x,
                (Some(">="), Some(x)) => n >= x,
                _ => false,
            }
        });
    }
    false
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Pattern literals match equal JSON values (numbers numerically).
fn literal_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filters(patterns: &[&str]) -> Filters {
        let f: Vec<Value> = patterns.iter().map(|p| json!({"Pattern": p})).collect();
        Filters::parse(Some(&json!({"Filters": f}))).unwrap()
    }

    fn rec(body: &str) -> Value {
        sqs_view(
            &json!({"body": body, "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"}),
        )
    }

    #[test]
    fn no_filters_pass_everything() {
        assert!(Filters::parse(None).unwrap().matches(&rec("x")));
    }

    #[test]
    fn json_bodies_and_literals() {
        let f = filters(&[r#"{"body": {"kind": ["order"], "n": [3]}}"#]);
        assert!(f.matches(&rec(r#"{"kind": "order", "n": 3.0}"#)));
        assert!(!f.matches(&rec(r#"{"kind": "refund", "n": 3}"#)));
        assert!(!f.matches(&rec("plain text")));
        let plain = filters(&[r#"{"body": ["plain text"]}"#]);
        assert!(plain.matches(&rec("plain text")));
    }

    #[test]
    fn operators() {
        let f = filters(&[
            r#"{"body": {"id": [{"prefix": "ab"}], "v": [{"numeric": [">", 1, "<=", 5]}]}}"#,
        ]);
        assert!(f.matches(&rec(r#"{"id": "abc", "v": 5}"#)));
        assert!(!f.matches(&rec(r#"{"id": "abc", "v": 6}"#)));
        assert!(!f.matches(&rec(r#"{"id": "xbc", "v": 2}"#)));
        let f = filters(&[
            r#"{"body": {"s": [{"anything-but": ["a", "b"]}], "t": [{"exists": false}]}}"#,
        ]);
        assert!(f.matches(&rec(r#"{"s": "c"}"#)));
        assert!(!f.matches(&rec(r#"{"s": "a"}"#)));
        assert!(!f.matches(&rec(r#"{"s": "c", "t": 1}"#)));
        let f =
            filters(&[r#"{"body": {"s": [{"suffix": ".png"}, {"equals-ignore-case": "NONE"}]}}"#]);
        assert!(f.matches(&rec(r#"{"s": "a.png"}"#)));
        assert!(f.matches(&rec(r#"{"s": "none"}"#)));
        assert!(!f.matches(&rec(r#"{"s": "a.jpg"}"#)));
    }

    #[test]
    fn any_filter_matches_and_arrays_in_events() {
        let f = filters(&[r#"{"body": {"a": [1]}}"#, r#"{"body": {"tags": ["x"]}}"#]);
        assert!(f.matches(&rec(r#"{"a": 1}"#)));
        assert!(f.matches(&rec(r#"{"tags": ["y", "x"]}"#)));
        assert!(!f.matches(&rec(r#"{"a": 2, "tags": ["y"]}"#)));
        let f = filters(&[r#"{"attributes": {"ApproximateReceiveCount": ["1"]}}"#]);
        assert!(f.matches(&rec("anything")));
    }

    #[test]
    fn invalid_patterns() {
        for bad in ["{", "[]", r#"{"body": "x"}"#] {
            let c = json!({"Filters": [{"Pattern": bad}]});
            assert_eq!(Filters::parse(Some(&c)).unwrap_err(), InvalidPattern);
        }
    }
}
