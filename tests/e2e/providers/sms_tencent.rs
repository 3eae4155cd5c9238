//! tencent-sms against a fake Tencent Cloud API 3.0 `SendSms` (2021-01-11)
//! that checks what Tencent checks: the TC3-HMAC-SHA256 `Authorization`
//! recomputed from the SecretKey over the signed headers and body, the
//! credential scope and 5-minute timestamp window, action/version/region
//! headers, the SDK app id, template and signature, the parameter count of the
//! template, the 200-number limit, each number's format, blocklist and daily
//! limit, and a request-rate limit (`RequestLimitExceeded`). It answers per-number
//! `SendStatusSet` entries with `SerialNo` and `Fee` (segments: 70, then 67 per
//! part, signature included).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::sms_support::*;
use crate::harness::{API_KEY, Gateway, tenant};

const HOST: &str = "sms.tencentcloudapi.com";
const SECRET_ID: &str = "AKIDheraldTestSecretId0001";
const SECRET_KEY: &str = "heraldTestSecretKey0001";
const APP_ID: &str = "1400006666";
const CALLBACK_TOKEN: &str = "tc-callback-77";

/// A number the fake accepted.
#[derive(Clone, Debug)]
struct Sent {
    phone: String,
    content: String,
    fee: u32,
    serial: String,
}

#[derive(Default)]
struct Inner {
    /// Request count in the current rate window.
    window_start: Option<Instant>,
    window_count: usize,
    requests: Vec<Value>,
    errors: Vec<String>,
    sent: Vec<Sent>,
    next_serial: u64,
}

struct Shared {
    keys: BTreeMap<String, String>,
    /// Template id → content with `{1}`, `{2}`, … placeholders.
    templates: BTreeMap<String, String>,
    signs: Vec<String>,
    daily_limited: Vec<String>,
    /// Numbers in the do-not-disturb blocklist (the user unsubscribed, or the
    /// carrier's blocklist).
    blocklisted: Vec<String>,
    /// At most `n` requests per window, then `RequestLimitExceeded`.
    rate: Mutex<Option<(usize, Duration)>>,
    inner: Mutex<Inner>,
}

#[derive(Clone)]
struct FakeTencent {
    shared: Arc<Shared>,
    url: String,
}

impl FakeTencent {
    async fn start() -> Self {
        let shared = Arc::new(Shared {
            keys: [(SECRET_ID.to_string(), SECRET_KEY.to_string())].into(),
            templates: [("1110".to_string(), "您的验证码是{1},{2}分钟内有效。".to_string()), ("2220".to_string(), "{1}".to_string())].into(),
            signs: vec!["Herald".to_string()],
            daily_limited: vec!["+8613600136000".to_string()],
            blocklisted: vec!["+8613500135000".to_string()],
            rate: Mutex::new(None),
            inner: Mutex::new(Inner { next_serial: 2640, ..Default::default() }),
        });
        let url = serve(axum::Router::new().fallback(handle).with_state(shared.clone())).await;
        Self { shared, url }
    }

    fn limit_rate(&self, n: usize, window: Duration) {
        *self.shared.rate.lock().unwrap() = Some((n, window));
    }

    fn requests(&self) -> Vec<Value> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    fn errors(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().errors.clone()
    }

    fn sent(&self) -> Vec<Sent> {
        self.shared.inner.lock().unwrap().sent.clone()
    }
}

fn error(code: &str, message: &str) -> Value {
    json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": format!("fake-{code}")}})
}

async fn handle(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = check(&s, &headers, &body);
    if let Some(code) = answer["Response"]["Error"]["Code"].as_str() {
        s.inner.lock().unwrap().errors.push(code.to_string());
    }
    // API 3.0 answers HTTP 200 with the error inside the body.
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn check(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Value {
    let (Some(action), Some(version), Some(ts), Some(auth)) =
        (header(headers, "x-tc-action"), header(headers, "x-tc-version"), header(headers, "x-tc-timestamp"), header(headers, "authorization"))
    else {
        return error("MissingParameter", "The request is missing a required header (X-TC-Action, X-TC-Version, X-TC-Timestamp, Authorization).");
    };
    if header(headers, "x-tc-region").is_none_or(str::is_empty) {
        return error("MissingParameter", "The request is missing a required parameter `Region`.");
    }
    // Authorization: TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=<h;h>, Signature=<hex>
    let Some(rest) = auth.strip_prefix("TC3-HMAC-SHA256 ") else {
        return error("AuthFailure.InvalidAuthorization", "Authorization header is not TC3-HMAC-SHA256.");
    };
    let fields: BTreeMap<&str, &str> = rest.split(", ").filter_map(|kv| kv.split_once('=')).collect();
    let (Some(credential), Some(signed), Some(given)) = (fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")) else {
        return error("AuthFailure.InvalidAuthorization", "Authorization header is malformed.");
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 4 || scope[3] != "tc3_request" {
        return error("AuthFailure.InvalidAuthorization", "Credential is malformed.");
    }
    let Ok(ts) = ts.parse::<i64>() else {
        return error("InvalidParameter", "X-TC-Timestamp is not a Unix timestamp.");
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return error("AuthFailure.SignatureExpire", "Signature expired. Timestamp and server time cannot differ by more than five minutes.");
    }
    let date = chrono::DateTime::from_timestamp(ts, 0).unwrap().format("%Y-%m-%d").to_string();
    if scope[1] != date || scope[2] != "sms" {
        return error("AuthFailure.SignatureFailure", "The provided credentials could not be validated. Please check your signature is correct.");
    }
    let Some(secret) = s.keys.get(scope[0]) else {
        return error("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your SecretId is correct.");
    };
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"content-type") || !names.contains(&"host") || names.windows(2).any(|w| w[0] >= w[1]) {
        return error("AuthFailure.SignatureFailure", "SignedHeaders must contain content-type and host, sorted.");
    }
    // The canonical request as the server rebuilds it. `host` is this service's
    // own name: the gateway's redirect changes the Host the fake sees, while
    // the real endpoint is reached under its name.
    let mut canonical_headers = String::new();
    for name in &names {
        let value = if *name == "host" { HOST.to_string() } else { header(headers, name).unwrap_or("").trim().to_string() };
        canonical_headers.push_str(&format!("{name}:{}\n", value.to_ascii_lowercase()));
    }
    let canonical = format!("POST\n/\n\n{canonical_headers}\n{signed}\n{}", sha256_hex(body));
    let sts = format!("TC3-HMAC-SHA256\n{ts}\n{date}/sms/tc3_request\n{}", sha256_hex(canonical.as_bytes()));
    let k_date = hmac_sha256(format!("TC3{secret}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, b"sms");
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    let want = hex::encode(hmac_sha256(&k_signing, sts.as_bytes()));
    if !same(want.as_bytes(), given.as_bytes()) {
        return error("AuthFailure.SignatureFailure", "The provided credentials could not be validated. Please check your signature is correct.");
    }
    if header(headers, "content-type") != Some("application/json; charset=utf-8") {
        return error("InvalidParameter", "Content-Type must be application/json.");
    }
    if action != "SendSms" {
        return error("InvalidAction", &format!("The action `{action}` is not found."));
    }
    if version != "2021-01-11" {
        return error("NoSuchVersion", &format!("The API version `{version}` is not supported."));
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
            return error("RequestLimitExceeded", "Your current request frequency exceeds the limit.");
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error("InvalidParameter", "The body is not JSON.");
    };
    s.inner.lock().unwrap().requests.push(req.clone());
    send_sms(s, &req)
}

fn send_sms(s: &Shared, req: &Value) -> Value {
    let Some(numbers) = req["PhoneNumberSet"].as_array().filter(|a| !a.is_empty()) else {
        return error("MissingParameter", "The request is missing a required parameter `PhoneNumberSet`.");
    };
    if numbers.len() > 200 {
        return error("LimitExceeded.PhoneNumberCountLimit", "The number of phone numbers in a request exceeds 200.");
    }
    if req["SmsSdkAppId"] != APP_ID {
        return error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId does not exist.");
    }
    let Some(template) = req["TemplateId"].as_str().and_then(|t| s.templates.get(t)) else {
        return error("FailedOperation.TemplateIncorrectOrUnapproved", "The template is not approved or does not exist.");
    };
    let params: Vec<String> =
        req["TemplateParamSet"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
    let slots = (1..=9).filter(|i| template.contains(&format!("{{{i}}}"))).count();
    if params.len() != slots {
        return error("FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "TemplateParamSet does not match the approved template.");
    }
    let sign = req["SignName"].as_str().unwrap_or("");
    let mut content = template.clone();
    for (i, p) in params.iter().enumerate() {
        content = content.replace(&format!("{{{}}}", i + 1), p);
    }
    let mut statuses = Vec::new();
    for n in numbers {
        let phone = n.as_str().unwrap_or("").to_string();
        let domestic = phone.starts_with("+86");
        let digits = phone.trim_start_matches('+');
        let valid = if domestic {
            let national = &phone[3..];
            national.len() == 11 && national.starts_with('1') && national.bytes().all(|b| b.is_ascii_digit())
        } else {
            phone.starts_with('+') && (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        };
        let status = |code: &str, message: &str| json!({"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "SessionContext": "", "Code": code, "Message": message, "IsoCode": ""});
        if !valid {
            statuses.push(status("InvalidParameterValue.IncorrectPhoneNumber", "invalid mobile number"));
        } else if domestic && !s.signs.iter().any(|x| x == sign) {
            statuses.push(status("FailedOperation.SignatureIncorrectOrUnapproved", "the signature is not approved"));
        } else if s.blocklisted.contains(&phone) {
            statuses.push(status(
                "FailedOperation.PhoneNumberInBlacklist",
                "the number is in the blocklist: the user unsubscribed or the carrier blocks it",
            ));
        } else if s.daily_limited.contains(&phone) {
            statuses.push(status("LimitExceeded.PhoneNumberDailyLimit", "the number reached its daily limit"));
        } else {
            let text = format!("【{sign}】{content}");
            let fee = if domestic { china_segments(&text) } else { gsm_segments(&text) };
            let serial = {
                let mut inner = s.inner.lock().unwrap();
                inner.next_serial += 1;
                format!("{}:{}", inner.next_serial, 3_000_000 + inner.sent.len())
            };
            s.inner.lock().unwrap().sent.push(Sent { phone: phone.clone(), content: text, fee, serial: serial.clone() });
            statuses.push(json!({"SerialNo": serial, "PhoneNumber": phone, "Fee": fee, "SessionContext": "", "Code": "Ok",
                                 "Message": "send success", "IsoCode": if domestic { "CN" } else { "" }}));
        }
    }
    json!({"Response": {"SendStatusSet": statuses, "RequestId": "fake-request"}})
}

fn accounts() -> String {
    let acc = |name: &str, id: &str, key: &str, template: &str, params: &str| {
        format!(
            "[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"tencent-sms\"\nconfig = {{ secret_id = \"{id}\", secret_key = \"{key}\", \
             sdk_app_id = \"{APP_ID}\", template_id = \"{template}\", sign_name = \"Herald\", template_params = [{params}], \
             callback_token = \"{CALLBACK_TOKEN}\" }}\n"
        )
    };
    format!(
        "{}{}{}{}[[tenants.prices]]\nchannel = \"tencent-sms\"\nunit_minor = 5\n",
        acc("tc", SECRET_ID, SECRET_KEY, "1110", "\"code\", \"minutes\""),
        acc("tc-text", SECRET_ID, SECRET_KEY, "2220", "\"text\""),
        acc("tc-bad-key", SECRET_ID, "not-the-key", "1110", "\"code\", \"minutes\""),
        acc("tc-unknown-id", "AKIDnoSuchSecretId", SECRET_KEY, "1110", "\"code\", \"minutes\"")
    )
}

fn code(account: &str, to: &[&str]) -> Value {
    // Recipient variables reach the plugin as delivery metadata (the template parameters).
    let recipients: Vec<_> = to.iter().map(|t| json!({"to": t, "variables": {"code": "4821", "minutes": "5"}})).collect();
    json!({"channel": "tencent-sms", "account": account, "content": {"text": "【Herald】您的验证码是{{ code }},{{ minutes }}分钟内有效。"},
           "recipients": recipients})
}

#[tokio::test(flavor = "multi_thread")]
async fn tencent_sms_batches_numbers_with_tc3_signatures_and_maps_each_status() {
    let fake = FakeTencent::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(HOST, &fake.url)], &tenant("acme", API_KEY, &accounts())));

    // A malformed number never reaches Tencent: the gateway refuses it at ingest.
    refused_at_ingest(&gw, &code("tc", &["+8613800138000", "+86123", "+8613600136000", "+8613900139000"]), 1).await;
    assert!(fake.requests().is_empty());

    // Well-formed numbers Tencent refuses (blocklisted; daily limit reached)
    // fail alone, each with its own SendStatusSet code, without retries.
    let id = send(&gw, &code("tc", &["+8613800138000", "+8613500135000", "+8613600136000", "+8613900139000"])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent", "failed", "failed", "sent"], "{v}");
    assert_eq!(
        delivery(&v, 1)["detail"],
        "FailedOperation.PhoneNumberInBlacklist: the number is in the blocklist: the user unsubscribed or the carrier blocks it"
    );
    assert_eq!(delivery(&v, 1)["attempts"], 1);
    assert_eq!(delivery(&v, 2)["attempts"], 1);
    assert!(delivery(&v, 2)["detail"].as_str().unwrap().starts_with("LimitExceeded.PhoneNumberDailyLimit"), "{v}");

    // One signed request carried all four numbers.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        reqs[0],
        json!({"PhoneNumberSet": ["+8613800138000", "+8613500135000", "+8613600136000", "+8613900139000"], "SmsSdkAppId": APP_ID,
               "TemplateId": "1110", "TemplateParamSet": ["4821", "5"], "SignName": "Herald"})
    );
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
    let sent = fake.sent();
    assert_eq!(sent.iter().map(|s| s.phone.as_str()).collect::<Vec<_>>(), ["+8613800138000", "+8613900139000"]);
    assert_eq!(sent[0].content, "【Herald】您的验证码是4821,5分钟内有效。");
    assert_eq!(delivery(&v, 0)["provider_id"], sent[0].serial.as_str(), "provider id = SerialNo");
    assert_eq!(delivery(&v, 3)["provider_id"], sent[1].serial.as_str());

    // Status report push (token required).
    let report = json!([
        {"user_receive_time": "2024-01-01 08:03:04", "nationcode": "86", "mobile": "13800138000", "report_status": "SUCCESS",
         "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": sent[0].serial},
        {"user_receive_time": "2024-01-01 08:03:09", "nationcode": "86", "mobile": "13900139000", "report_status": "FAIL",
         "errmsg": "MK:0005", "description": "停机", "sid": sent[1].serial}
    ])
    .to_string();
    let json_ct = [("content-type", "application/json")];
    assert_eq!(gw.post("/v1/callbacks/acme/tc", None, &json_ct, report.clone()).await.status, 400, "token missing");
    let r = gw.post(&format!("/v1/callbacks/acme/tc?token={CALLBACK_TOKEN}"), None, &json_ct, report).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"result": 0, "errmsg": "OK"}));
    let v = wait_delivery(&gw, &id, 3, "failed").await;
    assert_eq!(statuses(&v), ["delivered", "failed", "failed", "failed"]);
    assert_eq!(delivery(&v, 3)["detail"], "MK:0005 停机");

    // Billing follows Tencent's Fee: 1 segment each here; a send the report fails is refunded.
    let ledger = ledger_for(&gw, &id).await;
    let debits: Vec<_> = ledger.iter().filter(|e| e["kind"] == "debit").map(|e| e["units"].as_u64().unwrap()).collect();
    assert_eq!(debits, [1, 1], "{ledger:?}");
    let credits = ledger.iter().filter(|e| e["kind"] == "credit").count();
    assert_eq!(credits, 1, "{ledger:?}");

    // A long Chinese message: 【Herald】 (8) + 100 characters = 108 > 70 → 2 segments at 5.
    let long = "长".repeat(100);
    let id = send(
        &gw,
        &json!({"channel": "tencent-sms", "account": "tc-text", "content": {"text": "【Herald】{{ text }}"},
                "recipients": [{"to": "+8613700137000", "variables": {"text": long}}]}),
    )
    .await;
    assert_eq!(statuses(&wait_settled(&gw, &id).await), ["sent"]);
    assert_eq!(fake.sent().last().unwrap().fee, 2);
    let ledger = ledger_for(&gw, &id).await;
    assert_eq!((ledger[0]["units"].as_u64(), ledger[0]["amount_minor"].as_i64()), (Some(2), Some(10)), "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tencent_sms_wrong_credentials_fail_and_request_limits_are_retried() {
    let fake = FakeTencent::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(HOST, &fake.url)], &tenant("acme", API_KEY, &accounts())));

    let id = send(&gw, &code("tc-bad-key", &["+8613800138000", "+8613900139000"])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed", "failed"]);
    assert!(delivery(&v, 0)["detail"].as_str().unwrap().starts_with("AuthFailure.SignatureFailure: The provided credentials"), "{v}");
    assert_eq!(delivery(&v, 1)["attempts"], 1);

    let id = send(&gw, &code("tc-unknown-id", &["+8613800138000"])).await;
    let v = wait_settled(&gw, &id).await;
    assert!(delivery(&v, 0)["detail"].as_str().unwrap().starts_with("AuthFailure.SecretIdNotFound"), "{v}");
    assert!(fake.sent().is_empty());

    // Two requests per 500 ms: the third in a burst is refused and retried later.
    fake.limit_rate(2, Duration::from_millis(500));
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(send(&gw, &code("tc", &[&format!("+861380000000{i}")])).await);
            // Separate batches: one request per message.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        ids
    };
    for id in &ids {
        assert_eq!(statuses(&wait_settled(&gw, id).await), ["sent"]);
    }
    assert!(fake.errors().iter().any(|e| e == "RequestLimitExceeded"), "{:?}", fake.errors());
    assert_eq!(fake.sent().len(), 3);
    let m = gw.metrics().await;
    assert!(metric(&m, "herald_deliveries_total", "channel=\"tencent-sms\",outcome=\"throttled\",tenant=\"acme\"") >= 1.0, "{m}");
}
