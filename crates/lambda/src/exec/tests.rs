//! Tests of the execution engine on the real drivers: a `provided` function whose bootstrap is
//! a Python script speaking the Runtime API (`urllib` only), on the process driver and — as
//! root with namespaces — on the linux driver.
//!
//! The drivers re-execute a binary that runs the workload supervisor: `target/<profile>/
//! ferrocloud` or `fc-runtime-init` (built by `cargo build`); without either the tests skip.

use super::*;
use crate::spec::{FunctionSpec, InvokeRequest};
use crate::Settings;
use std::os::unix::fs::PermissionsExt;

const BOOTSTRAP: &str = r#"#!/usr/bin/python3
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
count = 0
hog = []
print("init", os.environ.get("AWS_LAMBDA_FUNCTION_NAME"), flush=True)
if os.path.exists(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "fail-init")):
    req = urllib.request.Request(api + "/init/error", data=json.dumps({"errorMessage": "bad init", "errorType": "Runtime.Custom"}).encode(),
                                 headers={"Lambda-Runtime-Function-Error-Type": "Runtime.Custom"}, method="POST")
    urllib.request.urlopen(req).read()
    sys.exit(1)
reg = urllib.request.Request("http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension/register",
                             data=b'{"events": ["INVOKE", "SHUTDOWN"]}', headers={"Lambda-Extension-Name": "probe"}, method="POST")
ext = urllib.request.urlopen(reg).headers["Lambda-Extension-Identifier"]
while True:
    r = urllib.request.urlopen(api + "/invocation/next")
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    hdrs = {k.lower(): v for k, v in r.headers.items()}
    ev = json.loads(r.read() or b"null") or {}
    count += 1
    print("handling", rid, flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    if ev.get("sleep"):
        time.sleep(ev["sleep"])
    if ev.get("exit") is not None:
        os._exit(ev["exit"])
    if ev.get("hog"):
        while True:
            hog.append(bytearray(16 << 20))
    if ev.get("fail"):
        body = json.dumps({"errorMessage": "boom", "errorType": "ValueError"}).encode()
        req = urllib.request.Request(api + "/invocation/" + rid + "/error", data=body,
                                     headers={"Lambda-Runtime-Function-Error-Type": "ValueError"}, method="POST")
        urllib.request.urlopen(req).read()
        continue
    if ev.get("stream"):
        req = urllib.request.Request(api + "/invocation/" + rid + "/response", data=iter([b'{"streamed": ', b'"yes", ', b'"n": 2}']),
                                     headers={"Lambda-Runtime-Function-Response-Mode": "streaming", "Transfer-Encoding": "chunked"}, method="POST")
        urllib.request.urlopen(req).read()
        continue
    if ev.get("big"):
        body = b'"' + b"x" * (7 << 20) + b'"'
    else:
        env = {k: os.environ.get(k) for k in ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
               "AWS_REGION", "AWS_DEFAULT_REGION", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV",
               "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "TZ", "MY_VAR"]}
        opt = os.environ["PATH"].rsplit(":", 1)[1][:-len("/bin")]
        layer = open(opt + "/layer.txt").read() if os.path.exists(opt + "/layer.txt") else None
        body = json.dumps({"count": count, "env": env, "headers": hdrs, "cwd": os.getcwd(), "ext": ext,
                           "opt": opt, "layer": layer, "first": os.path.exists(opt + "/first.txt")}).encode()
    req = urllib.request.Request(api + "/invocation/" + rid + "/response", data=body, method="POST")
    try:
        urllib.request.urlopen(req).read()
    except urllib.error.HTTPError as e:
        print("response refused", e.code, flush=True)
"#;

fn supervisor_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    ["ferrocloud", "fc-runtime-init"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

struct NullService;

#[async_trait::async_trait]
impl fc_services::Service for NullService {
    fn name(&self) -> &'static str {
        "null"
    }
    async fn call(
        &self,
        ctx: &fc_services::RequestContext,
        _input: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        Err(ApiError::not_implemented("null", &ctx.operation))
    }
}

struct Harness {
    exec: Arc<Executor>,
    driver: Arc<dyn Driver>,
    logs: Arc<fc_services::logs::Logs>,
    dir: PathBuf,
}

impl Harness {
    fn new(linux: bool) -> Option<Harness> {
        let Some(init) = supervisor_exe() else {
            eprintln!("skipped: build the ferrocloud binary first (cargo build)");
            return None;
        };
        if linux {
            if let Err(why) = fc_runtime::linux_support() {
                eprintln!("skipped: linux driver unavailable: {why}");
                return None;
            }
        }
        let dir =
            std::env::temp_dir().join(format!("fc-lambda-exec-{}", fc_types::ids::random_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn fc_store::Store> = Arc::new(fc_store::SqliteStore::in_memory().unwrap());
        let logs = Arc::new(fc_services::logs::Logs::new(store.clone()));
        let tap = LogTap::new(logs.clone());
        let mut cfg = fc_runtime::DriverConfig::new(dir.join("runtime"));
        cfg.init_exe = Some(init);
        cfg.api_port = 1;
        let driver: Arc<dyn Driver> = if linux {
            Arc::new(fc_runtime::LinuxDriver::new(cfg, tap.clone()).unwrap())
        } else {
            Arc::new(fc_runtime::ProcessDriver::new(cfg, tap.clone()).unwrap())
        };
        let deps = Deps {
            store: store.clone(),
            data_dir: dir.join("lambda"),
            logs: logs.clone(),
            s3: Arc::new(NullService),
            sqs: Arc::new(NullService),
            bus: fc_services::bus::Bus::new(),
            images: Arc::new(fc_images::ImageStore::open(dir.join("images")).unwrap()),
            driver: Some(driver.clone()),
            ledger: fc_services::costs::Ledger::new(store),
            log_tap: tap,
            settings: Settings {
                account_concurrency: 1000,
                idle_timeout: Duration::from_secs(600),
                runtime_cache: dir.join("cache"),
                api_port: 1,
                async_retry_base: Duration::from_secs(60),
                strict_auth: None,
            },
        };
        let exec = Executor::new(&deps).unwrap();
        Some(Harness {
            exec,
            driver,
            logs,
            dir,
        })
    }

    fn spec(&self, name: &str, extra_files: &[&str]) -> Arc<FunctionSpec> {
        let code = self.dir.join("code").join(name);
        std::fs::create_dir_all(&code).unwrap();
        let boot = code.join("bootstrap");
        std::fs::write(&boot, BOOTSTRAP).unwrap();
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in extra_files {
            std::fs::write(code.join(f), b"").unwrap();
        }
        Arc::new(FunctionSpec {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            function_name: name.into(),
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
            version: "$LATEST".into(),
            runtime: Some("provided.al2023".into()),
            handler: Some("handler.run".into()),
            code_dir: Some(code),
            memory_mb: 256,
            timeout_s: 3,
            ephemeral_mb: 512,
            environment: vec![("MY_VAR".into(), "hello".into())],
            role_arn: "arn:aws:iam::000000000000:role/lambda-role".into(),
            log_group: format!("/aws/lambda/{name}"),
            architecture: "x86_64".into(),
            revision: format!("{name}-r1"),
            ..Default::default()
        })
    }

    async fn invoke(&self, spec: &Arc<FunctionSpec>, payload: &str, tail: bool) -> InvokeResult {
        self.exec
            .invoke(
                spec.clone(),
                InvokeRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    payload: Bytes::from(payload.to_string()),
                    invoked_arn: spec.function_arn.clone(),
                    tail_logs: tail,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    async fn finish(self) {
        self.exec.shutdown().await;
        assert_eq!(self.exec.environment_count(), 0);
        let left: Vec<_> = std::fs::read_dir(self.dir.join("runtime").join("workloads"))
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "workloads left behind: {left:?}");
        self.driver.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn body(r: &InvokeResult) -> serde_json::Value {
    serde_json::from_slice(&r.payload).unwrap()
}

async fn basics(linux: bool) {
    let Some(h) = Harness::new(linux) else { return };
    let spec = h.spec("basics", &[]);
    // A response; the environment stays warm (its state persists) and init is reported once.
    let r1 = h.invoke(&spec, "{}", true).await;
    assert_eq!(
        r1.function_error,
        None,
        "{:?}",
        String::from_utf8_lossy(&r1.payload)
    );
    let b1 = body(&r1);
    assert_eq!(b1["count"], 1);
    assert!(r1.init_duration_ms.is_some());
    let env = &b1["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "basics");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/basics");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(env["_HANDLER"], "handler.run");
    assert_eq!(env["AWS_EXECUTION_ENV"], "AWS_Lambda_provided.al2023");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["MY_VAR"], "hello");
    assert!(env["AWS_ACCESS_KEY_ID"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));
    assert!(env["AWS_SESSION_TOKEN"].as_str().is_some());
    let stream = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(stream.contains("/[$LATEST]"), "{stream}");
    assert_eq!(stream.rsplit(']').next().unwrap().len(), 32);
    let task = env["LAMBDA_TASK_ROOT"].as_str().unwrap();
    assert_eq!(b1["cwd"].as_str().unwrap(), task);
    if linux {
        assert_eq!(task, "/var/task");
        assert!(env["AWS_ENDPOINT_URL"]
            .as_str()
            .unwrap()
            .starts_with("http://169.254."));
    } else {
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:1");
    }
    let hdrs = &b1["headers"];
    assert_eq!(
        hdrs["lambda-runtime-invoked-function-arn"],
        spec.function_arn.as_str()
    );
    assert!(
        hdrs["lambda-runtime-deadline-ms"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > now_ms()
    );
    assert!(hdrs["lambda-runtime-trace-id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    // The tail: START, the function's output (stdout and stderr), END, REPORT with init.
    let tail = base64::engine::general_purpose::STANDARD
        .decode(r1.log_result.as_ref().unwrap())
        .unwrap();
    let tail = String::from_utf8(tail).unwrap();
    assert!(tail.starts_with("START RequestId: "), "{tail}");
    assert!(tail.contains("Version: $LATEST"));
    assert!(tail.contains("handling "));
    assert!(tail.contains("to stderr"));
    assert!(tail.contains("\nEND RequestId: "));
    assert!(tail.contains("REPORT RequestId: "));
    assert!(tail.contains("\tBilled Duration: "));
    assert!(tail.contains("\tMemory Size: 256 MB\t"));
    assert!(tail.contains("Init Duration: "));

    let r2 = h.invoke(&spec, "{}", true).await;
    assert_eq!(body(&r2)["count"], 2);
    assert_eq!(r2.init_duration_ms, None);
    let tail2 = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(r2.log_result.unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(!tail2.contains("Init Duration"));
    assert_eq!(h.exec.environment_count(), 1);

    assert_eq!(b1["ext"].as_str().unwrap().len(), 36);
    // A streamed response (chunked) is collected.
    let r = h.invoke(&spec, r#"{"stream": true}"#, false).await;
    assert_eq!(body(&r), serde_json::json!({"streamed": "yes", "n": 2}));
    // A handled error.
    let r = h.invoke(&spec, r#"{"fail": true}"#, false).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(body(&r)["errorType"], "ValueError");
    assert_eq!(body(&r)["count"], serde_json::Value::Null);
    // Too large a response.
    let r = h.invoke(&spec, r#"{"big": true}"#, false).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(body(&r)["errorType"], "Function.ResponseSizeTooLarge");
    // Still the same warm environment.
    assert_eq!(body(&h.invoke(&spec, "{}", false).await)["count"], 6);

    // A timeout destroys the environment.
    let r = h.invoke(&spec, r#"{"sleep": 10}"#, false).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    let msg = body(&r)["errorMessage"].as_str().unwrap().to_string();
    assert!(msg.ends_with("Task timed out after 3.00 seconds"), "{msg}");
    let r = h.invoke(&spec, "{}", false).await;
    assert_eq!(body(&r)["count"], 1);
    assert!(r.init_duration_ms.is_some());

    // The runtime exits.
    let r = h.invoke(&spec, r#"{"exit": 3}"#, false).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(body(&r)["errorType"], "Runtime.ExitError");
    assert!(body(&r)["errorMessage"]
        .as_str()
        .unwrap()
        .ends_with("Runtime exited with error: exit status 3"));

    // Logs reach CloudWatch Logs in the environment's stream, in order.
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = h.logs.tail(
            "000000000000",
            "us-east-1",
            "/aws/lambda/basics",
            &stream,
            1000,
        );
        if lines.iter().any(|(_, m)| m.starts_with("REPORT")) && lines.len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let msgs: Vec<&str> = lines.iter().map(|(_, m)| m.as_str()).collect();
    let start = msgs.iter().position(|m| m.starts_with("START")).unwrap();
    let handling = msgs.iter().position(|m| m.starts_with("handling")).unwrap();
    let end = msgs.iter().position(|m| m.starts_with("END")).unwrap();
    assert!(start < handling && handling < end, "{msgs:?}");
    assert!(msgs[0].starts_with("init basics"), "{msgs:?}");

    // Billing accrues requests and GB-seconds.
    h.exec.flush_billing();
    let lines = h.exec.deps.ledger.lines(fc_protocol::value::now_secs());
    let req = lines.iter().find(|l| l.usage_type == "Request").unwrap();
    assert_eq!(req.quantity, 9.0);
    assert!(lines
        .iter()
        .any(|l| l.usage_type == "Lambda-GB-Second" && l.quantity > 0.0));
    h.finish().await;
}

async fn init_error_and_limits(linux: bool) {
    let Some(h) = Harness::new(linux) else { return };
    let spec = h.spec("initfail", &["fail-init"]);
    let r = h.invoke(&spec, "{}", true).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(body(&r)["errorType"], "Runtime.Custom");
    let tail = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(r.log_result.unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(tail.contains("Status: error"), "{tail}");

    // Reserved concurrency 0 throttles everything.
    let mut s = (*h.spec("throttled", &[])).clone();
    s.reserved_concurrency = Some(0);
    let err = h
        .exec
        .invoke(Arc::new(s), InvokeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 429);
    assert_eq!(err.code, "TooManyRequestsException");
    assert_eq!(err.message, "Rate Exceeded.");
    assert_eq!(
        err.fields["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert_eq!(err.fields["Type"], "User");

    // Reserved concurrency 2: two run side by side in two environments, the third is throttled.
    let mut s = (*h.spec("two", &[])).clone();
    s.reserved_concurrency = Some(2);
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let exec = h.exec.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            exec.invoke(
                s,
                InvokeRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    payload: Bytes::from_static(br#"{"sleep": 1.5}"#),
                    ..Default::default()
                },
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = h
        .exec
        .invoke(s.clone(), InvokeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 429);
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(body(&r)["count"], 1);
    }
    assert_eq!(h.exec.environment_count(), 2);
    // Retiring the function removes its environments.
    h.exec.retire(&s.function_arn).await;
    for _ in 0..50 {
        if h.exec.environment_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.exec.environment_count(), 0);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_driver_basics() {
    basics(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_driver_init_error_and_limits() {
    init_error_and_limits(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_driver_basics() {
    basics(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_driver_init_error_and_limits() {
    init_error_and_limits(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_driver_out_of_memory() {
    let Some(h) = Harness::new(true) else { return };
    if !h.driver.capabilities().memory_limit {
        eprintln!("skipped: no memory cgroup");
        return h.finish().await;
    }
    let mut s = (*h.spec("oom", &[])).clone();
    s.memory_mb = 128;
    s.timeout_s = 20;
    let s = Arc::new(s);
    let r = h.invoke(&s, r#"{"hog": true}"#, false).await;
    assert_eq!(r.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(body(&r)["errorType"], "Runtime.ExitError");
    assert!(body(&r)["errorMessage"]
        .as_str()
        .unwrap()
        .ends_with("Runtime exited with error: signal: killed"));
    h.finish().await;
}

#[tokio::test]
async fn no_driver_is_a_service_error() {
    let Some(h) = Harness::new(false) else { return };
    let mut deps = h.exec.deps.clone();
    deps.driver = None;
    let exec = Executor::new(&deps).unwrap();
    let err = exec
        .invoke(h.spec("nodriver", &[]), InvokeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, "ServiceException");
    assert!(err.message.contains("no execution driver"));
    // The account-wide limit applies to functions without reserved concurrency.
    let mut deps = h.exec.deps.clone();
    deps.settings.account_concurrency = 0;
    let exec = Executor::new(&deps).unwrap();
    let err = exec
        .invoke(h.spec("account", &[]), InvokeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 429);
    assert_eq!(err.fields["Reason"], "ConcurrentInvocationLimitExceeded");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_driver_image_function() {
    let Some(h) = Harness::new(true) else { return };
    // The built-in userland image with an ImageConfig entry point: the image path (rootfs
    // from the image store, entrypoint/command resolution) without a registry push.
    let mut s = (*h.spec("image", &[])).clone();
    s.package_type = crate::spec::PackageType::Image;
    s.runtime = None;
    s.handler = None;
    s.code_dir = None;
    s.image = Some(crate::spec::ImageSpec {
        uri: "ferrocloud/host-userland:latest".into(),
        digest: h.exec.deps.images.userland_digest().to_string(),
        entry_point: Some(vec![
            "/usr/bin/python3".into(),
            "-c".into(),
            BOOTSTRAP.into(),
        ]),
        command: None,
        working_directory: Some("/tmp".into()),
    });
    let s = Arc::new(s);
    h.exec.prepare(&s).await.unwrap();
    let r = h.invoke(&s, "{}", false).await;
    assert_eq!(
        r.function_error,
        None,
        "{:?}",
        String::from_utf8_lossy(&r.payload)
    );
    let b = body(&r);
    assert_eq!(b["count"], 1);
    assert_eq!(b["cwd"], "/tmp");
    assert_eq!(b["env"]["AWS_LAMBDA_FUNCTION_NAME"], "image");
    assert_eq!(b["env"]["AWS_EXECUTION_ENV"], serde_json::Value::Null);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_driver_reaping_and_provisioned_concurrency() {
    let Some(h) = Harness::new(false) else { return };
    // Provisioned: two environments initialised ahead; an invocation finds one ready.
    let spec = h.spec("provisioned", &[]);
    h.exec.set_provisioned(spec.clone(), 2).await;
    assert_eq!(h.exec.environment_count(), 2);
    let r = h.invoke(&spec, "{}", false).await;
    assert_eq!(r.init_duration_ms, None);
    assert_eq!(body(&r)["count"], 1);
    // The reaper keeps provisioned environments however long they idle...
    let mut deps = h.exec.deps.clone();
    deps.settings.idle_timeout = Duration::ZERO;
    h.exec.reap();
    assert_eq!(h.exec.environment_count(), 2);
    // ...and removes idle on-demand ones after the idle timeout.
    let exec = Executor::new(&deps).unwrap();
    let other = h.spec("reaped", &[]);
    exec.invoke(other.clone(), InvokeRequest::default())
        .await
        .unwrap();
    assert_eq!(exec.environment_count(), 1);
    exec.reap();
    assert_eq!(exec.environment_count(), 0);
    exec.shutdown().await;
    h.exec.set_provisioned(spec, 0).await;
    h.finish().await;
}

async fn layers(linux: bool) {
    let Some(h) = Harness::new(linux) else { return };
    let mut s = (*h.spec("layers", &[])).clone();
    let mut dirs = Vec::new();
    for (i, files) in [
        vec![("layer.txt", "one"), ("first.txt", "x")],
        vec![("layer.txt", "two")],
    ]
    .iter()
    .enumerate()
    {
        let d = h.dir.join(format!("layer{i}"));
        std::fs::create_dir_all(&d).unwrap();
        for (name, content) in files {
            std::fs::write(d.join(name), content).unwrap();
        }
        dirs.push(d);
    }
    s.layer_dirs = dirs;
    let s = Arc::new(s);
    let b = body(&h.invoke(&s, "{}", false).await);
    // Layers are merged in order: the later one wins, files of both are there.
    assert_eq!(b["layer"], "two");
    assert_eq!(b["first"], true);
    if linux {
        assert_eq!(b["opt"], "/opt");
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_driver_layers() {
    layers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_driver_layers() {
    layers(true).await;
}
