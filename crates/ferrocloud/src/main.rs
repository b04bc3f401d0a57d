//! The `ferrocloud` binary: command line, configuration, wiring of store, services and the HTTP
//! endpoint, background tasks, graceful shutdown.
//!
//! Must not live here: wire formats (fc-protocol), service behaviour (fc-services), storage
//! engines (fc-store).

// ApiError is a plain value carried once per request; boxing it buys nothing measurable.
#![allow(clippy::result_large_err)]

/// glibc's allocator spends more time than the request pipeline on small, short-lived values.
/// (Transparent huge pages are off for it: with them, idle RSS doubles.)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod authn;
mod config;
mod server;
mod signature;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::{Config, ServeArgs};
use fc_services::Registry;
use fc_store::{SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

#[derive(Parser)]
#[command(
    name = "ferrocloud",
    version,
    about = "AWS compute on your own machine, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (default 127.0.0.1:4566).
    Serve(ServeArgs),
    /// Print the health of a running server.
    Status {
        /// Server address.
        #[arg(long, env = "FERROCLOUD_HOST", default_value = "127.0.0.1")]
        host: String,
        #[arg(long, env = "FERROCLOUD_PORT", default_value_t = 4566)]
        port: u16,
    },
    /// Move the whole state between machines.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
}

#[derive(Subcommand)]
enum StateAction {
    /// Write the whole state to FILE.
    Export {
        file: PathBuf,
        #[arg(long, env = "FERROCLOUD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Replace the whole state with FILE (written by `state export`).
    Import {
        file: PathBuf,
        #[arg(long, env = "FERROCLOUD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    // Workload supervisors are this binary re-executed with a hidden marker: they must run
    // before anything else (no runtime, no logging, no argument parsing).
    if let Some(code) = fc_runtime::maybe_run_init() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = Config::resolve(&args)?;
            // Before any thread starts: SQLite's page buffers stay in the C heap under load.
            let heap_kept = fc_runtime::keep_c_heap();
            // Keeps the log writer thread alive until the server has stopped.
            let _log_guard = init_tracing(&cfg.log_format);
            if !heap_kept {
                tracing::debug!("the C allocator did not take the heap settings");
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(run(cfg))
        }
        Command::Status { host, port } => status(&host, port),
        Command::State { action } => match action {
            StateAction::Export { file, data_dir } => {
                let store = SqliteStore::open(&data_dir.unwrap_or_else(config::default_data_dir))?;
                store.export(&file)?;
                println!("state exported to {}", file.display());
                Ok(())
            }
            StateAction::Import { file, data_dir } => {
                let store = SqliteStore::open(&data_dir.unwrap_or_else(config::default_data_dir))?;
                store.import(&file)?;
                println!("state imported from {}", file.display());
                Ok(())
            }
        },
    }
}

/// Logs go to stderr through a background writer thread, so request handling never waits on
/// the terminal or a pipe. The thread writes through a buffer that it flushes whenever it has
/// taken every queued line: one `write` per burst of lines rather than per line (no line waits
/// for later ones).
fn init_tracing(format: &str) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROCLOUD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::BufWriter::with_capacity(
        64 << 10,
        std::io::stderr(),
    ));
    // Colours only for a terminal: a log file gets plain text (and each line costs less).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.compact().init();
    }
    guard
}

/// The services and the handles the background tasks need.
pub struct Services {
    pub registry: Registry,
    pub oci: Arc<dyn fc_services::RawHandler>,
    logs: Arc<fc_services::logs::Logs>,
    s3: Arc<fc_services::s3::S3>,
    ecr: Arc<fc_services::ecr::Ecr>,
    /// The execution driver, stopped (not its workloads) at shutdown.
    driver: Option<Arc<dyn fc_runtime::Driver>>,
    pub lambda: Arc<fc_lambda::Lambda>,
    pub ledger: Arc<fc_services::costs::Ledger>,
    /// `/_ferrocloud/<prefix>/…` endpoints of services.
    pub internal: Vec<(&'static str, Arc<dyn fc_services::RawHandler>)>,
}

/// Build every service over one store; files (S3 objects, images) live under `files`.
pub fn build_services(store: &Arc<dyn Store>, cfg: &Config, files: &Path) -> Result<Services> {
    let strict = cfg.auth == config::AuthMode::Strict;
    let mut reg = Registry::new();
    let logs = Arc::new(fc_services::logs::Logs::new(store.clone()));
    reg.add(Arc::new(
        fc_services::sts::Sts::new(store.clone()).enforcing(strict),
    ));
    reg.add(Arc::new(fc_services::iam::Iam::new(store.clone())));
    let ec2 = Arc::new(fc_services::ec2::Ec2::new(store.clone(), files.join("ec2")));
    reg.add(ec2.clone());
    reg.add(logs.clone());
    let sqs = fc_services::sqs::Sqs::new(store.clone());
    let bus = fc_services::bus::Bus::new();
    bus.set_queues(sqs.clone());
    reg.add(sqs.clone());
    let ledger = fc_services::costs::Ledger::new(store.clone());
    ec2.attach_ledger(ledger.clone());
    ec2.set_vcpu_limit(cfg.ec2_vcpu_limit);
    let s3 = Arc::new(fc_services::s3::S3::new(
        store.clone(),
        files.to_path_buf(),
        bus.clone(),
    )?);
    s3.set_enforce_policies(strict);
    reg.add(s3.clone());
    // ECR: the image store, the ECR API and the OCI registry at `/v2/`.
    let images = Arc::new(fc_images::ImageStore::open(files.join("images"))?);
    let ecr = Arc::new(fc_services::ecr::Ecr::new(store.clone(), images.clone()));
    reg.add(ecr.clone());
    // EC2 instances run as workloads of the execution layer; they outlive a graceful shutdown
    // and are re-adopted at the next start.
    let driver_cfg = fc_runtime::DriverConfig {
        api_port: cfg.port,
        ..fc_runtime::DriverConfig::new(files.join("runtime"))
    };
    // Workload output goes to CloudWatch Logs through Lambda's tap (which keeps the tail of
    // what functions print for `LogType=Tail`).
    let log_tap = fc_lambda::exec::LogTap::new(logs.clone());
    let driver = match fc_runtime::select(Some(cfg.driver.as_str()), driver_cfg, log_tap.clone()) {
        Ok(driver) => {
            ec2.attach_driver(driver.clone(), images.clone(), logs.clone());
            Some(driver)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no execution driver: EC2 instances will not run");
            None
        }
    };
    let lambda = fc_lambda::Lambda::new(fc_lambda::Deps {
        store: store.clone(),
        data_dir: files.join("lambda"),
        logs: logs.clone(),
        s3: s3.clone(),
        sqs,
        bus: bus.clone(),
        images: images.clone(),
        driver: driver.clone(),
        ledger: ledger.clone(),
        log_tap: log_tap.clone(),
        settings: fc_lambda::Settings {
            account_concurrency: cfg.lambda_concurrency,
            idle_timeout: Duration::from_secs(cfg.lambda_idle_seconds),
            runtime_cache: cfg.lambda_runtime_cache.clone(),
            api_port: cfg.port,
            async_retry_base: Duration::from_secs(cfg.lambda_async_retry_seconds),
            strict_auth: strict.then(|| {
                (
                    cfg.root_access_key_id.clone(),
                    cfg.root_secret_access_key.clone(),
                )
            }),
        },
    })?;
    reg.add(lambda.clone());
    let oci = fc_registry::Registry::new(
        images,
        store.clone(),
        fc_registry::RegistryConfig {
            default_account: cfg.account_id.clone(),
            default_region: cfg.region.clone(),
            strict,
        },
    );
    Ok(Services {
        registry: reg,
        oci: Arc::new(oci),
        logs,
        s3,
        ecr,
        driver,
        lambda: lambda.clone(),
        ledger,
        internal: vec![
            ("ec2", ec2.internal_handler()),
            ("lambda", lambda.internal_handler()),
        ],
    })
}

/// A background sweep: takes the current time, returns how many things it changed.
type Sweep = Box<dyn Fn(f64) -> std::result::Result<u64, String> + Send + Sync>;

/// Run every sweep every `every`, one after the other on one blocking thread (the first round
/// right away); each is named in the log when it changed something or failed.
fn periodic(every: Duration, sweeps: Vec<(&'static str, Sweep)>) {
    let sweeps = Arc::new(sweeps);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let sweeps = sweeps.clone();
            let round = tokio::task::spawn_blocking(move || {
                for (what, sweep) in sweeps.iter() {
                    match sweep(fc_protocol::value::now_secs()) {
                        Ok(n) if n > 0 => info!(task = what, changed = n, "background sweep"),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(task = what, error = %e, "background sweep failed")
                        }
                    }
                }
            });
            if let Err(e) = round.await {
                tracing::warn!(error = %e, "background sweep panicked");
            }
        }
    });
}

/// Where files live: the data directory, or a private temporary directory removed at exit
/// when `--ephemeral`.
struct FilesDir {
    path: PathBuf,
    remove_on_exit: bool,
}

impl FilesDir {
    fn new(cfg: &Config) -> Result<FilesDir> {
        if !cfg.ephemeral {
            return Ok(FilesDir {
                path: cfg.data_dir.clone(),
                remove_on_exit: false,
            });
        }
        let path = std::env::temp_dir().join(format!(
            "ferrocloud-ephemeral-{}-{}",
            std::process::id(),
            fc_types::ids::random_hex(8)
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(FilesDir {
            path,
            remove_on_exit: true,
        })
    }
}

impl Drop for FilesDir {
    fn drop(&mut self) {
        if self.remove_on_exit {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn run(cfg: Config) -> Result<()> {
    let started = Instant::now();
    let store: Arc<dyn Store> = if cfg.ephemeral {
        Arc::new(SqliteStore::in_memory()?)
    } else {
        Arc::new(SqliteStore::open(&cfg.data_dir)?)
    };
    fc_types::page::set_key(&pagination_key(store.as_ref())?);
    let files = FilesDir::new(&cfg)?;
    let services = build_services(&store, &cfg, &files.path)?;
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let (logs, s3, ecr) = (
        services.logs.clone(),
        services.s3.clone(),
        services.ecr.clone(),
    );
    periodic(
        Duration::from_secs(60),
        vec![
            (
                "logs retention",
                Box::new(move |now| {
                    logs.expire((now * 1000.0) as i64)
                        .map_err(|e| e.to_string())
                }),
            ),
            (
                "s3 lifecycle",
                Box::new(move |now| s3.expire(now).map_err(|e| e.to_string())),
            ),
            (
                "ecr housekeeping",
                Box::new(move |now| {
                    ecr.housekeeping(now)
                        .map(|r| r.expired)
                        .map_err(|e| e.to_string())
                }),
            ),
        ],
    );
    let app = server::App {
        cfg: Arc::new(cfg.clone()),
        store,
        registry: services.registry,
        oci: Some(services.oci),
        function_urls: Some(services.lambda.url_handler()),
        ledger: Some(services.ledger.clone()),
        internal: services.internal.clone(),
        s3: Some(services.s3.clone()),
    };
    services.lambda.start();
    server::spawn_idle_trim(Duration::from_millis(500));
    info!(
        address = %local,
        data_dir = %if cfg.ephemeral { "(ephemeral)".to_string() } else { cfg.data_dir.display().to_string() },
        auth = ?cfg.auth,
        account = %cfg.account_id,
        ready_micros = started.elapsed().as_micros() as u64,
        "ferrocloud ready"
    );
    let driver = services.driver.clone();
    let lambda = services.lambda.clone();
    let result = server::serve(app, listener).await;
    // Background tasks and proxies stop; workloads keep running for the next start, and the
    // router namespace goes when no workload needs it.
    lambda.shutdown().await;
    if let Some(driver) = driver {
        driver.shutdown().await;
    }
    drop(files);
    result
}

/// The key that signs pagination tokens, kept in the store so tokens survive a restart.
fn pagination_key(store: &dyn Store) -> Result<Vec<u8>> {
    let scope = fc_store::Scope::global("system");
    if let Some(k) = store.get(&scope, "server", "pagination-key")? {
        return Ok(k);
    }
    let key = fc_types::ids::random_hex(64).into_bytes();
    store.put(&scope, "server", "pagination-key", &key)?;
    Ok(key)
}

fn status(host: &str, port: u16) -> Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((host, port))
        .with_context(|| format!("no ferrocloud server answers at {host}:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /_ferrocloud/health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    stream.read_to_string(&mut buf)?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(body).context("the server's health answer is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
