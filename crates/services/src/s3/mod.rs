//! The s3 service: buckets and their configurations, objects (content on disk by SHA-256,
//! metadata in the store), versioning, multipart uploads, lifecycle expiration and event
//! notifications to SQS and Lambda through the [`Bus`].
//!
//! Files: `model` (persisted records and store layout), `content` (content files, hashing,
//! aws-chunked decoding), `util` (ranges, listing, encodings), `buckets`, `objects`,
//! `multipart`, `notify`, `lifecycle`, `cors` (preflight answers and CORS headers, which the
//! server asks for: they are not API operations).
//!
//! Conventions with the server beyond the model: a ranged `GetObject` puts `"__status": 206`
//! in its output value (the model has no status member for it); for streamed uploads the
//! server may pass the `x-amz-content-sha256` header as `"__ContentSha256"` in the input, which
//! selects aws-chunked decoding (`STREAMING-*`) and is checked against the stored bytes when it
//! is a hash.

mod buckets;
pub mod content;
mod cors;
mod lifecycle;
mod locks;
pub mod model;
mod multipart;
mod notify;
mod objects;
pub mod util;

#[cfg(test)]
mod tests;

use crate::bus::Bus;
use crate::{BodyIn, Reply, RequestContext, Service};
use async_trait::async_trait;
use content::ContentStore;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt, Write};
use locks::{Guard, Locks};
use model::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The S3 service.
pub struct S3 {
    store: Arc<dyn Store>,
    content: ContentStore,
    bus: Arc<Bus>,
    /// Serialize metadata changes: every mutation holds all of it exclusively except object
    /// puts, which hold only their key (see [`S3::key_guard`]), so puts of different keys run
    /// (and commit, grouped by the store) concurrently. Content reference count changes (read,
    /// then write) hold the reference lock too, until they are durable.
    locks: Arc<Locks>,
    /// Enforce bucket policies (strict auth mode).
    enforce: AtomicBool,
    last_seq: AtomicU64,
    /// Buckets as last read from the store, by name (see [`S3::bucket`]).
    buckets: Mutex<BucketCache>,
    /// Bumped after every write of a bucket record or name; cached buckets read under an
    /// older value are not used.
    bucket_gen: AtomicU64,
}

/// See [`S3::bucket`].
#[derive(Default)]
struct BucketCache {
    /// The store's [`fc_store::Store::generation`] and our `bucket_gen` when filled.
    store_gen: u64,
    own_gen: u64,
    map: HashMap<String, (Scope, BucketRec)>,
}

/// Most buckets kept in the cache (emptied when full).
const BUCKET_CACHE_MAX: usize = 4096;

pub(crate) fn store_err(e: fc_store::StoreError) -> ApiError {
    crate::common::store_error(e)
}

/// A string member of an input value.
pub(crate) fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn n(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

pub(crate) fn no_such_bucket(name: &str) -> ApiError {
    ApiError::new(404, "NoSuchBucket", "The specified bucket does not exist")
        .with_field("BucketName", json!(name))
}

pub(crate) fn no_such_key(key: &str) -> ApiError {
    ApiError::new(404, "NoSuchKey", "The specified key does not exist.")
        .with_field("Key", json!(key))
}

pub(crate) fn invalid_argument(msg: &str) -> ApiError {
    ApiError::client("InvalidArgument", msg)
}

pub(crate) fn malformed_xml() -> ApiError {
    ApiError::client(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// The canonical user id S3 shows for an account.
pub(crate) fn canonical_id(account: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        format!("ferrocloud-canonical-{account}").as_bytes(),
    ))
}

pub(crate) fn owner_value(account: &str) -> Value {
    json!({"DisplayName": "webfile", "ID": canonical_id(account)})
}

/// Run blocking store work (which waits for a durable commit) without stalling the runtime's
/// worker: other requests keep being served meanwhile, so their commits can group.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A content file committed for a transaction not yet queued: removed if dropped armed.
struct Unrecorded<'a> {
    content: &'a ContentStore,
    hash: Option<String>,
}

impl Drop for Unrecorded<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.hash.take() {
            self.content.remove(&h);
        }
    }
}

/// Whether `writes` change a bucket record or name (cached buckets are then stale).
fn touches_buckets(writes: &[Write]) -> bool {
    writes.iter().any(|w| match w {
        Write::Put { table, .. } | Write::Delete { table, .. } => {
            table == T_BUCKETS || table == T_NAMES
        }
    })
}

/// Pending store writes plus content reference changes, applied atomically.
#[derive(Default)]
pub(crate) struct Tx {
    writes: Vec<Write>,
    refs: HashMap<String, i64>,
}

impl Tx {
    pub fn put<T: serde::Serialize>(
        &mut self,
        scope: &Scope,
        table: &str,
        key: &str,
        value: &T,
    ) -> Result<(), ApiError> {
        self.writes.push(Write::Put {
            scope: scope.clone(),
            table: table.to_string(),
            key: key.to_string(),
            value: fc_store::to_json_bytes(value).map_err(store_err)?,
        });
        Ok(())
    }
    pub fn delete(&mut self, scope: &Scope, table: &str, key: &str) {
        self.writes.push(Write::Delete {
            scope: scope.clone(),
            table: table.to_string(),
            key: key.to_string(),
        });
    }
    pub fn add_ref(&mut self, hash: &str) {
        *self.refs.entry(hash.to_string()).or_default() += 1;
    }
    pub fn unref(&mut self, hash: &str) {
        *self.refs.entry(hash.to_string()).or_default() -= 1;
    }
    /// Whether applying changes any content reference count.
    fn changes_refs(&self) -> bool {
        self.refs.values().any(|d| *d != 0)
    }
    /// Drop the content reference of a version record.
    pub fn unref_rec(&mut self, rec: &ObjectRec) {
        if let Some(h) = &rec.content {
            self.unref(h);
        }
    }
}

impl S3 {
    /// Open the service over `store`, keeping object content under `data_dir/s3`. Temp files
    /// of interrupted uploads and content files no record references are removed.
    pub fn new(store: Arc<dyn Store>, data_dir: PathBuf, bus: Arc<Bus>) -> Result<S3, ApiError> {
        let content = ContentStore::open(&data_dir)?;
        let s3 = S3 {
            store,
            content,
            bus,
            locks: Arc::new(Locks::default()),
            enforce: AtomicBool::new(false),
            last_seq: AtomicU64::new(0),
            buckets: Mutex::new(BucketCache::default()),
            bucket_gen: AtomicU64::new(0),
        };
        s3.sweep_unreferenced()?;
        Ok(s3)
    }

    /// Enforce bucket policies (the server turns this on in strict auth mode).
    pub fn set_enforce_policies(&self, on: bool) {
        self.enforce.store(on, Ordering::Relaxed);
    }

    fn sweep_unreferenced(&self) -> Result<(), ApiError> {
        let sys = Scope::global("system");
        for hash in self.content.all_hashes() {
            if self
                .store
                .get(&sys, T_REFS, &hash)
                .map_err(store_err)?
                .is_none()
            {
                self.content.remove(&hash);
            }
        }
        Ok(())
    }

    /// Exclusive use of all S3 metadata.
    pub(crate) fn guard(&self) -> Guard {
        self.locks.exclusive()
    }

    /// Exclusive use of one key's versions (other keys stay free); awaited, so a put waiting
    /// for its commit holds no thread.
    pub(crate) async fn key_guard(&self, bucket: &str, key: &str) -> Guard {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (bucket, key).hash(&mut h);
        self.locks.key(h.finish()).await
    }

    /// A strictly increasing sequence number (nanoseconds since the epoch).
    pub(crate) fn next_seq(&self) -> u64 {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        let mut prev = self.last_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self
                .last_seq
                .compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    /// Apply a transaction; call with the lock (or the key's guard) held.
    pub(crate) fn apply(&self, tx: Tx) -> Result<(), ApiError> {
        // Reference counts are read, then written: one change at a time, until durable.
        let _refs = tx.changes_refs().then(|| self.locks.refs_blocking());
        let (writes, gone) = self.with_refs(tx)?;
        if !writes.is_empty() {
            let buckets_changed = touches_buckets(&writes);
            let written = self.store.batch(writes).map_err(store_err);
            if buckets_changed {
                self.buckets_changed();
            }
            written?;
        }
        for h in gone {
            self.content.remove(&h);
        }
        Ok(())
    }

    /// [`S3::apply`] for async callers, holding `held` (the key's guard): waits for the durable
    /// commit without holding a thread. `fresh` is a content file committed for `tx` that no
    /// record references yet. Once the writes are queued, the rest happens in the commit's
    /// call-back (dropping unreferenced content, releasing the guards), so a caller cancelled
    /// while it waits (its client went away) neither lets another writer read the key before
    /// these writes are in the store nor leaves files behind; cancelled before, it removes
    /// `fresh`.
    pub(crate) async fn apply_async(
        &self,
        tx: Tx,
        held: Guard,
        fresh: Option<String>,
    ) -> Result<(), ApiError> {
        let mut unrecorded = Unrecorded {
            content: &self.content,
            hash: fresh,
        };
        let refs = match tx.changes_refs() {
            true => Some(self.locks.refs().await),
            false => None,
        };
        let (writes, gone) = self.with_refs(tx)?;
        if writes.is_empty() {
            return Ok(());
        }
        let buckets_changed = touches_buckets(&writes);
        let (send, done) = tokio::sync::oneshot::channel();
        let content = self.content.clone();
        self.store.batch_then(
            writes,
            Box::new(move |r| {
                if r.is_ok() {
                    for h in gone {
                        content.remove(&h);
                    }
                }
                drop((held, refs));
                let _ = send.send(r);
            }),
        );
        // Queued: from now on the commit decides whether a record references it.
        let fresh = unrecorded.hash.take();
        let written = match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // Nothing of the transaction was written.
                if let Some(h) = fresh {
                    self.content.remove(&h);
                }
                Err(e)
            }
            // Outcome unknown: the file stays (swept at start-up if unreferenced).
            Err(_) => Err(fc_store::StoreError::Backend(
                "the store dropped a commit".into(),
            )),
        };
        if buckets_changed {
            self.buckets_changed();
        }
        written.map_err(store_err)
    }

    /// The transaction's writes plus its reference count changes (read now: call with the
    /// reference lock held when it has any), and the content no record references after it.
    fn with_refs(&self, tx: Tx) -> Result<(Vec<Write>, Vec<String>), ApiError> {
        let sys = Scope::global("system");
        let mut writes = tx.writes;
        let mut gone = Vec::new();
        for (hash, delta) in tx.refs {
            if delta == 0 {
                continue;
            }
            let cur: i64 = self
                .store
                .get_json(&sys, T_REFS, &hash)
                .map_err(store_err)?
                .unwrap_or(0);
            let next = cur + delta;
            if next <= 0 {
                writes.push(Write::Delete {
                    scope: sys.clone(),
                    table: T_REFS.to_string(),
                    key: hash.clone(),
                });
                gone.push(hash);
            } else {
                writes.push(Write::Put {
                    scope: sys.clone(),
                    table: T_REFS.to_string(),
                    key: hash,
                    value: next.to_string().into_bytes(),
                });
            }
        }
        Ok((writes, gone))
    }

    /// Forget cached buckets (after writing a bucket record or name).
    pub(crate) fn buckets_changed(&self) {
        self.bucket_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// The bucket named `name` and its owner's scope. Served from memory while neither this
    /// service wrote a bucket since it was read nor the store's contents were replaced.
    pub(crate) fn bucket(&self, name: &str) -> Result<(Scope, BucketRec), ApiError> {
        let store_gen = self.store.generation();
        let own_gen = self.bucket_gen.load(Ordering::SeqCst);
        {
            let cache = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            if cache.store_gen == store_gen && cache.own_gen == own_gen {
                if let Some(found) = cache.map.get(name) {
                    return Ok(found.clone());
                }
            }
        }
        let found = self.read_bucket(name)?;
        let mut cache = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Keep it only if nothing changed while it was read.
        if self.bucket_gen.load(Ordering::SeqCst) == own_gen && self.store.generation() == store_gen
        {
            if cache.store_gen != store_gen
                || cache.own_gen != own_gen
                || cache.map.len() >= BUCKET_CACHE_MAX
            {
                cache.map.clear();
                cache.store_gen = store_gen;
                cache.own_gen = own_gen;
            }
            cache.map.insert(name.to_string(), found.clone());
        }
        Ok(found)
    }

    fn read_bucket(&self, name: &str) -> Result<(Scope, BucketRec), ApiError> {
        let sys = Scope::global("system");
        let Some(idx): Option<NameRec> = self
            .store
            .get_json(&sys, T_NAMES, name)
            .map_err(store_err)?
        else {
            return Err(no_such_bucket(name));
        };
        let scope = Scope::global(idx.account);
        let rec: Option<BucketRec> = self
            .store
            .get_json(&scope, T_BUCKETS, name)
            .map_err(store_err)?;
        rec.map(|b| (scope, b)).ok_or_else(|| no_such_bucket(name))
    }

    /// Check the bucket policy (strict mode only): an explicit deny refuses; a caller from
    /// another account needs an allow.
    pub(crate) fn authorize(
        &self,
        ctx: &RequestContext,
        bucket: &BucketRec,
        key: Option<&str>,
    ) -> Result<(), ApiError> {
        if !self.enforce.load(Ordering::Relaxed) {
            return Ok(());
        }
        let same_account = ctx.account == bucket.owner;
        let Some(policy_text) = bucket.policy.as_deref() else {
            return if same_account {
                Ok(())
            } else {
                Err(access_denied())
            };
        };
        let Ok(policy) = fc_auth::policy::Policy::parse_resource(policy_text) else {
            return if same_account {
                Ok(())
            } else {
                Err(access_denied())
            };
        };
        let action = format!("s3:{}", policy_action(&ctx.operation));
        let resource = match key {
            Some(k) => format!("arn:aws:s3:::{}/{k}", bucket.name),
            None => format!("arn:aws:s3:::{}", bucket.name),
        };
        let req = fc_auth::policy::AuthzRequest::new(
            ctx.principal.arn.clone(),
            ctx.account.clone(),
            action,
            resource,
        );
        // Only the bucket policy is consulted (the caller's identity policies are IAM's
        // business): evaluated as same-account so that its Allow alone grants.
        match fc_auth::policy::evaluate(&req, &[], Some(&policy)) {
            fc_auth::policy::Decision::ExplicitDeny => Err(access_denied()),
            fc_auth::policy::Decision::Allow => Ok(()),
            fc_auth::policy::Decision::ImplicitDeny if same_account => Ok(()),
            fc_auth::policy::Decision::ImplicitDeny => Err(access_denied()),
        }
    }

    async fn route(
        &self,
        ctx: &RequestContext,
        input: Value,
        body: BodyIn,
    ) -> Result<Reply, ApiError> {
        let plain = |v: Result<Value, ApiError>| v.map(|value| Reply { value, body: None });
        match ctx.operation.as_str() {
            "ListBuckets" => plain(self.list_buckets(ctx, &input)),
            "CreateBucket" => plain(self.create_bucket(ctx, &input)),
            "HeadBucket" => plain(self.head_bucket(ctx, &input)),
            "DeleteBucket" => plain(self.delete_bucket(ctx, &input)),
            "GetBucketLocation" => plain(self.get_bucket_location(ctx, &input)),
            "PutBucketTagging"
            | "GetBucketTagging"
            | "DeleteBucketTagging"
            | "PutBucketPolicy"
            | "GetBucketPolicy"
            | "DeleteBucketPolicy"
            | "PutBucketCors"
            | "GetBucketCors"
            | "DeleteBucketCors"
            | "PutBucketEncryption"
            | "GetBucketEncryption"
            | "DeleteBucketEncryption"
            | "PutBucketOwnershipControls"
            | "GetBucketOwnershipControls"
            | "DeleteBucketOwnershipControls"
            | "PutPublicAccessBlock"
            | "GetPublicAccessBlock"
            | "DeletePublicAccessBlock"
            | "PutBucketWebsite"
            | "GetBucketWebsite"
            | "DeleteBucketWebsite" => plain(self.bucket_config(ctx, &input)),
            "PutBucketVersioning" => plain(self.put_bucket_versioning(ctx, &input)),
            "GetBucketVersioning" => plain(self.get_bucket_versioning(ctx, &input)),
            "PutBucketLifecycleConfiguration" => plain(self.put_bucket_lifecycle(ctx, &input)),
            "GetBucketLifecycleConfiguration" => plain(self.get_bucket_lifecycle(ctx, &input)),
            "DeleteBucketLifecycle" => plain(self.delete_bucket_lifecycle(ctx, &input)),
            "PutBucketNotificationConfiguration" => {
                plain(self.put_bucket_notification(ctx, &input))
            }
            "GetBucketNotificationConfiguration" => {
                plain(self.get_bucket_notification(ctx, &input))
            }
            "GetBucketAcl" => plain(self.get_bucket_acl(ctx, &input)),
            "PutBucketAcl" => plain(self.put_bucket_acl(ctx, &input)),
            "GetBucketPolicyStatus" => plain(self.get_bucket_policy_status(ctx, &input)),
            "PutObject" => self.put_object(ctx, &input, body).await,
            "GetObject" => self.get_object(ctx, &input, true),
            "HeadObject" => self.get_object(ctx, &input, false),
            "DeleteObject" => plain(self.delete_object(ctx, &input)),
            "DeleteObjects" => plain(self.delete_objects(ctx, &input)),
            "CopyObject" => plain(self.copy_object(ctx, &input).await),
            "ListObjectsV2" => plain(self.list_objects(ctx, &input, true)),
            "ListObjects" => plain(self.list_objects(ctx, &input, false)),
            "ListObjectVersions" => plain(self.list_object_versions(ctx, &input)),
            "GetObjectTagging" => plain(self.get_object_tagging(ctx, &input)),
            "PutObjectTagging" => plain(self.put_object_tagging(ctx, &input)),
            "DeleteObjectTagging" => plain(self.delete_object_tagging(ctx, &input)),
            "GetObjectAcl" => plain(self.get_object_acl(ctx, &input)),
            "PutObjectAcl" => plain(self.put_object_acl(ctx, &input)),
            "GetObjectAttributes" => plain(self.get_object_attributes(ctx, &input)),
            "CreateMultipartUpload" => plain(self.create_multipart_upload(ctx, &input)),
            "UploadPart" => plain(self.upload_part(ctx, &input, body).await),
            "UploadPartCopy" => plain(self.upload_part_copy(ctx, &input).await),
            "CompleteMultipartUpload" => plain(self.complete_multipart_upload(ctx, &input).await),
            "AbortMultipartUpload" => plain(self.abort_multipart_upload(ctx, &input)),
            "ListParts" => plain(self.list_parts(ctx, &input)),
            "ListMultipartUploads" => plain(self.list_multipart_uploads(ctx, &input)),
            op => Err(ApiError::not_implemented("s3", op)),
        }
    }
}

pub(crate) fn access_denied() -> ApiError {
    ApiError::new(403, "AccessDenied", "Access Denied")
}

/// The IAM action name of an operation.
fn policy_action(op: &str) -> String {
    match op {
        "HeadObject" => "GetObject",
        "ListObjectsV2" | "ListObjects" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "HeadBucket" => "ListBucket",
        "DeleteObjects" => "DeleteObject",
        "CopyObject"
        | "UploadPart"
        | "UploadPartCopy"
        | "CreateMultipartUpload"
        | "CompleteMultipartUpload" => "PutObject",
        "ListParts" => "ListMultipartUploadParts",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetBucketNotificationConfiguration" => "GetBucketNotification",
        "PutBucketNotificationConfiguration" => "PutBucketNotification",
        other => other,
    }
    .to_string()
}

#[async_trait]
impl Service for S3 {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        self.route(ctx, input, BodyIn::empty())
            .await
            .map(|r| r.value)
    }

    async fn call_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
        body: BodyIn,
    ) -> Result<Reply, ApiError> {
        self.route(ctx, input, body).await
    }
}
