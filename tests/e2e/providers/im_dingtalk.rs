//! DingTalk: custom group robots (`dingtalk-robot`) and work notifications
//! (`dingtalk-work`) against a fake `oapi.dingtalk.com` that checks what
//! DingTalk checks: the robot signature and timestamp (one hour), the access
//! token (issued with an expiry, rejected when stale), the payload, the
//! 20000-byte content limit, and the rate limits, with DingTalk's error codes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tempfile::tempdir;

use super::im_common::*;
use crate::harness;

struct Robot {
    secret: Option<String>,
    window: Window,
}

struct App {
    secret: String,
    agent_id: u64,
}

#[derive(Default)]
struct DingState {
    robots: HashMap<String, Robot>,
    apps: HashMap<String, App>,
    /// access token → (app key, expiry)
    tokens: HashMap<String, (String, Instant)>,
    token_requests: usize,
    issued: usize,
    send_calls: usize,
    work_window: Option<Window>,
    robot_messages: Vec<Value>,
    work_messages: Vec<Value>,
    throttled: usize,
    task_ids: u64,
}

/// The fake `oapi.dingtalk.com`.
#[derive(Clone)]
struct FakeDingTalk {
    url: String,
    state: Arc<Mutex<DingState>>,
}

fn answer(errcode: i64, errmsg: &str) -> Value {
    json!({"errcode": errcode, "errmsg": errmsg})
}

impl FakeDingTalk {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(DingState::default()));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        Self { url: serve(app).await, state }
    }

    fn robot(&self, token: &str, secret: Option<&str>, window: Window) {
        self.state.lock().unwrap().robots.insert(token.into(), Robot { secret: secret.map(str::to_string), window });
    }

    fn app(&self, key: &str, secret: &str, agent_id: u64) {
        self.state.lock().unwrap().apps.insert(key.into(), App { secret: secret.into(), agent_id });
    }

    fn set_work_window(&self, w: Window) {
        self.state.lock().unwrap().work_window = Some(w);
    }

    /// Every issued token is now past its expiry.
    fn expire_tokens(&self) {
        let now = Instant::now();
        for (_, until) in self.state.lock().unwrap().tokens.values_mut() {
            *until = now;
        }
    }

    fn with<T>(&self, f: impl FnOnce(&DingState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

async fn handle(State(state): State<Arc<Mutex<DingState>>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let q = query(&uri);
    let mut s = state.lock().unwrap();
    let json_body = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let reply = match (method.as_str(), uri.path()) {
        ("POST", "/robot/send") if !json_body => answer(43004, "无效的HTTP HEADER Content-Type"),
        ("POST", "/robot/send") => robot_send(&mut s, &q, &body),
        ("GET", "/gettoken") => gettoken(&mut s, &q),
        ("POST", "/topapi/message/corpconversation/asyncsend_v2") if !json_body => answer(43004, "无效的HTTP HEADER Content-Type"),
        ("POST", "/topapi/message/corpconversation/asyncsend_v2") => asyncsend(&mut s, &q, &body),
        ("GET", "/robot/send") => answer(43002, "需要POST请求"),
        _ => answer(404, "请求的URI地址不存在"),
    };
    axum::Json(reply).into_response()
}

fn robot_send(s: &mut DingState, q: &HashMap<String, String>, body: &[u8]) -> Value {
    let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
        return answer(40035, "缺少参数 access_token");
    };
    let Some(robot) = s.robots.get_mut(token) else {
        return answer(300005, "token is not exist");
    };
    if let Some(secret) = &robot.secret {
        let (Some(ts), Some(sign)) = (q.get("timestamp"), q.get("sign")) else {
            return answer(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]");
        };
        let Ok(ts_ms) = ts.parse::<i64>() else {
            return answer(310000, "invalid timestamp");
        };
        if (now_ms() - ts_ms).abs() > 3_600_000 {
            return answer(310000, "invalid timestamp");
        }
        let want = base64(&hmac_sha256(secret.as_bytes(), format!("{ts}\n{secret}").as_bytes()));
        if *sign != want {
            return answer(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]");
        }
    }
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        return answer(40035, "缺少参数 json");
    };
    let content = match msg["msgtype"].as_str() {
        Some("text") => msg["text"]["content"].as_str(),
        Some("markdown") if msg["markdown"]["title"].as_str().is_some_and(|t| !t.is_empty()) => msg["markdown"]["text"].as_str(),
        Some("markdown") => return answer(40035, "缺少参数 markdown.title"),
        _ => return answer(400105, "不支持的消息类型"),
    };
    let Some(content) = content.filter(|c| !c.trim().is_empty()) else {
        return answer(40035, "缺少参数 content");
    };
    if content.len() > 20_000 {
        return answer(460101, "message too long, exceed 20000 bytes");
    }
    for key in ["atMobiles", "atUserIds"] {
        if !msg["at"][key].is_null() && !msg["at"][key].is_array() {
            return answer(40035, "at 参数格式错误");
        }
    }
    if !robot.window.admit() {
        s.throttled += 1;
        return answer(130101, "send too fast, exceed 20 times per minute");
    }
    s.robot_messages.push(json!({"token": token, "body": msg}));
    answer(0, "ok")
}

fn gettoken(s: &mut DingState, q: &HashMap<String, String>) -> Value {
    s.token_requests += 1;
    let (Some(key), Some(secret)) = (q.get("appkey"), q.get("appsecret")) else {
        return answer(40035, "缺少参数 corpid or appkey");
    };
    if s.apps.get(key).is_none_or(|a| a.secret != *secret) {
        return answer(40096, "不合法的appKey或appSecret");
    }
    // Within its validity DingTalk answers the same token again.
    let now = Instant::now();
    let current = s.tokens.iter().find(|(_, (k, until))| k == key && *until > now).map(|(t, (_, until))| (t.clone(), *until));
    let (token, until) = current.unwrap_or_else(|| {
        s.issued += 1;
        let token = format!("dt-token-{}", s.issued);
        let until = now + Duration::from_secs(7200);
        s.tokens.insert(token.clone(), (key.clone(), until));
        (token, until)
    });
    json!({"errcode": 0, "access_token": token, "errmsg": "ok", "expires_in": until.duration_since(now).as_secs()})
}

fn asyncsend(s: &mut DingState, q: &HashMap<String, String>, body: &[u8]) -> Value {
    s.send_calls += 1;
    let Some(token) = q.get("access_token") else {
        return answer(40014, "不合法的access_token");
    };
    let Some((key, until)) = s.tokens.get(token).cloned() else {
        return answer(40014, "不合法的access_token");
    };
    if Instant::now() >= until {
        return answer(42001, "access_token超时");
    }
    let agent_id = s.apps[&key].agent_id;
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return answer(40035, "缺少参数 json");
    };
    if req["agent_id"].as_u64() != Some(agent_id) {
        return answer(40056, "不合法的agentid");
    }
    let users: Vec<&str> = req["userid_list"].as_str().unwrap_or("").split(',').filter(|u| !u.is_empty()).collect();
    if users.is_empty() {
        return answer(40035, "缺少参数 userid_list");
    }
    if users.len() > 5000 {
        return answer(40035, "userid_list 超过最大长度 5000");
    }
    let msg = &req["msg"];
    let ok = match msg["msgtype"].as_str() {
        Some("text") => msg["text"]["content"].as_str().is_some_and(|c| !c.is_empty()),
        Some("markdown") => {
            msg["markdown"]["title"].as_str().is_some_and(|c| !c.is_empty()) && msg["markdown"]["text"].as_str().is_some_and(|c| !c.is_empty())
        }
        _ => false,
    };
    if !ok {
        return answer(40035, "缺少参数 msg");
    }
    if let Some(w) = &mut s.work_window
        && !w.admit()
    {
        s.throttled += 1;
        return answer(90018, "当前企业调用该接口的QPS超过了限制");
    }
    s.task_ids += 1;
    let task_id = 256_271_667_000 + s.task_ids;
    let users: Vec<String> = users.into_iter().map(str::to_string).collect();
    s.work_messages.push(json!({"token": token, "users": users, "msg": msg, "task_id": task_id}));
    json!({"errcode": 0, "errmsg": "ok", "task_id": task_id, "request_id": format!("req{task_id}")})
}

const ROBOT_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const ROBOT_SECRET: &str = "SEC3a7f0c9e1b2d4f6a8c0e2f4a6b8d0f2";

fn robot_account(name: &str, secret: &str, extra: &str) -> String {
    account(
        name,
        "dingtalk-robot",
        &format!("{{ webhook = \"https://oapi.dingtalk.com/robot/send?access_token={ROBOT_TOKEN}\", secret = \"{secret}\"{extra} }}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_robot_posts_signed_messages_with_mentions() {
    require_plugin("dingtalk-robot");
    let fake = FakeDingTalk::start().await;
    fake.robot(ROBOT_TOKEN, Some(ROBOT_SECRET), Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!(
        "{}{}[[tenants.prices]]\nchannel = \"dingtalk-robot\"\nunit_minor = 2\n",
        robot_account("ops", ROBOT_SECRET, ""),
        robot_account("md", ROBOT_SECRET, ", msgtype = \"markdown\", title = \"Herald alert\"")
    );
    let gw = gateway(dir.path(), &[("oapi.dingtalk.com", &fake.url)], "", &accounts);

    // Not whom a robot can mention: refused at ingest, never sent.
    refused_at_ingest(&gw, "dingtalk-robot", "ops", &["", "13800000000,13900000000", "userid:manager 7", "userid:", "manager7", "+86 138 0000 0000"])
        .await;

    let id = send(
        &gw,
        "dingtalk-robot",
        "ops",
        json!({"subject": "磁盘告警", "text": "db-1 disk 91%"}),
        &["+8613800000000", "@all", "userid:manager7", "group"],
    )
    .await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 4], "{v}");
    assert_eq!(v["cost_minor"], 8, "four messages at 2");
    let id = send(&gw, "dingtalk-robot", "md", json!({"text": "## Deploy done\n- api v2"}), &["group"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"]);

    let got = fake.with(|s| s.robot_messages.clone());
    assert_eq!(got.len(), 5, "the fake accepted every message: signature, timestamp and payload checked");
    let find = |pred: &dyn Fn(&Value) -> bool| got.iter().map(|m| &m["body"]).find(|b| pred(b)).cloned().unwrap();
    let mobile = find(&|b| b["at"]["atMobiles"] == json!(["13800000000"]));
    assert_eq!(mobile["msgtype"], "text");
    assert_eq!(mobile["text"]["content"], "磁盘告警\ndb-1 disk 91% @13800000000", "E.164 +86 written as DingTalk's mobile");
    assert_eq!(mobile["at"]["isAtAll"], false);
    let all = find(&|b| b["at"]["isAtAll"] == true);
    assert_eq!(all["text"]["content"], "磁盘告警\ndb-1 disk 91%");
    let user = find(&|b| b["at"]["atUserIds"] == json!(["manager7"]));
    assert!(user["text"]["content"].as_str().unwrap().ends_with(" @manager7"));
    let md = find(&|b| b["msgtype"] == "markdown");
    assert_eq!(md["markdown"], json!({"title": "Herald alert", "text": "## Deploy done\n- api v2"}));
    assert!(got.iter().all(|m| m["token"] == ROBOT_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_robot_wrong_secret_and_oversized_content_fail_with_the_reason() {
    require_plugin("dingtalk-robot");
    let fake = FakeDingTalk::start().await;
    fake.robot(ROBOT_TOKEN, Some(ROBOT_SECRET), Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!("{}{}", robot_account("wrong", "SECnot-the-robots-secret", ""), robot_account("ops", ROBOT_SECRET, ""));
    let gw = gateway(dir.path(), &[("oapi.dingtalk.com", &fake.url)], "", &accounts);

    let id = send(&gw, "dingtalk-robot", "wrong", json!({"text": "hello"}), &["group"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(1)), "{v}");
    assert!(d["detail"].as_str().unwrap().starts_with("DingTalk errcode 310000: sign not match"), "{d}");

    // 20000 bytes is DingTalk's limit: one more fails before any request.
    let id = send(&gw, "dingtalk-robot", "ops", json!({"text": "x".repeat(20_001)}), &["group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert!(v["deliveries"][0]["detail"].as_str().unwrap().contains("at most 20000"), "{v}");
    let id = send(&gw, "dingtalk-robot", "ops", json!({"text": "x".repeat(20_000)}), &["group"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"]);
    assert_eq!(fake.with(|s| s.robot_messages.len()), 1, "only the message within the limit reached DingTalk");
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_robot_is_throttled_then_sends_later() {
    require_plugin("dingtalk-robot");
    let fake = FakeDingTalk::start().await;
    // 2 messages per 500 ms, then blocked for 400 ms (DingTalk: 20 a minute, then 10 minutes).
    fake.robot(ROBOT_TOKEN, None, Window::new(2, Duration::from_millis(500)).with_penalty(Duration::from_millis(400)));
    let dir = tempdir().unwrap();
    let accounts = account("ops", "dingtalk-robot", &format!("{{ webhook = \"https://oapi.dingtalk.com/robot/send?access_token={ROBOT_TOKEN}\" }}"));
    let gw = gateway(dir.path(), &[("oapi.dingtalk.com", &fake.url)], "", &accounts);
    let id = send(&gw, "dingtalk-robot", "ops", json!({"text": "build failed"}), &["group", "group", "group", "group"]).await;
    // 130101 asks for 10 minutes: the retries are capped by max_retry_after_ms,
    // but the host also pauses the account for the Retry-After, at most 60 s.
    let v = settle_within(&gw, &id, Duration::from_secs(120)).await;
    assert_eq!(statuses(&v), ["sent"; 4], "{v}");
    assert_eq!(fake.with(|s| s.robot_messages.len()), 4);
    let throttled = fake.with(|s| s.throttled);
    assert!(throttled >= 2, "the fake refused at least the two over the limit, got {throttled}");
    assert!(v["deliveries"].as_array().unwrap().iter().any(|d| d["attempts"].as_u64() > Some(1)));
    assert!(outcome_count(&gw, "dingtalk-robot", "throttled").await >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn fake_dingtalk_refuses_stale_timestamps_forged_signatures_and_unencoded_signs() {
    // The fake itself must refuse what DingTalk refuses, or the tests above prove nothing.
    let fake = FakeDingTalk::start().await;
    fake.robot(ROBOT_TOKEN, Some(ROBOT_SECRET), Window::unlimited());
    let post = |query: String| {
        let url = format!("{}/robot/send?access_token={ROBOT_TOKEN}{query}", fake.url);
        async move {
            let body = r#"{"msgtype":"text","text":{"content":"x"}}"#;
            harness::request("POST", &url, None, &[("content-type", "application/json")], body.into()).await.json()
        }
    };
    let sign = |ts: i64| base64(&hmac_sha256(ROBOT_SECRET.as_bytes(), format!("{ts}\n{ROBOT_SECRET}").as_bytes()));
    let enc = |s: String| s.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    let now = now_ms();
    assert_eq!(post(format!("&timestamp={now}&sign={}", enc(sign(now)))).await["errcode"], 0);
    let stale = now - 3_700_000;
    assert_eq!(post(format!("&timestamp={stale}&sign={}", enc(sign(stale)))).await["errmsg"], "invalid timestamp");
    assert_eq!(post(format!("&timestamp={now}&sign={}", enc(sign(now - 1)))).await["errcode"], 310000);
    // A sign with '+' that was not percent-encoded decodes to a space: refused.
    let ts = (now..now + 2000).find(|ts| sign(*ts).contains('+')).unwrap();
    assert_eq!(post(format!("&timestamp={ts}&sign={}", sign(ts))).await["errcode"], 310000);
    assert_eq!(post(String::new()).await["errcode"], 310000, "signing is required once the robot has a secret");
}

const APP_KEY: &str = "dingoa7xk2p9";
const APP_SECRET: &str = "Xk9-appsecret-0123456789abcdef";

fn work_account(secret: &str) -> String {
    account("work", "dingtalk-work", &format!("{{ app_key = \"{APP_KEY}\", app_secret = \"{secret}\", agent_id = 2874021 }}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_work_reuses_its_token_batches_equal_messages_and_refreshes_an_expired_token() {
    require_plugin("dingtalk-work");
    let fake = FakeDingTalk::start().await;
    fake.app(APP_KEY, APP_SECRET, 2_874_021);
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("oapi.dingtalk.com", &fake.url)], "[dispatch]\nlinger_ms = 300\n", &work_account(APP_SECRET));

    // Several userids in one recipient, or one with a space: refused at ingest.
    refused_at_ingest(&gw, "dingtalk-work", "work", &["user01,user02", "user 01"]).await;

    // One message, three userids, the same text: one asyncsend_v2 call.
    let id = send(&gw, "dingtalk-work", "work", json!({"subject": "审批", "text": "请处理报销单"}), &["user01", "user02", "user03"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 3], "{v}");
    let calls = fake.with(|s| s.work_messages.clone());
    assert_eq!(calls.len(), 1, "{calls:?}");
    let mut users: Vec<&str> = calls[0]["users"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    users.sort();
    assert_eq!(users, ["user01", "user02", "user03"]);
    assert_eq!(calls[0]["msg"], json!({"msgtype": "text", "text": {"content": "审批\n请处理报销单"}}));
    let task = calls[0]["task_id"].as_u64().unwrap().to_string();
    assert!(v["deliveries"].as_array().unwrap().iter().all(|d| d["provider_id"] == task.as_str()), "the task id is the provider id");

    // Per-recipient texts differ: one call each. The token is reused.
    let r = gw
        .send(&json!({"channel": "dingtalk-work", "account": "work", "content": {"text": "hi {{ name }}"},
                      "recipients": [{"to": "user04", "variables": {"name": "Ann"}}, {"to": "user05", "variables": {"name": "Bo"}}]}))
        .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"; 2]);
    assert_eq!(fake.with(|s| s.work_messages.len()), 3);
    assert_eq!(fake.with(|s| (s.issued, s.token_requests)), (1, 1), "one token for all sends");

    // DingTalk expires the token: the gateway fetches a new one and the retry succeeds.
    fake.expire_tokens();
    let id = send(&gw, "dingtalk-work", "work", json!({"text": "after expiry"}), &["user06"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("sent"), Some(2)), "{v}");
    assert_eq!(fake.with(|s| s.issued), 2, "exactly one refresh");
    let last = fake.with(|s| s.work_messages.last().cloned().unwrap());
    assert_eq!((last["token"].as_str(), last["users"].clone()), (Some("dt-token-2"), json!(["user06"])));
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_work_wrong_app_secret_never_sends_and_reports_dingtalks_reason() {
    require_plugin("dingtalk-work");
    let fake = FakeDingTalk::start().await;
    fake.app(APP_KEY, APP_SECRET, 2_874_021);
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("oapi.dingtalk.com", &fake.url)], "", &work_account("not-the-secret"));
    let id = send(&gw, "dingtalk-work", "work", json!({"text": "x"}), &["user01"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    // The provider refused the credentials: failed at once, not retried.
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(1)), "{v}");
    let detail = d["detail"].as_str().unwrap();
    assert!(detail.contains("40096") && detail.contains("不合法的appKey或appSecret"), "{detail}");
    assert!(!detail.contains("not-the-secret"), "no secret in details");
    assert_eq!(fake.with(|s| (s.issued, s.send_calls)), (0, 0));
    assert_eq!(fake.with(|s| s.token_requests), 1, "one token request, no retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_work_is_throttled_then_sends_later() {
    require_plugin("dingtalk-work");
    let fake = FakeDingTalk::start().await;
    fake.app(APP_KEY, APP_SECRET, 2_874_021);
    fake.set_work_window(Window::new(1, Duration::from_millis(250)));
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("oapi.dingtalk.com", &fake.url)], "", &work_account(APP_SECRET));
    let r = gw
        .send(&json!({"channel": "dingtalk-work", "account": "work", "content": {"text": "n={{ n }}"},
                      "recipients": [{"to": "u1", "variables": {"n": 1}}, {"to": "u2", "variables": {"n": 2}}, {"to": "u3", "variables": {"n": 3}}]}))
        .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 3], "{v}");
    assert!(fake.with(|s| s.throttled) >= 1);
    assert_eq!(fake.with(|s| s.work_messages.len()), 3);
    assert!(outcome_count(&gw, "dingtalk-work", "throttled").await >= 1);
    assert_eq!(fake.with(|s| s.issued), 1);
}
