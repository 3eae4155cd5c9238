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
use herald_core::doc_query::{DocFilter, DocQuery};
use herald_core::docs::Repo;
use herald_core::error::{ApiError, ErrorKind};
use herald_core::provider_template::ProviderTemplate;
use herald_plugin_host::PluginHost;
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
        let mut resp = (status, axum::Json(self.0.body_in(crate::i18n::lang()))).into_response();
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
    /// The column to order by; each list names the ones it has (another is a 422 `unknown_sort` naming `sort`).
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`, else the list's own order).
    #[param(inline)]
    pub order: Option<SortOrder>,
    /// Items to skip.
    #[serde(default, deserialize_with = "non_negative")]
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<u64>,
    /// Page size, default 50, at most 200 (deliveries: default 500, at most 5000); larger is taken as the most.
    #[serde(default, deserialize_with = "non_negative")]
    #[param(value_type = Option<i64>, minimum = 0)]
    pub limit: Option<u64>,
}

/// The direction of a sorted list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// A list's columns the server sorts by: (name in `sort`, document field).
pub type Sortable = &'static [(&'static str, &'static str)];

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

    /// A text filter on document fields (None when the text is empty).
    pub fn contains(filter: &Option<String>, fields: &[&str]) -> Option<DocFilter> {
        let text = filter.as_deref().map(str::trim).filter(|f| !f.is_empty())?;
        Some(DocFilter::Contains { fields: fields.iter().map(|f| f.to_string()).collect(), text: text.into() })
    }

    /// The store query for this page: `filters`, the asked `sort` (one of
    /// `sortable`, else a 422 naming `sort`) or the list's `default` order
    /// (field, descending), `offset` and `limit` (default 50, at most 200).
    pub fn docs(&self, sortable: Sortable, default: (&str, bool), filters: Vec<Option<DocFilter>>) -> std::result::Result<DocQuery, ApiError> {
        let (sort, descending) = match self.sort.as_deref().filter(|s| !s.is_empty()) {
            Some(name) => {
                let field = sortable.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).ok_or_else(|| {
                    let names: Vec<&str> = sortable.iter().map(|(n, _)| *n).collect();
                    ApiError::new(ErrorKind::Unprocessable, "unknown_sort", herald_core::msg!("list.sort", names = names.join(", ")))
                        .with_field("sort")
                })?;
                (field, self.order == Some(SortOrder::Desc))
            }
            None => (default.0, self.order.map_or(default.1, |o| o == SortOrder::Desc)),
        };
        Ok(DocQuery {
            filters: filters.into_iter().flatten().collect(),
            sort: Some(sort).filter(|s| !s.is_empty()).map(Into::into),
            descending,
            offset: self.offset.unwrap_or(0),
            limit: self.take(50, 200) as u64,
        })
    }

    /// A list no store pages (sender accounts: their own table, a handful
    /// per tenant) paged and sorted here by the same rules as the stores
    /// (`DocQuery::apply`, text in pinyin order), with its total: `items` in
    /// their natural order (kept among equals), `sortable` and `default` as
    /// for [`ListQuery::docs`] (an empty default field: the natural order),
    /// page size `limits` (default, most).
    pub fn page_values<T: Serialize>(
        &self,
        items: impl IntoIterator<Item = T>,
        sortable: Sortable,
        default: (&str, bool),
        limits: (usize, usize),
    ) -> std::result::Result<Page<Value>, ApiError> {
        let mut query = self.docs(sortable, default, vec![])?;
        query.limit = self.take(limits.0, limits.1) as u64;
        let docs = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| herald_core::model::Doc {
                tenant: String::new(),
                kind: String::new(),
                id: format!("{i:012}"),
                body: serde_json::to_value(item).unwrap_or_default(),
                updated_at: 0,
            })
            .collect();
        let page = query.apply(docs);
        Ok(Page { items: page.docs.into_iter().map(|d| d.body).collect(), total: usize::try_from(page.total).unwrap_or(usize::MAX) })
    }

    /// One page of a kind of documents as `{"items", "total"}`.
    pub async fn page_docs<T: DeserializeOwned>(&self, repo: &Repo<'_>, kind: &str, query: &DocQuery) -> std::result::Result<Page<T>, ApiError> {
        let (items, total) = repo.page(kind, query).await?;
        Ok(Page { items, total: usize::try_from(total).unwrap_or(usize::MAX) })
    }

    /// `limit` within 1..=`max`, `default` when absent.
    pub fn take(&self, default: usize, max: usize) -> usize {
        self.limit.map_or(default, |l| usize::try_from(l).unwrap_or(max)).clamp(1, max)
    }
}

/// A provider template fits a channel whose plugin sends only approved
/// templates; the error names the field under `provider_template`.
pub fn provider_template_fits(
    plugins: &PluginHost,
    channel: &str,
    t: &ProviderTemplate,
) -> std::result::Result<(), (String, herald_core::i18n::Msg)> {
    if plugins.get(channel).is_none_or(|p| p.provider_template.is_none()) {
        return Err((String::new(), herald_core::msg!("provider_template.not_template_based", channel = channel)));
    }
    t.check().map_err(|(f, why)| (format!(".{f}"), why))
}

/// A provider template that does not fit (a channel that sends its text, a
/// repeated parameter, a value that does not compile): 422 naming the field,
/// as the document cannot say which channels take one.
pub fn provider_refused(field: String, why: herald_core::i18n::Msg) -> ApiError {
    ApiError::new(ErrorKind::Unprocessable, "provider_template", why).with_field(field)
}

/// Whether a spreadsheet's headers should be in Chinese: as `Accept-Language`
/// negotiates (the API's messages do the same), Chinese when it is absent or `*`.
pub fn prefers_chinese(headers: &axum::http::HeaderMap) -> bool {
    let asked = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty() && *v != "*");
    asked.is_none_or(|v| herald_core::i18n::Lang::negotiate(Some(v)) == herald_core::i18n::Lang::ZhCn)
}

/// An .xlsx as a download named `filename` (ASCII).
pub fn xlsx_attachment(filename: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    ([(header::CONTENT_TYPE, XLSX_TYPE.to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response()
}

pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Bills and reports are shown in China Standard Time.
pub const BILL_OFFSET_MINUTES: i32 = 8 * 60;

/// Ledger filters: `?from=YYYY-MM&to=YYYY-MM&days=` (a page: [`ListQuery`]).
#[derive(Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
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
        return Err(ApiError::invalid(field, herald_core::msg!("field.empty", field = field)));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(field, herald_core::msg!("field.too_long", field = field, max = max)));
    }
    Ok(v.to_string())
}

pub fn conflict(code: &'static str, message: impl Into<herald_core::i18n::Text>) -> ApiError {
    ApiError::new(ErrorKind::Conflict, code, message)
}

/// The one HTML policy of rich text, shared with the console (DOMPurify there).
pub const HTML_POLICY: &str = include_str!("../../console/html-policy.json");

#[derive(Deserialize)]
struct HtmlPolicy {
    tags: Vec<String>,
    generic_attributes: Vec<String>,
    tag_attributes: std::collections::HashMap<String, Vec<String>>,
    url_schemes: Vec<String>,
}

static POLICY: std::sync::LazyLock<HtmlPolicy> = std::sync::LazyLock::new(|| serde_json::from_str(HTML_POLICY).expect("html-policy.json"));

/// Rich text sanitized with ammonia under [`HTML_POLICY`]: only its tags,
/// attributes and URL schemes; no scripts, handlers, styles or
/// `javascript:` URLs; links get `rel="noopener noreferrer"`.
pub fn sanitize_html(html: &str) -> String {
    let p = &*POLICY;
    let set = |v: &'static [String]| v.iter().map(String::as_str).collect::<std::collections::HashSet<_>>();
    ammonia::Builder::default()
        .tags(set(&p.tags))
        .generic_attributes(set(&p.generic_attributes))
        .tag_attributes(p.tag_attributes.iter().map(|(t, a)| (t.as_str(), set(a))).collect())
        .url_schemes(set(&p.url_schemes))
        .clean(html)
        .to_string()
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
        return (status, axum::Json(e.body_in(crate::i18n::lang()))).into_response();
    }
    next.run(req).await
}

fn check_same_origin(h: &axum::http::HeaderMap) -> std::result::Result<(), (StatusCode, ApiError)> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let refuse = |field: &str, message: herald_core::i18n::Msg| {
        (StatusCode::FORBIDDEN, ApiError::new(ErrorKind::Forbidden, "cross_origin", message).with_field(field))
    };
    let confirmed = match (get("origin"), get("sec-fetch-site")) {
        (Some(origin), _) => {
            let authority = origin.split_once("://").map(|(_, a)| a.trim_end_matches('/'));
            let host = get("x-forwarded-host").or(get("host"));
            match (authority, host) {
                (Some(a), Some(host)) if a.eq_ignore_ascii_case(host) => true,
                _ => {
                    return Err(refuse("Origin", herald_core::msg!("web.cross_origin")));
                }
            }
        }
        (None, Some("same-origin")) => true,
        (None, Some(_)) => return Err(refuse("Sec-Fetch-Site", herald_core::msg!("web.cross_site"))),
        (None, None) => false,
    };
    let has_body = h.contains_key(header::TRANSFER_ENCODING) || get("content-length").is_some_and(|n| n != "0");
    if has_body {
        let essence = get("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let json = essence == "application/json";
        let upload = essence == "multipart/form-data" && confirmed;
        if !json && !upload {
            let e = ApiError::new(ErrorKind::Invalid, "unsupported_media_type", herald_core::msg!("web.json_only")).with_field("Content-Type");
            return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sanitize_html;

    /// The shared policy: what the editor writes survives; what runs code does not.
    #[test]
    fn rich_text_keeps_the_policy_and_nothing_else() {
        let kept = r#"<p><b>粗体</b> <i>斜体</i> <u>下划线</u> <font color="red">红</font></p><ul><li>一</li></ul><a href="https://example.com/x" target="_blank">链接</a><table><tbody><tr><td colspan="2">c</td></tr></tbody></table><img src="cid:logo" alt="logo">"#;
        let out = sanitize_html(kept);
        for part in [
            "<b>粗体</b>",
            "<i>斜体</i>",
            "<u>下划线</u>",
            r#"<font color="red">"#,
            "<li>一</li>",
            r#"href="https://example.com/x""#,
            r#"colspan="2""#,
            r#"src="cid:logo""#,
        ] {
            assert!(out.contains(part), "{part} kept in {out}");
        }
        assert!(out.contains(r#"rel="noopener noreferrer""#), "{out}");
        let bad = r#"<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a><p style="background:url(javascript:alert(4))">s</p><iframe src="https://e.com"></iframe><svg><script>alert(5)</script></svg><a href="data:text/html,<script>alert(6)</script>">d</a>"#;
        let out = sanitize_html(bad);
        for gone in ["<script", "onerror", "javascript:", "style=", "<iframe", "<svg", "data:", "alert("] {
            assert!(!out.contains(gone), "{gone} removed from {out}");
        }
    }
}
