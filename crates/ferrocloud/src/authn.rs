//! Who sent a request: access key -> account and principal, and in strict mode a verified
//! SigV4 signature.
//!
//! Access keys resolve in this order: IAM access keys and STS temporary credentials recorded by
//! the services (`fc_services::identity`); the configured root key (default account); a
//! 12-digit access key id names its own account (as LocalStack users expect); any other key is
//! the default account's root in lenient mode and refused in strict mode.

use crate::config::AuthMode;
use crate::server::App;
use crate::signature;
use fc_auth::AuthErrorCode;
use fc_protocol::{ApiError, HttpRequest};
use fc_services::{identity, Principal};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: String,
    pub access_key: Option<String>,
    pub principal: Principal,
}

fn root(account: &str, access_key: Option<String>) -> Caller {
    Caller {
        account: account.to_string(),
        access_key,
        principal: Principal {
            arn: format!("arn:aws:iam::{account}:root"),
            user_id: account.to_string(),
        },
    }
}

/// The access key id of a request whose signature could not be parsed (lenient mode still
/// takes the key to pick the account).
fn loose_access_key(req: &HttpRequest) -> Option<String> {
    let auth = req.header("authorization")?;
    let start = auth.find("Credential=")? + "Credential=".len();
    let key = auth[start..].split([',', ' ', '/']).next()?;
    (!key.is_empty()).then(|| key.to_string())
}

/// Authenticate a request. `json` selects the JSON spelling of error codes.
pub async fn authenticate(app: &App, req: &HttpRequest, json: bool) -> Result<Caller, ApiError> {
    let strict = app.cfg.auth == AuthMode::Strict;
    let parsed = match signature::parse(req, json) {
        Ok(p) => p,
        Err(e) if strict => return Err(e),
        Err(_) => None,
    };
    let key = match &parsed {
        Some(p) => Some(p.access_key_id.clone()),
        None if strict => {
            return Err(signature::error_of(
                AuthErrorCode::MissingAuthenticationToken,
                json,
            ))
        }
        None => loose_access_key(req),
    };
    let Some(key) = key else {
        return Ok(root(&app.cfg.account_id, None));
    };
    let store = app.store.clone();
    let lookup_key = key.clone();
    let found = tokio::task::spawn_blocking(move || identity::lookup(store.as_ref(), &lookup_key))
        .await
        .map_err(|e| ApiError::internal(format!("credential lookup failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("credential lookup failed: {e}")))?;
    if let Some(cred) = found {
        if let (true, Some(parsed)) = (strict, &parsed) {
            if cred.status != "Active" {
                return Err(signature::error_of(
                    AuthErrorCode::InvalidClientTokenId,
                    json,
                ));
            }
            if let Some(exp) = cred.expires {
                if fc_protocol::value::now_secs() > exp {
                    return Err(signature::error_of(AuthErrorCode::ExpiredToken, json));
                }
            }
            if let Some(token) = &cred.session_token {
                if parsed.session_token.as_deref() != Some(token.as_str()) {
                    return Err(signature::error_of(
                        AuthErrorCode::InvalidClientTokenId,
                        json,
                    ));
                }
            }
            signature::verify(req, parsed, &cred.secret_access_key, json)?;
        }
        return Ok(Caller {
            account: cred.account,
            access_key: Some(key),
            principal: Principal {
                arn: cred.arn,
                user_id: cred.user_id,
            },
        });
    }
    if key == app.cfg.root_access_key_id {
        if let (true, Some(parsed)) = (strict, &parsed) {
            signature::verify(req, parsed, &app.cfg.root_secret_access_key, json)?;
        }
        return Ok(root(&app.cfg.account_id, Some(key)));
    }
    if strict {
        return Err(signature::error_of(
            AuthErrorCode::InvalidClientTokenId,
            json,
        ));
    }
    if fc_types::ids::is_account_id(&key) {
        return Ok(root(&key, Some(key.clone())));
    }
    Ok(root(&app.cfg.account_id, Some(key)))
}
