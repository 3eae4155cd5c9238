//! What every handler and task of the admin service holds (a leaf: it imports
//! no handler and no wiring).

use std::sync::Arc;

use herald_service::{Deps, Services};

use crate::config::Config;

pub struct App {
    pub cfg: Config,
    /// Backends, plugin catalogue, sealer and clock (the handle the rules hold too).
    pub deps: Deps,
    /// The rules pushes are submitted through (the gateway's intake).
    pub services: Arc<Services>,
}

/// A service on a SQLite store in `cfg.data_dir` (which may hold one from
/// an earlier run: a restart), without plugins, for the tests.
#[cfg(test)]
pub async fn test_app(cfg: Config) -> Arc<App> {
    let clock = herald_core::Clock::system();
    let backends = herald_backends::open(&cfg.storage, &cfg.queue, &cfg.data_dir, herald_backends::Role::Shared, clock.clone()).await.unwrap();
    let sealer = Arc::new(herald_backends::Sealer::load(None, &cfg.data_dir).unwrap());
    let plugins = Arc::new(herald_plugin_host::PluginHost::new(Default::default(), Default::default()).unwrap());
    let deps = Deps { backends, plugins, sealer, clock };
    let services = Services::new(deps, herald_service::LimitsSource::Published, String::new());
    Arc::new(App { cfg, deps: services.deps.clone(), services })
}
