//! Reserved concurrency of functions and provisioned concurrency of versions and aliases.

use super::functions::{self, load, must_load, now, reserved_total};
use super::model::{lambda_time, ProvisionedRecord, FUNCTIONS, PROVISIONED};
use super::{
    conflict, fn_and_qualifier, fn_not_found, ipv, paginate, store_err, unqualified, validation,
};
use crate::Inner;
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Value};
use std::sync::Arc;

/// The least unreserved concurrency an account keeps.
const MIN_UNRESERVED: u64 = 100;

/// `PutFunctionConcurrency`.
pub async fn put_function_concurrency(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let n = input
        .get("ReservedConcurrentExecutions")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    if n < 0 {
        return Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'reservedConcurrentExecutions' failed \
             to satisfy constraint: Member must have value greater than or equal to 0"
        )));
    }
    let _guard = inner.control.write.lock().await;
    let mut rec = must_load(inner, &account, &region, &name)?;
    let limit = u64::from(inner.deps.settings.account_concurrency);
    let others = reserved_total(inner, &scope, Some(&name))?;
    if (n as u64)
        .saturating_add(others)
        .saturating_add(MIN_UNRESERVED)
        > limit
    {
        return Err(ipv(
            "Specified ReservedConcurrentExecutions for function decreases account's \
             UnreservedConcurrentExecution below its minimum value of [100].",
        ));
    }
    rec.reserved = Some(n as u32);
    inner
        .deps
        .store
        .put_json(&scope, FUNCTIONS, &name, &rec)
        .map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    Ok(json!({ "ReservedConcurrentExecutions": n }))
}

/// `GetFunctionConcurrency`.
pub fn get_function_concurrency(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let rec = must_load(inner, &account, &region, &name)?;
    Ok(match rec.reserved {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    })
}

/// `DeleteFunctionConcurrency`.
pub async fn delete_function_concurrency(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let _guard = inner.control.write.lock().await;
    let mut rec = must_load(inner, &account, &region, &name)?;
    rec.reserved = None;
    inner
        .deps
        .store
        .put_json(&Scope::new(&account, &region), FUNCTIONS, &name, &rec)
        .map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    Ok(json!({}))
}

fn render(arn: &str, p: &ProvisionedRecord, with_arn: bool) -> Value {
    let mut o = json!({
        "RequestedProvisionedConcurrentExecutions": p.requested,
        "AvailableProvisionedConcurrentExecutions": p.allocated,
        "AllocatedProvisionedConcurrentExecutions": p.allocated,
        "Status": p.status,
        "LastModified": lambda_time(p.last_modified),
    });
    if let Some(r) = &p.reason {
        o["StatusReason"] = json!(r);
    }
    if with_arn {
        o["FunctionArn"] = json!(format!("{arn}:{}", p.qualifier));
    }
    o
}

/// (account, region, name, qualifier) of a provisioned-concurrency operation; the qualifier
/// must name a published version or an alias.
fn target(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<(String, String, String, String), ApiError> {
    let (f, q) = fn_and_qualifier(ctx, input)?;
    let rec = must_load(inner, &f.account, &f.region, &f.name)?;
    let Some(q) = q else {
        return Err(validation(
            "1 validation error detected: Value null at 'qualifier' failed to satisfy \
             constraint: Member must not be null",
        ));
    };
    if q == "$LATEST" {
        return Err(ipv(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
        ));
    }
    functions::config_for(inner, &rec, &f.account, &f.region, Some(&q))?;
    Ok((f.account, f.region, f.name, q))
}

fn has_config(inner: &Inner, scope: &Scope, name: &str, q: &str) -> Result<bool, ApiError> {
    Ok(inner
        .deps
        .store
        .get(scope, PROVISIONED, &format!("{name}/{q}"))
        .map_err(store_err)?
        .is_some())
}

/// A version and an alias pointing at it cannot both have provisioned concurrency.
fn overlap(inner: &Inner, scope: &Scope, name: &str, q: &str) -> Result<(), ApiError> {
    if q.bytes().all(|b| b.is_ascii_digit()) {
        for a in super::versions::all_aliases(inner, scope, name)? {
            if a.function_version == q && has_config(inner, scope, name, &a.name)? {
                return Err(conflict(format!(
                    "Alias {} of version {q} already has a Provisioned Concurrency Config",
                    a.name
                )));
            }
        }
    } else if let Some(a) = super::versions::load_alias(inner, scope, name, q)? {
        if has_config(inner, scope, name, &a.function_version)? {
            return Err(conflict(format!(
                "Version {} already has a Provisioned Concurrency Config",
                a.function_version
            )));
        }
    }
    Ok(())
}

/// Moves the provisioned environments of an alias after it changed (`old` = what it resolved
/// to before) or was deleted (`count` = 0).
pub(crate) async fn alias_changed(
    inner: &Arc<Inner>,
    scope: &Scope,
    name: &str,
    alias: &str,
    old: Option<Arc<crate::spec::FunctionSpec>>,
    deleted: bool,
) {
    let Ok(Some(p)) = inner.deps.store.get_json::<ProvisionedRecord>(
        scope,
        PROVISIONED,
        &format!("{name}/{alias}"),
    ) else {
        if deleted {
            if let Some(old) = old {
                inner.exec.set_provisioned(old, 0).await;
            }
        }
        return;
    };
    if let Some(old) = old {
        inner.exec.set_provisioned(old, 0).await;
    }
    if !deleted {
        if let Ok(spec) =
            super::resolve(inner, &scope.account, &scope.region, name, Some(alias)).await
        {
            inner.exec.set_provisioned(spec, p.requested).await;
        }
    }
}

/// `PutProvisionedConcurrencyConfig`: recorded `IN_PROGRESS`, `READY` once the engine has the
/// environments.
pub async fn put_provisioned(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name, q) = target(inner, ctx, input)?;
    let scope = Scope::new(&account, &region);
    let n = input
        .get("ProvisionedConcurrentExecutions")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if n < 1 {
        return Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'provisionedConcurrentExecutions' \
             failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    let rec = must_load(inner, &account, &region, &name)?;
    let limit = u64::from(inner.deps.settings.account_concurrency);
    if let Some(r) = rec.reserved {
        if n as u64 > u64::from(r) {
            return Err(ipv(format!(
                "Requested Provisioned Concurrency should not be greater than the \
                 reservedConcurrentExecution for function {}",
                rec.arn
            )));
        }
    } else if n as u64 + reserved_total(inner, &scope, None)? + MIN_UNRESERVED > limit {
        return Err(ipv(
            "Requested Provisioned Concurrency exceeds the account's unreserved concurrency \
             (it may not go below its minimum value of [100]).",
        ));
    }
    overlap(inner, &scope, &name, &q)?;
    let key = format!("{name}/{q}");
    let p = ProvisionedRecord {
        qualifier: q.clone(),
        requested: n as u32,
        allocated: 0,
        status: "IN_PROGRESS".into(),
        reason: None,
        last_modified: now(),
    };
    {
        let _guard = inner.control.write.lock().await;
        inner
            .deps
            .store
            .put_json(&scope, PROVISIONED, &key, &p)
            .map_err(store_err)?;
    }
    let out = render(&rec.arn, &p, false);
    let inner2 = inner.clone();
    tokio::spawn(async move {
        let spec = match super::resolve(&inner2, &account, &region, &name, Some(&q)).await {
            Ok(s) => s,
            Err(e) => {
                settle(&inner2, &scope, &key, n as u32, Err(e.message)).await;
                return;
            }
        };
        inner2.exec.set_provisioned(spec, n as u32).await;
        settle(&inner2, &scope, &key, n as u32, Ok(())).await;
    });
    Ok(out)
}

async fn settle(inner: &Inner, scope: &Scope, key: &str, n: u32, outcome: Result<(), String>) {
    let _guard = inner.control.write.lock().await;
    let Ok(Some(mut p)) = inner
        .deps
        .store
        .get_json::<ProvisionedRecord>(scope, PROVISIONED, key)
    else {
        return;
    };
    if p.requested != n {
        return;
    }
    match outcome {
        Ok(()) => {
            p.status = "READY".into();
            p.allocated = n;
            p.reason = None;
        }
        Err(reason) => {
            p.status = "FAILED".into();
            p.reason = Some(reason);
        }
    }
    p.last_modified = now();
    if let Err(e) = inner.deps.store.put_json(scope, PROVISIONED, key, &p) {
        tracing::warn!(key, error = %e, "lambda: recording provisioned concurrency failed");
    }
}

fn not_configured() -> ApiError {
    ApiError::new(
        404,
        "ProvisionedConcurrencyConfigNotFoundException",
        "No Provisioned Concurrency Config found for this function",
    )
    .with_field("Type", json!("User"))
}

/// `GetProvisionedConcurrencyConfig`.
pub fn get_provisioned(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name, q) = target(inner, ctx, input)?;
    let scope = Scope::new(&account, &region);
    let rec = must_load(inner, &account, &region, &name)?;
    let p = inner
        .deps
        .store
        .get_json::<ProvisionedRecord>(&scope, PROVISIONED, &format!("{name}/{q}"))
        .map_err(store_err)?
        .ok_or_else(not_configured)?;
    Ok(render(&rec.arn, &p, false))
}

/// `DeleteProvisionedConcurrencyConfig`.
pub async fn delete_provisioned(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name, q) = target(inner, ctx, input)?;
    let scope = Scope::new(&account, &region);
    let existed = {
        let _guard = inner.control.write.lock().await;
        inner
            .deps
            .store
            .delete(&scope, PROVISIONED, &format!("{name}/{q}"))
            .map_err(store_err)?
    };
    if !existed {
        return Err(not_configured());
    }
    if let Ok(spec) = super::resolve(inner, &account, &region, &name, Some(&q)).await {
        inner.exec.set_provisioned(spec, 0).await;
    }
    Ok(json!({}))
}

/// `ListProvisionedConcurrencyConfigs`.
pub fn list_provisioned(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let Some(rec) = load(inner, &scope, &name)? else {
        return Err(fn_not_found(&region, &account, &name, None));
    };
    let (items, _) = inner
        .deps
        .store
        .scan_json::<ProvisionedRecord>(&scope, PROVISIONED, &format!("{name}/"), None, usize::MAX)
        .map_err(store_err)?;
    let items = items
        .into_iter()
        .map(|(k, p)| (k, render(&rec.arn, &p, true)))
        .collect();
    let (page, next) = paginate(
        "ListProvisionedConcurrencyConfigs",
        items,
        input.get("Marker").and_then(Value::as_str),
        input.get("MaxItems").and_then(Value::as_i64),
    )?;
    let mut out = json!({ "ProvisionedConcurrencyConfigs": page });
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(out)
}

/// Re-establishes every provisioned-concurrency configuration of a scope (after a restart).
pub(crate) async fn recover(inner: &Arc<Inner>, scope: &Scope) {
    let Ok((items, _)) =
        inner
            .deps
            .store
            .scan_json::<ProvisionedRecord>(scope, PROVISIONED, "", None, usize::MAX)
    else {
        return;
    };
    for (key, p) in items {
        let Some((name, _)) = key.split_once('/') else {
            continue;
        };
        let (inner, scope, name) = (inner.clone(), scope.clone(), name.to_string());
        tokio::spawn(async move {
            match super::resolve(
                &inner,
                &scope.account,
                &scope.region,
                &name,
                Some(&p.qualifier),
            )
            .await
            {
                Ok(spec) => {
                    inner.exec.set_provisioned(spec, p.requested).await;
                    settle(&inner, &scope, &key, p.requested, Ok(())).await;
                }
                Err(e) => settle(&inner, &scope, &key, p.requested, Err(e.message)).await,
            }
        });
    }
}
