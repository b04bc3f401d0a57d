//! Credentials known to ferrocloud: IAM access keys and STS temporary credentials, looked up by
//! access key id when a request arrives. Kept in the store under the system scope.

use fc_store::{Scope, Store, StoreError, StoreExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

/// Lookups happen on every request: answers (including "no such key") are cached per store.
/// Every write of this module goes through the cache, so it stays coherent within the process;
/// [`clear_cache`] must follow a wholesale state change (reset, import).
type Cache = RwLock<HashMap<(usize, String), Option<Credential>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

fn store_id(store: &dyn Store) -> usize {
    store as *const dyn Store as *const () as usize
}

const CACHE_LIMIT: usize = 100_000;

fn remember(store: &dyn Store, key: &str, value: Option<Credential>) {
    if let Ok(mut c) = cache().write() {
        if c.len() >= CACHE_LIMIT {
            c.clear();
        }
        c.insert((store_id(store), key.to_string()), value);
    }
}

/// Forget every cached lookup (after a state reset or import).
pub fn clear_cache() {
    if let Ok(mut c) = cache().write() {
        c.clear();
    }
}

/// Table of [`Credential`] records keyed by access key id.
pub const TABLE: &str = "credentials";

/// The scope holding records that are not any one account's (credentials index).
pub fn system_scope() -> Scope {
    Scope::global("system")
}

/// A credential record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub v: u32,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Set for STS temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    pub account: String,
    /// Principal ARN (`…:user/alice`, `…:assumed-role/R/s`).
    pub arn: String,
    /// `GetCallerIdentity`'s `UserId`.
    pub user_id: String,
    /// Epoch seconds after which the credential is refused; `None` for long-term keys.
    #[serde(default)]
    pub expires: Option<f64>,
    /// `Active` or `Inactive` (IAM access keys).
    #[serde(default = "active")]
    pub status: String,
}

fn active() -> String {
    "Active".to_string()
}

/// Look up a credential by access key id.
pub fn lookup(store: &dyn Store, access_key_id: &str) -> Result<Option<Credential>, StoreError> {
    if let Ok(c) = cache().read() {
        if let Some(hit) = c.get(&(store_id(store), access_key_id.to_string())) {
            return Ok(hit.clone());
        }
    }
    let found: Option<Credential> = store.get_json(&system_scope(), TABLE, access_key_id)?;
    remember(store, access_key_id, found.clone());
    Ok(found)
}

/// Record a credential.
pub fn save(store: &dyn Store, cred: &Credential) -> Result<(), StoreError> {
    store.put_json(&system_scope(), TABLE, &cred.access_key_id, cred)?;
    remember(store, &cred.access_key_id, Some(cred.clone()));
    Ok(())
}

/// Forget a credential.
pub fn remove(store: &dyn Store, access_key_id: &str) -> Result<bool, StoreError> {
    let existed = store.delete(&system_scope(), TABLE, access_key_id)?;
    remember(store, access_key_id, None);
    Ok(existed)
}
