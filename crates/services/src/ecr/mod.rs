//! Amazon ECR (JSON 1.1): repositories, images, layer uploads, authorization tokens,
//! repository policies and lifecycle policies that really expire images.
//!
//! The records live in fc-store through [`fc_images::repos`], shared with the OCI registry
//! (fc-registry) at `/v2/`: what is pushed there is what `DescribeImages` lists and a
//! `PutImage` here is what a pull gets. Content lives in the [`ImageStore`].
//!
//! Permissions: calls by principals other than the account root are checked against their
//! IAM identity policies (`ecr:<Operation>`), and repository operations against the
//! repository policy as well (an explicit deny there refuses even the root).
//!
//! Tables of this module beside the shared ones: `ecr.uploads` (`<uploadId>` ->
//! [`ApiUpload`]) and `ecr.previews` (`<repo>` -> lifecycle preview).

#![allow(clippy::result_large_err)]

mod images;
mod lifecycle;
mod repositories;
#[cfg(test)]
mod tests;

use crate::common::store_error;
use crate::{RequestContext, Service};
use async_trait::async_trait;
use fc_images::repos::{self, RepoError, Repository};
use fc_images::ImageStore;
use fc_protocol::ApiError;
use fc_store::{Scope, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

pub use lifecycle::LifecycleReport;

const UPLOADS: &str = "ecr.uploads";
const PREVIEWS: &str = "ecr.previews";

/// The ECR service.
pub struct Ecr {
    store: Arc<dyn Store>,
    images: Arc<ImageStore>,
}

/// A layer upload started with `InitiateLayerUpload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApiUpload {
    repo: String,
    next_byte: u64,
}

impl Ecr {
    pub fn new(store: Arc<dyn Store>, images: Arc<ImageStore>) -> Self {
        Ecr { store, images }
    }

    fn scope(ctx: &RequestContext) -> Scope {
        Scope::new(&ctx.account, &ctx.region)
    }

    /// The account a request names (`registryId`, default the caller's).
    fn check_registry(ctx: &RequestContext, input: &Value) -> Result<(), ApiError> {
        if let Some(r) = input.get("registryId").and_then(Value::as_str) {
            if r != ctx.account {
                return Err(ApiError::client(
                    "InvalidParameterException",
                    format!("Invalid parameter at 'registryId' failed to satisfy constraint: registry {r} is not the caller's registry"),
                ));
            }
        }
        Ok(())
    }

    fn repo(&self, ctx: &RequestContext, name: &str) -> Result<Repository, ApiError> {
        repos::require_repo(self.store.as_ref(), &Self::scope(ctx), name).map_err(repo_error)
    }

    /// The repository named in the input, after the permission check of the operation.
    fn repo_for(&self, ctx: &RequestContext, input: &Value) -> Result<Repository, ApiError> {
        Self::check_registry(ctx, input)?;
        let name = str_member(input, "repositoryName")?;
        let repo = self.repo(ctx, name)?;
        self.authorize(ctx, Some(&repo))?;
        Ok(repo)
    }

    /// `ecr:<Operation>` for the caller, on `repo` (with its policy) or on `*`.
    fn authorize(&self, ctx: &RequestContext, repo: Option<&Repository>) -> Result<(), ApiError> {
        let action = format!("ecr:{}", ctx.operation);
        let root = ctx.principal.arn == format!("arn:aws:iam::{}:root", ctx.account);
        let docs = if root {
            None
        } else {
            Some(crate::iam::policies_for_principal(
                self.store.as_ref(),
                &ctx.account,
                &ctx.principal.arn,
            )?)
        };
        let placeholder;
        let target = match repo {
            Some(r) => r,
            None => {
                placeholder = Repository {
                    v: 1,
                    name: "*".into(),
                    registry_id: ctx.account.clone(),
                    region: ctx.region.clone(),
                    created_at: 0.0,
                    image_tag_mutability: String::new(),
                    tag_mutability_exclusions: Vec::new(),
                    scan_on_push: false,
                    encryption_type: String::new(),
                    kms_key: None,
                    tags: Vec::new(),
                    policy: None,
                    lifecycle_policy: None,
                    lifecycle_updated: None,
                };
                &placeholder
            }
        };
        repos::check_access(
            docs.as_deref(),
            &ctx.principal.arn,
            &ctx.account,
            &action,
            target,
        )
        .map_err(|m| ApiError::new(400, "AccessDeniedException", m))
    }
}

fn repo_error(e: RepoError) -> ApiError {
    match e {
        RepoError::RepositoryNotFound { .. } => {
            ApiError::client("RepositoryNotFoundException", e.to_string())
        }
        RepoError::TagImmutable { .. } => {
            ApiError::client("ImageTagAlreadyExistsException", e.to_string())
        }
        RepoError::ImageNotFound { .. } => {
            ApiError::client("ImageNotFoundException", e.to_string())
        }
        RepoError::Store(e) => store_error(e),
    }
}

fn str_member<'a>(input: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    input
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing("InvalidParameterException", name))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterException", message)
}

/// `host:port` of the endpoint the client used.
fn registry_host(ctx: &RequestContext) -> String {
    ctx.endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

#[async_trait]
impl Service for Ecr {
    fn name(&self) -> &'static str {
        "ecr"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        let ecr = Ecr {
            store: self.store.clone(),
            images: self.images.clone(),
        };
        let ctx = ctx.clone();
        // Store and disk work happens off the async threads.
        tokio::task::spawn_blocking(move || ecr.dispatch(&ctx, input))
            .await
            .unwrap_or_else(|e| Err(ApiError::internal(format!("ecr handler failed: {e}"))))
    }
}

impl Ecr {
    fn dispatch(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        let e = self;
        match ctx.operation.as_str() {
            "CreateRepository" => e.create_repository(ctx, input),
            "DescribeRepositories" => e.describe_repositories(ctx, input),
            "DeleteRepository" => e.delete_repository(ctx, input),
            "PutImageTagMutability" => e.put_image_tag_mutability(ctx, input),
            "PutImageScanningConfiguration" => e.put_image_scanning_configuration(ctx, input),
            "TagResource" => e.tag_resource(ctx, input),
            "UntagResource" => e.untag_resource(ctx, input),
            "ListTagsForResource" => e.list_tags_for_resource(ctx, input),
            "SetRepositoryPolicy" => e.set_repository_policy(ctx, input),
            "GetRepositoryPolicy" => e.get_repository_policy(ctx, input),
            "DeleteRepositoryPolicy" => e.delete_repository_policy(ctx, input),
            "DescribeRegistry" => e.describe_registry(ctx),
            "GetAuthorizationToken" => e.get_authorization_token(ctx, input),
            "DescribeImages" => e.describe_images(ctx, input),
            "ListImages" => e.list_images(ctx, input),
            "BatchGetImage" => e.batch_get_image(ctx, input),
            "PutImage" => e.put_image(ctx, input),
            "BatchDeleteImage" => e.batch_delete_image(ctx, input),
            "BatchCheckLayerAvailability" => e.batch_check_layer_availability(ctx, input),
            "GetDownloadUrlForLayer" => e.get_download_url_for_layer(ctx, input),
            "InitiateLayerUpload" => e.initiate_layer_upload(ctx, input),
            "UploadLayerPart" => e.upload_layer_part(ctx, input),
            "CompleteLayerUpload" => e.complete_layer_upload(ctx, input),
            "PutLifecyclePolicy" => e.put_lifecycle_policy(ctx, input),
            "GetLifecyclePolicy" => e.get_lifecycle_policy(ctx, input),
            "DeleteLifecyclePolicy" => e.delete_lifecycle_policy(ctx, input),
            "StartLifecyclePolicyPreview" => e.start_lifecycle_policy_preview(ctx, input),
            "GetLifecyclePolicyPreview" => e.get_lifecycle_policy_preview(ctx, input),
            op => Err(ApiError::not_implemented("ecr", op)),
        }
    }
}
