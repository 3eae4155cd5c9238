//! Shared pieces of the SMS and voice provider tests: gateway config, polling
//! helpers, and the primitives the fake providers check signatures with.
//!
//! SHA-1, HMAC-SHA1 and base64 are written out here (checked against the RFC
//! vectors below) so the fakes do not share code with the plugins they test.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::{API_KEY, Gateway};

/// Quick retries, so throttled and retried deliveries settle within a test.
pub const FAST_RETRY: &str = "[retry]\nmax_attempts = 20\nbase_ms = 50\nmax_ms = 200\n";

/// Gateway config: fast retries, `redirect_hosts` to the fakes, then `rest`
/// (tenants). The harness appends `[plugins] dir = ...` after it.
pub fn config(redirects: &[(&str, &str)], rest: &str) -> String {
    let mut s = format!("{FAST_RETRY}[dispatch]\nlinger_ms = 100\n[plugins.redirect_hosts]\n");
    for (host, base) in redirects {
        s.push_str(&format!("\"{host}\" = \"{base}\"\n"));
    }
    s.push_str(rest);
    s
}

/// Serve `router` on 127.0.0.1 and return its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

pub fn settled(v: &Value) -> bool {
    v["deliveries"].as_array().unwrap().iter().all(|d| !matches!(d["status"].as_str(), Some("queued" | "retrying")))
}

pub fn statuses(v: &Value) -> Vec<String> {
    v["deliveries"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap().to_string()).collect()
}

/// The delivery with id `<message>.<index>`.
pub fn delivery(v: &Value, index: usize) -> &Value {
    let id = format!("{}.{index}", v["id"].as_str().unwrap());
    v["deliveries"].as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).unwrap_or_else(|| panic!("no delivery {id} in {v}"))
}

/// POST /v1/messages and return the message id.
pub async fn send(gw: &Gateway, body: &Value) -> String {
    let r = gw.send(body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// POST /v1/messages with a malformed address at `recipients[index]`: the
/// gateway refuses the whole message at ingest (400 naming that recipient),
/// so nothing reaches the provider.
pub async fn refused_at_ingest(gw: &Gateway, body: &Value, index: usize) {
    let r = gw.send(body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error(), ("invalid_field".to_string(), Some(format!("recipients[{index}].to"))), "{}", r.text());
}

/// Wait until every delivery left queued/retrying.
pub async fn wait_settled(gw: &Gateway, id: &str) -> Value {
    gw.wait_message(id, Duration::from_secs(30), settled).await
}

/// Wait until delivery `index` has `status`.
pub async fn wait_delivery(gw: &Gateway, id: &str, index: usize, status: &str) -> Value {
    let want = format!("{id}.{index}");
    gw.wait_message(id, Duration::from_secs(30), |v| {
        v["deliveries"].as_array().unwrap().iter().any(|d| d["id"] == want.as_str() && d["status"] == status)
    })
    .await
}

/// Ledger entries of the test tenant for deliveries of message `id`.
pub async fn ledger_for(gw: &Gateway, id: &str) -> Vec<Value> {
    let l = gw.get("/v1/ledger?limit=1000", Some(API_KEY)).await.json();
    let prefix = format!("{id}.");
    l["entries"].as_array().unwrap().iter().filter(|e| e["delivery_id"].as_str().is_some_and(|d| d.starts_with(&prefix))).cloned().collect()
}

/// The value of the Prometheus sample `name{labels}` (labels as rendered,
/// sorted), or 0.
pub fn metric(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().parse().unwrap()).unwrap_or(0.0)
}

/// Poll `f` until it returns `Some`, or panic after `timeout`.
pub async fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- encodings -------------------------------------------------------------

/// RFC 3986 percent-encoding (unreserved characters kept, upper-case hex).
pub fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `application/x-www-form-urlencoded` encoding (space as `+`).
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            out.push(b' ');
        } else if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).expect("percent escape"));
            i += 2;
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

/// Decode a form body or query string into ordered pairs.
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

// ---- hashes ----------------------------------------------------------------

/// SHA-1 (FIPS 180-4).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// HMAC-SHA1 (RFC 2104), block size 64.
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(msg.iter().copied()).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(sha1(&inner)).collect();
    sha1(&outer)
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Constant-time comparison, as a provider does it.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[test]
fn primitives_match_the_rfc_vectors() {
    assert_eq!(hex::encode(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(hex::encode(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(hex::encode(sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    assert_eq!(hex::encode(hmac_sha1(&[0x0b; 20], b"Hi There")), "b617318655057264e28bc0b6fb378c8ef146be00");
    assert_eq!(hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    assert_eq!(
        hex::encode(hmac_sha1(&[0xaa; 80], b"Test Using Larger Than Block-Size Key - Hash Key First")),
        "aa4ae5e15272d00e95705637ce8a3b55ed402112"
    );
    for (raw, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
        assert_eq!(base64(raw.as_bytes()), enc);
        assert_eq!(base64_decode(enc).unwrap(), raw.as_bytes());
    }
    assert_eq!(form_decode("a=1+2&b=%E4%B8%AD&c"), vec![("a".into(), "1 2".into()), ("b".into(), "中".into()), ("c".into(), String::new())]);
    assert_eq!(rfc3986("a b*~"), "a%20b%2A~");
}

// ---- SMS length, as carriers count it (for the fakes' own fee/segment answers) ----

/// Chinese mainland rule: every character counts one; 70, then 67 per part.
pub fn china_segments(text: &str) -> u32 {
    let n = text.chars().count() as u32;
    if n <= 70 { 1 } else { n.div_ceil(67) }
}

/// GSM-7 (160/153) when every character is in the GSM 03.38 default
/// alphabet, UCS-2 (70/67 UTF-16 units) otherwise. Good enough for a fake:
/// escape pairs and surrogates straddling parts are not special-cased.
pub fn gsm_segments(text: &str) -> u32 {
    const BASIC: &str =
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXT: &str = "\u{c}^{}\\[~]|€";
    let gsm = text.chars().all(|c| BASIC.contains(c) || EXT.contains(c));
    let (n, single, part) = if gsm {
        (text.chars().map(|c| if EXT.contains(c) { 2 } else { 1 }).sum::<u32>(), 160, 153)
    } else {
        (text.encode_utf16().count() as u32, 70, 67)
    };
    if n <= single { 1 } else { n.div_ceil(part) }
}
