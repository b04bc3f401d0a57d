//! Unit tests of the ECR service (black-box ones: tests/test_ecr.py and test_registry.py).

use super::*;
use base64::Engine;
use fc_images::Digest;
use fc_store::SqliteStore;
use serde_json::json;

const ACCT: &str = "000000000000";

fn ecr() -> (Ecr, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("fc-ecr-{}", uuid::Uuid::new_v4()));
    let images = Arc::new(ImageStore::open(&dir).unwrap());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    (Ecr::new(store, images), dir)
}

async fn call(e: &Ecr, op: &str, input: Value) -> Result<Value, ApiError> {
    let ctx = RequestContext::for_account(ACCT, "us-east-1", "ecr", op);
    e.call(&ctx, input).await
}

/// Upload a blob through the API; returns its digest.
async fn upload(e: &Ecr, repo: &str, data: &[u8]) -> String {
    let up = call(e, "InitiateLayerUpload", json!({"repositoryName": repo}))
        .await
        .unwrap();
    let id = up["uploadId"].as_str().unwrap().to_string();
    call(
        e,
        "UploadLayerPart",
        json!({
            "repositoryName": repo, "uploadId": id, "partFirstByte": 0,
            "partLastByte": data.len() - 1,
            "layerPartBlob": base64::engine::general_purpose::STANDARD.encode(data),
        }),
    )
    .await
    .unwrap();
    let d = Digest::of(data).to_string();
    call(
        e,
        "CompleteLayerUpload",
        json!({"repositoryName": repo, "uploadId": id, "layerDigests": [d]}),
    )
    .await
    .unwrap();
    d
}

async fn push(e: &Ecr, repo: &str, n: u8, tag: Option<&str>) -> String {
    let cfg = format!("{{\"n\":{n}}}");
    let d = upload(e, repo, cfg.as_bytes()).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": cfg.len()},
        "layers": []
    })
    .to_string();
    let mut input = json!({"repositoryName": repo, "imageManifest": manifest});
    if let Some(t) = tag {
        input["imageTag"] = json!(t);
    }
    call(e, "PutImage", input).await.unwrap()["image"]["imageId"]["imageDigest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn lifecycle_expires_by_age_when_run() {
    let (e, dir) = ecr();
    call(&e, "CreateRepository", json!({"repositoryName": "app"}))
        .await
        .unwrap();
    let old = push(&e, "app", 1, Some("old")).await;
    let policy = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any",
        "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 2},
        "action": {"type": "expire"}}]})
    .to_string();
    call(
        &e,
        "PutLifecyclePolicy",
        json!({"repositoryName": "app", "lifecyclePolicyText": policy}),
    )
    .await
    .unwrap();
    // Nothing is old enough yet.
    let now = fc_protocol::value::now_secs();
    assert_eq!(e.run_lifecycle(now).unwrap().expired, 0);
    let r = e.run_lifecycle(now + 3.0 * 86_400.0).unwrap();
    assert_eq!(
        r,
        LifecycleReport {
            repositories: 1,
            expired: 1
        }
    );
    let left = call(&e, "ListImages", json!({"repositoryName": "app"}))
        .await
        .unwrap();
    assert_eq!(left["imageIds"], json!([]));
    let _ = old;
    // Housekeeping collects nothing young.
    assert_eq!(e.housekeeping(now).unwrap().expired, 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn token_records_caller() {
    let (e, dir) = ecr();
    let out = call(&e, "GetAuthorizationToken", json!({})).await.unwrap();
    let tok = out["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(tok)
            .unwrap(),
    )
    .unwrap();
    let pw = decoded.strip_prefix("AWS:").unwrap();
    let now = fc_protocol::value::now_secs();
    let rec = repos::valid_token(e.store.as_ref(), pw, now)
        .unwrap()
        .unwrap();
    assert_eq!(rec.account, ACCT);
    assert_eq!(rec.principal_arn, format!("arn:aws:iam::{ACCT}:root"));
    assert!((rec.expires_at - now - 12.0 * 3600.0).abs() < 5.0);
    assert!(
        repos::valid_token(e.store.as_ref(), pw, now + 12.0 * 3600.0 + 1.0)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        out["authorizationData"][0]["proxyEndpoint"],
        json!("http://localhost:4566")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn repositories_and_images() {
    let (e, dir) = ecr();
    let r = call(
        &e,
        "CreateRepository",
        json!({"repositoryName": "team/app"}),
    )
    .await
    .unwrap();
    assert_eq!(
        r["repository"]["repositoryUri"],
        json!("localhost:4566/team/app")
    );
    let err = call(
        &e,
        "CreateRepository",
        json!({"repositoryName": "team/app"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "RepositoryAlreadyExistsException");
    let d = push(&e, "team/app", 7, Some("v1")).await;
    let got = call(&e, "DescribeImages", json!({"repositoryName": "team/app"}))
        .await
        .unwrap();
    assert_eq!(got["imageDetails"][0]["imageDigest"], json!(d));
    assert_eq!(got["imageDetails"][0]["imageTags"], json!(["v1"]));
    let err = call(
        &e,
        "DeleteRepository",
        json!({"repositoryName": "team/app"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "RepositoryNotEmptyException");
    call(
        &e,
        "DeleteRepository",
        json!({"repositoryName": "team/app", "force": true}),
    )
    .await
    .unwrap();
    let err = call(&e, "DescribeImages", json!({"repositoryName": "team/app"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "RepositoryNotFoundException");
    std::fs::remove_dir_all(dir).unwrap();
}
