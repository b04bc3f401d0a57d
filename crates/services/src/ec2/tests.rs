//! Unit tests of the EC2 service through its `Service` interface, over an in-memory store.

use super::*;
use base64::Engine as _;
use fc_store::SqliteStore;
use serde_json::json;

struct Env {
    ec2: Ec2,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env() -> Env {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
    let dir = std::env::temp_dir().join(format!("fc-ec2-test-{}", uuid::Uuid::new_v4()));
    Env {
        ec2: Ec2::new(store, dir.clone()),
        dir,
    }
}

impl Env {
    async fn call_as(
        &self,
        account: &str,
        region: &str,
        op: &str,
        input: Value,
    ) -> Result<Value, ApiError> {
        let ctx = RequestContext::for_account(account, region, "ec2", op);
        self.ec2.call(&ctx, input).await
    }

    async fn ok(&self, op: &str, input: Value) -> Value {
        self.call_as("000000000000", "us-east-1", op, input)
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    async fn err(&self, op: &str, input: Value) -> ApiError {
        self.call_as("000000000000", "us-east-1", op, input)
            .await
            .expect_err(op)
    }
}

#[tokio::test]
async fn default_vpc_is_lazy_and_complete() {
    let e = env();
    let vpcs = e.ok("DescribeVpcs", json!({})).await;
    let vpc = &vpcs["Vpcs"][0];
    assert_eq!(vpc["CidrBlock"], "172.31.0.0/16");
    assert_eq!(vpc["IsDefault"], true);
    let subnets = e.ok("DescribeSubnets", json!({})).await;
    let mut cidrs: Vec<String> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["CidrBlock"].as_str().unwrap().to_string())
        .collect();
    cidrs.sort();
    assert_eq!(cidrs.len(), 6);
    assert_eq!(cidrs[0], "172.31.0.0/20");
    assert!(cidrs.contains(&"172.31.80.0/20".to_string()));
    let attrs = e
        .ok(
            "DescribeAccountAttributes",
            json!({"AttributeNames": ["default-vpc"]}),
        )
        .await;
    assert_eq!(
        attrs["AccountAttributes"][0]["AttributeValues"][0]["AttributeValue"],
        vpc["VpcId"]
    );
    // Another region has its own default VPC with three zones.
    let other = e
        .call_as("000000000000", "eu-west-1", "DescribeSubnets", json!({}))
        .await
        .unwrap();
    assert_eq!(other["Subnets"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn vpcs_and_subnets() {
    let e = env();
    let vpc = e.ok("CreateVpc", json!({"CidrBlock": "10.0.0.0/16"})).await;
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap().to_string();
    let s = e
        .ok(
            "CreateSubnet",
            json!({"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24", "AvailabilityZone": "us-east-1b"}),
        )
        .await;
    assert_eq!(s["Subnet"]["AvailableIpAddressCount"], 251);
    let subnet_id = s["Subnet"]["SubnetId"].as_str().unwrap().to_string();
    let conflict = e
        .err(
            "CreateSubnet",
            json!({"VpcId": vpc_id, "CidrBlock": "10.0.1.128/25"}),
        )
        .await;
    assert_eq!(conflict.code, "InvalidSubnet.Conflict");
    let range = e
        .err(
            "CreateSubnet",
            json!({"VpcId": vpc_id, "CidrBlock": "10.1.0.0/24"}),
        )
        .await;
    assert_eq!(range.code, "InvalidSubnet.Range");
    let bad = e
        .err(
            "CreateSubnet",
            json!({"VpcId": vpc_id, "CidrBlock": "10.0.0.1/24"}),
        )
        .await;
    assert_eq!(bad.code, "InvalidParameterValue");
    let dep = e.err("DeleteVpc", json!({"VpcId": vpc_id})).await;
    assert_eq!(dep.code, "DependencyViolation");
    e.ok("DeleteSubnet", json!({"SubnetId": subnet_id})).await;
    e.ok("DeleteVpc", json!({"VpcId": vpc_id})).await;
    let gone = e.err("DescribeVpcs", json!({"VpcIds": [vpc_id]})).await;
    assert_eq!(gone.code, "InvalidVpcID.NotFound");
}

#[tokio::test]
async fn security_group_rules() {
    let e = env();
    let g = e
        .ok(
            "CreateSecurityGroup",
            json!({"GroupName": "web", "Description": "web"}),
        )
        .await;
    let gid = g["GroupId"].as_str().unwrap().to_string();
    let perm = json!([{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh"}],
        "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]);
    let auth = e
        .ok(
            "AuthorizeSecurityGroupIngress",
            json!({"GroupId": gid, "IpPermissions": perm}),
        )
        .await;
    assert_eq!(auth["SecurityGroupRules"].as_array().unwrap().len(), 2);
    let dup = e
        .err(
            "AuthorizeSecurityGroupIngress",
            json!({"GroupId": gid, "IpPermissions": perm}),
        )
        .await;
    assert_eq!(dup.code, "InvalidPermission.Duplicate");
    let d = e
        .ok("DescribeSecurityGroups", json!({"GroupIds": [gid]}))
        .await;
    let ip = &d["SecurityGroups"][0]["IpPermissions"][0];
    assert_eq!(ip["FromPort"], 22);
    assert_eq!(ip["IpRanges"][0]["Description"], "ssh");
    assert_eq!(ip["Ipv6Ranges"][0]["CidrIpv6"], "::/0");
    let filtered = e
        .ok(
            "DescribeSecurityGroups",
            json!({"Filters": [{"Name": "ip-permission.from-port", "Values": ["22"]}]}),
        )
        .await;
    assert_eq!(filtered["SecurityGroups"].as_array().unwrap().len(), 1);
    e.ok(
        "RevokeSecurityGroupIngress",
        json!({"GroupId": gid, "IpPermissions": perm}),
    )
    .await;
    let missing = e
        .err(
            "RevokeSecurityGroupIngress",
            json!({"GroupId": gid, "IpPermissions": perm}),
        )
        .await;
    assert_eq!(missing.code, "InvalidPermission.NotFound");
    let dry = e
        .err(
            "DeleteSecurityGroup",
            json!({"GroupId": gid, "DryRun": true}),
        )
        .await;
    assert_eq!(dry.code, "DryRunOperation");
    e.ok("DeleteSecurityGroup", json!({"GroupId": gid})).await;
    let nf = e
        .err("DescribeSecurityGroups", json!({"GroupIds": [gid]}))
        .await;
    assert_eq!(nf.code, "InvalidGroup.NotFound");
}

#[tokio::test]
async fn key_pairs_round_trip() {
    let e = env();
    let k = e
        .ok(
            "CreateKeyPair",
            json!({"KeyName": "a", "KeyType": "ed25519"}),
        )
        .await;
    assert!(k["KeyMaterial"]
        .as_str()
        .unwrap()
        .contains("OPENSSH PRIVATE KEY"));
    let store = e.ec2.inner.store.clone();
    let pk = public_key(store.as_ref(), "000000000000", "us-east-1", "a").unwrap();
    assert!(pk.starts_with("ssh-ed25519 "));
    let imported = e
        .ok(
            "ImportKeyPair",
            json!({"KeyName": "b", "PublicKeyMaterial":
            base64::engine::general_purpose::STANDARD.encode(pk.as_bytes())}),
        )
        .await;
    assert_eq!(imported["KeyFingerprint"], k["KeyFingerprint"]);
    let d = e
        .ok(
            "DescribeKeyPairs",
            json!({"Filters": [{"Name": "key-name", "Values": ["?"]}]}),
        )
        .await;
    assert_eq!(d["KeyPairs"].as_array().unwrap().len(), 2);
    e.ok("DeleteKeyPair", json!({"KeyName": "a"})).await;
    e.ok("DeleteKeyPair", json!({"KeyName": "a"})).await;
    let bad = e
        .err(
            "ImportKeyPair",
            json!({"KeyName": "c", "PublicKeyMaterial": "bm90IGEga2V5"}),
        )
        .await;
    assert_eq!(bad.code, "InvalidKey.Format");
}

#[tokio::test]
async fn images_share_across_accounts() {
    let e = env();
    let vol = e
        .ok(
            "CreateVolume",
            json!({"AvailabilityZone": "us-east-1a", "Size": 8}),
        )
        .await;
    let vid = vol["VolumeId"].as_str().unwrap().to_string();
    std::fs::write(volume_path(&e.dir, &vid).join("hello.txt"), b"hi").unwrap();
    let snap = e.ok("CreateSnapshot", json!({"VolumeId": vid})).await;
    let sid = snap["SnapshotId"].as_str().unwrap().to_string();
    let img = e
        .ok(
            "RegisterImage",
            json!({"Name": "mine", "RootDeviceName": "/dev/xvda",
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}]}),
        )
        .await;
    let ami = img["ImageId"].as_str().unwrap().to_string();
    let in_use = e.err("DeleteSnapshot", json!({"SnapshotId": sid})).await;
    assert_eq!(in_use.code, "InvalidSnapshot.InUse");
    let other = "111122223333";
    let hidden = e
        .call_as(
            other,
            "us-east-1",
            "DescribeImages",
            json!({"ImageIds": [ami]}),
        )
        .await
        .expect_err("not shared yet");
    assert_eq!(hidden.code, "InvalidAMIID.NotFound");
    e.ok(
        "ModifyImageAttribute",
        json!({"ImageId": ami,
        "LaunchPermission": {"Add": [{"UserId": other}]}}),
    )
    .await;
    let seen = e
        .call_as(
            other,
            "us-east-1",
            "DescribeImages",
            json!({"ExecutableUsers": ["self"]}),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = seen["Images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ImageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ami.as_str()]);
    // The other account copies it to another region: new id, same data.
    let copy = e
        .call_as(
            other,
            "us-west-2",
            "CopyImage",
            json!({"SourceImageId": ami, "SourceRegion": "us-east-1", "Name": "copied"}),
        )
        .await
        .unwrap();
    let copy_id = copy["ImageId"].as_str().unwrap();
    let described = e
        .call_as(
            other,
            "us-west-2",
            "DescribeImages",
            json!({"ImageIds": [copy_id]}),
        )
        .await
        .unwrap();
    let snap2 = described["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap();
    assert_ne!(snap2, sid);
    assert_eq!(
        std::fs::read(snapshot_path(&e.dir, snap2).join("hello.txt")).unwrap(),
        b"hi"
    );
    e.ok(
        "ResetImageAttribute",
        json!({"ImageId": ami, "Attribute": "launchPermission"}),
    )
    .await;
    let perms = e
        .ok(
            "DescribeImageAttribute",
            json!({"ImageId": ami, "Attribute": "launchPermission"}),
        )
        .await;
    assert_eq!(perms["LaunchPermissions"], json!([]));
    e.ok("DeregisterImage", json!({"ImageId": ami})).await;
    e.ok("DeleteSnapshot", json!({"SnapshotId": sid})).await;
}

#[tokio::test]
async fn volumes_hold_data() {
    let e = env();
    let vol = e
        .ok(
            "CreateVolume",
            json!({"AvailabilityZone": "us-east-1a", "Size": 10, "VolumeType": "io1", "Iops": 500}),
        )
        .await;
    let vid = vol["VolumeId"].as_str().unwrap().to_string();
    std::fs::write(volume_path(&e.dir, &vid).join("data"), b"payload").unwrap();
    let snap = e.ok("CreateSnapshot", json!({"VolumeId": vid})).await;
    let sid = snap["SnapshotId"].as_str().unwrap().to_string();
    let v2 = e
        .ok(
            "CreateVolume",
            json!({"AvailabilityZone": "us-east-1b", "SnapshotId": sid}),
        )
        .await;
    assert_eq!(v2["Size"], 10);
    let v2id = v2["VolumeId"].as_str().unwrap();
    assert_eq!(
        std::fs::read(volume_path(&e.dir, v2id).join("data")).unwrap(),
        b"payload"
    );
    let m = e
        .ok(
            "ModifyVolume",
            json!({"VolumeId": vid, "Size": 20, "VolumeType": "gp3"}),
        )
        .await;
    assert_eq!(m["VolumeModification"]["TargetSize"], 20);
    let shrink = e
        .err("ModifyVolume", json!({"VolumeId": vid, "Size": 5}))
        .await;
    assert_eq!(shrink.code, "InvalidParameterValue");
    let d = e.ok("DescribeVolumes", json!({"VolumeIds": [vid]})).await;
    assert_eq!(d["Volumes"][0]["Size"], 20);
    assert_eq!(d["Volumes"][0]["Iops"], 3000);
    e.ok("DeleteVolume", json!({"VolumeId": vid})).await;
    assert!(!volume_path(&e.dir, &vid).exists());
    let nf = e.err("DeleteVolume", json!({"VolumeId": vid})).await;
    assert_eq!(nf.code, "InvalidVolume.NotFound");
}

#[tokio::test]
async fn tags_everywhere_and_pagination() {
    let e = env();
    let mut ids = Vec::new();
    for i in 0..7 {
        let v = e
            .ok("CreateVolume", json!({"AvailabilityZone": "us-east-1a", "Size": 1,
                "TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "n", "Value": format!("v{i}")}]}]}))
            .await;
        ids.push(v["VolumeId"].as_str().unwrap().to_string());
    }
    let vpcs = e.ok("DescribeVpcs", json!({})).await;
    let vpc = vpcs["Vpcs"][0]["VpcId"].as_str().unwrap().to_string();
    e.ok(
        "CreateTags",
        json!({"Resources": [vpc], "Tags": [{"Key": "env", "Value": "dev"}]}),
    )
    .await;
    let bad = e
        .err(
            "CreateTags",
            json!({"Resources": ["vol-0123456789abcdef0"], "Tags": [{"Key": "a", "Value": "b"}]}),
        )
        .await;
    assert_eq!(bad.code, "InvalidVolume.NotFound");
    let t = e
        .ok(
            "DescribeTags",
            json!({"Filters": [{"Name": "resource-type", "Values": ["volume"]}], "MaxResults": 5}),
        )
        .await;
    assert_eq!(t["Tags"].as_array().unwrap().len(), 5);
    let next = t["NextToken"].as_str().unwrap();
    let t2 = e
        .ok("DescribeTags", json!({"Filters": [{"Name": "resource-type", "Values": ["volume"]}], "MaxResults": 5, "NextToken": next}))
        .await;
    assert_eq!(t2["Tags"].as_array().unwrap().len(), 2);
    assert!(t2.get("NextToken").is_none());
    e.ok(
        "DeleteTags",
        json!({"Resources": [ids[0]], "Tags": [{"Key": "n", "Value": "other"}]}),
    )
    .await;
    let f = e
        .ok(
            "DescribeVolumes",
            json!({"Filters": [{"Name": "tag:n", "Values": ["v0", "v1"]}]}),
        )
        .await;
    assert_eq!(f["Volumes"].as_array().unwrap().len(), 2);
    e.ok("DeleteTags", json!({"Resources": [ids[0]]})).await;
    let f = e
        .ok(
            "DescribeVolumes",
            json!({"Filters": [{"Name": "tag-key", "Values": ["n"]}]}),
        )
        .await;
    assert_eq!(f["Volumes"].as_array().unwrap().len(), 6);
    let bad_filter = e
        .err(
            "DescribeVolumes",
            json!({"Filters": [{"Name": "bogus", "Values": ["x"]}]}),
        )
        .await;
    assert_eq!(bad_filter.code, "InvalidParameterValue");
}

#[tokio::test]
async fn instance_types_and_not_implemented() {
    let e = env();
    let t = e
        .ok(
            "DescribeInstanceTypes",
            json!({"Filters": [
            {"Name": "instance-type", "Values": ["c7g.*"]},
            {"Name": "processor-info.supported-architecture", "Values": ["arm64"]}]}),
        )
        .await;
    assert_eq!(t["InstanceTypes"].as_array().unwrap().len(), 4);
    let o = e
        .ok(
            "DescribeInstanceTypeOfferings",
            json!({"LocationType": "availability-zone",
            "Filters": [{"Name": "instance-type", "Values": ["p4d.24xlarge"]}]}),
        )
        .await;
    assert_eq!(o["InstanceTypeOfferings"].as_array().unwrap().len(), 2);
    let bad = e
        .err(
            "DescribeInstanceTypes",
            json!({"InstanceTypes": ["t9.huge"]}),
        )
        .await;
    assert_eq!(bad.code, "InvalidInstanceType");
    let ni = e.err("AssociateAddress", json!({})).await;
    assert_eq!(ni.status, 501);
}

// ---- instances (no driver attached: states change on paper) ----

fn debian_ami() -> String {
    images::catalog("us-east-1")
        .into_iter()
        .find(|i| i.name.starts_with("debian-12-amd64"))
        .expect("debian in the catalog")
        .image_id
}

#[tokio::test]
async fn instances_lifecycle_without_driver() {
    let e = env();
    let ami = debian_ami();
    let ud = base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho hi\n");
    let r = e
        .ok(
            "RunInstances",
            json!({"ImageId": ami, "MinCount": 2, "MaxCount": 2, "InstanceType": "t3.micro",
                   "UserData": ud,
                   "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}]}),
        )
        .await;
    let ids: Vec<String> = r["Instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["InstanceId"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(r["ReservationId"].as_str().expect("r").starts_with("r-"));
    let ips: Vec<&str> = r["Instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["PrivateIpAddress"].as_str().expect("ip"))
        .collect();
    assert_ne!(ips[0], ips[1]);
    assert!(ips[0].starts_with("172.31."));
    let d = e
        .ok(
            "DescribeInstances",
            json!({"Filters": [{"Name": "tag:k", "Values": ["v"]},
                               {"Name": "instance-state-name", "Values": ["running"]}]}),
        )
        .await;
    assert_eq!(
        d["Reservations"][0]["Instances"]
            .as_array()
            .expect("i")
            .len(),
        2
    );
    let s = e
        .ok("StopInstances", json!({"InstanceIds": [ids[0]]}))
        .await;
    assert_eq!(
        s["StoppingInstances"][0]["PreviousState"]["Name"],
        "running"
    );
    let bad = e
        .err(
            "ModifyInstanceAttribute",
            json!({"InstanceId": ids[1], "InstanceType": {"Value": "t3.small"}}),
        )
        .await;
    assert_eq!(bad.code, "IncorrectInstanceState");
    e.ok(
        "ModifyInstanceAttribute",
        json!({"InstanceId": ids[0], "InstanceType": {"Value": "t3.small"}}),
    )
    .await;
    e.ok(
        "ModifyInstanceAttribute",
        json!({"InstanceId": ids[1], "DisableApiTermination": {"Value": true}}),
    )
    .await;
    let denied = e
        .err("TerminateInstances", json!({"InstanceIds": [ids[1]]}))
        .await;
    assert_eq!(denied.code, "OperationNotPermitted");
    let t = e
        .ok("TerminateInstances", json!({"InstanceIds": [ids[0]]}))
        .await;
    assert_eq!(
        t["TerminatingInstances"][0]["CurrentState"]["Name"],
        "terminated"
    );
    let again = e
        .err("StartInstances", json!({"InstanceIds": [ids[0]]}))
        .await;
    assert_eq!(again.code, "IncorrectInstanceState");
    let attr = e
        .ok(
            "DescribeInstanceAttribute",
            json!({"InstanceId": ids[1], "Attribute": "userData"}),
        )
        .await;
    assert_eq!(attr["UserData"]["Value"], ud);
    let missing = e
        .err(
            "DescribeInstances",
            json!({"InstanceIds": ["i-0123456789abcdef0"]}),
        )
        .await;
    assert_eq!(missing.code, "InvalidInstanceID.NotFound");
    let bad_ud = e
        .err(
            "RunInstances",
            json!({"ImageId": ami, "MinCount": 1, "MaxCount": 1, "UserData": "%%%"}),
        )
        .await;
    assert_eq!(bad_ud.code, "InvalidParameterValue");
    let tagged = e
        .ok(
            "CreateTags",
            json!({"Resources": [ids[1]], "Tags": [{"Key": "a", "Value": "b"}]}),
        )
        .await;
    assert_eq!(tagged, json!({}));
}

#[test]
fn user_data_scripts_from_mime() {
    let mime = "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n--XX\nContent-Type: text/cloud-config\n\n#cloud-config\n\n--XX\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho one\n--XX\nContent-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\nIyEvYmluL3NoCmVjaG8gdHdvCg==\n--XX--\n";
    let parts = instances::user_data_scripts(mime.as_bytes());
    assert_eq!(parts.len(), 2);
    assert!(String::from_utf8_lossy(&parts[0]).contains("echo one"));
    assert_eq!(parts[1], b"#!/bin/sh\necho two\n");
    assert_eq!(instances::user_data_scripts(b"#!/bin/bash\ntrue").len(), 1);
    assert!(instances::user_data_scripts(b"#cloud-config\n").is_empty());
}

#[test]
fn imds_request_head_parses() {
    let r = imds::parse_head(
        "PUT /latest/api/token?x=1 HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600",
    )
    .expect("parses");
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/latest/api/token");
    assert!(r
        .headers
        .iter()
        .any(|(n, v)| n == "x-aws-ec2-metadata-token-ttl-seconds" && v == "21600"));
}

// ---- the instance index: addresses, vCPU buckets, restarts ----

fn shared_env() -> (Arc<dyn Store>, PathBuf) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
    let dir = std::env::temp_dir().join(format!("fc-ec2-test-{}", uuid::Uuid::new_v4()));
    (store, dir)
}

fn ids_of(out: &Value) -> Vec<String> {
    out["Instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["InstanceId"].as_str().expect("id").to_string())
        .collect()
}

fn ips_of(out: &Value) -> Vec<String> {
    out["Instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["PrivateIpAddress"].as_str().expect("ip").to_string())
        .collect()
}

#[tokio::test]
async fn addresses_are_reused_lowest_first_and_survive_a_restart() {
    let (store, dir) = shared_env();
    let e = Env {
        ec2: Ec2::new(store.clone(), dir.clone()),
        dir,
    };
    let ami = debian_ami();
    let subnets = e.ok("DescribeSubnets", json!({})).await;
    let subnet = subnets["Subnets"][0]["SubnetId"]
        .as_str()
        .expect("subnet")
        .to_string();
    // A /20 starting at x.y.z.0: the first addresses share its first three octets.
    let cidr = subnets["Subnets"][0]["CidrBlock"].as_str().expect("cidr");
    let net = cidr.rsplit_once('.').expect("dotted").0.to_string();
    let at = |n: u32| format!("{net}.{n}");
    let run = |n: i64| json!({"ImageId": ami, "MinCount": n, "MaxCount": n, "SubnetId": subnet});
    let first = e.ok("RunInstances", run(3)).await;
    let ips = ips_of(&first);
    assert_eq!(ips, [at(4), at(5), at(6)]);
    let ids = ids_of(&first);
    e.ok("TerminateInstances", json!({"InstanceIds": [ids[1]]}))
        .await;
    // The terminated record lingers but holds no address.
    let again = e.ok("RunInstances", run(2)).await;
    assert_eq!(ips_of(&again), [at(5), at(7)]);
    let taken = e
        .err(
            "RunInstances",
            json!({"ImageId": ami, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet,
                   "PrivateIpAddress": at(6)}),
        )
        .await;
    assert_eq!(taken.code, "InvalidIPAddress.InUse");
    let outside = e
        .err(
            "RunInstances",
            json!({"ImageId": ami, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet,
                   "PrivateIpAddress": "10.9.9.9"}),
        )
        .await;
    assert_eq!(outside.code, "InvalidParameterValue");
    let chosen = e
        .ok(
            "RunInstances",
            json!({"ImageId": ami, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet,
                   "PrivateIpAddress": at(20)}),
        )
        .await;
    assert_eq!(ips_of(&chosen), [at(20)]);
    // A restarted server (a new service over the same store) rebuilds the index.
    let e2 = Ec2::new(store.clone(), e.dir.clone());
    let ctx = RequestContext::for_account("000000000000", "us-east-1", "ec2", "RunInstances");
    let out = e2.call(&ctx, run(14)).await.expect("run after restart");
    let after = ips_of(&out);
    // .8 .. .19, then past the requested .20.
    assert_eq!(after.first(), Some(&at(8)));
    assert_eq!(after.last(), Some(&at(22)));
    assert!(!after.contains(&at(20)));
    let mut all: Vec<String> = Vec::new();
    let ctx = RequestContext::for_account("000000000000", "us-east-1", "ec2", "DescribeInstances");
    let d = e2.call(&ctx, json!({})).await.expect("describe");
    for r in d["Reservations"].as_array().expect("reservations") {
        for i in r["Instances"].as_array().expect("instances") {
            if i["State"]["Name"] != "terminated" {
                all.push(i["PrivateIpAddress"].as_str().expect("ip").to_string());
            }
        }
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no address is handed out twice");
}

#[tokio::test]
async fn client_tokens_find_their_reservation() {
    let e = env();
    let ami = debian_ami();
    let input = json!({"ImageId": ami, "MinCount": 2, "MaxCount": 2, "ClientToken": "tok-1"});
    let a = e.ok("RunInstances", input.clone()).await;
    let b = e.ok("RunInstances", input).await;
    assert_eq!(ids_of(&a), ids_of(&b));
    assert_eq!(a["ReservationId"], b["ReservationId"]);
}

#[test]
fn vcpu_buckets_follow_aws_families() {
    use super::purchasing::vcpu_bucket;
    for t in [
        "t3.nano",
        "m5.large",
        "c7g.xlarge",
        "r6i.large",
        "i4i.large",
        "d3.xlarge",
        "z1d.large",
        "a1.large",
        "h1.2xlarge",
        "im4gn.large",
    ] {
        assert_eq!(vcpu_bucket(t), "Standard", "{t}");
    }
    assert_eq!(vcpu_bucket("f1.2xlarge"), "F");
    assert_eq!(vcpu_bucket("g4dn.xlarge"), "G and VT");
    assert_eq!(vcpu_bucket("g5.xlarge"), "G and VT");
    assert_eq!(vcpu_bucket("vt1.3xlarge"), "G and VT");
    assert_eq!(vcpu_bucket("p3.2xlarge"), "P");
    assert_eq!(vcpu_bucket("x1e.xlarge"), "X");
    assert_eq!(vcpu_bucket("x2idn.16xlarge"), "X");
    assert_eq!(vcpu_bucket("inf2.xlarge"), "Inf");
    assert_eq!(vcpu_bucket("dl1.24xlarge"), "DL");
    assert_eq!(vcpu_bucket("trn1.2xlarge"), "Trn");
    assert_eq!(vcpu_bucket("u-6tb1.metal"), "High Memory");
}

#[tokio::test]
async fn vcpu_limit_counts_per_bucket_and_market() {
    let (store, dir) = shared_env();
    let e = Env {
        ec2: Ec2::new(store.clone(), dir.clone()),
        dir,
    };
    e.ec2.set_vcpu_limit(8);
    let ami = debian_ami();
    let run =
        |t: &str, n: i64| json!({"ImageId": ami, "MinCount": n, "MaxCount": n, "InstanceType": t});
    let spot = |t: &str, n: i64| {
        let mut v = run(t, n);
        v["InstanceMarketOptions"] = json!({"MarketType": "spot"});
        v
    };
    let std2 = ids_of(&e.ok("RunInstances", run("t3.xlarge", 2)).await);
    let full = e.err("RunInstances", run("t3.nano", 1)).await;
    assert_eq!(full.code, "VcpuLimitExceeded");
    assert_eq!(
        full.message,
        "You have requested more vCPU capacity than your current vCPU limit of 8 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
    );
    // Other buckets are separate.
    e.ok("RunInstances", run("g4dn.2xlarge", 1)).await;
    e.ok("RunInstances", run("p3.2xlarge", 1)).await;
    e.ok("RunInstances", run("x1e.xlarge", 2)).await;
    assert_eq!(
        e.err("RunInstances", run("x1e.xlarge", 1)).await.code,
        "VcpuLimitExceeded"
    );
    // So is Spot.
    e.ok("RunInstances", spot("t3.xlarge", 2)).await;
    let spot_full = e.err("RunInstances", spot("t3.nano", 1)).await;
    assert_eq!(spot_full.code, "MaxSpotInstanceCountExceeded");
    // A stopped instance frees its vCPUs; starting it again needs them back.
    e.ok("StopInstances", json!({"InstanceIds": [std2[0]]}))
        .await;
    let small = ids_of(&e.ok("RunInstances", run("t3.nano", 1)).await);
    assert_eq!(
        e.err("StartInstances", json!({"InstanceIds": [std2[0]]}))
            .await
            .code,
        "VcpuLimitExceeded"
    );
    e.ok("TerminateInstances", json!({"InstanceIds": small}))
        .await;
    // After a restart the counts hold: 4 of 8 Standard vCPUs are in use.
    let e2 = Ec2::new(store.clone(), e.dir.clone());
    e2.set_vcpu_limit(8);
    let ctx = RequestContext::for_account("000000000000", "us-east-1", "ec2", "RunInstances");
    assert_eq!(
        e2.call(&ctx, run("t3.2xlarge", 1))
            .await
            .expect_err("over the limit")
            .code,
        "VcpuLimitExceeded"
    );
    e2.call(&ctx, run("t3.xlarge", 1)).await.expect("fits");
    assert_eq!(
        e2.call(&ctx, spot("t3.nano", 1))
            .await
            .expect_err("spot full")
            .code,
        "MaxSpotInstanceCountExceeded"
    );
}
