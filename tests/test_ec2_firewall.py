"""Security groups enforced on instance traffic (linux driver: iptables rules inside each
instance's own network namespace), key pairs reaching the instance, and ssh into it.

A client instance probes a server instance over TCP from its user data, printing one console
line per attempt with the attempt's start time (host and instances share one clock): after a
rule change returns, the first attempt that started later shows the new behaviour. SSH goes
through the port 22 the instance publishes on host 127.0.0.1 (tag `ferrocloud:ssh-port`)."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from conftest import unique
from test_ec2_instances import debian_ami, describe, wait_console, wait_state


def _skip_reason():
    if os.geteuid() != 0:
        return "the linux driver (and so security-group enforcement) needs root"
    for ns in ("net", "pid", "mnt"):
        if not os.path.exists(f"/proc/self/ns/{ns}"):
            return f"kernel lacks {ns} namespaces"
    if not shutil.which("ip"):
        return "iproute2 (ip) is not installed"
    if not (shutil.which("iptables-restore") or os.path.exists("/usr/sbin/iptables-restore")):
        return "iptables-restore is not installed (package iptables)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture
def ec2(server):
    return server.client("ec2")


@pytest.fixture
def launched(ec2):
    ids = []
    yield ids
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")


@pytest.fixture
def groups(ec2):
    """Security groups a test created; deleted afterwards (after its instances)."""
    made = []
    yield made
    for g in made:
        # Rules naming another group block its deletion: drop all rules first.
        try:
            d = ec2.describe_security_groups(GroupIds=[g])["SecurityGroups"][0]
            if d["IpPermissions"]:
                ec2.revoke_security_group_ingress(GroupId=g, IpPermissions=d["IpPermissions"])
        except ClientError:
            pass
    for g in made:
        try:
            ec2.delete_security_group(GroupId=g)
        except ClientError:
            pass


def new_group(ec2, groups, what):
    g = ec2.create_security_group(GroupName=unique(what), Description=what)["GroupId"]
    groups.append(g)
    return g


# ---- probes ----

PROBE = r"""#!/bin/sh
cat > /tmp/probe.py <<'PY'
import socket, sys, time, urllib.request
target = sys.argv[1]
host, port = target.rsplit(":", 1)
while True:
    start = time.time()
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            res = "OK"
    except OSError:
        res = "FAIL"
    print(f"PROBE tcp {start:.3f} {res}", flush=True)
    start = time.time()
    try:
        with urllib.request.urlopen("http://169.254.169.254/latest/meta-data/instance-id",
                                    timeout=2) as r:
            res = "OK" if r.status == 200 else "FAIL"
    except OSError:
        res = "FAIL"
    print(f"PROBE imds {start:.3f} {res}", flush=True)
    time.sleep(0.1)
PY
# Isolation: the server's process and files are not visible here.
if grep -qs fc-fw-server /proc/[0-9]*/cmdline; then echo "SEES-SERVER-PROCESS"; else echo "NO-SERVER-PROCESS"; fi
if [ -e /tmp/fc-fw-secret ]; then echo "SEES-SERVER-FILE"; else echo "NO-SERVER-FILE"; fi
echo "PID1 $(tr '\0' ' ' < /proc/1/cmdline | head -c 12)"
python3 /tmp/probe.py TARGET &
"""

SERVER = r"""#!/bin/sh
echo secret > /tmp/fc-fw-secret
cat > /tmp/fc-fw-server.py <<'PY'
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(64)
print("SERVER-LISTENING", flush=True)
while True:
    c, _ = s.accept()
    c.close()
PY
python3 /tmp/fc-fw-server.py &
"""


def probes(text, kind):
    """(start time, ok) of every probe of `kind` in console text."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "PROBE" and parts[1] == kind:
            out.append((float(parts[2]), parts[3] == "OK"))
    return out


def first_probe_after(ec2, iid, kind, t, timeout=60):
    """The result of the first probe of `kind` that started after `t`."""
    found = []

    def ready(text):
        found[:] = [ok for start, ok in probes(text, kind) if start > t]
        return bool(found)

    wait_console(ec2, iid, ready, timeout)
    return found[0]


def test_security_groups_are_enforced_between_instances(ec2, launched, groups):
    ami = debian_ami(ec2)
    srv = new_group(ec2, groups, "fw-srv")
    cli = new_group(ec2, groups, "fw-cli")
    other = new_group(ec2, groups, "fw-other")
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                          SecurityGroupIds=[srv], UserData=SERVER)
    server_id = r["Instances"][0]["InstanceId"]
    launched.append(server_id)
    server_ip = r["Instances"][0]["PrivateIpAddress"]
    wait_console(ec2, server_id, lambda t: "SERVER-LISTENING" in t and "ready" in t)

    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                          SecurityGroupIds=[cli],
                          UserData=PROBE.replace("TARGET", f"{server_ip}:8080"))
    client_id = r["Instances"][0]["InstanceId"]
    launched.append(client_id)
    client_ip = r["Instances"][0]["PrivateIpAddress"]
    assert r["Instances"][0]["SubnetId"] == describe(ec2, server_id)["SubnetId"]

    # Instances can't see each other's processes or files; the boot script is PID 1.
    text = wait_console(ec2, client_id, lambda t: "PID1" in t)
    assert "NO-SERVER-PROCESS" in text and "NO-SERVER-FILE" in text
    assert "PID1 /bin/sh -c" in text

    # No ingress rule: the port is unreachable (several attempts), IMDS works.
    text = wait_console(ec2, client_id, lambda t: len(probes(t, "tcp")) >= 2)
    assert not any(ok for _, ok in probes(text, "tcp")), text[-2000:]
    assert first_probe_after(ec2, client_id, "imds", 0)

    # CIDR rule: reachable at once; revoked: unreachable again.
    perm = [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
             "IpRanges": [{"CidrIp": f"{client_ip}/32"}]}]
    ec2.authorize_security_group_ingress(GroupId=srv, IpPermissions=perm)
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is True
    ec2.revoke_security_group_ingress(GroupId=srv, IpPermissions=perm)
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is False

    # A rule for another port or another source does not open it.
    ec2.authorize_security_group_ingress(GroupId=srv, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8081, "ToPort": 9000,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
         "IpRanges": [{"CidrIp": "192.0.2.0/24"}]},
        {"IpProtocol": "udp", "FromPort": 8080, "ToPort": 8080,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is False

    # Source-group rule: members of the client's group get in.
    group_perm = [{"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8100,
                   "UserIdGroupPairs": [{"GroupId": cli}]}]
    ec2.authorize_security_group_ingress(GroupId=srv, IpPermissions=group_perm)
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is True
    # An instance joining the group by booting into it gets in too.
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                          SecurityGroupIds=[cli],
                          UserData=PROBE.replace("TARGET", f"{server_ip}:8080"))
    second = r["Instances"][0]["InstanceId"]
    launched.append(second)
    wait_console(ec2, second, lambda t: any(ok for _, ok in probes(t, "tcp")))

    # The client leaves the group: out at once; back in: in again.
    ec2.modify_instance_attribute(InstanceId=client_id, Groups=[other])
    assert [g["GroupId"] for g in describe(ec2, client_id)["SecurityGroups"]] == [other]
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is False
    ec2.modify_instance_attribute(InstanceId=client_id, Groups=[cli])
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is True

    # Revoking the client group's egress (all traffic to 0.0.0.0/0) blocks its outbound
    # connections; the metadata service still answers.
    egress = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.revoke_security_group_egress(GroupId=cli, IpPermissions=egress)
    t = time.time()
    assert first_probe_after(ec2, client_id, "tcp", t) is False
    assert first_probe_after(ec2, client_id, "imds", t) is True
    # Egress to the server's port only: allowed again.
    ec2.authorize_security_group_egress(GroupId=cli, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
         "IpRanges": [{"CidrIp": f"{server_ip}/32"}]}])
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is True

    # A group in use by an instance can't be deleted.
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=cli)
    assert e.value.response["Error"]["Code"] == "DependencyViolation"

    # The server leaving (terminated): nothing answers any more.
    ec2.terminate_instances(InstanceIds=[server_id])
    wait_state(ec2, [server_id], "terminated")
    launched.remove(server_id)
    assert first_probe_after(ec2, client_id, "tcp", time.time()) is False


# ---- key pairs and ssh ----

def ssh(key_path, port, user, command, timeout=60):
    return subprocess.run(
        ["ssh", "-i", key_path, "-p", str(port),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes",
         "-o", "LogLevel=ERROR", f"{user}@127.0.0.1", command],
        capture_output=True, text=True, timeout=timeout)


def save_key(directory, material, name):
    path = os.path.join(directory, name + ".pem")
    with open(path, "w") as f:
        f.write(material)
    os.chmod(path, 0o600)
    return path


needs_ssh = pytest.mark.skipif(
    not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh"),
    reason="needs openssh-server on the host (/usr/sbin/sshd, seen by the built-in image) "
           "and the ssh client: run scripts/install-test-deps")


@needs_ssh
def test_key_pair_reaches_the_instance_and_ssh_logs_in(ec2, launched, groups):
    ami = debian_ami(ec2)
    keys = tempfile.mkdtemp(prefix="fc-ssh-")
    try:
        name = unique("fw-key")
        good = save_key(keys, ec2.create_key_pair(KeyName=name)["KeyMaterial"], "good")
        other = unique("fw-other-key")
        bad = save_key(keys, ec2.create_key_pair(KeyName=other, KeyType="ed25519")["KeyMaterial"],
                       "bad")
        sg = new_group(ec2, groups, "fw-ssh")
        # The port tag is opt-in: launched with the key (any value), the service fills it in.
        r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                              KeyName=name, SecurityGroupIds=[sg],
                              UserData="#!/bin/sh\ncat /home/admin/.ssh/authorized_keys\n",
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "ferrocloud:ssh-port", "Value": ""}]}])
        iid = r["Instances"][0]["InstanceId"]
        launched.append(iid)
        text = wait_console(ec2, iid, lambda t: "ready" in t and "ferrocloud: ssh " in t)
        assert "ferrocloud: sshd started" in text
        # The console tells where ssh is; the tag says the same port.
        line = next(l for l in text.splitlines() if l.startswith("ferrocloud: ssh "))
        port = int(line.split(" -p ", 1)[1].split()[0])
        assert f"-i {name}.pem" in line and "admin@127.0.0.1" in line
        tags = {t["Key"]: t["Value"] for t in describe(ec2, iid).get("Tags", [])}
        assert tags["ferrocloud:ssh-port"] == str(port)
        public = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
        assert public["PublicKey"].split()[1] in text  # the default user's authorized_keys

        # Port 22 not allowed by the group yet: no login.
        p = ssh(good, port, "admin", "true")
        assert p.returncode != 0

        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        p = ssh(good, port, "admin", "id -un; hostname; cat /proc/1/cmdline | tr '\\0' ' '")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[0] == "admin"
        assert lines[1] == "ip-" + describe(ec2, iid)["PrivateIpAddress"].replace(".", "-")
        p = ssh(good, port, "root", "id -u")
        assert p.returncode == 0 and p.stdout.strip() == "0", p.stderr
        # Another key is refused, and so are passwords.
        p = ssh(bad, port, "admin", "true")
        assert p.returncode == 255 and "Permission denied" in p.stderr, p.stderr
        p = ssh(bad, port, "root", "true")
        assert p.returncode == 255 and "Permission denied" in p.stderr, p.stderr
        p = ssh(good, port, "admin", "grep -i '^passwordauthentication' /etc/ssh/sshd_config")
        assert p.stdout.split()[-1].lower() == "no"

        # The rule revoked: no new sessions.
        ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        p = ssh(good, port, "admin", "true")
        assert p.returncode != 0

        # "My IP" as the host sees it (127.0.0.1/32) admits host connections too.
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}])
        p = ssh(good, port, "admin", "true")
        assert p.returncode == 0, p.stderr

        # Stopped: no port; started again: a port again, the same key works.
        ec2.stop_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "stopped")
        tags = {t["Key"]: t["Value"] for t in describe(ec2, iid).get("Tags", [])}
        assert tags["ferrocloud:ssh-port"] == ""
        ec2.start_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "running")
        text = wait_console(ec2, iid, lambda t: t.count("ferrocloud: ssh ") >= 2)
        line = [l for l in text.splitlines() if l.startswith("ferrocloud: ssh ")][-1]
        port = int(line.split(" -p ", 1)[1].split()[0])
        tags = {t["Key"]: t["Value"] for t in describe(ec2, iid).get("Tags", [])}
        assert tags["ferrocloud:ssh-port"] == str(port)
        p = ssh(good, port, "admin", "id -un")
        assert p.returncode == 0 and p.stdout.strip() == "admin", p.stderr
    finally:
        shutil.rmtree(keys, ignore_errors=True)


@needs_ssh
def test_default_user_follows_the_ami_name(ec2, launched, groups):
    def ami(owner, pattern):
        imgs = ec2.describe_images(Owners=[owner], Filters=[
            {"Name": "name", "Values": [pattern]},
            {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
        assert imgs, pattern
        return imgs[0]["ImageId"]

    name = unique("fw-user-key")
    ec2.create_key_pair(KeyName=name)
    sg = new_group(ec2, groups, "fw-users")
    ids = {}
    for user, image in [("ec2-user", ami("amazon", "al2023-ami-2023*")),
                        ("ubuntu", ami("099720109477", "ubuntu/images/*"))]:
        r = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                              KeyName=name, SecurityGroupIds=[sg],
                              UserData="#!/bin/sh\nid\n")
        ids[user] = r["Instances"][0]["InstanceId"]
        launched.append(ids[user])
    for user, iid in ids.items():
        text = wait_console(ec2, iid, lambda t: "ready" in t and "ferrocloud: ssh " in t)
        assert f"created user {user}" in text
        assert f" {user}@127.0.0.1" in text
        # Not asked for: no port tag.
        assert "Tags" not in describe(ec2, iid) or not describe(ec2, iid)["Tags"]


def test_enforcement_continues_after_a_server_restart(fresh_server):
    """Rules live in the instances' namespaces, so they hold while the server is down; the
    restarted server re-adopts the instances and applies later changes at once."""
    s = fresh_server()
    ec2 = s.client("ec2")
    ami = debian_ami(ec2)
    srv = ec2.create_security_group(GroupName="srv", Description="srv")["GroupId"]
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                          SecurityGroupIds=[srv], UserData=SERVER)
    server_id = r["Instances"][0]["InstanceId"]
    server_ip = r["Instances"][0]["PrivateIpAddress"]
    ids = [server_id]
    try:
        wait_console(ec2, server_id, lambda t: "SERVER-LISTENING" in t and "ready" in t)
        r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                              UserData=PROBE.replace("TARGET", f"{server_ip}:8080"))
        client_id = r["Instances"][0]["InstanceId"]
        client_ip = r["Instances"][0]["PrivateIpAddress"]
        ids.append(client_id)
        perm = [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                 "IpRanges": [{"CidrIp": f"{client_ip}/32"}]}]
        ec2.authorize_security_group_ingress(GroupId=srv, IpPermissions=perm)
        assert first_probe_after(ec2, client_id, "tcp", time.time()) is True

        data_dir = s.data_dir
        assert s.stop() == 0
        s = fresh_server(data_dir=data_dir)
        ec2 = s.client("ec2")
        assert describe(ec2, client_id)["State"]["Name"] == "running"
        assert first_probe_after(ec2, client_id, "tcp", time.time()) is True
        ec2.revoke_security_group_ingress(GroupId=srv, IpPermissions=perm)
        assert first_probe_after(ec2, client_id, "tcp", time.time()) is False
        ec2.authorize_security_group_ingress(GroupId=srv, IpPermissions=perm)
        assert first_probe_after(ec2, client_id, "tcp", time.time()) is True
    finally:
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")
