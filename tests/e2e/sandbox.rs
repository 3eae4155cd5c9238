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
    let modes = ["loop", "grow", "huge", "badhost", "panic", "clock", "duplicate", "random"];
    let mut accounts = format!("[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{}\" }}\n", sink.url);
    for m in modes {
        accounts.push_str(&format!(
            "[[tenants.accounts]]\nname = \"{m}\"\nplugin = \"hostile\"\nconfig = {{ mode = \"{m}\", url = \"{}\" }}\n",
            sink.url
        ));
    }
    let cfg = format!(
        "[retry]\nmax_attempts = 1\n[plugins.sandbox]\ndeadline_ms = 1000\nmemory_bytes = 33554432\nmax_output_bytes = 4194304\n{}",
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

    // The plugin's own failures are not the recipient's fault: retried, so
    // with one attempt allowed they are dead-lettered. A host the operator
    // refuses is final.
    let want = [
        ("loop", "dead", "deadline"),
        ("grow", "dead", "memory"),
        ("huge", "dead", "output rejected"),
        ("badhost", "failed", "evil.test"),
        ("panic", "dead", "trapped"),
        ("clock", "dead", "trapped"),
        ("duplicate", "dead", "in two requests"),
        // HashMap needs a hash seed: the one WASI function the host provides.
        ("random", "sent", ""),
    ];
    for ((mode, id), (wmode, status, reason)) in ids.iter().zip(want) {
        assert_eq!(*mode, wmode);
        let v = gw.wait_message(id, Duration::from_secs(30), settled).await;
        let d = &v["deliveries"][0];
        assert_eq!(d["status"], status, "{mode}: {d}");
        assert!(d["detail"].as_str().unwrap_or("").contains(reason), "{mode}: detail {:?} lacks {reason:?}", d["detail"]);
    }
    let metrics = gw.metrics().await;
    for (kind, n) in [("deadline", 1), ("memory", 1), ("output", 2), ("host_denied", 1), ("trap", 2)] {
        assert!(
            metrics.contains(&format!("herald_plugin_failures_total{{kind=\"{kind}\",plugin=\"hostile\"}} {n}")),
            "metric for {kind}:\n{metrics}"
        );
    }
    assert_eq!(sink.received().len(), 2, "only the webhook and the well-behaved hostile request reached the network");
    assert!(gw.get("/healthz", None).await.status == 200, "the gateway survived");
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_allowlist_narrows_what_a_plugin_may_reach() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let cfg = format!(
        "[retry]\nmax_attempts = 1\n{}\n[plugins.allow_hosts]\nwebhook = [\"hooks.example.com\"]\n",
        tenant("acme", API_KEY, &format!("[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{}\" }}\n", sink.url))
    );
    let gw = Gateway::start(dir.path(), &cfg);
    let r = gw.send(&json!({"channel": "webhook", "content": {"text": "x"}, "recipients": [{"to": "a"}]})).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = gw.wait_message(&id, Duration::from_secs(20), |v| v["deliveries"][0]["status"] != "queued").await;
    assert_eq!(v["deliveries"][0]["status"], "failed");
    assert!(v["deliveries"][0]["detail"].as_str().unwrap().contains("127.0.0.1"), "{v}");
    assert!(sink.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_gateway_on_the_same_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _gw = Gateway::start(dir.path(), &tenant("acme", API_KEY, ""));
    let out = std::process::Command::new(crate::harness::gateway_bin()).arg("--config").arg(dir.path().join("herald.toml")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another herald-gateway"), "{}", String::from_utf8_lossy(&out.stderr));
}
