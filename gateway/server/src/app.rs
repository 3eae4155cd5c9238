//! Process wiring: open the backends, load plugins, seed configuration, run
//! the ingest API and the dispatch role until shutdown.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Clock;
use herald_plugin_host::PluginHost;
use herald_service::{Deps, LimitsSource, Services};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dispatch::Dispatch;
use crate::metrics::Metrics;
use crate::plugins_watch::{log_sync, watch_plugins};
use crate::seed::{ensure_demo, seed};
use crate::state::App;
use crate::transport::Transports;

/// Start everything; returns when shut down.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The embedded database is opened (and locked: one owner) only when used.
    // Tests of a real binary may move its clock (`POST /admin/clock`).
    let clock = if cfg.testing_clock { Clock::movable() } else { Clock::system() };
    let backends = herald_backends::open(&cfg.storage, &cfg.queue, &cfg.data_dir, herald_backends::Role::Owner, clock.clone()).await?;
    let config = backends.config.clone();
    let sealer = Arc::new(herald_backends::Sealer::load(cfg.secrets_key.as_deref(), &cfg.data_dir)?);

    let plugins = Arc::new(PluginHost::new(cfg.plugins.sandbox.clone(), cfg.plugins.allow_hosts.clone()).map_err(|e| anyhow::anyhow!(e))?);
    let dir = cfg.plugins_dir();
    log_sync(&plugins.sync_dir(&dir));
    if plugins.names().is_empty() {
        tracing::warn!(dir = %dir.display(), "no plugins loaded; build them with `make plugins`");
    }

    let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| anyhow::anyhow!("listen {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    seed(&cfg, config.as_ref(), &plugins, &sealer).await?;
    let demo = cfg.demo && cfg.tenants.is_empty() && ensure_demo(&cfg, config.as_ref(), &plugins, &sealer, addr).await?;

    let deps = Deps { backends, plugins: plugins.clone(), sealer, clock };
    let public_url = cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let services = Services::new(deps.clone(), LimitsSource::Fixed(cfg.limits.clone()), public_url);
    let metrics = Metrics::new();
    let app = Arc::new(App::new(cfg.clone(), services.clone(), metrics.clone(), demo));

    // Tenant-supplied destinations: non-public addresses only when allowed.
    let guard = crate::transport::guard(&cfg.transport, demo.then_some(addr)).map_err(|e| anyhow::anyhow!(e))?;
    let transport = Arc::new(Transports::new(Duration::from_millis(cfg.dispatch.request_timeout_ms), cfg.plugins.redirect_hosts.clone(), guard));
    let dispatch = match cfg.dispatch.enabled {
        true => Some(tokio::spawn(
            Arc::new(Dispatch::new(&cfg, deps, services, transport, metrics).map_err(|e| anyhow::anyhow!(e))?).run(shutdown.clone()),
        )),
        false => None,
    };

    if cfg.plugins.reload_interval_ms > 0 {
        tokio::spawn(watch_plugins(plugins, dir, Duration::from_millis(cfg.plugins.reload_interval_ms), shutdown.clone()));
    }
    println!("herald-gateway listening on http://{addr}");
    let router = crate::api::router(app);
    let stop = shutdown.clone();
    axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    if let Some(d) = dispatch {
        let _ = d.await;
    }
    tracing::info!("stopped");
    Ok(())
}
