//! Plain HTTP request/response values: what the protocol layer reads and writes.
//! The server converts hyper's types into these; tests build them by hand.

use bytes::Bytes;

/// An HTTP request as received.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The path exactly as sent (still percent-encoded), without the query string.
    pub path: String,
    /// The raw query string (after `?`, percent-encoded), empty if none.
    pub query: String,
    /// Header names as sent; look them up case-insensitively with [`HttpRequest::header`].
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpRequest {
    /// First value of a header, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decoded query parameters in order (`+` is a space, as in forms).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        decode_form(self.query.as_bytes())
    }

    /// Build from a `uri` as in the protocol test vectors (`/path?query`).
    pub fn from_uri(method: &str, uri: &str, headers: Vec<(String, String)>, body: Bytes) -> Self {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (uri.to_string(), String::new()),
        };
        HttpRequest {
            method: method.to_string(),
            path,
            query,
            headers,
            body,
        }
    }
}

/// An HTTP response to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decode `application/x-www-form-urlencoded` data into ordered pairs.
pub fn decode_form(data: &[u8]) -> Vec<(String, String)> {
    data.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (percent_decode_plus(k), percent_decode_plus(v))
        })
        .collect()
}

/// Percent-decode, treating `+` as a space.
pub fn percent_decode_plus(s: &[u8]) -> String {
    let replaced: Vec<u8> = s
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&replaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-decode (a `+` stays a `+`), as for URI path segments.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let p = decode_form(b"Action=Foo&Name=a+b%2Fc&Empty=&Flag");
        assert_eq!(p[0], ("Action".into(), "Foo".into()));
        assert_eq!(p[1], ("Name".into(), "a b/c".into()));
        assert_eq!(p[2], ("Empty".into(), "".into()));
        assert_eq!(p[3], ("Flag".into(), "".into()));
    }
}
