//! Log group and log stream operations: create, delete, describe, retention, deletion
//! protection and tags.

use super::*;
use crate::common::store_error;
use fc_store::{to_json_bytes, Write};
use serde_json::json;

/// The retention periods AWS accepts, in days.
pub(super) const RETENTION_DAYS: [i64; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

const MAX_TAGS: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateLogGroupInput {
    log_group_name: String,
    #[serde(default)]
    kms_key_id: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    log_group_class: Option<String>,
    #[serde(default)]
    deletion_protection_enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupNameInput {
    log_group_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeLogGroupsInput {
    #[serde(default)]
    log_group_name_prefix: Option<String>,
    #[serde(default)]
    log_group_name_pattern: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    log_group_class: Option<String>,
    #[serde(default)]
    log_group_identifiers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListLogGroupsInput {
    #[serde(default)]
    log_group_name_pattern: Option<String>,
    #[serde(default)]
    log_group_class: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRetentionInput {
    log_group_name: String,
    retention_in_days: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletionProtectionInput {
    log_group_identifier: String,
    deletion_protection_enabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagLogGroupInput {
    log_group_name: String,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagLogGroupInput {
    log_group_name: String,
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagResourceInput {
    resource_arn: String,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagResourceInput {
    resource_arn: String,
    tag_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceArnInput {
    resource_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamInput {
    log_group_name: String,
    log_stream_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeLogStreamsInput {
    #[serde(default)]
    log_group_name: Option<String>,
    #[serde(default)]
    log_group_identifier: Option<String>,
    #[serde(default)]
    log_stream_name_prefix: Option<String>,
    #[serde(default)]
    order_by: Option<String>,
    #[serde(default)]
    descending: Option<bool>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let list: Vec<(String, String)> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    fc_types::tags::validate_all(&list).map_err(|e| invalid(e.to_string()))?;
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
    };
    for (k, v) in tags {
        if !ok(k) {
            return Err(validation(
                "tags",
                k,
                r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]+)$",
            ));
        }
        if !ok(v) {
            return Err(validation(
                "tags",
                v,
                r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
            ));
        }
    }
    Ok(())
}

fn check_group_class(class: &str) -> Result<(), ApiError> {
    if ["STANDARD", "INFREQUENT_ACCESS", "DELIVERY", "ESSENTIALS"].contains(&class) {
        Ok(())
    } else {
        Err(validation(
            "logGroupClass",
            class,
            "Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY, ESSENTIALS]",
        ))
    }
}

impl Logs {
    fn group_json(&self, ctx_region: &str, account: &str, g: &GroupRecord) -> Value {
        let arn = group_arn(ctx_region, account, &g.name);
        let mut v = json!({
            "logGroupName": g.name,
            "creationTime": g.creation_time,
            "metricFilterCount": 0,
            "arn": format!("{arn}:*"),
            "storedBytes": g.stored_bytes,
            "logGroupClass": g.log_group_class,
            "logGroupArn": arn,
            "deletionProtectionEnabled": g.deletion_protection,
        });
        if let Some(o) = v.as_object_mut() {
            if let Some(days) = g.retention_in_days {
                o.insert("retentionInDays".into(), json!(days));
            }
            if let Some(k) = &g.kms_key_id {
                o.insert("kmsKeyId".into(), json!(k));
            }
        }
        v
    }

    fn stream_json(&self, ctx: &RequestContext, group: &str, s: &StreamRecord) -> Value {
        let mut v = json!({
            "logStreamName": s.name,
            "creationTime": s.creation_time,
            "arn": format!(
                "{}:log-stream:{}",
                group_arn(&ctx.region, &ctx.account, group),
                s.name
            ),
            "storedBytes": s.stored_bytes,
            "uploadSequenceToken": upload_token(s),
        });
        if let Some(o) = v.as_object_mut() {
            if let Some(t) = s.first_event_timestamp {
                o.insert("firstEventTimestamp".into(), json!(t));
            }
            if let Some(t) = s.last_event_timestamp {
                o.insert("lastEventTimestamp".into(), json!(t));
            }
            if let Some(t) = s.last_ingestion_time {
                o.insert("lastIngestionTime".into(), json!(t));
            }
        }
        v
    }

    /// Create a group record (the caller holds the write lock and checked it is absent).
    pub(super) fn new_group(name: &str) -> GroupRecord {
        GroupRecord {
            v: 1,
            name: name.to_string(),
            creation_time: now_ms(),
            retention_in_days: None,
            kms_key_id: None,
            log_group_class: "STANDARD".to_string(),
            deletion_protection: false,
            tags: BTreeMap::new(),
            stored_bytes: 0,
        }
    }

    pub(super) fn new_stream(name: &str) -> StreamRecord {
        StreamRecord {
            v: 1,
            name: name.to_string(),
            creation_time: now_ms(),
            first_event_timestamp: None,
            last_event_timestamp: None,
            last_ingestion_time: None,
            stored_bytes: 0,
            next_seq: 1,
            uploads: 0,
        }
    }

    /// Write a new stream and its time-index entry.
    pub(super) fn put_new_stream(
        &self,
        scope: &Scope,
        group: &str,
        s: &StreamRecord,
    ) -> Result<(), ApiError> {
        self.store
            .batch(vec![
                Write::Put {
                    scope: scope.clone(),
                    table: STREAMS.to_string(),
                    key: stream_key(group, &s.name),
                    value: to_json_bytes(s).map_err(store_error)?,
                },
                Write::Put {
                    scope: scope.clone(),
                    table: STREAMS_BY_TIME.to_string(),
                    key: time_index_key(group, s.last_event_timestamp, &s.name),
                    value: s.name.as_bytes().to_vec(),
                },
            ])
            .map_err(store_error)
    }

    pub(super) fn create_log_group(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: CreateLogGroupInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        if inp.log_group_name.starts_with("aws/") {
            return Err(invalid("Log group names cannot start with 'aws/'."));
        }
        if let Some(class) = &inp.log_group_class {
            check_group_class(class)?;
        }
        let tags = inp.tags.unwrap_or_default();
        validate_tags(&tags)?;
        let scope = Scope::new(&ctx.account, &ctx.region);
        let _guard = self.write_lock();
        if self.get_group(&scope, &inp.log_group_name)?.is_some() {
            return Err(ApiError::client(
                "ResourceAlreadyExistsException",
                "The specified log group already exists",
            ));
        }
        let mut g = Self::new_group(&inp.log_group_name);
        g.kms_key_id = inp.kms_key_id;
        if let Some(class) = inp.log_group_class {
            g.log_group_class = class;
        }
        g.deletion_protection = inp.deletion_protection_enabled.unwrap_or(false);
        g.tags = tags;
        self.store
            .put_json(&scope, GROUPS, &g.name, &g)
            .map_err(store_error)?;
        Ok(json!({}))
    }

    pub(super) fn delete_log_group(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: GroupNameInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        let scope = Scope::new(&ctx.account, &ctx.region);
        let _guard = self.write_lock();
        let g = self.require_group(&scope, &inp.log_group_name)?;
        if g.deletion_protection {
            return Err(ApiError::client(
                "ValidationException",
                "Cannot delete log group: deletion protection is enabled.",
            ));
        }
        // Children first: a crash half-way leaves the group, never orphaned events.
        let prefix = group_children(&g.name);
        for table in [EVENTS, STREAMS_BY_TIME, STREAMS] {
            self.store
                .delete_prefix(&scope, table, &prefix)
                .map_err(store_error)?;
        }
        self.store
            .delete(&scope, GROUPS, &g.name)
            .map_err(store_error)?;
        Ok(json!({}))
    }

    pub(super) fn describe_log_groups(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: DescribeLogGroupsInput = super::input(input)?;
        let limit = check_limit(inp.limit, 50)?;
        if inp.log_group_name_prefix.is_some() && inp.log_group_name_pattern.is_some() {
            return Err(invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
            ));
        }
        if let Some(p) = &inp.log_group_name_prefix {
            validate_group_name(p, "logGroupNamePrefix")?;
        }
        if let Some(p) = &inp.log_group_name_pattern {
            if !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
            {
                return Err(validation(
                    "logGroupNamePattern",
                    p,
                    r"Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]*",
                ));
            }
        }
        if let Some(class) = &inp.log_group_class {
            check_group_class(class)?;
        }
        let scope = Scope::new(&ctx.account, &ctx.region);
        if let Some(ids) = inp.log_group_identifiers {
            if inp.log_group_name_prefix.is_some() || inp.log_group_name_pattern.is_some() {
                return Err(invalid(
                    "logGroupIdentifiers cannot be combined with a name prefix or pattern.",
                ));
            }
            let mut names = Vec::new();
            for id in ids {
                names.push(group_name_of(ctx, None, Some(id))?);
            }
            names.sort();
            names.dedup();
            let mut out = Vec::new();
            for n in names {
                if let Some(g) = self.get_group(&scope, &n)? {
                    out.push(self.group_json(&ctx.region, &ctx.account, &g));
                }
            }
            return Ok(json!({ "logGroups": out }));
        }
        let token_scope = "logs:DescribeLogGroups";
        let after = match &inp.next_token {
            Some(t) => Some(
                fc_types::page::decode(token_scope, t)
                    .map_err(|_| invalid("The specified nextToken is invalid."))?,
            ),
            None => None,
        };
        let prefix = inp.log_group_name_prefix.clone().unwrap_or_default();
        let pattern = inp.log_group_name_pattern.clone().unwrap_or_default();
        let class = inp.log_group_class.clone();
        let (groups, more) = self.scan_decoded_groups(&scope, &prefix, after, limit, &|g| {
            g.name.contains(pattern.as_str()) && class.iter().all(|c| *c == g.log_group_class)
        })?;
        let next = if more {
            groups.last().map(|g| g.rec.name.clone())
        } else {
            None
        };
        let mut out = json!({
            "logGroups": groups.iter().map(|g| g.json.clone()).collect::<Vec<_>>(),
        });
        if let (Some(last), Some(o)) = (next, out.as_object_mut()) {
            o.insert(
                "nextToken".into(),
                json!(fc_types::page::encode(token_scope, &last)),
            );
        }
        Ok(out)
    }

    /// Like [`Logs::scan_groups`], with each record decoded (and its `DescribeLogGroups` entry
    /// built) only when its stored bytes changed since it was last seen.
    fn scan_decoded_groups(
        &self,
        scope: &Scope,
        prefix: &str,
        mut after: Option<String>,
        limit: usize,
        keep: &dyn Fn(&GroupRecord) -> bool,
    ) -> Result<(Vec<Arc<DecodedGroup>>, bool), ApiError> {
        let mut out = Vec::new();
        // Enough for one page when every record is kept, more for filters.
        let chunk = limit.saturating_add(1).min(CHUNK);
        loop {
            let page = self
                .store
                .scan(scope, GROUPS, prefix, after.as_deref(), chunk)
                .map_err(store_error)?;
            let decoded = self.decode_groups(scope, page.items)?;
            for g in decoded {
                after = Some(g.rec.name.clone());
                if keep(&g.rec) {
                    if out.len() == limit {
                        return Ok((out, true));
                    }
                    out.push(g);
                }
            }
            if !page.more {
                return Ok((out, false));
            }
        }
    }

    /// Decoded group records of one scan page, reusing earlier decodings of the same bytes.
    fn decode_groups(
        &self,
        scope: &Scope,
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<Arc<DecodedGroup>>, ApiError> {
        let mut cache = self
            .decoded_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(items.len());
        let mut lookup = (scope.clone(), String::new());
        for (key, raw) in items {
            lookup.1 = key;
            if let Some(g) = cache.get(&lookup).filter(|g| g.raw == raw) {
                out.push(Arc::clone(g));
                continue;
            }
            let rec: GroupRecord = serde_json::from_slice(&raw).map_err(|e| {
                store_error(fc_store::StoreError::Decode {
                    table: GROUPS.to_string(),
                    key: lookup.1.clone(),
                    reason: e.to_string(),
                })
            })?;
            let json = self.group_json(&scope.region, &scope.account, &rec);
            let g = Arc::new(DecodedGroup { raw, rec, json });
            if cache.len() >= DECODED_GROUPS_MAX {
                cache.clear();
            }
            cache.insert(lookup.clone(), Arc::clone(&g));
            out.push(g);
        }
        Ok(out)
    }

    /// Groups whose name starts with `prefix`, after `after`, satisfying `keep`: at most `limit`
    /// of them, and whether more exist.
    fn scan_groups(
        &self,
        scope: &Scope,
        prefix: &str,
        mut after: Option<String>,
        limit: usize,
        keep: &dyn Fn(&GroupRecord) -> bool,
    ) -> Result<(Vec<GroupRecord>, bool), ApiError> {
        let mut out = Vec::new();
        loop {
            let (page, more) = self
                .store
                .scan_json::<GroupRecord>(scope, GROUPS, prefix, after.as_deref(), CHUNK)
                .map_err(store_error)?;
            for (k, g) in page {
                after = Some(k);
                if keep(&g) {
                    if out.len() == limit {
                        return Ok((out, true));
                    }
                    out.push(g);
                }
            }
            if !more {
                return Ok((out, false));
            }
        }
    }

    pub(super) fn list_log_groups(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: ListLogGroupsInput = super::input(input)?;
        let limit = check_limit(inp.limit, 1000)?;
        let re = match &inp.log_group_name_pattern {
            Some(p) => Some(
                regex::Regex::new(p)
                    .map_err(|e| validation("logGroupNamePattern", p, &e.to_string()))?,
            ),
            None => None,
        };
        if let Some(class) = &inp.log_group_class {
            check_group_class(class)?;
        }
        let token_scope = "logs:ListLogGroups";
        let after = match &inp.next_token {
            Some(t) => Some(
                fc_types::page::decode(token_scope, t)
                    .map_err(|_| invalid("The specified nextToken is invalid."))?,
            ),
            None => None,
        };
        let scope = Scope::new(&ctx.account, &ctx.region);
        let class = inp.log_group_class.clone();
        let (groups, more) = self.scan_groups(&scope, "", after, limit, &|g| {
            re.iter().all(|r| r.is_match(&g.name)) && class.iter().all(|c| *c == g.log_group_class)
        })?;
        let list: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "logGroupName": g.name,
                    "logGroupArn": group_arn(&ctx.region, &ctx.account, &g.name),
                    "logGroupClass": g.log_group_class,
                })
            })
            .collect();
        let mut out = json!({ "logGroups": list });
        if more {
            if let (Some(last), Some(o)) = (groups.last(), out.as_object_mut()) {
                o.insert(
                    "nextToken".into(),
                    json!(fc_types::page::encode(token_scope, &last.name)),
                );
            }
        }
        Ok(out)
    }

    /// Read-modify-write a group under the write lock.
    fn update_group(
        &self,
        ctx: &RequestContext,
        name: &str,
        f: impl FnOnce(&mut GroupRecord) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let scope = Scope::new(&ctx.account, &ctx.region);
        let _guard = self.write_lock();
        let mut g = self.require_group(&scope, name)?;
        f(&mut g)?;
        self.store
            .put_json(&scope, GROUPS, name, &g)
            .map_err(store_error)
    }

    pub(super) fn put_retention_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: PutRetentionInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        if !RETENTION_DAYS.contains(&inp.retention_in_days) {
            let set: Vec<String> = RETENTION_DAYS.iter().map(ToString::to_string).collect();
            return Err(validation(
                "retentionInDays",
                inp.retention_in_days,
                &format!("Member must satisfy enum value set: [{}]", set.join(", ")),
            ));
        }
        self.update_group(ctx, &inp.log_group_name, |g| {
            g.retention_in_days = Some(inp.retention_in_days);
            Ok(())
        })?;
        Ok(json!({}))
    }

    pub(super) fn delete_retention_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: GroupNameInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        self.update_group(ctx, &inp.log_group_name, |g| {
            g.retention_in_days = None;
            Ok(())
        })?;
        Ok(json!({}))
    }

    pub(super) fn put_deletion_protection(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: DeletionProtectionInput = super::input(input)?;
        let name = group_name_of(ctx, None, Some(inp.log_group_identifier))?;
        self.update_group(ctx, &name, |g| {
            g.deletion_protection = inp.deletion_protection_enabled;
            Ok(())
        })?;
        Ok(json!({}))
    }

    fn add_tags(
        &self,
        ctx: &RequestContext,
        name: &str,
        tags: BTreeMap<String, String>,
        too_many_code: &str,
    ) -> Result<(), ApiError> {
        validate_tags(&tags)?;
        self.update_group(ctx, name, |g| {
            let mut merged = g.tags.clone();
            merged.extend(tags);
            if merged.len() > MAX_TAGS {
                return Err(ApiError::client(
                    too_many_code,
                    format!("A resource can have no more than {MAX_TAGS} tags."),
                ));
            }
            g.tags = merged;
            Ok(())
        })
    }

    fn remove_tags(
        &self,
        ctx: &RequestContext,
        name: &str,
        keys: &[String],
    ) -> Result<(), ApiError> {
        self.update_group(ctx, name, |g| {
            for k in keys {
                g.tags.remove(k);
            }
            Ok(())
        })
    }

    fn tags_of(&self, ctx: &RequestContext, name: &str) -> Result<Value, ApiError> {
        let scope = Scope::new(&ctx.account, &ctx.region);
        let g = self.require_group(&scope, name)?;
        Ok(json!({ "tags": g.tags }))
    }

    pub(super) fn tag_log_group(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: TagLogGroupInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        self.add_tags(
            ctx,
            &inp.log_group_name,
            inp.tags,
            "InvalidParameterException",
        )?;
        Ok(json!({}))
    }

    pub(super) fn untag_log_group(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: UntagLogGroupInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        self.remove_tags(ctx, &inp.log_group_name, &inp.tags)?;
        Ok(json!({}))
    }

    pub(super) fn list_tags_log_group(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: GroupNameInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        self.tags_of(ctx, &inp.log_group_name)
    }

    pub(super) fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: TagResourceInput = super::input(input)?;
        let name = group_from_arn(ctx, &inp.resource_arn)?;
        self.add_tags(ctx, &name, inp.tags, "TooManyTagsException")?;
        Ok(json!({}))
    }

    pub(super) fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: UntagResourceInput = super::input(input)?;
        let name = group_from_arn(ctx, &inp.resource_arn)?;
        self.remove_tags(ctx, &name, &inp.tag_keys)?;
        Ok(json!({}))
    }

    pub(super) fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: ResourceArnInput = super::input(input)?;
        let name = group_from_arn(ctx, &inp.resource_arn)?;
        self.tags_of(ctx, &name)
    }

    pub(super) fn create_log_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: StreamInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        validate_stream_name(&inp.log_stream_name)?;
        let scope = Scope::new(&ctx.account, &ctx.region);
        let _guard = self.write_lock();
        self.require_group(&scope, &inp.log_group_name)?;
        if self
            .get_stream(&scope, &inp.log_group_name, &inp.log_stream_name)?
            .is_some()
        {
            return Err(ApiError::client(
                "ResourceAlreadyExistsException",
                "The specified log stream already exists",
            ));
        }
        let s = Self::new_stream(&inp.log_stream_name);
        self.put_new_stream(&scope, &inp.log_group_name, &s)?;
        Ok(json!({}))
    }

    pub(super) fn delete_log_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: StreamInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        validate_stream_name(&inp.log_stream_name)?;
        let scope = Scope::new(&ctx.account, &ctx.region);
        let _guard = self.write_lock();
        let mut g = self.require_group(&scope, &inp.log_group_name)?;
        let s = self.require_stream(&scope, &g.name, &inp.log_stream_name)?;
        // Events first: a crash half-way leaves an empty stream, never orphaned events.
        self.store
            .delete_prefix(&scope, EVENTS, &events_prefix(&g.name, &s.name))
            .map_err(store_error)?;
        g.stored_bytes = (g.stored_bytes - s.stored_bytes).max(0);
        self.store
            .batch(vec![
                Write::Delete {
                    scope: scope.clone(),
                    table: STREAMS_BY_TIME.to_string(),
                    key: time_index_key(&g.name, s.last_event_timestamp, &s.name),
                },
                Write::Delete {
                    scope: scope.clone(),
                    table: STREAMS.to_string(),
                    key: stream_key(&g.name, &s.name),
                },
                Write::Put {
                    scope: scope.clone(),
                    table: GROUPS.to_string(),
                    key: g.name.clone(),
                    value: to_json_bytes(&g).map_err(store_error)?,
                },
            ])
            .map_err(store_error)?;
        Ok(json!({}))
    }

    pub(super) fn describe_log_streams(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: DescribeLogStreamsInput = super::input(input)?;
        let group = group_name_of(ctx, inp.log_group_name, inp.log_group_identifier)?;
        let limit = check_limit(inp.limit, 50)?;
        let by_time = match inp.order_by.as_deref() {
            None | Some("LogStreamName") => false,
            Some("LastEventTime") => true,
            Some(other) => {
                return Err(validation(
                    "orderBy",
                    other,
                    "Member must satisfy enum value set: [LogStreamName, LastEventTime]",
                ))
            }
        };
        let prefix = inp.log_stream_name_prefix.unwrap_or_default();
        if by_time && !prefix.is_empty() {
            return Err(invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ));
        }
        if prefix.contains(SEP) {
            return Err(invalid("Invalid logStreamNamePrefix."));
        }
        let descending = inp.descending.unwrap_or(false);
        let scope = Scope::new(&ctx.account, &ctx.region);
        self.require_group(&scope, &group)?;
        let token_scope = format!("logs:DescribeLogStreams:{group}:{by_time}:{descending}");
        let position = match &inp.next_token {
            Some(t) => Some(
                fc_types::page::decode(&token_scope, t)
                    .map_err(|_| invalid("The specified nextToken is invalid."))?,
            ),
            None => None,
        };
        let children = group_children(&group);
        let (table, scan_prefix) = if by_time {
            (STREAMS_BY_TIME, children.clone())
        } else {
            (STREAMS, format!("{children}{prefix}"))
        };
        let bound = position.map(|p| format!("{children}{p}"));
        // One extra record tells whether another page exists.
        let page = if descending {
            self.store
                .scan_rev(&scope, table, &scan_prefix, bound.as_deref(), limit + 1)
        } else {
            self.store
                .scan(&scope, table, &scan_prefix, bound.as_deref(), limit + 1)
        }
        .map_err(store_error)?;
        let more = page.items.len() > limit;
        let mut streams = Vec::new();
        let mut last_key = None;
        for (key, value) in page.items.into_iter().take(limit) {
            let rec: Option<StreamRecord> = if by_time {
                let name = String::from_utf8_lossy(&value).to_string();
                self.get_stream(&scope, &group, &name)?
            } else {
                Some(serde_json::from_slice(&value).map_err(|e| {
                    store_error(fc_store::StoreError::Decode {
                        table: STREAMS.to_string(),
                        key: key.clone(),
                        reason: e.to_string(),
                    })
                })?)
            };
            if let Some(s) = rec {
                streams.push(self.stream_json(ctx, &group, &s));
            }
            last_key = Some(key);
        }
        let mut out = json!({ "logStreams": streams });
        if more {
            if let (Some(k), Some(o)) = (last_key, out.as_object_mut()) {
                let pos = k.strip_prefix(&children).unwrap_or(&k);
                o.insert(
                    "nextToken".into(),
                    json!(fc_types::page::encode(&token_scope, pos)),
                );
            }
        }
        Ok(out)
    }
}

/// `uploadSequenceToken`: a 56-digit number, like AWS's.
pub(super) fn upload_token(s: &StreamRecord) -> String {
    format!("{:056}", s.uploads + 1)
}
