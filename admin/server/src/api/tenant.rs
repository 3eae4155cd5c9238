//! The tenant's own settings: the language Herald writes to it in (alert
//! e-mails, the names it gives: the first role, copies).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use herald_core::error::ErrorBody;
use herald_core::i18n::{Lang, SETTINGS, TENANT, TenantSettings};
use herald_core::rbac::Permission;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::state::App;
use crate::web::{Body, Result, Routes};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(settings, set_settings))
}

/// The tenant's language (`zh-CN` when never set).
pub async fn language(app: &App, tenant: &str) -> std::result::Result<Lang, herald_core::ApiError> {
    let repo = herald_core::docs::Repo::new(app.deps.backends.config.as_ref(), tenant);
    Ok(repo.get::<TenantSettings>(TENANT, SETTINGS).await?.unwrap_or_default().language)
}

#[utoipa::path(get, path = "/tenant/settings", tag = "session", summary = "The tenant's settings (its language)",
    description = "Any logged-in user.",
    responses((status = 200, description = "The settings", body = TenantSettings)))]
async fn settings(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    Ok(axum::Json(TenantSettings { language: language(&app, &caller.tenant).await? }).into_response())
}

/// Absent fields are kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"language": "en"}))]
struct SettingsBody {
    /// The language of the e-mails Herald writes (low-balance alerts) and of the names it gives.
    language: Option<Lang>,
}

#[utoipa::path(put, path = "/tenant/settings", tag = "session", summary = "Set the tenant's language",
    description = "Needs `roles.manage`.", request_body = SettingsBody,
    responses((status = 200, description = "The settings", body = TenantSettings),
              (status = 400, description = "`invalid_body`: not `zh-CN` or `en`", body = ErrorBody)))]
async fn set_settings(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<SettingsBody>) -> Result<Response> {
    caller.require(Permission::RolesManage)?;
    let repo = caller.repo(&app);
    let mut s: TenantSettings = repo.get(TENANT, SETTINGS).await?.unwrap_or_default();
    if let Some(l) = b.language {
        s.language = l;
    }
    repo.put(TENANT, SETTINGS, &s).await?;
    Ok(axum::Json(s).into_response())
}
