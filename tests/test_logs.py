"""CloudWatch Logs through the AWS CLI and boto3."""
import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import unique


def now_ms():
    return int(time.time() * 1000)


def test_cli_group_stream_put_get_filter(server):
    g = unique("/app/web")
    server.aws("logs", "create-log-group", "--log-group-name", g)
    server.aws("logs", "create-log-stream", "--log-group-name", g, "--log-stream-name", "i-1")
    t = now_ms()
    events = json.dumps([{"timestamp": t, "message": "GET /index 200"},
                         {"timestamp": t + 1, "message": "ERROR something broke"},
                         {"timestamp": t + 2, "message": json.dumps({"level": "WARN", "latency": 250})}])
    server.aws("logs", "put-log-events", "--log-group-name", g, "--log-stream-name", "i-1",
               "--log-events", events)
    got = server.aws_json("logs", "get-log-events", "--log-group-name", g, "--log-stream-name", "i-1",
                          "--start-from-head")
    assert [e["message"] for e in got["events"]][:2] == ["GET /index 200", "ERROR something broke"]
    f = server.aws_json("logs", "filter-log-events", "--log-group-name", g, "--filter-pattern", "ERROR")
    assert [e["message"] for e in f["events"]] == ["ERROR something broke"]
    f = server.aws_json("logs", "filter-log-events", "--log-group-name", g,
                        "--filter-pattern", '{ $.latency > 100 }')
    assert len(f["events"]) == 1 and f["events"][0]["logStreamName"] == "i-1"
    groups = server.aws_json("logs", "describe-log-groups", "--log-group-name-prefix", g)["logGroups"]
    assert groups[0]["logGroupName"] == g
    assert groups[0]["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{g}:*"


def test_errors(server):
    logs = server.client("logs")
    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName=unique("missing"), logStreamName="s")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    g = unique("dup")
    logs.create_log_group(logGroupName=g)
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName=g)
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"


def test_boto3_paginates_1000_log_streams(server):
    logs = server.client("logs")
    g = unique("many")
    logs.create_log_group(logGroupName=g)
    for i in range(1000):
        logs.create_log_stream(logGroupName=g, logStreamName=f"stream-{i:04d}")
    names = []
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=g):
        names += [s["logStreamName"] for s in page["logStreams"]]
    assert names == [f"stream-{i:04d}" for i in range(1000)]


def test_get_log_events_tokens(server):
    logs = server.client("logs")
    g = unique("tokens")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    t = now_ms()
    logs.put_log_events(logGroupName=g, logStreamName="s",
                        logEvents=[{"timestamp": t + i, "message": f"m{i}"} for i in range(25)])
    seen, token = [], None
    while True:
        kw = {"nextToken": token} if token else {"startFromHead": True}
        r = logs.get_log_events(logGroupName=g, logStreamName="s", limit=10, **kw)
        seen += [e["message"] for e in r["events"]]
        if r["nextForwardToken"] == token:
            break
        token = r["nextForwardToken"]
    assert seen == [f"m{i}" for i in range(25)]


def test_retention_policy(server):
    logs = server.client("logs")
    g = unique("ret")
    logs.create_log_group(logGroupName=g)
    logs.put_retention_policy(logGroupName=g, retentionInDays=7)
    assert logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]["retentionInDays"] == 7
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=g, retentionInDays=8)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
