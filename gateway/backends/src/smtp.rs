//! One way to build a pooled lettre SMTP transport, used by the gateway to
//! send and by the admin service to verify an e-mail account on save.

use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

pub type SmtpPool = AsyncSmtpTransport<Tokio1Executor>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection (only with an explicit opt-in when credentials are sent).
    None,
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// A transport for `host:port`; `credentials` turns on AUTH.
pub fn transport(
    host: &str,
    port: u16,
    tls: SmtpTls,
    credentials: Option<(String, String)>,
    timeout: Duration,
    pool_size: u32,
) -> Result<SmtpPool, String> {
    let tls_err = |e: lettre::transport::smtp::Error| format!("TLS setup for {host}: {e}");
    let mut b = match tls {
        SmtpTls::None => SmtpPool::builder_dangerous(host),
        SmtpTls::Starttls => SmtpPool::starttls_relay(host).map_err(tls_err)?,
        SmtpTls::Implicit => SmtpPool::relay(host).map_err(tls_err)?,
    }
    .port(port)
    .timeout(Some(timeout))
    .pool_config(PoolConfig::new().max_size(pool_size));
    if let Some((user, password)) = credentials {
        b = b.credentials(Credentials::new(user, password));
    }
    Ok(b.build())
}
