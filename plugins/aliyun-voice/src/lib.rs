//! Herald `aliyun-voice` channel plugin: Aliyun (Alibaba Cloud) Voice
//! Messaging Service, Dyvmsapi 2017-05-25, RPC style.
//!
//! # Provider API
//!
//! `SingleCallByTts` at `https://dyvmsapi.aliyuncs.com/`: one text-to-speech
//! call per delivery (the API takes one `CalledNumber` per request). Signed
//! like every Aliyun RPC API: signature version 1.0, HMAC-SHA1 over the
//! canonicalized parameters with key `AccessKeySecret&` (shared with the
//! aliyun-sms plugin, `../aliyun-sms/src/rpc.rs`), form-encoded `POST`.
//! Parameters: `CalledNumber`, `TtsCode`, `TtsParam` (JSON object of
//! strings), and when configured `CalledShowNumber` (without it the call uses
//! the public number pool), `PlayTimes` (1-3), `Volume` (0-100), `Speed`
//! (-500..500).
//!
//! Aliyun speaks approved TTS templates only: the delivery's text is **not**
//! sent. Keep the Herald content equal to the rendered template.
//!
//! `SignatureNonce` is SHA-256 of the delivery id, attempt and `ctx.now_ms`
//! (the sandbox has no randomness; Aliyun only needs it unique).
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "access_key_id": "LTAI5t...",
//!   "access_key_secret": "…",
//!   "tts_code": "TTS_10001",
//!   "tts_params": ["code"],
//!   "called_show_number": "057100000000",
//!   "play_times": 2, "volume": 100, "speed": 0,
//!   "region_id": "cn-hangzhou",
//!   "callback_token": "…"
//! }
//! ```
//!
//! - `access_key_id`, `access_key_secret` (secret): a RAM AccessKey allowed
//!   `dyvms:SingleCallByTts`.
//! - `tts_code`: the approved TTS template.
//! - `tts_params` (optional): delivery metadata keys that make up `TtsParam`.
//! - `called_show_number` (optional): the caller number shown (dedicated
//!   mode); leave it out for the public pool.
//! - `play_times`, `volume`, `speed` (optional): passed through.
//! - `region_id` (optional, default `cn-hangzhou`).
//! - `callback_token` (optional, secret): reports must carry `?token=<it>`.
//!
//! The account schema declares these keys (`x-herald-provider-template`), so
//! the console's pushes and tiered templates can choose a template code and
//! fill its parameters per recipient.
//! Per delivery, metadata may override `tts_code` and `called_show_number`,
//! and `tts_param` (a JSON object, as a string) replaces the object built
//! from `tts_params`. Recipients: `+86` numbers are sent as the national
//! number (the service calls Chinese mainland numbers only).
//!
//! # Outcomes
//!
//! `Code` `OK` → `sent`, provider id = `CallId`. `isv.BUSINESS_LIMIT_CONTROL`
//! (per number: 1 call/min, 5/h, 20/24 h) and `Throttling*` → `throttled`,
//! except the day level (`触发号码天级流控`), which fails that number;
//! `isp.SYSTEM_ERROR`, `InternalError`, `ServiceUnavailable*`,
//! `SignatureNonceUsed`, `InvalidTimeStamp.*`, HTTP 5xx → `retry`; anything
//! else (`SignatureDoesNotMatch`, `InvalidAccessKeyId.NotFound`, other
//! `isv.*`) → `failed` with `<Code>: <Message>`.
//!
//! Units (`minute`): 1 per call at send. The call's length is only known from
//! the report (`duration`, seconds): `callback-usage` (contract 1.2) reports
//! an answered call's started minutes, which the host bills beyond the first.
//!
//! # Call reports (`parse-callback`)
//!
//! Push URL: `https://<herald>/v1/callbacks/<tenant>/<account>?token=<callback_token>`.
//! Aliyun's `VoiceReport` HTTP push: a JSON array of `{"call_id",
//! "status_code", "status_msg", "duration", "start_time", "end_time",
//! "out_id", ...}`. Per item, provider id `call_id`: `200000` (listened to
//! the end) and `200001` (hung up early, but answered) are `delivered`;
//! intermediate call states (`2001xx`, `200201`, DTMF `300000`) are skipped;
//! every other code (busy, no answer, empty number, powered off, ...) is
//! `failed` with the code and message. The answer is `{"code":0,"msg":"成功"}`.
//!
//! # Limits
//!
//! `max-batch` 100 (one call each); 1000 requests/s per account.

use std::collections::BTreeMap;

use herald_plugin_sdk::time::started_minutes;
use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome};
use serde::Deserialize;

#[path = "../../aliyun-sms/src/rpc.rs"]
mod rpc;

/// The plugin type exported to the host.
pub struct AliyunVoice;

const HOST: &str = "dyvmsapi.aliyuncs.com";
const VERSION: &str = "2017-05-25";
const MAX_DETAIL: usize = 300;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Aliyun voice account",
  "x-herald-zh": {"title": "阿里云语音账号"},
  "type": "object",
  "required": ["access_key_id", "access_key_secret", "tts_code"],
  "x-herald-provider-template": {"code": "tts_code", "names": "tts_params", "param": "tts_param", "format": "object"},
  "additionalProperties": false,
  "properties": {
    "access_key_id": {"type": "string", "minLength": 1, "title": "AccessKey ID", "description": "RAM AccessKey ID.",
                      "x-herald-zh": {"title": "AccessKey ID", "description": "RAM 用户的 AccessKey ID。"}},
    "access_key_secret": {"type": "string", "minLength": 1, "title": "AccessKey Secret", "description": "RAM AccessKey secret.",
                          "x-herald-zh": {"title": "AccessKey Secret", "description": "RAM 用户的 AccessKey Secret。"}},
    "tts_code": {"type": "string", "minLength": 1, "title": "TTS template code", "description": "Approved TTS template code.",
                 "x-herald-zh": {"title": "语音模板CODE", "description": "已审核通过的文本转语音（TTS）模板CODE。"}},
    "tts_params": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": true,
                   "title": "Template parameters", "description": "Delivery metadata keys that make up TtsParam.",
                   "x-herald-zh": {"title": "模板参数", "description": "组成 TtsParam 的投递元数据键名。"}},
    "called_show_number": {"type": "string", "minLength": 1, "title": "Caller number", "description": "The number the callee sees; default the platform's public number.",
                           "x-herald-zh": {"title": "主叫显示号码", "description": "被叫看到的号码；不填则使用公共号码。"}},
    "play_times": {"type": "integer", "minimum": 1, "maximum": 3, "x-herald-advanced": true, "title": "Play times", "description": "How many times the message is played (1-3).",
                   "x-herald-zh": {"title": "播放次数", "description": "语音播放次数（1-3）。"}},
    "volume": {"type": "integer", "minimum": 0, "maximum": 100, "x-herald-advanced": true, "title": "Volume", "description": "Playback volume (0-100).",
               "x-herald-zh": {"title": "音量", "description": "播放音量（0-100）。"}},
    "speed": {"type": "integer", "minimum": -500, "maximum": 500, "x-herald-advanced": true, "title": "Speech rate", "description": "Speech rate (-500 to 500).",
              "x-herald-zh": {"title": "语速", "description": "语速（-500 至 500）。"}},
    "region_id": {"type": "string", "minLength": 1, "default": "cn-hangzhou", "x-herald-advanced": true,
                  "title": "Region", "description": "API region, default cn-hangzhou.",
                  "x-herald-zh": {"title": "地域", "description": "接口地域，默认 cn-hangzhou。"}},
    "callback_token": {"type": "string", "minLength": 8, "x-herald-advanced": true,
                       "title": "Callback token", "description": "When set, call-report pushes must carry ?token=<this>.",
                       "x-herald-zh": {"title": "回执校验令牌", "description": "设置后，呼叫报告推送必须带 ?token=<此值>。"}}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    access_key_id: String,
    access_key_secret: String,
    tts_code: String,
    #[serde(default)]
    tts_params: Vec<String>,
    #[serde(default)]
    called_show_number: Option<String>,
    #[serde(default)]
    play_times: Option<u8>,
    #[serde(default)]
    volume: Option<u8>,
    #[serde(default)]
    speed: Option<i16>,
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
        for (field, value) in
            [("access_key_id", &a.access_key_id), ("access_key_secret", &a.access_key_secret), ("tts_code", &a.tts_code), ("region_id", &a.region_id)]
        {
            if value.trim().is_empty() {
                return Err(bad(field, "must not be empty"));
            }
        }
        for (i, p) in a.tts_params.iter().enumerate() {
            if p.is_empty() || a.tts_params[..i].contains(p) {
                return Err(bad(&format!("tts_params[{i}]"), "empty or duplicate name"));
            }
        }
        if a.called_show_number.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(bad("called_show_number", "must not be empty"));
        }
        if a.play_times.is_some_and(|n| !(1..=3).contains(&n)) {
            return Err(bad("play_times", "1 to 3"));
        }
        if a.volume.is_some_and(|n| n > 100) {
            return Err(bad("volume", "0 to 100"));
        }
        if a.speed.is_some_and(|n| !(-500..=500).contains(&n)) {
            return Err(bad("speed", "-500 to 500"));
        }
        if a.callback_token.as_ref().is_some_and(|t| t.len() < 8) {
            return Err(bad("callback_token", "at least 8 characters"));
        }
        Ok(a)
    }
}

/// The national number for `+86`/`0086` numbers; anything else as given.
pub fn called_number(recipient: &str) -> String {
    let r = recipient.trim();
    for prefix in ["+86", "0086"] {
        if let Some(rest) = r.strip_prefix(prefix)
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
        {
            return rest.to_string();
        }
    }
    r.to_string()
}

fn params(acc: &Account, d: &Delivery) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("CalledNumber".to_string(), called_number(&d.recipient));
    p.insert("TtsCode".to_string(), d.meta("tts_code").unwrap_or(&acc.tts_code).to_string());
    let tts_param = match d.meta("tts_param") {
        Some(raw) => Some(raw.to_string()),
        None if acc.tts_params.is_empty() => None,
        None => {
            let obj: BTreeMap<&str, &str> = acc.tts_params.iter().filter_map(|k| d.meta(k).map(|v| (k.as_str(), v))).collect();
            json::to_string(&obj).ok()
        }
    };
    if let Some(tp) = tts_param {
        p.insert("TtsParam".to_string(), tp);
    }
    if let Some(show) = d.meta("called_show_number").or(acc.called_show_number.as_deref()) {
        p.insert("CalledShowNumber".to_string(), show.to_string());
    }
    if let Some(n) = acc.play_times {
        p.insert("PlayTimes".to_string(), n.to_string());
    }
    if let Some(n) = acc.volume {
        p.insert("Volume".to_string(), n.to_string());
    }
    if let Some(n) = acc.speed {
        p.insert("Speed".to_string(), n.to_string());
    }
    p
}

fn clip(s: &str) -> String {
    outcome::clip(s, MAX_DETAIL)
}

/// A `VoiceReport` item. Aliyun sends some numbers as strings and some as
/// numbers depending on the report kind, so they are read loosely.
#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    status_code: Option<json::Value>,
    #[serde(default)]
    status_msg: Option<String>,
    #[serde(default)]
    duration: Option<json::Value>,
}

fn loose(v: &Option<json::Value>) -> Option<String> {
    match v {
        Some(json::Value::String(s)) => Some(s.clone()),
        Some(json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

use rpc::reject;

impl Plugin for AliyunVoice {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "aliyun-voice".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "voice".into(),
            formats: vec![ContentFormat::Voice],
            max_batch: 100,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["access_key_secret".into(), "callback_token".into()],
            hosts: vec![HOST.into()],
            billing_unit: "minute".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let acc = Account::parse(account)?;
        let api = rpc::Api {
            host: HOST,
            version: VERSION,
            access_key_id: &acc.access_key_id,
            access_key_secret: &acc.access_key_secret,
            region_id: &acc.region_id,
        };
        Ok(batch
            .iter()
            .map(|d| {
                let nonce = rpc::nonce(&[&d.id], ctx.attempt, ctx.now_ms);
                let req = rpc::request(&api, "SingleCallByTts", params(&acc, d), ctx.now_ms, nonce);
                Outbound::http_one(d.id.clone(), req)
            })
            .collect())
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        let Response::Http(resp) = response else {
            return outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected response"));
        };
        rpc::interpret(&deliveries, &resp, ctx.now_ms, "CallId")
    }

    fn parse_callback(_ctx: CallContext, account: &str, request: HttpRequest) -> Result<CallbackReply, PluginError> {
        let receipts = reports(account, &request)?
            .into_iter()
            .filter_map(|r| {
                let status = match r.code.as_str() {
                    "200000" | "200001" => ReceiptStatus::Delivered,
                    "200100" | "200101" | "200102" | "200103" | "200201" | "300000" => return None,
                    _ => ReceiptStatus::Failed,
                };
                let mut detail = r.code.clone();
                if let Some(m) = r.message.as_deref().filter(|m| !m.is_empty()) {
                    detail = format!("{detail} {m}");
                }
                if let Some(d) = &r.duration {
                    detail = format!("{detail}, duration {d}s");
                }
                Some(Receipt { delivery_id: None, provider_id: Some(r.call_id), status, detail: Some(clip(detail.trim())) })
            })
            .collect();
        Ok(CallbackReply { receipts, response: rpc::report_ack() })
    }

    fn callback_usage(_ctx: CallContext, account: &str, request: HttpRequest) -> Result<Vec<Usage>, PluginError> {
        Ok(reports(account, &request)?
            .into_iter()
            .filter(|r| matches!(r.code.as_str(), "200000" | "200001"))
            .map(|r| {
                let secs = r.duration.as_deref().and_then(|d| d.parse().ok()).unwrap_or(0);
                Usage::for_provider_id(r.call_id, started_minutes(secs))
            })
            .collect())
    }
}

/// One call's report, as read from the push.
struct CallReport {
    call_id: String,
    code: String,
    message: Option<String>,
    duration: Option<String>,
}

/// Check the push's token and read its `VoiceReport` items that name a call.
fn reports(account: &str, request: &HttpRequest) -> Result<Vec<CallReport>, PluginError> {
    let acc = Account::parse(account)?;
    rpc::check_callback_token(&request.url, acc.callback_token.as_deref())?;
    let reports: Vec<Report> = json::from_slice(&request.body).map_err(|e| reject(&format!("not a VoiceReport array: {e}")))?;
    Ok(reports
        .into_iter()
        .filter_map(|r| {
            Some(CallReport {
                call_id: r.call_id.filter(|c| !c.is_empty())?,
                code: loose(&r.status_code).unwrap_or_default(),
                message: r.status_msg,
                duration: loose(&r.duration),
            })
        })
        .collect())
}

export_plugin!(AliyunVoice);

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = r#"{"access_key_id":"LTAIid","access_key_secret":"s3cret","tts_code":"TTS_1","tts_params":["code"],"called_show_number":"057100000000","play_times":2}"#;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_000, tenant: "t".into(), attempt: 3 }
    }

    fn delivery(id: &str, to: &str, meta: &[(&str, &str)]) -> Delivery {
        Delivery {
            id: id.into(),
            recipient: to.into(),
            subject: None,
            text: "您的验证码是 1 2 3 4".into(),
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

    #[test]
    fn describe_and_validate() {
        let info = AliyunVoice::describe();
        assert_eq!((info.channel.as_str(), info.billing_unit.as_str()), ("voice", "minute"));
        assert_eq!(info.formats, vec![ContentFormat::Voice]);
        assert_eq!(info.hosts, vec![HOST.to_string()]);
        json::from_str::<json::Value>(&info.account_schema).unwrap();
        assert!(AliyunVoice::validate_account(ACCOUNT).is_ok());
        for (acc, field) in [
            (r#"{"access_key_id":"a","access_key_secret":"b"}"#, "tts_code"),
            (r#"{"access_key_id":"a","access_key_secret":"b","tts_code":"c","play_times":4}"#, "play_times"),
            (r#"{"access_key_id":"a","access_key_secret":"b","tts_code":"c","volume":101}"#, "volume"),
            (r#"{"access_key_id":"a","access_key_secret":"b","tts_code":"c","speed":-501}"#, "speed"),
            (r#"{"access_key_id":"a","access_key_secret":"b","tts_code":"c","called_show_number":" "}"#, "called_show_number"),
        ] {
            match AliyunVoice::validate_account(acc) {
                Err(PluginError::BadConfig(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{acc}: {other:?}"),
            }
        }
    }

    #[test]
    fn build_one_signed_call_per_delivery() {
        let out = AliyunVoice::build(
            ctx(),
            ACCOUNT,
            vec![delivery("m.0", "+8613800138000", &[("code", "1234")]), delivery("m.1", "13900139000", &[("tts_param", r#"{"a":"b"}"#)])],
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        let Request::Http(h) = &out[0].request else { panic!() };
        assert_eq!(h.url, "https://dyvmsapi.aliyuncs.com/");
        let mut p = form(&h.body);
        let sig = p.remove("Signature").unwrap();
        assert_eq!(rpc::signature("s3cret", "POST", &p), sig);
        assert_eq!(p["Action"], "SingleCallByTts");
        assert_eq!(p["Version"], "2017-05-25");
        assert_eq!(p["CalledNumber"], "13800138000");
        assert_eq!(p["CalledShowNumber"], "057100000000");
        assert_eq!(p["TtsCode"], "TTS_1");
        assert_eq!(p["TtsParam"], r#"{"code":"1234"}"#);
        assert_eq!(p["PlayTimes"], "2");
        assert!(!p.contains_key("Volume"));
        let Request::Http(h) = &out[1].request else { panic!() };
        let p = form(&h.body);
        assert_eq!(p["TtsParam"], r#"{"a":"b"}"#);
        assert_eq!(p["CalledNumber"], "13900139000");
    }

    #[test]
    fn interpret_outcomes() {
        let ids = vec!["m.0".to_string()];
        let resp = |status, body: &str| Response::Http(HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() });
        let o = &AliyunVoice::interpret(
            ctx(),
            ACCOUNT,
            ids.clone(),
            resp(200, r#"{"Code":"OK","Message":"OK","RequestId":"r","CallId":"116012354148^102813"}"#),
        )[0];
        assert_eq!((o.kind, o.provider_id.as_deref(), o.units), (OutcomeKind::Sent, Some("116012354148^102813"), 1));
        let kind = |status, body: &str| AliyunVoice::interpret(ctx(), ACCOUNT, ids.clone(), resp(status, body))[0].kind;
        assert_eq!(kind(200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发号码分钟级流控"}"#), OutcomeKind::Throttled);
        assert_eq!(
            kind(200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发号码天级流控"}"#),
            OutcomeKind::Failed,
            "the day's limit is not waited out"
        );
        assert_eq!(kind(400, r#"{"Code":"SignatureDoesNotMatch","Message":"x"}"#), OutcomeKind::Failed);
        assert_eq!(kind(200, r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"号码格式非法"}"#), OutcomeKind::Failed);
        assert_eq!(kind(500, r#"{"Code":"InternalError","Message":"x"}"#), OutcomeKind::Retry);
        assert_eq!(kind(503, "unavailable"), OutcomeKind::Retry);
    }

    #[test]
    fn call_reports() {
        let body = r#"[
          {"call_id":"c1","status_code":"200000","status_msg":"用户听完语音","duration":"49","out_id":""},
          {"call_id":"c2","status_code":"200003","status_msg":"用户收到呼叫但未接听","duration":0},
          {"call_id":"c3","status_code":"200101","status_msg":"开始呼叫"},
          {"call_id":"c4","status_code":200001,"duration":3},
          {"status_code":"200000"}
        ]"#;
        let req = HttpRequest { method: "POST".into(), url: "/cb".into(), headers: vec![], body: body.as_bytes().to_vec() };
        let r = AliyunVoice::parse_callback(ctx(), ACCOUNT, req).unwrap();
        let got: Vec<_> = r.receipts.iter().map(|r| (r.provider_id.clone().unwrap(), r.status)).collect();
        assert_eq!(
            got,
            vec![
                ("c1".to_string(), ReceiptStatus::Delivered),
                ("c2".to_string(), ReceiptStatus::Failed),
                ("c4".to_string(), ReceiptStatus::Delivered)
            ]
        );
        assert_eq!(r.receipts[0].detail.as_deref(), Some("200000 用户听完语音, duration 49s"));
        assert_eq!(r.response.status, 200);
        assert_eq!(json::from_slice::<json::Value>(&r.response.body).unwrap()["code"], 0);
        let bad = HttpRequest { method: "POST".into(), url: "/cb".into(), headers: vec![], body: b"nope".to_vec() };
        assert!(AliyunVoice::parse_callback(ctx(), ACCOUNT, bad.clone()).is_err());
        // Usage: answered calls' started minutes (49 s → 1, 3 s → 1).
        let req = HttpRequest {
            method: "POST".into(),
            url: "/cb".into(),
            headers: vec![],
            body: body.replace("\"duration\":\"49\"", "\"duration\":\"121\"").into_bytes(),
        };
        assert_eq!(AliyunVoice::callback_usage(ctx(), ACCOUNT, req).unwrap(), [Usage::for_provider_id("c1", 3), Usage::for_provider_id("c4", 1)]);
        assert!(AliyunVoice::callback_usage(ctx(), ACCOUNT, bad).is_err());
    }
}
