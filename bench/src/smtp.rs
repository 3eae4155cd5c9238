//! The e-mail shape: an in-process SMTP receiver and its raw limit.
//!
//! The receiver speaks enough ESMTP for lettre and the gateway (EHLO with
//! PIPELINING and 8BITMIME, MAIL, RCPT, DATA, RSET, NOOP, QUIT), answers a
//! pipelined group in one write, and records each recipient of a completed
//! transaction as one arrival in the shared [`Sink`] (its key is the local
//! part, `r<k>`). Every recipient is accepted.
//!
//! The raw limit: lettre sends the same notifications straight to the
//! receiver, shaped as the `email` plugin shapes them (identical content in
//! messages of `max_rcpt` recipients, personalised content one message per
//! recipient), over `connections` connections, each reused for every message
//! its sender takes (lettre's `AsyncSmtpConnection::send`: MAIL, each RCPT,
//! DATA and the message, one round trip each; lettre has no pipelining). The
//! TCP connections are made with TCP_NODELAY and handed to lettre, as the
//! gateway does: lettre's own connect leaves Nagle on, and its two writes per
//! message then wait for a delayed ACK.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::raw::RawResult;
use crate::sink::Sink;
use crate::stats::{Latency, now_ns, rate};

/// Start the receiver on 127.0.0.1:0.
pub async fn start(sink: Arc<Sink>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(session(stream, sink.clone()));
                }
                Err(e) => {
                    eprintln!("smtp sink: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(addr)
}

async fn session(stream: TcpStream, sink: Arc<Sink>) {
    let (r, w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut w = BufWriter::with_capacity(16 * 1024, w);
    let mut line = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    if w.write_all(b"220 herald-bench ESMTP\r\n").await.is_err() || w.flush().await.is_err() {
        return;
    }
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end();
        let verb = cmd.get(..4).unwrap_or(cmd).to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-herald-bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n",
            "HELO" => b"250 herald-bench\r\n",
            "MAIL" => {
                rcpts.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" => {
                // RCPT TO:<r123@bench.test>
                let addr = cmd.split_once('<').and_then(|(_, a)| a.split_once('>')).map_or("", |(a, _)| a);
                rcpts.push(addr.split('@').next().unwrap_or("").to_string());
                b"250 2.1.5 OK\r\n"
            }
            "DATA" => {
                if rcpts.is_empty() {
                    b"554 5.5.1 no valid recipients\r\n"
                } else {
                    if w.write_all(b"354 go ahead\r\n").await.is_err() || w.flush().await.is_err() {
                        return;
                    }
                    // The message, up to the lone dot.
                    loop {
                        line.clear();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == ".\r\n" || line == ".\n" {
                            break;
                        }
                    }
                    sink.arrive(rcpts.drain(..));
                    b"250 2.0.0 queued\r\n"
                }
            }
            "RSET" => {
                rcpts.clear();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
                let _ = w.flush().await;
                return;
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
        // Pipelined commands: answer the whole group in one write.
        if r.buffer().is_empty() && w.flush().await.is_err() {
            return;
        }
    }
}

/// The message the raw client sends: like the plugin's (headers and a
/// text/plain body), `To` undisclosed for identical content.
fn mime(k: u64, identical: bool) -> Vec<u8> {
    let (to, text) =
        if identical { ("undisclosed-recipients:;".to_string(), "hello all".to_string()) } else { (format!("<r{k}@bench.test>"), format!("hi {k}")) };
    format!(
        "From: <bench@bench.test>\r\nTo: {to}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
         Message-ID: <{k}@herald>\r\nSubject: Bench\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n"
    )
    .into_bytes()
}

async fn connect(addr: SocketAddr) -> anyhow::Result<AsyncSmtpConnection> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::Domain("bench.test".into())).await?)
}

/// Raw limit: `notifications` recipients in messages of `per_message`
/// recipients (1 for personalised content), one sender per connection.
pub async fn raw(
    sink: &Arc<Sink>,
    addr: SocketAddr,
    notifications: u64,
    per_message: u64,
    identical: bool,
    connections: u32,
    deadline: Duration,
) -> RawResult {
    sink.reset(false);
    let per_message = if identical { per_message.max(1) } else { 1 };
    let messages = notifications.div_ceil(per_message);
    // Built up front: envelopes and bodies.
    let from: Address = "bench@bench.test".parse().expect("address");
    let shared = Arc::new(mime(0, true));
    let jobs: Arc<Vec<(Envelope, Arc<Vec<u8>>)>> = Arc::new(
        (0..messages)
            .map(|m| {
                let first = m * per_message;
                let to: Vec<Address> =
                    (first..(first + per_message).min(notifications)).map(|k| format!("r{k}@bench.test").parse().expect("address")).collect();
                let body = if identical { shared.clone() } else { Arc::new(mime(first, false)) };
                (Envelope::new(Some(from.clone()), to).expect("envelope"), body)
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = crate::gateway::cpu_seconds("/proc/self/stat");
    let busy0 = crate::gateway::MachineCpu::read();
    let start = now_ns();
    let stop_at = start + deadline.as_nanos() as u64;
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (jobs, next, errors) = (jobs.clone(), next.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut conn = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() as u64 || now_ns() > stop_at {
                    break;
                }
                if conn.is_none() {
                    conn = connect(addr).await.map_err(|e| eprintln!("  raw smtp connect: {e}")).ok();
                }
                let Some(c) = conn.as_mut() else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let (env, body) = &jobs[i as usize];
                let t0 = now_ns();
                match c.send(env, body).await {
                    Ok(_) => lat.push(now_ns() - t0),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("  raw smtp: {e}");
                        }
                        conn = None;
                    }
                }
            }
            if let Some(mut c) = conn {
                let _ = c.quit().await;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        if let Ok(l) = w.await {
            lat.extend(l);
        }
    }
    let elapsed = now_ns() - start;
    let cpu1 = crate::gateway::cpu_seconds("/proc/self/stat");
    let busy1 = crate::gateway::MachineCpu::read();
    let arrived = sink.deliveries.load(Ordering::SeqCst);
    RawResult {
        deliveries: notifications,
        requests: lat.len() as u64,
        errors: errors.load(Ordering::SeqCst),
        non_200: 0,
        sink_deliveries: arrived,
        elapsed_ns: elapsed,
        deliveries_per_sec: rate(arrived, elapsed),
        latency: Latency::from_ns(lat),
        timed_out: next.load(Ordering::SeqCst) < messages,
        bench_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        machine: busy0.zip(busy1).map(|(a, b)| b.since(&a)),
    }
}
