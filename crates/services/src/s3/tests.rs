//! Unit tests of the non-HTTP parts: chunk decoding, ETags, ranges, lifecycle rules, listings,
//! versioning and content bookkeeping against an in-memory store.

use super::content::{looks_chunked, multipart_etag, Algo, ChunkDecoder, Hashes, INLINE_MAX};
use super::lifecycle::{current_due, noncurrent_due, validate_rule, RuleFilter};
use super::model::ObjectRec;
use super::notify::{event_matches, filter_matches};
use super::util::*;
use super::*;
use crate::BodyOut;
use bytes::Bytes;
use fc_store::SqliteStore;
use serde_json::json;

fn decode_all(input: &[u8], split: usize) -> (Vec<u8>, ChunkDecoder) {
    let mut d = ChunkDecoder::new();
    let mut out = Vec::new();
    for piece in input.chunks(split) {
        d.feed(piece, &mut |b| out.extend_from_slice(b)).unwrap();
    }
    d.finish().unwrap();
    (out, d)
}

#[test]
fn chunk_decoding_unsigned_with_trailer() {
    let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    for split in [1, 2, 3, 7, 100] {
        let (out, d) = decode_all(body, split);
        assert_eq!(out, b"hello world");
        assert_eq!(d.trailer("x-amz-checksum-crc32"), Some("DUoRhQ=="));
    }
}

#[test]
fn chunk_decoding_signed() {
    let sig = "a".repeat(64);
    let body = format!("3;chunk-signature={sig}\r\nabc\r\n0;chunk-signature={sig}\r\n\r\n");
    let (out, d) = decode_all(body.as_bytes(), 4);
    assert_eq!(out, b"abc");
    assert_eq!(d.signatures.len(), 2);
    assert!(looks_chunked(body.as_bytes()));
    assert!(!looks_chunked(b"hello world\r\n"));
    // Truncated inside a chunk.
    let mut d = ChunkDecoder::new();
    d.feed(b"5\r\nhel", &mut |_| {}).unwrap();
    assert!(d.finish().is_err());
    // Garbage size.
    let mut d = ChunkDecoder::new();
    assert!(d.feed(b"zz\r\n", &mut |_| {}).is_err());
}

#[test]
fn etags_and_checksums() {
    let mut h = Hashes::new(true);
    h.update(b"hello world");
    let d = h.finish();
    assert_eq!(d.etag(), "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    assert_eq!(d.checksum(Algo::Crc32).as_deref(), Some("DUoRhQ=="));
    assert_eq!(d.checksum(Algo::Crc32c).as_deref(), Some("yZRlqg=="));
    assert_eq!(
        d.checksum(Algo::Sha1).as_deref(),
        Some("Kq5sNclPz7QV2+lfQIuc6R7oRu0=")
    );
    assert_eq!(
        d.checksum(Algo::Sha256).as_deref(),
        Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=")
    );
    // Multipart: MD5 of the concatenated binary MD5s, then -N.
    let m1 = content::etag_md5("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"").unwrap();
    let e = multipart_etag(&[m1, m1]);
    assert!(e.starts_with('"') && e.ends_with("-2\""));
    use md5::Digest;
    let mut joined = m1.to_vec();
    joined.extend_from_slice(&m1);
    let want = hex::encode(md5::Md5::digest(&joined));
    assert_eq!(e, format!("\"{want}-2\""));
}

#[test]
fn ranges() {
    assert_eq!(parse_range(Some("bytes=0-4"), 10).unwrap(), Some((0, 4)));
    assert_eq!(parse_range(Some("bytes=5-"), 10).unwrap(), Some((5, 9)));
    assert_eq!(parse_range(Some("bytes=-3"), 10).unwrap(), Some((7, 9)));
    assert_eq!(parse_range(Some("bytes=-30"), 10).unwrap(), Some((0, 9)));
    assert_eq!(parse_range(Some("bytes=8-100"), 10).unwrap(), Some((8, 9)));
    assert_eq!(parse_range(Some("bytes=4-2"), 10).unwrap(), None);
    assert_eq!(parse_range(Some("items=0-1"), 10).unwrap(), None);
    assert_eq!(parse_range(None, 10).unwrap(), None);
    let e = parse_range(Some("bytes=10-"), 10).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (416, "InvalidRange"));
    assert!(parse_range(Some("bytes=0-1"), 0).is_err());
}

#[test]
fn listing_with_delimiter() {
    let keys = ["a/1", "a/2", "b", "c/d/e", "c/x", "d"];
    let sorted: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.to_string(), k.to_string()))
        .collect();
    let (items, more) = group(&sorted, "", Some("/"), 10);
    assert!(!more);
    assert_eq!(
        items,
        vec![
            Item::Prefix("a/".into()),
            Item::Entry("b".into()),
            Item::Prefix("c/".into()),
            Item::Entry("d".into()),
        ]
    );
    let (items, more) = group(&sorted, "c/", Some("/"), 10);
    assert!(!more);
    assert_eq!(
        items,
        vec![Item::Prefix("c/d/".into()), Item::Entry("c/x".into())]
    );
    let (items, more) = group(&sorted, "", Some("/"), 2);
    assert!(more);
    assert_eq!(items.len(), 2);
    assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/".into()));
    assert_eq!(common_prefix("a/b", "a/", None), None);
    assert_eq!(url_encode("a b/ü+"), "a%20b/%C3%BC%2B");
    assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
    assert!(etag_matches("*", "\"abc\""));
    assert!(!etag_matches("\"x\"", "\"abc\""));
    assert!(valid_bucket_name("my-bucket.1"));
    assert!(!valid_bucket_name("My_Bucket"));
    assert!(!valid_bucket_name("ab"));
    assert!(!valid_bucket_name("192.168.1.1"));
}

#[test]
fn lifecycle_rules() {
    let day = 86_400.0;
    let rec = ObjectRec {
        key: "logs/a.txt".into(),
        size: 10,
        last_modified: 10.0 * day + 3600.0,
        tags: vec![("t".into(), "1".into())],
        ..ObjectRec::default()
    };
    let exp = json!({"Days": 1});
    // Day 10 01:00 + 1 day rounds up to midnight of day 12.
    assert!(!current_due(&exp, &rec, 11.9 * day));
    assert!(current_due(&exp, &rec, 12.0 * day));
    assert!(current_due(&json!({"Date": 5.0 * day}), &rec, 6.0 * day));
    assert!(!current_due(&json!({"Date": 7.0 * day}), &rec, 6.0 * day));
    let mut nc = rec.clone();
    nc.noncurrent_since = Some(20.0 * day);
    assert!(!noncurrent_due(
        &json!({"NoncurrentDays": 2}),
        &nc,
        21.0 * day
    ));
    assert!(noncurrent_due(
        &json!({"NoncurrentDays": 2}),
        &nc,
        22.0 * day
    ));
    let f = RuleFilter::of(
        &json!({"Filter": {"And": {"Prefix": "logs/", "Tags": [{"Key": "t", "Value": "1"}]}}}),
    );
    assert!(f.matches(&rec));
    let f = RuleFilter::of(&json!({"Filter": {"Tag": {"Key": "t", "Value": "2"}}}));
    assert!(!f.matches(&rec));
    let f = RuleFilter::of(&json!({"Filter": {"Prefix": "other/"}}));
    assert!(!f.matches(&rec));
    let f = RuleFilter::of(&json!({"Prefix": "logs/"}));
    assert!(f.matches(&rec));
    assert!(validate_rule(&json!({"Status": "Enabled", "Expiration": {"Days": 1}})).is_ok());
    assert!(validate_rule(&json!({"Status": "On", "Expiration": {"Days": 1}})).is_err());
    assert!(validate_rule(&json!({"Status": "Enabled"})).is_err());
    assert!(validate_rule(&json!({"Status": "Enabled", "Expiration": {"Days": 0}})).is_err());
}

#[test]
fn notification_matching() {
    assert!(event_matches("s3:ObjectCreated:*", "ObjectCreated:Put"));
    assert!(event_matches("s3:ObjectCreated:Put", "ObjectCreated:Put"));
    assert!(!event_matches("s3:ObjectCreated:Copy", "ObjectCreated:Put"));
    assert!(event_matches(
        "s3:ObjectRemoved:*",
        "ObjectRemoved:DeleteMarkerCreated"
    ));
    let f = json!({"Key": {"FilterRules": [{"Name": "prefix", "Value": "img/"}, {"Name": "Suffix", "Value": ".jpg"}]}});
    assert!(filter_matches(Some(&f), "img/a.jpg"));
    assert!(!filter_matches(Some(&f), "img/a.png"));
    assert!(!filter_matches(Some(&f), "doc/a.jpg"));
    assert!(filter_matches(None, "anything"));
}

// ------------------------------------------------------------------------------------------
// Service-level tests over an in-memory store.

struct Fixture {
    s3: S3,
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("fc-s3-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let s3 = S3::new(store, dir.clone(), Bus::new()).unwrap();
    Fixture { s3, dir }
}

fn ctx(op: &str) -> RequestContext {
    RequestContext::for_account("000000000000", "us-east-1", "s3", op)
}

async fn call(s3: &S3, op: &str, input: Value) -> Result<Value, ApiError> {
    s3.call(&ctx(op), input).await
}

async fn put(s3: &S3, bucket: &str, key: &str, data: &[u8]) -> Value {
    s3.call_stream(
        &ctx("PutObject"),
        json!({"Bucket": bucket, "Key": key}),
        BodyIn::from_bytes(Bytes::copy_from_slice(data)),
    )
    .await
    .unwrap()
    .value
}

async fn get(s3: &S3, input: Value) -> Result<(Value, Vec<u8>), ApiError> {
    let r = s3
        .call_stream(&ctx("GetObject"), input, BodyIn::empty())
        .await?;
    let bytes = match r.body {
        Some(BodyOut::File { path, offset, len }) => {
            let all = std::fs::read(path).unwrap();
            all[offset as usize..(offset + len) as usize].to_vec()
        }
        Some(BodyOut::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    };
    Ok((r.value, bytes))
}

fn content_files(f: &Fixture) -> usize {
    f.s3.content.all_hashes().len()
}

#[tokio::test]
async fn put_get_list_delete() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "bk1"}))
        .await
        .unwrap();
    let e = call(s3, "CreateBucket", json!({"Bucket": "bk1"})).await;
    assert!(e.is_ok(), "us-east-1 re-create answers 200");
    let other = RequestContext::for_account("111111111111", "us-east-1", "s3", "CreateBucket");
    let e = s3.call(&other, json!({"Bucket": "bk1"})).await.unwrap_err();
    assert_eq!(e.code, "BucketAlreadyExists");
    let out = put(s3, "bk1", "dir/a.txt", b"hello world").await;
    assert_eq!(out["ETag"], "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    put(s3, "bk1", "dir/sub/b.txt", b"x").await;
    put(s3, "bk1", "top.txt", b"hello world").await;
    assert_eq!(content_files(&f), 0, "small objects are stored inline");
    let (v, body) = get(
        s3,
        json!({"Bucket": "bk1", "Key": "dir/a.txt", "Range": "bytes=0-4"}),
    )
    .await
    .unwrap();
    assert_eq!(body, b"hello");
    assert_eq!(v["ContentRange"], "bytes 0-4/11");
    assert_eq!(v["__status"], 206);
    let l = call(
        s3,
        "ListObjectsV2",
        json!({"Bucket": "bk1", "Delimiter": "/"}),
    )
    .await
    .unwrap();
    assert_eq!(l["KeyCount"], 2);
    assert_eq!(l["CommonPrefixes"][0]["Prefix"], "dir/");
    assert_eq!(l["Contents"][0]["Key"], "top.txt");
    let l = call(s3, "ListObjectsV2", json!({"Bucket": "bk1", "MaxKeys": 1}))
        .await
        .unwrap();
    assert_eq!(l["IsTruncated"], true);
    let token = l["NextContinuationToken"].as_str().unwrap().to_string();
    let l2 = call(
        s3,
        "ListObjectsV2",
        json!({"Bucket": "bk1", "MaxKeys": 5, "ContinuationToken": token}),
    )
    .await
    .unwrap();
    assert_eq!(l2["KeyCount"], 2);
    let e = call(s3, "DeleteBucket", json!({"Bucket": "bk1"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "BucketNotEmpty");
    for k in ["dir/a.txt", "dir/sub/b.txt", "top.txt"] {
        call(s3, "DeleteObject", json!({"Bucket": "bk1", "Key": k}))
            .await
            .unwrap();
    }
    assert_eq!(content_files(&f), 0, "unreferenced content is deleted");
    call(s3, "DeleteBucket", json!({"Bucket": "bk1"}))
        .await
        .unwrap();
    let e = call(s3, "HeadBucket", json!({"Bucket": "bk1"}))
        .await
        .unwrap_err();
    assert_eq!(e.status, 404);
}

#[tokio::test]
async fn versioning_and_delete_markers() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "vbk"}))
        .await
        .unwrap();
    call(
        s3,
        "PutBucketVersioning",
        json!({"Bucket": "vbk", "VersioningConfiguration": {"Status": "Enabled"}}),
    )
    .await
    .unwrap();
    let v1 = put(s3, "vbk", "k", b"one").await["VersionId"]
        .as_str()
        .unwrap()
        .to_string();
    let v2 = put(s3, "vbk", "k", b"two").await["VersionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(v1, v2);
    let (_, body) = get(s3, json!({"Bucket": "vbk", "Key": "k", "VersionId": v1}))
        .await
        .unwrap();
    assert_eq!(body, b"one");
    let d = call(s3, "DeleteObject", json!({"Bucket": "vbk", "Key": "k"}))
        .await
        .unwrap();
    assert_eq!(d["DeleteMarker"], true);
    let e = get(s3, json!({"Bucket": "vbk", "Key": "k"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "NoSuchKey");
    let l = call(s3, "ListObjectVersions", json!({"Bucket": "vbk"}))
        .await
        .unwrap();
    assert_eq!(l["Versions"].as_array().unwrap().len(), 2);
    assert_eq!(l["DeleteMarkers"][0]["IsLatest"], true);
    // Deleting the marker brings v2 back.
    let marker = d["VersionId"].as_str().unwrap();
    call(
        s3,
        "DeleteObject",
        json!({"Bucket": "vbk", "Key": "k", "VersionId": marker}),
    )
    .await
    .unwrap();
    let (_, body) = get(s3, json!({"Bucket": "vbk", "Key": "k"})).await.unwrap();
    assert_eq!(body, b"two");
    // Paging through versions one at a time.
    let l = call(
        s3,
        "ListObjectVersions",
        json!({"Bucket": "vbk", "MaxKeys": 1}),
    )
    .await
    .unwrap();
    assert_eq!(l["IsTruncated"], true);
    let l2 = call(
        s3,
        "ListObjectVersions",
        json!({"Bucket": "vbk", "MaxKeys": 1, "KeyMarker": l["NextKeyMarker"], "VersionIdMarker": l["NextVersionIdMarker"]}),
    )
    .await
    .unwrap();
    assert_eq!(l2["Versions"][0]["VersionId"], v1.as_str());
}

#[tokio::test]
async fn chunked_put_with_trailer_checksum() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "cbk"}))
        .await
        .unwrap();
    let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    let out = s3
        .call_stream(
            &ctx("PutObject"),
            json!({"Bucket": "cbk", "Key": "k", "ContentEncoding": "aws-chunked", "ChecksumAlgorithm": "CRC32"}),
            BodyIn::from_bytes(Bytes::from_static(body)),
        )
        .await
        .unwrap();
    assert_eq!(out.value["ChecksumCRC32"], "DUoRhQ==");
    let (v, data) = get(
        s3,
        json!({"Bucket": "cbk", "Key": "k", "ChecksumMode": "ENABLED"}),
    )
    .await
    .unwrap();
    assert_eq!(data, b"hello world");
    assert_eq!(v["ChecksumCRC32"], "DUoRhQ==");
    assert!(v.get("ContentEncoding").is_none());
    let bad = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
    let e = s3
        .call_stream(
            &ctx("PutObject"),
            json!({"Bucket": "cbk", "Key": "k2", "ContentEncoding": "aws-chunked"}),
            BodyIn::from_bytes(Bytes::from_static(bad)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "BadDigest");
    assert_eq!(content_files(&f), 0, "small objects are stored inline");
}

/// Objects above the inline limit live in content files, which copies share and which go
/// away with their last reference; inline objects copy, range and overwrite like files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_in_files_small_ones_inline() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "lbk"}))
        .await
        .unwrap();
    let big: Vec<u8> = (0..super::content::INLINE_MAX + 1)
        .map(|i| (i % 251) as u8)
        .collect();
    let small = &big[..super::content::INLINE_MAX];
    let out = put(s3, "lbk", "big", &big).await;
    assert_eq!(
        out["ETag"],
        format!(
            "\"{}\"",
            hex::encode(<md5::Md5 as md5::Digest>::digest(&big))
        )
    );
    assert_eq!(content_files(&f), 1);
    put(s3, "lbk", "small", small).await;
    assert_eq!(content_files(&f), 1, "the small object is inline");
    let (_, body) = get(s3, json!({"Bucket": "lbk", "Key": "big"}))
        .await
        .unwrap();
    assert_eq!(body, big);
    let (v, body) = get(
        s3,
        json!({"Bucket": "lbk", "Key": "small", "Range": "bytes=10-19"}),
    )
    .await
    .unwrap();
    assert_eq!(body, &small[10..20]);
    assert_eq!(v["ContentLength"], 10);
    // Copies share the file of a large object and carry an inline one along.
    for (src, dst) in [("big", "big2"), ("small", "small2")] {
        call(
            s3,
            "CopyObject",
            json!({"Bucket": "lbk", "Key": dst, "CopySource": format!("lbk/{src}")}),
        )
        .await
        .unwrap();
    }
    assert_eq!(content_files(&f), 1, "a copy shares the content file");
    let (_, body) = get(s3, json!({"Bucket": "lbk", "Key": "small2"}))
        .await
        .unwrap();
    assert_eq!(body, small);
    // Overwriting a large object with a small one keeps the copy's file, then frees it.
    put(s3, "lbk", "big", b"tiny").await;
    assert_eq!(content_files(&f), 1);
    let (_, body) = get(s3, json!({"Bucket": "lbk", "Key": "big2"}))
        .await
        .unwrap();
    assert_eq!(body, big);
    call(s3, "DeleteObject", json!({"Bucket": "lbk", "Key": "big2"}))
        .await
        .unwrap();
    assert_eq!(content_files(&f), 0, "the last reference frees the file");
    // Concurrent small puts of different keys (grouped commits) all land, on disk.
    let dir = f.dir.join("shared");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("state")).unwrap());
    let shared = Arc::new(S3::new(store, dir, Bus::new()).unwrap());
    call(&shared, "CreateBucket", json!({"Bucket": "lbk"}))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s3 = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            put(
                &s3,
                "lbk",
                &format!("many/{i}"),
                format!("body {i}").as_bytes(),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..32 {
        let (_, body) = get(
            &shared,
            json!({"Bucket": "lbk", "Key": format!("many/{i}")}),
        )
        .await
        .unwrap();
        assert_eq!(body, format!("body {i}").as_bytes());
    }
}

#[tokio::test]
async fn multipart_and_expiry() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "mbk"}))
        .await
        .unwrap();
    let up = call(
        s3,
        "CreateMultipartUpload",
        json!({"Bucket": "mbk", "Key": "big"}),
    )
    .await
    .unwrap();
    let id = up["UploadId"].as_str().unwrap().to_string();
    let part1 = vec![b'a'; MIN_PART];
    let mut etags = Vec::new();
    for (pn, data) in [(1, part1.clone()), (2, b"tail".to_vec())] {
        let r = s3
            .call_stream(
                &ctx("UploadPart"),
                json!({"Bucket": "mbk", "Key": "big", "UploadId": id, "PartNumber": pn}),
                BodyIn::from_bytes(Bytes::from(data)),
            )
            .await
            .unwrap();
        etags.push(r.value["ETag"].as_str().unwrap().to_string());
    }
    let e = call(
        s3,
        "CompleteMultipartUpload",
        json!({"Bucket": "mbk", "Key": "big", "UploadId": id, "MultipartUpload": {"Parts": [
            {"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "InvalidPartOrder");
    let done = call(
        s3,
        "CompleteMultipartUpload",
        json!({"Bucket": "mbk", "Key": "big", "UploadId": id, "MultipartUpload": {"Parts": [
            {"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}]}}),
    )
    .await
    .unwrap();
    assert!(done["ETag"].as_str().unwrap().ends_with("-2\""));
    let (_, body) = get(s3, json!({"Bucket": "mbk", "Key": "big"}))
        .await
        .unwrap();
    assert_eq!(body.len(), MIN_PART + 4);
    assert_eq!(content_files(&f), 1, "parts are released after completion");
    // Lifecycle with an injected clock.
    call(
        s3,
        "PutBucketLifecycleConfiguration",
        json!({"Bucket": "mbk", "LifecycleConfiguration": {"Rules": [
            {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}}),
    )
    .await
    .unwrap();
    let now = fc_protocol::value::now_secs();
    assert_eq!(s3.expire(now).unwrap(), 0);
    assert_eq!(s3.expire(now + 2.0 * 86_400.0).unwrap(), 1);
    assert!(get(s3, json!({"Bucket": "mbk", "Key": "big"}))
        .await
        .is_err());
    assert_eq!(content_files(&f), 0);
}

const MIN_PART: usize = 5 * 1024 * 1024;

#[tokio::test]
async fn crash_leftovers_are_swept() {
    let dir = std::env::temp_dir().join(format!("fc-s3-sweep-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("s3/tmp")).unwrap();
    std::fs::write(dir.join("s3/tmp/partial"), b"half").unwrap();
    std::fs::create_dir_all(dir.join("s3/objects/ab")).unwrap();
    std::fs::write(dir.join("s3/objects/ab/abcdef"), b"orphan").unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let _s3 = S3::new(store, dir.clone(), Bus::new()).unwrap();
    assert!(!dir.join("s3/tmp/partial").exists());
    assert!(!dir.join("s3/objects/ab/abcdef").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn signed_payload_hash_is_checked() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "shb"}))
        .await
        .unwrap();
    let good = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let input = json!({"Bucket": "shb", "Key": "k", "__ContentSha256": good});
    s3.call_stream(
        &ctx("PutObject"),
        input,
        BodyIn::from_bytes(Bytes::from_static(b"hello world")),
    )
    .await
    .unwrap();
    let input = json!({"Bucket": "shb", "Key": "k", "__ContentSha256": "0".repeat(64)});
    let e = s3
        .call_stream(
            &ctx("PutObject"),
            input,
            BodyIn::from_bytes(Bytes::from_static(b"hello world")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "XAmzContentSHA256Mismatch");
    // UNSIGNED-PAYLOAD is not a hash.
    let input = json!({"Bucket": "shb", "Key": "k", "__ContentSha256": "UNSIGNED-PAYLOAD"});
    s3.call_stream(
        &ctx("PutObject"),
        input,
        BodyIn::from_bytes(Bytes::from_static(b"x")),
    )
    .await
    .unwrap();
}

#[derive(Default)]
struct Sink {
    sent: std::sync::Mutex<Vec<(String, String)>>,
}

impl crate::bus::QueueSink for Sink {
    fn queue_exists(&self, arn: &str) -> bool {
        arn.ends_with(":q1")
    }
    fn send_message(&self, arn: &str, body: &str) -> Result<(), ApiError> {
        self.sent
            .lock()
            .unwrap()
            .push((arn.to_string(), body.to_string()));
        Ok(())
    }
}

impl crate::bus::FunctionSink for Sink {
    fn function_exists(&self, arn: &str) -> bool {
        arn.ends_with(":function:f1")
    }
    fn allows(&self, _arn: &str, principal: &str, source: &str) -> bool {
        principal == "s3.amazonaws.com" && source == "arn:aws:s3:::nbk"
    }
    fn invoke_async(&self, arn: &str, payload: &str) -> Result<(), ApiError> {
        self.sent
            .lock()
            .unwrap()
            .push((arn.to_string(), payload.to_string()));
        Ok(())
    }
}

#[tokio::test]
async fn notifications_to_queues_and_functions() {
    let dir = std::env::temp_dir().join(format!("fc-s3-n-{}", uuid::Uuid::new_v4().simple()));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let bus = Bus::new();
    let sink = Arc::new(Sink::default());
    bus.set_queues(sink.clone());
    bus.set_functions(sink.clone());
    let s3 = S3::new(store, dir.clone(), bus).unwrap();
    call(&s3, "CreateBucket", json!({"Bucket": "nbk"}))
        .await
        .unwrap();
    let q = "arn:aws:sqs:us-east-1:000000000000:q1";
    let fun = "arn:aws:lambda:us-east-1:000000000000:function:f1";
    let bad = call(
        &s3,
        "PutBucketNotificationConfiguration",
        json!({"Bucket": "nbk", "NotificationConfiguration": {"QueueConfigurations": [
            {"QueueArn": "arn:aws:sqs:us-east-1:000000000000:nope", "Events": ["s3:ObjectCreated:*"]}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code, "InvalidArgument");
    call(
        &s3,
        "PutBucketNotificationConfiguration",
        json!({"Bucket": "nbk", "NotificationConfiguration": {
            "QueueConfigurations": [{"Id": "qc", "QueueArn": q, "Events": ["s3:ObjectCreated:Put"]}],
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": fun, "Events": ["s3:ObjectRemoved:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".jpg"}]}}}]}}),
    )
    .await
    .unwrap();
    {
        let sent = sink.sent.lock().unwrap();
        assert_eq!(sent.len(), 1, "the test event");
        let v: Value = serde_json::from_str(&sent[0].1).unwrap();
        assert_eq!(v["Event"], "s3:TestEvent");
        assert_eq!(v["Bucket"], "nbk");
    }
    put(&s3, "nbk", "a b.jpg", b"img").await;
    call(
        &s3,
        "DeleteObject",
        json!({"Bucket": "nbk", "Key": "a b.jpg"}),
    )
    .await
    .unwrap();
    call(
        &s3,
        "DeleteObject",
        json!({"Bucket": "nbk", "Key": "other.png"}),
    )
    .await
    .unwrap();
    let sent = sink.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    let created: Value = serde_json::from_str(&sent[1].1).unwrap();
    assert_eq!(sent[1].0, q);
    let r = &created["Records"][0];
    assert_eq!(r["eventName"], "ObjectCreated:Put");
    assert_eq!(r["eventVersion"], "2.1");
    assert_eq!(r["s3"]["configurationId"], "qc");
    assert_eq!(r["s3"]["object"]["key"], "a+b.jpg");
    assert_eq!(r["s3"]["object"]["size"], 3);
    assert_eq!(r["s3"]["bucket"]["arn"], "arn:aws:s3:::nbk");
    assert_eq!(sent[2].0, fun);
    let removed: Value = serde_json::from_str(&sent[2].1).unwrap();
    assert_eq!(removed["Records"][0]["eventName"], "ObjectRemoved:Delete");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bucket_policies_when_enforced() {
    let f = fixture();
    let s3 = &f.s3;
    s3.set_enforce_policies(true);
    call(s3, "CreateBucket", json!({"Bucket": "pbk"}))
        .await
        .unwrap();
    put(s3, "pbk", "k", b"v").await;
    let outsider = |op: &str| RequestContext::for_account("222222222222", "us-east-1", "s3", op);
    let e = s3
        .call(&outsider("ListObjectsV2"), json!({"Bucket": "pbk"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "AccessDenied");
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
         "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::pbk"},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pbk/*"}]});
    call(
        s3,
        "PutBucketPolicy",
        json!({"Bucket": "pbk", "Policy": policy.to_string()}),
    )
    .await
    .unwrap();
    s3.call(&outsider("ListObjectsV2"), json!({"Bucket": "pbk"}))
        .await
        .unwrap();
    let e = get(s3, json!({"Bucket": "pbk", "Key": "k"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "AccessDenied");
    s3.set_enforce_policies(false);
    get(s3, json!({"Bucket": "pbk", "Key": "k"})).await.unwrap();
}

fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> fc_protocol::HttpRequest {
    fc_protocol::HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: Bytes::new(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn cors_preflight_and_actual_headers() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "cors"}))
        .await
        .unwrap();
    let pre = |origin: &str, method: &str, hdrs: &str| {
        let mut h = vec![
            ("Origin", origin.to_string()),
            ("Access-Control-Request-Method", method.to_string()),
        ];
        if !hdrs.is_empty() {
            h.push(("Access-Control-Request-Headers", hdrs.to_string()));
        }
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s3.cors_preflight(&http("OPTIONS", "/cors/some/key", &h))
    };
    let e = pre("http://a.example", "GET", "").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (403, "AccessForbidden"));
    assert_eq!(
        e.message,
        "CORSResponse: CORS is not enabled for this bucket."
    );
    call(
        s3,
        "PutBucketCors",
        json!({"Bucket": "cors", "CORSConfiguration": {"CORSRules": [
            {"AllowedOrigins": ["http://*.example"], "AllowedMethods": ["GET", "PUT"],
             "AllowedHeaders": ["x-amz-*", "Content-Type"], "ExposeHeaders": ["ETag"],
             "MaxAgeSeconds": 600},
            {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]}
        ]}}),
    )
    .await
    .unwrap();
    let h = pre("http://a.example", "PUT", "x-amz-meta-a, content-type").unwrap();
    assert_eq!(
        header(&h, "Access-Control-Allow-Origin"),
        Some("http://a.example")
    );
    assert_eq!(header(&h, "Access-Control-Allow-Methods"), Some("GET, PUT"));
    assert_eq!(
        header(&h, "Access-Control-Allow-Headers"),
        Some("x-amz-meta-a, content-type")
    );
    assert_eq!(header(&h, "Access-Control-Max-Age"), Some("600"));
    assert_eq!(header(&h, "Access-Control-Expose-Headers"), Some("ETag"));
    assert_eq!(header(&h, "Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(
        header(&h, "Vary"),
        Some("Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
    );
    let h = pre("http://other.site", "HEAD", "").unwrap();
    assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(header(&h, "Access-Control-Allow-Credentials"), None);
    for (origin, method, hdrs) in [
        ("http://other.site", "GET", ""),
        ("http://a.example", "DELETE", ""),
        ("http://a.example", "GET", "authorization"),
    ] {
        let e = pre(origin, method, hdrs).unwrap_err();
        assert_eq!(e.status, 403, "{origin} {method} {hdrs}");
        assert!(e
            .message
            .starts_with("CORSResponse: This CORS request is not allowed."));
    }
    assert_eq!(
        pre("http://a.example", "PATCH", "").unwrap_err().status,
        400
    );
    let e = s3
        .cors_preflight(&http(
            "OPTIONS",
            "/cors/k",
            &[("Access-Control-Request-Method", "GET")],
        ))
        .unwrap_err();
    assert_eq!(e.status, 400);
    let e = s3
        .cors_preflight(&http(
            "OPTIONS",
            "/nobucket/k",
            &[
                ("Origin", "http://a.example"),
                ("Access-Control-Request-Method", "GET"),
            ],
        ))
        .unwrap_err();
    assert_eq!(e.code, "NoSuchBucket");
    // Actual requests.
    let h = s3.cors_headers(&http("GET", "/cors/k", &[("Origin", "http://b.example")]));
    assert_eq!(
        header(&h, "Access-Control-Allow-Origin"),
        Some("http://b.example")
    );
    assert_eq!(header(&h, "Access-Control-Expose-Headers"), Some("ETag"));
    assert!(s3
        .cors_headers(&http("GET", "/cors/k", &[("Origin", "http://nope.site")]))
        .is_empty());
    assert!(s3.cors_headers(&http("GET", "/cors/k", &[])).is_empty());
    call(s3, "DeleteBucketCors", json!({"Bucket": "cors"}))
        .await
        .unwrap();
    assert!(s3
        .cors_headers(&http("GET", "/cors/k", &[("Origin", "http://b.example")]))
        .is_empty());
}

/// Buckets are cached in memory; a write through the service or a state reset behind its back
/// is seen at once.
#[tokio::test]
async fn bucket_cache_follows_writes_and_resets() {
    let f = fixture();
    let s3 = &f.s3;
    call(s3, "CreateBucket", json!({"Bucket": "cached"}))
        .await
        .unwrap();
    put(s3, "cached", "k", b"v").await;
    let v = call(s3, "GetBucketVersioning", json!({"Bucket": "cached"}))
        .await
        .unwrap();
    assert!(v.get("Status").is_none());
    call(
        s3,
        "PutBucketVersioning",
        json!({"Bucket": "cached", "VersioningConfiguration": {"Status": "Enabled"}}),
    )
    .await
    .unwrap();
    let out = put(s3, "cached", "k", b"v2").await;
    assert!(out.get("VersionId").is_some(), "{out}");
    s3.store.reset().unwrap();
    let e = call(s3, "HeadBucket", json!({"Bucket": "cached"}))
        .await
        .unwrap_err();
    assert_eq!(e.status, 404);
}

/// S3 over an on-disk store (whose commits are asynchronous) in a new temp directory.
fn on_disk(name: &str) -> (Arc<S3>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("fc-s3-{name}-{}", uuid::Uuid::new_v4().simple()));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("state")).unwrap());
    (
        Arc::new(S3::new(store, dir.clone(), Bus::new()).unwrap()),
        dir,
    )
}

/// Puts of one key from many tasks over an on-disk store (asynchronous commits), mixed with
/// deletes (which hold all metadata exclusively): every acknowledged put is a version, the
/// latest is the last one acknowledged, and content files match the versions that use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_one_key_and_deletes() {
    let (s3, dir) = on_disk("race");
    call(&s3, "CreateBucket", json!({"Bucket": "race"}))
        .await
        .unwrap();
    call(
        &s3,
        "PutBucketVersioning",
        json!({"Bucket": "race", "VersioningConfiguration": {"Status": "Enabled"}}),
    )
    .await
    .unwrap();
    const TASKS: usize = 8;
    const PUTS: usize = 12;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..PUTS {
                // Every third object is large enough for a content file.
                let size = if (t + i) % 3 == 0 {
                    INLINE_MAX + 1
                } else {
                    100
                };
                let data = vec![(t * PUTS + i) as u8; size];
                let out = put(&s3, "race", "k", &data).await;
                versions.push(out["VersionId"].as_str().unwrap().to_string());
                if i % 4 == 3 {
                    let d = call(
                        &s3,
                        "DeleteObject",
                        json!({"Bucket": "race", "Key": "other"}),
                    )
                    .await
                    .unwrap();
                    assert_eq!(d["DeleteMarker"], true);
                }
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let mut listed = Vec::new();
    let mut latest = 0;
    let mut marker: Option<(Value, Value)> = None;
    loop {
        let mut input = json!({"Bucket": "race", "Prefix": "k"});
        if let Some((k, v)) = &marker {
            input["KeyMarker"] = k.clone();
            input["VersionIdMarker"] = v.clone();
        }
        let l = call(&s3, "ListObjectVersions", input).await.unwrap();
        for v in l["Versions"].as_array().cloned().unwrap_or_default() {
            listed.push(v["VersionId"].as_str().unwrap().to_string());
            latest += usize::from(v["IsLatest"] == true);
        }
        if l["IsTruncated"] != true {
            break;
        }
        marker = Some((l["NextKeyMarker"].clone(), l["NextVersionIdMarker"].clone()));
    }
    all.sort();
    listed.sort();
    assert_eq!(listed, all, "every acknowledged put is one version");
    assert_eq!(latest, 1);
    let large = (0..TASKS)
        .flat_map(|t| (0..PUTS).map(move |i| (t + i) % 3 == 0))
        .filter(|l| *l)
        .count();
    assert_eq!(s3.content.all_hashes().len(), large);
    drop(s3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A put whose request goes away while it waits for its commit (the client disconnected)
/// keeps its key until the commit is done: puts of the key right after it still see it, so no
/// content file is left without a record or freed while one still uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_puts_keep_their_key_until_committed() {
    let (s3, dir) = on_disk("cancel");
    call(&s3, "CreateBucket", json!({"Bucket": "cxl"}))
        .await
        .unwrap();
    let big = vec![5u8; INLINE_MAX + 1];
    for i in 0..60u64 {
        // Cancelled at some point of its way (often while its commit is queued).
        let s3c = s3.clone();
        let data = big.clone();
        let _ = tokio::time::timeout(std::time::Duration::from_micros(50 + i * 10), async move {
            put(&s3c, "cxl", "k", &data).await;
        })
        .await;
        put(&s3, "cxl", "k", &big).await;
    }
    // Let queued commits of cancelled puts finish.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, body) = get(&s3, json!({"Bucket": "cxl", "Key": "k"}))
        .await
        .unwrap();
    assert_eq!(body, big);
    assert_eq!(
        s3.content.all_hashes().len(),
        1,
        "only the current version's content"
    );
    drop(s3);
    let _ = std::fs::remove_dir_all(&dir);
}
