//! Pure helpers: `Range` headers, S3's URL encoding of listed keys, the grouping of keys under
//! a delimiter, bucket-name rules and ETag matching for conditional requests.

use fc_protocol::ApiError;
use serde_json::json;

/// The byte range a `Range` header selects from an object of `size` bytes, as inclusive
/// `(first, last)`; `Ok(None)` means the whole object (no header, or one S3 ignores).
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let Some(spec) = h.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || {
        ApiError::new(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
        )
        .with_field("RangeRequested", json!(h))
        .with_field("ActualObjectSize", json!(size.to_string()))
    };
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        let n = n.min(size);
        return Ok(Some((size - n, size - 1)));
    }
    let Ok(first) = a.parse::<u64>() else {
        return Ok(None);
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => l,
            _ => return Ok(None),
        }
    };
    if first >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((first, last.min(size - 1))))
}

/// Percent-encode a key as S3 does for `encoding-type=url` (unreserved kept, `/` kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encode everything except unreserved characters (keys inside event records).
pub fn event_key_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The common prefix `key` rolls up into under `prefix` and `delimiter`, if any.
pub fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    let i = rest.find(d)?;
    Some(format!("{prefix}{}", &rest[..i + d.len()]))
}

/// A string sorting after every string that starts with `p`.
pub fn after_all(p: &str) -> String {
    format!("{p}\u{10FFFF}")
}

/// One item of a listing.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<T> {
    Entry(T),
    Prefix(String),
}

/// Group sorted `(key, entry)` pairs into a listing page of at most `max` items: keys under a
/// common prefix collapse into one `Prefix`. Returns the items and whether more follow.
pub fn group<T: Clone>(
    sorted: &[(String, T)],
    prefix: &str,
    delimiter: Option<&str>,
    max: usize,
) -> (Vec<Item<T>>, bool) {
    let mut out: Vec<Item<T>> = Vec::new();
    let mut last_prefix: Option<String> = None;
    for (key, entry) in sorted {
        if !key.starts_with(prefix) {
            continue;
        }
        if let Some(cp) = common_prefix(key, prefix, delimiter) {
            if last_prefix.as_deref() == Some(cp.as_str()) {
                continue;
            }
            if out.len() == max {
                return (out, true);
            }
            last_prefix = Some(cp.clone());
            out.push(Item::Prefix(cp));
        } else {
            if out.len() == max {
                return (out, true);
            }
            out.push(Item::Entry(entry.clone()));
        }
    }
    (out, false)
}

/// Bucket naming rules (the general-purpose bucket subset).
pub fn valid_bucket_name(name: &str) -> bool {
    let len_ok = (3..=63).contains(&name.len());
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    let no_ip = name.split('.').count() != 4 || !name.split('.').all(|p| p.parse::<u8>().is_ok());
    len_ok && chars_ok && ends_ok && !name.contains("..") && no_ip
}

/// Whether an `If-Match`/`If-None-Match` list (`"a", "b"` or `*`) matches `etag`.
pub fn etag_matches(list: &str, etag: &str) -> bool {
    let want = etag.trim_matches('"');
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == want)
}

/// Parse an `x-amz-tagging` header (`k=v&k2=v2`).
pub fn parse_tag_header(h: &str) -> Vec<(String, String)> {
    fc_protocol::http::decode_form(h.as_bytes())
}

/// Midnight UTC at or after `secs` (lifecycle day rounding).
pub fn next_midnight(secs: f64) -> f64 {
    let day = 86_400.0;
    (secs / day).ceil() * day
}
