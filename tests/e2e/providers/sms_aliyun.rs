//! aliyun-sms against a fake Dysmsapi that checks what Aliyun's RPC gateway
//! checks: the HMAC-SHA1 signature recomputed from the AccessKey secret with
//! Aliyun's canonicalization, timestamp freshness (15 minutes), nonce reuse
//! (`SignatureNonceUsed`), required parameters, number format, signature and
//! template names, template variables, and the per-number frequency limits
//! (`isv.BUSINESS_LIMIT_CONTROL`, minute level and day level). The same fake
//! serves Dyvmsapi for the aliyun-voice tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::sms_support::*;
use crate::harness::{API_KEY, Gateway, request, tenant};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Sms,
    Voice,
}

/// A request the fake accepted.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub params: BTreeMap<String, String>,
    /// `BizId` (SMS) or `CallId` (voice).
    pub id: String,
    pub at: Instant,
}

struct Inner {
    nonces: HashSet<String>,
    last_send: HashMap<String, Instant>,
    accepted: Vec<Accepted>,
    /// `Code` of every answer, in order.
    answers: Vec<String>,
    /// Raw bodies of every request, for replays.
    bodies: Vec<Vec<u8>>,
    next_id: u64,
}

struct Shared {
    product: Product,
    host: &'static str,
    keys: BTreeMap<String, String>,
    signs: Vec<String>,
    /// Template code → variable names.
    templates: BTreeMap<String, Vec<String>>,
    /// One send per number per window (Aliyun: 1/min for verification codes).
    window: Mutex<Option<Duration>>,
    /// Numbers that already had their sends of the day (Aliyun: 10/day for
    /// verification codes): refused with the day-level limit until tomorrow.
    day_capped: Mutex<HashSet<String>>,
    inner: Mutex<Inner>,
}

#[derive(Clone)]
pub struct FakeAliyun {
    shared: Arc<Shared>,
    pub url: String,
}

impl FakeAliyun {
    pub async fn start(product: Product, keys: &[(&str, &str)], signs: &[&str], templates: &[(&str, &[&str])]) -> Self {
        let shared = Arc::new(Shared {
            product,
            host: match product {
                Product::Sms => "dysmsapi.aliyuncs.com",
                Product::Voice => "dyvmsapi.aliyuncs.com",
            },
            keys: keys.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            signs: signs.iter().map(|s| s.to_string()).collect(),
            templates: templates.iter().map(|(c, vars)| (c.to_string(), vars.iter().map(|v| v.to_string()).collect())).collect(),
            window: Mutex::new(None),
            day_capped: Mutex::new(HashSet::new()),
            inner: Mutex::new(Inner {
                nonces: HashSet::new(),
                last_send: HashMap::new(),
                accepted: Vec::new(),
                answers: Vec::new(),
                bodies: Vec::new(),
                next_id: 900_619_746_936_498_440,
            }),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let url = serve(app).await;
        Self { shared, url }
    }

    pub fn host(&self) -> &'static str {
        self.shared.host
    }

    /// Allow one send per number per `window`.
    pub fn limit_per_number(&self, window: Duration) {
        *self.shared.window.lock().unwrap() = Some(window);
    }

    /// `number` (as sent: `13800138000`) has used up its sends of the day.
    pub fn cap_for_the_day(&self, number: &str) {
        self.shared.day_capped.lock().unwrap().insert(number.to_string());
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.shared.inner.lock().unwrap().accepted.clone()
    }

    pub fn answers(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().answers.clone()
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.shared.inner.lock().unwrap().bodies.clone()
    }
}

fn answer(status: u16, code: &str, message: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"RequestId": format!("{:08X}-FAKE", rand_like(code)), "Code": code, "Message": message});
    if status != 200 {
        body["Recommend"] = json!(format!("https://api.aliyun.com/troubleshoot?q={code}"));
    }
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    (status, body)
}

fn rand_like(s: &str) -> u32 {
    s.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619))
}

fn mainland_mobile(n: &str) -> bool {
    n.len() == 11 && n.starts_with('1') && matches!(n.as_bytes()[1], b'3'..=b'9') && n.bytes().all(|b| b.is_ascii_digit())
}

fn international(n: &str) -> bool {
    (9..=15).contains(&n.len()) && !n.starts_with('0') && !n.starts_with("86") && n.bytes().all(|b| b.is_ascii_digit())
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let (status, value) = check(&s, &method, query.as_deref(), &headers, &body);
    {
        let mut inner = s.inner.lock().unwrap();
        inner.bodies.push(body.to_vec());
        inner.answers.push(value["Code"].as_str().unwrap_or("").to_string());
    }
    let mut resp = (StatusCode::from_u16(status).unwrap(), value.to_string()).into_response();
    resp.headers_mut().insert("content-type", "application/json;charset=utf-8".parse().unwrap());
    resp
}

fn check(s: &Shared, method: &Method, query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> (u16, Value) {
    // Parameters come from the query and, for a form POST, the body.
    let mut params: BTreeMap<String, String> = form_decode(query.unwrap_or("")).into_iter().collect();
    let form = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && form {
        params.extend(form_decode(std::str::from_utf8(body).unwrap_or("")));
    }
    for name in ["AccessKeyId", "Action", "SignatureMethod", "SignatureNonce", "SignatureVersion", "Timestamp", "Version", "Signature"] {
        if params.get(name).is_none_or(|v| v.is_empty()) {
            return answer(400, &format!("Missing{name}"), &format!("{name} is mandatory for this action."), json!({}));
        }
    }
    if params["SignatureMethod"] != "HMAC-SHA1" || params["SignatureVersion"] != "1.0" {
        return answer(400, "InvalidParameter", "SignatureMethod/SignatureVersion not supported.", json!({}));
    }
    let Ok(ts) = chrono::NaiveDateTime::parse_from_str(&params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ") else {
        return answer(400, "InvalidTimeStamp.Format", "Specified time stamp or date header is not in the correct format.", json!({}));
    };
    let skew = (chrono::Utc::now().naive_utc() - ts).num_seconds().abs();
    if skew > 15 * 60 {
        return answer(400, "InvalidTimeStamp.Expired", "Specified time stamp or date header is expired.", json!({}));
    }
    let Some(secret) = s.keys.get(&params["AccessKeyId"]) else {
        return answer(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", json!({}));
    };
    // StringToSign = METHOD & %2F & enc(sorted "k=v" joined by "&"), key secret + "&".
    let given = params.remove("Signature").unwrap_or_default();
    let canonical = params.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect::<Vec<_>>().join("&");
    let sts = format!("{}&{}&{}", method.as_str(), rfc3986("/"), rfc3986(&canonical));
    let want = base64(&hmac_sha1(format!("{secret}&").as_bytes(), sts.as_bytes()));
    if !same(want.as_bytes(), given.as_bytes()) {
        return answer(
            400,
            "SignatureDoesNotMatch",
            &format!("Specified signature does not match our calculation. server string to sign is:{sts}"),
            json!({}),
        );
    }
    {
        let mut inner = s.inner.lock().unwrap();
        if !inner.nonces.insert(params["SignatureNonce"].clone()) {
            return answer(400, "SignatureNonceUsed", "Specified signature nonce was used already.", json!({}));
        }
    }
    if params["Version"] != "2017-05-25" {
        return answer(400, "InvalidVersion", "Specified parameter Version is not valid.", json!({}));
    }
    match (s.product, params["Action"].as_str()) {
        (Product::Sms, "SendSms") => send_sms(s, params),
        (Product::Voice, "SingleCallByTts") => single_call(s, params),
        _ => answer(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.", json!({})),
    }
}

fn required(params: &BTreeMap<String, String>, names: &[&str]) -> Option<(u16, Value)> {
    names
        .iter()
        .find(|n| params.get(**n).is_none_or(|v| v.is_empty()))
        .map(|n| answer(400, &format!("Missing{n}"), &format!("{n} is mandatory for this action."), json!({})))
}

/// Template variables: a JSON object of strings covering the template's names.
fn template_vars(template_vars: &[String], raw: Option<&String>) -> Option<(u16, Value)> {
    if template_vars.is_empty() {
        return None;
    }
    let Some(raw) = raw else {
        return Some(answer(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值", json!({})));
    };
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(raw) else {
        return Some(answer(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法,只接受字符串值", json!({})));
    };
    if obj.values().any(|v| !v.is_string()) {
        return Some(answer(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法,只接受字符串值", json!({})));
    }
    if template_vars.iter().any(|v| !obj.contains_key(v)) {
        return Some(answer(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值", json!({})));
    }
    None
}

/// The per-number frequency limits; records the send when allowed. `Err`
/// holds the level that refused: `"分钟级"` or `"天级"`.
fn frequency_ok(s: &Shared, numbers: &[&str]) -> Result<(), &'static str> {
    {
        let capped = s.day_capped.lock().unwrap();
        if numbers.iter().any(|n| capped.contains(*n)) {
            return Err("天级");
        }
    }
    let window = *s.window.lock().unwrap();
    let mut inner = s.inner.lock().unwrap();
    let now = Instant::now();
    if let Some(w) = window
        && numbers.iter().any(|n| inner.last_send.get(*n).is_some_and(|t| now.duration_since(*t) < w))
    {
        return Err("分钟级");
    }
    for n in numbers {
        inner.last_send.insert(n.to_string(), now);
    }
    Ok(())
}

fn accept(s: &Shared, params: BTreeMap<String, String>, id: String) {
    s.inner.lock().unwrap().accepted.push(Accepted { params, id, at: Instant::now() });
}

fn next_id(s: &Shared) -> u64 {
    let mut inner = s.inner.lock().unwrap();
    inner.next_id += 1;
    inner.next_id
}

fn send_sms(s: &Shared, params: BTreeMap<String, String>) -> (u16, Value) {
    if let Some(e) = required(&params, &["PhoneNumbers", "SignName", "TemplateCode"]) {
        return e;
    }
    let numbers: Vec<&str> = params["PhoneNumbers"].split(',').collect();
    if numbers.len() > 1000 {
        return answer(200, "isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制", json!({}));
    }
    if !numbers.iter().all(|n| mainland_mobile(n) || international(n)) {
        return answer(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号", json!({}));
    }
    if !s.signs.contains(&params["SignName"]) {
        return answer(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名", json!({}));
    }
    let Some(vars) = s.templates.get(&params["TemplateCode"]) else {
        return answer(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板", json!({}));
    };
    if let Some(e) = template_vars(vars, params.get("TemplateParam")) {
        return e;
    }
    match frequency_ok(s, &numbers) {
        Ok(()) => {}
        Err("天级") => {
            return answer(200, "isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10", json!({}));
        }
        Err(_) => {
            return answer(200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", json!({}));
        }
    }
    let biz_id = format!("{}^0", next_id(s));
    accept(s, params, biz_id.clone());
    answer(200, "OK", "OK", json!({"BizId": biz_id}))
}

fn single_call(s: &Shared, params: BTreeMap<String, String>) -> (u16, Value) {
    if let Some(e) = required(&params, &["CalledNumber", "TtsCode"]) {
        return e;
    }
    let called = params["CalledNumber"].as_str();
    let landline = called.starts_with('0') && (10..=12).contains(&called.len()) && called.bytes().all(|b| b.is_ascii_digit());
    if !(mainland_mobile(called) || landline) {
        return answer(200, "isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法", json!({}));
    }
    let Some(vars) = s.templates.get(&params["TtsCode"]) else {
        return answer(200, "isv.TTS_TEMPLATE_ILLEGAL", "模板不合法", json!({}));
    };
    if let Some(e) = template_vars(vars, params.get("TtsParam")) {
        return e;
    }
    if params.get("PlayTimes").is_some_and(|p| !matches!(p.as_str(), "1" | "2" | "3")) {
        return answer(200, "isv.INVALID_PARAMETERS", "参数异常", json!({}));
    }
    if let Err(level) = frequency_ok(s, &[called]) {
        return answer(200, "isv.BUSINESS_LIMIT_CONTROL", &format!("触发号码{level}流控"), json!({}));
    }
    let call_id = format!("116012354148^{}", next_id(s));
    accept(s, params, call_id.clone());
    answer(200, "OK", "OK", json!({"CallId": call_id}))
}

// ---- aliyun-sms tests --------------------------------------------------------

const KEY_ID: &str = "LTAI5tHeraldTestKey";
const SECRET: &str = "hUq3-secret-for-tests";
const CALLBACK_TOKEN: &str = "cb-token-4711";

async fn fake_sms() -> FakeAliyun {
    FakeAliyun::start(Product::Sms, &[(KEY_ID, SECRET)], &["Herald"], &[("SMS_100", &["code"]), ("SMS_200", &["text"])]).await
}

fn accounts() -> String {
    let acc = |name: &str, id: &str, secret: &str, extra: &str| {
        format!(
            "[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"aliyun-sms\"\nconfig = {{ access_key_id = \"{id}\", access_key_secret = \"{secret}\", \
             sign_name = \"Herald\", template_code = \"SMS_100\", template_params = [\"code\"]{extra} }}\n"
        )
    };
    format!(
        "{}{}{}[[tenants.prices]]\nchannel = \"aliyun-sms\"\nunit_minor = 5\n",
        acc("ali", KEY_ID, SECRET, &format!(", callback_token = \"{CALLBACK_TOKEN}\"")),
        acc("ali-bad-secret", KEY_ID, "not-the-secret", ""),
        acc("ali-unknown-key", "LTAI5tNoSuchKey", SECRET, "")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_sms_sends_signed_requests_fails_bad_numbers_alone_and_matches_reports() {
    let fake = fake_sms().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(fake.host(), &fake.url)], &tenant("acme", API_KEY, &accounts())));
    let message = |second: &str| {
        json!({"channel": "aliyun-sms", "account": "ali", "content": {"text": "【Herald】您的验证码是{{ code }}"},
               "recipients": [{"to": "+8613800138000", "variables": {"code": "1234"}},
                              {"to": second, "variables": {"code": "1"}},
                              {"to": "+85261234567", "variables": {"code": "5678"}}]})
    };

    // A malformed number never reaches Aliyun: the gateway refuses it at ingest.
    refused_at_ingest(&gw, &message("+86123"), 1).await;
    assert!(fake.answers().is_empty());

    // A well-formed number Aliyun refuses (it had its verification codes of
    // the day: day-level frequency control) fails alone, without retries.
    fake.cap_for_the_day("13500135000");
    let id = send(&gw, &message("+8613500135000")).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent", "failed", "sent"], "{v}");
    let bad = delivery(&v, 1);
    assert_eq!(bad["detail"], "isv.BUSINESS_LIMIT_CONTROL: 触发天级流控Permits:10", "{bad}");
    assert_eq!(bad["attempts"], 1, "the day's limit is not waited out: no retry");

    // What Aliyun accepted: signed, one number each, template variables from the recipient.
    let accepted = fake.accepted();
    assert_eq!(accepted.len(), 2);
    let by_number: BTreeMap<&str, &Accepted> = accepted.iter().map(|a| (a.params["PhoneNumbers"].as_str(), a)).collect();
    let cn = by_number["13800138000"];
    assert_eq!(cn.params["SignName"], "Herald");
    assert_eq!(cn.params["TemplateCode"], "SMS_100");
    assert_eq!(cn.params["TemplateParam"], r#"{"code":"1234"}"#);
    assert_eq!(cn.params["Format"], "JSON");
    assert_eq!(by_number["85261234567"].params["TemplateParam"], r#"{"code":"5678"}"#);
    assert_eq!(delivery(&v, 0)["provider_id"], cn.id.as_str(), "provider id = BizId");
    assert_eq!(delivery(&v, 2)["provider_id"], by_number["85261234567"].id.as_str());
    assert_eq!(fake.answers().iter().filter(|c| c.as_str() != "OK").collect::<Vec<_>>(), ["isv.BUSINESS_LIMIT_CONTROL"]);

    // The fake does reject a replayed request: nonces must be (and are) unique.
    let replay = request("POST", &fake.url, None, &[("content-type", "application/x-www-form-urlencoded")], fake.bodies()[0].clone().into()).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["Code"], "SignatureNonceUsed");

    // Delivery reports: the push must carry the account's token.
    let report = json!([
        {"phone_number": "13800138000", "send_time": "2024-01-01 00:00:00", "report_time": "2024-01-01 00:00:05", "success": true,
         "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": cn.id, "out_id": ""},
        {"phone_number": "85261234567", "send_time": "2024-01-01 00:00:00", "report_time": "2024-01-01 00:00:09", "success": false,
         "err_code": "MK:0001", "err_msg": "空号", "sms_size": "1", "biz_id": by_number["85261234567"].id, "out_id": ""}
    ])
    .to_string();
    let json_ct = [("content-type", "application/json")];
    let r = gw.post("/v1/callbacks/acme/ali", None, &json_ct, report.clone()).await;
    assert_eq!(r.status, 400, "no token: {}", r.text());
    let r = gw.post("/v1/callbacks/acme/ali?token=wrong-token", None, &json_ct, report.clone()).await;
    assert_eq!(r.status, 400, "wrong token: {}", r.text());
    assert_eq!(statuses(&gw.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await.json()), ["sent", "failed", "sent"]);
    let r = gw.post(&format!("/v1/callbacks/acme/ali?token={CALLBACK_TOKEN}"), None, &json_ct, report).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"code": 0, "msg": "成功"}));
    let v = wait_delivery(&gw, &id, 2, "failed").await;
    assert_eq!(statuses(&v), ["delivered", "failed", "failed"]);
    assert!(delivery(&v, 2)["detail"].as_str().unwrap().contains("MK:0001"), "{v}");

    // Billing: per segment of the rendered text (counted by the host; the
    // Aliyun answer has no segment count), only for sent ones.
    // A send the delivery report then fails is not billed: refunded by a credit.
    let ledger = ledger_for(&gw, &id).await;
    let (debits, credits): (Vec<_>, Vec<_>) = ledger.iter().partition(|e| e["kind"] == "debit");
    assert_eq!(debits.len(), 2, "{ledger:?}");
    assert!(debits.iter().all(|e| e["units"] == 1 && e["amount_minor"] == 5), "{ledger:?}");
    assert_eq!(credits.len(), 1, "{ledger:?}");
    assert_eq!((credits[0]["kind"].as_str(), credits[0]["amount_minor"].as_i64()), (Some("credit"), Some(5)));
    assert_eq!(credits[0]["delivery_id"], delivery(&v, 2)["id"], "the one the report failed");
    // Spaces, '*' and '~' exercise the RFC 3986 rules of the signature.
    let long = format!("{} *~ ok", "您".repeat(100));
    let id2 = send(
        &gw,
        &json!({"channel": "aliyun-sms", "account": "ali", "content": {"text": "{{ code }}"},
                "recipients": [{"to": "+8613800138001", "variables": {"code": long}}]}),
    )
    .await;
    assert_eq!(statuses(&wait_settled(&gw, &id2).await), ["sent"]);
    let ledger = ledger_for(&gw, &id2).await;
    assert_eq!(fake.accepted().last().unwrap().params["TemplateParam"], json!({"code": long}).to_string());
    // The host counts segments of the rendered text (UCS-2: 106 characters > 70 → 2 parts).
    assert_eq!(ledger[0]["units"], 2, "billed per segment");
    assert_eq!(ledger[0]["amount_minor"], 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_sms_wrong_credentials_fail_with_the_provider_reason_and_throttling_is_retried() {
    let fake = fake_sms().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(fake.host(), &fake.url)], &tenant("acme", API_KEY, &accounts())));
    let one = |account: &str, to: &str| {
        json!({"channel": "aliyun-sms", "account": account, "content": {"text": "code {{ code }}"},
               "recipients": [{"to": to, "variables": {"code": "42"}}]})
    };

    let id = send(&gw, &one("ali-bad-secret", "+8613800138000")).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert!(delivery(&v, 0)["detail"].as_str().unwrap().starts_with("SignatureDoesNotMatch: Specified signature does not match"), "{v}");
    assert_eq!(delivery(&v, 0)["attempts"], 1);
    assert!(!delivery(&v, 0)["detail"].as_str().unwrap().contains("not-the-secret"), "no secret in details");

    let id = send(&gw, &one("ali-unknown-key", "+8613800138000")).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert_eq!(delivery(&v, 0)["detail"], "InvalidAccessKeyId.NotFound: Specified access key is not found.");
    assert!(fake.accepted().is_empty());

    // One send per number per 600 ms: the second message to the same number is
    // throttled (isv.BUSINESS_LIMIT_CONTROL), retried with backoff, then sent.
    let window = Duration::from_millis(600);
    fake.limit_per_number(window);
    let first = send(&gw, &one("ali", "+8613900139000")).await;
    assert_eq!(statuses(&wait_settled(&gw, &first).await), ["sent"]);
    let second = send(&gw, &one("ali", "+8613900139000")).await;
    let v = wait_settled(&gw, &second).await;
    assert_eq!(statuses(&v), ["sent"], "{v}");
    assert!(delivery(&v, 0)["attempts"].as_u64().unwrap() >= 2, "{v}");
    assert!(fake.answers().iter().any(|c| c == "isv.BUSINESS_LIMIT_CONTROL"));
    assert!(!fake.answers().iter().any(|c| c == "SignatureNonceUsed"), "every retry signs with a fresh nonce");
    let sends: Vec<Instant> = fake.accepted().iter().filter(|a| a.params["PhoneNumbers"] == "13900139000").map(|a| a.at).collect();
    assert_eq!(sends.len(), 2);
    assert!(sends[1].duration_since(sends[0]) >= window, "the provider's limit held");
    let m = gw.metrics().await;
    assert!(metric(&m, "herald_deliveries_total", "channel=\"aliyun-sms\",outcome=\"throttled\",tenant=\"acme\"") >= 1.0, "{m}");
}

/// Issue 16 point 3: a console push on a template-based channel sends the
/// provider template it chose, its parameters filled per recipient; a channel
/// that sends the text itself takes none; a tiered template keeps one per channel.
#[tokio::test(flavor = "multi_thread")]
async fn a_console_push_sends_the_provider_template_it_chose() {
    use crate::admin::Admin;
    use crate::harness::eventually;
    let fake = fake_sms().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(fake.host(), &fake.url)], ""));
    let admin = Admin::start(dir.path());
    let (_, t) = admin.register("Acme", "boss").await;
    let config = json!({"access_key_id": KEY_ID, "access_key_secret": SECRET, "sign_name": "Herald",
                        "template_code": "SMS_100", "template_params": ["code"]});
    let acc = admin.call("POST", "/accounts", Some(&t), Some(json!({"name": "ali", "channel": "aliyun-sms", "config": config}))).await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    let hook = admin
        .call("POST", "/accounts", Some(&t), Some(json!({"name": "hook", "channel": "webhook", "config": {"url": "http://127.0.0.1:9/"}})))
        .await;
    assert_eq!(hook.status, 201, "{}", hook.text());

    let push = |channel: &str, account: &str, provider: Value| {
        json!({"title": "维护通知", "channel": channel, "account": account, "content": {"text": "{{ name }}您好，今晚 22:00 维护"},
               "provider_template": provider,
               "targets": {"list": [{"to": "+8613800138000", "name": "张三"}, {"to": "13900139000", "name": "李四"}]}})
    };
    let chosen = json!({"code": "SMS_200", "params": [{"name": "text", "value": "{{ name }}您好，今晚维护"}]});
    // Refused, naming the field: a channel that sends its text, a bad code, a repeated name.
    for (channel, account, provider, field) in [
        ("webhook", "hook", chosen.clone(), "provider_template"),
        ("aliyun-sms", "ali", json!({"code": "SMS 200"}), "provider_template.code"),
        ("aliyun-sms", "ali", json!({"params": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]}), "provider_template.params[1].name"),
        ("aliyun-sms", "ali", json!({"params": [{"name": "a", "value": "{{ oops"}]}), "provider_template.params[0].value"),
    ] {
        let r = admin.call("POST", "/pushes", Some(&t), Some(push(channel, account, provider))).await;
        assert_eq!((r.status, r.error().1.as_deref()), (422, Some(field)), "{}", r.text());
    }
    assert!(fake.accepted().is_empty());

    let r = admin.call("POST", "/pushes", Some(&t), Some(push("aliyun-sms", "ali", chosen.clone()))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["provider_template"], chosen);
    eventually(Duration::from_secs(30), "two SMS at Aliyun", || fake.accepted().len() >= 2).await;
    let accepted = fake.accepted();
    let by_number: BTreeMap<&str, &Accepted> = accepted.iter().map(|a| (a.params["PhoneNumbers"].as_str(), a)).collect();
    assert_eq!(by_number["13800138000"].params["TemplateCode"], "SMS_200");
    assert_eq!(by_number["13800138000"].params["TemplateParam"], r#"{"text":"张三您好，今晚维护"}"#);
    assert_eq!(by_number["13900139000"].params["TemplateParam"], r#"{"text":"李四您好，今晚维护"}"#);
    assert_eq!(fake.answers(), ["OK", "OK"], "the fake checks the template's variables");

    // A tiered template keeps one provider template per template-based channel.
    let tpl = |provider: Value| json!({"title": "故障", "editor": "text", "body": "{{ host }} 故障", "provider": provider});
    let r = admin.call("POST", "/tiered/templates", Some(&t), Some(tpl(json!({"webhook": chosen})))).await;
    assert_eq!((r.status, r.error().1.as_deref()), (422, Some("provider.webhook")), "{}", r.text());
    let incident_template = json!({"code": "SMS_200", "params": [{"name": "text", "value": "{{ name }}：{{ host }} 故障"}]});
    let r = admin.call("POST", "/tiered/templates", Some(&t), Some(tpl(json!({"aliyun-sms": incident_template})))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["provider"]["aliyun-sms"]["code"], "SMS_200");
    let template = r.json()["id"].as_str().unwrap().to_string();

    // An action fired through the gateway sends it too, with the trigger's variables.
    let action = admin
        .call(
            "POST",
            "/tiered/actions",
            Some(&t),
            Some(json!({"title": "数据库告警", "templates": [template], "rules": [{"level": "urgent",
                "channels": [{"channel": "aliyun-sms", "account": "ali"}],
                "recipients": {"list": [{"to": "+8613700137000", "name": "王五"}]}}]})),
        )
        .await;
    assert_eq!(action.status, 201, "{}", action.text());
    let action = action.json()["id"].as_str().unwrap().to_string();
    let key = admin.call("POST", "/api-keys", Some(&t), None).await.json()["api_key"].as_str().unwrap().to_string();
    let fired = gw
        .post(
            &format!("/v1/actions/{action}/trigger"),
            Some(&key),
            &[("content-type", "application/json")],
            json!({"level": "urgent", "variables": {"host": "db1"}, "dedup_key": "db1"}).to_string(),
        )
        .await;
    assert_eq!(fired.status / 100, 2, "{}", fired.text());
    eventually(Duration::from_secs(30), "the incident's SMS at Aliyun", || fake.accepted().len() >= 3).await;
    let sms = fake.accepted().into_iter().find(|a| a.params["PhoneNumbers"] == "13700137000").expect("sent to 王五");
    assert_eq!(sms.params["TemplateCode"], "SMS_200");
    assert_eq!(sms.params["TemplateParam"], r#"{"text":"王五：db1 故障"}"#);
}
