//! Keyspace, tables and migrations.
//!
//! Each migration is a list of CQL statements with `{ks}` standing for the
//! keyspace. Applied versions are rows of `schema_migrations`. A migration's
//! statements must be idempotent (`IF NOT EXISTS`): a crash between running
//! them and recording the version runs them again on the next `open`.
//! (`ALTER TABLE ... ADD` has no `IF NOT EXISTS` on ScyllaDB; a migration that
//! needs one must be written to tolerate "already exists".)
//!
//! While applying, `open` holds a lease in `schema_lock` (an LWT row with a
//! TTL), so that gateways starting together do not run the same DDL at the
//! same time: on Cassandra (gossip schema) two concurrent `CREATE TABLE` of one
//! table can end with two table ids and a schema disagreement. ScyllaDB with
//! Raft schema would not need it; it costs one LWT per `open` that has work.

use std::time::Duration;

use herald_core::StoreError;
use scylla::client::session::Session;
use scylla::statement::Statement;
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use crate::error::{cql, decode};

/// `(version, description, statements)`. Append only; never edit an applied one.
pub(crate) const MIGRATIONS: &[(i32, &str, &[&str])] = &[
    (
        1,
        "messages, deliveries, ledger, idempotency",
        &[
            // One partition per message: the message header in static columns,
            // then per recipient a creation row (event = '') and its status
            // events. `message`, `queued_deliveries` and `retry_due` are each
            // one single-partition read.
            "CREATE TABLE IF NOT EXISTS {ks}.deliveries_by_message (
                tenant text,
                message_id text,
                channel text STATIC,
                account text STATIC,
                template text STATIC,
                accepted_at bigint STATIC,
                send_at bigint STATIC,
                seq int,
                at bigint,
                event text,
                recipient text,
                attempts int,
                detail text,
                provider_id text,
                PRIMARY KEY ((tenant, message_id), seq, at, event)
            )",
            // Net cost per delivery, next to the deliveries' partition key.
            // Keyed by ledger entry id, so a replay overwrites the same row.
            "CREATE TABLE IF NOT EXISTS {ks}.delivery_costs (
                tenant text,
                message_id text,
                seq int,
                entry_id text,
                amount_minor bigint,
                PRIMARY KEY ((tenant, message_id), seq, entry_id)
            )",
            // Receipts name the provider's id: a lookup to the delivery.
            "CREATE TABLE IF NOT EXISTS {ks}.deliveries_by_provider_id (
                tenant text,
                provider_id text,
                message_id text,
                seq int,
                PRIMARY KEY ((tenant, provider_id))
            )",
            // The console's time-ordered list: newest first within a tenant-day.
            // No longer written since migration 5 (`messages_by_day`): one row
            // per delivery in one partition per tenant-day cost more than the
            // deliveries themselves.
            "CREATE TABLE IF NOT EXISTS {ks}.deliveries_by_day (
                tenant text,
                day date,
                at bigint,
                delivery_id text,
                message_id text,
                recipient text,
                channel text,
                account text,
                PRIMARY KEY ((tenant, day), at, delivery_id)
            ) WITH CLUSTERING ORDER BY (at DESC, delivery_id ASC)",
            // Ledger dedup and the canonical copy of each entry: claimed with
            // LWT `IF NOT EXISTS`; `claim` tells our own (retried) claim from
            // someone else's.
            "CREATE TABLE IF NOT EXISTS {ks}.ledger_by_id (
                tenant text,
                id text,
                claim uuid,
                kind text,
                channel text,
                account text,
                delivery_id text,
                units int,
                amount_minor bigint,
                currency text,
                at bigint,
                PRIMARY KEY ((tenant, id))
            )",
            // Append-only entries, one partition per tenant-month, newest first.
            "CREATE TABLE IF NOT EXISTS {ks}.ledger_entries (
                tenant text,
                month int,
                at bigint,
                id text,
                kind text,
                channel text,
                account text,
                delivery_id text,
                units int,
                amount_minor bigint,
                currency text,
                PRIMARY KEY ((tenant, month), at, id)
            ) WITH CLUSTERING ORDER BY (at DESC, id ASC)",
            // Which months a tenant has entries in (to walk them newest first).
            "CREATE TABLE IF NOT EXISTS {ks}.ledger_months (
                tenant text,
                month int,
                PRIMARY KEY ((tenant), month)
            ) WITH CLUSTERING ORDER BY (month DESC)",
            // The balance aggregate: incremented once per newly claimed entry.
            "CREATE TABLE IF NOT EXISTS {ks}.balances (
                tenant text PRIMARY KEY,
                balance_minor counter
            )",
            // Idempotency keys expire by TTL; rows are write-once and die whole,
            // which is what time-window compaction is for.
            "CREATE TABLE IF NOT EXISTS {ks}.idempotency (
                tenant text,
                idem_key text,
                request_hash text,
                message_id text,
                response text,
                expires_at bigint,
                PRIMARY KEY ((tenant, idem_key))
            ) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': 6}",
        ],
    ),
    (
        2,
        "configuration: tenants, api keys, accounts, templates, prices",
        &[
            "CREATE TABLE IF NOT EXISTS {ks}.tenants (
                id text PRIMARY KEY,
                name text,
                currency text
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.api_keys (
                key_sha256 text PRIMARY KEY,
                tenant text
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.accounts (
                tenant text,
                name text,
                plugin text,
                config text,
                rate_per_sec int,
                PRIMARY KEY ((tenant), name)
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.templates (
                tenant text,
                id text,
                subject text,
                body_text text,
                body_html text,
                PRIMARY KEY ((tenant), id)
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.prices (
                tenant text,
                channel text,
                unit_minor bigint,
                currency text,
                PRIMARY KEY ((tenant), channel)
            )",
        ],
    ),
    (
        3,
        "admin documents: one partition per (tenant, kind), clustered by id",
        &["CREATE TABLE IF NOT EXISTS {ks}.docs (
                tenant text,
                kind text,
                id text,
                body text,
                updated_at bigint,
                PRIMARY KEY ((tenant, kind), id)
            )"],
    ),
    (
        4,
        "schedules: long delays parked in (due minute, shard) buckets, a bucket index, the mover's lease",
        &[
            "CREATE TABLE IF NOT EXISTS {ks}.schedules (
                bucket bigint,
                shard int,
                due bigint,
                id text,
                key text,
                work text,
                PRIMARY KEY ((bucket, shard), due, id)
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.schedule_buckets (
                shard int,
                bucket bigint,
                PRIMARY KEY ((shard), bucket)
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.schedule_leader (
                name text PRIMARY KEY,
                owner text
            )",
        ],
    ),
    (
        5,
        "messages_by_day: the console's time-ordered list, one row per message (replaces deliveries_by_day)",
        &["CREATE TABLE IF NOT EXISTS {ks}.messages_by_day (
                tenant text,
                day date,
                at bigint,
                message_id text,
                channel text,
                account text,
                recipients int,
                PRIMARY KEY ((tenant, day), at, message_id)
            ) WITH CLUSTERING ORDER BY (at DESC, message_id ASC)"],
    ),
    (
        6,
        "a message's recipients in one static cell instead of a created row per delivery",
        &["ALTER TABLE {ks}.deliveries_by_message ADD recipients text STATIC"],
    ),
    (
        7,
        "ledger claims and the balance in one partition per (tenant, shard), changed together by one LWT batch",
        &[
            // A claimed entry id and the balance it moved are written by the
            // same Paxos round, so no crash can leave one without the other
            // (the counter of migration 1 could miss an increment after its
            // claim). Claim rows carry a TTL (`USING TTL` on insert, never a
            // table default: the static balance must not expire).
            "CREATE TABLE IF NOT EXISTS {ks}.ledger_claims (
                tenant text,
                shard int,
                id text,
                kind text,
                channel text,
                account text,
                delivery_id text,
                units int,
                amount_minor bigint,
                currency text,
                at bigint,
                version bigint STATIC,
                balance_minor bigint STATIC,
                PRIMARY KEY ((tenant, shard), id)
            )",
        ],
    ),
];

/// Bootstrap tables: created before any migration runs, so themselves unversioned.
const BOOTSTRAP: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
        scope text,
        version int,
        description text,
        applied_at bigint,
        PRIMARY KEY ((scope), version)
    )",
    "CREATE TABLE IF NOT EXISTS {ks}.schema_lock (
        name text PRIMARY KEY,
        owner uuid
    )",
];

const SCOPE: &str = "herald";
/// How long a lock holder may take before another `open` may take over.
const LOCK_TTL_SECS: i32 = 120;
/// How long `open` waits for another process's migration to finish.
const LOCK_WAIT: Duration = Duration::from_secs(150);

/// Keyspace names go into DDL text, so only `[a-z0-9_]`, starting with a letter, up to 48 chars.
pub(crate) fn check_keyspace(ks: &str) -> Result<(), StoreError> {
    let ok = !ks.is_empty()
        && ks.len() <= 48
        && ks.starts_with(|c: char| c.is_ascii_lowercase())
        && ks.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok { Ok(()) } else { Err(StoreError::Backend(format!("invalid keyspace name {ks:?}: use [a-z][a-z0-9_]{{0,47}}"))) }
}

/// The replication map is operator configuration, spliced into `CREATE KEYSPACE`.
fn check_replication(r: &str) -> Result<(), StoreError> {
    let r = r.trim();
    let ok = r.starts_with('{') && r.ends_with('}') && !r.contains(';') && r.matches('{').count() == 1;
    if ok { Ok(()) } else { Err(StoreError::Backend(format!("invalid replication map {r:?}"))) }
}

fn ddl(sql: &str, ks: &str) -> Statement {
    Statement::new(sql.replace("{ks}", ks))
}

/// Create the keyspace if missing and apply pending migrations. Returns the
/// versions that were applied by this call.
pub(crate) async fn migrate(session: &Session, ks: &str, replication: &str) -> Result<Vec<i32>, StoreError> {
    check_keyspace(ks)?;
    check_replication(replication)?;
    session.query_unpaged(format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}", replication.trim()), ()).await.map_err(cql)?;
    for sql in BOOTSTRAP {
        session.query_unpaged(ddl(sql, ks), ()).await.map_err(cql)?;
    }
    if pending(session, ks).await?.is_empty() {
        return Ok(Vec::new());
    }
    let owner = lock(session, ks).await?;
    let result = apply_pending(session, ks).await;
    // Release even when a migration failed; the TTL covers a crash.
    let released = session.query_unpaged(format!("DELETE FROM {ks}.schema_lock WHERE name = 'migrate' IF owner = ?"), (owner,)).await;
    if let Err(e) = released {
        tracing::warn!(error = %e, keyspace = ks, "releasing the schema lock failed; it expires by TTL");
    }
    result
}

/// Whether an `ALTER TABLE ... ADD` failed because the column exists
/// (Cassandra: "already exists"; ScyllaDB: "conflicts with an existing column").
fn already_there(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("already exist") || e.contains("conflicts with an existing column")
}

/// Versions in `schema_migrations`.
pub(crate) async fn applied(session: &Session, ks: &str) -> Result<Vec<i32>, StoreError> {
    let rows = session
        .query_unpaged(format!("SELECT version FROM {ks}.schema_migrations WHERE scope = '{SCOPE}'"), ())
        .await
        .map_err(cql)?
        .into_rows_result()
        .map_err(decode)?;
    rows.rows::<(i32,)>().map_err(decode)?.map(|r| r.map(|(v,)| v).map_err(decode)).collect()
}

async fn pending(session: &Session, ks: &str) -> Result<Vec<i32>, StoreError> {
    let done = applied(session, ks).await?;
    Ok(MIGRATIONS.iter().map(|(v, _, _)| *v).filter(|v| !done.contains(v)).collect())
}

async fn apply_pending(session: &Session, ks: &str) -> Result<Vec<i32>, StoreError> {
    // Re-read under the lock: another process may have finished meanwhile.
    let todo = pending(session, ks).await?;
    for (version, description, statements) in MIGRATIONS.iter().filter(|(v, _, _)| todo.contains(v)) {
        tracing::info!(keyspace = ks, version, description, "applying CQL migration");
        for sql in *statements {
            match session.query_unpaged(ddl(sql, ks), ()).await {
                Ok(_) => {}
                // `ADD` has no `IF NOT EXISTS` on ScyllaDB: a re-run after a
                // crash finds the column there.
                Err(e) if sql.starts_with("ALTER TABLE") && already_there(&e.to_string()) => {
                    tracing::info!(keyspace = ks, version, "column already added");
                }
                Err(e) => return Err(cql(e)),
            }
        }
        session
            .query_unpaged(
                format!("INSERT INTO {ks}.schema_migrations (scope, version, description, applied_at) VALUES ('{SCOPE}', ?, ?, ?)"),
                (*version, *description, herald_core::now_ms()),
            )
            .await
            .map_err(cql)?;
    }
    Ok(todo)
}

/// Take the migration lease (LWT `IF NOT EXISTS` with a TTL), waiting for another holder.
async fn lock(session: &Session, ks: &str) -> Result<Uuid, StoreError> {
    let owner = Uuid::new_v4();
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    let sql = format!("INSERT INTO {ks}.schema_lock (name, owner) VALUES ('migrate', ?) IF NOT EXISTS USING TTL {LOCK_TTL_SECS}");
    loop {
        let res = session.query_unpaged(sql.as_str(), (owner,)).await.map_err(cql)?;
        if lwt_applied(res)? {
            return Ok(owner);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StoreError::Unavailable(format!("{ks}: another process holds the schema lock")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The `[applied]` column of an LWT result.
pub(crate) fn lwt_applied(res: scylla::response::query_result::QueryResult) -> Result<bool, StoreError> {
    let rows = res.into_rows_result().map_err(decode)?;
    let row: Row = rows.first_row().map_err(decode)?;
    match row.columns.first() {
        Some(Some(CqlValue::Boolean(b))) => Ok(*b),
        other => Err(StoreError::Backend(format!("LWT result without [applied]: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_are_checked() {
        assert!(check_keyspace("herald").is_ok());
        assert!(check_keyspace("herald_t_0123").is_ok());
        assert!(check_keyspace("Herald").is_err());
        assert!(check_keyspace("h; DROP KEYSPACE x").is_err());
        assert!(check_keyspace("").is_err());
        assert!(check_keyspace(&"a".repeat(49)).is_err());
    }

    #[test]
    fn replication_is_a_map() {
        assert!(check_replication("{'class': 'SimpleStrategy', 'replication_factor': 1}").is_ok());
        assert!(check_replication("{'class': 'NetworkTopologyStrategy', 'dc1': 3}").is_ok());
        assert!(check_replication("{'class': 'x'}; DROP TABLE t").is_err());
        assert!(check_replication("SimpleStrategy").is_err());
    }

    #[test]
    fn an_existing_column_is_recognised() {
        assert!(already_there("Invalid column name recipients because it conflicts with an existing column"));
        assert!(already_there("Column with name 'recipients' already exists"));
        assert!(!already_there("Unknown keyspace herald"));
    }

    #[test]
    fn migrations_are_ordered_and_idempotent() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        for (_, _, statements) in MIGRATIONS {
            for s in *statements {
                // An ADD is made idempotent by `apply_pending` (see `already_there`).
                assert!(s.contains("IF NOT EXISTS") || s.starts_with("ALTER TABLE") && s.contains(" ADD "), "not idempotent: {s}");
            }
        }
    }
}
