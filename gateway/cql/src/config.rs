//! `ConfigStore`: tenants, API keys, sender accounts, templates and prices.
//! Small and read-mostly (the gateway caches it); every write is an upsert.

use async_trait::async_trait;
use herald_core::doc_query::{DocPage, DocQuery};
use herald_core::model::{Account, Content, Doc, Price, Template, Tenant};
use herald_core::seams::{ConfigStore, Result};
use herald_core::{Millis, StoreError};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::{CqlStore, Profiles, prepare, to_i32};

pub(crate) struct Statements {
    tenant_upsert: PreparedStatement,
    tenant_select: PreparedStatement,
    tenants_select: PreparedStatement,
    api_key_upsert: PreparedStatement,
    api_key_select: PreparedStatement,
    account_upsert: PreparedStatement,
    account_select: PreparedStatement,
    accounts_select: PreparedStatement,
    template_upsert: PreparedStatement,
    template_select: PreparedStatement,
    price_upsert: PreparedStatement,
    price_select: PreparedStatement,
    api_key_delete: PreparedStatement,
    account_delete: PreparedStatement,
    doc_upsert: PreparedStatement,
    doc_create: PreparedStatement,
    doc_replace: PreparedStatement,
    doc_select: PreparedStatement,
    docs_select: PreparedStatement,
    doc_delete: PreparedStatement,
}

impl Statements {
    pub(crate) async fn prepare(s: &Session, ks: &str, p: &Profiles) -> Result<Self> {
        let (w, r) = (&p.write, &p.read);
        Ok(Self {
            tenant_upsert: prepare(s, ks, "INSERT INTO {ks}.tenants (id, name, currency) VALUES (?, ?, ?)", w, true).await?,
            tenant_select: prepare(s, ks, "SELECT id, name, currency FROM {ks}.tenants WHERE id = ?", r, true).await?,
            tenants_select: prepare(s, ks, "SELECT id, name, currency FROM {ks}.tenants", r, true).await?,
            api_key_upsert: prepare(s, ks, "INSERT INTO {ks}.api_keys (key_sha256, tenant) VALUES (?, ?)", w, true).await?,
            api_key_select: prepare(s, ks, "SELECT tenant FROM {ks}.api_keys WHERE key_sha256 = ?", r, true).await?,
            // Nulls here are deliberate: an upsert replaces the whole account.
            account_upsert: prepare(s, ks, "INSERT INTO {ks}.accounts (tenant, name, plugin, config, rate_per_sec) VALUES (?, ?, ?, ?, ?)", w, true)
                .await?,
            account_select: prepare(
                s,
                ks,
                "SELECT tenant, name, plugin, config, rate_per_sec FROM {ks}.accounts WHERE tenant = ? AND name = ?",
                r,
                true,
            )
            .await?,
            accounts_select: prepare(s, ks, "SELECT tenant, name, plugin, config, rate_per_sec FROM {ks}.accounts WHERE tenant = ?", r, true).await?,
            template_upsert: prepare(s, ks, "INSERT INTO {ks}.templates (tenant, id, subject, body_text, body_html) VALUES (?, ?, ?, ?, ?)", w, true)
                .await?,
            template_select: prepare(s, ks, "SELECT subject, body_text, body_html FROM {ks}.templates WHERE tenant = ? AND id = ?", r, true).await?,
            price_upsert: prepare(s, ks, "INSERT INTO {ks}.prices (tenant, channel, unit_minor, currency) VALUES (?, ?, ?, ?)", w, true).await?,
            price_select: prepare(s, ks, "SELECT channel, unit_minor, currency FROM {ks}.prices WHERE tenant = ? AND channel = ?", r, true).await?,
            // Lightweight transactions: deletes report whether a row existed,
            // and a create claims an id once across all gateways and admins.
            api_key_delete: prepare(s, ks, "DELETE FROM {ks}.api_keys WHERE key_sha256 = ? IF tenant = ?", w, false).await?,
            account_delete: prepare(s, ks, "DELETE FROM {ks}.accounts WHERE tenant = ? AND name = ? IF EXISTS", w, false).await?,
            doc_upsert: prepare(s, ks, "INSERT INTO {ks}.docs (tenant, kind, id, body, updated_at) VALUES (?, ?, ?, ?, ?)", w, true).await?,
            doc_create: prepare(s, ks, "INSERT INTO {ks}.docs (tenant, kind, id, body, updated_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS", w, false)
                .await?,
            doc_replace: prepare(
                s,
                ks,
                "UPDATE {ks}.docs SET body = ?, updated_at = ? WHERE tenant = ? AND kind = ? AND id = ? IF updated_at = ?",
                w,
                false,
            )
            .await?,
            doc_select: prepare(s, ks, "SELECT tenant, kind, id, body, updated_at FROM {ks}.docs WHERE tenant = ? AND kind = ? AND id = ?", r, true)
                .await?,
            // Paged by the driver (`DOCS_PAGE_ROWS` a page): a kind's
            // partition can outgrow one page, and is never held whole.
            docs_select: {
                let mut st =
                    prepare(s, ks, "SELECT tenant, kind, id, body, updated_at FROM {ks}.docs WHERE tenant = ? AND kind = ?", &p.console, true)
                        .await?;
                st.set_page_size(DOCS_PAGE_ROWS);
                st
            },
            doc_delete: prepare(s, ks, "DELETE FROM {ks}.docs WHERE tenant = ? AND kind = ? AND id = ? IF EXISTS", w, false).await?,
        })
    }
}

type DocRow = (String, String, String, String, i64);

/// Rows per driver page when a kind's documents are streamed (`docs_page`).
pub(crate) const DOCS_PAGE_ROWS: i32 = 500;

fn to_doc((tenant, kind, id, body, updated_at): DocRow) -> Result<Doc> {
    let body = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("doc {tenant}/{kind}/{id}: {e}")))?;
    Ok(Doc { tenant, kind, id, body, updated_at })
}

fn doc_values(d: &Doc) -> Result<(&str, &str, &str, String, i64)> {
    let body = serde_json::to_string(&d.body).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok((&d.tenant, &d.kind, &d.id, body, d.updated_at))
}

type AccountRow = (String, String, String, String, Option<i32>);

fn to_account((tenant, name, plugin, config, rate): AccountRow) -> Result<Account> {
    let config = serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("account {tenant}/{name}: {e}")))?;
    let rate_per_sec = rate.map(u32::try_from).transpose().map_err(|_| StoreError::Corrupt(format!("account {tenant}/{name}: negative rate")))?;
    Ok(Account { tenant, name, plugin, config, rate_per_sec })
}

fn to_tenant((id, name, currency): (String, String, String)) -> Tenant {
    Tenant { id, name, currency }
}

impl CqlStore {
    async fn price_row(&self, tenant: &str, channel: &str) -> Result<Option<Price>> {
        Ok(self.read_one::<(String, i64, String)>(&self.cfg.price_select, (tenant, channel)).await?.map(|(channel, unit_minor, currency)| Price {
            channel,
            unit_minor,
            currency,
        }))
    }
}

#[async_trait]
impl ConfigStore for CqlStore {
    async fn upsert_tenant(&self, t: &Tenant) -> Result<()> {
        self.exec(&self.cfg.tenant_upsert, (&t.id, &t.name, &t.currency)).await.map(|_| ())
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        Ok(self.read_one(&self.cfg.tenant_select, (id,)).await?.map(to_tenant))
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        let mut all: Vec<Tenant> =
            self.read_all::<(String, String, String)>(&self.cfg.tenants_select, ()).await?.into_iter().map(to_tenant).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    async fn add_api_key(&self, tenant: &str, key_sha256: &str) -> Result<()> {
        self.exec(&self.cfg.api_key_upsert, (key_sha256, tenant)).await.map(|_| ())
    }

    async fn tenant_by_api_key(&self, key_sha256: &str) -> Result<Option<Tenant>> {
        match self.read_one::<(String,)>(&self.cfg.api_key_select, (key_sha256,)).await? {
            Some((tenant,)) => self.tenant(&tenant).await,
            None => Ok(None),
        }
    }

    async fn upsert_account(&self, a: &Account) -> Result<()> {
        let config = serde_json::to_string(&a.config).map_err(|e| StoreError::Backend(e.to_string()))?;
        let rate = a.rate_per_sec.map(|r| to_i32("rate_per_sec", r)).transpose()?;
        self.exec(&self.cfg.account_upsert, (&a.tenant, &a.name, &a.plugin, config, rate)).await.map(|_| ())
    }

    async fn account(&self, tenant: &str, name: &str) -> Result<Option<Account>> {
        self.read_one::<AccountRow>(&self.cfg.account_select, (tenant, name)).await?.map(to_account).transpose()
    }

    async fn accounts(&self, tenant: &str) -> Result<Vec<Account>> {
        // Clustered by name: already in the order SQLite gives.
        self.read_all::<AccountRow>(&self.cfg.accounts_select, (tenant,)).await?.into_iter().map(to_account).collect()
    }

    async fn upsert_template(&self, t: &Template) -> Result<()> {
        let c = &t.content;
        self.exec(&self.cfg.template_upsert, (&t.tenant, &t.id, &c.subject, &c.text, &c.html)).await.map(|_| ())
    }

    async fn template(&self, tenant: &str, id: &str) -> Result<Option<Template>> {
        Ok(self
            .read_one::<(Option<String>, Option<String>, Option<String>)>(&self.cfg.template_select, (tenant, id))
            .await?
            .map(|(subject, text, html)| Template { tenant: tenant.to_string(), id: id.to_string(), content: Content { subject, text, html } }))
    }

    async fn price(&self, tenant: &str, channel: &str) -> Result<Option<Price>> {
        if tenant == "*" {
            return self.price_row("*", channel).await;
        }
        // Both rows at once: one round trip whether or not there is an override.
        let (own, default) = futures::try_join!(self.price_row(tenant, channel), self.price_row("*", channel))?;
        Ok(own.or(default))
    }

    async fn set_price(&self, tenant: &str, p: &Price) -> Result<()> {
        if p.unit_minor < 0 {
            return Err(StoreError::Backend(format!("price for {}: negative", p.channel)));
        }
        self.exec(&self.cfg.price_upsert, (tenant, &p.channel, p.unit_minor, &p.currency)).await.map(|_| ())
    }

    async fn remove_api_key(&self, tenant: &str, key_sha256: &str) -> Result<bool> {
        let res = self.exec(&self.cfg.api_key_delete, (key_sha256, tenant)).await?;
        crate::schema::lwt_applied(res)
    }

    async fn delete_account(&self, tenant: &str, name: &str) -> Result<bool> {
        let res = self.exec(&self.cfg.account_delete, (tenant, name)).await?;
        crate::schema::lwt_applied(res)
    }

    async fn put_doc(&self, d: &Doc) -> Result<()> {
        self.exec(&self.cfg.doc_upsert, doc_values(d)?).await.map(|_| ())
    }

    async fn create_doc(&self, d: &Doc) -> Result<bool> {
        let res = self.exec(&self.cfg.doc_create, doc_values(d)?).await?;
        crate::schema::lwt_applied(res)
    }

    async fn replace_doc(&self, d: &Doc, expected: Millis) -> Result<bool> {
        let (tenant, kind, id, body, at) = doc_values(d)?;
        let res = self.exec(&self.cfg.doc_replace, (body, at, tenant, kind, id, expected)).await?;
        crate::schema::lwt_applied(res)
    }

    async fn doc(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Doc>> {
        self.read_one::<DocRow>(&self.cfg.doc_select, (tenant, kind, id)).await?.map(to_doc).transpose()
    }

    async fn docs(&self, tenant: &str, kind: &str) -> Result<Vec<Doc>> {
        // Clustered by id: already in the order SQLite gives.
        self.read_all::<DocRow>(&self.cfg.docs_select, (tenant, kind)).await?.into_iter().map(to_doc).collect()
    }

    /// CQL has no OFFSET, no ORDER BY on a body field and no filter inside
    /// JSON text, so the trade-off is: the (tenant, kind) partition is
    /// streamed with the driver's paging ([`DOCS_PAGE_ROWS`] rows a page),
    /// each document is filtered here and only the `offset + limit` first
    /// in the asked order are kept, in a bounded max-heap
    /// (`herald_core::doc_query::TopK`). The cost of one page:
    /// - reads: the whole partition (every document of the kind: one
    ///   tenant's users, pushes, … — thousands, not millions), as the total
    ///   needs anyway; `LOCAL_ONE`, one round trip per driver page;
    /// - memory: one driver page plus `offset + limit` documents (the admin
    ///   caps `limit` at 200; a deep `offset` costs its depth), never the
    ///   partition;
    /// - CPU: O(n log(offset + limit)) comparisons (text by
    ///   `herald_core::collate`).
    ///
    /// The rules are the ones SQLite runs (`herald_core::doc_query`).
    async fn docs_page(&self, tenant: &str, kind: &str, query: &DocQuery) -> Result<DocPage> {
        query.check()?;
        let mut window = query.window();
        self.read_each::<DocRow>(&self.cfg.docs_select, (tenant, kind), |row| {
            window.push(to_doc(row)?);
            Ok(())
        })
        .await?;
        Ok(window.finish())
    }

    async fn delete_doc(&self, tenant: &str, kind: &str, id: &str) -> Result<bool> {
        let res = self.exec(&self.cfg.doc_delete, (tenant, kind, id)).await?;
        crate::schema::lwt_applied(res)
    }
}
