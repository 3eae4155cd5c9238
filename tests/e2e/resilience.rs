//! Crashes and restarts lose nothing: kill -9 with accepted work pending,
//! scheduled sends across a restart, graceful shutdown drains in-flight work.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::harness::{API_KEY, Gateway, eventually, tenant};
use crate::sinks::{Answer, WebhookSink};

fn config(url: &str, extra: &str) -> String {
    format!(
        "{extra}\n{}",
        tenant("acme", API_KEY, &format!("[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\" }}\n"))
    )
}

fn counts(ids: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.clone()).or_default() += 1;
    }
    m
}

async fn send_one(gw: &Gateway, i: usize, extra: serde_json::Value) -> String {
    let mut body = json!({"channel": "webhook", "content": {"text": "n{{ i }}"}, "variables": {"i": i}, "recipients": [{"to": format!("r{i}")}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = gw.send(&body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_accepted_work_pending_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    sink.set_default(Answer { status: 200, headers: vec![], delay: Duration::from_millis(300) });
    let concurrency = 2;
    let mut gw = Gateway::start(dir.path(), &config(&sink.url, &format!("[dispatch]\nconcurrency = {concurrency}\nmax_batch = 1\nlinger_ms = 0\n")));
    let mut accepted = Vec::new();
    for i in 0..20 {
        accepted.push(format!("{}.0", send_one(&gw, i, json!({})).await));
    }
    eventually(Duration::from_secs(20), "a few deliveries before the crash", || sink.received().len() >= 3).await;
    gw.kill9();
    let before = sink.delivery_ids().len();
    assert!(before < accepted.len(), "the crash must leave work pending (got {before})");

    sink.set_default(Answer::status(200));
    gw.restart();
    eventually(Duration::from_secs(30), "every accepted notification delivered", || {
        let seen = counts(&sink.delivery_ids());
        accepted.iter().all(|id| seen.contains_key(id))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = counts(&sink.delivery_ids());
    let extra: usize = seen.values().map(|n| n - 1).sum();
    assert!(seen.values().all(|&n| n <= 2), "at most one redelivery per id: {seen:?}");
    assert!(extra <= concurrency, "only deliveries in flight at the crash may repeat ({extra} repeats)");
    assert_eq!(seen.len(), accepted.len(), "nothing unexpected arrived");
    for id in &accepted {
        let mid = id.trim_end_matches(".0");
        let v = gw.wait_message(mid, Duration::from_secs(10), |v| v["deliveries"][0]["status"] == "sent").await;
        assert_eq!(v["deliveries"][0]["status"], "sent");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_send_survives_a_crash_and_fires_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let mut gw = Gateway::start(dir.path(), &config(&sink.url, ""));
    let at = std::time::SystemTime::now() + Duration::from_secs(6);
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let send_at = chrono_like(at_ms);
    let id = send_one(&gw, 1, json!({"send_at": send_at})).await;
    let v = gw.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await.json();
    assert_eq!(v["deliveries"][0]["status"], "queued");
    assert_eq!(v["send_at"].as_i64().unwrap() / 1000, at_ms / 1000);
    gw.kill9();
    gw.restart();
    eventually(Duration::from_secs(30), "scheduled delivery", || !sink.received().is_empty()).await;
    // The sink stamps arrival itself, so a slow machine cannot hide an early send.
    let arrived = sink.received()[0].at_ms;
    assert!(arrived >= at_ms, "arrived {} ms early", at_ms - arrived);
    assert!(arrived - at_ms < 15_000, "arrived {} ms late", arrived - at_ms);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.delivery_ids(), vec![format!("{id}.0")], "exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_batches_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    sink.set_default(Answer { status: 200, headers: vec![], delay: Duration::from_millis(800) });
    let mut gw = Gateway::start(dir.path(), &config(&sink.url, "[dispatch]\nmax_batch = 1\nlinger_ms = 0\ndrain_timeout_ms = 5000\n"));
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(format!("{}.0", send_one(&gw, i, json!({})).await));
        }
        v
    };
    tokio::time::sleep(Duration::from_millis(300)).await; // leased and in flight
    let took = gw.terminate();
    assert!(took < Duration::from_secs(7), "shutdown took {took:?}");
    assert!(gw.log().contains("draining"), "logged the drain");
    let delivered = counts(&sink.delivery_ids());
    assert_eq!(delivered.len(), 3, "in-flight work finished before exit: {delivered:?}");

    sink.set_default(Answer::status(200));
    gw.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = counts(&sink.delivery_ids());
    assert!(ids.iter().all(|id| after.get(id) == Some(&1)), "nothing resent after a clean stop: {after:?}");
}

fn chrono_like(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339()
}
