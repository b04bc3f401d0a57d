//! Read-only views over IAM state for other parts of ferrocloud: the policies that apply to a
//! principal (for enforcement) and the account summary.

use super::model::{self, GroupRec, PolicyRec, RoleRec, UserRec};
use super::policies::resolve;
use super::{util, Ctx};
use crate::RequestContext;
use fc_protocol::ApiError;
use fc_store::{Scope, Store};
use serde_json::{json, Value};

/// What an ARN names, as far as IAM policies go.
enum Subject<'a> {
    User(&'a str),
    Role(&'a str),
    Other,
}

fn subject(arn: &str) -> Subject<'_> {
    let Some(resource) = arn.splitn(6, ':').nth(5) else {
        return Subject::Other;
    };
    if let Some(rest) = resource.strip_prefix("user/") {
        return Subject::User(rest.rsplit('/').next().unwrap_or(rest));
    }
    if let Some(rest) = resource.strip_prefix("role/") {
        return Subject::Role(rest.rsplit('/').next().unwrap_or(rest));
    }
    if let Some(rest) = resource.strip_prefix("assumed-role/") {
        return Subject::Role(rest.split('/').next().unwrap_or(rest));
    }
    Subject::Other
}

/// The identity policy documents (JSON text) that apply to `principal_arn` in `account`: its
/// inline policies and the default versions of its attached managed policies, plus, for a
/// user, those of its groups. An assumed-role ARN (`arn:aws:sts::…:assumed-role/R/s`) yields
/// role `R`'s. The root user and unknown principals have none (root is not governed by
/// identity policies).
pub fn policies_for_principal(
    store: &dyn Store,
    account: &str,
    principal_arn: &str,
) -> Result<Vec<String>, ApiError> {
    let req = RequestContext::for_account(account, "us-east-1", "iam", "policies_for_principal");
    let c = Ctx {
        store,
        scope: Scope::global(account),
        req: &req,
    };
    let mut docs = Vec::new();
    let mut attached: Vec<String> = Vec::new();
    match subject(principal_arn) {
        Subject::User(name) => {
            let Some(u): Option<UserRec> = model::load_user(&c, name)? else {
                return Ok(docs);
            };
            docs.extend(u.inline.values().cloned());
            attached.extend(u.attached.iter().cloned());
            for g in &u.groups {
                if let Some(g) = model::load_group(&c, g)? {
                    let g: GroupRec = g;
                    docs.extend(g.inline.values().cloned());
                    attached.extend(g.attached.iter().cloned());
                }
            }
        }
        Subject::Role(name) => {
            let Some(r): Option<RoleRec> = model::load_role(&c, name)? else {
                return Ok(docs);
            };
            docs.extend(r.inline.values().cloned());
            attached.extend(r.attached.iter().cloned());
        }
        Subject::Other => return Ok(docs),
    }
    let mut seen = std::collections::HashSet::new();
    for arn in attached {
        if !seen.insert(arn.clone()) {
            continue;
        }
        if let Some(p) = resolve(&c, &arn)? {
            docs.push(p.document());
        }
    }
    Ok(docs)
}

/// `GetAccountSummary`: entity counts and the quotas ferrocloud applies.
pub fn get_account_summary(c: &Ctx) -> Result<Value, ApiError> {
    let users = util::scan_all::<UserRec>(c.store, &c.scope, model::USERS)?;
    let groups = util::scan_all::<GroupRec>(c.store, &c.scope, model::GROUPS)?.len();
    let roles = util::scan_all::<RoleRec>(c.store, &c.scope, model::ROLES)?.len();
    let pols = util::scan_all::<PolicyRec>(c.store, &c.scope, model::POLICIES)?;
    let profiles = util::scan_all::<model::ProfileRec>(c.store, &c.scope, model::PROFILES)?.len();
    let versions: usize = pols.iter().map(|(_, p)| p.versions.len()).sum();
    let root_keys = !model::account(c)?.root_keys.is_empty();
    Ok(json!({"SummaryMap": {
        "Users": users.len(),
        "UsersQuota": 5000,
        "Groups": groups,
        "GroupsQuota": 300,
        "Roles": roles,
        "RolesQuota": 1000,
        "Policies": pols.len(),
        "PoliciesQuota": 1500,
        "PolicyVersionsInUse": versions,
        "PolicyVersionsInUseQuota": 10000,
        "VersionsPerPolicyQuota": 5,
        "PolicySizeQuota": 6144,
        "InstanceProfiles": profiles,
        "InstanceProfilesQuota": 1000,
        "AccessKeysPerUserQuota": 2,
        "AccountAccessKeysPresent": i32::from(root_keys),
        "AccountMFAEnabled": 0,
        "AttachedPoliciesPerUserQuota": 10,
        "AttachedPoliciesPerGroupQuota": 10,
        "AttachedPoliciesPerRoleQuota": 10,
        "GroupsPerUserQuota": 10,
        "UserPolicySizeQuota": 2048,
        "GroupPolicySizeQuota": 5120,
        "RolePolicySizeQuota": 10240,
        "AssumeRolePolicySizeQuota": 2048,
        "MFADevices": 0,
        "MFADevicesInUse": 0,
        "Providers": 0,
        "ServerCertificates": 0,
        "ServerCertificatesQuota": 20,
        "SigningCertificatesPerUserQuota": 2,
        "AccountSigningCertificatesPresent": 0,
        "AccountPasswordPresent": 0,
        "GlobalEndpointTokenVersion": 1,
    }}))
}
