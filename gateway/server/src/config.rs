//! Gateway configuration: one TOML file plus `HERALD_*` environment overrides
//! (nested keys with `__`, e.g. `HERALD_DISPATCH__CONCURRENCY=32`). With no
//! file at all the gateway runs on the embedded defaults with a demo tenant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
pub use herald_backends::{QueueConfig, StorageConfig};
use herald_core::model::Content;
use herald_core::retry::{RetryOverride, RetryPolicies, RetryPolicy};
use herald_core::validate::Limits;
use herald_plugin_host::HostConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Where the embedded database and plugins live.
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    pub queue: QueueConfig,
    pub plugins: PluginsConfig,
    pub limits: Limits,
    pub dispatch: DispatchConfig,
    /// Retry schedule of every delivery (see `retry_channels` and the
    /// tenants' `retry` for narrower ones).
    pub retry: RetryPolicy,
    /// Per-channel retry settings for every tenant, e.g. `[retry_channels.sms]`.
    pub retry_channels: HashMap<String, RetryOverride>,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_ttl_hours: u32,
    /// Default prices, per channel (tenants may override).
    pub prices: Vec<PriceConfig>,
    pub tenants: Vec<TenantConfig>,
    /// Create a demo tenant when no tenant exists (default: true).
    pub demo: bool,
    /// Bearer token for the operator endpoints under `/admin` (plugin reload);
    /// without it those endpoints are off.
    pub admin_token: Option<String>,
    /// Base64 of the 32-byte key sealing sender-account secrets; default: the
    /// key file `<data_dir>/secret.key` (created on first start). Set the same
    /// key on every gateway and admin process of a distributed deployment.
    pub secrets_key: Option<String>,
    /// Base URL recipients use to reach this gateway (acknowledgement links);
    /// default `http://<listen address>`.
    pub public_url: Option<String>,
    /// Tests only: `POST /admin/clock` moves this process's clock forward.
    pub testing_clock: bool,
    pub transport: TransportConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("addr"),
            data_dir: PathBuf::from("data"),
            storage: StorageConfig::default(),
            queue: QueueConfig::default(),
            plugins: PluginsConfig::default(),
            limits: Limits::default(),
            dispatch: DispatchConfig::default(),
            retry: RetryPolicy::default(),
            retry_channels: HashMap::new(),
            idempotency_ttl_hours: 24,
            prices: vec![
                PriceConfig { channel: "email".into(), unit_minor: 0, currency: "CNY".into() },
                PriceConfig { channel: "webhook".into(), unit_minor: 0, currency: "CNY".into() },
            ],
            tenants: Vec::new(),
            demo: true,
            admin_token: None,
            secrets_key: None,
            public_url: None,
            testing_clock: false,
            transport: TransportConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory of `*.wasm` plugins; default `<data_dir>/plugins`.
    pub dir: Option<PathBuf>,
    /// Operator allowlists of outbound hosts, per plugin name.
    pub allow_hosts: HashMap<String, Vec<String>>,
    /// Sandbox limits per call.
    pub sandbox: HostConfig,
    /// How often the plugin directory is checked for new or changed files
    /// (hot reload); 0 turns it off. `POST /admin/plugins/reload` reloads now.
    pub reload_interval_ms: u64,
    /// Send requests for a provider host to another base URL instead, e.g.
    /// `{ "oapi.dingtalk.com" = "http://127.0.0.1:9000" }` for a staging mock.
    /// Applied after the allowlist check, so plugins keep their real URLs.
    pub redirect_hosts: HashMap<String, String>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self { dir: None, allow_hosts: HashMap::new(), sandbox: HostConfig::default(), reload_interval_ms: 2_000, redirect_hosts: HashMap::new() }
    }
}

/// Outbound connections to tenant-supplied destinations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Non-public destinations deliveries may reach anyway: addresses
    /// (`127.0.0.1`, `::1`), networks (`10.0.0.0/8`), either with a port
    /// (`127.0.0.1:1025`), or host names (`mail.internal`, `*.corp.example`).
    /// Everything else that resolves to a loopback, private (RFC 1918, ULA),
    /// link-local, CGNAT, multicast, reserved or cloud-metadata address is
    /// refused, checked on the resolved address at connect time.
    /// Env: `HERALD_TRANSPORT__ALLOW_PRIVATE='["10.0.0.0/8"]'`.
    pub allow_private: Vec<String>,
    /// Proxy for provider HTTP(S) requests: `http://[user:password@]host:port`.
    /// Every destination (HTTPS and plain HTTP) is reached through an HTTP
    /// CONNECT tunnel to the address the guard checked. The proxy itself is
    /// operator-chosen and may be on a private network. Unset: the standard
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` variables (with
    /// `proxy_from_env`).
    pub proxy: Option<String>,
    /// Destinations that bypass the proxy, as `NO_PROXY` takes them: host
    /// names (matching subdomains too; `.example.com` alike), addresses,
    /// networks (`10.0.0.0/8`), or `*` for all. Unset: the `NO_PROXY` variable.
    pub no_proxy: Option<Vec<String>>,
    /// Read `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (or their
    /// lowercase forms) when `proxy` is unset (default true).
    pub proxy_from_env: bool,
    /// PEM files of extra CA certificates trusted for provider HTTPS, besides
    /// the bundled Mozilla roots (and the system store).
    pub ca_files: Vec<PathBuf>,
    /// Also trust the operating system's certificate store (default true;
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured as OpenSSL does).
    pub system_roots: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self { allow_private: Vec::new(), proxy: None, no_proxy: None, proxy_from_env: true, ca_files: Vec::new(), system_roots: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// Run the dispatch role in this process.
    pub enabled: bool,
    /// Most deliveries per batch (a plugin's own max-batch may be lower).
    pub max_batch: usize,
    pub max_batch_bytes: usize,
    /// How long a batch waits to fill up.
    pub linger_ms: u64,
    /// Batches in flight at once.
    pub concurrency: usize,
    /// Batches in flight at once for one tenant (all its accounts).
    pub tenant_concurrency: usize,
    /// Batches in flight at once for one sender account: a receiver that
    /// hangs or throttles holds no more than these.
    pub account_concurrency: usize,
    /// Deliveries of one tenant waiting in this process before no more of
    /// its work is leased (other tenants' work still is).
    pub tenant_backlog: usize,
    /// Queue items leased per poll.
    pub lease_batch: usize,
    /// How long a leased item is hidden from other consumers.
    pub lease_ms: i64,
    /// Poll interval when the queue is empty.
    pub poll_ms: u64,
    /// On shutdown, how long in-flight batches may take to finish.
    pub drain_timeout_ms: u64,
    /// Timeout of one provider request (HTTP or SMTP).
    pub request_timeout_ms: u64,
    /// Default per-(tenant, channel) rate, sends per second; none = unlimited.
    pub tenant_channel_rate_per_sec: Option<u32>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_batch: 100,
            max_batch_bytes: 1 << 20,
            linger_ms: 10,
            concurrency: 64,
            tenant_concurrency: 32,
            account_concurrency: 16,
            tenant_backlog: 20_000,
            lease_batch: 256,
            lease_ms: 120_000,
            poll_ms: 50,
            drain_timeout_ms: 10_000,
            request_timeout_ms: 10_000,
            tenant_channel_rate_per_sec: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub channel: String,
    /// Price of one billable unit in minor units (fen, cents).
    pub unit_minor: i64,
    #[serde(default = "herald_core::model::default_currency")]
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "herald_core::model::default_currency")]
    pub currency: String,
    /// API keys accepted for this tenant (stored only as SHA-256).
    #[serde(default)]
    pub api_keys: Vec<String>,
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub templates: Vec<TemplateConfig>,
    #[serde(default)]
    pub prices: Vec<PriceConfig>,
    /// Per-channel send rate for this tenant, sends per second.
    #[serde(default)]
    pub channel_rate_per_sec: HashMap<String, u32>,
    /// This tenant's retry settings (over `retry_channels` and `retry`).
    #[serde(default)]
    pub retry: Option<RetryOverride>,
    /// This tenant's per-channel retry settings (over its `retry`).
    #[serde(default)]
    pub retry_channels: HashMap<String, RetryOverride>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub name: String,
    pub plugin: String,
    /// Plugin-specific settings (secrets included; never logged).
    pub config: serde_json::Value,
    #[serde(default)]
    pub rate_per_sec: Option<u32>,
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig").field("name", &self.name).field("plugin", &self.plugin).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub id: String,
    #[serde(flatten)]
    pub content: Content,
}

impl Config {
    /// Defaults, then the file (if given), then `HERALD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        // Only variables that name a config section; HERALD_CONFIG, HERALD_LOG and
        // others are read elsewhere or belong to other tools.
        const SECTIONS: &[&str] = &[
            "listen",
            "data_dir",
            "storage",
            "queue",
            "plugins",
            "limits",
            "dispatch",
            "retry",
            "retry_channels",
            "idempotency_ttl_hours",
            "prices",
            "demo",
            "admin_token",
            "secrets_key",
            "public_url",
            "testing_clock",
            "transport",
        ];
        fig = fig.merge(Env::prefixed("HERALD_").split("__").filter(|k| {
            let section = k.as_str().split('.').next().unwrap_or("");
            SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section))
        }));
        let cfg: Config = fig.extract().map_err(|e| e.into_iter().map(herald_backends::config_error).collect::<Vec<_>>().join("; "))?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        herald_backends::check(&self.storage, &self.queue)?;
        let d = &self.dispatch;
        if [d.max_batch, d.concurrency, d.tenant_concurrency, d.account_concurrency, d.tenant_backlog, d.lease_batch].contains(&0) {
            return Err("dispatch.max_batch, dispatch.concurrency, dispatch.tenant_concurrency, dispatch.account_concurrency, dispatch.tenant_backlog and dispatch.lease_batch must be at least 1".into());
        }
        self.retry_policies()?;
        if self.idempotency_ttl_hours == 0 {
            return Err("idempotency_ttl_hours must be at least 1 (a key is remembered for that long)".into());
        }
        let all_prices =
            self.prices.iter().map(|p| ("prices", p)).chain(self.tenants.iter().flat_map(|t| t.prices.iter().map(|p| ("tenants.prices", p))));
        for (field, p) in all_prices {
            if p.unit_minor < 0 {
                return Err(format!("{field}: unit_minor for {:?} must not be negative", p.channel));
            }
        }
        for (i, t) in self.tenants.iter().enumerate() {
            if t.id.trim().is_empty() {
                return Err(format!("tenants[{i}].id must not be empty"));
            }
            for (k, key) in t.api_keys.iter().enumerate() {
                if key.len() < 16 {
                    return Err(format!("tenants[{i}].api_keys[{k}]: API keys must be at least 16 characters"));
                }
            }
        }
        Ok(())
    }

    /// Every (tenant, channel)'s retry policy.
    pub fn retry_policies(&self) -> Result<RetryPolicies, String> {
        let tenants: Vec<_> = self.tenants.iter().map(|t| (t.id.clone(), t.retry.clone(), t.retry_channels.clone())).collect();
        RetryPolicies::new(self.retry.clone(), &self.retry_channels, &tenants)
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins.dir.clone().unwrap_or_else(|| self.data_dir.join("plugins"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// `Config::load` reads the process environment, which one test changes:
    /// every test that loads a config holds this lock so they never overlap.
    static ENV: Mutex<()> = Mutex::new(());

    #[test]
    fn file_values_and_errors_name_the_field() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:9999\"\n[dispatch]\nconcurrency = 3\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.dispatch.concurrency, 3);
        assert_eq!(c.dispatch.max_batch, 100, "defaults fill the rest");

        std::fs::write(&p, "[dispatch]\nconcurrency = \"many\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err();
        assert!(e.contains("dispatch.concurrency"), "{e}");
        std::fs::write(&p, "[dispatch]\nconcurency = 3\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err();
        assert!(e.contains("concurency"), "{e}");
        std::fs::write(&p, "[[tenants]]\nid = \"a\"\napi_keys = [\"short\"]\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err();
        assert!(e.contains("tenants[0].api_keys[0]"), "{e}");
        std::fs::write(&p, "idempotency_ttl_hours = 0\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err();
        assert!(e.contains("idempotency_ttl_hours"), "{e}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn environment_overrides_the_file_and_unrelated_variables_are_ignored() {
        // The only test that touches the environment (it is process-wide).
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        unsafe {
            std::env::set_var("HERALD_DISPATCH__LINGER_MS", "77");
            std::env::set_var("HERALD_LISTEN", "127.0.0.1:7777");
            std::env::set_var("HERALD_SOMETHING_ELSE", "x");
        }
        let c = Config::load(None).unwrap();
        unsafe {
            std::env::remove_var("HERALD_DISPATCH__LINGER_MS");
            std::env::remove_var("HERALD_LISTEN");
            std::env::remove_var("HERALD_SOMETHING_ELSE");
        }
        assert_eq!(c.dispatch.linger_ms, 77);
        assert_eq!(c.listen.port(), 7777);
    }
}
