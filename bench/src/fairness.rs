//! The fairness shape: two tenants on one embedded gateway, each with a
//! webhook account on its own receiver (so one can misbehave while the other
//! answers at once). Tenant B sends a trickle (open loop, R = 1) and its
//! latency from the due time of the POST to the arrival at its receiver is
//! measured over a fixed window: first with A idle (solo), then with A in each
//! of the conditions, every one on a fresh gateway:
//!
//! - a: A's receiver answers 429 `Retry-After: 20` for 25 s, then 200;
//! - b: A's receiver holds every request 30 s and closes it unanswered, for the window;
//! - c: A's account is limited to 2 sends/s (`rate_per_sec`) with 150 messages queued;
//! - d: A sends one 10 000-recipient message;
//! - e: the same with 2 MB of shared `variables` (refusing it at ingest is the intended outcome).
//!
//! Nothing is asserted: B's p99 against its solo p99 (the issue's target ≤ 2×)
//! and what happened to A are reported.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::e2e::{self, Accepted, Load, Shape};
use crate::gateway::{self, Gateway, Tenant};
use crate::http::Client;
use crate::sink::{self, Sink};
use crate::stats::{Latency, fmt_opt, now_ns};

pub const CONDITIONS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// Stop a condition (SIGKILL the gateway) when its RSS passes this: condition
/// e on a gateway without a cost limit could otherwise take the machine.
const RSS_GUARD_KIB: u64 = 4 * 1024 * 1024;
/// After B's window, wait at most this long for B's last deliveries.
const B_SETTLE: Duration = Duration::from_secs(15);
/// A's requests in flight at once (conditions a, b, c).
const A_CLIENTS: usize = 4;

pub struct Params {
    /// B's requests per second.
    pub rate: f64,
    /// How long B sends.
    pub window: Duration,
    /// After the window, how long A may take to drain.
    pub drain: Duration,
    pub conditions: Vec<String>,
}

/// A's load in one condition: requests × recipients, and shared variables.
fn a_load(cond: &str) -> (u64, u64, usize) {
    match cond {
        "a" | "b" => (100, 100, 0),
        "c" => (150, 1, 0),
        "d" => (1, 10_000, 0),
        "e" => (1, 10_000, 2 << 20),
        _ => (0, 0, 0),
    }
}

fn describe(cond: Option<&str>) -> &'static str {
    match cond {
        None => "B alone (A idle)",
        Some("a") => "a: A's receiver 429 Retry-After 20 for 25 s",
        Some("b") => "b: A's receiver hangs 30 s per request",
        Some("c") => "c: A's account 2/s, 150 messages queued",
        Some("d") => "d: A sends one 10 000-recipient message",
        Some("e") => "e: d + 2 MB shared variables",
        Some(_) => "?",
    }
}

/// A webhook message body with `shared_bytes` of top-level `variables` (one
/// string the content does not use).
fn body_with_variables(first: u64, count: u64, shared_bytes: usize) -> Bytes {
    let b = e2e::message_body(Shape::Webhook, first, count);
    if shared_bytes == 0 {
        return b;
    }
    let mut s = String::from_utf8(b.to_vec()).expect("utf-8");
    s.pop(); // the closing brace
    s.push_str(r#","variables":{"blob":""#);
    s.extend(std::iter::repeat_n('x', shared_bytes));
    s.push_str("\"}}");
    Bytes::from(s)
}

/// Latency of each accepted single-recipient request of B: arrival of its
/// delivery `<id>.0` minus its due time, with that due time; and how many
/// never arrived.
fn arrival_latencies(accepted: &[Accepted], arrivals: &std::collections::HashMap<String, u64>) -> (Vec<(u64, u64)>, u64) {
    let mut lat = Vec::with_capacity(accepted.len());
    let mut missing = 0;
    for a in accepted {
        for i in 0..a.count {
            match arrivals.get(&format!("{}.{i}", a.id)) {
                Some(t) => lat.push((a.send_ns, t.saturating_sub(a.send_ns))),
                None => missing += 1,
            }
        }
    }
    (lat, missing)
}

/// How many of B's slowest deliveries the report lists.
const SLOWEST: usize = 6;

/// B's slowest deliveries: seconds from the condition's start to the due
/// time, and the latency in ms. Whether a p99 comes from the first requests
/// (a gateway warming up) or from the middle of the window tells a cold
/// start from interference.
fn slowest(lat: &[(u64, u64)], t0: u64) -> Vec<serde_json::Value> {
    let mut worst: Vec<&(u64, u64)> = lat.iter().collect();
    worst.sort_by_key(|(_, l)| std::cmp::Reverse(*l));
    worst.into_iter().take(SLOWEST).map(|(due, l)| serde_json::json!({"due_s": due.saturating_sub(t0) as f64 / 1e9, "ms": *l as f64 / 1e6})).collect()
}

/// Status and error code of a refused request, from a failure sample (`"413: {json}"`).
fn refusal(sample: &str) -> (Option<u16>, Option<String>) {
    let (status, body) = sample.split_once(": ").unwrap_or((sample, ""));
    let code = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["error"]["code"].as_str().map(str::to_string));
    (status.parse().ok(), code)
}

struct Side {
    sink: Arc<Sink>,
    tenant: Tenant,
}

impl Side {
    async fn new(id: &str) -> anyhow::Result<Self> {
        let sink = Arc::new(Sink::default());
        let addr = sink::start(sink.clone()).await?;
        let mut tenant = Tenant::new(id, &format!("hk_{}_0123456789abcdef", id.replace('-', "_")));
        tenant.sink = Some(addr);
        Ok(Side { sink, tenant })
    }

    fn auth(&self) -> Vec<String> {
        vec![format!("Bearer {}", self.tenant.api_key)]
    }
}

/// Watch the gateway's RSS every 200 ms until `done`; SIGKILL it past the guard.
fn rss_guard(pid: u32, done: Arc<AtomicBool>, killed: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !done.load(Ordering::SeqCst) {
            let rss = gateway::pid_status_kib(pid, "VmRSS:").unwrap_or(0);
            peak.fetch_max(rss, Ordering::SeqCst);
            if rss > RSS_GUARD_KIB {
                killed.store(true, Ordering::SeqCst);
                let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// What every condition runs against.
struct Env<'a> {
    bin: &'a Path,
    plugins: &'a Path,
    client: &'a Client,
    meta: &'a Client,
}

/// One condition (None: B alone) on a fresh gateway.
async fn condition(p: &Params, env: &Env<'_>, cond: Option<&str>, a: &mut Side, b: &Side) -> anyhow::Result<serde_json::Value> {
    let Env { bin, plugins, client, meta } = *env;
    for s in [&a.sink, &b.sink] {
        s.reset(true);
        s.behave();
    }
    a.tenant.rate_per_sec = (cond == Some("c")).then_some(2);
    let dir = std::env::temp_dir().join(format!("herald-bench-fair-{}-{}", std::process::id(), now_ns()));
    std::fs::create_dir_all(&dir)?;
    let b_addr = b.tenant.sink.expect("B's sink");
    let cfg = gateway::write_config(&dir, plugins, b_addr, true, &[a.tenant.clone(), b.tenant.clone()], None, true, 0, None)?;
    let mut gw = Gateway::start(bin, &cfg, &dir, meta).await?;
    eprintln!("fairness [{}]: gateway pid {} on {}", describe(cond), gw.pid, gw.addr);
    let (done, killed, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let guard = rss_guard(gw.pid, done.clone(), killed.clone(), peak.clone());

    match cond {
        Some("a") => a.sink.throttle(25_000_000_000, 20),
        Some("b") => a.sink.hang(p.window.as_nanos() as u64, 30_000),
        _ => {}
    }
    // A's load, next to B's trickle.
    let cpu0 = (gateway::MachineCpu::read(), gw.cpu_seconds(), gateway::cpu_seconds("/proc/self/stat"));
    let t0 = now_ns();
    let (a_requests, a_recipients, a_shared) = cond.map_or((0, 0, 0), a_load);
    let load_a = Load::new(client, gw.addr);
    let a_task = {
        let (load_a, keys) = (load_a.clone(), a.auth());
        tokio::spawn(async move {
            let body_of = move |i: u64| (i * a_recipients, a_recipients, body_with_variables(i * a_recipients, a_recipients, a_shared));
            e2e::closed_loop(&load_a, &keys, a_requests, A_CLIENTS, body_of).await
        })
    };
    let load_b = Load::new(client, gw.addr);
    let b_total = (p.rate * p.window.as_secs_f64()).round().max(1.0) as u64;
    let (b_accepted, b_ingest) = e2e::open_loop(&load_b, &b.auth(), b_total, p.rate, |i| (i, 1, e2e::message_body(Shape::Webhook, i, 1))).await;
    let window_end = now_ns();
    // B's last deliveries (bounded).
    let b_target: u64 = b_accepted.iter().map(|x| x.count).sum();
    let settle_until = now_ns() + B_SETTLE.as_nanos() as u64;
    while b.sink.unique.load(Ordering::SeqCst) < b_target && now_ns() < settle_until && gw.exited().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (b_lat, b_missing) = arrival_latencies(&b_accepted, &b.sink.take_arrivals());
    // A: its requests, then its deliveries until drained or the bound.
    let (a_accepted, a_ingest) = a_task.await.unwrap_or_default();
    let a_target: u64 = a_accepted.iter().map(|x| x.count).sum();
    let drain_until = window_end + p.drain.as_nanos() as u64;
    while a.sink.unique.load(Ordering::SeqCst) < a_target && now_ns() < drain_until && gw.exited().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_arrivals = a.sink.take_arrivals();
    let a_delivered = a_arrivals.len() as u64;
    let a_drained_s = (a_target > 0 && a_delivered >= a_target).then(|| a_arrivals.values().max().map_or(0.0, |l| l.saturating_sub(t0) as f64 / 1e9));
    let (a_throttled, a_hung) = (a.sink.throttled.load(Ordering::SeqCst), a.sink.hung.load(Ordering::SeqCst));
    a.sink.behave();
    done.store(true, Ordering::SeqCst);
    let _ = guard.await;
    let cpu1 = (gateway::MachineCpu::read(), gw.cpu_seconds(), gateway::cpu_seconds("/proc/self/stat"));
    // CPU used by neither the gateway nor the bench over the condition: > ~1 s means it was disturbed.
    let other_cpu_s = match (cpu0, cpu1) {
        ((Some(m0), Some(g0), Some(b0)), (Some(m1), Some(g1), Some(b1))) => Some((m1.since(&m0).busy() - (g1 - g0) - (b1 - b0)).max(0.0)),
        _ => None,
    };
    let measured_s = (now_ns() - t0) as f64 / 1e9;
    let peak_rss_kib = gw.vm_hwm_kib().or(Some(peak.load(Ordering::SeqCst)));
    let exited = gw.exited();
    let stderr_path = gw.stderr_path.clone();
    let stopped = gw.stop().await;
    let log = gateway::digest_log(&stderr_path, 10);
    let (fa, fb) = (load_a.take_failures(), load_b.take_failures());
    let refused = (a_accepted.is_empty() && a_requests > 0).then(|| fa.samples.first().map(|s| refusal(s))).flatten();
    let b_slowest = slowest(&b_lat, t0);
    let b_latency = Latency::from_ns(b_lat.into_iter().map(|(_, l)| l).collect());
    let killed = killed.load(Ordering::SeqCst);
    // A WARN "drain timed out" is expected when A still has work at the stop.
    if !killed && log.error == 0 && stopped.clean {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("  temp dir kept: {}", dir.display());
    }
    Ok(serde_json::json!({
        "condition": cond.unwrap_or("solo"),
        "description": describe(cond),
        "b": {
            "requests": b_total, "accepted": b_accepted.len(), "missing": b_missing,
            "non_202": fb.statuses.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "transport_errors": fb.errors,
            "latency_to_receiver": b_latency.json(),
            "slowest": b_slowest,
            "ingest_latency": Latency::from_ns(b_ingest).json(),
        },
        "a": {
            "requests": a_requests, "recipients_per_request": a_recipients, "shared_variables_bytes": a_shared,
            "rate_per_sec": a.tenant.rate_per_sec,
            "accepted_requests": a_accepted.len(), "accepted_deliveries": a_target,
            "ingest_latency": Latency::from_ns(a_ingest).json(),
            "refused": refused.as_ref().map(|(s, c)| serde_json::json!({"status": s, "code": c})),
            "non_202": fa.statuses.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "failure_samples": fa.samples.iter().map(|s| s.chars().take(300).collect::<String>()).collect::<Vec<_>>(),
            "delivered": a_delivered,
            "drained_s_after_first_post": a_drained_s,
            "drain_wait_s": (p.window + p.drain).as_secs(),
            "receiver_answered_429": a_throttled,
            "receiver_hung": a_hung,
        },
        "measured_s": measured_s,
        "other_processes_cpu_s": other_cpu_s,
        "gateway": {
            "peak_rss_kib": peak_rss_kib,
            "killed_by_rss_guard": killed,
            "exited_early": exited,
            "shutdown": {"exit": stopped.exit, "clean": stopped.clean, "took_s": stopped.took.as_secs_f64()},
            "log": {"warn": log.warn, "error": log.error, "problems": log.problems},
        },
    }))
}

/// The solo run, then every condition; prints the table and returns the report.
pub async fn run(
    p: &Params,
    bin: &Path,
    plugins: &Path,
    client: &Client,
    meta: &Client,
    header: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut a = Side::new("tenant-a").await?;
    let b = Side::new("tenant-b").await?;
    eprintln!(
        "fairness: B sends {} requests/s (R = 1) for {} s per condition; A may drain for {} s more; receivers A {} B {}",
        p.rate,
        p.window.as_secs(),
        p.drain.as_secs(),
        a.tenant.sink.expect("sink"),
        b.tenant.sink.expect("sink")
    );
    let env = Env { bin, plugins, client, meta };
    let mut rows = vec![condition(p, &env, None, &mut a, &b).await?];
    for c in &p.conditions {
        rows.push(condition(p, &env, Some(c), &mut a, &b).await?);
    }
    let solo_p99 = rows[0]["b"]["latency_to_receiver"]["p99_ms"].as_f64();
    for r in rows.iter_mut() {
        let ratio = r["b"]["latency_to_receiver"]["p99_ms"].as_f64().zip(solo_p99).filter(|(_, s)| *s > 0.0).map(|(x, s)| x / s);
        r["b"]["p99_over_solo_p99"] = serde_json::json!(ratio);
    }
    print_table(p, &rows);
    Ok(serde_json::json!({
        "bench": "herald-bench",
        "shape": "fairness",
        "params": {
            "b_rate_per_sec": p.rate, "b_recipients_per_request": 1, "window_s": p.window.as_secs(), "a_drain_wait_s": p.drain.as_secs(),
            "a_clients": A_CLIENTS, "rss_guard_kib": RSS_GUARD_KIB, "latency_from": "B's POST due time (open loop) to the arrival at B's receiver",
            "target": "B's p99 <= 2x its solo p99 (reported, not asserted)",
        },
        "build": header,
        "machine": header["machine"],
        "conditions": rows,
    }))
}

fn print_table(p: &Params, rows: &[serde_json::Value]) {
    println!();
    println!("fairness  B: {} requests/s, R = 1, {} s window per condition, fresh gateway each", p.rate, p.window.as_secs());
    println!("{:<46} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6}  A", "condition", "B p50", "B p95", "B p99", "B max", "p99/solo", "B miss");
    for r in rows {
        let (bl, a) = (&r["b"]["latency_to_receiver"], &r["a"]);
        let ms = |k: &str| fmt_opt(bl[k].as_f64(), 1);
        let a_what = if r["condition"] == "solo" {
            "idle".to_string()
        } else if let Some(rf) = a["refused"].as_object() {
            format!("refused at ingest ({}, {})", rf["status"], rf["code"].as_str().unwrap_or("no code"))
        } else {
            format!(
                "{} of {} delivered{}{}{}",
                a["delivered"],
                a["accepted_deliveries"],
                a["drained_s_after_first_post"]
                    .as_f64()
                    .map_or(format!(", not drained within {} s", a["drain_wait_s"]), |s| format!(", drained in {s:.1} s")),
                if a["receiver_answered_429"].as_u64().unwrap_or(0) > 0 { format!(", {} × 429", a["receiver_answered_429"]) } else { String::new() },
                if a["receiver_hung"].as_u64().unwrap_or(0) > 0 { format!(", {} hung", a["receiver_hung"]) } else { String::new() },
            )
        };
        let killed = if r["gateway"]["killed_by_rss_guard"] == true { "  ** gateway killed: RSS over the guard **" } else { "" };
        println!(
            "{:<46} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>7}  {a_what}{killed}",
            r["description"].as_str().unwrap_or("?"),
            ms("p50_ms"),
            ms("p95_ms"),
            ms("p99_ms"),
            ms("max_ms"),
            r["b"]["p99_over_solo_p99"].as_f64().map_or("-".into(), |x| format!("{x:.2}x")),
            r["b"]["missing"],
            fmt_opt(r["other_processes_cpu_s"].as_f64(), 1),
        );
        let worst: Vec<String> = r["b"]["slowest"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["ms"].as_f64().unwrap_or(0.0) > 2.0 * bl["p50_ms"].as_f64().unwrap_or(f64::MAX))
            .map(|w| format!("{:.0} ms at {:.1} s", w["ms"].as_f64().unwrap_or(0.0), w["due_s"].as_f64().unwrap_or(0.0)))
            .collect();
        if !worst.is_empty() {
            println!("    B's slowest (over twice its p50), due at s into the condition: {}", worst.join(", "));
        }
    }
    println!("(B latencies in ms, from the POST's due time to the arrival at B's receiver; \"other s\": CPU-s used by neither the gateway nor the");
    println!(" bench during the condition, > ~1 s means it was disturbed; peak RSS and logs per condition in the JSON)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_are_listed_worst_first_with_their_due_time() {
        let lat = [(1_000_000_000, 5_000_000), (3_500_000_000, 90_000_000), (2_000_000_000, 7_000_000)];
        let w = slowest(&lat, 500_000_000);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0]["due_s"].as_f64(), w[0]["ms"].as_f64()), (Some(3.0), Some(90.0)));
        assert_eq!(w[2]["ms"].as_f64(), Some(5.0));
    }

    #[test]
    fn shared_variables_are_spliced_into_valid_json() {
        let v: serde_json::Value = serde_json::from_slice(&body_with_variables(0, 3, 10)).expect("json");
        assert_eq!(v["recipients"].as_array().map(Vec::len), Some(3));
        assert_eq!(v["variables"]["blob"].as_str().map(str::len), Some(10));
        assert_eq!(refusal(r#"413: {"error":{"code":"too_large","message":"x"}}"#), (Some(413), Some("too_large".into())));
    }
}
