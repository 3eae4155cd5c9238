//! The gateway under test as a child process: config file, start, readiness,
//! /proc figures (CPU, RSS, peak RSS), /metrics scraping, SIGTERM and wait.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http::{self, Client};

pub const API_KEY: &str = "hk_bench_0123456789abcdef";
pub const TENANT: &str = "bench";
pub const ACCOUNT: &str = "sink";

pub struct Gateway {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub stderr_path: PathBuf,
    pub config_path: PathBuf,
    pub stdout_lines: Arc<Mutex<Vec<String>>>,
    pub startup: Duration,
}

/// How the gateway ended.
pub struct Stopped {
    pub exit: String,
    pub clean: bool,
    pub took: Duration,
}

fn toml_str(s: &str) -> String {
    // A JSON string literal is a valid TOML basic string for these inputs.
    serde_json::Value::String(s.to_string()).to_string()
}

/// A tenant of the bench: id and API key. Each has a webhook account named
/// `ACCOUNT` pointing at the sink (its own receiver if `sink` is set).
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub api_key: String,
    /// This tenant's own receiver (default: the run's sink).
    pub sink: Option<SocketAddr>,
    /// The account's `rate_per_sec` (sends per second; none = unlimited).
    pub rate_per_sec: Option<u32>,
}

impl Tenant {
    pub fn new(id: &str, api_key: &str) -> Self {
        Tenant { id: id.into(), api_key: api_key.into(), sink: None, rate_per_sec: None }
    }
}

/// The bench's tenants. One tenant is `bench` with `API_KEY` (today's embedded
/// run). With more, the names are chosen so that tenant `j` lands on Kafka
/// partition `j % partitions` (the producer's key is the tenant and
/// librdkafka's default partitioner is CRC-32 of the key modulo the partition
/// count), so several dispatch nodes each get work.
pub fn tenants(count: usize, partitions: u32) -> Vec<Tenant> {
    if count <= 1 {
        return vec![Tenant::new(TENANT, API_KEY)];
    }
    let p = partitions.max(1);
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    for j in 0..count {
        let want = j as u32 % p;
        // Bounded search: about one name in `p` fits.
        let id = (0..1_000_000u32)
            .map(|k| format!("bench-{k}"))
            .find(|n| !used.contains(n) && crc32(n.as_bytes()) % p == want)
            .unwrap_or_else(|| format!("bench-x{j}"));
        used.insert(id.clone());
        out.push(Tenant::new(&id, &format!("hk_{}_0123456789abcdef", id.replace('-', "_"))));
    }
    out
}

/// CRC-32 (IEEE, as zlib and librdkafka's `rd_crc32`).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The distributed backends of one run: Kafka for the queue, CQL for storage.
/// Topic, group and keyspace are fresh per run.
#[derive(Debug, Clone)]
pub struct Distributed {
    pub brokers: String,
    pub cql: Vec<String>,
    pub topic: String,
    pub group: String,
    pub keyspace: String,
    pub partitions: u32,
    /// `queue.kafka.tenant_shards` (1: key = tenant).
    pub tenant_shards: u32,
    /// `storage.cql.config_cache_ms` (the gateway's default 1000).
    pub config_cache_ms: u64,
}

impl Distributed {
    pub fn new(brokers: &str, cql: &str, partitions: u32, tenant_shards: u32, config_cache_ms: u64) -> Self {
        let stamp = format!(
            "{}_{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            std::process::id()
        );
        Distributed {
            brokers: brokers.to_string(),
            cql: cql.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            topic: format!("herald.bench.{stamp}"),
            group: format!("herald-bench-{stamp}"),
            keyspace: format!("herald_bench_{stamp}"),
            partitions: partitions.max(1),
            tenant_shards: tenant_shards.max(1),
            config_cache_ms,
        }
    }
}

/// Every node of a distributed run seals and unseals account secrets with
/// this key (base64 of 32 bytes); the embedded run uses its key file.
const SECRETS_KEY: &str = "aGVyYWxkLWJlbmNoLXNlY3JldHMta2V5LTMyYnl0ZXM=";

/// Write the config of one gateway process into `dir` (its own data dir).
/// `dist = None` is the embedded SQLite run; `dispatch = false` makes an
/// ingest-only node.
#[allow(clippy::too_many_arguments)]
pub fn write_config(
    dir: &Path,
    plugins: &Path,
    sink: SocketAddr,
    batch: bool,
    tenants: &[Tenant],
    dist: Option<&Distributed>,
    dispatch: bool,
    price_minor: i64,
    email: Option<EmailAccount>,
) -> anyhow::Result<PathBuf> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let plugins = std::fs::canonicalize(plugins).with_context(|| format!("plugins dir {}", plugins.display()))?;
    let mut cfg = format!(
        r#"# Written by herald-bench.
listen = "127.0.0.1:0"
data_dir = {data}
demo = false
# The sinks are on loopback: allow exactly them (other private addresses stay refused).
transport.allow_private = [{allowed}]
"#,
        data = toml_str(&data.to_string_lossy()),
        allowed = std::iter::once(sink)
            .chain(tenants.iter().filter_map(|t| t.sink))
            .collect::<std::collections::BTreeSet<_>>()
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if let Some(d) = dist {
        cfg.push_str(&format!(
            r#"secrets_key = "{SECRETS_KEY}"

[storage]
backend = "cql"

[storage.cql]
contact_points = [{cql}]
keyspace = {ks}
replication = "{{'class': 'SimpleStrategy', 'replication_factor': 1}}"
config_cache_ms = {cache}
# deploy/services/cassandra.sh runs PasswordAuthenticator (a server without it ignores the login).
username = "cassandra"
password = "cassandra"

[queue]
backend = "kafka"

[queue.kafka]
brokers = {brokers}
topic = {topic}
group = {group}
partitions = {partitions}
replication = 1
tenant_shards = {shards}
"#,
            cql = d.cql.iter().map(|c| toml_str(c)).collect::<Vec<_>>().join(", "),
            ks = toml_str(&d.keyspace),
            brokers = toml_str(&d.brokers),
            topic = toml_str(&d.topic),
            group = toml_str(&d.group),
            partitions = d.partitions,
            shards = d.tenant_shards,
            cache = d.config_cache_ms,
        ));
    }
    cfg.push_str(&format!(
        r#"
[plugins]
dir = {plugins}

[dispatch]
enabled = {dispatch}
max_batch = 100
linger_ms = 10
concurrency = 64
"#,
        plugins = toml_str(&plugins.to_string_lossy()),
    ));
    if price_minor > 0 {
        // Every delivery then writes a ledger debit with its status.
        let channel = if email.is_some() { "email" } else { "webhook" };
        cfg.push_str(&format!("\n[[prices]]\nchannel = \"{channel}\"\nunit_minor = {price_minor}\n"));
    }
    for t in tenants {
        let sink = t.sink.unwrap_or(sink);
        let account = match email {
            // The in-process SMTP receiver (plain, no AUTH).
            Some(e) => format!(
                r#"plugin = "email"
config = {{ from = "bench@bench.test", smtp = {{ host = "{ip}", port = {port}, tls = "none", max_recipients_per_message = {rcpt}, max_connections = {conns} }} }}"#,
                ip = sink.ip(),
                port = sink.port(),
                rcpt = e.max_recipients_per_message,
                conns = e.max_connections,
            ),
            None => format!(
                r#"plugin = "webhook"
config = {{ url = "http://{sink}/hook", secret = "s3cret", batch = {batch} }}"#
            ),
        };
        cfg.push_str(&format!(
            r#"
[[tenants]]
id = {id}
api_keys = [{key}]

[[tenants.accounts]]
name = "{ACCOUNT}"
{account}
"#,
            id = toml_str(&t.id),
            key = toml_str(&t.api_key),
        ));
        if let Some(r) = t.rate_per_sec {
            cfg.push_str(&format!("rate_per_sec = {r}\n"));
        }
    }
    let path = dir.join("herald.toml");
    std::fs::write(&path, cfg)?;
    Ok(path)
}

/// The `email` account's relay limits (the e-mail shape).
#[derive(Debug, Clone, Copy)]
pub struct EmailAccount {
    pub max_recipients_per_message: u32,
    pub max_connections: u32,
}

/// A process the bench watches but did not start (the Kafka and Cassandra JVMs).
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

/// Running JVMs of Kafka (`kafka.Kafka`) and Cassandra (`CassandraDaemon`), from /proc.
pub fn find_services() -> Vec<Watched> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
        if !args.first().is_some_and(|a| a.ends_with("java")) {
            continue;
        }
        let name = if args.iter().any(|a| a == "kafka.Kafka") {
            "kafka"
        } else if args.iter().any(|a| a == "org.apache.cassandra.service.CassandraDaemon") {
            "cassandra"
        } else {
            continue;
        };
        out.push(Watched { name: name.into(), pid });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn pid_status_kib(pid: u32, key: &str) -> Option<u64> {
    proc_status_kib(pid, key)
}

impl Gateway {
    /// Start the binary and wait for "listening on" and /readyz 200.
    pub async fn start(bin: &Path, config: &Path, dir: &Path, client: &Client) -> anyhow::Result<Self> {
        let stderr_path = dir.join("gateway.stderr");
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(config).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(stderr));
        // HERALD_* variables would override the bench's config; keep only logging ones.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("HERALD_") && k != "HERALD_LOG" && k != "HERALD_LOG_FORMAT" {
                cmd.env_remove(&k);
            }
        }
        cmd.env("NO_COLOR", "1").kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("gateway pid")?;
        let stdout = child.stdout.take().context("gateway stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let addr = {
            let wait = async {
                while let Some(line) = lines.next_line().await? {
                    stdout_lines.lock().expect("stdout").push(line.clone());
                    if let Some(rest) = line.trim().strip_prefix("herald-gateway listening on http://") {
                        return anyhow::Ok(Some(rest.trim().parse::<SocketAddr>()?));
                    }
                }
                Ok(None)
            };
            match tokio::time::timeout(Duration::from_secs(120), wait).await {
                Ok(Ok(Some(a))) => a,
                Ok(Ok(None)) => {
                    let status = child.wait().await.map(|s| s.to_string()).unwrap_or_default();
                    bail!("gateway exited before listening ({status}); stderr:\n{}", tail(&stderr_path, 20));
                }
                Ok(Err(e)) => bail!("reading gateway stdout: {e}"),
                Err(_) => {
                    let _ = child.kill().await;
                    bail!("gateway did not print its address within 120 s; stderr:\n{}", tail(&stderr_path, 20));
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        let keep = stdout_lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().expect("stdout").push(line);
            }
        });
        let ready = format!("http://{addr}/readyz");
        let mut last = String::new();
        let mut ok = false;
        for _ in 0..300 {
            match http::get(client, &ready, Duration::from_secs(2)).await {
                Ok((200, _)) => {
                    ok = true;
                    break;
                }
                Ok((s, b)) => last = format!("{s} {}", String::from_utf8_lossy(&b)),
                Err(e) => last = e.to_string(),
            }
            if let Ok(Some(s)) = child.try_wait() {
                bail!("gateway exited ({s}) before /readyz; stderr:\n{}", tail(&stderr_path, 20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ok {
            let _ = child.kill().await;
            bail!("/readyz not 200 within 30 s (last: {last})");
        }
        Ok(Gateway { child, pid, addr, stderr_path, config_path: config.to_path_buf(), stdout_lines, startup: started.elapsed() })
    }

    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// Peak resident set (VmHWM), KiB.
    pub fn vm_hwm_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmHWM:")
    }

    pub fn vm_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmRSS:")
    }

    /// User + system CPU time so far, seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    pub fn threads(&self) -> Option<u64> {
        proc_status_kib(self.pid, "Threads:")
    }

    /// SIGTERM, then wait (30 s) for the drain; SIGKILL if it does not end.
    pub async fn stop(mut self) -> Stopped {
        let t = Instant::now();
        if let Ok(Some(s)) = self.child.try_wait() {
            return Stopped { exit: format!("had already exited: {s}"), clean: false, took: Duration::ZERO };
        }
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(s)) => Stopped { exit: s.to_string(), clean: s.success(), took: t.elapsed() },
            Ok(Err(e)) => Stopped { exit: format!("wait failed: {e}"), clean: false, took: t.elapsed() },
            Err(_) => {
                let _ = self.child.kill().await;
                let _ = self.child.wait().await;
                Stopped { exit: "did not exit within 30 s of SIGTERM; killed".into(), clean: false, took: t.elapsed() }
            }
        }
    }
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok())
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a /proc/<pid>/stat file, seconds.
pub fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let s = std::fs::read_to_string(stat_path).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

pub fn self_vm_hwm_kib() -> Option<u64> {
    proc_status_kib(std::process::id(), "VmHWM:")
}

/// Last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Prometheus text → (series with labels, value).
pub fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every series named `name` whose labels contain all of `labels` (`k="v"`).
pub fn metric_sum(m: &[(String, f64)], name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for (series, v) in m {
        let (n, l) = match series.split_once('{') {
            Some((n, l)) => (n, l),
            None => (series.as_str(), ""),
        };
        if n == name && labels.iter().all(|want| l.contains(want)) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Strip ANSI colour sequences.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Gateway stderr digest: lines per level, and the WARN/ERROR lines (first `keep`).
pub struct LogDigest {
    pub lines: u64,
    pub info: u64,
    pub warn: u64,
    pub error: u64,
    pub other: u64,
    pub problems: Vec<String>,
}

pub fn digest_log(path: &Path, keep: usize) -> LogDigest {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let mut d = LogDigest { lines: 0, info: 0, warn: 0, error: 0, other: 0, problems: Vec::new() };
    for raw in s.lines() {
        let line = strip_ansi(raw);
        d.lines += 1;
        let level = line.split_whitespace().nth(1).unwrap_or("");
        let json_level = line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"");
        match level {
            "INFO" => d.info += 1,
            "DEBUG" | "TRACE" => d.other += 1,
            "WARN" => d.warn += 1,
            "ERROR" => d.error += 1,
            _ if json_level && line.contains("WARN") => d.warn += 1,
            _ if json_level => d.error += 1,
            _ if line.contains("\"level\":\"INFO\"") => d.info += 1,
            _ => d.other += 1,
        }
        let problem = matches!(level, "WARN" | "ERROR") || json_level || !matches!(level, "INFO" | "DEBUG" | "TRACE") && !line.contains("\"level\":");
        if problem && d.problems.len() < keep {
            d.problems.push(line);
        }
    }
    d
}

/// CPU time of the whole machine so far (all cpus, /proc/stat), seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub user: f64,
    pub system: f64,
    pub irq: f64,
    pub iowait: f64,
    pub steal: f64,
    pub idle: f64,
}

impl MachineCpu {
    pub fn read() -> Option<Self> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let line = s.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let g = |i: usize| v.get(i).copied().unwrap_or(0.0) / clock_ticks();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        Some(MachineCpu { user: g(0) + g(1), system: g(2), idle: g(3), iowait: g(4), irq: g(5) + g(6), steal: g(7) })
    }

    pub fn since(&self, before: &MachineCpu) -> MachineCpu {
        MachineCpu {
            user: self.user - before.user,
            system: self.system - before.system,
            irq: self.irq - before.irq,
            iowait: self.iowait - before.iowait,
            steal: self.steal - before.steal,
            idle: self.idle - before.idle,
        }
    }

    /// Time the cpus ran something (user + system + irq).
    pub fn busy(&self) -> f64 {
        self.user + self.system + self.irq
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"user": self.user, "system": self.system, "irq_softirq": self.irq, "iowait": self.iowait, "steal": self.steal, "idle": self.idle})
    }
}

/// CPU seconds per thread of a process: tid → (thread name, seconds).
pub fn thread_cpu(pid: u32) -> std::collections::HashMap<u32, (String, f64)> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_string();
        if let Some(cpu) = cpu_seconds(&entry.path().join("stat").to_string_lossy()) {
            out.insert(tid, (name, cpu));
        }
    }
    out
}

/// Per thread name between two snapshots: (name, threads, total CPU s, busiest thread CPU s),
/// busiest first. Threads that ended in between are not counted.
pub fn thread_cpu_delta(
    before: &std::collections::HashMap<u32, (String, f64)>,
    after: &std::collections::HashMap<u32, (String, f64)>,
) -> Vec<(String, usize, f64, f64)> {
    let mut by_name: std::collections::BTreeMap<String, (usize, f64, f64)> = Default::default();
    for (tid, (name, cpu)) in after {
        let d = cpu - before.get(tid).map_or(0.0, |b| b.1);
        let e = by_name.entry(name.clone()).or_default();
        e.0 += 1;
        e.1 += d;
        e.2 = e.2.max(d);
    }
    let mut v: Vec<_> = by_name.into_iter().map(|(n, (c, t, m))| (n, c, t, m)).collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_and_tenants_spread_over_partitions() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let one = tenants(1, 8);
        assert_eq!((one[0].id.as_str(), one[0].api_key.as_str()), (TENANT, API_KEY));
        let t = tenants(8, 8);
        let mut parts: Vec<u32> = t.iter().map(|t| crc32(t.id.as_bytes()) % 8).collect();
        parts.sort();
        assert_eq!(parts, (0..8).collect::<Vec<_>>());
        assert!(t.iter().all(|t| t.api_key.len() >= 16));
    }
}
