//! The distributed ingest log: Herald's `Queue` seam on Apache Kafka.
//!
//! - **Produce** (ingest role): JSON `Work` records keyed by tenant, so one
//!   tenant's work stays ordered on one partition and one dispatch node owns
//!   it. Idempotent producer with `acks=all`: `publish` returns only after the
//!   brokers have the record; if they cannot be reached within
//!   `produce_timeout_ms` it fails with `Unavailable` (the API answers 503).
//!   The header `herald-not-before` carries the due time.
//! - **Consume** (dispatch role): one consumer-group member per process.
//!   Offsets are stored only for records whose effects are recorded: `ack`
//!   marks an offset done and the per-partition **watermark** (highest offset
//!   below which everything is done) is stored; librdkafka commits stored
//!   offsets in the background. Records finishing out of order wait for the
//!   ones before them.
//! - **Leases**: a record handed out and not acknowledged within its lease is
//!   handed out again by this process (the same contract as the embedded
//!   queue). After a crash or a rebalance, everything after the committed
//!   watermark is redelivered to the partition's new owner.
//! - **Delays** (retries, `send_at`): a record not yet due is held in memory
//!   and handed out when due; its offset is not stored before then, so it
//!   survives a crash. With a schedule store (`with_schedules`; the CQL
//!   store's time-bucketed `schedules` table), anything due later than
//!   `park_after_ms` is parked there instead — at publish, or when such a
//!   record is read from the topic (then its offset moves on) — and one
//!   dispatch node at a time (a lease in the store) moves due items back to
//!   the topic every second. Without one, long schedules hold back the
//!   watermark of their partition.
//! - **Rebalance**: before partitions are revoked the consumer waits (bounded)
//!   for their in-flight records to be acknowledged and commits, so the next
//!   owner starts after them.
//!
//! - **Dead letters**: deliveries whose retries ran out go to the dead-letter
//!   topic (`dead_topic`, key = tenant, value = JSON `DeadLetter`). The
//!   re-drive reads it with its own consumer group (`<group>.dead`, explicit
//!   assignment, no membership) and commits past what it re-drove.
//!
//! Message schema (for enterprise systems producing directly): the value is
//! the JSON of `herald_core::model::Work` (`{"type": "message", ...}`), the key
//! is the tenant id, and the optional header `herald-not-before` is the due
//! time in Unix milliseconds (decimal ASCII).

mod security;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_core::model::{DeadLetter, Work};
use herald_core::seams::{DeadToken, Enqueue, LeaseToken, Leased, Queue, Result, Schedules};
use herald_core::{Clock, StoreError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use security::{Connection, Watch};
pub use security::{SaslMechanism, Secret, SecurityProtocol, resolve_secret, validate};

/// The producer; its context watches and logs the connection's errors.
type Producer = FutureProducer<Watch>;

const NOT_BEFORE: &str = "herald-not-before";

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub brokers: String,
    pub topic: String,
    /// Dead-letter topic: deliveries that gave up, until re-driven.
    pub dead_topic: String,
    /// Consumer group of the dispatch nodes.
    pub group: String,
    /// Partitions when Herald creates the topic (the unit of dispatch scale-out).
    pub partitions: i32,
    pub replication: i32,
    /// How long `publish` waits for the brokers before answering Unavailable.
    pub produce_timeout_ms: u64,
    /// How long a rebalance waits for in-flight records of revoked partitions.
    pub drain_on_revoke_ms: u64,
    /// With a schedule store: items due later than this from now are parked there.
    pub park_after_ms: u64,
    /// Record key: 1 (the default) keys every record by its tenant, so a
    /// tenant's work keeps its order and one dispatch node owns it. N > 1
    /// spreads each tenant over N keys (`<tenant>#<0..N>`, by message or
    /// incident), so one big tenant can use several dispatch nodes; the order
    /// is then kept per message only, and the per-(tenant, channel) and
    /// per-account rate limits apply per dispatch node (divide them by the
    /// number of nodes).
    pub tenant_shards: u32,
    /// `plaintext` (the default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// With `sasl_*`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    /// Never logged. Or `sasl_password_file`, or `HERALD_QUEUE__KAFKA__SASL_PASSWORD`.
    pub sasl_password: Option<Secret>,
    /// A file holding the SASL password (one trailing line break is dropped).
    pub sasl_password_file: Option<PathBuf>,
    /// PEM file of the CA(s) that signed the brokers' certificates (default:
    /// the system's trust store).
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificate (PEM), for brokers that require one (mutual TLS).
    pub ssl_certificate_location: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub ssl_key_location: Option<PathBuf>,
    /// Password of an encrypted `ssl_key_location`. Never logged.
    pub ssl_key_password: Option<Secret>,
    pub ssl_key_password_file: Option<PathBuf>,
    /// librdkafka properties passed through to every client, e.g.
    /// `{ "socket.keepalive.enable" = "true" }`. Properties Herald sets
    /// itself or that have a setting above are refused. Values of keys that
    /// look secret (`*password*`, `*secret*`, `*key*`...) are never shown.
    #[serde(serialize_with = "security::serialize_options")]
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("dead_topic", &self.dead_topic)
            .field("group", &self.group)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("produce_timeout_ms", &self.produce_timeout_ms)
            .field("drain_on_revoke_ms", &self.drain_on_revoke_ms)
            .field("park_after_ms", &self.park_after_ms)
            .field("tenant_shards", &self.tenant_shards)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("sasl_password_file", &self.sasl_password_file)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .field("ssl_key_password", &self.ssl_key_password)
            .field("ssl_key_password_file", &self.ssl_key_password_file)
            .field("options", &security::RedactedOptions(&self.options))
            .finish()
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "herald.work".into(),
            dead_topic: "herald.work.dead".into(),
            group: "herald-dispatch".into(),
            partitions: 8,
            replication: 1,
            produce_timeout_ms: 5_000,
            drain_on_revoke_ms: 10_000,
            park_after_ms: 300_000,
            tenant_shards: 1,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            sasl_password_file: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_key_password: None,
            ssl_key_password_file: None,
            options: BTreeMap::new(),
        }
    }
}

/// The record key of an item: its tenant, or with `tenant_shards` > 1 its
/// tenant and a shard picked by what the work belongs to (FNV-1a, the same
/// in every process).
fn record_key(cfg: &KafkaConfig, item: &Enqueue) -> String {
    if cfg.tenant_shards <= 1 {
        return item.key.clone();
    }
    let hash = herald_core::stable_hash(item.work.owner_id());
    format!("{}#{}", item.work.tenant(), hash % u64::from(cfg.tenant_shards))
}

/// A record handed out and not yet acknowledged.
struct Pending {
    work: Work,
    not_before: i64,
    lease_until: Option<Instant>,
    redeliveries: u32,
    done: bool,
}

/// Per-partition bookkeeping: offset → record, in offset order.
#[derive(Default)]
struct Tracker {
    partitions: HashMap<i32, BTreeMap<i64, Pending>>,
}

impl Tracker {
    /// Remove the done prefix of a partition; the offset to store is the
    /// first one not done (or one past the last).
    fn advance(&mut self, partition: i32) -> Option<i64> {
        let map = self.partitions.get_mut(&partition)?;
        let mut next = None;
        while let Some((&off, p)) = map.iter().next() {
            if !p.done {
                break;
            }
            map.remove(&off);
            next = Some(off + 1);
        }
        next
    }

    fn in_flight(&self, partition: i32) -> usize {
        self.partitions.get(&partition).map_or(0, |m| m.values().filter(|p| !p.done).count())
    }
}

struct Ctx {
    tracker: Arc<Mutex<Tracker>>,
    drain: Duration,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _base: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let deadline = Instant::now() + self.drain;
            // Let in-flight work of the revoked partitions finish (bounded).
            loop {
                let busy: usize = {
                    let t = self.tracker.lock().expect("tracker");
                    parts.iter().map(|p| t.in_flight(*p)).sum()
                };
                if busy == 0 || Instant::now() > deadline {
                    if busy > 0 {
                        tracing::warn!(records = busy, "rebalance: revoking partitions with work in flight; it will be redelivered");
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut t = self.tracker.lock().expect("tracker");
            for p in parts {
                t.partitions.remove(&p);
            }
        }
    }
}

pub struct KafkaQueue {
    cfg: KafkaConfig,
    /// Brokers, security and options shared by every client (holds secrets).
    conn: Connection,
    producer: Producer,
    consumer: tokio::sync::OnceCell<Arc<StreamConsumer<Ctx>>>,
    inspector: tokio::sync::OnceCell<Arc<BaseConsumer>>,
    tracker: Arc<Mutex<Tracker>>,
    schedules: Option<Arc<dyn Schedules>>,
    /// Decides what is due (and what is far enough ahead to park).
    clock: Clock,
    /// The tenant whose record the last lease took last; the next lease's
    /// round robin starts after it.
    cursor: Mutex<Option<String>>,
}

fn unavailable(e: KafkaError) -> StoreError {
    StoreError::Unavailable(format!("kafka: {e}"))
}

impl KafkaQueue {
    /// Connect a producer and make sure the topic exists.
    pub async fn connect(cfg: KafkaConfig) -> Result<Self> {
        let conn = Connection::new(&cfg).map_err(StoreError::Backend)?;
        let fail = |e: KafkaError| StoreError::Backend(format!("kafka: {}", conn.scrub(&e.to_string())));
        // The producer's polling thread serves the client callbacks: `watch`
        // sees its connection errors.
        let watch = Watch::new(&conn, &cfg);
        let producer: Producer = conn
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", cfg.produce_timeout_ms.to_string())
            // Warnings reach `watch` whatever the `log` crate's level.
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning)
            .create_with_context(watch.clone())
            .map_err(fail)?;
        let admin: AdminClient<DefaultClientContext> = conn.client().create().map_err(fail)?;
        let topics = [&cfg.topic, &cfg.dead_topic].map(|t| NewTopic::new(t, cfg.partitions, TopicReplication::Fixed(cfg.replication)));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(10)));
        // A broker that is down now must not stop the gateway from starting:
        // publishing answers Unavailable (503) until it is back. Refused
        // credentials, an untrusted certificate or the wrong protocol will not
        // heal by waiting: those stop the start, naming the setting.
        let created = tokio::select! {
            r = admin.create_topics(&topics, &opts) => r,
            fatal = watch.failed() => return Err(StoreError::Backend(fatal)),
        };
        match created {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((t, code)) => {
                            tracing::warn!(topic = %t, %code, "could not create the topic; relying on broker auto-creation")
                        }
                    }
                }
            }
            Err(e) => {
                if let Some(fatal) = watch.fatal() {
                    return Err(StoreError::Backend(fatal));
                }
                tracing::warn!(error = %conn.scrub(&e.to_string()), "kafka unreachable at start; publishing will answer Unavailable until it is back")
            }
        }
        Ok(Self {
            cfg,
            conn,
            producer,
            consumer: Default::default(),
            inspector: Default::default(),
            tracker: Default::default(),
            schedules: None,
            clock: Clock::system(),
            cursor: Default::default(),
        })
    }

    /// Decide what is due by `clock` (the system clock by default).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Park long delays in `schedules` instead of holding them in memory.
    pub fn with_schedules(mut self, schedules: Arc<dyn Schedules>) -> Self {
        self.schedules = Some(schedules);
        self
    }

    /// The schedule store, when `not_before` is far enough ahead to park.
    fn parks(&self, not_before: i64) -> Option<&Arc<dyn Schedules>> {
        self.schedules.as_ref().filter(|_| not_before > self.clock.now_ms().saturating_add(self.cfg.park_after_ms as i64))
    }

    async fn consumer(&self) -> Result<Arc<StreamConsumer<Ctx>>> {
        self.consumer
            .get_or_try_init(|| async {
                let ctx = Ctx { tracker: self.tracker.clone(), drain: Duration::from_millis(self.cfg.drain_on_revoke_ms) };
                let c: StreamConsumer<Ctx> = self
                    .conn
                    .client()
                    .set("group.id", &self.cfg.group)
                    .set("enable.auto.commit", "true")
                    .set("auto.commit.interval.ms", "1000")
                    .set("enable.auto.offset.store", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("session.timeout.ms", "10000")
                    .set("heartbeat.interval.ms", "1000")
                    .create_with_context(ctx)
                    .map_err(unavailable)?;
                c.subscribe(&[&self.cfg.topic]).map_err(unavailable)?;
                // Dispatch nodes (the ones that consume) move parked items back.
                if let Some(s) = &self.schedules {
                    tokio::spawn(move_due(self.producer.clone(), self.cfg.clone(), s.clone(), self.clock.clone()));
                }
                Ok(Arc::new(c))
            })
            .await
            .cloned()
    }

    /// A client of the dead-letter group that never joins it: it reads from
    /// the committed offsets by explicit assignment and commits by hand.
    fn dead_reader(&self) -> Result<BaseConsumer> {
        self.conn
            .client()
            .set("group.id", format!("{}.dead", self.cfg.group))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create::<BaseConsumer>()
            .map_err(unavailable)
    }

    fn parse_token(t: &LeaseToken) -> Result<(i32, i64)> {
        let (p, o) = t.0.split_once(':').ok_or_else(|| StoreError::Corrupt(format!("bad lease token {}", t.0)))?;
        match (p.parse(), o.parse()) {
            (Ok(p), Ok(o)) => Ok((p, o)),
            _ => Err(StoreError::Corrupt(format!("bad lease token {}", t.0))),
        }
    }

    /// Park records read from the topic that are due much later, then mark
    /// them done so their offsets can be committed. If the store is
    /// unavailable they stay in memory like any other delayed record.
    async fn park_read(&self, records: Vec<(LeaseToken, Enqueue)>) {
        let Some(s) = &self.schedules else { return };
        let (tokens, items): (Vec<_>, Vec<_>) = records.into_iter().unzip();
        match s.park(items).await {
            Ok(()) => {
                if let Err(e) = self.ack(tokens).await {
                    tracing::warn!(error = %e, "parked records not marked done; they will be parked again");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "schedule store unavailable; holding delayed records in memory");
                let mut t = self.tracker.lock().expect("tracker");
                for tok in &tokens {
                    if let Ok((p, o)) = Self::parse_token(tok)
                        && let Some(rec) = t.partitions.get_mut(&p).and_then(|m| m.get_mut(&o))
                    {
                        rec.lease_until = None;
                    }
                }
            }
        }
    }

    /// Records of the tracker that are due (not before, lease expired or
    /// never leased), up to `max`, round robin over their tenants
    /// (`Work::tenant`), each tenant's records in order (not before,
    /// partition, offset); tenants in `skip` are left as they are. The
    /// round robin starts after the tenant where the previous call stopped.
    fn due_from_tracker(&self, max: usize, lease: Duration, skip: &[String]) -> Vec<Leased> {
        let now = self.clock.now_ms();
        let at = Instant::now();
        let mut t = self.tracker.lock().expect("tracker");
        let skip: HashSet<&str> = skip.iter().map(String::as_str).collect();
        let mut cursor = self.cursor.lock().expect("lease cursor");
        let picked = {
            let mut by_tenant: BTreeMap<&str, Vec<Due>> = BTreeMap::new();
            for (&partition, map) in &t.partitions {
                for (&offset, p) in map {
                    let leasable = !p.done && p.not_before <= now && p.lease_until.is_none_or(|u| u <= at);
                    if leasable && !skip.contains(p.work.tenant()) {
                        by_tenant.entry(p.work.tenant()).or_default().push((p.not_before, partition, offset));
                    }
                }
            }
            let (picked, last) = round_robin(by_tenant, cursor.as_deref(), max);
            if let Some(last) = last {
                *cursor = Some(last.to_string());
            }
            picked
        };
        let mut out = Vec::with_capacity(picked.len());
        for (partition, offset) in picked {
            let Some(p) = t.partitions.get_mut(&partition).and_then(|m| m.get_mut(&offset)) else { continue };
            if p.lease_until.is_some() {
                p.redeliveries += 1;
            }
            p.lease_until = Some(at + lease);
            out.push(Leased { token: LeaseToken(format!("{partition}:{offset}")), work: p.work.clone(), redeliveries: p.redeliveries });
        }
        out
    }
}

/// A due record: (not before, partition, offset), its tenant's order.
type Due = (i64, i32, i64);

/// Up to `max` of the tenants' records, round robin: one of each tenant's
/// (in its order) per round, tenants in key order starting after `after`
/// and wrapping around. Also the tenant whose record was taken last (where
/// the next call goes on).
fn round_robin<'a>(mut by_tenant: BTreeMap<&'a str, Vec<Due>>, after: Option<&str>, max: usize) -> (Vec<(i32, i64)>, Option<&'a str>) {
    let mut turns: Vec<(&str, std::vec::IntoIter<Due>)> = Vec::with_capacity(by_tenant.len());
    // Tenants after `after`, then those up to it.
    let mut tail = match after {
        Some(a) => by_tenant.split_off(a),
        None => BTreeMap::new(),
    };
    if let Some((tenant, records)) = after.and_then(|a| tail.remove_entry(a)) {
        by_tenant.insert(tenant, records);
    }
    for (tenant, mut records) in tail.into_iter().chain(by_tenant) {
        records.sort_unstable();
        turns.push((tenant, records.into_iter()));
    }
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < max {
        let before = out.len();
        for (tenant, records) in &mut turns {
            if out.len() >= max {
                break;
            }
            if let Some((_, partition, offset)) = records.next() {
                out.push((partition, offset));
                last = Some(*tenant);
            }
        }
        if out.len() == before {
            break;
        }
    }
    (out, last)
}

#[async_trait]
impl Queue for KafkaQueue {
    async fn publish(&self, items: Vec<Enqueue>) -> Result<()> {
        let (park, now): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| self.parks(i.not_before).is_some());
        if let (false, Some(s)) = (park.is_empty(), &self.schedules) {
            s.park(park).await?;
        }
        produce(&self.producer, &self.cfg, now).await
    }

    async fn lease(&self, max: usize, lease_ms: i64, skip: &[String]) -> Result<Vec<Leased>> {
        let lease = Duration::from_millis(lease_ms.max(1) as u64);
        let consumer = self.consumer().await?;
        // Poll what is available now (briefly), into the tracker.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        let mut polled = 0;
        let mut to_park = Vec::new();
        while polled < max {
            let msg = match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(unavailable(e)),
                Ok(Ok(m)) => m,
            };
            polled += 1;
            let (partition, offset) = (msg.partition(), msg.offset());
            let not_before = msg
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == NOT_BEFORE).and_then(|h| h.value))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
                .unwrap_or(0);
            let parsed = msg.payload().map(serde_json::from_slice::<Work>);
            let mut t = self.tracker.lock().expect("tracker");
            let map = t.partitions.entry(partition).or_default();
            match parsed {
                Some(Ok(work)) if self.parks(not_before).is_some() && !map.contains_key(&offset) => {
                    // Due much later: park it, so this partition's offsets move on.
                    let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_else(|| work.tenant().to_string());
                    to_park.push((LeaseToken(format!("{partition}:{offset}")), Enqueue { key, not_before, work: work.clone() }));
                    let parked = Some(Instant::now() + Duration::from_secs(3600));
                    map.insert(offset, Pending { work, not_before, lease_until: parked, redeliveries: 0, done: false });
                }
                Some(Ok(work)) => {
                    map.entry(offset).or_insert(Pending { work, not_before, lease_until: None, redeliveries: 0, done: false });
                }
                _ => {
                    // Unreadable: logged and skipped so the partition moves on.
                    tracing::error!(partition, offset, "unreadable record on the ingest log; skipped");
                    map.insert(offset, Pending { work: placeholder(), not_before: 0, lease_until: None, redeliveries: 0, done: true });
                }
            }
        }
        if !to_park.is_empty() {
            self.park_read(to_park).await;
        }
        Ok(self.due_from_tracker(max, lease, skip))
    }

    async fn ack(&self, tokens: Vec<LeaseToken>) -> Result<()> {
        let consumer = self.consumer().await?;
        let mut touched = Vec::new();
        {
            let mut t = self.tracker.lock().expect("tracker");
            for tok in &tokens {
                let (p, o) = Self::parse_token(tok)?;
                if let Some(rec) = t.partitions.get_mut(&p).and_then(|m| m.get_mut(&o)) {
                    rec.done = true;
                    touched.push(p);
                }
            }
            touched.sort();
            touched.dedup();
            for p in &touched {
                if let Some(next) = t.advance(*p) {
                    // Not ours any more after a rebalance: nothing to store.
                    if let Err(e) = consumer.store_offset(&self.cfg.topic, *p, next - 1) {
                        tracing::debug!(partition = p, error = %e, "offset not stored");
                    }
                }
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, items: Vec<DeadLetter>) -> Result<()> {
        let sends = items.into_iter().map(|d| async move {
            let payload = serde_json::to_vec(&d).map_err(|e| StoreError::Backend(e.to_string()))?;
            let record = FutureRecord::to(&self.cfg.dead_topic).key(&d.job.tenant).payload(&payload);
            self.producer.send(record, Duration::from_millis(self.cfg.produce_timeout_ms)).await.map(|_| ()).map_err(|(e, _)| unavailable(e))
        });
        futures::future::join_all(sends).await.into_iter().collect()
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<(DeadToken, DeadLetter)>> {
        let reader = self.dead_reader()?;
        let topic = self.cfg.dead_topic.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<(DeadToken, DeadLetter)>> {
            let timeout = Duration::from_secs(5);
            let meta = reader.fetch_metadata(Some(&topic), timeout).map_err(unavailable)?;
            let mut tpl = TopicPartitionList::new();
            for p in meta.topics().iter().flat_map(|t| t.partitions()) {
                tpl.add_partition(&topic, p.id());
            }
            let committed = reader.committed_offsets(tpl.clone(), timeout).map_err(unavailable)?;
            let mut start = TopicPartitionList::new();
            for e in tpl.elements_for_topic(&topic) {
                let at = match committed.find_partition(&topic, e.partition()).map(|c| c.offset()) {
                    Some(o @ Offset::Offset(_)) => o,
                    _ => Offset::Beginning,
                };
                start.add_partition_offset(&topic, e.partition(), at).map_err(unavailable)?;
            }
            reader.assign(&start).map_err(unavailable)?;
            let mut open: std::collections::HashSet<i32> = start.elements().iter().map(|e| e.partition()).collect();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut out = Vec::new();
            while !open.is_empty() && out.len() < max && Instant::now() < deadline {
                match reader.poll(Duration::from_millis(200)) {
                    None => {}
                    Some(Err(KafkaError::PartitionEOF(p))) => {
                        open.remove(&p);
                    }
                    Some(Err(e)) => return Err(unavailable(e)),
                    Some(Ok(m)) => {
                        let token = DeadToken { partition: m.partition(), offset: m.offset() };
                        match m.payload().map(serde_json::from_slice::<DeadLetter>) {
                            Some(Ok(letter)) => out.push((token, letter)),
                            _ => tracing::error!(partition = token.partition, offset = token.offset, "unreadable dead letter; skipped"),
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn drop_dead(&self, tokens: Vec<DeadToken>) -> Result<()> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for t in tokens {
            let n = next.entry(t.partition).or_insert(0);
            *n = (*n).max(t.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let reader = self.dead_reader()?;
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next {
            tpl.add_partition_offset(&self.cfg.dead_topic, p, Offset::Offset(o)).map_err(unavailable)?;
        }
        tokio::task::spawn_blocking(move || reader.commit(&tpl, rdkafka::consumer::CommitMode::Sync).map_err(unavailable))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn depth(&self) -> Result<u64> {
        // Consumer lag of the group over the whole topic: high watermark minus
        // committed offset, per partition. Read with a separate client that
        // never joins the group, so ingest-only nodes can report it too.
        let inspector = self
            .inspector
            .get_or_try_init(|| async {
                self.conn.client().set("group.id", &self.cfg.group).create::<BaseConsumer>().map(Arc::new).map_err(unavailable)
            })
            .await?
            .clone();
        let topic = self.cfg.topic.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let timeout = Duration::from_secs(2);
            let meta = inspector.fetch_metadata(Some(&topic), timeout).map_err(unavailable)?;
            let mut tpl = TopicPartitionList::new();
            for t in meta.topics() {
                for p in t.partitions() {
                    tpl.add_partition(&topic, p.id());
                }
            }
            let committed = inspector.committed_offsets(tpl.clone(), timeout).map_err(unavailable)?;
            let mut lag = 0u64;
            for e in tpl.elements_for_topic(&topic) {
                let (low, high) = inspector.fetch_watermarks(&topic, e.partition(), timeout).map_err(unavailable)?;
                let done = match committed.find_partition(&topic, e.partition()).map(|c| c.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                };
                lag += (high - done).max(0) as u64;
            }
            Ok(lag)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

/// Produce items to the work topic; returns once the brokers have them all.
async fn produce(producer: &Producer, cfg: &KafkaConfig, items: Vec<Enqueue>) -> Result<()> {
    let sends = items.into_iter().map(|i| async move {
        let payload = serde_json::to_vec(&i.work).map_err(|e| StoreError::Backend(e.to_string()))?;
        let nb = i.not_before.to_string();
        let headers = OwnedHeaders::new().insert(Header { key: NOT_BEFORE, value: Some(nb.as_bytes()) });
        let key = record_key(cfg, &i);
        let record = FutureRecord::to(&cfg.topic).key(&key).payload(&payload).headers(headers);
        producer.send(record, Duration::from_millis(cfg.produce_timeout_ms)).await.map(|_| ()).map_err(|(e, _)| unavailable(e))
    });
    futures::future::join_all(sends).await.into_iter().collect()
}

/// The mover: while this node holds the schedule store's lease, every second
/// produce the parked items that are due back to the topic, then release them.
async fn move_due(producer: Producer, cfg: KafkaConfig, schedules: Arc<dyn Schedules>, clock: Clock) {
    const LEASE_MS: i64 = 15_000;
    const RENEW: Duration = Duration::from_secs(5);
    const CHUNK: usize = 500;
    let node = uuid::Uuid::new_v4().to_string();
    let mut leading = false;
    let mut last_lead: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if last_lead.is_none_or(|at| at.elapsed() >= RENEW) {
            leading = schedules.lead(&node, LEASE_MS).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "schedule lease not renewed");
                false
            });
            last_lead = Some(Instant::now());
        }
        // Move due schedules while this node leads, a chunk at a time.
        if !leading {
            continue;
        }
        loop {
            let due = match schedules.due(clock.now_ms(), CHUNK).await {
                Ok(d) if !d.is_empty() => d,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading due schedules failed");
                    break;
                }
            };
            let n = due.len();
            let (tokens, items): (Vec<_>, Vec<_>) = due.into_iter().unzip();
            if let Err(e) = produce(&producer, &cfg, items).await {
                tracing::warn!(error = %e, "moving due schedules to the topic failed; trying again");
                break;
            }
            if let Err(e) = schedules.release(tokens).await {
                tracing::warn!(error = %e, "releasing moved schedules failed; they will be moved again");
                break;
            }
            tracing::debug!(moved = n, "due schedules moved to the topic");
            if n < CHUNK {
                break;
            }
        }
    }
}

fn placeholder() -> Work {
    Work::Retry(herald_core::model::RetryJob {
        message_id: String::new(),
        tenant: String::new(),
        channel: String::new(),
        account: String::new(),
        delivery: herald_core::model::Rendered {
            delivery_id: String::new(),
            recipient: String::new(),
            subject: None,
            text: String::new(),
            html: None,
            metadata: Default::default(),
        },
        attempt: 0,
        due_at: 0,
        history: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::model::StepJob;

    fn step(tenant: &str, incident: &str) -> Enqueue {
        Enqueue { key: tenant.into(), not_before: 0, work: Work::Step(StepJob { tenant: tenant.into(), incident: incident.into(), step: 0 }) }
    }

    #[test]
    fn leases_take_tenants_in_turn_each_in_its_order() {
        let tenants = || BTreeMap::from([("a", vec![(5, 0, 7), (1, 0, 9), (5, 1, 2)]), ("b", vec![(3, 2, 4)]), ("c", vec![(0, 1, 1), (0, 1, 0)])]);
        let (all, last) = round_robin(tenants(), None, 10);
        assert_eq!(all, [(0, 9), (2, 4), (1, 0), (0, 7), (1, 1), (1, 2)], "a b c a c a; each by (not before, partition, offset)");
        assert_eq!(last, Some("a"));
        let (two, last) = round_robin(tenants(), None, 2);
        assert_eq!((two, last), (vec![(0, 9), (2, 4)], Some("b")));
        // The next call goes on after b, wrapping around.
        let (next, last) = round_robin(tenants(), Some("b"), 4);
        assert_eq!((next, last), (vec![(1, 0), (0, 9), (2, 4), (1, 1)], Some("c")), "c a b, then c");
        // A cursor on a tenant with nothing due now.
        let (next, _) = round_robin(tenants(), Some("bb"), 2);
        assert_eq!(next, [(1, 0), (0, 9)]);
        assert_eq!(round_robin(BTreeMap::new(), Some("a"), 5), (vec![], None));
    }

    #[test]
    fn records_are_keyed_by_tenant_unless_sharded() {
        let one = KafkaConfig::default();
        assert_eq!(record_key(&one, &step("acme", "i1")), "acme");
        let eight = KafkaConfig { tenant_shards: 8, ..KafkaConfig::default() };
        let keys: std::collections::BTreeSet<String> = (0..200).map(|i| record_key(&eight, &step("acme", &format!("i{i}")))).collect();
        assert_eq!(keys.len(), 8, "spread over every shard: {keys:?}");
        assert!(keys.iter().all(|k| k.starts_with("acme#")));
        // The same work gets the same key in every process (and after a park and move).
        let mut parked = step("acme", "i7");
        parked.key = "acme#5".into(); // as read back from the topic and parked
        assert_eq!(record_key(&eight, &parked), record_key(&eight, &step("acme", "i7")));
    }
}
