//! `herald-gateway`: the ingest API and the dispatch role in one binary.


use std::path::PathBuf;

use herald_gateway::{app, config};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: herald-gateway [--config <file.toml>]

Runs the Herald gateway. Without --config (or HERALD_CONFIG) it runs on the
embedded defaults (SQLite under ./data) with a demo tenant.
Settings can be overridden with HERALD_* variables, e.g. HERALD_LISTEN=0.0.0.0:8080,
HERALD_DISPATCH__CONCURRENCY=32. Logging: HERALD_LOG (e.g. info,herald=debug),
HERALD_LOG_FORMAT=json.";

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut config: Option<PathBuf> = std::env::var_os("HERALD_CONFIG").map(PathBuf::from);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config = Some(PathBuf::from(p)),
                None => return fail("--config needs a file path"),
            },
            "--help" | "-h" => {
                println!("{USAGE}");
                return std::process::ExitCode::SUCCESS;
            }
            other => return fail(&format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    // HERALD_LOG, HERALD_LOG_FORMAT=json; OTLP traces when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _telemetry = herald_telemetry::init_logging("herald-gateway");
    let cfg = match config::Config::load(config.as_deref()) {
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
