//! OCI and Docker v2 schema 2 manifests, indexes (manifest lists) and image configs: parsing,
//! validation and platform selection.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Manifest media types the registry accepts.
pub const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A manifest that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid manifest: {0}")]
pub struct ManifestError(pub String);

/// A platform of an index entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A parsed manifest or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The media type (from the document, or the `Content-Type` it was pushed with).
    pub media_type: String,
    /// The image config (absent for an index).
    pub config: Option<Descriptor>,
    /// Layers (absent for an index).
    pub layers: Vec<Descriptor>,
    /// Child manifests of an index.
    pub manifests: Vec<Descriptor>,
    /// `subject` (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// `artifactType`, or the config media type of an image manifest when absent.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }

    /// Every blob (not manifest) the manifest references: config and layers.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        self.config.iter().chain(self.layers.iter()).collect()
    }

    /// Parse a manifest. `content_type` is the type it was pushed or stored with; the
    /// document's own `mediaType`, when present, must agree.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError(format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ManifestError("not a JSON object".into()))?;
        if obj.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
            return Err(ManifestError("schemaVersion must be 2".into()));
        }
        let doc_type = obj.get("mediaType").and_then(Value::as_str);
        let ct = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| MANIFEST_TYPES.contains(c));
        let media_type = match (doc_type, ct) {
            (Some(d), Some(c)) if d != c => {
                return Err(ManifestError(format!(
                    "mediaType {d} does not match Content-Type {c}"
                )))
            }
            (Some(d), _) => d.to_string(),
            (None, Some(c)) => c.to_string(),
            (None, None) => {
                if obj.contains_key("manifests") {
                    OCI_INDEX.to_string()
                } else {
                    OCI_MANIFEST.to_string()
                }
            }
        };
        if !MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(ManifestError(format!(
                "unsupported manifest media type {media_type}"
            )));
        }
        let desc = |v: &Value, what: &str| -> Result<Descriptor, ManifestError> {
            serde_json::from_value(v.clone())
                .map_err(|e| ManifestError(format!("invalid {what} descriptor: {e}")))
        };
        let list = |key: &str| -> Result<Vec<Descriptor>, ManifestError> {
            match obj.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(a)) => a.iter().map(|d| desc(d, key)).collect(),
                Some(_) => Err(ManifestError(format!("{key} must be an array"))),
            }
        };
        let subject = obj.get("subject").map(|s| desc(s, "subject")).transpose()?;
        let annotations = obj
            .get("annotations")
            .map(|a| serde_json::from_value(a.clone()))
            .transpose()
            .map_err(|e| ManifestError(format!("invalid annotations: {e}")))?;
        let mut m = Manifest {
            media_type,
            config: None,
            layers: Vec::new(),
            manifests: Vec::new(),
            subject,
            artifact_type: obj
                .get("artifactType")
                .and_then(Value::as_str)
                .map(str::to_string),
            annotations,
        };
        if m.is_index() {
            if obj.contains_key("config") || obj.contains_key("layers") {
                return Err(ManifestError("an index has no config or layers".into()));
            }
            m.manifests = list("manifests")?;
        } else {
            let config = obj
                .get("config")
                .ok_or_else(|| ManifestError("config is missing".into()))?;
            m.config = Some(desc(config, "config")?);
            m.layers = list("layers")?;
            if m.artifact_type.is_none() {
                m.artifact_type = m.config.as_ref().map(|c| c.media_type.clone());
            }
        }
        Ok(m)
    }

    /// The entry of an index for `os`/`arch` (linux/amd64 by default).
    pub fn pick_platform(&self, os: &str, arch: &str) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch)
        })
    }
}

/// The runnable part of an image config (`config` of the OCI image configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// The parts of an image configuration document ferrocloud reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigDocument {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ImageConfig>,
    #[serde(default)]
    pub rootfs: Option<Value>,
}
