//! Aliyun RPC-style OpenAPI requests: signature version 1.0 (HMAC-SHA1), as
//! documented for Dysmsapi and Dyvmsapi (2017-05-25).
//!
//! 1. Every parameter (common and action parameters, except `Signature`) is
//!    percent-encoded, name and value, with RFC 3986 rules: `A-Z a-z 0-9 - _ .
//!    ~` stay, everything else is `%XY` of its UTF-8 bytes with upper-case hex
//!    (so a space is `%20`, `*` is `%2A`, `~` stays).
//! 2. The pairs are sorted by name and joined as `k=v&k=v`: the canonicalized
//!    query string.
//! 3. `StringToSign = Method + "&" + enc("/") + "&" + enc(canonicalized)`.
//! 4. `Signature = base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`.
//!
//! Requests are `POST https://<host>/` with the parameters (and `Signature`)
//! form-encoded in the body, so a long `TemplateParam` never hits URL limits.
//!
//! Shared by the aliyun-sms and aliyun-voice plugins (included with `#[path]`).

use std::collections::BTreeMap;

use herald_plugin_sdk::types::{HttpRequest, HttpResponse, Outcome, OutcomeKind};
use herald_plugin_sdk::{http, json, outcome, sign, time};

/// Percent-encoding of Aliyun's RPC signature (RFC 3986 unreserved set).
pub use herald_plugin_sdk::http::percent_encode;

/// `Timestamp`: ISO 8601 UTC without fractions, `yyyy-MM-ddTHH:mm:ssZ`.
pub fn timestamp(now_ms: u64) -> String {
    let full = time::rfc3339(now_ms / 1000 * 1000);
    // rfc3339 gives "....T22:13:20.000Z"; drop the milliseconds.
    format!("{}Z", &full[..19])
}

/// A `SignatureNonce`, unique per request: the sandbox has no randomness, so
/// it is derived (SHA-256, UUID-shaped) from what makes the request unique —
/// the delivery ids, the attempt and the clock.
pub fn nonce(delivery_ids: &[&str], attempt: u32, now_ms: u64) -> String {
    let mut seed = format!("{now_ms}\n{attempt}\n");
    for id in delivery_ids {
        seed.push_str(id);
        seed.push('\n');
    }
    let h = sign::sha256_hex(seed.as_bytes());
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The canonicalized query string of `params` (sorted, encoded, `&`-joined).
pub fn canonical_query(params: &BTreeMap<String, String>) -> String {
    params.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&")
}

/// `Method&%2F&enc(canonicalized query)`.
pub fn string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    format!("{method}&{}&{}", percent_encode("/"), percent_encode(&canonical_query(params)))
}

/// The `Signature` value for `params` (which must not contain `Signature`).
pub fn signature(secret: &str, method: &str, params: &BTreeMap<String, String>) -> String {
    let key = format!("{secret}&");
    sign::base64(&sign::hmac_sha1(key.as_bytes(), string_to_sign(method, params).as_bytes()))
}

/// What identifies the caller and the API.
pub struct Api<'a> {
    pub host: &'a str,
    pub version: &'a str,
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
    pub region_id: &'a str,
}

/// A signed `POST https://<host>/` for `action` with `params` (the action's
/// own parameters) plus the common ones.
pub fn request(api: &Api<'_>, action: &str, mut params: BTreeMap<String, String>, now_ms: u64, nonce: String) -> HttpRequest {
    let common = [
        ("AccessKeyId", api.access_key_id.to_string()),
        ("Action", action.to_string()),
        ("Format", "JSON".to_string()),
        ("RegionId", api.region_id.to_string()),
        ("SignatureMethod", "HMAC-SHA1".to_string()),
        ("SignatureNonce", nonce),
        ("SignatureVersion", "1.0".to_string()),
        ("Timestamp", timestamp(now_ms)),
        ("Version", api.version.to_string()),
    ];
    for (k, v) in common {
        params.insert(k.to_string(), v);
    }
    let sig = signature(api.access_key_secret, "POST", &params);
    let body = format!("{}&Signature={}", canonical_query(&params), percent_encode(&sig));
    HttpRequest {
        method: "POST".into(),
        url: format!("https://{}/", api.host),
        headers: vec![
            ("Content-Type".into(), "application/x-www-form-urlencoded; charset=utf-8".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: body.into_bytes(),
    }
}

/// The `Code` and `Message` of an RPC answer (success and errors alike carry
/// them), and the whole JSON.
pub fn parse_answer(body: &[u8]) -> Option<(String, String, json::Value)> {
    let v: json::Value = json::from_slice(body).ok()?;
    let code = v.get("Code")?.as_str()?.to_string();
    let message = v.get("Message").and_then(|m| m.as_str()).unwrap_or("").to_string();
    Some((code, message, v))
}

/// Longest provider message put in an outcome detail, in bytes.
const MAX_DETAIL: usize = 300;

/// One outcome per delivery for the answer to an RPC call: `Code` `OK` with
/// a 2xx status is `sent` (one unit) with the answer's `id_field` (`BizId`,
/// `CallId`) as provider id; any other `Code` goes through
/// [`error_outcome`]; an answer without a `Code` (a proxy error page, say)
/// is decided by the HTTP status, a 2xx one becoming `retry`.
pub fn interpret(deliveries: &[String], resp: &HttpResponse, now_ms: u64, id_field: &str) -> Vec<Outcome> {
    let retry_after = http::retry_after_ms(resp, now_ms);
    match parse_answer(&resp.body) {
        Some((code, _, v)) if code == "OK" && (200..300).contains(&resp.status) => {
            let provider_id = v.get(id_field).and_then(|b| b.as_str()).unwrap_or_default().to_string();
            outcome::for_all(deliveries, |id| {
                let o = outcome::sent(id, "").with_units(1);
                if provider_id.is_empty() { o } else { o.with_provider_id(provider_id.clone()) }
            })
        }
        Some((code, message, _)) => outcome::for_all(deliveries, |id| error_outcome(id, resp.status, &code, &message, retry_after)),
        None => outcome::from_http_status(deliveries, resp, now_ms)
            .into_iter()
            .map(|o| if o.kind == OutcomeKind::Sent { outcome::retry(o.delivery_id, "answer without a Code") } else { o })
            .collect(),
    }
}

/// The outcome of an Aliyun RPC answer `code` (not `OK`) for one delivery.
pub fn error_outcome(id: &str, status: u16, code: &str, message: &str, retry_after: Option<u64>) -> Outcome {
    let detail = outcome::clip(&format!("{code}: {message}"), MAX_DETAIL);
    // `isv.BUSINESS_LIMIT_CONTROL` is the per-number frequency control; its
    // message names the level (`触发分钟级流控Permits:1`, `触发小时级流控…`,
    // `触发天级流控Permits:10`, voice: `触发号码天级流控`). Minute and hour
    // levels clear soon: throttled. The day level holds until the next day, by
    // when a verification code is useless: that number fails, like any other
    // refusal of the recipient.
    if code == "isv.BUSINESS_LIMIT_CONTROL" && message.contains("天级") {
        outcome::failed(id, detail)
    } else if code == "isv.BUSINESS_LIMIT_CONTROL" || code.starts_with("Throttling") {
        outcome::throttled(id, detail).with_retry_after_ms(retry_after)
    } else if matches!(code, "isp.SYSTEM_ERROR" | "InternalError" | "SignatureNonceUsed")
        || code.starts_with("ServiceUnavailable")
        || code.starts_with("InvalidTimeStamp")
        || status >= 500
    {
        outcome::retry(id, detail).with_retry_after_ms(retry_after)
    } else {
        outcome::failed(id, detail)
    }
}

/// The answer Aliyun expects to a report push (`SmsReport`, `VoiceReport`).
pub fn report_ack() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json; charset=utf-8".into())],
        body: r#"{"code":0,"msg":"成功"}"#.as_bytes().to_vec(),
    }
}

/// The query parameter `name` of a URL or origin-form request target
/// (`/path?a=1&b=2`), percent-decoded.
/// A delivery-report push refused (the gateway answers 400 and Aliyun pushes again).
pub fn reject(why: &str) -> herald_plugin_sdk::types::PluginError {
    herald_plugin_sdk::types::PluginError::InvalidDelivery(format!("callback rejected: {why}"))
}

/// When the account sets a callback token, the push URL must carry it as `?token=`.
pub fn check_callback_token(url: &str, token: Option<&str>) -> Result<(), herald_plugin_sdk::types::PluginError> {
    match (token, query_param(url, "token")) {
        (None, _) => Ok(()),
        (Some(want), Some(t)) if same_secret(&t, want) => Ok(()),
        _ => Err(reject("missing or wrong token")),
    }
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// `%XY` and `+` (as space) decoding; invalid escapes are kept verbatim.
pub use herald_plugin_sdk::http::percent_decode;

/// Constant-time equality of two secrets.
pub use herald_plugin_sdk::sign::same_secret;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_rules() {
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(percent_encode("a b*c/d:e+f=g&h"), "a%20b%2Ac%2Fd%3Ae%2Bf%3Dg%26h");
        assert_eq!(percent_encode("阿里"), "%E9%98%BF%E9%87%8C");
        assert_eq!(percent_encode("{\"code\":\"1\"}"), "%7B%22code%22%3A%221%22%7D");
        assert_eq!(percent_decode("a%20b+c%2a%E9%98%BF%zz%"), "a b c*阿%zz%");
    }

    #[test]
    fn documented_signature_example() {
        // The worked example of Aliyun's RPC signature documentation
        // (DescribeRegions, AccessKeySecret "testsecret").
        let params: BTreeMap<String, String> = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1\
             %26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0\
             %26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(signature("testsecret", "GET", &params), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    #[test]
    fn timestamp_and_nonce() {
        assert_eq!(timestamp(1_456_231_584_999), "2016-02-23T12:46:24Z");
        let a = nonce(&["m.0"], 1, 1);
        assert_eq!(a.len(), 36);
        assert_eq!(a, nonce(&["m.0"], 1, 1), "deterministic");
        assert_ne!(a, nonce(&["m.0"], 2, 1), "a retry gets a new nonce");
        assert_ne!(a, nonce(&["m.1"], 1, 1));
        assert_ne!(a, nonce(&["m.0"], 1, 2));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("/v1/callbacks/t/a?x=1&token=a%2Bb", "token").as_deref(), Some("a+b"));
        assert_eq!(query_param("https://h/p?token=", "token").as_deref(), Some(""));
        assert_eq!(query_param("/p", "token"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
