//! Herald `twilio-sms` channel plugin: Twilio Programmable Messaging.
//!
//! # Provider API
//!
//! `POST https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! form-encoded `To`, `From` or `MessagingServiceSid`, `Body`, and
//! `StatusCallback` when the account has one; HTTP Basic auth with
//! `AccountSid:AuthToken`. Twilio has no batch send: one request per
//! delivery. `Body` is the delivery's text (Twilio takes up to 1600
//! characters; longer bodies get error 21617).
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "account_sid": "AC0123456789abcdef0123456789abcdef",
//!   "auth_token": "…",
//!   "from": "+15005550006",
//!   "status_callback": "https://herald.example.com/v1/callbacks/acme/twilio"
//! }
//! ```
//!
//! - `account_sid` (`AC` + 32 hex), `auth_token` (secret).
//! - exactly one of `from` (an E.164 number, short code or alphanumeric
//!   sender id) and `messaging_service_sid` (`MG…`).
//! - `status_callback` (optional): the public URL of this account's Herald
//!   callback endpoint (`/v1/callbacks/<tenant>/<account>`). It is sent as
//!   `StatusCallback`, and it is the URL Twilio signs: `parse-callback` needs
//!   it to check `X-Twilio-Signature`.
//!
//! # Outcomes
//!
//! - 2xx → `sent`, provider id = `sid` (`SM…`), units = `num_segments`. For
//!   messages sent through a Messaging Service Twilio answers
//!   `num_segments: "0"` (no sender chosen yet); the segments are then
//!   counted from the `body` Twilio echoes, with the GSM 03.38 rules
//!   (`sms::segments`: 160/153 GSM-7, 70/67 UCS-2).
//! - 429 or error 20429 → `throttled`, with `Retry-After`.
//! - 5xx, 408 → `retry`.
//! - every other error → `failed` with `Twilio <code>: <message>`: 21211
//!   (invalid `To`), 21610 (recipient unsubscribed with STOP), 21614 (not a
//!   mobile number), 21408 (region not enabled), 20003 (authentication), ….
//!
//! # Delivery reports (`parse-callback`)
//!
//! Twilio's status callback: a form `POST` with `MessageSid`,
//! `MessageStatus`, `ErrorCode`, `AccountSid`, … signed with
//! `X-Twilio-Signature` = base64 HMAC-SHA1 (key: Auth Token) of the
//! `status_callback` URL followed by the sorted parameters. A missing or wrong
//! signature, or another account's `AccountSid`, is an error (the gateway
//! answers 400). `delivered` → `delivered`; `undelivered`, `failed` →
//! `failed` with the `ErrorCode`; `read` → `read`; intermediate states
//! (`queued`, `sending`, `sent`, `accepted`, `scheduled`) give no receipt.
//! The answer is an empty 204.
//!
//! # Limits
//!
//! `max-batch` 100 (one request each). Twilio queues sends per sender
//! (about 1 message/s for a long code) and answers 429 above the account's
//! concurrency limit.

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome, sms};
use serde::Deserialize;

mod twilio;

/// The plugin type exported to the host.
pub struct TwilioSms;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Twilio SMS account",
  "x-herald-zh": {"title": "Twilio 短信账号"},
  "type": "object",
  "required": ["account_sid", "auth_token"],
  "oneOf": [{"required": ["from"]}, {"required": ["messaging_service_sid"]}],
  "additionalProperties": false,
  "properties": {
    "account_sid": {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$", "title": "Account SID", "description": "The account SID, AC followed by 32 hex digits.",
                    "x-herald-zh": {"title": "Account SID", "description": "账户 SID，AC 开头加 32 位十六进制。"}},
    "auth_token": {"type": "string", "minLength": 1, "title": "Auth Token", "description": "The account's Auth Token.",
                   "x-herald-zh": {"title": "Auth Token", "description": "账户的 Auth Token。"}},
    "from": {"type": "string", "minLength": 1, "title": "From", "description": "E.164 number, short code or alphanumeric sender id.",
             "x-herald-zh": {"title": "发送号码", "description": "E.164 号码、短代码或字母数字发送方 ID。"}},
    "messaging_service_sid": {"type": "string", "pattern": "^MG[0-9a-fA-F]{32}$", "title": "Messaging Service SID", "description": "Send through a Messaging Service instead of a From number.",
                              "x-herald-zh": {"title": "Messaging Service SID", "description": "通过 Messaging Service 发送，代替发送号码。"}},
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
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    messaging_service_sid: Option<String>,
    #[serde(default)]
    status_callback: Option<String>,
}

fn bad(field: &str, msg: &str) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
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
        match (&a.from, &a.messaging_service_sid) {
            (Some(f), None) if !f.trim().is_empty() => {}
            (None, Some(m)) if twilio::is_sid(m, "MG") => {}
            (None, Some(_)) => {
                return Err(bad("messaging_service_sid", "MG followed by 32 hex digits"));
            }
            (Some(_), None) => return Err(bad("from", "must not be empty")),
            _ => {
                return Err(bad("from", "set exactly one of from and messaging_service_sid"));
            }
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

/// The segment count of a successful answer: `num_segments` when Twilio
/// filled it in, otherwise counted from the echoed `body`.
fn units(v: &json::Value) -> u32 {
    let reported = match v.get("num_segments") {
        Some(json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(json::Value::Number(n)) => n.as_u64().unwrap_or(0) as u32,
        _ => 0,
    };
    if reported > 0 {
        return reported;
    }
    v.get("body").and_then(|b| b.as_str()).map(sms::segments).unwrap_or(1)
}

impl Plugin for TwilioSms {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "twilio-sms".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "sms".into(),
            formats: vec![ContentFormat::Text],
            max_batch: 100,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["auth_token".into()],
            hosts: vec![twilio::HOST.into()],
            billing_unit: "segment".into(),
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
                let mut pairs = vec![("To", d.recipient.trim())];
                match (&acc.from, &acc.messaging_service_sid) {
                    (Some(from), _) => pairs.push(("From", from.as_str())),
                    (None, Some(mg)) => pairs.push(("MessagingServiceSid", mg.as_str())),
                    (None, None) => {}
                }
                pairs.push(("Body", d.text.as_str()));
                if let Some(cb) = &acc.status_callback {
                    pairs.push(("StatusCallback", cb.as_str()));
                }
                let req = twilio::post(&acc.account_sid, &acc.auth_token, "Messages.json", &pairs);
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
        let v: json::Value = json::from_slice(&resp.body).unwrap_or(json::Value::Null);
        let sid = v.get("sid").and_then(|s| s.as_str()).map(str::to_string);
        let units = units(&v);
        outcome::for_all(&deliveries, |id| {
            let o = outcome::sent(id, "").with_units(units);
            match &sid {
                Some(s) => o.with_provider_id(s.clone()),
                None => o,
            }
        })
    }

    fn parse_callback(_ctx: CallContext, account: &str, request: HttpRequest) -> Result<CallbackReply, PluginError> {
        let acc = Account::parse(account)?;
        let params = twilio::verified_params(&request, &acc.auth_token, &acc.account_sid, acc.status_callback.as_deref())?;
        let sid = twilio::param(&params, "MessageSid").or_else(|| twilio::param(&params, "SmsSid"));
        let status = twilio::param(&params, "MessageStatus").or_else(|| twilio::param(&params, "SmsStatus"));
        let mut receipts = Vec::new();
        if let (Some(sid), Some(status)) = (sid, status) {
            let error = twilio::param(&params, "ErrorCode").filter(|c| !c.is_empty());
            let receipt =
                |s: ReceiptStatus, detail: Option<String>| Receipt { delivery_id: None, provider_id: Some(sid.to_string()), status: s, detail };
            match status {
                "delivered" => receipts.push(receipt(ReceiptStatus::Delivered, None)),
                "read" => receipts.push(receipt(ReceiptStatus::Read, None)),
                "undelivered" | "failed" => receipts.push(receipt(
                    ReceiptStatus::Failed,
                    Some(match error {
                        Some(code) => format!("{status}: Twilio error {code}"),
                        None => status.to_string(),
                    }),
                )),
                _ => {}
            }
        }
        Ok(CallbackReply { receipts, response: twilio::no_content() })
    }
}

export_plugin!(TwilioSms);

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = r#"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"tok","from":"+15005550006","status_callback":"https://herald.test/v1/callbacks/t/tw"}"#;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_000, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(id: &str, to: &str, text: &str) -> Delivery {
        Delivery { id: id.into(), recipient: to.into(), subject: None, text: text.into(), html: None, metadata: vec![] }
    }

    #[test]
    fn validate() {
        assert!(TwilioSms::validate_account(ACCOUNT).is_ok());
        assert!(
            TwilioSms::validate_account(&format!(
                r#"{{"account_sid":"{SID}","auth_token":"t","messaging_service_sid":"MG0123456789abcdef0123456789abcdef"}}"#
            ))
            .is_ok()
        );
        for (acc, field) in [
            (r#"{"account_sid":"AC1","auth_token":"t","from":"+1"}"#.to_string(), "account_sid"),
            (format!(r#"{{"account_sid":"{SID}","auth_token":"t"}}"#), "from"),
            (
                format!(r#"{{"account_sid":"{SID}","auth_token":"t","from":"+1","messaging_service_sid":"MG0123456789abcdef0123456789abcdef"}}"#),
                "exactly one",
            ),
            (format!(r#"{{"account_sid":"{SID}","auth_token":"t","messaging_service_sid":"MG1"}}"#), "messaging_service_sid"),
            (format!(r#"{{"account_sid":"{SID}","auth_token":"","from":"+1"}}"#), "auth_token"),
            (format!(r#"{{"account_sid":"{SID}","auth_token":"t","from":"+1","status_callback":"ftp://x"}}"#), "status_callback"),
        ] {
            match TwilioSms::validate_account(&acc) {
                Err(PluginError::BadConfig(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{acc}: {other:?}"),
            }
        }
        json::from_str::<json::Value>(&TwilioSms::describe().account_schema).unwrap();
    }

    #[test]
    fn build_one_form_post_per_delivery() {
        let out =
            TwilioSms::build(ctx(), ACCOUNT, vec![delivery("m.0", "+14155550100", "Hi & bye"), delivery("m.1", "+8613800138000", "你好")]).unwrap();
        assert_eq!(out.len(), 2);
        let Request::Http(h) = &out[0].request else { panic!() };
        assert_eq!(h.url, format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"));
        assert!(h.headers.contains(&("Authorization".to_string(), twilio::basic_auth(SID, "tok"))));
        assert!(h.headers.contains(&("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())));
        let form = twilio::form_decode(std::str::from_utf8(&h.body).unwrap());
        assert_eq!(
            form,
            vec![
                ("To".to_string(), "+14155550100".to_string()),
                ("From".to_string(), "+15005550006".to_string()),
                ("Body".to_string(), "Hi & bye".to_string()),
                ("StatusCallback".to_string(), "https://herald.test/v1/callbacks/t/tw".to_string()),
            ]
        );
        let mg = format!(r#"{{"account_sid":"{SID}","auth_token":"t","messaging_service_sid":"MG0123456789abcdef0123456789abcdef"}}"#);
        let out = TwilioSms::build(ctx(), &mg, vec![delivery("m.0", "+14155550100", "x")]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        let form = twilio::form_decode(std::str::from_utf8(&h.body).unwrap());
        assert_eq!(twilio::param(&form, "MessagingServiceSid"), Some("MG0123456789abcdef0123456789abcdef"));
        assert_eq!(twilio::param(&form, "From"), None);
        assert_eq!(twilio::param(&form, "StatusCallback"), None);
    }

    fn resp(status: u16, body: &str) -> Response {
        Response::Http(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() })
    }

    #[test]
    fn interpret_outcomes() {
        let ids = vec!["m.0".to_string()];
        let o =
            &TwilioSms::interpret(ctx(), ACCOUNT, ids.clone(), resp(201, r#"{"sid":"SMaaa","status":"queued","num_segments":"3","body":"x"}"#))[0];
        assert_eq!((o.kind, o.provider_id.as_deref(), o.units), (OutcomeKind::Sent, Some("SMaaa"), 3));
        // Messaging Service: num_segments "0", counted from the echoed body (100 CJK characters: 2 UCS-2 parts).
        let body = format!(r#"{{"sid":"SMbbb","status":"accepted","num_segments":"0","body":"{}"}}"#, "中".repeat(100));
        assert_eq!(TwilioSms::interpret(ctx(), ACCOUNT, ids.clone(), resp(201, &body))[0].units, 2);
        let o = &TwilioSms::interpret(
            ctx(),
            ACCOUNT,
            ids.clone(),
            resp(400, r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}"#),
        )[0];
        assert_eq!((o.kind, o.detail.as_deref()), (OutcomeKind::Failed, Some("Twilio 21610: Attempt to send to unsubscribed recipient")));
        assert_eq!(
            TwilioSms::interpret(ctx(), ACCOUNT, ids.clone(), resp(429, r#"{"code":20429,"message":"Too Many Requests"}"#))[0].kind,
            OutcomeKind::Throttled
        );
        assert_eq!(TwilioSms::interpret(ctx(), ACCOUNT, ids, resp(500, ""))[0].kind, OutcomeKind::Retry);
    }

    fn signed(body: &str, token: &str) -> HttpRequest {
        let sig = twilio::signature(token, "https://herald.test/v1/callbacks/t/tw", &twilio::form_decode(body));
        HttpRequest {
            method: "POST".into(),
            url: "/v1/callbacks/t/tw".into(),
            headers: vec![("X-Twilio-Signature".into(), sig)],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn status_callbacks() {
        let cb = |body: &str| TwilioSms::parse_callback(ctx(), ACCOUNT, signed(body, "tok"));
        let r = cb(&format!("MessageSid=SMaaa&MessageStatus=delivered&AccountSid={SID}&To=%2B1415")).unwrap();
        assert_eq!(r.receipts.len(), 1);
        assert_eq!((r.receipts[0].provider_id.as_deref(), r.receipts[0].status), (Some("SMaaa"), ReceiptStatus::Delivered));
        assert_eq!(r.response.status, 204);
        let r = cb(&format!("MessageSid=SMaaa&MessageStatus=undelivered&ErrorCode=30003&AccountSid={SID}")).unwrap();
        assert_eq!((r.receipts[0].status, r.receipts[0].detail.as_deref()), (ReceiptStatus::Failed, Some("undelivered: Twilio error 30003")));
        assert!(cb(&format!("MessageSid=SMaaa&MessageStatus=sent&AccountSid={SID}")).unwrap().receipts.is_empty());
        assert_eq!(cb("MessageSid=SMaaa&MessageStatus=read").unwrap().receipts[0].status, ReceiptStatus::Read);
        assert!(TwilioSms::parse_callback(ctx(), ACCOUNT, signed("MessageSid=SMaaa&MessageStatus=delivered", "forged")).is_err());
    }
}
