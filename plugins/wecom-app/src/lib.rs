//! Herald `wecom-app` channel plugin: WeCom (企业微信) application messages
//! (应用消息), sent by a self-built app to members of the organization.
//!
//! # Provider API
//!
//! Access token (fetched and cached by the host, `channel-plugin-auth` world):
//! `GET https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=<id>&corpsecret=<secret>`
//! answers `{"errcode": 0, "errmsg": "ok", "access_token": "...", "expires_in": 7200}`;
//! a wrong secret answers `40001`, a wrong corp id `40013`.
//!
//! Send: `POST https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=<token>`
//!
//! ```json
//! {"touser": "UserID1|UserID2", "msgtype": "text", "agentid": 1000002,
//!  "text": {"content": "..."}, "safe": 0}
//! ```
//!
//! or `"msgtype": "markdown", "markdown": {"content": "..."}`. WeCom answers
//! `{"errcode": 0, "errmsg": "ok", "invaliduser": "UserID2", "unlicenseduser": "", "msgid": "..."}`:
//! recipients listed in `invaliduser` (unknown, or outside the app's visible
//! range) or `unlicenseduser` got nothing, the others got the message. When no
//! recipient is valid the call fails with `81013`.
//!
//! # Account configuration
//!
//! ```json
//! {"corp_id": "ww...", "corp_secret": "...", "agent_id": 1000002, "msgtype": "text", "safe": false}
//! ```
//!
//! - `corp_id`, `corp_secret` (required; `corp_secret` is secret): the
//!   organization id and the app's Secret.
//! - `agent_id` (required): the app's AgentId.
//! - `msgtype` (optional): `"text"` (default) or `"markdown"`.
//! - `safe` (optional, default false): confidential message (text only;
//!   watermarked, cannot be forwarded).
//! - `"$token"`: set by the host (the cached access token); never configure it.
//!
//! # Recipients and requests
//!
//! A recipient is a WeCom UserID; UserIDs containing `|` or whitespace, and
//! `@all`, fail the delivery. **One request per delivery** (`touser` holds one
//! UserID), although WeCom accepts up to 1000 recipients per request: WeCom
//! reports invalid recipients by name (`invaliduser`), and `interpret` only
//! receives delivery ids, not the request nor the recipients, so with several
//! recipients per request it could not tell which deliveries failed. With one
//! recipient per request the mapping is exact (an invalid only recipient is
//! answered `81013`).
//!
//! The account schema declares this format (`x-herald-recipient`), so the
//! gateway refuses other recipients at ingest (400 naming `recipients[i].to`).
//!
//! # Limits
//!
//! Text and markdown content: 2048 bytes; WeCom cuts longer content without
//! an error. The plugin cuts it first, on a character boundary, ending with
//! `…`, so the recipient sees that the message was shortened.
//! An app may send each member at most 30 messages a minute and 1000 an hour;
//! WeCom drops the excess silently. API frequency limits answer `45009`.
//!
//! # Outcomes
//!
//! | answer | outcome |
//! | --- | --- |
//! | `errcode` 0 | sent (provider id = `msgid`), except recipients in `invaliduser` / `unlicenseduser`: failed |
//! | `42001` (expired token), `40014` (invalid token), `41001` (no token) | `token-expired`: the host fetches a new token and retries |
//! | `45009` (frequency limit) | throttled, retry after 60 s |
//! | `45033` (concurrency limit), `-1` (system busy) | retry |
//! | `81013` (no valid recipient), `60020` (IP not allowed), any other code | failed, with `errcode` and `errmsg` |
//! | HTTP 429 / 408, 425, 5xx / other non-2xx | throttled / retry / failed |
//! | 2xx that is not WeCom's JSON | failed (never resent) |

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outbound, outcome, token};
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct WecomApp;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TOKEN_URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/gettoken";
const SEND_URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/message/send";
/// WeCom truncates text and markdown content longer than this (bytes).
pub const MAX_CONTENT_BYTES: usize = 2048;
/// Token errors: expired, invalid, missing access_token.
const TOKEN_ERRCODES: [i64; 3] = [42001, 40014, 41001];

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald WeCom application message account",
  "x-herald-zh": {"title": "企业微信应用消息账号"},
  "type": "object",
  "x-herald-recipient": {"pattern": "[^\\s|,@][^\\s|,]*",
                         "description": "one WeCom UserID (no spaces, '|' or commas: one recipient per UserID; not @all)"},
  "required": ["corp_id", "corp_secret", "agent_id"],
  "additionalProperties": false,
  "properties": {
    "corp_id": {"type": "string", "minLength": 1, "title": "Corp ID", "description": "The organization's CorpID (ww...).",
                "x-herald-zh": {"title": "企业ID", "description": "企业微信管理后台「我的企业」中的企业ID（ww 开头）。"}},
    "corp_secret": {"type": "string", "minLength": 1, "title": "App Secret", "description": "The app's Secret.",
                    "x-herald-zh": {"title": "应用Secret", "description": "自建应用详情页中的 Secret。"}},
    "agent_id": {"type": "integer", "minimum": 1, "title": "AgentId", "description": "The app's AgentId.",
                 "x-herald-zh": {"title": "AgentId", "description": "自建应用的 AgentId。"}},
    "msgtype": {"enum": ["text", "markdown"], "default": "text", "title": "Message type", "description": "WeCom message type used for every delivery.",
                "x-herald-zh": {"title": "消息类型", "description": "每条投递使用的企业微信消息类型。"}},
    "safe": {"type": "boolean", "default": false, "x-herald-advanced": true, "title": "Confidential", "description": "Confidential message (text only).",
             "x-herald-zh": {"title": "保密消息", "description": "以保密消息发送（仅文本）。"}}
  }
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MsgType {
    #[default]
    Text,
    Markdown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    corp_id: String,
    corp_secret: String,
    agent_id: u64,
    #[serde(default)]
    msgtype: MsgType,
    #[serde(default)]
    safe: bool,
    #[serde(rename = "$token", default)]
    token: Option<String>,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        for (field, value) in [("corp_id", &a.corp_id), ("corp_secret", &a.corp_secret)] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return Err(bad(field, "must be a non-empty string without control characters"));
            }
        }
        if a.agent_id == 0 {
            return Err(bad("agent_id", "must be the app's AgentId (a positive number)"));
        }
        if a.safe && a.msgtype == MsgType::Markdown {
            return Err(bad("safe", "confidential messages must be text (msgtype = \"text\")"));
        }
        Ok(a)
    }
}

fn content(d: &Delivery, msgtype: MsgType) -> String {
    match (d.subject.as_deref().map(str::trim).filter(|s| !s.is_empty()), msgtype) {
        (Some(s), MsgType::Text) => format!("{s}\n{}", d.text),
        (Some(s), MsgType::Markdown) => format!("**{s}**\n{}", d.text),
        (None, _) => d.text.clone(),
    }
}

/// `content` cut to at most `max` bytes on a character boundary, ending with `…`.
fn truncate(content: String, max: usize) -> String {
    if content.len() <= max {
        return content;
    }
    let mut end = max - '…'.len_utf8();
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &content[..end])
}

fn valid_userid(id: &str) -> bool {
    !id.is_empty() && id != "@all" && !id.chars().any(|c| c == '|' || c.is_whitespace() || c.is_control())
}

fn request_body(a: &Account, user: &str, content: &str) -> json::Value {
    let mut body = json::json!({"touser": user, "agentid": a.agent_id});
    match a.msgtype {
        MsgType::Text => {
            body["msgtype"] = "text".into();
            body["text"] = json::json!({"content": content});
            body["safe"] = u8::from(a.safe).into();
        }
        MsgType::Markdown => {
            body["msgtype"] = "markdown".into();
            body["markdown"] = json::json!({"content": content});
        }
    }
    body
}

#[derive(Deserialize)]
struct Answer {
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    invaliduser: Option<String>,
    #[serde(default)]
    unlicenseduser: Option<String>,
    #[serde(default)]
    msgid: Option<String>,
}

/// The non-empty names of a `|`-separated list.
fn names(list: &Option<String>) -> Vec<&str> {
    list.as_deref().unwrap_or("").split('|').map(str::trim).filter(|u| !u.is_empty()).collect()
}

impl Plugin for WecomApp {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "wecom-app".into(),
            version: VERSION.into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Text, ContentFormat::Markdown],
            max_batch: 1,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["corp_secret".into()],
            hosts: vec!["qyapi.weixin.qq.com".into()],
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
        // Larger batches (a host ignoring max-batch): unsendable ones are left out.
        outbound::one_per_delivery(&batch, |d| {
            let user = d.recipient.trim();
            if !valid_userid(user) {
                return Err(PluginError::InvalidDelivery(format!("{:?} is not a WeCom UserID (no '|', spaces or @all)", d.recipient)));
            }
            let content = truncate(content(d, a.msgtype), MAX_CONTENT_BYTES);
            if content.trim().is_empty() {
                return Err(PluginError::InvalidDelivery("the text is empty".into()));
            }
            http::post_json(&url, &[], &request_body(&a, user, &content))
        })
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        outcome::http_only(&deliveries, response, |resp| classify(&ctx, &deliveries, resp))
    }

    fn token_request(_ctx: CallContext, account: &str) -> Option<HttpRequest> {
        let a = Account::parse(account).ok()?;
        Some(http::get(&format!("{TOKEN_URL}?corpid={}&corpsecret={}", http::percent_encode(&a.corp_id), http::percent_encode(&a.corp_secret))))
    }

    fn parse_token(_ctx: CallContext, _account: &str, response: HttpResponse) -> Result<AccessToken, PluginError> {
        token::parse_errcode_answer(&response, |code, errmsg| match code {
            40001 => Some(PluginError::BadConfig(format!("corp_secret: WeCom refused it (errcode 40001: {errmsg})"))),
            40013 => Some(PluginError::BadConfig(format!("corp_id: WeCom refused it (errcode 40013: {errmsg})"))),
            _ => None,
        })
    }

    fn token_expired(response: Response) -> bool {
        match response {
            Response::Http(resp) => json::from_slice::<Answer>(&resp.body).is_ok_and(|a| a.errcode.is_some_and(|c| TOKEN_ERRCODES.contains(&c))),
            Response::Smtp(_) => false,
        }
    }
}

fn classify(ctx: &CallContext, deliveries: &[String], resp: &HttpResponse) -> Vec<Outcome> {
    if !(200..300).contains(&resp.status) {
        return outcome::from_http_status(deliveries, resp, ctx.now_ms);
    }
    let Some(answer) = json::from_slice::<Answer>(&resp.body).ok().filter(|a| a.errcode.is_some()) else {
        return outcome::unexpected_answer(deliveries, "WeCom", resp);
    };
    let code = answer.errcode.unwrap_or_default();
    let detail = format!("WeCom errcode {code}: {}", answer.errmsg);
    if code != 0 {
        return outcome::for_all(deliveries, |id| match code {
            45009 => outcome::throttled(id, detail.clone()).with_retry_after_ms(Some(60_000)),
            45033 | -1 => outcome::retry(id, detail.clone()),
            c if TOKEN_ERRCODES.contains(&c) => outcome::retry(id, detail.clone()),
            _ => outcome::failed(id, detail.clone()),
        });
    }
    // Success. Each request carries one recipient, so a recipient WeCom
    // lists as invalid or unlicensed is the delivery's own.
    let invalid = names(&answer.invaliduser);
    let unlicensed = names(&answer.unlicenseduser);
    let msgid = answer.msgid.clone().filter(|m| !m.is_empty());
    outcome::for_all(deliveries, |id| {
        if !invalid.is_empty() {
            outcome::failed(id, format!("WeCom: invalid recipient {} (unknown, or outside the app's visible range)", invalid.join("|")))
        } else if !unlicensed.is_empty() {
            outcome::failed(id, format!("WeCom: recipient {} has no license", unlicensed.join("|")))
        } else {
            let o = outcome::sent(id, "");
            match &msgid {
                Some(m) => o.with_provider_id(m.clone()),
                None => o,
            }
        }
    })
}

export_plugin!(WecomApp);

#[cfg(test)]
mod tests {
    use super::*;

    const ACC: &str = r#"{"corp_id":"ww1","corp_secret":"s/3","agent_id":1000002,"$token":"tok1"}"#;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_000, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(id: &str, to: &str, text: &str) -> Delivery {
        Delivery { id: id.into(), recipient: to.into(), subject: None, text: text.into(), html: None, metadata: vec![] }
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn interpret(body: &str) -> Outcome {
        WecomApp::interpret(ctx(), ACC, vec!["a".into()], Response::Http(resp(200, body))).remove(0)
    }

    #[test]
    fn validate() {
        assert!(WecomApp::validate_account(r#"{"corp_id":"ww1","corp_secret":"s","agent_id":1}"#).is_ok());
        assert!(WecomApp::validate_account(ACC).is_ok());
        for (acc, field) in [
            (r#"{"corp_id":"ww1","corp_secret":"s"}"#, "agent_id"),
            (r#"{"corp_id":" ","corp_secret":"s","agent_id":1}"#, "corp_id"),
            (r#"{"corp_id":"ww1","corp_secret":"s","agent_id":1,"msgtype":"markdown","safe":true}"#, "safe"),
            (r#"{"corp_id":"ww1","corp_secret":"s","agent_id":1,"touser":"x"}"#, "touser"),
        ] {
            match WecomApp::validate_account(acc) {
                Err(PluginError::BadConfig(m)) => assert!(m.contains(field), "{acc}: {m}"),
                other => panic!("{acc}: {other:?}"),
            }
        }
    }

    #[test]
    fn token() {
        let r = WecomApp::token_request(ctx(), ACC).unwrap();
        assert_eq!((r.method.as_str(), r.url.as_str()), ("GET", "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=s%2F3"));
        let t = WecomApp::parse_token(ctx(), ACC, resp(200, r#"{"errcode":0,"errmsg":"ok","access_token":"AT","expires_in":7200}"#)).unwrap();
        assert_eq!((t.value.as_str(), t.expires_in_ms), ("AT", 7_200_000));
        match WecomApp::parse_token(ctx(), ACC, resp(200, r#"{"errcode":40001,"errmsg":"invalid credential"}"#)) {
            Err(PluginError::BadConfig(m)) => {
                assert!(m.starts_with("corp_secret: ") && m.contains("40001"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let expired = |b: &str| WecomApp::token_expired(Response::Http(resp(200, b)));
        assert!(expired(r#"{"errcode":42001,"errmsg":"access_token expired"}"#));
        assert!(expired(r#"{"errcode":40014,"errmsg":"invalid access_token"}"#));
        assert!(!expired(r#"{"errcode":0,"errmsg":"ok"}"#));
        assert!(!expired(r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#));
    }

    #[test]
    fn build_one_request_per_delivery() {
        let mut d = delivery("a", "zhangsan", "disk full");
        d.subject = Some("Alert".into());
        let out = WecomApp::build(ctx(), ACC, vec![d]).unwrap();
        assert_eq!(out.len(), 1);
        let Request::Http(h) = &out[0].request else { panic!() };
        assert_eq!(h.url, "https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=tok1");
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(body, json::json!({"touser":"zhangsan","msgtype":"text","agentid":1000002,"text":{"content":"Alert\ndisk full"},"safe":0}));
        let out = WecomApp::build(ctx(), ACC, vec![delivery("a", "u1", "x"), delivery("b", "a|b", "x"), delivery("c", "u1", "x")]).unwrap();
        assert_eq!(out.iter().map(|o| o.deliveries[0].as_str()).collect::<Vec<_>>(), ["a", "c"]);
        for bad in ["@all", "a|b", "two words", ""] {
            assert!(matches!(WecomApp::build(ctx(), ACC, vec![delivery("a", bad, "x")]), Err(PluginError::InvalidDelivery(_))), "{bad}");
        }
        let md = r#"{"corp_id":"ww1","corp_secret":"s","agent_id":5,"msgtype":"markdown","$token":"t"}"#;
        let out = WecomApp::build(ctx(), md, vec![delivery("a", "u1", "# x")]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(body["markdown"], json::json!({"content":"# x"}));
        assert!(body.get("safe").is_none());
    }

    #[test]
    fn long_content_is_cut_like_wecom_would_but_visibly() {
        let out = WecomApp::build(ctx(), ACC, vec![delivery("a", "u1", &"字".repeat(1000))]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        let body: json::Value = json::from_slice(&h.body).unwrap();
        let content = body["text"]["content"].as_str().unwrap();
        assert!(content.len() <= MAX_CONTENT_BYTES && content.len() > MAX_CONTENT_BYTES - 6, "{}", content.len());
        assert!(content.ends_with("字…"));
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("abcdef".into(), 5), "ab…");
    }

    #[test]
    fn interpret_outcomes() {
        let o = interpret(r#"{"errcode":0,"errmsg":"ok","invaliduser":"","msgid":"m1"}"#);
        assert_eq!((o.kind, o.provider_id.as_deref()), (OutcomeKind::Sent, Some("m1")));
        let o = interpret(r#"{"errcode":0,"errmsg":"ok","invaliduser":"ghost","msgid":"m1"}"#);
        assert_eq!(o.kind, OutcomeKind::Failed);
        assert!(o.detail.unwrap().contains("ghost"));
        assert_eq!(interpret(r#"{"errcode":0,"errmsg":"ok","unlicenseduser":"u9"}"#).kind, OutcomeKind::Failed);
        assert_eq!(interpret(r#"{"errcode":81013,"errmsg":"user & party & tag all invalid"}"#).kind, OutcomeKind::Failed);
        let o = interpret(r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#);
        assert_eq!((o.kind, o.retry_after_ms), (OutcomeKind::Throttled, Some(60_000)));
        assert_eq!(interpret(r#"{"errcode":-1,"errmsg":"system busy"}"#).kind, OutcomeKind::Retry);
        assert_eq!(interpret("<html>").kind, OutcomeKind::Failed);
    }
}
