//! Amazon SQS: standard and FIFO queues with long polling, visibility timeouts, dead-letter
//! queues, FIFO ordering and deduplication, retention that really expires, and durable
//! messages (every acknowledged send, receive and delete is in the store before the answer).
//!
//! Layout: `records` (persisted types and keys), `state` (the in-memory index of one queue),
//! `attributes` (message attribute validation and MD5s), `commit` (group commit of store
//! writes), `queues` (queue operations), `messages` (message operations), `moves` (message
//! move tasks: dead-letter queue redrive).
//!
//! The store is the source of truth; each queue's in-memory index is built from it the first
//! time the queue is used after start-up and kept in step by every operation (write to the
//! store first, then update the index). Long polling waits on a `tokio::sync::Notify` per queue.
//!
//! Background work: [`Sqs::new`] spawns a task on the current tokio runtime (when there is
//! one) that calls [`Sqs::sweep`] every second: it drops messages past the retention period and
//! FIFO deduplication entries past their 5-minute interval, and it drops the index of any
//! queue whose stored record vanished or changed behind the service's back (state reset or
//! import; [`Sqs::forget_all`] does that at once). The task holds a weak reference and ends
//! when the service is dropped.

// `ApiError` is the crate-wide error type; its size is not this module's choice.
#![allow(clippy::result_large_err)]

mod attributes;
mod commit;
mod messages;
mod moves;
mod queues;
mod records;
mod state;
#[cfg(test)]
mod tests;

use crate::bus::QueueSink;
use crate::common::store_error;
use crate::{RequestContext, Service};
use async_trait::async_trait;
use base64::Engine as _;
use commit::Committer;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt, Write};
use records::{
    children_prefix, DedupRecord, MessageRecord, MessageState, QueueRecord, DEDUP, MESSAGES,
    QUEUES, SEP, STATES,
};
use serde_json::Value;
use state::{Dedup, Msg, QueueState};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;

/// Records are scanned in pages of this many.
const CHUNK: usize = 1000;

/// One queue: its index, the notification long polls wait on, and the lock that orders FIFO
/// sends.
pub(crate) struct Queue {
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub state: Mutex<QueueState>,
    pub notify: Notify,
    /// Held across "assign sequence number, persist, index" of FIFO sends so that sequence
    /// numbers, deduplication and delivery order agree.
    pub send_lock: tokio::sync::Mutex<()>,
}

impl Queue {
    pub fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn scope(&self) -> Scope {
        Scope::new(&self.account, &self.region)
    }
}

type QueueKey = (String, String, String);

/// The SQS service.
pub struct Sqs {
    store: Arc<dyn Store>,
    committer: Committer,
    queues: Mutex<HashMap<QueueKey, Arc<Queue>>>,
    /// Serializes queue-level changes (create, delete, attributes, tags) and index loads.
    admin: Mutex<()>,
    /// Finished message move tasks (in memory).
    tasks: Mutex<Vec<moves::MoveTask>>,
}

impl Sqs {
    /// The service over `store`. When called inside a tokio runtime, also starts the
    /// once-a-second [`Sqs::sweep`] task.
    pub fn new(store: Arc<dyn Store>) -> Arc<Sqs> {
        let sqs = Arc::new(Sqs {
            committer: Committer::new(store.clone()),
            store,
            queues: Mutex::new(HashMap::new()),
            admin: Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Sqs> = Arc::downgrade(&sqs);
            handle.spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(sqs) = weak.upgrade() else { break };
                    if let Err(e) = sqs.sweep(now_ms()).await {
                        tracing::warn!(error = %e, "sqs sweep failed");
                    }
                }
            });
        }
        sqs
    }

    fn admin_lock(&self) -> MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<QueueKey, Arc<Queue>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue, loading its index from the store on first use; `None` if it does not exist.
    pub(crate) fn queue(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Arc<Queue>>, ApiError> {
        let key = (account.to_string(), region.to_string(), name.to_string());
        if let Some(q) = self.map().get(&key) {
            return Ok(Some(q.clone()));
        }
        let _admin = self.admin_lock();
        if let Some(q) = self.map().get(&key) {
            return Ok(Some(q.clone()));
        }
        let loaded = self.load(account, region, name)?;
        if let Some(q) = &loaded {
            self.map().insert(key, q.clone());
        }
        Ok(loaded)
    }

    /// The queue or `QueueDoesNotExist`.
    pub(crate) fn require(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Arc<Queue>, ApiError> {
        self.queue(account, region, name)?
            .ok_or_else(queue_not_found)
    }

    /// Build a queue's index from the store.
    fn load(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Arc<Queue>>, ApiError> {
        let scope = Scope::new(account, region);
        let rec: Option<QueueRecord> = self
            .store
            .get_json(&scope, QUEUES, name)
            .map_err(store_error)?;
        let Some(rec) = rec else { return Ok(None) };
        let prefix = children_prefix(name);
        let mut st = QueueState::new(rec);
        let mut states: HashMap<String, MessageState> = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = self
                .store
                .scan_json::<MessageState>(&scope, STATES, &prefix, after.as_deref(), CHUNK)
                .map_err(store_error)?;
            after = page.last().map(|(k, _)| k.clone());
            states.extend(page);
            if !more {
                break;
            }
        }
        let now = now_ms();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = self
                .store
                .scan_json::<MessageRecord>(&scope, MESSAGES, &prefix, after.as_deref(), CHUNK)
                .map_err(store_error)?;
            after = page.last().map(|(k, _)| k.clone());
            for (k, rec) in page {
                let st_rec = states.remove(&k).unwrap_or(MessageState {
                    v: 1,
                    visible_at_ms: rec.sent_ms,
                    ..MessageState::default()
                });
                st.insert(
                    Msg {
                        rec: Arc::new(rec),
                        st: st_rec,
                    },
                    now,
                );
            }
            if !more {
                break;
            }
        }
        let mut after: Option<String> = None;
        loop {
            let (page, more) = self
                .store
                .scan_json::<DedupRecord>(&scope, DEDUP, &prefix, after.as_deref(), CHUNK)
                .map_err(store_error)?;
            after = page.last().map(|(k, _)| k.clone());
            for (k, d) in page {
                if d.expires_ms > now {
                    let short = k[prefix.len()..].to_string();
                    st.last_seq = st.last_seq.max(d.seq);
                    st.dedup.insert(
                        short,
                        Dedup {
                            expires_ms: d.expires_ms,
                            message_id: d.message_id,
                            seq: d.seq,
                        },
                    );
                }
            }
            if !more {
                break;
            }
        }
        Ok(Some(Arc::new(Queue {
            account: account.to_string(),
            region: region.to_string(),
            name: name.to_string(),
            arn: queue_arn(region, account, name),
            state: Mutex::new(st),
            notify: Notify::new(),
            send_lock: tokio::sync::Mutex::new(()),
        })))
    }

    /// Forget a queue's index (after it was deleted).
    fn unload(&self, account: &str, region: &str, name: &str) {
        let key = (account.to_string(), region.to_string(), name.to_string());
        if let Some(q) = self.map().remove(&key) {
            q.lock().deleted = true;
            q.notify.notify_waiters();
        }
    }

    /// Forget every queue index; each is rebuilt from the store when next used. For callers
    /// that replace the store's contents (state reset or import).
    pub fn forget_all(&self) {
        let _admin = self.admin_lock();
        let all: Vec<Arc<Queue>> = self.map().drain().map(|(_, q)| q).collect();
        for q in all {
            q.lock().deleted = true;
            q.notify.notify_waiters();
        }
    }

    /// Drop the indexes of queues whose stored record is gone or changed behind this
    /// service's back (a state reset or import), so they are rebuilt from the store.
    fn drop_stale(&self) -> Result<(), ApiError> {
        let _admin = self.admin_lock();
        let queues: Vec<Arc<Queue>> = self.map().values().cloned().collect();
        for q in queues {
            let stored: Option<QueueRecord> = self
                .store
                .get_json(&q.scope(), QUEUES, &q.name)
                .map_err(store_error)?;
            let same = stored.as_ref() == Some(&q.lock().rec);
            if !same {
                self.unload(&q.account, &q.region, &q.name);
            }
        }
        Ok(())
    }

    /// Make writes durable (group commit).
    pub(crate) async fn commit(&self, writes: Vec<Write>) -> Result<(), ApiError> {
        self.committer.commit(writes).await.map_err(|e| {
            tracing::error!(error = %e, "sqs store write failed");
            ApiError::internal(format!("state store failure: {e}"))
        })
    }

    /// Background bookkeeping for the queues in memory: drop messages past their retention
    /// period and FIFO deduplication entries past their interval. Returns how many messages
    /// were dropped.
    pub async fn sweep(&self, now_ms: i64) -> Result<usize, ApiError> {
        self.drop_stale()?;
        let queues: Vec<Arc<Queue>> = self.map().values().cloned().collect();
        let mut dropped = 0;
        for q in queues {
            let mut writes = Vec::new();
            {
                let mut st = q.lock();
                if st.deleted {
                    continue;
                }
                st.promote(now_ms);
                let retention = attr_i64(&st.rec, "MessageRetentionPeriod", 345_600) * 1000;
                for seq in st.expired(now_ms, retention) {
                    if st.remove(seq).is_some() {
                        dropped += 1;
                        writes.extend(delete_message_writes(&q, seq));
                    }
                }
                for key in st.expired_dedup(now_ms) {
                    st.dedup.remove(&key);
                    writes.push(Write::Delete {
                        scope: q.scope(),
                        table: DEDUP.into(),
                        key: records::dedup_key(&q.name, &key),
                    });
                }
            }
            self.commit(writes).await?;
        }
        Ok(dropped)
    }
}

#[async_trait]
impl Service for Sqs {
    fn name(&self) -> &'static str {
        "sqs"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        match ctx.operation.as_str() {
            "CreateQueue" => self.create_queue(ctx, &input),
            "GetQueueUrl" => self.get_queue_url(ctx, &input),
            "ListQueues" => self.list_queues(ctx, &input),
            "DeleteQueue" => self.delete_queue(ctx, &input),
            "PurgeQueue" => self.purge_queue(ctx, &input).await,
            "GetQueueAttributes" => self.get_queue_attributes(ctx, &input),
            "SetQueueAttributes" => self.set_queue_attributes(ctx, &input),
            "TagQueue" => self.tag_queue(ctx, &input),
            "UntagQueue" => self.untag_queue(ctx, &input),
            "ListQueueTags" => self.list_queue_tags(ctx, &input),
            "ListDeadLetterSourceQueues" => self.list_dead_letter_source_queues(ctx, &input),
            "AddPermission" => self.add_permission(ctx, &input),
            "RemovePermission" => self.remove_permission(ctx, &input),
            "SendMessage" => self.send_message(ctx, &input).await,
            "SendMessageBatch" => self.send_message_batch(ctx, &input).await,
            "ReceiveMessage" => self.receive_message(ctx, &input).await,
            "DeleteMessage" => self.delete_message(ctx, &input).await,
            "DeleteMessageBatch" => self.delete_message_batch(ctx, &input).await,
            "ChangeMessageVisibility" => self.change_message_visibility(ctx, &input).await,
            "ChangeMessageVisibilityBatch" => {
                self.change_message_visibility_batch(ctx, &input).await
            }
            "StartMessageMoveTask" => self.start_message_move_task(ctx, &input).await,
            "ListMessageMoveTasks" => self.list_message_move_tasks(ctx, &input),
            "CancelMessageMoveTask" => self.cancel_message_move_task(ctx, &input),
            op => Err(ApiError::not_implemented("sqs", op)),
        }
    }
}

impl QueueSink for Sqs {
    fn queue_exists(&self, queue_arn: &str) -> bool {
        parse_queue_arn(queue_arn)
            .and_then(|(region, account, name)| self.queue(&account, &region, &name).ok().flatten())
            .is_some()
    }

    fn send_message(&self, queue_arn: &str, body: &str) -> Result<(), ApiError> {
        let (region, account, name) = parse_queue_arn(queue_arn).ok_or_else(queue_not_found)?;
        let q = self.require(&account, &region, &name)?;
        self.send_internal(&q, body)
    }
}

// ---- names, URLs, ARNs ----

pub(crate) fn queue_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

/// `(region, account, name)` of a queue ARN.
pub(crate) fn parse_queue_arn(arn: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5].is_empty() {
        return None;
    }
    Some((
        parts[3].to_string(),
        parts[4].to_string(),
        parts[5].to_string(),
    ))
}

pub(crate) fn queue_url(ctx: &RequestContext, account: &str, name: &str) -> String {
    format!("{}/{account}/{name}", ctx.endpoint.trim_end_matches('/'))
}

/// Whether `s` looks like a region name (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
fn looks_like_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// The region a queue URL's host names (`sqs.<region>.amazonaws.com`,
/// `<region>.queue.amazonaws.com`, LocalStack's forms), if any.
fn region_of_host(host: &str) -> Option<String> {
    let host = host.split(':').next().unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() >= 3 && labels[0] == "sqs" && looks_like_region(labels[1]) {
        return Some(labels[1].to_string());
    }
    if labels.len() >= 3 && labels[1] == "queue" && looks_like_region(labels[0]) {
        return Some(labels[0].to_string());
    }
    None
}

/// `(account, region, name)` a queue URL addresses, whatever host it names: the path is
/// `/<account>/<name>`. A bare queue name addresses the caller's own queue.
pub(crate) fn parse_queue_url(
    ctx: &RequestContext,
    url: &str,
) -> Result<(String, String, String), ApiError> {
    let url = url.trim();
    let (host, path) = match url.split_once("://") {
        Some((_, rest)) => match rest.split_once('/') {
            Some((h, p)) => (Some(h), p),
            None => (Some(rest), ""),
        },
        None => (None, url),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let region = host
        .and_then(region_of_host)
        .unwrap_or_else(|| ctx.region.clone());
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    match segs.as_slice() {
        [account, name] => Ok((decode(account), region, decode(name))),
        [name] if host.is_none() => Ok((ctx.account.clone(), region, decode(name))),
        _ => Err(ApiError::client(
            "InvalidAddress",
            format!("The address {url} is not valid for this endpoint."),
        )),
    }
}

/// The queue a request's `QueueUrl` names.
pub(crate) fn queue_of(
    sqs: &Sqs,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Arc<Queue>, ApiError> {
    let url = req_str(input, "QueueUrl")?;
    let (account, region, name) = parse_queue_url(ctx, url)?;
    if name.contains(SEP) {
        return Err(queue_not_found());
    }
    sqs.require(&account, &region, &name)
}

// ---- receipt handles ----

/// A receipt handle: which message of which queue, and the nonce of that receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handle {
    pub account: String,
    pub region: String,
    pub queue: String,
    pub seq: u64,
    pub nonce: String,
}

impl Handle {
    pub fn encode(&self) -> String {
        let raw = format!(
            "{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
            self.account, self.region, self.queue, self.seq, self.nonce
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Option<Handle> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let parts: Vec<&str> = text.split(SEP).collect();
        if parts.len() != 5 {
            return None;
        }
        Some(Handle {
            account: parts[0].to_string(),
            region: parts[1].to_string(),
            queue: parts[2].to_string(),
            seq: parts[3].parse().ok()?,
            nonce: parts[4].to_string(),
        })
    }
}

// ---- input helpers ----

pub(crate) fn req_str<'a>(input: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    input
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(name))
}

pub(crate) fn opt_str<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

pub(crate) fn opt_i64(input: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid_param(format!("Value {n} for parameter {name} is invalid."))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid_param(format!("Value {s} for parameter {name} is invalid."))),
        Some(v) => Err(invalid_param(format!(
            "Value {v} for parameter {name} is invalid."
        ))),
    }
}

/// A string-list member (absent: empty).
pub(crate) fn str_list(input: &Value, name: &str) -> Vec<String> {
    input
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A queue attribute as an integer (stored attributes are validated, so the default only
/// covers records written before an attribute existed).
pub(crate) fn attr_i64(rec: &QueueRecord, name: &str, default: i64) -> i64 {
    rec.attrs
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn attr_bool(rec: &QueueRecord, name: &str) -> bool {
    rec.attrs.get(name).is_some_and(|v| v == "true")
}

pub(crate) fn is_fifo(rec: &QueueRecord) -> bool {
    attr_bool(rec, "FifoQueue")
}

// ---- time ----

pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn now_ns() -> u64 {
    let now = time::OffsetDateTime::now_utc();
    u64::try_from(now.unix_timestamp_nanos()).unwrap_or(0)
}

// ---- writes ----

pub(crate) fn delete_message_writes(q: &Queue, seq: u64) -> [Write; 2] {
    let key = records::message_key(&q.name, seq);
    [
        Write::Delete {
            scope: q.scope(),
            table: MESSAGES.into(),
            key: key.clone(),
        },
        Write::Delete {
            scope: q.scope(),
            table: STATES.into(),
            key,
        },
    ]
}

pub(crate) fn state_write(q: &Queue, seq: u64, st: &MessageState) -> Result<Write, ApiError> {
    Ok(Write::Put {
        scope: q.scope(),
        table: STATES.into(),
        key: records::message_key(&q.name, seq),
        value: fc_store::to_json_bytes(st).map_err(store_error)?,
    })
}

// ---- errors ----

pub(crate) fn queue_not_found() -> ApiError {
    ApiError::client("QueueDoesNotExist", "The specified queue does not exist.")
}

pub(crate) fn invalid_param(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterValue", msg)
}

pub(crate) fn missing(name: &str) -> ApiError {
    ApiError::client(
        "MissingParameter",
        format!("The request must contain the parameter {name}."),
    )
}
