//! The embedded ingest log: a table of work items with leases.

use async_trait::async_trait;
use herald_core::model::{DeadLetter, Work};
use herald_core::seams::{DeadToken, Enqueue, LeaseToken, Leased, Queue, Result};
use herald_core::{Clock, StoreError};
use rusqlite::params;

use crate::db::{Db, backend};

/// Durable queue in the shared SQLite file. `not_before` doubles as the
/// schedule for `send_at` and retry delays.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    /// Decides what is due.
    clock: Clock,
}

impl SqliteQueue {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock }
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn publish(&self, items: Vec<Enqueue>) -> Result<()> {
        let rows = items
            .into_iter()
            .map(|i| serde_json::to_string(&i.work).map(|w| (i.key, i.not_before, w)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(backend)?;
        self.db
            .write(move |c| {
                let mut st = c.prepare_cached("INSERT INTO queue (key, not_before, work) VALUES (?1, ?2, ?3)").map_err(backend)?;
                for (key, nb, work) in &rows {
                    st.execute(params![key, nb, work]).map_err(backend)?;
                }
                Ok(())
            })
            .await
    }

    async fn lease(&self, max: usize, lease_ms: i64) -> Result<Vec<Leased>> {
        let now = self.clock.now_ms();
        self.db
            .write(move |c| {
                let mut sel = c
                    .prepare_cached(
                        "SELECT seq, work, redeliveries, leased_until FROM queue
                         WHERE not_before <= ?1 AND leased_until <= ?1 ORDER BY not_before, seq LIMIT ?2",
                    )
                    .map_err(backend)?;
                let rows = sel
                    .query_map(params![now, max as i64], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?, r.get::<_, i64>(3)?))
                    })
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                let mut upd = c.prepare_cached("UPDATE queue SET leased_until = ?2, redeliveries = ?3 WHERE seq = ?1").map_err(backend)?;
                let mut out = Vec::with_capacity(rows.len());
                for (seq, raw, redeliveries, leased_until) in rows {
                    let work: Work = match serde_json::from_str(&raw) {
                        Ok(w) => w,
                        Err(e) => {
                            // Set aside, so one bad row cannot block the queue.
                            tracing::error!(seq, error = %e, "unreadable queue item moved to queue_dead");
                            c.execute("INSERT INTO queue_dead (seq, work, error, at) VALUES (?1, ?2, ?3, ?4)", params![seq, raw, e.to_string(), now])
                                .map_err(backend)?;
                            c.execute("DELETE FROM queue WHERE seq = ?1", [seq]).map_err(backend)?;
                            continue;
                        }
                    };
                    let redeliveries = redeliveries + u32::from(leased_until > 0);
                    upd.execute(params![seq, now + lease_ms, redeliveries]).map_err(backend)?;
                    out.push(Leased { token: LeaseToken(seq.to_string()), work, redeliveries });
                }
                Ok(out)
            })
            .await
    }

    async fn ack(&self, tokens: Vec<LeaseToken>) -> Result<()> {
        let seqs = tokens
            .into_iter()
            .map(|t| t.0.parse::<i64>().map_err(|_| StoreError::Corrupt(format!("bad lease token {}", t.0))))
            .collect::<Result<Vec<_>>>()?;
        self.db
            .write(move |c| {
                let mut st = c.prepare_cached("DELETE FROM queue WHERE seq = ?1").map_err(backend)?;
                for s in &seqs {
                    st.execute([s]).map_err(backend)?;
                }
                Ok(())
            })
            .await
    }

    async fn depth(&self) -> Result<u64> {
        self.db.read(|c| c.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(backend)).await
    }

    async fn recover(&self) -> Result<u64> {
        self.db.write(|c| c.execute("UPDATE queue SET leased_until = 1 WHERE leased_until > 1", []).map(|n| n as u64).map_err(backend)).await
    }

    async fn dead_letter(&self, items: Vec<DeadLetter>) -> Result<()> {
        let rows = items
            .iter()
            .map(|d| serde_json::to_string(d).map(|j| (d.job.tenant.clone(), j)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(backend)?;
        self.db
            .write(move |c| {
                let mut st = c.prepare_cached("INSERT INTO dead_letters (tenant, letter) VALUES (?1, ?2)").map_err(backend)?;
                for (tenant, letter) in &rows {
                    st.execute(params![tenant, letter]).map_err(backend)?;
                }
                Ok(())
            })
            .await
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<(DeadToken, DeadLetter)>> {
        self.db
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT seq, letter FROM dead_letters ORDER BY seq LIMIT ?1").map_err(backend)?;
                let rows = st
                    .query_map([max as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                rows.into_iter()
                    .map(|(seq, raw)| {
                        let letter = serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(format!("dead letter {seq}: {e}")))?;
                        Ok((DeadToken { partition: 0, offset: seq }, letter))
                    })
                    .collect()
            })
            .await
    }

    async fn drop_dead(&self, tokens: Vec<DeadToken>) -> Result<()> {
        self.db
            .write(move |c| {
                let mut st = c.prepare_cached("DELETE FROM dead_letters WHERE seq = ?1").map_err(backend)?;
                for t in &tokens {
                    st.execute([t.offset]).map_err(backend)?;
                }
                Ok(())
            })
            .await
    }
}
