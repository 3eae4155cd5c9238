//! Process wiring: open the backends, load plugins, seed configuration, run
//! the ingest API and the dispatch role until shutdown.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_backends::Sealer;
use herald_core::model::{Account, Price, Template, Tenant};
use herald_core::seams::{ConfigStore, Queue, Store};
use herald_plugin_host::PluginHost;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dispatch::Dispatch;
use crate::limits::Limiters;
use crate::metrics::Metrics;
use crate::transport::Transports;

/// How long an API key lookup is cached.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);

pub struct App {
    pub cfg: Config,
    pub queue: Arc<dyn Queue>,
    pub store: Arc<dyn Store>,
    pub config: Arc<dyn ConfigStore>,
    pub plugins: Arc<PluginHost>,
    /// Opens sealed account secrets for plugin calls.
    pub sealer: Arc<Sealer>,
    pub engine: Arc<crate::escalation::Engine>,
    pub metrics: Arc<Metrics>,
    pub demo_inbox: Option<Mutex<VecDeque<serde_json::Value>>>,
    auth_cache: Mutex<HashMap<String, (Tenant, Instant)>>,
    idempotency_inflight: Mutex<HashSet<(String, String)>>,
    idempotency_released: tokio::sync::Notify,
}

pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Releases an in-flight idempotency key when dropped.
pub struct IdempotencyGuard<'a> {
    app: &'a App,
    key: (String, String),
}

impl Drop for IdempotencyGuard<'_> {
    fn drop(&mut self) {
        self.app.idempotency_inflight.lock().expect("idempotency set").remove(&self.key);
        self.app.idempotency_released.notify_waiters();
    }
}

impl App {
    pub async fn tenant_for_key(&self, key: &str) -> Result<Option<Tenant>, herald_core::StoreError> {
        let hash = key_hash(key);
        if let Some((t, at)) = self.auth_cache.lock().expect("auth cache").get(&hash)
            && at.elapsed() < AUTH_CACHE_TTL
        {
            return Ok(Some(t.clone()));
        }
        let tenant = self.config.tenant_by_api_key(&hash).await?;
        if let Some(t) = &tenant {
            self.auth_cache.lock().expect("auth cache").insert(hash, (t.clone(), Instant::now()));
        }
        Ok(tenant)
    }

    /// Serialise requests that carry the same Idempotency-Key.
    pub async fn idempotency_guard(&self, tenant: &str, key: &str) -> IdempotencyGuard<'_> {
        let k = (tenant.to_string(), key.to_string());
        loop {
            let notified = self.idempotency_released.notified();
            if self.idempotency_inflight.lock().expect("idempotency set").insert(k.clone()) {
                return IdempotencyGuard { app: self, key: k };
            }
            notified.await;
        }
    }
}

/// Start everything; returns when shut down.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The embedded database is opened (and locked: one owner) only when used.
    let backends = herald_backends::open(&cfg.storage, &cfg.queue, &cfg.data_dir, herald_backends::Role::Owner).await?;
    let (queue, store, config) = (backends.queue.clone(), backends.store.clone(), backends.config.clone());
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

    let engine = Arc::new(crate::escalation::Engine {
        queue: queue.clone(),
        store: store.clone(),
        config: config.clone(),
        plugins: plugins.clone(),
        sealer: sealer.clone(),
        public_url: cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}")),
    });
    let metrics = Metrics::new();
    let plugins_for_watch = plugins.clone();
    let app = Arc::new(App {
        cfg: cfg.clone(),
        queue: queue.clone(),
        store: store.clone(),
        config: config.clone(),
        plugins: plugins.clone(),
        sealer: sealer.clone(),
        engine: engine.clone(),
        metrics: metrics.clone(),
        demo_inbox: demo.then(|| Mutex::new(VecDeque::new())),
        auth_cache: Mutex::new(HashMap::new()),
        idempotency_inflight: Mutex::new(HashSet::new()),
        idempotency_released: tokio::sync::Notify::new(),
    });

    // Tenant-supplied destinations: non-public addresses only when allowed.
    let guard = crate::transport::guard(&cfg.transport, demo.then_some(addr)).map_err(|e| anyhow::anyhow!(e))?;
    let retry = cfg.retry_policies().map_err(|e| anyhow::anyhow!(e))?;
    let dispatch = cfg.dispatch.enabled.then(|| {
        let d = Arc::new(Dispatch {
            queue,
            store,
            config,
            plugins,
            sealer,
            engine,
            transport: Arc::new(Transports::new(Duration::from_millis(cfg.dispatch.request_timeout_ms), cfg.plugins.redirect_hosts.clone(), guard)),
            tokens: Default::default(),
            metrics,
            limiters: Limiters::default(),
            cfg: cfg.dispatch.clone(),
            retry,
            tenant_rates: cfg.tenants.iter().flat_map(|t| t.channel_rate_per_sec.iter().map(|(c, r)| ((t.id.clone(), c.clone()), *r))).collect(),
            inflight: Default::default(),
            deliveries: Default::default(),
        });
        tokio::spawn(d.run(shutdown.clone()))
    });

    if cfg.plugins.reload_interval_ms > 0 {
        tokio::spawn(watch_plugins(plugins_for_watch, dir, Duration::from_millis(cfg.plugins.reload_interval_ms), shutdown.clone()));
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
async fn watch_plugins(plugins: Arc<PluginHost>, dir: std::path::PathBuf, every: Duration, shutdown: CancellationToken) {
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

/// What the config file declared at the last start, per tenant. The file is
/// authoritative for what it declares: whatever it declared then and no
/// longer does is revoked at this start. Keys and accounts made in the admin
/// were never declared here, so they are untouched.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Declared {
    tenants: std::collections::BTreeMap<String, DeclaredTenant>,
}

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct DeclaredTenant {
    /// SHA-256 of the API keys.
    api_keys: std::collections::BTreeSet<String>,
    accounts: std::collections::BTreeSet<String>,
}

const DECLARED: (&str, &str) = ("config-file", "declared");

impl Declared {
    fn of(cfg: &Config) -> Declared {
        let tenants = cfg
            .tenants
            .iter()
            .map(|t| {
                let declared = DeclaredTenant {
                    api_keys: t.api_keys.iter().map(|k| key_hash(k)).collect(),
                    accounts: t.accounts.iter().map(|a| a.name.clone()).collect(),
                };
                (t.id.clone(), declared)
            })
            .collect();
        Declared { tenants }
    }

    /// Revoke what `before` declared and `self` does not.
    async fn revoke_dropped(&self, before: &Declared, store: &dyn ConfigStore) -> anyhow::Result<()> {
        let none = DeclaredTenant::default();
        for (tenant, was) in &before.tenants {
            let now = self.tenants.get(tenant).unwrap_or(&none);
            for key in was.api_keys.difference(&now.api_keys) {
                store.remove_api_key(tenant, key).await?;
                tracing::info!(%tenant, "API key removed from the config file: revoked");
            }
            for account in was.accounts.difference(&now.accounts) {
                store.delete_account(tenant, account).await?;
                tracing::info!(%tenant, %account, "account removed from the config file: deleted");
            }
            if !self.tenants.contains_key(tenant) {
                tracing::info!(%tenant, "tenant removed from the config file: its keys and accounts from the file are revoked");
            }
        }
        Ok(())
    }
}

/// Write the config file's tenants, keys, accounts, templates and prices to
/// the config store (accounts are checked by their plugin first), and revoke
/// what an earlier version of the file declared and this one does not.
async fn seed(cfg: &Config, store: &dyn ConfigStore, plugins: &PluginHost, sealer: &Sealer) -> anyhow::Result<()> {
    let repo = herald_core::docs::Repo::new(store, "*");
    let before: Declared = repo.get(DECLARED.0, DECLARED.1).await.map_err(|e| anyhow::anyhow!(e.message))?.unwrap_or_default();
    let declared = Declared::of(cfg);
    declared.revoke_dropped(&before, store).await?;
    seed_declared(cfg, store, plugins, sealer).await?;
    if declared != before {
        repo.put(DECLARED.0, DECLARED.1, &declared).await.map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok(())
}

async fn seed_declared(cfg: &Config, store: &dyn ConfigStore, plugins: &PluginHost, sealer: &Sealer) -> anyhow::Result<()> {
    for p in &cfg.prices {
        store.set_price("*", &Price { channel: p.channel.clone(), unit_minor: p.unit_minor, currency: p.currency.clone() }).await?;
    }
    for (i, t) in cfg.tenants.iter().enumerate() {
        let tenant = Tenant { id: t.id.clone(), name: t.name.clone().unwrap_or_else(|| t.id.clone()), currency: t.currency.clone() };
        store.upsert_tenant(&tenant).await?;
        for key in &t.api_keys {
            store.add_api_key(&t.id, &key_hash(key)).await?;
        }
        for (j, a) in t.accounts.iter().enumerate() {
            let field = format!("tenants[{i}].accounts[{j}]");
            let mut account = Account {
                tenant: t.id.clone(),
                name: a.name.clone(),
                plugin: a.plugin.clone(),
                config: a.config.clone(),
                rate_per_sec: a.rate_per_sec,
            };
            match plugins.get(&a.plugin) {
                Some(p) => {
                    let config = a.config.to_string();
                    let p2 = p.clone();
                    tokio::task::spawn_blocking(move || p2.validate_account(&config))
                        .await?
                        .map_err(|e| anyhow::anyhow!("{field} ({}): {e}", a.name))?;
                }
                None => {
                    tracing::warn!(account = %a.name, plugin = %a.plugin, "{field}: plugin not loaded; account not validated")
                }
            }
            seal(plugins, sealer, &mut account).map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
            store.upsert_account(&account).await?;
        }
        for tpl in &t.templates {
            herald_core::render::Compiled::new(&tpl.content).map_err(|e| anyhow::anyhow!("tenants[{i}].templates ({}): {e}", tpl.id))?;
            store.upsert_template(&Template { tenant: t.id.clone(), id: tpl.id.clone(), content: tpl.content.clone() }).await?;
        }
        for p in &t.prices {
            store.set_price(&t.id, &Price { channel: p.channel.clone(), unit_minor: p.unit_minor, currency: p.currency.clone() }).await?;
        }
    }
    Ok(())
}

/// Seal the fields the account's plugin declares secret (none if it is not loaded).
fn seal(plugins: &PluginHost, sealer: &Sealer, account: &mut Account) -> Result<(), herald_backends::SealError> {
    match plugins.get(&account.plugin) {
        Some(p) => sealer.seal(account, &p.info.secret_fields),
        None => Ok(()),
    }
}

const DEMO: &str = "demo";

/// A demo tenant whose webhook account posts to this gateway's own demo inbox.
/// Its API key is printed once, when it is created.
async fn ensure_demo(cfg: &Config, store: &dyn ConfigStore, plugins: &PluginHost, sealer: &Sealer, addr: SocketAddr) -> anyhow::Result<bool> {
    let existing = store.tenants().await?;
    if existing.iter().any(|t| t.id != DEMO) {
        return Ok(false);
    }
    if existing.is_empty() {
        let key = format!("hk_demo_{}", hex::encode(rand::rng().random::<[u8; 16]>()));
        store.upsert_tenant(&Tenant { id: DEMO.into(), name: "Demo".into(), currency: "CNY".into() }).await?;
        store.add_api_key(DEMO, &key_hash(&key)).await?;
        store
            .upsert_template(&Template {
                tenant: DEMO.into(),
                id: "welcome".into(),
                content: herald_core::model::Content {
                    subject: Some("Welcome, {{ name }}".into()),
                    text: Some("Hello {{ name }}, welcome to Herald.".into()),
                    html: Some("<p>Hello <b>{{ name }}</b>, welcome to Herald.</p>".into()),
                },
            })
            .await?;
        let key_file = cfg.data_dir.join("demo-api-key");
        write_private(&key_file, &key)?;
        println!("\n  Demo tenant created. API key: {key}\n  (also saved to {}; it is not printed again)\n", key_file.display());
    }
    let port = addr.port();
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let secret = match store.account(DEMO, "demo-webhook").await? {
        Some(a) => a.config.get("secret").and_then(|s| s.as_str()).map(str::to_string),
        None => None,
    }
    .unwrap_or_else(|| hex::encode(rand::rng().random::<[u8; 16]>()));
    let demo_accounts = [
        ("demo-webhook", "webhook", serde_json::json!({"url": format!("http://{host}:{port}/demo/inbox"), "secret": secret})),
        (
            "demo-email",
            "email",
            serde_json::json!({"from": "demo@herald.localhost", "from_name": "Herald demo",
            "smtp": {"host": "127.0.0.1", "port": 1025, "tls": "none"}}),
        ),
    ];
    for (name, plugin, config) in demo_accounts {
        let mut account = Account { tenant: DEMO.into(), name: name.into(), plugin: plugin.into(), config, rate_per_sec: None };
        seal(plugins, sealer, &mut account)?;
        store.upsert_account(&account).await?;
    }
    Ok(true)
}

/// Write a file readable only by its owner.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    writeln!(f, "{contents}")?;
    Ok(())
}
