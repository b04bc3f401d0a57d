//! IAM instance profiles: containers for (at most) one role that EC2 instances run as.

use super::model::{self, ProfileRec, PROFILES};
use super::util::{
    self, already_exists, check_name, delete_conflict, limit_exceeded, list_output, no_such_entity,
    paginate, path_of, path_prefix, req_str, tags_of,
};
use super::Ctx;
use fc_protocol::ApiError;
use serde_json::{json, Value};

/// Every instance profile holding the role `name`.
pub fn profiles_with_role(c: &Ctx, name: &str) -> Result<Vec<ProfileRec>, ApiError> {
    Ok(util::scan_all::<ProfileRec>(c.store, &c.scope, PROFILES)?
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.roles.iter().any(|r| model::key(r) == model::key(name)))
        .collect())
}

pub fn create_instance_profile(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "InstanceProfileName")?;
    check_name(name, "InstanceProfileName", 128)?;
    let path = path_of(input, "Path")?;
    let tags = tags_of(input)?;
    if model::load_profile(c, name)?.is_some() {
        return Err(already_exists(format!(
            "Instance Profile {name} already exists."
        )));
    }
    let p = ProfileRec {
        v: 1,
        name: name.to_string(),
        id: fc_types::ids::iam_unique_id("AIPA"),
        arn: model::arn(c, "instance-profile", &path, name),
        path,
        created: util::now(),
        roles: Vec::new(),
        tags,
    };
    model::save_profile(c, &p)?;
    Ok(json!({"InstanceProfile": p.to_value(c)?}))
}

pub fn get_instance_profile(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let p = model::profile(c, req_str(input, "InstanceProfileName")?)?;
    Ok(json!({"InstanceProfile": p.to_value(c)?}))
}

pub fn list_instance_profiles(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let prefix = path_prefix(input)?;
    let mut items = Vec::new();
    for (k, p) in util::scan_all::<ProfileRec>(c.store, &c.scope, PROFILES)? {
        if p.path.starts_with(&prefix) {
            items.push((k, p.to_value(c)?));
        }
    }
    let (page, marker) = paginate("ListInstanceProfiles", items, input)?;
    Ok(list_output("InstanceProfiles", page, marker))
}

pub fn delete_instance_profile(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let p = model::profile(c, req_str(input, "InstanceProfileName")?)?;
    if !p.roles.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove roles from instance profile first.",
        ));
    }
    util::delete(c.store, &c.scope, PROFILES, &model::key(&p.name))?;
    Ok(json!({}))
}

pub fn add_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut p = model::profile(c, req_str(input, "InstanceProfileName")?)?;
    let r = model::role(c, req_str(input, "RoleName")?)?;
    if !p.roles.is_empty() {
        return Err(limit_exceeded(
            "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1",
        ));
    }
    p.roles.push(r.name);
    model::save_profile(c, &p)?;
    Ok(json!({}))
}

pub fn remove_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut p = model::profile(c, req_str(input, "InstanceProfileName")?)?;
    let role = req_str(input, "RoleName")?;
    let before = p.roles.len();
    p.roles.retain(|r| model::key(r) != model::key(role));
    if p.roles.len() == before {
        return Err(no_such_entity(format!(
            "The role with name {role} cannot be found."
        )));
    }
    model::save_profile(c, &p)?;
    Ok(json!({}))
}

pub fn list_for_role(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let r = model::role(c, req_str(input, "RoleName")?)?;
    let mut items = Vec::new();
    for p in profiles_with_role(c, &r.name)? {
        items.push((model::key(&p.name), p.to_value(c)?));
    }
    let (page, marker) = paginate("ListInstanceProfilesForRole", items, input)?;
    Ok(list_output("InstanceProfiles", page, marker))
}

pub fn tag_instance_profile(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut p = model::profile(c, req_str(input, "InstanceProfileName")?)?;
    util::merge_tags(&mut p.tags, tags_of(input)?)?;
    model::save_profile(c, &p)?;
    Ok(json!({}))
}

pub fn untag_instance_profile(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut p = model::profile(c, req_str(input, "InstanceProfileName")?)?;
    util::remove_tags(&mut p.tags, input);
    model::save_profile(c, &p)?;
    Ok(json!({}))
}

pub fn list_instance_profile_tags(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let p = model::profile(c, req_str(input, "InstanceProfileName")?)?;
    util::list_tags_output("ListInstanceProfileTags", &p.tags, input)
}
