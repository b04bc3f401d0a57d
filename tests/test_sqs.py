"""SQS black-box tests: the real binary driven by boto3, the AWS CLI and raw query-protocol
HTTP posts."""
import base64
import hashlib
import json
import struct
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from conftest import unique

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"


def err(excinfo):
    return excinfo.value.response["Error"]


def md5_attrs(attrs):
    """MD5OfMessageAttributes computed independently, per the documented encoding."""
    buf = b""
    for name in sorted(attrs):
        v = attrs[name]
        for s in (name.encode(), v["DataType"].encode()):
            buf += struct.pack(">I", len(s)) + s
        if "BinaryValue" in v:
            b = v["BinaryValue"]
            buf += b"\x02" + struct.pack(">I", len(b)) + b
        else:
            b = v["StringValue"].encode()
            buf += b"\x01" + struct.pack(">I", len(b)) + b
    return hashlib.md5(buf).hexdigest()


@pytest.fixture
def sqs(server):
    return server.client("sqs")


def make_queue(sqs, prefix="q", fifo=False, **attrs):
    name = unique(prefix) + (".fifo" if fifo else "")
    attributes = {k: str(v) for k, v in attrs.items()}
    if fifo:
        attributes["FifoQueue"] = "true"
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


# ---- queues ----

def test_create_get_list_delete(server, sqs):
    name = unique("life")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url == f"{server.endpoint}/000000000000/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId="000000000000")["QueueUrl"] == url
    assert url in sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as e:
        sqs.get_queue_url(QueueName=name)
    assert err(e)["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=name)


def test_list_pagination(sqs):
    prefix = unique("page")
    urls = [sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5)]
    got, token = [], None
    for _ in range(10):
        kw = {"QueueNamePrefix": prefix, "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        r = sqs.list_queues(**kw)
        got += r.get("QueueUrls", [])
        token = r.get("NextToken")
        if not token:
            break
    assert sorted(got) == sorted(urls)
    paginator = sqs.get_paginator("list_queues")
    pages = list(paginator.paginate(QueueNamePrefix=prefix, PaginationConfig={"PageSize": 3}))
    assert sum(len(p.get("QueueUrls", [])) for p in pages) == 5
    with pytest.raises(ClientError) as e:
        sqs.list_queues(MaxResults=0)
    assert err(e)["Code"] == "InvalidParameterValue"


def test_create_idempotent_and_conflict(sqs):
    name = unique("idem")
    u1 = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    u2 = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    assert u1 == u2
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == u1
    with pytest.raises(sqs.exceptions.QueueNameExists) as e:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert err(e)["Code"] == "QueueAlreadyExists"


def test_queue_name_validation(sqs):
    for bad in ["has space", "x" * 81, "dot.name"]:
        with pytest.raises(ClientError) as e:
            sqs.create_queue(QueueName=bad)
        assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=unique("nofifo") + ".fifo")
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=unique("std"), Attributes={"FifoQueue": "true"})
    assert err(e)["Code"] == "InvalidParameterValue"


def test_attributes_get_set_validate(sqs):
    url = make_queue(sqs, "attrs")
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["VisibilityTimeout"] == "30"
    assert a["MaximumMessageSize"] == "262144"
    assert a["MessageRetentionPeriod"] == "345600"
    assert a["DelaySeconds"] == "0"
    assert a["ReceiveMessageWaitTimeSeconds"] == "0"
    assert a["SqsManagedSseEnabled"] == "true"
    assert a["QueueArn"].startswith("arn:aws:sqs:us-east-1:000000000000:attrs-")
    for k in ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"]:
        assert a[k] == "0"
    assert int(a["CreatedTimestamp"]) <= int(a["LastModifiedTimestamp"])
    assert "FifoQueue" not in a
    new = {"VisibilityTimeout": "5", "MessageRetentionPeriod": "120", "DelaySeconds": "3",
           "ReceiveMessageWaitTimeSeconds": "2", "MaximumMessageSize": "2048",
           "Policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
           "SqsManagedSseEnabled": "false"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes=new)
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(new))["Attributes"]
    assert got == new
    one = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds"])["Attributes"]
    assert one == {"DelaySeconds": "3"}
    for k, v in [("VisibilityTimeout", "43201"), ("DelaySeconds", "901"),
                 ("MessageRetentionPeriod", "59"), ("ReceiveMessageWaitTimeSeconds", "21"),
                 ("MaximumMessageSize", "1023"), ("VisibilityTimeout", "abc"),
                 ("Policy", "not json"), ("RedrivePolicy", "{}")]:
        with pytest.raises(ClientError) as e:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={k: v})
        assert err(e)["Code"] == "InvalidAttributeValue", (k, v)
    for k in ["Bogus", "ContentBasedDeduplication", "QueueArn"]:
        with pytest.raises(ClientError) as e:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={k: "true"})
        assert err(e)["Code"] == "InvalidAttributeName"
    with pytest.raises(ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Bogus"])
    assert err(e)["Code"] == "InvalidAttributeName"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=unique("badattr"), Attributes={"VisibilityTimeout": "-1"})
    assert err(e)["Code"] == "InvalidAttributeValue"


def test_fifo_attributes(sqs):
    url = make_queue(sqs, "fattrs", fifo=True, ContentBasedDeduplication="true")
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["FifoQueue"] == "true"
    assert a["ContentBasedDeduplication"] == "true"
    assert a["DeduplicationScope"] == "queue"
    assert a["FifoThroughputLimit"] == "perQueue"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"})
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["DeduplicationScope"] == "messageGroup"
    assert a["FifoThroughputLimit"] == "perMessageGroupId"
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"DeduplicationScope": "nope"})
    assert err(e)["Code"] == "InvalidAttributeValue"


def test_redrive_allow_policy(sqs):
    url = make_queue(sqs, "allow")
    pol = {"redrivePermission": "denyAll"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": json.dumps(pol)})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])
    assert json.loads(got["Attributes"]["RedriveAllowPolicy"]) == pol
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={
            "RedriveAllowPolicy": json.dumps({"redrivePermission": "sometimes"})})
    assert err(e)["Code"] == "InvalidAttributeValue"


def test_tags(sqs):
    name = unique("tags")
    url = sqs.create_queue(QueueName=name, tags={"a": "1", "b": "2"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"a": "1", "b": "2"}
    sqs.tag_queue(QueueUrl=url, Tags={"b": "3", "c": "4"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"a": "1", "b": "3", "c": "4"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["a", "c"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"b": "3"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["b"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)


def test_queue_url_with_any_host(sqs):
    name = unique("host")
    sqs.create_queue(QueueName=name)
    for url in [f"https://sqs.us-east-1.amazonaws.com/000000000000/{name}",
                f"http://localhost:4566/000000000000/{name}",
                f"http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/{name}"]:
        sqs.send_message(QueueUrl=url, MessageBody="hi")
    r = sqs.get_queue_attributes(QueueUrl=f"https://example.com/000000000000/{name}",
                                 AttributeNames=["ApproximateNumberOfMessages"])
    assert r["Attributes"]["ApproximateNumberOfMessages"] == "3"


def test_permissions(sqs):
    url = make_queue(sqs, "perm")
    sqs.add_permission(QueueUrl=url, Label="l1", AWSAccountIds=["111111111111"],
                       Actions=["SendMessage"])
    pol = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
                     ["Attributes"]["Policy"])
    assert pol["Statement"][0]["Sid"] == "l1"
    assert pol["Statement"][0]["Action"] == "SQS:SendMessage"
    with pytest.raises(ClientError) as e:
        sqs.add_permission(QueueUrl=url, Label="l1", AWSAccountIds=["1"], Actions=["*"])
    assert err(e)["Code"] == "InvalidParameterValue"
    sqs.remove_permission(QueueUrl=url, Label="l1")
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])


def test_purge(sqs):
    url = make_queue(sqs, "purge")
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.purge_queue(QueueUrl=url)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress) as e:
        sqs.purge_queue(QueueUrl=url)
    assert err(e)["Code"] == "AWS.SimpleQueueService.PurgeQueueInProgress"


# ---- messages ----

def test_send_receive_md5(sqs):
    url = make_queue(sqs, "md5")
    attrs = {"city": {"DataType": "String", "StringValue": "Zürich"},
             "n": {"DataType": "Number", "StringValue": "42.5"},
             "bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
             "custom": {"DataType": "String.json", "StringValue": "{}"}}
    body = "hello ✓"
    r = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs,
                         MessageSystemAttributes={"AWSTraceHeader": {
                             "DataType": "String", "StringValue": "Root=1-abc"}})
    assert r["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert r["MD5OfMessageAttributes"] == md5_attrs(attrs)
    assert r["MD5OfMessageSystemAttributes"] == md5_attrs(
        {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}})
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"],
                            MessageSystemAttributeNames=["All"])["Messages"][0]
    assert m["Body"] == body and m["MessageId"] == r["MessageId"]
    assert m["MD5OfBody"] == r["MD5OfMessageBody"]
    assert m["MD5OfMessageAttributes"] == r["MD5OfMessageAttributes"]
    assert m["MessageAttributes"]["bin"]["BinaryValue"] == b"\x00\x01\xff"
    assert m["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "42.5"}
    a = m["Attributes"]
    assert a["ApproximateReceiveCount"] == "1"
    assert a["AWSTraceHeader"] == "Root=1-abc"
    assert abs(int(a["SentTimestamp"]) - time.time() * 1000) < 60_000
    assert int(a["ApproximateFirstReceiveTimestamp"]) >= int(a["SentTimestamp"])
    assert a["SenderId"]


def test_attribute_selection(sqs):
    url = make_queue(sqs, "sel")
    attrs = {"a.x": {"DataType": "String", "StringValue": "1"},
             "a.y": {"DataType": "String", "StringValue": "2"},
             "b": {"DataType": "String", "StringValue": "3"}}
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attrs)
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["a.*"],
                            AttributeNames=["SentTimestamp"], VisibilityTimeout=0)["Messages"][0]
    assert set(m["MessageAttributes"]) == {"a.x", "a.y"}
    assert m["MD5OfMessageAttributes"] == md5_attrs({k: attrs[k] for k in ["a.x", "a.y"]})
    assert set(m["Attributes"]) == {"SentTimestamp"}
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["b"])["Messages"][0]
    assert set(m["MessageAttributes"]) == {"b"}
    assert "Attributes" not in m


def test_message_validation(sqs):
    url = make_queue(sqs, "valid", MaximumMessageSize=1024)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1025)
    assert err(e)["Code"] == "InvalidParameterValue"
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1024)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="bad \x01 char")
    assert err(e)["Code"] == "InvalidMessageContents"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
            "n": {"DataType": "Number", "StringValue": "abc"}})
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
            f"k{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)})
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=901)
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21)
    assert err(e)["Code"] == "InvalidParameterValue"
    big = make_queue(sqs, "big")
    sqs.send_message(QueueUrl=big, MessageBody="y" * 262144)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=big, MessageBody="y" * 262145)
    assert err(e)["Code"] == "InvalidParameterValue"


def test_receive_max_and_counts(sqs):
    url = make_queue(sqs, "many")
    for i in range(15):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert len(r["Messages"]) == 10
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == "5"
    assert a["ApproximateNumberOfMessagesNotVisible"] == "10"


def test_long_polling_waits_and_returns_early(sqs):
    url = make_queue(sqs, "poll")
    t0 = time.time()
    r = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)
    waited = time.time() - t0
    assert "Messages" not in r
    assert 1.9 <= waited < 4, waited

    def later():
        time.sleep(1)
        sqs.send_message(QueueUrl=url, MessageBody="late")
    th = threading.Thread(target=later)
    th.start()
    t0 = time.time()
    r = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)
    waited = time.time() - t0
    th.join()
    assert r["Messages"][0]["Body"] == "late"
    assert 0.8 <= waited < 3, waited


def test_queue_default_wait_time(sqs):
    url = make_queue(sqs, "defwait", ReceiveMessageWaitTimeSeconds=1)
    t0 = time.time()
    sqs.receive_message(QueueUrl=url)
    assert time.time() - t0 >= 0.9


def test_visibility_timeout_reappears(sqs):
    url = make_queue(sqs, "vis", VisibilityTimeout=1)
    sqs.send_message(QueueUrl=url, MessageBody="again")
    m1 = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    t0 = time.time()
    r = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5, AttributeNames=["All"])
    assert time.time() - t0 < 2.5
    m2 = r["Messages"][0]
    assert m2["MessageId"] == m1["MessageId"]
    assert m2["ReceiptHandle"] != m1["ReceiptHandle"]
    assert m2["Attributes"]["ApproximateReceiveCount"] == "2"
    # A visibility override on receive.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m2["ReceiptHandle"])
    sqs.send_message(QueueUrl=url, MessageBody="long")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)
    time.sleep(1.3)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_delay_seconds(sqs):
    url = make_queue(sqs, "delay")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessagesDelayed"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    r = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3)
    assert r["Messages"][0]["Body"] == "later"
    qd = make_queue(sqs, "qdelay", DelaySeconds=1)
    sqs.send_message(QueueUrl=qd, MessageBody="q")
    assert "Messages" not in sqs.receive_message(QueueUrl=qd)
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=qd)["Messages"][0]["Body"] == "q"


def test_change_visibility(sqs):
    url = make_queue(sqs, "chvis", VisibilityTimeout=30)
    sqs.send_message(QueueUrl=url, MessageBody="a")
    m = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                  VisibilityTimeout=0)
    m2 = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert m2["MessageId"] == m["MessageId"]
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m2["ReceiptHandle"],
                                      VisibilityTimeout=43201)
    assert err(e)["Code"] == "InvalidParameterValue"
    r = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "ok", "ReceiptHandle": m2["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "garbage", "VisibilityTimeout": 0}])
    assert [s["Id"] for s in r["Successful"]] == ["ok"]
    assert r["Failed"][0]["Id"] == "bad" and r["Failed"][0]["SenderFault"]
    assert r["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    m3 = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m3["ReceiptHandle"])
    with pytest.raises(ClientError):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m3["ReceiptHandle"],
                                      VisibilityTimeout=5)


def test_message_not_inflight(sqs):
    url = make_queue(sqs, "notinfl", VisibilityTimeout=1)
    sqs.send_message(QueueUrl=url, MessageBody="a")
    m = sqs.receive_message(QueueUrl=url)["Messages"][0]
    time.sleep(1.2)
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                      VisibilityTimeout=10)
    assert err(e)["Code"] == "AWS.SimpleQueueService.MessageNotInflight"


def test_delete_semantics(sqs):
    url = make_queue(sqs, "del", VisibilityTimeout=1)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    sqs.send_message(QueueUrl=url, MessageBody="a")
    old = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    time.sleep(1.2)
    new = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    # A stale handle: the request succeeds, the message stays (as AWS documents).
    sqs.delete_message(QueueUrl=url, ReceiptHandle=old)
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert a["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=new)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=new)  # deleting twice is fine
    time.sleep(1.2)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_batches(sqs):
    url = make_queue(sqs, "batch")
    r = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": f"e{i}", "MessageBody": f"b{i}"} for i in range(10)])
    assert len(r["Successful"]) == 10 and not r.get("Failed")
    assert {s["Id"] for s in r["Successful"]} == {f"e{i}" for i in range(10)}
    assert r["Successful"][0]["MD5OfMessageBody"] == hashlib.md5(b"b0").hexdigest()
    r = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "good", "MessageBody": "fine"}, {"Id": "bad", "MessageBody": "\x00"}])
    assert [s["Id"] for s in r["Successful"]] == ["good"]
    assert r["Failed"][0]["Id"] == "bad" and r["Failed"][0]["Code"] == "InvalidMessageContents"
    for entries, code in [
        ([{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
         "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
        ([{"Id": f"i{i}", "MessageBody": "x"} for i in range(11)],
         "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
        ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
        ([{"Id": "bad id!", "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
        ([{"Id": f"i{i}", "MessageBody": "x" * 30000} for i in range(10)],
         "AWS.SimpleQueueService.BatchRequestTooLong"),
    ]:
        with pytest.raises(ClientError) as e:
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert err(e)["Code"] == code
    msgs = []
    while len(msgs) < 11:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        msgs += got
    assert len(msgs) == 11
    r = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs[:10])]
        + [])
    assert len(r["Successful"]) == 10
    r = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "x", "ReceiptHandle": msgs[10]["ReceiptHandle"]},
        {"Id": "y", "ReceiptHandle": "junk"}])
    assert [s["Id"] for s in r["Successful"]] == ["x"]
    assert r["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_dead_letter_queue(sqs):
    dlq = make_queue(sqs, "dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    src = make_queue(sqs, "src", VisibilityTimeout=0, RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    pol = json.loads(sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])
                     ["Attributes"]["RedrivePolicy"])
    assert pol == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    for n in (1, 2):
        m = sqs.receive_message(QueueUrl=src, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
        assert m["Attributes"]["ApproximateReceiveCount"] == str(n)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    m = sqs.receive_message(QueueUrl=dlq, MessageSystemAttributeNames=["All"])["Messages"][0]
    assert m["Body"] == "poison"
    assert m["Attributes"]["DeadLetterQueueSourceArn"].endswith(src.rsplit("/", 1)[1])
    srcs = sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert srcs == [src]
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn + "-missing", "maxReceiveCount": 2})})
    assert err(e)["Code"] == "InvalidAttributeValue"
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 0})})
    assert err(e)["Code"] == "InvalidAttributeValue"
    sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": ""})
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])


def test_dead_letter_redrive_move_task(sqs):
    dlq = make_queue(sqs, "mdlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    src = make_queue(sqs, "msrc", VisibilityTimeout=0, RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}))
    for i in range(3):
        sqs.send_message(QueueUrl=src, MessageBody=f"r{i}")
    for _ in range(3):
        sqs.receive_message(QueueUrl=src, MaxNumberOfMessages=10)
    a = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert a["Attributes"]["ApproximateNumberOfMessages"] == "3"
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert tasks[0]["Status"] == "COMPLETED"
    assert tasks[0]["ApproximateNumberOfMessagesMoved"] == 3
    got = sqs.receive_message(QueueUrl=src, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert sorted(m["Body"] for m in got) == ["r0", "r1", "r2"]
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in got)
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=sqs.get_queue_attributes(
            QueueUrl=src, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    assert err(e)["Code"] == "InvalidParameterValue"


def test_fifo_order_groups_and_dedup(sqs):
    url = make_queue(sqs, "order", fifo=True, VisibilityTimeout=30)
    seqs = []
    for i in range(5):
        for g in ("A", "B"):
            r = sqs.send_message(QueueUrl=url, MessageBody=f"{g}{i}", MessageGroupId=g,
                                 MessageDeduplicationId=f"{g}-{i}")
            seqs.append(int(r["SequenceNumber"]))
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    # Same dedup id within 5 minutes: accepted, not enqueued again, same message id.
    first = sqs.send_message(QueueUrl=url, MessageBody="dup", MessageGroupId="A",
                             MessageDeduplicationId="A-0")
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    got = r["Messages"]
    bodies = [m["Body"] for m in got]
    assert [b for b in bodies if b.startswith("A")] == [f"A{i}" for i in range(5)]
    assert [b for b in bodies if b.startswith("B")] == [f"B{i}" for i in range(5)]
    assert "dup" not in bodies
    assert first["MessageId"] == next(m["MessageId"] for m in got if m["Body"] == "A0")
    a0 = next(m for m in got if m["Body"] == "A0")
    assert a0["Attributes"]["MessageGroupId"] == "A"
    assert a0["Attributes"]["MessageDeduplicationId"] == "A-0"
    assert int(a0["Attributes"]["SequenceNumber"]) == seqs[0]
    # Groups are blocked while their messages are in flight.
    sqs.send_message(QueueUrl=url, MessageBody="A5", MessageGroupId="A", MessageDeduplicationId="A-5")
    sqs.send_message(QueueUrl=url, MessageBody="C0", MessageGroupId="C", MessageDeduplicationId="C-0")
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in r["Messages"]] == ["C0"]
    for m in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in r["Messages"]] == ["A5"]


def test_fifo_in_flight_message_returns_first(sqs):
    url = make_queue(sqs, "fifovis", fifo=True, VisibilityTimeout=1)
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", MessageGroupId="g",
                         MessageDeduplicationId=f"d{i}")
    m = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert m["Body"] == "m0"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    r = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3)
    assert r["Messages"][0]["Body"] == "m0"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=r["Messages"][0]["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "m1"


def test_fifo_content_dedup_and_rules(sqs):
    url = make_queue(sqs, "cbd", fifo=True, ContentBasedDeduplication="true")
    r1 = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    r2 = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    assert r1["MessageId"] == r2["MessageId"]
    sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="g")
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageDeduplicationId"])
    assert [m["Body"] for m in r["Messages"]] == ["same", "other"]
    assert r["Messages"][0]["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"same").hexdigest()
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert err(e)["Code"] == "MissingParameter"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", DelaySeconds=2)
    assert err(e)["Code"] == "InvalidParameterValue"
    plain = make_queue(sqs, "nocbd", fifo=True)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=plain, MessageBody="x", MessageGroupId="g")
    assert err(e)["Code"] == "InvalidParameterValue"
    std = make_queue(sqs, "stdded")
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=std, MessageBody="x", MessageDeduplicationId="d")
    assert err(e)["Code"] == "InvalidParameterValue"
    # Batch sends to FIFO queues keep order and dedup inside the batch.
    b = make_queue(sqs, "fbatch", fifo=True)
    r = sqs.send_message_batch(QueueUrl=b, Entries=[
        {"Id": f"e{i}", "MessageBody": f"m{i}", "MessageGroupId": "g",
         "MessageDeduplicationId": "same" if i in (1, 2) else f"d{i}"} for i in range(4)])
    assert len(r["Successful"]) == 4
    r = sqs.receive_message(QueueUrl=b, MaxNumberOfMessages=10)
    assert [m["Body"] for m in r["Messages"]] == ["m0", "m1", "m3"]


def test_retention_drops_old_messages(sqs):
    url = make_queue(sqs, "ret", MessageRetentionPeriod=60)
    sqs.send_message(QueueUrl=url, MessageBody="old")
    time.sleep(58)
    sqs.send_message(QueueUrl=url, MessageBody="young")
    time.sleep(4)
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert a["Attributes"]["ApproximateNumberOfMessages"] == "1"
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in r["Messages"]] == ["young"]


# ---- the AWS CLI and the query protocol ----

def test_cli_round_trip(server):
    name = unique("cli")
    url = server.aws_json("sqs", "create-queue", "--queue-name", name,
                          "--attributes", "VisibilityTimeout=20")["QueueUrl"]
    out = server.aws_json("sqs", "send-message", "--queue-url", url, "--message-body", "from cli",
                          "--message-attributes",
                          '{"k": {"DataType": "String", "StringValue": "v"}}')
    assert out["MD5OfMessageBody"] == hashlib.md5(b"from cli").hexdigest()
    got = server.aws_json("sqs", "receive-message", "--queue-url", url,
                          "--message-attribute-names", "All", "--wait-time-seconds", "1")
    m = got["Messages"][0]
    assert m["Body"] == "from cli" and m["MessageAttributes"]["k"]["StringValue"] == "v"
    server.aws("sqs", "delete-message", "--queue-url", url, "--receipt-handle", m["ReceiptHandle"])
    attrs = server.aws_json("sqs", "get-queue-attributes", "--queue-url", url,
                            "--attribute-names", "All")["Attributes"]
    assert attrs["VisibilityTimeout"] == "20" and attrs["ApproximateNumberOfMessages"] == "0"
    assert url in server.aws_json("sqs", "list-queues", "--queue-name-prefix", name)["QueueUrls"]
    rc, _, errtext = server.aws("sqs", "get-queue-url", "--queue-name", name + "-none", check=False)
    assert rc != 0 and "NonExistentQueue" in errtext
    server.aws("sqs", "delete-queue", "--queue-url", url)


def query(server, params, path="/"):
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(server.endpoint + path, data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/sqs/aws4_request, "
                         "SignedHeaders=host, Signature=" + "0" * 64})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, ET.fromstring(r.read())
    except urllib.error.HTTPError as e:
        return e.code, ET.fromstring(e.read())


def local(x):
    """The tree with namespaces stripped from tags."""
    for el in x.iter():
        el.tag = el.tag.split("}", 1)[-1]
    return x


def test_query_protocol(server):
    name = unique("query")
    status, x = query(server, {"Action": "CreateQueue", "Version": "2012-11-05", "QueueName": name,
                               "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "7"})
    assert status == 200, ET.tostring(x)
    url = local(x).find("CreateQueueResult/QueueUrl").text
    assert url.endswith(f"/000000000000/{name}")
    status, x = query(server, {
        "Action": "SendMessage", "Version": "2012-11-05", "QueueUrl": url, "MessageBody": "via query",
        "MessageAttribute.1.Name": "color", "MessageAttribute.1.Value.DataType": "String",
        "MessageAttribute.1.Value.StringValue": "blue"})
    assert status == 200, ET.tostring(x)
    res = local(x).find("SendMessageResult")
    assert res.find("MD5OfMessageBody").text == hashlib.md5(b"via query").hexdigest()
    assert res.find("MD5OfMessageAttributes").text == md5_attrs(
        {"color": {"DataType": "String", "StringValue": "blue"}})
    assert res.find("MessageId").text
    status, x = query(server, {"Action": "ReceiveMessage", "Version": "2012-11-05", "QueueUrl": url,
                               "AttributeName.1": "All", "MessageAttributeName.1": "All"})
    assert status == 200, ET.tostring(x)
    text = ET.tostring(x).decode()
    assert "via query" in text and "ReceiptHandle" in text
    handle = next(el.text for el in local(x).iter() if el.tag == "ReceiptHandle")
    status, x = query(server, {"Action": "DeleteMessage", "Version": "2012-11-05", "QueueUrl": url,
                               "ReceiptHandle": handle})
    assert status == 200, ET.tostring(x)
    status, x = query(server, {"Action": "GetQueueAttributes", "Version": "2012-11-05",
                               "QueueUrl": url, "AttributeName.1": "ApproximateNumberOfMessages"})
    assert status == 200 and b">0<" in ET.tostring(x)
    status, x = query(server, {"Action": "SendMessage", "Version": "2012-11-05",
                               "QueueUrl": url + "-missing", "MessageBody": "x"})
    assert status == 400
    x = local(x)
    assert x.find("Error/Code").text == "AWS.SimpleQueueService.NonExistentQueue"
    assert x.find("Error/Type").text == "Sender"
    status, x = query(server, {"Action": "CreateQueue", "Version": "2012-11-05", "QueueName": name,
                               "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "8"})
    assert local(x).find("Error/Code").text == "QueueAlreadyExists"
    status, x = query(server, {"Action": "SendMessage", "Version": "2012-11-05", "QueueUrl": url,
                               "MessageBody": "x", "DelaySeconds": "1000"})
    assert local(x).find("Error/Code").text == "InvalidParameterValue"


def test_query_protocol_xml_shapes(server):
    name = unique("qshape")
    _, x = query(server, {"Action": "CreateQueue", "Version": "2012-11-05", "QueueName": name})
    assert x.tag == f"{NS}CreateQueueResponse"
    url = x.find(f"{NS}CreateQueueResult/{NS}QueueUrl").text
    query(server, {"Action": "SendMessage", "Version": "2012-11-05", "QueueUrl": url,
                   "MessageBody": "b", "MessageAttribute.1.Name": "color",
                   "MessageAttribute.1.Value.DataType": "String",
                   "MessageAttribute.1.Value.StringValue": "blue"})
    _, x = query(server, {"Action": "ReceiveMessage", "Version": "2012-11-05", "QueueUrl": url,
                          "AttributeName.1": "All", "MessageAttributeName.1": "All"})
    msg = x.find(f"{NS}ReceiveMessageResult/{NS}Message")
    assert msg.find(f"{NS}Body").text == "b"
    names = {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text for a in msg.findall(f"{NS}Attribute")}
    assert names["ApproximateReceiveCount"] == "1"
    ma = msg.find(f"{NS}MessageAttribute")
    assert ma.find(f"{NS}Name").text == "color"
    assert ma.find(f"{NS}Value/{NS}StringValue").text == "blue"
    _, x = query(server, {"Action": "ListQueues", "Version": "2012-11-05", "QueueNamePrefix": name})
    assert x.find(f"{NS}ListQueuesResult/{NS}QueueUrl").text == url
    _, x = query(server, {"Action": "GetQueueAttributes", "Version": "2012-11-05", "QueueUrl": url,
                          "AttributeName.1": "All"})
    attrs = {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text
             for a in x.findall(f"{NS}GetQueueAttributesResult/{NS}Attribute")}
    assert attrs["VisibilityTimeout"] == "30"
    query(server, {"Action": "TagQueue", "Version": "2012-11-05", "QueueUrl": url,
                   "Tag.1.Key": "team", "Tag.1.Value": "blue"})
    _, x = query(server, {"Action": "ListQueueTags", "Version": "2012-11-05", "QueueUrl": url})
    tag = x.find(f"{NS}ListQueueTagsResult/{NS}Tag")
    assert (tag.find(f"{NS}Key").text, tag.find(f"{NS}Value").text) == ("team", "blue")
    _, x = query(server, {"Action": "SendMessageBatch", "Version": "2012-11-05", "QueueUrl": url,
                          "SendMessageBatchRequestEntry.1.Id": "a",
                          "SendMessageBatchRequestEntry.1.MessageBody": "x",
                          "SendMessageBatchRequestEntry.2.Id": "b",
                          "SendMessageBatchRequestEntry.2.MessageBody": "y",
                          "SendMessageBatchRequestEntry.2.DelaySeconds": "9999"})
    result = x.find(f"{NS}SendMessageBatchResult")
    assert [e.find(f"{NS}Id").text for e in result.findall(f"{NS}SendMessageBatchResultEntry")] == ["a"]
    assert [e.find(f"{NS}Id").text for e in result.findall(f"{NS}BatchResultErrorEntry")] == ["b"]
    _, x = query(server, {"Action": "ReceiveMessage", "Version": "2012-11-05", "QueueUrl": url,
                          "MaxNumberOfMessages": "10", "VisibilityTimeout": "0"})
    handles = [m.find(f"{NS}ReceiptHandle").text
               for m in x.findall(f"{NS}ReceiveMessageResult/{NS}Message")]
    assert handles
    _, x = query(server, {"Action": "DeleteMessageBatch", "Version": "2012-11-05", "QueueUrl": url,
                          "DeleteMessageBatchRequestEntry.1.Id": "d",
                          "DeleteMessageBatchRequestEntry.1.ReceiptHandle": handles[0]})
    assert x.find(f"{NS}DeleteMessageBatchResult/{NS}DeleteMessageBatchResultEntry/{NS}Id").text == "d"
    _, x = query(server, {"Action": "GetQueueUrl", "Version": "2012-11-05", "QueueName": "nope-" + name})
    assert x.tag == f"{NS}ErrorResponse"


def test_query_protocol_queue_url_from_path(server):
    """Older SDKs post to the queue's own URL and leave QueueUrl out of the form."""
    name = unique("qpath")
    _, x = query(server, {"Action": "CreateQueue", "Version": "2012-11-05", "QueueName": name})
    url = x.find(f"{NS}CreateQueueResult/{NS}QueueUrl").text
    path = urllib.parse.urlparse(url).path
    status, x = query(server, {"Action": "SendMessage", "Version": "2012-11-05",
                               "MessageBody": "via-path"}, path=path)
    assert status == 200, ET.tostring(x)
    assert x.find(f"{NS}SendMessageResult/{NS}MessageId").text
    status, x = query(server, {"Action": "ReceiveMessage", "Version": "2012-11-05"}, path=path)
    assert status == 200
    assert x.find(f"{NS}ReceiveMessageResult/{NS}Message/{NS}Body").text == "via-path"
    # Without QueueUrl on the root path the parameter is still required.
    status, x = query(server, {"Action": "SendMessage", "Version": "2012-11-05", "MessageBody": "b"})
    assert status == 400
    assert x.find(f"{NS}Error/{NS}Code").text == "MissingParameter"


def test_json_error_header(server, sqs):
    body = json.dumps({"QueueUrl": f"{server.endpoint}/000000000000/none-{unique('x')}"}).encode()
    req = urllib.request.Request(server.endpoint + "/", data=body, method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.GetQueueAttributes",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/sqs/aws4_request, "
                         "SignedHeaders=host, Signature=" + "0" * 64})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert e.value.headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"


def test_state_reset_forgets_queues(fresh_server):
    s = fresh_server()
    c = s.client("sqs")
    url = c.create_queue(QueueName="before-reset")["QueueUrl"]
    c.send_message(QueueUrl=url, MessageBody="x")
    req = urllib.request.Request(s.endpoint + "/_ferrocloud/state/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    time.sleep(1.5)
    with pytest.raises(c.exceptions.QueueDoesNotExist):
        c.receive_message(QueueUrl=url)
    assert "QueueUrls" not in c.list_queues()


# ---- durability ----

def durability_scenario(fresh_server, stop):
    s = fresh_server()
    c = s.client("sqs")
    std = c.create_queue(QueueName="durable", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    fifo = c.create_queue(QueueName="durable.fifo", Attributes={
        "FifoQueue": "true", "VisibilityTimeout": "300"})["QueueUrl"]
    for i in range(30):
        c.send_message(QueueUrl=std, MessageBody=f"s{i}")
    for i in range(10):
        c.send_message(QueueUrl=fifo, MessageBody=f"f{i}", MessageGroupId="g",
                       MessageDeduplicationId=f"d{i}")
    inflight = c.receive_message(QueueUrl=std, MaxNumberOfMessages=10)["Messages"]
    for m in inflight[:4]:
        c.delete_message(QueueUrl=std, ReceiptHandle=m["ReceiptHandle"])
    deleted_fifo = []
    for _ in range(3):
        m = c.receive_message(QueueUrl=fifo)["Messages"][0]
        c.delete_message(QueueUrl=fifo, ReceiptHandle=m["ReceiptHandle"])
        deleted_fifo.append(m["Body"])
    assert deleted_fifo == ["f0", "f1", "f2"]
    stop(s)
    s2 = fresh_server(data_dir=s.data_dir)
    c2 = s2.client("sqs")
    assert c2.get_queue_url(QueueName="durable")["QueueUrl"].endswith("/000000000000/durable")
    a = c2.get_queue_attributes(QueueUrl=std, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == "20"
    assert a["ApproximateNumberOfMessagesNotVisible"] == "6"
    assert a["VisibilityTimeout"] == "300"
    bodies = set()
    while True:
        got = c2.receive_message(QueueUrl=std, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies |= {m["Body"] for m in got}
    assert len(bodies) == 20
    assert not bodies & {m["Body"] for m in inflight}
    # FIFO: deleted messages are never delivered again; the rest come in order.
    rest = []
    while True:
        got = c2.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        for m in got:
            rest.append(m["Body"])
            c2.delete_message(QueueUrl=fifo, ReceiptHandle=m["ReceiptHandle"])
    assert rest == [f"f{i}" for i in range(3, 10)]
    # Deduplication survives the restart too.
    r = c2.send_message(QueueUrl=fifo, MessageBody="again", MessageGroupId="g",
                        MessageDeduplicationId="d5")
    assert "Messages" not in c2.receive_message(QueueUrl=fifo)
    assert r["MessageId"]


def test_durable_across_restart(fresh_server):
    durability_scenario(fresh_server, lambda s: s.stop())


def test_durable_across_kill9(fresh_server):
    durability_scenario(fresh_server, lambda s: s.kill9())
