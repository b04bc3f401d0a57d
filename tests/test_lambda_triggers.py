"""Lambda triggers, black-box: resource policies, S3 notifications invoking functions, SQS
event source mappings (batches, partial failures, enable/disable), asynchronous invocations
(retries, destinations, dead-letter queues), function URLs (NONE and AWS_IAM, through curl) and
restarts that keep mappings and queued events. The functions are real Python handlers; what
they saw is read back from CloudWatch Logs."""
import io
import json
import shutil
import signal
import subprocess
import time
import zipfile

import pytest
from botocore.exceptions import ClientError

from conftest import Server, unique

RETRY_ARGS = ["--lambda-async-retry-seconds", "1"]

HANDLER = r'''
import json

def lambda_handler(event, context):
    print("EVENT " + json.dumps(event, sort_keys=True))
    if isinstance(event, dict) and event.get("Records") and event["Records"][0].get("eventSource") == "aws:sqs":
        failed = []
        for r in event["Records"]:
            print("SQS-BODY " + r["body"])
            if r["body"].startswith("fail"):
                failed.append({"itemIdentifier": r["messageId"]})
        print("SQS-BATCH %d" % len(event["Records"]))
        return {"batchItemFailures": failed}
    if isinstance(event, dict) and event.get("Records") and event["Records"][0].get("eventSource") == "aws:s3":
        print("S3-KEY " + event["Records"][0]["s3"]["object"]["key"])
        return "ok"
    if isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event:
        if event["rawPath"] == "/boom":
            raise Exception("boom")
        if event["rawPath"] == "/plain":
            return {"just": "json"}
        return {
            "statusCode": 201,
            "headers": {"x-echo": "yes", "content-type": "application/json"},
            "cookies": ["flavour=oat"],
            "body": json.dumps({
                "path": event["rawPath"],
                "rawQuery": event["rawQueryString"],
                "query": event.get("queryStringParameters"),
                "method": event["requestContext"]["http"]["method"],
                "body": event.get("body"),
                "cookies": event.get("cookies"),
                "iam": "authorizer" in event["requestContext"],
                "account": event["requestContext"]["accountId"],
            }),
        }
    if isinstance(event, dict) and event.get("fail"):
        print("FAILING " + str(event.get("tag")))
        raise Exception("asked to fail")
    print("OK " + str(event.get("tag") if isinstance(event, dict) else event))
    return {"ok": True, "tag": event.get("tag") if isinstance(event, dict) else None}
'''


def code_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lambda_function.py", HANDLER)
    return buf.getvalue()


def err(excinfo):
    return excinfo.value.response["Error"]


def wait_for(what, fn, timeout=180, every=0.5, server=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    logs = ("\nserver log:\n" + server.logs()) if server else ""
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}{logs}")


def role(server):
    iam = server.client("iam")
    name = unique("lambda-role")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def make_function(server, prefix="fn", **extra):
    lam = server.client("lambda")
    name = unique(prefix)
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role(server),
                        Handler="lambda_function.lambda_handler", Code={"ZipFile": code_zip()},
                        Timeout=30, **extra)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return name, lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]


def log_lines(server, name):
    logs = server.client("logs")
    out = []
    kw = {"logGroupName": f"/aws/lambda/{name}"}
    try:
        while True:
            r = logs.filter_log_events(**kw)
            out.extend(e["message"] for e in r.get("events", []))
            if not r.get("nextToken"):
                break
            kw["nextToken"] = r["nextToken"]
    except ClientError:
        return []
    return [l.rstrip("\n") for line in out for l in line.splitlines()]


def wait_log(server, name, needle, count=1, timeout=180):
    return wait_for(f"{needle!r} x{count} in the logs of {name}",
                    lambda: (lambda ls: ls if len([l for l in ls if needle in l]) >= count else None)(log_lines(server, name)),
                    timeout=timeout, server=server)


def make_queue(server, prefix="q", **attrs):
    sqs = server.client("sqs")
    url = sqs.create_queue(QueueName=unique(prefix), Attributes={k: str(v) for k, v in attrs.items()})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive_all(server, url, want, timeout=180):
    sqs = server.client("sqs")
    got = []

    def poll():
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in r.get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return len(got) >= want

    wait_for(f"{want} messages on {url}", poll, timeout=timeout, server=server)
    return got


@pytest.fixture(scope="module")
def srv():
    s = Server(extra_args=RETRY_ARGS).start()
    yield s
    s.stop()
    shutil.rmtree(s.data_dir, ignore_errors=True)


# ---- resource policies ----

def test_permissions_policy_lifecycle(srv):
    lam = srv.client("lambda")
    name, arn = make_function(srv, "perm")
    st = lam.add_permission(FunctionName=name, StatementId="s3invoke", Action="lambda:InvokeFunction",
                            Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::some-bucket",
                            SourceAccount="000000000000")
    statement = json.loads(st["Statement"])
    assert statement["Sid"] == "s3invoke"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Resource"] == arn
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == "arn:aws:s3:::some-bucket"
    lam.add_permission(FunctionName=name, StatementId="acct", Action="lambda:GetFunction", Principal="111122223333")

    got = lam.get_policy(FunctionName=name)
    policy = json.loads(got["Policy"])
    assert policy["Version"] == "2012-10-17"
    assert [s["Sid"] for s in policy["Statement"]] == ["s3invoke", "acct"]
    assert policy["Statement"][1]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert got["RevisionId"]

    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=name, StatementId="acct", Action="lambda:InvokeFunction", Principal="*")
    assert err(e)["Code"] == "ResourceConflictException"
    assert err(e)["Message"] == ("The statement id (acct) provided already exists. Please provide a new "
                                 "statement id, or remove the existing statement.")
    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=name, StatementId="x", Action="lambda:InvokeFunction",
                           Principal="*", Qualifier="$LATEST")
    assert err(e)["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=unique("nosuch"), StatementId="x", Action="lambda:InvokeFunction", Principal="*")
    assert err(e)["Code"] == "ResourceNotFoundException"

    lam.remove_permission(FunctionName=name, StatementId="s3invoke")
    with pytest.raises(ClientError) as e:
        lam.remove_permission(FunctionName=name, StatementId="s3invoke")
    assert err(e)["Code"] == "ResourceNotFoundException"
    lam.remove_permission(FunctionName=name, StatementId="acct")
    with pytest.raises(ClientError) as e:
        lam.get_policy(FunctionName=name)
    assert err(e)["Code"] == "ResourceNotFoundException"

    # The CLI sees the same.
    srv.aws("lambda", "add-permission", "--function-name", name, "--statement-id", "cli",
            "--action", "lambda:InvokeFunction", "--principal", "sns.amazonaws.com")
    pol = json.loads(srv.aws_json("lambda", "get-policy", "--function-name", name)["Policy"])
    assert pol["Statement"][0]["Principal"] == {"Service": "sns.amazonaws.com"}


# ---- S3 notifications ----

def test_s3_notification_needs_permission_then_invokes(srv):
    lam, s3 = srv.client("lambda"), srv.client("s3")
    name, arn = make_function(srv, "s3fn")
    bucket = unique("trig").lower()
    s3.create_bucket(Bucket=bucket)
    conf = {"LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"],
                                              "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}]}
    with pytest.raises(ClientError) as e:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=conf)
    assert err(e)["Code"] == "InvalidArgument"
    assert err(e)["Message"] == "Unable to validate the following destination configurations"

    # A permission for another bucket is not enough.
    lam.add_permission(FunctionName=name, StatementId="other", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::not-this-one")
    with pytest.raises(ClientError):
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=conf)

    lam.add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}")
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=conf)
    s3.put_object(Bucket=bucket, Key="in/hello.txt", Body=b"hi")
    s3.put_object(Bucket=bucket, Key="elsewhere.txt", Body=b"no")
    lines = wait_log(srv, name, "S3-KEY in/hello.txt")
    event = next(json.loads(l[len("EVENT "):]) for l in lines if l.startswith("EVENT ") and "in/hello.txt" in l)
    rec = event["Records"][0]
    assert rec["eventSource"] == "aws:s3"
    assert rec["eventName"] == "ObjectCreated:Put"
    assert rec["s3"]["bucket"]["name"] == bucket
    assert rec["s3"]["object"]["size"] == 2
    assert not any("elsewhere.txt" in l for l in lines if l.startswith("S3-KEY"))


# ---- SQS event source mappings ----

def test_sqs_mapping_batches_partial_failures_and_dlq(srv):
    lam, sqs = srv.client("lambda"), srv.client("sqs")
    name, arn = make_function(srv, "sqsfn")
    dlq_url, dlq_arn = make_queue(srv, "dlq")
    url, qarn = make_queue(srv, "src", VisibilityTimeout=4,
                           RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    # Messages wait in the queue until the mapping exists: the first batch has all of them.
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"ok-{i}",
                         MessageAttributes={"n": {"DataType": "Number", "StringValue": str(i)}})
    sqs.send_message(QueueUrl=url, MessageBody="fail-me")
    m = lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name, BatchSize=10,
                                        MaximumBatchingWindowInSeconds=1,
                                        FunctionResponseTypes=["ReportBatchItemFailures"])
    uuid = m["UUID"]
    assert m["State"] == "Creating"
    assert m["BatchSize"] == 10
    assert m["FunctionArn"] == arn
    assert m["EventSourceArn"] == qarn
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    wait_for("Enabled", lambda: lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled")

    lines = wait_log(srv, name, "SQS-BODY ok-4")
    for i in range(5):
        assert f"SQS-BODY ok-{i}" in lines
    batches = [int(l.split()[1]) for l in lines if l.startswith("SQS-BATCH")]
    assert max(batches) > 1
    event = next(json.loads(l[len("EVENT "):]) for l in lines if l.startswith("EVENT ") and "ok-0" in l)
    rec = next(r for r in event["Records"] if r["body"] == "ok-0")
    assert rec["eventSource"] == "aws:sqs"
    assert rec["eventSourceARN"] == qarn
    assert rec["awsRegion"] == "us-east-1"
    assert set(rec["attributes"]) >= {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                      "ApproximateFirstReceiveTimestamp"}
    assert rec["messageAttributes"]["n"]["stringValue"] == "0"
    assert rec["messageAttributes"]["n"]["dataType"] == "Number"
    assert rec["md5OfBody"] and rec["receiptHandle"] and rec["messageId"]

    # The reported failure is retried, then the queue's redrive policy moves it to the DLQ.
    dead = receive_all(srv, dlq_url, 1)
    assert [d["Body"] for d in dead] == ["fail-me"]
    wait_log(srv, name, "SQS-BODY fail-me", count=2)
    # Successes were deleted: nothing else is left.
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert len([l for l in log_lines(srv, name) if l == "SQS-BODY ok-1"]) == 1

    # Listing and filters.
    listed = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert [x["UUID"] for x in listed] == [uuid]
    assert [x["UUID"] for x in lam.list_event_source_mappings(EventSourceArn=qarn)["EventSourceMappings"]] == [uuid]
    assert lam.list_event_source_mappings(EventSourceArn=dlq_arn)["EventSourceMappings"] == []

    # Disabled: messages stay in the queue.
    u = lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    assert u["State"] == "Disabling"
    wait_for("Disabled", lambda: lam.get_event_source_mapping(UUID=uuid)["State"] == "Disabled")
    sqs.send_message(QueueUrl=url, MessageBody="while-disabled")
    time.sleep(3)
    assert "SQS-BODY while-disabled" not in log_lines(srv, name)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "1"
    # Enabled again (and a new batch size): they flow.
    u = lam.update_event_source_mapping(UUID=uuid, Enabled=True, BatchSize=5)
    assert u["State"] == "Enabling" and u["BatchSize"] == 5
    wait_log(srv, name, "SQS-BODY while-disabled")
    wait_for("Enabled", lambda: lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled")

    d = lam.delete_event_source_mapping(UUID=uuid)
    assert d["State"] == "Deleting"

    def gone():
        try:
            lam.get_event_source_mapping(UUID=uuid)
            return False
        except ClientError as e:
            return e.response["Error"]["Code"] == "ResourceNotFoundException"

    wait_for("mapping deleted", gone)


def test_sqs_mapping_whole_batch_failure_without_reporting(srv):
    lam, sqs = srv.client("lambda"), srv.client("sqs")
    name, _ = make_function(srv, "sqsall")
    dlq_url, dlq_arn = make_queue(srv, "dlq2")
    url, qarn = make_queue(srv, "src2", VisibilityTimeout=1,
                           RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}))
    # Without ReportBatchItemFailures the returned failures are ignored: the batch succeeded.
    lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name, BatchSize=1)
    sqs.send_message(QueueUrl=url, MessageBody="fail-but-ignored")
    wait_log(srv, name, "SQS-BODY fail-but-ignored")

    def drained():
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"

    wait_for("queue drained", drained)
    assert sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages") is None


def test_sqs_mapping_filter_criteria(srv):
    lam, sqs = srv.client("lambda"), srv.client("sqs")
    name, _ = make_function(srv, "sqsfilter")
    url, qarn = make_queue(srv, "filtered")
    with pytest.raises(ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name,
                                        FilterCriteria={"Filters": [{"Pattern": "{not json"}]})
    assert err(e)["Code"] == "InvalidParameterValueException"
    m = lam.create_event_source_mapping(
        EventSourceArn=qarn, FunctionName=name, BatchSize=1,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["keep"]}})}]})
    assert json.loads(m["FilterCriteria"]["Filters"][0]["Pattern"]) == {"body": {"kind": ["keep"]}}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "drop", "n": 1}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "keep", "n": 2}))

    def drained():
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"

    lines = wait_log(srv, name, '"n": 2')
    wait_for("queue drained", drained)
    assert not any('"kind": "drop"' in l for l in log_lines(srv, name))


def test_sqs_mapping_list_pagination(srv):
    lam = srv.client("lambda")
    name, _ = make_function(srv, "pages")
    made = set()
    for i in range(3):
        _, qarn = make_queue(srv, f"page{i}")
        made.add(lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name, Enabled=False)["UUID"])
    seen, marker = [], None
    while True:
        kw = {"Marker": marker} if marker else {}
        page = lam.list_event_source_mappings(FunctionName=name, MaxItems=1, **kw)
        assert len(page["EventSourceMappings"]) <= 1
        seen.extend(m["UUID"] for m in page["EventSourceMappings"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert sorted(seen) == sorted(made)
    for u in made:
        lam.delete_event_source_mapping(UUID=u)


def test_sqs_mapping_errors(srv):
    lam = srv.client("lambda")
    name, _ = make_function(srv, "sqserr")
    _, qarn = make_queue(srv, "e")
    with pytest.raises(ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn="arn:aws:sqs:us-east-1:000000000000:" + unique("none"),
                                        FunctionName=name)
    assert err(e)["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name, BatchSize=100)
    assert err(e)["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=unique("nofn"))
    assert err(e)["Code"] == "ResourceNotFoundException"
    m = lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name, Enabled=False)
    with pytest.raises(ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name)
    assert err(e)["Code"] == "ResourceConflictException"
    assert m["UUID"] in err(e)["Message"]
    with pytest.raises(ClientError) as e:
        lam.get_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000")
    assert err(e)["Code"] == "ResourceNotFoundException"
    wait_for("Disabled", lambda: lam.get_event_source_mapping(UUID=m["UUID"])["State"] == "Disabled")


# ---- asynchronous invocations ----

def test_async_success_and_failure_destinations_with_retries(srv):
    lam, sqs = srv.client("lambda"), srv.client("sqs")
    name, arn = make_function(srv, "async")
    ok_url, ok_arn = make_queue(srv, "onsuccess")
    fail_url, fail_arn = make_queue(srv, "onfailure")
    c = lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=3600,
        DestinationConfig={"OnSuccess": {"Destination": ok_arn}, "OnFailure": {"Destination": fail_arn}})
    assert c["FunctionArn"] == arn + ":$LATEST"
    assert c["MaximumRetryAttempts"] == 1
    assert c["DestinationConfig"]["OnFailure"]["Destination"] == fail_arn

    r = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": "good"}))
    assert r["StatusCode"] == 202
    rec = json.loads(receive_all(srv, ok_url, 1)[0]["Body"])
    assert rec["version"] == "1.0"
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestContext"]["functionArn"] == arn + ":$LATEST"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert rec["requestPayload"] == {"tag": "good"}
    assert rec["responseContext"]["statusCode"] == 200
    assert rec["responseContext"]["executedVersion"] == "$LATEST"
    assert rec["responsePayload"] == {"ok": True, "tag": "good"}

    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": "bad", "fail": True}))
    rec = json.loads(receive_all(srv, fail_url, 1)[0]["Body"])
    assert rec["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestContext"]["approximateInvokeCount"] == 2
    assert rec["responseContext"]["functionError"] == "Unhandled"
    assert rec["responsePayload"]["errorMessage"] == "asked to fail"
    assert rec["requestPayload"] == {"tag": "bad", "fail": True}
    wait_log(srv, name, "FAILING bad", count=2)

    # Get / Update / List / Delete.
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumEventAgeInSeconds"] == 3600
    up = lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert up["MaximumRetryAttempts"] == 0
    assert up["DestinationConfig"]["OnSuccess"]["Destination"] == ok_arn
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [x["FunctionArn"] for x in listed] == [arn + ":$LATEST"]
    lam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert err(e)["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={
            "OnSuccess": {"Destination": "arn:aws:iam::000000000000:role/nope"}})
    assert err(e)["Code"] == "InvalidParameterValueException"


def test_async_failure_to_function_destination(srv):
    lam = srv.client("lambda")
    name, _ = make_function(srv, "src")
    target, target_arn = make_function(srv, "dest")
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0,
                                         DestinationConfig={"OnFailure": {"Destination": target_arn}})
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": "to-fn", "fail": True}))
    lines = wait_log(srv, target, '"condition": "RetriesExhausted"')
    rec = next(json.loads(l[len("EVENT "):]) for l in lines if l.startswith("EVENT ") and "RetriesExhausted" in l)
    assert rec["requestPayload"] == {"tag": "to-fn", "fail": True}
    assert rec["requestContext"]["approximateInvokeCount"] == 1


def test_async_event_age_exceeded_while_throttled(srv):
    """Throttled events are retried (not counted as attempts) until MaximumEventAgeInSeconds;
    then the on-failure destination gets them with condition EventAgeExceeded."""
    lam = srv.client("lambda")
    name, arn = make_function(srv, "aged")
    fail_url, fail_arn = make_queue(srv, "aged-fail")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60,
                                         DestinationConfig={"OnFailure": {"Destination": fail_arn}})
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": "old"}))
    rec = json.loads(receive_all(srv, fail_url, 1, timeout=180)[0]["Body"])
    assert rec["requestContext"]["condition"] == "EventAgeExceeded"
    assert rec["requestContext"]["approximateInvokeCount"] == 0
    assert rec["requestPayload"] == {"tag": "old"}
    assert "OK old" not in log_lines(srv, name)


def test_async_dead_letter_queue(srv):
    lam = srv.client("lambda")
    dlq_url, dlq_arn = make_queue(srv, "fn-dlq")
    name, _ = make_function(srv, "dlqfn", DeadLetterConfig={"TargetArn": dlq_arn})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": "dead", "fail": True}))
    sqs = srv.client("sqs")
    msgs = wait_for("a dead letter", lambda: sqs.receive_message(
        QueueUrl=dlq_url, WaitTimeSeconds=1, MessageAttributeNames=["All"]).get("Messages"), server=srv)
    assert json.loads(msgs[0]["Body"]) == {"tag": "dead", "fail": True}
    attrs = msgs[0]["MessageAttributes"]
    assert attrs["ErrorMessage"]["StringValue"] == "asked to fail"
    assert attrs["RequestID"]["StringValue"]
    assert attrs["ErrorCode"]["StringValue"] == "200"
    wait_log(srv, name, "FAILING dead", count=2)


# ---- function URLs ----

def curl(*args):
    p = subprocess.run(["curl", "-s", "-i", "--max-time", "60", *args], capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return status, headers, body


def test_function_url_public(srv):
    lam = srv.client("lambda")
    name, arn = make_function(srv, "url")
    c = lam.create_function_url_config(FunctionName=name, AuthType="NONE",
                                       Cors={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"]})
    url = c["FunctionUrl"]
    assert url.startswith("http://") and url.endswith(f".lambda-url.us-east-1.localhost:{srv.port}/")
    url_id = url[len("http://"):].split(".")[0]
    assert len(url_id) == 32 and url_id.isalnum() and url_id == url_id.lower()
    assert c["FunctionArn"] == arn and c["AuthType"] == "NONE"
    with pytest.raises(ClientError) as e:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert err(e)["Code"] == "ResourceConflictException"
    assert lam.get_function_url_config(FunctionName=name)["FunctionUrl"] == url
    assert [x["FunctionUrl"] for x in lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]] == [url]

    # Without the public permissions the URL answers 403.
    status, _, body = curl(url + "path?x=1")
    assert status == 403 and json.loads(body) == {"Message": "Forbidden"}
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess",
                       Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="FunctionURLInvokeAllowPublicAccess",
                       Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)

    status, headers, body = curl(url + "some/path?x=1&y=two&x=3", "-X", "POST", "-H", "content-type: text/plain",
                                 "-H", "Origin: https://app.example", "-b", "a=1; b=2", "--data", "hello")
    assert status == 201, body + srv.logs()
    assert headers["x-echo"] == ["yes"]
    assert headers["set-cookie"] == ["flavour=oat"]
    assert headers["access-control-allow-origin"] == ["https://app.example"]
    got = json.loads(body)
    assert got["path"] == "/some/path"
    assert got["rawQuery"] == "x=1&y=two&x=3"
    assert got["query"] == {"x": "1,3", "y": "two"}
    assert got["method"] == "POST"
    assert got["body"] == "hello"
    assert got["cookies"] == ["a=1", "b=2"]
    assert got["iam"] is False and got["account"] == "anonymous"

    status, headers, body = curl(url + "plain")
    assert status == 200 and json.loads(body) == {"just": "json"}
    assert headers["content-type"] == ["application/json"]
    status, _, body = curl(url + "boom")
    assert status == 502 and json.loads(body) == {"Message": "Internal Server Error"}

    # Update to AWS_IAM, then delete.
    u = lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert u["AuthType"] == "AWS_IAM" and u["FunctionUrl"] == url
    assert curl(url)[0] == 403
    lam.delete_function_url_config(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lam.get_function_url_config(FunctionName=name)
    assert err(e)["Code"] == "ResourceNotFoundException"
    assert curl(url)[0] == 403


def test_function_url_of_an_alias_and_policy_revisions(srv):
    lam = srv.client("lambda")
    name, arn = make_function(srv, "urlalias")
    v = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=v)
    with pytest.raises(ClientError) as e:
        lam.create_function_url_config(FunctionName=name, Qualifier="1", AuthType="NONE")
    assert err(e)["Code"] in ("ValidationException", "InvalidParameterValueException")
    c = lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert c["FunctionArn"] == arn + ":live"
    # The unqualified function has no URL; the alias has one.
    with pytest.raises(ClientError):
        lam.get_function_url_config(FunctionName=name)
    assert lam.get_function_url_config(FunctionName=name, Qualifier="live")["FunctionUrl"] == c["FunctionUrl"]
    # A permission on the unqualified function does not open the alias's URL.
    lam.add_permission(FunctionName=name, StatementId="url", Action="lambda:InvokeFunctionUrl",
                       Principal="*", FunctionUrlAuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="inv", Action="lambda:InvokeFunction",
                       Principal="*", InvokedViaFunctionUrl=True)
    assert curl(c["FunctionUrl"] + "a")[0] == 403
    lam.add_permission(FunctionName=name, Qualifier="live", StatementId="url",
                       Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    rev = lam.get_policy(FunctionName=name, Qualifier="live")["RevisionId"]
    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=name, Qualifier="live", StatementId="inv", RevisionId="stale",
                           Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)
    assert err(e)["Code"] == "PreconditionFailedException"
    lam.add_permission(FunctionName=name, Qualifier="live", StatementId="inv", RevisionId=rev,
                       Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)
    statement = json.loads(lam.get_policy(FunctionName=name, Qualifier="live")["Policy"])["Statement"][1]
    assert statement["Resource"] == arn + ":live"
    assert statement["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
    status, _, body = curl(c["FunctionUrl"] + "via-alias")
    assert status == 201, body + srv.logs()
    assert json.loads(body)["path"] == "/via-alias"


def test_function_url_iam(srv):
    lam = srv.client("lambda")
    name, _ = make_function(srv, "urliam")
    url = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    assert curl(url + "x")[0] == 403
    status, _, body = curl(url + "signed?q=1", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", "test:test")
    assert status == 201, body + srv.logs()
    got = json.loads(body)
    assert got["iam"] is True and got["path"] == "/signed" and got["query"] == {"q": "1"}
    assert got["account"] == "000000000000"


def test_function_url_iam_in_strict_mode_checks_the_signature(fresh_server):
    s = fresh_server(extra_args=["--auth", "strict"])
    lam = s.client("lambda")
    name, _ = make_function(s, "urlstrict")
    url = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    assert curl(url + "x")[0] == 403
    # A signature made with the wrong secret is refused; the root credentials' one is accepted.
    status, _, _ = curl(url + "x", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", "test:wrong")
    assert status == 403
    status, _, _ = curl(url + "x", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", "unknown:test")
    assert status == 403
    status, _, body = curl(url + "ok", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", "test:test")
    assert status == 201, body + s.logs()
    # An IAM user's access key works too.
    iam = s.client("iam")
    iam.create_user(UserName="url-caller")
    key = iam.create_access_key(UserName="url-caller")["AccessKey"]
    status, _, body = curl(url + "user", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user",
                           f"{key['AccessKeyId']}:{key['SecretAccessKey']}")
    assert status == 201, body + s.logs()


# ---- deleting functions, restarts ----

def test_function_delete_drops_triggers(srv):
    lam = srv.client("lambda")
    name, _ = make_function(srv, "gone")
    _, qarn = make_queue(srv, "gone")
    lam.add_permission(FunctionName=name, StatementId="s", Action="lambda:InvokeFunction", Principal="*")
    lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    m = lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name, Enabled=False)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.delete_function(FunctionName=name)

    def mapping_gone():
        try:
            lam.get_event_source_mapping(UUID=m["UUID"])
            return False
        except ClientError:
            return True

    wait_for("mapping gone", mapping_gone)
    # Recreated under the same name, the function starts clean.
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role(srv),
                        Handler="lambda_function.lambda_handler", Code={"ZipFile": code_zip()})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for call in (lambda: lam.get_policy(FunctionName=name),
                 lambda: lam.get_function_url_config(FunctionName=name),
                 lambda: lam.get_function_event_invoke_config(FunctionName=name)):
        with pytest.raises(ClientError) as e:
            call()
        assert err(e)["Code"] == "ResourceNotFoundException"


def test_restart_keeps_mappings_and_queued_events(fresh_server):
    s = fresh_server(extra_args=["--lambda-async-retry-seconds", "4"])
    lam, sqs = s.client("lambda"), s.client("sqs")
    name, _ = make_function(s, "restart")
    url, qarn = make_queue(s, "restart")
    fail_url, fail_arn = make_queue(s, "restart-fail")
    m = lam.create_event_source_mapping(EventSourceArn=qarn, FunctionName=name, BatchSize=1)
    wait_for("Enabled", lambda: lam.get_event_source_mapping(UUID=m["UUID"])["State"] == "Enabled")
    furl = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                         DestinationConfig={"OnFailure": {"Destination": fail_arn}})
    # The first attempt fails; the retry is due 4 s later, after the server was killed.
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": "survivor", "fail": True}))
    wait_log(s, name, "FAILING survivor")
    s.kill9()

    s2 = Server(data_dir=s.data_dir, extra_args=["--lambda-async-retry-seconds", "4"]).start()
    try:
        lam2, sqs2 = s2.client("lambda"), s2.client("sqs")
        assert lam2.get_event_source_mapping(UUID=m["UUID"])["State"] in ("Enabled", "Enabling", "Creating")
        url2 = sqs2.get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"]
        sqs2.send_message(QueueUrl=url2, MessageBody="after-restart")
        wait_log(s2, name, "SQS-BODY after-restart")
        fail_url2 = sqs2.get_queue_url(QueueName=fail_url.rsplit("/", 1)[1])["QueueUrl"]
        rec = json.loads(receive_all(s2, fail_url2, 1)[0]["Body"])
        assert rec["requestPayload"]["tag"] == "survivor"
        assert rec["requestContext"]["condition"] == "RetriesExhausted"
        assert rec["requestContext"]["approximateInvokeCount"] == 2
        # The URL keeps its id; only the port follows the new server.
        url_id = furl[len("http://"):].split(".")[0]
        furl2 = lam2.get_function_url_config(FunctionName=name)["FunctionUrl"]
        assert furl2 == f"http://{url_id}.lambda-url.us-east-1.localhost:{s2.port}/"
        status, _, body = curl(furl2 + "again", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", "test:test")
        assert status == 201 and json.loads(body)["path"] == "/again"
    finally:
        s2.stop(signal.SIGTERM)
