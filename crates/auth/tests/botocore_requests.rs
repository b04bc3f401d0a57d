//! Requests signed by botocore 1.43 (boto3 clients pointed at http(s)://localhost:4566, secret
//! `secret/Key+123`), captured just before sending, verify through the public API: S3 keys with
//! reserved characters, aws-chunked uploads with trailers, presigned S3 and STS URLs, a Lambda
//! path holding an ARN, JSON and query protocol services.

use fc_auth::{parse, verify, Payload, SignedRequest};
use serde_json::Value;

const SECRET: &str = "secret/Key+123";

struct Case {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let all: Value = serde_json::from_str(include_str!("botocore_signed.json")).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            method: c["method"].as_str().unwrap().to_string(),
            path: c["path"].as_str().unwrap().to_string(),
            query: c["query"].as_str().unwrap().to_string(),
            headers: c["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_string(),
                        h[1].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
            body: hex::decode(c["body"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

impl Case {
    fn request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            payload: Payload::Bytes(&self.body),
        }
    }
}

#[test]
fn botocore_signed_requests_verify() {
    let cases = cases();
    assert_eq!(cases.len(), 14);
    for case in &cases {
        let req = case.request();
        let parsed = parse(&req).unwrap().expect("signed");
        let now = parsed.request_time().unwrap();
        if let Err(e) = verify(&parsed, &req, SECRET, now) {
            panic!("{}: {e} {:?}", case.name, e.canonical_request());
        }
        // The wrong secret never verifies.
        assert_eq!(
            verify(&parsed, &req, "secret/Key+124", now)
                .unwrap_err()
                .code(),
            "SignatureDoesNotMatch",
            "{}",
            case.name
        );
    }
}

#[test]
fn botocore_requests_with_a_changed_path_fail() {
    for case in cases() {
        let mut path = case.path.clone();
        path.push('x');
        let req = SignedRequest {
            path: &path,
            ..case.request()
        };
        let parsed = parse(&req).unwrap().unwrap();
        let now = parsed.request_time().unwrap();
        assert!(verify(&parsed, &req, SECRET, now).is_err(), "{}", case.name);
    }
}
