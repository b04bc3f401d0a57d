//! Reserved Instances (`DescribeReservedInstancesOfferings`,
//! `PurchaseReservedInstancesOffering`, `DescribeReservedInstances`) and Scheduled Instances
//! (`DescribeScheduledInstanceAvailability`, `PurchaseScheduledInstances`,
//! `DescribeScheduledInstances`, `RunScheduledInstances`).
//!
//! Offerings are generated, not stored: for each instance type, product, tenancy, term (1 or 3
//! years), payment option and class, with a deterministic UUID-shaped id (purchasing one finds
//! it again by regenerating). The effective rate is a fraction of the on-demand price
//! ([`effective_fraction`]), ordered as AWS prices them: within a class, 3-year All Upfront is
//! the cheapest, then 3-year Partial, 3-year No Upfront, 1-year All, 1-year Partial, and 1-year
//! No Upfront the dearest; convertible costs more than standard. Partial Upfront pays half of
//! the term's total up front and the rest hourly.
//!
//! Billing ([`coverage`]): the pending or running on-demand instances of default tenancy are
//! matched, oldest running period first, to active reservations of the same type (and zone for
//! zonal ones) up to their count; a matched instance is billed `HeavyUsage:<type>` at the
//! reservation's effective hourly rate.
//!
//! Scheduled Instances: a purchase buys a recurring slot (daily, weekly or monthly) for a year;
//! `RunScheduledInstances` launches only while a slot is open (else `IncorrectState`).

use super::instances::{self, InstanceRecord};
use super::purchasing::{self, price_str, Purchase, PURCHASES};
use super::{
    check_dry_run_v, filters, invalid_value, matches, now, one, opt_i64, opt_str, page_output,
    paginate, req_str, scan_all, str_list, vpcs, Ctx, INSTANCES,
};
use fc_protocol::value::{epoch_value, value_to_epoch};
use fc_protocol::ApiError;
use fc_store::{Scope, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

pub(crate) const RESERVED: &str = "ec2_reserved_instances";
pub(crate) const SCHEDULED: &str = "ec2_scheduled_instances";

pub(crate) const YEAR: i64 = 31_536_000;
pub(crate) const THREE_YEARS: i64 = 94_608_000;
const OFFERING_TYPES: &[&str] = &["All Upfront", "Partial Upfront", "No Upfront"];
const CLASSES: &[&str] = &["standard", "convertible"];
const PRODUCTS: &[&str] = &["Linux/UNIX", "Linux/UNIX (Amazon VPC)"];

/// The effective rate of a reservation as a fraction of the on-demand rate.
pub(crate) fn effective_fraction(class: &str, duration: i64, offering_type: &str) -> f64 {
    let three = duration >= THREE_YEARS;
    let base = match (class, three) {
        ("convertible", false) => 0.70,
        ("convertible", true) => 0.49,
        (_, false) => 0.60,
        (_, true) => 0.40,
    };
    let extra = match (offering_type, three) {
        ("All Upfront", _) => 0.0,
        ("Partial Upfront", false) => 0.01,
        ("Partial Upfront", true) => 0.02,
        (_, false) => 0.04,
        (_, true) => 0.06,
    };
    base + extra
}

/// One generated offering.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Offering {
    pub id: String,
    pub instance_type: String,
    pub product: String,
    pub tenancy: String,
    pub duration: i64,
    pub offering_type: String,
    pub class: String,
    /// None: regional.
    pub az: Option<String>,
    pub fixed_price: f64,
    pub hourly: f64,
}

impl Offering {
    /// Cost per hour over the term, upfront part included.
    pub fn effective_hourly(&self) -> f64 {
        self.fixed_price / (self.duration as f64 / 3600.0) + self.hourly
    }
}

fn offering_id(parts: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(parts.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[allow(clippy::too_many_arguments)]
fn offering(
    region: &str,
    itype: &str,
    product: &str,
    tenancy: &str,
    duration: i64,
    offering_type: &str,
    class: &str,
    az: Option<&str>,
) -> Offering {
    let od = if tenancy == "dedicated" {
        purchasing::dedicated_rate(itype, region)
    } else {
        purchasing::on_demand(itype, region)
    };
    let hours = duration as f64 / 3600.0;
    let eff = od * effective_fraction(class, duration, offering_type);
    let total = eff * hours;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let round6 = |x: f64| (x * 1e6).round() / 1e6;
    let (fixed, hourly) = match offering_type {
        "All Upfront" => (round2(total), 0.0),
        "Partial Upfront" => (round2(total / 2.0), round6(total / 2.0 / hours)),
        _ => (0.0, round6(eff)),
    };
    Offering {
        id: offering_id(&format!(
            "{region}/{itype}/{product}/{tenancy}/{duration}/{offering_type}/{class}/{}",
            az.unwrap_or("")
        )),
        instance_type: itype.to_string(),
        product: product.to_string(),
        tenancy: tenancy.to_string(),
        duration,
        offering_type: offering_type.to_string(),
        class: class.to_string(),
        az: az.map(str::to_string),
        fixed_price: fixed,
        hourly,
    }
}

fn offering_value(o: &Offering) -> Value {
    let mut v = json!({
        "ReservedInstancesOfferingId": o.id,
        "InstanceType": o.instance_type,
        "Duration": o.duration,
        "FixedPrice": o.fixed_price,
        "UsagePrice": 0.0,
        "ProductDescription": o.product,
        "InstanceTenancy": o.tenancy,
        "CurrencyCode": "USD",
        "OfferingType": o.offering_type,
        "OfferingClass": o.class,
        "RecurringCharges": [{"Frequency": "Hourly", "Amount": o.hourly}],
        "Marketplace": false,
        "PricingDetails": [],
        "Scope": if o.az.is_some() { "Availability Zone" } else { "Region" },
    });
    if let Some(z) = &o.az {
        v["AvailabilityZone"] = json!(z);
    }
    v
}

/// Every offering of `region` for the given types and zones (None = regional).
fn offerings(region: &str, types: &[String], zones: &[Option<String>]) -> Vec<Offering> {
    let mut out = Vec::new();
    for t in types {
        for p in PRODUCTS {
            for ten in ["default", "dedicated"] {
                for d in [YEAR, THREE_YEARS] {
                    for ot in OFFERING_TYPES {
                        for cl in CLASSES {
                            for z in zones {
                                out.push(offering(region, t, p, ten, d, ot, cl, z.as_deref()));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

pub(crate) fn describe_reserved_instances_offerings(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "availability-zone",
            "duration",
            "fixed-price",
            "instance-type",
            "marketplace",
            "product-description",
            "reserved-instances-offering-id",
            "scope",
            "usage-price",
        ],
        false,
    )?;
    let types: Vec<String> = match opt_str(input, "InstanceType") {
        Some(t) => {
            if super::instance_types::instance_type(t).is_none() {
                return Err(invalid_value(format!(
                    "Invalid value '{t}' for InstanceType."
                )));
            }
            vec![t.to_string()]
        }
        None => purchasing::priced_types(),
    };
    let zones: Vec<Option<String>> =
        match opt_str(input, "AvailabilityZone").or(opt_str(input, "AvailabilityZoneId")) {
            Some(z) => vec![Some(
                vpcs::zone(c.region(), z)
                    .ok_or_else(|| invalid_value(format!("Invalid availability zone: [{z}]")))?
                    .name,
            )],
            None => vec![None],
        };
    let ids = str_list(input, "ReservedInstancesOfferingIds");
    let product = opt_str(input, "ProductDescription");
    let tenancy = opt_str(input, "InstanceTenancy").unwrap_or("default");
    let otype = opt_str(input, "OfferingType");
    let class = opt_str(input, "OfferingClass");
    let min_d = opt_i64(input, "MinDuration").unwrap_or(0);
    let max_d = opt_i64(input, "MaxDuration").unwrap_or(i64::MAX);
    check_dry_run_v(input)?;
    let all = if ids.is_empty() {
        offerings(c.region(), &types, &zones)
    } else {
        all_offerings(c.region())
            .into_iter()
            .filter(|o| ids.contains(&o.id))
            .collect()
    };
    let mut items = Vec::new();
    for o in all {
        if product.is_some_and(|p| p != o.product)
            || (ids.is_empty() && o.tenancy != tenancy)
            || otype.is_some_and(|t| t != o.offering_type)
            || class.is_some_and(|cl| cl != o.class)
            || o.duration < min_d
            || o.duration > max_d
        {
            continue;
        }
        let ok = fc_types::filter::matches(&fs, |n| match n {
            "availability-zone" => Some(o.az.clone().into_iter().collect()),
            "duration" => one(o.duration.to_string()),
            "fixed-price" => one(o.fixed_price.to_string()),
            "instance-type" => one(&o.instance_type),
            "marketplace" => one("false"),
            "product-description" => one(&o.product),
            "reserved-instances-offering-id" => one(&o.id),
            "scope" => one(if o.az.is_some() {
                "Availability Zone"
            } else {
                "Region"
            }),
            "usage-price" => one("0.0"),
            _ => None,
        });
        if ok {
            let key = format!(
                "{}/{:012}/{}/{}/{}",
                o.instance_type, o.duration, o.class, o.offering_type, o.id
            );
            items.push((key, offering_value(&o)));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), Some(100))?;
    Ok(page_output("ReservedInstancesOfferings", page, next))
}

fn all_offerings(region: &str) -> Vec<Offering> {
    let mut zones: Vec<Option<String>> = vec![None];
    zones.extend(vpcs::zones(region).into_iter().map(|z| Some(z.name)));
    offerings(region, &purchasing::priced_types(), &zones)
}

/// A purchased reservation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub id: String,
    pub offering: Offering,
    pub count: i64,
    pub start: f64,
    pub end: f64,
}

impl Reservation {
    fn state(&self, t: f64) -> &'static str {
        if t >= self.end {
            "retired"
        } else {
            "active"
        }
    }
}

fn reservation_value(r: &Reservation) -> Value {
    let o = &r.offering;
    let mut v = json!({
        "ReservedInstancesId": r.id,
        "InstanceType": o.instance_type,
        "Start": epoch_value(r.start),
        "End": epoch_value(r.end),
        "Duration": o.duration,
        "UsagePrice": 0.0,
        "FixedPrice": o.fixed_price,
        "InstanceCount": r.count,
        "ProductDescription": o.product,
        "State": r.state(now()),
        "CurrencyCode": "USD",
        "InstanceTenancy": o.tenancy,
        "OfferingClass": o.class,
        "OfferingType": o.offering_type,
        "RecurringCharges": [{"Frequency": "Hourly", "Amount": o.hourly}],
        "Scope": if o.az.is_some() { "Availability Zone" } else { "Region" },
    });
    if let Some(z) = &o.az {
        v["AvailabilityZone"] = json!(z);
    }
    v
}

pub(crate) fn purchase_reserved_instances_offering(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let id = req_str(input, "ReservedInstancesOfferingId")?;
    let count = opt_i64(input, "InstanceCount").unwrap_or(1);
    if count < 1 {
        return Err(invalid_value(format!(
            "Value ({count}) for parameter instanceCount is invalid. Expected a positive integer."
        )));
    }
    let o = all_offerings(c.region())
        .into_iter()
        .find(|o| o.id == id)
        .ok_or_else(|| {
            ApiError::client(
                "InvalidReservedInstancesOfferingId",
                format!("The Reserved Instances offering '{id}' does not exist"),
            )
        })?;
    if let Some(limit) = input
        .get("LimitPrice")
        .and_then(|l| l.get("Amount"))
        .and_then(Value::as_f64)
    {
        if o.fixed_price * count as f64 > limit {
            return Err(ApiError::client(
                "LimitPriceExceeded",
                format!(
                    "The upfront price {} exceeds the limit price {limit}.",
                    o.fixed_price * count as f64
                ),
            ));
        }
    }
    check_dry_run_v(input)?;
    let t = input
        .get("PurchaseTime")
        .and_then(value_to_epoch)
        .unwrap_or_else(now)
        .floor();
    let rid = uuid::Uuid::new_v4().to_string();
    let r = Reservation {
        id: rid.clone(),
        end: t + o.duration as f64,
        offering: o,
        count,
        start: t,
    };
    c.put(RESERVED, &rid, &r)?;
    Ok(json!({"ReservedInstancesId": rid}))
}

pub(crate) fn describe_reserved_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "availability-zone",
            "duration",
            "end",
            "fixed-price",
            "instance-type",
            "scope",
            "product-description",
            "reserved-instances-id",
            "start",
            "state",
            "usage-price",
        ],
        true,
    )?;
    let ids = str_list(input, "ReservedInstancesIds");
    let class = opt_str(input, "OfferingClass");
    let otype = opt_str(input, "OfferingType");
    check_dry_run_v(input)?;
    let t = now();
    let mut out = Vec::new();
    let mut all: Vec<Reservation> = c
        .all::<Reservation>(RESERVED)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    all.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.id.cmp(&b.id)));
    for r in all {
        if (!ids.is_empty() && !ids.contains(&r.id))
            || class.is_some_and(|x| x != r.offering.class)
            || otype.is_some_and(|x| x != r.offering.offering_type)
        {
            continue;
        }
        let o = &r.offering;
        let ok = matches(&fs, &super::tags::get(c, &r.id)?, |n| match n {
            "availability-zone" => Some(o.az.clone().into_iter().collect()),
            "duration" => one(o.duration.to_string()),
            "end" => one(fc_protocol::value::format_iso8601(r.end)),
            "fixed-price" => one(o.fixed_price.to_string()),
            "instance-type" => one(&o.instance_type),
            "scope" => one(if o.az.is_some() {
                "Availability Zone"
            } else {
                "Region"
            }),
            "product-description" => one(&o.product),
            "reserved-instances-id" => one(&r.id),
            "start" => one(fc_protocol::value::format_iso8601(r.start)),
            "state" => one(r.state(t)),
            "usage-price" => one("0.0"),
            _ => None,
        });
        if ok {
            out.push(reservation_value(&r));
        }
    }
    Ok(json!({"ReservedInstances": out}))
}

/// Which running on-demand instances of `scope` reservations cover at time `t`, with the
/// effective hourly rate of each. `include`: an instance to count as running whatever its
/// state (one whose period is being accrued as it stops).
pub(crate) fn coverage(
    store: &dyn Store,
    scope: &Scope,
    t: f64,
    include: Option<&str>,
) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(res) = scan_all::<Reservation>(store, scope, RESERVED) else {
        return out;
    };
    let mut res: Vec<(Reservation, i64)> = res
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.start <= t && t < r.end && r.offering.tenancy == "default")
        .map(|r| {
            let n = r.count;
            (r, n)
        })
        .collect();
    if res.is_empty() {
        return out;
    }
    res.sort_by(|a, b| a.0.start.total_cmp(&b.0.start).then(a.0.id.cmp(&b.0.id)));
    let Ok(purchases) = scan_all::<Purchase>(store, scope, PURCHASES) else {
        return out;
    };
    let mut running: Vec<(f64, InstanceRecord)> = Vec::new();
    for (id, p) in purchases {
        if p.lifecycle.is_some() || p.tenancy() != "default" {
            continue;
        }
        let Ok(Some(r)) =
            fc_store::StoreExt::get_json::<InstanceRecord>(store, scope, INSTANCES, &id)
        else {
            continue;
        };
        if purchasing::active(&r.state) || include == Some(id.as_str()) {
            running.push((p.open_since.unwrap_or(r.launch_time), r));
        }
    }
    running.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(a.1.instance_id.cmp(&b.1.instance_id))
    });
    for (_, r) in running {
        if let Some((res, left)) = res.iter_mut().find(|(x, left)| {
            *left > 0
                && x.offering.instance_type == r.instance_type
                && x.offering
                    .az
                    .as_deref()
                    .is_none_or(|z| z == r.availability_zone)
        }) {
            *left -= 1;
            out.insert(r.instance_id.clone(), res.offering.effective_hourly());
        }
    }
    out
}

// ---- scheduled instances ----

/// A purchased Scheduled Instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Scheduled {
    pub id: String,
    pub slot: SlotTerms,
    pub count: i64,
    pub create_date: f64,
    pub term_start: f64,
    pub term_end: f64,
}

/// What a purchase token stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SlotTerms {
    pub instance_type: String,
    pub az: String,
    pub first_slot: f64,
    pub slot_hours: i64,
    pub frequency: String,
    pub interval: i64,
    #[serde(default)]
    pub days: Vec<i64>,
    pub hourly: f64,
}

impl SlotTerms {
    fn period(&self) -> f64 {
        let unit = match self.frequency.as_str() {
            "Weekly" => 7.0 * 86400.0,
            "Monthly" => 30.0 * 86400.0,
            _ => 86400.0,
        };
        unit * self.interval.max(1) as f64
    }

    fn slots_per_year(&self) -> i64 {
        (365.0 * 86400.0 / self.period()).floor() as i64
    }

    /// The slot open at `t` (start), and the next start after `t`.
    fn slot_at(&self, t: f64, term_end: f64) -> (Option<f64>, Option<f64>) {
        if t < self.first_slot {
            return (None, Some(self.first_slot));
        }
        let k = ((t - self.first_slot) / self.period()).floor();
        let start = self.first_slot + k * self.period();
        let open =
            (t < start + self.slot_hours as f64 * 3600.0 && start < term_end).then_some(start);
        let next = start + self.period();
        (open, (next < term_end).then_some(next))
    }

    fn recurrence(&self) -> Value {
        let mut v = json!({
            "Frequency": self.frequency,
            "Interval": self.interval,
            "OccurrenceDaySet": self.days,
            "OccurrenceRelativeToEnd": false,
        });
        if self.frequency == "Weekly" {
            v["OccurrenceUnit"] = json!("");
        }
        v
    }
}

const SCHEDULED_TYPES: &[&str] = &["c5.large", "c5.xlarge", "m5.large", "m5.xlarge", "r5.large"];

pub(crate) fn describe_scheduled_instance_availability(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "availability-zone",
            "instance-type",
            "network-platform",
            "platform",
        ],
        false,
    )?;
    let rec = input
        .get("Recurrence")
        .ok_or_else(|| ApiError::missing("MissingParameter", "Recurrence"))?;
    let freq = opt_str(rec, "Frequency")
        .ok_or_else(|| ApiError::missing("MissingParameter", "Recurrence.Frequency"))?;
    if !matches!(freq, "Daily" | "Weekly" | "Monthly") {
        return Err(invalid_value(format!(
            "Value ({freq}) for parameter Recurrence.Frequency is invalid."
        )));
    }
    let interval = opt_i64(rec, "Interval").unwrap_or(1).max(1);
    let days: Vec<i64> = rec
        .get("OccurrenceDays")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let range = input
        .get("FirstSlotStartTimeRange")
        .ok_or_else(|| ApiError::missing("MissingParameter", "FirstSlotStartTimeRange"))?;
    let earliest = range
        .get("EarliestTime")
        .and_then(value_to_epoch)
        .ok_or_else(|| {
            ApiError::missing("MissingParameter", "FirstSlotStartTimeRange.EarliestTime")
        })?;
    let latest = range
        .get("LatestTime")
        .and_then(value_to_epoch)
        .ok_or_else(|| {
            ApiError::missing("MissingParameter", "FirstSlotStartTimeRange.LatestTime")
        })?;
    if latest < earliest {
        return Err(invalid_value(
            "The latest time of the first slot must be after its earliest time.",
        ));
    }
    if latest < now() - 3600.0 {
        return Err(invalid_value("The first slot must start in the future."));
    }
    let minimum = match freq {
        "Daily" => 4,
        "Weekly" => 24,
        _ => 100,
    };
    let min_h = opt_i64(input, "MinSlotDurationInHours").unwrap_or(minimum);
    let max_h = opt_i64(input, "MaxSlotDurationInHours").unwrap_or(i64::MAX);
    if min_h > max_h {
        return Err(invalid_value(
            "MinSlotDurationInHours must not exceed MaxSlotDurationInHours.",
        ));
    }
    let slot = min_h.max(minimum);
    if slot > max_h || (freq == "Daily" && slot > 24) {
        return Err(invalid_value(format!(
            "A {} schedule needs slots of at least {minimum} hours.",
            freq.to_lowercase()
        )));
    }
    check_dry_run_v(input)?;
    let first = (earliest.max(now() - 60.0) / 60.0).floor() * 60.0;
    let mut items = Vec::new();
    for ty in SCHEDULED_TYPES {
        for z in vpcs::zones(c.region()) {
            let ok = fc_types::filter::matches(&fs, |n| match n {
                "availability-zone" => one(&z.name),
                "instance-type" => one(*ty),
                "network-platform" => one("EC2-VPC"),
                "platform" => one("Linux/UNIX"),
                _ => None,
            });
            if !ok {
                continue;
            }
            let terms = SlotTerms {
                instance_type: ty.to_string(),
                az: z.name.clone(),
                first_slot: first,
                slot_hours: slot,
                frequency: freq.to_string(),
                interval,
                days: days.clone(),
                hourly: (purchasing::on_demand(ty, c.region()) * 0.95 * 1e6).round() / 1e6,
            };
            let token = fc_types::page::encode(
                "ec2:scheduled",
                &serde_json::to_string(&terms).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            items.push((
                format!("{ty}/{}", z.name),
                json!({
                    "AvailabilityZone": z.name,
                    "AvailableInstanceCount": 20,
                    "FirstSlotStartTime": epoch_value(first),
                    "HourlyPrice": price_str(terms.hourly),
                    "InstanceType": ty,
                    "MaxTermDurationInDays": 366,
                    "MinTermDurationInDays": 366,
                    "NetworkPlatform": "EC2-VPC",
                    "Platform": "Linux/UNIX",
                    "PurchaseToken": token,
                    "Recurrence": terms.recurrence(),
                    "SlotDurationInHours": slot,
                    "TotalScheduledInstanceHours": slot * terms.slots_per_year(),
                }),
            ));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 300), None)?;
    Ok(page_output("ScheduledInstanceAvailabilitySet", page, next))
}

fn scheduled_value(s: &Scheduled) -> Value {
    let t = now();
    let (_, next) = s.slot.slot_at(t, s.term_end);
    let mut v = json!({
        "ScheduledInstanceId": s.id,
        "AvailabilityZone": s.slot.az,
        "CreateDate": epoch_value(s.create_date),
        "HourlyPrice": price_str(s.slot.hourly),
        "InstanceCount": s.count,
        "InstanceType": s.slot.instance_type,
        "NetworkPlatform": "EC2-VPC",
        "Platform": "Linux/UNIX",
        "Recurrence": s.slot.recurrence(),
        "SlotDurationInHours": s.slot.slot_hours,
        "TermStartDate": epoch_value(s.term_start),
        "TermEndDate": epoch_value(s.term_end),
        "TotalScheduledInstanceHours": s.slot.slot_hours * s.slot.slots_per_year(),
    });
    if let Some(n) = next {
        v["NextSlotStartTime"] = epoch_value(n);
    }
    if t > s.slot.first_slot {
        let k = ((t - s.slot.first_slot) / s.slot.period()).floor();
        let start = s.slot.first_slot + k * s.slot.period();
        let end = start + s.slot.slot_hours as f64 * 3600.0;
        let prev_end = if end <= t { end } else { end - s.slot.period() };
        if prev_end > s.slot.first_slot {
            v["PreviousSlotEndTime"] = epoch_value(prev_end);
        }
    }
    v
}

fn scheduled_id() -> String {
    let d = fc_types::ids::random_from(b"0123456789", 28);
    format!(
        "sci-{}-{}-{}-{}-{}",
        &d[0..4],
        &d[4..8],
        &d[8..12],
        &d[12..16],
        &d[16..28]
    )
}

pub(crate) fn purchase_scheduled_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let reqs = input
        .get("PurchaseRequests")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::missing("MissingParameter", "PurchaseRequests"))?;
    let mut plans = Vec::new();
    for r in reqs {
        let token = req_str(r, "PurchaseToken")?;
        let count = opt_i64(r, "InstanceCount").unwrap_or(1);
        if !(1..=20).contains(&count) {
            return Err(invalid_value(format!(
                "Value ({count}) for parameter InstanceCount is invalid."
            )));
        }
        let terms: SlotTerms = fc_types::page::decode("ec2:scheduled", token)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| {
                ApiError::client(
                    "InvalidPurchaseToken.Malformed",
                    "The specified purchase token is not valid.",
                )
            })?;
        plans.push((terms, count));
    }
    check_dry_run_v(input)?;
    let mut out = Vec::new();
    for (terms, count) in plans {
        let s = Scheduled {
            id: scheduled_id(),
            count,
            create_date: now(),
            term_start: terms.first_slot,
            term_end: terms.first_slot + 366.0 * 86400.0,
            slot: terms,
        };
        c.put(SCHEDULED, &s.id, &s)?;
        out.push(scheduled_value(&s));
    }
    Ok(json!({"ScheduledInstanceSet": out}))
}

fn find_scheduled(c: &Ctx<'_>, id: &str) -> Result<Scheduled, ApiError> {
    c.get::<Scheduled>(SCHEDULED, id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidScheduledInstance",
            format!("The scheduled instance '{id}' does not exist"),
        )
    })
}

pub(crate) fn describe_scheduled_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "availability-zone",
            "instance-type",
            "network-platform",
            "platform",
        ],
        false,
    )?;
    let ids = str_list(input, "ScheduledInstanceIds");
    let list: Vec<Scheduled> = if ids.is_empty() {
        c.all::<Scheduled>(SCHEDULED)?
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    } else {
        ids.iter()
            .map(|i| find_scheduled(c, i))
            .collect::<Result<_, _>>()?
    };
    check_dry_run_v(input)?;
    let mut items = Vec::new();
    for s in list {
        let ok = fc_types::filter::matches(&fs, |n| match n {
            "availability-zone" => one(&s.slot.az),
            "instance-type" => one(&s.slot.instance_type),
            "network-platform" => one("EC2-VPC"),
            "platform" => one("Linux/UNIX"),
            _ => None,
        });
        if ok {
            items.push((s.id.clone(), scheduled_value(&s)));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 300), None)?;
    Ok(page_output("ScheduledInstanceSet", page, next))
}

pub(crate) fn run_scheduled_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "ScheduledInstanceId")?;
    let s = find_scheduled(c, id)?;
    let spec = input
        .get("LaunchSpecification")
        .ok_or_else(|| ApiError::missing("MissingParameter", "LaunchSpecification"))?;
    let count = opt_i64(input, "InstanceCount").unwrap_or(1);
    let t = now();
    let (open, next) = s.slot.slot_at(t, s.term_end);
    if open.is_none() {
        let when = next
            .map(|n| {
                format!(
                    "; its next slot starts at {}",
                    fc_protocol::value::format_iso8601(n)
                )
            })
            .unwrap_or_default();
        return Err(ApiError::client(
            "IncorrectState",
            format!("The scheduled instance '{id}' is not within a scheduled time period{when}."),
        ));
    }
    // Instances already launched from it in this account and region.
    let launched = c
        .all::<Purchase>(PURCHASES)?
        .into_iter()
        .filter(|(_, p)| p.scheduled_id.as_deref() == Some(id))
        .filter(|(iid, _)| {
            c.get::<InstanceRecord>(INSTANCES, iid)
                .ok()
                .flatten()
                .is_some_and(|r| r.state != "terminated" && r.state != "shutting-down")
        })
        .count() as i64;
    if count < 1 {
        return Err(invalid_value(format!(
            "Value ({count}) for parameter InstanceCount is invalid. Expected a positive integer."
        )));
    }
    if launched + count > s.count {
        return Err(ApiError::client(
            "MaxScheduledInstanceCapacityExceeded",
            format!(
                "You've attempted to launch more instances than you purchased: the scheduled instance '{id}' has {} instances left.",
                (s.count - launched).max(0)
            ),
        ));
    }
    if let Some(t) = opt_str(spec, "InstanceType") {
        if t != s.slot.instance_type {
            return Err(invalid_value(format!(
                "The instance type {t} does not match the scheduled instance's type {}.",
                s.slot.instance_type
            )));
        }
    }
    let mut run = json!({
        "ImageId": spec.get("ImageId").cloned().unwrap_or(Value::Null),
        "InstanceType": s.slot.instance_type,
        "MinCount": count,
        "MaxCount": count,
        "Placement": {"AvailabilityZone": s.slot.az},
    });
    for k in ["KeyName", "SubnetId", "UserData", "SecurityGroupIds"] {
        if let Some(v) = spec.get(k) {
            run[k] = v.clone();
        }
    }
    if let Some(p) = spec.get("IamInstanceProfile") {
        run["IamInstanceProfile"] = p.clone();
    }
    if let Some(d) = input.get("DryRun") {
        run["DryRun"] = d.clone();
    }
    if let Some(tk) = input.get("ClientToken") {
        run["ClientToken"] = tk.clone();
    }
    run[purchasing::SCHEDULED_KEY] = json!({"Id": id, "Price": s.slot.hourly});
    let out = instances::run_instances(c, &run)?;
    let ids: Vec<Value> = out["Instances"]
        .as_array()
        .map(|a| a.iter().map(|i| i["InstanceId"].clone()).collect())
        .unwrap_or_default();
    Ok(json!({"InstanceIdSet": ids}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounts_are_ordered_like_aws() {
        let od = purchasing::on_demand("m5.large", "us-east-1");
        for class in CLASSES {
            let order = [
                (THREE_YEARS, "All Upfront"),
                (THREE_YEARS, "Partial Upfront"),
                (THREE_YEARS, "No Upfront"),
                (YEAR, "All Upfront"),
                (YEAR, "Partial Upfront"),
                (YEAR, "No Upfront"),
            ];
            let rates: Vec<f64> = order
                .iter()
                .map(|(d, t)| {
                    offering(
                        "us-east-1",
                        "m5.large",
                        "Linux/UNIX",
                        "default",
                        *d,
                        t,
                        class,
                        None,
                    )
                    .effective_hourly()
                })
                .collect();
            for w in rates.windows(2) {
                assert!(w[0] < w[1], "{class}: {rates:?}");
            }
            assert!(rates[5] < od);
        }
        let std = offering(
            "us-east-1",
            "m5.large",
            "Linux/UNIX",
            "default",
            YEAR,
            "No Upfront",
            "standard",
            None,
        );
        let conv = offering(
            "us-east-1",
            "m5.large",
            "Linux/UNIX",
            "default",
            YEAR,
            "No Upfront",
            "convertible",
            None,
        );
        assert!(std.hourly < conv.hourly);
        let all = offering(
            "us-east-1",
            "m5.large",
            "Linux/UNIX",
            "default",
            YEAR,
            "All Upfront",
            "standard",
            None,
        );
        assert_eq!(all.hourly, 0.0);
        assert!(all.fixed_price > 0.0);
        let part = offering(
            "us-east-1",
            "m5.large",
            "Linux/UNIX",
            "default",
            YEAR,
            "Partial Upfront",
            "standard",
            None,
        );
        assert!(part.fixed_price > 0.0 && part.hourly > 0.0);
        assert_eq!(
            all.id,
            offering(
                "us-east-1",
                "m5.large",
                "Linux/UNIX",
                "default",
                YEAR,
                "All Upfront",
                "standard",
                None
            )
            .id
        );
    }

    #[test]
    fn scheduled_slots_open_and_close() {
        let s = SlotTerms {
            instance_type: "m5.large".into(),
            az: "us-east-1a".into(),
            first_slot: 1000.0,
            slot_hours: 4,
            frequency: "Daily".into(),
            interval: 1,
            days: vec![],
            hourly: 0.09,
        };
        let end = 1000.0 + 366.0 * 86400.0;
        assert_eq!(s.slot_at(999.0, end), (None, Some(1000.0)));
        assert_eq!(s.slot_at(1000.0 + 3600.0, end).0, Some(1000.0));
        assert_eq!(s.slot_at(1000.0 + 5.0 * 3600.0, end).0, None);
        assert_eq!(
            s.slot_at(1000.0 + 86400.0 + 10.0, end).0,
            Some(1000.0 + 86400.0)
        );
        assert_eq!(s.slots_per_year(), 365);
    }
}
