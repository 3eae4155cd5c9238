//! Enterprise registration, login, logout, and "who am I".

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{self, Unit, User};
use herald_core::error::{ApiError, ErrorKind};
use herald_core::model::Tenant;
use serde::Deserialize;
use serde_json::json;

use super::{Body, Result, Routes, created, text};
use crate::app::App;
use crate::auth::{self, Caller, Login, PERMISSIONS, PLATFORM, ROLE, Role};
use herald_core::docs::{Repo, new_id};

pub fn routes(r: Routes) -> Routes {
    r.add("POST", "/register", "Register an enterprise and its first administrator", register)
        .add("POST", "/login", "Log in with account and password", login)
        .add("POST", "/logout", "End the session", logout)
        .add("GET", "/me", "The caller, their tenant, permissions and data scope", me)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    enterprise_name: String,
    admin_login: String,
    admin_password: String,
    admin_name: String,
    #[serde(default)]
    admin_email: Option<String>,
    #[serde(default)]
    admin_mobile: Option<String>,
}

/// What the API shows of a user: never the password hash.
pub fn user_view(u: &User) -> serde_json::Value {
    let mut v = serde_json::to_value(u).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("password_hash");
    }
    v
}

async fn register(State(app): State<Arc<App>>, Body(b): Body<Register>) -> Result<Response> {
    let name = text("enterprise_name", &b.enterprise_name, 100)?;
    let admin_name = text("admin_name", &b.admin_name, 100)?;
    let login = auth::normalize_login(&b.admin_login);
    check_login_name("admin_login", &login)?;
    auth::check_password("admin_password", &b.admin_password)?;
    let tenant = format!("t{}", &new_id()[20..]);
    let user_id = new_id();
    let platform = Repo::new(app.config.as_ref(), PLATFORM);
    let claim = Login { tenant: tenant.clone(), user: user_id.clone(), ..Default::default() };
    if !platform.create(auth::LOGIN, &login, &claim).await? {
        return Err(ApiError::new(ErrorKind::Conflict, "login_taken", "this login name is taken").with_field("admin_login").into());
    }
    let now = herald_core::now_ms();
    app.config.upsert_tenant(&Tenant { id: tenant.clone(), name: name.clone(), currency: "CNY".into() }).await?;
    let repo = Repo::new(app.config.as_ref(), &tenant);
    let root = Unit { id: new_id(), name: name.clone(), parent: None, created_at: now };
    repo.put(directory::UNIT, &root.id, &root).await?;
    let role = Role {
        id: new_id(),
        name: "Administrator".into(),
        permissions: PERMISSIONS.iter().map(|p| p.0.to_string()).collect(),
        all_units: true,
        units: vec![],
        created_at: now,
    };
    repo.put(ROLE, &role.id, &role).await?;
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
    Ok(created(json!({"tenant": {"id": tenant, "name": name}, "user": user_view(&user)})))
}

pub fn check_login_name(field: &str, login: &str) -> std::result::Result<(), ApiError> {
    let ok = (3..=64).contains(&login.len())
        && login.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok { Ok(()) } else { Err(ApiError::invalid(field, "3–64 characters: letters, digits, . _ - @")) }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    login: String,
    password: String,
}

async fn login(State(app): State<Arc<App>>, Body(b): Body<LoginBody>) -> Result<Response> {
    let login = auth::normalize_login(&b.login);
    let platform = Repo::new(app.config.as_ref(), PLATFORM);
    let now = herald_core::now_ms();
    let mut record: Option<Login> = platform.get(auth::LOGIN, &login).await?;
    if let Some(r) = &record {
        if r.locked_until > now {
            return Err(locked(r.locked_until - now));
        }
    }
    let user: Option<User> = match &record {
        Some(r) => Repo::new(app.config.as_ref(), &r.tenant).get(directory::USER, &r.user).await?,
        None => None,
    };
    let ok = auth::verify_password(&b.password, user.as_ref().and_then(|u| u.password_hash.clone())).await;
    let (Some(r), Some(user), true) = (record.as_mut(), user, ok) else {
        if let Some(r) = record.as_mut() {
            let lock = auth::note_failure(r, now);
            platform.put(auth::LOGIN, &login, r).await?;
            if let Some(until) = lock {
                tracing::warn!(login = %login, "login locked after repeated failures");
                return Err(locked(until - now));
            }
        }
        return Err(ApiError::new(ErrorKind::Unauthenticated, "invalid_credentials", "wrong login or password").into());
    };
    if !r.failures.is_empty() {
        r.failures.clear();
        platform.put(auth::LOGIN, &login, r).await?;
    }
    let (token, expires_at) = auth::start_session(&app, &r.tenant, &user.id).await?;
    let cookie = auth::session_cookie(&app, &token, i64::from(app.cfg.session_idle_minutes) * 60);
    let body = json!({"token": token, "expires_at": rfc3339(expires_at), "user": user_view(&user)});
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?);
    Ok(resp)
}

fn locked(remaining_ms: i64) -> super::Failure {
    let secs = (remaining_ms / 1000).max(1);
    super::Failure(ApiError::new(
        ErrorKind::TooManyRequests,
        "locked",
        format!("too many failed logins; try again in {} minutes", (secs + 59) / 60),
    ))
}

pub fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response> {
    let (mut parts, _) = axum::http::Request::new(()).into_parts();
    parts.headers = headers;
    if let Some(token) = auth::request_token(&parts) {
        auth::end_session(&app, &token).await?;
    }
    let mut resp = axum::http::StatusCode::NO_CONTENT.into_response();
    let cookie = auth::session_cookie(&app, "", 0);
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?);
    Ok(resp)
}

async fn me(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let tenant = app.config.tenant(&caller.tenant).await?;
    let mut permissions: Vec<_> = caller.permissions.iter().cloned().collect();
    permissions.sort();
    let mut units: Vec<_> = caller.units.iter().cloned().collect();
    units.sort();
    Ok(axum::Json(json!({
        "user": user_view(&caller.user),
        "tenant": tenant,
        "permissions": permissions,
        "all_units": caller.all_units,
        "units": units,
    }))
    .into_response())
}
