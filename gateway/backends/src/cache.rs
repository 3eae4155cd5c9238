//! A short-lived read cache in front of a remote config store, for the
//! lookups the gateway repeats for every message (its tenant, sender account,
//! template, price, billing settings). On CQL each is a network round trip
//! and a read on the server; a few hundred messages a second share the same
//! handful of rows.
//!
//! A change made elsewhere (the admin service, another gateway) is seen after
//! at most `ttl`; a write through this process clears the cache at once.
//! Documents are cached only for the kinds named in [`CACHED_DOC_KINDS`]:
//! the others (incidents, claims) are read-change-written and must be fresh.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_core::Millis;
use herald_core::doc_query::{DocPage, DocQuery};
use herald_core::model::{Account, Doc, Price, Template, Tenant};
use herald_core::seams::{ConfigStore, Result};

/// Document kinds read on every message and written rarely.
pub const CACHED_DOC_KINDS: &[&str] = &[herald_core::billing::BILLING];

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

type Entry = (Instant, Arc<dyn Any + Send + Sync>);

pub struct CachedConfig {
    inner: Arc<dyn ConfigStore>,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl CachedConfig {
    pub fn new(inner: Arc<dyn ConfigStore>, ttl: Duration) -> Self {
        Self { inner, ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The value under `key` if read less than `ttl` ago, else `load`'s.
    async fn read<T: Clone + Send + Sync + 'static>(&self, key: String, load: impl Future<Output = Result<T>>) -> Result<T> {
        let hit = {
            let entries = self.entries.lock().expect("config cache lock");
            entries.get(&key).filter(|(at, _)| at.elapsed() < self.ttl).and_then(|(_, v)| v.downcast_ref::<T>().cloned())
        };
        if let Some(v) = hit {
            return Ok(v);
        }
        let read_at = Instant::now();
        let v = load.await?;
        let mut entries = self.entries.lock().expect("config cache lock");
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        entries.insert(key, (read_at, Arc::new(v.clone())));
        Ok(v)
    }

    /// After a write through this process: nothing cached is trusted.
    fn written<T>(&self, result: Result<T>) -> Result<T> {
        self.entries.lock().expect("config cache lock").clear();
        result
    }

    /// Documents of kinds not cached (incidents, alerts) leave the cache be.
    fn doc_written<T>(&self, kind: &str, result: Result<T>) -> Result<T> {
        if CACHED_DOC_KINDS.contains(&kind) {
            return self.written(result);
        }
        result
    }
}

fn key(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

#[async_trait]
impl ConfigStore for CachedConfig {
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.read(key(&["tenant", id]), self.inner.tenant(id)).await
    }

    /// Never cached: dispatch reads the account a batch is sent with, and an
    /// edit made in the console (new credentials, a new URL) applies to the
    /// very next send. Only the lookups that decide what to accept are cached.
    async fn account(&self, tenant: &str, name: &str) -> Result<Option<Account>> {
        self.inner.account(tenant, name).await
    }

    async fn accounts(&self, tenant: &str) -> Result<Vec<Account>> {
        self.read(key(&["accounts", tenant]), self.inner.accounts(tenant)).await
    }

    async fn template(&self, tenant: &str, id: &str) -> Result<Option<Template>> {
        self.read(key(&["template", tenant, id]), self.inner.template(tenant, id)).await
    }

    async fn price(&self, tenant: &str, channel: &str) -> Result<Option<Price>> {
        self.read(key(&["price", tenant, channel]), self.inner.price(tenant, channel)).await
    }

    async fn doc(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Doc>> {
        if CACHED_DOC_KINDS.contains(&kind) {
            return self.read(key(&["doc", tenant, kind, id]), self.inner.doc(tenant, kind, id)).await;
        }
        self.inner.doc(tenant, kind, id).await
    }

    // Not cached: listed rarely, or (API keys) cached by the caller with its own revocation rules.
    async fn tenants(&self) -> Result<Vec<Tenant>> {
        self.inner.tenants().await
    }

    async fn tenant_by_api_key(&self, key_sha256: &str) -> Result<Option<Tenant>> {
        self.inner.tenant_by_api_key(key_sha256).await
    }

    async fn docs(&self, tenant: &str, kind: &str) -> Result<Vec<Doc>> {
        self.inner.docs(tenant, kind).await
    }

    async fn docs_page(&self, tenant: &str, kind: &str, query: &DocQuery) -> Result<DocPage> {
        self.inner.docs_page(tenant, kind, query).await
    }

    async fn upsert_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.written(self.inner.upsert_tenant(tenant).await)
    }

    async fn add_api_key(&self, tenant: &str, key_sha256: &str) -> Result<()> {
        self.written(self.inner.add_api_key(tenant, key_sha256).await)
    }

    async fn upsert_account(&self, account: &Account) -> Result<()> {
        self.written(self.inner.upsert_account(account).await)
    }

    async fn upsert_template(&self, template: &Template) -> Result<()> {
        self.written(self.inner.upsert_template(template).await)
    }

    async fn set_price(&self, tenant: &str, price: &Price) -> Result<()> {
        self.written(self.inner.set_price(tenant, price).await)
    }

    async fn remove_api_key(&self, tenant: &str, key_sha256: &str) -> Result<bool> {
        self.written(self.inner.remove_api_key(tenant, key_sha256).await)
    }

    async fn delete_account(&self, tenant: &str, name: &str) -> Result<bool> {
        self.written(self.inner.delete_account(tenant, name).await)
    }

    async fn put_doc(&self, doc: &Doc) -> Result<()> {
        self.doc_written(&doc.kind, self.inner.put_doc(doc).await)
    }

    async fn create_doc(&self, doc: &Doc) -> Result<bool> {
        self.doc_written(&doc.kind, self.inner.create_doc(doc).await)
    }

    async fn replace_doc(&self, doc: &Doc, expected: Millis) -> Result<bool> {
        self.doc_written(&doc.kind, self.inner.replace_doc(doc, expected).await)
    }

    async fn delete_doc(&self, tenant: &str, kind: &str, id: &str) -> Result<bool> {
        self.doc_written(kind, self.inner.delete_doc(tenant, kind, id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Arc<dyn ConfigStore>) {
        let dir = tempfile::tempdir().unwrap();
        let db = herald_sqlite::open(&dir.path().join("c.db")).unwrap();
        (dir, Arc::new(db))
    }

    fn price(unit_minor: i64) -> Price {
        Price { channel: "sms".into(), unit_minor, currency: "CNY".into() }
    }

    #[tokio::test]
    async fn another_writer_is_seen_after_the_ttl_and_own_writes_at_once() {
        let (_dir, direct) = store().await;
        let cached = CachedConfig::new(direct.clone(), Duration::from_millis(300));
        direct.set_price("t", &price(5)).await.unwrap();
        assert_eq!(cached.price("t", "sms").await.unwrap(), Some(price(5)));
        // Another process (the admin) changes it: the cached value holds until the TTL.
        direct.set_price("t", &price(7)).await.unwrap();
        assert_eq!(cached.price("t", "sms").await.unwrap(), Some(price(5)), "within the ttl");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(cached.price("t", "sms").await.unwrap(), Some(price(7)), "after the ttl");
        // A write through the cache is read back at once.
        cached.set_price("t", &price(9)).await.unwrap();
        assert_eq!(cached.price("t", "sms").await.unwrap(), Some(price(9)));
        // Absence is cached too, and keys do not collide across tenants or channels.
        assert_eq!(cached.price("u", "sms").await.unwrap(), None);
        assert_eq!(cached.price("t", "voice").await.unwrap(), None);
    }

    #[tokio::test]
    async fn only_the_named_document_kinds_are_cached() {
        let (_dir, direct) = store().await;
        let cached = CachedConfig::new(direct.clone(), Duration::from_secs(60));
        let doc =
            |kind: &str, n: i64| Doc { tenant: "t".into(), kind: kind.into(), id: "x".into(), body: serde_json::json!({"n": n}), updated_at: n };
        for kind in [herald_core::billing::BILLING, "incident"] {
            direct.put_doc(&doc(kind, 1)).await.unwrap();
            assert_eq!(cached.doc("t", kind, "x").await.unwrap(), Some(doc(kind, 1)));
            direct.put_doc(&doc(kind, 2)).await.unwrap();
        }
        assert_eq!(
            cached.doc("t", herald_core::billing::BILLING, "x").await.unwrap(),
            Some(doc(herald_core::billing::BILLING, 1)),
            "billing: cached"
        );
        assert_eq!(cached.doc("t", "incident", "x").await.unwrap(), Some(doc("incident", 2)), "incidents: always fresh");
    }
}
