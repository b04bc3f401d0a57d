//! Amazon EC2, the parts that do not need running instances: the default VPC and its subnets,
//! VPCs and subnets, availability zones, regions and account attributes (`vpcs`), security
//! groups and their rules (`security_groups`), key pairs with real key material (`key_pairs`,
//! `keys`), the instance-type catalog (`instance_types`, data in `instance_types.json`), AMIs
//! with a catalog of public images (`images`, data in `amis.json`), EBS volumes and snapshots
//! holding real data on disk (`volumes`), and tags on all of them (`tags`).
//!
//! State lives in the store per account and region (tables `ec2_*`). The default VPC, its
//! subnets and default security group are created lazily, the first time an account uses a
//! region. Instances (`instances`) run as workloads of the execution layer when a driver is
//! attached ([`Ec2::attach_driver`]; without one they only change state on paper), with the
//! instance metadata service in `imds`. Every other operation of the model answers
//! `NotImplemented`.
//!
//! Handlers run on the blocking pool under one service-wide lock (they read-modify-write
//! several records, and snapshot and volume data copies happen inside the call). What launches
//! and boots need to know about all the instances of a scope (addresses in use per subnet,
//! vCPUs per bucket and market, client tokens, capacity-reservation and host use, group
//! members, running workloads) comes from an in-memory index ([`instances::InstanceIndex`])
//! built per scope from the store on first use and kept in step with every write of an
//! instance or purchase record, so those costs do not grow with the number of records.
//!
//! Must not live here: wire formats (fc-protocol), the execution of instances (runtime).

// `ApiError` is the crate-wide error type; its size is not this module's choice.
#![allow(clippy::result_large_err)]

mod ami;
mod capacity;
mod crypt;
mod hosts;
mod images;
mod imds;
mod instance_types;
mod instances;
mod key_pairs;
mod keys;
mod launch_templates;
mod purchasing;
mod reserved;
mod security_groups;
mod spot;
mod storage;
mod tags;
#[cfg(test)]
mod tests;
mod volumes;
mod vpcs;

pub use images::{image, BlockDevice, ImageRecord, HOST_USERLAND};
pub use instance_types::{instance_type, InstanceTypeInfo};
pub use instances::{InstanceRecord, CONSOLE_GROUP};
pub use key_pairs::public_key;
pub use security_groups::{security_groups, Peer, SecurityGroupRecord, SgRule};
pub use volumes::{snapshot_path, volume_path, SnapshotRecord, VolumeAttachment, VolumeRecord};

use crate::common::store_error;
use crate::{RequestContext, Service};
use async_trait::async_trait;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt};
use fc_types::filter::Filter;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The EC2 service.
pub struct Ec2 {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    /// Serializes EC2 changes (handlers read-modify-write several records).
    lock: Arc<Mutex<()>>,
    /// The execution layer, once attached.
    exec: std::sync::OnceLock<Arc<instances::Exec>>,
    /// In-memory aggregates of the instance records (rebuilt from the store per scope).
    index: Arc<instances::InstanceIndex>,
}

impl Ec2 {
    /// The service over `store`; volume and snapshot data live under `data_dir`
    /// (`volumes/<vol-id>/`, `snapshots/<snap-id>/`).
    pub fn new(store: Arc<dyn Store>, data_dir: impl Into<PathBuf>) -> Self {
        Ec2 {
            inner: Arc::new(Inner {
                store,
                data_dir: data_dir.into(),
                lock: Arc::new(Mutex::new(())),
                exec: std::sync::OnceLock::new(),
                index: Arc::new(instances::InstanceIndex::default()),
            }),
        }
    }

    /// Run instances on `driver`, with root filesystems from `images` and console output in
    /// `logs`. Must be called inside a Tokio runtime: it re-adopts the instances of an earlier
    /// run (in the background), removes orphaned workloads and serves the instance metadata
    /// service. Attaching twice is ignored.
    pub fn attach_driver(
        &self,
        driver: Arc<dyn fc_runtime::Driver>,
        images: Arc<fc_images::ImageStore>,
        logs: Arc<crate::logs::Logs>,
    ) {
        let exec = Arc::new(instances::Exec {
            driver,
            images,
            logs,
            store: self.inner.store.clone(),
            lock: self.inner.lock.clone(),
            data_dir: self.inner.data_dir.clone(),
            rt: tokio::runtime::Handle::current(),
            tokens: Mutex::new(Default::default()),
            start_lock: tokio::sync::Mutex::new(()),
            instance_locks: Mutex::new(Default::default()),
            imds: tokio::sync::OnceCell::new(),
            index: self.inner.index.clone(),
        });
        if self.inner.exec.set(exec.clone()).is_err() {
            return;
        }
        tokio::spawn(async move { exec.recover_all().await });
    }
}

#[async_trait]
impl Service for Ec2 {
    fn name(&self) -> &'static str {
        "ec2"
    }

    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError> {
        let inner = self.inner.clone();
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || inner.call_sync(&ctx, &input))
            .await
            .map_err(|e| ApiError::internal(format!("ec2 handler failed: {e}")))?
    }
}

impl Inner {
    fn call_sync(&self, req: &RequestContext, input: &Value) -> Result<Value, ApiError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let c = Ctx {
            store: self.store.as_ref(),
            scope: Scope::new(&req.account, &req.region),
            req,
            data_dir: &self.data_dir,
            exec: self.exec.get(),
            index: &self.index,
        };
        let op = req.operation.as_str();
        if !matches!(
            op,
            "DescribeRegions" | "DescribeInstanceTypes" | "DescribeInstanceTypeOfferings"
        ) {
            vpcs::ensure_defaults(&c)?;
        }
        match op {
            // VPCs, subnets, zones, regions, account
            "DescribeVpcs" => vpcs::describe_vpcs(&c, input),
            "CreateVpc" => vpcs::create_vpc(&c, input),
            "DeleteVpc" => vpcs::delete_vpc(&c, input),
            "CreateDefaultVpc" => vpcs::create_default_vpc(&c, input),
            "DescribeVpcAttribute" => vpcs::describe_vpc_attribute(&c, input),
            "ModifyVpcAttribute" => vpcs::modify_vpc_attribute(&c, input),
            "ModifySubnetAttribute" => vpcs::modify_subnet_attribute(&c, input),
            "DescribeSubnets" => vpcs::describe_subnets(&c, input),
            "CreateSubnet" => vpcs::create_subnet(&c, input),
            "DeleteSubnet" => vpcs::delete_subnet(&c, input),
            "DescribeAvailabilityZones" => vpcs::describe_availability_zones(&c, input),
            "DescribeRegions" => vpcs::describe_regions(&c, input),
            "DescribeAccountAttributes" => vpcs::describe_account_attributes(&c, input),
            // Security groups
            "CreateSecurityGroup" => security_groups::create_security_group(&c, input),
            "DeleteSecurityGroup" => security_groups::delete_security_group(&c, input),
            "DescribeSecurityGroups" => security_groups::describe_security_groups(&c, input),
            "AuthorizeSecurityGroupIngress" => security_groups::authorize(&c, input, false),
            "AuthorizeSecurityGroupEgress" => security_groups::authorize(&c, input, true),
            "RevokeSecurityGroupIngress" => security_groups::revoke(&c, input, false),
            "RevokeSecurityGroupEgress" => security_groups::revoke(&c, input, true),
            "DescribeSecurityGroupRules" => {
                security_groups::describe_security_group_rules(&c, input)
            }
            "ModifySecurityGroupRules" => security_groups::modify_security_group_rules(&c, input),
            // Key pairs
            "CreateKeyPair" => key_pairs::create_key_pair(&c, input),
            "ImportKeyPair" => key_pairs::import_key_pair(&c, input),
            "DescribeKeyPairs" => key_pairs::describe_key_pairs(&c, input),
            "DeleteKeyPair" => key_pairs::delete_key_pair(&c, input),
            // Instance types
            "DescribeInstanceTypes" => instance_types::describe_instance_types(&c, input),
            "DescribeInstanceTypeOfferings" => {
                instance_types::describe_instance_type_offerings(&c, input)
            }
            // Images
            "DescribeImages" => images::describe_images(&c, input),
            "RegisterImage" => images::register_image(&c, input),
            "DeregisterImage" => images::deregister_image(&c, input),
            "CopyImage" => images::copy_image(&c, input),
            "DescribeImageAttribute" => images::describe_image_attribute(&c, input),
            "ModifyImageAttribute" => images::modify_image_attribute(&c, input),
            "ResetImageAttribute" => images::reset_image_attribute(&c, input),
            // Volumes and snapshots
            "CreateVolume" => volumes::create_volume(&c, input),
            "DescribeVolumes" => volumes::describe_volumes(&c, input),
            "ModifyVolume" => volumes::modify_volume(&c, input),
            "DescribeVolumesModifications" => volumes::describe_volumes_modifications(&c, input),
            "DeleteVolume" => volumes::delete_volume(&c, input),
            "CreateSnapshot" => volumes::create_snapshot(&c, input),
            "DescribeSnapshots" => volumes::describe_snapshots(&c, input),
            "DeleteSnapshot" => volumes::delete_snapshot(&c, input),
            "CopySnapshot" => volumes::copy_snapshot(&c, input),
            "ModifySnapshotAttribute" => volumes::modify_snapshot_attribute(&c, input),
            "DescribeSnapshotAttribute" => volumes::describe_snapshot_attribute(&c, input),
            "ResetSnapshotAttribute" => volumes::reset_snapshot_attribute(&c, input),
            // Instances
            "RunInstances" => instances::run_instances(&c, input),
            "DescribeInstances" => instances::describe_instances(&c, input),
            "DescribeInstanceStatus" => instances::describe_instance_status(&c, input),
            "StartInstances" => instances::start_instances(&c, input),
            "StopInstances" => instances::stop_instances(&c, input),
            "RebootInstances" => instances::reboot_instances(&c, input),
            "TerminateInstances" => instances::terminate_instances(&c, input),
            "ModifyInstanceAttribute" => instances::modify_instance_attribute(&c, input),
            "DescribeInstanceAttribute" => instances::describe_instance_attribute(&c, input),
            "GetConsoleOutput" => instances::get_console_output(&c, input),
            // Tags
            "CreateTags" => tags::create_tags(&c, input),
            "DeleteTags" => tags::delete_tags(&c, input),
            "DescribeTags" => tags::describe_tags(&c, input),
            // Launch templates
            "CreateLaunchTemplate" => launch_templates::create_launch_template(&c, input),
            "CreateLaunchTemplateVersion" => {
                launch_templates::create_launch_template_version(&c, input)
            }
            "DescribeLaunchTemplates" => launch_templates::describe_launch_templates(&c, input),
            "DescribeLaunchTemplateVersions" => {
                launch_templates::describe_launch_template_versions(&c, input)
            }
            "ModifyLaunchTemplate" => launch_templates::modify_launch_template(&c, input),
            "DeleteLaunchTemplate" => launch_templates::delete_launch_template(&c, input),
            "DeleteLaunchTemplateVersions" => {
                launch_templates::delete_launch_template_versions(&c, input)
            }
            "GetLaunchTemplateData" => launch_templates::get_launch_template_data(&c, input),
            // Storage attached to instances, instance store, custom AMIs (CreateImage)
            "AttachVolume" => storage::attach_volume(&c, input),
            "DetachVolume" => storage::detach_volume(&c, input),
            "CreateImage" => ami::create_image(&c, input),
            // (storage helper: add operations here)
            // Purchasing options, tenancy, dedicated hosts, billing
            // (purchasing helper: add operations here)
            "RequestSpotInstances" => spot::request_spot_instances(&c, input),
            "DescribeSpotInstanceRequests" => spot::describe_spot_instance_requests(&c, input),
            "CancelSpotInstanceRequests" => spot::cancel_spot_instance_requests(&c, input),
            "DescribeSpotPriceHistory" => spot::describe_spot_price_history(&c, input),
            "DescribeReservedInstancesOfferings" => {
                reserved::describe_reserved_instances_offerings(&c, input)
            }
            "PurchaseReservedInstancesOffering" => {
                reserved::purchase_reserved_instances_offering(&c, input)
            }
            "DescribeReservedInstances" => reserved::describe_reserved_instances(&c, input),
            "DescribeScheduledInstanceAvailability" => {
                reserved::describe_scheduled_instance_availability(&c, input)
            }
            "PurchaseScheduledInstances" => reserved::purchase_scheduled_instances(&c, input),
            "DescribeScheduledInstances" => reserved::describe_scheduled_instances(&c, input),
            "RunScheduledInstances" => reserved::run_scheduled_instances(&c, input),
            "CreateCapacityReservation" => capacity::create_capacity_reservation(&c, input),
            "DescribeCapacityReservations" => capacity::describe_capacity_reservations(&c, input),
            "ModifyCapacityReservation" => capacity::modify_capacity_reservation(&c, input),
            "CancelCapacityReservation" => capacity::cancel_capacity_reservation(&c, input),
            "AllocateHosts" => hosts::allocate_hosts(&c, input),
            "DescribeHosts" => hosts::describe_hosts(&c, input),
            "ReleaseHosts" => hosts::release_hosts(&c, input),
            "ModifyHosts" => hosts::modify_hosts(&c, input),
            "ModifyInstancePlacement" => hosts::modify_instance_placement(&c, input),
            // Security-group enforcement
            // (firewall helper: add operations here)
            other => Err(ApiError::not_implemented("ec2", other)),
        }
    }
}

// ---- tables ----

pub(crate) const VPCS: &str = "ec2_vpcs";
pub(crate) const SUBNETS: &str = "ec2_subnets";
pub(crate) const SGS: &str = "ec2_security_groups";
pub(crate) const KEY_PAIRS: &str = "ec2_key_pairs";
pub(crate) const IMAGES: &str = "ec2_images";
pub(crate) const VOLUMES: &str = "ec2_volumes";
pub(crate) const VOLUME_MODS: &str = "ec2_volume_modifications";
pub(crate) const SNAPSHOTS: &str = "ec2_snapshots";
pub(crate) const TAGS: &str = "ec2_tags";
pub(crate) const META: &str = "ec2_meta";
pub(crate) const INSTANCES: &str = "ec2_instances";
pub(crate) const LAUNCH_TEMPLATES: &str = "ec2_launch_templates";

/// What a handler works with.
pub(crate) struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub scope: Scope,
    pub req: &'a RequestContext,
    pub data_dir: &'a Path,
    pub exec: Option<&'a Arc<instances::Exec>>,
    /// The instance index ([`instances::InstanceIndex`]).
    pub index: &'a instances::InstanceIndex,
}

impl Ctx<'_> {
    pub fn account(&self) -> &str {
        &self.req.account
    }

    pub fn region(&self) -> &str {
        &self.req.region
    }

    pub fn get<T: DeserializeOwned>(&self, table: &str, key: &str) -> Result<Option<T>, ApiError> {
        self.store
            .get_json(&self.scope, table, key)
            .map_err(store_error)
    }

    pub fn get_in<T: DeserializeOwned>(
        &self,
        scope: &Scope,
        table: &str,
        key: &str,
    ) -> Result<Option<T>, ApiError> {
        self.store.get_json(scope, table, key).map_err(store_error)
    }

    pub fn put<T: Serialize>(&self, table: &str, key: &str, value: &T) -> Result<(), ApiError> {
        self.store
            .put_json(&self.scope, table, key, value)
            .map_err(store_error)
    }

    pub fn delete(&self, table: &str, key: &str) -> Result<bool, ApiError> {
        self.store
            .delete(&self.scope, table, key)
            .map_err(store_error)
    }

    /// The instance index of this account and region.
    pub fn ix<R>(&self, f: impl FnOnce(&mut instances::ScopeIndex) -> R) -> Result<R, ApiError> {
        self.index.with(self.store, &self.scope, f)
    }

    /// Write an instance record (and keep the index in step).
    pub fn save_instance(&self, rec: &InstanceRecord) -> Result<(), ApiError> {
        instances::save(self.store, self.index, rec)
    }

    /// Every record of `table` in this account and region, by key.
    pub fn all<T: DeserializeOwned>(&self, table: &str) -> Result<Vec<(String, T)>, ApiError> {
        scan_all(self.store, &self.scope, table)
    }
}

/// Every record of `table` in `scope`, by key.
pub(crate) fn scan_all<T: DeserializeOwned>(
    store: &dyn Store,
    scope: &Scope,
    table: &str,
) -> Result<Vec<(String, T)>, ApiError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, more) = store
            .scan_json::<T>(scope, table, "", after.as_deref(), 1000)
            .map_err(store_error)?;
        after = page.last().map(|(k, _)| k.clone());
        out.extend(page);
        if !more || after.is_none() {
            break;
        }
    }
    Ok(out)
}

// ---- input helpers ----

pub(crate) fn opt_str<'v>(input: &'v Value, key: &str) -> Option<&'v str> {
    input.get(key).and_then(Value::as_str)
}

pub(crate) fn req_str<'v>(input: &'v Value, key: &str) -> Result<&'v str, ApiError> {
    opt_str(input, key)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("MissingParameter", key))
}

pub(crate) fn opt_i64(input: &Value, key: &str) -> Option<i64> {
    input.get(key).and_then(Value::as_i64)
}

pub(crate) fn opt_bool(input: &Value, key: &str) -> Option<bool> {
    input.get(key).and_then(Value::as_bool)
}

/// A non-empty list member, else `MissingParameter`.
pub(crate) fn req_list(input: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    let l = str_list(input, key);
    if l.is_empty() {
        return Err(ApiError::missing("MissingParameter", key));
    }
    Ok(l)
}

pub(crate) use crate::common::check_dry_run as check_dry_run_v;

pub(crate) fn str_list(input: &Value, key: &str) -> Vec<String> {
    input
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn invalid_value(message: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterValue", message)
}

pub(crate) fn now() -> f64 {
    fc_protocol::value::now_secs()
}

/// `prefix-` + 8 or 17 hex digits, else `<code>` "Invalid id: ..." (e.g. `InvalidVolumeID.Malformed`).
pub(crate) fn check_id(id: &str, prefix: &str, code: &str) -> Result<(), ApiError> {
    if fc_types::ids::is_ec2_id(id, prefix) {
        Ok(())
    } else {
        Err(ApiError::client(
            code,
            format!("Invalid id: \"{id}\" (expecting \"{prefix}-...\")"),
        ))
    }
}

/// A deterministic EC2-style id from `seed` (catalog AMIs and their snapshots).
pub(crate) fn stable_id(prefix: &str, seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(seed.as_bytes()));
    format!("{prefix}-0{}", &h[..16])
}

/// The account's default EBS KMS key (`alias/aws/ebs`) in a region, as an ARN.
pub(crate) fn default_kms_key(account: &str, region: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(format!("ebs/{account}/{region}").as_bytes()));
    format!(
        "arn:aws:kms:{region}:{account}:key/{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

// ---- filters ----

/// The filters of an input, with names checked against `known` (names ending in `*` match a
/// prefix; `tag:` filters are always allowed when `taggable`).
pub(crate) fn filters(
    input: &Value,
    known: &[&str],
    taggable: bool,
) -> Result<Vec<Filter>, ApiError> {
    let fs = fc_types::filter::from_value(input.get("Filters"));
    for f in &fs {
        let tag = taggable
            && (f.name.starts_with("tag:") || f.name == "tag-key" || f.name == "tag-value");
        let ok = tag
            || known.iter().any(|k| match k.strip_suffix('*') {
                Some(p) => f.name.starts_with(p),
                None => *k == f.name,
            });
        if !ok {
            return Err(ApiError::client(
                "InvalidParameterValue",
                format!("The filter '{}' is invalid", f.name),
            ));
        }
    }
    Ok(fs)
}

/// Whether a resource passes `filters`; `field` gives its values for a (non-tag) filter name.
pub(crate) fn matches(
    filters: &[Filter],
    tags: &[(String, String)],
    field: impl Fn(&str) -> Option<Vec<String>>,
) -> bool {
    fc_types::filter::matches(filters, |name| {
        fc_types::filter::tag_field(name, tags).or_else(|| field(name))
    })
}

pub(crate) fn one(s: impl Into<String>) -> Option<Vec<String>> {
    Some(vec![s.into()])
}

pub(crate) fn bool_s(b: bool) -> Option<Vec<String>> {
    Some(vec![b.to_string()])
}

// ---- pagination ----

/// A page of `items` (sorted by their keys) after `NextToken`, at most `MaxResults`
/// (checked against `min..=max`; absent: all, or `default` when given).
pub(crate) fn paginate(
    ctx: &Ctx<'_>,
    input: &Value,
    items: Vec<(String, Value)>,
    (min, max): (i64, i64),
    default: Option<usize>,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let scope = format!("ec2:{}", ctx.req.operation);
    let limit = match opt_i64(input, "MaxResults") {
        Some(n) if n < min || n > max => {
            return Err(invalid_value(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}."
            )))
        }
        Some(n) => Some(n as usize),
        None => default,
    };
    let after =
        match opt_str(input, "NextToken").filter(|t| !t.is_empty()) {
            Some(t) => Some(fc_types::page::decode(&scope, t).map_err(|_| {
                ApiError::client("InvalidNextToken", "The specified token is invalid")
            })?),
            None => None,
        };
    let mut items: Vec<(String, Value)> = match &after {
        Some(a) => items.into_iter().filter(|(k, _)| k > a).collect(),
        None => items,
    };
    let mut next = None;
    if let Some(limit) = limit {
        if items.len() > limit {
            items.truncate(limit);
            next = items.last().map(|(k, _)| fc_types::page::encode(&scope, k));
        }
    }
    Ok((items.into_iter().map(|(_, v)| v).collect(), next))
}

/// An output object with `key: items` and `NextToken` when there is one.
pub(crate) fn page_output(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = json!({ key: items });
    if let Some(t) = next {
        out["NextToken"] = Value::String(t);
    }
    out
}

// ---- tags ----

/// Tags from `TagSpecifications` for `resource_type`, validated.
pub(crate) fn spec_tags(
    input: &Value,
    resource_type: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    if let Some(specs) = input.get("TagSpecifications").and_then(Value::as_array) {
        for s in specs {
            if let Some(rt) = s.get("ResourceType").and_then(Value::as_str) {
                if !tags::known_resource_type(rt) {
                    return Err(invalid_value(format!(
                        "'{rt}' is not a valid taggable resource type for this operation."
                    )));
                }
            }
        }
    }
    let t = fc_types::tags::from_specifications(input.get("TagSpecifications"), resource_type);
    fc_types::tags::validate_all(&t).map_err(|e| invalid_value(e.to_string()))?;
    Ok(t)
}

pub(crate) fn tags_value(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// Put `Tags` on an output object when there are any.
pub(crate) fn with_tags(mut v: Value, tags: &[(String, String)]) -> Value {
    if !tags.is_empty() {
        v["Tags"] = tags_value(tags);
    }
    v
}
