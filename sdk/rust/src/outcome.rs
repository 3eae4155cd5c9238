//! Outcome constructors and the conventional HTTP status mapping.
//!
//! Each constructor takes the delivery id and a human-readable detail; an
//! empty detail means "no detail". Refine the result with
//! [`Outcome::with_provider_id`], [`Outcome::with_retry_after_ms`] and
//! [`Outcome::with_units`].

use crate::types::{HttpResponse, Outcome, OutcomeKind};

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
        429 => for_all(deliveries, |id| {
            throttled(id, detail.clone()).with_retry_after_ms(retry_after)
        }),
        408 | 425 | 500..=599 => for_all(deliveries, |id| {
            retry(id, detail.clone()).with_retry_after_ms(retry_after)
        }),
        _ => for_all(deliveries, |id| failed(id, detail.clone())),
    }
}

/// `HTTP <status>` followed by the start of the body, if any.
fn status_detail(resp: &HttpResponse) -> String {
    let mut end = resp.body.len().min(MAX_BODY_EXCERPT);
    // Cut on a UTF-8 boundary when the body is text.
    while end > 0 && end < resp.body.len() && (resp.body[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&resp.body[..end]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
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
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
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
        assert_eq!(
            (o.kind, o.detail.as_deref()),
            (OutcomeKind::Failed, Some("bad 1"))
        );
        assert_eq!(retry("x", "r").kind, OutcomeKind::Retry);
        assert_eq!(throttled("x", "t").kind, OutcomeKind::Throttled);
        let all = for_all(&ids(), |id| sent(id, ""));
        assert_eq!(
            all.iter()
                .map(|o| o.delivery_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
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
        assert_eq!(
            v[0].detail.as_deref(),
            Some("HTTP 400: {\"error\": \"bad\"}")
        );
        let long = "é".repeat(300);
        let v = from_http_status(&ids(), &resp(500, &[], long.as_bytes()), 0);
        let d = v[0].detail.clone().unwrap();
        assert!(d.starts_with("HTTP 500: éé") && d.ends_with("é..."), "{d}");
        assert!(!d.contains('\u{fffd}'));
    }
}
