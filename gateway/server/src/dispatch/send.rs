//! Send batches: rate limits, plugin `build`, transport, plugin `interpret`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use herald_core::model::{Outcome, OutcomeKind};
use herald_plugin_host::types::{CallContext, Delivery, Outcome as PluginOutcome, OutcomeKind as PluginKind, Request, Response};
use herald_plugin_host::{CallError, LoadedPlugin, PluginFault};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use herald_core::batch::{Admit, BatchKey};
use tokio_util::sync::CancellationToken;

use super::{Dispatch, Job, Settled};
use crate::limits::Limiters;
use crate::metrics::call_plugin;
use crate::transport::SendOptions;

/// What a running batch reports to the scheduler when it is over.
struct Finished {
    key: BatchKey,
    /// The provider throttled the account: hold its lane back until then.
    hold: Option<Instant>,
}

/// Start batches as the fair scheduler releases them (rate limits applied
/// there, so a lane that waits for its rate holds no slot), and free their
/// slots when they finish. Once `consumed` is cancelled no more jobs come:
/// what waits goes without lingering, and the loop ends when all is sent.
pub(super) async fn send_loop(d: Arc<Dispatch>, settled: mpsc::Sender<Settled>, consumed: CancellationToken) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    let mut tasks = JoinSet::new();
    let mut draining = false;
    loop {
        let now = super::now();
        let (batches, wake, idle) = {
            let mut s = d.lanes.lock();
            let batches: Vec<_> = std::iter::from_fn(|| s.next(now, |key, job, n| admit(&d, key, job, n, now))).collect();
            (batches, s.next_wakeup(now), s.is_idle())
        };
        if draining && idle {
            break;
        }
        for (key, jobs) in batches {
            let (d, settled, done) = (d.clone(), settled.clone(), done_tx.clone());
            tasks.spawn(async move {
                d.metrics.inflight_batches.inc();
                let span = batch_span(&key, &jobs); // continues the ingest trace (traceparent metadata)
                let (outcomes, hold) = tracing::Instrument::instrument(send_batch(&d, &key, jobs), span).await;
                for s in outcomes {
                    let _ = settled.send(s).await;
                }
                d.metrics.inflight_batches.dec();
                let _ = done.send(Finished { key, hold });
            });
        }
        let sleep = tokio::time::sleep_until(wake.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std));
        tokio::select! {
            _ = d.lanes.queued.notified() => {}
            Some(first) = done_rx.recv() => {
                let mut s = d.lanes.lock();
                let mut finished = Some(first);
                while let Some(f) = finished {
                    if let Some(until) = f.hold {
                        s.hold(&f.key, until);
                    }
                    s.done(&f.key, super::now());
                    finished = done_rx.try_recv().ok();
                }
            }
            _ = sleep, if wake.is_some() => {}
            _ = consumed.cancelled(), if !draining => {
                draining = true;
                d.lanes.lock().flush();
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// The rate limits of a candidate batch of `n` (`first` is its first job):
/// the account's and the tenant's on the channel. A lane that must wait is
/// held, not waited on.
fn admit(d: &Dispatch, key: &BatchKey, first: &Job, n: usize, now: Instant) -> Admit {
    let [tenant_key, account_key] = Limiters::keys(&key.tenant, &key.channel, &key.account);
    let checked = d
        .limiters
        .try_acquire(&account_key, first.account.rate_per_sec, n)
        .and_then(|()| d.limiters.try_acquire(&tenant_key, d.tenant_rate(&key.tenant, &key.channel), n));
    match checked {
        Ok(()) => Admit::Go,
        Err(wait) => {
            d.metrics.limiter_wait(&key.tenant, &key.channel);
            Admit::Hold(now + wait)
        }
    }
}

fn settle_all(jobs: Vec<Job>, kind: OutcomeKind, detail: &str) -> Vec<Settled> {
    jobs.into_iter()
        .map(|job| {
            let outcome = Outcome::new(job.rendered.delivery_id.clone(), kind, Some(detail.to_string()));
            Settled { job, outcome }
        })
        .collect()
}

/// Send one batch; also says until when its account must be held back if
/// the provider throttled it.
async fn send_batch(d: &Dispatch, key: &BatchKey, jobs: Vec<Job>) -> (Vec<Settled>, Option<Instant>) {
    let account = jobs[0].account.clone();
    let Some(plugin) = d.deps.plugins.get(&account.plugin) else {
        return (settle_all(jobs, OutcomeKind::Retry, &format!("plugin {:?} is not loaded", account.plugin)), None);
    };
    let ctx = CallContext {
        now_ms: d.deps.clock.now_ms().max(0) as u64,
        tenant: key.tenant.clone(),
        attempt: jobs.iter().map(|j| j.attempt).max().unwrap_or(1),
    };
    let (account_json, has_token) = match d.tokens.account_json(d, &plugin, &ctx, &account).await {
        Ok((a, t)) => (Arc::new(a), t),
        Err(e) => {
            return (settle_all(jobs, if e.permanent { OutcomeKind::Failed } else { OutcomeKind::Retry }, &e.reason), None);
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
    // The provider throttled this account: hold its next batches back for
    // the largest Retry-After (a second without one), within 100 ms–60 s.
    let hold =
        settled.iter().filter(|s| s.outcome.kind == OutcomeKind::Throttled).map(|s| s.outcome.retry_after_ms.unwrap_or(1_000)).max().map(|ms| {
            let ms = ms.min(d.retry.get(&key.tenant, &key.channel).max_retry_after_ms).clamp(100, 60_000);
            super::now() + std::time::Duration::from_millis(ms)
        });
    (settled, hold)
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
        let sends = built.outbounds.into_iter().map(|o| self.send_one(o.request, o.deliveries));
        let mut answers: Vec<(Vec<String>, Response)> = Vec::new();
        for (ids, answer) in join_all(sends).await {
            match answer {
                Ok(groups) => answers.extend(groups),
                Err((kind, detail)) => settled.extend(settle_all(ids.iter().filter_map(|id| by_id.remove(id)).collect(), kind, &detail)),
            }
        }
        let (answers, results) = self.interpret_all(answers).await;
        for ((ids, _), result) in answers.into_iter().zip(results) {
            let mut outcomes: HashMap<String, PluginOutcome> = match result {
                Ok(list) => list.into_iter().map(|o| (o.delivery_id.clone(), o)).collect(),
                Err(e) => {
                    // The request reached the provider: never resend on a plugin failure here.
                    tracing::warn!(plugin = plugin.name(), error = %e, "interpret failed after the provider answered; deliveries marked failed");
                    let detail = format!("sent, but the outcome is unknown: {e}");
                    settled.extend(settle_all(ids.iter().filter_map(|id| by_id.remove(id)).collect(), OutcomeKind::Failed, &detail));
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
        // Answers lost with a failed plugin task: sent, outcome unknown.
        settled.extend(settle_all(by_id.into_values().collect(), OutcomeKind::Failed, "sent, but the outcome is unknown: the plugin call failed"));
        settled
    }

    /// Send one request; its answer as the plugin is to interpret it. An
    /// SMTP message to several recipients got a reply per recipient
    /// (`recipients[i]` is the one for `ids[i]`, the plugin's contract): the
    /// deliveries that share a reply are interpreted together, so a refused
    /// `RCPT TO` fails or retries its delivery alone.
    async fn send_one(&self, request: Request, ids: Vec<String>) -> (Vec<String>, Result<Vec<(Vec<String>, Response)>, (OutcomeKind, String)>) {
        let (d, plugin) = (self.d, &self.plugin);
        let (protocol, options) = match &request {
            Request::Http(_) => ("http", SendOptions::default()),
            Request::Smtp(_) => ("smtp", SendOptions::from_account(&self.account_json)),
        };
        let started = Instant::now();
        let span = crate::metrics::provider_span(plugin.name(), protocol);
        let response = tracing::Instrument::instrument(d.transport.send_with(request, options), span).await;
        d.metrics.provider_latency.with_label_values(&[plugin.name(), protocol]).observe(started.elapsed().as_secs_f64());
        let answer = match response {
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
            Ok(sent) if ids.len() < 2 || sent.recipients.len() != ids.len() => Ok(vec![(ids.clone(), sent.response)]),
            Ok(sent) => {
                let mut groups: Vec<(Vec<String>, Response)> = Vec::new();
                for (id, reply) in ids.iter().zip(sent.recipients) {
                    let reply = Response::Smtp(reply);
                    match groups.iter_mut().find(|(_, r)| *r == reply) {
                        Some((g, _)) => g.push(id.clone()),
                        None => groups.push((vec![id.clone()], reply)),
                    }
                }
                Ok(groups)
            }
        };
        (ids, answer)
    }

    /// Interpret every answer of the batch in one plugin call (one instance).
    async fn interpret_all(
        &self,
        answers: Vec<(Vec<String>, Response)>,
    ) -> (Vec<(Vec<String>, Response)>, Vec<Result<Vec<PluginOutcome>, CallError>>) {
        if answers.is_empty() {
            return (answers, Vec::new());
        }
        let (p, ctx, account) = (self.plugin.clone(), self.ctx.clone(), self.account_json.clone());
        let run = move || {
            let calls: Vec<(&[String], &Response)> = answers.iter().map(|(ids, r)| (ids.as_slice(), r)).collect();
            let results = p.interpret_all(&ctx, &account, &calls);
            Ok((answers, results))
        };
        match call_plugin(&self.d.metrics, &self.plugin, "interpret", run).await {
            Ok((answers, results)) => {
                for e in results.iter().filter_map(|r| r.as_ref().err()) {
                    self.d.metrics.plugin_failure(self.plugin.name(), e.kind());
                }
                (answers, results)
            }
            // The blocking task itself failed: the caller settles what it had.
            Err(e) => {
                tracing::error!(plugin = self.plugin.name(), error = %e, "interpret task failed");
                (Vec::new(), Vec::new())
            }
        }
    }
}

async fn token_rejected(d: &Dispatch, plugin: &Arc<LoadedPlugin>, resp: &Response) -> bool {
    let (p, r) = (plugin.clone(), resp.clone());
    call_plugin(&d.metrics, plugin, "token_expired", move || p.token_expired(&r)).await.unwrap_or(false)
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
fn batch_span(k: &BatchKey, jobs: &[Job]) -> tracing::Span {
    let span = tracing::info_span!("dispatch", tenant = %k.tenant, channel = %k.channel, account = %k.account, deliveries = jobs.len());
    if let Some(tp) = jobs.iter().find_map(|j| j.rendered.metadata.get(herald_telemetry::trace::TRACEPARENT)) {
        herald_telemetry::trace::continue_trace(&span, tp);
    }
    span
}
