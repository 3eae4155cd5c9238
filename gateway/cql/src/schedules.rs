//! `Schedules`: long delays parked in time buckets until due.
//!
//! - `schedules`: partition `(bucket, shard)` — the due minute and one of
//!   [`SHARDS`] shards (from the item id), so one busy minute spreads over
//!   several partitions; clustered by `(due, id)`.
//! - `schedule_buckets`: partition `shard`, clustered by `bucket` — the index
//!   of buckets that may hold items, so the mover reads only those. A bucket's
//!   index row is written before its items and removed once the bucket is in
//!   the past and empty.
//! - `schedule_leader`: one LWT row with a TTL; its owner is the node that
//!   moves due items back to the log.

use async_trait::async_trait;
use herald_core::model::Work;
use herald_core::seams::{Enqueue, Result, Schedules};
use herald_core::{Millis, StoreError};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::error::cql;
use crate::{CqlStore, Profiles, prepare, run_all};

/// Partitions per due minute.
pub const SHARDS: i32 = 8;
const BUCKET_MS: Millis = 60_000;

pub(crate) struct Statements {
    insert: PreparedStatement,
    index: PreparedStatement,
    buckets: PreparedStatement,
    items: PreparedStatement,
    delete: PreparedStatement,
    unindex: PreparedStatement,
    take_lead: PreparedStatement,
    renew_lead: PreparedStatement,
}

impl Statements {
    pub(crate) async fn prepare(s: &Session, ks: &str, p: &Profiles) -> Result<Self> {
        let (w, r) = (&p.write, &p.read);
        Ok(Self {
            insert: prepare(s, ks, "INSERT INTO {ks}.schedules (bucket, shard, due, id, key, work) VALUES (?, ?, ?, ?, ?, ?)", w, true).await?,
            index: prepare(s, ks, "INSERT INTO {ks}.schedule_buckets (shard, bucket) VALUES (?, ?)", w, true).await?,
            buckets: prepare(s, ks, "SELECT bucket FROM {ks}.schedule_buckets WHERE shard = ? AND bucket <= ?", r, true).await?,
            items: prepare(s, ks, "SELECT due, id, key, work FROM {ks}.schedules WHERE bucket = ? AND shard = ? AND due <= ?", r, true).await?,
            delete: prepare(s, ks, "DELETE FROM {ks}.schedules WHERE bucket = ? AND shard = ? AND due = ? AND id = ?", w, true).await?,
            unindex: prepare(s, ks, "DELETE FROM {ks}.schedule_buckets WHERE shard = ? AND bucket = ?", w, true).await?,
            // LWTs are not retried by the driver on their own.
            take_lead: prepare(s, ks, "INSERT INTO {ks}.schedule_leader (name, owner) VALUES ('mover', ?) IF NOT EXISTS USING TTL ?", w, false)
                .await?,
            renew_lead: prepare(s, ks, "UPDATE {ks}.schedule_leader USING TTL ? SET owner = ? WHERE name = 'mover' IF owner = ?", w, false).await?,
        })
    }
}

fn shard_of(id: &str) -> i32 {
    (herald_core::stable_hash(id) % SHARDS as u64) as i32
}

fn token(bucket: Millis, shard: i32, due: Millis, id: &str) -> String {
    format!("{bucket}:{shard}:{due}:{id}")
}

fn parse_token(t: &str) -> Result<(Millis, i32, Millis, &str)> {
    let bad = || StoreError::Corrupt(format!("bad schedule token {t:?}"));
    let mut parts = t.splitn(4, ':');
    let mut next = || parts.next().ok_or_else(bad);
    let (b, s, d, id) = (next()?, next()?, next()?, next()?);
    Ok((b.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?, id))
}

#[async_trait]
impl Schedules for CqlStore {
    async fn park(&self, items: Vec<Enqueue>) -> Result<()> {
        let mut rows = Vec::with_capacity(items.len());
        for i in items {
            let id = uuid::Uuid::now_v7().to_string();
            let work = serde_json::to_string(&i.work).map_err(|e| StoreError::Backend(e.to_string()))?;
            rows.push((i.not_before.div_euclid(BUCKET_MS), shard_of(&id), i.not_before, id, i.key, work));
        }
        // The index first: an item is never in a bucket the mover does not know.
        let mut index: Vec<(i32, Millis)> = rows.iter().map(|r| (r.1, r.0)).collect();
        index.sort_unstable();
        index.dedup();
        run_all(index.iter().map(|v| Box::pin(async move { self.exec(&self.sch.index, v).await.map(|_| ()) }) as _).collect()).await?;
        run_all(rows.iter().map(|v| Box::pin(async move { self.exec(&self.sch.insert, v).await.map(|_| ()) }) as _).collect()).await
    }

    async fn lead(&self, node: &str, lease_ms: i64) -> Result<bool> {
        let ttl = i32::try_from(((lease_ms.max(1) + 999) / 1000).max(1)).unwrap_or(i32::MAX);
        let res = self.session().execute_unpaged(&self.sch.take_lead, (node, ttl)).await.map_err(cql)?;
        if crate::schema::lwt_applied(res)? {
            return Ok(true);
        }
        let res = self.session().execute_unpaged(&self.sch.renew_lead, (ttl, node, node)).await.map_err(cql)?;
        crate::schema::lwt_applied(res)
    }

    async fn due(&self, now: Millis, max: usize) -> Result<Vec<(String, Enqueue)>> {
        let now_bucket = now.div_euclid(BUCKET_MS);
        let mut buckets = Vec::new();
        for shard in 0..SHARDS {
            for (bucket,) in self.read_all::<(Millis,)>(&self.sch.buckets, (shard, now_bucket)).await? {
                buckets.push((bucket, shard));
            }
        }
        buckets.sort_unstable();
        // Minute by minute; within a minute, all its shards merged in due order.
        let mut out = Vec::new();
        for minute in buckets.chunk_by(|a, b| a.0 == b.0) {
            if out.len() >= max {
                break;
            }
            let mut rows = Vec::new();
            for &(bucket, shard) in minute {
                let items = self.read_all::<(Millis, String, String, String)>(&self.sch.items, (bucket, shard, now)).await?;
                if items.is_empty() && bucket < now_bucket {
                    // A past bucket with nothing left: drop it from the index.
                    self.exec(&self.sch.unindex, (shard, bucket)).await?;
                }
                rows.extend(items.into_iter().map(|r| (bucket, shard, r)));
            }
            rows.sort_by(|a, b| (a.2.0, &a.2.1).cmp(&(b.2.0, &b.2.1)));
            for (bucket, shard, (due, id, key, work)) in rows.into_iter().take(max - out.len()) {
                let work: Work = serde_json::from_str(&work).map_err(|e| StoreError::Corrupt(format!("schedule {id}: {e}")))?;
                out.push((token(bucket, shard, due, &id), Enqueue { key, not_before: due, work }));
            }
        }
        Ok(out)
    }

    async fn release(&self, tokens: Vec<String>) -> Result<()> {
        let keys = tokens.iter().map(|t| parse_token(t)).collect::<Result<Vec<_>>>()?;
        run_all(keys.iter().map(|k| Box::pin(async move { self.exec(&self.sch.delete, k).await.map(|_| ()) }) as _).collect()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_shards_are_stable() {
        let t = token(29_000_000, 3, 1_740_000_000_123, "0190-ab:cd");
        assert_eq!(parse_token(&t).unwrap(), (29_000_000, 3, 1_740_000_000_123, "0190-ab:cd"));
        assert!(parse_token("1:2").is_err());
        assert!(parse_token("x:2:3:id").is_err());
        assert_eq!(shard_of("a"), shard_of("a"));
        let spread: std::collections::HashSet<i32> = (0..200).map(|i| shard_of(&format!("id-{i}"))).collect();
        assert_eq!(spread.len(), SHARDS as usize, "ids spread over every shard");
    }
}
