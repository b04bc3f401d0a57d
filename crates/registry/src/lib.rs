//! The OCI distribution API (the ECR data plane) at `/v2/` on ferrocloud's main endpoint,
//! over [`fc_images::ImageStore`] for content and [`fc_images::repos`] for the records ECR's
//! API shares (a push here is what `DescribeImages` lists, a `PutImage` is what a pull gets).
//!
//! Supported: pull (manifests by tag and digest, `HEAD`, blobs with `Range`), push
//! (monolithic `POST ?digest=`, `POST` + `PUT`, chunked `PATCH` with `Content-Range` and the
//! upload status `GET`, cross-repository mount `POST ?mount=&from=`), tags list and catalog
//! with `n`/`last` pagination and `Link` headers, delete of manifests (by digest, or untag by
//! tag) and blobs, the referrers API (`GET /v2/<name>/referrers/<digest>?artifactType=`), and
//! OCI error bodies (`BLOB_UNKNOWN`, `BLOB_UPLOAD_INVALID`, `BLOB_UPLOAD_UNKNOWN`,
//! `DIGEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, `MANIFEST_INVALID`, `MANIFEST_UNKNOWN`,
//! `NAME_INVALID`, `NAME_UNKNOWN`, `SIZE_INVALID`, `UNAUTHORIZED`, `DENIED`, `UNSUPPORTED`,
//! `TAG_INVALID`).
//!
//! Authentication is ECR's: HTTP basic `AWS:<password>` with a password from
//! `GetAuthorizationToken` (a `Bearer <password>` header is accepted too). The token carries
//! account, region and principal; it stops working when it expires. Without credentials the
//! caller is the default account's root in lenient mode; in strict mode the answer is 401 with
//! `WWW-Authenticate: Basic realm=…`. Identity policies of the token's principal and the
//! repository policy are evaluated for every operation (`ecr:BatchGetImage`,
//! `ecr:GetDownloadUrlForLayer`, `ecr:BatchCheckLayerAvailability`, `ecr:InitiateLayerUpload`,
//! `ecr:UploadLayerPart`, `ecr:CompleteLayerUpload`, `ecr:PutImage`, `ecr:BatchDeleteImage`,
//! `ecr:ListImages`, `ecr:DescribeRepositories`); a refusal is 403 `DENIED`.
//!
//! Conformance: the OCI distribution-spec conformance suite cannot be built here (no Go
//! toolchain or internet); `tests/test_registry.py` checks what its four sections check:
//! **pull** (manifest GET/HEAD by tag and digest, blob GET/HEAD, ranges, unknown manifest and
//! blob answers 404 with the right codes), **push** (POST+PUT, monolithic POST, chunked PATCH
//! with out-of-order chunk refusal (416), upload status, cross-repo mount, manifest PUT by tag
//! and digest, invalid manifest/digest errors, `MANIFEST_BLOB_UNKNOWN`), **content
//! discovery** (tags list with `n`/`last` and `Link`, referrers with and without
//! `artifactType`, catalog), **content management** (delete manifest by digest and tag,
//! delete blob, then 404s).
//!
//! Images without internet: the built-in `ferrocloud/host-userland:latest` (a Debian userland
//! from the host's read-only `/usr`, see `fc_images::userland`) is served read-only at
//! `/v2/ferrocloud/host-userland/`. Any other image is imported with skopeo into a repository
//! created with `aws ecr create-repository`, using the `repositoryUri` it returns:
//! `skopeo copy docker-archive:image.tar docker://localhost:4566/<repo>:<tag> --dest-tls-verify=false`
//! (or `oci:<dir>:<tag>`, `containers-storage:<image>`, or `podman push --tls-verify=false`).
//! Plain HTTP only: every client used here (skopeo, podman, buildah) works over HTTP with
//! `--tls-verify=false` or a registries.conf `insecure = true` entry, so no TLS listener.
//!
//! Must not live here: the image store and the shared ECR records (fc-images), the ECR API
//! (fc-services).

mod auth;
mod handlers;
mod uploads;

use async_trait::async_trait;
use fc_images::ImageStore;
use fc_protocol::{BodyIn, BodyOut, HttpRequest};
use fc_services::{RawHandler, RawReply};
use fc_store::Store;
use std::sync::Arc;

/// How the registry authenticates.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Account of anonymous callers in lenient mode.
    pub default_account: String,
    /// Region of anonymous callers in lenient mode.
    pub default_region: String,
    /// Require a token (`GetAuthorizationToken`) on every request.
    pub strict: bool,
}

/// The registry.
pub struct Registry {
    images: Arc<ImageStore>,
    store: Arc<dyn Store>,
    cfg: RegistryConfig,
    uploads: uploads::Uploads,
}

impl Registry {
    pub fn new(images: Arc<ImageStore>, store: Arc<dyn Store>, cfg: RegistryConfig) -> Registry {
        Registry {
            images,
            store,
            cfg,
            uploads: uploads::Uploads::default(),
        }
    }
}

#[async_trait]
impl RawHandler for Registry {
    async fn handle(&self, req: HttpRequest, body: BodyIn) -> RawReply {
        let mut reply = self.route(&req, body).await;
        reply.headers.push((
            "Docker-Distribution-API-Version".into(),
            "registry/2.0".into(),
        ));
        reply
    }
}

/// An OCI error reply.
pub(crate) fn error(status: u16, code: &str, message: impl Into<String>) -> RawReply {
    let body =
        serde_json::json!({"errors": [{"code": code, "message": message.into(), "detail": null}]});
    RawReply {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: BodyOut::Bytes(bytes::Bytes::from(body.to_string())),
    }
}

#[cfg(test)]
mod tests;
