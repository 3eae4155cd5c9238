//! The embedded ingest log: a table of work items with leases.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald_core::model::{DeadLetter, Message, Work};
use herald_core::seams::{DeadToken, Enqueue, Handoff, LeaseToken, Leased, Queue, Result, Store};
use herald_core::{Clock, StoreError};
use rusqlite::{Connection, params};

use crate::db::{Db, backend};

/// Most tenants (queue keys) one lease visits.
///
/// A visit costs a few index seeks (the next key, whether it has a due row), so
/// a lease stays in the low milliseconds however many tenants have items,
/// and it runs inside the shared write transaction. Tenants that have items
/// but none due (scheduled sends, retry delays, all leased) use up visits
/// too: a lease that spends its budget on them returns what it found and the
/// next one goes on from where it stopped, so every tenant is reached within
/// (tenants / `VISIT_BUDGET`) + 1 calls.
const VISIT_BUDGET: usize = 1024;

/// Tenants (queue keys) with unleased items, in key order from the first one
/// `$op ?1`, each with whether one is due at `?3`: a skip scan over
/// `queue_free` (the unleased rows), a few seeks per tenant however many
/// items each has. Stepped lazily; `?2` bounds it.
macro_rules! keys_from {
    ($op:literal) => {
        concat!(
            "WITH RECURSIVE k(key) AS (
                SELECT (SELECT key FROM queue INDEXED BY queue_free WHERE key ",
            $op,
            " ?1 AND leased_until <= 1 ORDER BY key LIMIT 1)
                UNION ALL
                SELECT (SELECT key FROM queue INDEXED BY queue_free WHERE key > k.key AND leased_until <= 1 ORDER BY key LIMIT 1)
                FROM k WHERE k.key IS NOT NULL
                LIMIT ?2 + 0
            )
            SELECT key, EXISTS (SELECT 1 FROM queue AS q INDEXED BY queue_free WHERE q.key = k.key AND q.leased_until <= 1 AND q.not_before <= ?3)
            FROM k WHERE key IS NOT NULL"
        )
    };
}
/// From the tenant after `?1`.
const KEYS_AFTER: &str = keys_from!(">");
/// From the first tenant (`?1` = '', the least text).
const KEYS_ALL: &str = keys_from!(">=");

/// One tenant's due, unleased items after (`?3`, `?4`) in its order, through
/// `queue_free`.
const DUE_OF_TENANT: &str = "SELECT seq, not_before, work, redeliveries, leased_until FROM queue INDEXED BY queue_free
    WHERE key = ?1 AND leased_until <= 1 AND not_before <= ?2 AND (not_before, seq) > (?3, ?4)
    ORDER BY not_before, seq LIMIT ?5 + 0";

/// Leases that ran out are free again, marked as held before (1), so the
/// next lease counts a redelivery.
const EXPIRE_LEASES: &str = "UPDATE queue SET leased_until = 1 WHERE leased_until > 1 AND leased_until <= ?1 + 0";

/// A due row, read before it is leased.
struct Due {
    seq: i64,
    not_before: i64,
    work: String,
    redeliveries: u32,
    leased_until: i64,
}

/// A tenant with due rows, as the round robin sees it.
struct Turn {
    key: String,
    /// Read and not yet taken, in order.
    rows: VecDeque<Due>,
    /// (not_before, seq) of the last row read: the next read starts after it.
    after: (i64, i64),
    /// The last read returned fewer rows than asked: nothing more is due.
    drained: bool,
}

impl Turn {
    fn live(&self) -> bool {
        !self.rows.is_empty() || !self.drained
    }
}

/// Read up to `limit` more due rows of `turn`'s tenant.
fn read_due(c: &Connection, turn: &mut Turn, now: i64, limit: usize) -> Result<()> {
    let mut st = c.prepare_cached(DUE_OF_TENANT).map_err(backend)?;
    let rows = st
        .query_map(params![turn.key, now, turn.after.0, turn.after.1, limit as i64], |r| {
            Ok(Due { seq: r.get(0)?, not_before: r.get(1)?, work: r.get(2)?, redeliveries: r.get(3)?, leased_until: r.get(4)? })
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    turn.drained = rows.len() < limit;
    if let Some(last) = rows.last() {
        turn.after = (last.not_before, last.seq);
    }
    turn.rows.extend(rows);
    Ok(())
}

/// Up to `max` due, unleased rows, round robin over the tenants that have
/// some (each tenant's rows in order `not_before, seq`), tenants in `skip`
/// left out. Tenants are visited in key order from the one after `start`
/// (where the previous lease stopped), wrapping around, at most
/// [`VISIT_BUDGET`] of them, and only until `max` tenants with due rows are
/// found (more could not all have a turn). Rows are read lazily, a tenant's
/// share of what is still wanted at a time (`max` / tenants at first), so
/// about `max` rows are read in all, not every tenant's whole backlog.
///
/// Also returns where the next lease should start: the tenant whose row was
/// taken last when the batch is full (the round robin goes on after it),
/// else the last tenant visited (everything due that was found was taken;
/// the next lease looks further).
fn pick_fairly(c: &Connection, now: i64, max: usize, skip: &HashSet<String>, start: Option<&str>) -> Result<(Vec<Due>, Option<String>)> {
    let mut turns: Vec<Turn> = Vec::new();
    let mut visited = 0usize;
    let mut last_visited: Option<String> = None;
    // From after `start` to the last key, then (wrapping) from the first key up to `start`.
    let passes = match start {
        Some(s) => vec![(KEYS_AFTER, s), (KEYS_ALL, "")],
        None => vec![(KEYS_ALL, "")],
    };
    'walk: for (pass, (sql, bound)) in passes.into_iter().enumerate() {
        let mut keys = c.prepare_cached(sql).map_err(backend)?;
        let mut rows = keys.query(params![bound, (VISIT_BUDGET - visited) as i64, now]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let key: String = row.get(0).map_err(backend)?;
            // The wrapped pass ends where the first began.
            if pass == 1 && start.is_some_and(|s| key.as_str() > s) {
                break 'walk;
            }
            visited += 1;
            if row.get::<_, bool>(1).map_err(backend)? && !skip.contains(&key) {
                turns.push(Turn { key: key.clone(), rows: VecDeque::new(), after: (i64::MIN, i64::MIN), drained: false });
            }
            last_visited = Some(key);
            if turns.len() >= max || visited >= VISIT_BUDGET {
                break 'walk;
            }
        }
    }

    let mut out: Vec<Due> = Vec::with_capacity(max);
    let mut live = turns.len();
    let mut last_taken: Option<usize> = None;
    'rounds: while live > 0 {
        for (i, turn) in turns.iter_mut().enumerate() {
            if out.len() >= max {
                break 'rounds;
            }
            if !turn.live() {
                continue;
            }
            if turn.rows.is_empty() {
                // Its share of what is still wanted (at least one).
                let share = (max - out.len()).div_ceil(live);
                read_due(c, turn, now, share)?;
            }
            if let Some(row) = turn.rows.pop_front() {
                out.push(row);
                last_taken = Some(i);
            }
            if !turn.live() {
                live -= 1;
            }
        }
    }
    let next = match last_taken {
        Some(i) if out.len() >= max => Some(turns[i].key.clone()),
        _ => last_visited,
    };
    Ok((out, next))
}

/// Durable queue in the shared SQLite file. `not_before` doubles as the
/// schedule for `send_at` and retry delays.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    /// Decides what is due.
    clock: Clock,
    /// The tenant (queue key) where the last lease stopped; the next one
    /// starts after it (see [`pick_fairly`]).
    cursor: Arc<Mutex<Option<String>>>,
    /// Items were published by this process (see [`Queue::idle`]).
    published: Arc<tokio::sync::Notify>,
    /// The store is this database too: a message's rows and its work are
    /// written together (see [`SqliteQueue::beside_store`]).
    beside_store: bool,
    /// This process's dispatcher, when it takes items as they are published
    /// (see [`Queue::hand_off`]).
    handoff: Arc<std::sync::OnceLock<Handoff>>,
}

impl SqliteQueue {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock, cursor: Default::default(), published: Default::default(), beside_store: false, handoff: Default::default() }
    }

    /// The message store is the same database: `publish_message` writes a
    /// message's rows and its work item in one write.
    pub fn beside_store(self) -> Self {
        Self { beside_store: true, ..self }
    }

    /// Insert the items' rows and, first, the message's (when given), in one
    /// write. With a message, a due item goes to the dispatcher at once when
    /// it takes it (see [`Queue::hand_off`]): its row is written leased, and
    /// it is sent once durable, unless the message's rows were there before.
    async fn insert(&self, message: Option<Message>, items: Vec<Enqueue>) -> Result<()> {
        let now = self.clock.now_ms();
        let handoff = self.handoff.get().filter(|_| message.is_some());
        let mut rows = Vec::with_capacity(items.len());
        let mut handed = Vec::new();
        for i in items {
            let raw = serde_json::to_string(&i.work).map_err(backend)?;
            let permit = handoff
                .filter(|h| i.not_before <= now && matches!(i.work, Work::Message(_)) && (h.admits)(&i.key))
                .and_then(|h| h.tx.clone().try_reserve_owned().ok().map(|p| (p, now + h.lease_ms)));
            let leased_until = permit.as_ref().map_or(0, |(_, until)| *until);
            if let Some((permit, _)) = permit {
                handed.push((rows.len(), permit, i.work));
            }
            rows.push((i.key, i.not_before, raw, leased_until));
        }
        let job = move |c: &Connection| {
            let fresh = match &message {
                Some(m) => crate::store::insert_message(c, m)?,
                None => false,
            };
            let mut st = c.prepare_cached("INSERT INTO queue (key, not_before, work, leased_until) VALUES (?1, ?2, ?3, ?4)").map_err(backend)?;
            let mut seqs = Vec::with_capacity(rows.len());
            for (key, nb, work, leased_until) in &rows {
                // A repeated publish (its rows were there) is leased as usual:
                // some of its deliveries may be done.
                let leased_until = if fresh { *leased_until } else { 0 };
                st.execute(params![key, nb, work, leased_until]).map_err(backend)?;
                seqs.push((leased_until > 0).then(|| c.last_insert_rowid()));
            }
            Ok(seqs)
        };
        let hand_over = !handed.is_empty();
        let (db, published) = (self.db.clone(), self.published.clone());
        let finish = async move {
            let seqs = db.write(job).await?;
            for (index, permit, work) in handed {
                if let Some(seq) = seqs[index] {
                    permit.send(Leased { token: LeaseToken(seq.to_string()), work, redeliveries: 0 });
                }
            }
            // Something for the next lease.
            if seqs.iter().any(Option::is_none) {
                published.notify_one();
            }
            Ok(())
        };
        if !hand_over {
            return finish.await;
        }
        // A caller that goes away (a client that hung up) must not strand a
        // row written leased until its lease runs out: the handover finishes
        // on its own task.
        match tokio::spawn(finish).await {
            Ok(done) => done,
            Err(e) => Err(backend(e)),
        }
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn publish(&self, items: Vec<Enqueue>) -> Result<()> {
        self.insert(None, items).await
    }

    async fn publish_message(&self, store: &dyn Store, message: &Message, items: Vec<Enqueue>) -> Result<()> {
        if self.beside_store {
            return self.insert(Some(message.clone()), items).await;
        }
        herald_core::seams::record_and_publish(self, store, message, items).await
    }

    fn hand_off(&self, handoff: Handoff) -> bool {
        // Only a message's rows tell whether an item is a first publish.
        self.beside_store && self.handoff.set(handoff).is_ok()
    }

    async fn idle(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.published.notified()).await;
    }

    async fn lease(&self, max: usize, lease_ms: i64, skip: &[String]) -> Result<Vec<Leased>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now_ms();
        let skip: HashSet<String> = skip.iter().cloned().collect();
        let cursor = self.cursor.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(EXPIRE_LEASES).and_then(|mut st| st.execute([now])).map_err(backend)?;
                let start = cursor.lock().expect("lease cursor").clone();
                let (rows, next) = pick_fairly(c, now, max, &skip, start.as_deref())?;
                if let Some(next) = next {
                    *cursor.lock().expect("lease cursor") = Some(next);
                }
                let mut upd = c.prepare_cached("UPDATE queue SET leased_until = ?2, redeliveries = ?3 WHERE seq = ?1").map_err(backend)?;
                let mut out = Vec::with_capacity(rows.len());
                for Due { seq, work: raw, redeliveries, leased_until, .. } in rows {
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
                let mut st = c.prepare_cached("SELECT seq, letter FROM dead_letters ORDER BY seq LIMIT ?1 + 0").map_err(backend)?;
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
