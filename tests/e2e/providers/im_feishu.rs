//! Feishu custom bots (`feishu`) against a fake `open.feishu.cn` that checks
//! what Feishu checks: the hook token, the signature (the string to sign is
//! the HMAC key, the message empty) and its timestamp (seconds, one hour),
//! the payload, the 20 KB body limit, and the frequency limit (`11232`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tempfile::tempdir;

use super::im_common::*;
use crate::harness;

struct Bot {
    secret: Option<String>,
    window: Window,
}

#[derive(Default)]
struct FeishuState {
    bots: HashMap<String, Bot>,
    messages: Vec<Value>,
    throttled: usize,
    requests: usize,
}

#[derive(Clone)]
struct FakeFeishu {
    url: String,
    state: Arc<Mutex<FeishuState>>,
}

fn code(code: i64, msg: &str) -> (StatusCode, Value) {
    (StatusCode::OK, json!({"code": code, "data": {}, "msg": msg}))
}

impl FakeFeishu {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(FeishuState::default()));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        Self { url: serve(app).await, state }
    }

    fn bot(&self, token: &str, secret: Option<&str>, window: Window) {
        self.state.lock().unwrap().bots.insert(token.into(), Bot { secret: secret.map(str::to_string), window });
    }

    fn with<T>(&self, f: impl FnOnce(&FeishuState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

async fn handle(State(state): State<Arc<Mutex<FeishuState>>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    let (status, reply) = match (method.as_str(), uri.path().strip_prefix("/open-apis/bot/v2/hook/")) {
        ("POST", Some(token)) => hook(&mut s, token, &body),
        _ => (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "404 page not found"})),
    };
    (status, axum::Json(reply)).into_response()
}

fn hook(s: &mut FeishuState, token: &str, body: &[u8]) -> (StatusCode, Value) {
    let Some(bot) = s.bots.get_mut(token) else {
        return code(19001, "param invalid: incoming webhook access token invalid");
    };
    if body.len() > 20 * 1024 {
        return (StatusCode::BAD_REQUEST, json!({"code": 9499, "msg": "Bad Request", "data": {}}));
    }
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, json!({"code": 9499, "msg": "Bad Request", "data": {}}));
    };
    if let Some(secret) = &bot.secret {
        let ts = match &msg["timestamp"] {
            Value::String(t) => t.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        let fresh = ts.is_some_and(|ts| (now_ms() / 1000 - ts).abs() <= 3600);
        let want = ts.map(|ts| base64(&hmac_sha256(format!("{ts}\n{secret}").as_bytes(), b"")));
        if !fresh || msg["sign"].as_str() != want.as_deref() {
            return code(19021, "sign match fail or timestamp is not within one hour from current time");
        }
    }
    if msg["msg_type"] != "text" || msg["content"]["text"].as_str().is_none_or(str::is_empty) {
        return code(9499, "Bad Request");
    }
    if !bot.window.admit() {
        s.throttled += 1;
        return code(11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]");
    }
    s.messages.push(json!({"token": token, "body": msg}));
    (StatusCode::OK, json!({"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}))
}

const TOKEN: &str = "5e3d587e-d78e-4a07-bd07-265f269f86fd";
const SECRET: &str = "nIMtb7r3N9pkXyXdtAbx6e";

fn bot_account(name: &str, token: &str, secret: Option<&str>) -> String {
    let secret = secret.map(|s| format!(", secret = \"{s}\"")).unwrap_or_default();
    account(name, "feishu", &format!("{{ webhook = \"https://open.feishu.cn/open-apis/bot/v2/hook/{token}\"{secret} }}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_bot_posts_signed_text_with_mentions() {
    require_plugin("feishu");
    let fake = FakeFeishu::start().await;
    fake.bot(TOKEN, Some(SECRET), Window::unlimited());
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("open.feishu.cn", &fake.url)], "", &bot_account("bot", TOKEN, Some(SECRET)));
    // Not whom a bot can mention: refused at ingest, never sent.
    refused_at_ingest(
        &gw,
        "feishu",
        "bot",
        &["ou_7d8a6e6df7621556ce0d21922b676706", "userid:ou_7d8a6e6df7621556ce0d21922b676706,ou_1", "userid:ou_1 ou_2"],
    )
    .await;

    let id =
        send(&gw, "feishu", "bot", json!({"subject": "告警", "text": "db-1 down"}), &["userid:ou_7d8a6e6df7621556ce0d21922b676706", "@all", "group"])
            .await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 3], "{v}");
    let got = fake.with(|s| s.messages.clone());
    assert_eq!(got.len(), 3, "signature and timestamp accepted by the fake");
    let texts: Vec<&str> = got.iter().map(|m| m["body"]["content"]["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"<at user_id=\"ou_7d8a6e6df7621556ce0d21922b676706\"></at> 告警\ndb-1 down"), "{texts:?}");
    assert!(texts.contains(&"<at user_id=\"all\">所有人</at> 告警\ndb-1 down"), "{texts:?}");
    assert!(texts.contains(&"告警\ndb-1 down"), "{texts:?}");
    for m in &got {
        let ts: i64 = m["body"]["timestamp"].as_str().unwrap().parse().unwrap();
        assert!((now_ms() / 1000 - ts).abs() < 60, "timestamp in seconds");
        assert_eq!(m["body"]["msg_type"], "text");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_wrong_secret_unknown_hook_and_oversized_body_fail_with_the_reason() {
    require_plugin("feishu");
    let fake = FakeFeishu::start().await;
    fake.bot(TOKEN, Some(SECRET), Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!(
        "{}{}{}",
        bot_account("wrong", TOKEN, Some("not-the-secret")),
        bot_account("gone", "0000-deleted-bot", None),
        bot_account("bot", TOKEN, Some(SECRET))
    );
    let gw = gateway(dir.path(), &[("open.feishu.cn", &fake.url)], "", &accounts);

    let id = send(&gw, "feishu", "wrong", json!({"text": "x"}), &["group"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(1)), "{v}");
    assert_eq!(d["detail"], "Feishu code 19021: sign match fail or timestamp is not within one hour from current time");

    let id = send(&gw, "feishu", "gone", json!({"text": "x"}), &["group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert!(v["deliveries"][0]["detail"].as_str().unwrap().starts_with("Feishu code 19001"), "{v}");

    let id = send(&gw, "feishu", "bot", json!({"text": "x".repeat(21_000)}), &["group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert!(v["deliveries"][0]["detail"].as_str().unwrap().contains("at most 20480"), "{v}");
    assert_eq!(fake.with(|s| s.requests), 2, "the oversized message never left the gateway");
    assert!(fake.with(|s| s.messages.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_is_throttled_then_sends_later() {
    require_plugin("feishu");
    let fake = FakeFeishu::start().await;
    fake.bot(TOKEN, None, Window::new(2, Duration::from_millis(150)));
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("open.feishu.cn", &fake.url)], "", &bot_account("bot", TOKEN, None));
    let id = send(&gw, "feishu", "bot", json!({"text": "load 12.3"}), &["group", "group", "group", "group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 4], "{v}");
    assert_eq!(fake.with(|s| s.messages.len()), 4);
    assert!(fake.with(|s| s.throttled) >= 2);
    assert!(outcome_count(&gw, "feishu", "throttled").await >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn fake_feishu_refuses_stale_and_forged_signatures() {
    let fake = FakeFeishu::start().await;
    fake.bot(TOKEN, Some(SECRET), Window::unlimited());
    let url = format!("{}/open-apis/bot/v2/hook/{TOKEN}", fake.url);
    let post = |ts: i64, sign: String| {
        let url = url.clone();
        async move {
            let body = json!({"timestamp": ts.to_string(), "sign": sign, "msg_type": "text", "content": {"text": "x"}}).to_string();
            harness::request("POST", &url, None, &[("content-type", "application/json")], body.into()).await.json()["code"].clone()
        }
    };
    let sign = |ts: i64| base64(&hmac_sha256(format!("{ts}\n{SECRET}").as_bytes(), b""));
    let now = now_ms() / 1000;
    assert_eq!(post(now, sign(now)).await, 0);
    assert_eq!(post(now - 3700, sign(now - 3700)).await, 19021, "over an hour old");
    assert_eq!(post(now, sign(now + 1)).await, 19021);
    // DingTalk's recipe (secret as key, string as message) is not Feishu's.
    let dingtalk_style = base64(&hmac_sha256(SECRET.as_bytes(), format!("{now}\n{SECRET}").as_bytes()));
    assert_eq!(post(now, dingtalk_style).await, 19021);
}
