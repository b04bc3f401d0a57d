"""EC2 black-box tests (the parts without instances): the real binary driven by the AWS CLI and
boto3. Key fingerprints are checked against OpenSSL and OpenSSH computations."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import struct
import subprocess
import tempfile

import pytest
from botocore.exceptions import ClientError

from conftest import unique

OTHER = "111122223333"


def err(excinfo):
    return excinfo.value.response["Error"]


@pytest.fixture
def ec2(server):
    return server.client("ec2")


@pytest.fixture
def ec2_other(server):
    return server.client("ec2", key=OTHER)


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="fc-ec2-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run(cmd, stdin=None):
    p = subprocess.run(cmd, shell=True, capture_output=True, input=stdin, check=True)
    return p.stdout


def cli_error(server, *args, **kw):
    rc, _, stderr = server.aws(*args, check=False, **kw)
    assert rc != 0
    return stderr


def volume_dir(server, vol_id):
    return os.path.join(server.data_dir, "ec2", "volumes", vol_id)


def default_vpc(ec2):
    return ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]


# ---- default VPC, VPCs, subnets, zones, regions ----

def test_default_vpc_subnets_and_zones(server, ec2):
    vpc = default_vpc(ec2)
    assert vpc["CidrBlock"] == "172.31.0.0/16"
    assert vpc["State"] == "available"
    subnets = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                 {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    by_zone = {s["AvailabilityZone"]: s for s in subnets}
    assert sorted(by_zone) == [f"us-east-1{c}" for c in "abcdef"]
    assert by_zone["us-east-1a"]["CidrBlock"] == "172.31.0.0/20"
    assert by_zone["us-east-1b"]["CidrBlock"] == "172.31.16.0/20"
    assert all(s["MapPublicIpOnLaunch"] and s["AvailableIpAddressCount"] == 4091 for s in subnets)
    zones = server.aws_json("ec2", "describe-availability-zones")["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == [f"us-east-1{c}" for c in "abcdef"]
    assert zones[0]["ZoneId"] == "use1-az1" and zones[0]["State"] == "available"
    one = ec2.describe_availability_zones(
        Filters=[{"Name": "zone-name", "Values": ["*-1c"]}])["AvailabilityZones"]
    assert [z["ZoneName"] for z in one] == ["us-east-1c"]
    # Default security group of the default VPC.
    sg = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    assert sg["VpcId"] == vpc["VpcId"]
    assert sg["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == sg["GroupId"]
    assert sg["IpPermissionsEgress"][0]["IpRanges"][0]["CidrIp"] == "0.0.0.0/0"
    # Another region gets its own default VPC.
    west = server.client("ec2", region="eu-west-1")
    assert default_vpc(west)["VpcId"] != vpc["VpcId"]
    assert len(west.describe_subnets()["Subnets"]) == 3


def test_regions_and_account_attributes(server, ec2):
    names = [r["RegionName"] for r in ec2.describe_regions()["Regions"]]
    assert "us-east-1" in names and "eu-west-1" in names and "af-south-1" not in names
    everything = ec2.describe_regions(AllRegions=True)["Regions"]
    af = [r for r in everything if r["RegionName"] == "af-south-1"][0]
    assert af["OptInStatus"] == "not-opted-in"
    got = server.aws_json("ec2", "describe-regions", "--region-names", "us-west-2")["Regions"]
    assert got == [{"RegionName": "us-west-2", "Endpoint": "ec2.us-west-2.amazonaws.com",
                    "OptInStatus": "opt-in-not-required"}]
    eu = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["eu-*"]}])["Regions"]
    assert eu and all(r["RegionName"].startswith("eu-") for r in eu)
    attrs = ec2.describe_account_attributes(AttributeNames=["default-vpc", "supported-platforms"])
    got = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
           for a in attrs["AccountAttributes"]}
    assert got == {"default-vpc": [default_vpc(ec2)["VpcId"]], "supported-platforms": ["VPC"]}


def test_vpc_and_subnet_lifecycle(server, ec2):
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "lab"}]}])["Vpc"]
    vpc_id = vpc["VpcId"]
    assert vpc["Tags"] == [{"Key": "Name", "Value": "lab"}]
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["l?b"]}])["Vpcs"]
    assert [v["VpcId"] for v in found] == [vpc_id]
    # Every new VPC gets its own default security group.
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    assert [g["GroupName"] for g in groups] == ["default"]
    sub = server.aws_json("ec2", "create-subnet", "--vpc-id", vpc_id, "--cidr-block",
                          "10.20.1.0/24", "--availability-zone", "us-east-1d")["Subnet"]
    assert sub["AvailabilityZone"] == "us-east-1d" and sub["AvailableIpAddressCount"] == 251
    with pytest.raises(ClientError) as e:
        ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/25")
    assert err(e)["Code"] == "InvalidSubnet.Conflict"
    with pytest.raises(ClientError) as e:
        ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.99.0.0/24")
    assert err(e)["Code"] == "InvalidSubnet.Range"
    with pytest.raises(ClientError) as e:
        ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.0.0/29x")
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.create_vpc(CidrBlock="10.0.0.0/8")
    assert err(e)["Code"] == "InvalidVpc.Range"
    with pytest.raises(ClientError) as e:
        ec2.delete_vpc(VpcId=vpc_id)
    assert err(e)["Code"] == "DependencyViolation"
    ec2.delete_subnet(SubnetId=sub["SubnetId"])
    with pytest.raises(ClientError) as e:
        ec2.describe_subnets(SubnetIds=[sub["SubnetId"]])
    assert err(e)["Code"] == "InvalidSubnetID.NotFound"
    ec2.delete_vpc(VpcId=vpc_id)
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs(VpcIds=[vpc_id])
    assert err(e)["Code"] == "InvalidVpcID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.delete_vpc(VpcId="vpc-0123456789abcdef0")
    assert err(e)["Code"] == "InvalidVpcID.NotFound"


def test_vpc_pagination(ec2):
    ids = [ec2.create_vpc(CidrBlock=f"10.{60 + i}.0.0/16")["Vpc"]["VpcId"] for i in range(6)]
    seen, token = [], None
    while True:
        kw = {"MaxResults": 5}
        if token:
            kw["NextToken"] = token
        page = ec2.describe_vpcs(**kw)
        assert len(page["Vpcs"]) <= 5
        seen += [v["VpcId"] for v in page["Vpcs"]]
        token = page.get("NextToken")
        if not token:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    for i in ids:
        ec2.delete_vpc(VpcId=i)


def test_default_vpc_recreate_and_attributes(fresh_server):
    srv = fresh_server()
    ec2 = srv.client("ec2")
    vpc = default_vpc(ec2)["VpcId"]
    dns = ec2.describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsHostnames")
    assert dns["EnableDnsHostnames"]["Value"] is True
    with pytest.raises(ClientError) as e:
        ec2.create_default_vpc()
    assert err(e)["Code"] == "DefaultVpcAlreadyExists"
    for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=s["SubnetId"])
    ec2.delete_vpc(VpcId=vpc)
    attrs = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert attrs[0]["AttributeValues"] == [{"AttributeValue": "none"}]
    assert ec2.describe_vpcs()["Vpcs"] == []
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName="x", Description="x")
    assert err(e)["Code"] == "VPCIdNotSpecified"
    new = srv.aws_json("ec2", "create-default-vpc")["Vpc"]
    assert new["IsDefault"] is True and new["CidrBlock"] == "172.31.0.0/16"
    assert len(ec2.describe_subnets()["Subnets"]) == 6
    # Attributes of a new VPC.
    mine = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    assert ec2.describe_vpc_attribute(VpcId=mine, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"] is False
    ec2.modify_vpc_attribute(VpcId=mine, EnableDnsHostnames={"Value": True})
    assert ec2.describe_vpc_attribute(VpcId=mine, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"] is True
    sub = ec2.create_subnet(VpcId=mine, CidrBlock="10.1.0.0/24")["Subnet"]
    assert sub["MapPublicIpOnLaunch"] is False
    ec2.modify_subnet_attribute(SubnetId=sub["SubnetId"], MapPublicIpOnLaunch={"Value": True})
    got = ec2.describe_subnets(Filters=[{"Name": "map-public-ip-on-launch", "Values": ["true"]},
                                        {"Name": "vpc-id", "Values": [mine]}])["Subnets"]
    assert [s["SubnetId"] for s in got] == [sub["SubnetId"]]


def test_state_survives_restart(fresh_server):
    srv = fresh_server()
    ec2 = srv.client("ec2")
    key = ec2.create_key_pair(KeyName="keep")
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=2)["VolumeId"]
    with open(os.path.join(volume_dir(srv, vol), "f"), "w") as f:
        f.write("x")
    sg = ec2.create_security_group(GroupName="keep", Description="k")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpProtocol="tcp", FromPort=80, ToPort=80,
                                         CidrIp="0.0.0.0/0")
    vpc = default_vpc(ec2)["VpcId"]
    srv.stop()
    srv.start()
    ec2 = srv.client("ec2")
    assert ec2.describe_key_pairs(KeyNames=["keep"])["KeyPairs"][0]["KeyFingerprint"] == key["KeyFingerprint"]
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Size"] == 2
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    restored = ec2.create_volume(AvailabilityZone="us-east-1b", SnapshotId=snap)["VolumeId"]
    assert os.path.exists(os.path.join(volume_dir(srv, restored), "f"))
    perms = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    assert perms[0]["FromPort"] == 80
    assert default_vpc(ec2)["VpcId"] == vpc


# ---- security groups ----

def test_security_groups_with_cli(server):
    name = unique("web")
    gid = server.aws_json("ec2", "create-security-group", "--group-name", name,
                          "--description", "web tier")["GroupId"]
    out = server.aws_json("ec2", "authorize-security-group-ingress", "--group-id", gid,
                          "--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
    assert out["Return"] is True
    rule = out["SecurityGroupRules"][0]
    assert rule["SecurityGroupRuleId"].startswith("sgr-")
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"]) == \
        ("tcp", 22, 22, "203.0.113.0/24")
    stderr = cli_error(server, "ec2", "authorize-security-group-ingress", "--group-id", gid,
                       "--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
    assert "InvalidPermission.Duplicate" in stderr
    # Legacy form by group name in the default VPC.
    server.aws("ec2", "authorize-security-group-ingress", "--group-name", name,
               "--protocol", "udp", "--port", "53-54", "--cidr", "0.0.0.0/0")
    sg = server.aws_json("ec2", "describe-security-groups", "--group-ids", gid)["SecurityGroups"][0]
    perms = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")): p for p in sg["IpPermissions"]}
    assert perms[("tcp", 22, 22)]["IpRanges"] == [{"CidrIp": "203.0.113.0/24"}]
    assert ("udp", 53, 54) in perms
    rules = server.aws_json("ec2", "describe-security-group-rules", "--filters",
                            f"Name=group-id,Values={gid}")["SecurityGroupRules"]
    assert len(rules) == 3  # two ingress, the default egress
    assert sum(r["IsEgress"] for r in rules) == 1
    server.aws("ec2", "revoke-security-group-ingress", "--group-id", gid,
               "--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
    stderr = cli_error(server, "ec2", "revoke-security-group-ingress", "--group-id", gid,
                       "--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
    assert "InvalidPermission.NotFound" in stderr
    server.aws("ec2", "delete-security-group", "--group-id", gid)
    stderr = cli_error(server, "ec2", "describe-security-groups", "--group-ids", gid)
    assert "InvalidGroup.NotFound" in stderr


def test_security_group_rules_with_boto3(ec2):
    app = ec2.create_security_group(GroupName=unique("app"), Description="app", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "tier", "Value": "app"}]}])
    db = ec2.create_security_group(GroupName=unique("db"), Description="db")
    assert app["SecurityGroupArn"].endswith("security-group/" + app["GroupId"])
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName="default", Description="x")
    assert err(e)["Code"] in ("InvalidGroup.Duplicate", "InvalidGroup.Reserved")
    perms = [
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
         "UserIdGroupPairs": [{"GroupId": app["GroupId"], "Description": "from app"}]},
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "6", "FromPort": 80, "ToPort": 443,
         "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}], "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    ]
    out = ec2.authorize_security_group_ingress(GroupId=db["GroupId"], IpPermissions=perms,
                                               TagSpecifications=[{"ResourceType": "security-group-rule",
                                                                   "Tags": [{"Key": "r", "Value": "1"}]}])
    assert len(out["SecurityGroupRules"]) == 4
    assert out["SecurityGroupRules"][0]["ReferencedGroupInfo"]["GroupId"] == app["GroupId"]
    assert out["SecurityGroupRules"][0]["Tags"] == [{"Key": "r", "Value": "1"}]
    sg = ec2.describe_security_groups(GroupIds=[db["GroupId"]])["SecurityGroups"][0]
    by_proto = {(p["IpProtocol"], p.get("FromPort")): p for p in sg["IpPermissions"]}
    assert by_proto[("tcp", 80)]["ToPort"] == 443
    assert by_proto[("tcp", 80)]["Ipv6Ranges"] == [{"CidrIpv6": "2001:db8::/32"}]
    assert by_proto[("icmp", 8)]["IpRanges"] == [{"CidrIp": "10.0.0.0/8"}]
    assert by_proto[("tcp", 5432)]["UserIdGroupPairs"][0]["Description"] == "from app"
    # Filters with wildcards, on names and on rules.
    got = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": ["db-*"]},
        {"Name": "ip-permission.group-id", "Values": [app["GroupId"]]}])["SecurityGroups"]
    assert [g["GroupId"] for g in got] == [db["GroupId"]]
    got = ec2.describe_security_groups(Filters=[{"Name": "tag:tier", "Values": ["a*"]}])["SecurityGroups"]
    assert app["GroupId"] in [g["GroupId"] for g in got]
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert err(e)["Code"] == "InvalidParameterValue"
    # The referenced group cannot go while referenced.
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=app["GroupId"])
    assert err(e)["Code"] == "DependencyViolation"
    # Bad ports and protocols.
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=db["GroupId"], IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 90, "ToPort": 80, "IpRanges": [{"CidrIp": "1.2.3.4/32"}]}])
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=db["GroupId"], IpPermissions=[
            {"IpProtocol": "bogus", "IpRanges": [{"CidrIp": "1.2.3.4/32"}]}])
    assert err(e)["Code"] == "InvalidParameterValue"
    # Egress: replace allow-all with one rule.
    ec2.revoke_security_group_egress(GroupId=db["GroupId"], IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(GroupId=db["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    sg = ec2.describe_security_groups(GroupIds=[db["GroupId"]])["SecurityGroups"][0]
    assert [(p["IpProtocol"], p["FromPort"]) for p in sg["IpPermissionsEgress"]] == [("tcp", 443)]
    # Rules by id: modify one, revoke one.
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [db["GroupId"]]}])["SecurityGroupRules"]
    icmp = [r for r in rules if r["IpProtocol"] == "icmp"][0]
    ec2.modify_security_group_rules(GroupId=db["GroupId"], SecurityGroupRules=[{
        "SecurityGroupRuleId": icmp["SecurityGroupRuleId"],
        "SecurityGroupRule": {"IpProtocol": "icmp", "FromPort": 0, "ToPort": -1,
                              "CidrIpv4": "192.168.0.0/16", "Description": "ping"}}])
    r = ec2.describe_security_group_rules(SecurityGroupRuleIds=[icmp["SecurityGroupRuleId"]])["SecurityGroupRules"][0]
    assert (r["CidrIpv4"], r["FromPort"], r["Description"]) == ("192.168.0.0/16", 0, "ping")
    out = ec2.revoke_security_group_ingress(GroupId=db["GroupId"],
                                            SecurityGroupRuleIds=[icmp["SecurityGroupRuleId"]])
    assert out["RevokedSecurityGroupRules"][0]["SecurityGroupRuleId"] == icmp["SecurityGroupRuleId"]
    with pytest.raises(ClientError) as e:
        ec2.describe_security_group_rules(SecurityGroupRuleIds=[icmp["SecurityGroupRuleId"]])
    assert err(e)["Code"] == "InvalidSecurityGroupRuleId.NotFound"
    ec2.delete_security_group(GroupId=db["GroupId"])
    ec2.delete_security_group(GroupId=app["GroupId"])
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=default["GroupId"])
    assert err(e)["Code"] == "CannotDelete"


# ---- key pairs ----

def test_create_rsa_key_pair_fingerprint(server, tmp):
    name = unique("rsa")
    out = server.aws_json("ec2", "create-key-pair", "--key-name", name)
    assert out["KeyPairId"].startswith("key-")
    pem = os.path.join(tmp, "k.pem")
    with open(pem, "w") as f:
        f.write(out["KeyMaterial"] + "\n")
    os.chmod(pem, 0o600)
    assert out["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    # AWS: SHA-1 of the PKCS#8 DER private key.
    der = run(f"openssl pkcs8 -in {pem} -inform PEM -outform DER -topk8 -nocrypt")
    want = ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())
    assert out["KeyFingerprint"] == want
    assert len(run(f"openssl rsa -in {pem} -noout -text 2>/dev/null | head -1")) > 0
    pub = run(f"ssh-keygen -y -f {pem}").decode().split()[:2]
    kp = server.aws_json("ec2", "describe-key-pairs", "--key-names", name,
                         "--include-public-key")["KeyPairs"][0]
    assert kp["PublicKey"].split()[:2] == pub
    assert kp["KeyType"] == "rsa" and kp["KeyFingerprint"] == want
    stderr = cli_error(server, "ec2", "create-key-pair", "--key-name", name)
    assert "InvalidKeyPair.Duplicate" in stderr
    server.aws("ec2", "delete-key-pair", "--key-name", name)


def test_create_ed25519_key_pair_fingerprint(ec2, tmp):
    name = unique("ed")
    out = ec2.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=[
        {"ResourceType": "key-pair", "Tags": [{"Key": "owner", "Value": "me"}]}])
    assert out["Tags"] == [{"Key": "owner", "Value": "me"}]
    path = os.path.join(tmp, "k")
    with open(path, "w") as f:
        f.write(out["KeyMaterial"] + "\n")
    os.chmod(path, 0o600)
    assert "OPENSSH PRIVATE KEY" in out["KeyMaterial"]
    # ssh-keygen -l prints SHA256:<base64 without padding>.
    line = run(f"ssh-keygen -l -f {path}").decode().split()
    assert line[1] == "SHA256:" + out["KeyFingerprint"].rstrip("=")
    assert out["KeyFingerprint"].endswith("=")
    kp = ec2.describe_key_pairs(KeyPairIds=[out["KeyPairId"]])["KeyPairs"][0]
    assert kp["KeyType"] == "ed25519" and kp["Tags"] == out["Tags"]
    ec2.delete_key_pair(KeyPairId=out["KeyPairId"])
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=[name])
    assert err(e)["Code"] == "InvalidKeyPair.NotFound"
    assert err(e)["Message"] == f"The key pair '{name}' does not exist"


def test_import_key_pairs(server, ec2, tmp):
    run(f"ssh-keygen -q -t rsa -b 2048 -N '' -C me@host -f {tmp}/rsa")
    run(f"ssh-keygen -q -t ed25519 -N '' -C me@host -f {tmp}/ed")
    name = unique("imp-rsa")
    out = server.aws_json("ec2", "import-key-pair", "--key-name", name,
                          "--public-key-material", f"fileb://{tmp}/rsa.pub")
    # AWS: MD5 of the DER public key (SubjectPublicKeyInfo).
    der = run(f"ssh-keygen -e -m PKCS8 -f {tmp}/rsa.pub | openssl pkey -pubin -outform DER")
    assert out["KeyFingerprint"] == ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())
    with open(f"{tmp}/ed.pub", "rb") as f:
        material = f.read()
    ed = ec2.import_key_pair(KeyName=unique("imp-ed"), PublicKeyMaterial=material)
    line = run(f"ssh-keygen -l -f {tmp}/ed.pub").decode().split()
    assert line[1] == "SHA256:" + ed["KeyFingerprint"].rstrip("=")
    # RFC 4716 form of the same key.
    rfc = run(f"ssh-keygen -e -f {tmp}/ed.pub")
    again = ec2.import_key_pair(KeyName=unique("imp-rfc"), PublicKeyMaterial=rfc)
    assert again["KeyFingerprint"] == ed["KeyFingerprint"]
    kp = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
    assert kp["PublicKey"].split()[1] == material.split()[1].decode() or \
        kp["PublicKey"].split()[0] == "ssh-rsa"
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=unique("bad"), PublicKeyMaterial=b"ssh-rsa not-a-key")
    assert err(e)["Code"] == "InvalidKey.Format"
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=material)
    assert err(e)["Code"] == "InvalidKeyPair.Duplicate"


def ssh_string(b):
    return struct.pack(">I", len(b)) + b


def test_key_pair_ppk(ec2, tmp):
    for key_type, alg in (("rsa", "ssh-rsa"), ("ed25519", "ssh-ed25519")):
        name = unique("ppk")
        out = ec2.create_key_pair(KeyName=name, KeyType=key_type, KeyFormat="ppk")
        lines = out["KeyMaterial"].strip().split("\n")
        assert lines[0] == f"PuTTY-User-Key-File-3: {alg}"
        assert lines[1] == "Encryption: none" and lines[2] == f"Comment: {name}"
        n_pub = int(lines[3].split(": ")[1])
        public = base64.b64decode("".join(lines[4:4 + n_pub]))
        n_priv = int(lines[4 + n_pub].split(": ")[1])
        private = base64.b64decode("".join(lines[5 + n_pub:5 + n_pub + n_priv]))
        mac = lines[5 + n_pub + n_priv].split(": ")[1]
        # PPK v3 MAC: HMAC-SHA-256 with an empty key for unencrypted files.
        data = b"".join(ssh_string(x) for x in (alg.encode(), b"none", name.encode(), public, private))
        assert hmac.new(b"", data, hashlib.sha256).hexdigest() == mac
        kp = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
        assert base64.b64decode(kp["PublicKey"].split()[1]) == public
        if shutil.which("puttygen"):
            path = os.path.join(tmp, f"{key_type}.ppk")
            with open(path, "w") as f:
                f.write(out["KeyMaterial"])
            pub = run(f"puttygen {path} -L").decode().split()
            assert pub[1] == kp["PublicKey"].split()[1]
        ec2.delete_key_pair(KeyName=name)


def test_describe_and_delete_key_pairs(ec2):
    prefix = unique("kp")
    ids = [ec2.create_key_pair(KeyName=f"{prefix}-{i}")["KeyPairId"] for i in range(3)]
    got = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"{prefix}-*"]}])["KeyPairs"]
    assert sorted(k["KeyPairId"] for k in got) == sorted(ids)
    got = ec2.describe_key_pairs(Filters=[{"Name": "key-pair-id", "Values": [ids[1]]}])["KeyPairs"]
    assert [k["KeyName"] for k in got] == [f"{prefix}-1"]
    assert "PublicKey" not in got[0]
    with pytest.raises(ClientError) as e:
        ec2.delete_key_pair(KeyName=f"{prefix}-0", DryRun=True)
    assert err(e)["Code"] == "DryRunOperation"
    assert ec2.delete_key_pair(KeyName=f"{prefix}-0")["KeyPairId"] == ids[0]
    assert ec2.delete_key_pair(KeyPairId=ids[1])["Return"] is True
    # Deleting what does not exist succeeds, as on AWS.
    assert ec2.delete_key_pair(KeyName=f"{prefix}-0")["Return"] is True
    left = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"{prefix}-*"]}])["KeyPairs"]
    assert [k["KeyPairId"] for k in left] == [ids[2]]


# ---- instance types ----

def test_describe_instance_types_cli(server):
    out = server.aws_json("ec2", "describe-instance-types", "--instance-types", "t3.micro")
    t = out["InstanceTypes"][0]
    assert t["InstanceType"] == "t3.micro"
    assert t["VCpuInfo"]["DefaultVCpus"] == 2 and t["MemoryInfo"]["SizeInMiB"] == 1024
    assert t["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"]
    assert t["NetworkInfo"]["NetworkPerformance"] == "Up to 5 Gigabit"
    assert t["BurstablePerformanceSupported"] is True and t["CurrentGeneration"] is True
    gpu = server.aws_json("ec2", "describe-instance-types", "--instance-types", "p4d.24xlarge")
    g = gpu["InstanceTypes"][0]
    assert g["GpuInfo"]["Gpus"][0]["Name"] == "A100" and g["GpuInfo"]["Gpus"][0]["Count"] == 8
    assert g["InstanceStorageInfo"]["TotalSizeInGB"] == 8000
    fpga = server.aws_json("ec2", "describe-instance-types", "--instance-types", "f1.2xlarge")
    assert fpga["InstanceTypes"][0]["FpgaInfo"]["Fpgas"][0]["Manufacturer"] == "Xilinx"
    stderr = cli_error(server, "ec2", "describe-instance-types", "--instance-types", "t9.huge")
    assert "InvalidInstanceType" in stderr
    # The CLI pages through everything.
    all_types = server.aws_json("ec2", "describe-instance-types")["InstanceTypes"]
    assert len(all_types) >= 60


def test_instance_type_filters_and_pagination(ec2):
    def names(**kw):
        return sorted(t["InstanceType"] for t in ec2.describe_instance_types(**kw)["InstanceTypes"])

    assert names(Filters=[{"Name": "instance-type", "Values": ["t4g.*"]}])[0] == "t4g.large"
    arm = names(Filters=[{"Name": "processor-info.supported-architecture", "Values": ["arm64"]},
                         {"Name": "instance-type", "Values": ["c7g.*", "t4g.?icro"]}])
    assert arm == ["c7g.16xlarge", "c7g.large", "c7g.medium", "c7g.xlarge", "t4g.micro"]
    assert names(Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["192"]}]) == \
        ["g5.48xlarge", "m7i.48xlarge"]
    assert "t2.micro" in names(Filters=[{"Name": "memory-info.size-in-mib", "Values": ["1024"]},
                                        {"Name": "current-generation", "Values": ["true"]}])
    hdd = names(Filters=[{"Name": "instance-storage-info.disk.type", "Values": ["hdd"]}])
    assert hdd and all(n.startswith("d3.") for n in hdd)
    with pytest.raises(ClientError) as e:
        ec2.describe_instance_types(Filters=[{"Name": "bogus", "Values": ["1"]}])
    assert err(e)["Code"] == "InvalidParameterValue"
    seen, token, pages = [], None, 0
    while True:
        kw = {"MaxResults": 20}
        if token:
            kw["NextToken"] = token
        page = ec2.describe_instance_types(**kw)
        pages += 1
        assert len(page["InstanceTypes"]) <= 20
        seen += [t["InstanceType"] for t in page["InstanceTypes"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages >= 3 and len(seen) == len(set(seen)) >= 60
    paged = [t for p in ec2.get_paginator("describe_instance_types").paginate(
        PaginationConfig={"PageSize": 25}) for t in p["InstanceTypes"]]
    assert len(paged) == len(seen)
    with pytest.raises(ClientError) as e:
        ec2.describe_instance_types(MaxResults=1000)
    assert err(e)["Code"] == "InvalidParameterValue"


def test_instance_type_offerings(server, ec2):
    region = ec2.describe_instance_type_offerings(
        Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}])["InstanceTypeOfferings"]
    assert region == [{"InstanceType": "t3.micro", "LocationType": "region", "Location": "us-east-1"}]
    zones = server.aws_json("ec2", "describe-instance-type-offerings", "--location-type",
                            "availability-zone", "--filters", "Name=instance-type,Values=m5.large")
    assert sorted(o["Location"] for o in zones["InstanceTypeOfferings"]) == \
        [f"us-east-1{c}" for c in "abcdef"]
    p4 = ec2.describe_instance_type_offerings(
        LocationType="availability-zone-id",
        Filters=[{"Name": "instance-type", "Values": ["p4d.*"]}])["InstanceTypeOfferings"]
    assert sorted(o["Location"] for o in p4) == ["use1-az1", "use1-az2"]
    one_zone = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "location", "Values": ["us-east-1c"]}])["InstanceTypeOfferings"]
    assert len(one_zone) >= 55


# ---- AMIs ----

def test_describe_public_images(server, ec2):
    al = ec2.describe_images(Owners=["amazon"], Filters=[
        {"Name": "name", "Values": ["al2023-ami-2023.*-x86_64"]},
        {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
    assert [i["Name"] for i in al] == ["al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64"]
    img = al[0]
    assert img["OwnerId"] == "137112412989" and img["ImageOwnerAlias"] == "amazon"
    assert img["RootDeviceName"] == "/dev/xvda" and img["VirtualizationType"] == "hvm"
    assert img["EnaSupport"] is True and img["Public"] is True and img["State"] == "available"
    assert img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"].startswith("snap-")
    # The deprecated build shows only when asked for.
    with_old = ec2.describe_images(Owners=["amazon"], IncludeDeprecated=True, Filters=[
        {"Name": "name", "Values": ["al2023-ami-2023.*-x86_64"]}])["Images"]
    assert len(with_old) == 2
    ubuntu = server.aws_json("ec2", "describe-images", "--owners", "099720109477", "--filters",
                             "Name=name,Values=ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*")
    assert len(ubuntu["Images"]) == 1
    debian = ec2.describe_images(Owners=["136693071363"], Filters=[
        {"Name": "name", "Values": ["debian-12-*"]}])["Images"]
    assert sorted(i["Architecture"] for i in debian) == ["arm64", "x86_64"]
    market = ec2.describe_images(Owners=["aws-marketplace"])["Images"]
    assert len(market) >= 2 and all(i["ProductCodes"][0]["ProductCodeType"] == "marketplace" for i in market)
    code = market[0]["ProductCodes"][0]["ProductCodeId"]
    got = ec2.describe_images(Filters=[{"Name": "product-code", "Values": [code]}])["Images"]
    assert [i["ImageId"] for i in got] == [market[0]["ImageId"]]
    # Ids are stable per region and differ between regions.
    again = ec2.describe_images(ImageIds=[img["ImageId"]])["Images"]
    assert again[0]["Name"] == img["Name"]
    west = server.client("ec2", region="us-west-2").describe_images(Owners=["amazon"], Filters=[
        {"Name": "name", "Values": [img["Name"]]}])["Images"]
    assert west[0]["ImageId"] != img["ImageId"]
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=["ami-0123456789abcdef0"])
    assert err(e)["Code"] == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=["nope"])
    assert err(e)["Code"] == "InvalidAMIID.Malformed"
    page = ec2.describe_images(ExecutableUsers=["all"], MaxResults=5)
    assert len(page["Images"]) == 5 and "NextToken" in page
    rest = ec2.describe_images(ExecutableUsers=["all"], MaxResults=5, NextToken=page["NextToken"])
    assert not {i["ImageId"] for i in rest["Images"]} & {i["ImageId"] for i in page["Images"]}


def make_snapshot(ec2, size=8):
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=size, VolumeType="gp3")
    snap = ec2.create_snapshot(VolumeId=vol["VolumeId"], Description="root")
    return vol["VolumeId"], snap["SnapshotId"]


def test_register_share_and_copy_images(server, ec2, ec2_other):
    vol_id, snap_id = make_snapshot(ec2)
    name = unique("golden")
    ami = ec2.register_image(Name=name, Architecture="x86_64", RootDeviceName="/dev/xvda",
                             BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                                   "Ebs": {"SnapshotId": snap_id, "VolumeType": "gp3"}}],
                             TagSpecifications=[{"ResourceType": "image",
                                                 "Tags": [{"Key": "team", "Value": "infra"}]}])["ImageId"]
    img = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:team", "Values": ["infra"]},
                                                        {"Name": "name", "Values": [name]}])["Images"]
    assert [i["ImageId"] for i in img] == [ami]
    assert img[0]["Public"] is False and img[0]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 8
    with pytest.raises(ClientError) as e:
        ec2.register_image(Name=name, ImageLocation="myapp:latest")
    assert err(e)["Code"] == "InvalidAMIName.Duplicate"
    with pytest.raises(ClientError) as e:
        ec2.delete_snapshot(SnapshotId=snap_id)
    assert err(e)["Code"] == "InvalidSnapshot.InUse"
    # From a registry image.
    reg = ec2.register_image(Name=unique("from-registry"), ImageLocation="myapp:v1")["ImageId"]
    got = ec2.describe_images(ImageIds=[reg])["Images"][0]
    assert got["ImageLocation"] == "myapp:v1"
    # Not visible to another account until shared.
    with pytest.raises(ClientError) as e:
        ec2_other.describe_images(ImageIds=[ami])
    assert err(e)["Code"] == "InvalidAMIID.NotFound"
    server.aws("ec2", "modify-image-attribute", "--image-id", ami, "--launch-permission",
               json.dumps({"Add": [{"UserId": OTHER}]}))
    attr = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
    assert attr["LaunchPermissions"] == [{"UserId": OTHER}]
    mine = ec2_other.describe_images(ExecutableUsers=["self"])["Images"]
    assert [i["ImageId"] for i in mine] == [ami]
    assert ec2_other.describe_images(ImageIds=[ami])["Images"][0]["OwnerId"] == "000000000000"
    assert ec2_other.describe_images(Owners=["000000000000"])["Images"][0]["ImageId"] == ami
    with pytest.raises(ClientError) as e:
        ec2_other.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
    assert err(e)["Code"] == "AuthFailure"
    # Public: a community AMI.
    ec2.modify_image_attribute(ImageId=ami, Attribute="launchPermission", OperationType="add",
                               UserGroups=["all"])
    public = ec2_other.describe_images(Filters=[{"Name": "is-public", "Values": ["true"]},
                                                {"Name": "owner-id", "Values": ["000000000000"]}])["Images"]
    assert [i["ImageId"] for i in public] == [ami] and public[0]["Public"] is True
    assert ami in [i["ImageId"] for i in ec2_other.describe_images(ExecutableUsers=["all"])["Images"]]
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Remove": [{"Group": "all"}, {"UserId": OTHER}]})
    with pytest.raises(ClientError) as e:
        ec2_other.describe_images(ImageIds=[ami])
    assert err(e)["Code"] == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": "12345"}]})
    assert err(e)["Code"] == "InvalidAMIAttributeItemValue"
    ec2.modify_image_attribute(ImageId=ami, Description={"Value": "golden image"})
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="description")["Description"]["Value"] == "golden image"
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": OTHER}]})
    ec2.reset_image_attribute(ImageId=ami, Attribute="launchPermission")
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"] == []
    # Copy to another region: new id, same content.
    west = server.client("ec2", region="us-west-2")
    copy = west.copy_image(SourceImageId=ami, SourceRegion="us-east-1", Name=unique("copy"),
                           CopyImageTags=True)["ImageId"]
    assert copy != ami
    c = west.describe_images(ImageIds=[copy])["Images"][0]
    assert c["SourceImageId"] == ami and c["SourceImageRegion"] == "us-east-1"
    assert c["Tags"] == [{"Key": "team", "Value": "infra"}]
    assert c["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] != snap_id
    # A catalog image can be copied too.
    al = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["al2023-ami-2023.6.20241212.0-kernel-6.1-arm64"]}])["Images"][0]
    mine = ec2.copy_image(SourceImageId=al["ImageId"], SourceRegion="us-east-1", Name=unique("my-al"))["ImageId"]
    assert ec2.describe_images(ImageIds=[mine])["Images"][0]["Architecture"] == "arm64"
    # Deregister; the snapshot stays until deleted.
    with pytest.raises(ClientError) as e:
        ec2.deregister_image(ImageId=ami, DryRun=True)
    assert err(e)["Code"] == "DryRunOperation"
    ec2.deregister_image(ImageId=ami)
    ec2.deregister_image(ImageId=mine)
    out = west.deregister_image(ImageId=copy, DeleteAssociatedSnapshots=True)
    assert out["DeleteSnapshotResults"][0]["ReturnCode"] == "success"
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=[ami])
    assert err(e)["Code"] == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.deregister_image(ImageId=al["ImageId"])
    assert err(e)["Code"] == "AuthFailure"
    ec2.delete_snapshot(SnapshotId=snap_id)
    ec2.delete_volume(VolumeId=vol_id)
    ec2.deregister_image(ImageId=reg)
    stderr = cli_error(server, "ec2", "create-image", "--instance-id", "i-0123456789abcdef0",
                       "--name", "xyz-image")
    assert "InvalidInstanceID.NotFound" in stderr


# ---- volumes and snapshots ----

def test_volume_lifecycle_and_limits(server, ec2):
    out = server.aws_json("ec2", "create-volume", "--availability-zone", "us-east-1b", "--size", "20",
                          "--volume-type", "gp3", "--iops", "4000", "--throughput", "250",
                          "--tag-specifications", "ResourceType=volume,Tags=[{Key=app,Value=db}]")
    vid = out["VolumeId"]
    assert out["State"] == "creating" and out["Iops"] == 4000 and out["Throughput"] == 250
    v = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert v["State"] == "available" and v["Attachments"] == [] and v["AvailabilityZone"] == "us-east-1b"
    assert v["Tags"] == [{"Key": "app", "Value": "db"}]
    gp2 = ec2.create_volume(AvailabilityZone="us-east-1a", Size=100)
    assert gp2["VolumeType"] == "gp2" and gp2["Iops"] == 300
    io2 = ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, VolumeType="io2", Iops=5000)
    enc = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, Encrypted=True)
    assert enc["Encrypted"] is True and enc["KmsKeyId"].startswith("arn:aws:kms:us-east-1:000000000000:key/")
    kms = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"
    enc2 = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, Encrypted=True, KmsKeyId=kms)
    assert enc2["KmsKeyId"] == kms
    bad = [
        (dict(Size=20000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="st1"), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="io1"), "MissingParameter"),
        (dict(Size=10, VolumeType="io1", Iops=1000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="gp2", Iops=1000), "InvalidParameterCombination"),
        (dict(Size=10, VolumeType="gp3", Throughput=2000), "InvalidParameterValue"),
        (dict(Size=2000, VolumeType="standard"), "InvalidParameterValue"),
        (dict(), "MissingParameter"),
        (dict(Size=1, KmsKeyId=kms), "InvalidParameterDependency"),
    ]
    for kw, code in bad:
        with pytest.raises(ClientError) as e:
            ec2.create_volume(AvailabilityZone="us-east-1a", **kw)
        assert err(e)["Code"] == code, kw
    with pytest.raises(ClientError) as e:
        ec2.create_volume(AvailabilityZone="us-east-1z", Size=1)
    assert err(e)["Code"] == "InvalidParameterValue"
    # Filters.
    got = ec2.describe_volumes(Filters=[{"Name": "volume-type", "Values": ["io*"]},
                                        {"Name": "status", "Values": ["available"]}])["Volumes"]
    assert io2["VolumeId"] in [x["VolumeId"] for x in got]
    assert all(x["VolumeType"].startswith("io") for x in got)
    got = ec2.describe_volumes(Filters=[{"Name": "tag:app", "Values": ["d?"]},
                                        {"Name": "size", "Values": ["20"]}])["Volumes"]
    assert [x["VolumeId"] for x in got] == [vid]
    got = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": ["i-*"]}])["Volumes"]
    assert got == []
    # Modify and its record.
    mod = ec2.modify_volume(VolumeId=vid, Size=40, VolumeType="io2", Iops=8000)["VolumeModification"]
    assert (mod["OriginalSize"], mod["TargetSize"], mod["TargetVolumeType"]) == (20, 40, "io2")
    assert mod["ModificationState"] == "modifying"
    mods = server.aws_json("ec2", "describe-volumes-modifications", "--volume-ids", vid)
    assert mods["VolumesModifications"][0]["ModificationState"] == "completed"
    v = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert (v["Size"], v["VolumeType"], v["Iops"]) == (40, "io2", 8000)
    with pytest.raises(ClientError) as e:
        ec2.modify_volume(VolumeId=vid, Size=10)
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=vid, DryRun=True)
    assert err(e)["Code"] == "DryRunOperation"
    for x in (vid, gp2["VolumeId"], io2["VolumeId"], enc["VolumeId"], enc2["VolumeId"]):
        ec2.delete_volume(VolumeId=x)
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=vid)
    assert err(e)["Code"] == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=["vol-nothex"])
    assert err(e)["Code"] == "InvalidVolumeID.Malformed"


def test_volume_pagination(ec2):
    tag = unique("page")
    ids = [ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "page", "Value": tag}]}])["VolumeId"] for _ in range(7)]
    flt = [{"Name": "tag:page", "Values": [tag]}]
    first = ec2.describe_volumes(Filters=flt, MaxResults=5)
    assert len(first["Volumes"]) == 5
    second = ec2.describe_volumes(Filters=flt, MaxResults=5, NextToken=first["NextToken"])
    assert len(second["Volumes"]) == 2 and "NextToken" not in second
    assert {v["VolumeId"] for v in first["Volumes"] + second["Volumes"]} == set(ids)
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(MaxResults=5, NextToken="garbage")
    assert err(e)["Code"] == "InvalidNextToken"
    for i in ids:
        ec2.delete_volume(VolumeId=i)


def test_snapshots_hold_volume_data(server, ec2, ec2_other):
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=5)["VolumeId"]
    with open(os.path.join(volume_dir(server, vol), "hello.txt"), "w") as f:
        f.write("persisted bytes")
    snap = server.aws_json("ec2", "create-snapshot", "--volume-id", vol, "--description", "nightly",
                           "--tag-specifications", "ResourceType=snapshot,Tags=[{Key=k,Value=v}]")
    sid = snap["SnapshotId"]
    assert snap["State"] == "pending" and snap["VolumeSize"] == 5
    s = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
    assert s["State"] == "completed" and s["Progress"] == "100%" and s["Description"] == "nightly"
    mine = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "description", "Values": ["night*"]},
                                                              {"Name": "tag:k", "Values": ["v"]}])["Snapshots"]
    assert sid in [x["SnapshotId"] for x in mine]
    # A volume created from the snapshot holds the data, and is at least as large.
    restored = ec2.create_volume(AvailabilityZone="us-east-1c", SnapshotId=sid)
    assert restored["Size"] == 5 and restored["SnapshotId"] == sid
    with open(os.path.join(volume_dir(server, restored["VolumeId"]), "hello.txt")) as f:
        assert f.read() == "persisted bytes"
    with pytest.raises(ClientError) as e:
        ec2.create_volume(AvailabilityZone="us-east-1c", SnapshotId=sid, Size=2)
    assert err(e)["Code"] == "InvalidParameterValue"
    # Copy to another region.
    west = server.client("ec2", region="us-west-2")
    copy = west.copy_snapshot(SourceSnapshotId=sid, SourceRegion="us-east-1", Encrypted=True)["SnapshotId"]
    c = west.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]
    assert c["Encrypted"] is True and c["KmsKeyId"].startswith("arn:aws:kms:us-west-2:")
    assert c["Description"] == f"[Copied {sid} from us-east-1]"
    wv = west.create_volume(AvailabilityZone="us-west-2a", SnapshotId=copy)
    assert wv["Encrypted"] is True
    # Encrypted at rest: the volume's directory holds only ciphertext.
    d = volume_dir(server, wv["VolumeId"])
    assert os.listdir(d) == ["data.sealed"]
    with open(os.path.join(d, "data.sealed"), "rb") as f:
        assert b"persisted bytes" not in f.read()
    # Sharing: another account can see and restore it.
    with pytest.raises(ClientError) as e:
        ec2_other.describe_snapshots(SnapshotIds=[sid])
    assert err(e)["Code"] == "InvalidSnapshot.NotFound"
    ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission",
                                  OperationType="add", UserIds=[OTHER])
    perms = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert perms["CreateVolumePermissions"] == [{"UserId": OTHER}]
    shared = ec2_other.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]
    assert sid in [x["SnapshotId"] for x in shared]
    assert ec2_other.describe_snapshots(OwnerIds=["self"], SnapshotIds=[sid])["Snapshots"] == []
    other_vol = ec2_other.create_volume(AvailabilityZone="us-east-1a", SnapshotId=sid)
    with open(os.path.join(volume_dir(server, other_vol["VolumeId"]), "hello.txt")) as f:
        assert f.read() == "persisted bytes"
    with pytest.raises(ClientError) as e:
        ec2_other.delete_snapshot(SnapshotId=sid)
    assert err(e)["Code"] == "InvalidSnapshot.NotFound"
    ec2.reset_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    ec2.delete_snapshot(SnapshotId=sid)
    with pytest.raises(ClientError) as e:
        ec2.describe_snapshots(SnapshotIds=[sid])
    assert err(e)["Code"] == "InvalidSnapshot.NotFound"
    ec2_other.delete_volume(VolumeId=other_vol["VolumeId"])
    west.delete_volume(VolumeId=wv["VolumeId"])
    west.delete_snapshot(SnapshotId=copy)
    ec2.delete_volume(VolumeId=restored["VolumeId"])
    ec2.delete_volume(VolumeId=vol)
    assert not os.path.exists(volume_dir(server, vol))


def test_create_volume_client_token(ec2):
    token = unique("tok")
    a = ec2.create_volume(AvailabilityZone="us-east-1a", Size=3, ClientToken=token)
    b = ec2.create_volume(AvailabilityZone="us-east-1a", Size=3, ClientToken=token)
    assert a["VolumeId"] == b["VolumeId"]
    with pytest.raises(ClientError) as e:
        ec2.create_volume(AvailabilityZone="us-east-1a", Size=4, ClientToken=token)
    assert err(e)["Code"] == "IdempotentParameterMismatch"
    ec2.delete_volume(VolumeId=a["VolumeId"])


# ---- tags ----

def test_tags_across_resources(server, ec2):
    vpc = default_vpc(ec2)["VpcId"]
    sg = ec2.create_security_group(GroupName=unique("tagged"), Description="t")["GroupId"]
    kp = ec2.create_key_pair(KeyName=unique("tagged"))["KeyPairId"]
    vol, snap = make_snapshot(ec2, size=1)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    ami = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
    resources = [vpc, sg, kp, vol, snap, subnet, ami]
    env = unique("env")
    server.aws("ec2", "create-tags", "--resources", *resources, "--tags",
               f"Key=env,Value={env}", "Key=owner,Value=team-a")
    tags = ec2.describe_tags(Filters=[{"Name": "value", "Values": [env]}])["Tags"]
    assert {t["ResourceType"] for t in tags} == {
        "vpc", "security-group", "key-pair", "volume", "snapshot", "subnet", "image"}
    vols = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["volume"]},
                                      {"Name": "key", "Values": ["own*"]},
                                      {"Name": "resource-id", "Values": [vol]}])["Tags"]
    assert vols == [{"Key": "owner", "ResourceId": vol, "ResourceType": "volume", "Value": "team-a"}]
    # Tags show on the resources themselves and in their filters.
    assert ec2.describe_security_groups(Filters=[{"Name": "tag:env", "Values": [env]}])["SecurityGroups"][0]["GroupId"] == sg
    assert ec2.describe_key_pairs(Filters=[{"Name": "tag:env", "Values": [env]}])["KeyPairs"][0]["KeyPairId"] == kp
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["Tags"]
    # Pagination.
    page = ec2.describe_tags(Filters=[{"Name": "value", "Values": [env]}], MaxResults=5)
    assert len(page["Tags"]) == 5
    rest = ec2.describe_tags(Filters=[{"Name": "value", "Values": [env]}], MaxResults=5,
                             NextToken=page["NextToken"])
    assert len(rest["Tags"]) == 2
    # DeleteTags: by key and value, by key, all.
    ec2.delete_tags(Resources=[vol], Tags=[{"Key": "owner", "Value": "someone-else"}])
    assert len(ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vol]}])["Tags"]) == 2
    ec2.delete_tags(Resources=[vol], Tags=[{"Key": "owner"}])
    assert len(ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vol]}])["Tags"]) == 1
    server.aws("ec2", "delete-tags", "--resources", *resources)
    assert ec2.describe_tags(Filters=[{"Name": "value", "Values": [env]}])["Tags"] == []
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=["vol-0123456789abcdef0"], Tags=[{"Key": "a", "Value": "b"}])
    assert err(e)["Code"] == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=["bogus-123"], Tags=[{"Key": "a", "Value": "b"}])
    assert err(e)["Code"] == "InvalidID"
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[vol], Tags=[{"Key": "aws:x", "Value": "b"}])
    assert err(e)["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[vol], Tags=[{"Key": "a", "Value": "b"}], DryRun=True)
    assert err(e)["Code"] == "DryRunOperation"
    ec2.delete_security_group(GroupId=sg)
    ec2.delete_key_pair(KeyPairId=kp)
    ec2.delete_snapshot(SnapshotId=snap)
    ec2.delete_volume(VolumeId=vol)


# ---- dry runs and what is not there yet ----

def test_dry_run_everywhere(ec2):
    vol, snap = make_snapshot(ec2, size=1)
    calls = [
        lambda: ec2.create_vpc(CidrBlock="10.9.0.0/16", DryRun=True),
        lambda: ec2.create_security_group(GroupName=unique("dry"), Description="d", DryRun=True),
        lambda: ec2.create_key_pair(KeyName=unique("dry"), DryRun=True),
        lambda: ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, DryRun=True),
        lambda: ec2.create_snapshot(VolumeId=vol, DryRun=True),
        lambda: ec2.modify_volume(VolumeId=vol, Size=2, DryRun=True),
        lambda: ec2.register_image(Name=unique("dry"), ImageLocation="a:b", DryRun=True),
        lambda: ec2.describe_vpcs(DryRun=True),
        lambda: ec2.describe_images(Owners=["self"], DryRun=True),
        lambda: ec2.delete_snapshot(SnapshotId=snap, DryRun=True),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert err(e)["Code"] == "DryRunOperation", err(e)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Size"] == 1
    ec2.delete_snapshot(SnapshotId=snap)
    ec2.delete_volume(VolumeId=vol)


def test_elastic_ips_are_not_implemented_yet(ec2):
    # Instances run now (test_ec2_instances.py); elastic IPs do not exist yet.
    with pytest.raises(ClientError) as e:
        ec2.allocate_address(Domain="vpc")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    with pytest.raises(ClientError) as e:
        ec2.describe_addresses()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
