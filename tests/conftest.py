"""Black-box test harness: starts the real ferrocloud binary and drives it with the real AWS CLI
(v1, pinned) and boto3, as users do."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("FERROCLOUD_BIN", os.path.join(ROOT, "target", "debug", "ferrocloud"))
AWS = shutil.which("aws") or os.path.join(os.path.dirname(sys.executable), "aws")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ferrocloud process on a free port with its own data directory."""

    def __init__(self, data_dir=None, extra_args=(), env=None):
        self.port = free_port()
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="fc-test-")
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "server.log")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        env = dict(os.environ)
        env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", str(self.port), "--data-dir", self.data_dir,
             "--lambda-runtime-cache", os.path.join(ROOT, "target", "lambda-runtimes")] + self.extra_args,
            stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ferrocloud exited early:\n" + self.logs())
            try:
                with urllib.request.urlopen(self.endpoint + "/_ferrocloud/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("ferrocloud did not become ready:\n" + self.logs())

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def client(self, service, region="us-east-1", key="test", secret="test", token=None, **kw):
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
            config=Config(retries={"max_attempts": 1}, **kw))

    def aws(self, *args, key="test", secret="test", token=None, region="us-east-1", check=True,
            stdin=None):
        """Run the AWS CLI against this server; returns (returncode, stdout, stderr)."""
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": region, "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": "",
        })
        env.pop("AWS_SESSION_TOKEN", None)
        if token:
            env["AWS_SESSION_TOKEN"] = token
        p = subprocess.run([AWS, "--endpoint-url", self.endpoint, "--output", "json"] + list(args),
                           capture_output=True, text=True, env=env, input=stdin, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
        return p.returncode, p.stdout, p.stderr

    def aws_json(self, *args, **kw):
        _, out, _ = self.aws(*args, **kw)
        return json.loads(out) if out.strip() else {}


@pytest.fixture(scope="session")
def server():
    s = Server().start()
    yield s
    s.stop()
    if not os.environ.get("FC_KEEP"):
        shutil.rmtree(s.data_dir, ignore_errors=True)
    else:
        print("KEPT", s.data_dir)


@pytest.fixture
def fresh_server():
    """A server of its own, for tests that restart or kill it."""
    servers = []

    def make(**kw):
        s = Server(**kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        # Graceful, so the server removes what it created (e.g. its router network namespace).
        s.stop(signal.SIGTERM)
        shutil.rmtree(s.data_dir, ignore_errors=True)


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{time.time_ns() % 10**9}"
