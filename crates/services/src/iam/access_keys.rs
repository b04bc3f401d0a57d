//! IAM access keys: long-term `AKIA…` keys of users (and of the root user), mirrored into the
//! credentials index so requests signed with them resolve to their owner.

use super::model::{self, AccessKeyRec};
use super::users::{target_user, user_name_of_arn};
use super::util::{
    self, limit_exceeded, list_output, no_such_entity, paginate, req_str, validation,
};
use super::Ctx;
use crate::common::store_error;
use crate::identity::{self, Credential};
use fc_protocol::ApiError;
use serde_json::{json, Map, Value};

const MAX_KEYS: usize = 2;

fn not_found(id: &str) -> ApiError {
    no_such_entity(format!("The Access Key with id {id} cannot be found"))
}

fn quota() -> ApiError {
    limit_exceeded("Cannot exceed quota for AccessKeysPerUser: 2")
}

pub fn create_access_key(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let key = AccessKeyRec {
        id: fc_types::ids::access_key_id(),
        status: "Active".into(),
        created: util::now(),
    };
    let secret = fc_types::ids::secret_access_key();
    let (user_name, arn, user_id) = match target_user(c, input)? {
        Some(name) => {
            let mut u = model::user(c, &name)?;
            if u.access_keys.len() >= MAX_KEYS {
                return Err(quota());
            }
            u.access_keys.push(key.clone());
            model::save_user(c, &u)?;
            (Some(u.name), u.arn, u.id)
        }
        None => {
            let mut a = model::account(c)?;
            if a.root_keys.len() >= MAX_KEYS {
                return Err(quota());
            }
            a.root_keys.push(key.clone());
            model::save_account(c, &a)?;
            (
                None,
                format!("arn:aws:iam::{}:root", c.account()),
                c.account().to_string(),
            )
        }
    };
    identity::save(
        c.store,
        &Credential {
            v: 1,
            access_key_id: key.id.clone(),
            secret_access_key: secret.clone(),
            session_token: None,
            account: c.account().to_string(),
            arn,
            user_id,
            expires: None,
            status: "Active".into(),
        },
    )
    .map_err(store_error)?;
    let mut m = Map::new();
    if let Some(n) = user_name {
        m.insert("UserName".into(), json!(n));
    }
    m.insert("AccessKeyId".into(), json!(key.id));
    m.insert("Status".into(), json!(key.status));
    m.insert("SecretAccessKey".into(), json!(secret));
    m.insert("CreateDate".into(), util::ts(key.created));
    Ok(json!({"AccessKey": Value::Object(m)}))
}

/// The keys of the target user (or root), and a way to store them back.
fn keys_of(c: &Ctx, input: &Value) -> Result<(Option<String>, Vec<AccessKeyRec>), ApiError> {
    match target_user(c, input)? {
        Some(name) => {
            let u = model::user(c, &name)?;
            Ok((Some(u.name), u.access_keys))
        }
        None => Ok((None, model::account(c)?.root_keys)),
    }
}

fn store_keys(c: &Ctx, user: &Option<String>, keys: Vec<AccessKeyRec>) -> Result<(), ApiError> {
    match user {
        Some(name) => {
            let mut u = model::user(c, name)?;
            u.access_keys = keys;
            model::save_user(c, &u)
        }
        None => {
            let mut a = model::account(c)?;
            a.root_keys = keys;
            model::save_account(c, &a)
        }
    }
}

pub fn list_access_keys(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let (user, keys) = keys_of(c, input)?;
    let items = keys
        .iter()
        .map(|k| {
            let mut m = Map::new();
            if let Some(n) = &user {
                m.insert("UserName".into(), json!(n));
            }
            m.insert("AccessKeyId".into(), json!(k.id));
            m.insert("Status".into(), json!(k.status));
            m.insert("CreateDate".into(), util::ts(k.created));
            (k.id.clone(), Value::Object(m))
        })
        .collect::<Vec<_>>();
    let mut items = items;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, marker) = paginate("ListAccessKeys", items, input)?;
    Ok(list_output("AccessKeyMetadata", page, marker))
}

pub fn update_access_key(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "AccessKeyId")?;
    let status = req_str(input, "Status")?;
    if status != "Active" && status != "Inactive" {
        return Err(validation(format!(
            "1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
        )));
    }
    let (user, mut keys) = keys_of(c, input)?;
    let k = keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(|| not_found(id))?;
    k.status = status.to_string();
    store_keys(c, &user, keys)?;
    if let Some(mut cred) = identity::lookup(c.store, id).map_err(store_error)? {
        cred.status = status.to_string();
        identity::save(c.store, &cred).map_err(store_error)?;
    }
    Ok(json!({}))
}

pub fn delete_access_key(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "AccessKeyId")?;
    let (user, mut keys) = keys_of(c, input)?;
    let before = keys.len();
    keys.retain(|k| k.id != id);
    if keys.len() == before {
        return Err(not_found(id));
    }
    store_keys(c, &user, keys)?;
    identity::remove(c.store, id).map_err(store_error)?;
    Ok(json!({}))
}

pub fn get_access_key_last_used(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "AccessKeyId")?;
    let cred = identity::lookup(c.store, id)
        .map_err(store_error)?
        .filter(|cr| cr.session_token.is_none() && cr.account == c.account())
        .ok_or_else(|| not_found(id))?;
    let mut out = Map::new();
    if let Some(name) = user_name_of_arn(&cred.arn) {
        out.insert("UserName".into(), json!(name));
    }
    out.insert(
        "AccessKeyLastUsed".into(),
        json!({"ServiceName": "N/A", "Region": "N/A"}),
    );
    Ok(Value::Object(out))
}
