//! The CloudWatch Logs filter-pattern language (FilterLogEvents, metric and subscription
//! filters, TestMetricFilter): parser and matcher.
//!
//! Three forms, chosen by the first character of the trimmed pattern:
//! - terms (unstructured): `ERROR`, `ERROR Exception` (all terms), `"Server Error"` (a phrase),
//!   `?ERROR ?WARN` (any of the `?` terms), `-DEBUG` (none of the `-` terms) and `%regex%`;
//!   a term matches when it occurs anywhere in the message;
//! - JSON, `{ … }`: conditions on selectors (`$.a.b`, `$.items[0].id`, `$.items[*]`) joined by
//!   `&&`, `||` and parentheses: `=` / `!=` with strings (`*` wildcards), numbers or `%regex%`,
//!   `< > <= >=` with numbers, `IS TRUE`, `IS FALSE`, `IS NULL`, `NOT EXISTS`, `EXISTS`.
//!   Messages that are not a JSON object or array never match;
//! - space-delimited, `[ … ]`: named fields, `...` for any number of fields, and conditions such
//!   as `status = 404`, `size > 1000`, `code = 4* || code = 5*`. Message fields are separated by
//!   spaces; text within `"…"` or `[…]` is one field (without the delimiters).
//!
//! Matching is case-sensitive. An empty (or blank) pattern matches every message.

use super::regex::Regex;
use serde_json::Value;
use std::fmt;

/// Most backtracking steps a space-delimited match may take before giving up (no match).
const MAX_DELIMITED_STEPS: usize = 100_000;

/// A pattern that does not parse. AWS words every case "Invalid filter pattern".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid filter pattern: {}", self.0)
    }
}

impl std::error::Error for PatternError {}

/// A parsed filter pattern.
#[derive(Debug, Clone)]
pub struct FilterPattern {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    All,
    Terms(Terms),
    Json(Expr<JsonCond>),
    Delimited(Delimited),
}

#[derive(Debug, Clone, Default)]
struct Terms {
    required: Vec<Term>,
    optional: Vec<Term>,
    excluded: Vec<Term>,
}

#[derive(Debug, Clone)]
enum Term {
    Text(String),
    Regex(Regex),
}

impl Term {
    fn found(&self, msg: &str) -> bool {
        match self {
            Term::Text(t) => msg.contains(t.as_str()),
            Term::Regex(r) => r.is_match(msg),
        }
    }
}

/// A boolean combination of conditions.
#[derive(Debug, Clone)]
enum Expr<C> {
    Cond(C),
    And(Box<Expr<C>>, Box<Expr<C>>),
    Or(Box<Expr<C>>, Box<Expr<C>>),
}

impl<C> Expr<C> {
    fn eval(&self, f: &mut dyn FnMut(&C) -> bool) -> bool {
        match self {
            Expr::Cond(c) => f(c),
            Expr::And(a, b) => a.eval(f) && b.eval(f),
            Expr::Or(a, b) => a.eval(f) || b.eval(f),
        }
    }

    fn each(&self, f: &mut dyn FnMut(&C)) {
        match self {
            Expr::Cond(c) => f(c),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.each(f);
                b.each(f);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone)]
enum Operand {
    Num(f64),
    /// A string, possibly with `*` wildcards.
    Str(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
    AnyIndex,
}

#[derive(Debug, Clone)]
enum Test {
    Cmp(Op, Operand),
    IsTrue,
    IsFalse,
    IsNull,
    Exists,
    NotExists,
}

#[derive(Debug, Clone)]
struct JsonCond {
    selector: String,
    path: Vec<Step>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Item {
    Ellipsis,
    Field(String),
}

#[derive(Debug, Clone)]
struct FieldCmp {
    field: String,
    op: Op,
    operand: Operand,
}

#[derive(Debug, Clone)]
struct Delimited {
    items: Vec<Item>,
    conds: Vec<Expr<FieldCmp>>,
}

impl FilterPattern {
    /// Parse a pattern.
    pub fn parse(pattern: &str) -> Result<FilterPattern, PatternError> {
        let trimmed = pattern.trim();
        let kind = if trimmed.is_empty() {
            Kind::All
        } else if trimmed.starts_with('{') {
            Kind::Json(Parser::new(trimmed).json()?)
        } else if trimmed.starts_with('[') {
            Kind::Delimited(Parser::new(trimmed).delimited()?)
        } else {
            let terms = Parser::new(trimmed).terms()?;
            if terms.required.is_empty() && terms.optional.is_empty() && terms.excluded.is_empty() {
                Kind::All
            } else {
                Kind::Terms(terms)
            }
        };
        Ok(FilterPattern { kind })
    }

    /// Whether the pattern matches every message.
    pub fn matches_all(&self) -> bool {
        matches!(self.kind, Kind::All)
    }

    /// Whether `msg` matches.
    pub fn matches(&self, msg: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Terms(t) => {
                t.required.iter().all(|x| x.found(msg))
                    && (t.optional.is_empty() || t.optional.iter().any(|x| x.found(msg)))
                    && !t.excluded.iter().any(|x| x.found(msg))
            }
            Kind::Json(e) => match parse_json_message(msg) {
                Some(doc) => e.eval(&mut |c| json_cond(c, &doc)),
                None => false,
            },
            Kind::Delimited(d) => d.bind(msg).is_some(),
        }
    }

    /// The values a matching message yields (TestMetricFilter's `extractedValues`): `$name` for
    /// space-delimited fields, the selector for JSON conditions. `None` when `msg` does not
    /// match.
    pub fn extract(&self, msg: &str) -> Option<Vec<(String, String)>> {
        match &self.kind {
            Kind::Delimited(d) => {
                let binds = d.bind(msg)?;
                Some(
                    binds
                        .into_iter()
                        .map(|(k, v)| (format!("${k}"), v))
                        .collect(),
                )
            }
            Kind::Json(e) => {
                let doc = parse_json_message(msg)?;
                if !e.eval(&mut |c| json_cond(c, &doc)) {
                    return None;
                }
                let mut out: Vec<(String, String)> = Vec::new();
                e.each(&mut |c| {
                    if out.iter().any(|(k, _)| k == &c.selector) {
                        return;
                    }
                    if let Some(v) = resolve(&doc, &c.path).first() {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        out.push((c.selector.clone(), text));
                    }
                });
                Some(out)
            }
            _ => self.matches(msg).then(Vec::new),
        }
    }
}

fn parse_json_message(msg: &str) -> Option<Value> {
    let t = msg.trim();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str(t).ok()
}

/// `*` matches any run of characters; everything else is literal.
fn star_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let body = s.strip_prefix('-').unwrap_or(s);
    let first = body.chars().next()?;
    if !(first.is_ascii_digit() || first == '.') {
        return None;
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Compare a present value (`num` when numeric, `text` when it has a text form) with an operand.
fn compare(op: Op, operand: &Operand, num: Option<f64>, text: Option<&str>) -> bool {
    match operand {
        Operand::Num(want) => {
            let Some(have) = num else {
                return op == Op::Ne;
            };
            match op {
                Op::Eq => have == *want,
                Op::Ne => have != *want,
                Op::Lt => have < *want,
                Op::Gt => have > *want,
                Op::Le => have <= *want,
                Op::Ge => have >= *want,
            }
        }
        Operand::Str(pat) => {
            let hit = text.is_some_and(|t| star_match(pat, t));
            match op {
                Op::Eq => hit,
                Op::Ne => !hit,
                _ => false,
            }
        }
        Operand::Regex(r) => {
            let hit = text.is_some_and(|t| r.is_match(t));
            match op {
                Op::Eq => hit,
                Op::Ne => !hit,
                _ => false,
            }
        }
    }
}

fn resolve<'a>(doc: &'a Value, path: &[Step]) -> Vec<&'a Value> {
    let mut cur = vec![doc];
    for step in path {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Key(k) => {
                    if let Some(x) = v.as_object().and_then(|o| o.get(k)) {
                        next.push(x);
                    }
                }
                Step::Index(i) => {
                    if let Some(x) = v.as_array().and_then(|a| a.get(*i)) {
                        next.push(x);
                    }
                }
                Step::AnyIndex => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter());
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn json_cond(c: &JsonCond, doc: &Value) -> bool {
    let found = resolve(doc, &c.path);
    match &c.test {
        Test::NotExists => found.is_empty(),
        Test::Exists => !found.is_empty(),
        Test::IsTrue => found.iter().any(|v| v.as_bool() == Some(true)),
        Test::IsFalse => found.iter().any(|v| v.as_bool() == Some(false)),
        Test::IsNull => found.iter().any(|v| v.is_null()),
        Test::Cmp(op, operand) => found.iter().any(|v| {
            let text = match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let num = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => parse_number(s),
                _ => None,
            };
            compare(*op, operand, num, text.as_deref())
        }),
    }
}

impl Delimited {
    /// Assign message fields to pattern fields so that every condition holds.
    fn bind(&self, msg: &str) -> Option<Vec<(String, String)>> {
        let tokens = split_fields(msg);
        let mut binds: Vec<(String, String)> = Vec::new();
        let mut steps = 0usize;
        if self.assign(0, 0, &tokens, &mut binds, &mut steps) {
            Some(binds)
        } else {
            None
        }
    }

    fn assign(
        &self,
        item: usize,
        tok: usize,
        tokens: &[String],
        binds: &mut Vec<(String, String)>,
        steps: &mut usize,
    ) -> bool {
        *steps += 1;
        if *steps > MAX_DELIMITED_STEPS {
            return false;
        }
        let Some(it) = self.items.get(item) else {
            return tok == tokens.len() && self.conds_hold(binds);
        };
        match it {
            Item::Ellipsis => {
                (tok..=tokens.len()).any(|t| self.assign(item + 1, t, tokens, binds, steps))
            }
            Item::Field(name) => {
                let Some(value) = tokens.get(tok) else {
                    return false;
                };
                binds.push((name.clone(), value.clone()));
                if self.assign(item + 1, tok + 1, tokens, binds, steps) {
                    return true;
                }
                binds.pop();
                false
            }
        }
    }

    fn conds_hold(&self, binds: &[(String, String)]) -> bool {
        self.conds.iter().all(|e| {
            e.eval(&mut |c: &FieldCmp| {
                let Some((_, v)) = binds.iter().find(|(k, _)| *k == c.field) else {
                    return false;
                };
                compare(c.op, &c.operand, parse_number(v), Some(v))
            })
        })
    }
}

/// Split a message into space-delimited fields; `"…"` and `[…]` enclose one field.
fn split_fields(msg: &str) -> Vec<String> {
    let chars: Vec<char> = msg.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let close = match chars[i] {
            '"' => Some('"'),
            '[' => Some(']'),
            _ => None,
        };
        if let Some(close) = close {
            if let Some(end) = chars[i + 1..].iter().position(|&c| c == close) {
                out.push(chars[i + 1..i + 1 + end].iter().collect());
                i += end + 2;
                continue;
            }
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

fn bad<T>(msg: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(msg.into()))
}

impl Parser {
    fn new(s: &str) -> Self {
        Parser {
            chars: s.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn at(&self, s: &str) -> bool {
        (self.pos..)
            .zip(s.chars())
            .all(|(i, c)| self.chars.get(i) == Some(&c))
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.at(s) {
            self.pos += s.chars().count();
            true
        } else {
            false
        }
    }

    /// A case-insensitive keyword followed by a non-word character.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let n = kw.chars().count();
        let Some(slice) = self.chars.get(self.pos..self.pos + n) else {
            return false;
        };
        let word: String = slice.iter().collect();
        if !word.eq_ignore_ascii_case(kw) {
            return false;
        }
        if self
            .chars
            .get(self.pos + n)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            return false;
        }
        self.pos += n;
        true
    }

    fn quoted(&mut self) -> Result<String, PatternError> {
        // At the opening quote.
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return bad("unterminated quoted string"),
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                        None => return bad("unterminated quoted string"),
                    }
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn regex(&mut self) -> Result<Regex, PatternError> {
        // At the opening `%`.
        self.pos += 1;
        let start = self.pos;
        let Some(len) = self.chars[start..].iter().position(|&c| c == '%') else {
            return bad("unterminated regular expression");
        };
        let src: String = self.chars[start..start + len].iter().collect();
        self.pos = start + len + 1;
        if src.is_empty() {
            return bad("empty regular expression");
        }
        Regex::new(&src).map_err(|e| PatternError(e.to_string()))
    }

    fn terms(&mut self) -> Result<Terms, PatternError> {
        let mut t = Terms::default();
        loop {
            self.ws();
            let Some(c) = self.peek() else { break };
            let mut bucket = 0u8;
            if (c == '?' || c == '-')
                && self
                    .chars
                    .get(self.pos + 1)
                    .is_some_and(|n| !n.is_whitespace())
            {
                bucket = if c == '?' { 1 } else { 2 };
                self.pos += 1;
            }
            let term = match self.peek() {
                Some('"') => Term::Text(self.quoted()?),
                Some('%') => Term::Regex(self.regex()?),
                _ => {
                    let start = self.pos;
                    while self.peek().is_some_and(|c| !c.is_whitespace()) {
                        self.pos += 1;
                    }
                    Term::Text(self.chars[start..self.pos].iter().collect())
                }
            };
            if self.peek().is_some_and(|c| !c.is_whitespace()) {
                return bad("terms must be separated by spaces");
            }
            match bucket {
                1 => t.optional.push(term),
                2 => t.excluded.push(term),
                _ => t.required.push(term),
            }
        }
        Ok(t)
    }

    fn json(&mut self) -> Result<Expr<JsonCond>, PatternError> {
        if !self.eat("{") {
            return bad("expected '{'");
        }
        let e = self.json_or()?;
        self.ws();
        if !self.eat("}") {
            return bad("expected '}'");
        }
        self.ws();
        if self.pos != self.chars.len() {
            return bad("unexpected text after '}'");
        }
        Ok(e)
    }

    fn json_or(&mut self) -> Result<Expr<JsonCond>, PatternError> {
        let mut e = self.json_and()?;
        loop {
            self.ws();
            if self.eat("||") {
                let r = self.json_and()?;
                e = Expr::Or(Box::new(e), Box::new(r));
            } else {
                return Ok(e);
            }
        }
    }

    fn json_and(&mut self) -> Result<Expr<JsonCond>, PatternError> {
        let mut e = self.json_unary()?;
        loop {
            self.ws();
            if self.eat("&&") {
                let r = self.json_unary()?;
                e = Expr::And(Box::new(e), Box::new(r));
            } else {
                return Ok(e);
            }
        }
    }

    fn json_unary(&mut self) -> Result<Expr<JsonCond>, PatternError> {
        self.ws();
        if self.eat("(") {
            let e = self.json_or()?;
            self.ws();
            if !self.eat(")") {
                return bad("expected ')'");
            }
            return Ok(e);
        }
        let (selector, path) = self.selector()?;
        self.ws();
        let test = if self.eat_keyword("IS") {
            self.ws();
            if self.eat_keyword("TRUE") {
                Test::IsTrue
            } else if self.eat_keyword("FALSE") {
                Test::IsFalse
            } else if self.eat_keyword("NULL") {
                Test::IsNull
            } else {
                return bad("expected TRUE, FALSE or NULL after IS");
            }
        } else if self.eat_keyword("NOT") {
            self.ws();
            if !self.eat_keyword("EXISTS") {
                return bad("expected EXISTS after NOT");
            }
            Test::NotExists
        } else if self.eat_keyword("EXISTS") {
            Test::Exists
        } else {
            let op = self.op()?;
            self.ws();
            let operand = self.operand(op, &['}', ')'])?;
            Test::Cmp(op, operand)
        };
        Ok(Expr::Cond(JsonCond {
            selector,
            path,
            test,
        }))
    }

    fn selector(&mut self) -> Result<(String, Vec<Step>), PatternError> {
        let start = self.pos;
        if !self.eat("$") {
            return bad("expected a selector starting with '$'");
        }
        let mut path = Vec::new();
        loop {
            if self.eat(".") {
                let ks = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| !c.is_whitespace() && !".[]=!<>()&|{}\"%".contains(c))
                {
                    self.pos += 1;
                }
                if ks == self.pos {
                    return bad("empty selector key");
                }
                path.push(Step::Key(self.chars[ks..self.pos].iter().collect()));
            } else if self.eat("[") {
                if self.eat("*") {
                    path.push(Step::AnyIndex);
                } else {
                    let ns = self.pos;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    let n: String = self.chars[ns..self.pos].iter().collect();
                    let Ok(i) = n.parse::<usize>() else {
                        return bad("bad array index");
                    };
                    path.push(Step::Index(i));
                }
                if !self.eat("]") {
                    return bad("expected ']'");
                }
            } else {
                break;
            }
        }
        if path.is_empty() {
            return bad("selector selects nothing");
        }
        Ok((self.chars[start..self.pos].iter().collect(), path))
    }

    fn op(&mut self) -> Result<Op, PatternError> {
        for (s, op) in [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.eat(s) {
                return Ok(op);
            }
        }
        bad("expected a comparison operator")
    }

    /// The value after an operator. `stops` are the characters that end an unquoted value
    /// besides whitespace, `&&` and `||`.
    fn operand(&mut self, op: Op, stops: &[char]) -> Result<Operand, PatternError> {
        let operand = match self.peek() {
            Some('"') => Operand::Str(self.quoted()?),
            Some('%') => Operand::Regex(self.regex()?),
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || stops.contains(&c) || self.at("&&") || self.at("||") {
                        break;
                    }
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                if word.is_empty() {
                    return bad("missing value after operator");
                }
                if word.starts_with(['=', '!', '<', '>']) {
                    return bad("unexpected operator");
                }
                match parse_number(&word) {
                    Some(n) => Operand::Num(n),
                    None => Operand::Str(word),
                }
            }
        };
        if !matches!(op, Op::Eq | Op::Ne) && !matches!(operand, Operand::Num(_)) {
            return bad("numeric comparison needs a number");
        }
        Ok(operand)
    }

    fn field_name(&mut self) -> Result<String, PatternError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '-' || c == '.')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return bad("expected a field name");
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn delimited(&mut self) -> Result<Delimited, PatternError> {
        if !self.eat("[") {
            return bad("expected '['");
        }
        let mut items = Vec::new();
        let mut conds = Vec::new();
        loop {
            self.ws();
            if self.eat("...") {
                items.push(Item::Ellipsis);
            } else {
                let name = self.field_name()?;
                self.ws();
                if matches!(self.peek(), Some('=' | '!' | '<' | '>')) {
                    let first = self.field_cmp(name.clone())?;
                    conds.push(self.field_expr(first)?);
                }
                items.push(Item::Field(name));
            }
            self.ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                break;
            }
            return bad("expected ',' or ']'");
        }
        self.ws();
        if self.pos != self.chars.len() {
            return bad("unexpected text after ']'");
        }
        let names: Vec<&String> = items
            .iter()
            .filter_map(|i| match i {
                Item::Field(n) => Some(n),
                Item::Ellipsis => None,
            })
            .collect();
        for e in &conds {
            let mut unknown = false;
            e.each(&mut |c: &FieldCmp| unknown |= !names.contains(&&c.field));
            if unknown {
                return bad("condition on an unknown field");
            }
        }
        Ok(Delimited { items, conds })
    }

    fn field_cmp(&mut self, field: String) -> Result<FieldCmp, PatternError> {
        let op = self.op()?;
        self.ws();
        let operand = self.operand(op, &[',', ']'])?;
        Ok(FieldCmp { field, op, operand })
    }

    /// `first (&& cmp | || cmp)*`, `&&` binding tighter.
    fn field_expr(&mut self, first: FieldCmp) -> Result<Expr<FieldCmp>, PatternError> {
        let mut ors: Vec<Expr<FieldCmp>> = Vec::new();
        let mut cur = Expr::Cond(first);
        loop {
            self.ws();
            if self.eat("&&") {
                self.ws();
                let name = self.field_name()?;
                self.ws();
                let c = self.field_cmp(name)?;
                cur = Expr::And(Box::new(cur), Box::new(Expr::Cond(c)));
            } else if self.eat("||") {
                self.ws();
                let name = self.field_name()?;
                self.ws();
                let c = self.field_cmp(name)?;
                ors.push(cur);
                cur = Expr::Cond(c);
            } else {
                break;
            }
        }
        for e in ors.into_iter().rev() {
            cur = Expr::Or(Box::new(e), Box::new(cur));
        }
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        FilterPattern::parse(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .matches(msg)
    }

    fn invalid(p: &str) -> bool {
        FilterPattern::parse(p).is_err()
    }

    // --- terms ---

    #[test]
    fn empty_pattern_matches_everything() {
        assert!(m("", "anything"));
        assert!(m("   ", ""));
        assert!(FilterPattern::parse("").unwrap().matches_all());
    }

    #[test]
    fn single_term() {
        assert!(m("ERROR", "[ERROR 400] BAD REQUEST"));
        assert!(!m("ERROR", "[INFO] all good"));
    }

    #[test]
    fn terms_are_case_sensitive() {
        assert!(!m("ERROR", "error: lowercase"));
        assert!(m("error", "error: lowercase"));
    }

    #[test]
    fn multiple_terms_are_anded() {
        assert!(m("ERROR Exception", "ERROR: Exception in thread"));
        assert!(m("ERROR Exception", "Exception then ERROR"));
        assert!(!m("ERROR Exception", "ERROR only"));
    }

    #[test]
    fn quoted_phrase() {
        assert!(m("\"Server Error\"", "500 Internal Server Error"));
        assert!(!m("\"Server Error\"", "Server had an Error"));
        assert!(m("\"ERROR:\"", "ERROR: bad"));
    }

    #[test]
    fn quoted_phrase_with_escaped_quote() {
        assert!(m(r#""say \"hi\"""#, r#"they say "hi" often"#));
    }

    #[test]
    fn optional_terms_are_ored() {
        assert!(m("?ERROR ?WARN", "WARN disk"));
        assert!(m("?ERROR ?WARN", "ERROR disk"));
        assert!(!m("?ERROR ?WARN", "INFO disk"));
    }

    #[test]
    fn exclusion() {
        assert!(m("ERROR -Exiting", "ERROR bad"));
        assert!(!m("ERROR -Exiting", "ERROR Exiting now"));
        assert!(m("-DEBUG", "INFO"));
        assert!(!m("-DEBUG", "DEBUG x"));
        assert!(!m("ERROR -\"not really\"", "ERROR not really"));
    }

    #[test]
    fn lone_dash_is_a_term() {
        assert!(m("a - b", "a - b"));
        assert!(!m("a - b", "a b"));
    }

    #[test]
    fn regex_term() {
        assert!(m("%AUTHORIZED%", "[SUCCESS 200] AUTHORIZED REQUEST"));
        assert!(m("%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST"));
        assert!(m("%ERROR [0-9]{3}%", "[ERROR 401] x"));
        assert!(!m("%^ERROR%", "[ERROR 401] x"));
        assert!(m("%colou?r%", "colour"));
    }

    #[test]
    fn regex_combined_with_terms() {
        assert!(m("%[45]0[0-9]% ERROR", "ERROR 404"));
        assert!(!m("%[45]0[0-9]% ERROR", "ERROR 200"));
        assert!(!m("-%DEBUG|TRACE%", "TRACE x"));
    }

    #[test]
    fn bad_term_patterns() {
        assert!(invalid("\"unterminated"));
        assert!(invalid("%unterminated"));
        assert!(invalid("%(%"));
        assert!(invalid("%%"));
        assert!(invalid("\"a\"b"));
    }

    // --- JSON ---

    #[test]
    fn json_string_equality() {
        assert!(m(
            r#"{ $.level = "ERROR" }"#,
            r#"{"level":"ERROR","msg":"x"}"#
        ));
        assert!(!m(r#"{ $.level = "ERROR" }"#, r#"{"level":"INFO"}"#));
        assert!(!m(r#"{ $.level = "ERROR" }"#, r#"{"level":"error"}"#));
    }

    #[test]
    fn json_unquoted_string() {
        assert!(m(
            "{ $.eventType = UpdateTrail }",
            r#"{"eventType":"UpdateTrail"}"#
        ));
        assert!(m(
            "{$.eventType=UpdateTrail}",
            r#"{"eventType":"UpdateTrail"}"#
        ));
    }

    #[test]
    fn json_numeric_comparisons() {
        let msg = r#"{"latency": 150, "size": 2.5}"#;
        assert!(m("{ $.latency > 100 }", msg));
        assert!(!m("{ $.latency < 100 }", msg));
        assert!(m("{ $.latency >= 150 }", msg));
        assert!(m("{ $.latency <= 150 }", msg));
        assert!(m("{ $.latency = 150 }", msg));
        assert!(m("{ $.latency != 151 }", msg));
        assert!(m("{ $.size > 2.25 }", msg));
        assert!(m("{ $.size < 1e1 }", msg));
        assert!(m("{ $.latency > -5 }", msg));
    }

    #[test]
    fn json_nested_and_booleans() {
        let msg = r#"{"user":{"id":42,"name":"ann"},"ok":true,"bad":false}"#;
        assert!(m("{ $.user.id = 42 && $.ok IS TRUE }", msg));
        assert!(!m("{ $.user.id = 43 && $.ok IS TRUE }", msg));
        assert!(m("{ $.bad IS FALSE }", msg));
        assert!(!m("{ $.ok IS FALSE }", msg));
        assert!(m("{ $.user.id = 43 || $.user.name = \"ann\" }", msg));
    }

    #[test]
    fn json_not_equal() {
        let msg = r#"{"level":"INFO"}"#;
        assert!(m(r#"{ $.level != "ERROR" }"#, msg));
        assert!(!m(r#"{ $.level != "INFO" }"#, msg));
        // A missing field is not "different".
        assert!(!m(r#"{ $.other != "INFO" }"#, msg));
    }

    #[test]
    fn json_null_and_exists() {
        let msg = r#"{"a":null,"b":1}"#;
        assert!(m("{ $.a IS NULL }", msg));
        assert!(!m("{ $.b IS NULL }", msg));
        assert!(!m("{ $.c IS NULL }", msg));
        assert!(m("{ $.c NOT EXISTS }", msg));
        assert!(!m("{ $.a NOT EXISTS }", msg));
        assert!(m("{ $.b EXISTS }", msg));
        assert!(m("{ $.c not exists }", msg));
    }

    #[test]
    fn json_wildcards() {
        assert!(m(r#"{ $.path = "/api/*" }"#, r#"{"path":"/api/users/1"}"#));
        assert!(!m(r#"{ $.path = "/api/*" }"#, r#"{"path":"/web/api/"}"#));
        assert!(m(r#"{ $.ip = 10.0.* }"#, r#"{"ip":"10.0.3.4"}"#));
        assert!(m(r#"{ $.p = "*" }"#, r#"{"p":""}"#));
    }

    #[test]
    fn json_arrays() {
        let msg = r#"{"items":[{"id":7},{"id":9}],"tags":["a","b"]}"#;
        assert!(m("{ $.items[0].id = 7 }", msg));
        assert!(!m("{ $.items[0].id = 9 }", msg));
        assert!(m("{ $.items[1].id = 9 }", msg));
        assert!(m("{ $.items[5].id NOT EXISTS }", msg));
        assert!(m(r#"{ $.tags[*] = "b" }"#, msg));
        assert!(m(r#"{ $.items[*].id > 8 }"#, msg));
    }

    #[test]
    fn json_parentheses_and_precedence() {
        let msg = r#"{"a":1,"b":2,"c":3}"#;
        assert!(m("{ ($.a = 1 || $.b = 5) && $.c = 3 }", msg));
        assert!(!m("{ ($.a = 2 || $.b = 5) && $.c = 3 }", msg));
        // && binds tighter than ||.
        assert!(m("{ $.a = 9 && $.b = 9 || $.c = 3 }", msg));
        assert!(m("{ (($.a = 1)) }", msg));
    }

    #[test]
    fn json_regex_values() {
        assert!(m(
            r#"{ $.msg = %time(out|d)% }"#,
            r#"{"msg":"connection timeout"}"#
        ));
        assert!(!m(
            r#"{ $.msg = %^timeout% }"#,
            r#"{"msg":"connection timeout"}"#
        ));
        assert!(m(r#"{ $.msg != %^ok% }"#, r#"{"msg":"fail"}"#));
    }

    #[test]
    fn json_number_string_leniency() {
        assert!(m("{ $.code = 200 }", r#"{"code":"200"}"#));
        assert!(m(r#"{ $.code = "200" }"#, r#"{"code":200}"#));
    }

    #[test]
    fn non_json_messages_never_match_json_patterns() {
        assert!(!m(r#"{ $.level = "ERROR" }"#, "level=ERROR"));
        assert!(!m("{ $.x NOT EXISTS }", "plain text"));
        assert!(!m("{ $.x NOT EXISTS }", "{broken json"));
    }

    #[test]
    fn json_top_level_array() {
        assert!(m("{ $[1] = 2 }", "[1,2,3]"));
    }

    #[test]
    fn json_selector_with_dashes() {
        assert!(m(r#"{ $.request-id = "r1" }"#, r#"{"request-id":"r1"}"#));
    }

    #[test]
    fn bad_json_patterns() {
        assert!(invalid("{ $.a = }"));
        assert!(invalid("{ $.a = 1"));
        assert!(invalid("{ a = 1 }"));
        assert!(invalid("{ $.a > \"x\" }"));
        assert!(invalid("{ $.a IS MAYBE }"));
        assert!(invalid("{ $.a = 1 } trailing"));
        assert!(invalid("{ ($.a = 1 }"));
        assert!(invalid("{ $.a[x] = 1 }"));
        assert!(invalid("{ $ = 1 }"));
        assert!(invalid("{ $.a == 1 }"));
        assert!(invalid("{}"));
    }

    // --- space-delimited ---

    const APACHE: &str =
        r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 2326"#;

    #[test]
    fn delimited_all_fields() {
        assert!(m(
            "[ip, user, username, timestamp, request, status_code, bytes]",
            APACHE
        ));
        // Wrong field count.
        assert!(!m(
            "[ip, user, username, timestamp, request, status_code]",
            APACHE
        ));
    }

    #[test]
    fn delimited_condition() {
        assert!(m(
            "[ip, user, username, timestamp, request, status_code = 404, bytes]",
            APACHE
        ));
        assert!(!m(
            "[ip, user, username, timestamp, request, status_code = 200, bytes]",
            APACHE
        ));
    }

    #[test]
    fn delimited_ellipsis() {
        assert!(m("[ip, user, ..., status_code = 404, size > 1000]", APACHE));
        assert!(!m(
            "[ip, user, ..., status_code = 404, size > 3000]",
            APACHE
        ));
        assert!(m("[..., size]", APACHE));
        assert!(m("[...]", APACHE));
        assert!(m("[ip = 127.0.0.1, ...]", APACHE));
        assert!(m("[..., request = \"GET *\", ...]", APACHE));
    }

    #[test]
    fn delimited_wildcards_and_or() {
        assert!(m("[..., code = 4* || code = 5*, size]", APACHE));
        assert!(!m("[..., code = 2* || code = 3*, size]", APACHE));
        assert!(m("[..., code != 200 && code != 500, size]", APACHE));
        assert!(!m("[..., code != 404 && code != 500, size]", APACHE));
    }

    #[test]
    fn delimited_brackets_and_quotes_are_single_fields() {
        assert_eq!(
            split_fields(APACHE),
            vec![
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:25:15 -0700",
                "GET /apache_pb.gif HTTP/1.0",
                "404",
                "2326"
            ]
        );
        assert!(m(
            "[ip, id, user, ts = 10/Oct/*, req = %GET%, code, size]",
            APACHE
        ));
    }

    #[test]
    fn delimited_simple_first_word() {
        assert!(m("[w1=ERROR, w2]", "ERROR timeout"));
        assert!(!m("[w1=ERROR, w2]", "WARN timeout"));
        assert!(!m("[w1=ERROR, w2]", "ERROR timeout extra"));
    }

    #[test]
    fn delimited_numeric_on_text_is_false() {
        assert!(!m("[a, b > 5]", "x abc"));
        assert!(m("[a, b != 5]", "x abc"));
    }

    #[test]
    fn bad_delimited_patterns() {
        assert!(invalid("[a, b"));
        assert!(invalid("[a,, b]"));
        assert!(invalid("[a = ]"));
        assert!(invalid("[a, b] x"));
        assert!(invalid("[a, b = 1 && c = 2]"));
        assert!(invalid("[a > x]"));
        assert!(invalid("[]"));
    }

    #[test]
    fn extraction() {
        let p = FilterPattern::parse("[ip, user, ..., code = 404, size]").unwrap();
        let got = p.extract(APACHE).unwrap();
        assert_eq!(got[0], ("$ip".to_string(), "127.0.0.1".to_string()));
        assert_eq!(
            got.last().unwrap(),
            &("$size".to_string(), "2326".to_string())
        );
        assert!(p.extract("nope").is_none());
        let j = FilterPattern::parse("{ $.a.b = 1 }").unwrap();
        assert_eq!(
            j.extract(r#"{"a":{"b":1}}"#).unwrap(),
            vec![("$.a.b".to_string(), "1".to_string())]
        );
        let t = FilterPattern::parse("ERROR").unwrap();
        assert_eq!(t.extract("ERROR x"), Some(vec![]));
        assert_eq!(t.extract("x"), None);
    }

    #[test]
    fn star_matching() {
        assert!(star_match("a*c", "abbbc"));
        assert!(star_match("*", ""));
        assert!(!star_match("a*c", "abbb"));
        assert!(star_match("a?c", "a?c"));
        assert!(!star_match("a?c", "abc"));
    }

    #[test]
    fn delimited_is_bounded() {
        let p = FilterPattern::parse("[..., a = x, ..., b = y, ..., c = z, ...]").unwrap();
        let msg = "w ".repeat(2_000);
        assert!(!p.matches(&msg));
    }
}
