//! The in-process HTTP sink standing in for a webhook receiver: counts
//! deliveries (`{"deliveries": [...]}` → its length, any other object → 1),
//! optionally remembers the first arrival time of every delivery id, answers 200
//! — or misbehaves for a while when told to (the fairness shape): 429 with a
//! `Retry-After`, or holding every request and then closing the connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::stats::now_ns;

#[derive(Default)]
pub struct Sink {
    /// HTTP requests received.
    pub requests: AtomicU64,
    /// Deliveries received (duplicates included).
    pub deliveries: AtomicU64,
    /// Bodies that were not JSON of the expected shape.
    pub bad_bodies: AtomicU64,
    /// Deliveries whose id was already seen (recording mode only).
    pub duplicates: AtomicU64,
    /// Unique delivery ids seen (recording mode only).
    pub unique: AtomicU64,
    /// Requests answered 429 (see [`Sink::throttle`]).
    pub throttled: AtomicU64,
    /// Requests held and dropped unanswered (see [`Sink::hang`]).
    pub hung: AtomicU64,
    record: AtomicBool,
    /// delivery id → first arrival (bench clock, ns).
    arrivals: Mutex<HashMap<String, u64>>,
    /// Until this bench-clock instant (ns), answer 429 with `Retry-After: retry_after_s`.
    throttle_until_ns: AtomicU64,
    retry_after_s: AtomicU64,
    /// Until this instant, hold each request `hang_ms` and close the connection without an answer.
    hang_until_ns: AtomicU64,
    hang_ms: AtomicU64,
}

impl Sink {
    /// Zero the counters; from now on remember arrivals when `record`.
    pub fn reset(&self, record: bool) {
        self.record.store(false, Ordering::SeqCst);
        let mut a = self.arrivals.lock().expect("arrivals");
        a.clear();
        for c in [
            &self.requests,
            &self.deliveries,
            &self.bad_bodies,
            &self.duplicates,
            &self.unique,
            &self.throttled,
            &self.hung,
            &self.throttle_until_ns,
            &self.hang_until_ns,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        self.record.store(record, Ordering::SeqCst);
    }

    /// Answer every request with 429 and `Retry-After: retry_after_s` for `for_ns` from now.
    pub fn throttle(&self, for_ns: u64, retry_after_s: u64) {
        self.retry_after_s.store(retry_after_s, Ordering::SeqCst);
        self.throttle_until_ns.store(now_ns() + for_ns, Ordering::SeqCst);
    }

    /// For `for_ns` from now, hold every request `hang_ms`, then close the
    /// connection without an answer (nothing is counted as arrived).
    pub fn hang(&self, for_ns: u64, hang_ms: u64) {
        self.hang_ms.store(hang_ms, Ordering::SeqCst);
        self.hang_until_ns.store(now_ns() + for_ns, Ordering::SeqCst);
    }

    /// Back to answering 200 at once.
    pub fn behave(&self) {
        self.throttle_until_ns.store(0, Ordering::SeqCst);
        self.hang_until_ns.store(0, Ordering::SeqCst);
    }

    pub fn take_arrivals(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.arrivals.lock().expect("arrivals"))
    }

    /// Arrivals from the SMTP receiver: one per recipient key (`r<k>`) of a
    /// completed transaction.
    pub fn arrive(&self, keys: impl Iterator<Item = String>) {
        let at = now_ns();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let keys: Vec<String> = keys.collect();
        self.deliveries.fetch_add(keys.len() as u64, Ordering::Relaxed);
        if !self.record.load(Ordering::Relaxed) {
            return;
        }
        let (mut new, mut dup) = (0u64, 0u64);
        let mut arrivals = self.arrivals.lock().expect("arrivals");
        for k in keys {
            match arrivals.entry(k) {
                std::collections::hash_map::Entry::Occupied(_) => dup += 1,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(at);
                    new += 1;
                }
            }
        }
        drop(arrivals);
        self.unique.fetch_add(new, Ordering::Relaxed);
        self.duplicates.fetch_add(dup, Ordering::Relaxed);
    }

    fn receive(&self, body: &[u8]) {
        let at = now_ns();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let v: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                self.bad_bodies.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let items: Vec<&serde_json::Value> = match v.get("deliveries") {
            Some(serde_json::Value::Array(a)) => a.iter().collect(),
            None if v.is_object() => vec![&v],
            _ => {
                self.bad_bodies.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        self.deliveries.fetch_add(items.len() as u64, Ordering::Relaxed);
        if !self.record.load(Ordering::Relaxed) {
            return;
        }
        let mut arrivals = self.arrivals.lock().expect("arrivals");
        let (mut new, mut dup) = (0u64, 0u64);
        for d in items {
            match d.get("id").and_then(|i| i.as_str()) {
                Some(id) => {
                    if arrivals.contains_key(id) {
                        dup += 1;
                    } else {
                        arrivals.insert(id.to_string(), at);
                        new += 1;
                    }
                }
                None => {
                    self.bad_bodies.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        drop(arrivals);
        self.unique.fetch_add(new, Ordering::Relaxed);
        self.duplicates.fetch_add(dup, Ordering::Relaxed);
    }
}

/// Bind 127.0.0.1:0 and serve until the runtime ends.
pub async fn start(sink: Arc<Sink>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sink: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let sink = sink.clone();
                    async move {
                        let body = req.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                        let now = now_ns();
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        if now < sink.hang_until_ns.load(Ordering::SeqCst) {
                            sink.hung.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(std::time::Duration::from_millis(sink.hang_ms.load(Ordering::SeqCst))).await;
                            // An error from the service makes hyper close the connection unanswered.
                            return Err("held, then dropped".to_string());
                        }
                        if now < sink.throttle_until_ns.load(Ordering::SeqCst) {
                            sink.throttled.fetch_add(1, Ordering::Relaxed);
                            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                            resp.headers_mut().insert(hyper::header::RETRY_AFTER, sink.retry_after_s.load(Ordering::SeqCst).into());
                            return Ok(resp);
                        }
                        sink.receive(&body);
                        *resp.status_mut() = StatusCode::OK;
                        Ok::<_, String>(resp)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(addr)
}
