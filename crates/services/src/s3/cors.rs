//! CORS as S3 serves it, from the rules `PutBucketCors` stored: the answer to a preflight
//! `OPTIONS` request and the `Access-Control-*` headers of an actual request whose `Origin` a
//! rule allows. Neither is an API operation, so the server calls [`S3::cors_preflight`] and
//! [`S3::cors_headers`] itself (on path-style requests, after virtual-hosted addressing was
//! rewritten); errors are [`ApiError`]s the server serializes like any other S3 error.

use super::S3;
use fc_protocol::http::HttpRequest;
use fc_protocol::ApiError;
use serde_json::{json, Value};

/// The `Vary` value of every CORS answer.
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

const NOT_ENABLED: &str = "CORSResponse: CORS is not enabled for this bucket.";
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";

/// The bucket and whether an object is addressed, from a path-style request path.
fn target(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix('/')?;
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) => (b, !k.is_empty()),
        None => (rest, false),
    };
    if bucket.is_empty() {
        return None;
    }
    let bucket = percent_encoding::percent_decode_str(bucket)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((bucket, key))
}

fn strings(rule: &Value, member: &str) -> Vec<String> {
    rule.get(member)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn forbidden(message: &str, method: &str, object: bool) -> ApiError {
    ApiError::new(403, "AccessForbidden", message)
        .with_field("Method", json!(method))
        .with_field(
            "ResourceType",
            json!(if object { "OBJECT" } else { "BUCKET" }),
        )
}

/// The first rule allowing `origin`, `method` and every one of `headers`.
fn matching_rule<'a>(
    rules: &'a Value,
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'a Value> {
    rules.as_array()?.iter().find(|rule| {
        let origin_ok = strings(rule, "AllowedOrigins")
            .iter()
            .any(|o| fc_types::wildcard::wildcard_match(o, origin));
        let method_ok = strings(rule, "AllowedMethods")
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method));
        let allowed = strings(rule, "AllowedHeaders");
        let headers_ok = headers.iter().all(|h| {
            allowed.iter().any(|a| {
                fc_types::wildcard::wildcard_match(&a.to_ascii_lowercase(), &h.to_ascii_lowercase())
            })
        });
        origin_ok && method_ok && headers_ok
    })
}

/// The headers a matching rule grants (without `Access-Control-Allow-Headers`).
fn granted(rule: &Value, origin: &str) -> Vec<(String, String)> {
    let any_origin = strings(rule, "AllowedOrigins").iter().any(|o| o == "*");
    let mut out = vec![(
        "Access-Control-Allow-Origin".to_string(),
        if any_origin { "*" } else { origin }.to_string(),
    )];
    out.push((
        "Access-Control-Allow-Methods".to_string(),
        strings(rule, "AllowedMethods").join(", "),
    ));
    let expose = strings(rule, "ExposeHeaders");
    if !expose.is_empty() {
        out.push((
            "Access-Control-Expose-Headers".to_string(),
            expose.join(", "),
        ));
    }
    if let Some(age) = rule.get("MaxAgeSeconds").and_then(Value::as_i64) {
        out.push(("Access-Control-Max-Age".to_string(), age.to_string()));
    }
    if !any_origin {
        out.push((
            "Access-Control-Allow-Credentials".to_string(),
            "true".to_string(),
        ));
    }
    out.push(("Vary".to_string(), VARY.to_string()));
    out
}

impl S3 {
    /// The CORS rules of a bucket (`None`: no CORS configuration).
    fn cors_rules(&self, bucket: &str) -> Result<Option<Value>, ApiError> {
        let (_, rec) = self.bucket(bucket)?;
        Ok(rec.cors)
    }

    /// Answer a preflight `OPTIONS` request: the headers of a 200 answer, or the error (400
    /// without `Origin` or `Access-Control-Request-Method`, 404 for an unknown bucket, 403
    /// `AccessForbidden` when CORS is off or no rule allows the request).
    pub fn cors_preflight(&self, req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
        let (bucket, object) = target(&req.path).ok_or_else(|| {
            ApiError::client(
                "BadRequest",
                "Insufficient information. Origin request header needed.",
            )
        })?;
        let origin = req
            .header("origin")
            .filter(|o| !o.is_empty())
            .ok_or_else(|| {
                ApiError::client(
                    "BadRequest",
                    "Insufficient information. Origin request header needed.",
                )
            })?;
        let method = req
            .header("access-control-request-method")
            .unwrap_or("null");
        if !matches!(method, "GET" | "PUT" | "POST" | "DELETE" | "HEAD") {
            return Err(ApiError::client(
                "BadRequest",
                format!("Invalid Access-Control-Request-Method: {method}"),
            ));
        }
        let headers: Vec<String> = req
            .header("access-control-request-headers")
            .map(|h| {
                h.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let Some(rules) = self.cors_rules(&bucket)? else {
            return Err(forbidden(NOT_ENABLED, method, object));
        };
        let rule = matching_rule(&rules, origin, method, &headers)
            .ok_or_else(|| forbidden(NOT_ALLOWED, method, object))?;
        let mut out = granted(rule, origin);
        if !headers.is_empty() {
            out.push((
                "Access-Control-Allow-Headers".to_string(),
                headers.join(", "),
            ));
        }
        Ok(out)
    }

    /// The CORS headers of an actual request with an `Origin` header: empty when the request
    /// has none, the bucket does not exist, has no CORS configuration or no rule allows it.
    pub fn cors_headers(&self, req: &HttpRequest) -> Vec<(String, String)> {
        let Some(origin) = req.header("origin").filter(|o| !o.is_empty()) else {
            return Vec::new();
        };
        let Some((bucket, _)) = target(&req.path) else {
            return Vec::new();
        };
        let Ok(Some(rules)) = self.cors_rules(&bucket) else {
            return Vec::new();
        };
        match matching_rule(&rules, origin, &req.method, &[]) {
            Some(rule) => granted(rule, origin),
            None => Vec::new(),
        }
    }
}
