//! CQL backends (ScyllaDB in production, Apache Cassandra 5 as the test
//! stand-in) for the [`Store`](herald_core::seams::Store) and
//! [`ConfigStore`](herald_core::seams::ConfigStore) seams.
//!
//! One [`CqlStore`] holds one driver `Session` (which pools connections per
//! node and shard) and every statement, prepared once at [`open`]. It passes
//! `herald_conformance::{store_suite, config_suite}` (see `tests/conformance.rs`).
//!
//! # Schema, and why each table is shaped as it is
//!
//! Tables are designed from the queries (one partition read per trait call),
//! not from the entities. All live in one keyspace created by [`open`]; the
//! DDL is in `schema.rs`, applied as numbered migrations recorded in
//! `schema_migrations` (see "Migrations").
//!
//! | table | primary key | serves |
//! |---|---|---|
//! | `deliveries_by_message` | `((tenant, message_id), seq, at, event)` | `record_message`, `message`, `queued_deliveries`, `retry_due`, status updates |
//! | `delivery_costs` | `((tenant, message_id), seq, entry_id)` | `DeliveryRecord::cost_minor` |
//! | `deliveries_by_provider_id` | `((tenant, provider_id))` | `delivery_by_provider_id` (receipts) |
//! | `messages_by_day` | `((tenant, day), at DESC, message_id)` | [`CqlStore::messages_by_day`] (console lists, paged; a message's deliveries page from its own partition) |
//! | `deliveries_by_day` | `((tenant, day), at DESC, delivery_id)` | no longer written (migration 5): a row per delivery cost more than the delivery itself |
//! | `ledger_claims` | `((tenant, shard), id)`, static `version`, `balance_minor` | ledger dedup, the canonical entry and the balance, changed together (migration 7) |
//! | `ledger_by_id` | `((tenant, id))` | no longer written (migration 7) |
//! | `ledger_entries` | `((tenant, month), at DESC, id)` | `ledger` (newest first), `ledger_page` (the period's months streamed), [`CqlStore::ledger_sum`] |
//! | `ledger_months` | `((tenant), month DESC)` | which month partitions to walk |
//! | `balances` | `(tenant)`, `balance_minor counter` | no longer written (migration 7); still added to `balance` |
//! | `idempotency` | `((tenant, idem_key))`, `USING TTL` | `idempotency`, `put_idempotency` |
//! | `tenants` | `(id)` | `tenant`, `tenants` (a full scan: config is small) |
//! | `api_keys` | `(key_sha256)` | `tenant_by_api_key` (then a `tenants` read) |
//! | `accounts` | `((tenant), name)` | `account`, `accounts` |
//! | `templates` | `((tenant), id)` | `template` |
//! | `prices` | `((tenant), channel)` | `price` (tenant row and `"*"` row read concurrently) |
//! | `schedules` | `((bucket, shard), due, id)` — due minute, one of 8 shards | `Schedules`: the Kafka queue's long delays, parked until due |
//! | `schedule_buckets` | `((shard), bucket)` | which minutes may hold parked items |
//! | `schedule_leader` | `(name)`, LWT + TTL | the one node that moves due items back to the topic |
//!
//! Every partition key starts with the tenant (except `tenants`/`api_keys`,
//! whose key *is* the tenant or identifies it), so every query is
//! tenant-scoped by construction.
//!
//! **Messages and deliveries share a partition.** The message header
//! (channel, account, template, accepted_at, send_at) is kept in *static*
//! columns of `deliveries_by_message`; each recipient has a creation row
//! (`event = ''`, `at = accepted_at`, the recipient) and each status update is
//! appended as an *event row* (`event` = the status, with attempts, detail and
//! provider id). So `message`, `queued_deliveries` and `retry_due` are single
//! partition reads, and `record_message` is one unlogged batch per
//! [`BATCH_ROWS`] recipients, all in that partition (atomic and isolated).
//!
//! **Why status events and not an updated status column.** The SQLite store
//! does `UPDATE ... WHERE` "not a downgrade"; CQL cannot condition a plain
//! write on a read. The alternatives were an LWT compare-and-set per update
//! (a read plus a Paxos round, several replica round trips, on the hottest
//! write path) or write-timestamp tricks (which break deletes and the
//! max-attempts rule). Instead, writes are blind appends, and the current
//! state is the *fold* of the events, computed on read (`fold.rs`): events are
//! applied in `(at, status)` order with exactly the SQLite rule (`sent` and
//! `retrying` never replace `delivered`/`read`/`failed`/`dead`; `delivered`
//! never replaces `read`; attempts take the maximum; the provider id is kept
//! when an update has none). Consequences:
//! - a replay writes the identical row (same key), so it is a no-op;
//! - the result does not depend on which of two racing writers (dispatch
//!   recorder, receipt handler) lands first, nor on replica arrival order;
//! - `record_message` writes only immutable columns, so replaying a message
//!   can never reset a status to `queued` (a delivery with no event *is*
//!   queued) — no LWT needed for "insert if absent";
//! - an update for a delivery that was never recorded leaves an event with no
//!   creation row, which the fold ignores (SQLite: `UPDATE` of no row).
//!
//! **Deliveries by provider id** is a lookup table written with each update
//! that carries a provider id (an upsert, so replays are no-ops), pointing at
//! `(message_id, seq)`; the delivery is then read from its message partition.
//!
//! **Deliveries by day** is written alongside `record_message` (one batch per
//! tenant-day, the UTC day the message was accepted), clustered newest first,
//! for the console. DESIGN.md sketches deliveries partitioned by (tenant,
//! day); every `Store` query, though, names a message, so the message
//! partition is the primary copy and the day table an index of immutable
//! facts (time, ids, recipient, channel, account). The current status is read
//! from the message partition (a status mirror here would need the same
//! fold, or LWT).
//!
//! **Ledger.** Append-only, deduplicated by entry id, with a balance aggregate:
//! 1. *Claim and count.* Entries go to one of 32 (`LEDGER_SHARDS`) partitions
//!    `(tenant, shard)` of `ledger_claims` by a stable hash of their message
//!    (delivery entries; other entries by their id), so the debits of one
//!    message's deliveries, recorded together, take one round. Per
//!    shard: read its static `version` and `balance_minor` (a `SERIAL` read),
//!    read which of the ids are already claimed, and for the others send one
//!    conditional batch: `INSERT ... IF NOT EXISTS USING TTL` per id plus
//!    `UPDATE ... SET version = v + 1, balance_minor = b + Σ IF version = v`.
//!    One Paxos round on one partition: the claims and the balance change
//!    together or not at all, so no crash can leave an id claimed but not
//!    counted (the counter this replaced could: a process killed between its
//!    claim and its increment lost the increment for good). A round that
//!    loses (another writer) or times out (outcome unknown) re-reads and
//!    decides again; a shard's writers in one process take turns (a local
//!    lock), so rounds collide only across processes.
//! 2. Write, from the *claimed* (canonical) values, the `ledger_entries` row,
//!    the `ledger_months` row and the `delivery_costs` row. These are
//!    idempotent upserts and are rewritten by every replay, so a crash after
//!    step 1 heals on the next replay — with the original `at` even when the
//!    replay was re-created later with a new time (same id, new `at`).
//!
//! `balance` reads the shards' static balances (one `SELECT DISTINCT ... IN`)
//! plus the pre-migration-7 counter. Claim rows live 35 days (the TTL is on
//! the rows only; a table default would expire the balance too): a replay of
//! the same entry comes from a redelivered record, minutes later, not weeks.
//!
//! Money is `bigint` minor units throughout; no floats anywhere.
//!
//! **Idempotency keys** are written `USING TTL` (seconds until `expires_at`,
//! at least 1) so they disappear by themselves, and reads also check
//! `expires_at > now`, because the caller decides what "now" is.
//!
//! # What is LWT, and where it is used
//!
//! A lightweight transaction (`INSERT ... IF NOT EXISTS`, `UPDATE ... IF`) is
//! a Paxos round among the replicas: linearizable compare-and-set on one
//! partition, at the price of several replica round trips instead of one
//! (prepare/read, propose, commit; more under contention).
//! Used only where a decision must be made exactly once:
//! - ledger claims with their shard's balance, because moving money must
//!   happen exactly once per entry id;
//! - admin documents' compare-and-set (`replace_doc`, `IF updated_at = ?`)
//!   and the config deletes that must not race an edit;
//! - the schedule mover's lease (`schedule_leader`);
//! - the migration lease (`schema_lock`), once per `open` with pending work.
//!
//! Everything else is a blind, idempotent write.
//!
//! # Consistency
//!
//! Execution profiles, one per workload ([`Options`]):
//! - `write`: `LOCAL_QUORUM`, serial `LOCAL_SERIAL` for LWT, 5 s timeout;
//! - `read`: `LOCAL_QUORUM`, 5 s — quorum reads after quorum writes see them
//!   (dispatch reads `queued_deliveries` right after `record_message`,
//!   possibly on another node);
//! - `console`: `LOCAL_ONE`, 10 s — paged lists may lag a little;
//! - session default (DDL, migrations): 60 s.
//!
//! With RF 1 (the tests) all of these are the same thing. Idempotent
//! statements are marked so (`set_is_idempotent`), so the driver may retry
//! them on timeouts; LWTs are not (the ledger re-reads and decides instead).
//!
//! Writes that span partitions (`record`, `record_message` of messages with
//! many recipients, the ledger steps) run as separate requests with bounded
//! concurrency ([`WRITE_CONCURRENCY`]) — never as multi-partition batches
//! (a logged batch costs a batchlog write on two extra nodes and still gives
//! no isolation). Unlogged batches are used only within one partition.
//!
//! # Errors
//!
//! No connection, client/server timeouts, `Unavailable`, `Overloaded`,
//! bootstrapping → `StoreError::Unavailable` (the edge answers 503 +
//! Retry-After); everything else → `StoreError::Backend`; a stored value that
//! does not parse (an unknown status) → `StoreError::Corrupt`.
//!
//! # Migrations
//!
//! `open` creates the keyspace (`IF NOT EXISTS`, with the given replication
//! map), then the bootstrap tables `schema_migrations` (applied versions) and
//! `schema_lock`, then applies the versions not yet recorded, each a list of
//! `IF NOT EXISTS` statements, under an LWT lease with a TTL so that nodes
//! starting together do not run DDL concurrently. Re-opening with nothing
//! pending costs one single-partition read.
//!
//! # Known limits
//!
//! - `Store::record` is documented as atomic; across partitions CQL cannot be.
//!   Every part is idempotent and the recorder retries the whole call on
//!   error, so replays converge, but a reader may see some updates of a
//!   failed `record` before the retry.
//! - Entries claimed in `ledger_by_id` before migration 7 and replayed after it
//!   would be counted again (a replay comes minutes after the original, so
//!   only an upgrade in those minutes can do it). Their balance stays in the
//!   old counter, which `balance` still adds.
//! - A shard's claim rounds are serialized; one shard takes a few hundred
//!   rounds a second. Entries spread over 32 shards and a round carries every
//!   entry of its shard in one `record` call, so this is far from the
//!   dispatch rate; [`CqlStore::ledger_sum`] audits the balance.
//! - Status order is by the update's `at` (then the status name), not by
//!   arrival as in SQLite. With clocks in sync this is the better order; with
//!   skewed clocks a late event can sort early. The downgrade rule still holds.
//! - "Insert if absent" for a replayed message holds because a message id
//!   always carries the same content: a second `record_message` with the
//!   same id but *different* recipients would overwrite them (SQLite would
//!   keep the first); statuses are never touched by it.
//! - `retry_due` gets only a delivery id: the message is found by parsing
//!   `<message id>.<index>` (as the server's callback and consume code do).
//! - `deliveries_by_provider_id` is written for every update carrying a
//!   provider id, also when the fold later ignores that update.
//! - `put_idempotency` overwrites (as the trait says); "first request wins"
//!   under a race of two identical requests would need an LWT insert and a
//!   trait method that returns the existing record.
//! - Hot partitions: one tenant-day in `messages_by_day`, one tenant-month in
//!   `ledger_entries`. For tenants with millions of sends a day, add a bucket
//!   to those partition keys. A `ledger_claims` shard holds 35 days of a
//!   tenant's claims / 32.
//! - LWTs run at `LOCAL_SERIAL`: a ledger id claimed from two datacenters at
//!   once could be claimed twice. A tenant's work is consumed in one place
//!   (one queue partition), so this does not arise; set `serial_consistency`
//!   to `Serial` if it can.
//! - The migration lease lives 120 s; a migration that runs longer lets a
//!   waiting node start the same (idempotent) DDL.
//! - `tenants()` is a full table scan (fine for a config table).
//! - A message's partition grows with its recipients and their events; a
//!   message with 100k recipients is a large partition (read with paging).
//! - Console pages (`docs_page`, `ledger_page`, `deliveries_page`): CQL has
//!   no OFFSET and orders only by clustering columns, so a page streams the
//!   whole (tenant, kind) partition, the period's ledger months or the
//!   push's message partitions with the driver's paging into a bounded heap
//!   of `offset + limit` rows (`herald_core::doc_query::TopK`), counting the
//!   total: reads grow with the partition, memory with the page's end. A
//!   ledger page's balances also read the entries since its oldest entry.

mod config;
mod error;
mod fold;
mod schedules;
mod schema;
mod security;
mod store;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use herald_core::{Millis, StoreError};
use scylla::client::execution_profile::{ExecutionProfile, ExecutionProfileHandle};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

pub use fold::day_of;
pub use scylla::response::PagingState;
pub use security::{Credentials, Tls};
pub use store::{DayEntry, DayPage};

use crate::error::{cql, decode};

/// Rows per unlogged (single-partition) batch.
pub const BATCH_ROWS: usize = 256;
/// In-flight requests per multi-partition write.
pub const WRITE_CONCURRENCY: usize = 32;

/// Tunables. `Options::default()` is what [`open`] uses.
#[derive(Debug, Clone)]
pub struct Options {
    pub write_consistency: Consistency,
    pub serial_consistency: SerialConsistency,
    pub read_consistency: Consistency,
    pub console_consistency: Consistency,
    /// Client-side timeout of one hot-path request (all driver retries included).
    pub request_timeout: Duration,
    pub console_timeout: Duration,
    pub schema_timeout: Duration,
    pub connect_timeout: Duration,
    /// The local datacenter, for `LOCAL_*` consistency and routing (None: no preference).
    pub local_dc: Option<String>,
    /// Login for servers with `PasswordAuthenticator` (None: no login).
    pub credentials: Option<Credentials>,
    /// Client TLS (None: plaintext).
    pub tls: Option<Tls>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            write_consistency: Consistency::LocalQuorum,
            serial_consistency: SerialConsistency::LocalSerial,
            read_consistency: Consistency::LocalQuorum,
            console_consistency: Consistency::LocalOne,
            request_timeout: Duration::from_secs(5),
            console_timeout: Duration::from_secs(10),
            schema_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            local_dc: None,
            credentials: None,
            tls: None,
        }
    }
}

pub(crate) struct Profiles {
    pub write: ExecutionProfileHandle,
    pub read: ExecutionProfileHandle,
    pub console: ExecutionProfileHandle,
    /// Linearizable reads (`SERIAL`/`LOCAL_SERIAL`, as `serial_consistency`) before a compare-and-set.
    pub serial: ExecutionProfileHandle,
}

/// The CQL store: a driver session plus prepared statements.
pub struct CqlStore {
    session: Arc<Session>,
    keyspace: String,
    pub(crate) st: store::Statements,
    pub(crate) cfg: config::Statements,
    pub(crate) sch: schedules::Statements,
    pub(crate) profiles: Profiles,
    /// Serialize this process's ledger claims per (tenant, shard), hashed.
    pub(crate) claim_locks: Box<[tokio::sync::Mutex<()>]>,
}

/// Connect, create the keyspace if missing, apply migrations and prepare
/// statements. `replication` is a CQL map, e.g.
/// `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`.
pub async fn open(contact_points: &[String], keyspace: &str, replication: &str) -> Result<CqlStore, StoreError> {
    open_with(contact_points, keyspace, replication, Options::default()).await
}

/// [`open`] with explicit [`Options`].
pub async fn open_with(contact_points: &[String], keyspace: &str, replication: &str, o: Options) -> Result<CqlStore, StoreError> {
    schema::check_keyspace(keyspace)?;
    let lbp = || {
        let b = DefaultPolicy::builder().token_aware(true);
        match &o.local_dc {
            Some(dc) => b.prefer_datacenter(dc.clone()).permit_dc_failover(false).build(),
            None => b.build(),
        }
    };
    let profile = |c: Consistency, timeout: Duration| {
        ExecutionProfile::builder()
            .consistency(c)
            .serial_consistency(Some(o.serial_consistency))
            .request_timeout(Some(timeout))
            .load_balancing_policy(lbp())
            .build()
            .into_handle()
    };
    let profiles = Profiles {
        write: profile(o.write_consistency, o.request_timeout),
        read: profile(o.read_consistency, o.request_timeout),
        console: profile(o.console_consistency, o.console_timeout),
        serial: profile(
            match o.serial_consistency {
                SerialConsistency::Serial => Consistency::Serial,
                SerialConsistency::LocalSerial => Consistency::LocalSerial,
            },
            o.request_timeout,
        ),
    };
    let mut builder = SessionBuilder::new()
        .known_nodes(contact_points)
        .connection_timeout(o.connect_timeout)
        .default_execution_profile_handle(profile(o.write_consistency, o.schema_timeout))
        // Token-aware routing needs only our keyspace's replication metadata.
        .keyspaces_to_fetch([keyspace.to_string()]);
    if let Some(c) = &o.credentials {
        builder = builder.user(c.username.clone(), c.password.clone());
    }
    if let Some(t) = &o.tls {
        let config = t.client_config().map_err(StoreError::Backend)?;
        builder = builder.tls_context(Some(scylla::client::session::TlsContext::Rustls023(config)));
    }
    let password = o.credentials.as_ref().map(|c| c.password.as_str());
    let session = builder.build().await.map_err(|e| match security::explain(&e.to_string(), password) {
        // Refused credentials or certificates: retrying will not help.
        Some(why) => StoreError::Backend(why),
        None => cql(e),
    })?;
    schema::migrate(&session, keyspace, replication).await?;
    let st = store::Statements::prepare(&session, keyspace, &profiles).await?;
    let cfg = config::Statements::prepare(&session, keyspace, &profiles).await?;
    let sch = schedules::Statements::prepare(&session, keyspace, &profiles).await?;
    let claim_locks = (0..64).map(|_| tokio::sync::Mutex::new(())).collect();
    Ok(CqlStore { session: Arc::new(session), keyspace: keyspace.to_string(), st, cfg, sch, profiles, claim_locks })
}

impl CqlStore {
    /// The driver session (for operations tooling and tests).
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// Migration versions recorded as applied, ascending.
    pub async fn applied_migrations(&self) -> Result<Vec<i32>, StoreError> {
        let mut v = schema::applied(&self.session, &self.keyspace).await?;
        v.sort_unstable();
        Ok(v)
    }

    pub(crate) async fn exec(&self, st: &PreparedStatement, values: impl SerializeRow) -> Result<QueryResult, StoreError> {
        self.session.execute_unpaged(st, values).await.map_err(cql)
    }

    /// The first row, if any (for reads of at most one row).
    pub(crate) async fn read_one<R>(&self, st: &PreparedStatement, values: impl SerializeRow) -> Result<Option<R>, StoreError>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        let rows = self.exec(st, values).await?.into_rows_result().map_err(decode)?;
        rows.maybe_first_row::<R>().map_err(decode)
    }

    /// Every row, fetched page by page.
    pub(crate) async fn read_all<R>(&self, st: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let pager = self.session.execute_iter(st.clone(), values).await.map_err(cql)?;
        let mut rows = pager.rows_stream::<R>().map_err(decode)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().await {
            out.push(r.map_err(cql)?);
        }
        Ok(out)
    }

    /// Every row, fetched page by page and handed to `each` as it comes
    /// (never all held at once).
    pub(crate) async fn read_each<R>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
        mut each: impl FnMut(R) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let pager = self.session.execute_iter(st.clone(), values).await.map_err(cql)?;
        let mut rows = pager.rows_stream::<R>().map_err(decode)?;
        while let Some(r) = rows.next().await {
            each(r.map_err(cql)?)?;
        }
        Ok(())
    }

    /// One unlogged batch of `st` over `rows`. Callers pass rows of one partition only.
    pub(crate) async fn batch<V: SerializeRow>(&self, st: &PreparedStatement, rows: &[V]) -> Result<(), StoreError> {
        let mut b = Batch::new(BatchType::Unlogged);
        for _ in rows {
            b.append_statement(st.clone());
        }
        b.set_is_idempotent(true);
        b.set_execution_profile_handle(Some(self.profiles.write.clone()));
        self.session.batch(&b, rows).await.map(|_| ()).map_err(cql)
    }
}

/// Run writes with at most [`WRITE_CONCURRENCY`] in flight. All of them run to
/// the end even when one fails (a dropped ledger write could stop between its
/// claim and its increment); the first error is returned.
pub(crate) async fn run_all(tasks: Vec<BoxFuture<'_, Result<(), StoreError>>>) -> Result<(), StoreError> {
    let results: Vec<_> = futures::stream::iter(tasks).buffer_unordered(WRITE_CONCURRENCY).collect().await;
    results.into_iter().collect()
}

/// Prepare `sql` (with `{ks}` replaced) under a profile.
pub(crate) async fn prepare(
    session: &Session,
    ks: &str,
    sql: &str,
    profile: &ExecutionProfileHandle,
    idempotent: bool,
) -> Result<PreparedStatement, StoreError> {
    let mut p = session.prepare(sql.replace("{ks}", ks)).await.map_err(cql)?;
    p.set_execution_profile_handle(Some(profile.clone()));
    p.set_is_idempotent(idempotent);
    Ok(p)
}

/// `None` as "unset" (no write, no tombstone) rather than null.
pub(crate) fn unset<T>(v: Option<T>) -> scylla::value::MaybeUnset<T> {
    v.map_or(scylla::value::MaybeUnset::Unset, scylla::value::MaybeUnset::Set)
}

pub(crate) fn to_i32(what: &str, v: impl TryInto<i32>) -> Result<i32, StoreError> {
    v.try_into().map_err(|_| StoreError::Backend(format!("{what} does not fit a CQL int")))
}

/// Seconds from `now` until `expires_at`, as a CQL TTL (1 s to 20 years).
pub(crate) fn ttl_secs(expires_at: Millis, now: Millis) -> i32 {
    const MAX_TTL: i64 = 630_720_000;
    (expires_at.saturating_sub(now).saturating_add(999) / 1000).clamp(1, MAX_TTL) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_and_clamps() {
        assert_eq!(ttl_secs(1_000, 0), 1);
        assert_eq!(ttl_secs(1_001, 0), 2);
        assert_eq!(ttl_secs(0, 5_000), 1, "already expired still gets a TTL (0 would mean forever)");
        assert_eq!(ttl_secs(i64::MAX, 0), 630_720_000);
    }
}
