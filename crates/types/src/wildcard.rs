//! `*` (any run, possibly empty) and `?` (exactly one character) wildcards, as EC2 filters and
//! IAM policies use them.

/// Whether `text` matches `pattern`. Linear-time backtracking on the last `*`.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("web-*", "web-1"));
        assert!(wildcard_match("w?b", "web"));
        assert!(!wildcard_match("w?b", "weeb"));
        assert!(wildcard_match("*a*b*", "xxaxxbxx"));
        assert!(!wildcard_match("*a*b", "xxaxxbxxc"));
        assert!(wildcard_match(
            "arn:aws:s3:::bucket/*",
            "arn:aws:s3:::bucket/a/b"
        ));
        assert!(!wildcard_match("abc", "abcd"));
    }
}
