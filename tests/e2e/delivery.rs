//! Notifications reach real receivers: a webhook (signed, single and batch),
//! a real SMTP server with AUTH; provider errors are retried or failed; the
//! ledger bills what was sent.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::{API_KEY, Gateway, eventually, tenant};
use crate::sinks::{Answer, SmtpSink, WebhookSink};

const FAST_RETRY: &str = "[retry]\nmax_attempts = 4\nbase_ms = 50\nmax_ms = 200\n";

fn webhook_tenant(url: &str, batch: bool) -> String {
    tenant(
        "acme",
        API_KEY,
        &format!(
            "[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\", secret = \"s3cret\", batch = {batch} }}\n\
             [[tenants.prices]]\nchannel = \"webhook\"\nunit_minor = 3\n\
             [[tenants.templates]]\nid = \"greet\"\nsubject = \"Hi {{{{ name }}}}\"\ntext = \"Hello {{{{ name }}}}, order {{{{ order }}}}\"\n"
        ),
    )
}

fn all_settled(v: &Value) -> bool {
    v["deliveries"].as_array().unwrap().iter().all(|d| !matches!(d["status"].as_str(), Some("queued" | "retrying")))
}

fn statuses(v: &Value) -> Vec<String> {
    v["deliveries"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_delivers_rendered_signed_requests_and_bills_them() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &webhook_tenant(&sink.url, false));
    let r = gw
        .send(&json!({
            "channel": "webhook", "template": "greet", "variables": {"order": 42},
            "recipients": [{"to": "ann", "variables": {"name": "Ann"}}, {"to": "bob", "variables": {"name": "Bob", "order": 7}}],
            "metadata": {"source": "e2e"}
        }))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let view = gw.wait_message(&id, Duration::from_secs(20), all_settled).await;
    assert_eq!(statuses(&view), ["sent", "sent"]);
    assert_eq!(view["cost_minor"], 6, "two sends at 3 minor units");

    let got = sink.received();
    assert_eq!(got.len(), 2, "one request per delivery when batch = false");
    for req in &got {
        let body = req.json();
        let ts = req.header("x-herald-timestamp").expect("timestamp header");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&req.body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(req.header("x-herald-signature").as_deref(), Some(want.as_str()), "HMAC over timestamp.body");
        assert_eq!(req.header("x-herald-delivery").as_deref(), body["id"].as_str());
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(body["metadata"]["source"], "e2e");
        match body["recipient"].as_str().unwrap() {
            "ann" => assert_eq!((body["subject"].as_str(), body["text"].as_str()), (Some("Hi Ann"), Some("Hello Ann, order 42"))),
            "bob" => assert_eq!(body["text"], "Hello Bob, order 7", "recipient variables override shared ones"),
            other => panic!("unexpected recipient {other}"),
        }
    }

    let ledger = gw.get("/v1/ledger", Some(API_KEY)).await.json();
    assert_eq!(ledger["balance_minor"], -6);
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 2);
    assert!(ledger["entries"].as_array().unwrap().iter().all(|e| e["kind"] == "debit" && e["amount_minor"] == 3));
    let metrics = gw.metrics().await;
    assert!(metrics.contains("herald_deliveries_total{channel=\"webhook\",outcome=\"sent\",tenant=\"acme\"} 2"), "{metrics}");
    assert!(metrics.contains("herald_accepted_total{channel=\"webhook\",tenant=\"acme\"} 2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_batch_mode_sends_one_request_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &format!("[dispatch]\nlinger_ms = 200\n{}", webhook_tenant(&sink.url, true)));
    let recipients: Vec<Value> = (0..30).map(|i| json!({"to": format!("user{i}")})).collect();
    let r = gw.send(&json!({"channel": "webhook", "content": {"text": "hi {{ recipient }}"}, "recipients": recipients})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    gw.wait_message(&id, Duration::from_secs(20), all_settled).await;
    let got = sink.received();
    assert_eq!(got.len(), 1, "30 deliveries fit one batch");
    let body = got[0].json();
    let list = body["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 30);
    assert_eq!(list[7]["text"], "hi user7");
    assert!(got[0].header("x-herald-signature").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_errors_are_retried_with_backoff_throttled_or_failed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &format!("{FAST_RETRY}{}", webhook_tenant(&sink.url, false)));

    // Two 503s, then success: sent on the third attempt.
    sink.script([Answer::status(503), Answer::status(503)]);
    let id = gw.send(&json!({"channel": "webhook", "content": {"text": "x"}, "recipients": [{"to": "a"}]})).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = gw.wait_message(&id, Duration::from_secs(20), all_settled).await;
    assert_eq!(statuses(&v), ["sent"]);
    assert_eq!(v["deliveries"][0]["attempts"], 3);

    // 429 with Retry-After: 1 → waits at least a second, then sent.
    sink.script([Answer { status: 429, headers: vec![("retry-after", "1".into())], delay: Duration::ZERO }]);
    let started = std::time::Instant::now();
    let id = gw.send(&json!({"channel": "webhook", "content": {"text": "x"}, "recipients": [{"to": "b"}]})).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = gw.wait_message(&id, Duration::from_secs(20), all_settled).await;
    assert_eq!(statuses(&v), ["sent"]);
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After honoured");
    assert!(gw.metrics().await.contains("outcome=\"throttled\",tenant=\"acme\"} 1"));

    // A permanent 400: failed at once, not billed.
    sink.script([Answer::status(400)]);
    let id = gw.send(&json!({"channel": "webhook", "content": {"text": "x"}, "recipients": [{"to": "c"}]})).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = gw.wait_message(&id, Duration::from_secs(20), all_settled).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert_eq!(v["deliveries"][0]["attempts"], 1);
    assert_eq!(v["cost_minor"], 0);

    // Always 503: dead-lettered after max_attempts.
    sink.set_default(Answer::status(503));
    let id = gw.send(&json!({"channel": "webhook", "content": {"text": "x"}, "recipients": [{"to": "d"}]})).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = gw.wait_message(&id, Duration::from_secs(20), all_settled).await;
    assert_eq!(statuses(&v), ["dead"]);
    assert_eq!(v["deliveries"][0]["attempts"], 4);
    assert!(v["deliveries"][0]["detail"].as_str().unwrap().contains("gave up after 4 attempts"));
    assert!(gw.metrics().await.contains("outcome=\"dead_lettered\",tenant=\"acme\"} 1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn email_arrives_at_a_real_smtp_server_with_auth_and_sanitized_html() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(dir.path(), "mailer", "pa55word");
    let account = format!(
        "[[tenants.accounts]]\nname = \"mail\"\nplugin = \"email\"\n\
         config = {{ from = \"noreply@acme.test\", from_name = \"Acme 通知\", smtp = {{ host = \"127.0.0.1\", port = {}, tls = \"none\", \
         username = \"mailer\", password = \"pa55word\", allow_plaintext_auth = true }} }}\n\
         [[tenants.prices]]\nchannel = \"email\"\nunit_minor = 2\n",
        smtp.port
    );
    let gw = Gateway::start(dir.path(), &format!("{FAST_RETRY}{}", tenant("acme", API_KEY, &account)));
    let r = gw
        .send(&json!({
            "channel": "email",
            "content": {
                "subject": "订单 {{ order }} shipped",
                "text": "Order {{ order }} is on its way",
                "html": "<p onclick=\"steal()\">Order <b>{{ order }}</b></p><script>alert(1)</script><a href=\"javascript:x()\">x</a>"
            },
            "variables": {"order": "A-1"},
            "recipients": [{"to": "ann@example.test"}, {"to": "reject-me@example.test"}]
        }))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = gw.wait_message(&id, Duration::from_secs(30), all_settled).await;
    assert_eq!(statuses(&v), ["sent", "failed"], "{v}");
    assert!(v["deliveries"][1]["detail"].as_str().unwrap().contains("550"), "{v}");
    assert_eq!(v["cost_minor"], 2, "only the sent mail is billed");

    eventually(Duration::from_secs(10), "mail stored", || smtp.messages().len() == 1).await;
    let m = &smtp.messages()[0];
    assert_eq!(m["auth_user"], "mailer", "AUTH happened");
    assert_eq!(m["mail_from"], "noreply@acme.test");
    assert_eq!(m["rcpt_tos"], json!(["ann@example.test"]));
    assert_eq!(m["headers"]["Subject"], "订单 A-1 shipped");
    assert!(m["headers"]["From"].as_str().unwrap().contains("Acme 通知"));
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(m["text"].as_str().unwrap().trim(), "Order A-1 is on its way");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("<b>A-1</b>"), "{html}");
    for bad in ["<script", "onclick", "javascript:"] {
        assert!(!html.contains(bad), "{bad} survived sanitizing: {html}");
    }
}
