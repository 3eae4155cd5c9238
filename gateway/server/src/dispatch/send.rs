//! Send batches: rate limits, plugin `build`, transport, plugin `interpret`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use herald_core::model::{Outcome, OutcomeKind};
use herald_plugin_host::types::{CallContext, Delivery, Outcome as PluginOutcome, OutcomeKind as PluginKind, Request, Response};
use herald_plugin_host::{CallError, LoadedPlugin, PluginFault};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::{Batch, Dispatch, Job, Settled};
use crate::limits::Limiters;
use crate::metrics::call_plugin;
use crate::transport::{SendOptions, Sent};

pub(super) async fn send_loop(d: Arc<Dispatch>, mut batches: mpsc::Receiver<Batch>, settled: mpsc::Sender<Settled>) {
    let permits = Arc::new(Semaphore::new(d.cfg.concurrency));
    let mut tasks = JoinSet::new();
    while let Some(batch) = batches.recv().await {
        let permit = permits.clone().acquire_owned().await.expect("semaphore open");
        let (d, settled) = (d.clone(), settled.clone());
        tasks.spawn(async move {
            d.metrics.inflight_batches.inc();
            let span = batch_span(&batch); // continues the ingest trace (traceparent metadata)
            for s in tracing::Instrument::instrument(send_batch(&d, batch), span).await {
                let _ = settled.send(s).await;
            }
            d.metrics.inflight_batches.dec();
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

fn settle_all(jobs: Vec<Job>, kind: OutcomeKind, detail: &str) -> Vec<Settled> {
    jobs.into_iter()
        .map(|job| {
            let outcome = Outcome::new(job.rendered.delivery_id.clone(), kind, Some(detail.to_string()));
            Settled { job, outcome }
        })
        .collect()
}

async fn send_batch(d: &Dispatch, batch: Batch) -> Vec<Settled> {
    let Batch { key, jobs } = batch;
    let account = jobs[0].account.clone();
    let metrics = d.metrics.channel(&key.tenant, &key.channel, &jobs[0].currency);
    let [tenant_key, account_key] = Limiters::keys(&key.tenant, &key.channel, &key.account);
    let tenant_rate = d.tenant_rates.get(&(key.tenant.clone(), key.channel.clone())).copied().or(d.cfg.tenant_channel_rate_per_sec);
    let waited = d.limiters.wait_pause(&account_key).await
        | d.limiters.acquire(&tenant_key, tenant_rate, jobs.len()).await
        | d.limiters.acquire(&account_key, account.rate_per_sec, jobs.len()).await;
    if waited {
        metrics.limiter_waits.inc();
    }

    let Some(plugin) = d.deps.plugins.get(&account.plugin) else {
        return settle_all(jobs, OutcomeKind::Retry, &format!("plugin {:?} is not loaded", account.plugin));
    };
    let ctx = CallContext {
        now_ms: d.deps.clock.now_ms().max(0) as u64,
        tenant: key.tenant.clone(),
        attempt: jobs.iter().map(|j| j.attempt).max().unwrap_or(1),
    };
    let (account_json, has_token) = match d.tokens.account_json(d, &plugin, &ctx, &account).await {
        Ok((a, t)) => (Arc::new(a), t),
        Err(e) => {
            return settle_all(jobs, if e.permanent { OutcomeKind::Failed } else { OutcomeKind::Retry }, &e.reason);
        }
    };
    // One job per delivery id: the consumer's claims already make a duplicate
    // impossible; should one get here, it is dropped (its twin is recorded).
    // Checked on borrowed ids first: the usual batch allocates nothing here.
    let twice = {
        let mut seen = HashSet::with_capacity(jobs.len());
        jobs.iter().any(|j| !seen.insert(j.rendered.delivery_id.as_str()))
    };
    let jobs = if twice {
        let mut seen = HashSet::new();
        let (jobs, twins): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| seen.insert(j.rendered.delivery_id.clone()));
        for twin in twins {
            tracing::warn!(delivery = %twin.rendered.delivery_id, "delivery twice in one batch; the copy is dropped");
            twin.item.done();
        }
        jobs
    } else {
        jobs
    };
    let call = Call { d, plugin, ctx, account_json, has_token, account: &account };
    let settled = call.build_and_send(jobs).await;
    // The provider throttled this account: hold its next batches back.
    if let Some(ms) = settled.iter().filter(|s| s.outcome.kind == OutcomeKind::Throttled).map(|s| s.outcome.retry_after_ms.unwrap_or(1_000)).max() {
        d.limiters.pause(&account_key, ms.min(d.retry.get(&key.tenant, &key.channel).max_retry_after_ms));
    }
    settled
}

/// What a failed `build` means for the deliveries it was given: the
/// recipient's or the account's fault is final; anything else (a deadline, a
/// trap, rejected output) is the plugin's or the machine's, and is retried.
fn build_failure(e: &CallError) -> OutcomeKind {
    match e {
        CallError::Plugin(PluginFault::InvalidDelivery(_) | PluginFault::BadConfig(_)) | CallError::HostDenied(_) => OutcomeKind::Failed,
        _ => OutcomeKind::Retry,
    }
}

/// One batch's plugin calls and provider requests.
struct Call<'a> {
    d: &'a Dispatch,
    plugin: Arc<LoadedPlugin>,
    ctx: CallContext,
    account_json: Arc<String>,
    has_token: bool,
    account: &'a Arc<herald_core::model::Account>,
}

impl Call<'_> {
    /// Build the batch and send it. When `build` fails for several
    /// deliveries, each is built on its own, so that one bad recipient (or
    /// whatever else the plugin trips over) fails alone: a batch is a
    /// transport optimisation, never a unit of failure. A bad account config
    /// concerns every delivery and is not split.
    async fn build_and_send(&self, jobs: Vec<Job>) -> Vec<Settled> {
        let (d, plugin) = (self.d, &self.plugin);
        let deliveries: Vec<Delivery> = jobs
            .iter()
            .map(|j| Delivery {
                id: j.rendered.delivery_id.clone(),
                recipient: j.rendered.recipient.clone(),
                subject: j.rendered.subject.clone(),
                text: j.rendered.text.clone(),
                html: j.rendered.html.clone(),
                metadata: j.rendered.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            })
            .collect();
        let built = {
            let (p, c, a) = (plugin.clone(), self.ctx.clone(), self.account_json.clone());
            call_plugin(&d.metrics, plugin, "build", move || p.build(&c, &a, &deliveries)).await
        };
        let built = match built {
            Ok(b) => b,
            Err(e) if jobs.len() > 1 && !matches!(e, CallError::Plugin(PluginFault::BadConfig(_))) => {
                tracing::debug!(plugin = plugin.name(), deliveries = jobs.len(), error = %e, "build failed for a batch; building each delivery alone");
                let singles = jobs.into_iter().map(|j| Box::pin(self.build_and_send(vec![j])));
                return join_all(singles).await.into_iter().flatten().collect();
            }
            Err(e) => {
                tracing::warn!(plugin = plugin.name(), tenant = %self.ctx.tenant, account = %self.account.name, error = %e, "plugin build failed");
                return settle_all(jobs, build_failure(&e), &e.to_string());
            }
        };

        let mut by_id: HashMap<String, Job> = jobs.into_iter().map(|j| (j.rendered.delivery_id.clone(), j)).collect();
        let mut settled: Vec<Settled> = Vec::new();
        for id in built.uncovered {
            if let Some(job) = by_id.remove(&id) {
                settled.extend(settle_all(vec![job], OutcomeKind::Failed, "plugin built no request for this delivery"));
            }
        }
        let sends = built.outbounds.into_iter().map(|o| async move {
            let outcomes = self.send_one(o.request, o.deliveries.clone()).await;
            (o.deliveries, outcomes)
        });
        for (ids, outcomes) in join_all(sends).await {
            let mut outcomes: HashMap<String, PluginOutcome> = match outcomes {
                Ok(list) => list.into_iter().map(|o| (o.delivery_id.clone(), o)).collect(),
                Err((kind, detail)) => {
                    settled.extend(settle_all(ids.iter().filter_map(|id| by_id.remove(id)).collect(), kind, &detail));
                    continue;
                }
            };
            for id in ids {
                let Some(job) = by_id.remove(&id) else {
                    continue;
                };
                let outcome = match outcomes.remove(&id) {
                    Some(o) => from_plugin(o),
                    None => Outcome::new(id, OutcomeKind::Failed, Some("sent, but the plugin reported no outcome".into())),
                };
                settled.push(Settled { job, outcome });
            }
        }
        settled
    }

    /// Send one request and interpret the provider's answer.
    async fn send_one(&self, request: Request, ids: Vec<String>) -> Result<Vec<PluginOutcome>, (OutcomeKind, String)> {
        let (d, plugin) = (self.d, &self.plugin);
        let (protocol, options) = match &request {
            Request::Http(_) => ("http", SendOptions::default()),
            Request::Smtp(_) => ("smtp", SendOptions::from_account(&self.account_json)),
        };
        let started = Instant::now();
        let span = crate::metrics::provider_span(plugin.name(), protocol);
        let response = tracing::Instrument::instrument(d.transport.send_with(request, options), span).await;
        d.metrics.provider_latency.with_label_values(&[plugin.name(), protocol]).observe(started.elapsed().as_secs_f64());
        match response {
            Err(e) => {
                tracing::debug!(plugin = plugin.name(), error = %e, "transport error");
                // A destination the guard refuses stays refused: fail now.
                let kind = if e.is_permanent() { OutcomeKind::Failed } else { OutcomeKind::Retry };
                Err((kind, format!("transport: {e}")))
            }
            Ok(sent) if self.has_token && token_rejected(d, plugin, &sent.response).await => {
                d.tokens.invalidate(self.account);
                Err((OutcomeKind::Retry, "the provider rejected the access token; a new one is fetched for the retry".to_string()))
            }
            Ok(sent) => self.interpret_sent(ids, sent).await,
        }
    }

    /// Interpret an answer. An SMTP message to several recipients got a
    /// reply per recipient (`recipients[i]` is the one for `ids[i]`, the
    /// plugin's contract): the deliveries that share a reply are interpreted
    /// together, so a refused `RCPT TO` fails or retries its delivery alone.
    async fn interpret_sent(&self, ids: Vec<String>, sent: Sent) -> Result<Vec<PluginOutcome>, (OutcomeKind, String)> {
        let (d, plugin) = (self.d, &self.plugin);
        let one = |ids, resp| interpret(d, plugin, self.ctx.clone(), self.account_json.clone(), ids, resp);
        if ids.len() < 2 || sent.recipients.len() != ids.len() {
            return one(ids, sent.response).await;
        }
        let mut groups: Vec<(Response, Vec<String>)> = Vec::new();
        for (id, reply) in ids.into_iter().zip(sent.recipients) {
            let reply = Response::Smtp(reply);
            match groups.iter_mut().find(|(r, _)| *r == reply) {
                Some((_, g)) => g.push(id),
                None => groups.push((reply, vec![id])),
            }
        }
        if groups.len() == 1 {
            let (reply, ids) = groups.pop().expect("one group");
            return one(ids, reply).await;
        }
        let mut outcomes = Vec::new();
        for (reply, ids) in groups {
            match one(ids.clone(), reply).await {
                Ok(list) => outcomes.extend(list),
                Err((kind, detail)) => outcomes.extend(ids.into_iter().map(|id| PluginOutcome {
                    delivery_id: id,
                    kind: match kind {
                        OutcomeKind::Retry => PluginKind::Retry,
                        _ => PluginKind::Failed,
                    },
                    retry_after_ms: None,
                    provider_id: None,
                    units: 0,
                    detail: Some(detail.clone()),
                })),
            }
        }
        Ok(outcomes)
    }
}

async fn token_rejected(d: &Dispatch, plugin: &Arc<LoadedPlugin>, resp: &Response) -> bool {
    let (p, r) = (plugin.clone(), resp.clone());
    call_plugin(&d.metrics, plugin, "token_expired", move || p.token_expired(&r)).await.unwrap_or(false)
}

async fn interpret(
    d: &Dispatch,
    plugin: &Arc<LoadedPlugin>,
    ctx: CallContext,
    account_json: Arc<String>,
    ids: Vec<String>,
    resp: Response,
) -> Result<Vec<PluginOutcome>, (OutcomeKind, String)> {
    let p = plugin.clone();
    // The request reached the provider: never resend on a plugin failure here.
    call_plugin(&d.metrics, plugin, "interpret", move || p.interpret(&ctx, &account_json, &ids, &resp)).await.map_err(|e| {
        tracing::warn!(plugin = plugin.name(), error = %e, "interpret failed after the provider answered; deliveries marked failed");
        (OutcomeKind::Failed, format!("sent, but the outcome is unknown: {e}"))
    })
}

fn from_plugin(o: PluginOutcome) -> Outcome {
    let kind = match o.kind {
        PluginKind::Sent => OutcomeKind::Sent,
        PluginKind::Retry => OutcomeKind::Retry,
        PluginKind::Throttled => OutcomeKind::Throttled,
        PluginKind::Failed => OutcomeKind::Failed,
    };
    Outcome {
        delivery_id: o.delivery_id,
        kind,
        retry_after_ms: o.retry_after_ms,
        provider_id: o.provider_id,
        units: o.units.max(1),
        detail: o.detail,
    }
}

/// The span of one batch's dispatch. With trace export on, it continues the
/// ingest trace of the first message in the batch that has a `traceparent`
/// in its metadata (the batch's other traces are not linked).
fn batch_span(batch: &Batch) -> tracing::Span {
    let k = &batch.key;
    let span = tracing::info_span!("dispatch", tenant = %k.tenant, channel = %k.channel, account = %k.account, deliveries = batch.jobs.len());
    if let Some(tp) = batch.jobs.iter().find_map(|j| j.rendered.metadata.get(herald_telemetry::trace::TRACEPARENT)) {
        herald_telemetry::trace::continue_trace(&span, tp);
    }
    span
}
