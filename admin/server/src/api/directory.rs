//! The directory (通讯录): the org tree and its users, within the caller's data scope.

use herald_core::doc_query::DocFilter;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{self, UNIT, USER, Unit, User};
use herald_core::error::ErrorBody;
use herald_core::error::{ApiError, ErrorKind};
use herald_core::rbac::{Permission, ROLE, Reach, Rights, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::api::schema;
use crate::auth::{self, Caller, Login, PLATFORM, check_current_password, check_login_name};
use crate::state::App;
use crate::web::{Body, Ended, Items, ListQuery, Page, Query, Result, Routes, Sortable, conflict, created, creating, no_content, text, user_view};
use herald_core::docs::{Repo, new_id};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(list_units, create_unit))
        .routes(routes!(update_unit, delete_unit))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(end_user_sessions))
        .routes(routes!(reset_password))
}

/// Root-to-unit path of ids.
fn path_of(units: &[Unit], id: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = Some(id.to_string());
    while let Some(c) = cur {
        if out.contains(&c) {
            break;
        }
        cur = units.iter().find(|u| u.id == c).and_then(|u| u.parent.clone());
        out.push(c);
    }
    out.reverse();
    out
}

/// A unit with its place in the tree.
#[derive(Serialize, ToSchema)]
struct UnitView {
    id: String,
    name: String,
    /// Null for the root.
    parent: Option<String>,
    /// Ids from the root to this unit.
    path: Vec<String>,
}

#[utoipa::path(get, path = "/units", tag = "directory", summary = "Org units in the caller's data scope",
    description = "Needs `directory.view`.", responses((status = 200, description = "Every unit the caller sees", body = Items<UnitView>)))]
async fn list_units(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryView)?;
    let units: Vec<Unit> = caller.repo(&app).list(UNIT).await?;
    let items: Vec<_> = units
        .iter()
        .filter(|u| scope.sees(&u.id))
        .map(|u| UnitView { id: u.id.clone(), name: u.name.clone(), parent: u.parent.clone(), path: path_of(&units, &u.id) })
        .collect();
    Ok(axum::Json(Items { items }).into_response())
}

/// A unit in the data scope of the operation, or 404.
async fn visible_unit(app: &App, caller: &Caller, scope: &Reach, id: &str, field: &str) -> std::result::Result<Unit, ApiError> {
    let unit: Option<Unit> = caller.repo(app).get(UNIT, id).await?;
    unit.filter(|u| scope.sees(&u.id)).ok_or_else(|| ApiError::not_found("org unit", field))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Operations", "parent": "01J9Z8Q4K0"}))]
struct NewUnit {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: String,
    /// Parent unit id.
    parent: String,
}

#[utoipa::path(post, path = "/units", tag = "directory", summary = "Create a child unit", description = "Needs `directory.edit`.",
    request_body = NewUnit, responses((status = 201, description = "Created", body = schema::Unit)))]
async fn create_unit(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<NewUnit>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryEdit)?;
    let name = text("name", &b.name, 100)?;
    let parent = visible_unit(&app, &caller, scope, &b.parent, "parent").await?;
    let unit = Unit { id: new_id(), name, parent: Some(parent.id), created_at: herald_core::now_ms() };
    caller.repo(&app).put(UNIT, &unit.id, &unit).await?;
    Ok(created(&unit))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UnitPatch {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: Option<String>,
    /// Move under this unit (not under itself or its own subunits; the root cannot move).
    parent: Option<String>,
}

#[utoipa::path(patch, path = "/units/{id}", tag = "directory", summary = "Rename or move a unit", description = "Needs `directory.edit`.",
    params(("id" = String, Path, description = "Unit id")), request_body = UnitPatch,
    responses((status = 200, description = "The unit", body = schema::Unit)))]
async fn update_unit(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<UnitPatch>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryEdit)?;
    let mut unit = visible_unit(&app, &caller, scope, &id, "id").await?;
    if let Some(n) = &b.name {
        unit.name = text("name", n, 100)?;
    }
    if let Some(p) = &b.parent {
        if unit.parent.is_none() {
            return Err(ApiError::invalid("parent", herald_core::msg!("dir.root_move")).into());
        }
        let target = visible_unit(&app, &caller, scope, p, "parent").await?;
        let all: Vec<Unit> = caller.repo(&app).list(UNIT).await?;
        if directory::subtree(&all, &unit.id).contains(&target.id) {
            return Err(ApiError::invalid("parent", herald_core::msg!("dir.move_under_itself")).into());
        }
        unit.parent = Some(target.id);
    }
    caller.repo(&app).put(UNIT, &unit.id, &unit).await?;
    Ok(axum::Json(&unit).into_response())
}

#[utoipa::path(delete, path = "/units/{id}", tag = "directory", summary = "Delete an empty unit",
    description = "Needs `directory.edit`. The root cannot be deleted.", params(("id" = String, Path, description = "Unit id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`not_empty` (subunits or users) or `root`", body = ErrorBody)))]
async fn delete_unit(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryEdit)?;
    let unit = visible_unit(&app, &caller, scope, &id, "id").await?;
    if unit.parent.is_none() {
        return Err(conflict("root", herald_core::msg!("dir.root_delete")).into());
    }
    let repo = caller.repo(&app);
    let units: Vec<Unit> = repo.list(UNIT).await?;
    let users: Vec<User> = repo.list(USER).await?;
    let children = units.iter().filter(|u| u.parent.as_deref() == Some(&id)).count();
    let members = users.iter().filter(|u| u.unit == id).count();
    if children + members > 0 {
        return Err(conflict("not_empty", herald_core::msg!("dir.not_empty", children = children, members = members)).into());
    }
    repo.delete(UNIT, &id).await?;
    Ok(no_content())
}

/// `/users` sorts by these (`sort`); default by name.
const USER_SORTS: Sortable =
    &[("name", "name"), ("login", "login"), ("mobile", "mobile"), ("email", "email"), ("unit", "unit"), ("created_at", "created_at")];

#[utoipa::path(get, path = "/users", tag = "directory", summary = "Search users (q, unit subtree)",
    description = "Needs `directory.view`. `q` matches name, login, mobile and e-mail; `unit` includes its subtree. \
        Paged, filtered and sorted by the store. `sort`: name (the default), login, mobile, email, unit or created_at.", params(ListQuery),
    responses((status = 200, description = "One page", body = Page<schema::User>)))]
async fn list_users(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryView)?;
    let repo = caller.repo(&app);
    let in_unit = match q.unit.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => {
            let mut units: Vec<String> = directory::subtree(&repo.list::<Unit>(UNIT).await?, u).into_iter().collect();
            units.sort();
            Some(DocFilter::In { field: "unit".into(), values: units.into_iter().map(Into::into).collect() })
        }
        None => None,
    };
    let query =
        q.docs(USER_SORTS, ("name", false), vec![scope.filter("unit"), in_unit, ListQuery::contains(&q.q, &["name", "login", "mobile", "email"])])?;
    let page: Page<User> = q.page_docs(&repo, USER, &query).await?;
    Ok(axum::Json(Page { items: page.items.iter().map(user_view).collect(), total: page.total }).into_response())
}

/// A user to create, or the fields to change (absent fields are kept).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Bob Chen", "mobile": "+8613800000001", "email": "bob@example.com", "unit": "01J9Z8Q4K0", "roles": []}))]
struct UserBody {
    /// Required on creation.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: Option<String>,
    /// A login name for the console (needs a password).
    login: Option<String>,
    /// Changing another user's needs `users.password`; one's own needs `current_password`.
    password: Option<String>,
    mobile: Option<String>,
    email: Option<String>,
    wecom_id: Option<String>,
    dingtalk_id: Option<String>,
    welink_id: Option<String>,
    time_zone: Option<String>,
    /// Org unit id; required on creation.
    unit: Option<String>,
    /// Role ids (needs `roles.manage`).
    roles: Option<Vec<String>>,
    /// Needed to change one's own password or login.
    current_password: Option<String>,
}

fn opt(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Apply a body to a user (create, or edit when `existing`); claims a new
/// login name. True when the password or the login changed on an existing
/// user (their other sessions are then ended).
async fn apply(app: &App, caller: &Caller, scope: &Reach, user: &mut User, b: UserBody, existing: bool) -> std::result::Result<bool, ApiError> {
    if let Some(n) = &b.name {
        user.name = text("name", n, 100)?;
    }
    if let Some(unit) = &b.unit {
        user.unit = visible_unit(app, caller, scope, unit, "unit").await?.id;
    }
    if let Some(m) = b.mobile {
        let m = opt(Some(m));
        if let Some(v) = &m
            && (!v.chars().all(|c| c.is_ascii_digit() || "+- ".contains(c)) || v.len() > 20)
        {
            return Err(ApiError::invalid("mobile", herald_core::msg!("dir.mobile_rule")));
        }
        user.mobile = m;
    }
    if let Some(e) = b.email {
        let e = opt(Some(e));
        if let Some(v) = &e
            && (!v.contains('@') || v.len() > 254 || v.contains(char::is_whitespace))
        {
            return Err(ApiError::invalid("email", herald_core::msg!("dir.email_rule")));
        }
        user.email = e;
    }
    for (field, value, slot) in [
        ("wecom_id", b.wecom_id, &mut user.wecom_id),
        ("dingtalk_id", b.dingtalk_id, &mut user.dingtalk_id),
        ("welink_id", b.welink_id, &mut user.welink_id),
        ("time_zone", b.time_zone, &mut user.time_zone),
    ] {
        if let Some(v) = value {
            if v.len() > 128 {
                return Err(ApiError::invalid(field, herald_core::msg!("field.at_most_128")));
            }
            *slot = opt(Some(v));
        }
    }
    if let Some(roles) = b.roles {
        caller.require(Permission::RolesManage).map_err(|e| e.with_field("roles"))?;
        let known: Vec<Role> = caller.repo(app).list(ROLE).await?;
        for (i, r) in roles.iter().enumerate() {
            let Some(role) = known.iter().find(|k| &k.id == r) else {
                return Err(ApiError::unknown("unknown_role", &format!("roles[{i}]"), herald_core::msg!("rbac.unknown_role", role = r)));
            };
            // Only roles whose rights the caller holds can be given (or kept).
            caller.covers(&format!("roles[{i}]"), herald_core::msg!("rbac.the_role", name = role.name), &Rights::of([role]))?;
        }
        if existing && roles != user.roles {
            let id = user.id.clone();
            auth::keep_an_admin(&caller.repo(app), |_, users| {
                if let Some(u) = users.iter_mut().find(|u| u.id == id) {
                    u.roles = roles.clone();
                }
            })
            .await
            .map_err(|e| e.with_field("roles"))?;
        }
        user.roles = roles;
    }
    let new_login = opt(b.login).map(|l| auth::normalize_login(&l));
    let renamed = new_login.is_some() && new_login != user.login;
    // Credentials of an existing user: one's own with the current password,
    // anyone else's only with users.password.
    if existing && (b.password.is_some() || renamed) {
        if user.id == caller.user.id {
            check_current_password(caller, "current_password", b.current_password.as_deref()).await?;
        } else {
            let field = if b.password.is_some() { "password" } else { "login" };
            caller.require(Permission::UsersPassword).map_err(|e| e.with_field(field))?;
        }
    }
    if let Some(p) = &b.password {
        let login = new_login.as_deref().or(user.login.as_deref());
        auth::check_password("password", p, login, &[user.name.as_str()])?;
        user.password_hash = Some(auth::hash_password(p).await?);
        if user.id == caller.user.id {
            user.must_change_password = false;
        }
    }
    if renamed && b.password.is_none() && user.password_hash.is_none() {
        return Err(ApiError::invalid("password", herald_core::msg!("dir.password_needed")));
    }
    if let Some(l) = &new_login
        && renamed
    {
        check_login_name("login", l)?;
        let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
        let claim = Login { tenant: caller.tenant.clone(), user: user.id.clone() };
        if !platform.create(auth::LOGIN, l, &claim).await? {
            return Err(ApiError::new(ErrorKind::Conflict, "login_taken", herald_core::msg!("login.taken")).with_field("login"));
        }
        if let Some(old) = user.login.replace(l.clone()) {
            platform.delete(auth::LOGIN, &old).await?;
        }
    }
    Ok(existing && (b.password.is_some() || renamed))
}

creating!(NewUser, UserBody, "name", "unit");

#[utoipa::path(post, path = "/users", tag = "directory", summary = "Create a user", description = "Needs `directory.edit`.",
    request_body = NewUser, responses((status = 201, description = "Created", body = schema::User)))]
async fn create_user(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<UserBody>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryEdit)?;
    let name = text("name", b.name.as_deref().unwrap_or(""), 100)?;
    let unit = b.unit.clone().ok_or_else(|| ApiError::invalid("unit", herald_core::msg!("dir.unit_required")))?;
    let mut user = User { id: new_id(), name, unit, created_at: herald_core::now_ms(), ..Default::default() };
    let roles_given = b.roles.as_ref().is_some_and(|r| !r.is_empty());
    let b = if roles_given { b } else { UserBody { roles: None, ..b } };
    apply(&app, &caller, scope, &mut user, b, false).await?;
    caller.repo(&app).put(USER, &user.id, &user).await?;
    Ok(created(user_view(&user)))
}

/// A user in the data scope of the operation, or 404.
async fn visible_user(app: &App, caller: &Caller, scope: &Reach, id: &str) -> std::result::Result<User, ApiError> {
    let user: Option<User> = caller.repo(app).get(USER, id).await?;
    user.filter(|u| scope.sees(&u.unit)).ok_or_else(|| ApiError::not_found("user", "id"))
}

#[utoipa::path(get, path = "/users/{id}", tag = "directory", summary = "One user", description = "Needs `directory.view`.",
    params(("id" = String, Path, description = "User id")), responses((status = 200, description = "The user", body = schema::User)))]
async fn get_user(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryView)?;
    Ok(axum::Json(user_view(&visible_user(&app, &caller, scope, &id).await?)).into_response())
}

/// Refuse acting on a user who holds rights the caller lacks (oneself excepted).
async fn check_covers(app: &App, caller: &Caller, user: &User) -> std::result::Result<(), ApiError> {
    if user.id == caller.user.id {
        return Ok(());
    }
    let roles: Vec<Role> = caller.repo(app).list(ROLE).await?;
    caller.covers("id", herald_core::msg!("rbac.this_user"), &Rights::of_user(user, &roles))
}

/// Needs `directory.edit`. A changed password or login ends that user's
/// sessions (one's own current session excepted).
#[utoipa::path(patch, path = "/users/{id}", tag = "directory", summary = "Edit a user",
    params(("id" = String, Path, description = "User id")), request_body = UserBody,
    responses((status = 200, description = "The user", body = schema::User)))]
async fn update_user(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<UserBody>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryEdit)?;
    let mut user = visible_user(&app, &caller, scope, &id).await?;
    check_covers(&app, &caller, &user).await?;
    let credentials = apply(&app, &caller, scope, &mut user, b, true).await?;
    caller.repo(&app).put(USER, &user.id, &user).await?;
    if credentials {
        let keep = (user.id == caller.user.id).then_some(caller.session.as_str());
        let ended = auth::end_sessions_of(&app, &caller.tenant, &user.id, keep).await?;
        tracing::info!(tenant = %caller.tenant, user = %user.id, ended, "password or login changed");
    }
    Ok(axum::Json(user_view(&user)).into_response())
}

#[utoipa::path(delete, path = "/users/{id}", tag = "directory", summary = "Delete a user", description = "Needs `directory.edit`.",
    params(("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`self` or `last_admin`", body = ErrorBody)))]
async fn delete_user(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryEdit)?;
    let user = visible_user(&app, &caller, scope, &id).await?;
    if user.id == caller.user.id {
        return Err(conflict("self", herald_core::msg!("dir.delete_self")).into());
    }
    check_covers(&app, &caller, &user).await?;
    auth::keep_an_admin(&caller.repo(&app), |_, users| users.retain(|u| u.id != id)).await?;
    if let Some(l) = &user.login {
        Repo::new(app.deps.backends.config.as_ref(), PLATFORM).delete(auth::LOGIN, l).await?;
    }
    caller.repo(&app).delete(USER, &user.id).await?;
    auth::end_sessions_of(&app, &caller.tenant, &user.id, None).await?;
    Ok(no_content())
}

#[utoipa::path(delete, path = "/users/{id}/sessions", tag = "directory", summary = "End every session of a user",
    description = "Needs `directory.edit` and the user's rights within the caller's.", params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "How many ended", body = Ended)))]
async fn end_user_sessions(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::DirectoryEdit)?;
    let user = visible_user(&app, &caller, scope, &id).await?;
    check_covers(&app, &caller, &user).await?;
    let keep = (user.id == caller.user.id).then_some(caller.session.as_str());
    let ended = auth::end_sessions_of(&app, &caller.tenant, &user.id, keep).await?;
    Ok(axum::Json(Ended { ended }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    /// 10–256 bytes, not built from the login name, zxcvbn score ≥ 2.
    new_password: String,
}

/// An administrator sets another user's password: needs `users.password`, the
/// user in the caller's data scope and rights within the caller's. Ends every
/// session of that user; they are asked to choose their own at the next login.
#[utoipa::path(post, path = "/users/{id}/password", tag = "directory", summary = "Reset a user's password",
    description = "Needs `users.password`. Not for oneself (use `POST /me/password`).",
    params(("id" = String, Path, description = "User id")), request_body = PasswordReset,
    responses((status = 200, description = "Reset; how many sessions of the user ended", body = Ended),
              (status = 404, description = "No such user in the caller's scope", body = ErrorBody),
              (status = 409, description = "`self`, or `no_login` for a user who does not log in", body = ErrorBody)))]
async fn reset_password(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<PasswordReset>) -> Result<Response> {
    let scope = caller.require(Permission::UsersPassword)?;
    let user = visible_user(&app, &caller, scope, &id).await?;
    if user.id == caller.user.id {
        return Err(conflict("self", herald_core::msg!("dir.reset_self")).with_field("id").into());
    }
    check_covers(&app, &caller, &user).await?;
    let Some(login) = user.login.as_deref() else {
        return Err(conflict("no_login", herald_core::msg!("dir.no_login")).with_field("id").into());
    };
    auth::check_password("new_password", &b.new_password, Some(login), &[user.name.as_str()])?;
    let hash = auth::hash_password(&b.new_password).await?;
    caller
        .repo(&app)
        .update::<User>(USER, &user.id, |u| {
            u.password_hash = Some(hash.clone());
            u.must_change_password = true;
            Ok(())
        })
        .await?
        .ok_or_else(|| ApiError::not_found("user", "id"))?;
    let ended = auth::end_sessions_of(&app, &caller.tenant, &user.id, None).await?;
    tracing::info!(tenant = %caller.tenant, user = %user.id, by = %caller.user.id, ended, "password reset by an administrator");
    Ok(axum::Json(Ended { ended }).into_response())
}
