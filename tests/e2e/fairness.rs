//! One tenant's trouble is not another tenant's delay (issue 12, point 10):
//! tenant B's message is delivered while tenant A's backlog is still
//! draining, whether A's receiver hangs or A's account is rate limited; and a
//! message that would cost minutes to render is refused at ingest.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Gateway, eventually, tenant};
use crate::sinks::{Answer, WebhookSink};

const KEY_A: &str = "key-troubled-tenant-a";
const KEY_B: &str = "key-quiet-tenant-b-0";

/// Small slots make the old behaviour visible: four batches at once, one
/// delivery each, and A's account may hold two of them.
const DISPATCH: &str = "[dispatch]\nmax_batch = 1\nconcurrency = 4\ntenant_concurrency = 3\naccount_concurrency = 2\nrequest_timeout_ms = 30000\n";

fn hook_tenant(id: &str, key: &str, url: &str, rate: Option<u32>) -> String {
    let rate = rate.map(|r| format!("rate_per_sec = {r}\n")).unwrap_or_default();
    tenant(
        id,
        key,
        &format!(
            "[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\n{rate}config = {{ url = \"{url}\", secret = \"s\", batch = false }}\n"
        ),
    )
}

async fn send(gw: &Gateway, key: &str, to: &str) -> String {
    let body = json!({"channel": "webhook", "content": {"text": "hi"}, "recipients": [{"to": to}]});
    let r = gw.post("/v1/messages", Some(key), &[], serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// A queues `backlog` messages; then B sends one, which must arrive within
/// `within` while A's receiver has seen fewer than all of A's.
async fn b_arrives_while_a_drains(gw: &Gateway, a_sink: &WebhookSink, b_sink: &WebhookSink, backlog: usize, within: Duration) {
    for i in 0..backlog {
        send(gw, KEY_A, &format!("a{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // A's work is leased and waiting
    let sent = Instant::now();
    send(gw, KEY_B, "b").await;
    eventually(within, "B's message delivered while A's backlog drains", || !b_sink.delivery_ids().is_empty()).await;
    let took = sent.elapsed();
    let a_done = a_sink.delivery_ids().len();
    assert!(a_done < backlog, "A's backlog was already gone ({a_done} of {backlog}): the test shows nothing");
    eprintln!("B delivered {took:?} after its POST; A had {a_done} of {backlog} delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_holds_only_its_own_accounts_slots() {
    let dir = tempfile::tempdir().unwrap();
    let (a_sink, b_sink) = (WebhookSink::start().await, WebhookSink::start().await);
    a_sink.set_default(Answer { delay: Duration::from_secs(20), ..Answer::status(200) });
    let config = format!("{DISPATCH}{}{}", hook_tenant("a", KEY_A, &a_sink.url, None), hook_tenant("b", KEY_B, &b_sink.url, None));
    let gw = Gateway::start(dir.path(), &config);
    // Before: A's hanging requests took every slot and B waited 20 s.
    b_arrives_while_a_drains(&gw, &a_sink, &b_sink, 8, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_account_waits_without_holding_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (a_sink, b_sink) = (WebhookSink::start().await, WebhookSink::start().await);
    let config = format!("{DISPATCH}{}{}", hook_tenant("a", KEY_A, &a_sink.url, Some(1)), hook_tenant("b", KEY_B, &b_sink.url, None));
    let gw = Gateway::start(dir.path(), &config);
    // Before: A's batches waited for A's limiter holding slots; B queued behind 30 s of them.
    b_arrives_while_a_drains(&gw, &a_sink, &b_sink, 30, Duration::from_secs(5)).await;
    // A's limit still holds exactly: about one a second.
    let started = Instant::now();
    eventually(Duration::from_secs(60), "A's backlog drains at its rate", || a_sink.delivery_ids().len() >= 10).await;
    let times: Vec<i64> = a_sink.received().iter().map(|r| r.at_ms).collect();
    let span = times.iter().max().unwrap() - times.iter().min().unwrap();
    assert!(span >= ((times.len() as i64) - 2) * 1000 - 200, "{} of A's within {span} ms at 1/s (after {:?})", times.len(), started.elapsed());
}

#[tokio::test]
async fn a_message_that_would_cost_minutes_to_render_is_refused_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &hook_tenant("a", KEY_A, &sink.url, None));
    // 2 MB of shared variables for 10 000 recipients: 20 GB to render.
    let recipients: Vec<_> = (0..10_000).map(|i| json!({"to": format!("r{i}")})).collect();
    let body = json!({"channel": "webhook", "content": {"text": "{{ big }}"}, "variables": {"big": "x".repeat(2 << 20)}, "recipients": recipients});
    let r = gw.post("/v1/messages", Some(KEY_A), &[], serde_json::to_vec(&body).unwrap()).await;
    assert_eq!((r.status, r.error()), (413, ("too_large".to_string(), Some("variables".to_string()))), "{}", r.text());
    // The same variables for a few recipients are fine.
    let body = json!({"channel": "webhook", "content": {"text": "{{ big | length }}"}, "variables": {"big": "x".repeat(2 << 20)}, "recipients": [{"to": "one"}, {"to": "two"}]});
    let r = gw.post("/v1/messages", Some(KEY_A), &[], serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    eventually(Duration::from_secs(20), "both delivered", || sink.delivery_ids().len() == 2).await;
}
