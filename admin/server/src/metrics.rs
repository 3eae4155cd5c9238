//! The admin service's Prometheus metrics, served at `/metrics`:
//! `herald_admin_*` (requests, logins, lockouts, uploads, pushes published)
//! beside the shared `herald_build_info`, `process_*` and
//! `herald_http_request_duration_seconds` (herald-telemetry).
//!
//! One admin service per process, so the metrics are process-wide.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use herald_core::Millis;
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    pub registry: Registry,
    pub http: herald_telemetry::HttpMetrics,
    /// Login attempts by outcome: ok, failed, locked (refused while locked).
    logins: IntCounterVec,
    /// Logins locked after too many failures.
    pub lockouts: IntCounter,
    /// Recipient-list uploads by outcome: ok, refused (bad file), failed.
    uploads: IntCounterVec,
    /// Messages a push was published as (one per publish or occurrence).
    pub pushes_published: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let http = herald_telemetry::register(&registry).count_requests_as(
            &registry,
            "herald_admin_requests_total",
            "Admin HTTP requests by route pattern and status",
        );
        let logins = IntCounterVec::new(Opts::new("herald_admin_logins_total", "Login attempts by outcome: ok, failed, locked"), &["outcome"])
            .expect("metric");
        let lockouts = IntCounter::new("herald_admin_lockouts_total", "Logins locked after too many failed attempts").expect("metric");
        let uploads =
            IntCounterVec::new(Opts::new("herald_admin_uploads_total", "Recipient-list uploads by outcome: ok, refused, failed"), &["outcome"])
                .expect("metric");
        let pushes_published =
            IntCounter::new("herald_admin_pushes_published_total", "Pushes published to the queue (each publish or occurrence)").expect("metric");
        registry.register(Box::new(logins.clone())).expect("register");
        registry.register(Box::new(lockouts.clone())).expect("register");
        registry.register(Box::new(uploads.clone())).expect("register");
        registry.register(Box::new(pushes_published.clone())).expect("register");
        // Every outcome from the start, so rate() works before the first event.
        for o in ["ok", "failed", "locked"] {
            logins.with_label_values(&[o]);
        }
        for o in ["ok", "refused", "failed"] {
            uploads.with_label_values(&[o]);
        }
        Metrics { registry, http, logins, lockouts, uploads, pushes_published }
    }

    /// Count a login attempt: "ok", "failed" or "locked".
    pub fn login(&self, outcome: &'static str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    /// Count an upload: "ok", "refused" or "failed".
    pub fn upload(&self, outcome: &'static str) {
        self.uploads.with_label_values(&[outcome]).inc();
    }

    /// Count the start of a login attempt, given `(locked_until before,
    /// Attempts::begin's answer, locked_until after)`; returns the answer.
    pub fn begun(&self, (before, answer, after): (Millis, Result<Millis, Millis>, Millis)) -> Result<Millis, Millis> {
        if after > before {
            self.lockouts.inc();
        }
        if answer.is_err() {
            self.login("locked");
        }
        answer
    }

    /// Count a settled login attempt (`ok`: the password was right), given
    /// `(locked_until before, Attempts::finish's answer, locked_until after)`.
    pub fn finished(&self, ok: bool, (before, answer, after): (Millis, Option<Millis>, Millis)) -> Option<Millis> {
        if after > before {
            self.lockouts.inc();
        }
        self.login(match (ok, answer) {
            (true, None) => "ok",
            (true, Some(_)) => "locked",
            (false, _) => "failed",
        });
        answer
    }

    /// Count a parsed upload by its outcome; returns it.
    pub fn uploaded<T>(&self, r: Result<T, crate::upload_worker::Failure>) -> Result<T, crate::upload_worker::Failure> {
        self.upload(match &r {
            Ok(_) => "ok",
            Err(crate::upload_worker::Failure::Refused(_)) => "refused",
            Err(_) => "failed",
        });
        r
    }

    fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("encode metrics");
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// `GET /metrics`: the Prometheus text format.
pub async fn handler() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], get().render()).into_response()
}
