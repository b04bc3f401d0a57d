//! Spot Instances: `RequestSpotInstances`, `DescribeSpotInstanceRequests`,
//! `CancelSpotInstanceRequests`, `DescribeSpotPriceHistory`, the spot request behind every
//! `RunInstances` with `InstanceMarketOptions` (one per instance, as EC2 does) and
//! interruptions.
//!
//! Prices come from the model in `purchasing::spot_price` (30–40% of on-demand, fixed per type,
//! zone and hour). A request whose maximum price is below the current price stays `open` with
//! status `price-too-low`; otherwise it launches a real instance at once (`active`,
//! `fulfilled`). An interruption (the internal endpoint, see `purchasing`) first publishes the
//! two-minute notice in the instance's metadata (`spot/instance-action`) and marks the request
//! (`marked-for-termination`/`marked-for-stop`), then, when the notice period ends, stops or
//! terminates the instance per its interruption behaviour with state reason
//! `Server.SpotInstanceTermination`; the request then reads `instance-terminated-by-price`
//! (or `-by-user` when the user ended the instance).

use super::instances::{self, InstanceRecord};
use super::purchasing::{self, price_str, spot_price, Purchase, SpotTerms, PURCHASES};
use super::{
    check_dry_run_v, filters, invalid_value, matches, now, one, opt_i64, opt_str, page_output,
    paginate, req_list, scan_all, tags, vpcs, with_tags, Ctx, Inner, INSTANCES,
};
use fc_protocol::value::epoch_value;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) const SPOT_REQUESTS: &str = "ec2_spot_requests";
const PRODUCT: &str = "Linux/UNIX";

/// One spot instance request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SpotRequest {
    pub id: String,
    /// `one-time` or `persistent`.
    pub kind: String,
    /// `open`, `active`, `closed`, `cancelled`, `failed`, `disabled`.
    pub state: String,
    pub status_code: String,
    pub status_message: String,
    pub status_time: f64,
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The maximum price, as given (on-demand price when not given).
    pub spot_price: String,
    pub launch_spec: Value,
    pub create_time: f64,
    #[serde(default)]
    pub launched_az: Option<String>,
    pub interruption: String,
    #[serde(default)]
    pub valid_from: Option<f64>,
    #[serde(default)]
    pub valid_until: Option<f64>,
    /// Why the current interruption happens: `price`, `capacity`.
    #[serde(default)]
    pub interrupt_reason: Option<String>,
    /// The `RunInstances` input that fulfils it (requests of `RequestSpotInstances`), for
    /// fulfilling it later (a price that dropped, a persistent request reopened).
    #[serde(default)]
    pub run: Option<Value>,
}

fn status_message(code: &str, r: &SpotRequest) -> String {
    let iid = r.instance_id.clone().unwrap_or_default();
    match code {
        "pending-evaluation" => {
            "Your Spot request has been submitted for review, and is pending evaluation.".into()
        }
        "fulfilled" => "Your Spot request is fulfilled.".into(),
        "canceled-before-fulfillment" => {
            "Your Spot request was canceled before it was fulfilled.".into()
        }
        "request-canceled-and-instance-running" => {
            format!("Spot Instance request is canceled, but the instance {iid} is still running.")
        }
        "marked-for-termination" => {
            "Your Spot Instance is marked for termination because of an interruption.".into()
        }
        "marked-for-stop" => {
            "Your Spot Instance is marked for stop because of an interruption.".into()
        }
        "marked-for-hibernation" => {
            "Your Spot Instance is marked for hibernation because of an interruption.".into()
        }
        "instance-terminated-by-price" => {
            "Your Spot Instance was terminated because the Spot price exceeded your maximum price."
                .into()
        }
        "instance-stopped-by-price" => {
            "Your Spot Instance was stopped because the Spot price exceeded your maximum price."
                .into()
        }
        "instance-terminated-no-capacity" => {
            "Your Spot Instance was terminated because there was no Spot capacity available.".into()
        }
        "instance-stopped-no-capacity" => {
            "Your Spot Instance was stopped because there was no Spot capacity available.".into()
        }
        "instance-terminated-by-user" => {
            format!("Spot Instance terminated by the user: {iid}.")
        }
        "instance-stopped-by-user" => format!("Spot Instance stopped by the user: {iid}."),
        "capacity-not-available" => {
            "There is no Spot capacity available that matches your request.".into()
        }
        other => other.to_string(),
    }
}

fn set_status(r: &mut SpotRequest, state: &str, code: &str) {
    r.state = state.into();
    r.status_code = code.into();
    r.status_message = status_message(code, r);
    r.status_time = now();
}

fn request_value(c: &Ctx<'_>, r: &SpotRequest) -> Result<Value, ApiError> {
    let mut v = json!({
        "SpotInstanceRequestId": r.id,
        "SpotPrice": r.spot_price,
        "Type": r.kind,
        "State": r.state,
        "Status": {
            "Code": r.status_code,
            "Message": r.status_message,
            "UpdateTime": epoch_value(r.status_time),
        },
        "LaunchSpecification": r.launch_spec,
        "CreateTime": epoch_value(r.create_time),
        "ProductDescription": PRODUCT,
        "InstanceInterruptionBehavior": r.interruption,
    });
    if let Some(i) = &r.instance_id {
        v["InstanceId"] = json!(i);
    }
    if let Some(z) = &r.launched_az {
        v["LaunchedAvailabilityZone"] = json!(z);
    }
    if let Some(t) = r.valid_from {
        v["ValidFrom"] = epoch_value(t);
    }
    if let Some(t) = r.valid_until {
        v["ValidUntil"] = epoch_value(t);
    }
    Ok(with_tags(v, &tags::get(c, &r.id)?))
}

fn new_id() -> String {
    format!("sir-{}", fc_types::ids::random_hex(8))
}

/// The launch specification shown on a request, from a `RunInstances` input.
fn spec_from_run(input: &Value) -> Value {
    let mut spec = json!({});
    for k in [
        "ImageId",
        "InstanceType",
        "KeyName",
        "SubnetId",
        "IamInstanceProfile",
    ] {
        if let Some(v) = input.get(k) {
            spec[k] = v.clone();
        }
    }
    if let Some(z) = input
        .get("Placement")
        .and_then(|p| p.get("AvailabilityZone"))
    {
        spec["Placement"] = json!({"AvailabilityZone": z});
    }
    spec["Monitoring"] = json!({"Enabled": false});
    spec
}

/// Called by `purchasing::launched` for a spot instance: the request it fulfils (created now
/// for `RunInstances`), updated to `active`/`fulfilled`.
pub(crate) fn fulfil(c: &Ctx<'_>, rec: &InstanceRecord, t: &SpotTerms) -> Result<String, ApiError> {
    let mut r = match t
        .request_id
        .as_deref()
        .and_then(|id| c.get::<SpotRequest>(SPOT_REQUESTS, id).ok().flatten())
    {
        Some(r) => r,
        None => {
            let od = purchasing::on_demand(&rec.instance_type, &rec.region);
            let mut spec = json!({
                "ImageId": rec.image_id,
                "InstanceType": rec.instance_type,
                "SubnetId": rec.subnet_id,
                "Placement": {"AvailabilityZone": rec.availability_zone},
                "Monitoring": {"Enabled": false},
                "SecurityGroups": rec.groups.iter().map(|(id, n)| json!({"GroupId": id, "GroupName": n})).collect::<Vec<_>>(),
            });
            if let Some(k) = &rec.key_name {
                spec["KeyName"] = json!(k);
            }
            SpotRequest {
                id: new_id(),
                kind: t.kind.clone(),
                state: "open".into(),
                status_code: "pending-evaluation".into(),
                status_message: String::new(),
                status_time: now(),
                instance_id: None,
                spot_price: price_str(t.max_price.unwrap_or(od)),
                launch_spec: spec,
                create_time: now(),
                launched_az: None,
                interruption: t.interruption.clone(),
                valid_from: None,
                valid_until: None,
                interrupt_reason: None,
                run: None,
            }
        }
    };
    r.instance_id = Some(rec.instance_id.clone());
    r.launched_az = Some(rec.availability_zone.clone());
    set_status(&mut r, "active", "fulfilled");
    c.put(SPOT_REQUESTS, &r.id, &r)?;
    Ok(r.id)
}

/// Called when a spot instance stopped or terminated: the request's state and status.
pub(crate) fn instance_ended(store: &dyn Store, scope: &Scope, id: &str, rec: &InstanceRecord) {
    let Ok(Some(mut r)) = store.get_json::<SpotRequest>(scope, SPOT_REQUESTS, id) else {
        return;
    };
    if r.instance_id.as_deref() != Some(rec.instance_id.as_str()) {
        return;
    }
    let by_service = rec
        .state_reason
        .as_ref()
        .is_some_and(|(c, _)| c == "Server.SpotInstanceTermination");
    let stopped = rec.state == "stopped";
    let verb = if stopped { "stopped" } else { "terminated" };
    let code = if by_service {
        match r.interrupt_reason.as_deref() {
            Some("capacity") => format!("instance-{verb}-no-capacity"),
            _ => format!("instance-{verb}-by-price"),
        }
    } else {
        format!("instance-{verb}-by-user")
    };
    let state = if r.state == "cancelled" {
        "cancelled"
    } else if stopped {
        "disabled"
    } else if r.kind == "persistent" {
        "open"
    } else {
        "closed"
    };
    r.interrupt_reason = None;
    set_status(&mut r, state, &code);
    if let Err(e) = store.put_json(scope, SPOT_REQUESTS, &r.id, &r) {
        tracing::warn!(error = %e, request = %r.id, "cannot save spot request");
    }
}

/// A stopped spot instance started again: its (disabled) request is active again.
pub(crate) fn instance_resumed(store: &dyn Store, scope: &Scope, id: &str, rec: &InstanceRecord) {
    let Ok(Some(mut r)) = store.get_json::<SpotRequest>(scope, SPOT_REQUESTS, id) else {
        return;
    };
    if r.state != "disabled" || r.instance_id.as_deref() != Some(rec.instance_id.as_str()) {
        return;
    }
    set_status(&mut r, "active", "fulfilled");
    if let Err(e) = store.put_json(scope, SPOT_REQUESTS, &r.id, &r) {
        tracing::warn!(error = %e, request = %r.id, "cannot save spot request");
    }
}

// ---- RequestSpotInstances ----

pub(crate) fn request_spot_instances(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let spec = input
        .get("LaunchSpecification")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let count = opt_i64(input, "InstanceCount").unwrap_or(1);
    if !(1..=20).contains(&count) {
        return Err(invalid_value(format!(
            "Value ({count}) for parameter instanceCount is invalid. Expected a value between 1 and 20."
        )));
    }
    let kind = opt_str(input, "Type").unwrap_or("one-time").to_string();
    if kind != "one-time" && kind != "persistent" {
        return Err(invalid_value(format!(
            "Value ({kind}) for parameter type is invalid."
        )));
    }
    let interruption = opt_str(input, "InstanceInterruptionBehavior")
        .unwrap_or("terminate")
        .to_string();
    let max = match opt_str(input, "SpotPrice").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<f64>()
                .ok()
                .filter(|p| *p > 0.0)
                .ok_or_else(|| invalid_value(format!("Invalid value '{s}' for SpotPrice.")))?,
        ),
        None => None,
    };
    // The launch input, validated by a dry run of RunInstances (minus the price check: a low
    // price leaves the request open).
    let mut run = json!({"MinCount": 1, "MaxCount": 1});
    for k in [
        "ImageId",
        "InstanceType",
        "KeyName",
        "SubnetId",
        "UserData",
        "IamInstanceProfile",
        "SecurityGroupIds",
        "SecurityGroups",
    ] {
        if let Some(v) = spec.get(k) {
            run[k] = v.clone();
        }
    }
    if let Some(z) = spec
        .get("Placement")
        .and_then(|p| p.get("AvailabilityZone"))
    {
        run["Placement"] = json!({"AvailabilityZone": z});
    }
    run["InstanceMarketOptions"] = json!({"MarketType": "spot", "SpotOptions": {
        "SpotInstanceType": kind, "InstanceInterruptionBehavior": interruption,
    }});
    let mut dry = run.clone();
    dry["DryRun"] = json!(true);
    match instances::run_instances(c, &dry) {
        Err(e) if e.code == "DryRunOperation" => {}
        Err(e) => return Err(e),
        Ok(_) => return Err(ApiError::internal("a dry run launched instances")),
    }
    let tag_list = fc_types::tags::from_specifications(
        input.get("TagSpecifications"),
        "spot-instances-request",
    );
    fc_types::tags::validate_all(&tag_list).map_err(|e| invalid_value(e.to_string()))?;
    check_dry_run_v(input)?;
    let itype = opt_str(&spec, "InstanceType")
        .unwrap_or("t2.micro")
        .to_string();
    let od = purchasing::on_demand(&itype, c.region());
    let mut shown = spec_from_run(&run);
    let mut groups: Vec<Value> = super::str_list(&spec, "SecurityGroupIds")
        .into_iter()
        .map(|g| json!({"GroupId": g}))
        .collect();
    groups.extend(
        super::str_list(&spec, "SecurityGroups")
            .into_iter()
            .map(|g| json!({"GroupName": g})),
    );
    if !groups.is_empty() {
        shown["SecurityGroups"] = Value::Array(groups);
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let mut r = SpotRequest {
            id: new_id(),
            kind: kind.clone(),
            state: "open".into(),
            status_code: String::new(),
            status_message: String::new(),
            status_time: now(),
            instance_id: None,
            spot_price: price_str(max.unwrap_or(od)),
            launch_spec: shown.clone(),
            create_time: now(),
            launched_az: None,
            interruption: interruption.clone(),
            valid_from: input
                .get("ValidFrom")
                .and_then(fc_protocol::value::value_to_epoch),
            valid_until: input
                .get("ValidUntil")
                .and_then(fc_protocol::value::value_to_epoch),
            interrupt_reason: None,
            run: Some(run.clone()),
        };
        set_status(&mut r, "open", "pending-evaluation");
        c.put(SPOT_REQUESTS, &r.id, &r)?;
        tags::add(c, &r.id, &tag_list)?;
        evaluate(c, &mut r, &run, max, now())?;
        out.push(request_value(c, &r)?);
    }
    Ok(json!({"SpotInstanceRequests": out}))
}

/// Try to fulfil an open request now.
fn evaluate(
    c: &Ctx<'_>,
    r: &mut SpotRequest,
    run: &Value,
    max: Option<f64>,
    at: f64,
) -> Result<(), ApiError> {
    let itype = opt_str(run, "InstanceType").unwrap_or("t2.micro");
    let zone = opt_str(&r.launch_spec["Placement"], "AvailabilityZone")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}a", c.region()));
    let cur = spot_price(itype, &zone, at);
    if let Some(m) = max {
        if m < cur {
            r.status_message = format!(
                "Your Spot request price of {m} is lower than the minimum required Spot request fulfillment price of {}.",
                price_str(cur)
            );
            r.status_code = "price-too-low".into();
            r.status_time = now();
            return c.put(SPOT_REQUESTS, &r.id, r);
        }
    }
    let mut launch = run.clone();
    launch[purchasing::SPOT_REQUEST_KEY] = json!(r.id);
    match instances::run_instances(c, &launch) {
        Ok(_) => {
            if let Some(saved) = c.get::<SpotRequest>(SPOT_REQUESTS, &r.id)? {
                *r = saved;
            }
            Ok(())
        }
        Err(e) => {
            let code = if e.code == "VcpuLimitExceeded" || e.code == "MaxSpotInstanceCountExceeded"
            {
                "capacity-not-available"
            } else {
                "bad-parameters"
            };
            set_status(r, "open", code);
            if code == "bad-parameters" {
                r.state = "failed".into();
                r.status_message = e.message.clone();
            }
            c.put(SPOT_REQUESTS, &r.id, r)
        }
    }
}

// ---- Describe / Cancel ----

const REQUEST_FILTERS: &[&str] = &[
    "spot-instance-request-id",
    "state",
    "status-code",
    "status-message",
    "instance-id",
    "type",
    "spot-price",
    "launched-availability-zone",
    "product-description",
    "launch.instance-type",
    "launch.image-id",
    "launch.key-name",
    "instance-interruption-behavior",
];

fn find(c: &Ctx<'_>, id: &str) -> Result<SpotRequest, ApiError> {
    let ok = id
        .strip_prefix("sir-")
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !ok {
        return Err(ApiError::client(
            "InvalidSpotInstanceRequestID.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"sir-...\")"),
        ));
    }
    c.get::<SpotRequest>(SPOT_REQUESTS, id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidSpotInstanceRequestID.NotFound",
            format!("The spot instance request ID '{id}' does not exist"),
        )
    })
}

pub(crate) fn describe_spot_instance_requests(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let fs = filters(input, REQUEST_FILTERS, true)?;
    let ids = super::str_list(input, "SpotInstanceRequestIds");
    let all: Vec<SpotRequest> = if ids.is_empty() {
        c.all::<SpotRequest>(SPOT_REQUESTS)?
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    } else {
        ids.iter().map(|id| find(c, id)).collect::<Result<_, _>>()?
    };
    check_dry_run_v(input)?;
    let mut items = Vec::new();
    for r in all {
        let t = tags::get(c, &r.id)?;
        let ok = matches(&fs, &t, |n| match n {
            "spot-instance-request-id" => one(&r.id),
            "state" => one(&r.state),
            "status-code" => one(&r.status_code),
            "status-message" => one(&r.status_message),
            "instance-id" => Some(r.instance_id.clone().into_iter().collect()),
            "type" => one(&r.kind),
            "spot-price" => one(&r.spot_price),
            "launched-availability-zone" => Some(r.launched_az.clone().into_iter().collect()),
            "product-description" => one(PRODUCT),
            "launch.instance-type" => one(opt_str(&r.launch_spec, "InstanceType")?),
            "launch.image-id" => one(opt_str(&r.launch_spec, "ImageId")?),
            "launch.key-name" => one(opt_str(&r.launch_spec, "KeyName")?),
            "instance-interruption-behavior" => one(&r.interruption),
            _ => None,
        });
        if ok {
            items.push((r.id.clone(), request_value(c, &r)?));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("SpotInstanceRequests", page, next))
}

pub(crate) fn cancel_spot_instance_requests(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let ids = req_list(input, "SpotInstanceRequestIds")?;
    let mut recs = Vec::new();
    for id in &ids {
        recs.push(find(c, id)?);
    }
    check_dry_run_v(input)?;
    let mut out = Vec::new();
    for mut r in recs {
        if !matches!(r.state.as_str(), "cancelled" | "closed" | "failed") {
            let running = r.instance_id.as_deref().and_then(|i| {
                c.get::<InstanceRecord>(INSTANCES, i)
                    .ok()
                    .flatten()
                    .filter(|x| x.state != "terminated" && x.state != "shutting-down")
            });
            let code = if running.is_some() {
                "request-canceled-and-instance-running".to_string()
            } else if r.instance_id.is_some() {
                r.status_code.clone()
            } else {
                "canceled-before-fulfillment".to_string()
            };
            set_status(&mut r, "cancelled", &code);
            c.put(SPOT_REQUESTS, &r.id, &r)?;
        }
        out.push(json!({"SpotInstanceRequestId": r.id, "State": r.state}));
    }
    Ok(json!({"CancelledSpotInstanceRequests": out}))
}

// ---- price history ----

pub(crate) fn describe_spot_price_history(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "availability-zone",
            "instance-type",
            "product-description",
            "spot-price",
            "timestamp",
        ],
        false,
    )?;
    let mut types = super::str_list(input, "InstanceTypes");
    for t in &types {
        if super::instance_types::instance_type(t).is_none() {
            return Err(invalid_value(format!(
                "Invalid value '{t}' for InstanceType."
            )));
        }
    }
    if types.is_empty() {
        types = purchasing::priced_types();
    }
    let mut products = super::str_list(input, "ProductDescriptions");
    if products.is_empty() {
        products = vec![PRODUCT.to_string()];
    }
    let zones: Vec<String> = match opt_str(input, "AvailabilityZone").filter(|s| !s.is_empty()) {
        Some(z) => vec![
            vpcs::zone(c.region(), z)
                .ok_or_else(|| invalid_value(format!("Invalid availability zone: [{z}]")))?
                .name,
        ],
        None => vpcs::zones(c.region())
            .into_iter()
            .map(|z| z.name)
            .collect(),
    };
    let t_now = now();
    let start = input
        .get("StartTime")
        .and_then(fc_protocol::value::value_to_epoch);
    let end = input
        .get("EndTime")
        .and_then(fc_protocol::value::value_to_epoch)
        .unwrap_or(t_now)
        .min(t_now);
    if let Some(s) = start {
        if s > end {
            return Err(invalid_value(
                "The start time must be before the end time.".to_string(),
            ));
        }
    }
    check_dry_run_v(input)?;
    // The price changes at every hour: one point per hour boundary in the range, plus the
    // price in effect at its start. Without a start time: the current price only. At most
    // 90 days back, as AWS keeps.
    let start = start.map(|s| s.max(end - 90.0 * 86400.0));
    let mut times = Vec::new();
    match start {
        None => times.push(((end / 3600.0).floor() * 3600.0).max(0.0)),
        Some(s) => {
            let mut h = (s / 3600.0).floor() * 3600.0;
            while h <= end {
                times.push(h);
                h += 3600.0;
            }
        }
    }
    let mut items = Vec::new();
    for ty in &types {
        for z in &zones {
            for p in &products {
                for &t in &times {
                    let price = price_str(spot_price(ty, z, t));
                    let ok = fc_types::filter::matches(&fs, |n| match n {
                        "availability-zone" => one(z),
                        "instance-type" => one(ty),
                        "product-description" => one(p),
                        "spot-price" => one(&price),
                        "timestamp" => one(fc_protocol::value::format_iso8601(t)),
                        _ => None,
                    });
                    if !ok {
                        continue;
                    }
                    let key = format!("{:015}/{ty}/{z}/{p}", 1e14 as i64 - t as i64);
                    items.push((
                        key,
                        json!({
                            "AvailabilityZone": z,
                            "InstanceType": ty,
                            "ProductDescription": p,
                            "SpotPrice": price,
                            "Timestamp": epoch_value(t),
                        }),
                    ));
                }
            }
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (1, 1000), Some(1000))?;
    Ok(page_output("SpotPriceHistory", page, next))
}

// ---- interruptions ----

/// Put out an interruption notice for spot instance `id`; the caller schedules
/// [`finish_interruption`] after `notice` seconds. Errors are (HTTP status, message).
pub(crate) fn interrupt(
    inner: &Arc<Inner>,
    id: &str,
    notice: f64,
    reason: &str,
) -> Result<Value, (u16, String)> {
    let _g = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
    let store = inner.store.as_ref();
    let rec = purchasing::locate_instance(store, id)
        .ok_or_else(|| (404, format!("The instance ID '{id}' does not exist")))?;
    let scope = Scope::new(&rec.owner_id, &rec.region);
    let mut p = purchasing::purchase_of(store, &scope, id);
    if p.lifecycle.as_deref() != Some("spot") {
        return Err((400, format!("instance {id} is not a spot instance")));
    }
    if !purchasing::active(&rec.state) {
        return Err((409, format!("instance {id} is {}", rec.state)));
    }
    let behaviour = p.interruption.clone().unwrap_or_else(|| "terminate".into());
    let at = now() + notice;
    let action = match behaviour.as_str() {
        "stop" => "stop",
        "hibernate" => "hibernate",
        _ => "terminate",
    };
    p.instance_action = Some((action.to_string(), at));
    store
        .put_json(&scope, PURCHASES, id, &p)
        .map_err(|e| (500, e.to_string()))?;
    if let Some(rid) = &p.spot_request_id {
        if let Ok(Some(mut r)) = store.get_json::<SpotRequest>(&scope, SPOT_REQUESTS, rid) {
            let code = match action {
                "stop" => "marked-for-stop",
                "hibernate" => "marked-for-hibernation",
                _ => "marked-for-termination",
            };
            r.interrupt_reason = Some(reason.to_string());
            let state = r.state.clone();
            set_status(&mut r, &state, code);
            store
                .put_json(&scope, SPOT_REQUESTS, rid, &r)
                .map_err(|e| (500, e.to_string()))?;
        }
    }
    Ok(json!({
        "InstanceId": id,
        "Action": action,
        "Time": fc_protocol::value::format_iso8601(at.floor()).replace(".000", ""),
        "NoticeSeconds": notice,
    }))
}

/// The notice period of an interruption ended: stop or terminate the instance (if the notice
/// still stands and it still runs).
pub(crate) fn finish_interruption(inner: &Arc<Inner>, id: &str) {
    let _g = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
    let store = inner.store.as_ref();
    let Some(mut rec) = purchasing::locate_instance(store, id) else {
        return;
    };
    let scope = Scope::new(&rec.owner_id, &rec.region);
    let p: Purchase = purchasing::purchase_of(store, &scope, id);
    let Some((action, _)) = p.instance_action.clone() else {
        return;
    };
    if !purchasing::active(&rec.state) {
        return;
    }
    let prev = rec.state.clone();
    let t = now();
    let stamp = fc_protocol::value::format_iso8601(t.floor());
    let stamp = format!(
        "{} GMT",
        stamp.get(..19).unwrap_or(&stamp).replace('T', " ")
    );
    rec.state_reason = Some((
        "Server.SpotInstanceTermination".into(),
        "Server.SpotInstanceTermination: Spot instance termination".into(),
    ));
    rec.transition_reason = format!("Service initiated ({stamp})");
    let terminate = action == "terminate";
    let exec = inner.exec.get();
    rec.state = match (terminate, exec.is_some()) {
        (true, true) => "shutting-down",
        (true, false) => "terminated",
        (false, true) => "stopping",
        (false, false) => "stopped",
    }
    .into();
    if terminate {
        rec.terminated_at = Some(t);
    }
    if let Err(e) = instances::save(store, &inner.index, &rec) {
        tracing::warn!(error = %e, instance = id, "cannot save interrupted instance");
        return;
    }
    purchasing::transition(store, &prev, &rec);
    if let Some(exec) = exec {
        if terminate {
            exec.spawn_terminate(rec.owner_id.clone(), rec.region.clone(), id.to_string());
        } else {
            exec.spawn_stop(
                rec.owner_id.clone(),
                rec.region.clone(),
                id.to_string(),
                false,
            );
        }
    }
}

/// Every spot request of every account (unit tests and diagnostics).
#[allow(dead_code)]
pub(crate) fn all_requests(store: &dyn Store, scope: &Scope) -> Vec<SpotRequest> {
    scan_all::<SpotRequest>(store, scope, SPOT_REQUESTS)
        .map(|l| l.into_iter().map(|(_, r)| r).collect())
        .unwrap_or_default()
}

/// The price check of every spot request at time `at` (the sweep runs it every minute; the
/// internal endpoint `spot/evaluate` runs it at any time): an active request whose instance
/// runs while the spot price is above its maximum price gets an interruption notice (the ids
/// are returned, to be finished after the notice); an open request whose price is met again
/// (or a persistent one reopened after an interruption) launches its instance.
pub(crate) fn evaluate_all(inner: &Arc<Inner>, at: f64, notice: f64) -> (Vec<String>, Vec<String>) {
    let mut marked = Vec::new();
    let mut fulfilled = Vec::new();
    let store = inner.store.as_ref();
    for scope in store.scopes(SPOT_REQUESTS).unwrap_or_default() {
        let Ok(list) = scan_all::<SpotRequest>(store, &scope, SPOT_REQUESTS) else {
            continue;
        };
        for (_, r) in list {
            let max: f64 = r.spot_price.parse().unwrap_or(f64::MAX);
            let itype = opt_str(&r.launch_spec, "InstanceType")
                .unwrap_or("t2.micro")
                .to_string();
            match r.state.as_str() {
                "active" => {
                    let Some(iid) = r.instance_id.clone() else {
                        continue;
                    };
                    let Some(rec) = purchasing::locate_instance(store, &iid) else {
                        continue;
                    };
                    let p = purchasing::purchase_of(store, &scope, &iid);
                    if !purchasing::active(&rec.state) {
                        continue;
                    }
                    if let Some((_, when)) = p.instance_action {
                        // A notice whose end passed without a stop (e.g. across a restart).
                        if when + 5.0 < now() {
                            finish_interruption(inner, &iid);
                        }
                        continue;
                    }
                    if spot_price(&itype, &rec.availability_zone, at) > max
                        && interrupt(inner, &iid, notice, "price").is_ok()
                    {
                        marked.push(iid);
                    }
                }
                "open" => {
                    let Some(run) = r.run.clone() else { continue };
                    let zone = opt_str(&r.launch_spec["Placement"], "AvailabilityZone")
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{}a", scope.region));
                    if spot_price(&itype, &zone, at) > max {
                        continue;
                    }
                    let _g = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
                    let req = crate::RequestContext::for_account(
                        &scope.account,
                        &scope.region,
                        "ec2",
                        "RequestSpotInstances",
                    );
                    let c = Ctx {
                        store,
                        scope: scope.clone(),
                        req: &req,
                        data_dir: &inner.data_dir,
                        exec: inner.exec.get(),
                        index: &inner.index,
                    };
                    // Re-read under the lock: a cancel may have come in between.
                    let Ok(Some(mut cur)) = c.get::<SpotRequest>(SPOT_REQUESTS, &r.id) else {
                        continue;
                    };
                    if cur.state != "open" {
                        continue;
                    }
                    match evaluate(&c, &mut cur, &run, Some(max), at) {
                        Ok(()) if cur.state == "active" => fulfilled.push(cur.id.clone()),
                        Ok(()) => {}
                        Err(e) => tracing::warn!(error = %e, request = %cur.id, "cannot fulfil"),
                    }
                }
                _ => {}
            }
        }
    }
    (marked, fulfilled)
}
