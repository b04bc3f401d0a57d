//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) verification, for both the `Authorization`
//! header and presigned-URL (query string) forms, plus verification of `aws-chunked` chunk
//! signatures. Pure functions over a borrowed request; the caller looks up the secret key.
//!
//! Where real clients canonicalise ambiguously (a path sent with characters the client did not
//! percent-encode, `+` in a query string, whether a non-S3 presigned URL signs the body) every
//! reasonable reading is tried; all of them still require the secret key.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::error::{is_s3, AuthError, AuthErrorCode};

/// The only algorithm verified.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Payload hash placeholder for an unsigned body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Payload hash placeholder for an `aws-chunked` body signed chunk by chunk.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// Payload hash placeholder for an unsigned `aws-chunked` body with trailing checksums.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of the empty string, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How far a request time may be from the server's clock.
pub const MAX_SKEW: Duration = Duration::minutes(15);
/// The longest a presigned URL may be valid (seven days).
pub const MAX_PRESIGNED_EXPIRES: u64 = 604_800;

type HmacSha256 = Hmac<Sha256>;

/// The body as the caller has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The whole body.
    Bytes(&'a [u8]),
    /// Its SHA-256, hex (when the caller hashed a streamed body itself).
    Sha256Hex(&'a str),
}

impl Payload<'_> {
    fn sha256_hex(&self) -> String {
        match self {
            Payload::Bytes(b) => sha256_hex(b),
            Payload::Sha256Hex(h) => h.to_ascii_lowercase(),
        }
    }
}

/// The parts of an HTTP request SigV4 covers, exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The raw path as sent, still percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query string as sent, without the `?`; empty when none.
    pub query: &'a str,
    /// All headers in arrival order (names in any case; repeated names allowed).
    pub headers: &'a [(String, String)],
    /// The body or its hash.
    pub payload: Payload<'a>,
}

impl<'a> SignedRequest<'a> {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        parse_query(self.query, false)
    }

    /// The first decoded value of a query parameter (case-sensitive name).
    fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
    }
}

/// What a SigV4-signed request claims: who signed it, for what scope, over which headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id from the credential scope.
    pub access_key_id: String,
    /// Scope date, `YYYYMMDD`.
    pub date: String,
    /// Scope region, e.g. `us-east-1`.
    pub region: String,
    /// Scope service, e.g. `sts`, `s3`, `ecr`.
    pub service: String,
    /// Lowercased signed header names, in the order given.
    pub signed_headers: Vec<String>,
    /// The hex signature the client sent.
    pub signature: String,
    /// `X-Amz-Security-Token`, when temporary credentials signed the request.
    pub session_token: Option<String>,
    /// Whether the signature came in the query string (presigned URL).
    pub presigned: bool,
    /// The request time, `YYYYMMDDTHHMMSSZ` (from `X-Amz-Date`, or the `Date` header).
    pub amz_date: String,
    /// `X-Amz-Expires` in seconds (presigned only, when present).
    pub expires: Option<u64>,
}

impl Credentials {
    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }

    /// The request time as a timestamp.
    pub fn request_time(&self) -> Result<OffsetDateTime, AuthError> {
        parse_amz_date(&self.amz_date).ok_or_else(|| bad_date(&self.amz_date))
    }
}

/// Read the SigV4 authentication a request carries. `Ok(None)` when it carries none.
pub fn parse(req: &SignedRequest<'_>) -> Result<Option<Credentials>, AuthError> {
    let authorization = req.header("authorization");
    let pairs = req.query_pairs();
    let has_query = |name: &str| pairs.iter().any(|(k, _)| k.as_slice() == name.as_bytes());
    let query_auth = has_query("X-Amz-Algorithm")
        || has_query("X-Amz-Credential")
        || has_query("X-Amz-Signature");
    let query_v2 = has_query("AWSAccessKeyId") && has_query("Signature");
    match (authorization, query_auth || query_v2) {
        (None, false) => Ok(None),
        (Some(_), true) => Err(AuthError::new(
            AuthErrorCode::InvalidArgument,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        )),
        (Some(value), false) => parse_header(req, value).map(Some),
        (None, true) if query_v2 && !query_auth => Err(AuthError::new(
            AuthErrorCode::IncompleteSignature,
            "Signature version 2 is not supported; sign requests with AWS4-HMAC-SHA256",
        )),
        (None, true) => parse_query_auth(req).map(Some),
    }
}

fn parse_header(req: &SignedRequest<'_>, value: &str) -> Result<Credentials, AuthError> {
    let trimmed = value.trim();
    let (algorithm, rest) = trimmed
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((trimmed, ""));
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in rest
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|c| !c.is_empty())
    {
        let Some((key, val)) = component.split_once('=') else {
            if algorithm == ALGORITHM {
                return Err(incomplete(format!(
                    "'{component}' not a valid key=value pair (missing equal-sign) in \
                     Authorization header: '{value}'."
                )));
            }
            continue;
        };
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed_headers = Some(val),
            "Signature" => signature = Some(val),
            _ => {}
        }
    }
    let date_header = req.header("x-amz-date").or_else(|| req.header("date"));
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    if date_header.is_none() {
        missing.push(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some(date_header)) =
        (credential, signed_headers, signature, date_header)
    else {
        return Err(incomplete(format!(
            "{} Authorization={value}",
            missing.join(" ")
        )));
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'; only '{ALGORITHM}' is supported"
        )));
    }
    let amz_date = if let Some(x) = req.header("x-amz-date") {
        let x = x.trim();
        parse_amz_date(x).ok_or_else(|| bad_date(x))?;
        x.to_string()
    } else {
        let t = parse_http_date(date_header.trim()).ok_or_else(|| bad_date(date_header))?;
        format_amz_date(t)
    };
    let scope = parse_credential(credential)?;
    Ok(Credentials {
        access_key_id: scope.0,
        date: scope.1,
        region: scope.2,
        service: scope.3,
        signed_headers: split_signed_headers(signed_headers),
        signature: signature.to_string(),
        session_token: req.header("x-amz-security-token").map(str::to_string),
        presigned: false,
        amz_date,
        expires: None,
    })
}

fn parse_query_auth(req: &SignedRequest<'_>) -> Result<Credentials, AuthError> {
    let get = |name: &str| req.query_param(name);
    let credential = get("X-Amz-Credential");
    let service_hint = credential
        .as_deref()
        .and_then(|c| parse_credential(c).ok())
        .map(|c| c.3);
    let s3 = match service_hint.as_deref() {
        None => true,
        Some(service) => is_s3(service),
    };
    let query_error = |message: String| {
        let kind = if s3 {
            AuthErrorCode::AuthorizationQueryParametersError
        } else {
            AuthErrorCode::IncompleteSignature
        };
        AuthError::new(kind, message)
    };
    let (Some(algorithm), Some(credential), Some(signature), Some(amz_date), Some(signed)) = (
        get("X-Amz-Algorithm"),
        credential,
        get("X-Amz-Signature"),
        get("X-Amz-Date"),
        get("X-Amz-SignedHeaders"),
    ) else {
        return Err(query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, \
             X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
             X-Amz-Expires parameters."
                .to_string(),
        ));
    };
    if algorithm != ALGORITHM {
        return Err(query_error(format!(
            "X-Amz-Algorithm only supports \"{ALGORITHM}\", not \"{algorithm}\""
        )));
    }
    let expires = match get("X-Amz-Expires") {
        None if s3 => {
            return Err(query_error(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                 X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
                 X-Amz-Expires parameters."
                    .to_string(),
            ))
        }
        None => None,
        Some(e) => {
            let e = e.trim();
            if e.starts_with('-') {
                return Err(query_error(
                    "X-Amz-Expires must be non-negative".to_string(),
                ));
            }
            let n: u64 = e
                .parse()
                .map_err(|_| query_error("X-Amz-Expires should be a number".to_string()))?;
            if n > MAX_PRESIGNED_EXPIRES {
                return Err(query_error(format!(
                    "X-Amz-Expires must be less than a week (in seconds) that is; \
                     {MAX_PRESIGNED_EXPIRES}"
                )));
            }
            Some(n)
        }
    };
    if parse_amz_date(&amz_date).is_none() {
        return Err(query_error(format!(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\", got \
             \"{amz_date}\""
        )));
    }
    let scope = parse_credential(&credential)?;
    Ok(Credentials {
        access_key_id: scope.0,
        date: scope.1,
        region: scope.2,
        service: scope.3,
        signed_headers: split_signed_headers(&signed),
        signature,
        session_token: get("X-Amz-Security-Token"),
        presigned: true,
        amz_date,
        expires,
    })
}

fn split_signed_headers(s: &str) -> Vec<String> {
    s.split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// `AKID/date/region/service/aws4_request` -> (akid, date, region, service).
fn parse_credential(c: &str) -> Result<(String, String, String, String), AuthError> {
    let parts: Vec<&str> = c.rsplitn(5, '/').collect();
    let [terminator, service, region, date, akid] = parts.as_slice() else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{c}'"
        )));
    };
    if akid.is_empty() || region.is_empty() || service.is_empty() {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{c}'"
        )));
    }
    if *terminator != "aws4_request" {
        return Err(AuthError::new(
            AuthErrorCode::SignatureDoesNotMatch,
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not \
                 '{terminator}'."
            ),
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(format!(
            "Invalid credential date \"{date}\". This date is not the required format: \
             yyyyMMdd."
        )));
    }
    Ok((
        akid.to_string(),
        date.to_string(),
        region.to_string(),
        service.to_string(),
    ))
}

fn incomplete(message: impl Into<String>) -> AuthError {
    AuthError::new(AuthErrorCode::IncompleteSignature, message)
}

fn bad_date(value: &str) -> AuthError {
    incomplete(format!(
        "Date must be in ISO-8601 'basic format'. Got '{value}'. See \
         http://en.wikipedia.org/wiki/ISO_8601"
    ))
}

/// Check a request's signature with the secret key of `parsed.access_key_id`, at time `now`.
pub fn verify(
    parsed: &Credentials,
    req: &SignedRequest<'_>,
    secret_access_key: &str,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    let s3 = is_s3(&parsed.service);
    let request_time = parsed.request_time()?;
    if parsed.date != parsed.amz_date[..8] {
        return Err(AuthError::new(
            AuthErrorCode::SignatureDoesNotMatch,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{}'.",
                parsed.date,
                &parsed.amz_date[..8],
                parsed.amz_date
            ),
        ));
    }
    check_time(parsed, request_time, now, s3)?;

    let uris = canonical_uris(req.path, s3);
    let queries = canonical_queries(req.query, parsed.presigned);
    let payloads = payload_hashes(parsed, req, s3);
    let headers = canonical_headers(req, &parsed.signed_headers);
    let signed_headers = parsed.signed_headers.join(";");
    let scope = parsed.scope();
    let key = signing_key(
        secret_access_key,
        &parsed.date,
        &parsed.region,
        &parsed.service,
    );
    let given = parsed.signature.to_ascii_lowercase();

    let mut first: Option<(String, String)> = None;
    for uri in &uris {
        for query in &queries {
            for payload in &payloads {
                let creq = format!(
                    "{}\n{uri}\n{query}\n{headers}\n{signed_headers}\n{payload}",
                    req.method
                );
                let sts = string_to_sign(&parsed.amz_date, &scope, &creq);
                let sig = hex::encode(hmac(&key, sts.as_bytes()));
                if constant_time_eq(sig.as_bytes(), given.as_bytes()) {
                    return check_content_hash(req, s3);
                }
                if first.is_none() {
                    first = Some((creq, sts));
                }
            }
        }
    }
    let err = AuthError::signature_does_not_match(&parsed.service);
    Err(match first {
        Some((creq, sts)) => err.with_details(creq, sts),
        None => err,
    })
}

fn check_time(
    parsed: &Credentials,
    request_time: OffsetDateTime,
    now: OffsetDateTime,
    s3: bool,
) -> Result<(), AuthError> {
    let now_s = format_amz_date(now);
    if request_time > now + MAX_SKEW {
        if s3 {
            return Err(if parsed.presigned {
                AuthError::access_denied("Request is not valid yet")
            } else {
                too_skewed()
            });
        }
        return Err(AuthError::new(
            AuthErrorCode::SignatureDoesNotMatch,
            format!(
                "Signature not yet current: {} is still later than {} ({now_s} + 15 min.)",
                parsed.amz_date,
                format_amz_date(now + MAX_SKEW)
            ),
        ));
    }
    if parsed.presigned {
        if let Some(expires) = parsed.expires {
            let expires_at = request_time + Duration::seconds(expires as i64);
            if now > expires_at {
                if s3 {
                    return Err(AuthError::access_denied("Request has expired"));
                }
                return Err(AuthError::new(
                    AuthErrorCode::SignatureDoesNotMatch,
                    format!(
                        "Signature expired: {} is now earlier than {now_s} ({} + {expires} \
                         sec.)",
                        format_amz_date(expires_at),
                        parsed.amz_date
                    ),
                ));
            }
            return Ok(());
        }
    }
    if request_time < now - MAX_SKEW {
        if s3 {
            return Err(if parsed.presigned {
                AuthError::access_denied("Request has expired")
            } else {
                too_skewed()
            });
        }
        return Err(AuthError::new(
            AuthErrorCode::SignatureDoesNotMatch,
            format!(
                "Signature expired: {} is now earlier than {} ({now_s} - 15 min.)",
                parsed.amz_date,
                format_amz_date(now - MAX_SKEW)
            ),
        ));
    }
    Ok(())
}

fn too_skewed() -> AuthError {
    AuthError::new(
        AuthErrorCode::RequestTimeTooSkewed,
        "The difference between the request time and the current time is too large.",
    )
}

/// After the signature matched: a hex `x-amz-content-sha256` must be the body's hash.
fn check_content_hash(req: &SignedRequest<'_>, s3: bool) -> Result<(), AuthError> {
    let Some(claimed) = req.header("x-amz-content-sha256") else {
        return Ok(());
    };
    let claimed = claimed.trim();
    if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    if req.payload.sha256_hex().eq_ignore_ascii_case(claimed) {
        return Ok(());
    }
    let message = if s3 {
        "The provided 'x-amz-content-sha256' header does not match what was computed."
    } else {
        "The provided 'x-amz-content-sha256' header does not match the request payload."
    };
    Err(AuthError::new(
        AuthErrorCode::XAmzContentSHA256Mismatch,
        message,
    ))
}

fn payload_hashes(parsed: &Credentials, req: &SignedRequest<'_>, s3: bool) -> Vec<String> {
    if parsed.presigned {
        if let Some(h) = req.query_param("X-Amz-Content-Sha256") {
            return vec![h];
        }
        if s3 {
            return vec![UNSIGNED_PAYLOAD.to_string()];
        }
        let mut v = Vec::new();
        if let Some(h) = req.header("x-amz-content-sha256") {
            v.push(h.trim().to_string());
        }
        v.push(req.payload.sha256_hex());
        v.push(UNSIGNED_PAYLOAD.to_string());
        dedup(v)
    } else if let Some(h) = req.header("x-amz-content-sha256") {
        vec![h.trim().to_string()]
    } else {
        vec![req.payload.sha256_hex()]
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The canonical header block (each line ends in `\n`).
fn canonical_headers(req: &SignedRequest<'_>, signed: &[String]) -> String {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| collapse_spaces(v))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// Trim and collapse runs of whitespace to one space.
fn collapse_spaces(v: &str) -> String {
    v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// Candidate canonical URIs for a raw path.
fn canonical_uris(raw: &str, s3: bool) -> Vec<String> {
    let raw = if raw.is_empty() { "/" } else { raw };
    let mut v = Vec::new();
    if s3 {
        // Each segment decoded and encoded once; or the path as sent.
        v.push(encode_segments(raw, 1));
        v.push(raw.to_string());
    } else {
        let normalized = normalize_path(raw);
        // The path as sent, encoded once more (what SDKs do), normalised or not.
        v.push(uri_encode(normalized.as_bytes(), false));
        v.push(encode_segments(&normalized, 2));
        v.push(uri_encode(raw.as_bytes(), false));
        v.push(encode_segments(raw, 2));
    }
    dedup(v)
}

/// Decode each `/`-separated segment and encode it `times` times.
fn encode_segments(path: &str, times: usize) -> String {
    path.split('/')
        .map(|seg| {
            let mut bytes = percent_decode(seg, false);
            for _ in 0..times {
                bytes = uri_encode(&bytes, true).into_bytes();
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// RFC 3986 dot-segment removal plus collapsing of empty segments, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = path.ends_with('/')
        || path.ends_with("/.")
        || path.ends_with("/..")
        || path == "."
        || path == "..";
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Candidate canonical query strings.
fn canonical_queries(raw: &str, presigned: bool) -> Vec<String> {
    let mut v = vec![canonical_query(raw, presigned, false)];
    if raw.contains('+') {
        v.push(canonical_query(raw, presigned, true));
    }
    dedup(v)
}

fn canonical_query(raw: &str, presigned: bool, plus_is_space: bool) -> String {
    let mut pairs: Vec<(String, String)> = parse_query(raw, plus_is_space)
        .into_iter()
        .filter(|(k, _)| !(presigned && k.as_slice() == b"X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, true), uri_encode(&v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Split a raw query string into decoded (name, value) byte pairs.
fn parse_query(raw: &str, plus_is_space: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(k, plus_is_space),
                percent_decode(v, plus_is_space),
            )
        })
        .collect()
}

fn percent_decode(s: &str, plus_is_space: bool) -> Vec<u8> {
    if plus_is_space && s.contains('+') {
        let replaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&replaced).collect()
    } else {
        percent_encoding::percent_decode_str(s).collect()
    }
}

/// SigV4 URI encoding: everything but `A-Za-z0-9-_.~` (and `/` unless `encode_slash`) as `%XX`.
pub fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else if b == b'/' && !encode_slash {
            out.push('/');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `AWS4-HMAC-SHA256\n<time>\n<scope>\n<hex sha256 of canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The SigV4 signing key for a day, region and service.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231 IMF-fixdate).
fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(s, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Verifies the chunk signatures of an `aws-chunked` body
/// (`x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) after `verify` accepted the
/// request: each chunk's signature chains from the previous one, starting at the request's.
#[derive(Debug, Clone)]
pub struct ChunkVerifier {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    previous: String,
}

impl ChunkVerifier {
    /// Start from a verified request's credentials and the secret key.
    pub fn new(parsed: &Credentials, secret_access_key: &str) -> Self {
        ChunkVerifier {
            key: signing_key(
                secret_access_key,
                &parsed.date,
                &parsed.region,
                &parsed.service,
            ),
            amz_date: parsed.amz_date.clone(),
            scope: parsed.scope(),
            previous: parsed.signature.to_ascii_lowercase(),
        }
    }

    /// The signature the next chunk (possibly the final empty one) must carry.
    pub fn expected(&self, chunk: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            sha256_hex(chunk)
        );
        hex::encode(hmac(&self.key, sts.as_bytes()))
    }

    /// Check the next chunk's signature and advance the chain.
    pub fn verify_next(&mut self, chunk: &[u8], signature: &str) -> Result<(), AuthError> {
        let expected = self.expected(chunk);
        let given = signature.trim().to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(AuthError::signature_does_not_match("s3"));
        }
        self.previous = expected;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
