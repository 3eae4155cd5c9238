//! The HTTP edge's state, apart from the router and the process wiring.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::model::Tenant;
use herald_service::{Deps, Services};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::metrics::Metrics;

/// How long an API key lookup is cached.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);

/// What the HTTP edge holds: the configuration, the rules, and what only
/// the edge needs (API-key cache, idempotency serialisation, demo inbox).
pub struct App {
    pub cfg: Config,
    /// Backends, plugins, sealer and clock (the same handle the rules hold).
    pub deps: Deps,
    pub services: Arc<Services>,
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
    pub fn new(cfg: Config, services: Arc<Services>, metrics: Arc<Metrics>, demo: bool) -> App {
        App {
            cfg,
            deps: services.deps.clone(),
            services,
            metrics,
            demo_inbox: demo.then(|| Mutex::new(VecDeque::new())),
            auth_cache: Mutex::new(HashMap::new()),
            idempotency_inflight: Mutex::new(HashSet::new()),
            idempotency_released: tokio::sync::Notify::new(),
        }
    }

    pub async fn tenant_for_key(&self, key: &str) -> Result<Option<Tenant>, herald_core::StoreError> {
        let hash = key_hash(key);
        if let Some((t, at)) = self.auth_cache.lock().expect("auth cache").get(&hash)
            && at.elapsed() < AUTH_CACHE_TTL
        {
            return Ok(Some(t.clone()));
        }
        let tenant = self.deps.backends.config.tenant_by_api_key(&hash).await?;
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
