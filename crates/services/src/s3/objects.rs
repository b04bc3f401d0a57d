//! Object operations: put (streamed to disk), get/head (ranges, conditions, parts), delete,
//! copy, listings (V1, V2, versions), tagging and attributes; and the version bookkeeping every
//! write shares.

use super::content::{Algo, Staged, INLINE_MAX};
use super::model::*;
use super::util::{self, after_all, common_prefix, etag_matches, parse_range, url_encode};
use super::{invalid_argument, n, no_such_key, owner_value, s, store_err, Tx, S3};
use crate::{BodyIn, BodyOut, Reply, RequestContext};
use base64::Engine;
use fc_protocol::value::{epoch_value, now_secs};
use fc_protocol::ApiError;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// What a write did, for the response and the notification.
pub(crate) struct Installed {
    pub rec: ObjectRec,
    /// Whether the version id is reported (versioning was ever configured).
    pub versioned: bool,
}

fn bad_digest(what: &str) -> ApiError {
    ApiError::client(
        "BadDigest",
        format!("The {what} you specified did not match the calculated checksum."),
    )
}

fn precondition_failed(cond: &str) -> ApiError {
    ApiError::new(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    )
    .with_field("Condition", json!(cond))
}

fn not_modified() -> ApiError {
    ApiError::new(304, "NotModified", "Not Modified")
}

/// Tags from a `Tagging` structure value (`{"TagSet": [{"Key","Value"}]}`).
pub(crate) fn tags_of(tagging: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in tagging
        .get("TagSet")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let k = s(t, "Key").unwrap_or_default();
        if out.iter().any(|(x, _)| *x == k) {
            return Err(super::buckets::invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
        out.push((k, s(t, "Value").unwrap_or_default()));
    }
    check_tags(&out)?;
    Ok(out)
}

fn check_tags(tags: &[(String, String)]) -> Result<(), ApiError> {
    if tags.len() > 10 {
        return Err(super::buckets::invalid_tag(
            "Object tags cannot be greater than 10",
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(super::buckets::invalid_tag(
                "The TagKey you have provided is invalid",
            ));
        }
        if v.chars().count() > 256 {
            return Err(super::buckets::invalid_tag(
                "The TagValue you have provided is invalid",
            ));
        }
    }
    Ok(())
}

fn tagset(tags: &[(String, String)]) -> Value {
    json!(tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect::<Vec<_>>())
}

/// The content headers and metadata of an object from a put/copy/create input.
pub(crate) fn object_template(input: &Value, owner: &str) -> Result<ObjectRec, ApiError> {
    let metadata: BTreeMap<String, String> = input
        .get("Metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let content_encoding = s(input, "ContentEncoding").and_then(|e| {
        let rest: Vec<&str> = e
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        (!rest.is_empty()).then(|| rest.join(","))
    });
    let tags = match s(input, "Tagging") {
        Some(h) => {
            let t = util::parse_tag_header(&h);
            check_tags(&t)?;
            t
        }
        None => Vec::new(),
    };
    Ok(ObjectRec {
        v: 1,
        content_type: s(input, "ContentType"),
        content_encoding,
        content_disposition: s(input, "ContentDisposition"),
        content_language: s(input, "ContentLanguage"),
        cache_control: s(input, "CacheControl"),
        expires: input.get("Expires").and_then(Value::as_f64),
        website_redirect: s(input, "WebsiteRedirectLocation"),
        metadata,
        tags,
        storage_class: s(input, "StorageClass").filter(|c| c != "STANDARD"),
        sse: s(input, "ServerSideEncryption"),
        owner: owner.to_string(),
        ..ObjectRec::default()
    })
}

/// The checksum algorithm a request asks for (header value, sdk algorithm, or trailer).
fn requested_algo(input: &Value) -> Option<Algo> {
    for a in Algo::ALL {
        if input.get(a.member()).is_some_and(|v| !v.is_null()) {
            return Some(a);
        }
    }
    s(input, "ChecksumAlgorithm").and_then(|a| Algo::parse(&a))
}

/// Whether the body uses aws-chunked framing: `Some(true)` when a header says so, `None` to
/// sniff the first bytes.
fn chunked_hint(input: &Value) -> Option<bool> {
    let by_encoding =
        s(input, "ContentEncoding").is_some_and(|e| e.to_ascii_lowercase().contains("aws-chunked"));
    let by_sha = s(input, "__ContentSha256").is_some_and(|v| v.starts_with("STREAMING-"));
    if by_encoding || by_sha {
        Some(true)
    } else if s(input, "__ContentSha256").is_some() {
        Some(false)
    } else {
        None
    }
}

/// Whether a put must compute SHA-256 and the CRCs besides MD5: to check a signed payload
/// hash or a checksum (declared in a header, requested, or possibly in an aws-chunked
/// trailer). A plain unsigned upload needs MD5 (its ETag) only.
pub(crate) fn needs_full_digests(input: &Value, chunked: Option<bool>) -> bool {
    let signed_hash = s(input, "__ContentSha256")
        .is_some_and(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    signed_hash || chunked != Some(false) || requested_algo(input).is_some()
}

/// Verify the checksums a request declared (headers, trailers, Content-MD5) against the
/// staged body; the checksum to record.
pub(crate) fn verify_checksums(
    input: &Value,
    staged: &Staged,
) -> Result<Option<(String, String)>, ApiError> {
    let d = &staged.digests;
    // The payload hash the request was signed with (when the server passes it on).
    if let Some(sha) = s(input, "__ContentSha256") {
        let is_hash = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hash && !sha.eq_ignore_ascii_case(&d.sha256_hex) {
            return Err(ApiError::client(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
            .with_field("ClientComputedContentSHA256", json!(sha))
            .with_field("S3ComputedContentSHA256", json!(d.sha256_hex)));
        }
    }
    if let Some(md5) = s(input, "ContentMD5") {
        let ours = base64::engine::general_purpose::STANDARD.encode(d.md5);
        if md5.trim() != ours {
            return Err(ApiError::client(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    let mut recorded = None;
    for a in Algo::ALL {
        let declared = s(input, a.member())
            .or_else(|| {
                staged
                    .trailers
                    .iter()
                    .find(|(k, _)| *k == a.header())
                    .map(|(_, v)| v.clone())
            })
            .filter(|v| !v.is_empty());
        if let Some(v) = declared {
            let ours = d.checksum(a).unwrap_or_default();
            if v.trim() != ours {
                return Err(bad_digest(a.name()));
            }
            if recorded.is_none() {
                recorded = Some((a.name().to_string(), ours));
            }
        }
    }
    if recorded.is_none() {
        if let Some(a) = requested_algo(input) {
            if let Some(v) = d.checksum(a) {
                recorded = Some((a.name().to_string(), v));
            }
        }
    }
    Ok(recorded)
}

/// The content of an inline object.
pub(crate) fn inline_bytes(rec: &ObjectRec) -> Result<Option<Vec<u8>>, ApiError> {
    rec.inline
        .as_deref()
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| {
                    ApiError::internal(format!("object {}: bad inline data: {e}", rec.key))
                })
        })
        .transpose()
}

/// The `x-amz-checksum-*` members of an object for `ChecksumMode=ENABLED`.
fn checksum_members(rec: &ObjectRec, out: &mut Map<String, Value>) {
    if let Some((algo, v)) = &rec.checksum {
        if let Some(a) = Algo::parse(algo) {
            out.insert(a.member().to_string(), json!(v));
            let kind = if rec.parts.is_some() {
                "COMPOSITE"
            } else {
                "FULL_OBJECT"
            };
            out.insert("ChecksumType".to_string(), json!(kind));
        }
    }
}

impl S3 {
    /// A version of `key`: the current one, or the one with `version_id`.
    pub(crate) fn find_version(
        &self,
        scope: &Scope,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectRec, ApiError> {
        let current: Option<ObjectRec> = self
            .store
            .get_json(scope, T_OBJECTS, &obj_key(bucket, key))
            .map_err(store_err)?;
        let Some(vid) = version_id else {
            return match current {
                Some(c) if c.delete_marker => Err(no_such_key(key)
                    .with_header("x-amz-delete-marker", "true")
                    .with_header("x-amz-version-id", &c.version_id)),
                Some(c) => Ok(c),
                None => Err(no_such_key(key)),
            };
        };
        let found = match current {
            Some(c) if c.version_id == vid => Some(c),
            _ => self
                .noncurrent(scope, bucket, key)?
                .into_iter()
                .find(|r| r.version_id == vid),
        };
        match found {
            Some(r) if r.delete_marker => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )
            .with_field("Method", json!("GET"))
            .with_field("ResourceType", json!("DeleteMarker"))
            .with_header("x-amz-delete-marker", "true")),
            Some(r) => Ok(r),
            None if vid.is_empty() || vid.len() > 1024 => {
                Err(invalid_argument("Invalid version id specified"))
            }
            None => Err(ApiError::new(
                404,
                "NoSuchVersion",
                "The specified version does not exist.",
            )
            .with_field("Key", json!(key))
            .with_field("VersionId", json!(vid))),
        }
    }

    /// Noncurrent versions of a key, newest first, with their store keys.
    pub(crate) fn noncurrent_keyed(
        &self,
        scope: &Scope,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<(String, ObjectRec)>, ApiError> {
        let (items, _) = self
            .store
            .scan_json::<ObjectRec>(scope, T_VERSIONS, &ver_prefix(bucket, key), None, 1_000_000)
            .map_err(store_err)?;
        Ok(items)
    }

    pub(crate) fn noncurrent(
        &self,
        scope: &Scope,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<ObjectRec>, ApiError> {
        Ok(self
            .noncurrent_keyed(scope, bucket, key)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Make `rec` the current version of its key (call with the lock held); the previous
    /// current becomes noncurrent or, for the `null` version, goes away.
    pub(crate) fn install_version(
        &self,
        scope: &Scope,
        bucket: &BucketRec,
        mut rec: ObjectRec,
        tx: &mut Tx,
    ) -> Result<Installed, ApiError> {
        let enabled = bucket.versioning.as_deref() == Some("Enabled");
        rec.seq = self.next_seq();
        rec.version_id = if enabled {
            version_id(rec.seq)
        } else {
            "null".to_string()
        };
        let key = rec.key.clone();
        let okey = obj_key(&bucket.name, &key);
        let current: Option<ObjectRec> = self
            .store
            .get_json(scope, T_OBJECTS, &okey)
            .map_err(store_err)?;
        if let Some(mut cur) = current {
            if !enabled && cur.version_id == "null" {
                tx.unref_rec(&cur);
            } else {
                cur.noncurrent_since = Some(rec.last_modified);
                tx.put(
                    scope,
                    T_VERSIONS,
                    &ver_key(&bucket.name, &key, cur.seq),
                    &cur,
                )?;
            }
        }
        if !enabled && bucket.versioning.is_some() {
            // A suspended bucket keeps at most one `null` version (a bucket whose versioning
            // was never configured has no noncurrent versions at all).
            for (k, old) in self.noncurrent_keyed(scope, &bucket.name, &key)? {
                if old.version_id == "null" {
                    tx.unref_rec(&old);
                    tx.delete(scope, T_VERSIONS, &k);
                }
            }
        }
        if let Some(h) = &rec.content {
            tx.add_ref(h);
        }
        tx.put(scope, T_OBJECTS, &okey, &rec)?;
        Ok(Installed {
            rec,
            versioned: bucket.versioning.is_some(),
        })
    }

    pub(crate) async fn put_object(
        &self,
        ctx: &RequestContext,
        input: &Value,
        body: BodyIn,
    ) -> Result<Reply, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").ok_or_else(|| ApiError::missing("InvalidRequest", "Key"))?;
        if key.len() > 1024 {
            return Err(ApiError::client("KeyTooLongError", "Your key is too long"));
        }
        let mut template = object_template(input, &ctx.account)?;
        let with_sha1 = requested_algo(input) == Some(Algo::Sha1);
        let chunked = chunked_hint(input);
        let staged = self
            .content
            .stage(
                body,
                chunked,
                with_sha1,
                needs_full_digests(input, chunked),
                INLINE_MAX,
            )
            .await?;
        let checksum = match verify_checksums(input, &staged) {
            Ok(c) => c,
            Err(e) => {
                self.content.discard(&staged);
                return Err(e);
            }
        };
        template.key = key.clone();
        template.size = staged.digests.size;
        template.etag = staged.digests.etag();
        template.checksum = checksum;
        template.last_modified = now_secs();
        // The key stays held until the new version is durable (see `apply_async`); the commit
        // is awaited, so the worker serves other requests (whose commits join the same group).
        let held = self.key_guard(&bucket.name, &key).await;
        let pre = self.write_conditions(&scope, &bucket.name, &key, input);
        if let Err(e) = pre {
            self.content.discard(&staged);
            return Err(e);
        }
        match &staged.data {
            Some(d) if !d.is_empty() => {
                template.inline = Some(base64::engine::general_purpose::STANDARD.encode(d));
            }
            Some(_) => {}
            // Renames the staged file into place and syncs its directory.
            None => template.content = Some(super::blocking(|| self.content.commit(&staged))?),
        }
        let fresh = template.content.clone();
        let mut tx = Tx::default();
        let installed = match self.install_version(&scope, &bucket, template, &mut tx) {
            Ok(i) => i,
            Err(e) => {
                if let Some(h) = &fresh {
                    self.content.remove(h);
                }
                return Err(e);
            }
        };
        self.apply_async(tx, held, fresh).await?;
        self.notify(ctx, &bucket, "ObjectCreated:Put", &installed.rec);
        let mut out = json!({"ETag": installed.rec.etag, "Size": installed.rec.size});
        if installed.versioned {
            out["VersionId"] = json!(installed.rec.version_id);
        }
        if let Some((algo, v)) = &installed.rec.checksum {
            if let Some(a) = Algo::parse(algo) {
                out[a.member()] = json!(v);
                out["ChecksumType"] = json!("FULL_OBJECT");
            }
        }
        if let Some(sse) = &installed.rec.sse {
            out["ServerSideEncryption"] = json!(sse);
        }
        Ok(Reply {
            value: out,
            body: None,
        })
    }

    /// `If-Match` / `If-None-Match` on writes (call with the lock held).
    pub(crate) fn write_conditions(
        &self,
        scope: &Scope,
        bucket: &str,
        key: &str,
        input: &Value,
    ) -> Result<(), ApiError> {
        let if_match = s(input, "IfMatch");
        let if_none = s(input, "IfNoneMatch");
        if if_match.is_none() && if_none.is_none() {
            return Ok(());
        }
        let cur: Option<ObjectRec> = self
            .store
            .get_json(scope, T_OBJECTS, &obj_key(bucket, key))
            .map_err(store_err)?;
        let cur = cur.filter(|c| !c.delete_marker);
        if let Some(m) = if_match {
            match &cur {
                Some(c) if etag_matches(&m, &c.etag) => {}
                Some(_) => return Err(precondition_failed("If-Match")),
                None => return Err(no_such_key(key)),
            }
        }
        if let Some(m) = if_none {
            if let Some(c) = &cur {
                if m.trim() == "*" || etag_matches(&m, &c.etag) {
                    return Err(precondition_failed("If-None-Match"));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn get_object(
        &self,
        ctx: &RequestContext,
        input: &Value,
        with_body: bool,
    ) -> Result<Reply, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let rec = self.find_version(&scope, &bucket.name, &key, s(input, "VersionId").as_deref());
        let rec = match rec {
            Ok(r) => r,
            Err(e) if !with_body && e.status == 404 => {
                let mut e2 = ApiError::new(404, "NotFound", "Not Found");
                e2.headers = e.headers;
                return Err(e2);
            }
            Err(e) => return Err(e),
        };
        // Conditions (RFC 7232 order as S3 applies it).
        let lm = rec.last_modified.floor();
        let if_match = s(input, "IfMatch");
        if let Some(m) = &if_match {
            if !etag_matches(m, &rec.etag) {
                return Err(precondition_failed("If-Match"));
            }
        } else if let Some(t) = input.get("IfUnmodifiedSince").and_then(Value::as_f64) {
            if lm > t {
                return Err(precondition_failed("If-Unmodified-Since"));
            }
        }
        let if_none = s(input, "IfNoneMatch");
        if let Some(m) = &if_none {
            if etag_matches(m, &rec.etag) {
                return Err(not_modified().with_header("ETag", &rec.etag));
            }
        } else if let Some(t) = input.get("IfModifiedSince").and_then(Value::as_f64) {
            if lm <= t {
                return Err(not_modified().with_header("ETag", &rec.etag));
            }
        }
        let size = rec.size;
        let mut range: Option<(u64, u64)> = None;
        if let Some(pn) = n(input, "PartNumber") {
            let parts = rec.parts.clone().unwrap_or_else(|| vec![PartSpan { size }]);
            if pn < 1 || pn as usize > parts.len() {
                return Err(ApiError::new(
                    416,
                    "InvalidPartNumber",
                    "The requested partnumber is not satisfiable",
                )
                .with_field("PartNumberRequested", json!(pn.to_string()))
                .with_field("ActualPartCount", json!(parts.len().to_string())));
            }
            let start: u64 = parts[..pn as usize - 1].iter().map(|p| p.size).sum();
            let len = parts[pn as usize - 1].size;
            if rec.parts.is_some() || pn != 1 {
                range = Some((start, start + len.max(1) - 1));
            }
            if len == 0 {
                range = None;
            }
        } else {
            range = parse_range(s(input, "Range").as_deref(), size)?;
        }
        let mut out = Map::new();
        out.insert("AcceptRanges".into(), json!("bytes"));
        out.insert("LastModified".into(), epoch_value(lm));
        out.insert("ETag".into(), json!(rec.etag));
        if bucket.versioning.is_some() {
            out.insert("VersionId".into(), json!(rec.version_id));
        }
        let ct = rec
            .content_type
            .clone()
            .unwrap_or_else(|| "binary/octet-stream".to_string());
        out.insert("ContentType".into(), json!(ct));
        let opt = |out: &mut Map<String, Value>, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.insert(k.to_string(), json!(v));
            }
        };
        opt(&mut out, "ContentEncoding", &rec.content_encoding);
        opt(&mut out, "ContentDisposition", &rec.content_disposition);
        opt(&mut out, "ContentLanguage", &rec.content_language);
        opt(&mut out, "CacheControl", &rec.cache_control);
        opt(&mut out, "WebsiteRedirectLocation", &rec.website_redirect);
        opt(&mut out, "StorageClass", &rec.storage_class);
        opt(&mut out, "ServerSideEncryption", &rec.sse);
        if let Some(e) = rec.expires {
            out.insert("Expires".into(), epoch_value(e));
        }
        for (member, resp) in [
            ("ResponseContentType", "ContentType"),
            ("ResponseContentEncoding", "ContentEncoding"),
            ("ResponseContentDisposition", "ContentDisposition"),
            ("ResponseContentLanguage", "ContentLanguage"),
            ("ResponseCacheControl", "CacheControl"),
        ] {
            if let Some(v) = s(input, member) {
                out.insert(resp.into(), json!(v));
            }
        }
        if let Some(v) = input.get("ResponseExpires").filter(|v| !v.is_null()) {
            out.insert("Expires".into(), v.clone());
        }
        if !rec.metadata.is_empty() {
            out.insert("Metadata".into(), json!(rec.metadata));
        }
        if !rec.tags.is_empty() {
            out.insert("TagCount".into(), json!(rec.tags.len()));
        }
        if let Some(parts) = &rec.parts {
            if n(input, "PartNumber").is_some() {
                out.insert("PartsCount".into(), json!(parts.len()));
            }
        }
        if s(input, "ChecksumMode").as_deref() == Some("ENABLED") && range.is_none() {
            checksum_members(&rec, &mut out);
        }
        let (offset, len) = match range {
            Some((a, b)) => {
                out.insert(
                    "ContentRange".into(),
                    json!(format!("bytes {a}-{b}/{size}")),
                );
                out.insert("__status".into(), json!(206));
                (a, b - a + 1)
            }
            None => (0, size),
        };
        out.insert("ContentLength".into(), json!(len));
        let body = if !with_body {
            None
        } else if len == 0 {
            Some(BodyOut::Bytes(bytes::Bytes::new()))
        } else if let Some(b64) = &rec.inline {
            let data = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ApiError::internal(format!("object {key}: bad inline data: {e}")))?;
            let (a, b) = (offset as usize, (offset + len) as usize);
            if b > data.len() {
                return Err(ApiError::internal(format!(
                    "object {key}: inline data shorter than its size"
                )));
            }
            Some(BodyOut::Bytes(bytes::Bytes::from(data).slice(a..b)))
        } else {
            let hash = rec
                .content
                .as_deref()
                .ok_or_else(|| ApiError::internal(format!("object {key} has no content")))?;
            Some(BodyOut::File {
                path: self.content.path(hash),
                offset,
                len,
            })
        };
        Ok(Reply {
            value: Value::Object(out),
            body,
        })
    }

    /// Delete the current object or one version (call with the lock held); the delete marker
    /// or version removed, for the response.
    pub(crate) fn delete_one(
        &self,
        scope: &Scope,
        bucket: &BucketRec,
        key: &str,
        version_id: Option<&str>,
        tx: &mut Tx,
    ) -> Result<Option<ObjectRec>, ApiError> {
        let okey = obj_key(&bucket.name, key);
        let current: Option<ObjectRec> = self
            .store
            .get_json(scope, T_OBJECTS, &okey)
            .map_err(store_err)?;
        match version_id {
            None => {
                if bucket.versioning.is_none() {
                    if let Some(c) = current {
                        tx.unref_rec(&c);
                        tx.delete(scope, T_OBJECTS, &okey);
                    }
                    return Ok(None);
                }
                let marker = ObjectRec {
                    v: 1,
                    key: key.to_string(),
                    delete_marker: true,
                    last_modified: now_secs(),
                    owner: bucket.owner.clone(),
                    ..ObjectRec::default()
                };
                let installed = self.install_version(scope, bucket, marker, tx)?;
                Ok(Some(installed.rec))
            }
            Some(vid) => {
                if let Some(c) = current.filter(|c| c.version_id == vid) {
                    tx.unref_rec(&c);
                    // Promote the newest noncurrent version.
                    let older = self.noncurrent_keyed(scope, &bucket.name, key)?;
                    match older.into_iter().next() {
                        Some((k, mut prev)) => {
                            tx.delete(scope, T_VERSIONS, &k);
                            prev.noncurrent_since = None;
                            tx.put(scope, T_OBJECTS, &okey, &prev)?;
                        }
                        None => tx.delete(scope, T_OBJECTS, &okey),
                    }
                    return Ok(Some(c));
                }
                for (k, r) in self.noncurrent_keyed(scope, &bucket.name, key)? {
                    if r.version_id == vid {
                        tx.unref_rec(&r);
                        tx.delete(scope, T_VERSIONS, &k);
                        return Ok(Some(r));
                    }
                }
                if vid != "null" && vid.len() != 32 {
                    return Err(invalid_argument("Invalid version id specified"));
                }
                Ok(None)
            }
        }
    }

    pub(crate) fn delete_object(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let vid = s(input, "VersionId");
        let removed = {
            let _g = self.guard();
            if let Some(m) = s(input, "IfMatch") {
                let cur: Option<ObjectRec> = self
                    .store
                    .get_json(&scope, T_OBJECTS, &obj_key(&bucket.name, &key))
                    .map_err(store_err)?;
                match cur {
                    Some(c) if !c.delete_marker && !etag_matches(&m, &c.etag) => {
                        return Err(precondition_failed("If-Match"))
                    }
                    None => return Err(no_such_key(&key)),
                    _ => {}
                }
            }
            let mut tx = Tx::default();
            let r = self.delete_one(&scope, &bucket, &key, vid.as_deref(), &mut tx)?;
            self.apply(tx)?;
            r
        };
        let mut out = json!({});
        match (&removed, &vid) {
            (Some(r), None) => {
                out["DeleteMarker"] = json!(true);
                out["VersionId"] = json!(r.version_id);
                self.notify(ctx, &bucket, "ObjectRemoved:DeleteMarkerCreated", r);
            }
            (Some(r), Some(v)) => {
                out["VersionId"] = json!(v);
                if r.delete_marker {
                    out["DeleteMarker"] = json!(true);
                }
                self.notify(ctx, &bucket, "ObjectRemoved:Delete", r);
            }
            (None, Some(v)) => {
                out["VersionId"] = json!(v);
            }
            (None, None) => {
                let r = ObjectRec {
                    key: key.clone(),
                    version_id: "null".into(),
                    ..ObjectRec::default()
                };
                self.notify(ctx, &bucket, "ObjectRemoved:Delete", &r);
            }
        }
        Ok(out)
    }

    pub(crate) fn delete_objects(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let del = input.get("Delete").ok_or_else(super::malformed_xml)?;
        let objs = del
            .get("Objects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if objs.len() > 1000 {
            return Err(super::malformed_xml());
        }
        let quiet = del.get("Quiet").and_then(Value::as_bool).unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        let mut events = Vec::new();
        {
            let _g = self.guard();
            for o in &objs {
                let key = s(o, "Key").unwrap_or_default();
                let vid = s(o, "VersionId");
                let mut tx = Tx::default();
                match self
                    .delete_one(&scope, &bucket, &key, vid.as_deref(), &mut tx)
                    .and_then(|r| self.apply(tx).map(|_| r))
                {
                    Ok(r) => {
                        let mut d = json!({"Key": key});
                        match (&r, &vid) {
                            (Some(m), None) => {
                                d["DeleteMarker"] = json!(true);
                                d["DeleteMarkerVersionId"] = json!(m.version_id);
                                events.push(("ObjectRemoved:DeleteMarkerCreated", m.clone()));
                            }
                            (r, Some(v)) => {
                                d["VersionId"] = json!(v);
                                if let Some(r) = r {
                                    if r.delete_marker {
                                        d["DeleteMarker"] = json!(true);
                                        d["DeleteMarkerVersionId"] = json!(v);
                                    }
                                    events.push(("ObjectRemoved:Delete", r.clone()));
                                }
                            }
                            (None, None) => events.push((
                                "ObjectRemoved:Delete",
                                ObjectRec {
                                    key: key.clone(),
                                    version_id: "null".into(),
                                    ..ObjectRec::default()
                                },
                            )),
                        }
                        if !quiet {
                            deleted.push(d);
                        }
                    }
                    Err(e) => {
                        let mut er = json!({"Key": key, "Code": e.code, "Message": e.message});
                        if let Some(v) = vid {
                            er["VersionId"] = json!(v);
                        }
                        errors.push(er);
                    }
                }
            }
        }
        for (name, r) in events {
            self.notify(ctx, &bucket, name, &r);
        }
        let mut out = json!({});
        if !deleted.is_empty() {
            out["Deleted"] = json!(deleted);
        }
        if !errors.is_empty() {
            out["Errors"] = json!(errors);
        }
        Ok(out)
    }

    /// The source of a copy: `bucket/key[?versionId=v]`, URL-encoded.
    pub(crate) fn copy_source(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<(BucketRec, ObjectRec), ApiError> {
        let raw = s(input, "CopySource")
            .ok_or_else(|| ApiError::missing("InvalidRequest", "CopySource"))?;
        let (path, query) = match raw.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (raw.clone(), None),
        };
        let path = fc_protocol::http::percent_decode(&path);
        let path = path.trim_start_matches('/');
        let (sb, sk) = path.split_once('/').ok_or_else(|| {
            invalid_argument("Invalid copy source object key")
                .with_field("ArgumentName", json!("x-amz-copy-source"))
        })?;
        let vid = query.and_then(|q| {
            fc_protocol::http::decode_form(q.as_bytes())
                .into_iter()
                .find(|(k, _)| k == "versionId")
                .map(|(_, v)| v)
        });
        let (sscope, sbucket) = self.bucket(sb)?;
        self.authorize(ctx, &sbucket, Some(sk))?;
        let rec = self.find_version(&sscope, sb, sk, vid.as_deref())?;
        // Source conditions.
        let lm = rec.last_modified.floor();
        if let Some(m) = s(input, "CopySourceIfMatch") {
            if !etag_matches(&m, &rec.etag) {
                return Err(precondition_failed("x-amz-copy-source-If-Match"));
            }
        } else if let Some(t) = input
            .get("CopySourceIfUnmodifiedSince")
            .and_then(Value::as_f64)
        {
            if lm > t {
                return Err(precondition_failed("x-amz-copy-source-If-Unmodified-Since"));
            }
        }
        if let Some(m) = s(input, "CopySourceIfNoneMatch") {
            if etag_matches(&m, &rec.etag) {
                return Err(precondition_failed("x-amz-copy-source-If-None-Match"));
            }
        } else if let Some(t) = input
            .get("CopySourceIfModifiedSince")
            .and_then(Value::as_f64)
        {
            if lm <= t {
                return Err(precondition_failed("x-amz-copy-source-If-Modified-Since"));
            }
        }
        Ok((sbucket, rec))
    }

    pub(crate) async fn copy_object(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let (sbucket, src) = self.copy_source(ctx, input)?;
        let replace_meta = s(input, "MetadataDirective").as_deref() == Some("REPLACE");
        let replace_tags = s(input, "TaggingDirective").as_deref() == Some("REPLACE");
        let same = sbucket.name == bucket.name && src.key == key;
        if same
            && !replace_meta
            && s(input, "StorageClass").is_none()
            && s(input, "ServerSideEncryption").is_none()
            && s(input, "WebsiteRedirectLocation").is_none()
        {
            return Err(ApiError::client(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let mut rec = if replace_meta {
            object_template(input, &ctx.account)?
        } else {
            let mut r = src.clone();
            r.tags = Vec::new();
            r.noncurrent_since = None;
            r.owner = ctx.account.clone();
            if let Some(sc) = s(input, "StorageClass") {
                r.storage_class = Some(sc).filter(|c| c != "STANDARD");
            }
            r
        };
        rec.tags = if replace_tags {
            let t = s(input, "Tagging")
                .map(|h| util::parse_tag_header(&h))
                .unwrap_or_default();
            check_tags(&t)?;
            t
        } else {
            src.tags.clone()
        };
        rec.key = key.clone();
        rec.size = src.size;
        rec.etag = src.etag.clone();
        rec.content = src.content.clone();
        rec.inline = src.inline.clone();
        rec.parts = src.parts.clone();
        rec.last_modified = now_secs();
        rec.checksum = src.checksum.clone();
        if let Some(a) = s(input, "ChecksumAlgorithm").and_then(|a| Algo::parse(&a)) {
            // Recompute the requested checksum over the stored content.
            if let Some(data) = inline_bytes(&src)? {
                let mut h = super::content::Hashes::new(a == Algo::Sha1);
                h.update(&data);
                rec.checksum = h.finish().checksum(a).map(|v| (a.name().to_string(), v));
            } else if let Some(h) = &src.content {
                let staged = self
                    .content
                    .stage_from(&[(h.clone(), 0, src.size)], a == Algo::Sha1)
                    .await?;
                rec.checksum = staged
                    .digests
                    .checksum(a)
                    .map(|v| (a.name().to_string(), v));
                self.content.discard(&staged);
            }
        }
        let installed = {
            let _g = self.guard();
            self.write_conditions(&scope, &bucket.name, &key, input)?;
            let mut tx = Tx::default();
            let i = self.install_version(&scope, &bucket, rec, &mut tx)?;
            self.apply(tx)?;
            i
        };
        self.notify(ctx, &bucket, "ObjectCreated:Copy", &installed.rec);
        let mut result = Map::new();
        result.insert("ETag".into(), json!(installed.rec.etag));
        result.insert(
            "LastModified".into(),
            epoch_value((installed.rec.last_modified * 1000.0).round() / 1000.0),
        );
        checksum_members(&installed.rec, &mut result);
        let mut out = json!({"CopyObjectResult": result});
        if installed.versioned {
            out["VersionId"] = json!(installed.rec.version_id);
        }
        if sbucket.versioning.is_some() {
            out["CopySourceVersionId"] = json!(src.version_id);
        }
        Ok(out)
    }

    /// Walk current objects (skipping delete markers) under `prefix` after `after`,
    /// collapsing common prefixes; at most `max` items and whether more follow.
    pub(crate) fn walk_current(
        &self,
        scope: &Scope,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<util::Item<ObjectRec>>, bool), ApiError> {
        let store_prefix = obj_key(bucket, prefix);
        let mut cursor: Option<String> = after.map(|a| {
            // Resuming after a common prefix skips everything under it.
            match common_prefix(a, prefix, delimiter) {
                Some(cp) if a == cp => obj_key(bucket, &after_all(&cp)),
                _ => obj_key(bucket, a),
            }
        });
        let mut out = Vec::new();
        loop {
            let (items, more) = self
                .store
                .scan_json::<ObjectRec>(scope, T_OBJECTS, &store_prefix, cursor.as_deref(), 1000)
                .map_err(store_err)?;
            if items.is_empty() {
                return Ok((out, false));
            }
            let mut jumped = false;
            for (skey, rec) in items {
                cursor = Some(skey.clone());
                if rec.delete_marker {
                    continue;
                }
                if let Some(cp) = common_prefix(&rec.key, prefix, delimiter) {
                    if out.len() == max {
                        return Ok((out, true));
                    }
                    out.push(util::Item::Prefix(cp.clone()));
                    cursor = Some(obj_key(bucket, &after_all(&cp)));
                    jumped = true;
                    break;
                }
                if out.len() == max {
                    return Ok((out, true));
                }
                out.push(util::Item::Entry(rec));
            }
            if !more && !jumped {
                return Ok((out, false));
            }
        }
    }

    pub(crate) fn list_objects(
        &self,
        ctx: &RequestContext,
        input: &Value,
        v2: bool,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let prefix = s(input, "Prefix").unwrap_or_default();
        let delimiter = s(input, "Delimiter").filter(|d| !d.is_empty());
        let max = n(input, "MaxKeys").unwrap_or(1000);
        if max < 0 {
            return Err(invalid_argument(
                "Argument maxKeys must be an integer between 0 and 2147483647",
            ));
        }
        let max = (max as usize).min(1000);
        let url = s(input, "EncodingType").as_deref() == Some("url");
        let enc = |k: &str| if url { url_encode(k) } else { k.to_string() };
        let token = s(input, "ContinuationToken");
        let after = if v2 {
            match &token {
                Some(t) => Some(decode_token(t)?),
                None => s(input, "StartAfter").filter(|a| !a.is_empty()),
            }
        } else {
            s(input, "Marker").filter(|a| !a.is_empty())
        };
        let (items, truncated) = self.walk_current(
            &scope,
            &bucket.name,
            &prefix,
            delimiter.as_deref(),
            after.as_deref(),
            max,
        )?;
        let fetch_owner = !v2 || input.get("FetchOwner").and_then(Value::as_bool) == Some(true);
        let mut contents = Vec::new();
        let mut prefixes = Vec::new();
        let mut last: Option<String> = None;
        for it in &items {
            match it {
                util::Item::Entry(r) => {
                    let mut o = json!({
                        "Key": enc(&r.key),
                        "LastModified": epoch_value((r.last_modified * 1000.0).round() / 1000.0),
                        "ETag": r.etag,
                        "Size": r.size,
                        "StorageClass": r.storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
                    });
                    if let Some((algo, _)) = &r.checksum {
                        o["ChecksumAlgorithm"] = json!([algo]);
                        o["ChecksumType"] = json!(if r.parts.is_some() {
                            "COMPOSITE"
                        } else {
                            "FULL_OBJECT"
                        });
                    }
                    if fetch_owner {
                        o["Owner"] = owner_value(&r.owner);
                    }
                    contents.push(o);
                    last = Some(r.key.clone());
                }
                util::Item::Prefix(p) => {
                    prefixes.push(json!({"Prefix": enc(p)}));
                    last = Some(p.clone());
                }
            }
        }
        let mut out = json!({
            "IsTruncated": truncated,
            "Name": bucket.name,
            "Prefix": enc(&prefix),
            "MaxKeys": max,
        });
        if !contents.is_empty() {
            out["Contents"] = json!(contents);
        }
        if !prefixes.is_empty() {
            out["CommonPrefixes"] = json!(prefixes);
        }
        if let Some(d) = &delimiter {
            out["Delimiter"] = json!(enc(d));
        }
        if url {
            out["EncodingType"] = json!("url");
        }
        if v2 {
            out["KeyCount"] = json!(items.len());
            if let Some(t) = &token {
                out["ContinuationToken"] = json!(t);
            }
            if let Some(sa) = s(input, "StartAfter") {
                out["StartAfter"] = json!(enc(&sa));
            }
            if truncated {
                if let Some(l) = &last {
                    out["NextContinuationToken"] = json!(encode_token(l));
                }
            }
        } else {
            out["Marker"] = json!(enc(&s(input, "Marker").unwrap_or_default()));
            if truncated && delimiter.is_some() {
                if let Some(l) = &last {
                    out["NextMarker"] = json!(enc(l));
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn list_object_versions(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let prefix = s(input, "Prefix").unwrap_or_default();
        let delimiter = s(input, "Delimiter").filter(|d| !d.is_empty());
        let max = n(input, "MaxKeys").unwrap_or(1000).clamp(0, 1000) as usize;
        let url = s(input, "EncodingType").as_deref() == Some("url");
        let enc = |k: &str| if url { url_encode(k) } else { k.to_string() };
        let key_marker = s(input, "KeyMarker").filter(|k| !k.is_empty());
        let vid_marker = s(input, "VersionIdMarker").filter(|k| !k.is_empty());
        let store_prefix = obj_key(&bucket.name, &prefix);
        // Keys from the marker key itself (for its remaining versions) onwards.
        let mut cursor: Option<String> = match (&key_marker, &vid_marker) {
            (Some(k), Some(_)) => {
                // The scan is strictly after its cursor: start just before the marker key.
                Some(just_before(&obj_key(&bucket.name, k)))
            }
            (Some(k), None) => Some(match common_prefix(k, &prefix, delimiter.as_deref()) {
                Some(cp) if *k == cp => obj_key(&bucket.name, &after_all(&cp)),
                _ => obj_key(&bucket.name, k),
            }),
            _ => None,
        };
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes = Vec::new();
        let mut count = 0usize;
        let mut truncated = false;
        let mut next_key: Option<String> = None;
        let mut next_vid: Option<String> = None;
        'outer: loop {
            let (items, more) = self
                .store
                .scan_json::<ObjectRec>(&scope, T_OBJECTS, &store_prefix, cursor.as_deref(), 500)
                .map_err(store_err)?;
            if items.is_empty() {
                break;
            }
            let mut jumped = false;
            for (skey, cur) in items {
                cursor = Some(skey.clone());
                if let Some(cp) = common_prefix(&cur.key, &prefix, delimiter.as_deref()) {
                    if count == max {
                        truncated = true;
                        break 'outer;
                    }
                    prefixes.push(json!({"Prefix": enc(&cp)}));
                    count += 1;
                    next_key = Some(cp.clone());
                    next_vid = None;
                    cursor = Some(obj_key(&bucket.name, &after_all(&cp)));
                    jumped = true;
                    break;
                }
                let mut all = vec![cur.clone()];
                all.extend(self.noncurrent(&scope, &bucket.name, &cur.key)?);
                let mut skipping =
                    key_marker.as_deref() == Some(cur.key.as_str()) && vid_marker.is_some();
                if key_marker.as_deref() == Some(cur.key.as_str()) && vid_marker.is_none() {
                    continue;
                }
                for (i, r) in all.iter().enumerate() {
                    if skipping {
                        if Some(r.version_id.as_str()) == vid_marker.as_deref() {
                            skipping = false;
                        }
                        continue;
                    }
                    if count == max {
                        truncated = true;
                        break 'outer;
                    }
                    let mut e = json!({
                        "Key": enc(&r.key),
                        "VersionId": r.version_id,
                        "IsLatest": i == 0,
                        "LastModified": epoch_value((r.last_modified * 1000.0).round() / 1000.0),
                        "Owner": owner_value(&r.owner),
                    });
                    if r.delete_marker {
                        markers.push(e);
                    } else {
                        e["ETag"] = json!(r.etag);
                        e["Size"] = json!(r.size);
                        e["StorageClass"] =
                            json!(r.storage_class.clone().unwrap_or_else(|| "STANDARD".into()));
                        versions.push(e);
                    }
                    count += 1;
                    next_key = Some(r.key.clone());
                    next_vid = Some(r.version_id.clone());
                }
            }
            if !more && !jumped {
                break;
            }
        }
        let mut out = json!({
            "IsTruncated": truncated,
            "Name": bucket.name,
            "Prefix": enc(&prefix),
            "MaxKeys": max,
            "KeyMarker": enc(&key_marker.clone().unwrap_or_default()),
            "VersionIdMarker": vid_marker.clone().unwrap_or_default(),
        });
        if !versions.is_empty() {
            out["Versions"] = json!(versions);
        }
        if !markers.is_empty() {
            out["DeleteMarkers"] = json!(markers);
        }
        if !prefixes.is_empty() {
            out["CommonPrefixes"] = json!(prefixes);
        }
        if let Some(d) = &delimiter {
            out["Delimiter"] = json!(enc(d));
        }
        if url {
            out["EncodingType"] = json!("url");
        }
        if truncated {
            if let Some(k) = next_key {
                out["NextKeyMarker"] = json!(enc(&k));
            }
            if let Some(v) = next_vid {
                out["NextVersionIdMarker"] = json!(v);
            }
        }
        Ok(out)
    }

    pub(crate) fn get_object_tagging(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let rec =
            self.find_version(&scope, &bucket.name, &key, s(input, "VersionId").as_deref())?;
        let mut out = json!({"TagSet": tagset(&rec.tags)});
        if bucket.versioning.is_some() {
            out["VersionId"] = json!(rec.version_id);
        }
        Ok(out)
    }

    fn update_tags(
        &self,
        ctx: &RequestContext,
        input: &Value,
        tags: Vec<(String, String)>,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let vid = s(input, "VersionId");
        let _g = self.guard();
        let rec = self.find_version(&scope, &bucket.name, &key, vid.as_deref())?;
        let okey = obj_key(&bucket.name, &key);
        let cur: Option<ObjectRec> = self
            .store
            .get_json(&scope, T_OBJECTS, &okey)
            .map_err(store_err)?;
        let mut updated = rec.clone();
        updated.tags = tags;
        if cur.is_some_and(|c| c.version_id == rec.version_id) {
            self.store
                .put_json(&scope, T_OBJECTS, &okey, &updated)
                .map_err(store_err)?;
        } else {
            self.store
                .put_json(
                    &scope,
                    T_VERSIONS,
                    &ver_key(&bucket.name, &key, rec.seq),
                    &updated,
                )
                .map_err(store_err)?;
        }
        let mut out = json!({});
        if bucket.versioning.is_some() {
            out["VersionId"] = json!(rec.version_id);
        }
        Ok(out)
    }

    pub(crate) fn put_object_tagging(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let tags = tags_of(input.get("Tagging").ok_or_else(super::malformed_xml)?)?;
        self.update_tags(ctx, input, tags)
    }

    pub(crate) fn delete_object_tagging(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        self.update_tags(ctx, input, Vec::new())
    }

    pub(crate) fn get_object_attributes(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, bucket) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        let rec =
            self.find_version(&scope, &bucket.name, &key, s(input, "VersionId").as_deref())?;
        let wanted: Vec<String> = input
            .get("ObjectAttributes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = json!({"LastModified": epoch_value(rec.last_modified.floor())});
        if bucket.versioning.is_some() {
            out["VersionId"] = json!(rec.version_id);
        }
        for w in wanted {
            match w.as_str() {
                "ETag" => out["ETag"] = json!(rec.etag.trim_matches('"')),
                "ObjectSize" => out["ObjectSize"] = json!(rec.size),
                "StorageClass" => {
                    out["StorageClass"] = json!(rec
                        .storage_class
                        .clone()
                        .unwrap_or_else(|| "STANDARD".into()))
                }
                "Checksum" => {
                    let mut m = Map::new();
                    checksum_members(&rec, &mut m);
                    if !m.is_empty() {
                        out["Checksum"] = Value::Object(m);
                    }
                }
                "ObjectParts" => {
                    if let Some(p) = &rec.parts {
                        out["ObjectParts"] = json!({"TotalPartsCount": p.len()});
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A version id: 32 URL-safe characters, ordered by creation.
pub(crate) fn version_id(seq: u64) -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{:016x}{}", seq, &rand[..16])
}

/// Continuation tokens are the last returned key, base64-encoded.
pub(crate) fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(last.as_bytes())
}

pub(crate) fn decode_token(t: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            invalid_argument("The continuation token provided is incorrect")
                .with_field("ArgumentName", json!("continuation-token"))
        })
}

/// A string sorting just before `s` (its last character decremented, then the largest
/// character), so that a strictly-after scan includes `s` itself.
fn just_before(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let last = chars.pop().unwrap_or('\0');
    let prev = char::from_u32((last as u32).saturating_sub(1)).unwrap_or('\0');
    chars.push(prev);
    chars.push('\u{10FFFF}');
    chars.into_iter().collect()
}
