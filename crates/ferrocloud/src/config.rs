//! Configuration: command-line flags, `FERROCLOUD_*` environment variables, an optional TOML
//! file, and embedded defaults, in that order of precedence.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Any access key is accepted and signatures are not checked.
    Lenient,
    /// Signatures are verified against the root credentials and IAM/STS keys.
    Strict,
}

/// Flags of `ferrocloud serve` (each also a `FERROCLOUD_*` environment variable).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "FERROCLOUD_HOST")]
    pub host: Option<String>,
    /// Port to listen on [default: 4566].
    #[arg(long, env = "FERROCLOUD_PORT")]
    pub port: Option<u16>,
    /// Directory for the state store [default: ~/.local/share/ferrocloud].
    #[arg(long, env = "FERROCLOUD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep nothing on disk: state lives in memory and is gone at exit.
    #[arg(long, env = "FERROCLOUD_EPHEMERAL")]
    pub ephemeral: bool,
    /// Account used for requests whose access key names no account [default: 000000000000].
    #[arg(long, env = "FERROCLOUD_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Region used when a request names none [default: us-east-1].
    #[arg(long, env = "FERROCLOUD_REGION")]
    pub region: Option<String>,
    /// Authentication mode [default: lenient].
    #[arg(long, env = "FERROCLOUD_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Access key id of the root credentials checked in strict mode [default: test].
    #[arg(long, env = "FERROCLOUD_ROOT_ACCESS_KEY_ID")]
    pub root_access_key_id: Option<String>,
    /// Secret of the root credentials checked in strict mode [default: test].
    #[arg(long, env = "FERROCLOUD_ROOT_SECRET_ACCESS_KEY")]
    pub root_secret_access_key: Option<String>,
    /// Largest request body accepted, in bytes [default: 134217728].
    #[arg(long, env = "FERROCLOUD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "FERROCLOUD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Execution driver for workloads: `auto`, `linux` or `process` [default: auto].
    #[arg(long, env = "FERROCLOUD_DRIVER")]
    pub driver: Option<String>,
    /// Account-wide Lambda concurrent executions [default: 1000].
    #[arg(long, env = "FERROCLOUD_LAMBDA_CONCURRENCY")]
    pub lambda_concurrency: Option<u32>,
    /// Seconds an idle Lambda execution environment is kept warm [default: 300].
    #[arg(long, env = "FERROCLOUD_LAMBDA_IDLE_SECONDS")]
    pub lambda_idle_seconds: Option<u64>,
    /// Directory where Lambda runtime interface clients are installed once
    /// [default: <data-dir>/lambda-runtimes, or ~/.cache/ferrocloud/lambda-runtimes when ephemeral].
    #[arg(long, env = "FERROCLOUD_LAMBDA_RUNTIME_CACHE")]
    pub lambda_runtime_cache: Option<PathBuf>,
    /// Seconds before the first retry of a failed async Lambda invocation [default: 60].
    #[arg(long, env = "FERROCLOUD_LAMBDA_ASYNC_RETRY_SECONDS")]
    pub lambda_async_retry_seconds: Option<u64>,
    /// Running vCPUs allowed per account, region and EC2 vCPU bucket, the instance-family groups
    /// of AWS's quotas: Standard (A, C, D, H, I, M, R, T, Z), F, G and VT, P, X, Inf, DL, Trn,
    /// High Memory. On-Demand and Spot instances count apart, each bucket of each with this
    /// limit (over it: `VcpuLimitExceeded`, Spot `MaxSpotInstanceCountExceeded`) [default: 256].
    #[arg(long, env = "FERROCLOUD_EC2_VCPU_LIMIT")]
    pub ec2_vcpu_limit: Option<u32>,
    /// Optional TOML file with the same keys (snake_case).
    #[arg(long, env = "FERROCLOUD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    host: Option<String>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    ephemeral: Option<bool>,
    account_id: Option<String>,
    region: Option<String>,
    auth: Option<AuthMode>,
    root_access_key_id: Option<String>,
    root_secret_access_key: Option<String>,
    max_body_bytes: Option<usize>,
    log_format: Option<String>,
    driver: Option<String>,
    lambda_concurrency: Option<u32>,
    lambda_idle_seconds: Option<u64>,
    lambda_runtime_cache: Option<PathBuf>,
    lambda_async_retry_seconds: Option<u64>,
    ec2_vcpu_limit: Option<u32>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub ephemeral: bool,
    pub account_id: String,
    pub region: String,
    pub auth: AuthMode,
    pub root_access_key_id: String,
    pub root_secret_access_key: String,
    pub max_body_bytes: usize,
    pub log_format: String,
    /// `auto`, `linux` or `process`.
    pub driver: String,
    pub lambda_concurrency: u32,
    pub lambda_idle_seconds: u64,
    pub lambda_runtime_cache: PathBuf,
    pub lambda_async_retry_seconds: u64,
    pub ec2_vcpu_limit: u32,
}

/// The default data directory: `$XDG_DATA_HOME/ferrocloud` or `~/.local/share/ferrocloud`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("ferrocloud");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/ferrocloud"),
        None => PathBuf::from(".ferrocloud"),
    }
}

/// The cache directory: `$XDG_CACHE_HOME/ferrocloud` or `~/.cache/ferrocloud`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("ferrocloud");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/ferrocloud"),
        None => std::env::temp_dir().join("ferrocloud-cache"),
    }
}

impl Config {
    pub fn resolve(args: &ServeArgs) -> Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let ephemeral = args.ephemeral || file.ephemeral.unwrap_or(false);
        let lambda_runtime_cache = args
            .lambda_runtime_cache
            .clone()
            .or(file.lambda_runtime_cache)
            .unwrap_or_else(|| {
                if ephemeral {
                    default_cache_dir().join("lambda-runtimes")
                } else {
                    data_dir.join("lambda-runtimes")
                }
            });
        let cfg = Config {
            host: args
                .host
                .clone()
                .or(file.host)
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: args.port.or(file.port).unwrap_or(4566),
            data_dir,
            ephemeral,
            lambda_concurrency: args
                .lambda_concurrency
                .or(file.lambda_concurrency)
                .unwrap_or(1000),
            lambda_idle_seconds: args
                .lambda_idle_seconds
                .or(file.lambda_idle_seconds)
                .unwrap_or(300),
            lambda_runtime_cache,
            lambda_async_retry_seconds: args
                .lambda_async_retry_seconds
                .or(file.lambda_async_retry_seconds)
                .unwrap_or(60),
            ec2_vcpu_limit: args.ec2_vcpu_limit.or(file.ec2_vcpu_limit).unwrap_or(256),
            account_id: args
                .account_id
                .clone()
                .or(file.account_id)
                .unwrap_or_else(|| "000000000000".into()),
            region: args
                .region
                .clone()
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".into()),
            auth: args.auth.or(file.auth).unwrap_or(AuthMode::Lenient),
            root_access_key_id: args
                .root_access_key_id
                .clone()
                .or(file.root_access_key_id)
                .unwrap_or_else(|| "test".into()),
            root_secret_access_key: args
                .root_secret_access_key
                .clone()
                .or(file.root_secret_access_key)
                .unwrap_or_else(|| "test".into()),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(128 << 20),
            driver: args
                .driver
                .clone()
                .or(file.driver)
                .unwrap_or_else(|| "auto".into()),
            log_format: args
                .log_format
                .clone()
                .or(file.log_format)
                .unwrap_or_else(|| "text".into()),
        };
        if !fc_types::ids::is_account_id(&cfg.account_id) {
            bail!("account id must be 12 digits, got {:?}", cfg.account_id);
        }
        if !["auto", "linux", "process"].contains(&cfg.driver.as_str()) {
            bail!(
                "driver must be auto, linux or process, got {:?}",
                cfg.driver
            );
        }
        if cfg.log_format != "text" && cfg.log_format != "json" {
            bail!("log format must be text or json, got {:?}", cfg.log_format);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flags_over_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("fc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "port = 5000\naccount_id = \"111111111111\"\nauth = \"strict\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            port: Some(6000),
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.port, 6000);
        assert_eq!(c.account_id, "111111111111");
        assert_eq!(c.auth, AuthMode::Strict);
        assert_eq!(c.host, "127.0.0.1");
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(Config::resolve(&args).is_err());
        let bad = ServeArgs {
            account_id: Some("12".into()),
            ..Default::default()
        };
        assert!(Config::resolve(&bad).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
