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
//! closed with `RSET`), dropped when broken or idle for [`IDLE_TTL`].
//! Messages wait in their pool's line; a sender task per connection slot
//! takes them in order and keeps its connection busy while any wait. On a
//! pipelining server the next message's `MAIL`, `RCPT`s and `DATA` follow
//! the previous content and its final dot in one write, so a message costs
//! one round trip. A message whose connection breaks before its content went
//! out (a reused connection the server closed while idle, or the group that
//! followed a content the server did not answer) is sent once more on a
//! fresh connection; one whose content went out is not (the server may have
//! it): its sender gets the error, and the dispatcher's retry decides.

use std::collections::{HashMap, VecDeque};
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
use tokio::sync::{Semaphore, oneshot};

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
/// A pool's line is cleared of abandoned messages from this length on.
const PRUNE_AT: usize = 256;

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
    /// One per connection: the sender tasks.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
    /// Messages waiting for a connection, oldest first.
    waiting: Mutex<VecDeque<Job>>,
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

/// A transaction that ended without a usable reply.
struct Broken {
    error: String,
    /// Whether the message content was (perhaps) on its way: then the server
    /// may have taken it, and it is not sent again on another connection.
    content_sent: bool,
}

/// A message waiting for one of its pool's connections.
struct Job {
    from: Address,
    rcpts: Vec<Result<Address, String>>,
    mime: Vec<u8>,
    reply: oneshot::Sender<Result<SmtpSent, TransportError>>,
    /// Sent once more already, on a fresh connection, after its first one broke
    /// before the content went out.
    retried: bool,
}

impl Job {
    fn answer(self, r: Result<SmtpSent, TransportError>) {
        let _ = self.reply.send(r);
    }

    /// Every recipient gets `reply` (a refusal at connect or AUTH).
    fn answer_all(self, reply: SmtpReply) {
        let n = self.rcpts.len();
        self.answer(Ok(SmtpSent { recipients: vec![reply.clone(); n], reply }));
    }

    fn has_valid_recipient(&self) -> bool {
        self.rcpts.iter().any(Result::is_ok)
    }
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
fn answer(r: Result<Response, SmtpError>, content_sent: bool) -> Result<SmtpReply, Broken> {
    match r {
        Ok(resp) => Ok(reply_of(&resp)),
        Err(e) => refusal_of(&e).ok_or_else(|| Broken { error: e.to_string(), content_sent }),
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

    /// The next waiting message whose sender still waits for it. With
    /// `pipelined`, only one that can go in a pipelined group (one with a
    /// valid recipient); another stays first in line.
    fn next_job(&self, pipelined: bool) -> Option<Job> {
        let mut waiting = self.waiting.lock().expect("smtp waiting");
        while let Some(job) = waiting.front() {
            if job.reply.is_closed() {
                waiting.pop_front();
                continue;
            }
            if pipelined && !job.has_valid_recipient() {
                return None;
            }
            return waiting.pop_front();
        }
        None
    }

    /// Back to the head of the line (its content never went out).
    fn requeue(&self, job: Job) {
        self.waiting.lock().expect("smtp waiting").push_front(job);
    }

    /// Start a sender task for the waiting messages if a connection slot is
    /// free. A task ends when nothing waits; one that finds a message queued
    /// after its last look (whose own sender found no free slot) takes it.
    fn drive(self: &Arc<Self>, hello: &ClientId, timeout: Duration) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else { return };
        let (pool, hello) = (self.clone(), hello.clone());
        tokio::spawn(async move {
            let mut permit = permit;
            loop {
                pool.serve(&hello, timeout).await;
                drop(permit);
                if pool.waiting.lock().expect("smtp waiting").is_empty() {
                    return;
                }
                match pool.permits.clone().try_acquire_owned() {
                    Ok(p) => permit = p,
                    Err(_) => return,
                }
            }
        });
    }

    /// Send waiting messages, one connection at a time, until none waits.
    async fn serve(&self, hello: &ClientId, timeout: Duration) {
        let mut retry: Option<Job> = None;
        loop {
            let (job, fresh) = match retry.take() {
                Some(j) => (j, true),
                None => match self.next_job(false) {
                    Some(j) => (j, false),
                    None => return,
                },
            };
            let idle = if fresh { None } else { self.take_idle() };
            let conn = match idle {
                Some(c) => c,
                None => match tokio::time::timeout(timeout, self.connect(hello, timeout)).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(ConnectError::Reply(r))) => {
                        job.answer_all(r);
                        continue;
                    }
                    Ok(Err(ConnectError::Failed(e))) => {
                        job.answer(Err(TransportError::Connect(format!("{}:{} ({}): {e}", self.host, self.port, self.addr))));
                        continue;
                    }
                    Err(_) => {
                        job.answer(Err(TransportError::Timeout(timeout)));
                        continue;
                    }
                },
            };
            retry = self.run(conn, job, timeout).await;
        }
    }

    /// Transactions on `conn`, starting with `job`, while messages wait; the
    /// connection goes back to the pool after the last, unless it broke. On
    /// a pipelining server the next message's `MAIL`, `RCPT`s and `DATA` go
    /// in the same write as this one's content (RFC 2920 lets the content
    /// start a group): one round trip per message. Returns a message to send
    /// again on a fresh connection: one whose connection broke before its
    /// content went out (a reused connection the server had closed while
    /// idle, say), once.
    async fn run(&self, mut conn: Conn, mut job: Job, timeout: Duration) -> Option<Job> {
        let mut written = false;
        loop {
            // Taken (and its group written) during this transaction.
            let mut next = None;
            let step = tokio::time::timeout(timeout, transaction(&mut conn, &job, written, || self.next_job(true), &mut next)).await;
            let Ok(step) = step else {
                // The server stopped answering: the connection is dropped, the
                // message's fate is unknown, and a group written behind it never
                // had its content sent.
                if let Some(n) = next {
                    self.requeue(n);
                }
                job.answer(Err(TransportError::Timeout(timeout)));
                return None;
            };
            match step {
                Ok((sent, reusable)) => {
                    job.answer(Ok(sent));
                    if let Some(n) = next {
                        (job, written) = (n, true);
                        continue;
                    }
                    if !reusable {
                        return None;
                    }
                    match self.next_job(false) {
                        Some(n) => (job, written) = (n, false),
                        None => {
                            self.put_back(conn);
                            return None;
                        }
                    }
                }
                Err(b) => {
                    if let Some(n) = next {
                        self.requeue(n);
                    }
                    if !b.content_sent && !job.retried {
                        job.retried = true;
                        tracing::debug!(relay = %self.host, error = %b.error, "SMTP connection broke before the message went out; sending it on a new one");
                        return Some(job);
                    }
                    job.answer(Err(TransportError::Connect(b.error)));
                    return None;
                }
            }
        }
    }
}

/// `MAIL FROM` for `job` on `conn`.
fn mail_command(conn: &Conn, job: &Job) -> String {
    let mut params = Vec::new();
    if !job.mime.is_ascii() && conn.eight_bit {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Mail::new(Some(job.from.clone()), params).to_string()
}

/// `MAIL`, the `RCPT`s and `DATA` as one pipelined group (RFC 2920).
fn envelope_group(conn: &Conn, job: &Job) -> String {
    let mut group = mail_command(conn, job);
    for a in job.rcpts.iter().filter_map(|r| r.as_ref().ok()) {
        group.push_str(&Rcpt::new(a.clone(), vec![]).to_string());
    }
    group.push_str(&Data.to_string());
    group
}

/// The content as `DATA` carries it and the final dot, as lettre's
/// `message` writes them (a dot starting a line gets another, RFC 5321
/// §4.5.2), followed by `then` (the next transaction's group).
fn content_and(text: &str, then: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16 + then.len());
    if text.starts_with('.') {
        out.push('.');
    }
    out.push_str(&text.replace("\r\n.", "\r\n.."));
    out.push_str("\r\n.\r\n");
    out.push_str(then);
    out
}

/// One transaction on `conn`: the replies, and whether the connection can be
/// reused. `written`: the envelope group was already sent (behind the
/// previous content). On a pipelining server, `take_next` may give the next
/// message, whose group then follows this content; it is put in `next` (the
/// caller's, so that it outlives a timeout).
async fn transaction(
    conn: &mut Conn,
    job: &Job,
    written: bool,
    take_next: impl FnOnce() -> Option<Job>,
    next: &mut Option<Job>,
) -> Result<(SmtpSent, bool), Broken> {
    let pipelined = conn.pipelining && job.has_valid_recipient();
    let valid = job.rcpts.iter().filter(|r| r.is_ok()).count();
    let mut rcpt_replies = Vec::with_capacity(valid);
    let mut data_reply = None;
    let mail_reply;
    if pipelined {
        mail_reply = if written {
            answer(conn.c.read_response().await, false)?
        } else {
            let group = envelope_group(conn, job);
            answer(conn.c.command(group).await, false)?
        };
        for _ in 0..valid {
            rcpt_replies.push(answer(conn.c.read_response().await, false)?);
        }
        data_reply = Some(answer(conn.c.read_response().await, false)?);
    } else {
        mail_reply = answer(conn.c.command(mail_command(conn, job)).await, false)?;
        if ok(&mail_reply) {
            for a in job.rcpts.iter().filter_map(|r| r.as_ref().ok()) {
                rcpt_replies.push(answer(conn.c.command(Rcpt::new(a.clone(), vec![])).await, false)?);
            }
            if rcpt_replies.iter().any(ok) {
                data_reply = Some(answer(conn.c.command(Data).await, false)?);
            }
        }
    }
    let c = &mut conn.c;
    let accepted = ok(&mail_reply) && rcpt_replies.iter().any(ok);
    let go_ahead = data_reply.as_ref().is_some_and(|r| r.code / 100 == 3);
    // The reply to the message, and whether the transaction is closed.
    let (reply, done) = match (accepted, go_ahead) {
        (true, true) => {
            // The content goes in one write with its dot when it is UTF-8
            // text, and then the next message's group may ride along.
            let sent = match std::str::from_utf8(&job.mime) {
                Ok(text) => {
                    let ahead = if pipelined { take_next() } else { None };
                    let group = ahead.as_ref().map(|n| envelope_group(conn, n)).unwrap_or_default();
                    *next = ahead;
                    conn.c.command(content_and(text, &group)).await
                }
                Err(_) => conn.c.message(&job.mime).await,
            };
            (answer(sent, true)?, true)
        }
        (false, true) => {
            // DATA accepted with no recipient (RFC 2920 says a server should
            // refuse it): end it empty, whatever it answers.
            let _ = answer(c.message(b"").await, true)?;
            (first_refusal(&mail_reply, &rcpt_replies, None), true)
        }
        _ => (first_refusal(&mail_reply, &rcpt_replies, data_reply.as_ref()), false),
    };
    let mut rcpt_replies = rcpt_replies.into_iter();
    let recipients = job
        .rcpts
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
    let reusable = done || matches!(answer(conn.c.command(Rset).await, true), Ok(r) if ok(&r));
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
            waiting: Mutex::new(VecDeque::new()),
        });
        let mut pools = self.pools.lock().expect("smtp pools");
        Ok(pools.entry(key).or_insert(pool).clone())
    }

    /// Send one message; `max_connections` bounds the relay's pool (`None`:
    /// [`DEFAULT_MAX_CONNECTIONS`]). The message waits in its pool's line
    /// for a connection; a sender that stops waiting (timeout) takes it out
    /// of the line unless it has already gone out.
    pub async fn send(&self, m: SmtpMessage, max_connections: Option<usize>) -> Result<SmtpSent, TransportError> {
        let bad = |what: &str, e: String| TransportError::Protocol(format!("{what}: {e}"));
        let from: Address = m.sender.parse().map_err(|e: lettre::address::AddressError| bad("sender", e.to_string()))?;
        if m.recipients.is_empty() {
            return Err(bad("envelope", "no recipients".into()));
        }
        let rcpts: Vec<Result<Address, String>> = m.recipients.iter().map(|r| r.parse::<Address>().map_err(|e| e.to_string())).collect();
        let max = max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).clamp(1, MAX_CONNECTIONS);
        let pool = self.pool(&m.relay, max).await?;
        let (reply, answered) = oneshot::channel();
        {
            let mut waiting = pool.waiting.lock().expect("smtp waiting");
            // Behind connections that hang, the line keeps messages whose
            // senders gave up: drop those before it grows.
            if waiting.len() >= PRUNE_AT {
                waiting.retain(|j| !j.reply.is_closed());
            }
            waiting.push_back(Job { from, rcpts, mime: m.mime, reply, retried: false });
        }
        pool.drive(&self.hello, self.timeout);
        match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(sent)) => sent,
            Ok(Err(_)) => Err(TransportError::Connect(format!("{}:{}: the SMTP sender stopped", pool.host, pool.port))),
            Err(_) => Err(TransportError::Timeout(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// What the test server saw of one message.
    #[derive(Debug, Clone)]
    struct Arrived {
        rcpts: Vec<String>,
        body: String,
        /// The next `MAIL` was already there when the final dot was read:
        /// it came in the same write as the content.
        mail_behind_dot: bool,
    }

    #[derive(Default)]
    struct Server {
        arrived: Mutex<Vec<Arrived>>,
        connections: AtomicUsize,
    }

    /// What the server does after reading the final dot of its n-th message
    /// (counted over all connections) instead of answering it.
    #[derive(Clone, Copy)]
    enum Then {
        Close(usize),
        Hang(usize),
    }

    /// A pipelining SMTP server on 127.0.0.1:0 that refuses recipients whose
    /// local part starts with `refuse` and answers a group in one write.
    async fn server(then: Option<Then>) -> (Arc<Server>, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Server::default());
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    if matches!(then, Some(Then::Hang(_))) {
                        // A slow greeting: the senders' own timeouts start
                        // well before the transaction's.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    w.write_all(b"220 test ESMTP\r\n").await.unwrap();
                    let (mut line, mut rcpts, mut out) = (String::new(), Vec::new(), Vec::<u8>::new());
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        match verb.as_str() {
                            "EHLO" => out.extend_from_slice(b"250-test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
                            "MAIL" | "RSET" => {
                                rcpts.clear();
                                out.extend_from_slice(b"250 ok\r\n");
                            }
                            "RCPT" => {
                                let a = line.split_once('<').and_then(|(_, a)| a.split_once('>')).map_or("", |(a, _)| a).to_string();
                                if a.starts_with("refuse") {
                                    out.extend_from_slice(b"550 5.1.1 no such user\r\n");
                                } else {
                                    rcpts.push(a);
                                    out.extend_from_slice(b"250 ok\r\n");
                                }
                            }
                            "DATA" if rcpts.is_empty() => out.extend_from_slice(b"554 no valid recipients\r\n"),
                            "DATA" => {
                                w.write_all(&out).await.unwrap();
                                w.write_all(b"354 go ahead\r\n").await.unwrap();
                                out.clear();
                                let mut body = String::new();
                                loop {
                                    line.clear();
                                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    body.push_str(line.strip_prefix('.').unwrap_or(&line));
                                }
                                let n = {
                                    let mut arrived = s.arrived.lock().unwrap();
                                    let mail_behind_dot = r.buffer().starts_with(b"MAIL");
                                    arrived.push(Arrived { rcpts: std::mem::take(&mut rcpts), body, mail_behind_dot });
                                    arrived.len()
                                };
                                match then {
                                    Some(Then::Close(k)) if k == n => return,
                                    Some(Then::Hang(k)) if k == n => {
                                        tokio::time::sleep(Duration::from_secs(3600)).await;
                                        return;
                                    }
                                    _ => {}
                                }
                                out.extend_from_slice(format!("250 queued as {n}\r\n").as_bytes());
                            }
                            "QUIT" => return,
                            _ => out.extend_from_slice(b"502 not implemented\r\n"),
                        }
                        if r.buffer().is_empty() {
                            w.write_all(&out).await.unwrap();
                            out.clear();
                        }
                    }
                });
            }
        });
        (seen, port)
    }

    fn transport_with(timeout: Duration) -> SmtpTransport {
        SmtpTransport::new(timeout, Guard::new(&["127.0.0.1".to_string()], "test").unwrap())
    }

    fn transport() -> SmtpTransport {
        transport_with(Duration::from_secs(5))
    }

    fn message(port: u16, rcpts: &[&str], body: &str) -> SmtpMessage {
        SmtpMessage {
            relay: SmtpRelay { host: "127.0.0.1".into(), port, tls: TlsMode::None, username: None, password: None },
            sender: "from@example.test".into(),
            recipients: rcpts.iter().map(|r| r.to_string()).collect(),
            mime: format!("Subject: t\r\n\r\n{body}\r\n").into_bytes(),
        }
    }

    async fn send_all(t: &SmtpTransport, ms: Vec<SmtpMessage>) -> Vec<Result<SmtpSent, TransportError>> {
        futures::future::join_all(ms.into_iter().map(|m| t.send(m, Some(1)))).await
    }

    #[tokio::test]
    async fn messages_in_line_share_one_connection_each_behind_the_previous_content() {
        let (seen, port) = server(None).await;
        let t = transport();
        let ms = (0..6).map(|i| message(port, &[&format!("r{i}@example.test")], &format!("hello {i}"))).collect();
        let sent = send_all(&t, ms).await;
        for (i, s) in sent.iter().enumerate() {
            let s = s.as_ref().unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(s.reply.code, 250, "message {i}");
            assert_eq!(s.recipients.len(), 1);
        }
        let arrived = seen.arrived.lock().unwrap().clone();
        assert_eq!(arrived.len(), 6);
        let mut rcpts: Vec<_> = arrived.iter().map(|a| a.rcpts.join(",")).collect();
        rcpts.sort();
        assert_eq!(rcpts, (0..6).map(|i| format!("r{i}@example.test")).collect::<Vec<_>>());
        for a in &arrived {
            let k = a.rcpts[0].trim_start_matches('r').trim_end_matches("@example.test");
            assert!(a.body.contains(&format!("hello {k}")), "{a:?}");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "one connection (max_connections = 1)");
        // All six were in line before the first went out: every message but the last had the next one's MAIL behind its dot.
        assert!(arrived.iter().filter(|a| a.mail_behind_dot).count() >= 4, "{arrived:?}");
        // And the connection is reused by a later send.
        let later = t.send(message(port, &["late@example.test"], "later"), Some(1)).await.unwrap();
        assert_eq!(later.reply.code, 250);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_recipient_in_a_pipelined_line_costs_only_itself() {
        let (seen, port) = server(None).await;
        let t = transport();
        let ms = vec![
            message(port, &["a@example.test"], "one"),
            message(port, &["refuse@example.test", "b@example.test"], "two"),
            message(port, &["refuse-too@example.test"], "three"),
            message(port, &["not an address", "c@example.test"], "four"),
            message(port, &["d@example.test"], ".five starts with a dot\r\n.\r\nand holds a lone dot"),
        ];
        let sent: Vec<SmtpSent> = send_all(&t, ms).await.into_iter().map(Result::unwrap).collect();
        let codes = |s: &SmtpSent| s.recipients.iter().map(|r| r.code).collect::<Vec<_>>();
        assert_eq!(codes(&sent[0]), [250]);
        assert_eq!(codes(&sent[1]), [550, 250]);
        assert_eq!(sent[1].reply.code, 250);
        assert_eq!(codes(&sent[2]), [550]);
        assert_eq!(sent[2].reply.code, 550);
        assert_eq!(codes(&sent[3]), [553, 250]);
        assert_eq!(codes(&sent[4]), [250]);
        let arrived = seen.arrived.lock().unwrap().clone();
        let got: Vec<_> = arrived.iter().map(|a| a.rcpts.join(",")).collect();
        assert_eq!(got, ["a@example.test", "b@example.test", "c@example.test", "d@example.test"]);
        // Dot-stuffed on the way, whole on arrival.
        assert!(arrived[3].body.contains(".five starts with a dot\r\n.\r\nand holds a lone dot"), "{:?}", arrived[3].body);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_lost_after_a_content_fails_that_message_and_the_next_goes_on_a_new_one() {
        // The server takes the first message and closes without answering it.
        let (seen, port) = server(Some(Then::Close(1))).await;
        let t = transport();
        let ms = (0..3).map(|i| message(port, &[&format!("r{i}@example.test")], &format!("hello {i}"))).collect();
        let sent = send_all(&t, ms).await;
        // The first one's fate is unknown to the gateway: an error, for the dispatcher to retry.
        assert!(matches!(sent[0], Err(TransportError::Connect(_))), "{:?}", sent[0].as_ref().map(|s| s.reply.clone()));
        // The second one's group had followed the first content: it goes again, on a new connection, once.
        for s in &sent[1..] {
            assert_eq!(s.as_ref().expect("delivered").reply.code, 250);
        }
        let arrived: Vec<_> = seen.arrived.lock().unwrap().iter().map(|a| a.rcpts.join(",")).collect();
        assert_eq!(arrived, ["r0@example.test", "r1@example.test", "r2@example.test"]);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_server_that_stops_answering_times_out_and_a_message_given_up_on_is_not_sent_later() {
        let (seen, port) = server(Some(Then::Hang(1))).await;
        let t = transport_with(Duration::from_millis(400));
        let ms = (0..2).map(|i| message(port, &[&format!("r{i}@example.test")], &format!("hello {i}"))).collect();
        let started = Instant::now();
        let sent = send_all(&t, ms).await;
        assert!(started.elapsed() < Duration::from_secs(2), "bounded by the timeout: {:?}", started.elapsed());
        for s in &sent {
            assert!(matches!(s, Err(TransportError::Timeout(_))), "{:?}", s.as_ref().map(|s| s.reply.clone()));
        }
        // The second message's sender gave up: it is not sent afterwards.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let arrived: Vec<_> = seen.arrived.lock().unwrap().iter().map(|a| a.rcpts.join(",")).collect();
        assert_eq!(arrived, ["r0@example.test"]);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        // The hung transaction gave its connection slot back (max_connections = 1).
        let later = t.send(message(port, &["r3@example.test"], "later"), Some(1)).await.expect("sent on a new connection");
        assert_eq!(later.reply.code, 250);
        let arrived: Vec<_> = seen.arrived.lock().unwrap().iter().map(|a| a.rcpts.join(",")).collect();
        assert_eq!(arrived, ["r0@example.test", "r3@example.test"]);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }
}
