//! Herald `email` channel plugin: one SMTP message per delivery, sent by the
//! host through the account's relay.
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "from": "noreply@example.com",
//!   "from_name": "Example Notifications",
//!   "reply_to": "support@example.com",
//!   "smtp": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
//!            "username": "apikey", "password": "..."}
//! }
//! ```
//!
//! - `from` (required), `reply_to` (optional): plain ASCII addresses
//!   (`local@domain`; no display names, no quoted local parts, no SMTPUTF8).
//! - `from_name` (optional): display name, any Unicode, no control characters.
//! - `smtp.host`, `smtp.port` (required), `smtp.tls` (required: `none`,
//!   `starttls` or `implicit`), `smtp.username` / `smtp.password` (optional,
//!   both or neither; refused with `tls: none` so credentials never travel in
//!   clear, unless `smtp.allow_plaintext_auth` is true — an explicit opt-in for
//!   a relay on loopback or a trusted network).
//!
//! Unknown fields are refused; errors name the field (`smtp.port: ...`).
//! The secret field is declared as `smtp.password` (a dotted path; see the
//! note in [`Email::describe`]).
//!
//! # Messages
//!
//! `build` makes one `smtp-message` per delivery: envelope sender `from`,
//! envelope recipient the delivery's recipient, and an RFC 5322 message with
//! `From` (with `from_name`), `To`, `Reply-To` (when set), `Subject` (RFC 2047
//! encoded when not ASCII; control characters become spaces), `Date` (from the
//! call context), `Message-ID: <delivery-id@herald>`, `MIME-Version`,
//! `X-Herald-Delivery: <delivery-id>`. The body is `text/plain` (the
//! delivery's text), or `multipart/alternative` with `text/plain` and
//! `text/html` when the delivery has HTML. The HTML is sanitized by
//! [`sanitize::sanitize_html`] (scripts, event handlers, `javascript:` URLs
//! and the like are removed; links get `rel="noopener noreferrer"`). The
//! multipart boundary is derived from a hash of the content, so the output is
//! deterministic (no clock, no randomness).
//!
//! # Invalid recipients: the whole batch fails
//!
//! `build` returns one result for the whole batch, and the contract requires
//! every delivery id in exactly one outbound, so a delivery cannot be skipped.
//! If any recipient is not a plausible address, `build` returns
//! `invalid-delivery("recipient <delivery id>: <reason>")` for the first such
//! delivery, and the host fails that batch. Hosts that want per-delivery
//! failures should build suspicious deliveries in batches of one.
//! Delivery ids containing characters other than visible ASCII are refused
//! the same way (they go into headers).
//!
//! # Outcomes
//!
//! The final SMTP reply: 2xx sent (provider id = delivery id), 4xx retry, 5xx
//! failed, anything else retry; the server's reply is the detail. An HTTP
//! response is a host bug: failed with `unexpected response`.

pub mod sanitize;

use herald_plugin_sdk::types::*;
use herald_plugin_sdk::{Plugin, export_plugin, json, outcome, sign, time};
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use serde::Deserialize;

/// The plugin type exported to the host.
pub struct Email;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Herald e-mail (SMTP) account",
  "type": "object",
  "required": ["from", "smtp"],
  "additionalProperties": false,
  "properties": {
    "from": {"type": "string", "format": "email", "description": "Sender address (From and MAIL FROM)."},
    "from_name": {"type": "string", "description": "Sender display name."},
    "reply_to": {"type": "string", "format": "email", "description": "Reply-To address."},
    "smtp": {
      "type": "object",
      "required": ["host", "port", "tls"],
      "additionalProperties": false,
      "properties": {
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "tls": {"enum": ["none", "starttls", "implicit"]},
        "username": {"type": "string"},
        "password": {"type": "string", "writeOnly": true},
        "allow_plaintext_auth": {"type": "boolean", "default": false}
      }
    }
  }
}"#;

/// The account configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    from: String,
    #[serde(default)]
    from_name: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    smtp: Smtp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Smtp {
    host: String,
    port: u16,
    tls: Tls,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// Opt-in for AUTH over an unencrypted connection (a relay on a trusted
    /// network or loopback). Off by default.
    #[serde(default)]
    allow_plaintext_auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Tls {
    None,
    Starttls,
    Implicit,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::BadConfig(format!("{field}: {msg}"))
}

impl Account {
    fn parse(account: &str) -> Result<Self, PluginError> {
        let a: Account = json::parse_account(account)?;
        check_address(&a.from).map_err(|m| bad("from", m))?;
        if let Some(r) = &a.reply_to {
            check_address(r).map_err(|m| bad("reply_to", m))?;
        }
        if let Some(n) = &a.from_name
            && (n.chars().any(char::is_control) || n.chars().count() > 200)
        {
            return Err(bad(
                "from_name",
                "control characters or longer than 200 characters",
            ));
        }
        check_host(&a.smtp.host).map_err(|m| bad("smtp.host", m))?;
        if a.smtp.port == 0 {
            return Err(bad("smtp.port", "must be 1..65535"));
        }
        match (&a.smtp.username, &a.smtp.password) {
            (Some(u), _) if u.is_empty() => return Err(bad("smtp.username", "must not be empty")),
            (Some(_), None) => {
                return Err(bad("smtp.password", "required when smtp.username is set"));
            }
            (None, Some(_)) => {
                return Err(bad("smtp.username", "required when smtp.password is set"));
            }
            (Some(_), Some(_)) if a.smtp.tls == Tls::None && !a.smtp.allow_plaintext_auth => {
                return Err(bad(
                    "smtp.tls",
                    "credentials are refused with tls \"none\" (use starttls or implicit, or set smtp.allow_plaintext_auth for a trusted relay)",
                ));
            }
            _ => {}
        }
        Ok(a)
    }

    fn relay(&self) -> SmtpRelay {
        SmtpRelay {
            host: self.smtp.host.clone(),
            port: self.smtp.port,
            tls: match self.smtp.tls {
                Tls::None => TlsMode::None,
                Tls::Starttls => TlsMode::Starttls,
                Tls::Implicit => TlsMode::Implicit,
            },
            username: self.smtp.username.clone(),
            password: self.smtp.password.clone(),
        }
    }
}

/// A plausible plain ASCII address: `local@domain`, dot-atom local part of at
/// most 64 bytes, a domain of at least two labels (letters, digits, hyphens),
/// or a `[IPv4]` literal; 254 bytes at most.
pub fn check_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("empty address".into());
    }
    if addr.len() > 254 {
        return Err("address longer than 254 bytes".into());
    }
    if !addr.is_ascii() {
        return Err(format!("{addr:?}: non-ASCII addresses are not supported"));
    }
    let (local, domain) = addr
        .rsplit_once('@')
        .ok_or_else(|| format!("{addr:?}: missing @"))?;
    const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT.contains(&c))
        });
    if !local_ok {
        return Err(format!("{addr:?}: invalid local part"));
    }
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let octets: Vec<&str> = lit.split('.').collect();
        if octets.len() == 4
            && octets
                .iter()
                .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
        {
            return Ok(());
        }
        return Err(format!("{addr:?}: invalid address literal"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        });
    if !labels_ok {
        return Err(format!("{addr:?}: invalid domain"));
    }
    Ok(())
}

/// A relay host: a DNS name (one label is fine, e.g. `mailhog`), an IPv4
/// address, or an IPv6 address (bare or in brackets).
fn check_host(host: &str) -> Result<(), String> {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if h.is_empty() || h.len() > 253 {
        return Err("empty or too long".into());
    }
    if h.contains(':') {
        return if h
            .bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            Ok(())
        } else {
            Err(format!("{host:?} is not a valid IPv6 address"))
        };
    }
    let ok = h.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not a valid host name"))
    }
}

/// Replace control characters (CR, LF, tabs, ...) by spaces: header-safe text.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A display name for an address header: a quoted-string when it is printable
/// ASCII, otherwise RFC 2047 `=?utf-8?B?...?=` encoded words (never inside
/// quotes, as RFC 2047 section 5 requires), folded so lines stay short.
fn display_name(name: &str) -> String {
    let name = one_line(name);
    if name.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""));
    }
    // 42 bytes of UTF-8 -> 56 base64 chars -> 68-char encoded words.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in name.chars() {
        if chunk.len() + c.len_utf8() > 42 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?utf-8?B?{}?=", sign::base64(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// `Message-ID` left part: the delivery id when it is a dot-atom, otherwise a
/// hash of it.
fn message_id(delivery_id: &str) -> String {
    const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    let dot_atom = delivery_id.split('.').all(|a| {
        !a.is_empty()
            && a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || ATEXT.contains(&c))
    });
    if dot_atom && delivery_id.len() <= 200 {
        format!("{delivery_id}@herald")
    } else {
        format!("{}@herald", &sign::sha256_hex(delivery_id.as_bytes())[..32])
    }
}

/// The complete RFC 5322 message for one delivery.
pub fn build_mime(
    now_ms: u64,
    from: &str,
    from_name: Option<&str>,
    reply_to: Option<&str>,
    d: &Delivery,
) -> Result<Vec<u8>, PluginError> {
    let from_header = match from_name {
        Some(name) if !name.trim().is_empty() => format!("{} <{from}>", display_name(name)),
        _ => format!("<{from}>"),
    };
    let mut msg = MessageBuilder::new()
        .header("From", Raw::new(from_header))
        .to(d.recipient.as_str())
        .header("Date", Raw::new(time::rfc2822(now_ms)))
        .message_id(message_id(&d.id))
        .header("X-Herald-Delivery", Raw::new(d.id.as_str()));
    if let Some(r) = reply_to {
        msg = msg.reply_to(r);
    }
    if let Some(subject) = &d.subject {
        msg = msg.subject(one_line(subject));
    }
    let text = MimePart::new("text/plain", d.text.as_str());
    let body = match &d.html {
        Some(html) => {
            let clean = sanitize::sanitize_html(html);
            // A boundary derived from the content cannot occur in it, and needs
            // no clock or randomness (mail-builder's own generator reads the clock).
            let mut seed = Vec::with_capacity(d.id.len() + d.text.len() + clean.len() + 2);
            seed.extend_from_slice(d.id.as_bytes());
            seed.push(0);
            seed.extend_from_slice(d.text.as_bytes());
            seed.push(0);
            seed.extend_from_slice(clean.as_bytes());
            let boundary = format!("=_herald_{}", &sign::sha256_hex(&seed)[..32]);
            MimePart::new(
                ContentType::new("multipart/alternative").attribute("boundary", boundary),
                vec![text, MimePart::new("text/html", clean)],
            )
        }
        None => text,
    };
    msg.body(body)
        .write_to_vec()
        .map_err(|e| PluginError::Internal(format!("cannot write MIME message: {e}")))
}

impl Plugin for Email {
    /// Note on `secret-fields`: the WIT says "top-level account fields", but
    /// this plugin's secret is nested (`smtp.password`), so it declares the
    /// dotted path `smtp.password`.
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "email".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            channel: "email".into(),
            formats: vec![ContentFormat::Html, ContentFormat::Text],
            max_batch: 50,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["smtp.password".into()],
            hosts: vec!["*".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(
        ctx: CallContext,
        account: &str,
        batch: Vec<Delivery>,
    ) -> Result<Vec<Outbound>, PluginError> {
        let account = Account::parse(account)?;
        for d in &batch {
            if d.id.is_empty() || !d.id.bytes().all(|c| c.is_ascii_graphic()) {
                return Err(PluginError::InvalidDelivery(format!(
                    "delivery id {:?}: only visible ASCII is supported",
                    d.id
                )));
            }
            check_address(&d.recipient)
                .map_err(|m| PluginError::InvalidDelivery(format!("recipient {}: {m}", d.id)))?;
        }
        let relay = account.relay();
        batch
            .iter()
            .map(|d| {
                let mime = build_mime(
                    ctx.now_ms,
                    &account.from,
                    account.from_name.as_deref(),
                    account.reply_to.as_deref(),
                    d,
                )?;
                Ok(Outbound {
                    deliveries: vec![d.id.clone()],
                    request: Request::Smtp(SmtpMessage {
                        relay: relay.clone(),
                        sender: account.from.clone(),
                        recipients: vec![d.recipient.clone()],
                        mime,
                    }),
                })
            })
            .collect()
    }

    fn interpret(
        _ctx: CallContext,
        _account: &str,
        deliveries: Vec<String>,
        response: Response,
    ) -> Vec<Outcome> {
        match response {
            Response::Smtp(reply) => {
                let detail = format!("{} {}", reply.code, one_line(reply.message.trim()));
                outcome::for_all(&deliveries, |id| match reply.code {
                    200..=299 => outcome::sent(id, detail.clone()).with_provider_id(id),
                    500..=599 => outcome::failed(id, detail.clone()),
                    _ => outcome::retry(id, detail.clone()),
                })
            }
            Response::Http(_) => {
                outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected response"))
            }
        }
    }
}

export_plugin!(Email);

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const ACCOUNT: &str = r#"{"from":"noreply@example.com","from_name":"Héraut Notifications",
        "reply_to":"help@example.com",
        "smtp":{"host":"smtp.example.com","port":587,"tls":"starttls","username":"u","password":"p"}}"#;

    fn ctx() -> CallContext {
        CallContext {
            now_ms: 1_700_000_000_123,
            tenant: "t".into(),
            attempt: 1,
        }
    }

    fn delivery(id: &str, recipient: &str, html: Option<&str>) -> Delivery {
        Delivery {
            id: id.into(),
            recipient: recipient.into(),
            subject: Some("订单已发货 — your order shipped".into()),
            text: "Your order shipped.\nThanks!".into(),
            html: html.map(Into::into),
            metadata: vec![],
        }
    }

    fn smtp(o: &Outbound) -> &SmtpMessage {
        match &o.request {
            Request::Smtp(m) => m,
            Request::Http(_) => panic!("http"),
        }
    }

    /// Unfolded header value of `name` in `mime`.
    fn header(mime: &str, name: &str) -> Option<String> {
        let head = mime.split("\r\n\r\n").next().unwrap();
        let unfolded = head.replace("\r\n\t", "\t").replace("\r\n ", " ");
        unfolded
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
    }

    /// Undo quoted-printable soft breaks and `=XX` escapes (enough for tests).
    fn qp_decode(s: &str) -> String {
        let s = s.replace("=\r\n", "");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && i + 2 < b.len()
                && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("Shop \"X\""), r#""Shop \"X\"""#);
        let long = "通知".repeat(40);
        let enc = display_name(&long);
        assert!(enc.lines().all(|l| l.trim_end().len() <= 76), "{enc}");
        assert_eq!(decode_words(&enc), long);
    }

    /// Decode RFC 2047 `=?utf-8?B?...?=` words.
    fn decode_words(v: &str) -> String {
        let mut bytes = Vec::new();
        for w in v.split_whitespace() {
            let b64 = w
                .strip_prefix("=?utf-8?B?")
                .and_then(|w| w.strip_suffix("?="));
            let b64 = b64.unwrap_or_else(|| panic!("not an encoded word: {w}"));
            bytes.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            );
        }
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn validate() {
        assert!(Email::validate_account(ACCOUNT).is_ok());
        assert!(
            Email::validate_account(
                r#"{"from":"a@b.test","smtp":{"host":"mailhog","port":1025,"tls":"none"}}"#
            )
            .is_ok()
        );
        let err = |acc: &str| match Email::validate_account(acc) {
            Err(PluginError::BadConfig(m)) => m,
            other => panic!("{acc}: {other:?}"),
        };
        assert!(
            err(r#"{"from":"a@b.test","smtp":{"host":"h","port":"x","tls":"none"}}"#)
                .starts_with("smtp.port: ")
        );
        assert!(
            err(r#"{"from":"a@b.test","smtp":{"host":"h","port":0,"tls":"none"}}"#)
                .starts_with("smtp.port: ")
        );
        assert!(
            err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"ssl"}}"#)
                .starts_with("smtp.tls: ")
        );
        assert!(
            err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25}}"#)
                .starts_with("smtp: missing field `tls`")
        );
        assert!(
            err(r#"{"from":"a@b.test","smtp":{"host":"a b","port":25,"tls":"none"}}"#)
                .starts_with("smtp.host: ")
        );
        assert!(
            err(r#"{"from":"nope","smtp":{"host":"h","port":25,"tls":"none"}}"#)
                .starts_with("from: ")
        );
        assert!(
            err(
                r#"{"from":"a@b.test","reply_to":"x@","smtp":{"host":"h","port":25,"tls":"none"}}"#
            )
            .starts_with("reply_to: ")
        );
        assert!(err(r#"{"from":"a@b.test","from_name":"a\r\nBcc: x","smtp":{"host":"h","port":25,"tls":"none"}}"#).starts_with("from_name: "));
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"none","username":"u","password":"p"}}"#).starts_with("smtp.tls: "));
        assert!(
            Account::parse(r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"none","username":"u","password":"p","allow_plaintext_auth":true}}"#).is_ok()
        );
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"implicit","username":"u"}}"#).starts_with("smtp.password: "));
        assert!(
            err(r#"{"from":"a@b.test","host":"h","smtp":{"host":"h","port":25,"tls":"none"}}"#)
                .contains("unknown field `host`")
        );
    }

    #[test]
    fn addresses() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.com",
            "x@[10.0.0.1]",
            "o'neil@ex-ample.org",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@b.co",
            "a@",
            "a@b",
            "a..b@c.d",
            ".a@c.d",
            "a@-b.co",
            "a b@c.d",
            "a@c.d\r\nBcc: x",
            "é@c.d",
            "<a@c.d>",
            "a@[1.2.3]",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mime_multipart_sanitized_and_encoded() {
        let html = r#"<p onclick="steal()">Shipped! <a href="javascript:alert(1)">x</a> <a href="https://shop.test/o/1">track</a></p><script>alert(document.cookie)</script>"#;
        let out = Email::build(
            ctx(),
            ACCOUNT,
            vec![delivery("d-1", "ann@example.org", Some(html))],
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].deliveries, vec!["d-1".to_string()]);
        let m = smtp(&out[0]);
        assert_eq!(m.sender, "noreply@example.com");
        assert_eq!(m.recipients, vec!["ann@example.org".to_string()]);
        assert_eq!(m.relay.tls, TlsMode::Starttls);
        assert_eq!(
            (m.relay.port, m.relay.password.as_deref()),
            (587, Some("p"))
        );
        let mime = String::from_utf8(m.mime.clone()).unwrap();
        assert!(mime.is_ascii(), "MIME must be 7-bit clean");
        assert_eq!(
            header(&mime, "Date").as_deref(),
            Some("Tue, 14 Nov 2023 22:13:20 +0000")
        );
        assert_eq!(header(&mime, "Message-ID").as_deref(), Some("<d-1@herald>"));
        assert_eq!(header(&mime, "X-Herald-Delivery").as_deref(), Some("d-1"));
        assert_eq!(header(&mime, "To").as_deref(), Some("<ann@example.org>"));
        assert_eq!(
            header(&mime, "Reply-To").as_deref(),
            Some("<help@example.com>")
        );
        let from = header(&mime, "From").unwrap();
        let (name, addr) = from.rsplit_once(' ').unwrap();
        assert_eq!(
            (decode_words(name).as_str(), addr),
            ("Héraut Notifications", "<noreply@example.com>")
        );
        assert_eq!(header(&mime, "MIME-Version").as_deref(), Some("1.0"));
        // Subject: RFC 2047 encoded words that decode back to the original.
        let subject = header(&mime, "Subject").unwrap();
        assert!(subject.starts_with("=?utf-8?B?"), "{subject}");
        assert_eq!(decode_words(&subject), "订单已发货 — your order shipped");
        // Both parts, with the content-derived boundary.
        let ct = header(&mime, "Content-Type").unwrap();
        assert!(
            ct.starts_with("multipart/alternative;") && ct.contains("=_herald_"),
            "{ct}"
        );
        assert!(
            mime.contains("Content-Type: text/plain; charset=\"utf-8\""),
            "{mime}"
        );
        assert!(
            mime.contains("Content-Type: text/html; charset=\"utf-8\""),
            "{mime}"
        );
        assert!(mime.contains("Your order shipped.\r\nThanks!"));
        // Sanitized HTML (the part is quoted-printable).
        let decoded = qp_decode(&mime);
        let lower = decoded.to_ascii_lowercase();
        assert!(
            !lower.contains("<script") && !lower.contains("alert(document"),
            "{mime}"
        );
        assert!(
            !lower.contains("onclick") && !lower.contains("javascript:"),
            "{mime}"
        );
        assert!(
            decoded
                .contains(r#"<a href="https://shop.test/o/1" rel="noopener noreferrer">track</a>"#),
            "{decoded}"
        );
        assert!(decoded.contains("<p>Shipped! "), "{decoded}");
        // Deterministic: the same input gives the same bytes.
        let again = Email::build(
            ctx(),
            ACCOUNT,
            vec![delivery("d-1", "ann@example.org", Some(html))],
        )
        .unwrap();
        assert_eq!(smtp(&again[0]).mime, m.mime);
    }

    #[test]
    fn mime_text_only() {
        let mut d = delivery("d2", "bob@example.org", None);
        d.subject = Some("Plain\r\nBcc: evil@example.org".into());
        let out = Email::build(
            ctx(),
            r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"none"}}"#,
            vec![d],
        )
        .unwrap();
        let mime = String::from_utf8(smtp(&out[0]).mime.clone()).unwrap();
        assert!(
            header(&mime, "Content-Type")
                .unwrap()
                .starts_with("text/plain"),
            "{mime}"
        );
        assert!(!mime.contains("multipart"));
        assert!(!mime.contains("\r\nBcc:"), "{mime}");
        assert!(header(&mime, "Reply-To").is_none());
        assert_eq!(header(&mime, "From").as_deref(), Some("<a@b.test>"));
    }

    #[test]
    fn bad_recipient_fails_batch_naming_delivery() {
        let batch = vec![
            delivery("ok1", "a@example.org", None),
            delivery("bad7", "not-an-address", None),
        ];
        match Email::build(ctx(), ACCOUNT, batch) {
            Err(PluginError::InvalidDelivery(m)) => {
                assert!(m.starts_with("recipient bad7: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match Email::build(
            ctx(),
            ACCOUNT,
            vec![delivery("a\nb", "a@example.org", None)],
        ) {
            Err(PluginError::InvalidDelivery(m)) => assert!(m.starts_with("delivery id"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn odd_delivery_id_message_id() {
        assert_eq!(message_id("abc-1.2"), "abc-1.2@herald");
        let m = message_id("a<b>");
        assert!(m.ends_with("@herald") && m.len() == 32 + 7, "{m}");
    }

    #[test]
    fn interpret() {
        let ids = vec!["d1".to_string()];
        let r = |code, msg: &str| {
            Response::Smtp(SmtpReply {
                code,
                message: msg.into(),
            })
        };
        let v = Email::interpret(ctx(), "{}", ids.clone(), r(250, "2.0.0 OK queued as X"));
        assert_eq!(
            (v[0].kind, v[0].provider_id.as_deref()),
            (OutcomeKind::Sent, Some("d1"))
        );
        assert_eq!(v[0].detail.as_deref(), Some("250 2.0.0 OK queued as X"));
        let v = Email::interpret(ctx(), "{}", ids.clone(), r(451, "4.7.1 greylisted"));
        assert_eq!(v[0].kind, OutcomeKind::Retry);
        let v = Email::interpret(ctx(), "{}", ids.clone(), r(550, "5.1.1 no such user"));
        assert_eq!(
            (v[0].kind, v[0].detail.as_deref()),
            (OutcomeKind::Failed, Some("550 5.1.1 no such user"))
        );
        let v = Email::interpret(
            ctx(),
            "{}",
            ids,
            Response::Http(HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
            }),
        );
        assert_eq!(
            (v[0].kind, v[0].detail.as_deref()),
            (OutcomeKind::Failed, Some("unexpected response"))
        );
    }
}
