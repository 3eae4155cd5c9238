//! Start and stop the real gateway binary; talk HTTP to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const API_KEY: &str = "hk_test_0123456789abcdef";
pub const OTHER_KEY: &str = "hk_other_0123456789abcdef";

fn target_dir() -> PathBuf {
    // <target>/release/deps/e2e-<hash>
    let exe = std::env::current_exe().expect("test exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

pub fn gateway_bin() -> PathBuf {
    let bin = std::env::var_os("HERALD_GATEWAY_BIN").map(PathBuf::from).unwrap_or_else(|| target_dir().join("herald-gateway"));
    assert!(bin.exists(), "{} is missing: run `make test` (it builds the gateway first)", bin.display());
    bin
}

/// Directory holding webhook.wasm, email.wasm and hostile.wasm.
pub fn plugin_dir() -> PathBuf {
    let dir = std::env::var_os("HERALD_TEST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().parent().expect("target").join("herald-plugins"));
    assert!(dir.join("webhook.wasm").exists(), "plugins missing in {}: run `make test`", dir.display());
    dir
}

/// Start `cmd` with stderr appended to `log`; returns once it prints `prefix<url>` on stdout.
pub fn spawn_logged(mut cmd: Command, log: &Path, prefix: &'static str) -> (Child, String) {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut child = cmd.stdout(Stdio::piped()).stderr(file).spawn().expect("start process");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix(prefix) {
                let _ = tx.send(url.to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(u) => (child, u),
        Err(_) => {
            let _ = child.kill();
            panic!("process did not start; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
    }
}

/// The gateway setting that lets the tests deliver to sinks on loopback.
pub const LOOPBACK_ALLOWED: &str = "transport.allow_private = [\"127.0.0.0/8\", \"::1\"]\n";

pub struct Gateway {
    child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    config: PathBuf,
}

impl Gateway {
    /// Write `config` (TOML, without `listen`/`data_dir`/plugin dir) and start.
    pub fn start(data: &Path, config: &str) -> Gateway {
        Self::start_with_plugins(data, config, &plugin_dir())
    }

    /// Like `start`, loading plugins from `plugins`. The test sinks and
    /// providers listen on loopback, so loopback destinations are allowed
    /// (`transport.allow_private`) unless `config` sets that itself.
    pub fn start_with_plugins(data: &Path, config: &str, plugins: &Path) -> Gateway {
        std::fs::create_dir_all(data).unwrap();
        let path = data.join("herald.toml");
        Self::write_config(&path, data, config, plugins);
        Self::spawn(data, &path)
    }

    fn write_config(path: &Path, data: &Path, config: &str, plugins: &Path) {
        // `HERALD_TEST_OLD_BINARY=1` runs a test against a gateway built
        // before `transport.allow_private` existed (to show it failing there).
        let old_binary = std::env::var_os("HERALD_TEST_OLD_BINARY").is_some();
        let allow = if config.contains("allow_private") || old_binary { "" } else { LOOPBACK_ALLOWED };
        // An old binary knows no `transport` section: its lines are dropped.
        let kept: String = config.lines().filter(|l| !(old_binary && l.starts_with("transport."))).map(|l| format!("{l}\n")).collect();
        let config = kept.as_str();
        let full = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndemo = false\nplugins.dir = \"{}\"\n{allow}{}\n",
            data.display(),
            plugins.display(),
            config
        );
        std::fs::write(path, full).unwrap();
    }

    /// Write `config` as `start` would, without starting; returns the file.
    pub fn config_file(data: &Path, config: &str) -> PathBuf {
        std::fs::create_dir_all(data).unwrap();
        let path = data.join("herald.toml");
        Self::write_config(&path, data, config, &plugin_dir());
        path
    }

    /// Replace the config (as `start` takes it) for the next `restart`.
    pub fn rewrite_config(&self, config: &str) {
        Self::write_config(&self.config, &self.data, config, &plugin_dir());
    }

    fn spawn(data: &Path, config: &Path) -> Gateway {
        let mut cmd = Command::new(gateway_bin());
        cmd.arg("--config").arg(config).env("HERALD_LOG", "info,herald_gateway=debug");
        let (child, url) = spawn_logged(cmd, &data.join("gateway.log"), "herald-gateway listening on ");
        Gateway { child: Some(child), url, data: data.to_path_buf(), config: config.to_path_buf() }
    }

    /// kill -9: no chance to drain or flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait; returns how long the exit took.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut c) = self.child.take() {
            Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().unwrap();
            c.wait().unwrap();
        }
        started.elapsed()
    }

    /// Start again on the same data and config.
    pub fn restart(&mut self) {
        self.kill9();
        let next = Self::spawn(&self.data, &self.config);
        *self = next;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("gateway.log")).unwrap_or_default()
    }

    pub async fn post(&self, path: &str, key: Option<&str>, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
        request("POST", &format!("{}{path}", self.url), key, headers, body.into()).await
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        request("GET", &format!("{}{path}", self.url), key, &[], Bytes::new()).await
    }

    /// POST /v1/messages with the test tenant's key.
    pub async fn send(&self, body: &Value) -> Resp {
        self.post("/v1/messages", Some(API_KEY), &[("content-type", "application/json")], body.to_string()).await
    }

    /// Poll a message until `done(view)` or the timeout.
    pub async fn wait_message(&self, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await;
            if r.status == 200 && done(&r.json()) {
                return r.json();
            }
            if Instant::now() > deadline {
                panic!("message {id} not done in {timeout:?}; last: {} {}\nlog:\n{}", r.status, r.text(), self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
        // A failing test shows what the gateway said (its data dir goes with the test).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("---- last {} lines of {} ----", tail.len(), self.data.join("gateway.log").display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    /// `error.code` and `error.field` of an error answer.
    pub fn error(&self) -> (String, Option<String>) {
        let j = self.json();
        (j["error"]["code"].as_str().unwrap_or("").to_string(), j["error"]["field"].as_str().map(str::to_string))
    }
}

pub async fn request(method: &str, url: &str, key: Option<&str>, headers: &[(&str, &str)], body: Bytes) -> Resp {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut b = hyper::Request::builder().method(method).uri(url);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Full::new(body)).unwrap()).await.expect("request");
    let (parts, body) = resp.into_parts();
    Resp { status: parts.status.as_u16(), headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

/// Wait until `f()` is true, or panic with `what`.
pub async fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tenant section for the config, with the test API key.
pub fn tenant(id: &str, key: &str, rest: &str) -> String {
    format!("[[tenants]]\nid = \"{id}\"\napi_keys = [\"{key}\"]\n{rest}\n")
}
