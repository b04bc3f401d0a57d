//! The shared driver test harness: every case runs against every driver (`linux` and `process`).

mod common;

use std::time::{Duration, Instant};

use common::{alive, assert_gone, Env, Kind};
use fc_runtime::{ExecSpec, Handle, Recovered, RuntimeError};

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn linux() {
                super::$name(super::Kind::Linux).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn process() {
                super::$name(super::Kind::Process).await
            }
        }
    };
}

both!(exit_code_is_reported);
async fn exit_code_is_reported(kind: Kind) {
    let env = Env::new(kind, "exit");
    let d = env.driver();
    let h = d.start(env.sh("w", "exit 7")).await.unwrap();
    let s = d.wait("w").await.unwrap();
    assert_eq!(s.code, Some(7));
    assert_eq!(s.signal, None);
    assert!(!s.oom_killed);
    assert_eq!(s.reason, "exited");
    let info = d.inspect("w").await.unwrap();
    assert!(!info.running);
    assert_eq!(info.exit.unwrap().code, Some(7));
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
    assert!(matches!(
        d.inspect("w").await,
        Err(RuntimeError::NotFound(_))
    ));
}

both!(env_argv_workdir_user);
async fn env_argv_workdir_user(kind: Kind) {
    let env = Env::new(kind, "envargv");
    let d = env.driver();
    let mut spec = env.spec(
        "w",
        &[
            "sh",
            "-c",
            "echo \"$FOO|$0|$1|$(pwd)|$(id -u):$(id -g)\"",
            "zero",
            "one two",
        ],
    );
    spec.process.env.push(("FOO".into(), "bar baz".into()));
    spec.process.user = Some("1234:2345".into());
    spec.process.workdir = Some("/tmp/wd".into());
    let h = d.start(spec).await.unwrap();
    let s = d.wait("w").await.unwrap();
    assert_eq!(s.code, Some(0), "{s:?}");
    let lines = env.sink.lines("w");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let parts: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(parts[0], "bar baz");
    assert_eq!(parts[1], "zero");
    assert_eq!(parts[2], "one two");
    match kind {
        Kind::Linux => assert_eq!(parts[3], "/tmp/wd"),
        Kind::Process => {
            assert!(parts[3].ends_with("/tmp/wd"), "{}", parts[3]);
            assert!(parts[3].starts_with(env.state.to_str().unwrap()));
        }
    }
    assert_eq!(parts[4], "1234:2345");
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

both!(stop_escalates_to_sigkill_after_grace);
async fn stop_escalates_to_sigkill_after_grace(kind: Kind) {
    let env = Env::new(kind, "stopkill");
    let d = env.driver();
    let h = d
        .start(env.sh(
            "w",
            "trap '' TERM; echo ready; while true; do sleep 1; done",
        ))
        .await
        .unwrap();
    env.sink.wait_line("w", "ready").await;
    let t = Instant::now();
    let s = d
        .stop("w", Duration::from_millis(700), libc::SIGTERM)
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(700));
    assert_eq!(s.signal, Some(libc::SIGKILL), "{s:?}");
    assert_eq!(s.reason, "stopped");
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

both!(stop_with_handled_signal_exits_cleanly);
async fn stop_with_handled_signal_exits_cleanly(kind: Kind) {
    let env = Env::new(kind, "stopterm");
    let d = env.driver();
    let h = d
        .start(env.sh(
            "w",
            "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.05; done",
        ))
        .await
        .unwrap();
    env.sink.wait_line("w", "ready").await;
    let s = d
        .stop("w", Duration::from_secs(30), libc::SIGTERM)
        .await
        .unwrap();
    assert_eq!(s.code, Some(3), "{s:?}");
    assert_eq!(s.reason, "stopped");
    assert!(env.sink.lines("w").contains(&"got-term".to_string()));
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

both!(exec_runs_inside_with_workload_env);
async fn exec_runs_inside_with_workload_env(kind: Kind) {
    let env = Env::new(kind, "exec");
    let d = env.driver();
    let mut spec = env.sh("w", "echo ready; while true; do sleep 1; done");
    spec.process
        .env
        .push(("FOO".into(), "from-workload".into()));
    let h = d.start(spec).await.unwrap();
    env.sink.wait_line("w", "ready").await;
    let out = d
        .exec(
            "w",
            ExecSpec {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo \"$FOO $BAR $(pwd)\"; echo err >&2; exit 5".into(),
                ],
                env: vec![("BAR".into(), "from-exec".into())],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.code, 5);
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        so.starts_with("from-workload from-exec ") && so.trim_end().ends_with("/w"),
        "{so}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = d
        .exec(
            "w",
            ExecSpec {
                argv: vec!["/does/not/exist".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.code, 127);
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

both!(stats_report_cpu_memory_pids);
async fn stats_report_cpu_memory_pids(kind: Kind) {
    let env = Env::new(kind, "stats");
    let d = env.driver();
    let h = d
        .start(env.sh(
            "w",
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo busy-done; \
             while true; do sleep 1; done",
        ))
        .await
        .unwrap();
    env.sink.wait_line("w", "busy-done").await;
    let s = d.stats("w").await.unwrap();
    assert!(s.cpu_time_ns > 10_000_000, "{s:?}");
    assert!(s.memory_current > 0, "{s:?}");
    assert!(s.memory_peak >= s.memory_current, "{s:?}");
    assert!(s.pids >= 1, "{s:?}");
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

both!(logs_reach_the_sink_in_order);
async fn logs_reach_the_sink_in_order(kind: Kind) {
    let env = Env::new(kind, "logs");
    let d = env.driver();
    let h = d
        .start(env.sh(
            "w",
            "echo one; echo two >&2; sleep 0.3; echo three; printf 'no-newline'",
        ))
        .await
        .unwrap();
    env.sink.wait_line("w", "one").await;
    d.wait("w").await.unwrap();
    let lines = env.sink.lines("w");
    assert_eq!(lines.len(), 4, "{lines:?}");
    for l in ["one", "two", "three", "no-newline"] {
        assert!(lines.contains(&l.to_string()), "{lines:?}");
    }
    let three = lines.iter().position(|l| l == "three").unwrap();
    let one = lines.iter().position(|l| l == "one").unwrap();
    assert!(one < three);
    let groups: Vec<String> = env
        .sink
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.0.clone())
        .collect();
    assert!(groups.iter().all(|g| g == "/test"));
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}

both!(recover_after_dropping_the_driver);
async fn recover_after_dropping_the_driver(kind: Kind) {
    let env = Env::new(kind, "recover");
    let a = env.driver();
    let h = a
        .start(env.sh(
            "w",
            "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; exit 4",
        ))
        .await
        .unwrap();
    let done = a.start(env.sh("done", "exit 9")).await.unwrap();
    env.sink.wait_line("w", "before").await;
    a.wait("done").await.unwrap();
    let json = serde_json::to_string(&h).unwrap();
    let done_json = serde_json::to_string(&done).unwrap();
    drop(a);
    assert!(alive(h.pid), "dropping the driver must not stop workloads");

    let b = env.driver();
    let h2: Handle = serde_json::from_str(&json).unwrap();
    assert_eq!(b.recover(&h2).await.unwrap(), Recovered::Running);
    // Recovering twice is harmless.
    assert_eq!(b.recover(&h2).await.unwrap(), Recovered::Running);
    let out = b
        .exec(
            "w",
            ExecSpec {
                argv: vec!["touch".into(), "go".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let s = b.wait("w").await.unwrap();
    assert_eq!(s.code, Some(4));
    let lines = env.sink.lines("w");
    assert_eq!(
        lines,
        vec!["before".to_string(), "after".to_string()],
        "no line lost or repeated"
    );
    let done2: Handle = serde_json::from_str(&done_json).unwrap();
    match b.recover(&done2).await.unwrap() {
        Recovered::Exited(s) => assert_eq!(s.code, Some(9)),
        other => panic!("{other:?}"),
    }
    // A handle whose supervisor is gone is reported stopped with a reason.
    let mut lost = done2.clone();
    lost.id = "lost".into();
    lost.dir = env.state.join("workloads/lost");
    std::fs::create_dir_all(&lost.dir).unwrap();
    lost.supervisor_pid = i32::MAX - 7;
    match b.recover(&lost).await.unwrap() {
        Recovered::Exited(s) => assert!(s.reason.contains("vanished"), "{s:?}"),
        other => panic!("{other:?}"),
    }
    let mut future = done2.clone();
    future.version = 99;
    assert!(matches!(
        b.recover(&future).await,
        Err(RuntimeError::HandleVersion(99))
    ));
    for id in ["w", "done", "lost"] {
        b.destroy(id).await.unwrap();
    }
    assert_gone(&h).await;
    assert_gone(&done).await;
}

both!(orphans_are_cleaned_up);
async fn orphans_are_cleaned_up(kind: Kind) {
    let env = Env::new(kind, "orphans");
    let a = env.driver();
    let h = a
        .start(env.sh("orphan", "while true; do sleep 1; done"))
        .await
        .unwrap();
    let kept = a
        .start(env.sh("kept", "while true; do sleep 1; done"))
        .await
        .unwrap();
    drop(a);
    let b = env.driver();
    let removed = b.cleanup_orphans(&["kept".to_string()]).await.unwrap();
    assert_eq!(removed, vec!["orphan".to_string()]);
    assert_gone(&h).await;
    assert!(alive(kept.pid));
    assert_eq!(b.recover(&kept).await.unwrap(), Recovered::Running);
    b.destroy("kept").await.unwrap();
    assert_gone(&kept).await;
    b.shutdown().await;
}

both!(start_failure_leaves_nothing);
async fn start_failure_leaves_nothing(kind: Kind) {
    let env = Env::new(kind, "startfail");
    let d = env.driver();
    let err = d
        .start(env.spec("w", &["/no/such/binary"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::StartFailed { reason, .. } if reason.contains("/no/such/binary")),
        "{err}"
    );
    assert!(!env.state.join("workloads/w").exists());
    // Same id can be used afterwards; ids are unique.
    d.start(env.sh("w", "exit 0")).await.unwrap();
    assert!(matches!(
        d.start(env.sh("w", "exit 0")).await,
        Err(RuntimeError::AlreadyExists(_))
    ));
    assert!(matches!(
        d.start(env.sh("bad/id", "exit 0")).await,
        Err(RuntimeError::InvalidSpec(_))
    ));
    d.wait("w").await.unwrap();
    d.destroy("w").await.unwrap();
}

both!(capabilities_describe_the_driver);
async fn capabilities_describe_the_driver(kind: Kind) {
    let env = Env::new(kind, "caps");
    let d = env.driver();
    let c = d.capabilities();
    assert!(c.exec && c.recover);
    match kind {
        Kind::Linux => {
            assert_eq!(d.name(), "linux");
            assert!(c.pid_isolation && c.mount_isolation && c.network_isolation);
            assert!(c.memory_limit && c.pids_limit && c.cpu_limit);
            assert!(c.cgroup_version.is_some());
            assert_eq!(d.api_address().ip().to_string(), "169.254.170.10");
        }
        Kind::Process => {
            assert_eq!(d.name(), "process");
            assert!(!c.pid_isolation && !c.network_isolation && !c.memory_limit);
            assert!(!c.notes.is_empty());
            assert_eq!(d.api_address().ip().to_string(), "127.0.0.1");
            let mut s = env.sh("w", "true");
            s.limits.memory_bytes = Some(1 << 20);
            assert!(matches!(
                d.start(s).await,
                Err(RuntimeError::Unsupported { .. })
            ));
        }
    }
}

#[tokio::test]
async fn select_honours_preference() {
    let env = Env::new(Kind::Process, "select");
    let sink = env.sink.clone();
    let d = fc_runtime::select(Some("process"), env.config(), sink.clone()).unwrap();
    assert_eq!(d.name(), "process");
    let d = fc_runtime::select(None, env.config(), sink.clone()).unwrap();
    let expected = if fc_runtime::linux_support().is_ok() {
        "linux"
    } else {
        "process"
    };
    assert_eq!(d.name(), expected);
    assert!(fc_runtime::select(Some("kvm"), env.config(), sink).is_err());
}

#[test]
fn handle_round_trips_as_versioned_json() {
    let h = Handle {
        version: fc_runtime::HANDLE_VERSION,
        driver: "linux".into(),
        id: "w".into(),
        dir: "/x".into(),
        supervisor_pid: 1,
        supervisor_start: 2,
        pid: 3,
        cgroups: vec!["/sys/fs/cgroup/x".into()],
        network: None,
        logs: None,
        started_at_ms: 4,
    };
    let j = serde_json::to_value(&h).unwrap();
    assert_eq!(j["version"], 1);
    let back: Handle = serde_json::from_value(j).unwrap();
    assert_eq!(back, h);
}

/// Not a test on its own: when FC_KILL9_STATE is set, this plays a ferrocloud server that
/// starts a workload, persists its handle and then hangs until it is killed with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_server_role() {
    let (Some(state), Some(kind)) = (
        std::env::var_os("FC_KILL9_STATE"),
        std::env::var("FC_KILL9_KIND").ok(),
    ) else {
        return;
    };
    let state = std::path::PathBuf::from(state);
    let kind = if kind == "linux" {
        Kind::Linux
    } else {
        Kind::Process
    };
    let env = common::Env::attach(kind, &state);
    let d = env.driver();
    let h = d
        .start(env.sh(
            "w",
            "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; exit 6",
        ))
        .await
        .unwrap();
    let tmp = state.join("handle.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&h).unwrap()).unwrap();
    std::fs::rename(&tmp, state.join("handle.json")).unwrap();
    std::mem::forget(env);
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

both!(recover_after_kill9_of_the_server);
async fn recover_after_kill9_of_the_server(kind: Kind) {
    let env = Env::new(kind, "kill9");
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "kill9_server_role",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FC_KILL9_STATE", &env.state)
        .env(
            "FC_KILL9_KIND",
            if kind == Kind::Linux {
                "linux"
            } else {
                "process"
            },
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let handle_file = env.state.join("handle.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle_file.exists() {
        assert!(Instant::now() < deadline, "server role never started");
        assert!(server.try_wait().unwrap().is_none(), "server role exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h: Handle = serde_json::from_slice(&std::fs::read(&handle_file).unwrap()).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(alive(h.pid), "the workload survives the server's SIGKILL");

    let d = env.driver();
    assert_eq!(
        d.cleanup_orphans(&["w".to_string()]).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(d.recover(&h).await.unwrap(), Recovered::Running);
    let out = d
        .exec(
            "w",
            ExecSpec {
                argv: vec!["touch".into(), "go".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.code, 0);
    let s = d.wait("w").await.unwrap();
    assert_eq!(s.code, Some(6), "{s:?}");
    let lines = env.sink.lines("w");
    assert!(lines.contains(&"after".to_string()), "{lines:?}");
    d.destroy("w").await.unwrap();
    assert_gone(&h).await;
}
