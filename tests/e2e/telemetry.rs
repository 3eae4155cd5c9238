//! Telemetry against the real binaries (issue 14 point 6): `X-Request-Id` on
//! every answer (the caller's when sane, else a new one) and on the log lines
//! of the request; `herald_build_info`, `process_*` and
//! `herald_http_request_duration_seconds` by route pattern on both services;
//! the admin's `herald_admin_*` counters; the same log settings for both.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::admin::Admin;
use crate::harness::{API_KEY, Resp, eventually, request, tenant};
use crate::sinks::WebhookSink;

/// GET/POST against a gateway started here.
struct Client {
    url: String,
}

impl Client {
    async fn post(&self, path: &str, key: Option<&str>, headers: &[(&str, &str)], body: String) -> Resp {
        request("POST", &format!("{}{path}", self.url), key, headers, Bytes::from(body)).await
    }
    async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        request("GET", &format!("{}{path}", self.url), key, &[], Bytes::new()).await
    }
    async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text()
    }
}

/// The value of `name{labels}` in a Prometheus text page (labels as printed).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

fn request_id(r: &Resp) -> String {
    r.headers.get("x-request-id").map(|v| v.to_str().unwrap().to_string()).unwrap_or_else(|| panic!("no X-Request-Id on a {} answer", r.status))
}

fn is_made_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The commit the tree is at, when it is a git checkout.
fn head_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Shared by both services: build info with version and commit, process metrics.
fn assert_build_and_process(page: &str, service: &str) {
    let info = page.lines().find(|l| l.starts_with("herald_build_info{")).unwrap_or_else(|| panic!("{service}: no herald_build_info:\n{page}"));
    assert!(info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))) && info.ends_with(" 1"), "{service}: {info}");
    if let Some(head) = head_commit() {
        // The binaries may be a commit or two behind the tree; never "unknown" in a checkout.
        assert!(!info.contains("commit=\"unknown\"") && info.contains("commit=\""), "{service}: {info} (tree at {head})");
    }
    assert!(sample(page, "process_resident_memory_bytes").is_some_and(|v| v > 0.0), "{service}: no process metrics:\n{page}");
    assert!(sample(page, "process_open_fds").is_some(), "{service}: no process_open_fds");
}

/// A gateway with one webhook account to `sink_url`, started with `env`
/// (the harness's Gateway fixes HERALD_LOG); returns (child, url, log path).
fn spawn_gateway(dir: &std::path::Path, sink_url: &str, env: &[(&str, &str)]) -> (std::process::Child, String, std::path::PathBuf) {
    let accounts = format!("[[tenants.accounts]]\nname = \"hook\"\nplugin = \"webhook\"\nconfig = {{ url = \"{sink_url}\" }}\n");
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndemo = false\nplugins.dir = \"{}\"\n{}{}",
            dir.display(),
            crate::harness::plugin_dir().display(),
            crate::harness::LOOPBACK_ALLOWED,
            tenant("acme", API_KEY, &accounts)
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(crate::harness::gateway_bin());
    cmd.arg("--config").arg(&config).envs(env.iter().copied());
    let log = dir.join("gateway.log");
    let (child, url) = crate::harness::spawn_logged(cmd, &log, "herald-gateway listening on ");
    (child, url, log)
}

/// Kills the child when the test ends, passing or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_tags_answers_and_log_lines_with_request_ids_and_times_routes_by_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    // The application's lines (herald_service: "accepted") and the layer's own ("answered").
    let (child, url, log_path) = spawn_gateway(dir.path(), &sink.url, &[("HERALD_LOG", "info,herald_service=debug,herald_telemetry=debug")]);
    let _child = Killed(child);
    let gw = Client { url };
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let json_ct = ("content-type", "application/json");
    let body = json!({"channel": "webhook", "account": "hook", "content": {"text": "hi"}, "recipients": [{"to": "a"}]}).to_string();

    // The caller's id is kept, answered and on the request's log lines.
    let sent = gw.post("/v1/messages", Some(API_KEY), &[json_ct, ("x-request-id", "ingest-check-7f3a")], body.clone()).await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    assert_eq!(request_id(&sent), "ingest-check-7f3a");
    let message = sent.json()["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(10), "the accepted line and the answered line with the request id", || {
        let log = log();
        log.lines().any(|l| l.contains("accepted") && l.contains(&message) && l.contains("request_id=ingest-check-7f3a"))
            && log.lines().any(|l| l.contains("answered") && l.contains("request_id=ingest-check-7f3a") && l.contains("status=202"))
    })
    .await;

    // No id, an oversized one, one with spaces or controls: a new id is made.
    let none = gw.post("/v1/messages", Some(API_KEY), &[json_ct], body.clone()).await;
    let made = request_id(&none);
    assert!(is_made_id(&made), "{made}");
    let long = "x".repeat(300);
    for bad in [long.as_str(), "two words", "tab\there"] {
        let r = gw.post("/v1/messages", Some(API_KEY), &[json_ct, ("x-request-id", bad)], body.clone()).await;
        let id = request_id(&r);
        assert!(is_made_id(&id) && id != made, "{bad:?} became {id:?}");
    }
    // Errors, unknown routes, the fallback and health checks carry one too.
    for (path, status) in [("/v1/messages/0123456789abcdef0123456789abcdef", 404), ("/no/such/route/42", 404), ("/healthz", 200)] {
        let r = gw.get(path, Some(API_KEY)).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(is_made_id(&request_id(&r)), "{path}");
    }
    let unauth = gw.post("/v1/messages", None, &[json_ct, ("x-request-id", "no-key-1")], body.clone()).await;
    assert_eq!((unauth.status, request_id(&unauth).as_str()), (401, "no-key-1"));
    eventually(Duration::from_secs(30), "the deliveries", || sink.received().len() >= 5).await;

    let page = gw.metrics().await;
    assert_build_and_process(&page, "gateway");
    let count =
        |route: &str, status: u16| sample(&page, &format!("herald_http_request_duration_seconds_count{{route=\"{route}\",status=\"{status}\"}}"));
    assert_eq!(count("/v1/messages", 202), Some(5.0), "{page}");
    assert_eq!(count("/v1/messages", 401), Some(1.0));
    assert!(count("/v1/messages/{id}", 404).is_some_and(|n| n >= 1.0), "by route pattern:\n{page}");
    assert_eq!(count("unmatched", 404), Some(1.0), "the fallback is one label value:\n{page}");
    assert_eq!(count("/healthz", 200), Some(1.0));
    assert!(page.contains("herald_http_request_duration_seconds_bucket{route=\"/v1/messages\",status=\"202\",le=\"0.1\"}"));
    for raw in ["0123456789abcdef0123456789abcdef", "/no/such/route", &message] {
        assert!(!page.contains(raw), "a raw path or id became a label value: {raw}");
    }
    // The existing per-route counter is still there.
    assert!(page.contains("herald_http_requests_total{route=\"/v1/messages\",status=\"202\"} 5"), "{page}");
}

async fn login(admin: &Admin, login: &str, password: &str) -> Resp {
    let body = Bytes::from(json!({"login": login, "password": password}).to_string());
    request("POST", &format!("{}/api/v1/login", admin.url), None, &[("content-type", "application/json"), ("x-request-id", "login-try")], body).await
}

fn json_lines(log: &str) -> Vec<Value> {
    log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_exports_its_counters_and_takes_the_gateways_log_settings() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let env = [("HERALD_LOG".to_string(), "info,herald_telemetry=debug".to_string()), ("HERALD_LOG_FORMAT".to_string(), "json".to_string())];
    let admin = Admin::start_with(dir.path(), &env);

    // Registering logs a line; in JSON, with the request's id in its span.
    let reg = request(
        "POST",
        &format!("{}/api/v1/register", admin.url),
        None,
        &[("content-type", "application/json"), ("x-request-id", "register-acme-1")],
        Bytes::from(
            json!({"enterprise_name": "Acme", "admin_login": "boss", "admin_password": "correct horse battery", "admin_name": "Boss"}).to_string(),
        ),
    )
    .await;
    assert_eq!((reg.status, request_id(&reg).as_str()), (201, "register-acme-1"), "{}", reg.text());
    // The one right login of this test.
    let token = admin.login("boss", "correct horse battery").await;
    let log = || std::fs::read_to_string(dir.path().join("admin.log")).unwrap_or_default();
    eventually(Duration::from_secs(10), "a JSON 'enterprise registered' line carrying the request id", || {
        json_lines(&log()).iter().any(|l| l["fields"]["message"] == "enterprise registered" && l.to_string().contains("register-acme-1"))
    })
    .await;
    // HERALD_LOG is honoured: herald_telemetry=debug adds a line per answer.
    eventually(Duration::from_secs(10), "a debug 'answered' line", || {
        json_lines(&log())
            .iter()
            .any(|l| l["fields"]["message"] == "answered" && l["target"].as_str().is_some_and(|t| t.starts_with("herald_telemetry")))
    })
    .await;

    // Logins: five wrong (the fifth locks), then the right password refused while locked.
    let root = admin.root_unit(&token).await;
    let u = admin
        .call("POST", "/users", Some(&token), Some(json!({"name": "Lina", "login": "lina", "password": "violet kettle drums 42", "unit": root})))
        .await;
    assert_eq!(u.status, 201, "{}", u.text());
    for i in 0..5 {
        let r = login(&admin, "lina", &format!("wrong guess {i}")).await;
        assert_eq!(r.status, if i < 4 { 401 } else { 429 }, "attempt {i}: {}", r.text());
        assert_eq!(request_id(&r), "login-try");
    }
    assert_eq!(login(&admin, "lina", "violet kettle drums 42").await.status, 429);
    let secret_in_log = log();
    assert!(!secret_in_log.contains("violet kettle drums") && !secret_in_log.contains("wrong guess"), "passwords never logged");

    // Uploads: a list that parses, a file that does not.
    let ok = crate::uploads::upload(&admin, &token, "list.xlsx", &crate::uploads::sheets::xlsx_list(3)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad = crate::uploads::upload(&admin, &token, "junk.xlsx", b"this is not a spreadsheet").await;
    assert!((400..500).contains(&bad.status), "{}", bad.text());

    // A push sent now is published.
    let acc = admin.call("POST", "/accounts", Some(&token), Some(json!({"name": "hook", "channel": "webhook", "config": {"url": sink.url}}))).await;
    assert_eq!(acc.status, 201, "{}", acc.text());
    let push = admin
        .call(
            "POST",
            "/pushes",
            Some(&token),
            Some(json!({"title": "Hi", "channel": "webhook", "account": "hook", "content": {"text": "hi"}, "targets": {"list": [{"to": "room-1"}]}})),
        )
        .await;
    assert_eq!(push.status, 201, "{}", push.text());
    let push_id = push.json()["id"].as_str().unwrap().to_string();
    assert_eq!(admin.call("GET", &format!("/pushes/{push_id}"), Some(&token), None).await.status, 200);

    let metrics = request("GET", &format!("{}/metrics", admin.url), None, &[], Bytes::new()).await;
    assert_eq!(metrics.status, 200);
    assert!(is_made_id(&request_id(&metrics)));
    let page = metrics.text();
    assert_build_and_process(&page, "admin");
    let at = |series: &str| sample(&page, series).unwrap_or_else(|| panic!("no {series}:\n{page}"));
    assert_eq!(at(r#"herald_admin_logins_total{outcome="ok"}"#), 1.0);
    assert_eq!(at(r#"herald_admin_logins_total{outcome="failed"}"#), 5.0);
    assert_eq!(at(r#"herald_admin_logins_total{outcome="locked"}"#), 1.0);
    assert_eq!(at("herald_admin_lockouts_total"), 1.0);
    assert_eq!(at(r#"herald_admin_uploads_total{outcome="ok"}"#), 1.0);
    assert_eq!(
        at(r#"herald_admin_uploads_total{outcome="ok"}"#)
            + at(r#"herald_admin_uploads_total{outcome="refused"}"#)
            + at(r#"herald_admin_uploads_total{outcome="failed"}"#),
        2.0
    );
    assert_eq!(at("herald_admin_pushes_published_total"), 1.0);
    assert_eq!(at(r#"herald_admin_requests_total{route="/api/v1/register",status="201"}"#), 1.0);
    assert_eq!(at(r#"herald_admin_requests_total{route="/api/v1/login",status="401"}"#), 4.0);
    assert_eq!(at(r#"herald_admin_requests_total{route="/api/v1/login",status="429"}"#), 2.0);
    assert_eq!(at(r#"herald_admin_requests_total{route="/api/v1/pushes/{id}",status="200"}"#), 1.0);
    assert_eq!(at(r#"herald_http_request_duration_seconds_count{route="/api/v1/pushes",status="201"}"#), 1.0);
    assert!(!page.contains(&push_id), "a push id became a label value");
}

/// An OTLP/HTTP collector: keeps the bodies POSTed to /v1/traces.
struct Collector {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Bytes>>>,
}

impl Collector {
    async fn start() -> Collector {
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(body);
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { url, bodies }
    }

    /// The exported batches that hold `needle` (protobuf: ids as raw bytes, names as UTF-8).
    fn holding(&self, needle: &[u8]) -> Vec<Bytes> {
        self.bodies.lock().unwrap().iter().filter(|b| b.windows(needle.len()).any(|w| w == needle)).cloned().collect()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_otlp_endpoint_one_trace_runs_from_ingest_through_dispatch_to_the_provider_call() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let collector = Collector::start().await;
    let (child, url, log_path) = spawn_gateway(
        dir.path(),
        &sink.url,
        &[
            ("HERALD_LOG", "info"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "herald-gateway-under-test"),
        ],
    );
    let _child = Killed(child);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The caller's trace: the ingest span continues it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let body = json!({"channel": "webhook", "account": "hook", "content": {"text": "traced"}, "recipients": [{"to": "a"}]}).to_string();
    let sent = request(
        "POST",
        &format!("{url}/v1/messages"),
        Some(API_KEY),
        &[("content-type", "application/json"), ("traceparent", traceparent.as_str())],
        Bytes::from(body),
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    eventually(Duration::from_secs(30), "the delivery", || !sink.received().is_empty()).await;

    // Ingest, dispatch and the provider call are exported under the one trace id.
    let raw_trace: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batches = collector.holding(&raw_trace);
        let named = |name: &[u8]| batches.iter().any(|b| contains(b, name));
        if named(b"request") && named(b"dispatch") && named(b"provider") {
            assert!(batches.iter().any(|b| contains(b, b"herald-gateway-under-test")), "the service name is exported");
            break;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "spans not exported under trace {trace_id}: {} batches received, {} with the id; log:\n{}",
                collector.bodies.lock().unwrap().len(),
                batches.len(),
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log().contains("OpenTelemetry trace export on"), "{}", log());
}
