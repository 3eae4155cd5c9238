//! Herald `tencent-sms` channel plugin: Tencent Cloud SMS, API 3.0 `SendSms`
//! (version 2021-01-11).
//!
//! # Provider API
//!
//! `POST https://sms.tencentcloudapi.com/` with a JSON body
//! `{"PhoneNumberSet", "SmsSdkAppId", "TemplateId", "SignName",
//! "TemplateParamSet", "SenderId"?, "ExtendCode"?}` and the headers
//! `X-TC-Action: SendSms`, `X-TC-Version: 2021-01-11`, `X-TC-Timestamp`,
//! `X-TC-Region`, `Content-Type: application/json; charset=utf-8` and
//! `Authorization`, signed with **TC3-HMAC-SHA256**:
//!
//! - canonical request: `POST\n/\n\n`, the canonical headers
//!   (`content-type:…\nhost:sms.tencentcloudapi.com\nx-tc-action:sendsms\n`,
//!   names and values lower-case), `\n`, the signed headers
//!   (`content-type;host;x-tc-action`), `\n`, hex SHA-256 of the body;
//! - string to sign: `TC3-HMAC-SHA256\n<timestamp>\n<date>/sms/tc3_request\n`
//!   then hex SHA-256 of the canonical request (`date` is the UTC date of
//!   the timestamp);
//! - key: HMAC-SHA256 chain `"TC3"+SecretKey` → date → `sms` →
//!   `tc3_request`; signature: hex HMAC-SHA256 of the string to sign;
//! - `Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request,
//!   SignedHeaders=content-type;host;x-tc-action, Signature=<hex>`.
//!
//! Tencent rejects timestamps more than 5 minutes off
//! (`AuthFailure.SignatureExpire`).
//!
//! Deliveries that share signature, template and template parameters are sent
//! together, up to 200 numbers per request (the documented maximum), domestic
//! (`+86`) and international numbers never mixed (Tencent requires one kind per
//! request), and a number at most once per request. Tencent answers one
//! `SendStatusSet` entry per number, in request order, each with its own
//! `SerialNo` and `Fee`, so every delivery gets its own outcome. Tencent only
//! sends approved templates: the delivery's text is **not** sent.
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "secret_id": "AKID…", "secret_key": "…",
//!   "sdk_app_id": "1400006666",
//!   "template_id": "1110",
//!   "sign_name": "腾讯云",
//!   "template_params": ["code", "minutes"],
//!   "region": "ap-guangzhou",
//!   "sender_id": "…", "extend_code": "…",
//!   "callback_token": "…"
//! }
//! ```
//!
//! - `secret_id`, `secret_key` (secret): a CAM API key allowed `sms:SendSms`.
//! - `sdk_app_id`, `template_id`: the SMS application and approved template.
//! - `sign_name` (required for Chinese mainland numbers): approved signature.
//! - `template_params` (optional): delivery metadata keys whose values, in
//!   this order, make up `TemplateParamSet` (`{1}`, `{2}`, …). A missing key
//!   is sent as an empty string.
//! - `region` (optional, default `ap-guangzhou`): `X-TC-Region`.
//! - `sender_id`, `extend_code` (optional): passed through.
//! - `callback_token` (optional, secret): Tencent's status push is not signed;
//!   when set, `parse-callback` accepts only URLs with `?token=<it>`.
//!
//! The account schema declares these keys (`x-herald-provider-template`), so
//! the console's pushes and tiered templates can choose a template code and
//! fill its parameters per recipient.
//! Per delivery, metadata may override `template_id` and `sign_name`, and
//! `template_param_set` (a JSON array of strings) replaces the parameters.
//!
//! # Outcomes
//!
//! Request-level `Response.Error.Code`:
//! `RequestLimitExceeded*` → `throttled`; `InternalError*`,
//! `AuthFailure.SignatureExpire` (clock skew), HTTP 5xx → `retry`; every other
//! error (`AuthFailure.SignatureFailure`, `AuthFailure.SecretIdNotFound`,
//! `UnauthorizedOperation.*`, `FailedOperation.*`, `InvalidParameter*`,
//! `LimitExceeded.PhoneNumberCountLimit`, …) → `failed` with
//! `<Code>: <Message>` for all deliveries of the request.
//!
//! Per number (`SendStatusSet[i].Code`): `Ok` → `sent`, provider id =
//! `SerialNo`, units = `Fee` (the number of segments Tencent bills for it);
//! `LimitExceeded.PhoneNumberThirtySecondLimit`, `RequestLimitExceeded*`,
//! `LimitExceeded.DeliveryFrequencyLimit` → `throttled` (30 s for the first);
//! `InternalError*` → `retry`; `LimitExceeded.PhoneNumberDailyLimit`,
//! `LimitExceeded.PhoneNumberOneHourLimit`,
//! `InvalidParameterValue.IncorrectPhoneNumber`,
//! `FailedOperation.PhoneNumberInBlacklist` and every other code → `failed`.
//!
//! # Delivery reports (`parse-callback`)
//!
//! Callback URL (set in the SMS console):
//! `https://<herald>/v1/callbacks/<tenant>/<account>?token=<callback_token>`.
//! Tencent's "SMS delivery status" push: a JSON array of
//! `{"user_receive_time", "nationcode", "mobile", "report_status", "errmsg",
//! "description", "sid"}`. Per item, provider id `sid` (the `SerialNo`):
//! `report_status` `SUCCESS` → `delivered`, `FAIL` → `failed` with `errmsg
//! description`. The answer is `{"result":0,"errmsg":"OK"}`.
//!
//! # Limits
//!
//! `max-batch` 200 (one request per 200 numbers with equal content); 3000
//! requests/s per account.

use std::collections::BTreeMap;

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, http, json, outcome, sign, time};
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct TencentSms;

const HOST: &str = "sms.tencentcloudapi.com";
const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const MAX_NUMBERS: usize = 200;
const MAX_DETAIL: usize = 300;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Tencent Cloud SMS account",
  "x-herald-zh": {"title": "腾讯云短信账号"},
  "type": "object",
  "required": ["secret_id", "secret_key", "sdk_app_id", "template_id"],
  "x-herald-provider-template": {"code": "template_id", "names": "template_params", "param": "template_param_set", "format": "array"},
  "additionalProperties": false,
  "properties": {
    "secret_id": {"type": "string", "minLength": 1, "title": "SecretId", "description": "API key SecretId (CAM).",
                  "x-herald-zh": {"title": "SecretId", "description": "访问管理（CAM）API 密钥的 SecretId。"}},
    "secret_key": {"type": "string", "minLength": 1, "title": "SecretKey", "description": "API key SecretKey (CAM).",
                   "x-herald-zh": {"title": "SecretKey", "description": "访问管理（CAM）API 密钥的 SecretKey。"}},
    "sdk_app_id": {"type": "string", "pattern": "^[0-9]+$", "title": "SdkAppId", "description": "The SMS application's SdkAppId, e.g. 1400006666.",
                   "x-herald-zh": {"title": "SdkAppId", "description": "短信应用的 SdkAppId，例如 1400006666。"}},
    "template_id": {"type": "string", "minLength": 1, "title": "Template ID", "description": "Approved template ID.",
                    "x-herald-zh": {"title": "模板ID", "description": "已审核通过的正文模板ID。"}},
    "sign_name": {"type": "string", "minLength": 1, "title": "Signature", "description": "Approved SMS signature; required for mainland China numbers.",
                  "x-herald-zh": {"title": "签名", "description": "已审核通过的短信签名内容；发送国内短信时必填。"}},
    "template_params": {"type": "array", "items": {"type": "string", "minLength": 1},
                        "title": "Template parameters", "description": "Delivery metadata keys that make up TemplateParamSet, in order.",
                        "x-herald-zh": {"title": "模板参数", "description": "按顺序组成 TemplateParamSet 的投递元数据键名。"}},
    "region": {"type": "string", "minLength": 1, "default": "ap-guangzhou", "x-herald-advanced": true,
               "title": "Region", "description": "API region, default ap-guangzhou.",
               "x-herald-zh": {"title": "地域", "description": "接口地域，默认 ap-guangzhou。"}},
    "sender_id": {"type": "string", "x-herald-advanced": true, "title": "Sender ID", "description": "Sender ID for international SMS.",
                  "x-herald-zh": {"title": "Sender ID", "description": "国际/港澳台短信的发送方 ID。"}},
    "extend_code": {"type": "string", "x-herald-advanced": true, "title": "Extend code", "description": "SMS extension code, if enabled.",
                    "x-herald-zh": {"title": "扩展码", "description": "短信码号扩展号（需开通）。"}},
    "callback_token": {"type": "string", "minLength": 8, "x-herald-advanced": true,
                       "title": "Callback token", "description": "When set, status-report pushes must carry ?token=<this>.",
                       "x-herald-zh": {"title": "回执校验令牌", "description": "设置后，状态回执推送必须带 ?token=<此值>。"}}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    secret_id: String,
    secret_key: String,
    sdk_app_id: String,
    template_id: String,
    #[serde(default)]
    sign_name: Option<String>,
    #[serde(default)]
    template_params: Vec<String>,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default)]
    sender_id: Option<String>,
    #[serde(default)]
    extend_code: Option<String>,
    #[serde(default)]
    callback_token: Option<String>,
}

fn default_region() -> String {
    "ap-guangzhou".into()
}

fn bad(field: &str, msg: &str) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        for (field, value) in [("secret_id", &a.secret_id), ("secret_key", &a.secret_key), ("template_id", &a.template_id), ("region", &a.region)] {
            if value.trim().is_empty() {
                return Err(bad(field, "must not be empty"));
            }
        }
        if a.sdk_app_id.is_empty() || !a.sdk_app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("sdk_app_id", "digits, e.g. 1400006666"));
        }
        if a.sign_name.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(bad("sign_name", "must not be empty"));
        }
        if a.template_params.iter().any(String::is_empty) {
            return Err(bad("template_params", "names must not be empty"));
        }
        if a.callback_token.as_ref().is_some_and(|t| t.len() < 8) {
            return Err(bad("callback_token", "at least 8 characters"));
        }
        Ok(a)
    }
}

/// TC3-HMAC-SHA256 pieces for one request.
pub struct Tc3<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub service: &'a str,
    pub host: &'a str,
    /// Unix seconds (`X-TC-Timestamp`).
    pub timestamp: u64,
}

impl Tc3<'_> {
    /// UTC date of the timestamp, `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        time::rfc3339(self.timestamp * 1000)[..10].to_string()
    }

    /// The canonical request over `headers` (lower-case name, value) which
    /// must be sorted by name and include `content-type` and `host`.
    pub fn canonical_request(&self, headers: &[(&str, &str)], payload: &[u8]) -> String {
        // Names and values lower-case, values trimmed, as Tencent's rules say.
        let canonical: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim().to_ascii_lowercase())).collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
        format!("POST\n/\n\n{canonical}\n{}\n{}", signed.join(";"), sign::sha256_hex(payload))
    }

    pub fn string_to_sign(&self, canonical_request: &str) -> String {
        format!(
            "TC3-HMAC-SHA256\n{}\n{}/{}/tc3_request\n{}",
            self.timestamp,
            self.date(),
            self.service,
            sign::sha256_hex(canonical_request.as_bytes())
        )
    }

    pub fn signature(&self, string_to_sign: &str) -> String {
        let k_date = sign::hmac_sha256(format!("TC3{}", self.secret_key).as_bytes(), self.date().as_bytes());
        let k_service = sign::hmac_sha256(&k_date, self.service.as_bytes());
        let k_signing = sign::hmac_sha256(&k_service, b"tc3_request");
        sign::hex(&sign::hmac_sha256(&k_signing, string_to_sign.as_bytes()))
    }

    /// The `Authorization` header value.
    pub fn authorization(&self, headers: &[(&str, &str)], payload: &[u8]) -> String {
        let sts = self.string_to_sign(&self.canonical_request(headers, payload));
        let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
        format!(
            "TC3-HMAC-SHA256 Credential={}/{}/{}/tc3_request, SignedHeaders={}, Signature={}",
            self.secret_id,
            self.date(),
            self.service,
            signed.join(";"),
            self.signature(&sts)
        )
    }
}

/// Whether a recipient is a Chinese mainland number (Tencent wants domestic
/// and international numbers in separate requests).
fn domestic(recipient: &str) -> bool {
    let r = recipient.trim();
    r.starts_with("+86") || r.starts_with("0086") || !(r.starts_with('+') || r.starts_with("00"))
}

/// What deliveries must share to go in one request.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Key {
    domestic: bool,
    template_id: String,
    sign_name: Option<String>,
    params: Vec<String>,
}

fn key(acc: &Account, d: &Delivery) -> Key {
    let params = match d.meta("template_param_set").map(json::from_str::<Vec<json::Value>>) {
        // Numbers and strings alike become strings; anything else is sent as its JSON.
        Some(Ok(list)) => list.into_iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect(),
        Some(Err(_)) => vec![d.meta("template_param_set").unwrap_or_default().to_string()],
        None => acc.template_params.iter().map(|k| d.meta(k).unwrap_or_default().to_string()).collect(),
    };
    Key {
        domestic: domestic(&d.recipient),
        template_id: d.meta("template_id").unwrap_or(&acc.template_id).to_string(),
        sign_name: d.meta("sign_name").map(str::to_string).or_else(|| acc.sign_name.clone()),
        params,
    }
}

fn request(acc: &Account, key: &Key, numbers: Vec<&str>, now_ms: u64) -> Result<HttpRequest, PluginError> {
    let mut body = json::json!({
        "PhoneNumberSet": numbers,
        "SmsSdkAppId": acc.sdk_app_id,
        "TemplateId": key.template_id,
        "TemplateParamSet": key.params,
    });
    if let Some(s) = &key.sign_name {
        body["SignName"] = json::json!(s);
    }
    if let Some(s) = &acc.sender_id {
        body["SenderId"] = json::json!(s);
    }
    if let Some(s) = &acc.extend_code {
        body["ExtendCode"] = json::json!(s);
    }
    let payload = json::to_vec(&body).map_err(|e| PluginError::Internal(format!("cannot serialize body: {e}")))?;
    let tc3 = Tc3 { secret_id: &acc.secret_id, secret_key: &acc.secret_key, service: SERVICE, host: HOST, timestamp: now_ms / 1000 };
    let action = ACTION.to_ascii_lowercase();
    let authorization = tc3.authorization(&[("content-type", CONTENT_TYPE), ("host", HOST), ("x-tc-action", &action)], &payload);
    Ok(http::post(
        &format!("https://{HOST}/"),
        vec![
            ("Authorization".into(), authorization),
            ("Content-Type".into(), CONTENT_TYPE.into()),
            ("X-TC-Action".into(), ACTION.into()),
            ("X-TC-Version".into(), VERSION.into()),
            ("X-TC-Timestamp".into(), tc3.timestamp.to_string()),
            ("X-TC-Region".into(), acc.region.clone()),
        ],
        payload,
    ))
}

fn clip(s: &str) -> String {
    outcome::clip(s, MAX_DETAIL)
}

/// The outcome of a request-level error `code`.
fn request_error(id: &str, status: u16, code: &str, message: &str, retry_after: Option<u64>) -> Outcome {
    let detail = clip(&format!("{code}: {message}"));
    if code.starts_with("RequestLimitExceeded") {
        outcome::throttled(id, detail).with_retry_after_ms(retry_after)
    } else if code.starts_with("InternalError") || code == "AuthFailure.SignatureExpire" || status >= 500 {
        outcome::retry(id, detail).with_retry_after_ms(retry_after)
    } else {
        outcome::failed(id, detail)
    }
}

/// The outcome of one `SendStatusSet` entry.
fn status_outcome(id: &str, s: &SendStatus) -> Outcome {
    let code = s.code.as_deref().unwrap_or("");
    let detail = clip(&format!("{code}: {}", s.message.as_deref().unwrap_or("")));
    match code {
        "Ok" => {
            let o = outcome::sent(id, "").with_units(s.fee.unwrap_or(1).max(1));
            match s.serial_no.as_deref().filter(|n| !n.is_empty()) {
                Some(n) => o.with_provider_id(n),
                None => o,
            }
        }
        "LimitExceeded.PhoneNumberThirtySecondLimit" => outcome::throttled(id, detail).with_retry_after_ms(Some(30_000)),
        c if c.starts_with("RequestLimitExceeded") || c == "LimitExceeded.DeliveryFrequencyLimit" => outcome::throttled(id, detail),
        c if c.starts_with("InternalError") => outcome::retry(id, detail),
        _ => outcome::failed(id, detail),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    response: AnswerBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AnswerBody {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    send_status_set: Option<Vec<SendStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    #[serde(default)]
    serial_no: Option<String>,
    #[serde(default)]
    fee: Option<u32>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    report_status: Option<String>,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

fn reject(why: &str) -> PluginError {
    PluginError::InvalidDelivery(format!("callback rejected: {why}"))
}

/// The query parameter `name` of an origin-form request target, decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| http::percent_decode(v))
    })
}

impl Plugin for TencentSms {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "tencent-sms".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "sms".into(),
            formats: vec![ContentFormat::Text],
            max_batch: MAX_NUMBERS as u32,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["secret_key".into(), "callback_token".into()],
            hosts: vec![HOST.into()],
            billing_unit: "segment".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let acc = Account::parse(account)?;
        // Group by content, keeping the batch order inside each group.
        let mut groups: BTreeMap<Key, Vec<Vec<&Delivery>>> = BTreeMap::new();
        for d in &batch {
            let chunks = groups.entry(key(&acc, d)).or_default();
            let number = d.recipient.trim();
            let fits = chunks.last().is_some_and(|c| c.len() < MAX_NUMBERS && !c.iter().any(|o| o.recipient.trim() == number));
            if fits {
                chunks.last_mut().expect("non-empty").push(d);
            } else {
                chunks.push(vec![d]);
            }
        }
        let mut out = Vec::new();
        for (key, chunks) in &groups {
            for chunk in chunks {
                let numbers = chunk.iter().map(|d| d.recipient.trim()).collect();
                let req = request(&acc, key, numbers, ctx.now_ms)?;
                out.push(Outbound::http(chunk.iter().map(|d| d.id.clone()).collect(), req));
            }
        }
        Ok(out)
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        let Response::Http(resp) = response else {
            return outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected response"));
        };
        let retry_after = http::retry_after_ms(&resp, ctx.now_ms);
        let answer = match json::from_slice::<Answer>(&resp.body) {
            Ok(a) if (200..300).contains(&resp.status) || a.response.error.is_some() => a.response,
            // Not an API 3.0 answer: the HTTP status decides, and a 2xx
            // without a status set is not a send.
            _ => {
                return outcome::from_http_status(&deliveries, &resp, ctx.now_ms)
                    .into_iter()
                    .map(|o| if o.kind == OutcomeKind::Sent { outcome::retry(o.delivery_id, "answer without Response") } else { o })
                    .collect();
            }
        };
        if let Some(e) = answer.error {
            return outcome::for_all(&deliveries, |id| request_error(id, resp.status, &e.code, &e.message, retry_after));
        }
        let set = answer.send_status_set.unwrap_or_default();
        if set.len() != deliveries.len() {
            // The answer cannot be matched to the numbers; the request did reach Tencent.
            let detail = format!("SendSms answered {} statuses for {} numbers", set.len(), deliveries.len());
            return outcome::for_all(&deliveries, |id| outcome::failed(id, detail.clone()));
        }
        deliveries.iter().zip(&set).map(|(id, s)| status_outcome(id, s)).collect()
    }

    fn parse_callback(_ctx: CallContext, account: &str, request: HttpRequest) -> Result<CallbackReply, PluginError> {
        let acc = Account::parse(account)?;
        if let Some(token) = &acc.callback_token {
            match query_param(&request.url, "token") {
                Some(t) if sign::same_secret(&t, token) => {}
                _ => return Err(reject("missing or wrong token")),
            }
        }
        let reports: Vec<Report> = json::from_slice(&request.body).map_err(|e| reject(&format!("not a status report array: {e}")))?;
        let receipts = reports
            .into_iter()
            .filter_map(|r| {
                let sid = r.sid.filter(|s| !s.is_empty())?;
                let status = match r.report_status.as_deref() {
                    Some("SUCCESS") => ReceiptStatus::Delivered,
                    Some("FAIL") => ReceiptStatus::Failed,
                    _ => return None,
                };
                let what = [r.errmsg.as_deref(), r.description.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
                Some(Receipt { delivery_id: None, provider_id: Some(sid), status, detail: (!what.is_empty()).then(|| clip(&what)) })
            })
            .collect();
        Ok(CallbackReply {
            receipts,
            response: HttpResponse {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json; charset=utf-8".into())],
                body: br#"{"result":0,"errmsg":"OK"}"#.to_vec(),
            },
        })
    }
}

export_plugin!(TencentSms);

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = r#"{"secret_id":"AKIDtest","secret_key":"k3y","sdk_app_id":"1400006666","template_id":"1110","sign_name":"腾讯云","template_params":["code"]}"#;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_551_113_065_000, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(id: &str, to: &str, meta: &[(&str, &str)]) -> Delivery {
        Delivery {
            id: id.into(),
            recipient: to.into(),
            subject: None,
            text: "x".into(),
            html: None,
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn header<'a>(h: &'a HttpRequest, name: &str) -> &'a str {
        h.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap()
    }

    #[test]
    fn documented_tc3_example() {
        // The worked example of Tencent Cloud's "Signature v3" documentation
        // (CVM DescribeInstances, 1551113065).
        let tc3 = Tc3 {
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            secret_key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service: "cvm",
            host: "cvm.tencentcloudapi.com",
            timestamp: 1_551_113_065,
        };
        let payload = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let headers = [("content-type", "application/json; charset=utf-8"), ("host", "cvm.tencentcloudapi.com")];
        let cr = tc3.canonical_request(&headers, payload);
        assert_eq!(
            cr,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n\
             35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let sts = tc3.string_to_sign(&cr);
        assert_eq!(sts, "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031");
        assert_eq!(tc3.signature(&sts), "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168");
        assert_eq!(
            tc3.authorization(&headers, payload),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn validate() {
        assert!(TencentSms::validate_account(ACCOUNT).is_ok());
        for (acc, field) in [
            (r#"{"secret_id":"a","secret_key":"b","sdk_app_id":"14x","template_id":"1"}"#, "sdk_app_id"),
            (r#"{"secret_id":"a","secret_key":"b","sdk_app_id":"14"}"#, "template_id"),
            (r#"{"secret_id":"","secret_key":"b","sdk_app_id":"14","template_id":"1"}"#, "secret_id"),
            (r#"{"secret_id":"a","secret_key":"b","sdk_app_id":"14","template_id":"1","callback_token":"x"}"#, "callback_token"),
        ] {
            match TencentSms::validate_account(acc) {
                Err(PluginError::BadConfig(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{acc}: {other:?}"),
            }
        }
        let info = TencentSms::describe();
        assert_eq!((info.max_batch, info.billing_unit.as_str()), (200, "segment"));
        json::from_str::<json::Value>(&info.account_schema).unwrap();
    }

    #[test]
    fn build_groups_by_content_and_kind() {
        let mut batch = vec![
            delivery("m.0", "+8613800138000", &[("code", "1")]),
            delivery("m.1", "+8613900139000", &[("code", "1")]),
            delivery("m.2", "+8613700137000", &[("code", "2")]),
            delivery("m.3", "+6598765432", &[("code", "1")]),
            delivery("m.4", "+8613800138000", &[("code", "1")]),
        ];
        for i in 0..201 {
            batch.push(delivery(&format!("n.{i}"), &format!("+86138{i:08}"), &[("code", "9")]));
        }
        let out = TencentSms::build(ctx(), ACCOUNT, batch).unwrap();
        let ids: Vec<Vec<String>> = out.iter().map(|o| o.deliveries.clone()).collect();
        assert!(ids.contains(&vec!["m.0".to_string(), "m.1".to_string()]), "same content, domestic: one request");
        assert!(ids.contains(&vec!["m.4".to_string()]), "a number at most once per request");
        assert!(ids.contains(&vec!["m.2".to_string()]));
        assert!(ids.contains(&vec!["m.3".to_string()]), "international numbers go separately");
        assert_eq!(ids.iter().filter(|v| v[0].starts_with("n.")).map(Vec::len).collect::<Vec<_>>(), vec![200, 1]);
        assert_eq!(ids.iter().map(Vec::len).sum::<usize>(), 206);

        let o = out.iter().find(|o| o.deliveries[0] == "m.0").unwrap();
        let Request::Http(h) = &o.request else { panic!() };
        assert_eq!((h.method.as_str(), h.url.as_str()), ("POST", "https://sms.tencentcloudapi.com/"));
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(
            body,
            json::json!({"PhoneNumberSet": ["+8613800138000", "+8613900139000"], "SmsSdkAppId": "1400006666",
                         "TemplateId": "1110", "TemplateParamSet": ["1"], "SignName": "腾讯云"})
        );
        assert_eq!(header(h, "x-tc-action"), "SendSms");
        assert_eq!(header(h, "x-tc-version"), "2021-01-11");
        assert_eq!(header(h, "x-tc-region"), "ap-guangzhou");
        assert_eq!(header(h, "x-tc-timestamp"), "1551113065");
        assert_eq!(header(h, "content-type"), CONTENT_TYPE);
        let tc3 = Tc3 { secret_id: "AKIDtest", secret_key: "k3y", service: "sms", host: HOST, timestamp: 1_551_113_065 };
        let want = tc3.authorization(&[("content-type", CONTENT_TYPE), ("host", HOST), ("x-tc-action", "sendsms")], &h.body);
        assert_eq!(header(h, "authorization"), want);
        assert!(
            want.starts_with(
                "TC3-HMAC-SHA256 Credential=AKIDtest/2019-02-25/sms/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature="
            )
        );
    }

    #[test]
    fn metadata_overrides() {
        let out = TencentSms::build(
            ctx(),
            ACCOUNT,
            vec![delivery("m.0", "+8613800138000", &[("template_param_set", r#"["a", 5]"#), ("template_id", "7"), ("sign_name", "S")])],
        )
        .unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(body["TemplateParamSet"], json::json!(["a", "5"]));
        assert_eq!(body["TemplateId"], "7");
        assert_eq!(body["SignName"], "S");
    }

    fn resp(body: &str) -> Response {
        Response::Http(HttpResponse { status: 200, headers: vec![], body: body.as_bytes().to_vec() })
    }

    #[test]
    fn per_number_outcomes() {
        let ids: Vec<String> = (0..6).map(|i| format!("m.{i}")).collect();
        let body = r#"{"Response":{"SendStatusSet":[
            {"SerialNo":"2640:1","PhoneNumber":"+8613800138000","Fee":3,"SessionContext":"","Code":"Ok","Message":"send success","IsoCode":"CN"},
            {"SerialNo":"","PhoneNumber":"+86138","Fee":0,"Code":"InvalidParameterValue.IncorrectPhoneNumber","Message":"invalid mobile number"},
            {"SerialNo":"","PhoneNumber":"+8613900139000","Fee":0,"Code":"LimitExceeded.PhoneNumberDailyLimit","Message":"daily limit"},
            {"SerialNo":"","Fee":0,"Code":"LimitExceeded.PhoneNumberThirtySecondLimit","Message":"30s"},
            {"SerialNo":"","Fee":0,"Code":"InternalError.Timeout","Message":"timeout"},
            {"SerialNo":"2640:6","Fee":1,"Code":"Ok","Message":"send success"}
        ],"RequestId":"r"}}"#;
        let v = TencentSms::interpret(ctx(), ACCOUNT, ids.clone(), resp(body));
        let kinds: Vec<_> = v.iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            vec![OutcomeKind::Sent, OutcomeKind::Failed, OutcomeKind::Failed, OutcomeKind::Throttled, OutcomeKind::Retry, OutcomeKind::Sent]
        );
        assert_eq!((v[0].provider_id.as_deref(), v[0].units), (Some("2640:1"), 3));
        assert_eq!(v[1].detail.as_deref(), Some("InvalidParameterValue.IncorrectPhoneNumber: invalid mobile number"));
        assert_eq!(v[3].retry_after_ms, Some(30_000));
        assert_eq!(v[5].delivery_id, "m.5");

        let short = TencentSms::interpret(ctx(), ACCOUNT, ids[..2].to_vec(), resp(r#"{"Response":{"SendStatusSet":[],"RequestId":"r"}}"#));
        assert_eq!(short[0].kind, OutcomeKind::Failed);
    }

    #[test]
    fn request_errors() {
        let ids = vec!["m.0".to_string(), "m.1".to_string()];
        let err = |code: &str| {
            let body = format!(r#"{{"Response":{{"Error":{{"Code":"{code}","Message":"m"}},"RequestId":"r"}}}}"#);
            TencentSms::interpret(ctx(), ACCOUNT, ids.clone(), resp(&body))
        };
        assert!(err("RequestLimitExceeded").iter().all(|o| o.kind == OutcomeKind::Throttled));
        assert_eq!(err("AuthFailure.SignatureFailure")[1].kind, OutcomeKind::Failed);
        assert_eq!(err("AuthFailure.SignatureFailure")[1].detail.as_deref(), Some("AuthFailure.SignatureFailure: m"));
        assert_eq!(err("AuthFailure.SecretIdNotFound")[0].kind, OutcomeKind::Failed);
        assert_eq!(err("AuthFailure.SignatureExpire")[0].kind, OutcomeKind::Retry);
        assert_eq!(err("InternalError")[0].kind, OutcomeKind::Retry);
        assert_eq!(err("LimitExceeded.PhoneNumberCountLimit")[0].kind, OutcomeKind::Failed);
        let gw = Response::Http(HttpResponse { status: 502, headers: vec![], body: b"bad gateway".to_vec() });
        assert_eq!(TencentSms::interpret(ctx(), ACCOUNT, ids.clone(), gw)[0].kind, OutcomeKind::Retry);
        let odd = Response::Http(HttpResponse { status: 200, headers: vec![], body: b"{}".to_vec() });
        assert_eq!(TencentSms::interpret(ctx(), ACCOUNT, ids, odd)[0].kind, OutcomeKind::Retry);
    }

    #[test]
    fn status_reports() {
        let body = r#"[
          {"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13800138000","report_status":"SUCCESS","errmsg":"DELIVRD","description":"用户短信送达成功","sid":"2640:1"},
          {"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13900139000","report_status":"FAIL","errmsg":"MK:0001","description":"空号","sid":"2640:2"},
          {"report_status":"SUCCESS"}
        ]"#;
        let req = HttpRequest { method: "POST".into(), url: "/cb".into(), headers: vec![], body: body.as_bytes().to_vec() };
        let r = TencentSms::parse_callback(ctx(), ACCOUNT, req).unwrap();
        assert_eq!(r.receipts.len(), 2);
        assert_eq!((r.receipts[0].provider_id.as_deref(), r.receipts[0].status), (Some("2640:1"), ReceiptStatus::Delivered));
        assert_eq!((r.receipts[1].status, r.receipts[1].detail.as_deref()), (ReceiptStatus::Failed, Some("MK:0001 空号")));
        assert_eq!(r.response.body, br#"{"result":0,"errmsg":"OK"}"#.to_vec());
        let with_token = r#"{"secret_id":"a","secret_key":"b","sdk_app_id":"14","template_id":"1","callback_token":"tok-123456"}"#;
        let req = |url: &str| HttpRequest { method: "POST".into(), url: url.into(), headers: vec![], body: b"[]".to_vec() };
        assert!(TencentSms::parse_callback(ctx(), with_token, req("/cb?token=wrong-1234")).is_err());
        assert!(TencentSms::parse_callback(ctx(), with_token, req("/cb?a=1&token=tok-123456")).is_ok());
        assert!(TencentSms::parse_callback(ctx(), ACCOUNT, HttpRequest { body: b"{".to_vec(), ..req("/cb") }).is_err());
    }
}
