//! Shared support for the runtime tests: a recording log sink, per-test state directories that
//! clean up after themselves (even when a test fails), spec builders for both drivers with the
//! host userland as image, and leftover checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fc_runtime::{
    Driver, DriverConfig, Handle, LinuxDriver, LogSink, LogTarget, ProcessDriver, ProcessSpec,
    Rootfs, WorkloadSpec,
};

pub const INIT: &str = env!("CARGO_BIN_EXE_fc-runtime-init");

/// Records every event.
#[derive(Default)]
pub struct TestSink {
    pub events: Mutex<Vec<(String, String, String)>>,
}

impl LogSink for TestSink {
    fn append(&self, _a: &str, _r: &str, group: &str, stream: &str, events: &[(i64, String)]) {
        let mut e = self.events.lock().unwrap();
        for (ts, m) in events {
            assert!(*ts > 1_600_000_000_000, "timestamps are epoch milliseconds");
            e.push((group.to_string(), stream.to_string(), m.clone()));
        }
    }
}

impl TestSink {
    pub fn lines(&self, stream: &str) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| s == stream)
            .map(|(_, _, m)| m.clone())
            .collect()
    }
    /// Waits (up to 60 s) until `stream` has a line equal to `line`.
    pub async fn wait_line(&self, stream: &str, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.lines(stream).iter().any(|l| l == line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "line {line:?} never reached stream {stream}: {:?}",
            self.lines(stream)
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Linux,
    Process,
}

/// A private state directory plus a host-userland image layer.
pub struct Env {
    pub root: PathBuf,
    pub state: PathBuf,
    pub layer: PathBuf,
    pub sink: Arc<TestSink>,
    pub kind: Kind,
    pub api_port: u16,
}

fn write(p: &Path, body: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// The "host userland" image: /etc files in a layer, /usr bind-mounted read-only, the usual
/// top-level symlinks into /usr.
pub fn make_userland_layer(layer: &Path) {
    write(
        &layer.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    write(
        &layer.join("etc/group"),
        "root:x:0:\napp:x:2345:\nstaff:x:50:app\nnogroup:x:65534:\n",
    );
    write(&layer.join("etc/hosts"), "127.0.0.1 localhost\n");
    for d in ["usr", "tmp", "proc", "dev", "sys", "root", "home/app"] {
        std::fs::create_dir_all(layer.join(d)).unwrap();
    }
    std::fs::set_permissions(
        layer.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    std::os::unix::fs::chown(layer.join("home/app"), Some(1234), Some(2345)).unwrap();
    for (l, t) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        std::os::unix::fs::symlink(t, layer.join(l)).unwrap();
    }
}

impl Env {
    pub fn new(kind: Kind, name: &str) -> Env {
        let root = std::env::temp_dir().join(format!(
            "fc-rt-{}-{}-{name}",
            std::process::id(),
            match kind {
                Kind::Linux => "l",
                Kind::Process => "p",
            }
        ));
        let _ = std::fs::remove_dir_all(&root);
        let state = root.join("state");
        let layer = root.join("layer");
        std::fs::create_dir_all(&state).unwrap();
        make_userland_layer(&layer);
        Env {
            root,
            state,
            layer,
            sink: Arc::new(TestSink::default()),
            kind,
            api_port: 4566,
        }
    }

    /// Uses an existing state directory (no clean-up on drop is wanted by the caller, who
    /// forgets the value).
    pub fn attach(kind: Kind, state: &Path) -> Env {
        Env {
            root: state.to_path_buf(),
            state: state.to_path_buf(),
            layer: state.parent().unwrap().join("layer"),
            sink: Arc::new(TestSink::default()),
            kind,
            api_port: 4566,
        }
    }

    pub fn config(&self) -> DriverConfig {
        let mut c = DriverConfig::new(&self.state);
        c.init_exe = Some(PathBuf::from(INIT));
        c.api_port = self.api_port;
        c
    }

    pub fn driver(&self) -> Arc<dyn Driver> {
        match self.kind {
            Kind::Linux => Arc::new(LinuxDriver::new(self.config(), self.sink.clone()).unwrap()),
            Kind::Process => {
                Arc::new(ProcessDriver::new(self.config(), self.sink.clone()).unwrap())
            }
        }
    }

    /// A spec running `argv` with logs to stream `id`.
    pub fn spec(&self, id: &str, argv: &[&str]) -> WorkloadSpec {
        let rootfs = match self.kind {
            Kind::Linux => Rootfs {
                lowers: vec![self.layer.clone()],
                binds: vec![("/usr".into(), "/usr".into(), true)],
                read_only: false,
            },
            Kind::Process => Rootfs::default(),
        };
        WorkloadSpec {
            id: id.to_string(),
            rootfs,
            process: ProcessSpec {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                env: vec![(
                    "PATH".into(),
                    "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
                )],
                user: None,
                workdir: Some("/w".into()),
            },
            logs: Some(LogTarget {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                group: "/test".into(),
                stream: id.to_string(),
            }),
            ..Default::default()
        }
    }

    pub fn sh(&self, id: &str, script: &str) -> WorkloadSpec {
        self.spec(id, &["sh", "-c", script])
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Remove whatever a (possibly failed) test left, through a fresh driver.
        let config = self.config();
        let kind = self.kind;
        let root = self.root.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let sink = Arc::new(fc_runtime::NullLogSink);
                let d: Option<Arc<dyn Driver>> = match kind {
                    Kind::Linux => LinuxDriver::new(config, sink)
                        .ok()
                        .map(|d| Arc::new(d) as Arc<dyn Driver>),
                    Kind::Process => ProcessDriver::new(config, sink)
                        .ok()
                        .map(|d| Arc::new(d) as Arc<dyn Driver>),
                };
                if let Some(d) = d {
                    let _ = d.cleanup_orphans(&[]).await;
                    d.shutdown().await;
                }
            });
            let _ = std::fs::remove_dir_all(root);
        })
        .join();
    }
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit_once(')').map(|x| x.1.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
        Err(_) => false,
    }
}

/// Asserts nothing of the workload is left: processes, cgroups, mounts, directory.
pub async fn assert_gone(h: &Handle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while (alive(h.pid) || alive(h.supervisor_pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(h.pid), "workload process {} still alive", h.pid);
    assert!(
        !alive(h.supervisor_pid),
        "supervisor {} still alive",
        h.supervisor_pid
    );
    for c in &h.cgroups {
        assert!(!c.exists(), "cgroup {} left", c.display());
    }
    assert!(!h.dir.exists(), "workload dir {} left", h.dir.display());
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = h.dir.to_string_lossy().to_string();
    assert!(
        !mi.contains(&needle),
        "mount under {needle} left in host mountinfo"
    );
}

/// Polls `f` until it returns Some (60 s).
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
