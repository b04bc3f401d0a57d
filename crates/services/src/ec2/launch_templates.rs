//! EC2 launch templates: named, versioned sets of launch parameters (`CreateLaunchTemplate`,
//! `CreateLaunchTemplateVersion`, `DescribeLaunchTemplates`, `DescribeLaunchTemplateVersions`,
//! `ModifyLaunchTemplate`, `DeleteLaunchTemplate`, `DeleteLaunchTemplateVersions`,
//! `GetLaunchTemplateData`), one record per template (all its versions inside) in
//! `ec2_launch_templates`; tags of a template live in `ec2_tags` like every other resource's.
//!
//! [`apply`] turns a `RunInstances` input naming a `LaunchTemplate` into a plain one: the
//! version's data are defaults, the request's own parameters win, tag specifications merge.
//! [`tag_instance`] puts the `aws:ec2launchtemplate:*` tags on instances launched that way.
//!
//! Must not live here: the launch itself (`instances`).

use super::{
    check_dry_run_v, check_id, filters, instances::InstanceRecord, matches, now, one, opt_str,
    page_output, paginate, spec_tags, tags, with_tags, Ctx, INSTANCES, LAUNCH_TEMPLATES,
};
use crate::common::{idempotent_record, idempotent_replay};
use fc_protocol::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One launch template with all its versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TemplateRecord {
    pub id: String,
    pub name: String,
    pub create_time: f64,
    pub created_by: String,
    pub default_version: i64,
    /// The highest version number ever given (numbers are not reused).
    pub last_number: i64,
    pub versions: BTreeMap<i64, VersionRecord>,
}

/// One version of a template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    pub description: Option<String>,
    pub create_time: f64,
    pub created_by: String,
    /// `LaunchTemplateData` as given (model member names).
    pub data: Value,
}

impl TemplateRecord {
    fn latest(&self) -> i64 {
        self.versions.keys().next_back().copied().unwrap_or(0)
    }
}

/// Members of `LaunchTemplateData` that map 1:1 onto `RunInstances` members.
const PLAIN: &[&str] = &[
    "KernelId",
    "EbsOptimized",
    "IamInstanceProfile",
    "BlockDeviceMappings",
    "ImageId",
    "InstanceType",
    "KeyName",
    "Monitoring",
    "Placement",
    "RamDiskId",
    "DisableApiTermination",
    "InstanceInitiatedShutdownBehavior",
    "UserData",
    "InstanceMarketOptions",
    "CreditSpecification",
    "CpuOptions",
    "CapacityReservationSpecification",
    "LicenseSpecifications",
    "HibernationOptions",
    "MetadataOptions",
    "EnclaveOptions",
    "PrivateDnsNameOptions",
    "MaintenanceOptions",
    "DisableApiStop",
];

/// Structures whose fields merge one by one (the request's fields win).
const MERGED_STRUCTS: &[&str] = &["Placement", "MetadataOptions"];

const NAME_CHARS: &str = "-()./_";

// ---- errors ----

fn id_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidLaunchTemplateId.NotFound",
        format!("The specified launch template, with template ID {id}, does not exist."),
    )
}

fn name_not_found(name: &str) -> ApiError {
    ApiError::client(
        "InvalidLaunchTemplateName.NotFoundException",
        format!("The specified launch template, with template name {name}, does not exist."),
    )
}

fn version_not_found(version: &str, id: &str) -> ApiError {
    ApiError::client(
        "InvalidLaunchTemplateId.VersionNotFound",
        format!(
            "Could not find the specified version {version} for the launch template with ID {id}."
        ),
    )
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (3..=128).contains(&name.chars().count())
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || NAME_CHARS.contains(ch));
    if ok {
        Ok(())
    } else {
        Err(ApiError::client(
            "InvalidLaunchTemplateName.MalformedException",
            "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.",
        ))
    }
}

// ---- lookup ----

fn by_name(c: &Ctx<'_>, name: &str) -> Result<Option<TemplateRecord>, ApiError> {
    Ok(c.all::<TemplateRecord>(LAUNCH_TEMPLATES)?
        .into_iter()
        .map(|(_, t)| t)
        .find(|t| t.name == name))
}

fn by_id(c: &Ctx<'_>, id: &str) -> Result<TemplateRecord, ApiError> {
    check_id(id, "lt", "InvalidLaunchTemplateId.Malformed")?;
    c.get::<TemplateRecord>(LAUNCH_TEMPLATES, id)?
        .ok_or_else(|| id_not_found(id))
}

/// The template an input names by `LaunchTemplateId` or `LaunchTemplateName`.
fn named(c: &Ctx<'_>, input: &Value) -> Result<TemplateRecord, ApiError> {
    let id = opt_str(input, "LaunchTemplateId").filter(|s| !s.is_empty());
    let name = opt_str(input, "LaunchTemplateName").filter(|s| !s.is_empty());
    match (id, name) {
        (Some(_), Some(_)) => Err(ApiError::client(
            "InvalidParameterCombination",
            "Only one of launchTemplateName or launchTemplateId can be specified.",
        )),
        (Some(id), None) => by_id(c, id),
        (None, Some(name)) => by_name(c, name)?.ok_or_else(|| name_not_found(name)),
        (None, None) => Err(ApiError::client(
            "MissingParameter",
            "The request must contain the parameter launchTemplateName or launchTemplateId",
        )),
    }
}

/// A version string (`$Latest`, `$Default` or a number) of `t`, which must exist.
fn resolve(t: &TemplateRecord, version: &str) -> Result<i64, ApiError> {
    let n = match version {
        "$Latest" => t.latest(),
        "$Default" => t.default_version,
        v => v.parse::<i64>().map_err(|_| version_not_found(v, &t.id))?,
    };
    if t.versions.contains_key(&n) {
        Ok(n)
    } else {
        Err(version_not_found(version, &t.id))
    }
}

// ---- data ----

/// Check `LaunchTemplateData` the way EC2 does at creation: malformed tags fail the call;
/// parameters a launch would reject (an unknown image or instance type) only give warnings
/// (`ValidationError`s), and the version is created all the same.
fn check_data(c: &Ctx<'_>, data: &Value) -> Result<Vec<Value>, ApiError> {
    if !data.is_object() {
        return Err(ApiError::missing("MissingParameter", "LaunchTemplateData"));
    }
    if let Some(specs) = data.get("TagSpecifications").and_then(Value::as_array) {
        for s in specs {
            let rt = opt_str(s, "ResourceType").unwrap_or("");
            spec_tags(&json!({"TagSpecifications": [s]}), rt)?;
        }
    }
    let mut warnings = Vec::new();
    let mut warn = |code: &str, message: String| {
        warnings.push(json!({"Code": code, "Message": message}));
    };
    if let Some(t) = opt_str(data, "InstanceType") {
        if super::instance_type(t).is_none() {
            warn(
                "InvalidParameterValue",
                format!("Invalid value '{t}' for InstanceType."),
            );
        }
    }
    if let Some(id) = opt_str(data, "ImageId").filter(|s| !s.starts_with("resolve:ssm:")) {
        if let Err(e) = check_id(id, "ami", "InvalidAMIID.Malformed") {
            warn(&e.code, e.message);
        } else if super::images::visible(c, id)?.is_none() {
            warn(
                "InvalidAMIID.NotFound",
                format!("The image id '[{id}]' does not exist"),
            );
        }
    }
    Ok(warnings)
}

/// `Warning` on a create output when there are any.
fn with_warnings(mut out: Value, warnings: Vec<Value>) -> Value {
    if !warnings.is_empty() {
        out["Warning"] = json!({"Errors": warnings});
    }
    out
}

/// A new version's data: `source` with every member `data` gives replaced.
pub(crate) fn derive(source: &Value, data: &Value) -> Value {
    let mut out = source.as_object().cloned().unwrap_or_default();
    if let Some(d) = data.as_object() {
        for (k, v) in d {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Tag specifications by resource type, `over` winning per key over `base`.
fn merge_tag_specs(base: Option<&Value>, over: Option<&Value>) -> Vec<Value> {
    let mut by_type: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for specs in [base, over].into_iter().flatten() {
        for s in specs.as_array().into_iter().flatten() {
            let rt = opt_str(s, "ResourceType").unwrap_or("").to_string();
            let new = fc_types::tags::from_list(s.get("Tags"));
            match by_type.iter_mut().find(|(t, _)| *t == rt) {
                Some((_, t)) => fc_types::tags::merge(t, &new),
                None => by_type.push((rt, new)),
            }
        }
    }
    by_type
        .into_iter()
        .map(|(rt, t)| json!({"ResourceType": rt, "Tags": super::tags_value(&t)}))
        .collect()
}

/// A `RunInstances` input from template data `data` and the request `req`: the template's
/// values are defaults, the request's win; its first network interface gives the subnet and
/// groups unless the request names its own.
pub(crate) fn merge_run_input(data: &Value, req: &Value) -> Value {
    let mut out = Map::new();
    for k in PLAIN {
        if let Some(v) = data.get(*k) {
            out.insert((*k).to_string(), v.clone());
        }
    }
    if let Some(v) = data.get("RamDiskId") {
        out.remove("RamDiskId");
        out.insert("RamdiskId".into(), v.clone());
    }
    let req_network = ["SubnetId", "NetworkInterfaces"]
        .iter()
        .any(|k| req.get(*k).is_some());
    let req_groups = ["SecurityGroupIds", "SecurityGroups", "NetworkInterfaces"]
        .iter()
        .any(|k| req.get(*k).is_some());
    if !req_groups {
        for k in ["SecurityGroupIds", "SecurityGroups"] {
            if let Some(v) = data.get(k) {
                out.insert(k.into(), v.clone());
            }
        }
    }
    if !req_network {
        let nics = data.get("NetworkInterfaces").and_then(Value::as_array);
        let primary = nics.and_then(|n| {
            n.iter()
                .find(|i| i.get("DeviceIndex").and_then(Value::as_i64).unwrap_or(0) == 0)
        });
        if let Some(nic) = primary {
            if let Some(s) = nic.get("SubnetId") {
                out.insert("SubnetId".into(), s.clone());
            }
            if let Some(ip) = nic.get("PrivateIpAddress") {
                out.insert("PrivateIpAddress".into(), ip.clone());
            }
            if let Some(g) = nic.get("Groups").filter(|_| !req_groups) {
                out.remove("SecurityGroups");
                out.insert("SecurityGroupIds".into(), g.clone());
            }
        }
    }
    if let Some(r) = req.as_object() {
        for (k, v) in r {
            if k == "TagSpecifications" {
                continue;
            }
            if MERGED_STRUCTS.contains(&k.as_str()) {
                if let (Some(Value::Object(base)), Value::Object(over)) = (out.get(k), v) {
                    let mut m = base.clone();
                    m.extend(over.clone());
                    out.insert(k.clone(), Value::Object(m));
                    continue;
                }
            }
            out.insert(k.clone(), v.clone());
        }
    }
    let specs = merge_tag_specs(data.get("TagSpecifications"), req.get("TagSpecifications"));
    if !specs.is_empty() {
        out.insert("TagSpecifications".into(), Value::Array(specs));
    }
    Value::Object(out)
}

/// A `RunInstances` input with its `LaunchTemplate` (if any) applied; `LaunchTemplate` is then
/// `{LaunchTemplateId, Version}` with the version resolved to its number.
pub(crate) fn apply(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let Some(spec) = input.get("LaunchTemplate") else {
        return Ok(input.clone());
    };
    let t = named(c, spec)?;
    let version = opt_str(spec, "Version").filter(|s| !s.is_empty());
    let n = match version {
        Some(v) => resolve(&t, v)?,
        None => t.default_version,
    };
    let data = t
        .versions
        .get(&n)
        .map(|v| v.data.clone())
        .unwrap_or(Value::Null);
    let mut out = merge_run_input(&data, input);
    out["LaunchTemplate"] = json!({"LaunchTemplateId": t.id, "Version": n.to_string()});
    Ok(out)
}

/// The `aws:ec2launchtemplate:*` tags on an instance launched from a template (by an input
/// [`apply`] returned).
pub(crate) fn tag_instance(c: &Ctx<'_>, input: &Value, instance_id: &str) -> Result<(), ApiError> {
    let Some(spec) = input.get("LaunchTemplate") else {
        return Ok(());
    };
    let (Some(id), Some(v)) = (opt_str(spec, "LaunchTemplateId"), opt_str(spec, "Version")) else {
        return Ok(());
    };
    tags::add(
        c,
        instance_id,
        &[
            ("aws:ec2launchtemplate:id".to_string(), id.to_string()),
            ("aws:ec2launchtemplate:version".to_string(), v.to_string()),
        ],
    )
}

// ---- output ----

fn template_value(c: &Ctx<'_>, t: &TemplateRecord) -> Result<Value, ApiError> {
    let v = json!({
        "LaunchTemplateId": t.id,
        "LaunchTemplateName": t.name,
        "CreateTime": fc_protocol::value::epoch_value(t.create_time),
        "CreatedBy": t.created_by,
        "DefaultVersionNumber": t.default_version,
        "LatestVersionNumber": t.latest(),
    });
    Ok(with_tags(v, &tags::get(c, &t.id)?))
}

fn version_value(t: &TemplateRecord, n: i64, v: &VersionRecord) -> Value {
    let mut out = json!({
        "LaunchTemplateId": t.id,
        "LaunchTemplateName": t.name,
        "VersionNumber": n,
        "CreateTime": fc_protocol::value::epoch_value(v.create_time),
        "CreatedBy": v.created_by,
        "DefaultVersion": n == t.default_version,
        "LaunchTemplateData": v.data,
    });
    if let Some(d) = &v.description {
        out["VersionDescription"] = json!(d);
    }
    out
}

/// The template's own tags (`TagSpecifications` may only name `launch-template`).
fn template_tags(input: &Value) -> Result<Vec<(String, String)>, ApiError> {
    for s in input
        .get("TagSpecifications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let rt = opt_str(s, "ResourceType").unwrap_or("");
        if rt != "launch-template" {
            return Err(super::invalid_value(format!(
                "'{rt}' is not a valid taggable resource type for this operation."
            )));
        }
    }
    let t = fc_types::tags::from_specifications(input.get("TagSpecifications"), "launch-template");
    fc_types::tags::validate_all(&t).map_err(|e| super::invalid_value(e.to_string()))?;
    Ok(t)
}

fn description(input: &Value) -> Result<Option<String>, ApiError> {
    match opt_str(input, "VersionDescription") {
        Some(d) if d.chars().count() > 255 => Err(super::invalid_value(
            "The version description must be at most 255 characters.",
        )),
        Some(d) => Ok(Some(d.to_string())),
        None => Ok(None),
    }
}

// ---- operations ----

pub(crate) fn create_launch_template(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let token = opt_str(input, "ClientToken").filter(|s| !s.is_empty());
    if let Some(out) = idempotent_replay(c.store, c.req, token, input)? {
        check_dry_run_v(input)?;
        return Ok(out);
    }
    let name = opt_str(input, "LaunchTemplateName")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("MissingParameter", "LaunchTemplateName"))?;
    check_name(name)?;
    let data = input
        .get("LaunchTemplateData")
        .ok_or_else(|| ApiError::missing("MissingParameter", "LaunchTemplateData"))?;
    let warnings = check_data(c, data)?;
    let desc = description(input)?;
    let own_tags = template_tags(input)?;
    if by_name(c, name)?.is_some() {
        return Err(ApiError::client(
            "InvalidLaunchTemplateName.AlreadyExistsException",
            "Launch template name already in use.",
        ));
    }
    check_dry_run_v(input)?;
    let created = now().floor();
    let by = c.req.principal.arn.clone();
    let t = TemplateRecord {
        id: fc_types::ids::ec2_id("lt"),
        name: name.to_string(),
        create_time: created,
        created_by: by.clone(),
        default_version: 1,
        last_number: 1,
        versions: BTreeMap::from([(
            1,
            VersionRecord {
                description: desc,
                create_time: created,
                created_by: by,
                data: data.clone(),
            },
        )]),
    };
    c.put(LAUNCH_TEMPLATES, &t.id, &t)?;
    tags::add(c, &t.id, &own_tags)?;
    let out = with_warnings(json!({"LaunchTemplate": template_value(c, &t)?}), warnings);
    idempotent_record(c.store, c.req, token, input, &out)?;
    Ok(out)
}

pub(crate) fn create_launch_template_version(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let token = opt_str(input, "ClientToken").filter(|s| !s.is_empty());
    if let Some(out) = idempotent_replay(c.store, c.req, token, input)? {
        check_dry_run_v(input)?;
        return Ok(out);
    }
    let data = input
        .get("LaunchTemplateData")
        .ok_or_else(|| ApiError::missing("MissingParameter", "LaunchTemplateData"))?;
    let mut t = named(c, input)?;
    let desc = description(input)?;
    let data = match opt_str(input, "SourceVersion").filter(|s| !s.is_empty()) {
        Some(v) => {
            let n = resolve(&t, v)?;
            derive(&t.versions[&n].data, data)
        }
        None => data.clone(),
    };
    let warnings = check_data(c, &data)?;
    check_dry_run_v(input)?;
    let n = t.last_number.max(t.latest()) + 1;
    t.last_number = n;
    t.versions.insert(
        n,
        VersionRecord {
            description: desc,
            create_time: now().floor(),
            created_by: c.req.principal.arn.clone(),
            data,
        },
    );
    c.put(LAUNCH_TEMPLATES, &t.id, &t)?;
    let out = with_warnings(
        json!({"LaunchTemplateVersion": version_value(&t, n, &t.versions[&n])}),
        warnings,
    );
    idempotent_record(c.store, c.req, token, input, &out)?;
    Ok(out)
}

pub(crate) fn describe_launch_templates(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(input, &["create-time", "launch-template-name"], true)?;
    let ids = super::str_list(input, "LaunchTemplateIds");
    let names = super::str_list(input, "LaunchTemplateNames");
    if !ids.is_empty() && !names.is_empty() {
        return Err(ApiError::client(
            "InvalidParameterCombination",
            "The parameters LaunchTemplateIds and LaunchTemplateNames cannot be used together.",
        ));
    }
    if input.get("MaxResults").is_some() && (!ids.is_empty() || !names.is_empty()) {
        return Err(ApiError::client(
            "InvalidParameterCombination",
            "The parameter MaxResults cannot be used with the parameters LaunchTemplateIds or LaunchTemplateNames.",
        ));
    }
    check_dry_run_v(input)?;
    let all: Vec<TemplateRecord> = c
        .all::<TemplateRecord>(LAUNCH_TEMPLATES)?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    for id in &ids {
        check_id(id, "lt", "InvalidLaunchTemplateId.Malformed")?;
        if !all.iter().any(|t| &t.id == id) {
            return Err(id_not_found(id));
        }
    }
    for n in &names {
        if !all.iter().any(|t| &t.name == n) {
            return Err(ApiError::client(
                "InvalidLaunchTemplateName.NotFoundException",
                "At least one of the launch templates specified in the request does not exist.",
            ));
        }
    }
    let mut items = Vec::new();
    for t in &all {
        if (!ids.is_empty() && !ids.contains(&t.id))
            || (!names.is_empty() && !names.contains(&t.name))
        {
            continue;
        }
        let tg = tags::get(c, &t.id)?;
        let created = fc_protocol::value::format_iso8601(t.create_time);
        let ok = matches(&fs, &tg, |name| match name {
            "launch-template-name" => one(t.name.clone()),
            "create-time" => one(created.clone()),
            _ => None,
        });
        if ok {
            items.push((t.id.clone(), template_value(c, t)?));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (1, 200), None)?;
    Ok(page_output("LaunchTemplates", page, next))
}

fn version_bound(input: &Value, key: &str, t: &TemplateRecord) -> Result<Option<i64>, ApiError> {
    match opt_str(input, key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some("$Latest") => Ok(Some(t.latest())),
        Some("$Default") => Ok(Some(t.default_version)),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| version_not_found(v, &t.id)),
    }
}

pub(crate) fn describe_launch_template_versions(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "create-time",
            "ebs-optimized",
            "iam-instance-profile",
            "image-id",
            "instance-type",
            "is-default-version",
            "kernel-id",
            "ram-disk-id",
        ],
        false,
    )?;
    let versions = super::str_list(input, "Versions");
    let has_template = opt_str(input, "LaunchTemplateId").is_some()
        || opt_str(input, "LaunchTemplateName").is_some();
    let templates: Vec<TemplateRecord> = if has_template {
        vec![named(c, input)?]
    } else {
        if versions.is_empty() || versions.iter().any(|v| v != "$Latest" && v != "$Default") {
            return Err(ApiError::client(
                "MissingParameter",
                "The request must contain the parameter launchTemplateName or launchTemplateId",
            ));
        }
        c.all::<TemplateRecord>(LAUNCH_TEMPLATES)?
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    };
    let mut items = Vec::new();
    for t in &templates {
        let mut wanted: Vec<i64> = Vec::new();
        for v in &versions {
            wanted.push(resolve(t, v)?);
        }
        let min = version_bound(input, "MinVersion", t)?;
        let max = version_bound(input, "MaxVersion", t)?;
        for (n, v) in &t.versions {
            if !wanted.is_empty() && !wanted.contains(n) {
                continue;
            }
            if min.is_some_and(|m| *n < m) || max.is_some_and(|m| *n > m) {
                continue;
            }
            let d = &v.data;
            let created = fc_protocol::value::format_iso8601(v.create_time);
            let ok = matches(&fs, &[], |name| match name {
                "create-time" => one(created.clone()),
                "ebs-optimized" => super::bool_s(
                    d.get("EbsOptimized")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                ),
                "iam-instance-profile" => d.get("IamInstanceProfile").map(|p| {
                    ["Arn", "Name"]
                        .iter()
                        .filter_map(|k| opt_str(p, k).map(str::to_string))
                        .collect()
                }),
                "image-id" => opt_str(d, "ImageId").and_then(one),
                "instance-type" => opt_str(d, "InstanceType").and_then(one),
                "is-default-version" => super::bool_s(*n == t.default_version),
                "kernel-id" => opt_str(d, "KernelId").and_then(one),
                "ram-disk-id" => opt_str(d, "RamDiskId").and_then(one),
                _ => None,
            });
            if ok {
                // Newest first, as EC2 lists them.
                let key = format!("{}/{:020}", t.id, i64::MAX - n);
                items.push((key, version_value(t, *n, v)));
            }
        }
    }
    check_dry_run_v(input)?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (1, 200), None)?;
    Ok(page_output("LaunchTemplateVersions", page, next))
}

pub(crate) fn modify_launch_template(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let mut t = named(c, input)?;
    if let Some(v) = opt_str(input, "DefaultVersion").filter(|s| !s.is_empty()) {
        let n = resolve(&t, v)?;
        check_dry_run_v(input)?;
        t.default_version = n;
        c.put(LAUNCH_TEMPLATES, &t.id, &t)?;
    } else {
        check_dry_run_v(input)?;
    }
    Ok(json!({"LaunchTemplate": template_value(c, &t)?}))
}

pub(crate) fn delete_launch_template(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let t = named(c, input)?;
    check_dry_run_v(input)?;
    let out = json!({"LaunchTemplate": template_value(c, &t)?});
    c.delete(LAUNCH_TEMPLATES, &t.id)?;
    tags::drop_all(c, &t.id)?;
    Ok(out)
}

pub(crate) fn delete_launch_template_versions(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let versions = super::req_list(input, "Versions")?;
    let mut t = named(c, input)?;
    check_dry_run_v(input)?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for v in &versions {
        let n = v.parse::<i64>().ok();
        let fail = |code: &str, msg: &str| {
            let mut item = json!({
                "LaunchTemplateId": t.id,
                "LaunchTemplateName": t.name,
                "ResponseError": {"Code": code, "Message": msg},
            });
            if let Some(n) = n {
                item["VersionNumber"] = json!(n);
            }
            item
        };
        match n {
            Some(n) if n == t.default_version => failed.push(fail(
                "unexpectedError",
                "Cannot delete the default version of the launch template. To delete the whole launch template, use DeleteLaunchTemplate.",
            )),
            Some(n) if t.versions.contains_key(&n) => {
                t.versions.remove(&n);
                ok.push(json!({
                    "LaunchTemplateId": t.id,
                    "LaunchTemplateName": t.name,
                    "VersionNumber": n,
                }));
            }
            _ => failed.push(fail(
                "launchTemplateVersionDoesNotExist",
                "The specified launch template version does not exist.",
            )),
        }
    }
    c.put(LAUNCH_TEMPLATES, &t.id, &t)?;
    let mut out = json!({});
    if !ok.is_empty() {
        out["SuccessfullyDeletedLaunchTemplateVersions"] = Value::Array(ok);
    }
    if !failed.is_empty() {
        out["UnsuccessfullyDeletedLaunchTemplateVersions"] = Value::Array(failed);
    }
    Ok(out)
}

pub(crate) fn get_launch_template_data(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = super::req_str(input, "InstanceId")?;
    check_id(id, "i", "InvalidInstanceID.Malformed")?;
    let r: InstanceRecord = c.get(INSTANCES, id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{id}' does not exist"),
        )
    })?;
    check_dry_run_v(input)?;
    let groups: Vec<&str> = r.groups.iter().map(|(g, _)| g.as_str()).collect();
    let mut d = json!({
        "ImageId": r.image_id,
        "InstanceType": r.instance_type,
        "Placement": {"AvailabilityZone": r.availability_zone, "GroupName": "", "Tenancy": "default"},
        "Monitoring": {"Enabled": false},
        "DisableApiTermination": r.disable_api_termination,
        "InstanceInitiatedShutdownBehavior": "stop",
        "EbsOptimized": false,
        "NetworkInterfaces": [{
            "AssociatePublicIpAddress": false,
            "DeleteOnTermination": true,
            "Description": "",
            "DeviceIndex": 0,
            "Groups": groups,
            "PrivateIpAddress": r.private_ip,
            "SubnetId": r.subnet_id,
        }],
        "MetadataOptions": {
            "HttpTokens": r.http_tokens,
            "HttpPutResponseHopLimit": r.hop_limit,
            "HttpEndpoint": r.http_endpoint,
            "HttpProtocolIpv6": "disabled",
            "InstanceMetadataTags": "disabled",
        },
    });
    if let Some(k) = &r.key_name {
        d["KeyName"] = json!(k);
    }
    if let Some(u) = &r.user_data {
        d["UserData"] = json!(u);
    }
    if let Some((arn, _)) = &r.iam_profile {
        d["IamInstanceProfile"] = json!({"Arn": arn});
    }
    let own: Vec<(String, String)> = tags::get(c, id)?
        .into_iter()
        .filter(|(k, _)| !k.starts_with("aws:"))
        .collect();
    if !own.is_empty() {
        d["TagSpecifications"] =
            json!([{"ResourceType": "instance", "Tags": super::tags_value(&own)}]);
    }
    Ok(json!({"LaunchTemplateData": d}))
}

#[cfg(test)]
mod unit {
    use super::*;

    fn tags_of(v: &Value, rt: &str) -> Vec<(String, String)> {
        fc_types::tags::from_specifications(v.get("TagSpecifications"), rt)
    }

    #[test]
    fn template_values_are_defaults_and_the_request_wins() {
        let data = json!({"ImageId": "ami-1", "InstanceType": "t3.micro", "KeyName": "k",
                          "UserData": "ZWNobw==", "DisableApiTermination": true});
        let req = json!({"InstanceType": "t3.small", "MinCount": 1, "MaxCount": 2});
        let m = merge_run_input(&data, &req);
        assert_eq!(m["ImageId"], "ami-1");
        assert_eq!(m["InstanceType"], "t3.small");
        assert_eq!(m["KeyName"], "k");
        assert_eq!(m["UserData"], "ZWNobw==");
        assert_eq!(m["DisableApiTermination"], true);
        assert_eq!(m["MaxCount"], 2);
    }

    #[test]
    fn tag_specifications_merge_per_type_and_key() {
        let data = json!({"TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "1"}]},
            {"ResourceType": "volume", "Tags": [{"Key": "v", "Value": "1"}]}]});
        let req = json!({"TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "b", "Value": "2"}, {"Key": "c", "Value": "2"}]}]});
        let m = merge_run_input(&data, &req);
        let mut t = tags_of(&m, "instance");
        t.sort();
        assert_eq!(
            t,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "2".into())
            ]
        );
        assert_eq!(tags_of(&m, "volume"), vec![("v".into(), "1".into())]);
    }

    #[test]
    fn network_interface_gives_subnet_and_groups_unless_the_request_has_its_own() {
        let data = json!({"SecurityGroupIds": ["sg-t"], "NetworkInterfaces": [
            {"DeviceIndex": 0, "SubnetId": "subnet-1", "Groups": ["sg-1"]}]});
        let m = merge_run_input(&data, &json!({}));
        assert_eq!(m["SubnetId"], "subnet-1");
        assert_eq!(m["SecurityGroupIds"], json!(["sg-1"]));
        assert!(m.get("NetworkInterfaces").is_none());
        let m = merge_run_input(&data, &json!({"SecurityGroupIds": ["sg-r"]}));
        assert_eq!(m["SubnetId"], "subnet-1");
        assert_eq!(m["SecurityGroupIds"], json!(["sg-r"]));
        let m = merge_run_input(&data, &json!({"SubnetId": "subnet-2"}));
        assert_eq!(m["SubnetId"], "subnet-2");
        assert_eq!(m["SecurityGroupIds"], json!(["sg-t"]));
        // Request groups by name replace the template's ids.
        let m = merge_run_input(
            &json!({"SecurityGroupIds": ["sg-t"]}),
            &json!({"SecurityGroups": ["web"]}),
        );
        assert!(m.get("SecurityGroupIds").is_none());
        assert_eq!(m["SecurityGroups"], json!(["web"]));
    }

    #[test]
    fn placement_and_metadata_options_merge_field_by_field() {
        let data = json!({"Placement": {"AvailabilityZone": "us-east-1b", "Tenancy": "default"},
                          "MetadataOptions": {"HttpTokens": "required"}});
        let req = json!({"Placement": {"Tenancy": "dedicated"},
                         "MetadataOptions": {"HttpPutResponseHopLimit": 3}});
        let m = merge_run_input(&data, &req);
        assert_eq!(
            m["Placement"],
            json!({"AvailabilityZone": "us-east-1b", "Tenancy": "dedicated"})
        );
        assert_eq!(
            m["MetadataOptions"],
            json!({"HttpTokens": "required", "HttpPutResponseHopLimit": 3})
        );
    }

    #[test]
    fn a_new_version_replaces_only_the_members_it_gives() {
        let src = json!({"ImageId": "ami-1", "InstanceType": "t3.micro",
                         "BlockDeviceMappings": [{"DeviceName": "/dev/xvda"}]});
        let d = derive(&src, &json!({"InstanceType": "t3.large"}));
        assert_eq!(
            d,
            json!({"ImageId": "ami-1", "InstanceType": "t3.large",
                   "BlockDeviceMappings": [{"DeviceName": "/dev/xvda"}]})
        );
    }

    #[test]
    fn versions_resolve() {
        let v = VersionRecord {
            description: None,
            create_time: 0.0,
            created_by: String::new(),
            data: json!({}),
        };
        let t = TemplateRecord {
            id: "lt-0123456789abcdef0".into(),
            name: "x".into(),
            create_time: 0.0,
            created_by: String::new(),
            default_version: 1,
            last_number: 3,
            versions: BTreeMap::from([(1, v.clone()), (3, v)]),
        };
        assert_eq!(resolve(&t, "$Latest").unwrap(), 3);
        assert_eq!(resolve(&t, "$Default").unwrap(), 1);
        assert_eq!(resolve(&t, "3").unwrap(), 3);
        let e = resolve(&t, "2").unwrap_err();
        assert_eq!(e.code, "InvalidLaunchTemplateId.VersionNotFound");
        assert!(resolve(&t, "abc").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-template_1.(a)/b").is_ok());
        assert!(check_name("ab").is_err());
        assert!(check_name("bad name").is_err());
    }
}
