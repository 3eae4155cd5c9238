//! Schema and migrations, tracked by SQLite's `user_version`.

use rusqlite::Connection;

/// Each entry migrates from version i to i+1. Append only.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE queue (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL,
    not_before   INTEGER NOT NULL,
    leased_until INTEGER NOT NULL DEFAULT 0,
    redeliveries INTEGER NOT NULL DEFAULT 0,
    work         TEXT NOT NULL
);
CREATE INDEX queue_due ON queue (not_before, seq);

CREATE TABLE messages (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    template    TEXT,
    accepted_at INTEGER NOT NULL,
    send_at     INTEGER,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE TABLE deliveries (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    recipient   TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    detail      TEXT,
    provider_id TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_message ON deliveries (tenant, message_id, seq);
CREATE INDEX deliveries_by_provider ON deliveries (tenant, provider_id) WHERE provider_id IS NOT NULL;

CREATE TABLE ledger (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    account      TEXT NOT NULL,
    delivery_id  TEXT,
    units        INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency     TEXT NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX ledger_by_tenant ON ledger (tenant, at);
CREATE INDEX ledger_by_delivery ON ledger (tenant, delivery_id);

CREATE TABLE idempotency (
    tenant       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    response     TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;

CREATE TABLE tenants (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    currency TEXT NOT NULL
);
CREATE TABLE api_keys (
    key_sha256 TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants (id)
);
CREATE TABLE accounts (
    tenant       TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    plugin       TEXT NOT NULL,
    config       TEXT NOT NULL,
    rate_per_sec INTEGER,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
CREATE TABLE templates (
    tenant  TEXT NOT NULL REFERENCES tenants (id),
    id      TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE TABLE prices (
    tenant     TEXT NOT NULL,
    channel    TEXT NOT NULL,
    unit_minor INTEGER NOT NULL CHECK (unit_minor >= 0),
    currency   TEXT NOT NULL,
    PRIMARY KEY (tenant, channel)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE queue_dead (
    seq   INTEGER PRIMARY KEY,
    work  TEXT NOT NULL,
    error TEXT NOT NULL,
    at    INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE docs (
    tenant     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, id)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE dead_letters (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    letter TEXT NOT NULL
);
"#,
    // Fair leases: each tenant's due items in its own order, and the tenants
    // with work found by a skip scan over `key` (see `SqliteQueue::lease`).
    r#"
CREATE INDEX queue_by_key ON queue (key, not_before, seq);
"#,
    // Leases read only rows nobody holds: with every held row in the index a
    // lease stepped over all of a tenant's in-flight items (and read each
    // table row to see it was held). A lease that ran out goes back to 1
    // ("held before"; see `SqliteQueue::lease`) through `queue_held`.
    r#"
CREATE INDEX queue_free ON queue (key, not_before, seq) WHERE leased_until <= 1;
CREATE INDEX queue_held ON queue (leased_until) WHERE leased_until > 1;
DROP INDEX queue_by_key;
"#,
    // Console lists page in the database (`ConfigStore::docs_page`): their
    // default orders (numbers, newest first; names; creation time) read
    // the page through these instead of sorting a whole kind.
    r#"
CREATE INDEX docs_by_number ON docs (tenant, kind, json_extract(body, '$.number') COLLATE NOCASE);
CREATE INDEX docs_by_name ON docs (tenant, kind, json_extract(body, '$.name') COLLATE NOCASE);
CREATE INDEX docs_by_created ON docs (tenant, kind, json_extract(body, '$.created_at') COLLATE NOCASE);
"#,
    // Nothing reads the queue by due time across tenants any more (leases go
    // through `queue_free`, expiries through `queue_held`): one index less to
    // write per item published, leased and acknowledged.
    r#"
DROP INDEX queue_due;
"#,
    // The ledger keyed by (tenant, id) in one B-tree: a billed delivery wrote
    // four (the rowid table, the `id` key's index, `ledger_by_tenant`,
    // `ledger_by_delivery`), now two. A delivery's entries are found by their
    // ids, `<delivery id>:<kind>` (see `herald_core::ledger`), so the index
    // on `delivery_id` goes.
    r#"
CREATE TABLE ledger_keyed (
    tenant       TEXT NOT NULL,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    account      TEXT NOT NULL,
    delivery_id  TEXT,
    units        INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency     TEXT NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
INSERT INTO ledger_keyed (tenant, id, kind, channel, account, delivery_id, units, amount_minor, currency, at)
    SELECT tenant, id, kind, channel, account, delivery_id, units, amount_minor, currency, at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_keyed RENAME TO ledger;
CREATE INDEX ledger_by_tenant ON ledger (tenant, at);
"#,
];

/// Several processes may open one file (the gateway and the admin service):
/// each migration runs in an IMMEDIATE transaction that re-reads the version,
/// so two processes starting together never apply the same step twice.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current = tx.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
        if current > i {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made before the keyed ledger keeps its entries, and a
    /// delivery's cost is still found through them.
    #[test]
    fn the_keyed_ledger_keeps_older_entries() {
        let mut c = Connection::open_in_memory().unwrap();
        let before = MIGRATIONS.len() - 1;
        for sql in &MIGRATIONS[..before] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", before as i64).unwrap();
        c.execute_batch(
            "INSERT INTO deliveries (tenant, id, message_id, seq, recipient, status, updated_at) VALUES ('t', 'm.1', 'm', 1, 'r', 'sent', 1);
             INSERT INTO deliveries (tenant, id, message_id, seq, recipient, status, updated_at) VALUES ('t', 'm.10', 'm', 10, 'r', 'sent', 1);
             INSERT INTO ledger VALUES ('m.1:debit', 't', 'debit', 'sms', 'a', 'm.1', 1, 7, 'CNY', 5);
             INSERT INTO ledger VALUES ('m.10:debit', 't', 'debit', 'sms', 'a', 'm.10', 1, 100, 'CNY', 5);
             INSERT INTO ledger VALUES ('top', 't', 'top_up', '', '', NULL, 0, 1000, 'CNY', 6);",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let cost = |id: &str| -> i64 {
            c.query_row(&format!("SELECT {} FROM deliveries d WHERE d.tenant = 't' AND d.id = ?1", crate::store::DELIVERY_COLUMNS), [id], |r| {
                r.get(7)
            })
            .unwrap()
        };
        assert_eq!((cost("m.1"), cost("m.10")), (7, 100));
        let rows: i64 = c.query_row("SELECT COUNT(*) FROM ledger WHERE tenant = 't'", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 3);
        // Keyed per tenant now: another tenant's entry of the same id is its own.
        c.execute("INSERT INTO ledger VALUES ('u', 'm.1:debit', 'debit', 'sms', 'a', 'm.1', 1, 3, 'CNY', 5)", []).unwrap();
        assert_eq!(cost("m.1"), 7);
    }
}
