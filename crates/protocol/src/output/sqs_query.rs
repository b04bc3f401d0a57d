//! SQS over awsQuery: the serialization names AWS uses on the query wire that SQS's vendored
//! JSON-native model (`awsQueryCompatible`) no longer carries.
//!
//! The model's lists and maps are flattened but unnamed, so a plain model-driven writer
//! would emit `<Messages>`, `<Attributes><key>..</key>` and so on. AWS sends the historical
//! query names (`<Message>`, `<Attribute><Name>..</Name><Value>..</Value></Attribute>`,
//! `<QueueUrl>` repeated, `<SendMessageBatchResultEntry>`, ...) in the namespace
//! `http://queue.amazonaws.com/doc/2012-11-05/`, as documented in the SQS API reference.
//! This module is the one table of those overrides; the XML writer consults it through
//! [`names`] and applies it only to the sqs model on the query protocol.

use crate::{Protocol, ServiceModel};

/// Serialization overrides of one service on the query protocol.
pub(crate) struct QueryNames {
    /// The response (and error) namespace.
    pub(crate) namespace: &'static str,
    /// `(member, target shape, element name)`: the element a structure member is written as.
    pub(crate) members: &'static [(&'static str, &'static str, &'static str)],
    /// Collection shapes written flattened (one element per item, no wrapper).
    pub(crate) flattened: &'static [&'static str],
    /// `(map shape, key element, value element)`: the names inside a map entry.
    pub(crate) map_entries: &'static [(&'static str, &'static str, &'static str)],
}

impl QueryNames {
    /// The element name of structure member `member` whose reference targets `shape`.
    pub(crate) fn member_name(&self, member: &str, shape: &str) -> Option<&'static str> {
        self.members
            .iter()
            .find(|(m, s, _)| *m == member && *s == shape)
            .map(|(_, _, e)| *e)
    }

    /// Whether the collection shape is written flattened.
    pub(crate) fn is_flattened(&self, shape: &str) -> bool {
        self.flattened.contains(&shape)
    }

    /// The key and value element names of a map shape's entries.
    pub(crate) fn entry_names(&self, shape: &str) -> Option<(&'static str, &'static str)> {
        self.map_entries
            .iter()
            .find(|(m, _, _)| *m == shape)
            .map(|(_, k, v)| (*k, *v))
    }
}

/// SQS's query names, from the SQS API reference's XML examples.
static SQS: QueryNames = QueryNames {
    namespace: "http://queue.amazonaws.com/doc/2012-11-05/",
    members: &[
        ("Messages", "MessageList", "Message"),
        ("Attributes", "MessageSystemAttributeMap", "Attribute"),
        (
            "MessageAttributes",
            "MessageBodyAttributeMap",
            "MessageAttribute",
        ),
        (
            "MessageSystemAttributes",
            "MessageBodySystemAttributeMap",
            "MessageSystemAttribute",
        ),
        ("StringListValues", "StringList", "StringListValue"),
        ("BinaryListValues", "BinaryList", "BinaryListValue"),
        ("QueueUrls", "QueueUrlList", "QueueUrl"),
        ("queueUrls", "QueueUrlList", "QueueUrl"),
        ("Attributes", "QueueAttributeMap", "Attribute"),
        ("Tags", "TagMap", "Tag"),
        (
            "Successful",
            "SendMessageBatchResultEntryList",
            "SendMessageBatchResultEntry",
        ),
        (
            "Successful",
            "DeleteMessageBatchResultEntryList",
            "DeleteMessageBatchResultEntry",
        ),
        (
            "Successful",
            "ChangeMessageVisibilityBatchResultEntryList",
            "ChangeMessageVisibilityBatchResultEntry",
        ),
        (
            "Failed",
            "BatchResultErrorEntryList",
            "BatchResultErrorEntry",
        ),
        (
            "Results",
            "ListMessageMoveTasksResultEntryList",
            "ListMessageMoveTasksResultEntry",
        ),
    ],
    flattened: &[
        "MessageList",
        "MessageSystemAttributeMap",
        "MessageBodyAttributeMap",
        "MessageBodySystemAttributeMap",
        "StringList",
        "BinaryList",
        "QueueUrlList",
        "QueueAttributeMap",
        "TagMap",
        "SendMessageBatchResultEntryList",
        "DeleteMessageBatchResultEntryList",
        "ChangeMessageVisibilityBatchResultEntryList",
        "BatchResultErrorEntryList",
        "ListMessageMoveTasksResultEntryList",
    ],
    map_entries: &[
        ("MessageSystemAttributeMap", "Name", "Value"),
        ("MessageBodyAttributeMap", "Name", "Value"),
        ("MessageBodySystemAttributeMap", "Name", "Value"),
        ("QueueAttributeMap", "Name", "Value"),
        ("TagMap", "Key", "Value"),
    ],
};

/// The overrides that apply to a model on a protocol: SQS's on the query protocol, else none.
pub(crate) fn names(model: &ServiceModel, protocol: Protocol) -> Option<&'static QueryNames> {
    (protocol == Protocol::Query && model.name == "sqs").then_some(&SQS)
}

/// The `QueueUrl` an SQS query request posted to the queue's own URL stands for:
/// `http://<host><path>` when the path is `/<account>/<queue>`.
pub(crate) fn queue_url_from_path(host: &str, path: &str) -> Option<String> {
    let trimmed = path.strip_prefix('/')?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut segments = trimmed.split('/');
    let (Some(account), Some(queue), None) = (segments.next(), segments.next(), segments.next())
    else {
        return None;
    };
    if account.is_empty() || queue.is_empty() || host.is_empty() {
        return None;
    }
    Some(format!("http://{host}/{account}/{queue}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::service_model;

    #[test]
    fn applies_to_sqs_on_query_only() {
        let sqs = service_model("sqs").unwrap();
        assert!(names(sqs, Protocol::Query).is_some());
        assert!(names(sqs, Protocol::Json).is_none());
        let cw = service_model("cloudwatch").unwrap();
        assert!(names(cw, Protocol::Query).is_none());
    }

    #[test]
    fn every_override_names_a_model_shape() {
        let sqs = service_model("sqs").unwrap();
        for (member, shape, _) in SQS.members {
            assert!(sqs.shape(shape).is_some(), "{shape}");
            let owned = sqs
                .shapes
                .values()
                .any(|s| s.members.get(*member).is_some_and(|r| r.shape == *shape));
            assert!(owned, "{member} -> {shape}");
        }
        for shape in SQS.flattened {
            assert!(sqs.shape(shape).is_some(), "{shape}");
        }
        for (shape, _, _) in SQS.map_entries {
            assert_eq!(sqs.shape(shape).map(|s| s.type_.as_str()), Some("map"));
        }
    }

    fn query_xml(op: &str, output: serde_json::Value) -> String {
        let sqs = service_model("sqs").unwrap();
        let op = &sqs.operations[op];
        let ctx = crate::ResponseContext {
            request_id: "r".into(),
        };
        let resp = crate::serialize_response(sqs, Protocol::Query, op, &output, &ctx);
        String::from_utf8(resp.body).unwrap()
    }

    #[test]
    fn receive_message_uses_query_names() {
        let xml = query_xml(
            "ReceiveMessage",
            serde_json::json!({"Messages": [{
                "MessageId": "m", "Body": "b",
                "Attributes": {"ApproximateReceiveCount": "1"},
                "MessageAttributes": {"color": {"DataType": "String", "StringValue": "blue"}}
            }]}),
        );
        assert!(xml.starts_with(
            "<ReceiveMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">\
             <ReceiveMessageResult><Message><MessageId>m</MessageId><Body>b</Body>"
        ));
        assert!(xml.contains(
            "<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>"
        ));
        assert!(xml.contains(
            "<MessageAttribute><Name>color</Name><Value><StringValue>blue</StringValue>\
             <DataType>String</DataType></Value></MessageAttribute></Message>"
        ));
    }

    #[test]
    fn lists_maps_and_batches_use_query_names() {
        let xml = query_xml("ListQueues", serde_json::json!({"QueueUrls": ["a", "b"]}));
        assert!(xml.contains("<ListQueuesResult><QueueUrl>a</QueueUrl><QueueUrl>b</QueueUrl>"));
        let xml = query_xml(
            "ListDeadLetterSourceQueues",
            serde_json::json!({"queueUrls": ["a"]}),
        );
        assert!(xml.contains("<ListDeadLetterSourceQueuesResult><QueueUrl>a</QueueUrl>"));
        let xml = query_xml(
            "GetQueueAttributes",
            serde_json::json!({"Attributes": {"VisibilityTimeout": "30"}}),
        );
        assert!(xml.contains("<Attribute><Name>VisibilityTimeout</Name><Value>30</Value>"));
        let xml = query_xml("ListQueueTags", serde_json::json!({"Tags": {"k": "v"}}));
        assert!(xml.contains("<ListQueueTagsResult><Tag><Key>k</Key><Value>v</Value></Tag>"));
        let failed = serde_json::json!([{"Id": "2", "SenderFault": true, "Code": "c"}]);
        for (op, entry) in [
            ("SendMessageBatch", "SendMessageBatchResultEntry"),
            ("DeleteMessageBatch", "DeleteMessageBatchResultEntry"),
            (
                "ChangeMessageVisibilityBatch",
                "ChangeMessageVisibilityBatchResultEntry",
            ),
        ] {
            let xml = query_xml(
                op,
                serde_json::json!({"Successful": [{"Id": "1"}], "Failed": failed}),
            );
            assert!(xml.contains(&format!("<{entry}><Id>1</Id>")), "{xml}");
            assert!(xml.contains("<BatchResultErrorEntry><Id>2</Id>"), "{xml}");
        }
    }

    #[test]
    fn json_protocol_is_unchanged() {
        let sqs = service_model("sqs").unwrap();
        let op = &sqs.operations["ListQueues"];
        let ctx = crate::ResponseContext {
            request_id: "r".into(),
        };
        let out = serde_json::json!({"QueueUrls": ["a"]});
        let resp = crate::serialize_response(sqs, Protocol::Json, op, &out, &ctx);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body, out);
    }

    fn form(path: &str, body: &str) -> crate::HttpRequest {
        crate::HttpRequest {
            method: "POST".into(),
            path: path.into(),
            query: String::new(),
            headers: vec![
                ("Host".into(), "localhost:4566".into()),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
            ],
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn queue_url_filled_from_path() {
        let sqs = service_model("sqs").unwrap();
        let parse = |req: &crate::HttpRequest| {
            let op = crate::resolve_operation(sqs, Protocol::Query, req).unwrap();
            crate::parse_request(sqs, Protocol::Query, op, req)
        };
        let req = form(
            "/000000000000/q1",
            "Action=SendMessage&Version=2012-11-05&MessageBody=x",
        );
        let v = parse(&req).unwrap();
        assert_eq!(v["QueueUrl"], "http://localhost:4566/000000000000/q1");
        // An explicit QueueUrl wins over the path.
        let req = form(
            "/000000000000/q1",
            "Action=SendMessage&QueueUrl=http%3A%2F%2Fh%2F1%2Fq2&MessageBody=x",
        );
        assert_eq!(parse(&req).unwrap()["QueueUrl"], "http://h/1/q2");
        // Not on the root path, and not for operations without a QueueUrl.
        let req = form("/", "Action=SendMessage&MessageBody=x");
        assert!(parse(&req).is_err());
        let req = form("/000000000000/q1", "Action=ListQueues");
        assert!(parse(&req).unwrap().get("QueueUrl").is_none());
    }

    #[test]
    fn queue_url_from_two_segment_paths() {
        assert_eq!(
            queue_url_from_path("localhost:4566", "/000000000000/q").as_deref(),
            Some("http://localhost:4566/000000000000/q")
        );
        assert_eq!(
            queue_url_from_path("h", "/000000000000/q/").as_deref(),
            Some("http://h/000000000000/q")
        );
        assert_eq!(queue_url_from_path("h", "/"), None);
        assert_eq!(queue_url_from_path("h", "/a"), None);
        assert_eq!(queue_url_from_path("h", "/a/b/c"), None);
        assert_eq!(queue_url_from_path("", "/a/b"), None);
    }
}
