//! Process wiring: the shared backends, the plugin catalogue (for account
//! forms and checks), the API, the console, and the scheduler of pushes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_backends::Sealer;
use herald_core::Clock;
use herald_plugin_host::{HostConfig, PluginHost};
use herald_service::{Deps, LimitsSource, Services};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::App;

pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let backends = herald_backends::open(&cfg.storage, &cfg.queue, &cfg.data_dir, herald_backends::Role::Shared, Clock::system()).await?;
    let sealer = Arc::new(Sealer::load(cfg.secrets_key.as_deref(), &cfg.data_dir)?);
    // The admin never runs plugin sends; it only asks plugins to describe
    // themselves and check account settings.
    let plugins = Arc::new(PluginHost::new(HostConfig::default(), HashMap::new()).map_err(|e| anyhow::anyhow!(e))?);
    let dir = cfg.plugins_dir();
    for (path, e) in plugins.sync_dir(&dir).errors {
        tracing::warn!(path = %path.display(), error = %e, "plugin not loaded");
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| anyhow::anyhow!("listen {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let deps = Deps { backends: backends.clone(), plugins: plugins.clone(), sealer: sealer.clone(), clock: Clock::system() };
    // No ack links are made here (incidents run in the gateway).
    let services = Services::new(deps, LimitsSource::Published, String::new());
    let app = Arc::new(App { cfg, deps: services.deps.clone(), services });
    crate::auth::grant_new_permissions(&app).await.map_err(|e| anyhow::anyhow!("upgrade of roles: {e}"))?;
    crate::auth::enable_apps_of_earlier_tenants(&app).await.map_err(|e| anyhow::anyhow!("upgrade of apps: {e}"))?;
    // Approvals a crash interrupted before their credit: credited now (once).
    match crate::api::recharge::complete_credits(&app).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(requests = n, "interrupted recharge credits completed"),
        Err(e) => tracing::error!(error = %e.message, "completing interrupted recharge credits failed; retried every ten minutes"),
    }
    tokio::spawn(refresh_plugins(plugins, dir, shutdown.clone()));
    tokio::spawn(crate::pushes::scheduler(app.clone(), shutdown.clone()));
    tokio::spawn(sweep_attempts(app.clone(), shutdown.clone()));
    println!("herald-admin listening on http://{addr}");
    let stop = shutdown.clone();
    axum::serve(listener, crate::api::router(app)).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    Ok(())
}

/// Every ten minutes, forget login attempts that no longer count and
/// complete recharge credits a store failure interrupted.
async fn sweep_attempts(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
        match crate::auth::sweep_attempts(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(records = n, "stale login attempt records deleted"),
            Err(e) => tracing::warn!(error = %e.message, "sweeping login attempt records failed"),
        }
        if let Err(e) = crate::api::recharge::complete_credits(&app).await {
            tracing::warn!(error = %e.message, "completing interrupted recharge credits failed");
        }
    }
}

/// Plugins the gateway hot-loads show up here too.
async fn refresh_plugins(plugins: Arc<PluginHost>, dir: std::path::PathBuf, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        let (p, d) = (plugins.clone(), dir.clone());
        let _ = tokio::task::spawn_blocking(move || p.sync_dir(&d)).await;
    }
}
