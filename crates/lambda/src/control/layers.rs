//! Layers: published versions of a zip (`arn:aws:lambda:<region>:<acct>:layer:<name>:<n>`),
//! unpacked under `<data>/layers/<sha>/`; functions reference up to five of them.

use super::functions::{del, now, put};
use super::model::{lambda_time, layer_key, LayerRecord, LAYERS, LAYER_NAMES};
use super::{code, ipv, not_found, paginate, store_err, validation};
use crate::Inner;
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Value};
use std::sync::Arc;

fn layer_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:layer:{name}")
}

fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 140
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// (account, region, name) of a `LayerName` (a name or a layer ARN).
fn layer_target(ctx: &RequestContext, input: &Value) -> Result<(String, String, String), ApiError> {
    let s = input
        .get("LayerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bad = || {
        validation(format!(
            "1 validation error detected: Value '{s}' at 'layerName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: \
             (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{{12}}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
        ))
    };
    if s.starts_with("arn:") {
        let p: Vec<&str> = s.split(':').collect();
        if p.len() != 7 || p[2] != "lambda" || p[5] != "layer" || !name_ok(p[6]) {
            return Err(bad());
        }
        return Ok((p[4].to_string(), p[3].to_string(), p[6].to_string()));
    }
    if !name_ok(s) {
        return Err(bad());
    }
    Ok((ctx.account.clone(), ctx.region.clone(), s.to_string()))
}

fn render(ctx: &RequestContext, inner: &Inner, scope: &Scope, l: &LayerRecord) -> Value {
    let arn = layer_arn(&scope.region, &scope.account, &l.name);
    let mut o = json!({
        "Content": {
            "Location": inner.control.signer.url(&ctx.endpoint, &l.code.sha_hex, now() as u64),
            "CodeSha256": l.code.sha_b64,
            "CodeSize": l.code.size,
        },
        "LayerArn": arn,
        "LayerVersionArn": format!("{arn}:{}", l.version),
        "Description": l.description,
        "CreatedDate": lambda_time(l.created),
        "Version": l.version,
    });
    list_fields(&mut o, l);
    o
}

fn list_fields(o: &mut Value, l: &LayerRecord) {
    if !l.runtimes.is_empty() {
        o["CompatibleRuntimes"] = json!(l.runtimes);
    }
    if !l.architectures.is_empty() {
        o["CompatibleArchitectures"] = json!(l.architectures);
    }
    if let Some(lic) = &l.license {
        o["LicenseInfo"] = json!(lic);
    }
}

fn list_item(scope: &Scope, l: &LayerRecord) -> Value {
    let arn = layer_arn(&scope.region, &scope.account, &l.name);
    let mut o = json!({
        "LayerVersionArn": format!("{arn}:{}", l.version),
        "Version": l.version,
        "Description": l.description,
        "CreatedDate": lambda_time(l.created),
    });
    list_fields(&mut o, l);
    o
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `PublishLayerVersion`.
pub async fn publish_layer_version(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = layer_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let runtimes = strings(input.get("CompatibleRuntimes"));
    if runtimes.len() > 15 {
        return Err(validation(
            "1 validation error detected: Value at 'compatibleRuntimes' failed to satisfy \
             constraint: Member must have length less than or equal to 15",
        ));
    }
    for r in &runtimes {
        if !super::validate::SUPPORTED_RUNTIMES.contains(&r.as_str())
            && !super::validate::DEPRECATED_RUNTIMES.contains(&r.as_str())
        {
            return Err(validation(format!(
                "1 validation error detected: Value '[{r}]' at 'compatibleRuntimes' failed to \
                 satisfy constraint: Member must satisfy enum value set"
            )));
        }
    }
    let archs = strings(input.get("CompatibleArchitectures"));
    if archs.len() > 2 || archs.iter().any(|a| a != "x86_64" && a != "arm64") {
        return Err(validation(format!(
            "1 validation error detected: Value '[{}]' at 'compatibleArchitectures' failed to \
             satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value \
             set: [x86_64, arm64]]",
            archs.join(", ")
        )));
    }
    let content = input.get("Content").cloned().unwrap_or(Value::Null);
    let bytes = if let Some(z) = content.get("ZipFile") {
        code::zip_from_value(z, "PublishLayerVersion")?
    } else if content.get("S3Bucket").is_some() {
        code::fetch_s3(inner, &account, &region, &content).await?
    } else {
        return Err(ipv("Please provide a source for layer content."));
    };
    let stored = code::store_zip(&inner.deps.data_dir, "layers", bytes).await?;
    let _guard = inner.control.write.lock().await;
    let last: u64 = inner
        .deps
        .store
        .get_json::<u64>(&scope, LAYER_NAMES, &name)
        .map_err(store_err)?
        .unwrap_or(0);
    let rec = LayerRecord {
        name: name.clone(),
        version: last + 1,
        description: input
            .get("Description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        created: now(),
        code: stored,
        runtimes,
        architectures: archs,
        license: input
            .get("LicenseInfo")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    inner
        .deps
        .store
        .batch(vec![
            put(&scope, LAYERS, &layer_key(&name, rec.version), &rec)?,
            put(&scope, LAYER_NAMES, &name, &rec.version)?,
        ])
        .map_err(store_err)?;
    Ok(render(ctx, inner, &scope, &rec))
}

fn version_number(input: &Value) -> Result<u64, ApiError> {
    let n = input
        .get("VersionNumber")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    u64::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| not_found("The resource you requested does not exist."))
}

fn load(inner: &Inner, scope: &Scope, name: &str, n: u64) -> Result<Option<LayerRecord>, ApiError> {
    inner
        .deps
        .store
        .get_json::<LayerRecord>(scope, LAYERS, &layer_key(name, n))
        .map_err(store_err)
}

/// The layer version a full layer version ARN names.
pub(crate) fn find_by_arn(inner: &Inner, arn: &str) -> Result<Option<LayerRecord>, ApiError> {
    let p: Vec<&str> = arn.split(':').collect();
    if p.len() != 8 || p[0] != "arn" || p[2] != "lambda" || p[5] != "layer" || !name_ok(p[6]) {
        return Err(validation(format!(
            "1 validation error detected: Value '[{arn}]' at 'layers' failed to satisfy \
             constraint: Member must satisfy constraint: [Member must have length less than or \
             equal to 140, Member must have length greater than or equal to 1, Member must \
             satisfy regular expression pattern: \
             (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{{12}}:layer:[a-zA-Z0-9-_]+:[0-9]+)|\
             (arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)]"
        )));
    }
    let Ok(n) = p[7].parse::<u64>() else {
        return Ok(None);
    };
    load(inner, &Scope::new(p[4], p[3]), p[6], n)
}

/// `GetLayerVersion`.
pub fn get_layer_version(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = layer_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let n = version_number(input)?;
    let rec = load(inner, &scope, &name, n)?
        .ok_or_else(|| not_found("The resource you requested does not exist."))?;
    Ok(render(ctx, inner, &scope, &rec))
}

/// `GetLayerVersionByArn`.
pub fn get_layer_version_by_arn(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let arn = input.get("Arn").and_then(Value::as_str).unwrap_or_default();
    let rec = find_by_arn(inner, arn)?
        .ok_or_else(|| not_found("The resource you requested does not exist."))?;
    let p: Vec<&str> = arn.split(':').collect();
    Ok(render(ctx, inner, &Scope::new(p[4], p[3]), &rec))
}

fn all_layers(inner: &Inner, scope: &Scope, prefix: &str) -> Result<Vec<LayerRecord>, ApiError> {
    let (items, _) = inner
        .deps
        .store
        .scan_json::<LayerRecord>(scope, LAYERS, prefix, None, usize::MAX)
        .map_err(store_err)?;
    Ok(items.into_iter().map(|(_, l)| l).collect())
}

fn matches(l: &LayerRecord, input: &Value) -> bool {
    let rt = input.get("CompatibleRuntime").and_then(Value::as_str);
    let arch = input.get("CompatibleArchitecture").and_then(Value::as_str);
    rt.is_none_or(|r| l.runtimes.iter().any(|x| x == r))
        && arch.is_none_or(|a| l.architectures.iter().any(|x| x == a))
}

/// Sum of the zips of every layer version in a scope.
pub(crate) fn total_size(inner: &Inner, scope: &Scope) -> Result<u64, ApiError> {
    Ok(all_layers(inner, scope, "")?
        .iter()
        .map(|l| l.code.size)
        .sum())
}

/// `ListLayers`: each layer with its latest matching version.
pub fn list_layers(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let scope = Scope::new(&ctx.account, &ctx.region);
    let mut latest: std::collections::BTreeMap<String, LayerRecord> = Default::default();
    for l in all_layers(inner, &scope, "")? {
        if matches(&l, input) {
            latest.insert(l.name.clone(), l);
        }
    }
    let items = latest
        .into_values()
        .map(|l| {
            (
                l.name.clone(),
                json!({
                    "LayerName": l.name,
                    "LayerArn": layer_arn(&scope.region, &scope.account, &l.name),
                    "LatestMatchingVersion": list_item(&scope, &l),
                }),
            )
        })
        .collect();
    let (page, next) = paginate(
        "ListLayers",
        items,
        input.get("Marker").and_then(Value::as_str),
        input.get("MaxItems").and_then(Value::as_i64),
    )?;
    let mut out = json!({ "Layers": page });
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(out)
}

/// `ListLayerVersions` (newest first, as Lambda lists them).
pub fn list_layer_versions(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = layer_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let items = all_layers(inner, &scope, &format!("{name}/"))?
        .into_iter()
        .filter(|l| matches(l, input))
        .map(|l| {
            (
                format!("{:020}", u64::MAX - l.version),
                list_item(&scope, &l),
            )
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let (page, next) = paginate(
        "ListLayerVersions",
        items,
        input.get("Marker").and_then(Value::as_str),
        input.get("MaxItems").and_then(Value::as_i64),
    )?;
    let mut out = json!({ "LayerVersions": page });
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(out)
}

/// `DeleteLayerVersion` (idempotent, as in Lambda; functions keep their copy).
pub async fn delete_layer_version(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = layer_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let n = input
        .get("VersionNumber")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let _guard = inner.control.write.lock().await;
    if let Ok(n) = u64::try_from(n) {
        inner
            .deps
            .store
            .batch(vec![del(&scope, LAYERS, &layer_key(&name, n))])
            .map_err(store_err)?;
    }
    Ok(json!({}))
}
