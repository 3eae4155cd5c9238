//! Tenants, API keys, sender accounts, templates and prices.

use async_trait::async_trait;
use herald_core::doc_query::{DocFilter, DocPage, DocQuery, json_path};
use herald_core::model::{Account, Content, Doc, Price, Template, Tenant};
use herald_core::seams::{ConfigStore, Result};
use herald_core::{Millis, StoreError};
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use crate::db::{Db, backend};

fn tenant_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant { id: r.get(0)?, name: r.get(1)?, currency: r.get(2)? })
}

fn account_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, Option<u32>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_account((tenant, name, plugin, config, rate_per_sec): (String, String, String, String, Option<u32>)) -> Result<Account> {
    let config = serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("account {tenant}/{name}: {e}")))?;
    Ok(Account { tenant, name, plugin, config, rate_per_sec })
}

#[async_trait]
impl ConfigStore for Db {
    async fn upsert_tenant(&self, t: &Tenant) -> Result<()> {
        let t = t.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO tenants (id, name, currency) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, currency = excluded.currency",
                params![t.id, t.name, t.currency],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let id = id.to_string();
        self.read(move |c| c.query_row("SELECT id, name, currency FROM tenants WHERE id = ?1", [id], tenant_row).optional().map_err(backend)).await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT id, name, currency FROM tenants ORDER BY id").map_err(backend)?;
            st.query_map([], tenant_row).map_err(backend)?.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn add_api_key(&self, tenant: &str, key_sha256: &str) -> Result<()> {
        let (t, k) = (tenant.to_string(), key_sha256.to_string());
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_keys (key_sha256, tenant) VALUES (?1, ?2) ON CONFLICT (key_sha256) DO UPDATE SET tenant = excluded.tenant",
                params![k, t],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn tenant_by_api_key(&self, key_sha256: &str) -> Result<Option<Tenant>> {
        let k = key_sha256.to_string();
        self.read(move |c| {
            c.query_row("SELECT t.id, t.name, t.currency FROM api_keys k JOIN tenants t ON t.id = k.tenant WHERE k.key_sha256 = ?1", [k], tenant_row)
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn upsert_account(&self, a: &Account) -> Result<()> {
        let a = a.clone();
        let config = serde_json::to_string(&a.config).map_err(backend)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO accounts (tenant, name, plugin, config, rate_per_sec) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, name) DO UPDATE SET plugin = excluded.plugin, config = excluded.config,
                     rate_per_sec = excluded.rate_per_sec",
                params![a.tenant, a.name, a.plugin, config, a.rate_per_sec],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn account(&self, tenant: &str, name: &str) -> Result<Option<Account>> {
        let (t, n) = (tenant.to_string(), name.to_string());
        self.read(move |c| {
            c.query_row("SELECT tenant, name, plugin, config, rate_per_sec FROM accounts WHERE tenant = ?1 AND name = ?2", params![t, n], account_row)
                .optional()
                .map_err(backend)?
                .map(to_account)
                .transpose()
        })
        .await
    }

    async fn accounts(&self, tenant: &str) -> Result<Vec<Account>> {
        let t = tenant.to_string();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT tenant, name, plugin, config, rate_per_sec FROM accounts WHERE tenant = ?1 ORDER BY name")
                .map_err(backend)?;
            st.query_map([t], account_row).map_err(backend)?.map(|r| r.map_err(backend).and_then(to_account)).collect()
        })
        .await
    }

    async fn upsert_template(&self, t: &Template) -> Result<()> {
        let t = t.clone();
        let content = serde_json::to_string(&t.content).map_err(backend)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO templates (tenant, id, content) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, id) DO UPDATE SET content = excluded.content",
                params![t.tenant, t.id, content],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn template(&self, tenant: &str, id: &str) -> Result<Option<Template>> {
        let (t, i) = (tenant.to_string(), id.to_string());
        self.read(move |c| {
            let content: Option<String> = c
                .query_row("SELECT content FROM templates WHERE tenant = ?1 AND id = ?2", params![t, i], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            content
                .map(|s| {
                    serde_json::from_str::<Content>(&s)
                        .map(|content| Template { tenant: t.clone(), id: i.clone(), content })
                        .map_err(|e| StoreError::Corrupt(format!("template {t}/{i}: {e}")))
                })
                .transpose()
        })
        .await
    }

    async fn price(&self, tenant: &str, channel: &str) -> Result<Option<Price>> {
        let (t, ch) = (tenant.to_string(), channel.to_string());
        self.read(move |c| {
            c.query_row(
                "SELECT channel, unit_minor, currency FROM prices WHERE channel = ?2 AND tenant IN (?1, '*')
                 ORDER BY tenant = '*' LIMIT 1",
                params![t, ch],
                |r| Ok(Price { channel: r.get(0)?, unit_minor: r.get(1)?, currency: r.get(2)? }),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn set_price(&self, tenant: &str, p: &Price) -> Result<()> {
        if p.unit_minor < 0 {
            return Err(StoreError::Backend(format!("price for {}: negative", p.channel)));
        }
        let (t, p) = (tenant.to_string(), p.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO prices (tenant, channel, unit_minor, currency) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, channel) DO UPDATE SET unit_minor = excluded.unit_minor, currency = excluded.currency",
                params![t, p.channel, p.unit_minor, p.currency],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn remove_api_key(&self, tenant: &str, key_sha256: &str) -> Result<bool> {
        let (t, k) = (tenant.to_string(), key_sha256.to_string());
        self.write(move |c| c.execute("DELETE FROM api_keys WHERE key_sha256 = ?1 AND tenant = ?2", params![k, t]).map(|n| n > 0).map_err(backend))
            .await
    }

    async fn delete_account(&self, tenant: &str, name: &str) -> Result<bool> {
        let (t, n) = (tenant.to_string(), name.to_string());
        self.write(move |c| c.execute("DELETE FROM accounts WHERE tenant = ?1 AND name = ?2", params![t, n]).map(|n| n > 0).map_err(backend)).await
    }

    async fn put_doc(&self, d: &Doc) -> Result<()> {
        self.write_doc(d, "INSERT OR REPLACE").await.map(|_| ())
    }

    async fn create_doc(&self, d: &Doc) -> Result<bool> {
        self.write_doc(d, "INSERT OR IGNORE").await
    }

    async fn replace_doc(&self, d: &Doc, expected: Millis) -> Result<bool> {
        let body = serde_json::to_string(&d.body).map_err(backend)?;
        let d = Doc { body: serde_json::Value::Null, ..d.clone() };
        self.write(move |c| {
            c.execute(
                "UPDATE docs SET body = ?4, updated_at = ?5 WHERE tenant = ?1 AND kind = ?2 AND id = ?3 AND updated_at = ?6",
                params![d.tenant, d.kind, d.id, body, d.updated_at, expected],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }

    async fn doc(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Doc>> {
        let (t, k, i) = (tenant.to_string(), kind.to_string(), id.to_string());
        self.read(move |c| {
            c.query_row("SELECT tenant, kind, id, body, updated_at FROM docs WHERE tenant = ?1 AND kind = ?2 AND id = ?3", params![t, k, i], doc_row)
                .optional()
                .map_err(backend)
        })
        .await?
        .map(to_doc)
        .transpose()
    }

    async fn docs(&self, tenant: &str, kind: &str) -> Result<Vec<Doc>> {
        let (t, k) = (tenant.to_string(), kind.to_string());
        let rows = self
            .read(move |c| {
                let mut st = c
                    .prepare_cached("SELECT tenant, kind, id, body, updated_at FROM docs WHERE tenant = ?1 AND kind = ?2 ORDER BY id")
                    .map_err(backend)?;
                st.query_map(params![t, k], doc_row).map_err(backend)?.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
            })
            .await?;
        rows.into_iter().map(to_doc).collect()
    }

    async fn docs_page(&self, tenant: &str, kind: &str, query: &DocQuery) -> Result<DocPage> {
        query.check()?;
        let (filter, mut args) = doc_filter(query);
        let mut head: Vec<SqlValue> = vec![SqlValue::Text(tenant.into()), SqlValue::Text(kind.into())];
        head.append(&mut args);
        let dir = if query.descending { "DESC" } else { "ASC" };
        // Paths are checked (`[a-z0-9_.]`), so they are written into the SQL
        // as literals: `json_extract(body, '$.number')` then matches the
        // expression indexes of the migration that added them.
        // Text orders by `herald_core::collate` (Chinese by pinyin). The
        // generated codes and times (`number`, `created_at`: ASCII, where
        // that order is exactly NOCASE) keep NOCASE, so their expression
        // indexes still read the page without sorting the kind.
        let order = match &query.sort {
            Some(f) => {
                let collation = if INDEXED_ASCII.contains(&f.as_str()) { "NOCASE" } else { herald_core::collate::COLLATION };
                format!("json_extract(body, '{}') COLLATE {collation} {dir}, id ASC", json_path(f))
            }
            None => format!("id {dir}"),
        };
        let count_sql = format!("SELECT COUNT(*) FROM docs WHERE tenant = ?1 AND kind = ?2{filter}");
        let page_sql =
            format!("SELECT tenant, kind, id, body, updated_at FROM docs WHERE tenant = ?1 AND kind = ?2{filter} ORDER BY {order} LIMIT ? OFFSET ?");
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let (rows, total) = self
            .read(move |c| {
                // One snapshot for the count and the page.
                let tx = c.unchecked_transaction().map_err(backend)?;
                let total: i64 = tx.query_row(&count_sql, params_from_iter(head.iter()), |r| r.get(0)).map_err(backend)?;
                head.push(SqlValue::Integer(limit));
                head.push(SqlValue::Integer(offset));
                let mut st = tx.prepare(&page_sql).map_err(backend)?;
                let rows =
                    st.query_map(params_from_iter(head.iter()), doc_row).map_err(backend)?.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)?;
                Ok((rows, total))
            })
            .await?;
        Ok(DocPage { docs: rows.into_iter().map(to_doc).collect::<Result<_>>()?, total: u64::try_from(total).unwrap_or(0) })
    }

    async fn delete_doc(&self, tenant: &str, kind: &str, id: &str) -> Result<bool> {
        let (t, k, i) = (tenant.to_string(), kind.to_string(), id.to_string());
        self.write(move |c| {
            c.execute("DELETE FROM docs WHERE tenant = ?1 AND kind = ?2 AND id = ?3", params![t, k, i]).map(|n| n > 0).map_err(backend)
        })
        .await
    }
}

/// Fields with a NOCASE expression index whose values are ASCII (generated
/// numbers, times): sorted with NOCASE, the same order as the text collation.
const INDEXED_ASCII: &[&str] = &["number", "created_at"];

/// ` AND …` for each filter, and its arguments (after tenant and kind).
fn doc_filter(query: &DocQuery) -> (String, Vec<SqlValue>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    let at = |f: &str| format!("json_extract(body, '{}')", json_path(f));
    for f in &query.filters {
        match f {
            DocFilter::Contains { fields, text } => {
                let any: Vec<String> = fields.iter().map(|f| format!("instr(lower(CAST({} AS TEXT)), ?{})", at(f), args.len() + 3)).collect();
                sql += &format!(" AND ({})", any.iter().map(|a| format!("{a} > 0")).collect::<Vec<_>>().join(" OR "));
                args.push(SqlValue::Text(text.to_ascii_lowercase()));
            }
            DocFilter::In { field, values } => {
                sql += &format!(" AND {} IN (SELECT value FROM json_each(?{}))", at(field), args.len() + 3);
                args.push(SqlValue::Text(serde_json::Value::Array(values.clone()).to_string()));
            }
            DocFilter::Null { field, null } => {
                sql += &format!(" AND {} IS {}NULL", at(field), if *null { "" } else { "NOT " });
            }
        }
    }
    (sql, args)
}

type DocRow = (String, String, String, String, i64);

fn doc_row(r: &Row<'_>) -> rusqlite::Result<DocRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_doc((tenant, kind, id, body, updated_at): DocRow) -> Result<Doc> {
    let body = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("doc {tenant}/{kind}/{id}: {e}")))?;
    Ok(Doc { tenant, kind, id, body, updated_at })
}

impl Db {
    /// `verb` is "INSERT OR REPLACE" or "INSERT OR IGNORE"; true when a row was written.
    async fn write_doc(&self, d: &Doc, verb: &'static str) -> Result<bool> {
        let body = serde_json::to_string(&d.body).map_err(backend)?;
        let d = Doc { body: serde_json::Value::Null, ..d.clone() };
        self.write(move |c| {
            c.execute(
                &format!("{verb} INTO docs (tenant, kind, id, body, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![d.tenant, d.kind, d.id, body, d.updated_at],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }
}
