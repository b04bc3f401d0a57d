//! AMIs: a catalog of public images that work offline (`amis.json`: Amazon Linux, Ubuntu,
//! Debian and a few AWS Marketplace images, every one backed by ferrocloud's built-in
//! `ferrocloud/host-userland:latest` image; ids are stable per region), and the images
//! accounts register, copy and share.
//!
//! `RegisterImage` takes either block device mappings whose root device names a snapshot (the
//! snapshot's data is the root filesystem), or `ImageLocation` = `<repo>:<tag>` (or
//! `<repo>@sha256:<digest>`) of ferrocloud's registry, whose image becomes the root filesystem.
//! Sharing (`launchPermission`) makes an image visible to the named accounts, or to everyone
//! as a community AMI (`Group=all`). `CreateImage` lives in `ami`, which also pins the image store images behind AMIs.

use super::{
    check_dry_run_v, check_id, default_kms_key, filters, invalid_value, matches, now, one,
    opt_bool, opt_str, page_output, paginate, req_str, scan_all, spec_tags, stable_id, str_list,
    tags, volumes, with_tags, Ctx, IMAGES,
};
use crate::common::{idempotent_record, idempotent_replay};
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The built-in image every catalog AMI boots.
pub const HOST_USERLAND: &str = "ferrocloud/host-userland:latest";

/// One block device mapping of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    pub device_name: String,
    #[serde(default)]
    pub snapshot_id: Option<String>,
    #[serde(default)]
    pub volume_size: Option<i64>,
    #[serde(default)]
    pub volume_type: Option<String>,
    #[serde(default)]
    pub delete_on_termination: bool,
    #[serde(default)]
    pub encrypted: Option<bool>,
    #[serde(default)]
    pub iops: Option<i64>,
    #[serde(default)]
    pub throughput: Option<i64>,
    /// `ephemeral0`... for instance-store mappings.
    #[serde(default)]
    pub virtual_name: Option<String>,
    /// A mapping that suppresses one of the image's devices.
    #[serde(default)]
    pub no_device: bool,
}

/// An AMI as stored (`ec2_images`, key: image id, in the owner's account and region).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub image_id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub owner_id: String,
    #[serde(default)]
    pub owner_alias: Option<String>,
    pub architecture: String,
    pub root_device_name: String,
    pub block_devices: Vec<BlockDevice>,
    /// ISO 8601 with milliseconds, as the API returns it.
    pub creation_date: String,
    pub public: bool,
    /// Accounts the image is shared with.
    #[serde(default)]
    pub launch_users: Vec<String>,
    #[serde(default)]
    pub product_codes: Vec<String>,
    #[serde(default)]
    pub boot_mode: Option<String>,
    #[serde(default)]
    pub imds_support: Option<String>,
    pub ena_support: bool,
    #[serde(default)]
    pub sriov_net_support: Option<String>,
    pub virtualization_type: String,
    pub image_location: String,
    /// The ferrocloud registry image holding the root filesystem; `None` when the root
    /// device's snapshot holds it.
    #[serde(default)]
    pub source_image: Option<String>,
    #[serde(default)]
    pub deprecation_time: Option<String>,
    #[serde(default)]
    pub source_image_id: Option<String>,
    #[serde(default)]
    pub source_image_region: Option<String>,
    pub platform_details: String,
    /// `pending` (being created), `available` or `failed`.
    #[serde(default = "available")]
    pub state: String,
    #[serde(default)]
    pub state_reason: Option<String>,
}

fn available() -> String {
    "available".into()
}

/// ISO 8601 with milliseconds, the way `CreationDate` reads.
pub(crate) fn iso_ms(secs: f64) -> String {
    let s = fc_protocol::value::format_iso8601(secs);
    match s.strip_suffix('Z') {
        Some(b) if !b.contains('.') => format!("{b}.000Z"),
        _ => s,
    }
}

fn catalog_entries() -> &'static [Value] {
    static CATALOG: OnceLock<Vec<Value>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!("amis.json"))
            .expect("the embedded AMI catalog is valid JSON (checked by a unit test)")
    })
}

/// The public catalog images of a region.
pub(crate) fn catalog(region: &str) -> Vec<ImageRecord> {
    catalog_entries()
        .iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            let name = s("Name").unwrap_or_default();
            let owner = s("OwnerId").unwrap_or_default();
            let alias = s("ImageOwnerAlias");
            let root = s("RootDeviceName").unwrap_or_else(|| "/dev/xvda".into());
            let location_owner = alias.clone().unwrap_or_else(|| owner.clone());
            ImageRecord {
                image_id: stable_id("ami", &format!("{region}/{name}")),
                description: s("Description"),
                owner_id: owner,
                owner_alias: alias,
                architecture: s("Architecture").unwrap_or_else(|| "x86_64".into()),
                block_devices: vec![BlockDevice {
                    device_name: root.clone(),
                    snapshot_id: Some(stable_id("snap", &format!("{region}/{name}"))),
                    volume_size: Some(e.get("VolumeSize").and_then(Value::as_i64).unwrap_or(8)),
                    volume_type: Some(s("VolumeType").unwrap_or_else(|| "gp3".into())),
                    delete_on_termination: true,
                    encrypted: Some(false),
                    iops: None,
                    throughput: None,
                    virtual_name: None,
                    no_device: false,
                }],
                root_device_name: root,
                creation_date: s("CreationDate").unwrap_or_default(),
                public: true,
                launch_users: Vec::new(),
                product_codes: e
                    .get("ProductCodes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                boot_mode: s("BootMode"),
                imds_support: s("ImdsSupport"),
                ena_support: true,
                sriov_net_support: Some("simple".into()),
                virtualization_type: "hvm".into(),
                image_location: format!("{location_owner}/{name}"),
                source_image: Some(HOST_USERLAND.into()),
                deprecation_time: s("DeprecationTime"),
                source_image_id: None,
                source_image_region: None,
                platform_details: "Linux/UNIX".into(),
                name,
                state: available(),
                state_reason: None,
            }
        })
        .collect()
}

/// Whether `account` may see (and launch) `img`.
fn can_use(img: &ImageRecord, account: &str) -> bool {
    img.owner_id == account || img.public || img.launch_users.iter().any(|u| u == account)
}

/// Every image `account` can see in `region`: the catalog, its own, and those others share
/// with it or made public.
fn all_visible(
    store: &dyn Store,
    account: &str,
    region: &str,
) -> Result<Vec<ImageRecord>, ApiError> {
    let mut out = catalog(region);
    let scopes = store.scopes(IMAGES).map_err(crate::common::store_error)?;
    for scope in scopes.iter().filter(|s| s.region == region) {
        for (_, img) in scan_all::<ImageRecord>(store, scope, IMAGES)? {
            if can_use(&img, account) {
                out.push(img);
            }
        }
    }
    Ok(out)
}

/// The image `id` if `account` can see it in `region` (for instances).
pub fn image(store: &dyn Store, account: &str, region: &str, id: &str) -> Option<ImageRecord> {
    find_visible(store, account, region, id).ok().flatten()
}

fn find_visible(
    store: &dyn Store,
    account: &str,
    region: &str,
    id: &str,
) -> Result<Option<ImageRecord>, ApiError> {
    if let Some(img) = catalog(region).into_iter().find(|i| i.image_id == id) {
        return Ok(Some(img));
    }
    let own: Option<ImageRecord> = store
        .get_json(&Scope::new(account, region), IMAGES, id)
        .map_err(crate::common::store_error)?;
    if own.is_some() {
        return Ok(own);
    }
    let scopes = store.scopes(IMAGES).map_err(crate::common::store_error)?;
    for scope in scopes
        .iter()
        .filter(|s| s.region == region && s.account != account)
    {
        let found: Option<ImageRecord> = store
            .get_json(scope, IMAGES, id)
            .map_err(crate::common::store_error)?;
        if let Some(img) = found.filter(|i| can_use(i, account)) {
            return Ok(Some(img));
        }
    }
    Ok(None)
}

pub(crate) fn visible(c: &Ctx<'_>, id: &str) -> Result<Option<ImageRecord>, ApiError> {
    find_visible(c.store, c.account(), c.region(), id)
}

fn not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidAMIID.NotFound",
        format!("The image id '[{id}]' does not exist"),
    )
}

fn check_ami_id(id: &str) -> Result<(), ApiError> {
    check_id(id, "ami", "InvalidAMIID.Malformed")
}

/// The caller's own image, else `InvalidAMIID.NotFound` / `AuthFailure`.
fn own(c: &Ctx<'_>, id: &str) -> Result<ImageRecord, ApiError> {
    check_ami_id(id)?;
    if let Some(img) = c.get::<ImageRecord>(IMAGES, id)? {
        return Ok(img);
    }
    match visible(c, id)? {
        Some(_) => Err(ApiError::client(
            "AuthFailure",
            format!("Not authorized for image:{id}"),
        )),
        None => Err(not_found(id)),
    }
}

fn bdm_value(b: &BlockDevice) -> Value {
    let mut v = json!({"DeviceName": b.device_name});
    if b.no_device {
        v["NoDevice"] = json!("");
        return v;
    }
    if let Some(vn) = &b.virtual_name {
        v["VirtualName"] = json!(vn);
        return v;
    }
    let mut ebs = json!({"DeleteOnTermination": b.delete_on_termination});
    if let Some(s) = &b.snapshot_id {
        ebs["SnapshotId"] = json!(s);
    }
    if let Some(s) = b.volume_size {
        ebs["VolumeSize"] = json!(s);
    }
    if let Some(t) = &b.volume_type {
        ebs["VolumeType"] = json!(t);
    }
    if let Some(e) = b.encrypted {
        ebs["Encrypted"] = json!(e);
    }
    if let Some(i) = b.iops {
        ebs["Iops"] = json!(i);
    }
    if let Some(t) = b.throughput {
        ebs["Throughput"] = json!(t);
    }
    v["Ebs"] = ebs;
    v
}

fn image_value(c: &Ctx<'_>, img: &ImageRecord) -> Result<Value, ApiError> {
    let t = tags::get(c, &img.image_id)?;
    let mut v = json!({
        "ImageId": img.image_id,
        "ImageLocation": img.image_location,
        "State": img.state,
        "OwnerId": img.owner_id,
        "CreationDate": img.creation_date,
        "Public": img.public,
        "Architecture": img.architecture,
        "ImageType": "machine",
        "Name": img.name,
        "RootDeviceType": "ebs",
        "RootDeviceName": img.root_device_name,
        "BlockDeviceMappings": img.block_devices.iter().map(bdm_value).collect::<Vec<_>>(),
        "VirtualizationType": img.virtualization_type,
        "Hypervisor": "xen",
        "EnaSupport": img.ena_support,
        "PlatformDetails": img.platform_details,
        "UsageOperation": "RunInstances",
    });
    let opt = |v: &mut Value, k: &str, x: &Option<String>| {
        if let Some(x) = x {
            v[k] = json!(x);
        }
    };
    opt(&mut v, "Description", &img.description);
    opt(&mut v, "ImageOwnerAlias", &img.owner_alias);
    opt(&mut v, "BootMode", &img.boot_mode);
    opt(&mut v, "ImdsSupport", &img.imds_support);
    opt(&mut v, "SriovNetSupport", &img.sriov_net_support);
    opt(&mut v, "DeprecationTime", &img.deprecation_time);
    opt(&mut v, "SourceImageId", &img.source_image_id);
    opt(&mut v, "SourceImageRegion", &img.source_image_region);
    if !img.product_codes.is_empty() {
        v["ProductCodes"] = product_codes(img);
    }
    if let Some(r) = &img.state_reason {
        v["StateReason"] = json!({"Code": "Server.InternalError", "Message": r});
    }
    Ok(with_tags(v, &t))
}

fn product_codes(img: &ImageRecord) -> Value {
    Value::Array(
        img.product_codes
            .iter()
            .map(|p| json!({"ProductCodeId": p, "ProductCodeType": "marketplace"}))
            .collect(),
    )
}

fn is_deprecated(img: &ImageRecord, now_s: f64) -> bool {
    img.deprecation_time
        .as_deref()
        .and_then(fc_protocol::value::parse_timestamp)
        .is_some_and(|t| t <= now_s)
}

fn owner_matches(img: &ImageRecord, owner: &str, me: &str) -> bool {
    match owner {
        "self" => img.owner_id == me,
        "amazon" | "aws-marketplace" => img.owner_alias.as_deref() == Some(owner),
        id => img.owner_id == id,
    }
}

fn executable_matches(img: &ImageRecord, who: &str, me: &str) -> bool {
    match who {
        "all" => img.public,
        "self" => img.owner_id == me || img.launch_users.iter().any(|u| u == me),
        id => img.owner_id == id || img.launch_users.iter().any(|u| u == id),
    }
}

const IMAGE_FILTERS: &[&str] = &[
    "architecture",
    "block-device-mapping.delete-on-termination",
    "block-device-mapping.device-name",
    "block-device-mapping.snapshot-id",
    "block-device-mapping.volume-size",
    "block-device-mapping.volume-type",
    "block-device-mapping.encrypted",
    "boot-mode",
    "creation-date",
    "description",
    "ena-support",
    "hypervisor",
    "image-id",
    "image-type",
    "imds-support",
    "is-public",
    "kernel-id",
    "manifest-location",
    "name",
    "owner-alias",
    "owner-id",
    "platform",
    "platform-details",
    "product-code",
    "product-code.type",
    "ramdisk-id",
    "root-device-name",
    "root-device-type",
    "source-image-id",
    "source-image-region",
    "state",
    "sriov-net-support",
    "usage-operation",
    "virtualization-type",
];

fn image_field(img: &ImageRecord, name: &str) -> Option<Vec<String>> {
    let bdm = |f: &dyn Fn(&BlockDevice) -> Option<String>| -> Option<Vec<String>> {
        Some(img.block_devices.iter().filter_map(f).collect())
    };
    match name {
        "architecture" => one(&img.architecture),
        "block-device-mapping.delete-on-termination" => {
            bdm(&|b| Some(b.delete_on_termination.to_string()))
        }
        "block-device-mapping.device-name" => bdm(&|b| Some(b.device_name.clone())),
        "block-device-mapping.snapshot-id" => bdm(&|b| b.snapshot_id.clone()),
        "block-device-mapping.volume-size" => bdm(&|b| b.volume_size.map(|s| s.to_string())),
        "block-device-mapping.volume-type" => bdm(&|b| b.volume_type.clone()),
        "block-device-mapping.encrypted" => bdm(&|b| b.encrypted.map(|e| e.to_string())),
        "boot-mode" => Some(img.boot_mode.clone().into_iter().collect()),
        "creation-date" => one(&img.creation_date),
        "description" => Some(img.description.clone().into_iter().collect()),
        "ena-support" => one(img.ena_support.to_string()),
        "hypervisor" => one("xen"),
        "image-id" => one(&img.image_id),
        "image-type" => one("machine"),
        "imds-support" => Some(img.imds_support.clone().into_iter().collect()),
        "is-public" => one(img.public.to_string()),
        "manifest-location" => one(&img.image_location),
        "name" => one(&img.name),
        "owner-alias" => Some(img.owner_alias.clone().into_iter().collect()),
        "owner-id" => one(&img.owner_id),
        "platform" | "kernel-id" | "ramdisk-id" => Some(Vec::new()),
        "platform-details" => one(&img.platform_details),
        "product-code" => Some(img.product_codes.clone()),
        "product-code.type" => Some(
            img.product_codes
                .iter()
                .map(|_| "marketplace".to_string())
                .collect(),
        ),
        "root-device-name" => one(&img.root_device_name),
        "root-device-type" => one("ebs"),
        "source-image-id" => Some(img.source_image_id.clone().into_iter().collect()),
        "source-image-region" => Some(img.source_image_region.clone().into_iter().collect()),
        "state" => one(&img.state),
        "sriov-net-support" => Some(img.sriov_net_support.clone().into_iter().collect()),
        "usage-operation" => one("RunInstances"),
        "virtualization-type" => one(&img.virtualization_type),
        _ => None,
    }
}

fn check_account_list(values: &[String], allowed: &[&str]) -> Result<(), ApiError> {
    for v in values {
        if !allowed.contains(&v.as_str()) && !fc_types::ids::is_account_id(v) {
            return Err(ApiError::client(
                "InvalidUserID.Malformed",
                format!("Invalid user id: \"{v}\""),
            ));
        }
    }
    Ok(())
}

pub(crate) fn describe_images(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(input, IMAGE_FILTERS, true)?;
    let ids = str_list(input, "ImageIds");
    for id in &ids {
        check_ami_id(id)?;
    }
    let owners = str_list(input, "Owners");
    check_account_list(
        &owners,
        &["self", "amazon", "aws-marketplace", "aws-backup-vault"],
    )?;
    let executable = str_list(input, "ExecutableUsers");
    check_account_list(&executable, &["self", "all"])?;
    let include_deprecated = opt_bool(input, "IncludeDeprecated").unwrap_or(false);
    check_dry_run_v(input)?;
    let me = c.account();
    let now_s = now();
    let all = all_visible(c.store, me, c.region())?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !all.iter().any(|i| &&i.image_id == id))
    {
        return Err(not_found(missing));
    }
    let mut items = Vec::new();
    for img in &all {
        if !ids.is_empty() && !ids.contains(&img.image_id) {
            continue;
        }
        if !owners.is_empty() && !owners.iter().any(|o| owner_matches(img, o, me)) {
            continue;
        }
        if !executable.is_empty() && !executable.iter().any(|e| executable_matches(img, e, me)) {
            continue;
        }
        if ids.is_empty() && !include_deprecated && img.owner_id != me && is_deprecated(img, now_s)
        {
            continue;
        }
        let t = tags::get(c, &img.image_id)?;
        if !matches(&fs, &t, |n| image_field(img, n)) {
            continue;
        }
        items.push((img.image_id.clone(), image_value(c, img)?));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|a, b| a.0 == b.0);
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("Images", page, next))
}

pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let ok_len = (3..=128).contains(&name.chars().count());
    let ok_chars = name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || "()[] ./-'@_".contains(ch));
    if !ok_len || !ok_chars {
        return Err(ApiError::client(
            "InvalidAMIName.Malformed",
            "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '[', ']', ' ', '.', '/', '-', ''', '@' and '_'",
        ));
    }
    Ok(())
}

pub(crate) fn check_unique_name(c: &Ctx<'_>, name: &str) -> Result<(), ApiError> {
    if let Some((_, other)) = c
        .all::<ImageRecord>(IMAGES)?
        .into_iter()
        .find(|(_, i)| i.name == name)
    {
        return Err(ApiError::client(
            "InvalidAMIName.Duplicate",
            format!(
                "AMI name {name} is already in use by AMI {}",
                other.image_id
            ),
        ));
    }
    Ok(())
}

fn parse_mappings(c: &Ctx<'_>, input: &Value) -> Result<Vec<BlockDevice>, ApiError> {
    let mut out = Vec::new();
    for m in input
        .get("BlockDeviceMappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let device = m.get("DeviceName").and_then(Value::as_str).ok_or_else(|| {
            ApiError::missing("MissingParameter", "BlockDeviceMapping.DeviceName")
        })?;
        let mut b = BlockDevice {
            device_name: device.to_string(),
            snapshot_id: None,
            volume_size: None,
            volume_type: None,
            delete_on_termination: true,
            encrypted: None,
            iops: None,
            throughput: None,
            virtual_name: m
                .get("VirtualName")
                .and_then(Value::as_str)
                .map(str::to_string),
            no_device: m.get("NoDevice").is_some(),
        };
        if let Some(ebs) = m.get("Ebs") {
            b.snapshot_id = ebs
                .get("SnapshotId")
                .and_then(Value::as_str)
                .map(str::to_string);
            b.volume_size = ebs.get("VolumeSize").and_then(Value::as_i64);
            b.volume_type = Some(
                ebs.get("VolumeType")
                    .and_then(Value::as_str)
                    .unwrap_or("gp2")
                    .to_string(),
            );
            b.delete_on_termination = ebs
                .get("DeleteOnTermination")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            b.iops = ebs.get("Iops").and_then(Value::as_i64);
            b.throughput = ebs.get("Throughput").and_then(Value::as_i64);
            b.encrypted = Some(
                ebs.get("Encrypted")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            );
            if let Some(sid) = &b.snapshot_id {
                let snap = volumes::require_snapshot(c, sid)?;
                b.volume_size = Some(b.volume_size.unwrap_or(snap.volume_size));
                if b.volume_size < Some(snap.volume_size) {
                    return Err(invalid_value(format!(
                        "Volume of {}GiB is smaller than snapshot '{sid}', expect size >= {}GiB",
                        b.volume_size.unwrap_or(0),
                        snap.volume_size
                    )));
                }
                b.encrypted = Some(snap.encrypted);
            } else if b.volume_size.is_none() {
                return Err(ApiError::missing(
                    "MissingParameter",
                    "BlockDeviceMapping.Ebs.VolumeSize",
                ));
            }
        }
        out.push(b);
    }
    Ok(out)
}

/// `<repo>:<tag>` or `<repo>@sha256:<hex>`.
fn check_registry_ref(s: &str) -> Result<(), ApiError> {
    let ok = if let Some((repo, digest)) = s.split_once('@') {
        !repo.is_empty()
            && digest
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    } else if let Some((repo, tag)) = s.rsplit_once(':') {
        !repo.is_empty() && !tag.is_empty() && !tag.contains('/')
    } else {
        false
    };
    if !ok || s.chars().any(char::is_whitespace) {
        return Err(invalid_value(format!(
            "Invalid ImageLocation '{s}': expected <repository>:<tag> or <repository>@sha256:<digest> of ferrocloud's registry"
        )));
    }
    Ok(())
}

pub(crate) fn register_image(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "Name")?;
    check_name(name)?;
    let arch = opt_str(input, "Architecture").unwrap_or("x86_64");
    if !matches!(
        arch,
        "i386" | "x86_64" | "arm64" | "x86_64_mac" | "arm64_mac"
    ) {
        return Err(invalid_value(format!(
            "Value ({arch}) for parameter architecture is invalid."
        )));
    }
    let root = opt_str(input, "RootDeviceName")
        .unwrap_or("/dev/xvda")
        .to_string();
    let mut devices = parse_mappings(c, input)?;
    let location = opt_str(input, "ImageLocation").filter(|s| !s.is_empty());
    let source_image = match location {
        Some(l) => {
            check_registry_ref(l)?;
            if !devices.iter().any(|d| d.device_name == root) {
                devices.insert(
                    0,
                    BlockDevice {
                        device_name: root.clone(),
                        snapshot_id: None,
                        volume_size: Some(8),
                        volume_type: Some("gp3".into()),
                        delete_on_termination: true,
                        encrypted: Some(false),
                        iops: None,
                        throughput: None,
                        virtual_name: None,
                        no_device: false,
                    },
                );
            }
            Some(l.to_string())
        }
        None => {
            if !devices
                .iter()
                .any(|d| d.device_name == root && d.snapshot_id.is_some())
            {
                return Err(ApiError::client(
                    "InvalidBlockDeviceMapping",
                    format!(
                        "The root device {root} must be mapped to a snapshot (or ImageLocation must name a registry image)"
                    ),
                ));
            }
            None
        }
    };
    check_unique_name(c, name)?;
    let t = spec_tags(input, "image")?;
    check_dry_run_v(input)?;
    let id = fc_types::ids::ec2_id("ami");
    // A registry image is resolved now and pinned to the AMI (immutable, as AMIs are).
    let source_image = match (&source_image, location) {
        (Some(_), Some(l)) => super::ami::pin_registry_image(c, l, &id)?.or(source_image),
        _ => source_image,
    };
    let img = ImageRecord {
        image_id: id.clone(),
        name: name.to_string(),
        description: opt_str(input, "Description").map(str::to_string),
        owner_id: c.account().to_string(),
        owner_alias: None,
        architecture: arch.to_string(),
        root_device_name: root,
        block_devices: devices,
        creation_date: iso_ms(now()),
        public: false,
        launch_users: Vec::new(),
        product_codes: Vec::new(),
        boot_mode: opt_str(input, "BootMode").map(str::to_string),
        imds_support: opt_str(input, "ImdsSupport").map(str::to_string),
        ena_support: opt_bool(input, "EnaSupport").unwrap_or(true),
        sriov_net_support: opt_str(input, "SriovNetSupport").map(str::to_string),
        virtualization_type: opt_str(input, "VirtualizationType")
            .unwrap_or("hvm")
            .to_string(),
        image_location: location
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}/{name}", c.account())),
        source_image,
        deprecation_time: None,
        source_image_id: None,
        source_image_region: None,
        platform_details: "Linux/UNIX".into(),
        state: available(),
        state_reason: None,
    };
    c.put(IMAGES, &id, &img)?;
    tags::add(c, &id, &t)?;
    Ok(json!({"ImageId": id}))
}

/// Snapshot ids the caller's images in this region use.
pub(crate) fn snapshots_in_use(c: &Ctx<'_>) -> Result<Vec<(String, String)>, ApiError> {
    Ok(c.all::<ImageRecord>(IMAGES)?
        .into_iter()
        .flat_map(|(_, i)| {
            i.block_devices
                .into_iter()
                .filter_map(move |b| b.snapshot_id.map(|s| (s, i.image_id.clone())))
        })
        .collect())
}

pub(crate) fn deregister_image(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "ImageId")?;
    let img = own(c, id)?;
    check_dry_run_v(input)?;
    c.delete(IMAGES, id)?;
    tags::drop_all(c, id)?;
    super::ami::unpin(c, id);
    let mut out = json!({"Return": true});
    if opt_bool(input, "DeleteAssociatedSnapshots") == Some(true) {
        let in_use = snapshots_in_use(c)?;
        let mut results = Vec::new();
        for s in img
            .block_devices
            .iter()
            .filter_map(|b| b.snapshot_id.as_ref())
        {
            let code = if in_use.iter().any(|(x, _)| x == s) {
                "client-error"
            } else if volumes::remove_snapshot(c, s)? {
                "success"
            } else {
                "client-error"
            };
            results.push(json!({"SnapshotId": s, "ReturnCode": code}));
        }
        out["DeleteSnapshotResults"] = Value::Array(results);
    }
    Ok(out)
}

pub(crate) fn copy_image(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let src_id = req_str(input, "SourceImageId")?;
    let src_region = req_str(input, "SourceRegion")?;
    let name = req_str(input, "Name")?;
    check_ami_id(src_id)?;
    check_name(name)?;
    let token = opt_str(input, "ClientToken");
    if let Some(out) = idempotent_replay(c.store, c.req, token, input)? {
        return Ok(out);
    }
    let src = find_visible(c.store, c.account(), src_region, src_id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidAMIID.NotFound",
            format!("The image id '[{src_id}]' does not exist"),
        )
    })?;
    if src.state != "available" {
        return Err(ApiError::client(
            "InvalidAMIID.Unavailable",
            format!("AMI '{src_id}' is {}, and cannot be copied", src.state),
        ));
    }
    check_unique_name(c, name)?;
    let encrypted = opt_bool(input, "Encrypted").unwrap_or(false);
    let kms = if encrypted {
        Some(
            opt_str(input, "KmsKeyId")
                .map(str::to_string)
                .unwrap_or_else(|| default_kms_key(c.account(), c.region())),
        )
    } else {
        None
    };
    let t = spec_tags(input, "image")?;
    check_dry_run_v(input)?;
    let src_scope = Scope::new(&src.owner_id, src_region);
    let mut devices = Vec::new();
    for b in &src.block_devices {
        let mut nb = b.clone();
        if let Some(sid) = &b.snapshot_id {
            let src_snap = volumes::snapshot_in(c, &src_scope, sid)?;
            let desc = format!(
                "Copied for DestinationAmi from SourceAmi {src_id} for SourceSnapshot {sid}"
            );
            let copy = volumes::copy_snapshot_record(
                c,
                src_snap.as_ref(),
                sid,
                b.volume_size.unwrap_or(8),
                &desc,
                kms.clone(),
            )?;
            if kms.is_some() {
                nb.encrypted = Some(true);
            }
            nb.snapshot_id = Some(copy.snapshot_id);
        }
        devices.push(nb);
    }
    let id = fc_types::ids::ec2_id("ami");
    let source_image = match &src.source_image {
        Some(s) => Some(super::ami::pin_copy(c, s, &id)?),
        None => None,
    };
    let img = ImageRecord {
        image_id: id.clone(),
        source_image,
        name: name.to_string(),
        description: opt_str(input, "Description")
            .map(str::to_string)
            .or_else(|| src.description.clone()),
        owner_id: c.account().to_string(),
        owner_alias: None,
        image_location: format!("{}/{name}", c.account()),
        creation_date: iso_ms(now()),
        public: false,
        launch_users: Vec::new(),
        block_devices: devices,
        deprecation_time: None,
        source_image_id: Some(src_id.to_string()),
        source_image_region: Some(src_region.to_string()),
        ..src.clone()
    };
    c.put(IMAGES, &id, &img)?;
    let mut all_tags = Vec::new();
    if opt_bool(input, "CopyImageTags") == Some(true) {
        let src_tags: Option<Vec<(String, String)>> =
            c.get_in(&Scope::new(c.account(), src_region), super::TAGS, src_id)?;
        all_tags.extend(src_tags.unwrap_or_default());
    }
    fc_types::tags::merge(&mut all_tags, &t);
    tags::add(c, &id, &all_tags)?;
    let out = json!({"ImageId": id});
    idempotent_record(c.store, c.req, token, input, &out)?;
    Ok(out)
}

fn launch_permissions(img: &ImageRecord) -> Value {
    let mut v: Vec<Value> = img
        .launch_users
        .iter()
        .map(|u| json!({"UserId": u}))
        .collect();
    if img.public {
        v.push(json!({"Group": "all"}));
    }
    Value::Array(v)
}

fn attr_value(x: &Option<String>) -> Value {
    match x {
        Some(v) => json!({"Value": v}),
        None => json!({}),
    }
}

pub(crate) fn describe_image_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "ImageId")?;
    let attr = req_str(input, "Attribute")?;
    check_ami_id(id)?;
    let img = if attr == "launchPermission" {
        own(c, id)?
    } else {
        visible(c, id)?.ok_or_else(|| not_found(id))?
    };
    check_dry_run_v(input)?;
    let mut out = json!({"ImageId": id});
    match attr {
        "description" => out["Description"] = attr_value(&img.description),
        "kernel" => out["KernelId"] = json!({}),
        "ramdisk" => out["RamdiskId"] = json!({}),
        "launchPermission" => out["LaunchPermissions"] = launch_permissions(&img),
        "productCodes" => out["ProductCodes"] = product_codes(&img),
        "blockDeviceMapping" => {
            out["BlockDeviceMappings"] =
                Value::Array(img.block_devices.iter().map(bdm_value).collect())
        }
        "sriovNetSupport" => out["SriovNetSupport"] = attr_value(&img.sriov_net_support),
        "bootMode" => out["BootMode"] = attr_value(&img.boot_mode),
        "tpmSupport" => out["TpmSupport"] = json!({}),
        "uefiData" => out["UefiData"] = json!({}),
        "lastLaunchedTime" => out["LastLaunchedTime"] = json!({}),
        "imdsSupport" => out["ImdsSupport"] = attr_value(&img.imds_support),
        "deregistrationProtection" => {
            out["DeregistrationProtection"] = json!({"Value": "disabled"})
        }
        other => {
            return Err(invalid_value(format!(
                "Value ({other}) for parameter attribute is invalid. Unknown attribute."
            )))
        }
    }
    Ok(out)
}

/// (user ids, groups) of a `LaunchPermissionList`.
fn permission_list(v: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for p in v.and_then(Value::as_array).into_iter().flatten() {
        if let Some(u) = p.get("UserId").and_then(Value::as_str) {
            users.push(u.to_string());
        }
        if let Some(g) = p.get("Group").and_then(Value::as_str) {
            groups.push(g.to_string());
        }
    }
    (users, groups)
}

fn check_permission_items(users: &[String], groups: &[String]) -> Result<(), ApiError> {
    for u in users {
        if !fc_types::ids::is_account_id(u) {
            return Err(ApiError::client(
                "InvalidAMIAttributeItemValue",
                format!("Invalid attribute item value \"{u}\" for userId item type."),
            ));
        }
    }
    for g in groups {
        if g != "all" {
            return Err(ApiError::client(
                "InvalidAMIAttributeItemValue",
                format!("Invalid attribute item value \"{g}\" for group item type."),
            ));
        }
    }
    Ok(())
}

pub(crate) fn modify_image_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "ImageId")?;
    let mut img = own(c, id)?;
    let attr = opt_str(input, "Attribute");
    let (mut add_u, mut add_g, mut rem_u, mut rem_g) = (vec![], vec![], vec![], vec![]);
    let mut touched = false;
    if let Some(lp) = input.get("LaunchPermission") {
        let (u, g) = permission_list(lp.get("Add"));
        add_u.extend(u);
        add_g.extend(g);
        let (u, g) = permission_list(lp.get("Remove"));
        rem_u.extend(u);
        rem_g.extend(g);
        touched = true;
    }
    if attr == Some("launchPermission") {
        let users = str_list(input, "UserIds");
        let groups = str_list(input, "UserGroups");
        match opt_str(input, "OperationType") {
            Some("add") => {
                add_u.extend(users);
                add_g.extend(groups);
            }
            Some("remove") => {
                rem_u.extend(users);
                rem_g.extend(groups);
            }
            _ => return Err(ApiError::missing("MissingParameter", "OperationType")),
        }
        touched = true;
    }
    check_permission_items(&add_u, &add_g)?;
    check_permission_items(&rem_u, &rem_g)?;
    if !add_g.is_empty() && !img.product_codes.is_empty() {
        return Err(invalid_value(
            "AMIs with product codes cannot be made public",
        ));
    }
    let description = input
        .get("Description")
        .and_then(|d| d.get("Value"))
        .and_then(Value::as_str)
        .or_else(|| {
            (attr == Some("description"))
                .then(|| opt_str(input, "Value"))
                .flatten()
        });
    let imds = input
        .get("ImdsSupport")
        .and_then(|d| d.get("Value"))
        .and_then(Value::as_str);
    if let Some(v) = imds {
        if v != "v2.0" {
            return Err(invalid_value(format!(
                "Value ({v}) for parameter imdsSupport is invalid."
            )));
        }
    }
    if !touched && description.is_none() && imds.is_none() {
        return Err(ApiError::missing("MissingParameter", "Attribute"));
    }
    check_dry_run_v(input)?;
    for u in add_u {
        if !img.launch_users.contains(&u) && u != img.owner_id {
            img.launch_users.push(u);
        }
    }
    img.launch_users.retain(|u| !rem_u.contains(u));
    if !add_g.is_empty() {
        img.public = true;
    }
    if !rem_g.is_empty() {
        img.public = false;
    }
    if let Some(d) = description {
        img.description = Some(d.to_string());
    }
    if let Some(v) = imds {
        img.imds_support = Some(v.to_string());
    }
    c.put(IMAGES, id, &img)?;
    Ok(json!({}))
}

pub(crate) fn reset_image_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "ImageId")?;
    let attr = req_str(input, "Attribute")?;
    let mut img = own(c, id)?;
    if attr != "launchPermission" {
        return Err(invalid_value(format!(
            "Value ({attr}) for parameter attribute is invalid. Only launchPermission can be reset."
        )));
    }
    check_dry_run_v(input)?;
    img.launch_users.clear();
    img.public = false;
    c.put(IMAGES, id, &img)?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_loads() {
        let east = catalog("us-east-1");
        let west = catalog("us-west-2");
        assert!(east.len() >= 10);
        assert_ne!(east[0].image_id, west[0].image_id);
        assert_eq!(east[0].image_id, catalog("us-east-1")[0].image_id);
        assert!(east
            .iter()
            .all(|i| fc_types::ids::is_ec2_id(&i.image_id, "ami")));
        assert!(east
            .iter()
            .any(|i| i.owner_id == "099720109477" && i.owner_alias.is_none()));
        assert!(east
            .iter()
            .any(|i| i.owner_alias.as_deref() == Some("aws-marketplace")
                && !i.product_codes.is_empty()));
        assert!(east
            .iter()
            .all(|i| i.source_image.as_deref() == Some(HOST_USERLAND)));
    }

    #[test]
    fn names_and_refs() {
        assert!(check_name("my-image (v1.2)").is_ok());
        assert!(check_name("ab").is_err());
        assert!(check_name("bad*name").is_err());
        assert!(check_registry_ref("app:latest").is_ok());
        assert!(check_registry_ref("localhost:4566/app:v1").is_ok());
        assert!(check_registry_ref("app").is_err());
        assert!(check_registry_ref(&format!("app@sha256:{}", "a".repeat(64))).is_ok());
        assert_eq!(iso_ms(1422172800.0), "2015-01-25T08:00:00.000Z");
    }
}
