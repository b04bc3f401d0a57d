//! [`SqliteStore`]: the embedded, crash-safe implementation of [`Store`] on SQLite.
//!
//! Lives here: the on-disk layout, schema migrations, the connection pool and the export format.
//! Must not live here: anything a service knows; values are opaque bytes.
//!
//! # Layout
//! One `records(account, region, tbl, key, value)` table, primary key
//! `(account, region, tbl, key)`, `WITHOUT ROWID` so records are stored in that order (a scan of
//! one table of one scope is one range of the B-tree). Keys are `TEXT` compared with SQLite's
//! default `BINARY` collation (`memcmp`), i.e. bytewise UTF-8 order, which equals code point
//! order and Rust's `str` order. A `meta` table holds the schema version: [`SqliteStore::open`]
//! migrates older databases and refuses newer ones.
//!
//! # Durability
//! WAL journal with `synchronous=FULL`: a commit returns only after the WAL has been fsynced, so
//! every write acknowledged by a returning call survives `kill -9` and a power cut.
//!
//! # Concurrency
//! All writes go through one writer connection behind a mutex (SQLite allows one writer at a
//! time anyway; serialising in-process avoids busy-retries).
//!
//! # Group commit
//! `put`, `delete` and `batch` from concurrent threads are joined: each caller queues its
//! writes; when no commit is in progress it becomes the leader, takes every queued job,
//! applies each inside its own savepoint (so a failing job changes nothing and fails alone)
//! and commits them all in one transaction, hence one WAL fsync. Callers that queued while a
//! leader was committing wait on a condition variable; the leader stores each job's result and
//! wakes them all, and one of those still without a result leads the next group. Every caller
//! therefore returns only after the commit that made its writes durable. `batch_then` queues
//! an asynchronous job instead of waiting: on disk a committer thread of the store's leads
//! whenever such jobs wait and no caller leads, and calls each back after the commit (so an
//! async caller awaits a channel rather than blocking a thread through the fsync; dropping
//! the store commits what is still queued). On disk, reads use a pool of
//! [`READERS`] read-only connections, each behind its own mutex, picked round-robin with
//! `try_lock` so reads neither wait behind writes (WAL readers see the last commit) nor behind
//! each other while a connection is free. In memory (`--ephemeral`) there is one connection for
//! everything: a private in-memory database cannot be shared between connections without
//! shared-cache mode, whose table locks would make readers fail with `SQLITE_LOCKED` while a
//! write is in progress.
//!
//! # Export format
//! JSON lines, chosen over a SQLite file (`VACUUM INTO`) because it does not depend on this
//! backend: another [`Store`] implementation (a distributed one) or a future schema can read it,
//! and a person can inspect or diff it. The file is:
//! ```text
//! {"ferrocloud_state":1}
//! {"account":"…","region":"…","table":"…","key":"…","value":"<standard base64>"}
//! …one line per record, in (account, region, table, key) order…
//! {"ferrocloud_state_end":<number of records>}
//! ```
//! The end line lets [`Store::import`] detect a truncated file. Export is written to a temporary
//! file next to the target, fsynced, then renamed over it, so the target is never half written.
//! Import parses and validates the whole file before replacing every record in one transaction:
//! a bad file changes nothing.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use base64::Engine as _;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::{BatchDone, Page, Result, Scope, Store, StoreError, Write};

/// Name of the database file inside the state directory.
pub const DB_FILE: &str = "state.db";
/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;
/// Export file format version (the value of the header's `ferrocloud_state`).
pub const EXPORT_VERSION: u64 = 1;
/// Number of read connections of an on-disk store.
pub const READERS: usize = 4;

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Page size of a new database file (bytes).
const PAGE_SIZE: i64 = 16 * 1024;
const STATEMENT_CACHE: usize = 32;
/// Largest WAL file kept after a checkpoint (bytes).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages past which the checkpointer insists (waits for a moment without writers) rather
/// than copying what it can without blocking anyone.
const CHECKPOINT_HARD_PAGES: i64 = 32_768;

/// Schema migrations: `MIGRATIONS[v]` upgrades version `v` to `v + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the records table.
    "CREATE TABLE records(
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY(account, region, tbl, key)
    ) WITHOUT ROWID;",
];

const SQL_GET: &str =
    "SELECT value FROM records WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key = ?4";
const SQL_PUT: &str =
    "INSERT INTO records(account, region, tbl, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT(account, region, tbl, key) DO UPDATE SET value = excluded.value";
const SQL_INSERT: &str =
    "INSERT INTO records(account, region, tbl, key, value) VALUES (?1, ?2, ?3, ?4, ?5)";
const SQL_DELETE: &str =
    "DELETE FROM records WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key = ?4";
const SQL_DELETE_FROM: &str =
    "DELETE FROM records WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key >= ?4";
const SQL_DELETE_RANGE: &str =
    "DELETE FROM records WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key >= ?4 AND key < ?5";
const SQL_DELETE_ALL: &str = "DELETE FROM records";

// Forward scans: lower bound inclusive (`>=`, the prefix) or exclusive (`>`, `after`), upper
// bound (the prefix's successor) optional.
const SQL_SCAN_GE: &str = "SELECT key, value FROM records
     WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key >= ?4 ORDER BY key LIMIT ?5";
const SQL_SCAN_GT: &str = "SELECT key, value FROM records
     WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key > ?4 ORDER BY key LIMIT ?5";
const SQL_SCAN_GE_LT: &str = "SELECT key, value FROM records
     WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key >= ?4 AND key < ?5
     ORDER BY key LIMIT ?6";
const SQL_SCAN_GT_LT: &str = "SELECT key, value FROM records
     WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key > ?4 AND key < ?5
     ORDER BY key LIMIT ?6";
// Reverse scans: lower bound is always the prefix (inclusive); upper bound is the smaller of
// the prefix's successor and `before`, both exclusive.
const SQL_SCAN_REV: &str = "SELECT key, value FROM records
     WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key >= ?4 ORDER BY key DESC LIMIT ?5";
const SQL_SCAN_REV_LT: &str = "SELECT key, value FROM records
     WHERE account = ?1 AND region = ?2 AND tbl = ?3 AND key >= ?4 AND key < ?5
     ORDER BY key DESC LIMIT ?6";

// `scopes`: a loose index scan over the primary key (distinct accounts, then distinct regions of
// each), so its cost grows with the number of scopes, not of records.
const SQL_NEXT_ACCOUNT: &str =
    "SELECT account FROM records WHERE account > ?1 ORDER BY account LIMIT 1";
const SQL_NEXT_REGION: &str =
    "SELECT region FROM records WHERE account = ?1 AND region > ?2 ORDER BY region LIMIT 1";
const SQL_HAS_TABLE: &str =
    "SELECT 1 FROM records WHERE account = ?1 AND region = ?2 AND tbl = ?3 LIMIT 1";

const SQL_EXPORT: &str = "SELECT account, region, tbl, key, value FROM records
     ORDER BY account, region, tbl, key";

/// The embedded SQLite [`Store`]. Cheap to share behind an `Arc`; every method may be called
/// from any thread (it blocks on disk I/O, so async callers should use `spawn_blocking` for
/// heavy calls such as `export`).
pub struct SqliteStore {
    /// The writer connection and the group-commit queue, shared with the committer thread.
    writes: std::sync::Arc<Writes>,
    /// Commits groups that contain asynchronous jobs ([`Store::batch_then`]); `None` in
    /// memory, where those commit on the caller's thread.
    committer: Option<std::thread::JoinHandle<()>>,
    /// Empty for an in-memory store: reads then use the writer.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// See [`Store::generation`].
    generation: std::sync::atomic::AtomicU64,
    /// The database file; `None` in memory.
    path: Option<PathBuf>,
}

/// What the callers and the committer thread share.
struct Writes {
    conn: Mutex<Connection>,
    /// Jobs waiting for the next group commit, and results of committed jobs.
    queue: Mutex<CommitQueue>,
    /// Signalled when a leader finished committing a group.
    committed: std::sync::Condvar,
    /// Signalled when asynchronous jobs wait and no leader is committing.
    work: std::sync::Condvar,
    /// The background checkpointer of an on-disk store.
    checkpointer: Option<Checkpointer>,
}

/// Copies committed WAL frames into the database file from a thread and connection of its
/// own, so commits never stall behind SQLite's automatic checkpoint (which runs inside the
/// commit that crosses the threshold, holding the writer while it copies a thousand pages),
/// and a page written by many commits between two checkpoints is copied once. Durability is
/// unchanged: a commit is durable once its WAL frames are fsynced; checkpoints only move
/// them (and fsync the database file before the WAL is reused).
struct Checkpointer {
    shared: std::sync::Arc<CheckpointShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct CheckpointShared {
    /// Commits since the last checkpoint, and whether the store is being dropped.
    state: Mutex<(u64, bool)>,
    wake: std::sync::Condvar,
}

impl Checkpointer {
    fn start(path: &Path) -> rusqlite::Result<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        let shared = std::sync::Arc::new(CheckpointShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fc-store-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &s))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    fn committed(&self) {
        lock(&self.shared.state).0 += 1;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.shared.state).1 = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn checkpoint_loop(conn: &Connection, shared: &CheckpointShared) {
    loop {
        {
            let mut st = lock(&shared.state);
            if !st.1 {
                st = shared
                    .wake
                    .wait_timeout(st, CHECKPOINT_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if st.1 {
                return;
            }
            if st.0 == 0 {
                continue;
            }
            st.0 = 0;
        }
        // (busy, frames in the WAL, frames copied)
        let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match passive {
            Ok((_, log, done)) if log >= CHECKPOINT_HARD_PAGES && done < log => {
                // Readers or writers kept it from finishing while the WAL grew large: wait
                // (busy timeout) for a moment without them, copy everything, start over.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint (restart) failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("readers", &self.readers.len())
            .finish()
    }
}

impl SqliteStore {
    /// Open (creating if needed) the store in `dir`, whose database is `dir/`[`DB_FILE`].
    /// Migrates an older schema; fails on a schema newer than [`SCHEMA_VERSION`].
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(DB_FILE);
        let shown = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer = Connection::open_with_flags(&path, flags)
            .map_err(|e| db_error(&format!("open {shown}"), e))?;
        configure(&writer).map_err(|e| db_error(&format!("configure {shown}"), e))?;
        // A new database gets larger pages (no effect on an existing one): records are JSON
        // of up to a few KiB (S3 keeps small objects inline), and a record that does not fit
        // a quarter page spills into overflow pages, which every insert writes and every key
        // comparison on its way down the B-tree reads.
        writer
            .pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(|e| db_error(&format!("configure {shown}"), e))?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| db_error(&format!("enable WAL on {shown}"), e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "cannot enable WAL journal on {shown} (got {mode:?}); is the file system local?"
            )));
        }
        writer
            .execute_batch(&format!(
                "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
            ))
            .map_err(|e| db_error(&format!("configure {shown}"), e))?;
        migrate(&mut writer, &shown)?;
        // Checkpoints move to their own thread (see `Checkpointer`); SQLite's automatic one
        // stays if that thread cannot start.
        let checkpointer = match Checkpointer::start(&path) {
            Ok(c) => {
                writer
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(|e| db_error(&format!("configure {shown}"), e))?;
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no background checkpointer; SQLite checkpoints inline");
                None
            }
        };
        // Make the new file's directory entry durable too.
        sync_dir(dir)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| db_error(&format!("open reader on {shown}"), e))?;
            configure(&reader)
                .and_then(|()| reader.pragma_update(None, "query_only", true))
                .map_err(|e| db_error(&format!("configure reader on {shown}"), e))?;
            readers.push(Mutex::new(reader));
        }
        let writes = std::sync::Arc::new(Writes::new(writer, checkpointer));
        let w = writes.clone();
        let committer = std::thread::Builder::new()
            .name("fc-store-commit".into())
            .spawn(move || w.commit_loop())
            .map_err(|e| StoreError::Backend(format!("start the committer thread: {e}")))?;
        Ok(SqliteStore {
            writes,
            committer: Some(committer),
            readers,
            next_reader: AtomicUsize::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            path: Some(path),
        })
    }

    /// A store that lives only in memory (nothing on disk), for `--ephemeral`.
    pub fn in_memory() -> Result<Self> {
        let mut conn =
            Connection::open_in_memory().map_err(|e| db_error("open in-memory database", e))?;
        configure(&conn).map_err(|e| db_error("configure in-memory database", e))?;
        migrate(&mut conn, "in-memory database")?;
        Ok(SqliteStore {
            writes: std::sync::Arc::new(Writes::new(conn, None)),
            committer: None,
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            path: None,
        })
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writes.conn)
    }

    /// The connection for a point read: the writer's when no commit holds it, else a reader.
    /// A reader's page cache is dropped whenever it finds that the database changed since its
    /// last read (SQLite's WAL rule), so under a stream of writes every reader lookup reads its
    /// B-tree path again from the file; the writer made those changes and its cache stays valid.
    /// Between commits the writer has no open transaction, so it reads the last commit.
    fn point_reader(&self) -> MutexGuard<'_, Connection> {
        if !self.readers.is_empty() {
            match self.writes.conn.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.reader()
    }

    /// A free read connection if there is one, else wait for the next one in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        if n == 0 {
            return self.writer();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.readers[start % n])
    }
}

/// The group-commit queue (see the module documentation).
#[derive(Default)]
struct CommitQueue {
    next_ticket: u64,
    /// Whether a leader is committing a group.
    leading: bool,
    /// Jobs not yet taken by a leader, in arrival order.
    pending: Vec<Job>,
    /// Results of jobs a leader committed for a caller that has not picked them up yet: the
    /// number of rows changed, or the error message.
    done: std::collections::HashMap<u64, std::result::Result<usize, String>>,
    /// The store is being dropped: the committer ends once no asynchronous job is left.
    closing: bool,
}

/// One caller's writes: a blocked caller picks its result up from [`CommitQueue::done`]; an
/// asynchronous one is called back.
struct Job {
    ticket: u64,
    writes: Vec<Write>,
    done: Option<BatchDone>,
}

impl CommitQueue {
    fn push(&mut self, writes: Vec<Write>, done: Option<BatchDone>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.pending.push(Job {
            ticket,
            writes,
            done,
        });
        ticket
    }

    fn has_async(&self) -> bool {
        self.pending.iter().any(|j| j.done.is_some())
    }
}

impl Writes {
    fn new(conn: Connection, checkpointer: Option<Checkpointer>) -> Writes {
        Writes {
            conn: Mutex::new(conn),
            queue: Mutex::new(CommitQueue::default()),
            committed: std::sync::Condvar::new(),
            work: std::sync::Condvar::new(),
            checkpointer,
        }
    }

    /// Apply `writes` atomically and durably, joined with concurrent callers' writes into one
    /// transaction; the number of rows changed.
    fn submit(&self, writes: Vec<Write>, op: &str) -> Result<usize> {
        let err = |e: String| StoreError::Backend(format!("sqlite {op}: {e}"));
        let mut q = lock(&self.queue);
        let ticket = q.push(writes, None);
        loop {
            if let Some(r) = q.done.remove(&ticket) {
                return r.map_err(err);
            }
            if q.leading {
                // A leader is committing; it wakes everyone when done. Our job is either in
                // its group (our result will be in `done`) or waits for the next leader.
                q = self
                    .committed
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            return self
                .lead(q, Some(ticket))
                .unwrap_or_else(|| Err("job lost by the group commit".to_string()))
                .map_err(err);
        }
    }

    /// Queue `writes` for the next group commit; `done` is called once it is durable.
    fn submit_then(&self, writes: Vec<Write>, done: BatchDone) {
        let mut q = lock(&self.queue);
        q.push(writes, Some(done));
        let idle = !q.leading;
        drop(q);
        if idle {
            // Else the leader's end wakes the committer.
            self.work.notify_one();
        }
    }

    /// Commit every pending job as one group (`q` shows no leader); returns the result of
    /// job `ticket`, hands the other blocked callers theirs and calls the asynchronous ones
    /// back.
    fn lead(
        &self,
        mut q: MutexGuard<'_, CommitQueue>,
        ticket: Option<u64>,
    ) -> Option<std::result::Result<usize, String>> {
        q.leading = true;
        let group = std::mem::take(&mut q.pending);
        drop(q);
        let lead = Leading(self);
        let results = commit_group(&mut lock(&self.conn), &group);
        if let Some(c) = &self.checkpointer {
            c.committed();
        }
        let mut mine = None;
        let mut calls = Vec::new();
        let mut q = lock(&self.queue);
        for (job, r) in group.into_iter().zip(results) {
            if Some(job.ticket) == ticket {
                mine = Some(r);
            } else if let Some(done) = job.done {
                calls.push((done, r));
            } else {
                q.done.insert(job.ticket, r);
            }
        }
        drop(q);
        drop(lead);
        for (done, r) in calls {
            let r = r
                .map(drop)
                .map_err(|e| StoreError::Backend(format!("sqlite batch: {e}")));
            // A panicking call-back must not cost the other callers theirs (nor the committer
            // thread its life).
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(r)));
            if called.is_err() {
                tracing::error!("a store commit call-back panicked");
            }
        }
        mine
    }

    /// The committer thread: leads whenever asynchronous jobs wait and nobody else leads.
    fn commit_loop(&self) {
        loop {
            let mut q = lock(&self.queue);
            loop {
                if !q.leading && q.has_async() {
                    break;
                }
                if q.closing && !q.has_async() {
                    return;
                }
                q = self.work.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            self.lead(q, None);
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        lock(&self.writes.queue).closing = true;
        self.writes.work.notify_all();
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

/// The leader's turn: when it ends (even by a panic), the next leader may start and every
/// waiting caller looks for its result.
struct Leading<'a>(&'a Writes);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut q = lock(&self.0.queue);
        q.leading = false;
        let wake_committer = q.has_async();
        drop(q);
        self.0.committed.notify_all();
        if wake_committer {
            self.0.work.notify_one();
        }
    }
}

/// Commit several jobs in one transaction: each job all-or-nothing in its own savepoint; one
/// result per job, in order.
fn commit_group(conn: &mut Connection, group: &[Job]) -> Vec<std::result::Result<usize, String>> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return group.iter().map(|_| Err(e.to_string())).collect(),
    };
    let mut results = Vec::with_capacity(group.len());
    if let [Job { writes, .. }] = group {
        // Alone: the transaction itself is the job's atomic unit.
        let mut changed = 0;
        for w in writes {
            match apply_write(&tx, w) {
                Ok(n) => changed += n,
                Err(e) => return vec![Err(e.to_string())],
            }
        }
        results.push(Ok(changed));
    } else {
        for Job { writes, .. } in group {
            let r = (|| -> rusqlite::Result<usize> {
                let sp = tx.savepoint()?;
                let mut changed = 0;
                for w in writes {
                    changed += apply_write(&sp, w)?;
                }
                sp.commit()?;
                Ok(changed)
            })();
            results.push(r.map_err(|e| e.to_string()));
        }
    }
    if let Err(e) = tx.commit() {
        let msg = e.to_string();
        return results
            .into_iter()
            .map(|r| r.and(Err(msg.clone())))
            .collect();
    }
    results
}

/// Settings shared by every connection. (Memory-mapped reads were measured and rejected:
/// the database grows with every small S3 object, and SQLite's remapping of the growing file
/// cost more in page faults and `munmap` than the `pread` calls it saved.)
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Bring the schema to [`SCHEMA_VERSION`] in one transaction.
fn migrate(conn: &mut Connection, shown: &str) -> Result<()> {
    let err = |e| db_error(&format!("migrate {shown}"), e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    )
    .map_err(err)?;
    let found: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(err)?;
    let mut version: i64 = match found {
        None => 0,
        Some(v) => v.parse().map_err(|_| {
            StoreError::Backend(format!("{shown} has an unreadable schema version {v:?}"))
        })?,
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "{shown} has schema version {version}, newer than version {SCHEMA_VERSION} that \
             this ferrocloud supports; run a newer ferrocloud or use another state directory"
        )));
    }
    if version < 0 {
        return Err(StoreError::Backend(format!(
            "{shown} has an invalid schema version {version}"
        )));
    }
    while version < SCHEMA_VERSION {
        let step = usize::try_from(version).expect("version is between 0 and SCHEMA_VERSION");
        tx.execute_batch(MIGRATIONS[step]).map_err(err)?;
        version += 1;
    }
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [version.to_string()],
    )
    .map_err(err)?;
    tx.commit().map_err(err)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection cannot leave a transaction open (rusqlite rolls back
    // on drop), so a poisoned connection is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn db_error(context: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite {context}: {e}"))
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// The smallest string greater than every string that starts with `prefix`, or `None` when
/// there is none (empty prefix, or only `char::MAX`). Works on chars, not bytes, so the bound
/// stays valid UTF-8 (bytewise order of UTF-8 equals code point order, and no valid char lies
/// between a char and its successor, surrogates being skipped).
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut bound = prefix.to_owned();
    while let Some(c) = bound.pop() {
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            char::MAX => None,
            _ => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            bound.push(next);
            return Some(bound);
        }
    }
    None
}

/// SQL `LIMIT` that fetches one row more than `limit` to compute [`Page::more`].
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

fn run_page(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    limit: usize,
    op: &str,
) -> Result<Page> {
    let err = |e| db_error(op, e);
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let mut rows = stmt.query(params).map_err(err)?;
    let mut page = Page::default();
    while let Some(row) = rows.next().map_err(err)? {
        if page.items.len() >= limit {
            page.more = true;
            break;
        }
        page.items
            .push((row.get(0).map_err(err)?, row.get(1).map_err(err)?));
    }
    Ok(page)
}

/// Apply one write; the number of rows it changed.
fn apply_write(conn: &Connection, write: &Write) -> rusqlite::Result<usize> {
    Ok(match write {
        Write::Put {
            scope,
            table,
            key,
            value,
        } => conn.prepare_cached(SQL_PUT)?.execute(params![
            scope.account,
            scope.region,
            table,
            key,
            value
        ])?,
        Write::Delete { scope, table, key } => conn
            .prepare_cached(SQL_DELETE)?
            .execute(params![scope.account, scope.region, table, key])?,
    })
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportHeader {
    ferrocloud_state: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEnd {
    ferrocloud_state_end: u64,
}

#[derive(Serialize)]
struct ExportRecordRef<'a> {
    account: &'a str,
    region: &'a str,
    table: &'a str,
    key: &'a str,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRecord {
    account: String,
    region: String,
    table: String,
    key: String,
    value: String,
}

/// A decoded record of an export file.
struct ImportRecord {
    account: String,
    region: String,
    table: String,
    key: String,
    value: Vec<u8>,
}

/// A temporary path next to `path`, in the same directory so the final rename is atomic.
fn temp_path_for(path: &Path) -> Result<(PathBuf, PathBuf)> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or_else(|| StoreError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok((dir.join(tmp_name), dir))
}

impl SqliteStore {
    /// Write every record to `out` (the temporary file `tmp`); returns how many.
    fn write_export(&self, out: &mut impl std::io::Write, tmp: &Path) -> Result<u64> {
        let conn = self.reader();
        let err = |e| db_error("export", e);
        let io = |e| io_error(tmp, e);
        let mut stmt = conn.prepare_cached(SQL_EXPORT).map_err(err)?;
        // One statement reads one consistent snapshot, even while writes go on.
        let mut rows = stmt.query([]).map_err(err)?;
        let mut count = 0u64;
        let engine = &base64::engine::general_purpose::STANDARD;
        while let Some(row) = rows.next().map_err(err)? {
            let value = row
                .get_ref(4)
                .map_err(err)?
                .as_bytes()
                .map_err(|e| StoreError::Backend(format!("export: value: {e}")))?;
            let record = ExportRecordRef {
                account: text_column(row, 0)?,
                region: text_column(row, 1)?,
                table: text_column(row, 2)?,
                key: text_column(row, 3)?,
                value: engine.encode(value),
            };
            serde_json::to_writer(&mut *out, &record).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
            count += 1;
        }
        Ok(count)
    }
}

fn text_column<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    row.get_ref(i)
        .map_err(|e| db_error("export", e))?
        .as_str()
        .map_err(|e| StoreError::Backend(format!("export: column {i}: {e}")))
}

/// Parse and validate a whole export file.
fn read_export(path: &Path) -> Result<Vec<ImportRecord>> {
    let invalid = |line: usize, what: String| {
        StoreError::InvalidExport(format!("{} line {line}: {what}", path.display()))
    };
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut lines = BufReader::new(file).lines().enumerate();
    // The next non-blank line and its 1-based number.
    let mut next_line = || -> Result<Option<(usize, String)>> {
        for (i, line) in lines.by_ref() {
            match line {
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(invalid(i + 1, "not UTF-8".to_string()))
                }
                Err(e) => return Err(io_error(path, e)),
                Ok(l) if l.trim().is_empty() => {}
                Ok(l) => return Ok(Some((i + 1, l))),
            }
        }
        Ok(None)
    };

    let (_, header) = next_line()?
        .ok_or_else(|| StoreError::InvalidExport(format!("{} is empty", path.display())))?;
    let header: ExportHeader = serde_json::from_str(&header).map_err(|e| {
        StoreError::InvalidExport(format!(
            "{} is not a ferrocloud state file (bad header: {e})",
            path.display()
        ))
    })?;
    if header.ferrocloud_state != EXPORT_VERSION {
        return Err(StoreError::InvalidExport(format!(
            "{} has state format version {}, this ferrocloud reads version {EXPORT_VERSION}",
            path.display(),
            header.ferrocloud_state
        )));
    }

    let engine = &base64::engine::general_purpose::STANDARD;
    let mut parsed: Vec<ExportRecord> = Vec::new();
    let mut end = None;
    while let Some((at, line)) = next_line()? {
        if end.is_some() {
            return Err(invalid(at, "data after the end line".to_string()));
        }
        match serde_json::from_str::<ExportRecord>(&line) {
            Ok(record) => parsed.push(record),
            Err(record_err) => match serde_json::from_str::<ExportEnd>(&line) {
                Ok(e) => end = Some(e.ferrocloud_state_end),
                Err(_) => return Err(invalid(at, format!("bad record: {record_err}"))),
            },
        }
    }
    let Some(expected) = end else {
        return Err(StoreError::InvalidExport(format!(
            "{} is truncated (no end line)",
            path.display()
        )));
    };
    if expected != parsed.len() as u64 {
        return Err(StoreError::InvalidExport(format!(
            "{} declares {expected} records but holds {}",
            path.display(),
            parsed.len()
        )));
    }
    // Export writes records sorted; sorting again is cheap then and finds duplicates.
    parsed.sort_unstable_by(|a, b| {
        (&a.account, &a.region, &a.table, &a.key).cmp(&(&b.account, &b.region, &b.table, &b.key))
    });
    if let Some(w) = parsed.windows(2).find(|w| {
        (&w[0].account, &w[0].region, &w[0].table, &w[0].key)
            == (&w[1].account, &w[1].region, &w[1].table, &w[1].key)
    }) {
        return Err(StoreError::InvalidExport(format!(
            "{} holds {}/{}/{}/{} twice",
            path.display(),
            w[0].account,
            w[0].region,
            w[0].table,
            w[0].key
        )));
    }
    parsed
        .into_iter()
        .map(|r| {
            let value = engine.decode(r.value.as_bytes()).map_err(|e| {
                StoreError::InvalidExport(format!(
                    "{}: value of {}/{}/{}/{} is not base64: {e}",
                    path.display(),
                    r.account,
                    r.region,
                    r.table,
                    r.key
                ))
            })?;
            Ok(ImportRecord {
                account: r.account,
                region: r.region,
                table: r.table,
                key: r.key,
                value,
            })
        })
        .collect()
}

impl Store for SqliteStore {
    fn get(&self, scope: &Scope, table: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.point_reader();
        let err = |e| db_error("get", e);
        let mut stmt = conn.prepare_cached(SQL_GET).map_err(err)?;
        stmt.query_row(params![scope.account, scope.region, table, key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(err)
    }

    fn put(&self, scope: &Scope, table: &str, key: &str, value: &[u8]) -> Result<()> {
        let write = Write::Put {
            scope: scope.clone(),
            table: table.to_string(),
            key: key.to_string(),
            value: value.to_vec(),
        };
        self.writes.submit(vec![write], "put").map(drop)
    }

    fn delete(&self, scope: &Scope, table: &str, key: &str) -> Result<bool> {
        let write = Write::Delete {
            scope: scope.clone(),
            table: table.to_string(),
            key: key.to_string(),
        };
        Ok(self.writes.submit(vec![write], "delete")? > 0)
    }

    fn batch(&self, writes: Vec<Write>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        self.writes.submit(writes, "batch").map(drop)
    }

    fn batch_then(&self, writes: Vec<Write>, done: BatchDone) {
        if writes.is_empty() || self.committer.is_none() {
            return done(self.batch(writes));
        }
        self.writes.submit_then(writes, done);
    }

    fn scan(
        &self,
        scope: &Scope,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        let upper = prefix_upper_bound(prefix);
        let lim = sql_limit(limit);
        let (exclusive, lower) = match after {
            Some(a) if a >= prefix => (true, a),
            _ => (false, prefix),
        };
        let (a, r) = (&scope.account, &scope.region);
        let conn = self.reader();
        match (&upper, exclusive) {
            (None, false) => run_page(
                &conn,
                SQL_SCAN_GE,
                params![a, r, table, lower, lim],
                limit,
                "scan",
            ),
            (None, true) => run_page(
                &conn,
                SQL_SCAN_GT,
                params![a, r, table, lower, lim],
                limit,
                "scan",
            ),
            (Some(up), false) => run_page(
                &conn,
                SQL_SCAN_GE_LT,
                params![a, r, table, lower, up, lim],
                limit,
                "scan",
            ),
            (Some(up), true) => run_page(
                &conn,
                SQL_SCAN_GT_LT,
                params![a, r, table, lower, up, lim],
                limit,
                "scan",
            ),
        }
    }

    fn scan_rev(
        &self,
        scope: &Scope,
        table: &str,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        let prefix_upper = prefix_upper_bound(prefix);
        let upper: Option<&str> = match (prefix_upper.as_deref(), before) {
            (None, b) => b,
            (u, None) => u,
            (Some(u), Some(b)) => Some(u.min(b)),
        };
        let lim = sql_limit(limit);
        let (a, r) = (&scope.account, &scope.region);
        let conn = self.reader();
        match upper {
            None => run_page(
                &conn,
                SQL_SCAN_REV,
                params![a, r, table, prefix, lim],
                limit,
                "scan_rev",
            ),
            Some(up) => run_page(
                &conn,
                SQL_SCAN_REV_LT,
                params![a, r, table, prefix, up, lim],
                limit,
                "scan_rev",
            ),
        }
    }

    fn delete_prefix(&self, scope: &Scope, table: &str, prefix: &str) -> Result<u64> {
        let upper = prefix_upper_bound(prefix);
        let (a, r) = (&scope.account, &scope.region);
        let conn = self.writer();
        let err = |e| db_error("delete_prefix", e);
        let n = match &upper {
            None => conn
                .prepare_cached(SQL_DELETE_FROM)
                .and_then(|mut s| s.execute(params![a, r, table, prefix])),
            Some(up) => conn
                .prepare_cached(SQL_DELETE_RANGE)
                .and_then(|mut s| s.execute(params![a, r, table, prefix, up])),
        }
        .map_err(err)?;
        Ok(n as u64)
    }

    fn scopes(&self, table: &str) -> Result<Vec<Scope>> {
        let conn = self.reader();
        let err = |e| db_error("scopes", e);
        // One read transaction: a consistent view across the several queries.
        let tx = conn.unchecked_transaction().map_err(err)?;
        let mut next_account = tx.prepare_cached(SQL_NEXT_ACCOUNT).map_err(err)?;
        let mut next_region = tx.prepare_cached(SQL_NEXT_REGION).map_err(err)?;
        let mut has_table = tx.prepare_cached(SQL_HAS_TABLE).map_err(err)?;
        let mut scopes = Vec::new();
        let mut account = String::new();
        while let Some(a) = next_account
            .query_row([&account], |row| row.get::<_, String>(0))
            .optional()
            .map_err(err)?
        {
            account = a;
            let mut region = String::new();
            while let Some(r) = next_region
                .query_row([&account, &region], |row| row.get::<_, String>(0))
                .optional()
                .map_err(err)?
            {
                region = r;
                if has_table
                    .exists(params![account, region, table])
                    .map_err(err)?
                {
                    scopes.push(Scope::new(account.clone(), region.clone()));
                }
            }
        }
        drop((next_account, next_region, has_table));
        tx.commit().map_err(err)?;
        Ok(scopes)
    }

    fn reset(&self) -> Result<()> {
        let conn = self.writer();
        let result = conn
            .prepare_cached(SQL_DELETE_ALL)
            .and_then(|mut s| s.execute([]));
        // Bumped even on failure: the state may have changed.
        self.generation.fetch_add(1, Ordering::SeqCst);
        result.map_err(|e| db_error("reset", e))?;
        Ok(())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn export(&self, path: &Path) -> Result<()> {
        let (tmp, dir) = temp_path_for(path)?;
        let written = (|| -> Result<()> {
            let file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
            let mut out = BufWriter::new(file);
            let io = |e| io_error(&tmp, e);
            serde_json::to_writer(
                &mut out,
                &ExportHeader {
                    ferrocloud_state: EXPORT_VERSION,
                },
            )
            .map_err(|e| io(std::io::Error::other(e)))?;
            out.write_all(b"\n").map_err(io)?;
            let count = self.write_export(&mut out, &tmp)?;
            serde_json::to_writer(
                &mut out,
                &ExportEnd {
                    ferrocloud_state_end: count,
                },
            )
            .map_err(|e| io(std::io::Error::other(e)))?;
            out.write_all(b"\n").map_err(io)?;
            let file = out.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error(path, e));
        }
        sync_dir(&dir)
    }

    fn import(&self, path: &Path) -> Result<()> {
        let records = read_export(path)?;
        let mut conn = self.writer();
        let err = |e| db_error("import", e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.prepare_cached(SQL_DELETE_ALL)
            .and_then(|mut s| s.execute([]))
            .map_err(err)?;
        {
            let mut insert = tx.prepare_cached(SQL_INSERT).map_err(err)?;
            for r in &records {
                insert
                    .execute(params![r.account, r.region, r.table, r.key, r.value])
                    .map_err(err)?;
            }
        }
        let result = tx.commit().map_err(err);
        self.generation.fetch_add(1, Ordering::SeqCst);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_of_prefixes() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("a").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper_bound("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_upper_bound("a\u{7F}").as_deref(), Some("a\u{80}"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[test]
    fn upper_bound_is_above_every_extension_bytewise() {
        for prefix in ["a", "é", "a\u{7F}", "x\u{FFFF}", "z\u{10FFFF}"] {
            let upper = prefix_upper_bound(prefix).unwrap();
            for tail in ["", "\u{0}", "zzz", "\u{10FFFF}\u{10FFFF}", "\u{FFFF}"] {
                let key = format!("{prefix}{tail}");
                assert!(key.as_bytes() < upper.as_bytes(), "{key:?} < {upper:?}");
            }
            assert!(prefix.as_bytes() < upper.as_bytes());
        }
    }

    #[test]
    fn sql_limit_saturates() {
        assert_eq!(sql_limit(0), 1);
        assert_eq!(sql_limit(10), 11);
        assert_eq!(sql_limit(usize::MAX), i64::MAX);
    }

    #[test]
    fn statements_use_the_primary_key() {
        let store = SqliteStore::in_memory().unwrap();
        let conn = store.writer();
        for sql in [
            SQL_GET,
            SQL_SCAN_GE_LT,
            SQL_SCAN_GT,
            SQL_SCAN_REV_LT,
            SQL_NEXT_ACCOUNT,
            SQL_NEXT_REGION,
            SQL_HAS_TABLE,
            SQL_DELETE_RANGE,
        ] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map(
                    rusqlite::params_from_iter(vec!["x"; stmt.parameter_count()]),
                    |row| row.get::<_, String>(3),
                )
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            let plan = plan.join("; ");
            assert!(
                plan.starts_with("SEARCH records USING PRIMARY KEY (account"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }
}
