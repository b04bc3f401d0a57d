//! Published versions (immutable snapshots of `$LATEST`) and aliases with weighted routing.

use super::functions::{self, del, load, must_load, put, versions};
use super::model::{
    self, render_alias, render_config, revision_id, AliasRecord, Config, FunctionRecord, ALIASES,
    FUNCTIONS, VERSIONS,
};
use super::{
    conflict, fn_not_found, ipv, not_found, paginate, precondition, store_err, unqualified,
    validation,
};
use crate::Inner;
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The next version made of `$LATEST` (bumps `last_version`).
pub(crate) fn next_version(rec: &mut FunctionRecord, description: Option<&str>) -> Config {
    rec.last_version += 1;
    let mut v = rec.latest.clone();
    v.version = rec.last_version.to_string();
    v.revision_id = revision_id();
    v.last_modified = functions::now();
    if let Some(d) = description {
        v.description = d.to_string();
    }
    v
}

pub(crate) fn load_alias(
    inner: &Inner,
    scope: &Scope,
    function: &str,
    alias: &str,
) -> Result<Option<AliasRecord>, ApiError> {
    inner
        .deps
        .store
        .get_json::<AliasRecord>(scope, ALIASES, &format!("{function}/{alias}"))
        .map_err(store_err)
}

pub(crate) fn all_aliases(
    inner: &Inner,
    scope: &Scope,
    function: &str,
) -> Result<Vec<AliasRecord>, ApiError> {
    let (items, _) = inner
        .deps
        .store
        .scan_json::<AliasRecord>(scope, ALIASES, &format!("{function}/"), None, usize::MAX)
        .map_err(store_err)?;
    Ok(items.into_iter().map(|(_, a)| a).collect())
}

/// `PublishVersion`.
pub async fn publish_version(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let _guard = inner.control.write.lock().await;
    let mut rec = must_load(inner, &account, &region, &name)?;
    if let Some(r) = input.get("RevisionId").and_then(Value::as_str) {
        if r != rec.latest.revision_id {
            return Err(precondition());
        }
    }
    if let Some(sha) = input.get("CodeSha256").and_then(Value::as_str) {
        if sha != rec.latest.code.sha_b64 {
            return Err(ipv(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). \
                 Please try again with the CodeSHA256 in $LATEST.",
                rec.latest.code.sha_b64
            )));
        }
    }
    if rec.latest.state != "Active" || rec.latest.last_update_status == "InProgress" {
        return Err(conflict(format!(
            "The operation cannot be performed at this time. An update is in progress for \
             resource: {}",
            rec.arn
        )));
    }
    // Nothing changed since the last version: that version is the answer.
    if rec.last_version > 0 {
        if let Some(last) = versions(inner, &scope, &name)?.pop() {
            if last.fingerprint() == rec.latest.fingerprint() {
                return Ok(render_config(&rec, &last));
            }
        }
    }
    let v = next_version(&mut rec, input.get("Description").and_then(Value::as_str));
    inner
        .deps
        .store
        .batch(vec![
            put(
                &scope,
                VERSIONS,
                &model::version_key(&name, rec.last_version),
                &v,
            )?,
            put(&scope, FUNCTIONS, &name, &rec)?,
        ])
        .map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    Ok(render_config(&rec, &v))
}

/// `ListVersionsByFunction` (`$LATEST` first).
pub fn list_versions(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let rec = must_load(inner, &account, &region, &name)?;
    let mut items = vec![(String::from("0"), render_config(&rec, &rec.latest))];
    for v in versions(inner, &scope, &name)? {
        let n: u64 = v.version.parse().unwrap_or(0);
        items.push((format!("1{n:010}"), render_config(&rec, &v)));
    }
    let (page, next) = paginate(
        "ListVersionsByFunction",
        items,
        input.get("Marker").and_then(Value::as_str),
        input.get("MaxItems").and_then(Value::as_i64),
    )?;
    let mut out = json!({ "Versions": page });
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(out)
}

fn alias_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.bytes().all(|b| b.is_ascii_digit())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A version an alias may point at: `$LATEST` or an existing published version.
fn check_version(
    inner: &Inner,
    scope: &Scope,
    rec: &FunctionRecord,
    v: &str,
) -> Result<(), ApiError> {
    if v == "$LATEST" {
        return Ok(());
    }
    let n: u64 = v.parse().map_err(|_| {
        validation(format!(
            "1 validation error detected: Value '{v}' at 'functionVersion' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)"
        ))
    })?;
    if functions::load_version(inner, scope, &rec.name, n)?.is_none() {
        let (account, region) = (scope.account.as_str(), scope.region.as_str());
        return Err(fn_not_found(region, account, &rec.name, Some(v)));
    }
    Ok(())
}

fn routing(
    inner: &Inner,
    scope: &Scope,
    rec: &FunctionRecord,
    primary: &str,
    v: Option<&Value>,
) -> Result<BTreeMap<String, f64>, ApiError> {
    let mut out = BTreeMap::new();
    let Some(w) = v
        .and_then(|r| r.get("AdditionalVersionWeights"))
        .and_then(Value::as_object)
    else {
        return Ok(out);
    };
    if w.len() > 1 {
        return Err(ipv(
            "Number of items in AdditionalVersionWeights cannot be greater than 1",
        ));
    }
    for (ver, weight) in w {
        let weight = weight.as_f64().unwrap_or(-1.0);
        if !(0.0..=1.0).contains(&weight) {
            return Err(validation(format!(
                "1 validation error detected: Value '{weight}' at \
                 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map \
                 value must satisfy constraint: [Member must have value less than or equal to \
                 1.0, Member must have value greater than or equal to 0.0]"
            )));
        }
        if ver == "$LATEST" || primary == "$LATEST" {
            return Err(ipv(
                "$LATEST is not supported for an alias pointing to more than 1 version",
            ));
        }
        if ver == primary {
            return Err(ipv(format!(
                "Invalid function version {ver}. Function version {ver} is already included in \
                 routing configuration."
            )));
        }
        check_version(inner, scope, rec, ver)?;
        out.insert(ver.clone(), weight);
    }
    Ok(out)
}

fn alias_target(
    ctx: &RequestContext,
    input: &Value,
) -> Result<(String, String, String, String), ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let alias = input
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !alias_name_ok(&alias) {
        return Err(validation(format!(
            "1 validation error detected: Value '{alias}' at 'name' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: \
             (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
        )));
    }
    Ok((account, region, name, alias))
}

fn alias_not_found(region: &str, account: &str, name: &str, alias: &str) -> ApiError {
    not_found(format!(
        "Alias not found: {}:{alias}",
        super::function_arn(region, account, name)
    ))
}

/// `CreateAlias`.
pub async fn create_alias(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name, alias) = alias_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let version = input
        .get("FunctionVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let _guard = inner.control.write.lock().await;
    let rec = must_load(inner, &account, &region, &name)?;
    check_version(inner, &scope, &rec, &version)?;
    let weights = routing(inner, &scope, &rec, &version, input.get("RoutingConfig"))?;
    if load_alias(inner, &scope, &name, &alias)?.is_some() {
        return Err(conflict(format!(
            "Alias already exists: {}:{alias}",
            rec.arn
        )));
    }
    let a = AliasRecord {
        name: alias.clone(),
        function_version: version,
        description: input
            .get("Description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        weights,
        revision_id: revision_id(),
    };
    inner
        .deps
        .store
        .put_json(&scope, ALIASES, &format!("{name}/{alias}"), &a)
        .map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    Ok(render_alias(&rec.arn, &a))
}

/// `GetAlias`.
pub fn get_alias(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name, alias) = alias_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let rec = must_load(inner, &account, &region, &name)?;
    let a = load_alias(inner, &scope, &name, &alias)?
        .ok_or_else(|| alias_not_found(&region, &account, &name, &alias))?;
    Ok(render_alias(&rec.arn, &a))
}

/// `UpdateAlias`.
pub async fn update_alias(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name, alias) = alias_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let old = provisioned_spec(inner, &scope, &name, &alias).await;
    let guard = inner.control.write.lock().await;
    let rec = must_load(inner, &account, &region, &name)?;
    let mut a = load_alias(inner, &scope, &name, &alias)?
        .ok_or_else(|| alias_not_found(&region, &account, &name, &alias))?;
    if let Some(r) = input.get("RevisionId").and_then(Value::as_str) {
        if r != a.revision_id {
            return Err(precondition());
        }
    }
    if let Some(v) = input.get("FunctionVersion").and_then(Value::as_str) {
        check_version(inner, &scope, &rec, v)?;
        a.function_version = v.to_string();
    }
    if let Some(d) = input.get("Description").and_then(Value::as_str) {
        a.description = d.to_string();
    }
    if input.get("RoutingConfig").is_some() {
        a.weights = routing(
            inner,
            &scope,
            &rec,
            &a.function_version,
            input.get("RoutingConfig"),
        )?;
    } else if a.weights.contains_key(&a.function_version) {
        a.weights.clear();
    }
    a.revision_id = revision_id();
    inner
        .deps
        .store
        .put_json(&scope, ALIASES, &format!("{name}/{alias}"), &a)
        .map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    drop(guard);
    if old.is_some() {
        super::concurrency::alias_changed(inner, &scope, &name, &alias, old, false).await;
    }
    Ok(render_alias(&rec.arn, &a))
}

/// What an alias with provisioned concurrency resolves to now (None without a config).
async fn provisioned_spec(
    inner: &Arc<Inner>,
    scope: &Scope,
    name: &str,
    alias: &str,
) -> Option<Arc<crate::spec::FunctionSpec>> {
    inner
        .deps
        .store
        .get(scope, model::PROVISIONED, &format!("{name}/{alias}"))
        .ok()
        .flatten()?;
    super::resolve(inner, &scope.account, &scope.region, name, Some(alias))
        .await
        .ok()
}

/// `DeleteAlias`.
pub async fn delete_alias(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name, alias) = alias_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let old = provisioned_spec(inner, &scope, &name, &alias).await;
    let guard = inner.control.write.lock().await;
    if load(inner, &scope, &name)?.is_none() {
        return Err(fn_not_found(&region, &account, &name, None));
    }
    inner
        .deps
        .store
        .batch(vec![
            del(&scope, ALIASES, &format!("{name}/{alias}")),
            del(&scope, model::PROVISIONED, &format!("{name}/{alias}")),
        ])
        .map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    drop(guard);
    if old.is_some() {
        super::concurrency::alias_changed(inner, &scope, &name, &alias, old, true).await;
    }
    crate::triggers::function_deleted(inner, &account, &region, &name, Some(&alias)).await;
    Ok(json!({}))
}

/// `ListAliases` (optionally only those pointing at `FunctionVersion`).
pub fn list_aliases(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = unqualified(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let rec = must_load(inner, &account, &region, &name)?;
    let only = input.get("FunctionVersion").and_then(Value::as_str);
    let items = all_aliases(inner, &scope, &name)?
        .into_iter()
        .filter(|a| only.is_none_or(|v| a.function_version == v || a.weights.contains_key(v)))
        .map(|a| (a.name.clone(), render_alias(&rec.arn, &a)))
        .collect();
    let (page, next) = paginate(
        "ListAliases",
        items,
        input.get("Marker").and_then(Value::as_str),
        input.get("MaxItems").and_then(Value::as_i64),
    )?;
    let mut out = json!({ "Aliases": page });
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(out)
}
