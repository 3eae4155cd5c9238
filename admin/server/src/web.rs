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
use herald_core::i18n::Msg;
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
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(ErrorKind::TooLarge, "too_large", herald_core::msg!("input.body_unreadable", detail = e.body_text())))?;
        let mut value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(ErrorKind::Invalid, "invalid_body", herald_core::msg!("input.not_json", detail = e)).with_field("body"))?;
        whole_numbers(&mut value);
        serde_path_to_error::deserialize(value).map(Body).map_err(|e| {
            let field = named_field(e.path().to_string(), "body");
            let err = ApiError::new(ErrorKind::Invalid, "invalid_body", serde_message(&e.inner().to_string(), &field));
            Failure(err.with_field(field))
        })
    }
}

/// The field a deserialization error is at; `whole` when it has no name
/// (the top level, or an unknown key that is itself empty: `{"": 1}`).
fn named_field(path: String, whole: &str) -> String {
    let trimmed = path.trim_end_matches('.');
    if trimmed.is_empty() { whole.to_string() } else { trimmed.to_string() }
}

/// A deserialization error of the input at `field`, keyed: serde's sentences
/// ("missing field `x`", "invalid type: integer `1`, expected a string",
/// "unknown variant `x`, expected one of …") are recognised and their parts
/// passed as arguments (JSON type names translated); any other text (a
/// field's own check) is the detail of `input.invalid`.
pub fn serde_message(text: &str, field: &str) -> Msg {
    use herald_core::msg;
    // serde_json adds the position to errors of a text; a value has none.
    let text = text.split(" at line ").next().unwrap_or(text);
    let ticked = |s: &str| s.trim().trim_matches('`').to_string();
    if let Some(name) = text.strip_prefix("missing field ") {
        return msg!("input.missing_field", field = ticked(name));
    }
    if let Some(rest) = text.strip_prefix("unknown field ") {
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return msg!("input.unknown_field", field = ticked(name)).nested("expected", one_of(expected));
    }
    if let Some(rest) = text.strip_prefix("unknown variant ") {
        let (value, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return msg!("input.unknown_value", field = field, value = ticked(value)).nested("expected", one_of(expected));
    }
    for (prefix, key) in [("invalid type: ", "input.invalid_type"), ("invalid value: ", "input.invalid_value")] {
        if let Some((found, expected)) = text.strip_prefix(prefix).and_then(|r| r.split_once(", expected ")) {
            return Msg::new(key).arg("field", field).nested("found", found_value(found)).nested("expected", json_type(expected));
        }
    }
    if let Some(rest) = text.strip_prefix("invalid length ") {
        let (length, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return msg!("input.invalid_length", field = field, length = length).nested("expected", json_type(expected));
    }
    if let Some(name) = text.strip_prefix("duplicate field ") {
        return msg!("input.duplicate_field", field = ticked(name));
    }
    let known = [msg!("field.not_negative")];
    let detail = known.into_iter().find(|m| m.to_string() == text).unwrap_or_else(|| Msg::verbatim(text));
    msg!("input.invalid", field = field).nested("detail", detail)
}

/// serde's "`a`", "`a` or `b`", "one of `a`, `b`, `c`" (or "there are no
/// fields"): the names, else as written.
fn one_of(expected: &str) -> Msg {
    let names = expected.strip_prefix("one of ").unwrap_or(expected);
    if !names.starts_with('`') {
        return Msg::verbatim(expected);
    }
    let names = names.replace("` or `", "`, `").replace('`', "");
    if names.contains(", ") { herald_core::msg!("input.one_of", names = names) } else { Msg::verbatim(names) }
}

/// A JSON type as serde's `Expected` names it ("a string", "u64", "struct X").
fn json_type(expected: &str) -> Msg {
    let e = expected.trim();
    let key = match e {
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "json.string",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "an integer" => "json.integer",
        "f32" | "f64" | "a number" => "json.number",
        "a boolean" | "bool" => "json.boolean",
        "a sequence" | "a tuple" | "an array" => "json.array",
        "a map" | "a JSON object" | "an object" => "json.object",
        "unit" | "null" => "json.null",
        _ if e.starts_with("struct ") || e.starts_with("a map ") => "json.object",
        _ if e.starts_with("a sequence") || e.starts_with("tuple") || e.starts_with("an array") => "json.array",
        _ => return Msg::verbatim(e),
    };
    Msg::new(key)
}

/// serde's `Unexpected` ("integer `1`", "string \"x\"", "null", "map"): its type translated, its value as written.
fn found_value(found: &str) -> Msg {
    let f = found.trim();
    for (prefix, key) in [
        ("integer ", "json.integer"),
        ("floating point ", "json.number"),
        ("boolean ", "json.boolean"),
        ("string ", "json.string"),
        ("character ", "json.string"),
    ] {
        if let Some(value) = f.strip_prefix(prefix) {
            return herald_core::msg!("json.with_value", value = value.trim_matches('`')).nested("type", Msg::new(key));
        }
    }
    match f {
        "null" | "unit value" | "Option value" => Msg::new("json.null"),
        "sequence" => Msg::new("json.array"),
        "map" => Msg::new("json.object"),
        _ => Msg::verbatim(f),
    }
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
            let field = named_field(e.path().to_string(), "query");
            let err = ApiError::new(ErrorKind::Invalid, "invalid_query", serde_message(&e.inner().to_string(), &field));
            Failure(err.with_field(field))
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

    /// Constructors of user-facing errors and the index of their message argument.
    const CONSTRUCTORS: [(&str, usize); 6] = [
        ("ApiError::new(", 2),
        ("ApiError::invalid(", 1),
        ("ApiError::unknown(", 2),
        ("ApiError::unavailable(", 0),
        ("conflict(", 1),
        ("beyond(", 1),
    ];

    /// Messages that may stay as written, with why: (file, text of the argument).
    const ALLOWED: [(&str, &str, &str); 0] = [];

    /// The arguments of the call whose `(` ends `text[..open]`, split at top-level commas.
    fn arguments(text: &str) -> Vec<String> {
        let (mut depth, mut args, mut cur, mut in_str, mut escaped) = (0i32, Vec::new(), String::new(), false, false);
        for c in text.chars() {
            if in_str {
                cur.push(c);
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => {
                    args.push(cur.trim().to_string());
                    return args;
                }
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    args.push(std::mem::take(&mut cur).trim().to_string());
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        args
    }

    /// One file's code: (constructor calls seen, those given English, nouns
    /// of `not_found`/`need` missing from the catalog).
    fn offenders(file: &str, code: &str) -> (usize, Vec<String>, Vec<String>) {
        let catalog: std::collections::HashMap<String, String> = serde_json::from_str(herald_core::i18n::SOURCES[0].1).unwrap();
        let (mut calls, mut english, mut nouns) = (0, Vec::new(), Vec::new());
        let line = |at: usize| code[..at].lines().count();
        for (name, index) in CONSTRUCTORS {
            for (at, _) in code.match_indices(name) {
                // `conflict(` inside another name (`fn conflict(`, `is_conflict(`) is not the helper.
                let before = code[..at].chars().next_back().unwrap_or(' ');
                if before.is_alphanumeric() || before == '_' || code[..at].ends_with("fn ") {
                    continue;
                }
                calls += 1;
                let args = arguments(&code[at + name.len()..]);
                if args.iter().any(|a| a.contains("ErrorKind::Internal")) {
                    continue;
                }
                let Some(message) = args.get(index) else { continue };
                let keyed = message.starts_with("herald_core::msg!") || message.starts_with("msg!") || message.contains("Msg::");
                let plain = !keyed
                    && (message.starts_with('"')
                        || message.starts_with("format!(")
                        || message.starts_with("String::from")
                        || message.ends_with(".to_string()")
                        || message.ends_with("body_text()"));
                let allowed = ALLOWED.iter().any(|(f, m, _)| *f == file && message.contains(m));
                if plain && !allowed {
                    english.push(format!("{file}:{}: {name}… {message}", line(at)));
                }
            }
        }
        // What `not_found` and `Repo::need` name is a noun of the catalog (部门不存在, not "recharge request不存在").
        for (name, index) in [("not_found(", 0), (".need(", 2)] {
            for (at, _) in code.match_indices(name) {
                if code[..at].ends_with("fn ") {
                    continue;
                }
                let args = arguments(&code[at + name.len()..]);
                if let Some(noun) = args.get(index).and_then(|a| a.strip_prefix('"')).and_then(|a| a.strip_suffix('"'))
                    && !catalog.contains_key(&format!("noun.{noun}"))
                {
                    nouns.push(format!("{file}:{}: noun.{noun}", line(at)));
                }
            }
        }
        (calls, english, nouns)
    }

    /// The detector finds what it is meant to, and passes what is keyed or internal.
    #[test]
    fn the_detector_finds_english() {
        let code = r#"
            Err(ApiError::invalid("note", "too long"))
            Err(ApiError::unknown("x", "file", format!("row {n}")))
            conflict("in_use", e.to_string())
            ApiError::new(ErrorKind::Internal, "internal", format!("db: {e}"))
            ApiError::invalid("note", herald_core::msg!("field.empty", field = format!("{f}")))
            is_conflict(a, "b")
            ApiError::not_found("gizmo", "id")
            repo.need(ROLE, &id, "role")
        "#;
        let (calls, english, nouns) = offenders("x.rs", code);
        assert_eq!(calls, 5);
        assert_eq!(english.len(), 3, "{english:?}");
        assert_eq!(nouns, ["x.rs:8: noun.gizmo"]);
    }

    /// Every error a user reads is keyed (`msg!`, a `Msg`): no constructor of
    /// a user-facing `ApiError` is given English as a literal, a `format!` or
    /// a library's `to_string()` (internal errors are logged, never shown).
    #[test]
    fn user_facing_errors_are_keyed_messages() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let (mut calls, mut english, mut nouns) = (0, Vec::new(), Vec::new());
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // Only the code: a file's tests (its `mod tests`) may build what they like.
                let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(&text);
                let (c, e, n) = offenders(&path.strip_prefix(&root).unwrap().display().to_string(), code);
                calls += c;
                english.extend(e);
                nouns.extend(n);
            }
        }
        assert!(calls > 50, "found the constructors ({calls})");
        assert!(english.is_empty(), "user-facing errors with English text, not a keyed message:\n{}", english.join("\n"));
        assert!(nouns.is_empty(), "nouns missing from the catalogs:\n{}", nouns.join("\n"));
    }

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
