//! The `ferrocloud` binary: command line, configuration, wiring of store, services and the HTTP
//! endpoint, background tasks, graceful shutdown.
//!
//! Must not live here: wire formats (fc-protocol), service behaviour (fc-services), storage
//! engines (fc-store).

// ApiError is a plain value carried once per request; boxing it buys nothing measurable.
#![allow(clippy::result_large_err)]

mod authn;
mod config;
mod server;
mod signature;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::{Config, ServeArgs};
use fc_services::Registry;
use fc_store::{SqliteStore, Store};
use std::path::PathBuf;
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
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = Config::resolve(&args)?;
            init_tracing(&cfg.log_format);
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

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROCLOUD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.compact().init();
    }
}

/// Build the services over a store.
pub fn registry(store: &Arc<dyn Store>) -> (Registry, Arc<fc_services::logs::Logs>) {
    let mut reg = Registry::new();
    let logs = Arc::new(fc_services::logs::Logs::new(store.clone()));
    reg.add(Arc::new(fc_services::sts::Sts::new(store.clone())));
    reg.add(Arc::new(fc_services::iam::Iam::new(store.clone())));
    reg.add(logs.clone());
    (reg, logs)
}

async fn run(cfg: Config) -> Result<()> {
    let started = Instant::now();
    let store: Arc<dyn Store> = if cfg.ephemeral {
        Arc::new(SqliteStore::in_memory()?)
    } else {
        Arc::new(SqliteStore::open(&cfg.data_dir)?)
    };
    fc_types::page::set_key(&pagination_key(store.as_ref())?);
    let (registry, logs) = registry(&store);
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let app = server::App {
        cfg: Arc::new(cfg.clone()),
        store,
        registry,
        oci: None,
    };
    // Background: expire log events past their groups' retention.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let logs = logs.clone();
            let now_ms = (fc_protocol::value::now_secs() * 1000.0) as i64;
            match tokio::task::spawn_blocking(move || logs.expire(now_ms)).await {
                Ok(Ok(n)) if n > 0 => info!(expired = n, "log events past retention deleted"),
                Ok(Err(e)) => tracing::warn!(error = %e, "log retention sweep failed"),
                _ => {}
            }
        }
    });
    info!(
        address = %local,
        data_dir = %if cfg.ephemeral { "(ephemeral)".to_string() } else { cfg.data_dir.display().to_string() },
        auth = ?cfg.auth,
        account = %cfg.account_id,
        ready_micros = started.elapsed().as_micros() as u64,
        "ferrocloud ready"
    );
    server::serve(app, listener).await
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
