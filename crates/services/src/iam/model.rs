//! IAM's persisted records (versioned JSON in the store) and their output shapes.

use super::util::{self, encode_doc, entity_arn, no_such_entity, ts, Tag};
use super::Ctx;
use fc_protocol::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const USERS: &str = "iam_users";
pub const GROUPS: &str = "iam_groups";
pub const ROLES: &str = "iam_roles";
pub const POLICIES: &str = "iam_policies";
pub const PROFILES: &str = "iam_instance_profiles";
pub const ACCOUNT: &str = "iam_account";

/// Store key of a named entity: names are unique regardless of case.
pub fn key(name: &str) -> String {
    name.to_lowercase()
}

/// The three kinds of principal entity policies attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
    Role,
}

impl Kind {
    /// The name member (`UserName`...).
    pub fn member(self) -> &'static str {
        match self {
            Kind::User => "UserName",
            Kind::Group => "GroupName",
            Kind::Role => "RoleName",
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Role => "role",
        }
    }
    /// Quota on the total size of an entity's inline policies.
    pub fn inline_quota(self) -> (usize, &'static str) {
        match self {
            Kind::User => (2048, "UserPolicySize"),
            Kind::Group => (5120, "GroupPolicySize"),
            Kind::Role => (10240, "RolePolicySize"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKeyRec {
    pub id: String,
    pub status: String,
    pub created: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRec {
    pub v: u32,
    pub name: String,
    pub id: String,
    pub path: String,
    pub arn: String,
    pub created: f64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub boundary: Option<String>,
    /// Inline policies: name -> document.
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    /// Attached managed policy ARNs, in attachment order.
    #[serde(default)]
    pub attached: Vec<String>,
    /// Names of the groups the user belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub access_keys: Vec<AccessKeyRec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRec {
    pub v: u32,
    pub name: String,
    pub id: String,
    pub path: String,
    pub arn: String,
    pub created: f64,
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    #[serde(default)]
    pub attached: Vec<String>,
    /// Names of member users.
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRec {
    pub v: u32,
    pub name: String,
    pub id: String,
    pub path: String,
    pub arn: String,
    pub created: f64,
    /// The trust policy as submitted.
    pub trust: String,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub boundary: Option<String>,
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    #[serde(default)]
    pub attached: Vec<String>,
    /// Last `AssumeRole`: (epoch seconds, region).
    #[serde(default)]
    pub last_used: Option<(f64, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRec {
    pub id: String,
    pub document: String,
    pub created: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRec {
    pub v: u32,
    pub name: String,
    pub id: String,
    pub path: String,
    pub arn: String,
    pub created: f64,
    pub updated: f64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub default_version: String,
    pub versions: Vec<VersionRec>,
    /// Number of the next version to create (`v<n>`).
    pub next_version: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileRec {
    pub v: u32,
    pub name: String,
    pub id: String,
    pub path: String,
    pub arn: String,
    pub created: f64,
    /// Names of the roles in the profile (at most one).
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// Account-wide IAM facts (the root user).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRec {
    pub v: u32,
    pub created: f64,
    #[serde(default)]
    pub root_keys: Vec<AccessKeyRec>,
}

// ---- output shapes --------------------------------------------------------------------------

fn boundary_value(b: &Option<String>) -> Option<Value> {
    b.as_ref().map(|arn| {
        json!({"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn})
    })
}

impl UserRec {
    /// `User` shape; `with_tags` for GetUser/CreateUser (ListUsers omits them).
    pub fn to_value(&self, with_tags: bool) -> Value {
        let mut m = Map::new();
        m.insert("Path".into(), json!(self.path));
        m.insert("UserName".into(), json!(self.name));
        m.insert("UserId".into(), json!(self.id));
        m.insert("Arn".into(), json!(self.arn));
        m.insert("CreateDate".into(), ts(self.created));
        if let Some(b) = boundary_value(&self.boundary) {
            m.insert("PermissionsBoundary".into(), b);
        }
        if with_tags && !self.tags.is_empty() {
            m.insert("Tags".into(), util::tags_value(&self.tags));
        }
        Value::Object(m)
    }
}

impl GroupRec {
    pub fn to_value(&self) -> Value {
        json!({
            "Path": self.path,
            "GroupName": self.name,
            "GroupId": self.id,
            "Arn": self.arn,
            "CreateDate": ts(self.created),
        })
    }
}

impl RoleRec {
    /// `Role` shape; `full` for GetRole (tags, last use), not for lists.
    pub fn to_value(&self, full: bool) -> Value {
        let mut m = Map::new();
        m.insert("Path".into(), json!(self.path));
        m.insert("RoleName".into(), json!(self.name));
        m.insert("RoleId".into(), json!(self.id));
        m.insert("Arn".into(), json!(self.arn));
        m.insert("CreateDate".into(), ts(self.created));
        m.insert(
            "AssumeRolePolicyDocument".into(),
            json!(encode_doc(&self.trust)),
        );
        if let Some(d) = &self.description {
            m.insert("Description".into(), json!(d));
        }
        m.insert("MaxSessionDuration".into(), json!(self.max_session));
        if let Some(b) = boundary_value(&self.boundary) {
            m.insert("PermissionsBoundary".into(), b);
        }
        if full {
            if !self.tags.is_empty() {
                m.insert("Tags".into(), util::tags_value(&self.tags));
            }
            let mut lu = Map::new();
            if let Some((when, region)) = &self.last_used {
                lu.insert("LastUsedDate".into(), ts(*when));
                lu.insert("Region".into(), json!(region));
            }
            m.insert("RoleLastUsed".into(), Value::Object(lu));
        }
        Value::Object(m)
    }
}

impl ProfileRec {
    pub fn to_value(&self, c: &Ctx) -> Result<Value, ApiError> {
        let mut roles = Vec::new();
        for r in &self.roles {
            if let Some(role) = load_role(c, r)? {
                roles.push(role.to_value(false));
            }
        }
        let mut m = Map::new();
        m.insert("Path".into(), json!(self.path));
        m.insert("InstanceProfileName".into(), json!(self.name));
        m.insert("InstanceProfileId".into(), json!(self.id));
        m.insert("Arn".into(), json!(self.arn));
        m.insert("CreateDate".into(), ts(self.created));
        m.insert("Roles".into(), Value::Array(roles));
        if !self.tags.is_empty() {
            m.insert("Tags".into(), util::tags_value(&self.tags));
        }
        Ok(Value::Object(m))
    }
}

// ---- loading --------------------------------------------------------------------------------

pub fn load_user(c: &Ctx, name: &str) -> Result<Option<UserRec>, ApiError> {
    util::get(c.store, &c.scope, USERS, &key(name))
}

pub fn load_group(c: &Ctx, name: &str) -> Result<Option<GroupRec>, ApiError> {
    util::get(c.store, &c.scope, GROUPS, &key(name))
}

pub fn load_role(c: &Ctx, name: &str) -> Result<Option<RoleRec>, ApiError> {
    util::get(c.store, &c.scope, ROLES, &key(name))
}

pub fn load_profile(c: &Ctx, name: &str) -> Result<Option<ProfileRec>, ApiError> {
    util::get(c.store, &c.scope, PROFILES, &key(name))
}

pub fn user(c: &Ctx, name: &str) -> Result<UserRec, ApiError> {
    load_user(c, name)?
        .ok_or_else(|| no_such_entity(format!("The user with name {name} cannot be found.")))
}

pub fn group(c: &Ctx, name: &str) -> Result<GroupRec, ApiError> {
    load_group(c, name)?
        .ok_or_else(|| no_such_entity(format!("The group with name {name} cannot be found.")))
}

pub fn role(c: &Ctx, name: &str) -> Result<RoleRec, ApiError> {
    load_role(c, name)?
        .ok_or_else(|| no_such_entity(format!("The role with name {name} cannot be found.")))
}

pub fn profile(c: &Ctx, name: &str) -> Result<ProfileRec, ApiError> {
    load_profile(c, name)?
        .ok_or_else(|| no_such_entity(format!("Instance Profile {name} cannot be found.")))
}

pub fn save_user(c: &Ctx, u: &UserRec) -> Result<(), ApiError> {
    util::put(c.store, &c.scope, USERS, &key(&u.name), u)
}

pub fn save_group(c: &Ctx, g: &GroupRec) -> Result<(), ApiError> {
    util::put(c.store, &c.scope, GROUPS, &key(&g.name), g)
}

pub fn save_role(c: &Ctx, r: &RoleRec) -> Result<(), ApiError> {
    util::put(c.store, &c.scope, ROLES, &key(&r.name), r)
}

pub fn save_profile(c: &Ctx, p: &ProfileRec) -> Result<(), ApiError> {
    util::put(c.store, &c.scope, PROFILES, &key(&p.name), p)
}

/// The account record, created on first use.
pub fn account(c: &Ctx) -> Result<AccountRec, ApiError> {
    if let Some(a) = util::get(c.store, &c.scope, ACCOUNT, "account")? {
        return Ok(a);
    }
    let a = AccountRec {
        v: 1,
        created: util::now(),
        root_keys: Vec::new(),
    };
    save_account(c, &a)?;
    Ok(a)
}

pub fn save_account(c: &Ctx, a: &AccountRec) -> Result<(), ApiError> {
    util::put(c.store, &c.scope, ACCOUNT, "account", a)
}

/// Fresh entity ARN helper re-exported for handlers.
pub fn arn(c: &Ctx, kind: &str, path: &str, name: &str) -> String {
    entity_arn(c.account(), kind, path, name)
}
