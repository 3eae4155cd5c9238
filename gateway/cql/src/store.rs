//! `Store`: messages, deliveries, the ledger and idempotency keys.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use herald_core::ledger::net;
use herald_core::model::{DeliveryRecord, DeliveryStatus, DeliveryUpdate, IdempotencyRecord, LedgerEntry, LedgerKind, Message, MessageView};
use herald_core::seams::{Result, Store};
use herald_core::store_query::{Balances, DeliveryPage, DeliveryQuery, LedgerLine, LedgerPage, LedgerQuery};
use herald_core::{Millis, StoreError};
use scylla::client::session::Session;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{Counter, MaybeUnset};

use crate::error::{cql, decode};
use crate::fold::{DeliveryRow, day_of, fold, month_of, seq_in, split_delivery_id};
use crate::{BATCH_ROWS, CqlStore, Profiles, WRITE_CONCURRENCY, prepare, run_all, to_i32, ttl_secs, unset};

pub(crate) struct Statements {
    message_head: PreparedStatement,
    message_static: PreparedStatement,
    delivery_event: PreparedStatement,
    message_rows: PreparedStatement,
    delivery_rows: PreparedStatement,
    message_costs: PreparedStatement,
    delivery_costs: PreparedStatement,
    cost_insert: PreparedStatement,
    provider_insert: PreparedStatement,
    provider_select: PreparedStatement,
    day_insert: PreparedStatement,
    day_select: PreparedStatement,
    claim_state: PreparedStatement,
    claim_rows: PreparedStatement,
    claim_insert: PreparedStatement,
    claim_balance: PreparedStatement,
    shard_balances: PreparedStatement,
    ledger_insert: PreparedStatement,
    ledger_month_insert: PreparedStatement,
    ledger_months: PreparedStatement,
    ledger_recent: PreparedStatement,
    ledger_month_all: PreparedStatement,
    ledger_period: PreparedStatement,
    legacy_balance: PreparedStatement,
    idem_insert: PreparedStatement,
    idem_select: PreparedStatement,
}

/// Partitions per tenant of `ledger_claims`: they spread a tenant's claim
/// rounds and bound a partition's size; a balance read sums all of them.
pub(crate) const LEDGER_SHARDS: i32 = 32;
/// How long a claimed id is remembered. Replays of the same entry come from a
/// redelivered record (seconds to hours later), never a month later.
const CLAIM_TTL_SECS: i32 = 35 * 24 * 3600;
/// Entries per claim round: a conditional batch must stay under the server's
/// batch size limit (Cassandra fails batches over 50 KiB by default).
const CLAIM_ROWS: usize = 64;
/// Claim rounds before giving up (503; the recorder retries the whole call).
const CLAIM_ATTEMPTS: u32 = 32;

/// The `ledger_claims` shard of an entry id. Delivery entries
/// (`<message id>.<seq>:<kind>`) shard by their message, so the debits of one
/// message's deliveries, recorded together, are claimed in one round; other
/// ids (top-ups) by the whole id.
fn ledger_shard(id: &str) -> i32 {
    let message = id.split_once(':').and_then(|(delivery, _)| split_delivery_id(delivery)).map_or(id, |(m, _)| m);
    (herald_core::stable_hash(message) % LEDGER_SHARDS as u64) as i32
}

const DELIVERY_COLUMNS: &str = "seq, at, event, recipient, attempts, detail, provider_id";
const LEDGER_COLUMNS: &str = "kind, channel, account, delivery_id, units, amount_minor, currency, at";

impl Statements {
    pub(crate) async fn prepare(s: &Session, ks: &str, p: &Profiles) -> Result<Self> {
        let (w, r, c, serial) = (&p.write, &p.read, &p.console, &p.serial);
        Ok(Self {
            // The header and the recipients (a JSON array, index = delivery
            // seq) in static cells: one write per message, however many
            // recipients (migration 6; older messages have a "created" row per
            // delivery instead, which reads still understand).
            message_head: prepare(s, ks,
                "INSERT INTO {ks}.deliveries_by_message (tenant, message_id, channel, account, template, accepted_at, send_at, recipients)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)", w, true).await?,
            message_static: prepare(s, ks,
                "SELECT accepted_at, recipients FROM {ks}.deliveries_by_message WHERE tenant = ? AND message_id = ? LIMIT 1", r, true).await?,
            delivery_event: prepare(s, ks,
                "INSERT INTO {ks}.deliveries_by_message (tenant, message_id, seq, at, event, attempts, detail, provider_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)", w, true).await?,
            message_rows: prepare(s, ks, &format!(
                "SELECT {DELIVERY_COLUMNS}, channel, account, template, accepted_at, send_at, recipients
                 FROM {{ks}}.deliveries_by_message WHERE tenant = ? AND message_id = ?"), r, true).await?,
            delivery_rows: prepare(s, ks, &format!(
                "SELECT {DELIVERY_COLUMNS}, accepted_at, recipients FROM {{ks}}.deliveries_by_message WHERE tenant = ? AND message_id = ? AND seq = ?"),
                r, true).await?,
            message_costs: prepare(s, ks,
                "SELECT seq, amount_minor FROM {ks}.delivery_costs WHERE tenant = ? AND message_id = ?", r, true).await?,
            delivery_costs: prepare(s, ks,
                "SELECT seq, amount_minor FROM {ks}.delivery_costs WHERE tenant = ? AND message_id = ? AND seq = ?", r, true).await?,
            cost_insert: prepare(s, ks,
                "INSERT INTO {ks}.delivery_costs (tenant, message_id, seq, entry_id, amount_minor) VALUES (?, ?, ?, ?, ?)",
                w, true).await?,
            provider_insert: prepare(s, ks,
                "INSERT INTO {ks}.deliveries_by_provider_id (tenant, provider_id, message_id, seq) VALUES (?, ?, ?, ?)",
                w, true).await?,
            provider_select: prepare(s, ks,
                "SELECT message_id, seq FROM {ks}.deliveries_by_provider_id WHERE tenant = ? AND provider_id = ?", r, true).await?,
            day_insert: prepare(s, ks,
                "INSERT INTO {ks}.messages_by_day (tenant, day, at, message_id, channel, account, recipients)
                 VALUES (?, ?, ?, ?, ?, ?, ?)", w, true).await?,
            day_select: prepare(s, ks,
                "SELECT at, message_id, channel, account, recipients
                 FROM {ks}.messages_by_day WHERE tenant = ? AND day = ?", c, true).await?,
            // A shard's version and balance, read linearizably (a Paxos read:
            // it also finishes a half-done round), before a compare-and-set.
            claim_state: prepare(s, ks,
                "SELECT DISTINCT tenant, shard, version, balance_minor FROM {ks}.ledger_claims WHERE tenant = ? AND shard = ?",
                serial, true).await?,
            claim_rows: prepare(s, ks, &format!(
                "SELECT id, {LEDGER_COLUMNS} FROM {{ks}}.ledger_claims WHERE tenant = ? AND shard = ? AND id IN ?"), r, true).await?,
            // The two halves of one conditional batch (see `claim`). Not marked
            // idempotent: the driver must not retry an LWT on its own.
            claim_insert: prepare(s, ks,
                "INSERT INTO {ks}.ledger_claims (tenant, shard, id, kind, channel, account, delivery_id, units, amount_minor, currency, at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?", w, false).await?,
            claim_balance: prepare(s, ks,
                "UPDATE {ks}.ledger_claims SET version = ?, balance_minor = ? WHERE tenant = ? AND shard = ? IF version = ?",
                w, false).await?,
            shard_balances: prepare(s, ks,
                "SELECT DISTINCT tenant, shard, balance_minor FROM {ks}.ledger_claims WHERE tenant = ? AND shard IN ?", r, true).await?,
            ledger_insert: prepare(s, ks,
                "INSERT INTO {ks}.ledger_entries
                   (tenant, month, at, id, kind, channel, account, delivery_id, units, amount_minor, currency)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", w, true).await?,
            ledger_month_insert: prepare(s, ks,
                "INSERT INTO {ks}.ledger_months (tenant, month) VALUES (?, ?)", w, true).await?,
            ledger_months: prepare(s, ks,
                "SELECT month FROM {ks}.ledger_months WHERE tenant = ?", r, true).await?,
            ledger_recent: prepare(s, ks, &format!(
                "SELECT id, {LEDGER_COLUMNS} FROM {{ks}}.ledger_entries WHERE tenant = ? AND month = ? LIMIT ?"), r, true).await?,
            ledger_month_all: prepare(s, ks,
                "SELECT kind, amount_minor FROM {ks}.ledger_entries WHERE tenant = ? AND month = ?", r, true).await?,
            // A month partition's entries of a period, newest first (paged by the driver).
            ledger_period: prepare(s, ks, &format!(
                "SELECT id, {LEDGER_COLUMNS} FROM {{ks}}.ledger_entries WHERE tenant = ? AND month = ? AND at >= ? AND at < ?"), c, true).await?,
            // The counter that held balances before migration 7 (no longer written).
            legacy_balance: prepare(s, ks,
                "SELECT balance_minor FROM {ks}.balances WHERE tenant = ?", r, true).await?,
            idem_insert: prepare(s, ks,
                "INSERT INTO {ks}.idempotency (tenant, idem_key, request_hash, message_id, response, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?) USING TTL ?", w, true).await?,
            idem_select: prepare(s, ks,
                "SELECT request_hash, message_id, response, expires_at FROM {ks}.idempotency WHERE tenant = ? AND idem_key = ?",
                r, true).await?,
        })
    }
}

type RowTuple = (i32, i64, String, Option<String>, Option<i32>, Option<String>, Option<String>);
/// A `delivery_rows` row: the delivery's columns and the static recipients.
type SliceRow = (i32, i64, String, Option<String>, Option<i32>, Option<String>, Option<String>, Option<i64>, Option<String>);
/// A `message_rows` row: clustering columns are null on a partition that has
/// only the static header (a message without recipients).
type MessageRow = (
    Option<i32>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);
/// A row of `SELECT id, {LEDGER_COLUMNS}`.
type LedgerRow = (String, String, String, String, Option<String>, i32, i64, String, i64);

fn to_row((seq, at, event, recipient, attempts, detail, provider_id): RowTuple) -> DeliveryRow {
    DeliveryRow { seq, at, event, recipient, attempts, detail, provider_id }
}

/// The "created" rows a message's static recipients stand for (`seq` only,
/// or all of them).
fn created_rows(message_id: &str, accepted_at: Millis, recipients: &str, only: Option<i32>) -> Result<Vec<DeliveryRow>> {
    let list: Vec<String> = serde_json::from_str(recipients).map_err(|e| StoreError::Corrupt(format!("message {message_id}: recipients: {e}")))?;
    Ok(list
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| i32::try_from(i).ok().map(|seq| (seq, r)))
        .filter(|(seq, _)| only.is_none_or(|o| o == *seq))
        .map(|(seq, r)| DeliveryRow {
            seq,
            at: accepted_at,
            event: crate::fold::CREATED.to_string(),
            recipient: Some(r),
            attempts: None,
            detail: None,
            provider_id: None,
        })
        .collect())
}

fn ledger_entry(tenant: &str, (id, kind, channel, account, delivery_id, units, amount_minor, currency, at): LedgerRow) -> Result<LedgerEntry> {
    let kind = LedgerKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("ledger {id}: kind {kind}")))?;
    let units = u32::try_from(units).map_err(|_| StoreError::Corrupt(format!("ledger {id}: units {units}")))?;
    Ok(LedgerEntry { id, tenant: tenant.to_string(), kind, channel, account, delivery_id, units, amount_minor, currency, at })
}

/// What a delivery's net cost gains from an entry (SQLite: debits minus everything else).
fn cost_effect(e: &LedgerEntry) -> i64 {
    match e.kind {
        LedgerKind::Debit => e.amount_minor,
        LedgerKind::Credit | LedgerKind::TopUp => -e.amount_minor,
    }
}

/// One row of the console's per-day message list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayEntry {
    /// When the message was accepted.
    pub at: Millis,
    pub message_id: String,
    pub channel: String,
    pub account: String,
    /// How many deliveries it has (read them, paged, from the message's partition).
    pub recipients: u32,
}

/// One page of [`CqlStore::messages_by_day`].
#[derive(Debug, Clone)]
pub struct DayPage {
    pub entries: Vec<DayEntry>,
    /// Where the next page starts; `None` on the last page. Serialize it for a
    /// URL cursor with `as_bytes_slice()` and rebuild it with
    /// `PagingState::new_from_raw_bytes`.
    pub next: Option<PagingState>,
}

impl CqlStore {
    /// Rows of a message partition: `(header, rows)`, header `None` when the message is unknown.
    async fn message_rows(&self, tenant: &str, message_id: &str) -> Result<(Option<Header>, Vec<DeliveryRow>)> {
        let raw: Vec<MessageRow> = self.read_all(&self.st.message_rows, (tenant, message_id)).await?;
        let mut header = None;
        let mut rows = Vec::with_capacity(raw.len());
        let mut recipients = None;
        for (seq, at, event, recipient, attempts, detail, provider_id, channel, account, template, accepted_at, send_at, listed) in raw {
            if header.is_none()
                && let (Some(channel), Some(account), Some(accepted_at)) = (channel, account, accepted_at)
            {
                header = Some(Header { channel, account, template, accepted_at, send_at });
            }
            if recipients.is_none() {
                recipients = listed;
            }
            if let (Some(seq), Some(at), Some(event)) = (seq, at, event) {
                rows.push(DeliveryRow { seq, at, event, recipient, attempts, detail, provider_id });
            }
        }
        if let (Some(h), Some(list)) = (&header, &recipients) {
            rows.extend(created_rows(message_id, h.accepted_at, list, None)?);
        }
        Ok((header, rows))
    }

    async fn costs(&self, st: &PreparedStatement, values: impl scylla::serialize::row::SerializeRow) -> Result<BTreeMap<i32, i64>> {
        let rows: Vec<(i32, i64)> = self.read_all(st, values).await?;
        let mut costs = BTreeMap::new();
        for (seq, amount) in rows {
            *costs.entry(seq).or_insert(0) += amount;
        }
        Ok(costs)
    }

    /// One delivery, folded from its slice of the message partition (with
    /// its net cost only when asked: `retry_due` does not need it).
    async fn delivery(&self, tenant: &str, message_id: &str, seq: i32, with_cost: bool) -> Result<Option<DeliveryRecord>> {
        let rows = async {
            let raw = self.read_all::<SliceRow>(&self.st.delivery_rows, (tenant, message_id, seq)).await?;
            // The static recipients come with the slice's rows; a delivery
            // without any row yet needs them read on their own.
            let listed = match raw.first() {
                Some(r) => r.7.zip(r.8.clone()),
                None => {
                    self.read_one::<(Option<i64>, Option<String>)>(&self.st.message_static, (tenant, message_id)).await?.and_then(|(a, r)| a.zip(r))
                }
            };
            let mut rows: Vec<DeliveryRow> = raw
                .into_iter()
                .map(|(seq, at, event, recipient, attempts, detail, provider_id, _, _)| {
                    to_row((seq, at, event, recipient, attempts, detail, provider_id))
                })
                .collect();
            if let Some((accepted_at, list)) = listed {
                rows.extend(created_rows(message_id, accepted_at, &list, Some(seq))?);
            }
            Ok::<_, StoreError>(rows)
        };
        let costs = async { if with_cost { self.costs(&self.st.delivery_costs, (tenant, message_id, seq)).await } else { Ok(BTreeMap::new()) } };
        let (rows, costs) = futures::try_join!(rows, costs)?;
        Ok(fold(message_id, rows, &costs)?.into_iter().next())
    }

    /// Claim `entries` (all of one tenant and shard) and move the shard's
    /// balance by the ones not claimed before, in one conditional batch:
    /// `INSERT ... IF NOT EXISTS` per new id plus `UPDATE ... SET version,
    /// balance IF version = <read>`, one Paxos round on one partition. Either
    /// all of it lands or none, so a crash cannot leave an id claimed and not
    /// counted (or counted twice): a replay finds the id and adds nothing.
    /// Losing the compare-and-set (another process, or an answer lost in a
    /// timeout) re-reads and tries again. Returns the canonical entries
    /// (the first claim's values for ids claimed before).
    async fn claim(&self, tenant: &str, shard: i32, entries: &[&LedgerEntry]) -> Result<Vec<LedgerEntry>> {
        // One writer per shard in this process: its rounds would only collide.
        let lock = herald_core::stable_hash(&format!("{tenant}#{shard}")) as usize % self.claim_locks.len();
        let _one_writer = self.claim_locks[lock].lock().await;
        let mut seen = HashSet::with_capacity(entries.len());
        let unique: Vec<&LedgerEntry> = entries.iter().copied().filter(|e| seen.insert(e.id.as_str())).collect();
        let mut out = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(CLAIM_ROWS) {
            out.extend(self.claim_rounds(tenant, shard, chunk).await?);
        }
        Ok(out)
    }

    /// Claim rounds for up to [`CLAIM_ROWS`] distinct entries, until they are all claimed.
    async fn claim_rounds(&self, tenant: &str, shard: i32, unique: &[&LedgerEntry]) -> Result<Vec<LedgerEntry>> {
        let ids: Vec<&str> = unique.iter().map(|e| e.id.as_str()).collect();
        for attempt in 0..CLAIM_ATTEMPTS {
            // The version first, then the rows: rows read later are at least
            // as new, and the batch's conditions catch anything newer still.
            let state = self.read_one::<(String, i32, Option<i64>, Option<i64>)>(&self.st.claim_state, (tenant, shard)).await?;
            let (version, balance) = state.map_or((None, None), |(_, _, v, b)| (v, b));
            let rows = self.ledger_rows(tenant, &self.st.claim_rows, (tenant, shard, &ids)).await?;
            let mut claimed: HashMap<String, LedgerEntry> = rows.into_iter().map(|e| (e.id.clone(), e)).collect();
            let fresh: Vec<&LedgerEntry> = unique.iter().copied().filter(|e| !claimed.contains_key(&e.id)).collect();
            if !fresh.is_empty() {
                let next = (version.unwrap_or(0) + 1, balance.unwrap_or(0).saturating_add(net(fresh.iter().copied())));
                match self.claim_batch(tenant, shard, &fresh, next, version).await {
                    Ok(true) => claimed.extend(fresh.iter().map(|e| (e.id.clone(), (*e).clone()))),
                    Ok(false) => {}
                    Err(e) if matches!(e, StoreError::Unavailable(_)) => {
                        tracing::warn!(error = %e, tenant, shard, "ledger claim round failed; re-reading");
                    }
                    Err(e) => return Err(e),
                }
            }
            if unique.iter().all(|e| claimed.contains_key(&e.id)) {
                return Ok(unique.iter().map(|e| claimed.remove(&e.id).expect("checked above")).collect());
            }
            tokio::time::sleep(Duration::from_millis(2 << attempt.min(6))).await;
        }
        Err(StoreError::Unavailable(format!("ledger shard {shard} of tenant {tenant}: contended")))
    }

    /// Ledger entries read by a `SELECT id, {LEDGER_COLUMNS}` statement.
    async fn ledger_rows(&self, tenant: &str, st: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<LedgerEntry>> {
        let rows: Vec<LedgerRow> = self.read_all(st, values).await?;
        rows.into_iter().map(|r| ledger_entry(tenant, r)).collect()
    }

    /// One claim round; whether it was applied.
    async fn claim_batch(
        &self,
        tenant: &str,
        shard: i32,
        fresh: &[&LedgerEntry],
        (version, balance): (i64, i64),
        expected: Option<i64>,
    ) -> Result<bool> {
        let mut b = Batch::new(BatchType::Unlogged);
        let mut values: Vec<Box<dyn SerializeRow + Send + Sync + '_>> = Vec::with_capacity(fresh.len() + 1);
        for e in fresh {
            b.append_statement(self.st.claim_insert.clone());
            let units = to_i32("ledger units", e.units)?;
            values.push(Box::new((
                tenant,
                shard,
                e.id.as_str(),
                e.kind.as_str(),
                e.channel.as_str(),
                e.account.as_str(),
                unset(e.delivery_id.as_deref()),
                units,
                e.amount_minor,
                e.currency.as_str(),
                e.at,
                CLAIM_TTL_SECS,
            )));
        }
        b.append_statement(self.st.claim_balance.clone());
        values.push(Box::new((version, balance, tenant, shard, expected)));
        b.set_execution_profile_handle(Some(self.profiles.write.clone()));
        let res = self.session().batch(&b, values).await.map_err(cql)?;
        crate::schema::lwt_applied(res)
    }

    /// Write the entries' idempotent rows: ledger lines (one unlogged batch
    /// per tenant-month partition), the months they are in, and the net cost
    /// of their deliveries (one batch per message partition).
    async fn write_entries(&self, entries: &[LedgerEntry]) -> Result<()> {
        type LineRow<'a> = (&'a str, i32, Millis, &'a str, &'a str, &'a str, &'a str, MaybeUnset<&'a str>, i32, i64, &'a str);
        let mut lines: BTreeMap<(&str, i32), Vec<LineRow<'_>>> = BTreeMap::new();
        type CostRow<'a> = (&'a str, &'a str, i32, &'a str, i64);
        let mut costs: BTreeMap<(&str, &str), Vec<CostRow<'_>>> = BTreeMap::new();
        for e in entries {
            let month = month_of(e.at)?;
            let units = to_i32("ledger units", e.units)?;
            lines.entry((&e.tenant, month)).or_default().push((
                &e.tenant,
                month,
                e.at,
                &e.id,
                e.kind.as_str(),
                &e.channel,
                &e.account,
                unset(e.delivery_id.as_deref()),
                units,
                e.amount_minor,
                &e.currency,
            ));
            if let Some((message_id, seq)) = e.delivery_id.as_deref().and_then(split_delivery_id) {
                costs.entry((&e.tenant, message_id)).or_default().push((&e.tenant, message_id, seq, &e.id, cost_effect(e)));
            }
        }
        let mut tasks: Vec<BoxFuture<'_, Result<()>>> = Vec::new();
        for ((tenant, month), rows) in &lines {
            tasks.push(self.exec(&self.st.ledger_month_insert, (*tenant, *month)).map(|r| r.map(|_| ())).boxed());
            for chunk in rows.chunks(BATCH_ROWS) {
                tasks.push(self.batch(&self.st.ledger_insert, chunk).boxed());
            }
        }
        for rows in costs.values() {
            for chunk in rows.chunks(BATCH_ROWS) {
                tasks.push(self.batch(&self.st.cost_insert, chunk).boxed());
            }
        }
        run_all(tasks).await
    }

    /// One page of a tenant's messages accepted on `day` (UTC), newest
    /// first. Start with `PagingState::start()`; pass back `next` for the
    /// following page. Reads at the console profile (`LOCAL_ONE`).
    pub async fn messages_by_day(&self, tenant: &str, day: chrono::NaiveDate, page_size: i32, page: PagingState) -> Result<DayPage> {
        let mut st = self.st.day_select.clone();
        st.set_page_size(page_size.clamp(1, 5_000));
        let (res, next) = self.session().execute_single_page(&st, (tenant, day), page).await.map_err(cql)?;
        let rows = res.into_rows_result().map_err(decode)?;
        let entries = rows
            .rows::<(i64, String, String, String, i32)>()
            .map_err(decode)?
            .map(|r| {
                r.map(|(at, message_id, channel, account, recipients)| DayEntry {
                    at,
                    message_id,
                    channel,
                    account,
                    recipients: u32::try_from(recipients).unwrap_or(0),
                })
                .map_err(decode)
            })
            .collect::<Result<Vec<_>>>()?;
        let next = match next {
            PagingStateResponse::HasMorePages { state } => Some(state),
            PagingStateResponse::NoMorePages => None,
        };
        Ok(DayPage { entries, next })
    }

    /// The month partitions of the tenant's ledger that may hold entries of `start..end`, newest first.
    async fn ledger_months_of(&self, tenant: &str, start: Millis, end: Millis) -> Result<Vec<i32>> {
        let first = if start == Millis::MIN { i32::MIN } else { month_of(start).unwrap_or(i32::MIN) };
        let last = if end == Millis::MAX { i32::MAX } else { month_of(end.saturating_sub(1)).unwrap_or(i32::MAX) };
        let months: Vec<(i32,)> = self.read_all(&self.st.ledger_months, (tenant,)).await?;
        Ok(months.into_iter().map(|(m,)| m).filter(|m| (first..=last).contains(m)).collect())
    }

    /// Hand every ledger entry of the tenant with `start <= at < end` to `each`, streamed month by month.
    async fn each_entry(&self, tenant: &str, start: Millis, end: Millis, mut each: impl FnMut(LedgerEntry)) -> Result<()> {
        for month in self.ledger_months_of(tenant, start, end).await? {
            self.read_each::<LedgerRow>(&self.st.ledger_period, (tenant, month, start, end), |row| {
                each(ledger_entry(tenant, row)?);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The tenant's balance recomputed from its ledger entries (reads every
    /// month partition). `balance` reads the counter instead; the two differ
    /// only if a counter increment was lost (see the crate docs).
    pub async fn ledger_sum(&self, tenant: &str) -> Result<i64> {
        let months: Vec<(i32,)> = self.read_all(&self.st.ledger_months, (tenant,)).await?;
        let mut sum = 0i64;
        for (month,) in months {
            let rows: Vec<(String, i64)> = self.read_all(&self.st.ledger_month_all, (tenant, month)).await?;
            for (kind, amount) in rows {
                let kind = LedgerKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("ledger kind {kind}")))?;
                sum = sum.saturating_add(kind.signed(amount));
            }
        }
        Ok(sum)
    }
}

struct Header {
    channel: String,
    account: String,
    template: Option<String>,
    accepted_at: Millis,
    send_at: Option<Millis>,
}

#[async_trait]
impl Store for CqlStore {
    async fn record_message(&self, m: &Message) -> Result<()> {
        let template = m.template.as_deref();
        let day = day_of(m.accepted_at)?;
        let recipients = to_i32("recipients", m.recipients.len())?;
        let listed =
            self.exec(&self.st.day_insert, (&m.tenant, day, m.accepted_at, &m.id, &m.channel, &m.account, recipients)).map(|r| r.map(|_| ()));
        let list: Vec<&str> = m.recipients.iter().map(|r| r.to.as_str()).collect();
        let list = serde_json::to_string(&list).map_err(|e| StoreError::Backend(e.to_string()))?;
        let values = (&m.tenant, &m.id, &m.channel, &m.account, unset(template), m.accepted_at, unset(m.send_at), &list);
        let head = self.exec(&self.st.message_head, values).map(|r| r.map(|_| ()));
        run_all(vec![head.boxed(), listed.boxed()]).await
    }

    async fn queued_deliveries(&self, tenant: &str, message_id: &str) -> Result<Vec<String>> {
        let (_, rows) = self.message_rows(tenant, message_id).await?;
        Ok(fold(message_id, rows, &BTreeMap::new())?.into_iter().filter(|d| d.status == DeliveryStatus::Queued).map(|d| d.id).collect())
    }

    async fn retry_due(&self, tenant: &str, delivery_id: &str, attempt: u32) -> Result<bool> {
        let Some((message_id, seq)) = split_delivery_id(delivery_id) else { return Ok(false) };
        Ok(self
            .delivery(tenant, message_id, seq, false)
            .await?
            .is_some_and(|d| d.status == DeliveryStatus::Retrying && d.attempts == attempt.saturating_sub(1)))
    }

    async fn record(&self, updates: Vec<DeliveryUpdate>, ledger: Vec<LedgerEntry>) -> Result<()> {
        if let Some(e) = ledger.iter().find(|e| e.amount_minor < 0) {
            return Err(StoreError::Backend(format!("ledger entry {}: negative amount", e.id)));
        }
        // Status events, grouped by message partition → one unlogged batch each.
        let mut events: HashMap<(&str, &str), Vec<_>> = HashMap::new();
        let mut lookups = Vec::new();
        for u in &updates {
            let Some(seq) = seq_in(&u.message_id, &u.delivery_id) else {
                // Not an id `record_message` creates: no such delivery (SQLite: no row updated).
                tracing::warn!(tenant = %u.tenant, delivery = %u.delivery_id, message = %u.message_id, "update for an unknown delivery id ignored");
                continue;
            };
            let attempts = i32::try_from(u.attempts).unwrap_or(i32::MAX);
            events.entry((u.tenant.as_str(), u.message_id.as_str())).or_default().push((
                u.tenant.as_str(),
                u.message_id.as_str(),
                seq,
                u.at,
                u.status.as_str(),
                attempts,
                unset(u.detail.as_deref()),
                unset(u.provider_id.as_deref()),
            ));
            // A provider id that is the delivery id itself (webhook, e-mail) is
            // found without the index (see `delivery_by_provider_id`).
            if let Some(p) = u.provider_id.as_ref().filter(|p| **p != u.delivery_id) {
                lookups.push((u.tenant.as_str(), p.as_str(), u.message_id.as_str(), seq));
            }
        }
        // The ledger first: a delivery shown as sent always has its debit. A
        // crash in between leaves the statuses as they were, so the work is
        // redelivered, and its replayed entries are ignored by id (and their
        // rows rewritten from the first claim).
        let mut shards: BTreeMap<(&str, i32), Vec<&LedgerEntry>> = BTreeMap::new();
        for e in &ledger {
            shards.entry((e.tenant.as_str(), ledger_shard(&e.id))).or_default().push(e);
        }
        let claims: Vec<BoxFuture<'_, Result<Vec<LedgerEntry>>>> = shards.iter().map(|((t, s), es)| self.claim(t, *s, es).boxed()).collect();
        let claims: Vec<Result<Vec<LedgerEntry>>> = futures::stream::iter(claims).buffer_unordered(WRITE_CONCURRENCY).collect().await;
        let canonical: Vec<LedgerEntry> = claims.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten().collect();
        self.write_entries(&canonical).await?;
        let mut tasks: Vec<BoxFuture<'_, Result<()>>> = Vec::new();
        for rows in events.values() {
            for chunk in rows.chunks(BATCH_ROWS) {
                tasks.push(self.batch(&self.st.delivery_event, chunk).boxed());
            }
        }
        for l in lookups {
            tasks.push(self.exec(&self.st.provider_insert, l).map(|r| r.map(|_| ())).boxed());
        }
        run_all(tasks).await
    }

    async fn message(&self, tenant: &str, message_id: &str) -> Result<Option<MessageView>> {
        let ((header, rows), costs) =
            futures::try_join!(self.message_rows(tenant, message_id), self.costs(&self.st.message_costs, (tenant, message_id)),)?;
        let Some(h) = header else { return Ok(None) };
        Ok(Some(MessageView {
            id: message_id.to_string(),
            tenant: tenant.to_string(),
            channel: h.channel,
            account: h.account,
            template: h.template,
            accepted_at: h.accepted_at,
            send_at: h.send_at,
            deliveries: fold(message_id, rows, &costs)?,
        }))
    }

    async fn delivery_by_provider_id(&self, tenant: &str, provider_id: &str) -> Result<Option<(String, DeliveryRecord)>> {
        if let Some((message_id, seq)) = self.read_one::<(String, i32)>(&self.st.provider_select, (tenant, provider_id)).await? {
            return Ok(self.delivery(tenant, &message_id, seq, true).await?.map(|d| (message_id, d)));
        }
        // Not indexed: a provider id equal to its delivery id.
        let Some((message_id, seq)) = crate::fold::split_delivery_id(provider_id) else { return Ok(None) };
        let found = self.delivery(tenant, message_id, seq, true).await?;
        Ok(found.filter(|d| d.provider_id.as_deref() == Some(provider_id)).map(|d| (message_id.to_string(), d)))
    }

    async fn idempotency(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<IdempotencyRecord>> {
        let row = self.read_one::<(String, String, String, i64)>(&self.st.idem_select, (tenant, key)).await?;
        Ok(row.filter(|r| r.3 > now).map(|(request_hash, message_id, response, expires_at)| IdempotencyRecord {
            tenant: tenant.to_string(),
            key: key.to_string(),
            request_hash,
            message_id,
            response,
            expires_at,
        }))
    }

    async fn put_idempotency(&self, r: IdempotencyRecord) -> Result<()> {
        let ttl = ttl_secs(r.expires_at, herald_core::now_ms());
        let values = (&r.tenant, &r.key, &r.request_hash, &r.message_id, &r.response, r.expires_at, ttl);
        self.exec(&self.st.idem_insert, values).await.map(|_| ())
    }

    async fn balance(&self, tenant: &str) -> Result<i64> {
        let shards: Vec<i32> = (0..LEDGER_SHARDS).collect();
        let (legacy, rows) = futures::try_join!(
            self.read_one::<(Option<Counter>,)>(&self.st.legacy_balance, (tenant,)),
            self.read_all::<(String, i32, Option<i64>)>(&self.st.shard_balances, (tenant, &shards)),
        )?;
        let legacy = legacy.and_then(|(c,)| c).map_or(0, |c| c.0);
        Ok(rows.into_iter().fold(legacy, |sum, (_, _, b)| sum.saturating_add(b.unwrap_or(0))))
    }

    /// CQL has no OFFSET and orders only by the clustering columns, so the
    /// period's month partitions are streamed (driver paging, never held
    /// whole) into a bounded heap of the `offset + limit` first in the
    /// asked order (`LedgerQuery::window`), counting the matches. Then the
    /// balance after each page entry: the balance (the claim shards) less
    /// the entries newer than the page's oldest, streamed the same way.
    /// Cost: reads every entry of the period, plus every entry since the
    /// page's oldest; memory `offset + limit` entries.
    async fn ledger_page(&self, tenant: &str, query: &LedgerQuery) -> Result<LedgerPage> {
        let mut window = query.window();
        self.each_entry(tenant, query.start, query.end, |e| {
            if query.matches(&e) {
                window.push(query.key(&e), e);
            }
        })
        .await?;
        let (entries, total) = window.finish();
        let mut balances = Balances::new(&entries);
        let balance = self.balance(tenant).await?;
        if let Some(oldest) = balances.oldest().cloned() {
            self.each_entry(tenant, oldest.at, Millis::MAX, |e| balances.push(&e)).await?;
        }
        let lines = entries.into_iter().zip(balances.finish(balance)).map(|(entry, balance_minor)| LedgerLine { entry, balance_minor }).collect();
        Ok(LedgerPage { lines, total })
    }

    /// Each message's deliveries are folded from its partition (as
    /// `message` does), one message at a time, into a bounded heap of the
    /// `offset + limit` first: memory is one message plus the page's end.
    async fn deliveries_page(&self, tenant: &str, message_ids: &[String], query: &DeliveryQuery) -> Result<DeliveryPage> {
        let mut window = query.window();
        let mut seen = HashSet::new();
        for (i, mid) in message_ids.iter().filter(|m| seen.insert(m.as_str())).enumerate() {
            if let Some(view) = self.message(tenant, mid).await? {
                for d in view.deliveries {
                    window.push(query.key(i, &d), (mid.clone(), d));
                }
            }
        }
        let (deliveries, total) = window.finish();
        Ok(DeliveryPage { deliveries, total })
    }

    async fn ledger(&self, tenant: &str, limit: usize) -> Result<Vec<LedgerEntry>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let months: Vec<(i32,)> = self.read_all(&self.st.ledger_months, (tenant,)).await?;
        for (month,) in months {
            let want = to_i32("ledger limit", limit - out.len()).unwrap_or(i32::MAX);
            out.extend(self.ledger_rows(tenant, &self.st.ledger_recent, (tenant, month, want)).await?);
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        Ok(out)
    }
}
