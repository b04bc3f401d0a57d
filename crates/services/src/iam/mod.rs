//! IAM: users, access keys, groups, roles, managed and inline policies (with the AWS-managed
//! policies every account sees), instance profiles. State is account-wide
//! (`Scope::global(account)`); access keys are also recorded in the credentials index
//! ([`crate::identity`]) so requests signed with them resolve to their user.
//!
//! Also here: [`policies_for_principal`], the policy documents that apply to a user or role, for
//! enforcement. Must not live here: policy evaluation (fc-auth), STS sessions (`sts`).

// Handlers return `ApiError` by value, as the `Service` trait does.
#![allow(clippy::result_large_err)]

mod access_keys;
mod enforce;
mod groups;
mod instance_profiles;
pub(crate) mod managed;
pub(crate) mod model;
mod policies;
pub(crate) mod policy_doc;
mod roles;
mod users;
pub(crate) mod util;

#[cfg(test)]
mod tests;

use crate::{RequestContext, Service};
use async_trait::async_trait;
use fc_protocol::ApiError;
use fc_store::{Scope, Store};
use serde_json::Value;
use std::sync::{Arc, Mutex};

pub use enforce::policies_for_principal;
pub(crate) use roles::{find_role, record_role_use};

/// Serializes IAM writes (handlers read-modify-write several records; STS records role use).
static WRITE_LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn write_lock() -> std::sync::MutexGuard<'static, ()> {
    WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The IAM service.
pub struct Iam {
    store: Arc<dyn Store>,
}

impl Iam {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Iam { store }
    }

    fn call_sync(&self, ctx: &RequestContext, input: &Value) -> Result<Value, ApiError> {
        let _guard = write_lock();
        let c = Ctx {
            store: self.store.as_ref(),
            scope: Scope::global(&ctx.account),
            req: ctx,
        };
        let op = ctx.operation.as_str();
        match op {
            // Users
            "CreateUser" => users::create_user(&c, input),
            "GetUser" => users::get_user(&c, input),
            "ListUsers" => users::list_users(&c, input),
            "UpdateUser" => users::update_user(&c, input),
            "DeleteUser" => users::delete_user(&c, input),
            "TagUser" => users::tag_user(&c, input),
            "UntagUser" => users::untag_user(&c, input),
            "ListUserTags" => users::list_user_tags(&c, input),
            "PutUserPermissionsBoundary" => users::put_user_permissions_boundary(&c, input),
            "DeleteUserPermissionsBoundary" => users::delete_user_permissions_boundary(&c, input),
            // Access keys
            "CreateAccessKey" => access_keys::create_access_key(&c, input),
            "ListAccessKeys" => access_keys::list_access_keys(&c, input),
            "UpdateAccessKey" => access_keys::update_access_key(&c, input),
            "DeleteAccessKey" => access_keys::delete_access_key(&c, input),
            "GetAccessKeyLastUsed" => access_keys::get_access_key_last_used(&c, input),
            // Groups
            "CreateGroup" => groups::create_group(&c, input),
            "GetGroup" => groups::get_group(&c, input),
            "ListGroups" => groups::list_groups(&c, input),
            "UpdateGroup" => groups::update_group(&c, input),
            "DeleteGroup" => groups::delete_group(&c, input),
            "AddUserToGroup" => groups::add_user_to_group(&c, input),
            "RemoveUserFromGroup" => groups::remove_user_from_group(&c, input),
            "ListGroupsForUser" => groups::list_groups_for_user(&c, input),
            // Roles
            "CreateRole" => roles::create_role(&c, input),
            "GetRole" => roles::get_role(&c, input),
            "ListRoles" => roles::list_roles(&c, input),
            "UpdateRole" => roles::update_role(&c, input),
            "UpdateRoleDescription" => roles::update_role_description(&c, input),
            "UpdateAssumeRolePolicy" => roles::update_assume_role_policy(&c, input),
            "DeleteRole" => roles::delete_role(&c, input),
            "TagRole" => roles::tag_role(&c, input),
            "UntagRole" => roles::untag_role(&c, input),
            "ListRoleTags" => roles::list_role_tags(&c, input),
            "PutRolePermissionsBoundary" => roles::put_role_permissions_boundary(&c, input),
            "DeleteRolePermissionsBoundary" => roles::delete_role_permissions_boundary(&c, input),
            "CreateServiceLinkedRole" => roles::create_service_linked_role(&c, input),
            "DeleteServiceLinkedRole" => roles::delete_service_linked_role(&c, input),
            "GetServiceLinkedRoleDeletionStatus" => {
                roles::get_service_linked_role_deletion_status(&c, input)
            }
            // Managed policies
            "CreatePolicy" => policies::create_policy(&c, input),
            "GetPolicy" => policies::get_policy(&c, input),
            "ListPolicies" => policies::list_policies(&c, input),
            "DeletePolicy" => policies::delete_policy(&c, input),
            "TagPolicy" => policies::tag_policy(&c, input),
            "UntagPolicy" => policies::untag_policy(&c, input),
            "ListPolicyTags" => policies::list_policy_tags(&c, input),
            "CreatePolicyVersion" => policies::create_policy_version(&c, input),
            "GetPolicyVersion" => policies::get_policy_version(&c, input),
            "ListPolicyVersions" => policies::list_policy_versions(&c, input),
            "DeletePolicyVersion" => policies::delete_policy_version(&c, input),
            "SetDefaultPolicyVersion" => policies::set_default_policy_version(&c, input),
            "AttachUserPolicy" => policies::attach(&c, input, model::Kind::User),
            "AttachGroupPolicy" => policies::attach(&c, input, model::Kind::Group),
            "AttachRolePolicy" => policies::attach(&c, input, model::Kind::Role),
            "DetachUserPolicy" => policies::detach(&c, input, model::Kind::User),
            "DetachGroupPolicy" => policies::detach(&c, input, model::Kind::Group),
            "DetachRolePolicy" => policies::detach(&c, input, model::Kind::Role),
            "ListAttachedUserPolicies" => policies::list_attached(&c, input, model::Kind::User),
            "ListAttachedGroupPolicies" => policies::list_attached(&c, input, model::Kind::Group),
            "ListAttachedRolePolicies" => policies::list_attached(&c, input, model::Kind::Role),
            "ListEntitiesForPolicy" => policies::list_entities_for_policy(&c, input),
            // Inline policies
            "PutUserPolicy" => policies::put_inline(&c, input, model::Kind::User),
            "PutGroupPolicy" => policies::put_inline(&c, input, model::Kind::Group),
            "PutRolePolicy" => policies::put_inline(&c, input, model::Kind::Role),
            "GetUserPolicy" => policies::get_inline(&c, input, model::Kind::User),
            "GetGroupPolicy" => policies::get_inline(&c, input, model::Kind::Group),
            "GetRolePolicy" => policies::get_inline(&c, input, model::Kind::Role),
            "DeleteUserPolicy" => policies::delete_inline(&c, input, model::Kind::User),
            "DeleteGroupPolicy" => policies::delete_inline(&c, input, model::Kind::Group),
            "DeleteRolePolicy" => policies::delete_inline(&c, input, model::Kind::Role),
            "ListUserPolicies" => policies::list_inline(&c, input, model::Kind::User),
            "ListGroupPolicies" => policies::list_inline(&c, input, model::Kind::Group),
            "ListRolePolicies" => policies::list_inline(&c, input, model::Kind::Role),
            // Instance profiles
            "CreateInstanceProfile" => instance_profiles::create_instance_profile(&c, input),
            "GetInstanceProfile" => instance_profiles::get_instance_profile(&c, input),
            "ListInstanceProfiles" => instance_profiles::list_instance_profiles(&c, input),
            "DeleteInstanceProfile" => instance_profiles::delete_instance_profile(&c, input),
            "AddRoleToInstanceProfile" => instance_profiles::add_role(&c, input),
            "RemoveRoleFromInstanceProfile" => instance_profiles::remove_role(&c, input),
            "ListInstanceProfilesForRole" => instance_profiles::list_for_role(&c, input),
            "TagInstanceProfile" => instance_profiles::tag_instance_profile(&c, input),
            "UntagInstanceProfile" => instance_profiles::untag_instance_profile(&c, input),
            "ListInstanceProfileTags" => instance_profiles::list_instance_profile_tags(&c, input),
            // Account
            "ListAccountAliases" => {
                Ok(serde_json::json!({"AccountAliases": [], "IsTruncated": false}))
            }
            "GetAccountSummary" => enforce::get_account_summary(&c),
            _ => Err(ApiError::not_implemented("iam", op)),
        }
    }
}

/// What every handler works with.
pub(crate) struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub scope: Scope,
    pub req: &'a RequestContext,
}

impl Ctx<'_> {
    pub fn account(&self) -> &str {
        &self.req.account
    }
}

#[async_trait]
impl Service for Iam {
    fn name(&self) -> &'static str {
        "iam"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        self.call_sync(ctx, &input)
    }
}
