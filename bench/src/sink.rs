//! The in-process HTTP sink standing in for a webhook receiver: counts
//! deliveries (`{"deliveries": [...]}` → its length, any other object → 1),
//! optionally remembers the first arrival time of every delivery id, answers 200.

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
    record: AtomicBool,
    /// delivery id → first arrival (bench clock, ns).
    arrivals: Mutex<HashMap<String, u64>>,
}

impl Sink {
    /// Zero the counters; from now on remember arrivals when `record`.
    pub fn reset(&self, record: bool) {
        self.record.store(false, Ordering::SeqCst);
        let mut a = self.arrivals.lock().expect("arrivals");
        a.clear();
        for c in [&self.requests, &self.deliveries, &self.bad_bodies, &self.duplicates, &self.unique] {
            c.store(0, Ordering::SeqCst);
        }
        self.record.store(record, Ordering::SeqCst);
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
                        let body = req.into_body().collect().await?.to_bytes();
                        sink.receive(&body);
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = StatusCode::OK;
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(addr)
}
