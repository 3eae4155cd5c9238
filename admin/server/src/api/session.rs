//! Enterprise registration, login, logout, and "who am I".

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{self, Unit, User};
use herald_core::error::{ApiError, ErrorKind};
use herald_core::model::Tenant;
use herald_core::rbac::{Permission, ROLE, Role};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, Caller, Login, PLATFORM, check_current_password, check_login_name};
use crate::state::App;
use crate::web::{Body, Failure, Result, Routes, created, no_content, rfc3339, text, user_view};
use herald_core::docs::{Repo, new_id};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.add("POST", "/register", "Register an enterprise and its first administrator", register)
        .add("POST", "/login", "Log in with account and password", login)
        .add("POST", "/logout", "End the session", logout)
        .add("GET", "/me", "The caller, their tenant, permissions and data scope", me)
        .add("POST", "/me/password", "Change one's own password (ends one's other sessions)", change_password)
        .add("GET", "/me/sessions", "One's own live sessions", my_sessions)
        .add("DELETE", "/me/sessions", "End all of one's sessions but this one", end_other_sessions)
        .add("DELETE", "/me/sessions/{id}", "End one of one's sessions", end_my_session)
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
        return Err(ApiError::new(ErrorKind::Conflict, "login_taken", "this login name is taken").with_field("admin_login").into());
    }
    let now = herald_core::now_ms();
    app.deps.backends.config.upsert_tenant(&Tenant { id: tenant.clone(), name: name.clone(), currency: "CNY".into() }).await?;
    let repo = Repo::new(app.deps.backends.config.as_ref(), &tenant);
    let root = Unit { id: new_id(), name: name.clone(), parent: None, created_at: now };
    repo.put(directory::UNIT, &root.id, &root).await?;
    let role = Role {
        id: new_id(),
        name: "Administrator".into(),
        permissions: Permission::ALL.iter().map(|p| p.as_str().to_string()).collect(),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    login: String,
    password: String,
}

async fn login(State(app): State<Arc<App>>, headers: HeaderMap, Body(b): Body<LoginBody>) -> Result<Response> {
    let login = auth::normalize_login(&b.login);
    if login.is_empty() || login.len() > 256 {
        return Err(ApiError::invalid("login", "give your login name").into());
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
        return Err(ApiError::new(ErrorKind::Unauthenticated, "invalid_credentials", "wrong login or password").into());
    };
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let (token, expires_at) = auth::start_session(&app, &r.tenant, &user.id, agent).await?;
    let cookie = auth::session_cookie(&app, &token, i64::from(app.cfg.session_idle_minutes) * 60);
    let body = json!({"token": token, "expires_at": rfc3339(expires_at), "user": user_view(&user)});
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?);
    Ok(resp)
}

/// 429 with `Retry-After`; the same for every locked login name, known or not.
fn locked(remaining_ms: i64) -> Response {
    let secs = (remaining_ms / 1000).max(1);
    let err = ApiError::new(ErrorKind::TooManyRequests, "locked", format!("too many failed logins; try again in {} minutes", (secs + 59) / 60))
        .with_field("login");
    let mut resp = Failure(err).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

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

async fn me(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let tenant = app.deps.backends.config.tenant(&caller.tenant).await?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change_password(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<PasswordChange>) -> Result<Response> {
    check_current_password(&caller, "current_password", Some(&b.current_password)).await?;
    auth::check_password("new_password", &b.new_password, caller.user.login.as_deref(), &[caller.user.name.as_str()])?;
    let hash = auth::hash_password(&b.new_password).await?;
    caller
        .repo(&app)
        .update::<User>(directory::USER, &caller.user.id, |u| {
            u.password_hash = Some(hash.clone());
            Ok(())
        })
        .await?;
    let ended = auth::end_sessions_of(&app, &caller.tenant, &caller.user.id, Some(&caller.session)).await?;
    tracing::info!(tenant = %caller.tenant, user = %caller.user.id, ended, "password changed");
    Ok(no_content())
}

async fn my_sessions(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let mut sessions = auth::sessions_of(&app, &caller.tenant, &caller.user.id).await?;
    sessions.sort_by_key(|(_, s)| std::cmp::Reverse(s.created_at));
    let items: Vec<_> = sessions
        .iter()
        .map(|(key, s)| {
            json!({"id": auth::session_id(key), "created_at": rfc3339(s.created_at), "expires_at": rfc3339(s.expires_at),
                   "user_agent": s.user_agent, "current": *key == caller.session})
        })
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

async fn end_other_sessions(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let ended = auth::end_sessions_of(&app, &caller.tenant, &caller.user.id, Some(&caller.session)).await?;
    Ok(axum::Json(json!({"ended": ended})).into_response())
}

async fn end_my_session(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let sessions = auth::sessions_of(&app, &caller.tenant, &caller.user.id).await?;
    let Some((key, _)) = sessions.iter().find(|(k, _)| auth::session_id(k) == id) else {
        return Err(ApiError::not_found("session", "id").into());
    };
    Repo::new(app.deps.backends.config.as_ref(), PLATFORM).delete(auth::SESSION, key).await?;
    Ok(no_content())
}
