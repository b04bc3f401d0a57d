//! In-process tests of the registry handler (the black-box ones are tests/test_registry.py).

use super::*;
use bytes::Bytes;
use fc_images::repos::{self, Repository};
use fc_images::Digest;
use fc_store::{Scope, SqliteStore};

const ACCT: &str = "000000000000";

fn setup(strict: bool) -> (Registry, Arc<dyn Store>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("fc-registry-{}", uuid::Uuid::new_v4()));
    let images = Arc::new(ImageStore::open(&dir).unwrap());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let repo = Repository {
        v: 1,
        name: "app".into(),
        registry_id: ACCT.into(),
        region: "us-east-1".into(),
        created_at: 0.0,
        image_tag_mutability: "MUTABLE".into(),
        tag_mutability_exclusions: Vec::new(),
        scan_on_push: false,
        encryption_type: "AES256".into(),
        kms_key: None,
        tags: Vec::new(),
        policy: None,
        lifecycle_policy: None,
        lifecycle_updated: None,
    };
    repos::put_repo(store.as_ref(), &Scope::new(ACCT, "us-east-1"), &repo).unwrap();
    let reg = Registry::new(
        images,
        store.clone(),
        RegistryConfig {
            default_account: ACCT.into(),
            default_region: "us-east-1".into(),
            strict,
        },
    );
    (reg, store, dir)
}

fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest::from_uri(
        method,
        uri,
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        Bytes::new(),
    )
}

fn header<'a>(r: &'a RawReply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn body(r: &RawReply) -> Vec<u8> {
    match &r.body {
        BodyOut::Bytes(b) => b.to_vec(),
        BodyOut::File { path, offset, len } => {
            let all = std::fs::read(path).unwrap();
            all[*offset as usize..(*offset + *len) as usize].to_vec()
        }
        BodyOut::Stream { .. } => panic!("unexpected stream"),
    }
}

#[tokio::test]
async fn push_and_pull_in_process() {
    let (reg, _store, dir) = setup(false);
    let blob = b"layer bytes".to_vec();
    let d = Digest::of(&blob);
    let r = reg
        .handle(req("POST", "/v2/app/blobs/uploads/", &[]), BodyIn::empty())
        .await;
    assert_eq!(r.status, 202);
    let loc = header(&r, "location").unwrap().to_string();
    let r = reg
        .handle(
            req("PUT", &format!("{loc}?digest={d}"), &[]),
            BodyIn::from_bytes(Bytes::from(blob.clone())),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&body(&r)));
    let r = reg
        .handle(
            req("GET", &format!("/v2/app/blobs/{d}"), &[]),
            BodyIn::empty(),
        )
        .await;
    assert_eq!(body(&r), blob);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":{}}},"layers":[]}}"#,
        blob.len()
    );
    let r = reg
        .handle(
            req("PUT", "/v2/app/manifests/v1", &[]),
            BodyIn::from_bytes(Bytes::from(manifest.clone())),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = reg
        .handle(req("GET", "/v2/app/manifests/v1", &[]), BodyIn::empty())
        .await;
    assert_eq!(body(&r), manifest.as_bytes());
    assert_eq!(
        header(&r, "docker-content-digest"),
        Some(Digest::of(manifest.as_bytes()).as_str())
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn strict_mode_tokens() {
    let (reg, store, dir) = setup(true);
    let r = reg.handle(req("GET", "/v2/", &[]), BodyIn::empty()).await;
    assert_eq!(r.status, 401);
    assert!(header(&r, "www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    let now = fc_protocol::value::now_secs();
    for (pw, expires) in [("good", now + 60.0), ("old", now - 1.0)] {
        repos::put_token(
            store.as_ref(),
            pw,
            &repos::TokenRecord {
                account: ACCT.into(),
                region: "us-east-1".into(),
                principal_arn: format!("arn:aws:iam::{ACCT}:root"),
                expires_at: expires,
            },
        )
        .unwrap();
    }
    use base64::Engine;
    let basic = |pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("AWS:{pw}"))
        )
    };
    let r = reg
        .handle(
            req(
                "GET",
                "/v2/app/tags/list",
                &[("Authorization", &basic("good"))],
            ),
            BodyIn::empty(),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = reg
        .handle(
            req("GET", "/v2/", &[("Authorization", &basic("old"))]),
            BodyIn::empty(),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = reg
        .handle(
            req("GET", "/v2/", &[("Authorization", "Bearer good")]),
            BodyIn::empty(),
        )
        .await;
    assert_eq!(r.status, 200);
    std::fs::remove_dir_all(dir).unwrap();
}
