//! One way to build a pooled lettre SMTP transport, used by the gateway to
//! send and by the admin service to verify an e-mail account on save.

use std::net::IpAddr;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
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
    build(host, host, port, tls, credentials, timeout, pool_size)
}

/// A transport for the relay `host` that connects to `addr` (an address the
/// destination guard checked), never resolving `host` again; TLS still
/// verifies the certificate against `host`.
pub fn transport_at(
    host: &str,
    addr: IpAddr,
    port: u16,
    tls: SmtpTls,
    credentials: Option<(String, String)>,
    timeout: Duration,
    pool_size: u32,
) -> Result<SmtpPool, String> {
    build(host, &addr.to_string(), port, tls, credentials, timeout, pool_size)
}

fn build(
    host: &str,
    server: &str,
    port: u16,
    tls: SmtpTls,
    credentials: Option<(String, String)>,
    timeout: Duration,
    pool_size: u32,
) -> Result<SmtpPool, String> {
    let tls_err = |e: lettre::transport::smtp::Error| format!("TLS setup for {host}: {e}");
    let tls = match tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(TlsParameters::new(host.into()).map_err(tls_err)?),
        SmtpTls::Implicit => Tls::Wrapper(TlsParameters::new(host.into()).map_err(tls_err)?),
    };
    let mut b = SmtpPool::builder_dangerous(server).port(port).tls(tls).timeout(Some(timeout)).pool_config(PoolConfig::new().max_size(pool_size));
    if let Some((user, password)) = credentials {
        b = b.credentials(Credentials::new(user, password));
    }
    Ok(b.build())
}
