//! Lease work and turn it into jobs: resolve the account and plugin, render
//! per recipient, skip deliveries already attempted.

use std::sync::Arc;
use std::time::Duration;

use herald_core::model::{Message, Outcome, OutcomeKind, RetryJob, Work};
use herald_core::render::Compiled;
use herald_core::seams::{LeaseToken, Leased};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Dispatch, ItemTracker, Job, Settled};

pub(super) async fn consume_loop(
    d: Arc<Dispatch>,
    shutdown: CancellationToken,
    jobs: mpsc::Sender<Job>,
    settled: mpsc::Sender<Settled>,
    acks: mpsc::UnboundedSender<LeaseToken>,
) {
    let idle = Duration::from_millis(d.cfg.poll_ms);
    while !shutdown.is_cancelled() {
        let leased = match d.queue.lease(d.cfg.lease_batch, d.cfg.lease_ms).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "lease failed; backing off");
                Vec::new()
            }
        };
        if leased.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(idle) => continue,
            }
        }
        for item in leased {
            // A lease that ran out while this process still works on the item
            // (a long wait behind a rate limit) hands it back to us: skip it.
            if !d.inflight.lock().expect("inflight").insert(item.token.clone()) {
                continue;
            }
            let token = item.token.clone();
            if let Err(e) = resolve(&d, item, &jobs, &settled, &acks).await {
                // Left unacknowledged: the item comes back when its lease runs out.
                d.inflight.lock().expect("inflight").remove(&token);
                tracing::warn!(error = %e, "could not resolve work item");
            }
        }
    }
}

async fn resolve(
    d: &Dispatch,
    item: Leased,
    jobs: &mpsc::Sender<Job>,
    settled: &mpsc::Sender<Settled>,
    acks: &mpsc::UnboundedSender<LeaseToken>,
) -> Result<(), herald_core::StoreError> {
    if let Work::Step(step) = &item.work {
        // Errors leave the item unacknowledged: the timer comes back after its lease.
        d.engine.fire(step).await.map_err(|e| herald_core::StoreError::Unavailable(e.message))?;
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
    let pending: Vec<(Result<herald_core::model::Rendered, String>, u32)> = match &item.work {
        Work::Message(m) => render_queued(d, m).await?.into_iter().map(|r| (r, 1)).collect(),
        Work::Retry(r) => retry_pending(d, r).await?,
        Work::Step(_) => vec![],
    };
    let stored = d.config.account(&tenant, &account_name).await?.and_then(|a| match d.sealer.open(&a) {
        Ok(a) => Some(a),
        Err(e) => {
            // Treated like a missing account: its deliveries fail with that reason.
            tracing::error!(%tenant, account = %account_name, error = %e, "account secrets do not open");
            None
        }
    });
    let account_missing = stored.is_none();
    let plugin = stored.as_ref().and_then(|a| d.plugins.get(&a.plugin));
    let max_batch = plugin.as_ref().map_or(1, |p| p.info.max_batch as usize);
    // A deleted account (after acceptance) fails its deliveries; the job still
    // needs an account to be recorded against.
    let account = Arc::new(stored.unwrap_or_else(|| herald_core::model::Account {
        tenant: tenant.clone(),
        name: account_name.clone(),
        plugin: channel.clone(),
        config: serde_json::Value::Null,
        rate_per_sec: None,
    }));
    let currency = d.config.tenant(&tenant).await?.map(|t| t.currency).unwrap_or_else(herald_core::model::default_currency);
    // A delivery another item already has a job for is that job's: the same
    // message queued twice (a keyed retry after a crash) sends each id once.
    let pending: Vec<_> = pending.into_iter().filter(|(r, attempt)| d.deliveries.claim(pending_id(r), *attempt)).collect();
    let tracker = ItemTracker::new(item.token, pending.len(), acks.clone(), d.inflight.clone());
    for (rendered, attempt) in pending {
        let (rendered, failure) = match rendered {
            Ok(r) if account_missing => (r, Some("sender account no longer exists".to_string())),
            Ok(r) => (r, None),
            Err(detail) => {
                // Render failures come as "<delivery id>\n<reason>".
                let (id, reason) = detail.split_once('\n').unwrap_or((&detail, "render failed"));
                (empty_rendered(id.to_string()), Some(format!("template: {reason}")))
            }
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
            None => {
                if jobs.send(j).await.is_err() {
                    return Ok(());
                }
            }
            Some(detail) => {
                let outcome = Outcome::new(j.rendered.delivery_id.clone(), OutcomeKind::Failed, Some(detail));
                let _ = settled.send(Settled { job: j, outcome }).await;
            }
        }
    }
    Ok(())
}

/// The delivery id of a pending entry (a render failure carries it first).
fn pending_id(r: &Result<herald_core::model::Rendered, String>) -> &str {
    match r {
        Ok(r) => &r.delivery_id,
        Err(detail) => detail.split_once('\n').map_or(detail.as_str(), |(id, _)| id),
    }
}

fn empty_rendered(id: String) -> herald_core::model::Rendered {
    herald_core::model::Rendered {
        delivery_id: id,
        recipient: String::new(),
        subject: None,
        text: String::new(),
        html: None,
        metadata: Default::default(),
    }
}

/// Render the message's never-attempted deliveries. A render failure is
/// returned as `Err("<id>\n<reason>")` for that delivery only.
async fn render_queued(d: &Dispatch, m: &Message) -> Result<Vec<Result<herald_core::model::Rendered, String>>, herald_core::StoreError> {
    // Ingest records the rows before publishing, so they are normally there.
    // A message produced straight to the log (or a record lost in a crash)
    // has none: record it then, and look again. Recording is a no-op for a
    // message whose deliveries are all done, so only that case pays the write.
    let mut queued = d.store.queued_deliveries(&m.tenant, &m.id).await?;
    if queued.is_empty() {
        d.store.record_message(m).await?;
        queued = d.store.queued_deliveries(&m.tenant, &m.id).await?;
    }
    let compiled = Compiled::new(&m.content);
    Ok(queued
        .into_iter()
        .filter_map(|id| {
            let index: usize = id.rsplit('.').next()?.parse().ok()?;
            let recipient = m.recipients.get(index)?;
            Some(match &compiled {
                Ok(c) => c.render(id.clone(), &m.variables, recipient, &m.metadata).map_err(|e| format!("{id}\n{e}")),
                Err(e) => Err(format!("{id}\n{e}")),
            })
        })
        .collect())
}

async fn retry_pending(d: &Dispatch, r: &RetryJob) -> Result<Vec<(Result<herald_core::model::Rendered, String>, u32)>, herald_core::StoreError> {
    let due = d.store.retry_due(&r.tenant, &r.delivery.delivery_id, r.attempt).await?;
    Ok(if due { vec![(Ok(r.delivery.clone()), r.attempt)] } else { Vec::new() })
}
