//! Message operations: send (+batch), receive with long polling, delete (+batch), change
//! visibility (+batch), dead-letter moves, and the internal send behind `QueueSink`.

use super::attributes::{
    decode_value, invalid_contents, md5_hex, md5_of_attributes, md5_of_trace, md5_of_value_map,
    valid_chars, validate_system_attributes, validate_user_attributes, AttrValue,
};
use super::records::{
    dedup_key, message_key, DedupRecord, MessageRecord, MessageState, DEDUP, MESSAGES, STATES,
};
use super::state::{Dedup, HandleFault, Msg, ReceiveRules};
use super::{
    attr_bool, attr_i64, delete_message_writes, invalid_param, is_fifo, missing, now_ms, now_ns,
    opt_i64, opt_str, queue_not_found, queue_of, req_str, state_write, str_list, Handle, Queue,
    Sqs,
};
use crate::common::store_error;
use crate::RequestContext;
use fc_protocol::ApiError;
use fc_store::Write;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// FIFO deduplication interval.
const DEDUP_MS: i64 = 5 * 60 * 1000;
const MAX_BATCH: usize = 10;

/// Message system attribute names `ReceiveMessage` accepts.
const SYSTEM_ATTRIBUTES: &[&str] = &[
    "All",
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
];

/// What a send needs to know about its queue.
#[derive(Debug, Clone)]
struct QueueView {
    fifo: bool,
    content_dedup: bool,
    group_scope: bool,
    max_size: usize,
    delay_s: i64,
}

impl QueueView {
    fn of(q: &Queue) -> Self {
        let st = q.lock();
        QueueView {
            fifo: is_fifo(&st.rec),
            content_dedup: attr_bool(&st.rec, "ContentBasedDeduplication"),
            group_scope: st.rec.attrs.get("DeduplicationScope").map(String::as_str)
                == Some("messageGroup"),
            max_size: usize::try_from(attr_i64(&st.rec, "MaximumMessageSize", 262_144))
                .unwrap_or(262_144),
            delay_s: attr_i64(&st.rec, "DelaySeconds", 0),
        }
    }
}

/// What staging a send produces: the answers, the new messages, their writes.
type Staged = (Vec<Sent>, Vec<Msg>, Vec<Write>);

/// A validated message, ready to enqueue.
#[derive(Debug, Clone)]
struct Prepared {
    body: String,
    md5_body: String,
    attrs: BTreeMap<String, Value>,
    md5_attrs: Option<String>,
    trace: Option<String>,
    md5_sys: Option<String>,
    delay_s: i64,
    group: Option<String>,
    dedup: Option<String>,
    size: usize,
}

/// The answer for one enqueued message.
#[derive(Debug, Clone)]
struct Sent {
    message_id: String,
    md5_body: String,
    md5_attrs: Option<String>,
    md5_sys: Option<String>,
    sequence: Option<u64>,
}

impl Sent {
    fn to_value(&self, id: Option<&str>) -> Value {
        let mut o = Map::new();
        if let Some(id) = id {
            o.insert("Id".into(), Value::from(id));
        }
        o.insert("MessageId".into(), Value::from(self.message_id.clone()));
        o.insert(
            "MD5OfMessageBody".into(),
            Value::from(self.md5_body.clone()),
        );
        if let Some(m) = &self.md5_attrs {
            o.insert("MD5OfMessageAttributes".into(), Value::from(m.clone()));
        }
        if let Some(m) = &self.md5_sys {
            o.insert(
                "MD5OfMessageSystemAttributes".into(),
                Value::from(m.clone()),
            );
        }
        if let Some(s) = self.sequence {
            o.insert("SequenceNumber".into(), Value::from(format!("{s:020}")));
        }
        Value::Object(o)
    }
}

fn fifo_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
}

fn not_for_queue_type(name: &str, value: impl std::fmt::Display) -> ApiError {
    invalid_param(format!(
        "Value {value} for parameter {name} is invalid. Reason: The request include parameter that is not valid for this queue type."
    ))
}

/// Validate one message (a `SendMessage` input or a batch entry).
fn prepare(view: &QueueView, entry: &Value) -> Result<Prepared, ApiError> {
    let body = match entry.get("MessageBody").and_then(Value::as_str) {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => return Err(missing("MessageBody")),
    };
    if !valid_chars(&body) {
        return Err(invalid_contents());
    }
    let (attrs, attr_size) = validate_user_attributes(entry.get("MessageAttributes"))?;
    let (trace, _sys_size) = validate_system_attributes(entry.get("MessageSystemAttributes"))?;
    let size = body.len() + attr_size;
    if size > view.max_size {
        return Err(invalid_param(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
            view.max_size
        )));
    }
    let delay = opt_i64(entry, "DelaySeconds")?;
    if let Some(d) = delay {
        if !(0..=900).contains(&d) {
            return Err(invalid_param(format!(
                "Value {d} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            )));
        }
        if view.fifo {
            return Err(not_for_queue_type("DelaySeconds", d));
        }
    }
    let group = opt_str(entry, "MessageGroupId").map(str::to_string);
    let mut dedup = opt_str(entry, "MessageDeduplicationId").map(str::to_string);
    if let Some(g) = &group {
        if !fifo_id_ok(g) {
            return Err(invalid_param(format!(
                "Value {g} for parameter MessageGroupId is invalid. Reason: MessageGroupId can only include alphanumeric and punctuation characters. 1 to 128 in length."
            )));
        }
    }
    if let Some(d) = &dedup {
        if !view.fifo {
            return Err(not_for_queue_type("MessageDeduplicationId", d));
        }
        if !fifo_id_ok(d) {
            return Err(invalid_param(format!(
                "Value {d} for parameter MessageDeduplicationId is invalid. Reason: MessageDeduplicationId can only include alphanumeric and punctuation characters. 1 to 128 in length."
            )));
        }
    }
    if view.fifo {
        if group.is_none() {
            return Err(missing("MessageGroupId"));
        }
        if dedup.is_none() {
            if !view.content_dedup {
                return Err(invalid_param(
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                ));
            }
            dedup = Some(hex::encode(Sha256::digest(body.as_bytes())));
        }
    }
    Ok(Prepared {
        md5_body: md5_hex(body.as_bytes()),
        md5_attrs: md5_of_value_map(&attrs),
        md5_sys: trace.as_deref().and_then(md5_of_trace),
        body,
        attrs,
        trace,
        delay_s: if view.fifo {
            view.delay_s
        } else {
            delay.unwrap_or(view.delay_s)
        },
        group,
        dedup,
        size,
    })
}

/// Validate the entry list of a batch request: present, at most ten, ids well-formed and
/// distinct.
fn batch_entries<'a>(input: &'a Value, kind: &str) -> Result<Vec<&'a Value>, ApiError> {
    let entries: Vec<&Value> = input
        .get("Entries")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if entries.is_empty() {
        return Err(ApiError::client(
            "EmptyBatchRequest",
            format!("There should be at least one {kind}RequestEntry in the request."),
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(ApiError::client(
            "TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for e in &entries {
        let id = e.get("Id").and_then(Value::as_str).unwrap_or("");
        if id.is_empty()
            || id.len() > 80
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ApiError::client(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(ApiError::client(
                "BatchEntryIdsNotDistinct",
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(entries)
}

fn failed_entry(id: &str, e: &ApiError) -> Value {
    json!({"Id": id, "SenderFault": e.sender_fault, "Code": e.code, "Message": e.message})
}

fn batch_output(ok: Vec<Value>, failed: Vec<Value>) -> Value {
    json!({"Successful": ok, "Failed": failed})
}

fn invalid_handle(h: &str) -> ApiError {
    ApiError::new(
        404,
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{h}\" is not a valid receipt handle."),
    )
}

fn expired_handle(h: &str) -> ApiError {
    invalid_param(format!(
        "Value {h} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    ))
}

/// Which message attributes a receive asked for.
fn attribute_selected(wanted: &[String], name: &str) -> bool {
    wanted.iter().any(|w| {
        if w == "All" || w == ".*" {
            true
        } else if let Some(prefix) = w.strip_suffix(".*") {
            name.starts_with(prefix) && name[prefix.len()..].starts_with('.')
        } else {
            w == name
        }
    })
}

impl Sqs {
    /// Build the records of prepared messages under the queue lock: deduplicated sends answer
    /// the original message; new ones get a sequence number. Returns the answers, the new
    /// messages and their writes.
    fn stage(
        &self,
        q: &Queue,
        items: &[Prepared],
        sender: &str,
        now: i64,
        group_scope: bool,
    ) -> Result<Staged, ApiError> {
        let mut st = q.lock();
        if st.deleted {
            return Err(queue_not_found());
        }
        let fifo = is_fifo(&st.rec);
        let scope = q.scope();
        let mut sent = Vec::with_capacity(items.len());
        let mut msgs = Vec::new();
        let mut writes = Vec::new();
        for p in items {
            let dkey = match (&p.dedup, fifo) {
                (Some(d), true) => Some(if group_scope {
                    format!(
                        "{}{}{d}",
                        p.group.as_deref().unwrap_or_default(),
                        super::records::SEP
                    )
                } else {
                    d.clone()
                }),
                _ => None,
            };
            if let Some(k) = &dkey {
                if let Some(found) = st.dedup.get(k).filter(|d| d.expires_ms > now) {
                    sent.push(Sent {
                        message_id: found.message_id.clone(),
                        md5_body: p.md5_body.clone(),
                        md5_attrs: p.md5_attrs.clone(),
                        md5_sys: p.md5_sys.clone(),
                        sequence: Some(found.seq),
                    });
                    continue;
                }
            }
            let seq = st.next_seq(now_ns());
            let id = uuid::Uuid::new_v4().to_string();
            let rec = MessageRecord {
                v: 1,
                id: id.clone(),
                seq,
                body: p.body.clone(),
                md5_body: p.md5_body.clone(),
                attrs: p.attrs.clone(),
                md5_attrs: p.md5_attrs.clone(),
                trace: p.trace.clone(),
                md5_sys: p.md5_sys.clone(),
                sent_ms: now,
                sender: sender.to_string(),
                group: p.group.clone(),
                dedup: if fifo { p.dedup.clone() } else { None },
                dlq_source: None,
            };
            let mst = MessageState {
                v: 1,
                visible_at_ms: now + p.delay_s * 1000,
                receives: 0,
                first_receive_ms: None,
                handle: None,
            };
            let key = message_key(&q.name, seq);
            writes.push(Write::Put {
                scope: scope.clone(),
                table: MESSAGES.into(),
                key: key.clone(),
                value: fc_store::to_json_bytes(&rec).map_err(store_error)?,
            });
            writes.push(Write::Put {
                scope: scope.clone(),
                table: STATES.into(),
                key,
                value: fc_store::to_json_bytes(&mst).map_err(store_error)?,
            });
            if let Some(k) = dkey {
                let d = DedupRecord {
                    v: 1,
                    expires_ms: now + DEDUP_MS,
                    message_id: id.clone(),
                    seq,
                };
                writes.push(Write::Put {
                    scope: scope.clone(),
                    table: DEDUP.into(),
                    key: dedup_key(&q.name, &k),
                    value: fc_store::to_json_bytes(&d).map_err(store_error)?,
                });
                st.dedup.insert(
                    k,
                    Dedup {
                        expires_ms: d.expires_ms,
                        message_id: id.clone(),
                        seq,
                    },
                );
            }
            sent.push(Sent {
                message_id: id,
                md5_body: p.md5_body.clone(),
                md5_attrs: p.md5_attrs.clone(),
                md5_sys: p.md5_sys.clone(),
                sequence: fifo.then_some(seq),
            });
            msgs.push(Msg {
                rec: Arc::new(rec),
                st: mst,
            });
        }
        Ok((sent, msgs, writes))
    }

    /// Put committed messages into the index and wake long polls.
    fn publish(&self, q: &Queue, msgs: Vec<Msg>) {
        if msgs.is_empty() {
            return;
        }
        {
            let mut st = q.lock();
            if st.deleted {
                return;
            }
            let now = now_ms();
            for m in msgs {
                st.insert(m, now);
            }
        }
        q.notify.notify_waiters();
    }

    async fn enqueue(
        &self,
        q: &Arc<Queue>,
        view: &QueueView,
        items: &[Prepared],
        sender: &str,
    ) -> Result<Vec<Sent>, ApiError> {
        let _order = if view.fifo {
            Some(q.send_lock.lock().await)
        } else {
            None
        };
        let (sent, msgs, writes) = self.stage(q, items, sender, now_ms(), view.group_scope)?;
        self.commit(writes).await?;
        self.publish(q, msgs);
        Ok(sent)
    }

    /// `QueueSink::send_message`: a plain message, committed synchronously.
    pub(crate) fn send_internal(&self, q: &Arc<Queue>, body: &str) -> Result<(), ApiError> {
        let view = QueueView::of(q);
        if view.fifo {
            return Err(invalid_param(
                "Event notifications cannot target a FIFO queue.",
            ));
        }
        let p = prepare(&view, &json!({ "MessageBody": body }))?;
        let (_, msgs, writes) = self.stage(q, &[p], &q.account, now_ms(), false)?;
        self.store.batch(writes).map_err(store_error)?;
        self.publish(q, msgs);
        Ok(())
    }

    pub(crate) async fn send_message(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let view = QueueView::of(&q);
        let p = prepare(&view, input)?;
        let sent = self
            .enqueue(&q, &view, &[p], &ctx.principal.user_id)
            .await?;
        let first = sent
            .first()
            .ok_or_else(|| ApiError::internal("send produced no answer"))?;
        Ok(first.to_value(None))
    }

    pub(crate) async fn send_message_batch(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let entries = batch_entries(input, "SendMessageBatch")?;
        let view = QueueView::of(&q);
        let mut failed = Vec::new();
        let mut ready: Vec<(String, Prepared)> = Vec::new();
        let mut total = 0;
        for e in &entries {
            let id = e.get("Id").and_then(Value::as_str).unwrap_or_default();
            match prepare(&view, e) {
                Ok(p) => {
                    total += p.size;
                    ready.push((id.to_string(), p));
                }
                Err(err) => failed.push(failed_entry(id, &err)),
            }
        }
        let limit = view.max_size.max(262_144);
        if total > limit {
            return Err(ApiError::client(
                "BatchRequestTooLong",
                format!("Batch requests cannot be longer than {limit} bytes. You have sent {total} bytes."),
            ));
        }
        let items: Vec<Prepared> = ready.iter().map(|(_, p)| p.clone()).collect();
        let sent = if items.is_empty() {
            Vec::new()
        } else {
            self.enqueue(&q, &view, &items, &ctx.principal.user_id)
                .await?
        };
        let ok = ready
            .iter()
            .zip(sent.iter())
            .map(|((id, _), s)| s.to_value(Some(id)))
            .collect();
        Ok(batch_output(ok, failed))
    }

    pub(crate) async fn receive_message(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let max = opt_i64(input, "MaxNumberOfMessages")?.unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(invalid_param(format!(
                "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
            )));
        }
        let vis = opt_i64(input, "VisibilityTimeout")?;
        if let Some(v) = vis {
            if !(0..=43_200).contains(&v) {
                return Err(invalid_param(format!(
                    "Value {v} for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided."
                )));
            }
        }
        let wait = opt_i64(input, "WaitTimeSeconds")?;
        if let Some(w) = wait {
            if !(0..=20).contains(&w) {
                return Err(invalid_param(format!(
                    "Value {w} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
                )));
            }
        }
        let mut sys_names = str_list(input, "AttributeNames");
        sys_names.extend(str_list(input, "MessageSystemAttributeNames"));
        for n in &sys_names {
            if !SYSTEM_ATTRIBUTES.contains(&n.as_str()) {
                return Err(ApiError::client(
                    "InvalidAttributeName",
                    format!("Unknown Attribute {n}."),
                ));
            }
        }
        let msg_names = str_list(input, "MessageAttributeNames");
        let (rec_wait, rec_vis, retention, fifo, redrive) = {
            let st = q.lock();
            (
                attr_i64(&st.rec, "ReceiveMessageWaitTimeSeconds", 0),
                attr_i64(&st.rec, "VisibilityTimeout", 30),
                attr_i64(&st.rec, "MessageRetentionPeriod", 345_600),
                is_fifo(&st.rec),
                st.rec.clone(),
            )
        };
        let dlq = self.redrive_target(&redrive);
        let rules = ReceiveRules {
            max: usize::try_from(max).unwrap_or(1),
            visibility_ms: vis.unwrap_or(rec_vis) * 1000,
            fifo,
            max_receives: dlq.as_ref().map(|(n, _)| *n),
            retention_ms: retention * 1000,
        };
        let wait_ms = wait.unwrap_or(rec_wait) * 1000;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms.unsigned_abs());
        loop {
            let notified = q.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = now_ms();
            let (taken, dead, next_wake) = {
                let mut st = q.lock();
                if st.deleted {
                    return Err(queue_not_found());
                }
                let (taken, dead) = st.receive(now, &rules, || fc_types::ids::random_hex(16));
                (taken, dead, st.next_wake_ms())
            };
            if !dead.is_empty() {
                if let Some((_, target)) = &dlq {
                    self.move_to_dlq(&q, target, dead).await?;
                }
            }
            if !taken.is_empty() {
                let mut writes = Vec::with_capacity(taken.len());
                for m in &taken {
                    writes.push(state_write(&q, m.rec.seq, &m.st)?);
                }
                self.commit(writes).await?;
                let out: Vec<Value> = taken
                    .iter()
                    .map(|m| message_output(&q, m, fifo, &sys_names, &msg_names))
                    .collect();
                return Ok(json!({ "Messages": out }));
            }
            let now_i = tokio::time::Instant::now();
            if now_i >= deadline {
                return Ok(json!({}));
            }
            let mut until = deadline;
            if let Some(at) = next_wake {
                let ms = u64::try_from((at - now).max(1)).unwrap_or(1);
                until = until.min(now_i + Duration::from_millis(ms));
            }
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    /// Move messages that reached `maxReceiveCount` to the dead-letter queue.
    async fn move_to_dlq(
        &self,
        src: &Queue,
        dlq: &Arc<Queue>,
        dead: Vec<Msg>,
    ) -> Result<(), ApiError> {
        let source = src.arn.clone();
        self.transfer(src, dlq, dead, Some(source)).await
    }

    /// Move messages (already out of `src`'s index) to `dst`: one atomic batch deletes them
    /// from `src` and adds them to `dst` with new sequence numbers, fresh receive state and
    /// `dlq_source` as given.
    pub(crate) async fn transfer(
        &self,
        src: &Queue,
        dst: &Arc<Queue>,
        msgs: Vec<Msg>,
        dlq_source: Option<String>,
    ) -> Result<(), ApiError> {
        let now = now_ms();
        let mut writes = Vec::new();
        let mut moved = Vec::new();
        {
            let mut st = dst.lock();
            for m in msgs {
                writes.extend(delete_message_writes(src, m.rec.seq));
                let seq = st.next_seq(now_ns());
                let rec = MessageRecord {
                    seq,
                    dlq_source: dlq_source.clone(),
                    ..(*m.rec).clone()
                };
                let mst = MessageState {
                    v: 1,
                    visible_at_ms: now,
                    ..MessageState::default()
                };
                let key = message_key(&dst.name, seq);
                writes.push(Write::Put {
                    scope: dst.scope(),
                    table: MESSAGES.into(),
                    key: key.clone(),
                    value: fc_store::to_json_bytes(&rec).map_err(store_error)?,
                });
                writes.push(Write::Put {
                    scope: dst.scope(),
                    table: STATES.into(),
                    key,
                    value: fc_store::to_json_bytes(&mst).map_err(store_error)?,
                });
                moved.push(Msg {
                    rec: Arc::new(rec),
                    st: mst,
                });
            }
        }
        self.commit(writes).await?;
        self.publish(dst, moved);
        Ok(())
    }

    /// Decode a receipt handle of this queue.
    fn handle_of(q: &Queue, h: &str) -> Result<Handle, ApiError> {
        Handle::decode(h)
            .filter(|d| d.account == q.account && d.region == q.region && d.queue == q.name)
            .ok_or_else(|| invalid_handle(h))
    }

    /// Delete by receipt handle: the writes to commit (none when nothing is deleted).
    fn delete_one(&self, q: &Queue, h: &str, now: i64) -> Result<Vec<Write>, ApiError> {
        let handle = Self::handle_of(q, h)?;
        let mut st = q.lock();
        let fifo = is_fifo(&st.rec);
        match st.check_handle(handle.seq, &handle.nonce, now) {
            Ok(_) => {}
            Err(HandleFault::NotInflight) if !fifo => {}
            Err(HandleFault::NotInflight) => return Err(expired_handle(h)),
            // Already deleted, or received again since: the request succeeds and deletes
            // nothing, as AWS documents.
            Err(HandleFault::Gone | HandleFault::Stale) => return Ok(Vec::new()),
        }
        st.remove(handle.seq);
        Ok(delete_message_writes(q, handle.seq).to_vec())
    }

    pub(crate) async fn delete_message(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let h = req_str(input, "ReceiptHandle")?;
        let writes = self.delete_one(&q, h, now_ms())?;
        let changed = !writes.is_empty();
        self.commit(writes).await?;
        if changed {
            q.notify.notify_waiters();
        }
        Ok(json!({}))
    }

    pub(crate) async fn delete_message_batch(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let entries = batch_entries(input, "DeleteMessageBatch")?;
        let now = now_ms();
        let mut writes = Vec::new();
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for e in entries {
            let id = e.get("Id").and_then(Value::as_str).unwrap_or_default();
            let h = e.get("ReceiptHandle").and_then(Value::as_str).unwrap_or("");
            match self.delete_one(&q, h, now) {
                Ok(w) => {
                    writes.extend(w);
                    ok.push(json!({ "Id": id }));
                }
                Err(err) => failed.push(failed_entry(id, &err)),
            }
        }
        let changed = !writes.is_empty();
        self.commit(writes).await?;
        if changed {
            q.notify.notify_waiters();
        }
        Ok(batch_output(ok, failed))
    }

    /// Change one message's visibility: the state write to commit.
    fn change_one(
        &self,
        q: &Queue,
        h: &str,
        timeout: Option<i64>,
        now: i64,
    ) -> Result<Write, ApiError> {
        let Some(t) = timeout else {
            return Err(missing("VisibilityTimeout"));
        };
        if !(0..=43_200).contains(&t) {
            return Err(invalid_param(format!(
                "Value {t} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided."
            )));
        }
        let handle = Self::handle_of(q, h)?;
        let mut st = q.lock();
        match st.check_handle(handle.seq, &handle.nonce, now) {
            Ok(_) => {}
            Err(HandleFault::NotInflight) => {
                return Err(ApiError::client(
                    "MessageNotInflight",
                    "The message referred to isn't in flight.",
                ))
            }
            Err(HandleFault::Stale) => return Err(expired_handle(h)),
            Err(HandleFault::Gone) => {
                return Err(invalid_param(format!(
                    "Value {h} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
                )))
            }
        }
        let mst = st
            .change_visibility(handle.seq, now + t * 1000)
            .ok_or_else(|| invalid_handle(h))?;
        state_write(q, handle.seq, &mst)
    }

    pub(crate) async fn change_message_visibility(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let h = req_str(input, "ReceiptHandle")?;
        let t = opt_i64(input, "VisibilityTimeout")?;
        let w = self.change_one(&q, h, t, now_ms())?;
        self.commit(vec![w]).await?;
        q.notify.notify_waiters();
        Ok(json!({}))
    }

    pub(crate) async fn change_message_visibility_batch(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let entries = batch_entries(input, "ChangeMessageVisibilityBatch")?;
        let now = now_ms();
        let mut writes = Vec::new();
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for e in entries {
            let id = e.get("Id").and_then(Value::as_str).unwrap_or_default();
            let h = e.get("ReceiptHandle").and_then(Value::as_str).unwrap_or("");
            let t = match opt_i64(e, "VisibilityTimeout") {
                Ok(t) => t.or(Some(0)),
                Err(err) => {
                    failed.push(failed_entry(id, &err));
                    continue;
                }
            };
            match self.change_one(&q, h, t, now) {
                Ok(w) => {
                    writes.push(w);
                    ok.push(json!({ "Id": id }));
                }
                Err(err) => failed.push(failed_entry(id, &err)),
            }
        }
        self.commit(writes).await?;
        q.notify.notify_waiters();
        Ok(batch_output(ok, failed))
    }
}

/// A received message as `ReceiveMessage` returns it.
fn message_output(
    q: &Queue,
    m: &Msg,
    fifo: bool,
    sys_names: &[String],
    msg_names: &[String],
) -> Value {
    let handle = Handle {
        account: q.account.clone(),
        region: q.region.clone(),
        queue: q.name.clone(),
        seq: m.rec.seq,
        nonce: m.st.handle.clone().unwrap_or_default(),
    };
    let mut o = Map::new();
    o.insert("MessageId".into(), Value::from(m.rec.id.clone()));
    o.insert("ReceiptHandle".into(), Value::from(handle.encode()));
    o.insert("MD5OfBody".into(), Value::from(m.rec.md5_body.clone()));
    o.insert("Body".into(), Value::from(m.rec.body.clone()));
    let all = sys_names.iter().any(|n| n == "All");
    let want = |n: &str| all || sys_names.iter().any(|s| s == n);
    let mut attrs = Map::new();
    let mut put = |k: &str, v: String| {
        attrs.insert(k.to_string(), Value::from(v));
    };
    if want("SenderId") {
        put("SenderId", m.rec.sender.clone());
    }
    if want("SentTimestamp") {
        put("SentTimestamp", m.rec.sent_ms.to_string());
    }
    if want("ApproximateReceiveCount") {
        put("ApproximateReceiveCount", m.st.receives.to_string());
    }
    if want("ApproximateFirstReceiveTimestamp") {
        put(
            "ApproximateFirstReceiveTimestamp",
            m.st.first_receive_ms.unwrap_or(m.rec.sent_ms).to_string(),
        );
    }
    if fifo && want("SequenceNumber") {
        put("SequenceNumber", format!("{:020}", m.rec.seq));
    }
    if fifo && want("MessageDeduplicationId") {
        if let Some(d) = &m.rec.dedup {
            put("MessageDeduplicationId", d.clone());
        }
    }
    if want("MessageGroupId") {
        if let Some(g) = &m.rec.group {
            put("MessageGroupId", g.clone());
        }
    }
    if want("AWSTraceHeader") {
        if let Some(t) = &m.rec.trace {
            put("AWSTraceHeader", t.clone());
        }
    }
    if want("DeadLetterQueueSourceArn") {
        if let Some(s) = &m.rec.dlq_source {
            put("DeadLetterQueueSourceArn", s.clone());
        }
    }
    if !attrs.is_empty() {
        o.insert("Attributes".into(), Value::Object(attrs));
    }
    let selected: BTreeMap<&String, &Value> = m
        .rec
        .attrs
        .iter()
        .filter(|(k, _)| attribute_selected(msg_names, k))
        .collect();
    if !selected.is_empty() {
        let md5 = if selected.len() == m.rec.attrs.len() {
            m.rec.md5_attrs.clone()
        } else {
            let decoded: Vec<(String, String, AttrValue)> = selected
                .iter()
                .filter_map(|(k, v)| decode_value(v).map(|(t, val)| ((*k).clone(), t, val)))
                .collect();
            md5_of_attributes(decoded.iter().map(|(n, t, v)| (n.as_str(), t.as_str(), v)))
        };
        if let Some(md5) = md5 {
            o.insert("MD5OfMessageAttributes".into(), Value::from(md5));
        }
        let map: Map<String, Value> = selected
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        o.insert("MessageAttributes".into(), Value::Object(map));
    }
    Value::Object(o)
}

/// Names of attributes a test may check against (unused outside tests).
#[cfg(test)]
pub(crate) fn selected_for_test(wanted: &[&str], name: &str) -> bool {
    let w: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
    attribute_selected(&w, name)
}

#[cfg(test)]
pub(crate) fn prepare_for_test(
    fifo: bool,
    content_dedup: bool,
    entry: &Value,
) -> Result<(Option<String>, Option<String>, usize), ApiError> {
    let view = QueueView {
        fifo,
        content_dedup,
        group_scope: false,
        max_size: 262_144,
        delay_s: 0,
    };
    prepare(&view, entry).map(|p| (p.dedup, p.md5_attrs, p.size))
}
