//! WeLink group webhook robots (`welink`) against a fake
//! `open.welink.huaweicloud.com` that checks what WeLink documents: the token
//! and `channel=standard`, `messageType`, a 1–500 character text, a
//! millisecond `timeStamp` valid for 10 minutes, a `uuid` never used before,
//! `atAccounts` when `isAt`, and answers WeLink's codes (`58404` unknown robot,
//! `58601` bad parameter, `58602` robot disabled, `48503` frequency limit).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tempfile::tempdir;

use super::im_common::*;
use crate::harness;

struct Robot {
    enabled: bool,
    window: Window,
}

#[derive(Default)]
struct WelinkState {
    robots: HashMap<String, Robot>,
    uuids: HashSet<String>,
    messages: Vec<Value>,
    throttled: usize,
    requests: usize,
}

#[derive(Clone)]
struct FakeWelink {
    url: String,
    state: Arc<Mutex<WelinkState>>,
}

fn code(code: &str, message: &str) -> Value {
    json!({"code": code, "data": "", "message": message})
}

impl FakeWelink {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(WelinkState::default()));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        Self { url: serve(app).await, state }
    }

    fn robot(&self, token: &str, enabled: bool, window: Window) {
        self.state.lock().unwrap().robots.insert(token.into(), Robot { enabled, window });
    }

    fn with<T>(&self, f: impl FnOnce(&WelinkState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

async fn handle(State(state): State<Arc<Mutex<WelinkState>>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let q = query(&uri);
    let mut s = state.lock().unwrap();
    s.requests += 1;
    let reply = if method == Method::POST && uri.path() == "/api/werobot/v1/webhook/send" {
        send_webhook(&mut s, &q, &body)
    } else {
        code("58601", "request path or method error")
    };
    axum::Json(reply).into_response()
}

fn send_webhook(s: &mut WelinkState, q: &HashMap<String, String>, body: &[u8]) -> Value {
    let Some(robot) = q.get("token").and_then(|t| s.robots.get_mut(t)) else {
        return code("58404", "robot resource does not exist");
    };
    if q.get("channel").map(String::as_str) != Some("standard") {
        return code("58601", "param error: channel");
    }
    if !robot.enabled {
        return code("58602", "robot is not enabled");
    }
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        return code("58601", "param error: body");
    };
    if msg["messageType"] != "text" {
        return code("58601", "param error: messageType");
    }
    let len = msg["content"]["text"].as_str().map_or(0, |t| t.chars().count());
    if !(1..=500).contains(&len) {
        return code("58601", "param error: content.text length must be 1~500");
    }
    if msg["timeStamp"].as_i64().is_none_or(|ts| (now_ms() - ts).abs() > 600_000) {
        return code("58601", "param error: timeStamp expired");
    }
    let Some(uuid) = msg["uuid"].as_str().filter(|u| !u.is_empty()) else {
        return code("58601", "param error: uuid");
    };
    if msg["isAt"] == true {
        let n = msg["atAccounts"].as_array().map_or(0, Vec::len);
        if n == 0 || n > 10 {
            return code("58601", "param error: atAccounts");
        }
    }
    if !robot.window.admit() {
        s.throttled += 1;
        return code("48503", "request frequency exceeds the limit");
    }
    if !s.uuids.insert(uuid.to_string()) {
        return code("58601", "param error: duplicate uuid");
    }
    s.messages.push(msg);
    json!({"code": "0", "data": "success", "message": "ok"})
}

const TOKEN: &str = "a69f751172bb4a36abe5de9ddf9aa1cc";

fn robot_account(name: &str, token: &str) -> String {
    account(
        name,
        "welink",
        &format!("{{ webhook = \"https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token={token}&channel=standard\" }}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn welink_robot_posts_text_with_mentions() {
    require_plugin("welink");
    let fake = FakeWelink::start().await;
    fake.robot(TOKEN, true, Window::unlimited());
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("open.welink.huaweicloud.com", &fake.url)], "", &robot_account("grp", TOKEN));
    // Not whom a robot can mention: refused at ingest, never sent.
    refused_at_ingest(&gw, "welink", "grp", &["userid:zhang san", "zhangsan@welink", "userid:a@welink,b@welink"]).await;

    let id = send(&gw, "welink", "grp", json!({"text": "有告警消息请查收一下"}), &["userid:mettjhfuukaq@562a847505", "@all", "group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 3], "{v}");
    let got = fake.with(|s| s.messages.clone());
    assert_eq!(got.len(), 3);
    let at = got.iter().find(|m| m["isAt"] == true).unwrap();
    assert_eq!(at["content"]["text"], "@mettjhfuukaq@562a847505 有告警消息请查收一下");
    assert_eq!(at["atAccounts"], json!(["mettjhfuukaq@562a847505"]));
    let all = got.iter().find(|m| m["isAtAll"] == true).unwrap();
    assert_eq!(all["content"]["text"], "@all 有告警消息请查收一下");
    assert!(got.iter().any(|m| m["isAt"] == false && m["isAtAll"] == false && m.get("atAccounts").is_none()));
    let uuids: HashSet<&str> = got.iter().map(|m| m["uuid"].as_str().unwrap()).collect();
    assert_eq!(uuids.len(), 3, "a new uuid per call");
}

#[tokio::test(flavor = "multi_thread")]
async fn welink_unknown_or_disabled_robot_and_long_text_fail_with_the_reason() {
    require_plugin("welink");
    let fake = FakeWelink::start().await;
    fake.robot("d15ab1ed0000000000000000000000aa", false, Window::unlimited());
    fake.robot(TOKEN, true, Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!(
        "{}{}{}",
        robot_account("gone", "0123456789abcdef0123456789abcdef"),
        robot_account("off", "d15ab1ed0000000000000000000000aa"),
        robot_account("grp", TOKEN)
    );
    let gw = gateway(dir.path(), &[("open.welink.huaweicloud.com", &fake.url)], "", &accounts);
    for (acc, want) in [("gone", "WeLink code 58404: robot resource does not exist"), ("off", "WeLink code 58602: robot is not enabled")] {
        let id = send(&gw, "welink", acc, json!({"text": "x"}), &["group"]).await;
        let v = settle(&gw, &id).await;
        let d = &v["deliveries"][0];
        assert_eq!((d["status"].as_str(), d["attempts"].as_u64(), d["detail"].as_str()), (Some("failed"), Some(1), Some(want)), "{v}");
    }
    let id = send(&gw, "welink", "grp", json!({"text": "长".repeat(501)}), &["group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert!(v["deliveries"][0]["detail"].as_str().unwrap().contains("at most 500"), "{v}");
    assert_eq!(fake.with(|s| s.requests), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn welink_is_throttled_then_sends_later_with_fresh_uuids() {
    require_plugin("welink");
    let fake = FakeWelink::start().await;
    fake.robot(TOKEN, true, Window::new(2, Duration::from_millis(150)));
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("open.welink.huaweicloud.com", &fake.url)], "", &robot_account("grp", TOKEN));
    let id = send(&gw, "welink", "grp", json!({"text": "queue depth 1200"}), &["group", "group", "group", "group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 4], "{v}");
    assert_eq!(fake.with(|s| s.messages.len()), 4);
    assert!(fake.with(|s| s.throttled) >= 2);
    assert!(outcome_count(&gw, "welink", "throttled").await >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn fake_welink_refuses_stale_timestamps_and_reused_uuids() {
    let fake = FakeWelink::start().await;
    fake.robot(TOKEN, true, Window::unlimited());
    let url = format!("{}/api/werobot/v1/webhook/send?token={TOKEN}&channel=standard", fake.url);
    let post = |ts: i64, uuid: &str| {
        let (url, body) = (url.clone(), json!({"messageType": "text", "content": {"text": "x"}, "timeStamp": ts, "uuid": uuid}).to_string());
        async move { harness::request("POST", &url, None, &[("content-type", "application/json")], body.into()).await.json()["code"].clone() }
    };
    assert_eq!(post(now_ms(), "u-1").await, "0");
    assert_eq!(post(now_ms(), "u-1").await, "58601", "a uuid is single use");
    assert_eq!(post(now_ms() - 601_000, "u-2").await, "58601", "older than 10 minutes");
}
