//! Helpers every service uses: typed input/output, store errors, `DryRun`, `ClientToken`.

use crate::RequestContext;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreError, StoreExt};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// Deserialize an operation input into its typed form. Type mismatches the protocol layer let
/// through answer `validation_code` (e.g. `ValidationException`, `ValidationError`,
/// `InvalidParameterValue`).
pub fn input<T: DeserializeOwned>(value: Value, validation_code: &str) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::client(validation_code, format!("invalid request: {e}")))
}

/// Serialize a typed output into a value.
pub fn output<T: Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::internal(format!("cannot encode output: {e}")))
}

/// A store failure as a 500 to the caller.
pub fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure");
    ApiError::internal(format!("state store failure: {e}"))
}

/// `DryRun`: answers `DryRunOperation` (412) when the caller asked for a dry run and would be
/// allowed to perform the operation. Call after validation, before any change.
pub fn check_dry_run(input: &Value) -> Result<(), ApiError> {
    if input.get("DryRun").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::new(
            412,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    Ok(())
}

const IDEMPOTENCY_TABLE: &str = "idempotency";

/// Idempotency by `ClientToken`: the output of an earlier call with the same token and the same
/// operation, if any. A token reused with different parameters answers
/// `IdempotentParameterMismatch`.
pub fn idempotent_replay(
    store: &dyn Store,
    ctx: &RequestContext,
    token: Option<&str>,
    input: &Value,
) -> Result<Option<Value>, ApiError> {
    let Some(token) = token else { return Ok(None) };
    let scope = Scope::new(&ctx.account, &ctx.region);
    let key = format!("{}:{}:{token}", ctx.service, ctx.operation);
    let found: Option<Value> = store
        .get_json(&scope, IDEMPOTENCY_TABLE, &key)
        .map_err(store_error)?;
    let Some(found) = found else { return Ok(None) };
    if found.get("input") != Some(&strip_token(input)) {
        return Err(ApiError::client(
            "IdempotentParameterMismatch",
            "The client token you have provided is associated with a resource that is already deleted or a request with different parameters.",
        ));
    }
    Ok(found.get("output").cloned())
}

/// Remember the output of a call made with `token`.
pub fn idempotent_record(
    store: &dyn Store,
    ctx: &RequestContext,
    token: Option<&str>,
    input: &Value,
    output: &Value,
) -> Result<(), ApiError> {
    let Some(token) = token else { return Ok(()) };
    let scope = Scope::new(&ctx.account, &ctx.region);
    let key = format!("{}:{}:{token}", ctx.service, ctx.operation);
    let rec = serde_json::json!({"input": strip_token(input), "output": output});
    store
        .put_json(&scope, IDEMPOTENCY_TABLE, &key, &rec)
        .map_err(store_error)
}

fn strip_token(input: &Value) -> Value {
    let mut v = input.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("ClientToken");
        o.remove("DryRun");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dry_run() {
        assert!(check_dry_run(&json!({})).is_ok());
        let e = check_dry_run(&json!({"DryRun": true})).expect_err("dry run");
        assert_eq!(e.code, "DryRunOperation");
        assert_eq!(e.status, 412);
    }
}
