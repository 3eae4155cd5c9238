//! Herald `wecom-robot` channel plugin: WeCom (企业微信) group robots
//! (群机器人, "message push"), through their webhook.
//!
//! # Provider API
//!
//! `POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>` with a
//! UTF-8 JSON body; the key in the URL is the only credential.
//!
//! ```json
//! {"msgtype": "text", "text": {"content": "...", "mentioned_list": ["userid", "@all"],
//!                              "mentioned_mobile_list": ["13800001111"]}}
//! {"msgtype": "markdown", "markdown": {"content": "... <@userid> ..."}}
//! ```
//!
//! WeCom answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}` on success and
//! a non-zero `errcode` otherwise.
//!
//! # Account configuration
//!
//! ```json
//! {"webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...", "msgtype": "text"}
//! ```
//!
//! - `webhook` (required, secret): the robot's webhook URL as WeCom shows it;
//!   only `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>` is accepted.
//! - `msgtype` (optional): `"text"` (default) or `"markdown"`.
//!
//! # Recipients
//!
//! A robot posts to its group; the recipient says whom to @mention: a mobile
//! number (`13800001111` or `+8613800001111`), `userid:<WeCom userid>`, `@all`,
//! or `group` for no mention. Markdown messages can only mention userids
//! (`<@userid>` in the content), so a mobile number or `@all` with
//! `msgtype = "markdown"` fails the delivery.
//!
//! The account schema declares this format (`x-herald-recipient`), so the
//! gateway refuses other recipients at ingest (400 naming `recipients[i].to`).
//!
//! # Requests and limits
//!
//! One request per delivery (`max-batch` 1). Text content is at most 2048
//! bytes and markdown content at most 4096 bytes (WeCom answers `40058 ...
//! exceed max length`); longer deliveries fail before any request. A robot may
//! send 20 messages a minute (`45009 api freq out of limit` over that).
//!
//! # Outcomes
//!
//! | answer | outcome |
//! | --- | --- |
//! | `errcode` 0 | sent |
//! | `45009` (frequency limit) | throttled, retry after 60 s |
//! | `45033` (too many concurrent calls), `-1` (system busy) | retry |
//! | `93000` (invalid webhook URL / key), `93004` and any other code | failed, with `errcode` and `errmsg` |
//! | HTTP 429 / 408, 425, 5xx / other non-2xx | throttled / retry / failed |
//! | 2xx that is not WeCom's JSON | failed (never resent) |

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outbound, outcome};
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct WecomRobot;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const WEBHOOK_PREFIX: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?";
const SEND_URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send";
/// Longest text content WeCom robots accept, in bytes.
pub const MAX_TEXT_BYTES: usize = 2048;
/// Longest markdown content WeCom robots accept, in bytes.
pub const MAX_MARKDOWN_BYTES: usize = 4096;
/// A robot may send 20 messages a minute.
pub const THROTTLE_RETRY_AFTER_MS: u64 = 60_000;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald WeCom group robot account",
  "x-herald-zh": {"title": "企业微信群机器人账号"},
  "type": "object",
  "x-herald-recipient": {"pattern": "(?i:group|@all)|userid:[^\\s,|<>]+|(?:\\+86)?[0-9]{5,20}",
                         "description": "a mobile number (13800001111 or +8613800001111) or userid:<WeCom userid> to @mention, @all, or group for no mention"},
  "required": ["webhook"],
  "additionalProperties": false,
  "properties": {
    "webhook": {"type": "string", "pattern": "^https://qyapi\\.weixin\\.qq\\.com/cgi-bin/webhook/send\\?key=[A-Za-z0-9._~-]+$",
                "title": "Robot webhook", "description": "The robot's webhook URL, as WeCom shows it.",
                "x-herald-zh": {"title": "机器人 Webhook", "description": "企业微信群机器人显示的 Webhook 地址。"}},
    "msgtype": {"enum": ["text", "markdown"], "default": "text", "title": "Message type", "description": "WeCom message type used for every delivery.",
                "x-herald-zh": {"title": "消息类型", "description": "每条投递使用的企业微信消息类型。"}}
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
    webhook: String,
    #[serde(default)]
    msgtype: MsgType,
}

struct Config {
    key: String,
    msgtype: MsgType,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Config {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        let query = a.webhook.strip_prefix(WEBHOOK_PREFIX).ok_or_else(|| bad("webhook", format!("must start with {WEBHOOK_PREFIX}key=")))?;
        let key = match query.split_once('=') {
            Some(("key", k)) if !k.contains('&') => k,
            _ => return Err(bad("webhook", "only the key query parameter is expected")),
        };
        if key.is_empty() || !key.chars().all(http::is_unreserved) {
            return Err(bad("webhook", "key must be a non-empty token of letters, digits and dashes"));
        }
        Ok(Config { key: key.to_string(), msgtype: a.msgtype })
    }
}

#[derive(Debug, PartialEq)]
enum Mention {
    None,
    All,
    Mobile(String),
    UserId(String),
}

fn mention(recipient: &str) -> Result<Mention, String> {
    let r = recipient.trim();
    if r.eq_ignore_ascii_case("group") {
        return Ok(Mention::None);
    }
    if r.eq_ignore_ascii_case("@all") {
        return Ok(Mention::All);
    }
    if let Some(id) = r.strip_prefix("userid:") {
        let id = id.trim();
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>') {
            return Err(format!("{recipient:?}: empty or malformed userid"));
        }
        return Ok(Mention::UserId(id.to_string()));
    }
    let national = r.strip_prefix("+86").unwrap_or(r);
    if national.len() >= 5 && national.len() <= 20 && national.chars().all(|c| c.is_ascii_digit()) {
        return Ok(Mention::Mobile(national.to_string()));
    }
    Err(format!("{recipient:?} is not a mobile number, userid:<id>, @all or group"))
}

fn body(cfg: &Config, d: &Delivery) -> Result<json::Value, String> {
    let m = mention(&d.recipient)?;
    let subject = d.subject.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut content = match (cfg.msgtype, subject) {
        (MsgType::Text, Some(s)) => format!("{s}\n{}", d.text),
        (MsgType::Markdown, Some(s)) => format!("**{s}**\n{}", d.text),
        _ => d.text.clone(),
    };
    if content.trim().is_empty() {
        return Err("the text is empty".into());
    }
    let value = match cfg.msgtype {
        MsgType::Text => {
            let mut text = json::json!({"content": ""});
            match m {
                Mention::None => {}
                Mention::All => text["mentioned_list"] = json::json!(["@all"]),
                Mention::UserId(id) => text["mentioned_list"] = json::json!([id]),
                Mention::Mobile(mobile) => text["mentioned_mobile_list"] = json::json!([mobile]),
            }
            if content.len() > MAX_TEXT_BYTES {
                return Err(format!("the text is {} bytes; WeCom robots accept at most {MAX_TEXT_BYTES}", content.len()));
            }
            text["content"] = content.into();
            json::json!({"msgtype": "text", "text": text})
        }
        MsgType::Markdown => {
            match m {
                Mention::None => {}
                Mention::UserId(id) => {
                    let tag = format!("<@{id}>");
                    if !content.contains(&tag) {
                        content.push('\n');
                        content.push_str(&tag);
                    }
                }
                Mention::All | Mention::Mobile(_) => {
                    return Err("WeCom markdown messages can only mention userids (userid:<id>)".into());
                }
            }
            if content.len() > MAX_MARKDOWN_BYTES {
                return Err(format!("the markdown is {} bytes; WeCom robots accept at most {MAX_MARKDOWN_BYTES}", content.len()));
            }
            json::json!({"msgtype": "markdown", "markdown": {"content": content}})
        }
    };
    Ok(value)
}

#[derive(Deserialize)]
struct Answer {
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: String,
}

fn classify(ctx: &CallContext, deliveries: &[String], resp: &HttpResponse) -> Vec<Outcome> {
    if !(200..300).contains(&resp.status) {
        return outcome::from_http_status(deliveries, resp, ctx.now_ms);
    }
    let Some((code, msg)) = json::from_slice::<Answer>(&resp.body).ok().and_then(|a| a.errcode.map(|c| (c, a.errmsg))) else {
        return outcome::unexpected_answer(deliveries, "WeCom", resp);
    };
    let detail = format!("WeCom errcode {code}: {msg}");
    outcome::for_all(deliveries, |id| match code {
        0 => outcome::sent(id, ""),
        45009 => outcome::throttled(id, detail.clone()).with_retry_after_ms(Some(THROTTLE_RETRY_AFTER_MS)),
        45033 | -1 => outcome::retry(id, detail.clone()),
        _ => outcome::failed(id, detail.clone()),
    })
}

impl Plugin for WecomRobot {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "wecom-robot".into(),
            version: VERSION.into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Text, ContentFormat::Markdown],
            max_batch: 1,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["webhook".into()],
            hosts: vec!["qyapi.weixin.qq.com".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Config::parse(account).map(|_| ())
    }

    fn build(_ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let cfg = Config::parse(account)?;
        let url = format!("{SEND_URL}?key={}", cfg.key);
        outbound::one_per_delivery(&batch, |d| {
            let body = body(&cfg, d).map_err(PluginError::InvalidDelivery)?;
            http::post_json(&url, &[], &body)
        })
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        outcome::http_only(&deliveries, response, |resp| classify(&ctx, &deliveries, resp))
    }
}

export_plugin!(WecomRobot);

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa";

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_000, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(to: &str, text: &str) -> Delivery {
        Delivery { id: "d1".into(), recipient: to.into(), subject: None, text: text.into(), html: None, metadata: vec![] }
    }

    fn built(acc: &str, d: Delivery) -> (String, json::Value) {
        let out = WecomRobot::build(ctx(), acc, vec![d]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        (h.url.clone(), json::from_slice(&h.body).unwrap())
    }

    #[test]
    fn validate() {
        assert!(WecomRobot::validate_account(&format!(r#"{{"webhook":"{HOOK}"}}"#)).is_ok());
        for acc in [
            r#"{}"#.to_string(),
            r#"{"webhook":"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="}"#.to_string(),
            r#"{"webhook":"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=a&debug=1"}"#.to_string(),
            r#"{"webhook":"http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=a"}"#.to_string(),
            format!(r#"{{"webhook":"{HOOK}","msgtype":"news"}}"#),
        ] {
            assert!(matches!(WecomRobot::validate_account(&acc), Err(PluginError::BadConfig(_))), "{acc}");
        }
    }

    #[test]
    fn text_mentions() {
        let acc = format!(r#"{{"webhook":"{HOOK}"}}"#);
        let (url, body) = built(&acc, delivery("+8613800001111", "hello"));
        assert_eq!(url, HOOK);
        assert_eq!(body, json::json!({"msgtype":"text","text":{"content":"hello","mentioned_mobile_list":["13800001111"]}}));
        let (_, body) = built(&acc, delivery("@all", "x"));
        assert_eq!(body["text"]["mentioned_list"], json::json!(["@all"]));
        let (_, body) = built(&acc, delivery("userid:wangqing", "x"));
        assert_eq!(body["text"]["mentioned_list"], json::json!(["wangqing"]));
        let (_, body) = built(&acc, delivery("group", "x"));
        assert_eq!(body, json::json!({"msgtype":"text","text":{"content":"x"}}));
    }

    #[test]
    fn markdown_and_limits() {
        let acc = format!(r#"{{"webhook":"{HOOK}","msgtype":"markdown"}}"#);
        let mut d = delivery("userid:wangqing", "# Hi");
        d.subject = Some("Deploy".into());
        let (_, body) = built(&acc, d);
        assert_eq!(body, json::json!({"msgtype":"markdown","markdown":{"content":"**Deploy**\n# Hi\n<@wangqing>"}}));
        assert!(matches!(WecomRobot::build(ctx(), &acc, vec![delivery("13800001111", "x")]), Err(PluginError::InvalidDelivery(_))));
        let text_acc = format!(r#"{{"webhook":"{HOOK}"}}"#);
        let (_, body) = built(&text_acc, delivery("group", &"a".repeat(MAX_TEXT_BYTES)));
        assert_eq!(body["text"]["content"].as_str().unwrap().len(), MAX_TEXT_BYTES);
        match WecomRobot::build(ctx(), &text_acc, vec![delivery("group", &"a".repeat(MAX_TEXT_BYTES + 1))]) {
            Err(PluginError::InvalidDelivery(m)) => assert!(m.contains("2048"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            WecomRobot::build(ctx(), &acc, vec![delivery("group", &"a".repeat(MAX_MARKDOWN_BYTES + 1))]),
            Err(PluginError::InvalidDelivery(_))
        ));
        assert!(matches!(WecomRobot::build(ctx(), &text_acc, vec![delivery("bob", "x")]), Err(PluginError::InvalidDelivery(_))));
    }

    #[test]
    fn interpret() {
        let ids = vec!["d1".to_string()];
        let one = |status: u16, body: &str| {
            WecomRobot::interpret(ctx(), "{}", ids.clone(), Response::Http(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }))
                [0]
            .clone()
        };
        assert_eq!(one(200, r#"{"errcode":0,"errmsg":"ok"}"#).kind, OutcomeKind::Sent);
        let o = one(200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#);
        assert_eq!((o.kind, o.retry_after_ms), (OutcomeKind::Throttled, Some(60_000)));
        let o = one(200, r#"{"errcode":93000,"errmsg":"invalid webhook url, hint: [1]"}"#);
        assert_eq!(o.kind, OutcomeKind::Failed);
        assert!(o.detail.unwrap().contains("93000"));
        assert_eq!(one(200, r#"{"errcode":-1,"errmsg":"system busy"}"#).kind, OutcomeKind::Retry);
        assert_eq!(one(200, "not json").kind, OutcomeKind::Failed);
        assert_eq!(one(503, "").kind, OutcomeKind::Retry);
    }
}
