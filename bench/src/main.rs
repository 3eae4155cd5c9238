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
//! With `--backend kafka-cql` the gateway runs distributed instead: Kafka for
//! the queue and Cassandra/ScyllaDB (CQL) for storage, with a fresh topic,
//! consumer group and keyspace per run, and `--dispatchers K` processes
//! dispatching (the first one also takes the load).
//!
//! Everything talks to 127.0.0.1 only (and the given brokers / CQL nodes);
//! every loop is bounded in count and time.

mod e2e;
mod fairness;
mod gateway;
mod http;
mod raw;
mod sink;
mod smtp;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::stats::fmt_opt;

/// Measures Herald end to end against the raw limit of the same machine, in
/// the same run: a webhook (or SMTP) sink, a bare client's raw limit, then the
/// gateway binary under load.
#[derive(clap::Parser)]
#[command(name = "herald-bench", version, after_help = "Gateway logging follows HERALD_LOG / HERALD_LOG_FORMAT if set (gateway default: info).")]
struct Cli {
    /// The herald-gateway binary to run.
    #[arg(long, value_name = "BINARY")]
    gateway: PathBuf,
    /// Directory with webhook.wasm (email.wasm for --shape email).
    #[arg(long, value_name = "DIR")]
    plugins: PathBuf,
    /// Notifications to send.
    #[arg(short = 'n', long, default_value_t = 200_000)]
    notifications: u64,
    /// Recipients per POST /v1/messages (with --shape email: K, the recipients per message).
    #[arg(short = 'r', long = "recipients-per-request", default_value_t = 100)]
    per_request: u64,
    /// Concurrent clients.
    #[arg(short = 'c', long, default_value_t = 32)]
    concurrency: usize,
    /// Webhook account batch mode.
    #[arg(long, default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set, value_name = "true|false")]
    batch: bool,
    /// Write the report as JSON.
    #[arg(short = 'o', long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Wait for deliveries at most S seconds.
    #[arg(long = "timeout-secs", default_value_t = 300, value_name = "S")]
    timeout_secs: u64,
    /// Keep the temp config, database and gateway log.
    #[arg(long)]
    keep_temp: bool,
    /// Raw-limit rounds; the median is reported.
    #[arg(long, default_value_t = 3, value_name = "K")]
    raw_rounds: usize,
    /// Skip the raw-limit phase.
    #[arg(long)]
    skip_raw: bool,
    /// Price of a webhook delivery in minor units (0: free, no ledger entries);
    /// with P > 0 every delivery is debited and the report checks that the
    /// tenants' balances equal -P x deliveries.
    #[arg(long, default_value_t = 0, value_name = "P")]
    price_minor: u32,
    /// The account's channel; email: an in-process SMTP receiver, raw limit with lettre;
    /// fairness: two tenants on one gateway, B's trickle while A is in trouble (see --fair-*).
    #[arg(long, default_value = "webhook", value_parser = ["webhook", "email", "fairness"])]
    shape: String,
    /// Open loop: send N requests/s on a fixed schedule (request i due at
    /// start + i/N; latencies count from the due time) instead of C closed-loop clients.
    #[arg(long, value_name = "N", conflicts_with = "rate_of_max")]
    rate: Option<f64>,
    /// First a closed-loop run to measure the maximum (end-to-end deliveries/s ÷ R
    /// requests/s), then an open-loop run at each of these fractions of it.
    #[arg(long = "rate-of-max", value_name = "F,F,...", value_delimiter = ',')]
    rate_of_max: Vec<f64>,
    /// Peak RSS under a backlog: the account is limited to 1 send/s, so the N
    /// notifications pile up in the queue; the bench reads VmHWM once ingest is
    /// over and does not wait for the deliveries.
    #[arg(long)]
    backlog: bool,
    /// E-mail content: identical (every notification the same) or personalised
    /// (a variable per recipient, one message each).
    #[arg(long, default_value = "identical", value_parser = ["identical", "personalised", "personalized"])]
    content: String,
    /// E-mail smtp.max_recipients_per_message.
    #[arg(long = "max-rcpt", default_value_t = 50, value_name = "M")]
    max_rcpt: u32,
    /// E-mail smtp.max_connections, and the raw client's connections.
    #[arg(long, default_value_t = 4, value_name = "X")]
    smtp_connections: u32,
    /// Tenants the requests rotate over; the Kafka partition key is the
    /// tenant, so one tenant is one partition and one dispatching process.
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Fairness: tenant B's open-loop rate, requests/s (R = 1).
    #[arg(long = "fair-rate", default_value_t = 20.0, value_name = "N", help_heading = "Fairness shape")]
    fair_rate: f64,
    /// Fairness: how long B is measured in each condition.
    #[arg(long = "fair-window-secs", default_value_t = 30, value_name = "S", help_heading = "Fairness shape")]
    fair_window_secs: u64,
    /// Fairness: after the window, wait at most this long for A to drain.
    #[arg(long = "fair-drain-secs", default_value_t = 20, value_name = "S", help_heading = "Fairness shape")]
    fair_drain_secs: u64,
    /// Fairness: the conditions of tenant A to run (a 429 Retry-After, b hanging
    /// receiver, c 2/s account with a queue, d 10 000 recipients, e the same + 2 MB variables).
    #[arg(long = "fair-conditions", default_value = "a,b,c,d,e", value_name = "a,b,...", value_delimiter = ',', help_heading = "Fairness shape")]
    fair_conditions: Vec<String>,
    /// Distributed run: embedded (SQLite queue and store) or kafka-cql.
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "sqlite", "kafka-cql"], help_heading = "Distributed run")]
    backend: String,
    /// Kafka brokers.
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT,...", help_heading = "Distributed run")]
    brokers: String,
    /// CQL contact points.
    #[arg(long, default_value = "127.0.0.1:9042", value_name = "HOST:PORT,...", help_heading = "Distributed run")]
    cql: String,
    /// Gateway processes that dispatch.
    #[arg(long, default_value_t = 1, value_name = "K", help_heading = "Distributed run")]
    dispatchers: usize,
    /// Whether the process taking the load also dispatches (true: K processes
    /// in all; false: one ingest-only process + K).
    #[arg(long, default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set, value_name = "true|false", help_heading = "Distributed run")]
    ingest_dispatch: bool,
    /// Partitions of the fresh topic.
    #[arg(long, default_value_t = 8, value_name = "P", help_heading = "Distributed run")]
    partitions: u32,
    /// queue.kafka.tenant_shards (1: key = tenant).
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Distributed run")]
    tenant_shards: u32,
    /// storage.cql.config_cache_ms (0 = off).
    #[arg(long = "config-cache-ms", default_value_t = 1000, value_name = "MS", help_heading = "Distributed run")]
    config_cache_ms: u64,
    /// Wait after all processes are ready, for the consumer group to settle.
    #[arg(long = "settle-secs", default_value_t = 5, value_name = "S", help_heading = "Distributed run")]
    settle_secs: u64,
}

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
    tenants: usize,
    price_minor: i64,
    distributed: bool,
    brokers: String,
    cql: String,
    dispatchers: usize,
    ingest_dispatch: bool,
    partitions: u32,
    tenant_shards: u32,
    config_cache_ms: u64,
    settle: Duration,
    email: bool,
    identical: bool,
    max_rcpt: u32,
    smtp_connections: u32,
    rate: Option<f64>,
    rate_of_max: Vec<f64>,
    backlog: bool,
    fairness: Option<fairness::Params>,
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let c = <Cli as clap::Parser>::parse();
    let a = Args {
        gateway: c.gateway,
        plugins: c.plugins,
        notifications: c.notifications,
        per_request: c.per_request,
        concurrency: c.concurrency,
        batch: c.batch,
        out: c.out,
        timeout: Duration::from_secs(c.timeout_secs),
        keep_temp: c.keep_temp,
        skip_raw: c.skip_raw,
        raw_rounds: c.raw_rounds.max(1),
        tenants: c.tenants,
        price_minor: c.price_minor.into(),
        distributed: c.backend == "kafka-cql",
        brokers: c.brokers,
        cql: c.cql,
        dispatchers: c.dispatchers,
        ingest_dispatch: c.ingest_dispatch,
        partitions: c.partitions,
        tenant_shards: c.tenant_shards,
        config_cache_ms: c.config_cache_ms,
        settle: Duration::from_secs(c.settle_secs),
        email: c.shape == "email",
        identical: c.content == "identical",
        max_rcpt: c.max_rcpt,
        smtp_connections: c.smtp_connections,
        rate: c.rate,
        rate_of_max: c.rate_of_max,
        backlog: c.backlog,
        fairness: (c.shape == "fairness").then(|| fairness::Params {
            rate: c.fair_rate,
            window: Duration::from_secs(c.fair_window_secs),
            drain: Duration::from_secs(c.fair_drain_secs),
            conditions: c.fair_conditions,
        }),
    };
    if a.notifications == 0 || a.per_request == 0 || a.concurrency == 0 || a.tenants == 0 || a.dispatchers == 0 || a.partitions == 0 {
        bail!("--notifications, --recipients-per-request, --concurrency, --tenants, --dispatchers and --partitions must be at least 1");
    }
    if !a.distributed && (a.dispatchers != 1 || !a.ingest_dispatch) {
        bail!("--dispatchers and --ingest-dispatch need --backend kafka-cql (the embedded queue has one owner)");
    }
    if !a.gateway.is_file() {
        bail!("gateway binary {} not found (cargo build --release -p herald-gateway)", a.gateway.display());
    }
    let wasm = if a.email { "email.wasm" } else { "webhook.wasm" };
    if !a.plugins.join(wasm).is_file() {
        bail!("{} has no {wasm} (make plugins)", a.plugins.display());
    }
    if a.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) || a.rate_of_max.iter().any(|f| !(*f > 0.0 && f.is_finite())) {
        bail!("--rate and --rate-of-max must be positive");
    }
    if let Some(f) = &a.fairness {
        if a.distributed || f.rate.is_nan() || f.rate <= 0.0 || f.window.is_zero() {
            bail!("--shape fairness runs embedded, with --fair-rate > 0 and --fair-window-secs > 0");
        }
        if let Some(c) = f.conditions.iter().find(|c| !fairness::CONDITIONS.contains(&c.as_str())) {
            bail!("unknown fairness condition {c:?} (a, b, c, d, e)");
        }
    }
    if a.email && !(1..=1000).contains(&a.max_rcpt) || !(1..=64).contains(&a.smtp_connections) {
        bail!("--max-rcpt must be 1..1000 and --smtp-connections 1..64");
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

/// The time now, UTC, to the second (from `date`).
fn utc_now() -> Option<String> {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
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
        "date_utc": utc_now(),
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
    let plugin_name = if args.email { "email" } else { "webhook" };
    let plugin_build = binary_id(&args.plugins.join(format!("{plugin_name}.wasm")));
    let shape = if args.email { e2e::Shape::Email { identical: args.identical } } else { e2e::Shape::Webhook };
    let email_account =
        args.email.then_some(gateway::EmailAccount { max_recipients_per_message: args.max_rcpt, max_connections: args.smtp_connections });
    let client = http::client(args.concurrency);
    let meta_client = http::client(2);
    if let Some(f) = &args.fairness {
        let header = serde_json::json!({"machine": machine, "gateway_build": gateway_build, "webhook_plugin_build": plugin_build});
        let report = fairness::run(f, &args.gateway, &args.plugins, &client, &meta_client, header).await?;
        return write_report(args.out.as_deref(), &report);
    }
    let sink = Arc::new(sink::Sink::default());
    let http_sink_addr = sink::start(sink.clone()).await?;
    // The e-mail shape: the gateway and the raw client talk SMTP to the receiver.
    let sink_addr = if args.email { smtp::start(sink.clone()).await? } else { http_sink_addr };
    if args.email {
        eprintln!(
            "e-mail shape: {} content, smtp.max_recipients_per_message = {}, smtp.max_connections = {}",
            if args.identical { "identical" } else { "personalised" },
            args.max_rcpt,
            args.smtp_connections
        );
    }
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
            let r = if args.email {
                let per_message = if args.identical { args.max_rcpt as u64 } else { 1 };
                smtp::raw(&sink, sink_addr, args.notifications, per_message, args.identical, args.smtp_connections, Duration::from_secs(300)).await
            } else {
                raw::run(&client, &sink, sink_addr, args.notifications, args.per_request, args.concurrency, args.batch, Duration::from_secs(300))
                    .await
            };
            eprintln!("  {} deliveries/s", fmt_opt(r.deliveries_per_sec, 0));
            raw_rounds.push(r);
        }
    }
    let round_rates: Vec<Option<f64>> = raw_rounds.iter().map(|r| r.deliveries_per_sec).collect();
    // The median round (by rate) stands for the raw limit.
    raw_rounds.sort_by(|a, b| a.deliveries_per_sec.unwrap_or(0.0).total_cmp(&b.deliveries_per_sec.unwrap_or(0.0)));
    let raw = if raw_rounds.is_empty() { None } else { Some(raw_rounds.swap_remove(raw_rounds.len() / 2)) };

    let cx =
        Ctx { args, machine, gateway_build, plugin_build, plugin_name, shape, email_account, client, meta_client, sink, sink_addr, raw, round_rates };
    let report = match &cx.args.rate_of_max[..] {
        [] => measure(&cx, cx.args.rate).await?,
        fractions => rate_of_max(&cx, fractions).await?,
    };
    write_report(cx.args.out.as_deref(), &report)
}

fn write_report(out: Option<&std::path::Path>, report: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(out) = out {
        std::fs::write(out, serde_json::to_string_pretty(report)?).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("report written to {}", out.display());
    }
    Ok(())
}

/// How long a `--backlog` run waits for deliveries after ingest (the backlog
/// is largest right then; the 1/s account would take days to drain it).
const BACKLOG_SETTLE: Duration = Duration::from_secs(5);

/// `--rate-of-max`: a closed-loop run measures the maximum (end-to-end
/// deliveries/s ÷ R = requests/s), then one open-loop run per fraction of it.
/// Prints a summary and returns every run's report.
async fn rate_of_max(cx: &Ctx, fractions: &[f64]) -> anyhow::Result<serde_json::Value> {
    eprintln!("rate of max: closed-loop run first, to measure the maximum");
    let closed = measure(cx, None).await?;
    let per_request = cx.args.per_request as f64;
    let Some(max_rps) = closed["end_to_end"]["end_to_end"]["deliveries_per_sec"].as_f64().map(|d| d / per_request) else {
        bail!("the closed-loop run delivered nothing: no maximum to take fractions of");
    };
    let mut rows = vec![(None, closed)];
    for &f in fractions {
        eprintln!("\nrate of max: open loop at {:.0} % of {max_rps:.1} requests/s", f * 100.0);
        rows.push((Some(f), measure(cx, Some(f * max_rps)).await?));
    }
    let lat = |r: &serde_json::Value, which: &str| {
        let l = if which == "added" { &r["end_to_end"]["end_to_end"]["added_latency"] } else { &r["end_to_end"]["ingest"]["request_latency"] };
        [l["p50_ms"].as_f64(), l["p99_ms"].as_f64(), l["p99_9_ms"].as_f64()]
    };
    println!();
    println!(
        "rate of max  (R = {}; maximum = closed-loop end to end {max_rps:.1} requests/s = {:.0} deliveries/s)",
        cx.args.per_request,
        max_rps * per_request
    );
    println!(
        "{:<22} {:>12} {:>12} {:>28} {:>28} {:>8} {:>12}",
        "run", "requests/s", "delivered/s", "added p50 / p99 / p99.9 ms", "ingest p50 / p99 / p99.9 ms", "missing", "other CPU-s"
    );
    let mut summary = Vec::new();
    for (f, r) in &rows {
        let p3 = |v: [Option<f64>; 3]| v.iter().map(|x| fmt_opt(*x, 1)).collect::<Vec<_>>().join(" / ");
        let sent_rps = r["params"]["load"]["requests_per_sec"].as_f64();
        println!(
            "{:<22} {:>12} {:>12} {:>28} {:>28} {:>8} {:>12}",
            f.map_or("closed loop (max)".to_string(), |f| format!("open loop {:.0} % of max", f * 100.0)),
            fmt_opt(sent_rps.or(Some(max_rps)), 1),
            fmt_opt(r["end_to_end"]["end_to_end"]["deliveries_per_sec"].as_f64(), 0),
            p3(lat(r, "added")),
            p3(lat(r, "ingest")),
            r["end_to_end"]["missing"],
            // CPU used by neither the gateway nor the bench: > ~1 s means the run was disturbed.
            fmt_opt(r["end_to_end"]["cpu_seconds"]["other_processes"].as_f64(), 1),
        );
        summary.push(serde_json::json!({
            "fraction_of_max": f,
            "requests_per_sec": sent_rps,
            "deliveries_per_sec": r["end_to_end"]["end_to_end"]["deliveries_per_sec"],
            "added_latency": r["end_to_end"]["end_to_end"]["added_latency"],
            "ingest_latency": r["end_to_end"]["ingest"]["request_latency"],
            "missing": r["end_to_end"]["missing"],
            "other_processes_cpu_s": r["end_to_end"]["cpu_seconds"]["other_processes"],
            "measured_utc": r["measured_utc"],
        }));
    }
    Ok(serde_json::json!({
        "bench": "herald-bench",
        "rate_of_max": {
            "recipients_per_request": cx.args.per_request,
            "max_requests_per_sec": max_rps,
            "max_from": "the closed-loop run's end-to-end deliveries/s divided by R",
            "runs": summary,
        },
        "runs": rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
    }))
}

/// What every measurement of one invocation shares: the arguments, the
/// machine, the clients, the sink and the raw limit (measured once).
struct Ctx {
    args: Args,
    machine: serde_json::Value,
    gateway_build: serde_json::Value,
    plugin_build: serde_json::Value,
    plugin_name: &'static str,
    shape: e2e::Shape,
    email_account: Option<gateway::EmailAccount>,
    client: http::Client,
    meta_client: http::Client,
    sink: Arc<sink::Sink>,
    sink_addr: std::net::SocketAddr,
    raw: Option<raw::RawResult>,
    round_rates: Vec<Option<f64>>,
}

/// One end-to-end measurement on fresh gateway process(es): start, load
/// (closed loop, or open loop at `rate` requests/s), stop; prints the report
/// and returns it as JSON.
async fn measure(cx: &Ctx, rate: Option<f64>) -> anyhow::Result<serde_json::Value> {
    let Ctx { args, machine, gateway_build, plugin_build, plugin_name, shape, email_account, client, meta_client, sink, sink_addr, raw, round_rates } =
        cx;
    let (plugin_name, shape, email_account, sink_addr) = (*plugin_name, *shape, *email_account, *sink_addr);
    let measured_utc = utc_now();
    let dir = std::env::temp_dir().join(format!("herald-bench-{}-{}", std::process::id(), stats::now_ns()));
    std::fs::create_dir_all(&dir)?;
    let dist =
        args.distributed.then(|| gateway::Distributed::new(&args.brokers, &args.cql, args.partitions, args.tenant_shards, args.config_cache_ms));
    let mut tenants = gateway::tenants(args.tenants, dist.as_ref().map_or(1, |d| d.partitions));
    if args.backlog {
        // One send a second: the load piles up in the queue.
        tenants.iter_mut().for_each(|t| t.rate_per_sec = Some(1));
    }
    // (role, dispatch enabled) per process; the first one takes the load.
    let mut roles: Vec<(&str, bool)> = Vec::new();
    if args.ingest_dispatch {
        roles.push((if dist.is_some() { "ingest+dispatch" } else { "gateway" }, true));
        roles.extend((1..args.dispatchers).map(|_| ("dispatch", true)));
    } else {
        roles.push(("ingest", false));
        roles.extend((0..args.dispatchers).map(|_| ("dispatch", true)));
    }
    if let Some(d) = &dist {
        eprintln!(
            "distributed: Kafka {} topic {} ({} partitions) group {}, CQL {} keyspace {}, {} processes ({}), {} tenant(s)",
            d.brokers,
            d.topic,
            d.partitions,
            d.group,
            d.cql.join(","),
            d.keyspace,
            roles.len(),
            roles.iter().map(|r| r.0).collect::<Vec<_>>().join(", "),
            tenants.len()
        );
    }
    let services = if dist.is_some() { gateway::find_services() } else { Vec::new() };
    let mut gws: Vec<gateway::Gateway> = Vec::new();
    for (i, (role, dispatch)) in roles.iter().enumerate() {
        // The embedded run keeps its single process in the temp dir itself.
        let node_dir = if dist.is_some() { dir.join(format!("node-{i}")) } else { dir.clone() };
        std::fs::create_dir_all(&node_dir)?;
        let cfg = gateway::write_config(
            &node_dir,
            &args.plugins,
            sink_addr,
            args.batch,
            &tenants,
            dist.as_ref(),
            *dispatch,
            args.price_minor,
            email_account,
        )?;
        eprintln!("end to end: starting {} as {role} (temp dir {})", args.gateway.display(), node_dir.display());
        // One at a time: the first creates the topic and the keyspace.
        match gateway::Gateway::start(&args.gateway, &cfg, &node_dir, meta_client).await {
            Ok(g) => {
                eprintln!("  gateway pid {} on {} (up in {:.2} s)", g.pid, g.addr, g.startup.as_secs_f64());
                gws.push(g);
            }
            Err(e) => {
                for g in gws.drain(..) {
                    let _ = g.stop().await;
                }
                eprintln!("(temp dir kept: {})", dir.display());
                return Err(e);
            }
        }
    }
    if dist.is_some() && !args.settle.is_zero() {
        eprintln!("  waiting {} s for the consumer group to settle", args.settle.as_secs());
        tokio::time::sleep(args.settle).await;
    }
    match rate {
        Some(r) => eprintln!("  sending, open loop at {r:.1} requests/s ({:.0} notifications/s) ...", r * args.per_request as f64),
        None => eprintln!("  sending, closed loop with {} clients ...", args.concurrency),
    }
    let rss_before: Vec<Option<u64>> = gws.iter().map(|g| g.vm_rss_kib()).collect();
    let e = e2e::run(
        client,
        meta_client,
        sink,
        &mut gws,
        &tenants,
        &services,
        args.notifications,
        args.per_request,
        args.concurrency,
        // With a backlog nothing is waited for: the peak is right after ingest.
        if args.backlog { BACKLOG_SETTLE } else { args.timeout },
        true,
        shape,
        rate,
    )
    .await;
    let ledger = match gws.first() {
        Some(g) if args.price_minor > 0 => Some(ledger_check(meta_client, g.addr, &tenants, args.price_minor, e.arrived_unique).await),
        _ => None,
    };
    struct NodeEnd {
        role: String,
        dispatch: bool,
        pid: u32,
        addr: std::net::SocketAddr,
        startup: Duration,
        peak_rss_kib: Option<u64>,
        rss_before_kib: Option<u64>,
        threads: Option<u64>,
        stderr_path: PathBuf,
        config_path: PathBuf,
        stdout_lines: Vec<String>,
        stopped: gateway::Stopped,
        log: gateway::LogDigest,
    }
    let mut ends: Vec<NodeEnd> = Vec::new();
    for (i, gw) in gws.into_iter().enumerate() {
        let peak_rss_kib = gw.vm_hwm_kib();
        let threads = gw.threads();
        let (pid, addr, startup, stderr_path, config_path) = (gw.pid, gw.addr, gw.startup, gw.stderr_path.clone(), gw.config_path.clone());
        let stdout_lines = gw.stdout_lines.clone();
        let stopped = gw.stop().await;
        let log = gateway::digest_log(&stderr_path, 30);
        let stdout_lines = stdout_lines.lock().expect("stdout").clone();
        ends.push(NodeEnd {
            role: roles[i].0.to_string(),
            dispatch: roles[i].1,
            pid,
            addr,
            startup,
            peak_rss_kib,
            rss_before_kib: rss_before[i],
            threads,
            stderr_path,
            config_path,
            stdout_lines,
            stopped,
            log,
        });
    }
    let first = &ends[0];
    let (gw_pid, gw_addr, startup, peak_rss_kib, rss_before_kib, threads) =
        (first.pid, first.addr, first.startup, first.peak_rss_kib, first.rss_before_kib, first.threads);
    let (stderr_path, config_path) = (first.stderr_path.clone(), first.config_path.clone());
    let stdout_lines = first.stdout_lines.clone();
    let stopped = gateway::Stopped {
        exit: ends.iter().map(|n| n.stopped.exit.clone()).collect::<Vec<_>>().join("; "),
        clean: ends.iter().all(|n| n.stopped.clean),
        took: ends.iter().map(|n| n.stopped.took).sum(),
    };
    let multi = ends.len() > 1;
    let log = gateway::LogDigest {
        lines: ends.iter().map(|n| n.log.lines).sum(),
        info: ends.iter().map(|n| n.log.info).sum(),
        warn: ends.iter().map(|n| n.log.warn).sum(),
        error: ends.iter().map(|n| n.log.error).sum(),
        other: ends.iter().map(|n| n.log.other).sum(),
        problems: ends
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.log.problems.iter().map(move |p| if multi { format!("[process {i}] {p}") } else { p.clone() }))
            .take(30)
            .collect(),
    };

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
            let sum = m
                .iter()
                .find(|(s, _)| *s == format!("{name}_sum{{{labels}}}") || (labels.is_empty() && *s == format!("{name}_sum")))
                .map(|(_, v)| *v);
            out.push(
                serde_json::json!({"labels": labels, "count": count, "sum_s": sum, "mean_ms": sum.filter(|_| *count > 0.0).map(|s| s / count * 1e3)}),
            );
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
        // Summed over tenants and channels (several tenants: one series each).
        .fold(Vec::new(), |mut acc: Vec<(String, f64)>, (k, v)| {
            match acc.iter_mut().find(|(a, _)| *a == k) {
                Some(e) => e.1 += v,
                None => acc.push((k, v)),
            }
            acc
        });
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
    println!(
        "herald-bench  {}  N={} R={} {} batch={}{}",
        measured_utc.as_deref().unwrap_or("?"),
        args.notifications,
        args.per_request,
        rate.map_or(format!("C={} (closed loop)", args.concurrency), |r| format!("open loop at {r:.1} requests/s")),
        args.batch,
        if args.backlog { "  BACKLOG (account at 1 send/s, deliveries not waited for)" } else { "" }
    );
    println!("machine       {} cpus, {}", machine["nproc"], machine["cpu_model"].as_str().unwrap_or("?"));
    match &dist {
        None => println!(
            "gateway       {} (pid {gw_pid}, {gw_addr}, ready in {:.2} s), embedded SQLite, {plugin_name} plugin{}",
            args.gateway.display(),
            startup.as_secs_f64(),
            if args.email {
                format!(
                    " ({} content, max_recipients_per_message {}, max_connections {})",
                    if args.identical { "identical" } else { "personalised" },
                    args.max_rcpt,
                    args.smtp_connections
                )
            } else {
                String::new()
            }
        ),
        Some(d) => {
            println!(
                "gateway       {} x {} processes, Kafka queue + CQL store, {plugin_name} plugin, {} tenant(s)",
                args.gateway.display(),
                ends.len(),
                tenants.len()
            );
            println!(
                "backends      Kafka {} topic {} ({} partitions, tenant_shards {}), group {}; CQL {} keyspace {} (config_cache_ms {})",
                d.brokers,
                d.topic,
                d.partitions,
                d.tenant_shards,
                d.group,
                d.cql.join(","),
                d.keyspace,
                d.config_cache_ms
            );
            for (i, n) in ends.iter().enumerate() {
                println!(
                    "  process {i}   {:<16} pid {} on {}, ready in {:.2} s{}",
                    n.role,
                    n.pid,
                    n.addr,
                    n.startup.as_secs_f64(),
                    if i == 0 { "  <- load" } else { "" }
                );
            }
        }
    }
    println!(
        "builds        gateway {} sha256 {}…, {plugin_name}.wasm {}",
        gateway_build["modified_utc"].as_str().unwrap_or("?"),
        gateway_build["sha256"].as_str().map_or("?", |s| &s[..12.min(s.len())]),
        plugin_build["modified_utc"].as_str().unwrap_or("?"),
    );
    println!();
    println!("{:<34} {:>14} {:>10} {:>10} {:>10} {:>10}", "phase", "per second", "p50 ms", "p99 ms", "p99.9 ms", "max ms");
    if let Some(r) = &raw {
        println!(
            "{:<34} {:>14} {:>10} {:>10} {:>10} {:>10}",
            format!("raw limit, median of {} (deliv.)", round_rates.len()),
            fmt_opt(r.deliveries_per_sec, 0),
            fmt_opt(r.latency.p50_ms, 2),
            fmt_opt(r.latency.p99_ms, 2),
            fmt_opt(r.latency.p999_ms, 2),
            fmt_opt(r.latency.max_ms, 2)
        );
    }
    println!(
        "{:<34} {:>14} {:>10} {:>10} {:>10} {:>10}",
        "ingest (accepted; req lat.)",
        fmt_opt(e.ingest_per_sec, 0),
        fmt_opt(e.ingest_latency.p50_ms, 2),
        fmt_opt(e.ingest_latency.p99_ms, 2),
        fmt_opt(e.ingest_latency.p999_ms, 2),
        fmt_opt(e.ingest_latency.max_ms, 2)
    );
    println!(
        "{:<34} {:>14} {:>10} {:>10} {:>10} {:>10}",
        "end to end (deliveries; added)",
        fmt_opt(e.e2e_per_sec, 0),
        fmt_opt(e.added_latency.p50_ms, 1),
        fmt_opt(e.added_latency.p99_ms, 1),
        fmt_opt(e.added_latency.p999_ms, 1),
        fmt_opt(e.added_latency.max_ms, 1)
    );
    println!();
    println!("e2e / raw               {}", ratio.map_or("-".into(), |r| format!("{:.1} %", r * 100.0)));
    if !round_rates.is_empty() {
        println!("raw rounds              {} deliveries/s", round_rates.iter().map(|r| fmt_opt(*r, 0)).collect::<Vec<_>>().join(", "));
    }
    if dist.is_none() {
        println!(
            "gateway peak RSS        {} (VmHWM; {} at start, {} threads)",
            mib(peak_rss_kib),
            mib(rss_before_kib),
            threads.map_or("-".into(), |t| t.to_string())
        );
    } else {
        for (i, n) in ends.iter().enumerate() {
            let sent = e.nodes.get(i).and_then(|r| gateway::metric_sum(&r.metrics, "herald_deliveries_total", &["outcome=\"sent\""]));
            println!(
                "process {i} peak RSS     {} (VmHWM; {} at start, {} threads), CPU {} s, sent {}  [{}]",
                mib(n.peak_rss_kib),
                mib(n.rss_before_kib),
                n.threads.map_or("-".into(), |t| t.to_string()),
                fmt_opt(e.nodes.get(i).and_then(|r| r.cpu_s), 1),
                fmt_opt(sent, 0),
                n.role
            );
        }
        for sv in &e.services {
            println!(
                "{:<23} pid {}, CPU {} s during e2e, RSS {} (VmHWM {}, since the JVM started)",
                format!("{} (JVM)", sv.name),
                sv.pid,
                fmt_opt(sv.cpu_s, 1),
                mib(sv.rss_kib),
                mib(sv.hwm_kib)
            );
        }
        if e.services.is_empty() {
            println!("services                no local Kafka/Cassandra JVM found in /proc (remote brokers?)");
        }
    }
    let cpu_wall = e.cpu_interval_ns.max(1) as f64 / 1e9;
    let services_cpu: f64 = e.services.iter().filter_map(|s| s.cpu_s).sum();
    let other = e.machine.map(|m| (m.busy() - e.gateway_cpu_s.unwrap_or(0.0) - e.bench_cpu_s.unwrap_or(0.0) - services_cpu).max(0.0));
    println!(
        "CPU during e2e          over {:.2} s x {} cpus: gateway{} {} s ({:.0} % of one cpu), {}bench {} s, rest of the machine {} s",
        cpu_wall,
        cores,
        if ends.len() > 1 { format!(" ({} processes)", ends.len()) } else { String::new() },
        fmt_opt(e.gateway_cpu_s, 1),
        e.gateway_cpu_s.unwrap_or(0.0) / cpu_wall * 100.0,
        e.services
            .iter()
            .map(|s| format!("{} {} s ({:.0} %), ", s.name, fmt_opt(s.cpu_s, 1), s.cpu_s.unwrap_or(0.0) / cpu_wall * 100.0))
            .collect::<String>(),
        fmt_opt(e.bench_cpu_s, 1),
        fmt_opt(other, 1),
    );
    if let Some(m) = e.machine {
        println!(
            "  machine (/proc/stat)  user {:.1} s, system {:.1} s, irq+softirq {:.1} s, iowait {:.1} s, steal {:.1} s, idle {:.1} s",
            m.user, m.system, m.irq, m.iowait, m.steal, m.idle
        );
    }
    for (i, node) in e.nodes.iter().enumerate().skip(1) {
        println!(
            "  process {i} threads     {}",
            node.threads
                .iter()
                .filter(|t| t.2 >= 0.05)
                .map(|(n, c, t, m)| format!("{n} x{c}: {t:.1} s (busiest {m:.1} s)"))
                .collect::<Vec<_>>()
                .join("; ")
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
        e.requested,
        e.accepted,
        e.accepted_requests,
        e.arrived_unique,
        e.missing,
        e.duplicates,
        e.unknown_ids,
        e.bad_bodies,
        e.sink_requests,
        match (e.timed_out, args.backlog) {
            (_, true) => format!("  (backlog: deliveries waited for {} s only)", BACKLOG_SETTLE.as_secs()),
            (true, false) => format!("  ** TIMED OUT after {} s **", args.timeout.as_secs()),
            (false, false) => String::new(),
        }
    );
    if let Some(x) = &e.gateway_exited_early {
        println!("** gateway exited during the run: {x} **");
    }
    if !e.statuses.is_empty() || e.transport_errors > 0 {
        println!(
            "ingest problems         non-202 {:?}, transport errors {}, abandoned requests {}",
            e.statuses, e.transport_errors, e.abandoned_requests
        );
        for s in &e.failure_samples {
            println!("                        {s}");
        }
    }
    if let Some(r) = raw.as_ref().filter(|r| r.errors > 0 || r.non_200 > 0 || r.timed_out || r.sink_deliveries != r.deliveries) {
        println!(
            "raw problems            errors {}, non-200 {}, timed out {}, sink saw {} of {}",
            r.errors, r.non_200, r.timed_out, r.sink_deliveries, r.deliveries
        );
    }
    if dist.is_none() {
        println!(
            "queue                   max herald_queue_depth {}, max herald_inflight_batches {}",
            fmt_opt(max_depth, 0),
            fmt_opt(max_inflight, 0)
        );
    } else {
        // On Kafka herald_queue_depth is the group's lag: high watermark minus
        // committed offset, summed over partitions, in records (one per request).
        let lag_at = |i: usize| e.samples.get(i).and_then(|s| s.queue_depth);
        let max_i =
            (0..e.samples.len()).filter(|&i| lag_at(i).is_some()).max_by(|&a, &b| lag_at(a).unwrap_or(0.0).total_cmp(&lag_at(b).unwrap_or(0.0)));
        println!(
            "consumer lag            max {} records (x R = {} notifications){}, max herald_inflight_batches {} (sum over processes)",
            fmt_opt(max_depth, 0),
            fmt_opt(max_depth.map(|d| d * args.per_request as f64), 0),
            max_i.map_or(String::new(), |i| format!(" at +{:.0} s", e.samples[i].t_s - e.samples[0].t_s)),
            fmt_opt(max_inflight, 0)
        );
        println!(
            "  lag timeline (1/s)    {}",
            e.samples.iter().map(|s| s.queue_depth.map_or("-".into(), |d| format!("{d:.0}"))).collect::<Vec<_>>().join(" ")
        );
    }
    for (name, rows) in [("plugin calls", &plugin_calls), ("provider latency", &provider), ("gateway e2e histogram", &gw_e2e)] {
        for r in rows.iter() {
            println!("{:<23} {{{}}} count {} mean {} ms", name, r["labels"].as_str().unwrap_or(""), r["count"], fmt_opt(r["mean_ms"].as_f64(), 3));
        }
    }
    println!("delivery outcomes       {}", outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    if !plugin_failures.is_empty() {
        println!("plugin failures         {}", plugin_failures.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    }
    if let Some(l) = &ledger {
        println!(
            "ledger                  balance {} minor = -{} x {} deliveries? {}",
            l["balance_minor"],
            args.price_minor,
            e.arrived_unique,
            if l["matches"] == true { "yes" } else { "** NO **" }
        );
    }
    println!(
        "gateway shutdown        {} in {:.2} s{}",
        stopped.exit,
        stopped.took.as_secs_f64(),
        if stopped.clean { "" } else { "  ** not clean **" }
    );
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
            "load": match rate {
                Some(r) => serde_json::json!({"mode": "open loop", "requests_per_sec": r, "notifications_per_sec": r * args.per_request as f64,
                    "latency_from": "the request's due time (start + i / rate)"}),
                None => serde_json::json!({"mode": "closed loop", "clients": args.concurrency, "latency_from": "the send time of the accepted attempt"}),
            },
            "backlog": args.backlog.then(|| serde_json::json!({"account_rate_per_sec": 1, "waited_for_deliveries_s": BACKLOG_SETTLE.as_secs()})),
            "batch": args.batch,
            "timeout_s": args.timeout.as_secs(),
            "gateway": args.gateway.display().to_string(),
            "gateway_build": gateway_build,
            "plugins": args.plugins.display().to_string(),
            "webhook_plugin_build": plugin_build,
            "backend": if dist.is_some() { "kafka + cql" } else { "sqlite (embedded)" },
            "tenants": tenants.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
            "price_minor": args.price_minor,
            "distributed": dist.as_ref().map(|d| serde_json::json!({
                "brokers": d.brokers, "cql": d.cql, "topic": d.topic, "group": d.group, "keyspace": d.keyspace,
                "partitions": d.partitions, "tenant_shards": d.tenant_shards, "config_cache_ms": d.config_cache_ms, "dispatchers": args.dispatchers, "ingest_dispatch": args.ingest_dispatch,
                "processes": ends.len(), "settle_s": args.settle.as_secs(),
            })),
            "plugin": plugin_name,
            "email": args.email.then(|| serde_json::json!({
                "content": if args.identical { "identical" } else { "personalised" },
                "max_recipients_per_message": args.max_rcpt,
                "max_connections": args.smtp_connections,
                "raw_client": "lettre AsyncSmtpConnection::send, one reused connection per sender, max_connections senders, TCP_NODELAY, no pipelining",
            })),
            "dispatch": {"max_batch": 100, "linger_ms": 10, "concurrency": 64, "per_process": true},
        },
        "machine": machine,
        "measured_utc": measured_utc,
        "ledger": ledger,
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
        "nodes": ends.iter().enumerate().map(|(i, n)| serde_json::json!({
            "role": n.role,
            "dispatch": n.dispatch,
            "takes_load": i == 0,
            "pid": n.pid,
            "addr": n.addr.to_string(),
            "startup_s": n.startup.as_secs_f64(),
            "peak_rss_kib": n.peak_rss_kib,
            "rss_at_start_kib": n.rss_before_kib,
            "threads": n.threads,
            "cpu_s": e.nodes.get(i).and_then(|r| r.cpu_s),
            "sent": e.nodes.get(i).and_then(|r| gateway::metric_sum(&r.metrics, "herald_deliveries_total", &["outcome=\"sent\""])),
            "thread_cpu": e.nodes.get(i).map(|r| r.threads.iter().map(|(n, c, t, m)| serde_json::json!({"name": n, "threads": c, "cpu_s": t, "busiest_thread_cpu_s": m})).collect::<Vec<_>>()),
            "metrics": e.nodes.get(i).map(|r| r.metrics.iter().filter(|(k, _)| k.starts_with("herald_") && !k.contains("_bucket{")).map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>()),
            "shutdown": {"exit": n.stopped.exit, "clean": n.stopped.clean, "took_s": n.stopped.took.as_secs_f64()},
            "log": {"lines": n.log.lines, "info": n.log.info, "warn": n.log.warn, "error": n.log.error, "other": n.log.other, "problems": n.log.problems},
        })).collect::<Vec<_>>(),
        "services": e.services.iter().map(|s| serde_json::json!({
            "name": s.name, "pid": s.pid, "cpu_s_during_e2e": s.cpu_s, "rss_kib_at_end": s.rss_kib, "vm_hwm_kib": s.hwm_kib,
        })).collect::<Vec<_>>(),
        "consumer_lag": dist.as_ref().map(|_| serde_json::json!({
            "metric": "herald_queue_depth (on Kafka: high watermark minus committed offset of the group, summed over partitions; max over the processes)",
            "unit": "records (one per accepted request)",
            "recipients_per_record": args.per_request,
            "max_records": max_depth,
            "max_notifications": max_depth.map(|d| d * args.per_request as f64),
            "timeline": e.samples.iter().map(|s| serde_json::json!({
                "t_s": s.t_s, "lag_records": s.queue_depth,
                "per_process": s.nodes.iter().map(|n| n.queue_depth).collect::<Vec<_>>(),
                "accepted": s.accepted, "arrived": s.arrived,
            })).collect::<Vec<_>>(),
        })),
    });
    // A backlog run stops with work queued: its "drain timed out" WARN is expected.
    let trouble = log.error > 0
        || log.warn > 0 && !args.backlog
        || not_sent > 0.0
        || !plugin_failures.is_empty()
        || (e.missing > 0 || e.timed_out) && !args.backlog
        || !stopped.clean
        || e.duplicates > 0
        || e.unknown_ids > 0;
    if args.keep_temp || trouble {
        eprintln!(
            "temp dir kept: {} (config {}, gateway log {}{})",
            dir.display(),
            config_path.display(),
            stderr_path.display(),
            if multi { "; the other processes are in node-*/" } else { "" }
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}

/// With a price, every delivery that arrived was debited: the tenants'
/// balances (read through the API) must add up to -price x deliveries. The
/// debit is recorded with the status, just after the send, so wait a little.
async fn ledger_check(
    client: &http::Client,
    addr: std::net::SocketAddr,
    tenants: &[gateway::Tenant],
    price: i64,
    delivered: u64,
) -> serde_json::Value {
    let expected = -price.saturating_mul(i64::try_from(delivered).unwrap_or(i64::MAX));
    let t0 = std::time::Instant::now();
    loop {
        let mut balance = Some(0i64);
        for t in tenants {
            let url = format!("http://{addr}/v1/ledger?limit=1");
            let got = match http::get_as(client, &url, Some(&t.api_key), Duration::from_secs(10)).await {
                Ok((200, body)) => serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["balance_minor"].as_i64()),
                _ => None,
            };
            balance = balance.zip(got).map(|(a, b)| a + b);
        }
        let matches = balance == Some(expected);
        if matches || t0.elapsed() > Duration::from_secs(15) {
            return serde_json::json!({
                "expected_minor": expected,
                "balance_minor": balance,
                "matches": matches,
                "waited_s": t0.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
