//! The admin REST API (`/api/v1`), its OpenAPI document (generated from the
//! handlers' `#[utoipa::path]`s), its reference page, and the console's
//! static files, assembled from the handler modules; what handlers share is in
//! `crate::web`.

pub mod accounts;
pub mod cost;
pub mod directory;
pub mod pushes;
pub mod rbac;
pub mod recharge;
pub mod reports;
pub mod schema;
pub mod session;
pub mod tenant;
pub mod tiered;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use herald_core::error::{ApiError, ErrorBody, ErrorKind};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
use utoipa_axum::routes;

use crate::state::App;
use crate::web::{Failure, Routes, same_origin_writes};

const PREFIX: &str = "/api/v1";

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald admin API", version = "1", license(name = "Apache-2.0", identifier = "Apache-2.0"),
        description = "Configuration of a Herald tenant: directory, roles, pushes, tiered push, sender accounts, cost and reports.\n\n\
Conventions: JSON in and out; every time is an integer of Unix milliseconds (UTC); money is integer minor units (`*_minor`) \
with a `currency`. Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`, `message` in the language of \
`Accept-Language` (zh-CN or en, English when absent or unknown; `Content-Language` says which; `code` never changes). Log in with `POST /api/v1/login`: the answer sets \
the cookie `herald_session` and carries the same token for `Authorization: Bearer`. A browser write (cookie, no `Authorization`) \
must come from the console's origin and be `application/json` (403 `cross_origin`, 415 `unsupported_media_type`). Every \
query is scoped to the caller's tenant; function permissions gate each operation (403 `forbidden`)."),
    components(schemas(ErrorBody)),
    tags(
        (name = "session", description = "Registration, login, the caller's sessions"),
        (name = "directory", description = "通讯录: org units and users"),
        (name = "apps", description = "App market and API keys"),
        (name = "roles", description = "Roles with function and data permissions"),
        (name = "pushes", description = "消息推送: message pushes"),
        (name = "tiered", description = "分级推送: templates, actions, incidents, quiet hours"),
        (name = "accounts", description = "账户设置: sender accounts"),
        (name = "cost", description = "费用管理: balance, bills, ledger; operator top-ups"),
        (name = "reports", description = "报表"),
        (name = "meta", description = "This document and its reference page"),
    ),
)]
struct ApiDoc;

/// The routes of `/api/v1` with their operations.
fn api() -> Routes<Arc<App>> {
    let r = Routes::new();
    let r = session::routes(r);
    let r = directory::routes(r);
    let r = rbac::routes(r);
    let r = pushes::routes(r);
    let r = tiered::routes(r);
    let r = accounts::routes(r);
    let r = cost::routes(r);
    let r = recharge::routes(r);
    let r = reports::routes(r);
    let r = tenant::routes(r);
    let r = r.routes(routes!(openapi_json)).routes(routes!(docs));
    Routes::with_openapi(ApiDoc::openapi()).nest(PREFIX, r)
}

/// The OpenAPI document: the operations as the handlers declare them, and
/// what they share: the security schemes (session cookie or bearer token on
/// every operation not marked otherwise) and the error body as the default answer.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    let cookie = ApiKeyValue::with_description(crate::auth::COOKIE, "Set by `POST /api/v1/login` (HttpOnly, SameSite=Strict).");
    components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
    let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("The `token` of `POST /api/v1/login`."));
    components.add_security_scheme("bearer", SecurityScheme::Http(bearer.build()));
    let operator = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("The admin's `operator_token` (platform operator)."));
    components.add_security_scheme("operator", SecurityScheme::Http(operator.build()));
    let error = ResponseBuilder::new()
        .description("An error: `{\"error\": {\"code\", \"message\", \"field\"}}`")
        .content("application/json", ContentBuilder::new().schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody")))).build())
        .build();
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten() {
            op.security.get_or_insert_with(|| vec![SecurityRequirement::new("session", [""; 0]), SecurityRequirement::new("bearer", [""; 0])]);
            op.responses.responses.entry("default".into()).or_insert_with(|| RefOr::T(error.clone()));
        }
    }
    doc
}

/// The document as served (and committed as `sdk/openapi/admin.json`).
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut json = openapi().to_pretty_json().expect("the OpenAPI document serializes");
    json.push('\n');
    json
});

#[utoipa::path(get, path = "/openapi.json", tag = "meta", summary = "This OpenAPI document", security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], DOCUMENT.as_str()).into_response()
}

/// Redoc, vendored from npm (`sdk/openapi/vendor`), reading `openapi.json`.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Herald admin API reference</title>
</head>
<body>
  <redoc spec-url="/api/v1/openapi.json"></redoc>
  <script src="/api/v1/docs/redoc.standalone.js"></script>
</body>
</html>
"#;

#[utoipa::path(get, path = "/docs", tag = "meta", summary = "The API reference page (Redoc)", security(()),
    responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
async fn docs() -> Response {
    static_file("text/html; charset=utf-8", DOCS_PAGE).await
}

pub fn router(app: Arc<App>) -> Router {
    let (api, _) = api().split_for_parts();
    api.route("/", axum::routing::get(|| static_file("text/html; charset=utf-8", include_str!("../../../console/index.html"))))
        .route("/app.js", axum::routing::get(|| static_file("text/javascript; charset=utf-8", include_str!("../../../console/app.js"))))
        .route("/i18n.js", axum::routing::get(|| static_file("text/javascript; charset=utf-8", include_str!("../../../console/i18n.js"))))
        .route(
            "/vendor/echarts.min.js",
            axum::routing::get(|| static_file("text/javascript; charset=utf-8", include_str!("../../../console/vendor/echarts.min.js"))),
        )
        .route("/style.css", axum::routing::get(|| static_file("text/css; charset=utf-8", include_str!("../../../console/style.css"))))
        .route("/purify.es.mjs", axum::routing::get(|| static_file("text/javascript; charset=utf-8", include_str!("../../../console/purify.es.mjs"))))
        .route("/html-policy.json", axum::routing::get(|| static_file("application/json", crate::web::HTML_POLICY)))
        .route(
            "/api/v1/docs/redoc.standalone.js",
            axum::routing::get(|| static_file("text/javascript; charset=utf-8", include_str!("../../../../sdk/openapi/vendor/redoc.standalone.js"))),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/metrics", axum::routing::get(crate::metrics::handler))
        .fallback(|| async { Failure(ApiError::new(ErrorKind::NotFound, "not_found", herald_core::msg!("web.no_route"))) })
        .layer(axum::middleware::from_fn(same_origin_writes))
        .layer(axum::middleware::from_fn(crate::i18n::negotiate))
        .layer(axum::extract::DefaultBodyLimit::max(app.cfg.max_upload_bytes + 64 * 1024))
        .layer(crate::metrics::get().http.layer()) // X-Request-Id, request span, herald_admin_requests_total
        .with_state(app)
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Redoc (the reference page) injects styles and runs its search in a blob: worker.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed `sdk/openapi/admin.json` is the generated document;
    /// `HERALD_UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/openapi/admin.json");
        let generated = super::DOCUMENT.as_str();
        if std::env::var("HERALD_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
            std::fs::write(&path, generated).expect("write sdk/openapi/admin.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} differs from the generated OpenAPI document: run `HERALD_UPDATE_OPENAPI=1 cargo test -p herald-admin the_committed_document` and commit it",
            path.display()
        );
    }
}
