//! The raw limit: a bare pooled hyper client POSTs the same deliveries, in the
//! same shape the webhook plugin uses, straight to the sink. Whatever this
//! machine does here (loopback HTTP + JSON parse in the sink) bounds what the
//! gateway can reach in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};

use crate::http::Client;
use crate::sink::Sink;
use crate::stats::{Latency, now_ns, rate};

pub struct RawResult {
    pub deliveries: u64,
    pub requests: u64,
    pub errors: u64,
    pub non_200: u64,
    pub sink_deliveries: u64,
    pub elapsed_ns: u64,
    pub deliveries_per_sec: Option<f64>,
    pub latency: Latency,
    pub timed_out: bool,
    pub bench_cpu_s: Option<f64>,
    pub machine: Option<crate::gateway::MachineCpu>,
}

impl RawResult {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "deliveries": self.deliveries,
            "requests": self.requests,
            "errors": self.errors,
            "non_200": self.non_200,
            "sink_deliveries": self.sink_deliveries,
            "elapsed_s": self.elapsed_ns as f64 / 1e9,
            "deliveries_per_sec": self.deliveries_per_sec,
            "request_latency": self.latency.json(),
            "timed_out": self.timed_out,
            "cpu_seconds": {
                "bench": self.bench_cpu_s,
                "machine": self.machine.map(|m| m.json()),
                "other_processes": self.machine.zip(self.bench_cpu_s).map(|(m, b)| m.busy() - b),
            },
        })
    }
}

/// One delivery object as the webhook plugin writes it.
pub fn delivery_json(out: &mut String, id: &str, n: u64) {
    use std::fmt::Write;
    let _ = write!(out, r#"{{"id":"{id}","recipient":"r{n}","subject":null,"text":"hi {n}","html":null,"metadata":{{}}}}"#);
}

fn body(request: u64, count: u64, batch: bool) -> Bytes {
    let msg = format!("00000000-0000-7000-8000-{request:012}");
    let mut s = String::with_capacity(count as usize * 120 + 20);
    if batch {
        s.push_str(r#"{"deliveries":["#);
        for i in 0..count {
            if i > 0 {
                s.push(',');
            }
            delivery_json(&mut s, &format!("{msg}.{i}"), i);
        }
        s.push_str("]}");
    } else {
        delivery_json(&mut s, &format!("{msg}.0"), 0);
    }
    Bytes::from(s)
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &Client,
    sink: &Arc<Sink>,
    sink_addr: SocketAddr,
    deliveries: u64,
    per_request: u64,
    concurrency: usize,
    batch: bool,
    deadline: Duration,
) -> RawResult {
    sink.reset(false);
    let per_request = if batch { per_request.max(1) } else { 1 };
    let total_requests = deliveries.div_ceil(per_request);
    // Bodies are built up front so the client side costs as little as possible:
    // a full one and, if N is not a multiple of R, the short last one.
    let full = body(0, per_request, batch);
    let last_count = deliveries - (total_requests.saturating_sub(1)) * per_request;
    let last = body(1, last_count, batch);
    let uri: hyper::Uri = format!("http://{sink_addr}/hook").parse().expect("uri");
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let non_200 = Arc::new(AtomicU64::new(0));
    let cpu0 = crate::gateway::cpu_seconds("/proc/self/stat");
    let busy0 = crate::gateway::MachineCpu::read();
    let start = now_ns();
    let stop_at = start + deadline.as_nanos() as u64;
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, uri, next, errors, non_200) = (client.clone(), uri.clone(), next.clone(), errors.clone(), non_200.clone());
        let (full, last) = (full.clone(), last.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total_requests || now_ns() > stop_at {
                    break;
                }
                let b = if i + 1 == total_requests { last.clone() } else { full.clone() };
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(uri.clone())
                    .header("content-type", "application/json")
                    .header("user-agent", "herald-bench/raw")
                    .header("x-herald-timestamp", "1764000000")
                    .header("x-herald-signature", "sha256=0000000000000000000000000000000000000000000000000000000000000000")
                    .body(Full::new(b))
                    .expect("request");
                let t = now_ns();
                match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
                    Ok(Ok(resp)) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        lat.push(now_ns() - t);
                        if !ok {
                            non_200.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
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
    let sink_deliveries = sink.deliveries.load(Ordering::SeqCst);
    let requests = lat.len() as u64;
    RawResult {
        deliveries,
        requests,
        errors: errors.load(Ordering::SeqCst),
        non_200: non_200.load(Ordering::SeqCst),
        sink_deliveries,
        elapsed_ns: elapsed,
        deliveries_per_sec: rate(sink_deliveries, elapsed),
        latency: Latency::from_ns(lat),
        timed_out: next.load(Ordering::SeqCst) < total_requests,
        bench_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        machine: busy0.zip(busy1).map(|(a, b)| b.since(&a)),
    }
}
