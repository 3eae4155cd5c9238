//! Twilio REST API helpers shared by the twilio-sms and twilio-voice plugins
//! (twilio-voice includes this file with `#[path]`): form encoding, HTTP Basic
//! auth, error answers, and `X-Twilio-Signature` validation.

use herald_plugin_sdk::types::{HttpRequest, HttpResponse, Outcome, PluginError};
use herald_plugin_sdk::{http, json, outcome, sign};

/// Host of the Twilio REST API.
pub const HOST: &str = "api.twilio.com";
const MAX_DETAIL: usize = 300;

/// `application/x-www-form-urlencoded` encoding of one value (space as `+`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A form body from name/value pairs, in the given order.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&")
}

/// Decode an `application/x-www-form-urlencoded` body (`+` is a space).
pub fn form_decode(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (http::percent_decode(k), http::percent_decode(v))
        })
        .collect()
}

/// `Authorization: Basic base64(AccountSid:AuthToken)`.
pub fn basic_auth(account_sid: &str, auth_token: &str) -> String {
    format!("Basic {}", sign::base64(format!("{account_sid}:{auth_token}").as_bytes()))
}

/// A form `POST` to `https://api.twilio.com/2010-04-01/Accounts/<sid>/<resource>`.
pub fn post(account_sid: &str, auth_token: &str, resource: &str, pairs: &[(&str, &str)]) -> HttpRequest {
    http::post(
        &format!("https://{HOST}/2010-04-01/Accounts/{account_sid}/{resource}"),
        vec![
            ("Authorization".into(), basic_auth(account_sid, auth_token)),
            ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
            ("Accept".into(), "application/json".into()),
        ],
        form(pairs).into_bytes(),
    )
}

/// `AC` followed by 32 hex digits (and likewise `MG…`, `SM…`, `CA…`).
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn clip(s: &str) -> String {
    outcome::clip(s, MAX_DETAIL)
}

/// The outcome of a non-2xx Twilio answer for one delivery.
///
/// Twilio errors are `{"code": 21211, "message": "...", "more_info": "...",
/// "status": 400}`. 429 or error 20429 → `throttled` (with Retry-After);
/// 5xx → `retry`; every other status (400 invalid `To` 21211, unsubscribed
/// 21610, 401 authentication 20003, ...) → `failed` with `Twilio <code>:
/// <message>`.
pub fn error_outcome(id: &str, resp: &HttpResponse, now_ms: u64) -> Outcome {
    let v: Option<json::Value> = json::from_slice(&resp.body).ok();
    let code = v.as_ref().and_then(|v| v.get("code")).and_then(|c| c.as_u64());
    let message = v.as_ref().and_then(|v| v.get("message")).and_then(|m| m.as_str()).unwrap_or("");
    let retry_after = http::retry_after_ms(resp, now_ms);
    let detail = match code {
        Some(c) => clip(&format!("Twilio {c}: {message}")),
        None => format!("HTTP {}", resp.status),
    };
    if resp.status == 429 || code == Some(20429) {
        outcome::throttled(id, detail).with_retry_after_ms(retry_after)
    } else if resp.status >= 500 || resp.status == 408 {
        outcome::retry(id, detail).with_retry_after_ms(retry_after)
    } else {
        outcome::failed(id, detail)
    }
}

/// `X-Twilio-Signature` of a form `POST` to `url`: base64 HMAC-SHA1, keyed by
/// the Auth Token, of the full URL followed by every parameter's name and
/// value, sorted by name (then value), without separators.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    sign::base64(&sign::hmac_sha1(auth_token.as_bytes(), data.as_bytes()))
}

/// The URL as written and with its default port added or removed: Twilio's
/// own validators accept either, since what Twilio signed depends on how the
/// callback URL was written.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let (scheme, port) = if url.starts_with("https://") {
        ("https://", ":443")
    } else if url.starts_with("http://") {
        ("http://", ":80")
    } else {
        return out;
    };
    let rest = &url[scheme.len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if let Some(host) = authority.strip_suffix(port) {
        out.push(format!("{scheme}{host}{tail}"));
    } else if !authority.contains(':') || authority.ends_with(']') {
        out.push(format!("{scheme}{authority}{port}{tail}"));
    }
    out
}

/// Check a status callback: its `X-Twilio-Signature` against `callback_url`
/// (the `StatusCallback` Twilio was given) and its form parameters, and that
/// it is for this account. Returns the parameters.
pub fn verified_params(
    request: &HttpRequest,
    auth_token: &str,
    account_sid: &str,
    callback_url: Option<&str>,
) -> Result<Vec<(String, String)>, PluginError> {
    let reject = |why: &str| PluginError::InvalidDelivery(format!("callback rejected: {why}"));
    let url = callback_url.ok_or_else(|| reject("the account has no status_callback, so the signature cannot be checked"))?;
    let given = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-twilio-signature"))
        .map(|(_, v)| v.trim())
        .ok_or_else(|| reject("no X-Twilio-Signature"))?;
    let body = std::str::from_utf8(&request.body).map_err(|_| reject("body is not UTF-8"))?;
    let params = form_decode(body);
    if !url_variants(url).iter().any(|u| sign::same_secret(&signature(auth_token, u, &params), given)) {
        return Err(reject("X-Twilio-Signature does not match"));
    }
    if let Some((_, sid)) = params.iter().find(|(k, _)| k == "AccountSid")
        && sid != account_sid
    {
        return Err(reject("AccountSid is not this account's"));
    }
    Ok(params)
}

/// The value of form parameter `name`.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The empty `204` Twilio expects from a status callback.
pub fn no_content() -> HttpResponse {
    HttpResponse { status: 204, headers: vec![], body: vec![] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_signature_example() {
        // The example of Twilio's webhook-security documentation.
        let params: Vec<(String, String)> =
            [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        let mut reversed = params.clone();
        reversed.reverse();
        assert_eq!(signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &reversed), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn forms() {
        assert_eq!(form(&[("To", "+8613800138000"), ("Body", "a b&c=d/中")]), "To=%2B8613800138000&Body=a+b%26c%3Dd%2F%E4%B8%AD");
        let back = form_decode("To=%2B8613800138000&Body=a+b%26c%3Dd%2F%E4%B8%AD&Empty=&Bare");
        assert_eq!(back[0], ("To".to_string(), "+8613800138000".to_string()));
        assert_eq!(back[1].1, "a b&c=d/中");
        assert_eq!(back[2], ("Empty".to_string(), String::new()));
        assert_eq!(back[3], ("Bare".to_string(), String::new()));
        assert_eq!(basic_auth("AC1", "tok"), "Basic QUMxOnRvaw==");
        assert!(is_sid("AC0123456789abcdef0123456789abcdef", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789abcdeg", "AC"));
        assert!(!is_sid("MG0123456789abcdef0123456789abcdef", "AC"));
    }

    #[test]
    fn url_port_variants() {
        assert_eq!(url_variants("https://h.test/cb?x=1"), vec!["https://h.test/cb?x=1", "https://h.test:443/cb?x=1"]);
        assert_eq!(url_variants("https://h.test:443/cb"), vec!["https://h.test:443/cb", "https://h.test/cb"]);
        assert_eq!(url_variants("http://h.test:8080/cb"), vec!["http://h.test:8080/cb"]);
        assert_eq!(url_variants("http://h.test"), vec!["http://h.test", "http://h.test:80"]);
    }

    fn req(sig: Option<&str>, body: &str) -> HttpRequest {
        let mut headers = vec![("content-type".to_string(), "application/x-www-form-urlencoded".to_string())];
        if let Some(s) = sig {
            headers.push(("x-twilio-signature".to_string(), s.to_string()));
        }
        HttpRequest { method: "POST".into(), url: "/v1/callbacks/t/a".into(), headers, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn callback_verification() {
        let url = "https://herald.test/v1/callbacks/t/a";
        let body = "MessageSid=SM1&MessageStatus=delivered&AccountSid=AC1";
        let sig = signature("tok", url, &form_decode(body));
        assert!(verified_params(&req(Some(&sig), body), "tok", "AC1", Some(url)).is_ok());
        let with_port = signature("tok", "https://herald.test:443/v1/callbacks/t/a", &form_decode(body));
        assert!(verified_params(&req(Some(&with_port), body), "tok", "AC1", Some(url)).is_ok());
        assert!(verified_params(&req(Some(&sig), body), "other", "AC1", Some(url)).is_err(), "wrong token");
        assert!(verified_params(&req(Some(&sig), "MessageSid=SM1&MessageStatus=failed&AccountSid=AC1"), "tok", "AC1", Some(url)).is_err());
        assert!(verified_params(&req(None, body), "tok", "AC1", Some(url)).is_err());
        assert!(verified_params(&req(Some(&sig), body), "tok", "AC1", None).is_err());
        assert!(verified_params(&req(Some(&sig), body), "tok", "AC2", Some(url)).is_err(), "another account");
    }

    #[test]
    fn errors() {
        let r = |status, body: &str, headers: Vec<(String, String)>| HttpResponse { status, headers, body: body.as_bytes().to_vec() };
        let o = error_outcome(
            "d",
            &r(
                400,
                r#"{"code":21211,"message":"The 'To' number 123 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
                vec![],
            ),
            0,
        );
        assert_eq!(o.kind, herald_plugin_sdk::types::OutcomeKind::Failed);
        assert_eq!(o.detail.as_deref(), Some("Twilio 21211: The 'To' number 123 is not a valid phone number."));
        let o =
            error_outcome("d", &r(429, r#"{"code":20429,"message":"Too Many Requests","status":429}"#, vec![("Retry-After".into(), "2".into())]), 0);
        assert_eq!((o.kind, o.retry_after_ms), (herald_plugin_sdk::types::OutcomeKind::Throttled, Some(2000)));
        assert_eq!(error_outcome("d", &r(503, "", vec![]), 0).kind, herald_plugin_sdk::types::OutcomeKind::Retry);
        assert_eq!(
            error_outcome("d", &r(401, r#"{"code":20003,"message":"Authenticate"}"#, vec![]), 0).detail.as_deref(),
            Some("Twilio 20003: Authenticate")
        );
    }
}
