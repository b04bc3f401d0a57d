"""EBS volumes attached to running instances (mounted live at /mnt/ebs/<device>), their data
across detach, re-attach, stop/start, termination and server restarts, their sizes (ENOSPC
past the size, `df`, growth; encrypted volumes too; volumes of the older directory format),
encryption at rest, instance store (kept across reboot, lost on stop), and custom AMIs made
with CreateImage.

Most instances run an "agent" from their user data: the user data removes its own
run-once marker so that it runs at every boot, and starts a loop that writes `data.txt` on
every mounted volume that has none and prints the state of the mounts to the console
whenever it changes (`STATE[ /mnt/ebs/sdf=... vols=... ]`)."""
import gzip
import hashlib
import io
import json
import os
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from conftest import unique

DEBIAN_OWNER = "136693071363"

LINUX = os.geteuid() == 0
needs_linux = pytest.mark.skipif(
    not LINUX, reason="mounts into instances need the linux driver, which needs root")

AGENT = r"""#!/bin/sh
rm -f /var/lib/cloud/ferrocloud/user-data-done
cat > /root/agent.sh <<'EOF'
last=""
root_dev=$(stat -c %d /)
while true; do
  cur=""
  for d in /mnt/ebs/* /media/ephemeral0; do
    [ -d "$d" ] || continue
    [ "$(stat -c %d "$d")" = "$root_dev" ] && continue
    if [ -n "$WRITE" ] && [ ! -e "$d/data.txt" ]; then echo "$WRITE" > "$d/data.txt"; fi
    cur="$cur $d=$(cat "$d/data.txt" 2>/dev/null)"
  done
  vols=$(cat /etc/ferrocloud/volumes 2>/dev/null | tr '\n' ';')
  cur="$cur vols=$vols"
  if [ "$cur" != "$last" ]; then echo "STATE[$cur ]"; last="$cur"; fi
  sleep 0.2
done
EOF
mkdir -p /root
WRITE="%WRITE%-boot$(cat /var/lib/cloud/ferrocloud/boots)" /bin/sh /root/agent.sh &
echo "agent started"
"""


def agent(write=""):
    return AGENT.replace("%WRITE%", write) if write else AGENT.replace(
        'WRITE="%WRITE%-boot$(cat /var/lib/cloud/ferrocloud/boots)" ', "")


def err(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture
def ec2(server):
    return server.client("ec2")


def debian_ami(ec2):
    images = ec2.describe_images(Owners=[DEBIAN_OWNER], Filters=[
        {"Name": "name", "Values": ["debian-12-*"]},
        {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
    assert images
    return images[0]["ImageId"]


def wait_state(ec2, ids, state, timeout=90):
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
    return ec2.get_console_output(InstanceId=iid).get("Output", "")


def wait_console(ec2, iid, predicate, timeout=60, after=0):
    """Wait until the console output (from character `after` on) matches."""
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = console(ec2, iid)
        if predicate(text[after:]):
            return text
        time.sleep(0.3)
    raise AssertionError("console output never matched:\n" + text[-3000:])


def last_state(text):
    lines = [l for l in text.splitlines() if l.startswith("STATE[")]
    return lines[-1] if lines else ""


def wait_last_state(ec2, iid, predicate, timeout=60):
    return wait_console(ec2, iid, lambda t: predicate(last_state(t)), timeout)


def wait_volume(ec2, vid, state, attach_state=None, timeout=60):
    deadline = time.time() + timeout
    while True:
        v = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
        att = [a["State"] for a in v["Attachments"]]
        if v["State"] == state and (attach_state is None or att == [attach_state]):
            return v
        if time.time() > deadline:
            raise AssertionError(f"volume {vid} not {state}/{attach_state}: {v}")
        time.sleep(0.2)


@pytest.fixture
def launched(ec2):
    ids = []
    yield ids
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
        wait_state(ec2, ids, "terminated")


@pytest.fixture
def volumes(ec2):
    """Volumes a test created; deleted afterwards (after its instances are gone)."""
    ids = []
    yield ids
    for v in ids:
        try:
            ec2.delete_volume(VolumeId=v)
        except ClientError:
            pass


def run(ec2, launched, user_data="", itype="t3.micro", count=1, image=None, **kw):
    r = ec2.run_instances(ImageId=image or debian_ami(ec2), InstanceType=itype, MinCount=count,
                          MaxCount=count, UserData=user_data, **kw)
    ids = [i["InstanceId"] for i in r["Instances"]]
    launched.extend(ids)
    wait_state(ec2, ids, "running")
    return ids, r["Instances"][0]["Placement"]["AvailabilityZone"]


def host_files(server, name):
    out = []
    for root, _, files in os.walk(server.data_dir):
        for f in files:
            if name in root or name in f:
                out.append(os.path.join(root, f))
    return out


# ---- API behaviour (any driver) ----

def test_attach_errors(ec2, launched, volumes):
    (iid,), az = run(ec2, launched)
    other_az = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]
                if z["ZoneName"] != az][0]
    v = ec2.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
    far = ec2.create_volume(AvailabilityZone=other_az, Size=1)["VolumeId"]
    volumes.extend([v, far])
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId="vol-0123456789abcdef0", InstanceId=iid, Device="/dev/sdf")
    assert err(e) == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=v, InstanceId="i-0123456789abcdef0", Device="/dev/sdf")
    assert err(e) == "InvalidInstanceID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=far, InstanceId=iid, Device="/dev/sdf")
    assert err(e) == "InvalidVolume.ZoneMismatch"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=v, InstanceId=iid, Device="/dev/xvda")
    assert err(e) == "InvalidParameterValue"  # the root device
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=v, InstanceId=iid, Device="sdf")
    assert err(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.detach_volume(VolumeId=v)
    assert err(e) == "IncorrectState"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=v, InstanceId=iid, Device="/dev/sdf", DryRun=True)
    assert err(e) == "DryRunOperation"
    a = ec2.attach_volume(VolumeId=v, InstanceId=iid, Device="/dev/sdf")
    assert a["State"] in ("attaching", "attached") and a["Device"] == "/dev/sdf"
    wait_volume(ec2, v, "in-use", "attached")
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=v, InstanceId=iid, Device="/dev/sdg")
    assert err(e) == "VolumeInUse"
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=v)
    assert err(e) == "VolumeInUse"
    v2 = ec2.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
    volumes.append(v2)
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=v2, InstanceId=iid, Device="/dev/xvdf")  # same as sdf
    assert err(e) == "InvalidParameterValue"
    # The attachment in the views.
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    root = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    got = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])
    assert {x["VolumeId"] for x in got["Volumes"]} == {v, root}
    # The root volume is a volume too, attached at the root device, and stays there.
    rv = ec2.describe_volumes(VolumeIds=[root])["Volumes"][0]
    assert rv["State"] == "in-use" and rv["Attachments"][0]["Device"] == "/dev/xvda"
    assert rv["Attachments"][0]["DeleteOnTermination"] is True
    with pytest.raises(ClientError) as e:
        ec2.detach_volume(VolumeId=root)
    assert err(e) == "IncorrectState"
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=root)
    assert err(e) == "VolumeInUse"
    got = ec2.describe_volumes(Filters=[{"Name": "attachment.device", "Values": ["/dev/sdf"]},
                                        {"Name": "attachment.status", "Values": ["attached"]}])
    assert v in [x["VolumeId"] for x in got["Volumes"]]
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    bdm = {b["DeviceName"]: b["Ebs"] for b in inst["BlockDeviceMappings"]}
    assert bdm["/dev/sdf"]["VolumeId"] == v and bdm["/dev/sdf"]["DeleteOnTermination"] is False
    assert bdm["/dev/xvda"]["DeleteOnTermination"] is True
    # DeleteOnTermination through ModifyInstanceAttribute.
    ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdf", "Ebs": {"DeleteOnTermination": True}}])
    attr = ec2.describe_instance_attribute(InstanceId=iid, Attribute="blockDeviceMapping")
    bdm = {b["DeviceName"]: b["Ebs"] for b in attr["BlockDeviceMappings"]}
    assert bdm["/dev/sdf"]["DeleteOnTermination"] is True
    with pytest.raises(ClientError) as e:
        ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
            {"DeviceName": "/dev/sdz", "Ebs": {"DeleteOnTermination": True}}])
    assert err(e) == "InvalidInstanceAttributeValue"
    with pytest.raises(ClientError) as e:
        ec2.detach_volume(VolumeId=v, InstanceId=iid, Device="/dev/sdq")
    assert err(e) == "InvalidAttachment.NotFound"
    d = ec2.detach_volume(VolumeId=v, InstanceId=iid)
    assert d["State"] == "detaching"
    wait_volume(ec2, v, "available")


def test_launch_mappings_and_delete_on_termination(ec2, launched, volumes):
    ids, az = run(ec2, launched, BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"DeleteOnTermination": False}},
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 2, "VolumeType": "gp3",
                                           "DeleteOnTermination": False}},
        {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 1}},
    ], TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "t", "Value": "v"}]}])
    iid = ids[0]
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    bdm = {b["DeviceName"]: b["Ebs"] for b in inst["BlockDeviceMappings"]}
    assert set(bdm) == {"/dev/xvda", "/dev/sdf", "/dev/sdg"}
    assert bdm["/dev/xvda"]["DeleteOnTermination"] is False
    keep, gone = bdm["/dev/sdf"]["VolumeId"], bdm["/dev/sdg"]["VolumeId"]
    root = bdm["/dev/xvda"]["VolumeId"]
    v = ec2.describe_volumes(VolumeIds=[keep])["Volumes"][0]
    assert v["Size"] == 2 and v["VolumeType"] == "gp3" and v["State"] == "in-use"
    assert {"Key": "t", "Value": "v"} in v["Tags"]
    ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
    launched.remove(iid)
    v = wait_volume(ec2, keep, "available")
    assert v["Attachments"] == []
    volumes.extend([keep, root])
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[gone])
    assert err(e) == "InvalidVolume.NotFound"
    # The kept root volume is available, with the instance's root filesystem changes.
    r = ec2.describe_volumes(VolumeIds=[root])["Volumes"][0]
    assert r["State"] == "available" and r["Attachments"] == []


def test_launch_mapping_errors(ec2):
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=debian_ami(ec2), MinCount=1, MaxCount=1, BlockDeviceMappings=[
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeType": "gp3"}}])
    assert err(e) == "MissingParameter"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=debian_ami(ec2), MinCount=1, MaxCount=1, BlockDeviceMappings=[
            {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}])
    assert err(e) == "InvalidSnapshot.NotFound"


# ---- data inside instances (linux driver) ----

@needs_linux
def test_volume_data_follows_the_volume(ec2, launched, volumes):
    (a,), az = run(ec2, launched, agent("from-A"))
    (b,), _ = run(ec2, launched, agent(), Placement={"AvailabilityZone": az})
    wait_console(ec2, a, lambda t: "STATE[" in t)
    wait_console(ec2, b, lambda t: "STATE[" in t)
    v = ec2.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
    volumes.append(v)
    # Attached live: the running instance sees it mounted and writes to it.
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
    wait_volume(ec2, v, "in-use", "attached")
    wait_last_state(ec2, a, lambda s: "/mnt/ebs/sdf=from-A-boot1" in s
                    and f"/dev/sdf {v} /mnt/ebs/sdf" in s)
    # Snapshot of the attached volume captures the data.
    snap = ec2.create_snapshot(VolumeId=v)["SnapshotId"]
    # Detached live: gone from the instance.
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")
    wait_last_state(ec2, a, lambda s: "/mnt/ebs/sdf" not in s and v not in s)
    # Re-attached to another instance: the data is there.
    ec2.attach_volume(VolumeId=v, InstanceId=b, Device="/dev/xvdg")
    wait_volume(ec2, v, "in-use", "attached")
    wait_last_state(ec2, b, lambda s: "/mnt/ebs/xvdg=from-A-boot1" in s)
    # Stop/start keeps it (mounted again at boot).
    ec2.stop_instances(InstanceIds=[b])
    wait_state(ec2, [b], "stopped")
    ec2.start_instances(InstanceIds=[b])
    wait_state(ec2, [b], "running")
    wait_console(ec2, b, lambda t: "boot 2 of" in t and "/mnt/ebs/xvdg=from-A-boot1"
                 in last_state(t))
    # A volume attached while stopped is mounted at the next start.
    ec2.stop_instances(InstanceIds=[b])
    wait_state(ec2, [b], "stopped")
    v2 = ec2.create_volume(AvailabilityZone=az, SnapshotId=snap)["VolumeId"]
    volumes.append(v2)
    ec2.attach_volume(VolumeId=v2, InstanceId=b, Device="/dev/sdh")
    assert ec2.describe_volumes(VolumeIds=[v2])["Volumes"][0]["Attachments"][0]["State"] \
        == "attached"
    ec2.start_instances(InstanceIds=[b])
    wait_state(ec2, [b], "running")
    wait_console(ec2, b, lambda t: "boot 3 of" in t and "/mnt/ebs/sdh=from-A-boot1"
                 in last_state(t))
    # Terminating with DeleteOnTermination false (the default for attached volumes) keeps
    # both volumes, available, with their data.
    ec2.terminate_instances(InstanceIds=[b])
    wait_state(ec2, [b], "terminated")
    launched.remove(b)
    wait_volume(ec2, v, "available")
    wait_volume(ec2, v2, "available")
    ec2.attach_volume(VolumeId=v2, InstanceId=a, Device="/dev/sdi")
    wait_last_state(ec2, a, lambda s: "/mnt/ebs/sdi=from-A-boot1" in s)
    ec2.detach_volume(VolumeId=v2)
    wait_volume(ec2, v2, "available")
    ec2.delete_snapshot(SnapshotId=snap)


@needs_linux
def test_encrypted_volume_is_encrypted_at_rest(ec2, server, launched, volumes):
    marker = "PLAINTEXT-" + unique("m")
    (a,), az = run(ec2, launched, agent(marker))
    (b,), _ = run(ec2, launched, agent(), Placement={"AvailabilityZone": az})
    v = ec2.create_volume(AvailabilityZone=az, Size=1, Encrypted=True)["VolumeId"]
    volumes.append(v)
    vol = ec2.describe_volumes(VolumeIds=[v])["Volumes"][0]
    assert vol["Encrypted"] is True and vol["KmsKeyId"].startswith("arn:aws:kms:")
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
    wait_last_state(ec2, a, lambda s: f"/mnt/ebs/sdf={marker}-boot1" in s)
    snap = ec2.create_snapshot(VolumeId=v)["SnapshotId"]
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")
    # Nothing under the server's data directory holds the plaintext.
    for path in host_files(server, v) + host_files(server, snap):
        with open(path, "rb") as f:
            assert marker.encode() not in f.read(), path
    assert host_files(server, v), "the volume has data on disk"
    key = [p for p in host_files(server, "ebs-master.key")]
    assert key and oct(os.stat(key[0]).st_mode & 0o777) == "0o600"
    # It decrypts where it is attached again, and a volume from its snapshot too.
    ec2.attach_volume(VolumeId=v, InstanceId=b, Device="/dev/sdf")
    wait_last_state(ec2, b, lambda s: f"/mnt/ebs/sdf={marker}-boot1" in s)
    v2 = ec2.create_volume(AvailabilityZone=az, SnapshotId=snap)["VolumeId"]
    volumes.append(v2)
    assert ec2.describe_volumes(VolumeIds=[v2])["Volumes"][0]["Encrypted"] is True
    ec2.attach_volume(VolumeId=v2, InstanceId=b, Device="/dev/sdg")
    wait_last_state(ec2, b, lambda s: f"/mnt/ebs/sdg={marker}-boot1" in s)
    for x in (v, v2):
        ec2.detach_volume(VolumeId=x)
    for x in (v, v2):
        wait_volume(ec2, x, "available")
    ec2.delete_snapshot(SnapshotId=snap)


@needs_linux
def test_instance_store_kept_across_reboot_lost_on_stop(ec2, launched):
    imds = ("python3 -c 'import urllib.request as u; print(\"BDM-EPH0\", u.urlopen(\""
            "http://169.254.169.254/latest/meta-data/block-device-mapping/ephemeral0\", "
            "timeout=5).read().decode())'\n")
    (a,), _ = run(ec2, launched, agent("eph") + imds, itype="i3.large")
    wait_last_state(ec2, a, lambda s: "/media/ephemeral0=eph-boot1" in s
                    and "ephemeral0 /media/ephemeral0" in s)
    wait_console(ec2, a, lambda t: "BDM-EPH0 sdb" in t)
    ec2.reboot_instances(InstanceIds=[a])
    wait_console(ec2, a, lambda t: "boot 2 of" in t and "/media/ephemeral0=eph-boot1"
                 in last_state(t))
    ec2.stop_instances(InstanceIds=[a])
    wait_state(ec2, [a], "stopped")
    ec2.start_instances(InstanceIds=[a])
    wait_state(ec2, [a], "running")
    # Lost on stop: the agent finds it empty at boot 3 and writes anew.
    wait_console(ec2, a, lambda t: "boot 3 of" in t and "/media/ephemeral0=eph-boot3"
                 in last_state(t))
    # Not detachable: it has no volume and is not in the instance's EBS mappings.
    inst = ec2.describe_instances(InstanceIds=[a])["Reservations"][0]["Instances"][0]
    assert [b["DeviceName"] for b in inst["BlockDeviceMappings"]] == ["/dev/xvda"]


MARK = r"""#!/bin/sh
echo "baked-into-the-image" > /etc/ami-marker.txt
mkdir -p /opt/app && echo "config v2" > /opt/app/app.conf
rm -f /etc/os-release
echo "user data of the image builder done"
"""

CHECK = r"""#!/bin/sh
echo "MARKER=$(cat /etc/ami-marker.txt) CONF=$(cat /opt/app/app.conf) OSREL=$(ls /etc/os-release 2>&1 | grep -c 'No such')"
"""


@needs_linux
def test_create_image_from_instance(ec2, server, launched):
    (a,), _ = run(ec2, launched, MARK)
    wait_console(ec2, a, lambda t: "user data of the image builder done" in t)
    name = unique("my-ami")
    with pytest.raises(ClientError) as e:
        ec2.create_image(InstanceId="i-0123456789abcdef0", Name=name)
    assert err(e) == "InvalidInstanceID.NotFound"
    ami = ec2.create_image(InstanceId=a, Name=name, Description="baked",
                           TagSpecifications=[{"ResourceType": "image",
                                               "Tags": [{"Key": "k", "Value": "v"}]}])["ImageId"]
    with pytest.raises(ClientError) as e:
        ec2.create_image(InstanceId=a, Name=name)
    assert err(e) == "InvalidAMIName.Duplicate"
    server.aws("ec2", "wait", "image-available", "--image-ids", ami)
    img = ec2.describe_images(Owners=["self"], ImageIds=[ami])["Images"][0]
    assert img["State"] == "available" and img["Name"] == name
    assert {"Key": "k", "Value": "v"} in img["Tags"]
    root = img["BlockDeviceMappings"][0]
    assert root["DeviceName"] == "/dev/xvda" and root["Ebs"]["SnapshotId"].startswith("snap-")
    assert ami in [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]]
    # Without NoReboot the instance was rebooted around the capture.
    wait_console(ec2, a, lambda t: "boot 2 of" in t)
    # Two instances from the new AMI both see the changes (and run their own user data).
    ids, _ = run(ec2, launched, CHECK, count=2, image=ami)
    for i in ids:
        wait_console(ec2, i, lambda t: "MARKER=baked-into-the-image CONF=config v2 OSREL=1" in t)
    # CopyImage of it boots too; DeregisterImage removes it.
    copy = ec2.copy_image(SourceImageId=ami, SourceRegion="us-east-1", Name=name + "-copy")["ImageId"]
    server.aws("ec2", "wait", "image-available", "--image-ids", copy)
    ec2.deregister_image(ImageId=ami)
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=[ami])
    assert err(e) == "InvalidAMIID.NotFound"
    (c,), _ = run(ec2, launched, CHECK, image=copy)
    wait_console(ec2, c, lambda t: "MARKER=baked-into-the-image" in t)
    ec2.deregister_image(ImageId=copy)


@needs_linux
def test_create_image_no_reboot_and_volumes(ec2, server, launched, volumes):
    (a,), az = run(ec2, launched, MARK)
    wait_console(ec2, a, lambda t: "user data of the image builder done" in t)
    v = ec2.create_volume(AvailabilityZone=az, Size=3)["VolumeId"]
    volumes.append(v)
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
    wait_volume(ec2, v, "in-use", "attached")
    ami = ec2.create_image(InstanceId=a, Name=unique("noreboot"), NoReboot=True)["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[ami],
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    img = ec2.describe_images(ImageIds=[ami])["Images"][0]
    bdm = {b["DeviceName"]: b["Ebs"] for b in img["BlockDeviceMappings"]}
    assert bdm["/dev/sdf"]["VolumeSize"] == 3 and bdm["/dev/sdf"]["SnapshotId"].startswith("snap-")
    assert "boot 2 of" not in console(ec2, a)
    # A snapshot of the running instance's root volume holds its root filesystem changes.
    inst = ec2.describe_instances(InstanceIds=[a])["Reservations"][0]["Instances"][0]
    root = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    rs = ec2.create_snapshot(VolumeId=root)["SnapshotId"]
    assert any(p.endswith("/etc/ami-marker.txt") for p in host_files(server, rs))
    ec2.delete_snapshot(SnapshotId=rs)
    # An instance of it gets a volume from the snapshot at /dev/sdf.
    (b,), _ = run(ec2, launched, CHECK, image=ami)
    inst = ec2.describe_instances(InstanceIds=[b])["Reservations"][0]["Instances"][0]
    devs = {x["DeviceName"]: x["Ebs"]["VolumeId"] for x in inst["BlockDeviceMappings"]}
    assert "/dev/sdf" in devs and devs["/dev/sdf"] != v
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")


def test_register_image_from_registry_location(ec2, launched):
    # The built-in image is in every account's registry view.
    ami = ec2.register_image(Name=unique("from-registry"),
                             ImageLocation="ferrocloud/host-userland:latest")["ImageId"]
    img = ec2.describe_images(ImageIds=[ami])["Images"][0]
    assert img["State"] == "available"
    assert img["ImageLocation"] == "ferrocloud/host-userland:latest"
    (iid,), _ = run(ec2, launched, "#!/bin/sh\necho from-registry-ami $(cat /etc/os-release | head -1)\n",
                    image=ami)
    wait_console(ec2, iid, lambda t: "from-registry-ami PRETTY_NAME" in t)
    ec2.deregister_image(ImageId=ami)


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def userland_layer(marker):
    """A layer like the built-in image's (links into the host's /usr) plus a marker file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ["dev", "etc", "proc", "root", "run", "sys", "tmp", "usr", "var", "var/tmp"]:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for link, target in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                             ("sbin", "usr/sbin")]:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for path, content in [("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                              ("etc/group", b"root:x:0:\n"),
                              ("etc/registry-marker", marker.encode() + b"\n")]:
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buf.getvalue(), mtime=0)


def push_image(server, repo, tag, marker):
    ecr = server.client("ecr")
    ecr.create_repository(repositoryName=repo)
    layer = userland_layer(marker)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"],
                   "Labels": {"dev.ferrocloud.host-binds": "/usr:/usr:ro"}},
        "rootfs": {"type": "layers", "diff_ids": [sha(gzip.decompress(layer))]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(layer), "size": len(layer)}]})
    for b in (layer, config):
        up = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        ecr.upload_layer_part(repositoryName=repo, uploadId=up, partFirstByte=0,
                              partLastByte=len(b) - 1, layerPartBlob=b)
        ecr.complete_layer_upload(repositoryName=repo, uploadId=up, layerDigests=[sha(b)])
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag=tag)


@needs_linux
def test_ami_from_a_pushed_registry_image(ec2, server, launched):
    repo = unique("amis/app")
    marker = unique("registry-marker")
    push_image(server, repo, "v1", marker)
    ami = ec2.register_image(Name=unique("pushed"), ImageLocation=f"{repo}:v1",
                             Architecture="x86_64")["ImageId"]
    # The AMI pinned the image: deleting it from the repository does not break the AMI.
    server.client("ecr").delete_repository(repositoryName=repo, force=True)
    (iid,), _ = run(ec2, launched, "#!/bin/sh\necho \"REG=$(cat /etc/registry-marker)\"\n",
                    image=ami)
    wait_console(ec2, iid, lambda t: f"REG={marker}" in t)
    ec2.deregister_image(ImageId=ami)


# ---- volume sizes (linux driver): a volume is a filesystem of its size ----
#
# These instances run a "probe": for each volume newly mounted under /mnt/ebs it tries to write
# 1.2 GiB, notes whether that failed with No space left on device, deletes it, reads the size
# `df` shows, writes `data.txt` (if given something to write and there is none) and prints
# `PROBE[<mount> enospc=0|1 size=<bytes> data=<data.txt> files=<names> ]`.

PROBE = r"""#!/bin/sh
rm -f /var/lib/cloud/ferrocloud/user-data-done
cat > /root/probe.sh <<'EOF'
root_dev=$(stat -c %d /)
seen=""
while true; do
  now=""
  for d in /mnt/ebs/*; do
    [ -d "$d" ] || continue
    [ "$(stat -c %d "$d")" = "$root_dev" ] && continue
    now="$now $d"
    case " $seen " in *" $d "*) continue;; esac
    out=$(dd if=/dev/zero of="$d/fill" bs=1M count=1229 2>&1)
    case "$out" in *"No space left on device"*) full=1;; *) full=0;; esac
    rm -f "$d/fill"
    size=$(df -B1 --output=size "$d" | tail -1 | tr -d ' ')
    if [ -n "$WRITE" ] && [ ! -e "$d/data.txt" ]; then echo "$WRITE" > "$d/data.txt"; sync; fi
    echo "PROBE[$d enospc=$full size=$size data=$(cat "$d/data.txt" 2>/dev/null) files=$(ls "$d" | tr '\n' ',') ]"
  done
  seen="$now"
  sleep 0.3
done
EOF
mkdir -p /root
WRITE="%WRITE%" /bin/sh /root/probe.sh &
echo "probe started"
"""

GIB = 1 << 30


def prober(write=""):
    return PROBE.replace("%WRITE%", write)


def probe(ec2, iid, mount, after=0, timeout=90):
    """Wait for the probe of `mount` printed after console offset `after`: (enospc, df size,
    data.txt, files, console length)."""
    import re
    pat = re.compile(r"PROBE\[" + re.escape(mount) + r" enospc=(\d) size=(\d+) data=(\S*) "
                     r"files=(\S*) \]")
    text = wait_console(ec2, iid, lambda t: pat.search(t[after:]) is not None, timeout)
    m = pat.search(text[after:])
    return m.group(1) == "1", int(m.group(2)), m.group(3), m.group(4), len(text)


def volume_dir(server, vid):
    for root, dirs, _ in os.walk(server.data_dir):
        if os.path.basename(root) == "volumes" and vid in dirs:
            return os.path.join(root, vid)
    raise AssertionError(f"no data directory for {vid}")


def loops(server):
    """Loop devices backed by files under the server's data directory."""
    import subprocess
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if server.data_dir in l]


def wait_no_loops(server, timeout=30):
    deadline = time.time() + timeout
    while loops(server) and time.time() < deadline:
        time.sleep(0.2)
    assert loops(server) == []


@needs_linux
def test_volume_size_is_enforced_and_data_survives(ec2, server, launched, volumes):
    marker = unique("sized")
    (a,), az = run(ec2, launched, prober(marker))
    (b,), _ = run(ec2, launched, prober(), Placement={"AvailabilityZone": az})
    v = ec2.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
    volumes.append(v)
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
    wait_volume(ec2, v, "in-use", "attached")
    # 1.2 GiB do not fit on 1 GiB; df shows about 1 GiB; the data written after is kept.
    full, size, data, _, _ = probe(ec2, a, "/mnt/ebs/sdf")
    assert full, "writing 1.2 GiB fails with No space left on device"
    assert 0.85 * GIB < size <= GIB, size
    assert data == marker
    # On the host: a sparse image of exactly the size, on one loop device while attached.
    img = os.path.join(volume_dir(server, v), os.listdir(volume_dir(server, v))[0])
    assert os.listdir(volume_dir(server, v)) == [os.path.basename(img)]
    assert os.stat(img).st_size == GIB
    # The probe deleted what it wrote: the image gives the space back (discard).
    deadline = time.time() + 30
    while os.stat(img).st_blocks * 512 > GIB // 4 and time.time() < deadline:
        time.sleep(0.2)
    assert os.stat(img).st_blocks * 512 < GIB // 4, "deleted data takes no space on the host"
    assert len([l for l in loops(server) if v in l]) == 1
    snap = ec2.create_snapshot(VolumeId=v)["SnapshotId"]
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")
    wait_no_loops(server)
    # Re-attached elsewhere: the data is there, the size still holds.
    ec2.attach_volume(VolumeId=v, InstanceId=b, Device="/dev/sdg")
    full, size, data, _, _ = probe(ec2, b, "/mnt/ebs/sdg")
    assert (full, data) == (True, marker) and size <= GIB
    # A 2 GiB volume from the 1 GiB snapshot: the data, and a filesystem of 2 GiB.
    v2 = ec2.create_volume(AvailabilityZone=az, SnapshotId=snap, Size=2)["VolumeId"]
    volumes.append(v2)
    ec2.attach_volume(VolumeId=v2, InstanceId=b, Device="/dev/sdh")
    full, size, data, _, _ = probe(ec2, b, "/mnt/ebs/sdh")
    assert (full, data) == (False, marker), "1.2 GiB fit on 2 GiB"
    assert 1.8 * GIB < size <= 2 * GIB, size
    # Growing a volume grows its filesystem (at the latest when it is next attached).
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")
    ec2.modify_volume(VolumeId=v, Size=2)
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdi")
    full, size, data, _, _ = probe(ec2, a, "/mnt/ebs/sdi")
    assert (full, data) == (False, marker) and 1.8 * GIB < size <= 2 * GIB, size
    for x in (v, v2):
        ec2.detach_volume(VolumeId=x)
    for x in (v, v2):
        wait_volume(ec2, x, "available")
    wait_no_loops(server)
    ec2.delete_snapshot(SnapshotId=snap)


@needs_linux
def test_encrypted_volume_is_sized(ec2, server, launched, volumes):
    marker = unique("sealed")
    (a,), az = run(ec2, launched, prober(marker))
    v = ec2.create_volume(AvailabilityZone=az, Size=1, Encrypted=True)["VolumeId"]
    volumes.append(v)
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
    full, size, data, _, _ = probe(ec2, a, "/mnt/ebs/sdf")
    assert full and 0.85 * GIB < size <= GIB and data == marker, console(ec2, a)[-2000:]
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")
    for path in host_files(server, v):
        with open(path, "rb") as f:
            assert marker.encode() not in f.read(), path
    # Grown while detached: opened at the new size, with its data.
    ec2.modify_volume(VolumeId=v, Size=2)
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdg")
    full, size, data, _, _ = probe(ec2, a, "/mnt/ebs/sdg")
    assert (full, data) == (False, marker) and 1.8 * GIB < size <= 2 * GIB, size
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")


@needs_linux
def test_volume_of_an_earlier_version_becomes_sized(ec2, server, launched, volumes):
    """Volumes stored as plain directories (earlier versions) keep their files and get their
    size on first attach; their directory snapshots still make volumes."""
    (a,), az = run(ec2, launched, prober())
    v = ec2.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
    volumes.append(v)
    d = volume_dir(server, v)
    os.makedirs(os.path.join(d, "sub"))
    with open(os.path.join(d, "data.txt"), "w") as f:
        f.write("old-format\n")
    with open(os.path.join(d, "sub", "x"), "w") as f:
        f.write("x")
    snap = ec2.create_snapshot(VolumeId=v)["SnapshotId"]
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
    full, size, data, files, _ = probe(ec2, a, "/mnt/ebs/sdf")
    assert full and size <= GIB and data == "old-format" and "sub" in files.split(","), files
    assert len(os.listdir(d)) == 1, "only the image is left"
    ec2.detach_volume(VolumeId=v)
    wait_volume(ec2, v, "available")
    v2 = ec2.create_volume(AvailabilityZone=az, SnapshotId=snap)["VolumeId"]
    volumes.append(v2)
    ec2.attach_volume(VolumeId=v2, InstanceId=a, Device="/dev/sdg")
    full, size, data, _, _ = probe(ec2, a, "/mnt/ebs/sdg")
    assert full and data == "old-format"
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdh")
    full, _, data, _, _ = probe(ec2, a, "/mnt/ebs/sdh")
    assert full and data == "old-format"
    for x in (v, v2):
        ec2.detach_volume(VolumeId=x)
    for x in (v, v2):
        wait_volume(ec2, x, "available")
    wait_no_loops(server)
    ec2.delete_snapshot(SnapshotId=snap)


@needs_linux
def test_launch_volume_sized_and_released_at_termination(ec2, server, launched):
    ids, _ = run(ec2, launched, prober("at-launch"), BlockDeviceMappings=[
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}])
    full, size, data, _, _ = probe(ec2, ids[0], "/mnt/ebs/sdf")
    assert full and size <= GIB and data == "at-launch"
    inst = ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"][0]
    vid = [b["Ebs"]["VolumeId"] for b in inst["BlockDeviceMappings"]
           if b["DeviceName"] == "/dev/sdf"][0]
    # Stop/start: mounted again at boot, data kept.
    ec2.stop_instances(InstanceIds=ids)
    wait_state(ec2, ids, "stopped")
    wait_no_loops(server)
    after = len(console(ec2, ids[0]))
    ec2.start_instances(InstanceIds=ids)
    wait_state(ec2, ids, "running")
    full, _, data, _, _ = probe(ec2, ids[0], "/mnt/ebs/sdf", after=after)
    assert full and data == "at-launch"
    ec2.terminate_instances(InstanceIds=ids)
    wait_state(ec2, ids, "terminated")
    launched.remove(ids[0])
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[vid])
    assert err(e) == "InvalidVolume.NotFound"
    wait_no_loops(server)
    assert not host_files(server, vid)


@needs_linux
def test_attached_volume_survives_a_server_restart(fresh_server):
    s = fresh_server()
    ec2 = s.client("ec2")
    launched = []
    try:
        (a,), az = run(ec2, launched, prober("before-restart"))
        v = ec2.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
        ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
        full, _, data, _, _ = probe(ec2, a, "/mnt/ebs/sdf")
        assert full and data == "before-restart"
        data_dir = s.data_dir
        assert s.stop() == 0
        s = fresh_server(data_dir=data_dir)
        ec2 = s.client("ec2")
        assert len([l for l in loops(s) if v in l]) == 1, "still mounted"
        # A second attachment point of the running instance, and the first one detached.
        v2 = ec2.create_volume(AvailabilityZone=az, Size=1)["VolumeId"]
        ec2.attach_volume(VolumeId=v2, InstanceId=a, Device="/dev/sdg")
        full, _, data, _, _ = probe(ec2, a, "/mnt/ebs/sdg")
        assert full and data == "before-restart"
        ec2.detach_volume(VolumeId=v)
        wait_volume(ec2, v, "available")
        assert [l for l in loops(s) if v in l] == []
        ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdh")
        full, _, data, _, _ = probe(ec2, a, "/mnt/ebs/sdh")
        assert full and data == "before-restart"
    finally:
        if launched:
            ec2.terminate_instances(InstanceIds=launched)
            wait_state(ec2, launched, "terminated")
    for x in (v, v2):
        wait_volume(ec2, x, "available")
        ec2.delete_volume(VolumeId=x)
    wait_no_loops(s)


@needs_linux
def test_multi_attach_volume_is_one_filesystem(ec2, server, launched, volumes):
    (a,), az = run(ec2, launched, prober("shared"))
    (b,), _ = run(ec2, launched, prober(), Placement={"AvailabilityZone": az})
    v = ec2.create_volume(AvailabilityZone=az, Size=4, VolumeType="io1", Iops=100,
                          MultiAttachEnabled=True)["VolumeId"]
    volumes.append(v)
    ec2.attach_volume(VolumeId=v, InstanceId=a, Device="/dev/sdf")
    full, size, data, _, _ = probe(ec2, a, "/mnt/ebs/sdf")
    assert (full, data) == (False, "shared") and 3.6 * GIB < size <= 4 * GIB, size
    ec2.attach_volume(VolumeId=v, InstanceId=b, Device="/dev/sdf")
    full, size, data, _, _ = probe(ec2, b, "/mnt/ebs/sdf")
    assert data == "shared" and size <= 4 * GIB
    assert len([l for l in loops(server) if v in l]) == 1, "one filesystem, one loop device"
    ec2.detach_volume(VolumeId=v, InstanceId=a)
    wait_volume(ec2, v, "in-use", "attached")
    ec2.detach_volume(VolumeId=v, InstanceId=b)
    wait_volume(ec2, v, "available")
    wait_no_loops(server)
