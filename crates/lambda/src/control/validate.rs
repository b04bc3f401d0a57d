//! Server-side validation of function configuration, worded as Lambda words it, and applying
//! a validated `CreateFunction`/`UpdateFunctionConfiguration` input onto a [`Config`].

use super::model::Config;
use super::{ipv, validation};
use crate::spec::PackageType;
use fc_protocol::ApiError;
use serde_json::Value;
use std::collections::BTreeMap;

/// Runtimes Lambda accepts for new functions and updates.
pub const SUPPORTED_RUNTIMES: &[&str] = &[
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "java11",
    "java17",
    "java21",
    "java25",
    "java8.al2",
    "dotnet8",
    "dotnet10",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "provided.al2",
    "provided.al2023",
];

/// Runtimes in the model that Lambda no longer accepts for creating or updating functions.
pub const DEPRECATED_RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs4.3-edge",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "java8",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "provided",
];

pub fn runtime(r: &str) -> Result<(), ApiError> {
    if SUPPORTED_RUNTIMES.contains(&r) {
        return Ok(());
    }
    if DEPRECATED_RUNTIMES.contains(&r) {
        return Err(ipv(format!(
            "The runtime parameter of {r} is no longer supported for creating or updating AWS \
             Lambda functions. We recommend you use a supported runtime while creating or \
             updating functions."
        )));
    }
    Err(ipv(format!(
        "Value {r} at 'runtime' failed to satisfy constraint: Member must satisfy enum value \
         set: [{}] or be a valid ARN",
        SUPPORTED_RUNTIMES.join(", ")
    )))
}

pub const ROLE_PATTERN: &str = "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+";

/// `arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`, the whole string.
pub fn role_matches(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(':') else {
        return false;
    };
    let partition_ok = partition.is_empty()
        || partition
            .strip_prefix("aws")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'));
    if !partition_ok {
        return false;
    }
    let Some(rest) = rest.strip_prefix("iam::") else {
        return false;
    };
    if rest.len() < 12 || !rest.as_bytes()[..12].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let Some(rest) = rest[12..].strip_prefix(":role") else {
        return false;
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b))
}

pub fn role(s: &str) -> Result<(), ApiError> {
    if role_matches(s) {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{s}' at 'role' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: {ROLE_PATTERN}"
        )))
    }
}

fn range(member: &str, v: i64, min: i64, max: i64) -> Result<u32, ApiError> {
    if v < min {
        return Err(validation(format!(
            "1 validation error detected: Value '{v}' at '{member}' failed to satisfy \
             constraint: Member must have value greater than or equal to {min}"
        )));
    }
    if v > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{v}' at '{member}' failed to satisfy \
             constraint: Member must have value less than or equal to {max}"
        )));
    }
    u32::try_from(v).map_err(|_| validation(format!("Value '{v}' at '{member}' is out of range")))
}

pub fn timeout(v: i64) -> Result<u32, ApiError> {
    range("timeout", v, 1, 900)
}

pub fn memory(v: i64) -> Result<u32, ApiError> {
    if v > 10240 {
        return Err(validation(
            "'MemorySize' value failed to satisfy constraint: Member must have value less than \
             or equal to 10240",
        ));
    }
    range("memorySize", v, 128, 10240)
}

pub fn ephemeral(v: i64) -> Result<u32, ApiError> {
    range("ephemeralStorage.size", v, 512, 10240)
}

/// Keys the runtime sets itself.
const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

pub fn environment(v: &Value) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let Some(vars) = v.get("Variables").and_then(Value::as_object) else {
        return Ok(Some(BTreeMap::new()));
    };
    let mut out = BTreeMap::new();
    let mut reserved = Vec::new();
    for (k, val) in vars {
        let ok = k.len() >= 2
            && k.as_bytes()[0].is_ascii_alphabetic()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(validation(
                "1 validation error detected: Value at 'environment.variables' failed to \
                 satisfy constraint: Map keys must satisfy constraint: [Member must satisfy \
                 regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
            ));
        }
        if RESERVED_ENV.contains(&k.as_str()) {
            reserved.push(k.clone());
        }
        out.insert(k.clone(), val.as_str().unwrap_or_default().to_string());
    }
    if !reserved.is_empty() {
        return Err(ipv(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided contains reserved keys that are currently not \
             supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let measured = serde_json::to_string(&out).unwrap_or_default();
    if measured.len() > 4096 {
        let shown: String = measured.chars().take(256).collect();
        return Err(ipv(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided exceeded the 4KB limit. String measured: {shown}"
        )));
    }
    Ok(Some(out))
}

fn int(input: &Value, k: &str) -> Option<i64> {
    input.get(k).and_then(Value::as_i64)
}

fn string(input: &Value, k: &str) -> Option<String> {
    input.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Applies the configuration members of `input` onto `cfg` (create and update share this).
pub fn apply(cfg: &mut Config, input: &Value) -> Result<(), ApiError> {
    if let Some(r) = string(input, "Role") {
        role(&r)?;
        cfg.role = r;
    }
    if let Some(r) = string(input, "Runtime") {
        runtime(&r)?;
        cfg.runtime = Some(r);
    }
    if let Some(h) = string(input, "Handler") {
        if h.len() > 128 || h.is_empty() || h.chars().any(char::is_whitespace) {
            return Err(validation(format!(
                "1 validation error detected: Value '{h}' at 'handler' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: [^\\s]+"
            )));
        }
        cfg.handler = Some(h);
    }
    if let Some(d) = string(input, "Description") {
        if d.chars().count() > 256 {
            return Err(validation(format!(
                "1 validation error detected: Value '{d}' at 'description' failed to satisfy \
                 constraint: Member must have length less than or equal to 256"
            )));
        }
        cfg.description = d;
    }
    if let Some(t) = int(input, "Timeout") {
        cfg.timeout = timeout(t)?;
    }
    if let Some(m) = int(input, "MemorySize") {
        cfg.memory = memory(m)?;
    }
    if let Some(e) = input.get("EphemeralStorage") {
        let size = e.get("Size").and_then(Value::as_i64).unwrap_or(0);
        cfg.ephemeral = ephemeral(size)?;
    }
    if let Some(env) = input.get("Environment") {
        let vars = environment(env)?;
        cfg.environment = vars.filter(|v| !v.is_empty());
    }
    if let Some(d) = input.get("DeadLetterConfig") {
        match d.get("TargetArn").and_then(Value::as_str) {
            None | Some("") => cfg.dead_letter_arn = None,
            Some(arn) => {
                let ok =
                    arn.starts_with("arn:") && (arn.contains(":sqs:") || arn.contains(":sns:"));
                if !ok {
                    return Err(ipv(format!(
                        "The provided target arn {arn} is invalid: a dead-letter target must be \
                         an SQS queue or an SNS topic"
                    )));
                }
                cfg.dead_letter_arn = Some(arn.to_string());
            }
        }
    }
    if let Some(k) = string(input, "KMSKeyArn") {
        cfg.kms_key_arn = (!k.is_empty()).then_some(k);
    }
    if let Some(t) = input.get("TracingConfig") {
        if let Some(m) = t.get("Mode").and_then(Value::as_str) {
            if m != "Active" && m != "PassThrough" {
                return Err(validation(format!(
                    "1 validation error detected: Value '{m}' at 'tracingConfig.mode' failed to \
                     satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]"
                )));
            }
            cfg.tracing_mode = m.to_string();
        }
    }
    if let Some(l) = input.get("LoggingConfig") {
        if let Some(f) = l.get("LogFormat").and_then(Value::as_str) {
            if f != "JSON" && f != "Text" {
                return Err(validation(format!(
                    "1 validation error detected: Value '{f}' at 'loggingConfig.logFormat' \
                     failed to satisfy constraint: Member must satisfy enum value set: [JSON, Text]"
                )));
            }
            cfg.log_format = f.to_string();
        }
        if let Some(g) = l.get("LogGroup").and_then(Value::as_str) {
            cfg.log_group = (!g.is_empty()).then(|| g.to_string());
        }
        if let Some(a) = l.get("ApplicationLogLevel").and_then(Value::as_str) {
            cfg.app_log_level = Some(a.to_string());
        }
        if let Some(s) = l.get("SystemLogLevel").and_then(Value::as_str) {
            cfg.system_log_level = Some(s.to_string());
        }
        if cfg.log_format == "Text"
            && (cfg.app_log_level.is_some() || cfg.system_log_level.is_some())
        {
            return Err(ipv(
                "LogLevel is not supported when LogFormat is set to \"Text\". Remove LogLevel \
                 from your request or change the LogFormat to \"JSON\" and try again.",
            ));
        }
    }
    if let Some(ic) = input.get("ImageConfig") {
        if cfg.package_type != PackageType::Image {
            return Err(ipv(
                "ImageConfig is not supported for functions with packageType Zip.",
            ));
        }
        let empty = ic.as_object().is_none_or(|o| o.is_empty());
        cfg.image_config = (!empty).then(|| ic.clone());
    }
    if let Some(v) = input.get("VpcConfig") {
        cfg.vpc_config = Some(v.clone());
    }
    Ok(())
}

/// The package-type rules once everything is applied.
pub fn package_rules(cfg: &Config, has_layers: bool) -> Result<(), ApiError> {
    match cfg.package_type {
        PackageType::Zip => {
            // Custom runtimes (`provided.*`) run `bootstrap` and need no handler.
            let custom = cfg
                .runtime
                .as_deref()
                .is_some_and(|r| r.starts_with("provided"));
            if cfg.runtime.is_none() || (cfg.handler.is_none() && !custom) {
                return Err(ipv(
                    "Runtime and Handler are mandatory parameters for functions created with \
                     deployment packages.",
                ));
            }
        }
        PackageType::Image => {
            if cfg.runtime.is_some() || cfg.handler.is_some() || has_layers {
                return Err(ipv(
                    "Please don't provide Handler or Runtime or Layer when the intended \
                     function PackageType is Image.",
                ));
            }
        }
    }
    Ok(())
}

/// `Architectures` (exactly one of `x86_64`, `arm64`).
pub fn architectures(v: &Value) -> Result<String, ApiError> {
    let list: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if list.len() != 1 {
        return Err(validation(format!(
            "1 validation error detected: Value '[{}]' at 'architectures' failed to satisfy \
             constraint: Member must have length {} 1",
            list.join(", "),
            if list.is_empty() {
                "greater than or equal to"
            } else {
                "less than or equal to"
            }
        )));
    }
    if list[0] != "x86_64" && list[0] != "arm64" {
        return Err(validation(format!(
            "1 validation error detected: Value '[{}]' at 'architectures' failed to satisfy \
             constraint: Member must satisfy constraint: [Member must satisfy enum value set: \
             [x86_64, arm64]]",
            list[0]
        )));
    }
    Ok(list[0].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(role_matches("arn:aws:iam::123456789012:role/lambda-role"));
        assert!(role_matches(
            "arn:aws-cn:iam::123456789012:role/path/r+=,.@-_"
        ));
        assert!(role_matches("arn::iam::123456789012:roler"));
        for bad in [
            "role",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
            "arn:gcp:iam::123456789012:role/x",
        ] {
            assert!(!role_matches(bad), "{bad}");
            assert_eq!(role(bad).unwrap_err().code, "ValidationException");
        }
    }

    #[test]
    fn ranges_and_runtimes() {
        assert!(memory(128).is_ok() && memory(10240).is_ok());
        assert!(memory(127)
            .unwrap_err()
            .message
            .contains("greater than or equal to 128"));
        assert!(memory(10241)
            .unwrap_err()
            .message
            .contains("less than or equal to 10240"));
        assert!(timeout(0).is_err() && timeout(901).is_err() && timeout(900).is_ok());
        assert!(ephemeral(511).is_err() && ephemeral(10241).is_err());
        assert!(runtime("python3.12").is_ok());
        let e = runtime("python2.7").unwrap_err();
        assert!(e
            .message
            .starts_with("The runtime parameter of python2.7 is no longer"));
        assert_eq!(
            runtime("cobol").unwrap_err().code,
            "InvalidParameterValueException"
        );
    }

    #[test]
    fn env_limits() {
        let big: String = "x".repeat(5000);
        assert!(environment(&serde_json::json!({"Variables": {"A1": big}})).is_err());
        assert!(environment(&serde_json::json!({"Variables": {"AWS_REGION": "x"}})).is_err());
        assert!(environment(&serde_json::json!({"Variables": {"1A": "x"}})).is_err());
        let ok = environment(&serde_json::json!({"Variables": {"AB": "x"}})).unwrap();
        assert_eq!(ok.unwrap().get("AB").map(String::as_str), Some("x"));
    }
}
