//! `X-Request-Id`, the request span and the duration metric.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use http::HeaderValue;
use http::header::HeaderName;
use tracing::Instrument;

use crate::HttpMetrics;

/// The header, in requests and responses.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-chosen id kept; a longer one is replaced.
const MAX_LEN: usize = 128;

/// The request's id, also in the request's extensions for handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The caller's id when it is 1–128 visible ASCII characters (no spaces or
/// controls, so it cannot forge log lines or bloat them), else a new one.
pub fn request_id_from(given: Option<&HeaderValue>) -> String {
    match given.map(HeaderValue::as_bytes) {
        Some(b) if !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| c.is_ascii_graphic()) => {
            // Visible ASCII is valid UTF-8.
            String::from_utf8_lossy(b).into_owned()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

#[derive(Clone)]
pub struct RequestLayer {
    metrics: HttpMetrics,
}

impl RequestLayer {
    pub(crate) fn new(metrics: HttpMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower_layer::Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S> tower_service::Service<Request> for RequestService<S>
where
    S: tower_service::Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id_from(req.headers().get(&REQUEST_ID));
        let header = HeaderValue::from_str(&id).expect("visible ASCII");
        // Handlers (and anything they call) see the id that is answered.
        req.headers_mut().insert(REQUEST_ID, header.clone());
        req.extensions_mut().insert(RequestId(id.clone()));
        // The route pattern (`/v1/messages/{id}`), never the raw path: ids in
        // paths must not become label values.
        let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
        // Probes and scrapes come every few seconds: their spans are debug-level,
        // so at the default `info` they are neither logged around nor exported.
        let span = if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
            tracing::debug_span!("request", request_id = %id, method = %req.method(), route = %route)
        } else {
            tracing::info_span!("request", request_id = %id, method = %req.method(), route = %route)
        };
        crate::trace::continue_from_headers(&span, req.headers());
        let future = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let mut resp = future.await?;
                let elapsed = started.elapsed();
                metrics.observe(&route, resp.status(), elapsed.as_secs_f64());
                tracing::debug!(status = resp.status().as_u16(), elapsed_ms = elapsed.as_millis() as u64, "answered");
                resp.headers_mut().insert(REQUEST_ID, header);
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        let keep = HeaderValue::from_static("abc-123_XYZ.9");
        assert_eq!(request_id_from(Some(&keep)), "abc-123_XYZ.9");
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        let max = HeaderValue::from_str(&"a".repeat(128)).unwrap();
        assert_eq!(request_id_from(Some(&max)).len(), 128);
        for bad in [Some(&long), Some(&HeaderValue::from_static("a b")), Some(&HeaderValue::from_static("")), None] {
            let made = request_id_from(bad);
            assert_eq!(made.len(), 32, "{made}");
            assert!(made.bytes().all(|c| c.is_ascii_hexdigit()));
        }
        let tab = HeaderValue::from_bytes(b"a\tb").unwrap();
        assert_ne!(request_id_from(Some(&tab)), "a\tb");
        let high = HeaderValue::from_bytes(&[b'a', 0xC3, 0xA9]).unwrap();
        assert_eq!(request_id_from(Some(&high)).len(), 32);
    }

    #[tokio::test]
    async fn every_answer_carries_an_id_and_the_route_pattern_is_the_label() {
        use axum::Router;
        use axum::routing::get;
        use tower::ServiceExt;

        let registry = prometheus::Registry::new();
        let http = crate::register(&registry).count_requests_as(&registry, "t_requests_total", "t");
        let app = Router::new()
            .route("/things/{id}", get(|axum::Extension(RequestId(id)): axum::Extension<RequestId>| async move { id }))
            .fallback(|| async { (http::StatusCode::NOT_FOUND, "no") })
            .layer(http.layer());
        let req = |uri: &str, id: Option<&str>| {
            let mut b = http::Request::builder().uri(uri);
            if let Some(id) = id {
                b = b.header("x-request-id", id);
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        let resp = app.clone().oneshot(req("/things/42", Some("caller-1"))).await.unwrap();
        assert_eq!(resp.headers()["x-request-id"], "caller-1");
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"caller-1", "the handler sees the same id");
        let resp = app.clone().oneshot(req("/things/43", None)).await.unwrap();
        assert_eq!(resp.headers()["x-request-id"].len(), 32);
        let resp = app.clone().oneshot(req("/nowhere/7", Some(&"x".repeat(300)))).await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["x-request-id"].len(), 32);

        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(r#"herald_http_request_duration_seconds_count{route="/things/{id}",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"herald_http_request_duration_seconds_count{route="unmatched",status="404"} 1"#), "{text}");
        assert!(text.contains(r#"t_requests_total{route="/things/{id}",status="200"} 2"#), "{text}");
        assert!(!text.contains("/things/42"), "raw paths never become labels");
    }
}
