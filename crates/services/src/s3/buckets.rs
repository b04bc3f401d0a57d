//! Bucket operations: create/head/list/delete, location, versioning, and the stored
//! configurations (tagging, policy, CORS, encryption, ownership, public access block, website,
//! lifecycle, notifications, ACL).

use super::model::*;
use super::util::valid_bucket_name;
use super::{malformed_xml, owner_value, s, store_err, S3};
use crate::RequestContext;
use fc_protocol::value::{epoch_value, now_secs};
use fc_protocol::ApiError;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Map, Value};

fn bucket_name(input: &Value) -> Result<String, ApiError> {
    s(input, "Bucket").ok_or_else(|| ApiError::missing("InvalidRequest", "Bucket"))
}

impl S3 {
    pub(crate) fn save_bucket(&self, scope: &Scope, b: &BucketRec) -> Result<(), ApiError> {
        let written = self
            .store
            .put_json(scope, T_BUCKETS, &b.name, b)
            .map_err(store_err);
        self.buckets_changed();
        written
    }

    /// The bucket of `input`, checked against the bucket policy.
    pub(crate) fn bucket_for(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<(Scope, BucketRec), ApiError> {
        let name = bucket_name(input)?;
        let (scope, b) = self.bucket(&name)?;
        if s(input, "ExpectedBucketOwner").is_some_and(|o| o != b.owner) {
            return Err(super::access_denied());
        }
        self.authorize(ctx, &b, s(input, "Key").as_deref())?;
        Ok((scope, b))
    }

    pub(crate) fn list_buckets(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let scope = Scope::global(ctx.account.clone());
        let prefix = s(input, "Prefix").unwrap_or_default();
        let max = super::n(input, "MaxBuckets").map(|m| m.clamp(1, 10000) as usize);
        let after = s(input, "ContinuationToken");
        let region_filter = s(input, "BucketRegion");
        let (items, _) = self
            .store
            .scan_json::<BucketRec>(&scope, T_BUCKETS, &prefix, after.as_deref(), 100_000)
            .map_err(store_err)?;
        let mut buckets = Vec::new();
        let mut next = None;
        for (_, b) in items {
            if region_filter.as_deref().is_some_and(|r| r != b.region) {
                continue;
            }
            if max.is_some_and(|m| buckets.len() >= m) {
                next = buckets.last().and_then(|v: &Value| v.get("Name").cloned());
                break;
            }
            buckets.push(json!({
                "Name": b.name,
                "CreationDate": epoch_value(b.created),
                "BucketRegion": b.region,
            }));
        }
        let mut out = json!({"Buckets": buckets, "Owner": owner_value(&ctx.account)});
        if let Some(n) = next {
            out["ContinuationToken"] = n;
        }
        if !prefix.is_empty() {
            out["Prefix"] = json!(prefix);
        }
        Ok(out)
    }

    pub(crate) fn create_bucket(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let name = bucket_name(input)?;
        if !valid_bucket_name(&name) {
            return Err(ApiError::client(
                "InvalidBucketName",
                "The specified bucket is not valid.",
            )
            .with_field("BucketName", json!(name)));
        }
        let constraint = input
            .get("CreateBucketConfiguration")
            .and_then(|c| s(c, "LocationConstraint"))
            .filter(|c| !c.is_empty());
        let region = match (&constraint, ctx.region.as_str()) {
            (None, "us-east-1") => "us-east-1".to_string(),
            (None, _) => {
                return Err(ApiError::client(
                    "IllegalLocationConstraintException",
                    "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
                ))
            }
            (Some(c), _) if c == "us-east-1" => {
                return Err(invalid_argument_loc(c));
            }
            (Some(c), r) if c != r && r != "us-east-1" => {
                return Err(ApiError::client(
                    "IllegalLocationConstraintException",
                    format!("The {c} location constraint is incompatible for the region specific endpoint this request was sent to."),
                ))
            }
            (Some(c), _) => c.clone(),
        };
        let _g = self.guard();
        let sys = Scope::global("system");
        if let Some(idx) = self
            .store
            .get_json::<NameRec>(&sys, T_NAMES, &name)
            .map_err(store_err)?
        {
            if idx.account == ctx.account {
                if idx.region == "us-east-1" && region == "us-east-1" {
                    // us-east-1 answers 200 to re-creating your own bucket.
                    return Ok(json!({"Location": format!("/{name}")}));
                }
                return Err(ApiError::new(
                    409,
                    "BucketAlreadyOwnedByYou",
                    "Your previous request to create the named bucket succeeded and you already own it.",
                )
                .with_field("BucketName", json!(name)));
            }
            return Err(ApiError::new(
                409,
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
            )
            .with_field("BucketName", json!(name)));
        }
        let scope = Scope::global(ctx.account.clone());
        let rec = BucketRec {
            v: 1,
            name: name.clone(),
            region: region.clone(),
            owner: ctx.account.clone(),
            created: now_secs(),
            acl: s(input, "ACL"),
            ..BucketRec::default()
        };
        let mut tx = super::Tx::default();
        tx.put(
            &sys,
            T_NAMES,
            &name,
            &NameRec {
                account: ctx.account.clone(),
                region: region.clone(),
            },
        )?;
        tx.put(&scope, T_BUCKETS, &name, &rec)?;
        self.apply(tx)?;
        let location = if region == "us-east-1" {
            format!("/{name}")
        } else {
            format!("http://{name}.s3.amazonaws.com/")
        };
        Ok(json!({"Location": location, "BucketArn": format!("arn:aws:s3:::{name}")}))
    }

    pub(crate) fn head_bucket(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (_, b) = self.bucket_for(ctx, input).map_err(|e| {
            // HEAD carries no body: the code is all the client sees.
            if e.status == 404 {
                ApiError::new(404, "NotFound", "Not Found")
            } else {
                e
            }
        })?;
        Ok(
            json!({"BucketRegion": b.region, "BucketLocationType": null, "BucketArn": format!("arn:aws:s3:::{}", b.name)}),
        )
    }

    pub(crate) fn get_bucket_location(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (_, b) = self.bucket_for(ctx, input)?;
        let loc = if b.region == "us-east-1" {
            Value::Null
        } else {
            json!(b.region)
        };
        Ok(json!({ "LocationConstraint": loc }))
    }

    pub(crate) fn delete_bucket(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, b) = self.bucket_for(ctx, input)?;
        let _g = self.guard();
        let prefix = format!("{}/", b.name);
        let any_obj = self
            .store
            .scan(&scope, T_OBJECTS, &prefix, None, 1)
            .map_err(store_err)?;
        let any_ver = self
            .store
            .scan(&scope, T_VERSIONS, &prefix, None, 1)
            .map_err(store_err)?;
        if !any_obj.items.is_empty() || !any_ver.items.is_empty() {
            return Err(ApiError::new(
                409,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            )
            .with_field("BucketName", json!(b.name)));
        }
        // Abandon in-progress uploads with the bucket.
        let (uploads, _) = self
            .store
            .scan_json::<UploadRec>(&scope, T_UPLOADS, &prefix, None, 100_000)
            .map_err(store_err)?;
        let mut tx = super::Tx::default();
        for (k, u) in uploads {
            self.drop_upload_parts(&scope, &u.upload_id, &mut tx)?;
            tx.delete(&scope, T_UPLOADS, &k);
        }
        tx.delete(&scope, T_BUCKETS, &b.name);
        tx.delete(&Scope::global("system"), T_NAMES, &b.name);
        self.apply(tx)?;
        Ok(json!({}))
    }

    /// The simple stored configurations: put stores the payload, get returns it or the
    /// configuration's not-found error, delete clears it.
    pub(crate) fn bucket_config(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let op = ctx.operation.as_str();
        let (verb, what) = if let Some(w) = op.strip_prefix("Put") {
            ("put", w)
        } else if let Some(w) = op.strip_prefix("Get") {
            ("get", w)
        } else if let Some(w) = op.strip_prefix("Delete") {
            ("delete", w)
        } else {
            return Err(ApiError::not_implemented("s3", op));
        };
        let (scope, mut b) = self.bucket_for(ctx, input)?;
        let _g = self.guard();
        // Re-read under the lock.
        if let Some(fresh) = self
            .store
            .get_json::<BucketRec>(&scope, T_BUCKETS, &b.name)
            .map_err(store_err)?
        {
            b = fresh;
        }
        let name = b.name.clone();
        let not_found = |code: &str, msg: &str| {
            ApiError::new(404, code, msg).with_field("BucketName", json!(name))
        };
        match (verb, what) {
            ("put", "BucketTagging") => {
                let tagging = input.get("Tagging").cloned().ok_or_else(malformed_xml)?;
                let tags = tagging
                    .get("TagSet")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut seen = std::collections::HashSet::new();
                for t in &tags {
                    let k = s(t, "Key").unwrap_or_default();
                    if !seen.insert(k) {
                        return Err(invalid_tag(
                            "Cannot provide multiple Tags with the same key",
                        ));
                    }
                }
                b.tags = Some(json!(tags));
            }
            ("get", "BucketTagging") => {
                return match &b.tags {
                    Some(t) => Ok(json!({"TagSet": t})),
                    None => Err(not_found("NoSuchTagSet", "The TagSet does not exist")),
                }
            }
            ("delete", "BucketTagging") => b.tags = None,
            ("put", "BucketPolicy") => {
                let p = s(input, "Policy").ok_or_else(malformed_xml)?;
                if serde_json::from_str::<Value>(&p).is_err()
                    || fc_auth::policy::Policy::parse_resource(&p).is_err()
                {
                    return Err(ApiError::client(
                        "MalformedPolicy",
                        "Policies must be valid JSON and the first byte must be '{'",
                    ));
                }
                b.policy = Some(p);
            }
            ("get", "BucketPolicy") => {
                return match &b.policy {
                    Some(p) => Ok(json!({ "Policy": p })),
                    None => Err(not_found(
                        "NoSuchBucketPolicy",
                        "The bucket policy does not exist",
                    )),
                }
            }
            ("delete", "BucketPolicy") => b.policy = None,
            ("put", "BucketCors") => {
                let rules = input
                    .get("CORSConfiguration")
                    .and_then(|c| c.get("CORSRules"))
                    .cloned()
                    .ok_or_else(malformed_xml)?;
                b.cors = Some(rules);
            }
            ("get", "BucketCors") => {
                return match &b.cors {
                    Some(r) => Ok(json!({ "CORSRules": r })),
                    None => Err(not_found(
                        "NoSuchCORSConfiguration",
                        "The CORS configuration does not exist",
                    )),
                }
            }
            ("delete", "BucketCors") => b.cors = None,
            ("put", "BucketEncryption") => {
                b.encryption = input.get("ServerSideEncryptionConfiguration").cloned();
            }
            ("get", "BucketEncryption") => {
                let default = json!({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": false}]});
                return Ok(json!({
                    "ServerSideEncryptionConfiguration": b.encryption.clone().unwrap_or(default)
                }));
            }
            ("delete", "BucketEncryption") => b.encryption = None,
            ("put", "BucketOwnershipControls") => {
                b.ownership = input.get("OwnershipControls").cloned();
            }
            ("get", "BucketOwnershipControls") => {
                let default = json!({"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]});
                return Ok(json!({"OwnershipControls": b.ownership.clone().unwrap_or(default)}));
            }
            ("delete", "BucketOwnershipControls") => b.ownership = None,
            ("put", "PublicAccessBlock") => {
                b.public_access_block = input.get("PublicAccessBlockConfiguration").cloned();
            }
            ("get", "PublicAccessBlock") => {
                return match &b.public_access_block {
                    Some(c) => Ok(json!({ "PublicAccessBlockConfiguration": c })),
                    None => Err(not_found(
                        "NoSuchPublicAccessBlockConfiguration",
                        "The public access block configuration was not found",
                    )),
                }
            }
            ("delete", "PublicAccessBlock") => b.public_access_block = None,
            ("put", "BucketWebsite") => {
                b.website = input.get("WebsiteConfiguration").cloned();
            }
            ("get", "BucketWebsite") => {
                return match &b.website {
                    Some(Value::Object(m)) => Ok(Value::Object(m.clone())),
                    _ => Err(not_found(
                        "NoSuchWebsiteConfiguration",
                        "The specified bucket does not have a website configuration",
                    )),
                }
            }
            ("delete", "BucketWebsite") => b.website = None,
            _ => return Err(ApiError::not_implemented("s3", op)),
        }
        self.save_bucket(&scope, &b)?;
        Ok(json!({}))
    }

    pub(crate) fn put_bucket_versioning(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, _) = self.bucket_for(ctx, input)?;
        let status = input
            .get("VersioningConfiguration")
            .and_then(|c| s(c, "Status"));
        let _g = self.guard();
        let name = bucket_name(input)?;
        let (_, mut b) = self.bucket(&name)?;
        match status.as_deref() {
            Some("Enabled") | Some("Suspended") => b.versioning = status,
            None => {}
            Some(_) => return Err(malformed_xml()),
        }
        self.save_bucket(&scope, &b)?;
        Ok(json!({}))
    }

    pub(crate) fn get_bucket_versioning(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (_, b) = self.bucket_for(ctx, input)?;
        Ok(match b.versioning {
            Some(st) => json!({"Status": st}),
            None => json!({}),
        })
    }

    pub(crate) fn put_bucket_lifecycle(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, _) = self.bucket_for(ctx, input)?;
        let rules = input
            .get("LifecycleConfiguration")
            .and_then(|c| c.get("Rules"))
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(malformed_xml)?;
        for r in &rules {
            super::lifecycle::validate_rule(r)?;
        }
        let _g = self.guard();
        let (_, mut b) = self.bucket(&bucket_name(input)?)?;
        b.lifecycle = Some(json!(rules));
        self.save_bucket(&scope, &b)?;
        Ok(json!({"TransitionDefaultMinimumObjectSize": "all_storage_classes_128K"}))
    }

    pub(crate) fn get_bucket_lifecycle(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (_, b) = self.bucket_for(ctx, input)?;
        match b.lifecycle {
            Some(r) => Ok(
                json!({"Rules": r, "TransitionDefaultMinimumObjectSize": "all_storage_classes_128K"}),
            ),
            None => Err(ApiError::new(
                404,
                "NoSuchLifecycleConfiguration",
                "The lifecycle configuration does not exist",
            )
            .with_field("BucketName", json!(b.name))),
        }
    }

    pub(crate) fn delete_bucket_lifecycle(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, _) = self.bucket_for(ctx, input)?;
        let _g = self.guard();
        let (_, mut b) = self.bucket(&bucket_name(input)?)?;
        b.lifecycle = None;
        self.save_bucket(&scope, &b)?;
        Ok(json!({}))
    }

    pub(crate) fn put_bucket_notification(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, _) = self.bucket_for(ctx, input)?;
        let mut conf = input
            .get("NotificationConfiguration")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let name = bucket_name(input)?;
        let queues = self.validate_notification(&name, &mut conf)?;
        {
            let _g = self.guard();
            let (_, mut b) = self.bucket(&name)?;
            let empty = conf.as_object().is_none_or(Map::is_empty);
            b.notification = (!empty).then_some(conf);
            self.save_bucket(&scope, &b)?;
        }
        for q in queues {
            self.send_test_event(ctx, &name, &q);
        }
        Ok(json!({}))
    }

    pub(crate) fn get_bucket_notification(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (_, b) = self.bucket_for(ctx, input)?;
        Ok(b.notification.unwrap_or_else(|| json!({})))
    }

    fn acl_value(&self, owner: &str) -> Value {
        json!({
            "Owner": owner_value(owner),
            "Grants": [{
                "Grantee": {"Type": "CanonicalUser", "ID": super::canonical_id(owner), "DisplayName": "webfile"},
                "Permission": "FULL_CONTROL"
            }]
        })
    }

    pub(crate) fn get_bucket_acl(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (_, b) = self.bucket_for(ctx, input)?;
        Ok(self.acl_value(&b.owner))
    }

    pub(crate) fn put_bucket_acl(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, _) = self.bucket_for(ctx, input)?;
        let _g = self.guard();
        let (_, mut b) = self.bucket(&bucket_name(input)?)?;
        b.acl = s(input, "ACL").or(b.acl);
        self.save_bucket(&scope, &b)?;
        Ok(json!({}))
    }

    pub(crate) fn get_object_acl(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, b) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        self.find_version(&scope, &b.name, &key, s(input, "VersionId").as_deref())?;
        Ok(self.acl_value(&b.owner))
    }

    pub(crate) fn put_object_acl(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (scope, b) = self.bucket_for(ctx, input)?;
        let key = s(input, "Key").unwrap_or_default();
        self.find_version(&scope, &b.name, &key, s(input, "VersionId").as_deref())?;
        Ok(json!({}))
    }

    pub(crate) fn get_bucket_policy_status(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let (_, b) = self.bucket_for(ctx, input)?;
        let public = b
            .policy
            .as_deref()
            .is_some_and(|p| p.contains("\"*\"") && p.contains("Allow"));
        Ok(json!({"PolicyStatus": {"IsPublic": public}}))
    }
}

fn invalid_argument_loc(c: &str) -> ApiError {
    ApiError::client(
        "InvalidLocationConstraint",
        "The specified location-constraint is not valid",
    )
    .with_field("LocationConstraint", json!(c))
}

pub(crate) fn invalid_tag(msg: &str) -> ApiError {
    ApiError::client("InvalidTag", msg)
}
