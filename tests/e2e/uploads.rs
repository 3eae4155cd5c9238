//! Recipient-list uploads against the real admin binary (issue 11 point 3,
//! issue 10 point 5): the spreadsheets that used to abort the service for
//! every tenant are refused with a 4xx and the admin keeps answering; an
//! upload over the limit is a 413 `too_large`; a normal list still parses.

use std::time::Duration;

use bytes::Bytes;

use crate::admin::Admin;
use crate::harness::{Resp, request};

#[path = "../../admin/server/tests/support/sheets.rs"]
pub(crate) mod sheets;

const BOUNDARY: &str = "herald-upload-boundary-7f3a";

pub(crate) async fn upload(admin: &Admin, token: &str, file_name: &str, bytes: &[u8]) -> Resp {
    upload_for(admin, token, file_name, bytes, None).await
}

/// Upload a list for a channel (`?channel=`), or for none.
pub(crate) async fn upload_for(admin: &Admin, token: &str, file_name: &str, bytes: &[u8], channel: Option<&str>) -> Resp {
    let query = channel.map(|c| format!("?channel={c}")).unwrap_or_default();
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    request("POST", &format!("{}/api/v1/pushes/upload{query}", admin.url), Some(token), &[("content-type", content_type.as_str())], Bytes::from(body))
        .await
}

/// Upload as a browser or curl does when the server answers before the body
/// is sent: keep reading while writing, so the early `413` is read even though
/// the admin closes the connection (and the rest of the body meets a reset).
/// A client that waits for its whole body to be written first fails with a
/// broken pipe about one run in ten, whatever the admin answers.
async fn oversized_upload(admin: &Admin, token: &str, bytes: &[u8]) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.xlsx\"\r\n\r\n").into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let addr = admin.url.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /api/v1/pushes/upload HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await; // may meet the admin's early close
        wr
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf)).await.expect("an answer within 30 s") {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if complete(&raw) {
            break;
        }
    }
    drop(writer.await);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&raw)));
    let status = std::str::from_utf8(&raw[9..12]).ok().and_then(|s| s.parse().ok()).expect("a status line");
    Resp { status, headers: Default::default(), body: Bytes::copy_from_slice(&raw[split + 4..]) }
}

/// Whether `raw` holds a whole answer (head and its `content-length` body).
fn complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let len = head.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
    len.is_some_and(|len| raw.len() >= split + 4 + len)
}

/// The admin still serves: its health check and an authenticated read.
async fn still_serving(admin: &Admin, token: &str, after: &str) {
    let health = request("GET", &format!("{}/healthz", admin.url), None, &[], Bytes::new()).await;
    assert_eq!(health.status, 200, "the admin died after {after}");
    assert_eq!(admin.call("GET", "/units", Some(token), None).await.status, 200, "the admin stopped answering after {after}");
}

#[tokio::test]
async fn spreadsheets_built_to_crash_the_parser_are_refused_and_the_admin_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_tenant, token) = admin.register("Uploads", "boss-up").await;

    // Two cells, one at the sheet's last column and row: a dense grid of 2^34 cells before.
    // A1 + Z2000000: below the last row. A sheet that declares 1 000 bytes and inflates to 600 MB.
    let lying = sheets::xlsx_lying(600 << 20, 1000);
    assert!(lying.len() < 5 << 20, "the lying archive fits the upload limit: {} bytes", lying.len());
    let cases = [
        ("xfd.xlsx", sheets::xlsx_cells(&[("A1", "to"), ("XFD1048576", "x")]), "XFD1048576"),
        ("deep.xlsx", sheets::xlsx_cells(&[("A1", "to"), ("Z2000000", "x")]), "Z2000000"),
        ("lying.xlsx", lying, "unpacks to more than"),
    ];
    for (name, bytes, why) in cases {
        let started = std::time::Instant::now();
        let r = upload(&admin, &token, name, &bytes).await;
        assert!((400..500).contains(&r.status), "{name}: {} {}", r.status, r.text());
        let (_, field) = r.error();
        assert_eq!(field.as_deref(), Some("file"), "{name}: {}", r.text());
        assert!(r.text().contains(why), "{name}: {}", r.text());
        assert!(started.elapsed() < Duration::from_secs(30), "{name} took {:?}", started.elapsed());
        still_serving(&admin, &token, name).await;
    }

    // Byte-corrupted copies of a real .xls (and of an .xlsx): a list, a refusal or an
    // unreadable file (422), never a 5xx, and the admin answers after each.
    let mut rng = sheets::Rng(0x5eed_0011);
    let (xls, xlsx) = (sheets::xls_list(), sheets::xlsx_list(5));
    for i in 0..40 {
        let (name, bytes) = if i % 4 == 3 { ("bad.xlsx", sheets::mutate(&xlsx, &mut rng)) } else { ("bad.xls", sheets::mutate(&xls, &mut rng)) };
        let r = upload(&admin, &token, name, &bytes).await;
        assert!(r.status == 200 || (400..500).contains(&r.status), "corrupted copy {i} ({name}): {} {}", r.status, r.text());
        if r.status != 200 {
            assert_eq!(r.error().1.as_deref(), Some("file"), "corrupted copy {i}: {}", r.text());
        }
    }
    still_serving(&admin, &token, "40 corrupted copies").await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_tenant, token) = admin.register("Big Uploads", "boss-big").await;
    // Just over the 5 MiB limit (the handler counts it), and far over (the body limit stops it).
    for size in [(5 << 20) + 1, 8 << 20] {
        let r = oversized_upload(&admin, &token, &vec![b'x'; size]).await;
        assert_eq!((r.status, r.error()), (413, ("too_large".to_string(), Some("file".to_string()))), "{size} bytes: {}", r.text());
    }
    still_serving(&admin, &token, "oversize uploads").await;
}

#[tokio::test]
async fn a_normal_list_still_parses_with_its_row_errors() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_tenant, token) = admin.register("Lists", "boss-list").await;

    let r = upload(&admin, &token, "list.xlsx", &sheets::xlsx_list(3)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["rows"].as_array().unwrap().len(), 3, "{j}");
    assert_eq!(j["rows"][2]["to"], "user2@example.test");
    assert_eq!(j["rows"][2]["name"], "U & 2");
    assert_eq!(j["rows"][2]["variables"]["code"], "2");

    // A row without its recipient is reported with its sheet row and column.
    let r =
        upload(&admin, &token, "gap.xlsx", &sheets::xlsx_cells(&[("A1", "to"), ("B1", "name"), ("A2", "a@example.test"), ("B3", "nobody")])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["rows"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["errors"][0]["row"], 3, "{j}");
    assert_eq!(j["errors"][0]["column"], "to", "{j}");

    let r = upload(&admin, &token, "list.xls", &sheets::xls_list()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["rows"][0]["to"], "xls-one@example.test", "{j}");
    assert_eq!(j["rows"][0]["name"], "王五", "{j}");
    assert_eq!(j["rows"][1]["name"], "13800000000", "{j}");

    // Not a spreadsheet: refused with the reason, before any parser runs.
    let r = upload(&admin, &token, "list.csv", b"to\na@b.c").await;
    assert_eq!((r.status, r.error().1.as_deref()), (400, Some("file")), "{}", r.text());
}

#[tokio::test]
async fn a_list_is_checked_for_its_channel_and_the_template_uploads_back() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_tenant, token) = admin.register("Checked", "boss-checked").await;

    // An SMS list: a word, ten digits and an e-mail address are row errors
    // naming row and column; the +86 spelling of an earlier number is a duplicate.
    let sheet = sheets::xlsx_cells(&[
        ("A1", "手机"),
        ("B1", "name"),
        ("A2", "13800138000"),
        ("A3", "abc123"),
        ("A4", "1380013800"),
        ("A5", "ann@example.com"),
        ("A6", "+8613800138000"),
        ("A7", "13900139000"),
    ]);
    let r = upload_for(&admin, &token, "sms.xlsx", &sheet, Some("aliyun-sms")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let to: Vec<&str> = j["rows"].as_array().unwrap().iter().map(|r| r["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["13800138000", "13900139000"], "{j}");
    assert_eq!(j["lines"], serde_json::json!([2, 7]), "{j}");
    let errors: Vec<(u64, &str)> =
        j["errors"].as_array().unwrap().iter().map(|e| (e["row"].as_u64().unwrap(), e["column"].as_str().unwrap())).collect();
    assert_eq!(errors, [(3, "手机"), (4, "手机"), (5, "手机")], "{j}");
    assert_eq!(j["duplicates"], serde_json::json!([{"row": 6, "to": "+8613800138000", "first_row": 2}]), "{j}");
    // The same sheet for e-mail: only the address is one.
    let r = upload_for(&admin, &token, "sms.xlsx", &sheet, Some("email")).await;
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 1, "{}", r.text());
    // A channel that does not exist is named.
    let r = upload_for(&admin, &token, "sms.xlsx", &sheet, Some("pigeon")).await;
    assert_eq!((r.status, r.error().1.as_deref()), (422, Some("channel")), "{}", r.text());

    // The template: the headers the upload reads and an example row of the channel's kind.
    let template = |channel: &str, language: &'static str| {
        let url = format!("{}/api/v1/pushes/upload-template?channel={channel}", admin.url);
        let token = token.clone();
        async move { request("GET", &url, Some(&token), &[("accept-language", language)], Bytes::new()).await }
    };
    for (channel, language, header, example) in
        [("aliyun-sms", "zh-CN,zh;q=0.9", "收件人", "13800138000"), ("email", "en-US,en;q=0.8", "to", "zhang.san@example.com")]
    {
        let t = template(channel, language).await;
        assert_eq!(t.status, 200, "{}", t.text());
        assert_eq!(t.headers["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        assert!(t.headers["content-disposition"].to_str().unwrap().contains(&format!("recipients-{channel}.xlsx")));
        let r = upload_for(&admin, &token, "template.xlsx", &t.body, Some(channel)).await;
        let j = r.json();
        assert_eq!((j["to_column"].as_str(), j["rows"][0]["to"].as_str()), (Some(header), Some(example)), "{j}");
        assert!(j["errors"].as_array().unwrap().is_empty() && j["duplicates"].as_array().unwrap().is_empty(), "{j}");
    }
    let r = request("GET", &format!("{}/api/v1/pushes/upload-template", admin.url), Some(&token), &[], Bytes::new()).await;
    assert_eq!((r.status, r.error().1.as_deref()), (400, Some("channel")), "{}", r.text());
}
