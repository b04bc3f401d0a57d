//! The persisted S3 records (versioned JSON in the store) and the store layout.
//!
//! Layout: bucket names are global, so `Scope::global("system")` holds the name index
//! (`s3_bucket_names`: name -> owner account) and the content reference counts
//! (`s3_content_refs`: content id -> count). Each owner's `Scope::global(account)` holds
//! `s3_buckets` (name), `s3_objects` (`bucket/key` -> the current version, possibly a delete
//! marker), `s3_versions` (`bucket/key\u{1}<inverted seq>` -> noncurrent versions, newest
//! first), `s3_uploads` (`bucket/key\u{1}<upload id>`) and `s3_parts` (`<upload id>/<part:05>`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const T_NAMES: &str = "s3_bucket_names";
pub const T_REFS: &str = "s3_content_refs";
pub const T_BUCKETS: &str = "s3_buckets";
pub const T_OBJECTS: &str = "s3_objects";
pub const T_VERSIONS: &str = "s3_versions";
pub const T_UPLOADS: &str = "s3_uploads";
pub const T_PARTS: &str = "s3_parts";

/// Separates a key from its version or upload suffix in store keys.
pub const SEP: char = '\u{1}';

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NameRec {
    pub account: String,
    pub region: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BucketRec {
    #[serde(default)]
    pub v: u32,
    pub name: String,
    pub region: String,
    pub owner: String,
    pub created: f64,
    /// `Enabled`, `Suspended`, or absent (never enabled).
    #[serde(default)]
    pub versioning: Option<String>,
    #[serde(default)]
    pub tags: Option<Value>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub cors: Option<Value>,
    #[serde(default)]
    pub lifecycle: Option<Value>,
    #[serde(default)]
    pub notification: Option<Value>,
    #[serde(default)]
    pub encryption: Option<Value>,
    #[serde(default)]
    pub ownership: Option<Value>,
    #[serde(default)]
    pub public_access_block: Option<Value>,
    #[serde(default)]
    pub acl: Option<String>,
    #[serde(default)]
    pub website: Option<Value>,
}

/// One part of a completed multipart object (for `partNumber` reads and `PartsCount`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartSpan {
    pub size: u64,
}

/// One object version (or delete marker).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ObjectRec {
    #[serde(default)]
    pub v: u32,
    pub key: String,
    pub version_id: String,
    /// Creation order (nanoseconds), newest is largest.
    pub seq: u64,
    #[serde(default)]
    pub delete_marker: bool,
    /// Id of the content file (a SHA-256 for content stored by older versions, a random id
    /// now); `None` for empty and inline objects and delete markers.
    #[serde(default)]
    pub content: Option<String>,
    /// The content itself (standard base64) for small objects, stored in the record so that
    /// a small put is one durable write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub etag: String,
    pub last_modified: f64,
    /// When it stopped being the current version.
    #[serde(default)]
    pub noncurrent_since: Option<f64>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub content_disposition: Option<String>,
    #[serde(default)]
    pub content_language: Option<String>,
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub expires: Option<f64>,
    #[serde(default)]
    pub website_redirect: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// (algorithm, base64 value)
    #[serde(default)]
    pub checksum: Option<(String, String)>,
    #[serde(default)]
    pub parts: Option<Vec<PartSpan>>,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub sse: Option<String>,
    #[serde(default)]
    pub owner: String,
}

/// An in-progress multipart upload: the object it will become, without content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UploadRec {
    #[serde(default)]
    pub v: u32,
    pub upload_id: String,
    pub key: String,
    pub initiated: f64,
    pub template: ObjectRec,
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartRec {
    pub part_number: u32,
    pub content: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: f64,
    #[serde(default)]
    pub checksum: Option<(String, String)>,
}

pub fn obj_key(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

pub fn ver_prefix(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}{SEP}")
}

pub fn ver_key(bucket: &str, key: &str, seq: u64) -> String {
    format!("{bucket}/{key}{SEP}{:020}", u64::MAX - seq)
}

pub fn upload_key(bucket: &str, key: &str, upload_id: &str) -> String {
    format!("{bucket}/{key}{SEP}{upload_id}")
}

pub fn part_key(upload_id: &str, part: u32) -> String {
    format!("{upload_id}/{part:05}")
}
