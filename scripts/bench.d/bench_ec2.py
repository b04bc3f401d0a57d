#!/usr/bin/env python3
"""EC2 benchmark of ferrocloud (started by scripts/bench-ec2; see there for what it measures).

All requests are raw EC2 query-protocol POSTs over one keep-alive http.client connection with a
well-formed but fake SigV4 header (ferrocloud runs with lenient auth, moto does not check), so
that neither botocore's request building nor its XML parsing is what is measured. Responses are
parsed (outside the timed section) only where the benchmark needs ids, states or tokens.
Traffic stays on 127.0.0.1.
"""

import argparse
import base64
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEBIAN_OWNER = "136693071363"
FAKE_SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
AUTH = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/ec2/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={FAKE_SIGNATURE}")
HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
           "X-Amz-Date": "20260101T000000Z", "Authorization": AUTH}
TYPES = ["t3.nano", "t3.micro", "t3.small", "m5.large"]
NAMES = 25
LAUNCH_TARGET_MS = 150.0
POLL_S = 0.010
QUERY_BUDGET_S = float(os.environ.get("BENCH_QUERY_BUDGET_S", "60"))


def say(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def summary(xs):
    return {"n": len(xs), "p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99),
            "mean_ms": statistics.fmean(xs) if xs else None, "max_ms": max(xs) if xs else None}


class ApiError(Exception):
    pass


class Ec2:
    """A keep-alive EC2 query client."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def raw(self, params):
        body = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            try:
                self.conn.request("POST", "/", body=body, headers=HEADERS)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def timed(self, params):
        t = time.perf_counter()
        status, body = self.raw(params)
        ms = (time.perf_counter() - t) * 1000.0
        if status != 200:
            raise ApiError(f"{params.get('Action')} answered {status}: {body[:400]!r}")
        return ms, body

    def call(self, params):
        return self.timed(params)[1]

    def logs(self, target, payload):
        """One CloudWatch Logs JSON call (ferrocloud only): the decoded answer."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        self.conn.request("POST", "/", body=json.dumps(payload).encode(), headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Date": "20260101T000000Z",
            "X-Amz-Target": f"Logs_20140328.{target}",
            "Authorization": AUTH.replace("/ec2/", "/logs/")})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise ApiError(f"logs {target} answered {r.status}: {body[:300]!r}")
        return json.loads(body)


def xml(body):
    """The answer's XML with namespaces removed from the tags."""
    root = ET.fromstring(body)
    for el in root.iter():
        el.tag = el.tag.rpartition("}")[2]
    return root


def instances_of(body):
    """(id, state, type) of every instance in a RunInstances/DescribeInstances answer."""
    out = []
    for item in xml(body).iter("instancesSet"):
        for i in item.findall("item"):
            state = i.find("instanceState/name")
            itype = i.find("instanceType")
            out.append((i.findtext("instanceId"), state.text if state is not None else None,
                        itype.text if itype is not None else None))
    return out


def state_reason(body):
    for i in xml(body).iter("stateReason"):
        return i.findtext("message")
    return None


def next_token(body):
    return xml(body).findtext("nextToken") or None


def filters(params, **kv):
    n = 1
    for name, values in kv.items():
        params[f"Filter.{n}.Name"] = name.replace("_", "-").replace("tag-Name", "tag:Name")
        for k, v in enumerate(values if isinstance(values, list) else [values], 1):
            params[f"Filter.{n}.Value.{k}"] = v
        n += 1
    return params


def ids_params(ids):
    return {f"InstanceId.{k}": i for k, i in enumerate(ids, 1)}


def run_params(image, count, itype, user_data=None, name=None, zone=None, tag_key="Name"):
    p = {"Action": "RunInstances", "ImageId": image, "MinCount": str(count),
         "MaxCount": str(count), "InstanceType": itype}
    if user_data is not None:
        p["UserData"] = base64.b64encode(user_data.encode()).decode()
    if name is not None:
        p["TagSpecification.1.ResourceType"] = "instance"
        p["TagSpecification.1.Tag.1.Key"] = tag_key
        p["TagSpecification.1.Tag.1.Value"] = name
    if zone is not None:
        p["Placement.AvailabilityZone"] = zone
    return p


def debian_ami(api):
    body = api.call({"Action": "DescribeImages", "Owner.1": DEBIAN_OWNER,
                     "Filter.1.Name": "name", "Filter.1.Value.1": "debian-12-*",
                     "Filter.2.Name": "architecture", "Filter.2.Value.1": "x86_64"})
    ids = [e.text for e in xml(body).iter("imageId")]
    if ids:
        return ids[0]
    # moto has no Debian-owned images: any x86_64 image of its catalog will do.
    body = api.call({"Action": "DescribeImages", "Owner.1": "amazon",
                     "Filter.1.Name": "architecture", "Filter.1.Value.1": "x86_64"})
    ids = [e.text for e in xml(body).iter("imageId")]
    if not ids:
        raise RuntimeError("no x86_64 image found")
    return ids[0]


def zones(api):
    body = api.call({"Action": "DescribeAvailabilityZones"})
    return [e.text for e in xml(body).iter("zoneName")]


def count_state(api, tag_value, states, tag_key="bench"):
    """Instances tagged tag_key=tag_value in any of `states` (following pagination)."""
    n, token = 0, None
    while True:
        p = filters({"Action": "DescribeInstances", "MaxResults": "1000"},
                    instance_state_name=states)
        p[f"Filter.2.Name"] = f"tag:{tag_key}"
        p[f"Filter.2.Value.1"] = tag_value
        if token:
            p["NextToken"] = token
        body = api.call(p)
        n += len(instances_of(body))
        token = next_token(body)
        if not token:
            return n


def wait_ids(api, ids, state, timeout):
    deadline = time.time() + timeout
    left = list(ids)
    while left:
        got = {}
        for k in range(0, len(left), 200):
            for i, s, _ in instances_of(api.call({"Action": "DescribeInstances",
                                                  **ids_params(left[k:k + 200])})):
                got[i] = s
        left = [i for i in left if got.get(i) != state]
        if not left:
            return []
        if time.time() > deadline:
            return left
        time.sleep(0.05)
    return []


# ---- processes ----------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name, cmd, port, log_path, env=None):
    log = open(log_path, "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
    api = Ec2(port)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early; see {log_path}")
        try:
            status, _ = api.raw({"Action": "DescribeRegions"})
            if status == 200:
                return proc, api
        except OSError:
            pass
        time.sleep(0.05)
    stop_server(proc)
    raise RuntimeError(f"{name} did not become ready; see {log_path}")


def stop_server(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def proc_kib(pid, fname, key):
    try:
        with open(f"/proc/{pid}/{fname}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def descendants(pid):
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def supervisors(server_pid):
    return [p for p in children(server_pid) if b"__fc-init" in cmdline(p)]


def _meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def fc_netns():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in out.stdout.splitlines()
            if line.split() and line.split()[0].startswith("fc-")]


# ---- 1 and 2: instances that run ------------------------------------------------------------


def bench_launches(api, ami, n, res, data_dir):
    """Sequential single launches until user data finished; terminated in batches of 20."""
    say(f"ferrocloud: {n} launches (t3.nano, {ami}), user data finished polled every 10 ms")
    run_ms, ready_ms, running_ms, term_ms = [], [], [], []
    written_ms, boot_ms, ssh_ms = [], [], []
    failures = []
    batch = []

    def reap():
        if not batch:
            return
        ms, _ = api.timed({"Action": "TerminateInstances", **ids_params(batch)})
        term_ms.append(ms)
        left = wait_ids(api, batch, "terminated", 120)
        if left:
            failures.append(f"not terminated after 120 s: {left}")
        batch.clear()

    for k in range(n + 1):  # launch 0 is the warm-up (first use of the image)
        marker = f"done-{k}"
        wall0 = time.time()
        t0 = time.perf_counter()
        ms, body = api.timed(run_params(ami, 1, "t3.nano", f"#!/bin/sh\necho {marker}\n",
                                        name=f"launch-{k}"))
        iid = instances_of(body)[0][0]
        batch.append(iid)
        t_running = t_marker = t_written = t_boot = t_ssh = None
        stdout = os.path.join(data_dir, "runtime", "workloads", iid, "stdout.log")
        deadline = t0 + 60
        while time.perf_counter() < deadline:
            if t_running is None:
                got = instances_of(api.call({"Action": "DescribeInstances", "InstanceId.1": iid}))
                state = got[0][1] if got else None
                if state == "running":
                    t_running = time.perf_counter()
                elif state in ("terminated", "shutting-down", "stopped", "stopping"):
                    break
            if t_written is None:
                try:
                    with open(stdout, "rb") as f:
                        text = f.read()
                    now_t = time.perf_counter()
                    if t_boot is None and b"boot 1 of" in text:
                        t_boot = now_t
                    if t_ssh is None and b"created user" in text:
                        t_ssh = now_t
                    if marker.encode() + b"\n" in text:
                        t_written = now_t
                except OSError:
                    pass
            if t_marker is None:
                out = xml(api.call({"Action": "GetConsoleOutput", "InstanceId": iid}))
                text = base64.b64decode(out.findtext("output") or "").decode("utf-8", "replace")
                if marker in text.split():
                    t_marker = time.perf_counter()
            if t_running is not None and t_marker is not None:
                break
            time.sleep(POLL_S)
        if t_running is None or t_marker is None:
            body = api.call({"Action": "DescribeInstances", "InstanceId.1": iid})
            failures.append(f"{iid}: running={t_running is not None} marker="
                            f"{t_marker is not None} reason={state_reason(body)}")
        elif k == 0:
            res["first_launch_ms"] = (max(t_running, t_marker) - t0) * 1000.0
        else:
            run_ms.append(ms)
            running_ms.append((t_running - t0) * 1000.0)
            ready_ms.append((max(t_running, t_marker) - t0) * 1000.0)
            for t, xs in ((t_written, written_ms), (t_boot, boot_ms), (t_ssh, ssh_ms)):
                if t is not None:
                    xs.append((t - t0) * 1000.0)
        if len(batch) >= 20:
            reap()
        if k and k % 20 == 0:
            say(f"   {k}/{n}: ready p50 so far {pct(ready_ms, 50) or 0:.1f} ms")
    reap()
    res["launch_ready"] = summary(ready_ms)
    res["launch_running"] = summary(running_ms)
    res["run_instances_linux"] = summary(run_ms)
    res["terminate_batch20_linux"] = summary(term_ms)
    res["launch_failures"] = failures
    res["launch_user_data_written"] = summary(written_ms)
    res["launch_boot_line_written"] = summary(boot_ms)
    res["launch_user_created_written"] = summary(ssh_ms)
    say(f"   ready p50 {pct(ready_ms, 50) or 0:.1f} ms, p99 {pct(ready_ms, 99) or 0:.1f} ms, "
        f"{len(failures)} failures")


def bench_mass(api, ami, server_pid, n, res, zone_list):
    say(f"ferrocloud: {n} instances at once")
    time.sleep(2)
    rss_before = proc_kib(server_pid, "status", "VmRSS:")
    avail_before = _meminfo("MemAvailable:")
    t0 = time.perf_counter()
    ids, launch_errors = [], []
    stop_reason = None
    k = 0
    while len(ids) < n:
        if _meminfo("MemAvailable:") < 2 * 1024 * 1024:
            stop_reason = "less than 2 GiB of memory available"
            break
        count = min(20, n - len(ids))
        try:
            _, body = api.timed(run_params(ami, count, "t3.nano", "#!/bin/sh\necho mass\n",
                                           name="mass", zone=zone_list[k % len(zone_list)],
                                           tag_key="bench"))
        except ApiError as e:
            launch_errors.append(str(e))
            stop_reason = str(e)
            break
        ids += [i for i, _, _ in instances_of(body)]
        k += 1
    res["mass_launch_api_s"] = time.perf_counter() - t0
    say(f"   {len(ids)} launched in {res['mass_launch_api_s']:.1f} s; waiting for running")
    deadline = time.time() + 900
    while True:
        pending = count_state(api, "mass", ["pending"])
        if pending == 0 or time.time() > deadline:
            break
        time.sleep(0.5)
    res["mass_all_running_s"] = time.perf_counter() - t0
    running = count_state(api, "mass", ["running"])
    failed = count_state(api, "mass", ["terminated", "shutting-down", "stopping", "stopped"])
    reasons = {}
    if failed:
        p = filters({"Action": "DescribeInstances", "MaxResults": "1000"},
                    instance_state_name=["terminated", "shutting-down", "stopping", "stopped"])
        p["Filter.2.Name"], p["Filter.2.Value.1"] = "tag:bench", "mass"
        for r in xml(api.call(p)).iter("stateReason"):
            m = r.findtext("message") or "?"
            reasons[m] = reasons.get(m, 0) + 1
    say(f"   {running} running, {failed} failed after {res['mass_all_running_s']:.1f} s "
        f"{reasons or ''}; letting user data finish")
    time.sleep(10)
    rss_after = proc_kib(server_pid, "status", "VmRSS:")
    sups = supervisors(server_pid)
    sup_rss = sum(proc_kib(p, "status", "VmRSS:") for p in sups)
    sup_pss = sum(proc_kib(p, "smaps_rollup", "Pss:") for p in sups)
    work = [d for p in sups for d in descendants(p)]
    work_pss = sum(proc_kib(p, "smaps_rollup", "Pss:") for p in work)
    avail_after = _meminfo("MemAvailable:")
    res.update({
        "mass_requested": n, "mass_launched": len(ids), "mass_running": running,
        "mass_failed": failed, "mass_failure_reasons": reasons, "mass_stop_reason": stop_reason,
        "server_rss_before_kib": rss_before, "server_rss_after_kib": rss_after,
        "server_kib_per_instance": (rss_after - rss_before) / running if running else None,
        "supervisors": len(sups), "supervisors_rss_kib": sup_rss, "supervisors_pss_kib": sup_pss,
        "workload_processes": len(work), "workloads_pss_kib": work_pss,
        "mem_available_drop_kib": avail_before - avail_after,
    })
    say(f"   server RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB; {len(sups)} "
        f"supervisors RSS {sup_rss / 1024:.0f} MiB PSS {sup_pss / 1024:.0f} MiB; workloads PSS "
        f"{work_pss / 1024:.0f} MiB; MemAvailable -{(avail_before - avail_after) / 1024:.0f} MiB")
    say("   terminating them all")
    t1 = time.perf_counter()
    for k in range(0, len(ids), 100):
        api.call({"Action": "TerminateInstances", **ids_params(ids[k:k + 100])})
    while count_state(api, "mass", ["pending", "running", "shutting-down", "stopping"]) and \
            time.perf_counter() - t1 < 900:
        time.sleep(0.5)
    res["mass_terminate_s"] = time.perf_counter() - t1
    res["mass_left_alive"] = count_state(api, "mass", ["pending", "running", "shutting-down"])
    res["supervisors_left"] = len(supervisors(server_pid))
    say(f"   terminated in {res['mass_terminate_s']:.1f} s; {res['supervisors_left']} "
        "supervisors left")


# ---- 3 and 4: records, DescribeInstances, the API calls ------------------------------------


def single_launches(api, ami, zl, calls):
    """RunInstances of 1 instance then TerminateInstances of it, `calls` times: (run, term) ms."""
    single_run, single_term = [], []
    for k in range(calls):
        ms, body = api.timed(run_params(ami, 1, "t3.nano", "#!/bin/sh\necho x\n",
                                        name="single", zone=zl[k % len(zl)]))
        single_run.append(ms)
        iid = instances_of(body)[0][0]
        ms, _ = api.timed({"Action": "TerminateInstances", "InstanceId.1": iid})
        single_term.append(ms)
    return single_run, single_term


def bench_records(name, api, n, calls, res):
    ami = debian_ami(api)
    zl = zones(api)
    # The same calls on the empty store first: what the records add is the difference.
    single_launches(api, ami, zl, 5)
    run, term = single_launches(api, ami, zl, min(100, calls))
    res["run_instances_1_empty"] = summary(run)
    res["terminate_instances_1_empty"] = summary(term)
    say(f"   empty store: RunInstances 1 p50 {pct(run, 50):.1f} ms, TerminateInstances 1 p50 "
        f"{pct(term, 50):.1f} ms")
    say(f"{name}: creating {n} instance records (RunInstances x20, {len(zl)} zones)")
    run20, ids = [], []
    t0 = time.perf_counter()
    for k in range((n + 19) // 20):
        ms, body = api.timed(run_params(ami, min(20, n - 20 * k), TYPES[k % len(TYPES)],
                                        name=f"web-{k % NAMES:02d}", zone=zl[k % len(zl)]))
        run20.append(ms)
        ids += [i for i, _, _ in instances_of(body)]
        if k % 100 == 99:
            say(f"   {len(ids)} records, {time.perf_counter() - t0:.0f} s")
    res["records_create_s"] = time.perf_counter() - t0
    say(f"   {len(ids)} created in {res['records_create_s']:.1f} s")
    res["run_instances_20"] = summary(run20)
    # Every tenth instance terminated: a realistic mix of states for the filters.
    doomed = ids[::10]
    for k in range(0, len(doomed), 100):
        api.call({"Action": "TerminateInstances", **ids_params(doomed[k:k + 100])})
    time.sleep(1)
    states = {}
    token = None
    while True:
        p = {"Action": "DescribeInstances", "MaxResults": "1000"}
        if token:
            p["NextToken"] = token
        body = api.call(p)
        for _, s, _ in instances_of(body):
            states[s] = states.get(s, 0) + 1
        token = next_token(body)
        if not token:
            break
    res["records"] = sum(states.values())
    res["record_states"] = states
    say(f"   {res['records']} records: {states}")

    # Single-instance RunInstances and TerminateInstances on top of the records.
    single_run, single_term = single_launches(api, ami, zl, min(100, calls))
    res["run_instances_1"] = summary(single_run)
    res["terminate_instances_1"] = summary(single_term)

    queries = {
        "filters: state=running, tag:Name, instance-type": lambda tok: filters(
            {"Action": "DescribeInstances"}, instance_state_name="running",
            tag_Name="web-07", instance_type="t3.nano"),
        "filter: state=running, MaxResults=100, walking NextToken": lambda tok: dict(
            filters({"Action": "DescribeInstances", "MaxResults": "100"},
                    instance_state_name="running"), **({"NextToken": tok} if tok else {})),
        "filters: tag:Name + instance-type, MaxResults=50 (first page)": lambda tok: filters(
            {"Action": "DescribeInstances", "MaxResults": "50"}, tag_Name="web-03",
            instance_type=["t3.micro", "m5.large"]),
        "InstanceIds: one id": lambda tok: {"Action": "DescribeInstances",
                                            "InstanceId.1": ids[len(ids) // 2]},
    }
    res["describe"] = {}
    for label, make in queries.items():
        lat, token, sizes, pages = [], None, [], 0
        warm = 5 if calls >= 100 else 1
        started = time.perf_counter()
        for k in range(calls + warm):
            # A time budget per query (slow peers): at least 5 measured calls.
            if k >= warm + 5 and time.perf_counter() - started > QUERY_BUDGET_S:
                break
            ms, body = api.timed(make(token))
            got = instances_of(body)
            if "NextToken" in label:
                token = next_token(body)
                pages += 1
            if k >= warm:
                lat.append(ms)
                sizes.append(len(got))
        res["describe"][label] = summary(lat) | {"instances_per_answer": statistics.fmean(sizes),
                                                 "bytes_last": len(body)}
        say(f"   DescribeInstances {label}: p50 {pct(lat, 50):.2f} ms, p99 "
            f"{pct(lat, 99):.2f} ms, {statistics.fmean(sizes):.0f} instances per answer")
    return ids


# ---- report ------------------------------------------------------------------------------


def report(fc, moto, args):
    rows = []

    def f(v, unit="ms"):
        if v is None:
            return "-"
        if unit == "n":
            return f"{v:,.0f}"
        if unit == "ms":
            return f"{v:,.2f}" if v < 10 else f"{v:,.1f}"
        return f"{v:,.1f}"

    def add(label, a, b=None, target="", met=None, unit="ms"):
        ratio = f"{b / a:,.1f}x" if a and b else "-"
        rows.append((label, f(a, unit), f(b, unit), ratio, target,
                     "" if met is None else ("met" if met else "NOT MET")))

    lr = fc.get("launch_ready", {})
    add("RunInstances -> running + user data done, p50 (ms)", lr.get("p50_ms"),
        target=f"p50 <= {LAUNCH_TARGET_MS:.0f} ms",
        met=None if lr.get("p50_ms") is None else lr["p50_ms"] <= LAUNCH_TARGET_MS)
    add("RunInstances -> running + user data done, p99 (ms)", lr.get("p99_ms"))
    add("RunInstances -> state running, p50 (ms)", fc.get("launch_running", {}).get("p50_ms"))
    lw = fc.get("launch_user_data_written", {})
    add("  'boot 1 of' in the workload's stdout.log, p50 (ms)",
        fc.get("launch_boot_line_written", {}).get("p50_ms"))
    add("  'created user' (ssh set up) in stdout.log, p50 (ms)",
        fc.get("launch_user_created_written", {}).get("p50_ms"))
    add("  marker written to the workload's stdout.log, p50 (ms)", lw.get("p50_ms"))
    add("  marker written to the workload's stdout.log, p99 (ms)", lw.get("p99_ms"))
    add("first launch (image unpacked) (ms)", fc.get("first_launch_ms"))
    add("RunInstances call, linux driver, p50 (ms)",
        fc.get("run_instances_linux", {}).get("p50_ms"))
    if "mass_running" in fc:
        add(f"instances running at once (of {fc['mass_requested']})", fc["mass_running"],
            unit="n")
        add("RunInstances calls (20 each) for all (s)", fc["mass_launch_api_s"], unit="s")
        add("time to all running (s)", fc["mass_all_running_s"], unit="s")
        add("server RSS before (MiB)", fc["server_rss_before_kib"] / 1024, unit="MiB")
        add("server RSS with all running (MiB)", fc["server_rss_after_kib"] / 1024, unit="MiB")
        per = fc["server_kib_per_instance"]
        add("server memory per instance (KiB)", per, unit="KiB")
        sup = fc["supervisors"] or 1
        add(f"{fc['supervisors']} supervisors: total PSS (MiB)", fc["supervisors_pss_kib"] / 1024,
            unit="MiB")
        add(f"{fc['supervisors']} supervisors: total RSS (MiB)", fc["supervisors_rss_kib"] / 1024,
            unit="MiB")
        add("supervisor PSS per instance (KiB)", fc["supervisors_pss_kib"] / sup, unit="KiB")
        add("workload processes PSS per instance (KiB)", fc["workloads_pss_kib"] / sup,
            unit="KiB")
        add("TerminateInstances of all -> terminated (s)", fc["mass_terminate_s"], unit="s")
    m = moto or {}
    if "records" in fc:
        add(f"records for DescribeInstances (ferrocloud / moto)", fc["records"],
            m.get("records"), unit="n")
        rows[-1] = rows[-1][:3] + ("", "", "")
        for key, label in (("run_instances_1_empty", "RunInstances 1 instance, empty store"),
                           ("run_instances_1", "RunInstances 1 instance"),
                           ("run_instances_20", "RunInstances 20 instances"),
                           ("terminate_instances_1_empty",
                            "TerminateInstances 1 instance, empty store"),
                           ("terminate_instances_1", "TerminateInstances 1 instance")):
            if key not in fc:
                continue
            for p in ("p50", "p99"):
                add(f"{label} {p} (ms)", fc[key][f"{p}_ms"], m.get(key, {}).get(f"{p}_ms"))
        for label, s in fc["describe"].items():
            ms = m.get("describe", {}).get(label, {})
            for p in ("p50", "p99"):
                add(f"DescribeInstances {label} {p} (ms)", s[f"{p}_ms"], ms.get(f"{p}_ms"))
    head = ("figure", "ferrocloud", "moto", "ratio", "target", "met")
    table = [head] + rows
    w = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    print()
    for k, r in enumerate(table):
        print("  ".join(str(c).ljust(w[i]) if i in (0, 4, 5) else str(c).rjust(w[i])
                        for i, c in enumerate(r)).rstrip())
        if k == 0:
            print("-" * (sum(w) + 10))
    print("\nratio = moto's time / ferrocloud's time (how many times faster ferrocloud is).")
    for label, s in fc.get("describe", {}).items():
        ms = m.get("describe", {}).get(label, {})
        print(f"  {label}: {s['instances_per_answer']:.0f} instances per answer "
              f"({s['n']} calls)" + (f", moto {ms['instances_per_answer']:.0f} ({ms['n']} calls)"
                                     if ms else ""))
    return [dict(zip(head, r)) for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ferrocloud", required=True)
    ap.add_argument("--moto-server")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="small counts, for development")
    ap.add_argument("--launches", type=int, default=int(os.environ.get("BENCH_LAUNCHES", 100)))
    ap.add_argument("--mass", type=int, default=int(os.environ.get("BENCH_MASS", 1000)))
    ap.add_argument("--records", type=int, default=int(os.environ.get("BENCH_RECORDS", 10000)))
    ap.add_argument("--calls", type=int, default=int(os.environ.get("BENCH_CALLS", 200)))
    ap.add_argument("--moto-calls", type=int, default=int(os.environ.get("BENCH_MOTO_CALLS", 0)))
    ap.add_argument("--records-mode", choices=["nodriver", "process"],
                    default=os.environ.get("BENCH_RECORDS_MODE", "nodriver"))
    ap.add_argument("--skip", default="", help="comma list of parts to skip: launch,mass,records")
    args = ap.parse_args()
    if args.quick:
        args.launches, args.mass, args.records, args.calls = 20, 100, 1000, 50
    moto_calls = args.moto_calls or min(args.calls, 20)
    skip = set(filter(None, args.skip.split(",")))
    load_before = os.getloadavg()
    netns_before = set(fc_netns())
    workdir = tempfile.mkdtemp(prefix="fc-bench-ec2-", dir="/tmp")
    os.chmod(workdir, 0o755)
    fc, moto = {}, None
    env = dict(os.environ)
    env.setdefault("FERROCLOUD_LOG", "warn")
    try:
        if not {"launch", "mass"} <= skip:
            port = free_port()
            say(f"ferrocloud (linux driver) on port {port}")
            proc, api = start_server(
                "ferrocloud", [args.ferrocloud, "serve", "--port", str(port), "--data-dir",
                               os.path.join(workdir, "fc-run"), "--driver", "linux",
                               "--ec2-vcpu-limit", "1000000"],
                port, os.path.join(workdir, "fc-run.log"), env)
            try:
                ami = debian_ami(api)
                if "launch" not in skip:
                    bench_launches(api, ami, args.launches, fc, os.path.join(workdir, "fc-run"))
                if "mass" not in skip:
                    bench_mass(api, ami, proc.pid, args.mass, fc, zones(api))
            finally:
                # Instances outlive a graceful shutdown: terminate whatever is left first.
                try:
                    left = [i for i, s, _ in instances_of(api.call(filters(
                        {"Action": "DescribeInstances"},
                        instance_state_name=["pending", "running", "stopping", "stopped"])))]
                    for k in range(0, len(left), 100):
                        api.call({"Action": "TerminateInstances", **ids_params(left[k:k + 100])})
                    if left:
                        wait_ids(api, left, "terminated", 600)
                except (ApiError, OSError) as e:
                    say(f"cleanup: {e}")
                stop_server(proc)
        if "records" not in skip:
            port = free_port()
            data = os.path.join(workdir, "fc-records")
            os.makedirs(data)
            if args.records_mode == "nodriver":
                # As `nobody`, the linux driver is not available: EC2 runs without a driver
                # and instances change state on paper.
                os.chown(data, 65534, 65534)
                cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       args.ferrocloud, "serve", "--port", str(port), "--data-dir", data,
                       "--driver", "linux", "--ec2-vcpu-limit", "1000000"]
            else:
                cmd = [args.ferrocloud, "serve", "--port", str(port), "--data-dir", data,
                       "--driver", "process", "--ec2-vcpu-limit", "1000000"]
            say(f"ferrocloud (records only, {args.records_mode}) on port {port}")
            proc, api = start_server("ferrocloud-records", cmd, port,
                                     os.path.join(workdir, "fc-records.log"), env)
            try:
                bench_records("ferrocloud", api, args.records, args.calls, fc)
                fc["records_mode"] = args.records_mode
                fc["records_server_rss_kib"] = proc_kib(proc.pid, "status", "VmRSS:")
            finally:
                stop_server(proc)
            if args.moto_server:
                port = free_port()
                say(f"moto on port {port}")
                proc, api = start_server("moto", [args.moto_server, "-H", "127.0.0.1", "-p",
                                                  str(port)], port,
                                         os.path.join(workdir, "moto.log"))
                moto = {}
                try:
                    bench_records("moto", api, args.records, moto_calls, moto)
                    moto["server_rss_kib"] = proc_kib(proc.pid, "status", "VmRSS:")
                finally:
                    stop_server(proc)
        for _ in range(30):  # network namespaces go away asynchronously after terminate
            left_ns = sorted(set(fc_netns()) - netns_before)
            if not left_ns:
                break
            time.sleep(1)
        fc["fc_netns_left"] = left_ns
        rows = report(fc, moto, args)
        print(f"\n{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {os.cpu_count()} cores, "
              f"load average before {load_before[0]:.2f}; fc-* network namespaces left "
              f"behind by this run: {len(left_ns)}")
        results = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "mem_total_kib": _meminfo("MemTotal:"),
                        "loadavg_before": [round(x, 2) for x in load_before],
                        "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
            "settings": {"launches": args.launches, "mass": args.mass, "records": args.records,
                         "calls": args.calls, "moto_calls": moto_calls,
                         "records_mode": args.records_mode,
                         "moto": os.environ.get("BENCH_MOTO_VERSION")},
            "ferrocloud": fc, "moto": moto, "table": rows,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"results written to {args.out}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
