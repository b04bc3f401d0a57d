//! The persisted records of the control plane (functions, versions, aliases, layers,
//! provisioned concurrency) and how they render as the model's output structures.

use crate::spec::PackageType;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Store tables.
pub const FUNCTIONS: &str = "lambda_functions";
pub const VERSIONS: &str = "lambda_versions";
pub const ALIASES: &str = "lambda_aliases";
pub const LAYERS: &str = "lambda_layers";
pub const LAYER_NAMES: &str = "lambda_layer_names";
pub const PROVISIONED: &str = "lambda_provisioned";
/// Global records of the control plane (the download signing key).
pub const META: &str = "lambda_meta";

/// A deployment package in the code store (content addressed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRef {
    /// Hex sha256 of the zip: `<data>/code/<hex>/`, `<data>/zips/<hex>.zip`.
    pub sha_hex: String,
    /// Base64 sha256 (`CodeSha256`).
    pub sha_b64: String,
    /// Zip length (`CodeSize`).
    pub size: u64,
    pub unzipped: u64,
}

/// A layer version a function uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub arn: String,
    pub code: CodeRef,
}

/// The image of an `Image` function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub uri: String,
    /// `sha256:…`
    pub digest: String,
}

/// The configuration of `$LATEST` or of one published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub version: String,
    pub package_type: PackageType,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: String,
    pub description: String,
    pub timeout: u32,
    pub memory: u32,
    pub ephemeral: u32,
    pub environment: Option<BTreeMap<String, String>>,
    pub layers: Vec<LayerRef>,
    pub architecture: String,
    pub code: CodeRef,
    pub image: Option<ImageRef>,
    pub image_config: Option<Value>,
    pub dead_letter_arn: Option<String>,
    pub tracing_mode: String,
    pub log_format: String,
    pub log_group: Option<String>,
    pub app_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub kms_key_arn: Option<String>,
    pub vpc_config: Option<Value>,
    pub last_modified: f64,
    pub revision_id: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub state_reason_code: Option<String>,
    pub last_update_status: String,
    pub last_update_reason: Option<String>,
    pub last_update_reason_code: Option<String>,
}

impl Config {
    /// What a published version is made of (for "nothing changed since the last version").
    pub fn fingerprint(&self) -> Value {
        let mut c = self.clone();
        c.version = String::new();
        c.last_modified = 0.0;
        c.revision_id = String::new();
        c.description = String::new();
        c.state = String::new();
        c.state_reason = None;
        c.state_reason_code = None;
        c.last_update_status = String::new();
        c.last_update_reason = None;
        c.last_update_reason_code = None;
        serde_json::to_value(c).unwrap_or(Value::Null)
    }

    pub fn log_group_name(&self, function: &str) -> String {
        self.log_group
            .clone()
            .unwrap_or_else(|| format!("/aws/lambda/{function}"))
    }
}

/// One function (its `$LATEST` inside).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub v: u32,
    pub name: String,
    /// Unqualified ARN.
    pub arn: String,
    pub tags: BTreeMap<String, String>,
    pub reserved: Option<u32>,
    /// Highest version number ever published (numbers are never reused).
    pub last_version: u64,
    pub latest: Config,
}

/// An alias.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRecord {
    pub name: String,
    pub function_version: String,
    pub description: String,
    /// Version -> weight.
    pub weights: BTreeMap<String, f64>,
    pub revision_id: String,
}

/// One layer version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    pub name: String,
    pub version: u64,
    pub description: String,
    pub created: f64,
    pub code: CodeRef,
    pub runtimes: Vec<String>,
    pub architectures: Vec<String>,
    pub license: Option<String>,
}

/// Provisioned concurrency of one version or alias.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionedRecord {
    pub qualifier: String,
    pub requested: u32,
    pub allocated: u32,
    pub status: String,
    pub reason: Option<String>,
    pub last_modified: f64,
}

/// Key of version `n` of a function.
pub fn version_key(function: &str, n: u64) -> String {
    format!("{function}/{n:010}")
}

pub fn layer_key(name: &str, n: u64) -> String {
    format!("{name}/{n:010}")
}

/// `2019-09-24T16:51:39.557+0000`, as Lambda writes timestamps.
pub fn lambda_time(secs: f64) -> String {
    let iso = fc_protocol::value::format_iso8601(secs);
    let base = iso.trim_end_matches('Z');
    if base.contains('.') {
        format!("{base}+0000")
    } else {
        format!("{base}.000+0000")
    }
}

/// A fresh `RevisionId`.
pub fn revision_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `FunctionConfiguration` of a function at `cfg`.
pub fn render_config(rec: &FunctionRecord, cfg: &Config) -> Value {
    let arn = if cfg.version == "$LATEST" {
        rec.arn.clone()
    } else {
        format!("{}:{}", rec.arn, cfg.version)
    };
    let mut o = Map::new();
    o.insert("FunctionName".into(), json!(rec.name));
    o.insert("FunctionArn".into(), json!(arn));
    if let Some(r) = &cfg.runtime {
        o.insert("Runtime".into(), json!(r));
    }
    o.insert("Role".into(), json!(cfg.role));
    if let Some(h) = &cfg.handler {
        o.insert("Handler".into(), json!(h));
    }
    o.insert("CodeSize".into(), json!(cfg.code.size));
    o.insert("Description".into(), json!(cfg.description));
    o.insert("Timeout".into(), json!(cfg.timeout));
    o.insert("MemorySize".into(), json!(cfg.memory));
    o.insert("LastModified".into(), json!(lambda_time(cfg.last_modified)));
    o.insert("CodeSha256".into(), json!(cfg.code.sha_b64));
    o.insert("Version".into(), json!(cfg.version));
    if let Some(v) = &cfg.vpc_config {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.entry("SubnetIds").or_insert(json!([]));
            m.entry("SecurityGroupIds").or_insert(json!([]));
            m.entry("VpcId").or_insert(json!(""));
        }
        o.insert("VpcConfig".into(), v);
    }
    if let Some(d) = &cfg.dead_letter_arn {
        o.insert("DeadLetterConfig".into(), json!({"TargetArn": d}));
    }
    if let Some(env) = &cfg.environment {
        o.insert("Environment".into(), json!({"Variables": env}));
    }
    if let Some(k) = &cfg.kms_key_arn {
        o.insert("KMSKeyArn".into(), json!(k));
    }
    o.insert("TracingConfig".into(), json!({"Mode": cfg.tracing_mode}));
    o.insert("RevisionId".into(), json!(cfg.revision_id));
    if !cfg.layers.is_empty() {
        let layers: Vec<Value> = cfg
            .layers
            .iter()
            .map(|l| json!({"Arn": l.arn, "CodeSize": l.code.size}))
            .collect();
        o.insert("Layers".into(), Value::Array(layers));
    }
    o.insert("State".into(), json!(cfg.state));
    if let Some(r) = &cfg.state_reason {
        o.insert("StateReason".into(), json!(r));
    }
    if let Some(r) = &cfg.state_reason_code {
        o.insert("StateReasonCode".into(), json!(r));
    }
    o.insert("LastUpdateStatus".into(), json!(cfg.last_update_status));
    if let Some(r) = &cfg.last_update_reason {
        o.insert("LastUpdateStatusReason".into(), json!(r));
    }
    if let Some(r) = &cfg.last_update_reason_code {
        o.insert("LastUpdateStatusReasonCode".into(), json!(r));
    }
    o.insert(
        "PackageType".into(),
        json!(match cfg.package_type {
            PackageType::Zip => "Zip",
            PackageType::Image => "Image",
        }),
    );
    if let Some(ic) = &cfg.image_config {
        o.insert("ImageConfigResponse".into(), json!({"ImageConfig": ic}));
    }
    o.insert("Architectures".into(), json!([cfg.architecture]));
    o.insert("EphemeralStorage".into(), json!({"Size": cfg.ephemeral}));
    o.insert(
        "SnapStart".into(),
        json!({"ApplyOn": "None", "OptimizationStatus": "Off"}),
    );
    let mut logging = Map::new();
    logging.insert("LogFormat".into(), json!(cfg.log_format));
    if let Some(l) = &cfg.app_log_level {
        logging.insert("ApplicationLogLevel".into(), json!(l));
    }
    if let Some(l) = &cfg.system_log_level {
        logging.insert("SystemLogLevel".into(), json!(l));
    }
    logging.insert("LogGroup".into(), json!(cfg.log_group_name(&rec.name)));
    o.insert("LoggingConfig".into(), Value::Object(logging));
    Value::Object(o)
}

/// `AliasConfiguration`.
pub fn render_alias(function_arn: &str, a: &AliasRecord) -> Value {
    let mut o = json!({
        "AliasArn": format!("{function_arn}:{}", a.name),
        "Name": a.name,
        "FunctionVersion": a.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if !a.weights.is_empty() {
        o["RoutingConfig"] = json!({"AdditionalVersionWeights": a.weights});
    }
    o
}
