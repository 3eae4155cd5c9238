//! Herald `dingtalk-robot` channel plugin: DingTalk (钉钉) custom group robots
//! (自定义机器人), through their webhook.
//!
//! # Provider API
//!
//! `POST https://oapi.dingtalk.com/robot/send?access_token=<token>` with a JSON
//! body, UTF-8. When the robot's security setting is "加签" (signing), two more
//! query parameters are required:
//!
//! - `timestamp`: the current time in **milliseconds**; DingTalk rejects it when
//!   it is more than one hour away from its own clock;
//! - `sign`: `urlencode(base64(HMAC-SHA256(key = secret, msg = "<timestamp>\n<secret>")))`.
//!
//! The other security settings (custom keywords, IP allowlist) need nothing
//! from the plugin: a message without one of the keywords is refused by
//! DingTalk (`310000 keywords not in content`).
//!
//! Bodies sent:
//!
//! ```json
//! {"msgtype": "text", "text": {"content": "..."},
//!  "at": {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": false}}
//! {"msgtype": "markdown", "markdown": {"title": "...", "text": "..."}, "at": {...}}
//! ```
//!
//! DingTalk answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}` on success
//! and a non-zero `errcode` otherwise: the HTTP status alone says nothing.
//!
//! # Account configuration
//!
//! ```json
//! {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=...",
//!  "secret": "SEC...", "msgtype": "text", "title": "Alerts"}
//! ```
//!
//! - `webhook` (required, secret): the robot's webhook URL exactly as DingTalk
//!   shows it. Only `https://oapi.dingtalk.com/robot/send?access_token=<token>`
//!   is accepted.
//! - `secret` (optional, secret): the "加签" secret (`SEC...`). Without it
//!   requests are not signed.
//! - `msgtype` (optional): `"text"` (default) or `"markdown"` (the delivery
//!   text is sent as DingTalk markdown).
//! - `title` (optional): markdown title (shown in notifications); default the
//!   delivery subject, else the first line of the text.
//!
//! # Recipients
//!
//! A robot posts to its group; the recipient says whom to @mention:
//! a mobile number (`13800000000`, `+8613800000000`, `+852-91234567`),
//! `userid:<DingTalk userid>`, `@all`, or `group` for no mention. Mentioned
//! mobiles/userids are appended to the text as `@<id>` when absent, which
//! DingTalk needs to highlight them (markdown in particular).
//!
//! The account schema declares this format (`x-herald-recipient`), so the
//! gateway refuses other recipients at ingest (400 naming `recipients[i].to`).
//!
//! # Requests and limits
//!
//! One request per delivery (`max-batch` 1, so that a delivery that cannot be
//! sent fails alone with its own reason). The content (text, or markdown text)
//! may be at most 20000 bytes (DingTalk answers `460101 message too long,
//! exceed 20000 bytes`); longer deliveries fail before any request.
//! A robot may send 20 messages a minute; over that DingTalk throttles it
//! for 10 minutes (`130101 send too fast, exceed 20 times per minute`).
//!
//! # Outcomes
//!
//! | answer | outcome |
//! | --- | --- |
//! | `errcode` 0 | sent |
//! | `130101`, `410100` (too fast) | throttled, retry after 10 minutes |
//! | anti-abuse answer `{"status": 1111, "wait": N, "punish": "deny"}` | throttled, retry after N minutes |
//! | `-1` (system busy) | retry |
//! | `310000` (sign / keyword / IP check), `300001`/`300005`/`400101` (no such token), `400102` (robot stopped), `400105`, `400106`, `400013`, `460101`, `4301xx` (content refused), any other code | failed, with DingTalk's `errcode` and `errmsg` |
//! | HTTP 429 / 408, 425, 5xx / other non-2xx | throttled / retry / failed |
//! | 2xx that is not DingTalk's JSON | failed (the outcome is unknown; never resent) |

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outbound, outcome, sign};
use serde::{Deserialize, Serialize};

/// The plugin type exported to the host.
pub struct DingtalkRobot;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const WEBHOOK_PREFIX: &str = "https://oapi.dingtalk.com/robot/send?";
const SEND_URL: &str = "https://oapi.dingtalk.com/robot/send";
/// Longest content DingTalk accepts (`460101 message too long, exceed 20000 bytes`).
pub const MAX_CONTENT_BYTES: usize = 20_000;
/// DingTalk throttles a robot for 10 minutes after 20 messages in a minute.
pub const THROTTLE_RETRY_AFTER_MS: u64 = 10 * 60 * 1000;
/// Longest markdown title taken from the text's first line.
const MAX_TITLE_CHARS: usize = 64;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald DingTalk custom robot account",
  "x-herald-zh": {"title": "钉钉自定义机器人账号"},
  "type": "object",
  "x-herald-recipient": {"pattern": "(?i:group|@all)|userid:[^\\s,]+|\\+?-*(?:[0-9]-*){5,20}",
                         "description": "a mobile number (13800000000, +8613800000000, +852-91234567) or userid:<DingTalk userid> to @mention, @all, or group for no mention"},
  "required": ["webhook"],
  "additionalProperties": false,
  "properties": {
    "webhook": {"type": "string", "pattern": "^https://oapi\\.dingtalk\\.com/robot/send\\?access_token=[A-Za-z0-9._~-]+$",
                "title": "Robot webhook", "description": "The robot's webhook URL, as DingTalk shows it.",
                "x-herald-zh": {"title": "机器人 Webhook", "description": "钉钉群机器人设置中显示的 Webhook 地址。"}},
    "secret": {"type": "string", "minLength": 1,
               "title": "Signing secret", "description": "The robot's signing (加签) secret, SEC...; requests are signed when set.",
               "x-herald-zh": {"title": "加签密钥", "description": "机器人安全设置中的加签密钥（SEC 开头）；设置后请求会被签名。"}},
    "msgtype": {"enum": ["text", "markdown"], "default": "text",
                "title": "Message type", "description": "DingTalk message type used for every delivery.",
                "x-herald-zh": {"title": "消息类型", "description": "每条投递使用的钉钉消息类型。"}},
    "title": {"type": "string", "minLength": 1, "x-herald-advanced": true,
              "title": "Markdown title", "description": "Markdown title; default the subject, else the first line of the text.",
              "x-herald-zh": {"title": "Markdown 标题", "description": "Markdown 消息标题；默认取主题，否则取正文第一行。"}}
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
    webhook: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    msgtype: MsgType,
    #[serde(default)]
    title: Option<String>,
}

/// A validated account: the access token taken out of the webhook URL.
struct Config {
    access_token: String,
    secret: Option<String>,
    msgtype: MsgType,
    title: Option<String>,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Config {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        let query = a.webhook.strip_prefix(WEBHOOK_PREFIX).ok_or_else(|| bad("webhook", format!("must start with {WEBHOOK_PREFIX}access_token=")))?;
        let mut access_token = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("access_token", v)) if access_token.is_none() => access_token = Some(v),
                _ => {
                    return Err(bad("webhook", "only the access_token query parameter is expected"));
                }
            }
        }
        let access_token = access_token.ok_or_else(|| bad("webhook", "access_token is missing"))?;
        if access_token.is_empty() || !access_token.chars().all(http::is_unreserved) {
            return Err(bad("webhook", "access_token must be a non-empty token of letters and digits"));
        }
        if a.secret.as_deref().is_some_and(|s| s.is_empty() || s.chars().any(char::is_control)) {
            return Err(bad("secret", "must be a non-empty string without control characters"));
        }
        if a.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(bad("title", "must not be empty"));
        }
        Ok(Config { access_token: access_token.to_string(), secret: a.secret, msgtype: a.msgtype, title: a.title })
    }
}

/// The `sign` query value for `timestamp_ms`: already URL-encoded.
pub fn signature(secret: &str, timestamp_ms: u64) -> String {
    let string_to_sign = format!("{timestamp_ms}\n{secret}");
    http::percent_encode(&sign::base64(&sign::hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes())))
}

/// Whom a delivery @mentions.
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
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{recipient:?}: empty or malformed userid"));
        }
        return Ok(Mention::UserId(id.to_string()));
    }
    let digits = r.chars().filter(char::is_ascii_digit).count();
    let well_formed = !r.is_empty()
        && r.chars().all(|c| c.is_ascii_digit() || c == '+' || c == '-')
        && r.chars().skip(1).all(|c| c != '+')
        && (5..=20).contains(&digits);
    if !well_formed {
        return Err(format!("{recipient:?} is not a mobile number, userid:<id>, @all or group"));
    }
    // E.164 mainland numbers (+86...) are written without the country code.
    let mobile = match r.strip_prefix("+86") {
        Some(rest) if rest.len() == 11 && rest.chars().all(|c| c.is_ascii_digit()) => rest.to_string(),
        _ => r.to_string(),
    };
    Ok(Mention::Mobile(mobile))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct At {
    at_mobiles: Vec<String>,
    at_user_ids: Vec<String>,
    is_at_all: bool,
}

/// The JSON body for one delivery, or why it cannot be sent.
fn body(cfg: &Config, d: &Delivery) -> Result<json::Value, String> {
    let m = mention(&d.recipient)?;
    let subject = d.subject.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut content = match (cfg.msgtype, subject) {
        (MsgType::Text, Some(s)) => format!("{s}\n{}", d.text),
        _ => d.text.clone(),
    };
    if content.trim().is_empty() {
        return Err("the text is empty".into());
    }
    let mut at = At { at_mobiles: vec![], at_user_ids: vec![], is_at_all: false };
    match &m {
        Mention::None => {}
        Mention::All => at.is_at_all = true,
        Mention::Mobile(id) | Mention::UserId(id) => {
            let tag = format!("@{id}");
            if !content.contains(&tag) {
                content.push(if cfg.msgtype == MsgType::Markdown { '\n' } else { ' ' });
                content.push_str(&tag);
            }
            match m {
                Mention::Mobile(_) => at.at_mobiles.push(id.clone()),
                _ => at.at_user_ids.push(id.clone()),
            }
        }
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(format!("the content is {} bytes; DingTalk robots accept at most {MAX_CONTENT_BYTES}", content.len()));
    }
    Ok(match cfg.msgtype {
        MsgType::Text => json::json!({"msgtype": "text", "text": {"content": content}, "at": at}),
        MsgType::Markdown => {
            let title = cfg.title.clone().or_else(|| subject.map(str::to_string)).unwrap_or_else(|| first_line(&d.text));
            json::json!({"msgtype": "markdown", "markdown": {"title": title, "text": content}, "at": at})
        }
    })
}

/// The first non-empty line, without markdown heading marks, shortened.
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

fn send_url(cfg: &Config, now_ms: u64) -> String {
    let mut url = format!("{SEND_URL}?access_token={}", http::percent_encode(&cfg.access_token));
    if let Some(secret) = &cfg.secret {
        url.push_str(&format!("&timestamp={now_ms}&sign={}", signature(secret, now_ms)));
    }
    url
}

/// DingTalk's answer body.
#[derive(Deserialize)]
struct Answer {
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: String,
    /// The anti-abuse gateway's answer: `{"status": 1111, "wait": 5, "punish": "deny"}`.
    status: Option<i64>,
    wait: Option<u64>,
    punish: Option<String>,
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
    outcome::for_all(deliveries, |id| match code {
        0 => outcome::sent(id, ""),
        130101 | 410100 => outcome::throttled(id, detail.clone()).with_retry_after_ms(Some(THROTTLE_RETRY_AFTER_MS)),
        -1 => outcome::retry(id, detail.clone()),
        _ => outcome::failed(id, detail.clone()),
    })
}

impl Plugin for DingtalkRobot {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "dingtalk-robot".into(),
            version: VERSION.into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Text, ContentFormat::Markdown],
            max_batch: 1,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["webhook".into(), "secret".into()],
            hosts: vec!["oapi.dingtalk.com".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Config::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let cfg = Config::parse(account)?;
        let url = send_url(&cfg, ctx.now_ms);
        // A single delivery fails with its own reason; in larger batches (a
        // host ignoring max-batch) unsendable deliveries are left out.
        outbound::one_per_delivery(&batch, |d| {
            let body = body(&cfg, d).map_err(PluginError::InvalidDelivery)?;
            http::post_json(&url, &[("Content-Type", "application/json; charset=utf-8")], &body)
        })
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        outcome::http_only(&deliveries, response, |resp| classify(&ctx, &deliveries, resp))
    }
}

export_plugin!(DingtalkRobot);

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;
    const HOOK: &str = "https://oapi.dingtalk.com/robot/send?access_token=abc123";

    fn ctx() -> CallContext {
        CallContext { now_ms: NOW, tenant: "t".into(), attempt: 1 }
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

    fn answer(status: u16, body: &str) -> Response {
        Response::Http(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() })
    }

    fn bad_config(account: &str) -> String {
        match DingtalkRobot::validate_account(account) {
            Err(PluginError::BadConfig(m)) => m,
            other => panic!("expected BadConfig for {account}, got {other:?}"),
        }
    }

    #[test]
    fn signature_matches_dingtalk_recipe() {
        // python3: quote_plus(b64encode(hmac.new(b"SECtest", b"1700000000000\nSECtest", sha256).digest()))
        assert_eq!(signature("SECtest", 1_700_000_000_000), "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D");
        assert_eq!(http::percent_encode("a+b/c=d é"), "a%2Bb%2Fc%3Dd%20%C3%A9");
    }

    #[test]
    fn validate() {
        assert!(DingtalkRobot::validate_account(&format!(r#"{{"webhook":"{HOOK}"}}"#)).is_ok());
        assert!(DingtalkRobot::validate_account(&format!(r#"{{"webhook":"{HOOK}","secret":"SECx","msgtype":"markdown","title":"T"}}"#)).is_ok());
        assert!(bad_config(r#"{}"#).contains("missing field `webhook`"));
        assert!(bad_config(r#"{"webhook":"https://evil.test/robot/send?access_token=x"}"#).starts_with("webhook: "));
        assert!(bad_config(r#"{"webhook":"https://oapi.dingtalk.com/robot/send?access_token="}"#).starts_with("webhook: "));
        assert!(bad_config(r#"{"webhook":"https://oapi.dingtalk.com/robot/send?access_token=a&x=1"}"#).starts_with("webhook: "));
        assert!(bad_config(r#"{"webhook":"https://oapi.dingtalk.com/robot/send?access_token=a b"}"#).starts_with("webhook: "));
        assert!(bad_config(&format!(r#"{{"webhook":"{HOOK}","secret":""}}"#)).starts_with("secret: "));
        assert!(bad_config(&format!(r#"{{"webhook":"{HOOK}","msgtype":"card"}}"#)).starts_with("msgtype: "));
        assert!(bad_config(&format!(r#"{{"webhook":"{HOOK}","x":1}}"#)).contains("unknown field `x`"));
    }

    #[test]
    fn mentions() {
        assert_eq!(mention("group"), Ok(Mention::None));
        assert_eq!(mention("@all"), Ok(Mention::All));
        assert_eq!(mention("13800000000"), Ok(Mention::Mobile("13800000000".into())));
        assert_eq!(mention("+8613800000000"), Ok(Mention::Mobile("13800000000".into())));
        assert_eq!(mention("+852-91234567"), Ok(Mention::Mobile("+852-91234567".into())));
        assert_eq!(mention("userid:manager7"), Ok(Mention::UserId("manager7".into())));
        assert!(mention("bob").is_err());
        assert!(mention("1+2345678").is_err());
        assert!(mention("userid:").is_err());
    }

    #[test]
    fn build_signed_text_with_mention() {
        let acc = format!(r#"{{"webhook":"{HOOK}","secret":"SECtest"}}"#);
        let mut d = delivery("d1", "+8613800000000", "disk full");
        d.subject = Some("Alert".into());
        let out = DingtalkRobot::build(ctx(), &acc, vec![d]).unwrap();
        assert_eq!(out.len(), 1);
        let h = http_req(&out[0]);
        assert_eq!(h.method, "POST");
        assert_eq!(
            h.url,
            "https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1700000000000&sign=aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"
        );
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(
            body,
            json::json!({"msgtype":"text","text":{"content":"Alert\ndisk full @13800000000"},
                         "at":{"atMobiles":["13800000000"],"atUserIds":[],"isAtAll":false}})
        );
    }

    #[test]
    fn build_markdown_unsigned() {
        let acc = format!(r#"{{"webhook":"{HOOK}","msgtype":"markdown"}}"#);
        let out = DingtalkRobot::build(ctx(), &acc, vec![delivery("d1", "@all", "## Deploy done\n- ok")]).unwrap();
        let h = http_req(&out[0]);
        assert_eq!(h.url, "https://oapi.dingtalk.com/robot/send?access_token=abc123");
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(body["markdown"], json::json!({"title":"Deploy done","text":"## Deploy done\n- ok"}));
        assert_eq!(body["at"]["isAtAll"], true);
        let out = DingtalkRobot::build(ctx(), &acc, vec![delivery("d1", "userid:u1", "x")]).unwrap();
        let body: json::Value = json::from_slice(&http_req(&out[0]).body).unwrap();
        assert_eq!(body["markdown"]["text"], "x\n@u1");
        assert_eq!(body["at"]["atUserIds"], json::json!(["u1"]));
    }

    #[test]
    fn build_rejects_what_dingtalk_would_refuse() {
        let acc = format!(r#"{{"webhook":"{HOOK}"}}"#);
        let long = "字".repeat(MAX_CONTENT_BYTES / 3 + 1);
        match DingtalkRobot::build(ctx(), &acc, vec![delivery("d1", "group", &long)]) {
            Err(PluginError::InvalidDelivery(m)) => assert!(m.contains("20000"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(DingtalkRobot::build(ctx(), &acc, vec![delivery("d1", "nobody", "x")]), Err(PluginError::InvalidDelivery(_))));
        // In a larger batch the bad one is left out, the good one still goes.
        let out = DingtalkRobot::build(ctx(), &acc, vec![delivery("a", "group", "ok"), delivery("b", "group", " ")]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].deliveries, vec!["a".to_string()]);
        assert!(matches!(DingtalkRobot::build(ctx(), "{}", vec![]), Err(PluginError::BadConfig(_))));
    }

    #[test]
    fn interpret_errcodes() {
        let ids = vec!["d1".to_string()];
        let kind = |body: &str| DingtalkRobot::interpret(ctx(), "{}", ids.clone(), answer(200, body))[0].clone();
        assert_eq!(kind(r#"{"errcode":0,"errmsg":"ok"}"#).kind, OutcomeKind::Sent);
        let o = kind(r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#);
        assert_eq!((o.kind, o.retry_after_ms), (OutcomeKind::Throttled, Some(THROTTLE_RETRY_AFTER_MS)));
        let o = kind(r#"{"errcode":310000,"errmsg":"sign not match"}"#);
        assert_eq!(o.kind, OutcomeKind::Failed);
        assert_eq!(o.detail.as_deref(), Some("DingTalk errcode 310000: sign not match"));
        assert_eq!(kind(r#"{"errcode":-1,"errmsg":"系统繁忙"}"#).kind, OutcomeKind::Retry);
        assert_eq!(kind(r#"{"errcode":300005,"errmsg":"token is not exist"}"#).kind, OutcomeKind::Failed);
        let o = kind(r#"{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"u"}"#);
        assert_eq!((o.kind, o.retry_after_ms), (OutcomeKind::Throttled, Some(300_000)));
        assert_eq!(kind("<html>").kind, OutcomeKind::Failed);
        let v = DingtalkRobot::interpret(ctx(), "{}", ids.clone(), answer(502, ""));
        assert_eq!(v[0].kind, OutcomeKind::Retry);
        let v = DingtalkRobot::interpret(ctx(), "{}", ids, answer(429, ""));
        assert_eq!(v[0].kind, OutcomeKind::Throttled);
    }
}
