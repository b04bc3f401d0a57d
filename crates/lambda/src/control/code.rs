//! The code store: deployment packages and layers, content addressed by the sha256 of their
//! zip. A zip is checked whole before anything is written, unpacked into a temporary
//! directory and renamed into place (`<data>/code/<hex>/` or `<data>/layers/<hex>/`); the zip
//! itself is kept at `<data>/zips/<hex>.zip` for `Code.Location` downloads.
//! Also: reading code from S3, and the signed download URLs.

use super::model::CodeRef;
use super::zip::{self, ZipError};
use super::{invalid, ipv};
use crate::Inner;
use base64::Engine;
use fc_protocol::ApiError;
use fc_services::{BodyIn, BodyOut, RequestContext};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Removes what no record references any more (and temporary leftovers of interrupted
/// uploads) from the code store. Run before any request is served: nothing is in flight.
/// Returns how many entries were removed.
pub fn collect_garbage(data_dir: &Path, referenced: &std::collections::HashSet<String>) -> usize {
    let mut removed = 0;
    for kind in ["code", "layers", "zips"] {
        let Ok(entries) = std::fs::read_dir(data_dir.join(kind)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let sha = name.strip_suffix(".zip").unwrap_or(&name);
            if name.starts_with(".tmp-") || !referenced.contains(sha) {
                let p = e.path();
                let res = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                match res {
                    Ok(()) => removed += 1,
                    Err(err) => {
                        tracing::warn!(path = %p.display(), error = %err, "lambda: code store cleanup failed")
                    }
                }
            }
        }
    }
    removed
}

/// A zip uploaded directly (`ZipFile`).
pub const ZIPPED_LIMIT: u64 = 52_428_800;
/// Unzipped code (with layers).
pub const UNZIPPED_LIMIT: u64 = 262_144_000;

pub const UNZIP_FAILED: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

fn zip_error(e: ZipError) -> ApiError {
    match e {
        ZipError::Corrupt(_) => ipv(UNZIP_FAILED),
        ZipError::Unsafe(name) => ipv(format!(
            "{UNZIP_FAILED} The entry {name:?} would be extracted outside the code directory."
        )),
        ZipError::TooLarge(_) => ipv(format!(
            "Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes"
        )),
        ZipError::Io { path, reason } => ApiError::new(
            500,
            "ServiceException",
            format!("code store: {path}: {reason}"),
        ),
    }
}

/// Where a kind of package is unpacked: `code` or `layers`.
pub fn unpacked_dir(data_dir: &Path, kind: &str, sha_hex: &str) -> PathBuf {
    data_dir.join(kind).join(sha_hex)
}

pub fn zip_path(data_dir: &Path, sha_hex: &str) -> PathBuf {
    data_dir.join("zips").join(format!("{sha_hex}.zip"))
}

fn io_fail(what: &Path, e: std::io::Error) -> ApiError {
    ApiError::new(
        500,
        "ServiceException",
        format!("code store: {}: {e}", what.display()),
    )
}

/// Checks, unpacks and keeps a zip; idempotent per content.
pub async fn store_zip(data_dir: &Path, kind: &str, bytes: Vec<u8>) -> Result<CodeRef, ApiError> {
    let data_dir = data_dir.to_path_buf();
    let kind = kind.to_string();
    tokio::task::spawn_blocking(move || store_zip_blocking(&data_dir, &kind, &bytes))
        .await
        .map_err(|e| ApiError::internal(format!("code store task failed: {e}")))?
}

fn store_zip_blocking(data_dir: &Path, kind: &str, bytes: &[u8]) -> Result<CodeRef, ApiError> {
    let digest = Sha256::digest(bytes);
    let sha_hex = hex::encode(digest);
    let sha_b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    let unzipped = zip::check(bytes, UNZIPPED_LIMIT).map_err(zip_error)?;
    let target = unpacked_dir(data_dir, kind, &sha_hex);
    let parent = data_dir.join(kind);
    std::fs::create_dir_all(&parent).map_err(|e| io_fail(&parent, e))?;
    if !target.is_dir() {
        let tmp = parent.join(format!(".tmp-{}", fc_types::ids::random_hex(12)));
        std::fs::create_dir_all(&tmp).map_err(|e| io_fail(&tmp, e))?;
        let res = zip::unpack(bytes, &tmp, UNZIPPED_LIMIT);
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(zip_error(e));
        }
        if let Err(e) = std::fs::rename(&tmp, &target) {
            let _ = std::fs::remove_dir_all(&tmp);
            if !target.is_dir() {
                return Err(io_fail(&target, e));
            }
        }
    }
    let zp = zip_path(data_dir, &sha_hex);
    if !zp.is_file() {
        let zips = data_dir.join("zips");
        std::fs::create_dir_all(&zips).map_err(|e| io_fail(&zips, e))?;
        let tmp = zips.join(format!(".tmp-{}", fc_types::ids::random_hex(12)));
        std::fs::write(&tmp, bytes).map_err(|e| io_fail(&tmp, e))?;
        std::fs::rename(&tmp, &zp).map_err(|e| io_fail(&zp, e))?;
    }
    Ok(CodeRef {
        sha_hex,
        sha_b64,
        size: bytes.len() as u64,
        unzipped,
    })
}

/// The zip of `ZipFile` (base64 in the value), within the direct-upload limit.
pub fn zip_from_value(v: &Value, operation: &str) -> Result<Vec<u8>, ApiError> {
    let s = v.as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| ipv(UNZIP_FAILED))?;
    if bytes.len() as u64 > ZIPPED_LIMIT {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLargeException",
            format!("Request must be smaller than 69905067 bytes for the {operation} operation"),
        ));
    }
    Ok(bytes)
}

/// Reads an S3 object (`S3Bucket`/`S3Key`/`S3ObjectVersion`) through the S3 service.
pub async fn fetch_s3(
    inner: &Arc<Inner>,
    account: &str,
    region: &str,
    src: &Value,
) -> Result<Vec<u8>, ApiError> {
    let bucket = src.get("S3Bucket").and_then(Value::as_str);
    let key = src.get("S3Key").and_then(Value::as_str);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return Err(invalid("Please provide a source for function code."));
    };
    let mut input = json!({"Bucket": bucket, "Key": key});
    if let Some(v) = src.get("S3ObjectVersion").and_then(Value::as_str) {
        input["VersionId"] = json!(v);
    }
    let ctx = RequestContext::for_account(account, region, "s3", "GetObject");
    let reply = inner
        .deps
        .s3
        .call_stream(&ctx, input, BodyIn::empty())
        .await
        .map_err(|e| {
            ipv(format!(
                "Error occurred while GetObject. S3 Error Code: {}. S3 Error Message: {}",
                e.code, e.message
            ))
        })?;
    let limit = UNZIPPED_LIMIT;
    let too_big = || {
        ipv(format!(
            "Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes"
        ))
    };
    match reply.body {
        None => Ok(Vec::new()),
        Some(BodyOut::Bytes(b)) => Ok(b.to_vec()),
        Some(BodyOut::File { path, offset, len }) => {
            if len > limit {
                return Err(too_big());
            }
            tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = std::fs::File::open(&path)?;
                f.seek(SeekFrom::Start(offset))?;
                let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                f.take(len).read_to_end(&mut out)?;
                Ok(out)
            })
            .await
            .map_err(|e| ApiError::internal(format!("s3 read task failed: {e}")))?
            .map_err(|e| ApiError::internal(format!("reading the S3 object: {e}")))
        }
        Some(BodyOut::Stream { mut rx, .. }) => {
            let mut out = Vec::new();
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk.map_err(|e| ApiError::internal(e.to_string()))?;
                if out.len() as u64 + chunk.len() as u64 > limit {
                    return Err(too_big());
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        }
    }
}

/// Signs and checks `Code.Location` download URLs.
pub struct Signer {
    key: Vec<u8>,
}

/// How long a download URL stays valid (AWS: 10 minutes).
pub const URL_TTL_SECS: u64 = 600;

impl Signer {
    pub fn new(key: Vec<u8>) -> Signer {
        Signer { key }
    }

    fn mac(&self, sha_hex: &str, expires: u64) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        m.update(sha_hex.as_bytes());
        m.update(b"\0");
        m.update(expires.to_string().as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// `{endpoint}/_ferrocloud/lambda/code/<hex>.zip?expires=…&signature=…`
    pub fn url(&self, endpoint: &str, sha_hex: &str, now: u64) -> String {
        let expires = now + URL_TTL_SECS;
        format!(
            "{}/_ferrocloud/lambda/code/{sha_hex}.zip?expires={expires}&signature={}",
            endpoint.trim_end_matches('/'),
            self.mac(sha_hex, expires)
        )
    }

    /// Whether a download request is genuine and unexpired.
    pub fn verify(&self, sha_hex: &str, expires: &str, signature: &str, now: u64) -> bool {
        let Ok(exp) = expires.parse::<u64>() else {
            return false;
        };
        if exp < now {
            return false;
        }
        let want = self.mac(sha_hex, exp);
        want.len() == signature.len()
            && want
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls() {
        let s = Signer::new(b"k".to_vec());
        let url = s.url("http://localhost:4566", "ab", 100);
        let q = url.split_once('?').unwrap().1;
        let mut exp = "";
        let mut sig = "";
        for kv in q.split('&') {
            let (k, v) = kv.split_once('=').unwrap();
            if k == "expires" {
                exp = v;
            } else {
                sig = v;
            }
        }
        assert!(s.verify("ab", exp, sig, 100));
        assert!(!s.verify("ac", exp, sig, 100));
        assert!(!s.verify("ab", exp, sig, 100 + URL_TTL_SECS + 1));
        assert!(!s.verify("ab", "999999", sig, 100));
        assert!(!Signer::new(b"other".to_vec()).verify("ab", exp, sig, 100));
    }

    #[tokio::test]
    async fn store_is_content_addressed_and_atomic() {
        let dir = std::env::temp_dir().join(format!("fc-code-{}", fc_types::ids::random_hex(8)));
        let z = super::super::zip::tests::build(&[("index.py", b"x = 1\n", 0o100644, true)]);
        let a = store_zip(&dir, "code", z.clone()).await.unwrap();
        let b = store_zip(&dir, "code", z.clone()).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size, z.len() as u64);
        assert!(unpacked_dir(&dir, "code", &a.sha_hex)
            .join("index.py")
            .is_file());
        assert_eq!(std::fs::read(zip_path(&dir, &a.sha_hex)).unwrap(), z);
        let bad = super::super::zip::tests::build(&[("../x", b"x", 0o100644, false)]);
        let e = store_zip(&dir, "code", bad).await.unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
        // Nothing but the good package was created.
        let names: Vec<_> = std::fs::read_dir(dir.join("code")).unwrap().collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn garbage_collection_keeps_referenced_code() {
        let dir = std::env::temp_dir().join(format!("fc-gc-{}", fc_types::ids::random_hex(8)));
        let keep = store_zip(
            &dir,
            "code",
            super::super::zip::tests::build(&[("a", b"1", 0o100644, false)]),
        )
        .await
        .unwrap();
        let drop_ = store_zip(
            &dir,
            "layers",
            super::super::zip::tests::build(&[("b", b"2", 0o100644, false)]),
        )
        .await
        .unwrap();
        std::fs::create_dir_all(dir.join("code/.tmp-leftover")).unwrap();
        let refs = [keep.sha_hex.clone()].into_iter().collect();
        assert_eq!(collect_garbage(&dir, &refs), 3);
        assert!(unpacked_dir(&dir, "code", &keep.sha_hex).is_dir());
        assert!(zip_path(&dir, &keep.sha_hex).is_file());
        assert!(!unpacked_dir(&dir, "layers", &drop_.sha_hex).exists());
        assert!(!zip_path(&dir, &drop_.sha_hex).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
