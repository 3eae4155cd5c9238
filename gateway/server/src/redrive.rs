//! Re-driving dead letters: deliveries whose retries ran out are tried again
//! once an operator has fixed the cause (a provider outage, a wrong secret).
//!
//! A re-drive takes dead letters from the head of the list, and for each one
//! whose delivery is still `dead` marks it `retrying` and queues one more
//! attempt (attempt = the one that gave up + 1, due now). If that attempt
//! fails as well, the delivery is dead again with a new dead letter. Letters
//! of other tenants (with a tenant filter) go back to the end of the list.
//! Then the taken letters are dropped. A crash in between is harmless: a
//! letter found again whose delivery is `retrying` at the attempt that gave
//! up gets its attempt queued (again; the store lets one attempt through),
//! and one whose delivery moved on is skipped.

use herald_backends::Backends;
use herald_core::model::{DeadLetter, DeliveryStatus, DeliveryUpdate, Work};
use herald_core::seams::Enqueue;
use herald_core::{Millis, StoreError};
use serde::Serialize;

/// What one re-drive did.
#[derive(Debug, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"redriven": ["0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51.0"], "skipped": 0, "kept": 2}))]
pub struct Redriven {
    /// Deliveries queued for another attempt.
    pub redriven: Vec<String>,
    /// Letters whose delivery is no longer dead (re-driven before, or a duplicate).
    pub skipped: usize,
    /// Letters of other tenants, moved to the end of the list.
    pub kept: usize,
}

pub async fn redrive(backends: &Backends, now: Millis, tenant: Option<&str>, max: usize) -> Result<Redriven, StoreError> {
    let (store, queue) = (backends.store.as_ref(), backends.queue.as_ref());
    let taken = queue.dead_letters(max).await?;
    let mut report = Redriven::default();
    let (mut updates, mut retries, mut keep) = (Vec::new(), Vec::new(), Vec::new());
    for (_, letter) in &taken {
        let job = &letter.job;
        if tenant.is_some_and(|t| t != job.tenant) {
            keep.push(letter.clone());
            continue;
        }
        let delivery =
            store.message(&job.tenant, &job.message_id).await?.and_then(|m| m.deliveries.into_iter().find(|d| d.id == job.delivery.delivery_id));
        // The attempt to queue follows the store's count, not the letter's
        // (a stale duplicate letter must not queue an attempt the store refuses).
        let attempts = match delivery {
            Some(d) if d.status == DeliveryStatus::Dead => {
                updates.push(DeliveryUpdate {
                    delivery_id: d.id.clone(),
                    message_id: job.message_id.clone(),
                    tenant: job.tenant.clone(),
                    status: DeliveryStatus::Retrying,
                    attempts: d.attempts,
                    detail: Some(format!("re-driven after: {}", letter.reason)),
                    provider_id: None,
                    at: now,
                });
                d.attempts
            }
            // An earlier re-drive marked it and stopped before its attempt was queued.
            Some(d) if d.status == DeliveryStatus::Retrying && d.attempts == job.attempt => d.attempts,
            _ => {
                report.skipped += 1;
                continue;
            }
        };
        let mut next = job.clone();
        next.attempt = attempts + 1;
        retries.push(Enqueue { key: job.tenant.clone(), not_before: now, work: Work::Retry(next) });
        report.redriven.push(job.delivery.delivery_id.clone());
    }
    report.kept = keep.len();
    // Status first, so the queued attempt finds its delivery due.
    store.record(updates, Vec::new()).await?;
    queue.publish(retries).await?;
    queue.dead_letter(keep).await?;
    queue.drop_dead(taken.into_iter().map(|(t, _)| t).collect()).await?;
    Ok(report)
}

/// A dead letter as the operator API lists it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    pub tenant: String,
    pub message_id: String,
    pub delivery_id: String,
    pub recipient: String,
    pub channel: String,
    pub account: String,
    /// The attempt that gave up.
    pub attempts: u32,
    /// The last failure, as the provider or the host reported it.
    pub reason: String,
    /// Unix milliseconds (UTC).
    #[schema(value_type = i64)]
    pub dead_at: Millis,
    /// The earlier attempts, oldest first.
    pub history: Vec<herald_core::model::AttemptRecord>,
}

pub fn describe(letter: &DeadLetter) -> DeadLetterView {
    let j = &letter.job;
    DeadLetterView {
        tenant: j.tenant.clone(),
        message_id: j.message_id.clone(),
        delivery_id: j.delivery.delivery_id.clone(),
        recipient: j.delivery.recipient.clone(),
        channel: j.channel.clone(),
        account: j.account.clone(),
        attempts: j.attempt,
        reason: letter.reason.clone(),
        dead_at: letter.dead_at,
        history: j.history.clone(),
    }
}
