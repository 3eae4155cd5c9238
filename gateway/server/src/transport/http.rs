use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use herald_plugin_host::types::{HttpRequest, HttpResponse};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::TransportError;

/// Largest provider response body read.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct HttpTransport {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    /// host → base URL (scheme and authority) to send that host's requests to.
    redirects: HashMap<String, hyper::Uri>,
}

impl HttpTransport {
    pub fn new(timeout: Duration, redirect_hosts: HashMap<String, String>) -> Self {
        let redirects = redirect_hosts
            .into_iter()
            .filter_map(|(host, base)| match base.parse::<hyper::Uri>() {
                Ok(u) if u.scheme().is_some() && u.authority().is_some() => Some((host.to_ascii_lowercase(), u)),
                _ => {
                    tracing::error!(host, base, "plugins.redirect_hosts: not an absolute URL; ignored");
                    None
                }
            })
            .collect();
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
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { client, timeout, redirects }
    }

    /// The URL to connect to: the plugin's, or its redirect.
    fn target(&self, url: &str) -> Result<hyper::Uri, TransportError> {
        let uri: hyper::Uri = url.parse().map_err(|e| TransportError::Protocol(format!("URL: {e}")))?;
        let Some(base) = uri.host().and_then(|h| self.redirects.get(&h.to_ascii_lowercase())) else { return Ok(uri) };
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
                if e.is_connect() { TransportError::Connect(e.to_string()) } else { TransportError::Protocol(e.to_string()) }
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| TransportError::Protocol(format!("reading response: {e}")))?
                .to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
                .collect();
            Ok(HttpResponse { status: parts.status.as_u16(), headers, body: body.to_vec() })
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| TransportError::Timeout(self.timeout))?
    }
}
