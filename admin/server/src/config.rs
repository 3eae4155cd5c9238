//! Admin configuration: one TOML file (`HERALD_ADMIN_CONFIG`) plus
//! `HERALD_ADMIN_*` environment overrides (nested keys with `__`). Storage and
//! queue use the gateway's settings and must name the same backends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use herald_backends::{QueueConfig, StorageConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the API and console.
    pub listen: SocketAddr,
    /// Shared with the gateway: the embedded database, plugins and the secrets key live here.
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    pub queue: QueueConfig,
    /// Plugin directory (the gateway's); default `<data_dir>/plugins`.
    pub plugins_dir: Option<PathBuf>,
    /// Base64 key sealing account secrets; default `<data_dir>/secret.key` (as the gateway).
    pub secrets_key: Option<String>,
    /// A session ends after this long without a request.
    pub session_idle_minutes: u32,
    /// Bearer token of the platform operator (top-ups); without it those endpoints are off.
    pub operator_token: Option<String>,
    /// Largest upload (spreadsheets).
    pub max_upload_bytes: usize,
    /// Most rows read from one spreadsheet.
    pub max_upload_rows: usize,
    /// Timeout of the SMTP check when an e-mail account is saved.
    pub smtp_check_timeout_ms: u64,
    /// Mark the session cookie `Secure` (the console is served over HTTPS).
    /// Unset: secure unless `listen` is a loopback address.
    pub secure_cookies: Option<bool>,
    /// Non-public destinations accounts may name anyway (checked when an
    /// account is saved; the gateway's `transport.allow_private` is the
    /// connect-time check): addresses, networks, `host:port`, host names.
    /// Env: `HERALD_ADMIN_ALLOW_PRIVATE='["10.0.0.0/8"]'`.
    pub allow_private: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8090".parse().expect("addr"),
            data_dir: PathBuf::from("data"),
            storage: StorageConfig::default(),
            queue: QueueConfig::default(),
            plugins_dir: None,
            secrets_key: None,
            session_idle_minutes: 8 * 60,
            operator_token: None,
            max_upload_bytes: 5 * 1024 * 1024,
            max_upload_rows: 100_000,
            smtp_check_timeout_ms: 10_000,
            secure_cookies: None,
            allow_private: Vec::new(),
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed("HERALD_ADMIN_").split("__").ignore(&["config", "log"]));
        let cfg: Config = fig.extract().map_err(|e| e.into_iter().map(herald_backends::config_error).collect::<Vec<_>>().join("; "))?;
        herald_backends::check(&cfg.storage, &cfg.queue)?;
        if cfg.session_idle_minutes == 0 {
            return Err("session_idle_minutes must be at least 1".into());
        }
        if cfg.operator_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("operator_token: at least 16 characters".into());
        }
        herald_backends::Guard::new(&cfg.allow_private, "allow_private")?;
        Ok(cfg)
    }

    /// Whether the session cookie carries `Secure`.
    pub fn cookie_secure(&self) -> bool {
        self.secure_cookies.unwrap_or(!self.listen.ip().is_loopback())
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir.clone().unwrap_or_else(|| self.data_dir.join("plugins"))
    }
}

/// What `herald-admin validate` found: what passed, and what is wrong (naming the key).
#[derive(Debug, Default)]
pub struct Report {
    pub passed: Vec<String>,
    pub problems: Vec<String>,
}

/// `herald-admin validate`: the file's keys and types and the rules [`Config::load`]
/// applies, the secrets key; with `connect`, the store and the queue opened
/// as a second process opens them (no lock) and read once each. Nothing is
/// written and no secret value is printed.
pub async fn validate(file: Option<&Path>, connect: bool) -> Report {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
    let mut r = Report::default();
    let cfg = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            r.problems.push(e);
            return r;
        }
    };
    r.passed.push(match file {
        Some(f) => format!("{}: keys and types", f.display()),
        None => "embedded defaults and HERALD_ADMIN_* variables: keys and types".to_string(),
    });
    if let Some(key) = &cfg.secrets_key {
        match herald_backends::Sealer::from_base64(key) {
            Ok(_) => r.passed.push("secrets_key".into()),
            Err(e) => r.problems.push(format!("secrets_key: {e}")),
        }
    }
    if !connect {
        return r;
    }
    let opened = tokio::time::timeout(
        TIMEOUT,
        herald_backends::open(&cfg.storage, &cfg.queue, &cfg.data_dir, herald_backends::Role::Shared, herald_core::Clock::system()),
    )
    .await;
    let backends = match opened {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            r.problems.push(format!("connect: {e:#}"));
            return r;
        }
        Err(_) => {
            r.problems.push(format!("connect: storage ({}) / queue ({}) did not open within {TIMEOUT:?}", cfg.storage.backend, cfg.queue.backend));
            return r;
        }
    };
    let store = match cfg.storage.backend.as_str() {
        "cql" => format!("storage.cql ({})", cfg.storage.cql.contact_points.join(",")),
        _ => format!("storage ({})", herald_backends::db_path(&cfg.storage, &cfg.data_dir).display()),
    };
    match tokio::time::timeout(TIMEOUT, backends.config.tenants()).await {
        Ok(Ok(t)) => r.passed.push(format!("connect: {store} answers ({} tenant(s))", t.len())),
        Ok(Err(e)) => r.problems.push(format!("connect: {store}: {e}")),
        Err(_) => r.problems.push(format!("connect: {store}: no answer within {TIMEOUT:?}")),
    }
    let queue = match cfg.queue.backend.as_str() {
        "kafka" => format!("queue.kafka ({})", cfg.queue.kafka.brokers),
        _ => "queue (embedded)".to_string(),
    };
    match tokio::time::timeout(TIMEOUT, backends.queue.depth()).await {
        Ok(Ok(d)) => r.passed.push(format!("connect: {queue} answers (depth {d})")),
        Ok(Err(e)) => r.problems.push(format!("connect: {queue}: {e}")),
        Err(_) => r.problems.push(format!("connect: {queue}: no answer within {TIMEOUT:?}")),
    }
    r
}
