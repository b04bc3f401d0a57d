//! Service-level tests of CloudWatch Logs: every operation through `Service::call` over an
//! in-memory SQLite store.

use super::*;
use crate::{RequestContext, Service};
use fc_store::SqliteStore;
use serde_json::json;
use std::collections::HashSet;

const ACCT: &str = "000000000000";
const REGION: &str = "us-east-1";

fn svc() -> Logs {
    Logs::new(Arc::new(SqliteStore::in_memory().unwrap()))
}

async fn call(l: &Logs, op: &str, input: Value) -> Result<Value, ApiError> {
    let ctx = RequestContext::for_account(ACCT, REGION, "logs", op);
    l.call(&ctx, input).await
}

async fn ok(l: &Logs, op: &str, input: Value) -> Value {
    call(l, op, input)
        .await
        .unwrap_or_else(|e| panic!("{op} failed: {e}"))
}

async fn err(l: &Logs, op: &str, input: Value) -> ApiError {
    match call(l, op, input).await {
        Ok(v) => panic!("{op} should fail, got {v}"),
        Err(e) => e,
    }
}

async fn group(l: &Logs, name: &str) {
    ok(l, "CreateLogGroup", json!({"logGroupName": name})).await;
}

async fn stream(l: &Logs, g: &str, s: &str) {
    ok(
        l,
        "CreateLogStream",
        json!({"logGroupName": g, "logStreamName": s}),
    )
    .await;
}

async fn put(l: &Logs, g: &str, s: &str, events: &[(i64, &str)]) -> Value {
    let evs: Vec<Value> = events
        .iter()
        .map(|(t, m)| json!({"timestamp": t, "message": m}))
        .collect();
    ok(
        l,
        "PutLogEvents",
        json!({"logGroupName": g, "logStreamName": s, "logEvents": evs}),
    )
    .await
}

fn messages(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn names(v: &Value, list: &str, member: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[member].as_str().unwrap().to_string())
        .collect()
}

// ---- groups ----

#[tokio::test]
async fn create_describe_delete_group() {
    let l = svc();
    group(&l, "/app/web").await;
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    let g = &d["logGroups"][0];
    assert_eq!(g["logGroupName"], "/app/web");
    assert_eq!(
        g["arn"],
        "arn:aws:logs:us-east-1:000000000000:log-group:/app/web:*"
    );
    assert_eq!(
        g["logGroupArn"],
        "arn:aws:logs:us-east-1:000000000000:log-group:/app/web"
    );
    assert_eq!(g["storedBytes"], 0);
    assert_eq!(g["metricFilterCount"], 0);
    assert_eq!(g["logGroupClass"], "STANDARD");
    assert!(g["creationTime"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(g.get("retentionInDays").is_none());
    assert!(d.get("nextToken").is_none());

    let e = err(&l, "CreateLogGroup", json!({"logGroupName": "/app/web"})).await;
    assert_eq!(e.code, "ResourceAlreadyExistsException");
    assert_eq!(e.message, "The specified log group already exists");
    assert_eq!(e.status, 400);

    ok(&l, "DeleteLogGroup", json!({"logGroupName": "/app/web"})).await;
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert_eq!(d["logGroups"].as_array().unwrap().len(), 0);
    let e = err(&l, "DeleteLogGroup", json!({"logGroupName": "/app/web"})).await;
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(e.message, "The specified log group does not exist.");
}

#[tokio::test]
async fn group_options_are_kept() {
    let l = svc();
    ok(
        &l,
        "CreateLogGroup",
        json!({"logGroupName": "g", "kmsKeyId": "arn:aws:kms:us-east-1:000000000000:key/k",
               "logGroupClass": "INFREQUENT_ACCESS"}),
    )
    .await;
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert_eq!(d["logGroups"][0]["logGroupClass"], "INFREQUENT_ACCESS");
    assert_eq!(
        d["logGroups"][0]["kmsKeyId"],
        "arn:aws:kms:us-east-1:000000000000:key/k"
    );
    let d = ok(
        &l,
        "DescribeLogGroups",
        json!({"logGroupClass": "STANDARD"}),
    )
    .await;
    assert_eq!(d["logGroups"].as_array().unwrap().len(), 0);
    let e = err(
        &l,
        "CreateLogGroup",
        json!({"logGroupName": "h", "logGroupClass": "GOLD"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn group_name_validation() {
    let l = svc();
    for bad in ["", "has space", "colon:x", "star*", "aws/reserved"] {
        let e = err(&l, "CreateLogGroup", json!({"logGroupName": bad})).await;
        assert_eq!(e.code, "InvalidParameterException", "{bad:?}");
    }
    let e = err(
        &l,
        "CreateLogGroup",
        json!({"logGroupName": "a".repeat(513)}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    group(&l, &"a".repeat(512)).await;
    group(&l, "ok.name-_/#1").await;
    let e = err(&l, "CreateLogGroup", json!({})).await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn describe_groups_prefix_and_pattern() {
    let l = svc();
    for n in [
        "/aws/lambda/a",
        "/aws/lambda/b",
        "/ecs/DataLogs",
        "GroupDataLogs",
        "datalogs",
    ] {
        group(&l, n).await;
    }
    let d = ok(
        &l,
        "DescribeLogGroups",
        json!({"logGroupNamePrefix": "/aws/lambda/"}),
    )
    .await;
    assert_eq!(
        names(&d, "logGroups", "logGroupName"),
        vec!["/aws/lambda/a", "/aws/lambda/b"]
    );
    let d = ok(
        &l,
        "DescribeLogGroups",
        json!({"logGroupNamePattern": "DataLogs"}),
    )
    .await;
    assert_eq!(
        names(&d, "logGroups", "logGroupName"),
        vec!["/ecs/DataLogs", "GroupDataLogs"]
    );
    let e = err(
        &l,
        "DescribeLogGroups",
        json!({"logGroupNamePattern": "x", "logGroupNamePrefix": "y"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    for limit in [0, 51] {
        let e = err(&l, "DescribeLogGroups", json!({ "limit": limit })).await;
        assert_eq!(e.code, "InvalidParameterException");
    }
    let d = ok(
        &l,
        "DescribeLogGroups",
        json!({"logGroupIdentifiers": ["datalogs",
            "arn:aws:logs:us-east-1:000000000000:log-group:GroupDataLogs:*", "missing"]}),
    )
    .await;
    assert_eq!(
        names(&d, "logGroups", "logGroupName"),
        vec!["GroupDataLogs", "datalogs"]
    );
}

#[tokio::test]
async fn describe_groups_pagination() {
    let l = svc();
    for i in 0..120 {
        group(&l, &format!("g-{i:04}")).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut inp = json!({"limit": 50});
        if let Some(t) = &token {
            inp["nextToken"] = json!(t);
        }
        let d = ok(&l, "DescribeLogGroups", inp).await;
        seen.extend(names(&d, "logGroups", "logGroupName"));
        pages += 1;
        match d.get("nextToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..120).map(|i| format!("g-{i:04}")).collect();
    assert_eq!(seen, want);

    let e = err(&l, "DescribeLogGroups", json!({"nextToken": "garbage"})).await;
    assert_eq!(e.code, "InvalidParameterException");
    let other = fc_types::page::encode("logs:ListLogGroups", "g-0001");
    let e = err(&l, "DescribeLogGroups", json!({ "nextToken": other })).await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn list_log_groups_regex() {
    let l = svc();
    for n in ["/aws/lambda/f1", "/ecs/discovery-x", "/app/web"] {
        group(&l, n).await;
    }
    let d = ok(
        &l,
        "ListLogGroups",
        json!({"logGroupNamePattern": "^/aws/lambda|discovery"}),
    )
    .await;
    assert_eq!(
        names(&d, "logGroups", "logGroupName"),
        vec!["/aws/lambda/f1", "/ecs/discovery-x"]
    );
    assert_eq!(
        d["logGroups"][0]["logGroupArn"],
        "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/f1"
    );
    let d = ok(&l, "ListLogGroups", json!({"limit": 2})).await;
    assert_eq!(d["logGroups"].as_array().unwrap().len(), 2);
    let d2 = ok(
        &l,
        "ListLogGroups",
        json!({"limit": 2, "nextToken": d["nextToken"]}),
    )
    .await;
    assert_eq!(
        names(&d2, "logGroups", "logGroupName"),
        vec!["/ecs/discovery-x"]
    );
    assert!(d2.get("nextToken").is_none());
}

#[tokio::test]
async fn retention_policy() {
    let l = svc();
    group(&l, "g").await;
    ok(
        &l,
        "PutRetentionPolicy",
        json!({"logGroupName": "g", "retentionInDays": 14}),
    )
    .await;
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert_eq!(d["logGroups"][0]["retentionInDays"], 14);
    for bad in [0, 2, 4000, -1] {
        let e = err(
            &l,
            "PutRetentionPolicy",
            json!({"logGroupName": "g", "retentionInDays": bad}),
        )
        .await;
        assert_eq!(e.code, "InvalidParameterException", "{bad}");
    }
    for good in groups::RETENTION_DAYS {
        ok(
            &l,
            "PutRetentionPolicy",
            json!({"logGroupName": "g", "retentionInDays": good}),
        )
        .await;
    }
    ok(&l, "DeleteRetentionPolicy", json!({"logGroupName": "g"})).await;
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert!(d["logGroups"][0].get("retentionInDays").is_none());
    let e = err(
        &l,
        "PutRetentionPolicy",
        json!({"logGroupName": "nope", "retentionInDays": 1}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
    let e = err(&l, "DeleteRetentionPolicy", json!({"logGroupName": "nope"})).await;
    assert_eq!(e.code, "ResourceNotFoundException");
}

#[tokio::test]
async fn deletion_protection() {
    let l = svc();
    group(&l, "keep").await;
    ok(
        &l,
        "PutLogGroupDeletionProtection",
        json!({"logGroupIdentifier": "keep", "deletionProtectionEnabled": true}),
    )
    .await;
    let e = err(&l, "DeleteLogGroup", json!({"logGroupName": "keep"})).await;
    assert_eq!(e.code, "ValidationException");
    ok(
        &l,
        "PutLogGroupDeletionProtection",
        json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:000000000000:log-group:keep",
               "deletionProtectionEnabled": false}),
    )
    .await;
    ok(&l, "DeleteLogGroup", json!({"logGroupName": "keep"})).await;
}

#[tokio::test]
async fn tags_by_name() {
    let l = svc();
    ok(
        &l,
        "CreateLogGroup",
        json!({"logGroupName": "g", "tags": {"team": "a"}}),
    )
    .await;
    ok(
        &l,
        "TagLogGroup",
        json!({"logGroupName": "g", "tags": {"env": "prod", "team": "b"}}),
    )
    .await;
    let t = ok(&l, "ListTagsLogGroup", json!({"logGroupName": "g"})).await;
    assert_eq!(t, json!({"tags": {"env": "prod", "team": "b"}}));
    ok(
        &l,
        "UntagLogGroup",
        json!({"logGroupName": "g", "tags": ["team", "absent"]}),
    )
    .await;
    let t = ok(&l, "ListTagsLogGroup", json!({"logGroupName": "g"})).await;
    assert_eq!(t, json!({"tags": {"env": "prod"}}));
    let e = err(&l, "ListTagsLogGroup", json!({"logGroupName": "nope"})).await;
    assert_eq!(e.code, "ResourceNotFoundException");
    let e = err(
        &l,
        "TagLogGroup",
        json!({"logGroupName": "g", "tags": {"aws:x": "y"}}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    let e = err(
        &l,
        "TagLogGroup",
        json!({"logGroupName": "g", "tags": {"bad!key": "y"}}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn tags_by_arn() {
    let l = svc();
    group(&l, "/svc/api").await;
    let arn = "arn:aws:logs:us-east-1:000000000000:log-group:/svc/api";
    ok(
        &l,
        "TagResource",
        json!({"resourceArn": arn, "tags": {"k1": "v1", "k2": "v2"}}),
    )
    .await;
    let t = ok(
        &l,
        "ListTagsForResource",
        json!({ "resourceArn": format!("{arn}:*") }),
    )
    .await;
    assert_eq!(t, json!({"tags": {"k1": "v1", "k2": "v2"}}));
    ok(
        &l,
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["k1"]}),
    )
    .await;
    let t = ok(&l, "ListTagsForResource", json!({ "resourceArn": arn })).await;
    assert_eq!(t, json!({"tags": {"k2": "v2"}}));

    let many: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("t{i}"), json!("v"))).collect();
    let e = err(&l, "TagResource", json!({"resourceArn": arn, "tags": many})).await;
    assert_eq!(e.code, "TooManyTagsException");

    let e = err(
        &l,
        "ListTagsForResource",
        json!({"resourceArn": "not-an-arn"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    let e = err(
        &l,
        "ListTagsForResource",
        json!({"resourceArn": "arn:aws:logs:us-east-1:111111111111:log-group:/svc/api"}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
    let e = err(
        &l,
        "ListTagsForResource",
        json!({"resourceArn": "arn:aws:logs:us-east-1:000000000000:destination:d"}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
}

// ---- streams ----

#[tokio::test]
async fn streams_lifecycle() {
    let l = svc();
    let e = err(
        &l,
        "CreateLogStream",
        json!({"logGroupName": "g", "logStreamName": "s"}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
    group(&l, "g").await;
    stream(&l, "g", "s1").await;
    stream(&l, "g", "s2").await;
    stream(&l, "g", "other").await;
    let e = err(
        &l,
        "CreateLogStream",
        json!({"logGroupName": "g", "logStreamName": "s1"}),
    )
    .await;
    assert_eq!(e.code, "ResourceAlreadyExistsException");
    for bad in ["a:b", "a*b", ""] {
        let e = err(
            &l,
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": bad}),
        )
        .await;
        assert_eq!(e.code, "InvalidParameterException", "{bad:?}");
    }
    let d = ok(
        &l,
        "DescribeLogStreams",
        json!({"logGroupName": "g", "logStreamNamePrefix": "s"}),
    )
    .await;
    assert_eq!(names(&d, "logStreams", "logStreamName"), vec!["s1", "s2"]);
    let s = &d["logStreams"][0];
    assert_eq!(
        s["arn"],
        "arn:aws:logs:us-east-1:000000000000:log-group:g:log-stream:s1"
    );
    assert!(s["creationTime"].as_i64().is_some());
    assert!(s["uploadSequenceToken"].as_str().unwrap().len() == 56);
    assert!(s.get("firstEventTimestamp").is_none());

    ok(
        &l,
        "DeleteLogStream",
        json!({"logGroupName": "g", "logStreamName": "s1"}),
    )
    .await;
    let e = err(
        &l,
        "DeleteLogStream",
        json!({"logGroupName": "g", "logStreamName": "s1"}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(e.message, "The specified log stream does not exist.");
    let d = ok(
        &l,
        "DescribeLogStreams",
        json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:000000000000:log-group:g:*"}),
    )
    .await;
    assert_eq!(
        names(&d, "logStreams", "logStreamName"),
        vec!["other", "s2"]
    );
    let e = err(&l, "DescribeLogStreams", json!({"logGroupName": "nope"})).await;
    assert_eq!(e.code, "ResourceNotFoundException");
    let e = err(
        &l,
        "DescribeLogStreams",
        json!({"logGroupName": "g", "logGroupIdentifier": "g"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn stream_pagination_over_1000_streams() {
    let l = svc();
    group(&l, "big").await;
    for i in 0..1000 {
        stream(&l, "big", &format!("stream-{i:05}")).await;
    }
    let want: Vec<String> = (0..1000).map(|i| format!("stream-{i:05}")).collect();
    for descending in [false, true] {
        let mut seen = Vec::new();
        let mut token: Option<Value> = None;
        loop {
            let mut inp = json!({"logGroupName": "big", "descending": descending});
            if let Some(t) = &token {
                inp["nextToken"] = t.clone();
            }
            let d = ok(&l, "DescribeLogStreams", inp).await;
            let page = names(&d, "logStreams", "logStreamName");
            assert!(page.len() <= 50);
            seen.extend(page);
            match d.get("nextToken") {
                Some(t) => token = Some(t.clone()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 1000, "no duplicates");
        let mut expect = want.clone();
        if descending {
            expect.reverse();
        }
        assert_eq!(seen, expect);
    }
    // A token of one ordering is refused by another.
    let d = ok(&l, "DescribeLogStreams", json!({"logGroupName": "big"})).await;
    let e = err(
        &l,
        "DescribeLogStreams",
        json!({"logGroupName": "big", "descending": true, "nextToken": d["nextToken"]}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn streams_ordered_by_last_event_time() {
    let l = svc();
    group(&l, "g").await;
    let now = now_ms();
    for (s, t) in [("a", 3), ("b", 1), ("c", 2)] {
        stream(&l, "g", s).await;
        put(&l, "g", s, &[(now - 10_000 + t * 1000, "x")]).await;
    }
    stream(&l, "g", "empty").await;
    let d = ok(
        &l,
        "DescribeLogStreams",
        json!({"logGroupName": "g", "orderBy": "LastEventTime", "descending": true}),
    )
    .await;
    assert_eq!(
        names(&d, "logStreams", "logStreamName"),
        vec!["a", "c", "b", "empty"]
    );
    // Pages of one.
    let mut seen = Vec::new();
    let mut token: Option<Value> = None;
    loop {
        let mut inp = json!({"logGroupName": "g", "orderBy": "LastEventTime", "limit": 1});
        if let Some(t) = &token {
            inp["nextToken"] = t.clone();
        }
        let d = ok(&l, "DescribeLogStreams", inp).await;
        seen.extend(names(&d, "logStreams", "logStreamName"));
        match d.get("nextToken") {
            Some(t) => token = Some(t.clone()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["empty", "b", "c", "a"]);
    // Newer events move a stream.
    put(&l, "g", "b", &[(now, "y")]).await;
    let d = ok(
        &l,
        "DescribeLogStreams",
        json!({"logGroupName": "g", "orderBy": "LastEventTime", "descending": true, "limit": 1}),
    )
    .await;
    assert_eq!(names(&d, "logStreams", "logStreamName"), vec!["b"]);
    let e = err(
        &l,
        "DescribeLogStreams",
        json!({"logGroupName": "g", "orderBy": "LastEventTime", "logStreamNamePrefix": "a"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    let e = err(
        &l,
        "DescribeLogStreams",
        json!({"logGroupName": "g", "orderBy": "Random"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

// ---- PutLogEvents ----

#[tokio::test]
async fn put_log_events_validation() {
    let l = svc();
    group(&l, "g").await;
    stream(&l, "g", "s").await;
    let now = now_ms();
    let put_raw =
        |events: Value| json!({"logGroupName": "g", "logStreamName": "s", "logEvents": events});
    let e = err(
        &l,
        "PutLogEvents",
        put_raw(
            json!([{"timestamp": now, "message": "b"}, {"timestamp": now - 1, "message": "a"}]),
        ),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    assert_eq!(
        e.message,
        "Log events in a single PutLogEvents request must be in chronological order."
    );
    let e = err(
        &l,
        "PutLogEvents",
        put_raw(json!([{"timestamp": now - DAY_MS - 1, "message": "a"}, {"timestamp": now, "message": "b"}])),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    assert!(e.message.contains("24 hours"));
    let e = err(&l, "PutLogEvents", put_raw(json!([]))).await;
    assert_eq!(e.code, "InvalidParameterException");
    let e = err(
        &l,
        "PutLogEvents",
        put_raw(json!([{"timestamp": now, "message": ""}])),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    // 1,048,576 bytes counting 26 per event: 5 events of 209,690 bytes are 1,048,580.
    let big = "x".repeat(209_690);
    let evs: Vec<Value> = (0..5)
        .map(|i| json!({"timestamp": now + i, "message": big}))
        .collect();
    let e = err(&l, "PutLogEvents", put_raw(json!(evs))).await;
    assert_eq!(e.code, "InvalidParameterException");
    assert!(e.message.contains("1048576"));
    let evs: Vec<Value> = (0..5)
        .map(|i| json!({"timestamp": now + i, "message": "x".repeat(209_689)}))
        .collect();
    ok(&l, "PutLogEvents", put_raw(json!(evs))).await;
    let evs: Vec<Value> = (0..10_001)
        .map(|_| json!({"timestamp": now, "message": "m"}))
        .collect();
    let e = err(&l, "PutLogEvents", put_raw(json!(evs))).await;
    assert_eq!(e.code, "InvalidParameterException");

    let e = err(
        &l,
        "PutLogEvents",
        json!({"logGroupName": "g", "logStreamName": "nope",
               "logEvents": [{"timestamp": now, "message": "a"}]}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(e.message, "The specified log stream does not exist.");
    let e = err(
        &l,
        "PutLogEvents",
        json!({"logGroupName": "nope", "logStreamName": "s",
               "logEvents": [{"timestamp": now, "message": "a"}]}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(e.message, "The specified log group does not exist.");
}

#[tokio::test]
async fn put_log_events_rejects_old_and_new_events() {
    let l = svc();
    group(&l, "g").await;
    stream(&l, "g", "s").await;
    let now = now_ms();
    // Span must stay within 24h, so test the two ends separately.
    let r = put(
        &l,
        "g",
        "s",
        &[(now - 15 * DAY_MS, "old1"), (now - 15 * DAY_MS + 5, "old2")],
    )
    .await;
    assert_eq!(r["rejectedLogEventsInfo"]["tooOldLogEventEndIndex"], 1);
    let r = put(
        &l,
        "g",
        "s",
        &[(now, "ok"), (now + 3 * 3_600_000, "future")],
    )
    .await;
    assert_eq!(r["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"], 1);
    assert!(r["rejectedLogEventsInfo"]
        .get("tooOldLogEventEndIndex")
        .is_none());

    ok(
        &l,
        "PutRetentionPolicy",
        json!({"logGroupName": "g", "retentionInDays": 1}),
    )
    .await;
    let r = put(
        &l,
        "g",
        "s",
        &[(now - DAY_MS - 5000, "expired"), (now - 6000, "fresh")],
    )
    .await;
    assert!(r.get("rejectedLogEventsInfo").is_some(), "{r}");
    assert_eq!(r["rejectedLogEventsInfo"]["expiredLogEventEndIndex"], 0);
    let got = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "startFromHead": true}),
    )
    .await;
    assert_eq!(messages(&got), vec!["fresh", "ok"]);
}

#[tokio::test]
async fn sequence_tokens_are_ignored() {
    let l = svc();
    group(&l, "g").await;
    stream(&l, "g", "s").await;
    let now = now_ms();
    let r1 = put(&l, "g", "s", &[(now, "a")]).await;
    let t1 = r1["nextSequenceToken"].as_str().unwrap().to_string();
    assert_eq!(t1.len(), 56);
    let r2 = ok(
        &l,
        "PutLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "sequenceToken": "bogus",
               "logEvents": [{"timestamp": now, "message": "b"}]}),
    )
    .await;
    assert_ne!(r2["nextSequenceToken"], json!(t1));
    // Replaying an old token is accepted as well.
    let r3 = ok(
        &l,
        "PutLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "sequenceToken": t1,
               "logEvents": [{"timestamp": now, "message": "c"}]}),
    )
    .await;
    let got = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s"}),
    )
    .await;
    // Same timestamp: arrival order.
    assert_eq!(messages(&got), vec!["a", "b", "c"]);
    let d = ok(&l, "DescribeLogStreams", json!({"logGroupName": "g"})).await;
    assert_eq!(
        d["logStreams"][0]["uploadSequenceToken"],
        r3["nextSequenceToken"]
    );
}

#[tokio::test]
async fn stream_and_group_metadata() {
    let l = svc();
    group(&l, "g").await;
    stream(&l, "g", "s").await;
    let now = now_ms();
    put(
        &l,
        "g",
        "s",
        &[(now - 5000, "hello"), (now - 1000, "world!")],
    )
    .await;
    let d = ok(&l, "DescribeLogStreams", json!({"logGroupName": "g"})).await;
    let s = &d["logStreams"][0];
    assert_eq!(s["firstEventTimestamp"], now - 5000);
    assert_eq!(s["lastEventTimestamp"], now - 1000);
    assert!(s["lastIngestionTime"].as_i64().unwrap() >= now);
    assert_eq!(s["storedBytes"], 11);
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert_eq!(d["logGroups"][0]["storedBytes"], 11);
    ok(
        &l,
        "DeleteLogStream",
        json!({"logGroupName": "g", "logStreamName": "s"}),
    )
    .await;
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert_eq!(d["logGroups"][0]["storedBytes"], 0);
}

// ---- GetLogEvents ----

async fn setup_25(l: &Logs) -> i64 {
    group(l, "g").await;
    stream(l, "g", "s").await;
    let base = now_ms() - 100_000;
    let evs: Vec<(i64, String)> = (0..25)
        .map(|i| (base + i * 10, format!("e{i:02}")))
        .collect();
    let refs: Vec<(i64, &str)> = evs.iter().map(|(t, m)| (*t, m.as_str())).collect();
    put(l, "g", "s", &refs).await;
    base
}

fn range(a: usize, b: usize) -> Vec<String> {
    (a..b).map(|i| format!("e{i:02}")).collect()
}

#[tokio::test]
async fn get_log_events_backward_from_tail() {
    let l = svc();
    setup_25(&l).await;
    let base = json!({"logGroupName": "g", "logStreamName": "s", "limit": 10});
    let p1 = ok(&l, "GetLogEvents", base.clone()).await;
    assert_eq!(messages(&p1), range(15, 25));
    let fwd = p1["nextForwardToken"].as_str().unwrap();
    let back = p1["nextBackwardToken"].as_str().unwrap();
    assert!(fwd.starts_with("f/") && fwd.len() == 58, "{fwd}");
    assert!(back.starts_with("b/") && back.len() == 58, "{back}");
    assert!(p1["events"][0]["ingestionTime"].as_i64().is_some());

    let mut inp = base.clone();
    inp["nextToken"] = json!(back);
    let p2 = ok(&l, "GetLogEvents", inp).await;
    assert_eq!(messages(&p2), range(5, 15));
    let mut inp = base.clone();
    inp["nextToken"] = p2["nextBackwardToken"].clone();
    let p3 = ok(&l, "GetLogEvents", inp).await;
    assert_eq!(messages(&p3), range(0, 5));
    let mut inp = base.clone();
    inp["nextToken"] = p3["nextBackwardToken"].clone();
    let p4 = ok(&l, "GetLogEvents", inp).await;
    assert!(messages(&p4).is_empty());
    // The end: the same backward token comes back.
    assert_eq!(p4["nextBackwardToken"], p3["nextBackwardToken"]);
    let mut inp = base.clone();
    inp["nextToken"] = p4["nextBackwardToken"].clone();
    let p5 = ok(&l, "GetLogEvents", inp).await;
    assert_eq!(p5["nextBackwardToken"], p3["nextBackwardToken"]);
    // Going forward from the start again yields the first events.
    let mut inp = base.clone();
    inp["nextToken"] = p4["nextForwardToken"].clone();
    let p6 = ok(&l, "GetLogEvents", inp).await;
    assert_eq!(messages(&p6), range(0, 10));

    // Forward from the tail page: nothing new, same token.
    let mut inp = base.clone();
    inp["nextToken"] = p1["nextForwardToken"].clone();
    let f = ok(&l, "GetLogEvents", inp).await;
    assert!(messages(&f).is_empty());
    assert_eq!(f["nextForwardToken"], p1["nextForwardToken"]);
}

#[tokio::test]
async fn get_log_events_forward_from_head_and_follow() {
    let l = svc();
    setup_25(&l).await;
    let base =
        json!({"logGroupName": "g", "logStreamName": "s", "limit": 10, "startFromHead": true});
    let mut all = Vec::new();
    let mut token: Option<Value> = None;
    let mut calls = 0;
    loop {
        let mut inp = base.clone();
        if let Some(t) = &token {
            inp["nextToken"] = t.clone();
        }
        let p = ok(&l, "GetLogEvents", inp).await;
        calls += 1;
        all.extend(messages(&p));
        let next = p["nextForwardToken"].clone();
        // boto3-style loop: stop when the token repeats.
        if token.as_ref() == Some(&next) {
            assert!(messages(&p).is_empty());
            break;
        }
        token = Some(next);
        assert!(calls < 10);
    }
    assert_eq!(all, range(0, 25));
    assert_eq!(calls, 4);
    // New events arrive; the repeated token now yields them.
    put(&l, "g", "s", &[(now_ms(), "later")]).await;
    let mut inp = base.clone();
    inp["nextToken"] = token.clone().unwrap();
    let p = ok(&l, "GetLogEvents", inp).await;
    assert_eq!(messages(&p), vec!["later"]);
    assert_ne!(p["nextForwardToken"], token.unwrap());
}

#[tokio::test]
async fn get_log_events_time_window_and_errors() {
    let l = svc();
    let base = setup_25(&l).await;
    // startTime inclusive, endTime exclusive.
    let p = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "startTime": base + 50,
               "endTime": base + 100, "startFromHead": true}),
    )
    .await;
    assert_eq!(messages(&p), range(5, 10));
    let p = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "startTime": base + 50,
               "endTime": base + 100}),
    )
    .await;
    assert_eq!(messages(&p), range(5, 10));
    // Default limit returns everything.
    let p = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:000000000000:log-group:g",
               "logStreamName": "s"}),
    )
    .await;
    assert_eq!(messages(&p).len(), 25);
    // An empty window still answers tokens.
    let p = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "startTime": base + 10_000}),
    )
    .await;
    assert!(messages(&p).is_empty());
    assert!(p["nextForwardToken"].as_str().unwrap().starts_with("f/"));

    for bad in [
        "x",
        "f/123",
        "q/00000000000000000000000000000000000000000000000000000000",
    ] {
        let e = err(
            &l,
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s", "nextToken": bad}),
        )
        .await;
        assert_eq!(e.code, "InvalidParameterException", "{bad}");
    }
    let e = err(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "nope"}),
    )
    .await;
    assert_eq!(e.code, "ResourceNotFoundException");
    let e = err(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "limit": 10_001}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn get_log_events_one_megabyte_pages() {
    let l = svc();
    group(&l, "g").await;
    stream(&l, "g", "s").await;
    let now = now_ms();
    let big = "y".repeat(200_000);
    let evs: Vec<(i64, &str)> = (0..6).map(|i| (now - 100 + i, big.as_str())).collect();
    put(&l, "g", "s", &evs[..3]).await;
    put(&l, "g", "s", &evs[3..]).await;
    let p = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "startFromHead": true}),
    )
    .await;
    assert_eq!(p["events"].as_array().unwrap().len(), 5);
    let p2 = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "g", "logStreamName": "s", "nextToken": p["nextForwardToken"]}),
    )
    .await;
    assert_eq!(p2["events"].as_array().unwrap().len(), 1);
}

// ---- FilterLogEvents ----

async fn setup_filter(l: &Logs) -> i64 {
    group(l, "app").await;
    for s in ["web-1", "web-2", "worker"] {
        stream(l, "app", s).await;
    }
    let t = now_ms() - 60_000;
    put(
        l,
        "app",
        "web-1",
        &[(t, "INFO start"), (t + 30, "ERROR boom")],
    )
    .await;
    put(
        l,
        "app",
        "web-2",
        &[
            (t + 10, "ERROR disk full"),
            (t + 40, r#"{"level":"ERROR","latency":250}"#),
        ],
    )
    .await;
    put(
        l,
        "app",
        "worker",
        &[
            (t + 20, r#"{"level":"INFO","latency":50}"#),
            (t + 50, "WARN slow"),
        ],
    )
    .await;
    t
}

#[tokio::test]
async fn filter_log_events_interleaves_and_matches() {
    let l = svc();
    let t = setup_filter(&l).await;
    let all = ok(&l, "FilterLogEvents", json!({"logGroupName": "app"})).await;
    let ts: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(ts, (0..6).map(|i| t + i * 10).collect::<Vec<_>>());
    assert!(all.get("nextToken").is_none());
    let first = &all["events"][0];
    assert_eq!(first["logStreamName"], "web-1");
    assert!(first["ingestionTime"].as_i64().is_some());
    let ids: HashSet<String> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 6);
    assert!(ids
        .iter()
        .all(|i| i.len() == 56 && i.bytes().all(|b| b.is_ascii_digit())));
    assert_eq!(all["searchedLogStreams"].as_array().unwrap().len(), 3);
    assert_eq!(all["searchedLogStreams"][0]["searchedCompletely"], true);

    let errs = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "filterPattern": "ERROR"}),
    )
    .await;
    assert_eq!(
        messages(&errs),
        vec![
            "ERROR disk full",
            "ERROR boom",
            r#"{"level":"ERROR","latency":250}"#
        ]
    );
    let j = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "filterPattern": "{ $.latency > 100 }"}),
    )
    .await;
    assert_eq!(messages(&j), vec![r#"{"level":"ERROR","latency":250}"#]);
    let or = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "filterPattern": "?WARN ?boom"}),
    )
    .await;
    assert_eq!(messages(&or), vec!["ERROR boom", "WARN slow"]);
    let phrase = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "filterPattern": "\"disk full\""}),
    )
    .await;
    assert_eq!(messages(&phrase), vec!["ERROR disk full"]);
    let re = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "filterPattern": "%^(WARN|INFO) s%"}),
    )
    .await;
    assert_eq!(messages(&re), vec!["INFO start", "WARN slow"]);
    let delim = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "filterPattern": "[level = ERROR, ...]"}),
    )
    .await;
    assert_eq!(messages(&delim), vec!["ERROR disk full", "ERROR boom"]);
}

#[tokio::test]
async fn filter_log_events_stream_selection_and_window() {
    let l = svc();
    let t = setup_filter(&l).await;
    let p = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "logStreamNamePrefix": "web"}),
    )
    .await;
    assert_eq!(messages(&p).len(), 4);
    assert_eq!(p["searchedLogStreams"].as_array().unwrap().len(), 2);
    let p = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupIdentifier": "app", "logStreamNames": ["worker", "missing"]}),
    )
    .await;
    assert_eq!(
        messages(&p),
        vec![r#"{"level":"INFO","latency":50}"#, "WARN slow"]
    );
    let p = ok(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "startTime": t + 10, "endTime": t + 40}),
    )
    .await;
    assert_eq!(messages(&p).len(), 3);
    let e = err(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "logStreamNames": ["a"], "logStreamNamePrefix": "w"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    let e = err(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "filterPattern": "{ $.x = "}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    assert_eq!(e.message, "Invalid filter pattern");
    let e = err(&l, "FilterLogEvents", json!({"logGroupName": "none"})).await;
    assert_eq!(e.code, "ResourceNotFoundException");
    let e = err(
        &l,
        "FilterLogEvents",
        json!({"logGroupName": "app", "nextToken": "bogus"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn filter_log_events_pagination() {
    let l = svc();
    group(&l, "p").await;
    let base = now_ms() - 600_000;
    let mut want = Vec::new();
    for (si, s) in ["a", "b", "c"].iter().enumerate() {
        stream(&l, "p", s).await;
        let evs: Vec<(i64, String)> = (0..90)
            .map(|i| {
                // Colliding timestamps across streams exercise the tie-break.
                let ts = base + (i / 2) * 7 + si as i64;
                (
                    ts,
                    format!("{s}-{i:03} {}", if i % 3 == 0 { "hit" } else { "miss" }),
                )
            })
            .collect();
        let refs: Vec<(i64, &str)> = evs.iter().map(|(t, m)| (*t, m.as_str())).collect();
        put(&l, "p", s, &refs).await;
        want.extend(evs);
    }
    want.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    for pattern in ["", "hit"] {
        let mut got: Vec<String> = Vec::new();
        let mut token: Option<Value> = None;
        let mut pages = 0;
        loop {
            let mut inp = json!({"logGroupName": "p", "limit": 40, "filterPattern": pattern});
            if let Some(t) = &token {
                inp["nextToken"] = t.clone();
            }
            let r = ok(&l, "FilterLogEvents", inp).await;
            assert!(r["events"].as_array().unwrap().len() <= 40);
            got.extend(messages(&r));
            pages += 1;
            match r.get("nextToken") {
                Some(t) => token = Some(t.clone()),
                None => break,
            }
            assert!(pages < 50);
        }
        let expect: Vec<String> = want
            .iter()
            .filter(|(_, m)| pattern.is_empty() || m.contains(pattern))
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(got, expect, "pattern {pattern:?}");
    }
}

#[tokio::test]
async fn test_metric_filter() {
    let l = svc();
    let r = ok(
        &l,
        "TestMetricFilter",
        json!({"filterPattern": "[ip, user, ..., status = 404, size]",
               "logEventMessages": ["1.2.3.4 bob GET 404 12", "1.2.3.4 bob GET 200 12"]}),
    )
    .await;
    assert_eq!(r["matches"].as_array().unwrap().len(), 1);
    assert_eq!(r["matches"][0]["eventNumber"], 1);
    assert_eq!(r["matches"][0]["extractedValues"]["$ip"], "1.2.3.4");
    assert_eq!(r["matches"][0]["extractedValues"]["$size"], "12");
    let e = err(
        &l,
        "TestMetricFilter",
        json!({"filterPattern": "[a,", "logEventMessages": ["x"]}),
    )
    .await;
    assert_eq!(e.message, "Invalid filter pattern");
}

// ---- retention, deletion ----

#[tokio::test]
async fn retention_expires_events() {
    let l = svc();
    group(&l, "r").await;
    stream(&l, "r", "s").await;
    let now = now_ms();
    put(&l, "r", "s", &[(now - 2000, "a"), (now - 1000, "bb")]).await;
    ok(
        &l,
        "PutRetentionPolicy",
        json!({"logGroupName": "r", "retentionInDays": 1}),
    )
    .await;
    assert_eq!(l.expire(now).unwrap(), 0);
    // A day and a bit later only the newer event is left...
    assert_eq!(l.expire(now + DAY_MS - 1500).unwrap(), 1);
    let d = ok(&l, "DescribeLogStreams", json!({"logGroupName": "r"})).await;
    assert_eq!(d["logStreams"][0]["firstEventTimestamp"], now - 1000);
    assert_eq!(d["logStreams"][0]["storedBytes"], 2);
    // ...and two days later nothing.
    assert_eq!(l.expire(now + 2 * DAY_MS).unwrap(), 1);
    let got = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "r", "logStreamName": "s"}),
    )
    .await;
    assert!(messages(&got).is_empty());
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert_eq!(d["logGroups"][0]["storedBytes"], 0);
    let d = ok(&l, "DescribeLogStreams", json!({"logGroupName": "r"})).await;
    assert!(d["logStreams"][0].get("firstEventTimestamp").is_none());
    assert_eq!(d["logStreams"][0]["lastEventTimestamp"], now - 1000);
}

#[tokio::test]
async fn retention_hides_and_expires_across_scopes() {
    let l = svc();
    let now = now_ms();
    let old = now - 3 * DAY_MS;
    for (acct, region) in [(ACCT, REGION), ("111111111111", "eu-west-1")] {
        l.append(
            acct,
            region,
            "/rt/app",
            "c1",
            &[
                (old, "ancient".to_string()),
                (now - 10, "recent".to_string()),
            ],
        )
        .unwrap();
    }
    // No retention: everything is visible.
    assert_eq!(l.tail(ACCT, REGION, "/rt/app", "c1", 10).len(), 2);
    ok(
        &l,
        "PutRetentionPolicy",
        json!({"logGroupName": "/rt/app", "retentionInDays": 1}),
    )
    .await;
    // Reads hide what is past retention before expiry runs.
    let got = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "/rt/app", "logStreamName": "c1"}),
    )
    .await;
    assert_eq!(messages(&got), vec!["recent"]);
    let got = ok(&l, "FilterLogEvents", json!({"logGroupName": "/rt/app"})).await;
    assert_eq!(messages(&got), vec!["recent"]);
    assert_eq!(
        l.tail(ACCT, REGION, "/rt/app", "c1", 10),
        vec![(now - 10, "recent".to_string())]
    );
    // Only the scope with retention loses its event.
    assert_eq!(l.expire(now).unwrap(), 1);
    assert_eq!(
        l.tail("111111111111", "eu-west-1", "/rt/app", "c1", 10)
            .len(),
        2
    );
}

#[tokio::test]
async fn deleting_a_group_deletes_its_streams_and_events() {
    let l = svc();
    group(&l, "d").await;
    group(&l, "d2").await;
    stream(&l, "d", "s").await;
    stream(&l, "d2", "s").await;
    let now = now_ms();
    put(&l, "d", "s", &[(now, "gone")]).await;
    put(&l, "d2", "s", &[(now, "kept")]).await;
    ok(&l, "DeleteLogGroup", json!({"logGroupName": "d"})).await;
    let e = err(&l, "DescribeLogStreams", json!({"logGroupName": "d"})).await;
    assert_eq!(e.code, "ResourceNotFoundException");
    group(&l, "d").await;
    let d = ok(&l, "DescribeLogStreams", json!({"logGroupName": "d"})).await;
    assert!(d["logStreams"].as_array().unwrap().is_empty());
    stream(&l, "d", "s").await;
    let got = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "d", "logStreamName": "s"}),
    )
    .await;
    assert!(messages(&got).is_empty());
    assert_eq!(
        l.tail(ACCT, REGION, "d2", "s", 5),
        vec![(now, "kept".to_string())]
    );
}

// ---- internal API ----

#[tokio::test]
async fn append_creates_group_and_stream_and_tail_reads() {
    let l = svc();
    let now = now_ms();
    l.append(
        ACCT,
        REGION,
        "/ferrocloud/containers",
        "web/abc123",
        &[
            (now - 5, "second".to_string()),
            (now - 10, "first".to_string()),
            (now - 1, "".to_string()),
        ],
    )
    .unwrap();
    let d = ok(&l, "DescribeLogGroups", json!({})).await;
    assert_eq!(
        names(&d, "logGroups", "logGroupName"),
        vec!["/ferrocloud/containers"]
    );
    assert_eq!(
        l.tail(ACCT, REGION, "/ferrocloud/containers", "web/abc123", 10),
        vec![
            (now - 10, "first".to_string()),
            (now - 5, "second".to_string()),
            (now - 1, "".to_string())
        ]
    );
    assert_eq!(
        l.tail(ACCT, REGION, "/ferrocloud/containers", "web/abc123", 2)
            .len(),
        2
    );
    l.append(
        ACCT,
        REGION,
        "/ferrocloud/containers",
        "web/abc123",
        &[(now, "third".to_string())],
    )
    .unwrap();
    let t = l.tail(ACCT, REGION, "/ferrocloud/containers", "web/abc123", 1);
    assert_eq!(t, vec![(now, "third".to_string())]);
    assert!(l.tail(ACCT, REGION, "nope", "x", 5).is_empty());
    assert!(l.append(ACCT, REGION, "bad name", "s", &[]).is_err());
    assert!(l.append(ACCT, REGION, "g", "bad:stream", &[]).is_err());
}

#[tokio::test]
async fn append_splits_large_batches() {
    let l = svc();
    let now = now_ms();
    let events: Vec<(i64, String)> = (0..12_345)
        .map(|i| (now - 20_000 + i, format!("line {i}")))
        .collect();
    l.append(ACCT, REGION, "big", "s", &events).unwrap();
    let t = l.tail(ACCT, REGION, "big", "s", 20_000);
    assert_eq!(t.len(), 12_345);
    assert_eq!(t[12_344].1, "line 12344");
    let got = ok(
        &l,
        "GetLogEvents",
        json!({"logGroupName": "big", "logStreamName": "s", "limit": 3}),
    )
    .await;
    assert_eq!(
        messages(&got),
        vec!["line 12342", "line 12343", "line 12344"]
    );
}

#[tokio::test]
async fn unimplemented_operations() {
    let l = svc();
    assert_eq!(l.name(), "logs");
    for op in ["StartQuery", "PutMetricFilter", "CreateExportTask"] {
        let e = err(&l, op, json!({})).await;
        assert_eq!(e.status, 501);
        assert_eq!(e.code, "NotImplemented");
    }
}
