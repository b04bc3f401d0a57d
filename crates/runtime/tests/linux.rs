//! Tests of what only the linux driver does: isolation, overlay rootfs, read-only root,
//! cgroup limits, hostname, volumes, networking (workload to workload, published ports,
//! link-local services, the API address) and teardown that leaves nothing behind.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_gone, eventually, Env, Kind};
use fc_runtime::{LinkLocalHandler, MountSource, MountSpec, NetworkSpec, PortSpec, IMDS_ADDRESS};
use tokio::io::AsyncWriteExt;

fn env(name: &str) -> Env {
    Env::new(Kind::Linux, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_are_isolated_from_each_other() {
    let env = env("isolation");
    let d = env.driver();
    let a = d
        .start(env.sh(
            "a",
            "echo secret > /tmp/secret; echo pid=$$; echo ready; while true; do sleep 1; done",
        ))
        .await
        .unwrap();
    env.sink.wait_line("a", "ready").await;
    assert!(env.sink.lines("a").contains(&"pid=1".to_string()));
    let b = d
        .start(env.sh(
            "b",
            "echo pid=$$; ls /tmp/secret 2>/dev/null && echo visible || echo invisible; \
             ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; \
             echo procs-done",
        ))
        .await
        .unwrap();
    d.wait("b").await.unwrap();
    let lines = env.sink.lines("b");
    assert_eq!(lines[0], "pid=1", "{lines:?}");
    assert_eq!(lines[1], "invisible", "{lines:?}");
    // Only the shell (1) and its pipeline children are visible; never the host's pid numbers.
    let pids: Vec<u32> = lines[2]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.contains(&1), "{pids:?}");
    assert!(pids.len() <= 8, "sees foreign processes: {pids:?}");
    assert!(!pids.contains(&(std::process::id())));
    // The host sees neither workload's files.
    assert!(!std::path::Path::new("/tmp/secret").exists());
    d.destroy("a").await.unwrap();
    d.destroy("b").await.unwrap();
    assert_gone(&a).await;
    assert_gone(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_rootfs_from_two_layers_and_upper_discarded() {
    let env = env("overlay");
    let top = env.root.join("top");
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/x"), "top\n").unwrap();
    std::fs::write(env.layer.join("etc/x"), "bottom\n").unwrap();
    std::fs::write(env.layer.join("etc/y"), "only-bottom\n").unwrap();
    let d = env.driver();
    let mut spec = env.sh(
        "w",
        "cat /etc/x /etc/y; echo new > /etc/x; echo made > /newfile; cat /etc/x",
    );
    spec.rootfs.lowers = vec![top.clone(), env.layer.clone()];
    let h = d.start(spec).await.unwrap();
    assert_eq!(d.wait("w").await.unwrap().code, Some(0));
    assert_eq!(
        env.sink.lines("w"),
        vec!["top", "only-bottom", "new"],
        "top layer wins, writes go to the upper layer"
    );
    assert_eq!(std::fs::read_to_string(top.join("etc/x")).unwrap(), "top\n");
    assert!(!env.layer.join("newfile").exists());
    assert!(h.dir.join("upper/newfile").exists() || !d.capabilities().overlay);
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
    // A new workload starts from the pristine layers.
    let mut spec = env.sh(
        "w2",
        "cat /etc/x; ls /newfile 2>/dev/null || echo no-newfile",
    );
    spec.rootfs.lowers = vec![top, env.layer.clone()];
    d.start(spec).await.unwrap();
    d.wait("w2").await.unwrap();
    assert_eq!(env.sink.lines("w2"), vec!["top", "no-newfile"]);
    d.destroy("w2").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_root() {
    let env = env("readonly");
    let d = env.driver();
    let mut spec = env.sh(
        "w",
        "touch /x 2>&1 || echo refused; touch /dev/shm/ok && echo shm-ok",
    );
    spec.rootfs.read_only = true;
    let h = d.start(spec).await.unwrap();
    d.wait("w").await.unwrap();
    let lines = env.sink.lines("w");
    assert!(
        lines.iter().any(|l| l.contains("Read-only file system")),
        "{lines:?}"
    );
    assert!(lines.contains(&"refused".to_string()));
    assert!(lines.contains(&"shm-ok".to_string()));
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_oom_kill_is_reported() {
    let env = env("oom");
    let d = env.driver();
    let mut spec = env.spec(
        "w",
        &[
            "python3",
            "-c",
            "import sys; print('allocating', flush=True); a = b'x' * (512 << 20); print('survived')",
        ],
    );
    spec.limits.memory_bytes = Some(64 << 20);
    let h = d.start(spec).await.unwrap();
    let s = d.wait("w").await.unwrap();
    assert!(s.oom_killed, "{s:?}");
    assert_eq!(s.signal, Some(libc::SIGKILL));
    assert_eq!(s.reason, "oom killed");
    assert!(!env.sink.lines("w").contains(&"survived".to_string()));
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pids_and_cpu_limits_apply() {
    let env = env("pids");
    let d = env.driver();
    let script = r#"
import os, time
n = 0
for i in range(60):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    n += 1
print('forked', n, flush=True)
"#;
    let mut spec = env.spec("w", &["python3", "-c", script]);
    spec.limits.pids = Some(16);
    spec.limits.cpu_millis = Some(500);
    let h = d.start(spec).await.unwrap();
    let s = d.wait("w").await.unwrap();
    assert_eq!(s.code, Some(0), "{s:?}");
    let line = env.sink.lines("w").join(" ");
    let n: u32 = line.trim_start_matches("forked ").trim().parse().unwrap();
    assert!(n < 16, "forked {n} processes under a limit of 16");
    // The CPU quota is half a CPU.
    let quota: Vec<String> = h
        .cgroups
        .iter()
        .filter_map(|c| {
            std::fs::read_to_string(c.join("cpu.cfs_quota_us"))
                .or_else(|_| std::fs::read_to_string(c.join("cpu.max")))
                .ok()
        })
        .collect();
    assert!(
        quota.iter().any(|q| q.starts_with("50000")),
        "quota {quota:?}"
    );
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_binds_and_named_volumes() {
    let env = env("hostvol");
    let hostdir = env.root.join("hostdir");
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::write(hostdir.join("hello"), "from-host\n").unwrap();
    let d = env.driver();
    let mut spec = env.sh(
        "w",
        "hostname; cat /proc/sys/kernel/hostname; cat /in/hello; \
         { echo x > /in/nope; } 2>/dev/null || echo bind-ro; echo kept > /data/file; id -un",
    );
    spec.hostname = Some("box-1".into());
    spec.process.user = Some("app".into());
    spec.rootfs
        .binds
        .push((hostdir.clone(), "/in".into(), true));
    spec.mounts.push(MountSpec {
        source: MountSource::Volume("vol1".into()),
        target: "/data".into(),
        read_only: false,
    });
    // The volume directory must be writable for the unprivileged user.
    let vol = env.state.join("volumes/vol1");
    std::fs::create_dir_all(&vol).unwrap();
    std::os::unix::fs::chown(&vol, Some(1234), Some(2345)).unwrap();
    let h = d.start(spec).await.unwrap();
    assert_eq!(d.wait("w").await.unwrap().code, Some(0));
    assert_eq!(
        env.sink.lines("w"),
        vec!["box-1", "box-1", "from-host", "bind-ro", "app"]
    );
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
    assert_eq!(std::fs::read_to_string(vol.join("file")).unwrap(), "kept\n");
    assert!(!hostdir.join("nope").exists());
    let mut spec = env.sh("w2", "cat /data/file");
    spec.mounts.push(MountSpec {
        source: MountSource::Volume("vol1".into()),
        target: "/data".into(),
        read_only: true,
    });
    d.start(spec).await.unwrap();
    d.wait("w2").await.unwrap();
    assert_eq!(env.sink.lines("w2"), vec!["kept"]);
    d.destroy("w2").await.unwrap();
}

const SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8080))
s.listen(16)
print('listening', flush=True)
while True:
    c, a = s.accept()
    c.sendall(('pong from %s to %s\n' % (c.getsockname()[0], a[0])).encode())
    c.close()
"#;

fn client(target: &str, port: u16) -> String {
    r#"
import socket, time, sys
deadline = time.time() + 60
while True:
    try:
        c = socket.create_connection(('TARGET', PORT), timeout=5)
        data = b''
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        print(data.decode().strip(), flush=True)
        break
    except OSError as e:
        if time.time() > deadline:
            print('failed', e, flush=True)
            sys.exit(1)
        time.sleep(0.05)
"#
    .replace("TARGET", target)
    .replace("PORT", &port.to_string())
}

fn net(network: &str, ip: Option<Ipv4Addr>, ports: Vec<PortSpec>) -> Option<NetworkSpec> {
    Some(NetworkSpec {
        network: network.into(),
        cidr: "10.231.7.0/24".into(),
        ip,
        ports,
        domain: None,
    })
}

struct Imds;
impl LinkLocalHandler for Imds {
    fn handle(
        &self,
        peer: SocketAddr,
        workload: Option<String>,
        mut stream: tokio::net::TcpStream,
    ) {
        tokio::spawn(async move {
            let msg = format!(
                "imds for {} at {}\n",
                workload.unwrap_or_default(),
                peer.ip()
            );
            let _ = stream.write_all(msg.as_bytes()).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networking_between_workloads_ports_and_link_local() {
    let mut env = env("net");
    // A stand-in for ferrocloud's API on host 127.0.0.1.
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    env.api_port = api.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            if let Ok((mut s, _)) = api.accept().await {
                let _ = s.write_all(b"api here\n").await;
            }
        }
    });
    let d = env.driver();
    d.serve_link_local(IMDS_ADDRESS, Arc::new(Imds))
        .await
        .unwrap();
    let mut spec = env.spec("srv", &["python3", "-c", SERVER]);
    spec.network = net(
        "subnet-a",
        Some(Ipv4Addr::new(10, 231, 7, 10)),
        vec![PortSpec {
            container_port: 8080,
            host_port: 0,
        }],
    );
    let srv = d.start(spec).await.unwrap();
    let n = srv.network.clone().unwrap();
    assert_eq!(n.ip, Ipv4Addr::new(10, 231, 7, 10));
    assert_eq!(n.gateway, Ipv4Addr::new(10, 231, 7, 1));
    env.sink.wait_line("srv", "listening").await;

    // Workload to workload by address.
    let mut spec = env.spec("cli", &["python3", "-c", &client("10.231.7.10", 8080)]);
    spec.network = net("subnet-a", None, vec![]);
    let cli = d.start(spec).await.unwrap();
    let cli_ip = cli.network.clone().unwrap().ip;
    assert_eq!(cli_ip, Ipv4Addr::new(10, 231, 7, 4), "first free address");
    assert_eq!(d.wait("cli").await.unwrap().code, Some(0));
    assert_eq!(
        env.sink.lines("cli"),
        vec![format!("pong from 10.231.7.10 to {cli_ip}")]
    );

    // Published port on host 127.0.0.1.
    let port = n.ports[0].host;
    assert_eq!(port.ip().to_string(), "127.0.0.1");
    let got = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(port).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let _ = s.write_all(b"");
        buf
    })
    .await
    .unwrap();
    assert!(
        got.starts_with("pong from 10.231.7.10 to 10.231.7.1"),
        "{got}"
    );

    // IMDS at 169.254.169.254:80 and the API address, from inside.
    let api_addr = d.api_address();
    let mut spec = env.spec("imds", &["python3", "-c", &client("169.254.169.254", 80)]);
    spec.network = net("subnet-a", None, vec![]);
    let imds = d.start(spec).await.unwrap();
    d.wait("imds").await.unwrap();
    let imds_ip = imds.network.clone().unwrap().ip;
    assert_eq!(
        env.sink.lines("imds"),
        vec![format!("imds for imds at {imds_ip}")]
    );
    let mut spec = env.spec(
        "api",
        &[
            "python3",
            "-c",
            &client(&api_addr.ip().to_string(), api_addr.port()),
        ],
    );
    spec.network = net("subnet-a", None, vec![]);
    d.start(spec).await.unwrap();
    d.wait("api").await.unwrap();
    assert_eq!(env.sink.lines("api"), vec!["api here"]);

    // A workload on another network cannot reach the server.
    let mut spec = env.spec(
        "other",
        &[
            "python3",
            "-c",
            "import socket\ntry:\n    socket.create_connection(('10.231.7.10', 8080), timeout=2)\n    print('reached')\nexcept OSError:\n    print('unreachable')\n",
        ],
    );
    spec.network = Some(NetworkSpec {
        network: "subnet-b".into(),
        cidr: "10.231.8.0/24".into(),
        ip: None,
        ports: vec![],
        domain: None,
    });
    d.start(spec).await.unwrap();
    d.wait("other").await.unwrap();
    assert_eq!(env.sink.lines("other"), vec!["unreachable"]);

    // Address conflicts are refused.
    let mut spec = env.sh("dup", "true");
    spec.network = net("subnet-a", Some(Ipv4Addr::new(10, 231, 7, 10)), vec![]);
    assert!(d.start(spec).await.is_err());

    let router = n.router_ns.clone();
    for id in ["srv", "cli", "imds", "api", "other"] {
        d.destroy(id).await.unwrap();
    }
    assert_gone(&srv).await;
    assert_gone(&cli).await;
    // The published port is closed.
    assert!(std::net::TcpStream::connect(port).is_err());
    d.shutdown().await;
    let ns = std::path::Path::new("/run/netns").join(&router);
    eventually("router namespace removal", || (!ns.exists()).then_some(())).await;
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(&router), "router netns mount left");
    assert!(!mi.contains(env.state.to_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_on_a_new_network() {
    let env = env("concurrent");
    let d = env.driver();
    let mut starts = Vec::new();
    for i in 0..4 {
        let mut spec = env.sh(&format!("c{i}"), "sleep 1000");
        spec.network = net("subnet-c", None, Vec::new());
        let d = d.clone();
        starts.push(tokio::spawn(async move { d.start(spec).await }));
    }
    let mut handles = Vec::new();
    for s in starts {
        handles.push(s.await.unwrap().expect("every concurrent start succeeds"));
    }
    let mut ips: Vec<_> = handles
        .iter()
        .map(|h| h.network.clone().unwrap().ip)
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "distinct addresses: {ips:?}");
    for i in 0..4 {
        d.destroy(&format!("c{i}")).await.unwrap();
    }
    for h in &handles {
        assert_gone(h).await;
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_leaves_nothing() {
    let env = env("teardown");
    let d = env.driver();
    let mut handles = Vec::new();
    for i in 0..3 {
        let mut spec = env.sh(&format!("w{i}"), "sleep 1000 & sleep 1000 & wait");
        spec.limits.memory_bytes = Some(128 << 20);
        spec.limits.pids = Some(50);
        spec.network = net(
            "subnet-t",
            None,
            vec![PortSpec {
                container_port: 80,
                host_port: 0,
            }],
        );
        handles.push(d.start(spec).await.unwrap());
    }
    let stats = d.stats("w0").await.unwrap();
    assert_eq!(stats.pids, 3, "{stats:?}");
    let router = handles[0].network.clone().unwrap().router_ns;
    for i in 0..3 {
        d.destroy(&format!("w{i}")).await.unwrap();
    }
    for h in &handles {
        assert_gone(h).await;
    }
    d.shutdown().await;
    assert!(!std::path::Path::new("/run/netns").join(&router).exists());
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(env.state.to_str().unwrap()));
    assert!(!mi.contains(&router));
    // No process of ours runs the init for this state dir any more.
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(
                !cmd.contains(env.state.to_str().unwrap()),
                "leftover process {cmd}"
            );
        }
    }
}

/// A server that names itself in its answer.
fn named_server(name: &str) -> String {
    SERVER.replace("'pong from", &format!("'{name}: pong from"))
}

/// One line from `target:port`, connecting from inside workload `id`: `refused` when something
/// answered that nothing listens there, `unreachable` when nothing answered or the network
/// said there is no way there.
async fn probe(d: &Arc<dyn fc_runtime::Driver>, id: &str, target: &str, port: u16) -> String {
    let script = format!(
        "import socket\ntry:\n    c = socket.create_connection(('{target}', {port}), timeout=3)\n    \
         print(c.recv(4096).decode().strip())\nexcept ConnectionRefusedError:\n    \
         print('refused')\nexcept OSError:\n    print('unreachable')\n"
    );
    let out = d
        .exec(
            id,
            fc_runtime::ExecSpec {
                argv: vec!["python3".into(), "-c".into(), script],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn domain_net(network: &str, cidr: &str, domain: Option<&str>, ip: [u8; 4]) -> NetworkSpec {
    NetworkSpec {
        network: network.into(),
        cidr: cidr.into(),
        ip: Some(Ipv4Addr::from(ip)),
        ports: vec![],
        domain: domain.map(str::to_string),
    }
}

fn fetch(port: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(port).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_of_a_domain_route_and_domains_stay_apart() {
    let mut env = env("domains");
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    env.api_port = api.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            if let Ok((mut s, _)) = api.accept().await {
                let _ = s.write_all(b"api here\n").await;
            }
        }
    });
    let d = env.driver();
    d.serve_link_local(IMDS_ADDRESS, Arc::new(Imds))
        .await
        .unwrap();
    // Two "VPCs" with the same address ranges, a third one, and a network without a domain.
    let nets = [
        (
            "a1",
            "sub-a1",
            "10.233.1.0/24",
            Some("vpc-a"),
            [10, 233, 1, 10],
        ),
        (
            "a2",
            "sub-a2",
            "10.233.2.0/24",
            Some("vpc-a"),
            [10, 233, 2, 20],
        ),
        (
            "b1",
            "sub-b1",
            "10.233.1.0/24",
            Some("vpc-b"),
            [10, 233, 1, 10],
        ),
        (
            "b2",
            "sub-b2",
            "10.233.2.0/24",
            Some("vpc-b"),
            [10, 233, 2, 20],
        ),
        (
            "c1",
            "sub-c1",
            "10.233.3.0/24",
            Some("vpc-c"),
            [10, 233, 3, 30],
        ),
        ("n1", "lambda-n1", "10.233.4.0/24", None, [10, 233, 4, 40]),
    ];
    let mut handles = Vec::new();
    for (id, network, cidr, domain, ip) in nets {
        let mut spec = env.spec(id, &["python3", "-c", &named_server(id)]);
        let mut n = domain_net(network, cidr, domain, ip);
        if id.ends_with('1') {
            n.ports = vec![PortSpec {
                container_port: 8080,
                host_port: 0,
            }];
        }
        spec.network = Some(n);
        handles.push(d.start(spec).await.unwrap());
        env.sink.wait_line(id, "listening").await;
    }
    let dd = d.clone();

    // Across the subnets of one domain, both ways, with the real source address.
    assert_eq!(
        probe(&dd, "a2", "10.233.1.10", 8080).await,
        "a1: pong from 10.233.1.10 to 10.233.2.20"
    );
    assert_eq!(
        probe(&dd, "a1", "10.233.2.20", 8080).await,
        "a2: pong from 10.233.2.20 to 10.233.1.10"
    );
    // The overlapping domain reaches its own workloads at the same addresses.
    assert_eq!(
        probe(&dd, "b2", "10.233.1.10", 8080).await,
        "b1: pong from 10.233.1.10 to 10.233.2.20"
    );
    assert_eq!(
        probe(&dd, "b1", "10.233.2.20", 8080).await,
        "b2: pong from 10.233.2.20 to 10.233.1.10"
    );
    // Nothing crosses domains, nor leaves or enters a network without one.
    for (from, to) in [
        ("c1", "10.233.1.10"),
        ("c1", "10.233.2.20"),
        ("c1", "10.233.4.40"),
        ("a1", "10.233.3.30"),
        ("a1", "10.233.4.40"),
        ("n1", "10.233.1.10"),
        ("n1", "10.233.3.30"),
        // Another domain's gateway is not even the router's to answer.
        ("c1", "10.233.1.1"),
    ] {
        assert_eq!(
            probe(&dd, from, to, 8080).await,
            "unreachable",
            "{from} -> {to}"
        );
    }
    // Its own gateways are (nothing listens there).
    assert_eq!(probe(&dd, "c1", "10.233.3.1", 8080).await, "refused");
    assert_eq!(probe(&dd, "a1", "10.233.2.1", 8080).await, "refused");
    // Link-local services identify the workload within its own domain, and answer it there.
    for id in ["a1", "b1", "a2", "b2", "n1"] {
        let ip = handles
            .iter()
            .find(|h| h.id == id)
            .unwrap()
            .network
            .clone()
            .unwrap()
            .ip;
        assert_eq!(
            probe(&dd, id, "169.254.169.254", 80).await,
            format!("imds for {id} at {ip}")
        );
        let api = d.api_address();
        assert_eq!(
            probe(&dd, id, &api.ip().to_string(), api.port()).await,
            "api here"
        );
    }
    // Published ports reach the right one of two workloads with the same address.
    for h in &handles {
        let n = h.network.clone().unwrap();
        if let Some(p) = n.ports.first() {
            let host = p.host;
            let got = tokio::task::spawn_blocking(move || fetch(host))
                .await
                .unwrap();
            assert_eq!(
                got,
                format!("{}: pong from {} to {}", h.id, n.ip, n.gateway)
            );
        }
    }
    // A restarted server finds its domains again: the same routing for a new workload.
    let router = handles[0].network.clone().unwrap().router_ns;
    // c1's bridge as a version without routing domains left it (no state in its alias).
    let c1 = handles.iter().find(|h| h.id == "c1").unwrap();
    let bridge = c1.network.clone().unwrap().bridge;
    let out = std::process::Command::new("ip")
        .args(["-n", &router, "link", "set", "dev", &bridge, "alias", ""])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    drop(dd);
    drop(d);
    let d = env.driver();
    d.serve_link_local(IMDS_ADDRESS, Arc::new(Imds))
        .await
        .unwrap();
    for h in &handles {
        assert_eq!(d.recover(h).await.unwrap(), fc_runtime::Recovered::Running);
    }
    let mut spec = env.spec("b3", &["python3", "-c", &named_server("b3")]);
    spec.network = Some(domain_net(
        "sub-b3",
        "10.233.5.0/24",
        Some("vpc-b"),
        [10, 233, 5, 50],
    ));
    d.start(spec).await.unwrap();
    env.sink.wait_line("b3", "listening").await;
    let dd = d.clone();
    assert_eq!(
        probe(&dd, "b3", "10.233.1.10", 8080).await,
        "b1: pong from 10.233.1.10 to 10.233.5.50"
    );
    assert_eq!(
        probe(&dd, "a1", "10.233.5.50", 8080).await,
        "unreachable",
        "a new network of another domain"
    );
    // The adopted bridge is a domain of its own, and its workload is known to the services.
    assert_eq!(
        probe(&dd, "c1", "169.254.169.254", 80).await,
        "imds for c1 at 10.233.3.30"
    );
    assert_eq!(probe(&dd, "c1", "10.233.1.10", 8080).await, "unreachable");
    assert_eq!(probe(&dd, "b1", "10.233.3.30", 8080).await, "unreachable");
    for id in ["a1", "a2", "b1", "b2", "b3", "c1", "n1"] {
        d.destroy(id).await.unwrap();
    }
    for h in &handles {
        assert_gone(h).await;
    }
    d.shutdown().await;
    let ns = std::path::Path::new("/run/netns").join(&router);
    eventually("router namespace removal", || (!ns.exists()).then_some(())).await;
}
