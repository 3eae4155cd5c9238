//! Herald `aliyun-sms` channel plugin: Aliyun (Alibaba Cloud) Short Message
//! Service, Dysmsapi 2017-05-25, RPC style.
//!
//! # Provider API
//!
//! `SendSms` at `https://dysmsapi.aliyuncs.com/`, one request per delivery,
//! signed with Aliyun's RPC signature version 1.0 (HMAC-SHA1 over the
//! canonicalized, percent-encoded, sorted parameters; key `AccessKeySecret&`;
//! common parameters `AccessKeyId`, `Action`, `Format=JSON`, `RegionId`,
//! `SignatureMethod=HMAC-SHA1`, `SignatureNonce`, `SignatureVersion=1.0`,
//! `Timestamp` (ISO 8601 UTC), `Version`), sent as a form-encoded `POST`
//! (see `rpc.rs`). Action parameters: `PhoneNumbers`, `SignName`,
//! `TemplateCode`, `TemplateParam` (a JSON object of strings).
//!
//! Aliyun only sends approved templates: the delivery's text is **not** sent.
//! Keep the Herald content equal to the rendered template so the console shows
//! what the recipient got.
//!
//! `SignatureNonce` must be unique per request (Aliyun answers
//! `SignatureNonceUsed` otherwise). The sandbox has no randomness, so it is
//! SHA-256 of the delivery id, the attempt number and `ctx.now_ms`.
//!
//! Why one request per delivery although `SendSms` takes up to 1000
//! comma-separated numbers: one request gets one `BizId`, and delivery reports
//! are keyed by (`biz_id`, `phone_number`). `interpret` (contract 1.1) sees
//! only delivery ids, not their numbers, so it could not give each delivery of
//! a multi-number request its own provider id, and reports could not be
//! matched. One number per request keeps `BizId` a per-delivery id.
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "access_key_id": "LTAI5t...",
//!   "access_key_secret": "…",
//!   "sign_name": "阿里云短信测试",
//!   "template_code": "SMS_154950909",
//!   "template_params": ["code"],
//!   "region_id": "cn-hangzhou",
//!   "callback_token": "…"
//! }
//! ```
//!
//! - `access_key_id`, `access_key_secret` (secret): a RAM AccessKey allowed
//!   `dysms:SendSms`.
//! - `sign_name`, `template_code`: the approved signature and template.
//! - `template_params` (optional): delivery metadata keys (request metadata
//!   and recipient variables) that make up `TemplateParam`, e.g. `["code"]`
//!   sends `{"code":"<metadata code>"}`. Missing keys are left out; Aliyun
//!   then answers `isv.TEMPLATE_MISSING_PARAMETERS`.
//! - `region_id` (optional, default `cn-hangzhou`).
//! - `callback_token` (optional, secret): Aliyun's report push is not signed;
//!   when set, `parse-callback` accepts only requests whose URL carries
//!   `?token=<callback_token>` (configure the push URL with it).
//!
//! The account schema declares these keys (`x-herald-provider-template`), so
//! the console's pushes and tiered templates can choose a template code and
//! fill its parameters per recipient.
//! Per delivery, metadata may override `template_code` and `sign_name`, and
//! `template_param` (a JSON object, as a string) replaces the object built
//! from `template_params`.
//!
//! Recipients: E.164. `+86`/`0086` numbers are sent as the 11-digit national
//! number, other `+<country><number>` as `<country><number>` (Aliyun's
//! international format); anything else is sent as given and Aliyun judges it.
//!
//! # Outcomes
//!
//! | answer | outcome |
//! | --- | --- |
//! | `Code` `OK` | `sent`, provider id = `BizId` |
//! | `isv.BUSINESS_LIMIT_CONTROL` (minute/hour level), `Throttling*` | `throttled` |
//! | `isp.SYSTEM_ERROR`, `InternalError`, `ServiceUnavailable*`, `SignatureNonceUsed`, `InvalidTimeStamp.*`, HTTP 5xx | `retry` |
//! | `isv.BUSINESS_LIMIT_CONTROL` at day level (`触发天级流控…`: the number had its sends of the day) | `failed` |
//! | `isv.MOBILE_NUMBER_ILLEGAL`, other `isv.*`/`isp.*`, `SignatureDoesNotMatch`, `InvalidAccessKeyId.*`, other errors | `failed`, detail `<Code>: <Message>` |
//!
//! Units: 1 per send. Aliyun bills per segment (mainland: 70 characters, then
//! 67 per part, signature included; see `sms::segments_china`), but its answer
//! carries no segment count and `interpret` cannot see the text, so the count
//! is not known when the outcome is made. The report's `sms_size` has it, but
//! receipts cannot carry units (contract 1.1).
//!
//! # Delivery reports (`parse-callback`)
//!
//! Configure the receipt push URL (HTTP batch push mode) in the Aliyun console
//! as `https://<herald>/v1/callbacks/<tenant>/<account>?token=<callback_token>`.
//! Aliyun's `SmsReport` HTTP batch push: a JSON array of
//! `{"phone_number", "send_time", "report_time", "success", "err_code",
//! "err_msg", "sms_size", "biz_id", "out_id"}`. Each item becomes a receipt
//! for provider id `biz_id`: `delivered` when `success`, else `failed` with
//! `err_code err_msg`. The answer is `{"code":0,"msg":"成功"}`; a body that is
//! not such an array (or a wrong token) is an error, so the gateway answers 400
//! and Aliyun pushes again later.
//!
//! # Limits
//!
//! `max-batch` 100 (one request each). QPS limit 5000/s per Aliyun account;
//! mainland frequency limits per number (verification codes 1/min, 5/h, 10/day)
//! answer `isv.BUSINESS_LIMIT_CONTROL`; the message names the level, and only
//! the day level fails the delivery.

use std::collections::BTreeMap;

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome};
use serde::Deserialize;

mod rpc;

pub use rpc::error_outcome;

/// The plugin type exported to the host.
pub struct AliyunSms;

const HOST: &str = "dysmsapi.aliyuncs.com";
const VERSION: &str = "2017-05-25";
const MAX_DETAIL: usize = 300;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Aliyun SMS account",
  "x-herald-zh": {"title": "阿里云短信账号"},
  "type": "object",
  "required": ["access_key_id", "access_key_secret", "sign_name", "template_code"],
  "x-herald-provider-template": {"code": "template_code", "names": "template_params", "param": "template_param", "format": "object"},
  "additionalProperties": false,
  "properties": {
    "access_key_id": {"type": "string", "minLength": 1, "title": "AccessKey ID", "description": "RAM AccessKey ID.",
                      "x-herald-zh": {"title": "AccessKey ID", "description": "RAM 用户的 AccessKey ID。"}},
    "access_key_secret": {"type": "string", "minLength": 1, "title": "AccessKey Secret", "description": "RAM AccessKey secret.",
                          "x-herald-zh": {"title": "AccessKey Secret", "description": "RAM 用户的 AccessKey Secret。"}},
    "sign_name": {"type": "string", "minLength": 1, "title": "SMS signature", "description": "Approved SMS signature (SignName).",
                  "x-herald-zh": {"title": "短信签名", "description": "已审核通过的短信签名（SignName）。"}},
    "template_code": {"type": "string", "minLength": 1, "title": "Template code", "description": "Approved template code, e.g. SMS_154950909.",
                      "x-herald-zh": {"title": "模板CODE", "description": "已审核通过的模板CODE，例如 SMS_154950909。"}},
    "template_params": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": true,
                        "title": "Template parameters", "description": "Delivery metadata keys that make up TemplateParam.",
                        "x-herald-zh": {"title": "模板参数", "description": "组成 TemplateParam 的投递元数据键名。"}},
    "region_id": {"type": "string", "minLength": 1, "default": "cn-hangzhou", "x-herald-advanced": true,
                  "title": "Region", "description": "API region, default cn-hangzhou.",
                  "x-herald-zh": {"title": "地域", "description": "接口地域，默认 cn-hangzhou。"}},
    "callback_token": {"type": "string", "minLength": 8, "x-herald-advanced": true,
                       "title": "Callback token", "description": "When set, delivery-report pushes must carry ?token=<this>.",
                       "x-herald-zh": {"title": "回执校验令牌", "description": "设置后，状态报告推送必须带 ?token=<此值>。"}}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    access_key_id: String,
    access_key_secret: String,
    sign_name: String,
    template_code: String,
    #[serde(default)]
    template_params: Vec<String>,
    #[serde(default = "default_region")]
    region_id: String,
    #[serde(default)]
    callback_token: Option<String>,
}

fn default_region() -> String {
    "cn-hangzhou".into()
}

fn bad(field: &str, msg: &str) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        for (field, value) in [
            ("access_key_id", &a.access_key_id),
            ("access_key_secret", &a.access_key_secret),
            ("sign_name", &a.sign_name),
            ("template_code", &a.template_code),
            ("region_id", &a.region_id),
        ] {
            if value.trim().is_empty() {
                return Err(bad(field, "must not be empty"));
            }
        }
        for (i, p) in a.template_params.iter().enumerate() {
            if p.is_empty() {
                return Err(bad(&format!("template_params[{i}]"), "must not be empty"));
            }
            if a.template_params[..i].contains(p) {
                return Err(bad(&format!("template_params[{i}]"), "duplicate name"));
            }
        }
        if a.callback_token.as_ref().is_some_and(|t| t.len() < 8) {
            return Err(bad("callback_token", "at least 8 characters"));
        }
        Ok(a)
    }

    fn api(&self) -> rpc::Api<'_> {
        rpc::Api {
            host: HOST,
            version: VERSION,
            access_key_id: &self.access_key_id,
            access_key_secret: &self.access_key_secret,
            region_id: &self.region_id,
        }
    }
}

/// The number as Aliyun's `PhoneNumbers` takes it: mainland numbers without
/// `+86`, international ones as country code and number without `+`/`00`.
pub fn aliyun_number(recipient: &str) -> String {
    let r = recipient.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Mainland prefixes first, then any international prefix.
    for prefix in ["+86", "0086", "+", "00"] {
        if let Some(rest) = r.strip_prefix(prefix)
            && digits(rest)
        {
            return rest.to_string();
        }
    }
    r.to_string()
}

/// `TemplateParam` for a delivery, if any.
fn template_param(acc: &Account, d: &Delivery) -> Option<String> {
    if let Some(raw) = d.meta("template_param") {
        return Some(raw.to_string());
    }
    if acc.template_params.is_empty() {
        return None;
    }
    let obj: BTreeMap<&str, &str> = acc.template_params.iter().filter_map(|k| d.meta(k).map(|v| (k.as_str(), v))).collect();
    json::to_string(&obj).ok()
}

fn params(acc: &Account, d: &Delivery) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("PhoneNumbers".to_string(), aliyun_number(&d.recipient));
    p.insert("SignName".to_string(), d.meta("sign_name").unwrap_or(&acc.sign_name).to_string());
    p.insert("TemplateCode".to_string(), d.meta("template_code").unwrap_or(&acc.template_code).to_string());
    if let Some(tp) = template_param(acc, d) {
        p.insert("TemplateParam".to_string(), tp);
    }
    p
}

fn clip(s: &str) -> String {
    outcome::clip(s, MAX_DETAIL)
}

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    biz_id: Option<String>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    err_code: Option<String>,
    #[serde(default)]
    err_msg: Option<String>,
}

use rpc::reject;

impl Plugin for AliyunSms {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "aliyun-sms".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "sms".into(),
            formats: vec![ContentFormat::Text],
            max_batch: 100,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["access_key_secret".into(), "callback_token".into()],
            hosts: vec![HOST.into()],
            billing_unit: "segment".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let acc = Account::parse(account)?;
        let api = acc.api();
        Ok(batch
            .iter()
            .map(|d| {
                let nonce = rpc::nonce(&[&d.id], ctx.attempt, ctx.now_ms);
                let req = rpc::request(&api, "SendSms", params(&acc, d), ctx.now_ms, nonce);
                Outbound::http_one(d.id.clone(), req)
            })
            .collect())
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        let Response::Http(resp) = response else {
            return outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected response"));
        };
        rpc::interpret(&deliveries, &resp, ctx.now_ms, "BizId")
    }

    fn parse_callback(_ctx: CallContext, account: &str, request: HttpRequest) -> Result<CallbackReply, PluginError> {
        let acc = Account::parse(account)?;
        rpc::check_callback_token(&request.url, acc.callback_token.as_deref())?;
        let reports: Vec<Report> = json::from_slice(&request.body).map_err(|e| reject(&format!("not an SmsReport array: {e}")))?;
        let receipts = reports
            .into_iter()
            .filter_map(|r| {
                let biz_id = r.biz_id.filter(|b| !b.is_empty())?;
                let what = [r.err_code.as_deref(), r.err_msg.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
                let delivered = r.success == Some(true);
                Some(Receipt {
                    delivery_id: None,
                    provider_id: Some(biz_id),
                    status: if delivered { ReceiptStatus::Delivered } else { ReceiptStatus::Failed },
                    detail: (!what.is_empty()).then(|| clip(&what)),
                })
            })
            .collect();
        Ok(CallbackReply { receipts, response: rpc::report_ack() })
    }
}

export_plugin!(AliyunSms);

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str =
        r#"{"access_key_id":"LTAIid","access_key_secret":"s3cret","sign_name":"Herald","template_code":"SMS_1","template_params":["code","name"]}"#;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_123, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(id: &str, to: &str, meta: &[(&str, &str)]) -> Delivery {
        Delivery {
            id: id.into(),
            recipient: to.into(),
            subject: None,
            text: "您的验证码是 1234".into(),
            html: None,
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn form(body: &[u8]) -> BTreeMap<String, String> {
        std::str::from_utf8(body)
            .unwrap()
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (rpc::percent_decode(k), rpc::percent_decode(v))
            })
            .collect()
    }

    fn http_resp(status: u16, body: &str) -> Response {
        Response::Http(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() })
    }

    #[test]
    fn describe_and_validate() {
        let info = AliyunSms::describe();
        assert_eq!((info.name.as_str(), info.channel.as_str(), info.billing_unit.as_str()), ("aliyun-sms", "sms", "segment"));
        assert_eq!(info.hosts, vec![HOST.to_string()]);
        assert!(info.secret_fields.contains(&"access_key_secret".to_string()));
        json::from_str::<json::Value>(&info.account_schema).unwrap();
        assert!(AliyunSms::validate_account(ACCOUNT).is_ok());
        let err = |a: &str| match AliyunSms::validate_account(a) {
            Err(PluginError::BadConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(r#"{"access_key_id":"a","access_key_secret":"b","sign_name":"c"}"#).contains("template_code"));
        assert!(err(r#"{"access_key_id":" ","access_key_secret":"b","sign_name":"c","template_code":"d"}"#).starts_with("access_key_id:"));
        assert!(
            err(r#"{"access_key_id":"a","access_key_secret":"b","sign_name":"c","template_code":"d","template_params":["x","x"]}"#)
                .starts_with("template_params[1]: duplicate")
        );
        assert!(
            err(r#"{"access_key_id":"a","access_key_secret":"b","sign_name":"c","template_code":"d","callback_token":"short"}"#)
                .starts_with("callback_token:")
        );
        assert!(err(r#"{"access_key_id":"a","access_key_secret":"b","sign_name":"c","template_code":"d","x":1}"#).contains("unknown field"));
    }

    #[test]
    fn numbers() {
        assert_eq!(aliyun_number("+8613800138000"), "13800138000");
        assert_eq!(aliyun_number("008613800138000"), "13800138000");
        assert_eq!(aliyun_number("13800138000"), "13800138000");
        assert_eq!(aliyun_number("+85212345678"), "85212345678");
        assert_eq!(aliyun_number("+1 415"), "+1 415");
    }

    #[test]
    fn build_signs_one_request_per_delivery() {
        let batch = vec![
            delivery("m.0", "+8613800138000", &[("code", "1234"), ("name", "安")]),
            delivery("m.1", "+85212345678", &[("code", "9"), ("template_code", "SMS_2"), ("sign_name", "Other")]),
            delivery("m.2", "+8613900139000", &[("template_param", r#"{"x":"y"}"#)]),
        ];
        let out = AliyunSms::build(ctx(), ACCOUNT, batch).unwrap();
        assert_eq!(out.len(), 3);
        let mut nonces = Vec::new();
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.deliveries, vec![format!("m.{i}")]);
            let Request::Http(h) = &o.request else { panic!() };
            assert_eq!((h.method.as_str(), h.url.as_str()), ("POST", "https://dysmsapi.aliyuncs.com/"));
            assert!(h.headers.iter().any(|(k, v)| k == "Content-Type" && v.starts_with("application/x-www-form-urlencoded")));
            let mut p = form(&h.body);
            let sig = p.remove("Signature").unwrap();
            assert_eq!(rpc::signature("s3cret", "POST", &p), sig, "signature over the other parameters");
            assert_eq!(p["Action"], "SendSms");
            assert_eq!(p["Version"], "2017-05-25");
            assert_eq!(p["Format"], "JSON");
            assert_eq!(p["AccessKeyId"], "LTAIid");
            assert_eq!(p["SignatureMethod"], "HMAC-SHA1");
            assert_eq!(p["SignatureVersion"], "1.0");
            assert_eq!(p["RegionId"], "cn-hangzhou");
            assert_eq!(p["Timestamp"], "2023-11-14T22:13:20Z");
            nonces.push(p["SignatureNonce"].clone());
            match i {
                0 => {
                    assert_eq!(p["PhoneNumbers"], "13800138000");
                    assert_eq!(p["SignName"], "Herald");
                    assert_eq!(p["TemplateCode"], "SMS_1");
                    assert_eq!(p["TemplateParam"], r#"{"code":"1234","name":"安"}"#);
                }
                1 => {
                    assert_eq!(p["PhoneNumbers"], "85212345678");
                    assert_eq!(p["SignName"], "Other");
                    assert_eq!(p["TemplateCode"], "SMS_2");
                    assert_eq!(p["TemplateParam"], r#"{"code":"9"}"#, "missing names are left out");
                }
                _ => assert_eq!(p["TemplateParam"], r#"{"x":"y"}"#),
            }
        }
        nonces.sort();
        nonces.dedup();
        assert_eq!(nonces.len(), 3, "a nonce per request");
        // No template_params and no metadata: no TemplateParam at all.
        let acc = r#"{"access_key_id":"a","access_key_secret":"b","sign_name":"c","template_code":"d"}"#;
        let out = AliyunSms::build(ctx(), acc, vec![delivery("m.0", "13800138000", &[])]).unwrap();
        let Request::Http(h) = &out[0].request else { panic!() };
        assert!(!form(&h.body).contains_key("TemplateParam"));
    }

    #[test]
    fn interpret_outcomes() {
        let ids = vec!["m.0".to_string()];
        let ok = AliyunSms::interpret(
            ctx(),
            ACCOUNT,
            ids.clone(),
            http_resp(200, r#"{"Message":"OK","RequestId":"r","Code":"OK","BizId":"900619746936498440^0"}"#),
        );
        assert_eq!(ok[0].kind, OutcomeKind::Sent);
        assert_eq!(ok[0].provider_id.as_deref(), Some("900619746936498440^0"));
        assert_eq!(ok[0].units, 1);
        let kind = |status, body: &str| AliyunSms::interpret(ctx(), ACCOUNT, ids.clone(), http_resp(status, body))[0].clone();
        let o = kind(200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控Permits:1"}"#);
        assert_eq!(o.kind, OutcomeKind::Throttled);
        assert_eq!(o.detail.as_deref(), Some("isv.BUSINESS_LIMIT_CONTROL: 触发分钟级流控Permits:1"));
        assert_eq!(kind(200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发小时级流控Permits:5"}"#).kind, OutcomeKind::Throttled);
        let o = kind(200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发天级流控Permits:10"}"#);
        assert_eq!(
            (o.kind, o.detail.as_deref()),
            (OutcomeKind::Failed, Some("isv.BUSINESS_LIMIT_CONTROL: 触发天级流控Permits:10")),
            "the day's limit is not waited out"
        );
        assert_eq!(kind(400, r#"{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#).kind, OutcomeKind::Throttled);
        let o = kind(200, r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"非法手机号"}"#);
        assert_eq!((o.kind, o.detail.as_deref()), (OutcomeKind::Failed, Some("isv.MOBILE_NUMBER_ILLEGAL: 非法手机号")));
        assert_eq!(
            kind(400, r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation."}"#).kind,
            OutcomeKind::Failed
        );
        assert_eq!(kind(404, r#"{"Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}"#).kind, OutcomeKind::Failed);
        assert_eq!(kind(200, r#"{"Code":"isv.AMOUNT_NOT_ENOUGH","Message":"账户余额不足"}"#).kind, OutcomeKind::Failed);
        assert_eq!(kind(200, r#"{"Code":"isp.SYSTEM_ERROR","Message":"isp.SYSTEM_ERROR"}"#).kind, OutcomeKind::Retry);
        assert_eq!(kind(400, r#"{"Code":"SignatureNonceUsed","Message":"Specified signature nonce was used already."}"#).kind, OutcomeKind::Retry);
        assert_eq!(kind(503, r#"{"Code":"ServiceUnavailable","Message":"x"}"#).kind, OutcomeKind::Retry);
        assert_eq!(kind(502, "<html>bad gateway</html>").kind, OutcomeKind::Retry);
        assert_eq!(kind(200, "{}").kind, OutcomeKind::Retry, "a 200 without Code is not a send");
        assert_eq!(kind(403, "denied").kind, OutcomeKind::Failed);
        let long = format!(r#"{{"Code":"SignatureDoesNotMatch","Message":"{}"}}"#, "x".repeat(1000));
        assert!(kind(400, &long).detail.unwrap().len() < 320);
        let smtp = AliyunSms::interpret(ctx(), ACCOUNT, ids, Response::Smtp(SmtpReply { code: 250, message: "ok".into() }));
        assert_eq!(smtp[0].kind, OutcomeKind::Failed);
    }

    fn callback(url: &str, body: &str) -> HttpRequest {
        HttpRequest { method: "POST".into(), url: url.into(), headers: vec![], body: body.as_bytes().to_vec() }
    }

    #[test]
    fn delivery_reports() {
        let body = r#"[
          {"phone_number":"13800138000","send_time":"2017-01-01 00:00:00","report_time":"2017-01-01 00:00:00","success":true,
           "err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"12345^0","out_id":""},
          {"phone_number":"13900139000","success":false,"err_code":"MK:0001","err_msg":"空号","sms_size":"2","biz_id":"67890^0"},
          {"phone_number":"13900139000","success":true}
        ]"#;
        let r = AliyunSms::parse_callback(ctx(), ACCOUNT, callback("/v1/callbacks/t/a", body)).unwrap();
        assert_eq!(r.receipts.len(), 2, "an item without biz_id cannot be matched");
        assert_eq!(r.receipts[0].provider_id.as_deref(), Some("12345^0"));
        assert_eq!(r.receipts[0].status, ReceiptStatus::Delivered);
        assert_eq!(r.receipts[1].status, ReceiptStatus::Failed);
        assert_eq!(r.receipts[1].detail.as_deref(), Some("MK:0001 空号"));
        assert_eq!(r.response.status, 200);
        let answer: json::Value = json::from_slice(&r.response.body).unwrap();
        assert_eq!(answer["code"], 0);
        assert!(AliyunSms::parse_callback(ctx(), ACCOUNT, callback("/cb", "{\"not\":\"an array\"}")).is_err());

        let with_token = r#"{"access_key_id":"a","access_key_secret":"b","sign_name":"c","template_code":"d","callback_token":"tok-12345"}"#;
        assert!(AliyunSms::parse_callback(ctx(), with_token, callback("/cb", "[]")).is_err());
        assert!(AliyunSms::parse_callback(ctx(), with_token, callback("/cb?token=nope-1234", "[]")).is_err());
        assert!(AliyunSms::parse_callback(ctx(), with_token, callback("/cb?token=tok-12345", "[]")).is_ok());
    }
}
