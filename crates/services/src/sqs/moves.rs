//! Message move tasks (dead-letter queue redrive). `StartMessageMoveTask` moves every visible
//! message of a dead-letter queue back to the queue it came from (or to `DestinationArn`) at
//! once, so a task is `COMPLETED` as soon as it is listed. Tasks live in memory, the latest
//! ten per source queue; the moved messages themselves are durable like any other.

use super::records::{QueueRecord, QUEUES};
use super::state::Msg;
use super::{invalid_param, now_ms, opt_i64, opt_str, parse_queue_arn, req_str, Queue, Sqs};
use crate::common::store_error;
use crate::RequestContext;
use base64::Engine as _;
use fc_protocol::ApiError;
use fc_store::StoreExt;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tasks kept per source queue.
const KEEP: usize = 10;

/// One finished move task.
#[derive(Debug, Clone)]
pub(crate) struct MoveTask {
    pub id: String,
    pub source: String,
    pub destination: Option<String>,
    pub rate: Option<i64>,
    pub moved: u64,
    pub to_move: u64,
    pub started_ms: i64,
}

fn not_found(member: &str) -> ApiError {
    ApiError::client(
        "ResourceNotFoundException",
        format!("The resource that you specified for the {member} parameter doesn't exist."),
    )
}

impl Sqs {
    fn queue_by_arn(&self, arn: &str, member: &str) -> Result<Arc<Queue>, ApiError> {
        let (region, account, name) = parse_queue_arn(arn).ok_or_else(|| {
            invalid_param(format!("Value {arn} for parameter {member} is invalid."))
        })?;
        self.queue(&account, &region, &name)?
            .ok_or_else(|| not_found(member))
    }

    /// Whether some queue of the same account and region names `q` in its redrive policy.
    fn is_dead_letter_queue(&self, q: &Queue) -> Result<bool, ApiError> {
        let scope = q.scope();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = self
                .store
                .scan_json::<QueueRecord>(&scope, QUEUES, "", after.as_deref(), 500)
                .map_err(store_error)?;
            for (_, rec) in &page {
                let target = rec
                    .attrs
                    .get("RedrivePolicy")
                    .and_then(|p| serde_json::from_str::<Value>(p).ok())
                    .and_then(|p| {
                        p.get("deadLetterTargetArn")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                if target.as_deref() == Some(q.arn.as_str()) {
                    return Ok(true);
                }
            }
            after = page.last().map(|(k, _)| k.clone());
            if !more {
                return Ok(false);
            }
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Vec<MoveTask>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) async fn start_message_move_task(
        &self,
        _ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let source = req_str(input, "SourceArn")?;
        let src = self.queue_by_arn(source, "SourceArn")?;
        let rate = opt_i64(input, "MaxNumberOfMessagesPerSecond")?;
        if let Some(r) = rate {
            if !(1..=500).contains(&r) {
                return Err(invalid_param(format!(
                    "Value {r} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: Must be between 1 and 500."
                )));
            }
        }
        let dest = match opt_str(input, "DestinationArn") {
            Some(d) => Some(self.queue_by_arn(d, "DestinationArn")?),
            None => None,
        };
        if !self.is_dead_letter_queue(&src)? {
            return Err(invalid_param(
                "Source queue must be configured as a Dead Letter Queue.",
            ));
        }
        let now = now_ms();
        let msgs = src.lock().take_visible(now);
        let to_move = msgs.len() as u64;
        let mut moved = 0u64;
        let mut stay: Vec<Msg> = Vec::new();
        let mut by_dest: BTreeMap<String, Vec<Msg>> = BTreeMap::new();
        match &dest {
            Some(d) => {
                by_dest.insert(d.arn.clone(), msgs);
            }
            None => {
                for m in msgs {
                    match m.rec.dlq_source.clone() {
                        Some(a) => by_dest.entry(a).or_default().push(m),
                        None => stay.push(m),
                    }
                }
            }
        }
        let mut failure = None;
        for (arn, ms) in by_dest {
            let target = match &dest {
                Some(d) => Some(d.clone()),
                None => self.queue_by_arn(&arn, "DestinationArn").ok(),
            };
            match target {
                Some(t) if t.arn != src.arn => {
                    let n = ms.len() as u64;
                    match self.transfer(&src, &t, ms.clone(), None).await {
                        Ok(()) => moved += n,
                        Err(e) => {
                            failure = Some(e);
                            stay.extend(ms);
                        }
                    }
                }
                _ => stay.extend(ms),
            }
        }
        if !stay.is_empty() {
            let mut st = src.lock();
            for m in stay {
                st.insert(m, now);
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let handle = base64::engine::general_purpose::STANDARD
            .encode(json!({"taskId": id, "sourceArn": src.arn}).to_string());
        {
            let mut tasks = self.tasks();
            tasks.push(MoveTask {
                id,
                source: src.arn.clone(),
                destination: dest.as_ref().map(|d| d.arn.clone()),
                rate,
                moved,
                to_move,
                started_ms: now,
            });
            let mine = tasks.iter().filter(|t| t.source == src.arn).count();
            if mine > KEEP {
                if let Some(pos) = tasks.iter().position(|t| t.source == src.arn) {
                    tasks.remove(pos);
                }
            }
        }
        Ok(json!({ "TaskHandle": handle }))
    }

    pub(crate) fn list_message_move_tasks(
        &self,
        _ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let source = req_str(input, "SourceArn")?;
        let src = self.queue_by_arn(source, "SourceArn")?;
        let max = opt_i64(input, "MaxResults")?.unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(invalid_param(format!(
                "Value {max} for parameter MaxResults is invalid. Reason: Must be between 1 and 10."
            )));
        }
        let tasks = self.tasks();
        let results: Vec<Value> = tasks
            .iter()
            .rev()
            .filter(|t| t.source == src.arn)
            .take(usize::try_from(max).unwrap_or(1))
            .map(|t| {
                let mut o = Map::new();
                o.insert("Status".into(), Value::from("COMPLETED"));
                o.insert("SourceArn".into(), Value::from(t.source.clone()));
                if let Some(d) = &t.destination {
                    o.insert("DestinationArn".into(), Value::from(d.clone()));
                }
                if let Some(r) = t.rate {
                    o.insert("MaxNumberOfMessagesPerSecond".into(), Value::from(r));
                }
                o.insert(
                    "ApproximateNumberOfMessagesMoved".into(),
                    Value::from(t.moved),
                );
                o.insert(
                    "ApproximateNumberOfMessagesToMove".into(),
                    Value::from(t.to_move),
                );
                o.insert("StartedTimestamp".into(), Value::from(t.started_ms));
                Value::Object(o)
            })
            .collect();
        Ok(json!({ "Results": results }))
    }

    pub(crate) fn cancel_message_move_task(
        &self,
        _ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let handle = req_str(input, "TaskHandle")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(handle)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let known = decoded
            .as_ref()
            .and_then(|v| v.get("taskId"))
            .and_then(Value::as_str)
            .is_some_and(|id| self.tasks().iter().any(|t| t.id == id));
        if known {
            // Tasks finish when they start: there is nothing running to cancel.
            return Err(ApiError::client(
                "UnsupportedOperation",
                "The task has already completed and cannot be cancelled.",
            ));
        }
        Err(not_found("TaskHandle"))
    }
}
