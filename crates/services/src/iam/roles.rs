//! IAM roles: trust policies, session limits, tags, permissions boundaries.

use super::model::{self, RoleRec, ROLES};
use super::policy_doc::{self, DocKind};
use super::util::{
    self, already_exists, check_name, delete_conflict, limit_exceeded, list_output, opt_i64,
    paginate, path_of, path_prefix, req_str, tags_of, validation,
};
use super::{instance_profiles, policies, Ctx};
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreError, StoreExt};
use serde_json::{json, Value};

/// A role of `account` by name, for STS.
pub(crate) fn find_role(
    store: &dyn Store,
    account: &str,
    name: &str,
) -> Result<Option<RoleRec>, StoreError> {
    store.get_json(&Scope::global(account), ROLES, &model::key(name))
}

/// Record a use of the role (`RoleLastUsed`), for STS.
pub(crate) fn record_role_use(
    store: &dyn Store,
    account: &str,
    name: &str,
    region: &str,
) -> Result<(), StoreError> {
    let _guard = super::write_lock();
    let scope = Scope::global(account);
    let Some(mut r) = store.get_json::<RoleRec>(&scope, ROLES, &model::key(name))? else {
        return Ok(());
    };
    r.last_used = Some((util::now(), region.to_string()));
    store.put_json(&scope, ROLES, &model::key(name), &r)
}

fn check_trust(doc: &str) -> Result<(), ApiError> {
    policy_doc::validate(doc, DocKind::Trust)?;
    if util::policy_size(doc) > 2048 {
        return Err(limit_exceeded(
            "Cannot exceed quota for ACLSizePerRole: 2048",
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > 1000 {
        return Err(validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        ));
    }
    Ok(())
}

fn max_session(input: &Value) -> Result<Option<i64>, ApiError> {
    match opt_i64(input, "MaxSessionDuration")? {
        None => Ok(None),
        Some(n) if (3600..=43200).contains(&n) => Ok(Some(n)),
        Some(n) => Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value {}",
            if n < 3600 { "greater than or equal to 3600" } else { "less than or equal to 43200" }
        ))),
    }
}

pub fn create_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "RoleName")?;
    check_name(name, "RoleName", 64)?;
    let path = path_of(input, "Path")?;
    let trust = req_str(input, "AssumeRolePolicyDocument")?;
    check_trust(trust)?;
    let description = util::opt_str(input, "Description");
    if let Some(d) = description {
        check_description(d)?;
    }
    let max = max_session(input)?.unwrap_or(3600);
    let tags = tags_of(input)?;
    let boundary = match util::opt_str(input, "PermissionsBoundary") {
        Some(b) => Some(policies::require_boundary(c, b)?),
        None => None,
    };
    if model::load_role(c, name)?.is_some() {
        return Err(already_exists(format!(
            "Role with name {name} already exists."
        )));
    }
    let r = RoleRec {
        v: 1,
        name: name.to_string(),
        id: fc_types::ids::iam_unique_id("AROA"),
        arn: model::arn(c, "role", &path, name),
        path,
        created: util::now(),
        trust: trust.to_string(),
        description: description.map(str::to_string),
        max_session: max,
        tags,
        boundary,
        inline: Default::default(),
        attached: Vec::new(),
        last_used: None,
    };
    model::save_role(c, &r)?;
    let mut out = r.to_value(false);
    if let Value::Object(m) = &mut out {
        if !r.tags.is_empty() {
            m.insert("Tags".into(), util::tags_value(&r.tags));
        }
    }
    Ok(json!({"Role": out}))
}

pub fn get_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let r = model::role(c, req_str(input, "RoleName")?)?;
    Ok(json!({"Role": r.to_value(true)}))
}

pub fn list_roles(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let prefix = path_prefix(input)?;
    let items = util::scan_all::<RoleRec>(c.store, &c.scope, ROLES)?
        .into_iter()
        .filter(|(_, r)| r.path.starts_with(&prefix))
        .map(|(k, r)| (k, r.to_value(false)))
        .collect();
    let (page, marker) = paginate("ListRoles", items, input)?;
    Ok(list_output("Roles", page, marker))
}

pub fn update_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut r = model::role(c, req_str(input, "RoleName")?)?;
    if let Some(d) = util::opt_str(input, "Description") {
        check_description(d)?;
        r.description = Some(d.to_string());
    }
    if let Some(m) = max_session(input)? {
        r.max_session = m;
    }
    model::save_role(c, &r)?;
    Ok(json!({}))
}

pub fn update_role_description(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut r = model::role(c, req_str(input, "RoleName")?)?;
    let d = req_str(input, "Description")?;
    check_description(d)?;
    r.description = Some(d.to_string());
    model::save_role(c, &r)?;
    Ok(json!({"Role": r.to_value(true)}))
}

pub fn update_assume_role_policy(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut r = model::role(c, req_str(input, "RoleName")?)?;
    if let Some(e) = protected(&r) {
        return Err(e);
    }
    let doc = req_str(input, "PolicyDocument")?;
    check_trust(doc)?;
    r.trust = doc.to_string();
    model::save_role(c, &r)?;
    Ok(json!({}))
}

pub fn delete_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let r = model::role(c, req_str(input, "RoleName")?)?;
    if let Some(e) = protected(&r) {
        return Err(e);
    }
    if !r.inline.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !r.attached.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    if !instance_profiles::profiles_with_role(c, &r.name)?.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove roles from instance profile first.",
        ));
    }
    util::delete(c.store, &c.scope, ROLES, &model::key(&r.name))?;
    Ok(json!({}))
}

pub fn tag_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut r = model::role(c, req_str(input, "RoleName")?)?;
    util::merge_tags(&mut r.tags, tags_of(input)?)?;
    model::save_role(c, &r)?;
    Ok(json!({}))
}

pub fn untag_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut r = model::role(c, req_str(input, "RoleName")?)?;
    util::remove_tags(&mut r.tags, input);
    model::save_role(c, &r)?;
    Ok(json!({}))
}

pub fn list_role_tags(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let r = model::role(c, req_str(input, "RoleName")?)?;
    util::list_tags_output("ListRoleTags", &r.tags, input)
}

pub fn put_role_permissions_boundary(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut r = model::role(c, req_str(input, "RoleName")?)?;
    r.boundary = Some(policies::require_boundary(
        c,
        req_str(input, "PermissionsBoundary")?,
    )?);
    model::save_role(c, &r)?;
    Ok(json!({}))
}

pub fn delete_role_permissions_boundary(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut r = model::role(c, req_str(input, "RoleName")?)?;
    r.boundary = None;
    model::save_role(c, &r)?;
    Ok(json!({}))
}

/// Name of the service-linked role AWS creates for a service principal.
fn service_linked_name(service: &str) -> String {
    let known = [
        ("autoscaling.amazonaws.com", "AutoScaling"),
        ("ecs.amazonaws.com", "ECS"),
        ("elasticloadbalancing.amazonaws.com", "ElasticLoadBalancing"),
        ("eks.amazonaws.com", "AmazonEKS"),
        ("eks-nodegroup.amazonaws.com", "AmazonEKSNodegroup"),
        ("eks-fargate.amazonaws.com", "AmazonEKSForFargate"),
        ("spot.amazonaws.com", "EC2Spot"),
        ("spotfleet.amazonaws.com", "EC2SpotFleet"),
        ("batch.amazonaws.com", "Batch"),
        ("elasticbeanstalk.amazonaws.com", "ElasticBeanstalk"),
        ("replication.ecr.amazonaws.com", "ECRReplication"),
        ("lightsail.amazonaws.com", "Lightsail"),
        ("logs.amazonaws.com", "CloudWatchLogs"),
    ];
    if let Some((_, n)) = known.iter().find(|(s, _)| *s == service) {
        return format!("AWSServiceRoleFor{n}");
    }
    let base = service.split('.').next().unwrap_or(service);
    let camel: String = base
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("AWSServiceRoleFor{camel}")
}

pub fn create_service_linked_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let service = req_str(input, "AWSServiceName")?;
    if !service.ends_with(".amazonaws.com") {
        return Err(util::invalid_input(format!(
            "Unrecognized service principal: {service}"
        )));
    }
    let mut name = service_linked_name(service);
    if let Some(suffix) = util::opt_str(input, "CustomSuffix") {
        name = format!("{name}_{suffix}");
    }
    check_name(&name, "RoleName", 64)?;
    if model::load_role(c, &name)?.is_some() {
        return Err(util::invalid_input(format!(
            "Service role name {name} has been taken in this account, please try a different suffix."
        )));
    }
    let description = util::opt_str(input, "Description");
    if let Some(d) = description {
        check_description(d)?;
    }
    let path = format!("/aws-service-role/{service}/");
    let trust = serde_json::to_string(&json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": [service]}, "Action": ["sts:AssumeRole"]}],
    }))
    .map_err(|e| ApiError::internal(format!("cannot encode trust policy: {e}")))?;
    let r = RoleRec {
        v: 1,
        name: name.clone(),
        id: fc_types::ids::iam_unique_id("AROA"),
        arn: model::arn(c, "role", &path, &name),
        path,
        created: util::now(),
        trust,
        description: description.map(str::to_string),
        max_session: 3600,
        tags: Vec::new(),
        boundary: None,
        inline: Default::default(),
        attached: Vec::new(),
        last_used: None,
    };
    model::save_role(c, &r)?;
    Ok(json!({"Role": r.to_value(false)}))
}

pub fn delete_service_linked_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let r = model::role(c, req_str(input, "RoleName")?)?;
    let Some(service) = r
        .path
        .strip_prefix("/aws-service-role/")
        .and_then(|p| p.strip_suffix('/'))
    else {
        return Err(util::invalid_input(format!(
            "Role {} is not a service-linked role.",
            r.name
        )));
    };
    let task = format!(
        "task/aws-service-role/{service}/{}/{}",
        r.name,
        uuid::Uuid::new_v4()
    );
    for mut p in instance_profiles::profiles_with_role(c, &r.name)? {
        p.roles.retain(|x| model::key(x) != model::key(&r.name));
        model::save_profile(c, &p)?;
    }
    util::delete(c.store, &c.scope, ROLES, &model::key(&r.name))?;
    Ok(json!({"DeletionTaskId": task}))
}

pub fn get_service_linked_role_deletion_status(_c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let task = req_str(input, "DeletionTaskId")?;
    if !task.starts_with("task/aws-service-role/") {
        return Err(util::invalid_input(format!(
            "Invalid deletion task id: {task}"
        )));
    }
    Ok(json!({"Status": "SUCCEEDED"}))
}

fn protected(r: &RoleRec) -> Option<ApiError> {
    r.path.starts_with("/aws-service-role/").then(|| {
        ApiError::new(
            400,
            "UnmodifiableEntity",
            format!(
                "Cannot perform the operation on the protected role '{}' - this role is only modifiable by AWS",
                r.name
            ),
        )
    })
}
