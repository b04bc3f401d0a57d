"""EC2 launch templates: create, version, describe, modify, delete, errors, DryRun, and
RunInstances from a template (template data are defaults, the request wins, tags merge, the
instance carries the aws:ec2launchtemplate:* tags and really runs the template's user data)."""
import base64
import json
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import unique
from test_ec2_instances import debian_ami, wait_state

# An empty structure never reaches the wire (the query protocol has no way to say "{}").
NO_DATA = {"EbsOptimized": False}


def err(excinfo):
    return excinfo.value.response["Error"]["Code"]


def msg(excinfo):
    return excinfo.value.response["Error"]["Message"]


@pytest.fixture
def ec2(server):
    return server.client("ec2")


@pytest.fixture
def templates(ec2):
    """Templates a test created (by id); deleted afterwards."""
    ids = []
    yield ids
    for i in ids:
        try:
            ec2.delete_launch_template(LaunchTemplateId=i)
        except ClientError:
            pass


@pytest.fixture
def launched(ec2):
    ids = []
    yield ids
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")


def create(ec2, templates, name, data, **kw):
    lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data,
                                    **kw)["LaunchTemplate"]
    templates.append(lt["LaunchTemplateId"])
    return lt


def test_create_describe_and_delete(server, ec2, templates):
    name = unique("lt")
    lt = create(ec2, templates, name, {"InstanceType": "t3.micro", "ImageId": debian_ami(ec2)},
                VersionDescription="first",
                TagSpecifications=[{"ResourceType": "launch-template",
                                    "Tags": [{"Key": "team", "Value": "red"}]}])
    assert re.fullmatch(r"lt-[0-9a-f]{17}", lt["LaunchTemplateId"])
    assert lt["LaunchTemplateName"] == name
    assert lt["DefaultVersionNumber"] == 1 and lt["LatestVersionNumber"] == 1
    assert lt["CreatedBy"].startswith("arn:aws:iam::")
    assert lt["Tags"] == [{"Key": "team", "Value": "red"}]
    lid = lt["LaunchTemplateId"]

    by_id = ec2.describe_launch_templates(LaunchTemplateIds=[lid])["LaunchTemplates"]
    assert [t["LaunchTemplateName"] for t in by_id] == [name]
    by_name = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]
    assert by_name[0]["LaunchTemplateId"] == lid
    f = ec2.describe_launch_templates(Filters=[
        {"Name": "launch-template-name", "Values": [name]}])["LaunchTemplates"]
    assert [t["LaunchTemplateId"] for t in f] == [lid]
    f = ec2.describe_launch_templates(Filters=[
        {"Name": "tag:team", "Values": ["red"]}])["LaunchTemplates"]
    assert lid in [t["LaunchTemplateId"] for t in f]
    f = ec2.describe_launch_templates(Filters=[
        {"Name": "tag:team", "Values": ["blue"]}])["LaunchTemplates"]
    assert lid not in [t["LaunchTemplateId"] for t in f]

    v = ec2.describe_launch_template_versions(LaunchTemplateId=lid)["LaunchTemplateVersions"]
    assert len(v) == 1
    assert v[0]["VersionNumber"] == 1 and v[0]["DefaultVersion"] is True
    assert v[0]["VersionDescription"] == "first"
    assert v[0]["LaunchTemplateData"]["InstanceType"] == "t3.micro"

    with pytest.raises(ClientError) as e:
        ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=NO_DATA)
    assert err(e) == "InvalidLaunchTemplateName.AlreadyExistsException"
    assert msg(e) == "Launch template name already in use."

    gone = ec2.delete_launch_template(LaunchTemplateName=name)["LaunchTemplate"]
    assert gone["LaunchTemplateId"] == lid
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_templates(LaunchTemplateIds=[lid])
    assert err(e) == "InvalidLaunchTemplateId.NotFound"
    assert msg(e) == f"The specified launch template, with template ID {lid}, does not exist."
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_templates(LaunchTemplateNames=[name])
    assert err(e) == "InvalidLaunchTemplateName.NotFoundException"


def test_versions_default_version_and_deletion(ec2, templates):
    name = unique("lt-v")
    lt = create(ec2, templates, name, {"InstanceType": "t3.micro", "KeyName": "k1",
                                       "Monitoring": {"Enabled": True}})
    lid = lt["LaunchTemplateId"]
    # A version from a source version: the members given replace the source's.
    v2 = ec2.create_launch_template_version(
        LaunchTemplateId=lid, SourceVersion="1", VersionDescription="bigger",
        LaunchTemplateData={"InstanceType": "t3.large"})["LaunchTemplateVersion"]
    assert v2["VersionNumber"] == 2 and v2["DefaultVersion"] is False
    assert v2["LaunchTemplateData"] == {"InstanceType": "t3.large", "KeyName": "k1",
                                        "Monitoring": {"Enabled": True}}
    # Without a source version the data stand alone.
    v3 = ec2.create_launch_template_version(
        LaunchTemplateName=name, LaunchTemplateData={"InstanceType": "t3.small"})
    assert v3["LaunchTemplateVersion"]["VersionNumber"] == 3
    assert v3["LaunchTemplateVersion"]["LaunchTemplateData"] == {"InstanceType": "t3.small"}

    t = ec2.describe_launch_templates(LaunchTemplateIds=[lid])["LaunchTemplates"][0]
    assert t["DefaultVersionNumber"] == 1 and t["LatestVersionNumber"] == 3

    def versions(**kw):
        out = ec2.describe_launch_template_versions(LaunchTemplateId=lid, **kw)
        return [v["VersionNumber"] for v in out["LaunchTemplateVersions"]]

    assert versions() == [3, 2, 1]
    assert versions(Versions=["$Latest"]) == [3]
    assert versions(Versions=["$Default", "2"]) == [2, 1]
    assert versions(MinVersion="2") == [3, 2]
    assert versions(MaxVersion="2") == [2, 1]
    assert versions(Filters=[{"Name": "instance-type", "Values": ["t3.large"]}]) == [2]
    assert versions(Filters=[{"Name": "is-default-version", "Values": ["true"]}]) == [1]
    # Pagination.
    page = ec2.describe_launch_template_versions(LaunchTemplateId=lid, MaxResults=2)
    assert [v["VersionNumber"] for v in page["LaunchTemplateVersions"]] == [3, 2]
    rest = ec2.describe_launch_template_versions(LaunchTemplateId=lid, MaxResults=2,
                                                 NextToken=page["NextToken"])
    assert [v["VersionNumber"] for v in rest["LaunchTemplateVersions"]] == [1]
    assert "NextToken" not in rest
    # All templates, $Latest of each.
    latest = ec2.describe_launch_template_versions(Versions=["$Latest"])["LaunchTemplateVersions"]
    assert any(v["LaunchTemplateId"] == lid and v["VersionNumber"] == 3 for v in latest)

    with pytest.raises(ClientError) as e:
        ec2.describe_launch_template_versions(LaunchTemplateId=lid, Versions=["7"])
    assert err(e) == "InvalidLaunchTemplateId.VersionNotFound"
    assert msg(e) == f"Could not find the specified version 7 for the launch template with ID {lid}."

    m = ec2.modify_launch_template(LaunchTemplateId=lid, DefaultVersion="2")["LaunchTemplate"]
    assert m["DefaultVersionNumber"] == 2
    assert versions(Versions=["$Default"]) == [2]
    with pytest.raises(ClientError) as e:
        ec2.modify_launch_template(LaunchTemplateId=lid, DefaultVersion="9")
    assert err(e) == "InvalidLaunchTemplateId.VersionNotFound"

    d = ec2.delete_launch_template_versions(LaunchTemplateId=lid, Versions=["1", "2", "8"])
    assert [(x["VersionNumber"]) for x in d["SuccessfullyDeletedLaunchTemplateVersions"]] == [1]
    bad = {x["VersionNumber"]: x["ResponseError"]["Code"]
           for x in d["UnsuccessfullyDeletedLaunchTemplateVersions"]}
    assert bad == {2: "unexpectedError", 8: "launchTemplateVersionDoesNotExist"}
    assert versions() == [3, 2]
    # Deleting the latest version lowers LatestVersionNumber; numbers are not reused.
    ec2.delete_launch_template_versions(LaunchTemplateId=lid, Versions=["3"])
    t = ec2.describe_launch_templates(LaunchTemplateIds=[lid])["LaunchTemplates"][0]
    assert t["LatestVersionNumber"] == 2
    v4 = ec2.create_launch_template_version(LaunchTemplateId=lid, LaunchTemplateData=NO_DATA)
    assert v4["LaunchTemplateVersion"]["VersionNumber"] == 4


def test_cli(server, templates):
    name = unique("lt-cli")
    out = server.aws_json("ec2", "create-launch-template", "--launch-template-name", name,
                          "--version-description", "v1", "--launch-template-data",
                          json.dumps({"InstanceType": "t3.micro",
                                      "SecurityGroupIds": ["sg-0123456789abcdef0"]}))
    lid = out["LaunchTemplate"]["LaunchTemplateId"]
    templates.append(lid)
    server.aws_json("ec2", "create-launch-template-version", "--launch-template-id", lid,
                    "--source-version", "$Latest", "--launch-template-data",
                    json.dumps({"InstanceType": "t3.small"}))
    out = server.aws_json("ec2", "describe-launch-template-versions", "--launch-template-name",
                          name, "--versions", "$Latest")
    v = out["LaunchTemplateVersions"][0]
    assert v["VersionNumber"] == 2
    assert v["LaunchTemplateData"] == {"InstanceType": "t3.small",
                                       "SecurityGroupIds": ["sg-0123456789abcdef0"]}
    out = server.aws_json("ec2", "modify-launch-template", "--launch-template-id", lid,
                          "--default-version", "2")
    assert out["LaunchTemplate"]["DefaultVersionNumber"] == 2
    out = server.aws_json("ec2", "describe-launch-templates", "--launch-template-names", name)
    assert out["LaunchTemplates"][0]["DefaultVersionNumber"] == 2
    out = server.aws_json("ec2", "delete-launch-template-versions", "--launch-template-id", lid,
                          "--versions", "1")
    assert out["SuccessfullyDeletedLaunchTemplateVersions"][0]["VersionNumber"] == 1
    rc, _, stderr = server.aws("ec2", "delete-launch-template", "--launch-template-id", lid,
                               "--dry-run", check=False)
    assert rc != 0 and "DryRunOperation" in stderr
    out = server.aws_json("ec2", "delete-launch-template", "--launch-template-id", lid)
    assert out["LaunchTemplate"]["LaunchTemplateName"] == name
    rc, _, stderr = server.aws("ec2", "describe-launch-template-versions",
                               "--launch-template-name", name, check=False)
    assert rc != 0 and "InvalidLaunchTemplateName.NotFoundException" in stderr


def test_errors_and_dry_run(ec2, templates):
    name = unique("lt-err")
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=NO_DATA, DryRun=True)
    assert err(e) == "DryRunOperation"
    assert not ec2.describe_launch_templates(Filters=[
        {"Name": "launch-template-name", "Values": [name]}])["LaunchTemplates"]
    for bad in ["ab", "has space", "x" * 129]:
        with pytest.raises(ClientError) as e:
            ec2.create_launch_template(LaunchTemplateName=bad, LaunchTemplateData=NO_DATA)
        assert err(e) == "InvalidLaunchTemplateName.MalformedException"
    # Parameters a launch would reject only warn; the template is created.
    r = ec2.create_launch_template(LaunchTemplateName=name + "-w", LaunchTemplateData={
        "InstanceType": "t9.nope", "ImageId": "ami-0000000000000dead"})
    templates.append(r["LaunchTemplate"]["LaunchTemplateId"])
    assert sorted(w["Code"] for w in r["Warning"]["Errors"]) == [
        "InvalidAMIID.NotFound", "InvalidParameterValue"]
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
            "TagSpecifications": [{"ResourceType": "instance",
                                   "Tags": [{"Key": "aws:x", "Value": "1"}]}]})
    assert err(e) == "InvalidParameterValue"

    lid = create(ec2, templates, name, NO_DATA)["LaunchTemplateId"]
    # ClientToken: the same request answers the same template.
    tok = unique("tok")
    a = ec2.create_launch_template(LaunchTemplateName=name + "-t", LaunchTemplateData=NO_DATA,
                                   ClientToken=tok)["LaunchTemplate"]
    templates.append(a["LaunchTemplateId"])
    b = ec2.create_launch_template(LaunchTemplateName=name + "-t", LaunchTemplateData=NO_DATA,
                                   ClientToken=tok)["LaunchTemplate"]
    assert a["LaunchTemplateId"] == b["LaunchTemplateId"]

    for call in [
        lambda **kw: ec2.create_launch_template_version(LaunchTemplateData=NO_DATA, **kw),
        lambda **kw: ec2.modify_launch_template(DefaultVersion="1", **kw),
        lambda **kw: ec2.delete_launch_template_versions(Versions=["1"], **kw),
        lambda **kw: ec2.delete_launch_template(**kw),
        lambda **kw: ec2.describe_launch_template_versions(**kw),
    ]:
        with pytest.raises(ClientError) as e:
            call(LaunchTemplateId="lt-0123456789abcdef0")
        assert err(e) == "InvalidLaunchTemplateId.NotFound"
        with pytest.raises(ClientError) as e:
            call(LaunchTemplateName="no-such-template")
        assert err(e) == "InvalidLaunchTemplateName.NotFoundException"
        assert msg(e) == ("The specified launch template, with template name no-such-template, "
                          "does not exist.")
        with pytest.raises(ClientError) as e:
            call(LaunchTemplateId=lid, DryRun=True)
        assert err(e) == "DryRunOperation"
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_templates(LaunchTemplateIds=["nope"])
    assert err(e) == "InvalidLaunchTemplateId.Malformed"
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template_version(LaunchTemplateId=lid, SourceVersion="5",
                                           LaunchTemplateData=NO_DATA)
    assert err(e) == "InvalidLaunchTemplateId.VersionNotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_templates(Filters=[{"Name": "bogus", "Values": ["x"]}])
    assert err(e) == "InvalidParameterValue"
    # Pagination over templates.
    first = ec2.describe_launch_templates(MaxResults=1)
    assert len(first["LaunchTemplates"]) == 1 and "NextToken" in first
    seen = [first["LaunchTemplates"][0]["LaunchTemplateId"]]
    token = first["NextToken"]
    while token:
        page = ec2.describe_launch_templates(MaxResults=1, NextToken=token)
        seen += [t["LaunchTemplateId"] for t in page["LaunchTemplates"]]
        token = page.get("NextToken")
    assert lid in seen and a["LaunchTemplateId"] in seen and len(seen) == len(set(seen))
    # RunInstances with an unknown template or version.
    with pytest.raises(ClientError) as e:
        ec2.run_instances(MinCount=1, MaxCount=1,
                          LaunchTemplate={"LaunchTemplateName": "no-such-template"})
    assert err(e) == "InvalidLaunchTemplateName.NotFoundException"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(MinCount=1, MaxCount=1,
                          LaunchTemplate={"LaunchTemplateId": lid, "Version": "4"})
    assert err(e) == "InvalidLaunchTemplateId.VersionNotFound"
    # A template without an image: RunInstances still needs one.
    with pytest.raises(ClientError) as e:
        ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": lid})
    assert err(e) == "MissingParameter"


USER_DATA = "#!/bin/sh\necho \"template user data ran on $(hostname)\"\n"


def test_run_instances_from_a_template(server, ec2, templates, launched):
    ami = debian_ami(ec2)
    key = unique("lt-key")
    ec2.create_key_pair(KeyName=key)
    sg = ec2.create_security_group(GroupName=unique("lt-sg"), Description="lt")["GroupId"]
    name = unique("lt-run")
    lt = create(ec2, templates, name, {
        "ImageId": ami, "InstanceType": "t3.micro", "KeyName": key,
        "SecurityGroupIds": [sg],
        "UserData": base64.b64encode(USER_DATA.encode()).decode(),
        "MetadataOptions": {"HttpTokens": "required"},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [
            {"Key": "from", "Value": "template"}, {"Key": "env", "Value": "dev"}]}],
    })
    lid = lt["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=lid, SourceVersion="1",
                                       LaunchTemplateData={"InstanceType": "t3.small"})

    # DryRun with a template.
    with pytest.raises(ClientError) as e:
        ec2.run_instances(MinCount=1, MaxCount=1, DryRun=True,
                          LaunchTemplate={"LaunchTemplateId": lid})
    assert err(e) == "DryRunOperation"

    # Default version (1), with request tags merged over the template's.
    r = ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateName": name},
                          TagSpecifications=[{"ResourceType": "instance", "Tags": [
                              {"Key": "env", "Value": "prod"}]}])
    iid = r["Instances"][0]["InstanceId"]
    launched.append(iid)
    d = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert d["ImageId"] == ami and d["InstanceType"] == "t3.micro" and d["KeyName"] == key
    assert [g["GroupId"] for g in d["SecurityGroups"]] == [sg]
    assert d["MetadataOptions"]["HttpTokens"] == "required"
    tags = {t["Key"]: t["Value"] for t in d["Tags"]}
    assert tags == {"from": "template", "env": "prod",
                    "aws:ec2launchtemplate:id": lid, "aws:ec2launchtemplate:version": "1"}
    assert "LaunchTemplate" not in d

    # $Latest (t3.small), and an explicit InstanceType wins over the template.
    r = ec2.run_instances(MinCount=1, MaxCount=1,
                          LaunchTemplate={"LaunchTemplateId": lid, "Version": "$Latest"})
    i2 = r["Instances"][0]["InstanceId"]
    launched.append(i2)
    assert r["Instances"][0]["InstanceType"] == "t3.small"
    assert {"Key": "aws:ec2launchtemplate:version", "Value": "2"} in r["Instances"][0]["Tags"]
    r = ec2.run_instances(MinCount=1, MaxCount=1, InstanceType="t3.medium",
                          LaunchTemplate={"LaunchTemplateId": lid, "Version": "2"})
    i3 = r["Instances"][0]["InstanceId"]
    launched.append(i3)
    assert r["Instances"][0]["InstanceType"] == "t3.medium"
    assert r["Instances"][0]["KeyName"] == key

    # GetLaunchTemplateData gives back what the instance was launched with.
    data = ec2.get_launch_template_data(InstanceId=iid)["LaunchTemplateData"]
    assert data["ImageId"] == ami and data["InstanceType"] == "t3.micro"
    assert data["KeyName"] == key
    assert data["NetworkInterfaces"][0]["Groups"] == [sg]
    assert base64.b64decode(data["UserData"]).decode() == USER_DATA
    assert {"Key": "env", "Value": "prod"} in data["TagSpecifications"][0]["Tags"]

    # The template's user data really runs.
    server.aws("ec2", "wait", "instance-running", "--instance-ids", iid)
    deadline = time.time() + 60
    text = ""
    while time.time() < deadline:
        text = ec2.get_console_output(InstanceId=iid).get("Output", "")
        if "template user data ran on" in text:
            break
        time.sleep(0.3)
    assert "template user data ran on ip-" in text, text


def test_network_interface_and_cli_launch(server, ec2, templates, launched):
    ami = debian_ami(ec2)
    zone = ec2.describe_availability_zones()["AvailabilityZones"][2]["ZoneName"]
    subnet = ec2.describe_subnets(Filters=[
        {"Name": "availability-zone", "Values": [zone]},
        {"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]["SubnetId"]
    sg = ec2.create_security_group(GroupName=unique("lt-ni"), Description="ni")["GroupId"]
    name = unique("lt-ni")
    create(ec2, templates, name, {
        "ImageId": ami, "InstanceType": "t3.micro",
        "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [sg],
                               "AssociatePublicIpAddress": False}]})
    out = server.aws_json("ec2", "run-instances", "--launch-template",
                          f"LaunchTemplateName={name},Version=$Default",
                          "--instance-type", "t3.small", "--count", "1")
    inst = out["Instances"][0]
    launched.append(inst["InstanceId"])
    assert inst["SubnetId"] == subnet and inst["Placement"]["AvailabilityZone"] == zone
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [sg]
    assert inst["InstanceType"] == "t3.small"
    out = server.aws_json("ec2", "describe-instances", "--instance-ids", inst["InstanceId"],
                          "--filters", "Name=tag:aws:ec2launchtemplate:version,Values=1")
    assert out["Reservations"][0]["Instances"][0]["InstanceId"] == inst["InstanceId"]


def test_tags_on_templates_and_purchasing_resources(ec2, templates):
    lt = create(ec2, templates, unique("tagged-lt"), {"InstanceType": "t3.micro"})
    lt_id = lt["LaunchTemplateId"]
    ec2.create_tags(Resources=[lt_id], Tags=[{"Key": "team", "Value": "blue"}])
    got = ec2.describe_launch_templates(LaunchTemplateIds=[lt_id])["LaunchTemplates"][0]
    assert {"Key": "team", "Value": "blue"} in got["Tags"]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [lt_id]}])["Tags"]
    assert tags == [{"Key": "team", "ResourceId": lt_id, "ResourceType": "launch-template", "Value": "blue"}]
    ec2.delete_tags(Resources=[lt_id], Tags=[{"Key": "team"}])
    got = ec2.describe_launch_templates(LaunchTemplateIds=[lt_id])["LaunchTemplates"][0]
    assert not got.get("Tags")
    # Capacity reservations are taggable after creation too.
    cr = ec2.create_capacity_reservation(InstanceType="t3.micro", InstancePlatform="Linux/UNIX",
                                         AvailabilityZone="us-east-1a", InstanceCount=1)
    cr_id = cr["CapacityReservation"]["CapacityReservationId"]
    try:
        ec2.create_tags(Resources=[cr_id], Tags=[{"Key": "k", "Value": "v"}])
        got = ec2.describe_capacity_reservations(CapacityReservationIds=[cr_id])["CapacityReservations"][0]
        assert {"Key": "k", "Value": "v"} in got["Tags"]
    finally:
        ec2.cancel_capacity_reservation(CapacityReservationId=cr_id)
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=["lt-0123456789abcdef0"], Tags=[{"Key": "k", "Value": "v"}])
    assert err(e) == "InvalidLaunchTemplateId.NotFound"
