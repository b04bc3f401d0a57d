//! Workloads run under the ferrocloud binary itself as their supervisor, and their output
//! lands in CloudWatch Logs: the execution layer and the Logs service wired as the server wires
//! them. Runs against every driver this machine supports (both, as root).

use fc_runtime::{Driver, DriverConfig, LogTarget, ProcessSpec, Rootfs, WorkloadSpec};
use fc_services::logs::Logs;
use fc_store::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fc-wl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A root filesystem from the host's userland: symlinks into a read-only bind of /usr.
fn host_userland(dir: &std::path::Path) -> Rootfs {
    let lower = dir.join("lower");
    std::fs::create_dir_all(lower.join("usr")).expect("usr");
    std::fs::create_dir_all(lower.join("etc")).expect("etc");
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        std::os::unix::fs::symlink(target, lower.join(link)).expect("symlink");
    }
    std::fs::write(lower.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(lower.join("etc/group"), "root:x:0:\n").expect("group");
    Rootfs {
        lowers: vec![lower],
        binds: vec![(PathBuf::from("/usr"), PathBuf::from("/usr"), true)],
        read_only: false,
    }
}

async fn run_and_collect(driver: Arc<dyn Driver>, logs: &Logs, rootfs: Rootfs, id: &str) {
    let spec = WorkloadSpec {
        id: id.to_string(),
        rootfs,
        process: ProcessSpec {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo hello from $0; echo oops >&2; exit 3".into(),
            ],
            ..Default::default()
        },
        hostname: None,
        mounts: Vec::new(),
        limits: Default::default(),
        network: None,
        logs: Some(LogTarget {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            group: "/ferrocloud/test".into(),
            stream: id.to_string(),
        }),
    };
    driver.start(spec).await.expect("workload starts");
    let status = driver.wait(id).await.expect("workload exits");
    assert_eq!(status.code, Some(3), "{status:?}");
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = logs
            .tail("000000000000", "us-east-1", "/ferrocloud/test", id, 100)
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lines.iter().any(|l| l.contains("hello from /bin/sh")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("oops")), "{lines:?}");
    driver.destroy(id).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_output_reaches_cloudwatch_logs() {
    let store: Arc<dyn fc_store::Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    let logs = Arc::new(Logs::new(store));
    let mut drivers = vec!["process"];
    if fc_runtime::linux_support().is_ok() {
        drivers.push("linux");
    }
    for name in drivers {
        let dir = temp_dir(name);
        let mut cfg = DriverConfig::new(dir.join("state"));
        cfg.init_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_ferrocloud")));
        let driver = fc_runtime::select(Some(name), cfg, logs.clone()).expect("driver");
        // The process driver runs on the host's own filesystem.
        let rootfs = if name == "linux" {
            host_userland(&dir)
        } else {
            Rootfs {
                lowers: Vec::new(),
                binds: Vec::new(),
                read_only: false,
            }
        };
        run_and_collect(driver.clone(), &logs, rootfs, &format!("wl-{name}")).await;
        driver.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
