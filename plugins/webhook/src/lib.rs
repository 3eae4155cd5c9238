//! Herald `webhook` channel plugin: POSTs deliveries as JSON to the account's URL.
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "url": "https://hooks.example.com/herald",
//!   "secret": "shared-secret",
//!   "batch": false,
//!   "headers": {"Authorization": "Bearer abc"},
//!   "signature_header": "X-Herald-Signature",
//!   "signature_scheme": "herald"
//! }
//! ```
//!
//! - `url` (required): absolute `http://` or `https://` URL, no user-info.
//! - `secret` (optional, secret): when set, requests are signed (below).
//! - `batch` (optional, default `false`): one request for the whole batch
//!   instead of one per delivery.
//! - `headers` (optional, values secret): extra request headers. Names must be HTTP tokens;
//!   framing headers (`Host`, `Content-Length`, `Transfer-Encoding`, ...),
//!   the headers this plugin sets (`Content-Type`, `User-Agent`, `X-Herald-*`,
//!   the signature header) are refused.
//! - `signature_header` (optional, default `X-Herald-Signature`; `herald` scheme only).
//! - `signature_scheme` (optional, default `herald`): `herald` (below) or
//!   `standard-webhooks` ([Standard Webhooks](https://www.standardwebhooks.com)), which
//!   needs a `secret` of `whsec_<base64 key>` (key of 24 to 64 bytes), or several such
//!   keys separated by spaces while rotating: each signs, all signatures are sent.
//!
//! Unknown fields are refused.
//!
//! # Requests
//!
//! Without `batch`, one `POST` per delivery with the body
//! `{"id", "recipient", "subject", "text", "html", "metadata": {k: v}}`
//! (`subject`/`html` are `null` when absent; duplicate metadata keys: the last
//! wins). With `batch`, one `POST` with `{"deliveries": [ ...those objects... ]}`.
//!
//! Headers: `Content-Type: application/json`, `User-Agent: herald-webhook/<version>`,
//! `X-Herald-Timestamp: <unix seconds>` (from the call context),
//! `X-Herald-Delivery: <id>` when the request carries exactly one delivery,
//! the signature header(s) when `secret` is set, then the account's `headers`.
//!
//! # Signature (`herald` scheme)
//!
//! `X-Herald-Signature: sha256=<hex(HMAC-SHA256(secret, "<timestamp>.<body>"))>`
//! where `<timestamp>` is the exact `X-Herald-Timestamp` value (decimal
//! seconds) and `<body>` the exact request body bytes. Receivers recompute it
//! over the raw body, compare in constant time, and reject timestamps too far
//! from their clock (e.g. 5 minutes) to limit replays; retries of the same
//! delivery carry the same `X-Herald-Delivery`/`id` (deduplicate on it).
//!
//! # Signature (`standard-webhooks` scheme)
//!
//! `webhook-id: <id>`, `webhook-timestamp: <unix seconds>` (the `X-Herald-Timestamp`
//! value) and `webhook-signature: v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>`,
//! one space-separated `v1,` entry per key, keyed with the base64-decoded bytes after
//! `whsec_`. `<id>` is the delivery id (the gateway makes it, `<message id>.<index>`),
//! the same on every retry; for a batch request it is `batch_` and 32 hex digits of the
//! SHA-256 of its delivery ids, the same for a retry of the same set. Any Standard
//! Webhooks library verifies it, e.g. `standardwebhooks.Webhook(secret).verify(body, headers)`.
//!
//! # Outcomes
//!
//! The conventional HTTP mapping
//! ([`outcome::from_http_status`](herald_plugin_sdk::outcome::from_http_status)):
//! 2xx sent, 429 throttled (Retry-After honoured), 408/425/5xx retry, other
//! statuses failed. The provider id is the delivery id.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome, sign};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The plugin type exported to the host.
pub struct Webhook;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_SIGNATURE_HEADER: &str = "X-Herald-Signature";
const MAX_URL_LEN: usize = 2048;
/// Standard Webhooks: the secret's prefix and the key's length bounds (bytes).
const WHSEC_PREFIX: &str = "whsec_";
const WHSEC_KEY_LEN: std::ops::RangeInclusive<usize> = 24..=64;
/// The headers of the `standard-webhooks` scheme.
const STANDARD_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];
/// Standard base64, padded or not (the Standard Webhooks libraries accept both).
const BASE64: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald webhook account",
  "x-herald-zh": {"title": "Webhook 账号"},
  "type": "object",
  "required": ["url"],
  "additionalProperties": false,
  "properties": {
    "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "maxLength": 2048,
            "title": "URL", "description": "Endpoint receiving the POSTs (http or https).",
            "x-herald-zh": {"title": "URL", "description": "接收 POST 请求的地址（http 或 https）。"}},
    "secret": {"type": "string", "minLength": 1, "writeOnly": true,
               "title": "Signing secret", "description": "HMAC-SHA256 key; when set, requests are signed. With signature_scheme standard-webhooks: whsec_<base64 key>, several separated by spaces while rotating.",
               "x-herald-zh": {"title": "签名密钥", "description": "HMAC-SHA256 密钥；设置后请求会被签名。签名方案为 standard-webhooks 时填写 whsec_<base64 密钥>，轮换期间可用空格分隔多个。"}},
    "batch": {"type": "boolean", "default": false,
              "title": "Batch", "description": "Send the whole batch in one request.",
              "x-herald-zh": {"title": "批量发送", "description": "将整批投递合并为一个请求发送。"}},
    "headers": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true}, "x-herald-advanced": true,
                "title": "Extra headers", "description": "Extra request headers (values are kept secret: often API tokens).",
                "x-herald-zh": {"title": "附加请求头", "description": "附加的请求头（值按密钥保存，常为 API 令牌）。"}},
    "signature_header": {"type": "string", "default": "X-Herald-Signature", "x-herald-advanced": true,
                         "title": "Signature header", "description": "Name of the signature header (herald scheme only).",
                         "x-herald-zh": {"title": "签名请求头", "description": "签名请求头的名称（仅 herald 方案）。"}},
    "signature_scheme": {"type": "string", "enum": ["herald", "standard-webhooks"], "default": "herald", "x-herald-advanced": true,
                         "title": "Signature scheme", "description": "herald: X-Herald-Signature; standard-webhooks: webhook-id, webhook-timestamp, webhook-signature (www.standardwebhooks.com).",
                         "x-herald-zh": {"title": "签名方案", "description": "herald：X-Herald-Signature；standard-webhooks：webhook-id、webhook-timestamp、webhook-signature（www.standardwebhooks.com）。"}}
  }
}"#;

/// The account configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    batch: bool,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    signature_header: Option<String>,
    #[serde(default)]
    signature_scheme: Scheme,
    /// The `standard-webhooks` keys, decoded from `secret` by [`Account::parse`].
    #[serde(skip)]
    keys: Vec<Vec<u8>>,
}

/// How requests are signed (`signature_scheme`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Scheme {
    #[default]
    Herald,
    StandardWebhooks,
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let mut a: Account = json::parse_account(account)?;
        a.check()?;
        a.keys = a.standard_keys()?;
        Ok(a)
    }

    /// Each `whsec_` key of `secret`, decoded (`standard-webhooks` scheme; none for `herald`).
    fn standard_keys(&self) -> Result<Vec<Vec<u8>>, PluginError> {
        match (self.signature_scheme, &self.secret) {
            (Scheme::StandardWebhooks, Some(secret)) => secret
                .split(' ')
                .filter(|k| !k.is_empty())
                .enumerate()
                .map(|(i, k)| whsec_key(k).map_err(|m| bad("secret", format!("key {}: {m}", i + 1))))
                .collect(),
            _ => Ok(vec![]),
        }
    }

    fn check(&self) -> Result<(), PluginError> {
        check_url(&self.url).map_err(|m| bad("url", m))?;
        if self.secret.as_deref() == Some("") {
            return Err(bad("secret", "must not be empty"));
        }
        let sig = self.signature_header();
        if !is_token(sig) {
            return Err(bad("signature_header", format!("{sig:?} is not a valid header name")));
        }
        if is_reserved(sig) && !sig.eq_ignore_ascii_case(DEFAULT_SIGNATURE_HEADER) {
            return Err(bad("signature_header", format!("{sig:?} is reserved")));
        }
        let standard = self.signature_scheme == Scheme::StandardWebhooks;
        if standard && self.signature_header.is_some() {
            return Err(bad("signature_header", "applies to signature_scheme \"herald\" only (standard-webhooks names its headers)"));
        }
        if standard && self.secret.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(bad("secret", "required with signature_scheme \"standard-webhooks\" (whsec_<base64 key>)"));
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if !is_token(name) {
                return Err(bad(&field, "not a valid header name"));
            }
            let signing = if standard { STANDARD_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) } else { name.eq_ignore_ascii_case(sig) };
            if is_reserved(name) || signing {
                return Err(bad(&field, "this header is set by the plugin or the host"));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(bad(&field, "value contains control characters"));
            }
        }
        Ok(())
    }

    fn signature_header(&self) -> &str {
        self.signature_header.as_deref().unwrap_or(DEFAULT_SIGNATURE_HEADER)
    }
}

fn bad(field: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

/// The key of a Standard Webhooks secret, `whsec_<base64>` (24 to 64 bytes).
fn whsec_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix(WHSEC_PREFIX).ok_or("must be whsec_<base64 key> (Standard Webhooks secret format)")?;
    let key = BASE64.decode(b64).map_err(|e| format!("the part after whsec_ is not base64: {e}"))?;
    if !WHSEC_KEY_LEN.contains(&key.len()) {
        return Err(format!("the key is {} bytes; Standard Webhooks keys are {} to {} bytes", key.len(), WHSEC_KEY_LEN.start(), WHSEC_KEY_LEN.end()));
    }
    Ok(key)
}

/// Checks an absolute http(s) URL: scheme, a host (name, IPv4 or `[IPv6]`),
/// an optional port, no user-info, no whitespace or control characters.
fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("longer than {MAX_URL_LEN} bytes"));
    }
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("contains {c:?} (percent-encode it)"));
    }
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err("must start with http:// or https://".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("user-info (user@host) is not allowed; use the headers field".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unterminated [IPv6] host")?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err("invalid [IPv6] host".into());
        }
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or("junk after [IPv6] host")?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if !authority.starts_with('[') {
        let labels_ok =
            host.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if !labels_ok || host.len() > 253 {
            return Err(format!("invalid host {host:?}"));
        }
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("invalid port {p:?}")),
        }
    }
    Ok(())
}

/// An HTTP header name (RFC 9110 token).
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers that extra headers may not set.
fn is_reserved(name: &str) -> bool {
    const RESERVED: [&str; 13] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "expect",
        "content-type",
        "user-agent",
    ];
    let lower = name.to_ascii_lowercase();
    RESERVED.contains(&lower.as_str()) || lower.starts_with("x-herald-")
}

/// One delivery as sent in a request body.
#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    recipient: &'a str,
    subject: Option<&'a str>,
    text: &'a str,
    html: Option<&'a str>,
    metadata: BTreeMap<&'a str, &'a str>,
}

impl<'a> From<&'a Delivery> for Item<'a> {
    fn from(d: &'a Delivery) -> Self {
        Item {
            id: &d.id,
            recipient: &d.recipient,
            subject: d.subject.as_deref(),
            text: &d.text,
            html: d.html.as_deref(),
            metadata: d.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        }
    }
}

/// The batch body.
#[derive(Serialize)]
struct BatchBody<'a> {
    deliveries: Vec<Item<'a>>,
}

/// The `sha256=<hex>` signature of `body` sent at `timestamp` (seconds).
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!("sha256={}", sign::hex(&sign::hmac_sha256(secret.as_bytes(), &dotted(&[timestamp], body))))
}

/// The Standard Webhooks `webhook-signature` value: `v1,<base64 HMAC>` per key, space-separated.
pub fn standard_signature(keys: &[Vec<u8>], id: &str, timestamp: &str, body: &[u8]) -> String {
    let msg = dotted(&[id, timestamp], body);
    keys.iter().map(|k| format!("v1,{}", sign::base64(&sign::hmac_sha256(k, &msg)))).collect::<Vec<_>>().join(" ")
}

/// `<part>.<part>.<body>`: the signed content of both schemes.
fn dotted(parts: &[&str], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + body.len());
    for p in parts {
        msg.extend_from_slice(p.as_bytes());
        msg.push(b'.');
    }
    msg.extend_from_slice(body);
    msg
}

/// The `webhook-id` of a request: its delivery id, or for a batch a digest of the ids.
fn webhook_id(ids: &[String]) -> String {
    match ids {
        [id] => id.clone(),
        _ => format!("batch_{}", &sign::sha256_hex(ids.join("\n").as_bytes())[..32]),
    }
}

fn request(account: &Account, timestamp: &str, ids: Vec<String>, body: Vec<u8>) -> Outbound {
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), format!("herald-webhook/{VERSION}")),
        ("X-Herald-Timestamp".into(), timestamp.into()),
    ];
    if let [id] = ids.as_slice() {
        headers.push(("X-Herald-Delivery".into(), id.clone()));
    }
    match (account.signature_scheme, &account.secret) {
        (_, None) => {}
        (Scheme::Herald, Some(secret)) => headers.push((account.signature_header().into(), signature(secret, timestamp, &body))),
        (Scheme::StandardWebhooks, Some(_)) => {
            let id = webhook_id(&ids);
            let sig = standard_signature(&account.keys, &id, timestamp, &body);
            headers.extend([("webhook-id".into(), id), ("webhook-timestamp".into(), timestamp.into()), ("webhook-signature".into(), sig)]);
        }
    }
    headers.extend(account.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
    Outbound { deliveries: ids, request: Request::Http(HttpRequest { method: "POST".into(), url: account.url.clone(), headers, body }) }
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, PluginError> {
    json::to_vec(value).map_err(|e| PluginError::Internal(format!("cannot serialize body: {e}")))
}

impl Plugin for Webhook {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "webhook".into(),
            version: VERSION.into(),
            channel: "webhook".into(),
            formats: vec![ContentFormat::Text, ContentFormat::Markdown],
            max_batch: 100,
            account_schema: SCHEMA.into(),
            // Header values often carry API tokens: sealed at rest, never shown.
            secret_fields: vec!["secret".into(), "headers.*".into()],
            hosts: vec!["*".into()],
            billing_unit: "request".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let account = Account::parse(account)?;
        let timestamp = (ctx.now_ms / 1000).to_string();
        if batch.is_empty() {
            return Ok(vec![]);
        }
        if account.batch {
            let body = to_json(&BatchBody { deliveries: batch.iter().map(Item::from).collect() })?;
            let ids = batch.iter().map(|d| d.id.clone()).collect();
            return Ok(vec![request(&account, &timestamp, ids, body)]);
        }
        batch
            .iter()
            .map(|d| {
                let body = to_json(&Item::from(d))?;
                Ok(request(&account, &timestamp, vec![d.id.clone()], body))
            })
            .collect()
    }

    fn interpret(ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        match response {
            Response::Http(resp) => outcome::from_http_status(&deliveries, &resp, ctx.now_ms)
                .into_iter()
                .map(|o| {
                    let id = o.delivery_id.clone();
                    o.with_provider_id(id)
                })
                .collect(),
            Response::Smtp(_) => outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected response")),
        }
    }
}

export_plugin!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CallContext {
        CallContext { now_ms: 1_700_000_000_999, tenant: "t".into(), attempt: 1 }
    }

    fn delivery(id: &str) -> Delivery {
        Delivery {
            id: id.into(),
            recipient: "https://r.test/".into(),
            subject: Some("Hi".into()),
            text: "hello".into(),
            html: None,
            metadata: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        }
    }

    fn http(o: &Outbound) -> &HttpRequest {
        match &o.request {
            Request::Http(h) => h,
            Request::Smtp(_) => panic!("smtp"),
        }
    }

    fn header<'a>(h: &'a HttpRequest, name: &str) -> Option<&'a str> {
        h.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn bad_field(account: &str) -> String {
        match Webhook::validate_account(account) {
            Err(PluginError::BadConfig(m)) => m,
            other => panic!("expected BadConfig for {account}, got {other:?}"),
        }
    }

    #[test]
    fn validate() {
        assert!(Webhook::validate_account(r#"{"url":"https://h.test/x?y=1"}"#).is_ok());
        assert!(Webhook::validate_account(r#"{"url":"http://10.0.0.1:8080"}"#).is_ok());
        assert!(Webhook::validate_account(r#"{"url":"http://[::1]:80/p"}"#).is_ok());
        assert!(
            Webhook::validate_account(
                r#"{"url":"HTTPS://h.test","secret":"s","batch":true,"headers":{"Authorization":"Bearer x"},"signature_header":"X-Sig"}"#
            )
            .is_ok()
        );
        assert!(bad_field(r#"{}"#).starts_with("account: missing field `url`"));
        assert!(bad_field(r#"{"url":"ftp://h.test"}"#).starts_with("url: "));
        assert!(bad_field(r#"{"url":"https://"}"#).starts_with("url: missing host"));
        assert!(bad_field(r#"{"url":"https://a b.test"}"#).starts_with("url: "));
        assert!(bad_field(r#"{"url":"https://u:p@h.test"}"#).starts_with("url: user-info"));
        assert!(bad_field(r#"{"url":"https://h.test:0"}"#).starts_with("url: invalid port"));
        assert!(bad_field(r#"{"url":"https://h.test:99999"}"#).starts_with("url: invalid port"));
        assert!(bad_field(r#"{"url":"https://h..test"}"#).starts_with("url: invalid host"));
        assert!(bad_field(r#"{"url":"https://h.test","secret":""}"#).starts_with("secret: "));
        assert!(bad_field(r#"{"url":"https://h.test","batch":"yes"}"#).starts_with("batch: "));
        assert!(bad_field(r#"{"url":"https://h.test","headers":{"Bad Name":"x"}}"#).starts_with("headers.Bad Name: not a valid header name"));
        assert!(bad_field(r#"{"url":"https://h.test","headers":{"Host":"x"}}"#).starts_with("headers.Host: "));
        assert!(bad_field(r#"{"url":"https://h.test","headers":{"x-herald-delivery":"x"}}"#).starts_with("headers.x-herald-delivery: "));
        assert!(bad_field(r#"{"url":"https://h.test","headers":{"X-A":"a\r\nB: c"}}"#).starts_with("headers.X-A: value contains control"));
        assert!(bad_field(r#"{"url":"https://h.test","headers":{"X-A":1}}"#).starts_with("headers.X-A: "));
        assert!(bad_field(r#"{"url":"https://h.test","signature_header":"a:b"}"#).starts_with("signature_header: "));
        assert!(bad_field(r#"{"url":"https://h.test","urll":"x"}"#).contains("unknown field `urll`"));
    }

    #[test]
    fn build_single_signed() {
        let acc = r#"{"url":"https://h.test/hook","secret":"k","headers":{"Authorization":"Bearer t"}}"#;
        let out = Webhook::build(ctx(), acc, vec![delivery("d1"), delivery("d2")]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].deliveries, vec!["d2".to_string()]);
        let h = http(&out[0]);
        assert_eq!((h.method.as_str(), h.url.as_str()), ("POST", "https://h.test/hook"));
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(
            body,
            json::json!({"id":"d1","recipient":"https://r.test/","subject":"Hi","text":"hello",
                         "html":null,"metadata":{"a":"1","b":"2"}})
        );
        assert_eq!(header(h, "content-type"), Some("application/json"));
        assert_eq!(header(h, "user-agent"), Some(format!("herald-webhook/{VERSION}").as_str()));
        assert_eq!(header(h, "x-herald-timestamp"), Some("1700000000"));
        assert_eq!(header(h, "x-herald-delivery"), Some("d1"));
        assert_eq!(header(h, "authorization"), Some("Bearer t"));
        let mut msg = b"1700000000.".to_vec();
        msg.extend_from_slice(&h.body);
        let expect = format!("sha256={}", sign::hex(&sign::hmac_sha256(b"k", &msg)));
        assert_eq!(header(h, "x-herald-signature"), Some(expect.as_str()));
    }

    #[test]
    fn signature_known_value() {
        // Cross-checked with: printf '1700000000.{}' | openssl dgst -sha256 -hmac k
        assert_eq!(signature("k", "1700000000", b"{}"), "sha256=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146");
    }

    /// The Python library's test vector (standard-webhooks, libraries/python/tests/test_webhooks.py).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    /// A second 32-byte key, for rotation.
    const OTHER_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn standard(secret: &str) -> String {
        format!(r#"{{"url":"https://h.test/hook","secret":"{secret}","signature_scheme":"standard-webhooks"}}"#)
    }

    #[test]
    fn standard_signature_known_vector() {
        let key = whsec_key(SPEC_SECRET).unwrap();
        let sig = standard_signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Unpadded base64 decodes to the same key.
        assert_eq!(whsec_key(OTHER_SECRET).unwrap(), whsec_key(OTHER_SECRET.trim_end_matches('=')).unwrap());
    }

    #[test]
    fn validate_standard_webhooks() {
        assert!(Webhook::validate_account(&standard(SPEC_SECRET)).is_ok());
        assert!(Webhook::validate_account(&standard(&format!("{SPEC_SECRET} {OTHER_SECRET}"))).is_ok());
        // The default and explicit herald scheme take any secret.
        assert!(Webhook::validate_account(r#"{"url":"https://h.test","secret":"raw","signature_scheme":"herald"}"#).is_ok());
        let no_secret = r#"{"url":"https://h.test","signature_scheme":"standard-webhooks"}"#;
        assert!(bad_field(no_secret).starts_with("secret: required with signature_scheme"));
        assert!(bad_field(&standard("raw-secret")).starts_with("secret: key 1: must be whsec_<base64 key>"));
        assert!(bad_field(&standard("whsec_not*base64")).starts_with("secret: key 1: the part after whsec_ is not base64"));
        assert!(bad_field(&standard("whsec_c2hvcnQ=")).starts_with("secret: key 1: the key is 5 bytes"));
        assert!(bad_field(&standard(&format!("{SPEC_SECRET} nope"))).starts_with("secret: key 2: "));
        assert!(bad_field(&standard("   ")).starts_with("secret: required"));
        let acc = format!(r#"{{"url":"https://h.test","secret":"{SPEC_SECRET}","signature_scheme":"standard-webhooks","signature_header":"X-Sig"}}"#);
        assert!(bad_field(&acc).starts_with("signature_header: applies to signature_scheme \"herald\" only"));
        let acc =
            format!(r#"{{"url":"https://h.test","secret":"{SPEC_SECRET}","signature_scheme":"standard-webhooks","headers":{{"Webhook-Id":"x"}}}}"#);
        assert!(bad_field(&acc).starts_with("headers.Webhook-Id: this header is set by the plugin"));
        assert!(Webhook::validate_account(r#"{"url":"https://h.test","headers":{"Webhook-Id":"x"}}"#).is_ok());
        assert!(bad_field(r#"{"url":"https://h.test","signature_scheme":"svix"}"#).starts_with("signature_scheme: unknown variant `svix`"));
    }

    #[test]
    fn build_standard_webhooks() {
        let acc = standard(SPEC_SECRET);
        let key = whsec_key(SPEC_SECRET).unwrap();
        let first = Webhook::build(ctx(), &acc, vec![delivery("m.0")]).unwrap();
        let h = http(&first[0]);
        assert_eq!(header(h, "webhook-id"), Some("m.0"));
        assert_eq!(header(h, "webhook-timestamp"), Some("1700000000"));
        let want = standard_signature(std::slice::from_ref(&key), "m.0", "1700000000", &h.body);
        assert_eq!(header(h, "webhook-signature"), Some(want.as_str()));
        assert_eq!(header(h, "x-herald-signature"), None);
        assert_eq!(header(h, "x-herald-delivery"), Some("m.0"));
        // A retry: the same webhook-id, the new time, a new signature.
        let retry = CallContext { now_ms: 1_700_000_090_000, tenant: "t".into(), attempt: 2 };
        let again = Webhook::build(retry, &acc, vec![delivery("m.0")]).unwrap();
        let h2 = http(&again[0]);
        assert_eq!((header(h2, "webhook-id"), header(h2, "webhook-timestamp")), (Some("m.0"), Some("1700000090")));
        assert_ne!(header(h2, "webhook-signature"), header(h, "webhook-signature"));

        // Rotation: one v1 signature per key, in the secret's order.
        let out = Webhook::build(ctx(), &standard(&format!("{OTHER_SECRET} {SPEC_SECRET}")), vec![delivery("m.0")]).unwrap();
        let h = http(&out[0]);
        let sigs: Vec<&str> = header(h, "webhook-signature").unwrap().split(' ').collect();
        assert_eq!(sigs.len(), 2);
        assert_eq!(sigs[1], want);
        assert_eq!(sigs[0], standard_signature(&[whsec_key(OTHER_SECRET).unwrap()], "m.0", "1700000000", &h.body));
    }

    #[test]
    fn standard_webhooks_batch_id() {
        let acc = r#"{"url":"https://h.test","batch":true,"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","signature_scheme":"standard-webhooks"}"#;
        let id = |ids: &[&str]| {
            let out = Webhook::build(ctx(), acc, ids.iter().map(|i| delivery(i)).collect()).unwrap();
            header(http(&out[0]), "webhook-id").unwrap().to_string()
        };
        let a = id(&["m.0", "m.1"]);
        assert!(a.starts_with("batch_") && a.len() == 38 && !a.contains('.'), "{a}");
        assert_eq!(a, id(&["m.0", "m.1"]), "the same set, the same id");
        assert_ne!(a, id(&["m.0", "m.2"]));
        assert_eq!(id(&["m.7"]), "m.7", "a batch of one carries the delivery id");
    }

    #[test]
    fn build_batch_unsigned() {
        let acc = r#"{"url":"http://h.test","batch":true,"signature_header":"X-Sig"}"#;
        let out = Webhook::build(ctx(), acc, vec![delivery("d1"), delivery("d2")]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].deliveries, vec!["d1".to_string(), "d2".to_string()]);
        let h = http(&out[0]);
        let body: json::Value = json::from_slice(&h.body).unwrap();
        assert_eq!(body["deliveries"][1]["id"], "d2");
        assert_eq!(header(h, "x-herald-delivery"), None);
        assert_eq!(header(h, "x-sig"), None);
        assert_eq!(header(h, "x-herald-signature"), None);
        // A custom signature header name is used when signing.
        let acc = r#"{"url":"http://h.test","batch":true,"secret":"s","signature_header":"X-Sig"}"#;
        let out = Webhook::build(ctx(), acc, vec![delivery("d1")]).unwrap();
        let h = http(&out[0]);
        assert!(header(h, "x-sig").unwrap().starts_with("sha256="));
        assert_eq!(header(h, "x-herald-delivery"), Some("d1"));
        assert!(Webhook::build(ctx(), acc, vec![]).unwrap().is_empty());
    }

    #[test]
    fn build_rejects_bad_account() {
        assert!(matches!(Webhook::build(ctx(), r#"{"url":"nope"}"#, vec![delivery("d1")]), Err(PluginError::BadConfig(_))));
    }

    #[test]
    fn interpret() {
        let ids = vec!["d1".to_string(), "d2".to_string()];
        let resp = |status| Response::Http(HttpResponse { status, headers: vec![], body: vec![] });
        let v = Webhook::interpret(ctx(), "{}", ids.clone(), resp(204));
        assert_eq!(v[1].kind, OutcomeKind::Sent);
        assert_eq!(v[1].provider_id.as_deref(), Some("d2"));
        assert_eq!(Webhook::interpret(ctx(), "{}", ids.clone(), resp(503))[0].kind, OutcomeKind::Retry);
        assert_eq!(Webhook::interpret(ctx(), "{}", ids.clone(), resp(404))[0].kind, OutcomeKind::Failed);
        let v = Webhook::interpret(ctx(), "{}", ids, Response::Smtp(SmtpReply { code: 250, message: "ok".into() }));
        assert_eq!(v[0].kind, OutcomeKind::Failed);
        assert_eq!(v[0].detail.as_deref(), Some("unexpected response"));
    }
}
