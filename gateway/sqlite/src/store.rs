//! Messages, deliveries, ledger and idempotency keys.

use async_trait::async_trait;
use herald_core::model::{DeliveryRecord, DeliveryStatus, DeliveryUpdate, IdempotencyRecord, LedgerEntry, LedgerKind, Message, MessageView};
use herald_core::seams::{Result, Store};
use herald_core::store_query::{Balances, DeliveryPage, DeliveryQuery, DeliverySort, LedgerLine, LedgerPage, LedgerQuery, LedgerSort};
use herald_core::{Millis, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::db::{Db, backend};

/// A delivery row as read: id, recipient, status, attempts, detail, provider id, updated at, cost.
type DeliveryRow = (String, String, String, u32, Option<String>, Option<String>, i64, i64);
/// A ledger row as read, in the `SELECT`'s column order.
type LedgerRow = (String, String, String, String, String, Option<String>, u32, i64, String, i64);

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

pub(crate) const DELIVERY_COLUMNS: &str = "d.id, d.recipient, d.status, d.attempts, d.detail, d.provider_id, d.updated_at,
    COALESCE((SELECT SUM(CASE l.kind WHEN 'debit' THEN l.amount_minor ELSE -l.amount_minor END)
              FROM ledger l WHERE l.tenant = d.tenant AND l.id > d.id || ':' AND l.id < d.id || ';' AND l.delivery_id = d.id), 0)";

fn to_record(row: DeliveryRow) -> Result<DeliveryRecord> {
    let (id, recipient, status, attempts, detail, provider_id, updated_at, cost_minor) = row;
    let status = DeliveryStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("delivery {id}: status {status}")))?;
    Ok(DeliveryRecord { id, recipient, status, attempts, detail, provider_id, cost_minor, updated_at })
}

fn ledger_row(r: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}

const LEDGER_COLUMNS: &str = "id, tenant, kind, channel, account, delivery_id, units, amount_minor, currency, at";

fn to_entry(row: LedgerRow) -> Result<LedgerEntry> {
    let (id, tenant, kind, channel, account, delivery_id, units, amount_minor, currency, at) = row;
    let kind = LedgerKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("ledger {id}: kind {kind}")))?;
    Ok(LedgerEntry { id, tenant, kind, channel, account, delivery_id, units, amount_minor, currency, at })
}

/// The `ORDER BY` of a ledger query (`herald_core::store_query::LedgerQuery`).
fn ledger_order(q: &LedgerQuery) -> String {
    let (dir, other) = if q.descending { ("DESC", "ASC") } else { ("ASC", "DESC") };
    let column = match q.sort {
        LedgerSort::At => return format!("at {dir}, id {other}"),
        LedgerSort::AmountMinor => "amount_minor".to_string(),
        LedgerSort::Units => "units".to_string(),
        LedgerSort::Channel => format!("channel COLLATE {}", herald_core::collate::COLLATION),
    };
    format!("{column} {dir}, at DESC, id ASC")
}

/// The `ORDER BY` of a delivery query (`m.key`: the message's place in the list).
fn delivery_order(q: &DeliveryQuery) -> String {
    let dir = if q.descending { "DESC" } else { "ASC" };
    let column = match q.sort {
        None => return format!("m.key {dir}, d.seq {dir}"),
        Some(DeliverySort::Recipient) => format!("d.recipient COLLATE {}", herald_core::collate::COLLATION),
        Some(DeliverySort::Status) => "d.status".into(),
        Some(DeliverySort::Attempts) => "d.attempts".into(),
        // The net cost: the 8th column of DELIVERY_COLUMNS.
        Some(DeliverySort::CostMinor) => "8".into(),
        Some(DeliverySort::UpdatedAt) => "d.updated_at".into(),
    };
    format!("{column} {dir}, m.key ASC, d.seq ASC")
}

/// Record a message and its deliveries (`queued`); a message recorded before
/// is left as it is. Returns whether it is new.
pub(crate) fn insert_message(c: &Connection, m: &Message) -> Result<bool> {
    let fresh = c
        .prepare_cached(
            "INSERT OR IGNORE INTO messages (tenant, id, channel, account, template, accepted_at, send_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| st.execute(params![m.tenant, m.id, m.channel, m.account, m.template, m.accepted_at, m.send_at]))
        .map_err(backend)?
        == 1;
    let mut st = c
        .prepare_cached(
            "INSERT OR IGNORE INTO deliveries (tenant, id, message_id, seq, recipient, status, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
        )
        .map_err(backend)?;
    for (i, r) in m.recipients.iter().enumerate() {
        st.execute(params![m.tenant, m.delivery_id(i), m.id, i as i64, r.to, m.accepted_at]).map_err(backend)?;
    }
    Ok(fresh)
}

fn apply(c: &Connection, updates: &[DeliveryUpdate], ledger: &[LedgerEntry]) -> Result<()> {
    // A late "sent" never overwrites a receipt that already arrived; a dead
    // delivery becomes `retrying` again only by a re-drive (attempts >= its own).
    // Comparisons, not `IN` lists: SQLite builds a table for a list of more
    // than two constants on every execution.
    let mut upd = c
        .prepare_cached(
            "UPDATE deliveries SET status = ?3, attempts = MAX(attempts, ?4), detail = ?5,
                 provider_id = COALESCE(?6, provider_id), updated_at = ?7
             WHERE tenant = ?1 AND id = ?2
               AND NOT ((?3 = 'sent' OR ?3 = 'retrying')
                        AND (status = 'delivered' OR status = 'read' OR status = 'failed' OR status = 'dead')
                        AND NOT (?3 = 'retrying' AND status = 'dead' AND ?4 >= attempts))
               AND NOT (?3 = 'delivered' AND status = 'read')",
        )
        .map_err(backend)?;
    for u in updates {
        upd.execute(params![u.tenant, u.delivery_id, u.status.as_str(), u.attempts, u.detail, u.provider_id, u.at]).map_err(backend)?;
    }
    let mut ins = c
        .prepare_cached(
            "INSERT OR IGNORE INTO ledger (id, tenant, kind, channel, account, delivery_id, units, amount_minor, currency, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(backend)?;
    for e in ledger {
        if e.amount_minor < 0 {
            return Err(StoreError::Backend(format!("ledger entry {}: negative amount", e.id)));
        }
        if e.delivery_id.as_deref().is_some_and(|d| !herald_core::ledger::of_delivery(&e.id, d)) {
            return Err(StoreError::Backend(format!("ledger entry {}: its id does not name its delivery", e.id)));
        }
        ins.execute(params![e.id, e.tenant, e.kind.as_str(), e.channel, e.account, e.delivery_id, e.units, e.amount_minor, e.currency, e.at])
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl Store for Db {
    async fn record_message(&self, message: &Message) -> Result<()> {
        let m = message.clone();
        self.write(move |c| insert_message(c, &m).map(drop)).await
    }

    async fn queued_deliveries(&self, tenant: &str, message_id: &str) -> Result<Vec<String>> {
        let mut all = self.queued_deliveries_of(&[(tenant, message_id)]).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// One read for all of them (one hop to a reader thread, not one each).
    async fn queued_deliveries_of(&self, messages: &[(&str, &str)]) -> Result<Vec<Vec<String>>> {
        let keys: Vec<(String, String)> = messages.iter().map(|(t, m)| (t.to_string(), m.to_string())).collect();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT id FROM deliveries WHERE tenant = ?1 AND message_id = ?2 AND status = 'queued' ORDER BY seq")
                .map_err(backend)?;
            keys.iter()
                .map(|(t, m)| {
                    st.query_map(params![t, m], |r| r.get(0)).and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>()).map_err(backend)
                })
                .collect()
        })
        .await
    }

    async fn retry_due(&self, tenant: &str, delivery_id: &str, attempt: u32) -> Result<bool> {
        let (t, d) = (tenant.to_string(), delivery_id.to_string());
        self.read(move |c| {
            c.query_row(
                "SELECT 1 FROM deliveries WHERE tenant = ?1 AND id = ?2 AND status = 'retrying' AND attempts = ?3",
                params![t, d, attempt.saturating_sub(1)],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(backend)
        })
        .await
    }

    async fn record(&self, updates: Vec<DeliveryUpdate>, ledger: Vec<LedgerEntry>) -> Result<()> {
        self.write(move |c| apply(c, &updates, &ledger)).await
    }

    async fn message(&self, tenant: &str, message_id: &str) -> Result<Option<MessageView>> {
        let (t, m) = (tenant.to_string(), message_id.to_string());
        self.read(move |c| {
            let head = c
                .query_row(
                    "SELECT channel, account, template, accepted_at, send_at FROM messages WHERE tenant = ?1 AND id = ?2",
                    params![t, m],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let Some((channel, account, template, accepted_at, send_at)) = head else { return Ok(None) };
            let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.tenant = ?1 AND d.message_id = ?2 ORDER BY d.seq");
            let mut st = c.prepare_cached(&sql).map_err(backend)?;
            let deliveries = st
                .query_map(params![t, m], delivery_row)
                .map_err(backend)?
                .map(|r| r.map_err(backend).and_then(to_record))
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(MessageView { id: m, tenant: t, channel, account, template, accepted_at, send_at, deliveries }))
        })
        .await
    }

    async fn delivery_by_provider_id(&self, tenant: &str, provider_id: &str) -> Result<Option<(String, DeliveryRecord)>> {
        let (t, p) = (tenant.to_string(), provider_id.to_string());
        self.read(move |c| {
            let sql = format!("SELECT {DELIVERY_COLUMNS}, d.message_id FROM deliveries d WHERE d.tenant = ?1 AND d.provider_id = ?2 LIMIT 1");
            c.query_row(&sql, params![t, p], |r| Ok((delivery_row(r)?, r.get::<_, String>(8)?)))
                .optional()
                .map_err(backend)?
                .map(|(row, mid)| to_record(row).map(|rec| (mid, rec)))
                .transpose()
        })
        .await
    }

    async fn idempotency(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<IdempotencyRecord>> {
        let (t, k) = (tenant.to_string(), key.to_string());
        self.read(move |c| {
            c.query_row(
                "SELECT request_hash, message_id, response, expires_at FROM idempotency
                 WHERE tenant = ?1 AND key = ?2 AND expires_at > ?3",
                params![t, k, now],
                |r| {
                    Ok(IdempotencyRecord {
                        tenant: t.clone(),
                        key: k.clone(),
                        request_hash: r.get(0)?,
                        message_id: r.get(1)?,
                        response: r.get(2)?,
                        expires_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn put_idempotency(&self, rec: IdempotencyRecord) -> Result<()> {
        self.write(move |c| {
            c.execute("DELETE FROM idempotency WHERE expires_at <= ?1 AND tenant = ?2", params![herald_core::now_ms(), rec.tenant])
                .map_err(backend)?;
            c.execute(
                "INSERT OR REPLACE INTO idempotency (tenant, key, request_hash, message_id, response, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![rec.tenant, rec.key, rec.request_hash, rec.message_id, rec.response, rec.expires_at],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn balance(&self, tenant: &str) -> Result<i64> {
        let t = tenant.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT COALESCE(SUM(CASE kind WHEN 'debit' THEN -amount_minor ELSE amount_minor END), 0) FROM ledger WHERE tenant = ?1",
                [t],
                |r| r.get(0),
            )
            .map_err(backend)
        })
        .await
    }

    /// One read snapshot: the count, the page (in SQL, by the index on
    /// (tenant, at) for the period), then the balance and the entries newer
    /// than the page's oldest, summed per gap between page entries (so a
    /// page of recent entries reads few rows; a page far back reads every
    /// entry since, once).
    async fn ledger_page(&self, tenant: &str, query: &LedgerQuery) -> Result<LedgerPage> {
        let (t, q) = (tenant.to_string(), query.clone());
        self.read(move |c| {
            let tx = c.unchecked_transaction().map_err(backend)?;
            let kinds = if q.top_ups { "" } else { " AND kind != 'top_up'" };
            let filter = format!("tenant = ?1 AND at >= ?2 AND at < ?3{kinds}");
            let total: i64 =
                tx.query_row(&format!("SELECT COUNT(*) FROM ledger WHERE {filter}"), params![t, q.start, q.end], |r| r.get(0)).map_err(backend)?;
            let sql = format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE {filter} ORDER BY {} LIMIT ?4 OFFSET ?5", ledger_order(&q));
            let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
            let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
            let entries = tx
                .prepare(&sql)
                .map_err(backend)?
                .query_map(params![t, q.start, q.end, limit, offset], ledger_row)
                .map_err(backend)?
                .map(|r| r.map_err(backend).and_then(to_entry))
                .collect::<Result<Vec<_>>>()?;
            let balance: i64 = tx
                .query_row(
                    "SELECT COALESCE(SUM(CASE kind WHEN 'debit' THEN -amount_minor ELSE amount_minor END), 0) FROM ledger WHERE tenant = ?1",
                    [&t],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let mut balances = Balances::new(&entries);
            if let Some(oldest) = balances.oldest().cloned() {
                let mut st = tx
                    .prepare_cached(&format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE tenant = ?1 AND (at > ?2 OR (at = ?2 AND id < ?3))"))
                    .map_err(backend)?;
                for row in st.query_map(params![t, oldest.at, oldest.id], ledger_row).map_err(backend)? {
                    balances.push(&to_entry(row.map_err(backend)?)?);
                }
            }
            let lines = entries.into_iter().zip(balances.finish(balance)).map(|(entry, balance_minor)| LedgerLine { entry, balance_minor }).collect();
            Ok(LedgerPage { lines, total: u64::try_from(total).unwrap_or(0) })
        })
        .await
    }

    /// In SQL: the deliveries of the listed messages (by the index on
    /// (tenant, message_id, seq)), sorted and paged, and their count.
    async fn deliveries_page(&self, tenant: &str, message_ids: &[String], query: &DeliveryQuery) -> Result<DeliveryPage> {
        let mut ids: Vec<&String> = Vec::with_capacity(message_ids.len());
        for m in message_ids {
            if !ids.contains(&m) {
                ids.push(m);
            }
        }
        let list = serde_json::to_string(&ids).map_err(backend)?;
        let (t, order) = (tenant.to_string(), delivery_order(query));
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        self.read(move |c| {
            let tx = c.unchecked_transaction().map_err(backend)?;
            let from = "FROM deliveries d JOIN json_each(?2) m ON m.value = d.message_id WHERE d.tenant = ?1";
            let total: i64 = tx.query_row(&format!("SELECT COUNT(*) {from}"), params![t, list], |r| r.get(0)).map_err(backend)?;
            let sql = format!("SELECT {DELIVERY_COLUMNS}, d.message_id {from} ORDER BY {order} LIMIT ?3 OFFSET ?4");
            let mut st = tx.prepare(&sql).map_err(backend)?;
            let deliveries = st
                .query_map(params![t, list, limit, offset], |r| Ok((delivery_row(r)?, r.get::<_, String>(8)?)))
                .map_err(backend)?
                .map(|r| r.map_err(backend).and_then(|(row, mid)| to_record(row).map(|d| (mid, d))))
                .collect::<Result<Vec<_>>>()?;
            Ok(DeliveryPage { deliveries, total: u64::try_from(total).unwrap_or(0) })
        })
        .await
    }

    async fn ledger(&self, tenant: &str, limit: usize) -> Result<Vec<LedgerEntry>> {
        let t = tenant.to_string();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, tenant, kind, channel, account, delivery_id, units, amount_minor, currency, at
                     FROM ledger WHERE tenant = ?1 ORDER BY at DESC, id LIMIT ?2 + 0",
                )
                .map_err(backend)?;
            st.query_map(params![t, limit as i64], ledger_row)
                .map_err(backend)?
                .map(|r| {
                    let (id, tenant, kind, channel, account, delivery_id, units, amount_minor, currency, at) = r.map_err(backend)?;
                    let kind = LedgerKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("ledger {id}: kind {kind}")))?;
                    Ok(LedgerEntry { id, tenant, kind, channel, account, delivery_id, units, amount_minor, currency, at })
                })
                .collect()
        })
        .await
    }
}
