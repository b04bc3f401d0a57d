//! SigV4 tests: AWS's published vectors, error cases, and a round trip through an independent
//! signer written here from the specification.

use super::*;
use time::macros::datetime;

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SUITE_NOW: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);
const S3_NOW: OffsetDateTime = datetime!(2013-05-24 00:00:00 UTC);

fn hdrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Req {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn new(method: &'static str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Req {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Req {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: hdrs(headers),
            body: body.to_vec(),
        }
    }

    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            payload: Payload::Bytes(&self.body),
        }
    }

    fn check(&self, secret: &str, now: OffsetDateTime) -> Result<Credentials, AuthError> {
        let parsed = parse(&self.signed())?.expect("request carries authentication");
        verify(&parsed, &self.signed(), secret, now)?;
        Ok(parsed)
    }
}

fn suite_auth(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// One of AWS's `aws-sig-v4-test-suite` cases: host example.amazonaws.com, the suite date.
fn suite_case(
    method: &'static str,
    target: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    signed_headers: &str,
    signature: &str,
) -> Req {
    let auth = suite_auth(signed_headers, signature);
    let mut headers = vec![
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ];
    headers.extend_from_slice(extra);
    headers.push(("Authorization", &auth));
    Req::new(method, target, &headers, body)
}

fn assert_suite_ok(req: Req) {
    let parsed = req
        .check(SUITE_SECRET, SUITE_NOW)
        .expect("suite vector verifies");
    assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
    assert_eq!(parsed.service, "service");
}

#[test]
fn suite_get_vanilla() {
    let req = suite_case(
        "GET",
        "/",
        &[],
        b"",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
    let parsed = parse(&req.signed()).unwrap().unwrap();
    assert_eq!(
        parsed,
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "service".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
            session_token: None,
            presigned: false,
            amz_date: "20150830T123600Z".into(),
            expires: None,
        }
    );
    assert_eq!(parsed.scope(), "20150830/us-east-1/service/aws4_request");
    assert_suite_ok(req);
}

#[test]
fn suite_post_vanilla() {
    assert_suite_ok(suite_case(
        "POST",
        "/",
        &[],
        b"",
        "host;x-amz-date",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ));
}

#[test]
fn suite_get_unreserved() {
    assert_suite_ok(suite_case(
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        &[],
        b"",
        "host;x-amz-date",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ));
}

#[test]
fn suite_get_slashes_normalised() {
    assert_suite_ok(suite_case(
        "GET",
        "//example//",
        &[],
        b"",
        "host;x-amz-date",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ));
}

#[test]
fn suite_query_order_key_case() {
    assert_suite_ok(suite_case(
        "GET",
        "/?Param2=value2&Param1=value1",
        &[],
        b"",
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ));
}

#[test]
fn suite_query_order_value() {
    assert_suite_ok(suite_case(
        "GET",
        "/?Param1=value2&Param1=value1",
        &[],
        b"",
        "host;x-amz-date",
        "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    ));
}

#[test]
fn suite_utf8_query() {
    assert_suite_ok(suite_case(
        "GET",
        "/?\u{1234}=bar",
        &[],
        b"",
        "host;x-amz-date",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ));
}

#[test]
fn suite_header_value_order_and_duplicates() {
    assert_suite_ok(suite_case(
        "GET",
        "/",
        &[
            ("My-Header1", "value4"),
            ("My-Header1", "value1"),
            ("My-Header1", "value3"),
            ("My-Header1", "value2"),
        ],
        b"",
        "host;my-header1;x-amz-date",
        "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    ));
    assert_suite_ok(suite_case(
        "GET",
        "/",
        &[
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        b"",
        "host;my-header1;x-amz-date",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ));
}

#[test]
fn suite_header_value_trim() {
    assert_suite_ok(suite_case(
        "GET",
        "/",
        &[("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
        b"",
        "host;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ));
}

#[test]
fn suite_post_form_body() {
    let req = suite_case(
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Param1=value1",
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    );
    assert_suite_ok(req);
    // The same signature over another body fails.
    let mut tampered = suite_case(
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Param1=value2",
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    );
    let err = tampered.check(SUITE_SECRET, SUITE_NOW).unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert_eq!(err.message(), crate::error::SIGNATURE_MISMATCH_MESSAGE);
    assert!(err.canonical_request().unwrap().starts_with("POST\n/\n\n"));
    assert!(err
        .string_to_sign()
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256\n"));
    // A body passed as its hash verifies the same way.
    tampered.body = b"Param1=value1".to_vec();
    let hash = sha256_hex(b"Param1=value1");
    let signed = SignedRequest {
        payload: Payload::Sha256Hex(&hash),
        ..tampered.signed()
    };
    let parsed = parse(&signed).unwrap().unwrap();
    verify(&parsed, &signed, SUITE_SECRET, SUITE_NOW).unwrap();
}

#[test]
fn suite_session_token_header() {
    let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    let req = suite_case(
        "GET",
        "/",
        &[("X-Amz-Security-Token", token)],
        b"",
        "host;x-amz-date;x-amz-security-token",
        "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
    );
    let parsed = req.check(SUITE_SECRET, SUITE_NOW).unwrap();
    assert_eq!(parsed.session_token.as_deref(), Some(token));
}

#[test]
fn iam_list_users_doc_example() {
    let req = Req::new(
        "GET",
        "/?Action=ListUsers&Version=2010-05-08",
        &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            ),
        ],
        b"",
    );
    let parsed = req.check(SUITE_SECRET, SUITE_NOW).unwrap();
    assert_eq!(parsed.service, "iam");
    // Wrong secret.
    let err = req
        .check("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ", SUITE_NOW)
        .unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert_eq!(err.status(), 403);
}

fn s3_header_req(
    method: &'static str,
    target: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    signed_headers: &str,
    signature: &str,
) -> Req {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders={signed_headers},Signature={signature}"
    );
    let hash = sha256_hex(body);
    let mut headers = vec![
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", hash.as_str()),
    ];
    headers.extend_from_slice(extra);
    headers.push(("Authorization", &auth));
    Req::new(method, target, &headers, body)
}

#[test]
fn s3_get_object_doc_example() {
    let req = s3_header_req(
        "GET",
        "/test.txt",
        &[("Range", "bytes=0-9")],
        b"",
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
    req.check(S3_SECRET, S3_NOW).unwrap();
    // Changing a signed header breaks it, with S3's wording.
    let mut bad = req;
    bad.headers[3].1 = "bytes=0-8".into();
    let err = bad.check(S3_SECRET, S3_NOW).unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert_eq!(err.message(), crate::error::S3_SIGNATURE_MISMATCH_MESSAGE);
}

#[test]
fn s3_put_object_doc_example() {
    let req = s3_header_req(
        "PUT",
        "/test%24file.text",
        &[
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ],
        b"Welcome to Amazon S3.",
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
    assert_eq!(
        req.headers[2].1,
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    );
    req.check(S3_SECRET, S3_NOW).unwrap();
    // The client sending `$` unencoded still verifies (the path as sent, re-encoded).
    let mut raw = s3_header_req(
        "PUT",
        "/test$file.text",
        &[
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ],
        b"Welcome to Amazon S3.",
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
    raw.check(S3_SECRET, S3_NOW).unwrap();
    // Same signed hash header, different body: signature fine, content hash wrong.
    raw.body = b"Welcome to Amazon S4.".to_vec();
    let err = raw.check(S3_SECRET, S3_NOW).unwrap_err();
    assert_eq!(err.code(), "XAmzContentSHA256Mismatch");
    assert_eq!(err.status(), 400);
}

#[test]
fn s3_bucket_doc_examples() {
    s3_header_req(
        "GET",
        "/?lifecycle",
        &[],
        b"",
        "host;x-amz-content-sha256;x-amz-date",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    )
    .check(S3_SECRET, S3_NOW)
    .unwrap();
    let list = s3_header_req(
        "GET",
        "/?max-keys=2&prefix=J",
        &[],
        b"",
        "host;x-amz-content-sha256;x-amz-date",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    );
    list.check(S3_SECRET, S3_NOW).unwrap();
    let mut bad = list;
    bad.query = "max-keys=3&prefix=J".into();
    assert_eq!(
        bad.check(S3_SECRET, S3_NOW).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
}

const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

fn presigned_req(query: &str) -> Req {
    Req::new(
        "GET",
        &format!("/test.txt?{query}"),
        &[("Host", "examplebucket.s3.amazonaws.com")],
        b"",
    )
}

#[test]
fn s3_presigned_get_doc_example() {
    let req = presigned_req(PRESIGNED_QUERY);
    let parsed = req.check(S3_SECRET, S3_NOW).unwrap();
    assert!(parsed.presigned);
    assert_eq!(parsed.expires, Some(86400));
    assert_eq!(parsed.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(parsed.signed_headers, vec!["host".to_string()]);
    // Still valid late on the same day.
    req.check(S3_SECRET, datetime!(2013-05-24 23:59:00 UTC))
        .unwrap();
    // Expired the next day, with S3's answer.
    let err = req
        .check(S3_SECRET, datetime!(2013-05-25 00:00:01 UTC))
        .unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
    assert_eq!(err.message(), "Request has expired");
    assert_eq!(err.status(), 403);
    // Not valid yet when used well before its date.
    let err = req
        .check(S3_SECRET, datetime!(2013-05-23 23:00:00 UTC))
        .unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
    // Tampered key.
    let mut other = presigned_req(PRESIGNED_QUERY);
    other.path = "/test.tx".into();
    assert_eq!(
        other.check(S3_SECRET, S3_NOW).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
    // Extra parameter.
    let extra = presigned_req(&format!("{PRESIGNED_QUERY}&versionId=1"));
    assert_eq!(
        extra.check(S3_SECRET, S3_NOW).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn presigned_parameter_errors() {
    let no_sig = presigned_req(PRESIGNED_QUERY.split("&X-Amz-Signature").next().unwrap());
    let err = parse(&no_sig.signed()).unwrap_err();
    assert_eq!(err.code(), "AuthorizationQueryParametersError");
    assert_eq!(err.status(), 400);
    let long =
        presigned_req(&PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=604801"));
    let err = parse(&long.signed()).unwrap_err();
    assert!(err.message().contains("604800"), "{err}");
    let nan = presigned_req(&PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=abc"));
    assert_eq!(
        parse(&nan.signed()).unwrap_err().message(),
        "X-Amz-Expires should be a number"
    );
    let algo = presigned_req(&PRESIGNED_QUERY.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"));
    assert_eq!(
        parse(&algo.signed()).unwrap_err().code(),
        "AuthorizationQueryParametersError"
    );
    // Header and query authentication together.
    let mut both = presigned_req(PRESIGNED_QUERY);
    both.headers
        .push(("Authorization".into(), suite_auth("host", "00")));
    let err = parse(&both.signed()).unwrap_err();
    assert_eq!(err.code(), "InvalidArgument");
}

#[test]
fn s3_streaming_seed_and_chunks_doc_example() {
    let req = Req::new(
        "PUT",
        "/examplebucket/chunkObject.txt",
        &[
            ("Host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
            ("Content-Encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("Content-Length", "66824"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,\
                 Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            ),
        ],
        b"irrelevant: the body is chunk-signed",
    );
    let parsed = req.check(S3_SECRET, S3_NOW).unwrap();
    let mut chunks = ChunkVerifier::new(&parsed, S3_SECRET);
    let a64k = vec![b'a'; 65536];
    let a1k = vec![b'a'; 1024];
    assert!(chunks
        .verify_next(
            &a1k,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        )
        .is_err());
    chunks
        .verify_next(
            &a64k,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        )
        .unwrap();
    chunks
        .verify_next(
            &a1k,
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        )
        .unwrap();
    chunks
        .verify_next(
            b"",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        )
        .unwrap();
}

#[test]
fn unsigned_payload_is_used_verbatim() {
    // Sign with UNSIGNED-PAYLOAD; the body is then not covered.
    let mut req = TestSigner::s3().sign_header(
        "PUT",
        &["bucket", "key"],
        &[],
        &[("x-amz-content-sha256", UNSIGNED_PAYLOAD)],
        b"body",
        Some(UNSIGNED_PAYLOAD),
    );
    req.check(TEST_SECRET, TEST_NOW).unwrap();
    req.body = b"other body".to_vec();
    req.check(TEST_SECRET, TEST_NOW).unwrap();
    // STREAMING-UNSIGNED-PAYLOAD-TRAILER likewise.
    let req = TestSigner::s3().sign_header(
        "PUT",
        &["bucket", "key"],
        &[],
        &[
            ("x-amz-content-sha256", STREAMING_UNSIGNED_PAYLOAD_TRAILER),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ],
        b"5\r\nhello\r\n0\r\n",
        Some(STREAMING_UNSIGNED_PAYLOAD_TRAILER),
    );
    req.check(TEST_SECRET, TEST_NOW).unwrap();
}

#[test]
fn no_authentication_is_none() {
    let req = Req::new("GET", "/?Action=ListUsers", &[("Host", "x")], b"");
    assert_eq!(parse(&req.signed()).unwrap(), None);
}

#[test]
fn malformed_authorization_headers() {
    let req = Req::new("GET", "/", &[("Host", "x"), ("Authorization", "foo")], b"");
    let err = parse(&req.signed()).unwrap_err();
    assert_eq!(err.code(), "IncompleteSignature");
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.message(),
        "Authorization header requires 'Credential' parameter. Authorization header requires \
         'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
         Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
         Authorization=foo"
    );
    // Missing only the signature.
    let value = "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/sts/aws4_request, \
                 SignedHeaders=host;x-amz-date";
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "x"),
            ("X-Amz-Date", "20261125T000000Z"),
            ("Authorization", value),
        ],
        b"",
    );
    let err = parse(&req.signed()).unwrap_err();
    assert_eq!(
        err.message(),
        format!("Authorization header requires 'Signature' parameter. Authorization={value}")
    );
    // Credential with too few parts.
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "x"),
            ("X-Amz-Date", "20261125T000000Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1, SignedHeaders=host, \
                 Signature=abc",
            ),
        ],
        b"",
    );
    let err = parse(&req.signed()).unwrap_err();
    assert!(
        err.message().starts_with("Credential must have exactly 5"),
        "{err}"
    );
    // Wrong terminator.
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "x"),
            ("X-Amz-Date", "20261125T000000Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/sts/aws5_request, \
                 SignedHeaders=host, Signature=abc",
            ),
        ],
        b"",
    );
    assert_eq!(
        parse(&req.signed()).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
    // A component without '='.
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "x"),
            ("X-Amz-Date", "20261125T000000Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/sts/aws4_request, \
                 SignedHeaders=host, Signature",
            ),
        ],
        b"",
    );
    let err = parse(&req.signed()).unwrap_err();
    assert!(err.message().contains("missing equal-sign"), "{err}");
    // Unparsable X-Amz-Date.
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "x"),
            ("X-Amz-Date", "2026-11-25"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/sts/aws4_request, \
                 SignedHeaders=host, Signature=abc",
            ),
        ],
        b"",
    );
    let err = parse(&req.signed()).unwrap_err();
    assert!(
        err.message().starts_with("Date must be in ISO-8601"),
        "{err}"
    );
    // Other algorithms (SigV2, SigV4a) are not verified.
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "x"),
            ("Date", "Wed, 25 Nov 2026 00:00:00 GMT"),
            ("Authorization", "AWS AKID:c2lnbmF0dXJl"),
        ],
        b"",
    );
    assert_eq!(
        parse(&req.signed()).unwrap_err().code(),
        "IncompleteSignature"
    );
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "x"),
            ("X-Amz-Date", "20261125T000000Z"),
            (
                "Authorization",
                "AWS4-ECDSA-P256-SHA256 Credential=AKID/20261125/s3/aws4_request, \
                 SignedHeaders=host, Signature=abc",
            ),
        ],
        b"",
    );
    assert_eq!(
        parse(&req.signed()).unwrap_err().code(),
        "IncompleteSignature"
    );
    let req = Req::new(
        "GET",
        "/?AWSAccessKeyId=AKID&Signature=x&Expires=1",
        &[],
        b"",
    );
    assert_eq!(
        parse(&req.signed()).unwrap_err().code(),
        "IncompleteSignature"
    );
}

#[test]
fn clock_skew() {
    let signer = TestSigner::new("sts");
    let req = signer.sign_header("POST", &[], &[], &[], b"Action=GetCallerIdentity", None);
    req.check(TEST_SECRET, TEST_NOW + Duration::minutes(14))
        .unwrap();
    req.check(TEST_SECRET, TEST_NOW - Duration::minutes(14))
        .unwrap();
    let err = req
        .check(TEST_SECRET, TEST_NOW + Duration::minutes(16))
        .unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert_eq!(
        err.message(),
        "Signature expired: 20261125T120000Z is now earlier than 20261125T120100Z \
         (20261125T121600Z - 15 min.)"
    );
    let err = req
        .check(TEST_SECRET, TEST_NOW - Duration::minutes(16))
        .unwrap_err();
    assert!(
        err.message().starts_with("Signature not yet current"),
        "{err}"
    );
    // S3 says RequestTimeTooSkewed.
    let req = TestSigner::s3().sign_header("GET", &["b", "k"], &[], &[], b"", None);
    let err = req
        .check(TEST_SECRET, TEST_NOW + Duration::hours(1))
        .unwrap_err();
    assert_eq!(err.code(), "RequestTimeTooSkewed");
    assert_eq!(err.status(), 403);
}

#[test]
fn scope_date_must_match_request_date() {
    let signer = TestSigner::new("sts");
    let mut req = signer.sign_header("GET", &[], &[], &[], b"", None);
    for (name, value) in req.headers.iter_mut() {
        if name == "Authorization" {
            *value = value.replace("/20261125/", "/20261124/");
        }
    }
    let err = req.check(TEST_SECRET, TEST_NOW).unwrap_err();
    assert!(
        err.message()
            .starts_with("Date in Credential scope does not match YYYYMMDD"),
        "{err}"
    );
}

#[test]
fn date_header_fallback() {
    // No X-Amz-Date: the Date header supplies the time.
    let key = signing_key(TEST_SECRET, "20261125", "us-east-1", "sts");
    let creq = format!(
        "GET\n/\n\ndate:Wed, 25 Nov 2026 12:00:00 GMT\nhost:localhost\n\ndate;host\n{EMPTY_SHA256}"
    );
    let sts = string_to_sign(
        "20261125T120000Z",
        "20261125/us-east-1/sts/aws4_request",
        &creq,
    );
    let sig = hex::encode(hmac(&key, sts.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261125/us-east-1/sts/aws4_request, \
         SignedHeaders=date;host, Signature={sig}"
    );
    let req = Req::new(
        "GET",
        "/",
        &[
            ("Host", "localhost"),
            ("Date", "Wed, 25 Nov 2026 12:00:00 GMT"),
            ("Authorization", &auth),
        ],
        b"",
    );
    let parsed = req.check(TEST_SECRET, TEST_NOW).unwrap();
    assert_eq!(parsed.amz_date, "20261125T120000Z");
}

#[test]
fn non_s3_presigned_signs_body_hash() {
    // e.g. an EKS token: a presigned STS GetCallerIdentity.
    let req = TestSigner::new("sts").sign_query(
        "GET",
        &[],
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        &[("x-k8s-aws-id", "my-cluster")],
        60,
    );
    let parsed = req.check(TEST_SECRET, TEST_NOW).unwrap();
    assert_eq!(parsed.expires, Some(60));
    let err = req
        .check(TEST_SECRET, TEST_NOW + Duration::seconds(61))
        .unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert!(err.message().starts_with("Signature expired"), "{err}");
}

#[test]
fn helpers() {
    assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    assert_eq!(uri_encode("a b/c~".as_bytes(), false), "a%20b/c~");
    assert_eq!(uri_encode("a b/c~".as_bytes(), true), "a%20b%2Fc~");
    assert_eq!(normalize_path("/a/./b/../c/"), "/a/c/");
    assert_eq!(normalize_path("/example1/example2/../.."), "/");
    assert_eq!(normalize_path("/./example"), "/example");
    assert_eq!(
        canonical_query("b&a=1&c=x+y", false, false),
        "a=1&b=&c=x%2By"
    );
    assert_eq!(canonical_query("c=x+y", false, true), "c=x%20y");
    assert_eq!(format_amz_date(TEST_NOW), "20261125T120000Z");
    assert_eq!(
        parse_http_date("Fri, 24 May 2013 00:00:00 GMT"),
        Some(S3_NOW)
    );
}

// ---------------------------------------------------------------------------------------------
// An independent signer, written from the specification, used to sign random requests.

const TEST_SECRET: &str = "test/secret+KEY0123456789abcdefghijklmnop";
const TEST_NOW: OffsetDateTime = datetime!(2026-11-25 12:00:00 UTC);

struct TestSigner {
    service: &'static str,
}

const UNRESERVED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";

fn enc(s: &str, keep_slash: bool) -> String {
    s.bytes()
        .map(|b| {
            if UNRESERVED.as_bytes().contains(&b) || (keep_slash && b == b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

impl TestSigner {
    fn new(service: &'static str) -> Self {
        TestSigner { service }
    }

    fn s3() -> Self {
        TestSigner::new("s3")
    }

    /// Wire path (each segment encoded once) and canonical path.
    fn paths(&self, segments: &[&str]) -> (String, String) {
        let wire: String = if segments.is_empty() {
            "/".into()
        } else {
            segments
                .iter()
                .map(|s| format!("/{}", enc(s, false)))
                .collect()
        };
        let canonical = if self.service == "s3" {
            wire.clone()
        } else {
            enc(&wire, true)
        };
        (wire, canonical)
    }

    fn signature(&self, creq: &str) -> String {
        let hash = hex::encode(Sha256::digest(creq.as_bytes()));
        let scope = format!("20261125/us-east-1/{}/aws4_request", self.service);
        let sts = format!("AWS4-HMAC-SHA256\n20261125T120000Z\n{scope}\n{hash}");
        let mut key = mac(format!("AWS4{TEST_SECRET}").as_bytes(), "20261125");
        for part in ["us-east-1", self.service, "aws4_request"] {
            key = mac(&key, part);
        }
        hex::encode(mac(&key, &sts))
    }

    fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
        let mut names: Vec<String> = headers.iter().map(|(n, _)| n.to_lowercase()).collect();
        names.sort();
        names.dedup();
        let mut block = String::new();
        for n in &names {
            let vals: Vec<String> = headers
                .iter()
                .filter(|(k, _)| k.to_lowercase() == *n)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            block += &format!("{n}:{}\n", vals.join(","));
        }
        (block, names.join(";"))
    }

    fn canonical_query(pairs: &[(String, String)]) -> (String, String) {
        let wire = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k, false), enc(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        let mut sorted: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (enc(k, false), enc(v, false)))
            .collect();
        sorted.sort();
        let canonical = sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        (wire, canonical)
    }

    /// Sign with an `Authorization` header. `payload_header` is the x-amz-content-sha256 value
    /// to sign verbatim; otherwise the body hash (sent as that header for S3).
    fn sign_header(
        &self,
        method: &'static str,
        segments: &[&str],
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        body: &[u8],
        payload_header: Option<&str>,
    ) -> Req {
        let (wire_path, canon_path) = self.paths(segments);
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (wire_query, canon_query) = Self::canonical_query(&pairs);
        let mut headers = hdrs(&[
            ("Host", "localhost:4566"),
            ("X-Amz-Date", "20261125T120000Z"),
        ]);
        headers.extend(hdrs(extra_headers));
        let body_hash = hex::encode(Sha256::digest(body));
        let payload = match payload_header {
            Some(p) => p.to_string(),
            None => {
                if self.service == "s3" {
                    headers.push(("x-amz-content-sha256".into(), body_hash.clone()));
                }
                body_hash
            }
        };
        let (block, signed) = Self::canonical_headers(&headers);
        let creq = format!("{method}\n{canon_path}\n{canon_query}\n{block}\n{signed}\n{payload}");
        let sig = self.signature(&creq);
        headers.push((
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261125/us-east-1/{}/aws4_request, \
                 SignedHeaders={signed}, Signature={sig}",
                self.service
            ),
        ));
        Req {
            method,
            path: wire_path,
            query: wire_query,
            headers,
            body: body.to_vec(),
        }
    }

    /// Presign (query-string authentication); the body is empty.
    fn sign_query(
        &self,
        method: &'static str,
        segments: &[&str],
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        expires: u64,
    ) -> Req {
        let (wire_path, canon_path) = self.paths(segments);
        let mut headers = hdrs(&[("Host", "localhost:4566")]);
        headers.extend(hdrs(extra_headers));
        let (block, signed) = Self::canonical_headers(&headers);
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
            (
                "X-Amz-Credential",
                format!("AKIDTEST/20261125/us-east-1/{}/aws4_request", self.service),
            ),
            ("X-Amz-Date", "20261125T120000Z".to_string()),
            ("X-Amz-Expires", expires.to_string()),
            ("X-Amz-SignedHeaders", signed.clone()),
        ] {
            pairs.push((k.to_string(), v));
        }
        let (wire_query, canon_query) = Self::canonical_query(&pairs);
        let payload = if self.service == "s3" {
            UNSIGNED_PAYLOAD.to_string()
        } else {
            EMPTY_SHA256.to_string()
        };
        let creq = format!("{method}\n{canon_path}\n{canon_query}\n{block}\n{signed}\n{payload}");
        let sig = self.signature(&creq);
        Req {
            method,
            path: wire_path,
            query: format!("{wire_query}&X-Amz-Signature={sig}"),
            headers,
            body: Vec::new(),
        }
    }
}

/// xorshift64*, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn text(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "a",
            "b",
            "Z",
            "0",
            "9",
            "-",
            "_",
            ".",
            "~",
            " ",
            "%",
            "+",
            "=",
            "&",
            ":",
            "@",
            "!",
            "$",
            "'",
            "(",
            "*",
            ",",
            ";",
            "/",
            "?",
            "#",
            "é",
            "\u{1234}",
            "\u{1F600}",
        ];
        let len = 1 + self.below(max);
        (0..len).map(|_| *self.pick(PIECES)).collect()
    }

    fn segment(&mut self) -> String {
        loop {
            let s = self.text(8);
            if s != "." && s != ".." {
                return s;
            }
        }
    }
}

/// Replace one alphanumeric byte of `s` with a different one; `None` if there is none.
fn flip(rng: &mut Rng, s: &str) -> Option<String> {
    let positions: Vec<usize> = s
        .bytes()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return None;
    }
    let i = *rng.pick(&positions);
    let mut bytes = s.as_bytes().to_vec();
    bytes[i] = match bytes[i] {
        b'z' => b'y',
        b'Z' => b'Y',
        b'9' => b'8',
        b => b + 1,
    };
    String::from_utf8(bytes).ok()
}

fn random_request(rng: &mut Rng) -> (Req, bool) {
    let service = *rng.pick(&["s3", "sts", "ecr", "service", "iam"]);
    let signer = TestSigner::new(service);
    let method = *rng.pick(&["GET", "PUT", "POST", "DELETE", "HEAD"]);
    let segments: Vec<String> = (0..rng.below(4)).map(|_| rng.segment()).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query: Vec<(String, String)> = (0..rng.below(4))
        .map(|_| {
            let v = if rng.below(3) == 0 {
                String::new()
            } else {
                rng.text(6)
            };
            (rng.text(5), v)
        })
        .collect();
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let headers: Vec<(String, String)> = (0..rng.below(4))
        .map(|i| {
            let name = *rng.pick(&["X-Custom", "x-amz-meta-a", "Content-Type", "X-Custom"]);
            let value = format!(
                "{}v{i} {}  {} ",
                if rng.below(2) == 0 { " " } else { "" },
                rng.text(4).replace(['\t'], ""),
                rng.below(1000)
            );
            (name.to_string(), value)
        })
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if rng.below(3) == 0 {
        (
            signer.sign_query(
                method,
                &segments,
                &query,
                &headers,
                1 + rng.below(3600) as u64,
            ),
            service != "s3",
        )
    } else {
        let body: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        (
            signer.sign_header(method, &segments, &query, &headers, &body, None),
            true,
        )
    }
}

#[test]
fn random_requests_round_trip_and_one_byte_changes_fail() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let (req, body_signed) = random_request(&mut rng);
        let ok = req.check(TEST_SECRET, TEST_NOW);
        assert!(
            ok.is_ok(),
            "round {round}: {:?} {} ?{} {:?} -> {:?}",
            req.method,
            req.path,
            req.query,
            req.headers,
            ok
        );
        let mutations: Vec<Req> = {
            let mut v = Vec::new();
            if let Some(path) = flip(&mut rng, &req.path) {
                v.push(Req {
                    path,
                    ..clone(&req)
                });
            }
            if let Some(query) = flip(&mut rng, &req.query) {
                v.push(Req {
                    query,
                    ..clone(&req)
                });
            }
            let signed = req.check(TEST_SECRET, TEST_NOW).unwrap().signed_headers;
            let candidates: Vec<usize> = req
                .headers
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| signed.contains(&n.to_lowercase()))
                .map(|(i, _)| i)
                .collect();
            let i = *rng.pick(&candidates);
            if let Some(value) = flip(&mut rng, &req.headers[i].1) {
                let mut m = clone(&req);
                m.headers[i].1 = value;
                v.push(m);
            }
            if body_signed {
                let mut m = clone(&req);
                if m.body.is_empty() {
                    m.body.push(b'x');
                } else {
                    let j = rng.below(m.body.len());
                    m.body[j] ^= 1 << rng.below(8);
                }
                v.push(m);
            }
            v.push(Req {
                method: if req.method == "GET" { "PUT" } else { "GET" },
                ..clone(&req)
            });
            v
        };
        for m in mutations {
            assert!(
                m.check(TEST_SECRET, TEST_NOW).is_err(),
                "round {round}: mutation accepted: {} {} ?{} {:?}",
                m.method,
                m.path,
                m.query,
                m.headers
            );
        }
        // Wrong secret.
        assert!(req.check("another-secret", TEST_NOW).is_err());
    }
}

fn clone(r: &Req) -> Req {
    Req {
        method: r.method,
        path: r.path.clone(),
        query: r.query.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
    }
}
