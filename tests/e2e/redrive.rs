//! Dead letters: deliveries whose retries ran out are listed for the
//! operator and re-driven once the cause is fixed — on the embedded queue
//! and on Kafka's dead-letter topic (`HERALD_TEST_KAFKA`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{API_KEY, Gateway, tenant};
use crate::sinks::{Answer, WebhookSink};

const OPERATOR: &str = "operator-secret-token";
const BETA_KEY: &str = "hk_beta_0123456789abcdef0123456789abcdef";

fn config(sink: &str, queue: &str) -> String {
    let hook = format!("[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{sink}\" }}\n");
    format!(
        "admin_token = \"{OPERATOR}\"\n[retry]\nmax_attempts = 2\nbase_ms = 50\nmax_ms = 100\n{queue}\n{}{}",
        tenant("acme", API_KEY, &hook),
        tenant("beta", BETA_KEY, &hook)
    )
}

async fn send(gw: &Gateway, key: &str, to: &str) -> String {
    let body = json!({"channel": "webhook", "content": {"text": "hi"}, "recipients": [{"to": to}]});
    let r = gw.post("/v1/messages", Some(key), &[("content-type", "application/json")], body.to_string()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

async fn wait_status(gw: &Gateway, key: &str, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = gw.get(&format!("/v1/messages/{id}"), Some(key)).await.json();
        if v["deliveries"][0]["status"] == status {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} never became {status}: {v}\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn letters(gw: &Gateway) -> Vec<Value> {
    let r = gw.get("/admin/dead-letters?limit=100", Some(OPERATOR)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["dead_letters"].as_array().unwrap().clone()
}

async fn redrive(gw: &Gateway, body: Value) -> Value {
    let r = gw.post("/admin/dead-letters/redrive", Some(OPERATOR), &[("content-type", "application/json")], body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn dead_letters_are_listed_and_redriven(queue: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    sink.set_default(Answer::status(503));
    let gw = Gateway::start(dir.path(), &config(&sink.url, queue));

    let a1 = send(&gw, API_KEY, "a1").await;
    let a2 = send(&gw, API_KEY, "a2").await;
    let b1 = send(&gw, BETA_KEY, "b1").await;
    for (key, id) in [(API_KEY, &a1), (API_KEY, &a2), (BETA_KEY, &b1)] {
        wait_status(&gw, key, id, "dead").await;
    }
    assert!(sink.received().is_empty(), "the sink counts only what it accepted");

    // Operator only.
    assert_eq!(gw.get("/admin/dead-letters", None).await.status, 401);
    assert_eq!(gw.get("/admin/dead-letters", Some(API_KEY)).await.status, 401, "a tenant key is not the operator token");
    let listed = letters(&gw).await;
    let mut ids: Vec<&str> = listed.iter().map(|l| l["delivery_id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![format!("{a1}.0"), format!("{a2}.0"), format!("{b1}.0")];
    want.sort();
    assert_eq!(ids, want, "{listed:?}");
    assert!(listed.iter().all(|l| l["attempts"] == 2 && l["reason"].as_str().unwrap().contains("503")), "{listed:?}");
    // Bad input names the field.
    let r = gw.post("/admin/dead-letters/redrive", Some(OPERATOR), &[], json!({"limit": 0}).to_string()).await;
    assert_eq!((r.status, r.error().1.as_deref()), (400, Some("limit")), "{}", r.text());
    let r = gw.post("/admin/dead-letters/redrive", Some(OPERATOR), &[], "{\"tenant\": 5}").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(letters(&gw).await.len(), 3, "a refused request changes nothing");

    // The provider is back: re-drive acme only; beta's letter stays.
    sink.set_default(Answer::status(200));
    let report = redrive(&gw, json!({"tenant": "acme"})).await;
    assert_eq!(
        (report["redriven"].as_array().unwrap().len(), report["skipped"].as_u64(), report["kept"].as_u64()),
        (2, Some(0), Some(1)),
        "{report}"
    );
    for id in [&a1, &a2] {
        let v = wait_status(&gw, API_KEY, id, "sent").await;
        assert_eq!(v["deliveries"][0]["attempts"], 3, "{v}");
    }
    let left = letters(&gw).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["tenant"], "beta");
    let again = redrive(&gw, json!({"tenant": "acme"})).await;
    assert_eq!(again["redriven"].as_array().unwrap().len(), 0, "re-driven letters are gone: {again}");

    // A re-drive that fails again dead-letters the delivery again.
    sink.set_default(Answer::status(503));
    let report = redrive(&gw, json!({})).await;
    assert_eq!(report["redriven"], json!([format!("{b1}.0")]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = gw.get(&format!("/v1/messages/{b1}"), Some(BETA_KEY)).await.json();
        if v["deliveries"][0]["status"] == "dead" && v["deliveries"][0]["attempts"] == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not dead again: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = letters(&gw).await;
    assert_eq!((left.len(), left[0]["delivery_id"].as_str(), left[0]["attempts"].as_u64()), (1, Some(format!("{b1}.0").as_str()), Some(3)));
    let accepted: Vec<Vec<String>> = sink.received().iter().map(|r| r.delivery_ids()).collect();
    assert_eq!(accepted.concat().len(), 2, "only the two re-driven acme deliveries were accepted: {accepted:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_dead_letters_are_listed_and_redriven() {
    dead_letters_are_listed_and_redriven("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_dead_letter_topic_is_listed_and_redriven() {
    let Some(b) = crate::distributed::brokers() else {
        return;
    };
    // Not while another test restarts the shared broker.
    let _serial = crate::distributed::BROKER.lock().await;
    let id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    dead_letters_are_listed_and_redriven(&format!(
        "[queue]\nbackend = \"kafka\"\n[queue.kafka]\nbrokers = \"{b}\"\ntopic = \"herald.redrive.{id}\"\ndead_topic = \"herald.redrive.{id}.dead\"\ngroup = \"herald-redrive-{id}\"\npartitions = 2\n"
    ))
    .await;
}
