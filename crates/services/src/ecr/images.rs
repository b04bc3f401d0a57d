//! Images (describe, list, get, put, delete), layer availability and uploads through the API,
//! and registry authorization tokens.

use super::*;
use base64::Engine;
use fc_images::repos::ImageRecord;
use fc_images::{Digest, RecordError};
use fc_protocol::value::epoch_value;
use fc_store::StoreExt;
use serde_json::json;
use std::io::Write;

/// Registry passwords live this long (ECR: 12 hours).
const TOKEN_TTL_SECS: f64 = 12.0 * 3600.0;
/// Largest `UploadLayerPart` part.
const PART_SIZE: u64 = 20 << 20;

/// `FERROCLOUD_ECR_TOKEN_TTL_SECONDS` shortens token lifetimes (for tests of expiry).
fn token_ttl() -> f64 {
    std::env::var("FERROCLOUD_ECR_TOKEN_TTL_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(TOKEN_TTL_SECS)
}

/// An `ImageIdentifier` of the input.
struct ImageId {
    digest: Option<String>,
    tag: Option<String>,
    raw: Value,
}

fn image_ids(input: &Value) -> Vec<ImageId> {
    input
        .get("imageIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| ImageId {
                    digest: v
                        .get("imageDigest")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    tag: v
                        .get("imageTag")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    raw: v.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn failure(id: &Value, code: &str, reason: impl Into<String>) -> Value {
    json!({"imageId": id, "failureCode": code, "failureReason": reason.into()})
}

fn tag_status_ok(filter: Option<&str>, rec: &ImageRecord) -> bool {
    match filter {
        Some("TAGGED") => !rec.tags.is_empty(),
        Some("UNTAGGED") => rec.tags.is_empty(),
        _ => true,
    }
}

impl Ecr {
    /// Resolve an image id; `Err` is a failure entry.
    fn find(&self, scope: &Scope, repo: &str, id: &ImageId) -> Result<ImageRecord, Value> {
        let store = self.store.as_ref();
        let by_tag = match &id.tag {
            Some(t) => match repos::get_tag(store, scope, repo, t) {
                Ok(Some(d)) => Some(d),
                Ok(None) => {
                    return Err(failure(
                        &id.raw,
                        "ImageNotFound",
                        "Requested image not found",
                    ))
                }
                Err(e) => return Err(failure(&id.raw, "ImageNotFound", e.to_string())),
            },
            None => None,
        };
        let digest = match (&id.digest, by_tag) {
            (Some(d), tagged) => {
                let Ok(d) = Digest::parse(d) else {
                    return Err(failure(&id.raw, "InvalidImageDigest", "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'"));
                };
                if let Some(t) = tagged {
                    if t != d {
                        return Err(failure(
                            &id.raw,
                            "ImageTagDoesNotMatchDigest",
                            "Invalid request parameters: given tag and digest do not match",
                        ));
                    }
                }
                d
            }
            (None, Some(t)) => t,
            (None, None) => {
                return Err(failure(
                    &id.raw,
                    "MissingDigestAndTag",
                    "Invalid request parameters: both tag and digest cannot be null",
                ))
            }
        };
        match repos::get_image(store, scope, repo, &digest) {
            Ok(Some(r)) => Ok(r),
            _ => Err(failure(
                &id.raw,
                "ImageNotFound",
                "Requested image not found",
            )),
        }
    }

    fn detail(r: &Repository, img: &ImageRecord) -> Value {
        let mut v = json!({
            "registryId": r.registry_id,
            "repositoryName": r.name,
            "imageDigest": img.digest,
            "imageSizeInBytes": img.size,
            "imagePushedAt": epoch_value(img.pushed_at),
            "imageManifestMediaType": img.media_type,
        });
        if !img.tags.is_empty() {
            v["imageTags"] = json!(img.tags);
        }
        if let Some(a) = &img.artifact_type {
            v["artifactMediaType"] = json!(a);
        }
        if let Some(t) = img.last_pulled {
            v["lastRecordedPullTime"] = epoch_value(t);
        }
        if let Some(s) = &img.subject {
            v["subjectManifestDigest"] = json!(s);
        }
        v
    }

    fn page<T: Clone>(
        ctx: &RequestContext,
        op: &str,
        repo: &str,
        input: &Value,
        items: &[T],
    ) -> Result<(Vec<T>, Option<String>), ApiError> {
        let scope = format!("ecr:{op}:{}:{repo}", ctx.account);
        let start: usize = match input.get("nextToken").and_then(Value::as_str) {
            Some(t) => fc_types::page::decode(&scope, t)
                .ok()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| invalid("Invalid parameter at 'nextToken'"))?,
            None => 0,
        };
        let max = input
            .get("maxResults")
            .and_then(Value::as_u64)
            .map_or(1000, |m| m.clamp(1, 1000) as usize);
        let end = (start + max).min(items.len());
        let page = items.get(start..end).unwrap_or(&[]).to_vec();
        let next = (end < items.len()).then(|| fc_types::page::encode(&scope, &end.to_string()));
        Ok((page, next))
    }

    pub(super) fn describe_images(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let scope = Self::scope(ctx);
        let ids = image_ids(&input);
        if !ids.is_empty() {
            let mut out = Vec::new();
            for id in &ids {
                match self.find(&scope, &repo.name, id) {
                    Ok(img) => out.push(Self::detail(&repo, &img)),
                    Err(f) => {
                        return Err(ApiError::client(
                            "ImageNotFoundException",
                            format!("The image with imageId {} does not exist within the repository with name '{}' in the registry with id '{}'", f["imageId"], repo.name, repo.registry_id),
                        ))
                    }
                }
            }
            return Ok(json!({"imageDetails": out}));
        }
        let filter = input
            .pointer("/filter/tagStatus")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut all =
            repos::list_images(self.store.as_ref(), &scope, &repo.name).map_err(repo_error)?;
        all.retain(|i| tag_status_ok(filter.as_deref(), i));
        let (page, next) = Self::page(ctx, "DescribeImages", &repo.name, &input, &all)?;
        let mut v = json!({"imageDetails": page.iter().map(|i| Self::detail(&repo, i)).collect::<Vec<_>>()});
        if let Some(n) = next {
            v["nextToken"] = json!(n);
        }
        Ok(v)
    }

    pub(super) fn list_images(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let scope = Self::scope(ctx);
        let filter = input
            .pointer("/filter/tagStatus")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut ids = Vec::new();
        for img in
            repos::list_images(self.store.as_ref(), &scope, &repo.name).map_err(repo_error)?
        {
            if !tag_status_ok(filter.as_deref(), &img) {
                continue;
            }
            if img.tags.is_empty() {
                ids.push(json!({"imageDigest": img.digest}));
            }
            for t in &img.tags {
                ids.push(json!({"imageDigest": img.digest, "imageTag": t}));
            }
        }
        let (page, next) = Self::page(ctx, "ListImages", &repo.name, &input, &ids)?;
        let mut v = json!({"imageIds": page});
        if let Some(n) = next {
            v["nextToken"] = json!(n);
        }
        Ok(v)
    }

    pub(super) fn batch_get_image(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let scope = Self::scope(ctx);
        let mut images = Vec::new();
        let mut failures = Vec::new();
        let now = fc_protocol::value::now_secs();
        for id in image_ids(&input) {
            match self.find(&scope, &repo.name, &id) {
                Ok(img) => {
                    let bytes = self
                        .images
                        .read_blob(&img.digest, 4 << 20)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    let mut image_id = json!({"imageDigest": img.digest});
                    if let Some(t) = &id.tag {
                        image_id["imageTag"] = json!(t);
                    }
                    images.push(json!({
                        "registryId": repo.registry_id,
                        "repositoryName": repo.name,
                        "imageId": image_id,
                        "imageManifest": String::from_utf8_lossy(&bytes),
                        "imageManifestMediaType": img.media_type,
                    }));
                    let _ = repos::touch_pulled(
                        self.store.as_ref(),
                        &scope,
                        &repo.name,
                        &img.digest,
                        now,
                    );
                }
                Err(f) => failures.push(f),
            }
        }
        Ok(json!({"images": images, "failures": failures}))
    }

    pub(super) fn put_image(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let manifest = str_member(&input, "imageManifest")?;
        let media_type = input.get("imageManifestMediaType").and_then(Value::as_str);
        let tag = input.get("imageTag").and_then(Value::as_str);
        let digest = Digest::of(manifest.as_bytes());
        if let Some(want) = input.get("imageDigest").and_then(Value::as_str) {
            if want != digest.as_str() {
                return Err(ApiError::client(
                    "ImageDigestDoesNotMatchException",
                    format!("Invalid parameter at 'imageDigest' failed to satisfy constraint: 'the digest {want} does not match the manifest digest {digest}'"),
                ));
            }
        }
        let scope = Self::scope(ctx);
        let existing = repos::get_image(self.store.as_ref(), &scope, &repo.name, &digest)
            .map_err(repo_error)?;
        if let Some(e) = &existing {
            if tag.is_none_or(|t| e.tags.iter().any(|x| x == t)) {
                return Err(ApiError::client(
                    "ImageAlreadyExistsException",
                    format!("Image with digest '{digest}' and tag '{}' already exists in the repository with name '{}' in registry with id '{}'", tag.unwrap_or("null"), repo.name, repo.registry_id),
                ));
            }
        }
        let now = fc_protocol::value::now_secs();
        let rec = self
            .images
            .record_manifest(self.store.as_ref(), &scope, &repo, manifest.as_bytes(), media_type, tag, now)
            .map_err(|e| match e {
                RecordError::Invalid(e) => invalid(format!("Invalid parameter at 'ImageManifest' failed to satisfy constraint: '{e}'")),
                RecordError::BlobUnknown(d) | RecordError::ChildUnknown(d, _) => ApiError::client(
                    "LayersNotFoundException",
                    format!("Layers with digests '[{d}]' required for pushing image into repository with name '{}' in the registry with id '{}' do not exist", repo.name, repo.registry_id),
                ),
                RecordError::Repo(e) => repo_error(e),
                RecordError::Image(e) => ApiError::internal(e.to_string()),
            })?;
        let mut image_id = json!({"imageDigest": rec.digest});
        if let Some(t) = tag {
            image_id["imageTag"] = json!(t);
        }
        Ok(json!({"image": {
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageId": image_id,
            "imageManifest": manifest,
            "imageManifestMediaType": rec.manifest.media_type,
        }}))
    }

    pub(super) fn batch_delete_image(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let scope = Self::scope(ctx);
        let store = self.store.as_ref();
        let mut deleted = Vec::new();
        let mut failures = Vec::new();
        for id in image_ids(&input) {
            let img = match self.find(&scope, &repo.name, &id) {
                Ok(i) => i,
                Err(f) => {
                    failures.push(f);
                    continue;
                }
            };
            match (&id.digest, &id.tag) {
                (None, Some(tag)) if img.tags.len() > 1 => {
                    repos::untag(store, &scope, &repo.name, tag).map_err(repo_error)?;
                    deleted.push(json!({"imageDigest": img.digest, "imageTag": tag}));
                }
                _ => {
                    repos::delete_image(store, &scope, &repo.name, &img.digest)
                        .map_err(repo_error)?;
                    if img.tags.is_empty() {
                        deleted.push(json!({"imageDigest": img.digest}));
                    }
                    for t in &img.tags {
                        deleted.push(json!({"imageDigest": img.digest, "imageTag": t}));
                    }
                }
            }
        }
        Ok(json!({"imageIds": deleted, "failures": failures}))
    }

    fn layer_digests(input: &Value) -> Vec<String> {
        input
            .get("layerDigests")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn batch_check_layer_availability(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let scope = Self::scope(ctx);
        let mut layers = Vec::new();
        let mut failures = Vec::new();
        for d in Self::layer_digests(&input) {
            let Ok(digest) = Digest::parse(&d) else {
                failures.push(json!({"layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest"}));
                continue;
            };
            match repos::get_layer(self.store.as_ref(), &scope, &repo.name, &digest).map_err(repo_error)? {
                Some(l) if self.images.has_blob(&digest) => layers.push(json!({
                    "layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": l.size,
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                })),
                _ => failures.push(json!({"layerDigest": d, "failureCode": "MissingLayerDigest", "failureReason": "Requested layer not found"})),
            }
        }
        Ok(json!({"layers": layers, "failures": failures}))
    }

    pub(super) fn get_download_url_for_layer(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let d = str_member(&input, "layerDigest")?;
        let digest = Digest::parse(d).map_err(|e| invalid(e.to_string()))?;
        let linked = repos::get_layer(self.store.as_ref(), &Self::scope(ctx), &repo.name, &digest)
            .map_err(repo_error)?
            .is_some();
        if !linked || !self.images.has_blob(&digest) {
            return Err(ApiError::client(
                "LayersNotFoundException",
                format!(
                    "The specified layer {d} does not exist in the repository {}",
                    repo.name
                ),
            ));
        }
        Ok(json!({
            "downloadUrl": format!("http://{}/v2/{}/blobs/{d}", registry_host(ctx), repo.name),
            "layerDigest": d,
        }))
    }

    pub(super) fn initiate_layer_upload(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let id = uuid::Uuid::new_v4().to_string();
        let path = self.images.upload_path(&id);
        std::fs::File::create(&path)
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", path.display())))?;
        let up = ApiUpload {
            repo: repo.name.clone(),
            next_byte: 0,
        };
        self.store
            .put_json(&Self::scope(ctx), UPLOADS, &id, &up)
            .map_err(store_error)?;
        Ok(json!({"uploadId": id, "partSize": PART_SIZE}))
    }

    fn upload(
        &self,
        ctx: &RequestContext,
        repo: &Repository,
        input: &Value,
    ) -> Result<(String, ApiUpload), ApiError> {
        let id = str_member(input, "uploadId")?.to_string();
        let up: Option<ApiUpload> = self
            .store
            .get_json(&Self::scope(ctx), UPLOADS, &id)
            .map_err(store_error)?;
        match up {
            Some(u) if u.repo == repo.name => Ok((id, u)),
            _ => Err(ApiError::client(
                "UploadNotFoundException",
                format!(
                    "The upload with id '{id}' does not exist in the repository {}",
                    repo.name
                ),
            )),
        }
    }

    pub(super) fn upload_layer_part(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let (id, mut up) = self.upload(ctx, &repo, &input)?;
        let first = input
            .get("partFirstByte")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::missing("InvalidParameterException", "partFirstByte"))?;
        let last = input
            .get("partLastByte")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::missing("InvalidParameterException", "partLastByte"))?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(str_member(&input, "layerPartBlob")?)
            .map_err(|e| invalid(format!("layerPartBlob is not base64: {e}")))?;
        let part_err = |msg: String| {
            ApiError::client("InvalidLayerPartException", msg)
                .with_field("registryId", json!(repo.registry_id))
                .with_field("repositoryName", json!(repo.name))
                .with_field("uploadId", json!(id))
                .with_field(
                    "lastValidByteReceived",
                    json!(up.next_byte.saturating_sub(1)),
                )
        };
        if first != up.next_byte || last < first || last - first + 1 != blob.len() as u64 {
            return Err(part_err(format!(
                "The layer part {first}-{last} is not valid: the next expected byte is {} and the part has {} bytes",
                up.next_byte,
                blob.len()
            )));
        }
        let path = self.images.upload_path(&id);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| ApiError::internal(format!("cannot open {}: {e}", path.display())))?;
        f.write_all(&blob)
            .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", path.display())))?;
        up.next_byte = last + 1;
        self.store
            .put_json(&Self::scope(ctx), UPLOADS, &id, &up)
            .map_err(store_error)?;
        Ok(
            json!({"registryId": repo.registry_id, "repositoryName": repo.name, "uploadId": id, "lastByteReceived": last}),
        )
    }

    pub(super) fn complete_layer_upload(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let repo = self.repo_for(ctx, &input)?;
        let (id, up) = self.upload(ctx, &repo, &input)?;
        let digests = Self::layer_digests(&input);
        let [d] = digests.as_slice() else {
            return Err(invalid("exactly one layer digest must be given"));
        };
        let digest = Digest::parse(d)
            .map_err(|e| ApiError::client("InvalidLayerException", e.to_string()))?;
        if up.next_byte == 0 {
            return Err(ApiError::client(
                "EmptyUploadException",
                format!("The upload with id '{id}' has no layer parts"),
            ));
        }
        let scope = Self::scope(ctx);
        let store = self.store.as_ref();
        let tmp = self.images.upload_path(&id);
        if repos::get_layer(store, &scope, &repo.name, &digest)
            .map_err(repo_error)?
            .is_some()
            && self.images.has_blob(&digest)
        {
            let _ = std::fs::remove_file(&tmp);
            let _ = store.delete(&scope, UPLOADS, &id);
            return Err(ApiError::client(
                "LayerAlreadyExistsException",
                format!("The layer with digest '{d}' already exists in the repository with name '{}' in registry with id '{}'", repo.name, repo.registry_id),
            ));
        }
        let res = self.images.commit_file(&tmp, &digest, None);
        let _ = store.delete(&scope, UPLOADS, &id);
        let size = res.map_err(|e| match e {
            fc_images::ImageError::DigestMismatch { .. } => ApiError::client(
                "InvalidLayerException",
                format!("The layer digest does not match the uploaded content: {e}"),
            ),
            e => ApiError::internal(e.to_string()),
        })?;
        repos::link_layer(store, &scope, &repo.name, &digest, size).map_err(repo_error)?;
        Ok(
            json!({"registryId": repo.registry_id, "repositoryName": repo.name, "uploadId": id, "layerDigest": d}),
        )
    }

    pub(super) fn get_authorization_token(
        &self,
        ctx: &RequestContext,
        _input: Value,
    ) -> Result<Value, ApiError> {
        self.authorize(ctx, None)?;
        let password = format!(
            "{}{}",
            fc_types::ids::random_hex(32),
            fc_types::ids::random_hex(32)
        );
        let expires = fc_protocol::value::now_secs().floor() + token_ttl();
        repos::put_token(
            self.store.as_ref(),
            &password,
            &repos::TokenRecord {
                account: ctx.account.clone(),
                region: ctx.region.clone(),
                principal_arn: ctx.principal.arn.clone(),
                expires_at: expires,
            },
        )
        .map_err(repo_error)?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
        Ok(json!({"authorizationData": [{
            "authorizationToken": token,
            "expiresAt": epoch_value(expires),
            "proxyEndpoint": format!("http://{}", registry_host(ctx)),
        }]}))
    }
}
