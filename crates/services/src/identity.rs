//! Credentials known to ferrocloud: IAM access keys and STS temporary credentials, looked up by
//! access key id when a request arrives. Kept in the store under the system scope.

use fc_store::{Scope, Store, StoreError, StoreExt};
use serde::{Deserialize, Serialize};

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
    store.get_json(&system_scope(), TABLE, access_key_id)
}

/// Record a credential.
pub fn save(store: &dyn Store, cred: &Credential) -> Result<(), StoreError> {
    store.put_json(&system_scope(), TABLE, &cred.access_key_id, cred)
}

/// Forget a credential.
pub fn remove(store: &dyn Store, access_key_id: &str) -> Result<bool, StoreError> {
    store.delete(&system_scope(), TABLE, access_key_id)
}
