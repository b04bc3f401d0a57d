//! Multipart uploads: create, upload part (streamed), upload part copy (with range), list
//! parts, list uploads, complete (parts concatenated into one content file) and abort.

use super::content::{multipart_etag, Algo};
use super::model::*;
use super::objects::{object_template, verify_checksums};
use super::util::{self, parse_range, url_encode};
use super::{invalid_argument, n, owner_value, s, store_err, Tx, S3};
use crate::{BodyIn, RequestContext};
use base64::Engine;
use fc_protocol::value::{epoch_value, now_secs};
use fc_protocol::ApiError;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Value};

/// Every part but the last must be at least this large.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

fn no_such_upload(id: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with_field("UploadId", json!(id))
}

fn invalid_part() -> ApiError {
    ApiError::client(
        "InvalidPart",
        "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
    )
}

fn part_number(input: &Value) -> Result<u32, ApiError> {
    match n(input, "PartNumber") {
        Some(p) if (1..=10000).contains(&p) => Ok(p as u32),
        _ => Err(
            invalid_argument("Part number must be an integer between 1 and 10000, inclusive")
                .with_field("ArgumentName", json!("partNumber")),
        ),
    }
}

/// The composite checksum of a multipart object: the checksum of the concatenated binary part
/// checksums, then `-N`.
pub fn composite_checksum(algo: Algo, parts_b64: &[String]) -> Option<String> {
    use sha1::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut joined = Vec::new();
    for p in parts_b64 {
        joined.extend(b64.decode(p).ok()?);
    }
    let digest: Vec<u8> = match algo {
        Algo::Crc32 => crc32fast::hash(&joined).to_be_bytes().to_vec(),
        Algo::Crc32c => crc32c::crc32c(&joined).to_be_bytes().to_vec(),
        Algo::Sha1 => sha1::Sha1::digest(&joined).to_vec(),
        Algo::Sha256 => sha2::Sha256::digest(&joined).to_vec(),
    };
    Some(format!("{}-{}", b64.encode(digest), parts_b64.len()))
}

impl S3 {
    fn upload(
        &self,
        scope: &Scope,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<UploadRec, ApiError> {
        self.store
            .get_json::<UploadRec>(scope, T_UPLOADS, &upload_key(bucket, key, id))
            .map_err(store_err)?
            .ok_or_else(|| no_such_upload(id))
    }

    fn parts(&self, scope: &Scope, upload_id: &str) -> Result<Vec<(String, PartRec)>, ApiError> {
        let (items, _) = self
            .store
            .scan_json::<PartRec>(scope, T_PARTS, &format!("{upload_id}/"), None, 100_000)
            .map_err(store_err)?;
        Ok(items)
    }

    /// Queue the removal of every part of an upload.
    pub(crate) fn drop_upload_parts(
        &self,
        scope: &Scope,
        upload_id: &str,
        tx: &mut Tx,
    ) -> Result<(), ApiError> {
        for (k, p) in self.parts(scope, upload_id)? {
            tx.unref(&p.content);
            tx.delete(scope, T_PARTS, &k);
        }
        Ok(())
    }

    pub(crate) fn create_multipart_upload(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let mut template = object_template(input, &ctx.account)?;
        template.key = key.clone();
        let upload_id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let algo = s(input, "ChecksumAlgorithm").and_then(|a| Algo::parse(&a));
        let rec = UploadRec {
            v: 1,
            upload_id: upload_id.clone(),
            key: key.clone(),
            initiated: now_secs(),
            template,
            checksum_algorithm: algo.map(|a| a.name().to_string()),
        };
        self.store
            .put_json(
                &scope,
                T_UPLOADS,
                &upload_key(&bucket.name, &key, &upload_id),
                &rec,
            )
            .map_err(store_err)?;
        let mut out = json!({"Bucket": bucket.name, "Key": key, "UploadId": upload_id});
        if let Some(a) = algo {
            out["ChecksumAlgorithm"] = json!(a.name());
            out["ChecksumType"] = json!("COMPOSITE");
        }
        Ok(out)
    }

    fn record_part(&self, scope: &Scope, upload_id: &str, part: PartRec) -> Result<(), ApiError> {
        let _g = self.guard();
        let k = part_key(upload_id, part.part_number);
        let mut tx = Tx::default();
        if let Some(old) = self
            .store
            .get_json::<PartRec>(scope, T_PARTS, &k)
            .map_err(store_err)?
        {
            tx.unref(&old.content);
        }
        tx.add_ref(&part.content);
        tx.put(scope, T_PARTS, &k, &part)?;
        self.apply(tx)
    }

    pub(crate) async fn upload_part(
        &self,
        ctx: &RequestContext,
        input: &Value,
        body: BodyIn,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let id = s(input, "UploadId").unwrap_or_default();
        let pn = part_number(input)?;
        let upload = self.upload(&scope, &bucket.name, &key, &id)?;
        let algo = s(input, "ChecksumAlgorithm")
            .and_then(|a| Algo::parse(&a))
            .or_else(|| upload.checksum_algorithm.as_deref().and_then(Algo::parse));
        let chunked = s(input, "__ContentSha256").map(|v| v.starts_with("STREAMING-"));
        let staged = self
            .content
            .stage(
                body,
                chunked,
                algo == Some(Algo::Sha1),
                super::objects::needs_full_digests(input, chunked) || algo.is_some(),
                0,
            )
            .await?;
        let mut checksum = match verify_checksums(input, &staged) {
            Ok(c) => c,
            Err(e) => {
                self.content.discard(&staged);
                return Err(e);
            }
        };
        if checksum.is_none() {
            if let Some(a) = algo {
                checksum = staged
                    .digests
                    .checksum(a)
                    .map(|v| (a.name().to_string(), v));
            }
        }
        // The upload may have been aborted meanwhile.
        if self.upload(&scope, &bucket.name, &key, &id).is_err() {
            self.content.discard(&staged);
            return Err(no_such_upload(&id));
        }
        let hash = self.content.commit(&staged)?;
        let etag = staged.digests.etag();
        self.record_part(
            &scope,
            &id,
            PartRec {
                part_number: pn,
                content: hash,
                size: staged.digests.size,
                etag: etag.clone(),
                last_modified: now_secs(),
                checksum: checksum.clone(),
            },
        )?;
        let mut out = json!({ "ETag": etag });
        if let Some((a, v)) = checksum {
            if let Some(a) = Algo::parse(&a) {
                out[a.member()] = json!(v);
            }
        }
        Ok(out)
    }

    pub(crate) async fn upload_part_copy(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let id = s(input, "UploadId").unwrap_or_default();
        let pn = part_number(input)?;
        let upload = self.upload(&scope, &bucket.name, &key, &id)?;
        let (sbucket, src) = self.copy_source(ctx, input)?;
        let (offset, len) = match s(input, "CopySourceRange") {
            Some(r) => match parse_range(Some(&r), src.size) {
                Ok(Some((a, b))) => (a, b - a + 1),
                _ => {
                    return Err(invalid_argument(
                        "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
                    )
                    .with_field("ArgumentName", json!("x-amz-copy-source-range")))
                }
            },
            None => (0, src.size),
        };
        let algo = upload.checksum_algorithm.as_deref().and_then(Algo::parse);
        let sources: Vec<(String, u64, u64)> = match &src.content {
            Some(h) if len > 0 => vec![(h.clone(), offset, len)],
            _ => Vec::new(),
        };
        let staged = match super::objects::inline_bytes(&src)? {
            Some(data) => {
                let (a, b) = (offset as usize, (offset + len) as usize);
                let part = data.get(a..b).ok_or_else(|| {
                    ApiError::internal("inline copy source shorter than its size")
                })?;
                self.content
                    .stage_bytes(part, algo == Some(Algo::Sha1))
                    .await?
            }
            None => {
                self.content
                    .stage_from(&sources, algo == Some(Algo::Sha1))
                    .await?
            }
        };
        let hash = self.content.commit(&staged)?;
        let etag = staged.digests.etag();
        let now = now_secs();
        let checksum = algo.and_then(|a| {
            staged
                .digests
                .checksum(a)
                .map(|v| (a.name().to_string(), v))
        });
        self.record_part(
            &scope,
            &id,
            PartRec {
                part_number: pn,
                content: hash,
                size: staged.digests.size,
                etag: etag.clone(),
                last_modified: now,
                checksum,
            },
        )?;
        let mut out = json!({"CopyPartResult": {"ETag": etag, "LastModified": epoch_value((now * 1000.0).round() / 1000.0)}});
        if sbucket.versioning.is_some() {
            out["CopySourceVersionId"] = json!(src.version_id);
        }
        Ok(out)
    }

    pub(crate) async fn complete_multipart_upload(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let id = s(input, "UploadId").unwrap_or_default();
        let upload = self.upload(&scope, &bucket.name, &key, &id)?;
        let requested: Vec<Value> = input
            .get("MultipartUpload")
            .and_then(|m| m.get("Parts"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(super::malformed_xml());
        }
        let stored: std::collections::HashMap<u32, PartRec> = self
            .parts(&scope, &id)?
            .into_iter()
            .map(|(_, p)| (p.part_number, p))
            .collect();
        let mut chosen: Vec<PartRec> = Vec::new();
        let mut last_pn = 0i64;
        for p in &requested {
            let pn = n(p, "PartNumber").unwrap_or(0);
            if pn <= last_pn {
                return Err(ApiError::client(
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. Parts must be ordered by part number.",
                )
                .with_field("UploadId", json!(id)));
            }
            last_pn = pn;
            let Some(part) = stored.get(&(pn as u32)) else {
                return Err(invalid_part()
                    .with_field("UploadId", json!(id))
                    .with_field("PartNumber", json!(pn.to_string())));
            };
            if let Some(e) = s(p, "ETag") {
                if e.trim_matches('"') != part.etag.trim_matches('"') {
                    return Err(invalid_part()
                        .with_field("UploadId", json!(id))
                        .with_field("PartNumber", json!(pn.to_string()))
                        .with_field("ETag", json!(e)));
                }
            }
            chosen.push(part.clone());
        }
        for (i, p) in chosen.iter().enumerate() {
            if i + 1 < chosen.len() && p.size < MIN_PART_SIZE {
                return Err(ApiError::client(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size",
                )
                .with_field("ProposedSize", json!(p.size.to_string()))
                .with_field("MinSizeAllowed", json!(MIN_PART_SIZE.to_string()))
                .with_field("PartNumber", json!(p.part_number.to_string()))
                .with_field("ETag", json!(p.etag)));
            }
        }
        let md5s: Vec<[u8; 16]> = chosen
            .iter()
            .map(|p| super::content::etag_md5(&p.etag).unwrap_or([0u8; 16]))
            .collect();
        let etag = multipart_etag(&md5s);
        let sources: Vec<(String, u64, u64)> = chosen
            .iter()
            .filter(|p| p.size > 0)
            .map(|p| (p.content.clone(), 0, p.size))
            .collect();
        let staged = self.content.stage_from(&sources, false).await?;
        let checksum = upload
            .checksum_algorithm
            .as_deref()
            .and_then(Algo::parse)
            .and_then(|a| {
                let parts: Option<Vec<String>> = chosen
                    .iter()
                    .map(|p| p.checksum.as_ref().map(|(_, v)| v.clone()))
                    .collect();
                composite_checksum(a, &parts?).map(|v| (a.name().to_string(), v))
            });
        let mut rec = upload.template.clone();
        rec.key = key.clone();
        rec.size = staged.digests.size;
        rec.etag = etag;
        rec.checksum = checksum;
        rec.parts = Some(chosen.iter().map(|p| PartSpan { size: p.size }).collect());
        rec.last_modified = now_secs();
        let installed = {
            let _g = self.guard();
            // Completed or aborted meanwhile?
            if self.upload(&scope, &bucket.name, &key, &id).is_err() {
                self.content.discard(&staged);
                return Err(no_such_upload(&id));
            }
            if let Err(e) = self.write_conditions(&scope, &bucket.name, &key, input) {
                self.content.discard(&staged);
                return Err(e);
            }
            let hash = self.content.commit(&staged)?;
            rec.content = Some(hash);
            let mut tx = Tx::default();
            let installed = self.install_version(&scope, &bucket, rec, &mut tx)?;
            self.drop_upload_parts(&scope, &id, &mut tx)?;
            tx.delete(&scope, T_UPLOADS, &upload_key(&bucket.name, &key, &id));
            self.apply(tx)?;
            installed
        };
        self.notify(
            ctx,
            &bucket,
            "ObjectCreated:CompleteMultipartUpload",
            &installed.rec,
        );
        let mut out = json!({
            "Location": format!("{}/{}/{}", ctx.endpoint, bucket.name, url_encode(&key)),
            "Bucket": bucket.name,
            "Key": key,
            "ETag": installed.rec.etag,
        });
        if installed.versioned {
            out["VersionId"] = json!(installed.rec.version_id);
        }
        if let Some((a, v)) = &installed.rec.checksum {
            if let Some(a) = Algo::parse(a) {
                out[a.member()] = json!(v);
                out["ChecksumType"] = json!("COMPOSITE");
            }
        }
        Ok(out)
    }

    pub(crate) fn abort_multipart_upload(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let id = s(input, "UploadId").unwrap_or_default();
        let _g = self.guard();
        self.upload(&scope, &bucket.name, &key, &id)?;
        let mut tx = Tx::default();
        self.drop_upload_parts(&scope, &id, &mut tx)?;
        tx.delete(&scope, T_UPLOADS, &upload_key(&bucket.name, &key, &id));
        self.apply(tx)?;
        Ok(json!({}))
    }

    pub(crate) fn list_parts(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let id = s(input, "UploadId").unwrap_or_default();
        let upload = self.upload(&scope, &bucket.name, &key, &id)?;
        let marker = n(input, "PartNumberMarker").unwrap_or(0);
        let max = n(input, "MaxParts").unwrap_or(1000).clamp(0, 1000) as usize;
        let all: Vec<PartRec> = self
            .parts(&scope, &id)?
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| i64::from(p.part_number) > marker)
            .collect();
        let truncated = all.len() > max;
        let page: Vec<&PartRec> = all.iter().take(max).collect();
        let parts: Vec<Value> = page
            .iter()
            .map(|p| {
                let mut v = json!({
                    "PartNumber": p.part_number,
                    "LastModified": epoch_value((p.last_modified * 1000.0).round() / 1000.0),
                    "ETag": p.etag,
                    "Size": p.size,
                });
                if let Some((a, c)) = &p.checksum {
                    if let Some(a) = Algo::parse(a) {
                        v[a.member()] = json!(c);
                    }
                }
                v
            })
            .collect();
        let mut out = json!({
            "Bucket": bucket.name,
            "Key": key,
            "UploadId": id,
            "PartNumberMarker": marker,
            "MaxParts": max,
            "IsTruncated": truncated,
            "Initiator": {"ID": upload.template.owner.clone(), "DisplayName": "webfile"},
            "Owner": owner_value(&upload.template.owner),
            "StorageClass": upload.template.storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
        });
        if !parts.is_empty() {
            out["Parts"] = json!(parts);
        }
        if let Some(last) = page.last() {
            out["NextPartNumberMarker"] = json!(last.part_number);
        }
        if let Some(a) = &upload.checksum_algorithm {
            out["ChecksumAlgorithm"] = json!(a);
            out["ChecksumType"] = json!("COMPOSITE");
        }
        Ok(out)
    }

    pub(crate) fn list_multipart_uploads(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let prefix = s(input, "Prefix").unwrap_or_default();
        let delimiter = s(input, "Delimiter").filter(|d| !d.is_empty());
        let max = n(input, "MaxUploads").unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = s(input, "KeyMarker").unwrap_or_default();
        let id_marker = s(input, "UploadIdMarker").unwrap_or_default();
        let url = s(input, "EncodingType").as_deref() == Some("url");
        let enc = |k: &str| if url { url_encode(k) } else { k.to_string() };
        let (items, _) = self
            .store
            .scan_json::<UploadRec>(
                &scope,
                T_UPLOADS,
                &obj_key(&bucket.name, &prefix),
                None,
                1_000_000,
            )
            .map_err(store_err)?;
        let mut uploads: Vec<UploadRec> = items.into_iter().map(|(_, u)| u).collect();
        uploads.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.total_cmp(&b.initiated)));
        let uploads: Vec<(String, UploadRec)> = uploads
            .into_iter()
            .filter(|u| {
                key_marker.is_empty()
                    || u.key > key_marker
                    || (u.key == key_marker && !id_marker.is_empty() && u.upload_id > id_marker)
            })
            .map(|u| (u.key.clone(), u))
            .collect();
        let (page, truncated) = util::group(&uploads, &prefix, delimiter.as_deref(), max);
        let mut list = Vec::new();
        let mut prefixes = Vec::new();
        let mut next: Option<(String, String)> = None;
        for it in page {
            match it {
                util::Item::Entry(u) => {
                    next = Some((u.key.clone(), u.upload_id.clone()));
                    list.push(json!({
                        "UploadId": u.upload_id,
                        "Key": enc(&u.key),
                        "Initiated": epoch_value((u.initiated * 1000.0).round() / 1000.0),
                        "StorageClass": u.template.storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
                        "Owner": owner_value(&u.template.owner),
                        "Initiator": {"ID": u.template.owner, "DisplayName": "webfile"},
                    }));
                }
                util::Item::Prefix(p) => {
                    next = Some((p.clone(), String::new()));
                    prefixes.push(json!({"Prefix": enc(&p)}));
                }
            }
        }
        let mut out = json!({
            "Bucket": bucket.name,
            "KeyMarker": enc(&key_marker),
            "UploadIdMarker": id_marker,
            "Prefix": enc(&prefix),
            "MaxUploads": max,
            "IsTruncated": truncated,
        });
        if !list.is_empty() {
            out["Uploads"] = json!(list);
        }
        if !prefixes.is_empty() {
            out["CommonPrefixes"] = json!(prefixes);
        }
        if let Some(d) = &delimiter {
            out["Delimiter"] = json!(enc(d));
        }
        if truncated {
            if let Some((k, u)) = next {
                out["NextKeyMarker"] = json!(enc(&k));
                out["NextUploadIdMarker"] = json!(u);
            }
        }
        Ok(out)
    }
}
