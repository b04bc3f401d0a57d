//! STS: who am I (`GetCallerIdentity`), temporary credentials (`AssumeRole`, including across
//! accounts, and `GetSessionToken`), `GetAccessKeyInfo`. Temporary credentials are recorded in
//! the credentials index ([`crate::identity`]) so requests signed with them resolve to the
//! session's principal and account.
//!
//! Must not live here: roles themselves (`iam`), signature checks (the server, fc-auth).

// Handlers return `ApiError` by value, as the `Service` trait does.
#![allow(clippy::result_large_err)]

#[cfg(test)]
mod tests;

use crate::common::store_error;
use crate::identity::{self, Credential};
use crate::{iam, RequestContext, Service};
use async_trait::async_trait;
use fc_protocol::ApiError;
use fc_store::Store;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The STS service.
pub struct Sts {
    store: Arc<dyn Store>,
    /// Check roles' trust policies and callers' identity policies on `AssumeRole` (strict auth).
    enforce: bool,
}

impl Sts {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Sts {
            store,
            enforce: false,
        }
    }

    /// Enforce trust policies (and the caller's `sts:AssumeRole` permission) as AWS does.
    pub fn enforcing(mut self, enforce: bool) -> Self {
        self.enforce = enforce;
        self
    }
}

/// Whether the role's trust policy lets the caller assume it, and (unless the trust policy
/// names the caller itself, or the caller is an account root) whether the caller's own
/// policies allow `sts:AssumeRole` on the role.
fn trust_allows(
    store: &dyn Store,
    ctx: &RequestContext,
    role_arn: &str,
    trust: &str,
) -> Result<bool, ApiError> {
    use fc_auth::policy::{evaluate, AuthzRequest, Policy};
    let Ok(trust_policy) = Policy::parse_resource(trust) else {
        return Ok(false);
    };
    // The trust policy decides on its own whether it admits this principal.
    let req = AuthzRequest::new(&ctx.principal.arn, &ctx.account, "sts:AssumeRole", role_arn);
    if !evaluate(&req, &[], Some(&trust_policy)).is_allowed() {
        return Ok(false);
    }
    if ctx.principal.arn.ends_with(":root") || trust.contains(&ctx.principal.arn) {
        return Ok(true);
    }
    let docs = iam::policies_for_principal(store, &ctx.account, &ctx.principal.arn)?;
    let identity: Vec<Policy> = docs
        .iter()
        .filter_map(|d| Policy::parse_identity(d).ok())
        .collect();
    Ok(evaluate(&req, &identity, None).is_allowed())
}

#[async_trait]
impl Service for Sts {
    fn name(&self) -> &'static str {
        "sts"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        let store = self.store.as_ref();
        match ctx.operation.as_str() {
            "GetCallerIdentity" => Ok(get_caller_identity(ctx)),
            "AssumeRole" => assume_role(store, ctx, &input, self.enforce),
            "GetSessionToken" => get_session_token(store, ctx, &input),
            "GetAccessKeyInfo" => get_access_key_info(store, ctx, &input),
            op => Err(ApiError::not_implemented("sts", op)),
        }
    }
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "ValidationError", message)
}

fn required<'a>(input: &'a Value, member: &str, camel: &str) -> Result<&'a str, ApiError> {
    input.get(member).and_then(Value::as_str).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{camel}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn opt_int(input: &Value, member: &str) -> Result<Option<i64>, ApiError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| validation(format!("Invalid value for parameter {member}"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| validation(format!("Invalid value for parameter {member}: {s}"))),
        Some(_) => Err(validation(format!("Invalid type for parameter {member}"))),
    }
}

fn check_range(value: i64, camel: &str, min: i64, max: i64) -> Result<(), ApiError> {
    if value < min {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{camel}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
        )));
    }
    if value > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{camel}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )));
    }
    Ok(())
}

fn now() -> f64 {
    fc_protocol::value::now_secs().floor()
}

const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// An opaque session token, shaped like AWS's (long base64).
fn session_token() -> String {
    format!(
        "IQoJb3JpZ2luX2VjE{}",
        fc_types::ids::random_from(TOKEN_ALPHABET, 340)
    )
}

/// Issue and record temporary credentials; returns the `Credentials` shape.
fn issue(
    store: &dyn Store,
    account: &str,
    arn: &str,
    user_id: &str,
    duration: i64,
) -> Result<Value, ApiError> {
    let cred = Credential {
        v: 1,
        access_key_id: fc_types::ids::temporary_access_key_id(),
        secret_access_key: fc_types::ids::secret_access_key(),
        session_token: Some(session_token()),
        account: account.to_string(),
        arn: arn.to_string(),
        user_id: user_id.to_string(),
        expires: Some(now() + duration as f64),
        status: "Active".into(),
    };
    identity::save(store, &cred).map_err(store_error)?;
    Ok(json!({
        "AccessKeyId": cred.access_key_id,
        "SecretAccessKey": cred.secret_access_key,
        "SessionToken": cred.session_token,
        "Expiration": fc_protocol::value::epoch_value(cred.expires.unwrap_or_default()),
    }))
}

fn get_caller_identity(ctx: &RequestContext) -> Value {
    json!({
        "UserId": ctx.principal.user_id,
        "Account": ctx.account,
        "Arn": ctx.principal.arn,
    })
}

fn is_session(ctx: &RequestContext) -> bool {
    ctx.principal.arn.contains(":assumed-role/")
        || ctx.principal.arn.contains(":federated-user/")
        || ctx
            .access_key
            .as_deref()
            .is_some_and(|k| k.starts_with("ASIA"))
}

fn check_session_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n < 2 {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2"
        )));
    }
    if n > 64 {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must have length less than or equal to 64"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        )));
    }
    Ok(())
}

/// `(account, role name)` of a role ARN `arn:aws:iam::<acct>:role/<path/>name`.
fn parse_role_arn(arn: &str) -> Result<(String, String), ApiError> {
    let bad = || validation(format!("{arn} is invalid"));
    if arn.len() < 20 {
        return Err(validation(format!(
            "1 validation error detected: Value '{arn}' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"
        )));
    }
    let a = fc_types::Arn::parse(arn).map_err(|_| bad())?;
    if a.service != "iam" || !fc_types::ids::is_account_id(&a.account) {
        return Err(bad());
    }
    let rest = a.resource.strip_prefix("role/").ok_or_else(bad)?;
    let name = rest
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(bad)?;
    Ok((a.account, name.to_string()))
}

fn assume_role(
    store: &dyn Store,
    ctx: &RequestContext,
    input: &Value,
    enforce: bool,
) -> Result<Value, ApiError> {
    let role_arn = required(input, "RoleArn", "roleArn")?;
    let session = required(input, "RoleSessionName", "roleSessionName")?;
    check_session_name(session)?;
    let (account, role_name) = parse_role_arn(role_arn)?;
    let duration = opt_int(input, "DurationSeconds")?.unwrap_or(3600);
    check_range(duration, "durationSeconds", 900, 43200)?;
    let denied = || {
        ApiError::new(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                ctx.principal.arn
            ),
        )
    };
    let role = iam::find_role(store, &account, &role_name)
        .map_err(store_error)?
        .filter(|r| r.arn == role_arn)
        .ok_or_else(denied)?;
    if enforce && !trust_allows(store, ctx, role_arn, &role.trust)? {
        return Err(denied());
    }
    if duration > role.max_session {
        return Err(validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    if is_session(ctx) && duration > 3600 {
        return Err(validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    let mut packed = 0usize;
    if let Some(p) = input.get("Policy").and_then(Value::as_str) {
        iam::policy_doc::validate(p, iam::policy_doc::DocKind::Session)?;
        packed += iam::util::policy_size(p);
    }
    if let Some(Value::Array(arns)) = input.get("PolicyArns") {
        packed += arns.len() * 64;
    }
    let tags = fc_types::tags::from_list(input.get("Tags"));
    if tags.len() > 50 {
        return Err(validation(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50",
        ));
    }
    packed += tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let assumed_arn = format!(
        "arn:aws:sts::{account}:assumed-role/{}/{session}",
        role.name
    );
    let assumed_id = format!("{}:{session}", role.id);
    let creds = issue(store, &account, &assumed_arn, &assumed_id, duration)?;
    iam::record_role_use(store, &account, &role.name, &ctx.region).map_err(store_error)?;
    let mut out = Map::new();
    out.insert("Credentials".into(), creds);
    out.insert(
        "AssumedRoleUser".into(),
        json!({"AssumedRoleId": assumed_id, "Arn": assumed_arn}),
    );
    if packed > 0 {
        out.insert(
            "PackedPolicySize".into(),
            json!((packed * 100 / 2048).clamp(1, 100)),
        );
    }
    if let Some(s) = input.get("SourceIdentity").and_then(Value::as_str) {
        out.insert("SourceIdentity".into(), json!(s));
    }
    Ok(Value::Object(out))
}

fn get_session_token(
    store: &dyn Store,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    if is_session(ctx) {
        return Err(ApiError::new(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let mut duration = opt_int(input, "DurationSeconds")?.unwrap_or(43200);
    check_range(duration, "durationSeconds", 900, 129600)?;
    if ctx.principal.arn.ends_with(":root") {
        duration = duration.min(3600);
    }
    let creds = issue(
        store,
        &ctx.account,
        &ctx.principal.arn,
        &ctx.principal.user_id,
        duration,
    )?;
    Ok(json!({"Credentials": creds}))
}

fn get_access_key_info(
    store: &dyn Store,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let key = required(input, "AccessKeyId", "accessKeyId")?;
    if key.len() < 16 && !fc_types::ids::is_account_id(key) {
        return Err(validation(format!(
            "1 validation error detected: Value '{key}' at 'accessKeyId' failed to satisfy constraint: Member must have length greater than or equal to 16"
        )));
    }
    let account = match identity::lookup(store, key).map_err(store_error)? {
        Some(cred) => cred.account,
        None if fc_types::ids::is_account_id(key) => key.to_string(),
        None => ctx.account.clone(),
    };
    Ok(json!({"Account": account}))
}
