//! Asynchronous invocations: the durable event queue (one store record per pending event,
//! re-read at start-up), retries with backoff per `MaximumRetryAttempts`, the event age limit
//! (`MaximumEventAgeInSeconds`), on-success/on-failure destinations (SQS queues, functions) with
//! AWS's invocation record, the function's dead-letter queue, and the
//! `…FunctionEventInvokeConfig` operations.

use super::{
    invalid, key_of, not_found, now_ms, parse_function_arn, store_error, str_of, tables, target,
};
use crate::spec::{FunctionSpec, InvokeRequest, InvokeResult};
use crate::Inner;
use base64::Engine;
use fc_protocol::value::{epoch_value, format_iso8601, now_secs};
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_RETRIES: i64 = 2;
const DEFAULT_MAX_AGE_S: i64 = 21_600;
/// Throttles and service errors are retried (not counted as attempts) with a backoff that
/// grows to this.
const MAX_THROTTLE_BACKOFF_MS: i64 = 300_000;

/// `PutFunctionEventInvokeConfig` of one function, version or alias.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct InvokeConfig {
    #[serde(default)]
    pub v: u32,
    /// Qualified (`…:function:f:$LATEST`, `…:function:f:prod`).
    pub function_arn: String,
    pub max_retries: Option<i64>,
    pub max_age_s: Option<i64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub last_modified: f64,
}

impl InvokeConfig {
    fn output(&self) -> Value {
        let dest = |d: &Option<String>| match d {
            Some(a) => json!({"Destination": a}),
            None => json!({}),
        };
        let mut out = json!({
            "LastModified": epoch_value(self.last_modified),
            "FunctionArn": self.function_arn,
            "DestinationConfig": {"OnSuccess": dest(&self.on_success), "OnFailure": dest(&self.on_failure)},
        });
        if let Some(r) = self.max_retries {
            out["MaximumRetryAttempts"] = json!(r);
        }
        if let Some(a) = self.max_age_s {
            out["MaximumEventAgeInSeconds"] = json!(a);
        }
        out
    }
}

/// One pending asynchronous invocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AsyncEvent {
    #[serde(default)]
    pub v: u32,
    /// The store key: `<enqueued ms, 13 digits>-<uuid>` (oldest first).
    pub id: String,
    pub account: String,
    pub region: String,
    pub function_name: String,
    /// What the function is resolved with at each attempt (a version, an alias, or None).
    pub resolve_qualifier: Option<String>,
    /// Whose `EventInvokeConfig` applies (the qualifier the caller used; None = `$LATEST`).
    pub config_qualifier: Option<String>,
    pub invoked_arn: String,
    pub request_id: String,
    /// Base64 of the event.
    pub payload: String,
    /// `X-Amz-Client-Context` as the caller gave it.
    #[serde(default)]
    pub client_context: Option<String>,
    pub enqueued_ms: i64,
    /// Invocations made so far (`approximateInvokeCount`).
    pub attempts: u32,
    /// Function errors so far (counted against `MaximumRetryAttempts`).
    pub failures: u32,
    /// Throttles / service errors so far (retried, not counted).
    pub throttles: u32,
    pub next_ms: i64,
}

impl AsyncEvent {
    fn payload_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .unwrap_or_default()
    }

    fn scope(&self) -> Scope {
        Scope::new(&self.account, &self.region)
    }

    /// The ARN destination records name: always qualified (`:$LATEST` when unqualified).
    fn record_arn(&self) -> String {
        match parse_function_arn(&self.invoked_arn) {
            Some((_, _, _, Some(_))) => self.invoked_arn.clone(),
            Some(_) => format!("{}:$LATEST", self.invoked_arn),
            None => self.invoked_arn.clone(),
        }
    }
}

/// A new event for `invoked_arn` (qualifiers unset: the caller sets them).
fn new_event(
    account: &str,
    region: &str,
    function_name: &str,
    invoked_arn: &str,
    request_id: &str,
    payload: &[u8],
) -> AsyncEvent {
    let now = now_ms();
    AsyncEvent {
        v: 1,
        id: format!("{now:013}-{}", uuid::Uuid::new_v4()),
        account: account.to_string(),
        region: region.to_string(),
        function_name: function_name.to_string(),
        resolve_qualifier: None,
        config_qualifier: None,
        invoked_arn: invoked_arn.to_string(),
        request_id: request_id.to_string(),
        payload: base64::engine::general_purpose::STANDARD.encode(payload),
        client_context: None,
        enqueued_ms: now,
        attempts: 0,
        failures: 0,
        throttles: 0,
        next_ms: now,
    }
}

fn save(inner: &Inner, ev: &AsyncEvent) -> Result<(), ApiError> {
    inner
        .deps
        .store
        .put_json(&ev.scope(), tables::ASYNC_EVENTS, &ev.id, ev)
        .map_err(store_error)
}

fn remove(inner: &Inner, ev: &AsyncEvent) {
    if let Err(e) = inner
        .deps
        .store
        .delete(&ev.scope(), tables::ASYNC_EVENTS, &ev.id)
    {
        tracing::warn!(error = %e, event = %ev.id, "async event not removed");
    }
}

fn spawn_run(inner: &Arc<Inner>, ev: AsyncEvent, spec: Option<Arc<FunctionSpec>>) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(run(inner.clone(), ev, spec));
        }
        Err(_) => tracing::warn!(event = %ev.id, "no runtime: async event runs at the next start"),
    }
}

/// Queues an invocation of a resolved function (`Invoke` with `InvocationType=Event`).
pub(crate) fn enqueue(
    inner: &Arc<Inner>,
    spec: Arc<FunctionSpec>,
    req: InvokeRequest,
) -> Result<(), ApiError> {
    let config_qualifier = parse_function_arn(&req.invoked_arn).and_then(|(_, _, _, q)| q);
    let invoked = if req.invoked_arn.is_empty() {
        spec.function_arn.clone()
    } else {
        req.invoked_arn.clone()
    };
    let request_id = if req.request_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        req.request_id.clone()
    };
    let mut ev = new_event(
        &spec.account,
        &spec.region,
        &spec.function_name,
        &invoked,
        &request_id,
        &req.payload,
    );
    ev.resolve_qualifier = Some(spec.version.clone());
    ev.config_qualifier = config_qualifier;
    ev.client_context = req.client_context.clone();
    save(inner, &ev)?;
    spawn_run(inner, ev, Some(spec));
    Ok(())
}

/// Queues an invocation of a function by ARN (the bus, destinations).
pub(crate) fn enqueue_arn(inner: &Arc<Inner>, arn: &str, payload: &[u8]) -> Result<(), ApiError> {
    let (account, region, name, qualifier) =
        parse_function_arn(arn).ok_or_else(|| invalid(format!("{arn} is not a function ARN")))?;
    let mut ev = new_event(
        &account,
        &region,
        &name,
        arn,
        &uuid::Uuid::new_v4().to_string(),
        payload,
    );
    ev.resolve_qualifier = qualifier.clone();
    ev.config_qualifier = qualifier;
    save(inner, &ev)?;
    spawn_run(inner, ev, None);
    Ok(())
}

/// Re-reads every pending event and runs it.
pub(crate) fn start(inner: &Arc<Inner>) {
    let store = inner.deps.store.clone();
    let scopes = match store.scopes(tables::ASYNC_EVENTS) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "pending async events not read");
            return;
        }
    };
    let mut n = 0usize;
    for scope in scopes {
        let mut after: Option<String> = None;
        loop {
            let page = store.scan_json::<AsyncEvent>(
                &scope,
                tables::ASYNC_EVENTS,
                "",
                after.as_deref(),
                1000,
            );
            let (items, more) = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "pending async events not read");
                    break;
                }
            };
            after = items.last().map(|(k, _)| k.clone());
            for (_, ev) in items {
                n += 1;
                spawn_run(inner, ev, None);
            }
            if !more || after.is_none() {
                break;
            }
        }
    }
    if n > 0 {
        tracing::info!(events = n, "resumed pending async invocations");
    }
}

fn load_config(
    inner: &Inner,
    scope: &Scope,
    name: &str,
    qualifier: Option<&str>,
) -> Option<InvokeConfig> {
    let key = key_of(name, Some(qualifier.unwrap_or("$LATEST")));
    inner
        .deps
        .store
        .get_json(scope, tables::INVOKE_CONFIGS, &key)
        .ok()
        .flatten()
}

enum Outcome {
    Success(InvokeResult),
    /// The last result when the function ran and failed.
    Failure(&'static str, Option<InvokeResult>),
}

async fn run(inner: Arc<Inner>, mut ev: AsyncEvent, mut spec: Option<Arc<FunctionSpec>>) {
    let base_ms = i64::try_from(inner.deps.settings.async_retry_base.as_millis())
        .unwrap_or(60_000)
        .max(1);
    let outcome = loop {
        let wait = ev.next_ms - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        }
        let cfg = load_config(
            &inner,
            &ev.scope(),
            &ev.function_name,
            ev.config_qualifier.as_deref(),
        );
        let max_age_ms = cfg
            .as_ref()
            .and_then(|c| c.max_age_s)
            .unwrap_or(DEFAULT_MAX_AGE_S)
            * 1000;
        let max_retries = cfg
            .as_ref()
            .and_then(|c| c.max_retries)
            .unwrap_or(DEFAULT_RETRIES);
        if now_ms() - ev.enqueued_ms > max_age_ms {
            break Outcome::Failure("EventAgeExceeded", None);
        }
        let s = match spec.take() {
            Some(s) => s,
            None => match inner
                .resolve(
                    &ev.account,
                    &ev.region,
                    &ev.function_name,
                    ev.resolve_qualifier.as_deref(),
                )
                .await
            {
                Ok(s) => s,
                Err(e) if e.status == 404 => {
                    tracing::info!(event = %ev.id, error = %e, "async event dropped: function gone");
                    remove(&inner, &ev);
                    return;
                }
                Err(e) => {
                    tracing::warn!(event = %ev.id, error = %e, "async event: function not resolved");
                    throttled(&inner, &mut ev);
                    continue;
                }
            },
        };
        let req = InvokeRequest {
            request_id: ev.request_id.clone(),
            payload: ev.payload_bytes().into(),
            invoked_arn: ev.invoked_arn.clone(),
            client_context: ev.client_context.clone(),
            asynchronous: true,
            ..InvokeRequest::default()
        };
        let result = {
            let _slot = inner.triggers.async_slots.clone().acquire_owned().await;
            inner.invoke(s.clone(), req).await
        };
        match result {
            Ok(r) if r.function_error.is_none() => {
                ev.attempts += 1;
                spec = Some(s);
                break Outcome::Success(r);
            }
            Ok(r) => {
                ev.attempts += 1;
                ev.failures += 1;
                spec = Some(s);
                if i64::from(ev.failures) > max_retries {
                    break Outcome::Failure("RetriesExhausted", Some(r));
                }
                ev.next_ms = now_ms() + retry_delay_ms(base_ms, ev.failures);
                if let Err(e) = save(&inner, &ev) {
                    tracing::warn!(error = %e, "async event state not saved");
                }
                // Retries re-resolve (the alias may point elsewhere, the code may have changed).
                spec = None;
            }
            Err(e) if e.status == 429 || e.status >= 500 => {
                tracing::debug!(event = %ev.id, error = %e, "async invocation throttled");
                throttled(&inner, &mut ev);
            }
            Err(e) => {
                tracing::warn!(event = %ev.id, error = %e, "async invocation refused");
                ev.attempts += 1;
                spec = Some(s);
                break Outcome::Failure("RetriesExhausted", None);
            }
        }
    };
    finish(&inner, &ev, spec, outcome).await;
    remove(&inner, &ev);
}

/// The wait before retry `failures` (1-based) of a failed function: the base, then twice it.
fn retry_delay_ms(base_ms: i64, failures: u32) -> i64 {
    base_ms * (1i64 << failures.saturating_sub(1).min(10))
}

/// The wait after the `throttles`-th throttle: 1 s doubling up to 5 minutes.
fn throttle_delay_ms(throttles: u32) -> i64 {
    (1000i64 << throttles.saturating_sub(1).min(12)).min(MAX_THROTTLE_BACKOFF_MS)
}

fn throttled(inner: &Inner, ev: &mut AsyncEvent) {
    ev.throttles += 1;
    ev.next_ms = now_ms() + throttle_delay_ms(ev.throttles);
    if let Err(e) = save(inner, ev) {
        tracing::warn!(error = %e, "async event state not saved");
    }
}

/// Delivers the outcome: destinations, or the dead-letter queue.
async fn finish(
    inner: &Arc<Inner>,
    ev: &AsyncEvent,
    spec: Option<Arc<FunctionSpec>>,
    outcome: Outcome,
) {
    let cfg = load_config(
        inner,
        &ev.scope(),
        &ev.function_name,
        ev.config_qualifier.as_deref(),
    );
    let payload = ev.payload_bytes();
    match outcome {
        Outcome::Success(r) => {
            if let Some(dest) = cfg.as_ref().and_then(|c| c.on_success.clone()) {
                let rec = destination_record(ev, "Success", &payload, Some(&r));
                deliver(inner, &dest, &rec.to_string());
            }
        }
        Outcome::Failure(condition, r) => {
            if let Some(dest) = cfg.as_ref().and_then(|c| c.on_failure.clone()) {
                let rec = destination_record(ev, condition, &payload, r.as_ref());
                deliver(inner, &dest, &rec.to_string());
            } else if let Some(dlq) = dead_letter_target(inner, ev, spec).await {
                send_dead_letter(inner, ev, &dlq, &payload, r.as_ref()).await;
            } else {
                tracing::info!(event = %ev.id, condition, "async invocation failed; no destination");
            }
        }
    }
}

/// The function's dead-letter queue (resolving the function when no attempt did).
async fn dead_letter_target(
    inner: &Arc<Inner>,
    ev: &AsyncEvent,
    spec: Option<Arc<FunctionSpec>>,
) -> Option<String> {
    let spec = match spec {
        Some(s) => s,
        None => inner
            .resolve(
                &ev.account,
                &ev.region,
                &ev.function_name,
                ev.resolve_qualifier.as_deref(),
            )
            .await
            .ok()?,
    };
    spec.dead_letter_arn.clone()
}

/// The message attributes Lambda puts on what it sends to a dead-letter queue.
pub(crate) fn dead_letter_attributes(request_id: &str, result: Option<&InvokeResult>) -> Value {
    let message = result
        .and_then(|r| serde_json::from_slice::<Value>(&r.payload).ok())
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Event age exceeded or retries exhausted".to_string());
    json!({
        "RequestID": {"DataType": "String", "StringValue": request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": message},
    })
}

/// Sends the original event to the function's dead-letter queue (SQS, with Lambda's message
/// attributes).
async fn send_dead_letter(
    inner: &Arc<Inner>,
    ev: &AsyncEvent,
    dlq: &str,
    payload: &[u8],
    result: Option<&InvokeResult>,
) {
    let body = String::from_utf8_lossy(payload).into_owned();
    let parts = fc_types::Arn::parse(dlq)
        .ok()
        .filter(|a| a.service == "sqs");
    let Some(arn) = parts else {
        deliver(inner, dlq, &body);
        return;
    };
    let ctx = RequestContext::for_account(&arn.account, &arn.region, "sqs", "SendMessage");
    let input = json!({
        "QueueUrl": format!("http://localhost/{}/{}", arn.account, arn.resource),
        "MessageBody": body,
        "MessageAttributes": dead_letter_attributes(&ev.request_id, result),
    });
    if let Err(e) = inner.deps.sqs.call(&ctx, input).await {
        tracing::warn!(queue = dlq, error = %e, "dead-letter message not sent");
    }
}

/// Sends `body` to a destination ARN (an SQS queue or a function).
fn deliver(inner: &Arc<Inner>, arn: &str, body: &str) {
    let service = arn.split(':').nth(2).unwrap_or("");
    let r = match service {
        "sqs" => match inner.deps.bus.queues() {
            Some(q) => q.send_message(arn, body),
            None => Err(ApiError::internal("no queue service")),
        },
        "lambda" => enqueue_arn(inner, arn, body.as_bytes()),
        _ => Err(ApiError::internal(format!(
            "destination {arn} is not supported by ferrocloud"
        ))),
    };
    if let Err(e) = r {
        tracing::warn!(destination = arn, error = %e, "async invocation record not delivered");
    }
}

/// A JSON value when the bytes are JSON, else the text.
fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// AWS's invocation record sent to destinations.
pub(crate) fn destination_record(
    ev: &AsyncEvent,
    condition: &str,
    request_payload: &[u8],
    result: Option<&InvokeResult>,
) -> Value {
    let mut rec = json!({
        "version": "1.0",
        "timestamp": format_iso8601(now_secs()),
        "requestContext": {
            "requestId": ev.request_id,
            "functionArn": ev.record_arn(),
            "condition": condition,
            "approximateInvokeCount": ev.attempts,
        },
        "requestPayload": json_or_text(request_payload),
    });
    if let Some(r) = result {
        let mut ctx = json!({"statusCode": 200, "executedVersion": r.executed_version});
        if let Some(fe) = &r.function_error {
            ctx["functionError"] = json!(fe);
        }
        rec["responseContext"] = ctx;
        rec["responsePayload"] = if r.payload.is_empty() {
            Value::Null
        } else {
            json_or_text(&r.payload)
        };
    }
    rec
}

// ---- …FunctionEventInvokeConfig ----

fn no_config(arn: &str) -> ApiError {
    not_found(format!(
        "The function {arn} doesn't have an EventInvokeConfig"
    ))
}

fn destination(input: &Value, which: &str) -> Result<Option<String>, ApiError> {
    let Some(arn) = input
        .get("DestinationConfig")
        .and_then(|d| d.get(which))
        .and_then(|d| d.get("Destination"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    if arn.is_empty() {
        return Ok(None);
    }
    let service = fc_types::Arn::parse(arn)
        .map(|a| a.service)
        .unwrap_or_default();
    if !matches!(service.as_str(), "sqs" | "lambda" | "sns" | "events" | "s3") {
        return Err(invalid(format!(
            "The provided destination config DestinationConfig(onSuccess=OnSuccess(destination={}), onFailure=OnFailure(destination={})) is invalid.",
            if which == "OnSuccess" { arn } else { "null" },
            if which == "OnFailure" { arn } else { "null" },
        )));
    }
    if service == "s3" && which == "OnSuccess" {
        return Err(invalid(
            "S3 bucket is not supported as a destination for OnSuccess.",
        ));
    }
    Ok(Some(arn.to_string()))
}

pub(crate) async fn put_config(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
    update: bool,
) -> Result<Value, ApiError> {
    let retries = super::int_in(input, "MaximumRetryAttempts", 0, 2)?;
    let age = super::int_in(input, "MaximumEventAgeInSeconds", 60, 21_600)?;
    let on_success = destination(input, "OnSuccess")?;
    let on_failure = destination(input, "OnFailure")?;
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    let qualifier = t.qualifier.clone().unwrap_or_else(|| "$LATEST".into());
    let arn = format!("{}:{qualifier}", t.spec.function_arn);
    let key = key_of(&t.name, Some(&qualifier));
    let store = inner.deps.store.as_ref();
    let existing: Option<InvokeConfig> = store
        .get_json(&t.scope, tables::INVOKE_CONFIGS, &key)
        .map_err(store_error)?;
    let mut cfg = if update {
        let mut c = existing.ok_or_else(|| no_config(&arn))?;
        if retries.is_some() {
            c.max_retries = retries;
        }
        if age.is_some() {
            c.max_age_s = age;
        }
        if let Some(d) = input.get("DestinationConfig") {
            if d.get("OnSuccess").is_some() {
                c.on_success = on_success;
            }
            if d.get("OnFailure").is_some() {
                c.on_failure = on_failure;
            }
        }
        c
    } else {
        InvokeConfig {
            v: 1,
            function_arn: arn.clone(),
            max_retries: retries,
            max_age_s: age,
            on_success,
            on_failure,
            last_modified: 0.0,
        }
    };
    cfg.function_arn = arn;
    cfg.last_modified = now_secs();
    store
        .put_json(&t.scope, tables::INVOKE_CONFIGS, &key, &cfg)
        .map_err(store_error)?;
    Ok(cfg.output())
}

pub(crate) async fn get_config(
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
    let qualifier = t.qualifier.clone().unwrap_or_else(|| "$LATEST".into());
    load_config(inner, &t.scope, &t.name, Some(&qualifier))
        .map(|c| c.output())
        .ok_or_else(|| no_config(&format!("{}:{qualifier}", t.spec.function_arn)))
}

pub(crate) async fn delete_config(
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
    let qualifier = t.qualifier.clone().unwrap_or_else(|| "$LATEST".into());
    let existed = inner
        .deps
        .store
        .delete(
            &t.scope,
            tables::INVOKE_CONFIGS,
            &key_of(&t.name, Some(&qualifier)),
        )
        .map_err(store_error)?;
    if !existed {
        return Err(no_config(&format!("{}:{qualifier}", t.spec.function_arn)));
    }
    Ok(json!({}))
}

pub(crate) async fn list_configs(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (items, next) =
        super::list_function_records::<InvokeConfig>(inner, ctx, input, tables::INVOKE_CONFIGS)
            .await?;
    let mut out = json!({
        "FunctionEventInvokeConfigs": items.iter().map(InvokeConfig::output).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        out["NextMarker"] = json!(next);
    }
    Ok(out)
}

/// Drops the async configuration of a deleted function (pending events are dropped when they
/// next fail to resolve).
pub(crate) fn forget(inner: &Arc<Inner>, scope: &Scope, name: &str, qualifier: Option<&str>) {
    super::forget_records(inner, scope, tables::INVOKE_CONFIGS, name, qualifier);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(invoked: &str) -> AsyncEvent {
        let mut ev = new_event(
            "123456789012",
            "us-east-1",
            "f",
            invoked,
            "req-1",
            br#"{"k":"v"}"#,
        );
        ev.attempts = 3;
        ev
    }

    #[test]
    fn failure_record_has_aws_shape() {
        let ev = event("arn:aws:lambda:us-east-1:123456789012:function:f");
        let r = InvokeResult {
            payload: br#"{"errorMessage":"boom","errorType":"Exception"}"#.to_vec().into(),
            function_error: Some("Unhandled".into()),
            executed_version: "$LATEST".into(),
            ..InvokeResult::default()
        };
        let rec = destination_record(&ev, "RetriesExhausted", br#"{"k":"v"}"#, Some(&r));
        assert_eq!(rec["version"], "1.0");
        assert_eq!(rec["requestContext"]["requestId"], "req-1");
        assert_eq!(
            rec["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"
        );
        assert_eq!(rec["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(rec["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(rec["requestPayload"], json!({"k": "v"}));
        assert_eq!(rec["responseContext"]["statusCode"], 200);
        assert_eq!(rec["responseContext"]["executedVersion"], "$LATEST");
        assert_eq!(rec["responseContext"]["functionError"], "Unhandled");
        assert_eq!(rec["responsePayload"]["errorMessage"], "boom");
        assert!(rec["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn success_record_keeps_qualifier_and_text_payloads() {
        let ev = event("arn:aws:lambda:us-east-1:123456789012:function:f:prod");
        let r = InvokeResult {
            payload: b"not json".to_vec().into(),
            executed_version: "3".into(),
            ..InvokeResult::default()
        };
        let rec = destination_record(&ev, "Success", b"plain", Some(&r));
        assert_eq!(
            rec["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:123456789012:function:f:prod"
        );
        assert_eq!(rec["requestPayload"], "plain");
        assert_eq!(rec["responsePayload"], "not json");
        assert!(rec["responseContext"].get("functionError").is_none());
    }

    #[test]
    fn age_exceeded_record_has_no_response() {
        let ev = event("arn:aws:lambda:us-east-1:123456789012:function:f");
        let rec = destination_record(&ev, "EventAgeExceeded", b"{}", None);
        assert_eq!(rec["requestContext"]["condition"], "EventAgeExceeded");
        assert!(rec.get("responseContext").is_none());
    }

    #[test]
    fn dead_letter_attributes_name_the_error() {
        let r = InvokeResult {
            payload: br#"{"errorMessage":"boom"}"#.to_vec().into(),
            function_error: Some("Unhandled".into()),
            ..InvokeResult::default()
        };
        let a = dead_letter_attributes("rid", Some(&r));
        assert_eq!(a["RequestID"]["StringValue"], "rid");
        assert_eq!(a["ErrorCode"]["DataType"], "Number");
        assert_eq!(a["ErrorMessage"]["StringValue"], "boom");
    }

    #[test]
    fn backoffs() {
        assert_eq!(retry_delay_ms(60_000, 1), 60_000);
        assert_eq!(retry_delay_ms(60_000, 2), 120_000);
        assert_eq!(retry_delay_ms(1000, 0), 1000);
        assert_eq!(throttle_delay_ms(1), 1000);
        assert_eq!(throttle_delay_ms(2), 2000);
        assert_eq!(throttle_delay_ms(40), MAX_THROTTLE_BACKOFF_MS);
    }

    #[test]
    fn events_survive_serialization() {
        let mut ev = event("arn:aws:lambda:us-east-1:123456789012:function:f:1");
        ev.client_context = Some("e30=".into());
        let back: AsyncEvent = serde_json::from_slice(&serde_json::to_vec(&ev).unwrap()).unwrap();
        assert_eq!(back.payload_bytes(), br#"{"k":"v"}"#);
        assert_eq!(back.client_context.as_deref(), Some("e30="));
        assert!(back.id.len() > 14 && back.id.as_bytes()[13] == b'-');
        assert_eq!(back.scope(), Scope::new("123456789012", "us-east-1"));
    }

    #[test]
    fn destinations_are_validated() {
        let ok = json!({"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:q"}}});
        assert_eq!(
            destination(&ok, "OnFailure").unwrap().as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:q")
        );
        assert_eq!(destination(&ok, "OnSuccess").unwrap(), None);
        let bad = json!({"DestinationConfig": {"OnSuccess": {"Destination": "arn:aws:iam::123456789012:role/r"}}});
        assert_eq!(
            destination(&bad, "OnSuccess").unwrap_err().code,
            "InvalidParameterValueException"
        );
    }

    #[test]
    fn config_output_always_has_both_destinations() {
        let c = InvokeConfig {
            v: 1,
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST".into(),
            max_retries: Some(0),
            on_failure: Some("arn:aws:sqs:us-east-1:123456789012:q".into()),
            ..InvokeConfig::default()
        };
        let o = c.output();
        assert_eq!(o["DestinationConfig"]["OnSuccess"], json!({}));
        assert_eq!(
            o["DestinationConfig"]["OnFailure"]["Destination"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(o["MaximumRetryAttempts"], 0);
        assert!(o.get("MaximumEventAgeInSeconds").is_none());
    }
}
