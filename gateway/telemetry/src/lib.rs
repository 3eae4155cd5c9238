//! Telemetry shared by the gateway and the admin service.
//!
//! - [`init_logging`]: `HERALD_LOG` (an `EnvFilter`, default `info`),
//!   `HERALD_LOG_FORMAT=json`, colours only on a terminal; with the `otlp`
//!   feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans also go to an
//!   OpenTelemetry collector.
//! - [`register`]: `herald_build_info`, the `process_*` metrics and
//!   `herald_http_request_duration_seconds` in the service's registry.
//! - [`HttpMetrics::layer`]: every response carries `X-Request-Id` (the
//!   caller's when it is sane, else a new one); the request runs in a span
//!   holding that id, so each log line of the request names it; the duration
//!   is observed by route pattern (`MatchedPath`), never by raw path.

mod request;
pub mod trace;

pub use request::{REQUEST_ID, RequestId, RequestLayer, RequestService, request_id_from};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The version the binaries were built as (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binaries were built from, or "unknown" (see build.rs).
pub const COMMIT: &str = env!("HERALD_BUILD_COMMIT");

const DURATION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Set up logging (and trace export, when compiled in and configured) for
/// `service` ("herald-gateway", "herald-admin"). Call once, early. Keep the
/// guard until the process ends: dropping it flushes exported spans.
#[must_use = "keep the guard: dropping it flushes and stops trace export"]
pub fn init_logging(service: &'static str) -> Guard {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = std::env::var("HERALD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let text_layer = (!json).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi));
    let json_layer = json.then(|| tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr));
    let (otel, guard) = trace::exporter_layer(service);
    let registry = tracing_subscriber::registry().with(filter).with(text_layer).with(json_layer).with(otel);
    if registry.try_init().is_err() {
        eprintln!("{service}: logging was already set up");
    }
    guard.announce(service);
    guard
}

pub use trace::Guard;

/// The HTTP metrics of one service, and the layer that observes them.
#[derive(Clone)]
pub struct HttpMetrics {
    duration: HistogramVec,
    requests: Option<IntCounterVec>,
}

/// Register the shared metrics in `registry`: `herald_build_info`,
/// `process_*` (Linux), `herald_http_request_duration_seconds{route,status}`.
/// Returns the handle whose [`HttpMetrics::layer`] goes on the router.
pub fn register(registry: &Registry) -> HttpMetrics {
    let info =
        IntGaugeVec::new(Opts::new("herald_build_info", "The running build: always 1, labelled with its version and commit"), &["version", "commit"])
            .expect("metric");
    info.with_label_values(&[VERSION, COMMIT]).set(1);
    registry.register(Box::new(info)).expect("register herald_build_info");
    #[cfg(target_os = "linux")]
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).expect("register process metrics");
    let duration = HistogramVec::new(
        HistogramOpts::new("herald_http_request_duration_seconds", "HTTP request duration by route pattern and status")
            .buckets(DURATION_BUCKETS.to_vec()),
        &["route", "status"],
    )
    .expect("metric");
    registry.register(Box::new(duration.clone())).expect("register herald_http_request_duration_seconds");
    HttpMetrics { duration, requests: None }
}

impl HttpMetrics {
    /// Also count requests as `name{route,status}` (e.g. `herald_admin_requests_total`).
    pub fn count_requests_as(mut self, registry: &Registry, name: &str, help: &str) -> Self {
        let c = IntCounterVec::new(Opts::new(name, help), &["route", "status"]).expect("metric");
        registry.register(Box::new(c.clone())).expect("register request counter");
        self.requests = Some(c);
        self
    }

    /// The layer for `Router::layer`. Add it after the routes *and* the
    /// fallback, so that every response (a 404 too) carries a request id.
    pub fn layer(&self) -> RequestLayer {
        RequestLayer::new(self.clone())
    }

    fn observe(&self, route: &str, status: http::StatusCode, seconds: f64) {
        let status = status.as_str();
        self.duration.with_label_values(&[route, status]).observe(seconds);
        if let Some(c) = &self.requests {
            c.with_label_values(&[route, status]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_process_metrics_are_registered() {
        let r = Registry::new();
        let _http = register(&r);
        let names: Vec<String> = r.gather().iter().map(|f| f.name().to_string()).collect();
        assert!(names.contains(&"herald_build_info".to_string()), "{names:?}");
        #[cfg(target_os = "linux")]
        assert!(names.iter().any(|n| n.starts_with("process_")), "{names:?}");
        assert!(!COMMIT.is_empty());
    }
}
