//! Server-side request forgery (issue 11): tenant-supplied destinations may
//! not reach loopback or other private addresses unless the operator allows
//! them, checked on the resolved address; the admin refuses literal private
//! URLs; webhook header values are secrets (sealed, never returned, kept on
//! edit).

use std::time::Duration;

use serde_json::{Value, json};

use crate::admin::Admin;
use crate::harness::{API_KEY, Gateway, eventually, tenant};
use crate::sinks::WebhookSink;

const RETRY: &str = "[retry]\nmax_attempts = 3\nbase_ms = 50\nmax_ms = 100\n";

fn account(name: &str, url: &str) -> String {
    format!("[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\" }}\n")
}

fn settled(v: &Value) -> bool {
    v["deliveries"].as_array().unwrap().iter().all(|d| !matches!(d["status"].as_str(), Some("queued" | "retrying")))
}

async fn deliver(gw: &Gateway, account: &str) -> Value {
    let r = gw.send(&json!({"channel": "webhook", "account": account, "content": {"text": "hi"}, "recipients": [{"to": "x"}]})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    gw.wait_message(&id, Duration::from_secs(30), settled).await["deliveries"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_to_an_internal_address_fails_without_reaching_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let port = sink.url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_string();
    let accounts = [
        account("literal", &sink.url),
        account("named", &sink.url.replace("127.0.0.1", "localhost")),
        account("mapped", &sink.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")),
        account("v6", &sink.url.replace("127.0.0.1", "[::1]")),
        account("metadata", "http://169.254.169.254/latest/meta-data/"),
    ]
    .concat();
    // No allowlist: the harness's loopback allowance is replaced by an empty one.
    let gw = Gateway::start(dir.path(), &format!("transport.allow_private = []\n{RETRY}{}", tenant("acme", API_KEY, &accounts)));

    let d = deliver(&gw, "literal").await;
    assert_eq!(d["status"], "failed", "{d}");
    let detail = d["detail"].as_str().unwrap();
    assert!(detail.contains("destination 127.0.0.1 is a private address") && detail.contains("transport.allow_private"), "{detail}");
    assert_eq!(d["attempts"], 1, "a refused destination fails at once, it is not retried: {d}");

    // A name resolving to loopback: the resolved address is what counts, and
    // the refusal does not show what the name resolved to.
    let d = deliver(&gw, "named").await;
    assert_eq!(d["status"], "failed", "{d}");
    let detail = d["detail"].as_str().unwrap();
    assert!(detail.contains("destination localhost resolves to a private address"), "{detail}");
    assert!(!detail.contains("127.0.0.1") && !detail.contains("::1"), "{detail}");

    for name in ["mapped", "v6", "metadata"] {
        let d = deliver(&gw, name).await;
        assert_eq!(d["status"], "failed", "{name}: {d}");
        assert!(d["detail"].as_str().unwrap().contains("is a private address"), "{name}: {d}");
    }
    assert!(sink.received().is_empty(), "the internal service received nothing");
    drop(gw);

    // The operator allows exactly the sink: delivered, by address or by name.
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &format!("transport.allow_private = [\"127.0.0.1:{port}\"]\n{RETRY}{}", tenant("acme", API_KEY, &accounts)));
    assert_eq!(deliver(&gw, "literal").await["status"], "sent");
    assert_eq!(deliver(&gw, "named").await["status"], "sent");
    assert_eq!(sink.received().len(), 2);
    // Other private destinations stay refused.
    assert_eq!(deliver(&gw, "metadata").await["status"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_refuses_private_urls_and_keeps_webhook_headers_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let port = sink.url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_string();
    let gw = Gateway::start(dir.path(), "");
    // The admin allows exactly the sink.
    let admin = Admin::start_with(dir.path(), &[("HERALD_ADMIN_ALLOW_PRIVATE".into(), format!("[\"127.0.0.1:{port}\"]"))]);
    let (_tenant, t) = admin.register("Acme", "boss").await;

    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest",
        "https://10.1.2.3/",
        "http://[fd00:ec2::254]/",
    ] {
        let r = admin.call("POST", "/accounts", Some(&t), Some(json!({"name": "bad", "channel": "webhook", "config": {"url": url}}))).await;
        assert_eq!((r.status, r.error().0.as_str(), r.error().1.as_deref()), (422, "private_destination", Some("config.url")), "{url}: {}", r.text());
    }

    let token = "Bearer tok-SECRET-4711";
    let acc = admin
        .call(
            "POST",
            "/accounts",
            Some(&t),
            Some(json!({"name": "hook", "channel": "webhook",
            "config": {"url": sink.url, "headers": {"Authorization": token, "X-Team": "ops-team-value"}}})),
        )
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    assert!(!acc.text().contains("tok-SECRET"), "{}", acc.text());
    let listed = admin.call("GET", "/accounts", Some(&t), None).await;
    assert!(!listed.text().contains("tok-SECRET") && !listed.text().contains("ops-team-value"), "header values never returned: {}", listed.text());
    let headers = &listed.json()["items"][0]["config"]["headers"];
    assert_eq!(headers, &json!({"Authorization": null, "X-Team": null}), "names shown, values not");
    assert!(!admin.call("GET", "/accounts/hook", Some(&t), None).await.text().contains("tok-SECRET"));

    // Not in the database files in clear.
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("herald.db") {
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            for secret in [&b"tok-SECRET-4711"[..], b"ops-team-value"] {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret), "{name} holds a header value in clear");
            }
        }
    }
    assert!(files > 0, "no database file in {}", dir.path().display());

    // An edit leaving the headers out keeps them; the webhook still sends them.
    let edit = admin.call("PUT", "/accounts/hook", Some(&t), Some(json!({"channel": "webhook", "config": {"url": sink.url}}))).await;
    assert_eq!(edit.status, 200, "{}", edit.text());
    assert_eq!(edit.json()["config"]["headers"], json!({"Authorization": null, "X-Team": null}));
    let push = |title: &str| json!({"title": title, "channel": "webhook", "account": "hook", "content": {"text": "hi"}, "targets": {"list": [{"to": "room-1"}]}});
    let p = admin.call("POST", "/pushes", Some(&t), Some(push("One"))).await;
    assert_eq!(p.status, 201, "{}", p.text());
    eventually(Duration::from_secs(30), "the webhook delivery", || !sink.received().is_empty()).await;
    let got = sink.received();
    assert_eq!(got[0].header("authorization").as_deref(), Some(token), "the gateway opened the sealed header");
    assert_eq!(got[0].header("x-team").as_deref(), Some("ops-team-value"));

    // Sending the object back: `null` keeps a value, a key left out is removed.
    let edit = admin
        .call(
            "PUT",
            "/accounts/hook",
            Some(&t),
            Some(json!({"channel": "webhook",
            "config": {"url": sink.url, "headers": {"Authorization": null, "X-New": "new-value"}}})),
        )
        .await;
    assert_eq!(edit.status, 200, "{}", edit.text());
    assert_eq!(edit.json()["config"]["headers"], json!({"Authorization": null, "X-New": null}));
    let p = admin.call("POST", "/pushes", Some(&t), Some(push("Two"))).await;
    assert_eq!(p.status, 201, "{}", p.text());
    eventually(Duration::from_secs(30), "the second webhook delivery", || sink.received().len() >= 2).await;
    let second = &sink.received()[1];
    assert_eq!(second.header("authorization").as_deref(), Some(token));
    assert_eq!(second.header("x-new").as_deref(), Some("new-value"));
    assert_eq!(second.header("x-team"), None);
    drop(gw);
}
