//! The Transport seam: the host sends what plugins build. HTTP goes through a
//! pooled hyper client (HTTP/1.1 and h2, rustls); SMTP through pooled lettre
//! connections (one pool per relay, checked address and credentials, bounded
//! by the account's `smtp.max_connections`), with a reply per recipient.
//!
//! Every destination passes the destination guard ([`herald_backends::guard`])
//! on its resolved address, and the connection goes to the address that
//! passed: loopback, private, link-local, metadata and other non-public
//! addresses are refused unless `transport.allow_private` allows them.

mod http;
mod smtp;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use herald_backends::Guard;
use herald_plugin_host::types::{Request, Response, SmtpReply};

pub use self::http::{HttpOptions, HttpTransport};
pub use self::smtp::SmtpTransport;

/// A request that got no provider answer. Worth retrying, except `Refused`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The destination guard refused the address: retrying cannot help.
    #[error("{0}")]
    Refused(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl TransportError {
    /// Whether retrying the request cannot succeed (the delivery should fail now).
    pub fn is_permanent(&self) -> bool {
        matches!(self, TransportError::Refused(_))
    }
}

/// How provider requests go out: the destination guard, and the HTTP
/// settings (proxy, trusted roots). Derefs to the guard.
#[derive(Clone)]
pub struct Outbound {
    pub guard: Guard,
    pub http: HttpOptions,
}

impl From<Guard> for Outbound {
    /// A direct connection trusting the bundled roots only.
    fn from(guard: Guard) -> Self {
        Outbound { guard, http: HttpOptions::default() }
    }
}

impl std::ops::Deref for Outbound {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        &self.guard
    }
}

/// The destination guard from `transport.allow_private`; with the demo
/// tenant active (`demo`: this gateway's address), its two local destinations
/// (the gateway's own demo inbox and an SMTP catcher on 127.0.0.1:1025) too.
/// With it the other `transport` settings: proxy, CA files, system roots.
pub fn guard(cfg: &crate::config::TransportConfig, demo: Option<SocketAddr>) -> Result<Outbound, String> {
    let mut g = Guard::new(&cfg.allow_private, "transport.allow_private")?;
    if let Some(addr) = demo {
        let ip = if addr.ip().is_unspecified() { "127.0.0.1".parse().expect("ip") } else { addr.ip() };
        g.allow(&SocketAddr::new(ip, addr.port()).to_string())?;
        g.allow("127.0.0.1:1025")?;
    }
    Ok(Outbound { guard: g, http: HttpOptions::from_config(cfg)? })
}

/// What a request got back.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The provider's answer. SMTP: the reply to the message (after DATA
    /// when a recipient was accepted, otherwise the first refusal).
    pub response: Response,
    /// SMTP only: one reply per envelope recipient, in the order of the
    /// message's `recipients` (a refused `RCPT TO` keeps its own refusal, an
    /// accepted recipient gets the reply to the message). Empty for HTTP.
    pub recipients: Vec<SmtpReply>,
}

/// Per-account send settings that the WIT request does not carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Parallel SMTP connections to the relay at most (`None`: the default).
    pub smtp_max_connections: Option<usize>,
}

impl SendOptions {
    /// By host convention an SMTP account's config may hold
    /// `smtp.max_connections` (the `email` plugin's schema declares it);
    /// anything else is ignored.
    pub fn from_account(config_json: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(config_json).unwrap_or_default();
        Self { smtp_max_connections: v["smtp"]["max_connections"].as_u64().map(|n| n as usize) }
    }
}

#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Send a request with per-account options; SMTP answers per recipient.
    async fn send_with(&self, request: Request, options: SendOptions) -> Result<Sent, TransportError>;

    /// Send a request and keep only the provider's answer.
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        self.send_with(request, SendOptions::default()).await.map(|s| s.response)
    }
}

/// The production transport: HTTP and SMTP.
pub struct Transports {
    pub http: HttpTransport,
    pub smtp: SmtpTransport,
}

impl Transports {
    /// `outbound`: what [`guard`] returns, or just a [`Guard`] (then HTTP
    /// connects directly and trusts the bundled roots only).
    pub fn new(timeout: Duration, redirect_hosts: std::collections::HashMap<String, String>, outbound: impl Into<Outbound>) -> Self {
        let Outbound { guard, http } = outbound.into();
        let smtp = SmtpTransport::new(timeout, guard.clone()).trusting(http.extra_roots());
        Self { http: HttpTransport::new(timeout, redirect_hosts, guard, http), smtp }
    }
}

#[async_trait]
impl Transport for Transports {
    async fn send_with(&self, request: Request, options: SendOptions) -> Result<Sent, TransportError> {
        let sent = match request {
            Request::Http(r) => self.http.send(r).await.map(|r| Sent { response: Response::Http(r), recipients: Vec::new() }),
            Request::Smtp(m) => {
                self.smtp.send(m, options.smtp_max_connections).await.map(|s| Sent { response: Response::Smtp(s.reply), recipients: s.recipients })
            }
        };
        if let Err(e) = &sent
            && e.is_permanent()
        {
            // The operator may mean to allow it: say so where they look.
            tracing::info!(error = %e, "destination refused");
        }
        sent
    }
}
