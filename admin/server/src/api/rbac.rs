//! The app market (enabling an app; the messaging app's API keys) and roles
//! with function and data permissions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{UNIT, USER, Unit, User};
use herald_core::error::ApiError;
use herald_core::rbac::{Permission, ROLE, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::{self, Caller, Rights};
use crate::state::App;
use crate::web::{Body, Result, Routes, conflict, created, no_content, rfc3339, text};
use herald_core::docs::new_id;

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.add("GET", "/apps", "The app market with enablement records", list_apps)
        .add("POST", "/apps/{id}/enable", "Enable an app (messaging issues an API key, shown once)", enable_app)
        .add("GET", "/api-keys", "API keys of the messaging app (prefixes only)", list_keys)
        .add("POST", "/api-keys", "Issue an API key (shown once)", create_key)
        .add("DELETE", "/api-keys/{id}", "Revoke an API key", revoke_key)
        .add("GET", "/permissions", "The function-permission catalogue", permissions)
        .add("GET", "/roles", "Roles", list_roles)
        .add("POST", "/roles", "Create a role", create_role)
        .add("GET", "/roles/{id}", "One role", get_role)
        .add("PATCH", "/roles/{id}", "Edit a role", update_role)
        .add("DELETE", "/roles/{id}", "Delete a role no user holds", delete_role)
}

const APP: &str = "app";
const API_KEY: &str = "api_key";
/// (id, name, description)
const MARKET: &[(&str, &str, &str)] = &[
    ("messaging", "Messaging / 消息推送", "Send notifications over every installed channel; issues the API keys the gateway accepts"),
    ("tiered-push", "Tiered push / 分级推送", "Templates and actions that escalate across channels until acknowledged"),
    ("reports", "Reports / 报表", "Sends and spend by channel and day"),
];

#[derive(Serialize, Deserialize)]
struct Enablement {
    app: String,
    enabled_at: i64,
    enabled_by: String,
}

#[derive(Serialize, Deserialize)]
struct ApiKey {
    id: String,
    prefix: String,
    key_sha256: String,
    created_at: i64,
    created_by: String,
}

async fn list_apps(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::AppsView)?;
    let enabled: Vec<Enablement> = caller.repo(&app).list(APP).await?;
    let items: Vec<_> = MARKET
        .iter()
        .map(|(id, name, description)| {
            let e = enabled.iter().find(|e| e.app == *id);
            json!({
                "id": id, "name": name, "description": description, "enabled": e.is_some(),
                "enabled_at": e.and_then(|e| rfc3339(e.enabled_at)), "enabled_by": e.map(|e| &e.enabled_by),
            })
        })
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

async fn enable_app(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    if !MARKET.iter().any(|m| m.0 == id) {
        return Err(ApiError::not_found("app", "id").into());
    }
    let record = Enablement { app: id.clone(), enabled_at: herald_core::now_ms(), enabled_by: caller.user.name.clone() };
    if !caller.repo(&app).create(APP, &id, &record).await? {
        return Err(conflict("already_enabled", "this app is already enabled").into());
    }
    let mut out = json!({"app": id, "enabled_at": rfc3339(record.enabled_at), "enabled_by": record.enabled_by});
    if id == "messaging" {
        let (key_id, key) = issue_key(&app, &caller).await?;
        out["api_key"] = json!(key);
        out["api_key_id"] = json!(key_id);
    }
    tracing::info!(tenant = %caller.tenant, app = %id, "app enabled");
    Ok(created(out))
}

async fn issue_key(app: &App, caller: &Caller) -> std::result::Result<(String, String), ApiError> {
    let key = format!("hk_{}", hex::encode(rand::random::<[u8; 24]>()));
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let record = ApiKey {
        id: new_id(),
        prefix: key[..10].to_string(),
        key_sha256: hash.clone(),
        created_at: herald_core::now_ms(),
        created_by: caller.user.name.clone(),
    };
    caller.repo(app).put(API_KEY, &record.id, &record).await?;
    app.deps.backends.config.add_api_key(&caller.tenant, &hash).await?;
    Ok((record.id, key))
}

async fn list_keys(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::AppsView)?;
    let keys: Vec<ApiKey> = caller.repo(&app).list(API_KEY).await?;
    let items: Vec<_> =
        keys.iter().map(|k| json!({"id": k.id, "prefix": k.prefix, "created_at": rfc3339(k.created_at), "created_by": k.created_by})).collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

async fn create_key(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    if caller.repo(&app).get::<Enablement>(APP, "messaging").await?.is_none() {
        return Err(conflict("app_disabled", "enable the messaging app first").into());
    }
    let (id, key) = issue_key(&app, &caller).await?;
    Ok(created(json!({"id": id, "api_key": key})))
}

async fn revoke_key(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    let repo = caller.repo(&app);
    let key: ApiKey = repo.need(API_KEY, &id, "API key").await?;
    app.deps.backends.config.remove_api_key(&caller.tenant, &key.key_sha256).await?;
    repo.delete(API_KEY, &id).await?;
    Ok(no_content())
}

async fn permissions(caller: Caller) -> Result<Response> {
    let _ = caller;
    let items: Vec<_> = Permission::ALL.iter().map(|p| json!({"id": p.as_str(), "menu": p.menu(), "kind": p.kind()})).collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

async fn list_roles(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::RolesView)?;
    let roles: Vec<Role> = caller.repo(&app).list(ROLE).await?;
    Ok(axum::Json(json!({"items": roles, "total": roles.len()})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    name: Option<String>,
    permissions: Option<Vec<String>>,
    all_units: Option<bool>,
    units: Option<Vec<String>>,
}

/// Apply a body to a role. Every permission and unit it grants must be the
/// caller's own (403 naming the field otherwise).
async fn apply(app: &App, caller: &Caller, role: &mut Role, b: RoleBody) -> std::result::Result<(), ApiError> {
    if let Some(n) = &b.name {
        role.name = text("name", n, 100)?;
    }
    if let Some(mut ps) = b.permissions {
        for (i, p) in ps.iter().enumerate() {
            if Permission::parse(p).is_none() {
                return Err(ApiError::unknown("unknown_permission", &format!("permissions[{i}]"), format!("no permission {p}")));
            }
        }
        caller.may_grant("", &ps, false, &[])?;
        let mut seen = std::collections::HashSet::new();
        ps.retain(|p| seen.insert(p.clone()));
        role.permissions = ps;
    }
    if let Some(a) = b.all_units {
        caller.may_grant("", &[], a, &[])?;
        role.all_units = a;
    }
    if let Some(us) = b.units {
        let known: Vec<Unit> = caller.repo(app).list(UNIT).await?;
        for (i, u) in us.iter().enumerate() {
            if !known.iter().any(|k| &k.id == u) || !caller.sees_unit(u) {
                return Err(ApiError::unknown("unknown_unit", &format!("units[{i}]"), format!("no org unit {u}")));
            }
        }
        role.units = us;
    }
    Ok(())
}

async fn create_role(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<RoleBody>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    text("name", b.name.as_deref().unwrap_or(""), 100)?;
    let mut role =
        Role { id: new_id(), name: String::new(), permissions: vec![], all_units: false, units: vec![], created_at: herald_core::now_ms() };
    apply(&app, &caller, &mut role, b).await?;
    caller.repo(&app).put(ROLE, &role.id, &role).await?;
    Ok(created(&role))
}

async fn get_role(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::RolesView)?;
    let role: Role = caller.repo(&app).need(ROLE, &id, "role").await?;
    Ok(axum::Json(role).into_response())
}

async fn update_role(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<RoleBody>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    let mut role: Role = caller.repo(&app).need(ROLE, &id, "role").await?;
    // A role holding rights the caller lacks is not theirs to change.
    caller.covers("id", "this role", &Rights::of([&role]))?;
    apply(&app, &caller, &mut role, b).await?;
    let changed = role.clone();
    auth::keep_an_admin(&caller.repo(&app), |roles, _| {
        if let Some(r) = roles.iter_mut().find(|r| r.id == changed.id) {
            *r = changed;
        }
    })
    .await?;
    caller.repo(&app).put(ROLE, &role.id, &role).await?;
    Ok(axum::Json(role).into_response())
}

async fn delete_role(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    let repo = caller.repo(&app);
    let role: Role = repo.need(ROLE, &id, "role").await?;
    caller.covers("id", "this role", &Rights::of([&role]))?;
    let users: Vec<User> = repo.list(USER).await?;
    let holders = users.iter().filter(|u| u.roles.contains(&id)).count();
    if holders > 0 {
        return Err(conflict("in_use", format!("{holders} users hold this role")).into());
    }
    repo.delete(ROLE, &id).await?;
    Ok(no_content())
}
