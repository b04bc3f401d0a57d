//! Functions: create (zip, S3, image), get, list, update code and configuration, delete, tags,
//! account settings; the `Pending -> Active` / `InProgress -> Successful` transitions around
//! the engine's `prepare`; and turning a function version into a [`FunctionSpec`].

use super::model::{
    self, render_config, revision_id, CodeRef, Config, FunctionRecord, ImageRef, LayerRef,
    FUNCTIONS, VERSIONS,
};
use super::{
    code, conflict, fn_and_qualifier, fn_not_found, function_arn, ipv, paginate, parse_fn,
    precondition, store_err, validate, validation, Cached,
};
use crate::spec::{FunctionSpec, ImageSpec, PackageType};
use crate::Inner;
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, StoreExt, Write};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn now() -> f64 {
    fc_protocol::value::now_secs()
}

pub(crate) fn load(
    inner: &Inner,
    scope: &Scope,
    name: &str,
) -> Result<Option<FunctionRecord>, ApiError> {
    inner
        .deps
        .store
        .get_json::<FunctionRecord>(scope, FUNCTIONS, name)
        .map_err(store_err)
}

/// The function or `ResourceNotFoundException`.
pub(crate) fn must_load(
    inner: &Inner,
    account: &str,
    region: &str,
    name: &str,
) -> Result<FunctionRecord, ApiError> {
    load(inner, &Scope::new(account, region), name)?
        .ok_or_else(|| fn_not_found(region, account, name, None))
}

pub(crate) fn load_version(
    inner: &Inner,
    scope: &Scope,
    name: &str,
    n: u64,
) -> Result<Option<Config>, ApiError> {
    inner
        .deps
        .store
        .get_json::<Config>(scope, VERSIONS, &model::version_key(name, n))
        .map_err(store_err)
}

/// Every published version of a function, in order.
pub(crate) fn versions(inner: &Inner, scope: &Scope, name: &str) -> Result<Vec<Config>, ApiError> {
    let (items, _) = inner
        .deps
        .store
        .scan_json::<Config>(scope, VERSIONS, &format!("{name}/"), None, usize::MAX)
        .map_err(store_err)?;
    Ok(items.into_iter().map(|(_, c)| c).collect())
}

/// The configuration a qualifier names (`$LATEST`, a version, or an alias's version).
pub(crate) fn config_for(
    inner: &Inner,
    rec: &FunctionRecord,
    account: &str,
    region: &str,
    q: Option<&str>,
) -> Result<Config, ApiError> {
    let scope = Scope::new(account, region);
    match q {
        None | Some("$LATEST") => Ok(rec.latest.clone()),
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u64 = v
                .parse()
                .map_err(|_| fn_not_found(region, account, &rec.name, Some(v)))?;
            load_version(inner, &scope, &rec.name, n)?
                .ok_or_else(|| fn_not_found(region, account, &rec.name, Some(v)))
        }
        Some(alias) => {
            let a = super::versions::load_alias(inner, &scope, &rec.name, alias)?
                .ok_or_else(|| fn_not_found(region, account, &rec.name, Some(alias)))?;
            config_for(inner, rec, account, region, Some(&a.function_version))
        }
    }
}

fn new_config() -> Config {
    Config {
        version: "$LATEST".into(),
        package_type: PackageType::Zip,
        runtime: None,
        handler: None,
        role: String::new(),
        description: String::new(),
        timeout: 3,
        memory: 128,
        ephemeral: 512,
        environment: None,
        layers: Vec::new(),
        architecture: "x86_64".into(),
        code: CodeRef::default(),
        image: None,
        image_config: None,
        dead_letter_arn: None,
        tracing_mode: "PassThrough".into(),
        log_format: "Text".into(),
        log_group: None,
        app_log_level: None,
        system_log_level: None,
        kms_key_arn: None,
        vpc_config: None,
        last_modified: now(),
        revision_id: revision_id(),
        state: "Pending".into(),
        state_reason: Some("The function is being created.".into()),
        state_reason_code: Some("Creating".into()),
        last_update_status: "Successful".into(),
        last_update_reason: None,
        last_update_reason_code: None,
    }
}

/// The code a `Code` structure (or the members of `UpdateFunctionCode`) names.
enum NewCode {
    Zip(CodeRef),
    Image(ImageRef),
}

async fn obtain_code(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    account: &str,
    region: &str,
    src: &Value,
    package: PackageType,
) -> Result<NewCode, ApiError> {
    let has_zip = src.get("ZipFile").is_some();
    let has_s3 = src.get("S3Bucket").is_some() || src.get("S3Key").is_some();
    let image = src.get("ImageUri").and_then(Value::as_str);
    match package {
        PackageType::Image => {
            if has_zip || has_s3 {
                return Err(ipv(
                    "Please provide ImageUri when updating a function with packageType Image.",
                ));
            }
            let Some(uri) = image else {
                return Err(ipv(
                    "ImageUri is required for functions with packageType Image.",
                ));
            };
            let scope = Scope::new(account, region);
            let digest = inner
                .deps
                .images
                .resolve_image(inner.deps.store.as_ref(), &scope, uri)
                .map_err(|e| ipv(format!("Source image {uri} is not valid: {e}")))?
                .ok_or_else(|| {
                    ipv(format!(
                        "Source image {uri} does not exist. Provide a valid source image."
                    ))
                })?;
            Ok(NewCode::Image(ImageRef {
                uri: uri.to_string(),
                digest: digest.as_str().to_string(),
            }))
        }
        PackageType::Zip => {
            if image.is_some() {
                return Err(ipv(
                    "Please don't provide ImageUri when updating a function with packageType Zip.",
                ));
            }
            let bytes = if let Some(z) = src.get("ZipFile") {
                if has_s3 {
                    return Err(ipv(
                        "Please do not provide other FunctionCode parameters when providing a \
                         ZipFile.",
                    ));
                }
                code::zip_from_value(z, &ctx.operation)?
            } else if has_s3 {
                code::fetch_s3(inner, account, region, src).await?
            } else {
                return Err(ipv("Please provide a source for function code."));
            };
            Ok(NewCode::Zip(
                code::store_zip(&inner.deps.data_dir, "code", bytes).await?,
            ))
        }
    }
}

fn install_code(cfg: &mut Config, c: NewCode) {
    match c {
        NewCode::Zip(c) => {
            cfg.code = c;
            cfg.image = None;
        }
        NewCode::Image(i) => {
            cfg.code = CodeRef {
                sha_hex: i.digest.trim_start_matches("sha256:").to_string(),
                sha_b64: i.digest.trim_start_matches("sha256:").to_string(),
                size: 0,
                unzipped: 0,
            };
            cfg.image = Some(i);
        }
    }
}

/// `Layers` of a create/update: each must exist; at most 5; with the code within 250 MB.
fn resolve_layers(inner: &Inner, v: &Value) -> Result<Vec<LayerRef>, ApiError> {
    let arns: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if arns.len() > 5 {
        return Err(ipv("Cannot reference more than 5 layers."));
    }
    let mut out = Vec::new();
    for arn in arns {
        let rec = super::layers::find_by_arn(inner, arn)?
            .ok_or_else(|| ipv(format!("Layer version {arn} does not exist.")))?;
        out.push(LayerRef {
            arn: arn.to_string(),
            code: rec.code,
        });
    }
    Ok(out)
}

fn check_total_size(cfg: &Config) -> Result<(), ApiError> {
    let total: u64 = cfg.code.unzipped + cfg.layers.iter().map(|l| l.code.unzipped).sum::<u64>();
    if total > code::UNZIPPED_LIMIT {
        return Err(ipv(format!(
            "Function code combined with layers exceeds the maximum allowed size of {} bytes. \
             The actual size is {total} bytes.",
            code::UNZIPPED_LIMIT
        )));
    }
    Ok(())
}

/// `CreateFunction`.
pub async fn create_function(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let name_in = input
        .get("FunctionName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let f = parse_fn(&ctx.account, &ctx.region, name_in)?;
    if f.qualifier.is_some() {
        return Err(ipv(
            "Creating a function with a qualified function name is not supported.",
        ));
    }
    let (account, region, name) = (f.account.as_str(), f.region.as_str(), f.name.as_str());
    let scope = Scope::new(account, region);
    let mut cfg = new_config();
    match input.get("PackageType").and_then(Value::as_str) {
        None | Some("Zip") => {}
        Some("Image") => cfg.package_type = PackageType::Image,
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'packageType' failed to \
                 satisfy constraint: Member must satisfy enum value set: [Image, Zip]"
            )))
        }
    }
    validate::apply(&mut cfg, input)?;
    if let Some(a) = input.get("Architectures") {
        cfg.architecture = validate::architectures(a)?;
    }
    let has_layers = input
        .get("Layers")
        .and_then(Value::as_array)
        .is_some_and(|l| !l.is_empty());
    validate::package_rules(&cfg, has_layers)?;
    if let Some(l) = input.get("Layers") {
        cfg.layers = resolve_layers(inner, l)?;
    }
    let tags = tags_from(input.get("Tags"))?;
    if load(inner, &scope, name)?.is_some() {
        return Err(conflict(format!("Function already exist: {name}")));
    }
    let src = input.get("Code").cloned().unwrap_or(Value::Null);
    let new_code = obtain_code(inner, ctx, account, region, &src, cfg.package_type).await?;
    install_code(&mut cfg, new_code);
    check_total_size(&cfg)?;
    let publish = input
        .get("Publish")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let _guard = inner.control.write.lock().await;
    if load(inner, &scope, name)?.is_some() {
        return Err(conflict(format!("Function already exist: {name}")));
    }
    let mut rec = FunctionRecord {
        v: 1,
        name: name.to_string(),
        arn: function_arn(region, account, name),
        tags,
        reserved: None,
        last_version: 0,
        latest: cfg,
    };
    let mut writes = Vec::new();
    let mut published = None;
    if publish {
        rec.last_version = 1;
        let mut v = rec.latest.clone();
        v.version = "1".into();
        v.revision_id = revision_id();
        writes.push(put(&scope, VERSIONS, &model::version_key(name, 1), &v)?);
        published = Some(v);
    }
    writes.push(put(&scope, FUNCTIONS, name, &rec)?);
    inner.deps.store.batch(writes).map_err(store_err)?;
    inner.control.invalidate(account, region, name);
    drop(_guard);
    spawn_prepare(
        inner.clone(),
        account,
        region,
        name,
        rec.latest.revision_id.clone(),
        published.as_ref().map(|_| 1),
        true,
    );
    Ok(render_config(
        &rec,
        published.as_ref().unwrap_or(&rec.latest),
    ))
}

pub(crate) fn put<T: serde::Serialize>(
    scope: &Scope,
    table: &str,
    key: &str,
    v: &T,
) -> Result<Write, ApiError> {
    Ok(Write::Put {
        scope: scope.clone(),
        table: table.to_string(),
        key: key.to_string(),
        value: fc_store::to_json_bytes(v).map_err(store_err)?,
    })
}

pub(crate) fn del(scope: &Scope, table: &str, key: &str) -> Write {
    Write::Delete {
        scope: scope.clone(),
        table: table.to_string(),
        key: key.to_string(),
    }
}

fn tags_from(v: Option<&Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    if let Some(m) = v.and_then(Value::as_object) {
        for (k, val) in m {
            let val = val.as_str().unwrap_or_default();
            if k.is_empty() || k.chars().count() > 128 || val.chars().count() > 256 {
                return Err(ipv(format!("Invalid tag: {k}")));
            }
            if k.starts_with("aws:") {
                return Err(ipv("Tag keys cannot start with the reserved prefix aws:"));
            }
            out.insert(k.clone(), val.to_string());
        }
    }
    if out.len() > 50 {
        return Err(ipv("The number of tags exceeds the limit of 50 tags."));
    }
    Ok(out)
}

/// Runs the engine's `prepare` for the current `$LATEST` (and a version published with it),
/// then records `Active`/`Successful` or `Failed`.
pub(crate) fn spawn_prepare(
    inner: Arc<Inner>,
    account: &str,
    region: &str,
    name: &str,
    revision: String,
    version: Option<u64>,
    creating: bool,
) {
    let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
    tokio::spawn(async move {
        let scope = Scope::new(&account, &region);
        let Ok(Some(rec)) = load(&inner, &scope, &name) else {
            return;
        };
        if rec.latest.revision_id != revision {
            return;
        }
        let spec = build_spec(&inner, &rec, &rec.latest);
        let outcome = inner.exec.prepare(&spec).await;
        let _guard = inner.control.write.lock().await;
        let Ok(Some(mut rec)) = load(&inner, &scope, &name) else {
            return;
        };
        if rec.latest.revision_id != revision {
            return;
        }
        let settle = |c: &mut Config| match &outcome {
            Ok(()) => {
                if creating || c.state != "Active" {
                    c.state = "Active".into();
                    c.state_reason = None;
                    c.state_reason_code = None;
                }
                c.last_update_status = "Successful".into();
                c.last_update_reason = None;
                c.last_update_reason_code = None;
            }
            Err(reason) => {
                if creating {
                    c.state = "Failed".into();
                    c.state_reason = Some(reason.clone());
                    c.state_reason_code = Some("InternalError".into());
                }
                c.last_update_status = "Failed".into();
                c.last_update_reason = Some(reason.clone());
                c.last_update_reason_code = Some("InternalError".into());
            }
        };
        settle(&mut rec.latest);
        let mut writes = Vec::new();
        if let Some(n) = version {
            if let Ok(Some(mut v)) = load_version(&inner, &scope, &name, n) {
                settle(&mut v);
                if let Ok(w) = put(&scope, VERSIONS, &model::version_key(&name, n), &v) {
                    writes.push(w);
                }
            }
        }
        if let Ok(w) = put(&scope, FUNCTIONS, &name, &rec) {
            writes.push(w);
        }
        if let Err(e) = inner.deps.store.batch(writes) {
            tracing::warn!(function = %name, error = %e, "lambda: recording the function state failed");
        }
        inner.control.invalidate(&account, &region, &name);
    });
}

/// `GetFunction`.
pub fn get_function(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (f, q) = fn_and_qualifier(ctx, input)?;
    let rec = load(inner, &Scope::new(&f.account, &f.region), &f.name)?
        .ok_or_else(|| fn_not_found(&f.region, &f.account, &f.name, q.as_deref()))?;
    let cfg = config_for(inner, &rec, &f.account, &f.region, q.as_deref())?;
    let code = match &cfg.image {
        Some(i) => {
            let repo = i.uri.split('@').next().unwrap_or(&i.uri);
            let repo = match repo.rsplit_once(':') {
                Some((r, tag)) if !tag.contains('/') => r,
                _ => repo,
            };
            json!({
                "RepositoryType": "ECR",
                "ImageUri": i.uri,
                "ResolvedImageUri": format!("{repo}@{}", i.digest),
            })
        }
        None => json!({
            "RepositoryType": "S3",
            "Location": inner.control.signer.url(&ctx.endpoint, &cfg.code.sha_hex, now() as u64),
        }),
    };
    let mut out = json!({
        "Configuration": render_config(&rec, &cfg),
        "Code": code,
        "Tags": rec.tags,
    });
    if let Some(r) = rec.reserved {
        out["Concurrency"] = json!({"ReservedConcurrentExecutions": r});
    }
    Ok(out)
}

/// `GetFunctionConfiguration`.
pub fn get_function_configuration(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (f, q) = fn_and_qualifier(ctx, input)?;
    let rec = load(inner, &Scope::new(&f.account, &f.region), &f.name)?
        .ok_or_else(|| fn_not_found(&f.region, &f.account, &f.name, q.as_deref()))?;
    let cfg = config_for(inner, &rec, &f.account, &f.region, q.as_deref())?;
    Ok(render_config(&rec, &cfg))
}

/// Every function of a scope.
pub(crate) fn all_functions(inner: &Inner, scope: &Scope) -> Result<Vec<FunctionRecord>, ApiError> {
    let (items, _) = inner
        .deps
        .store
        .scan_json::<FunctionRecord>(scope, FUNCTIONS, "", None, usize::MAX)
        .map_err(store_err)?;
    Ok(items.into_iter().map(|(_, r)| r).collect())
}

/// `ListFunctions`.
pub fn list_functions(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let scope = Scope::new(&ctx.account, &ctx.region);
    let all = match input.get("FunctionVersion").and_then(Value::as_str) {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'functionVersion' failed to \
                 satisfy constraint: Member must satisfy enum value set: [ALL]"
            )))
        }
    };
    let mut items = Vec::new();
    for rec in all_functions(inner, &scope)? {
        items.push((
            format!("{}\u{1}", rec.name),
            render_config(&rec, &rec.latest),
        ));
        if all {
            for v in versions(inner, &scope, &rec.name)? {
                let n: u64 = v.version.parse().unwrap_or(0);
                items.push((format!("{}\u{1}{n:010}", rec.name), render_config(&rec, &v)));
            }
        }
    }
    let (page, next) = paginate(
        "ListFunctions",
        items,
        input.get("Marker").and_then(Value::as_str),
        input.get("MaxItems").and_then(Value::as_i64),
    )?;
    let mut out = json!({ "Functions": page });
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(out)
}

fn check_revision(input: &Value, current: &str) -> Result<(), ApiError> {
    match input.get("RevisionId").and_then(Value::as_str) {
        Some(r) if r != current => Err(precondition()),
        _ => Ok(()),
    }
}

fn check_not_updating(rec: &FunctionRecord) -> Result<(), ApiError> {
    if rec.latest.last_update_status == "InProgress" || rec.latest.state == "Pending" {
        return Err(conflict(format!(
            "The operation cannot be performed at this time. An update is in progress for \
             resource: {}",
            rec.arn
        )));
    }
    Ok(())
}

/// The unqualified target of an update (a qualifier is refused).
fn update_target(
    ctx: &RequestContext,
    input: &Value,
) -> Result<(String, String, String), ApiError> {
    let (f, q) = fn_and_qualifier(ctx, input)?;
    if q.is_some() {
        return Err(ipv(
            "Updating a function with a qualified function name is not supported.",
        ));
    }
    Ok((f.account, f.region, f.name))
}

/// `UpdateFunctionCode`.
pub async fn update_function_code(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = update_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let rec = must_load(inner, &account, &region, &name)?;
    check_revision(input, &rec.latest.revision_id)?;
    let arch = match input.get("Architectures") {
        Some(a) => Some(validate::architectures(a)?),
        None => None,
    };
    let new_code = obtain_code(
        inner,
        ctx,
        &account,
        &region,
        input,
        rec.latest.package_type,
    )
    .await?;
    let dry_run = input
        .get("DryRun")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let publish = input
        .get("Publish")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let guard = inner.control.write.lock().await;
    let mut rec = must_load(inner, &account, &region, &name)?;
    check_revision(input, &rec.latest.revision_id)?;
    check_not_updating(&rec)?;
    let mut cfg = rec.latest.clone();
    install_code(&mut cfg, new_code);
    if let Some(a) = arch {
        cfg.architecture = a;
    }
    check_total_size(&cfg)?;
    if dry_run {
        return Ok(render_config(&rec, &cfg));
    }
    cfg.last_modified = now();
    cfg.revision_id = revision_id();
    cfg.last_update_status = "InProgress".into();
    cfg.last_update_reason = Some("The function is being created.".into());
    cfg.last_update_reason_code = Some("Creating".into());
    rec.latest = cfg;
    let mut writes = Vec::new();
    let mut published = None;
    if publish {
        let v = super::versions::next_version(&mut rec, None);
        writes.push(put(
            &scope,
            VERSIONS,
            &model::version_key(&name, rec.last_version),
            &v,
        )?);
        published = Some(v);
    }
    writes.push(put(&scope, FUNCTIONS, &name, &rec)?);
    inner.deps.store.batch(writes).map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    drop(guard);
    inner.exec.retire(&rec.arn).await;
    spawn_prepare(
        inner.clone(),
        &account,
        &region,
        &name,
        rec.latest.revision_id.clone(),
        published.as_ref().map(|_| rec.last_version),
        false,
    );
    Ok(render_config(
        &rec,
        published.as_ref().unwrap_or(&rec.latest),
    ))
}

/// `UpdateFunctionConfiguration`.
pub async fn update_function_configuration(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = update_target(ctx, input)?;
    let scope = Scope::new(&account, &region);
    let guard = inner.control.write.lock().await;
    let mut rec = must_load(inner, &account, &region, &name)?;
    check_revision(input, &rec.latest.revision_id)?;
    let mut cfg = rec.latest.clone();
    validate::apply(&mut cfg, input)?;
    if let Some(l) = input.get("Layers") {
        if cfg.package_type == PackageType::Image && l.as_array().is_some_and(|a| !a.is_empty()) {
            return Err(ipv(
                "Please don't provide Handler or Runtime or Layer when the intended function \
                 PackageType is Image.",
            ));
        }
        cfg.layers = resolve_layers(inner, l)?;
    }
    validate::package_rules(&cfg, !cfg.layers.is_empty())?;
    check_total_size(&cfg)?;
    check_not_updating(&rec)?;
    cfg.last_modified = now();
    cfg.revision_id = revision_id();
    cfg.last_update_status = "InProgress".into();
    cfg.last_update_reason = Some("The function is being created.".into());
    cfg.last_update_reason_code = Some("Creating".into());
    rec.latest = cfg;
    inner
        .deps
        .store
        .put_json(&scope, FUNCTIONS, &name, &rec)
        .map_err(store_err)?;
    inner.control.invalidate(&account, &region, &name);
    drop(guard);
    spawn_prepare(
        inner.clone(),
        &account,
        &region,
        &name,
        rec.latest.revision_id.clone(),
        None,
        false,
    );
    Ok(render_config(&rec, &rec.latest))
}

/// `DeleteFunction` (the whole function, or one version with `Qualifier`).
pub async fn delete_function(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (f, q) = fn_and_qualifier(ctx, input)?;
    let (account, region, name) = (f.account.as_str(), f.region.as_str(), f.name.as_str());
    let scope = Scope::new(account, region);
    let guard = inner.control.write.lock().await;
    let rec = must_load(inner, account, region, name)?;
    let store = &inner.deps.store;
    match q.as_deref() {
        Some("$LATEST") => {
            return Err(ipv(
                "$LATEST version cannot be deleted without deleting the function.",
            ))
        }
        Some(v) => {
            let n: u64 = v.parse().map_err(|_| {
                ipv(format!(
                    "Deletion of aliases is not supported. Use DeleteAlias to delete the alias {v}."
                ))
            })?;
            if load_version(inner, &scope, name, n)?.is_none() {
                return Err(fn_not_found(region, account, name, Some(v)));
            }
            let users: Vec<String> = super::versions::all_aliases(inner, &scope, name)?
                .into_iter()
                .filter(|a| a.function_version == v || a.weights.contains_key(v))
                .map(|a| a.name)
                .collect();
            if !users.is_empty() {
                return Err(conflict(format!(
                    "Unable to delete version because the following aliases reference it: [{}]",
                    users.join(", ")
                )));
            }
            store
                .batch(vec![
                    del(&scope, VERSIONS, &model::version_key(name, n)),
                    del(&scope, model::PROVISIONED, &format!("{name}/{v}")),
                ])
                .map_err(store_err)?;
            inner.control.invalidate(account, region, name);
            drop(guard);
            inner.exec.retire(&rec.arn).await;
            crate::triggers::function_deleted(inner, account, region, name, Some(v)).await;
        }
        None => {
            let prefix = format!("{name}/");
            for table in [VERSIONS, model::ALIASES, model::PROVISIONED] {
                store
                    .delete_prefix(&scope, table, &prefix)
                    .map_err(store_err)?;
            }
            store.delete(&scope, FUNCTIONS, name).map_err(store_err)?;
            inner.control.invalidate(account, region, name);
            drop(guard);
            inner.exec.retire(&rec.arn).await;
            crate::triggers::function_deleted(inner, account, region, name, None).await;
        }
    }
    Ok(json!({"StatusCode": 204}))
}

/// The function a tagging `Resource` ARN names.
fn tag_target(ctx: &RequestContext, input: &Value) -> Result<(String, String, String), ApiError> {
    let res = input
        .get("Resource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let f = parse_fn(&ctx.account, &ctx.region, res)?;
    if f.qualifier.is_some() {
        return Err(ipv(
            "Tags on function aliases and versions are not supported. Please specify a function \
             ARN.",
        ));
    }
    Ok((f.account, f.region, f.name))
}

pub async fn tag_resource(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = tag_target(ctx, input)?;
    let new = tags_from(input.get("Tags"))?;
    let _guard = inner.control.write.lock().await;
    let mut rec = must_load(inner, &account, &region, &name)?;
    rec.tags.extend(new);
    if rec.tags.len() > 50 {
        return Err(ipv("The number of tags exceeds the limit of 50 tags."));
    }
    inner
        .deps
        .store
        .put_json(&Scope::new(&account, &region), FUNCTIONS, &name, &rec)
        .map_err(store_err)?;
    Ok(json!({}))
}

pub async fn untag_resource(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = tag_target(ctx, input)?;
    let _guard = inner.control.write.lock().await;
    let mut rec = must_load(inner, &account, &region, &name)?;
    for k in input
        .get("TagKeys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        rec.tags.remove(k);
    }
    inner
        .deps
        .store
        .put_json(&Scope::new(&account, &region), FUNCTIONS, &name, &rec)
        .map_err(store_err)?;
    Ok(json!({}))
}

pub fn list_tags(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let (account, region, name) = tag_target(ctx, input)?;
    let rec = must_load(inner, &account, &region, &name)?;
    Ok(json!({ "Tags": rec.tags }))
}

/// Sum of reserved concurrency over the functions of a scope, except `skip`.
pub(crate) fn reserved_total(
    inner: &Inner,
    scope: &Scope,
    skip: Option<&str>,
) -> Result<u64, ApiError> {
    Ok(all_functions(inner, scope)?
        .iter()
        .filter(|r| Some(r.name.as_str()) != skip)
        .filter_map(|r| r.reserved)
        .map(u64::from)
        .sum())
}

/// `GetAccountSettings`.
pub fn get_account_settings(inner: &Arc<Inner>, ctx: &RequestContext) -> Result<Value, ApiError> {
    let scope = Scope::new(&ctx.account, &ctx.region);
    let functions = all_functions(inner, &scope)?;
    let mut total = 0u64;
    for rec in &functions {
        total += rec.latest.code.size;
        for v in versions(inner, &scope, &rec.name)? {
            total += v.code.size;
        }
    }
    total += super::layers::total_size(inner, &scope)?;
    let limit = u64::from(inner.deps.settings.account_concurrency);
    let reserved: u64 = functions
        .iter()
        .filter_map(|r| r.reserved)
        .map(u64::from)
        .sum();
    Ok(json!({
        "AccountLimit": {
            "TotalCodeSize": 80_530_636_800u64,
            "CodeSizeUnzipped": code::UNZIPPED_LIMIT,
            "CodeSizeZipped": code::ZIPPED_LIMIT,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit.saturating_sub(reserved),
        },
        "AccountUsage": {
            "TotalCodeSize": total,
            "FunctionCount": functions.len(),
        },
    }))
}

/// The spec of one version of a function.
pub(crate) fn build_spec(inner: &Inner, rec: &FunctionRecord, cfg: &Config) -> FunctionSpec {
    let data = &inner.deps.data_dir;
    let (account, region) = account_region(&rec.arn);
    let mut spec = FunctionSpec {
        account,
        region,
        function_name: rec.name.clone(),
        function_arn: rec.arn.clone(),
        version: cfg.version.clone(),
        package_type: cfg.package_type,
        runtime: cfg.runtime.clone(),
        handler: cfg.handler.clone(),
        code_dir: (cfg.package_type == PackageType::Zip)
            .then(|| code::unpacked_dir(data, "code", &cfg.code.sha_hex)),
        image: cfg.image.as_ref().map(|i| {
            let ic = cfg.image_config.as_ref();
            let list = |k: &str| {
                ic.and_then(|c| c.get(k))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    })
            };
            ImageSpec {
                uri: i.uri.clone(),
                digest: i.digest.clone(),
                entry_point: list("EntryPoint"),
                command: list("Command"),
                working_directory: ic
                    .and_then(|c| c.get("WorkingDirectory"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        }),
        layer_dirs: cfg
            .layers
            .iter()
            .map(|l| code::unpacked_dir(data, "layers", &l.code.sha_hex))
            .collect(),
        memory_mb: cfg.memory,
        timeout_s: cfg.timeout,
        ephemeral_mb: cfg.ephemeral,
        environment: cfg
            .environment
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        role_arn: cfg.role.clone(),
        log_group: cfg.log_group_name(&rec.name),
        architecture: cfg.architecture.clone(),
        revision: String::new(),
        reserved_concurrency: None,
        dead_letter_arn: cfg.dead_letter_arn.clone(),
    };
    let digest = Sha256::digest(serde_json::to_vec(&spec).unwrap_or_default());
    spec.revision = hex::encode(&digest[..16]);
    spec.reserved_concurrency = rec.reserved;
    spec
}

fn account_region(arn: &str) -> (String, String) {
    let p: Vec<&str> = arn.split(':').collect();
    (
        p.get(4).copied().unwrap_or_default().to_string(),
        p.get(3).copied().unwrap_or_default().to_string(),
    )
}

/// Resolves (with the cache) a function and qualifier into what runs.
pub(crate) fn resolve_spec(
    inner: &Arc<Inner>,
    account: &str,
    region: &str,
    name: &str,
    q: &str,
) -> Result<Arc<FunctionSpec>, ApiError> {
    let key = (account.to_string(), region.to_string(), name.to_string());
    let generation = inner.control.generation();
    let target = match inner.control.cached(&key, q) {
        Some(Cached::Spec(s)) => return Ok(s),
        Some(Cached::Alias { version, extra }) => Some((version, extra)),
        None => None,
    };
    let (version, extra) = match target {
        Some(t) => t,
        None => {
            if q == "$LATEST" || q.bytes().all(|b| b.is_ascii_digit()) {
                (q.to_string(), None)
            } else {
                let scope = Scope::new(account, region);
                if load(inner, &scope, name)?.is_none() {
                    return Err(fn_not_found(region, account, name, Some(q)));
                }
                let a = super::versions::load_alias(inner, &scope, name, q)?
                    .ok_or_else(|| fn_not_found(region, account, name, Some(q)))?;
                let extra = a.weights.iter().next().map(|(v, w)| (v.clone(), *w));
                inner.control.remember(
                    generation,
                    key.clone(),
                    q,
                    Cached::Alias {
                        version: a.function_version.clone(),
                        extra: extra.clone(),
                    },
                );
                (a.function_version, extra)
            }
        }
    };
    let chosen = match extra {
        Some((v, w)) if rand::random::<f64>() < w => v,
        _ => version,
    };
    if let Some(Cached::Spec(s)) = inner.control.cached(&key, &chosen) {
        return Ok(s);
    }
    let rec = load(inner, &Scope::new(account, region), name)?
        .ok_or_else(|| fn_not_found(region, account, name, (q != "$LATEST").then_some(q)))?;
    let cfg = config_for(inner, &rec, account, region, Some(&chosen))
        .map_err(|_| fn_not_found(region, account, name, (q != "$LATEST").then_some(q)))?;
    if cfg.state != "Active" {
        return Err(conflict(format!(
            "The operation cannot be performed at this time. The function is currently in the \
             following state: {}",
            cfg.state
        )));
    }
    let spec = Arc::new(build_spec(inner, &rec, &cfg));
    inner
        .control
        .remember(generation, key, &chosen, Cached::Spec(spec.clone()));
    Ok(spec)
}

/// After a restart: functions left `Pending`/`InProgress` are prepared again, and provisioned
/// concurrency is re-established (the engine's environments did not survive).
pub(crate) async fn recover(inner: &Arc<Inner>) {
    let scopes = match inner.deps.store.scopes(FUNCTIONS) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "lambda: listing function scopes failed");
            return;
        }
    };
    for scope in scopes {
        let Ok(all) = all_functions(inner, &scope) else {
            continue;
        };
        for rec in all {
            let l = &rec.latest;
            if l.state == "Pending" || l.last_update_status == "InProgress" {
                let pending_version = versions(inner, &scope, &rec.name)
                    .ok()
                    .and_then(|v| v.into_iter().last())
                    .filter(|v| v.state == "Pending" || v.last_update_status == "InProgress")
                    .and_then(|v| v.version.parse().ok());
                spawn_prepare(
                    inner.clone(),
                    &scope.account,
                    &scope.region,
                    &rec.name,
                    l.revision_id.clone(),
                    pending_version,
                    l.state == "Pending",
                );
            }
        }
        super::concurrency::recover(inner, &scope).await;
    }
}
