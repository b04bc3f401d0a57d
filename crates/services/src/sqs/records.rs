//! Persisted SQS records and their store keys.
//!
//! Tables (in the queue's account/region scope; `\0` separates key parts, queue names cannot
//! contain it):
//! - `sqs.queues`: `<name>` -> [`QueueRecord`]
//! - `sqs.messages`: `<name>\0<seq:020>` -> [`MessageRecord`], written once when sent
//! - `sqs.msgstate`: `<name>\0<seq:020>` -> [`MessageState`], rewritten on every receive and
//!   visibility change (small, so a receive does not rewrite the body)
//! - `sqs.dedup`: `<name>\0<scope key>` -> [`DedupRecord`], FIFO deduplication entries

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) const QUEUES: &str = "sqs.queues";
pub(crate) const MESSAGES: &str = "sqs.messages";
pub(crate) const STATES: &str = "sqs.msgstate";
pub(crate) const DEDUP: &str = "sqs.dedup";
pub(crate) const SEP: char = '\u{0}';

/// A queue: its settable attributes (defaults filled in), tags and times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct QueueRecord {
    pub v: u32,
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Epoch seconds.
    pub created: i64,
    pub modified: i64,
}

/// A message as sent: never changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct MessageRecord {
    pub v: u32,
    pub id: String,
    pub seq: u64,
    pub body: String,
    pub md5_body: String,
    /// Message attributes, model-shaped (`{"DataType", "StringValue" | "BinaryValue"}`).
    #[serde(default)]
    pub attrs: BTreeMap<String, Value>,
    #[serde(default)]
    pub md5_attrs: Option<String>,
    /// `AWSTraceHeader`, if sent.
    #[serde(default)]
    pub trace: Option<String>,
    #[serde(default)]
    pub md5_sys: Option<String>,
    pub sent_ms: i64,
    pub sender: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub dedup: Option<String>,
    /// ARN of the queue a dead-lettered message came from.
    #[serde(default)]
    pub dlq_source: Option<String>,
}

/// The mutable part of a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub(crate) struct MessageState {
    pub v: u32,
    pub visible_at_ms: i64,
    pub receives: u32,
    #[serde(default)]
    pub first_receive_ms: Option<i64>,
    /// Nonce of the latest receipt handle.
    #[serde(default)]
    pub handle: Option<String>,
}

/// A FIFO deduplication entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct DedupRecord {
    pub v: u32,
    pub expires_ms: i64,
    pub message_id: String,
    pub seq: u64,
}

pub(crate) fn message_key(queue: &str, seq: u64) -> String {
    format!("{queue}{SEP}{seq:020}")
}

pub(crate) fn children_prefix(queue: &str) -> String {
    format!("{queue}{SEP}")
}

pub(crate) fn dedup_key(queue: &str, key: &str) -> String {
    format!("{queue}{SEP}{key}")
}
