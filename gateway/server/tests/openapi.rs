//! The API contract: the OpenAPI document the gateway serves is the one
//! committed as `sdk/openapi/gateway.json` (clients are generated from that
//! file), and the reference page renders it. A change to a handler's
//! documentation or to a type it answers with fails here until the file is
//! regenerated:
//!
//! ```sh
//! HERALD_UPDATE_OPENAPI=1 cargo test -p herald-gateway --test openapi
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use herald_core::Clock;
use herald_gateway::api::openapi::DOCUMENT;
use herald_gateway::config::Config;
use herald_gateway::metrics::Metrics;
use herald_gateway::state::App;
use herald_plugin_host::{HostConfig, PluginHost};
use herald_service::{Deps, LimitsSource, Services};
use http_body_util::BodyExt;
use tower_service::Service;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sdk/openapi/gateway.json")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = committed_path();
    if std::env::var("HERALD_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, DOCUMENT.as_str()).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != *DOCUMENT {
        let line =
            committed.lines().zip(DOCUMENT.lines()).position(|(a, b)| a != b).unwrap_or(committed.lines().count().min(DOCUMENT.lines().count()));
        panic!(
            "{} is not the document the gateway serves (first difference at line {}: committed {:?}, generated {:?}).\n\
             Regenerate it with `HERALD_UPDATE_OPENAPI=1 cargo test -p herald-gateway --test openapi`, \
             review the difference, regenerate the clients (sdk/clients) and commit.",
            path.display(),
            line + 1,
            committed.lines().nth(line).unwrap_or("<end>"),
            DOCUMENT.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

#[test]
fn the_document_is_the_same_text_every_time() {
    for _ in 0..5 {
        assert!(herald_gateway::api::openapi::generate() == *DOCUMENT, "generated twice, the document differs (a map in no fixed order?)");
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_operation_says_what_it_answers() {
    let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/messages",
        "/v1/messages/{id}",
        "/v1/plugins",
        "/v1/ledger",
        "/v1/callbacks/{tenant}/{account}",
        "/v1/actions/{id}/trigger",
        "/v1/incidents/{id}",
        "/v1/incidents/{id}/ack",
        "/v1/ack/{token}",
        "/admin/plugins/reload",
        "/admin/dead-letters",
        "/admin/dead-letters/redrive",
        "/admin/clock",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
        "/v1/docs",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(paths["/v1/ack/{token}"].get("get").is_some() && paths["/v1/ack/{token}"].get("post").is_some());
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_string()), "{id} twice");
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success answer");
            // Every error answer of the JSON API has the one error body.
            if path.starts_with("/v1/") && path != "/v1/ack/{token}" || path.starts_with("/admin/") {
                // (A reload with failing files answers 422 with its report.)
                let report = |s: &str| path == "/admin/plugins/reload" && s == "422";
                for (status, r) in responses.iter().filter(|(s, _)| !s.starts_with('2') && !report(s)) {
                    let r = match r.get("$ref").and_then(|r| r.as_str()) {
                        Some(r) => &doc["components"]["responses"][r.rsplit('/').next().unwrap()],
                        None => r,
                    };
                    let schema = &r["content"]["application/json"]["schema"];
                    assert_eq!(schema["$ref"], "#/components/schemas/ErrorBody", "{method} {path} {status}: {r}");
                }
            }
            let secured = op.get("security").is_some();
            let public = ["/v1/callbacks/", "/v1/ack/", "/v1/openapi.json", "/v1/docs", "/healthz", "/readyz", "/metrics"];
            assert_eq!(secured, !public.iter().any(|p| path.starts_with(p)), "{method} {path}: security");
        }
    }
}

/// The gateway's router on an empty SQLite store, with no plugins.
async fn router() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let clock = Clock::system();
    let backends = herald_backends::open(&cfg.storage, &cfg.queue, dir.path(), herald_backends::Role::Owner, clock.clone()).await.unwrap();
    let plugins = Arc::new(PluginHost::new(HostConfig::default(), HashMap::new()).unwrap());
    let sealer = Arc::new(herald_backends::Sealer::load(None, dir.path()).unwrap());
    let deps = Deps { backends, plugins, sealer, clock };
    let services = Services::new(deps, LimitsSource::Fixed(cfg.limits.clone()), "https://herald.example.com".into());
    let app = Arc::new(App::new(cfg, services, Metrics::new(), false));
    (herald_gateway::api::router(app), dir)
}

async fn get(router: &mut axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, bytes::Bytes) {
    let resp = router.call(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn the_gateway_serves_the_document_and_its_reference_page_without_a_key() {
    let (mut router, _dir) = router().await;
    let (status, headers, body) = get(&mut router, "/v1/openapi.json").await;
    assert_eq!((status, &headers["content-type"]), (StatusCode::OK, &"application/json".parse().unwrap()));
    assert_eq!(body, DOCUMENT.as_bytes(), "the served document is the generated one");

    let (status, headers, page) = get(&mut router, "/v1/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(page.contains(r#"spec-url="openapi.json""#) && page.contains(r#"src="docs/redoc.standalone.js""#), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "nothing from elsewhere: {page}");

    let (status, headers, js) = get(&mut router, "/v1/docs/redoc.standalone.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(js.len() > 500_000, "the vendored Redoc bundle");
}
