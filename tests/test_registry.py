"""The OCI registry at /v2/ (the ECR data plane), black-box: raw HTTP for what the OCI
distribution conformance suite checks (pull, push, content discovery, content management),
and the real clients from Debian (skopeo, podman, buildah) against the repository URI exactly
as `aws ecr describe-repositories` returns it.

Images are built here by hand (an OCI layout written in Python): no internet is needed."""
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from conftest import unique

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_of(files):
    """A gzip layer from {path: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buf.getvalue(), mtime=0)


class Image:
    """A small image: config, layers and manifest bytes."""

    def __init__(self, files=None, layers=None, media_type=OCI_MANIFEST, subject=None,
                 artifact_type=None, annotations=None):
        self.layers = layers or [layer_of(files or {"hello.txt": os.urandom(16).hex().encode()})]
        diff_ids = [sha(gzip.decompress(l)) for l in self.layers]
        self.config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        docker = media_type == DOCKER_MANIFEST
        m = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json" if docker else OCI_CONFIG,
                       "digest": sha(self.config), "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else OCI_LAYER,
                        "digest": sha(l), "size": len(l)} for l in self.layers],
        }
        if subject is not None:
            m["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": subject[1]}
        if artifact_type:
            m["artifactType"] = artifact_type
        if annotations:
            m["annotations"] = annotations
        self.media_type = media_type
        self.manifest = json.dumps(m).encode()
        self.digest = sha(self.manifest)

    def blobs(self):
        return [self.config] + self.layers

    def write_oci_layout(self, path, tag):
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        for b in self.blobs() + [self.manifest]:
            with open(os.path.join(path, "blobs", "sha256", sha(b)[7:]), "wb") as f:
                f.write(b)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        with open(os.path.join(path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [{
                "mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)

    def code(self):
        return self.json()["errors"][0]["code"]


class Reg:
    """Raw HTTP to the registry."""

    def __init__(self, server, auth=None):
        self.port = server.port
        self.auth = auth

    def req(self, method, path, body=b"", headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = dict(headers or {})
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(f"AWS:{self.auth}".encode()).decode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        out = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        c.close()
        return out

    def push_blob(self, repo, data):
        r = self.req("POST", f"/v2/{repo}/blobs/uploads/")
        assert r.status == 202, r.body
        loc = r.header("location")
        sep = "&" if "?" in loc else "?"
        r = self.req("PUT", f"{loc}{sep}digest={sha(data)}", data,
                     {"Content-Type": "application/octet-stream"})
        assert r.status == 201, r.body
        return sha(data)

    def push_image(self, repo, img, tag):
        for b in img.blobs():
            self.push_blob(repo, b)
        r = self.req("PUT", f"/v2/{repo}/manifests/{tag}", img.manifest,
                     {"Content-Type": img.media_type})
        assert r.status == 201, r.body
        return r


@pytest.fixture
def repo(server):
    name = unique("reg/app")
    server.client("ecr").create_repository(repositoryName=name)
    return name


@pytest.fixture
def reg(server):
    return Reg(server)


# ---- pull and push (conformance: pull / push) ----

def test_base_endpoint(reg):
    r = reg.req("GET", "/v2/")
    assert r.status == 200
    assert r.header("docker-distribution-api-version") == "registry/2.0"


def test_post_put_push_then_pull(server, reg, repo):
    img = Image()
    for b in img.blobs():
        reg.push_blob(repo, b)
        h = reg.req("HEAD", f"/v2/{repo}/blobs/{sha(b)}")
        assert h.status == 200 and int(h.header("content-length")) == len(b)
        assert h.header("docker-content-digest") == sha(b) and h.body == b""
        g = reg.req("GET", f"/v2/{repo}/blobs/{sha(b)}")
        assert g.status == 200 and g.body == b
    r = reg.push_image(repo, img, "v1")
    assert r.header("docker-content-digest") == img.digest
    assert r.header("location") == f"/v2/{repo}/manifests/{img.digest}"
    for ref in ["v1", img.digest]:
        g = reg.req("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert g.status == 200 and g.body == img.manifest
        assert g.header("content-type") == OCI_MANIFEST
        assert g.header("docker-content-digest") == img.digest
        h = reg.req("HEAD", f"/v2/{repo}/manifests/{ref}")
        assert h.status == 200 and int(h.header("content-length")) == len(img.manifest) and h.body == b""
    # Consistent with the ECR API.
    d = server.client("ecr").describe_images(repositoryName=repo)["imageDetails"]
    assert len(d) == 1 and d[0]["imageDigest"] == img.digest and d[0]["imageTags"] == ["v1"]
    assert d[0]["imageManifestMediaType"] == OCI_MANIFEST
    assert d[0]["imageSizeInBytes"] == sum(len(b) for b in img.blobs())


def test_blob_range_requests(reg, repo):
    data = os.urandom(5000)
    d = reg.push_blob(repo, data)
    r = reg.req("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=100-199"})
    assert r.status == 206 and r.body == data[100:200]
    assert r.header("content-range") == "bytes 100-199/5000"
    r = reg.req("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=4990-"})
    assert r.status == 206 and r.body == data[4990:]
    r = reg.req("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=6000-7000"})
    assert r.status == 416


def test_monolithic_post(reg, repo):
    data = b"monolithic blob"
    r = reg.req("POST", f"/v2/{repo}/blobs/uploads/?digest={sha(data)}", data,
                {"Content-Type": "application/octet-stream"})
    assert r.status == 201, r.body
    assert r.header("location") == f"/v2/{repo}/blobs/{sha(data)}"
    assert reg.req("GET", f"/v2/{repo}/blobs/{sha(data)}").body == data


def test_chunked_upload_with_status_and_order(reg, repo):
    data = os.urandom(3000)
    r = reg.req("POST", f"/v2/{repo}/blobs/uploads/")
    loc = r.header("location")
    assert r.header("docker-upload-uuid")
    offset = 0
    for chunk in [data[:1000], data[1000:2500]]:
        r = reg.req("PATCH", loc, chunk, {"Content-Type": "application/octet-stream",
                                          "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert r.status == 202, r.body
        offset += len(chunk)
        assert r.header("range") == f"0-{offset - 1}"
        loc = r.header("location")
    st = reg.req("GET", loc)
    assert st.status == 204 and st.header("range") == "0-2499"
    # A chunk that does not continue where the upload is refused.
    bad = reg.req("PATCH", loc, b"xx", {"Content-Range": "10-11"})
    assert bad.status == 416
    r = reg.req("PUT", f"{loc}?digest={sha(data)}", data[2500:])
    assert r.status == 201, r.body
    assert reg.req("GET", f"/v2/{repo}/blobs/{sha(data)}").body == data
    assert reg.req("GET", loc).status == 404  # the session is gone


def test_cancel_upload(reg, repo):
    loc = reg.req("POST", f"/v2/{repo}/blobs/uploads/").header("location")
    assert reg.req("DELETE", loc).status == 204
    r = reg.req("GET", loc)
    assert r.status == 404 and r.code() == "BLOB_UPLOAD_UNKNOWN"


def test_digest_mismatch_is_refused(reg, repo):
    loc = reg.req("POST", f"/v2/{repo}/blobs/uploads/").header("location")
    wrong = sha(b"something else")
    r = reg.req("PUT", f"{loc}?digest={wrong}", b"content")
    assert r.status == 400 and r.code() == "DIGEST_INVALID"
    assert reg.req("HEAD", f"/v2/{repo}/blobs/{wrong}").status == 404
    r = reg.req("POST", f"/v2/{repo}/blobs/uploads/?digest=sha256:nothex", b"x")
    assert r.status == 400 and r.code() == "DIGEST_INVALID"


def test_error_codes(server, reg, repo):
    r = reg.req("GET", f"/v2/{repo}/manifests/nope")
    assert r.status == 404 and r.code() == "MANIFEST_UNKNOWN"
    assert r.header("content-type") == "application/json"
    r = reg.req("GET", f"/v2/{repo}/blobs/{sha(b'none')}")
    assert r.status == 404 and r.code() == "BLOB_UNKNOWN"
    r = reg.req("GET", "/v2/no-such-repo-x/manifests/latest")
    assert r.status == 404 and r.code() == "NAME_UNKNOWN"
    # A push to a repository ECR does not know is refused, as ECR does.
    r = reg.req("POST", "/v2/no-such-repo-x/blobs/uploads/")
    assert r.status == 404 and r.code() == "NAME_UNKNOWN"
    r = reg.req("GET", "/v2/Bad_Name/tags/list")
    assert r.status == 400 and r.code() == "NAME_INVALID"
    r = reg.req("PUT", f"/v2/{repo}/manifests/v1", b"{not json", {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.code() == "MANIFEST_INVALID"
    img = Image()
    r = reg.req("PUT", f"/v2/{repo}/manifests/v1", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.code() == "MANIFEST_BLOB_UNKNOWN"
    for b in img.blobs():
        reg.push_blob(repo, b)
    r = reg.req("PUT", f"/v2/{repo}/manifests/{sha(b'other')}", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.code() == "DIGEST_INVALID"
    r = reg.req("PUT", f"/v2/{repo}/manifests/{img.digest}", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert r.status == 201
    assert server.client("ecr").list_images(repositoryName=repo)["imageIds"] == [{"imageDigest": img.digest}]


def test_cross_repository_mount(server, reg, repo):
    other = unique("reg/other")
    server.client("ecr").create_repository(repositoryName=other)
    d = reg.push_blob(repo, b"shared layer")
    assert reg.req("HEAD", f"/v2/{other}/blobs/{d}").status == 404
    r = reg.req("POST", f"/v2/{other}/blobs/uploads/?mount={d}&from={repo}")
    assert r.status == 201 and r.header("location") == f"/v2/{other}/blobs/{d}"
    assert reg.req("GET", f"/v2/{other}/blobs/{d}").body == b"shared layer"
    # Mounting something the source does not have starts a normal upload.
    r = reg.req("POST", f"/v2/{other}/blobs/uploads/?mount={sha(b'zz')}&from={repo}")
    assert r.status == 202 and "/blobs/uploads/" in r.header("location")


def test_docker_schema2_and_index(server, reg, repo):
    img = Image(media_type=DOCKER_MANIFEST)
    reg.push_image(repo, img, "docker")
    g = reg.req("GET", f"/v2/{repo}/manifests/docker")
    assert g.header("content-type") == DOCKER_MANIFEST
    amd = Image()
    reg.push_image(repo, amd, amd.digest)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd.digest, "size": len(amd.manifest),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    r = reg.req("PUT", f"/v2/{repo}/manifests/multi", index, {"Content-Type": OCI_INDEX})
    assert r.status == 201, r.body
    assert reg.req("GET", f"/v2/{repo}/manifests/multi").header("content-type") == OCI_INDEX
    # An index whose children are not in the repository is refused.
    bad = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b"x"), "size": 1}]}).encode()
    r = reg.req("PUT", f"/v2/{repo}/manifests/bad", bad, {"Content-Type": OCI_INDEX})
    assert r.status == 400 and r.code() == "MANIFEST_BLOB_UNKNOWN"


# ---- content discovery ----

def test_tags_list_pagination(reg, repo):
    img = Image()
    reg.push_image(repo, img, "t0")
    for t in ["t1", "t2", "t3", "t4"]:
        assert reg.req("PUT", f"/v2/{repo}/manifests/{t}", img.manifest,
                       {"Content-Type": OCI_MANIFEST}).status == 201
    r = reg.req("GET", f"/v2/{repo}/tags/list")
    assert r.json() == {"name": repo, "tags": ["t0", "t1", "t2", "t3", "t4"]}
    r = reg.req("GET", f"/v2/{repo}/tags/list?n=2")
    assert r.json()["tags"] == ["t0", "t1"]
    assert 'rel="next"' in r.header("link") and "last=t1" in r.header("link")
    r = reg.req("GET", f"/v2/{repo}/tags/list?n=2&last=t1")
    assert r.json()["tags"] == ["t2", "t3"]
    r = reg.req("GET", f"/v2/{repo}/tags/list?n=10&last=t3")
    assert r.json()["tags"] == ["t4"] and r.header("link") is None
    assert reg.req("GET", f"/v2/{repo}/tags/list?n=0").json()["tags"] == []


def test_catalog(server, reg):
    ecr = server.client("ecr")
    base = unique("cat")
    for s in ["a", "b", "c"]:
        ecr.create_repository(repositoryName=f"{base}/{s}")
    names = reg.req("GET", "/v2/_catalog?n=1000").json()["repositories"]
    assert [f"{base}/a", f"{base}/b", f"{base}/c"] == [n for n in names if n.startswith(base)]
    r = reg.req("GET", f"/v2/_catalog?n=1&last={base}/a")
    assert r.json()["repositories"] == [f"{base}/b"] and 'rel="next"' in r.header("link")


def test_referrers(reg, repo):
    img = Image()
    reg.push_image(repo, img, "v1")
    sig = Image(files={"sig": b"signature"}, subject=(img.digest, len(img.manifest)),
                artifact_type="application/vnd.example.sig", annotations={"k": "v"})
    sbom = Image(files={"sbom": b"{}"}, subject=(img.digest, len(img.manifest)),
                 artifact_type="application/vnd.example.sbom")
    for a in [sig, sbom]:
        for b in a.blobs():
            reg.push_blob(repo, b)
        r = reg.req("PUT", f"/v2/{repo}/manifests/{a.digest}", a.manifest, {"Content-Type": OCI_MANIFEST})
        assert r.status == 201 and r.header("oci-subject") == img.digest
    r = reg.req("GET", f"/v2/{repo}/referrers/{img.digest}")
    assert r.status == 200 and r.header("content-type") == OCI_INDEX
    idx = r.json()
    assert idx["mediaType"] == OCI_INDEX
    got = {m["digest"]: m for m in idx["manifests"]}
    assert set(got) == {sig.digest, sbom.digest}
    assert got[sig.digest]["artifactType"] == "application/vnd.example.sig"
    assert got[sig.digest]["annotations"] == {"k": "v"}
    assert got[sig.digest]["size"] == len(sig.manifest)
    r = reg.req("GET", f"/v2/{repo}/referrers/{img.digest}?artifactType=application/vnd.example.sbom")
    assert [m["digest"] for m in r.json()["manifests"]] == [sbom.digest]
    assert r.header("oci-filters-applied") == "artifactType"
    r = reg.req("GET", f"/v2/{repo}/referrers/{sha(b'nothing')}")
    assert r.status == 200 and r.json()["manifests"] == []


# ---- content management ----

def test_delete_manifests_and_blobs(server, reg, repo):
    img = Image()
    reg.push_image(repo, img, "v1")
    reg.req("PUT", f"/v2/{repo}/manifests/v2", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert reg.req("DELETE", f"/v2/{repo}/manifests/v2").status == 202
    assert reg.req("GET", f"/v2/{repo}/manifests/v2").status == 404
    assert reg.req("GET", f"/v2/{repo}/manifests/v1").status == 200
    assert reg.req("DELETE", f"/v2/{repo}/manifests/{img.digest}").status == 202
    for ref in ["v1", img.digest]:
        r = reg.req("GET", f"/v2/{repo}/manifests/{ref}")
        assert r.status == 404 and r.code() == "MANIFEST_UNKNOWN"
    assert server.client("ecr").describe_images(repositoryName=repo)["imageDetails"] == []
    r = reg.req("DELETE", f"/v2/{repo}/manifests/{img.digest}")
    assert r.status == 404
    layer = sha(img.layers[0])
    assert reg.req("DELETE", f"/v2/{repo}/blobs/{layer}").status == 202
    r = reg.req("GET", f"/v2/{repo}/blobs/{layer}")
    assert r.status == 404 and r.code() == "BLOB_UNKNOWN"


def test_immutable_tags(server, reg):
    name = unique("reg/immutable")
    server.client("ecr").create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    reg.push_image(name, Image(), "v1")
    other = Image()
    for b in other.blobs():
        reg.push_blob(name, b)
    r = reg.req("PUT", f"/v2/{name}/manifests/v1", other.manifest, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.code() == "TAG_INVALID"
    assert "immutable" in r.json()["errors"][0]["message"]


def test_ecr_api_push_is_pullable(server, reg, repo):
    """Blobs uploaded and an image put through the ECR API are what the registry serves."""
    ecr = server.client("ecr")
    img = Image()
    for b in img.blobs():
        up = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        ecr.upload_layer_part(repositoryName=repo, uploadId=up, partFirstByte=0,
                              partLastByte=len(b) - 1, layerPartBlob=b)
        ecr.complete_layer_upload(repositoryName=repo, uploadId=up, layerDigests=[sha(b)])
    ecr.put_image(repositoryName=repo, imageManifest=img.manifest.decode(), imageTag="api")
    r = reg.req("GET", f"/v2/{repo}/manifests/api")
    assert r.status == 200 and r.body == img.manifest
    assert reg.req("GET", f"/v2/{repo}/blobs/{sha(img.layers[0])}").body == img.layers[0]
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "api"}])
    assert reg.req("GET", f"/v2/{repo}/manifests/{img.digest}").status == 404


def test_builtin_host_userland(reg, tmp_path):
    r = reg.req("GET", "/v2/ferrocloud/host-userland/manifests/latest")
    assert r.status == 200
    m = r.json()
    cfg = reg.req("GET", f"/v2/ferrocloud/host-userland/blobs/{m['config']['digest']}").json()
    assert cfg["config"]["Labels"]["dev.ferrocloud.host-binds"] == "/usr:/usr:ro"
    layer = reg.req("GET", f"/v2/ferrocloud/host-userland/blobs/{m['layers'][0]['digest']}").body
    with tarfile.open(fileobj=io.BytesIO(layer)) as t:
        names = {i.name: i for i in t.getmembers()}
    assert names["bin"].issym() and names["bin"].linkname == "usr/bin"
    assert {"etc/passwd", "etc/group", "etc/hosts", "etc/resolv.conf", "etc/os-release",
            "etc/nsswitch.conf"} <= set(names)
    r = reg.req("PUT", "/v2/ferrocloud/host-userland/manifests/latest", b"{}")
    assert r.status == 403


# ---- real clients ----

def need(tool):
    if not shutil.which(tool):
        pytest.fail(f"{tool} is not installed: run scripts/install-test-deps")


def run(*cmd, check=True, input=None, timeout=300):
    p = subprocess.run(list(cmd), capture_output=True, text=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture
def cstore():
    """Container storage of its own (podman/buildah want a short runroot)."""
    d = tempfile.mkdtemp(prefix="fcc", dir="/tmp")
    yield ["--root", os.path.join(d, "s"), "--runroot", os.path.join(d, "r"),
           "--storage-driver", "vfs"]
    subprocess.run(["podman", "--root", os.path.join(d, "s"), "--runroot", os.path.join(d, "r"),
                    "--storage-driver", "vfs", "system", "reset", "--force"],
                   capture_output=True, timeout=120)
    shutil.rmtree(d, ignore_errors=True)


def repo_uri(server, name):
    ecr = server.client("ecr")
    ecr.create_repository(repositoryName=name)
    return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"]


def test_skopeo_copy_oci_layout_roundtrip(server, tmp_path):
    need("skopeo")
    uri = repo_uri(server, unique("skopeo/app"))
    assert uri.startswith(f"127.0.0.1:{server.port}/")
    img = Image(files={"app/data.txt": b"from skopeo"})
    img.write_oci_layout(str(tmp_path / "src"), "v1")
    run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", f"docker://{uri}:v1")
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{uri}:v1").stdout)
    assert info["Digest"] == img.digest and info["Layers"] == [sha(img.layers[0])]
    run("skopeo", "copy", "--src-tls-verify=false", f"docker://{uri}:v1", f"oci:{tmp_path / 'back'}:v1")
    with open(tmp_path / "back" / "blobs" / "sha256" / sha(img.layers[0])[7:], "rb") as f:
        assert f.read() == img.layers[0]
    tags = json.loads(run("skopeo", "list-tags", "--tls-verify=false", f"docker://{uri}").stdout)
    assert tags["Tags"] == ["v1"]
    # docker-archive import path as documented, via a docker-archive written by skopeo.
    run("skopeo", "copy", f"oci:{tmp_path / 'src'}:v1", f"docker-archive:{tmp_path / 'a.tar'}:x/y:z")
    run("skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{tmp_path / 'a.tar'}", f"docker://{uri}:imported")
    d = server.client("ecr").describe_images(repositoryName=uri.split("/", 1)[1],
                                             imageIds=[{"imageTag": "imported"}])["imageDetails"][0]
    assert d["imageManifestMediaType"] == DOCKER_MANIFEST


def test_skopeo_copies_builtin_userland(server, tmp_path):
    need("skopeo")
    uri = repo_uri(server, unique("skopeo/userland"))
    host = uri.split("/")[0]
    run("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
        f"docker://{host}/ferrocloud/host-userland:latest", f"docker://{uri}:base")
    ids = server.client("ecr").list_images(repositoryName=uri.split("/", 1)[1])["imageIds"]
    assert [i.get("imageTag") for i in ids] == ["base"]


def test_podman_pull_and_push(server, tmp_path, cstore):
    need("podman")
    src = repo_uri(server, unique("podman/src"))
    dst = repo_uri(server, unique("podman/dst"))
    img = Image(files={"podman.txt": b"hello podman"})
    img.write_oci_layout(str(tmp_path / "src"), "v1")
    run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", f"docker://{src}:v1")
    root = cstore
    run("podman", *root, "pull", "--tls-verify=false", f"{src}:v1")
    run("podman", *root, "tag", f"{src}:v1", f"{dst}:copied")
    run("podman", *root, "push", "--tls-verify=false", f"{dst}:copied")
    got = server.client("ecr").describe_images(repositoryName=dst.split("/", 1)[1])["imageDetails"]
    assert [d["imageTags"] for d in got] == [["copied"]]
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{dst}:copied").stdout)
    assert len(info["Layers"]) == 1


def test_buildah_push(server, tmp_path, cstore):
    need("buildah")
    src = repo_uri(server, unique("buildah/src"))
    dst = repo_uri(server, unique("buildah/dst"))
    img = Image(files={"b.txt": b"hello buildah"})
    img.write_oci_layout(str(tmp_path / "src"), "v1")
    run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", f"docker://{src}:v1")
    root = cstore
    run("buildah", *root, "pull", "--tls-verify=false", f"{src}:v1")
    run("buildah", *root, "push", "--tls-verify=false", f"{src}:v1", f"docker://{dst}:built")
    got = server.client("ecr").list_images(repositoryName=dst.split("/", 1)[1])["imageIds"]
    assert [i["imageTag"] for i in got] == ["built"]


# ---- authentication and permissions (strict mode) ----

@pytest.fixture(scope="module")
def strict_server():
    from conftest import Server
    s = Server(extra_args=["--auth", "strict"]).start()
    yield s
    s.stop()
    shutil.rmtree(s.data_dir, ignore_errors=True)


def password_of(client):
    tok = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, pw = base64.b64decode(tok).decode().split(":", 1)
    assert user == "AWS"
    return pw


def iam_user(server, policy):
    iam = server.client("iam")
    name = unique("ecruser")
    iam.create_user(UserName=name)
    iam.attach_user_policy(UserName=name, PolicyArn=f"arn:aws:iam::aws:policy/{policy}")
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return name, k["AccessKeyId"], k["SecretAccessKey"]


def test_strict_requires_token_and_tokens_expire(fresh_server):
    # Tokens live 12 hours; this server shortens that to see one expire.
    s = fresh_server(extra_args=["--auth", "strict"], env={"FERROCLOUD_ECR_TOKEN_TTL_SECONDS": "3"})
    r = Reg(s).req("GET", "/v2/")
    assert r.status == 401 and r.code() == "UNAUTHORIZED"
    assert r.header("www-authenticate").startswith("Basic realm=")
    assert Reg(s, auth="not-a-token").req("GET", "/v2/").status == 401
    pw = password_of(s.client("ecr"))
    assert Reg(s, auth=pw).req("GET", "/v2/").status == 200
    time.sleep(3.5)
    r = Reg(s, auth=pw).req("GET", "/v2/")
    assert r.status == 401 and r.code() == "UNAUTHORIZED"


def test_strict_podman_login_flow(strict_server, tmp_path):
    need("podman")
    s = strict_server
    ecr = s.client("ecr")
    name = unique("login/app")
    uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    host = uri.split("/")[0]
    _, pw, _ = s.aws("ecr", "get-login-password")
    auth = str(tmp_path / "auth.json")
    p = run("podman", "login", "--authfile", auth, "--tls-verify=false", "--username", "AWS",
            "--password-stdin", host, input=pw)
    assert "Login Succeeded" in p.stdout
    bad = run("podman", "login", "--authfile", str(tmp_path / "bad.json"), "--tls-verify=false",
              "--username", "AWS", "--password-stdin", host, input="wrong", check=False)
    assert bad.returncode != 0
    img = Image()
    img.write_oci_layout(str(tmp_path / "src"), "v1")
    run("skopeo", "copy", "--authfile", auth, "--dest-tls-verify=false",
        f"oci:{tmp_path / 'src'}:v1", f"docker://{uri}:v1")
    assert [i["imageTag"] for i in ecr.list_images(repositoryName=name)["imageIds"]] == ["v1"]
    # Without credentials the push is refused.
    p = run("skopeo", "copy", "--authfile", str(tmp_path / "none.json"), "--dest-tls-verify=false",
            f"oci:{tmp_path / 'src'}:v1", f"docker://{uri}:v2", check=False)
    assert p.returncode != 0


def test_strict_readonly_user_pulls_but_cannot_push(strict_server):
    s = strict_server
    name = unique("perm/app")
    s.client("ecr").create_repository(repositoryName=name)
    root_reg = Reg(s, auth=password_of(s.client("ecr")))
    img = Image()
    root_reg.push_image(name, img, "v1")
    _, key, secret = iam_user(s, "AmazonEC2ContainerRegistryReadOnly")
    ro = Reg(s, auth=password_of(s.client("ecr", key=key, secret=secret)))
    assert ro.req("GET", f"/v2/{name}/manifests/v1").status == 200
    assert ro.req("GET", f"/v2/{name}/blobs/{sha(img.layers[0])}").status == 200
    r = ro.req("POST", f"/v2/{name}/blobs/uploads/")
    assert r.status == 403 and r.code() == "DENIED"
    r = ro.req("PUT", f"/v2/{name}/manifests/v2", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert r.status == 403
    # PowerUser may push.
    _, key, secret = iam_user(s, "AmazonEC2ContainerRegistryPowerUser")
    pu = Reg(s, auth=password_of(s.client("ecr", key=key, secret=secret)))
    assert pu.req("PUT", f"/v2/{name}/manifests/v2", img.manifest, {"Content-Type": OCI_MANIFEST}).status == 201


def test_strict_repository_policy_denies(strict_server):
    s = strict_server
    ecr = s.client("ecr")
    name = unique("perm/denied")
    ecr.create_repository(repositoryName=name)
    user, key, secret = iam_user(s, "AmazonEC2ContainerRegistryFullAccess")
    ecr.set_repository_policy(repositoryName=name, policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "deny", "Effect": "Deny",
            "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{user}"},
            "Action": ["ecr:BatchGetImage", "ecr:DescribeImages"]}]}))
    Reg(s, auth=password_of(ecr)).push_image(name, Image(), "v1")
    u = Reg(s, auth=password_of(s.client("ecr", key=key, secret=secret)))
    r = u.req("GET", f"/v2/{name}/manifests/v1")
    assert r.status == 403 and r.code() == "DENIED"
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as e:
        s.client("ecr", key=key, secret=secret).describe_images(repositoryName=name)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    # Not denied: listing works.
    assert s.client("ecr", key=key, secret=secret).list_images(repositoryName=name)["imageIds"]
