//! Enterprise registration, login, logout, and "who am I".

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{self, Unit, User};
use herald_core::error::ErrorBody;
use herald_core::error::{ApiError, ErrorKind};
use herald_core::model::Tenant;
use herald_core::rbac::{Grant, Permission, ROLE, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::api::schema;
use crate::auth::{self, Caller, Login, PLATFORM, check_current_password, check_login_name};
use crate::state::App;
use crate::web::{Body, Ended, Failure, Items, Result, Routes, created, no_content, text, user_view};
use herald_core::docs::{Repo, new_id};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(my_sessions, end_other_sessions))
        .routes(routes!(end_my_session))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enterprise_name": "Acme", "admin_login": "ann", "admin_password": "correct horse battery", "admin_name": "Ann Lee"}))]
struct Register {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    enterprise_name: String,
    /// 3–64 letters, digits, . _ - @ (case-insensitive, unique on the platform).
    #[schema(pattern = "^[\\w.@-]{2,64}$")]
    admin_login: String,
    /// 10–256 bytes, not built from the login name, not easy to guess (zxcvbn score ≥ 2).
    #[schema(min_length = 10, max_length = 256)]
    admin_password: String,
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    admin_name: String,
    #[serde(default)]
    admin_email: Option<String>,
    #[serde(default)]
    admin_mobile: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Registered {
    tenant: TenantName,
    #[schema(value_type = schema::User)]
    user: Value,
}

#[derive(Serialize, ToSchema)]
struct TenantName {
    id: String,
    name: String,
}

/// Creates the tenant, its root org unit (named after the enterprise), the
/// role "管理员"/"Administrator" (every permission, all units) and the first
/// user. The tenant's language (`/tenant/settings`) is the request's `Accept-Language`.
/// `admin_login` is unique across the platform.
#[utoipa::path(post, path = "/register", tag = "session", summary = "Register an enterprise and its first administrator",
    request_body = Register, security(()),
    responses((status = 201, description = "Registered", body = Registered),
              (status = 409, description = "`login_taken`", body = ErrorBody)))]
async fn register(State(app): State<Arc<App>>, Body(b): Body<Register>) -> Result<Response> {
    let name = text("enterprise_name", &b.enterprise_name, 100)?;
    let admin_name = text("admin_name", &b.admin_name, 100)?;
    let login = auth::normalize_login(&b.admin_login);
    check_login_name("admin_login", &login)?;
    auth::check_password("admin_password", &b.admin_password, Some(&login), &[b.admin_name.as_str(), b.enterprise_name.as_str()])?;
    let tenant = format!("t{}", &new_id()[20..]);
    let user_id = new_id();
    let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
    let claim = Login { tenant: tenant.clone(), user: user_id.clone() };
    if !platform.create(auth::LOGIN, &login, &claim).await? {
        return Err(ApiError::new(ErrorKind::Conflict, "login_taken", herald_core::msg!("login.taken")).with_field("admin_login").into());
    }
    let now = herald_core::now_ms();
    app.deps.backends.config.upsert_tenant(&Tenant { id: tenant.clone(), name: name.clone(), currency: "CNY".into() }).await?;
    let repo = Repo::new(app.deps.backends.config.as_ref(), &tenant);
    let root = Unit { id: new_id(), name: name.clone(), parent: None, created_at: now };
    repo.put(directory::UNIT, &root.id, &root).await?;
    let lang = crate::i18n::lang();
    repo.put(herald_core::i18n::TENANT, herald_core::i18n::SETTINGS, &herald_core::i18n::TenantSettings { language: lang }).await?;
    let role = Role {
        id: new_id(),
        name: herald_core::msg!("default.admin_role").render(lang),
        description: herald_core::msg!("default.admin_role_description").render(lang),
        permissions: Permission::ALL.iter().map(|p| Grant { id: p.as_str().to_string(), all_units: true, units: vec![] }).collect(),
        created_at: now,
    };
    repo.put(ROLE, &role.id, &role).await?;
    auth::enable_apps(&repo, &admin_name).await?;
    let user = User {
        id: user_id,
        name: admin_name,
        login: Some(login),
        password_hash: Some(auth::hash_password(&b.admin_password).await?),
        email: b.admin_email.filter(|s| !s.trim().is_empty()),
        mobile: b.admin_mobile.filter(|s| !s.trim().is_empty()),
        unit: root.id.clone(),
        roles: vec![role.id.clone()],
        created_at: now,
        ..Default::default()
    };
    repo.put(directory::USER, &user.id, &user).await?;
    tracing::info!(%tenant, "enterprise registered");
    Ok(created(Registered { tenant: TenantName { id: tenant, name }, user: user_view(&user) }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"login": "ann", "password": "correct horse battery"}))]
struct LoginBody {
    #[schema(max_length = 256, pattern = "\\S")]
    login: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
struct LoggedIn {
    /// The session token; also set as the cookie, or sent as `Authorization: Bearer`.
    token: String,
    expires_at: i64,
    #[schema(value_type = schema::User)]
    user: Value,
}

/// Sets the session cookie. Every attempt on a login name counts: after 5
/// failures in 15 minutes the name is locked for 15 minutes (429 with
/// `Retry-After`), known or not.
#[utoipa::path(post, path = "/login", tag = "session", summary = "Log in with account and password",
    request_body = LoginBody, security(()),
    responses((status = 200, description = "Logged in; `Set-Cookie: herald_session=…`", body = LoggedIn,
                headers(("Set-Cookie" = String, description = "The session cookie (HttpOnly, SameSite=Strict)"))),
              (status = 401, description = "`invalid_credentials`", body = ErrorBody),
              (status = 429, description = "`locked`", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds")))))]
async fn login(State(app): State<Arc<App>>, headers: HeaderMap, Body(b): Body<LoginBody>) -> Result<Response> {
    let login = auth::normalize_login(&b.login);
    if login.is_empty() || login.len() > 256 {
        return Err(ApiError::invalid("login", herald_core::msg!("login.give_name")).into());
    }
    // Count the attempt before checking it; unknown and locked names answer alike.
    let started = match auth::begin_attempt(&app, &login).await? {
        Ok(t) => t,
        Err(remaining) => return Ok(locked(remaining)),
    };
    let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
    let record: Option<Login> = platform.get(auth::LOGIN, &login).await?;
    let user: Option<User> = match &record {
        Some(r) => Repo::new(app.deps.backends.config.as_ref(), &r.tenant).get(directory::USER, &r.user).await?,
        None => None,
    };
    let ok = auth::verify_password(&b.password, user.as_ref().and_then(|u| u.password_hash.clone())).await;
    let ok = ok && record.is_some() && user.is_some();
    if let Some(remaining) = auth::finish_attempt(&app, &login, started, ok).await? {
        if !ok {
            tracing::warn!(login = %login, "login locked after repeated failures");
        }
        return Ok(locked(remaining));
    }
    let (Some(r), Some(user), true) = (record, user, ok) else {
        return Err(ApiError::new(ErrorKind::Unauthenticated, "invalid_credentials", herald_core::msg!("login.wrong")).into());
    };
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let (token, expires_at) = auth::start_session(&app, &r.tenant, &user.id, agent).await?;
    let cookie = auth::session_cookie(&app, &token, i64::from(app.cfg.session_idle_minutes) * 60);
    let mut resp = axum::Json(LoggedIn { token, expires_at, user: user_view(&user) }).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?);
    Ok(resp)
}

/// 429 with `Retry-After`; the same for every locked login name, known or not.
fn locked(remaining_ms: i64) -> Response {
    let secs = (remaining_ms / 1000).max(1);
    let err = ApiError::new(ErrorKind::TooManyRequests, "locked", herald_core::msg!("login.locked", minutes = (secs + 59) / 60)).with_field("login");
    let mut resp = Failure(err).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// Ends the session of the cookie or bearer token, if any, and clears the cookie.
#[utoipa::path(post, path = "/logout", tag = "session", summary = "End the session", security(()),
    responses((status = 204, description = "Logged out")))]
async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response> {
    let (mut parts, _) = axum::http::Request::new(()).into_parts();
    parts.headers = headers;
    if let Some(token) = auth::request_token(&parts) {
        auth::end_session(&app, &token).await?;
    }
    let mut resp = axum::http::StatusCode::NO_CONTENT.into_response();
    let cookie = auth::session_cookie(&app, "", 0);
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?);
    Ok(resp)
}

#[derive(Serialize, ToSchema)]
struct Me {
    #[schema(value_type = schema::User)]
    user: Value,
    #[schema(value_type = Option<schema::Tenant>)]
    tenant: Option<Tenant>,
    /// Function permission ids the caller may use (held, in an enabled app).
    permissions: Vec<String>,
    /// Each permission held with its data scope (root units), whatever its app.
    grants: Vec<Grant>,
    /// The tenant's enabled apps (messaging, tiered-push, reports).
    apps: Vec<String>,
    /// Some permission reaches every unit…
    all_units: bool,
    /// …or these org units (the union of the permissions' scopes, subtrees expanded).
    units: Vec<String>,
}

#[utoipa::path(get, path = "/me", tag = "session", summary = "The caller, their tenant, permissions and data scope",
    responses((status = 200, description = "The caller", body = Me)))]
async fn me(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let tenant = app.deps.backends.config.tenant(&caller.tenant).await?;
    let a = &caller.access;
    let grants = a.rights().0.iter().map(|(id, s)| Grant { id: id.clone(), all_units: s.all_units, units: s.units.clone() }).collect();
    let (all_units, units) = a.union();
    let mut units: Vec<_> = units.into_iter().collect();
    units.sort();
    let me = Me { user: user_view(&caller.user), tenant, permissions: a.usable(), grants, apps: a.apps(), all_units, units };
    Ok(axum::Json(me).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    /// 10–256 bytes, not built from the login name, zxcvbn score ≥ 2.
    new_password: String,
}

#[utoipa::path(post, path = "/me/password", tag = "session", summary = "Change one's own password (ends one's other sessions)",
    request_body = PasswordChange,
    responses((status = 204, description = "Changed"),
              (status = 403, description = "`wrong_password`", body = ErrorBody)))]
async fn change_password(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<PasswordChange>) -> Result<Response> {
    check_current_password(&caller, "current_password", Some(&b.current_password)).await?;
    auth::check_password("new_password", &b.new_password, caller.user.login.as_deref(), &[caller.user.name.as_str()])?;
    let hash = auth::hash_password(&b.new_password).await?;
    caller
        .repo(&app)
        .update::<User>(directory::USER, &caller.user.id, |u| {
            u.password_hash = Some(hash.clone());
            u.must_change_password = false;
            Ok(())
        })
        .await?;
    let ended = auth::end_sessions_of(&app, &caller.tenant, &caller.user.id, Some(&caller.session)).await?;
    tracing::info!(tenant = %caller.tenant, user = %caller.user.id, ended, "password changed");
    Ok(no_content())
}

#[derive(Serialize, ToSchema)]
struct SessionView {
    id: String,
    created_at: i64,
    expires_at: i64,
    user_agent: Option<String>,
    /// The session of this request.
    current: bool,
}

#[utoipa::path(get, path = "/me/sessions", tag = "session", summary = "One's own live sessions",
    responses((status = 200, description = "Newest first", body = Items<SessionView>)))]
async fn my_sessions(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let mut sessions = auth::sessions_of(&app, &caller.tenant, &caller.user.id).await?;
    sessions.sort_by_key(|(_, s)| std::cmp::Reverse(s.created_at));
    let items: Vec<_> = sessions
        .iter()
        .map(|(key, s)| SessionView {
            id: auth::session_id(key).to_string(),
            created_at: s.created_at,
            expires_at: s.expires_at,
            user_agent: s.user_agent.clone(),
            current: *key == caller.session,
        })
        .collect();
    Ok(axum::Json(Items { items }).into_response())
}

#[utoipa::path(delete, path = "/me/sessions", tag = "session", summary = "End all of one's sessions but this one",
    responses((status = 200, description = "How many ended", body = Ended)))]
async fn end_other_sessions(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let ended = auth::end_sessions_of(&app, &caller.tenant, &caller.user.id, Some(&caller.session)).await?;
    Ok(axum::Json(Ended { ended }).into_response())
}

#[utoipa::path(delete, path = "/me/sessions/{id}", tag = "session", summary = "End one of one's sessions",
    params(("id" = String, Path, description = "Session id (from `GET /me/sessions`)")),
    responses((status = 204, description = "Ended"), (status = 404, description = "Not one's own session", body = ErrorBody)))]
async fn end_my_session(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let sessions = auth::sessions_of(&app, &caller.tenant, &caller.user.id).await?;
    let Some((key, _)) = sessions.iter().find(|(k, _)| auth::session_id(k) == id) else {
        return Err(ApiError::not_found("session", "id").into());
    };
    Repo::new(app.deps.backends.config.as_ref(), PLATFORM).delete(auth::SESSION, key).await?;
    Ok(no_content())
}
