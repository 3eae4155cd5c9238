//! Plugins at run time: what a pass over the plugin directory did, and the
//! hot-reload watcher.

use std::sync::Arc;
use std::time::Duration;

use herald_plugin_host::PluginHost;
use tokio_util::sync::CancellationToken;

/// Log what a pass over the plugin directory did.
pub fn log_sync(r: &herald_plugin_host::SyncReport) {
    for (name, version, sha) in &r.loaded {
        tracing::info!(plugin = %name, version = %version, sha256 = %&sha[..12], "plugin loaded");
    }
    for name in &r.removed {
        tracing::info!(plugin = %name, "plugin unloaded: its file was removed");
    }
    for (path, e) in &r.errors {
        tracing::error!(path = %path.display(), error = %e, "plugin not loaded; any previous version keeps serving");
    }
}

/// Hot reload: poll the plugin directory and load what changed.
pub async fn watch_plugins(plugins: Arc<PluginHost>, dir: std::path::PathBuf, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let (p, d) = (plugins.clone(), dir.clone());
        if let Ok(report) = tokio::task::spawn_blocking(move || p.sync_dir(&d)).await {
            log_sync(&report);
        }
    }
}
