//! Prometheus metrics. Label handles used per delivery are cached per
//! (tenant, channel) so the hot path does no label hashing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use herald_plugin_host::{CallError, LoadedPlugin};
use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    pub registry: Registry,
    accepted: IntCounterVec,
    deliveries: IntCounterVec,
    limiter_waits: IntCounterVec,
    end_to_end: HistogramVec,
    pub provider_latency: HistogramVec,
    pub plugin_call: HistogramVec,
    plugin_failures: IntCounterVec,
    ledger_minor: IntCounterVec,
    pub queue_depth: IntGauge,
    pub http_requests: IntCounterVec,
    pub inflight_batches: IntGauge,
    /// `herald_http_request_duration_seconds`, request ids; `layer()` goes on the router.
    pub http: herald_telemetry::HttpMetrics,
    cache: Mutex<HashMap<(String, String), Arc<ChannelMetrics>>>,
}

/// Cached handles for one (tenant, channel).
pub struct ChannelMetrics {
    pub accepted: IntCounter,
    pub sent: IntCounter,
    pub failed: IntCounter,
    pub retried: IntCounter,
    pub throttled: IntCounter,
    pub dead: IntCounter,
    pub end_to_end: Histogram,
    pub ledger_minor: IntCounter,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("metric")
}

const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

impl Metrics {
    pub fn new() -> Arc<Self> {
        let hist = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels).expect("metric")
        };
        let registry = Registry::new();
        // Build info, process_* and the HTTP duration histogram, shared with the admin service.
        let http = herald_telemetry::register(&registry);
        let m = Metrics {
            registry,
            accepted: counter("herald_accepted_total", "Notifications accepted (per recipient) at ingest", &["tenant", "channel"]),
            deliveries: counter(
                "herald_deliveries_total",
                "Delivery attempt outcomes: sent, failed, retried, throttled, dead_lettered",
                &["tenant", "channel", "outcome"],
            ),
            limiter_waits: counter("herald_limiter_waits_total", "Batches that waited for a rate limiter", &["tenant", "channel"]),
            end_to_end: hist("herald_end_to_end_seconds", "Acceptance to provider acceptance", &["channel"]),
            provider_latency: hist("herald_provider_latency_seconds", "Provider request latency", &["plugin", "protocol"]),
            plugin_call: hist("herald_plugin_call_seconds", "Time in plugin calls", &["plugin", "function"]),
            plugin_failures: counter(
                "herald_plugin_failures_total",
                "Plugin calls stopped or rejected: deadline, memory, trap, output, host_denied, plugin_error",
                &["plugin", "kind"],
            ),
            ledger_minor: counter("herald_ledger_debits_minor_total", "Debited amount in minor units", &["tenant", "channel", "currency"]),
            queue_depth: IntGauge::new("herald_queue_depth", "Items on the ingest log (due or scheduled)").expect("metric"),
            http_requests: counter("herald_http_requests_total", "HTTP requests by route and status", &["route", "status"]),
            inflight_batches: IntGauge::new("herald_inflight_batches", "Batches being sent").expect("metric"),
            http,
            cache: Mutex::new(HashMap::new()),
        };
        let r = &m.registry;
        for c in [&m.accepted, &m.deliveries, &m.limiter_waits, &m.plugin_failures, &m.ledger_minor, &m.http_requests] {
            r.register(Box::new(c.clone())).expect("register");
        }
        for h in [&m.end_to_end, &m.provider_latency, &m.plugin_call] {
            r.register(Box::new(h.clone())).expect("register");
        }
        r.register(Box::new(m.queue_depth.clone())).expect("register");
        r.register(Box::new(m.inflight_batches.clone())).expect("register");
        Arc::new(m)
    }

    /// Handles for (tenant, channel), created once.
    pub fn channel(&self, tenant: &str, channel: &str, currency: &str) -> Arc<ChannelMetrics> {
        let mut cache = self.cache.lock().expect("metrics cache");
        cache
            .entry((tenant.to_string(), channel.to_string()))
            .or_insert_with(|| {
                let d = |o: &str| self.deliveries.with_label_values(&[tenant, channel, o]);
                Arc::new(ChannelMetrics {
                    accepted: self.accepted.with_label_values(&[tenant, channel]),
                    sent: d("sent"),
                    failed: d("failed"),
                    retried: d("retried"),
                    throttled: d("throttled"),
                    dead: d("dead_lettered"),
                    end_to_end: self.end_to_end.with_label_values(&[channel]),
                    ledger_minor: self.ledger_minor.with_label_values(&[tenant, channel, currency]),
                })
            })
            .clone()
    }

    /// A plugin call failed (`kind` from `CallError::kind`).
    pub fn plugin_failure(&self, plugin: &str, kind: &str) {
        self.plugin_failures.with_label_values(&[plugin, kind]).inc();
    }

    /// A batch waits for a rate limit (Herald's, not the provider's).
    pub fn limiter_wait(&self, tenant: &str, channel: &str) {
        self.limiter_waits.with_label_values(&[tenant, channel]).inc();
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("encode metrics");
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The span of one provider request (HTTP or SMTP), inside its batch's span.
pub fn provider_span(plugin: &str, protocol: &'static str) -> tracing::Span {
    tracing::info_span!("provider", plugin, protocol)
}

/// Run a plugin call off the async threads, with timing and failure metrics.
/// Plugin calls are CPU-bound and run on blocking threads: at most four per
/// core at once (at least eight). More threads would only wait for an
/// instance slot, each parked on the host's condition variable.
fn plugin_calls() -> &'static tokio::sync::Semaphore {
    static CALLS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    CALLS.get_or_init(|| tokio::sync::Semaphore::new((std::thread::available_parallelism().map_or(2, |n| n.get()) * 4).max(8)))
}

pub async fn call_plugin<T: Send + 'static>(
    metrics: &Metrics,
    plugin: &LoadedPlugin,
    function: &'static str,
    f: impl FnOnce() -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    let _permit = plugin_calls().acquire().await.expect("never closed");
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(CallError::Trap(format!("host task failed: {e}"))));
    metrics.plugin_call.with_label_values(&[plugin.name(), function]).observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        metrics.plugin_failure(plugin.name(), e.kind());
    }
    result
}
