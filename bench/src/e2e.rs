//! End to end: C clients POST /v1/messages (R recipients each) until N
//! notifications are accepted, while the sink records when each delivery
//! arrives. Meanwhile a sampler watches the gateway's /metrics and /proc.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};

use crate::gateway::{self, Gateway, Tenant, Watched};
use crate::http::{self, Client};
use crate::sink::Sink;
use crate::stats::{Latency, now_ns, rate};

/// What the load sends, and how an arrival is matched to its request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `webhook` account; arrivals keyed by delivery id `<message id>.<i>`.
    Webhook,
    /// `email` account on the in-process SMTP receiver; recipient `k` is
    /// `r<k>@bench.test`, its arrival keyed `r<k>`. `identical`: every
    /// notification has the same subject and text; otherwise one variable
    /// per recipient.
    Email { identical: bool },
}

/// One accepted request.
pub struct Accepted {
    /// The message id (delivery ids are `<id>.<index>`).
    pub id: String,
    /// Its first notification's number (recipients are `first..first + count`).
    pub first: u64,
    /// When it was sent (open loop: when it was due).
    pub send_ns: u64,
    pub done_ns: u64,
    pub count: u64,
}

#[derive(Default)]
pub struct Failures {
    /// Non-202 answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Transport errors and timeouts.
    pub errors: u64,
    /// Requests given up on (their notifications are not part of the target).
    pub abandoned: u64,
    /// First few non-202 bodies / errors, verbatim.
    pub samples: Vec<String>,
}

pub struct Sample {
    pub t_s: f64,
    pub accepted: u64,
    pub arrived: u64,
    /// Largest `herald_queue_depth` over the gateway processes (on Kafka: the
    /// consumer group's lag in records, read by every dispatch node).
    pub queue_depth: Option<f64>,
    /// Sum over the gateway processes.
    pub inflight_batches: Option<f64>,
    /// Sum over the gateway processes.
    pub gateway_cpu_s: Option<f64>,
    /// Sum over the gateway processes.
    pub gateway_rss_kib: Option<u64>,
    /// Per gateway process, in start order.
    pub nodes: Vec<NodeSample>,
    /// Per watched service (Kafka, Cassandra JVMs): (cpu s, rss KiB).
    pub services: Vec<(Option<f64>, Option<u64>)>,
}

pub struct NodeSample {
    pub queue_depth: Option<f64>,
    pub inflight_batches: Option<f64>,
    pub sent: Option<f64>,
    pub cpu_s: Option<f64>,
    pub rss_kib: Option<u64>,
}

/// One gateway process over the end-to-end interval.
pub struct NodeResult {
    pub cpu_s: Option<f64>,
    pub threads: Vec<(String, usize, f64, f64)>,
    pub metrics: Vec<(String, f64)>,
}

/// A watched service over the end-to-end interval.
pub struct ServiceResult {
    pub name: String,
    pub pid: u32,
    pub cpu_s: Option<f64>,
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
}

pub struct E2eResult {
    pub requested: u64,
    pub accepted: u64,
    pub accepted_requests: u64,
    pub arrived_unique: u64,
    pub sink_deliveries: u64,
    pub duplicates: u64,
    pub unknown_ids: u64,
    pub missing: u64,
    pub bad_bodies: u64,
    pub sink_requests: u64,
    pub timed_out: bool,
    pub gateway_exited_early: Option<String>,
    pub ingest_span_ns: u64,
    pub ingest_per_sec: Option<f64>,
    pub ingest_latency: Latency,
    pub e2e_span_ns: u64,
    pub e2e_per_sec: Option<f64>,
    pub drain_after_ingest_ns: Option<u64>,
    pub added_latency: Latency,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub abandoned_requests: u64,
    pub failure_samples: Vec<String>,
    pub samples: Vec<Sample>,
    pub gateway_cpu_s: Option<f64>,
    pub bench_cpu_s: Option<f64>,
    /// Busy CPU of the whole machine over the same interval.
    pub machine: Option<gateway::MachineCpu>,
    /// The interval the CPU figures cover (first request to the end of the settle).
    pub cpu_interval_ns: u64,
    /// Gateway CPU per thread name over the same interval: (name, threads, total s, busiest thread s).
    /// The first process (the one that takes the load).
    pub gateway_threads: Vec<(String, usize, f64, f64)>,
    /// Metrics at the end, summed over the gateway processes (gauges too).
    pub metrics: Vec<(String, f64)>,
    /// Per gateway process, in start order.
    pub nodes: Vec<NodeResult>,
    pub services: Vec<ServiceResult>,
}

/// Sum series of the same name and labels over several scrapes (first-seen order).
pub fn merge_metrics(all: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for m in all {
        for (k, v) in m {
            match index.get(k) {
                Some(&i) => out[i].1 += v,
                None => {
                    index.insert(k.clone(), out.len());
                    out.push((k.clone(), *v));
                }
            }
        }
    }
    out
}

async fn scrape(client: &Client, url: &str) -> Vec<(String, f64)> {
    match http::get(client, url, Duration::from_secs(5)).await {
        Ok((200, b)) => gateway::parse_metrics(&String::from_utf8_lossy(&b)),
        _ => Vec::new(),
    }
}

fn max_opt(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    v.flatten().fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
}

fn sum_opt(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    v.flatten().fold(None, |a: Option<f64>, x| Some(a.unwrap_or(0.0) + x))
}

pub fn message_body(shape: Shape, first: u64, count: u64) -> Bytes {
    // The account is named the same in every tenant.
    use std::fmt::Write;
    let mut s = String::with_capacity(120 + count as usize * 40);
    match shape {
        Shape::Webhook => s.push_str(r#"{"channel":"webhook","account":"sink","content":{"text":"hi {{ n }}"},"recipients":["#),
        Shape::Email { identical: true } => {
            s.push_str(r#"{"channel":"email","account":"sink","content":{"subject":"Bench","text":"hello all"},"recipients":["#)
        }
        Shape::Email { identical: false } => {
            s.push_str(r#"{"channel":"email","account":"sink","content":{"subject":"Bench {{ n }}","text":"hi {{ n }}"},"recipients":["#)
        }
    }
    for k in first..first + count {
        if k > first {
            s.push(',');
        }
        match shape {
            Shape::Webhook => {
                let _ = write!(s, r#"{{"to":"r{k}","variables":{{"n":{k}}}}}"#);
            }
            Shape::Email { identical: true } => {
                let _ = write!(s, r#"{{"to":"r{k}@bench.test"}}"#);
            }
            Shape::Email { identical: false } => {
                let _ = write!(s, r#"{{"to":"r{k}@bench.test","variables":{{"n":{k}}}}}"#);
            }
        }
    }
    s.push_str("]}");
    Bytes::from(s)
}

const MAX_ATTEMPTS: u32 = 5;
/// Stop the load when this many requests were given up on.
const MAX_ABANDONED: u64 = 20;

/// Where the load goes and what it has seen: shared by every request task.
#[derive(Clone)]
pub struct Load {
    pub client: Client,
    pub uri: hyper::Uri,
    pub failures: Arc<Mutex<Failures>>,
    /// Set when too many requests were abandoned: send no more.
    pub stop: Arc<AtomicBool>,
    /// Notifications accepted so far.
    pub accepted: Arc<AtomicU64>,
}

impl Load {
    /// A load against `POST /v1/messages` of the gateway at `addr`.
    pub fn new(client: &Client, addr: SocketAddr) -> Self {
        Load {
            client: client.clone(),
            uri: format!("http://{addr}/v1/messages").parse().expect("uri"),
            failures: Arc::default(),
            stop: Arc::default(),
            accepted: Arc::default(),
        }
    }

    fn note(&self, status: Option<u16>, sample: impl FnOnce() -> String) {
        let mut f = self.failures.lock().expect("failures");
        match status {
            Some(s) => *f.statuses.entry(s).or_default() += 1,
            None => f.errors += 1,
        }
        if f.samples.len() < 10 {
            f.samples.push(sample());
        }
    }

    /// POST one message; 429, 5xx and transport errors are retried (at most
    /// `MAX_ATTEMPTS` in all). `intended_ns`: when the request was due (open
    /// loop: its latency counts from then, however late it went out); None:
    /// from the send time of the accepted attempt.
    pub async fn send_one(&self, auth: &str, body: Bytes, first: u64, count: u64, intended_ns: Option<u64>) -> Option<Accepted> {
        for attempt in 1..=MAX_ATTEMPTS {
            let req = Request::builder()
                .method(Method::POST)
                .uri(self.uri.clone())
                .header("content-type", "application/json")
                .header("authorization", auth)
                .body(Full::new(body.clone()))
                .expect("request");
            let send_ns = intended_ns.unwrap_or_else(now_ns);
            let res = tokio::time::timeout(Duration::from_secs(30), async {
                let resp = self.client.request(req).await?;
                let status = resp.status().as_u16();
                let b = resp.into_body().collect().await?.to_bytes();
                anyhow::Ok((status, b))
            })
            .await;
            let done_ns = now_ns();
            let retryable = match res {
                Ok(Ok((202, b))) => {
                    let id =
                        serde_json::from_slice::<serde_json::Value>(&b).ok().and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string));
                    match id {
                        Some(id) => {
                            self.accepted.fetch_add(count, Ordering::Relaxed);
                            return Some(Accepted { id, first, send_ns, done_ns, count });
                        }
                        None => {
                            self.note(Some(202), || format!("202 without an id: {}", String::from_utf8_lossy(&b)));
                            false
                        }
                    }
                }
                Ok(Ok((status, b))) => {
                    self.note(Some(status), || format!("{status}: {}", String::from_utf8_lossy(&b[..b.len().min(500)])));
                    status == 429 || status >= 500
                }
                Ok(Err(e)) => {
                    self.note(None, || format!("transport error: {e:#}"));
                    true
                }
                Err(_) => {
                    self.note(None, || "timed out after 30 s".into());
                    true
                }
            };
            if !retryable || attempt == MAX_ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
        let mut f = self.failures.lock().expect("failures");
        f.abandoned += 1;
        if f.abandoned >= MAX_ABANDONED {
            self.stop.store(true, Ordering::SeqCst);
        }
        None
    }

    /// The failures so far (taken).
    pub fn take_failures(&self) -> Failures {
        std::mem::take(&mut *self.failures.lock().expect("failures"))
    }
}

/// Closed loop: `concurrency` clients, each sending its next request when the
/// previous one is answered. Returns the accepted requests and their latencies.
pub async fn closed_loop(
    load: &Load,
    keys: &[String],
    total: u64,
    concurrency: usize,
    body_of: impl Fn(u64) -> (u64, u64, Bytes) + Send + Sync + Clone + 'static,
) -> (Vec<Accepted>, Vec<u64>) {
    let next = Arc::new(AtomicU64::new(0));
    let keys: Arc<Vec<String>> = Arc::new(keys.to_vec());
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (load, next, keys, body_of) = (load.clone(), next.clone(), keys.clone(), body_of.clone());
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || load.stop.load(Ordering::Relaxed) {
                    break;
                }
                let (first, count, body) = body_of(i);
                // Round robin over the tenants (one tenant: always the same key).
                if let Some(a) = load.send_one(&keys[(i % keys.len() as u64) as usize], body, first, count, None).await {
                    done.push(a);
                }
            }
            done
        }));
    }
    let mut accepted = Vec::new();
    for w in workers {
        accepted.extend(w.await.unwrap_or_default());
    }
    let lat = accepted.iter().map(|a| a.done_ns - a.send_ns).collect();
    (accepted, lat)
}

/// Most requests of the open loop in flight at once (a bound on the bench,
/// not on the measurement: a request that waits for a slot is late, and its
/// latency still counts from when it was due).
const OPEN_LOOP_MAX_IN_FLIGHT: usize = 2048;

/// Open loop: request `i` is due at start + i / `rate` whatever happened to
/// the earlier ones, and its latency counts from then (coordinated-omission
/// free: a stalled gateway shows up as latency instead of a slower send rate).
/// Returns the accepted requests and their latencies from the due time.
pub async fn open_loop(load: &Load, keys: &[String], total: u64, rate: f64, body_of: impl Fn(u64) -> (u64, u64, Bytes)) -> (Vec<Accepted>, Vec<u64>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(OPEN_LOOP_MAX_IN_FLIGHT));
    let (t0, t0_ns) = (tokio::time::Instant::now(), now_ns());
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        if load.stop.load(Ordering::Relaxed) {
            break;
        }
        let due = Duration::from_secs_f64(i as f64 / rate.max(1e-9));
        tokio::time::sleep_until(t0 + due).await;
        let (first, count, body) = body_of(i);
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let (load, auth) = (load.clone(), keys[(i % keys.len() as u64) as usize].clone());
        let intended = t0_ns + due.as_nanos() as u64;
        tasks.push(tokio::spawn(async move {
            let a = load.send_one(&auth, body, first, count, Some(intended)).await;
            drop(permit);
            a
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        if let Ok(Some(a)) = t.await {
            accepted.push(a);
        }
    }
    let lat = accepted.iter().map(|a| a.done_ns - a.send_ns).collect();
    (accepted, lat)
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &Client,
    meta_client: &Client,
    sink: &Arc<Sink>,
    gws: &mut [Gateway],
    tenants: &[Tenant],
    watch: &[Watched],
    notifications: u64,
    per_request: u64,
    concurrency: usize,
    wait_timeout: Duration,
    progress: bool,
    shape: Shape,
    open_rate: Option<f64>,
) -> E2eResult {
    sink.reset(true);
    // The load goes to the first process; every process is watched.
    let base: SocketAddr = gws[0].addr;
    let load = Load::new(client, base);
    let metrics_urls: Vec<String> = gws.iter().map(|g| format!("http://{}/metrics", g.addr)).collect();
    let pids: Vec<u32> = gws.iter().map(|g| g.pid).collect();
    let watch: Vec<Watched> = watch.to_vec();
    let keys: Vec<String> = tenants.iter().map(|t| format!("Bearer {}", t.api_key)).collect();
    let per_request = per_request.max(1);
    let total_requests = notifications.div_ceil(per_request);
    let accepted_n = load.accepted.clone();

    // Sampler: once a second until told to stop.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (meta, sink, accepted_n, sampling, urls, pids, watch) =
            (meta_client.clone(), sink.clone(), accepted_n.clone(), sampling.clone(), metrics_urls.clone(), pids.clone(), watch.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            let mut last_print = 0u64;
            while sampling.load(Ordering::SeqCst) {
                let scrapes = scrape_all(&meta, &urls).await;
                let nodes: Vec<NodeSample> = scrapes
                    .iter()
                    .zip(&pids)
                    .map(|(m, pid)| NodeSample {
                        queue_depth: gateway::metric_sum(m, "herald_queue_depth", &[]),
                        inflight_batches: gateway::metric_sum(m, "herald_inflight_batches", &[]),
                        sent: gateway::metric_sum(m, "herald_deliveries_total", &["outcome=\"sent\""]),
                        cpu_s: gateway::cpu_seconds(&format!("/proc/{pid}/stat")),
                        rss_kib: gateway::pid_status_kib(*pid, "VmRSS:"),
                    })
                    .collect();
                let s = Sample {
                    t_s: now_ns() as f64 / 1e9,
                    accepted: accepted_n.load(Ordering::Relaxed),
                    arrived: sink.unique.load(Ordering::Relaxed),
                    queue_depth: max_opt(nodes.iter().map(|n| n.queue_depth)),
                    inflight_batches: sum_opt(nodes.iter().map(|n| n.inflight_batches)),
                    gateway_cpu_s: sum_opt(nodes.iter().map(|n| n.cpu_s)),
                    gateway_rss_kib: nodes.iter().filter_map(|n| n.rss_kib).reduce(|a, b| a + b),
                    services: watch
                        .iter()
                        .map(|w| (gateway::cpu_seconds(&format!("/proc/{}/stat", w.pid)), gateway::pid_status_kib(w.pid, "VmRSS:")))
                        .collect(),
                    nodes,
                };
                if progress && (s.t_s as u64) >= last_print + 5 {
                    last_print = s.t_s as u64;
                    eprintln!(
                        "  [{:7.1}s] accepted {:>8}  arrived {:>8}  queue_depth {:>6}  inflight {:>3}  gw cpu {:6.1}s  rss {:>7} KiB",
                        s.t_s,
                        s.accepted,
                        s.arrived,
                        s.queue_depth.map_or("-".into(), |v| format!("{v}")),
                        s.inflight_batches.map_or("-".into(), |v| format!("{v}")),
                        s.gateway_cpu_s.unwrap_or(0.0),
                        s.gateway_rss_kib.unwrap_or(0),
                    );
                }
                out.push(s);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            out
        })
    };

    let node_cpu0: Vec<Option<f64>> = gws.iter().map(|g| g.cpu_seconds()).collect();
    let svc_cpu0: Vec<Option<f64>> = watch.iter().map(|w| gateway::cpu_seconds(&format!("/proc/{}/stat", w.pid))).collect();
    let threads0: Vec<_> = gws.iter().map(|g| gateway::thread_cpu(g.pid)).collect();
    let bench_cpu0 = gateway::cpu_seconds("/proc/self/stat");
    let busy0 = gateway::MachineCpu::read();
    let start = now_ns();
    let body_of = move |i: u64| {
        let first = i * per_request;
        let count = per_request.min(notifications - first);
        (first, count, message_body(shape, first, count))
    };
    let (accepted, ingest_lat) = match open_rate {
        None => closed_loop(&load, &keys, total_requests, concurrency, body_of).await,
        Some(r) => open_loop(&load, &keys, total_requests, r, body_of).await,
    };
    let ingest_end = accepted.iter().map(|a| a.done_ns).max().unwrap_or(start);
    let first_send = accepted.iter().map(|a| a.send_ns).min().unwrap_or(start);
    let target: u64 = accepted.iter().map(|a| a.count).sum();

    // Wait for the sink to see every accepted notification (bounded).
    let wait_until = now_ns() + wait_timeout.as_nanos() as u64;
    let mut timed_out = false;
    let mut exited = None;
    loop {
        if sink.unique.load(Ordering::SeqCst) >= target {
            break;
        }
        if let Some(s) = gws.iter_mut().enumerate().find_map(|(i, g)| g.exited().map(|s| format!("process {i} (pid {}): {s}", g.pid))) {
            exited = Some(s);
            break;
        }
        if now_ns() > wait_until {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A short settle to catch late duplicates before the books are closed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let node_cpu1: Vec<Option<f64>> = gws.iter().map(|g| g.cpu_seconds()).collect();
    let svc_cpu1: Vec<Option<f64>> = watch.iter().map(|w| gateway::cpu_seconds(&format!("/proc/{}/stat", w.pid))).collect();
    let threads1: Vec<_> = gws.iter().map(|g| gateway::thread_cpu(g.pid)).collect();
    let bench_cpu1 = gateway::cpu_seconds("/proc/self/stat");
    let busy1 = gateway::MachineCpu::read();
    let measured_ns = now_ns() - start;
    sampling.store(false, Ordering::SeqCst);
    let samples = sampler.await.unwrap_or_default();
    let node_metrics = scrape_all(meta_client, &metrics_urls).await;
    let metrics = merge_metrics(&node_metrics);
    let nodes: Vec<NodeResult> = node_metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| NodeResult {
            cpu_s: node_cpu0[i].zip(node_cpu1[i]).map(|(a, b)| b - a),
            threads: gateway::thread_cpu_delta(&threads0[i], &threads1[i]),
            metrics: m,
        })
        .collect();
    let services: Vec<ServiceResult> = watch
        .iter()
        .enumerate()
        .map(|(i, w)| ServiceResult {
            name: w.name.clone(),
            pid: w.pid,
            cpu_s: svc_cpu0[i].zip(svc_cpu1[i]).map(|(a, b)| b - a),
            rss_kib: gateway::pid_status_kib(w.pid, "VmRSS:"),
            hwm_kib: gateway::pid_status_kib(w.pid, "VmHWM:"),
        })
        .collect();
    let gateway_cpu_s = sum_opt(nodes.iter().map(|n| n.cpu_s));

    let arrivals = sink.take_arrivals();
    let mut added = Vec::with_capacity(target as usize);
    let mut matched = 0u64;
    let mut last_arrival = None::<u64>;
    for a in &accepted {
        for i in 0..a.count {
            let key = match shape {
                Shape::Webhook => format!("{}.{i}", a.id),
                Shape::Email { .. } => format!("r{}", a.first + i),
            };
            if let Some(&t) = arrivals.get(&key) {
                matched += 1;
                added.push(t.saturating_sub(a.send_ns));
                last_arrival = Some(last_arrival.map_or(t, |l| l.max(t)));
            }
        }
    }
    let unknown_ids = arrivals.len() as u64 - matched;
    let e2e_span = last_arrival.map_or(0, |l| l.saturating_sub(first_send));
    let f = load.take_failures();
    E2eResult {
        requested: notifications,
        accepted: target,
        accepted_requests: accepted.len() as u64,
        arrived_unique: matched,
        sink_deliveries: sink.deliveries.load(Ordering::SeqCst),
        duplicates: sink.duplicates.load(Ordering::SeqCst),
        unknown_ids,
        missing: target - matched,
        bad_bodies: sink.bad_bodies.load(Ordering::SeqCst),
        sink_requests: sink.requests.load(Ordering::SeqCst),
        timed_out,
        gateway_exited_early: exited,
        ingest_span_ns: ingest_end.saturating_sub(first_send),
        ingest_per_sec: rate(target, ingest_end.saturating_sub(first_send)),
        ingest_latency: Latency::from_ns(ingest_lat),
        e2e_span_ns: e2e_span,
        e2e_per_sec: rate(matched, e2e_span),
        drain_after_ingest_ns: last_arrival.map(|l| l.saturating_sub(ingest_end)),
        added_latency: Latency::from_ns(added),
        statuses: f.statuses,
        transport_errors: f.errors,
        abandoned_requests: f.abandoned,
        failure_samples: f.samples,
        samples,
        gateway_cpu_s,
        bench_cpu_s: bench_cpu0.zip(bench_cpu1).map(|(a, b)| b - a),
        machine: busy0.zip(busy1).map(|(a, b)| b.since(&a)),
        cpu_interval_ns: measured_ns,
        gateway_threads: nodes.first().map(|n| n.threads.clone()).unwrap_or_default(),
        metrics,
        nodes,
        services,
    }
}

impl E2eResult {
    pub fn json(&self) -> serde_json::Value {
        let metrics: serde_json::Map<String, serde_json::Value> = self
            .metrics
            .iter()
            .filter(|(k, _)| k.starts_with("herald_") && !k.contains("_bucket{"))
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        let statuses: HashMap<String, u64> = self.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        serde_json::json!({
            "requested": self.requested,
            "accepted": self.accepted,
            "accepted_requests": self.accepted_requests,
            "arrived_unique": self.arrived_unique,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "unknown_ids": self.unknown_ids,
            "bad_bodies": self.bad_bodies,
            "sink_requests": self.sink_requests,
            "sink_deliveries": self.sink_deliveries,
            "timed_out": self.timed_out,
            "gateway_exited_early": self.gateway_exited_early,
            "ingest": {
                "span_s": self.ingest_span_ns as f64 / 1e9,
                "accepted_per_sec": self.ingest_per_sec,
                "request_latency": self.ingest_latency.json(),
            },
            "end_to_end": {
                "span_s": self.e2e_span_ns as f64 / 1e9,
                "deliveries_per_sec": self.e2e_per_sec,
                "drain_after_ingest_s": self.drain_after_ingest_ns.map(|n| n as f64 / 1e9),
                "added_latency": self.added_latency.json(),
            },
            "non_202_statuses": statuses,
            "transport_errors": self.transport_errors,
            "abandoned_requests": self.abandoned_requests,
            "failure_samples": self.failure_samples,
            "cpu_seconds": {
                "interval_s": self.cpu_interval_ns as f64 / 1e9,
                "gateway": self.gateway_cpu_s,
                "bench": self.bench_cpu_s,
                "machine": self.machine.map(|m| m.json()),
                "gateway_threads": self.gateway_threads.iter().map(|(n, c, t, m)| serde_json::json!({"name": n, "threads": c, "cpu_s": t, "busiest_thread_cpu_s": m})).collect::<Vec<_>>(),
                "other_processes": self.machine.map(|m| m.busy() - self.gateway_cpu_s.unwrap_or(0.0) - self.bench_cpu_s.unwrap_or(0.0)),
            },
            "timeline": self.samples.iter().map(|s| {
                let mut j = serde_json::json!({
                    "t_s": s.t_s, "accepted": s.accepted, "arrived": s.arrived,
                    "queue_depth": s.queue_depth, "inflight_batches": s.inflight_batches,
                    "gateway_cpu_s": s.gateway_cpu_s, "gateway_rss_kib": s.gateway_rss_kib,
                });
                if s.nodes.len() > 1 || !s.services.is_empty() {
                    j["nodes"] = s.nodes.iter().map(|n| serde_json::json!({
                        "queue_depth": n.queue_depth, "inflight_batches": n.inflight_batches, "sent": n.sent,
                        "cpu_s": n.cpu_s, "rss_kib": n.rss_kib,
                    })).collect();
                    j["services"] = self.services.iter().zip(&s.services).map(|(w, (c, r))| serde_json::json!({
                        "name": w.name, "cpu_s": c, "rss_kib": r,
                    })).collect();
                }
                j
            }).collect::<Vec<_>>(),
            "gateway_metrics": metrics,
        })
    }
}

/// Scrape every process's /metrics, in order (a handful of processes).
async fn scrape_all(client: &Client, urls: &[String]) -> Vec<Vec<(String, f64)>> {
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        out.push(scrape(client, u).await);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_of_several_processes_are_summed_by_series() {
        let a = vec![("x{o=\"sent\"}".to_string(), 2.0), ("y".to_string(), 1.0)];
        let b = vec![("x{o=\"sent\"}".to_string(), 3.0), ("z".to_string(), 4.0)];
        let m = super::merge_metrics(&[a, b]);
        assert_eq!(m, vec![("x{o=\"sent\"}".to_string(), 5.0), ("y".to_string(), 1.0), ("z".to_string(), 4.0)]);
    }
}
