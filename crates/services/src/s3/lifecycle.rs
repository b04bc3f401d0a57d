//! Lifecycle rules: validation, filters, and the expiration sweep the server runs every minute
//! (`Expiration` Days/Date, `ExpiredObjectDeleteMarker`, `NoncurrentVersionExpiration`,
//! `AbortIncompleteMultipartUpload`). Transitions are stored but have nothing to do here.

use super::model::*;
use super::util::next_midnight;
use super::{malformed_xml, store_err, Tx, S3};
use fc_protocol::ApiError;
use fc_store::{Scope, StoreExt};
use serde_json::Value;

const DAY: f64 = 86_400.0;

/// Check one rule of a `PutBucketLifecycleConfiguration`.
pub fn validate_rule(r: &Value) -> Result<(), ApiError> {
    match r.get("Status").and_then(Value::as_str) {
        Some("Enabled") | Some("Disabled") => {}
        _ => return Err(malformed_xml()),
    }
    let has_action = [
        "Expiration",
        "Transitions",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionTransitions",
        "AbortIncompleteMultipartUpload",
    ]
    .iter()
    .any(|k| r.get(*k).is_some_and(|v| !v.is_null()));
    if !has_action {
        return Err(ApiError::client(
            "InvalidRequest",
            "At least one action needs to be specified in a rule",
        ));
    }
    if let Some(e) = r.get("Expiration") {
        let days = e.get("Days").and_then(Value::as_i64);
        if days.is_some_and(|d| d <= 0) {
            return Err(super::invalid_argument(
                "'Days' for Expiration action must be a positive integer",
            ));
        }
        if let Some(date) = e.get("Date").and_then(Value::as_f64) {
            if date.rem_euclid(DAY) != 0.0 {
                return Err(super::invalid_argument("'Date' must be at midnight GMT"));
            }
        }
    }
    Ok(())
}

/// What a rule's filter selects.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RuleFilter {
    pub prefix: String,
    pub tags: Vec<(String, String)>,
    pub greater_than: Option<u64>,
    pub less_than: Option<u64>,
}

fn tag_of(v: &Value) -> (String, String) {
    (
        v.get("Key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        v.get("Value")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

impl RuleFilter {
    pub fn of(rule: &Value) -> RuleFilter {
        let mut f = RuleFilter::default();
        if let Some(p) = rule.get("Prefix").and_then(Value::as_str) {
            f.prefix = p.to_string();
        }
        let Some(filter) = rule.get("Filter") else {
            return f;
        };
        let parts = filter.get("And").unwrap_or(filter);
        if let Some(p) = parts.get("Prefix").and_then(Value::as_str) {
            f.prefix = p.to_string();
        }
        if let Some(t) = parts.get("Tag") {
            f.tags.push(tag_of(t));
        }
        for t in parts
            .get("Tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            f.tags.push(tag_of(t));
        }
        f.greater_than = parts.get("ObjectSizeGreaterThan").and_then(Value::as_u64);
        f.less_than = parts.get("ObjectSizeLessThan").and_then(Value::as_u64);
        f
    }

    pub fn matches(&self, rec: &ObjectRec) -> bool {
        rec.key.starts_with(&self.prefix)
            && self.tags.iter().all(|t| rec.tags.contains(t))
            && self.greater_than.is_none_or(|g| rec.size > g)
            && self.less_than.is_none_or(|l| rec.size < l)
    }
}

/// Whether a current object is due under an `Expiration` action at `now`.
pub fn current_due(expiration: &Value, rec: &ObjectRec, now: f64) -> bool {
    if let Some(days) = expiration.get("Days").and_then(Value::as_f64) {
        return next_midnight(rec.last_modified + days * DAY) <= now;
    }
    if let Some(date) = expiration.get("Date").and_then(Value::as_f64) {
        return now >= date;
    }
    false
}

/// Whether a noncurrent version is due under a `NoncurrentVersionExpiration` action.
pub fn noncurrent_due(action: &Value, rec: &ObjectRec, now: f64) -> bool {
    let Some(days) = action.get("NoncurrentDays").and_then(Value::as_f64) else {
        return false;
    };
    let since = rec.noncurrent_since.unwrap_or(rec.last_modified);
    next_midnight(since + days * DAY) <= now
}

impl S3 {
    /// Apply every bucket's lifecycle rules at `now` (seconds since the epoch); returns how
    /// many objects, versions and uploads were removed.
    pub fn expire(&self, now: f64) -> Result<u64, ApiError> {
        let mut count = 0u64;
        for scope in self.store.scopes(T_BUCKETS).map_err(store_err)? {
            let (buckets, _) = self
                .store
                .scan_json::<BucketRec>(&scope, T_BUCKETS, "", None, 100_000)
                .map_err(store_err)?;
            for (_, b) in buckets {
                let Some(rules) = b.lifecycle.as_ref().and_then(Value::as_array) else {
                    continue;
                };
                for rule in rules {
                    if rule.get("Status").and_then(Value::as_str) != Some("Enabled") {
                        continue;
                    }
                    count += self.apply_rule(&scope, &b, rule, now)?;
                }
            }
        }
        Ok(count)
    }

    fn apply_rule(
        &self,
        scope: &Scope,
        b: &BucketRec,
        rule: &Value,
        now: f64,
    ) -> Result<u64, ApiError> {
        let filter = RuleFilter::of(rule);
        let mut count = 0;
        let prefix = obj_key(&b.name, &filter.prefix);
        if let Some(exp) = rule.get("Expiration") {
            let (items, _) = self
                .store
                .scan_json::<ObjectRec>(scope, T_OBJECTS, &prefix, None, 10_000_000)
                .map_err(store_err)?;
            let remove_markers = exp
                .get("ExpiredObjectDeleteMarker")
                .and_then(Value::as_bool)
                == Some(true);
            for (_, rec) in items {
                let _g = self.guard();
                // Re-read the bucket: versioning may have changed.
                let (_, fresh) = match self.bucket(&b.name) {
                    Ok(x) => x,
                    Err(_) => return Ok(count),
                };
                let mut tx = Tx::default();
                if rec.delete_marker {
                    if remove_markers && self.noncurrent(scope, &b.name, &rec.key)?.is_empty() {
                        self.delete_one(scope, &fresh, &rec.key, Some(&rec.version_id), &mut tx)?;
                        self.apply(tx)?;
                        count += 1;
                    }
                    continue;
                }
                if filter.matches(&rec) && current_due(exp, &rec, now) {
                    self.delete_one(scope, &fresh, &rec.key, None, &mut tx)?;
                    self.apply(tx)?;
                    count += 1;
                }
            }
        }
        if let Some(action) = rule.get("NoncurrentVersionExpiration") {
            let (items, _) = self
                .store
                .scan_json::<ObjectRec>(scope, T_VERSIONS, &prefix, None, 10_000_000)
                .map_err(store_err)?;
            let keep = action
                .get("NewerNoncurrentVersions")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let mut seen: std::collections::HashMap<String, u64> = Default::default();
            for (k, rec) in items {
                let newer = seen.entry(rec.key.clone()).or_insert(0);
                *newer += 1;
                if *newer <= keep {
                    continue;
                }
                if filter.matches(&rec) && noncurrent_due(action, &rec, now) {
                    let _g = self.guard();
                    let mut tx = Tx::default();
                    tx.unref_rec(&rec);
                    tx.delete(scope, T_VERSIONS, &k);
                    self.apply(tx)?;
                    count += 1;
                }
            }
        }
        if let Some(days) = rule
            .get("AbortIncompleteMultipartUpload")
            .and_then(|a| a.get("DaysAfterInitiation"))
            .and_then(Value::as_f64)
        {
            let (uploads, _) = self
                .store
                .scan_json::<UploadRec>(scope, T_UPLOADS, &prefix, None, 10_000_000)
                .map_err(store_err)?;
            for (k, u) in uploads {
                if next_midnight(u.initiated + days * DAY) <= now {
                    let _g = self.guard();
                    let mut tx = Tx::default();
                    self.drop_upload_parts(scope, &u.upload_id, &mut tx)?;
                    tx.delete(scope, T_UPLOADS, &k);
                    self.apply(tx)?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}
