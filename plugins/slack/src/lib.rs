//! Herald `slack` channel plugin: Slack incoming webhooks.
//!
//! # Provider API
//!
//! `POST https://hooks.slack.com/services/T.../B.../...` with a JSON body
//! `{"text": "..."}`, optionally with `blocks` (Block Kit; `text` is then the
//! notification fallback). Slack answers in plain text: HTTP 200 `ok` on
//! success; errors are a status and a short code in the body, e.g. 400
//! `invalid_payload` / `no_text` / `too_many_attachments`, 403
//! `action_prohibited` / `invalid_token`, 404 `channel_not_found` /
//! `no_service` / `no_team`, 410 `channel_is_archived`. Rate limit: about one
//! message per second per webhook, short bursts allowed; over that Slack
//! answers 429 with `Retry-After` (seconds).
//!
//! # Account configuration
//!
//! ```json
//! {"webhook": "https://hooks.slack.com/services/T000/B000/XXXX", "blocks": false}
//! ```
//!
//! - `webhook` (required, secret): the incoming webhook URL.
//! - `blocks` (optional, default false): also send the text as `section`
//!   blocks with `mrkdwn`, one per 3000 characters (Slack's limit for a
//!   section's text), at most 50 blocks.
//!
//! The text is sent as Slack `mrkdwn`; the subject, when present, is a bold
//! first line. Slack truncates `text` longer than 40,000 characters.
//!
//! # Recipients
//!
//! The webhook posts to its channel; the recipient says whom to mention:
//! `userid:<U...>` (`<@U...>`), `@all` (`<!channel>`), `@here` (`<!here>`), or
//! `group` for no mention.
//!
//! The account schema declares this format (`x-herald-recipient`), so the
//! gateway refuses other recipients at ingest (400 naming `recipients[i].to`).
//!
//! # Outcomes
//!
//! One request per delivery (`max-batch` 1). 2xx sent; 429 throttled with
//! `Retry-After`; 408, 425 and 5xx retry; other statuses failed, with Slack's
//! error code in the detail.

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outbound, outcome};
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct Slack;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const WEBHOOK_PREFIX: &str = "https://hooks.slack.com/services/";
/// Longest text of one section block.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Most blocks in one message.
pub const MAX_BLOCKS: usize = 50;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald Slack incoming webhook account",
  "x-herald-zh": {"title": "Slack 传入 Webhook 账号"},
  "type": "object",
  "x-herald-recipient": {"pattern": "(?i:group|@all|@channel|@here)|userid:[A-Za-z0-9]+",
                         "description": "userid:<member ID> to mention (e.g. userid:U024BE7LH), @all or @channel, @here, or group for no mention"},
  "required": ["webhook"],
  "additionalProperties": false,
  "properties": {
    "webhook": {"type": "string", "pattern": "^https://hooks\\.slack\\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+$",
                "title": "Webhook URL", "description": "The incoming webhook URL.",
                "x-herald-zh": {"title": "Webhook 地址", "description": "Slack 传入 Webhook（Incoming Webhook）地址。"}},
    "blocks": {"type": "boolean", "default": false, "x-herald-advanced": true, "title": "Blocks", "description": "Also send the text as mrkdwn section blocks.",
               "x-herald-zh": {"title": "使用 Blocks", "description": "同时以 mrkdwn section blocks 发送正文。"}}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    webhook: String,
    #[serde(default)]
    blocks: bool,
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        let path =
            a.webhook.strip_prefix(WEBHOOK_PREFIX).ok_or_else(|| PluginError::BadConfig(format!("webhook: must start with {WEBHOOK_PREFIX}")))?;
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric())) {
            return Err(PluginError::BadConfig("webhook: must look like https://hooks.slack.com/services/T.../B.../...".into()));
        }
        Ok(a)
    }
}

fn mention(recipient: &str) -> Result<Option<String>, String> {
    let r = recipient.trim();
    if r.eq_ignore_ascii_case("group") {
        return Ok(None);
    }
    if r.eq_ignore_ascii_case("@all") || r.eq_ignore_ascii_case("@channel") {
        return Ok(Some("<!channel>".into()));
    }
    if r.eq_ignore_ascii_case("@here") {
        return Ok(Some("<!here>".into()));
    }
    if let Some(id) = r.strip_prefix("userid:") {
        let id = id.trim();
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(Some(format!("<@{id}>")));
        }
    }
    Err(format!("{recipient:?} is not userid:<U...>, @all, @here or group"))
}

/// Splits `text` into pieces of at most `max` characters, preferring line breaks.
fn chunks(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let cut = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let split = rest[..cut].rfind('\n').filter(|&i| i > 0).map_or(cut, |i| i + 1);
        out.push(rest[..split].to_string());
        rest = &rest[split..];
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

fn body(a: &Account, d: &Delivery) -> Result<json::Value, String> {
    let mut text = match d.subject.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => format!("*{s}*\n{}", d.text),
        None => d.text.clone(),
    };
    if text.trim().is_empty() {
        return Err("the text is empty".into());
    }
    if let Some(m) = mention(&d.recipient)? {
        text = format!("{m} {text}");
    }
    let mut value = json::json!({"text": text});
    if a.blocks {
        let blocks: Vec<json::Value> =
            chunks(&text, MAX_SECTION_CHARS).into_iter().map(|c| json::json!({"type": "section", "text": {"type": "mrkdwn", "text": c}})).collect();
        if blocks.len() > MAX_BLOCKS {
            return Err(format!("the text needs {} blocks of {MAX_SECTION_CHARS} characters; Slack allows {MAX_BLOCKS}", blocks.len()));
        }
        value["blocks"] = blocks.into();
    }
    Ok(value)
}

impl Plugin for Slack {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "slack".into(),
            version: VERSION.into(),
            channel: "im".into(),
            formats: vec![ContentFormat::Markdown, ContentFormat::Text],
            max_batch: 1,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["webhook".into()],
            hosts: vec!["hooks.slack.com".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(_ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let a = Account::parse(account)?;
        outbound::one_per_delivery(&batch, |d| {
            let body = body(&a, d).map_err(PluginError::InvalidDelivery)?;
            http::post_json(&a.webhook, &[], &body)
        })
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        outcome::http_only(&deliveries, response, |resp| outcome::from_http_status(&deliveries, resp, ctx.now_ms))
    }
}

export_plugin!(Slack);

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str = "https://hooks.slack.com/services/T0001/B0002/XXXXyyyyZZZZ";

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_000, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(to: &str, text: &str) -> Delivery {
        Delivery { id: "d1".into(), recipient: to.into(), subject: None, text: text.into(), html: None, metadata: vec![] }
    }

    fn body_of(acc: &str, d: Delivery) -> json::Value {
        let out = Slack::build(ctx(), acc, vec![d]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        assert_eq!(h.url, HOOK);
        json::from_slice(&h.body).unwrap()
    }

    #[test]
    fn validate() {
        assert!(Slack::validate_account(&format!(r#"{{"webhook":"{HOOK}","blocks":true}}"#)).is_ok());
        for hook in [
            "https://hooks.slack.com/services/T0001/B0002",
            "https://hooks.slack.com/services/T0001/B0002/x/y",
            "https://hooks.slack.com/triggers/T0001/1/x",
            "https://evil.test/services/T/B/X",
            "https://hooks.slack.com/services/T0001/B0002/X?y=1",
        ] {
            assert!(matches!(Slack::validate_account(&format!(r#"{{"webhook":"{hook}"}}"#)), Err(PluginError::BadConfig(_))), "{hook}");
        }
    }

    #[test]
    fn text_and_mentions() {
        let acc = format!(r#"{{"webhook":"{HOOK}"}}"#);
        let mut d = delivery("userid:U024BE7LH", "deploy *done*");
        d.subject = Some("Deploy".into());
        assert_eq!(body_of(&acc, d), json::json!({"text":"<@U024BE7LH> *Deploy*\ndeploy *done*"}));
        assert_eq!(body_of(&acc, delivery("@all", "x")), json::json!({"text":"<!channel> x"}));
        assert_eq!(body_of(&acc, delivery("group", "x")), json::json!({"text":"x"}));
        assert!(matches!(Slack::build(ctx(), &acc, vec![delivery("bob", "x")]), Err(PluginError::InvalidDelivery(_))));
        assert!(matches!(Slack::build(ctx(), &acc, vec![delivery("group", " ")]), Err(PluginError::InvalidDelivery(_))));
    }

    #[test]
    fn blocks_are_split() {
        let acc = format!(r#"{{"webhook":"{HOOK}","blocks":true}}"#);
        let text = format!("{}\n{}", "a".repeat(2000), "b".repeat(2000));
        let body = body_of(&acc, delivery("group", &text));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["text"]["text"].as_str().unwrap(), format!("{}\n", "a".repeat(2000)));
        assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
        assert_eq!(body["text"].as_str().unwrap(), text);
        let long = "é".repeat(MAX_SECTION_CHARS * 2 + 1);
        let body = body_of(&acc, delivery("group", &long));
        let sizes: Vec<usize> = body["blocks"].as_array().unwrap().iter().map(|b| b["text"]["text"].as_str().unwrap().chars().count()).collect();
        assert_eq!(sizes, [3000, 3000, 1]);
        assert!(matches!(
            Slack::build(ctx(), &acc, vec![delivery("group", &"x".repeat(MAX_SECTION_CHARS * MAX_BLOCKS + 1))]),
            Err(PluginError::InvalidDelivery(_))
        ));
    }

    #[test]
    fn interpret() {
        let one = |status: u16, headers: &[(&str, &str)], body: &str| {
            Slack::interpret(
                ctx(),
                "{}",
                vec!["d1".into()],
                Response::Http(HttpResponse {
                    status,
                    headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    body: body.as_bytes().to_vec(),
                }),
            )
            .remove(0)
        };
        assert_eq!(one(200, &[], "ok").kind, OutcomeKind::Sent);
        let o = one(429, &[("Retry-After", "2")], "");
        assert_eq!((o.kind, o.retry_after_ms), (OutcomeKind::Throttled, Some(2000)));
        let o = one(404, &[], "channel_not_found");
        assert_eq!((o.kind, o.detail.as_deref()), (OutcomeKind::Failed, Some("HTTP 404: channel_not_found")));
        assert_eq!(one(400, &[], "invalid_payload").kind, OutcomeKind::Failed);
        assert_eq!(one(500, &[], "").kind, OutcomeKind::Retry);
    }
}
