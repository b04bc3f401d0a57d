//! Internal delivery between services, without HTTP: S3 event notifications to SQS queues and
//! (once Lambda exists) to functions. Each target service registers itself at start-up.

use fc_protocol::ApiError;
use std::sync::{Arc, OnceLock};

/// Something that accepts messages for queues by ARN (SQS).
pub trait QueueSink: Send + Sync {
    /// Whether the queue `arn:aws:sqs:<region>:<account>:<name>` exists.
    fn queue_exists(&self, queue_arn: &str) -> bool;
    /// Enqueue `body` on the queue, as `SendMessage` would.
    fn send_message(&self, queue_arn: &str, body: &str) -> Result<(), ApiError>;
}

/// Something that runs functions by ARN asynchronously (Lambda, `InvocationType=Event`).
pub trait FunctionSink: Send + Sync {
    fn function_exists(&self, function_arn: &str) -> bool;
    /// Whether `principal` (e.g. `s3.amazonaws.com`) may invoke the function for `source_arn`.
    fn allows(&self, function_arn: &str, principal: &str, source_arn: &str) -> bool;
    fn invoke_async(&self, function_arn: &str, payload: &str) -> Result<(), ApiError>;
}

/// The registry of delivery targets.
#[derive(Default)]
pub struct Bus {
    queues: OnceLock<Arc<dyn QueueSink>>,
    functions: OnceLock<Arc<dyn FunctionSink>>,
}

impl Bus {
    pub fn new() -> Arc<Bus> {
        Arc::new(Bus::default())
    }

    pub fn set_queues(&self, sink: Arc<dyn QueueSink>) {
        let _ = self.queues.set(sink);
    }

    pub fn set_functions(&self, sink: Arc<dyn FunctionSink>) {
        let _ = self.functions.set(sink);
    }

    pub fn queues(&self) -> Option<&Arc<dyn QueueSink>> {
        self.queues.get()
    }

    pub fn functions(&self) -> Option<&Arc<dyn FunctionSink>> {
        self.functions.get()
    }
}
