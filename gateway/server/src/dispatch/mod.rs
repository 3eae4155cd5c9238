//! The dispatch role: lease work from the Queue, resolve and render it, batch
//! by (tenant, channel, account), rate-limit, hand batches to plugins, send
//! what they build, and record outcomes, ledger entries and retries.
//!
//! ```text
//! consume ─jobs─▶ lanes (fair) ─batches─▶ send (N at once) ─settled─▶ record ─tokens─▶ ack
//! ```
//! Jobs wait in one lane per (tenant, channel, account); batches leave the
//! lanes round robin between tenants and then accounts, within slots per
//! account, per tenant and in total (`herald_core::batch::Scheduler`). The
//! consumer leases no more of a tenant's work while that tenant already has
//! `tenant_backlog` deliveries waiting, so one tenant's backlog neither fills
//! memory nor stands in front of another tenant's work.
//! A queue item is acknowledged only after every delivery it produced is
//! recorded (or its retry is durably scheduled). A crash before that means the
//! item is leased again and its still-`queued` deliveries are sent again:
//! at-least-once, with duplicates limited to deliveries in flight at the crash.

mod consume;
mod record;
mod send;
mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::batch::{BatchKey, Bounds, Scheduler, Slots};
use herald_core::model::AttemptRecord;
use herald_core::model::{Account, Outcome, Rendered};
use herald_core::retry::RetryPolicies;
use herald_core::seams::{Handoff, LeaseToken};
use herald_service::{Deps, Services};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DispatchConfig};
use crate::limits::Limiters;
use crate::metrics::Metrics;
use crate::transport::Transport;

/// Everything the dispatch tasks share.
pub struct Dispatch {
    /// Backends, plugins, the sealer (opens account secrets just before
    /// plugin calls) and the clock.
    pub deps: Deps,
    /// The rules: debits, low-balance alerts, tiered-push steps.
    pub services: Arc<Services>,
    pub transport: Arc<dyn Transport>,
    pub metrics: Arc<Metrics>,
    pub limiters: Limiters,
    pub cfg: DispatchConfig,
    pub retry: RetryPolicies,
    /// Per-(tenant, channel) rates from the config file.
    /// tenant → channel → rate (looked up by borrowed keys on every admit).
    pub tenant_rates: HashMap<String, HashMap<String, u32>>,
    /// Queue items this process is working on.
    pub inflight: Arc<Mutex<HashSet<LeaseToken>>>,
    /// Deliveries this process is working on (one job per delivery id).
    pub deliveries: InFlight,
    /// Provider access tokens, per (tenant, account).
    pub tokens: tokens::Tokens,
    /// Jobs waiting for their batch, and the batches running.
    pub lanes: Lanes,
}

impl Dispatch {
    /// The dispatch role of a process configured by `cfg`; the error names
    /// the setting at fault.
    pub fn new(cfg: &Config, deps: Deps, services: Arc<Services>, transport: Arc<dyn Transport>, metrics: Arc<Metrics>) -> Result<Dispatch, String> {
        Ok(Dispatch {
            deps,
            services,
            transport,
            tokens: Default::default(),
            metrics,
            limiters: Limiters::default(),
            cfg: cfg.dispatch.clone(),
            retry: cfg.retry_policies()?,
            tenant_rates: cfg.tenants.iter().map(|t| (t.id.clone(), t.channel_rate_per_sec.iter().map(|(c, r)| (c.clone(), *r)).collect())).collect(),
            inflight: Default::default(),
            deliveries: Default::default(),
            lanes: Lanes::new(&cfg.dispatch),
        })
    }
}

impl Dispatch {
    /// The (tenant, channel) rate: the tenant's own, or the default.
    fn tenant_rate(&self, tenant: &str, channel: &str) -> Option<u32> {
        self.tenant_rates.get(tenant).and_then(|c| c.get(channel)).copied().or(self.cfg.tenant_channel_rate_per_sec)
    }
}

/// The lanes' clock: tokio's, which paused-time tests move.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The fair scheduler, shared by the consumer (which queues jobs) and the
/// sender (which starts batches and frees their slots).
pub struct Lanes {
    sched: Mutex<Scheduler<Job>>,
    /// Jobs were queued.
    queued: tokio::sync::Notify,
}

impl Lanes {
    fn new(cfg: &DispatchConfig) -> Self {
        let bounds = Bounds { max_items: cfg.max_batch, max_bytes: cfg.max_batch_bytes, linger: Duration::from_millis(cfg.linger_ms) };
        let slots = Slots { total: cfg.concurrency, per_tenant: cfg.tenant_concurrency, per_account: cfg.account_concurrency };
        Self { sched: Mutex::new(Scheduler::new(bounds, slots)), queued: Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Scheduler<Job>> {
        self.sched.lock().expect("lanes")
    }

    /// Queue jobs in their lanes.
    fn push(&self, jobs: Vec<Job>) {
        let now = now();
        let mut s = self.lock();
        for job in jobs {
            let (key, size, max) = (job.key(), job.size(), job.max_batch);
            s.push(key, job, size, max, now);
        }
        drop(s);
        self.queued.notify_one();
    }

    /// Whether more of `tenant`'s work may come in: it has fewer than `cap`
    /// deliveries waiting, and all tenants together fewer than
    /// [`consume::BACKLOG_TENANTS`] × `cap`.
    fn admits(&self, tenant: &str, cap: usize) -> bool {
        let s = self.lock();
        s.len() < consume::BACKLOG_TENANTS * cap && s.queued(tenant) < cap
    }

    /// Tenants with `cap` or more deliveries waiting here.
    fn saturated(&self, cap: usize) -> Vec<String> {
        self.lock().saturated(cap)
    }

    /// Deliveries waiting here.
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Tracks one leased queue item until all its deliveries are recorded.
pub struct ItemTracker {
    token: LeaseToken,
    remaining: AtomicUsize,
    acks: mpsc::UnboundedSender<LeaseToken>,
    inflight: Arc<Mutex<HashSet<LeaseToken>>>,
}

impl ItemTracker {
    fn new(token: LeaseToken, jobs: usize, acks: mpsc::UnboundedSender<LeaseToken>, inflight: Arc<Mutex<HashSet<LeaseToken>>>) -> Arc<Self> {
        let t = Arc::new(Self { token, remaining: AtomicUsize::new(jobs), acks, inflight });
        if jobs == 0 {
            t.finish();
        }
        t
    }

    /// One delivery of this item is recorded.
    fn done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        self.inflight.lock().expect("inflight").remove(&self.token);
        let _ = self.acks.send(self.token.clone());
    }
}

/// The (delivery id, attempt) pairs this process has a job for, so that one
/// attempt of a delivery is never in two jobs at once, whatever queued it
/// twice (a keyed retry after a crash, a re-drive, a lease that ran out). A
/// pair stays claimed for a short grace after its outcome is recorded: a
/// second item that read the delivery as `queued` just before that write
/// finds it claimed instead of sending again. (A retry is the next attempt,
/// a different pair.)
pub struct InFlight {
    ids: Mutex<Claims>,
}

struct Claims {
    /// `None` while a job runs; `Some(recorded at)` during the grace.
    ids: HashMap<String, Option<Instant>>,
    pruned: Instant,
}

impl Default for InFlight {
    fn default() -> Self {
        Self { ids: Mutex::new(Claims { ids: HashMap::new(), pruned: Instant::now() }) }
    }
}

/// How long a recorded delivery id stays claimed.
const RECORDED_GRACE: Duration = Duration::from_secs(5);

impl InFlight {
    fn key(id: &str, attempt: u32) -> String {
        format!("{id}#{attempt}")
    }

    /// Claim an attempt; false if a job for it exists or was recorded moments ago.
    pub fn claim(&self, id: &str, attempt: u32) -> bool {
        let key = Self::key(id, attempt);
        let mut claims = self.ids.lock().expect("in-flight deliveries");
        match claims.ids.get(&key) {
            Some(None) => false,
            Some(Some(at)) if at.elapsed() < RECORDED_GRACE => false,
            _ => {
                claims.ids.insert(key, None);
                true
            }
        }
    }

    /// The outcomes of these attempts are recorded.
    pub fn recorded<'a>(&self, attempts: impl IntoIterator<Item = (&'a str, u32)>) {
        let now = Instant::now();
        let mut claims = self.ids.lock().expect("in-flight deliveries");
        for (id, attempt) in attempts {
            if let Some(at) = claims.ids.get_mut(&Self::key(id, attempt)) {
                *at = Some(now);
            }
        }
        // Forget ids past their grace once per grace period.
        if claims.pruned.elapsed() >= RECORDED_GRACE {
            claims.ids.retain(|_, at| at.is_none_or(|t| t.elapsed() < RECORDED_GRACE));
            claims.pruned = now;
        }
    }

    /// Forget these attempts at once (their outcomes were not recorded; the
    /// queue redelivers them).
    pub fn release<'a>(&self, attempts: impl IntoIterator<Item = (&'a str, u32)>) {
        let mut claims = self.ids.lock().expect("in-flight deliveries");
        for (id, attempt) in attempts {
            claims.ids.remove(&Self::key(id, attempt));
        }
    }
}

/// One delivery attempt in flight.
pub struct Job {
    pub rendered: Rendered,
    pub attempt: u32,
    pub message_id: String,
    pub channel: String,
    pub account: Arc<Account>,
    pub due_at: i64,
    /// Most deliveries per batch in this job's lane: the plugin's limit, and
    /// no more than one second of the account's or tenant's rate.
    pub max_batch: usize,
    pub currency: String,
    /// How the earlier attempts ended.
    pub history: Vec<AttemptRecord>,
    item: Arc<ItemTracker>,
}

impl Job {
    fn key(&self) -> BatchKey {
        BatchKey { tenant: self.account.tenant.clone(), channel: self.channel.clone(), account: self.account.name.clone() }
    }
    fn size(&self) -> usize {
        self.rendered.text.len() + self.rendered.html.as_ref().map_or(0, String::len) + self.rendered.recipient.len() + 64
    }
}

/// A job and what happened to it.
pub struct Settled {
    pub job: Job,
    pub outcome: Outcome,
}

impl Dispatch {
    /// Run until `shutdown` is cancelled, then drain in-flight work within
    /// `drain_timeout_ms`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let recovered = self.deps.backends.queue.recover().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "queue recovery failed");
            0
        });
        if recovered > 0 {
            tracing::info!(items = recovered, "re-queued work leased by a previous process");
        }
        let (settled_tx, settled_rx) = mpsc::channel::<Settled>(16_384);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<LeaseToken>();
        // Cancelled once the consumer stops: the sender then drains the lanes.
        let consumed = CancellationToken::new();

        let acker = tokio::spawn(record::ack_loop(self.deps.backends.queue.clone(), ack_rx));
        let recorder = tokio::spawn(record::record_loop(self.clone(), settled_rx));
        let sender = tokio::spawn(send::send_loop(self.clone(), settled_tx.clone(), consumed.clone()));
        let depth = tokio::spawn(depth_loop(self.clone(), shutdown.clone()));

        // What this process publishes comes straight here when the queue can
        // hand it over (the embedded one), and this tenant's backlog has room.
        let (handed_tx, handed_rx) = mpsc::channel(self.cfg.lease_batch);
        let me = Arc::downgrade(&self);
        let handoff = Handoff {
            tx: handed_tx,
            lease_ms: self.cfg.lease_ms,
            admits: Arc::new(move |tenant: &str| me.upgrade().is_some_and(|d| d.lanes.admits(tenant, d.cfg.tenant_backlog))),
        };
        let handed = self.deps.backends.queue.hand_off(handoff).then_some(handed_rx);
        consume::consume_loop(self.clone(), shutdown.clone(), settled_tx, ack_tx, handed).await;
        consumed.cancel();
        // Each stage drains and closes the next.
        let drain = async {
            let _ = sender.await;
            let _ = recorder.await;
            let _ = acker.await;
        };
        if tokio::time::timeout(Duration::from_millis(self.cfg.drain_timeout_ms), drain).await.is_err() {
            tracing::warn!(timeout_ms = self.cfg.drain_timeout_ms, "drain timed out; unfinished work is redelivered on restart");
        }
        depth.abort();
    }
}

async fn depth_loop(d: Arc<Dispatch>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Ok(n) = d.deps.backends.queue.depth().await {
            d.metrics.queue_depth.set(n as i64);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
