//! Record outcomes: delivery rows and ledger entries in one batched write,
//! retries scheduled on the queue first, then the queue items acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::ledger::Billable;
use herald_core::model::{AttemptRecord, DeadLetter, DeliveryStatus, DeliveryUpdate, LedgerEntry, OutcomeKind, Price, RetryJob, Work};
use herald_core::seams::{Enqueue, LeaseToken, Queue};
use herald_service::billing::{Billing, Sent};
use rand::Rng;
use tokio::sync::mpsc;

use super::{Dispatch, Settled};

/// Most outcomes folded into one write.
const MAX_GROUP: usize = 2_048;

pub(super) async fn record_loop(d: Arc<Dispatch>, mut rx: mpsc::Receiver<Settled>) {
    let mut buf = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut buf, MAX_GROUP).await > 0 {
        let group = std::mem::take(&mut buf);
        record_group(&d, group).await;
    }
}

/// What one group turns into.
struct Plan {
    retries: Vec<Enqueue>,
    updates: Vec<DeliveryUpdate>,
    ledger: Vec<LedgerEntry>,
    dead: Vec<DeadLetter>,
}

async fn record_group(d: &Dispatch, group: Vec<Settled>) {
    let now = d.deps.clock.now_ms();
    let mut prices: HashMap<(String, String), Option<Price>> = HashMap::new();
    for s in &group {
        let key = (s.job.account.tenant.clone(), s.job.channel.clone());
        if s.outcome.kind == OutcomeKind::Sent && !prices.contains_key(&key) {
            let price = d.deps.backends.config.price(&key.0, &key.1).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "price lookup failed; not billing this group");
                None
            });
            prices.insert(key, price);
        }
    }
    let plan = plan(d, &group, &prices, now);
    let mut delay = Duration::from_millis(100);
    loop {
        match write(d, &plan).await {
            Ok(()) => break,
            Err(e) if delay < Duration::from_secs(10) => {
                tracing::warn!(error = %e, "recording outcomes failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                // Not acknowledged: the items are redelivered after their lease.
                tracing::error!(error = %e, deliveries = group.len(), "recording outcomes failed; work will be redelivered");
                d.deliveries.release(group.iter().map(|s| (s.outcome.delivery_id.as_str(), s.job.attempt)));
                return;
            }
        }
    }
    d.deliveries.recorded(group.iter().map(|s| (s.outcome.delivery_id.as_str(), s.job.attempt)));
    let debits: HashMap<&str, i64> = plan.ledger.iter().filter_map(|e| e.delivery_id.as_deref().map(|id| (id, e.amount_minor))).collect();
    let mut debited: Vec<&str> = plan.ledger.iter().filter(|e| e.amount_minor > 0).map(|e| e.tenant.as_str()).collect();
    debited.sort_unstable();
    debited.dedup();
    for tenant in debited {
        if let Err(e) = d.services.after_debits(tenant).await {
            tracing::warn!(%tenant, error = %e, "low-balance check failed");
        }
    }
    // `plan.updates[i]` is the update for `group[i]`.
    for (s, u) in group.iter().zip(&plan.updates) {
        observe(d, s, u.status, debits.get(s.outcome.delivery_id.as_str()).copied(), now);
        s.job.item.done();
    }
}

async fn write(d: &Dispatch, plan: &Plan) -> Result<(), herald_core::StoreError> {
    // Retries and dead letters first: if we crash after this, the delivery is
    // still `queued` and the original item resends it; the retry job then
    // finds it not due, and a dead letter whose delivery is not dead is
    // skipped by the re-drive.
    if !plan.retries.is_empty() {
        d.deps.backends.queue.publish(plan.retries.clone()).await?;
    }
    if !plan.dead.is_empty() {
        d.deps.backends.queue.dead_letter(plan.dead.clone()).await?;
    }
    d.deps.backends.store.record(plan.updates.clone(), plan.ledger.clone()).await
}

fn plan(d: &Dispatch, group: &[Settled], prices: &HashMap<(String, String), Option<Price>>, now: i64) -> Plan {
    let mut p = Plan { retries: Vec::new(), updates: Vec::new(), ledger: Vec::new(), dead: Vec::new() };
    let mut rng = rand::rng();
    for s in group {
        let (job, o) = (&s.job, &s.outcome);
        let tenant = &job.account.tenant;
        let mut detail = o.detail.clone();
        let status = match o.kind {
            OutcomeKind::Sent => {
                let price = prices.get(&(tenant.clone(), job.channel.clone())).and_then(Option::as_ref);
                let per_segment = d.deps.plugins.get(&job.account.plugin).is_some_and(|p| p.info.billing_unit == "segment");
                let billable =
                    Billable { tenant, channel: &job.channel, account: &job.account.name, delivery_id: &o.delivery_id, units: o.units, at: now };
                p.ledger.extend(Billing::debit(price, Sent { billable, per_segment, text: Some(&job.rendered.text) }));
                DeliveryStatus::Sent
            }
            OutcomeKind::Failed => DeliveryStatus::Failed,
            OutcomeKind::Retry | OutcomeKind::Throttled => {
                let mut history = job.history.clone();
                history.push(AttemptRecord {
                    attempt: job.attempt,
                    at: now,
                    outcome: if o.kind == OutcomeKind::Throttled { "throttled" } else { "retry" }.to_string(),
                    detail: o.detail.clone(),
                });
                let retry = |attempt, history| RetryJob {
                    message_id: job.message_id.clone(),
                    tenant: tenant.clone(),
                    channel: job.channel.clone(),
                    account: job.account.name.clone(),
                    delivery: job.rendered.clone(),
                    attempt,
                    due_at: job.due_at,
                    history,
                };
                let policy = d.retry.get(tenant, &job.channel);
                match policy.next_delay(job.attempt, o.retry_after_ms, rng.random::<f64>(), now - job.due_at) {
                    Some(delay) => {
                        let work = Work::Retry(retry(job.attempt + 1, history));
                        p.retries.push(Enqueue { key: tenant.clone(), not_before: now + delay as i64, work });
                        DeliveryStatus::Retrying
                    }
                    None => {
                        let reason = o.detail.clone().unwrap_or_default();
                        let for_s = (now - job.due_at).max(0) / 1000;
                        detail = Some(format!("gave up after {} attempts over {for_s} s: {reason}", job.attempt));
                        p.dead.push(DeadLetter { job: retry(job.attempt, history), reason, dead_at: now });
                        DeliveryStatus::Dead
                    }
                }
            }
        };
        p.updates.push(DeliveryUpdate {
            delivery_id: o.delivery_id.clone(),
            message_id: job.message_id.clone(),
            tenant: tenant.clone(),
            status,
            attempts: job.attempt,
            detail,
            provider_id: o.provider_id.clone(),
            at: now,
        });
    }
    p
}

fn observe(d: &Dispatch, s: &Settled, status: DeliveryStatus, debit: Option<i64>, now: i64) {
    let m = d.metrics.channel(&s.job.account.tenant, &s.job.channel, &s.job.currency);
    match status {
        DeliveryStatus::Sent => {
            m.sent.inc();
            m.end_to_end.observe(((now - s.job.due_at).max(0) as f64) / 1000.0);
            m.ledger_minor.inc_by(debit.unwrap_or(0).max(0) as u64);
        }
        DeliveryStatus::Failed => m.failed.inc(),
        DeliveryStatus::Dead => m.dead.inc(),
        DeliveryStatus::Retrying if s.outcome.kind == OutcomeKind::Throttled => m.throttled.inc(),
        DeliveryStatus::Retrying => m.retried.inc(),
        _ => {}
    }
}

pub(super) async fn ack_loop(queue: Arc<dyn Queue>, mut rx: mpsc::UnboundedReceiver<LeaseToken>) {
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, 4_096).await > 0 {
        let tokens = std::mem::take(&mut buf);
        if let Err(e) = queue.ack(tokens).await {
            // Unacknowledged items come back after their lease; their
            // deliveries are no longer `queued`, so nothing is resent.
            tracing::warn!(error = %e, "ack failed");
        }
    }
}
