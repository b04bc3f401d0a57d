//! Who may change S3 metadata when: all of it (bucket-level changes, which hold it
//! exclusively), one key's versions (object puts), and the content reference counts.
//!
//! Lives here: [`Locks`], which blocking code acquires through a condition variable and async
//! code awaits, so a put that waits for its durable commit holds its key without holding a
//! thread. Must not live here: what the locks protect.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The S3 metadata locks. Rules: a key is held by one writer at a time and never while the
/// exclusive lock is held or wanted (so a stream of puts cannot starve a bucket-level change);
/// the exclusive lock waits until no key is held; the reference-count lock is taken last,
/// under the exclusive lock or a key.
#[derive(Default)]
pub(crate) struct Locks {
    state: Mutex<State>,
    /// Wakes blocked acquirers after a release.
    released: Condvar,
    /// Wakes async acquirers after a release.
    notify: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    exclusive: bool,
    exclusive_waiting: usize,
    keys: HashSet<u64>,
    refs: bool,
}

#[derive(Debug, Clone, Copy)]
enum Held {
    Exclusive,
    Key(u64),
    Refs,
}

/// A held lock; released on drop. It owns a handle on the locks, so it can outlive the request
/// that took it (a put hands its guards to the commit's call-back: a request cancelled while
/// waiting for its commit keeps its key locked until the commit is done).
#[must_use = "the lock is released when the guard is dropped"]
pub(crate) struct Guard {
    locks: Arc<Locks>,
    held: Held,
}

impl Drop for Guard {
    fn drop(&mut self) {
        {
            let mut st = self.locks.state();
            match self.held {
                Held::Exclusive => st.exclusive = false,
                Held::Key(k) => {
                    st.keys.remove(&k);
                }
                Held::Refs => st.refs = false,
            }
        }
        self.locks.released.notify_all();
        self.locks.notify.notify_waiters();
    }
}

impl Locks {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn guard(self: &Arc<Self>, held: Held) -> Guard {
        Guard {
            locks: self.clone(),
            held,
        }
    }

    /// Block until `ready` holds for the state, then `take` it. A wait happens outside the
    /// async runtime's worker role (see [`super::blocking`]): the holders it waits for may be
    /// tasks that need a worker to finish.
    fn wait_then(&self, ready: impl Fn(&State) -> bool, take: impl FnOnce(&mut State)) {
        let mut st = self.state();
        if !ready(&st) {
            drop(st);
            st = super::blocking(|| {
                let mut st = self.state();
                while !ready(&st) {
                    st = self
                        .released
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                st
            });
        }
        take(&mut st);
    }

    /// All S3 metadata, exclusively (blocking).
    pub(crate) fn exclusive(self: &Arc<Self>) -> Guard {
        self.state().exclusive_waiting += 1;
        self.wait_then(
            |st| !st.exclusive && st.keys.is_empty(),
            |st| {
                st.exclusive_waiting -= 1;
                st.exclusive = true;
            },
        );
        self.guard(Held::Exclusive)
    }

    /// The versions of the key whose hash is `key` (awaited).
    pub(crate) async fn key(self: &Arc<Self>, key: u64) -> Guard {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            {
                let mut st = self.state();
                if !st.exclusive && st.exclusive_waiting == 0 && !st.keys.contains(&key) {
                    st.keys.insert(key);
                    return self.guard(Held::Key(key));
                }
                // Registered before the state is released, so no release is missed.
                notified.as_mut().enable();
            }
            notified.await;
        }
    }

    /// The content reference counts (blocking).
    pub(crate) fn refs_blocking(self: &Arc<Self>) -> Guard {
        self.wait_then(|st| !st.refs, |st| st.refs = true);
        self.guard(Held::Refs)
    }

    /// The content reference counts (awaited).
    pub(crate) async fn refs(self: &Arc<Self>) -> Guard {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            {
                let mut st = self.state();
                if !st.refs {
                    st.refs = true;
                    return self.guard(Held::Refs);
                }
                notified.as_mut().enable();
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_is_held_by_one_writer_at_a_time() {
        let locks = Arc::new(Locks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let (locks, inside) = (locks.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    let _g = locks.key(i % 2).await;
                    assert!(
                        inside.fetch_add(1, Ordering::SeqCst) < 2,
                        "two holders of a key"
                    );
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exclusive_waits_for_keys_and_keys_wait_for_it() {
        let locks = Arc::new(Locks::default());
        let k = locks.key(1).await;
        // A blocked exclusive acquirer does not stop the runtime: the key's holder (a task)
        // still runs and releases it.
        let l2 = locks.clone();
        let excl = tokio::spawn(async move {
            let g = l2.exclusive();
            let taken = l2.state().exclusive;
            drop(g);
            taken
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!excl.is_finished(), "exclusive taken while a key is held");
        // Wanted exclusively: new keys wait.
        let l3 = locks.clone();
        let later = tokio::spawn(async move {
            let _g = l3.key(2).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !later.is_finished(),
            "a key taken while the exclusive lock is wanted"
        );
        drop(k);
        assert!(excl.await.unwrap());
        later.await.unwrap();
        let st = locks.state();
        assert!(!st.exclusive && st.keys.is_empty() && st.exclusive_waiting == 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refs_lock_is_shared_by_blocking_and_async_holders() {
        let locks = Arc::new(Locks::default());
        let r = locks.refs().await;
        let l2 = locks.clone();
        let blocked = tokio::spawn(async move {
            let _g = l2.refs_blocking();
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished());
        drop(r);
        blocked.await.unwrap();
        let _again = locks.refs().await;
    }
}
