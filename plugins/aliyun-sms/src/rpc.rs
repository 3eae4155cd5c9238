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

use herald_plugin_sdk::types::HttpRequest;
use herald_plugin_sdk::{json, sign, time};

/// Percent-encoding of Aliyun's RPC signature (RFC 3986 unreserved set).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The canonicalized query string of `params` (sorted, encoded, `&`-joined).
pub fn canonical_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `Method&%2F&enc(canonicalized query)`.
pub fn string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// The `Signature` value for `params` (which must not contain `Signature`).
pub fn signature(secret: &str, method: &str, params: &BTreeMap<String, String>) -> String {
    let key = format!("{secret}&");
    sign::base64(&sign::hmac_sha1(
        key.as_bytes(),
        string_to_sign(method, params).as_bytes(),
    ))
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
pub fn request(
    api: &Api<'_>,
    action: &str,
    mut params: BTreeMap<String, String>,
    now_ms: u64,
    nonce: String,
) -> HttpRequest {
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
    let body = format!(
        "{}&Signature={}",
        canonical_query(&params),
        percent_encode(&sig)
    );
    HttpRequest {
        method: "POST".into(),
        url: format!("https://{}/", api.host),
        headers: vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ),
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
    let message = v
        .get("Message")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    Some((code, message, v))
}

/// The query parameter `name` of a URL or origin-form request target
/// (`/path?a=1&b=2`), percent-decoded.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// `%XY` and `+` (as space) decoding; invalid escapes are kept verbatim.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Constant-time equality of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_rules() {
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(
            percent_encode("a b*c/d:e+f=g&h"),
            "a%20b%2Ac%2Fd%3Ae%2Bf%3Dg%26h"
        );
        assert_eq!(percent_encode("阿里"), "%E9%98%BF%E9%87%8C");
        assert_eq!(
            percent_encode("{\"code\":\"1\"}"),
            "%7B%22code%22%3A%221%22%7D"
        );
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
        assert_eq!(
            signature("testsecret", "GET", &params),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
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
        assert_eq!(
            query_param("/v1/callbacks/t/a?x=1&token=a%2Bb", "token").as_deref(),
            Some("a+b")
        );
        assert_eq!(
            query_param("https://h/p?token=", "token").as_deref(),
            Some("")
        );
        assert_eq!(query_param("/p", "token"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
