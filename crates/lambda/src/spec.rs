//! The contract between the Lambda control plane and the execution engine: what one version of
//! a function needs to run ([`FunctionSpec`]), one invocation ([`InvokeRequest`]) and how it
//! ended ([`InvokeResult`]).
//!
//! The control plane (`control`) resolves a function name/ARN and qualifier into a
//! `FunctionSpec`; the engine (`exec`) keeps execution environments per spec `revision` and
//! runs invocations in them. Fields may be added (with defaults); none are renamed.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `Zip` (code + runtime) or `Image` (a container image from ferrocloud's registry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PackageType {
    #[default]
    Zip,
    Image,
}

/// The image of a `PackageType=Image` function, resolved by the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// `ImageUri` as the user gave it.
    pub uri: String,
    /// The manifest digest it resolved to (`sha256:…`) in the image store.
    pub digest: String,
    /// `ImageConfig` overrides (None = the image's own).
    pub entry_point: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub working_directory: Option<String>,
}

/// Everything needed to run one version of one function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub account: String,
    pub region: String,
    pub function_name: String,
    /// Unqualified: `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub function_arn: String,
    /// `$LATEST` or a published version number.
    pub version: String,
    pub package_type: PackageType,
    /// `python3.12`, `nodejs20.x`, `provided.al2023`, ... (None for images).
    pub runtime: Option<String>,
    /// `_HANDLER` (None for images unless `ImageConfig.Command` gives one).
    pub handler: Option<String>,
    /// Unpacked deployment package, mounted read-only at `/var/task` (Zip).
    pub code_dir: Option<PathBuf>,
    pub image: Option<ImageSpec>,
    /// Unpacked layers in order, overlaid under `/opt` (later layers win).
    pub layer_dirs: Vec<PathBuf>,
    pub memory_mb: u32,
    pub timeout_s: u32,
    /// Size of `/tmp` in MB (512–10240).
    pub ephemeral_mb: u32,
    /// The function's `Environment.Variables`.
    pub environment: Vec<(String, String)>,
    /// Execution role ARN; the engine issues its temporary credentials.
    pub role_arn: String,
    /// `/aws/lambda/<name>` unless `LoggingConfig.LogGroup` says otherwise.
    pub log_group: String,
    /// `x86_64` or `arm64`.
    pub architecture: String,
    /// Identifies code + configuration: environments are reused only for the same revision.
    pub revision: String,
    /// `ReservedConcurrentExecutions` of the function (None = shares the account pool).
    pub reserved_concurrency: Option<u32>,
    /// `DeadLetterConfig.TargetArn` (an SQS queue) for failed async invocations.
    pub dead_letter_arn: Option<String>,
}

impl FunctionSpec {
    /// `…:function:<name>:<version>`.
    pub fn version_arn(&self) -> String {
        format!("{}:{}", self.function_arn, self.version)
    }
}

/// One invocation.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    /// The request id (`Lambda-Runtime-Aws-Request-Id`, `x-amzn-RequestId`).
    pub request_id: String,
    pub payload: Bytes,
    /// The ARN the caller used (with its qualifier, if any): `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_arn: String,
    /// `X-Amz-Client-Context` (base64 JSON) as given.
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    /// `LogType=Tail`: return the last 4 KB of the invocation's log.
    pub tail_logs: bool,
    /// Async (`Event`) invocations are run by the same engine; only the caller differs.
    pub asynchronous: bool,
}

/// How an invocation ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvokeResult {
    /// The response payload (or the error document the runtime reported).
    pub payload: Bytes,
    /// `X-Amz-Function-Error`: `Unhandled` (or `Handled`) when the function failed.
    pub function_error: Option<String>,
    /// Base64 of the last 4 KB of the log (`LogType=Tail`).
    pub log_result: Option<String>,
    /// `X-Amz-Executed-Version`.
    pub executed_version: String,
    pub duration_ms: f64,
    pub billed_duration_ms: u64,
    pub max_memory_used_mb: u64,
    /// Set when this invocation created its environment.
    pub init_duration_ms: Option<f64>,
}
