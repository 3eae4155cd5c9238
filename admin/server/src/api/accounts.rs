//! Sender accounts (账户设置): one form per installed plugin (from its account
//! schema), checked by the plugin, e-mail accounts verified by a real SMTP
//! connect + AUTH, secrets sealed at rest and never returned.
//!
//! Destinations naming a non-public address literally (`http://127.0.0.1/`,
//! `http://[::1]/`, `localhost`, an SMTP host `10.0.0.5`) are refused unless
//! `allow_private` allows them; the gateway checks every resolved address
//! again when it connects (the real defence).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use herald_backends::Guard;
use herald_backends::guard::ResolveError;
use herald_backends::smtp::{self, SmtpTls};
use herald_core::error::{ApiError, ErrorBody, ErrorKind};
use herald_core::model::Account;
use herald_core::rbac::Permission;
use herald_core::tiered::{ACTION, Action};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::pushes::{PUSH, Push};
use crate::state::App;
use crate::web::{Body, Items, ListQuery, Page, Query, Result, Routes, Sortable, conflict, created, formats, no_content};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(account_types)).routes(routes!(list_accounts, create_account)).routes(routes!(get_account, update_account, delete_account))
}

/// An account type: one per installed plugin, with its form.
#[derive(Serialize, ToSchema)]
struct AccountType {
    /// The plugin name, e.g. `email`, `sms`.
    channel: String,
    name: String,
    version: String,
    /// Content formats: text, html, markdown, voice.
    formats: Vec<String>,
    /// JSON Schema of the account's `config` (null when the plugin's is not JSON),
    /// as the plugin wrote it: its properties in the plugin's order.
    #[schema(value_type = Option<Object>)]
    account_schema: Option<Box<serde_json::value::RawValue>>,
    /// Paths of secret fields in `config` (`*` matches any key).
    secret_fields: Vec<String>,
    /// What one billed unit is (e.g. "message", "segment", "minute").
    billing_unit: String,
}

#[utoipa::path(get, path = "/account-types", tag = "accounts", summary = "Account types: one per installed plugin, with its form schema",
    description = "Needs `accounts.view`.", responses((status = 200, description = "The types", body = Items<AccountType>)))]
async fn account_types(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::AccountsView)?;
    let items: Vec<_> = app
        .deps
        .plugins
        .loaded()
        .into_iter()
        .map(|p| {
            let i = &p.info;
            AccountType {
                channel: i.name.clone(),
                name: i.name.clone(),
                version: i.version.clone(),
                formats: formats(&app.deps.plugins, &i.name),
                account_schema: serde_json::value::RawValue::from_string(i.account_schema.clone()).ok(),
                secret_fields: i.secret_fields.clone(),
                billing_unit: i.billing_unit.clone(),
            }
        })
        .collect();
    Ok(axum::Json(Items { items }).into_response())
}

fn secret_fields(app: &App, channel: &str) -> Vec<String> {
    app.deps.plugins.get(channel).map(|p| p.info.secret_fields.clone()).unwrap_or_default()
}

/// The account as the API shows it: secret fields removed, `<field>_set: true`
/// instead; values under a `*` secret path (e.g. `headers.*`) shown as `null`
/// (the keys stay visible; an edit sending `null` back keeps the value).
fn view(app: &App, a: &Account) -> AccountView {
    let mut config = a.config.clone();
    for f in secret_fields(app, &a.plugin) {
        if f.split('.').any(|p| p == "*") {
            for path in herald_backends::expand_secret_paths(&a.config, std::slice::from_ref(&f)) {
                set_segments(&mut config, &path, Value::Null);
            }
            continue;
        }
        let (parent, leaf) = match f.rsplit_once('.') {
            Some((p, l)) => (herald_backends::field_mut(&mut config, p), l.to_string()),
            None => (Some(&mut config), f.clone()),
        };
        if let Some(Value::Object(m)) = parent
            && m.remove(&leaf).is_some()
        {
            m.insert(format!("{leaf}_set"), Value::Bool(true));
        }
    }
    AccountView { name: a.name.clone(), channel: a.plugin.clone(), config, rate_per_sec: a.rate_per_sec }
}

/// A sender account as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "mail-main", "channel": "email", "rate_per_sec": null,
    "config": {"from": "noreply@example.com", "smtp": {"host": "smtp.example.com", "port": 587, "tls": "starttls", "username": "noreply", "password_set": true}}}))]
struct AccountView {
    name: String,
    /// The plugin that sends for it.
    channel: String,
    /// The plugin's settings: a secret field is left out and `<field>_set: true`
    /// given instead; values under a `*` secret path are null.
    #[schema(value_type = Object)]
    config: Value,
    /// Provider rate limit, sends per second (null = unlimited).
    rate_per_sec: Option<u32>,
}

fn sender(a: &Account) -> String {
    ["from", "sender", "address", "sign_name", "from_number"].iter().find_map(|k| a.config.get(*k).and_then(Value::as_str)).unwrap_or("").to_string()
}

/// `/accounts` sorts by these (`sort`); default by name.
const ACCOUNT_SORTS: Sortable = &[("name", "name"), ("channel", "channel")];

#[utoipa::path(get, path = "/accounts", tag = "accounts", summary = "Sender accounts (search by sender address)",
    description = "Needs `accounts.view`. `q` matches the name and the sender address. `sort`: name (the default) or channel.", params(ListQuery),
    responses((status = 200, description = "One page", body = Page<AccountView>)))]
async fn list_accounts(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require(Permission::AccountsView)?;
    // Sender accounts live in their own config table (the gateway's), a
    // handful per tenant (one or a few per channel), so they are read
    // whole and paged here by the stores' rules (`page_values`): a total,
    // `offset` reaches every page, no cap.
    let accounts = app.deps.backends.config.accounts(&caller.tenant).await?;
    let items = accounts.iter().filter(|a| ListQuery::matches(&q.q, &format!("{} {}", sender(a), a.name))).map(|a| view(&app, a));
    Ok(axum::Json(q.page_values(items, ACCOUNT_SORTS, ("name", false), (50, 200))?).into_response())
}

/// An account as written: `config` is checked by the channel's plugin
/// (its `account_schema`); secrets are sealed at rest and never returned.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "mail-main", "channel": "email",
    "config": {"from": "noreply@example.com", "smtp": {"host": "smtp.example.com", "port": 587, "tls": "starttls", "username": "noreply", "password": "s3cret"}}}))]
struct AccountBody {
    /// 1–64 letters, digits, - _ . (on edit the path names the account and this is ignored).
    #[serde(default)]
    #[schema(required = true, nullable = false, pattern = "^[\\w.-]{1,64}$")]
    name: Option<String>,
    /// Plugin name; cannot change on edit.
    channel: String,
    /// The plugin's settings; on edit, a secret field left out (or null/"") keeps its stored value.
    #[schema(value_type = Object)]
    config: Value,
    /// Provider rate limit, sends per second.
    #[serde(default)]
    rate_per_sec: Option<u32>,
}

/// Plugin check, SMTP verification for e-mail, then sealing.
async fn check_and_seal(app: &App, account: &mut Account) -> std::result::Result<(), ApiError> {
    let plugin = app.deps.plugins.get(&account.plugin).ok_or_else(|| {
        ApiError::unknown("unknown_channel", "channel", herald_core::msg!("account.no_plugin", plugin = format!("{:?}", account.plugin)))
    })?;
    if !account.config.is_object() {
        return Err(ApiError::invalid("config", herald_core::msg!("account.config_object")));
    }
    check_destinations(&guard(app)?, &account.config)?;
    let text = account.config.to_string();
    let p = plugin.clone();
    tokio::task::spawn_blocking(move || p.validate_account(&text))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?
        .map_err(|e| {
            ApiError::new(ErrorKind::Unprocessable, "invalid_account", herald_core::msg!("account.refused_by_plugin", detail = e))
                .with_field("config")
        })?;
    if account.plugin == "email" {
        verify_smtp(app, &account.config).await?;
    }
    app.deps.sealer.seal(account, &plugin.info.secret_fields).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.0))
}

fn guard(app: &App) -> std::result::Result<Guard, ApiError> {
    Guard::new(&app.cfg.allow_private, "allow_private").map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e))
}

fn refused(field: &str, message: impl Into<herald_core::i18n::Text>) -> ApiError {
    ApiError::new(ErrorKind::Unprocessable, "private_destination", message).with_field(field)
}

/// The quick check at save time: every URL in the config (any field) and
/// every `host` field whose host is a literal non-public address or a
/// `localhost` name. Names resolving to such addresses are caught by the
/// gateway when it connects.
fn check_destinations(guard: &Guard, config: &Value) -> std::result::Result<(), ApiError> {
    fn walk(guard: &Guard, v: &Value, path: &str) -> std::result::Result<(), ApiError> {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = format!("{path}.{k}");
                    if let (Some(host), "host") = (v.as_str(), k.as_str()) {
                        let port = m.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()).unwrap_or(25);
                        guard.check_literal(host, port).map_err(|r| refused(&p, r.1))?;
                    }
                    walk(guard, v, &p)?;
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(guard, v, &format!("{path}[{i}]"))?;
                }
            }
            Value::String(s) => {
                if let Some((host, port)) = url_host(s) {
                    guard.check_literal(&host, port).map_err(|r| refused(path, r.1))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    walk(guard, config, "config")
}

/// Host and port of an absolute `http(s)://` URL.
fn url_host(s: &str) -> Option<(String, u16)> {
    let lower = s.get(..8)?.to_ascii_lowercase();
    let (rest, default) = if lower.starts_with("https://") {
        (&s[8..], 443)
    } else if lower.starts_with("http://") {
        (&s[7..], 80)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    Some((host.to_string(), port.and_then(|p| p.parse().ok()).unwrap_or(default)))
}

/// Connect, EHLO, STARTTLS/TLS and AUTH as the gateway will, to an address
/// the destination guard allows.
async fn verify_smtp(app: &App, config: &Value) -> std::result::Result<(), ApiError> {
    let s = &config["smtp"];
    let host = s["host"].as_str().unwrap_or_default();
    let port = s["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(25);
    let tls = match s["tls"].as_str() {
        Some("starttls") => SmtpTls::Starttls,
        Some("implicit") => SmtpTls::Implicit,
        _ => SmtpTls::None,
    };
    let creds = s["username"].as_str().map(|u| (u.to_string(), s["password"].as_str().unwrap_or_default().to_string()));
    let timeout = Duration::from_millis(app.cfg.smtp_check_timeout_ms);
    let failed_in = |d| {
        ApiError::new(ErrorKind::Unprocessable, "smtp_check_failed", herald_core::msg!("smtp.check_failed").nested("detail", d))
            .with_field("config.smtp")
    };
    let failed = |m: String| failed_in(herald_core::msg!("smtp.connect_failed", host = host, port = port, detail = m));
    let addr = match tokio::time::timeout(timeout, guard(app)?.resolve(host, port)).await {
        Ok(Ok(addrs)) => addrs[0].ip(),
        Ok(Err(ResolveError::Refused(r))) => return Err(refused("config.smtp.host", r.1)),
        Ok(Err(ResolveError::Lookup(m))) => return Err(failed(m)),
        Err(_) => return Err(failed_in(herald_core::msg!("smtp.lookup_timed_out", host = host))),
    };
    let t = smtp::transport_at(host, addr, port, tls, creds, timeout, 1).map_err(failed)?;
    match tokio::time::timeout(timeout, t.test_connection()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(failed_in(herald_core::msg!("smtp.no_answer", host = host, port = port))),
        Ok(Err(e)) => Err(failed_in(smtp_failure(&e, host, port))),
        Err(_) => Err(failed_in(herald_core::msg!("smtp.timed_out", host = host, port = port))),
    }
}

/// What a failed SMTP check says: the kind of failure in the reader's
/// language, lettre's (and the server's) own words as the detail.
fn smtp_failure(e: &lettre::transport::smtp::Error, host: &str, port: u16) -> herald_core::i18n::Msg {
    use herald_core::msg;
    let detail = e.to_string();
    let code = e.status().map(u16::from);
    if e.is_timeout() {
        msg!("smtp.timed_out", host = host, port = port)
    } else if matches!(code, Some(530 | 534 | 535)) {
        msg!("smtp.auth_failed", detail = detail)
    } else if e.is_tls() {
        msg!("smtp.tls_failed", detail = detail)
    } else if e.is_permanent() || e.is_transient() {
        msg!("smtp.server_refused", code = code.unwrap_or_default(), detail = detail)
    } else {
        msg!("smtp.connect_failed", host = host, port = port, detail = detail)
    }
}

/// Needs `accounts.edit`. E-mail accounts are verified by a real SMTP connect
/// and AUTH; private destinations are refused unless allowed by the admin's config.
#[utoipa::path(post, path = "/accounts", tag = "accounts", summary = "Create a sender account (checked; e-mail verified over SMTP)",
    request_body = AccountBody,
    responses((status = 201, description = "Created", body = AccountView),
              (status = 409, description = "`exists`", body = ErrorBody),
              (status = 422, description = "`invalid_account`, `smtp_check_failed`, `private_destination`, `unknown_channel`", body = ErrorBody)))]
async fn create_account(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<AccountBody>) -> Result<Response> {
    caller.require(Permission::AccountsEdit)?;
    let name = b.name.as_deref().map(str::trim).unwrap_or("").to_string();
    // Letters of any script (通知邮箱 as well as notices), digits and - _ .
    if name.is_empty() || name.chars().count() > 64 || !name.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) {
        return Err(ApiError::invalid("name", herald_core::msg!("account.name_rule")).into());
    }
    if app.deps.backends.config.account(&caller.tenant, &name).await?.is_some() {
        return Err(conflict("exists", herald_core::msg!("account.exists", name = name)).into());
    }
    let mut account = Account { tenant: caller.tenant.clone(), name, plugin: b.channel, config: b.config, rate_per_sec: b.rate_per_sec };
    check_and_seal(&app, &mut account).await?;
    app.deps.backends.config.upsert_account(&account).await?;
    tracing::info!(tenant = %caller.tenant, account = %account.name, channel = %account.plugin, "sender account saved");
    Ok(created(view(&app, &account)))
}

async fn existing(app: &App, caller: &Caller, name: &str) -> std::result::Result<Account, ApiError> {
    app.deps.backends.config.account(&caller.tenant, name).await?.ok_or_else(|| ApiError::not_found("account", "name"))
}

#[utoipa::path(get, path = "/accounts/{name}", tag = "accounts", summary = "One sender account (secrets omitted)",
    description = "Needs `accounts.view`.", params(("name" = String, Path, description = "Account name")), responses((status = 200, description = "The account", body = AccountView)))]
async fn get_account(State(app): State<Arc<App>>, caller: Caller, Path(name): Path<String>) -> Result<Response> {
    caller.require(Permission::AccountsView)?;
    Ok(axum::Json(view(&app, &existing(&app, &caller, &name).await?)).into_response())
}

#[utoipa::path(put, path = "/accounts/{name}", tag = "accounts", summary = "Edit a sender account (omitted secrets are kept)",
    description = "Needs `accounts.edit`.", params(("name" = String, Path, description = "Account name")), request_body = AccountBody,
    responses((status = 200, description = "The account", body = AccountView),
              (status = 422, description = "`invalid_account`, `smtp_check_failed`, `private_destination`", body = ErrorBody)))]
async fn update_account(State(app): State<Arc<App>>, caller: Caller, Path(name): Path<String>, Body(b): Body<AccountBody>) -> Result<Response> {
    caller.require(Permission::AccountsEdit)?;
    let old = existing(&app, &caller, &name).await?;
    if b.channel != old.plugin {
        return Err(ApiError::invalid("channel", herald_core::msg!("account.channel_fixed")).into());
    }
    // Secrets left out keep their stored values.
    let old = app.deps.sealer.open(&old).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.0))?;
    let mut config = b.config;
    for f in secret_fields(&app, &old.plugin) {
        if let Some(star) = f.split('.').position(|p| p == "*") {
            keep_wildcard(&old.config, &mut config, &f, star);
            continue;
        }
        let keep = herald_backends::field_mut(&mut old.config.clone(), &f).cloned();
        let given = herald_backends::field_mut(&mut config, &f).is_some_and(|v| !v.is_null() && v != "");
        if let (Some(v), false) = (keep, given) {
            set_path(&mut config, &f, v);
        }
    }
    let mut account = Account { config, rate_per_sec: b.rate_per_sec, ..old };
    check_and_seal(&app, &mut account).await?;
    app.deps.backends.config.upsert_account(&account).await?;
    Ok(axum::Json(view(&app, &account)).into_response())
}

/// Keep stored values under a `*` secret path (`headers.*`): when the edit
/// leaves out the whole object (`headers`), every stored value is kept;
/// when it sends the object, keys given as `null` or `""` keep their stored
/// values and keys left out are removed.
fn keep_wildcard(stored: &Value, config: &mut Value, field: &str, star: usize) {
    // Decide on the edit as sent, not as already completed by this loop.
    let given = config.clone();
    for path in herald_backends::expand_secret_paths(stored, &[field.to_string()]) {
        let Some(value) = get_segments(stored, &path).cloned() else { continue };
        let keep = match get_segments(&given, &path[..star]) {
            None | Some(Value::Null) => true,
            Some(_) => match get_segments(&given, &path[..=star]) {
                None => false,
                Some(_) => get_segments(&given, &path).is_none_or(|v| v.is_null() || v == ""),
            },
        };
        if keep {
            set_segments(config, &path, value);
        }
    }
}

fn get_segments<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.as_object()?.get(k))
}

/// Set the value at `path` (a list of keys), creating objects on the way.
fn set_segments(config: &mut Value, path: &[String], v: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = config;
    for k in parents {
        let Some(m) = cur.as_object_mut() else { return };
        let next = m.entry(k.clone()).or_insert_with(|| json!({}));
        if next.is_null() {
            *next = json!({});
        }
        cur = next;
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert(last.clone(), v);
    }
}

fn set_path(config: &mut Value, path: &str, v: Value) {
    let mut cur = config;
    let parts: Vec<&str> = path.split('.').collect();
    for k in &parts[..parts.len() - 1] {
        let Some(m) = cur.as_object_mut() else { return };
        cur = m.entry(k.to_string()).or_insert_with(|| json!({}));
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert(parts[parts.len() - 1].to_string(), v);
    }
}

#[utoipa::path(delete, path = "/accounts/{name}", tag = "accounts", summary = "Delete an account no push or action uses",
    description = "Needs `accounts.edit`.", params(("name" = String, Path, description = "Account name")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`in_use`", body = ErrorBody)))]
async fn delete_account(State(app): State<Arc<App>>, caller: Caller, Path(name): Path<String>) -> Result<Response> {
    caller.require(Permission::AccountsEdit)?;
    existing(&app, &caller, &name).await?;
    let repo = caller.repo(&app);
    let pushes: Vec<Push> = repo.list(PUSH).await?;
    if let Some(p) = pushes.iter().find(|p| p.account == name) {
        return Err(conflict("in_use", herald_core::msg!("account.used_by_push", number = p.number)).into());
    }
    let actions: Vec<Action> = repo.list(ACTION).await?;
    if let Some(a) = actions.iter().find(|a| a.rules.iter().any(|r| r.channels.iter().any(|c| c.account == name))) {
        return Err(conflict("in_use", herald_core::msg!("account.used_by_action", number = a.number)).into());
    }
    app.deps.backends.config.delete_account(&caller.tenant, &name).await?;
    Ok(no_content())
}
