//! Herald `twilio-voice` channel plugin: Twilio Programmable Voice,
//! text-to-speech calls.
//!
//! # Provider API
//!
//! `POST https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Calls.json`,
//! form-encoded `To`, `From`, `Twiml` =
//! `<Response><Say>{text}</Say></Response>` (the delivery's text, XML-escaped;
//! `voice`, `language` and `loop` from the account become attributes of
//! `<Say>`), and `StatusCallback` when the account has one. HTTP Basic auth
//! with `AccountSid:AuthToken`; one request per delivery (Twilio places one
//! call per request). Twilio accepts up to 4000 characters of `Twiml`.
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "account_sid": "AC0123456789abcdef0123456789abcdef",
//!   "auth_token": "…",
//!   "from": "+15005550006",
//!   "voice": "Polly.Joanna", "language": "en-US", "loop": 1,
//!   "status_callback": "https://herald.example.com/v1/callbacks/acme/twilio-voice"
//! }
//! ```
//!
//! - `account_sid` (`AC` + 32 hex), `auth_token` (secret), `from` (a Twilio
//!   number or verified caller id, E.164).
//! - `voice`, `language`, `loop` (optional): `<Say>` attributes.
//! - `status_callback` (optional): public URL of this account's Herald
//!   callback endpoint; sent as `StatusCallback` and needed to check
//!   `X-Twilio-Signature`.
//!
//! # Outcomes
//!
//! 2xx → `sent`, provider id = the call `sid` (`CA…`), units 1 (billing unit
//! `minute`: the call has not happened yet when Twilio answers; the status
//! callback of the completed call reports `CallDuration`, and
//! `callback-usage` (contract 1.2) turns it into started minutes, which the
//! host bills beyond the first). 429 / error 20429 → `throttled` (with
//! `Retry-After`); 5xx, 408 → `retry`; every other error → `failed` with
//! `Twilio <code>: <message>` (21211 invalid `To`, 21215 geographic
//! permission, 21210 unverified `From`, 20003 authentication, …).
//!
//! # Call reports (`parse-callback`)
//!
//! Twilio's call status callback (by default sent once, when the call ends):
//! a form `POST` with `CallSid`, `CallStatus`, `CallDuration` (seconds),
//! `AccountSid`, … signed with `X-Twilio-Signature` (checked like
//! twilio-sms; a bad signature is an error and the gateway answers 400).
//! `completed` → `delivered` (detail: the duration); `busy`, `no-answer`,
//! `failed`, `canceled` → `failed`; `queued`, `initiated`, `ringing`,
//! `in-progress` give no receipt. The answer is an empty 204.
//! `callback-usage` reports a `completed` call's started minutes
//! (`CallDuration` 125 → 3), billed by the host beyond the minute billed at
//! send, once per call.
//!
//! # Limits
//!
//! `max-batch` 100 (one call each); Twilio queues calls above the account's
//! calls-per-second limit (1 CPS by default) and answers 429 past its queue.

use herald_plugin_sdk::time::started_minutes;
use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome};
use serde::Deserialize;

#[path = "../../twilio-sms/src/twilio.rs"]
mod twilio;

/// The plugin type exported to the host.
pub struct TwilioVoice;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Twilio voice account",
  "x-herald-zh": {"title": "Twilio 语音账号"},
  "type": "object",
  "required": ["account_sid", "auth_token", "from"],
  "additionalProperties": false,
  "properties": {
    "account_sid": {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$", "title": "Account SID", "description": "The account SID, AC followed by 32 hex digits.",
                    "x-herald-zh": {"title": "Account SID", "description": "账户 SID，AC 开头加 32 位十六进制。"}},
    "auth_token": {"type": "string", "minLength": 1, "title": "Auth Token", "description": "The account's Auth Token.",
                   "x-herald-zh": {"title": "Auth Token", "description": "账户的 Auth Token。"}},
    "from": {"type": "string", "minLength": 1, "title": "From", "description": "Twilio number or verified caller id (E.164).",
             "x-herald-zh": {"title": "主叫号码", "description": "Twilio 号码或已验证的来电显示号码（E.164）。"}},
    "voice": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$", "x-herald-advanced": true, "title": "Voice", "description": "<Say voice=...>, e.g. alice, Polly.Joanna.",
              "x-herald-zh": {"title": "发音人", "description": "<Say voice=...>，例如 alice、Polly.Joanna。"}},
    "language": {"type": "string", "pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", "x-herald-advanced": true, "title": "Language", "description": "<Say language=...>, e.g. en-US, zh-CN.",
                 "x-herald-zh": {"title": "语言", "description": "<Say language=...>，例如 en-US、zh-CN。"}},
    "loop": {"type": "integer", "minimum": 0, "maximum": 1000, "x-herald-advanced": true, "title": "Repeat", "description": "How often the message is repeated (0: until hang-up).",
             "x-herald-zh": {"title": "重复次数", "description": "语音重复播放次数（0 表示直到挂断）。"}},
    "status_callback": {"type": "string", "pattern": "^https?://", "x-herald-advanced": true,
                        "title": "Status callback URL", "description": "Public URL of this account's Herald callback endpoint; also the URL Twilio signs.",
                        "x-herald-zh": {"title": "状态回调地址", "description": "本账号在 Herald 的公网回调地址；也是 Twilio 签名所用的 URL。"}}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    account_sid: String,
    auth_token: String,
    from: String,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default, rename = "loop")]
    loop_: Option<u16>,
    #[serde(default)]
    status_callback: Option<String>,
}

fn bad(field: &str, msg: &str) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

fn attr_ok(s: &str, extra: &[u8]) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        if !twilio::is_sid(&a.account_sid, "AC") {
            return Err(bad("account_sid", "AC followed by 32 hex digits"));
        }
        if a.auth_token.is_empty() {
            return Err(bad("auth_token", "must not be empty"));
        }
        if a.from.trim().is_empty() {
            return Err(bad("from", "must not be empty"));
        }
        if a.voice.as_deref().is_some_and(|v| !attr_ok(v, b"._-")) {
            return Err(bad("voice", "letters, digits, '.', '_' and '-' only"));
        }
        if a.language.as_deref().is_some_and(|v| !attr_ok(v, b"-")) {
            return Err(bad("language", "a language tag such as en-US"));
        }
        if a.loop_.is_some_and(|n| n > 1000) {
            return Err(bad("loop", "0 to 1000"));
        }
        if let Some(u) = &a.status_callback {
            let lower = u.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) || u.chars().any(|c| c.is_whitespace()) {
                return Err(bad("status_callback", "an absolute http(s) URL"));
            }
        }
        Ok(a)
    }
}

/// XML-escape text for an element or attribute, dropping characters XML 1.0
/// does not allow.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The TwiML that speaks `text`.
fn twiml(acc: &Account, text: &str) -> String {
    let mut attrs = String::new();
    if let Some(v) = &acc.voice {
        attrs.push_str(&format!(" voice=\"{}\"", xml_escape(v)));
    }
    if let Some(l) = &acc.language {
        attrs.push_str(&format!(" language=\"{}\"", xml_escape(l)));
    }
    if let Some(n) = acc.loop_ {
        attrs.push_str(&format!(" loop=\"{n}\""));
    }
    format!("<Response><Say{attrs}>{}</Say></Response>", xml_escape(text))
}

impl Plugin for TwilioVoice {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "twilio-voice".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "voice".into(),
            formats: vec![ContentFormat::Voice],
            max_batch: 100,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["auth_token".into()],
            hosts: vec![twilio::HOST.into()],
            billing_unit: "minute".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(_ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let acc = Account::parse(account)?;
        Ok(batch
            .iter()
            .map(|d| {
                let twiml = twiml(&acc, &d.text);
                let mut pairs = vec![("To", d.recipient.trim()), ("From", acc.from.as_str()), ("Twiml", twiml.as_str())];
                if let Some(cb) = &acc.status_callback {
                    pairs.push(("StatusCallback", cb.as_str()));
                }
                let req = twilio::post(&acc.account_sid, &acc.auth_token, "Calls.json", &pairs);
                Outbound::http_one(d.id.clone(), req)
            })
            .collect())
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        let Response::Http(resp) = response else {
            return outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected response"));
        };
        if !(200..300).contains(&resp.status) {
            return outcome::for_all(&deliveries, |id| twilio::error_outcome(id, &resp, ctx.now_ms));
        }
        let sid = json::from_slice::<json::Value>(&resp.body).ok().and_then(|v| v.get("sid").and_then(|s| s.as_str()).map(str::to_string));
        outcome::for_all(&deliveries, |id| {
            let o = outcome::sent(id, "").with_units(1);
            match &sid {
                Some(s) => o.with_provider_id(s.clone()),
                None => o,
            }
        })
    }

    fn parse_callback(_ctx: CallContext, account: &str, request: HttpRequest) -> Result<CallbackReply, PluginError> {
        let receipts = call_status(account, &request)?
            .and_then(|c| {
                let (status, detail) = match c.status.as_str() {
                    "completed" => (ReceiptStatus::Delivered, format!("completed, CallDuration {}s", c.duration.unwrap_or(0))),
                    "busy" | "no-answer" | "failed" | "canceled" => (ReceiptStatus::Failed, c.status.clone()),
                    _ => return None,
                };
                Some(Receipt { delivery_id: None, provider_id: Some(c.sid), status, detail: Some(detail) })
            })
            .into_iter()
            .collect();
        Ok(CallbackReply { receipts, response: twilio::no_content() })
    }

    fn callback_usage(_ctx: CallContext, account: &str, request: HttpRequest) -> Result<Vec<Usage>, PluginError> {
        Ok(call_status(account, &request)?
            .filter(|c| c.status == "completed")
            .map(|c| Usage::for_provider_id(c.sid, started_minutes(c.duration.unwrap_or(0))))
            .into_iter()
            .collect())
    }
}

/// A verified call status callback: `CallSid`, `CallStatus`, `CallDuration`.
struct CallStatus {
    sid: String,
    status: String,
    duration: Option<u32>,
}

/// Check the callback's `X-Twilio-Signature` and read the call's status;
/// `None` when the request names no call.
fn call_status(account: &str, request: &HttpRequest) -> Result<Option<CallStatus>, PluginError> {
    let acc = Account::parse(account)?;
    let params = twilio::verified_params(request, &acc.auth_token, &acc.account_sid, acc.status_callback.as_deref())?;
    let (Some(sid), Some(status)) = (twilio::param(&params, "CallSid"), twilio::param(&params, "CallStatus")) else {
        return Ok(None);
    };
    Ok(Some(CallStatus {
        sid: sid.to_string(),
        status: status.to_string(),
        duration: twilio::param(&params, "CallDuration").and_then(|d| d.parse().ok()),
    }))
}

export_plugin!(TwilioVoice);

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = r#"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"tok","from":"+15005550006","voice":"Polly.Joanna","language":"en-US","status_callback":"https://herald.test/v1/callbacks/t/tv"}"#;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_000, tenant: "t".into(), attempt: 1 }
    }

    #[test]
    fn validate() {
        assert!(TwilioVoice::validate_account(ACCOUNT).is_ok());
        for (acc, field) in [
            (format!(r#"{{"account_sid":"{SID}","auth_token":"t"}}"#), "from"),
            (format!(r#"{{"account_sid":"{SID}","auth_token":"t","from":"+1","voice":"a\" b"}}"#), "voice"),
            (format!(r#"{{"account_sid":"{SID}","auth_token":"t","from":"+1","language":"en US"}}"#), "language"),
            (format!(r#"{{"account_sid":"{SID}","auth_token":"t","from":"+1","loop":1001}}"#), "loop"),
        ] {
            match TwilioVoice::validate_account(&acc) {
                Err(PluginError::BadConfig(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{acc}: {other:?}"),
            }
        }
        let info = TwilioVoice::describe();
        assert_eq!((info.channel.as_str(), info.billing_unit.as_str()), ("voice", "minute"));
        json::from_str::<json::Value>(&info.account_schema).unwrap();
    }

    #[test]
    fn build_twiml_call() {
        let d = Delivery {
            id: "m.0".into(),
            recipient: "+14155550100".into(),
            subject: None,
            text: "Code <1&2> \"ok\" it's\u{1}".into(),
            html: None,
            metadata: vec![],
        };
        let out = TwilioVoice::build(ctx(), ACCOUNT, vec![d]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        assert_eq!(h.url, format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls.json"));
        let form = twilio::form_decode(std::str::from_utf8(&h.body).unwrap());
        assert_eq!(twilio::param(&form, "To"), Some("+14155550100"));
        assert_eq!(twilio::param(&form, "From"), Some("+15005550006"));
        assert_eq!(
            twilio::param(&form, "Twiml"),
            Some("<Response><Say voice=\"Polly.Joanna\" language=\"en-US\">Code &lt;1&amp;2&gt; &quot;ok&quot; it&apos;s</Say></Response>")
        );
        assert_eq!(twilio::param(&form, "StatusCallback"), Some("https://herald.test/v1/callbacks/t/tv"));
    }

    #[test]
    fn interpret_outcomes() {
        let ids = vec!["m.0".to_string()];
        let resp = |status, body: &str| Response::Http(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() });
        let o = &TwilioVoice::interpret(ctx(), ACCOUNT, ids.clone(), resp(201, r#"{"sid":"CAaaa","status":"queued"}"#))[0];
        assert_eq!((o.kind, o.provider_id.as_deref(), o.units), (OutcomeKind::Sent, Some("CAaaa"), 1));
        let o = &TwilioVoice::interpret(ctx(), ACCOUNT, ids.clone(), resp(400, r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#))[0];
        assert_eq!((o.kind, o.detail.as_deref()), (OutcomeKind::Failed, Some("Twilio 21211: Invalid 'To' Phone Number")));
        assert_eq!(TwilioVoice::interpret(ctx(), ACCOUNT, ids, resp(429, "{}"))[0].kind, OutcomeKind::Throttled);
    }

    #[test]
    fn call_status_callbacks() {
        let signed = |body: &str, token: &str| {
            let sig = twilio::signature(token, "https://herald.test/v1/callbacks/t/tv", &twilio::form_decode(body));
            HttpRequest {
                method: "POST".into(),
                url: "/v1/callbacks/t/tv".into(),
                headers: vec![("x-twilio-signature".into(), sig)],
                body: body.as_bytes().to_vec(),
            }
        };
        let r = TwilioVoice::parse_callback(
            ctx(),
            ACCOUNT,
            signed(&format!("CallSid=CAaaa&CallStatus=completed&CallDuration=42&AccountSid={SID}"), "tok"),
        )
        .unwrap();
        assert_eq!((r.receipts[0].status, r.receipts[0].detail.as_deref()), (ReceiptStatus::Delivered, Some("completed, CallDuration 42s")));
        let r = TwilioVoice::parse_callback(ctx(), ACCOUNT, signed("CallSid=CAaaa&CallStatus=no-answer", "tok")).unwrap();
        assert_eq!(r.receipts[0].status, ReceiptStatus::Failed);
        assert!(TwilioVoice::parse_callback(ctx(), ACCOUNT, signed("CallSid=CAaaa&CallStatus=ringing", "tok")).unwrap().receipts.is_empty());
        assert!(TwilioVoice::parse_callback(ctx(), ACCOUNT, signed("CallSid=CAaaa&CallStatus=completed", "bad")).is_err());
        // Usage: started minutes of completed calls only, signature checked.
        let usage = |body: &str, token: &str| TwilioVoice::callback_usage(ctx(), ACCOUNT, signed(body, token));
        assert_eq!(usage("CallSid=CAaaa&CallStatus=completed&CallDuration=125", "tok").unwrap(), [Usage::for_provider_id("CAaaa", 3)]);
        assert!(usage("CallSid=CAaaa&CallStatus=no-answer&CallDuration=0", "tok").unwrap().is_empty());
        assert!(usage("CallSid=CAaaa&CallStatus=completed&CallDuration=125", "bad").is_err());
    }
}
