use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use herald_backends::guard::{Guard, Refused, ResolveError};
use herald_plugin_host::types::{HttpRequest, HttpResponse};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::TransportError;

/// Largest provider response body read.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<GuardedConnector>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves the destination, keeps the addresses the guard allows and
/// connects to those (as literal addresses, so nothing resolves the name
/// again between the check and the connect). TLS above it still uses the
/// URL's host name.
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector,
    guard: Arc<Guard>,
}

impl tower_service::Service<hyper::Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: hyper::Uri) -> Self::Future {
        let (mut inner, guard) = (self.inner.clone(), self.guard.clone());
        Box::pin(async move {
            let host = dst.host().ok_or("URL without a host")?.to_string();
            let port = dst.port_u16().unwrap_or(if dst.scheme() == Some(&::http::uri::Scheme::HTTPS) { 443 } else { 80 });
            let addrs = guard.resolve(&host, port).await.map_err(|e| -> BoxError {
                match e {
                    ResolveError::Refused(r) => Box::new(r),
                    ResolveError::Lookup(m) => m.into(),
                }
            })?;
            let mut last: Option<BoxError> = None;
            for addr in addrs {
                let literal: hyper::Uri = format!("http://{}", SocketAddr::new(addr.ip(), addr.port())).parse()?;
                match tower_service::Service::call(&mut inner, literal).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some(e.into()),
                }
            }
            Err(last.unwrap_or_else(|| "no address to connect to".into()))
        })
    }
}

/// The guard's refusal somewhere in an error's chain.
fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

pub struct HttpTransport {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    /// host → base URL (scheme and authority) to send that host's requests to.
    redirects: HashMap<String, hyper::Uri>,
}

impl HttpTransport {
    /// `guard` decides which destinations may be reached; the operator's
    /// redirect targets are always allowed.
    pub fn new(timeout: Duration, redirect_hosts: HashMap<String, String>, mut guard: Guard) -> Self {
        let redirects = redirect_hosts
            .into_iter()
            .filter_map(|(host, base)| match base.parse::<hyper::Uri>() {
                Ok(u) if u.scheme().is_some() && u.authority().is_some() => Some((host.to_ascii_lowercase(), u)),
                _ => {
                    tracing::error!(host, base, "plugins.redirect_hosts: not an absolute URL; ignored");
                    None
                }
            })
            .collect::<HashMap<String, hyper::Uri>>();
        for base in redirects.values() {
            let Some(auth) = base.authority() else {
                continue;
            };
            let port = auth.port_u16().unwrap_or(if base.scheme() == Some(&::http::uri::Scheme::HTTPS) { 443 } else { 80 });
            if let Err(e) = guard.allow(&format!("{}:{port}", auth.host())) {
                tracing::warn!(base = %base, error = e, "plugins.redirect_hosts: target not added to the allowlist");
            }
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("rustls protocol versions")
            .with_root_certificates(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(GuardedConnector { inner: http, guard: Arc::new(guard) });
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).pool_max_idle_per_host(256).build(connector);
        Self { client, timeout, redirects }
    }

    /// The URL to connect to: the plugin's, or its redirect.
    fn target(&self, url: &str) -> Result<hyper::Uri, TransportError> {
        let uri: hyper::Uri = url.parse().map_err(|e| TransportError::Protocol(format!("URL: {e}")))?;
        let Some(base) = uri.host().and_then(|h| self.redirects.get(&h.to_ascii_lowercase())) else {
            return Ok(uri);
        };
        let mut parts = uri.into_parts();
        parts.scheme = base.scheme().cloned();
        parts.authority = base.authority().cloned();
        hyper::Uri::from_parts(parts).map_err(|e| TransportError::Protocol(format!("redirect: {e}")))
    }

    pub async fn send(&self, r: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = hyper::Request::builder().method(r.method.as_str()).uri(self.target(&r.url)?);
        for (k, v) in &r.headers {
            builder = builder.header(k, v);
        }
        let req = builder.body(Full::new(Bytes::from(r.body))).map_err(|e| TransportError::Protocol(e.to_string()))?;
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if let Some(r) = refusal(&e) {
                    TransportError::Refused(r.0)
                } else if e.is_connect() {
                    TransportError::Connect(e.to_string())
                } else {
                    TransportError::Protocol(e.to_string())
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| TransportError::Protocol(format!("reading response: {e}")))?
                .to_bytes();
            let headers = parts.headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string()))).collect();
            Ok(HttpResponse { status: parts.status.as_u16(), headers, body: body.to_vec() })
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| TransportError::Timeout(self.timeout))?
    }
}
