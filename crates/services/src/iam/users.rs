//! IAM users: create, read, list, rename, delete, tags, permissions boundaries.

use super::model::{self, UserRec, USERS};
use super::util::{
    self, already_exists, check_name, delete_conflict, list_output, paginate, path_of, path_prefix,
    req_str, tags_of, validation,
};
use super::{policies, Ctx};
use crate::common::store_error;
use crate::identity;
use fc_protocol::ApiError;
use serde_json::{json, Value};

/// The name of the IAM user `arn` denotes (`…:user/path/name`), if it is one.
pub fn user_name_of_arn(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let rest = resource.strip_prefix("user/")?;
    rest.rsplit('/').next()
}

/// `UserName` of the input, or the calling user's. `None` when the caller is root.
pub fn target_user(c: &Ctx, input: &Value) -> Result<Option<String>, ApiError> {
    if let Some(n) = util::opt_str(input, "UserName") {
        return Ok(Some(n.to_string()));
    }
    let arn = &c.req.principal.arn;
    if arn.ends_with(":root") {
        return Ok(None);
    }
    match user_name_of_arn(arn) {
        Some(n) => Ok(Some(n.to_string())),
        None => Err(validation(
            "Must specify userName when calling with non-User credentials",
        )),
    }
}

pub fn create_user(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "UserName")?;
    check_name(name, "UserName", 64)?;
    let path = path_of(input, "Path")?;
    let tags = tags_of(input)?;
    let boundary = match util::opt_str(input, "PermissionsBoundary") {
        Some(b) => Some(policies::require_boundary(c, b)?),
        None => None,
    };
    if model::load_user(c, name)?.is_some() {
        return Err(already_exists(format!(
            "User with name {name} already exists."
        )));
    }
    let u = UserRec {
        v: 1,
        name: name.to_string(),
        id: fc_types::ids::iam_unique_id("AIDA"),
        arn: model::arn(c, "user", &path, name),
        path,
        created: util::now(),
        tags,
        boundary,
        inline: Default::default(),
        attached: Vec::new(),
        groups: Vec::new(),
        access_keys: Vec::new(),
    };
    model::save_user(c, &u)?;
    Ok(json!({"User": u.to_value(true)}))
}

pub fn get_user(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    match target_user(c, input)? {
        Some(name) => {
            let u = model::user(c, &name)?;
            Ok(json!({"User": u.to_value(true)}))
        }
        None => {
            let acct = model::account(c)?;
            Ok(json!({"User": {
                "UserId": c.account(),
                "Arn": format!("arn:aws:iam::{}:root", c.account()),
                "CreateDate": util::ts(acct.created),
            }}))
        }
    }
}

pub fn list_users(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let prefix = path_prefix(input)?;
    let items = util::scan_all::<UserRec>(c.store, &c.scope, USERS)?
        .into_iter()
        .filter(|(_, u)| u.path.starts_with(&prefix))
        .map(|(k, u)| (k, u.to_value(false)))
        .collect();
    let (page, marker) = paginate("ListUsers", items, input)?;
    Ok(list_output("Users", page, marker))
}

pub fn update_user(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "UserName")?;
    let mut u = model::user(c, name)?;
    let new_path = match util::opt_str(input, "NewPath") {
        Some(p) => {
            util::check_path(p, "NewPath")?;
            p.to_string()
        }
        None => u.path.clone(),
    };
    let new_name = util::opt_str(input, "NewUserName")
        .unwrap_or(name)
        .to_string();
    check_name(&new_name, "NewUserName", 64)?;
    let renamed = model::key(&new_name) != model::key(&u.name);
    if renamed && model::load_user(c, &new_name)?.is_some() {
        return Err(already_exists(format!(
            "User with name {new_name} already exists."
        )));
    }
    let old_name = u.name.clone();
    u.name = new_name.clone();
    u.path = new_path;
    u.arn = model::arn(c, "user", &u.path, &u.name);
    if renamed {
        util::delete(c.store, &c.scope, USERS, &model::key(&old_name))?;
    }
    for g in &u.groups {
        if let Some(mut grp) = model::load_group(c, g)? {
            for m in grp.members.iter_mut() {
                if model::key(m) == model::key(&old_name) {
                    *m = new_name.clone();
                }
            }
            model::save_group(c, &grp)?;
        }
    }
    for k in &u.access_keys {
        if let Some(mut cred) = identity::lookup(c.store, &k.id).map_err(store_error)? {
            cred.arn = u.arn.clone();
            identity::save(c.store, &cred).map_err(store_error)?;
        }
    }
    model::save_user(c, &u)?;
    Ok(json!({}))
}

pub fn delete_user(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "UserName")?;
    let u = model::user(c, name)?;
    if !u.access_keys.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete access keys first.",
        ));
    }
    if !u.inline.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !u.attached.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    if !u.groups.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove user from all groups first.",
        ));
    }
    util::delete(c.store, &c.scope, USERS, &model::key(&u.name))?;
    Ok(json!({}))
}

pub fn tag_user(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut u = model::user(c, req_str(input, "UserName")?)?;
    util::merge_tags(&mut u.tags, tags_of(input)?)?;
    model::save_user(c, &u)?;
    Ok(json!({}))
}

pub fn untag_user(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut u = model::user(c, req_str(input, "UserName")?)?;
    util::remove_tags(&mut u.tags, input);
    model::save_user(c, &u)?;
    Ok(json!({}))
}

pub fn list_user_tags(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let u = model::user(c, req_str(input, "UserName")?)?;
    util::list_tags_output("ListUserTags", &u.tags, input)
}

pub fn put_user_permissions_boundary(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut u = model::user(c, req_str(input, "UserName")?)?;
    u.boundary = Some(policies::require_boundary(
        c,
        req_str(input, "PermissionsBoundary")?,
    )?);
    model::save_user(c, &u)?;
    Ok(json!({}))
}

pub fn delete_user_permissions_boundary(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut u = model::user(c, req_str(input, "UserName")?)?;
    u.boundary = None;
    model::save_user(c, &u)?;
    Ok(json!({}))
}
