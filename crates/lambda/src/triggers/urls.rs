//! Function URLs: the `…FunctionUrlConfig` operations and the data plane the binary routes
//! `<url-id>.lambda-url.<region>.*` hosts to. A request becomes a payload format 2.0 event,
//! the function runs synchronously, and its answer becomes the HTTP response as AWS maps it.
//! `NONE` URLs need the resource policy to allow the public (`lambda:InvokeFunctionUrl` and, for
//! URLs created since October 2025, `lambda:InvokeFunction` via the URL); `AWS_IAM` URLs need a
//! SigV4-signed request.

use super::{
    conflict, key_of, policy, resource_not_found, store_error, str_of, tables, target, validation,
};
use crate::spec::InvokeRequest;
use crate::Inner;
use base64::Engine;
use bytes::Bytes;
use fc_auth::policy::AuthzRequest;
use fc_protocol::ApiError;
use fc_services::{BodyIn, BodyOut, HttpRequest, RawHandler, RawReply, RequestContext};
use fc_store::{Scope, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Where the config of a URL id lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UrlTarget {
    pub account: String,
    pub region: String,
    /// `<name>#<qualifier>` in [`tables::URLS`].
    pub key: String,
}

/// One function URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct UrlConfig {
    #[serde(default)]
    pub v: u32,
    pub url_id: String,
    pub account: String,
    pub region: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    /// Qualified when the URL is an alias's.
    pub function_arn: String,
    pub auth_type: String,
    pub cors: Option<Value>,
    pub invoke_mode: String,
    pub creation_time: String,
    pub last_modified: String,
}

/// Payload limit of synchronous invocations.
const MAX_PAYLOAD: u64 = 6 * 1024 * 1024;

impl UrlConfig {
    fn output(&self, endpoint: &str, with_modified: bool) -> Value {
        let mut o = json!({
            "FunctionUrl": function_url(&self.url_id, &self.region, endpoint),
            "FunctionArn": self.function_arn,
            "AuthType": self.auth_type,
            "CreationTime": self.creation_time,
            "InvokeMode": self.invoke_mode,
        });
        if with_modified {
            o["LastModifiedTime"] = json!(self.last_modified);
        }
        if let Some(c) = &self.cors {
            o["Cors"] = c.clone();
        }
        o
    }
}

/// `http://<url-id>.lambda-url.<region>.localhost:<port>/`, the port being the one the client
/// used to reach ferrocloud.
pub(crate) fn function_url(url_id: &str, region: &str, endpoint: &str) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("http", endpoint));
    let authority = rest.split('/').next().unwrap_or(rest);
    let port = authority
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty())
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| {
            if scheme == "https" {
                "443".into()
            } else {
                "80".into()
            }
        });
    format!("{scheme}://{url_id}.lambda-url.{region}.localhost:{port}/")
}

/// AWS's timestamp of URL configs: `2023-10-13T23:31:38.125698Z`.
fn url_timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

fn check_auth_type(v: &str) -> Result<(), ApiError> {
    if v == "NONE" || v == "AWS_IAM" {
        return Ok(());
    }
    Err(validation(
        v,
        "authType",
        "Member must satisfy enum value set: [AWS_IAM, NONE]",
    ))
}

fn check_invoke_mode(v: &str) -> Result<(), ApiError> {
    if v == "BUFFERED" || v == "RESPONSE_STREAM" {
        return Ok(());
    }
    Err(validation(
        v,
        "invokeMode",
        "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]",
    ))
}

fn check_cors(input: &Value) -> Result<Option<Value>, ApiError> {
    let Some(c) = input.get("Cors") else {
        return Ok(None);
    };
    super::int_in(c, "MaxAge", 0, 86_400)?;
    Ok(Some(c.clone()))
}

fn check_qualifier(q: Option<&str>) -> Result<(), ApiError> {
    if let Some(q) = q {
        let numeric = q.bytes().all(|b| b.is_ascii_digit());
        let ok = !numeric
            && q.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(validation(
                q,
                "qualifier",
                "Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)",
            ));
        }
    }
    Ok(())
}

fn load(inner: &Inner, scope: &Scope, key: &str) -> Result<Option<UrlConfig>, ApiError> {
    inner
        .deps
        .store
        .get_json(scope, tables::URLS, key)
        .map_err(store_error)
}

pub(crate) async fn create(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let auth = str_of(input, "AuthType").unwrap_or_default().to_string();
    check_auth_type(&auth)?;
    let mode = str_of(input, "InvokeMode")
        .unwrap_or("BUFFERED")
        .to_string();
    check_invoke_mode(&mode)?;
    let cors = check_cors(input)?;
    let (_, derived) =
        super::split_function_name(str_of(input, "FunctionName").unwrap_or_default());
    check_qualifier(str_of(input, "Qualifier").or(derived.as_deref()))?;
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    let key = t.key();
    if load(inner, &t.scope, &key)?.is_some() {
        return Err(conflict(format!(
            "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
            t.arn()
        )));
    }
    let now = url_timestamp();
    let cfg = UrlConfig {
        v: 1,
        url_id: fc_types::ids::random_from(b"abcdefghijklmnopqrstuvwxyz0123456789", 32),
        account: t.scope.account.clone(),
        region: t.scope.region.clone(),
        function_name: t.name.clone(),
        qualifier: t.qualifier.clone(),
        function_arn: t.arn(),
        auth_type: auth,
        cors,
        invoke_mode: mode,
        creation_time: now.clone(),
        last_modified: now,
    };
    let target = UrlTarget {
        account: cfg.account.clone(),
        region: cfg.region.clone(),
        key: key.clone(),
    };
    let writes = vec![
        fc_store::Write::Put {
            scope: t.scope.clone(),
            table: tables::URLS.into(),
            key: key.clone(),
            value: fc_store::to_json_bytes(&cfg).map_err(store_error)?,
        },
        fc_store::Write::Put {
            scope: t.scope.clone(),
            table: tables::URL_IDS.into(),
            key: cfg.url_id.clone(),
            value: fc_store::to_json_bytes(&target).map_err(store_error)?,
        },
    ];
    inner.deps.store.batch(writes).map_err(store_error)?;
    if let Ok(mut ids) = inner.triggers.url_ids.lock() {
        ids.insert(cfg.url_id.clone(), target);
    }
    Ok(cfg.output(&ctx.endpoint, false))
}

pub(crate) async fn get(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    load(inner, &t.scope, &t.key())?
        .map(|c| c.output(&ctx.endpoint, true))
        .ok_or_else(resource_not_found)
}

pub(crate) async fn update(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    if let Some(a) = str_of(input, "AuthType") {
        check_auth_type(a)?;
    }
    if let Some(m) = str_of(input, "InvokeMode") {
        check_invoke_mode(m)?;
    }
    let cors = check_cors(input)?;
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    let key = t.key();
    let mut cfg = load(inner, &t.scope, &key)?.ok_or_else(resource_not_found)?;
    if let Some(a) = str_of(input, "AuthType") {
        cfg.auth_type = a.to_string();
    }
    if let Some(m) = str_of(input, "InvokeMode") {
        cfg.invoke_mode = m.to_string();
    }
    if cors.is_some() {
        cfg.cors = cors;
    }
    cfg.last_modified = url_timestamp();
    inner
        .deps
        .store
        .put_json(&t.scope, tables::URLS, &key, &cfg)
        .map_err(store_error)?;
    Ok(cfg.output(&ctx.endpoint, true))
}

pub(crate) async fn delete(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    let cfg = load(inner, &t.scope, &t.key())?.ok_or_else(resource_not_found)?;
    remove(inner, &t.scope, &cfg)?;
    Ok(json!({}))
}

fn remove(inner: &Inner, scope: &Scope, cfg: &UrlConfig) -> Result<(), ApiError> {
    let writes = vec![
        fc_store::Write::Delete {
            scope: scope.clone(),
            table: tables::URLS.into(),
            key: key_of(&cfg.function_name, cfg.qualifier.as_deref()),
        },
        fc_store::Write::Delete {
            scope: scope.clone(),
            table: tables::URL_IDS.into(),
            key: cfg.url_id.clone(),
        },
    ];
    inner.deps.store.batch(writes).map_err(store_error)?;
    if let Ok(mut ids) = inner.triggers.url_ids.lock() {
        ids.remove(&cfg.url_id);
    }
    Ok(())
}

pub(crate) async fn list(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (items, next) =
        super::list_function_records::<UrlConfig>(inner, ctx, input, tables::URLS).await?;
    let mut out = json!({
        "FunctionUrlConfigs": items.iter().map(|c| c.output(&ctx.endpoint, true)).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        out["NextMarker"] = json!(next);
    }
    Ok(out)
}

/// Drops the URL configs of a deleted function (or one alias of it).
pub(crate) fn forget(inner: &Arc<Inner>, scope: &Scope, name: &str, qualifier: Option<&str>) {
    let prefix = match qualifier {
        Some(q) => key_of(name, Some(q)),
        None => format!("{name}#"),
    };
    let found = inner
        .deps
        .store
        .scan_json::<UrlConfig>(scope, tables::URLS, &prefix, None, 1000);
    match found {
        Ok((items, _)) => {
            for (k, cfg) in items {
                if qualifier.is_some() && k != prefix {
                    continue;
                }
                if let Err(e) = remove(inner, scope, &cfg) {
                    tracing::warn!(error = %e, "function URL not removed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "function URLs not read"),
    }
}

// ---- the data plane ----

struct Urls {
    inner: Arc<Inner>,
}

pub(crate) fn handler(inner: &Arc<Inner>) -> Arc<dyn RawHandler> {
    Arc::new(Urls {
        inner: inner.clone(),
    })
}

fn reply(status: u16, headers: Vec<(String, String)>, body: impl Into<Bytes>) -> RawReply {
    RawReply {
        status,
        headers,
        body: BodyOut::Bytes(body.into()),
    }
}

fn message(status: u16, text: &str) -> RawReply {
    reply(
        status,
        vec![("content-type".into(), "application/json".into())],
        json!({"Message": text}).to_string(),
    )
}

fn forbidden() -> RawReply {
    message(403, "Forbidden")
}

/// `(url-id, region)` of a function URL host.
fn parse_host(host: &str) -> Option<(String, String)> {
    let host = host.split(':').next().unwrap_or(host);
    let mut labels = host.split('.');
    let id = labels.next()?.to_ascii_lowercase();
    if labels.next()? != "lambda-url" {
        return None;
    }
    let region = labels.next()?.to_string();
    Some((id, region))
}

impl Urls {
    fn find(&self, id: &str, region: &str) -> Option<UrlConfig> {
        let cached = self
            .inner
            .triggers
            .url_ids
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned());
        let target = match cached {
            Some(t) => t,
            None => {
                let store = &self.inner.deps.store;
                let scopes = store.scopes(tables::URL_IDS).ok()?;
                let t = scopes
                    .into_iter()
                    .filter(|s| s.region == region)
                    .find_map(|s| {
                        store
                            .get_json::<UrlTarget>(&s, tables::URL_IDS, id)
                            .ok()
                            .flatten()
                    })?;
                if let Ok(mut m) = self.inner.triggers.url_ids.lock() {
                    m.insert(id.to_string(), t.clone());
                }
                t
            }
        };
        if target.region != region {
            return None;
        }
        let scope = Scope::new(&target.account, &target.region);
        load(&self.inner, &scope, &target.key)
            .ok()
            .flatten()
            .filter(|c| c.url_id == id)
    }

    /// Whether the function's policy lets the public call a `NONE` URL.
    fn public_allowed(&self, cfg: &UrlConfig) -> bool {
        let scope = Scope::new(&cfg.account, &cfg.region);
        let store = self.inner.deps.store.as_ref();
        let url = AuthzRequest::new("", "", "lambda:InvokeFunctionUrl", &cfg.function_arn)
            .with_context("lambda:FunctionUrlAuthType", ["NONE"])
            .with_context("lambda:InvokedViaFunctionUrl", ["true"]);
        let invoke = AuthzRequest::new("", "", "lambda:InvokeFunction", &cfg.function_arn)
            .with_context("lambda:FunctionUrlAuthType", ["NONE"])
            .with_context("lambda:InvokedViaFunctionUrl", ["true"]);
        let q = cfg.qualifier.as_deref();
        policy::allows(store, &scope, &cfg.function_name, q, &url)
            && policy::allows(store, &scope, &cfg.function_name, q, &invoke)
    }
}

/// The access key of a SigV4-signed request (header or presigned query), if it is signed.
pub(crate) fn signing_key(req: &HttpRequest) -> Option<String> {
    if let Some(auth) = req.header("authorization") {
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
        let cred = rest
            .split(',')
            .find_map(|p| p.trim().strip_prefix("Credential="))?;
        return Some(cred.split('/').next().unwrap_or_default().to_string());
    }
    let pairs = req.query_pairs();
    if pairs.iter().any(|(k, _)| k == "X-Amz-Signature") {
        let cred = pairs
            .iter()
            .find(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v.clone())?;
        return Some(cred.split('/').next().unwrap_or_default().to_string());
    }
    None
}

/// Who signed an `AWS_IAM` request, for `requestContext.authorizer.iam`.
pub(crate) struct Caller {
    pub access_key: String,
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("x-www-form-urlencoded")
        || ct.contains("yaml")
        || ct.contains("graphql")
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `12/Mar/2020:19:03:58 +0000`.
fn clf_time(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return String::new();
    };
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[usize::from(u8::from(t.month()) - 1)],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The payload format 2.0 event of one request.
pub(crate) fn url_event(
    req: &HttpRequest,
    body: &[u8],
    url_id: &str,
    account: &str,
    request_id: &str,
    now_ms: i64,
    caller: Option<&Caller>,
) -> Value {
    let mut headers = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for (k, v) in &req.headers {
        let k = k.to_ascii_lowercase();
        if k == "cookie" {
            cookies.extend(
                v.split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_string())),
            );
            continue;
        }
        match headers.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(v);
            }
            _ => {
                headers.insert(k, Value::String(v.clone()));
            }
        }
    }
    let host = req.header("host").unwrap_or_default();
    let domain = host.split(':').next().unwrap_or(host).to_string();
    let source_ip = req
        .header("x-forwarded-for")
        .and_then(|x| x.split(',').next())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    if !headers.contains_key("x-forwarded-for") {
        headers.insert("x-forwarded-for".into(), json!(source_ip));
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto".into(), json!("http"));
    }
    if !headers.contains_key("x-amzn-trace-id") {
        headers.insert(
            "x-amzn-trace-id".into(),
            json!(format!(
                "Root=1-{:08x}-{}",
                now_ms / 1000,
                fc_types::ids::random_hex(24)
            )),
        );
    }
    let mut query = Map::new();
    for (k, v) in req.query_pairs() {
        match query.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let mut request_context = json!({
        "accountId": if caller.is_some() { account } else { "anonymous" },
        "apiId": url_id,
        "domainName": domain,
        "domainPrefix": url_id,
        "http": {
            "method": req.method,
            "path": req.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": req.header("user-agent").unwrap_or_default(),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": clf_time(now_ms),
        "timeEpoch": now_ms,
    });
    if let Some(c) = caller {
        request_context["authorizer"] = json!({"iam": {
            "accessKey": c.access_key,
            "accountId": c.account,
            "callerId": c.user_id,
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": c.arn,
            "userId": c.user_id,
        }});
    }
    let mut ev = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.path,
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": request_context,
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        ev["cookies"] = Value::Array(cookies);
    }
    if !query.is_empty() {
        ev["queryStringParameters"] = Value::Object(query);
    }
    if !body.is_empty() {
        if is_text(req.header("content-type").unwrap_or_default())
            && std::str::from_utf8(body).is_ok()
        {
            ev["body"] = json!(String::from_utf8_lossy(body));
        } else {
            ev["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
            ev["isBase64Encoded"] = json!(true);
        }
    }
    ev
}

/// The HTTP response for what the function returned.
pub(crate) fn map_response(payload: &[u8]) -> (u16, Vec<(String, String)>, Bytes) {
    let json_ct = || ("content-type".to_string(), "application/json".to_string());
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return (200, vec![json_ct()], Bytes::copy_from_slice(payload));
    };
    let obj = match v {
        Value::Object(o) if o.contains_key("statusCode") => o,
        Value::String(s) => return (200, vec![json_ct()], Bytes::from(s)),
        _ => return (200, vec![json_ct()], Bytes::copy_from_slice(payload)),
    };
    let status = match obj.get("statusCode") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| (100..=599).contains(s))
    .unwrap_or(500);
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(h)) = obj.get("headers") {
        for (k, v) in h {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            headers.push((k.clone(), v));
        }
    }
    if let Some(Value::Array(cs)) = obj.get("cookies") {
        for c in cs.iter().filter_map(Value::as_str) {
            headers.push(("set-cookie".into(), c.to_string()));
        }
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(json_ct());
    }
    let b64 = obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if b64 => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from(s.clone())),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    (status, headers, body)
}

fn list_of(cors: &Value, member: &str) -> Vec<String> {
    cors.get(member)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// CORS headers for a request from `origin` (none when the origin is not allowed).
fn cors_headers(cors: &Value, origin: &str, preflight: bool) -> Vec<(String, String)> {
    let origins = list_of(cors, "AllowOrigins");
    let allowed = origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin));
    if !allowed || origin.is_empty() {
        return Vec::new();
    }
    let any = origins.iter().any(|o| o == "*");
    let mut h = vec![(
        "access-control-allow-origin".to_string(),
        if any {
            "*".to_string()
        } else {
            origin.to_string()
        },
    )];
    if cors.get("AllowCredentials").and_then(Value::as_bool) == Some(true) {
        h.push(("access-control-allow-credentials".into(), "true".into()));
    }
    let expose = list_of(cors, "ExposeHeaders");
    if !expose.is_empty() {
        h.push(("access-control-expose-headers".into(), expose.join(",")));
    }
    if preflight {
        let methods = list_of(cors, "AllowMethods");
        if !methods.is_empty() {
            h.push(("access-control-allow-methods".into(), methods.join(",")));
        }
        let headers = list_of(cors, "AllowHeaders");
        if !headers.is_empty() {
            h.push(("access-control-allow-headers".into(), headers.join(",")));
        }
        if let Some(age) = cors.get("MaxAge").and_then(Value::as_i64) {
            h.push(("access-control-max-age".into(), age.to_string()));
        }
    }
    h
}

impl Urls {
    /// In strict mode, whether the request's SigV4 signature verifies against the signer's
    /// secret (root credentials or an IAM/STS key); lenient mode accepts any signature.
    fn signature_valid(&self, req: &HttpRequest, body: &[u8]) -> bool {
        let Some((root_key, root_secret)) = &self.inner.deps.settings.strict_auth else {
            return true;
        };
        let signed = fc_auth::sigv4::SignedRequest {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            headers: &req.headers,
            payload: fc_auth::sigv4::Payload::Bytes(body),
        };
        let Ok(Some(creds)) = fc_auth::sigv4::parse(&signed) else {
            return false;
        };
        let secret = if &creds.access_key_id == root_key {
            root_secret.clone()
        } else {
            match fc_services::identity::lookup(
                self.inner.deps.store.as_ref(),
                &creds.access_key_id,
            ) {
                Ok(Some(c)) if c.status == "Active" => {
                    let now = fc_protocol::value::now_secs();
                    if c.expires.is_some_and(|e| e < now) {
                        return false;
                    }
                    c.secret_access_key
                }
                _ => return false,
            }
        };
        fc_auth::sigv4::verify(&creds, &signed, &secret, time::OffsetDateTime::now_utc()).is_ok()
    }
}

#[async_trait::async_trait]
impl RawHandler for Urls {
    async fn handle(&self, req: HttpRequest, body: BodyIn) -> RawReply {
        let Some((id, region)) = req.header("host").and_then(parse_host) else {
            return forbidden();
        };
        let Some(cfg) = self.find(&id, &region) else {
            return forbidden();
        };
        let origin = req.header("origin").unwrap_or_default().to_string();
        if let (Some(cors), "OPTIONS") = (&cfg.cors, req.method.as_str()) {
            if req.header("access-control-request-method").is_some() {
                return reply(200, cors_headers(cors, &origin, true), Bytes::new());
            }
        }
        let caller = if cfg.auth_type == "AWS_IAM" {
            // Lenient: any SigV4 signature is accepted; the signer is looked up for the event.
            let Some(key) = signing_key(&req) else {
                return forbidden();
            };
            let cred = fc_services::identity::lookup(self.inner.deps.store.as_ref(), &key)
                .ok()
                .flatten();
            Some(match cred {
                Some(c) => Caller {
                    access_key: key,
                    account: c.account,
                    arn: c.arn,
                    user_id: c.user_id,
                },
                None => Caller {
                    access_key: key,
                    account: cfg.account.clone(),
                    arn: format!("arn:aws:iam::{}:root", cfg.account),
                    user_id: cfg.account.clone(),
                },
            })
        } else {
            if !self.public_allowed(&cfg) {
                return forbidden();
            }
            None
        };
        let body =
            match body.collect(MAX_PAYLOAD).await {
                Ok(b) => b,
                Err(_) => return message(
                    413,
                    "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
                ),
            };
        if cfg.auth_type == "AWS_IAM" && !self.signature_valid(&req, &body) {
            return forbidden();
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let now = super::now_ms();
        let event = url_event(
            &req,
            &body,
            &cfg.url_id,
            &cfg.account,
            &request_id,
            now,
            caller.as_ref(),
        );
        let spec = match self
            .inner
            .resolve(
                &cfg.account,
                &cfg.region,
                &cfg.function_name,
                cfg.qualifier.as_deref(),
            )
            .await
        {
            Ok(s) => s,
            Err(_) => return forbidden(),
        };
        let invoke = InvokeRequest {
            request_id: request_id.clone(),
            payload: Bytes::from(event.to_string()),
            invoked_arn: cfg.function_arn.clone(),
            ..InvokeRequest::default()
        };
        let mut out = match self.inner.invoke(spec, invoke).await {
            Ok(r) if r.function_error.is_none() => {
                let (status, headers, body) = map_response(&r.payload);
                reply(status, headers, body)
            }
            Ok(_) => message(502, "Internal Server Error"),
            Err(e) if e.status == 429 => message(429, "Rate Exceeded."),
            Err(e) => {
                tracing::warn!(url = %cfg.url_id, error = %e, "function URL invocation failed");
                message(502, "Internal Server Error")
            }
        };
        out.headers.push(("x-amzn-RequestId".into(), request_id));
        if let Some(cors) = &cfg.cors {
            out.headers.extend(cors_headers(cors, &origin, false));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Bytes::new(),
        }
    }

    #[test]
    fn urls_use_the_client_port() {
        let id = "a".repeat(32);
        assert_eq!(
            function_url(&id, "us-east-1", "http://localhost:4566"),
            format!("http://{id}.lambda-url.us-east-1.localhost:4566/")
        );
        assert_eq!(
            function_url(&id, "eu-west-1", "http://127.0.0.1:9000/"),
            format!("http://{id}.lambda-url.eu-west-1.localhost:9000/")
        );
        assert!(function_url(&id, "us-east-1", "http://example").ends_with(":80/"));
    }

    #[test]
    fn hosts_parse() {
        assert_eq!(
            parse_host("abc.lambda-url.us-east-1.localhost:4566"),
            Some(("abc".into(), "us-east-1".into()))
        );
        assert_eq!(parse_host("localhost:4566"), None);
    }

    #[test]
    fn event_format_2() {
        let req = request(
            "POST",
            "/my/path",
            "a=1&b=x%20y&a=2",
            &[
                ("Host", "abc.lambda-url.us-east-1.localhost:4566"),
                ("User-Agent", "curl/8"),
                ("Content-Type", "application/json"),
                ("X-Multi", "1"),
                ("x-multi", "2"),
                ("Cookie", "c1=v1; c2=v2"),
            ],
        );
        let ev = url_event(
            &req,
            br#"{"k":1}"#,
            "abc",
            "123456789012",
            "rid",
            1_700_000_000_123,
            None,
        );
        assert_eq!(ev["version"], "2.0");
        assert_eq!(ev["routeKey"], "$default");
        assert_eq!(ev["rawPath"], "/my/path");
        assert_eq!(ev["rawQueryString"], "a=1&b=x%20y&a=2");
        assert_eq!(ev["cookies"], json!(["c1=v1", "c2=v2"]));
        assert_eq!(ev["headers"]["x-multi"], "1,2");
        assert_eq!(ev["headers"]["user-agent"], "curl/8");
        assert!(ev["headers"].get("cookie").is_none());
        assert_eq!(ev["queryStringParameters"]["a"], "1,2");
        assert_eq!(ev["queryStringParameters"]["b"], "x y");
        let rc = &ev["requestContext"];
        assert_eq!(rc["accountId"], "anonymous");
        assert_eq!(rc["apiId"], "abc");
        assert_eq!(rc["domainName"], "abc.lambda-url.us-east-1.localhost");
        assert_eq!(rc["domainPrefix"], "abc");
        assert_eq!(rc["http"]["method"], "POST");
        assert_eq!(rc["http"]["path"], "/my/path");
        assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(rc["http"]["userAgent"], "curl/8");
        assert_eq!(rc["requestId"], "rid");
        assert_eq!(rc["stage"], "$default");
        assert_eq!(rc["time"], "14/Nov/2023:22:13:20 +0000");
        assert_eq!(rc["timeEpoch"], 1_700_000_000_123i64);
        assert_eq!(ev["body"], r#"{"k":1}"#);
        assert_eq!(ev["isBase64Encoded"], false);
    }

    #[test]
    fn binary_bodies_are_base64_and_iam_callers_named() {
        let req = request(
            "PUT",
            "/",
            "",
            &[("Host", "abc.lambda-url.us-east-1.localhost")],
        );
        let caller = Caller {
            access_key: "AKIAX".into(),
            account: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:user/u".into(),
            user_id: "AIDAU".into(),
        };
        let ev = url_event(
            &req,
            &[0, 159, 146, 150],
            "abc",
            "123456789012",
            "r",
            0,
            Some(&caller),
        );
        assert_eq!(ev["isBase64Encoded"], true);
        assert_eq!(ev["body"], "AJ+Slg==");
        assert!(ev.get("queryStringParameters").is_none());
        assert!(ev.get("cookies").is_none());
        assert_eq!(ev["requestContext"]["accountId"], "123456789012");
        assert_eq!(
            ev["requestContext"]["authorizer"]["iam"]["userArn"],
            "arn:aws:iam::123456789012:user/u"
        );
    }

    #[test]
    fn responses_map_like_aws() {
        let (s, h, b) = map_response(
            br#"{"statusCode": 201, "headers": {"x-a": "1"}, "body": "made", "cookies": ["a=b"]}"#,
        );
        assert_eq!(s, 201);
        assert_eq!(&b[..], b"made");
        assert!(h.contains(&("x-a".into(), "1".into())));
        assert!(h.contains(&("set-cookie".into(), "a=b".into())));
        assert!(h.contains(&("content-type".into(), "application/json".into())));
        let (s, _, b) =
            map_response(br#"{"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}"#);
        assert_eq!((s, &b[..]), (200, &b"hi"[..]));
        let (s, h, b) = map_response(br#"{"message": "hello"}"#);
        assert_eq!(s, 200);
        assert_eq!(&b[..], br#"{"message": "hello"}"#);
        assert_eq!(
            h,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        let (s, _, b) = map_response(br#""plain""#);
        assert_eq!((s, &b[..]), (200, &b"plain"[..]));
        let (s, h, _) =
            map_response(br#"{"statusCode": 204, "headers": {"Content-Type": "text/plain"}}"#);
        assert_eq!(s, 204);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn signatures_are_recognised() {
        let signed = request(
            "GET",
            "/",
            "",
            &[("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=abc")],
        );
        assert_eq!(signing_key(&signed).as_deref(), Some("AKIAEXAMPLE"));
        let presigned = request(
            "GET",
            "/",
            "X-Amz-Credential=AKIAQ%2F20250101%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Signature=ff",
            &[],
        );
        assert_eq!(signing_key(&presigned).as_deref(), Some("AKIAQ"));
        assert_eq!(signing_key(&request("GET", "/", "", &[])), None);
    }

    #[test]
    fn cors_preflight() {
        let cors = json!({"AllowOrigins": ["https://a.example"], "AllowMethods": ["GET", "POST"], "MaxAge": 60});
        let h = cors_headers(&cors, "https://a.example", true);
        assert!(h.contains(&(
            "access-control-allow-origin".into(),
            "https://a.example".into()
        )));
        assert!(h.contains(&("access-control-allow-methods".into(), "GET,POST".into())));
        assert!(h.contains(&("access-control-max-age".into(), "60".into())));
        assert!(cors_headers(&cors, "https://b.example", true).is_empty());
    }
}
