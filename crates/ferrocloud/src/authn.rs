//! Who sent a request: access key -> account and principal, and in strict mode a verified
//! SigV4 signature.
//!
//! Access keys resolve in this order: IAM access keys and STS temporary credentials recorded by
//! the services (`fc_services::identity`); the configured root key (default account); a
//! 12-digit access key id names its own account (as LocalStack users expect); any other key is
//! the default account's root in lenient mode and refused in strict mode.

use crate::config::AuthMode;
use crate::server::App;
use crate::signature::{self, Signature};
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

fn expired_url() -> ApiError {
    ApiError::new(403, "AccessDenied", "Request has expired")
}

/// A presigned URL past `X-Amz-Date + X-Amz-Expires` is refused in every auth mode.
fn check_presigned_expiry(p: &fc_auth::sigv4::Credentials, json: bool) -> Result<(), ApiError> {
    let Some(expires) = p.expires else {
        return Ok(());
    };
    let Ok(signed_at) = p.request_time() else {
        return Err(signature::error_of(
            AuthErrorCode::IncompleteSignature,
            json,
        ));
    };
    let now = time::OffsetDateTime::now_utc();
    if now > signed_at + time::Duration::seconds(expires.min(i64::MAX as u64) as i64) {
        return Err(expired_url());
    }
    Ok(())
}

/// Authenticate a request. `json` selects the JSON spelling of error codes; `streamed` says
/// the body is streamed to the handler rather than held in `req.body`.
pub async fn authenticate(
    app: &App,
    req: &HttpRequest,
    json: bool,
    streamed: bool,
) -> Result<Caller, ApiError> {
    let strict = app.cfg.auth == AuthMode::Strict;
    let sig = match signature::parse(req, json) {
        Ok(s) => s,
        Err(e) if strict => return Err(e),
        Err(_) => Signature::None,
    };
    // Presigned URLs expire in every auth mode.
    match &sig {
        Signature::V4(p) if p.presigned => check_presigned_expiry(p, json)?,
        Signature::V2(q) if q.expires < fc_protocol::value::now_secs() as i64 => {
            return Err(expired_url())
        }
        _ => {}
    }
    let key = match sig.access_key() {
        Some(k) => Some(k.to_string()),
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
    // Cached per key, so this rarely touches the store.
    let found = identity::lookup(app.store.as_ref(), &key)
        .map_err(|e| ApiError::internal(format!("credential lookup failed: {e}")))?;
    if let Some(cred) = found {
        if strict {
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
                if sig.session_token() != Some(token.as_str()) {
                    return Err(signature::error_of(
                        AuthErrorCode::InvalidClientTokenId,
                        json,
                    ));
                }
            }
            signature::verify(req, &sig, &cred.secret_access_key, json, streamed)?;
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
        if strict {
            signature::verify(req, &sig, &app.cfg.root_secret_access_key, json, streamed)?;
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
