//! Group commit: concurrent requests hand their writes to one thread that applies everything
//! waiting as a single store batch (one transaction, one fsync), then wakes every request.
//! Under load that turns N fsyncs into one; alone, a request pays one commit as before.

use fc_store::{Store, Write};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<(), String>>;

/// Most writes merged into one transaction.
const MAX_GROUP: usize = 4096;

/// The handle requests commit through. Dropping it stops the thread.
pub(crate) struct Committer {
    tx: mpsc::Sender<(Vec<Write>, Reply)>,
}

impl Committer {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel::<(Vec<Write>, Reply)>();
        let spawned = std::thread::Builder::new()
            .name("sqs-commit".into())
            .spawn(move || run(store.as_ref(), &rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the sqs commit thread");
        }
        Committer { tx }
    }

    /// Make `writes` durable; returns once they are.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<(), String> {
        if writes.is_empty() {
            return Ok(());
        }
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((writes, reply))
            .map_err(|_| "the sqs commit thread is gone".to_string())?;
        wait.await
            .map_err(|_| "the sqs commit thread dropped a request".to_string())?
    }
}

fn run(store: &dyn Store, rx: &mpsc::Receiver<(Vec<Write>, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut writes = first.0;
        let mut replies = vec![first.1];
        while writes.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok((w, r)) => {
                    writes.extend(w);
                    replies.push(r);
                }
                Err(_) => break,
            }
        }
        let result = store.batch(writes).map_err(|e| e.to_string());
        for r in replies {
            let _ = r.send(result.clone());
        }
    }
}
