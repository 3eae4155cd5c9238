//! The fault suite: what a hostile client and bad luck do, and the invariant
//! that must hold after each — every `202` ends delivered, or dead-lettered
//! (or failed) with a reason; exactly one ledger debit per billed send; the
//! statuses agree with the ledger.
//!
//! Kafka broker and Cassandra restarts on the distributed path are in
//! `distributed.rs` (same invariant, checked there against the CQL ledger).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{API_KEY, Gateway, eventually, request, tenant};
use crate::sinks::{Answer, SmtpSink, WebhookSink};

const OPERATOR: &str = "fault-operator-0123456789";
/// Price of one webhook send, so that every send is a ledger debit.
const PRICE: i64 = 3;

fn config(sink: &str, extra: &str) -> String {
    format!(
        "admin_token = \"{OPERATOR}\"\n{extra}\n{}",
        tenant(
            "acme",
            API_KEY,
            &format!(
                "[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{sink}\" }}\n\
                 [[tenants.prices]]\nchannel = \"webhook\"\nunit_minor = {PRICE}\n"
            )
        )
    )
}

/// Every delivery of `ids` is settled (no `queued`/`retrying` left), with a
/// reason on each that did not arrive; one debit per `sent` delivery and
/// none for the others; the balance says the same. Returns the statuses.
async fn assert_invariant(gw: &Gateway, ids: &[String]) -> HashMap<String, String> {
    let mut statuses = HashMap::new();
    for id in ids {
        let v = gw
            .wait_message(id, Duration::from_secs(60), |v| {
                v["deliveries"].as_array().is_some_and(|d| d.iter().all(|d| !matches!(d["status"].as_str(), Some("queued" | "retrying"))))
            })
            .await;
        for d in v["deliveries"].as_array().unwrap() {
            let status = d["status"].as_str().unwrap().to_string();
            if status != "sent" {
                assert!(d["detail"].as_str().is_some_and(|s| !s.is_empty()), "a {status} delivery without a reason: {d}");
            }
            statuses.insert(d["id"].as_str().unwrap().to_string(), status);
        }
    }
    let ledger = gw.get("/v1/ledger?limit=1000", Some(API_KEY)).await.json();
    let mut debits: HashMap<String, usize> = HashMap::new();
    for e in ledger["entries"].as_array().unwrap() {
        if e["kind"] == "debit" {
            *debits.entry(e["delivery_id"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let sent: HashSet<&String> = statuses.iter().filter(|(_, s)| *s == "sent").map(|(id, _)| id).collect();
    for (id, status) in &statuses {
        let n = debits.get(id).copied().unwrap_or(0);
        let want = usize::from(status == "sent");
        assert_eq!(n, want, "delivery {id} is {status} with {n} debits");
    }
    assert_eq!(ledger["balance_minor"].as_i64().unwrap(), -PRICE * sent.len() as i64, "balance = -price x sent");
    statuses
}

async fn send(gw: &Gateway, body: &Value, key: Option<&str>) -> crate::harness::Resp {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    gw.post("/v1/messages", Some(API_KEY), &headers, body.to_string()).await
}

fn message(n: usize, prefix: &str) -> Value {
    let recipients: Vec<Value> = (0..n).map(|i| json!({"to": format!("{prefix}{i}")})).collect();
    json!({"channel": "webhook", "content": {"text": "hello"}, "recipients": recipients})
}

/// Issue 10, point 1: the gateway recorded and published a keyed message but
/// died before it stored the answer; the client retried the same key after
/// the restart, so the message was queued twice. Both copies met in one batch
/// and the plugin output ("delivery id … in two requests") failed all of them,
/// and other messages batched with them. Now each delivery is sent once.
#[tokio::test(flavor = "multi_thread")]
async fn keyed_retry_after_a_lost_answer_sends_each_delivery_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let mut gw = Gateway::start(dir.path(), &config(&sink.url, "[dispatch]\nlinger_ms = 300\n"));
    // Due in 4 s, so nothing is sent before the "crash".
    let at = chrono::Utc::now() + chrono::Duration::seconds(4);
    let mut body = message(20, "r");
    body["send_at"] = json!(at.to_rfc3339());
    let first = send(&gw, &body, Some("order-42")).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let id = first.json()["id"].as_str().unwrap().to_string();
    gw.kill9();
    // The crash came before the answer was stored: forget it.
    let db = rusqlite::Connection::open(dir.path().join("herald.db")).unwrap();
    assert_eq!(db.execute("DELETE FROM idempotency", []).unwrap(), 1);
    drop(db);
    gw.restart();
    let again = send(&gw, &body, Some("order-42")).await;
    assert_eq!(again.status, 202, "{}", again.text());
    assert_eq!(again.json()["id"], id.as_str(), "the same key names the same message");
    // Another message of the tenant, due at the same moment, shares the batch.
    let mut other = message(20, "o");
    other["send_at"] = json!(at.to_rfc3339());
    let other = send(&gw, &other, None).await.json()["id"].as_str().unwrap().to_string();

    let statuses = assert_invariant(&gw, &[id.clone(), other.clone()]).await;
    assert!(statuses.values().all(|s| s == "sent"), "{statuses:?}\n{}", gw.log());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for d in sink.delivery_ids() {
        *seen.entry(d).or_default() += 1;
    }
    assert_eq!(seen.len(), 40);
    assert!(seen.values().all(|&n| n == 1), "each delivery sent once: {seen:?}");
}

/// kill -9 twice under keyed load whose answers are lost in the crash: the
/// client retries every request it got no answer for, with the same key.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_keyed_retries_loses_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    sink.set_default(Answer { status: 200, headers: vec![], delay: Duration::from_millis(20) });
    let mut gw = Gateway::start(dir.path(), &config(&sink.url, "[dispatch]\nlinger_ms = 20\n"));
    let keys: Vec<String> = (0..120).map(|i| format!("k-{i}")).collect();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut pending: Vec<String> = keys.clone();
    let mut crashes = 0;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for (n, key) in pending.iter().enumerate() {
            if crashes < 2 && (n == 25 || n == 70) {
                // The crash: answers of requests in flight are lost.
                gw.kill9();
                gw.restart();
                crashes += 1;
            }
            let url = format!("{}/v1/messages", gw.url);
            let body = message(3, &format!("{key}-")).to_string();
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                request("POST", &url, Some(API_KEY), &[("content-type", "application/json"), ("idempotency-key", key)], body.into()),
            )
            .await;
            match r {
                Ok(r) if r.status == 202 => {
                    let id = r.json()["id"].as_str().unwrap().to_string();
                    if let Some(old) = ids.insert(key.clone(), id.clone()) {
                        assert_eq!(old, id, "a key keeps its message");
                    }
                }
                _ => next.push(key.clone()),
            }
        }
        pending = next;
    }
    assert_eq!(crashes, 2);
    let ids: Vec<String> = ids.into_values().collect();
    let statuses = assert_invariant(&gw, &ids).await;
    assert_eq!(statuses.len(), 360);
    assert!(statuses.values().all(|s| s == "sent"), "{statuses:?}");
    let arrived: HashSet<String> = sink.delivery_ids().into_iter().collect();
    assert!(statuses.keys().all(|id| arrived.contains(id)), "every accepted delivery arrived");
}

/// Issue 10, point 2 at send time: a recipient the plugin rejects (its whole
/// `build` fails) fails alone; the 19 others of its message and another
/// message in the same batch are sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_the_plugin_rejects_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let cfg = format!(
        "admin_token = \"{OPERATOR}\"\n[dispatch]\nlinger_ms = 300\n{}",
        tenant(
            "acme",
            API_KEY,
            &format!(
                "[[tenants.accounts]]\nname = \"picky\"\nplugin = \"hostile\"\nconfig = {{ mode = \"picky\", url = \"{}\" }}\n\
                 [[tenants.prices]]\nchannel = \"hostile\"\nunit_minor = {PRICE}\n",
                sink.url
            )
        )
    );
    let gw = Gateway::start(dir.path(), &cfg);
    let mut one =
        json!({"channel": "hostile", "content": {"text": "hi"}, "recipients": (0..19).map(|i| json!({"to": format!("u{i}")})).collect::<Vec<_>>()});
    one["recipients"].as_array_mut().unwrap().push(json!({"to": "bad-address"}));
    let two =
        json!({"channel": "hostile", "content": {"text": "hi"}, "recipients": (0..20).map(|i| json!({"to": format!("v{i}")})).collect::<Vec<_>>()});
    let a = send(&gw, &one, None).await.json()["id"].as_str().unwrap().to_string();
    let b = send(&gw, &two, None).await.json()["id"].as_str().unwrap().to_string();
    let statuses = assert_invariant(&gw, &[a.clone(), b.clone()]).await;
    let failed: Vec<_> = statuses.iter().filter(|(_, s)| *s != "sent").map(|(id, _)| id.clone()).collect();
    assert_eq!(failed, vec![format!("{a}.19")], "only the bad recipient fails: {statuses:?}");
    let v = gw.get(&format!("/v1/messages/{a}"), Some(API_KEY)).await.json();
    assert_eq!(v["deliveries"][19]["status"], "failed");
    assert!(v["deliveries"][19]["detail"].as_str().unwrap().contains("refuses addresses"), "{}", v["deliveries"][19]);
}

/// Issue 10, point 2 at ingest: addresses are checked per channel.
#[tokio::test(flavor = "multi_thread")]
async fn bad_addresses_are_refused_at_ingest_naming_the_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(dir.path(), "mailer", "pa55word");
    let gw = Gateway::start(dir.path(), &email_config(smtp.port));
    let mut recipients: Vec<Value> = (0..19).map(|i| json!({"to": format!("u{i}@acme.test")})).collect();
    recipients.push(json!({"to": "not an address, evil@x.example"}));
    let r = send(&gw, &json!({"channel": "email", "content": {"subject": "s", "text": "t"}, "recipients": recipients}), None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error().1.as_deref(), Some("recipients[19].to"));
    for bad in ["\r\nBcc: victim@evil.example", "ann@acme.test\r\n", " ann@acme.test"] {
        let r = send(&gw, &json!({"channel": "email", "content": {"text": "t"}, "recipients": [{"to": bad}]}), None).await;
        assert_eq!((r.status, r.error().1.as_deref()), (400, Some("recipients[0].to")), "{bad:?}: {}", r.text());
    }
}

fn email_config(port: u16) -> String {
    format!(
        "admin_token = \"{OPERATOR}\"\ntesting_clock = true\n{}",
        tenant(
            "acme",
            API_KEY,
            &format!(
                "[[tenants.accounts]]\nname = \"mail\"\nplugin = \"email\"\n\
                 config = {{ from = \"noreply@acme.test\", smtp = {{ host = \"127.0.0.1\", port = {port}, tls = \"none\", \
                 username = \"mailer\", password = \"pa55word\", allow_plaintext_auth = true }} }}\n\
                 [[tenants.prices]]\nchannel = \"email\"\nunit_minor = {PRICE}\n"
            )
        )
    )
}

async fn advance(gw: &Gateway, ms: i64) {
    let r = gw.post("/admin/clock", Some(OPERATOR), &[("content-type", "application/json")], json!({"advance_ms": ms}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn statuses_of(gw: &Gateway, id: &str) -> Vec<String> {
    let v = gw.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await.json();
    v["deliveries"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap().to_string()).collect()
}

/// Issue 10, point 3: a receiver that fails for 40 minutes (on the test clock)
/// and then recovers gets every delivery; nothing is dead-lettered meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_forty_minutes_then_back_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    sink.set_default(Answer::status(500));
    let gw = Gateway::start(dir.path(), &config(&sink.url, "testing_clock = true\n"));
    let id = send(&gw, &message(5, "r"), None).await.json()["id"].as_str().unwrap().to_string();
    gw.wait_message(&id, Duration::from_secs(20), |v| v["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "retrying")).await;
    // 40 minutes in 2-minute steps: each step makes the due retries fire.
    for _ in 0..20 {
        advance(&gw, 120_000).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let s = statuses_of(&gw, &id).await;
        assert!(s.iter().all(|s| s == "retrying" || s == "queued"), "still retrying during the outage: {s:?}");
    }
    let v = gw.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await.json();
    for d in v["deliveries"].as_array().unwrap() {
        assert!(
            // Past the old budget of 5 attempts.
            d["attempts"].as_u64().unwrap() >= 6,
            "retried during the outage: {d}"
        );
    }
    assert!(sink.received().is_empty());
    sink.set_default(Answer::status(200));
    // The next retry is at most an hour away.
    for _ in 0..40 {
        advance(&gw, 120_000).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if statuses_of(&gw, &id).await.iter().all(|s| s == "sent") {
            break;
        }
    }
    let statuses = assert_invariant(&gw, std::slice::from_ref(&id)).await;
    assert!(statuses.values().all(|s| s == "sent"), "{statuses:?}");
}

/// Issue 10, point 3: SMTP answering 451 (defer) and 550 (reject) to some
/// recipients: the accepted one is sent, the refused one fails alone at
/// once, the deferred one is retried for 24 hours (test clock) and then
/// dead-lettered with its whole history.
#[tokio::test(flavor = "multi_thread")]
async fn smtp_4xx_is_retried_for_a_day_then_dead_lettered_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(dir.path(), "mailer", "pa55word");
    let gw = Gateway::start(dir.path(), &email_config(smtp.port));
    let body = json!({"channel": "email", "content": {"subject": "s", "text": "t"},
                      "recipients": [{"to": "ann@acme.test"}, {"to": "defer1@acme.test"}, {"to": "reject1@acme.test"}]});
    let r = send(&gw, &body, None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "first attempts settled", || smtp.messages().len() == 1).await;
    let v = gw.wait_message(&id, Duration::from_secs(20), |v| v["deliveries"][2]["status"] == "failed").await;
    assert_eq!(v["deliveries"][0]["status"], "sent");
    // 23 hours: still retrying.
    for _ in 0..23 {
        advance(&gw, 3_600_000).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(statuses_of(&gw, &id).await[1], "retrying");
    for _ in 0..4 {
        advance(&gw, 3_600_000).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let v = gw.wait_message(&id, Duration::from_secs(20), |v| v["deliveries"][1]["status"] == "dead").await;
    assert!(v["deliveries"][1]["detail"].as_str().unwrap().contains("451"), "{}", v["deliveries"][1]);
    let letters = gw.get("/admin/dead-letters", Some(OPERATOR)).await.json();
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["delivery_id"], format!("{id}.1"));
    let history = letter["history"].as_array().unwrap();
    assert!(history.len() >= 20, "every attempt kept: {} entries", history.len());
    assert!(history.iter().all(|h| h["detail"].as_str().unwrap_or_default().contains("451")), "{history:?}");
    assert_invariant(&gw, std::slice::from_ref(&id)).await;
}

/// A receiver that hangs (longer than the request timeout) and then answers:
/// the deliveries are retried and arrive; nothing waits on it forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_is_timed_out_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let hang = Answer { status: 200, headers: vec![], delay: Duration::from_secs(30) };
    sink.script([hang.clone(), hang]);
    let gw = Gateway::start(dir.path(), &config(&sink.url, "[dispatch]\nrequest_timeout_ms = 1000\n[retry]\nbase_ms = 200\n"));
    let id = send(&gw, &message(2, "r"), None).await.json()["id"].as_str().unwrap().to_string();
    let statuses = assert_invariant(&gw, std::slice::from_ref(&id)).await;
    assert!(statuses.values().all(|s| s == "sent"), "{statuses:?}");
}

/// Issue 10, point 5: strict input.
#[tokio::test(flavor = "multi_thread")]
async fn strict_input_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &config(&sink.url, ""));
    let ok = message(1, "r").to_string();
    let cases = [
        (format!("{ok} xyz"), "body"),
        (ok[..ok.len() - 3].to_string(), "body"),
        (r#"{"channel": "webhook", "content": {"text": "t"}, "recipients": [{"to": "a\u0000b"}]}"#.to_string(), "recipients[0].to"),
        (r#"{"channel": "webhook", "content": {"text": "t"}, "recipients": [{"to": "a\r\n"}]}"#.to_string(), "recipients[0].to"),
    ];
    for (body, field) in cases {
        let r = gw.post("/v1/messages", Some(API_KEY), &[("content-type", "application/json")], body.clone()).await;
        assert!((400..500).contains(&r.status), "{body:?}: {}", r.text());
        assert_eq!(r.error().1.as_deref(), Some(field), "{body:?}: {}", r.text());
    }
}

/// Issue 10, point 4: the config file is authoritative for what it declares.
#[tokio::test(flavor = "multi_thread")]
async fn keys_and_accounts_removed_from_the_file_are_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    const SECOND: &str = "hk_second_0123456789abcdef";
    let with = |keys: &str, accounts: &str| format!("[[tenants]]\nid = \"acme\"\napi_keys = [{keys}]\n{accounts}\n");
    let hook = |name: &str| format!("[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"webhook\"\nconfig = {{ url = \"{}\" }}\n", sink.url);
    let mut gw = Gateway::start(dir.path(), &with(&format!("\"{API_KEY}\", \"{SECOND}\""), &format!("{}{}", hook("a"), hook("b"))));
    assert_eq!(gw.get("/v1/plugins", Some(SECOND)).await.status, 200);
    gw.kill9();
    gw.rewrite_config(&with(&format!("\"{API_KEY}\""), &hook("a")));
    gw.restart();
    assert_eq!(gw.get("/v1/plugins", Some(SECOND)).await.status, 401, "removed key revoked");
    assert_eq!(gw.get("/v1/plugins", Some(API_KEY)).await.status, 200, "kept key works");
    let r = send(&gw, &json!({"channel": "webhook", "account": "b", "content": {"text": "t"}, "recipients": [{"to": "x"}]}), None).await;
    assert_eq!((r.status, r.error().1.as_deref()), (422, Some("account")), "removed account gone: {}", r.text());
    let r = send(&gw, &json!({"channel": "webhook", "account": "a", "content": {"text": "t"}, "recipients": [{"to": "x"}]}), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
}

/// Malformed provider answers (an empty 200 where Feishu answers JSON, an
/// HTML 502 from a proxy): each delivery ends with a reason, nothing is
/// debited that was not sent, and the gateway keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_provider_answers_end_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    // 200 with an empty body, then 502s: retried, then dead-lettered.
    sink.script([Answer::status(200)]);
    sink.set_default(Answer::status(502));
    let base = sink.url.trim_end_matches("/hook").to_string();
    let cfg = format!(
        "admin_token = \"{OPERATOR}\"\n[retry]\nmax_attempts = 3\nbase_ms = 50\nmax_ms = 100\n[plugins.redirect_hosts]\n\"open.feishu.cn\" = \"{base}\"\n{}",
        tenant(
            "acme",
            API_KEY,
            &format!(
                "[[tenants.accounts]]\nname = \"bot\"\nplugin = \"feishu\"\n\
                 config = {{ webhook = \"https://open.feishu.cn/open-apis/bot/v2/hook/5e3d587e-d78e-4a07-bd07-265f269f86fd\" }}\n\
                 [[tenants.prices]]\nchannel = \"feishu\"\nunit_minor = {PRICE}\n"
            )
        )
    );
    let gw = Gateway::start(dir.path(), &cfg);
    let mut ids = Vec::new();
    for text in ["one", "two"] {
        let r = send(&gw, &json!({"channel": "feishu", "content": {"text": text}, "recipients": [{"to": "group"}]}), None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json()["id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let statuses = assert_invariant(&gw, &ids).await;
    assert!(statuses.values().all(|s| s != "sent"), "{statuses:?}");
    assert_eq!(gw.get("/healthz", None).await.status, 200);
}

/// Issue 10, point 2 from the console: a push's raw list is checked like an
/// API request (a bad number is refused naming `targets.list[i].to`); a
/// directory user whose mobile does not fit the channel is skipped, never a
/// failing delivery.
#[tokio::test(flavor = "multi_thread")]
async fn console_pushes_check_addresses_per_channel() {
    let dir = tempfile::tempdir().unwrap();
    let admin = crate::admin::Admin::start(dir.path());
    let (_, t) = admin.register("Acme", "boss").await;
    let t = Some(t.as_str());
    let acc = admin
        .call(
            "POST",
            "/accounts",
            t,
            Some(json!({"name": "sms", "channel": "twilio-sms",
            "config": {"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "tok-0123456789", "from": "+14155550100"}})),
        )
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    let push = |list: Value, targets_extra: Value| {
        let mut targets = json!({"list": list});
        if let (Some(a), Some(b)) = (targets.as_object_mut(), targets_extra.as_object()) {
            a.extend(b.clone());
        }
        json!({"title": "t", "channel": "twilio-sms", "account": "sms", "content": {"text": "hi"}, "targets": targets,
               "schedule": {"mode": "at", "at": "2099-01-01T00:00:00Z"}})
    };
    let r = admin.call("POST", "/pushes", t, Some(push(json!([{"to": "+14155552671"}, {"to": "abc123"}]), json!({})))).await;
    assert_eq!((r.status, r.error().1.as_deref()), (400, Some("targets.list[1].to")), "{}", r.text());
    let r = admin.call("POST", "/pushes", t, Some(push(json!([{"to": "1380013800"}]), json!({})))).await;
    assert_eq!((r.status, r.error().1.as_deref()), (400, Some("targets.list[0].to")), "{}", r.text());
    let r = admin.call("POST", "/pushes", t, Some(push(json!([{"to": "+14155552671"}, {"to": "13800138000"}]), json!({})))).await;
    assert_eq!(r.status, 201, "{}", r.text());
}
