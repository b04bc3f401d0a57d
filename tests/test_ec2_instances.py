"""EC2 instances that really run: RunInstances boots a workload from the AMI's image, user data
runs once, the instance metadata service answers from inside, the console output comes back
through GetConsoleOutput, and the lifecycle (stop/start/reboot/terminate) follows EC2."""
import base64
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import unique

DEBIAN_OWNER = "136693071363"


def err(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture
def ec2(server):
    return server.client("ec2")


@pytest.fixture
def launched(ec2):
    """Instances a test launched; terminated (and waited for) afterwards."""
    ids = []
    yield ids
    if ids:
        for i in ids:
            try:
                ec2.modify_instance_attribute(InstanceId=i, DisableApiTermination={"Value": False})
            except ClientError:
                pass
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")


def raw_query(server, params):
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(server.endpoint + "/", data=data, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/ec2/aws4_request, "
                         "SignedHeaders=host, Signature=00"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def debian_ami(ec2, arch="x86_64"):
    images = ec2.describe_images(Owners=[DEBIAN_OWNER], Filters=[
        {"Name": "name", "Values": ["debian-12-*"]},
        {"Name": "architecture", "Values": [arch]}])["Images"]
    assert images
    return images[0]["ImageId"]


def describe(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def wait_state(ec2, ids, state, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = {i["InstanceId"]: i["State"]["Name"]
               for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
               for i in r["Instances"]}
        if all(got.get(i) == state for i in ids):
            return
        if time.time() > deadline:
            raise AssertionError(f"instances not {state}: {got}")
        time.sleep(0.2)


def console(ec2, iid):
    # botocore decodes the base64 Output itself.
    return ec2.get_console_output(InstanceId=iid).get("Output", "")


def wait_console(ec2, iid, predicate, timeout=60):
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = console(ec2, iid)
        if predicate(text):
            return text
        time.sleep(0.3)
    raise AssertionError("console output never matched:\n" + text[-4000:])


USER_DATA = r"""#!/bin/sh
echo "hello from user data on $(hostname)"
echo ran >> /var/tmp/ud-count
echo "UDCOUNT $(wc -l < /var/tmp/ud-count)"
python3 - <<'PY'
import json, os, urllib.error, urllib.request
base = "http://169.254.169.254/latest/"
def get(path, token=None):
    h = {"X-aws-ec2-metadata-token": token} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=h), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
print("IMDSV1", get("meta-data/instance-id")[0])
req = urllib.request.Request(base + "api/token", method="PUT",
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
token = urllib.request.urlopen(req, timeout=5).read().decode()
print("IMDS-ID", get("meta-data/instance-id", token)[1])
print("IMDS-TYPE", get("meta-data/instance-type", token)[1])
print("IMDS-IP", get("meta-data/local-ipv4", token)[1])
print("IMDS-AZ", get("meta-data/placement/availability-zone", token)[1])
print("IMDS-INDEX", get("meta-data/", token)[1].replace("\n", ","))
print("IMDS-UD", len(get("user-data", token)[1]))
print("IMDS-KEYS", get("meta-data/public-keys/", token)[1])
print("IMDS-SSH", get("meta-data/public-keys/0/openssh-key", token)[1].split()[0])
doc = json.loads(get("dynamic/instance-identity/document", token)[1])
print("IMDS-DOC", doc["instanceId"], doc["region"])
roles = get("meta-data/iam/security-credentials/", token)[1]
print("IMDS-ROLE", roles)
creds = json.loads(get("meta-data/iam/security-credentials/" + roles, token)[1])
print("IMDS-KEY", creds["AccessKeyId"][:4], creds["Code"])
print("ENDPOINT", os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION"))
body = b"Action=GetCallerIdentity&Version=2011-06-15"
req = urllib.request.Request(os.environ["AWS_ENDPOINT_URL"] + "/", data=body, headers={
    "Content-Type": "application/x-www-form-urlencoded",
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/sts/aws4_request, "
                     "SignedHeaders=host, Signature=00"})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print("API-STATUS", r.status)
except urllib.error.HTTPError as e:
    print("API-STATUS", e.code)
PY
"""


def test_instance_runs_user_data_once_and_serves_metadata(server, ec2, launched):
    iam = server.client("iam")
    role = unique("ec2-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    profile = unique("ec2-profile")
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    ami = debian_ami(ec2)
    key = unique("key")
    public = ec2.create_key_pair(KeyName=key)
    zone = ec2.describe_availability_zones()["AvailabilityZones"][1]["ZoneName"]
    r = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", UserData=USER_DATA,
        KeyName=key, Placement={"AvailabilityZone": zone},
        MetadataOptions={"HttpTokens": "required"}, IamInstanceProfile={"Name": profile},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}])
    inst = r["Instances"][0]
    iid = inst["InstanceId"]
    launched.append(iid)
    assert r["ReservationId"].startswith("r-")
    assert inst["State"] == {"Code": 0, "Name": "pending"}
    assert len(iid) == 19
    # The CLI waiter works.
    server.aws("ec2", "wait", "instance-running", "--instance-ids", iid)
    d = describe(ec2, iid)
    assert d["State"] == {"Code": 16, "Name": "running"}
    assert d["ImageId"] == ami and d["InstanceType"] == "t3.micro"
    ip = d["PrivateIpAddress"]
    assert d["PrivateDnsName"] == "ip-" + ip.replace(".", "-") + ".ec2.internal"
    assert d["MetadataOptions"]["HttpTokens"] == "required"
    assert d["IamInstanceProfile"]["Arn"].endswith("/" + profile)
    assert d["Tags"] == [{"Key": "Name", "Value": "web"}]
    assert d["SecurityGroups"][0]["GroupName"] == "default"
    assert d["Architecture"] == "x86_64"
    assert d["KeyName"] == key and d["Placement"]["AvailabilityZone"] == zone
    subnet = ec2.describe_subnets(SubnetIds=[d["SubnetId"]])["Subnets"][0]
    assert subnet["AvailabilityZone"] == zone and subnet["DefaultForAz"]
    assert d["BlockDeviceMappings"][0]["Ebs"]["VolumeId"].startswith("vol-")

    text = wait_console(ec2, iid, lambda t: "API-STATUS" in t and "ready" in t)
    assert "hello from user data on ip-" + ip.replace(".", "-") in text
    assert "UDCOUNT 1" in text
    assert "IMDSV1 401" in text  # HttpTokens=required
    assert f"IMDS-ID {iid}" in text
    assert "IMDS-TYPE t3.micro" in text
    assert f"IMDS-IP {ip}" in text
    assert f"IMDS-AZ {d['Placement']['AvailabilityZone']}" in text
    assert "instance-id" in text.split("IMDS-INDEX", 1)[1].splitlines()[0]
    assert f"IMDS-DOC {iid} us-east-1" in text
    assert f"IMDS-KEYS 0={key}" in text
    assert "IMDS-SSH ssh-rsa" in text
    assert f"IMDS-UD {len(USER_DATA)}" in text
    assert f"IMDS-ROLE {role}" in text
    assert "IMDS-KEY ASIA Success" in text
    assert "ENDPOINT http://" in text and "us-east-1" in text
    status = int(text.split("API-STATUS ", 1)[1].split()[0])
    assert 200 <= status < 500  # the API answered from inside the instance
    assert text.count("boot 1 of") == 1

    # Reboot: the same instance boots again, user data does not run again.
    ec2.reboot_instances(InstanceIds=[iid])
    wait_console(ec2, iid, lambda t: "boot 2 of" in t and t.count("ready") >= 2)
    assert describe(ec2, iid)["State"]["Name"] == "running"

    # Stop and start: the root volume is kept, user data still does not run again.
    out = ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]
    assert out["PreviousState"]["Name"] == "running"
    assert out["CurrentState"]["Name"] == "stopping"
    server.aws("ec2", "wait", "instance-stopped", "--instance-ids", iid)
    d = describe(ec2, iid)
    assert d["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    with pytest.raises(ClientError) as e:
        ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": True})
        ec2.terminate_instances(InstanceIds=[iid])
    assert err(e) == "OperationNotPermitted"
    ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": False})
    ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "t3.small"})
    new_ud = b"#!/bin/sh\necho replaced\n"
    ec2.modify_instance_attribute(InstanceId=iid, UserData={"Value": new_ud})
    got = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
    assert base64.b64decode(got["UserData"]["Value"]) == new_ud
    assert ec2.describe_instance_attribute(
        InstanceId=iid, Attribute="instanceType")["InstanceType"]["Value"] == "t3.small"
    out = ec2.start_instances(InstanceIds=[iid])["StartingInstances"][0]
    assert out["PreviousState"]["Name"] == "stopped"
    assert out["CurrentState"]["Name"] == "pending"
    wait_state(ec2, [iid], "running")
    text = wait_console(ec2, iid, lambda t: "boot 3 of" in t and t.count("ready") >= 3)
    assert text.count("hello from user data") == 1
    assert text.count("UDCOUNT") == 1
    assert describe(ec2, iid)["InstanceType"] == "t3.small"

    # Terminate: the workload goes away, the instance stays visible as terminated.
    out = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert out["CurrentState"]["Name"] == "shutting-down"
    server.aws("ec2", "wait", "instance-terminated", "--instance-ids", iid)
    with pytest.raises(ClientError) as e:
        ec2.start_instances(InstanceIds=[iid])
    assert err(e) == "IncorrectInstanceState"
    launched.remove(iid)


MIME = """Content-Type: multipart/mixed; boundary="==BOUNDARY=="
MIME-Version: 1.0

--==BOUNDARY==
Content-Type: text/cloud-config; charset="us-ascii"

#cloud-config
runcmd: []

--==BOUNDARY==
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/sh
echo "mime part ran"
python3 -c 'import urllib.request as u; print("V1", u.urlopen("http://169.254.169.254/latest/meta-data/instance-id").read().decode())'

--==BOUNDARY==--
"""


def test_mime_user_data_and_imds_v1(server, ec2, launched):
    r = ec2.run_instances(ImageId=debian_ami(ec2), MinCount=1, MaxCount=1,
                          InstanceType="t3.nano", UserData=MIME)
    iid = r["Instances"][0]["InstanceId"]
    launched.append(iid)
    text = wait_console(ec2, iid, lambda t: "ready" in t)
    assert "mime part ran" in text
    assert "cloud-config" not in text
    assert f"V1 {iid}" in text  # IMDSv1 answers when tokens are optional
    ud = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(ud).decode() == MIME
    status = ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"]
    assert status[0]["InstanceState"]["Name"] == "running"
    assert status[0]["InstanceStatus"]["Status"] == "ok"


def test_filters_pagination_and_tags(server, ec2, launched):
    ami = debian_ami(ec2)
    key = unique("key")
    ec2.create_key_pair(KeyName=key)
    r = ec2.run_instances(ImageId=ami, MinCount=6, MaxCount=6, InstanceType="t3.nano",
                          KeyName=key, TagSpecifications=[
                              {"ResourceType": "instance", "Tags": [{"Key": "batch", "Value": key}]}])
    ids = [i["InstanceId"] for i in r["Instances"]]
    launched.extend(ids)
    assert len(set(i["PrivateIpAddress"] for i in r["Instances"])) == 6
    wait_state(ec2, ids, "running")
    mine = [{"Name": "reservation-id", "Values": [r["ReservationId"]]}]
    # Pagination.
    page1 = ec2.describe_instances(Filters=mine, MaxResults=5)
    got = [i["InstanceId"] for res in page1["Reservations"] for i in res["Instances"]]
    assert len(got) == 5 and "NextToken" in page1
    page2 = ec2.describe_instances(Filters=mine, MaxResults=5, NextToken=page1["NextToken"])
    got += [i["InstanceId"] for res in page2["Reservations"] for i in res["Instances"]]
    assert sorted(got) == sorted(ids) and "NextToken" not in page2
    paginated = [i["InstanceId"] for p in ec2.get_paginator("describe_instances").paginate(
        Filters=mine, PaginationConfig={"PageSize": 5})
                 for res in p["Reservations"] for i in res["Instances"]]
    assert sorted(paginated) == sorted(ids)

    def found(*filters):
        return sorted(i["InstanceId"] for res in ec2.describe_instances(
            Filters=list(filters))["Reservations"] for i in res["Instances"])

    assert found({"Name": "tag:batch", "Values": [key]}) == sorted(ids)
    assert found({"Name": "key-name", "Values": [key]}) == sorted(ids)
    assert set(ids) <= set(found({"Name": "tag-key", "Values": ["batch"]}))
    assert found({"Name": "instance-id", "Values": [ids[0]]}) == [ids[0]]
    one = r["Instances"][1]
    assert found({"Name": "private-ip-address", "Values": [one["PrivateIpAddress"]]},
                 *mine) == [one["InstanceId"]]
    assert found({"Name": "instance-type", "Values": ["t3.nano"]}, *mine) == sorted(ids)
    assert found({"Name": "instance-type", "Values": ["t3.large"]}, *mine) == []
    assert found({"Name": "image-id", "Values": [ami]}, *mine) == sorted(ids)
    assert found({"Name": "vpc-id", "Values": [one["VpcId"]]}, *mine) == sorted(ids)
    assert found({"Name": "subnet-id", "Values": [one["SubnetId"]]}, *mine) == sorted(ids)
    assert found({"Name": "availability-zone",
                  "Values": [one["Placement"]["AvailabilityZone"]]}, *mine) == sorted(ids)
    assert found({"Name": "instance-state-name", "Values": ["running"]}, *mine) == sorted(ids)
    # Tags on i- ids.
    ec2.create_tags(Resources=[ids[0]], Tags=[{"Key": "role", "Value": "db"}])
    assert found({"Name": "tag:role", "Values": ["db"]}, *mine) == [ids[0]]
    ec2.delete_tags(Resources=[ids[0]], Tags=[{"Key": "role"}])
    assert found({"Name": "tag:role", "Values": ["db"]}, *mine) == []
    # The CLI sees them too.
    out = server.aws_json("ec2", "describe-instances", "--filters",
                          f"Name=tag:batch,Values={key}", "--query",
                          "Reservations[].Instances[].InstanceId")
    assert sorted(out) == sorted(ids)
    # Stop two, filter by state.
    ec2.stop_instances(InstanceIds=ids[:2])
    wait_state(ec2, ids[:2], "stopped")
    assert found({"Name": "instance-state-name", "Values": ["stopped"]}, *mine) == sorted(ids[:2])
    statuses = ec2.describe_instance_status(InstanceIds=ids)["InstanceStatuses"]
    assert len(statuses) == 4
    statuses = ec2.describe_instance_status(InstanceIds=ids,
                                            IncludeAllInstances=True)["InstanceStatuses"]
    assert len(statuses) == 6
    out = ec2.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
    assert {o["PreviousState"]["Name"] for o in out} == {"running", "stopped"}
    wait_state(ec2, ids, "terminated")
    terminated = describe(ec2, ids[0])
    assert terminated["State"] == {"Code": 48, "Name": "terminated"}
    launched.clear()


def test_errors(server, ec2, launched):
    ami = debian_ami(ec2)
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(InstanceIds=["i-0123456789abcdef0"])
    assert err(e) == "InvalidInstanceID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(InstanceIds=["i-nope"])
    assert err(e) == "InvalidInstanceID.Malformed"
    with pytest.raises(ClientError) as e:
        ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"])
    assert err(e) == "InvalidInstanceID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1)
    assert err(e) == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, DryRun=True)
    assert err(e) == "DryRunOperation"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t9.huge")
    assert err(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t4g.micro")
    assert err(e) == "InvalidParameterValue"  # arm64 type, x86_64 AMI
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, KeyName="no-such-key")
    assert err(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1,
                          SecurityGroupIds=["sg-0123456789abcdef0"])
    assert err(e) == "InvalidGroup.NotFound"
    # boto3 and the CLI encode user data themselves: send a malformed value on the wire.
    status, body = raw_query(server, {"Action": "RunInstances", "Version": "2016-11-15",
                                      "ImageId": ami, "MinCount": "1", "MaxCount": "1",
                                      "UserData": "not base64!"})
    assert status == 400 and "InvalidParameterValue" in body, body
    # An instance for state errors, with idempotent ClientToken.
    token = unique("tok")
    r1 = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                           ClientToken=token, DisableApiTermination=True)
    iid = r1["Instances"][0]["InstanceId"]
    launched.append(iid)
    r2 = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                           ClientToken=token)
    assert r2["Instances"][0]["InstanceId"] == iid
    with pytest.raises(ClientError) as e:
        ec2.stop_instances(InstanceIds=[iid], DryRun=True)
    assert err(e) == "DryRunOperation"
    wait_state(ec2, [iid], "running")
    with pytest.raises(ClientError) as e:
        ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "t3.small"})
    assert err(e) == "IncorrectInstanceState"
    with pytest.raises(ClientError) as e:
        ec2.terminate_instances(InstanceIds=[iid])
    assert err(e) == "OperationNotPermitted"
    assert ec2.describe_instance_attribute(
        InstanceId=iid, Attribute="disableApiTermination")["DisableApiTermination"]["Value"]


def test_instances_survive_a_server_restart(fresh_server):
    """A graceful shutdown kills nothing: the next server re-adopts the running instance."""
    s = fresh_server()
    ec2 = s.client("ec2")
    r = ec2.run_instances(ImageId=debian_ami(ec2), MinCount=3, MaxCount=3, InstanceType="t3.nano",
                          UserData="#!/bin/sh\necho first boot only\n")
    ids = [i["InstanceId"] for i in r["Instances"]]
    try:
        wait_state(ec2, ids, "running")
        wait_console(ec2, ids[0], lambda t: "first boot only" in t and "ready" in t)
        ec2.stop_instances(InstanceIds=[ids[1]])
        wait_state(ec2, [ids[1]], "stopped")
        data_dir = s.data_dir
        assert s.stop() == 0
        # While the server is down, the third instance's workload dies.
        handle = os.path.join(data_dir, "runtime", "workloads", ids[2], "handle.json")
        with open(handle) as f:
            os.kill(json.load(f)["pid"], signal.SIGKILL)
        s2 = fresh_server(data_dir=data_dir)
        ec2 = s2.client("ec2")
        d = describe(ec2, ids[0])
        assert d["State"]["Name"] == "running"
        assert describe(ec2, ids[1])["State"]["Name"] == "stopped"
        # Re-adoption runs in the background after start: the dead workload is noticed soon.
        wait_state(ec2, [ids[2]], "stopped")
        vanished = describe(ec2, ids[2])
        assert vanished["StateReason"]["Code"] == "Server.InternalError"
        # Still the same boot: the workload kept running through the restart.
        text = console(ec2, ids[0])
        assert text.count("boot 1 of") == 1 and "boot 2 of" not in text
        ec2.reboot_instances(InstanceIds=[ids[0]])
        text = wait_console(ec2, ids[0], lambda t: "boot 2 of" in t and t.count("ready") >= 2)
        assert text.count("first boot only") == 1
        ec2.start_instances(InstanceIds=ids[1:])
        wait_state(ec2, ids, "running")
        # The vanished instance kept its root volume: user data does not run again.
        text = wait_console(ec2, ids[2], lambda t: "boot 2 of" in t and t.count("ready") >= 2)
        assert text.count("first boot only") == 1
    finally:
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")


def test_concurrent_launches_never_share_an_address(fresh_server):
    """RunInstances calls at once in one subnet each get addresses no live instance holds;
    terminated instances give theirs back, and a restarted server knows who holds what."""
    s = fresh_server()
    ec2 = s.client("ec2")
    ami = debian_ami(ec2)
    subnet = sorted(ec2.describe_subnets()["Subnets"], key=lambda x: x["AvailabilityZone"])[0]
    clients = [s.client("ec2") for _ in range(6)]
    ids = []

    def launch(c, out, errors):
        try:
            r = c.run_instances(ImageId=ami, MinCount=3, MaxCount=3, InstanceType="t3.nano",
                                SubnetId=subnet["SubnetId"])
            out.extend((i["InstanceId"], i["PrivateIpAddress"]) for i in r["Instances"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def burst(cs):
        out, errors = [], []
        threads = [threading.Thread(target=launch, args=(c, out, errors)) for c in cs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids.extend(i for i, _ in out)
        assert not errors, errors
        return out

    def live_addresses(c):
        ips = []
        for page in c.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "subnet-id", "Values": [subnet["SubnetId"]]}]):
            for r in page["Reservations"]:
                ips += [i["PrivateIpAddress"] for i in r["Instances"]
                        if i["State"]["Name"] != "terminated"]
        return ips

    try:
        first = burst(clients)
        assert len(first) == 18
        assert len({ip for _, ip in first}) == 18
        # Half of them go; the next burst reuses their addresses but never a live one.
        gone = [i for i, _ in first[::2]]
        ec2.terminate_instances(InstanceIds=gone)
        wait_state(ec2, gone, "terminated")
        second = burst(clients[:3])
        assert {ip for _, ip in second} <= {ip for _, ip in first[::2]}
        live = live_addresses(ec2)
        assert len(live) == 18 and len(set(live)) == 18
        wait_state(ec2, [i for i, _ in first[1::2] + second], "running")
        data_dir = s.data_dir
        assert s.stop() == 0
        s2 = fresh_server(data_dir=data_dir)
        ec2 = s2.client("ec2")
        third = burst([s2.client("ec2") for _ in range(3)])
        live = live_addresses(ec2)
        assert len(live) == 27 and len(set(live)) == 27
        assert not {ip for _, ip in third} & {ip for _, ip in first[1::2] + second}
    finally:
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            wait_state(ec2, ids, "terminated", timeout=120)


def test_stop_while_booting_then_start_boots_again(ec2, launched):
    """A stop that overtakes the first boot, then a start: the instance runs its second boot
    and stays running (the first boot's leftover workload must not take the second one down),
    and it still terminates."""
    ami = debian_ami(ec2)
    for _ in range(3):
        iid = ec2.run_instances(ImageId=ami, InstanceType="t3.small", MinCount=1,
                                MaxCount=1)["Instances"][0]["InstanceId"]
        launched.append(iid)
        ec2.stop_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "stopped")
        ec2.start_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "running")
        # (Whether the first boot got as far as counting itself depends on the race.)
        wait_console(ec2, iid, lambda t: f"instance {iid} ready" in t)
        time.sleep(1)
        assert describe(ec2, iid)["State"]["Name"] == "running"
        ec2.terminate_instances(InstanceIds=[iid])
        wait_state(ec2, [iid], "terminated")
