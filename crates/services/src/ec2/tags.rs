//! Tags on every EC2 resource: one record per resource id in `ec2_tags` (per account and region:
//! tags on a shared or public resource are the tagging account's own). `CreateTags`,
//! `DeleteTags`, `DescribeTags`; the resource-id prefix decides the resource type.

use super::{
    check_dry_run_v, filters, images, invalid_value, key_pairs, one, page_output, paginate,
    req_list, security_groups, Ctx, SNAPSHOTS, SUBNETS, TAGS, VOLUMES, VPCS,
};
use crate::common::store_error;
use fc_protocol::ApiError;
use fc_store::StoreExt;
use serde_json::{json, Value};

/// At most this many tags per resource.
const MAX_TAGS: usize = 50;

/// Resource types `TagSpecifications` may name.
pub(crate) fn known_resource_type(rt: &str) -> bool {
    matches!(
        rt,
        "vpc"
            | "subnet"
            | "security-group"
            | "security-group-rule"
            | "key-pair"
            | "image"
            | "volume"
            | "snapshot"
            | "instance"
            | "network-interface"
            | "dhcp-options"
            | "launch-template"
            | "spot-instances-request"
            | "capacity-reservation"
            | "dedicated-host"
    )
}

/// The resource type of an id, by its prefix.
pub(crate) fn resource_type(id: &str) -> Option<&'static str> {
    let prefix = id.split_once('-').map(|(p, _)| p)?;
    Some(match prefix {
        "vpc" => "vpc",
        "subnet" => "subnet",
        "sg" => "security-group",
        "sgr" => "security-group-rule",
        "key" => "key-pair",
        "ami" => "image",
        "vol" => "volume",
        "snap" => "snapshot",
        "i" => "instance",
        "eni" => "network-interface",
        "dopt" => "dhcp-options",
        "lt" => "launch-template",
        "sir" => "spot-instances-request",
        "cr" => "capacity-reservation",
        "h" => "dedicated-host",
        _ => return None,
    })
}

/// The tags of a resource.
pub(crate) fn get(c: &Ctx<'_>, id: &str) -> Result<Vec<(String, String)>, ApiError> {
    Ok(c.get::<Vec<(String, String)>>(TAGS, id)?
        .unwrap_or_default())
}

/// Replace the tags of a resource (none: drop the record).
pub(crate) fn set(c: &Ctx<'_>, id: &str, tags: &[(String, String)]) -> Result<(), ApiError> {
    if tags.is_empty() {
        c.delete(TAGS, id)?;
        Ok(())
    } else {
        c.put(TAGS, id, &tags.to_vec())
    }
}

/// Add tags to a resource being created.
pub(crate) fn add(c: &Ctx<'_>, id: &str, new: &[(String, String)]) -> Result<(), ApiError> {
    if new.is_empty() {
        return Ok(());
    }
    let mut t = get(c, id)?;
    fc_types::tags::merge(&mut t, new);
    set(c, id, &t)
}

/// Forget the tags of a deleted resource.
pub(crate) fn drop_all(c: &Ctx<'_>, id: &str) -> Result<(), ApiError> {
    c.delete(TAGS, id)?;
    Ok(())
}

fn not_found(id: &str, rt: &str) -> ApiError {
    let (code, msg) = match rt {
        "vpc" => (
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{id}' does not exist"),
        ),
        "subnet" => (
            "InvalidSubnetID.NotFound",
            format!("The subnet ID '{id}' does not exist"),
        ),
        "security-group" => (
            "InvalidGroup.NotFound",
            format!("The security group '{id}' does not exist"),
        ),
        "security-group-rule" => (
            "InvalidSecurityGroupRuleId.NotFound",
            format!("The security group rule ID '{id}' does not exist"),
        ),
        "key-pair" => (
            "InvalidKeyPair.NotFound",
            format!("The key pair '{id}' does not exist"),
        ),
        "image" => (
            "InvalidAMIID.NotFound",
            format!("The image id '[{id}]' does not exist"),
        ),
        "volume" => (
            "InvalidVolume.NotFound",
            format!("The volume '{id}' does not exist."),
        ),
        "snapshot" => (
            "InvalidSnapshot.NotFound",
            format!("The snapshot '{id}' does not exist."),
        ),
        "instance" => (
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{id}' does not exist"),
        ),
        "network-interface" => (
            "InvalidNetworkInterfaceID.NotFound",
            format!("The networkInterface ID '{id}' does not exist"),
        ),
        "launch-template" => (
            "InvalidLaunchTemplateId.NotFound",
            format!("The specified launch template, with template ID {id}, does not exist."),
        ),
        "spot-instances-request" => (
            "InvalidSpotInstanceRequestID.NotFound",
            format!("The spot instance request ID '{id}' does not exist"),
        ),
        "capacity-reservation" => (
            "InvalidCapacityReservationId.NotFound",
            format!("The capacity reservation ID '{id}' does not exist"),
        ),
        "dedicated-host" => (
            "InvalidHostID.NotFound",
            format!("The host ID '{id}' does not exist"),
        ),
        _ => ("InvalidID", format!("The ID '{id}' is not valid")),
    };
    ApiError::client(code, msg)
}

/// The resource type of `id` when the resource exists (and may be tagged by the caller).
fn check_resource(c: &Ctx<'_>, id: &str) -> Result<&'static str, ApiError> {
    let Some(rt) = resource_type(id) else {
        return Err(ApiError::client(
            "InvalidID",
            format!("The ID '{id}' is not valid"),
        ));
    };
    let exists = match rt {
        "vpc" => c.get::<Value>(VPCS, id)?.is_some(),
        "subnet" => c.get::<Value>(SUBNETS, id)?.is_some(),
        "security-group" => security_groups::find(c, id)?.is_some(),
        "security-group-rule" => security_groups::find_rule(c, id)?.is_some(),
        "key-pair" => key_pairs::find_by_id(c, id)?.is_some(),
        "image" => images::visible(c, id)?.is_some(),
        "volume" => c.get::<Value>(VOLUMES, id)?.is_some(),
        "snapshot" => c.get::<Value>(SNAPSHOTS, id)?.is_some(),
        "dhcp-options" => id == super::vpcs::DHCP_OPTIONS_ID,
        "instance" => c.get::<Value>(super::INSTANCES, id)?.is_some(),
        "launch-template" => c.get::<Value>(super::LAUNCH_TEMPLATES, id)?.is_some(),
        "spot-instances-request" => c.get::<Value>(super::spot::SPOT_REQUESTS, id)?.is_some(),
        "capacity-reservation" => c.get::<Value>(super::capacity::RESERVATIONS, id)?.is_some(),
        "dedicated-host" => c.get::<Value>(super::hosts::HOSTS, id)?.is_some(),
        _ => false,
    };
    if exists {
        Ok(rt)
    } else {
        Err(not_found(id, rt))
    }
}

fn input_tags(input: &Value) -> Vec<(String, String)> {
    fc_types::tags::from_list(input.get("Tags"))
}

pub(crate) fn create_tags(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let resources = req_list(input, "Resources")?;
    let new = input_tags(input);
    if input.get("Tags").is_none() {
        return Err(ApiError::missing("MissingParameter", "Tags"));
    }
    fc_types::tags::validate_all(&new).map_err(|e| invalid_value(e.to_string()))?;
    for r in &resources {
        check_resource(c, r)?;
    }
    check_dry_run_v(input)?;
    for r in &resources {
        let mut t = get(c, r)?;
        fc_types::tags::merge(&mut t, &new);
        if t.len() > MAX_TAGS {
            return Err(ApiError::client(
                "TagLimitExceeded",
                format!("The maximum number of Tags for a resource has been reached ({MAX_TAGS})."),
            ));
        }
        set(c, r, &t)?;
    }
    Ok(json!({}))
}

pub(crate) fn delete_tags(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let resources = req_list(input, "Resources")?;
    for r in &resources {
        if resource_type(r).is_none() {
            return Err(ApiError::client(
                "InvalidID",
                format!("The ID '{r}' is not valid"),
            ));
        }
    }
    check_dry_run_v(input)?;
    // `Tags` absent: all tags. A tag with a value: only when the value matches. A tag without
    // `Value`: whatever its value.
    let wanted: Option<Vec<(String, Option<String>)>> =
        input.get("Tags").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|t| {
                    let k = t.get("Key")?.as_str()?.to_string();
                    let v = t.get("Value").and_then(Value::as_str).map(str::to_string);
                    Some((k, v))
                })
                .collect()
        });
    for r in &resources {
        let t = get(c, r)?;
        let kept: Vec<(String, String)> = match &wanted {
            None => Vec::new(),
            Some(w) => t
                .into_iter()
                .filter(|(k, v)| {
                    !w.iter()
                        .any(|(wk, wv)| wk == k && (wv.is_none() || wv.as_ref() == Some(v)))
                })
                .collect(),
        };
        set(c, r, &kept)?;
    }
    Ok(json!({}))
}

pub(crate) fn describe_tags(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &["key", "value", "resource-id", "resource-type"],
        false,
    )?;
    check_dry_run_v(input)?;
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, more) = c
            .store
            .scan_json::<Vec<(String, String)>>(&c.scope, TAGS, "", after.as_deref(), 1000)
            .map_err(store_error)?;
        after = page.last().map(|(k, _)| k.clone());
        for (id, tags) in page {
            let rt = resource_type(&id).unwrap_or("");
            for (k, v) in tags {
                let ok = fc_types::filter::matches(&fs, |name| match name {
                    "key" => one(k.clone()),
                    "value" => one(v.clone()),
                    "resource-id" => one(id.clone()),
                    "resource-type" => one(rt),
                    _ => None,
                });
                if ok {
                    items.push((
                        format!("{id}\u{0}{k}"),
                        json!({"ResourceId": id, "ResourceType": rt, "Key": k, "Value": v}),
                    ));
                }
            }
        }
        if !more {
            break;
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("Tags", page, next))
}
