//! On-Demand Capacity Reservations: `CreateCapacityReservation`,
//! `DescribeCapacityReservations`, `ModifyCapacityReservation`, `CancelCapacityReservation`,
//! and their consumption by launches.
//!
//! A reservation's used count is not stored: it is the number of pending or running instances
//! whose purchase record names it, so a stopped or terminated instance gives its slot back at
//! once. A launch that targets a reservation (`CapacityReservationTarget`) takes slots from it
//! or fails with `ReservationCapacityExceeded`; an untargeted launch (preference `open`, the
//! default) of default tenancy takes slots from active `open` reservations that match its
//! type, platform and zone, and runs as a plain on-demand instance when none has room.

use super::instances::InstanceRecord;
use super::purchasing::{self, Purchase};
use super::{
    check_dry_run_v, check_id, filters, invalid_value, matches, now, one, opt_bool, opt_i64,
    opt_str, page_output, paginate, req_str, tags, vpcs, with_tags, Ctx,
};
use fc_protocol::value::epoch_value;
use fc_protocol::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

pub(crate) const RESERVATIONS: &str = "ec2_capacity_reservations";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CapacityReservation {
    pub id: String,
    pub arn: String,
    pub owner: String,
    pub instance_type: String,
    pub platform: String,
    pub az: String,
    pub az_id: String,
    pub tenancy: String,
    pub total: i64,
    pub ebs_optimized: bool,
    /// `active`, `cancelled`, `expired`.
    pub state: String,
    pub start: f64,
    /// `unlimited` or `limited`.
    pub end_date_type: String,
    #[serde(default)]
    pub end_date: Option<f64>,
    /// `open` or `targeted`.
    pub match_criteria: String,
    pub create_date: f64,
}

impl CapacityReservation {
    /// The state now (a limited reservation past its end date has expired).
    fn current_state(&self) -> &str {
        if self.state == "active" && self.end_date.is_some_and(|e| e <= now()) {
            "expired"
        } else {
            &self.state
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidCapacityReservationId.NotFound",
        format!("The capacity reservation ID '{id}' does not exist"),
    )
}

fn find(c: &Ctx<'_>, id: &str) -> Result<CapacityReservation, ApiError> {
    check_id(id, "cr", "InvalidCapacityReservationId.Malformed")?;
    c.get::<CapacityReservation>(RESERVATIONS, id)?
        .ok_or_else(|| not_found(id))
}

/// Used slots per reservation: the active instances naming it.
/// (Counted by the instance index, kept in step with instance and purchase records.)
fn usage(c: &Ctx<'_>) -> Result<HashMap<String, i64>, ApiError> {
    c.ix(|ix| ix.cr_usage())
}

fn capacity_exceeded() -> ApiError {
    ApiError::client(
        "ReservationCapacityExceeded",
        "The targeted Capacity Reservation does not have enough available instance capacity to fulfill your request. Either increase the instance capacity for the targeted Capacity Reservation, or target a different Capacity Reservation.",
    )
}

/// A launch of `n` instances targeting reservation `id`: the reservation when it matches and
/// has room.
pub(crate) fn reserve_targeted(
    c: &Ctx<'_>,
    id: &str,
    itype: &str,
    az: &str,
    tenancy: &str,
    n: usize,
) -> Result<String, ApiError> {
    let cr = find(c, id)?;
    if cr.current_state() != "active" {
        return Err(invalid_value(format!(
            "The Capacity Reservation {id} is not active (it is {}).",
            cr.current_state()
        )));
    }
    if cr.instance_type != itype || cr.az != az || (tenancy != "default" && tenancy != cr.tenancy) {
        return Err(ApiError::client(
            "InvalidParameterCombination",
            format!(
                "The instance type, Availability Zone and tenancy of the instances must match those of the Capacity Reservation {id} ({}, {}, {}).",
                cr.instance_type, cr.az, cr.tenancy
            ),
        ));
    }
    let used = usage(c)?.get(id).copied().unwrap_or(0);
    if used + n as i64 > cr.total {
        return Err(capacity_exceeded());
    }
    Ok(cr.id)
}

/// An untargeted launch: for each instance, an open matching reservation with room, if any.
pub(crate) fn reserve_open(
    c: &Ctx<'_>,
    itype: &str,
    az: &str,
    n: usize,
) -> Result<Vec<Option<String>>, ApiError> {
    let mut list: Vec<CapacityReservation> = c
        .all::<CapacityReservation>(RESERVATIONS)?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| {
            r.current_state() == "active"
                && r.match_criteria == "open"
                && r.instance_type == itype
                && r.az == az
                && r.tenancy == "default"
                && r.platform.starts_with("Linux/UNIX")
        })
        .collect();
    if list.is_empty() {
        return Ok(vec![None; n]);
    }
    let mut used = usage(c)?;
    list.sort_by(|a, b| a.create_date.total_cmp(&b.create_date));
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let slot = list
            .iter()
            .find(|r| used.get(&r.id).copied().unwrap_or(0) < r.total);
        match slot {
            Some(r) => {
                *used.entry(r.id.clone()).or_default() += 1;
                out.push(Some(r.id.clone()));
            }
            None => out.push(None),
        }
    }
    Ok(out)
}

/// A stopped instance starts again: a targeted one needs a slot in its reservation; an open
/// one takes a slot if there is one.
pub(crate) fn on_start(c: &Ctx<'_>, r: &InstanceRecord, p: &mut Purchase) -> Result<(), ApiError> {
    let targeted = p.cr_id.is_some() && p.cr_preference.is_none();
    if targeted {
        if let Some(id) = p.cr_id.clone() {
            if let Some(cr) = c.get::<CapacityReservation>(RESERVATIONS, &id)? {
                if cr.current_state() == "active" {
                    let used = usage(c)?.get(&id).copied().unwrap_or(0);
                    if used + 1 > cr.total {
                        return Err(capacity_exceeded());
                    }
                    return Ok(());
                }
            }
            p.cr_id = None;
        }
        return Ok(());
    }
    if p.tenancy() == "default"
        && p.lifecycle.is_none()
        && p.cr_preference.as_deref() != Some("none")
    {
        p.cr_id = reserve_open(c, &r.instance_type, &r.availability_zone, 1)?
            .into_iter()
            .next()
            .flatten();
    }
    Ok(())
}

fn value(c: &Ctx<'_>, r: &CapacityReservation, used: i64) -> Result<Value, ApiError> {
    let available = if r.current_state() == "active" {
        (r.total - used).max(0)
    } else {
        0
    };
    let mut v = json!({
        "CapacityReservationId": r.id,
        "OwnerId": r.owner,
        "CapacityReservationArn": r.arn,
        "AvailabilityZoneId": r.az_id,
        "InstanceType": r.instance_type,
        "InstancePlatform": r.platform,
        "AvailabilityZone": r.az,
        "Tenancy": r.tenancy,
        "TotalInstanceCount": r.total,
        "AvailableInstanceCount": available,
        "EbsOptimized": r.ebs_optimized,
        "EphemeralStorage": false,
        "State": r.current_state(),
        "StartDate": epoch_value(r.start),
        "EndDateType": r.end_date_type,
        "InstanceMatchCriteria": r.match_criteria,
        "CreateDate": epoch_value(r.create_date),
        "CapacityAllocations": [{"AllocationType": "used", "Count": used}],
        "ReservationType": "default",
        "DeliveryPreference": "fixed",
    });
    if let Some(e) = r.end_date {
        v["EndDate"] = epoch_value(e);
    }
    Ok(with_tags(v, &tags::get(c, &r.id)?))
}

const PLATFORMS: &[&str] = &[
    "Linux/UNIX",
    "Red Hat Enterprise Linux",
    "SUSE Linux",
    "Windows",
    "Windows with SQL Server",
    "Windows with SQL Server Enterprise",
    "Windows with SQL Server Standard",
    "Windows with SQL Server Web",
    "Linux with SQL Server Standard",
    "Linux with SQL Server Web",
    "Linux with SQL Server Enterprise",
    "RHEL with SQL Server Standard",
    "RHEL with SQL Server Enterprise",
    "RHEL with SQL Server Web",
    "RHEL with HA",
    "RHEL with HA and SQL Server Standard",
    "RHEL with HA and SQL Server Enterprise",
    "Ubuntu Pro",
];

fn end_date(input: &Value, end_type: &str) -> Result<Option<f64>, ApiError> {
    let end = input
        .get("EndDate")
        .and_then(fc_protocol::value::value_to_epoch);
    match (end_type, end) {
        ("limited", None) => Err(invalid_value(
            "EndDate is required when EndDateType is 'limited'.",
        )),
        ("unlimited", Some(_)) => Err(invalid_value(
            "EndDate cannot be specified when EndDateType is 'unlimited'.",
        )),
        ("limited", Some(e)) if e <= now() => {
            Err(invalid_value("The EndDate must be in the future."))
        }
        ("limited" | "unlimited", e) => Ok(e),
        (other, _) => Err(invalid_value(format!(
            "Value ({other}) for parameter EndDateType is invalid."
        ))),
    }
}

pub(crate) fn create_capacity_reservation(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let itype = req_str(input, "InstanceType")?;
    let info = super::instance_types::instance_type(itype)
        .ok_or_else(|| invalid_value(format!("Invalid value '{itype}' for InstanceType.")))?;
    let platform = req_str(input, "InstancePlatform")?;
    if !PLATFORMS.contains(&platform) {
        return Err(invalid_value(format!(
            "Value ({platform}) for parameter InstancePlatform is invalid."
        )));
    }
    let zname = opt_str(input, "AvailabilityZone")
        .or(opt_str(input, "AvailabilityZoneId"))
        .ok_or_else(|| ApiError::missing("MissingParameter", "AvailabilityZone"))?;
    let zone = vpcs::zone(c.region(), zname)
        .ok_or_else(|| invalid_value(format!("Invalid availability zone: [{zname}]")))?;
    let count = opt_i64(input, "InstanceCount")
        .ok_or_else(|| ApiError::missing("MissingParameter", "InstanceCount"))?;
    if count < 1 {
        return Err(invalid_value(format!(
            "Value ({count}) for parameter InstanceCount is invalid. Expected a positive integer."
        )));
    }
    let tenancy = opt_str(input, "Tenancy").unwrap_or("default");
    if tenancy != "default" && tenancy != "dedicated" {
        return Err(invalid_value(format!(
            "Value ({tenancy}) for parameter Tenancy is invalid."
        )));
    }
    let end_type = opt_str(input, "EndDateType").unwrap_or("unlimited");
    let end = end_date(input, end_type)?;
    let criteria = opt_str(input, "InstanceMatchCriteria").unwrap_or("open");
    if criteria != "open" && criteria != "targeted" {
        return Err(invalid_value(format!(
            "Value ({criteria}) for parameter InstanceMatchCriteria is invalid."
        )));
    }
    // Capacity Reservations count towards the On-Demand vCPU limit.
    purchasing::check_vcpus(c, &info.name, false, u64::from(info.vcpus) * count as u64)?;
    let tag_list =
        fc_types::tags::from_specifications(input.get("TagSpecifications"), "capacity-reservation");
    fc_types::tags::validate_all(&tag_list).map_err(|e| invalid_value(e.to_string()))?;
    check_dry_run_v(input)?;
    let id = fc_types::ids::ec2_id("cr");
    let t = now().floor();
    let r = CapacityReservation {
        arn: format!(
            "arn:aws:ec2:{}:{}:capacity-reservation/{id}",
            c.region(),
            c.account()
        ),
        id: id.clone(),
        owner: c.account().to_string(),
        instance_type: itype.to_string(),
        platform: platform.to_string(),
        az: zone.name.clone(),
        az_id: zone.id.clone(),
        tenancy: tenancy.to_string(),
        total: count,
        ebs_optimized: opt_bool(input, "EbsOptimized").unwrap_or(false),
        state: "active".into(),
        start: t,
        end_date_type: end_type.to_string(),
        end_date: end,
        match_criteria: criteria.to_string(),
        create_date: t,
    };
    c.put(RESERVATIONS, &id, &r)?;
    tags::add(c, &id, &tag_list)?;
    Ok(json!({"CapacityReservation": value(c, &r, 0)?}))
}

const FILTERS: &[&str] = &[
    "instance-type",
    "owner-id",
    "instance-platform",
    "availability-zone",
    "tenancy",
    "state",
    "start-date",
    "end-date",
    "end-date-type",
    "instance-match-criteria",
    "capacity-reservation-id",
];

pub(crate) fn describe_capacity_reservations(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let fs = filters(input, FILTERS, true)?;
    let ids = super::str_list(input, "CapacityReservationIds");
    let list: Vec<CapacityReservation> = if ids.is_empty() {
        c.all::<CapacityReservation>(RESERVATIONS)?
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    } else {
        ids.iter().map(|i| find(c, i)).collect::<Result<_, _>>()?
    };
    check_dry_run_v(input)?;
    let used = usage(c)?;
    let mut items = Vec::new();
    for r in list {
        let t = tags::get(c, &r.id)?;
        let ok = matches(&fs, &t, |n| match n {
            "instance-type" => one(&r.instance_type),
            "owner-id" => one(&r.owner),
            "instance-platform" => one(&r.platform),
            "availability-zone" => one(&r.az),
            "tenancy" => one(&r.tenancy),
            "state" => one(r.current_state()),
            "start-date" => one(fc_protocol::value::format_iso8601(r.start)),
            "end-date" => Some(
                r.end_date
                    .map(fc_protocol::value::format_iso8601)
                    .into_iter()
                    .collect(),
            ),
            "end-date-type" => one(&r.end_date_type),
            "instance-match-criteria" => one(&r.match_criteria),
            "capacity-reservation-id" => one(&r.id),
            _ => None,
        });
        if ok {
            let u = used.get(&r.id).copied().unwrap_or(0);
            items.push((r.id.clone(), value(c, &r, u)?));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (1, 1000), None)?;
    Ok(page_output("CapacityReservations", page, next))
}

pub(crate) fn modify_capacity_reservation(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "CapacityReservationId")?;
    let mut r = find(c, id)?;
    if r.current_state() != "active" {
        return Err(ApiError::client(
            "IncorrectState",
            format!(
                "The Capacity Reservation {id} is in the {} state and cannot be modified.",
                r.current_state()
            ),
        ));
    }
    let count = opt_i64(input, "InstanceCount");
    if let Some(n) = count {
        let used = usage(c)?.get(id).copied().unwrap_or(0);
        if n < 1 {
            return Err(invalid_value(format!(
                "Value ({n}) for parameter InstanceCount is invalid. Expected a positive integer."
            )));
        }
        if n < used {
            return Err(invalid_value(format!(
                "The instance count cannot be lower than the number of instances running in the Capacity Reservation ({used})."
            )));
        }
        if n > r.total {
            let info = super::instance_types::instance_type(&r.instance_type)
                .map(|i| u64::from(i.vcpus))
                .unwrap_or(0);
            purchasing::check_vcpus(c, &r.instance_type, false, info * (n - r.total) as u64)?;
        }
    }
    let end_type = opt_str(input, "EndDateType");
    let end = match end_type {
        Some(t) => Some((t.to_string(), end_date(input, t)?)),
        None => match input
            .get("EndDate")
            .and_then(fc_protocol::value::value_to_epoch)
        {
            Some(e) if r.end_date_type == "limited" => Some(("limited".to_string(), Some(e))),
            Some(_) => {
                return Err(invalid_value(
                    "EndDate cannot be specified when EndDateType is 'unlimited'.",
                ))
            }
            None => None,
        },
    };
    let criteria = opt_str(input, "InstanceMatchCriteria");
    if let Some(m) = criteria {
        if m != "open" && m != "targeted" {
            return Err(invalid_value(format!(
                "Value ({m}) for parameter InstanceMatchCriteria is invalid."
            )));
        }
    }
    check_dry_run_v(input)?;
    if let Some(n) = count {
        r.total = n;
    }
    if let Some((t, e)) = end {
        r.end_date_type = t;
        r.end_date = e;
    }
    if let Some(m) = criteria {
        r.match_criteria = m.to_string();
    }
    c.put(RESERVATIONS, id, &r)?;
    Ok(json!({"Return": true}))
}

pub(crate) fn cancel_capacity_reservation(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "CapacityReservationId")?;
    let mut r = find(c, id)?;
    if r.current_state() != "active" {
        return Err(ApiError::client(
            "IncorrectState",
            format!(
                "The Capacity Reservation {id} is in the {} state and cannot be cancelled.",
                r.current_state()
            ),
        ));
    }
    check_dry_run_v(input)?;
    r.state = "cancelled".into();
    r.end_date = Some(now().floor());
    c.put(RESERVATIONS, id, &r)?;
    Ok(json!({"Return": true}))
}
