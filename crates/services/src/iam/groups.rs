//! IAM groups and their memberships.

use super::model::{self, GroupRec, GROUPS};
use super::util::{
    self, already_exists, check_name, delete_conflict, list_output, paginate, path_of, path_prefix,
    req_str,
};
use super::Ctx;
use fc_protocol::ApiError;
use serde_json::{json, Value};

pub fn create_group(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "GroupName")?;
    check_name(name, "GroupName", 128)?;
    let path = path_of(input, "Path")?;
    if model::load_group(c, name)?.is_some() {
        return Err(already_exists(format!(
            "Group with name {name} already exists."
        )));
    }
    let g = GroupRec {
        v: 1,
        name: name.to_string(),
        id: fc_types::ids::iam_unique_id("AGPA"),
        arn: model::arn(c, "group", &path, name),
        path,
        created: util::now(),
        inline: Default::default(),
        attached: Vec::new(),
        members: Vec::new(),
    };
    model::save_group(c, &g)?;
    Ok(json!({"Group": g.to_value()}))
}

pub fn get_group(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let g = model::group(c, req_str(input, "GroupName")?)?;
    let mut items = Vec::new();
    for m in &g.members {
        if let Some(u) = model::load_user(c, m)? {
            items.push((model::key(&u.name), u.to_value(false)));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, marker) = paginate("GetGroup", items, input)?;
    let mut out = list_output("Users", page, marker);
    if let Value::Object(m) = &mut out {
        m.insert("Group".into(), g.to_value());
    }
    Ok(out)
}

pub fn list_groups(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let prefix = path_prefix(input)?;
    let items = util::scan_all::<GroupRec>(c.store, &c.scope, GROUPS)?
        .into_iter()
        .filter(|(_, g)| g.path.starts_with(&prefix))
        .map(|(k, g)| (k, g.to_value()))
        .collect();
    let (page, marker) = paginate("ListGroups", items, input)?;
    Ok(list_output("Groups", page, marker))
}

pub fn update_group(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "GroupName")?;
    let mut g = model::group(c, name)?;
    if let Some(p) = util::opt_str(input, "NewPath") {
        util::check_path(p, "NewPath")?;
        g.path = p.to_string();
    }
    let new_name = util::opt_str(input, "NewGroupName")
        .unwrap_or(name)
        .to_string();
    check_name(&new_name, "NewGroupName", 128)?;
    let old_name = g.name.clone();
    let renamed = model::key(&new_name) != model::key(&old_name);
    if renamed && model::load_group(c, &new_name)?.is_some() {
        return Err(already_exists(format!(
            "Group with name {new_name} already exists."
        )));
    }
    g.name = new_name.clone();
    g.arn = model::arn(c, "group", &g.path, &g.name);
    if renamed {
        util::delete(c.store, &c.scope, GROUPS, &model::key(&old_name))?;
    }
    for m in &g.members {
        if let Some(mut u) = model::load_user(c, m)? {
            for gn in u.groups.iter_mut() {
                if model::key(gn) == model::key(&old_name) {
                    *gn = new_name.clone();
                }
            }
            model::save_user(c, &u)?;
        }
    }
    model::save_group(c, &g)?;
    Ok(json!({}))
}

pub fn delete_group(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let g = model::group(c, req_str(input, "GroupName")?)?;
    if !g.members.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove users from group first.",
        ));
    }
    if !g.inline.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !g.attached.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    util::delete(c.store, &c.scope, GROUPS, &model::key(&g.name))?;
    Ok(json!({}))
}

pub fn add_user_to_group(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut g = model::group(c, req_str(input, "GroupName")?)?;
    let mut u = model::user(c, req_str(input, "UserName")?)?;
    if u.groups.len() >= 10
        && !u
            .groups
            .iter()
            .any(|x| model::key(x) == model::key(&g.name))
    {
        return Err(util::limit_exceeded(
            "Cannot exceed quota for GroupsPerUser: 10",
        ));
    }
    if !g
        .members
        .iter()
        .any(|m| model::key(m) == model::key(&u.name))
    {
        g.members.push(u.name.clone());
        model::save_group(c, &g)?;
    }
    if !u
        .groups
        .iter()
        .any(|x| model::key(x) == model::key(&g.name))
    {
        u.groups.push(g.name.clone());
        model::save_user(c, &u)?;
    }
    Ok(json!({}))
}

pub fn remove_user_from_group(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut g = model::group(c, req_str(input, "GroupName")?)?;
    let mut u = model::user(c, req_str(input, "UserName")?)?;
    let before = g.members.len();
    g.members.retain(|m| model::key(m) != model::key(&u.name));
    if g.members.len() == before {
        return Err(util::no_such_entity(format!(
            "The user with name {} cannot be found.",
            u.name
        )));
    }
    u.groups.retain(|x| model::key(x) != model::key(&g.name));
    model::save_group(c, &g)?;
    model::save_user(c, &u)?;
    Ok(json!({}))
}

pub fn list_groups_for_user(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let u = model::user(c, req_str(input, "UserName")?)?;
    let mut items = Vec::new();
    for gn in &u.groups {
        if let Some(g) = model::load_group(c, gn)? {
            items.push((model::key(&g.name), g.to_value()));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, marker) = paginate("ListGroupsForUser", items, input)?;
    Ok(list_output("Groups", page, marker))
}
