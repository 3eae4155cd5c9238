//! Tiered push at run time: triggering an action opens an incident whose steps
//! (the level's rules, in order, each repeated) fire from durable queue timers
//! (`Work::Step`). A step sends each channel's fitting template to the rule's
//! recipients, with a signed acknowledgement link; the next step waits for its
//! rule's escalation time and fires only while its condition (not acknowledged /
//! not delivered) still holds. Quiet hours defer info and normal levels;
//! prepaid balances gate paid channels (refuse, or fall back to a free one).
//!
//! Fire-once: a step is recorded in the incident (`fired`) and its messages
//! have ids derived from (incident, step, channel), so a replayed timer after a
//! crash re-publishes the same messages, which dispatch recognises as sent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use herald_core::directory::{self, Targets, UNIT, USER, Unit, User};
use herald_core::docs::Repo;
use herald_core::model::{Content, RecipientSpec, StepJob, Vars, Work};
use herald_core::quiet::{QuietHours, release_at};
use herald_core::seams::Enqueue;
use herald_core::tiered::{ACTION, AckScope, Action, Condition, Editor, INCIDENT, INCIDENT_MSG, Incident, TEMPLATE, TieredTemplate, TimelineEvent};
use herald_core::{ApiError, Millis, StoreError};
use serde::Deserialize;

use crate::intake::{Body, Gate, IntakeError, Submission};
use crate::{Billing, BillingError, Deps, Intake, derived_id};

/// Tenant quiet hours: document `settings/quiet_hours`.
pub const SETTINGS: &str = "settings";
pub const QUIET_HOURS: &str = "quiet_hours";
/// How long an acknowledgement link stays valid.
const ACK_LINK_TTL_MS: Millis = 7 * 24 * 3_600_000;

#[derive(Clone)]
pub struct Incidents {
    deps: Deps,
    intake: Intake,
    billing: Billing,
    /// Base URL of this gateway as recipients reach it (for ack links).
    public_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no such action")]
    UnknownAction,
    #[error("action {number} is disabled; enable it in the console first")]
    ActionDisabled { number: String },
    #[error("the tiered-push app is not enabled for this tenant; enable it in the console's app market")]
    AppDisabled,
    #[error("one of {}", herald_core::tiered::LEVELS.join(", "))]
    UnknownLevel,
    #[error("action {number} has no rule for level {level}")]
    NoRules { number: String, level: String },
    #[error("at most 200 characters")]
    DedupKeyTooLong,
    #[error("no such incident")]
    UnknownIncident,
    #[error("{0:?} was not notified by this incident")]
    UnknownRecipient(String),
    #[error("this acknowledgement link is not valid")]
    InvalidLink,
    #[error("this acknowledgement link has expired")]
    ExpiredLink,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored document that did not read or write.
    #[error(transparent)]
    Doc(#[from] ApiError),
}

impl From<BillingError> for IncidentError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::Store(e) => IncidentError::Store(e),
            other => IncidentError::Doc(other.into()),
        }
    }
}

/// The body of `POST /v1/actions/{id}/trigger`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "level": "urgent", "variables": {"host": "db1"},
    "recipients": {"users": [], "units": [], "list": [{"to": "+8613800000000", "channel": "aliyun-sms"}]},
    "dedup_key": "disk-full-db1"
}))]
pub struct Trigger {
    /// Which of the action's rule sets runs.
    #[schema(value_type = TriggerLevel)]
    pub level: String,
    /// Added to every rule's recipients.
    #[serde(default, deserialize_with = "herald_core::wire::object")]
    pub recipients: Targets,
    /// Variables for the action's templates.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Vars,
    /// Repeated triggers with this key fold into the open incident (blank = none).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub dedup_key: Option<String>,
}

/// A trigger's level (the document's name for `Trigger::level`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TriggerLevel {
    Urgent,
    Normal,
    Info,
}

fn event(at: Millis, kind: &str, step: Option<u32>) -> TimelineEvent {
    TimelineEvent { at, kind: kind.into(), step, channel: None, recipients: vec![], message_id: None, detail: None }
}

impl Incidents {
    pub fn new(deps: Deps, intake: Intake, billing: Billing, public_url: String) -> Incidents {
        Incidents { deps, intake, billing, public_url }
    }

    /// Whether `tenant` has `app` enabled. Until the admin gates apps (its
    /// migration marker), every app is on, so a gateway upgraded first keeps triggering.
    async fn app_enabled(&self, tenant: &str, app: &str) -> Result<bool, IncidentError> {
        let c = self.deps.backends.config.as_ref();
        let (kind, marker) = herald_core::rbac::APPS_GATE;
        if Repo::new(c, herald_core::rbac::PLATFORM).get::<serde_json::Value>(kind, marker).await?.is_none() {
            return Ok(true);
        }
        Ok(Repo::new(c, tenant).get::<herald_core::rbac::Enablement>(herald_core::rbac::APP, app).await?.is_some())
    }

    fn event(&self, kind: &str, step: Option<u32>) -> TimelineEvent {
        event(self.deps.clock.now_ms(), kind, step)
    }

    /// Open an incident (or fold into the open one with the same dedup key)
    /// and arm its first step. Returns (incident id, folded).
    pub async fn trigger(&self, tenant: &str, action_id: &str, t: Trigger, idempotency: Option<&str>) -> Result<(String, bool), IncidentError> {
        let c = self.deps.backends.config.as_ref();
        if let Some(key) = idempotency
            && let Some(d) = c.doc(tenant, "incident_idem", key).await?
        {
            return Ok((d.body["incident"].as_str().unwrap_or_default().to_string(), true));
        }
        let action: Action = Repo::new(c, tenant).get(ACTION, action_id).await?.ok_or(IncidentError::UnknownAction)?;
        if !self.app_enabled(tenant, "tiered-push").await? {
            return Err(IncidentError::AppDisabled);
        }
        if !action.enabled {
            return Err(IncidentError::ActionDisabled { number: action.number });
        }
        if !herald_core::tiered::LEVELS.contains(&t.level.as_str()) {
            return Err(IncidentError::UnknownLevel);
        }
        let steps = action.steps_for(&t.level);
        if steps.is_empty() {
            return Err(IncidentError::NoRules { number: action.number, level: t.level });
        }
        // Characters as given (what the document's maxLength counts), before trimming.
        if t.dedup_key.as_deref().is_some_and(|k| k.chars().count() > 200) {
            return Err(IncidentError::DedupKeyTooLong);
        }
        let dedup = t.dedup_key.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(str::to_string);
        if let Some(k) = &dedup {
            let key = format!("{action_id}:{k}");
            if let Some(d) = c.doc(tenant, herald_core::tiered::INCIDENT_DEDUP, &key).await? {
                let id = d.body["incident"].as_str().unwrap_or_default().to_string();
                let mut folded = false;
                Repo::new(c, tenant)
                    .update::<Incident>(INCIDENT, &id, |inc| {
                        folded = inc.state == "open";
                        if folded {
                            inc.repeats += 1;
                            inc.timeline.push(TimelineEvent {
                                detail: Some("triggered again; folded into this incident".into()),
                                ..self.event("repeated", None)
                            });
                        }
                        Ok(())
                    })
                    .await?;
                if folded {
                    return Ok((id, true));
                }
            }
        }
        let id = match idempotency {
            Some(k) => derived_id(&format!("herald-incident:{tenant}:{k}")),
            None => uuid::Uuid::now_v7().simple().to_string(),
        };
        let inc = Incident {
            id: id.clone(),
            action: action.id.clone(),
            level: t.level,
            dedup_key: dedup.clone(),
            variables: t.variables,
            targets: t.recipients,
            steps,
            fired: vec![],
            state: "open".into(),
            ack_scope: action.ack_scope,
            acked: vec![],
            messages: vec![],
            keys: Default::default(),
            timeline: vec![self.event("triggered", None)],
            repeats: 0,
            created_at: self.deps.clock.now_ms(),
        };
        Repo::new(c, tenant).put(INCIDENT, &id, &inc).await?;
        if let Some(k) = &dedup {
            Repo::new(c, tenant).put(herald_core::tiered::INCIDENT_DEDUP, &format!("{action_id}:{k}"), &serde_json::json!({"incident": id})).await?;
        }
        if let Some(k) = idempotency {
            Repo::new(c, tenant).put("incident_idem", k, &serde_json::json!({"incident": id})).await?;
        }
        self.arm(tenant, &id, 0, self.deps.clock.now_ms()).await?;
        Ok((id, false))
    }

    async fn arm(&self, tenant: &str, incident: &str, step: u32, at: Millis) -> Result<(), IncidentError> {
        let work = Work::Step(StepJob { tenant: tenant.into(), incident: incident.into(), step });
        Ok(self.deps.backends.queue.publish(vec![Enqueue { key: tenant.into(), not_before: at, work }]).await?)
    }

    /// Write what this process changed in an incident it read earlier,
    /// merged into the stored one: acknowledgements, events, fired steps,
    /// messages and repeats another process recorded since are kept (a
    /// compare-and-set, re-merged on a concurrent write).
    async fn save(&self, tenant: &str, ours: Incident) -> Result<Incident, IncidentError> {
        let id = ours.id.clone();
        let saved = Repo::new(self.deps.backends.config.as_ref(), tenant)
            .update::<Incident>(INCIDENT, &id, |cur| {
                cur.merge(&ours);
                Ok(())
            })
            .await?;
        saved.ok_or(IncidentError::UnknownIncident)
    }

    pub async fn incident(&self, tenant: &str, id: &str) -> Result<Option<Incident>, IncidentError> {
        Ok(Repo::new(self.deps.backends.config.as_ref(), tenant).get(INCIDENT, id).await?)
    }

    /// Run a due step (a `Work::Step` leased from the queue).
    pub async fn fire(&self, job: &StepJob) -> Result<(), IncidentError> {
        let (tenant, c) = (job.tenant.as_str(), self.deps.backends.config.as_ref());
        let Some(mut inc) = Repo::new(c, tenant).get::<Incident>(INCIDENT, &job.incident).await? else {
            tracing::warn!(%tenant, incident = %job.incident, "step of an unknown incident; dropped");
            return Ok(());
        };
        if inc.fired.contains(&job.step) {
            return Ok(());
        }
        if inc.state != "open" {
            // The first step that finds the incident closed says so on the timeline.
            if !inc.timeline.iter().any(|e| e.kind == "stopped") {
                inc.timeline.push(TimelineEvent { detail: Some(inc.state.clone()), ..self.event("stopped", Some(job.step)) });
                self.save(tenant, inc).await?;
            }
            return Ok(());
        }
        let Some(step) = inc.steps.get(job.step as usize).cloned() else {
            return Ok(());
        };
        // The previous step's condition must still hold.
        if job.step > 0 {
            let prev = &inc.steps[job.step as usize - 1];
            if let Some(e) = &prev.escalate
                && let Some(reason) = self.condition_cleared(tenant, &inc, job.step - 1, e.condition).await?
            {
                inc.state = "done".into();
                inc.timeline.push(TimelineEvent { detail: Some(reason), ..self.event("stopped", Some(job.step)) });
                self.save(tenant, inc).await?;
                return Ok(());
            }
        }
        let Some(action) = Repo::new(c, tenant).get::<Action>(ACTION, &inc.action).await? else {
            inc.state = "done".into();
            inc.timeline.push(TimelineEvent { detail: Some("the action was deleted".into()), ..self.event("stopped", Some(job.step)) });
            self.save(tenant, inc).await?;
            return Ok(());
        };
        let Some(rule) = action.rules.get(step.rule).cloned() else {
            return Ok(());
        };
        let mut templates = vec![];
        for t in &action.templates {
            if let Some(t) = Repo::new(c, tenant).get::<TieredTemplate>(TEMPLATE, t).await? {
                templates.push(t);
            }
        }
        let units: Vec<Unit> = Repo::new(c, tenant).list(UNIT).await?;
        let users: Vec<User> = Repo::new(c, tenant).list(USER).await?;
        let quiet: Option<QuietHours> = Repo::new(c, tenant).get(SETTINGS, QUIET_HOURS).await?;
        let mut targets = rule.recipients.clone();
        targets.users.extend(inc.targets.users.iter().cloned());
        targets.units.extend(inc.targets.units.iter().cloned());
        targets.list.extend(inc.targets.list.iter().cloned());
        let now = self.deps.clock.now_ms();
        let mut latest_release = now;
        let mut used_free_fallback = false;
        for chan in &rule.channels {
            let mut channel = chan.channel.clone();
            let mut account = chan.account.clone();
            // The prepaid gate, as for every send: refuse, or fall back to a free channel.
            let rule_of = |channel: &str| self.deps.plugins.get(channel).map(|p| p.recipients.clone());
            let sends = directory::expand(&targets, &units, &users, &channel, rule_of(&channel).as_ref()).recipients.len();
            if let Err(short) = self.billing.gate(tenant, &channel, sends).await {
                let BillingError::InsufficientBalance { .. } = &short else {
                    return Err(short.into());
                };
                let reason = short.to_string();
                let fallback = if !used_free_fallback && self.billing.falls_back_to_free(tenant).await? {
                    self.free_channel(tenant, &templates).await?
                } else {
                    None
                };
                match fallback {
                    Some((ch, acc)) => {
                        used_free_fallback = true;
                        inc.timeline.push(TimelineEvent {
                            channel: Some(channel.clone()),
                            detail: Some(format!("{reason}; falling back to {ch}")),
                            ..self.event("fallback", Some(job.step))
                        });
                        channel = ch;
                        account = acc;
                    }
                    None => {
                        inc.timeline.push(TimelineEvent {
                            channel: Some(channel.clone()),
                            detail: Some(reason),
                            ..self.event("refused", Some(job.step))
                        });
                        continue;
                    }
                }
            }
            let formats = self.deps.plugins.get(&channel).map(|p| p.format_names()).unwrap_or_default();
            let Some(tpl) = templates.iter().find(|t| t.editor.fits(&formats)) else {
                inc.timeline.push(TimelineEvent {
                    channel: Some(channel.clone()),
                    detail: Some("no template of the action fits this channel".into()),
                    ..self.event("skipped", Some(job.step))
                });
                continue;
            };
            let rule = rule_of(&channel);
            let expanded = directory::expand(&targets, &units, &users, &channel, rule.as_ref());
            let mut groups: std::collections::BTreeMap<Millis, Vec<RecipientSpec>> = Default::default();
            let mut unfit = vec![];
            for (r, user_id) in expanded.recipients.into_iter().zip(expanded.user_ids) {
                // An address the channel cannot take is skipped (and listed), not sent a failing delivery.
                if rule.as_ref().is_some_and(|rule| rule.check(&r.to).is_err()) {
                    unfit.push(r.to);
                    continue;
                }
                let key = user_id.clone().unwrap_or_else(|| r.to.clone());
                if inc.ack_scope == AckScope::Recipient && inc.acked.contains(&key) {
                    continue;
                }
                inc.keys.insert(r.to.clone(), key.clone());
                let tz = user_id.and_then(|u| users.iter().find(|x| x.id == u)).and_then(|u| u.time_zone.clone());
                let at = quiet.as_ref().and_then(|q| release_at(q, now, &inc.level, tz.as_deref())).unwrap_or(now);
                let mut r = r;
                for (k, v) in &inc.variables {
                    r.variables.entry(k.clone()).or_insert_with(|| v.clone());
                }
                r.variables.insert("ack_url".into(), self.ack_url(tenant, &inc.id, &key).into());
                r.variables.insert("level".into(), inc.level.clone().into());
                groups.entry(at).or_default().push(r);
            }
            if !unfit.is_empty() {
                inc.timeline.push(TimelineEvent {
                    channel: Some(channel.clone()),
                    recipients: unfit,
                    detail: Some("not an address this channel can send to".into()),
                    ..self.event("skipped", Some(job.step))
                });
            }
            if groups.is_empty() {
                inc.timeline.push(TimelineEvent {
                    channel: Some(channel.clone()),
                    detail: Some("no recipient with an address on this channel".into()),
                    ..self.event("skipped", Some(job.step))
                });
                continue;
            }
            let binding = self.deps.plugins.get(&channel).and_then(|p| p.provider_template.clone());
            let provider = tpl.provider.get(&channel).zip(binding.as_ref());
            for (at, mut recipients) in groups {
                let id = derived_id(&format!("herald-step:{tenant}:{}:{}:{channel}:{at}", inc.id, job.step));
                let to: Vec<String> = recipients.iter().map(|r| r.to.clone()).collect();
                let mut metadata: std::collections::BTreeMap<String, String> =
                    [("incident".to_string(), inc.id.clone()), ("level".to_string(), inc.level.clone())].into();
                // A template-based provider gets the template's code and parameters.
                if let Some((chosen, binding)) = provider
                    && let Err(e) = chosen.apply(binding, &Default::default(), &mut recipients, &mut metadata)
                {
                    inc.timeline.push(TimelineEvent {
                        channel: Some(channel.clone()),
                        recipients: to,
                        detail: Some(format!("provider template: {e}")),
                        ..self.event("refused", Some(job.step))
                    });
                    continue;
                }
                let submission = Submission {
                    id: id.clone(),
                    tenant: tenant.into(),
                    channel: channel.clone(),
                    account: Some(account.clone()).filter(|a| !a.is_empty()),
                    body: Body::Content(content(tpl, formats.iter().any(|f| f == "voice"))),
                    variables: Default::default(),
                    recipients,
                    metadata,
                    send_at: (at > now).then_some(at),
                    gate: Gate::Prepaid,
                };
                // Written before the message is accepted: a read receipt can always find its incident.
                Repo::new(c, tenant).put(INCIDENT_MSG, &id, &serde_json::json!({"incident": inc.id})).await?;
                match self.intake.submit(submission).await {
                    Ok(_) => {}
                    Err(IntakeError::Store(e)) => return Err(e.into()),
                    Err(e) => {
                        inc.timeline.push(TimelineEvent {
                            channel: Some(channel.clone()),
                            recipients: to,
                            detail: Some(e.to_string()),
                            ..self.event("refused", Some(job.step))
                        });
                        continue;
                    }
                }
                inc.messages.push((job.step, id.clone()));
                let (kind, detail) = if at > now {
                    latest_release = latest_release.max(at);
                    (
                        "deferred",
                        Some(format!(
                            "quiet hours: sent at {}",
                            chrono::DateTime::from_timestamp_millis(at).map(|t| t.to_rfc3339()).unwrap_or_default()
                        )),
                    )
                } else {
                    ("fired", None)
                };
                inc.timeline.push(TimelineEvent {
                    channel: Some(channel.clone()),
                    recipients: to,
                    message_id: Some(id),
                    detail,
                    ..self.event(kind, Some(job.step))
                });
            }
        }
        inc.fired.push(job.step);
        let next = job.step + 1;
        if (next as usize) < inc.steps.len() {
            let wait = step.escalate.as_ref().map_or(0, |e| e.after_secs as i64 * 1000);
            // Armed before the incident is saved: a crash in between replays
            // this step (recognised as fired), never loses the next one.
            self.arm(tenant, &inc.id, next, latest_release + wait).await?;
        } else if step.escalate.is_none() {
            inc.timeline.push(self.event("done", None));
        }
        self.save(tenant, inc).await?;
        Ok(())
    }

    /// Why the condition to escalate after `step` no longer holds, if it does not.
    async fn condition_cleared(&self, tenant: &str, inc: &Incident, step: u32, cond: Condition) -> Result<Option<String>, IncidentError> {
        match cond {
            Condition::NotAcknowledged => {
                let all_acked = inc.ack_scope == AckScope::Recipient && !inc.keys.is_empty() && inc.keys.values().all(|k| inc.acked.contains(k));
                Ok((inc.state == "acknowledged" || all_acked).then(|| "acknowledged".to_string()))
            }
            Condition::NotDelivered => {
                let mut any = false;
                for (_, id) in inc.messages.iter().filter(|(s, _)| *s == step) {
                    let Some(view) = self.deps.backends.store.message(tenant, id).await? else {
                        return Ok(None);
                    };
                    for d in &view.deliveries {
                        any = true;
                        if !matches!(d.status, herald_core::model::DeliveryStatus::Delivered | herald_core::model::DeliveryStatus::Read) {
                            return Ok(None);
                        }
                    }
                }
                Ok(any.then(|| "delivered".to_string()))
            }
        }
    }

    /// A free channel (price 0 or none) with an account and a fitting template.
    async fn free_channel(&self, tenant: &str, templates: &[TieredTemplate]) -> Result<Option<(String, String)>, IncidentError> {
        for a in self.deps.backends.config.accounts(tenant).await? {
            let paid = self.billing.paid_price(tenant, &a.plugin).await?.is_some();
            let formats = self.deps.plugins.get(&a.plugin).map(|p| p.format_names()).unwrap_or_default();
            if !paid && templates.iter().any(|t| t.editor.fits(&formats)) {
                return Ok(Some((a.plugin, a.name)));
            }
        }
        Ok(None)
    }

    fn ack_url(&self, tenant: &str, incident: &str, key: &str) -> String {
        let payload = format!("{tenant}\n{incident}\n{key}\n{}", self.deps.clock.now_ms() + ACK_LINK_TTL_MS);
        let token = format!("{}.{}", B64.encode(payload.as_bytes()), self.deps.sealer.sign(&payload));
        format!("{}/v1/ack/{token}", self.public_url.trim_end_matches('/'))
    }

    /// Check an ack link's token: (tenant, incident, recipient key).
    pub fn open_ack_token(&self, token: &str) -> Result<(String, String, String), IncidentError> {
        let bad = || IncidentError::InvalidLink;
        let (p, sig) = token.split_once('.').ok_or_else(bad)?;
        let payload = String::from_utf8(B64.decode(p).map_err(|_| bad())?).map_err(|_| bad())?;
        if !self.deps.sealer.verify(&payload, sig) {
            return Err(bad());
        }
        let parts: Vec<&str> = payload.split('\n').collect();
        let [tenant, incident, key, exp] = parts[..] else {
            return Err(bad());
        };
        if exp.parse::<Millis>().map_err(|_| bad())? < self.deps.clock.now_ms() {
            return Err(IncidentError::ExpiredLink);
        }
        Ok((tenant.into(), incident.into(), key.into()))
    }

    /// Record an acknowledgement; pending steps see it when their timer fires.
    pub async fn ack(&self, tenant: &str, incident: &str, key: Option<&str>, via: &str) -> Result<Incident, IncidentError> {
        let who = key.map(str::to_string);
        let acked =
            TimelineEvent { recipients: who.iter().cloned().collect(), detail: Some(format!("via {via}")), ..self.event("acknowledged", None) };
        let repo = Repo::new(self.deps.backends.config.as_ref(), tenant);
        let inc = repo.update::<Incident>(INCIDENT, incident, |inc| {
            let news = match &who {
                Some(k) => !inc.acked.contains(k),
                None => inc.state == "open",
            };
            if !news {
                return Ok(()); // acknowledged before: nothing changes, no second event
            }
            if let Some(k) = &who {
                inc.acked.push(k.clone());
            }
            let all =
                inc.ack_scope == AckScope::Incident || who.is_none() || (!inc.keys.is_empty() && inc.keys.values().all(|k| inc.acked.contains(k)));
            if all && inc.state == "open" {
                inc.state = "acknowledged".into();
            }
            inc.timeline.push(acked.clone());
            Ok(())
        });
        inc.await?.ok_or(IncidentError::UnknownIncident)
    }

    /// The recipient key an API caller names: a key (directory user id or
    /// raw address) or an address the incident sent to; anyone else is refused.
    pub async fn recipient_key(&self, tenant: &str, incident: &str, named: &str) -> Result<String, IncidentError> {
        let inc = self.incident(tenant, incident).await?.ok_or(IncidentError::UnknownIncident)?;
        inc.key_of(named).ok_or_else(|| IncidentError::UnknownRecipient(named.to_string()))
    }

    /// A provider read receipt for a delivery of an incident's message.
    pub async fn read_receipt(&self, tenant: &str, message_id: &str, recipient: &str) -> Result<(), IncidentError> {
        let Some(d) = self.deps.backends.config.doc(tenant, INCIDENT_MSG, message_id).await? else {
            return Ok(());
        };
        let incident = d.body["incident"].as_str().unwrap_or_default().to_string();
        let Some(inc) = self.incident(tenant, &incident).await? else {
            return Ok(());
        };
        // A receipt for an address not yet on the incident (its save still under way) acks that address.
        let key = inc.key_of(recipient).unwrap_or_else(|| recipient.to_string());
        self.ack(tenant, &incident, Some(&key), "read receipt").await.map(|_| ())
    }
}

/// The template as message content; the ack link goes into text and rich text
/// (not into what a voice call reads aloud).
fn content(t: &TieredTemplate, voice: bool) -> Content {
    if voice {
        return Content { subject: None, text: Some(t.body.clone()), html: None };
    }
    match t.editor {
        Editor::RichText => Content {
            subject: t.subject.clone(),
            text: None,
            html: Some(format!("{}<p><a href=\"{{{{ ack_url }}}}\">Acknowledge / 确认</a></p>", t.body)),
        },
        Editor::Text if !t.body.contains("ack_url") => {
            Content { subject: None, text: Some(format!("{}\nAck: {{{{ ack_url }}}}", t.body)), html: None }
        }
        _ => Content { subject: None, text: Some(t.body.clone()), html: None },
    }
}
