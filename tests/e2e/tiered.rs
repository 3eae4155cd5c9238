//! Tiered push end to end, with a controllable clock: an action made in the
//! admin (email → 10 min → SMS → 5 min → voice), triggered through the gateway,
//! delivered to a real SMTP server and the fake Twilio; acknowledgements by
//! link and by read receipt; a kill -9 between steps; quiet hours; prepaid
//! balances (refuse, fall back, 402) and the low-balance alert.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::admin::{Admin, OPERATOR, id};
use crate::harness::{Gateway, eventually, request};
use crate::providers::sms_support::config;
use crate::providers::sms_twilio::{ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio, HOST, PUBLIC};
use crate::sinks::SmtpSink;

const GW_OPERATOR: &str = "gateway-operator-token-0123";
const ANN_MOBILE: &str = "+14155550100";

struct World {
    gw: Gateway,
    admin: Admin,
    smtp: SmtpSink,
    twilio: FakeTwilio,
    tenant: String,
    token: String,
    key: String,
    action: String,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        Self::start_on(None).await
    }

    /// With `Some(brokers)`, the queue (and so every escalation timer) is Kafka.
    async fn start_on(kafka: Option<&str>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let (queue, admin_env) = match kafka {
            Some(b) => (
                format!(
                    "[queue]\nbackend = \"kafka\"\n[queue.kafka]\nbrokers = \"{b}\"\ntopic = \"herald.tiered.{run}\"\ngroup = \"herald-tiered-{run}\"\npartitions = 2\n"
                ),
                vec![
                    ("HERALD_ADMIN_QUEUE__BACKEND".to_string(), "kafka".to_string()),
                    ("HERALD_ADMIN_QUEUE__KAFKA__BROKERS".to_string(), b.to_string()),
                    ("HERALD_ADMIN_QUEUE__KAFKA__TOPIC".to_string(), format!("herald.tiered.{run}")),
                ],
            ),
            None => (String::new(), vec![]),
        };
        let smtp = SmtpSink::start(dir.path(), "mailer", "pa55word");
        let twilio = FakeTwilio::start().await;
        let prices = "[[prices]]\nchannel = \"email\"\nunit_minor = 0\n[[prices]]\nchannel = \"twilio-sms\"\nunit_minor = 7\n\
                      [[prices]]\nchannel = \"twilio-voice\"\nunit_minor = 20\n";
        let cfg = format!("testing_clock = true\nadmin_token = \"{GW_OPERATOR}\"\n{queue}{}{prices}", config(&[(HOST, &twilio.url)], ""));
        let gw = Gateway::start(dir.path(), &cfg);
        let admin = Admin::start_with(dir.path(), &admin_env);
        let (tenant, token) = admin.register("Acme", "boss").await;
        let t = Some(token.as_str());
        let me = admin.call("GET", "/me", t, None).await.json();
        let boss = me["user"]["id"].as_str().unwrap().to_string();
        assert_eq!(admin.call("PATCH", &format!("/users/{boss}"), t, Some(json!({"email": "boss@acme.test"}))).await.status, 200);

        let accounts = [
            json!({"name": "mail", "channel": "email", "config": {"from": "alerts@acme.test",
                "smtp": {"host": "127.0.0.1", "port": smtp.port, "tls": "none", "username": "mailer", "password": "pa55word", "allow_plaintext_auth": true}}}),
            json!({"name": "sms", "channel": "twilio-sms", "config": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from": FROM,
                "status_callback": format!("{PUBLIC}/v1/callbacks/{tenant}/sms")}}),
            json!({"name": "call", "channel": "twilio-voice", "config": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from": FROM,
                "voice": "Polly.Joanna", "language": "en-US", "status_callback": format!("{PUBLIC}/v1/callbacks/{tenant}/call")}}),
        ];
        for a in accounts {
            let r = admin.call("POST", "/accounts", t, Some(a)).await;
            assert_eq!(r.status, 201, "{}", r.text());
        }
        let root = admin.root_unit(&token).await;
        id(&admin.call("POST", "/users", t, Some(json!({"name": "Ann", "unit": root, "email": "ann@acme.test", "mobile": ANN_MOBILE}))).await);
        let ops = id(&admin.call("POST", "/units", t, Some(json!({"name": "Ops", "parent": root}))).await);
        let _ = ops;
        let rich = id(&admin
            .call("POST", "/tiered/templates", t, Some(json!({"title": "Disk (mail)", "editor": "rich_text", "subject": "Disk {{ host }} is full", "body": "<p>Disk <b>{{ host }}</b> is full</p>"})))
            .await);
        let text = id(&admin
            .call("POST", "/tiered/templates", t, Some(json!({"title": "Disk (text)", "editor": "text", "body": "Disk {{ host }} is full"})))
            .await);
        let users = json!({"units": [root]});
        let action = id(&admin
            .call(
                "POST",
                "/tiered/actions",
                t,
                Some(json!({"title": "Disk full", "templates": [rich, text], "rules": [
                    {"level": "urgent", "channels": [{"channel": "email", "account": "mail"}], "recipients": users,
                     "escalate": {"after_secs": 600, "condition": "not_acknowledged"}},
                    {"level": "urgent", "channels": [{"channel": "twilio-sms", "account": "sms"}], "recipients": users,
                     "escalate": {"after_secs": 300, "condition": "not_acknowledged"}},
                    {"level": "urgent", "channels": [{"channel": "twilio-voice", "account": "call"}], "recipients": users},
                    {"level": "normal", "channels": [{"channel": "email", "account": "mail"}], "recipients": users}
                ]})),
            )
            .await);
        // Messaging is enabled from registration: its key is issued on demand.
        let enabled = admin.call("POST", "/api-keys", t, None).await;
        let key = enabled.json()["api_key"].as_str().unwrap().to_string();
        World { gw, admin, smtp, twilio, tenant, token, key, action, _dir: dir }
    }

    async fn trigger(&self, level: &str, dedup: &str) -> (u16, Value) {
        let r = self
            .gw
            .post(
                &format!("/v1/actions/{}/trigger", self.action),
                Some(&self.key),
                &[("content-type", "application/json")],
                json!({"level": level, "variables": {"host": "db1"}, "dedup_key": dedup}).to_string(),
            )
            .await;
        (r.status, r.json())
    }

    async fn incident(&self, id: &str) -> Value {
        let r = self.gw.get(&format!("/v1/incidents/{id}"), Some(&self.key)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Acknowledge a whole incident through the API.
    async fn ack(&self, id: &str) {
        let r = self.gw.post(&format!("/v1/incidents/{id}/ack"), Some(&self.key), &[], Bytes::new()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["state"], "acknowledged");
    }

    async fn advance(&self, secs: i64) {
        let r = self
            .gw
            .post("/admin/clock", Some(GW_OPERATOR), &[("content-type", "application/json")], json!({"advance_ms": secs * 1000}).to_string())
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    fn mails_to(&self, to: &str) -> Vec<Value> {
        self.smtp.messages().into_iter().filter(|m| m["rcpt_tos"][0] == to).collect()
    }

    fn sms(&self) -> Vec<crate::providers::sms_twilio::Created> {
        self.twilio.created().into_iter().filter(|c| c.sid.starts_with("SM")).collect()
    }

    fn calls(&self) -> Vec<crate::providers::sms_twilio::Created> {
        self.twilio.created().into_iter().filter(|c| c.sid.starts_with("CA")).collect()
    }

    /// Twilio reports the SMS `sid` as read; wait until the incident is acknowledged.
    async fn read_sms_and_wait_for_ack(&self, sid: &str, inc: &str) {
        // The SMS send is recorded before Twilio would report on it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = self.twilio.callback(&self.gw, sid, &[("MessageSid", sid), ("MessageStatus", "read")], AUTH_TOKEN).await;
        assert!(r.status < 300, "{} {}", r.status, r.text());
        let mut v = Value::Null;
        for _ in 0..50 {
            v = self.incident(inc).await;
            if v["state"] == "acknowledged" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(v["state"], "acknowledged", "acknowledged by the read receipt: {v}");
    }

    async fn admin_put(&self, path: &str, body: Value) {
        let r = self.admin.call("PUT", path, Some(&self.token), Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

fn kinds(incident: &Value, kind: &str) -> Vec<Value> {
    incident["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

/// Nothing more arrives for a while (the steps are driven by queue polling).
async fn quiet_for(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_ack_email_then_sms_then_voice_fire_on_time_once_even_across_a_crash() {
    escalate_across_a_crash(World::start().await).await;
}

/// The same on Kafka: the timers are records held until due, re-read after kill -9.
#[tokio::test(flavor = "multi_thread")]
async fn on_kafka_the_escalation_timers_survive_kill_9_and_fire_once() {
    let Some(b) = crate::distributed::brokers() else {
        return;
    };
    let _serial = crate::distributed::BROKER.lock().await;
    escalate_across_a_crash(World::start_on(Some(&b)).await).await;
}

async fn escalate_across_a_crash(mut w: World) {
    let (status, body) = w.trigger("urgent", "disk-db1").await;
    assert_eq!(status, 202, "{body}");
    let inc = body["id"].as_str().unwrap().to_string();
    let (again, body2) = w.trigger("urgent", "disk-db1").await;
    assert_eq!(
        (again, body2["id"].as_str(), body2["deduplicated"].as_bool()),
        (202, Some(inc.as_str()), Some(true)),
        "folded into the open incident"
    );

    eventually(Duration::from_secs(20), "the e-mail step", || w.mails_to("ann@acme.test").len() == 1).await;
    let mail = &w.mails_to("ann@acme.test")[0];
    assert_eq!(mail["headers"]["Subject"], "Disk db1 is full");
    assert!(mail["html"].as_str().unwrap().contains("/v1/ack/"), "an ack link: {mail}");

    w.advance(590).await;
    quiet_for(2).await;
    assert!(w.sms().is_empty(), "not before 10 minutes");

    // A crash between steps: the timer is durable and fires once after the restart.
    w.gw.restart();
    w.advance(615).await;
    eventually(Duration::from_secs(20), "the SMS step", || w.sms().len() == 1).await;
    let sms = &w.sms()[0];
    assert_eq!(sms.params["To"], ANN_MOBILE);
    assert!(sms.params["Body"].starts_with("Disk db1 is full\nAck: http"), "{:?}", sms.params["Body"]);

    w.advance(290).await;
    quiet_for(2).await;
    assert!(w.calls().is_empty(), "not before 5 more minutes");
    w.advance(15).await;
    eventually(Duration::from_secs(20), "the voice step", || w.calls().len() == 1).await;
    assert!(w.calls()[0].params["Twiml"].contains("Disk db1 is full"));

    quiet_for(2).await;
    assert_eq!((w.mails_to("ann@acme.test").len(), w.sms().len(), w.calls().len()), (1, 1, 1), "each step fired once");
    let v = w.incident(&inc).await;
    assert_eq!(v["fired"], json!([0, 1, 2]), "{v}");
    assert_eq!(kinds(&v, "fired").len(), 3, "{v}");
    assert_eq!(v["repeats"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_trigger_and_a_repeated_ack_count_once() {
    let w = World::start().await;
    let url = format!("/v1/actions/{}/trigger", w.action);
    let send = |body: Value| {
        let h = [("content-type", "application/json"), ("idempotency-key", "alert-7")];
        let (gw, key, url) = (&w.gw, w.key.clone(), url.clone());
        async move { gw.post(&url, Some(&key), &h, body.to_string()).await }
    };
    let body = json!({"level": "urgent", "variables": {"host": "db1"}, "dedup_key": "keyed"});
    let first = send(body.clone()).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let again = send(body.clone()).await;
    assert_eq!((again.status, again.json()["id"].clone()), (202, first.json()["id"].clone()));
    assert_eq!(again.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let other = send(json!({"level": "urgent", "variables": {"host": "db2"}})).await;
    assert_eq!((other.status, other.error()), (409, ("idempotency_key_reused".into(), Some("Idempotency-Key".into()))), "{}", other.text());
    let inc = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(w.incident(&inc).await["repeats"], 0, "a replay is not a repeat");

    eventually(Duration::from_secs(20), "the e-mail step", || w.mails_to("ann@acme.test").len() == 1).await;
    let ack = |recipient: &str| {
        let (gw, key, path, body) = (&w.gw, w.key.clone(), format!("/v1/incidents/{inc}/ack"), json!({"recipient": recipient}).to_string());
        async move { gw.post(&path, Some(&key), &[("content-type", "application/json")], body).await }
    };
    let stranger = ack("mallory@evil.test").await;
    assert_eq!((stranger.status, stranger.error().0.as_str()), (422, "unknown_recipient"), "{}", stranger.text());
    assert_eq!(w.incident(&inc).await["state"], "open", "a stranger does not acknowledge");
    for _ in 0..2 {
        let r = ack("ann@acme.test").await;
        assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("acknowledged")), "{}", r.text());
    }
    let v = w.incident(&inc).await;
    assert_eq!(kinds(&v, "acknowledged").len(), 1, "acknowledged once: {v}");
    assert_eq!(v["acknowledged_by"].as_array().map(Vec::len), Some(1), "by her directory id: {v}");

    // After `idempotency_ttl_hours` (default 24) the key is forgotten: a new incident.
    w.advance(25 * 3600).await;
    let later = send(json!({"level": "urgent", "variables": {"host": "db2"}})).await;
    assert_eq!(later.status, 202, "{}", later.text());
    assert!(later.headers.get("idempotent-replayed").is_none());
    assert_eq!(later.json()["deduplicated"], false, "{}", later.text());
    assert_ne!(later.json()["id"], first.json()["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_that_disabled_tiered_push_triggers_nothing_until_it_enables_it_again() {
    let w = World::start().await;
    let app = |verb: &str| format!("/apps/tiered-push/{verb}");
    assert_eq!(w.admin.call("POST", &app("disable"), Some(&w.token), None).await.status, 204);
    let (status, body) = w.trigger("urgent", "off").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("app_disabled")), "{body}");
    quiet_for(2).await;
    assert!(w.mails_to("ann@acme.test").is_empty(), "nothing sent while the app is off");
    assert_eq!(w.admin.call("POST", &app("enable"), Some(&w.token), None).await.status, 201);
    let (status, body) = w.trigger("urgent", "on").await;
    assert_eq!(status, 202, "{body}");
    eventually(Duration::from_secs(20), "the e-mail step", || w.mails_to("ann@acme.test").len() == 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ack_by_link_or_by_read_receipt_stops_the_escalation() {
    let w = World::start().await;
    // Ack by the link in the e-mail.
    let (_, body) = w.trigger("urgent", "a").await;
    let inc = body["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "the e-mail step", || w.mails_to("ann@acme.test").len() == 1).await;
    let link = &ack_link(&w.mails_to("ann@acme.test")[0]);
    let forged = request("GET", &format!("{}x", link), None, &[], Bytes::new()).await;
    assert_eq!(forged.status, 404, "a tampered link is refused");
    let clicked = request("GET", link, None, &[], Bytes::new()).await;
    assert_eq!(clicked.status, 200, "{}", clicked.text());
    assert!(clicked.text().contains("Acknowledged"));
    w.advance(700).await;
    quiet_for(3).await;
    assert!(w.sms().is_empty(), "acknowledged: no SMS");
    let v = w.incident(&inc).await;
    assert_eq!(v["state"], "acknowledged");
    assert_eq!(kinds(&v, "stopped").len(), 1, "{v}");

    // Ack by a provider read receipt of the SMS.
    let (_, body) = w.trigger("urgent", "b").await;
    let inc = body["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "second e-mail", || w.mails_to("ann@acme.test").len() == 2).await;
    w.advance(610).await;
    eventually(Duration::from_secs(20), "the SMS step", || w.sms().len() == 1).await;
    let sid = w.sms()[0].sid.clone();
    w.read_sms_and_wait_for_ack(&sid, &inc).await;
    w.advance(310).await;
    quiet_for(3).await;
    assert!(w.calls().is_empty(), "no call after the read receipt");

    // A disabled action does not trigger.
    let t = Some(w.token.as_str());
    assert_eq!(w.admin.call("POST", &format!("/tiered/actions/{}/disable", w.action), t, None).await.status, 200);
    let (status, body) = w.trigger("urgent", "c").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("action_disabled")));
}

/// The link in an e-mail, acknowledging the incident for its recipient.
fn ack_link(mail: &Value) -> String {
    let html = mail["html"].as_str().unwrap();
    let start = html.find("http").unwrap();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_recipient_scope_an_ack_stops_the_escalation_only_for_that_recipient() {
    const BOSS_MOBILE: &str = "+14155550142";
    let w = World::start().await;
    let t = Some(w.token.as_str());
    let a = w.admin.call("GET", &format!("/tiered/actions/{}", w.action), t, None).await.json();
    let edit = json!({"title": a["title"], "templates": a["templates"], "rules": a["rules"], "ack_scope": "recipient"});
    w.admin_put(&format!("/tiered/actions/{}", w.action), edit).await;
    let boss = w.admin.call("GET", "/me", t, None).await.json()["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(w.admin.call("PATCH", &format!("/users/{boss}"), t, Some(json!({"mobile": BOSS_MOBILE}))).await.status, 200);

    let (_, body) = w.trigger("urgent", "scope").await;
    let inc = body["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "an e-mail to each", || w.mails_to("ann@acme.test").len() == 1 && w.mails_to("boss@acme.test").len() == 1)
        .await;
    // Ann acknowledges by her own link: the incident stays open for the boss.
    let clicked = request("GET", &ack_link(&w.mails_to("ann@acme.test")[0]), None, &[], Bytes::new()).await;
    assert_eq!(clicked.status, 200, "{}", clicked.text());
    let v = w.incident(&inc).await;
    assert_eq!(v["state"], "open", "{v}");
    assert_eq!(kinds(&v, "acknowledged").len(), 1, "{v}");

    // The SMS step goes to the boss only.
    w.advance(610).await;
    for _ in 0..200 {
        if !w.sms().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    quiet_for(2).await;
    let sms = w.sms();
    assert!(!sms.is_empty(), "no SMS step: {}", w.incident(&inc).await);
    assert_eq!(sms.iter().map(|c| c.params["To"].as_str()).collect::<Vec<_>>(), [BOSS_MOBILE], "Ann acknowledged: no SMS to her");

    // The boss reads it: now everyone has acknowledged and no call follows.
    w.read_sms_and_wait_for_ack(&sms[0].sid, &inc).await;
    w.advance(310).await;
    quiet_for(3).await;
    assert!(w.calls().is_empty(), "no call once every recipient acknowledged");
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_hours_defer_normal_levels_and_money_gates_paid_steps() {
    let w = World::start().await;
    let now = chrono::Utc::now();
    let hm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    w.admin_put(
        "/tiered/quiet-hours",
        json!({"start": hm(now - chrono::Duration::hours(1)), "end": hm(now + chrono::Duration::hours(1)), "time_zone": "UTC"}),
    )
    .await;
    let (_, body) = w.trigger("normal", "n").await;
    let normal = body["id"].as_str().unwrap().to_string();
    let (_, body) = w.trigger("urgent", "u").await;
    let urgent = body["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "the urgent e-mail passes quiet hours", || w.mails_to("ann@acme.test").len() == 1).await;
    w.ack(&urgent).await;
    quiet_for(2).await;
    assert_eq!(w.mails_to("ann@acme.test").len(), 1, "the normal one waits");
    assert_eq!(kinds(&w.incident(&normal).await, "deferred").len(), 1);
    w.advance(2 * 3600).await;
    eventually(Duration::from_secs(20), "the deferred e-mail after the window", || w.mails_to("ann@acme.test").len() == 2).await;

    // Prepaid with nothing paid in: the API refuses paid sends, the SMS step is refused.
    w.admin_put("/cost/alert", json!({"prepaid": true, "policy": "refuse", "low_balance_minor": 100})).await;
    let sms = |to: &str| json!({"channel": "twilio-sms", "account": "sms", "content": {"text": "hi"}, "recipients": [{"to": to}]}).to_string();
    let refused = w.gw.post("/v1/messages", Some(&w.key), &[("content-type", "application/json")], sms(ANN_MOBILE)).await;
    assert_eq!((refused.status, refused.error().0.as_str()), (402, "insufficient_balance"));
    let (_, body) = w.trigger("urgent", "broke").await;
    let broke = body["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "the free e-mail step", || w.mails_to("ann@acme.test").len() == 3).await;
    w.advance(610).await;
    let mut v = Value::Null;
    for _ in 0..100 {
        v = w.incident(&broke).await;
        if !kinds(&v, "refused").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kinds(&v, "refused").len(), 1, "{v}");
    assert!(w.sms().is_empty());
    w.ack(&broke).await;

    // The console refuses the same way (it submits through the same intake):
    // a push sent now, and a recurring push whose runs the scheduler makes.
    let push = |schedule: Value| {
        json!({"title": "broke", "channel": "twilio-sms", "account": "sms", "content": {"text": "hi"},
               "targets": {"list": [{"to": ANN_MOBILE}]}, "schedule": schedule})
    };
    let now_push = w.admin.call("POST", "/pushes", Some(&w.token), Some(push(json!({"mode": "now"})))).await;
    assert_eq!((now_push.status, now_push.error().0.as_str()), (402, "insufficient_balance"), "{}", now_push.text());
    // Once a minute, first two seconds from now: created, then due for the scheduler.
    let second = (chrono::Utc::now() + chrono::Duration::seconds(2)).format("%S").to_string();
    let schedule = json!({"mode": "cron", "cron": format!("{second} * * * * *"), "time_zone": "UTC"});
    let cron = w.admin.call("POST", "/pushes", Some(&w.token), Some(push(schedule))).await;
    assert_eq!(cron.status, 201, "{}", cron.text());
    let cron_id = cron.json()["id"].as_str().unwrap().to_string();
    quiet_for(5).await;
    let p = w.admin.call("GET", &format!("/pushes/{cron_id}"), Some(&w.token), None).await.json();
    assert_eq!((p["runs"].as_u64(), p["message_ids"].as_array().map(Vec::len)), (Some(0), Some(0)), "no run of the recurring push: {p}");
    let off = w.admin.call("POST", &format!("/pushes/{cron_id}/disable"), Some(&w.token), None).await;
    assert_eq!(off.status, 200, "{}", off.text());
    assert!(w.sms().is_empty());

    // Policy "fallback_free": the SMS step goes out by e-mail instead.
    w.admin_put("/cost/alert", json!({"policy": "fallback_free"})).await;
    let (_, body) = w.trigger("urgent", "fallback").await;
    let fb = body["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "first e-mail", || w.mails_to("ann@acme.test").len() == 4).await;
    w.advance(610).await;
    eventually(Duration::from_secs(20), "the fallback e-mail", || w.mails_to("ann@acme.test").len() == 5).await;
    assert_eq!(kinds(&w.incident(&fb).await, "fallback").len(), 1);
    assert!(w.sms().is_empty());
    w.ack(&fb).await;

    // Money in: paid sends go; crossing below the threshold alerts the admins
    // once, in the tenant's language (registered in English, then set to Chinese).
    w.admin_put("/tenant/settings", json!({"language": "zh-CN"})).await;
    let top = request(
        "POST",
        &format!("{}/api/v1/operator/tenants/{}/top-ups", w.admin.url, w.tenant),
        Some(OPERATOR),
        &[("content-type", "application/json")],
        Bytes::from(json!({"amount_minor": 110}).to_string()),
    )
    .await;
    assert_eq!(top.status, 201, "{}", top.text());
    for _ in 0..3 {
        let r = w.gw.post("/v1/messages", Some(&w.key), &[("content-type", "application/json")], sms(ANN_MOBILE)).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    eventually(Duration::from_secs(20), "three paid SMS", || w.sms().len() == 3).await;
    // The boss (an administrator, in the root unit) also gets the rule e-mails.
    let alerts = || w.mails_to("boss@acme.test").into_iter().filter(|m| m["headers"]["Subject"].as_str().unwrap_or("").contains("余额不足")).count();
    eventually(Duration::from_secs(20), "the low-balance alert", || alerts() == 1).await;
    quiet_for(2).await;
    assert_eq!(alerts(), 1, "one alert per crossing");
    // Money as people read it (yuan with its sign), in Chinese only.
    let alert = w.mails_to("boss@acme.test").into_iter().find(|m| m["headers"]["Subject"].as_str().unwrap_or("").contains("余额不足")).unwrap();
    let body = alert["text"].as_str().unwrap_or_default().to_string();
    assert!(body.starts_with("余额不足") && body.contains("低于提醒阈值 ¥") && !body.contains("minor units") && !body.contains("balance"), "{alert}");
    let bal = w.admin.call("GET", "/cost/balance", Some(&w.token), None).await.json();
    assert_eq!(bal["balance_minor"], 110 - 3 * 7, "{bal}");
}
