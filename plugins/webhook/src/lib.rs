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
//!   "signature_header": "X-Herald-Signature"
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
//! - `signature_header` (optional, default `X-Herald-Signature`).
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
//! the signature header when `secret` is set, then the account's `headers`.
//!
//! # Signature
//!
//! `X-Herald-Signature: sha256=<hex(HMAC-SHA256(secret, "<timestamp>.<body>"))>`
//! where `<timestamp>` is the exact `X-Herald-Timestamp` value (decimal
//! seconds) and `<body>` the exact request body bytes. Receivers recompute it
//! over the raw body, compare in constant time, and reject timestamps too far
//! from their clock (e.g. 5 minutes) to limit replays; retries of the same
//! delivery carry the same `X-Herald-Delivery`/`id` (deduplicate on it).
//!
//! # Outcomes
//!
//! The conventional HTTP mapping
//! ([`outcome::from_http_status`](herald_plugin_sdk::outcome::from_http_status)):
//! 2xx sent, 429 throttled (Retry-After honoured), 408/425/5xx retry, other
//! statuses failed. The provider id is the delivery id.

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome, sign};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The plugin type exported to the host.
pub struct Webhook;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_SIGNATURE_HEADER: &str = "X-Herald-Signature";
const MAX_URL_LEN: usize = 2048;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald webhook account",
  "type": "object",
  "required": ["url"],
  "additionalProperties": false,
  "properties": {
    "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "maxLength": 2048,
            "description": "Endpoint receiving the POSTs (http or https)."},
    "secret": {"type": "string", "minLength": 1, "writeOnly": true,
               "description": "HMAC-SHA256 key; when set, requests carry a signature header."},
    "batch": {"type": "boolean", "default": false,
              "description": "Send the whole batch in one request."},
    "headers": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true},
                "description": "Extra request headers (values are kept secret: often API tokens)."},
    "signature_header": {"type": "string", "default": "X-Herald-Signature",
                         "description": "Name of the signature header."}
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
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        a.check()?;
        Ok(a)
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
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if !is_token(name) {
                return Err(bad(&field, "not a valid header name"));
            }
            if is_reserved(name) || name.eq_ignore_ascii_case(sig) {
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
    let mut msg = Vec::with_capacity(timestamp.len() + 1 + body.len());
    msg.extend_from_slice(timestamp.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    format!("sha256={}", sign::hex(&sign::hmac_sha256(secret.as_bytes(), &msg)))
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
    if let Some(secret) = &account.secret {
        headers.push((account.signature_header().into(), signature(secret, timestamp, &body)));
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
