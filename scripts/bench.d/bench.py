#!/usr/bin/env python3
"""ferrocloud vs moto_server, measured in one run on this machine (started by scripts/bench).

For each server: time from process start to the first served request, idle RSS, then
throughput and p50/p99 latency of sts:GetCallerIdentity and logs:DescribeLogGroups at 64
concurrent keep-alive loopback connections (wrk with a Lua script, or a Python asyncio load
generator when wrk is missing), and RSS after the load. Prints a table with the ratio and the
targets, and writes everything to target/bench/results.json.

All traffic goes to 127.0.0.1 only, and every run is bounded in time.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
AMZ_DATE = "20260101T000000Z"

TARGETS = {
    "ready_ms": 20.0,  # ferrocloud below
    "idle_rss_mib": 15.0,  # ferrocloud below
    "rps": 20000.0,  # ferrocloud at least
    "ratio": 30.0,  # ferrocloud throughput at least this many times moto's
}


def authorization(service):
    return (
        f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/{service}/"
        f"aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={FAKE_SIGNATURE}"
    )


OPERATIONS = {
    "sts:GetCallerIdentity": {
        "body": "Action=GetCallerIdentity&Version=2011-06-15",
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Amz-Date": AMZ_DATE,
            "Authorization": authorization("sts"),
        },
        "expect": b"GetCallerIdentityResult",
    },
    "logs:DescribeLogGroups": {
        "body": "{}",
        "headers": {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
            "X-Amz-Date": AMZ_DATE,
            "Authorization": authorization("logs"),
        },
        "expect": b"bench-group-",
    },
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_request(op, port):
    spec = OPERATIONS[op]
    body = spec["body"].encode()
    head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    for k, v in spec["headers"].items():
        head += f"{k}: {v}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def call(port, op, body=None, headers=None, timeout=10):
    """One request with http.client; (status, body)."""
    spec = OPERATIONS.get(op, {})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST", "/", body=(body if body is not None else spec["body"]),
            headers=(headers if headers is not None else spec["headers"]),
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- process helpers ---------------------------------------------------------------------


def rss_kib(pid):
    """VmRSS of a process and all its descendants, KiB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(proc, port, probe, deadline_s=60.0):
    """Poll until the server answers `probe` with a 200; ms since `proc` was started."""
    start = proc.bench_started
    deadline = start + deadline_s
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            with open(proc.bench_log, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError(
                f"server exited with status {proc.returncode} before serving:\n{tail}"
            )
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, OSError):
            s.close()
            time.sleep(0.0002)
            continue
        try:
            s.settimeout(10)
            s.sendall(probe)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"):
                return (time.perf_counter() - start) * 1000.0
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.0002)
    raise RuntimeError("server did not become ready in time")


def start(cmd, env, log_path):
    """Start a server, its output going to `log_path` (a pipe nobody reads would block it)."""
    with open(log_path, "ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    proc.bench_started = started
    proc.bench_log = log_path
    return proc


# ---- load generation ---------------------------------------------------------------------

LUA = r"""
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
for k, v in string.gmatch(os.getenv("BENCH_HEADERS"), "([^\n:]+): ([^\n]*)") do
  wrk.headers[k] = v
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d," ..
    "\"max_us\":%d,\"mean_us\":%f,\"connect_errors\":%d,\"read_errors\":%d," ..
    "\"write_errors\":%d,\"status_errors\":%d,\"timeouts\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


def run_wrk(port, op, seconds, connections, threads, workdir):
    spec = OPERATIONS[op]
    script = os.path.join(workdir, "bench.lua")
    with open(script, "w") as f:
        f.write(LUA)
    env = dict(os.environ)
    env["BENCH_BODY"] = spec["body"]
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in spec["headers"].items())
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", script, f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    return {
        "requests": r["requests"],
        "seconds": secs,
        "rps": r["requests"] / secs if secs else 0.0,
        "p50_ms": r["p50_us"] / 1000.0,
        "p90_ms": r["p90_us"] / 1000.0,
        "p99_ms": r["p99_us"] / 1000.0,
        "max_ms": r["max_us"] / 1000.0,
        "non_2xx": r["status_errors"],  # wrk counts statuses >= 400
        "socket_errors": errors,
        "generator": "wrk",
    }


def _py_worker(port, request, conns, seconds, queue):
    """One process of the Python load generator: `conns` keep-alive connections."""
    import asyncio

    async def one(lat, counts):
        reader = writer = None
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if m:
                    await reader.readexactly(int(m.group(1)))
                else:  # no length: read to close
                    await reader.read()
                    writer.close()
                    writer = None
                lat.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                    counts["non_2xx"] += 1
                if re.search(rb"(?i)\r\nconnection:\s*close", head) and writer is not None:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                counts["errors"] += 1
                if writer is not None:
                    writer.close()
                writer = None
        if writer is not None:
            writer.close()

    async def main():
        lat, counts = [], {"non_2xx": 0, "errors": 0}
        await asyncio.gather(*(one(lat, counts) for _ in range(conns)))
        return lat, counts

    lat, counts = asyncio.run(main())
    queue.put((lat, counts))


def run_python_load(port, op, seconds, connections, procs):
    request = raw_request(op, port)
    queue = multiprocessing.Queue()
    per = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    workers = [
        multiprocessing.Process(target=_py_worker, args=(port, request, n, seconds, queue))
        for n in per
    ]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    lat, non2xx, errors = [], 0, 0
    for _ in workers:
        l, c = queue.get(timeout=seconds + 60)
        lat += l
        non2xx += c["non_2xx"]
        errors += c["errors"]
    for w in workers:
        w.join()
    secs = time.perf_counter() - t0
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000.0 if lat else 0.0

    return {
        "requests": len(lat),
        "seconds": secs,
        "rps": len(lat) / secs,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": lat[-1] * 1000.0 if lat else 0.0,
        "non_2xx": non2xx,
        "socket_errors": errors,
        "generator": "python-asyncio",
    }


# ---- one server --------------------------------------------------------------------------


def bench_server(name, make_cmd, args, workdir):
    log(f"== {name}")
    server_log = os.path.join(workdir, f"{name}.log")
    result = {"name": name}
    probe_port = free_port()
    ready = []
    health = []
    for i in range(args.starts):
        port = free_port()
        cmd, env = make_cmd(port, i)
        proc = start(cmd, env, server_log)
        try:
            ready.append(wait_ready(proc, port, raw_request("sts:GetCallerIdentity", port)))
        finally:
            stop(proc)
        if name == "ferrocloud":
            cmd, env = make_cmd(port, f"h{i}")
            proc = start(cmd, env, server_log)
            try:
                probe = f"GET /_ferrocloud/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                health.append(wait_ready(proc, port, probe.encode()))
            finally:
                stop(proc)
    result["ready_ms_runs"] = [round(x, 2) for x in ready]
    result["ready_ms"] = statistics.median(ready)
    if health:
        result["health_ready_ms_runs"] = [round(x, 2) for x in health]
        result["health_ready_ms"] = statistics.median(health)
    log(
        f"   ready (first GetCallerIdentity): median {result['ready_ms']:.1f} ms of "
        f"{result['ready_ms_runs']}"
    )

    port = probe_port
    cmd, env = make_cmd(port, "load")
    proc = start(cmd, env, server_log)
    try:
        wait_ready(proc, port, raw_request("sts:GetCallerIdentity", port))
        time.sleep(args.idle_seconds)
        result["idle_rss_kib"] = rss_kib(proc.pid)
        log(f"   idle RSS {result['idle_rss_kib'] / 1024:.1f} MiB")

        for n in range(args.log_groups):
            status, body = call(
                port, None, body=json.dumps({"logGroupName": f"bench-group-{n:02d}"}),
                headers={
                    "Content-Type": "application/x-amz-json-1.1",
                    "X-Amz-Target": "Logs_20140328.CreateLogGroup",
                    "X-Amz-Date": AMZ_DATE,
                    "Authorization": authorization("logs"),
                },
            )
            if status != 200:
                raise RuntimeError(f"CreateLogGroup answered {status}: {body[:300]!r}")
        result["ops"] = {}
        for op, spec in OPERATIONS.items():
            status, body = call(port, op)
            ok = status == 200 and spec["expect"] in body
            if op == "logs:DescribeLogGroups" and ok:
                groups = json.loads(body).get("logGroups", [])
                ok = len(groups) == args.log_groups
            if not ok:
                raise RuntimeError(f"{name} {op}: unexpected answer {status}: {body[:400]!r}")
            if args.warmup > 0:
                load(port, op, args.warmup, args, workdir)
            r = load(port, op, args.seconds, args, workdir)
            result["ops"][op] = r
            log(
                f"   {op}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 "
                f"{r['p99_ms']:.2f} ms ({r['requests']} requests, {r['non_2xx']} non-2xx, "
                f"{r['socket_errors']} socket errors; {r['generator']})"
            )
        result["loaded_rss_kib"] = rss_kib(proc.pid)
        log(f"   RSS after load {result['loaded_rss_kib'] / 1024:.1f} MiB")
    finally:
        stop(proc)
    return result


def load(port, op, seconds, args, workdir):
    if args.generator == "wrk":
        return run_wrk(port, op, seconds, args.connections, args.threads, workdir)
    return run_python_load(port, op, seconds, args.connections, args.threads)


# ---- report ------------------------------------------------------------------------------


def version_of(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def report(fc, moto, args, load_before):
    rows = []  # (figure, fc, moto, ratio text, target text, met)

    def fmt(v, unit):
        if v is None:
            return "-"
        if unit == "req/s":
            return f"{v:,.0f}"
        if unit == "MiB":
            return f"{v:.1f}"
        return f"{v:.2f}" if v < 100 else f"{v:,.0f}"

    def add(figure, unit, a, b, lower_is_better, target=None, target_text="", met=None):
        if a and b:
            ratio = b / a if lower_is_better else a / b
            ratio_text = f"{ratio:,.1f}x"
        else:
            ratio = None
            ratio_text = "-"
        rows.append({
            "figure": figure, "unit": unit, "ferrocloud": a, "moto": b, "ratio": ratio,
            "ratio_text": ratio_text, "target": target_text,
            "met": None if met is None else bool(met),
        })

    add("ready (first GetCallerIdentity)", "ms", fc["ready_ms"], moto["ready_ms"], True,
        target_text=f"< {TARGETS['ready_ms']:.0f} ms", met=fc["ready_ms"] < TARGETS["ready_ms"])
    if "health_ready_ms" in fc:
        add("ready (first /_ferrocloud/health)", "ms", fc["health_ready_ms"], None, True,
            target_text=f"< {TARGETS['ready_ms']:.0f} ms",
            met=fc["health_ready_ms"] < TARGETS["ready_ms"])
    fi, mi = fc["idle_rss_kib"] / 1024, moto["idle_rss_kib"] / 1024
    add("idle RSS", "MiB", fi, mi, True, target_text=f"< {TARGETS['idle_rss_mib']:.0f} MiB",
        met=fi < TARGETS["idle_rss_mib"])
    for op in OPERATIONS:
        a, b = fc["ops"][op], moto["ops"][op]
        add(f"{op} throughput", "req/s", a["rps"], b["rps"], False,
            target_text=f">= {TARGETS['rps']:,.0f} req/s, >= {TARGETS['ratio']:.0f}x moto",
            met=a["rps"] >= TARGETS["rps"] and b["rps"] > 0
            and a["rps"] / b["rps"] >= TARGETS["ratio"])
        add(f"{op} p50", "ms", a["p50_ms"], b["p50_ms"], True)
        add(f"{op} p99", "ms", a["p99_ms"], b["p99_ms"], True)
    add("RSS after load", "MiB", fc["loaded_rss_kib"] / 1024, moto["loaded_rss_kib"] / 1024, True)

    w = max(len(r["figure"]) + len(r["unit"]) + 3 for r in rows)
    tw = max(len(r["target"]) for r in rows)
    line = f"{'figure':<{w}} {'ferrocloud':>12} {'moto':>12} {'ratio':>9}  {'target':<{tw}}  met"
    print()
    print(line)
    print("-" * len(line))
    for r in rows:
        label = f"{r['figure']} ({r['unit']})"
        status = "" if r["met"] is None else ("met" if r["met"] else "NOT MET")
        print(
            f"{label:<{w}} {fmt(r['ferrocloud'], r['unit']):>12} {fmt(r['moto'], r['unit']):>12} "
            f"{r['ratio_text']:>9}  {r['target']:<{tw}}  {status}".rstrip()
        )
    print(
        f"\nratio = how many times better ferrocloud is (moto/ferrocloud for times and memory, "
        f"ferrocloud/moto for throughput). {args.connections} keep-alive connections, "
        f"{args.seconds}s per operation, load generator: {args.generator} "
        f"({args.threads} threads), ready = median of {args.starts} starts. Load average "
        f"before the run: {load_before[0]:.2f} (1 min; anything else running shares the cores)."
    )
    return rows


def markdown(rows, results):
    """The table as Markdown, for the README."""
    st = results["settings"]

    def cell(v, unit):
        if v is None:
            return "-"
        if unit == "req/s":
            return f"{v:,.0f}"
        return f"{v:.1f}" if unit == "MiB" or v >= 10 else f"{v:.2f}"

    out = [
        "| figure | ferrocloud | moto | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        met = "" if r["met"] is None else (" (met)" if r["met"] else " (**not met**)")
        out.append(
            f"| {r['figure']} ({r['unit']}) | {cell(r['ferrocloud'], r['unit'])} | "
            f"{cell(r['moto'], r['unit'])} | {r['ratio_text']} | {r['target']}{met} |"
        )
    out.append("")
    out.append(
        f"{results['when']}, {results['machine']['cpus']} cores, {st['connections']} keep-alive "
        f"loopback connections, {st['seconds']} s per operation ({st['generator']}, "
        f"{st['threads']} threads, on the same cores), moto {st['moto']}, ferrocloud "
        f"{st['ferrocloud_storage']}."
    )
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ferrocloud", required=True)
    ap.add_argument("--moto-server", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 10)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 2)))
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    ap.add_argument("--starts", type=int, default=int(os.environ.get("BENCH_STARTS", 5)))
    ap.add_argument("--idle-seconds", type=float, default=1.0)
    ap.add_argument("--log-groups", type=int, default=20)
    ap.add_argument("--generator", choices=["wrk", "python"],
                    default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--ephemeral", action="store_true",
                    help="run ferrocloud with --ephemeral instead of a fresh --data-dir")
    args = ap.parse_args()

    load_before = os.getloadavg()
    workdir = tempfile.mkdtemp(prefix="ferrocloud-bench-")
    try:
        def fc_cmd(port, tag):
            cmd = [args.ferrocloud, "serve", "--port", str(port)]
            if args.ephemeral:
                cmd.append("--ephemeral")
            else:
                cmd += ["--data-dir", os.path.join(workdir, f"data-{tag}")]
            # Default logging (one INFO line per request, to a file), as a user runs it;
            # FERROCLOUD_LOG in the environment is passed through.
            return cmd, dict(os.environ)

        def moto_cmd(port, tag):
            return [args.moto_server, "-H", "127.0.0.1", "-p", str(port)], dict(os.environ)

        fc = bench_server("ferrocloud", fc_cmd, args, workdir)
        moto = bench_server("moto", moto_cmd, args, workdir)
        rows = report(fc, moto, args, load_before)
        results = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            },
            "settings": {
                "connections": args.connections,
                "seconds": args.seconds,
                "warmup_seconds": args.warmup,
                "threads": args.threads,
                "starts": args.starts,
                "generator": args.generator,
                "wrk": version_of(["wrk", "-v"]) if args.generator == "wrk" else None,
                "ferrocloud": version_of([args.ferrocloud, "--version"]),
                "ferrocloud_storage": "ephemeral" if args.ephemeral else "data-dir",
                "ferrocloud_log": os.environ.get("FERROCLOUD_LOG", "default (info)"),
                "moto": os.environ.get("BENCH_MOTO_VERSION", "unknown"),
            },
            "targets": TARGETS,
            "ferrocloud": fc,
            "moto": moto,
            "table": rows,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        md = os.path.splitext(os.path.abspath(args.out))[0] + ".md"
        with open(md, "w") as f:
            f.write(markdown(rows, results))
        print(f"\nresults written to {args.out} (and a Markdown table to {md})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
