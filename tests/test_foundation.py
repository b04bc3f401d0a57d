"""The server itself: health, status, routing, errors for unknown and unimplemented operations,
bad input, body limits, state that survives restarts and kill -9, reset, export/import."""
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import BIN, unique


def http(server, method, path, body=b"", headers=None):
    req = urllib.request.Request(server.endpoint + path, data=body if method != "GET" else None,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_health_lists_every_service(server):
    status, headers, body = http(server, "GET", "/_ferrocloud/health")
    assert status == 200
    health = json.loads(body)
    for svc in ["ec2", "ecs", "ecr", "eks", "elasticbeanstalk", "lambda", "batch", "lightsail", "elb",
                "elbv2", "autoscaling", "sts", "iam", "logs", "cloudwatch", "s3", "sqs"]:
        assert svc in health["services"]
    assert health["services"]["sts"] == "available"
    assert health["services"]["iam"] == "available"
    assert health["services"]["logs"] == "available"


def test_status_command_prints_health(server):
    p = subprocess.run([BIN, "status", "--port", str(server.port)], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["services"]["sts"] == "available"


def test_status_command_without_server_fails():
    p = subprocess.run([BIN, "status", "--port", "1"], capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert "no ferrocloud server" in p.stderr


def test_unimplemented_operation_as_the_cli_prints_it(server):
    code, out, err = server.aws("ec2", "describe-addresses", check=False)
    assert code != 0
    assert "An error occurred (NotImplemented) when calling the DescribeAddresses operation" in err
    assert "ec2:DescribeAddresses is not implemented" in err


def test_unimplemented_operation_boto3_status_501(server):
    ecs = server.client("ecs")
    with pytest.raises(ClientError) as e:
        ecs.list_clusters()
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_unknown_service_is_an_aws_error(server):
    status, _, body = http(server, "POST", "/", b"Action=Nope&Version=1999-01-01",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert b"<Code>UnknownService</Code>" in body


def test_unknown_action_of_known_service(server):
    status, _, body = http(server, "POST", "/", b"Action=FlyToTheMoon&Version=2011-06-15",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert b"<Code>InvalidAction</Code>" in body


def test_malformed_json_body_is_a_4xx(server):
    status, headers, body = http(server, "POST", "/", b"{not json",
                                 {"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": "Logs_20140328.CreateLogGroup"})
    assert 400 <= status < 500
    assert b"SerializationException" in body or "SerializationException" in headers.get("x-amzn-ErrorType", "")


def test_wrong_member_type_is_a_4xx_and_changes_nothing(server):
    name = unique("typed")
    status, _, body = http(server, "POST", "/", json.dumps({"logGroupName": 42}).encode(),
                           {"Content-Type": "application/x-amz-json-1.1",
                            "X-Amz-Target": "Logs_20140328.CreateLogGroup"})
    assert 400 <= status < 500, body
    logs = server.client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert groups == []


def test_missing_required_member(server):
    iam = server.client("iam")
    status, _, body = http(server, "POST", "/", b"Action=CreateRole&Version=2010-05-08&RoleName=x",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert b"ValidationError" in body
    with pytest.raises(ClientError):
        iam.get_role(RoleName="x")


def test_oversized_body_is_rejected(fresh_server):
    s = fresh_server(extra_args=["--max-body-bytes", "1024"])
    logs = s.client("logs")
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName="g" * 2000)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_request_id_on_every_response(server):
    sts = server.client("sts")
    r = sts.get_caller_identity()
    assert len(r["ResponseMetadata"]["RequestId"]) == 36


def test_twelve_digit_access_key_names_its_account(server):
    sts = server.client("sts", key="111122223333")
    assert sts.get_caller_identity()["Account"] == "111122223333"
    logs_a = server.client("logs", key="111122223333")
    logs_b = server.client("logs", key="444455556666")
    name = unique("acct")
    logs_a.create_log_group(logGroupName=name)
    assert [g["logGroupName"] for g in logs_a.describe_log_groups(logGroupNamePrefix=name)["logGroups"]] == [name]
    assert logs_b.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []


def test_regions_are_separate(server):
    name = unique("region")
    server.client("logs", region="eu-west-1").create_log_group(logGroupName=name)
    assert server.client("logs", region="us-west-2").describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    arn = server.client("logs", region="eu-west-1").describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["arn"]
    assert ":eu-west-1:" in arn


def test_account_id_flag(fresh_server):
    s = fresh_server(extra_args=["--account-id", "123456789012"])
    assert s.client("sts").get_caller_identity()["Account"] == "123456789012"


def test_state_survives_restart(fresh_server):
    s = fresh_server()
    s.client("iam").create_role(RoleName="survivor", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                  "Action": "sts:AssumeRole"}]}))
    assert s.stop() == 0, "graceful shutdown exits 0"
    s2 = fresh_server(data_dir=s.data_dir)
    assert s2.client("iam").get_role(RoleName="survivor")["Role"]["RoleName"] == "survivor"


def test_kill9_loses_no_acknowledged_write(fresh_server):
    s = fresh_server()
    logs = s.client("logs")
    logs.create_log_group(logGroupName="durable")
    logs.create_log_stream(logGroupName="durable", logStreamName="s")
    acknowledged = []
    import time
    base = int(time.time() * 1000)
    for i in range(50):
        logs.put_log_events(logGroupName="durable", logStreamName="s",
                            logEvents=[{"timestamp": base + i, "message": f"event {i}"}])
        acknowledged.append(f"event {i}")
    s.kill9()
    s2 = fresh_server(data_dir=s.data_dir)
    events = s2.client("logs").get_log_events(logGroupName="durable", logStreamName="s",
                                               startFromHead=True)["events"]
    assert [e["message"] for e in events] == acknowledged


def test_state_reset(fresh_server):
    s = fresh_server()
    s.client("logs").create_log_group(logGroupName="gone")
    status, _, _ = http(s, "POST", "/_ferrocloud/state/reset")
    assert status == 200
    assert s.client("logs").describe_log_groups()["logGroups"] == []


def test_state_export_import(fresh_server, tmp_path):
    a = fresh_server()
    a.client("logs").create_log_group(logGroupName="moved")
    a.stop()
    export = tmp_path / "state.export"
    p = subprocess.run([BIN, "state", "export", str(export), "--data-dir", a.data_dir],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    other_dir = str(tmp_path / "other")
    p = subprocess.run([BIN, "state", "import", str(export), "--data-dir", other_dir],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    b = fresh_server(data_dir=other_dir)
    names = [g["logGroupName"] for g in b.client("logs").describe_log_groups()["logGroups"]]
    assert names == ["moved"]


def test_ephemeral_keeps_nothing_on_disk(fresh_server, tmp_path):
    d = tmp_path / "eph"
    d.mkdir()
    s = fresh_server(data_dir=str(d), extra_args=["--ephemeral"])
    s.client("logs").create_log_group(logGroupName="temp")
    assert s.client("logs").describe_log_groups()["logGroups"][0]["logGroupName"] == "temp"
    assert not any(n.endswith(".db") for n in os.listdir(d))


def test_sigint_shuts_down_gracefully(fresh_server):
    s = fresh_server()
    s.client("sts").get_caller_identity()
    assert s.stop(signal.SIGINT) == 0


def test_env_var_configuration(fresh_server):
    s = fresh_server(env={"FERROCLOUD_ACCOUNT_ID": "999988887777"})
    assert s.client("sts").get_caller_identity()["Account"] == "999988887777"


def test_structured_request_log_lines(fresh_server):
    s = fresh_server(extra_args=["--log-format", "json"])
    s.client("sts").get_caller_identity()
    s.stop()
    lines = [json.loads(l) for l in s.logs().splitlines() if l.startswith("{")]
    served = [l for l in lines if l.get("message") == "served"]
    assert served, s.logs()
    span = served[-1].get("span") or {}
    for field in ["request_id", "service", "operation", "account", "region"]:
        assert field in span, served[-1]
    assert span["service"] == "sts" and span["operation"] == "GetCallerIdentity"
