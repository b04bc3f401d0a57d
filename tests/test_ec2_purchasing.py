"""EC2 purchasing options, tenancy and billing against the real binary: spot instances (with an
interruption through the internal endpoint and its notice in the instance metadata), reserved
and scheduled instances, capacity reservations, dedicated hosts, the vCPU limit and the cost
ledger at /_ferrocloud/costs."""
import datetime
import json
import os
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from test_ec2_instances import debian_ami, describe, err, wait_state

NOW = lambda: datetime.datetime.now(datetime.timezone.utc)  # noqa: E731


@pytest.fixture
def ec2(server):
    return server.client("ec2")


@pytest.fixture
def launched(server):
    """(region, instance id) pairs a test launched; terminated afterwards."""
    ids = []
    yield ids
    by_region = {}
    for region, i in ids:
        by_region.setdefault(region, []).append(i)
    for region, lst in by_region.items():
        c = server.client("ec2", region=region)
        try:
            c.terminate_instances(InstanceIds=lst)
        except ClientError:
            pass
        wait_state(c, lst, "terminated", timeout=90)


def costs(server):
    with urllib.request.urlopen(server.endpoint + "/_ferrocloud/costs", timeout=10) as r:
        return json.loads(r.read())


def cost_line(server, resource, usage_type=None):
    for line in costs(server)["Lines"]:
        if line["resource"] == resource and (usage_type is None or line["usage_type"] == usage_type):
            return line
    return None


def run(ec2, launched, region="us-east-1", **kw):
    kw.setdefault("ImageId", debian_ami(ec2))
    kw.setdefault("MinCount", 1)
    kw.setdefault("MaxCount", 1)
    out = ec2.run_instances(**kw)
    for i in out["Instances"]:
        launched.append((region, i["InstanceId"]))
    return out["Instances"]


def interrupt(server, iid, notice):
    req = urllib.request.Request(
        f"{server.endpoint}/_ferrocloud/ec2/spot/interrupt?InstanceId={iid}&NoticeSeconds={notice}",
        data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def spot_request(ec2, rid):
    return ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[rid])["SpotInstanceRequests"][0]


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


# ---- spot ----

def test_spot_price_history_is_a_deterministic_fraction_of_on_demand(server, ec2):
    start = NOW() - datetime.timedelta(hours=3)
    h = ec2.describe_spot_price_history(InstanceTypes=["m5.large"], StartTime=start,
                                        ProductDescriptions=["Linux/UNIX"])["SpotPriceHistory"]
    zones = {p["AvailabilityZone"] for p in h}
    assert len(zones) == 6
    assert len(h) >= 6 * 3
    for p in h:
        assert p["InstanceType"] == "m5.large" and p["ProductDescription"] == "Linux/UNIX"
        assert 0.096 * 0.3 - 1e-6 <= float(p["SpotPrice"]) <= 0.096 * 0.4 + 1e-6
    assert len({p["SpotPrice"] for p in h}) > 1
    again = ec2.describe_spot_price_history(InstanceTypes=["m5.large"], StartTime=start,
                                            ProductDescriptions=["Linux/UNIX"])["SpotPriceHistory"]
    assert again == h
    cur = ec2.describe_spot_price_history(InstanceTypes=["c5.large"], AvailabilityZone="us-east-1b")
    assert len(cur["SpotPriceHistory"]) == 1
    cli = server.aws_json("ec2", "describe-spot-price-history", "--instance-types", "c5.large",
                          "--availability-zone", "us-east-1b", "--product-descriptions", "Linux/UNIX")
    assert cli["SpotPriceHistory"][0]["SpotPrice"] == cur["SpotPriceHistory"][0]["SpotPrice"]
    page = ec2.describe_spot_price_history(InstanceTypes=["m5.large"], StartTime=start, MaxResults=5)
    assert len(page["SpotPriceHistory"]) == 5 and page["NextToken"]
    filtered = ec2.describe_spot_price_history(
        StartTime=start, Filters=[{"Name": "instance-type", "Values": ["t3.micro"]},
                                  {"Name": "availability-zone", "Values": ["us-east-1a"]}])
    assert {p["InstanceType"] for p in filtered["SpotPriceHistory"]} == {"t3.micro"}


SPOT_WATCH = r"""#!/bin/sh
python3 - <<'PY'
import time, urllib.error, urllib.request
base = "http://169.254.169.254/latest/meta-data/"
def get(p):
    try:
        with urllib.request.urlopen(base + p, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return 0, str(e)
print("LIFECYCLE", get("instance-life-cycle")[1], flush=True)
print("BEFORE", get("spot/instance-action")[0], flush=True)
for _ in range(600):
    s, body = get("spot/instance-action")
    if s == 200:
        print("ACTION", body, flush=True)
        print("TERMTIME", get("spot/termination-time")[1], flush=True)
        break
    time.sleep(0.2)
PY
"""


def test_spot_instance_is_interrupted_with_notice(server, ec2, launched):
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="t3.micro", InstanceMarketOptions={
            "MarketType": "spot", "SpotOptions": {"MaxPrice": "0.0001"}})
    assert err(e) == "SpotMaxPriceTooLow"
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="t3.micro", InstanceMarketOptions={
            "MarketType": "spot", "SpotOptions": {"InstanceInterruptionBehavior": "stop"}})
    assert err(e) == "InvalidParameterCombination"
    inst = run(ec2, launched, InstanceType="t3.micro", UserData=SPOT_WATCH,
               InstanceMarketOptions={"MarketType": "spot", "SpotOptions": {
                   "MaxPrice": "0.0104", "SpotInstanceType": "one-time",
                   "InstanceInterruptionBehavior": "terminate"}})[0]
    iid = inst["InstanceId"]
    assert inst["InstanceLifecycle"] == "spot"
    rid = inst["SpotInstanceRequestId"]
    assert rid.startswith("sir-")
    wait_state(ec2, [iid], "running")
    d = describe(ec2, iid)
    assert d["InstanceLifecycle"] == "spot" and d["SpotInstanceRequestId"] == rid
    found = ec2.describe_instances(Filters=[{"Name": "instance-lifecycle", "Values": ["spot"]},
                                            {"Name": "spot-instance-request-id", "Values": [rid]}])
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [iid]
    r = spot_request(ec2, rid)
    assert (r["State"], r["Status"]["Code"], r["InstanceId"]) == ("active", "fulfilled", iid)
    assert r["Type"] == "one-time" and r["SpotPrice"] == "0.010400"
    found = ec2.describe_spot_instance_requests(Filters=[
        {"Name": "instance-id", "Values": [iid]}, {"Name": "state", "Values": ["active"]}])
    assert [x["SpotInstanceRequestId"] for x in found["SpotInstanceRequests"]] == [rid]
    with pytest.raises(ClientError) as e:
        ec2.stop_instances(InstanceIds=[iid])
    assert err(e) == "UnsupportedOperation"
    root = os.geteuid() == 0
    if root:
        wait_for(lambda: "BEFORE" in ec2.get_console_output(InstanceId=iid).get("Output", ""),
                 what="the watcher in the instance")
    # Costs accrue as spot usage while it runs.
    line = wait_for(lambda: cost_line(server, iid), what="a cost line")
    assert line["usage_type"] == "SpotUsage:t3.micro"
    notice = interrupt(server, iid, 4)
    assert notice["Action"] == "terminate"
    r = spot_request(ec2, rid)
    assert r["Status"]["Code"] == "marked-for-termination"
    if root:
        out = wait_for(lambda: (lambda o: o if "ACTION" in o else None)(
            ec2.get_console_output(InstanceId=iid).get("Output", "")), what="the notice in IMDS")
        assert "LIFECYCLE spot" in out
        assert "BEFORE 404" in out
        action = json.loads(out.split("ACTION ", 1)[1].splitlines()[0])
        assert action["action"] == "terminate" and action["time"].endswith("Z")
    wait_state(ec2, [iid], "terminated", timeout=60)
    d = describe(ec2, iid)
    assert d["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    r = spot_request(ec2, rid)
    assert (r["State"], r["Status"]["Code"]) == ("closed", "instance-terminated-by-price")
    accrued = cost_line(server, iid, "SpotUsage:t3.micro")
    assert accrued and accrued["quantity"] > 0


def test_request_spot_instances_persistent_stop_and_cancel(server, ec2, launched):
    ami = debian_ami(ec2)
    low = ec2.request_spot_instances(SpotPrice="0.0001", InstanceCount=1, LaunchSpecification={
        "ImageId": ami, "InstanceType": "t3.micro"})["SpotInstanceRequests"][0]
    assert (low["State"], low["Status"]["Code"]) == ("open", "price-too-low")
    assert "InstanceId" not in low
    with pytest.raises(ClientError) as e:
        ec2.request_spot_instances(InstanceCount=1, DryRun=True, LaunchSpecification={
            "ImageId": ami, "InstanceType": "t3.micro"})
    assert err(e) == "DryRunOperation"
    with pytest.raises(ClientError) as e:
        ec2.request_spot_instances(InstanceCount=1, LaunchSpecification={
            "ImageId": "ami-00000000000000000", "InstanceType": "t3.micro"})
    assert err(e) == "InvalidAMIID.NotFound"
    req = ec2.request_spot_instances(
        InstanceCount=1, Type="persistent", InstanceInterruptionBehavior="stop",
        LaunchSpecification={"ImageId": ami, "InstanceType": "t3.micro",
                             "Placement": {"AvailabilityZone": "us-east-1c"}})["SpotInstanceRequests"][0]
    rid = req["SpotInstanceRequestId"]
    assert (req["State"], req["Status"]["Code"]) == ("active", "fulfilled")
    iid = req["InstanceId"]
    launched.append(("us-east-1", iid))
    assert req["LaunchedAvailabilityZone"] == "us-east-1c"
    assert req["InstanceInterruptionBehavior"] == "stop"
    wait_state(ec2, [iid], "running")
    interrupt(server, iid, 1)
    assert spot_request(ec2, rid)["Status"]["Code"] == "marked-for-stop"
    wait_state(ec2, [iid], "stopped", timeout=60)
    assert describe(ec2, iid)["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    r = spot_request(ec2, rid)
    assert (r["State"], r["Status"]["Code"]) == ("disabled", "instance-stopped-by-price")
    # Started again, the request is active again.
    ec2.start_instances(InstanceIds=[iid])
    r = spot_request(ec2, rid)
    assert (r["State"], r["Status"]["Code"]) == ("active", "fulfilled")
    wait_state(ec2, [iid], "running")
    out = ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[rid, low["SpotInstanceRequestId"]])
    assert {x["State"] for x in out["CancelledSpotInstanceRequests"]} == {"cancelled"}
    assert spot_request(ec2, low["SpotInstanceRequestId"])["Status"]["Code"] == "canceled-before-fulfillment"
    r = spot_request(ec2, rid)
    assert (r["State"], r["Status"]["Code"]) == ("cancelled", "request-canceled-and-instance-running")
    # Cancelling a request does not terminate its instance.
    assert describe(ec2, iid)["State"]["Name"] == "running"
    with pytest.raises(ClientError) as e:
        ec2.describe_spot_instance_requests(SpotInstanceRequestIds=["sir-00000000"])
    assert err(e) == "InvalidSpotInstanceRequestID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=["bogus"])
    assert err(e) == "InvalidSpotInstanceRequestID.Malformed"


def evaluate(server, at, notice=1):
    req = urllib.request.Request(
        f"{server.endpoint}/_ferrocloud/ec2/spot/evaluate?At={at}&NoticeSeconds={notice}",
        data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_spot_price_above_max_price_interrupts_and_low_bids_wait(server, ec2, launched):
    cur = ec2.describe_spot_price_history(InstanceTypes=["t3.small"])["SpotPriceHistory"]
    zone, price = min(((p["AvailabilityZone"], p["SpotPrice"]) for p in cur), key=lambda x: float(x[1]))
    inst = run(ec2, launched, InstanceType="t3.small", Placement={"AvailabilityZone": zone},
               InstanceMarketOptions={"MarketType": "spot", "SpotOptions": {"MaxPrice": price}})[0]
    iid, rid = inst["InstanceId"], inst["SpotInstanceRequestId"]
    below = f"{float(price) - 0.000001:.6f}"
    low = ec2.request_spot_instances(SpotPrice=below, LaunchSpecification={
        "ImageId": debian_ami(ec2), "InstanceType": "t3.small",
        "Placement": {"AvailabilityZone": zone}})["SpotInstanceRequests"][0]
    lid = low["SpotInstanceRequestId"]
    assert (low["State"], low["Status"]["Code"]) == ("open", "price-too-low")
    wait_state(ec2, [iid], "running")
    # The price changes every hour: look ahead until it passes the max price, and until it
    # falls below the low bid.
    t0 = time.time()
    interrupted = fulfilled = False
    for k in range(1, 200):
        out = evaluate(server, t0 + k * 3600)
        interrupted = interrupted or iid in out["Interrupted"]
        fulfilled = fulfilled or lid in out["Fulfilled"]
        if interrupted and fulfilled:
            break
    assert interrupted and fulfilled
    new = spot_request(ec2, lid)
    # Fulfilled; a later hour of the look-ahead may already have marked it again.
    assert new["State"] in ("active", "closed") and new["InstanceId"].startswith("i-")
    assert new["Status"]["Code"] in ("fulfilled", "marked-for-termination", "instance-terminated-by-price")
    launched.append(("us-east-1", new["InstanceId"]))
    wait_state(ec2, [iid], "terminated")
    assert describe(ec2, iid)["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    r = spot_request(ec2, rid)
    assert (r["State"], r["Status"]["Code"]) == ("closed", "instance-terminated-by-price")


# ---- reserved ----

def test_reserved_instances_discounts_and_billing(server, launched):
    region = "us-west-2"  # a region of its own: reservations apply to every matching instance
    ec2 = server.client("ec2", region=region)
    cli = server.aws_json("ec2", "describe-reserved-instances-offerings", "--instance-type", "c5.large",
                          "--offering-class", "standard", "--product-description", "Linux/UNIX",
                          region=region)
    assert len(cli["ReservedInstancesOfferings"]) == 6
    offs = ec2.describe_reserved_instances_offerings(
        InstanceType="c5.large", ProductDescription="Linux/UNIX", OfferingClass="standard",
        MaxResults=100)["ReservedInstancesOfferings"]
    assert len(offs) == 6
    by = {(o["Duration"], o["OfferingType"]): o for o in offs}
    assert set(d for d, _ in by) == {31536000, 94608000}

    def eff(o):
        return o["FixedPrice"] / (o["Duration"] / 3600) + sum(c["Amount"] for c in o["RecurringCharges"])
    order = [(94608000, "All Upfront"), (94608000, "Partial Upfront"), (94608000, "No Upfront"),
             (31536000, "All Upfront"), (31536000, "Partial Upfront"), (31536000, "No Upfront")]
    rates = [eff(by[k]) for k in order]
    assert rates == sorted(rates) and len(set(rates)) == 6
    assert rates[-1] < 0.085
    assert by[(31536000, "No Upfront")]["FixedPrice"] == 0
    assert by[(31536000, "All Upfront")]["RecurringCharges"][0]["Amount"] == 0
    conv = ec2.describe_reserved_instances_offerings(
        InstanceType="c5.large", ProductDescription="Linux/UNIX", OfferingClass="convertible",
        OfferingType="No Upfront", MinDuration=31536000, MaxDuration=31536000)["ReservedInstancesOfferings"]
    assert len(conv) == 1 and eff(conv[0]) > eff(by[(31536000, "No Upfront")])
    offering = by[(31536000, "No Upfront")]
    with pytest.raises(ClientError) as e:
        ec2.purchase_reserved_instances_offering(
            ReservedInstancesOfferingId=offering["ReservedInstancesOfferingId"], InstanceCount=1, DryRun=True)
    assert err(e) == "DryRunOperation"
    rid = ec2.purchase_reserved_instances_offering(
        ReservedInstancesOfferingId=offering["ReservedInstancesOfferingId"], InstanceCount=1)["ReservedInstancesId"]
    ri = ec2.describe_reserved_instances(ReservedInstancesIds=[rid])["ReservedInstances"][0]
    assert (ri["State"], ri["InstanceCount"], ri["InstanceType"]) == ("active", 1, "c5.large")
    assert (ri["End"] - ri["Start"]).total_seconds() == 31536000
    assert ec2.describe_reserved_instances(
        Filters=[{"Name": "state", "Values": ["active"]}])["ReservedInstances"]
    with pytest.raises(ClientError) as e:
        ec2.purchase_reserved_instances_offering(
            ReservedInstancesOfferingId="00000000-0000-0000-0000-000000000000", InstanceCount=1)
    assert err(e) == "InvalidReservedInstancesOfferingId"
    # Two running c5.large: one covered by the reservation (HeavyUsage), one on demand.
    insts = run(ec2, launched, region=region, InstanceType="c5.large", MinCount=2, MaxCount=2)
    ids = [i["InstanceId"] for i in insts]
    wait_state(ec2, ids, "running")
    time.sleep(1.5)
    lines = [cost_line(server, i) for i in ids]
    assert sorted(l["usage_type"] for l in lines) == ["BoxUsage:c5.large", "HeavyUsage:c5.large"]
    heavy = next(l for l in lines if l["usage_type"] == "HeavyUsage:c5.large")
    box = next(l for l in lines if l["usage_type"] == "BoxUsage:c5.large")
    assert heavy["rate_usd"] < box["rate_usd"]


# ---- scheduled ----

def test_scheduled_instances_run_only_inside_their_window(ec2, launched):
    avail = ec2.describe_scheduled_instance_availability(
        Recurrence={"Frequency": "Daily", "Interval": 1},
        FirstSlotStartTimeRange={"EarliestTime": NOW(), "LatestTime": NOW() + datetime.timedelta(days=1)},
        MinSlotDurationInHours=4,
        Filters=[{"Name": "instance-type", "Values": ["m5.large"]},
                 {"Name": "availability-zone", "Values": ["us-east-1a"]}])["ScheduledInstanceAvailabilitySet"]
    assert len(avail) == 1
    a = avail[0]
    assert a["SlotDurationInHours"] == 4 and a["Recurrence"]["Frequency"] == "Daily"
    assert float(a["HourlyPrice"]) < 0.096
    bought = ec2.purchase_scheduled_instances(PurchaseRequests=[
        {"InstanceCount": 1, "PurchaseToken": a["PurchaseToken"]}])["ScheduledInstanceSet"][0]
    sid = bought["ScheduledInstanceId"]
    assert sid.startswith("sci-")
    assert ec2.describe_scheduled_instances(ScheduledInstanceIds=[sid])["ScheduledInstanceSet"][0]["InstanceCount"] == 1
    ami = debian_ami(ec2)
    out = ec2.run_scheduled_instances(ScheduledInstanceId=sid, InstanceCount=1,
                                      LaunchSpecification={"ImageId": ami})
    iid = out["InstanceIdSet"][0]
    launched.append(("us-east-1", iid))
    d = describe(ec2, iid)
    assert d["InstanceLifecycle"] == "scheduled" and d["InstanceType"] == "m5.large"
    with pytest.raises(ClientError) as e:
        ec2.run_scheduled_instances(ScheduledInstanceId=sid, InstanceCount=1,
                                    LaunchSpecification={"ImageId": ami})
    assert err(e) == "MaxScheduledInstanceCapacityExceeded"
    later = ec2.describe_scheduled_instance_availability(
        Recurrence={"Frequency": "Daily"},
        FirstSlotStartTimeRange={"EarliestTime": NOW() + datetime.timedelta(hours=6),
                                 "LatestTime": NOW() + datetime.timedelta(days=1)},
        Filters=[{"Name": "instance-type", "Values": ["c5.large"]}])["ScheduledInstanceAvailabilitySet"][0]
    sid2 = ec2.purchase_scheduled_instances(PurchaseRequests=[
        {"InstanceCount": 1, "PurchaseToken": later["PurchaseToken"]}])["ScheduledInstanceSet"][0]["ScheduledInstanceId"]
    with pytest.raises(ClientError) as e:
        ec2.run_scheduled_instances(ScheduledInstanceId=sid2, InstanceCount=1,
                                    LaunchSpecification={"ImageId": ami})
    assert err(e) == "IncorrectState"
    with pytest.raises(ClientError) as e:
        ec2.purchase_scheduled_instances(PurchaseRequests=[{"InstanceCount": 1, "PurchaseToken": "bogus"}])
    assert err(e) == "InvalidPurchaseToken.Malformed"


# ---- capacity reservations ----

def test_capacity_reservations_are_consumed_and_exhausted(ec2, launched):
    with pytest.raises(ClientError) as e:
        ec2.create_capacity_reservation(InstanceType="t3.small", InstancePlatform="Linux/UNIX",
                                        AvailabilityZone="us-east-1a", InstanceCount=1, DryRun=True)
    assert err(e) == "DryRunOperation"
    cr = ec2.create_capacity_reservation(
        InstanceType="t3.small", InstancePlatform="Linux/UNIX", AvailabilityZone="us-east-1a",
        InstanceCount=1, InstanceMatchCriteria="targeted", EndDateType="unlimited",
        TagSpecifications=[{"ResourceType": "capacity-reservation",
                            "Tags": [{"Key": "team", "Value": "a"}]}])["CapacityReservation"]
    assert cr["Tags"] == [{"Key": "team", "Value": "a"}]
    crid = cr["CapacityReservationId"]
    assert (cr["State"], cr["TotalInstanceCount"], cr["AvailableInstanceCount"]) == ("active", 1, 1)

    def available():
        return ec2.describe_capacity_reservations(
            CapacityReservationIds=[crid])["CapacityReservations"][0]["AvailableInstanceCount"]
    target = {"CapacityReservationTarget": {"CapacityReservationId": crid}}
    inst = run(ec2, launched, InstanceType="t3.small", Placement={"AvailabilityZone": "us-east-1a"},
               CapacityReservationSpecification=target)[0]
    assert inst["CapacityReservationId"] == crid
    assert available() == 0
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="t3.small", Placement={"AvailabilityZone": "us-east-1a"},
            CapacityReservationSpecification=target)
    assert err(e) == "ReservationCapacityExceeded"
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="t3.micro", Placement={"AvailabilityZone": "us-east-1a"},
            CapacityReservationSpecification=target)
    assert err(e) == "InvalidParameterCombination"
    # A stopped instance gives its slot back; a bigger reservation has room again.
    ec2.stop_instances(InstanceIds=[inst["InstanceId"]])
    wait_state(ec2, [inst["InstanceId"]], "stopped")
    assert available() == 1
    ec2.start_instances(InstanceIds=[inst["InstanceId"]])
    assert available() == 0
    assert ec2.modify_capacity_reservation(CapacityReservationId=crid, InstanceCount=2)["Return"]
    assert available() == 1
    # Open reservations are used by matching untargeted launches.
    open_cr = ec2.create_capacity_reservation(
        InstanceType="t3.nano", InstancePlatform="Linux/UNIX", AvailabilityZone="us-east-1b",
        InstanceCount=1)["CapacityReservation"]
    assert open_cr["InstanceMatchCriteria"] == "open"
    i2 = run(ec2, launched, InstanceType="t3.nano", Placement={"AvailabilityZone": "us-east-1b"})[0]
    assert i2.get("CapacityReservationId") == open_cr["CapacityReservationId"]
    i3 = run(ec2, launched, InstanceType="t3.nano", Placement={"AvailabilityZone": "us-east-1b"})[0]
    assert "CapacityReservationId" not in i3
    got = ec2.describe_capacity_reservations(Filters=[
        {"Name": "instance-type", "Values": ["t3.nano"]}, {"Name": "state", "Values": ["active"]}])
    assert open_cr["CapacityReservationId"] in [c["CapacityReservationId"] for c in got["CapacityReservations"]]
    for c in (crid, open_cr["CapacityReservationId"]):
        assert ec2.cancel_capacity_reservation(CapacityReservationId=c)["Return"]
    assert ec2.describe_capacity_reservations(
        CapacityReservationIds=[crid])["CapacityReservations"][0]["State"] == "cancelled"
    with pytest.raises(ClientError) as e:
        ec2.cancel_capacity_reservation(CapacityReservationId=crid)
    assert err(e) == "IncorrectState"
    with pytest.raises(ClientError) as e:
        ec2.describe_capacity_reservations(CapacityReservationIds=["cr-00000000000000000"])
    assert err(e) == "InvalidCapacityReservationId.NotFound"


# ---- dedicated hosts and tenancy ----

def test_dedicated_hosts_capacity_placement_and_release(server, ec2, launched):
    with pytest.raises(ClientError) as e:
        ec2.allocate_hosts(InstanceType="t2.micro", AvailabilityZone="us-east-1a", Quantity=1)
    assert err(e) == "InvalidHostConfiguration"
    hid = ec2.allocate_hosts(InstanceType="m5.24xlarge", AvailabilityZone="us-east-1d",
                             Quantity=1, AutoPlacement="off")["HostIds"][0]
    assert hid.startswith("h-")
    h = server.aws_json("ec2", "describe-hosts", "--host-ids", hid)["Hosts"][0]
    assert h["State"] == "available" and h["AutoPlacement"] == "off"
    assert h["HostProperties"] == {"Cores": 48, "Sockets": 2, "TotalVCpus": 96, "InstanceType": "m5.24xlarge"}
    assert h["AvailableCapacity"]["AvailableInstanceCapacity"] == [
        {"InstanceType": "m5.24xlarge", "AvailableCapacity": 1, "TotalCapacity": 1}]
    placement = {"Tenancy": "host", "HostId": hid, "AvailabilityZone": "us-east-1d"}
    inst = run(ec2, launched, InstanceType="m5.24xlarge", Placement=placement)[0]
    iid = inst["InstanceId"]
    assert inst["Placement"]["Tenancy"] == "host" and inst["Placement"]["HostId"] == hid
    h = ec2.describe_hosts(HostIds=[hid])["Hosts"][0]
    assert [x["InstanceId"] for x in h["Instances"]] == [iid]
    on_host = ec2.describe_instances(Filters=[{"Name": "host-id", "Values": [hid]},
                                              {"Name": "tenancy", "Values": ["host"]}])
    assert [i["InstanceId"] for r in on_host["Reservations"] for i in r["Instances"]] == [iid]
    assert h["AvailableCapacity"]["AvailableInstanceCapacity"][0]["AvailableCapacity"] == 0
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="m5.24xlarge", Placement=placement)
    assert err(e) == "InsufficientCapacityOnHost"
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="m5.large", Placement={"Affinity": "host", "AvailabilityZone": "us-east-1d"})
    assert err(e) == "InvalidParameterCombination"
    out = ec2.release_hosts(HostIds=[hid])
    assert out["Successful"] == []
    assert out["Unsuccessful"][0]["ResourceId"] == hid
    assert out["Unsuccessful"][0]["Error"]["Code"] == "Client.InvalidHost.Occupied"
    # Untargeted host launches need an auto-placement host with room.
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="m5.large", Placement={"Tenancy": "host", "AvailabilityZone": "us-east-1d"})
    assert err(e) == "IncompatibleHostRequirements"
    fam = ec2.allocate_hosts(InstanceFamily="m5", AvailabilityZone="us-east-1d", Quantity=1)["HostIds"][0]
    assert ec2.modify_hosts(HostIds=[fam], AutoPlacement="on")["Successful"] == [fam]
    small = run(ec2, launched, InstanceType="m5.large", Placement={"Tenancy": "host", "AvailabilityZone": "us-east-1d"})[0]
    assert small["Placement"]["HostId"] == fam
    fh = ec2.describe_hosts(HostIds=[fam])["Hosts"][0]
    assert fh["HostProperties"]["InstanceFamily"] == "m5"
    caps = {c["InstanceType"]: c for c in fh["AvailableCapacity"]["AvailableInstanceCapacity"]}
    assert caps["m5.large"] == {"InstanceType": "m5.large", "AvailableCapacity": 47, "TotalCapacity": 48}
    assert caps["m5.24xlarge"]["AvailableCapacity"] == 0
    assert fh["AvailableCapacity"]["AvailableVCpus"] == 94
    # Affinity: a stopped instance is tied to its host and comes back on it.
    ec2.stop_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "stopped")
    with pytest.raises(ClientError) as e:
        ec2.modify_instance_placement(InstanceId=small["InstanceId"], Affinity="host")
    assert err(e) == "InvalidInstanceState"
    assert ec2.modify_instance_placement(InstanceId=iid, Affinity="host", HostId=hid)["Return"]
    d = describe(ec2, iid)["Placement"]
    assert (d["Tenancy"], d["HostId"], d["Affinity"]) == ("host", hid, "host")
    ec2.start_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "running")
    assert describe(ec2, iid)["Placement"]["HostId"] == hid
    # Hosts are billed while allocated.
    line = cost_line(server, hid)
    assert line and line["usage_type"] == "HostUsage:m5" and line["rate_usd"] > 0
    ids = [iid, small["InstanceId"]]
    ec2.terminate_instances(InstanceIds=ids)
    wait_state(ec2, ids, "terminated")
    out = ec2.release_hosts(HostIds=[hid, fam])
    assert sorted(out["Successful"]) == sorted([hid, fam]) and out["Unsuccessful"] == []
    assert ec2.describe_hosts(HostIds=[hid])["Hosts"][0]["State"] == "released"
    assert cost_line(server, hid, "HostUsage:m5")["quantity"] > 0


def test_dedicated_tenancy_is_billed_as_dedicated_usage(server, ec2, launched):
    inst = run(ec2, launched, InstanceType="t3.small", Placement={"Tenancy": "dedicated"})[0]
    assert inst["Placement"]["Tenancy"] == "dedicated"
    line = wait_for(lambda: cost_line(server, inst["InstanceId"]), what="a cost line")
    assert line["usage_type"] == "DedicatedUsage:t3.small"
    assert abs(line["rate_usd"] * 3600 - 0.0208 * 1.1) < 1e-9


# ---- costs ----

def test_on_demand_instances_accrue_per_second(server, ec2, launched):
    inst = run(ec2, launched, InstanceType="t3.medium")[0]
    iid = inst["InstanceId"]
    wait_state(ec2, [iid], "running")
    first = wait_for(lambda: cost_line(server, iid), what="a live cost line")
    assert first["usage_type"] == "BoxUsage:t3.medium" and first["unit"] == "seconds"
    assert abs(first["rate_usd"] * 3600 - 0.0416) < 1e-9
    time.sleep(1.2)
    second = cost_line(server, iid)
    assert second["quantity"] > first["quantity"] and second["amount_usd"] > first["amount_usd"]
    report = costs(server)
    assert report["Currency"] == "USD" and report["ByService"]["ec2"] > 0
    ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
    done = cost_line(server, iid)
    time.sleep(0.5)
    assert cost_line(server, iid)["quantity"] == done["quantity"] > 0


def test_architecture_mismatch_is_refused(ec2, launched):
    with pytest.raises(ClientError) as e:
        run(ec2, launched, InstanceType="t4g.micro", ImageId=debian_ami(ec2, "x86_64"))
    assert err(e) == "InvalidParameterValue"
    assert "architecture 'arm64'" in e.value.response["Error"]["Message"]


# ---- vCPU limit ----

def test_vcpu_limit(fresh_server):
    s = fresh_server(extra_args=["--ec2-vcpu-limit", "4"])
    ec2 = s.client("ec2")
    ami = debian_ami(ec2)
    ids = []
    try:
        out = ec2.run_instances(ImageId=ami, InstanceType="t3.medium", MinCount=2, MaxCount=2)
        ids += [i["InstanceId"] for i in out["Instances"]]
        with pytest.raises(ClientError) as e:
            ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1)
        assert err(e) == "VcpuLimitExceeded"
        assert e.value.response["Error"]["Message"] == (
            "You have requested more vCPU capacity than your current vCPU limit of 4 allows for "
            "the instance bucket that the specified instance type belongs to. Please visit "
            "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.")
        ec2.stop_instances(InstanceIds=[ids[0]])
        wait_state(ec2, [ids[0]], "stopped")
        out = ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1)
        ids.append(out["Instances"][0]["InstanceId"])
        with pytest.raises(ClientError) as e:
            ec2.start_instances(InstanceIds=[ids[0]])
        assert err(e) == "VcpuLimitExceeded"
    finally:
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            wait_state(ec2, ids, "terminated", timeout=90)


def test_vcpu_limit_per_bucket_spot_apart_and_after_restart(fresh_server):
    """Each instance-family bucket has its own limit, On-Demand and Spot apart, and the counts
    hold after a restart (rebuilt from the stored instances)."""
    s = fresh_server(extra_args=["--ec2-vcpu-limit", "4"])
    ec2 = s.client("ec2")
    ami = debian_ami(ec2)
    ids, requests = [], []

    def run(itype, count=1, spot=False):
        kw = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
        out = ec2.run_instances(ImageId=ami, InstanceType=itype, MinCount=count, MaxCount=count,
                                **kw)
        ids.extend(i["InstanceId"] for i in out["Instances"])
        return out["Instances"]

    def refused(itype, spot=False):
        with pytest.raises(ClientError) as e:
            run(itype, spot=spot)
        return err(e)

    try:
        run("t3.medium", 2)  # the Standard bucket is full
        assert refused("t3.nano") == "VcpuLimitExceeded"
        run("g4dn.xlarge")  # G and VT: a bucket of its own, now full too
        assert refused("g5.xlarge") == "VcpuLimitExceeded"
        # Spot counts apart: a spot request and a spot launch fill the Spot Standard bucket.
        rid = ec2.request_spot_instances(InstanceCount=1, LaunchSpecification={
            "ImageId": ami, "InstanceType": "t3.nano"})["SpotInstanceRequests"][0][
                "SpotInstanceRequestId"]
        requests.append(rid)
        ids.append(wait_for(lambda: spot_request(ec2, rid).get("InstanceId"),
                            what="spot fulfilment"))
        run("t3.small", spot=True)
        assert refused("t3.nano", spot=True) == "MaxSpotInstanceCountExceeded"
        with pytest.raises(ClientError) as e:
            ec2.request_spot_instances(InstanceCount=1, LaunchSpecification={
                "ImageId": ami, "InstanceType": "t3.nano"})
        assert err(e) == "MaxSpotInstanceCountExceeded"
        wait_state(ec2, ids, "running")
        data_dir = s.data_dir
        assert s.stop() == 0
        s2 = fresh_server(data_dir=data_dir, extra_args=["--ec2-vcpu-limit", "4"])
        ec2 = s2.client("ec2")
        assert refused("t3.nano") == "VcpuLimitExceeded"
        assert refused("g4dn.xlarge") == "VcpuLimitExceeded"
        assert refused("t3.nano", spot=True) == "MaxSpotInstanceCountExceeded"
        # A terminated instance gives its vCPUs back (its record lingers).
        ec2.terminate_instances(InstanceIds=[ids[0]])
        wait_state(ec2, [ids[0]], "terminated", timeout=90)
        run("t3.nano")
    finally:
        if requests:
            ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=requests)
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            wait_state(ec2, ids, "terminated", timeout=90)
