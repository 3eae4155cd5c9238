//! Herald `welink` channel plugin: Huawei WeLink group webhook robots
//! (群webhook机器人).
//!
//! # Provider API
//!
//! `POST https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=<token>&channel=standard`
//! with a JSON body (authentication: the token in the URL plus the robot's IP
//! allowlist):
//!
//! ```json
//! {"messageType": "text", "content": {"text": "@zhangsan@welink disk full"},
//!  "timeStamp": 1669945732253, "uuid": "2b5a9091d2154c8eaeab7f9ed4d87697",
//!  "isAt": true, "isAtAll": false, "atAccounts": ["zhangsan@welink"]}
//! ```
//!
//! - `messageType`: only `text` exists.
//! - `content.text`: 1 to 500 characters. `@userid`, `@all` in the text are
//!   highlighted when the userid is also in `atAccounts`.
//! - `timeStamp`: milliseconds, valid for 10 minutes.
//! - `uuid`: globally unique per call. Plugins have no randomness, so it is
//!   derived from the delivery id, the attempt number and the call time
//!   (`hex(SHA-256(id "\n" attempt "\n" now_ms))[..32]`): unique per attempt,
//!   and the same if the very same call were built twice.
//! - `isAt` / `atAccounts` (at most 10 userids), `isAtAll`.
//!
//! WeLink answers `{"code": "0", "data": "success", "message": "ok"}`; error
//! codes: `58404` robot not found, `58500` service error, `58601` bad
//! parameter, `58602` robot not enabled. The WeLink open platform answers
//! `48503` when a caller exceeds its frequency limits.
//!
//! WeLink's open platform also has app notifications to users (token from
//! `/api/auth/v2/tickets`, `x-wlk-Authorization` header,
//! `/api/messages/v2/card/common`); this plugin implements the group robot only.
//!
//! # Account configuration
//!
//! ```json
//! {"webhook": "https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=...&channel=standard"}
//! ```
//!
//! - `webhook` (required, secret): the robot's webhook URL as WeLink shows it
//!   (`token` and `channel` query parameters, nothing else).
//!
//! # Recipients
//!
//! A robot posts to its group; the recipient says whom to @mention:
//! `userid:<WeLink userid>` (e.g. `userid:zhangsan@welink`), `@all`, or
//! `group` for no mention.
//!
//! The account schema declares this format (`x-herald-recipient`), so the
//! gateway refuses other recipients at ingest (400 naming `recipients[i].to`).
//!
//! # Requests and outcomes
//!
//! One request per delivery (`max-batch` 1); a text over 500 characters (the
//! mention included) fails before any request.
//!
//! | answer | outcome |
//! | --- | --- |
//! | `code` `"0"` | sent |
//! | `48503` (frequency limit), HTTP 429 | throttled |
//! | `58500` (service error), HTTP 408, 425, 5xx | retry |
//! | `58404`, `58601`, `58602`, any other code, other non-2xx | failed, with `code` and `message` |
//! | 2xx that is not WeLink's JSON | failed (never resent) |

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outbound, outcome, sign};
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct Welink;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const WEBHOOK_PREFIX: &str = "https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?";
/// Longest `content.text`, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald WeLink group robot account",
  "x-herald-zh": {"title": "WeLink 群机器人账号"},
  "type": "object",
  "x-herald-recipient": {"pattern": "(?i:group|@all)|userid:[^\\s,]+",
                         "description": "userid:<WeLink userid> to @mention (e.g. userid:zhangsan@welink), @all, or group for no mention"},
  "required": ["webhook"],
  "additionalProperties": false,
  "properties": {
    "webhook": {"type": "string", "pattern": "^https://open\\.welink\\.huaweicloud\\.com/api/werobot/v1/webhook/send\\?",
                "title": "Robot webhook", "description": "The robot's webhook URL, with its token and channel parameters.",
                "x-herald-zh": {"title": "机器人 Webhook", "description": "WeLink 群机器人的 Webhook 地址，含 token 与 channel 参数。"}}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    webhook: String,
}

struct Config {
    token: String,
    channel: String,
}

fn bad(msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("webhook: {msg}"))
}

impl Config {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        let query = a.webhook.strip_prefix(WEBHOOK_PREFIX).ok_or_else(|| bad(format!("must start with {WEBHOOK_PREFIX}")))?;
        let (mut token, mut channel) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("token", v)) if token.is_none() => token = Some(v),
                Some(("channel", v)) if channel.is_none() => channel = Some(v),
                _ => {
                    return Err(bad("only the token and channel query parameters are expected"));
                }
            }
        }
        let token = token.filter(|t| !t.is_empty() && t.chars().all(http::is_unreserved)).ok_or_else(|| bad("token is missing or malformed"))?;
        let channel =
            channel.filter(|c| !c.is_empty() && c.chars().all(http::is_unreserved)).ok_or_else(|| bad("channel is missing (channel=standard)"))?;
        Ok(Config { token: token.to_string(), channel: channel.to_string() })
    }

    fn url(&self) -> String {
        format!("{WEBHOOK_PREFIX}token={}&channel={}", self.token, self.channel)
    }
}

/// The per-call unique id: 32 hex digits.
pub fn call_uuid(delivery_id: &str, attempt: u32, now_ms: u64) -> String {
    sign::sha256_hex(format!("{delivery_id}\n{attempt}\n{now_ms}").as_bytes())[..32].to_string()
}

fn body(d: &Delivery, ctx: &CallContext) -> Result<json::Value, String> {
    let mut text = match d.subject.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => format!("{s}\n{}", d.text),
        None => d.text.clone(),
    };
    if text.trim().is_empty() {
        return Err("the text is empty".into());
    }
    let r = d.recipient.trim();
    let (mut is_at, mut is_at_all, mut accounts) = (false, false, Vec::new());
    if r.eq_ignore_ascii_case("@all") {
        is_at_all = true;
        if !text.contains("@all") {
            text = format!("@all {text}");
        }
    } else if let Some(id) = r.strip_prefix("userid:").map(str::trim).filter(|id| !id.is_empty()) {
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{:?}: malformed userid", d.recipient));
        }
        is_at = true;
        accounts.push(id.to_string());
        let tag = format!("@{id}");
        if !text.contains(&tag) {
            text = format!("{tag} {text}");
        }
    } else if !r.eq_ignore_ascii_case("group") {
        return Err(format!("{:?} is not userid:<id>, @all or group", d.recipient));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(format!("the text is {chars} characters; WeLink robots accept at most {MAX_TEXT_CHARS}"));
    }
    let mut value = json::json!({
        "messageType": "text",
        "content": {"text": text},
        "timeStamp": ctx.now_ms,
        "uuid": call_uuid(&d.id, ctx.attempt, ctx.now_ms),
        "isAt": is_at,
        "isAtAll": is_at_all,
    });
    if is_at {
        value["atAccounts"] = accounts.into();
    }
    Ok(value)
}

#[derive(Deserialize)]
struct Answer {
    code: Option<json::Value>,
    #[serde(default)]
    message: String,
}

fn classify(ctx: &CallContext, deliveries: &[String], resp: &HttpResponse) -> Vec<Outcome> {
    let code = json::from_slice::<Answer>(&resp.body).ok().and_then(|a| {
        let code = match a.code? {
            json::Value::String(s) => s,
            json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some((code, a.message))
    });
    let Some((code, message)) = code else {
        if !(200..300).contains(&resp.status) {
            return outcome::from_http_status(deliveries, resp, ctx.now_ms);
        }
        return outcome::unexpected_answer(deliveries, "WeLink", resp);
    };
    let detail = format!("WeLink code {code}: {message}");
    let retry_after = http::retry_after_ms(resp, ctx.now_ms);
    outcome::for_all(deliveries, |id| match code.as_str() {
        "0" if (200..300).contains(&resp.status) => outcome::sent(id, ""),
        "48503" => outcome::throttled(id, detail.clone()).with_retry_after_ms(retry_after),
        _ if resp.status == 429 => outcome::throttled(id, detail.clone()).with_retry_after_ms(retry_after),
        "58500" => outcome::retry(id, detail.clone()),
        _ if matches!(resp.status, 408 | 425 | 500..=599) => outcome::retry(id, detail.clone()),
        _ => outcome::failed(id, detail.clone()),
    })
}

impl Plugin for Welink {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "welink".into(),
            version: VERSION.into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Text],
            max_batch: 1,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["webhook".into()],
            hosts: vec!["open.welink.huaweicloud.com".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Config::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let cfg = Config::parse(account)?;
        let url = cfg.url();
        let headers = [("Content-Type", "application/json"), ("Accept-Charset", "UTF-8")];
        outbound::one_per_delivery(&batch, |d| {
            let body = body(d, &ctx).map_err(PluginError::InvalidDelivery)?;
            http::post_json(&url, &headers, &body)
        })
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        outcome::http_only(&deliveries, response, |resp| classify(&ctx, &deliveries, resp))
    }
}

export_plugin!(Welink);

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str = "https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=a69f751172bb4a36abe5de9ddf9aa1cc&channel=standard";

    fn ctx(attempt: u32) -> CallContext {
        CallContext { now_ms: 1_669_945_732_253, tenant: "t".into(), attempt }
    }

    fn delivery(to: &str, text: &str) -> Delivery {
        Delivery { id: "m.0".into(), recipient: to.into(), subject: None, text: text.into(), html: None, metadata: vec![] }
    }

    fn body_of(d: Delivery) -> (String, json::Value) {
        let out = Welink::build(ctx(1), &format!(r#"{{"webhook":"{HOOK}"}}"#), vec![d]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        (h.url.clone(), json::from_slice(&h.body).unwrap())
    }

    #[test]
    fn validate() {
        assert!(Welink::validate_account(&format!(r#"{{"webhook":"{HOOK}"}}"#)).is_ok());
        assert!(
            Welink::validate_account(r#"{"webhook":"https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?channel=standard&token=abc"}"#)
                .is_ok()
        );
        for hook in [
            "https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=abc",
            "https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=&channel=standard",
            "https://open.welink.huaweicloud.com/api/werobot/v1/webhook/send?token=a&channel=standard&x=1",
            "https://evil.test/api/werobot/v1/webhook/send?token=a&channel=standard",
        ] {
            assert!(matches!(Welink::validate_account(&format!(r#"{{"webhook":"{hook}"}}"#)), Err(PluginError::BadConfig(_))), "{hook}");
        }
    }

    #[test]
    fn body_shape() {
        let (url, body) = body_of(delivery("userid:mettjhfuukaq@562a847505", "有告警消息请查收一下"));
        assert_eq!(url, HOOK);
        assert_eq!(
            body,
            json::json!({"messageType":"text","content":{"text":"@mettjhfuukaq@562a847505 有告警消息请查收一下"},
                         "timeStamp":1_669_945_732_253u64,"uuid":call_uuid("m.0", 1, 1_669_945_732_253),
                         "isAt":true,"isAtAll":false,"atAccounts":["mettjhfuukaq@562a847505"]})
        );
        let (_, body) = body_of(delivery("@all", "x"));
        assert_eq!((body["isAtAll"].as_bool(), body["content"]["text"].as_str()), (Some(true), Some("@all x")));
        let (_, body) = body_of(delivery("group", "x"));
        assert_eq!((body["isAt"].as_bool(), body.get("atAccounts")), (Some(false), None));
    }

    #[test]
    fn uuid_is_unique_per_attempt() {
        let a = call_uuid("m.0", 1, 5);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, call_uuid("m.0", 2, 5));
        assert_ne!(a, call_uuid("m.1", 1, 5));
        assert_ne!(a, call_uuid("m.0", 1, 6));
        assert_eq!(a, call_uuid("m.0", 1, 5));
    }

    #[test]
    fn limits() {
        let acc = format!(r#"{{"webhook":"{HOOK}"}}"#);
        assert!(Welink::build(ctx(1), &acc, vec![delivery("group", &"字".repeat(500))]).is_ok());
        match Welink::build(ctx(1), &acc, vec![delivery("group", &"字".repeat(501))]) {
            Err(PluginError::InvalidDelivery(m)) => assert!(m.contains("500"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Welink::build(ctx(1), &acc, vec![delivery("userid:a", &"x".repeat(498))]), Err(PluginError::InvalidDelivery(_))));
        assert!(matches!(Welink::build(ctx(1), &acc, vec![delivery("13800000000", "x")]), Err(PluginError::InvalidDelivery(_))));
    }

    #[test]
    fn interpret() {
        let one = |status: u16, body: &str| {
            Welink::interpret(
                ctx(1),
                "{}",
                vec!["d".into()],
                Response::Http(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }),
            )
            .remove(0)
        };
        assert_eq!(one(200, r#"{"code":"0","data":"success","message":"ok"}"#).kind, OutcomeKind::Sent);
        let o = one(200, r#"{"code":"58404","data":"","message":"robot not found"}"#);
        assert_eq!((o.kind, o.detail.as_deref()), (OutcomeKind::Failed, Some("WeLink code 58404: robot not found")));
        assert_eq!(one(200, r#"{"code":"58601","data":"","message":"param error"}"#).kind, OutcomeKind::Failed);
        assert_eq!(one(200, r#"{"code":"58500","data":"","message":"error"}"#).kind, OutcomeKind::Retry);
        assert_eq!(one(200, r#"{"code":"48503","message":"frequency"}"#).kind, OutcomeKind::Throttled);
        assert_eq!(one(503, "").kind, OutcomeKind::Retry);
        assert_eq!(one(200, "<html>").kind, OutcomeKind::Failed);
    }
}
