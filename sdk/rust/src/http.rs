//! HTTP helpers: building requests, reading response headers.

use crate::types::{HttpRequest, HttpResponse, PluginError};
use serde::Serialize;

/// A `POST` request with a JSON body (`serde_json` serialization of `body`).
///
/// `Content-Type: application/json` is added unless `headers` already has a
/// `Content-Type`. Fails with `PluginError::Internal` only if `body` cannot be
/// serialized (e.g. a map with non-string keys).
pub fn post_json(url: &str, headers: &[(&str, &str)], body: &impl Serialize) -> Result<HttpRequest, PluginError> {
    let body = serde_json::to_vec(body).map_err(|e| PluginError::Internal(format!("cannot serialize request body: {e}")))?;
    let mut all: Vec<(String, String)> = Vec::with_capacity(headers.len() + 1);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        all.push(("Content-Type".into(), "application/json".into()));
    }
    all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    Ok(HttpRequest { method: "POST".into(), url: url.into(), headers: all, body })
}

/// A `POST` request with a ready-made body and exactly the given headers.
pub fn post(url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> HttpRequest {
    HttpRequest { method: "POST".into(), url: url.into(), headers, body }
}

/// A `GET` request with no headers and no body (e.g. a token endpoint whose
/// parameters are all in the query string).
pub fn get(url: &str) -> HttpRequest {
    HttpRequest { method: "GET".into(), url: url.into(), headers: vec![], body: vec![] }
}

/// Whether `c` is in the RFC 3986 unreserved set: ASCII letters and digits,
/// `-`, `.`, `_` and `~`.
pub fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// Percent-encoding of every byte of `s` (UTF-8) outside the RFC 3986
/// unreserved set ([`is_unreserved`]), with uppercase hex digits: `a b/é`
/// becomes `a%20b%2F%C3%A9`. Suitable for query values and for signature
/// schemes that use RFC 3986 encoding (space is `%20`, never `+`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if is_unreserved(b as char) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decoding of `%XY` escapes (either hex case) and of `+` as a space, as in
/// `application/x-www-form-urlencoded` bodies and query strings. Invalid or
/// truncated escapes are kept verbatim; invalid UTF-8 in the result is
/// replaced by U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
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

/// The first value of the response header `name` (compared ASCII
/// case-insensitively), trimmed of surrounding whitespace.
pub fn header<'a>(resp: &'a HttpResponse, name: &str) -> Option<&'a str> {
    resp.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// The response's `Retry-After`, in milliseconds from `now_ms`.
///
/// Accepts delta-seconds (`Retry-After: 120`) and IMF-fixdate HTTP dates
/// (`Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`, counted from `now_ms`; a
/// date in the past gives `Some(0)`). The obsolete RFC 850 and asctime date
/// forms, and anything else unparsable, give `None`.
pub fn retry_after_ms(resp: &HttpResponse, now_ms: u64) -> Option<u64> {
    let value = header(resp, "retry-after")?;
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Huge values saturate instead of failing.
        let secs: u64 = value.parse().unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    crate::time::parse_http_date(value).map(|at| at.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(headers: &[(&str, &str)]) -> HttpResponse {
        HttpResponse { status: 200, headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), body: vec![] }
    }

    #[test]
    fn post_json_sets_content_type() {
        let r = post_json("https://x.test/a", &[("X-A", "1")], &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://x.test/a");
        assert_eq!(r.body, br#"{"a":1}"#);
        assert_eq!(r.headers, vec![("Content-Type".to_string(), "application/json".to_string()), ("X-A".to_string(), "1".to_string())]);
        let r = post_json("https://x.test/", &[("content-type", "application/vnd+json")], &1).unwrap();
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn get_request() {
        let r = get("https://x.test/token?a=1");
        assert_eq!(r.method, "GET");
        assert_eq!(r.url, "https://x.test/token?a=1");
        assert!(r.headers.is_empty() && r.body.is_empty());
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(percent_encode("a b+c*d/e"), "a%20b%2Bc%2Ad%2Fe");
        assert_eq!(percent_encode("é="), "%C3%A9%3D");
        assert_eq!(percent_encode(""), "");
        assert!(is_unreserved('~') && !is_unreserved('*') && !is_unreserved('é'));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2b%2F"), "a b c+/");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
        for s in ["a b/é~*+", "", "%%"] {
            assert_eq!(percent_decode(&percent_encode(s)), s);
        }
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let r = resp(&[("X-Request-Id", " abc "), ("x-request-id", "second")]);
        assert_eq!(header(&r, "x-REQUEST-id"), Some("abc"));
        assert_eq!(header(&r, "missing"), None);
    }

    #[test]
    fn retry_after() {
        let now = 1_700_000_000_000;
        assert_eq!(retry_after_ms(&resp(&[("Retry-After", "120")]), now), Some(120_000));
        assert_eq!(retry_after_ms(&resp(&[("retry-after", "0")]), now), Some(0));
        assert_eq!(retry_after_ms(&resp(&[("Retry-After", "99999999999999999999999")]), now), Some(u64::MAX));
        let date = crate::time::http_date(now + 30_000);
        assert_eq!(retry_after_ms(&resp(&[("Retry-After", &date)]), now), Some(30_000));
        let past = crate::time::http_date(now - 30_000);
        assert_eq!(retry_after_ms(&resp(&[("Retry-After", &past)]), now), Some(0));
        assert_eq!(retry_after_ms(&resp(&[("Retry-After", "-5")]), now), None);
        assert_eq!(retry_after_ms(&resp(&[("Retry-After", "soon")]), now), None);
        assert_eq!(retry_after_ms(&resp(&[]), now), None);
    }
}
