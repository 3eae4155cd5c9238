//! The Transport seam: the host sends what plugins build. HTTP goes through a
//! pooled hyper client (HTTP/1.1 and h2, rustls); SMTP through pooled lettre
//! connections, one pool per relay and credentials.

mod http;
mod smtp;

use std::time::Duration;

use async_trait::async_trait;
use herald_plugin_host::types::{Request, Response};

pub use self::http::HttpTransport;
pub use self::smtp::SmtpTransport;

/// A request that got no provider answer. Always worth retrying.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}

#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn send(&self, request: Request) -> Result<Response, TransportError>;
}

/// The production transport: HTTP and SMTP.
pub struct Transports {
    pub http: HttpTransport,
    pub smtp: SmtpTransport,
}

impl Transports {
    pub fn new(timeout: Duration, redirect_hosts: std::collections::HashMap<String, String>) -> Self {
        Self { http: HttpTransport::new(timeout, redirect_hosts), smtp: SmtpTransport::new(timeout) }
    }
}

#[async_trait]
impl Transport for Transports {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        match request {
            Request::Http(r) => self.http.send(r).await.map(Response::Http),
            Request::Smtp(m) => self.smtp.send(m).await.map(Response::Smtp),
        }
    }
}
