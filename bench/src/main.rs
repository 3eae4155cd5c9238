//! `herald-bench`: measures Herald end to end against the raw limit of the
//! same machine, in the same run.
//!
//! 1. An in-process HTTP sink (the webhook receiver) counts deliveries and
//!    records when each delivery id arrives.
//! 2. Raw limit: a bare pooled hyper client POSTs the same deliveries, shaped
//!    as the webhook plugin sends them, straight to the sink.
//! 3. End to end: the gateway binary runs as a child with a fresh SQLite data
//!    dir and a webhook account pointing at the sink; C clients POST
//!    /v1/messages (R recipients each) until N notifications are accepted; the
//!    bench waits (bounded) until the sink has seen them all.
//!
//! Everything talks to 127.0.0.1 only; every loop is bounded in count and time.

mod e2e;
mod gateway;
mod http;
mod raw;
mod sink;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::stats::fmt_opt;

const USAGE: &str = "usage: herald-bench --gateway <herald-gateway binary> --plugins <dir with webhook.wasm>
                    [--notifications N]           notifications to send (default 200000)
                    [--recipients-per-request R]  recipients per POST /v1/messages (default 100)
                    [--concurrency C]             concurrent clients (default 32)
                    [--batch true|false]          webhook account batch mode (default true)
                    [--out report.json]           write the report as JSON
                    [--timeout-secs S]            wait for deliveries at most S s (default 300)
                    [--keep-temp]                 keep the temp config, database and gateway log
                    [--raw-rounds K]              raw-limit rounds, the median is reported (default 3)
                    [--skip-raw]                  skip the raw-limit phase

Gateway logging follows HERALD_LOG / HERALD_LOG_FORMAT if set (gateway default: info).";

struct Args {
    gateway: PathBuf,
    plugins: PathBuf,
    notifications: u64,
    per_request: u64,
    concurrency: usize,
    batch: bool,
    out: Option<PathBuf>,
    timeout: Duration,
    keep_temp: bool,
    skip_raw: bool,
    raw_rounds: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        gateway: PathBuf::new(),
        plugins: PathBuf::new(),
        notifications: 200_000,
        per_request: 100,
        concurrency: 32,
        batch: true,
        out: None,
        timeout: Duration::from_secs(300),
        keep_temp: false,
        skip_raw: false,
        raw_rounds: 3,
    };
    let (mut gateway, mut plugins) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => bail!("{name} needs a value\n\n{USAGE}"),
            }
        };
        match flag.as_str() {
            "--gateway" => gateway = Some(PathBuf::from(value("--gateway")?)),
            "--plugins" => plugins = Some(PathBuf::from(value("--plugins")?)),
            "--notifications" | "-n" => a.notifications = value("--notifications")?.parse().context("--notifications")?,
            "--recipients-per-request" | "-r" => {
                a.per_request = value("--recipients-per-request")?.parse().context("--recipients-per-request")?
            }
            "--concurrency" | "-c" => a.concurrency = value("--concurrency")?.parse().context("--concurrency")?,
            "--batch" => {
                a.batch = match value("--batch")?.as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => bail!("--batch: expected true or false, got {other:?}"),
                }
            }
            "--out" | "-o" => a.out = Some(PathBuf::from(value("--out")?)),
            "--timeout-secs" => a.timeout = Duration::from_secs(value("--timeout-secs")?.parse().context("--timeout-secs")?),
            "--keep-temp" => a.keep_temp = true,
            "--skip-raw" => a.skip_raw = true,
            "--raw-rounds" => a.raw_rounds = value("--raw-rounds")?.parse::<usize>().context("--raw-rounds")?.max(1),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    a.gateway = gateway.with_context(|| format!("--gateway is required\n\n{USAGE}"))?;
    a.plugins = plugins.with_context(|| format!("--plugins is required\n\n{USAGE}"))?;
    if a.notifications == 0 || a.per_request == 0 || a.concurrency == 0 {
        bail!("--notifications, --recipients-per-request and --concurrency must be at least 1");
    }
    if !a.gateway.is_file() {
        bail!("gateway binary {} not found (cargo build --release -p herald-gateway)", a.gateway.display());
    }
    if !a.plugins.join("webhook.wasm").is_file() {
        bail!("{} has no webhook.wasm (make plugins)", a.plugins.display());
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    stats::init_clock();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string());
    let cmd = |c: &str, a: &[&str]| {
        std::process::Command::new(c).args(a).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).filter(|s| !s.is_empty())
    };
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()));
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": model,
        "mem_total_kib": mem_kib,
        "kernel": cmd("uname", &["-r"]),
        "date_utc": cmd("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        // The repository this bench was built from (the measured binary may differ: see gateway_build).
        "git_rev": cmd("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"]),
        "git_dirty": cmd("git", &["-C", env!("CARGO_MANIFEST_DIR"), "status", "--porcelain", "--untracked-files=no"]).is_some(),
    })
}

/// Which build of the gateway was measured: modification time and SHA-256.
fn binary_id(path: &std::path::Path) -> serde_json::Value {
    let out = |c: &str, a: &[&str]| {
        std::process::Command::new(c).args(a).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).filter(|s| !s.is_empty())
    };
    let p = path.to_string_lossy();
    serde_json::json!({
        "modified_utc": out("date", &["-u", "-r", &p, "+%Y-%m-%dT%H:%M:%SZ"]),
        "sha256": out("sha256sum", &[&p]).and_then(|s| s.split_whitespace().next().map(str::to_string)),
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let machine = machine();
    let gateway_build = binary_id(&args.gateway);
    let plugin_build = binary_id(&args.plugins.join("webhook.wasm"));
    let client = http::client(args.concurrency);
    let meta_client = http::client(2);
    let sink = Arc::new(sink::Sink::default());
    let sink_addr = sink::start(sink.clone()).await?;
    eprintln!(
        "herald-bench: N={} R={} C={} batch={}  sink on {sink_addr}  ({} cpus, {})",
        args.notifications,
        args.per_request,
        args.concurrency,
        args.batch,
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("?"),
    );

    let mut raw_rounds: Vec<raw::RawResult> = Vec::new();
    if !args.skip_raw {
        eprintln!("raw limit: {} rounds of {} deliveries straight to the sink ...", args.raw_rounds, args.notifications);
        for _ in 0..args.raw_rounds {
            let r = raw::run(&client, &sink, sink_addr, args.notifications, args.per_request, args.concurrency, args.batch, Duration::from_secs(300)).await;
            eprintln!("  {} deliveries/s", fmt_opt(r.deliveries_per_sec, 0));
            raw_rounds.push(r);
        }
    }
    let round_rates: Vec<Option<f64>> = raw_rounds.iter().map(|r| r.deliveries_per_sec).collect();
    // The median round (by rate) stands for the raw limit.
    raw_rounds.sort_by(|a, b| a.deliveries_per_sec.unwrap_or(0.0).total_cmp(&b.deliveries_per_sec.unwrap_or(0.0)));
    let raw = if raw_rounds.is_empty() { None } else { Some(raw_rounds.swap_remove(raw_rounds.len() / 2)) };

    let dir = std::env::temp_dir().join(format!("herald-bench-{}-{}", std::process::id(), stats::now_ns()));
    std::fs::create_dir_all(&dir)?;
    let config = gateway::write_config(&dir, &args.plugins, sink_addr, args.batch)?;
    eprintln!("end to end: starting {} (temp dir {})", args.gateway.display(), dir.display());
    let mut gw = match gateway::Gateway::start(&args.gateway, &config, &dir, &meta_client).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("(temp dir kept: {})", dir.display());
            return Err(e);
        }
    };
    eprintln!("  gateway pid {} on {} (up in {:.2} s); sending ...", gw.pid, gw.addr, gw.startup.as_secs_f64());
    let rss_before_kib = gw.vm_rss_kib();
    let e = e2e::run(&client, &meta_client, &sink, &mut gw, args.notifications, args.per_request, args.concurrency, args.timeout, true).await;
    let peak_rss_kib = gw.vm_hwm_kib();
    let threads = gw.threads();
    let (gw_pid, gw_addr, startup, stderr_path, config_path) = (gw.pid, gw.addr, gw.startup, gw.stderr_path.clone(), gw.config_path.clone());
    let stdout_lines = gw.stdout_lines.clone();
    let stopped = gw.stop().await;
    let log = gateway::digest_log(&stderr_path, 30);
    let stdout_lines = stdout_lines.lock().expect("stdout").clone();

    let ratio = match (e.e2e_per_sec, raw.as_ref().and_then(|r| r.deliveries_per_sec)) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let m = &e.metrics;
    let hist = |name: &str| -> Vec<serde_json::Value> {
        // Every label set of a histogram: count, sum, mean.
        let mut out = Vec::new();
        for (series, count) in m.iter().filter(|(s, _)| s.starts_with(&format!("{name}_count"))) {
            let labels = series.split_once('{').map(|(_, l)| l.trim_end_matches('}')).unwrap_or("");
            let sum = m.iter().find(|(s, _)| *s == format!("{name}_sum{{{labels}}}") || (labels.is_empty() && *s == format!("{name}_sum"))).map(|(_, v)| *v);
            out.push(serde_json::json!({"labels": labels, "count": count, "sum_s": sum, "mean_ms": sum.filter(|_| *count > 0.0).map(|s| s / count * 1e3)}));
        }
        out
    };
    let plugin_calls = hist("herald_plugin_call_seconds");
    let provider = hist("herald_provider_latency_seconds");
    let gw_e2e = hist("herald_end_to_end_seconds");
    let max_depth = e.samples.iter().filter_map(|s| s.queue_depth).fold(None::<f64>, |a, v| Some(a.map_or(v, |a| a.max(v))));
    let max_inflight = e.samples.iter().filter_map(|s| s.inflight_batches).fold(None::<f64>, |a, v| Some(a.map_or(v, |a| a.max(v))));
    let outcomes: Vec<(String, f64)> = m
        .iter()
        .filter(|(s, _)| s.starts_with("herald_deliveries_total{"))
        .map(|(s, v)| (s.split("outcome=\"").nth(1).and_then(|x| x.split('"').next()).unwrap_or("?").to_string(), *v))
        .collect();
    // herald_plugin_failures_total by kind and function-less label set.
    let plugin_failures: Vec<(String, f64)> = m
        .iter()
        .filter(|(s, v)| s.starts_with("herald_plugin_failures_total{") && *v > 0.0)
        .map(|(s, v)| (s.trim_start_matches("herald_plugin_failures_total").to_string(), *v))
        .collect();
    let not_sent: f64 = outcomes.iter().filter(|(k, _)| k != "sent").map(|(_, v)| v).sum();
    let http_statuses: Vec<(String, f64)> =
        m.iter().filter(|(s, _)| s.starts_with("herald_http_requests_total{")).map(|(s, v)| (s.clone(), *v)).collect();
    let cores = machine["nproc"].as_u64().unwrap_or(1) as f64;

    // ---- human-readable report ----
    let mib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!();
    println!("herald-bench  {}  N={} R={} C={} batch={}", machine["date_utc"].as_str().unwrap_or("?"), args.notifications, args.per_request, args.concurrency, args.batch);
    println!("machine       {} cpus, {}", machine["nproc"], machine["cpu_model"].as_str().unwrap_or("?"));
    println!("gateway       {} (pid {gw_pid}, {gw_addr}, ready in {:.2} s), embedded SQLite, webhook plugin", args.gateway.display(), startup.as_secs_f64());
    println!(
        "builds        gateway {} sha256 {}…, webhook.wasm {}",
        gateway_build["modified_utc"].as_str().unwrap_or("?"),
        gateway_build["sha256"].as_str().map_or("?", |s| &s[..12.min(s.len())]),
        plugin_build["modified_utc"].as_str().unwrap_or("?"),
    );
    println!();
    println!("{:<34} {:>14} {:>10} {:>10} {:>10}", "phase", "per second", "p50 ms", "p99 ms", "max ms");
    if let Some(r) = &raw {
        println!(
            "{:<34} {:>14} {:>10} {:>10} {:>10}",
            format!("raw limit, median of {} (deliv.)", round_rates.len()),
            fmt_opt(r.deliveries_per_sec, 0),
            fmt_opt(r.latency.p50_ms, 2),
            fmt_opt(r.latency.p99_ms, 2),
            fmt_opt(r.latency.max_ms, 2)
        );
    }
    println!(
        "{:<34} {:>14} {:>10} {:>10} {:>10}",
        "ingest (accepted; req lat.)",
        fmt_opt(e.ingest_per_sec, 0),
        fmt_opt(e.ingest_latency.p50_ms, 2),
        fmt_opt(e.ingest_latency.p99_ms, 2),
        fmt_opt(e.ingest_latency.max_ms, 2)
    );
    println!(
        "{:<34} {:>14} {:>10} {:>10} {:>10}",
        "end to end (deliveries; added)",
        fmt_opt(e.e2e_per_sec, 0),
        fmt_opt(e.added_latency.p50_ms, 1),
        fmt_opt(e.added_latency.p99_ms, 1),
        fmt_opt(e.added_latency.max_ms, 1)
    );
    println!();
    println!("e2e / raw               {}", ratio.map_or("-".into(), |r| format!("{:.1} %", r * 100.0)));
    if !round_rates.is_empty() {
        println!("raw rounds              {} deliveries/s", round_rates.iter().map(|r| fmt_opt(*r, 0)).collect::<Vec<_>>().join(", "));
    }
    println!("gateway peak RSS        {} (VmHWM; {} at start, {} threads)", mib(peak_rss_kib), mib(rss_before_kib), threads.map_or("-".into(), |t| t.to_string()));
    let cpu_wall = e.cpu_interval_ns.max(1) as f64 / 1e9;
    let other = e.machine.map(|m| (m.busy() - e.gateway_cpu_s.unwrap_or(0.0) - e.bench_cpu_s.unwrap_or(0.0)).max(0.0));
    println!(
        "CPU during e2e          over {:.2} s x {} cpus: gateway {} s ({:.0} % of one cpu), bench {} s, rest of the machine {} s",
        cpu_wall,
        cores,
        fmt_opt(e.gateway_cpu_s, 1),
        e.gateway_cpu_s.unwrap_or(0.0) / cpu_wall * 100.0,
        fmt_opt(e.bench_cpu_s, 1),
        fmt_opt(other, 1),
    );
    if let Some(m) = e.machine {
        println!(
            "  machine (/proc/stat)  user {:.1} s, system {:.1} s, irq+softirq {:.1} s, iowait {:.1} s, steal {:.1} s, idle {:.1} s",
            m.user, m.system, m.irq, m.iowait, m.steal, m.idle
        );
    }
    println!(
        "  gateway threads       {}",
        e.gateway_threads
            .iter()
            .filter(|t| t.2 >= 0.05)
            .map(|(n, c, t, m)| format!("{n} x{c}: {t:.1} s (busiest {m:.1} s)"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    if let Some(r) = &raw {
        println!(
            "CPU during raw limit    over {:.2} s: bench {} s, rest of the machine {} s",
            r.elapsed_ns as f64 / 1e9,
            fmt_opt(r.bench_cpu_s, 2),
            fmt_opt(r.machine.zip(r.bench_cpu_s).map(|(m, b)| (m.busy() - b).max(0.0)), 2),
        );
    }
    println!(
        "timing                  ingest span {:.2} s, e2e span {:.2} s, last delivery {} s after the last 202",
        e.ingest_span_ns as f64 / 1e9,
        e.e2e_span_ns as f64 / 1e9,
        fmt_opt(e.drain_after_ingest_ns.map(|n| n as f64 / 1e9), 2)
    );
    println!(
        "deliveries              requested {}, accepted {} in {} requests, arrived {}, missing {}, duplicates {}, unknown ids {}, bad bodies {}, sink requests {}{}",
        e.requested, e.accepted, e.accepted_requests, e.arrived_unique, e.missing, e.duplicates, e.unknown_ids, e.bad_bodies, e.sink_requests,
        if e.timed_out { format!("  ** TIMED OUT after {} s **", args.timeout.as_secs()) } else { String::new() }
    );
    if let Some(x) = &e.gateway_exited_early {
        println!("** gateway exited during the run: {x} **");
    }
    if !e.statuses.is_empty() || e.transport_errors > 0 {
        println!("ingest problems         non-202 {:?}, transport errors {}, abandoned requests {}", e.statuses, e.transport_errors, e.abandoned_requests);
        for s in &e.failure_samples {
            println!("                        {s}");
        }
    }
    if let Some(r) = raw.as_ref().filter(|r| r.errors > 0 || r.non_200 > 0 || r.timed_out || r.sink_deliveries != r.deliveries) {
        println!("raw problems            errors {}, non-200 {}, timed out {}, sink saw {} of {}", r.errors, r.non_200, r.timed_out, r.sink_deliveries, r.deliveries);
    }
    println!("queue                   max herald_queue_depth {}, max herald_inflight_batches {}", fmt_opt(max_depth, 0), fmt_opt(max_inflight, 0));
    for (name, rows) in [("plugin calls", &plugin_calls), ("provider latency", &provider), ("gateway e2e histogram", &gw_e2e)] {
        for r in rows.iter() {
            println!(
                "{:<23} {{{}}} count {} mean {} ms",
                name,
                r["labels"].as_str().unwrap_or(""),
                r["count"],
                fmt_opt(r["mean_ms"].as_f64(), 3)
            );
        }
    }
    println!("delivery outcomes       {}", outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    if !plugin_failures.is_empty() {
        println!("plugin failures         {}", plugin_failures.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    }
    println!("gateway shutdown        {} in {:.2} s{}", stopped.exit, stopped.took.as_secs_f64(), if stopped.clean { "" } else { "  ** not clean **" });
    println!("gateway log             {} lines: {} INFO, {} WARN, {} ERROR, {} other", log.lines, log.info, log.warn, log.error, log.other);
    for p in &log.problems {
        println!("    {}", p.chars().take(300).collect::<String>());
    }

    let report = serde_json::json!({
        "bench": "herald-bench",
        "params": {
            "notifications": args.notifications,
            "recipients_per_request": args.per_request,
            "concurrency": args.concurrency,
            "batch": args.batch,
            "timeout_s": args.timeout.as_secs(),
            "gateway": args.gateway.display().to_string(),
            "gateway_build": gateway_build,
            "plugins": args.plugins.display().to_string(),
            "webhook_plugin_build": plugin_build,
            "backend": "sqlite (embedded)",
            "plugin": "webhook",
            "dispatch": {"max_batch": 100, "linger_ms": 10, "concurrency": 64},
        },
        "machine": machine,
        "raw_limit": raw.as_ref().map(|r| {
            let mut j = r.json();
            j["note"] = serde_json::json!("median round by deliveries_per_sec");
            j["rounds_deliveries_per_sec"] = serde_json::json!(round_rates);
            j
        }),
        "end_to_end": e.json(),
        "e2e_over_raw": ratio,
        "gateway": {
            "pid": gw_pid,
            "startup_s": startup.as_secs_f64(),
            "peak_rss_kib": peak_rss_kib,
            "rss_at_start_kib": rss_before_kib,
            "threads": threads,
            "plugin_calls": plugin_calls,
            "provider_latency": provider,
            "end_to_end_histogram": gw_e2e,
            "max_queue_depth": max_depth,
            "max_inflight_batches": max_inflight,
            "plugin_failures": plugin_failures.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "delivery_outcomes": outcomes.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "http_requests": http_statuses.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "shutdown": {"exit": stopped.exit, "clean": stopped.clean, "took_s": stopped.took.as_secs_f64()},
            "log": {"lines": log.lines, "info": log.info, "warn": log.warn, "error": log.error, "other": log.other, "problems": log.problems},
            "stdout": stdout_lines,
        },
        "bench_peak_rss_kib": gateway::self_vm_hwm_kib(),
    });
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("report written to {}", out.display());
    }
    let trouble = log.warn + log.error > 0 || not_sent > 0.0 || !plugin_failures.is_empty() || e.missing > 0 || e.timed_out || !stopped.clean || e.duplicates > 0 || e.unknown_ids > 0;
    if args.keep_temp || trouble {
        eprintln!("temp dir kept: {} (config {}, gateway log {})", dir.display(), config_path.display(), stderr_path.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
