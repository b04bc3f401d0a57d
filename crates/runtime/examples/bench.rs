//! Benchmark of the execution layer (run through `scripts/bench-runtime`, needs root):
//! workload start → process running, p50/p99 over N starts of a tiny workload with the linux
//! and process drivers, `crun run --detach` on an equivalent OCI bundle as the reference, and
//! the idle memory each running workload costs ferrocloud (its supervisor).
//!
//! Environment: BENCH_STARTS (100), BENCH_IDLE (20 workloads for the memory figure),
//! FC_INIT (path of the fc-runtime-init binary; default: beside this executable's parent).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fc_runtime::{
    Driver, DriverConfig, LinuxDriver, NullLogSink, ProcessDriver, ProcessSpec, Rootfs,
    WorkloadSpec,
};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

fn layer(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).expect("layer dir");
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").expect("group");
    for d in ["usr", "tmp", "proc", "dev", "sys", "root"] {
        std::fs::create_dir_all(dir.join(d)).expect("layer subdir");
    }
    for (l, t) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        let _ = std::os::unix::fs::symlink(t, dir.join(l));
    }
}

fn spec(id: &str, lay: &Path, linux: bool) -> WorkloadSpec {
    WorkloadSpec {
        id: id.into(),
        rootfs: if linux {
            Rootfs {
                lowers: vec![lay.to_path_buf()],
                binds: vec![("/usr".into(), "/usr".into(), true)],
                read_only: false,
            }
        } else {
            Rootfs::default()
        },
        process: ProcessSpec {
            argv: vec!["sleep".into(), "1000".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            user: None,
            workdir: None,
        },
        ..Default::default()
    }
}

async fn bench_driver(d: &dyn Driver, lay: &Path, n: usize, linux: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 5 {
        let id = format!("b{i}");
        let t = Instant::now();
        d.start(spec(&id, lay, linux)).await.expect("start");
        let dt = t.elapsed().as_secs_f64() * 1000.0;
        if i >= 5 {
            out.push(dt);
        }
        d.destroy(&id).await.expect("destroy");
    }
    out
}

fn crun_bundle(bundle: &Path, rootfs: &Path) {
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sleep", "1000"],
            "env": ["PATH=/usr/bin:/bin"],
            "cwd": "/",
            "noNewPrivileges": false
        },
        "root": {"path": rootfs.to_string_lossy(), "readonly": false},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/usr", "type": "bind", "source": "/usr",
             "options": ["rbind", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ]
        }
    });
    std::fs::create_dir_all(bundle).expect("bundle dir");
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .expect("config.json");
}

fn bench_crun(bundle: &Path, n: usize) -> Option<Vec<f64>> {
    Command::new("crun").arg("--version").output().ok()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 5 {
        let id = format!("fc-bench-crun-{}-{i}", std::process::id());
        let t = Instant::now();
        let st = Command::new("crun")
            .args(["run", "--detach", "--bundle"])
            .arg(bundle)
            .arg(&id)
            // The container inherits these; a pipe would stay open as long as it runs.
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        let dt = t.elapsed().as_secs_f64() * 1000.0;
        if !st.success() {
            eprintln!("crun run failed ({st})");
            return None;
        }
        if i >= 5 {
            out.push(dt);
        }
        let _ = Command::new("crun").args(["delete", "-f", &id]).output();
    }
    Some(out)
}

/// Runs the crun loop in a private mount namespace without the hybrid cgroup2 mount (crun
/// refuses hybrid layouts; the host's mounts are untouched).
fn crun_isolated(bundle: &Path, n: usize) -> Option<Vec<f64>> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "--", "sh", "-c"])
        .arg("umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" --crun-only \"$1\" \"$2\"")
        .arg(exe)
        .arg(bundle)
        .arg(n.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("crun run failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn kb(pid: i32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--crun-only") {
        let bundle = PathBuf::from(args.get(2).expect("bundle"));
        let n = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(100);
        match bench_crun(&bundle, n) {
            Some(v) => println!("{}", serde_json::to_string(&v).expect("json")),
            None => std::process::exit(1),
        }
        return;
    }
    let n: usize = std::env::var("BENCH_STARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let idle: usize = std::env::var("BENCH_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let init = std::env::var_os("FC_INIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .join("fc-runtime-init")
        });
    let root = std::env::temp_dir().join(format!("fc-bench-runtime-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let lay = root.join("layer");
    layer(&lay);
    let sink = Arc::new(NullLogSink);
    let mut cfg = DriverConfig::new(root.join("state-linux"));
    cfg.init_exe = Some(init.clone());
    let linux = LinuxDriver::new(cfg, sink.clone()).expect("linux driver (run as root)");
    let mut cfg = DriverConfig::new(root.join("state-process"));
    cfg.init_exe = Some(init);
    let process = ProcessDriver::new(cfg, sink).expect("process driver");

    eprintln!("== {n} starts, linux driver");
    let mut l = bench_driver(&linux, &lay, n, true).await;
    eprintln!("== {n} starts, process driver");
    let mut p = bench_driver(&process, &lay, n, false).await;
    eprintln!("== {n} starts, crun");
    let crun_root = root.join("crun-rootfs");
    layer(&crun_root);
    crun_bundle(&root.join("bundle"), &crun_root);
    let c = crun_isolated(&root.join("bundle"), n);

    eprintln!("== idle memory of {idle} running workloads");
    let self_before = kb(std::process::id() as i32, "status", "VmRSS:");
    let mut handles = Vec::new();
    for i in 0..idle {
        handles.push(
            linux
                .start(spec(&format!("idle{i}"), &lay, true))
                .await
                .expect("start idle"),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let self_after = kb(std::process::id() as i32, "status", "VmRSS:");
    let (mut rss, mut pss) = (0u64, 0u64);
    for h in &handles {
        rss += kb(h.supervisor_pid, "status", "VmRSS:");
        pss += kb(h.supervisor_pid, "smaps_rollup", "Pss:");
    }
    for i in 0..idle {
        linux
            .destroy(&format!("idle{i}"))
            .await
            .expect("destroy idle");
    }
    linux.shutdown().await;
    process.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);

    println!();
    println!("workload start -> process running ({n} starts, ms)");
    println!(
        "{:<28} {:>9} {:>9} {:>9}",
        "runtime", "p50", "p99", "vs crun"
    );
    let crun_p50 = c.as_ref().map(|v| pct(&mut v.clone(), 50.0));
    for (name, v) in [
        ("ferrocloud linux driver", Some(&mut l)),
        ("ferrocloud process driver", Some(&mut p)),
    ] {
        let v = v.expect("measured");
        let p50 = pct(v, 50.0);
        let p99 = pct(v, 99.0);
        let ratio = crun_p50
            .map(|c| format!("{:.2}x", p50 / c))
            .unwrap_or_else(|| "n/a".into());
        println!("{name:<28} {p50:>9.2} {p99:>9.2} {ratio:>9}");
    }
    match c {
        Some(mut v) => {
            let p50 = pct(&mut v, 50.0);
            let p99 = pct(&mut v, 99.0);
            println!(
                "{:<28} {p50:>9.2} {p99:>9.2} {:>9}",
                "crun run --detach", "1.00x"
            );
        }
        None => println!("{:<28} {:>9}", "crun run --detach", "crun not available"),
    }
    println!();
    println!("idle memory per running workload ({idle} workloads, linux driver)");
    println!(
        "  supervisor RSS {:.0} KiB, PSS {:.0} KiB; server RSS growth {:.0} KiB",
        rss as f64 / idle as f64,
        pss as f64 / idle as f64,
        self_after.saturating_sub(self_before) as f64 / idle as f64
    );
}
