//! Event notifications: validating notification configurations against the [`crate::bus::Bus`]
//! destinations, the `s3:TestEvent` sent when a queue is configured, and the S3 event records
//! delivered to SQS queues and Lambda functions.

use super::model::{BucketRec, ObjectRec};
use super::util::event_key_encode;
use super::{canonical_id, invalid_argument, S3};
use crate::RequestContext;
use fc_protocol::value::{format_iso8601, now_secs};
use fc_protocol::ApiError;
use serde_json::{json, Value};

fn dest_error(arn: &str) -> ApiError {
    invalid_argument("Unable to validate the following destination configurations")
        .with_field("ArgumentName", json!(arn))
        .with_field(
            "ArgumentValue",
            json!("Not authorized to invoke function or destination does not exist"),
        )
}

/// Whether a configured event pattern (`s3:ObjectCreated:*`) covers `event`
/// (`ObjectCreated:Put`).
pub fn event_matches(pattern: &str, event: &str) -> bool {
    let p = pattern.strip_prefix("s3:").unwrap_or(pattern);
    match p.strip_suffix('*') {
        Some(prefix) => event.starts_with(prefix),
        None => p == event,
    }
}

/// Whether `key` passes a configuration's `Filter.Key.FilterRules` (prefix/suffix).
pub fn filter_matches(filter: Option<&Value>, key: &str) -> bool {
    let rules = filter
        .and_then(|f| f.get("Key"))
        .and_then(|k| k.get("FilterRules"))
        .and_then(Value::as_array);
    for r in rules.into_iter().flatten() {
        let name = r.get("Name").and_then(Value::as_str).unwrap_or("");
        let value = r.get("Value").and_then(Value::as_str).unwrap_or("");
        let ok = match name.to_ascii_lowercase().as_str() {
            "prefix" => key.starts_with(value),
            "suffix" => key.ends_with(value),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn configs<'a>(conf: &'a Value, list: &str) -> impl Iterator<Item = &'a Value> {
    conf.get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

impl S3 {
    /// Check every destination exists (and Lambda allows S3), give configurations without an
    /// `Id` one; returns the queue ARNs to send the test event to.
    pub(crate) fn validate_notification(
        &self,
        bucket: &str,
        conf: &mut Value,
    ) -> Result<Vec<String>, ApiError> {
        let mut queues = Vec::new();
        let source = format!("arn:aws:s3:::{bucket}");
        if let Some(obj) = conf.as_object_mut() {
            for (list, arn_member) in [
                ("QueueConfigurations", "QueueArn"),
                ("LambdaFunctionConfigurations", "LambdaFunctionArn"),
                ("TopicConfigurations", "TopicArn"),
            ] {
                let Some(items) = obj.get_mut(list).and_then(Value::as_array_mut) else {
                    continue;
                };
                for c in items.iter_mut() {
                    let arn = c
                        .get(arn_member)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let events_ok = c
                        .get("Events")
                        .and_then(Value::as_array)
                        .is_some_and(|e| !e.is_empty());
                    if !events_ok {
                        return Err(super::malformed_xml());
                    }
                    for e in c
                        .get("Events")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let e = e.as_str().unwrap_or("");
                        if !e.starts_with("s3:") {
                            return Err(invalid_argument(
                                "The event is not supported for notifications",
                            )
                            .with_field("ArgumentName", json!("Event"))
                            .with_field("ArgumentValue", json!(e)));
                        }
                    }
                    let ok = match list {
                        "QueueConfigurations" => {
                            self.bus.queues().is_some_and(|q| q.queue_exists(&arn))
                        }
                        "LambdaFunctionConfigurations" => self.bus.functions().is_some_and(|f| {
                            f.function_exists(&arn) && f.allows(&arn, "s3.amazonaws.com", &source)
                        }),
                        _ => false,
                    };
                    if !ok {
                        return Err(dest_error(&arn));
                    }
                    if list == "QueueConfigurations" {
                        queues.push(arn.clone());
                    }
                    if let Some(m) = c.as_object_mut() {
                        if !m.contains_key("Id") {
                            m.insert("Id".into(), json!(uuid::Uuid::new_v4().to_string()));
                        }
                    }
                }
            }
        }
        Ok(queues)
    }

    pub(crate) fn send_test_event(&self, ctx: &RequestContext, bucket: &str, queue_arn: &str) {
        let Some(q) = self.bus.queues() else {
            return;
        };
        let msg = json!({
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": format_iso8601(now_secs()),
            "Bucket": bucket,
            "RequestId": ctx.request_id,
            "HostId": host_id(&ctx.request_id),
        });
        if let Err(e) = q.send_message(queue_arn, &msg.to_string()) {
            tracing::warn!(queue = queue_arn, error = %e, "s3 test event not delivered");
        }
    }

    /// Deliver `event` (`ObjectCreated:Put`) for `rec` to every matching destination.
    pub(crate) fn notify(
        &self,
        ctx: &RequestContext,
        bucket: &BucketRec,
        event: &str,
        rec: &ObjectRec,
    ) {
        let Some(conf) = &bucket.notification else {
            return;
        };
        let matching = |c: &&Value| {
            c.get("Events").and_then(Value::as_array).is_some_and(|es| {
                es.iter()
                    .any(|e| e.as_str().is_some_and(|e| event_matches(e, event)))
            }) && filter_matches(c.get("Filter"), &rec.key)
        };
        for c in configs(conf, "QueueConfigurations").filter(matching) {
            let arn = c.get("QueueArn").and_then(Value::as_str).unwrap_or("");
            let id = c.get("Id").and_then(Value::as_str).unwrap_or("");
            let body = event_record(ctx, bucket, event, rec, id);
            if let Some(q) = self.bus.queues() {
                if let Err(e) = q.send_message(arn, &body.to_string()) {
                    tracing::warn!(queue = arn, error = %e, "s3 event not delivered");
                }
            }
        }
        for c in configs(conf, "LambdaFunctionConfigurations").filter(matching) {
            let arn = c
                .get("LambdaFunctionArn")
                .and_then(Value::as_str)
                .unwrap_or("");
            let id = c.get("Id").and_then(Value::as_str).unwrap_or("");
            let body = event_record(ctx, bucket, event, rec, id);
            if let Some(f) = self.bus.functions() {
                let source = format!("arn:aws:s3:::{}", bucket.name);
                if !f.allows(arn, "s3.amazonaws.com", &source) {
                    tracing::warn!(function = arn, "s3 may not invoke the function");
                    continue;
                }
                if let Err(e) = f.invoke_async(arn, &body.to_string()) {
                    tracing::warn!(function = arn, error = %e, "s3 event not delivered");
                }
            }
        }
    }
}

fn host_id(request_id: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(request_id.as_bytes()))
}

/// The S3 event message (`{"Records": [...]}`) for one event.
pub fn event_record(
    ctx: &RequestContext,
    bucket: &BucketRec,
    event: &str,
    rec: &ObjectRec,
    config_id: &str,
) -> Value {
    let principal = format!("AWS:{}", ctx.principal.user_id);
    let mut object = json!({
        "key": event_key_encode(&rec.key),
        "sequencer": format!("{:016X}", rec.seq),
    });
    if event.starts_with("ObjectCreated") {
        object["size"] = json!(rec.size);
        object["eTag"] = json!(rec.etag.trim_matches('"'));
    }
    if rec.version_id != "null" && !rec.version_id.is_empty() {
        object["versionId"] = json!(rec.version_id);
    }
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": bucket.region,
        "eventTime": format_iso8601((now_secs() * 1000.0).round() / 1000.0),
        "eventName": event,
        "userIdentity": {"principalId": principal},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": ctx.request_id,
            "x-amz-id-2": host_id(&ctx.request_id),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": config_id,
            "bucket": {
                "name": bucket.name,
                "ownerIdentity": {"principalId": canonical_id(&bucket.owner)},
                "arn": format!("arn:aws:s3:::{}", bucket.name),
            },
            "object": object,
        }
    }]})
}
