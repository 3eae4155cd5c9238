//! Webhook signatures in the Standard Webhooks format (`signature_scheme =
//! "standard-webhooks"`), verified at a real receiver by that project's own
//! Python library (tests/fixtures/standard_webhooks_sink.py, PyPI `standardwebhooks`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{API_KEY, Gateway, eventually, tenant};

/// The signing key and the previous one (rotation: both sign), and a key that must not verify.
const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WRONG_SECRET: &str = "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

/// The Python receiver: one JSON line per request it got.
struct Receiver {
    child: Child,
    url: String,
    out: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, fail_first: bool) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/standard_webhooks_sink.py");
        let out = dir.join("standard-webhooks.jsonl");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&out)
            .arg(if fail_first { "1" } else { "0" })
            .args([NEW_SECRET, OLD_SECRET, WRONG_SECRET])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("receiver did not start (pip install standardwebhooks==1.3.0): {line:?}"));
        Self { child, url: format!("http://127.0.0.1:{port}/hook"), out }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway(dir: &Path, url: &str, batch: bool) -> Gateway {
    let account = format!(
        "[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\n\
         config = {{ url = \"{url}\", secret = \"{NEW_SECRET} {OLD_SECRET}\", signature_scheme = \"standard-webhooks\", batch = {batch} }}\n"
    );
    let config = format!("[retry]\nmax_attempts = 4\nbase_ms = 50\nmax_ms = 200\n[dispatch]\nlinger_ms = 200\n{}", tenant("acme", API_KEY, &account));
    Gateway::start(&dir.join("gw"), &config)
}

fn settled(v: &Value) -> bool {
    v["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "sent" || d["status"] == "failed")
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Every request verifies with the current and the previous key, not with another key nor
/// over a changed body; its timestamp is the send time.
fn assert_signed(req: &Value) {
    assert_eq!(req["verified"], json!([true, true, false]), "new and old key verify, a wrong key does not: {req}");
    assert_eq!(req["tampered_verified"], false, "a changed body does not verify: {req}");
    let ts: i64 = req["webhook_timestamp"].as_str().unwrap().parse().unwrap();
    assert!((ts - now_s()).abs() < 60, "webhook-timestamp is the send time: {req}");
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_webhooks_signatures_verify_with_the_reference_library_and_keep_their_id_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), true);
    let gw = gateway(dir.path(), &receiver.url, false);
    let r = gw.send(&json!({"channel": "webhook", "content": {"text": "hi {{ recipient }}"}, "recipients": [{"to": "ann"}, {"to": "bob"}]})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let view = gw.wait_message(&id, Duration::from_secs(20), settled).await;
    for d in view["deliveries"].as_array().unwrap() {
        assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("sent"), Some(2)), "503 then sent: {d}");
    }

    let got = receiver.requests();
    assert_eq!(got.len(), 4, "two deliveries, each answered 503 then 204: {got:?}");
    for req in &got {
        assert_signed(req);
        assert_eq!(req["webhook_id"], req["body"]["id"], "webhook-id is the delivery id");
    }
    for delivery in view["deliveries"].as_array().unwrap() {
        let attempts: Vec<i64> = got.iter().filter(|r| r["webhook_id"] == delivery["id"]).map(|r| r["status"].as_i64().unwrap()).collect();
        assert_eq!(attempts, [503, 204], "the retry carries the same webhook-id: {delivery}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_webhooks_batch_requests_verify_with_the_reference_library() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), false);
    let gw = gateway(dir.path(), &receiver.url, true);
    let recipients: Vec<Value> = (0..5).map(|i| json!({"to": format!("user{i}")})).collect();
    let r = gw.send(&json!({"channel": "webhook", "content": {"text": "hi"}, "recipients": recipients})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    gw.wait_message(&id, Duration::from_secs(20), settled).await;
    eventually(Duration::from_secs(5), "the batch request", || !receiver.requests().is_empty()).await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1, "five deliveries in one batch: {got:?}");
    assert_signed(&got[0]);
    assert_eq!(got[0]["body"]["deliveries"].as_array().unwrap().len(), 5);
    assert!(got[0]["webhook_id"].as_str().unwrap().starts_with("batch_"), "{}", got[0]);
}
