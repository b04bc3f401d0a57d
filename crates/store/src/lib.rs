//! The state store: every service keeps its state here, partitioned by account and region.
//!
//! Lives here: the [`Store`] trait (narrow on purpose, so a distributed store can implement it
//! later) and its embedded SQLite implementation. Must not live here: any service's types or
//! rules; values are opaque bytes (services store versioned JSON through [`StoreExt`]).

use serde::{de::DeserializeOwned, Serialize};

pub mod sqlite;

pub use sqlite::{SqliteStore, DB_FILE};

/// The partition a record lives in. Global services (IAM, STS) use region [`GLOBAL`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

/// Region name used for account-wide (global) resources.
pub const GLOBAL: &str = "global";

impl Scope {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Scope {
            account: account.into(),
            region: region.into(),
        }
    }
    pub fn global(account: impl Into<String>) -> Self {
        Scope::new(account, GLOBAL)
    }
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("stored value of {table}/{key} cannot be decoded: {reason}")]
    Decode {
        table: String,
        key: String,
        reason: String,
    },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid state file: {0}")]
    InvalidExport(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum Write {
    Put {
        scope: Scope,
        table: String,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        scope: Scope,
        table: String,
        key: String,
    },
}

/// Called once with the outcome of [`Store::batch_then`].
pub type BatchDone = Box<dyn FnOnce(Result<()>) + Send>;

/// A page of records in key order.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<(String, Vec<u8>)>,
    /// `true` when more records match after the last returned one.
    pub more: bool,
}

/// An ordered key-value store partitioned by [`Scope`] and table.
///
/// Every method that returns `Ok` after a write has made that write durable: it survives a
/// `kill -9` of the process (and, on disk, a power cut). Keys within a table sort bytewise.
pub trait Store: Send + Sync + 'static {
    fn get(&self, scope: &Scope, table: &str, key: &str) -> Result<Option<Vec<u8>>>;
    fn put(&self, scope: &Scope, table: &str, key: &str, value: &[u8]) -> Result<()>;
    /// Returns whether the key existed.
    fn delete(&self, scope: &Scope, table: &str, key: &str) -> Result<bool>;
    /// Apply several writes atomically: all or none.
    fn batch(&self, writes: Vec<Write>) -> Result<()>;
    /// [`Store::batch`] without waiting: returns at once, and `done` is called (possibly on a
    /// thread of the store's, possibly before this returns) once the writes are durable or
    /// have failed. For async callers, which then await a channel instead of blocking a
    /// thread through the commit. The default commits on the calling thread.
    fn batch_then(&self, writes: Vec<Write>, done: BatchDone) {
        done(self.batch(writes))
    }
    /// Records whose key starts with `prefix` and sorts strictly after `after` (if given),
    /// in key order, at most `limit`.
    fn scan(
        &self,
        scope: &Scope,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page>;
    /// Like [`Store::scan`] but in descending key order, keys strictly before `before`.
    fn scan_rev(
        &self,
        scope: &Scope,
        table: &str,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page>;
    /// Delete every record of `table` in `scope` whose key starts with `prefix`; returns how many.
    fn delete_prefix(&self, scope: &Scope, table: &str, prefix: &str) -> Result<u64>;
    /// Every scope that holds at least one record of `table` (for background reconcilers).
    fn scopes(&self, table: &str) -> Result<Vec<Scope>>;
    /// Empty the whole store.
    fn reset(&self) -> Result<()>;
    /// A number that changes whenever the whole state is replaced ([`Store::reset`],
    /// [`Store::import`]) and never otherwise. Services that cache decoded records (and
    /// invalidate them on their own writes) compare it to notice replacements they did not
    /// make.
    fn generation(&self) -> u64;
    /// Write the whole state as a portable file.
    fn export(&self, path: &std::path::Path) -> Result<()>;
    /// Replace the whole state with a file written by [`Store::export`].
    fn import(&self, path: &std::path::Path) -> Result<()>;
}

/// Typed JSON helpers over any [`Store`]. Persisted types should carry their own version field
/// where their shape may change.
pub trait StoreExt: Store {
    fn get_json<T: DeserializeOwned>(
        &self,
        scope: &Scope,
        table: &str,
        key: &str,
    ) -> Result<Option<T>> {
        match self.get(scope, table, key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Decode {
                        table: table.to_string(),
                        key: key.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    fn put_json<T: Serialize>(
        &self,
        scope: &Scope,
        table: &str,
        key: &str,
        value: &T,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Decode {
            table: table.to_string(),
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        self.put(scope, table, key, &bytes)
    }

    /// Decoded records of a scan.
    fn scan_json<T: DeserializeOwned>(
        &self,
        scope: &Scope,
        table: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, T)>, bool)> {
        let page = self.scan(scope, table, prefix, after, limit)?;
        let mut out = Vec::with_capacity(page.items.len());
        for (k, v) in page.items {
            let t = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
                table: table.to_string(),
                key: k.clone(),
                reason: e.to_string(),
            })?;
            out.push((k, t));
        }
        Ok((out, page.more))
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// JSON encoding of a value for [`Write::Put`].
pub fn to_json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}
