"""Amazon ECR's API (JSON 1.1) through boto3 and the AWS CLI: repositories, images, layer
uploads, authorization tokens, repository and lifecycle policies — consistent with what the
registry at /v2/ serves (see test_registry.py for the data plane)."""
import base64
import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import unique
from test_registry import DOCKER_MANIFEST, OCI_MANIFEST, Image, Reg, sha


def code_of(e):
    return e.value.response["Error"]["Code"]


@pytest.fixture
def ecr(server):
    return server.client("ecr")


def upload(ecr, repo, data, parts=1):
    up = ecr.initiate_layer_upload(repositoryName=repo)
    assert up["partSize"] > 0
    uid = up["uploadId"]
    step = max(1, len(data) // parts)
    first = 0
    while first < len(data):
        chunk = data[first:first + step]
        r = ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=first,
                                  partLastByte=first + len(chunk) - 1, layerPartBlob=chunk)
        assert r["lastByteReceived"] == first + len(chunk) - 1
        first += len(chunk)
    r = ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[sha(data)])
    assert r["layerDigest"] == sha(data)


def put(ecr, repo, img, tag=None):
    for b in img.blobs():
        try:
            upload(ecr, repo, b)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "LayerAlreadyExistsException"
    kw = {"imageTag": tag} if tag else {}
    return ecr.put_image(repositoryName=repo, imageManifest=img.manifest.decode(),
                         imageManifestMediaType=img.media_type, **kw)["image"]


def test_repository_lifecycle(server, ecr):
    name = unique("ecr/repo")
    r = ecr.create_repository(
        repositoryName=name, imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS"},
        tags=[{"Key": "team", "Value": "a"}])["repository"]
    assert r["repositoryArn"] == f"arn:aws:ecr:us-east-1:000000000000:repository/{name}"
    assert r["registryId"] == "000000000000"
    assert r["repositoryUri"] == f"127.0.0.1:{server.port}/{name}"
    assert r["imageTagMutability"] == "IMMUTABLE"
    assert r["imageScanningConfiguration"] == {"scanOnPush": True}
    assert r["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert r["encryptionConfiguration"]["kmsKey"].startswith("arn:aws:kms:")
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=name)
    assert code_of(e) == "RepositoryAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName="Bad Name")
    assert code_of(e) == "InvalidParameterException"
    got = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert got == r
    ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="MUTABLE")
    ecr.put_image_scanning_configuration(repositoryName=name,
                                         imageScanningConfiguration={"scanOnPush": False})
    got = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert got["imageTagMutability"] == "MUTABLE" and got["imageScanningConfiguration"] == {"scanOnPush": False}
    ecr.tag_resource(resourceArn=r["repositoryArn"], tags=[{"Key": "env", "Value": "dev"}])
    ecr.untag_resource(resourceArn=r["repositoryArn"], tagKeys=["team"])
    assert ecr.list_tags_for_resource(resourceArn=r["repositoryArn"])["tags"] == [{"Key": "env", "Value": "dev"}]
    put(ecr, name, Image(), "v1")
    with pytest.raises(ClientError) as e:
        ecr.delete_repository(repositoryName=name)
    assert code_of(e) == "RepositoryNotEmptyException"
    assert ecr.delete_repository(repositoryName=name, force=True)["repository"]["repositoryName"] == name
    with pytest.raises(ClientError) as e:
        ecr.describe_repositories(repositoryNames=[name])
    assert code_of(e) == "RepositoryNotFoundException"
    assert Reg(server).req("GET", f"/v2/{name}/tags/list").status == 404


def test_describe_repositories_pages(server, ecr):
    base = unique("pages")
    for i in range(5):
        ecr.create_repository(repositoryName=f"{base}/r{i}")
    seen = []
    for page in ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 2}):
        seen += [r["repositoryName"] for r in page["repositories"] if r["repositoryName"].startswith(base)]
    assert seen == [f"{base}/r{i}" for i in range(5)]


def test_images_describe_list_get_delete(server, ecr):
    name = unique("ecr/images")
    ecr.create_repository(repositoryName=name)
    a, b = Image(), Image(media_type=DOCKER_MANIFEST)
    out = put(ecr, name, a, "a1")
    assert out["imageId"] == {"imageDigest": a.digest, "imageTag": "a1"}
    ecr.put_image(repositoryName=name, imageManifest=a.manifest.decode(), imageTag="a2")
    put(ecr, name, b)
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName=name)["imageDetails"]}
    assert details[a.digest]["imageTags"] == ["a1", "a2"]
    assert details[a.digest]["imageManifestMediaType"] == OCI_MANIFEST
    assert details[a.digest]["imageSizeInBytes"] == sum(len(x) for x in a.blobs())
    assert abs(details[a.digest]["imagePushedAt"].timestamp() - time.time()) < 60
    assert "imageTags" not in details[b.digest]
    assert details[b.digest]["imageManifestMediaType"] == DOCKER_MANIFEST
    untagged = ecr.list_images(repositoryName=name, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert untagged == [{"imageDigest": b.digest}]
    tagged = ecr.list_images(repositoryName=name, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert sorted(i["imageTag"] for i in tagged) == ["a1", "a2"]
    one = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "a2"}])["imageDetails"]
    assert [d["imageDigest"] for d in one] == [a.digest]
    with pytest.raises(ClientError) as e:
        ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "nope"}])
    assert code_of(e) == "ImageNotFoundException"
    got = ecr.batch_get_image(repositoryName=name, imageIds=[
        {"imageTag": "a1"}, {"imageTag": "missing"}, {"imageDigest": b.digest, "imageTag": "a1"}])
    assert [i["imageManifest"] for i in got["images"]] == [a.manifest.decode()]
    assert got["images"][0]["imageManifestMediaType"] == OCI_MANIFEST
    assert sorted(f["failureCode"] for f in got["failures"]) == ["ImageNotFound", "ImageTagDoesNotMatchDigest"]
    # Pulled images get lastRecordedPullTime.
    d = ecr.describe_images(repositoryName=name, imageIds=[{"imageDigest": a.digest}])["imageDetails"][0]
    assert "lastRecordedPullTime" in d
    # Deleting one of two tags keeps the image; deleting the last tag deletes it.
    r = ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "a1"}])
    assert r["imageIds"] == [{"imageDigest": a.digest, "imageTag": "a1"}]
    assert ecr.describe_images(repositoryName=name, imageIds=[{"imageDigest": a.digest}])["imageDetails"][0]["imageTags"] == ["a2"]
    ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "a2"}])
    r = ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageDigest": b.digest}, {"imageTag": "gone"}])
    assert r["imageIds"] == [{"imageDigest": b.digest}]
    assert r["failures"][0]["failureCode"] == "ImageNotFound"
    assert ecr.describe_images(repositoryName=name)["imageDetails"] == []


def test_registry_push_visible_to_api(server, ecr):
    name = unique("ecr/pushed")
    ecr.create_repository(repositoryName=name)
    img = Image()
    Reg(server).push_image(name, img, "latest")
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "latest"}])["images"][0]
    assert got["imageManifest"] == img.manifest.decode()
    assert got["imageId"]["imageDigest"] == img.digest
    avail = ecr.batch_check_layer_availability(repositoryName=name,
                                               layerDigests=[sha(img.layers[0]), sha(b"nope")])
    assert avail["layers"][0]["layerAvailability"] == "AVAILABLE"
    assert avail["layers"][0]["layerSize"] == len(img.layers[0])
    assert avail["failures"][0]["failureCode"] == "MissingLayerDigest"
    url = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=sha(img.layers[0]))["downloadUrl"]
    with urllib.request.urlopen(url) as r:
        assert r.read() == img.layers[0]


def test_upload_errors(server, ecr):
    name = unique("ecr/uploads")
    ecr.create_repository(repositoryName=name)
    data = b"0123456789" * 100
    upload(ecr, name, data, parts=3)
    with pytest.raises(ClientError) as e:
        upload(ecr, name, data)
    assert code_of(e) == "LayerAlreadyExistsException"
    uid = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    with pytest.raises(ClientError) as e:
        ecr.upload_layer_part(repositoryName=name, uploadId=uid, partFirstByte=5, partLastByte=6,
                              layerPartBlob=b"xx")
    assert code_of(e) == "InvalidLayerPartException"
    ecr.upload_layer_part(repositoryName=name, uploadId=uid, partFirstByte=0, partLastByte=1,
                          layerPartBlob=b"ab")
    with pytest.raises(ClientError) as e:
        ecr.complete_layer_upload(repositoryName=name, uploadId=uid, layerDigests=[sha(b"other")])
    assert code_of(e) == "InvalidLayerException"
    with pytest.raises(ClientError) as e:
        ecr.upload_layer_part(repositoryName=name, uploadId="0ddba11-0000", partFirstByte=0,
                              partLastByte=0, layerPartBlob=b"a")
    assert code_of(e) == "UploadNotFoundException"


def test_put_image_errors(server, ecr):
    name = unique("ecr/put")
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    img = Image()
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=name, imageManifest=img.manifest.decode(), imageTag="v1")
    assert code_of(e) == "LayersNotFoundException"
    put(ecr, name, img, "v1")
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=name, imageManifest=img.manifest.decode(), imageTag="v1")
    assert code_of(e) == "ImageAlreadyExistsException"
    other = Image()
    with pytest.raises(ClientError) as e:
        put(ecr, name, other, "v1")
    assert code_of(e) == "ImageTagAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=name, imageManifest="{broken", imageTag="x")
    assert code_of(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=name, imageManifest=img.manifest.decode(), imageTag="v9",
                      imageDigest=sha(b"different"))
    assert code_of(e) == "ImageDigestDoesNotMatchException"
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=unique("nope"), imageManifest=img.manifest.decode())
    assert code_of(e) == "RepositoryNotFoundException"


def test_authorization_token(server, ecr):
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, pw = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS" and len(pw) >= 32
    left = data["expiresAt"].timestamp() - time.time()
    assert 11.9 * 3600 < left <= 12 * 3600 + 5
    assert data["proxyEndpoint"] == f"http://127.0.0.1:{server.port}"
    assert Reg(server, auth=pw).req("GET", "/v2/").status == 200
    _, out, _ = server.aws("ecr", "get-login-password")
    assert len(out.strip()) >= 32 and ":" not in out
    # CLI v1: `aws ecr get-login --no-include-email` prints a docker login command.
    _, out, _ = server.aws("ecr", "get-login", "--no-include-email")
    words = out.split()
    assert words[:4] == ["docker", "login", "-u", "AWS"] and words[4] == "-p"
    assert words[6] == f"http://127.0.0.1:{server.port}" and len(words) == 7
    assert Reg(server, auth=words[5]).req("GET", "/v2/").status == 200


def test_repository_policy(server, ecr):
    name = unique("ecr/policy")
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ClientError) as e:
        ecr.get_repository_policy(repositoryName=name)
    assert code_of(e) == "RepositoryPolicyNotFoundException"
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "pull", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})
    assert ecr.set_repository_policy(repositoryName=name, policyText=doc)["policyText"] == doc
    assert ecr.get_repository_policy(repositoryName=name)["policyText"] == doc
    with pytest.raises(ClientError) as e:
        ecr.set_repository_policy(repositoryName=name, policyText="{not json")
    assert code_of(e) == "InvalidParameterException"
    assert ecr.delete_repository_policy(repositoryName=name)["policyText"] == doc
    with pytest.raises(ClientError) as e:
        ecr.delete_repository_policy(repositoryName=name)
    assert code_of(e) == "RepositoryPolicyNotFoundException"


def test_lifecycle_policy_expires_by_count(server, ecr):
    name = unique("ecr/lifecycle")
    ecr.create_repository(repositoryName=name)
    imgs = []
    for i in range(4):
        img = Image()
        put(ecr, name, img, f"build-{i}")
        imgs.append(img)
        time.sleep(0.01)
    untagged = Image()
    put(ecr, name, untagged)
    policy = json.dumps({"rules": [
        {"rulePriority": 1, "description": "keep two builds",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["build-"],
                       "countType": "imageCountMoreThan", "countNumber": 2},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                          "countUnit": "days", "countNumber": 1},
         "action": {"type": "expire"}}]})
    ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=policy)
    prev = ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert prev["status"] == "COMPLETE"
    assert sorted(r["imageDigest"] for r in prev["previewResults"]) == sorted([imgs[0].digest, imgs[1].digest])
    assert all(r["appliedRulePriority"] == 1 and r["action"]["type"] == "EXPIRE" for r in prev["previewResults"])
    assert prev["summary"]["expiringImageTotalCount"] == 2
    # The preview changes nothing; the policy applies when put.
    assert len(ecr.describe_images(repositoryName=name)["imageDetails"]) == 5
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=policy)
    assert ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"] == policy
    left = {d["imageDigest"] for d in ecr.describe_images(repositoryName=name)["imageDetails"]}
    assert left == {imgs[2].digest, imgs[3].digest, untagged.digest}
    assert Reg(server).req("GET", f"/v2/{name}/manifests/build-0").status == 404
    with pytest.raises(ClientError) as e:
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps({"rules": [
            {"rulePriority": 1, "description": "no count type given here",
             "selection": {"tagStatus": "any", "countType": "bogus", "countNumber": 1}}]}))
    assert code_of(e) == "InvalidParameterException"
    ecr.delete_lifecycle_policy(repositoryName=name)
    with pytest.raises(ClientError) as e:
        ecr.get_lifecycle_policy(repositoryName=name)
    assert code_of(e) == "LifecyclePolicyNotFoundException"


def test_strict_identity_policies_on_the_api(fresh_server):
    s = fresh_server(extra_args=["--auth", "strict"])
    root = s.client("ecr")
    name = unique("strict/api")
    root.create_repository(repositoryName=name)
    put(root, name, Image(), "v1")
    iam = s.client("iam")
    user = unique("reader")
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user,
                           PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly")
    k = iam.create_access_key(UserName=user)["AccessKey"]
    ro = s.client("ecr", key=k["AccessKeyId"], secret=k["SecretAccessKey"])
    assert ro.describe_images(repositoryName=name)["imageDetails"]
    assert ro.get_authorization_token()["authorizationData"]
    with pytest.raises(ClientError) as e:
        ro.put_image(repositoryName=name, imageManifest=Image().manifest.decode(), imageTag="x")
    assert code_of(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        ro.create_repository(repositoryName=unique("strict/no"))
    assert code_of(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        ro.delete_repository(repositoryName=name, force=True)
    assert code_of(e) == "AccessDeniedException"
    # A user without any policy may do nothing.
    bare = unique("bare")
    iam.create_user(UserName=bare)
    k = iam.create_access_key(UserName=bare)["AccessKey"]
    with pytest.raises(ClientError) as e:
        s.client("ecr", key=k["AccessKeyId"], secret=k["SecretAccessKey"]).get_authorization_token()
    assert code_of(e) == "AccessDeniedException"
