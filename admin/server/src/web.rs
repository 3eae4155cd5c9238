//! What the API's handlers share: errors as HTTP answers, the JSON body
//! extractor, list and range queries, documented routes, answers and
//! field checks, and the cross-origin write guard. A leaf: it imports no
//! handler module (nor the app's wiring), so every handler may use it.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::directory::User;
use herald_core::error::{ApiError, ErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

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
        let mut value: Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::new(ErrorKind::Invalid, "invalid_body", e.to_string()).with_field("body"))?;
        whole_numbers(&mut value);
        serde_path_to_error::deserialize(value).map(Body).map_err(|e| {
            let field = e.path().to_string();
            let err = ApiError::new(ErrorKind::Invalid, "invalid_body", e.inner().to_string());
            Failure(err.with_field(named_field(field, "body")))
        })
    }
}

/// The field a deserialization error is at; `whole` when it has no name
/// (the top level, or an unknown key that is itself empty: `{"": 1}`).
fn named_field(path: String, whole: &str) -> String {
    let trimmed = path.trim_end_matches('.');
    if trimmed.is_empty() { whole.to_string() } else { trimmed.to_string() }
}

/// JSON has one number type: `1.0` is the integer 1 (as JSON Schema says), so
/// whole floats become integers before the typed fields read them.
fn whole_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64().and_then(herald_core::wire::whole) {
            Some(Ok(i)) => *v = Value::from(i),
            Some(Err(u)) => *v = Value::from(u),
            None => {}
        },
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(m) => m.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Query parameters; a malformed one is a 400 naming it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let err = ApiError::new(ErrorKind::Invalid, "invalid_query", e.inner().to_string());
            Failure(err.with_field(named_field(field, "query")))
        })
    }
}

/// Common list filters: `?q=&number=&title=&status=&unit=&offset=&limit=`
/// (combinable, AND; a filter a list does not have is ignored).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Free text (users: name, login, mobile, e-mail; accounts: name, sender address).
    pub q: Option<String>,
    /// Part of the number, e.g. `P0000` (pushes, templates, actions).
    pub number: Option<String>,
    /// Part of the title (pushes, templates, actions).
    pub title: Option<String>,
    /// Pushes: draft|scheduled|recurring|sent|disabled; actions: enabled|disabled; incidents: open|acknowledged|done.
    pub status: Option<String>,
    /// Users: an org unit id (its subtree).
    pub unit: Option<String>,
    /// Push deliveries: which send of the push (0 = the first; default the latest).
    #[serde(default, deserialize_with = "non_negative")]
    #[param(value_type = Option<i64>, minimum = 0)]
    pub send: Option<u64>,
    /// Items to skip.
    #[serde(default, deserialize_with = "non_negative")]
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<u64>,
    /// Page size, default 50, at most 200 (deliveries: default 500, at most 5000); larger is taken as the most.
    #[serde(default, deserialize_with = "non_negative")]
    #[param(value_type = Option<i64>, minimum = 0)]
    pub limit: Option<u64>,
}

/// A count in a query: 0 to `i64::MAX` (what the document declares).
pub fn non_negative<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        Some(n) => u64::try_from(n).map(Some).map_err(|_| serde::de::Error::custom("must not be negative")),
        None => Ok(None),
    }
}

impl ListQuery {
    /// Case-insensitive containment; an empty filter matches everything.
    pub fn matches(filter: &Option<String>, value: &str) -> bool {
        filter.as_deref().map(str::trim).filter(|f| !f.is_empty()).is_none_or(|f| value.to_lowercase().contains(&f.to_lowercase()))
    }

    /// `{"items": [...], "total": n}` for one page.
    pub fn page<T>(&self, items: Vec<T>) -> Page<T> {
        let total = items.len();
        Page { items: items.into_iter().skip(self.skip()).take(self.take(50, 200)).collect(), total }
    }

    /// `offset` as an index.
    pub fn skip(&self) -> usize {
        self.offset.map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX))
    }

    /// `limit` within 1..=`max`, `default` when absent.
    pub fn take(&self, default: usize, max: usize) -> usize {
        self.limit.map_or(default, |l| usize::try_from(l).unwrap_or(max)).clamp(1, max)
    }
}

/// Whether an answer (a spreadsheet's headers) should be in Chinese: unless
/// `Accept-Language` prefers another language; absent or `*` is Chinese.
pub fn prefers_chinese(headers: &axum::http::HeaderMap) -> bool {
    let language = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("zh");
    language.trim_start().to_ascii_lowercase().starts_with("zh") || language.trim().is_empty() || language.trim_start().starts_with('*')
}

/// An .xlsx as a download named `filename` (ASCII).
pub fn xlsx_attachment(filename: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    ([(header::CONTENT_TYPE, XLSX_TYPE.to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response()
}

pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// How many ledger entries the console reads at most (cost, reports).
pub const LEDGER_WINDOW: usize = 10_000;
/// Bills and reports are shown in China Standard Time.
pub const BILL_OFFSET_MINUTES: i32 = 8 * 60;

/// Ledger filters: `?from=YYYY-MM&to=YYYY-MM&limit=&days=`.
#[derive(Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(default, deserialize_with = "non_negative")]
    pub limit: Option<u64>,
    pub days: Option<i64>,
}

/// The API's routes with their OpenAPI operations: each handler's
/// `#[utoipa::path]` gives its method, path, parameters and answers.
pub type Routes<S> = utoipa_axum::router::OpenApiRouter<S>;

/// The schema of a create body that is an edit body (all fields optional)
/// with some text fields required (not null): `creating!(NewUser, UserBody, "name", "unit")`
/// names `allOf` of `UserBody` and those requirements `NewUser`.
macro_rules! creating {
    ($new:ident, $edit:ty, $($field:literal),+) => {
        struct $new;

        impl utoipa::PartialSchema for $new {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
                let text = || ObjectBuilder::new().schema_type(Type::String);
                AllOfBuilder::new()
                    .item(utoipa::openapi::Ref::from_schema_name(<$edit as utoipa::ToSchema>::name()))
                    .item(ObjectBuilder::new()$(.property($field, text()).required($field))+)
                    .description(Some(concat!("To create, also required:", $(" `", $field, "`"),+)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $new {
            fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
                schemas.push((<$edit as utoipa::ToSchema>::name().into_owned(), <$edit as utoipa::PartialSchema>::schema()));
                <$edit as utoipa::ToSchema>::schemas(schemas);
            }
        }
    };
}
pub(crate) use creating;

/// `{"items": [...], "total": n}`: one page of a list.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many match the filters (all pages).
    pub total: usize,
}

/// `{"items": [...]}`: a whole list.
#[derive(Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// `{"ended": n}`: how many sessions were ended.
#[derive(Serialize, ToSchema)]
pub struct Ended {
    pub ended: usize,
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
