//! SMTP: a message to one or many envelope recipients, with a reply per
//! recipient, over pooled connections.
//!
//! lettre's high-level `send` fails the whole transaction when one `RCPT TO`
//! is refused, so this drives lettre's [`AsyncSmtpConnection`] command by
//! command: `MAIL FROM`, every `RCPT TO` (each reply kept), `DATA` and the
//! message once when at least one recipient was accepted. A refused
//! recipient gets its own 4xx/5xx reply, the accepted ones the reply to the
//! message. When the server advertises `PIPELINING` (RFC 2920), `MAIL`, the
//! `RCPT`s and `DATA` go in one write and their replies are read in order
//! (lettre has no pipelining of its own; `command` writes whatever it is
//! given and `read_response` reads the next reply, which is enough).
//!
//! Connections are pooled per (relay, the address the destination guard
//! checked, credentials, bound): at most `max_connections` open at once (the
//! account's `smtp.max_connections`, default [`DEFAULT_MAX_CONNECTIONS`]),
//! reused across messages and batches (a transaction that ended early is
//! closed with `RSET`), dropped when broken or idle for [`IDLE_TTL`]. A
//! reused connection that breaks before the server answered anything (the
//! server closed it while idle) is replaced once by a fresh one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_backends::Guard;
use herald_backends::guard::ResolveError;
use herald_plugin_host::types::{SmtpMessage, SmtpRelay, SmtpReply, TlsMode};
use lettre::Address;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::TransportError;

/// How long a relay's checked address is reused before resolving again.
const RESOLVED_TTL: Duration = Duration::from_secs(60);
/// An idle connection older than this is closed rather than reused (servers
/// drop idle clients after a while; RFC 5321 asks them to wait 5 minutes).
pub const IDLE_TTL: Duration = Duration::from_secs(30);
/// Parallel connections per pool when the account does not say.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4;
/// The most an account may ask for (the plugin's schema allows 1..=64).
const MAX_CONNECTIONS: usize = 64;

/// What the server said to one message.
#[derive(Debug, Clone)]
pub struct SmtpSent {
    /// The reply to the message: DATA's final reply when a recipient was
    /// accepted, otherwise the first refusal (of `MAIL FROM`, a `RCPT TO`
    /// or `DATA`).
    pub reply: SmtpReply,
    /// One reply per envelope recipient, in the message's order.
    pub recipients: Vec<SmtpReply>,
}

/// Pooled SMTP connections, keyed by relay, the checked address it connects
/// to, credentials and bound.
pub struct SmtpTransport {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    /// `host:port` → the address the guard allowed, until when.
    resolved: Mutex<HashMap<String, (IpAddr, Instant)>>,
    guard: Guard,
    timeout: Duration,
    hello: ClientId,
    /// Roots trusted besides the bundled ones (`transport.system_roots`, `transport.ca_files`).
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
}

fn pool_key(r: &SmtpRelay, addr: IpAddr, max: usize) -> String {
    // The password enters the key only as a hash, so keys are safe to keep.
    let pw = r.password.as_deref().map(|p| hex::encode(Sha256::digest(p.as_bytes()))).unwrap_or_default();
    format!("{:?}|{}|{}|{}|{}|{}|{}", r.tls, r.host, addr, r.port, r.username.as_deref().unwrap_or(""), pw, max)
}

/// One relay's connections.
struct Pool {
    host: String,
    /// The address the guard checked: every connection goes there.
    addr: IpAddr,
    port: u16,
    tls: TlsMode,
    /// Certificate checks against `host` (STARTTLS or implicit TLS).
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
}

struct Conn {
    c: AsyncSmtpConnection,
    pipelining: bool,
    eight_bit: bool,
    idle_since: Instant,
}

/// Why a connection could not be opened.
enum ConnectError {
    /// The server refused us with a reply (e.g. 535 on AUTH): the plugin
    /// interprets it for every recipient.
    Reply(SmtpReply),
    Failed(String),
}

/// The connection broke mid-transaction (no usable reply).
struct Broken {
    error: String,
    /// Whether the server had answered anything in this transaction.
    answered: bool,
}

fn code_number(s: &str) -> u16 {
    s.trim().parse().unwrap_or(0)
}

fn reply_of(r: &Response) -> SmtpReply {
    SmtpReply { code: code_number(&r.code().to_string()), message: r.message().collect::<Vec<_>>().join(" ") }
}

/// A negative reply as lettre reports it (an error carrying the code, with
/// the server's text as its source).
fn refusal_of(e: &SmtpError) -> Option<SmtpReply> {
    let code = e.status()?;
    let message = std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
    Some(SmtpReply { code: code_number(&code.to_string()), message })
}

/// A reply (positive or not), or a broken connection.
fn answer(r: Result<Response, SmtpError>, answered: bool) -> Result<SmtpReply, Broken> {
    match r {
        Ok(resp) => Ok(reply_of(&resp)),
        Err(e) => refusal_of(&e).ok_or_else(|| Broken { error: e.to_string(), answered }),
    }
}

fn ok(r: &SmtpReply) -> bool {
    (200..300).contains(&r.code)
}

impl Pool {
    async fn connect(&self, hello: &ClientId, timeout: Duration) -> Result<Conn, ConnectError> {
        let failed = |e: SmtpError| match refusal_of(&e) {
            Some(r) => ConnectError::Reply(r),
            None => ConnectError::Failed(e.to_string()),
        };
        let mut c = match (self.tls, &self.tls_parameters) {
            // lettre's own connect leaves Nagle on, and its message() is two
            // writes before a read: a delayed ACK stalls every message. So the
            // TCP connection is made here (to the checked address), with
            // TCP_NODELAY, and handed to lettre.
            (TlsMode::None | TlsMode::Starttls, _) => {
                let tcp = tokio::net::TcpStream::connect((self.addr, self.port));
                let tcp = tokio::time::timeout(timeout, tcp)
                    .await
                    .map_err(|_| ConnectError::Failed("connect timed out".into()))?
                    .map_err(|e| ConnectError::Failed(e.to_string()))?;
                let _ = tcp.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), hello).await.map_err(failed)?
            }
            // Implicit TLS must start before the greeting, which only lettre's
            // connect does (with Nagle left on).
            (TlsMode::Implicit, p) => {
                AsyncSmtpConnection::connect_tokio1((self.addr, self.port), Some(timeout), hello, p.clone(), None).await.map_err(failed)?
            }
        };
        if let (TlsMode::Starttls, Some(p)) = (self.tls, &self.tls_parameters) {
            c.starttls(p.clone(), hello).await.map_err(failed)?;
        }
        // lettre's server info does not keep PIPELINING: ask once more
        // (before AUTH, which an EHLO must not follow).
        let ehlo = c.command(Ehlo::new(hello.clone())).await.map_err(failed)?;
        let pipelining = ehlo.message().skip(1).any(|l| {
            let kw = l.split_whitespace().next().unwrap_or("");
            kw.eq_ignore_ascii_case("PIPELINING")
        });
        let eight_bit = c.server_info().supports_feature(Extension::EightBitMime);
        if let Some(creds) = &self.credentials {
            c.auth(DEFAULT_MECHANISMS, creds).await.map_err(failed)?;
        }
        Ok(Conn { c, pipelining, eight_bit, idle_since: Instant::now() })
    }

    /// The most recently used idle connection that is not too old.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("smtp idle");
        // Oldest first: drop the stale ones.
        idle.retain(|c| c.idle_since.elapsed() < IDLE_TTL);
        idle.pop()
    }

    fn put_back(&self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        self.idle.lock().expect("smtp idle").push(conn);
    }
}

/// One transaction on `conn`: the replies, and whether the connection can be
/// reused. `rcpts[i]` is `None` when recipient `i` is not a valid address
/// (it gets a 553 without being sent).
async fn transaction(conn: &mut Conn, from: &Address, rcpts: &[Result<Address, String>], mime: &[u8]) -> Result<(SmtpSent, bool), Broken> {
    let mut params = Vec::new();
    if !mime.is_ascii() && conn.eight_bit {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(Some(from.clone()), params).to_string();
    let valid: Vec<String> = rcpts.iter().filter_map(|r| r.as_ref().ok()).map(|a| Rcpt::new(a.clone(), vec![]).to_string()).collect();
    let c = &mut conn.c;
    let mail_reply;
    let mut rcpt_replies = Vec::with_capacity(valid.len());
    let mut data_reply = None;
    if conn.pipelining && !valid.is_empty() {
        // RFC 2920: MAIL, the RCPTs and DATA as one group, replies in order.
        let mut group = String::with_capacity(mail.len() + valid.iter().map(String::len).sum::<usize>() + 6);
        group.push_str(&mail);
        for r in &valid {
            group.push_str(r);
        }
        group.push_str(&Data.to_string());
        mail_reply = answer(c.command(group).await, false)?;
        for _ in &valid {
            rcpt_replies.push(answer(c.read_response().await, true)?);
        }
        data_reply = Some(answer(c.read_response().await, true)?);
    } else {
        mail_reply = answer(c.command(mail).await, false)?;
        if ok(&mail_reply) {
            for r in &valid {
                rcpt_replies.push(answer(c.command(r).await, true)?);
            }
            if rcpt_replies.iter().any(ok) {
                data_reply = Some(answer(c.command(Data).await, true)?);
            }
        }
    }
    let accepted = ok(&mail_reply) && rcpt_replies.iter().any(ok);
    let go_ahead = data_reply.as_ref().is_some_and(|r| r.code / 100 == 3);
    // The reply to the message, and whether the transaction is closed.
    let (reply, done) = match (accepted, go_ahead) {
        (true, true) => (answer(c.message(mime).await, true)?, true),
        (false, true) => {
            // DATA accepted with no recipient (RFC 2920 says a server should
            // refuse it): end it empty, whatever it answers.
            let _ = answer(c.message(b"").await, true)?;
            (first_refusal(&mail_reply, &rcpt_replies, None), true)
        }
        _ => (first_refusal(&mail_reply, &rcpt_replies, data_reply.as_ref()), false),
    };
    let mut rcpt_replies = rcpt_replies.into_iter();
    let recipients = rcpts
        .iter()
        .map(|r| match r {
            Err(e) => SmtpReply { code: 553, message: format!("5.1.3 not a valid address: {e}") },
            Ok(_) if !ok(&mail_reply) => mail_reply.clone(),
            Ok(_) => match rcpt_replies.next() {
                Some(own) if ok(&own) => reply.clone(),
                Some(own) => own,
                None => reply.clone(),
            },
        })
        .collect();
    // A transaction that stopped half-way is reset, or the connection dropped.
    let reusable = done || matches!(answer(c.command(Rset).await, true), Ok(r) if ok(&r));
    Ok((SmtpSent { reply, recipients }, reusable))
}

/// The reply for a message that was not sent: DATA's refusal when recipients
/// were accepted, else the first refused RCPT, else MAIL's.
fn first_refusal(mail: &SmtpReply, rcpts: &[SmtpReply], data: Option<&SmtpReply>) -> SmtpReply {
    if !ok(mail) {
        return mail.clone();
    }
    if let Some(d) = data
        && rcpts.iter().any(ok)
    {
        return d.clone();
    }
    rcpts.iter().find(|r| !ok(r)).cloned().unwrap_or_else(|| SmtpReply { code: 554, message: "5.5.1 no valid recipients".into() })
}

impl SmtpTransport {
    pub fn new(timeout: Duration, guard: Guard) -> Self {
        Self {
            pools: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            guard,
            timeout,
            hello: ClientId::default(),
            extra_roots: Arc::default(),
        }
    }

    /// Relays' certificates may also chain to these roots (as provider HTTP's do).
    pub fn trusting(self, extra_roots: Arc<Vec<CertificateDer<'static>>>) -> Self {
        Self { extra_roots, ..self }
    }

    /// TLS towards `host`: the bundled roots and the extra ones.
    fn tls_parameters(&self, host: &str) -> Result<TlsParameters, TransportError> {
        let failed = |e: SmtpError| TransportError::Connect(format!("TLS setup for {host}: {e}"));
        let mut b = TlsParameters::builder(host.to_string()).certificate_store(CertificateStore::WebpkiRoots);
        for der in self.extra_roots.iter() {
            b = b.add_root_certificate(Certificate::from_der(der.to_vec()).map_err(failed)?);
        }
        b.build().map_err(failed)
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

    /// The pool for this relay at its checked address: connections go to
    /// that address (TLS verifies the relay's name), so a name cannot
    /// resolve elsewhere between check and connect.
    async fn pool(&self, r: &SmtpRelay, max: usize) -> Result<Arc<Pool>, TransportError> {
        let addr = self.address(r).await?;
        let key = pool_key(r, addr, max);
        if let Some(p) = self.pools.lock().expect("smtp pools").get(&key) {
            return Ok(p.clone());
        }
        let tls_parameters = match r.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Implicit => Some(self.tls_parameters(&r.host)?),
        };
        let pool = Arc::new(Pool {
            host: r.host.clone(),
            addr,
            port: r.port,
            tls: r.tls,
            tls_parameters,
            credentials: r.username.clone().map(|u| Credentials::new(u, r.password.clone().unwrap_or_default())),
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(Vec::new()),
        });
        let mut pools = self.pools.lock().expect("smtp pools");
        Ok(pools.entry(key).or_insert(pool).clone())
    }

    /// Send one message; `max_connections` bounds the relay's pool (`None`:
    /// [`DEFAULT_MAX_CONNECTIONS`]).
    pub async fn send(&self, m: SmtpMessage, max_connections: Option<usize>) -> Result<SmtpSent, TransportError> {
        let bad = |what: &str, e: String| TransportError::Protocol(format!("{what}: {e}"));
        let from: Address = m.sender.parse().map_err(|e: lettre::address::AddressError| bad("sender", e.to_string()))?;
        if m.recipients.is_empty() {
            return Err(bad("envelope", "no recipients".into()));
        }
        let rcpts: Vec<Result<Address, String>> = m.recipients.iter().map(|r| r.parse::<Address>().map_err(|e| e.to_string())).collect();
        let max = max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).clamp(1, MAX_CONNECTIONS);
        let pool = self.pool(&m.relay, max).await?;
        let _permit = pool.permits.clone().acquire_owned().await.expect("semaphore open");
        let all = |reply: SmtpReply| SmtpSent { recipients: vec![reply.clone(); m.recipients.len()], reply };
        let work = async {
            let mut fresh_tried = false;
            loop {
                let idle = if fresh_tried { None } else { pool.take_idle() };
                let (mut conn, reused) = match idle {
                    Some(c) => (c, true),
                    None => match pool.connect(&self.hello, self.timeout).await {
                        Ok(c) => (c, false),
                        Err(ConnectError::Reply(r)) => return Ok(all(r)),
                        Err(ConnectError::Failed(e)) => {
                            return Err(TransportError::Connect(format!("{}:{} ({}): {e}", pool.host, pool.port, pool.addr)));
                        }
                    },
                };
                match transaction(&mut conn, &from, &rcpts, &m.mime).await {
                    Ok((sent, reusable)) => {
                        if reusable {
                            pool.put_back(conn);
                        }
                        return Ok(sent);
                    }
                    // Closed while idle: nothing was sent, try a new one.
                    Err(b) if reused && !b.answered => {
                        tracing::debug!(relay = %pool.host, error = %b.error, "idle SMTP connection was closed; reconnecting");
                        fresh_tried = true;
                    }
                    Err(b) => return Err(TransportError::Connect(b.error)),
                }
            }
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| TransportError::Timeout(self.timeout))?
    }
}
