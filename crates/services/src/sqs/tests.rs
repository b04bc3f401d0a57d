//! Unit tests of the SQS service: attribute MD5s, FIFO rules, redrive, receipt handles, URLs,
//! retention and rebuilding the index from the store.

use super::attributes::{md5_hex, md5_of_attributes, valid_chars, AttrValue};
use super::messages::{prepare_for_test, selected_for_test};
use super::records::{MessageRecord, MessageState, QueueRecord};
use super::state::{Msg, QueueState, ReceiveRules};
use super::*;
use fc_store::SqliteStore;
use serde_json::json;
use std::collections::BTreeMap;

fn ctx(op: &str) -> RequestContext {
    RequestContext::for_account("000000000000", "us-east-1", "sqs", op)
}

async fn call(sqs: &Sqs, op: &str, input: Value) -> Result<Value, ApiError> {
    sqs.call(&ctx(op), input).await
}

fn service() -> (Arc<dyn Store>, Arc<Sqs>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
    (store.clone(), Sqs::new(store))
}

// ---- MD5s ----

#[test]
fn md5_of_body_matches_aws_example() {
    // The SendMessage example of the SQS API reference.
    assert_eq!(
        md5_hex(b"This is a test message"),
        "fafb00f5732ab283681e124bf8747ed1"
    );
}

#[test]
fn md5_of_attributes_uses_the_documented_encoding() {
    let v1 = AttrValue::Text("my_attribute_value_1".into());
    let v2 = AttrValue::Text("my_attribute_value_2".into());
    // Order of the input does not matter: names are sorted.
    let got = md5_of_attributes([
        ("my_attribute_name_2", "String", &v2),
        ("my_attribute_name_1", "String", &v1),
    ]);
    assert_eq!(got.as_deref(), Some("c48838208d2b4e14e3ca0093a8443f09"));
    let bin = AttrValue::Bytes(vec![0, 1, 2]);
    let num = AttrValue::Text("1.5".into());
    let custom = AttrValue::Text("ü".into());
    let got = md5_of_attributes([
        ("b", "Binary", &bin),
        ("a", "Number", &num),
        ("c", "String.custom", &custom),
    ]);
    assert_eq!(got.as_deref(), Some("944da3970e01bd1056bffd1572c69170"));
    assert_eq!(md5_of_attributes([]), None);
    assert_eq!(
        attributes::md5_of_trace("Root=1-5759e988-bd862e3fe1be46a994272793").as_deref(),
        Some("62a56dd927315f2b2e12832b84617ea5")
    );
}

#[test]
fn md5_of_model_shaped_attributes() {
    let mut map = BTreeMap::new();
    map.insert(
        "b".to_string(),
        json!({"DataType": "Binary", "BinaryValue": "AAEC"}),
    );
    map.insert(
        "a".to_string(),
        json!({"DataType": "Number", "StringValue": "1.5"}),
    );
    map.insert(
        "c".to_string(),
        json!({"DataType": "String.custom", "StringValue": "ü"}),
    );
    assert_eq!(
        attributes::md5_of_value_map(&map).as_deref(),
        Some("944da3970e01bd1056bffd1572c69170")
    );
}

#[test]
fn message_characters() {
    assert!(valid_chars("plain\ttext\r\n with ✓ and 😀"));
    assert!(!valid_chars("nul \u{0}"));
    assert!(!valid_chars("bell \u{7}"));
    assert!(!valid_chars("\u{FFFE}"));
}

#[test]
fn attribute_validation() {
    let ok = json!({"MessageBody": "x", "MessageAttributes": {
        "n": {"DataType": "Number", "StringValue": "-1.5e3"},
        "s": {"DataType": "String.x", "StringValue": "v"}}});
    let (_, md5, size) = prepare_for_test(false, false, &ok).expect("valid");
    assert!(md5.is_some());
    assert_eq!(
        size,
        1 + "n".len() + "Number".len() + 6 + "s".len() + "String.x".len() + 1
    );
    for bad in [
        json!({"AWS.x": {"DataType": "String", "StringValue": "v"}}),
        json!({"a..b": {"DataType": "String", "StringValue": "v"}}),
        json!({".a": {"DataType": "String", "StringValue": "v"}}),
        json!({"a": {"DataType": "Text", "StringValue": "v"}}),
        json!({"a": {"DataType": "String", "StringValue": ""}}),
        json!({"a": {"DataType": "Number", "StringValue": "x1"}}),
        json!({"a": {"DataType": "Binary"}}),
        json!({"a": {"StringValue": "v"}}),
    ] {
        let e = prepare_for_test(
            false,
            false,
            &json!({"MessageBody": "x", "MessageAttributes": bad}),
        )
        .expect_err("invalid attribute");
        assert_eq!(e.code, "InvalidParameterValue", "{bad}");
    }
    let e = prepare_for_test(false, false, &json!({"MessageBody": "x\u{1}"})).expect_err("chars");
    assert_eq!(e.code, "InvalidMessageContents");
    let e = prepare_for_test(false, false, &json!({"MessageBody": ""})).expect_err("empty");
    assert_eq!(e.code, "MissingParameter");
}

#[test]
fn fifo_send_rules() {
    // Content-based deduplication: SHA-256 of the body.
    let (dedup, _, _) = prepare_for_test(
        true,
        true,
        &json!({"MessageBody": "abc", "MessageGroupId": "g"}),
    )
    .expect("valid");
    assert_eq!(
        dedup.as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    let e = prepare_for_test(
        true,
        false,
        &json!({"MessageBody": "abc", "MessageGroupId": "g"}),
    )
    .expect_err("no dedup id");
    assert_eq!(e.code, "InvalidParameterValue");
    let e = prepare_for_test(true, true, &json!({"MessageBody": "abc"})).expect_err("no group");
    assert_eq!(e.code, "MissingParameter");
    let e = prepare_for_test(
        true,
        true,
        &json!({"MessageBody": "abc", "MessageGroupId": "g", "DelaySeconds": 1}),
    )
    .expect_err("per-message delay");
    assert_eq!(e.code, "InvalidParameterValue");
    let e = prepare_for_test(
        false,
        false,
        &json!({"MessageBody": "abc", "MessageDeduplicationId": "d"}),
    )
    .expect_err("dedup on standard");
    assert_eq!(e.code, "InvalidParameterValue");
}

#[test]
fn message_attribute_name_selection() {
    assert!(selected_for_test(&["All"], "x"));
    assert!(selected_for_test(&[".*"], "x"));
    assert!(selected_for_test(&["a.*"], "a.b"));
    assert!(!selected_for_test(&["a.*"], "ab"));
    assert!(!selected_for_test(&["a.*"], "b.a"));
    assert!(selected_for_test(&["x", "y"], "y"));
    assert!(!selected_for_test(&[], "y"));
}

// ---- the index: FIFO rules and redrive ----

fn queue_rec(fifo: bool) -> QueueRecord {
    let mut attrs = BTreeMap::new();
    if fifo {
        attrs.insert("FifoQueue".to_string(), "true".to_string());
    }
    QueueRecord {
        v: 1,
        name: "q".into(),
        attrs,
        tags: BTreeMap::new(),
        created: 0,
        modified: 0,
    }
}

fn msg(seq: u64, group: Option<&str>, sent_ms: i64) -> Msg {
    Msg {
        rec: Arc::new(MessageRecord {
            v: 1,
            id: format!("id-{seq}"),
            seq,
            body: format!("b{seq}"),
            md5_body: String::new(),
            attrs: BTreeMap::new(),
            md5_attrs: None,
            trace: None,
            md5_sys: None,
            sent_ms,
            sender: "me".into(),
            group: group.map(str::to_string),
            dedup: None,
            dlq_source: None,
        }),
        st: MessageState {
            v: 1,
            visible_at_ms: sent_ms,
            ..MessageState::default()
        },
    }
}

fn rules(max: usize, vis_ms: i64, fifo: bool, max_receives: Option<u32>) -> ReceiveRules {
    ReceiveRules {
        max,
        visibility_ms: vis_ms,
        fifo,
        max_receives,
        retention_ms: 1_000_000,
    }
}

fn bodies(taken: &[Msg]) -> Vec<String> {
    taken.iter().map(|m| m.rec.body.clone()).collect()
}

#[test]
fn fifo_groups_block_while_in_flight() {
    let mut st = QueueState::new(queue_rec(true));
    st.insert(msg(1, Some("a"), 0), 0);
    st.insert(msg(2, Some("b"), 0), 0);
    st.insert(msg(3, Some("a"), 0), 0);
    st.insert(msg(4, Some("b"), 0), 0);
    let r = rules(1, 1000, true, None);
    let (t1, _) = st.receive(10, &r, || "n".into());
    assert_eq!(bodies(&t1), ["b1"]);
    assert!(st.group_blocked("a"));
    // Group a is blocked: the next receive gets b's first message, then nothing.
    let (t2, _) = st.receive(10, &r, || "n".into());
    assert_eq!(bodies(&t2), ["b2"]);
    let (t3, _) = st.receive(10, &r, || "n".into());
    assert!(t3.is_empty());
    // Deleting a's message unblocks a, in order.
    st.remove(1);
    assert!(!st.group_blocked("a"));
    let (t4, _) = st.receive(10, &rules(10, 1000, true, None), || "n".into());
    assert_eq!(bodies(&t4), ["b3"]);
    // Visibility expiry returns b2 (and b3) again; b2 still comes before b4.
    let (t5, _) = st.receive(2000, &rules(10, 1000, true, None), || "n".into());
    assert_eq!(bodies(&t5), ["b2", "b3", "b4"]);
    assert_eq!(t5[0].st.receives, 2);
}

#[test]
fn fifo_takes_several_of_one_group_in_order() {
    let mut st = QueueState::new(queue_rec(true));
    for seq in 1..=5 {
        st.insert(msg(seq, Some("g"), 0), 0);
    }
    let (t, _) = st.receive(1, &rules(3, 1000, true, None), || "n".into());
    assert_eq!(bodies(&t), ["b1", "b2", "b3"]);
    let (t, _) = st.receive(1, &rules(3, 1000, true, None), || "n".into());
    assert!(t.is_empty());
}

#[test]
fn standard_queue_ignores_groups() {
    let mut st = QueueState::new(queue_rec(false));
    st.insert(msg(1, Some("g"), 0), 0);
    st.insert(msg(2, Some("g"), 0), 0);
    let (t, _) = st.receive(1, &rules(1, 1000, false, None), || "n".into());
    assert_eq!(bodies(&t), ["b1"]);
    let (t, _) = st.receive(1, &rules(1, 1000, false, None), || "n".into());
    assert_eq!(bodies(&t), ["b2"]);
}

#[test]
fn redrive_after_max_receive_count() {
    let mut st = QueueState::new(queue_rec(false));
    st.insert(msg(1, None, 0), 0);
    let r = rules(10, 0, false, Some(2));
    for n in 1..=2 {
        let (t, dead) = st.receive(n, &r, || "n".into());
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].st.receives, u32::try_from(n).expect("small"));
        assert!(dead.is_empty());
    }
    let (t, dead) = st.receive(10, &r, || "n".into());
    assert!(t.is_empty());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].rec.body, "b1");
    assert_eq!(st.len(), 0);
}

#[test]
fn handles_and_visibility() {
    let mut st = QueueState::new(queue_rec(false));
    st.insert(msg(1, None, 0), 0);
    let (t, _) = st.receive(0, &rules(1, 1000, false, None), || "first".into());
    assert_eq!(t.len(), 1);
    assert!(st.check_handle(1, "first", 500).is_ok());
    assert_eq!(
        st.check_handle(1, "other", 500).err(),
        Some(state::HandleFault::Stale)
    );
    assert_eq!(
        st.check_handle(1, "first", 1000).err(),
        Some(state::HandleFault::NotInflight)
    );
    assert_eq!(
        st.check_handle(2, "first", 500).err(),
        Some(state::HandleFault::Gone)
    );
    // Change visibility: stays invisible until the new time.
    st.change_visibility(1, 5000).expect("in flight");
    let (t, _) = st.receive(2000, &rules(1, 1000, false, None), || "x".into());
    assert!(t.is_empty());
    assert_eq!(st.counts(2000), (0, 1, 0));
    assert_eq!(st.next_wake_ms(), Some(5000));
    let (t, _) = st.receive(5000, &rules(1, 1000, false, None), || "x".into());
    assert_eq!(t.len(), 1);
    assert!(st.get(1).is_some());
}

#[test]
fn delayed_messages_count_as_delayed() {
    let mut st = QueueState::new(queue_rec(false));
    let mut m = msg(1, None, 0);
    m.st.visible_at_ms = 3000;
    st.insert(m, 0);
    assert_eq!(st.counts(0), (0, 0, 1));
    assert_eq!(st.counts(3000), (1, 0, 0));
}

#[test]
fn sequence_numbers_increase() {
    let mut st = QueueState::new(queue_rec(true));
    let a = st.next_seq(100);
    let b = st.next_seq(50);
    let c = st.next_seq(1000);
    assert!(a < b && b < c);
    assert_eq!(c, 1000);
}

// ---- URLs, ARNs, handles ----

#[test]
fn queue_urls_with_any_host() {
    let c = ctx("SendMessage");
    let want = (
        "123456789012".to_string(),
        "us-east-1".to_string(),
        "q1".to_string(),
    );
    assert_eq!(
        parse_queue_url(&c, "http://localhost:4566/123456789012/q1").expect("url"),
        want
    );
    assert_eq!(
        parse_queue_url(&c, "https://example.com/123456789012/q1/").expect("url"),
        want
    );
    assert_eq!(parse_queue_url(&c, "/123456789012/q1").expect("path"), want);
    assert_eq!(
        parse_queue_url(&c, "https://sqs.eu-west-2.amazonaws.com/123456789012/q1")
            .expect("url")
            .1,
        "eu-west-2"
    );
    assert_eq!(
        parse_queue_url(&c, "https://ap-south-1.queue.amazonaws.com/123456789012/q1")
            .expect("url")
            .1,
        "ap-south-1"
    );
    assert_eq!(parse_queue_url(&c, "q1").expect("name").0, "000000000000");
    assert_eq!(
        parse_queue_url(&c, "http://localhost:4566/")
            .expect_err("no path")
            .code,
        "InvalidAddress"
    );
    assert_eq!(
        parse_queue_arn("arn:aws:sqs:us-east-1:123456789012:q1"),
        Some(want.1.clone()).map(|r| (r, want.0.clone(), want.2.clone()))
    );
    assert_eq!(parse_queue_arn("arn:aws:sns:us-east-1:1:q"), None);
}

#[test]
fn receipt_handles_round_trip() {
    let h = Handle {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        queue: "q.fifo".into(),
        seq: 42,
        nonce: "abc".into(),
    };
    assert_eq!(Handle::decode(&h.encode()), Some(h));
    assert_eq!(Handle::decode("garbage!"), None);
    assert_eq!(Handle::decode(""), None);
}

// ---- the service over a store ----

#[tokio::test]
async fn dedup_retention_and_rebuild_from_store() {
    let (store, sqs) = service();
    let url = call(
        &sqs,
        "CreateQueue",
        json!({"QueueName": "f.fifo", "Attributes": {"FifoQueue": "true", "VisibilityTimeout": "600"}}),
    )
    .await
    .expect("create")["QueueUrl"]
        .as_str()
        .expect("url")
        .to_string();
    let send = |body: &str, dedup: &str| json!({"QueueUrl": url, "MessageBody": body, "MessageGroupId": "g", "MessageDeduplicationId": dedup});
    let a = call(&sqs, "SendMessage", send("one", "d1"))
        .await
        .expect("send");
    let b = call(&sqs, "SendMessage", send("one again", "d1"))
        .await
        .expect("dup");
    assert_eq!(a["MessageId"], b["MessageId"]);
    assert_eq!(a["SequenceNumber"], b["SequenceNumber"]);
    call(&sqs, "SendMessage", send("two", "d2"))
        .await
        .expect("send");
    let got = call(&sqs, "ReceiveMessage", json!({"QueueUrl": url}))
        .await
        .expect("recv");
    assert_eq!(got["Messages"][0]["Body"], "one");

    // A second service over the same store sees the same state (a restart).
    let sqs2 = Sqs::new(store.clone());
    let attrs = call(
        &sqs2,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["All"]}),
    )
    .await
    .expect("attrs");
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessages"], "1");
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"],
        "1"
    );
    // The group is still blocked by the in-flight message; dedup still holds.
    let none = call(&sqs2, "ReceiveMessage", json!({"QueueUrl": url}))
        .await
        .expect("recv");
    assert!(none.get("Messages").is_none());
    let c = call(&sqs2, "SendMessage", send("dup of two", "d2"))
        .await
        .expect("dup");
    assert!(c["MessageId"].is_string());
    let handle = got["Messages"][0]["ReceiptHandle"].clone();
    call(
        &sqs2,
        "DeleteMessage",
        json!({"QueueUrl": url, "ReceiptHandle": handle}),
    )
    .await
    .expect("delete");
    let next = call(
        &sqs2,
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10}),
    )
    .await
    .expect("recv");
    let msgs = next["Messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["Body"], "two");

    // Retention: a sweep far in the future drops everything, dedup entries too.
    let dropped = sqs2.sweep(now_ms() + 5 * 86_400_000).await.expect("sweep");
    assert_eq!(dropped, 1);
    let sqs3 = Sqs::new(store);
    let attrs = call(
        &sqs3,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}),
    )
    .await
    .expect("attrs");
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessages"], "0");
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"],
        "0"
    );
}

#[tokio::test]
async fn dead_letter_move_through_the_service() {
    let (_, sqs) = service();
    call(&sqs, "CreateQueue", json!({"QueueName": "dlq"}))
        .await
        .expect("dlq");
    let policy = json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq", "maxReceiveCount": "1"});
    let src = call(
        &sqs,
        "CreateQueue",
        json!({"QueueName": "src", "Attributes": {"VisibilityTimeout": "0", "RedrivePolicy": policy.to_string()}}),
    )
    .await
    .expect("src")["QueueUrl"]
        .clone();
    call(
        &sqs,
        "SendMessage",
        json!({"QueueUrl": src, "MessageBody": "bad"}),
    )
    .await
    .expect("send");
    let first = call(&sqs, "ReceiveMessage", json!({"QueueUrl": src}))
        .await
        .expect("recv");
    assert_eq!(first["Messages"][0]["Body"], "bad");
    let second = call(&sqs, "ReceiveMessage", json!({"QueueUrl": src}))
        .await
        .expect("recv");
    assert!(second.get("Messages").is_none());
    let dead = call(
        &sqs,
        "ReceiveMessage",
        json!({"QueueUrl": "http://x/000000000000/dlq", "MessageSystemAttributeNames": ["All"]}),
    )
    .await
    .expect("recv dlq");
    assert_eq!(dead["Messages"][0]["Body"], "bad");
    assert_eq!(
        dead["Messages"][0]["Attributes"]["DeadLetterQueueSourceArn"],
        "arn:aws:sqs:us-east-1:000000000000:src"
    );
    // The normalized policy reports the count as a number.
    let attrs = call(
        &sqs,
        "GetQueueAttributes",
        json!({"QueueUrl": src, "AttributeNames": ["RedrivePolicy"]}),
    )
    .await
    .expect("attrs");
    let p: Value = serde_json::from_str(
        attrs["Attributes"]["RedrivePolicy"]
            .as_str()
            .expect("policy"),
    )
    .expect("json");
    assert_eq!(p["maxReceiveCount"], 1);
}

#[tokio::test]
async fn queue_sink_delivers() {
    let (_, sqs) = service();
    call(&sqs, "CreateQueue", json!({"QueueName": "events"}))
        .await
        .expect("create");
    let arn = "arn:aws:sqs:us-east-1:000000000000:events";
    assert!(sqs.queue_exists(arn));
    assert!(!sqs.queue_exists("arn:aws:sqs:us-east-1:000000000000:other"));
    QueueSink::send_message(sqs.as_ref(), arn, "{\"Records\":[]}").expect("deliver");
    let got = call(
        &sqs,
        "ReceiveMessage",
        json!({"QueueUrl": "http://localhost:4566/000000000000/events"}),
    )
    .await
    .expect("recv");
    assert_eq!(got["Messages"][0]["Body"], "{\"Records\":[]}");
    assert_eq!(
        QueueSink::send_message(sqs.as_ref(), "arn:aws:sqs:us-east-1:000000000000:none", "x")
            .expect_err("missing")
            .code,
        "QueueDoesNotExist"
    );
}

#[tokio::test]
async fn long_poll_wakes_on_send() {
    let (_, sqs) = service();
    let url = call(&sqs, "CreateQueue", json!({"QueueName": "lp"}))
        .await
        .expect("create")["QueueUrl"]
        .clone();
    let sqs2 = sqs.clone();
    let url2 = url.clone();
    let started = std::time::Instant::now();
    let waiter = tokio::spawn(async move {
        call(
            &sqs2,
            "ReceiveMessage",
            json!({"QueueUrl": url2, "WaitTimeSeconds": 10}),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    call(
        &sqs,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "wake"}),
    )
    .await
    .expect("send");
    let got = waiter.await.expect("join").expect("recv");
    assert_eq!(got["Messages"][0]["Body"], "wake");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn create_queue_rules() {
    let (_, sqs) = service();
    call(
        &sqs,
        "CreateQueue",
        json!({"QueueName": "a", "Attributes": {"DelaySeconds": "5"}}),
    )
    .await
    .expect("create");
    call(
        &sqs,
        "CreateQueue",
        json!({"QueueName": "a", "Attributes": {"DelaySeconds": "5"}}),
    )
    .await
    .expect("same attributes");
    let e = call(
        &sqs,
        "CreateQueue",
        json!({"QueueName": "a", "Attributes": {"DelaySeconds": "6"}}),
    )
    .await
    .expect_err("different");
    assert_eq!(e.code, "QueueNameExists");
    let e = call(
        &sqs,
        "CreateQueue",
        json!({"QueueName": "b", "Attributes": {"Nope": "1"}}),
    )
    .await
    .expect_err("unknown");
    assert_eq!(e.code, "InvalidAttributeName");
    let e = call(
        &sqs,
        "CreateQueue",
        json!({"QueueName": "b.fifo", "Attributes": {"FifoQueue": "true", "FifoThroughputLimit": "perMessageGroupId"}}),
    )
    .await
    .expect_err("needs messageGroup scope");
    assert_eq!(e.code, "InvalidAttributeValue");
    let e = call(&sqs, "GetQueueUrl", json!({"QueueName": "zzz"}))
        .await
        .expect_err("missing");
    assert_eq!(e.code, "QueueDoesNotExist");
    let e = call(&sqs, "StartMessageMoveTask", json!({"SourceArn": "x"}))
        .await
        .expect_err("bad arn");
    assert_eq!(e.code, "InvalidParameterValue");
}

#[tokio::test]
async fn store_reset_drops_stale_indexes() {
    let (store, sqs) = service();
    let url = call(&sqs, "CreateQueue", json!({"QueueName": "gone"}))
        .await
        .expect("create")["QueueUrl"]
        .clone();
    call(
        &sqs,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "m"}),
    )
    .await
    .expect("send");
    store.reset().expect("reset");
    sqs.sweep(now_ms()).await.expect("sweep");
    let e = call(
        &sqs,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "m"}),
    )
    .await
    .expect_err("queue gone with the reset");
    assert_eq!(e.code, "QueueDoesNotExist");
    call(&sqs, "CreateQueue", json!({"QueueName": "gone"}))
        .await
        .expect("create again");
    sqs.forget_all();
    let got = call(&sqs, "ReceiveMessage", json!({"QueueUrl": url}))
        .await
        .expect("receive");
    assert!(got.get("Messages").is_none());
}
