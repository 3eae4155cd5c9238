//! The admin service against its real binary: tenancy, login lockout, RBAC
//! (function and data permissions), delete guards, sealed secrets, and a push
//! created in the admin delivered by the gateway sharing its database.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::{Gateway, Resp, eventually, plugin_dir, request, spawn_logged};
use crate::sinks::WebhookSink;

pub(crate) const OPERATOR: &str = "operator-token-0123456789";

pub(crate) struct Admin {
    child: Child,
    pub url: String,
}

impl Admin {
    pub(crate) fn start(data: &Path) -> Admin {
        Self::start_with(data, &[])
    }

    /// Start with extra `HERALD_ADMIN_*` variables (e.g. the Kafka queue).
    pub(crate) fn start_with(data: &Path, env: &[(String, String)]) -> Admin {
        let bin = std::env::var_os("HERALD_TEST_ADMIN_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| crate::harness::gateway_bin().with_file_name("herald-admin"));
        let mut cmd = Command::new(&bin);
        // Test sinks listen on loopback; `env` may override this. (An old
        // admin, `HERALD_TEST_OLD_BINARY` or `HERALD_TEST_OLD_ADMIN`, knows no such setting.)
        if std::env::var_os("HERALD_TEST_OLD_BINARY").is_none() && std::env::var_os("HERALD_TEST_OLD_ADMIN").is_none() {
            cmd.env("HERALD_ADMIN_ALLOW_PRIVATE", r#"["127.0.0.0/8", "::1"]"#);
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.env("HERALD_ADMIN_LISTEN", "127.0.0.1:0")
            .env("HERALD_ADMIN_DATA_DIR", data)
            .env("HERALD_ADMIN_PLUGINS_DIR", plugin_dir())
            .env("HERALD_ADMIN_OPERATOR_TOKEN", OPERATOR);
        std::fs::create_dir_all(data).unwrap();
        let (child, url) = spawn_logged(cmd, &data.join("admin.log"), "herald-admin listening on ");
        Admin { child, url }
    }

    pub(crate) async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        request(method, &format!("{}/api/v1{path}", self.url), token, &[("content-type", "application/json")], body).await
    }

    /// Register an enterprise and log its administrator in; returns (tenant id, token).
    pub(crate) async fn register(&self, enterprise: &str, login: &str) -> (String, String) {
        let r = self
            .call(
                "POST",
                "/register",
                None,
                Some(json!({"enterprise_name": enterprise, "admin_login": login,
                "admin_password": "correct horse battery", "admin_name": "Boss"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let tenant = r.json()["tenant"]["id"].as_str().unwrap().to_string();
        (tenant, self.login(login, "correct horse battery").await)
    }

    pub(crate) async fn login(&self, login: &str, password: &str) -> String {
        let r = self.call("POST", "/login", None, Some(json!({"login": login, "password": password}))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.headers["set-cookie"].to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
        r.json()["token"].as_str().unwrap().to_string()
    }

    pub(crate) async fn root_unit(&self, token: &str) -> String {
        let units = self.call("GET", "/units", Some(token), None).await.json();
        units["items"].as_array().unwrap().iter().find(|u| u["parent"].is_null()).unwrap()["id"].as_str().unwrap().to_string()
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn id(r: &Resp) -> String {
    assert!(r.status == 201 || r.status == 200, "{} {}", r.status, r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tenants_logins_permissions_and_delete_guards() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_a, ta) = admin.register("Acme", "boss-a").await;
    let (_b, tb) = admin.register("Beta", "boss-b").await;

    // Login names are unique across the platform.
    let dup = admin
        .call(
            "POST",
            "/register",
            None,
            Some(json!({"enterprise_name": "X", "admin_login": "BOSS-A",
            "admin_password": "correct horse battery", "admin_name": "X"})),
        )
        .await;
    assert_eq!((dup.status, dup.error().0.as_str()), (409, "login_taken"));
    let short = admin
        .call(
            "POST",
            "/register",
            None,
            Some(json!({"enterprise_name": "X", "admin_login": "x-admin", "admin_password": "short", "admin_name": "X"})),
        )
        .await;
    assert_eq!((short.status, short.error().1.as_deref()), (400, Some("admin_password")));

    // Tenant isolation: B cannot see or touch A's records.
    let root_a = admin.root_unit(&ta).await;
    let eng = id(&admin.call("POST", "/units", Some(&ta), Some(json!({"name": "Eng", "parent": root_a}))).await);
    let ops = id(&admin.call("POST", "/units", Some(&ta), Some(json!({"name": "Ops", "parent": eng}))).await);
    let sales = id(&admin.call("POST", "/units", Some(&ta), Some(json!({"name": "Sales", "parent": root_a}))).await);
    assert_eq!(admin.call("PATCH", &format!("/units/{eng}"), Some(&tb), Some(json!({"name": "mine"}))).await.status, 404);
    assert!(!admin.call("GET", "/units", Some(&tb), None).await.text().contains("Eng"));

    // Tree rules.
    let loop_move = admin.call("PATCH", &format!("/units/{eng}"), Some(&ta), Some(json!({"parent": ops}))).await;
    assert_eq!((loop_move.status, loop_move.error().1.as_deref()), (400, Some("parent")));
    let eve = id(&admin
        .call("POST", "/users", Some(&ta), Some(json!({"name": "Eve", "unit": ops, "email": "eve@acme.cn", "mobile": "+8613800000001"})))
        .await);
    let not_empty = admin.call("DELETE", &format!("/units/{ops}"), Some(&ta), None).await;
    assert_eq!((not_empty.status, not_empty.error().0.as_str()), (409, "not_empty"));

    // A role that may only view, and only the Sales subtree.
    let role = id(&admin
        .call(
            "POST",
            "/roles",
            Some(&ta),
            Some(json!({"name": "Sales viewer", "permissions": ["directory.view", "push.view"], "all_units": false, "units": [sales]})),
        )
        .await);
    let sam = admin
        .call(
            "POST",
            "/users",
            Some(&ta),
            Some(json!({"name": "Sam", "unit": sales, "login": "sam", "password": "sam password 123", "roles": [role]})),
        )
        .await;
    assert_eq!(sam.status, 201, "{}", sam.text());
    assert!(!sam.text().contains("password"), "no password hash in answers: {}", sam.text());
    let ts = admin.login("sam", "sam password 123").await;
    // A login in Chinese.
    let zh = admin
        .call(
            "POST",
            "/users",
            Some(&ta),
            Some(json!({"name": "张三", "unit": sales, "login": "张三", "password": "紫色水壶 orbit 42", "roles": [role]})),
        )
        .await;
    assert_eq!(zh.status, 201, "{}", zh.text());
    admin.login("张三", "紫色水壶 orbit 42").await;
    let users = admin.call("GET", "/users", Some(&ts), None).await.json();
    let names: Vec<_> = users["items"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["Sam", "张三"], "data permission: only the Sales subtree");
    assert_eq!(admin.call("GET", &format!("/users/{eve}"), Some(&ts), None).await.status, 404);
    let denied = admin.call("POST", "/units", Some(&ts), Some(json!({"name": "X", "parent": sales}))).await;
    assert_eq!((denied.status, denied.error().0.as_str()), (403, "forbidden"));
    assert_eq!(admin.call("GET", "/roles", Some(&ts), None).await.status, 403);
    let me = admin.call("GET", "/me", Some(&ts), None).await.json();
    assert_eq!(me["permissions"], json!(["directory.view", "push.view"]));
    // Logout ends the session.
    assert_eq!(admin.call("POST", "/logout", Some(&ts), None).await.status, 204);
    assert_eq!(admin.call("GET", "/me", Some(&ts), None).await.status, 401);

    // Repeated failures lock the login, even for the right password.
    for _ in 0..4 {
        let r = admin.call("POST", "/login", None, Some(json!({"login": "sam", "password": "wrong password!"}))).await;
        assert_eq!((r.status, r.error().0.as_str()), (401, "invalid_credentials"));
    }
    let fifth = admin.call("POST", "/login", None, Some(json!({"login": "sam", "password": "wrong password!"}))).await;
    assert_eq!((fifth.status, fifth.error().0.as_str()), (429, "locked"));
    let right = admin.call("POST", "/login", None, Some(json!({"login": "sam", "password": "sam password 123"}))).await;
    assert_eq!(right.status, 429, "locked for a while");
    let unknown = admin.call("POST", "/login", None, Some(json!({"login": "nobody", "password": "whatever12345"}))).await;
    assert_eq!(unknown.status, 401);

    // Tiered push: a template linked to an action stays; an enabled action stays.
    let hook = admin
        .call("POST", "/accounts", Some(&ta), Some(json!({"name": "hook", "channel": "webhook", "config": {"url": "http://127.0.0.1:9/x"}})))
        .await;
    assert_eq!(hook.status, 201, "{}", hook.text());
    let tpl = id(&admin
        .call("POST", "/tiered/templates", Some(&ta), Some(json!({"title": "Disk full", "editor": "text", "body": "Disk {{ host }} is full"})))
        .await);
    let rich_on_webhook = admin
        .call(
            "POST",
            "/tiered/templates",
            Some(&ta),
            Some(json!({"title": "Mail", "editor": "rich_text", "subject": "S", "body": "<p onclick=\"x()\">Hi</p><script>alert(1)</script>"})),
        )
        .await;
    assert_eq!(rich_on_webhook.status, 201);
    assert_eq!(rich_on_webhook.json()["body"], "<p>Hi</p>", "rich text sanitized");
    let misfit = admin
        .call(
            "POST",
            "/tiered/actions",
            Some(&ta),
            Some(json!({"title": "Bad", "templates": [id(&rich_on_webhook)],
            "rules": [{"level": "urgent", "channels": [{"channel": "webhook", "account": "hook"}], "recipients": {"users": [eve]}}]})),
        )
        .await;
    assert_eq!((misfit.status, misfit.error().1.as_deref()), (400, Some("rules[0].channels[0]")), "{}", misfit.text());
    let action = admin
        .call(
            "POST",
            "/tiered/actions",
            Some(&ta),
            Some(json!({"title": "Disk alert", "templates": [tpl],
            "rules": [{"level": "urgent", "channels": [{"channel": "webhook", "account": "hook"}], "recipients": {"users": [eve]},
                       "escalate": {"after_secs": 600, "condition": "not_acknowledged"}}]})),
        )
        .await;
    assert_eq!(action.status, 201, "{}", action.text());
    assert_eq!(action.json()["status"], "enabled");
    let action = id(&action);
    assert_eq!(admin.call("DELETE", &format!("/tiered/templates/{tpl}"), Some(&ta), None).await.error().0, "in_use");
    assert_eq!(admin.call("DELETE", &format!("/tiered/actions/{action}"), Some(&ta), None).await.error().0, "enabled");
    assert_eq!(admin.call("DELETE", "/accounts/hook", Some(&ta), None).await.error().0, "in_use");
    assert_eq!(admin.call("POST", &format!("/tiered/actions/{action}/disable"), Some(&ta), None).await.status, 200);
    assert_eq!(admin.call("DELETE", &format!("/tiered/actions/{action}"), Some(&ta), None).await.status, 204);
    assert_eq!(admin.call("DELETE", &format!("/tiered/templates/{tpl}"), Some(&ta), None).await.status, 204);

    // The OpenAPI document lists the routes it was built from.
    let doc = request("GET", &format!("{}/api/v1/openapi.json", admin.url), None, &[], Bytes::new()).await.json();
    assert!(doc["paths"]["/api/v1/pushes/{id}/copy"]["post"]["summary"].is_string());
}

#[tokio::test]
async fn a_push_from_the_admin_is_delivered_by_the_gateway_with_its_sealed_secret() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), "");
    let admin = Admin::start(dir.path());
    let (tenant, t) = admin.register("Acme", "boss").await;

    let acc = admin
        .call(
            "POST",
            "/accounts",
            Some(&t),
            Some(json!({"name": "hook", "channel": "webhook", "config": {"url": sink.url, "secret": "s3cret-value"}})),
        )
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    let listed = admin.call("GET", "/accounts", Some(&t), None).await;
    assert!(!listed.text().contains("s3cret-value"), "secrets never returned: {}", listed.text());
    assert_eq!(listed.json()["items"][0]["config"]["secret_set"], true);
    let bad = admin.call("POST", "/accounts", Some(&t), Some(json!({"name": "bad", "channel": "webhook", "config": {"url": "ftp://x"}}))).await;
    assert_eq!((bad.status, bad.error().0.as_str()), (422, "invalid_account"));

    // Names in Chinese: an account, and (below) a login.
    let zh = admin.call("POST", "/accounts", Some(&t), Some(json!({"name": "告警机器人", "channel": "webhook", "config": {"url": sink.url}}))).await;
    assert_eq!(zh.status, 201, "{}", zh.text());
    assert_eq!(admin.call("GET", "/accounts/%E5%91%8A%E8%AD%A6%E6%9C%BA%E5%99%A8%E4%BA%BA", Some(&t), None).await.status, 200);
    let bad =
        admin.call("POST", "/accounts", Some(&t), Some(json!({"name": "告警 机器人", "channel": "webhook", "config": {"url": sink.url}}))).await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (400, Some("name")), "{}", bad.text());

    // Editing without the secret keeps it.
    let edit = admin.call("PUT", "/accounts/hook", Some(&t), Some(json!({"channel": "webhook", "config": {"url": sink.url}}))).await;
    assert_eq!(edit.status, 200, "{}", edit.text());

    let push = admin
        .call(
            "POST",
            "/pushes",
            Some(&t),
            Some(json!({"title": "Hello", "channel": "webhook", "account": "hook",
            "content": {"text": "Hello {{ name }}"}, "targets": {"list": [{"to": "room-1", "name": "Ann"}, {"to": "room-2"}]}})),
        )
        .await;
    assert_eq!(push.status, 201, "{}", push.text());
    let p = push.json();
    assert_eq!((p["status"].as_str(), p["number"].as_str(), p["recipients"].as_u64()), (Some("sent"), Some("P000001"), Some(2)));
    let pid = p["id"].as_str().unwrap().to_string();

    eventually(Duration::from_secs(30), "two webhook deliveries", || sink.received().len() >= 2).await;
    for req in sink.received() {
        let ts = req.header("x-herald-timestamp").expect("timestamp");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret-value").unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&req.body);
        assert_eq!(
            req.header("x-herald-signature"),
            Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes()))),
            "the gateway opened the sealed secret"
        );
    }
    let texts: Vec<_> = sink.received().iter().map(|r| r.json()["text"].as_str().unwrap().to_string()).collect();
    assert!(texts.contains(&"Hello Ann".to_string()), "{texts:?}");

    let mut statuses = vec![];
    for _ in 0..100 {
        let d = admin.call("GET", &format!("/pushes/{pid}/deliveries"), Some(&t), None).await.json();
        statuses = d["deliveries"].as_array().unwrap().iter().map(|x| x["status"].as_str().unwrap().to_string()).collect();
        if statuses == ["sent", "sent"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(statuses, ["sent", "sent"]);

    // A sent push is a definition to reuse: edited, then sent again, each send with its own deliveries.
    let edited = admin
        .call(
            "PUT",
            &format!("/pushes/{pid}"),
            Some(&t),
            Some(json!({"title": "Hello again", "channel": "webhook", "account": "hook",
            "content": {"text": "Again {{ name }}"}, "targets": {"list": [{"to": "room-1", "name": "Ann"}, {"to": "room-2"}]}})),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 2, "saving a sent push sends nothing");
    let again = admin.call("POST", &format!("/pushes/{pid}/send"), Some(&t), None).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["sends"].as_array().map(Vec::len), Some(2), "{}", again.text());
    eventually(Duration::from_secs(30), "the second send", || sink.received().len() >= 4).await;
    let texts: Vec<_> = sink.received().iter().map(|r| r.json()["text"].as_str().unwrap().to_string()).collect();
    assert!(texts.contains(&"Again Ann".to_string()), "the edited content: {texts:?}");
    let first = admin.call("GET", &format!("/pushes/{pid}/deliveries?send=0"), Some(&t), None).await.json();
    let second = admin.call("GET", &format!("/pushes/{pid}/deliveries?send=1"), Some(&t), None).await.json();
    assert_ne!(first["message_ids"], second["message_ids"], "each send its own messages");
    assert_eq!((first["total"].as_u64(), second["total"].as_u64()), (Some(2), Some(2)));
    assert_eq!(admin.call("GET", &format!("/pushes/{pid}/deliveries"), Some(&t), None).await.json()["message_ids"], second["message_ids"]);
    assert_eq!(admin.call("GET", &format!("/pushes/{pid}/deliveries?send=7"), Some(&t), None).await.status, 404);

    // A list larger than the gateway's per-message limit goes out as several messages.
    let acc = admin
        .call("POST", "/accounts", Some(&t), Some(json!({"name": "bulk", "channel": "webhook", "config": {"url": sink.url, "batch": true}})))
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    let list: Vec<Value> = (0..10_050).map(|i| json!({"to": format!("room-{i}")})).collect();
    let big = admin
        .call(
            "POST",
            "/pushes",
            Some(&t),
            Some(json!({"title": "Bulk", "channel": "webhook", "account": "bulk",
            "content": {"text": "hi"}, "targets": {"list": list}})),
        )
        .await;
    assert_eq!(big.status, 201, "{}", big.text());
    assert_eq!((big.json()["recipients"].as_u64(), big.json()["message_ids"].as_array().map(Vec::len)), (Some(10_050), Some(2)));
    let big_id = big.json()["id"].as_str().unwrap().to_string();
    let mut total = 0;
    for _ in 0..300 {
        let d = admin.call("GET", &format!("/pushes/{big_id}/deliveries?limit=5000"), Some(&t), None).await.json();
        total = d["total"].as_u64().unwrap();
        let sent = d["deliveries"].as_array().unwrap().iter().filter(|x| x["status"] == "sent").count();
        if total == 10_050 && sent == 5000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(total, 10_050);
    eventually(Duration::from_secs(60), "every bulk recipient reached the sink", || sink.delivery_ids().len() >= 10_052).await;

    // Copy starts disabled; an enabled push cannot be deleted, a disabled one can.
    let copy = admin.call("POST", &format!("/pushes/{pid}/copy"), Some(&t), None).await.json();
    assert_eq!((copy["status"].as_str(), copy["number"].as_str()), (Some("disabled"), Some("P000003")));
    assert_eq!(admin.call("DELETE", &format!("/pushes/{pid}"), Some(&t), None).await.error().0, "enabled");
    let found = admin.call("GET", "/pushes?number=03&title=copy", Some(&t), None).await.json();
    assert_eq!(found["total"], 1);

    // Enabling or editing into a push that cannot be sent (nobody with a webhook
    // address) fails and stores nothing, as creating one does.
    let me = admin.call("GET", "/me", Some(&t), None).await.json()["user"]["id"].as_str().unwrap().to_string();
    let body = |title: &str, enabled: bool| json!({"title": title, "channel": "webhook", "account": "hook", "content": {"text": "x"}, "targets": {"users": [me.clone()]}, "enabled": enabled});
    let draft = admin.call("POST", "/pushes", Some(&t), Some(body("Nobody", false))).await;
    assert_eq!(draft.status, 201, "{}", draft.text());
    let did = draft.json()["id"].as_str().unwrap().to_string();
    let enable = admin.call("POST", &format!("/pushes/{did}/enable"), Some(&t), None).await;
    assert_eq!((enable.status, enable.error().0.as_str()), (422, "no_recipients"), "{}", enable.text());
    let edit = admin.call("PUT", &format!("/pushes/{did}"), Some(&t), Some(body("Nobody, now", true))).await;
    assert_eq!((edit.status, edit.error().0.as_str()), (422, "no_recipients"), "{}", edit.text());
    let stored = admin.call("GET", &format!("/pushes/{did}"), Some(&t), None).await.json();
    assert_eq!((stored["status"].as_str(), stored["title"].as_str()), (Some("disabled"), Some("Nobody")), "{stored}");
    let send = admin.call("POST", &format!("/pushes/{did}/send"), Some(&t), None).await;
    assert_eq!((send.status, send.error().0.as_str()), (409, "disabled"), "{}", send.text());

    // The messaging app's key is accepted by the gateway.
    let enabled = admin.call("POST", "/api-keys", Some(&t), None).await;
    assert_eq!(enabled.status, 201, "{}", enabled.text());
    let key = enabled.json()["api_key"].as_str().unwrap().to_string();
    let sent = gw
        .post(
            "/v1/messages",
            Some(&key),
            &[("content-type", "application/json")],
            json!({"channel": "webhook", "account": "hook", "content": {"text": "via API"}, "recipients": [{"to": "room-3"}]}).to_string(),
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    assert!(!admin.call("GET", "/api-keys", Some(&t), None).await.text().contains(&key), "keys are shown once");

    // Operator top-up shows in the balance and transactions.
    let top = request(
        "POST",
        &format!("{}/api/v1/operator/tenants/{tenant}/top-ups", admin.url),
        Some(OPERATOR),
        &[("content-type", "application/json")],
        Bytes::from(json!({"amount_minor": 5000}).to_string()),
    )
    .await;
    assert_eq!(top.status, 201, "{}", top.text());
    let wrong = request(
        "POST",
        &format!("{}/api/v1/operator/tenants/{tenant}/top-ups", admin.url),
        Some("nope"),
        &[("content-type", "application/json")],
        Bytes::from(json!({"amount_minor": 5000}).to_string()),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let bal = admin.call("GET", "/cost/balance", Some(&t), None).await.json();
    assert_eq!(bal["balance_minor"], 5000, "webhook sends are free by default");
    let tx = admin.call("GET", "/cost/transactions", Some(&t), None).await.json();
    assert_eq!(tx["items"][0]["kind"], "top_up");
}

#[tokio::test]
async fn a_recurring_push_sends_each_occurrence_once_across_an_admin_crash_until_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let _gw = Gateway::start(dir.path(), "");
    let mut admin = Admin::start(dir.path());
    let (_, t) = admin.register("Acme", "boss").await;
    let acc = admin.call("POST", "/accounts", Some(&t), Some(json!({"name": "hook", "channel": "webhook", "config": {"url": sink.url}}))).await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    let bad = admin
        .call(
            "POST",
            "/pushes",
            Some(&t),
            Some(json!({"title": "R", "channel": "webhook", "account": "hook", "content": {"text": "tick"},
            "targets": {"list": [{"to": "room"}]}, "schedule": {"mode": "cron", "cron": "every minute"}})),
        )
        .await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (400, Some("schedule.cron")));
    // Unix cron: 1-5 is Monday to Friday; the next five runs are shown.
    let weekdays = admin
        .call(
            "POST",
            "/pushes",
            Some(&t),
            Some(json!({"title": "Weekdays", "channel": "webhook", "account": "hook", "content": {"text": "standup"},
            "targets": {"list": [{"to": "room"}]}, "schedule": {"mode": "cron", "cron": "0 9 * * 1-5", "time_zone": "Asia/Shanghai"}})),
        )
        .await;
    assert_eq!(weekdays.status, 201, "{}", weekdays.text());
    let days: Vec<String> = weekdays.json()["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ms| {
            let at = chrono::DateTime::from_timestamp_millis(ms.as_i64().unwrap()).unwrap();
            at.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).format("%a %H:%M").to_string()
        })
        .collect();
    assert_eq!(days.len(), 5, "{days:?}");
    assert!(days.iter().all(|d| d.ends_with("09:00") && !d.starts_with("Sat") && !d.starts_with("Sun")), "{days:?}");
    let wid = weekdays.json()["id"].as_str().unwrap().to_string();
    // The builder's preview: the same runs, or the field at fault.
    let preview = admin.call("GET", "/pushes/schedule-preview?cron=0%209%20*%20*%201-5&time_zone=Asia/Shanghai", Some(&t), None).await;
    assert_eq!(preview.json()["next_runs"], weekdays.json()["next_runs"], "{}", preview.text());
    let bad = admin.call("GET", "/pushes/schedule-preview?cron=0%209%20*%20*&time_zone=Asia/Shanghai", Some(&t), None).await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (400, Some("cron")), "{}", bad.text());
    let bad = admin.call("GET", "/pushes/schedule-preview?cron=0%209%20*%20*%20*&time_zone=Mars/Olympus", Some(&t), None).await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (400, Some("time_zone")), "{}", bad.text());
    // Who a send now would reach (the console's confirmation): each address once.
    let who = admin
        .call(
            "POST",
            "/pushes/audience",
            Some(&t),
            Some(json!({"channel": "webhook", "targets": {"list": [{"to": "room"}, {"to": "room"}, {"to": "hall"}]}})),
        )
        .await;
    assert_eq!(who.json(), json!({"recipients": 2, "skipped": 0, "duplicates": 1}), "{}", who.text());
    // A number in another spelling is the same recipient on a phone channel.
    let list = json!([{"to": "13800138000"}, {"to": "+8613800138000"}, {"to": "+86 138 0013 8000"}, {"to": "13800138001"}]);
    let who = admin.call("POST", "/pushes/audience", Some(&t), Some(json!({"channel": "aliyun-sms", "targets": {"list": list}}))).await;
    assert_eq!(who.json(), json!({"recipients": 2, "skipped": 0, "duplicates": 2}), "{}", who.text());
    let none = admin.call("POST", "/pushes/audience", Some(&t), Some(json!({"channel": "webhook", "targets": {}}))).await;
    assert_eq!((none.status, none.error().1.as_deref()), (422, Some("targets")), "{}", none.text());
    assert_eq!(admin.call("POST", &format!("/pushes/{wid}/disable"), Some(&t), None).await.status, 200);
    let push = admin
        .call(
            "POST",
            "/pushes",
            Some(&t),
            Some(json!({"title": "Reminder", "channel": "webhook", "account": "hook", "content": {"text": "tick"},
            "targets": {"list": [{"to": "room"}]}, "schedule": {"mode": "cron", "cron": "*/2 * * * * *", "time_zone": "UTC"}})),
        )
        .await;
    assert_eq!(push.status, 201, "{}", push.text());
    assert_eq!(push.json()["status"], "recurring");
    let next: Vec<i64> = push.json()["next_runs"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert!(next.len() == 5 && next.windows(2).all(|w| w[1] - w[0] == 2_000), "every 2 s: {next:?}");
    let pid = push.json()["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(30), "two occurrences", || sink.received().len() >= 2).await;

    // kill -9 and restart: the schedule resumes; no occurrence is sent twice.
    admin.child.kill().unwrap();
    admin.child.wait().unwrap();
    admin = Admin::start(dir.path());
    let seen = sink.received().len();
    eventually(Duration::from_secs(30), "an occurrence after the restart", || sink.received().len() > seen).await;
    let t = admin.login("boss", "correct horse battery").await;
    assert_eq!(admin.call("POST", &format!("/pushes/{pid}/disable"), Some(&t), None).await.status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped = sink.received().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sink.received().len(), stopped, "a disabled push sends nothing");
    let ids = sink.delivery_ids();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "each occurrence once: {ids:?}");
    let p = admin.call("GET", &format!("/pushes/{pid}"), Some(&t), None).await.json();
    assert!(p["runs"].as_u64().unwrap() >= 3, "{p}");
}

/// Issue 16 point 7: lists page, sort and filter in the store: past 200 rows,
/// with the total, the same order across pages; a column a list lacks is a
/// 400 naming `sort`; a filter narrows the total; another tenant's rows and
/// units out of the caller's scope never count.
#[tokio::test]
async fn lists_page_past_200_rows_sorted_and_filtered_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_a, t) = admin.register("Paging", "boss-paging").await;
    let (_b, other) = admin.register("Other", "boss-other").await;
    let root = admin.root_unit(&t).await;
    let sub = id(&admin.call("POST", "/units", Some(&t), Some(json!({"name": "Sub", "parent": root}))).await);
    for i in 0..250_u32 {
        let unit = if i % 5 == 0 { &sub } else { &root };
        let name = format!("{} {:03}", if i % 2 == 0 { "user" } else { "User" }, (i * 37) % 250);
        id(&admin.call("POST", "/users", Some(&t), Some(json!({"name": name, "unit": unit, "email": format!("u{i}@example.test")}))).await);
    }
    admin.call("POST", "/users", Some(&other), Some(json!({"name": "user 999", "unit": admin.root_unit(&other).await}))).await;

    let page = |q: &str| {
        let admin = &admin;
        let t = t.clone();
        let q = q.to_string();
        async move {
            let r = admin.call("GET", &format!("/users?{q}"), Some(&t), None).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            let v = r.json();
            let names: Vec<String> = v["items"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap().to_string()).collect();
            (v["total"].as_u64().unwrap(), names)
        }
    };
    // Every page of 50 sorted by name, ascending: 251 (the administrator "Boss" too) in one order.
    let mut asc = vec![];
    for offset in (0..300).step_by(50) {
        let (total, names) = page(&format!("sort=name&order=asc&offset={offset}&limit=50")).await;
        assert_eq!(total, 251, "no cap at 200");
        asc.extend(names);
    }
    assert_eq!(asc.len(), 251);
    let mut expected = asc.clone();
    expected.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(asc, expected, "one order across pages, ASCII case ignored");
    assert!(asc.iter().all(|n| n != "user 999"), "another tenant's users never show");
    let (_, last) = page("sort=name&order=asc&offset=250&limit=50").await;
    assert_eq!(last, asc[250..]);
    let (_, desc) = page("sort=name&order=desc&limit=200").await;
    assert_eq!(desc, asc.iter().rev().take(200).cloned().collect::<Vec<_>>());
    // Filters narrow the total: the subunit (50), a text (User = every user).
    assert_eq!(page(&format!("unit={sub}&limit=1")).await.0, 50);
    assert_eq!(page("q=user%2000&limit=1").await.0, 10);
    // Bad sort or order: 400 naming the field.
    let bad = admin.call("GET", "/users?sort=password_hash", Some(&t), None).await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (422, Some("sort")));
    let bad = admin.call("GET", "/users?sort=name&order=sideways", Some(&t), None).await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (400, Some("order")));
    let bad = admin.call("GET", "/pushes?status=lost", Some(&t), None).await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (422, Some("status")));
    // Huge offsets and limits: an empty page with the total, at most 200 rows.
    assert_eq!(page("offset=9223372036854775807").await, (251, vec![]));
    assert_eq!(page("limit=100000").await.1.len(), 200);
}

#[tokio::test]
async fn cost_details_and_deliveries_page_in_the_store_past_1000_rows_with_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let _gw = Gateway::start(dir.path(), "[[prices]]\nchannel = \"webhook\"\nunit_minor = 2\n");
    let admin = Admin::start(dir.path());
    let (_, t) = admin.register("Ledger", "boss-ledger").await;
    let acc = admin
        .call("POST", "/accounts", Some(&t), Some(json!({"name": "bulk", "channel": "webhook", "config": {"url": sink.url, "batch": true}})))
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    let list: Vec<Value> = (0..1_100).map(|i| json!({"to": format!("room-{i:04}")})).collect();
    let push = admin
        .call(
            "POST",
            "/pushes",
            Some(&t),
            Some(json!({"title": "Billed", "channel": "webhook", "account": "bulk", "content": {"text": "hi"}, "targets": {"list": list}})),
        )
        .await;
    assert_eq!(push.status, 201, "{}", push.text());
    let pid = push.json()["id"].as_str().unwrap().to_string();
    let get = |path: String| {
        let (admin, t) = (&admin, t.clone());
        async move {
            let r = admin.call("GET", &path, Some(&t), None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            r.json()
        }
    };
    let mut total = 0;
    for _ in 0..600 {
        total = get("/cost/details?limit=1".into()).await["total"].as_u64().unwrap();
        if total == 1_100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(total, 1_100, "one debit per delivery, all counted");

    // Every page of 200, past the old 1 000-row window: each entry once, newest first, with the total.
    let mut ids = vec![];
    let mut times = vec![];
    for offset in (0..1_200).step_by(200) {
        let page = get(format!("/cost/details?offset={offset}&limit=200")).await;
        assert_eq!(page["total"], 1_100);
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_string());
            times.push(item["at"].as_i64().unwrap());
        }
    }
    assert_eq!(ids.len(), 1_100);
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 1_100, "no entry on two pages");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first across pages");
    let last = get("/cost/details?offset=1000&limit=200".into()).await;
    assert_eq!(last["items"].as_array().unwrap().len(), 100);
    assert_eq!(last["items"][99]["balance_minor"], -2, "the oldest debit leaves its own amount");
    let tx = get("/cost/transactions?limit=1".into()).await;
    assert_eq!((tx["total"].as_u64(), tx["items"][0]["balance_minor"].as_i64()), (Some(1_100), Some(-2_200)));
    assert_eq!(get("/cost/details?from=2099-01-01&limit=1".into()).await["total"], 0, "the period filters in the store");
    assert_eq!(get("/cost/details?sort=amount_minor&order=desc&limit=3".into()).await["items"].as_array().unwrap().len(), 3);
    let bad = admin.call("GET", "/cost/details?sort=secret", Some(&t), None).await;
    assert_eq!((bad.status, bad.error().1.as_deref()), (422, Some("sort")));
    let bills = get("/cost/bills".into()).await;
    let debits: u64 = bills["items"].as_array().unwrap().iter().map(|l| l["debit_count"].as_u64().unwrap()).sum();
    assert_eq!(debits, 1_100, "bills sum the whole period, no window");
    let export = admin.call("GET", "/cost/details/export", Some(&t), None).await;
    assert_eq!(export.status, 200);

    // The push's deliveries page in the store too.
    let page = get(format!("/pushes/{pid}/deliveries?offset=1000&limit=500")).await;
    assert_eq!((page["total"].as_u64(), page["deliveries"].as_array().map(Vec::len)), (Some(1_100), Some(100)));
    assert_eq!(page["deliveries"][0]["recipient"], "room-1000", "sending order");
    let desc = get(format!("/pushes/{pid}/deliveries?sort=recipient&order=desc&limit=2")).await;
    assert_eq!(desc["deliveries"][0]["recipient"], "room-1099");
    assert_eq!(desc["deliveries"][0]["cost_minor"], 2);
}
