//! The in-memory index of one queue: which messages are visible, delayed or in flight, FIFO
//! group blocking, deduplication and the receive/delete/visibility rules. Pure bookkeeping on
//! records the store already holds (or is about to hold); no I/O, no clock of its own.

use super::records::{MessageRecord, MessageState, QueueRecord};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// One message as the index holds it.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub rec: Arc<MessageRecord>,
    pub st: MessageState,
}

/// A deduplication entry of a FIFO queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dedup {
    pub expires_ms: i64,
    pub message_id: String,
    pub seq: u64,
}

/// Where a message sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Visible,
    Waiting,
}

/// Why a receipt handle does not work on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HandleFault {
    /// No such message (deleted, expired, purged).
    Gone,
    /// The message was received again since this handle was issued.
    Stale,
    /// The handle is the latest one but the message is no longer in flight.
    NotInflight,
}

/// Visible messages a receive looks at per step.
const CHUNK: usize = 32;

/// A message picked by a receive: its record and its new state (to persist).
pub(crate) type Taken = Msg;

/// The state of one queue.
#[derive(Debug)]
pub(crate) struct QueueState {
    pub rec: QueueRecord,
    pub deleted: bool,
    msgs: HashMap<u64, Msg>,
    visible: BTreeSet<u64>,
    /// `(visible_at_ms, seq)` of delayed and in-flight messages.
    waiting: BTreeSet<(i64, u64)>,
    /// In-flight message count per FIFO message group.
    inflight_groups: HashMap<String, u32>,
    pub dedup: HashMap<String, Dedup>,
    pub last_seq: u64,
    pub last_purge_ms: Option<i64>,
}

/// The receive parameters that matter to the index.
#[derive(Debug, Clone)]
pub(crate) struct ReceiveRules {
    pub max: usize,
    pub visibility_ms: i64,
    pub fifo: bool,
    /// `maxReceiveCount` of the queue's redrive policy, when its dead-letter queue exists.
    pub max_receives: Option<u32>,
    pub retention_ms: i64,
}

impl QueueState {
    pub fn new(rec: QueueRecord) -> Self {
        QueueState {
            rec,
            deleted: false,
            msgs: HashMap::new(),
            visible: BTreeSet::new(),
            waiting: BTreeSet::new(),
            inflight_groups: HashMap::new(),
            dedup: HashMap::new(),
            last_seq: 0,
            last_purge_ms: None,
        }
    }

    /// The next sequence number: increasing, and above any earlier one even across restarts
    /// (it follows the clock in nanoseconds when the clock is ahead).
    pub fn next_seq(&mut self, now_ns: u64) -> u64 {
        let s = (self.last_seq + 1).max(now_ns);
        self.last_seq = s;
        s
    }

    /// Add a message (new, or loaded from the store) at its place for `now_ms`.
    pub fn insert(&mut self, msg: Msg, now_ms: i64) {
        let seq = msg.rec.seq;
        self.last_seq = self.last_seq.max(seq);
        if let Some(old) = self.msgs.remove(&seq) {
            self.unplace(&old);
        }
        if msg.st.visible_at_ms > now_ms {
            self.waiting.insert((msg.st.visible_at_ms, seq));
            if msg.st.receives > 0 {
                if let Some(g) = &msg.rec.group {
                    *self.inflight_groups.entry(g.clone()).or_insert(0) += 1;
                }
            }
        } else {
            self.visible.insert(seq);
        }
        self.msgs.insert(seq, msg);
    }

    fn place(&self, msg: &Msg) -> Place {
        if self.visible.contains(&msg.rec.seq) {
            Place::Visible
        } else {
            Place::Waiting
        }
    }

    fn unplace(&mut self, msg: &Msg) {
        let seq = msg.rec.seq;
        if !self.visible.remove(&seq) && self.waiting.remove(&(msg.st.visible_at_ms, seq)) {
            self.release_group(msg);
        }
    }

    fn release_group(&mut self, msg: &Msg) {
        if msg.st.receives == 0 {
            return;
        }
        if let Some(g) = &msg.rec.group {
            if let Some(n) = self.inflight_groups.get_mut(g) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.inflight_groups.remove(g);
                }
            }
        }
    }

    /// Remove a message; returns it.
    pub fn remove(&mut self, seq: u64) -> Option<Msg> {
        let msg = self.msgs.remove(&seq)?;
        self.unplace(&msg);
        Some(msg)
    }

    #[cfg(test)]
    pub fn get(&self, seq: u64) -> Option<&Msg> {
        self.msgs.get(&seq)
    }

    /// Move delayed and in-flight messages whose time has come to the visible set.
    pub fn promote(&mut self, now_ms: i64) {
        while let Some(&(at, seq)) = self.waiting.first() {
            if at > now_ms {
                break;
            }
            self.waiting.pop_first();
            if let Some(msg) = self.msgs.get(&seq).cloned() {
                self.release_group(&msg);
                self.visible.insert(seq);
            }
        }
    }

    /// Remove and return every visible message, in sequence order.
    pub fn take_visible(&mut self, now_ms: i64) -> Vec<Msg> {
        self.promote(now_ms);
        let seqs: Vec<u64> = self.visible.iter().copied().collect();
        seqs.into_iter().filter_map(|s| self.remove(s)).collect()
    }

    /// When the next delayed or in-flight message becomes visible.
    pub fn next_wake_ms(&self) -> Option<i64> {
        self.waiting.first().map(|(at, _)| *at)
    }

    /// `(visible, in flight, delayed)` counts.
    pub fn counts(&self, now_ms: i64) -> (usize, usize, usize) {
        let mut visible = self.visible.len();
        let mut inflight = 0;
        let mut delayed = 0;
        for (at, seq) in &self.waiting {
            if *at <= now_ms {
                visible += 1;
            } else if self.msgs.get(seq).is_some_and(|m| m.st.receives > 0) {
                inflight += 1;
            } else {
                delayed += 1;
            }
        }
        (visible, inflight, delayed)
    }

    /// Every message's sequence number.
    pub fn seqs(&self) -> Vec<u64> {
        self.msgs.keys().copied().collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Messages older than the retention period.
    pub fn expired(&self, now_ms: i64, retention_ms: i64) -> Vec<u64> {
        self.msgs
            .values()
            .filter(|m| m.rec.sent_ms + retention_ms <= now_ms)
            .map(|m| m.rec.seq)
            .collect()
    }

    /// Deduplication keys past their interval.
    pub fn expired_dedup(&self, now_ms: i64) -> Vec<String> {
        self.dedup
            .iter()
            .filter(|(_, d)| d.expires_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Pick messages for a receive. Returns the messages now in flight (with their new state)
    /// and the messages to move to the dead-letter queue (already removed from this queue).
    /// `nonce` makes each receipt handle unique.
    pub fn receive(
        &mut self,
        now_ms: i64,
        rules: &ReceiveRules,
        mut nonce: impl FnMut() -> String,
    ) -> (Vec<Taken>, Vec<Msg>) {
        self.promote(now_ms);
        let mut taken = Vec::new();
        let mut dead = Vec::new();
        let mut blocked: BTreeSet<String> = BTreeSet::new();
        // Groups this call took from: later messages of them may follow in the same answer.
        let mut own: BTreeSet<String> = BTreeSet::new();
        // Walk the visible set in sequence order, a few at a time (it changes as we go).
        let mut cursor = 0u64;
        let mut chunk: Vec<u64> = Vec::with_capacity(CHUNK);
        loop {
            if taken.len() >= rules.max {
                break;
            }
            if chunk.is_empty() {
                chunk.extend(self.visible.range(cursor..).take(CHUNK));
                chunk.reverse();
                let Some(&first) = chunk.first() else { break };
                cursor = first.saturating_add(1);
            }
            let Some(seq) = chunk.pop() else { break };
            let Some(msg) = self.msgs.get(&seq) else {
                continue;
            };
            if msg.rec.sent_ms + rules.retention_ms <= now_ms {
                continue;
            }
            if rules.fifo {
                if let Some(g) = &msg.rec.group {
                    if blocked.contains(g) {
                        continue;
                    }
                    if self.inflight_groups.contains_key(g) && !own.contains(g) {
                        blocked.insert(g.clone());
                        continue;
                    }
                }
            }
            if let Some(max) = rules.max_receives {
                if msg.st.receives >= max {
                    if let Some(m) = self.remove(seq) {
                        dead.push(m);
                    }
                    continue;
                }
            }
            let Some(mut msg) = self.remove(seq) else {
                continue;
            };
            msg.st.receives += 1;
            msg.st.first_receive_ms.get_or_insert(now_ms);
            msg.st.visible_at_ms = now_ms + rules.visibility_ms;
            msg.st.handle = Some(nonce());
            if let Some(g) = &msg.rec.group {
                if rules.fifo {
                    own.insert(g.clone());
                }
            }
            // Always in flight, even with a zero timeout, until the next promote.
            self.waiting.insert((msg.st.visible_at_ms, seq));
            if let Some(g) = &msg.rec.group {
                *self.inflight_groups.entry(g.clone()).or_insert(0) += 1;
            }
            self.msgs.insert(seq, msg.clone());
            taken.push(msg);
        }
        (taken, dead)
    }

    /// Check a receipt handle's nonce against a message.
    pub fn check_handle(&self, seq: u64, nonce: &str, now_ms: i64) -> Result<&Msg, HandleFault> {
        let msg = self.msgs.get(&seq).ok_or(HandleFault::Gone)?;
        if msg.st.handle.as_deref() != Some(nonce) {
            return Err(HandleFault::Stale);
        }
        if self.place(msg) == Place::Visible || msg.st.visible_at_ms <= now_ms {
            return Err(HandleFault::NotInflight);
        }
        Ok(msg)
    }

    /// Set a new visibility deadline for an in-flight message; returns its new state.
    pub fn change_visibility(&mut self, seq: u64, visible_at_ms: i64) -> Option<MessageState> {
        let mut msg = self.remove(seq)?;
        msg.st.visible_at_ms = visible_at_ms;
        let st = msg.st.clone();
        // Keep it in flight (group blocked) until the next promote, even at zero.
        self.waiting.insert((visible_at_ms, seq));
        if let Some(g) = &msg.rec.group {
            if msg.st.receives > 0 {
                *self.inflight_groups.entry(g.clone()).or_insert(0) += 1;
            }
        }
        self.msgs.insert(seq, msg);
        Some(st)
    }

    /// Whether a message group has a message in flight.
    #[cfg(test)]
    pub fn group_blocked(&self, group: &str) -> bool {
        self.inflight_groups.contains_key(group)
    }
}
