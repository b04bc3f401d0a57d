//! `Invoke`: checks the request, resolves the function and hands it to the engine
//! (`RequestResponse`), to the async queue (`Event`) or stops after the checks (`DryRun`).

use super::{fn_and_qualifier, function_arn, ipv, validation};
use crate::spec::InvokeRequest;
use crate::Inner;
use base64::Engine;
use bytes::Bytes;
use fc_protocol::ApiError;
use fc_services::RequestContext;
use serde_json::{json, Value};
use std::sync::Arc;

/// Synchronous request payload limit.
pub const SYNC_LIMIT: usize = 6_291_456;
/// Asynchronous request payload limit.
pub const ASYNC_LIMIT: usize = 262_144;

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        "RequestTooLargeException",
        format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
    )
    .with_field("Type", json!("User"))
}

/// `Invoke`.
pub async fn invoke(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (f, q) = fn_and_qualifier(ctx, input)?;
    let kind = input
        .get("InvocationType")
        .and_then(Value::as_str)
        .unwrap_or("RequestResponse");
    let limit = match kind {
        "RequestResponse" | "DryRun" => SYNC_LIMIT,
        "Event" => ASYNC_LIMIT,
        other => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to \
                 satisfy constraint: Member must satisfy enum value set: [Event, \
                 RequestResponse, DryRun]"
            )))
        }
    };
    let payload = match input.get("Payload").and_then(Value::as_str) {
        Some(b64) if !b64.is_empty() => {
            // Cheap bound before decoding: 4 base64 characters per 3 bytes.
            if b64.len() / 4 * 3 > limit + 3 {
                return Err(too_large(limit));
            }
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| ApiError::malformed("Payload is not valid base64"))?
        }
        _ => Vec::new(),
    };
    if payload.len() > limit {
        return Err(too_large(limit));
    }
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
            return Err(ApiError::new(
                400,
                "InvalidRequestContentException",
                format!(
                    "Could not parse request body into json: Could not parse payload into json: \
                     {e}"
                ),
            )
            .with_field("Type", json!("User")));
        }
        Bytes::from(payload)
    };
    let tail_logs = match input.get("LogType").and_then(Value::as_str) {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'logType' failed to satisfy \
                 constraint: Member must satisfy enum value set: [None, Tail]"
            )))
        }
    };
    let client_context = input
        .get("ClientContext")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(cc) = &client_context {
        if cc.len() > 3583 {
            return Err(ipv("Client context must be smaller than 3583 bytes."));
        }
    }
    let spec = super::functions::resolve_spec(
        inner,
        &f.account,
        &f.region,
        &f.name,
        q.as_deref().unwrap_or("$LATEST"),
    )?;
    let mut invoked_arn = function_arn(&f.region, &f.account, &f.name);
    if let Some(q) = &q {
        invoked_arn.push(':');
        invoked_arn.push_str(q);
    }
    let version = spec.version.clone();
    let req = InvokeRequest {
        request_id: ctx.request_id.clone(),
        payload,
        invoked_arn,
        client_context,
        cognito_identity: None,
        tail_logs,
        asynchronous: kind == "Event",
    };
    match kind {
        "DryRun" => Ok(json!({"StatusCode": 204})),
        "Event" => {
            crate::triggers::enqueue_async(inner, spec, req).await?;
            Ok(json!({"StatusCode": 202}))
        }
        _ => {
            let r = inner.invoke(spec, req).await?;
            let mut out = json!({
                "StatusCode": 200,
                "ExecutedVersion": if r.executed_version.is_empty() {
                    version
                } else {
                    r.executed_version
                },
                "Payload": base64::engine::general_purpose::STANDARD.encode(&r.payload),
            });
            if let Some(e) = r.function_error {
                out["FunctionError"] = json!(e);
            }
            if let Some(l) = r.log_result {
                out["LogResult"] = json!(l);
            }
            Ok(out)
        }
    }
}
