"""STS and IAM through the AWS CLI and boto3, and strict authentication."""
import json

import pytest
from botocore.exceptions import ClientError

from conftest import unique

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]})


def test_cli_get_caller_identity(server):
    ident = server.aws_json("sts", "get-caller-identity")
    assert ident["Account"] == "000000000000"
    assert ident["Arn"] == "arn:aws:iam::000000000000:root"
    assert ident["UserId"] == "000000000000"


def test_cli_role_create_get_attach_list(server):
    name = unique("role")
    created = server.aws_json("iam", "create-role", "--role-name", name,
                              "--assume-role-policy-document", TRUST, "--path", "/app/")
    role = created["Role"]
    assert role["Arn"] == f"arn:aws:iam::000000000000:role/app/{name}"
    assert role["RoleId"].startswith("AROA")
    got = server.aws_json("iam", "get-role", "--role-name", name)["Role"]
    assert got["RoleName"] == name
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Action"] == "sts:AssumeRole"
    server.aws("iam", "attach-role-policy", "--role-name", name, "--policy-arn",
               "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
    attached = server.aws_json("iam", "list-attached-role-policies", "--role-name", name)
    assert attached["AttachedPolicies"] == [{
        "PolicyName": "AmazonEC2ContainerRegistryReadOnly",
        "PolicyArn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"}]
    roles = server.aws_json("iam", "list-roles", "--path-prefix", "/app/")["Roles"]
    assert name in [r["RoleName"] for r in roles]
    code, _, err = server.aws("iam", "delete-role", "--role-name", name, check=False)
    assert code != 0 and "DeleteConflict" in err
    server.aws("iam", "detach-role-policy", "--role-name", name, "--policy-arn",
               "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
    server.aws("iam", "delete-role", "--role-name", name)
    code, _, err = server.aws("iam", "get-role", "--role-name", name, check=False)
    assert code != 0 and "NoSuchEntity" in err


def test_managed_policies_present(server):
    iam = server.client("iam")
    for name in ["AmazonEC2ContainerRegistryFullAccess", "AmazonEC2ContainerRegistryPowerUser",
                 "AmazonEC2ContainerRegistryReadOnly", "AmazonEKSClusterPolicy", "AmazonEKSServicePolicy"]:
        p = iam.get_policy(PolicyArn=f"arn:aws:iam::aws:policy/{name}")["Policy"]
        assert p["PolicyName"] == name
    for arn in ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]:
        p = iam.get_policy(PolicyArn=arn)["Policy"]
        v = iam.get_policy_version(PolicyArn=arn, VersionId=p["DefaultVersionId"])
        doc = v["PolicyVersion"]["Document"]
        assert "Statement" in doc


def test_assume_role_credentials_work(server):
    iam = server.client("iam")
    name = unique("assumable")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    sts = server.client("sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::000000000000:role/{name}",
                            RoleSessionName="sess")["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    as_role = server.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                            token=creds["SessionToken"])
    ident = as_role.get_caller_identity()
    assert ident["Arn"] == f"arn:aws:sts::000000000000:assumed-role/{name}/sess"
    assert ident["UserId"].endswith(":sess")


def test_session_token(server):
    creds = server.client("sts").get_session_token()["Credentials"]
    c = server.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                      token=creds["SessionToken"])
    assert c.get_caller_identity()["Account"] == "000000000000"


def test_users_groups_keys_instance_profiles(server):
    iam = server.client("iam")
    user = unique("alice")
    iam.create_user(UserName=user)
    group = unique("devs")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    assert [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]] == [user]
    iam.put_user_policy(UserName=user, PolicyName="inline", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["inline"]
    key = iam.create_access_key(UserName=user)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    as_user = server.client("sts", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert as_user.get_caller_identity()["Arn"] == f"arn:aws:iam::000000000000:user/{user}"
    prof = unique("prof")
    iam.create_instance_profile(InstanceProfileName=prof)
    role = unique("ec2role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=role)
    got = iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [role]
    with pytest.raises(ClientError) as e:
        iam.create_policy(PolicyName=unique("bad"), PolicyDocument="{not json")
    assert e.value.response["Error"]["Code"] == "MalformedPolicyDocument"


def test_iam_pagination(server):
    iam = server.client("iam")
    prefix = "/" + unique("pg") + "/"
    for i in range(30):
        iam.create_role(RoleName=f"pg-{i:03d}-{abs(hash(prefix)) % 10000}", Path=prefix,
                        AssumeRolePolicyDocument=TRUST)
    names = []
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 7}):
        names += [r["RoleName"] for r in page["Roles"]]
    assert len(names) == 30 and len(set(names)) == 30


def test_strict_mode_rejects_wrong_secret(fresh_server):
    s = fresh_server(extra_args=["--auth", "strict"])
    good = s.client("sts", key="test", secret="test")
    assert good.get_caller_identity()["Account"] == "000000000000"
    bad = s.client("sts", key="test", secret="wrong-secret")
    with pytest.raises(ClientError) as e:
        bad.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    unknown = s.client("sts", key="AKIAUNKNOWNKEY000000", secret="x")
    with pytest.raises(ClientError) as e:
        unknown.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    code, _, err = s.aws("sts", "get-caller-identity", secret="nope", check=False)
    assert code != 0 and "SignatureDoesNotMatch" in err


def test_strict_mode_iam_keys_and_assumed_roles(fresh_server):
    s = fresh_server(extra_args=["--auth", "strict"])
    iam = s.client("iam")
    iam.create_user(UserName="bob")
    key = iam.create_access_key(UserName="bob")["AccessKey"]
    bob = s.client("sts", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert bob.get_caller_identity()["Arn"].endswith(":user/bob")
    iam.update_access_key(UserName="bob", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as e:
        bob.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST)
    creds = s.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/r",
                                        RoleSessionName="xs")["Credentials"]
    ok = s.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token=creds["SessionToken"])
    assert ":assumed-role/r/xs" in ok.get_caller_identity()["Arn"]
    no_token = s.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"])
    with pytest.raises(ClientError):
        no_token.get_caller_identity()


def test_strict_mode_enforces_trust_policies(fresh_server):
    s = fresh_server(extra_args=["--auth", "strict"])
    iam = s.client("iam")
    only_ec2 = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName="ec2-only", AssumeRolePolicyDocument=only_ec2)
    with pytest.raises(ClientError) as e:
        s.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/ec2-only", RoleSessionName="no")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # A user of the account named by the trust policy needs sts:AssumeRole in its own policies.
    iam.create_role(RoleName="team", AssumeRolePolicyDocument=TRUST)
    iam.create_user(UserName="carol")
    key = iam.create_access_key(UserName="carol")["AccessKey"]
    carol = s.client("sts", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        carol.assume_role(RoleArn="arn:aws:iam::000000000000:role/team", RoleSessionName="c1")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    iam.put_user_policy(UserName="carol", PolicyName="assume", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                  "Resource": "arn:aws:iam::000000000000:role/team"}]}))
    creds = carol.assume_role(RoleArn="arn:aws:iam::000000000000:role/team", RoleSessionName="c2")["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
