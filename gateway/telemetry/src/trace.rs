//! Optional OpenTelemetry trace export (OTLP over HTTP/protobuf).
//!
//! Compiled in with the `otlp` feature; off at run time unless
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, e.g. `http://otel-collector:4318`. The exporter reads the other
//! standard `OTEL_*` variables (headers, timeout); the service name is
//! `OTEL_SERVICE_NAME` or the binary's name.
//!
//! The trace context crosses the queue as a W3C `traceparent` string: the
//! ingest span's [`traceparent`] goes into the message's metadata and the
//! dispatch side calls [`continue_trace`] on its span with it. Without the
//! feature (or when export is off) both are no-ops.

use tracing::Span;

/// The metadata key (and HTTP header) carrying the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Keeps trace export alive; dropping it flushes the spans still buffered.
pub struct Guard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    #[cfg(feature = "otlp")]
    error: Option<String>,
}

impl Guard {
    pub(crate) fn announce(&self, service: &str) {
        #[cfg(feature = "otlp")]
        {
            if let Some(e) = &self.error {
                tracing::warn!(error = %e, "OpenTelemetry trace export is off: the exporter could not be set up");
            } else if self.provider.is_some() {
                tracing::info!(service, "OpenTelemetry trace export on (OTLP/HTTP)");
            }
        }
        let _ = service;
    }

    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        #[cfg(feature = "otlp")]
        {
            self.provider.is_some()
        }
        #[cfg(not(feature = "otlp"))]
        false
    }
}

#[cfg(feature = "otlp")]
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // Flushing blocks on HTTP: keep it off any async worker thread.
            let _ = std::thread::spawn(move || p.shutdown()).join();
        }
    }
}

/// Whether the standard variables ask for trace export.
pub fn export_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].iter().any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

#[cfg(not(feature = "otlp"))]
pub(crate) fn exporter_layer(_service: &'static str) -> (Option<tracing_subscriber::layer::Identity>, Guard) {
    if export_configured() {
        eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is set but this build has no OTLP support (cargo feature `otlp`)");
    }
    (None, Guard {})
}

#[cfg(feature = "otlp")]
pub(crate) fn exporter_layer<S>(service: &'static str) -> (Option<impl tracing_subscriber::Layer<S>>, Guard)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;

    if !export_configured() {
        return (None, Guard { provider: None, error: None });
    }
    // The blocking HTTP client starts its own runtime, which must not be
    // built (or dropped) on a Tokio worker: set it up on a plain thread.
    let built = std::thread::spawn(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
            .map_err(|e| e.to_string())?;
        let name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| service.to_string());
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(name).build();
        Ok::<_, String>(opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
    })
    .join()
    .unwrap_or_else(|_| Err("exporter set-up panicked".into()));
    match built {
        Ok(provider) => {
            opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
            let tracer = provider.tracer(service);
            let layer = tracing_opentelemetry::layer().with_tracer(tracer);
            (Some(layer), Guard { provider: Some(provider), error: None })
        }
        Err(e) => (None, Guard { provider: None, error: Some(e) }),
    }
}

/// The W3C `traceparent` of `span`, when spans are exported.
pub fn traceparent(span: &Span) -> Option<String> {
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() {
            return None;
        }
        Some(format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = span;
        None
    }
}

/// `metadata` with the current span's `traceparent` added (when spans are
/// exported and the caller did not set one), so that the message's dispatch
/// continues this trace.
pub fn with_traceparent(mut metadata: std::collections::BTreeMap<String, String>) -> std::collections::BTreeMap<String, String> {
    if !metadata.contains_key(TRACEPARENT)
        && let Some(tp) = traceparent(&Span::current())
    {
        metadata.insert(TRACEPARENT.to_string(), tp);
    }
    metadata
}

/// Make `span` a child of the remote span named by `traceparent` (from a
/// message's metadata). A malformed value is ignored.
pub fn continue_trace(span: &Span, traceparent: &str) {
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::propagation::TextMapPropagator as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        if traceparent.len() > 128 {
            return;
        }
        let carrier = std::collections::HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
        let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
        use opentelemetry::trace::TraceContextExt as _;
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = (span, traceparent);
    }
}

/// Continue a caller's trace (a `traceparent` request header).
pub(crate) fn continue_from_headers(span: &Span, headers: &http::HeaderMap) {
    if let Some(tp) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
        continue_trace(span, tp);
    }
}

#[cfg(all(test, feature = "otlp"))]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_through_a_span() {
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        use opentelemetry::trace::TracerProvider as _;
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
        tracing::subscriber::with_default(subscriber, || {
            let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            let span = tracing::info_span!("dispatch");
            continue_trace(&span, parent);
            let tp = traceparent(&span).expect("a context");
            assert!(tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"), "{tp}");
            assert!(!tp.contains("b7ad6b7169203331"), "a new span id: {tp}");
            let other = tracing::info_span!("x");
            continue_trace(&other, "garbage");
            assert_ne!(traceparent(&other).unwrap_or_default().get(3..35), Some("0af7651916cd43dd8448eb211c80319c"));
        });
    }
}
