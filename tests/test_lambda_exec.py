"""Lambda's execution engine, black-box: functions created with boto3 really run through the
official runtime interface clients (awslambdaric, aws-lambda-ric) or their own bootstrap, in
warm execution environments, with AWS's errors, logs, limits and credentials."""
import base64
import io
import json
import os
import shutil
import subprocess
import threading
import time
import zipfile

import botocore.exceptions
import pytest

from conftest import ROOT, unique

ROLE = "arn:aws:iam::000000000000:role/lambda-exec-role"
RUST_PROJECT = os.path.join(ROOT, "tests", "lambda", "rust-bootstrap")


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name == "bootstrap" else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, content)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lam(server):
    c = server.client("lambda", read_timeout=300)
    try:
        c.list_functions()
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("NotImplemented", "InternalFailure"):
            pytest.skip("the Lambda control plane (CreateFunction/Invoke) is not there yet")
        raise
    iam = server.client("iam")
    try:
        iam.create_role(RoleName="lambda-exec-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}))
    except botocore.exceptions.ClientError:
        pass
    return c


def create(lam, files, runtime="python3.12", handler="app.handler", **kw):
    name = unique("fn")
    lam.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
                        Code={"ZipFile": zip_of(files)}, **kw)
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 400})
    return name


def invoke(lam, name, payload=None, **kw):
    r = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kw)
    body = r["Payload"].read()
    return r, (json.loads(body) if body else None)


COUNTER = """
import os, time, uuid
ENV_ID = str(uuid.uuid4())
count = 0

def handler(event, context):
    global count
    count += 1
    print("invoked with", event)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("something went wrong")
    if event.get("hog"):
        hog = []
        while True:
            hog.append(bytearray(32 << 20))
    return {"count": count, "env_id": ENV_ID, "request_id": context.aws_request_id,
            "remaining": context.get_remaining_time_in_millis(),
            "env": {k: os.environ.get(k) for k in [
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME",
                "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "AWS_DEFAULT_REGION",
                "AWS_EXECUTION_ENV", "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
                "AWS_LAMBDA_RUNTIME_API", "TZ", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "GREETING"]},
            "cwd": os.getcwd()}
"""


@pytest.fixture(scope="module")
def counter(lam):
    return create(lam, {"app.py": COUNTER}, Timeout=3, MemorySize=256,
                  Environment={"Variables": {"GREETING": "hi"}})


def test_python_handler_returns_its_value_and_stays_warm(lam, counter):
    r, body = invoke(lam, counter, {"a": 1})
    assert r["StatusCode"] == 200
    assert "FunctionError" not in r
    assert r["ExecutedVersion"] == "$LATEST"
    first = body["count"]
    _, body2 = invoke(lam, counter)
    # Module-level state persists in the warm environment.
    assert body2["env_id"] == body["env_id"]
    assert body2["count"] == first + 1
    assert body2["request_id"] != body["request_id"]
    assert 0 < body2["remaining"] <= 3000


def test_environment_variables_as_aws(lam, counter, server):
    _, body = invoke(lam, counter)
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == counter
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{counter}"
    assert "/[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["_HANDLER"] == "app.handler"
    assert env["TZ"] == ":UTC"
    assert env["GREETING"] == "hi"
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert env["AWS_SESSION_TOKEN"]
    assert body["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert env["AWS_ENDPOINT_URL"].startswith("http://")
    # The credentials are the execution role's, and they work against ferrocloud.
    sts = server.client("sts", key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                        token=env["AWS_SESSION_TOKEN"])
    arn = sts.get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::000000000000:assumed-role/lambda-exec-role/{counter}"


def test_unhandled_error(lam, counter):
    r, body = invoke(lam, counter, {"fail": True})
    assert r["StatusCode"] == 200
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "something went wrong"
    assert isinstance(body["stackTrace"], list)
    # The environment survives a handled exception.
    _, ok = invoke(lam, counter)
    assert "count" in ok


def test_timeout_recycles_the_environment(lam, counter):
    _, before = invoke(lam, counter)
    r, body = invoke(lam, counter, {"sleep": 10})
    assert r["FunctionError"] == "Unhandled"
    assert body["errorMessage"].endswith("Task timed out after 3.00 seconds")
    assert r["ResponseMetadata"]["RequestId"] in body["errorMessage"]
    _, after = invoke(lam, counter)
    assert after["env_id"] != before["env_id"]
    assert after["count"] == 1


def test_log_tail(lam, counter):
    r, _ = invoke(lam, counter, {"marker": "tail-me"}, LogType="Tail")
    log = base64.b64decode(r["LogResult"]).decode()
    rid = r["ResponseMetadata"]["RequestId"]
    lines = log.splitlines()
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert any("tail-me" in line for line in lines)
    assert f"END RequestId: {rid}" in lines
    report = [line for line in lines if line.startswith("REPORT")][0]
    for part in (f"REPORT RequestId: {rid}", "\tDuration: ", " ms\tBilled Duration: ",
                 "\tMemory Size: 256 MB\t", "\tMax Memory Used: "):
        assert part in report


def test_logs_reach_cloudwatch(lam, counter, server):
    r, body = invoke(lam, counter, {"marker": "to-cloudwatch"})
    logs = server.client("logs")
    group = f"/aws/lambda/{counter}"
    stream = body["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]
    rid = r["ResponseMetadata"]["RequestId"]
    deadline = time.time() + 20
    msgs = []
    while time.time() < deadline:
        try:
            events = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                         startFromHead=True)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []  # created when the first lines are forwarded
        msgs = [e["message"] for e in events]
        if any(m.startswith(f"REPORT RequestId: {rid}") for m in msgs) and \
                any("to-cloudwatch" in m for m in msgs):
            break
        time.sleep(0.2)
    start = msgs.index(f"START RequestId: {rid} Version: $LATEST")
    printed = next(i for i, m in enumerate(msgs) if "to-cloudwatch" in m)
    end = msgs.index(f"END RequestId: {rid}")
    assert start < printed < end
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream in [s["logStreamName"] for s in streams]


def test_boto3_inside_the_handler_reaches_ferrocloud(lam, server):
    s3 = server.client("s3")
    bucket = unique("fn-bucket")
    s3.create_bucket(Bucket=bucket)
    code = """
import boto3
def handler(event, context):
    return sorted(b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"])
"""
    name = create(lam, {"app.py": code}, Timeout=30)
    r, body = invoke(lam, name)
    assert "FunctionError" not in r, body
    assert bucket in body


def test_import_error_is_an_init_failure(lam):
    name = create(lam, {"app.py": "import no_such_module\ndef handler(e, c):\n    return 1\n"})
    r, body = invoke(lam, name, LogType="Tail")
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in body["errorMessage"]


def linux_driver(body):
    return body["env"]["LAMBDA_TASK_ROOT"] == "/var/task"


def test_out_of_memory_is_runtime_exit(lam):
    name = create(lam, {"app.py": COUNTER}, Timeout=30, MemorySize=128)
    _, body = invoke(lam, name)
    if not linux_driver(body):
        pytest.skip("memory limits need the linux driver")
    r, body = invoke(lam, name, {"hog": True}, LogType="Tail")
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: signal: killed")
    assert "Runtime.OutOfMemory" in base64.b64decode(r["LogResult"]).decode()


def test_node_handler(lam):
    code = """
let count = 0;
exports.handler = async (event, context) => {
  count += 1;
  console.log("node says", JSON.stringify(event));
  return {count, echo: event, fn: context.functionName, node: process.version};
};
"""
    name = create(lam, {"index.js": code}, runtime="nodejs20.x", handler="index.handler")
    r, body = invoke(lam, name, {"x": 1}, LogType="Tail")
    assert "FunctionError" not in r, body
    assert body["echo"] == {"x": 1}
    assert body["fn"] == name
    assert body["count"] == 1
    assert "node says" in base64.b64decode(r["LogResult"]).decode()
    _, body = invoke(lam, name)
    assert body["count"] == 2
    code_err = "exports.handler = async () => { throw new TypeError('bad node'); };"
    name = create(lam, {"index.js": code_err}, runtime="nodejs20.x", handler="index.handler")
    r, body = invoke(lam, name)
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "TypeError"
    assert body["errorMessage"] == "bad node"


def build_rust_bootstrap():
    cargo = shutil.which("cargo")
    if not cargo:
        pytest.skip("cargo is not installed")
    target = os.path.join(ROOT, "target", "lambda-rust")
    p = subprocess.run([cargo, "build", "--release", "--target-dir", target],
                       cwd=RUST_PROJECT, capture_output=True, text=True, timeout=1500)
    if p.returncode != 0:
        if "failed to" in p.stderr and ("download" in p.stderr or "index" in p.stderr
                                        or "registry" in p.stderr):
            pytest.skip("crates.io is unreachable: cannot build the lambda_runtime function")
        raise AssertionError(p.stderr[-3000:])
    return os.path.join(target, "release", "bootstrap")


def test_provided_runtime_with_rust_lambda_runtime(lam):
    binary = build_rust_bootstrap()
    with open(binary, "rb") as f:
        name = create(lam, {"bootstrap": f.read()}, runtime="provided.al2023",
                      handler="bootstrap")
    r, body = invoke(lam, name, {"hello": "rust"})
    assert "FunctionError" not in r, body
    assert body["echo"] == {"hello": "rust"}
    assert body["function"] == name
    assert body["request_id"] == r["ResponseMetadata"]["RequestId"]
    r, body = invoke(lam, name, {"fail": 1})
    assert r["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == "asked to fail"


def test_concurrent_invokes_scale_out(lam):
    name = create(lam, {"app.py": COUNTER}, Timeout=30)
    results = []

    def one():
        results.append(invoke(lam, name, {"sleep": 1.5})[1])

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all("env_id" in b for b in results), results
    # Each environment runs one invocation at a time: four at once need four environments.
    assert len({b["env_id"] for b in results}) == 4


def test_reserved_concurrency_throttles(lam):
    name = create(lam, {"app.py": COUNTER}, Timeout=30)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        invoke(lam, name)
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err["Error"]["Code"] == "TooManyRequestsException"
    assert err["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    # One slot: of three invocations at once (each holding it 3 s), one runs, the others are
    # throttled.
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    ok, throttled = [], []

    def one():
        try:
            ok.append(invoke(lam, name, {"sleep": 3})[1])
        except botocore.exceptions.ClientError as ce:
            throttled.append(ce.response)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) >= 1 and len(throttled) >= 1 and len(ok) + len(throttled) == 3
    assert all(t["Error"]["Code"] == "TooManyRequestsException" for t in throttled)
    assert all(t["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
               for t in throttled)
    assert all(b["count"] >= 1 for b in ok)


def make_role(server):
    try:
        server.client("iam").create_role(
            RoleName="lambda-exec-role", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    except botocore.exceptions.ClientError:
        pass


def processes_with(text):
    """Host pids whose environment contains `text`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_process_driver_runs_functions_that_reach_ferrocloud(fresh_server):
    s = fresh_server(extra_args=["--driver", "process"])
    make_role(s)
    lam = s.client("lambda", read_timeout=300)
    s.client("s3").create_bucket(Bucket="seen-from-a-process")
    code = COUNTER + """
import boto3
def buckets(event, context):
    return {"buckets": [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]],
            "root": os.environ["LAMBDA_TASK_ROOT"], "cwd": os.getcwd(),
            "endpoint": os.environ["AWS_ENDPOINT_URL"]}
"""
    name = create(lam, {"app.py": code}, handler="app.buckets", Timeout=30)
    r, body = invoke(lam, name)
    assert "FunctionError" not in r, body
    assert "seen-from-a-process" in body["buckets"]
    assert body["endpoint"] == s.endpoint
    assert body["cwd"] == body["root"] != "/var/task"


def test_crashed_server_leaves_no_environment_behind(fresh_server):
    s = fresh_server()
    make_role(s)
    lam = s.client("lambda", read_timeout=300)
    name = create(lam, {"app.py": COUNTER})
    _, body = invoke(lam, name)
    stream = body["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert processes_with(stream)
    s.kill9()
    # The environment outlived the crash; the next start removes it.
    assert processes_with(stream)
    fresh_server(data_dir=s.data_dir)
    deadline = time.time() + 20
    while processes_with(stream) and time.time() < deadline:
        time.sleep(0.1)
    assert not processes_with(stream)


def test_provisioned_concurrency_keeps_environments_initialised(lam):
    name = create(lam, {"app.py": COUNTER})
    v = lam.publish_version(FunctionName=name)["Version"]
    try:
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=v,
                                               ProvisionedConcurrentExecutions=2)
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("NotImplemented",):
            pytest.skip("PutProvisionedConcurrencyConfig is not implemented")
        raise
    deadline = time.time() + 60
    while time.time() < deadline:
        st = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=v)
        if st["Status"] == "READY":
            break
        time.sleep(0.5)
    r, body = invoke(lam, name, Qualifier=v, LogType="Tail")
    assert "FunctionError" not in r, body
    # Already initialised: this invocation reports no init.
    assert "Init Duration" not in base64.b64decode(r["LogResult"]).decode()


FILL_TMP = """
import os

def handler(event, context):
    out = {"task_root": os.environ.get("LAMBDA_TASK_ROOT")}
    st = os.statvfs("/tmp")
    out["tmp_bytes"] = st.f_blocks * st.f_frsize
    mb = event.get("mb", 0)
    path = "/tmp/fill-%s" % context.aws_request_id
    chunk = b"x" * (1 << 20)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(mb):
                os.write(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        out["written_mb"] = os.path.getsize(path) >> 20
    except OSError as e:
        out["error"] = str(e)
    finally:
        if os.path.exists(path):
            os.remove(path)
    return out
"""


def test_tmp_is_disk_backed_and_sized_to_ephemeral_storage(lam):
    if os.geteuid() != 0:
        pytest.skip("a sized /tmp needs the linux driver, which needs root")
    name = create(lam, {"app.py": FILL_TMP}, Timeout=120, MemorySize=128,
                  EphemeralStorage={"Size": 512})
    r, body = invoke(lam, name, {"mb": 0})
    assert "FunctionError" not in r, body
    if body["task_root"] != "/var/task":
        pytest.skip("a sized /tmp needs the linux driver (the process driver has no /tmp mount)")
    # /tmp is EphemeralStorage large (filesystem overhead aside), not the host's disk.
    assert 400 << 20 < body["tmp_bytes"] <= 512 << 20, body
    # 100 MB fits, and with 128 MB of memory it is not an OOM: /tmp is not memory.
    r, body = invoke(lam, name, {"mb": 100})
    assert "FunctionError" not in r, body
    assert body.get("written_mb") == 100, body
    # 600 MB does not fit in 512 MB.
    r, body = invoke(lam, name, {"mb": 600})
    assert "FunctionError" not in r, body
    assert "No space left on device" in body.get("error", ""), body
    # The environment is still healthy and /tmp usable again after the file was removed.
    r, body = invoke(lam, name, {"mb": 100})
    assert "FunctionError" not in r, body
    assert body.get("written_mb") == 100, body
