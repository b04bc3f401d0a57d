//! A small regular-expression engine for CloudWatch Logs filter patterns (`%regex%`) and
//! `ListLogGroups`' name patterns.
//!
//! Supported: literals, `.`, character classes (`[a-z]`, `[^0-9_]`), the escapes `\d \D \w \W
//! \s \S \b \B \t \n \r` and escaped punctuation, the quantifiers `* + ? {n} {n,} {n,m}` (a
//! trailing `?` for laziness is accepted; it does not change whether a text matches), anchors
//! `^ $`, alternation `|` and groups `( )` / `(?: )`. Matching is a Thompson-NFA simulation
//! (Pike VM without captures): time is bounded by text length × program size, there is no
//! backtracking and no recursion on the text, so hostile patterns cannot hang a request.

use std::fmt;

/// Largest compiled program; counted repetitions are expanded, so `a{1000}{1000}` is refused.
const MAX_PROGRAM: usize = 20_000;
/// Largest bound of a counted repetition.
const MAX_REPEAT: u32 = 1_000;
/// Deepest group nesting.
const MAX_DEPTH: usize = 64;

/// A pattern that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexError(pub String);

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid regular expression: {}", self.0)
    }
}

impl std::error::Error for RegexError {}

/// A compiled regular expression.
#[derive(Debug, Clone)]
pub struct Regex {
    prog: Vec<Inst>,
}

#[derive(Debug, Clone, PartialEq)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let hit = self.items.iter().any(|it| match *it {
            ClassItem::Range(a, b) => a <= c && c <= b,
            ClassItem::Digit(neg) => c.is_ascii_digit() != neg,
            ClassItem::Word(neg) => is_word(c) != neg,
            ClassItem::Space(neg) => c.is_whitespace() != neg,
        });
        hit != self.negated
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Empty,
    Lit(char),
    Any,
    Class(Class),
    Bol,
    Eol,
    WordBoundary(bool),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Inst {
    Char(char),
    Any,
    Class(Class),
    Split(usize, usize),
    Jmp(usize),
    Bol,
    Eol,
    WordBoundary(bool),
    Match,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn err<T>(&self, msg: &str) -> Result<T, RegexError> {
        Err(RegexError(format!("{msg} at offset {}", self.pos)))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alt(&mut self) -> Result<Node, RegexError> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantifiers(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    fn quantifiers(&mut self, mut atom: Node) -> Result<Node, RegexError> {
        loop {
            let (min, max) = match self.peek() {
                Some('*') => {
                    self.pos += 1;
                    (0, None)
                }
                Some('+') => {
                    self.pos += 1;
                    (1, None)
                }
                Some('?') => {
                    self.pos += 1;
                    (0, Some(1))
                }
                Some('{') => match self.counted()? {
                    Some(b) => b,
                    None => return Ok(atom),
                },
                _ => return Ok(atom),
            };
            if matches!(
                atom,
                Node::Bol | Node::Eol | Node::WordBoundary(_) | Node::Empty
            ) {
                return self.err("quantifier without a repeatable operand");
            }
            // A lazy marker: matching is boolean, so laziness changes nothing.
            if self.peek() == Some('?') {
                self.pos += 1;
            }
            atom = Node::Repeat {
                node: Box::new(atom),
                min,
                max,
            };
        }
    }

    /// `{n}`, `{n,}`, `{n,m}`; `None` (nothing consumed) when the brace is a literal.
    #[allow(clippy::type_complexity)]
    fn counted(&mut self) -> Result<Option<(u32, Option<u32>)>, RegexError> {
        let start = self.pos;
        let mut i = self.pos + 1;
        let read_num = |i: &mut usize, chars: &[char]| -> Option<u32> {
            let s = *i;
            while *i < chars.len() && chars[*i].is_ascii_digit() {
                *i += 1;
            }
            if *i == s {
                return None;
            }
            chars[s..*i].iter().collect::<String>().parse().ok()
        };
        let Some(min) = read_num(&mut i, &self.chars) else {
            return Ok(None);
        };
        let max = match self.chars.get(i) {
            Some('}') => Some(min),
            Some(',') => {
                i += 1;
                if self.chars.get(i) == Some(&'}') {
                    None
                } else {
                    match read_num(&mut i, &self.chars) {
                        Some(m) if self.chars.get(i) == Some(&'}') => Some(m),
                        _ => return Ok(None),
                    }
                }
            }
            _ => return Ok(None),
        };
        if self.chars.get(i) != Some(&'}') {
            return Ok(None);
        }
        self.pos = i + 1;
        if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
            self.pos = start;
            return self.err("repetition count too large");
        }
        if max.is_some_and(|m| m < min) {
            self.pos = start;
            return self.err("repetition range out of order");
        }
        Ok(Some((min, max)))
    }

    fn atom(&mut self) -> Result<Node, RegexError> {
        let Some(c) = self.peek() else {
            return self.err("unexpected end of pattern");
        };
        self.pos += 1;
        match c {
            '.' => Ok(Node::Any),
            '^' => Ok(Node::Bol),
            '$' => Ok(Node::Eol),
            '(' => {
                if self.depth >= MAX_DEPTH {
                    return self.err("groups nested too deeply");
                }
                if self.chars.get(self.pos) == Some(&'?')
                    && self.chars.get(self.pos + 1) == Some(&':')
                {
                    self.pos += 2;
                }
                self.depth += 1;
                let inner = self.alt()?;
                self.depth -= 1;
                if self.peek() != Some(')') {
                    return self.err("unclosed group");
                }
                self.pos += 1;
                Ok(inner)
            }
            ')' => self.err("unmatched ')'"),
            '[' => self.class(),
            '*' | '+' | '?' => self.err("quantifier without operand"),
            '\\' => self.escape(false).map(|e| match e {
                Escaped::Char(c) => Node::Lit(c),
                Escaped::Item(it) => Node::Class(Class {
                    negated: false,
                    items: vec![it],
                }),
                Escaped::Boundary(b) => Node::WordBoundary(b),
            }),
            c => Ok(Node::Lit(c)),
        }
    }

    fn escape(&mut self, in_class: bool) -> Result<Escaped, RegexError> {
        let Some(c) = self.peek() else {
            return self.err("trailing backslash");
        };
        self.pos += 1;
        Ok(match c {
            'd' => Escaped::Item(ClassItem::Digit(false)),
            'D' => Escaped::Item(ClassItem::Digit(true)),
            'w' => Escaped::Item(ClassItem::Word(false)),
            'W' => Escaped::Item(ClassItem::Word(true)),
            's' => Escaped::Item(ClassItem::Space(false)),
            'S' => Escaped::Item(ClassItem::Space(true)),
            'b' if !in_class => Escaped::Boundary(true),
            'B' if !in_class => Escaped::Boundary(false),
            't' => Escaped::Char('\t'),
            'n' => Escaped::Char('\n'),
            'r' => Escaped::Char('\r'),
            c if c.is_ascii_alphanumeric() => {
                self.pos -= 1;
                return self.err("unsupported escape");
            }
            c => Escaped::Char(c),
        })
    }

    fn class(&mut self) -> Result<Node, RegexError> {
        let mut negated = false;
        if self.peek() == Some('^') {
            negated = true;
            self.pos += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return self.err("unclosed character class");
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            self.pos += 1;
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Escaped::Char(c) => c,
                    Escaped::Item(it) => {
                        items.push(it);
                        continue;
                    }
                    Escaped::Boundary(_) => return self.err("boundary in class"),
                }
            } else {
                c
            };
            // A range `lo-hi`, unless the dash is last.
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let Some(hc) = self.peek() else {
                    return self.err("unclosed character class");
                };
                self.pos += 1;
                let hi = if hc == '\\' {
                    match self.escape(true)? {
                        Escaped::Char(c) => c,
                        _ => return self.err("class escape as range bound"),
                    }
                } else {
                    hc
                };
                if hi < lo {
                    return self.err("character range out of order");
                }
                items.push(ClassItem::Range(lo, hi));
            } else {
                items.push(ClassItem::Range(lo, lo));
            }
        }
        Ok(Node::Class(Class { negated, items }))
    }
}

enum Escaped {
    Char(char),
    Item(ClassItem),
    Boundary(bool),
}

struct Compiler {
    prog: Vec<Inst>,
}

impl Compiler {
    fn push(&mut self, i: Inst) -> Result<usize, RegexError> {
        if self.prog.len() >= MAX_PROGRAM {
            return Err(RegexError("pattern too large".to_string()));
        }
        self.prog.push(i);
        Ok(self.prog.len() - 1)
    }

    fn compile(&mut self, n: &Node) -> Result<(), RegexError> {
        match n {
            Node::Empty => {}
            Node::Lit(c) => {
                self.push(Inst::Char(*c))?;
            }
            Node::Any => {
                self.push(Inst::Any)?;
            }
            Node::Class(c) => {
                self.push(Inst::Class(c.clone()))?;
            }
            Node::Bol => {
                self.push(Inst::Bol)?;
            }
            Node::Eol => {
                self.push(Inst::Eol)?;
            }
            Node::WordBoundary(b) => {
                self.push(Inst::WordBoundary(*b))?;
            }
            Node::Concat(items) => {
                for it in items {
                    self.compile(it)?;
                }
            }
            Node::Alt(branches) => {
                let mut jumps = Vec::new();
                for (i, b) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.compile(b)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, next);
                    } else {
                        self.compile(b)?;
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat { node, min, max } => {
                for _ in 0..*min {
                    self.compile(node)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.compile(node)?;
                        self.push(Inst::Jmp(split))?;
                        let end = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, end);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.compile(node)?;
                        }
                        let end = self.prog.len();
                        for s in splits {
                            self.prog[s] = Inst::Split(s + 1, end);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Regex {
    /// Compile `pattern`.
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            depth: 0,
        };
        let node = p.alt()?;
        if p.pos != p.chars.len() {
            return p.err("unmatched ')'");
        }
        let mut c = Compiler { prog: Vec::new() };
        c.compile(&node)?;
        c.push(Inst::Match)?;
        Ok(Regex { prog: c.prog })
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let mut clist: Vec<usize> = Vec::with_capacity(n);
        let mut nlist: Vec<usize> = Vec::with_capacity(n);
        // `seen[pc] == gen` marks pc as already on the list for this position.
        let mut seen: Vec<usize> = vec![usize::MAX; n];
        let mut stack: Vec<usize> = Vec::new();
        for pos in 0..=chars.len() {
            // Unanchored search: a new thread starts at every position.
            if self.add(0, pos, &chars, &mut clist, &mut seen, &mut stack) {
                return true;
            }
            if pos == chars.len() {
                break;
            }
            let c = chars[pos];
            nlist.clear();
            for &pc in &clist {
                let ok = match &self.prog[pc] {
                    Inst::Char(x) => *x == c,
                    Inst::Any => c != '\n',
                    Inst::Class(cl) => cl.matches(c),
                    _ => false,
                };
                if ok && self.add(pc + 1, pos + 1, &chars, &mut nlist, &mut seen, &mut stack) {
                    return true;
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
        }
        false
    }

    /// Follow the epsilon closure from `pc` at text position `pos`, adding consuming
    /// instructions to `list`. Returns `true` when `Match` is reachable.
    fn add(
        &self,
        pc: usize,
        pos: usize,
        chars: &[char],
        list: &mut Vec<usize>,
        seen: &mut [usize],
        stack: &mut Vec<usize>,
    ) -> bool {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if seen[pc] == pos {
                continue;
            }
            seen[pc] = pos;
            match &self.prog[pc] {
                Inst::Match => return true,
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Bol => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::Eol => {
                    if pos == chars.len() {
                        stack.push(pc + 1);
                    }
                }
                Inst::WordBoundary(want) => {
                    let before = pos > 0 && is_word(chars[pos - 1]);
                    let after = pos < chars.len() && is_word(chars[pos]);
                    if (before != after) == *want {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char(_) | Inst::Any | Inst::Class(_) => list.push(pc),
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).unwrap().is_match(t)
    }

    #[test]
    fn literals_and_dot() {
        assert!(m("ERROR", "an ERROR here"));
        assert!(!m("ERROR", "an error here"));
        assert!(m("a.c", "xxabcxx"));
        assert!(!m("a.c", "ac"));
        assert!(m("", "anything"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("[a-z]+[0-9]", "abc1"));
        assert!(!m("^[a-z]+$", "abC"));
        assert!(m("[^0-9]", "12a"));
        assert!(!m("^[^0-9]+$", "12a"));
        assert!(m(r"\d{3}-\d{4}", "call 555-1234"));
        assert!(m(r"^\w+\s\w+$", "hello world"));
        assert!(m(r"10\.0\.0\.1", "ip 10.0.0.1"));
        assert!(!m(r"10\.0\.0\.1", "ip 10a0b0c1"));
        assert!(m(r"[\d_]+", "_"));
        assert!(m("[-a]", "-"));
        assert!(m("[]a]", "]"));
        assert!(m(r"\S\D\W", "xx-"));
    }

    #[test]
    fn quantifiers() {
        assert!(m("colou?r", "color"));
        assert!(m("colou?r", "colour"));
        assert!(!m("colou?r", "colouur"));
        assert!(m("^a*$", ""));
        assert!(m("^a+$", "aaa"));
        assert!(!m("^a+$", ""));
        assert!(m("^a{2,3}$", "aaa"));
        assert!(!m("^a{2,3}$", "aaaa"));
        assert!(m("^a{2}$", "aa"));
        assert!(m("^a{2,}$", "aaaaa"));
        assert!(m("^x{a}$", "x{a}"));
        assert!(m("^a.*?b$", "axxb"));
    }

    #[test]
    fn anchors_alternation_groups() {
        assert!(m("gray|grey", "the grey cat"));
        assert!(m("^(foo|bar)baz$", "barbaz"));
        assert!(!m("^(foo|bar)baz$", "quxbaz"));
        assert!(m("^(?:ab)+$", "ababab"));
        assert!(!m("^(?:ab)+$", "ababa"));
        assert!(m(r"\bcat\b", "a cat sat"));
        assert!(!m(r"\bcat\b", "concatenate"));
        assert!(m("end$", "the end"));
        assert!(!m("^end", "the end"));
    }

    #[test]
    fn errors() {
        for bad in [
            "(", "a)", "[a-", "*a", "a{5,2}", r"\", r"\q", "a{2000}", "[z-a]",
        ] {
            assert!(Regex::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pathological_patterns_are_linear() {
        let text = "a".repeat(5_000);
        assert!(!m("^(a*)*b$", &text));
        assert!(!m("(a|aa)+c", &text));
        assert!(m("^(a|a)*$", &text));
    }
}
