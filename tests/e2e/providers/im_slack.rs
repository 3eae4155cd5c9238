//! Slack incoming webhooks (`slack`) against a fake `hooks.slack.com` that
//! answers like Slack: plain-text `ok`, or a status with an error code
//! (`no_service`, `invalid_payload`, `no_text`, `invalid_blocks`,
//! `channel_is_archived`), and 429 with `Retry-After` over the rate limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tempfile::tempdir;

use super::im_common::*;

struct Hook {
    archived: bool,
    window: Window,
}

#[derive(Default)]
struct SlackState {
    hooks: HashMap<String, Hook>,
    messages: Vec<Value>,
    throttled: usize,
}

#[derive(Clone)]
struct FakeSlack {
    url: String,
    state: Arc<Mutex<SlackState>>,
}

impl FakeSlack {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(SlackState::default()));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        Self { url: serve(app).await, state }
    }

    fn hook(&self, path: &str, archived: bool, window: Window) {
        self.state.lock().unwrap().hooks.insert(path.into(), Hook { archived, window });
    }

    fn with<T>(&self, f: impl FnOnce(&SlackState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "text/html")], body).into_response()
}

async fn handle(State(state): State<Arc<Mutex<SlackState>>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    }
    let Some(hook) = uri.path().strip_prefix("/services/").and_then(|p| s.hooks.get_mut(p)) else {
        return text(StatusCode::NOT_FOUND, "no_service");
    };
    if !headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json")) {
        return text(StatusCode::BAD_REQUEST, "invalid_payload");
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return text(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let has_text = msg["text"].as_str().is_some_and(|t| !t.is_empty());
    let blocks = msg["blocks"].as_array();
    if !has_text && blocks.is_none_or(|b| b.is_empty()) {
        return text(StatusCode::BAD_REQUEST, "no_text");
    }
    if let Some(blocks) = blocks {
        let ok = blocks.len() <= 50
            && blocks.iter().all(|b| {
                b["type"] == "section"
                    && matches!(b["text"]["type"].as_str(), Some("mrkdwn" | "plain_text"))
                    && b["text"]["text"].as_str().is_some_and(|t| !t.is_empty() && t.chars().count() <= 3000)
            });
        if !ok {
            return text(StatusCode::BAD_REQUEST, "invalid_blocks");
        }
    }
    if hook.archived {
        return text(StatusCode::GONE, "channel_is_archived");
    }
    if !hook.window.admit() {
        s.throttled += 1;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
    }
    s.messages.push(json!({"hook": uri.path(), "body": msg}));
    text(StatusCode::OK, "ok")
}

const HOOK: &str = "T0C2A4B6D/B0D8E0F2G/q2w3e4r5t6y7u8i9o0p1a2s3";
const ARCHIVED: &str = "T0C2A4B6D/B0ARCHIVE/z9x8c7v6b5n4m3l2k1j0h9g8";

fn hook_account(name: &str, path: &str, extra: &str) -> String {
    account(name, "slack", &format!("{{ webhook = \"https://hooks.slack.com/services/{path}\"{extra} }}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_posts_text_and_blocks_with_mentions() {
    require_plugin("slack");
    let fake = FakeSlack::start().await;
    fake.hook(HOOK, false, Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!("{}{}", hook_account("plain", HOOK, ""), hook_account("blocks", HOOK, ", blocks = true"));
    let gw = gateway(dir.path(), &[("hooks.slack.com", &fake.url)], "", &accounts);
    // Not whom a webhook can mention: refused at ingest, never sent.
    refused_at_ingest(&gw, "slack", "plain", &["U024BE7LH", "userid:U024BE7LH,U0G9QF9C6", "userid:<@U024BE7LH>", "@everyone"]).await;

    let id = send(&gw, "slack", "plain", json!({"subject": "Deploy", "text": "api *v2* is live"}), &["userid:U024BE7LH", "@all", "group"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"; 3]);
    let long = format!("{}\n{}", "a".repeat(2500), "b".repeat(2500));
    let id = send(&gw, "slack", "blocks", json!({"text": long}), &["@here"]).await;
    assert_eq!(statuses(&settle(&gw, &id).await), ["sent"]);

    let got = fake.with(|s| s.messages.clone());
    assert_eq!(got.len(), 4);
    let bodies: Vec<&Value> = got.iter().map(|m| &m["body"]).collect();
    assert!(bodies.contains(&&json!({"text": "<@U024BE7LH> *Deploy*\napi *v2* is live"})), "{bodies:?}");
    assert!(bodies.contains(&&json!({"text": "<!channel> *Deploy*\napi *v2* is live"})));
    assert!(bodies.contains(&&json!({"text": "*Deploy*\napi *v2* is live"})));
    let with_blocks = bodies.iter().find(|b| b.get("blocks").is_some()).unwrap();
    let blocks = with_blocks["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2, "5000 characters need two 3000-character sections");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().starts_with("<!here> aaa"));
    assert!(blocks[1]["text"]["text"].as_str().unwrap().starts_with("bbb"));
    assert!(got.iter().all(|m| m["hook"] == format!("/services/{HOOK}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_dead_webhook_and_archived_channel_fail_with_slacks_reason() {
    require_plugin("slack");
    let fake = FakeSlack::start().await;
    fake.hook(ARCHIVED, true, Window::unlimited());
    let dir = tempdir().unwrap();
    let accounts = format!("{}{}", hook_account("revoked", HOOK, ""), hook_account("archived", ARCHIVED, ""));
    let gw = gateway(dir.path(), &[("hooks.slack.com", &fake.url)], "", &accounts);
    let id = send(&gw, "slack", "revoked", json!({"text": "x"}), &["group"]).await;
    let v = settle(&gw, &id).await;
    let d = &v["deliveries"][0];
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(1)), "{v}");
    assert_eq!(d["detail"], "HTTP 404: no_service");
    let id = send(&gw, "slack", "archived", json!({"text": "x"}), &["group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert_eq!(v["deliveries"][0]["detail"], "HTTP 410: channel_is_archived");
    assert!(fake.with(|s| s.messages.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_is_throttled_with_retry_after_then_sends_later() {
    require_plugin("slack");
    let fake = FakeSlack::start().await;
    fake.hook(HOOK, false, Window::new(1, Duration::from_millis(250)));
    let dir = tempdir().unwrap();
    let gw = gateway(dir.path(), &[("hooks.slack.com", &fake.url)], "", &hook_account("plain", HOOK, ""));
    let id = send(&gw, "slack", "plain", json!({"text": "tick"}), &["group", "group", "group"]).await;
    let v = settle(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 3], "{v}");
    assert_eq!(fake.with(|s| s.messages.len()), 3);
    assert!(fake.with(|s| s.throttled) >= 2);
    assert!(outcome_count(&gw, "slack", "throttled").await >= 2);
}
