//! Dedicated Hosts and instance placement: `AllocateHosts`, `DescribeHosts`, `ReleaseHosts`,
//! `ModifyHosts`, `ModifyInstancePlacement`, and the choice of a host for a launch with
//! tenancy `host`.
//!
//! A host's shape (sockets, cores, vCPUs) is its family's row of the table in `prices.json`
//! (the family's `.metal` size, from the Dedicated Hosts configuration table of the EC2 docs).
//! Capacity rule: a host allocated for one instance type holds `host vCPUs / type vCPUs`
//! instances of that type; a host allocated for a family (`InstanceFamily`) holds any mix of
//! the family's sizes whose vCPUs add up to the host's. An instance occupies its host while
//! it is pending, running, stopping or shutting down; a stopped instance with affinity `host`
//! returns to the same host when it starts (refused when the host is full), one with affinity
//! `default` may land on any auto-placement host with room. A host is billed per second from
//! allocation to release (`HostUsage:<family>`); instances on it are not billed themselves.

use super::instances::InstanceRecord;
use super::purchasing::{self, Purchase, PURCHASES};
use super::{
    check_dry_run_v, filters, invalid_value, matches, now, one, opt_i64, opt_str, page_output,
    paginate, req_list, req_str, scan_all, tags, vpcs, with_tags, Ctx, INSTANCES,
};
use crate::costs::Line;
use fc_protocol::value::epoch_value;
use fc_protocol::ApiError;
use fc_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

pub(crate) const HOSTS: &str = "ec2_hosts";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostRecord {
    pub id: String,
    pub owner: String,
    pub region: String,
    pub az: String,
    pub az_id: String,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub instance_family: Option<String>,
    pub auto_placement: String,
    pub host_recovery: String,
    /// `available`, `released`.
    pub state: String,
    pub allocation_time: f64,
    #[serde(default)]
    pub release_time: Option<f64>,
    #[serde(default)]
    pub client_token: Option<String>,
    pub sockets: u32,
    pub cores: u32,
    pub vcpus: u32,
}

impl HostRecord {
    fn family(&self) -> String {
        match (&self.instance_family, &self.instance_type) {
            (Some(f), _) => f.clone(),
            (None, Some(t)) => purchasing::family(t).to_string(),
            _ => String::new(),
        }
    }

    /// Whether an instance of `itype` may run here.
    fn accepts(&self, itype: &str) -> bool {
        match (&self.instance_type, &self.instance_family) {
            (Some(t), _) => t == itype,
            (None, Some(f)) => purchasing::family(itype) == f,
            _ => false,
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidHostID.NotFound",
        format!("The host ID '{id}' does not exist"),
    )
}

fn find(c: &Ctx<'_>, id: &str) -> Result<HostRecord, ApiError> {
    if !fc_types::ids::is_ec2_id(id, "h") {
        return Err(ApiError::client(
            "InvalidHostID.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"h-...\")"),
        ));
    }
    c.get::<HostRecord>(HOSTS, id)?.ok_or_else(|| not_found(id))
}

fn occupies(state: &str) -> bool {
    matches!(state, "pending" | "running" | "stopping" | "shutting-down")
}

/// The instances on each host (occupying it), but `except`.
fn occupants(
    c: &Ctx<'_>,
    except: &[String],
) -> Result<HashMap<String, Vec<InstanceRecord>>, ApiError> {
    // The instance index knows who occupies which host; only those records are read.
    let mut out: HashMap<String, Vec<InstanceRecord>> = HashMap::new();
    for (h, ids) in c.ix(|ix| ix.host_occupants())? {
        for id in ids {
            if except.contains(&id) {
                continue;
            }
            if let Some(r) = c.get::<InstanceRecord>(INSTANCES, &id)? {
                if occupies(&r.state) {
                    out.entry(h.clone()).or_default().push(r);
                }
            }
        }
    }
    for l in out.values_mut() {
        l.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    }
    Ok(out)
}

/// How many more instances of `vcpus` fit on `h` (with `used` vCPUs taken).
fn room(h: &HostRecord, used: u32, vcpus: u32) -> u32 {
    h.vcpus.saturating_sub(used) / vcpus.max(1)
}

/// Hosts for `n` instances of `itype` in zone `az`: on `host_id`, or on auto-placement hosts
/// with room. Instances in `except` do not count as occupants (one being started again).
pub(crate) fn place(
    c: &Ctx<'_>,
    itype: &str,
    vcpus: u32,
    az: &str,
    host_id: Option<&str>,
    n: usize,
    except: &[String],
) -> Result<Vec<String>, ApiError> {
    if let Some(id) = host_id {
        let h = find(c, id)?;
        if h.state != "available" {
            return Err(ApiError::client(
                "InvalidHostState",
                format!(
                    "The Dedicated Host {id} must be in the available state (it is {}).",
                    h.state
                ),
            ));
        }
        if h.az != az {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                format!(
                    "The Dedicated Host {id} is in Availability Zone {}, not in {az}.",
                    h.az
                ),
            ));
        }
        if !h.accepts(itype) {
            return Err(invalid_value(format!(
                "Instance type {itype} is not supported on the Dedicated Host {id}."
            )));
        }
        if (room(&h, c.ix(|ix| ix.host_vcpus(id, except))?, vcpus) as usize) < n {
            return Err(ApiError::client(
                "InsufficientCapacityOnHost",
                format!(
                    "Dedicated host {id} has insufficient capacity to launch the instances in this request."
                ),
            ));
        }
        return Ok(vec![id.to_string(); n]);
    }
    let mut hosts: Vec<HostRecord> = c
        .all::<HostRecord>(HOSTS)?
        .into_iter()
        .map(|(_, h)| h)
        .filter(|h| {
            h.state == "available" && h.auto_placement == "on" && h.az == az && h.accepts(itype)
        })
        .collect();
    hosts.sort_by(|a, b| a.allocation_time.total_cmp(&b.allocation_time));
    let mut out = Vec::new();
    for h in &hosts {
        let mut used = c.ix(|ix| ix.host_vcpus(&h.id, except))?;
        while out.len() < n && room(h, used, vcpus) > 0 {
            used += vcpus;
            out.push(h.id.clone());
        }
    }
    if out.len() < n {
        return Err(ApiError::client(
            "IncompatibleHostRequirements",
            "There are no available or compatible Dedicated Hosts available on which to launch or start the instance. You do not have a host with a matching configuration and sufficient capacity with auto-placement on; allocate a host or target one.",
        ));
    }
    Ok(out)
}

fn host_value(c: &Ctx<'_>, h: &HostRecord, on: &[InstanceRecord]) -> Result<Value, ApiError> {
    let used = on.iter().map(|r| r.vcpus).sum::<u32>();
    let types: Vec<(String, u32)> = match &h.instance_type {
        Some(t) => vec![(
            t.clone(),
            super::instance_types::instance_type(t)
                .map(|i| i.vcpus)
                .unwrap_or(1),
        )],
        None => {
            let fam = h.family();
            let mut v: Vec<(String, u32)> = purchasing::priced_types()
                .into_iter()
                .filter(|t| purchasing::family(t) == fam)
                .filter_map(|t| {
                    super::instance_types::instance_type(&t).map(|i| (t.clone(), i.vcpus))
                })
                .collect();
            v.sort_by_key(|(_, vc)| *vc);
            v
        }
    };
    let released = h.state != "available";
    let capacity: Vec<Value> = types
        .iter()
        .map(|(t, vc)| {
            json!({
                "InstanceType": t,
                "AvailableCapacity": if released { 0 } else { room(h, used, *vc) },
                "TotalCapacity": h.vcpus / (*vc).max(1),
            })
        })
        .collect();
    let mut props = json!({
        "Cores": h.cores,
        "Sockets": h.sockets,
        "TotalVCpus": h.vcpus,
    });
    match (&h.instance_type, &h.instance_family) {
        (Some(t), _) => props["InstanceType"] = json!(t),
        (None, Some(f)) => props["InstanceFamily"] = json!(f),
        _ => {}
    }
    let mut v = json!({
        "HostId": h.id,
        "AutoPlacement": h.auto_placement,
        "AvailabilityZone": h.az,
        "AvailabilityZoneId": h.az_id,
        "AvailableCapacity": {
            "AvailableInstanceCapacity": capacity,
            "AvailableVCpus": if released { 0 } else { h.vcpus.saturating_sub(used) },
        },
        "HostProperties": props,
        "Instances": on.iter().map(|r| json!({
            "InstanceId": r.instance_id, "InstanceType": r.instance_type, "OwnerId": r.owner_id,
        })).collect::<Vec<_>>(),
        "State": h.state,
        "AllocationTime": epoch_value(h.allocation_time),
        "HostRecovery": h.host_recovery,
        "AllowsMultipleInstanceTypes": if h.instance_family.is_some() { "on" } else { "off" },
        "OwnerId": h.owner,
        "MemberOfServiceLinkedResourceGroup": false,
        "HostMaintenance": "off",
    });
    if let Some(t) = h.release_time {
        v["ReleaseTime"] = epoch_value(t);
    }
    if let Some(t) = &h.client_token {
        v["ClientToken"] = json!(t);
    }
    Ok(with_tags(v, &tags::get(c, &h.id)?))
}

fn on_off(input: &Value, key: &str, default: &str) -> Result<String, ApiError> {
    let v = opt_str(input, key).unwrap_or(default);
    if v != "on" && v != "off" {
        let code = if key == "AutoPlacement" {
            "InvalidAutoPlacement"
        } else {
            "InvalidParameterValue"
        };
        return Err(ApiError::client(
            code,
            format!("Value ({v}) for parameter {key} is invalid."),
        ));
    }
    Ok(v.to_string())
}

pub(crate) fn allocate_hosts(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let zname = opt_str(input, "AvailabilityZone")
        .or(opt_str(input, "AvailabilityZoneId"))
        .ok_or_else(|| ApiError::missing("MissingParameter", "AvailabilityZone"))?;
    let zone = vpcs::zone(c.region(), zname)
        .ok_or_else(|| invalid_value(format!("Invalid availability zone: [{zname}]")))?;
    let itype = opt_str(input, "InstanceType").filter(|s| !s.is_empty());
    let ifam = opt_str(input, "InstanceFamily").filter(|s| !s.is_empty());
    let family = match (itype, ifam) {
        (Some(_), Some(_)) => {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                "Specify either InstanceType or InstanceFamily, not both.",
            ))
        }
        (None, None) => return Err(ApiError::missing("MissingParameter", "InstanceType")),
        (Some(t), None) => {
            let info = super::instance_types::instance_type(t)
                .ok_or_else(|| invalid_value(format!("Invalid value '{t}' for InstanceType.")))?;
            if info.raw["DedicatedHostsSupported"].as_bool() != Some(true) {
                return Err(ApiError::client(
                    "InvalidHostConfiguration",
                    format!("Dedicated Hosts are not supported for instance type {t}."),
                ));
            }
            purchasing::family(t).to_string()
        }
        (None, Some(f)) => f.to_string(),
    };
    let shape = purchasing::host_shape(&family).ok_or_else(|| {
        ApiError::client(
            "InvalidInstanceFamily",
            format!("Dedicated Hosts are not supported for instance family {family}."),
        )
    })?;
    let quantity = opt_i64(input, "Quantity").unwrap_or(1);
    if !(1..=100).contains(&quantity) {
        return Err(ApiError::client(
            "InvalidQuantity",
            format!("Value ({quantity}) for parameter quantity is invalid. Expected a value between 1 and 100."),
        ));
    }
    let auto = on_off(input, "AutoPlacement", "off")?;
    let recovery = on_off(input, "HostRecovery", "off")?;
    let token = opt_str(input, "ClientToken").filter(|s| !s.is_empty());
    if let Some(t) = token {
        let same: Vec<String> = c
            .all::<HostRecord>(HOSTS)?
            .into_iter()
            .filter(|(_, h)| h.client_token.as_deref() == Some(t))
            .map(|(id, _)| id)
            .collect();
        if !same.is_empty() {
            check_dry_run_v(input)?;
            return Ok(json!({"HostIds": same}));
        }
    }
    let tag_list =
        fc_types::tags::from_specifications(input.get("TagSpecifications"), "dedicated-host");
    fc_types::tags::validate_all(&tag_list).map_err(|e| invalid_value(e.to_string()))?;
    check_dry_run_v(input)?;
    let mut ids = Vec::new();
    for _ in 0..quantity {
        let id = fc_types::ids::ec2_id("h");
        let h = HostRecord {
            id: id.clone(),
            owner: c.account().to_string(),
            region: c.region().to_string(),
            az: zone.name.clone(),
            az_id: zone.id.clone(),
            instance_type: itype.map(str::to_string),
            instance_family: if itype.is_none() {
                Some(family.clone())
            } else {
                None
            },
            auto_placement: auto.clone(),
            host_recovery: recovery.clone(),
            state: "available".into(),
            allocation_time: now(),
            release_time: None,
            client_token: token.map(str::to_string),
            sockets: shape.sockets,
            cores: shape.cores,
            vcpus: shape.vcpus,
        };
        c.put(HOSTS, &id, &h)?;
        tags::add(c, &id, &tag_list)?;
        ids.push(id);
    }
    Ok(json!({"HostIds": ids}))
}

const FILTERS: &[&str] = &[
    "auto-placement",
    "availability-zone",
    "client-token",
    "host-reservation-id",
    "instance-type",
    "state",
    "host-recovery",
];

pub(crate) fn describe_hosts(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let mut with_filters = input.clone();
    if let Some(f) = input.get("Filter") {
        with_filters["Filters"] = f.clone();
    }
    let fs = filters(&with_filters, FILTERS, true)?;
    let ids = super::str_list(input, "HostIds");
    let list: Vec<HostRecord> = if ids.is_empty() {
        c.all::<HostRecord>(HOSTS)?
            .into_iter()
            .map(|(_, h)| h)
            .collect()
    } else {
        ids.iter().map(|i| find(c, i)).collect::<Result<_, _>>()?
    };
    check_dry_run_v(input)?;
    let occ = occupants(c, &[])?;
    let mut items = Vec::new();
    for h in list {
        let t = tags::get(c, &h.id)?;
        let ok = matches(&fs, &t, |n| match n {
            "auto-placement" => one(&h.auto_placement),
            "availability-zone" => one(&h.az),
            "client-token" => Some(h.client_token.clone().into_iter().collect()),
            "host-reservation-id" => Some(vec![]),
            "instance-type" => Some(h.instance_type.clone().into_iter().collect()),
            "state" => one(&h.state),
            "host-recovery" => one(&h.host_recovery),
            _ => None,
        });
        if ok {
            let on = occ.get(&h.id).cloned().unwrap_or_default();
            items.push((h.id.clone(), host_value(c, &h, &on)?));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 500), None)?;
    Ok(page_output("Hosts", page, next))
}

fn unsuccessful(id: &str, code: &str, message: String) -> Value {
    json!({"ResourceId": id, "Error": {"Code": code, "Message": message}})
}

pub(crate) fn release_hosts(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let ids = req_list(input, "HostIds")?;
    check_dry_run_v(input)?;
    let occ = occupants(c, &[])?;
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for id in ids {
        let Some(mut h) = c.get::<HostRecord>(HOSTS, &id)? else {
            bad.push(unsuccessful(
                &id,
                "Client.InvalidHostID.NotFound",
                format!("The host ID '{id}' does not exist"),
            ));
            continue;
        };
        if h.state != "available" {
            bad.push(unsuccessful(
                &id,
                "Client.InvalidHost.Released",
                format!("Dedicated host '{id}' has already been released"),
            ));
            continue;
        }
        if occ.get(&id).is_some_and(|l| !l.is_empty()) {
            bad.push(unsuccessful(
                &id,
                "Client.InvalidHost.Occupied",
                format!("Dedicated host '{id}' cannot be released as it is occupied"),
            ));
            continue;
        }
        let t = now();
        purchasing::accrue(
            c.store,
            &h.owner,
            &h.region,
            &h.id,
            &format!("HostUsage:{}", h.family()),
            t - h.allocation_time,
            purchasing::host_rate(&h.family(), &h.region),
            t,
        );
        h.state = "released".into();
        h.release_time = Some(t);
        c.put(HOSTS, &id, &h)?;
        ok.push(id);
    }
    Ok(json!({"Successful": ok, "Unsuccessful": bad}))
}

pub(crate) fn modify_hosts(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let ids = req_list(input, "HostIds")?;
    let auto = match opt_str(input, "AutoPlacement") {
        Some(_) => Some(on_off(input, "AutoPlacement", "off")?),
        None => None,
    };
    let recovery = match opt_str(input, "HostRecovery") {
        Some(_) => Some(on_off(input, "HostRecovery", "off")?),
        None => None,
    };
    let itype = opt_str(input, "InstanceType").filter(|s| !s.is_empty());
    let ifam = opt_str(input, "InstanceFamily").filter(|s| !s.is_empty());
    if auto.is_none() && recovery.is_none() && itype.is_none() && ifam.is_none() {
        return Err(ApiError::missing("MissingParameter", "AutoPlacement"));
    }
    let occ = occupants(c, &[])?;
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for id in ids {
        let Some(mut h) = c.get::<HostRecord>(HOSTS, &id)? else {
            bad.push(unsuccessful(
                &id,
                "Client.InvalidHostID.NotFound",
                format!("The host ID '{id}' does not exist"),
            ));
            continue;
        };
        if h.state != "available" {
            bad.push(unsuccessful(
                &id,
                "Client.InvalidHost.Released",
                format!("Dedicated host '{id}' has been released"),
            ));
            continue;
        }
        if itype.is_some() || ifam.is_some() {
            if occ.get(&id).is_some_and(|l| !l.is_empty()) {
                bad.push(unsuccessful(
                    &id,
                    "Client.InvalidHost.Occupied",
                    format!("Dedicated host '{id}' is occupied: its instance type support cannot change"),
                ));
                continue;
            }
            let fam = itype
                .map(purchasing::family)
                .or(ifam)
                .unwrap_or_default()
                .to_string();
            if fam != h.family() {
                bad.push(unsuccessful(
                    &id,
                    "Client.InvalidParameterValue",
                    format!("The instance family of Dedicated host '{id}' cannot change"),
                ));
                continue;
            }
            h.instance_type = itype.map(str::to_string);
            h.instance_family = if itype.is_none() { Some(fam) } else { None };
        }
        if let Some(a) = &auto {
            h.auto_placement = a.clone();
        }
        if let Some(r) = &recovery {
            h.host_recovery = r.clone();
        }
        c.put(HOSTS, &id, &h)?;
        ok.push(id);
    }
    Ok(json!({"Successful": ok, "Unsuccessful": bad}))
}

pub(crate) fn modify_instance_placement(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "InstanceId")?;
    super::check_id(id, "i", "InvalidInstanceID.Malformed")?;
    let rec = c.get::<InstanceRecord>(INSTANCES, id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{id}' does not exist"),
        )
    })?;
    let mut p = c.get::<Purchase>(PURCHASES, id)?.unwrap_or_default();
    let tenancy = opt_str(input, "Tenancy").filter(|s| !s.is_empty());
    let host = opt_str(input, "HostId").filter(|s| !s.is_empty());
    let affinity = opt_str(input, "Affinity").filter(|s| !s.is_empty());
    if tenancy.is_none() && host.is_none() && affinity.is_none() {
        return Err(ApiError::missing("MissingParameter", "Tenancy"));
    }
    if rec.state != "stopped" {
        return Err(ApiError::client(
            "InvalidInstanceState",
            format!("The instance '{id}' is not in the 'stopped' state. Stop the instance before modifying its placement."),
        ));
    }
    if let Some(t) = tenancy {
        if !matches!(t, "dedicated" | "host" | "default") {
            return Err(invalid_value(format!(
                "Value ({t}) for parameter tenancy is invalid."
            )));
        }
    }
    if p.lifecycle.is_some() && (tenancy == Some("host") || host.is_some()) {
        return Err(ApiError::client(
            "InvalidParameterCombination",
            "Spot and Scheduled Instances cannot be placed on a Dedicated Host.",
        ));
    }
    let new_tenancy = tenancy.map(str::to_string).unwrap_or_else(|| {
        if host.is_some() {
            "host".into()
        } else {
            p.tenancy().to_string()
        }
    });
    if let Some(a) = affinity {
        if a != "default" && a != "host" {
            return Err(ApiError::client(
                "InvalidAffinity",
                format!("Value ({a}) for parameter affinity is invalid."),
            ));
        }
        if new_tenancy != "host" {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                "The parameter affinity cannot be used without specifying a tenancy of 'host'",
            ));
        }
    }
    if let Some(h) = host {
        place(
            c,
            &rec.instance_type,
            rec.vcpus,
            &rec.availability_zone,
            Some(h),
            1,
            &[id.to_string()],
        )?;
    }
    check_dry_run_v(input)?;
    p.tenancy = new_tenancy.clone();
    if new_tenancy == "host" {
        if let Some(h) = host {
            p.host_id = Some(h.to_string());
        }
        if let Some(a) = affinity {
            p.affinity = Some(a.to_string());
        }
    } else {
        p.host_id = None;
        p.affinity = None;
    }
    purchasing::save_purchase(c, id, &p)?;
    Ok(json!({"Return": true}))
}

/// Live ledger lines: every allocated host since its allocation.
pub(crate) fn live_lines(store: &dyn Store, t: f64) -> Vec<Line> {
    let mut out = Vec::new();
    for scope in store.scopes(HOSTS).unwrap_or_default() {
        let Ok(list) = scan_all::<HostRecord>(store, &scope, HOSTS) else {
            continue;
        };
        for (_, h) in list {
            if h.state != "available" {
                continue;
            }
            let fam = h.family();
            let hourly = purchasing::host_rate(&fam, &h.region);
            let q = (t - h.allocation_time).max(0.0);
            out.push(Line {
                account: h.owner.clone(),
                region: h.region.clone(),
                service: "ec2".into(),
                resource: h.id.clone(),
                usage_type: format!("HostUsage:{fam}"),
                unit: "seconds".into(),
                quantity: q,
                rate_usd: hourly / 3600.0,
                amount_usd: q * hourly / 3600.0,
                first: h.allocation_time,
                last: t,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(t: Option<&str>, f: Option<&str>, vcpus: u32) -> HostRecord {
        HostRecord {
            id: "h-0123456789abcdef0".into(),
            owner: "000000000000".into(),
            region: "us-east-1".into(),
            az: "us-east-1a".into(),
            az_id: "use1-az1".into(),
            instance_type: t.map(str::to_string),
            instance_family: f.map(str::to_string),
            auto_placement: "on".into(),
            host_recovery: "off".into(),
            state: "available".into(),
            allocation_time: 0.0,
            release_time: None,
            client_token: None,
            sockets: 2,
            cores: 48,
            vcpus,
        }
    }

    #[test]
    fn capacity_is_host_vcpus_over_type_vcpus() {
        let h = host(Some("m5.large"), None, 96);
        assert_eq!(room(&h, 0, 2), 48);
        assert_eq!(room(&h, 94, 2), 1);
        assert_eq!(room(&h, 96, 2), 0);
        assert!(h.accepts("m5.large"));
        assert!(!h.accepts("m5.xlarge"));
        let f = host(None, Some("m5"), 96);
        assert!(f.accepts("m5.24xlarge") && !f.accepts("c5.large"));
        assert_eq!(room(&f, 48, 96), 0);
        assert_eq!(room(&f, 48, 48), 1);
        let shape = purchasing::host_shape("m5").unwrap();
        assert_eq!((shape.sockets, shape.cores, shape.vcpus), (2, 48, 96));
    }
}
