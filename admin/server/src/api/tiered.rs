//! Tiered push (分级推送): templates with an editor type and actions made of
//! rule cards, stored in the shape the gateway's escalation engine runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use herald_core::doc_query::DocFilter;
use herald_core::error::ApiError;
use herald_core::error::ErrorBody;
use herald_core::model::Content;
use herald_core::provider_template::ProviderTemplate;
use herald_core::rbac::Permission;
use herald_core::tiered::{ACTION, Action, Editor, LEVELS, Rule, TEMPLATE, TieredTemplate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::api::schema;
use crate::auth::Caller;
use crate::state::App;
use crate::web::{
    Body, ListQuery, Page, Query, Result, Routes, Sortable, conflict, created, formats, no_content, provider_refused, provider_template_fits,
    sanitize_html, text,
};
use herald_core::docs::new_id;

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(list_actions, create_action))
        .routes(routes!(get_action, update_action, delete_action))
        .routes(routes!(copy_action))
        .routes(routes!(enable_action))
        .routes(routes!(disable_action))
        .routes(routes!(list_incidents))
        .routes(routes!(get_incident))
        .routes(routes!(get_quiet, put_quiet))
}

/// `/tiered/incidents` sorts by these (`sort`); default newest first.
const INCIDENT_SORTS: Sortable = &[("created_at", "created_at"), ("level", "level"), ("state", "state"), ("action", "action")];

#[utoipa::path(get, path = "/tiered/incidents", tag = "tiered", summary = "Triggered actions (incidents), newest first",
    description = "Needs `tiered.view`. `status`: open, acknowledged or done. `sort`: created_at (the default, newest first), level, state or action.", params(ListQuery),
    responses((status = 200, description = "One page", body = Page<schema::Incident>)))]
async fn list_incidents(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require(Permission::TieredView)?;
    let state = q.status.as_deref().filter(|s| !s.is_empty()).map(|s| DocFilter::In { field: "state".into(), values: vec![s.into()] });
    let query = q.docs(INCIDENT_SORTS, ("created_at", true), vec![state])?;
    let page: Page<herald_core::tiered::Incident> = q.page_docs(&caller.repo(&app), herald_core::tiered::INCIDENT, &query).await?;
    Ok(axum::Json(page).into_response())
}

#[utoipa::path(get, path = "/tiered/incidents/{id}", tag = "tiered", summary = "One incident with its timeline",
    description = "Needs `tiered.view`.", params(("id" = String, Path, description = "Incident id")), responses((status = 200, description = "The incident", body = schema::Incident)))]
async fn get_incident(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::TieredView)?;
    let i: herald_core::tiered::Incident = caller.repo(&app).need(herald_core::tiered::INCIDENT, &id, "incident").await?;
    Ok(axum::Json(i).into_response())
}

/// Read by the gateway's escalation engine (document `settings/quiet_hours`).
const SETTINGS: &str = "settings";
const QUIET_HOURS: &str = "quiet_hours";

#[utoipa::path(get, path = "/tiered/quiet-hours", tag = "tiered", summary = "The tenant's quiet hours (null when none)",
    description = "Needs `tiered.view`.", responses((status = 200, description = "The quiet hours, or null", body = Option<schema::QuietHours>)))]
async fn get_quiet(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::TieredView)?;
    let q: Option<herald_core::quiet::QuietHours> = caller.repo(&app).get(SETTINGS, QUIET_HOURS).await?;
    Ok(axum::Json(q).into_response())
}

/// Needs `tiered.edit`. Info and normal levels wait until the window ends, in
/// the recipient's time zone when the directory has one; `start == end` means none.
#[utoipa::path(put, path = "/tiered/quiet-hours", tag = "tiered", summary = "Set quiet hours: info/normal levels wait until the window ends",
    request_body = schema::QuietHours, responses((status = 200, description = "The quiet hours", body = schema::QuietHours)))]
async fn put_quiet(State(app): State<Arc<App>>, caller: Caller, Body(q): Body<herald_core::quiet::QuietHours>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    q.validate().map_err(|(field, why)| ApiError::invalid(field, why))?;
    caller.repo(&app).put(SETTINGS, QUIET_HOURS, &q).await?;
    Ok(axum::Json(q).into_response())
}

/// A template as written. Channel rules: text → SMS, voice and IM; rich text → e-mail; voice → voice only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Disk full", "editor": "text", "body": "{{ host }}: disk {{ disk }} is full", "variables": ["host", "disk"]}))]
struct TemplateBody {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    title: String,
    #[schema(value_type = schema::Editor)]
    editor: Editor,
    /// Rich text only (required there, max 500 characters); ignored for the other editors.
    #[serde(default)]
    subject: Option<String>,
    /// minijinja text; HTML for rich text (sanitized).
    #[schema(min_length = 1, max_length = 20000, pattern = "\\S")]
    body: String,
    /// Variable names: letters (any language), digits and _.
    #[serde(default)]
    #[schema(inline, value_type = Vec<VariableName>)]
    variables: Vec<String>,
    /// Per template-based channel (plugin name, e.g. `aliyun-sms`): the
    /// provider's approved template and its parameters, sent instead of the
    /// text on that channel. Refused for a channel that sends the text itself.
    #[serde(default)]
    provider: BTreeMap<String, ProviderTemplate>,
}

/// `TemplateBody` with its one conditional rule: a rich-text template needs a
/// `subject` (the other editors take none).
struct TemplateRequest;

impl utoipa::PartialSchema for TemplateRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Type};
        let editor = |values: &[&str]| ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.to_vec()));
        let subject = ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(500)).pattern(Some("\\S"));
        let plain = ObjectBuilder::new().property("editor", editor(&["text", "voice"]));
        let rich = ObjectBuilder::new().property("editor", editor(&["rich_text"])).property("subject", subject).required("subject");
        AllOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(TemplateBody::name()))
            .item(OneOfBuilder::new().item(plain).item(rich))
            .description(Some("A template as written; rich text needs a `subject`."))
            .into()
    }
}

impl ToSchema for TemplateRequest {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((TemplateBody::name().into_owned(), <TemplateBody as utoipa::PartialSchema>::schema()));
        <TemplateBody as ToSchema>::schemas(schemas);
    }
}

/// A template variable's name.
#[derive(ToSchema)]
#[schema(pattern = "^\\w+$")]
#[allow(dead_code)] // a schema only
struct VariableName(String);

fn check_template(app: &App, b: TemplateBody, t: &mut TieredTemplate) -> std::result::Result<(), ApiError> {
    t.title = text("title", &b.title, 200)?;
    t.editor = b.editor;
    let body = text("body", &b.body, 20_000)?;
    t.body = if b.editor == Editor::RichText { sanitize_html(&body) } else { body };
    t.subject = match b.editor {
        Editor::RichText => Some(text("subject", b.subject.as_deref().unwrap_or(""), 500)?),
        _ => None,
    };
    let content = match t.editor {
        Editor::RichText => Content { subject: t.subject.clone(), text: None, html: Some(t.body.clone()) },
        _ => Content { subject: None, text: Some(t.body.clone()), html: None },
    };
    herald_core::render::Compiled::new(&content).map_err(|e| ApiError::invalid("body", e.msg()))?;
    for (i, v) in b.variables.iter().enumerate() {
        // Letters of any script: {{ 姓名 }} as well as {{ name }}.
        if v.is_empty() || !v.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(ApiError::invalid(format!("variables[{i}]"), herald_core::msg!("tiered.variable_name")));
        }
    }
    t.variables = b.variables;
    for (channel, p) in &b.provider {
        provider_template_fits(&app.deps.plugins, channel, p).map_err(|(f, why)| provider_refused(format!("provider.{channel}{f}"), why))?;
    }
    t.provider = b.provider;
    t.updated_at = herald_core::now_ms();
    Ok(())
}

/// Templates and actions sort by these (`sort`); default by number, newest first.
const NUMBERED_SORTS: Sortable = &[("number", "number"), ("title", "title"), ("created_at", "created_at"), ("updated_at", "updated_at")];
/// Actions also by status (enabled or not).
const ACTION_SORTS: Sortable =
    &[("number", "number"), ("title", "title"), ("status", "enabled"), ("created_at", "created_at"), ("updated_at", "updated_at")];

#[utoipa::path(get, path = "/tiered/templates", tag = "tiered", summary = "Search tiered templates by number and title",
    description = "Needs `tiered.view`. Newest number first; `sort`: number, title, created_at or updated_at.", params(ListQuery),
    responses((status = 200, description = "One page", body = Page<schema::TieredTemplate>)))]
async fn list_templates(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require(Permission::TieredView)?;
    let filters = vec![ListQuery::contains(&q.number, &["number"]), ListQuery::contains(&q.title, &["title"])];
    let query = q.docs(NUMBERED_SORTS, ("number", true), filters)?;
    let page: Page<TieredTemplate> = q.page_docs(&caller.repo(&app), TEMPLATE, &query).await?;
    Ok(axum::Json(page).into_response())
}

#[utoipa::path(post, path = "/tiered/templates", tag = "tiered", summary = "Create a template", description = "Needs `tiered.edit`.",
    request_body = TemplateRequest, responses((status = 201, description = "Created", body = schema::TieredTemplate)))]
async fn create_template(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<TemplateBody>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let now = herald_core::now_ms();
    let mut t = TieredTemplate {
        id: new_id(),
        number: String::new(),
        title: String::new(),
        editor: Editor::Text,
        subject: None,
        body: String::new(),
        variables: vec![],
        provider: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    };
    check_template(&app, b, &mut t)?;
    t.number = caller.repo(&app).next_number("T").await?;
    caller.repo(&app).put(TEMPLATE, &t.id, &t).await?;
    Ok(created(&t))
}

#[utoipa::path(get, path = "/tiered/templates/{id}", tag = "tiered", summary = "One template", description = "Needs `tiered.view`.",
    params(("id" = String, Path, description = "Template id")), responses((status = 200, description = "The template", body = schema::TieredTemplate)))]
async fn get_template(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::TieredView)?;
    let t: TieredTemplate = caller.repo(&app).need(TEMPLATE, &id, "template").await?;
    Ok(axum::Json(t).into_response())
}

#[utoipa::path(put, path = "/tiered/templates/{id}", tag = "tiered", summary = "Edit a template", description = "Needs `tiered.edit`.",
    params(("id" = String, Path, description = "Template id")), request_body = TemplateRequest, responses((status = 200, description = "The template", body = schema::TieredTemplate)))]
async fn update_template(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<TemplateBody>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let mut t: TieredTemplate = caller.repo(&app).need(TEMPLATE, &id, "template").await?;
    check_template(&app, b, &mut t)?;
    caller.repo(&app).put(TEMPLATE, &t.id, &t).await?;
    Ok(axum::Json(t).into_response())
}

#[utoipa::path(delete, path = "/tiered/templates/{id}", tag = "tiered", summary = "Delete a template no action links",
    description = "Needs `tiered.edit`.", params(("id" = String, Path, description = "Template id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`in_use`", body = ErrorBody)))]
async fn delete_template(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let repo = caller.repo(&app);
    let _: TieredTemplate = repo.need(TEMPLATE, &id, "template").await?;
    let actions: Vec<Action> = repo.list(ACTION).await?;
    if let Some(a) = actions.iter().find(|a| a.templates.contains(&id)) {
        return Err(conflict("in_use", herald_core::msg!("tiered.template_in_use", number = a.number, title = a.title)).into());
    }
    repo.delete(TEMPLATE, &id).await?;
    Ok(no_content())
}

/// An action as written: rule cards fired in order, each escalating to the next.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Disk full", "templates": ["01J9Z8Q4K8"], "ack_scope": "incident", "rules": [
    {"level": "urgent", "channels": [{"channel": "sms", "account": "sms-main"}], "recipients": {"units": ["01J9Z8Q4K0"]},
     "escalate": {"after_secs": 300, "condition": "not_acknowledged"}, "repeat": 0},
    {"level": "urgent", "channels": [{"channel": "voice", "account": "voice-main"}], "recipients": {"users": ["01J9Z8Q4K2"]}}]}))]
struct ActionBody {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    title: String,
    /// Template ids.
    #[schema(min_items = 1)]
    templates: Vec<String>,
    #[schema(value_type = Vec<schema::Rule>, min_items = 1)]
    rules: Vec<Rule>,
    /// Default `incident`.
    #[serde(default)]
    #[schema(value_type = Option<schema::AckScope>)]
    ack_scope: Option<herald_core::tiered::AckScope>,
}

async fn check_action(app: &App, caller: &Caller, b: ActionBody, a: &mut Action) -> std::result::Result<(), ApiError> {
    a.title = text("title", &b.title, 200)?;
    if b.templates.is_empty() {
        return Err(ApiError::invalid("templates", herald_core::msg!("tiered.pick_template")));
    }
    let mut editors = vec![];
    for (i, id) in b.templates.iter().enumerate() {
        let t: Option<TieredTemplate> = caller.repo(app).get(TEMPLATE, id).await?;
        let t = t.ok_or_else(|| {
            ApiError::unknown("unknown_template", &format!("templates[{i}]"), herald_core::msg!("tiered.unknown_template", id = id))
        })?;
        editors.push(t.editor);
    }
    if b.rules.is_empty() {
        return Err(ApiError::invalid("rules", herald_core::msg!("tiered.add_rule")));
    }
    for (i, r) in b.rules.iter().enumerate() {
        let f = |s: &str| format!("rules[{i}].{s}");
        if !LEVELS.contains(&r.level.as_str()) {
            return Err(ApiError::invalid(f("level"), herald_core::msg!("tiered.level", levels = LEVELS.join(", "))));
        }
        if r.channels.is_empty() {
            return Err(ApiError::invalid(f("channels"), herald_core::msg!("tiered.pick_channel")));
        }
        for (j, c) in r.channels.iter().enumerate() {
            let field = format!("rules[{i}].channels[{j}]");
            let account = app.deps.backends.config.account(&caller.tenant, &c.account).await?;
            if account.is_none_or(|acc| acc.plugin != c.channel) {
                return Err(ApiError::unknown(
                    "unknown_account",
                    &field,
                    herald_core::msg!("tiered.unknown_account", channel = c.channel, account = format!("{:?}", c.account)),
                ));
            }
            let formats = formats(&app.deps.plugins, &c.channel);
            if !editors.iter().any(|e| e.fits(&formats)) {
                return Err(ApiError::invalid(field, herald_core::msg!("tiered.no_fit", channel = c.channel)));
            }
        }
        if r.recipients.is_empty() {
            return Err(ApiError::invalid(f("recipients"), herald_core::msg!("tiered.pick_recipients")));
        }
        if let Some(e) = &r.escalate
            && (e.after_secs == 0 || e.after_secs > 7 * 24 * 3600)
        {
            return Err(ApiError::invalid(f("escalate.after_secs"), herald_core::msg!("tiered.escalate_range")));
        }
        if r.repeat > 10 {
            return Err(ApiError::invalid(f("repeat"), herald_core::msg!("tiered.repeat_max")));
        }
        if r.repeat > 0 && r.escalate.is_none() {
            return Err(ApiError::invalid(f("repeat"), herald_core::msg!("tiered.repeat_needs_wait")));
        }
    }
    a.templates = b.templates;
    a.rules = b.rules;
    if let Some(scope) = b.ack_scope {
        a.ack_scope = scope;
    }
    a.updated_at = herald_core::now_ms();
    Ok(())
}

/// An action with its `status` (enabled or disabled); described by `schema::Action`.
#[derive(Serialize)]
struct ActionView {
    #[serde(flatten)]
    action: Action,
    status: &'static str,
}

fn action_view(a: &Action) -> ActionView {
    ActionView { action: a.clone(), status: if a.enabled { "enabled" } else { "disabled" } }
}

#[utoipa::path(get, path = "/tiered/actions", tag = "tiered", summary = "Search actions by number, title, status",
    description = "Needs `tiered.view`. `status`: enabled or disabled. Newest number first; `sort`: number, title, status, created_at or updated_at.", params(ListQuery),
    responses((status = 200, description = "One page", body = Page<schema::Action>)))]
async fn list_actions(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require(Permission::TieredView)?;
    let enabled =
        q.status.as_deref().filter(|s| !s.is_empty()).map(|s| DocFilter::In { field: "enabled".into(), values: vec![(s == "enabled").into()] });
    let query = q.docs(
        ACTION_SORTS,
        ("number", true),
        vec![ListQuery::contains(&q.number, &["number"]), ListQuery::contains(&q.title, &["title"]), enabled],
    )?;
    let page: Page<Action> = q.page_docs(&caller.repo(&app), ACTION, &query).await?;
    Ok(axum::Json(Page { items: page.items.iter().map(action_view).collect(), total: page.total }).into_response())
}

#[utoipa::path(post, path = "/tiered/actions", tag = "tiered", summary = "Create an action (enabled on creation)",
    description = "Needs `tiered.edit`.", request_body = ActionBody, responses((status = 201, description = "Created", body = schema::Action)))]
async fn create_action(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<ActionBody>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let now = herald_core::now_ms();
    let mut a = Action {
        id: new_id(),
        number: String::new(),
        title: String::new(),
        templates: vec![],
        rules: vec![],
        enabled: true,
        ack_scope: Default::default(),
        created_at: now,
        updated_at: now,
    };
    check_action(&app, &caller, b, &mut a).await?;
    a.number = caller.repo(&app).next_number("A").await?;
    caller.repo(&app).put(ACTION, &a.id, &a).await?;
    Ok(created(action_view(&a)))
}

#[utoipa::path(get, path = "/tiered/actions/{id}", tag = "tiered", summary = "One action", description = "Needs `tiered.view`.",
    params(("id" = String, Path, description = "Action id")), responses((status = 200, description = "The action", body = schema::Action)))]
async fn get_action(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::TieredView)?;
    let a: Action = caller.repo(&app).need(ACTION, &id, "action").await?;
    Ok(axum::Json(action_view(&a)).into_response())
}

#[utoipa::path(put, path = "/tiered/actions/{id}", tag = "tiered", summary = "Edit an action", description = "Needs `tiered.edit`.",
    params(("id" = String, Path, description = "Action id")), request_body = ActionBody, responses((status = 200, description = "The action", body = schema::Action)))]
async fn update_action(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<ActionBody>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let mut a: Action = caller.repo(&app).need(ACTION, &id, "action").await?;
    check_action(&app, &caller, b, &mut a).await?;
    caller.repo(&app).put(ACTION, &a.id, &a).await?;
    Ok(axum::Json(action_view(&a)).into_response())
}

#[utoipa::path(delete, path = "/tiered/actions/{id}", tag = "tiered", summary = "Delete a disabled action",
    description = "Needs `tiered.edit`.", params(("id" = String, Path, description = "Action id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`enabled`", body = ErrorBody)))]
async fn delete_action(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let a: Action = caller.repo(&app).need(ACTION, &id, "action").await?;
    if a.enabled {
        return Err(conflict("enabled", herald_core::msg!("tiered.delete_enabled")).into());
    }
    caller.repo(&app).delete(ACTION, &id).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/tiered/actions/{id}/copy", tag = "tiered", summary = "Copy an action", description = "Needs `tiered.edit`.",
    params(("id" = String, Path, description = "Action id")), responses((status = 201, description = "The copy (enabled, new number)", body = schema::Action)))]
async fn copy_action(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let orig: Action = caller.repo(&app).need(ACTION, &id, "action").await?;
    let now = herald_core::now_ms();
    let a = Action {
        id: new_id(),
        number: caller.repo(&app).next_number("A").await?,
        title: herald_core::msg!("default.copy", name = orig.title)
            .render(crate::api::tenant::language(&app, &caller.tenant).await?)
            .chars()
            .take(200)
            .collect(),
        enabled: true,
        created_at: now,
        updated_at: now,
        ..orig
    };
    caller.repo(&app).put(ACTION, &a.id, &a).await?;
    Ok(created(action_view(&a)))
}

async fn set_enabled(app: &App, caller: &Caller, id: &str, enabled: bool) -> Result<Response> {
    caller.require(Permission::TieredEdit)?;
    let mut a: Action = caller.repo(app).need(ACTION, id, "action").await?;
    a.enabled = enabled;
    a.updated_at = herald_core::now_ms();
    caller.repo(app).put(ACTION, &a.id, &a).await?;
    Ok(axum::Json(action_view(&a)).into_response())
}

#[utoipa::path(post, path = "/tiered/actions/{id}/enable", tag = "tiered", summary = "Enable an action", description = "Needs `tiered.edit`.",
    params(("id" = String, Path, description = "Action id")), responses((status = 200, description = "The action", body = schema::Action)))]
async fn enable_action(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    set_enabled(&app, &caller, &id, true).await
}

#[utoipa::path(post, path = "/tiered/actions/{id}/disable", tag = "tiered", summary = "Disable an action", description = "Needs `tiered.edit`.",
    params(("id" = String, Path, description = "Action id")), responses((status = 200, description = "The action", body = schema::Action)))]
async fn disable_action(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    set_enabled(&app, &caller, &id, false).await
}
