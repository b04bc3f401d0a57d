//! The Lambda control plane: functions and their code, versions, aliases, layers,
//! concurrency settings, tags, account settings, and the `Invoke` operation.
//!
//! Everything is persisted in the store (scope = account + region) before an operation answers;
//! code lives in the content-addressed code store under `<data>/code`, `<data>/layers` and
//! `<data>/zips`. `State` only holds caches (resolved specs) and the write lock.
//! Must not live here: running functions (`exec`), permissions, event sources, URLs and async
//! queues (`triggers`).

mod code;
mod concurrency;
mod functions;
mod invoke;
mod layers;
mod model;
mod validate;
mod versions;
pub mod zip;

use crate::spec::FunctionSpec;
use crate::{Deps, Inner};
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What a resolved qualifier points at, cached for `Invoke`.
#[derive(Clone)]
enum Cached {
    Spec(Arc<FunctionSpec>),
    /// An alias: its version and the weighted extra version.
    Alias {
        version: String,
        extra: Option<(String, f64)>,
    },
}

/// (account, region, function name)
type FnKey = (String, String, String);

/// The control plane's own state.
pub struct State {
    /// Serialises every change (reads never wait).
    write: tokio::sync::Mutex<()>,
    /// Per function: qualifier -> what it resolves to. Dropped on any change of the function.
    cache: RwLock<HashMap<FnKey, HashMap<String, Cached>>>,
    signer: code::Signer,
    /// Bumped by every invalidation (see [`State::remember`]).
    generation: std::sync::atomic::AtomicU64,
    /// Set once the first request of this process started [`functions::recover`].
    recovered: std::sync::atomic::AtomicBool,
}

impl State {
    pub fn new(deps: &Deps) -> Result<State, ApiError> {
        let scope = Scope::global("ferrocloud");
        let key = match deps
            .store
            .get_json::<String>(&scope, model::META, "download-key")
            .map_err(store_err)?
        {
            Some(k) => hex::decode(k).map_err(|e| ApiError::internal(e.to_string()))?,
            None => {
                let k = fc_types::ids::random_hex(64);
                deps.store
                    .put_json(&scope, model::META, "download-key", &k)
                    .map_err(store_err)?;
                hex::decode(k).map_err(|e| ApiError::internal(e.to_string()))?
            }
        };
        match referenced_code(deps) {
            Ok(refs) => {
                let n = code::collect_garbage(&deps.data_dir, &refs);
                if n > 0 {
                    tracing::info!(removed = n, "lambda: unreferenced code removed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "lambda: code store cleanup skipped"),
        }
        Ok(State {
            write: tokio::sync::Mutex::new(()),
            cache: RwLock::new(HashMap::new()),
            signer: code::Signer::new(key),
            recovered: std::sync::atomic::AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Forgets every cached resolution of a function.
    fn invalidate(&self, account: &str, region: &str, name: &str) {
        if let Ok(mut c) = self.cache.write() {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            c.remove(&(account.to_string(), region.to_string(), name.to_string()));
        }
    }

    /// Taken before reading records for the cache: an entry read before a change is not kept.
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// On the first request after a start: finish what a stopped server left half-done.
    fn recover_once(&self, inner: &Arc<Inner>) {
        if !self
            .recovered
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            let inner = inner.clone();
            tokio::spawn(async move { functions::recover(&inner).await });
        }
    }

    fn cached(&self, key: &FnKey, qualifier: &str) -> Option<Cached> {
        self.cache.read().ok()?.get(key)?.get(qualifier).cloned()
    }

    fn remember(&self, generation: u64, key: FnKey, qualifier: &str, c: Cached) {
        if let Ok(mut m) = self.cache.write() {
            if self.generation() == generation {
                m.entry(key).or_default().insert(qualifier.to_string(), c);
            }
        }
    }
}

/// Hex digests of every zip a function, version or layer of any scope references.
fn referenced_code(deps: &Deps) -> Result<std::collections::HashSet<String>, ApiError> {
    let mut refs = std::collections::HashSet::new();
    let store = &deps.store;
    let mut add = |c: &model::Config| {
        refs.insert(c.code.sha_hex.clone());
        for l in &c.layers {
            refs.insert(l.code.sha_hex.clone());
        }
    };
    for scope in store.scopes(model::FUNCTIONS).map_err(store_err)? {
        let (fs, _) = store
            .scan_json::<model::FunctionRecord>(&scope, model::FUNCTIONS, "", None, usize::MAX)
            .map_err(store_err)?;
        for (_, f) in fs {
            add(&f.latest);
        }
    }
    for scope in store.scopes(model::VERSIONS).map_err(store_err)? {
        let (vs, _) = store
            .scan_json::<model::Config>(&scope, model::VERSIONS, "", None, usize::MAX)
            .map_err(store_err)?;
        for (_, v) in vs {
            add(&v);
        }
    }
    for scope in store.scopes(model::LAYERS).map_err(store_err)? {
        let (ls, _) = store
            .scan_json::<model::LayerRecord>(&scope, model::LAYERS, "", None, usize::MAX)
            .map_err(store_err)?;
        for (_, l) in ls {
            refs.insert(l.code.sha_hex);
        }
    }
    Ok(refs)
}

pub(crate) fn store_err(e: fc_store::StoreError) -> ApiError {
    ApiError::new(500, "ServiceException", format!("state store: {e}"))
}

/// `InvalidParameterValueException` (400) with Lambda's `Type: User`.
pub(crate) fn ipv(message: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterValueException", message).with_field("Type", json!("User"))
}

/// Same as [`ipv`]; reads better where AWS reports a missing input.
pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ipv(message)
}

/// `ValidationException` (400), what Lambda answers for model constraint violations.
pub(crate) fn validation(message: impl Into<String>) -> ApiError {
    ApiError::client("ValidationException", message)
}

pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(404, "ResourceNotFoundException", message).with_field("Type", json!("User"))
}

pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(409, "ResourceConflictException", message).with_field("Type", json!("User"))
}

pub(crate) fn precondition() -> ApiError {
    ApiError::new(
        412,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the \
         GetFunction/GetAlias API to retrieve the latest Revision Id",
    )
    .with_field("Type", json!("User"))
}

pub(crate) fn function_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

pub(crate) fn fn_not_found(region: &str, account: &str, name: &str, q: Option<&str>) -> ApiError {
    let arn = function_arn(region, account, name);
    match q {
        Some(q) => not_found(format!("Function not found: {arn}:{q}")),
        None => not_found(format!("Function not found: {arn}")),
    }
}

/// A function named by name, partial ARN or ARN, with an optional qualifier suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FnRef {
    pub account: String,
    pub region: String,
    pub name: String,
    pub qualifier: Option<String>,
}

const FN_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_qualifier(s: &str) -> bool {
    s == "$LATEST"
        || (!s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Parses a `FunctionName` member (caller's account and region by default).
pub(crate) fn parse_fn(account: &str, region: &str, s: &str) -> Result<FnRef, ApiError> {
    let bad = || {
        validation(format!(
            "1 validation error detected: Value '{s}' at 'functionName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: {FN_PATTERN}"
        ))
    };
    let parts: Vec<&str> = s.split(':').collect();
    let (acct, reg, name, q) = if parts[0] == "arn" {
        if !(7..=8).contains(&parts.len()) || parts[2] != "lambda" || parts[5] != "function" {
            return Err(bad());
        }
        (parts[4], parts[3], parts[6], parts.get(7).copied())
    } else if parts.len() >= 3 && parts[1] == "function" {
        if parts.len() > 4 {
            return Err(bad());
        }
        (parts[0], region, parts[2], parts.get(3).copied())
    } else {
        if parts.len() > 2 {
            return Err(bad());
        }
        (account, region, parts[0], parts.get(1).copied())
    };
    if !valid_name(name)
        || q.is_some_and(|q| !valid_qualifier(q))
        || !fc_types::ids::is_account_id(acct)
        || reg.is_empty()
    {
        return Err(bad());
    }
    Ok(FnRef {
        account: acct.to_string(),
        region: reg.to_string(),
        name: name.to_string(),
        qualifier: q.map(str::to_string),
    })
}

/// (account, region, name) of `FunctionName` for operations on a whole function: a qualifier
/// (in the name or the `Qualifier` member) is refused.
pub(crate) fn unqualified(
    ctx: &RequestContext,
    input: &Value,
) -> Result<(String, String, String), ApiError> {
    let (f, q) = fn_and_qualifier(ctx, input)?;
    if q.is_some() {
        return Err(ipv(
            "The function name should not be qualified for this operation.",
        ));
    }
    Ok((f.account, f.region, f.name))
}

/// The function named by `FunctionName` and the effective qualifier (from the name's suffix or
/// the `Qualifier` member; both given and different is an error).
pub(crate) fn fn_and_qualifier(
    ctx: &RequestContext,
    input: &Value,
) -> Result<(FnRef, Option<String>), ApiError> {
    let name = input
        .get("FunctionName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let f = parse_fn(&ctx.account, &ctx.region, name)?;
    let q = input.get("Qualifier").and_then(Value::as_str);
    let q = match (&f.qualifier, q) {
        (Some(a), Some(b)) if a != b => {
            return Err(ipv(
                "The derived qualifier from the function name does not match the specified \
                 qualifier.",
            ))
        }
        (Some(a), _) => Some(a.clone()),
        (None, Some(b)) if !b.is_empty() => {
            if !valid_qualifier(b) {
                return Err(validation(format!(
                    "1 validation error detected: Value '{b}' at 'qualifier' failed to satisfy \
                     constraint: Member must satisfy regular expression pattern: \
                     (|[a-zA-Z0-9$_-]+)"
                )));
            }
            Some(b.to_string())
        }
        _ => None,
    };
    Ok((f, q))
}

/// One page of `items` (sorted by key) after `marker`.
pub(crate) fn paginate(
    op: &str,
    mut items: Vec<(String, Value)>,
    marker: Option<&str>,
    max: Option<i64>,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let scope = format!("lambda:{op}");
    let after = match marker {
        Some(m) if !m.is_empty() => Some(
            fc_types::page::decode(&scope, m).map_err(|_| ipv(format!("Invalid marker: {m}")))?,
        ),
        _ => None,
    };
    let max = match max {
        Some(n) if !(1..=10000).contains(&n) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy \
                 constraint: Member must have value {}",
                if n < 1 {
                    "greater than or equal to 1"
                } else {
                    "less than or equal to 10000"
                }
            )))
        }
        Some(n) => n as usize,
        None => 50,
    };
    let mut out = Vec::new();
    let mut next = None;
    let mut last_key = String::new();
    for (k, v) in items {
        if after.as_deref().is_some_and(|a| k.as_str() <= a) {
            continue;
        }
        if out.len() == max {
            next = Some(fc_types::page::encode(&scope, &last_key));
            break;
        }
        last_key = k;
        out.push(v);
    }
    Ok((out, next))
}

/// Runs a control-plane operation.
pub async fn call(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, ApiError> {
    inner.control.recover_once(inner);
    match ctx.operation.as_str() {
        "CreateFunction" => functions::create_function(inner, ctx, &input).await,
        "GetFunction" => functions::get_function(inner, ctx, &input),
        "GetFunctionConfiguration" => functions::get_function_configuration(inner, ctx, &input),
        "ListFunctions" => functions::list_functions(inner, ctx, &input),
        "UpdateFunctionCode" => functions::update_function_code(inner, ctx, &input).await,
        "UpdateFunctionConfiguration" => {
            functions::update_function_configuration(inner, ctx, &input).await
        }
        "DeleteFunction" => functions::delete_function(inner, ctx, &input).await,
        "TagResource" => functions::tag_resource(inner, ctx, &input).await,
        "UntagResource" => functions::untag_resource(inner, ctx, &input).await,
        "ListTags" => functions::list_tags(inner, ctx, &input),
        "GetAccountSettings" => functions::get_account_settings(inner, ctx),
        "PublishVersion" => versions::publish_version(inner, ctx, &input).await,
        "ListVersionsByFunction" => versions::list_versions(inner, ctx, &input),
        "CreateAlias" => versions::create_alias(inner, ctx, &input).await,
        "GetAlias" => versions::get_alias(inner, ctx, &input),
        "UpdateAlias" => versions::update_alias(inner, ctx, &input).await,
        "DeleteAlias" => versions::delete_alias(inner, ctx, &input).await,
        "ListAliases" => versions::list_aliases(inner, ctx, &input),
        "PublishLayerVersion" => layers::publish_layer_version(inner, ctx, &input).await,
        "GetLayerVersion" => layers::get_layer_version(inner, ctx, &input),
        "GetLayerVersionByArn" => layers::get_layer_version_by_arn(inner, ctx, &input),
        "ListLayers" => layers::list_layers(inner, ctx, &input),
        "ListLayerVersions" => layers::list_layer_versions(inner, ctx, &input),
        "DeleteLayerVersion" => layers::delete_layer_version(inner, ctx, &input).await,
        "PutFunctionConcurrency" => concurrency::put_function_concurrency(inner, ctx, &input).await,
        "GetFunctionConcurrency" => concurrency::get_function_concurrency(inner, ctx, &input),
        "DeleteFunctionConcurrency" => {
            concurrency::delete_function_concurrency(inner, ctx, &input).await
        }
        "PutProvisionedConcurrencyConfig" => concurrency::put_provisioned(inner, ctx, &input).await,
        "GetProvisionedConcurrencyConfig" => concurrency::get_provisioned(inner, ctx, &input),
        "DeleteProvisionedConcurrencyConfig" => {
            concurrency::delete_provisioned(inner, ctx, &input).await
        }
        "ListProvisionedConcurrencyConfigs" => concurrency::list_provisioned(inner, ctx, &input),
        "Invoke" => invoke::invoke(inner, ctx, &input).await,
        op => Err(ApiError::not_implemented("lambda", op)),
    }
}

/// See [`Inner::resolve`].
pub async fn resolve(
    inner: &Arc<Inner>,
    account: &str,
    region: &str,
    function: &str,
    qualifier: Option<&str>,
) -> Result<Arc<FunctionSpec>, ApiError> {
    inner.control.recover_once(inner);
    let f = parse_fn(account, region, function)?;
    let q = match (f.qualifier.as_deref(), qualifier) {
        (Some(a), Some(b)) if !b.is_empty() && a != b => {
            return Err(ipv(
                "The derived qualifier from the function name does not match the specified \
                 qualifier.",
            ))
        }
        (Some(a), _) => a.to_string(),
        (None, Some(b)) if !b.is_empty() => b.to_string(),
        _ => "$LATEST".to_string(),
    };
    functions::resolve_spec(inner, &f.account, &f.region, &f.name, &q)
}

struct Internal {
    inner: std::sync::Weak<Inner>,
}

fn reply(status: u16, message: &str) -> fc_services::RawReply {
    fc_services::RawReply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: fc_services::BodyOut::Bytes(bytes::Bytes::from(
            json!({ "Message": message }).to_string(),
        )),
    }
}

#[async_trait::async_trait]
impl fc_services::RawHandler for Internal {
    async fn handle(
        &self,
        req: fc_services::HttpRequest,
        _body: fc_services::BodyIn,
    ) -> fc_services::RawReply {
        let Some(inner) = self.inner.upgrade() else {
            return reply(503, "lambda is shutting down");
        };
        let Some(file) = req.path.strip_prefix("/_ferrocloud/lambda/code/") else {
            return reply(
                404,
                &format!("no ferrocloud endpoint {} {}", req.method, req.path),
            );
        };
        if req.method != "GET" && req.method != "HEAD" {
            return reply(405, "method not allowed");
        }
        let Some(sha) = file.strip_suffix(".zip") else {
            return reply(404, "not found");
        };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return reply(404, "not found");
        }
        let q = req.query_pairs();
        let get = |k: &str| {
            q.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let now = fc_protocol::value::now_secs() as u64;
        if !inner
            .control
            .signer
            .verify(sha, get("expires"), get("signature"), now)
        {
            return reply(
                403,
                "Access Denied: the signature is invalid or has expired",
            );
        }
        let path = code::zip_path(&inner.deps.data_dir, sha);
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            return reply(404, "The code package no longer exists");
        };
        fc_services::RawReply {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/zip".into()),
                ("content-length".into(), meta.len().to_string()),
            ],
            body: if req.method == "HEAD" {
                fc_services::BodyOut::Bytes(bytes::Bytes::new())
            } else {
                fc_services::BodyOut::File {
                    path,
                    offset: 0,
                    len: meta.len(),
                }
            },
        }
    }
}

/// The handler of `/_ferrocloud/lambda/...` (code downloads).
pub fn internal_handler(inner: &Arc<Inner>) -> Arc<dyn fc_services::RawHandler> {
    Arc::new(Internal {
        inner: Arc::downgrade(inner),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_references() {
        let a = "000000000000";
        let r = "us-east-1";
        let f = parse_fn(a, r, "my-fn").unwrap();
        assert_eq!((f.name.as_str(), f.qualifier), ("my-fn", None));
        let f = parse_fn(a, r, "my-fn:prod").unwrap();
        assert_eq!(f.qualifier.as_deref(), Some("prod"));
        let f = parse_fn(a, r, "123456789012:function:f:$LATEST").unwrap();
        assert_eq!(f.account, "123456789012");
        assert_eq!(f.qualifier.as_deref(), Some("$LATEST"));
        let f = parse_fn(a, r, "arn:aws:lambda:eu-west-1:123456789012:function:f:3").unwrap();
        assert_eq!(
            (f.region.as_str(), f.name.as_str(), f.qualifier.as_deref()),
            ("eu-west-1", "f", Some("3"))
        );
        for bad in [
            "",
            "a b",
            "a:b:c",
            "arn:aws:s3:::x",
            "x:function:f",
            "f:$NOPE",
        ] {
            assert!(parse_fn(a, r, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages() {
        let items: Vec<(String, Value)> = (0..5).map(|i| (format!("k{i}"), json!(i))).collect();
        let (p1, m) = paginate("X", items.clone(), None, Some(2)).unwrap();
        assert_eq!(p1, vec![json!(0), json!(1)]);
        let (p2, m) = paginate("X", items.clone(), m.as_deref(), Some(2)).unwrap();
        assert_eq!(p2, vec![json!(2), json!(3)]);
        let (p3, m) = paginate("X", items.clone(), m.as_deref(), Some(2)).unwrap();
        assert_eq!((p3, m), (vec![json!(4)], None));
        assert!(paginate("X", items.clone(), Some("junk"), None).is_err());
        assert!(paginate("X", items, None, Some(0)).is_err());
    }
}
