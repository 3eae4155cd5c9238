//! Lease work and turn it into jobs: resolve the account and plugin, render
//! per recipient, skip deliveries already attempted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use herald_core::model::{Account, DeliveryId, Message, Outcome, OutcomeKind, Rendered, RetryJob, Work};
use herald_core::render::Compiled;
use herald_core::seams::{LeaseToken, Leased};
use herald_service::IncidentError;
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Dispatch, ItemTracker, Job, Settled};

/// How many tenants' worth of backlog all lanes together may hold before
/// nothing more is leased.
pub(super) const BACKLOG_TENANTS: usize = 4;

/// Leased items resolved at once.
const RESOLVE_AT_ONCE: usize = 32;

pub(super) async fn consume_loop(
    d: Arc<Dispatch>,
    shutdown: CancellationToken,
    settled: mpsc::Sender<Settled>,
    acks: mpsc::UnboundedSender<LeaseToken>,
    mut handed: Option<mpsc::Receiver<Leased>>,
) {
    let idle = Duration::from_millis(d.cfg.poll_ms);
    // When the queue was last asked, and whether it gave all that was asked.
    let mut last_lease: Option<std::time::Instant> = None;
    let mut full = true;
    while !shutdown.is_cancelled() {
        // Items the queue handed over as they were published: already leased.
        let mut items = Vec::new();
        if let Some(rx) = handed.as_mut() {
            while items.len() < d.cfg.lease_batch {
                match rx.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
        }
        let mut handed_n = items.len();
        // With items handed over, the queue is still asked when its last
        // lease was full, when something went into it unleased (a refused
        // handoff, a retry: the queue's `idle` is ready at once then), and
        // at least once per poll interval (scheduled items come due).
        let ask =
            handed_n == 0 || full || last_lease.is_none_or(|t| t.elapsed() >= idle) || d.deps.backends.queue.idle(idle).now_or_never().is_some();
        if ask && handed_n < d.cfg.lease_batch {
            let room = d.cfg.lease_batch - handed_n;
            // A tenant with a full backlog here gets no more leased until it
            // drains; the others' work still does. Past a few tenants' worth in
            // all, nothing is leased (memory stays bounded).
            let leased = if d.lanes.len() >= BACKLOG_TENANTS * d.cfg.tenant_backlog {
                Ok(Vec::new())
            } else {
                let skip = d.lanes.saturated(d.cfg.tenant_backlog);
                d.deps.backends.queue.lease(room, d.cfg.lease_ms, &skip).await
            };
            let leased = match leased {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "lease failed; backing off");
                    Vec::new()
                }
            };
            full = leased.len() == room;
            last_lease = Some(std::time::Instant::now());
            items.extend(leased);
        }
        if items.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = d.deps.backends.queue.idle(idle) => continue,
                Some(item) = async { match handed.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    items.push(item);
                    handed_n = 1;
                }
            }
        }
        // A lease that ran out while this process still works on the item
        // (a long wait behind a rate limit) hands it back to us: skip it.
        let mut queued = {
            let mut q: Vec<Option<Vec<String>>> = items[..handed_n].iter().map(every_delivery).collect();
            q.extend(queued_of(&d, &items[handed_n..]).await);
            q.into_iter()
        };
        let fresh: Vec<(Leased, Option<Vec<String>>)> = {
            let mut inflight = d.inflight.lock().expect("inflight");
            items.into_iter().map(|item| (item, queued.next().flatten())).filter(|(item, _)| inflight.insert(item.token.clone())).collect()
        };
        // Resolved several at once: each waits on its own reads.
        let round = Round::default();
        futures::stream::iter(fresh)
            .for_each_concurrent(RESOLVE_AT_ONCE, |(item, queued)| {
                let (d, round, settled, acks) = (&d, &round, &settled, &acks);
                async move {
                    let token = item.token.clone();
                    if let Err(e) = resolve(d, round, item, queued, settled, acks).await {
                        // Left unacknowledged: the item comes back when its lease runs out.
                        d.inflight.lock().expect("inflight").remove(&token);
                        tracing::warn!(error = %e, "could not resolve work item");
                    }
                }
            })
            .await;
    }
}

/// A handed-over item is a message published for the first time: every one
/// of its deliveries is queued.
fn every_delivery(item: &Leased) -> Option<Vec<String>> {
    match &item.work {
        Work::Message(m) => Some((0..m.recipients.len()).map(|i| m.delivery_id(i)).collect()),
        _ => None,
    }
}

/// The never-attempted deliveries of the lease's messages, in one read;
/// `None` for the other items, and for all of them if that read failed (each
/// message then reads its own).
async fn queued_of(d: &Dispatch, items: &[Leased]) -> Vec<Option<Vec<String>>> {
    let keys: Vec<(&str, &str)> = items
        .iter()
        .filter_map(|i| match &i.work {
            Work::Message(m) => Some((m.tenant.as_str(), m.id.as_str())),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return vec![None; items.len()];
    }
    let mut found = match d.deps.backends.store.queued_deliveries_of(&keys).await {
        Ok(found) => found.into_iter(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the lease's queued deliveries; reading them one by one");
            return vec![None; items.len()];
        }
    };
    items.iter().map(|i| if matches!(i.work, Work::Message(_)) { found.next() } else { None }).collect()
}

/// What the items of one lease share: each sender account is read and its
/// secrets opened once per lease, not once per item, and never kept longer
/// (an account edited in the console applies to the next lease).
#[derive(Default)]
struct Round {
    accounts: std::sync::Mutex<HashMap<(String, String), Once>>,
}

/// One account's read, shared by the items that wait for it.
type Once = Arc<OnceCell<Opened>>;

/// A sender account with its secrets open; `None` if it is gone or does not open.
type Opened = Option<Arc<Account>>;

impl Round {
    async fn account(&self, d: &Dispatch, tenant: &str, name: &str) -> Result<Opened, herald_core::StoreError> {
        let cell = self.accounts.lock().expect("round accounts").entry((tenant.to_string(), name.to_string())).or_default().clone();
        let opened = cell
            .get_or_try_init(|| async {
                let stored = d.deps.backends.config.account(tenant, name).await?;
                Ok::<_, herald_core::StoreError>(stored.and_then(|a| match d.deps.sealer.open(&a) {
                    Ok(a) => Some(Arc::new(a)),
                    Err(e) => {
                        // Treated like a missing account: its deliveries fail with that reason.
                        tracing::error!(%tenant, account = %name, error = %e, "account secrets do not open");
                        None
                    }
                }))
            })
            .await?;
        Ok(opened.clone())
    }
}

async fn resolve(
    d: &Dispatch,
    round: &Round,
    item: Leased,
    queued: Option<Vec<String>>,
    settled: &mpsc::Sender<Settled>,
    acks: &mpsc::UnboundedSender<LeaseToken>,
) -> Result<(), herald_core::StoreError> {
    if let Work::Step(step) = &item.work {
        // Errors leave the item unacknowledged: the timer comes back after its lease.
        d.services.incidents.fire(step).await.map_err(|e| match e {
            IncidentError::Store(e) => e,
            e => herald_core::StoreError::Unavailable(e.to_string()),
        })?;
        ItemTracker::new(item.token, 0, acks.clone(), d.inflight.clone());
        return Ok(());
    }
    let (tenant, channel, account_name, message_id, due_at) = match &item.work {
        Work::Step(_) => unreachable!("handled above"),
        Work::Message(m) => {
            (m.tenant.clone(), m.channel.clone(), m.account.clone(), m.id.clone(), m.send_at.unwrap_or(m.accepted_at).max(m.accepted_at))
        }
        Work::Retry(r) => (r.tenant.clone(), r.channel.clone(), r.account.clone(), r.message_id.clone(), r.due_at),
    };
    // How the earlier attempts ended (a retry carries them to its dead letter).
    let history = match &item.work {
        Work::Retry(r) => r.history.clone(),
        _ => Vec::new(),
    };
    // Which deliveries still need this attempt, with their rendered content.
    let pending: Vec<(Result<Rendered, RenderFailure>, u32)> = match &item.work {
        Work::Message(m) => render_queued(d, m, queued).await?.into_iter().map(|r| (r, 1)).collect(),
        Work::Retry(r) => retry_pending(d, r).await?,
        Work::Step(_) => vec![],
    };
    let stored = round.account(d, &tenant, &account_name).await?;
    let account_missing = stored.is_none();
    let plugin = stored.as_ref().and_then(|a| d.deps.plugins.get(&a.plugin));
    // A batch is never more than one second of the account's or the
    // tenant's rate (the limiters' burst).
    let max_batch = [plugin.as_ref().map(|p| p.info.max_batch), stored.as_ref().and_then(|a| a.rate_per_sec), d.tenant_rate(&tenant, &channel)]
        .into_iter()
        .flatten()
        .min()
        .map_or(1, |n| n.max(1) as usize);
    // A deleted account (after acceptance) fails its deliveries; the job still
    // needs an account to be recorded against.
    let account = stored.unwrap_or_else(|| {
        Arc::new(herald_core::model::Account {
            tenant: tenant.clone(),
            name: account_name.clone(),
            plugin: channel.clone(),
            config: serde_json::Value::Null,
            rate_per_sec: None,
        })
    });
    let currency = d.deps.backends.config.tenant(&tenant).await?.map(|t| t.currency).unwrap_or_else(herald_core::model::default_currency);
    // A delivery another item already has a job for is that job's: the same
    // message queued twice (a keyed retry after a crash) sends each id once.
    let pending: Vec<_> = pending.into_iter().filter(|(r, attempt)| d.deliveries.claim(pending_id(r), *attempt)).collect();
    let tracker = ItemTracker::new(item.token, pending.len(), acks.clone(), d.inflight.clone());
    let mut ready = Vec::with_capacity(pending.len());
    for (rendered, attempt) in pending {
        let (rendered, failure) = match rendered {
            Ok(r) if account_missing => (r, Some("sender account no longer exists".to_string())),
            Ok(r) => (r, None),
            Err(RenderFailure { delivery_id, reason }) => (empty_rendered(delivery_id), Some(format!("template: {reason}"))),
        };
        let j = Job {
            rendered,
            attempt,
            message_id: message_id.clone(),
            channel: channel.clone(),
            account: account.clone(),
            due_at,
            max_batch,
            currency: currency.clone(),
            history: history.clone(),
            item: tracker.clone(),
        };
        match failure {
            None => ready.push(j),
            Some(detail) => {
                let outcome = Outcome::new(j.rendered.delivery_id.clone(), OutcomeKind::Failed, Some(detail));
                let _ = settled.send(Settled { job: j, outcome }).await;
            }
        }
    }
    d.lanes.push(ready);
    Ok(())
}

/// A delivery whose content did not render: it fails alone.
struct RenderFailure {
    delivery_id: String,
    reason: String,
}

/// The delivery id of a pending entry.
fn pending_id(r: &Result<Rendered, RenderFailure>) -> &str {
    match r {
        Ok(r) => &r.delivery_id,
        Err(f) => &f.delivery_id,
    }
}

fn empty_rendered(id: String) -> Rendered {
    Rendered { delivery_id: id, recipient: String::new(), subject: None, text: String::new(), html: None, metadata: Default::default() }
}

/// Render the message's never-attempted deliveries (`queued`: as read with
/// the rest of the lease). A render failure is that delivery's only.
async fn render_queued(
    d: &Dispatch,
    m: &Message,
    queued: Option<Vec<String>>,
) -> Result<Vec<Result<Rendered, RenderFailure>>, herald_core::StoreError> {
    // Ingest records the rows before publishing, so they are normally there.
    // A message produced straight to the log (or a record lost in a crash)
    // has none: record it then, and look again. Recording is a no-op for a
    // message whose deliveries are all done, so only that case pays the write.
    let mut queued = match queued {
        Some(q) => q,
        None => d.deps.backends.store.queued_deliveries(&m.tenant, &m.id).await?,
    };
    if queued.is_empty() {
        d.deps.backends.store.record_message(m).await?;
        queued = d.deps.backends.store.queued_deliveries(&m.tenant, &m.id).await?;
    }
    let compiled = Compiled::new(&m.content);
    let shared = Compiled::shared(&m.variables);
    Ok(queued
        .into_iter()
        .filter_map(|id| {
            let index = DeliveryId::parse(&id)?.index();
            let recipient = m.recipients.get(index)?;
            let failed = |e: &dyn std::fmt::Display| RenderFailure { delivery_id: id.clone(), reason: e.to_string() };
            Some(match &compiled {
                Ok(c) => c.render(id.clone(), &shared, recipient, &m.metadata).map_err(|e| failed(&e)),
                Err(e) => Err(failed(e)),
            })
        })
        .collect())
}

async fn retry_pending(d: &Dispatch, r: &RetryJob) -> Result<Vec<(Result<Rendered, RenderFailure>, u32)>, herald_core::StoreError> {
    let due = d.deps.backends.store.retry_due(&r.tenant, &r.delivery.delivery_id, r.attempt).await?;
    Ok(if due { vec![(Ok(r.delivery.clone()), r.attempt)] } else { Vec::new() })
}
