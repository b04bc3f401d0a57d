//! Lifecycle policies: rules that expire images by count (`imageCountMoreThan`) or age
//! (`sinceImagePushed`), applied when a policy is put and by [`Ecr::run_lifecycle`], which the
//! server calls periodically; and the preview.
//!
//! Evaluation: rules run in ascending `rulePriority`; each rule considers the images its
//! selection matches (`tagStatus` tagged/untagged/any, `tagPrefixList`, `tagPatternList`)
//! that no higher-priority rule already matched; those are then kept or expired by the
//! rule's count. Within a rule images are ordered newest push first.

use super::*;
use fc_images::repos::ImageRecord;
use fc_store::StoreExt;
use serde_json::json;

const DAY: f64 = 86_400.0;

/// What one lifecycle sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    pub repositories: u64,
    pub expired: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    rule_priority: i64,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    selection: Selection,
    #[serde(default)]
    action: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selection {
    tag_status: String,
    #[serde(default)]
    tag_prefix_list: Vec<String>,
    #[serde(default)]
    tag_pattern_list: Vec<String>,
    count_type: String,
    #[serde(default)]
    count_unit: Option<String>,
    count_number: i64,
}

fn parse_policy(text: &str) -> Result<Policy, ApiError> {
    let bad = |m: String| {
        ApiError::client(
            "InvalidParameterException",
            format!("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {m}'"),
        )
    };
    let p: Policy = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if p.rules.is_empty() {
        return Err(bad("at least one rule is required".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for r in &p.rules {
        if !seen.insert(r.rule_priority) || r.rule_priority < 1 {
            return Err(bad(format!(
                "rulePriority {} is invalid or not unique",
                r.rule_priority
            )));
        }
        let s = &r.selection;
        if !matches!(s.tag_status.as_str(), "tagged" | "untagged" | "any") {
            return Err(bad(format!("tagStatus {} is invalid", s.tag_status)));
        }
        if s.tag_status == "tagged" && s.tag_prefix_list.is_empty() && s.tag_pattern_list.is_empty()
        {
            return Err(bad(
                "tagPrefixList or tagPatternList is required when tagStatus is tagged".into(),
            ));
        }
        match s.count_type.as_str() {
            "imageCountMoreThan" => {}
            "sinceImagePushed" => {
                if s.count_unit.as_deref() != Some("days") {
                    return Err(bad("countUnit must be days for sinceImagePushed".into()));
                }
            }
            other => return Err(bad(format!("countType {other} is invalid"))),
        }
        if s.count_number < 1 {
            return Err(bad("countNumber must be at least 1".into()));
        }
        if let Some(a) = &r.action {
            if a.get("type").and_then(Value::as_str) != Some("expire") {
                return Err(bad("action type must be expire".into()));
            }
        }
    }
    Ok(p)
}

/// `*` wildcard match of a tag pattern.
fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(pos) => rest = &rest[pos + p.len()..],
                None => return false,
            }
        }
    }
    true
}

fn selects(s: &Selection, img: &ImageRecord) -> bool {
    match s.tag_status.as_str() {
        "untagged" => img.tags.is_empty(),
        "any" => true,
        _ => {
            !img.tags.is_empty()
                && (s
                    .tag_prefix_list
                    .iter()
                    .any(|p| img.tags.iter().any(|t| t.starts_with(p.as_str())))
                    || s.tag_pattern_list
                        .iter()
                        .any(|p| img.tags.iter().any(|t| wildcard(p, t))))
        }
    }
}

/// The images a policy expires at `now`, with the priority of the rule that expires each.
fn evaluate(policy: &Policy, images: &[ImageRecord], now: f64) -> Vec<(ImageRecord, i64)> {
    let mut sorted: Vec<&ImageRecord> = images.iter().collect();
    sorted.sort_by(|a, b| {
        b.pushed_at
            .total_cmp(&a.pushed_at)
            .then_with(|| a.digest.cmp(&b.digest))
    });
    let mut rules = policy.rules.clone();
    rules.sort_by_key(|r| r.rule_priority);
    let mut claimed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in &rules {
        let matched: Vec<&ImageRecord> = sorted
            .iter()
            .copied()
            .filter(|i| !claimed.contains(&i.digest) && selects(&r.selection, i))
            .collect();
        for (idx, img) in matched.iter().enumerate() {
            claimed.insert(img.digest.clone());
            let expire = match r.selection.count_type.as_str() {
                "imageCountMoreThan" => idx as i64 >= r.selection.count_number,
                _ => now - img.pushed_at > r.selection.count_number as f64 * DAY,
            };
            if expire {
                out.push(((*img).clone(), r.rule_priority));
            }
        }
    }
    out
}

impl Ecr {
    /// Apply the lifecycle policy of every repository (all accounts and regions) at `now`
    /// (epoch seconds).
    pub fn run_lifecycle(&self, now: f64) -> Result<LifecycleReport, ApiError> {
        let mut report = LifecycleReport::default();
        for scope in self.store.scopes(repos::REPOS).map_err(store_error)? {
            let mut after: Option<String> = None;
            loop {
                let (list, more) =
                    repos::list_repos(self.store.as_ref(), &scope, after.as_deref(), 500)
                        .map_err(repo_error)?;
                after = list.last().map(|r| r.name.clone());
                for r in list {
                    if let Some(text) = &r.lifecycle_policy {
                        report.repositories += 1;
                        report.expired += self.apply_lifecycle(&scope, &r, text, now)?;
                    }
                }
                if !more {
                    break;
                }
            }
        }
        Ok(report)
    }

    fn apply_lifecycle(
        &self,
        scope: &Scope,
        repo: &Repository,
        text: &str,
        now: f64,
    ) -> Result<u64, ApiError> {
        let Ok(policy) = parse_policy(text) else {
            return Ok(0);
        };
        let images =
            repos::list_images(self.store.as_ref(), scope, &repo.name).map_err(repo_error)?;
        let mut n = 0;
        for (img, prio) in evaluate(&policy, &images, now) {
            if repos::delete_image(self.store.as_ref(), scope, &repo.name, &img.digest)
                .map_err(repo_error)?
                .is_some()
            {
                tracing::info!(repository = %repo.name, digest = %img.digest, rule = prio, "image expired by lifecycle policy");
                n += 1;
            }
        }
        Ok(n)
    }

    pub(super) fn put_lifecycle_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let text = str_member(&input, "lifecyclePolicyText")?.to_string();
        parse_policy(&text)?;
        let now = fc_protocol::value::now_secs();
        let r = self.update_repo_pub(ctx, &input, |r| {
            r.lifecycle_policy = Some(text.clone());
            r.lifecycle_updated = Some(now);
        })?;
        self.apply_lifecycle(&Self::scope(ctx), &r, &text, now)?;
        Ok(
            json!({"registryId": r.registry_id, "repositoryName": r.name, "lifecyclePolicyText": text}),
        )
    }

    pub(super) fn get_lifecycle_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let r = self.repo_for(ctx, &input)?;
        match &r.lifecycle_policy {
            Some(t) => Ok(json!({
                "registryId": r.registry_id, "repositoryName": r.name, "lifecyclePolicyText": t,
                "lastEvaluatedAt": fc_protocol::value::epoch_value(r.lifecycle_updated.unwrap_or(r.created_at)),
            })),
            None => Err(not_found_policy(&r)),
        }
    }

    pub(super) fn delete_lifecycle_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let mut old = None;
        let r = self.update_repo_pub(ctx, &input, |r| {
            old = r.lifecycle_policy.take();
        })?;
        match old {
            Some(t) => Ok(
                json!({"registryId": r.registry_id, "repositoryName": r.name, "lifecyclePolicyText": t}),
            ),
            None => Err(not_found_policy(&r)),
        }
    }

    pub(super) fn start_lifecycle_policy_preview(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let r = self.repo_for(ctx, &input)?;
        let text = match input.get("lifecyclePolicyText").and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => r
                .lifecycle_policy
                .clone()
                .ok_or_else(|| not_found_policy(&r))?,
        };
        let policy = parse_policy(&text)?;
        let scope = Self::scope(ctx);
        let images =
            repos::list_images(self.store.as_ref(), &scope, &r.name).map_err(repo_error)?;
        let now = fc_protocol::value::now_secs();
        let results: Vec<Value> = evaluate(&policy, &images, now)
            .into_iter()
            .map(|(img, prio)| {
                let mut v = json!({
                    "imageDigest": img.digest,
                    "imagePushedAt": fc_protocol::value::epoch_value(img.pushed_at),
                    "action": {"type": "EXPIRE"},
                    "appliedRulePriority": prio,
                });
                if !img.tags.is_empty() {
                    v["imageTags"] = json!(img.tags);
                }
                v
            })
            .collect();
        let preview =
            json!({"lifecyclePolicyText": text, "status": "COMPLETE", "previewResults": results});
        self.store
            .put_json(&scope, PREVIEWS, &r.name, &preview)
            .map_err(store_error)?;
        Ok(
            json!({"registryId": r.registry_id, "repositoryName": r.name, "lifecyclePolicyText": text, "status": "IN_PROGRESS"}),
        )
    }

    pub(super) fn get_lifecycle_policy_preview(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let r = self.repo_for(ctx, &input)?;
        let preview: Option<Value> = self
            .store
            .get_json(&Self::scope(ctx), PREVIEWS, &r.name)
            .map_err(store_error)?;
        let Some(p) = preview else {
            return Err(ApiError::client(
                "LifecyclePolicyPreviewNotFoundException",
                format!("There is no dry run for the repository with name '{}' in the registry with id '{}'", r.name, r.registry_id),
            ));
        };
        let results = p
            .get("previewResults")
            .cloned()
            .unwrap_or_else(|| json!([]));
        let count = results.as_array().map_or(0, Vec::len);
        Ok(json!({
            "registryId": r.registry_id, "repositoryName": r.name,
            "lifecyclePolicyText": p.get("lifecyclePolicyText"),
            "status": p.get("status"),
            "previewResults": results,
            "summary": {"expiringImageTotalCount": count},
        }))
    }

    fn update_repo_pub(
        &self,
        ctx: &RequestContext,
        input: &Value,
        f: impl FnOnce(&mut Repository),
    ) -> Result<Repository, ApiError> {
        let _ = self.repo_for(ctx, input)?;
        let _g = repos::write_lock();
        let mut repo = self.repo(ctx, str_member(input, "repositoryName")?)?;
        f(&mut repo);
        repos::put_repo(self.store.as_ref(), &Self::scope(ctx), &repo).map_err(repo_error)?;
        Ok(repo)
    }
}

fn not_found_policy(r: &Repository) -> ApiError {
    ApiError::client(
        "LifecyclePolicyNotFoundException",
        format!("Lifecycle policy does not exist for the repository with name '{}' in the registry with id '{}'", r.name, r.registry_id),
    )
}

impl Ecr {
    /// The periodic sweep: lifecycle policies, expired registry tokens, and garbage
    /// collection of image blobs nothing references (older than an hour, so pushes in flight
    /// keep theirs).
    pub fn housekeeping(&self, now: f64) -> Result<LifecycleReport, ApiError> {
        let report = self.run_lifecycle(now)?;
        repos::expire_tokens(self.store.as_ref(), now).map_err(repo_error)?;
        let refs = repos::referenced_digests(self.store.as_ref()).map_err(repo_error)?;
        let gc = self
            .images
            .gc(&refs, std::time::Duration::from_secs(3600))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if gc.blobs > 0 {
            tracing::info!(
                blobs = gc.blobs,
                bytes = gc.bytes,
                "unreferenced image blobs removed"
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(n: u8, pushed: f64, tags: &[&str]) -> ImageRecord {
        ImageRecord {
            v: 1,
            digest: fc_images::Digest::of(&[n]),
            media_type: String::new(),
            manifest_size: 1,
            size: 1,
            pushed_at: pushed,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            subject: None,
            artifact_type: None,
            annotations: None,
            last_pulled: None,
        }
    }

    #[test]
    fn count_and_age_rules() {
        let p = parse_policy(r#"{"rules":[
            {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
            {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}
        ]}"#).unwrap();
        let now = 10.0 * DAY;
        let images = vec![
            img(1, now - 5.0 * DAY, &["prod-1"]),
            img(2, now - 3.0 * DAY, &["prod-2"]),
            img(3, now - 3.0 * DAY, &["dev"]),
            img(4, now - 100.0, &[]),
        ];
        let expired: Vec<u8> = evaluate(&p, &images, now)
            .into_iter()
            .map(|(i, _)| images.iter().position(|x| x.digest == i.digest).unwrap() as u8 + 1)
            .collect();
        assert_eq!(expired, vec![1, 3]);
        assert!(wildcard("v*-rc*", "v1.2-rc3"));
        assert!(!wildcard("v*", "x1"));
        assert!(parse_policy("{\"rules\":[]}").is_err());
    }
}
