//! Event source mappings (SQS): the `…EventSourceMapping` operations and a few poller tasks per
//! enabled mapping (as AWS starts with five concurrent batches; fewer when
//! `ScalingConfig.MaximumConcurrency` says so). A poller long-polls the queue through the SQS service, gathers a batch
//! (up to `BatchSize` within `MaximumBatchingWindowInSeconds`), invokes the function
//! synchronously with the SQS event, and deletes what succeeded; failed messages stay and come
//! back after their visibility timeout (and reach the queue's dead-letter queue through its
//! redrive policy).

use super::filter::{self, Filters};
use super::{
    conflict, int_in, invalid, now_ms, resource_not_found, split_function_name, store_error,
    str_of, tables, target,
};
use crate::spec::InvokeRequest;
use crate::Inner;
use fc_protocol::value::{epoch_value, now_secs};
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The running pollers of one mapping.
pub(crate) struct Poller {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Concurrent batches per mapping (AWS starts SQS mappings with five).
const POLLERS: i64 = 5;

/// One event source mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Mapping {
    #[serde(default)]
    pub v: u32,
    pub uuid: String,
    pub account: String,
    pub region: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    /// As `FunctionArn` reports it (qualified when created with a qualifier).
    pub function_arn: String,
    pub event_source_arn: String,
    pub batch_size: i64,
    pub window_s: i64,
    pub enabled: bool,
    pub state: String,
    pub state_reason: String,
    pub response_types: Vec<String>,
    pub scaling: Option<Value>,
    pub filter_criteria: Option<Value>,
    pub last_modified: f64,
}

impl Mapping {
    fn scope(&self) -> Scope {
        Scope::new(&self.account, &self.region)
    }

    pub fn output(&self) -> Value {
        let mut o = json!({
            "UUID": self.uuid,
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.window_s,
            "EventSourceArn": self.event_source_arn,
            "FunctionArn": self.function_arn,
            "LastModified": epoch_value(self.last_modified),
            "State": self.state,
            "StateTransitionReason": self.state_reason,
            "FunctionResponseTypes": self.response_types,
            "EventSourceMappingArn": format!(
                "arn:aws:lambda:{}:{}:event-source-mapping:{}",
                self.region, self.account, self.uuid
            ),
        });
        if let Some(s) = &self.scaling {
            o["ScalingConfig"] = s.clone();
        }
        if let Some(f) = &self.filter_criteria {
            o["FilterCriteria"] = f.clone();
        }
        o
    }
}

fn load(inner: &Inner, scope: &Scope, uuid: &str) -> Result<Option<Mapping>, ApiError> {
    inner
        .deps
        .store
        .get_json(scope, tables::MAPPINGS, uuid)
        .map_err(store_error)
}

fn save(inner: &Inner, m: &Mapping) -> Result<(), ApiError> {
    inner
        .deps
        .store
        .put_json(&m.scope(), tables::MAPPINGS, &m.uuid, m)
        .map_err(store_error)
}

fn all(inner: &Inner, scope: &Scope) -> Result<Vec<Mapping>, ApiError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (items, more) = inner
            .deps
            .store
            .scan_json::<Mapping>(scope, tables::MAPPINGS, "", after.as_deref(), 1000)
            .map_err(store_error)?;
        after = items.last().map(|(k, _)| k.clone());
        out.extend(items.into_iter().map(|(_, m)| m));
        if !more || after.is_none() {
            return Ok(out);
        }
    }
}

/// `(region, account, name)` of an SQS queue ARN.
fn queue_parts(arn: &str) -> Option<(String, String, String)> {
    let a = fc_types::Arn::parse(arn).ok()?;
    (a.service == "sqs" && !a.resource.contains(':')).then_some((a.region, a.account, a.resource))
}

fn validate_event_source(inner: &Inner, arn: &str) -> Result<(), ApiError> {
    let service = fc_types::Arn::parse(arn)
        .map(|a| a.service)
        .unwrap_or_default();
    match service.as_str() {
        "sqs" => {}
        "kinesis" | "dynamodb" | "kafka" | "mq" | "rds" => {
            return Err(invalid(format!(
            "Event sources of type {service} are not supported by ferrocloud yet; SQS queues are."
        )))
        }
        _ => {
            return Err(invalid(
                "Unrecognized event source, must be kinesis, dynamodb stream or sqs.",
            ))
        }
    }
    let exists =
        queue_parts(arn).is_some() && inner.deps.bus.queues().is_some_and(|q| q.queue_exists(arn));
    if !exists {
        return Err(invalid(
            "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not exist or you do not have access to it.",
        ));
    }
    Ok(())
}

fn response_types(input: &Value) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = input.get("FunctionResponseTypes").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for t in list {
        let t = t.as_str().unwrap_or_default();
        if t != "ReportBatchItemFailures" {
            return Err(super::validation(
                t,
                "functionResponseTypes",
                "Member must satisfy enum value set: [ReportBatchItemFailures]",
            ));
        }
        out.push(t.to_string());
    }
    Ok(Some(out))
}

fn scaling(input: &Value) -> Result<Option<Value>, ApiError> {
    let Some(s) = input.get("ScalingConfig") else {
        return Ok(None);
    };
    int_in(s, "MaximumConcurrency", 2, 1000)?;
    Ok(Some(s.clone()))
}

fn check_filters(input: &Value) -> Result<(), ApiError> {
    Filters::parse(input.get("FilterCriteria"))
        .map(|_| ())
        .map_err(|e| invalid(e.to_string()))
}

/// Batch size and window rules of SQS sources.
fn check_batching(queue_arn: &str, batch: i64, window: i64) -> Result<(), ApiError> {
    let fifo = queue_arn.ends_with(".fifo");
    if fifo && batch > 10 {
        return Err(invalid(
            "BatchSize must be between 1 and 10 for FIFO queues.",
        ));
    }
    if fifo && window > 0 {
        return Err(invalid("Batching window is not supported for FIFO queues"));
    }
    if batch > 10 && window < 1 {
        return Err(invalid(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10",
        ));
    }
    Ok(())
}

pub(crate) async fn create(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let batch = int_in(input, "BatchSize", 1, 10_000)?;
    let window = int_in(input, "MaximumBatchingWindowInSeconds", 0, 300)?;
    let types = response_types(input)?.unwrap_or_default();
    let scaling = scaling(input)?;
    check_filters(input)?;
    let source = str_of(input, "EventSourceArn")
        .unwrap_or_default()
        .to_string();
    if source.is_empty() {
        return Err(invalid(
            "Unrecognized event source, must be kinesis, dynamodb stream or sqs.",
        ));
    }
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        None,
    )
    .await?;
    validate_event_source(inner, &source)?;
    if input.get("StartingPosition").is_some() {
        return Err(invalid(
            "StartingPosition is not valid for SQS event sources.",
        ));
    }
    let batch = batch.unwrap_or(10);
    let window = window.unwrap_or(0);
    check_batching(&source, batch, window)?;
    let function_arn = t.arn();
    for m in all(inner, &t.scope)? {
        if m.event_source_arn == source && m.function_arn == function_arn {
            return Err(conflict(format!(
                "An event source mapping with SQS arn (\" {source} \") and function (\" {} \") already exists. Please update or delete the existing mapping with UUID {}",
                t.name, m.uuid
            )));
        }
    }
    let enabled = input
        .get("Enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let m = Mapping {
        v: 1,
        uuid: uuid::Uuid::new_v4().to_string(),
        account: t.scope.account.clone(),
        region: t.scope.region.clone(),
        function_name: t.name.clone(),
        qualifier: t.qualifier.clone(),
        function_arn,
        event_source_arn: source,
        batch_size: batch,
        window_s: window,
        enabled,
        state: "Creating".into(),
        state_reason: "USER_INITIATED".into(),
        response_types: types,
        scaling,
        filter_criteria: input.get("FilterCriteria").cloned(),
        last_modified: now_secs(),
    };
    save(inner, &m)?;
    if enabled {
        start_poller(inner, &m);
    }
    settle(inner, m.scope(), m.uuid.clone(), None);
    Ok(m.output())
}

fn uuid_of(input: &Value) -> String {
    str_of(input, "UUID").unwrap_or_default().to_string()
}

pub(crate) fn get(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let scope = Scope::new(&ctx.account, &ctx.region);
    load(inner, &scope, &uuid_of(input))?
        .map(|m| m.output())
        .ok_or_else(resource_not_found)
}

pub(crate) async fn update(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let batch = int_in(input, "BatchSize", 1, 10_000)?;
    let window = int_in(input, "MaximumBatchingWindowInSeconds", 0, 300)?;
    let types = response_types(input)?;
    let scaling = scaling(input)?;
    check_filters(input)?;
    let scope = Scope::new(&ctx.account, &ctx.region);
    let mut m = load(inner, &scope, &uuid_of(input))?.ok_or_else(resource_not_found)?;
    if m.state == "Deleting" {
        return Err(ApiError::new(
            400,
            "ResourceInUseException",
            format!(
                "Cannot update the event source mapping {} because it is being deleted.",
                m.uuid
            ),
        ));
    }
    if let Some(f) = str_of(input, "FunctionName") {
        let t = target(inner, ctx, f, None).await?;
        m.function_name = t.name.clone();
        m.qualifier = t.qualifier.clone();
        m.function_arn = t.arn();
    }
    let new_batch = batch.unwrap_or(m.batch_size);
    let new_window = window.unwrap_or(m.window_s);
    check_batching(&m.event_source_arn, new_batch, new_window)?;
    m.batch_size = new_batch;
    m.window_s = new_window;
    if let Some(t) = types {
        m.response_types = t;
    }
    if scaling.is_some() {
        m.scaling = scaling;
    }
    if let Some(f) = input.get("FilterCriteria") {
        m.filter_criteria = Some(f.clone());
    }
    let was = m.enabled;
    let enabled = input.get("Enabled").and_then(Value::as_bool).unwrap_or(was);
    m.enabled = enabled;
    m.state = match (was, enabled) {
        (false, true) => "Enabling",
        (true, false) => "Disabling",
        _ => "Updating",
    }
    .into();
    m.state_reason = "USER_INITIATED".into();
    m.last_modified = now_secs();
    save(inner, &m)?;
    let wait = if enabled {
        start_poller(inner, &m);
        None
    } else {
        stop_poller(inner, &m.uuid)
    };
    settle(inner, scope, m.uuid.clone(), wait);
    Ok(m.output())
}

pub(crate) fn delete(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let scope = Scope::new(&ctx.account, &ctx.region);
    let mut m = load(inner, &scope, &uuid_of(input))?.ok_or_else(resource_not_found)?;
    m.state = "Deleting".into();
    m.state_reason = "USER_INITIATED".into();
    save(inner, &m)?;
    let wait = stop_poller(inner, &m.uuid);
    settle(inner, scope, m.uuid.clone(), wait);
    Ok(m.output())
}

pub(crate) async fn list(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let max = usize::try_from(int_in(input, "MaxItems", 1, 10_000)?.unwrap_or(100)).unwrap_or(100);
    let scope = Scope::new(&ctx.account, &ctx.region);
    let function = match str_of(input, "FunctionName") {
        Some(f) => {
            let (_, qualifier) = split_function_name(f);
            let t = target(inner, ctx, f, None).await?;
            Some((t.name, qualifier))
        }
        None => None,
    };
    let source = str_of(input, "EventSourceArn");
    let page_scope = "lambda:ListEventSourceMappings";
    let after = match str_of(input, "Marker") {
        Some(m) => {
            Some(fc_types::page::decode(page_scope, m).map_err(|_| invalid("Invalid Marker"))?)
        }
        None => None,
    };
    let mut out = Vec::new();
    let mut next = None;
    for m in all(inner, &scope)? {
        if after.as_deref().is_some_and(|a| m.uuid.as_str() <= a) {
            continue;
        }
        if let Some((name, qualifier)) = &function {
            if &m.function_name != name || (qualifier.is_some() && &m.qualifier != qualifier) {
                continue;
            }
        }
        if source.is_some_and(|s| s != m.event_source_arn) {
            continue;
        }
        if out.len() == max {
            next = out
                .last()
                .map(|o: &Value| o["UUID"].as_str().unwrap_or_default().to_string());
            break;
        }
        out.push(m.output());
    }
    let mut o = json!({"EventSourceMappings": out});
    if let Some(n) = next {
        o["NextMarker"] = json!(fc_types::page::encode(page_scope, &n));
    }
    Ok(o)
}

/// Deletes the mappings of a deleted function (or of one qualifier of it).
pub(crate) fn forget(inner: &Arc<Inner>, scope: &Scope, name: &str, qualifier: Option<&str>) {
    let mappings = match all(inner, scope) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "event source mappings not read");
            return;
        }
    };
    for m in mappings {
        if m.function_name != name || (qualifier.is_some() && m.qualifier.as_deref() != qualifier) {
            continue;
        }
        let wait = stop_poller(inner, &m.uuid);
        let mut m = m;
        m.state = "Deleting".into();
        m.state_reason = "USER_INITIATED".into();
        if let Err(e) = save(inner, &m) {
            tracing::warn!(error = %e, "event source mapping not marked deleted");
        }
        settle(inner, scope.clone(), m.uuid.clone(), wait);
    }
}

/// Resumes pollers of enabled mappings and finishes interrupted transitions.
pub(crate) fn start(inner: &Arc<Inner>) {
    let scopes = match inner.deps.store.scopes(tables::MAPPINGS) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "event source mappings not read");
            return;
        }
    };
    for scope in scopes {
        let Ok(mappings) = all(inner, &scope) else {
            continue;
        };
        for m in mappings {
            if m.enabled && m.state != "Deleting" {
                start_poller(inner, &m);
            }
            settle(inner, scope.clone(), m.uuid.clone(), None);
        }
    }
}

fn start_poller(inner: &Arc<Inner>, m: &Mapping) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Ok(mut pollers) = inner.triggers.pollers.lock() else {
        return;
    };
    if pollers
        .get(&m.uuid)
        .is_some_and(|p| p.tasks.iter().any(|t| !t.is_finished()))
    {
        return;
    }
    let (tx, rx) = watch::channel(false);
    let n = m
        .scaling
        .as_ref()
        .and_then(|s| s.get("MaximumConcurrency"))
        .and_then(Value::as_i64)
        .unwrap_or(POLLERS)
        .clamp(1, POLLERS);
    let tasks = (0..n)
        .map(|_| handle.spawn(poll(inner.clone(), m.scope(), m.uuid.clone(), rx.clone())))
        .collect();
    pollers.insert(m.uuid.clone(), Poller { stop: tx, tasks });
}

/// Signals the pollers to stop; returns their tasks to wait for.
fn stop_poller(inner: &Arc<Inner>, uuid: &str) -> Option<Vec<tokio::task::JoinHandle<()>>> {
    let p = inner.triggers.pollers.lock().ok()?.remove(uuid)?;
    let _ = p.stop.send(true);
    Some(p.tasks)
}

/// Moves a mapping from its transitional state to the final one (after its poller stopped,
/// when it had to).
fn settle(
    inner: &Arc<Inner>,
    scope: Scope,
    uuid: String,
    wait: Option<Vec<tokio::task::JoinHandle<()>>>,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let inner = inner.clone();
    handle.spawn(async move {
        match wait {
            Some(tasks) => {
                for t in tasks {
                    let _ = t.await;
                }
            }
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        let Ok(Some(mut m)) = load(&inner, &scope, &uuid) else {
            return;
        };
        if m.state == "Deleting" {
            if let Err(e) = inner.deps.store.delete(&scope, tables::MAPPINGS, &uuid) {
                tracing::warn!(error = %e, "event source mapping not deleted");
            }
            return;
        }
        let fin = if m.enabled { "Enabled" } else { "Disabled" };
        let transitional = matches!(
            m.state.as_str(),
            "Creating" | "Enabling" | "Disabling" | "Updating"
        );
        if transitional && !(m.state == "Disabling" && m.enabled) {
            m.state = fin.into();
            if let Err(e) = save(&inner, &m) {
                tracing::warn!(error = %e, "event source mapping state not saved");
            }
        }
    });
}

/// Calls SQS unless told to stop first (None = stopped).
async fn sqs_call(
    inner: &Inner,
    ctx: &RequestContext,
    input: Value,
    stop: &mut watch::Receiver<bool>,
) -> Option<Result<Value, ApiError>> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        r = inner.deps.sqs.call(ctx, input) => Some(r),
        _ = stop.changed() => None,
    }
}

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}

async fn poll(inner: Arc<Inner>, scope: Scope, uuid: String, mut stop: watch::Receiver<bool>) {
    let mut errors: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let m = match load(&inner, &scope, &uuid) {
            Ok(Some(m)) if m.enabled && m.state != "Deleting" => m,
            Ok(_) => return,
            Err(_) => {
                if !pause(Duration::from_secs(1), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let Some((q_region, q_account, q_name)) = queue_parts(&m.event_source_arn) else {
            return;
        };
        let url = format!("http://localhost/{q_account}/{q_name}");
        let ctx = RequestContext::for_account(&q_account, &q_region, "sqs", "ReceiveMessage");
        let batch_size = usize::try_from(m.batch_size).unwrap_or(10).max(1);
        let receive = |n: usize, wait: u64| {
            json!({
                "QueueUrl": url,
                "MaxNumberOfMessages": n.clamp(1, 10),
                "WaitTimeSeconds": wait.min(20),
                "AttributeNames": ["All"],
                "MessageSystemAttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
            })
        };
        let mut batch: Vec<Value> = Vec::new();
        match sqs_call(&inner, &ctx, receive(batch_size, 20), &mut stop).await {
            None => return,
            Some(Ok(out)) => {
                errors = 0;
                batch.extend(messages(&out));
            }
            Some(Err(e)) => {
                errors += 1;
                tracing::warn!(mapping = %uuid, error = %e, "event source: ReceiveMessage failed");
                let backoff = Duration::from_millis((500u64 << errors.min(6)).min(30_000));
                if !pause(backoff, &mut stop).await {
                    return;
                }
                continue;
            }
        }
        if batch.is_empty() {
            continue;
        }
        if m.window_s > 0 {
            let deadline = now_ms() + m.window_s * 1000;
            while batch.len() < batch_size {
                let left = deadline - now_ms();
                if left <= 0 {
                    break;
                }
                let wait = u64::try_from(left / 1000).unwrap_or(0);
                match sqs_call(
                    &inner,
                    &ctx,
                    receive(batch_size - batch.len(), wait),
                    &mut stop,
                )
                .await
                {
                    None => break,
                    Some(Ok(out)) => {
                        let got = messages(&out);
                        if got.is_empty() && wait == 0 {
                            tokio::time::sleep(Duration::from_millis(
                                u64::try_from(left.min(100)).unwrap_or(100),
                            ))
                            .await;
                        }
                        batch.extend(got);
                    }
                    Some(Err(_)) => break,
                }
            }
        }
        deliver_batch(&inner, &m, &q_region, &url, &ctx, batch).await;
    }
}

fn messages(out: &Value) -> Vec<Value> {
    out.get("Messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Invokes the function with one batch and deletes what succeeded.
async fn deliver_batch(
    inner: &Arc<Inner>,
    m: &Mapping,
    region: &str,
    url: &str,
    ctx: &RequestContext,
    batch: Vec<Value>,
) {
    let filters = Filters::parse(m.filter_criteria.as_ref()).unwrap_or_default();
    let (batch, dropped): (Vec<Value>, Vec<Value>) = batch.into_iter().partition(|msg| {
        filters.matches(&filter::sqs_view(&sqs_record(
            msg,
            &m.event_source_arn,
            region,
        )))
    });
    // Records no filter matches are consumed without invoking the function, as AWS does.
    delete_messages(inner, m, url, ctx, &dropped.iter().collect::<Vec<_>>()).await;
    if batch.is_empty() {
        return;
    }
    let event = sqs_event(&batch, &m.event_source_arn, region);
    let spec = match inner
        .resolve(
            &m.account,
            &m.region,
            &m.function_name,
            m.qualifier.as_deref(),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(mapping = %m.uuid, error = %e, "event source: function not resolved");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    let req = InvokeRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        payload: event.to_string().into_bytes().into(),
        invoked_arn: m.function_arn.clone(),
        ..InvokeRequest::default()
    };
    let delete: Vec<&Value> = match inner.invoke(spec, req).await {
        Ok(r) if r.function_error.is_none() => {
            let report = m
                .response_types
                .iter()
                .any(|t| t == "ReportBatchItemFailures");
            successes(&batch, &r.payload, report).unwrap_or_default()
        }
        Ok(r) => {
            tracing::info!(mapping = %m.uuid, error = ?r.function_error, "event source: function failed; batch left for retry");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(mapping = %m.uuid, error = %e, "event source: invocation failed; batch left for retry");
            if e.status == 429 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Vec::new()
        }
    };
    delete_messages(inner, m, url, ctx, &delete).await;
}

/// `DeleteMessageBatch` in chunks of 10.
async fn delete_messages(
    inner: &Arc<Inner>,
    m: &Mapping,
    url: &str,
    ctx: &RequestContext,
    delete: &[&Value],
) {
    for chunk in delete.chunks(10) {
        let entries: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, msg)| json!({"Id": i.to_string(), "ReceiptHandle": msg["ReceiptHandle"]}))
            .collect();
        let mut dctx = ctx.clone();
        dctx.operation = "DeleteMessageBatch".into();
        let r = inner
            .deps
            .sqs
            .call(&dctx, json!({"QueueUrl": url, "Entries": entries}))
            .await;
        if let Err(e) = r {
            tracing::warn!(mapping = %m.uuid, error = %e, "event source: DeleteMessageBatch failed");
        }
    }
}

/// Which messages of a successful invocation to delete: all of them, or (with
/// `ReportBatchItemFailures`) all but the reported ones. None = treat the batch as failed (an
/// unreadable report, as AWS does).
pub(crate) fn successes<'a>(
    batch: &'a [Value],
    response: &[u8],
    report: bool,
) -> Option<Vec<&'a Value>> {
    if !report {
        return Some(batch.iter().collect());
    }
    let text = String::from_utf8_lossy(response);
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Some(batch.iter().collect());
    }
    let v: Value = serde_json::from_str(text).ok()?;
    let failures = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(batch.iter().collect()),
        Some(Value::Array(a)) => a,
        Some(_) => return None,
    };
    let ids: HashSet<&str> = batch
        .iter()
        .filter_map(|m| m.get("MessageId").and_then(Value::as_str))
        .collect();
    let mut failed = HashSet::new();
    for f in failures {
        let id = f.get("itemIdentifier").and_then(Value::as_str)?;
        if id.is_empty() || !ids.contains(id) {
            return None;
        }
        failed.insert(id);
    }
    Some(
        batch
            .iter()
            .filter(|m| {
                m.get("MessageId")
                    .and_then(Value::as_str)
                    .is_some_and(|id| !failed.contains(id))
            })
            .collect(),
    )
}

/// The SQS event Lambda hands to functions.
pub(crate) fn sqs_event(batch: &[Value], source_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|msg| sqs_record(msg, source_arn, region))
        .collect();
    json!({ "Records": records })
}

/// One record of the SQS event, from one `ReceiveMessage` message.
pub(crate) fn sqs_record(msg: &Value, source_arn: &str, region: &str) -> Value {
    let mut attrs = Map::new();
    if let Some(a) = msg.get("Attributes").and_then(Value::as_object) {
        for (k, v) in a {
            attrs.insert(k.clone(), v.clone());
        }
    }
    let mut mattrs = Map::new();
    if let Some(a) = msg.get("MessageAttributes").and_then(Value::as_object) {
        for (k, v) in a {
            let mut o = json!({
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": v.get("DataType").cloned().unwrap_or(Value::Null),
            });
            if let Some(s) = v.get("StringValue") {
                o["stringValue"] = s.clone();
            }
            if let Some(b) = v.get("BinaryValue") {
                o["binaryValue"] = b.clone();
            }
            mattrs.insert(k.clone(), o);
        }
    }
    let mut r = json!({
        "messageId": msg.get("MessageId").cloned().unwrap_or(Value::Null),
        "receiptHandle": msg.get("ReceiptHandle").cloned().unwrap_or(Value::Null),
        "body": msg.get("Body").cloned().unwrap_or(json!("")),
        "attributes": attrs,
        "messageAttributes": mattrs,
        "md5OfBody": msg.get("MD5OfBody").cloned().unwrap_or(Value::Null),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    });
    if let Some(md5) = msg.get("MD5OfMessageAttributes") {
        r["md5OfMessageAttributes"] = md5.clone();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Value {
        json!({
            "MessageId": id,
            "ReceiptHandle": format!("h-{id}"),
            "MD5OfBody": "abc",
            "Body": format!("body {id}"),
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                           "SenderId": "AIDA", "ApproximateFirstReceiveTimestamp": "1700000000001"},
            "MessageAttributes": {"color": {"DataType": "String", "StringValue": "red"}},
        })
    }

    #[test]
    fn sqs_event_shape() {
        let ev = sqs_event(
            &[msg("1"), msg("2")],
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );
        let r = &ev["Records"][0];
        assert_eq!(ev["Records"].as_array().unwrap().len(), 2);
        assert_eq!(r["messageId"], "1");
        assert_eq!(r["receiptHandle"], "h-1");
        assert_eq!(r["body"], "body 1");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["attributes"]["SenderId"], "AIDA");
        assert_eq!(r["messageAttributes"]["color"]["stringValue"], "red");
        assert_eq!(r["messageAttributes"]["color"]["dataType"], "String");
        assert_eq!(
            r["messageAttributes"]["color"]["stringListValues"],
            json!([])
        );
        assert_eq!(r["md5OfBody"], "abc");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:123456789012:q");
        assert_eq!(r["awsRegion"], "us-east-1");
    }

    fn ids(v: Option<Vec<&Value>>) -> Option<Vec<String>> {
        v.map(|l| {
            l.iter()
                .map(|m| m["MessageId"].as_str().unwrap().to_string())
                .collect()
        })
    }

    #[test]
    fn partial_batch_failures() {
        let b = [msg("1"), msg("2"), msg("3")];
        assert_eq!(ids(successes(&b, b"", true)).unwrap().len(), 3);
        assert_eq!(ids(successes(&b, b"null", true)).unwrap().len(), 3);
        assert_eq!(
            ids(successes(&b, br#"{"batchItemFailures": []}"#, true))
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            ids(successes(
                &b,
                br#"{"batchItemFailures": [{"itemIdentifier": "2"}]}"#,
                true
            )),
            Some(vec!["1".to_string(), "3".to_string()])
        );
        // Unknown ids, empty ids and unreadable reports fail the whole batch.
        assert_eq!(
            ids(successes(
                &b,
                br#"{"batchItemFailures": [{"itemIdentifier": "9"}]}"#,
                true
            )),
            None
        );
        assert_eq!(
            ids(successes(
                &b,
                br#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
                true
            )),
            None
        );
        assert_eq!(ids(successes(&b, b"{oops", true)), None);
        // Without ReportBatchItemFailures the response is ignored.
        assert_eq!(
            ids(successes(
                &b,
                br#"{"batchItemFailures": [{"itemIdentifier": "2"}]}"#,
                false
            ))
            .unwrap()
            .len(),
            3
        );
    }

    #[test]
    fn batching_rules() {
        let q = "arn:aws:sqs:us-east-1:123456789012:q";
        assert!(check_batching(q, 10, 0).is_ok());
        assert!(check_batching(q, 100, 0).is_err());
        assert!(check_batching(q, 100, 1).is_ok());
        assert!(check_batching("arn:aws:sqs:us-east-1:123456789012:q.fifo", 11, 0).is_err());
    }

    #[test]
    fn mapping_output() {
        let m = Mapping {
            uuid: "0b4f2f8e-6a7c-4c55-9e0e-111111111111".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            event_source_arn: "arn:aws:sqs:us-east-1:123456789012:q".into(),
            batch_size: 10,
            state: "Creating".into(),
            ..Mapping::default()
        };
        let o = m.output();
        assert_eq!(o["State"], "Creating");
        assert_eq!(
            o["EventSourceMappingArn"],
            "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:0b4f2f8e-6a7c-4c55-9e0e-111111111111"
        );
        assert_eq!(o["BatchSize"], 10);
    }
}
