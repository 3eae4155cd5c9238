//! Validation of ingest requests against configured limits. Every error names
//! the offending field.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorKind};
use crate::model::SendRequest;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most recipients in one request.
    pub max_recipients: usize,
    /// Longest recipient address.
    pub max_recipient_len: usize,
    /// Largest content part (subject, text, html) before rendering.
    pub max_content_bytes: usize,
    /// Most metadata entries.
    pub max_metadata: usize,
    /// Furthest `send_at` in the future, in days.
    pub max_schedule_days: i64,
    /// The most one message may cost to render, in bytes: recipients ×
    /// (content + shared variables), plus every recipient's own variables.
    /// A message over it is refused at ingest (413 `too_large`), so that one
    /// request cannot buy minutes of the dispatcher for everyone.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_recipients: 10_000,
            max_recipient_len: 512,
            max_content_bytes: 256 * 1024,
            max_metadata: 64,
            max_schedule_days: 366,
            max_message_bytes: 512 * 1024 * 1024,
        }
    }
}

fn too_large(field: &str, message: String) -> ApiError {
    ApiError::new(ErrorKind::Invalid, "limit_exceeded", message).with_field(field)
}

/// Check a parsed request. `now_ms` bounds `send_at`.
pub fn validate(req: &SendRequest, limits: &Limits, now_ms: i64) -> Result<(), ApiError> {
    if req.channel.trim().is_empty() {
        return Err(ApiError::invalid("channel", "channel must not be empty"));
    }
    if req.recipients.is_empty() {
        return Err(ApiError::invalid("recipients", "at least one recipient is required"));
    }
    if req.recipients.len() > limits.max_recipients {
        return Err(too_large("recipients", format!("{} recipients; at most {} per request", req.recipients.len(), limits.max_recipients)));
    }
    for (i, r) in req.recipients.iter().enumerate() {
        // The raw value is what is stored and sent: check it, not a trimmed copy.
        if r.to.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!("recipients[{i}].to"), "control characters are not allowed"));
        }
        let to = r.to.trim();
        if to.is_empty() {
            return Err(ApiError::invalid(format!("recipients[{i}].to"), "recipient address must not be empty"));
        }
        if to.len() > limits.max_recipient_len {
            return Err(too_large(format!("recipients[{i}].to").as_str(), format!("longer than {} bytes", limits.max_recipient_len)));
        }
    }
    match (&req.template, &req.content) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("content", "give either template or content, not both"));
        }
        (None, None) => {
            return Err(ApiError::invalid("content", "either template or content is required"));
        }
        (None, Some(c)) => {
            if c.text.is_none() && c.html.is_none() {
                return Err(ApiError::invalid("content.text", "content needs text or html"));
            }
            for (name, part) in [("content.subject", &c.subject), ("content.text", &c.text), ("content.html", &c.html)] {
                if part.as_ref().is_some_and(|p| p.len() > limits.max_content_bytes) {
                    return Err(too_large(name, format!("longer than {} bytes", limits.max_content_bytes)));
                }
            }
        }
        (Some(t), None) if t.trim().is_empty() => {
            return Err(ApiError::invalid("template", "template id must not be empty"));
        }
        _ => {}
    }
    if req.metadata.len() > limits.max_metadata {
        return Err(too_large("metadata", format!("at most {} entries", limits.max_metadata)));
    }
    if let Some(ms) = req.send_at {
        // Well-formed, but beyond this gateway's window (configuration, which the
        // OpenAPI document cannot state): 422, like a name that does not exist.
        if ms.saturating_sub(now_ms) > limits.max_schedule_days * 86_400_000 {
            let message = format!("at most {} days ahead (limits.max_schedule_days)", limits.max_schedule_days);
            return Err(ApiError::new(ErrorKind::Unprocessable, "invalid_field", message).with_field("send_at"));
        }
    }
    Ok(())
}

/// An Idempotency-Key: 1–255 visible ASCII characters.
pub fn idempotency_key(raw: &str) -> Result<&str, ApiError> {
    let ok = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(raw) } else { Err(ApiError::invalid("Idempotency-Key", "must be 1-255 visible ASCII characters")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Content, RecipientSpec};

    fn req() -> SendRequest {
        SendRequest {
            channel: "webhook".into(),
            content: Some(Content { text: Some("hi".into()), ..Default::default() }),
            recipients: vec![RecipientSpec { to: "a".into(), variables: Default::default() }],
            ..Default::default()
        }
    }

    fn field(r: &SendRequest) -> Option<String> {
        validate(r, &Limits::default(), 0).err().and_then(|e| e.field)
    }

    #[test]
    fn accepts_a_minimal_request() {
        assert!(validate(&req(), &Limits::default(), 0).is_ok());
    }

    #[test]
    fn names_the_bad_field() {
        let mut r = req();
        r.recipients.push(RecipientSpec { to: " ".into(), variables: Default::default() });
        assert_eq!(field(&r).as_deref(), Some("recipients[1].to"));
        let mut r = req();
        r.template = Some("t".into());
        assert_eq!(field(&r).as_deref(), Some("content"));
        let mut r = req();
        r.content = Some(Content::default());
        assert_eq!(field(&r).as_deref(), Some("content.text"));
        let mut r = req();
        r.recipients.clear();
        assert_eq!(field(&r).as_deref(), Some("recipients"));
    }

    #[test]
    fn enforces_recipient_and_schedule_limits() {
        let limits = Limits { max_recipients: 2, ..Default::default() };
        let mut r = req();
        r.recipients = vec![r.recipients[0].clone(); 3];
        let e = validate(&r, &limits, 0).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("limit_exceeded", Some("recipients")));
        let mut r = req();
        r.send_at = Some(400 * 86_400_000);
        assert_eq!(field(&r).as_deref(), Some("send_at"));
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(idempotency_key("order-42").is_ok());
        assert!(idempotency_key("").is_err());
        assert!(idempotency_key("a b").is_err());
        assert!(idempotency_key(&"x".repeat(256)).is_err());
    }
}
