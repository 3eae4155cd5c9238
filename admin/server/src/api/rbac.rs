//! The app market (enabling an app; the messaging app's API keys) and roles
//! with function and data permissions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{UNIT, USER, Unit, User};
use herald_core::error::ApiError;
use herald_core::error::ErrorBody;
use herald_core::rbac::{Permission, ROLE, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::api::schema;
use crate::auth::{self, Caller, Rights};
use crate::state::App;
use crate::web::{Body, Items, Page, Result, Routes, conflict, created, creating, no_content, text};
use herald_core::docs::new_id;

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(list_apps))
        .routes(routes!(enable_app))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(permissions))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
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

/// An app of the market and whether the tenant enabled it.
#[derive(Serialize, ToSchema)]
struct AppView {
    #[schema(example = "messaging")]
    id: &'static str,
    name: &'static str,
    description: &'static str,
    enabled: bool,
    enabled_at: Option<i64>,
    /// Name of the user who enabled it.
    enabled_by: Option<String>,
}

#[utoipa::path(get, path = "/apps", tag = "apps", summary = "The app market with enablement records", description = "Needs `apps.view`.",
    responses((status = 200, description = "messaging, tiered-push, reports", body = Items<AppView>)))]
async fn list_apps(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::AppsView)?;
    let enabled: Vec<Enablement> = caller.repo(&app).list(APP).await?;
    let items: Vec<_> = MARKET
        .iter()
        .map(|&(id, name, description)| {
            let e = enabled.iter().find(|e| e.app == id);
            AppView { id, name, description, enabled: e.is_some(), enabled_at: e.map(|e| e.enabled_at), enabled_by: e.map(|e| e.enabled_by.clone()) }
        })
        .collect();
    Ok(axum::Json(Items { items }).into_response())
}

/// An app just enabled; enabling `messaging` issues an API key, shown once.
#[derive(Serialize, ToSchema)]
struct Enabled {
    app: String,
    enabled_at: i64,
    enabled_by: String,
    /// Messaging only: the key the gateway accepts (`hk_…`), shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    api_key_id: Option<String>,
}

#[utoipa::path(post, path = "/apps/{id}/enable", tag = "apps", summary = "Enable an app (messaging issues an API key, shown once)",
    description = "Needs `apps.manage`.", params(("id" = String, Path, description = "messaging, tiered-push or reports")),
    responses((status = 201, description = "Enabled", body = Enabled,
                example = json!({"app": "messaging", "enabled_at": 1795627116051u64, "enabled_by": "Ann Lee", "api_key": "hk_3f1c…", "api_key_id": "01J9Z8Q4K5"})),
              (status = 409, description = "`already_enabled`", body = ErrorBody)))]
async fn enable_app(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    if !MARKET.iter().any(|m| m.0 == id) {
        return Err(ApiError::not_found("app", "id").into());
    }
    let record = Enablement { app: id.clone(), enabled_at: herald_core::now_ms(), enabled_by: caller.user.name.clone() };
    if !caller.repo(&app).create(APP, &id, &record).await? {
        return Err(conflict("already_enabled", herald_core::msg!("app.already_enabled")).into());
    }
    let mut out = Enabled { app: id.clone(), enabled_at: record.enabled_at, enabled_by: record.enabled_by, api_key: None, api_key_id: None };
    if id == "messaging" {
        let (key_id, key) = issue_key(&app, &caller).await?;
        (out.api_key, out.api_key_id) = (Some(key), Some(key_id));
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

#[derive(Serialize, ToSchema)]
struct KeyView {
    id: String,
    /// The key's first 10 characters.
    prefix: String,
    created_at: i64,
    created_by: String,
}

#[utoipa::path(get, path = "/api-keys", tag = "apps", summary = "API keys of the messaging app (prefixes only)", description = "Needs `apps.view`.",
    responses((status = 200, description = "The keys", body = Items<KeyView>)))]
async fn list_keys(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::AppsView)?;
    let keys: Vec<ApiKey> = caller.repo(&app).list(API_KEY).await?;
    let items: Vec<_> =
        keys.into_iter().map(|k| KeyView { id: k.id, prefix: k.prefix, created_at: k.created_at, created_by: k.created_by }).collect();
    Ok(axum::Json(Items { items }).into_response())
}

#[derive(Serialize, ToSchema)]
struct NewKey {
    id: String,
    /// `hk_…`, shown this once.
    api_key: String,
}

#[utoipa::path(post, path = "/api-keys", tag = "apps", summary = "Issue an API key (shown once)", description = "Needs `apps.manage`.",
    responses((status = 201, description = "Issued", body = NewKey), (status = 409, description = "`app_disabled`", body = ErrorBody)))]
async fn create_key(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    if caller.repo(&app).get::<Enablement>(APP, "messaging").await?.is_none() {
        return Err(conflict("app_disabled", herald_core::msg!("app.enable_messaging")).into());
    }
    let (id, key) = issue_key(&app, &caller).await?;
    Ok(created(NewKey { id, api_key: key }))
}

/// Needs `apps.manage`. The gateway stops accepting it within its cache TTL.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "apps", summary = "Revoke an API key", params(("id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked")))]
async fn revoke_key(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    let repo = caller.repo(&app);
    let key: ApiKey = repo.need(API_KEY, &id, "API key").await?;
    app.deps.backends.config.remove_api_key(&caller.tenant, &key.key_sha256).await?;
    repo.delete(API_KEY, &id).await?;
    Ok(no_content())
}

#[derive(Serialize, ToSchema)]
struct PermissionView {
    #[schema(example = "push.send")]
    id: &'static str,
    /// directory, apps, roles, push, tiered, accounts, cost, reports.
    menu: &'static str,
    #[schema(pattern = "^(menu|button)$")]
    kind: &'static str,
}

#[utoipa::path(get, path = "/permissions", tag = "roles", summary = "The function-permission catalogue",
    responses((status = 200, description = "Every permission", body = Items<PermissionView>)))]
async fn permissions(caller: Caller) -> Result<Response> {
    let _ = caller;
    let items: Vec<_> = Permission::ALL.iter().map(|p| PermissionView { id: p.as_str(), menu: p.menu(), kind: p.kind() }).collect();
    Ok(axum::Json(Items { items }).into_response())
}

#[utoipa::path(get, path = "/roles", tag = "roles", summary = "Roles", description = "Needs `roles.view`.",
    responses((status = 200, description = "Every role", body = Page<schema::Role>)))]
async fn list_roles(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::RolesView)?;
    let roles: Vec<Role> = caller.repo(&app).list(ROLE).await?;
    Ok(axum::Json(Page { total: roles.len(), items: roles }).into_response())
}

/// A role to create, or the fields to change. Only permissions, `all_units`
/// and units the caller holds can be given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Operators", "permissions": ["push.view", "push.edit", "push.send"], "all_units": false, "units": ["01J9Z8Q4K0"]}))]
struct RoleBody {
    /// Required on creation.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: Option<String>,
    /// Permission ids (see `GET /permissions`).
    permissions: Option<Vec<String>>,
    all_units: Option<bool>,
    /// Org unit ids (with their subtrees).
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
                return Err(ApiError::unknown(
                    "unknown_permission",
                    &format!("permissions[{i}]"),
                    herald_core::msg!("rbac.unknown_permission", permission = p),
                ));
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
                return Err(ApiError::unknown("unknown_unit", &format!("units[{i}]"), herald_core::msg!("rbac.unknown_unit", unit = u)));
            }
        }
        role.units = us;
    }
    Ok(())
}

creating!(NewRole, RoleBody, "name");

#[utoipa::path(post, path = "/roles", tag = "roles", summary = "Create a role", description = "Needs `roles.manage`.",
    request_body = NewRole, responses((status = 201, description = "Created", body = schema::Role)))]
async fn create_role(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<RoleBody>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    text("name", b.name.as_deref().unwrap_or(""), 100)?;
    let mut role =
        Role { id: new_id(), name: String::new(), permissions: vec![], all_units: false, units: vec![], created_at: herald_core::now_ms() };
    apply(&app, &caller, &mut role, b).await?;
    caller.repo(&app).put(ROLE, &role.id, &role).await?;
    Ok(created(&role))
}

#[utoipa::path(get, path = "/roles/{id}", tag = "roles", summary = "One role", description = "Needs `roles.view`.",
    params(("id" = String, Path, description = "Role id")), responses((status = 200, description = "The role", body = schema::Role)))]
async fn get_role(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::RolesView)?;
    let role: Role = caller.repo(&app).need(ROLE, &id, "role").await?;
    Ok(axum::Json(role).into_response())
}

#[utoipa::path(patch, path = "/roles/{id}", tag = "roles", summary = "Edit a role",
    description = "Needs `roles.manage` and every right the role holds.", params(("id" = String, Path, description = "Role id")),
    request_body = RoleBody,
    responses((status = 200, description = "The role", body = schema::Role), (status = 409, description = "`last_admin`", body = ErrorBody)))]
async fn update_role(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<RoleBody>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    let mut role: Role = caller.repo(&app).need(ROLE, &id, "role").await?;
    // A role holding rights the caller lacks is not theirs to change.
    caller.covers("id", herald_core::msg!("rbac.this_role"), &Rights::of([&role]))?;
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

#[utoipa::path(delete, path = "/roles/{id}", tag = "roles", summary = "Delete a role no user holds",
    description = "Needs `roles.manage` and every right the role holds.", params(("id" = String, Path, description = "Role id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`in_use`", body = ErrorBody)))]
async fn delete_role(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    let repo = caller.repo(&app);
    let role: Role = repo.need(ROLE, &id, "role").await?;
    caller.covers("id", herald_core::msg!("rbac.this_role"), &Rights::of([&role]))?;
    let users: Vec<User> = repo.list(USER).await?;
    let holders = users.iter().filter(|u| u.roles.contains(&id)).count();
    if holders > 0 {
        return Err(conflict("in_use", herald_core::msg!("rbac.role_in_use", holders = holders)).into());
    }
    repo.delete(ROLE, &id).await?;
    Ok(no_content())
}
