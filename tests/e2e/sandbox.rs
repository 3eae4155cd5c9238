//! Hostile plugins are contained: deadline, memory cap, output cap, host
//! allowlist and traps each fail only their own deliveries, with a clear
//! reason and a metric, while other deliveries keep flowing.

use std::time::Duration;

use serde_json::json;

use crate::harness::{API_KEY, Gateway, tenant};
use crate::sinks::WebhookSink;

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_plugins_are_stopped_and_others_keep_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let modes = ["loop", "grow", "huge", "badhost", "panic"];
    let mut accounts = format!("[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{}\" }}\n", sink.url);
    for m in modes {
        accounts.push_str(&format!("[[tenants.accounts]]\nname = \"{m}\"\nplugin = \"hostile\"\nconfig = {{ mode = \"{m}\" }}\n"));
    }
    let cfg = format!(
        "[retry]\nmax_attempts = 1\n[plugins.sandbox]\ndeadline_ms = 200\nmemory_bytes = 33554432\nmax_output_bytes = 4194304\n{}",
        tenant("acme", API_KEY, &accounts)
    );
    let gw = Gateway::start(dir.path(), &cfg);
    let mut ids = Vec::new();
    for m in modes {
        let r = gw.send(&json!({"channel": "hostile", "account": m, "content": {"text": "x"}, "recipients": [{"to": "victim"}]})).await;
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push((m, r.json()["id"].as_str().unwrap().to_string()));
    }
    let ok = gw.send(&json!({"channel": "webhook", "account": "hook", "content": {"text": "fine"}, "recipients": [{"to": "a"}]})).await;
    let ok_id = ok.json()["id"].as_str().unwrap().to_string();

    let settled = |v: &serde_json::Value| !matches!(v["deliveries"][0]["status"].as_str(), Some("queued" | "retrying"));
    let v = gw.wait_message(&ok_id, Duration::from_secs(30), settled).await;
    assert_eq!(v["deliveries"][0]["status"], "sent", "the well-behaved plugin is unaffected");

    let want = [
        ("loop", "dead", "deadline"),
        ("grow", "failed", "memory"),
        ("huge", "failed", "output rejected"),
        ("badhost", "failed", "evil.test"),
        ("panic", "failed", "trapped"),
    ];
    for ((mode, id), (wmode, status, reason)) in ids.iter().zip(want) {
        assert_eq!(*mode, wmode);
        let v = gw.wait_message(id, Duration::from_secs(30), settled).await;
        let d = &v["deliveries"][0];
        assert_eq!(d["status"], status, "{mode}: {d}");
        assert!(d["detail"].as_str().unwrap_or("").contains(reason), "{mode}: detail {:?} lacks {reason:?}", d["detail"]);
    }
    let metrics = gw.metrics().await;
    for kind in ["deadline", "memory", "output", "host_denied", "trap"] {
        assert!(
            metrics.contains(&format!("herald_plugin_failures_total{{kind=\"{kind}\",plugin=\"hostile\"}} 1")),
            "metric for {kind}:\n{metrics}"
        );
    }
    assert_eq!(sink.received().len(), 1, "no hostile request reached the network");
    assert!(gw.get("/healthz", None).await.status == 200, "the gateway survived");
}
