"""Instance networking (linux driver): instances in different subnets of one VPC reach each
other through the VPC's local route with their real addresses, and nothing crosses from one
VPC to another, not even between VPCs whose address ranges are the same.

Servers answer every connection with their instance id (read from the metadata service at boot)
and print the peer address of each connection on their console; clients probe a server's
address over TCP from their user data and print one console line per attempt."""
import os
import shutil
import time

import pytest
from botocore.exceptions import ClientError

from conftest import unique
from test_ec2_instances import console, debian_ami, wait_state
from test_ec2_instances import wait_console as _wait_console


def _skip_reason():
    if os.geteuid() != 0:
        return "the linux driver (and so instance networking) needs root"
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
def made(ec2):
    """Instances, security groups, subnets and VPCs a test created; removed afterwards in
    that order."""
    res = {"instances": [], "groups": [], "subnets": [], "vpcs": []}
    yield res
    if res["instances"]:
        ec2.terminate_instances(InstanceIds=res["instances"])
        wait_state(ec2, res["instances"], "terminated")
    for kind, delete in (("groups", lambda i: ec2.delete_security_group(GroupId=i)),
                         ("subnets", lambda i: ec2.delete_subnet(SubnetId=i)),
                         ("vpcs", lambda i: ec2.delete_vpc(VpcId=i))):
        for i in res[kind]:
            try:
                delete(i)
            except ClientError:
                pass


def wait_console(ec2, iid, predicate, timeout=90):
    """Servers and probes need a while longer than a plain boot."""
    return _wait_console(ec2, iid, predicate, timeout)


SERVER = r"""#!/bin/sh
cat > /tmp/fc-net-server.py <<'PY'
import socket, time, urllib.request
while True:
    try:
        with urllib.request.urlopen("http://169.254.169.254/latest/meta-data/instance-id",
                                    timeout=2) as r:
            me = r.read().decode().strip()
        break
    except OSError:
        time.sleep(0.2)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(64)
print("SERVER-LISTENING", me, flush=True)
while True:
    c, peer = s.accept()
    print("ACCEPTED", peer[0], flush=True)
    try:
        c.sendall((me + "\n").encode())
    except OSError:
        pass
    c.close()
PY
python3 /tmp/fc-net-server.py &
"""

PROBE = r"""#!/bin/sh
cat > /tmp/fc-net-probe.py <<'PY'
import socket, time
while True:
    start = time.time()
    try:
        with socket.create_connection(("TARGET", 8080), timeout=1) as c:
            c.settimeout(3)
            res = "OK " + c.recv(256).decode().strip()
    except OSError:
        res = "FAIL"
    print(f"PROBE {start:.3f} {res}", flush=True)
    time.sleep(0.2)
PY
python3 /tmp/fc-net-probe.py &
"""


def timed_probes(text):
    """(start time, answering instance's id or None) of every probe in console text."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "PROBE":
            out.append((float(parts[1]), parts[3] if parts[2] == "OK" and len(parts) > 3 else None))
    return out


def probes(text):
    """Every probe result in console text: the answering instance's id, or None."""
    return [who for _, who in timed_probes(text)]


def first_answer(ec2, iid):
    """The instance that answered the first successful probe of `iid`."""
    text = wait_console(ec2, iid, lambda t: any(probes(t)))
    return next(p for p in probes(text) if p)


def never_answered(ec2, iid, attempts=4):
    """At least `attempts` probes of `iid` ran and none got through."""
    text = wait_console(ec2, iid, lambda t: len(probes(t)) >= attempts or any(probes(t)))
    return not any(probes(text))


def launch(ec2, made, ami, subnet, group, user_data, ip=None):
    kw = {"PrivateIpAddress": ip} if ip else {}
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                          SubnetId=subnet, SecurityGroupIds=[group], UserData=user_data, **kw)
    inst = r["Instances"][0]
    made["instances"].append(inst["InstanceId"])
    assert inst["SubnetId"] == subnet
    return inst["InstanceId"], inst["PrivateIpAddress"]


def open_group(ec2, made, vpc, cidrs):
    """A security group of `vpc` letting tcp 8080 in from `cidrs` (all egress allowed)."""
    g = ec2.create_security_group(GroupName=unique("net"), Description="net test",
                                  VpcId=vpc)["GroupId"]
    made["groups"].append(g)
    ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
         "IpRanges": [{"CidrIp": c} for c in cidrs]}])
    return g


def new_vpc(ec2, made, cidr, subnet_cidrs):
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    made["vpcs"].append(vpc)
    subnets = []
    for c in subnet_cidrs:
        s = ec2.create_subnet(VpcId=vpc, CidrBlock=c)["Subnet"]["SubnetId"]
        made["subnets"].insert(0, s)
        subnets.append(s)
    return vpc, subnets


def test_subnets_of_a_vpc_reach_each_other_and_vpcs_stay_apart(ec2, made):
    ami = debian_ami(ec2)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    by_az = {}
    for s in subnets["Subnets"]:
        by_az.setdefault(s["AvailabilityZone"], s)
    assert len(by_az) >= 2, "the default VPC has a subnet per availability zone"
    s1, s2 = [by_az[az] for az in sorted(by_az)[:2]]
    other_cidr = "10.99.0.0/16"
    # The servers' group lets in the other VPC's range too: what keeps it out is the routing.
    g = open_group(ec2, made, vpc["VpcId"], [vpc["CidrBlock"], other_cidr])

    # A serves in one subnet; B in another subnet of the VPC reaches it with its own address.
    a, a_ip = launch(ec2, made, ami, s1["SubnetId"], g, SERVER)
    wait_console(ec2, a, lambda t: f"SERVER-LISTENING {a}" in t)
    b, b_ip = launch(ec2, made, ami, s2["SubnetId"], g, PROBE.replace("TARGET", a_ip))
    assert first_answer(ec2, b) == a
    wait_console(ec2, a, lambda t: f"ACCEPTED {b_ip}" in t)

    # C in another VPC cannot reach A, though A's group would let it in.
    vpc2, (s2_1,) = new_vpc(ec2, made, other_cidr, ["10.99.1.0/24"])
    g2 = open_group(ec2, made, vpc2, [other_cidr])
    c, c_ip = launch(ec2, made, ami, s2_1, g2, PROBE.replace("TARGET", a_ip))
    assert never_answered(ec2, c), console(ec2, c)[-2000:]
    assert f"ACCEPTED {c_ip}" not in console(ec2, a)

    # A VPC with the same ranges: D takes A's address in a subnet like A's, E takes B's
    # address in a subnet like B's. E reaches D, B still reaches A, and each server's metadata
    # is its own.
    vpc3, (s3_1, s3_2) = new_vpc(ec2, made, vpc["CidrBlock"],
                                 [s1["CidrBlock"], s2["CidrBlock"]])
    g3 = open_group(ec2, made, vpc3, [vpc["CidrBlock"]])
    d, d_ip = launch(ec2, made, ami, s3_1, g3, SERVER, ip=a_ip)
    assert d_ip == a_ip
    wait_console(ec2, d, lambda t: f"SERVER-LISTENING {d}" in t)
    e, e_ip = launch(ec2, made, ami, s3_2, g3, PROBE.replace("TARGET", a_ip), ip=b_ip)
    assert e_ip == b_ip
    assert first_answer(ec2, e) == d
    assert set(p for p in probes(console(ec2, e)) if p) == {d}
    # (Host and instances share one clock.)
    t = time.time()
    text = wait_console(ec2, b, lambda x: any(start > t for start, _ in timed_probes(x)))
    assert [who for start, who in timed_probes(text) if start > t][0] == a
    assert set(p for p in probes(text) if p) == {a}
    # Nothing from the overlapping VPC ever reaches the first one (and C still cannot).
    assert not any(probes(console(ec2, c)))
