//! The API as a contract: the OpenAPI 3.1 document generated from the
//! handlers' `#[utoipa::path]` attributes and the types they answer with
//! (served at `GET /v1/openapi.json`, committed as `sdk/openapi/gateway.json`),
//! and the API reference page that renders it (`GET /v1/docs`, Redoc vendored
//! in `sdk/openapi/vendor`, no CDN).

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use herald_core::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::request;

/// Where the page takes Redoc from (the npm package `redoc`, `bundles/redoc.standalone.js`).
const REDOC: &str = include_str!("../../../../sdk/openapi/vendor/redoc.standalone.js");

/// The page's policy: Redoc from this origin only (its styles are inline, its
/// search runs in a blob worker), nothing fetched but the document. (The
/// "API docs by Redocly" logo in the sidebar links to their CDN: blocked, not loaded.)
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                        font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; \
                        frame-ancestors 'none'";

/// Links are relative, so the page works behind a proxy that adds a path prefix.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Herald gateway API reference</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="openapi.json" required-props-first="true" sort-required-props-first="true" expand-responses="200,202"></redoc>
<script src="docs/redoc.standalone.js"></script>
</body>
</html>
"#;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald gateway API",
        description = include_str!("openapi.md"),
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(ErrorBody),
        responses(
            request::Unauthenticated,
            request::OperatorUnauthenticated,
            request::NotFound,
            request::OperatorOff,
            request::BadQuery,
            request::KeyReused,
            request::Unavailable,
        ),
    ),
    tags(
        (name = "messages", description = "Send notifications and read their delivery status."),
        (name = "incidents", description = "Tiered push (分级推送): trigger actions, read and acknowledge incidents."),
        (name = "tenant", description = "The tenant's view of the gateway: loaded plugins, balance and ledger."),
        (name = "callbacks", description = "Provider delivery reports and read receipts."),
        (name = "operator", description = "Operator endpoints, with `Authorization: Bearer <admin_token>`; without an `admin_token` in the configuration they answer 404."),
        (name = "health", description = "Liveness, readiness and metrics."),
        (name = "docs", description = "This document and its reference page."),
    ),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description.to_string())).build())
        };
        components.add_security_scheme(
            "api_key",
            bearer("A tenant's API key: `Authorization: Bearer <key>` (made in the admin console, or declared in the configuration)."),
        );
        components.add_security_scheme("operator_token", bearer("The operator token: `Authorization: Bearer <admin_token>` from the configuration."));
    }
}

/// What the derive cannot say about `SendRequest`: a stored `template` or
/// inline `content` (with `text` or `html`), exactly one, as `validate` checks.
/// As one JSON Schema `not` on the object itself: utoipa's object has no field
/// for it, but its flattened extensions carry any keyword (a map in no fixed
/// order, hence one key); the type stays one plain object for client
/// generators, which ignore `not`.
struct TemplateOrContent;

impl Modify for TemplateOrContent {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use serde_json::json;
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let schema = api.components.as_mut().and_then(|c| c.schemas.get_mut("SendRequest"));
        let Some(RefOr::T(Schema::Object(object))) = schema else {
            panic!("SendRequest is an object schema");
        };
        let part = |name: &str| json!({"required": [name], "properties": {name: {"type": "string"}}});
        let template = json!({"required": ["template"], "properties": {"template": {"type": "string"}}});
        let content = json!({"required": ["content"], "properties": {"content": {"type": "object", "anyOf": [part("text"), part("html")]}}});
        let both = json!({"required": ["template", "content"], "properties": {"template": {"type": "string"}, "content": {"type": "object"}}});
        // Neither both, nor neither.
        let rule = json!({"anyOf": [both, {"not": {"anyOf": [template, content]}}]});
        object.extensions.get_or_insert_with(Default::default).insert("not".to_string(), rule);
        let description = object.description.get_or_insert_with(String::new);
        description.push_str("\n\nExactly one of `template` and `content` (with `text` or `html`).");
    }
}

/// The document, generated once from the router's routes.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(generate);

/// The document as pretty JSON (the same text every time).
pub fn generate() -> String {
    let mut api = super::routes().split_for_parts().1;
    // After the routes added their schemas.
    TemplateOrContent.modify(&mut api);
    let mut json = api.to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// This OpenAPI document
///
/// The gateway's API as OpenAPI 3.1 (JSON), generated from the code.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "docs",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object))
)]
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], DOCUMENT.as_str()).into_response()
}

/// API reference page
///
/// This document rendered by Redoc (served by the gateway itself, no CDN).
#[utoipa::path(
    get,
    path = "/v1/docs",
    tag = "docs",
    operation_id = "docs",
    responses((status = 200, description = "The API reference page.", content_type = "text/html", body = String))
)]
pub async fn page() -> Response {
    let mut resp = Html(DOCS_PAGE).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// Redoc's bundle, for the page.
pub async fn redoc() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        REDOC,
    )
        .into_response()
}
