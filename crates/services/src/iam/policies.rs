//! Managed policies (customer-managed and AWS-managed), their versions and attachments, and
//! inline policies of users, groups and roles.

use super::managed::{self, AwsPolicy};
use super::model::{self, GroupRec, Kind, PolicyRec, RoleRec, UserRec, VersionRec, POLICIES};
use super::policy_doc::{self, DocKind};
use super::util::{
    self, already_exists, check_name, delete_conflict, encode_doc, invalid_input, limit_exceeded,
    list_output, no_such_entity, paginate, req_str, tags_of, validation,
};
use super::Ctx;
use fc_protocol::ApiError;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

const MAX_VERSIONS: usize = 5;
const MAX_ATTACHED: usize = 10;
const MAX_MANAGED_SIZE: usize = 6144;

/// A managed policy: AWS's (shared by all accounts) or the account's own.
pub enum PolicyRef {
    Aws(&'static AwsPolicy),
    Local(Box<PolicyRec>),
}

impl PolicyRef {
    pub fn arn(&self) -> &str {
        match self {
            PolicyRef::Aws(p) => &p.arn,
            PolicyRef::Local(p) => &p.arn,
        }
    }
    pub fn name(&self) -> &str {
        match self {
            PolicyRef::Aws(p) => &p.name,
            PolicyRef::Local(p) => &p.name,
        }
    }
    pub fn path(&self) -> &str {
        match self {
            PolicyRef::Aws(p) => &p.path,
            PolicyRef::Local(p) => &p.path,
        }
    }
    /// The default version's document.
    pub fn document(&self) -> String {
        match self {
            PolicyRef::Aws(p) => p.document.clone(),
            PolicyRef::Local(p) => p
                .versions
                .iter()
                .find(|v| v.id == p.default_version)
                .map(|v| v.document.clone())
                .unwrap_or_default(),
        }
    }

    fn to_value(&self, usage: &Usage, full: bool) -> Value {
        let mut m = Map::new();
        let (name, id, path, arn, default, created, updated, description, tags) = match self {
            PolicyRef::Aws(p) => (
                &p.name,
                &p.id,
                &p.path,
                &p.arn,
                &p.default_version,
                p.created,
                p.updated,
                Some(&p.description),
                None,
            ),
            PolicyRef::Local(p) => (
                &p.name,
                &p.id,
                &p.path,
                &p.arn,
                &p.default_version,
                p.created,
                p.updated,
                p.description.as_ref(),
                Some(&p.tags),
            ),
        };
        m.insert("PolicyName".into(), json!(name));
        m.insert("PolicyId".into(), json!(id));
        m.insert("Arn".into(), json!(arn));
        m.insert("Path".into(), json!(path));
        m.insert("DefaultVersionId".into(), json!(default));
        m.insert("AttachmentCount".into(), json!(usage.attached.len()));
        m.insert(
            "PermissionsBoundaryUsageCount".into(),
            json!(usage.boundary),
        );
        m.insert("IsAttachable".into(), json!(true));
        if full {
            if let Some(d) = description {
                m.insert("Description".into(), json!(d));
            }
        }
        m.insert("CreateDate".into(), util::ts(created));
        m.insert("UpdateDate".into(), util::ts(updated));
        if full {
            if let Some(t) = tags.filter(|t| !t.is_empty()) {
                m.insert("Tags".into(), util::tags_value(t));
            }
        }
        Value::Object(m)
    }
}

fn not_attachable(arn: &str) -> ApiError {
    no_such_entity(format!("Policy {arn} does not exist or is not attachable."))
}

/// Look a managed policy up by ARN. Malformed ARNs answer `InvalidInput`.
pub fn resolve(c: &Ctx, arn: &str) -> Result<Option<PolicyRef>, ApiError> {
    let parsed = fc_types::Arn::parse(arn)
        .ok()
        .filter(|a| a.service == "iam" && a.resource.starts_with("policy/"))
        .ok_or_else(|| invalid_input(format!("ARN {arn} is not valid.")))?;
    if parsed.account == "aws" {
        return Ok(managed::by_arn(arn).map(PolicyRef::Aws));
    }
    if parsed.account != c.account() {
        return Ok(None);
    }
    let name = parsed.resource.rsplit('/').next().unwrap_or_default();
    let rec: Option<PolicyRec> = util::get(c.store, &c.scope, POLICIES, &model::key(name))?;
    Ok(rec
        .filter(|p| p.arn == arn)
        .map(|p| PolicyRef::Local(Box::new(p))))
}

fn must_resolve(c: &Ctx, arn: &str) -> Result<PolicyRef, ApiError> {
    resolve(c, arn)?.ok_or_else(|| not_attachable(arn))
}

fn local(c: &Ctx, arn: &str, op: &str) -> Result<PolicyRec, ApiError> {
    match must_resolve(c, arn)? {
        PolicyRef::Local(p) => Ok(*p),
        PolicyRef::Aws(_) => Err(ApiError::new(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: iam:{op} on resource: policy {arn}",
                c.req.principal.arn
            ),
        )),
    }
}

/// Check a `PermissionsBoundary` ARN; returns it.
pub fn require_boundary(c: &Ctx, arn: &str) -> Result<String, ApiError> {
    match resolve(c, arn)? {
        Some(_) => Ok(arn.to_string()),
        None => Err(no_such_entity(format!(
            "Scope ARN: {arn} does not exist or is not attachable."
        ))),
    }
}

// ---- usage ----------------------------------------------------------------------------------

/// An entity a policy is attached to.
#[derive(Clone)]
pub struct Attachment {
    pub kind: Kind,
    pub name: String,
    pub id: String,
    pub path: String,
}

#[derive(Default, Clone)]
pub struct Usage {
    pub attached: Vec<Attachment>,
    pub boundary: usize,
}

/// Attachments and boundary uses of every policy of the account, by ARN.
pub fn usage(c: &Ctx) -> Result<HashMap<String, Usage>, ApiError> {
    let mut out: HashMap<String, Usage> = HashMap::new();
    let mut note =
        |kind, name: &str, id: &str, path: &str, attached: &[String], b: &Option<String>| {
            for arn in attached {
                out.entry(arn.clone())
                    .or_default()
                    .attached
                    .push(Attachment {
                        kind,
                        name: name.to_string(),
                        id: id.to_string(),
                        path: path.to_string(),
                    });
            }
            if let Some(b) = b {
                out.entry(b.clone()).or_default().boundary += 1;
            }
        };
    for (_, u) in util::scan_all::<UserRec>(c.store, &c.scope, model::USERS)? {
        note(
            Kind::User,
            &u.name,
            &u.id,
            &u.path,
            &u.attached,
            &u.boundary,
        );
    }
    for (_, g) in util::scan_all::<GroupRec>(c.store, &c.scope, model::GROUPS)? {
        note(Kind::Group, &g.name, &g.id, &g.path, &g.attached, &None);
    }
    for (_, r) in util::scan_all::<RoleRec>(c.store, &c.scope, model::ROLES)? {
        note(
            Kind::Role,
            &r.name,
            &r.id,
            &r.path,
            &r.attached,
            &r.boundary,
        );
    }
    Ok(out)
}

fn usage_of(c: &Ctx, arn: &str) -> Result<Usage, ApiError> {
    Ok(usage(c)?.remove(arn).unwrap_or_default())
}

// ---- managed policies -----------------------------------------------------------------------

fn check_managed_doc(doc: &str) -> Result<(), ApiError> {
    policy_doc::validate(doc, DocKind::Identity)?;
    if util::policy_size(doc) > MAX_MANAGED_SIZE {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for PolicySize: {MAX_MANAGED_SIZE}"
        )));
    }
    Ok(())
}

pub fn create_policy(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "PolicyName")?;
    check_name(name, "PolicyName", 128)?;
    let path = util::path_of(input, "Path")?;
    let doc = req_str(input, "PolicyDocument")?;
    check_managed_doc(doc)?;
    let description = util::opt_str(input, "Description");
    if description.is_some_and(|d| d.chars().count() > 1000) {
        return Err(validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        ));
    }
    let tags = tags_of(input)?;
    let key = model::key(name);
    if util::get::<PolicyRec>(c.store, &c.scope, POLICIES, &key)?.is_some() {
        return Err(already_exists(format!(
            "A policy called {name} already exists. Duplicate names are not allowed."
        )));
    }
    let now = util::now();
    let p = PolicyRec {
        v: 1,
        name: name.to_string(),
        id: fc_types::ids::iam_unique_id("ANPA"),
        arn: format!("arn:aws:iam::{}:policy{path}{name}", c.account()),
        path,
        created: now,
        updated: now,
        description: description.map(str::to_string),
        tags,
        default_version: "v1".into(),
        versions: vec![VersionRec {
            id: "v1".into(),
            document: doc.to_string(),
            created: now,
        }],
        next_version: 2,
    };
    util::put(c.store, &c.scope, POLICIES, &key, &p)?;
    let out = PolicyRef::Local(Box::new(p)).to_value(&Usage::default(), true);
    Ok(json!({"Policy": out}))
}

pub fn get_policy(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let p =
        resolve(c, arn)?.ok_or_else(|| no_such_entity(format!("Policy {arn} was not found.")))?;
    let u = usage_of(c, arn)?;
    Ok(json!({"Policy": p.to_value(&u, true)}))
}

pub fn list_policies(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let scope = util::opt_str(input, "Scope").unwrap_or("All");
    if !matches!(scope, "All" | "AWS" | "Local") {
        return Err(validation(format!(
            "1 validation error detected: Value '{scope}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"
        )));
    }
    let only_attached = util::opt_bool(input, "OnlyAttached").unwrap_or(false);
    let prefix = util::path_prefix(input)?;
    let usage_filter = util::opt_str(input, "PolicyUsageFilter");
    let usage = usage(c)?;
    let mut policies: Vec<PolicyRef> = Vec::new();
    if scope != "Local" {
        policies.extend(managed::all().iter().map(PolicyRef::Aws));
    }
    if scope != "AWS" {
        for (_, p) in util::scan_all::<PolicyRec>(c.store, &c.scope, POLICIES)? {
            policies.push(PolicyRef::Local(Box::new(p)));
        }
    }
    let empty = Usage::default();
    let mut items = Vec::new();
    for p in policies {
        let u = usage.get(p.arn()).unwrap_or(&empty);
        if !p.path().starts_with(&prefix) {
            continue;
        }
        let in_use = match usage_filter {
            Some("PermissionsBoundary") => u.boundary > 0,
            Some("PermissionsPolicy") => !u.attached.is_empty(),
            _ => !u.attached.is_empty() || u.boundary > 0,
        };
        if only_attached && !in_use {
            continue;
        }
        items.push((
            format!("{}\u{1}{}", p.name().to_lowercase(), p.arn()),
            p.to_value(u, false),
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, marker) = paginate("ListPolicies", items, input)?;
    Ok(list_output("Policies", page, marker))
}

pub fn delete_policy(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let p = local(c, arn, "DeletePolicy")?;
    let u = usage_of(c, arn)?;
    if !u.attached.is_empty() || u.boundary > 0 {
        return Err(delete_conflict(
            "Cannot delete a policy attached to entities.",
        ));
    }
    if p.versions.len() > 1 {
        return Err(delete_conflict(
            "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
        ));
    }
    util::delete(c.store, &c.scope, POLICIES, &model::key(&p.name))?;
    Ok(json!({}))
}

pub fn tag_policy(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut p = local(c, req_str(input, "PolicyArn")?, "TagPolicy")?;
    util::merge_tags(&mut p.tags, tags_of(input)?)?;
    util::put(c.store, &c.scope, POLICIES, &model::key(&p.name), &p)?;
    Ok(json!({}))
}

pub fn untag_policy(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let mut p = local(c, req_str(input, "PolicyArn")?, "UntagPolicy")?;
    util::remove_tags(&mut p.tags, input);
    util::put(c.store, &c.scope, POLICIES, &model::key(&p.name), &p)?;
    Ok(json!({}))
}

pub fn list_policy_tags(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    match must_resolve(c, arn)? {
        PolicyRef::Local(p) => util::list_tags_output("ListPolicyTags", &p.tags, input),
        PolicyRef::Aws(_) => util::list_tags_output("ListPolicyTags", &[], input),
    }
}

fn version_value(v: &VersionRec, default: &str, with_doc: bool) -> Value {
    let mut m = Map::new();
    if with_doc {
        m.insert("Document".into(), json!(encode_doc(&v.document)));
    }
    m.insert("VersionId".into(), json!(v.id));
    m.insert("IsDefaultVersion".into(), json!(v.id == default));
    m.insert("CreateDate".into(), util::ts(v.created));
    Value::Object(m)
}

fn no_version(arn: &str, id: &str) -> ApiError {
    no_such_entity(format!(
        "Policy {arn} version {id} does not exist or is not attachable."
    ))
}

fn aws_version(p: &AwsPolicy) -> VersionRec {
    VersionRec {
        id: p.default_version.clone(),
        document: p.document.clone(),
        created: p.updated,
    }
}

pub fn create_policy_version(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let mut p = local(c, arn, "CreatePolicyVersion")?;
    let doc = req_str(input, "PolicyDocument")?;
    check_managed_doc(doc)?;
    if p.versions.len() >= MAX_VERSIONS {
        return Err(limit_exceeded(
            "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
        ));
    }
    let now = util::now();
    let v = VersionRec {
        id: format!("v{}", p.next_version),
        document: doc.to_string(),
        created: now,
    };
    p.next_version += 1;
    if util::opt_bool(input, "SetAsDefault").unwrap_or(false) {
        p.default_version = v.id.clone();
        p.updated = now;
    }
    p.versions.push(v.clone());
    util::put(c.store, &c.scope, POLICIES, &model::key(&p.name), &p)?;
    Ok(json!({"PolicyVersion": version_value(&v, &p.default_version, false)}))
}

pub fn get_policy_version(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let id = req_str(input, "VersionId")?;
    let (v, default) = match must_resolve(c, arn)? {
        PolicyRef::Aws(p) if p.default_version == id => (aws_version(p), p.default_version.clone()),
        PolicyRef::Aws(_) => return Err(no_version(arn, id)),
        PolicyRef::Local(p) => {
            let v = p
                .versions
                .iter()
                .find(|v| v.id == id)
                .cloned()
                .ok_or_else(|| no_version(arn, id))?;
            (v, p.default_version.clone())
        }
    };
    Ok(json!({"PolicyVersion": version_value(&v, &default, true)}))
}

pub fn list_policy_versions(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let (versions, default) = match must_resolve(c, arn)? {
        PolicyRef::Aws(p) => (vec![aws_version(p)], p.default_version.clone()),
        PolicyRef::Local(p) => (p.versions.clone(), p.default_version.clone()),
    };
    let mut items: Vec<(String, Value)> = versions
        .iter()
        .map(|v| {
            let n: u32 = v.id.trim_start_matches('v').parse().unwrap_or(0);
            (
                format!("{:010}", u32::MAX - n),
                version_value(v, &default, false),
            )
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, marker) = paginate("ListPolicyVersions", items, input)?;
    Ok(list_output("Versions", page, marker))
}

pub fn delete_policy_version(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let id = req_str(input, "VersionId")?;
    let mut p = local(c, arn, "DeletePolicyVersion")?;
    if !p.versions.iter().any(|v| v.id == id) {
        return Err(no_version(arn, id));
    }
    if p.default_version == id {
        return Err(delete_conflict(
            "Cannot delete the default version of a policy.",
        ));
    }
    p.versions.retain(|v| v.id != id);
    util::put(c.store, &c.scope, POLICIES, &model::key(&p.name), &p)?;
    Ok(json!({}))
}

pub fn set_default_policy_version(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let id = req_str(input, "VersionId")?;
    let mut p = local(c, arn, "SetDefaultPolicyVersion")?;
    if !p.versions.iter().any(|v| v.id == id) {
        return Err(no_version(arn, id));
    }
    p.default_version = id.to_string();
    p.updated = util::now();
    util::put(c.store, &c.scope, POLICIES, &model::key(&p.name), &p)?;
    Ok(json!({}))
}

// ---- entities -------------------------------------------------------------------------------

/// A user, group or role, for the operations that treat them alike.
pub enum Entity {
    User(UserRec),
    Group(GroupRec),
    Role(RoleRec),
}

impl Entity {
    pub fn load(c: &Ctx, kind: Kind, name: &str) -> Result<Entity, ApiError> {
        Ok(match kind {
            Kind::User => Entity::User(model::user(c, name)?),
            Kind::Group => Entity::Group(model::group(c, name)?),
            Kind::Role => Entity::Role(model::role(c, name)?),
        })
    }
    pub fn name(&self) -> &str {
        match self {
            Entity::User(u) => &u.name,
            Entity::Group(g) => &g.name,
            Entity::Role(r) => &r.name,
        }
    }
    pub fn attached(&mut self) -> &mut Vec<String> {
        match self {
            Entity::User(u) => &mut u.attached,
            Entity::Group(g) => &mut g.attached,
            Entity::Role(r) => &mut r.attached,
        }
    }
    pub fn inline(&mut self) -> &mut BTreeMap<String, String> {
        match self {
            Entity::User(u) => &mut u.inline,
            Entity::Group(g) => &mut g.inline,
            Entity::Role(r) => &mut r.inline,
        }
    }
    pub fn save(&self, c: &Ctx) -> Result<(), ApiError> {
        match self {
            Entity::User(u) => model::save_user(c, u),
            Entity::Group(g) => model::save_group(c, g),
            Entity::Role(r) => model::save_role(c, r),
        }
    }
}

fn quota_name(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "PoliciesPerUser",
        Kind::Group => "PoliciesPerGroup",
        Kind::Role => "PoliciesPerRole",
    }
}

pub fn attach(c: &Ctx, input: &Value, kind: Kind) -> Result<Value, ApiError> {
    let name = req_str(input, kind.member())?;
    let arn = req_str(input, "PolicyArn")?;
    let mut e = Entity::load(c, kind, name)?;
    must_resolve(c, arn)?;
    if e.attached().iter().any(|a| a == arn) {
        return Ok(json!({}));
    }
    if e.attached().len() >= MAX_ATTACHED {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for {}: {MAX_ATTACHED}",
            quota_name(kind)
        )));
    }
    e.attached().push(arn.to_string());
    e.save(c)?;
    Ok(json!({}))
}

pub fn detach(c: &Ctx, input: &Value, kind: Kind) -> Result<Value, ApiError> {
    let name = req_str(input, kind.member())?;
    let arn = req_str(input, "PolicyArn")?;
    let mut e = Entity::load(c, kind, name)?;
    let before = e.attached().len();
    e.attached().retain(|a| a != arn);
    if e.attached().len() == before {
        return Err(no_such_entity(format!("Policy {arn} was not found.")));
    }
    e.save(c)?;
    Ok(json!({}))
}

pub fn list_attached(c: &Ctx, input: &Value, kind: Kind) -> Result<Value, ApiError> {
    let name = req_str(input, kind.member())?;
    let prefix = util::path_prefix(input)?;
    let mut e = Entity::load(c, kind, name)?;
    let mut items = Vec::new();
    for (i, arn) in e.attached().clone().iter().enumerate() {
        if let Some(p) = resolve(c, arn)? {
            if p.path().starts_with(&prefix) {
                items.push((
                    format!("{i:05}"),
                    json!({"PolicyName": p.name(), "PolicyArn": p.arn()}),
                ));
            }
        }
    }
    let op = match kind {
        Kind::User => "ListAttachedUserPolicies",
        Kind::Group => "ListAttachedGroupPolicies",
        Kind::Role => "ListAttachedRolePolicies",
    };
    let (page, marker) = paginate(op, items, input)?;
    Ok(list_output("AttachedPolicies", page, marker))
}

pub fn list_entities_for_policy(c: &Ctx, input: &Value) -> Result<Value, ApiError> {
    let arn = req_str(input, "PolicyArn")?;
    let p = must_resolve(c, arn)?;
    let filter = util::opt_str(input, "EntityFilter");
    let prefix = util::path_prefix(input)?;
    if util::opt_str(input, "PolicyUsageFilter") == Some("PermissionsBoundary") {
        // Boundary users are not listed here; only attachments are tracked per entity.
        return Ok(
            json!({"PolicyGroups": [], "PolicyUsers": [], "PolicyRoles": [], "IsTruncated": false}),
        );
    }
    let kind_ok = |k: Kind| match filter {
        None | Some("LocalManagedPolicy") | Some("AWSManagedPolicy") => !matches!(
            (filter, &p),
            (Some("LocalManagedPolicy"), PolicyRef::Aws(_))
                | (Some("AWSManagedPolicy"), PolicyRef::Local(_))
        ),
        Some("User") => k == Kind::User,
        Some("Group") => k == Kind::Group,
        Some("Role") => k == Kind::Role,
        Some(_) => false,
    };
    let mut items = Vec::new();
    for a in usage_of(c, arn)?.attached {
        if !kind_ok(a.kind) || !a.path.starts_with(&prefix) {
            continue;
        }
        let v = match a.kind {
            Kind::User => json!({"UserName": a.name, "UserId": a.id}),
            Kind::Group => json!({"GroupName": a.name, "GroupId": a.id}),
            Kind::Role => json!({"RoleName": a.name, "RoleId": a.id}),
        };
        items.push((format!("{}/{}", a.kind.word(), model::key(&a.name)), v));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, marker) = paginate("ListEntitiesForPolicy", items, input)?;
    let (mut groups, mut users, mut roles) = (Vec::new(), Vec::new(), Vec::new());
    for v in page {
        if v.get("UserName").is_some() {
            users.push(v);
        } else if v.get("GroupName").is_some() {
            groups.push(v);
        } else {
            roles.push(v);
        }
    }
    let mut out = list_output("PolicyGroups", groups, marker);
    if let Value::Object(m) = &mut out {
        m.insert("PolicyUsers".into(), Value::Array(users));
        m.insert("PolicyRoles".into(), Value::Array(roles));
    }
    Ok(out)
}

// ---- inline policies ------------------------------------------------------------------------

pub fn put_inline(c: &Ctx, input: &Value, kind: Kind) -> Result<Value, ApiError> {
    let name = req_str(input, kind.member())?;
    let policy = req_str(input, "PolicyName")?;
    check_name(policy, "PolicyName", 128)?;
    let doc = req_str(input, "PolicyDocument")?;
    let mut e = Entity::load(c, kind, name)?;
    policy_doc::validate(doc, DocKind::Identity)?;
    let (quota, quota_name) = kind.inline_quota();
    let total: usize = e
        .inline()
        .iter()
        .filter(|(k, _)| k.as_str() != policy)
        .map(|(_, d)| util::policy_size(d))
        .sum::<usize>()
        + util::policy_size(doc);
    if total > quota {
        return Err(limit_exceeded(format!(
            "Maximum policy size of {quota} bytes exceeded for {} {}",
            kind.word(),
            e.name()
        ))
        .with_field("Quota", json!(quota_name)));
    }
    e.inline().insert(policy.to_string(), doc.to_string());
    e.save(c)?;
    Ok(json!({}))
}

fn no_inline(kind: Kind, policy: &str) -> ApiError {
    no_such_entity(format!(
        "The {} policy with name {policy} cannot be found.",
        kind.word()
    ))
}

pub fn get_inline(c: &Ctx, input: &Value, kind: Kind) -> Result<Value, ApiError> {
    let name = req_str(input, kind.member())?;
    let policy = req_str(input, "PolicyName")?;
    let mut e = Entity::load(c, kind, name)?;
    let doc = e
        .inline()
        .get(policy)
        .cloned()
        .ok_or_else(|| no_inline(kind, policy))?;
    let mut m = Map::new();
    m.insert(kind.member().into(), json!(e.name()));
    m.insert("PolicyName".into(), json!(policy));
    m.insert("PolicyDocument".into(), json!(encode_doc(&doc)));
    Ok(Value::Object(m))
}

pub fn delete_inline(c: &Ctx, input: &Value, kind: Kind) -> Result<Value, ApiError> {
    let name = req_str(input, kind.member())?;
    let policy = req_str(input, "PolicyName")?;
    let mut e = Entity::load(c, kind, name)?;
    if e.inline().remove(policy).is_none() {
        return Err(no_inline(kind, policy));
    }
    e.save(c)?;
    Ok(json!({}))
}

pub fn list_inline(c: &Ctx, input: &Value, kind: Kind) -> Result<Value, ApiError> {
    let name = req_str(input, kind.member())?;
    let mut e = Entity::load(c, kind, name)?;
    let items = e.inline().keys().map(|k| (k.clone(), json!(k))).collect();
    let op = match kind {
        Kind::User => "ListUserPolicies",
        Kind::Group => "ListGroupPolicies",
        Kind::Role => "ListRolePolicies",
    };
    let (page, marker) = paginate(op, items, input)?;
    Ok(list_output("PolicyNames", page, marker))
}
