//! AWS Signature Version 2 for S3 query-string authentication (presigned URLs with
//! `AWSAccessKeyId`, `Expires` and `Signature`, which boto3 writes by default for a custom
//! endpoint): the string to sign, HMAC-SHA1 signing and verification with expiry.
//!
//! Pure logic: the caller finds the secret of the access key. SHA-1 and base64 are implemented
//! here because this crate carries no other use for them.

use crate::sigv4::SignedRequest;
use crate::{AuthError, AuthErrorCode};

/// The query parameters of a SigV2 presigned URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Query {
    pub access_key_id: String,
    /// Base64 HMAC-SHA1, URL-decoded.
    pub signature: String,
    /// Seconds since the epoch after which the URL is refused.
    pub expires: i64,
}

/// S3 sub-resources that are part of the canonical resource.
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

fn decode(s: &str) -> String {
    let plus: String = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

fn pairs(query: &str) -> Vec<(String, Option<String>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), Some(decode(v))),
            None => (decode(p), None),
        })
        .collect()
}

/// The SigV2 parameters of a raw query string, if it carries all three.
pub fn parse_query(query: &str) -> Option<V2Query> {
    let mut key = None;
    let mut sig = None;
    let mut expires = None;
    for (k, v) in pairs(query) {
        match k.as_str() {
            "AWSAccessKeyId" => key = v,
            "Signature" => sig = v,
            "Expires" => expires = v.and_then(|e| e.trim().parse::<i64>().ok()),
            _ => {}
        }
    }
    Some(V2Query {
        access_key_id: key.filter(|k| !k.is_empty())?,
        signature: sig?,
        expires: expires?,
    })
}

/// The canonical resource: the path as sent plus the sorted sub-resources of the query.
pub fn canonical_resource(path: &str, query: &str) -> String {
    let mut subs: Vec<(String, Option<String>)> = pairs(query)
        .into_iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .collect();
    subs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    if !subs.is_empty() {
        let joined: Vec<String> = subs
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) if !v.is_empty() => format!("{k}={v}"),
                _ => k,
            })
            .collect();
        out.push('?');
        out.push_str(&joined.join("&"));
    }
    out
}

/// The string to sign of a presigned request.
pub fn string_to_sign(req: &SignedRequest<'_>, expires: i64) -> String {
    let header = |n: &str| req.header(n).unwrap_or("").trim().to_string();
    let mut amz: Vec<(String, String)> = Vec::new();
    for (k, v) in req.headers {
        let k = k.to_ascii_lowercase();
        if !k.starts_with("x-amz-") {
            continue;
        }
        match amz.iter_mut().find(|(n, _)| *n == k) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(v.trim());
            }
            None => amz.push((k, v.trim().to_string())),
        }
    }
    amz.sort();
    let mut s = format!(
        "{}\n{}\n{}\n{}\n",
        req.method,
        header("content-md5"),
        header("content-type"),
        expires
    );
    for (k, v) in amz {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&canonical_resource(req.path, req.query));
    s
}

/// The base64 HMAC-SHA1 signature of `string_to_sign`.
pub fn sign(secret_access_key: &str, string_to_sign: &str) -> String {
    base64(&hmac_sha1(
        secret_access_key.as_bytes(),
        string_to_sign.as_bytes(),
    ))
}

/// Verify a SigV2 presigned request at `now` (seconds since the epoch).
pub fn verify_query(
    req: &SignedRequest<'_>,
    parsed: &V2Query,
    secret_access_key: &str,
    now: i64,
) -> Result<(), AuthError> {
    if now > parsed.expires {
        return Err(AuthError::new(
            AuthErrorCode::AccessDenied,
            "Request has expired",
        ));
    }
    let sts = string_to_sign(req, parsed.expires);
    let expected = sign(secret_access_key, &sts);
    let a = expected.as_bytes();
    let b = parsed.signature.trim().as_bytes();
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if !same {
        return Err(AuthError::signature_does_not_match("s3"));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// SHA-1, HMAC-SHA1, base64.

/// SHA-1 of `data` (FIPS 180-4).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// HMAC-SHA1 (RFC 2104).
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha1(&inner));
    sha1(&outer)
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::Payload;

    #[test]
    fn sha1_and_hmac_vectors() {
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            hex::encode(sha1(&long)),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
        // RFC 2202 test case 2.
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hell"), "aGVsbA==");
        assert_eq!(base64(b"hel"), "aGVs");
    }

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a [(String, String)],
    ) -> SignedRequest<'a> {
        SignedRequest {
            method,
            path,
            query,
            headers,
            payload: Payload::Bytes(b""),
        }
    }

    #[test]
    fn presigned_get_round_trip() {
        // The documented example of S3 query string authentication.
        let headers = vec![("Host".to_string(), "johnsmith.s3.amazonaws.com".to_string())];
        let r = req("GET", "/johnsmith/photos/puppy.jpg", "", &headers);
        let sts = string_to_sign(&r, 1175139620);
        assert_eq!(sts, "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg");
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(sign(secret, &sts), "NpgCjnDzrM+WFzoENXmpNDUsSn8=");
        let q = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D";
        let parsed = parse_query(q).expect("parsed");
        assert_eq!(parsed.expires, 1175139620);
        let r = req("GET", "/johnsmith/photos/puppy.jpg", q, &headers);
        assert!(verify_query(&r, &parsed, secret, 1175139000).is_ok());
        let e = verify_query(&r, &parsed, secret, 1175139621).unwrap_err();
        assert_eq!(e.code(), "AccessDenied");
        let e = verify_query(&r, &parsed, "wrong", 1175139000).unwrap_err();
        assert_eq!(e.code(), "SignatureDoesNotMatch");
    }

    #[test]
    fn canonical_resource_keeps_subresources() {
        assert_eq!(
            canonical_resource("/b/k", "versionId=v1&AWSAccessKeyId=x&acl&Expires=1"),
            "/b/k?acl&versionId=v1"
        );
        assert_eq!(canonical_resource("", ""), "/");
        assert!(parse_query("AWSAccessKeyId=x&Expires=1").is_none());
    }
}
