//! The app market (enabling and disabling an app, which gates its
//! permissions; the messaging app's API keys) and roles: a description, and
//! function permissions (app → menu → button) each with its data scope.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{UNIT, USER, Unit, User};
use herald_core::error::ApiError;
use herald_core::error::ErrorBody;
use herald_core::rbac::{APP, Enablement, Grant, Permission, ROLE, Role, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::api::schema;
use crate::auth::{self, Caller};
use crate::state::App;
use crate::web::{Body, Items, Page, Result, Routes, conflict, created, creating, no_content, text};
use herald_core::docs::new_id;
use herald_core::rbac::Rights;

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(list_apps))
        .routes(routes!(enable_app))
        .routes(routes!(disable_app))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(permissions))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
}

const API_KEY: &str = "api_key";
/// (id, name, description)
const MARKET: &[(&str, &str, &str)] = &[
    ("messaging", "Messaging / 消息推送", "Send notifications over every installed channel; issues the API keys the gateway accepts"),
    ("tiered-push", "Tiered push / 分级推送", "Templates and actions that escalate across channels until acknowledged"),
    ("reports", "Reports / 报表", "Sends and spend by channel and day"),
];

/// The market's entry of an app id, or 404 naming `id`.
fn market(id: &str) -> std::result::Result<&'static str, ApiError> {
    MARKET.iter().find(|m| m.0 == id).map(|m| m.0).ok_or_else(|| ApiError::not_found("app", "id"))
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
    description = "Needs `apps.manage`. A new tenant starts with every app enabled; an app disabled since grants nothing of its menus (403 `app_disabled`) until enabled again.", params(("id" = String, Path, description = "messaging, tiered-push or reports")),
    responses((status = 201, description = "Enabled", body = Enabled,
                example = json!({"app": "messaging", "enabled_at": 1795627116051u64, "enabled_by": "Ann Lee", "api_key": "hk_3f1c…", "api_key_id": "01J9Z8Q4K5"})),
              (status = 409, description = "`already_enabled`", body = ErrorBody)))]
async fn enable_app(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    market(&id)?;
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

/// Needs `apps.manage`. Its menus are hidden and its operations answer 403
/// `app_disabled` until it is enabled again; its data and API keys are kept.
#[utoipa::path(post, path = "/apps/{id}/disable", tag = "apps", summary = "Disable an app (its menus and operations are refused)",
    params(("id" = String, Path, description = "messaging, tiered-push or reports")),
    responses((status = 204, description = "Disabled"), (status = 409, description = "`not_enabled`", body = ErrorBody)))]
async fn disable_app(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::AppsManage)?;
    let id = market(&id)?;
    if !caller.repo(&app).delete(APP, id).await? {
        return Err(conflict("not_enabled", herald_core::msg!("app.not_enabled")).into());
    }
    tracing::info!(tenant = %caller.tenant, app = %id, by = %caller.user.name, "app disabled");
    Ok(no_content())
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

/// A function permission: in an app, under a menu, the menu itself or one of its buttons.
#[derive(Serialize, ToSchema)]
struct PermissionView {
    #[schema(example = "push.send")]
    id: &'static str,
    /// base (always on), messaging, tiered-push or reports.
    #[schema(example = "messaging")]
    app: &'static str,
    /// directory, apps, roles, push, tiered, accounts, cost, reports.
    menu: &'static str,
    #[schema(pattern = "^(menu|button)$")]
    kind: &'static str,
    /// Its data scope limits the org units it lists and acts on (directory, pushes, reports).
    scoped: bool,
}

#[utoipa::path(get, path = "/permissions", tag = "roles", summary = "The function-permission catalogue (app → menu → button)",
    description = "Grouped by app, then menu: each menu's `menu` permission first, then its buttons.",
    responses((status = 200, description = "Every permission", body = Items<PermissionView>)))]
async fn permissions(caller: Caller) -> Result<Response> {
    let _ = caller;
    let mut ps = Permission::ALL.to_vec();
    let app_rank = |p: &Permission| [herald_core::rbac::BASE_APP].into_iter().chain(herald_core::rbac::APPS).position(|a| a == p.app());
    ps.sort_by_key(|p| app_rank(p));
    let items: Vec<_> =
        ps.iter().map(|p| PermissionView { id: p.as_str(), app: p.app(), menu: p.menu(), kind: p.kind(), scoped: p.scoped() }).collect();
    Ok(axum::Json(Items { items }).into_response())
}

#[utoipa::path(get, path = "/roles", tag = "roles", summary = "Roles", description = "Needs `roles.view`.",
    responses((status = 200, description = "Every role", body = Page<schema::Role>)))]
async fn list_roles(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::RolesView)?;
    let roles: Vec<Role> = caller.repo(&app).list(ROLE).await?;
    Ok(axum::Json(Page { total: roles.len(), items: roles }).into_response())
}

/// A role to create, or the fields to change. Only permissions the caller
/// holds, each on at most the caller's own data scope for it, can be given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Operators", "description": "华东区推送运营",
    "permissions": [{"id": "push.view", "all_units": false, "units": ["01J9Z8Q4K0"]}, {"id": "push.edit", "all_units": false, "units": ["01J9Z8Q4K0"]}]}))]
struct RoleBody {
    /// Required on creation.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: Option<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Function permissions, each with its data scope (see `GET /permissions`).
    /// A plain id takes the body's `all_units`/`units`.
    permissions: Option<Vec<GrantBody>>,
    /// The data scope of plain permission ids; given without `permissions`,
    /// it becomes the scope of every permission the role holds.
    all_units: Option<bool>,
    /// Org unit ids (with their subtrees), as `all_units`.
    units: Option<Vec<String>>,
}

/// A permission to grant.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum GrantBody {
    /// A permission id, on the body's `all_units`/`units`.
    Id(String),
    Scoped(ScopedGrant),
}

/// A permission with its data scope; with neither `all_units` nor `units`,
/// the caller's own scope for it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScopedGrant {
    #[schema(example = "push.view")]
    id: String,
    all_units: Option<bool>,
    /// Org unit ids (with their subtrees).
    units: Option<Vec<String>>,
}

/// Every unit given must exist in the tenant and be within some data scope
/// of the caller (422 `unknown_unit` naming `field[j]` otherwise).
fn known_units(caller: &Caller, tree: &[Unit], field: &str, units: &[String]) -> std::result::Result<(), ApiError> {
    for (j, u) in units.iter().enumerate() {
        if !tree.iter().any(|k| &k.id == u) || !caller.access.sees_any(u) {
            return Err(ApiError::unknown("unknown_unit", &format!("{field}[{j}]"), herald_core::msg!("rbac.unknown_unit", unit = u)));
        }
    }
    Ok(())
}

/// Apply a body to a role. Every permission and scope it grants must be the
/// caller's own (403 naming the field otherwise).
async fn apply(app: &App, caller: &Caller, role: &mut Role, b: RoleBody) -> std::result::Result<(), ApiError> {
    if let Some(n) = &b.name {
        role.name = text("name", n, 100)?;
    }
    if let Some(d) = &b.description {
        let d = d.trim();
        if d.chars().count() > 500 {
            return Err(ApiError::invalid("description", herald_core::msg!("field.too_long", field = "description", max = 500)));
        }
        role.description = d.to_string();
    }
    let tree: Vec<Unit> = caller.repo(app).list(UNIT).await?;
    let body_scope = Scope { all_units: b.all_units.unwrap_or(false), units: b.units.clone().unwrap_or_default() };
    known_units(caller, &tree, "units", &body_scope.units)?;
    match b.permissions {
        Some(ps) => {
            // (id, scope, field of the permission, of its all_units, of its units)
            let mut wanted = vec![];
            for (i, g) in ps.into_iter().enumerate() {
                let f = format!("permissions[{i}]");
                let (id, scope, fields) = match g {
                    GrantBody::Id(id) => (id, body_scope.clone(), (f.clone(), "all_units".to_string(), "units".to_string())),
                    GrantBody::Scoped(s) => {
                        let scope = match (s.all_units, s.units) {
                            (None, None) => caller.access.rights().0.get(&s.id).cloned().unwrap_or_default(),
                            (a, u) => Scope { all_units: a.unwrap_or(false), units: u.unwrap_or_default() },
                        };
                        known_units(caller, &tree, &format!("{f}.units"), &scope.units)?;
                        (s.id, scope, (f.clone(), format!("{f}.all_units"), format!("{f}.units")))
                    }
                };
                if Permission::parse(&id).is_none() {
                    return Err(ApiError::unknown("unknown_permission", &fields.0, herald_core::msg!("rbac.unknown_permission", permission = id)));
                }
                wanted.push((id, scope, fields));
            }
            let mut grants: Vec<Grant> = vec![];
            for (id, scope, (field, field_all, field_units)) in wanted {
                caller.access.may_grant(&field, &field_all, &field_units, &id, &scope)?;
                match grants.iter_mut().find(|g| g.id == id) {
                    Some(g) => {
                        let mut merged = g.scope();
                        merged.merge(&scope);
                        (g.all_units, g.units) = (merged.all_units, merged.units);
                    }
                    None => grants.push(Grant { id, all_units: scope.all_units, units: scope.units }),
                }
            }
            role.permissions = grants;
        }
        // The first format's scope change: every permission of the role takes it.
        None if b.all_units.is_some() || b.units.is_some() => {
            for g in &mut role.permissions {
                caller.access.may_grant("permissions", "all_units", "units", &g.id, &body_scope)?;
                (g.all_units, g.units) = (body_scope.all_units, body_scope.units.clone());
            }
        }
        None => {}
    }
    Ok(())
}

creating!(NewRole, RoleBody, "name");

#[utoipa::path(post, path = "/roles", tag = "roles", summary = "Create a role", description = "Needs `roles.manage`.",
    request_body = NewRole, responses((status = 201, description = "Created", body = schema::Role)))]
async fn create_role(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<RoleBody>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    text("name", b.name.as_deref().unwrap_or(""), 100)?;
    let mut role = Role { id: new_id(), name: String::new(), description: String::new(), permissions: vec![], created_at: herald_core::now_ms() };
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
