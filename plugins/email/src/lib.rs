//! Herald `email` channel plugin: SMTP messages sent by the host through the
//! account's relay — one per delivery, or one per group of deliveries whose
//! content is identical (bulk e-mail, see "Messages").
//!
//! # Account configuration
//!
//! ```json
//! {
//!   "from": "noreply@example.com",
//!   "from_name": "Example Notifications",
//!   "reply_to": "support@example.com",
//!   "smtp": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
//!            "username": "apikey", "password": "...",
//!            "max_recipients_per_message": 50, "max_connections": 4}
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
//! - `smtp.max_recipients_per_message` (optional, 1..=1000, default 50): at
//!   most this many envelope recipients (`RCPT TO`) in one message; providers
//!   cap it (often 50 or 100).
//! - `smtp.max_connections` (optional, 1..=64, default 4): how many
//!   connections the host keeps open to the relay for this account at most.
//!   The plugin only validates it: the host reads it from the account config
//!   (a host convention for SMTP accounts, see sdk/README.md), because the
//!   WIT `smtp-relay` record has no field for it.
//!
//! Unknown fields are refused; errors name the field (`smtp.port: ...`).
//! The secret field is declared as `smtp.password` (a dotted path; see the
//! note in [`Email::describe`]).
//!
//! # Messages
//!
//! Deliveries of a batch whose rendered subject, text and HTML are
//! byte-identical (no per-recipient variables, or the same values) are
//! grouped: one `smtp-message` per group of at most
//! `smtp.max_recipients_per_message` deliveries, in the order the deliveries
//! came. Its `recipients[i]` is the recipient of `deliveries[i]` (the contract
//! the host relies on to give each delivery the reply to its own `RCPT TO`),
//! its `To:` header is `undisclosed-recipients:;` so no recipient sees the
//! others, `Message-ID` is derived from the group's delivery ids, and there is
//! no per-recipient header (no `X-Herald-Delivery`). A group of one (any
//! personalised content) is built as a single message:
//!
//! Single messages: envelope sender `from`,
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
//! The SMTP reply: 2xx sent (provider id = delivery id), 4xx retry, 5xx
//! failed, anything else retry; the server's reply is the detail. For a
//! message to several recipients the host calls `interpret` once per group of
//! deliveries that got the same reply: a recipient refused at `RCPT TO` gets
//! its own refusal, the accepted ones the reply to the message (after DATA). An HTTP
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
  "x-herald-zh": {"title": "邮件（SMTP）账号"},
  "type": "object",
  "required": ["from", "smtp"],
  "additionalProperties": false,
  "properties": {
    "from": {"type": "string", "format": "email", "title": "Sender", "description": "Sender address (From and MAIL FROM).",
             "x-herald-zh": {"title": "发件人", "description": "发件人地址（From 与 MAIL FROM）。"}},
    "from_name": {"type": "string", "title": "Sender name", "description": "Sender display name.",
                  "x-herald-zh": {"title": "发件人名称", "description": "收件人看到的发件人显示名称。"}},
    "reply_to": {"type": "string", "format": "email", "x-herald-advanced": true, "title": "Reply-To", "description": "Reply-To address.",
                 "x-herald-zh": {"title": "回复地址", "description": "回复邮件的收件地址（Reply-To）。"}},
    "smtp": {
      "type": "object",
      "title": "SMTP server", "description": "The relay that sends the mail.",
      "x-herald-zh": {"title": "SMTP 服务器", "description": "发送邮件的 SMTP 中继服务器。"},
      "required": ["host", "port", "tls"],
      "additionalProperties": false,
      "properties": {
        "host": {"type": "string", "minLength": 1, "title": "SMTP server", "description": "Host name of the SMTP relay, e.g. smtp.example.com.",
                 "x-herald-zh": {"title": "SMTP 服务器", "description": "SMTP 服务器主机名，例如 smtp.example.com。"}},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "title": "Port", "description": "465 for TLS, 587 for STARTTLS, 25 without encryption.",
                 "x-herald-zh": {"title": "端口", "description": "SSL/TLS 通常为 465，STARTTLS 为 587，不加密为 25。"}},
        "tls": {"enum": ["none", "starttls", "implicit"], "title": "Encryption", "description": "none, starttls or implicit (TLS from the first byte).",
                "x-herald-zh": {"title": "加密方式", "description": "none（不加密）、starttls 或 implicit（SSL/TLS）。"}},
        "username": {"type": "string", "title": "Username", "description": "SMTP login; usually the sender address.",
                     "x-herald-zh": {"title": "用户名", "description": "SMTP 登录名，通常为发件人地址。"}},
        "password": {"type": "string", "writeOnly": true, "title": "Password", "description": "SMTP password or authorization code.",
                     "x-herald-zh": {"title": "密码", "description": "SMTP 密码或授权码。"}},
        "allow_plaintext_auth": {"type": "boolean", "default": false, "x-herald-advanced": true,
          "title": "Allow plaintext login", "description": "Send the password over an unencrypted connection (tls none only).",
          "x-herald-zh": {"title": "允许明文登录", "description": "允许在未加密连接上发送密码（仅限 tls 为 none）。"}},
        "max_recipients_per_message": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50, "x-herald-advanced": true,
          "title": "Recipients per message", "description": "Envelope recipients (RCPT TO) per message at most, for deliveries with identical content.",
          "x-herald-zh": {"title": "每封收件人上限", "description": "内容相同的投递合并发送时，每封邮件的信封收件人（RCPT TO）上限。"}},
        "max_connections": {"type": "integer", "minimum": 1, "maximum": 64, "default": 4, "x-herald-advanced": true,
          "title": "Connection limit", "description": "Parallel connections to the relay at most (read by the host).",
          "x-herald-zh": {"title": "连接数上限", "description": "到 SMTP 服务器的并行连接数上限（由网关读取）。"}}
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
    /// Envelope recipients per message at most (identical content only).
    #[serde(default = "default_max_recipients")]
    max_recipients_per_message: u32,
    /// Parallel connections at most; validated here, used by the host.
    #[serde(default = "default_max_connections")]
    max_connections: u32,
}

/// Default `smtp.max_recipients_per_message`.
pub const DEFAULT_MAX_RECIPIENTS: u32 = 50;
/// Default `smtp.max_connections` (the host has the same default).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

fn default_max_recipients() -> u32 {
    DEFAULT_MAX_RECIPIENTS
}

fn default_max_connections() -> u32 {
    DEFAULT_MAX_CONNECTIONS
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
            return Err(bad("from_name", "control characters or longer than 200 characters"));
        }
        check_host(&a.smtp.host).map_err(|m| bad("smtp.host", m))?;
        if a.smtp.port == 0 {
            return Err(bad("smtp.port", "must be 1..65535"));
        }
        if !(1..=1000).contains(&a.smtp.max_recipients_per_message) {
            return Err(bad("smtp.max_recipients_per_message", "must be 1..1000"));
        }
        if !(1..=64).contains(&a.smtp.max_connections) {
            return Err(bad("smtp.max_connections", "must be 1..64"));
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
    let (local, domain) = addr.rsplit_once('@').ok_or_else(|| format!("{addr:?}: missing @"))?;
    const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| !atom.is_empty() && atom.bytes().all(|c| c.is_ascii_alphanumeric() || ATEXT.contains(&c)));
    if !local_ok {
        return Err(format!("{addr:?}: invalid local part"));
    }
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let octets: Vec<&str> = lit.split('.').collect();
        if octets.len() == 4 && octets.iter().all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok()) {
            return Ok(());
        }
        return Err(format!("{addr:?}: invalid address literal"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        });
    if !labels_ok {
        return Err(format!("{addr:?}: invalid domain"));
    }
    Ok(())
}

/// A relay host: a DNS name (one label is fine, e.g. `mailhog`), an IPv4
/// address, or an IPv6 address (bare or in brackets).
fn check_host(host: &str) -> Result<(), String> {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if h.is_empty() || h.len() > 253 {
        return Err("empty or too long".into());
    }
    if h.contains(':') {
        return if h.bytes().all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.') {
            Ok(())
        } else {
            Err(format!("{host:?} is not a valid IPv6 address"))
        };
    }
    let ok = h.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    if ok { Ok(()) } else { Err(format!("{host:?} is not a valid host name")) }
}

/// Replace control characters (CR, LF, tabs, ...) by spaces: header-safe text.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
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
    words.iter().map(|w| format!("=?utf-8?B?{}?=", sign::base64(w.as_bytes()))).collect::<Vec<_>>().join("\r\n ")
}

/// `Message-ID` left part: the delivery id when it is a dot-atom, otherwise a
/// hash of it.
fn message_id(delivery_id: &str) -> String {
    const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    let dot_atom = delivery_id.split('.').all(|a| !a.is_empty() && a.bytes().all(|c| c.is_ascii_alphanumeric() || ATEXT.contains(&c)));
    if dot_atom && delivery_id.len() <= 200 {
        format!("{delivery_id}@herald")
    } else {
        format!("{}@herald", &sign::sha256_hex(delivery_id.as_bytes())[..32])
    }
}

/// The complete RFC 5322 message for one delivery.
pub fn build_mime(now_ms: u64, from: &str, from_name: Option<&str>, reply_to: Option<&str>, d: &Delivery) -> Result<Vec<u8>, PluginError> {
    let head = Head { to: Some(d.recipient.as_str()), message_id: message_id(&d.id), delivery: Some(d.id.as_str()) };
    write_mime(now_ms, from, from_name, reply_to, &head, d)
}

/// The one RFC 5322 message for a group of deliveries with identical content
/// (`group[0]` gives the content): `To: undisclosed-recipients:;`, a
/// `Message-ID` derived from every delivery id of the group, and no header
/// that names a recipient or a delivery.
pub fn build_shared_mime(
    now_ms: u64,
    from: &str,
    from_name: Option<&str>,
    reply_to: Option<&str>,
    group: &[&Delivery],
) -> Result<Vec<u8>, PluginError> {
    let mut ids = Vec::new();
    for d in group {
        ids.extend_from_slice(d.id.as_bytes());
        ids.push(b'\n');
    }
    let head = Head { to: None, message_id: format!("{}@herald", &sign::sha256_hex(&ids)[..32]), delivery: None };
    write_mime(now_ms, from, from_name, reply_to, &head, group[0])
}

/// The headers that differ between a single and a shared message.
struct Head<'a> {
    /// `To:` address, or `None` for `undisclosed-recipients:;`.
    to: Option<&'a str>,
    message_id: String,
    /// `X-Herald-Delivery` (single messages only).
    delivery: Option<&'a str>,
}

fn write_mime(now_ms: u64, from: &str, from_name: Option<&str>, reply_to: Option<&str>, head: &Head, d: &Delivery) -> Result<Vec<u8>, PluginError> {
    let from_header = match from_name {
        Some(name) if !name.trim().is_empty() => format!("{} <{from}>", display_name(name)),
        _ => format!("<{from}>"),
    };
    let mut msg = MessageBuilder::new().header("From", Raw::new(from_header));
    msg = match head.to {
        Some(to) => msg.to(to),
        None => msg.header("To", Raw::new("undisclosed-recipients:;")),
    };
    msg = msg.header("Date", Raw::new(time::rfc2822(now_ms))).message_id(head.message_id.as_str());
    if let Some(id) = head.delivery {
        msg = msg.header("X-Herald-Delivery", Raw::new(id));
    }
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
            let seed_id = head.delivery.unwrap_or(head.message_id.as_str());
            let mut seed = Vec::with_capacity(seed_id.len() + d.text.len() + clean.len() + 2);
            seed.extend_from_slice(seed_id.as_bytes());
            seed.push(0);
            seed.extend_from_slice(d.text.as_bytes());
            seed.push(0);
            seed.extend_from_slice(clean.as_bytes());
            let boundary = format!("=_herald_{}", &sign::sha256_hex(&seed)[..32]);
            MimePart::new(ContentType::new("multipart/alternative").attribute("boundary", boundary), vec![text, MimePart::new("text/html", clean)])
        }
        None => text,
    };
    msg.body(body).write_to_vec().map_err(|e| PluginError::Internal(format!("cannot write MIME message: {e}")))
}

/// Deliveries grouped by identical rendered content (subject, text, HTML),
/// each group cut into chunks of at most `max` and kept in arrival order
/// (groups by their first delivery, deliveries within a group as they came).
/// A recipient appears at most once in a group: a second delivery with the
/// same content to the same address (compared case-insensitively) goes to
/// another group, since a server would deliver one message for both.
pub fn group_identical(batch: &[Delivery], max: usize) -> Vec<Vec<&Delivery>> {
    use std::collections::HashMap;
    type Content<'a> = (Option<&'a str>, &'a str, Option<&'a str>);
    let mut seen: HashMap<(Content, String), usize> = HashMap::new();
    let mut index: HashMap<(Content, usize), usize> = HashMap::new();
    let mut groups: Vec<Vec<&Delivery>> = Vec::new();
    for d in batch {
        let content = (d.subject.as_deref(), d.text.as_str(), d.html.as_deref());
        let nth = seen.entry((content, d.recipient.to_ascii_lowercase())).or_insert(0);
        let key = (content, *nth);
        *nth += 1;
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(d);
    }
    groups.into_iter().flat_map(|g| g.chunks(max.max(1)).map(<[&Delivery]>::to_vec).collect::<Vec<_>>()).collect()
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
            max_batch: 100,
            account_schema: SCHEMA.into(),
            secret_fields: vec!["smtp.password".into()],
            hosts: vec!["*".into()],
            billing_unit: "message".into(),
        }
    }

    fn validate_account(account: &str) -> Result<(), PluginError> {
        Account::parse(account).map(|_| ())
    }

    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
        let account = Account::parse(account)?;
        for d in &batch {
            if d.id.is_empty() || !d.id.bytes().all(|c| c.is_ascii_graphic()) {
                return Err(PluginError::InvalidDelivery(format!("delivery id {:?}: only visible ASCII is supported", d.id)));
            }
            check_address(&d.recipient).map_err(|m| PluginError::InvalidDelivery(format!("recipient {}: {m}", d.id)))?;
        }
        let relay = account.relay();
        let max = account.smtp.max_recipients_per_message as usize;
        group_identical(&batch, max)
            .into_iter()
            .map(|group| {
                let (from, name, reply_to) = (account.from.as_str(), account.from_name.as_deref(), account.reply_to.as_deref());
                let mime = match group.as_slice() {
                    [d] => build_mime(ctx.now_ms, from, name, reply_to, d)?,
                    _ => build_shared_mime(ctx.now_ms, from, name, reply_to, &group)?,
                };
                // recipients[i] is the recipient of deliveries[i]: the host
                // relies on it to give each delivery its own RCPT reply.
                Ok(Outbound {
                    deliveries: group.iter().map(|d| d.id.clone()).collect(),
                    request: Request::Smtp(SmtpMessage {
                        relay: relay.clone(),
                        sender: account.from.clone(),
                        recipients: group.iter().map(|d| d.recipient.clone()).collect(),
                        mime,
                    }),
                })
            })
            .collect()
    }

    fn interpret(_ctx: CallContext, _account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
        match response {
            Response::Smtp(reply) => {
                let detail = format!("{} {}", reply.code, one_line(reply.message.trim()));
                outcome::for_all(&deliveries, |id| match reply.code {
                    200..=299 => outcome::sent(id, detail.clone()).with_provider_id(id),
                    500..=599 => outcome::failed(id, detail.clone()),
                    _ => outcome::retry(id, detail.clone()),
                })
            }
            Response::Http(_) => outcome::for_all(&deliveries, |id| outcome::failed(id, "unexpected response")),
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
        CallContext { now_ms: 1_700_000_000_123, tenant: "t".into(), attempt: 1 }
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
        unfolded.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
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
            let b64 = w.strip_prefix("=?utf-8?B?").and_then(|w| w.strip_suffix("?="));
            let b64 = b64.unwrap_or_else(|| panic!("not an encoded word: {w}"));
            bytes.extend(base64::engine::general_purpose::STANDARD.decode(b64).unwrap());
        }
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn validate() {
        assert!(Email::validate_account(ACCOUNT).is_ok());
        assert!(Email::validate_account(r#"{"from":"a@b.test","smtp":{"host":"mailhog","port":1025,"tls":"none"}}"#).is_ok());
        let err = |acc: &str| match Email::validate_account(acc) {
            Err(PluginError::BadConfig(m)) => m,
            other => panic!("{acc}: {other:?}"),
        };
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":"x","tls":"none"}}"#).starts_with("smtp.port: "));
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":0,"tls":"none"}}"#).starts_with("smtp.port: "));
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"ssl"}}"#).starts_with("smtp.tls: "));
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25}}"#).starts_with("smtp: missing field `tls`"));
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"a b","port":25,"tls":"none"}}"#).starts_with("smtp.host: "));
        assert!(err(r#"{"from":"nope","smtp":{"host":"h","port":25,"tls":"none"}}"#).starts_with("from: "));
        assert!(err(r#"{"from":"a@b.test","reply_to":"x@","smtp":{"host":"h","port":25,"tls":"none"}}"#).starts_with("reply_to: "));
        assert!(err(r#"{"from":"a@b.test","from_name":"a\r\nBcc: x","smtp":{"host":"h","port":25,"tls":"none"}}"#).starts_with("from_name: "));
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"none","username":"u","password":"p"}}"#).starts_with("smtp.tls: "));
        assert!(
            Account::parse(
                r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"none","username":"u","password":"p","allow_plaintext_auth":true}}"#
            )
            .is_ok()
        );
        assert!(err(r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"implicit","username":"u"}}"#).starts_with("smtp.password: "));
        assert!(err(r#"{"from":"a@b.test","host":"h","smtp":{"host":"h","port":25,"tls":"none"}}"#).contains("unknown field `host`"));
    }

    #[test]
    fn addresses() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com", "x@[10.0.0.1]", "o'neil@ex-ample.org"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "@b.co", "a@", "a@b", "a..b@c.d", ".a@c.d", "a@-b.co", "a b@c.d", "a@c.d\r\nBcc: x", "é@c.d", "<a@c.d>", "a@[1.2.3]"] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mime_multipart_sanitized_and_encoded() {
        let html = r#"<p onclick="steal()">Shipped! <a href="javascript:alert(1)">x</a> <a href="https://shop.test/o/1">track</a></p><script>alert(document.cookie)</script>"#;
        let out = Email::build(ctx(), ACCOUNT, vec![delivery("d-1", "ann@example.org", Some(html))]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].deliveries, vec!["d-1".to_string()]);
        let m = smtp(&out[0]);
        assert_eq!(m.sender, "noreply@example.com");
        assert_eq!(m.recipients, vec!["ann@example.org".to_string()]);
        assert_eq!(m.relay.tls, TlsMode::Starttls);
        assert_eq!((m.relay.port, m.relay.password.as_deref()), (587, Some("p")));
        let mime = String::from_utf8(m.mime.clone()).unwrap();
        assert!(mime.is_ascii(), "MIME must be 7-bit clean");
        assert_eq!(header(&mime, "Date").as_deref(), Some("Tue, 14 Nov 2023 22:13:20 +0000"));
        assert_eq!(header(&mime, "Message-ID").as_deref(), Some("<d-1@herald>"));
        assert_eq!(header(&mime, "X-Herald-Delivery").as_deref(), Some("d-1"));
        assert_eq!(header(&mime, "To").as_deref(), Some("<ann@example.org>"));
        assert_eq!(header(&mime, "Reply-To").as_deref(), Some("<help@example.com>"));
        let from = header(&mime, "From").unwrap();
        let (name, addr) = from.rsplit_once(' ').unwrap();
        assert_eq!((decode_words(name).as_str(), addr), ("Héraut Notifications", "<noreply@example.com>"));
        assert_eq!(header(&mime, "MIME-Version").as_deref(), Some("1.0"));
        // Subject: RFC 2047 encoded words that decode back to the original.
        let subject = header(&mime, "Subject").unwrap();
        assert!(subject.starts_with("=?utf-8?B?"), "{subject}");
        assert_eq!(decode_words(&subject), "订单已发货 — your order shipped");
        // Both parts, with the content-derived boundary.
        let ct = header(&mime, "Content-Type").unwrap();
        assert!(ct.starts_with("multipart/alternative;") && ct.contains("=_herald_"), "{ct}");
        assert!(mime.contains("Content-Type: text/plain; charset=\"utf-8\""), "{mime}");
        assert!(mime.contains("Content-Type: text/html; charset=\"utf-8\""), "{mime}");
        assert!(mime.contains("Your order shipped.\r\nThanks!"));
        // Sanitized HTML (the part is quoted-printable).
        let decoded = qp_decode(&mime);
        let lower = decoded.to_ascii_lowercase();
        assert!(!lower.contains("<script") && !lower.contains("alert(document"), "{mime}");
        assert!(!lower.contains("onclick") && !lower.contains("javascript:"), "{mime}");
        assert!(decoded.contains(r#"<a href="https://shop.test/o/1" rel="noopener noreferrer">track</a>"#), "{decoded}");
        assert!(decoded.contains("<p>Shipped! "), "{decoded}");
        // Deterministic: the same input gives the same bytes.
        let again = Email::build(ctx(), ACCOUNT, vec![delivery("d-1", "ann@example.org", Some(html))]).unwrap();
        assert_eq!(smtp(&again[0]).mime, m.mime);
    }

    #[test]
    fn mime_text_only() {
        let mut d = delivery("d2", "bob@example.org", None);
        d.subject = Some("Plain\r\nBcc: evil@example.org".into());
        let out = Email::build(ctx(), r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"none"}}"#, vec![d]).unwrap();
        let mime = String::from_utf8(smtp(&out[0]).mime.clone()).unwrap();
        assert!(header(&mime, "Content-Type").unwrap().starts_with("text/plain"), "{mime}");
        assert!(!mime.contains("multipart"));
        assert!(!mime.contains("\r\nBcc:"), "{mime}");
        assert!(header(&mime, "Reply-To").is_none());
        assert_eq!(header(&mime, "From").as_deref(), Some("<a@b.test>"));
    }

    #[test]
    fn bad_recipient_fails_batch_naming_delivery() {
        let batch = vec![delivery("ok1", "a@example.org", None), delivery("bad7", "not-an-address", None)];
        match Email::build(ctx(), ACCOUNT, batch) {
            Err(PluginError::InvalidDelivery(m)) => {
                assert!(m.starts_with("recipient bad7: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match Email::build(ctx(), ACCOUNT, vec![delivery("a\nb", "a@example.org", None)]) {
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

    fn texts(out: &[Outbound]) -> Vec<(Vec<String>, Vec<String>)> {
        out.iter().map(|o| (o.deliveries.clone(), smtp(o).recipients.clone())).collect()
    }

    #[test]
    fn identical_content_is_one_message_with_many_recipients() {
        let acc = r#"{"from":"a@b.test","smtp":{"host":"h","port":25,"tls":"none","max_recipients_per_message":3}}"#;
        let mut batch: Vec<Delivery> = (0..7).map(|i| delivery(&format!("d{i}"), &format!("u{i}@example.org"), Some("<p>hi</p>"))).collect();
        // Personalised: its own message; same content, same address twice: two messages.
        batch[2].text = "Only for u2".into();
        batch.push(delivery("d7", "U0@example.org", Some("<p>hi</p>")));
        let out = Email::build(ctx(), acc, batch).unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            texts(&out),
            vec![
                (s(&["d0", "d1", "d3"]), s(&["u0@example.org", "u1@example.org", "u3@example.org"])),
                (s(&["d4", "d5", "d6"]), s(&["u4@example.org", "u5@example.org", "u6@example.org"])),
                (s(&["d2"]), s(&["u2@example.org"])),
                (s(&["d7"]), s(&["U0@example.org"])),
            ]
        );
        let shared = String::from_utf8(smtp(&out[0]).mime.clone()).unwrap();
        assert_eq!(header(&shared, "To").as_deref(), Some("undisclosed-recipients:;"));
        assert!(header(&shared, "X-Herald-Delivery").is_none());
        for i in 0..8 {
            assert!(!shared.to_ascii_lowercase().contains(&format!("u{i}@")), "{shared}");
            assert!(!shared.contains(&format!("d{i}@")), "{shared}");
        }
        let id = header(&shared, "Message-ID").unwrap();
        assert!(id.starts_with('<') && id.ends_with("@herald>"), "{id}");
        assert_ne!(header(&String::from_utf8(smtp(&out[1]).mime.clone()).unwrap(), "Message-ID").unwrap(), id);
        assert!(qp_decode(&shared).contains("<p>hi</p>"), "{shared}");
        // The single ones are today's messages.
        let single = String::from_utf8(smtp(&out[2]).mime.clone()).unwrap();
        assert_eq!(header(&single, "To").as_deref(), Some("<u2@example.org>"));
        assert_eq!(header(&single, "X-Herald-Delivery").as_deref(), Some("d2"));
        // Deterministic.
        let again =
            Email::build(ctx(), acc, (0..2).map(|i| delivery(&format!("d{i}"), &format!("u{i}@example.org"), Some("<p>hi</p>"))).collect()).unwrap();
        let again2 =
            Email::build(ctx(), acc, (0..2).map(|i| delivery(&format!("d{i}"), &format!("u{i}@example.org"), Some("<p>hi</p>"))).collect()).unwrap();
        assert_eq!(smtp(&again[0]).mime, smtp(&again2[0]).mime);
    }

    #[test]
    fn default_max_recipients_is_50() {
        let batch: Vec<Delivery> = (0..120).map(|i| delivery(&format!("d{i}"), &format!("u{i}@example.org"), None)).collect();
        let out = Email::build(ctx(), ACCOUNT, batch).unwrap();
        let sizes: Vec<usize> = out.iter().map(|o| smtp(o).recipients.len()).collect();
        assert_eq!(sizes, vec![50, 50, 20]);
        for o in &out {
            assert_eq!(o.deliveries.len(), smtp(o).recipients.len());
        }
    }

    #[test]
    fn relay_limits_validated() {
        let acc = |extra: &str| format!(r#"{{"from":"a@b.test","smtp":{{"host":"h","port":25,"tls":"none"{extra}}}}}"#);
        assert!(Email::validate_account(&acc(r#","max_recipients_per_message":100,"max_connections":8"#)).is_ok());
        for (extra, field) in [
            (r#","max_recipients_per_message":0"#, "smtp.max_recipients_per_message: "),
            (r#","max_recipients_per_message":1001"#, "smtp.max_recipients_per_message: "),
            (r#","max_connections":0"#, "smtp.max_connections: "),
            (r#","max_connections":65"#, "smtp.max_connections: "),
        ] {
            match Email::validate_account(&acc(extra)) {
                Err(PluginError::BadConfig(m)) => assert!(m.starts_with(field), "{m}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
    }

    #[test]
    fn interpret() {
        let ids = vec!["d1".to_string()];
        let r = |code, msg: &str| Response::Smtp(SmtpReply { code, message: msg.into() });
        let v = Email::interpret(ctx(), "{}", ids.clone(), r(250, "2.0.0 OK queued as X"));
        assert_eq!((v[0].kind, v[0].provider_id.as_deref()), (OutcomeKind::Sent, Some("d1")));
        assert_eq!(v[0].detail.as_deref(), Some("250 2.0.0 OK queued as X"));
        let v = Email::interpret(ctx(), "{}", ids.clone(), r(451, "4.7.1 greylisted"));
        assert_eq!(v[0].kind, OutcomeKind::Retry);
        let v = Email::interpret(ctx(), "{}", ids.clone(), r(550, "5.1.1 no such user"));
        assert_eq!((v[0].kind, v[0].detail.as_deref()), (OutcomeKind::Failed, Some("550 5.1.1 no such user")));
        let v = Email::interpret(ctx(), "{}", ids, Response::Http(HttpResponse { status: 200, headers: vec![], body: vec![] }));
        assert_eq!((v[0].kind, v[0].detail.as_deref()), (OutcomeKind::Failed, Some("unexpected response")));
    }
}
