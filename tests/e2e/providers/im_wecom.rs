//! WeCom: group robots (`wecom-robot`) and application messages (`wecom-app`)
//! against a fake `qyapi.weixin.qq.com` that checks what WeCom checks: the
//! robot key, the access token (issued with an expiry, `42001` when stale),
//! the corp id and secret, the payload and its byte limits, the recipients
//! (`invaliduser`, `81013`), and the frequency limit (`45009`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tempfile::tempdir;

use super::im_common::*;

#[derive(Default)]
struct WecomState {
    robots: HashMap<String, Window>,
    corp: Option<(String, String, u64)>,
    members: HashSet<String>,
    tokens: HashMap<String, Instant>,
    token_requests: usize,
    issued: usize,
    send_calls: usize,
    app_window: Option<Window>,
    robot_messages: Vec<Value>,
    app_messages: Vec<Value>,
    throttled: usize,
    msgids: u64,
}

#[derive(Clone)]
struct FakeWecom {
    url: String,
    state: Arc<Mutex<WecomState>>,
}

fn answer(errcode: i64, errmsg: &str) -> Value {
    json!({"errcode": errcode, "errmsg": errmsg})
}

/// WeCom appends a hint and a documentation link to most error messages.
fn hinted(errcode: i64, errmsg: &str) -> Value {
    answer(
        errcode,
        &format!(
            "{errmsg}, hint: [1700000000_{errcode}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        ),
    )
}

impl FakeWecom {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(WecomState::default()));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        Self { url: serve(app).await, state }
    }

    fn robot(&self, key: &str, window: Window) {
        self.state.lock().unwrap().robots.insert(key.into(), window);
    }

    fn corp(&self, corp_id: &str, secret: &str, agent_id: u64, members: &[&str]) {
        let mut s = self.state.lock().unwrap();
        s.corp = Some((corp_id.into(), secret.into(), agent_id));
        s.members = members.iter().map(|m| m.to_lowercase()).collect();
    }

    fn expire_tokens(&self) {
        let now = Instant::now();
        for until in self.state.lock().unwrap().tokens.values_mut() {
            *until = now;
        }
    }

    fn with<T>(&self, f: impl FnOnce(&WecomState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

async fn handle(State(state): State<Arc<Mutex<WecomState>>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let q = query(&uri);
    let mut s = state.lock().unwrap();
    let reply = match (method.as_str(), uri.path()) {
        ("POST", "/cgi-bin/webhook/send") => robot_send(&mut s, &q, &body),
        ("GET", "/cgi-bin/gettoken") => gettoken(&mut s, &q),
        ("POST", "/cgi-bin/message/send") => message_send(&mut s, &q, &body),
        _ => hinted(60011, "invalid request"),
    };
    axum::Json(reply).into_response()
}

fn robot_send(s: &mut WecomState, q: &HashMap<String, String>, body: &[u8]) -> Value {
    let Some(window) = q.get("key").and_then(|k| s.robots.get_mut(k)) else {
        return hinted(93000, "invalid webhook url");
    };
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        return hinted(40058, "invalid Request Parameter");
    };
    let (field, limit) = match msg["msgtype"].as_str() {
        Some("text") => ("text", 2048),
        Some("markdown") => ("markdown", 4096),
        _ => return hinted(40008, "invalid message type"),
    };
    let Some(content) = msg[field]["content"].as_str().filter(|c| !c.is_empty()) else {
        return hinted(44004, "empty content");
    };
    if content.len() > limit {
        return hinted(40058, &format!("{field}.content exceed max length {limit}. invalid Request Parameter"));
    }
    for list in ["mentioned_list", "mentioned_mobile_list"] {
        let v = &msg[field][list];
        if !v.is_null() && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return hinted(40058, &format!("{list} invalid Request Parameter"));
        }
    }
    if !window.admit() {
        s.throttled += 1;
        return hinted(45009, "api freq out of limit");
    }
    s.robot_messages.push(msg);
    answer(0, "ok")
}

fn gettoken(s: &mut WecomState, q: &HashMap<String, String>) -> Value {
    s.token_requests += 1;
    let Some((corp_id, secret, _)) = s.corp.clone() else {
        return hinted(40013, "invalid corpid");
    };
    if q.get("corpid") != Some(&corp_id) {
        return hinted(40013, "invalid corpid");
    }
    if q.get("corpsecret") != Some(&secret) {
        return hinted(40001, "invalid credential");
    }
    // Within its validity WeCom answers the same token again.
    let now = Instant::now();
    let current = s.tokens.iter().find(|(_, until)| **until > now).map(|(t, until)| (t.clone(), *until));
    let (token, until) = current.unwrap_or_else(|| {
        s.issued += 1;
        let token = format!("wc-token-{}", s.issued);
        let until = now + Duration::from_secs(7200);
        s.tokens.insert(token.clone(), until);
        (token, until)
    });
    json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": until.duration_since(now).as_secs()})
}

fn message_send(s: &mut WecomState, q: &HashMap<String, String>, body: &[u8]) -> Value {
    s.send_calls += 1;
    let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
        return hinted(41001, "access_token missing");
    };
    let Some(until) = s.tokens.get(token).copied() else {
        return hinted(40014, "invalid access_token");
    };
    if Instant::now() >= until {
        return hinted(42001, "access_token expired");
    }
    let agent_id = s.corp.as_ref().unwrap().2;
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return hinted(40058, "invalid Request Parameter");
    };
    if req["agentid"].as_u64() != Some(agent_id) {
        return hinted(40056, "invalid agentid");
    }
    let (field, content) = match req["msgtype"].as_str() {
        Some(t @ ("text" | "markdown")) => (t, req[t]["content"].as_str()),
        _ => return hinted(40008, "invalid message type"),
    };
    let Some(content) = content.filter(|c| !c.is_empty()) else {
        return hinted(44004, "empty content");
    };
    let users: Vec<&str> = req["touser"].as_str().unwrap_or("").split('|').filter(|u| !u.is_empty()).collect();
    if users.is_empty() {
        return hinted(40058, "touser invalid Request Parameter");
    }
    if users.len() > 1000 {
        return hinted(40058, "touser exceed max count 1000");
    }
    if let Some(w) = &mut s.app_window
        && !w.admit()
    {
        s.throttled += 1;
        return hinted(45009, "api freq out of limit");
    }
    let (valid, invalid): (Vec<&str>, Vec<&str>) = users.iter().copied().partition(|u| s.members.contains(&u.to_lowercase()));
    if valid.is_empty() {
        return hinted(81013, "user & party & tag all invalid");
    }
    // WeCom truncates content over 2048 bytes instead of refusing it.
    let mut end = content.len().min(2048);
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    s.msgids += 1;
    let msgid = format!("msg{:06}", s.msgids);
    s.app_messages.push(json!({"token": token, "touser": valid, "msgtype": field, "content": &content[..end], "msgid": msgid, "safe": req["safe"]}));
    json!({"errcode": 0, "errmsg": "ok", "invaliduser": invalid.join("|"), "invalidparty": "", "invalidtag": "", "unlicenseduser": "", "msgid": msgid})
}

const ROBOT_KEY: &str = "693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa";

fn robot_account(name: &str, key: &str, extra: &str) -> String {
    account(name, "wecom-robot", &format!("{{ webhook = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}\"{extra} }}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_robot_posts_text_and_markdown_with_mentions() {
    require_plugin("wecom-robot");
    let fake = FakeWecom::start().await;
    fake.robot(ROBOT_KEY, Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!("{}{}", robot_account("ops", ROBOT_KEY, ""), robot_account("md", ROBOT_KEY, ", msgtype = \"markdown\""));
    let gw = gateway(dir.path(), &[("qyapi.weixin.qq.com", &fake.url)], "", &accounts);

    // Not whom a robot can mention: refused at ingest, never sent.
    refused_at_ingest(
        &gw,
        "wecom-robot",
        "ops",
        &["13800001111,13900002222", "userid:wang qing", "wangqing", "userid:<@wangqing>", "+1 415 555 0100"],
    )
    .await;

    let id = send(&gw, "wecom-robot", "ops", json!({"text": "广州今日天气：29度"}), &["13800001111", "@all", "userid:wangqing", "group"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"; 4]);
    let id = send(&gw, "wecom-robot", "md", json!({"subject": "Deploy", "text": "> api **v2**"}), &["userid:wangqing"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"]);

    let got = fake.with(|s| s.robot_messages.clone());
    assert_eq!(got.len(), 5);
    let text = |pred: &dyn Fn(&Value) -> bool| got.iter().find(|m| m["msgtype"] == "text" && pred(&m["text"])).cloned().unwrap();
    assert_eq!(
        text(&|t| !t["mentioned_mobile_list"].is_null())["text"],
        json!({"content": "广州今日天气：29度", "mentioned_mobile_list": ["13800001111"]})
    );
    assert_eq!(text(&|t| t["mentioned_list"] == json!(["@all"]))["text"]["content"], "广州今日天气：29度");
    text(&|t| t["mentioned_list"] == json!(["wangqing"]));
    text(&|t| t["mentioned_list"].is_null() && t["mentioned_mobile_list"].is_null());
    let md = got.iter().find(|m| m["msgtype"] == "markdown").unwrap();
    assert_eq!(md["markdown"]["content"], "**Deploy**\n> api **v2**\n<@wangqing>");
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_robot_invalid_key_and_oversized_text_fail_with_the_reason() {
    require_plugin("wecom-robot");
    let fake = FakeWecom::start().await;
    fake.robot(ROBOT_KEY, Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!("{}{}", robot_account("stale", "00000000-dead-key0-0000-000000000000", ""), robot_account("ops", ROBOT_KEY, ""));
    let gw = gateway(dir.path(), &[("qyapi.weixin.qq.com", &fake.url)], "", &accounts);

    let id = send(&gw, "wecom-robot", "stale", json!({"text": "x"}), &["group"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(1)), "{v}");
    assert!(d["detail"].as_str().unwrap().starts_with("WeCom errcode 93000: invalid webhook url"), "{d}");

    // 2048 bytes of text is the limit: 683 three-byte characters are 2049 bytes.
    let id = send(&gw, "wecom-robot", "ops", json!({"text": "字".repeat(683)}), &["group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert!(v["deliveries"][0]["detail"].as_str().unwrap().contains("at most 2048"), "{v}");
    let id = send(&gw, "wecom-robot", "ops", json!({"text": "字".repeat(682)}), &["group"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"]);
    assert_eq!(fake.with(|s| s.robot_messages.len()), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_robot_is_throttled_then_sends_later() {
    require_plugin("wecom-robot");
    let fake = FakeWecom::start().await;
    fake.robot(ROBOT_KEY, Window::new(2, Duration::from_millis(500)));
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("qyapi.weixin.qq.com", &fake.url)], "", &robot_account("ops", ROBOT_KEY, ""));
    let id = send(&gw, "wecom-robot", "ops", json!({"text": "cpu 99%"}), &["group", "group", "group", "group"]).await;
    // 45009 asks for a minute (20 messages a minute): the host pauses the account that long.
    let v = settle_within(&gw, &id, Duration::from_secs(120)).await;
    assert_eq!(statuses(&v), ["sent"; 4], "{v}");
    assert_eq!(fake.with(|s| s.robot_messages.len()), 4);
    assert!(fake.with(|s| s.throttled) >= 2);
    assert!(outcome_count(&gw, "wecom-robot", "throttled").await >= 2);
}

const CORP_ID: &str = "ww8f1c2a3b4d5e6f70";
const CORP_SECRET: &str = "Q2x-corpsecret-abcdefghijklmnop";

fn app_account(secret: &str) -> String {
    account("app", "wecom-app", &format!("{{ corp_id = \"{CORP_ID}\", corp_secret = \"{secret}\", agent_id = 1000002 }}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_app_reuses_its_token_and_refreshes_an_expired_one() {
    require_plugin("wecom-app");
    let fake = FakeWecom::start().await;
    fake.corp(CORP_ID, CORP_SECRET, 1_000_002, &["zhangsan", "lisi", "wangwu"]);
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("qyapi.weixin.qq.com", &fake.url)], "", &app_account(CORP_SECRET));

    // One delivery first: concurrent batches on a cold cache would each fetch
    // a token (the host does not coalesce fetches; see the report).
    let id = send(&gw, "wecom-app", "app", json!({"subject": "报销", "text": "请审批"}), &["zhangsan"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"], "{v}");
    let id = send(&gw, "wecom-app", "app", json!({"text": "second"}), &["LiSi", "wangwu"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"; 2]);
    assert_eq!(fake.with(|s| (s.issued, s.token_requests)), (1, 1), "one token for all sends");
    let got = fake.with(|s| s.app_messages.clone());
    assert_eq!(got.len(), 3, "one request per delivery");
    let first = got.iter().find(|m| m["touser"] == json!(["zhangsan"])).unwrap();
    assert_eq!((first["msgtype"].as_str(), first["content"].as_str()), (Some("text"), Some("报销\n请审批")));
    assert_eq!(first["safe"], 0);
    let zhang = delivery(&v, "zhangsan");
    assert_eq!(zhang["provider_id"], first["msgid"], "WeCom's msgid is the provider id");

    fake.expire_tokens();
    let long = "字".repeat(1000);
    let id = send(&gw, "wecom-app", "app", json!({"text": long}), &["lisi"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("sent"), Some(2)), "{v}");
    assert_eq!(fake.with(|s| s.issued), 2, "exactly one refresh");
    let last = fake.with(|s| s.app_messages.last().unwrap().clone());
    assert_eq!(last["token"], "wc-token-2");
    let content = last["content"].as_str().unwrap();
    assert!(content.len() <= 2048 && content.ends_with("字…"), "cut visibly within WeCom's 2048 bytes: {} bytes", content.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_app_fails_only_the_invalid_recipients() {
    require_plugin("wecom-app");
    let fake = FakeWecom::start().await;
    fake.corp(CORP_ID, CORP_SECRET, 1_000_002, &["zhangsan", "lisi"]);
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("qyapi.weixin.qq.com", &fake.url)], "", &app_account(CORP_SECRET));
    // Malformed UserIDs (WeCom's list separator, several ids, @all, a space)
    // are refused at ingest: the plugin declares the UserID format.
    refused_at_ingest(&gw, "wecom-app", "app", &["a|b", "zhangsan,lisi", "@all", "zhang san"]).await;

    // A well-formed UserID WeCom does not know fails alone.
    let id = send(&gw, "wecom-app", "app", json!({"text": "系统维护通知"}), &["zhangsan", "ghost", "lisi"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent", "failed", "sent"], "{v}");
    let ghost = delivery(&v, "ghost");
    assert_eq!(ghost["attempts"], 1);
    assert!(ghost["detail"].as_str().unwrap().contains("81013"), "{ghost}");
    assert_eq!(v["summary"], json!({"failed": 1, "sent": 2}));
    let mut users: Vec<String> = fake.with(|s| s.app_messages.iter().map(|m| m["touser"][0].as_str().unwrap().to_string()).collect());
    users.sort();
    assert_eq!(users, ["lisi", "zhangsan"]);
    assert_eq!(fake.with(|s| s.send_calls), 3, "the malformed UserIDs never reached WeCom");
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_app_wrong_secret_never_sends_and_reports_wecoms_reason() {
    require_plugin("wecom-app");
    let fake = FakeWecom::start().await;
    fake.corp(CORP_ID, CORP_SECRET, 1_000_002, &["zhangsan"]);
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("qyapi.weixin.qq.com", &fake.url)], "", &app_account("not-the-secret"));
    let id = send(&gw, "wecom-app", "app", json!({"text": "x"}), &["zhangsan"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    // The provider refused the credentials: failed at once, not retried.
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(1)), "{v}");
    let detail = d["detail"].as_str().unwrap();
    assert!(detail.contains("corp_secret") && detail.contains("40001"), "{detail}");
    assert!(!detail.contains("not-the-secret"));
    assert_eq!(fake.with(|s| (s.issued, s.send_calls, s.token_requests)), (0, 0, 1), "one gettoken, no retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_app_is_throttled_then_sends_later() {
    require_plugin("wecom-app");
    let fake = FakeWecom::start().await;
    fake.corp(CORP_ID, CORP_SECRET, 1_000_002, &["zhangsan", "lisi", "wangwu"]);
    fake.state.lock().unwrap().app_window = Some(Window::new(2, Duration::from_millis(250)));
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("qyapi.weixin.qq.com", &fake.url)], "", &app_account(CORP_SECRET));
    let id = send(&gw, "wecom-app", "app", json!({"text": "x"}), &["zhangsan", "lisi", "wangwu"]).await;
    // 45009 asks for a minute: the host pauses the account that long.
    let v = settle_within(&gw, &id, Duration::from_secs(120)).await;
    assert_eq!(statuses(&v), ["sent"; 3], "{v}");
    assert!(fake.with(|s| s.throttled) >= 1);
    assert_eq!(fake.with(|s| s.app_messages.len()), 3);
    assert!(outcome_count(&gw, "wecom-app", "throttled").await >= 1);
    assert_eq!(fake.with(|s| s.issued), 1, "concurrent fetches got the same token");
}
