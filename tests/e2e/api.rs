//! The ingest API's contract: authentication, validation with field-naming
//! errors, idempotency, tenant isolation. Rejected requests record nothing.

use std::time::Duration;

use serde_json::json;

use crate::harness::{API_KEY, Gateway, OTHER_KEY, tenant};
use crate::sinks::WebhookSink;

fn config(url: &str) -> String {
    let accounts = format!(
        "[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\" }}\n\
         [[tenants.accounts]]\nname = \"hook2\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\" }}\n\
         [[tenants.accounts]]\nname = \"mail\"\nplugin = \"email\"\nconfig = {{ from = \"a@b.test\", smtp = {{ host = \"127.0.0.1\", port = 1, tls = \"none\" }} }}\n"
    );
    format!(
        "[limits]\nmax_body_bytes = 20000\nmax_recipients = 5\n{}{}",
        tenant("acme", API_KEY, &accounts),
        tenant("globex", OTHER_KEY, &format!("[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\" }}\n"))
    )
}

fn ok_body() -> serde_json::Value {
    json!({"channel": "webhook", "account": "hook", "content": {"text": "hi"}, "recipients": [{"to": "a"}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_documented_errors_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &config(&sink.url));
    let json_ct = [("content-type", "application/json")];

    // (case, API key, body, status, error code, field)
    type Case<'a> = (&'a str, Option<&'a str>, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("no key", None, ok_body().to_string(), 401, "unauthenticated", None),
        ("bad key", Some("hk_wrong_0000000000000000"), ok_body().to_string(), 401, "unauthenticated", None),
        ("malformed JSON", Some(API_KEY), "{\"channel\": ".into(), 400, "invalid_json", None),
        ("wrong type", Some(API_KEY), json!({"channel": "webhook", "recipients": "a"}).to_string(), 400, "invalid_field", Some("recipients")),
        ("unknown field", Some(API_KEY), json!({"channel": "webhook", "recipients": [], "colour": 1}).to_string(), 400, "invalid_field", None),
        (
            "no recipients",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "x"}, "recipients": []}).to_string(),
            400,
            "invalid_field",
            Some("recipients"),
        ),
        (
            "too many recipients",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "x"},
            "recipients": (0..6).map(|i| json!({"to": format!("r{i}")})).collect::<Vec<_>>()})
            .to_string(),
            400,
            "limit_exceeded",
            Some("recipients"),
        ),
        (
            "empty recipient",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "x"}, "recipients": [{"to": "a"}, {"to": ""}]}).to_string(),
            400,
            "invalid_field",
            Some("recipients[1].to"),
        ),
        (
            "unknown channel",
            Some(API_KEY),
            json!({"channel": "pigeon", "content": {"text": "x"}, "recipients": [{"to": "a"}]}).to_string(),
            422,
            "unknown_channel",
            Some("channel"),
        ),
        (
            "unknown account",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "nope", "content": {"text": "x"}, "recipients": [{"to": "a"}]}).to_string(),
            422,
            "unknown_account",
            Some("account"),
        ),
        (
            "ambiguous account",
            Some(API_KEY),
            json!({"channel": "webhook", "content": {"text": "x"}, "recipients": [{"to": "a"}]}).to_string(),
            400,
            "invalid_field",
            Some("account"),
        ),
        (
            "account of another channel",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "mail", "content": {"text": "x"}, "recipients": [{"to": "a"}]}).to_string(),
            422,
            "account_channel_mismatch",
            Some("account"),
        ),
        (
            "another tenant's account",
            Some(OTHER_KEY),
            json!({"channel": "webhook", "account": "hook2", "content": {"text": "x"}, "recipients": [{"to": "a"}]}).to_string(),
            422,
            "unknown_account",
            Some("account"),
        ),
        (
            "unknown template",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "template": "nope", "recipients": [{"to": "a"}]}).to_string(),
            422,
            "unknown_template",
            Some("template"),
        ),
        (
            "template syntax error",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "{% if %}"}, "recipients": [{"to": "a"}]}).to_string(),
            400,
            "invalid_template",
            Some("content.text"),
        ),
        (
            "oversize body",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "x".repeat(30_000)}, "recipients": [{"to": "a"}]}).to_string(),
            413,
            "too_large",
            None,
        ),
        (
            "missing recipients",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "x"}}).to_string(),
            400,
            "invalid_field",
            Some("recipients"),
        ),
        (
            "missing nested field",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "x"}, "recipients": [{"to": "a"}, {"variables": {}}]}).to_string(),
            400,
            "invalid_field",
            Some("recipients[1].to"),
        ),
        (
            "send_at without offset",
            Some(API_KEY),
            json!({"channel": "webhook", "account": "hook", "content": {"text": "x"}, "recipients": [{"to": "a"}], "send_at": "2030-01-01T09:00:00"})
                .to_string(),
            400,
            "invalid_field",
            Some("send_at"),
        ),
    ];
    for (name, key, body, status, code, field) in cases {
        let r = gw.post("/v1/messages", key, &json_ct, body).await;
        assert_eq!(r.status, status, "{name}: {}", r.text());
        if !code.is_empty() {
            let (got_code, got_field) = r.error();
            assert_eq!(got_code, code, "{name}: {}", r.text());
            if field.is_some() {
                assert_eq!(got_field.as_deref(), field, "{name}: {}", r.text());
            }
        }
    }
    let r = gw
        .post("/v1/messages", Some(API_KEY), &[("content-type", "application/json"), ("idempotency-key", "has space")], ok_body().to_string())
        .await;
    assert_eq!((r.status, r.error().1.as_deref()), (400, Some("Idempotency-Key")));
    let r = gw
        .post(
            "/v1/messages",
            Some(API_KEY),
            &json_ct,
            json!({"channel": "webhook", "content": {"text": "x"}, "recipients": [{"to": "a"}], "send_at": "9 am"}).to_string(),
        )
        .await;
    assert!(r.error().0 == "invalid_field" && r.text().contains("RFC 3339"), "names what a time must look like: {}", r.text());
    // A malformed query parameter is named; what axum rejects before a handler runs is in the same JSON shape.
    let r = gw.get("/v1/ledger?limit=abc", Some(API_KEY)).await;
    assert_eq!((r.status, r.error()), (400, ("invalid_field".to_string(), Some("limit".to_string()))), "{}", r.text());
    let r = gw.get("/v1/messages", Some(API_KEY)).await;
    assert_eq!((r.status, r.error().0.as_str()), (405, "method_not_allowed"), "{}", r.text());

    // Nothing was accepted, queued or sent.
    let metrics = gw.metrics().await;
    assert!(!metrics.contains("herald_accepted_total{"), "{metrics}");
    assert!(metrics.contains("herald_queue_depth 0") || !metrics.contains("herald_queue_depth 1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.received().is_empty());
    assert_eq!(gw.get("/v1/ledger", Some(API_KEY)).await.json()["entries"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_cannot_see_each_others_messages() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &config(&sink.url));
    let id = gw.send(&ok_body()).await.json()["id"].as_str().unwrap().to_string();
    assert_eq!(gw.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await.status, 200);
    let other = gw.get(&format!("/v1/messages/{id}"), Some(OTHER_KEY)).await;
    assert_eq!(other.status, 404, "another tenant's id looks like a missing one");
    assert!(!other.text().contains(&id[..8]) || other.error().0 == "not_found");
    assert_eq!(gw.get("/v1/messages/does-not-exist", Some(API_KEY)).await.status, 404);
    assert_eq!(gw.get(&format!("/v1/messages/{id}"), None).await.status, 401);
}

/// Times are Unix milliseconds in every answer; a request's `send_at` is an
/// RFC 3339 time with an offset or Unix milliseconds.
#[tokio::test(flavor = "multi_thread")]
async fn send_at_is_an_rfc_3339_time_or_unix_milliseconds_and_answered_in_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &config(&sink.url));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let at = (now / 1000 + 3600) * 1000; // whole seconds: the RFC 3339 form below has none
    let rfc3339 = chrono::DateTime::from_timestamp_millis(at).unwrap().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).to_rfc3339();
    for send_at in [json!(at), json!(rfc3339)] {
        let mut body = ok_body();
        body["send_at"] = send_at.clone();
        let r = gw.send(&body).await;
        assert_eq!(r.status, 202, "{send_at}: {}", r.text());
        assert_eq!(r.json()["send_at"], json!(at), "{send_at}: the answer says when, in Unix milliseconds");
        let id = r.json()["id"].as_str().unwrap().to_string();
        let v = gw.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await.json();
        assert_eq!((v["send_at"].clone(), v["deliveries"][0]["status"].clone()), (json!(at), json!("queued")));
        assert!(v["accepted_at"].as_i64().unwrap() >= now && v["deliveries"][0]["updated_at"].is_i64(), "{v}");
    }
    // A past time means now: the answer has no send_at.
    let mut body = ok_body();
    body["send_at"] = json!(now - 60_000);
    let r = gw.send(&body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.json().get("send_at").is_none(), "{}", r.text());
    for bad in [json!(1.5), json!(true), json!("2030-01-01T09:00:00")] {
        let mut body = ok_body();
        body["send_at"] = bad.clone();
        let r = gw.send(&body).await;
        assert_eq!((r.status, r.error()), (400, ("invalid_field".to_string(), Some("send_at".to_string()))), "{bad}: {}", r.text());
    }
}

/// The API's contract and its reference page are served without a key.
#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_and_the_reference_page_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &config(&sink.url));
    let doc = gw.get("/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/openapi/gateway.json")).unwrap();
    assert_eq!(doc.text(), committed, "the binary serves the committed document");
    let page = gw.get("/v1/docs", None).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<redoc"), "{}", page.text());
    let js = gw.get("/v1/docs/redoc.standalone.js", None).await;
    assert_eq!(js.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_replays_the_first_answer_and_sends_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &config(&sink.url));
    let h = [("content-type", "application/json"), ("idempotency-key", "order-42")];
    let first = gw.post("/v1/messages", Some(API_KEY), &h, ok_body().to_string()).await;
    assert_eq!(first.status, 202);
    // Concurrent and later repeats.
    let repeats = futures_join(&gw, &h, 5).await;
    for r in &repeats {
        assert_eq!(r.status, 202);
        assert_eq!(r.json()["id"], first.json()["id"]);
        assert_eq!(r.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    }
    let mut other = ok_body();
    other["content"]["text"] = json!("different");
    let conflict = gw.post("/v1/messages", Some(API_KEY), &h, other.to_string()).await;
    assert_eq!((conflict.status, conflict.error().0.as_str()), (409, "idempotency_key_reused"));
    // The same key is another tenant's own key.
    let theirs = gw.post("/v1/messages", Some(OTHER_KEY), &h, ok_body().to_string()).await;
    assert_eq!(theirs.status, 202);
    assert_ne!(theirs.json()["id"], first.json()["id"]);

    crate::harness::eventually(Duration::from_secs(10), "two deliveries", || sink.delivery_ids().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivery_ids().len(), 2, "one per tenant, none duplicated");
}

/// After `idempotency_ttl_hours` a key is forgotten: reusing it is a new
/// request (a new id, sent), not the old message under its old id.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_reused_after_its_ttl_is_a_new_request() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let cfg = format!("testing_clock = true\nadmin_token = \"clock-operator-token\"\nidempotency_ttl_hours = 1\n{}", config(&sink.url));
    let gw = Gateway::start(dir.path(), &cfg);
    let h = [("content-type", "application/json"), ("idempotency-key", "reminder-7")];
    let first = gw.post("/v1/messages", Some(API_KEY), &h, ok_body().to_string()).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let first_id = first.json()["id"].as_str().unwrap().to_string();
    crate::harness::eventually(Duration::from_secs(10), "the first send", || sink.delivery_ids().len() == 1).await;

    let r = gw
        .post("/admin/clock", Some("clock-operator-token"), &[("content-type", "application/json")], json!({"advance_ms": 61 * 60_000}).to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The same key with another body is no longer a conflict, and the same
    // body again is not a replay: each is a new message, sent.
    let mut other = ok_body();
    other["recipients"] = json!([{"to": "b"}, {"to": "c"}]);
    let second = gw.post("/v1/messages", Some(API_KEY), &h, other.to_string()).await;
    assert_eq!(second.status, 202, "{}", second.text());
    assert!(second.headers.get("idempotent-replayed").is_none());
    let second_id = second.json()["id"].as_str().unwrap().to_string();
    assert_ne!(second_id, first_id);
    let again = gw.post("/v1/messages", Some(API_KEY), &h, other.to_string()).await;
    assert_eq!((again.status, again.json()["id"].as_str()), (202, Some(second_id.as_str())), "remembered again from now on");
    crate::harness::eventually(Duration::from_secs(10), "the second message's two sends", || sink.delivery_ids().len() == 3).await;
    let view = gw.get(&format!("/v1/messages/{second_id}"), Some(API_KEY)).await.json();
    let to: Vec<&str> = view["deliveries"].as_array().unwrap().iter().map(|d| d["recipient"].as_str().unwrap()).collect();
    assert_eq!(to, ["b", "c"], "{view}");
    let old = gw.get(&format!("/v1/messages/{first_id}"), Some(API_KEY)).await.json();
    assert_eq!(old["deliveries"].as_array().unwrap().len(), 1, "the first message is untouched: {old}");
}

async fn futures_join(gw: &Gateway, h: &[(&str, &str)], n: usize) -> Vec<crate::harness::Resp> {
    let body = ok_body().to_string();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (url, body) = (gw.url.clone(), body.clone());
        let h: Vec<(String, String)> = h.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        set.spawn(async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            crate::harness::request("POST", &format!("{url}/v1/messages"), Some(API_KEY), &h, body.into()).await
        });
    }
    set.join_all().await
}
