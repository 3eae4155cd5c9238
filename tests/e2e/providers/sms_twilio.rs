//! twilio-sms against a fake Twilio REST API (2010-04-01) that checks what
//! Twilio checks: HTTP Basic auth (`AccountSid:AuthToken`, error 20003), the
//! account in the path, form parameters (`To` E.164 → 21211, unsubscribed →
//! 21610, a landline → 21614, `From` owned → 21606, `Body` ≤ 1600 → 21617,
//! …; calls: `To` outside the voice geographic permissions → 21215), and a
//! request-rate limit (429, error 20429). It answers like Twilio (201 with `sid`,
//! `num_segments`, `"0"` for Messaging Service sends) and sends status
//! callbacks signed with `X-Twilio-Signature`, like Twilio does, through a
//! public URL (as behind a reverse proxy) to the gateway. The same fake serves
//! `Calls.json` for the twilio-voice tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::sms_support::*;
use crate::harness::{API_KEY, Gateway, Resp, tenant};

pub const HOST: &str = "api.twilio.com";
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "twilio-auth-token-0123";
pub const FROM: &str = "+15005550006";
pub const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
pub const UNSUBSCRIBED: &str = "+14155550199";
/// A well-formed number Twilio's carrier lookup knows as a landline.
pub const LANDLINE: &str = "+12125550177";
/// Voice geographic permissions: the account may call these country codes only.
pub const VOICE_GEO_PERMISSIONS: &[&str] = &["+1"];
/// Where Twilio posts callbacks: the gateway's public name (a proxy forwards it).
pub const PUBLIC: &str = "https://herald.example.test";

/// A message or call the fake created.
#[derive(Clone, Debug)]
pub struct Created {
    pub sid: String,
    pub params: BTreeMap<String, String>,
    pub num_segments: u32,
}

#[derive(Default)]
struct Inner {
    window_start: Option<Instant>,
    window_count: usize,
    created: Vec<Created>,
    /// Twilio error codes answered, in order.
    errors: Vec<u64>,
    next: u64,
}

struct Shared {
    rate: Mutex<Option<(usize, Duration)>>,
    inner: Mutex<Inner>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    shared: Arc<Shared>,
    pub url: String,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared { rate: Mutex::new(None), inner: Mutex::new(Inner { next: 1, ..Default::default() }) });
        let url = serve(axum::Router::new().fallback(handle).with_state(shared.clone())).await;
        Self { shared, url }
    }

    /// At most `n` requests per `window`, then 429 / 20429.
    pub fn limit_rate(&self, n: usize, window: Duration) {
        *self.shared.rate.lock().unwrap() = Some((n, window));
    }

    pub fn created(&self) -> Vec<Created> {
        self.shared.inner.lock().unwrap().created.clone()
    }

    pub fn errors(&self) -> Vec<u64> {
        self.shared.inner.lock().unwrap().errors.clone()
    }

    /// Post a status callback for `sid` to the gateway, as Twilio would: to the
    /// resource's `StatusCallback`, signed with `token` (the Auth Token, or a
    /// wrong one to forge).
    pub async fn callback(&self, gw: &Gateway, sid: &str, params: &[(&str, &str)], token: &str) -> Resp {
        let created = self.created().into_iter().find(|c| c.sid == sid).expect("known sid");
        let url = created.params.get("StatusCallback").expect("a StatusCallback was given").clone();
        let mut all: Vec<(String, String)> = vec![
            ("AccountSid".into(), ACCOUNT_SID.into()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("From".into(), created.params.get("From").cloned().unwrap_or_default()),
            ("To".into(), created.params["To"].clone()),
        ];
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut sorted = all.clone();
        sorted.sort();
        let data: String = std::iter::once(url.clone()).chain(sorted.iter().map(|(k, v)| format!("{k}{v}"))).collect();
        let signature = base64(&hmac_sha1(token.as_bytes(), data.as_bytes()));
        let body = all.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&");
        let path = url.strip_prefix(PUBLIC).expect("callback under the public URL");
        gw.post(path, None, &[("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", &signature)], body).await
    }
}

fn twilio_error(status: u16, code: u64, message: &str) -> (u16, Value) {
    (status, json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}))
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (status, value) = check(&s, &method, uri.path(), &headers, &body);
    if let Some(code) = value.get("code").and_then(Value::as_u64) {
        s.inner.lock().unwrap().errors.push(code);
    }
    let mut resp = (StatusCode::from_u16(status).unwrap(), value.to_string()).into_response();
    resp.headers_mut().insert("content-type", "application/json; charset=utf-8".parse().unwrap());
    resp
}

fn e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| (8..=15).contains(&d.len()) && !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit()))
}

fn check(s: &Shared, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (sid, resource) = match parts.as_slice() {
        ["2010-04-01", "Accounts", sid, resource @ ("Messages.json" | "Calls.json")] => (*sid, *resource),
        _ => {
            return twilio_error(404, 20404, &format!("The requested resource {path} was not found"));
        }
    };
    // Basic auth: the username must be the account in the path, the password its Auth Token.
    let creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(base64_decode)
        .and_then(|b| String::from_utf8(b).ok());
    let authed = creds
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(user, pass)| user == sid && sid == ACCOUNT_SID && same(pass.as_bytes(), AUTH_TOKEN.as_bytes()));
    if !authed {
        return twilio_error(401, 20003, "Authenticate");
    }
    if method != Method::POST {
        return twilio_error(405, 20004, "Method not allowed");
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
        return twilio_error(400, 20001, "Content-Type must be application/x-www-form-urlencoded");
    }
    if let Some((n, window)) = *s.rate.lock().unwrap() {
        let mut inner = s.inner.lock().unwrap();
        let now = Instant::now();
        if inner.window_start.is_none_or(|t| now.duration_since(t) >= window) {
            inner.window_start = Some(now);
            inner.window_count = 0;
        }
        inner.window_count += 1;
        if inner.window_count > n {
            return twilio_error(429, 20429, "Too Many Requests");
        }
    }
    let params: BTreeMap<String, String> = form_decode(std::str::from_utf8(body).unwrap_or("")).into_iter().collect();
    if params.get("StatusCallback").is_some_and(|cb| !(cb.starts_with("https://") || cb.starts_with("http://"))) {
        return twilio_error(400, 21609, "Invalid StatusCallback url");
    }
    match resource {
        "Messages.json" => create_message(s, params),
        _ => create_call(s, params),
    }
}

fn next_sid(s: &Shared, prefix: &str) -> String {
    let mut inner = s.inner.lock().unwrap();
    inner.next += 1;
    format!("{prefix}{:032x}", inner.next)
}

fn create_message(s: &Shared, params: BTreeMap<String, String>) -> (u16, Value) {
    let Some(to) = params.get("To") else {
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    if !e164(to) {
        return twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    let via_service = match (params.get("From"), params.get("MessagingServiceSid")) {
        (Some(from), _) if from != FROM => {
            return twilio_error(
                400,
                21606,
                &format!("The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your account."),
            );
        }
        (Some(_), _) => false,
        (None, Some(mg)) if mg == SERVICE_SID => true,
        (None, Some(mg)) => {
            return twilio_error(400, 21701, &format!("The Messaging Service Sid {mg} is invalid."));
        }
        (None, None) => return twilio_error(400, 21603, "A 'From' phone number is required."),
    };
    let Some(body) = params.get("Body").filter(|b| !b.is_empty()) else {
        return twilio_error(400, 21602, "Message body is required.");
    };
    if body.chars().count() > 1600 {
        return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    }
    if to == UNSUBSCRIBED {
        return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient");
    }
    if to == LANDLINE {
        return twilio_error(400, 21614, &format!("The 'To' number {to} is not a valid mobile number."));
    }
    let sid = next_sid(s, "SM");
    let segments = gsm_segments(body);
    let created = Created { sid: sid.clone(), params: params.clone(), num_segments: segments };
    s.inner.lock().unwrap().created.push(created);
    // A Messaging Service has not picked a sender yet: num_segments "0", status "accepted".
    let (num_segments, status) = if via_service { ("0".to_string(), "accepted") } else { (segments.to_string(), "queued") };
    (
        201,
        json!({"account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": body, "date_created": "Mon, 01 Jan 2024 00:00:00 +0000",
               "date_sent": null, "date_updated": "Mon, 01 Jan 2024 00:00:00 +0000", "direction": "outbound-api", "error_code": null,
               "error_message": null, "from": params.get("From"), "messaging_service_sid": params.get("MessagingServiceSid"),
               "num_media": "0", "num_segments": num_segments, "price": null, "price_unit": "USD", "sid": sid, "status": status,
               "to": to, "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json")}),
    )
}

/// The text of `<Response><Say ...>text</Say></Response>`, unescaped, if the
/// TwiML is well formed.
pub fn spoken(twiml: &str) -> Option<String> {
    let inner = twiml.strip_prefix("<Response><Say")?.strip_suffix("</Say></Response>")?;
    let (attrs, text) = inner.split_once('>')?;
    if attrs.contains('<') || text.contains('<') || text.contains('>') {
        return None;
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';')? + i;
        out.push(match &rest[i + 1..end] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => return None,
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn create_call(s: &Shared, params: BTreeMap<String, String>) -> (u16, Value) {
    let Some(to) = params.get("To") else {
        return twilio_error(400, 21201, "No 'To' number is specified");
    };
    if !e164(to) {
        return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    if !VOICE_GEO_PERMISSIONS.iter().any(|cc| to.starts_with(cc)) {
        return twilio_error(
            400,
            21215,
            &format!(
                "Account not authorized to call {to}. Perhaps you need to enable some international permissions: \
                 https://www.twilio.com/console/voice/calls/geo-permissions/low-risk"
            ),
        );
    }
    let Some(from) = params.get("From") else {
        return twilio_error(400, 21213, "No 'From' number is specified");
    };
    if from != FROM {
        return twilio_error(400, 21210, &format!("The source phone number provided, {from}, is not yet verified for your account."));
    }
    let Some(twiml) = params.get("Twiml").or(params.get("Url")) else {
        return twilio_error(400, 21205, "Url parameter is required.");
    };
    if params.contains_key("Twiml") && spoken(twiml).is_none() {
        return twilio_error(400, 12100, "Document parse failure");
    }
    let sid = next_sid(s, "CA");
    s.inner.lock().unwrap().created.push(Created { sid: sid.clone(), params: params.clone(), num_segments: 0 });
    (
        201,
        json!({"account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "direction": "outbound-api", "duration": null, "from": from,
               "sid": sid, "status": "queued", "to": to, "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json")}),
    )
}

// ---- twilio-sms tests ----------------------------------------------------------

fn accounts() -> String {
    let acc = |name: &str, token: &str, sender: &str| {
        format!(
            "[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"twilio-sms\"\nconfig = {{ account_sid = \"{ACCOUNT_SID}\", auth_token = \"{token}\", \
             {sender}, status_callback = \"{PUBLIC}/v1/callbacks/acme/{name}\" }}\n"
        )
    };
    format!(
        "{}{}{}[[tenants.prices]]\nchannel = \"twilio-sms\"\nunit_minor = 7\n",
        acc("tw", AUTH_TOKEN, &format!("from = \"{FROM}\"")),
        acc("tw-mg", AUTH_TOKEN, &format!("messaging_service_sid = \"{SERVICE_SID}\"")),
        acc("tw-bad-token", "not-the-token", &format!("from = \"{FROM}\""))
    )
}

fn sms(account: &str, text: &str, to: &[&str]) -> Value {
    let recipients: Vec<_> = to.iter().map(|t| json!({"to": t})).collect();
    json!({"channel": "twilio-sms", "account": account, "content": {"text": text}, "recipients": recipients})
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_sms_sends_with_basic_auth_bills_segments_and_checks_callback_signatures() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(HOST, &fake.url)], &tenant("acme", API_KEY, &accounts())));

    // 200 GSM characters: 2 segments (153 per part).
    let text = format!("Order +1 & 50% off? {}", "a".repeat(180));
    // A malformed number never reaches Twilio: the gateway refuses it at ingest.
    refused_at_ingest(&gw, &sms("tw", &text, &["+14155550100", "+1234", UNSUBSCRIBED]), 1).await;
    assert!(fake.created().is_empty() && fake.errors().is_empty());

    // Well-formed numbers Twilio refuses (a landline; an unsubscribed
    // recipient) fail alone, without retries.
    let id = send(&gw, &sms("tw", &text, &["+14155550100", LANDLINE, UNSUBSCRIBED])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent", "failed", "failed"], "{v}");
    assert_eq!(delivery(&v, 1)["detail"], format!("Twilio 21614: The 'To' number {LANDLINE} is not a valid mobile number."));
    assert_eq!(delivery(&v, 1)["attempts"], 1);
    assert_eq!(delivery(&v, 2)["attempts"], 1);
    assert_eq!(delivery(&v, 2)["detail"], "Twilio 21610: Attempt to send to unsubscribed recipient");
    let created = fake.created();
    assert_eq!(created.len(), 1);
    let m = &created[0];
    assert_eq!(m.params["To"], "+14155550100");
    assert_eq!(m.params["From"], FROM);
    assert_eq!(m.params["Body"], text);
    assert_eq!(m.params["StatusCallback"], format!("{PUBLIC}/v1/callbacks/acme/tw"));
    assert_eq!(delivery(&v, 0)["provider_id"], m.sid.as_str());
    let ledger = ledger_for(&gw, &id).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!((ledger[0]["units"].as_u64(), ledger[0]["amount_minor"].as_i64()), (Some(2), Some(14)), "num_segments billed");

    // Through a Messaging Service Twilio answers num_segments "0"; the plugin
    // counts the echoed body: 100 Chinese characters are UCS-2, 2 parts of 67.
    let long = "长".repeat(100);
    let id2 = send(&gw, &sms("tw-mg", &long, &["+8613800138000"])).await;
    let v2 = wait_settled(&gw, &id2).await;
    assert_eq!(statuses(&v2), ["sent"]);
    let mg = fake.created().into_iter().find(|c| c.params.contains_key("MessagingServiceSid")).unwrap();
    assert_eq!(mg.num_segments, 2);
    let ledger = ledger_for(&gw, &id2).await;
    assert_eq!((ledger[0]["units"].as_u64(), ledger[0]["amount_minor"].as_i64()), (Some(2), Some(14)), "{ledger:?}");

    // Status callbacks, signed over the public callback URL.
    let r =
        fake.callback(&gw, &m.sid, &[("MessageSid", &m.sid), ("MessageStatus", "sent"), ("SmsSid", &m.sid), ("SmsStatus", "sent")], AUTH_TOKEN).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let forged =
        fake.callback(&gw, &m.sid, &[("MessageSid", &m.sid), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")], "guessed-token").await;
    assert_eq!(forged.status, 400, "a forged signature is rejected: {}", forged.text());
    let r = fake
        .callback(&gw, &m.sid, &[("MessageSid", &m.sid), ("MessageStatus", "delivered"), ("SmsSid", &m.sid), ("SmsStatus", "delivered")], AUTH_TOKEN)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let v = wait_delivery(&gw, &id, 0, "delivered").await;
    assert_eq!(statuses(&v), ["delivered", "failed", "failed"]);
    let r = fake.callback(&gw, &mg.sid, &[("MessageSid", &mg.sid), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")], AUTH_TOKEN).await;
    assert_eq!(r.status, 204);
    let v2 = wait_delivery(&gw, &id2, 0, "failed").await;
    assert_eq!(delivery(&v2, 0)["detail"], "undelivered: Twilio error 30003");
    // Undelivered is not billed: the debit is refunded once, even if Twilio reports again.
    let again = fake.callback(&gw, &mg.sid, &[("MessageSid", &mg.sid), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")], AUTH_TOKEN).await;
    assert_eq!(again.status, 204);
    let ledger = ledger_for(&gw, &id2).await;
    let kinds: Vec<_> = ledger.iter().map(|e| (e["kind"].as_str().unwrap().to_string(), e["amount_minor"].as_i64().unwrap())).collect();
    assert_eq!(kinds.len(), 2, "{ledger:?}");
    assert!(kinds.contains(&("debit".into(), 14)) && kinds.contains(&("credit".into(), 14)), "{ledger:?}");
    assert_eq!(delivery(&v2, 0)["cost_minor"], 0, "net cost after the refund");
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_sms_wrong_token_fails_and_429_is_throttled_then_sent() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(HOST, &fake.url)], &tenant("acme", API_KEY, &accounts())));

    let id = send(&gw, &sms("tw-bad-token", "hi", &["+14155550100"])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert_eq!(delivery(&v, 0)["detail"], "Twilio 20003: Authenticate");
    assert_eq!(delivery(&v, 0)["attempts"], 1);
    assert!(fake.created().is_empty());

    // Two requests per 500 ms; five recipients (one request each) → 429s, retried.
    fake.limit_rate(2, Duration::from_millis(500));
    let to: Vec<String> = (0..5).map(|i| format!("+1415555020{i}")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    let id = send(&gw, &sms("tw", "hello", &to)).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 5], "{v}");
    assert!(fake.errors().contains(&20429), "{:?}", fake.errors());
    assert_eq!(fake.created().len(), 5);
    let m = gw.metrics().await;
    assert!(metric(&m, "herald_deliveries_total", "channel=\"twilio-sms\",outcome=\"throttled\",tenant=\"acme\"") >= 1.0, "{m}");
}
