//! One execution environment: the workload that runs a function's runtime, the hand-off of
//! invocations to its Runtime API (`/next` takes the queued invocation; `/response` and
//! `/error` complete it), its init state and its log file.
//!
//! An environment runs one invocation at a time; the executor (`super`) decides which
//! environment an invocation goes to. Must not live here: HTTP (see `api`), the driver.

use crate::spec::FunctionSpec;
use bytes::Bytes;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One invocation as the runtime sees it (`GET /next`).
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: i64,
    pub invoked_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

/// How the runtime ended an invocation (or the environment ended it).
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Response(Bytes),
    /// The response went over the payload limit.
    TooLarge,
    /// `/error`: the runtime's error document.
    Error {
        error_type: String,
        body: Bytes,
    },
    /// `/init/error` before the first `/next`.
    InitError {
        error_type: String,
        body: Bytes,
    },
    /// The runtime process ended: AWS's wording after "Runtime exited with error: ".
    Exited {
        reason: String,
        oom: bool,
    },
}

/// An execution environment.
pub(crate) struct Env {
    /// Workload id (`lambda-<hex>`).
    pub id: String,
    pub spec: Arc<FunctionSpec>,
    /// `YYYY/MM/DD/[version]<32 hex>`.
    pub stream: String,
    pub created: Instant,
    pub provisioned: bool,
    queue_tx: mpsc::UnboundedSender<Invocation>,
    queue_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    /// The invocation in progress: (request id, where its outcome goes).
    pending: Mutex<Option<(String, oneshot::Sender<Outcome>)>>,
    /// true once the runtime asked for its first invocation (init done).
    ready: watch::Sender<bool>,
    init_ms: Mutex<Option<f64>>,
    /// Set when the environment cannot run anything any more.
    failure: watch::Sender<Option<Outcome>>,
    /// The workload's output file; START/END/REPORT go there too, in order with the output.
    out: Mutex<Option<(PathBuf, std::fs::File)>>,
    pub last_used: Mutex<Instant>,
    /// Destroy when the current invocation ends (the function was updated or deleted).
    pub retired: AtomicBool,
    pub destroyed: AtomicBool,
    pub invocations: AtomicU64,
    /// Background tasks of the environment (its own Runtime API listener).
    pub tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// (when, peak memory MB) of the last stats reading.
    pub mem: Mutex<Option<(Instant, u64)>>,
}

impl Env {
    pub fn new(id: String, spec: Arc<FunctionSpec>, stream: String, provisioned: bool) -> Env {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        Env {
            id,
            spec,
            stream,
            created: Instant::now(),
            provisioned,
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            pending: Mutex::new(None),
            ready: watch::channel(false).0,
            init_ms: Mutex::new(None),
            failure: watch::channel(None).0,
            out: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            retired: AtomicBool::new(false),
            destroyed: AtomicBool::new(false),
            invocations: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            mem: Mutex::new(None),
        }
    }

    /// Where the workload writes its output (from the driver's handle).
    pub fn set_output(&self, path: PathBuf) {
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            *lock(&self.out) = Some((path, f));
        }
    }

    /// Appends lines to the environment's log stream (in order with the function's output).
    /// Returns the file offset before them.
    pub fn log(&self, text: &str) -> u64 {
        let mut g = lock(&self.out);
        let Some((_, f)) = g.as_mut() else {
            return 0;
        };
        let at = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut buf = text.to_string();
        if !buf.ends_with('\n') {
            buf.push('\n');
        }
        let _ = f.write_all(buf.as_bytes());
        at
    }

    /// The last `max` bytes of the log written since `offset`.
    pub fn log_since(&self, offset: u64, max: u64) -> Vec<u8> {
        let path = match lock(&self.out).as_ref() {
            Some((p, _)) => p.clone(),
            None => return Vec::new(),
        };
        let Ok(mut f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = offset.max(len.saturating_sub(max));
        if f.seek(SeekFrom::Start(from)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let _ = f.take(max).read_to_end(&mut buf);
        buf
    }

    // ---- the runtime's side ----

    /// `GET /next`: marks init done on the first call, then waits for an invocation.
    pub async fn next(&self) -> Option<Invocation> {
        self.ready.send_if_modified(|r| {
            if *r {
                false
            } else {
                *lock(&self.init_ms) = Some(self.created.elapsed().as_secs_f64() * 1000.0);
                *r = true;
                true
            }
        });
        let mut rx = self.queue_rx.lock().await;
        rx.recv().await
    }

    /// `/response` or `/error` of `request_id`. Err when it is not the invocation in progress.
    pub fn complete(&self, request_id: &str, outcome: Outcome) -> Result<(), ()> {
        let mut g = lock(&self.pending);
        match g.as_ref() {
            Some((id, _)) if id == request_id => {}
            _ => return Err(()),
        }
        if let Some((_, tx)) = g.take() {
            let _ = tx.send(outcome);
        }
        Ok(())
    }

    /// Whether `request_id` is the invocation in progress.
    pub fn is_pending(&self, request_id: &str) -> bool {
        lock(&self.pending)
            .as_ref()
            .map(|(id, _)| id == request_id)
            .unwrap_or(false)
    }

    /// The environment cannot run anything any more (init error, runtime exit): the
    /// invocation in progress ends with `outcome`.
    pub fn fail(&self, outcome: Outcome) {
        self.failure.send_if_modified(|f| {
            if f.is_some() {
                false
            } else {
                *f = Some(outcome.clone());
                true
            }
        });
        if let Some((_, tx)) = lock(&self.pending).take() {
            let _ = tx.send(outcome);
        }
    }

    pub fn failed(&self) -> Option<Outcome> {
        self.failure.borrow().clone()
    }

    /// Resolves when the environment failed (extensions' `/event/next` waits for this).
    pub async fn until_failed(&self) {
        let mut rx = self.failure.subscribe();
        let _ = rx.wait_for(|f| f.is_some()).await;
    }

    // ---- the executor's side ----

    /// Waits until init is done: Ok(init duration ms), or the failure that ended init.
    pub async fn wait_ready(&self, limit: std::time::Duration) -> Result<f64, Option<Outcome>> {
        let mut ready = self.ready.subscribe();
        let mut failure = self.failure.subscribe();
        let waited = tokio::time::timeout(limit, async {
            tokio::select! {
                r = ready.wait_for(|r| *r) => r.is_ok(),
                _ = failure.wait_for(|f| f.is_some()) => false,
            }
        })
        .await;
        if let Some(f) = self.failed() {
            return Err(Some(f));
        }
        match waited {
            Ok(true) => Ok(lock(&self.init_ms).unwrap_or(0.0)),
            Ok(false) => Err(self.failed()),
            Err(_) => Err(None),
        }
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Hands an invocation to the runtime; the receiver gets its outcome.
    pub fn dispatch(&self, inv: Invocation) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(f) = self.failed() {
            let _ = tx.send(f);
            return rx;
        }
        *lock(&self.pending) = Some((inv.request_id.clone(), tx));
        let _ = self.queue_tx.send(inv);
        // A failure between the check and the hand-off still reaches the receiver.
        if let Some(f) = self.failed() {
            if let Some((_, tx)) = lock(&self.pending).take() {
                let _ = tx.send(f);
            }
        }
        rx
    }

    /// Forgets the invocation in progress (it timed out).
    pub fn abandon(&self) {
        lock(&self.pending).take();
    }

    pub fn abort_tasks(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst) || self.destroyed.load(Ordering::SeqCst)
    }
}
