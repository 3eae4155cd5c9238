//! Real receivers: an HTTP webhook sink in the test process and an SMTP
//! server (aiosmtpd) in a child process.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request arrived (Unix ms).
    pub at_ms: i64,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    /// Delivery ids carried by this request (single or batch body).
    pub fn delivery_ids(&self) -> Vec<String> {
        let j = self.json();
        match j.get("deliveries") {
            Some(list) => list.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect(),
            None => vec![j["id"].as_str().unwrap().to_string()],
        }
    }
}

/// How the sink answers: scripted answers first, then `default`.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), delay: Duration::ZERO }
    }
}

struct Inner {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
}

#[derive(Clone)]
pub struct WebhookSink {
    inner: Arc<Inner>,
    pub url: String,
}

impl WebhookSink {
    pub async fn start() -> Self {
        let inner =
            Arc::new(Inner { received: Mutex::new(Vec::new()), script: Mutex::new(VecDeque::new()), default: Mutex::new(Answer::status(200)) });
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner, url }
    }

    /// Answer the next requests with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.script.lock().unwrap().extend(answers);
    }

    pub fn set_default(&self, a: Answer) {
        *self.inner.default.lock().unwrap() = a;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    pub fn delivery_ids(&self) -> Vec<String> {
        self.received().iter().flat_map(Received::delivery_ids).collect()
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = {
        let next = inner.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| inner.default.lock().unwrap().clone())
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    // Only requests answered 2xx count as received.
    if (200..300).contains(&answer.status) {
        let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        inner.received.lock().unwrap().push(Received { headers, body, at_ms });
    }
    let mut resp = (StatusCode::from_u16(answer.status).unwrap(), "").into_response();
    for (k, v) in answer.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// aiosmtpd with AUTH, writing each message as a JSON line.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl SmtpSink {
    pub fn start(dir: &Path, user: &str, password: &str) -> Self {
        Self::start_tls(dir, user, password, None)
    }

    /// With `tls` (certificate and key PEM files) the server offers STARTTLS
    /// and takes no mail without it.
    pub fn start_tls(dir: &Path, user: &str, password: &str, tls: Option<(&Path, &Path)>) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smtp_sink.py");
        let out = dir.join("smtp.jsonl");
        let mut cmd = Command::new("python3");
        if let Some((cert, key)) = tls {
            cmd.env("SMTP_SINK_TLS_CERT", cert).env("SMTP_SINK_TLS_KEY", key);
        }
        let mut child = cmd
            .arg(script)
            .arg(&out)
            .args([user, password])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (make test installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("SMTP sink did not start (is aiosmtpd installed?): {line:?}"));
        Self { child, port, out }
    }

    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
