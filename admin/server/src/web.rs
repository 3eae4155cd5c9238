//! What the API's handlers share: errors as HTTP answers, the JSON body
//! extractor, list and range queries, self-documenting routes, answers and
//! field checks, and the cross-origin write guard. A leaf: it imports no
//! handler module (nor the app's wiring), so every handler may use it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use herald_core::directory::User;
use herald_core::error::{ApiError, ErrorKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An `ApiError` on its way out.
pub struct Failure(pub ApiError);

impl<E: Into<ApiError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(self.0.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// A JSON body; a malformed one is a 400 naming the field.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> std::result::Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| ApiError::new(ErrorKind::TooLarge, "too_large", e.body_text()))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Body).map_err(|e| {
            let field = e.path().to_string();
            let err = ApiError::new(ErrorKind::Invalid, "invalid_body", e.inner().to_string());
            Failure(if field == "." { err } else { err.with_field(field) })
        })
    }
}

/// Common list filters: `?q=&number=&title=&status=&offset=&limit=`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub q: Option<String>,
    pub number: Option<String>,
    pub title: Option<String>,
    pub status: Option<String>,
    pub unit: Option<String>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

impl ListQuery {
    /// Case-insensitive containment; an empty filter matches everything.
    pub fn matches(filter: &Option<String>, value: &str) -> bool {
        filter.as_deref().map(str::trim).filter(|f| !f.is_empty()).is_none_or(|f| value.to_lowercase().contains(&f.to_lowercase()))
    }

    /// `{"items": [...], "total": n}` for one page.
    pub fn page<T: serde::Serialize>(&self, items: Vec<T>) -> Value {
        let total = items.len();
        let limit = self.limit.unwrap_or(50).clamp(1, 200);
        let page: Vec<T> = items.into_iter().skip(self.offset.unwrap_or(0)).take(limit).collect();
        json!({"items": page, "total": total})
    }
}

/// How many ledger entries the console reads at most (cost, reports).
pub const LEDGER_WINDOW: usize = 10_000;
/// Bills and reports are shown in China Standard Time.
pub const BILL_OFFSET_MINUTES: i32 = 8 * 60;

/// Ledger filters: `?from=YYYY-MM&to=YYYY-MM&limit=&days=`.
#[derive(Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<usize>,
    pub days: Option<i64>,
}

/// Routes that document themselves into the OpenAPI paths as they are added.
pub struct Routes<S> {
    router: Router<S>,
    paths: serde_json::Map<String, Value>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self { router: Router::new(), paths: serde_json::Map::new() }
    }

    pub fn add<H, T>(mut self, method: &str, path: &str, summary: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "PATCH" => MethodFilter::PATCH,
            "DELETE" => MethodFilter::DELETE,
            other => panic!("unsupported method {other}"),
        };
        let full = format!("/api/v1{path}");
        self.router = self.router.route(&full, on(filter, handler));
        let public = ["/register", "/login", "/openapi.json"].contains(&path);
        let mut op = json!({
            "summary": summary,
            "responses": {"default": {"description": "JSON; errors are {\"error\": {\"code\", \"message\", \"field\"}}"}},
        });
        if !public {
            op["security"] = json!([{"session": []}]);
        }
        let entry = self.paths.entry(full).or_insert_with(|| json!({}));
        entry[method.to_lowercase()] = op;
        self
    }

    /// The OpenAPI document of the routes added so far; the session is the
    /// cookie `cookie`.
    pub fn openapi(&self, cookie: &str) -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "Herald admin API", "version": "1"},
            "components": {"securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": cookie},
            }},
            "paths": self.paths,
        })
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// 201 with a JSON body.
pub fn created(v: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A required, trimmed, bounded text field.
pub fn text(field: &str, value: &str, max: usize) -> std::result::Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, format!("{field} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(field, format!("{field} must have at most {max} characters")));
    }
    Ok(v.to_string())
}

pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Conflict, code, message)
}

/// A time in milliseconds as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Rich text is sanitized (no scripts, handlers, javascript: URLs).
pub fn sanitize_html(html: &str) -> String {
    ammonia::clean(html)
}

/// A channel's content formats ("text", "html", "markdown", "voice").
pub fn formats(plugins: &herald_plugin_host::PluginHost, channel: &str) -> Vec<String> {
    plugins.get(channel).map(|p| p.format_names()).unwrap_or_default()
}

/// What the API shows of a user: never the password hash.
pub fn user_view(u: &User) -> serde_json::Value {
    let mut v = serde_json::to_value(u).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("password_hash");
    }
    v
}

/// Cross-site request forgery guard for writes that a browser could send
/// with the session cookie: a POST/PUT/PATCH/DELETE without an
/// `Authorization` header must come from the console's own origin (`Origin`
/// equal to the host, or `Sec-Fetch-Site: same-origin`; clients that send
/// neither, e.g. curl, pass) and carry its body as `application/json`
/// (multipart only from a confirmed same origin). API-token requests pass.
pub async fn same_origin_writes(req: Request, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    let writes = ![Method::GET, Method::HEAD, Method::OPTIONS].contains(req.method());
    if writes
        && !req.headers().contains_key(header::AUTHORIZATION)
        && let Err((status, e)) = check_same_origin(req.headers())
    {
        return (status, axum::Json(e.body())).into_response();
    }
    next.run(req).await
}

fn check_same_origin(h: &axum::http::HeaderMap) -> std::result::Result<(), (StatusCode, ApiError)> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let refuse = |field: &str, message: &str| {
        (StatusCode::FORBIDDEN, ApiError::new(ErrorKind::Forbidden, "cross_origin", message.to_string()).with_field(field))
    };
    let confirmed = match (get("origin"), get("sec-fetch-site")) {
        (Some(origin), _) => {
            let authority = origin.split_once("://").map(|(_, a)| a.trim_end_matches('/'));
            let host = get("x-forwarded-host").or(get("host"));
            match (authority, host) {
                (Some(a), Some(host)) if a.eq_ignore_ascii_case(host) => true,
                _ => {
                    return Err(refuse("Origin", "cross-origin writes are refused: send this from the console's own origin"));
                }
            }
        }
        (None, Some("same-origin")) => true,
        (None, Some(_)) => return Err(refuse("Sec-Fetch-Site", "cross-site writes are refused")),
        (None, None) => false,
    };
    let has_body = h.contains_key(header::TRANSFER_ENCODING) || get("content-length").is_some_and(|n| n != "0");
    if has_body {
        let essence = get("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let json = essence == "application/json";
        let upload = essence == "multipart/form-data" && confirmed;
        if !json && !upload {
            let e = ApiError::new(ErrorKind::Invalid, "unsupported_media_type", "send the body as application/json").with_field("Content-Type");
            return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, e));
        }
    }
    Ok(())
}
