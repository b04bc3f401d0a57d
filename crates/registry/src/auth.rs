//! Who calls the registry (ECR tokens) and whether they may (identity and repository
//! policies).

use crate::{error, Registry};
use base64::Engine;
use fc_images::repos::{self, Repository};
use fc_protocol::HttpRequest;
use fc_services::RawReply;
use fc_store::Scope;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub account: String,
    pub region: String,
    /// Principal ARN; the account root for anonymous callers in lenient mode.
    pub principal: String,
}

impl Caller {
    pub fn scope(&self) -> Scope {
        Scope::new(&self.account, &self.region)
    }
}

fn challenge(req: &HttpRequest, message: &str) -> RawReply {
    let host = req.header("host").unwrap_or("localhost");
    let mut r = error(401, "UNAUTHORIZED", message);
    r.headers.push((
        "WWW-Authenticate".into(),
        format!("Basic realm=\"https://{host}/\",service=\"ecr.amazonaws.com\""),
    ));
    r
}

/// The password of `Authorization: Basic …` / `Bearer …`; `Some("")` for empty credentials.
fn password(req: &HttpRequest) -> Option<String> {
    let h = req.header("authorization")?.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        return Some(
            decoded
                .split_once(':')
                .map(|(_, p)| p.to_string())
                .unwrap_or_default(),
        );
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        // A bearer token may be the password itself or the base64 `AWS:<password>` token.
        if let Some(p) = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("AWS:").map(str::to_string))
        {
            return Some(p);
        }
        return Some(rest.to_string());
    }
    Some(String::new())
}

impl Registry {
    pub(crate) async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, RawReply> {
        let pw = password(req).filter(|p| !p.is_empty());
        let Some(pw) = pw else {
            if self.cfg.strict {
                return Err(challenge(req, "Not Authorized"));
            }
            return Ok(Caller {
                account: self.cfg.default_account.clone(),
                region: self.cfg.default_region.clone(),
                principal: format!("arn:aws:iam::{}:root", self.cfg.default_account),
            });
        };
        let store = self.store.clone();
        let now = fc_protocol::value::now_secs();
        let found =
            tokio::task::spawn_blocking(move || repos::valid_token(store.as_ref(), &pw, now))
                .await
                .map_err(|e| error(500, "UNKNOWN", format!("token lookup failed: {e}")))?
                .map_err(|e| error(500, "UNKNOWN", format!("token lookup failed: {e}")))?;
        match found {
            Some(t) => Ok(Caller {
                account: t.account,
                region: t.region,
                principal: t.principal_arn,
            }),
            None => Err(challenge(
                req,
                "Your authorization token is invalid or has expired.",
            )),
        }
    }

    /// Evaluate `ecr:<action>` on `repo` for the caller.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        repo: &Repository,
    ) -> Result<(), RawReply> {
        allowed(
            self.store.as_ref(),
            &caller.account,
            &caller.principal,
            action,
            repo,
        )
        .map_err(|m| error(403, "DENIED", m))
    }
}

/// Whether `principal` of `account` may perform `action` on `repo` (see
/// [`repos::check_access`]); the error is the message to answer with.
pub(crate) fn allowed(
    store: &dyn fc_store::Store,
    account: &str,
    principal: &str,
    action: &str,
    repo: &Repository,
) -> Result<(), String> {
    if principal == format!("arn:aws:iam::{account}:root") {
        return repos::check_access(None, principal, account, action, repo);
    }
    let docs = fc_services::iam::policies_for_principal(store, account, principal)
        .map_err(|e| e.message.clone())?;
    repos::check_access(Some(&docs), principal, account, action, repo)
}
