//! Amazon CloudWatch Logs: log groups, log streams and log events, with retention that really
//! expires, the filter-pattern language (`filter`) and an internal API for the container
//! runtime (`Logs::append`, `Logs::tail`).
//!
//! State layout (tables in the caller's account/region scope; `\0` separates key parts, and
//! neither group nor stream names may contain it, so a prefix scan never crosses a boundary):
//! - `logs.groups`: `<group>` -> [`GroupRecord`]
//! - `logs.streams`: `<group>\0<stream>` -> [`StreamRecord`]
//! - `logs.streams_by_time`: `<group>\0<lastEventTimestamp:016>\0<stream>` -> stream name,
//!   the index behind `DescribeLogStreams --order-by LastEventTime`
//! - `logs.events`: `<group>\0<stream>\0<timestamp:016>\0<seq:016>` -> [`EventRecord`]; a
//!   stream's events scan in timestamp order, ties in arrival order.
//!
//! Deleting a group deletes every key under `<group>\0` in the three child tables. Mutations
//! are serialized by one lock (they read-modify-write stream and group records); reads are not.

// `ApiError` is the crate-wide error type; its size is not this module's choice.
#![allow(clippy::result_large_err)]

mod events;
pub mod filter;
mod groups;
pub mod regex;
#[cfg(test)]
mod tests;

use crate::common::store_error;
use crate::{RequestContext, Service};
use async_trait::async_trait;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

const GROUPS: &str = "logs.groups";
const STREAMS: &str = "logs.streams";
const STREAMS_BY_TIME: &str = "logs.streams_by_time";
const EVENTS: &str = "logs.events";
/// Separator of key parts.
const SEP: char = '\u{0}';
/// Records are scanned in pages of this many.
const CHUNK: usize = 500;
const DAY_MS: i64 = 86_400_000;
/// Largest timestamp that fits the 16-digit key field (year 318857).
const MAX_TS: i64 = 9_999_999_999_999_999;
/// Largest per-stream sequence number that fits the 16-digit key field.
const MAX_SEQ: u64 = 9_999_999_999_999_999;

/// The CloudWatch Logs service.
pub struct Logs {
    store: Arc<dyn Store>,
    /// Serializes mutations (they read-modify-write group and stream records).
    lock: Mutex<()>,
    /// Decoded group records and their `DescribeLogGroups` entries, by scope and name, each
    /// with the stored bytes it was decoded from: reused while the stored record is still
    /// byte-for-byte the same, so the store stays the only source of truth (resets, imports
    /// and every writer invalidate it without knowing about it).
    decoded_groups: Mutex<HashMap<(Scope, String), Arc<DecodedGroup>>>,
}

/// A group record decoded once (see [`Logs::decoded_groups`]).
struct DecodedGroup {
    raw: Vec<u8>,
    rec: GroupRecord,
    json: Value,
}

/// Most entries kept in [`Logs::decoded_groups`] (emptied when full).
const DECODED_GROUPS_MAX: usize = 10_000;

/// A log group.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroupRecord {
    v: u32,
    name: String,
    creation_time: i64,
    #[serde(default)]
    retention_in_days: Option<i64>,
    #[serde(default)]
    kms_key_id: Option<String>,
    log_group_class: String,
    #[serde(default)]
    deletion_protection: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Sum of the message bytes of the group's events.
    #[serde(default)]
    stored_bytes: i64,
}

/// A log stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamRecord {
    v: u32,
    name: String,
    creation_time: i64,
    #[serde(default)]
    first_event_timestamp: Option<i64>,
    #[serde(default)]
    last_event_timestamp: Option<i64>,
    #[serde(default)]
    last_ingestion_time: Option<i64>,
    #[serde(default)]
    stored_bytes: i64,
    /// Sequence number of the next event stored (per stream, never reused).
    next_seq: u64,
    /// Counts `PutLogEvents` calls; reported as `uploadSequenceToken`.
    #[serde(default)]
    uploads: u64,
}

/// One stored event. Its timestamp and sequence number are in the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventRecord {
    v: u32,
    /// The message.
    m: String,
    /// Ingestion time (epoch ms).
    i: i64,
}

impl Logs {
    /// The service over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Logs {
            store,
            lock: Mutex::new(()),
            decoded_groups: Mutex::new(HashMap::new()),
        }
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get_group(&self, scope: &Scope, name: &str) -> Result<Option<GroupRecord>, ApiError> {
        self.store
            .get_json(scope, GROUPS, name)
            .map_err(store_error)
    }

    fn require_group(&self, scope: &Scope, name: &str) -> Result<GroupRecord, ApiError> {
        self.get_group(scope, name)?.ok_or_else(group_not_found)
    }

    fn get_stream(
        &self,
        scope: &Scope,
        group: &str,
        stream: &str,
    ) -> Result<Option<StreamRecord>, ApiError> {
        self.store
            .get_json(scope, STREAMS, &stream_key(group, stream))
            .map_err(store_error)
    }

    fn require_stream(
        &self,
        scope: &Scope,
        group: &str,
        stream: &str,
    ) -> Result<StreamRecord, ApiError> {
        self.get_stream(scope, group, stream)?
            .ok_or_else(stream_not_found)
    }
}

#[async_trait]
impl Service for Logs {
    fn name(&self) -> &'static str {
        "logs"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        match ctx.operation.as_str() {
            "CreateLogGroup" => self.create_log_group(ctx, input),
            "DeleteLogGroup" => self.delete_log_group(ctx, input),
            "DescribeLogGroups" => self.describe_log_groups(ctx, input),
            "ListLogGroups" => self.list_log_groups(ctx, input),
            "PutRetentionPolicy" => self.put_retention_policy(ctx, input),
            "DeleteRetentionPolicy" => self.delete_retention_policy(ctx, input),
            "PutLogGroupDeletionProtection" => self.put_deletion_protection(ctx, input),
            "TagLogGroup" => self.tag_log_group(ctx, input),
            "UntagLogGroup" => self.untag_log_group(ctx, input),
            "ListTagsLogGroup" => self.list_tags_log_group(ctx, input),
            "TagResource" => self.tag_resource(ctx, input),
            "UntagResource" => self.untag_resource(ctx, input),
            "ListTagsForResource" => self.list_tags_for_resource(ctx, input),
            "CreateLogStream" => self.create_log_stream(ctx, input),
            "DeleteLogStream" => self.delete_log_stream(ctx, input),
            "DescribeLogStreams" => self.describe_log_streams(ctx, input),
            "PutLogEvents" => self.put_log_events(ctx, input),
            "GetLogEvents" => self.get_log_events(ctx, input),
            "FilterLogEvents" => self.filter_log_events(ctx, input),
            "TestMetricFilter" => self.test_metric_filter(input),
            op => Err(ApiError::not_implemented("logs", op)),
        }
    }
}

// ---- keys ----

fn stream_key(group: &str, stream: &str) -> String {
    format!("{group}{SEP}{stream}")
}

/// Prefix of every child record of a group.
fn group_children(group: &str) -> String {
    format!("{group}{SEP}")
}

fn time_index_key(group: &str, last_event: Option<i64>, stream: &str) -> String {
    format!(
        "{group}{SEP}{:016}{SEP}{stream}",
        clamp_ts(last_event.unwrap_or(0))
    )
}

fn events_prefix(group: &str, stream: &str) -> String {
    format!("{group}{SEP}{stream}{SEP}")
}

/// Event key suffix (after the stream prefix).
fn event_suffix(ts: i64, seq: u64) -> String {
    format!("{:016}{SEP}{:016}", clamp_ts(ts), seq.min(MAX_SEQ))
}

/// Read `(timestamp, seq)` back from an event key suffix.
fn parse_event_suffix(suffix: &str) -> Option<(i64, u64)> {
    let (ts, seq) = suffix.split_once(SEP)?;
    Some((ts.parse().ok()?, seq.parse().ok()?))
}

fn clamp_ts(ts: i64) -> i64 {
    ts.clamp(0, MAX_TS)
}

// ---- ARNs, time, errors ----

fn group_arn(ctx_region: &str, account: &str, group: &str) -> String {
    format!("arn:aws:logs:{ctx_region}:{account}:log-group:{group}")
}

fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterException", msg)
}

fn group_not_found() -> ApiError {
    ApiError::client(
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
}

fn stream_not_found() -> ApiError {
    ApiError::client(
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
}

fn validation(member: &str, value: impl std::fmt::Display, constraint: &str) -> ApiError {
    invalid(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// Typed input; type mismatches answer `InvalidParameterException`.
fn input<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    crate::common::input(v, "InvalidParameterException")
}

fn check_limit(limit: Option<i64>, max: i64) -> Result<usize, ApiError> {
    match limit {
        None => Ok(usize::try_from(max).unwrap_or(usize::MAX)),
        Some(n) if n < 1 => Err(validation(
            "limit",
            n,
            "Member must have value greater than or equal to 1",
        )),
        Some(n) if n > max => Err(validation(
            "limit",
            n,
            &format!("Member must have value less than or equal to {max}"),
        )),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

fn validate_group_name(name: &str, member: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 512 {
        return Err(validation(
            member,
            name,
            "Member must have length between 1 and 512",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
    {
        return Err(validation(
            member,
            name,
            r"Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+",
        ));
    }
    Ok(())
}

fn validate_stream_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 512 {
        return Err(validation(
            "logStreamName",
            name,
            "Member must have length between 1 and 512",
        ));
    }
    if name.contains([':', '*', SEP]) {
        return Err(validation(
            "logStreamName",
            name,
            "Member must satisfy regular expression pattern: [^:*]*",
        ));
    }
    Ok(())
}

/// The group a `logGroupName` / `logGroupIdentifier` pair names (exactly one of them). The
/// identifier is a name or an ARN (with or without the trailing `:*`) of the caller's
/// account and region.
fn group_name_of(
    ctx: &RequestContext,
    name: Option<String>,
    identifier: Option<String>,
) -> Result<String, ApiError> {
    match (name, identifier) {
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (None, None) => Err(invalid(
            "Either logGroupName or logGroupIdentifier must be specified.",
        )),
        (Some(n), None) => {
            validate_group_name(&n, "logGroupName")?;
            Ok(n)
        }
        (None, Some(id)) => {
            if id.starts_with("arn:") {
                group_from_arn(ctx, &id)
            } else {
                validate_group_name(&id, "logGroupIdentifier")?;
                Ok(id)
            }
        }
    }
}

/// The group name of a log-group ARN in the caller's account and region.
fn group_from_arn(ctx: &RequestContext, arn: &str) -> Result<String, ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "logs" {
        return Err(invalid(format!("Invalid ARN: {arn}")));
    }
    let Some(rest) = parts[5].strip_prefix("log-group:") else {
        return Err(ApiError::client(
            "ResourceNotFoundException",
            format!("The specified resource does not exist: {arn}"),
        ));
    };
    let name = rest.strip_suffix(":*").unwrap_or(rest);
    validate_group_name(name, "resourceArn")?;
    if parts[3] != ctx.region || parts[4] != ctx.account {
        return Err(group_not_found());
    }
    Ok(name.to_string())
}

/// Workload output (instances, tasks, functions) reaches CloudWatch Logs through the execution
/// layer's sink: the group and stream are created on first use, as the awslogs driver does.
impl fc_runtime::LogSink for Logs {
    fn append(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    ) {
        if let Err(e) = Logs::append(self, account, region, group, stream, events) {
            tracing::warn!(group, stream, error = %e, "workload output could not be written to CloudWatch Logs");
        }
    }
}
