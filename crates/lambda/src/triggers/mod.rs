//! What makes functions run besides `Invoke`: resource policies (`AddPermission`), event
//! source mappings (SQS pollers), async invocations (durable queue, retries, destinations,
//! dead-letter queues), function URLs, and S3 notifications through the bus.
//!
//! One file per family: `policy` (resource policies and their evaluation), `asyncq` (the async
//! invocation queue and `…FunctionEventInvokeConfig`), `esm` (event source mappings and their
//! pollers), `filter` (their `FilterCriteria`), `urls` (function URL configs and the URL data plane), `sink` (the bus's
//! `FunctionSink`). Everything is persisted in the store under the function's account and region.
//! Must not live here: function records (the control plane), execution (the engine).

mod asyncq;
mod esm;
mod filter;
mod policy;
mod sink;
mod urls;

use crate::spec::FunctionSpec;
use crate::{Deps, Inner};
use fc_protocol::ApiError;
use fc_services::{RawHandler, RequestContext};
use fc_store::Scope;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The triggers' own state (everything durable lives in the store; this is the live part).
pub struct State {
    /// Running SQS pollers by mapping UUID.
    pollers: Mutex<HashMap<String, esm::Poller>>,
    /// Function URL ids seen so far: url-id -> where its config lives.
    url_ids: Mutex<HashMap<String, urls::UrlTarget>>,
    /// Bounds the async invocations running at once (the rest wait their turn).
    async_slots: Arc<tokio::sync::Semaphore>,
}

impl State {
    pub fn new(deps: &Deps) -> Result<State, ApiError> {
        let slots = usize::try_from(deps.settings.account_concurrency.clamp(1, 1000)).unwrap_or(64);
        Ok(State {
            pollers: Mutex::new(HashMap::new()),
            url_ids: Mutex::new(HashMap::new()),
            async_slots: Arc::new(tokio::sync::Semaphore::new(slots)),
        })
    }
}

/// Operations handled here (the rest go to the control plane).
pub fn handles(operation: &str) -> bool {
    matches!(
        operation,
        "AddPermission"
            | "RemovePermission"
            | "GetPolicy"
            | "PutFunctionEventInvokeConfig"
            | "GetFunctionEventInvokeConfig"
            | "UpdateFunctionEventInvokeConfig"
            | "DeleteFunctionEventInvokeConfig"
            | "ListFunctionEventInvokeConfigs"
            | "CreateEventSourceMapping"
            | "GetEventSourceMapping"
            | "UpdateEventSourceMapping"
            | "DeleteEventSourceMapping"
            | "ListEventSourceMappings"
            | "CreateFunctionUrlConfig"
            | "GetFunctionUrlConfig"
            | "UpdateFunctionUrlConfig"
            | "DeleteFunctionUrlConfig"
            | "ListFunctionUrlConfigs"
    )
}

pub async fn call(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, ApiError> {
    match ctx.operation.as_str() {
        "AddPermission" => policy::add_permission(inner, ctx, &input).await,
        "RemovePermission" => policy::remove_permission(inner, ctx, &input).await,
        "GetPolicy" => policy::get_policy(inner, ctx, &input).await,
        "PutFunctionEventInvokeConfig" => asyncq::put_config(inner, ctx, &input, false).await,
        "UpdateFunctionEventInvokeConfig" => asyncq::put_config(inner, ctx, &input, true).await,
        "GetFunctionEventInvokeConfig" => asyncq::get_config(inner, ctx, &input).await,
        "DeleteFunctionEventInvokeConfig" => asyncq::delete_config(inner, ctx, &input).await,
        "ListFunctionEventInvokeConfigs" => asyncq::list_configs(inner, ctx, &input).await,
        "CreateEventSourceMapping" => esm::create(inner, ctx, &input).await,
        "GetEventSourceMapping" => esm::get(inner, ctx, &input),
        "UpdateEventSourceMapping" => esm::update(inner, ctx, &input).await,
        "DeleteEventSourceMapping" => esm::delete(inner, ctx, &input),
        "ListEventSourceMappings" => esm::list(inner, ctx, &input).await,
        "CreateFunctionUrlConfig" => urls::create(inner, ctx, &input).await,
        "GetFunctionUrlConfig" => urls::get(inner, ctx, &input).await,
        "UpdateFunctionUrlConfig" => urls::update(inner, ctx, &input).await,
        "DeleteFunctionUrlConfig" => urls::delete(inner, ctx, &input).await,
        "ListFunctionUrlConfigs" => urls::list(inner, ctx, &input).await,
        _ => Err(ApiError::not_implemented("lambda", &ctx.operation)),
    }
}

/// Queues an asynchronous (`InvocationType=Event`) invocation durably; it runs in the
/// background with retries, destinations and the dead-letter queue. Returns once queued.
pub async fn enqueue_async(
    inner: &Arc<Inner>,
    spec: Arc<FunctionSpec>,
    req: crate::spec::InvokeRequest,
) -> Result<(), ApiError> {
    asyncq::enqueue(inner, spec, req)
}

/// Forgets everything of a deleted function (permissions, mappings, URL, async config).
/// `qualifier` None = the whole function.
pub async fn function_deleted(
    inner: &Arc<Inner>,
    account: &str,
    region: &str,
    function_name: &str,
    qualifier: Option<&str>,
) {
    let scope = Scope::new(account, region);
    policy::forget(inner, &scope, function_name, qualifier);
    urls::forget(inner, &scope, function_name, qualifier);
    asyncq::forget(inner, &scope, function_name, qualifier);
    esm::forget(inner, &scope, function_name, qualifier);
}

/// Starts pollers and workers; registers the bus function sink.
pub fn start(inner: &Arc<Inner>) {
    inner
        .deps
        .bus
        .set_functions(Arc::new(sink::Sink::new(inner)));
    asyncq::start(inner);
    esm::start(inner);
}

/// The function URL data plane.
pub fn url_handler(inner: &Arc<Inner>) -> Arc<dyn RawHandler> {
    urls::handler(inner)
}

// ---- shared helpers ----

/// The store tables of the triggers (all scoped by account and region).
pub(crate) mod tables {
    /// `<name>#<qualifier>` -> resource policy.
    pub const POLICIES: &str = "lambda_policies";
    /// `<name>#<qualifier or $LATEST>` -> `FunctionEventInvokeConfig`.
    pub const INVOKE_CONFIGS: &str = "lambda_invoke_configs";
    /// `<enqueue ms>-<id>` -> a pending async invocation.
    pub const ASYNC_EVENTS: &str = "lambda_async_events";
    /// UUID -> event source mapping.
    pub const MAPPINGS: &str = "lambda_event_source_mappings";
    /// `<name>#<qualifier>` -> function URL config.
    pub const URLS: &str = "lambda_function_urls";
    /// url-id -> `<name>#<qualifier>`.
    pub const URL_IDS: &str = "lambda_function_url_ids";
}

pub(crate) fn store_error(e: fc_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "lambda triggers: store failure");
    ApiError::new(500, "ServiceException", format!("state store failure: {e}"))
}

pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(404, "ResourceNotFoundException", message).with_field("Type", "User".into())
}

/// Lambda's message when the thing asked for does not exist.
pub(crate) fn resource_not_found() -> ApiError {
    not_found("The resource you requested does not exist.")
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidParameterValueException", message).with_field("Type", "User".into())
}

pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(409, "ResourceConflictException", message).with_field("Type", "User".into())
}

/// A constraint of the model violated (`ValidationException`, as Lambda words it).
pub(crate) fn validation(value: &str, member: &str, constraint: &str) -> ApiError {
    ApiError::new(
        400,
        "ValidationException",
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ),
    )
}

/// An optional integer member within `[min, max]`.
pub(crate) fn int_in(
    input: &Value,
    member: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(v) = input.get(member) else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(None);
    }
    let n = v
        .as_i64()
        .ok_or_else(|| invalid(format!("{member} must be an integer")))?;
    let lower = lower_first(member);
    if n < min {
        return Err(validation(
            &n.to_string(),
            &lower,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(validation(
            &n.to_string(),
            &lower,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(Some(n))
}

/// `MaximumRetryAttempts` -> `maximumRetryAttempts` (how Lambda names members in messages).
pub(crate) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub(crate) fn str_of<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

/// Splits a `FunctionName` (name, partial ARN or ARN, optionally with `:qualifier`) into the
/// function part and the qualifier it carries.
pub(crate) fn split_function_name(s: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = s.split(':').collect();
    if s.starts_with("arn:") {
        // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        if parts.len() == 8 {
            return (parts[..7].join(":"), Some(parts[7].to_string()));
        }
        return (s.to_string(), None);
    }
    match parts.as_slice() {
        [account, "function", name, qualifier] => (
            format!("{account}:function:{name}"),
            Some((*qualifier).to_string()),
        ),
        [name, qualifier] if *name != "function" => {
            ((*name).to_string(), Some((*qualifier).to_string()))
        }
        _ => (s.to_string(), None),
    }
}

/// The function an operation names, resolved through the control plane.
pub(crate) struct Target {
    pub spec: Arc<FunctionSpec>,
    pub scope: Scope,
    /// The function's name (not an ARN).
    pub name: String,
    /// The qualifier as given (version number or alias name); None = unqualified.
    pub qualifier: Option<String>,
}

impl Target {
    /// `<name>#<qualifier>` (qualifier empty when unqualified).
    pub fn key(&self) -> String {
        key_of(&self.name, self.qualifier.as_deref())
    }

    /// The ARN as the operation names it (qualified when a qualifier was given).
    pub fn arn(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.spec.function_arn),
            None => self.spec.function_arn.clone(),
        }
    }
}

pub(crate) fn key_of(name: &str, qualifier: Option<&str>) -> String {
    format!("{name}#{}", qualifier.unwrap_or(""))
}

/// Resolves `FunctionName` (+ `Qualifier`) of an input.
pub(crate) async fn target(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    function_name: &str,
    qualifier: Option<&str>,
) -> Result<Target, ApiError> {
    let (base, derived) = split_function_name(function_name);
    let qualifier = match (derived, qualifier) {
        (Some(d), Some(q)) if d != q => return Err(invalid(
            "The derived qualifier from the function name does not match the specified qualifier.",
        )),
        (Some(d), _) => Some(d),
        (None, q) => q.map(str::to_string),
    };
    let spec = inner
        .resolve(&ctx.account, &ctx.region, &base, qualifier.as_deref())
        .await?;
    Ok(Target {
        scope: Scope::new(&spec.account, &spec.region),
        name: spec.function_name.clone(),
        qualifier,
        spec,
    })
}

/// `(account, region, name, qualifier)` of a function ARN
/// (`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`).
pub(crate) fn parse_function_arn(arn: &str) -> Option<(String, String, String, Option<String>)> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 7 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "function" {
        return None;
    }
    let qualifier = match parts.len() {
        7 => None,
        8 => Some(parts[7].to_string()),
        _ => return None,
    };
    Some((
        parts[4].to_string(),
        parts[3].to_string(),
        parts[6].to_string(),
        qualifier,
    ))
}

/// Runs a future to completion from synchronous code (the bus's sink is synchronous).
pub(crate) fn block_on<F>(fut: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Some(tokio::task::block_in_place(|| h.block_on(fut)))
        }
        _ => std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()
                .map(|rt| rt.block_on(fut))
        })
        .join()
        .ok()
        .flatten(),
    }
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    (fc_protocol::value::now_secs() * 1000.0) as i64
}

/// Deletes a function's records of `table` (keys `<name>#<qualifier>`): one qualifier's, or
/// all of them when `qualifier` is None. Failures are logged (the function is gone anyway).
pub(crate) fn forget_records(
    inner: &Arc<Inner>,
    scope: &Scope,
    table: &str,
    name: &str,
    qualifier: Option<&str>,
) {
    let store = inner.deps.store.as_ref();
    let r = match qualifier {
        Some(q) => store
            .delete(scope, table, &key_of(name, Some(q)))
            .map(|_| 0),
        None => store.delete_prefix(scope, table, &format!("{name}#")),
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, function = name, table, "records of a deleted function not removed");
    }
}

/// One page of a function's records of `table` (keys `<name>#…`) for a `List…` operation
/// (`FunctionName`, `Marker`, `MaxItems` ≤ 50): the records and the `NextMarker`, if any.
pub(crate) async fn list_function_records<T: serde::de::DeserializeOwned>(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
    table: &str,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = int_in(input, "MaxItems", 1, 50)?.unwrap_or(50);
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        None,
    )
    .await?;
    let page_scope = format!("lambda:{}:{}", ctx.operation, t.name);
    let after = match str_of(input, "Marker") {
        Some(m) => {
            Some(fc_types::page::decode(&page_scope, m).map_err(|_| invalid("Invalid Marker"))?)
        }
        None => None,
    };
    let (items, more) = fc_store::StoreExt::scan_json::<T>(
        inner.deps.store.as_ref(),
        &t.scope,
        table,
        &format!("{}#", t.name),
        after.as_deref(),
        usize::try_from(max).unwrap_or(50),
    )
    .map_err(store_error)?;
    let next = if more {
        items
            .last()
            .map(|(k, _)| fc_types::page::encode(&page_scope, k))
    } else {
        None
    };
    Ok((items.into_iter().map(|(_, v)| v).collect(), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_split() {
        assert_eq!(split_function_name("f"), ("f".into(), None));
        assert_eq!(
            split_function_name("f:prod"),
            ("f".into(), Some("prod".into()))
        );
        assert_eq!(
            split_function_name("123456789012:function:f:1"),
            ("123456789012:function:f".into(), Some("1".into()))
        );
        assert_eq!(
            split_function_name("arn:aws:lambda:us-east-1:123456789012:function:f"),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                None
            )
        );
        assert_eq!(
            split_function_name("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                Some("$LATEST".into())
            )
        );
    }

    #[test]
    fn function_arns_parse() {
        assert_eq!(
            parse_function_arn("arn:aws:lambda:eu-west-1:123456789012:function:f:live"),
            Some((
                "123456789012".into(),
                "eu-west-1".into(),
                "f".into(),
                Some("live".into())
            ))
        );
        assert_eq!(
            parse_function_arn("arn:aws:sqs:eu-west-1:123456789012:q"),
            None
        );
    }

    #[test]
    fn ranges_are_validated() {
        let input = serde_json::json!({"MaximumRetryAttempts": 3});
        let e = int_in(&input, "MaximumRetryAttempts", 0, 2).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(
            e.message.contains("'maximumRetryAttempts'"),
            "{}",
            e.message
        );
        assert_eq!(int_in(&input, "Other", 0, 2).unwrap(), None);
    }
}
