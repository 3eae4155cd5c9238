//! Publishing pushes: who a push reaches, sending it when due, and the
//! scheduler that sends scheduled and recurring pushes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::directory::{self, UNIT, USER, Unit, User};
use herald_core::docs::Repo;
use herald_core::error::{ApiError, ErrorKind};
use herald_service::{Body, Gate, Submission};
use tokio_util::sync::CancellationToken;

use super::{MAX_PUSH_RECIPIENTS, PUSH, Push, Sent};
use crate::state::App;

/// Who a push on `channel` to `targets` reaches now; an error when nobody, or too many.
pub async fn audience(app: &App, tenant: &str, channel: &str, targets: &directory::Targets) -> std::result::Result<directory::Expanded, ApiError> {
    let repo = Repo::new(app.deps.backends.config.as_ref(), tenant);
    let units: Vec<Unit> = repo.list(UNIT).await?;
    let users: Vec<User> = repo.list(USER).await?;
    // A directory user whose address does not fit the channel (checked as the
    // gateway checks addresses at ingest) is skipped and listed, never sent a
    // failing delivery. Raw list entries were checked when the push was saved.
    let rule = app.deps.plugins.get(channel).map(|p| p.recipients.clone());
    let mut expanded = directory::expand(targets, &units, &users, channel, rule.as_ref());
    if let Some(rule) = &rule {
        let mut kept = directory::Expanded {
            skipped: std::mem::take(&mut expanded.skipped),
            duplicates: std::mem::take(&mut expanded.duplicates),
            ..Default::default()
        };
        for (r, user) in expanded.recipients.into_iter().zip(expanded.user_ids) {
            match user {
                Some(id) if rule.check(&r.to).is_err() => kept.skipped.push(id),
                user => {
                    kept.recipients.push(r);
                    kept.user_ids.push(user);
                }
            }
        }
        expanded = kept;
    }
    if expanded.recipients.is_empty() {
        return Err(ApiError::new(ErrorKind::Unprocessable, "no_recipients", herald_core::msg!("push.no_recipients")).with_field("targets"));
    }
    if expanded.recipients.len() > MAX_PUSH_RECIPIENTS {
        return Err(ApiError::invalid(
            "targets",
            herald_core::msg!("push.too_many_recipients", count = expanded.recipients.len(), max = MAX_PUSH_RECIPIENTS),
        ));
    }
    Ok(expanded)
}

/// Before an edit or an enable is stored: a push it makes due must be
/// sendable, else the request fails and nothing is stored (as for a new push).
pub async fn check_sendable(app: &App, tenant: &str, push: &Push) -> std::result::Result<(), ApiError> {
    if push.due(app.deps.clock.now_ms()).is_some() {
        audience(app, tenant, &push.channel, &push.targets).await?;
    }
    Ok(())
}

/// Publish the push's message if it is due; idempotent (the message id is
/// derived from the push id, so a repeated publish is recognised downstream).
pub async fn send_if_due(app: &App, tenant: &str, push: &mut Push) -> std::result::Result<bool, ApiError> {
    let now = app.deps.clock.now_ms();
    let Some(occurrence) = push.due(now) else {
        return Ok(false);
    };
    let recurring = push.schedule.mode == "cron";
    let run = if recurring { format!("@{occurrence}") } else { String::new() };
    publish(app, tenant, push, occurrence, recurring, &run).await?;
    Ok(true)
}

/// Send the push now, again (a sent push is a definition to reuse): a send
/// of its own, with its own messages and deliveries. A recurring push's
/// extra run counts as its run at this time.
pub async fn send_again(app: &App, tenant: &str, push: &mut Push) -> std::result::Result<(), ApiError> {
    let now = app.deps.clock.now_ms();
    let recurring = push.schedule.mode == "cron";
    publish(app, tenant, push, now, recurring, &format!("!{now}")).await
}

/// Publish one send of the push; `run` tells this send's message ids from
/// the others' (the ids are derived, so a repeated publish of the same send
/// is recognised downstream).
async fn publish(app: &App, tenant: &str, push: &mut Push, occurrence: i64, recurring: bool, run: &str) -> std::result::Result<(), ApiError> {
    let now = app.deps.clock.now_ms();
    let repo = Repo::new(app.deps.backends.config.as_ref(), tenant);
    let mut expanded = audience(app, tenant, &push.channel, &push.targets).await?;
    let mut metadata = BTreeMap::from([("push".to_string(), push.number.clone())]);
    if let Some(t) = &push.provider_template {
        let refused = |why| crate::web::provider_refused("provider_template".into(), why);
        let plugin = app.deps.plugins.get(&push.channel);
        let binding = plugin.as_ref().and_then(|p| p.provider_template.as_ref());
        let binding = binding.ok_or_else(|| refused(herald_core::msg!("provider_template.not_template_based", channel = push.channel)))?;
        t.apply(binding, &Default::default(), &mut expanded.recipients, &mut metadata).map_err(|e| refused(e.msg()))?;
    }
    // Large lists go out as several messages within the gateway's configured
    // per-message limit, accepted by intake as one send (checked and gated whole).
    let per_message = app.services.intake.limits().await?.max_recipients.max(1);
    let total = expanded.recipients.len();
    let mut submissions = vec![];
    for (i, chunk) in expanded.recipients.chunks(per_message).enumerate() {
        let seed = if i == 0 { format!("herald-push:{tenant}:{}{run}", push.id) } else { format!("herald-push:{tenant}:{}{run}:{i}", push.id) };
        submissions.push(Submission {
            id: herald_service::derived_id(&seed),
            tenant: tenant.to_string(),
            channel: push.channel.clone(),
            account: Some(push.account.clone()),
            body: Body::Content(push.content.clone()),
            variables: Default::default(),
            recipients: chunk.to_vec(),
            metadata: metadata.clone(),
            send_at: None,
            gate: Gate::Prepaid,
        });
    }
    let ids = app.services.intake.submit_all(submissions).await?.into_iter().map(|a| a.message.id).collect();
    let sent = Sent { recurring, occurrence, message_ids: ids, at: now, recipients: total, skipped: expanded.skipped };
    push.record(&sent);
    // Only what this send changed, merged into the stored push: an edit or a
    // disable made meanwhile stays. A push created by this request is stored whole.
    let stored = repo.update::<Push>(PUSH, &push.id, |p| {
        p.record(&sent);
        Ok(())
    });
    if stored.await?.is_none() {
        repo.put(PUSH, &push.id, push).await?;
    }
    tracing::info!(%tenant, push = %push.number, messages = push.message_ids.len(), recipients = push.recipients, "push published");
    crate::metrics::get().pushes_published.inc();
    Ok(())
}

/// Publishes scheduled pushes when due.
pub async fn scheduler(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(e) = publish_due(&app).await {
            tracing::warn!(error = %e.message, "scheduled pushes: will retry");
        }
    }
}

async fn publish_due(app: &App) -> std::result::Result<(), ApiError> {
    let now = app.deps.clock.now_ms();
    for t in app.deps.backends.config.tenants().await? {
        let pushes: Vec<Push> = Repo::new(app.deps.backends.config.as_ref(), &t.id).list(PUSH).await?;
        for mut p in pushes.into_iter().filter(|p| p.schedule.mode != "now" && p.due(now).is_some()) {
            if let Err(e) = send_if_due(app, &t.id, &mut p).await {
                tracing::warn!(tenant = %t.id, push = %p.number, error = %e.message, "scheduled push not sent");
            }
        }
    }
    Ok(())
}
