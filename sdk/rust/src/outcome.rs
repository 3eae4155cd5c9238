//! Outcome constructors and the conventional HTTP status mapping.
//!
//! Each constructor takes the delivery id and a human-readable detail; an
//! empty detail means "no detail". Refine the result with
//! [`Outcome::with_provider_id`], [`Outcome::with_retry_after_ms`] and
//! [`Outcome::with_units`].

use crate::types::{HttpResponse, Outcome, OutcomeKind, Response};

/// Longest response-body excerpt put in a detail, in bytes.
const MAX_BODY_EXCERPT: usize = 200;

fn make(kind: OutcomeKind, delivery_id: impl Into<String>, detail: impl Into<String>) -> Outcome {
    let detail = detail.into();
    Outcome {
        delivery_id: delivery_id.into(),
        kind,
        retry_after_ms: None,
        provider_id: None,
        units: 0,
        detail: (!detail.is_empty()).then_some(detail),
    }
}

/// Accepted by the provider (billable).
pub fn sent(delivery_id: impl Into<String>, detail: impl Into<String>) -> Outcome {
    make(OutcomeKind::Sent, delivery_id, detail)
}

/// Transient failure: the host retries with backoff.
pub fn retry(delivery_id: impl Into<String>, detail: impl Into<String>) -> Outcome {
    make(OutcomeKind::Retry, delivery_id, detail)
}

/// The provider asked to slow down: the host retries after `retry_after_ms`
/// (set it with [`Outcome::with_retry_after_ms`]) and lowers its rate.
pub fn throttled(delivery_id: impl Into<String>, detail: impl Into<String>) -> Outcome {
    make(OutcomeKind::Throttled, delivery_id, detail)
}

/// Permanent failure: not retried.
pub fn failed(delivery_id: impl Into<String>, detail: impl Into<String>) -> Outcome {
    make(OutcomeKind::Failed, delivery_id, detail)
}

/// One outcome per delivery id, made by `f`.
pub fn for_all(deliveries: &[String], f: impl Fn(&str) -> Outcome) -> Vec<Outcome> {
    deliveries.iter().map(|id| f(id)).collect()
}

/// For HTTP-only plugins: `f(resp)` for an HTTP answer, and `failed` with
/// the detail `unexpected SMTP response` for every delivery otherwise (a host
/// never sends an SMTP reply to a plugin that only builds HTTP requests).
///
/// ```ignore
/// fn interpret(ctx: CallContext, _: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
///     outcome::http_only(&deliveries, response, |resp| classify(&ctx, &deliveries, resp))
/// }
/// ```
pub fn http_only(deliveries: &[String], response: Response, f: impl FnOnce(&HttpResponse) -> Vec<Outcome>) -> Vec<Outcome> {
    match response {
        Response::Http(resp) => f(&resp),
        Response::Smtp(_) => for_all(deliveries, |id| failed(id, "unexpected SMTP response")),
    }
}

/// The conventional mapping of an HTTP status to one outcome per delivery:
///
/// | status | outcome |
/// | --- | --- |
/// | 2xx | `sent` (no detail) |
/// | 429 | `throttled`, with the response's Retry-After |
/// | 408, 425, 5xx | `retry`, with the response's Retry-After if any |
/// | anything else (1xx, 3xx, other 4xx) | `failed` |
///
/// Non-2xx details read `HTTP <status>: <start of the body>` (at most 200
/// bytes of the body, control characters replaced by spaces). Provider ids
/// are not set: add them with [`Outcome::with_provider_id`].
pub fn from_http_status(deliveries: &[String], resp: &HttpResponse, now_ms: u64) -> Vec<Outcome> {
    let status = resp.status;
    if (200..300).contains(&status) {
        return for_all(deliveries, |id| sent(id, ""));
    }
    let detail = status_detail(resp);
    let retry_after = crate::http::retry_after_ms(resp, now_ms);
    match status {
        429 => for_all(deliveries, |id| throttled(id, detail.clone()).with_retry_after_ms(retry_after)),
        408 | 425 | 500..=599 => for_all(deliveries, |id| retry(id, detail.clone()).with_retry_after_ms(retry_after)),
        _ => for_all(deliveries, |id| failed(id, detail.clone())),
    }
}

/// `failed` for every delivery when a provider answered something it should
/// not have (not JSON, no result code): the detail reads
/// `unexpected answer from <provider> (HTTP <status>): <start of the body>`,
/// with at most 120 characters of the body, kept as they are.
pub fn unexpected_answer(deliveries: &[String], provider: &str, resp: &HttpResponse) -> Vec<Outcome> {
    let excerpt: String = String::from_utf8_lossy(&resp.body).chars().take(120).collect();
    for_all(deliveries, |id| failed(id, format!("unexpected answer from {provider} (HTTP {}): {excerpt}", resp.status)))
}

/// `s` cut to at most `max_bytes` bytes (on a UTF-8 character boundary),
/// with `...` appended when anything was cut; for provider messages put in
/// outcome or receipt details.
pub fn clip(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `HTTP <status>` followed by the start of the body, if any.
fn status_detail(resp: &HttpResponse) -> String {
    let mut end = resp.body.len().min(MAX_BODY_EXCERPT);
    // Cut on a UTF-8 boundary when the body is text.
    while end > 0 && end < resp.body.len() && (resp.body[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&resp.body[..end]);
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {}", resp.status)
    } else if end < resp.body.len() {
        format!("HTTP {}: {text}...", resp.status)
    } else {
        format!("HTTP {}: {text}", resp.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        HttpResponse { status, headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), body: body.to_vec() }
    }

    fn kinds(v: &[Outcome]) -> Vec<OutcomeKind> {
        v.iter().map(|o| o.kind).collect()
    }

    #[test]
    fn constructors() {
        let o = sent("d1", "").with_provider_id("p1").with_units(2);
        assert_eq!(o.delivery_id, "d1");
        assert_eq!(o.kind, OutcomeKind::Sent);
        assert_eq!(o.detail, None);
        assert_eq!(o.provider_id.as_deref(), Some("p1"));
        assert_eq!(o.units, 2);
        let o = failed("d1", format!("bad {}", 1));
        assert_eq!((o.kind, o.detail.as_deref()), (OutcomeKind::Failed, Some("bad 1")));
        assert_eq!(retry("x", "r").kind, OutcomeKind::Retry);
        assert_eq!(throttled("x", "t").kind, OutcomeKind::Throttled);
        let all = for_all(&ids(), |id| sent(id, ""));
        assert_eq!(all.iter().map(|o| o.delivery_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn unexpected_answers() {
        let v = unexpected_answer(&ids(), "Acme", &resp(200, &[], b"<html>\nhi"));
        assert_eq!(kinds(&v), [OutcomeKind::Failed; 2]);
        assert_eq!(v[0].detail.as_deref(), Some("unexpected answer from Acme (HTTP 200): <html>\nhi"));
        let long = "é".repeat(200);
        let v = unexpected_answer(&ids(), "Acme", &resp(202, &[], long.as_bytes()));
        let d = v[1].detail.clone().unwrap();
        assert_eq!(d.chars().filter(|&c| c == 'é').count(), 120);
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("short", 5), "short");
        assert_eq!(clip("longer", 4), "long...");
        assert_eq!(clip("aé", 2), "a...");
        assert_eq!(clip("é", 0), "...");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn http_only_dispatches() {
        let v = http_only(&ids(), Response::Http(resp(200, &[], b"")), |r| for_all(&ids(), |id| sent(id, format!("{}", r.status))));
        assert_eq!(kinds(&v), [OutcomeKind::Sent; 2]);
        assert_eq!(v[0].detail.as_deref(), Some("200"));
        let smtp = Response::Smtp(crate::types::SmtpReply { code: 250, message: "ok".into() });
        let v = http_only(&ids(), smtp, |_| unreachable!());
        assert_eq!(kinds(&v), [OutcomeKind::Failed; 2]);
        assert_eq!(v[1].delivery_id, "b");
        assert_eq!(v[1].detail.as_deref(), Some("unexpected SMTP response"));
    }

    #[test]
    fn status_mapping() {
        let now = 1_000_000;
        for s in [200, 201, 202, 204, 299] {
            let v = from_http_status(&ids(), &resp(s, &[], b"ok"), now);
            assert_eq!(kinds(&v), [OutcomeKind::Sent; 2], "{s}");
            assert_eq!(v[0].detail, None);
        }
        let v = from_http_status(&ids(), &resp(429, &[("Retry-After", "3")], b""), now);
        assert_eq!(kinds(&v), [OutcomeKind::Throttled; 2]);
        assert_eq!(v[1].retry_after_ms, Some(3000));
        assert_eq!(v[1].detail.as_deref(), Some("HTTP 429"));
        for s in [408, 425, 500, 502, 503, 599] {
            let v = from_http_status(&ids(), &resp(s, &[], b"x"), now);
            assert_eq!(kinds(&v), [OutcomeKind::Retry; 2], "{s}");
        }
        let v = from_http_status(&ids(), &resp(503, &[("retry-after", "10")], b""), now);
        assert_eq!(v[0].retry_after_ms, Some(10_000));
        for s in [100, 301, 400, 401, 403, 404, 410, 422] {
            let v = from_http_status(&ids(), &resp(s, &[], b""), now);
            assert_eq!(kinds(&v), [OutcomeKind::Failed; 2], "{s}");
        }
    }

    #[test]
    fn details() {
        let v = from_http_status(&ids(), &resp(400, &[], b"{\"error\":\n\"bad\"}"), 0);
        assert_eq!(v[0].detail.as_deref(), Some("HTTP 400: {\"error\": \"bad\"}"));
        let long = "é".repeat(300);
        let v = from_http_status(&ids(), &resp(500, &[], long.as_bytes()), 0);
        let d = v[0].detail.clone().unwrap();
        assert!(d.starts_with("HTTP 500: éé") && d.ends_with("é..."), "{d}");
        assert!(!d.contains('\u{fffd}'));
    }
}
