//! herald-admin: the admin service and web console.

mod api;
mod app;
mod auth;
mod config;
mod excel;
mod i18n;
mod metrics;
mod pushes;
mod state;
mod upload_worker;
mod web;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Runs the Herald admin service: the REST API under /api/v1 and the web console.
///
/// Without --config (or HERALD_ADMIN_CONFIG) it runs on the embedded
/// defaults (the SQLite database under ./data, shared with the gateway).
#[derive(Parser)]
#[command(
    name = "herald-admin",
    version,
    after_help = "Settings can be overridden with HERALD_ADMIN_* variables (nested keys with __),\n\
                  e.g. HERALD_ADMIN_LISTEN=0.0.0.0:8090, HERALD_ADMIN_DATA_DIR=/var/lib/herald.\n\
                  Logging: HERALD_LOG, HERALD_LOG_FORMAT=json."
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(short, long, global = true, env = "HERALD_ADMIN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration without serving: unknown keys, types, backends,
    /// allow_private, the secrets key. Exits 1 naming each key that is wrong.
    Validate {
        /// Also open the store and the queue (brokers, CQL nodes or the
        /// SQLite file) and read once from each.
        #[arg(long)]
        connect: bool,
    },
}

fn main() {
    // The upload parser's child process (see upload_worker): no runtime, no
    // config, no argument parsing (a hidden sub-command, never in --help).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(upload_worker::SUBCOMMAND) {
        std::process::exit(upload_worker::child_main(&args[1..]));
    }
    let cli = Cli::parse();
    if let Some(Command::Validate { connect }) = cli.command {
        std::process::exit(validate(cli.config, connect));
    }
    serve(cli.config);
}

/// `herald-admin validate`: what passed on stdout, problems on stderr; 0 when valid, 1 otherwise.
fn validate(file: Option<PathBuf>, connect: bool) -> i32 {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let report = rt.block_on(config::validate(file.as_deref(), connect));
    for line in &report.passed {
        println!("ok: {line}");
    }
    for line in &report.problems {
        eprintln!("herald-admin: config: {line}");
    }
    if report.problems.is_empty() {
        println!("configuration is valid{}", if connect { "; store and queue reachable" } else { "" });
        0
    } else {
        eprintln!("herald-admin: {} problem(s); the configuration is not valid", report.problems.len());
        1
    }
}

#[tokio::main]
async fn serve(file: Option<PathBuf>) {
    // The gateway's settings: HERALD_LOG, HERALD_LOG_FORMAT=json, OTEL_EXPORTER_OTLP_ENDPOINT.
    let _telemetry = herald_telemetry::init_logging("herald-admin");
    let cfg = match config::Config::load(file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald-admin: configuration error: {e}");
            std::process::exit(2);
        }
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stop.cancel();
    });
    if let Err(e) = app::run(cfg, shutdown).await {
        eprintln!("herald-admin: {e:#}");
        std::process::exit(1);
    }
}
