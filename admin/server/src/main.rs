//! herald-admin: the admin service and web console.

mod api;
mod app;
mod auth;
mod config;
mod excel;
mod pushes;
mod upload_worker;

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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HERALD_ADMIN_LOG").unwrap_or_else(|_| "info".into()))
        // Colours only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
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
