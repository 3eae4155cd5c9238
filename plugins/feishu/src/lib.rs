//! Herald `feishu` channel plugin: Feishu / Lark (飞书) custom bots
//! (自定义机器人), through their webhook.
//!
//! # Provider API
//!
//! `POST https://open.feishu.cn/open-apis/bot/v2/hook/<token>` (Lark:
//! `https://open.larksuite.com/open-apis/bot/v2/hook/<token>`) with a JSON body:
//!
//! ```json
//! {"timestamp": "1599360473", "sign": "...", "msg_type": "text", "content": {"text": "..."}}
//! ```
//!
//! `timestamp` and `sign` are present only when the bot's "signature
//! verification" (签名校验) is on: `timestamp` is the current time in
//! **seconds** (at most one hour away from Feishu's clock), and
//! `sign = base64(HMAC-SHA256(key = "<timestamp>\n<secret>", message = ""))`:
//! the string to sign is the HMAC **key**, the message is empty.
//!
//! Feishu answers `{"code": 0, "data": {}, "msg": "success"}` (older bots:
//! `{"StatusCode": 0, "StatusMessage": "success"}`); errors carry a non-zero
//! `code` and usually HTTP 200.
//!
//! # Account configuration
//!
//! ```json
//! {"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/...", "secret": "..."}
//! ```
//!
//! - `webhook` (required, secret): the bot's webhook URL, on
//!   `open.feishu.cn` or `open.larksuite.com`.
//! - `secret` (optional, secret): the signature verification secret.
//!
//! # Recipients
//!
//! A bot posts to its group; the recipient says whom to @mention:
//! `userid:<open_id or user_id>` (`<at user_id="ou_...">` is added to the
//! text), `@all` (`<at user_id="all">`), or `group` for no mention.
//!
//! The account schema declares this format (`x-herald-recipient`), so the
//! gateway refuses other recipients at ingest (400 naming `recipients[i].to`).
//!
//! # Requests and limits
//!
//! One request per delivery (`max-batch` 1). The request body may be at most
//! 20 KB; larger deliveries fail before any request. A bot may send 100
//! messages a minute and 5 a second (code `11232` over that, also under load
//! at round hours).
//!
//! # Outcomes
//!
//! | answer | outcome |
//! | --- | --- |
//! | `code` (or `StatusCode`) 0 | sent |
//! | `11232` (frequency limited), `99991400` | throttled, with `x-ogw-ratelimit-reset` or `Retry-After` when given |
//! | `19021` (bad signature or timestamp), `19022` (IP not allowed), `19024` (keyword missing), `9499` (bad request), `19001` (bad webhook token), any other code | failed, with `code` and `msg` |
//! | HTTP 429 / 408, 425, 5xx / other non-2xx without a Feishu code | throttled / retry / failed |
//! | 2xx that is not Feishu's JSON | failed (never resent) |

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outbound, outcome, sign};
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct Feishu;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const HOOK_PATH: &str = "/open-apis/bot/v2/hook/";
const HOSTS: [&str; 2] = ["open.feishu.cn", "open.larksuite.com"];
/// Largest request body a custom bot accepts (20 KB).
pub const MAX_BODY_BYTES: usize = 20 * 1024;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald Feishu / Lark custom bot account",
  "x-herald-zh": {"title": "飞书自定义机器人账号"},
  "type": "object",
  "x-herald-recipient": {"pattern": "(?i:group|@all)|userid:[A-Za-z0-9_-]+",
                         "description": "userid:<open_id or user_id> to @mention (e.g. userid:ou_7d8a6e6df7621556ce0d21922b676706), @all, or group for no mention"},
  "required": ["webhook"],
  "additionalProperties": false,
  "properties": {
    "webhook": {"type": "string", "pattern": "^https://open\\.(feishu\\.cn|larksuite\\.com)/open-apis/bot/v2/hook/[A-Za-z0-9_-]+$",
                "title": "Bot webhook", "description": "The bot's webhook URL.",
                "x-herald-zh": {"title": "机器人 Webhook", "description": "飞书群自定义机器人的 Webhook 地址。"}},
    "secret": {"type": "string", "minLength": 1, "title": "Signing secret", "description": "Signature verification secret; requests are signed when set.",
               "x-herald-zh": {"title": "签名校验密钥", "description": "机器人安全设置中的签名校验密钥；设置后请求会被签名。"}}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    webhook: String,
    #[serde(default)]
    secret: Option<String>,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        let rest = a.webhook.strip_prefix("https://").ok_or_else(|| bad("webhook", "must be an https:// URL"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !HOSTS.contains(&host) {
            return Err(bad("webhook", "must be on open.feishu.cn or open.larksuite.com"));
        }
        let token = path.strip_prefix(HOOK_PATH).ok_or_else(|| bad("webhook", format!("must look like https://{host}{HOOK_PATH}<token>")))?;
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(bad("webhook", "the hook token must be letters, digits and dashes"));
        }
        if a.secret.as_deref().is_some_and(|s| s.is_empty() || s.chars().any(char::is_control)) {
            return Err(bad("secret", "must be a non-empty string without control characters"));
        }
        Ok(a)
    }
}

/// `base64(HMAC-SHA256(key = "<timestamp>\n<secret>", message = ""))`.
pub fn signature(secret: &str, timestamp_s: u64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    sign::base64(&sign::hmac_sha256(key.as_bytes(), b""))
}

/// The `<at>` tag for a recipient, `Ok(None)` for no mention.
fn at_tag(recipient: &str) -> Result<Option<String>, String> {
    let r = recipient.trim();
    if r.eq_ignore_ascii_case("group") {
        return Ok(None);
    }
    if r.eq_ignore_ascii_case("@all") {
        return Ok(Some(r#"<at user_id="all">所有人</at>"#.to_string()));
    }
    if let Some(id) = r.strip_prefix("userid:") {
        let id = id.trim();
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Ok(Some(format!(r#"<at user_id="{id}"></at>"#)));
        }
    }
    Err(format!("{recipient:?} is not userid:<open_id>, @all or group"))
}

fn body(a: &Account, d: &Delivery, now_ms: u64) -> Result<Vec<u8>, String> {
    let mut text = match d.subject.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => format!("{s}\n{}", d.text),
        None => d.text.clone(),
    };
    if text.trim().is_empty() {
        return Err("the text is empty".into());
    }
    if let Some(tag) = at_tag(&d.recipient)? {
        text = format!("{tag} {text}");
    }
    let mut value = json::json!({"msg_type": "text", "content": {"text": text}});
    if let Some(secret) = &a.secret {
        let ts = now_ms / 1000;
        value["timestamp"] = ts.to_string().into();
        value["sign"] = signature(secret, ts).into();
    }
    let bytes = json::to_vec(&value).map_err(|e| e.to_string())?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(format!("the request would be {} bytes; Feishu bots accept at most {MAX_BODY_BYTES}", bytes.len()));
    }
    Ok(bytes)
}

#[derive(Deserialize)]
struct Answer {
    code: Option<i64>,
    #[serde(default)]
    msg: String,
    #[serde(rename = "StatusCode")]
    status_code: Option<i64>,
    #[serde(rename = "StatusMessage", default)]
    status_message: String,
}

/// Feishu's suggested wait: `x-ogw-ratelimit-reset` (seconds) or `Retry-After`.
fn wait_ms(resp: &HttpResponse, now_ms: u64) -> Option<u64> {
    http::header(resp, "x-ogw-ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000))
        .or_else(|| http::retry_after_ms(resp, now_ms))
}

fn classify(ctx: &CallContext, deliveries: &[String], resp: &HttpResponse) -> Vec<Outcome> {
    let answer = json::from_slice::<Answer>(&resp.body).ok();
    let code = answer.as_ref().and_then(|a| a.code.map(|c| (c, a.msg.clone())).or(a.status_code.map(|c| (c, a.status_message.clone()))));
    let Some((code, msg)) = code else {
        if !(200..300).contains(&resp.status) {
            return outcome::from_http_status(deliveries, resp, ctx.now_ms);
        }
        return outcome::unexpected_answer(deliveries, "Feishu", resp);
    };
    let detail = format!("Feishu code {code}: {msg}");
    let wait = wait_ms(resp, ctx.now_ms);
    outcome::for_all(deliveries, |id| match code {
        0 if (200..300).contains(&resp.status) => outcome::sent(id, ""),
        11232 | 99991400 => outcome::throttled(id, detail.clone()).with_retry_after_ms(wait),
        _ if resp.status == 429 => outcome::throttled(id, detail.clone()).with_retry_after_ms(wait),
        _ if resp.status >= 500 => outcome::retry(id, detail.clone()),
        _ => outcome::failed(id, detail.clone()),
    })
}

impl Plugin for Feishu {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "feishu".into(),
            version: VERSION.into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Text],
            max_batch: 1,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["webhook".into(), "secret".into()],
            hosts: HOSTS.iter().map(|h| h.to_string()).collect(),
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let a = Account::parse(account)?;
        outbound::one_per_delivery(&batch, |d| {
            let body = body(&a, d, ctx.now_ms).map_err(PluginError::InvalidDelivery)?;
            Ok(http::post(&a.webhook, vec![("Content-Type".into(), "application/json; charset=utf-8".into())], body))
        })
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        outcome::http_only(&deliveries, response, |resp| classify(&ctx, &deliveries, resp))
    }
}

export_plugin!(Feishu);

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str = "https://open.feishu.cn/open-apis/bot/v2/hook/5e3d587e-d78e-4a07-bd07-265f269f86fd";

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_999, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(to: &str, text: &str) -> Delivery {
        Delivery { id: "d1".into(), recipient: to.into(), subject: None, text: text.into(), html: None, metadata: vec![] }
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::Http(HttpResponse {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn signature_matches_feishu_recipe() {
        // python3: b64encode(hmac.new(b"1700000000\nfs-secret", b"", sha256).digest())
        assert_eq!(signature("fs-secret", 1_700_000_000), "ognpFOmraex6LA29Ao14dsiNmmjE3YO4x5e/SX8n9Bw=");
    }

    #[test]
    fn validate() {
        assert!(Feishu::validate_account(&format!(r#"{{"webhook":"{HOOK}"}}"#)).is_ok());
        assert!(Feishu::validate_account(r#"{"webhook":"https://open.larksuite.com/open-apis/bot/v2/hook/abc","secret":"s"}"#).is_ok());
        for acc in [
            r#"{"webhook":"https://evil.test/open-apis/bot/v2/hook/abc"}"#.to_string(),
            r#"{"webhook":"http://open.feishu.cn/open-apis/bot/v2/hook/abc"}"#.to_string(),
            r#"{"webhook":"https://open.feishu.cn/open-apis/bot/v2/hook/"}"#.to_string(),
            r#"{"webhook":"https://open.feishu.cn/open-apis/bot/v2/hook/a?x=1"}"#.to_string(),
            r#"{"webhook":"https://open.feishu.cn.evil.test/open-apis/bot/v2/hook/a"}"#.to_string(),
            format!(r#"{{"webhook":"{HOOK}","secret":""}}"#),
        ] {
            assert!(matches!(Feishu::validate_account(&acc), Err(PluginError::BadConfig(_))), "{acc}");
        }
    }

    #[test]
    fn build_signed() {
        let acc = format!(r#"{{"webhook":"{HOOK}","secret":"fs-secret"}}"#);
        let mut d = delivery("userid:ou_abc123", "disk full");
        d.subject = Some("Alert".into());
        let out = Feishu::build(ctx(), &acc, vec![d]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        assert_eq!((h.method.as_str(), h.url.as_str()), ("POST", HOOK));
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(
            body,
            json::json!({"timestamp":"1700000000","sign":"ognpFOmraex6LA29Ao14dsiNmmjE3YO4x5e/SX8n9Bw=","msg_type":"text",
                         "content":{"text":"<at user_id=\"ou_abc123\"></at> Alert\ndisk full"}})
        );
        let out = Feishu::build(ctx(), &format!(r#"{{"webhook":"{HOOK}"}}"#), vec![delivery("@all", "x")]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(body, json::json!({"msg_type":"text","content":{"text":"<at user_id=\"all\">所有人</at> x"}}));
    }

    #[test]
    fn build_limits() {
        let acc = format!(r#"{{"webhook":"{HOOK}"}}"#);
        match Feishu::build(ctx(), &acc, vec![delivery("group", &"x".repeat(MAX_BODY_BYTES))]) {
            Err(PluginError::InvalidDelivery(m)) => assert!(m.contains("20480"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Feishu::build(ctx(), &acc, vec![delivery("13800000000", "x")]), Err(PluginError::InvalidDelivery(_))));
        assert!(matches!(Feishu::build(ctx(), &acc, vec![delivery("userid:a\"b", "x")]), Err(PluginError::InvalidDelivery(_))));
    }

    #[test]
    fn interpret() {
        let one = |r: Response| Feishu::interpret(ctx(), "{}", vec!["d1".into()], r).remove(0);
        assert_eq!(one(resp(200, &[], r#"{"code":0,"data":{},"msg":"success"}"#)).kind, OutcomeKind::Sent);
        assert_eq!(one(resp(200, &[], r#"{"StatusCode":0,"StatusMessage":"success"}"#)).kind, OutcomeKind::Sent);
        let o = one(resp(200, &[], r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#));
        assert_eq!(o.kind, OutcomeKind::Failed);
        assert!(o.detail.unwrap().starts_with("Feishu code 19021: sign match fail"));
        let o = one(resp(200, &[], r#"{"code":11232,"data":{},"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]"}"#));
        assert_eq!((o.kind, o.retry_after_ms), (OutcomeKind::Throttled, None));
        let o = one(resp(429, &[("x-ogw-ratelimit-reset", "3")], r#"{"code":99991400,"msg":"request trigger frequency limit"}"#));
        assert_eq!((o.kind, o.retry_after_ms), (OutcomeKind::Throttled, Some(3000)));
        assert_eq!(one(resp(200, &[], r#"{"code":19024,"msg":"Key Words Not Found"}"#)).kind, OutcomeKind::Failed);
        assert_eq!(one(resp(400, &[], r#"{"code":9499,"msg":"Bad Request"}"#)).kind, OutcomeKind::Failed);
        assert_eq!(one(resp(502, &[], "bad gateway")).kind, OutcomeKind::Retry);
        assert_eq!(one(resp(200, &[], "ok")).kind, OutcomeKind::Failed);
    }
}
