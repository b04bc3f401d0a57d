//! IAM policy `Condition` operators (String*, Numeric*, Date*, Bool, BinaryEquals, IpAddress,
//! Arn*, Null, with `...IfExists` and `ForAnyValue:`/`ForAllValues:`), and the `*`/`?`
//! patterns with `${...}` policy variables that Resource, Action and conditions share.

use std::net::IpAddr;

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::policy::{AuthzRequest, PolicyError};

/// The comparison a condition operator makes, without qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseOperator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

const OPERATORS: &[(&str, BaseOperator)] = &[
    ("StringEquals", BaseOperator::StringEquals),
    ("StringNotEquals", BaseOperator::StringNotEquals),
    (
        "StringEqualsIgnoreCase",
        BaseOperator::StringEqualsIgnoreCase,
    ),
    (
        "StringNotEqualsIgnoreCase",
        BaseOperator::StringNotEqualsIgnoreCase,
    ),
    ("StringLike", BaseOperator::StringLike),
    ("StringNotLike", BaseOperator::StringNotLike),
    ("NumericEquals", BaseOperator::NumericEquals),
    ("NumericNotEquals", BaseOperator::NumericNotEquals),
    ("NumericLessThan", BaseOperator::NumericLessThan),
    ("NumericLessThanEquals", BaseOperator::NumericLessThanEquals),
    ("NumericGreaterThan", BaseOperator::NumericGreaterThan),
    (
        "NumericGreaterThanEquals",
        BaseOperator::NumericGreaterThanEquals,
    ),
    ("DateEquals", BaseOperator::DateEquals),
    ("DateNotEquals", BaseOperator::DateNotEquals),
    ("DateLessThan", BaseOperator::DateLessThan),
    ("DateLessThanEquals", BaseOperator::DateLessThanEquals),
    ("DateGreaterThan", BaseOperator::DateGreaterThan),
    ("DateGreaterThanEquals", BaseOperator::DateGreaterThanEquals),
    ("Bool", BaseOperator::Bool),
    ("BinaryEquals", BaseOperator::BinaryEquals),
    ("IpAddress", BaseOperator::IpAddress),
    ("NotIpAddress", BaseOperator::NotIpAddress),
    ("ArnEquals", BaseOperator::ArnEquals),
    ("ArnLike", BaseOperator::ArnLike),
    ("ArnNotEquals", BaseOperator::ArnNotEquals),
    ("ArnNotLike", BaseOperator::ArnNotLike),
    ("Null", BaseOperator::Null),
];

impl BaseOperator {
    /// Negated operators are true when no value matches, including when the key is absent.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            BaseOperator::StringNotEquals
                | BaseOperator::StringNotEqualsIgnoreCase
                | BaseOperator::StringNotLike
                | BaseOperator::NumericNotEquals
                | BaseOperator::DateNotEquals
                | BaseOperator::NotIpAddress
                | BaseOperator::ArnNotEquals
                | BaseOperator::ArnNotLike
        )
    }

    /// Whether policy values of this operator take `${...}` variables.
    fn takes_variables(self) -> bool {
        matches!(
            self,
            BaseOperator::StringEquals
                | BaseOperator::StringNotEquals
                | BaseOperator::StringEqualsIgnoreCase
                | BaseOperator::StringNotEqualsIgnoreCase
                | BaseOperator::StringLike
                | BaseOperator::StringNotLike
                | BaseOperator::ArnEquals
                | BaseOperator::ArnLike
                | BaseOperator::ArnNotEquals
                | BaseOperator::ArnNotLike
        )
    }
}

/// How a multivalued context key is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetQualifier {
    /// At least one request value must satisfy the operator.
    ForAnyValue,
    /// Every request value must satisfy the operator (true when there are none).
    ForAllValues,
}

/// A full operator name, e.g. `ForAnyValue:StringLikeIfExists`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operator {
    pub base: BaseOperator,
    pub set: Option<SetQualifier>,
    pub if_exists: bool,
}

impl Operator {
    /// Parse an operator name as written in a policy (case-sensitive, like IAM).
    pub fn parse(name: &str) -> Result<Operator, PolicyError> {
        let invalid = || PolicyError::new(format!("Invalid Condition type : {name}"));
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else {
            (None, name)
        };
        let (if_exists, rest) = match rest.strip_suffix("IfExists") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let base = OPERATORS
            .iter()
            .find(|(n, _)| *n == rest)
            .map(|(_, op)| *op)
            .ok_or_else(invalid)?;
        if base == BaseOperator::Null && if_exists {
            return Err(invalid());
        }
        Ok(Operator {
            base,
            set,
            if_exists,
        })
    }
}

/// One `"Operator": {"key": values}` entry. Several in a statement are ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: Operator,
    /// The context key as written (matched case-insensitively).
    pub key: String,
    /// The policy values (ORed).
    pub values: Vec<String>,
}

impl Condition {
    /// Whether the condition holds for a request. `variables` enables `${...}` substitution
    /// in the values (policy version 2012-10-17).
    pub fn evaluate(&self, req: &AuthzRequest, variables: bool) -> bool {
        let op = &self.operator;
        let found = req.context_values(&self.key);
        let present: Option<Vec<String>> = found.filter(|v| !v.is_empty());
        if op.base == BaseOperator::Null {
            return self.values.iter().any(|v| {
                let want_absent = v.eq_ignore_ascii_case("true");
                want_absent == present.is_none()
            });
        }
        let Some(actual) = present else {
            if op.if_exists {
                return true;
            }
            return match op.set {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => op.base.is_negated(),
            };
        };
        let values: Vec<String> = if variables && op.base.takes_variables() {
            self.values
                .iter()
                .filter_map(|v| expand(v, true, req).map(|t| tokens_to_string(&t)))
                .collect()
        } else {
            self.values.clone()
        };
        let any_policy = |c: &str| values.iter().any(|p| positive_match(op.base, p, c));
        let single = |c: &str| any_policy(c) != op.base.is_negated();
        match op.set {
            None => {
                let hit = actual.iter().any(|c| any_policy(c));
                hit != op.base.is_negated()
            }
            Some(SetQualifier::ForAnyValue) => actual.iter().any(|c| single(c)),
            Some(SetQualifier::ForAllValues) => actual.iter().all(|c| single(c)),
        }
    }
}

/// The un-negated comparison of one policy value `p` with one request value `c`.
fn positive_match(op: BaseOperator, p: &str, c: &str) -> bool {
    use BaseOperator as B;
    match op {
        B::StringEquals | B::StringNotEquals | B::BinaryEquals => p == c,
        B::StringEqualsIgnoreCase | B::StringNotEqualsIgnoreCase => {
            p.to_lowercase() == c.to_lowercase()
        }
        B::StringLike | B::StringNotLike => like(p, c),
        B::NumericEquals | B::NumericNotEquals => numeric(p, c, |a, b| a == b),
        B::NumericLessThan => numeric(p, c, |a, b| a < b),
        B::NumericLessThanEquals => numeric(p, c, |a, b| a <= b),
        B::NumericGreaterThan => numeric(p, c, |a, b| a > b),
        B::NumericGreaterThanEquals => numeric(p, c, |a, b| a >= b),
        B::DateEquals | B::DateNotEquals => date(p, c, |a, b| a == b),
        B::DateLessThan => date(p, c, |a, b| a < b),
        B::DateLessThanEquals => date(p, c, |a, b| a <= b),
        B::DateGreaterThan => date(p, c, |a, b| a > b),
        B::DateGreaterThanEquals => date(p, c, |a, b| a >= b),
        B::Bool => p.eq_ignore_ascii_case(c),
        B::IpAddress | B::NotIpAddress => ip_in(p, c),
        B::ArnEquals | B::ArnLike | B::ArnNotEquals | B::ArnNotLike => arn_like(p, c),
        B::Null => false,
    }
}

/// Request value `c` (a number) compared with policy value `p`: `f(c, p)`.
fn numeric(p: &str, c: &str, f: impl Fn(f64, f64) -> bool) -> bool {
    match (p.trim().parse::<f64>(), c.trim().parse::<f64>()) {
        (Ok(p), Ok(c)) => f(c, p),
        _ => false,
    }
}

/// Request value `c` (a time) compared with policy value `p`: `f(c, p)`.
fn date(p: &str, c: &str, f: impl Fn(OffsetDateTime, OffsetDateTime) -> bool) -> bool {
    match (parse_date(p), parse_date(c)) {
        (Some(p), Some(c)) => f(c, p),
        _ => false,
    }
}

/// ISO 8601 / RFC 3339 date-time, a bare date (midnight UTC), or epoch seconds.
pub fn parse_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    if let Ok(d) = Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc());
    }
    if let Ok(t) = time::PrimitiveDateTime::parse(
        s,
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
    ) {
        return Some(t.assume_utc());
    }
    s.parse::<i64>()
        .ok()
        .and_then(|n| OffsetDateTime::from_unix_timestamp(n).ok())
}

/// Whether address `c` is in the CIDR block (or equals the address) `p`.
fn ip_in(p: &str, c: &str) -> bool {
    let Ok(addr) = c.trim().parse::<IpAddr>() else {
        return false;
    };
    let (net, len) = match p.trim().split_once('/') {
        Some((n, l)) => match (n.parse::<IpAddr>(), l.parse::<u32>()) {
            (Ok(n), Ok(l)) => (n, l),
            _ => return false,
        },
        None => match p.trim().parse::<IpAddr>() {
            Ok(n) => (n, if n.is_ipv4() { 32 } else { 128 }),
            Err(_) => return false,
        },
    };
    let addr = match (net, addr) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        (_, a) => a,
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

// ------------------------------------------------------------------------------------------
// Patterns and policy variables.

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    /// `*`: any run of characters, possibly empty.
    Any,
    /// `?`: exactly one character.
    One,
}

/// Compile `pattern`, substituting `${...}` variables when `variables` is set. `None` when a
/// variable has no (single) value and no default: the element then matches nothing.
pub(crate) fn expand(pattern: &str, variables: bool, req: &AuthzRequest) -> Option<Vec<Tok>> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if variables && rest.starts_with("${") {
            if let Some(end) = rest.find('}') {
                let inner = rest[2..end].trim();
                match inner {
                    "*" | "?" | "$" => out.extend(inner.chars().map(Tok::Lit)),
                    _ => {
                        let value = resolve_variable(inner, req)?;
                        out.extend(value.chars().map(Tok::Lit));
                    }
                }
                rest = &rest[end + 1..];
                continue;
            }
        }
        out.push(match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            c => Tok::Lit(c),
        });
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// `key` or `key, 'default'`.
fn resolve_variable(inner: &str, req: &AuthzRequest) -> Option<String> {
    let (key, default) = match inner.split_once(',') {
        Some((k, d)) => {
            let d = d.trim();
            let d = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(d);
            (k.trim(), Some(d.to_string()))
        }
        None => (inner, None),
    };
    match req.context_values(key) {
        Some(v) if v.len() == 1 => v.into_iter().next(),
        _ => default,
    }
}

fn tokens_to_string(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(c) => *c,
            Tok::Any => '*',
            Tok::One => '?',
        })
        .collect()
}

/// Wildcard match of compiled `pattern` against `text`; backtracks on the last `*`.
pub(crate) fn tokens_match(pattern: &[Tok], text: &str, ignore_case: bool) -> bool {
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a == b || a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match pattern.get(pi) {
            Some(Tok::One) => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some(Tok::Lit(c)) if eq(*c, t[ti]) => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some(Tok::Any) => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[pi..].iter().all(|t| *t == Tok::Any)
}

/// `*`/`?` match of a plain (variable-free) pattern, case-sensitive.
fn like(pattern: &str, text: &str) -> bool {
    fc_types::wildcard_match(pattern, text)
}

/// ARN match: each of the six `:`-separated parts separately, wildcards allowed in each; the
/// resource part may itself contain `:`. A pattern with colons but fewer parts matches nothing.
pub(crate) fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    if p.len() == 6 && a.len() == 6 {
        p.iter().zip(&a).all(|(p, a)| like(p, a))
    } else if p.len() == 1 {
        // `*` and other colon-free patterns.
        like(pattern, arn)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> AuthzRequest {
        AuthzRequest::new(
            "arn:aws:iam::111122223333:user/alice",
            "111122223333",
            "s3:GetObject",
            "*",
        )
        .with_context("aws:username", ["alice"])
    }

    #[test]
    fn operator_names() {
        let op = Operator::parse("ForAnyValue:StringLikeIfExists").unwrap();
        assert_eq!(op.base, BaseOperator::StringLike);
        assert_eq!(op.set, Some(SetQualifier::ForAnyValue));
        assert!(op.if_exists);
        assert!(Operator::parse("StringEqual").is_err());
        assert!(Operator::parse("NullIfExists").is_err());
        assert!(Operator::parse("stringequals").is_err());
        assert_eq!(
            Operator::parse("Foo").unwrap_err().message(),
            "Invalid Condition type : Foo"
        );
    }

    #[test]
    fn ip_matching() {
        assert!(ip_in("10.0.0.0/8", "10.1.2.3"));
        assert!(!ip_in("10.0.0.0/8", "11.1.2.3"));
        assert!(ip_in("203.0.113.7", "203.0.113.7"));
        assert!(ip_in("0.0.0.0/0", "8.8.8.8"));
        assert!(ip_in("2001:db8::/32", "2001:db8:1::1"));
        assert!(!ip_in("2001:db8::/32", "2001:db9::1"));
        assert!(ip_in("192.168.0.0/16", "::ffff:192.168.1.1"));
        assert!(!ip_in("10.0.0.0/8", "not-an-ip"));
        assert!(!ip_in("10.0.0.0/33", "10.0.0.1"));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2026-11-25T12:00:00Z"), parse_date("1795608000"));
        assert!(parse_date("2026-11-25").is_some());
        assert!(parse_date("2026-11-25T12:00:00.123Z").is_some());
        assert!(parse_date("yesterday").is_none());
    }

    #[test]
    fn variables_and_patterns() {
        let r = req();
        let t = expand("arn:aws:s3:::bucket/${aws:username}/*", true, &r).unwrap();
        assert!(tokens_match(&t, "arn:aws:s3:::bucket/alice/x", false));
        assert!(!tokens_match(&t, "arn:aws:s3:::bucket/bob/x", false));
        // Version 2008: variables are literal text.
        let t = expand("bucket/${aws:username}", false, &r).unwrap();
        assert!(tokens_match(&t, "bucket/${aws:username}", false));
        // Missing variable: no match at all; a default fills in.
        assert!(expand("${aws:userid}", true, &r).is_none());
        let t = expand("${aws:userid, 'nobody'}", true, &r).unwrap();
        assert!(tokens_match(&t, "nobody", false));
        // ${*} is a literal star.
        let t = expand("a${*}b", true, &r).unwrap();
        assert!(tokens_match(&t, "a*b", false));
        assert!(!tokens_match(&t, "axb", false));
        let t = expand("ecr:Batch*", false, &r).unwrap();
        assert!(tokens_match(&t, "ECR:BATCHGETIMAGE", true));
        assert!(!tokens_match(&t, "ECR:BATCHGETIMAGE", false));
        assert!(arn_like(
            "arn:aws:iam::*:role/*",
            "arn:aws:iam::123:role/a:b"
        ));
        assert!(!arn_like(
            "arn:aws:iam::*:role/*",
            "arn:aws:sts::123:role/x"
        ));
    }
}
