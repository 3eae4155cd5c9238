//! What the gateway and the admin service share to reach the same data: the
//! storage and queue settings, opening those backends, and the key that seals
//! sender-account secrets at rest.

mod cache;
mod config_error;
pub use config_error::config_error;
pub mod guard;
mod secrets;
#[cfg(test)]
mod security_tests;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use herald_core::seams::{ConfigStore, Queue, Schedules, Store};
use serde::{Deserialize, Serialize};

pub use guard::Guard;
pub use herald_kafka::{Secret, resolve_secret};
pub use secrets::{SealError, Sealer, expand_secret_paths, field_mut};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// "sqlite" (embedded, the default) or "cql" (ScyllaDB / Cassandra).
    pub backend: String,
    /// SQLite file; default `<data_dir>/herald.db`.
    pub path: Option<PathBuf>,
    /// How long the gateway keeps the config it reads for every message
    /// (tenant, sender accounts, templates, prices, billing settings) before
    /// reading it again; a change made in the console (another process)
    /// reaches a running gateway within this time, a change made through the
    /// gateway at once. 0 reads every time.
    pub config_cache_ms: u64,
    pub cql: CqlConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { backend: "sqlite".into(), path: None, config_cache_ms: 1000, cql: CqlConfig::default() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CqlConfig {
    /// `host:port` of ScyllaDB / Cassandra nodes.
    pub contact_points: Vec<String>,
    pub keyspace: String,
    /// Replication used when Herald creates the keyspace.
    pub replication: String,
    /// The same as `storage.config_cache_ms`, for CQL only (the older
    /// place of the setting); when set it wins there.
    pub config_cache_ms: Option<u64>,
    /// Login for servers with `PasswordAuthenticator` (with `password`).
    pub username: Option<String>,
    /// Never logged. Or `password_file`, or `HERALD_STORAGE__CQL__PASSWORD`.
    pub password: Option<Secret>,
    /// A file holding the password (one trailing line break is dropped).
    pub password_file: Option<PathBuf>,
    /// Client TLS: `tls = { ca_file = "ca.pem" }`, optionally `cert_file` and
    /// `key_file` (a client certificate) and `verify_hostname` (default true).
    pub tls: Option<CqlTls>,
}

/// `[storage.cql.tls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CqlTls {
    /// PEM file of the CA(s) that signed the nodes' certificates.
    pub ca_file: PathBuf,
    /// Client certificate (PEM), for nodes that require one.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM, unencrypted).
    pub key_file: Option<PathBuf>,
    /// Check that a node's certificate names the address it is reached at
    /// (its IP address: the driver connects to the addresses the cluster
    /// reports). Default true.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

impl CqlConfig {
    /// The login, with the password read (from its file too); errors name the setting.
    fn credentials(&self) -> Result<Option<herald_cql::Credentials>, String> {
        let password = resolve_secret("storage.cql.password", self.password.as_ref(), self.password_file.as_deref())?;
        match (&self.username, password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(herald_cql::Credentials { username: u.clone(), password: p.expose().to_string() })),
            (Some(_), Some(_)) => Err("storage.cql.username: must not be empty".into()),
            (Some(_), None) => Err("storage.cql.password: required with username (or password_file, or HERALD_STORAGE__CQL__PASSWORD)".into()),
            (None, Some(_)) => Err("storage.cql.username: required with password".into()),
            (None, None) => Ok(None),
        }
    }

    fn tls(&self) -> Option<herald_cql::Tls> {
        self.tls.as_ref().map(|t| herald_cql::Tls {
            ca_file: t.ca_file.clone(),
            cert_file: t.cert_file.clone(),
            key_file: t.key_file.clone(),
            verify_hostname: t.verify_hostname,
        })
    }

    /// Credentials and TLS files checked at start; errors name the setting.
    pub fn validate(&self) -> Result<(), String> {
        self.credentials()?;
        if let Some(t) = self.tls() {
            t.client_config()?;
        }
        Ok(())
    }
}

impl Default for CqlConfig {
    fn default() -> Self {
        Self {
            contact_points: vec!["127.0.0.1:9042".into()],
            keyspace: "herald".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            config_cache_ms: None,
            username: None,
            password: None,
            password_file: None,
            tls: None,
        }
    }
}

/// The ingest log: the embedded queue in the SQLite file, or Kafka.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// "sqlite" (embedded, the default) or "kafka".
    pub backend: String,
    pub kafka: herald_kafka::KafkaConfig,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { backend: "sqlite".into(), kafka: herald_kafka::KafkaConfig::default() }
    }
}

/// Check the backend names and their combination; errors name the field.
pub fn check(storage: &StorageConfig, queue: &QueueConfig) -> Result<(), String> {
    if !["sqlite", "cql"].contains(&storage.backend.as_str()) {
        return Err(format!("storage.backend: unknown backend {:?} (supported: \"sqlite\", \"cql\")", storage.backend));
    }
    if !["sqlite", "kafka"].contains(&queue.backend.as_str()) {
        return Err(format!("queue.backend: unknown backend {:?} (supported: \"sqlite\", \"kafka\")", queue.backend));
    }
    if storage.backend == "cql" && queue.backend == "sqlite" {
        return Err("queue.backend: the embedded queue lives in the SQLite file; with storage.backend = \"cql\" use queue.backend = \"kafka\"".into());
    }
    if storage.backend == "cql" {
        storage.cql.validate()?;
    }
    if queue.backend == "kafka" {
        herald_kafka::validate(&queue.kafka)?;
    }
    Ok(())
}

/// The SQLite file for these settings.
pub fn db_path(storage: &StorageConfig, data_dir: &Path) -> PathBuf {
    storage.path.clone().unwrap_or_else(|| data_dir.join("herald.db"))
}

/// Who opens the embedded database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The gateway: takes the file's lock (one dispatcher owns the embedded
    /// queue); on CQL it caches the config it reads per message.
    Owner,
    /// The admin service: shares the file with its owner (SQLite WAL, busy timeout).
    Shared,
}

#[derive(Clone)]
pub struct Backends {
    pub queue: Arc<dyn Queue>,
    pub store: Arc<dyn Store>,
    pub config: Arc<dyn ConfigStore>,
    /// Held for the life of the process by the embedded database's owner.
    _lock: Option<Arc<std::fs::File>>,
}

/// The gateway (the owner) caches the config it reads for every message; the
/// admin service, which edits it, reads it fresh.
fn cached(role: Role, ms: u64, config: Arc<dyn ConfigStore>) -> Arc<dyn ConfigStore> {
    match role {
        Role::Owner if ms > 0 => Arc::new(cache::CachedConfig::new(config, std::time::Duration::from_millis(ms))),
        _ => config,
    }
}

/// Open the configured queue and stores.
///
/// `clock` decides when queued work is due.
pub async fn open(storage: &StorageConfig, queue: &QueueConfig, data_dir: &Path, role: Role, clock: herald_core::Clock) -> anyhow::Result<Backends> {
    let mut lock = None;
    let mut db = None;
    if storage.backend == "sqlite" || queue.backend == "sqlite" {
        let path = db_path(storage, data_dir);
        if role == Role::Owner {
            lock = Some(Arc::new(lock_file(&path)?));
        }
        let opened = herald_sqlite::open(&path).map_err(|e| anyhow::anyhow!("storage ({}): {e}", path.display()))?;
        if clock.is_tokio() {
            opened.hold_paused_clock();
        }
        db = Some(opened);
    }
    // The CQL store also keeps the Kafka queue's long delays (time buckets).
    type Stores = (Arc<dyn Store>, Arc<dyn ConfigStore>, Option<Arc<dyn Schedules>>);
    let (store, config, schedules): Stores = match storage.backend.as_str() {
        "cql" => {
            let c = &storage.cql;
            let options = herald_cql::Options { credentials: c.credentials().map_err(anyhow::Error::msg)?, tls: c.tls(), ..Default::default() };
            let cql = Arc::new(
                herald_cql::open_with(&c.contact_points, &c.keyspace, &c.replication, options)
                    .await
                    .map_err(|e| anyhow::anyhow!("storage.cql ({}): {e}", c.contact_points.join(",")))?,
            );
            let config = cached(role, c.config_cache_ms.unwrap_or(storage.config_cache_ms), cql.clone());
            (cql.clone(), config, Some(cql))
        }
        _ => {
            let db = db.clone().expect("opened above");
            let config = cached(role, storage.config_cache_ms, Arc::new(db.clone()));
            (Arc::new(db), config, None)
        }
    };
    let embedded_store = storage.backend != "cql";
    let q: Arc<dyn Queue> = match queue.backend.as_str() {
        "kafka" => {
            let k = herald_kafka::KafkaQueue::connect(queue.kafka.clone())
                .await
                .map_err(|e| anyhow::anyhow!("queue.kafka ({}): {e}", queue.kafka.brokers))?;
            let k = k.with_clock(clock);
            Arc::new(match schedules {
                Some(s) => k.with_schedules(s),
                None => k,
            })
        }
        _ => {
            let q = herald_sqlite::SqliteQueue::new(db.expect("opened above"), clock);
            // Both embedded: a message's rows and its work item in one write.
            Arc::new(if embedded_store { q.beside_store() } else { q })
        }
    };
    Ok(Backends { queue: q, store, config, _lock: lock })
}

fn lock_file(db: &Path) -> anyhow::Result<std::fs::File> {
    let path = db.with_extension("lock");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    file.try_lock().map_err(|_| anyhow::anyhow!("{} is in use by another herald-gateway (lock {})", db.display(), path.display()))?;
    Ok(file)
}
