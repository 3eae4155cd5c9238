use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_backends::Guard;
use herald_backends::guard::ResolveError;
use herald_backends::smtp::{SmtpPool as Pool, SmtpTls};
use herald_plugin_host::types::{SmtpMessage, SmtpRelay, SmtpReply, TlsMode};
use lettre::address::Envelope;
use lettre::{Address, AsyncTransport};
use sha2::{Digest, Sha256};

use super::TransportError;

/// How long a relay's checked address is reused before resolving again.
const RESOLVED_TTL: Duration = Duration::from_secs(60);

/// Pooled SMTP connections, keyed by relay, the checked address it connects
/// to, and credentials.
pub struct SmtpTransport {
    pools: Mutex<HashMap<String, Pool>>,
    /// `host:port` → the address the guard allowed, until when.
    resolved: Mutex<HashMap<String, (IpAddr, Instant)>>,
    guard: Guard,
    timeout: Duration,
}

fn pool_key(r: &SmtpRelay, addr: IpAddr) -> String {
    // The password enters the key only as a hash, so keys are safe to keep.
    let pw = r
        .password
        .as_deref()
        .map(|p| hex::encode(Sha256::digest(p.as_bytes())))
        .unwrap_or_default();
    format!(
        "{:?}|{}|{}|{}|{}|{}",
        r.tls,
        r.host,
        addr,
        r.port,
        r.username.as_deref().unwrap_or(""),
        pw
    )
}

impl SmtpTransport {
    pub fn new(timeout: Duration, guard: Guard) -> Self {
        Self {
            pools: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            guard,
            timeout,
        }
    }

    /// The relay's address, resolved and checked by the guard (cached for a minute).
    async fn address(&self, r: &SmtpRelay) -> Result<IpAddr, TransportError> {
        let key = format!("{}:{}", r.host.to_ascii_lowercase(), r.port);
        if let Some((ip, until)) = self.resolved.lock().expect("smtp resolved").get(&key)
            && *until > Instant::now()
        {
            return Ok(*ip);
        }
        let addrs = tokio::time::timeout(self.timeout, self.guard.resolve(&r.host, r.port))
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?
            .map_err(|e| match e {
                ResolveError::Refused(r) => TransportError::Refused(r.0),
                ResolveError::Lookup(m) => TransportError::Connect(m),
            })?;
        let ip = addrs[0].ip();
        let mut cache = self.resolved.lock().expect("smtp resolved");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (ip, Instant::now() + RESOLVED_TTL));
        Ok(ip)
    }

    /// lettre connects to the checked address itself (TLS verifies the relay's
    /// name), so a name cannot resolve elsewhere between check and connect.
    async fn pool(&self, r: &SmtpRelay) -> Result<Pool, TransportError> {
        let addr = self.address(r).await?;
        let key = pool_key(r, addr);
        if let Some(p) = self.pools.lock().expect("smtp pools").get(&key) {
            return Ok(p.clone());
        }
        let tls = match r.tls {
            TlsMode::None => SmtpTls::None,
            TlsMode::Starttls => SmtpTls::Starttls,
            TlsMode::Implicit => SmtpTls::Implicit,
        };
        let credentials = r
            .username
            .clone()
            .map(|u| (u, r.password.clone().unwrap_or_default()));
        let pool = herald_backends::smtp::transport_at(
            &r.host,
            addr,
            r.port,
            tls,
            credentials,
            self.timeout,
            8,
        )
        .map_err(TransportError::Connect)?;
        self.pools
            .lock()
            .expect("smtp pools")
            .insert(key, pool.clone());
        Ok(pool)
    }

    pub async fn send(&self, m: SmtpMessage) -> Result<SmtpReply, TransportError> {
        let bad = |what: &str, e: String| TransportError::Protocol(format!("{what}: {e}"));
        let from: Address = m
            .sender
            .parse()
            .map_err(|e: lettre::address::AddressError| bad("sender", e.to_string()))?;
        let to = m
            .recipients
            .iter()
            .map(|r| r.parse::<Address>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("recipient", e.to_string()))?;
        let envelope = Envelope::new(Some(from), to).map_err(|e| bad("envelope", e.to_string()))?;
        let pool = self.pool(&m.relay).await?;
        let sent = tokio::time::timeout(self.timeout, pool.send_raw(&envelope, &m.mime))
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?;
        match sent {
            Ok(resp) => Ok(SmtpReply {
                code: code_number(&resp.code().to_string()),
                message: resp.message().collect::<Vec<_>>().join(" "),
            }),
            // The server answered with an error code: the plugin interprets it.
            Err(e) if e.status().is_some() => {
                let code = e.status().map(|c| code_number(&c.to_string())).unwrap_or(0);
                Ok(SmtpReply {
                    code,
                    message: e.to_string(),
                })
            }
            Err(e) => Err(TransportError::Connect(e.to_string())),
        }
    }
}

fn code_number(s: &str) -> u16 {
    s.trim().parse().unwrap_or(0)
}
