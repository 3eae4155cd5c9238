//! Plumbing shared by the IM provider tests (`im_*.rs`): serving a fake
//! provider, the gateway config that points plugins at it, sending and
//! waiting, signatures, and the rate windows the fakes enforce.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::{API_KEY, Gateway, plugin_dir, tenant};

/// Fast retries; a provider's Retry-After (minutes for some robots) is capped
/// at 300 ms so throttling tests finish quickly.
pub const FAST_RETRY: &str = "[retry]\nmax_attempts = 8\nbase_ms = 50\nmax_ms = 200\nmax_retry_after_ms = 300\n";

/// Serve `app` on 127.0.0.1 (a free port); returns `http://127.0.0.1:<port>`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The plugin under test must be in the plugin directory (`make test` builds it).
pub fn require_plugin(name: &str) {
    let path = plugin_dir().join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: build the plugin (make plugins) first", path.display());
}

/// Start a gateway whose plugins reach `redirects` (host → fake base URL),
/// with one tenant `acme` holding `accounts` (TOML `[[tenants.accounts]]`).
pub fn gateway(dir: &std::path::Path, redirects: &[(&str, &str)], extra: &str, accounts: &str) -> Gateway {
    let mut cfg = format!("{FAST_RETRY}{extra}\n[plugins.redirect_hosts]\n");
    for (host, base) in redirects {
        cfg.push_str(&format!("\"{host}\" = \"{base}\"\n"));
    }
    cfg.push_str(&tenant("acme", API_KEY, accounts));
    Gateway::start(dir, &cfg)
}

/// A `[[tenants.accounts]]` entry; `config` is a TOML inline table.
pub fn account(name: &str, plugin: &str, config: &str) -> String {
    format!("[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"{plugin}\"\nconfig = {config}\n")
}

/// POST /v1/messages; returns the message id.
pub async fn send(gw: &Gateway, channel: &str, account: &str, content: Value, recipients: &[&str]) -> String {
    let to: Vec<Value> = recipients.iter().map(|r| json!({"to": r})).collect();
    let r = gw.send(&json!({"channel": channel, "account": account, "content": content, "recipients": to})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// Each of `bad` as the only recipient is refused at ingest: the plugin
/// declares its recipient format (`x-herald-recipient`), so the gateway
/// answers 400 naming `recipients[0].to` and nothing reaches the provider.
pub async fn refused_at_ingest(gw: &Gateway, channel: &str, account: &str, bad: &[&str]) {
    for to in bad {
        let r = gw
            .send(&json!({"channel": channel, "account": account, "content": {"text": "x"},
                          "recipients": [{"to": to}]}))
            .await;
        assert_eq!(r.status, 400, "{to:?}: {}", r.text());
        assert_eq!(r.error(), ("invalid_field".to_string(), Some("recipients[0].to".to_string())), "{to:?}: {}", r.text());
    }
}

/// Wait until no delivery of the message is queued or retrying.
pub async fn settle(gw: &Gateway, id: &str) -> Value {
    settle_within(gw, id, Duration::from_secs(30)).await
}

/// `settle` with a longer wait: a provider's throttle answer pauses the
/// account for its Retry-After, at most a minute (the host clamps it).
pub async fn settle_within(gw: &Gateway, id: &str, timeout: Duration) -> Value {
    gw.wait_message(id, timeout, |v| v["deliveries"].as_array().unwrap().iter().all(|d| !matches!(d["status"].as_str(), Some("queued" | "retrying"))))
        .await
}

/// The deliveries' statuses, in recipient order.
pub fn statuses(v: &Value) -> Vec<String> {
    v["deliveries"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap().to_string()).collect()
}

/// The delivery for `recipient`.
pub fn delivery<'a>(v: &'a Value, recipient: &str) -> &'a Value {
    v["deliveries"].as_array().unwrap().iter().find(|d| d["recipient"] == recipient).unwrap_or_else(|| panic!("no delivery to {recipient}: {v}"))
}

/// The value of a Prometheus counter line (`name{labels} value`), 0 if absent.
pub fn counter(metrics: &str, name_and_labels: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(name_and_labels).and_then(|rest| rest.trim().parse::<f64>().ok())).map_or(0, |v| v as u64)
}

/// How many deliveries of `channel` the gateway counted with `outcome`.
pub async fn outcome_count(gw: &Gateway, channel: &str, outcome: &str) -> u64 {
    let metrics = gw.metrics().await;
    counter(&metrics, &format!("herald_deliveries_total{{channel=\"{channel}\",outcome=\"{outcome}\",tenant=\"acme\"}}"))
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// Standard base64 with padding (the tests' own encoder, independent of the SDK).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A provider's rate limit: at most `limit` accepted messages per `per`
/// (sliding window); optionally a penalty during which everything is refused
/// once the limit was hit (DingTalk robots: 10 minutes).
#[derive(Debug, Clone)]
pub struct Window {
    limit: usize,
    per: Duration,
    penalty: Duration,
    hits: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Window {
    pub fn new(limit: usize, per: Duration) -> Self {
        Self { limit, per, penalty: Duration::ZERO, hits: VecDeque::new(), blocked_until: None }
    }

    pub fn unlimited() -> Self {
        Self::new(usize::MAX, Duration::from_secs(1))
    }

    pub fn with_penalty(mut self, penalty: Duration) -> Self {
        self.penalty = penalty;
        self
    }

    /// Whether one more message may go now; counts it when it may.
    pub fn admit(&mut self) -> bool {
        let now = Instant::now();
        if let Some(until) = self.blocked_until {
            if now < until {
                return false;
            }
            self.blocked_until = None;
        }
        while self.hits.front().is_some_and(|t| now.duration_since(*t) >= self.per) {
            self.hits.pop_front();
        }
        if self.hits.len() >= self.limit {
            if !self.penalty.is_zero() {
                self.blocked_until = Some(now + self.penalty);
            }
            return false;
        }
        self.hits.push_back(now);
        true
    }
}

#[test]
fn base64_known_values() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
}

#[test]
fn window_limits_and_penalizes() {
    let mut w = Window::new(2, Duration::from_secs(60)).with_penalty(Duration::from_secs(60));
    assert!(w.admit() && w.admit());
    assert!(!w.admit());
    assert!(!w.admit(), "still blocked");
    let mut w = Window::new(1, Duration::from_millis(1));
    assert!(w.admit());
    std::thread::sleep(Duration::from_millis(2));
    assert!(w.admit(), "the window slid");
    assert_eq!(counter("a{x=\"1\"} 3\nb 4", "a{x=\"1\"}"), 3);
    assert_eq!(counter("", "a"), 0);
}

/// A query string as a form decoder reads it (`+` is a space, `%XX` a byte).
pub fn query(uri: &axum::http::Uri) -> std::collections::HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[test]
fn query_decoding() {
    let uri: axum::http::Uri = "/x?a=1&sign=ab%2Bc%3D&plus=a+b&t=%E5%AD%97".parse().unwrap();
    let q = query(&uri);
    assert_eq!(q["a"], "1");
    assert_eq!(q["sign"], "ab+c=");
    assert_eq!(q["plus"], "a b", "a raw + is a space, as servers decode it");
    assert_eq!(q["t"], "字");
}
