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

pub fn write_config(dir: &Path, plugins: &Path, sink: SocketAddr, batch: bool) -> anyhow::Result<PathBuf> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let plugins = std::fs::canonicalize(plugins).with_context(|| format!("plugins dir {}", plugins.display()))?;
    let cfg = format!(
        r#"# Written by herald-bench.
listen = "127.0.0.1:0"
data_dir = {data}
demo = false

[plugins]
dir = {plugins}

[dispatch]
max_batch = 100
linger_ms = 10
concurrency = 64

[[tenants]]
id = "{TENANT}"
api_keys = ["{API_KEY}"]

[[tenants.accounts]]
name = "{ACCOUNT}"
plugin = "webhook"
config = {{ url = "http://{sink}/hook", secret = "s3cret", batch = {batch} }}
"#,
        data = toml_str(&data.to_string_lossy()),
        plugins = toml_str(&plugins.to_string_lossy()),
    );
    let path = dir.join("herald.toml");
    std::fs::write(&path, cfg)?;
    Ok(path)
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
        Ok(Gateway {
            child,
            pid,
            addr,
            stderr_path,
            config_path: config.to_path_buf(),
            stdout_lines,
            startup: started.elapsed(),
        })
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
