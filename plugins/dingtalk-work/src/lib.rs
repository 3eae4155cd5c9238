//! Herald `dingtalk-work` channel plugin: DingTalk (钉钉) work notifications
//! (工作通知), sent by an organization's internal app to its members.
//!
//! # Provider API
//!
//! Access token (the host fetches and caches it, see the `channel-plugin-auth`
//! world): `GET https://oapi.dingtalk.com/gettoken?appkey=<key>&appsecret=<secret>`
//! answers `{"errcode": 0, "access_token": "...", "expires_in": 7200}`; wrong
//! credentials answer e.g. `40096 不合法的appKey或appSecret` or `40089`.
//!
//! Send: `POST https://oapi.dingtalk.com/topapi/message/corpconversation/asyncsend_v2?access_token=<token>`
//!
//! ```json
//! {"agent_id": 123456789, "userid_list": "user1,user2",
//!  "msg": {"msgtype": "text", "text": {"content": "..."}}}
//! ```
//!
//! or `"msg": {"msgtype": "markdown", "markdown": {"title": "...", "text": "..."}}`.
//! DingTalk answers `{"errcode": 0, "errmsg": "ok", "task_id": 256271667526, "request_id": "..."}`.
//! The call is asynchronous: success means DingTalk took the task; per-user
//! results (unknown userids, users over their daily quota, duplicates) are
//! only available later from `getsendresult`, which this plugin does not poll.
//! The task id is the provider id of every delivery in the request.
//!
//! # Account configuration
//!
//! ```json
//! {"app_key": "dingxxxx", "app_secret": "...", "agent_id": 123456789,
//!  "msgtype": "text", "title": "Herald"}
//! ```
//!
//! - `app_key`, `app_secret` (required; `app_secret` is secret): the internal
//!   app's AppKey / AppSecret (also called Client ID / Client Secret).
//! - `agent_id` (required): the app's AgentId.
//! - `msgtype` (optional): `"text"` (default) or `"markdown"`.
//! - `title` (optional): markdown title; default the subject, else the first
//!   line of the text.
//! - `"$token"`: set by the host (the cached access token); never configure it.
//!
//! # Recipients and batching
//!
//! A recipient is a DingTalk userid. Deliveries of one batch that carry the
//! same message are sent in one request, up to 5000 userids (the documented
//! limit for internal apps); a userid appears at most once per request, so a
//! repeated recipient gets a request of its own. Userids containing `,` or
//! whitespace cannot be listed and are left out of the requests (the host
//! fails them).
//!
//! The account schema declares this format (`x-herald-recipient`), so the
//! gateway refuses other recipients at ingest (400 naming `recipients[i].to`).
//!
//! # Limits
//!
//! DingTalk delivers the same content to the same user only once a day, and at
//! most 500 work notifications per user per day for an internal app; over
//! these limits the call still succeeds and users simply get nothing.
//! Frequency limits answer `90018`/`90019` (per-app QPS), `90002` (platform),
//! `143103`/`143104` (recipients per minute), or the anti-abuse answer
//! `{"status": 1111, "wait": N, "punish": "deny"}`.
//!
//! # Outcomes
//!
//! | answer | outcome |
//! | --- | --- |
//! | `errcode` 0 | sent (provider id = `task_id`) |
//! | `40014` (invalid token), `42001` (expired token), or `88` with such a `sub_code` | `token-expired`: the host drops the token and retries with a new one |
//! | `90002`, `90018`, `90019` | throttled, retry after 1 s |
//! | `143103`, `143104`, `143203`, `143204` | throttled, retry after 60 s |
//! | anti-abuse answer | throttled, retry after N minutes |
//! | `-1` (system busy) | retry |
//! | any other code (e.g. `90020` monthly quota, `143105`/`143106` daily limits, bad agent_id) | failed, with `errcode` and `errmsg` |
//! | HTTP 429 / 408, 425, 5xx / other non-2xx | throttled / retry / failed |
//! | 2xx that is not DingTalk's JSON | failed (never resent) |

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outcome, token};
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct DingtalkWork;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TOKEN_URL: &str = "https://oapi.dingtalk.com/gettoken";
const SEND_URL: &str = "https://oapi.dingtalk.com/topapi/message/corpconversation/asyncsend_v2";
/// Most userids in one asyncsend_v2 call for an internal app.
pub const MAX_USERIDS: usize = 5000;
const MAX_TITLE_CHARS: usize = 64;
/// Token error codes: invalid (40014) and expired (42001) access_token.
const TOKEN_ERRCODES: [i64; 2] = [40014, 42001];

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald DingTalk work notification account",
  "x-herald-zh": {"title": "钉钉工作通知账号"},
  "type": "object",
  "x-herald-recipient": {"pattern": "[^\\s,]+",
                         "description": "one DingTalk userid (no spaces or commas: one recipient per userid)"},
  "required": ["app_key", "app_secret", "agent_id"],
  "additionalProperties": false,
  "properties": {
    "app_key": {"type": "string", "minLength": 1, "title": "AppKey", "description": "The internal app's AppKey (Client ID).",
                "x-herald-zh": {"title": "AppKey", "description": "企业内部应用的 AppKey（Client ID）。"}},
    "app_secret": {"type": "string", "minLength": 1, "title": "AppSecret", "description": "The internal app's AppSecret (Client Secret).",
                   "x-herald-zh": {"title": "AppSecret", "description": "企业内部应用的 AppSecret（Client Secret）。"}},
    "agent_id": {"type": "integer", "minimum": 1, "title": "AgentId", "description": "The app's AgentId.",
                 "x-herald-zh": {"title": "AgentId", "description": "应用的 AgentId。"}},
    "msgtype": {"enum": ["text", "markdown"], "default": "text", "title": "Message type", "description": "DingTalk message type used for every delivery.",
                "x-herald-zh": {"title": "消息类型", "description": "每条投递使用的钉钉消息类型。"}},
    "title": {"type": "string", "minLength": 1, "x-herald-advanced": true, "title": "Markdown title", "description": "Markdown title.",
              "x-herald-zh": {"title": "Markdown 标题", "description": "Markdown 消息标题。"}}
  }
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MsgType {
    #[default]
    Text,
    Markdown,
}

/// The account configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    app_key: String,
    app_secret: String,
    agent_id: u64,
    #[serde(default)]
    msgtype: MsgType,
    #[serde(default)]
    title: Option<String>,
    /// The access token, injected by the host.
    #[serde(rename = "$token", default)]
    token: Option<String>,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        for (field, value) in [("app_key", &a.app_key), ("app_secret", &a.app_secret)] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return Err(bad(field, "must be a non-empty string without control characters"));
            }
        }
        if a.agent_id == 0 {
            return Err(bad("agent_id", "must be the app's AgentId (a positive number)"));
        }
        if a.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(bad("title", "must not be empty"));
        }
        Ok(a)
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("Herald");
    let line = line.trim_start_matches('#').trim();
    let line = if line.is_empty() { "Herald" } else { line };
    let mut out: String = line.chars().take(MAX_TITLE_CHARS).collect();
    if line.chars().count() > MAX_TITLE_CHARS {
        out.push('…');
    }
    out
}

/// The `msg` object for a delivery (deliveries with equal `msg` share a request).
fn message(a: &Account, d: &Delivery) -> json::Value {
    let subject = d.subject.as_deref().map(str::trim).filter(|s| !s.is_empty());
    match a.msgtype {
        MsgType::Text => {
            let content = match subject {
                Some(s) => format!("{s}\n{}", d.text),
                None => d.text.clone(),
            };
            json::json!({"msgtype": "text", "text": {"content": content}})
        }
        MsgType::Markdown => {
            let title = a.title.clone().or_else(|| subject.map(str::to_string)).unwrap_or_else(|| first_line(&d.text));
            json::json!({"msgtype": "markdown", "markdown": {"title": title, "text": d.text}})
        }
    }
}

fn valid_userid(id: &str) -> bool {
    !id.is_empty() && !id.chars().any(|c| c == ',' || c.is_whitespace() || c.is_control())
}

/// Requests being assembled: one message, up to [`MAX_USERIDS`] distinct userids.
struct Group {
    msg: json::Value,
    ids: Vec<String>,
    users: Vec<String>,
}

/// Groups deliveries by message, in order; a userid appears once per group.
fn groups(a: &Account, batch: &[Delivery]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for d in batch {
        let user = d.recipient.trim();
        if !valid_userid(user) {
            continue;
        }
        let msg = message(a, d);
        let slot = groups.iter_mut().find(|g| g.msg == msg && g.users.len() < MAX_USERIDS && !g.users.iter().any(|u| u == user));
        match slot {
            Some(g) => {
                g.ids.push(d.id.clone());
                g.users.push(user.to_string());
            }
            None => groups.push(Group { msg, ids: vec![d.id.clone()], users: vec![user.to_string()] }),
        }
    }
    groups
}

/// DingTalk's answer body.
#[derive(Deserialize)]
struct Answer {
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    sub_code: Option<json::Value>,
    #[serde(default)]
    task_id: Option<json::Value>,
    status: Option<i64>,
    wait: Option<u64>,
    punish: Option<String>,
}

fn value_string(v: &json::Value) -> Option<String> {
    match v {
        json::Value::String(s) => Some(s.clone()),
        json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn is_token_error(a: &Answer) -> bool {
    match a.errcode {
        Some(c) if TOKEN_ERRCODES.contains(&c) => true,
        Some(88) => a.sub_code.as_ref().and_then(value_string).and_then(|s| s.parse::<i64>().ok()).is_some_and(|c| TOKEN_ERRCODES.contains(&c)),
        _ => false,
    }
}

fn classify(ctx: &CallContext, deliveries: &[String], resp: &HttpResponse) -> Vec<Outcome> {
    if !(200..300).contains(&resp.status) {
        return outcome::from_http_status(deliveries, resp, ctx.now_ms);
    }
    let Ok(answer) = json::from_slice::<Answer>(&resp.body) else {
        return outcome::unexpected_answer(deliveries, "DingTalk", resp);
    };
    if answer.punish.as_deref() == Some("deny") && answer.status == Some(1111) && answer.errcode.is_none() {
        let minutes = answer.wait.unwrap_or(5);
        return outcome::for_all(deliveries, |id| {
            outcome::throttled(id, format!("DingTalk rate protection: calls denied for {minutes} minutes"))
                .with_retry_after_ms(Some(minutes * 60_000))
        });
    }
    let Some(code) = answer.errcode else {
        return outcome::for_all(deliveries, |id| outcome::failed(id, "DingTalk's answer has no errcode"));
    };
    let detail = format!("DingTalk errcode {code}: {}", answer.errmsg);
    let task = answer.task_id.as_ref().and_then(value_string);
    outcome::for_all(deliveries, |id| match code {
        0 => {
            let o = outcome::sent(id, "");
            match &task {
                Some(t) => o.with_provider_id(t.clone()),
                None => o,
            }
        }
        90002 | 90018 | 90019 => outcome::throttled(id, detail.clone()).with_retry_after_ms(Some(1_000)),
        143103 | 143104 | 143203 | 143204 => outcome::throttled(id, detail.clone()).with_retry_after_ms(Some(60_000)),
        -1 => outcome::retry(id, detail.clone()),
        // A token error that reached interpret (token-expired said no): retry.
        _ if is_token_error(&answer) => outcome::retry(id, detail.clone()),
        _ => outcome::failed(id, detail.clone()),
    })
}

impl Plugin for DingtalkWork {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "dingtalk-work".into(),
            version: VERSION.into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Text, ContentFormat::Markdown],
            max_batch: MAX_USERIDS as u32,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["app_secret".into()],
            hosts: vec!["oapi.dingtalk.com".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(_ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let a = Account::parse(account)?;
        let token = a.token.clone().filter(|t| !t.is_empty()).ok_or_else(|| PluginError::Internal("no access token from the host".into()))?;
        let url = format!("{SEND_URL}?access_token={}", http::percent_encode(&token));
        if let [d] = batch.as_slice()
            && !valid_userid(d.recipient.trim())
        {
            return Err(PluginError::InvalidDelivery(format!("{:?} is not a DingTalk userid (no commas or spaces)", d.recipient)));
        }
        groups(&a, &batch)
            .into_iter()
            .map(|g| {
                let body = json::json!({"agent_id": a.agent_id, "userid_list": g.users.join(","), "msg": g.msg});
                let req = http::post_json(&url, &[], &body)?;
                Ok(Outbound::http(g.ids, req))
            })
            .collect()
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        outcome::http_only(&deliveries, response, |resp| classify(&ctx, &deliveries, resp))
    }

    fn token_request(_ctx: CallContext, account: &str) -> Option<HttpRequest> {
        let a = Account::parse(account).ok()?;
        Some(http::get(&format!("{TOKEN_URL}?appkey={}&appsecret={}", http::percent_encode(&a.app_key), http::percent_encode(&a.app_secret))))
    }

    fn parse_token(_ctx: CallContext, _account: &str, response: HttpResponse) -> Result<AccessToken, PluginError> {
        token::parse_errcode_answer(&response, |code, errmsg| {
            matches!(code, 40089 | 40095 | 40096)
                .then(|| PluginError::BadConfig(format!("app_key/app_secret: DingTalk refused them (errcode {code}: {errmsg})")))
        })
    }

    fn token_expired(response: Response) -> bool {
        match response {
            Response::Http(resp) => json::from_slice::<Answer>(&resp.body).is_ok_and(|a| is_token_error(&a)),
            Response::Smtp(_) => false,
        }
    }
}

export_plugin!(DingtalkWork);

#[cfg(test)]
mod tests {
    use super::*;

    const ACC: &str = r#"{"app_key":"dingkey","app_secret":"s3 cret","agent_id":42,"$token":"tok1"}"#;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_000, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(id: &str, to: &str, text: &str) -> Delivery {
        Delivery { id: id.into(), recipient: to.into(), subject: None, text: text.into(), html: None, metadata: vec![] }
    }

    fn http_req(o: &Outbound) -> &HttpRequest {
        match &o.request {
            Request::Http(h) => h,
            Request::Smtp(_) => panic!("smtp"),
        }
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    #[test]
    fn validate() {
        assert!(DingtalkWork::validate_account(r#"{"app_key":"k","app_secret":"s","agent_id":1}"#).is_ok());
        assert!(DingtalkWork::validate_account(ACC).is_ok(), "the host's $token is accepted");
        for (acc, field) in [
            (r#"{"app_key":"k","app_secret":"s"}"#, "agent_id"),
            (r#"{"app_key":"","app_secret":"s","agent_id":1}"#, "app_key"),
            (r#"{"app_key":"k","app_secret":" ","agent_id":1}"#, "app_secret"),
            (r#"{"app_key":"k","app_secret":"s","agent_id":0}"#, "agent_id"),
            (r#"{"app_key":"k","app_secret":"s","agent_id":"x"}"#, "agent_id"),
            (r#"{"app_key":"k","app_secret":"s","agent_id":1,"msgtype":"oa"}"#, "msgtype"),
        ] {
            match DingtalkWork::validate_account(acc) {
                Err(PluginError::BadConfig(m)) => assert!(m.contains(field), "{acc}: {m}"),
                other => panic!("{acc}: {other:?}"),
            }
        }
    }

    #[test]
    fn token_request_and_parse() {
        let r = DingtalkWork::token_request(ctx(), ACC).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.url, "https://oapi.dingtalk.com/gettoken?appkey=dingkey&appsecret=s3%20cret");
        let t = DingtalkWork::parse_token(ctx(), ACC, resp(200, r#"{"errcode":0,"access_token":"abc","errmsg":"ok","expires_in":7200}"#)).unwrap();
        assert_eq!((t.value.as_str(), t.expires_in_ms), ("abc", 7_200_000));
        match DingtalkWork::parse_token(ctx(), ACC, resp(200, r#"{"errcode":40096,"errmsg":"不合法的appKey或appSecret"}"#)) {
            Err(PluginError::BadConfig(m)) => assert!(m.contains("40096"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(DingtalkWork::parse_token(ctx(), ACC, resp(500, "")).is_err());
    }

    #[test]
    fn build_groups_equal_messages() {
        let batch = vec![
            delivery("a", "u1", "same"),
            delivery("b", "u2", "same"),
            delivery("c", "u3", "other"),
            delivery("d", "u1", "same"),
            delivery("e", "bad,id", "same"),
        ];
        let out = DingtalkWork::build(ctx(), ACC, batch).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].deliveries, vec!["a".to_string(), "b".to_string()]);
        let h = http_req(&out[0]);
        assert_eq!(h.url, "https://oapi.dingtalk.com/topapi/message/corpconversation/asyncsend_v2?access_token=tok1");
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(body, json::json!({"agent_id":42,"userid_list":"u1,u2","msg":{"msgtype":"text","text":{"content":"same"}}}));
        assert_eq!(out[1].deliveries, vec!["c".to_string()]);
        assert_eq!(out[2].deliveries, vec!["d".to_string()], "a repeated userid gets its own request");
        assert!(matches!(DingtalkWork::build(ctx(), ACC, vec![delivery("x", "a b", "t")]), Err(PluginError::InvalidDelivery(_))));
        let no_token = r#"{"app_key":"k","app_secret":"s","agent_id":1}"#;
        assert!(matches!(DingtalkWork::build(ctx(), no_token, vec![delivery("x", "u", "t")]), Err(PluginError::Internal(_))));
    }

    #[test]
    fn build_markdown() {
        let acc = r#"{"app_key":"k","app_secret":"s","agent_id":7,"msgtype":"markdown","$token":"t"}"#;
        let mut d = delivery("a", "u1", "**bold**");
        d.subject = Some("Deploy".into());
        let out = DingtalkWork::build(ctx(), acc, vec![d]).unwrap();
        let body: json::Value = json::from_slice(&http_req(&out[0]).body).unwrap();
        assert_eq!(body["msg"], json::json!({"msgtype":"markdown","markdown":{"title":"Deploy","text":"**bold**"}}));
    }

    #[test]
    fn interpret_and_token_expiry() {
        let ids = vec!["a".to_string(), "b".to_string()];
        let v = DingtalkWork::interpret(
            ctx(),
            ACC,
            ids.clone(),
            Response::Http(resp(200, r#"{"errcode":0,"errmsg":"ok","task_id":256271667526,"request_id":"r"}"#)),
        );
        assert!(v.iter().all(|o| o.kind == OutcomeKind::Sent && o.provider_id.as_deref() == Some("256271667526")));
        let kind = |body: &str| DingtalkWork::interpret(ctx(), ACC, ids.clone(), Response::Http(resp(200, body)))[0].kind;
        assert_eq!(kind(r#"{"errcode":90018,"errmsg":"qps"}"#), OutcomeKind::Throttled);
        assert_eq!(kind(r#"{"errcode":143104,"errmsg":"qpm"}"#), OutcomeKind::Throttled);
        assert_eq!(kind(r#"{"errcode":-1,"errmsg":"系统繁忙"}"#), OutcomeKind::Retry);
        assert_eq!(kind(r#"{"errcode":90020,"errmsg":"quota"}"#), OutcomeKind::Failed);
        assert_eq!(kind(r#"{"status":1111,"wait":5,"punish":"deny"}"#), OutcomeKind::Throttled);
        let expired = |body: &str| DingtalkWork::token_expired(Response::Http(resp(200, body)));
        assert!(expired(r#"{"errcode":42001,"errmsg":"access_token超时"}"#));
        assert!(expired(r#"{"errcode":40014,"errmsg":"不合法的access_token"}"#));
        assert!(expired(r#"{"errcode":88,"sub_code":"40014","errmsg":"ding talk error"}"#));
        assert!(!expired(r#"{"errcode":0,"errmsg":"ok"}"#));
        assert!(!expired(r#"{"errcode":88,"sub_code":"60011"}"#));
        assert!(!expired("nope"));
    }
}
