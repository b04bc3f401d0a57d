//! EC2 purchasing options and tenancy: what an instance was bought as and where it sits, the
//! vCPU limit, and what instances cost (the ledger's live source). The operations live in the
//! sibling modules `spot` (spot requests, price history, interruptions), `reserved` (reserved
//! and scheduled instances), `capacity` (capacity reservations) and `hosts` (dedicated hosts,
//! `ModifyInstancePlacement`); this module is what they and `instances` share:
//!
//! - a per-instance [`Purchase`] record (table `ec2_instance_purchasing`): lifecycle (spot,
//!   scheduled), spot request, tenancy, host and affinity, capacity reservation, a pending spot
//!   interruption notice and the start of the running period being billed;
//! - [`plan_launch`] (validation of `InstanceMarketOptions`, `Placement`,
//!   `CapacityReservationSpecification` and the vCPU limit before `RunInstances` writes
//!   anything) and [`launched`] (the records written per instance);
//! - [`transition`], called by `instances` at every state change: a period that stops being
//!   billable (pending/running → anything else) is accrued in the ledger;
//! - the vCPU limit: per account, region, market (On-Demand, Spot) and AWS's vCPU bucket of the
//!   instance family ([`vcpu_bucket`]), each with the one configured limit ([`check_vcpus`];
//!   the running counts come from the instance index, not from a scan of the records);
//! - the price table (`prices.json`, its source named inside) and the rate of an instance.
//!
//! The vCPU limit and the ledger are set by the binary before any request; they live in a
//! process-wide table keyed by the EC2 store (the service struct is shared with other work, so
//! its fields are not this module's to extend).
//!
//! Test hooks are served at `/_ferrocloud/ec2/...` ([`Ec2::internal_handler`]):
//! `POST /_ferrocloud/ec2/spot/interrupt?InstanceId=i-…[&NoticeSeconds=N][&Reason=price|capacity]`
//! (an interruption now), and `POST /_ferrocloud/ec2/spot/evaluate[?At=<epoch>][&NoticeSeconds=N]`
//! (the price check of every spot request, as the minute sweep does it, at time `At`).

use super::instances::{self, InstanceRecord};
use super::{instance_types, invalid_value, now, opt_str, scan_all, Ctx, Ec2, INSTANCES};
use crate::costs::{Ledger, Line, LiveSource};
use crate::{BodyIn, BodyOut, HttpRequest, RawHandler, RawReply};
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Per-instance purchasing records, keyed by instance id.
pub(crate) const PURCHASES: &str = "ec2_instance_purchasing";
/// The default vCPU limit (the binary's `--ec2-vcpu-limit` default too).
pub const DEFAULT_VCPU_LIMIT: u32 = 256;

/// How an instance was bought and where it is placed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Purchase {
    /// `spot` or `scheduled`; none for on-demand.
    #[serde(default)]
    pub lifecycle: Option<String>,
    #[serde(default)]
    pub spot_request_id: Option<String>,
    /// `terminate`, `stop` or `hibernate` (spot only).
    #[serde(default)]
    pub interruption: Option<String>,
    /// `default`, `dedicated` or `host` (empty = default).
    #[serde(default)]
    pub tenancy: String,
    #[serde(default)]
    pub host_id: Option<String>,
    /// `default` or `host`.
    #[serde(default)]
    pub affinity: Option<String>,
    #[serde(default)]
    pub cr_id: Option<String>,
    /// `open` or `none`.
    #[serde(default)]
    pub cr_preference: Option<String>,
    /// A spot interruption notice: (action, epoch seconds it happens).
    #[serde(default)]
    pub instance_action: Option<(String, f64)>,
    /// Start of the running period not yet accrued.
    #[serde(default)]
    pub open_since: Option<f64>,
    #[serde(default)]
    pub scheduled_id: Option<String>,
    /// Hourly price of a scheduled instance.
    #[serde(default)]
    pub scheduled_price: Option<f64>,
}

impl Purchase {
    pub fn tenancy(&self) -> &str {
        if self.tenancy.is_empty() {
            "default"
        } else {
            &self.tenancy
        }
    }
}

pub(crate) fn purchase_of(store: &dyn Store, scope: &Scope, id: &str) -> Purchase {
    store
        .get_json::<Purchase>(scope, PURCHASES, id)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Write the purchase record of an instance of the caller's scope (and keep the instance
/// index in step: it counts spot vCPUs, reservation and host use from these records).
pub(crate) fn save_purchase(c: &Ctx<'_>, id: &str, p: &Purchase) -> Result<(), ApiError> {
    c.store
        .put_json(&c.scope, PURCHASES, id, p)
        .map_err(crate::common::store_error)?;
    c.index.purchase_saved(c.store, &c.scope, id, p);
    Ok(())
}

/// Whether an instance in `state` is billed and counts against limits and capacity.
pub(crate) fn active(state: &str) -> bool {
    matches!(state, "pending" | "running")
}

// ---- settings: vCPU limit and ledger ----

struct Settings {
    vcpu_limit: AtomicU32,
    ledger: OnceLock<Arc<Ledger>>,
    /// Keeps the store (the key of this entry) alive.
    _store: Arc<dyn Store>,
}

type Registry = Mutex<Vec<(usize, Arc<Settings>)>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Vec::new()))
}

fn store_key(store: &dyn Store) -> usize {
    store as *const dyn Store as *const () as usize
}

fn settings(store: &dyn Store) -> Option<Arc<Settings>> {
    let k = store_key(store);
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(key, _)| *key == k)
        .map(|(_, s)| s.clone())
}

fn settings_for(store: &Arc<dyn Store>) -> Arc<Settings> {
    let k = store_key(store.as_ref());
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, s)) = reg.iter().find(|(key, _)| *key == k) {
        return s.clone();
    }
    let s = Arc::new(Settings {
        vcpu_limit: AtomicU32::new(DEFAULT_VCPU_LIMIT),
        ledger: OnceLock::new(),
        _store: store.clone(),
    });
    reg.push((k, s.clone()));
    s
}

pub(crate) fn vcpu_limit(store: &dyn Store) -> u32 {
    settings(store)
        .map(|s| s.vcpu_limit.load(Ordering::SeqCst))
        .unwrap_or(DEFAULT_VCPU_LIMIT)
}

fn ledger(store: &dyn Store) -> Option<Arc<Ledger>> {
    settings(store).and_then(|s| s.ledger.get().cloned())
}

impl Ec2 {
    /// The handler of `/_ferrocloud/ec2/...` (test hooks such as spot interruptions).
    ///
    /// Called inside a Tokio runtime, it also starts the spot price sweep (once a minute: spot
    /// instances whose price passed their maximum get their interruption notice; open
    /// requests whose price is met are fulfilled).
    pub fn internal_handler(&self) -> Arc<dyn RawHandler> {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            rt.spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let i = inner.clone();
                    let marked = tokio::task::spawn_blocking(move || {
                        forget_orphans(i.store.as_ref());
                        super::spot::evaluate_all(&i, now(), 120.0).0
                    })
                    .await
                    .unwrap_or_default();
                    for id in marked {
                        finish_later(inner.clone(), id, 120.0);
                    }
                }
            });
        }
        Arc::new(Internal {
            inner: self.inner.clone(),
        })
    }

    /// Caps the vCPUs of running instances per account and region (`VcpuLimitExceeded`).
    pub fn set_vcpu_limit(&self, vcpus: u32) {
        settings_for(&self.inner.store)
            .vcpu_limit
            .store(vcpus, Ordering::SeqCst);
    }

    /// Prices running instances in `ledger` (its live source) and accrues finished periods.
    pub fn attach_ledger(&self, ledger: Arc<Ledger>) {
        let s = settings_for(&self.inner.store);
        if s.ledger.set(ledger.clone()).is_ok() {
            ledger.add_source(Arc::new(Live {
                store: self.inner.store.clone(),
            }));
        }
    }
}

// ---- prices ----

#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct HostShape {
    pub sockets: u32,
    pub cores: u32,
    pub vcpus: u32,
}

#[derive(Deserialize)]
struct PriceFile {
    region_multipliers: HashMap<String, f64>,
    dedicated_instance_multiplier: f64,
    dedicated_hosts: HashMap<String, HostShape>,
    on_demand: HashMap<String, f64>,
}

fn prices() -> &'static PriceFile {
    static P: OnceLock<PriceFile> = OnceLock::new();
    P.get_or_init(|| {
        serde_json::from_str(include_str!("prices.json"))
            .expect("the embedded price table is valid (checked by a unit test)")
    })
}

fn region_multiplier(region: &str) -> f64 {
    prices()
        .region_multipliers
        .get(region)
        .copied()
        .unwrap_or(1.0)
}

/// On-demand Linux hourly price of `itype` in `region` (USD).
pub(crate) fn on_demand(itype: &str, region: &str) -> f64 {
    prices().on_demand.get(itype).copied().unwrap_or(0.0) * region_multiplier(region)
}

/// Every instance type with a price, sorted.
pub(crate) fn priced_types() -> Vec<String> {
    let mut v: Vec<String> = prices().on_demand.keys().cloned().collect();
    v.sort();
    v
}

/// The family of an instance type (`m5` of `m5.large`).
pub(crate) fn family(itype: &str) -> &str {
    itype.split('.').next().unwrap_or(itype)
}

/// The shape of a dedicated host of `family`.
pub(crate) fn host_shape(family: &str) -> Option<HostShape> {
    prices().dedicated_hosts.get(family).copied()
}

/// Hourly price of a dedicated host of `family`: the family's on-demand price per vCPU (its
/// smallest size in the table) times the host's vCPUs, times the dedicated multiplier.
pub(crate) fn host_rate(family: &str, region: &str) -> f64 {
    let Some(shape) = host_shape(family) else {
        return 0.0;
    };
    let per_vcpu = prices()
        .on_demand
        .iter()
        .filter(|(t, _)| self::family(t) == family)
        .filter_map(|(t, p)| {
            instance_types::instance_type(t).map(|i| (i.vcpus, p / f64::from(i.vcpus.max(1))))
        })
        .min_by_key(|(v, _)| *v)
        .map(|(_, p)| p)
        .unwrap_or(0.0);
    per_vcpu
        * f64::from(shape.vcpus)
        * prices().dedicated_instance_multiplier
        * region_multiplier(region)
}

/// Hourly price of a Dedicated Instance.
pub(crate) fn dedicated_rate(itype: &str, region: &str) -> f64 {
    on_demand(itype, region) * prices().dedicated_instance_multiplier
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The spot price of `itype` in zone `az` at time `t`: between 30% and 40% of the on-demand
/// price, fixed for each (type, zone, hour) by a hash — deterministic, different per zone and
/// hour. Rounded to 6 decimals, as AWS prints spot prices.
pub(crate) fn spot_price(itype: &str, az: &str, t: f64) -> f64 {
    let hour = (t / 3600.0).floor() as i64;
    let region = az.trim_end_matches(|c: char| c.is_ascii_lowercase());
    let h = fnv(&format!("{itype}/{az}/{hour}"));
    let frac = 0.30 + 0.10 * ((h % 10_000) as f64 / 10_000.0);
    let p = on_demand(itype, region) * frac;
    (p * 1e6).round() / 1e6
}

/// A price as the API prints it (`"0.031200"`).
pub(crate) fn price_str(p: f64) -> String {
    format!("{p:.6}")
}

// ---- vCPU limit ----

/// The vCPU bucket of an instance type, as AWS's On-Demand and Spot quotas group families
/// (by the letters of the family: `t` of `t3`, `inf` of `inf2`, `u` of `u-6tb1`). The names
/// are those of the On-Demand quotas.
pub(crate) fn vcpu_bucket(itype: &str) -> &'static str {
    let fam = family(itype).to_ascii_lowercase();
    let letters: String = fam.chars().take_while(char::is_ascii_alphabetic).collect();
    match letters.as_str() {
        "inf" => "Inf",
        "trn" => "Trn",
        "dl" => "DL",
        "vt" => "G and VT",
        "u" => "High Memory",
        "hpc" => "HPC",
        "mac" => "Mac",
        l if l.starts_with('f') => "F",
        l if l.starts_with('g') => "G and VT",
        l if l.starts_with('p') => "P",
        l if l.starts_with('x') => "X",
        // A, C, D, H, I, M, R, T, Z and whatever else is new.
        _ => "Standard",
    }
}

/// `VcpuLimitExceeded` (On-Demand) or `MaxSpotInstanceCountExceeded` (Spot) when `more`
/// vCPUs of instances of `itype` do not fit in the bucket of that type in that market.
/// Every bucket of both markets has the limit the binary was given (`--ec2-vcpu-limit`).
pub(crate) fn check_vcpus(c: &Ctx<'_>, itype: &str, spot: bool, more: u64) -> Result<(), ApiError> {
    let limit = vcpu_limit(c.store);
    let bucket = vcpu_bucket(itype);
    let used = c.ix(|ix| ix.active_vcpus(spot, bucket))?;
    if used + more <= u64::from(limit) {
        return Ok(());
    }
    Err(if spot {
        ApiError::client(
            "MaxSpotInstanceCountExceeded",
            "Max spot instance count exceeded",
        )
    } else {
        ApiError::client(
            "VcpuLimitExceeded",
            format!(
                "You have requested more vCPU capacity than your current vCPU limit of {limit} allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
            ),
        )
    })
}

// ---- launches ----

/// Spot terms of a launch.
#[derive(Debug, Clone)]
pub(crate) struct SpotTerms {
    pub max_price: Option<f64>,
    /// `one-time` or `persistent`.
    pub kind: String,
    pub interruption: String,
    /// Set when `RequestSpotInstances` launches for an existing request.
    pub request_id: Option<String>,
}

/// What `RunInstances` was asked for beyond the instance itself, validated.
#[derive(Debug, Clone, Default)]
pub(crate) struct LaunchPlan {
    pub spot: Option<SpotTerms>,
    pub tenancy: String,
    pub affinity: Option<String>,
    /// Per instance: the host it goes on.
    pub hosts: Vec<Option<String>>,
    /// Per instance: the capacity reservation it consumes.
    pub reservations: Vec<Option<String>>,
    pub cr_preference: Option<String>,
    pub scheduled: Option<(String, f64)>,
}

/// The hidden input member by which `RequestSpotInstances` passes its request id to
/// `RunInstances` (the protocol layer never produces it from a client request).
pub(crate) const SPOT_REQUEST_KEY: &str = "__ferrocloud_spot_request";
/// Likewise for `RunScheduledInstances`: (scheduled instance id, hourly price).
pub(crate) const SCHEDULED_KEY: &str = "__ferrocloud_scheduled";

fn combination(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterCombination", msg)
}

/// Validate the purchasing and placement parts of a `RunInstances` input for `count`
/// instances of `itype` in zone `az`. Writes nothing.
pub(crate) fn plan_launch(
    c: &Ctx<'_>,
    input: &Value,
    itype: &instance_types::InstanceTypeInfo,
    az: &str,
    count: i64,
) -> Result<LaunchPlan, ApiError> {
    let n = usize::try_from(count.max(1)).unwrap_or(1);
    let mut plan = LaunchPlan {
        hosts: vec![None; n],
        reservations: vec![None; n],
        ..Default::default()
    };
    // Spot.
    if let Some(m) = input.get("InstanceMarketOptions") {
        match opt_str(m, "MarketType") {
            Some("spot") => {
                let o = m.get("SpotOptions").cloned().unwrap_or(Value::Null);
                let max_price = match opt_str(&o, "MaxPrice").filter(|s| !s.is_empty()) {
                    Some(s) => Some(s.parse::<f64>().map_err(|_| {
                        invalid_value(format!("Invalid value '{s}' for MaxPrice."))
                    })?),
                    None => None,
                };
                let kind = opt_str(&o, "SpotInstanceType")
                    .unwrap_or("one-time")
                    .to_string();
                let interruption = opt_str(&o, "InstanceInterruptionBehavior")
                    .unwrap_or("terminate")
                    .to_string();
                if kind == "one-time" && interruption != "terminate" {
                    return Err(combination(format!(
                        "The interruption behavior '{interruption}' is only supported for persistent Spot requests."
                    )));
                }
                if let Some(mp) = max_price {
                    let cur = spot_price(&itype.name, az, now());
                    if mp < cur {
                        return Err(ApiError::client(
                            "SpotMaxPriceTooLow",
                            format!(
                                "Your Spot request price of {mp} is lower than the minimum required Spot request fulfillment price of {}.",
                                price_str(cur)
                            ),
                        ));
                    }
                }
                plan.spot = Some(SpotTerms {
                    max_price,
                    kind,
                    interruption,
                    request_id: opt_str(input, SPOT_REQUEST_KEY).map(str::to_string),
                });
            }
            Some("capacity-block") => {
                return Err(ApiError::client(
                    "InvalidParameterValue",
                    "Capacity Blocks are not available: no capacity block offerings exist.",
                ))
            }
            Some(other) => {
                return Err(invalid_value(format!(
                    "Value ({other}) for parameter MarketType is invalid."
                )))
            }
            None => {}
        }
    }
    if let Some(s) = input.get(SCHEDULED_KEY) {
        plan.scheduled = Some((
            opt_str(s, "Id").unwrap_or_default().to_string(),
            s.get("Price").and_then(Value::as_f64).unwrap_or(0.0),
        ));
    }
    // Placement.
    let placement = input.get("Placement").cloned().unwrap_or(Value::Null);
    let host_id = opt_str(&placement, "HostId").filter(|s| !s.is_empty());
    let mut tenancy = opt_str(&placement, "Tenancy")
        .filter(|s| !s.is_empty())
        .unwrap_or(if host_id.is_some() { "host" } else { "default" })
        .to_string();
    if tenancy == "default" && host_id.is_some() {
        tenancy = "host".into();
    }
    if !matches!(tenancy.as_str(), "default" | "dedicated" | "host") {
        return Err(invalid_value(format!(
            "Value ({tenancy}) for parameter tenancy is invalid."
        )));
    }
    let affinity = opt_str(&placement, "Affinity").filter(|s| !s.is_empty());
    if let Some(a) = affinity {
        if tenancy != "host" {
            return Err(combination(
                "The parameter affinity cannot be used without specifying a tenancy of 'host'",
            ));
        }
        if a != "default" && a != "host" {
            return Err(ApiError::client(
                "InvalidAffinity",
                format!("Value ({a}) for parameter affinity is invalid."),
            ));
        }
    }
    if tenancy == "host" && plan.spot.is_some() {
        return Err(combination(
            "Spot Instances cannot be launched onto a Dedicated Host.",
        ));
    }
    if tenancy == "host" {
        let hosts = super::hosts::place(c, &itype.name, itype.vcpus, az, host_id, n, &[])?;
        plan.hosts = hosts.into_iter().map(Some).collect();
    }
    plan.tenancy = tenancy;
    plan.affinity = affinity.map(str::to_string);
    // Capacity reservations.
    if let Some(spec) = input.get("CapacityReservationSpecification") {
        let target = spec
            .get("CapacityReservationTarget")
            .and_then(|t| opt_str(t, "CapacityReservationId"))
            .filter(|s| !s.is_empty());
        let pref = opt_str(spec, "CapacityReservationPreference");
        if target.is_some() && pref.is_some() {
            return Err(combination(
                "The parameters CapacityReservationPreference and CapacityReservationTarget cannot be used together.",
            ));
        }
        if let Some(p) = pref {
            if !matches!(p, "open" | "none" | "capacity-reservations-only") {
                return Err(invalid_value(format!(
                    "Value ({p}) for parameter CapacityReservationPreference is invalid."
                )));
            }
        }
        plan.cr_preference = pref.map(str::to_string);
        if let Some(id) = target {
            let cr = super::capacity::reserve_targeted(c, id, &itype.name, az, &plan.tenancy, n)?;
            plan.reservations = vec![Some(cr); n];
        }
    }
    let untargeted = plan.reservations.iter().all(Option::is_none);
    if untargeted
        && plan.spot.is_none()
        && plan.tenancy == "default"
        && plan.cr_preference.as_deref() != Some("none")
    {
        plan.reservations = super::capacity::reserve_open(c, &itype.name, az, n)?;
        if plan.cr_preference.is_none() && plan.reservations.iter().any(Option::is_some) {
            plan.cr_preference = Some("open".into());
        }
        if plan.cr_preference.as_deref() == Some("capacity-reservations-only")
            && plan.reservations.iter().any(Option::is_none)
        {
            return Err(ApiError::client(
                "InsufficientInstanceCapacity",
                "There is not enough capacity in your Capacity Reservations to launch the instances.",
            ));
        }
    }
    check_vcpus(
        c,
        &itype.name,
        plan.spot.is_some(),
        u64::from(itype.vcpus) * n as u64,
    )?;
    Ok(plan)
}

/// Record what instance number `index` of a launch was bought as (after its record is saved)
/// and open its billing period.
pub(crate) fn launched(
    c: &Ctx<'_>,
    rec: &InstanceRecord,
    plan: &LaunchPlan,
    index: usize,
) -> Result<(), ApiError> {
    let mut p = Purchase {
        tenancy: plan.tenancy.clone(),
        host_id: plan.hosts.get(index).cloned().flatten(),
        affinity: plan.affinity.clone(),
        cr_id: plan.reservations.get(index).cloned().flatten(),
        cr_preference: plan.cr_preference.clone(),
        open_since: Some(now()),
        ..Default::default()
    };
    if let Some(s) = &plan.spot {
        p.lifecycle = Some("spot".into());
        p.interruption = Some(s.interruption.clone());
        let id = super::spot::fulfil(c, rec, s)?;
        p.spot_request_id = Some(id);
    }
    if let Some((id, price)) = &plan.scheduled {
        p.lifecycle = Some("scheduled".into());
        p.scheduled_id = Some(id.clone());
        p.scheduled_price = Some(*price);
    }
    save_purchase(c, &rec.instance_id, &p)
}

/// Before `StopInstances`: an instance of a one-time spot request cannot be stopped.
pub(crate) fn check_stop(c: &Ctx<'_>, recs: &[InstanceRecord]) -> Result<(), ApiError> {
    for r in recs {
        let p = purchase_of(c.store, &c.scope, &r.instance_id);
        if p.lifecycle.as_deref() == Some("spot") && p.interruption.as_deref() == Some("terminate")
        {
            return Err(ApiError::client(
                "UnsupportedOperation",
                format!(
                    "You can't stop the Spot Instance '{}' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.",
                    r.instance_id
                ),
            ));
        }
    }
    Ok(())
}

/// Before `StartInstances`: the vCPU limit, a slot of its capacity reservation, and a host for
/// instances with host tenancy.
pub(crate) fn check_start(c: &Ctx<'_>, recs: &[InstanceRecord]) -> Result<(), ApiError> {
    let starting: Vec<&InstanceRecord> = recs.iter().filter(|r| r.state == "stopped").collect();
    // Per market and bucket: (spot, bucket, a type of the bucket, vCPUs starting).
    let mut more: Vec<(bool, &str, &str, u64)> = Vec::new();
    for r in &starting {
        let spot = c.ix(|ix| ix.entry(&r.instance_id).is_some_and(|e| e.spot))?;
        let bucket = vcpu_bucket(&r.instance_type);
        match more.iter_mut().find(|m| m.0 == spot && m.1 == bucket) {
            Some(m) => m.3 += u64::from(r.vcpus),
            None => more.push((spot, bucket, r.instance_type.as_str(), u64::from(r.vcpus))),
        }
    }
    for (spot, _, itype, n) in more {
        check_vcpus(c, itype, spot, n)?;
    }
    for r in starting {
        let mut p = purchase_of(c.store, &c.scope, &r.instance_id);
        super::capacity::on_start(c, r, &mut p)?;
        save_purchase(c, &r.instance_id, &p)?;
        if p.tenancy() != "host" {
            continue;
        }
        let pinned = p.affinity.as_deref() == Some("host");
        let want = p.host_id.clone();
        let placed = match super::hosts::place(
            c,
            &r.instance_type,
            r.vcpus,
            &r.availability_zone,
            want.as_deref(),
            1,
            std::slice::from_ref(&r.instance_id),
        ) {
            Ok(h) => h,
            Err(e) if pinned || want.is_none() => return Err(e),
            Err(_) => super::hosts::place(
                c,
                &r.instance_type,
                r.vcpus,
                &r.availability_zone,
                None,
                1,
                std::slice::from_ref(&r.instance_id),
            )?,
        };
        p.host_id = placed.into_iter().next();
        save_purchase(c, &r.instance_id, &p)?;
    }
    Ok(())
}

/// An instance changed from state `prev` to `rec.state`: open or accrue its billing period and
/// tell its spot request. Never fails (a failure is logged).
pub(crate) fn transition(store: &dyn Store, prev: &str, rec: &InstanceRecord) {
    if prev == rec.state {
        return;
    }
    let scope = Scope::new(&rec.owner_id, &rec.region);
    let mut p = purchase_of(store, &scope, &rec.instance_id);
    let t = now();
    let mut changed = false;
    if !active(prev) && active(&rec.state) && p.open_since.is_none() {
        p.open_since = Some(t);
        changed = true;
    }
    if !active(prev) && active(&rec.state) {
        if let Some(id) = &p.spot_request_id {
            super::spot::instance_resumed(store, &scope, id, rec);
        }
    }
    if !active(&rec.state) {
        if let Some(since) = p.open_since.take() {
            changed = true;
            if let Some(l) = ledger(store) {
                let (usage, hourly) = rate(store, &scope, rec, &p, t, true);
                if let Some(usage) = usage {
                    if let Err(e) = l.accrue(
                        &rec.owner_id,
                        &rec.region,
                        "ec2",
                        &rec.instance_id,
                        &usage,
                        "seconds",
                        t - since,
                        hourly / 3600.0,
                        t,
                    ) {
                        tracing::warn!(error = %e, instance = %rec.instance_id, "cannot accrue");
                    }
                }
            }
        }
    }
    if rec.state == "terminated" || rec.state == "stopped" {
        if p.instance_action.take().is_some() {
            changed = true;
        }
        if let Some(id) = &p.spot_request_id {
            super::spot::instance_ended(store, &scope, id, rec);
        }
    }
    if changed {
        if let Err(e) = store.put_json(&scope, PURCHASES, &rec.instance_id, &p) {
            tracing::warn!(error = %e, instance = %rec.instance_id, "cannot save purchase record");
        }
    }
}

/// The usage type and hourly rate of an instance at time `t` (no usage type: not billed per
/// instance, e.g. on a dedicated host, which is billed itself). `include_self`: count the
/// instance as running for reserved-instance coverage even if its state says otherwise.
pub(crate) fn rate(
    store: &dyn Store,
    scope: &Scope,
    rec: &InstanceRecord,
    p: &Purchase,
    t: f64,
    include_self: bool,
) -> (Option<String>, f64) {
    rate_with(rec, p, t, || {
        let covered = super::reserved::coverage(
            store,
            scope,
            t,
            if include_self {
                Some(&rec.instance_id)
            } else {
                None
            },
        );
        covered.get(&rec.instance_id).copied()
    })
}

/// [`rate`] with the reserved rate of the instance (if a reservation covers it) given by
/// `reserved` (asked only for on-demand instances of default tenancy).
fn rate_with(
    rec: &InstanceRecord,
    p: &Purchase,
    t: f64,
    reserved: impl FnOnce() -> Option<f64>,
) -> (Option<String>, f64) {
    let ty = &rec.instance_type;
    match (p.lifecycle.as_deref(), p.tenancy()) {
        (_, "host") => (None, 0.0),
        (Some("spot"), _) => (
            Some(format!("SpotUsage:{ty}")),
            spot_price(ty, &rec.availability_zone, t),
        ),
        (Some("scheduled"), _) => (
            Some(format!("BoxUsage:{ty}")),
            p.scheduled_price
                .unwrap_or_else(|| on_demand(ty, &rec.region)),
        ),
        (_, "dedicated") => (
            Some(format!("DedicatedUsage:{ty}")),
            dedicated_rate(ty, &rec.region),
        ),
        _ => match reserved() {
            Some(r) => (Some(format!("HeavyUsage:{ty}")), r),
            None => (Some(format!("BoxUsage:{ty}")), on_demand(ty, &rec.region)),
        },
    }
}

/// Extra members of an instance in `DescribeInstances`/`RunInstances` output.
pub(crate) fn decorate(c: &Ctx<'_>, r: &InstanceRecord, v: &mut Value) -> Result<(), ApiError> {
    let Some(p) = c.get::<Purchase>(PURCHASES, &r.instance_id)? else {
        v["CapacityReservationSpecification"] = json!({"CapacityReservationPreference": "open"});
        return Ok(());
    };
    if let Some(l) = &p.lifecycle {
        v["InstanceLifecycle"] = json!(l);
    }
    if let Some(id) = &p.spot_request_id {
        v["SpotInstanceRequestId"] = json!(id);
    }
    v["Placement"]["Tenancy"] = json!(p.tenancy());
    if let Some(h) = &p.host_id {
        v["Placement"]["HostId"] = json!(h);
    }
    if let Some(a) = &p.affinity {
        v["Placement"]["Affinity"] = json!(a);
    }
    if let Some(cr) = &p.cr_id {
        v["CapacityReservationId"] = json!(cr);
        v["CapacityReservationSpecification"] = json!({
            "CapacityReservationTarget": {"CapacityReservationId": cr},
        });
    } else {
        v["CapacityReservationSpecification"] = json!({
            "CapacityReservationPreference": p.cr_preference.clone().unwrap_or_else(|| "open".into()),
        });
    }
    Ok(())
}

/// The values of the purchasing and placement filters of `DescribeInstances` for `r`.
pub(crate) fn field(c: &Ctx<'_>, r: &InstanceRecord, name: &str) -> Option<Vec<String>> {
    let p = purchase_of(c.store, &c.scope, &r.instance_id);
    let opt = |v: Option<String>| Some(v.into_iter().collect::<Vec<_>>());
    match name {
        "instance-lifecycle" => opt(p.lifecycle.clone()),
        "spot-instance-request-id" => opt(p.spot_request_id.clone()),
        "tenancy" | "placement.tenancy" => Some(vec![p.tenancy().to_string()]),
        "host-id" | "placement.host-id" => opt(p.host_id.clone()),
        "affinity" => opt(p.affinity.clone()),
        "capacity-reservation-id" => opt(p.cr_id.clone()),
        _ => None,
    }
}

/// Instance metadata that depends on the purchase: `instance-life-cycle` and, once an
/// interruption notice is out, `spot/instance-action` and `spot/termination-time`.
pub(crate) fn imds_patch(
    store: &dyn Store,
    rec: &InstanceRecord,
    leaves: &mut Vec<(String, String)>,
) {
    let scope = Scope::new(&rec.owner_id, &rec.region);
    let p = purchase_of(store, &scope, &rec.instance_id);
    if let Some(l) = &p.lifecycle {
        for (k, v) in leaves.iter_mut() {
            if k == "meta-data/instance-life-cycle" {
                *v = l.clone();
            }
        }
    }
    if let Some((action, at)) = &p.instance_action {
        let t = fc_protocol::value::format_iso8601(at.floor()).replace(".000", "");
        leaves.push((
            "meta-data/spot/instance-action".into(),
            json!({"action": action, "time": t}).to_string(),
        ));
        leaves.push(("meta-data/spot/termination-time".into(), t));
    }
}

// ---- the ledger's live source ----

struct Live {
    store: Arc<dyn Store>,
}

impl LiveSource for Live {
    fn live(&self, t: f64) -> Vec<Line> {
        let store = self.store.as_ref();
        let mut out = Vec::new();
        for scope in store.scopes(PURCHASES).unwrap_or_default() {
            let Ok(list) = scan_all::<Purchase>(store, &scope, PURCHASES) else {
                continue;
            };
            let covered = super::reserved::coverage(store, &scope, t, None);
            for (id, p) in list {
                let Some(since) = p.open_since else { continue };
                let Ok(Some(rec)) = store.get_json::<InstanceRecord>(&scope, INSTANCES, &id) else {
                    continue;
                };
                if !active(&rec.state) {
                    continue;
                }
                let (usage, hourly) = rate_with(&rec, &p, t, || covered.get(&id).copied());
                let Some(usage) = usage else { continue };
                let q = (t - since).max(0.0);
                out.push(Line {
                    account: rec.owner_id.clone(),
                    region: rec.region.clone(),
                    service: "ec2".into(),
                    resource: id,
                    usage_type: usage,
                    unit: "seconds".into(),
                    quantity: q,
                    rate_usd: hourly / 3600.0,
                    amount_usd: q * hourly / 3600.0,
                    first: since,
                    last: t,
                });
            }
        }
        out.extend(super::hosts::live_lines(store, t));
        out
    }
}

/// Accrue a finished period of something that is not an instance (a released host).
#[allow(clippy::too_many_arguments)]
pub(crate) fn accrue(
    store: &dyn Store,
    account: &str,
    region: &str,
    resource: &str,
    usage: &str,
    seconds: f64,
    hourly: f64,
    t: f64,
) {
    if let Some(l) = ledger(store) {
        if let Err(e) = l.accrue(
            account,
            region,
            "ec2",
            resource,
            usage,
            "seconds",
            seconds,
            hourly / 3600.0,
            t,
        ) {
            tracing::warn!(error = %e, resource, "cannot accrue");
        }
    }
}

// ---- the internal endpoint ----

struct Internal {
    inner: Arc<super::Inner>,
}

fn reply(status: u16, body: Value) -> RawReply {
    RawReply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: BodyOut::Bytes(bytes::Bytes::from(body.to_string())),
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[async_trait::async_trait]
impl RawHandler for Internal {
    async fn handle(&self, req: HttpRequest, _body: BodyIn) -> RawReply {
        let path = req.path.trim_end_matches('/');
        match (req.method.as_str(), path) {
            ("POST", "/_ferrocloud/ec2/spot/interrupt") => {
                let Some(id) = query_param(&req.query, "InstanceId") else {
                    return reply(400, json!({"error": "InstanceId is required"}));
                };
                let notice = query_param(&req.query, "NoticeSeconds")
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .unwrap_or(120.0);
                let reason = query_param(&req.query, "Reason").unwrap_or_else(|| "price".into());
                let inner = self.inner.clone();
                let id2 = id.clone();
                let r = tokio::task::spawn_blocking(move || {
                    super::spot::interrupt(&inner, &id2, notice, &reason)
                })
                .await;
                match r {
                    Ok(Ok(v)) => {
                        finish_later(self.inner.clone(), id, notice);
                        reply(200, v)
                    }
                    Ok(Err((status, msg))) => reply(status, json!({"error": msg})),
                    Err(e) => reply(500, json!({"error": e.to_string()})),
                }
            }
            ("POST", "/_ferrocloud/ec2/spot/evaluate") => {
                let at = query_param(&req.query, "At")
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or_else(now);
                let notice = query_param(&req.query, "NoticeSeconds")
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .unwrap_or(120.0);
                let inner = self.inner.clone();
                let r = tokio::task::spawn_blocking(move || {
                    super::spot::evaluate_all(&inner, at, notice)
                })
                .await;
                match r {
                    Ok((marked, fulfilled)) => {
                        for id in &marked {
                            finish_later(self.inner.clone(), id.clone(), notice);
                        }
                        reply(200, json!({"Interrupted": marked, "Fulfilled": fulfilled}))
                    }
                    Err(e) => reply(500, json!({"error": e.to_string()})),
                }
            }
            _ => reply(
                404,
                json!({"error": format!("no ferrocloud endpoint {} {}", req.method, req.path)}),
            ),
        }
    }
}

/// Drop the purchase records of instances EC2 has forgotten (terminated long ago).
fn forget_orphans(store: &dyn Store) {
    for scope in store.scopes(PURCHASES).unwrap_or_default() {
        let Ok(list) = scan_all::<Purchase>(store, &scope, PURCHASES) else {
            continue;
        };
        for (id, p) in list {
            if p.open_since.is_some() {
                continue;
            }
            if let Ok(None) = store.get_json::<InstanceRecord>(&scope, INSTANCES, &id) {
                let _ = store.delete(&scope, PURCHASES, &id);
            }
        }
    }
}

/// Stop or terminate an interrupted spot instance once its notice period is over.
fn finish_later(inner: Arc<super::Inner>, id: String, notice: f64) {
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs_f64(notice)).await;
        let _ = tokio::task::spawn_blocking(move || super::spot::finish_interruption(&inner, &id))
            .await;
    });
}

/// The record of an instance wherever it lives (for the internal endpoint).
pub(crate) fn locate_instance(store: &dyn Store, id: &str) -> Option<InstanceRecord> {
    instances::load(store, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestContext, Service};

    fn ami() -> String {
        super::super::images::catalog("us-east-1")
            .into_iter()
            .find(|i| i.name.starts_with("debian-12-amd64"))
            .expect("debian in the catalog")
            .image_id
    }

    async fn call(ec2: &Ec2, op: &str, input: Value) -> Result<Value, ApiError> {
        let ctx = RequestContext::for_account("000000000000", "us-east-1", "ec2", op);
        ec2.call(&ctx, input).await
    }

    #[tokio::test]
    async fn ledger_accrues_finished_periods_and_prices_running_ones() {
        let store: Arc<dyn Store> =
            Arc::new(fc_store::SqliteStore::in_memory().expect("in-memory store"));
        let dir = std::env::temp_dir().join(format!("fc-purch-{}", uuid::Uuid::new_v4()));
        let ec2 = Ec2::new(store.clone(), dir.clone());
        let ledger = Ledger::new(store);
        ec2.attach_ledger(ledger.clone());
        ec2.set_vcpu_limit(6);
        let run =
            json!({"ImageId": ami(), "MinCount": 2, "MaxCount": 2, "InstanceType": "t3.medium"});
        let out = call(&ec2, "RunInstances", run.clone()).await.unwrap();
        let id = out["Instances"][0]["InstanceId"]
            .as_str()
            .unwrap()
            .to_string();
        // Over the limit of 6 vCPUs.
        let e = call(&ec2, "RunInstances", run).await.unwrap_err();
        assert_eq!(e.code, "VcpuLimitExceeded");
        assert!(e.message.contains("limit of 6 allows"));
        std::thread::sleep(std::time::Duration::from_millis(50));
        let live: Vec<Line> = ledger
            .lines(now())
            .into_iter()
            .filter(|l| l.resource == id)
            .collect();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].usage_type, "BoxUsage:t3.medium");
        assert!(live[0].quantity > 0.0);
        call(&ec2, "StopInstances", json!({"InstanceIds": [id]}))
            .await
            .unwrap();
        let t = now() + 100.0;
        let after: Vec<Line> = ledger
            .lines(t)
            .into_iter()
            .filter(|l| l.resource == id)
            .collect();
        assert_eq!(after.len(), 1, "{after:?}");
        // Accrued when it stopped: no longer growing.
        assert!(after[0].quantity < 50.0);
        assert!((after[0].rate_usd * 3600.0 - 0.0416).abs() < 1e-9);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn price_table_covers_the_catalog() {
        let p = prices();
        let cat: Vec<&str> = ["t3.micro", "m5.large", "c7g.16xlarge", "p4d.24xlarge"].to_vec();
        for t in cat {
            assert!(p.on_demand.contains_key(t), "{t}");
            assert!(instance_types::instance_type(t).is_some());
        }
        assert!((on_demand("t3.micro", "us-east-1") - 0.0104).abs() < 1e-9);
        assert!(on_demand("t3.micro", "eu-central-1") > 0.0104);
    }

    #[test]
    fn spot_prices_are_a_deterministic_fraction_varying_by_zone_and_hour() {
        let od = on_demand("m5.large", "us-east-1");
        let mut seen = std::collections::BTreeSet::new();
        for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
            for h in 0..24 {
                let t = 1_700_000_000.0 + f64::from(h) * 3600.0;
                let p = spot_price("m5.large", az, t);
                assert!(p >= od * 0.3 - 1e-6 && p <= od * 0.4 + 1e-6, "{p}");
                assert_eq!(p, spot_price("m5.large", az, t + 10.0));
                seen.insert(price_str(p));
            }
        }
        assert!(seen.len() > 10);
        assert_eq!(price_str(0.0312), "0.031200");
    }

    #[test]
    fn host_rates_follow_the_rule() {
        let m5 = host_rate("m5", "us-east-1");
        assert!((m5 - 0.048 * 96.0 * 1.1).abs() < 1e-6, "{m5}");
        assert!(host_shape("m5").is_some());
        assert_eq!(host_rate("t2", "us-east-1"), 0.0);
        assert!((dedicated_rate("m5.large", "us-east-1") - 0.1056).abs() < 1e-9);
    }
}
