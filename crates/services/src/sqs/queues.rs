//! Queue operations: create (idempotent on equal attributes), URL lookup, listing, delete,
//! purge, attributes with AWS's validation, tags, dead-letter source listing, permissions.

use super::records::{children_prefix, QueueRecord, DEDUP, MESSAGES, QUEUES, SEP, STATES};
use super::{
    delete_message_writes, invalid_param, is_fifo, now_ms, opt_i64, opt_str, parse_queue_arn,
    queue_not_found, queue_of, queue_url, req_str, str_list, Queue, Sqs,
};
use crate::common::store_error;
use crate::RequestContext;
use fc_protocol::ApiError;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Attributes `GetQueueAttributes` knows, in the order `All` reports them.
const READABLE: &[&str] = &[
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "Policy",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Attributes only FIFO queues have.
const FIFO_ONLY: &[&str] = &[
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Settable attributes and their defaults on a new queue (`None`: unset by default).
const SETTABLE: &[(&str, Option<&str>)] = &[
    ("DelaySeconds", Some("0")),
    ("MaximumMessageSize", Some("262144")),
    ("MessageRetentionPeriod", Some("345600")),
    ("ReceiveMessageWaitTimeSeconds", Some("0")),
    ("VisibilityTimeout", Some("30")),
    ("Policy", None),
    ("RedrivePolicy", None),
    ("RedriveAllowPolicy", None),
    ("KmsMasterKeyId", None),
    ("KmsDataKeyReusePeriodSeconds", None),
    ("SqsManagedSseEnabled", Some("true")),
    ("FifoQueue", None),
    ("ContentBasedDeduplication", None),
    ("DeduplicationScope", None),
    ("FifoThroughputLimit", None),
];

const MAX_TAGS: usize = 50;

fn unknown_attribute(name: &str) -> ApiError {
    ApiError::client("InvalidAttributeName", format!("Unknown Attribute {name}."))
}

fn invalid_attribute(name: &str) -> ApiError {
    ApiError::client(
        "InvalidAttributeValue",
        format!("Invalid value for the parameter {name}."),
    )
}

fn invalid_attribute_reason(name: &str, value: &str, reason: &str) -> ApiError {
    ApiError::client(
        "InvalidAttributeValue",
        format!("Value {value} for parameter {name} is invalid. Reason: {reason}"),
    )
}

fn valid_queue_name(name: &str, fifo: bool) -> bool {
    let base = if fifo {
        match name.strip_suffix(".fifo") {
            Some(b) => b,
            None => return false,
        }
    } else {
        name
    };
    !base.is_empty()
        && name.len() <= 80
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn int_attr(name: &str, value: &str, min: i64, max: i64) -> Result<String, ApiError> {
    match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
        _ => Err(invalid_attribute(name)),
    }
}

fn bool_attr(name: &str, value: &str) -> Result<String, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok("true".into()),
        "false" => Ok("false".into()),
        _ => Err(invalid_attribute(name)),
    }
}

/// The attribute map of a request, as strings.
fn given_attributes(input: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    if let Some(map) = input.get("Attributes").and_then(Value::as_object) {
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
    }
    Ok(out)
}

impl Sqs {
    /// Persist a queue's changed record, then make it the one in memory.
    fn save_record(&self, q: &Queue, rec: QueueRecord) -> Result<(), ApiError> {
        self.store
            .put_json(&q.scope(), QUEUES, &q.name, &rec)
            .map_err(store_error)?;
        q.lock().rec = rec;
        Ok(())
    }

    /// Validate and normalize attributes for a queue of the given type. Empty values of the
    /// JSON-document attributes mean "remove" and come back as empty strings.
    fn normalize_attributes(
        &self,
        ctx: &RequestContext,
        given: &BTreeMap<String, String>,
        fifo: bool,
        creating: bool,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let mut out = BTreeMap::new();
        for (name, value) in given {
            if !SETTABLE.iter().any(|(n, _)| n == name) {
                return Err(unknown_attribute(name));
            }
            if !fifo && FIFO_ONLY.contains(&name.as_str()) && name != "FifoQueue" {
                return Err(unknown_attribute(name));
            }
            let v = match name.as_str() {
                "DelaySeconds" => int_attr(name, value, 0, 900)?,
                "MaximumMessageSize" => int_attr(name, value, 1024, 1_048_576)?,
                "MessageRetentionPeriod" => int_attr(name, value, 60, 1_209_600)?,
                "ReceiveMessageWaitTimeSeconds" => int_attr(name, value, 0, 20)?,
                "VisibilityTimeout" => int_attr(name, value, 0, 43_200)?,
                "KmsDataKeyReusePeriodSeconds" => int_attr(name, value, 60, 86_400)?,
                "SqsManagedSseEnabled" | "ContentBasedDeduplication" => bool_attr(name, value)?,
                "FifoQueue" => {
                    let b = bool_attr(name, value)?;
                    if !creating {
                        return Err(ApiError::client(
                            "InvalidAttributeName",
                            "Unknown Attribute FifoQueue.",
                        ));
                    }
                    if (b == "true") != fifo {
                        return Err(invalid_param(
                            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
                        ));
                    }
                    b
                }
                "KmsMasterKeyId" => value.clone(),
                "DeduplicationScope" => match value.as_str() {
                    "messageGroup" | "queue" => value.clone(),
                    _ => return Err(invalid_attribute(name)),
                },
                "FifoThroughputLimit" => match value.as_str() {
                    "perQueue" | "perMessageGroupId" => value.clone(),
                    _ => return Err(invalid_attribute(name)),
                },
                "Policy" => {
                    if value.trim().is_empty() {
                        String::new()
                    } else {
                        match serde_json::from_str::<Value>(value) {
                            Ok(Value::Object(_)) => value.clone(),
                            _ => return Err(invalid_attribute(name)),
                        }
                    }
                }
                "RedrivePolicy" => self.normalize_redrive(ctx, value, fifo)?,
                "RedriveAllowPolicy" => normalize_redrive_allow(value)?,
                _ => return Err(unknown_attribute(name)),
            };
            out.insert(name.clone(), v);
        }
        Ok(out)
    }

    fn normalize_redrive(
        &self,
        ctx: &RequestContext,
        value: &str,
        fifo: bool,
    ) -> Result<String, ApiError> {
        const N: &str = "RedrivePolicy";
        if value.trim().is_empty() {
            return Ok(String::new());
        }
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(value) else {
            return Err(invalid_attribute_reason(N, value, "Invalid JSON."));
        };
        let Some(target) = doc.get("deadLetterTargetArn").and_then(Value::as_str) else {
            return Err(invalid_attribute_reason(
                N,
                value,
                "Redrive policy does not contain mandatory attribute: deadLetterTargetArn.",
            ));
        };
        let count = match doc.get("maxReceiveCount") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            None => {
                return Err(invalid_attribute_reason(
                    N,
                    value,
                    "Redrive policy does not contain mandatory attribute: maxReceiveCount.",
                ))
            }
            _ => None,
        };
        let Some(count) = count.filter(|c| (1..=1000).contains(c)) else {
            return Err(invalid_attribute_reason(
                N,
                value,
                "Invalid value for maxReceiveCount: must be an integer from 1 to 1000.",
            ));
        };
        if let Some(k) = doc
            .keys()
            .find(|k| *k != "deadLetterTargetArn" && *k != "maxReceiveCount")
        {
            return Err(invalid_attribute_reason(
                N,
                value,
                &format!("Only following attributes are supported: [deadLetterTargetArn, maxReceiveCount]. Found: {k}"),
            ));
        }
        let Some((region, account, name)) = parse_queue_arn(target) else {
            return Err(invalid_attribute_reason(
                N,
                value,
                "Invalid value for deadLetterTargetArn.",
            ));
        };
        if region != ctx.region {
            return Err(invalid_attribute_reason(
                N,
                value,
                "Dead-letter target must be in the same region as the source.",
            ));
        }
        let Some(dlq) = self.queue(&account, &region, &name)? else {
            return Err(invalid_attribute_reason(
                N,
                value,
                "Dead letter target does not exist.",
            ));
        };
        if is_fifo(&dlq.lock().rec) != fifo {
            return Err(invalid_attribute_reason(
                N,
                value,
                "Dead-letter queue must be same type of queue as the source.",
            ));
        }
        Ok(json!({"deadLetterTargetArn": target, "maxReceiveCount": count}).to_string())
    }

    pub(crate) fn create_queue(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let name = req_str(input, "QueueName")?;
        let given = given_attributes(input)?;
        let fifo_name = name.ends_with(".fifo");
        let fifo_attr = given
            .get("FifoQueue")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if fifo_attr && !fifo_name {
            return Err(invalid_param(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
            ));
        }
        let fifo = fifo_name;
        if !valid_queue_name(name, fifo) {
            return Err(invalid_param(if fifo {
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
            } else {
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
            }));
        }
        if fifo && !fifo_attr {
            return Err(invalid_param(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
            ));
        }
        let mut attrs = self.normalize_attributes(ctx, &given, fifo, true)?;
        let tags = tags_of(input.get("tags"))?;
        let scope = Scope::new(&ctx.account, &ctx.region);
        let url = queue_url(ctx, &ctx.account, name);
        let _admin = self.admin_lock();
        let existing: Option<QueueRecord> = self
            .store
            .get_json(&scope, QUEUES, name)
            .map_err(store_error)?;
        if let Some(existing) = existing {
            for (k, v) in &attrs {
                let current = existing.attrs.get(k).cloned().unwrap_or_default();
                if *v != current {
                    return Err(ApiError::client(
                        "QueueNameExists",
                        format!("A queue already exists with the same name and a different value for attribute {k}"),
                    ));
                }
            }
            return Ok(json!({ "QueueUrl": url }));
        }
        for (name, default) in SETTABLE {
            if let Some(d) = default {
                attrs
                    .entry((*name).to_string())
                    .or_insert_with(|| (*d).to_string());
            }
        }
        if given.contains_key("KmsMasterKeyId") {
            if !given.contains_key("SqsManagedSseEnabled") {
                attrs.insert("SqsManagedSseEnabled".into(), "false".into());
            }
            attrs
                .entry("KmsDataKeyReusePeriodSeconds".into())
                .or_insert_with(|| "300".into());
        }
        if fifo {
            attrs.insert("FifoQueue".into(), "true".into());
            attrs
                .entry("ContentBasedDeduplication".into())
                .or_insert_with(|| "false".into());
            attrs
                .entry("DeduplicationScope".into())
                .or_insert_with(|| "queue".into());
            attrs
                .entry("FifoThroughputLimit".into())
                .or_insert_with(|| "perQueue".into());
        } else {
            attrs.remove("FifoQueue");
        }
        attrs.retain(|_, v| !v.is_empty());
        check_throughput(&attrs)?;
        let now = now_ms() / 1000;
        let rec = QueueRecord {
            v: 1,
            name: name.to_string(),
            attrs,
            tags,
            created: now,
            modified: now,
        };
        // Leftovers of an earlier queue of this name (a crash during its deletion) go first.
        let prefix = children_prefix(name);
        for table in [MESSAGES, STATES, DEDUP] {
            self.store
                .delete_prefix(&scope, table, &prefix)
                .map_err(store_error)?;
        }
        self.store
            .put_json(&scope, QUEUES, name, &rec)
            .map_err(store_error)?;
        Ok(json!({ "QueueUrl": url }))
    }

    pub(crate) fn get_queue_url(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let name = req_str(input, "QueueName")?;
        let account = opt_str(input, "QueueOwnerAWSAccountId").unwrap_or(&ctx.account);
        if name.contains(SEP) {
            return Err(queue_not_found());
        }
        self.require(account, &ctx.region, name)?;
        Ok(json!({ "QueueUrl": queue_url(ctx, account, name) }))
    }

    pub(crate) fn list_queues(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let prefix = opt_str(input, "QueueNamePrefix").unwrap_or("");
        let max = opt_i64(input, "MaxResults")?;
        if let Some(m) = max {
            if !(1..=1000).contains(&m) {
                return Err(invalid_param(format!(
                    "Value {m} for parameter MaxResults is invalid. Reason: MaxResults must be an integer between 1 and 1000."
                )));
            }
        }
        let token_scope = format!("sqs:ListQueues:{}:{}:{prefix}", ctx.account, ctx.region);
        let after = match opt_str(input, "NextToken") {
            Some(t) if !t.is_empty() => Some(
                fc_types::page::decode(&token_scope, t)
                    .map_err(|_| invalid_param("Invalid NextToken value."))?,
            ),
            _ => None,
        };
        let limit = max.map_or(1000, |m| usize::try_from(m).unwrap_or(1000));
        let scope = Scope::new(&ctx.account, &ctx.region);
        let page = self
            .store
            .scan(&scope, QUEUES, prefix, after.as_deref(), limit)
            .map_err(store_error)?;
        let urls: Vec<Value> = page
            .items
            .iter()
            .map(|(k, _)| Value::from(queue_url(ctx, &ctx.account, k)))
            .collect();
        let mut out = Map::new();
        if !urls.is_empty() {
            out.insert("QueueUrls".into(), Value::Array(urls));
        }
        if page.more && max.is_some() {
            if let Some((last, _)) = page.items.last() {
                out.insert(
                    "NextToken".into(),
                    Value::from(fc_types::page::encode(&token_scope, last)),
                );
            }
        }
        Ok(Value::Object(out))
    }

    pub(crate) fn delete_queue(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let scope = q.scope();
        let _admin = self.admin_lock();
        self.store
            .delete(&scope, QUEUES, &q.name)
            .map_err(store_error)?;
        self.unload(&q.account, &q.region, &q.name);
        let prefix = children_prefix(&q.name);
        for table in [MESSAGES, STATES, DEDUP] {
            self.store
                .delete_prefix(&scope, table, &prefix)
                .map_err(store_error)?;
        }
        Ok(json!({}))
    }

    pub(crate) async fn purge_queue(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let now = now_ms();
        let writes = {
            let mut st = q.lock();
            if let Some(last) = st.last_purge_ms {
                if now - last < 60_000 {
                    return Err(ApiError::new(
                        403,
                        "PurgeQueueInProgress",
                        format!(
                            "Only one PurgeQueue operation on {} is allowed every 60 seconds.",
                            q.name
                        ),
                    ));
                }
            }
            st.last_purge_ms = Some(now);
            let mut writes = Vec::new();
            for seq in st.seqs() {
                st.remove(seq);
                writes.extend(delete_message_writes(&q, seq));
            }
            writes
        };
        self.commit(writes).await?;
        Ok(json!({}))
    }

    pub(crate) fn get_queue_attributes(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let names = str_list(input, "AttributeNames");
        for n in &names {
            if n != "All" && !READABLE.contains(&n.as_str()) {
                return Err(unknown_attribute(n));
            }
        }
        let all = names.iter().any(|n| n == "All");
        let now = now_ms();
        let st = q.lock();
        let fifo = is_fifo(&st.rec);
        let (visible, inflight, delayed) = st.counts(now);
        let mut out = Map::new();
        for name in READABLE {
            if !all && !names.iter().any(|n| n == name) {
                continue;
            }
            if !fifo && FIFO_ONLY.contains(name) {
                continue;
            }
            let v = match *name {
                "QueueArn" => Some(q.arn.clone()),
                "ApproximateNumberOfMessages" => Some(visible.to_string()),
                "ApproximateNumberOfMessagesNotVisible" => Some(inflight.to_string()),
                "ApproximateNumberOfMessagesDelayed" => Some(delayed.to_string()),
                "CreatedTimestamp" => Some(st.rec.created.to_string()),
                "LastModifiedTimestamp" => Some(st.rec.modified.to_string()),
                other => st.rec.attrs.get(other).cloned(),
            };
            if let Some(v) = v {
                out.insert((*name).to_string(), Value::from(v));
            }
        }
        if out.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({ "Attributes": out }))
    }

    pub(crate) fn set_queue_attributes(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let given = given_attributes(input)?;
        let fifo = is_fifo(&q.lock().rec);
        let attrs = self.normalize_attributes(ctx, &given, fifo, false)?;
        let _admin = self.admin_lock();
        let mut rec = q.lock().rec.clone();
        for (k, v) in attrs {
            if v.is_empty() {
                rec.attrs.remove(&k);
            } else {
                rec.attrs.insert(k, v);
            }
        }
        if given.contains_key("KmsMasterKeyId") && !given.contains_key("SqsManagedSseEnabled") {
            let kms = rec
                .attrs
                .get("KmsMasterKeyId")
                .is_some_and(|k| !k.is_empty());
            rec.attrs.insert(
                "SqsManagedSseEnabled".into(),
                if kms { "false" } else { "true" }.into(),
            );
            if kms {
                rec.attrs
                    .entry("KmsDataKeyReusePeriodSeconds".into())
                    .or_insert_with(|| "300".into());
            }
        }
        rec.attrs.retain(|_, v| !v.is_empty());
        check_throughput(&rec.attrs)?;
        rec.modified = now_ms() / 1000;
        self.save_record(&q, rec)?;
        q.notify.notify_waiters();
        Ok(json!({}))
    }

    pub(crate) fn tag_queue(&self, ctx: &RequestContext, input: &Value) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let tags = tags_of(input.get("Tags"))?;
        let _admin = self.admin_lock();
        let mut rec = q.lock().rec.clone();
        rec.tags.extend(tags);
        if rec.tags.len() > MAX_TAGS {
            return Err(invalid_param(format!(
                "Too many tags added for queue {}.",
                q.name
            )));
        }
        self.save_record(&q, rec)?;
        Ok(json!({}))
    }

    pub(crate) fn untag_queue(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let keys = str_list(input, "TagKeys");
        let _admin = self.admin_lock();
        let mut rec = q.lock().rec.clone();
        for k in keys {
            rec.tags.remove(&k);
        }
        self.save_record(&q, rec)?;
        Ok(json!({}))
    }

    pub(crate) fn list_queue_tags(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let tags = q.lock().rec.tags.clone();
        if tags.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({ "Tags": tags }))
    }

    pub(crate) fn list_dead_letter_source_queues(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let max = opt_i64(input, "MaxResults")?;
        if let Some(m) = max {
            if !(1..=1000).contains(&m) {
                return Err(invalid_param(format!(
                    "Value {m} for parameter MaxResults is invalid. Reason: MaxResults must be an integer between 1 and 1000."
                )));
            }
        }
        let token_scope = format!("sqs:ListDeadLetterSourceQueues:{}", q.arn);
        let mut after = match opt_str(input, "NextToken") {
            Some(t) if !t.is_empty() => Some(
                fc_types::page::decode(&token_scope, t)
                    .map_err(|_| invalid_param("Invalid NextToken value."))?,
            ),
            _ => None,
        };
        let limit = max.map_or(1000, |m| usize::try_from(m).unwrap_or(1000));
        let scope = q.scope();
        let mut urls = Vec::new();
        let mut last = None;
        let mut more = false;
        'scan: loop {
            let (page, page_more) = self
                .store
                .scan_json::<QueueRecord>(&scope, QUEUES, "", after.as_deref(), 500)
                .map_err(store_error)?;
            for (k, rec) in &page {
                if urls.len() >= limit {
                    more = true;
                    break 'scan;
                }
                let targets = rec
                    .attrs
                    .get("RedrivePolicy")
                    .and_then(|p| serde_json::from_str::<Value>(p).ok())
                    .and_then(|p| {
                        p.get("deadLetterTargetArn")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                if targets.as_deref() == Some(q.arn.as_str()) {
                    urls.push(Value::from(queue_url(ctx, &q.account, k)));
                    last = Some(k.clone());
                }
            }
            after = page.last().map(|(k, _)| k.clone());
            if !page_more {
                break;
            }
        }
        let mut out = Map::new();
        out.insert("queueUrls".into(), Value::Array(urls));
        if more && max.is_some() {
            if let Some(last) = last {
                out.insert(
                    "NextToken".into(),
                    Value::from(fc_types::page::encode(&token_scope, &last)),
                );
            }
        }
        Ok(Value::Object(out))
    }

    pub(crate) fn add_permission(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let label = req_str(input, "Label")?;
        let accounts = str_list(input, "AWSAccountIds");
        let actions = str_list(input, "Actions");
        if accounts.is_empty() {
            return Err(super::missing("AWSAccountIds"));
        }
        if actions.is_empty() {
            return Err(super::missing("Actions"));
        }
        let _admin = self.admin_lock();
        let mut rec = q.lock().rec.clone();
        let mut policy: Value = rec
            .attrs
            .get("Policy")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_else(|| {
                json!({"Version": "2012-10-17", "Id": format!("{}/SQSDefaultPolicy", q.arn), "Statement": []})
            });
        let statements = policy
            .as_object_mut()
            .map(|o| o.entry("Statement").or_insert_with(|| json!([])))
            .and_then(Value::as_array_mut)
            .ok_or_else(|| invalid_param("The queue policy is not a valid policy document."))?;
        if statements
            .iter()
            .any(|s| s.get("Sid").and_then(Value::as_str) == Some(label))
        {
            return Err(invalid_param(format!(
                "Value {label} for parameter Label is invalid. Reason: Already exists."
            )));
        }
        let principals: Vec<String> = accounts
            .iter()
            .map(|a| format!("arn:aws:iam::{a}:root"))
            .collect();
        let acts: Vec<String> = actions
            .iter()
            .map(|a| {
                if a == "*" {
                    "SQS:*".to_string()
                } else {
                    format!("SQS:{a}")
                }
            })
            .collect();
        statements.push(json!({
            "Sid": label,
            "Effect": "Allow",
            "Principal": {"AWS": if principals.len() == 1 { json!(principals[0]) } else { json!(principals) }},
            "Action": if acts.len() == 1 { json!(acts[0]) } else { json!(acts) },
            "Resource": q.arn,
        }));
        rec.attrs.insert("Policy".into(), policy.to_string());
        rec.modified = now_ms() / 1000;
        self.save_record(&q, rec)?;
        Ok(json!({}))
    }

    pub(crate) fn remove_permission(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let q = queue_of(self, ctx, input)?;
        let label = req_str(input, "Label")?;
        let _admin = self.admin_lock();
        let mut rec = q.lock().rec.clone();
        let not_found = || {
            invalid_param(format!(
                "Value {label} for parameter Label is invalid. Reason: can't find label on existing policy."
            ))
        };
        let mut policy: Value = rec
            .attrs
            .get("Policy")
            .and_then(|p| serde_json::from_str(p).ok())
            .ok_or_else(not_found)?;
        let statements = policy
            .get_mut("Statement")
            .and_then(Value::as_array_mut)
            .ok_or_else(not_found)?;
        let before = statements.len();
        statements.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(label));
        if statements.len() == before {
            return Err(not_found());
        }
        if statements.is_empty() {
            rec.attrs.remove("Policy");
        } else {
            rec.attrs.insert("Policy".into(), policy.to_string());
        }
        rec.modified = now_ms() / 1000;
        self.save_record(&q, rec)?;
        Ok(json!({}))
    }

    /// The queue's `maxReceiveCount` and dead-letter queue, when its redrive policy names one
    /// that exists.
    pub(crate) fn redrive_target(
        &self,
        rec: &QueueRecord,
    ) -> Option<(u32, std::sync::Arc<super::Queue>)> {
        let policy: Value = serde_json::from_str(rec.attrs.get("RedrivePolicy")?).ok()?;
        let target = policy.get("deadLetterTargetArn")?.as_str()?;
        let count = match policy.get("maxReceiveCount")? {
            Value::Number(n) => n.as_u64()?,
            Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        let (region, account, name) = parse_queue_arn(target)?;
        let dlq = self.queue(&account, &region, &name).ok().flatten()?;
        Some((u32::try_from(count).ok()?, dlq))
    }
}

/// `FifoThroughputLimit=perMessageGroupId` needs `DeduplicationScope=messageGroup`.
fn check_throughput(attrs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if attrs.get("FifoThroughputLimit").map(String::as_str) == Some("perMessageGroupId")
        && attrs.get("DeduplicationScope").map(String::as_str) != Some("messageGroup")
    {
        return Err(ApiError::client(
            "InvalidAttributeValue",
            "The perMessageGroupId value is allowed only when the value for DeduplicationScope is messageGroup.",
        ));
    }
    Ok(())
}

fn normalize_redrive_allow(value: &str) -> Result<String, ApiError> {
    const N: &str = "RedriveAllowPolicy";
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(value) else {
        return Err(invalid_attribute_reason(N, value, "Invalid JSON."));
    };
    let permission = doc
        .get("redrivePermission")
        .and_then(Value::as_str)
        .unwrap_or("");
    let sources = doc.get("sourceQueueArns").and_then(Value::as_array);
    match permission {
        "allowAll" | "denyAll" => {
            if sources.is_some_and(|s| !s.is_empty()) {
                return Err(invalid_attribute_reason(
                    N,
                    value,
                    "Only byQueue redrivePermission allows sourceQueueArns.",
                ));
            }
        }
        "byQueue" => {
            let n = sources.map_or(0, Vec::len);
            if n == 0 || n > 10 {
                return Err(invalid_attribute_reason(
                    N,
                    value,
                    "byQueue redrivePermission requires 1 to 10 sourceQueueArns.",
                ));
            }
        }
        _ => {
            return Err(invalid_attribute_reason(
                N,
                value,
                "Invalid value for redrivePermission: must be one of allowAll, denyAll, byQueue.",
            ))
        }
    }
    Ok(Value::Object(doc).to_string())
}

/// Tags of a `TagMap` member, validated.
fn tags_of(v: Option<&Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    let Some(map) = v.and_then(Value::as_object) else {
        return Ok(out);
    };
    if map.len() > MAX_TAGS {
        return Err(invalid_param(format!(
            "Too many tags: {} (at most {MAX_TAGS}).",
            map.len()
        )));
    }
    for (k, v) in map {
        let v = v.as_str().unwrap_or_default();
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(invalid_param(format!("Invalid tag: {k}.")));
        }
        out.insert(k.clone(), v.to_string());
    }
    Ok(out)
}
