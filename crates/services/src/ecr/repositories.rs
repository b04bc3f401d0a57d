//! Repositories: create, describe, delete (with force), tag mutability, scanning
//! configuration, resource tags and repository policies.

use super::*;
use fc_protocol::value::epoch_value;
use serde_json::json;

const MAX_RESULTS: usize = 1000;

fn valid_repo_name(name: &str) -> bool {
    (2..=256).contains(&name.len())
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
        })
}

fn tags_in(input: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    if let Some(list) = input.get("tags").and_then(Value::as_array) {
        for t in list {
            let k = t
                .get("Key")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tag without Key"))?;
            let v = t.get("Value").and_then(Value::as_str).unwrap_or("");
            out.push((k.to_string(), v.to_string()));
        }
    }
    Ok(out)
}

fn merge_tags(into: &mut Vec<(String, String)>, new: Vec<(String, String)>) {
    for (k, v) in new {
        match into.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => into.push((k, v)),
        }
    }
}

impl Ecr {
    pub(super) fn repository_value(ctx: &RequestContext, r: &Repository) -> Value {
        let mut v = json!({
            "repositoryArn": r.arn(),
            "registryId": r.registry_id,
            "repositoryName": r.name,
            "repositoryUri": format!("{}/{}", registry_host(ctx), r.name),
            "createdAt": epoch_value(r.created_at),
            "imageTagMutability": r.image_tag_mutability,
            "imageScanningConfiguration": {"scanOnPush": r.scan_on_push},
            "encryptionConfiguration": {"encryptionType": r.encryption_type},
        });
        if let Some(k) = &r.kms_key {
            v["encryptionConfiguration"]["kmsKey"] = json!(k);
        }
        if !r.tag_mutability_exclusions.is_empty() {
            v["imageTagMutabilityExclusionFilters"] = json!(r.tag_mutability_exclusions);
        }
        v
    }

    pub(super) fn create_repository(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        Self::check_registry(ctx, &input)?;
        self.authorize(ctx, None)?;
        let name = str_member(&input, "repositoryName")?;
        if !valid_repo_name(name) {
            return Err(invalid(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''"
            ));
        }
        if name == fc_images::userland::REPO {
            return Err(invalid(format!(
                "repository name {name} is reserved for a built-in image"
            )));
        }
        let mutability = input
            .get("imageTagMutability")
            .and_then(Value::as_str)
            .unwrap_or("MUTABLE")
            .to_string();
        let enc = input.get("encryptionConfiguration");
        let encryption_type = enc
            .and_then(|e| e.get("encryptionType"))
            .and_then(Value::as_str)
            .unwrap_or("AES256")
            .to_string();
        let kms_key = enc
            .and_then(|e| e.get("kmsKey"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if encryption_type == "AES256" && kms_key.is_some() {
            return Err(invalid("kmsKey can only be given with encryptionType KMS"));
        }
        let kms_key = if encryption_type.starts_with("KMS") && kms_key.is_none() {
            Some(format!(
                "arn:aws:kms:{}:{}:alias/aws/ecr",
                ctx.region, ctx.account
            ))
        } else {
            kms_key
        };
        let repo = Repository {
            v: 1,
            name: name.to_string(),
            registry_id: ctx.account.clone(),
            region: ctx.region.clone(),
            created_at: fc_protocol::value::now_secs().floor(),
            image_tag_mutability: mutability,
            tag_mutability_exclusions: input
                .get("imageTagMutabilityExclusionFilters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            scan_on_push: input
                .pointer("/imageScanningConfiguration/scanOnPush")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            encryption_type,
            kms_key,
            tags: tags_in(&input)?,
            policy: None,
            lifecycle_policy: None,
            lifecycle_updated: None,
        };
        let scope = Self::scope(ctx);
        let _g = repos::write_lock();
        if repos::get_repo(self.store.as_ref(), &scope, name)
            .map_err(repo_error)?
            .is_some()
        {
            return Err(ApiError::client(
                "RepositoryAlreadyExistsException",
                format!(
                    "The repository with name '{name}' already exists in the registry with id '{}'",
                    ctx.account
                ),
            ));
        }
        repos::put_repo(self.store.as_ref(), &scope, &repo).map_err(repo_error)?;
        Ok(json!({"repository": Self::repository_value(ctx, &repo)}))
    }

    pub(super) fn describe_repositories(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        Self::check_registry(ctx, &input)?;
        let scope = Self::scope(ctx);
        let store = self.store.as_ref();
        if let Some(names) = input.get("repositoryNames").and_then(Value::as_array) {
            let mut out = Vec::new();
            for n in names {
                let n = n.as_str().unwrap_or_default();
                let r = self.repo(ctx, n)?;
                self.authorize(ctx, Some(&r))?;
                out.push(Self::repository_value(ctx, &r));
            }
            return Ok(json!({"repositories": out}));
        }
        self.authorize(ctx, None)?;
        let max = input
            .get("maxResults")
            .and_then(Value::as_u64)
            .map_or(MAX_RESULTS, |m| m.clamp(1, 1000) as usize);
        let token_scope = format!("ecr:DescribeRepositories:{}", ctx.account);
        let after = match input.get("nextToken").and_then(Value::as_str) {
            Some(t) => Some(
                fc_types::page::decode(&token_scope, t)
                    .map_err(|_| invalid("Invalid parameter at 'nextToken'"))?,
            ),
            None => None,
        };
        let (list, more) =
            repos::list_repos(store, &scope, after.as_deref(), max).map_err(repo_error)?;
        let mut v = json!({"repositories": list.iter().map(|r| Self::repository_value(ctx, r)).collect::<Vec<_>>()});
        if more {
            if let Some(last) = list.last() {
                v["nextToken"] = json!(fc_types::page::encode(&token_scope, &last.name));
            }
        }
        Ok(v)
    }

    pub(super) fn delete_repository(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let force = input.get("force").and_then(Value::as_bool).unwrap_or(false);
        let scope = Self::scope(ctx);
        let _g = repos::write_lock();
        let images =
            repos::list_images(self.store.as_ref(), &scope, &repo.name).map_err(repo_error)?;
        if !images.is_empty() && !force {
            return Err(ApiError::client(
                "RepositoryNotEmptyException",
                format!("The repository with name '{}' in registry with id '{}' cannot be deleted because it still contains images", repo.name, ctx.account),
            ));
        }
        repos::delete_repo(self.store.as_ref(), &scope, &repo.name).map_err(repo_error)?;
        let _ = self.store.delete(&scope, PREVIEWS, &repo.name);
        Ok(json!({"repository": Self::repository_value(ctx, &repo)}))
    }

    fn update_repo(
        &self,
        ctx: &RequestContext,
        input: &Value,
        f: impl FnOnce(&mut Repository) -> Result<(), ApiError>,
    ) -> Result<Repository, ApiError> {
        let _ = self.repo_for(ctx, input)?;
        let scope = Self::scope(ctx);
        let _g = repos::write_lock();
        let mut repo = self.repo(ctx, str_member(input, "repositoryName")?)?;
        f(&mut repo)?;
        repos::put_repo(self.store.as_ref(), &scope, &repo).map_err(repo_error)?;
        Ok(repo)
    }

    pub(super) fn put_image_tag_mutability(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let m = str_member(&input, "imageTagMutability")?.to_string();
        let excl = input
            .get("imageTagMutabilityExclusionFilters")
            .and_then(Value::as_array)
            .cloned();
        let r = self.update_repo(ctx, &input, |r| {
            r.image_tag_mutability = m.clone();
            r.tag_mutability_exclusions = excl.unwrap_or_default();
            Ok(())
        })?;
        Ok(
            json!({"registryId": r.registry_id, "repositoryName": r.name, "imageTagMutability": r.image_tag_mutability}),
        )
    }

    pub(super) fn put_image_scanning_configuration(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let scan = input
            .pointer("/imageScanningConfiguration/scanOnPush")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let r = self.update_repo(ctx, &input, |r| {
            r.scan_on_push = scan;
            Ok(())
        })?;
        Ok(
            json!({"registryId": r.registry_id, "repositoryName": r.name, "imageScanningConfiguration": {"scanOnPush": r.scan_on_push}}),
        )
    }

    /// The repository an ARN names.
    fn repo_by_arn(&self, ctx: &RequestContext, arn: &str) -> Result<Repository, ApiError> {
        let prefix = format!("arn:aws:ecr:{}:{}:repository/", ctx.region, ctx.account);
        let name = arn
            .strip_prefix(&prefix)
            .ok_or_else(|| invalid(format!("Invalid parameter at 'resourceArn': {arn} is not a repository ARN of this account and region")))?;
        let r = self.repo(ctx, name)?;
        self.authorize(ctx, Some(&r))?;
        Ok(r)
    }

    pub(super) fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let arn = str_member(&input, "resourceArn")?;
        let r = self.repo_by_arn(ctx, arn)?;
        let tags = tags_in(&input)?;
        let _g = repos::write_lock();
        let mut r = self.repo(ctx, &r.name)?;
        merge_tags(&mut r.tags, tags);
        if r.tags.len() > 50 {
            return Err(ApiError::client(
                "TooManyTagsException",
                "a repository can have at most 50 tags",
            ));
        }
        repos::put_repo(self.store.as_ref(), &Self::scope(ctx), &r).map_err(repo_error)?;
        Ok(json!({}))
    }

    pub(super) fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let arn = str_member(&input, "resourceArn")?;
        let r = self.repo_by_arn(ctx, arn)?;
        let keys: Vec<String> = input
            .get("tagKeys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let _g = repos::write_lock();
        let mut r = self.repo(ctx, &r.name)?;
        r.tags.retain(|(k, _)| !keys.contains(k));
        repos::put_repo(self.store.as_ref(), &Self::scope(ctx), &r).map_err(repo_error)?;
        Ok(json!({}))
    }

    pub(super) fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let arn = str_member(&input, "resourceArn")?;
        let r = self.repo_by_arn(ctx, arn)?;
        let tags: Vec<Value> = r
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        Ok(json!({"tags": tags}))
    }

    pub(super) fn set_repository_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let text = str_member(&input, "policyText")?.to_string();
        fc_auth::policy::Policy::parse_resource(&text)
            .map_err(|e| invalid(format!("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided': {}", e.message())))?;
        let r = self.update_repo(ctx, &input, |r| {
            r.policy = Some(text.clone());
            Ok(())
        })?;
        Ok(json!({"registryId": r.registry_id, "repositoryName": r.name, "policyText": text}))
    }

    pub(super) fn get_repository_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let r = self.repo_for(ctx, &input)?;
        match &r.policy {
            Some(p) => Ok(json!({"registryId": r.registry_id, "repositoryName": r.name, "policyText": p})),
            None => Err(ApiError::client(
                "RepositoryPolicyNotFoundException",
                format!("Repository policy does not exist for the repository with name '{}' in the registry with id '{}'", r.name, r.registry_id),
            )),
        }
    }

    pub(super) fn delete_repository_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let mut old = None;
        let r = self.update_repo(ctx, &input, |r| {
            old = r.policy.take();
            Ok(())
        })?;
        match old {
            Some(p) => Ok(json!({"registryId": r.registry_id, "repositoryName": r.name, "policyText": p})),
            None => Err(ApiError::client(
                "RepositoryPolicyNotFoundException",
                format!("Repository policy does not exist for the repository with name '{}' in the registry with id '{}'", r.name, r.registry_id),
            )),
        }
    }

    pub(super) fn describe_registry(&self, ctx: &RequestContext) -> Result<Value, ApiError> {
        self.authorize(ctx, None)?;
        Ok(json!({"registryId": ctx.account, "replicationConfiguration": {"rules": []}}))
    }
}
