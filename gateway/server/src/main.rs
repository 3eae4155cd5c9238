//! `herald-gateway`: the ingest API and the dispatch role in one binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use herald_gateway::{app, check, config};
use tokio_util::sync::CancellationToken;

// Every request allocates and frees many small buffers across threads: glibc's
// allocator took about a fifth of the gateway's CPU at one recipient per request
// (bench/results/2026-12-07-log.md). jemalloc's per-thread caches take most of
// that away without mimalloc's larger resident set at start.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs the Herald gateway: the ingest API and the dispatch role.
///
/// Without --config (or HERALD_CONFIG) it runs on the embedded defaults
/// (SQLite under ./data) with a demo tenant.
#[derive(Parser)]
#[command(
    name = "herald-gateway",
    version,
    after_help = "Settings can be overridden with HERALD_* variables, e.g. HERALD_LISTEN=0.0.0.0:8080,\n\
                  HERALD_DISPATCH__CONCURRENCY=32. Logging: HERALD_LOG (e.g. info,herald=debug),\n\
                  HERALD_LOG_FORMAT=json. Provider HTTP honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY\n\
                  unless [transport] says otherwise (see the README, \"Configuration\")."
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(short, long, global = true, env = "HERALD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration without serving: unknown keys, types, the
    /// transport settings, every declared account against its plugin and every
    /// template. Exits 1 naming each key that is wrong.
    Validate {
        /// Also open the store and the queue (brokers, CQL nodes or the
        /// SQLite file) and read once from each.
        #[arg(long)]
        connect: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Validate { connect }) = cli.command {
        return validate(cli.config, connect);
    }
    // HERALD_LOG, HERALD_LOG_FORMAT=json; OTLP traces when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _telemetry = herald_telemetry::init_logging("herald-gateway");
    let cfg = match config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&format!("config: {e}")),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("runtime: {e}")),
    };
    let shutdown = CancellationToken::new();
    rt.spawn(signals(shutdown.clone()));
    match rt.block_on(app::run(cfg, shutdown)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

/// `herald-gateway validate`: what passed on stdout, problems on stderr;
/// exit 0 when there is none, 1 otherwise.
fn validate(file: Option<PathBuf>, connect: bool) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("runtime: {e}")),
    };
    let report = rt.block_on(check::validate(file.as_deref(), connect));
    for line in &report.passed {
        println!("ok: {line}");
    }
    for line in &report.problems {
        eprintln!("herald-gateway: config: {line}");
    }
    if report.ok() {
        println!("configuration is valid{}", if connect { "; store and queue reachable" } else { "" });
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("herald-gateway: {} problem(s); the configuration is not valid", report.problems.len());
        std::process::ExitCode::FAILURE
    }
}

fn fail(msg: &str) -> std::process::ExitCode {
    eprintln!("herald-gateway: {msg}");
    std::process::ExitCode::from(2)
}

async fn signals(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: no new work, draining in-flight batches");
    shutdown.cancel();
}
