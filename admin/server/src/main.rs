//! herald-admin: the admin service and web console.

mod api;
mod app;
mod auth;
mod config;
mod excel;
mod metrics;
mod pushes;
mod upload_worker;
mod web;

use tokio_util::sync::CancellationToken;

fn main() {
    // The upload parser's child process (see upload_worker): no runtime, no config.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(upload_worker::SUBCOMMAND) {
        std::process::exit(upload_worker::child_main(&args[1..]));
    }
    serve();
}

#[tokio::main]
async fn serve() {
    // The gateway's settings: HERALD_LOG, HERALD_LOG_FORMAT=json, OTEL_EXPORTER_OTLP_ENDPOINT.
    let _telemetry = herald_telemetry::init_logging("herald-admin");
    let file = std::env::var_os("HERALD_ADMIN_CONFIG").map(std::path::PathBuf::from);
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
