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
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;

use super::TransportError;

/// Largest provider response body read.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<GuardedConnector>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How provider HTTP connects besides the guard: the proxy (if any) and the
/// trusted roots. [`HttpOptions::default`] is a direct connection trusting
/// the bundled roots only; [`HttpOptions::from_config`] reads the
/// `transport` settings and the standard proxy variables.
#[derive(Clone)]
pub struct HttpOptions {
    proxy: Option<Arc<Proxy>>,
    roots: Arc<rustls::RootCertStore>,
    /// The trusted roots besides the bundled ones (system store, `ca_files`),
    /// for SMTP's TLS, which builds its own store.
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
}

/// Which destinations go through which proxy (`NO_PROXY` rules included).
struct Proxy {
    matcher: Matcher,
    /// Where the settings came from, for logs and errors (no credentials).
    describe: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self { proxy: None, roots: Arc::new(bundled_roots()), extra_roots: Arc::default() }
    }
}

fn bundled_roots() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// `http://user:secret@host:3128` shown as `http://host:3128` (never log a password).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/').map(|(a, _)| a).unwrap_or(rest).rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_string(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => host.to_string(),
            None => url.to_string(),
        },
    }
}

/// Check a proxy URL; `setting` names the key or variable in the error.
fn check_proxy_url(setting: &str, url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    // Like curl, a bare `host:port` means http://.
    let full = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
    let uri: hyper::Uri = full.parse().map_err(|e| format!("{setting}: {shown:?} is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!("{setting}: {shown:?}: only http:// proxies are supported (the proxy tunnels TLS with CONNECT), not {other}://"));
        }
        None => return Err(format!("{setting}: {shown:?} has no scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{setting}: {shown:?} has no host"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!("{setting}: {shown:?}: a proxy URL has no path"));
    }
    Ok(())
}

fn env_first(names: [&str; 2]) -> Option<(String, String)> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()).map(|v| (n.to_string(), v.trim().to_string())))
}

impl HttpOptions {
    /// The `transport` settings: `proxy`/`no_proxy` (or the proxy variables
    /// with `proxy_from_env`), `ca_files` and `system_roots`. Errors name the
    /// setting or variable; no credential is shown.
    pub fn from_config(cfg: &crate::config::TransportConfig) -> Result<Self, String> {
        let no_proxy_env = || env_first(["NO_PROXY", "no_proxy"]).map(|(_, v)| v).unwrap_or_default();
        let no_proxy = match &cfg.no_proxy {
            Some(list) => {
                for (i, e) in list.iter().enumerate() {
                    if e.trim().is_empty() || e.contains(',') {
                        return Err(format!("transport.no_proxy[{i}]: {e:?}: one host, address or network per entry"));
                    }
                }
                list.join(",")
            }
            None => no_proxy_env(),
        };
        let proxy = if let Some(url) = &cfg.proxy {
            check_proxy_url("transport.proxy", url)?;
            Some(Proxy {
                matcher: Matcher::builder().all(url.as_str()).no(no_proxy).build(),
                describe: format!("transport.proxy {}", redact_url(url)),
            })
        } else if cfg.proxy_from_env {
            let https = env_first(["HTTPS_PROXY", "https_proxy"]);
            let http = env_first(["HTTP_PROXY", "http_proxy"]);
            let all = env_first(["ALL_PROXY", "all_proxy"]);
            let hint = " (or set transport.proxy_from_env = false)";
            for (name, value) in [&https, &http, &all].into_iter().flatten() {
                check_proxy_url(name, value).map_err(|e| format!("{e}{hint}"))?;
            }
            let describe = [&https, &http, &all].into_iter().flatten().map(|(n, v)| format!("{n}={}", redact_url(v))).collect::<Vec<_>>().join(" ");
            let mut b = Matcher::builder().no(no_proxy);
            if let Some((_, v)) = &https {
                b = b.https(v.as_str());
            }
            if let Some((_, v)) = &http {
                b = b.http(v.as_str());
            }
            if let Some((_, v)) = &all {
                b = b.all(v.as_str());
            }
            (!describe.is_empty()).then(|| Proxy { matcher: b.build(), describe })
        } else {
            None
        };
        let mut roots = bundled_roots();
        let mut extra_roots = Vec::new();
        if cfg.system_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "transport.system_roots: part of the system certificate store could not be read");
            }
            extra_roots.extend(found.certs.iter().cloned());
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system certificate store loaded");
        }
        for (i, path) in cfg.ca_files.iter().enumerate() {
            let setting = format!("transport.ca_files[{i}]");
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{setting}: {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{setting}: {}: not a PEM certificate file ({e})", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{setting}: {}: no CERTIFICATE in the file", path.display()));
            }
            for (n, cert) in certs.into_iter().enumerate() {
                extra_roots.push(cert.clone());
                roots.add(cert).map_err(|e| format!("{setting}: {}: certificate {}: {e}", path.display(), n + 1))?;
            }
        }
        if let Some(p) = &proxy {
            tracing::info!(proxy = %p.describe, "provider HTTP goes through a proxy");
        }
        Ok(Self { proxy: proxy.map(Arc::new), roots: Arc::new(roots), extra_roots: Arc::new(extra_roots) })
    }

    /// The roots trusted besides the bundled ones (system store, `ca_files`).
    pub fn extra_roots(&self) -> Arc<Vec<CertificateDer<'static>>> {
        self.extra_roots.clone()
    }

    /// Whether requests to `url` go through the proxy (for tests and checks).
    pub fn proxied(&self, url: &str) -> bool {
        let Ok(uri) = url.parse::<hyper::Uri>() else { return false };
        self.proxy.as_ref().is_some_and(|p| p.matcher.intercept(&uri).is_some())
    }
}

/// Resolves the destination, keeps the addresses the guard allows and
/// connects to those (as literal addresses, so nothing resolves the name
/// again between the check and the connect). TLS above it still uses the
/// URL's host name.
///
/// With a proxy that applies to the destination, the guard still checks the
/// destination's resolved address, and the proxy is asked to `CONNECT` to
/// that address (not the name, which it would resolve again). The proxy's
/// own address is not checked: the operator chose it.
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector,
    guard: Arc<Guard>,
    proxy: Option<Arc<Proxy>>,
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
        let via = self.proxy.as_ref().and_then(|p| p.matcher.intercept(&dst).map(|i| (i, p.describe.clone())));
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
                let connected = match &via {
                    None => tower_service::Service::call(&mut inner, literal).await.map_err(BoxError::from),
                    Some((intercept, describe)) => {
                        let mut tunnel = Tunnel::new(intercept.uri().clone(), inner.clone());
                        if let Some(auth) = intercept.basic_auth() {
                            tunnel = tunnel.with_auth(auth.clone());
                        }
                        tower_service::Service::call(&mut tunnel, literal).await.map_err(|e| -> BoxError {
                            let cause = std::error::Error::source(&e).map(|s| format!(" ({s})")).unwrap_or_default();
                            format!("proxy ({describe}): {e}{cause}").into()
                        })
                    }
                };
                match connected {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| "no address to connect to".into()))
        })
    }
}

/// An error and its causes, `a: b: c` (repeats dropped).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let m = err.to_string();
        if !out.contains(&m) {
            out = format!("{out}: {m}");
        }
        cur = err.source();
    }
    out
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
    /// redirect targets are always allowed. `options`: proxy and trusted roots.
    pub fn new(timeout: Duration, redirect_hosts: HashMap<String, String>, mut guard: Guard, options: HttpOptions) -> Self {
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
            .with_root_certificates(options.roots.clone())
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(GuardedConnector { inner: http, guard: Arc::new(guard), proxy: options.proxy.clone() });
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
                    // hyper's own message is only "client error (Connect)":
                    // the causes say what failed (refused, TLS, the proxy).
                    TransportError::Connect(with_causes(&e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransportConfig;

    fn cfg() -> TransportConfig {
        // No variable of the test's environment may leak in.
        TransportConfig { proxy_from_env: false, system_roots: false, ..TransportConfig::default() }
    }

    #[test]
    fn proxy_passwords_are_never_shown() {
        assert_eq!(redact_url("http://user:pw@proxy:3128"), "http://proxy:3128");
        assert_eq!(redact_url("http://proxy:3128/"), "http://proxy:3128/");
        assert_eq!(redact_url("user:pw@proxy:3128"), "proxy:3128");
        let e = check_proxy_url("transport.proxy", "https://u:secret@proxy:3128").unwrap_err();
        assert!(e.contains("transport.proxy") && e.contains("only http://") && !e.contains("secret"), "{e}");
        let e = check_proxy_url("HTTPS_PROXY", "http://u:secret@proxy:3128/path").unwrap_err();
        assert!(e.contains("HTTPS_PROXY") && !e.contains("secret"), "{e}");
        assert!(check_proxy_url("HTTP_PROXY", "proxy.internal:3128").is_ok(), "a bare host:port is http://");
        assert!(check_proxy_url("transport.proxy", "http://:3128").is_err());
    }

    #[test]
    fn the_proxy_applies_except_to_no_proxy() {
        let o = HttpOptions::from_config(&TransportConfig {
            proxy: Some("http://proxy.internal:3128".into()),
            no_proxy: Some(vec!["localhost".into(), ".corp.example".into(), "10.0.0.0/8".into()]),
            ..cfg()
        })
        .unwrap();
        assert!(o.proxied("https://api.example.com/send"));
        assert!(o.proxied("http://hooks.example.com/in"));
        assert!(!o.proxied("http://localhost:8080/x"));
        assert!(!o.proxied("https://a.corp.example/x"));
        assert!(!o.proxied("http://10.1.2.3/x"));
        assert!(!HttpOptions::from_config(&cfg()).unwrap().proxied("https://api.example.com/"));
        let e = HttpOptions::from_config(&TransportConfig { proxy: Some("http://p:1".into()), no_proxy: Some(vec!["a,b".into()]), ..cfg() })
            .err()
            .unwrap();
        assert!(e.contains("transport.no_proxy[0]"), "{e}");
    }

    #[test]
    fn ca_files_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = HttpOptions::from_config(&TransportConfig { ca_files: vec![missing], ..cfg() }).err().unwrap();
        assert!(e.contains("transport.ca_files[0]"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = HttpOptions::from_config(&TransportConfig { ca_files: vec![empty], ..cfg() }).err().unwrap();
        assert!(e.contains("transport.ca_files[0]") && e.contains("no CERTIFICATE"), "{e}");
        let bundled = HttpOptions::from_config(&cfg()).unwrap().roots.len();
        assert_eq!(bundled, webpki_roots::TLS_SERVER_ROOTS.len());
    }
}
